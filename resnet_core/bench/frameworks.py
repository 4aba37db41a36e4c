"""Reference implementations of the residual-MLP objective in NumPy, PyTorch and JAX.

These are the comparison points of :mod:`.compare`.  Every implementation computes the
same float64 quantities on a *flat* parameter vector and returns plain NumPy arrays, so
results can be compared directly.

Model
-----
Data ``X`` (n, d), labels ``y`` (n,), uniform sample weights ``s = 1/n``.
An MLP with widths ``(h_1, ..., h_L)`` and tanh activations gives features
(rows = samples)::

    H_0 = X,   H_l = tanh(H_{l-1} W_l^T + b_l),   Phi = H_L   (n, k),  k = h_L

and the residual head, always in the re-associated form (``X + Phi V^T`` is
never formed)::

    p = X w + Phi (V^T w),      w (d,),  V (d, k)

Objective ``F = mean_i l(p_i; y_i)`` with the logistic loss
``l(p; y) = log(1 + exp(-y p)) = logaddexp(0, -y p)``, ``y`` in {-1, +1} (the reference
problem).

Flat parameter layout (all blocks row-major)::

    x = [w (d), V (d*k), W_1 (h_1*d), b_1 (h_1), W_2 (h_2*h_1), b_2 (h_2), ...]

The *feature problem* freezes ``Phi`` (n, k) and optimises only
``z = [w (d), V (d*k)]`` with the same loss.

API
---
Every builder returns an :class:`Impl` (``name``, ``value_and_grad(x) ->
(float, ndarray)``, ``hessp(x, v) -> ndarray``) or ``None`` when the framework is not
importable.

* :func:`numpy_full`, :func:`numpy_feature` (the two problems' derivatives written by
  hand), :func:`torch_implementation` (``mode="autograd"`` or ``"func"``),
  :func:`jax_implementation` (either problem: ``widths=`` or ``Phi=``);
  :func:`implementations` collects all available ones in a dict.
* Helpers: :class:`Layout`, :func:`make_data`, :func:`init_params`,
  :func:`torch_available`, :func:`jax_available`.

Side effects: building a torch implementation calls
``torch.set_num_threads(os.cpu_count())``; building a JAX implementation calls
``jax.config.update("jax_enable_x64", True)`` (process-wide).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from typing import Callable, Sequence

import numpy as np


# --------------------------------------------------------------------------
# layout, data, parameters
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """Offsets of the blocks of the flat parameter vector.

    ``Layout(d, widths)`` describes the full problem; ``Layout(d, (k,),
    head_only=True)`` (see :meth:`feature`) describes ``z = [w, vec(V)]``.
    """

    d: int
    widths: tuple[int, ...]
    head_only: bool = False

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(h) for h in self.widths))
        if self.d < 1 or not self.widths or min(self.widths) < 1:
            raise ValueError("need d >= 1 and at least one positive width")

    @classmethod
    def feature(cls, d: int, k: int) -> "Layout":
        return cls(d, (k,), head_only=True)

    @property
    def k(self) -> int:
        return self.widths[-1]

    @property
    def blocks(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(name, shape), ...]`` in flat order."""
        out = [("w", (self.d,)), ("V", (self.d, self.k))]
        if not self.head_only:
            fan_in = self.d
            for l, h in enumerate(self.widths, start=1):
                out.append((f"W{l}", (h, fan_in)))
                out.append((f"b{l}", (h,)))
                fan_in = h
        return out

    @property
    def slices(self) -> dict[str, tuple[slice, tuple[int, ...]]]:
        out, o = {}, 0
        for name, shape in self.blocks:
            size = int(np.prod(shape))
            out[name] = (slice(o, o + size), shape)
            o += size
        return out

    @property
    def size(self) -> int:
        return sum(int(np.prod(s)) for _, s in self.blocks)

    def unpack(self, x) -> tuple:
        """Split a flat vector (NumPy / torch / jax) into reshaped views:
        ``(w, V, [W_1, ..., W_L], [b_1, ..., b_L])``."""
        if x.shape != (self.size,):
            raise ValueError(f"expected flat vector of size {self.size}, got shape {x.shape}")
        sl = self.slices
        get = lambda name: x[sl[name][0]].reshape(sl[name][1])  # noqa: E731
        w, V = get("w"), get("V")
        if self.head_only:
            return w, V, [], []
        layers = range(1, len(self.widths) + 1)
        return w, V, [get(f"W{l}") for l in layers], [get(f"b{l}") for l in layers]

    def pack(self, w, V, Ws=(), bs=()) -> np.ndarray:
        parts = [np.ravel(w), np.ravel(V)]
        for W, b in zip(Ws, bs):
            parts += [np.ravel(W), np.ravel(b)]
        x = np.concatenate(parts).astype(np.float64)
        if x.shape != (self.size,):
            raise ValueError("blocks do not match the layout")
        return x


