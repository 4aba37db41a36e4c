"""Reference implementations of the residual-MLP objective in NumPy, PyTorch and JAX.

These are the comparison points for the ``resnet_core`` benchmarks.  Every
implementation computes the same float64 quantities on a *flat* parameter
vector and returns plain NumPy arrays, so results can be compared directly.

Model
-----
Data ``X`` (n, d), labels ``y`` (n,), uniform sample weights ``s = 1/n``.
An MLP with widths ``(h_1, ..., h_L)`` and tanh activations gives features
(rows = samples)::

    H_0 = X,   H_l = tanh(H_{l-1} W_l^T + b_l),   Phi = H_L   (n, k),  k = h_L

and the residual head, always in the re-associated form (``X + Phi V^T`` is
never formed)::

    p = X w + Phi (V^T w),      w (d,),  V (d, k)

Objective ``F = mean_i l(p_i; y_i)`` with

* ``"logistic"``: ``l(p; y) = log(1 + exp(-y p)) = logaddexp(0, -y p)``,
  ``y`` in {-1, +1} (the reference problem);
* ``"squared"``:  ``l(p; y) = (p - y)^2 / 2``.

Flat parameter layout (all blocks row-major)::

    x = [w (d), V (d*k), W_1 (h_1*d), b_1 (h_1), W_2 (h_2*h_1), b_2 (h_2), ...]

The *feature problem* freezes ``Phi`` (n, k) and optimises only
``z = [w (d), V (d*k)]`` with the same loss.

API
---
Every builder returns an :class:`Impl` (``name``, ``value_and_grad(x) ->
(float, ndarray)``, ``hessp(x, v) -> ndarray``, ``size``) or ``None`` when the
framework is not importable.

* Full problem: :func:`numpy_full` (optional ``chunk=`` rows per block),
  :func:`torch_full` (``mode="autograd"`` or ``"func"``), :func:`jax_full`; :func:`full_implementations` collects all
  available ones in a dict.
* Feature problem: :func:`numpy_feature`, :func:`torch_feature`,
  :func:`jax_feature`; :func:`feature_implementations`.
* Helpers: :class:`Layout`, :func:`make_data`, :func:`init_params`,
  :func:`features`, :func:`torch_available`, :func:`jax_available`.

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

__all__ = [
    "Impl",
    "Layout",
    "LOSSES",
    "make_data",
    "init_params",
    "features",
    "torch_available",
    "jax_available",
    "numpy_full",
    "torch_full",
    "jax_full",
    "numpy_feature",
    "torch_feature",
    "jax_feature",
    "full_implementations",
    "feature_implementations",
    "REFERENCE",
]

LOSSES = ("logistic", "squared")

#: The reference benchmark problem.
REFERENCE = dict(n=200_000, d=64, widths=(64, 64), loss="logistic")


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
        L = len(self.widths)
        return w, V, [get(f"W{l}") for l in range(1, L + 1)], [get(f"b{l}") for l in range(1, L + 1)]

    def pack(self, w, V, Ws=(), bs=()) -> np.ndarray:
        parts = [np.ravel(w), np.ravel(V)]
        for W, b in zip(Ws, bs):
            parts += [np.ravel(W), np.ravel(b)]
        x = np.concatenate(parts).astype(np.float64)
        if x.shape != (self.size,):
            raise ValueError("blocks do not match the layout")
        return x


def make_data(n: int, d: int, *, loss: str = "logistic", flip: float = 0.1, seed: int = 0):
    """Synthetic data: ``X ~ N(0, 1)`` (n, d) float64 C-contiguous.

    logistic: ``y = sign(X beta)`` with a fraction ``flip`` of labels flipped
    (values in {-1.0, +1.0}); squared: ``y = X beta / sqrt(d) + 0.1 noise``.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta = rng.standard_normal(d)
    t = X @ beta
    if loss == "logistic":
        y = np.where(t >= 0, 1.0, -1.0)
        y[rng.random(n) < flip] *= -1.0
    elif loss == "squared":
        y = t / np.sqrt(d) + 0.1 * rng.standard_normal(n)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return np.ascontiguousarray(X), np.ascontiguousarray(y)


def init_params(d: int, widths: Sequence[int], *, seed: int = 1) -> np.ndarray:
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


