"""Perturbed gradient descent on Shamir's Example 1 in JAX, PyTorch and Numba.

Comparison points for the package's own optimisers (:func:`.compare.run_optimisers`).
Every implementation runs the same algorithm on the same float64 problem and returns
plain NumPy arrays.

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

Every implementation runs exactly ``n_steps`` loop iterations (no early exit: the JAX
loop cannot stop), so timings compare like with like.  The termination test is evaluated
every step and its *first* firing is recorded (``stop_step``); the iteration goes on.

Perturbation ``xi``: a normalised standard Gaussian pair times ``r sqrt(U)``
(uniform in the 2-d ball).  JAX draws it from ``jax.random`` with the key
``fold_in(key(seed), t)`` (counter based: the draw depends only on the seed and
the step, so batched and single runs agree), PyTorch from a ``torch.Generator``
seeded with ``seed``; Numba uses a counter-based splitmix64 hash of ``(seed,
t)`` and draws the angle directly (``(cos 2 pi U1, sin 2 pi U1)`` is exactly
the distribution of a normalised Gaussian pair in 2-d), which makes it thread
safe under ``prange`` and gives the single and batched Numba runs bit-identical
trajectories.  The random streams differ between frameworks, so trajectories
agree only in distribution.  (On CPU ``jax.random``'s threefry, a rolled loop, costs
more than the PGD arithmetic inside the ``fori_loop``; under ``vmap`` the ``lax.cond``
becomes a ``select`` and every run draws every step.)

API
---
Builders take ``(eps, eta, r, g_thres, f_thres, t_thres, n_steps)`` and return
``None`` when the framework is not importable, otherwise a callable:

* :func:`jax_pgd` -> ``run(x0, seed)``: ``jax.jit`` of a ``lax.fori_loop``;
  the perturbation branch is a ``lax.cond``.
* :func:`jax_pgd_batched` -> ``run(x0s (R, 2), seeds (R,))``: ``jax.vmap`` of
  the same per-run step inside one ``lax.fori_loop``.
* :func:`torch_pgd` -> ``run(x0, seed)``: eager float64 tensors, gradient by
  ``torch.autograd.grad``, a Python loop.
* :func:`numba_pgd` -> ``run(x0, seed)``: ``@numba.njit`` loop, gradient
  written out.
* :func:`numba_pgd_batched` -> ``run(x0s, seeds)``: ``@numba.njit(parallel=True)``
  with ``prange`` over runs.

``run(...)`` returns ``(x, stop_step)``: the final ``(w, v)`` (shape ``(2,)``, or
``(R, 2)`` when batched) as a float64 NumPy array, and the first step at which the
termination test fired (``-1``: never; an array when batched).  The first call compiles
(JAX, Numba).

Side effects: :func:`.frameworks.jax_available` (and so every JAX builder) calls
``jax.config.update("jax_enable_x64", True)``, process-wide.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# The same availability checks as the objective comparisons (float64 JAX, torch threads).
from .frameworks import try_import, jax_available, torch_available


def _constants(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """The constants as the compiled loops take them (floats, then two ints)."""
    return (float(eps), float(eta), float(r), float(g_thres), float(f_thres), int(t_thres),
            int(n_steps))


@functools.lru_cache(maxsize=None)
def numba_available():
    """The ``numba`` module, or ``None``."""
    return try_import("numba")


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


def _jax_step(eps, eta, r, g_thres, f_thres, t_thres):
    """The per-run PGD step ``step(t, carry, key) -> carry`` (not batched) and
    ``init(x0) -> carry``; the perturbation at step ``t``: ``k = fold_in(key, t)``,
    ``split``, ``normal(k1, (2,))`` normalised, radius ``r sqrt(uniform(k2))``."""
    jax = jax_available()
    import jax.numpy as jnp
    from jax import lax

    c = 1.0 / eps

    def objective(x):
        q = x[0] * (eps * (x[1] + c)) - 1.0
        return 0.5 * q * q

    value_and_grad = jax.value_and_grad(objective)

    def step(t, carry, key):
        x, x_tilde, f_tilde, t_noise, stop_t = carry
        f, g = value_and_grad(x)
        perturb = (jnp.sqrt(g @ g) <= g_thres) & (t - t_noise > t_thres)

        def do_perturb(ops):
            x, x_tilde, f_tilde, t_noise, f, g = ops
            k_dir, k_rad = jax.random.split(jax.random.fold_in(key, t))
            z = jax.random.normal(k_dir, (2,), dtype=jnp.float64)
            u = jax.random.uniform(k_rad, (), dtype=jnp.float64)
            x_new = x + z / jnp.sqrt(z @ z) * (r * jnp.sqrt(u))
            f_new, g_new = value_and_grad(x_new)
            return x_new, x, f, t.astype(t_noise.dtype), f_new, g_new

        ops = (x, x_tilde, f_tilde, t_noise, f, g)
        x, x_tilde, f_tilde, t_noise, f, g = lax.cond(perturb, do_perturb, lambda o: o, ops)
        stop_now = (t - t_noise == t_thres) & (f - f_tilde > -f_thres) & (stop_t < 0)
        stop_t = jnp.where(stop_now, t.astype(stop_t.dtype), stop_t)
        return x - eta * g, x_tilde, f_tilde, t_noise, stop_t

    def init(x0):
        i64 = jnp.int64
        return (x0, x0, objective(x0), jnp.asarray(-t_thres - 1, i64), jnp.asarray(-1, i64))

    return step, init


def _jax_parts(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """``(jax, jax.numpy, jax.lax, step, init, n_steps)`` for the builders below (``step``
    and ``init`` of :func:`_jax_step`), or ``None`` without JAX."""
    jax = jax_available()
    if jax is None:
        return None
    import jax.numpy as jnp
    from jax import lax

    *k, n_steps = _constants(eps, eta, r, g_thres, f_thres, t_thres, n_steps)
    step, init = _jax_step(*k)
    return jax, jnp, lax, step, init, n_steps


def jax_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """One trajectory: ``jax.jit`` of ``lax.fori_loop(0, n_steps, ...)``, float64,
    gradient by ``jax.value_and_grad``, the perturbation in a ``lax.cond``.

    Returns ``run(x0, seed)`` or ``None`` without JAX.  The first call compiles (a fixed
    ``n_steps`` per builder; ``x0`` and ``seed`` are traced, so new starts and seeds do
    not recompile).
    """
    parts = _jax_parts(eps, eta, r, g_thres, f_thres, t_thres, n_steps)
    if parts is None:
        return None
    jax, jnp, lax, step, init, n_steps = parts

    @jax.jit
    def _run(x0, seed):
        key = jax.random.key(seed)
        return lax.fori_loop(0, n_steps, lambda t, c: step(t, c, key), init(x0))

    def run(x0, seed):
        x, _, _, _, stop_t = _run(jnp.asarray(x0, dtype=jnp.float64),
                                  jnp.asarray(int(seed), jnp.int64))
        return np.asarray(x), int(stop_t)

    return run


def jax_pgd_batched(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """``R`` independent trajectories: ``jax.vmap`` of the per-run step of
    :func:`jax_pgd` inside one ``lax.fori_loop``, all under ``jax.jit``; run ``i`` uses
    ``seeds[i]`` exactly as :func:`jax_pgd` would.

    Returns ``run(x0s (R, 2), seeds (R,))`` or ``None`` without JAX.  Compiles once per
    batch size ``R``.
    """
    parts = _jax_parts(eps, eta, r, g_thres, f_thres, t_thres, n_steps)
    if parts is None:
        return None
    jax, jnp, lax, step, init, n_steps = parts
    vstep = jax.vmap(step, in_axes=(None, 0, 0))

    @jax.jit
    def _run(x0s, seeds):
        keys = jax.vmap(jax.random.key)(seeds)
        return lax.fori_loop(0, n_steps, lambda t, c: vstep(t, c, keys), jax.vmap(init)(x0s))

    def run(x0s, seeds):
        x, _, _, _, stop_t = _run(jnp.asarray(x0s, dtype=jnp.float64),
                                  jnp.asarray(seeds, dtype=jnp.int64))
        return np.asarray(x), np.asarray(stop_t)

    return run


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------


def torch_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """One trajectory in PyTorch eager mode: float64 tensors, ``torch.autograd.grad``
    for the gradient, a Python ``for`` loop (a host sync per step for ``||g||``).  Random
    numbers from a ``torch.Generator`` seeded with ``seed``.

    Returns ``run(x0, seed)`` or ``None`` without PyTorch.
    """
    torch = torch_available()
    if torch is None:
        return None
    eps, eta, r, g_thres, f_thres, t_thres, n_steps = _constants(
        eps, eta, r, g_thres, f_thres, t_thres, n_steps)
    f64 = torch.float64
    c = 1.0 / eps

    def objective(x):
        w, v = x.unbind()
        return (w * (eps * (v + c)) - 1.0) ** 2 / 2.0

    def value_and_grad(x):
        f = objective(x)
        (g,) = torch.autograd.grad(f, x)
        return f.detach(), g

    def run(x0, seed):
        gen = torch.Generator().manual_seed(int(seed))
        x = torch.tensor(np.asarray(x0, dtype=np.float64), dtype=f64, requires_grad=True)
        x_tilde = x.detach().clone()
        f_tilde = float(objective(x_tilde))
        t_noise, stop_t = -t_thres - 1, -1
        for t in range(n_steps):
            f, g = value_and_grad(x)
            if float(torch.linalg.vector_norm(g)) <= g_thres and t - t_noise > t_thres:
                x_tilde, f_tilde, t_noise = x.detach().clone(), float(f), t
                z = torch.randn(2, generator=gen, dtype=f64)
                u = torch.rand((), generator=gen, dtype=f64)
                xi = z * (r * torch.sqrt(u) / torch.linalg.vector_norm(z))
                x = (x_tilde + xi).requires_grad_()
                f, g = value_and_grad(x)
            if t - t_noise == t_thres and float(f) - f_tilde > -f_thres and stop_t < 0:
                stop_t = t
            with torch.no_grad():
                x = x - eta * g
            x.requires_grad_()
        return x.detach().numpy().copy(), stop_t

    return run


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
    def pgd_one(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps):
        c = 1.0 / eps
        t_noise = -t_thres - 1
        q = w * (eps * (v + c)) - 1.0
        f_t = 0.5 * q * q
        stop_t = -1
        for t in range(n_steps):
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
            if t - t_noise == t_thres and f - f_t > -f_thres and stop_t < 0:
                stop_t = t
            w -= eta * gw
            v -= eta * gv
        return w, v, stop_t

    @njit
    def single(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps):
        return pgd_one(w, v, seed, eps, eta, r, g_thres, f_thres, t_thres, n_steps)

    @njit(parallel=True)
    def batched(x0s, seeds, eps, eta, r, g_thres, f_thres, t_thres, n_steps):
        R = x0s.shape[0]
        x = np.empty((R, 2))
        stop_t = np.empty(R, np.int64)
        for i in prange(R):
            w, v, st = pgd_one(x0s[i, 0], x0s[i, 1], seeds[i], eps, eta, r, g_thres, f_thres,
                               t_thres, n_steps)
            x[i, 0], x[i, 1], stop_t[i] = w, v, st
        return x, stop_t

    return single, batched


def numba_pgd(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """One trajectory: a hand-written ``@numba.njit`` loop with the gradient written
    out (the upper reference).  Returns ``run(x0, seed)`` or ``None`` without numba.
    The first call compiles (once per process, shared by all constants)."""
    kernels = _numba_kernels()
    if kernels is None:
        return None
    k = _constants(eps, eta, r, g_thres, f_thres, t_thres, n_steps)

    def run(x0, seed):
        w, v, stop_t = kernels[0](float(x0[0]), float(x0[1]), np.int64(seed), *k)
        return np.array([w, v]), int(stop_t)

    return run


def numba_pgd_batched(eps, eta, r, g_thres, f_thres, t_thres, n_steps):
    """``R`` trajectories: ``@numba.njit(parallel=True)`` with ``prange`` over runs
    (each run is the :func:`numba_pgd` loop; same seed -> bit-identical trajectory).
    Returns ``run(x0s (R, 2), seeds (R,))`` or ``None`` without numba."""
    kernels = _numba_kernels()
    if kernels is None:
        return None
    k = _constants(eps, eta, r, g_thres, f_thres, t_thres, n_steps)

    def run(x0s, seeds):
        return kernels[1](np.ascontiguousarray(x0s, dtype=np.float64),
                          np.asarray(seeds, dtype=np.int64), *k)

    return run


# -- gradient descent on a FeatureObjective's residual head, written for the problem ---------

def _numba_feature_kernels():
    """Compile-on-first-call hand-written GD loops on ``p = x.w + phi.(V^T w)`` (residual
    head, unit weights ``1/n``): ``(samples, moments)``.  ``samples(X, Phi, y, logistic,
    z, eta, n_steps)`` evaluates the loss on every sample each step; ``moments(M, b, c, d,
    z, eta, n_steps)`` the squared loss from ``M = Z^T Z / n``, ``b = Z^T y / n``."""
    numba = numba_available()
    if numba is None:
        return None
    njit = numba.njit

    @njit(error_model="numpy")
    def step(z, grad, g_w, g_phi, d, k, eta, F):
        """The gradient ``[g_w + V g_phi, vec(w g_phi^T)]`` into ``grad`` (``g_w`` may be
        ``grad[:d]`` itself), then ``z -= eta grad``; False (``z`` unchanged) when ``F`` or
        the gradient is not finite."""
        g2 = 0.0
        for j in range(d):
            acc = g_w[j]
            for m in range(k):
                acc += z[d + j * k + m] * g_phi[m]
                gv = z[j] * g_phi[m]
                grad[d + j * k + m] = gv
                g2 += gv * gv
            grad[j] = acc
            g2 += acc * acc
        if not math.isfinite(F + g2):
            return False
        for j in range(z.size):
            z[j] -= eta * grad[j]
        return True

    @njit(error_model="numpy")
    def samples(X, Phi, y, logistic, z, eta, n_steps):
        n, d = X.shape
        k = Phi.shape[1]
        a = np.empty(k)
        g = np.empty(k)
        grad = np.empty(z.size)
        F = 0.0
        for _ in range(n_steps):
            for m in range(k):
                acc = 0.0
                for j in range(d):
                    acc += z[d + j * k + m] * z[j]
                a[m] = acc
                g[m] = 0.0
            grad[:d] = 0.0
            F = 0.0
            for i in range(n):
                p = 0.0
                for j in range(d):
                    p += X[i, j] * z[j]
                for m in range(k):
                    p += Phi[i, m] * a[m]
                if logistic:
                    u = y[i] * p
                    e = math.exp(-abs(u))
                    if u >= 0:
                        F += math.log1p(e)
                        r = -y[i] * e / (1.0 + e)
                    else:
                        F += -u + math.log1p(e)
                        r = -y[i] / (1.0 + e)
                else:
                    F += 0.5 * (p - y[i]) ** 2
                    r = p - y[i]
                r /= n
                for j in range(d):
                    grad[j] += r * X[i, j]
                for m in range(k):
                    g[m] += r * Phi[i, m]
            F /= n
            if not step(z, grad, grad[:d], g, d, k, eta, F):
                break
        return F

    @njit(error_model="numpy")
    def moments(M, b, c, d, z, eta, n_steps):
        D = M.shape[0]
        k = D - d
        s = np.empty(D)
        u = np.empty(D)
        grad = np.empty(z.size)
        F = 0.0
        for _ in range(n_steps):
            for j in range(d):
                s[j] = z[j]
            for m in range(k):
                acc = 0.0
                for j in range(d):
                    acc += z[d + j * k + m] * z[j]
                s[d + m] = acc
            F2 = 0.0
            for i in range(D):
                acc = -b[i]
                for j in range(D):
                    acc += M[i, j] * s[j]
                u[i] = acc
                F2 += s[i] * (acc - b[i])
            F = 0.5 * F2 + c
            if not step(z, grad, u[:d], u[d:], d, k, eta, F):
                break
        return F

    return samples, moments


def numba_gd_features(X, Phi, y, loss, eta, n_steps, moments=False):
    """Hand-written GD on a FeatureObjective's residual head with uniform weights
    (``loss`` ``"squared"`` or ``"logistic"``; ``moments=True``: the squared loss from
    second moments, computed here once).  Returns ``run(z0) -> (z, F)`` or ``None`` without
    numba; the first call compiles."""
    kernels = _numba_feature_kernels()
    if kernels is None:
        return None
    X, Phi, y = (np.ascontiguousarray(a, dtype=np.float64) for a in (X, Phi, y))
    if moments:
        if loss != "squared":
            raise ValueError("moments need the squared loss")
        Z = np.hstack([X, Phi])
        M, b, c = Z.T @ Z / len(y), Z.T @ y / len(y), 0.5 * float(y @ y) / len(y)

        def run(z0):
            z = np.array(z0, dtype=np.float64)
            return z, kernels[1](M, b, c, X.shape[1], z, float(eta), int(n_steps))
    else:
        def run(z0):
            z = np.array(z0, dtype=np.float64)
            return z, kernels[0](X, Phi, y, loss == "logistic", z, float(eta), int(n_steps))

    return run