def make_data(n: int, d: int, *, seed: int):
    """Synthetic data: ``X ~ N(0, 1)`` (n, d) float64 C-contiguous, ``y = sign(X beta)``
    (values in {-1.0, +1.0}) with 10% of the labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X @ rng.standard_normal(d) >= 0, 1.0, -1.0)
    y[rng.random(n) < 0.1] *= -1.0
    return X, y


def init_params(d: int, widths: Sequence[int], *, seed: int) -> np.ndarray:
    """Seeded normal parameters, each block scaled by ``1/sqrt(fan_in)``.

    fan_in is ``d`` for ``w`` and ``V`` (both enter through ``w`` / ``V^T w``
    against d-dimensional inputs) and the input width of the layer for
    ``W_l`` and ``b_l``.
    """
    lay = Layout(d, widths)
    rng = np.random.default_rng(seed)
    parts = []
    fan = {"w": d, "V": d}
    fan_in = d
    for l, h in enumerate(lay.widths, start=1):
        fan[f"W{l}"] = fan[f"b{l}"] = fan_in
        fan_in = h
    for name, shape in lay.blocks:
        parts.append(rng.standard_normal(shape).ravel() / np.sqrt(fan[name]))
    return np.concatenate(parts)


def _problem(X, y, widths=None, Phi=None):
    """``(X, y, Phi, layout)`` in C-contiguous float64: the full problem (``widths``) or the
    fixed-feature problem (``Phi``; ``None`` for the full one)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError("X must be (n, d) and y (n,)")
    if Phi is None:
        return X, y, None, Layout(X.shape[1], widths)
    Phi = np.ascontiguousarray(Phi, dtype=np.float64)
    if Phi.ndim != 2 or Phi.shape[0] != X.shape[0]:
        raise ValueError("Phi must be (n, k)")
    return X, y, Phi, Layout.feature(X.shape[1], Phi.shape[1])


@dataclasses.dataclass
class Impl:
    """One implementation of one problem on a flat float64 parameter vector."""

    name: str
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------


def try_import(name):
    """The module ``name``, or ``None`` when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install raising something else
        return None


@functools.lru_cache(maxsize=None)
def torch_available():
    """The ``torch`` module (threads set to ``os.cpu_count()``) or ``None``."""
    torch = try_import("torch")
    if torch is None or try_import("torch.func") is None:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


@functools.lru_cache(maxsize=None)
def jax_available():
    """The ``jax`` module with float64 enabled, or ``None``."""
    jax = try_import("jax")
    if jax is None:
        return None
    try:
        jax.config.update("jax_enable_x64", True)
        return jax if jax.numpy.zeros(1).dtype == jax.numpy.float64 else None
    except Exception:  # a broken install
        return None


# --------------------------------------------------------------------------
# NumPy: hand-written backprop and forward-over-reverse HVP
# --------------------------------------------------------------------------


def _log_sigmoid(t):
    """log(sigmoid(t)) = -logaddexp(0, -t), stable for all t."""
    return -np.logaddexp(0.0, -t)


def _np_loss_derivs(p, y, s, need2=False):
    """Return F, r = s*l'(p), and (optionally) c = s*l''(p) of the logistic loss."""
    m = y * p
    F = s * float(np.logaddexp(0.0, -m).sum())
    sig_neg = np.exp(_log_sigmoid(-m))  # sigmoid(-y p)
    r = (-s) * y * sig_neg
    if need2:
        c = s * sig_neg * np.exp(_log_sigmoid(m))  # sigma(m) sigma(-m), y^2 = 1
        return F, r, c
    return F, r, None


def _tanh_prime(H):
    """1 - H**2 for H = tanh(Z), with one temporary."""
    D = np.multiply(H, H)
    np.subtract(1.0, D, out=D)
    return D