def _check_inputs(X, y):
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError("X must be (n, d) and y (n,)")
    return X, y


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def features(X, x, widths) -> np.ndarray:
    """Feature matrix ``Phi`` (n, k) of the MLP part of flat parameters ``x``."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    _, _, Ws, bs = Layout(X.shape[1], widths).unpack(np.asarray(x, dtype=np.float64))
    H = X
    for W, b in zip(Ws, bs):
        H = H @ W.T
        H += b
        np.tanh(H, out=H)
    return H


@dataclasses.dataclass
class Impl:
    """One implementation of one problem on a flat float64 parameter vector."""

    name: str
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    layout: Layout

    @property
    def size(self) -> int:
        return self.layout.size


# --------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------


def _try_import(name):
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install raising something else
        return None


@functools.lru_cache(maxsize=None)
def torch_available():
    """The ``torch`` module (threads set to ``os.cpu_count()``) or ``None``."""
    torch = _try_import("torch")
    if torch is None:
        return None
    try:
        import torch.func  # noqa: F401
    except Exception:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


@functools.lru_cache(maxsize=None)
def jax_available():
    """The ``jax`` module with float64 enabled, or ``None``."""
    jax = _try_import("jax")
    if jax is None:
        return None
    try:
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        if jnp.zeros(1).dtype != jnp.float64:
            return None
    except Exception:
        return None
    return jax


# --------------------------------------------------------------------------
# NumPy: hand-written backprop and forward-over-reverse HVP
# --------------------------------------------------------------------------


def _log_sigmoid(t):
    """log(sigmoid(t)) = -logaddexp(0, -t), stable for all t."""
    return -np.logaddexp(0.0, -t)


def _np_loss_derivs(loss, p, y, s, need2=False):
    """Return F, r = s*l'(p), and (optionally) c = s*l''(p)."""
    if loss == "logistic":
        m = y * p
        F = s * float(np.logaddexp(0.0, -m).sum())
        sig_neg = np.exp(_log_sigmoid(-m))  # sigmoid(-y p)
        r = (-s) * y * sig_neg
        if need2:
            c = s * sig_neg * np.exp(_log_sigmoid(m))  # sigma(m) sigma(-m), y^2 = 1
            return F, r, c
        return F, r, None
    e = p - y
    F = 0.5 * s * float(e @ e)
    r = s * e
    return F, r, (np.full_like(p, s) if need2 else None)


def _tanh_prime(H):
    """1 - H**2 for H = tanh(Z), with one temporary."""
    D = np.multiply(H, H)
    np.subtract(1.0, D, out=D)
    return D


