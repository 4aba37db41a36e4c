"""Perturbed gradient descent on Shamir's Example 1 in JAX, PyTorch and Numba.

Comparison points for the package's own optimisers.  Every implementation runs
the same algorithm on the same float64 problem and returns plain NumPy arrays.

Problem (Shamir, NeurIPS 2018, Example 1)
-----------------------------------------
Scalars ``(w, v)``, ``eps > 0``::

    F(w, v) = (w (1 + eps v) - 1)^2 / 2,   q = w (1 + eps v) - 1,
    grad F  = (q (1 + eps v), q eps w).

The saddle ``(0, -1/eps)`` has gradient exactly zero; the Hessian there has
eigenvalues ``+-eps`` with the escape direction ``(1, 1)/sqrt(2)``.  The global
minima are the valley ``w (1 + eps v) = 1`` (``F = 0``).

Every implementation evaluates ``1 + eps v`` as ``eps (v + 1/eps)``: the
float64 point ``(0, -1/eps)`` is then exactly stationary for every ``eps``
(``v + 1/eps == 0.0``) whatever the compiler does.  The textbook form is
fragile: XLA on CPU fuses ``1.0 + 0.1 * -10.0`` into one FMA, which gives
``-5.55e-17`` instead of ``0.0``, so under ``jax.jit`` the gradient at the
"saddle" is ``(5.55e-17, 0)`` and plain gradient descent escapes after a few
thousand steps (the negative curvature amplifies it by ``1 + eta eps`` per
step).  NumPy, eager PyTorch and Numba (no ``fastmath``) do not fuse.

Algorithm (Jin et al. 2017, Algorithm 2, with given constants)
--------------------------------------------------------------
::

    t_noise = -t_thres - 1;  x_tilde = x0;  f_tilde = F(x0)
    for t = 0, ..., n_steps - 1:
        g = grad F(x_t)
        if ||g|| <= g_thres and t - t_noise > t_thres:
            x_tilde = x_t; f_tilde = F(x_t); t_noise = t
            x_t = x_tilde + xi,  xi uniform in the ball of radius r
            g = grad F(x_t)
        if t - t_noise == t_thres and F(x_t) - f_tilde > -f_thres:
            "stop, return x_tilde"
        x_{t+1} = x_t - eta g

Every implementation runs exactly ``n_steps`` loop iterations (no early exit),
so timings compare like with like.  The termination test is evaluated every
step and its *first* firing is recorded (``stop_step`` and ``x_stop``, the
``x_tilde`` it would have returned).  What happens after it fires is chosen by
``on_stop``:

* ``"continue"`` (default): record only, keep iterating (perturbations go on).
* ``"freeze"``: the iterate is set to ``x_tilde`` and frozen there (no more
  perturbations), so the final point is what Algorithm 2 returns.

Note that with the constants of the reference check (``eps=0.1, eta=0.1,
r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=50``) the test fires at ``t = 50``
*at the saddle*: the negative curvature ``eps`` grows the perturbation only by
``(1 + eta eps)^50 = 1.64`` in 50 steps, so ``F`` drops by at most
``eps/2 (0.0164)^2 = 1.4e-5 < f_thres``.  Algorithm 2 as written therefore
returns the saddle ("freeze"), and the trajectory escapes only when it keeps
iterating ("continue"), where the final ``F`` keeps jumping between ~1e-12
and ~5e-6 because every ``t_thres + 1`` steps at the minimum it is kicked by
``r`` again (``f_min`` is the value to read for "reached F < 1e-8").  With
:data:`ESCAPING` (``t_thres = 1000``, ``g_thres = 1e-5``) Algorithm 2 escapes
and returns a point with ``F ~ 2.5e-10``.  See :func:`check`.

Perturbation ``xi``: a normalised standard Gaussian pair times ``r sqrt(U)``
(uniform in the 2-d ball).  JAX draws it from ``jax.random`` with the key
``fold_in(key(seed), t)`` (counter based: the draw depends only on the seed and
the step, so batched and single runs agree), PyTorch from a ``torch.Generator``
seeded with ``seed``; Numba uses a counter-based splitmix64 hash of ``(seed,
t)`` and draws the angle directly (``(cos 2 pi U1, sin 2 pi U1)`` is exactly
the distribution of a normalised Gaussian pair in 2-d), which makes it thread
safe under ``prange`` and gives the single and batched Numba runs bit-identical
trajectories.  The random streams differ between frameworks, so trajectories
agree only in distribution, except JAX with ``draw="hash"``, which uses the
Numba stream (final points agree with Numba to ~1e-14).

Performance notes (CPU): ``jax.random``'s threefry is lowered on CPU as a
rolled 5-iteration ``while`` loop; inside the ``fori_loop`` body it costs far
more than the PGD arithmetic: one trajectory runs ~10x faster with the
loop-free ``draw="hash"`` than with ``draw="gaussian"`` although the draw sits
in a ``lax.cond`` taken only every ~50 steps.  Under ``vmap`` the ``cond``
becomes a ``select`` and all runs draw every step; ``draw="angle"`` (2 threefry
calls instead of 4) is ~4x faster there than ``"gaussian"``.

API
---
Builders take ``(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *,
on_stop="continue")`` (the JAX ones also ``draw="gaussian"`` and
``prng_impl=None``) and return ``None`` when the framework is not importable,
otherwise a callable:

* :func:`jax_pgd` -> ``run(x0, seed)``: ``jax.jit`` of a ``lax.fori_loop``;
  the perturbation branch is a ``lax.cond``.
* :func:`jax_pgd_batched` -> ``run(x0s (R, 2), seeds (R,))``: ``jax.vmap`` of
  the same per-run step inside one ``lax.fori_loop`` (the ``cond`` becomes a
  ``select``, so every run draws its random numbers every step).
* :func:`torch_pgd` -> ``run(x0, seed)``: eager float64 tensors, gradient by
  ``torch.autograd.grad``, a Python loop.
* :func:`numba_pgd` -> ``run(x0, seed)``: ``@numba.njit`` loop, gradient
  written out.
* :func:`numba_pgd_batched` -> ``run(x0s, seeds)``: ``@numba.njit(parallel=True)``
  with ``prange`` over runs.

``run(...)`` returns the final ``(w, v)`` (shape ``(2,)``, or ``(R, 2)`` when
batched) as a float64 NumPy array; ``run(..., info=True)`` returns ``(x,
info)`` with ``info`` a dict of NumPy values: ``stop_step`` (first firing of
the termination test, ``-1`` if never), ``x_stop`` (the ``x_tilde`` returned
then), ``f_min`` (smallest ``F`` at any point where a gradient was taken) and
``n_perturb`` (number of perturbations).  ``run.n_steps`` is the step count.

Helpers: :func:`F`, :func:`grad_F`, :func:`saddle`, :func:`jax_available`,
:func:`torch_available`, :func:`numba_available`, :func:`steps_per_second`,
:func:`check`, :func:`main` (``python benchmarks/frameworks_pgd.py [--quick]``).

Side effects: :func:`jax_available` (and so every JAX builder) calls
``jax.config.update("jax_enable_x64", True)``, process-wide.  Nothing else
touches global state (no ``torch.set_num_threads``).
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

__all__ = [
    "REFERENCE",
    "ESCAPING",
    "ON_STOP",
    "F",
    "grad_F",
    "saddle",
    "jax_available",
    "torch_available",
    "numba_available",
    "JAX_DRAWS",
    "jax_pgd",
    "jax_pgd_batched",
    "torch_pgd",
    "numba_pgd",
    "numba_pgd_batched",
    "steps_per_second",
    "check",
    "main",
]

#: The constants of the reference check.
REFERENCE = dict(eps=0.1, eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=50)

#: Constants under which Algorithm 2 escapes the saddle before its termination
#: test fires (the negative curvature needs ~1000 steps to lower F by f_thres) and
#: returns a point with F = g_thres^2 / (2 |grad q|^2) ~ 2.5e-10.
ESCAPING = dict(REFERENCE, t_thres=1000, g_thres=1e-5)

ON_STOP = ("continue", "freeze")

_INFO_KEYS = ("stop_step", "x_stop", "f_min", "n_perturb")


# --------------------------------------------------------------------------
# problem
# --------------------------------------------------------------------------


def F(x, eps: float):
    """``(w (1 + eps v) - 1)^2 / 2`` for ``x = (w, v)`` (last axis of size 2)."""
    x = np.asarray(x, dtype=np.float64)
    w, v = x[..., 0], x[..., 1]
    q = w * (eps * (v + 1.0 / eps)) - 1.0
    return 0.5 * q * q


def grad_F(x, eps: float) -> np.ndarray:
    """``(q (1 + eps v), q eps w)`` with ``q = w (1 + eps v) - 1``."""
    x = np.asarray(x, dtype=np.float64)
    w, v = x[..., 0], x[..., 1]
    a = eps * (v + 1.0 / eps)
    q = w * a - 1.0
    return np.stack([q * a, q * eps * w], axis=-1)


def saddle(eps: float) -> np.ndarray:
    """The strict saddle ``(0, -1/eps)``."""
    return np.array([0.0, -1.0 / eps])


def _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop):
    if on_stop not in ON_STOP:
        raise ValueError(f"on_stop must be one of {ON_STOP}, got {on_stop!r}")
    if int(t_thres) != t_thres or t_thres < 0:
        raise ValueError("t_thres must be a non-negative integer")
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError("n_steps must be a non-negative integer")
    if r < 0 or eta <= 0:
        raise ValueError("need r >= 0 and eta > 0")
    return (float(eps), float(eta), float(r), float(g_thres), float(f_thres), int(t_thres), int(n_steps))


def _x0(x0, batched: bool) -> np.ndarray:
    x0 = np.array(x0, dtype=np.float64)  # a copy
    if batched:
        if x0.ndim != 2 or x0.shape[1] != 2:
            raise ValueError(f"x0s must have shape (R, 2), got {x0.shape}")
    elif x0.shape != (2,):
        raise ValueError(f"x0 must have shape (2,), got {x0.shape}")
    return x0


def _seeds(seeds, R: int) -> np.ndarray:
    seeds = np.asarray(seeds)
    if seeds.shape != (R,):
        raise ValueError(f"seeds must have shape ({R},), got {seeds.shape}")
    if not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError("seeds must be integers")
    return seeds.astype(np.int64)


def _tag(run: Callable, n_steps: int, name: str) -> Callable:
    run.n_steps = n_steps
    run.__name__ = name
    return run


# --------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------


# The same availability checks as the objective comparisons (float64 JAX, torch threads).
from frameworks import _try_import, jax_available, torch_available  # noqa: E402



@functools.lru_cache(maxsize=None)
def numba_available():
    """The ``numba`` module, or ``None``."""
    return _try_import("numba")


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


JAX_DRAWS = ("gaussian", "angle", "hash")


def _jax_draw(draw, prng_impl):
    """``(make_key(seed), xi_dir_rad(key, t) -> (direction (2,), U))`` for one run."""
    jax = jax_available()
    import jax.numpy as jnp

    if draw not in JAX_DRAWS:
        raise ValueError(f"draw must be one of {JAX_DRAWS}, got {draw!r}")
    if draw == "hash" and prng_impl is not None:
        raise ValueError("prng_impl applies to jax.random draws, not draw='hash'")

    if draw == "hash":
        u64 = jnp.uint64

        def mix(z):  # splitmix64 finaliser, as in the Numba kernels
            z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
            return z ^ (z >> u64(31))

        def make_key(seed):
            return mix(seed.astype(u64) + u64(0x9E3779B97F4A7C15))

        def uniform(base, t, j):
            z = mix(base ^ (t.astype(u64) * u64(4) + u64(j)))
            return (z >> u64(11)).astype(jnp.float64) * (1.0 / 9007199254740992.0)

        def dir_rad(base, t):
            theta = (2.0 * np.pi) * uniform(base, t, 0)
            return jnp.stack([jnp.cos(theta), jnp.sin(theta)]), uniform(base, t, 1)

        return make_key, dir_rad

    def make_key(seed):
        return jax.random.key(seed, impl=prng_impl)

    if draw == "gaussian":

        def dir_rad(key, t):
            k_dir, k_rad = jax.random.split(jax.random.fold_in(key, t))
            z = jax.random.normal(k_dir, (2,), dtype=jnp.float64)
            return z / jnp.sqrt(z @ z), jax.random.uniform(k_rad, (), dtype=jnp.float64)

    else:  # angle

        def dir_rad(key, t):
            u = jax.random.uniform(jax.random.fold_in(key, t), (2,), dtype=jnp.float64)
            theta = (2.0 * np.pi) * u[0]
            return jnp.stack([jnp.cos(theta), jnp.sin(theta)]), u[1]

    return make_key, dir_rad


def _jax_step(eps, eta, r, g_thres, f_thres, t_thres, freeze, dir_rad):
    """The per-run PGD step ``step(t, carry, key) -> carry`` (not batched) and
    ``init(x0) -> carry``."""
    jax = jax_available()
    import jax.numpy as jnp
    from jax import lax

    c = 1.0 / eps

    def objective(x):
        q = x[0] * (eps * (x[1] + c)) - 1.0
        return 0.5 * q * q

    value_and_grad = jax.value_and_grad(objective)

    def step(t, carry, key):
        x, x_tilde, f_tilde, t_noise, stop_t, x_stop, f_min, n_pert = carry
        f, g = value_and_grad(x)
        perturb = (jnp.sqrt(g @ g) <= g_thres) & (t - t_noise > t_thres)
        if freeze:
            perturb = perturb & (stop_t < 0)

        def do_perturb(ops):
            x, x_tilde, f_tilde, t_noise, f, g, n_pert = ops
            direction, u = dir_rad(key, t)
            x_new = x + direction * (r * jnp.sqrt(u))
            f_new, g_new = value_and_grad(x_new)
            return x_new, x, f, t.astype(t_noise.dtype), f_new, g_new, n_pert + 1

        ops = (x, x_tilde, f_tilde, t_noise, f, g, n_pert)
        x, x_tilde, f_tilde, t_noise, f, g, n_pert = lax.cond(perturb, do_perturb, lambda o: o, ops)

        stop_now = (t - t_noise == t_thres) & (f - f_tilde > -f_thres) & (stop_t < 0)
        stop_t = jnp.where(stop_now, t.astype(stop_t.dtype), stop_t)
        x_stop = jnp.where(stop_now, x_tilde, x_stop)
        f_min = jnp.minimum(f_min, f)
        x_next = x - eta * g
        if freeze:
            x_next = jnp.where(stop_t >= 0, x_tilde, x_next)
        return x_next, x_tilde, f_tilde, t_noise, stop_t, x_stop, f_min, n_pert

    def init(x0):
        f0 = objective(x0)
        i64 = jnp.int64
        return (x0, x0, f0, jnp.asarray(-t_thres - 1, i64), jnp.asarray(-1, i64),
                jnp.full_like(x0, jnp.nan), jnp.asarray(jnp.inf, jnp.float64), jnp.asarray(0, i64))

    return step, init


def _jax_result(out, info: bool, batched: bool):
    x, _, _, _, stop_t, x_stop, f_min, n_pert = out
    x = np.asarray(x)  # forces the computation
    if not info:
        return x
    vals = (np.asarray(stop_t), np.asarray(x_stop), np.asarray(f_min), np.asarray(n_pert))
    if not batched:
        vals = (int(vals[0]), vals[1], float(vals[2]), int(vals[3]))
    return x, dict(zip(_INFO_KEYS, vals))


def jax_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *, on_stop="continue",
            draw="gaussian", prng_impl=None):
    """One trajectory: ``jax.jit`` of ``lax.fori_loop(0, n_steps, ...)``, float64,
    gradient by ``jax.value_and_grad``, the perturbation in a ``lax.cond``.

    ``draw`` picks the random numbers of a perturbation at step ``t``:

    * ``"gaussian"`` (default, the literal recipe): ``k = fold_in(key(seed), t)``,
      ``split``, ``normal(k1, (2,))`` normalised, ``uniform(k2)``;
    * ``"angle"``: ``uniform(fold_in(key(seed), t), (2,))`` -> direction
      ``(cos 2 pi U1, sin 2 pi U1)`` (the same distribution as a normalised Gaussian
      pair in 2-d), radius ``r sqrt(U2)``: half the threefry calls;
    * ``"hash"``: not ``jax.random``; the splitmix64 counter hash of the Numba
      kernels, loop-free, so it fuses (see the module notes).  Same stream as
      :func:`numba_pgd` for the same seed.

    ``prng_impl`` is passed to ``jax.random.key`` (``None`` = the default
    ``threefry2x32``; ``"rbg"``, ``"unsafe_rbg"``).

    Returns ``run(x0, seed, info=False)`` or ``None`` without JAX.  The first call
    compiles (a fixed ``n_steps`` per builder; ``x0`` and ``seed`` are traced, so
    new starts and seeds do not recompile).
    """
    args = _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop)
    jax = jax_available()
    if jax is None:
        return None
    import jax.numpy as jnp
    from jax import lax

    eps, eta, r, g_thres, f_thres, t_thres, n_steps = args
    make_key, dir_rad = _jax_draw(draw, prng_impl)
    step, init = _jax_step(eps, eta, r, g_thres, f_thres, t_thres, on_stop == "freeze", dir_rad)

    @jax.jit
    def _run(x0, seed):
        key = make_key(seed)
        return lax.fori_loop(0, n_steps, lambda t, c: step(t, c, key), init(x0))

    def run(x0, seed, info=False):
        out = _run(jnp.asarray(_x0(x0, False)), jnp.asarray(int(seed), jnp.int64))
        return _jax_result(out, info, False)

    run.jitted = _run
    return _tag(run, n_steps, "jax_pgd")


def jax_pgd_batched(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *, on_stop="continue",
                    draw="gaussian", prng_impl=None):
    """``R`` independent trajectories: ``jax.vmap`` of the per-run step of
    :func:`jax_pgd` inside one ``lax.fori_loop``, all under ``jax.jit``.  Under
    ``vmap`` the ``lax.cond`` becomes a ``select``: every run computes its
    perturbation (random numbers included) every step.  ``draw`` and
    ``prng_impl`` as in :func:`jax_pgd`; run ``i`` uses ``seeds[i]`` exactly as
    :func:`jax_pgd` would.

    Returns ``run(x0s (R, 2), seeds (R,), info=False)`` -> ``(R, 2)`` or ``None``
    without JAX.  Compiles once per batch size ``R``.
    """
    args = _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop)
    jax = jax_available()
    if jax is None:
        return None
    import jax.numpy as jnp
    from jax import lax

    eps, eta, r, g_thres, f_thres, t_thres, n_steps = args
    make_key, dir_rad = _jax_draw(draw, prng_impl)
    step, init = _jax_step(eps, eta, r, g_thres, f_thres, t_thres, on_stop == "freeze", dir_rad)
    vstep = jax.vmap(step, in_axes=(None, 0, 0))

    @jax.jit
    def _run(x0s, seeds):
        keys = jax.vmap(make_key)(seeds)
        return lax.fori_loop(0, n_steps, lambda t, c: vstep(t, c, keys), jax.vmap(init)(x0s))

    def run(x0s, seeds, info=False):
        x0s = _x0(x0s, True)
        out = _run(jnp.asarray(x0s), jnp.asarray(_seeds(seeds, x0s.shape[0])))
        return _jax_result(out, info, True)

    run.jitted = _run
    return _tag(run, n_steps, "jax_pgd_batched")


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------


def torch_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *, on_stop="continue"):
    """One trajectory in PyTorch eager mode: float64 tensors, ``torch.autograd.grad``
    for the gradient, a Python ``for`` loop (two host syncs per step: ``||g||`` and
    ``F``).  Random numbers from a ``torch.Generator`` seeded with ``seed``.

    Returns ``run(x0, seed, info=False)`` or ``None`` without PyTorch.
    """
    args = _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop)
    torch = torch_available()
    if torch is None:
        return None
    eps, eta, r, g_thres, f_thres, t_thres, n_steps = args
    freeze = on_stop == "freeze"
    f64 = torch.float64
    c = 1.0 / eps

    def objective(x):
        w, v = x.unbind()
        return (w * (eps * (v + c)) - 1.0) ** 2 / 2.0

    def value_and_grad(x):
        f = objective(x)
        (g,) = torch.autograd.grad(f, x)
        return f.detach(), g

    def run(x0, seed, info=False):
        gen = torch.Generator().manual_seed(int(seed))
        x = torch.tensor(_x0(x0, False), dtype=f64, requires_grad=True)
        x_tilde = x.detach().clone()
        f_tilde = float(objective(x_tilde))
        t_noise, stop_t, x_stop, f_min, n_pert = -t_thres - 1, -1, None, math.inf, 0
        for t in range(n_steps):
            if freeze and stop_t >= 0:  # frozen at x_tilde: nothing left to compute
                continue
            f, g = value_and_grad(x)
            if float(torch.linalg.vector_norm(g)) <= g_thres and t - t_noise > t_thres:
                x_tilde, f_tilde, t_noise = x.detach().clone(), float(f), t
                z = torch.randn(2, generator=gen, dtype=f64)
                u = torch.rand((), generator=gen, dtype=f64)
                x = (x_tilde + z * (r * torch.sqrt(u) / torch.linalg.vector_norm(z))).requires_grad_()
                f, g = value_and_grad(x)
                n_pert += 1
            fv = float(f)
            if t - t_noise == t_thres and fv - f_tilde > -f_thres and stop_t < 0:
                stop_t, x_stop = t, x_tilde.clone()
                if freeze:
                    x = x_tilde.clone()
                    f_min = min(f_min, fv)
                    continue
            f_min = min(f_min, fv)
            with torch.no_grad():
                x = x - eta * g
            x.requires_grad_()
        out = x.detach().numpy().copy()
        if not info:
            return out
        xs = np.full(2, np.nan) if x_stop is None else x_stop.numpy().copy()
        return out, dict(stop_step=stop_t, x_stop=xs, f_min=f_min, n_perturb=n_pert)

    return _tag(run, n_steps, "torch_pgd")


# --------------------------------------------------------------------------
# Numba
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _numba_kernels():
    """Compile-on-first-call kernels ``(single, batched)``; built lazily so that the
    module imports without numba."""
    numba = numba_available()
    if numba is None:
        return None
    njit, prange = numba.njit, numba.prange
    u64 = np.uint64
    GOLDEN, M1, M2 = u64(0x9E3779B97F4A7C15), u64(0xBF58476D1CE4E5B9), u64(0x94D049BB133111EB)
    S30, S27, S31, S11 = u64(30), u64(27), u64(31), u64(11)
    TWO_M53 = 1.0 / 9007199254740992.0
    TWO_PI = 2.0 * math.pi

    @njit(inline="always")
    def mix(z):  # splitmix64 finaliser
        z = (z ^ (z >> S30)) * M1
        z = (z ^ (z >> S27)) * M2
        return z ^ (z >> S31)

    @njit(inline="always")
    def uniform(seed, t, j):
        """A uniform in [0, 1) from the counter ``(seed, t, j)``."""
        z = mix(mix(u64(seed) + GOLDEN) ^ (u64(t) * u64(4) + u64(j)))
        return float(z >> S11) * TWO_M53

    @njit(inline="always")
    def pgd_one(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps, freeze):
        c = 1.0 / eps
        t_noise = -t_thres - 1
        w_t, v_t = w, v
        q = w * (eps * (v + c)) - 1.0
        f_t = 0.5 * q * q
        stop_t, ws, vs, f_min, n_pert = -1, math.nan, math.nan, math.inf, 0
        for t in range(n_steps):
            if freeze and stop_t >= 0:
                continue
            a = eps * (v + c)
            q = w * a - 1.0
            gw, gv, f = q * a, q * eps * w, 0.5 * q * q
            if math.sqrt(gw * gw + gv * gv) <= g_thres and t - t_noise > t_thres:
                w_t, v_t, f_t, t_noise = w, v, f, t
                theta = TWO_PI * uniform(seed, t, 0)
                rad = r * math.sqrt(uniform(seed, t, 1))
                w = w_t + rad * math.cos(theta)
                v = v_t + rad * math.sin(theta)
                a = eps * (v + c)
                q = w * a - 1.0
                gw, gv, f = q * a, q * eps * w, 0.5 * q * q
                n_pert += 1
            if t - t_noise == t_thres and f - f_t > -f_thres and stop_t < 0:
                stop_t, ws, vs = t, w_t, v_t
                if freeze:
                    w, v = w_t, v_t
                    f_min = min(f_min, f)
                    continue
            f_min = min(f_min, f)
            w -= eta * gw
            v -= eta * gv
        return w, v, stop_t, ws, vs, f_min, n_pert

    @njit
    def single(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps, freeze):
        return pgd_one(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps, freeze)

    @njit(parallel=True)
    def batched(x0s, seeds, eps, eta, r, g_thres, f_thres, t_thres, n_steps, freeze):
        R = x0s.shape[0]
        x = np.empty((R, 2))
        x_stop = np.empty((R, 2))
        stop_t = np.empty(R, np.int64)
        f_min = np.empty(R)
        n_pert = np.empty(R, np.int64)
        for i in prange(R):
            w, v, st, ws, vs, fm, npt = pgd_one(x0s[i, 0], x0s[i, 1], seeds[i], eps, eta, r,
                                                g_thres, f_thres, t_thres, n_steps, freeze)
            x[i, 0], x[i, 1], x_stop[i, 0], x_stop[i, 1] = w, v, ws, vs
            stop_t[i], f_min[i], n_pert[i] = st, fm, npt
        return x, stop_t, x_stop, f_min, n_pert

    return single, batched


def numba_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *, on_stop="continue"):
    """One trajectory: a hand-written ``@numba.njit`` loop with the gradient written
    out (the upper reference).  Returns ``run(x0, seed, info=False)`` or ``None``
    without numba.  The first call compiles (once per process, shared by all
    constants)."""
    args = _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop)
    kernels = _numba_kernels()
    if kernels is None:
        return None
    single = kernels[0]
    freeze = on_stop == "freeze"

    def run(x0, seed, info=False):
        x0 = _x0(x0, False)
        w, v, st, ws, vs, fm, npt = single(x0[0], x0[1], np.int64(seed), *args, freeze)
        x = np.array([w, v])
        if not info:
            return x
        return x, dict(stop_step=int(st), x_stop=np.array([ws, vs]), f_min=float(fm), n_perturb=int(npt))

    return _tag(run, args[-1], "numba_pgd")


def numba_pgd_batched(eps, eta, r, g_thres, f_thres, t_thres, n_steps, *, on_stop="continue"):
    """``R`` trajectories: ``@numba.njit(parallel=True)`` with ``prange`` over runs
    (each run is the :func:`numba_pgd` loop; same seed -> bit-identical
    trajectory).  Returns ``run(x0s (R, 2), seeds (R,), info=False)`` or ``None``."""
    args = _check_args(eps, eta, r, g_thres, f_thres, t_thres, n_steps, on_stop)
    kernels = _numba_kernels()
    if kernels is None:
        return None
    batched = kernels[1]
    freeze = on_stop == "freeze"

    def run(x0s, seeds, info=False):
        x0s = np.ascontiguousarray(_x0(x0s, True))
        x, st, xs, fm, npt = batched(x0s, _seeds(seeds, x0s.shape[0]), *args, freeze)
        if not info:
            return x
        return x, dict(stop_step=st, x_stop=xs, f_min=fm, n_perturb=npt)

    return _tag(run, args[-1], "numba_pgd_batched")


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------


def _force(res: Any) -> None:
    if isinstance(res, (tuple, list)):
        for r in res:
            _force(r)
        return
    block = getattr(res, "block_until_ready", None)
    if block is not None:
        block()
    np.asarray(res)


def steps_per_second(run: Callable, *args, n_steps: int, repeat: int = 5, runs: int = 1, **kwargs) -> float:
    """``runs * n_steps / median seconds`` of ``repeat`` calls ``run(*args, **kwargs)``.

    One untimed warm-up call first (it compiles JAX / Numba code).  Results are
    forced (``block_until_ready`` where present, then ``np.asarray``) inside the
    timed region.  For a batched runner pass ``runs=R`` to get run-steps/s.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    _force(run(*args, **kwargs))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _force(run(*args, **kwargs))
        times.append(time.perf_counter() - t0)
    return runs * n_steps / statistics.median(times)