def numpy_full(X, y, widths) -> Impl:
    """Hand-written NumPy value/gradient (backprop) and exact HVP
    (forward-over-reverse, tangents propagated by hand).  Not finite differences."""
    X, y, _, lay = _problem(X, y, widths)
    s = 1.0 / X.shape[0]

    def forward(w, V, Ws, bs):
        Hs = [X]
        for W, b in zip(Ws, bs):
            Z = Hs[-1] @ W.T
            Z += b
            np.tanh(Z, out=Z)
            Hs.append(Z)
        u = V.T @ w
        p = X @ w
        p += Hs[-1] @ u
        return Hs, u, p

    def value_and_grad(x):
        w, V, Ws, bs = lay.unpack(np.asarray(x, dtype=np.float64))
        Hs, u, p = forward(w, V, Ws, bs)
        F, r, _ = _np_loss_derivs(p, y, s)
        g = Hs[-1].T @ r
        gw = X.T @ r + V @ g
        gWs, gbs = [None] * len(Ws), [None] * len(Ws)
        G = np.outer(r, u)  # dF/dH_L
        for l in range(len(Ws) - 1, -1, -1):
            G *= _tanh_prime(Hs[l + 1])  # dF/dZ_l
            gWs[l] = G.T @ Hs[l]
            gbs[l] = G.sum(axis=0)
            if l > 0:
                G = G @ Ws[l]
        return float(F), lay.pack(gw, np.outer(w, g), gWs, gbs)

    def hessp(x, v):
        w, V, Ws, bs = lay.unpack(np.asarray(x, dtype=np.float64))
        dw, dV, dWs, dbs = lay.unpack(np.asarray(v, dtype=np.float64))
        Hs, u, p = forward(w, V, Ws, bs)
        _, r, c = _np_loss_derivs(p, y, s, need2=True)
        L = len(Ws)
        # forward tangents tH_l (tH_0 = 0)
        tHs, Ds = [None], [None]
        for l in range(L):
            tZ = Hs[l] @ dWs[l].T
            tZ += dbs[l]
            if l > 0:
                tZ += tHs[l] @ Ws[l].T
            Ds.append(_tanh_prime(Hs[l + 1]))
            tZ *= Ds[-1]
            tHs.append(tZ)
        Phi, tPhi = Hs[-1], tHs[-1]
        tu = dV.T @ w + V.T @ dw
        tp = X @ dw + tPhi @ u + Phi @ tu
        tr = c * tp
        # head: hw = X^T tr + dV g + V tg,  hV = dw g^T + w tg^T
        g = Phi.T @ r
        tg = tPhi.T @ r + Phi.T @ tr
        hw = X.T @ tr + dV @ g + V @ tg
        hV = np.outer(dw, g) + np.outer(w, tg)
        # reverse pass with tangents
        hWs, hbs = [None] * L, [None] * L
        G = np.outer(r, u)
        tG = np.outer(tr, u) + np.outer(r, tu)
        for l in range(L - 1, -1, -1):
            # d(G * D) = tG * D + G * tD,  tD = -2 H tH
            tmp = G * Hs[l + 1]
            tmp *= tHs[l + 1]
            tmp *= 2.0
            tG *= Ds[l + 1]
            tG -= tmp
            del tmp
            G *= Ds[l + 1]
            hWs[l] = tG.T @ Hs[l]
            if l > 0:
                hWs[l] += G.T @ tHs[l]
            hbs[l] = tG.sum(axis=0)
            if l > 0:
                tG = tG @ Ws[l] + G @ dWs[l]
                G = G @ Ws[l]
        return lay.pack(hw, hV, hWs, hbs)

    return Impl("numpy", value_and_grad, hessp)


def numpy_feature(X, y, Phi) -> Impl:
    """Hand-written NumPy value/gradient/HVP of the fixed-feature problem
    ``z = [w, vec(V)]``:  ``dp = X dw + Phi (dV^T w + V^T dw)``,
    ``H_w = X^T(s l'' dp) + V Phi^T(s l'' dp) + dV g``,
    ``H_V = w (Phi^T(s l'' dp))^T + dw g^T``, ``g = Phi^T (s l')``."""
    X, y, Phi, lay = _problem(X, y, Phi=Phi)
    s = 1.0 / X.shape[0]

    def _pred(z):
        w, V, _, _ = lay.unpack(np.asarray(z, dtype=np.float64))
        p = X @ w
        p += Phi @ (V.T @ w)
        return w, V, p

    def value_and_grad(z):
        w, V, p = _pred(z)
        F, r, _ = _np_loss_derivs(p, y, s)
        g = Phi.T @ r
        return F, lay.pack(X.T @ r + V @ g, np.outer(w, g))

    def hessp(z, v):
        w, V, p = _pred(z)
        dw, dV, _, _ = lay.unpack(np.asarray(v, dtype=np.float64))
        _, r, c = _np_loss_derivs(p, y, s, need2=True)
        g = Phi.T @ r
        dp = X @ dw
        dp += Phi @ (dV.T @ w + V.T @ dw)
        q = c * dp
        Pq = Phi.T @ q
        hw = X.T @ q + V @ Pq + dV @ g
        hV = np.outer(w, Pq) + np.outer(dw, g)
        return lay.pack(hw, hV)

    return Impl("numpy", value_and_grad, hessp)


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------


def _torch_objective(torch, Xt, yt, Phit, lay):
    """Pure function flat-tensor -> scalar tensor (usable by autograd and torch.func)."""
    F = torch.nn.functional

    def f(x):
        w, V, Ws, bs = lay.unpack(x)
        if Phit is None:
            H = Xt
            for W, b in zip(Ws, bs):
                H = torch.tanh(torch.addmm(b, H, W.T))
            Phi = H
        else:
            Phi = Phit
        p = Xt @ w + Phi @ (V.T @ w)
        return -F.logsigmoid(yt * p).mean()  # = mean logaddexp(0, -y p), stable

    return f