def _row_blocks(n, chunk):
    if chunk is None or chunk >= n:
        return [slice(0, n)]
    if chunk < 1:
        raise ValueError("chunk must be a positive number of rows")
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def numpy_full(X, y, widths, *, loss: str = "logistic", chunk: int | None = None) -> Impl:
    """Hand-written NumPy value/gradient (backprop) and exact HVP
    (forward-over-reverse, tangents propagated by hand).  Not finite differences.

    ``chunk=None`` processes all n rows at once (name ``"numpy"``); an integer
    processes blocks of ``chunk`` rows and sums the contributions (name
    ``"numpy-chunked"``), which keeps the (chunk, width) temporaries in cache.
    """
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    n, d = X.shape
    lay = Layout(d, widths)
    s = 1.0 / n
    blocks = _row_blocks(n, chunk)

    def forward(Xc, w, V, Ws, bs):
        Hs = [Xc]
        for W, b in zip(Ws, bs):
            Z = Hs[-1] @ W.T
            Z += b
            np.tanh(Z, out=Z)
            Hs.append(Z)
        u = V.T @ w
        p = Xc @ w
        p += Hs[-1] @ u
        return Hs, u, p

    def vg_block(Xc, yc, w, V, Ws, bs):
        Hs, u, p = forward(Xc, w, V, Ws, bs)
        F, r, _ = _np_loss_derivs(loss, p, yc, s)
        g = Hs[-1].T @ r
        gw = Xc.T @ r  # + V g, added once at the end
        gWs, gbs = [None] * len(Ws), [None] * len(Ws)
        G = np.outer(r, u)  # dF/dH_L
        for l in range(len(Ws) - 1, -1, -1):
            G *= _tanh_prime(Hs[l + 1])  # dF/dZ_l
            gWs[l] = G.T @ Hs[l]
            gbs[l] = G.sum(axis=0)
            if l > 0:
                G = G @ Ws[l]
        return [F, g, gw, *gWs, *gbs]

    def hvp_block(Xc, yc, w, V, Ws, bs, dw, dV, dWs, dbs):
        Hs, u, p = forward(Xc, w, V, Ws, bs)
        _, r, c = _np_loss_derivs(loss, p, yc, s, need2=True)
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
        tp = Xc @ dw + tPhi @ u + Phi @ tu
        tr = c * tp
        # head: hw = X^T tr + dV g + V tg,  hV = dw g^T + w tg^T (finished at the end)
        g = Phi.T @ r
        tg = tPhi.T @ r + Phi.T @ tr
        xtr = Xc.T @ tr
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
        return [g, tg, xtr, *hWs, *hbs]

    def accumulate(fn, *args):
        acc = None
        for sl in blocks:
            part = fn(X[sl], y[sl], *args)
            if acc is None:
                acc = part
            else:
                for i, a in enumerate(part):
                    acc[i] = acc[i] + a
        return acc

    L = len(lay.widths)

    def value_and_grad(x):
        w, V, Ws, bs = lay.unpack(np.asarray(x, dtype=np.float64))
        F, g, gw, *rest = accumulate(vg_block, w, V, Ws, bs)
        gw = gw + V @ g
        return float(F), lay.pack(gw, np.outer(w, g), rest[:L], rest[L:])

    def hessp(x, v):
        w, V, Ws, bs = lay.unpack(np.asarray(x, dtype=np.float64))
        dw, dV, dWs, dbs = lay.unpack(np.asarray(v, dtype=np.float64))
        g, tg, xtr, *rest = accumulate(hvp_block, w, V, Ws, bs, dw, dV, dWs, dbs)
        hw = xtr + dV @ g + V @ tg
        hV = np.outer(dw, g) + np.outer(w, tg)
        return lay.pack(hw, hV, rest[:L], rest[L:])

    return Impl("numpy" if chunk is None else "numpy-chunked",
                value_and_grad, hessp, lay)


def numpy_feature(X, y, Phi, *, loss: str = "logistic") -> Impl:
    """Hand-written NumPy value/gradient/HVP of the fixed-feature problem
    ``z = [w, vec(V)]``:  ``dp = X dw + Phi (dV^T w + V^T dw)``,
    ``H_w = X^T(s l'' dp) + V Phi^T(s l'' dp) + dV g``,
    ``H_V = w (Phi^T(s l'' dp))^T + dw g^T``, ``g = Phi^T (s l')``."""
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    Phi = np.ascontiguousarray(Phi, dtype=np.float64)
    n, d = X.shape
    if Phi.ndim != 2 or Phi.shape[0] != n:
        raise ValueError("Phi must be (n, k)")
    lay = Layout.feature(d, Phi.shape[1])
    s = 1.0 / n

    def _pred(z):
        w, V, _, _ = lay.unpack(np.asarray(z, dtype=np.float64))
        p = X @ w
        p += Phi @ (V.T @ w)
        return w, V, p

    def value_and_grad(z):
        w, V, p = _pred(z)
        F, r, _ = _np_loss_derivs(loss, p, y, s)
        g = Phi.T @ r
        return F, lay.pack(X.T @ r + V @ g, np.outer(w, g))

    def hessp(z, v):
        w, V, p = _pred(z)
        dw, dV, _, _ = lay.unpack(np.asarray(v, dtype=np.float64))
        _, r, c = _np_loss_derivs(loss, p, y, s, need2=True)
        g = Phi.T @ r
        dp = X @ dw
        dp += Phi @ (dV.T @ w + V.T @ dw)
        q = c * dp
        Pq = Phi.T @ q
        hw = X.T @ q + V @ Pq + dV @ g
        hV = np.outer(w, Pq) + np.outer(dw, g)
        return lay.pack(hw, hV)

    return Impl("numpy", value_and_grad, hessp, lay)


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------


def _torch_objective(torch, Xt, yt, Phit, lay, loss):
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
        if loss == "logistic":
            return -F.logsigmoid(yt * p).mean()  # = mean logaddexp(0, -y p), stable
        e = p - yt
        return 0.5 * (e * e).mean()

    return f