def _timed_first_call(run: Callable, *args) -> float:
    t0 = time.perf_counter()
    _force(run(*args))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------
# check and report
# --------------------------------------------------------------------------


def _builders(batched: bool = False) -> dict[str, Callable]:
    if batched:
        return {"jax": jax_pgd_batched, "numba": numba_pgd_batched}
    return {"jax": jax_pgd, "numba": numba_pgd, "torch": torch_pgd}


def check(n_steps: int = 20_000, seed: int = 0, *, const: dict | None = None, verbose: bool = True) -> dict:
    """The saddle-escape check from ``x0 = (0, -1/eps)`` for every available
    framework; returns ``{(framework, mode): (x, info, F(x))}``.

    Modes:

    * ``"continue"``: PGD with ``const``, termination recorded, iterating on;
    * ``"freeze"``: Algorithm 2's return value with ``const``;
    * ``"gd"``: ``r = 0``, i.e. plain gradient descent (the zero "perturbations"
      are still counted);
    * ``"freeze-long"``: Algorithm 2 with :data:`ESCAPING` (``t_thres = 1000``,
      ``g_thres = 1e-5``), constants under which it does escape before its
      termination test fires and returns a point with ``F ~ 2.5e-10``.

    A row prints ``escaped`` when the final point is more than ``1`` away from the
    saddle (``at saddle`` when it is the saddle bit for bit), ``F`` at the final
    point and the smallest ``F`` met on the way (``min F``).
    """
    const = dict(REFERENCE if const is None else const)
    eps = const["eps"]
    x0 = saddle(eps)
    modes = (("continue", const, "continue"), ("freeze", const, "freeze"),
             ("gd", dict(const, r=0.0), "continue"), ("freeze-long", dict(const, t_thres=ESCAPING["t_thres"], g_thres=ESCAPING["g_thres"]), "freeze"))
    out = {}
    for name, build in _builders().items():
        for mode, kw, on_stop in modes:
            run = build(**kw, n_steps=n_steps, on_stop=on_stop)
            if run is None:
                continue
            x, info = run(x0, seed, info=True)
            fx = float(F(x, eps))
            out[(name, mode)] = (x, info, fx)
            if verbose:
                esc = "escaped" if np.linalg.norm(x - x0) > 1.0 else ("at saddle" if np.array_equal(x, x0) else "near saddle")
                print(f"  {name:6s} {mode:11s} x = ({x[0]: .6f}, {x[1]: .6f})  {esc:10s} F(x) = {fx:.2e}"
                      f"  min F = {info['f_min']:.2e}  stop_step = {info['stop_step']}"
                      f"  perturbations = {info['n_perturb']}")
    return out


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name, avail in (("jax", jax_available), ("torch", torch_available), ("numba", numba_available)):
        mod = avail()
        out[name] = getattr(mod, "__version__", "?") if mod is not None else "not installed"
    jax = jax_available()
    if jax is not None:
        import jaxlib

        out["jaxlib"] = jaxlib.__version__
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small step counts (seconds)")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    n_one, n_torch, R, n_batch, n_check = 1_000_000, 20_000, 1024, 10_000, 20_000
    if a.quick:
        n_one, n_torch, R, n_batch, n_check = 50_000, 2_000, 64, 2_000, 5_000
    print("versions:", _versions())
    c = dict(REFERENCE)
    x0 = saddle(c["eps"])
    print(f"constants: {c}, x0 = {x0.tolist()}, on_stop='continue'")
    print("first call = compile + one run (Numba compiles once per process, at its first call)")

    print("\none trajectory:")
    cases = [(f"jax {d}", functools.partial(jax_pgd, draw=d), n_one) for d in JAX_DRAWS]
    cases += [("numba", numba_pgd, n_one), ("torch", torch_pgd, n_torch)]
    for name, build, n in cases:
        run = build(**c, n_steps=n)
        if run is None:
            print(f"  {name:14s} not installed")
            continue
        first = _timed_first_call(run, x0, 0)
        sps = steps_per_second(run, x0, 0, n_steps=n, repeat=a.repeat)
        print(f"  {name:14s} {n:>9d} steps  {sps:14,.0f} steps/s  first call {first:6.2f} s")

    print(f"\nbatched, {R} runs x {n_batch} steps:")
    x0s = np.tile(x0, (R, 1))
    seeds = np.arange(R)
    cases = [(f"jax vmap {d}", functools.partial(jax_pgd_batched, draw=d)) for d in JAX_DRAWS]
    cases += [("numba prange", numba_pgd_batched)]
    for name, build in cases:
        run = build(**c, n_steps=n_batch)
        if run is None:
            print(f"  {name:18s} not installed")
            continue
        first = _timed_first_call(run, x0s, seeds)
        sps = steps_per_second(run, x0s, seeds, n_steps=n_batch, runs=R, repeat=a.repeat)
        print(f"  {name:18s} {sps:14,.0f} run-steps/s  first call {first:6.2f} s")

    print(f"\ncheck from the saddle, {n_check} steps:")
    check(n_check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