def _torch_impl(torch, f, mode):
    def as_t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))

    if mode == "autograd":

        def value_and_grad(x):
            xt = as_t(x).requires_grad_(True)
            val = f(xt)
            (g,) = torch.autograd.grad(val, xt)
            return float(val.detach()), g.numpy()

        def hessp(x, v):
            xt = as_t(x).requires_grad_(True)
            (g,) = torch.autograd.grad(f(xt), xt, create_graph=True)
            # d/dx (g . v) == H v; grad_outputs=v is the same double backward
            (hv,) = torch.autograd.grad(g, xt, grad_outputs=as_t(v))
            return hv.numpy()

    else:  # "func"
        tf = torch.func
        gv = tf.grad_and_value(f)
        gf = tf.grad(f)

        def value_and_grad(x):
            with torch.no_grad():
                g, val = gv(as_t(x))
            return float(val), g.numpy()

        def hessp(x, v):
            with torch.no_grad():
                _, hv = tf.jvp(gf, (as_t(x),), (as_t(v),))
            return hv.numpy()

    return Impl(f"torch-{mode}", value_and_grad, hessp)


def torch_implementation(X, y, *, mode: str, widths=None, Phi=None) -> Impl | None:
    """PyTorch (eager, float64), the full problem (``widths``) or the fixed-feature problem
    (``Phi``).  ``mode="autograd"``: ``torch.autograd.grad`` + double backward;
    ``mode="func"``: ``torch.func.grad_and_value`` and ``torch.func.jvp(grad(f))``.
    Returns ``None`` if torch is unavailable."""
    torch = torch_available()
    if torch is None:
        return None
    X, y, Phi, lay = _problem(X, y, widths, Phi)
    Xt, yt, Phit = (None if a is None else torch.from_numpy(a) for a in (X, y, Phi))
    return _torch_impl(torch, _torch_objective(torch, Xt, yt, Phit, lay), mode)


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


def _jax_objective(jax, lay, fixed_phi):
    """f(x, X, y[, Phi]) -> scalar.  Data are *arguments* (not closed-over
    constants) so XLA does not embed the n x d matrix in the compiled program."""
    jnp = jax.numpy

    def f(x, X, y, Phi=None):
        w, V, Ws, bs = lay.unpack(x)
        if not fixed_phi:
            H = X
            for W, b in zip(Ws, bs):
                H = jnp.tanh(H @ W.T + b)
            Phi = H
        p = X @ w + Phi @ (V.T @ w)
        return jnp.mean(jnp.logaddexp(0.0, -y * p))

    return f


def _jax_impl(jax, f, data):
    jnp = jax.numpy
    vg = jax.jit(jax.value_and_grad(f))

    @jax.jit
    def hvp(x, v, *data):
        return jax.jvp(lambda x_: jax.grad(f)(x_, *data), (x,), (v,))[1]

    def value_and_grad(x):
        val, g = vg(jnp.asarray(x, dtype=jnp.float64), *data)
        return float(val), np.asarray(g, dtype=np.float64)

    def hessp(x, v):
        hv = hvp(jnp.asarray(x, dtype=jnp.float64), jnp.asarray(v, dtype=jnp.float64), *data)
        return np.asarray(hv, dtype=np.float64)

    return Impl("jax", value_and_grad, hessp)


def jax_implementation(X, y, *, widths=None, Phi=None) -> Impl | None:
    """JAX, the full problem (``widths``) or the fixed-feature problem (``Phi``):
    ``jit(value_and_grad(f))`` and ``jit(jvp(grad(f)))`` in float64 (enables
    ``jax_enable_x64``).  ``None`` if JAX is unavailable.  The first call of each function
    compiles (use warm-up calls when timing)."""
    jax = jax_available()
    if jax is None:
        return None
    X, y, Phi, lay = _problem(X, y, widths, Phi)
    data = tuple(jax.numpy.asarray(a) for a in (X, y, Phi) if a is not None)
    return _jax_impl(jax, _jax_objective(jax, lay, Phi is not None), data)


# --------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------


def implementations(X, y, *, widths=None, Phi=None) -> dict[str, Impl]:
    """All available implementations of the full problem (``widths``) or of the
    fixed-feature problem (``Phi``), keyed by name (``numpy``, ``torch-autograd``,
    ``torch-func``, ``jax``)."""
    problem = dict(widths=widths, Phi=Phi)
    impls = (numpy_full(X, y, widths) if Phi is None else numpy_feature(X, y, Phi),
             torch_implementation(X, y, mode="autograd", **problem),
             torch_implementation(X, y, mode="func", **problem),
             jax_implementation(X, y, **problem))
    return {i.name: i for i in impls if i is not None}