def _torch_impl(torch, f, lay, mode, name):
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

    elif mode == "func":
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

    else:
        raise ValueError(f"unknown torch mode {mode!r}; expected 'autograd' or 'func'")
    return Impl(name, value_and_grad, hessp, lay)


def torch_full(X, y, widths, *, loss: str = "logistic", mode: str = "autograd") -> Impl | None:
    """PyTorch (eager, float64) full problem.  ``mode="autograd"``:
    ``torch.autograd.grad`` + double backward; ``mode="func"``:
    ``torch.func.grad_and_value`` and ``torch.func.jvp(grad(f))``.
    Returns ``None`` if torch is unavailable."""
    torch = torch_available()
    if torch is None:
        return None
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    lay = Layout(X.shape[1], widths)
    f = _torch_objective(torch, torch.from_numpy(X), torch.from_numpy(y), None, lay, loss)
    return _torch_impl(torch, f, lay, mode, f"torch-{mode}")


def torch_feature(X, y, Phi, *, loss: str = "logistic", mode: str = "autograd") -> Impl | None:
    """PyTorch fixed-feature problem (see :func:`torch_full` for ``mode``)."""
    torch = torch_available()
    if torch is None:
        return None
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    Phi = np.ascontiguousarray(Phi, dtype=np.float64)
    lay = Layout.feature(X.shape[1], Phi.shape[1])
    f = _torch_objective(
        torch, torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Phi), lay, loss
    )
    return _torch_impl(torch, f, lay, mode, f"torch-{mode}")


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


def _jax_objective(jax, lay, loss, fixed_phi):
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
        if loss == "logistic":
            return jnp.mean(jnp.logaddexp(0.0, -y * p))
        e = p - y
        return 0.5 * jnp.mean(e * e)

    return f


def _jax_impl(jax, f, lay, data, name):
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

    return Impl(name, value_and_grad, hessp, lay)


def jax_full(X, y, widths, *, loss: str = "logistic") -> Impl | None:
    """JAX full problem: ``jit(value_and_grad(f))`` and ``jit(jvp(grad(f)))``
    in float64 (enables ``jax_enable_x64``).  ``None`` if JAX is unavailable.
    The first call of each function compiles (use warm-up calls when timing)."""
    jax = jax_available()
    if jax is None:
        return None
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    lay = Layout(X.shape[1], widths)
    jnp = jax.numpy
    data = (jnp.asarray(X), jnp.asarray(y))
    return _jax_impl(jax, _jax_objective(jax, lay, loss, False), lay, data, "jax")


def jax_feature(X, y, Phi, *, loss: str = "logistic") -> Impl | None:
    """JAX fixed-feature problem (``jit(value_and_grad)``, ``jit(jvp(grad))``)."""
    jax = jax_available()
    if jax is None:
        return None
    _check_loss(loss)
    X, y = _check_inputs(X, y)
    Phi = np.ascontiguousarray(Phi, dtype=np.float64)
    lay = Layout.feature(X.shape[1], Phi.shape[1])
    jnp = jax.numpy
    data = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(Phi))
    return _jax_impl(jax, _jax_objective(jax, lay, loss, True), lay, data, "jax")


# --------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------


def full_implementations(X, y, widths, *, loss: str = "logistic") -> dict[str, Impl]:
    """All available full-problem implementations, keyed by name
    (``numpy``, ``torch-autograd``, ``torch-func``, ``jax``)."""
    impls = [
        numpy_full(X, y, widths, loss=loss),
        torch_full(X, y, widths, loss=loss, mode="autograd"),
        torch_full(X, y, widths, loss=loss, mode="func"),
        jax_full(X, y, widths, loss=loss),
    ]
    return {i.name: i for i in impls if i is not None}


def feature_implementations(X, y, Phi, *, loss: str = "logistic") -> dict[str, Impl]:
    """All available fixed-feature implementations, keyed by name."""
    impls = [
        numpy_feature(X, y, Phi, loss=loss),
        torch_feature(X, y, Phi, loss=loss, mode="autograd"),
        torch_feature(X, y, Phi, loss=loss, mode="func"),
        jax_feature(X, y, Phi, loss=loss),
    ]
    return {i.name: i for i in impls if i is not None}
