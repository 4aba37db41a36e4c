"""Row blocks of the ``c``-output linear baseline's data (:mod:`resnet_core.linear_vector`),
wherever they live, and the per-block passes of its losses.

A *rows* object folds a block function ``fn(i0, Xb, tb, sb)`` (``Xb`` float64 rows from
``i0``, ``tb`` their labels (ints) or targets (float64, c columns), ``sb`` their float64
normalised weights) over the data, adding the blocks' parts in row order:

- :class:`MemoryRows`: NumPy arrays (or a memmap, read block by block) on the client;
- :class:`EngineRows`: an engine's :meth:`~resnet_core._engine.Engine.map_rows` (dask: one
  task per row chunk, where it lives, each folding its own sub-blocks of the same size
  first, so the client receives one part per task; out-of-core: the same blocks as in
  memory, read one at a time): no n-sized array on the client.

The block functions are module-level (picklable with :func:`functools.partial`): a task ships
``W`` and the function, never the data.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np

from ._baseline import EPS64
from ._trust_region import qr_factor

# Samples per block of the value and gradient passes.
VALUE_BLOCK = 16384
U = EPS64 / 2  # unit roundoff


class MemoryRows:
    """Row blocks of in-memory arrays ``X`` (n, d), ``target`` (labels (n,) or (n, c)) and
    ``s`` (n,); ``offset``: the row of ``X[0]`` in the whole data (a task's block)."""

    in_memory = True

    def __init__(self, X, target, s, offset: int = 0):
        self.X, self.target, self.s, self.offset = X, target, s, offset
        self.n, self.d = X.shape

    def _blocks(self, rows):
        for i0 in range(0, self.n, rows):
            i1 = min(i0 + rows, self.n)
            yield (self.offset + i0, np.asarray(self.X[i0:i1], dtype=np.float64),
                   self.target[i0:i1], np.asarray(self.s[i0:i1], dtype=np.float64))

    def fold(self, fn, add=operator.add, rows: int = VALUE_BLOCK):
        """``fn`` over blocks of ``rows`` rows, the parts added in row order by ``add``."""
        acc = None
        for block in self._blocks(rows):
            part = fn(*block)
            acc = part if acc is None else add(acc, part)
        return acc

    def factor(self, fn, size: int, rows: int) -> np.ndarray:
        """The QR factor ``R`` (size x size) of the rows ``fn(block)`` of every block."""
        return qr_factor((fn(*block) for block in self._blocks(rows)), size)


class EngineRows:
    """Row blocks of a (stateless) engine's data through its ``map_rows``: ``labels`` says
    whether ``y`` holds the cross-entropy's classes (as an (n, 1) float column)."""

    in_memory = False

    def __init__(self, engine, labels: bool):
        self.engine, self.labels = engine, labels
        self.n, self.d = engine.n, engine.d
        # float32 weights (the engine's) sum to 1 only to float32's rounding: divided by
        # their float64 sum (one pass), as the in-memory path normalises in float64
        self.total = 1.0
        if engine.dtype != np.float64:
            self.total = self.fold(_weight_sum)

    def fold(self, fn, add=operator.add, rows: int = VALUE_BLOCK):
        parts = self.engine.map_rows(functools.partial(
            _fold_block, self.labels, self.total, fn, add, rows), rows=rows)
        return functools.reduce(add, parts)

    def factor(self, fn, size: int, rows: int) -> np.ndarray:
        """Each task's factor, stacked in row order and factored once more."""
        parts = self.engine.map_rows(functools.partial(
            _factor_block, self.labels, self.total, fn, size, rows), rows=rows)
        return np.linalg.qr(np.vstack(parts), mode="r")


def _block_rows(labels, total, block) -> MemoryRows:
    y = block.y[:, 0].astype(np.intp) if labels else np.asarray(block.y, dtype=np.float64)
    s = np.asarray(block.s, dtype=np.float64)
    return MemoryRows(block.X, y, s if total == 1.0 else s / total, block.rows[0])


def _fold_block(labels, total, fn, add, rows, block):
    return _block_rows(labels, total, block).fold(fn, add, rows)


def _factor_block(labels, total, fn, size, rows, block):
    return _block_rows(labels, total, block).factor(fn, size, rows)


def _weight_sum(i0, Xb, y, s) -> float:
    return math.fsum(s)


def add_parts(a, b):
    """Parts that are tuples of sums, added entry by entry."""
    return tuple(x + y for x, y in zip(a, b))


# -- the cross-entropy -----------------------------------------------------------------------
def softmax_terms(p: np.ndarray, y: np.ndarray):
    """Per-sample ``logsumexp(p) - p_y`` and ``softmax(p)`` (entries ``-inf``: excluded
    classes), accurate when the loss is tiny: with ``r = p - p_y`` and ``m = max r``, the loss
    is ``m + log1p(sum_{j != argmax} exp(r_j - m))``."""
    rows = np.arange(y.size)
    r = p - p[rows, y][:, None]
    k = np.argmax(r, axis=1)
    m = r[rows, k]
    e = np.exp(r - m[:, None])
    e[rows, k] = 0.0
    loss = m + np.log1p(e.sum(axis=1))
    return loss, np.exp(r - loss[:, None])


def residual(pi, y, s):
    """``s_i (pi_i - e_{y_i})``, with ``pi_y - 1 = -sum_{j != y} pi_j`` (no cancellation)."""
    rows = np.arange(y.size)
    res = pi.copy()
    res[rows, y] = 0.0
    res[rows, y] = -res.sum(axis=1)
    return res * s[:, None]


def ce_terms(W, allowed, i0, Xb, y):
    """The block's losses and softmax at ``W``; ``allowed`` (n x c, or None) drops pairs."""
    p = Xb @ W.T
    if allowed is not None:
        p[~allowed[i0:i0 + y.size]] = -np.inf
    return softmax_terms(p, y)


def ce_value(W, allowed, i0, Xb, y, s) -> float:
    return float(s @ ce_terms(W, allowed, i0, Xb, y)[0])


def ce_grad(W, allowed, i0, Xb, y, s):
    """The block's ``(F_b, G_b)``, ``G`` the gradient in ``W`` (c x d)."""
    loss, pi = ce_terms(W, allowed, i0, Xb, y)
    return float(s @ loss), residual(pi, y, s).T @ Xb


def hessian_rows(PD, pi, y, s):
    """Rows ``V_ik = sqrt(s_i pi_ik) sum_j pi_ij (P_k - P_j)`` with ``V_i^T V_i =
    s_i P^T (diag(pi_i) - pi_i pi_i^T) P``: no cancellation when ``pi_i`` is near one
    class (the QR factor's rows, in the small)."""
    return np.sqrt(s[:, None] * pi)[:, :, None] * np.einsum("bj,kja->bka", pi, PD)


def pair_rows(PD, pi, y, s):
    """Rows ``V_ij = sqrt(s_i pi_ij) (P_{y_i} - P_j)`` (0 at ``j = y_i``): ``V_i^T V_i =
    sum_{j != y_i} s_i pi_ij (P_y - P_j)(P_y - P_j)^T``, the pair vectors' weights."""
    return np.sqrt(s[:, None] * pi)[:, :, None] * PD[y]


def ce_gram(W, allowed, PD, pairs, i0, Xb, y, s):
    """The block's ``(F_b, G_b, H_b, extra_b)``: ``H_b`` (k, d, k, d), its blocks ``m <= m'``
    only, ``X^T diag(D_i[m, m']) X`` with ``D_i = V_i^T V_i`` of :func:`pair_rows` (``pairs``)
    or :func:`hessian_rows`; ``extra_b`` the overlap certificate's sums
    (:func:`certificate_block`; zeros without ``pairs``)."""
    loss, pi = ce_terms(W, allowed, i0, Xb, y)
    k, d = PD.shape[2], Xb.shape[1]
    V = (pair_rows if pairs else hessian_rows)(PD, pi, y, s)
    D = np.einsum("bkm,bkn->bmn", V, V)
    H = np.zeros((k, d, k, d))
    for m in range(k):
        for m2 in range(m, k):
            H[m, :, m2, :] = (Xb * D[:, m, m2][:, None]).T @ Xb
    extra = certificate_block(Xb, pi, s, y) if pairs else (0.0, 0.0, 0.0, 0.0, True, 0)
    return float(s @ loss), residual(pi, y, s).T @ Xb, H, extra


def add_gram(a, b):
    """:func:`ce_gram`'s parts added (the certificate's maxima and flag as such)."""
    ea, eb = a[3], b[3]
    extra = (ea[0] + eb[0], ea[1] + eb[1], max(ea[2], eb[2]), max(ea[3], eb[3]),
             ea[4] and eb[4], ea[5] + eb[5])
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], extra


def certificate_block(Xb, pi, s, y):
    """One block's part of the certificate's sums (see
    :meth:`resnet_core.linear_vector.CrossEntropyPasses.certificate_sums`): ``[sum s (1 -
    pi_y) ||x||, sum q ||x||^2, max ||x||, max q / lam, every lam > 0, 1 block]``."""
    rows = np.arange(y.size)
    keep = s > 0
    norms = np.sqrt(np.einsum("ij,ij->i", Xb, Xb)) * (1 + (Xb.shape[1] + 2) * U)
    lam = s[:, None] * pi
    t = np.sqrt(lam)
    q = t * t
    lam[rows, y], q[rows, y] = np.inf, 0.0
    rest = (lam.sum(axis=1, where=np.isfinite(lam)) * (1 + pi.shape[1] * U))[keep]
    with np.errstate(divide="ignore", invalid="ignore"):  # lam = 0: refused (positive)
        ratio = np.where(q[keep] > 0, q[keep] / lam[keep], 0.0)
    return (float(rest @ norms[keep]), float(rest @ norms[keep] ** 2),
            float(norms[keep].max(initial=0.0)), float(np.max(ratio, initial=0.0)) * (1 + 4 * U),
            bool(np.all(lam[keep] > 0)), 1)


def ce_factor_rows(W, allowed, PD, i0, Xb, y, s):
    """The block's rows ``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron x_i`` of the Hessian's
    factor (``c`` per sample)."""
    _, pi = ce_terms(W, allowed, i0, Xb, y)
    C = hessian_rows(PD, pi, y, s)
    return (C[:, :, :, None] * Xb[:, None, None, :]).reshape(-1, C.shape[2] * Xb.shape[1])


def pair_gaps(W, Xb, y, s):
    """The pair margins ``p_{y_i} - p_j`` (``inf`` at ``j = y_i`` and for samples of zero
    weight), ``p = W x_i``."""
    p = Xb @ W.T
    rows = np.arange(y.size)
    gap = p[rows, y][:, None] - p
    gap[rows, y] = np.inf
    gap[s <= 0] = np.inf
    return gap


def proven_least_gap(W, i0, Xb, y, s) -> float:
    """A lower bound of the block's least pair margin ``(w_{y_i} - w_j)^T x_i`` (samples of
    positive weight, ``j != y_i``), rounding included: ``min (fl(gap_ij) - bound_ij)`` with
    ``bound_ij = gamma_{d+4} (|x_i|^T |w_{y_i}| + |x_i|^T |w_j|) + 2 u |fl(gap_ij)|
    + 4 d eta`` (``eta = 2^-1074``): the scores ``p = W x`` are off by at most ``gamma_d
    |W| |x| + d eta`` each (underflow included), their difference by ``u`` of itself, and the
    slack of ``gamma_{d+4}`` over ``gamma_d`` (and of ``2 u``, ``4 d eta``) covers the
    rounding of the bound itself (``d u < 10^-4``).  ``fl(gap - bound) > 0`` holds exactly
    when ``gap > bound``, so a positive value proves every pair margin positive."""
    c, d = W.shape
    gamma = (d + 4) * U / (1 - (d + 4) * U)
    rows = np.arange(y.size)
    p = Xb @ W.T
    gap = p[rows, y][:, None] - p
    size = np.abs(Xb) @ np.abs(W).T  # |x_i|^T |w_k|
    with np.errstate(invalid="ignore", over="ignore"):
        low = gap - (gamma * (size[rows, y][:, None] + size) + 2 * U * np.abs(gap)
                     + 4 * d * 2.0 ** -1074)
    low[rows, y] = np.inf
    low[s <= 0] = np.inf
    return float(low.min(initial=np.inf))


def push_block(W, Wu, far, pairs, i0, Xb, y, s) -> float:
    """The least ``t >= 0`` that puts the block's pair margins of ``W + t Wu`` on ``pairs``
    (n x c; None: every pair of positive weight) at ``far`` or beyond."""
    base, along = pair_gaps(W, Xb, y, s), pair_gaps(Wu, Xb, y, s)
    on = np.isfinite(base) if pairs is None else pairs[i0:i0 + y.size]
    return float(np.max((far - base[on]) / along[on])) if on.any() else 0.0


def used_features(i0, Xb, y, s) -> np.ndarray:
    """Features non-zero on some sample of positive weight in the block."""
    return np.any(Xb[s > 0] != 0, axis=0)


def accurate_block(W, i0, Xb, y, s):
    """One block of :func:`resnet_core.linear_vector.accurate_cross_entropy`: ``([F_b],
    [err_b], G_b)``, ``F_b`` correctly rounded (``math.fsum``)."""
    c, d = W.shape
    gamma = d * U / (1 - d * U)
    rows = np.arange(y.size)
    p = Xb @ W.T
    delta = gamma * (np.abs(Xb) @ np.abs(W).T)  # |fl(p_ik) - p_ik|
    r = p - p[rows, y][:, None]
    k = np.argmax(r, axis=1)
    m = r[rows, k]
    x = r - m[:, None]
    e = np.exp(x)
    e[rows, k] = 0.0
    S = e.sum(axis=1)
    L = np.log1p(S)
    loss = m + L
    # rounding of the evaluation at the computed p: r and m (u |r|), exp (u (|x| + 1)
    # relative, |x| from the subtraction), the sum ((c + 1) u), log1p and the final add
    err_S = U * np.sum(e * (np.abs(x) + c + 3), axis=1)
    err_eval = (2 * U * np.abs(m) + U * L + err_S / (1 + S) * (1 + 2 * U) + U * np.abs(loss))
    # the rounding of p, through r = p - p_y (also rounded): the loss's gradient in r_k
    # is pi_k (k != y)
    pi = np.exp(r - loss[:, None])
    dr = delta + delta[rows, y][:, None] + U * np.abs(r)
    dr[rows, y] = 0.0
    first = np.sum(pi * dr, axis=1)
    # (the curvature diag(pi) - pi pi^T at a point between: pi_k there is at most
    # pi_k e^(2 max dr) here)
    second = 0.5 * np.exp(2 * np.max(dr, axis=1)) * np.sum(pi * dr**2, axis=1)
    terms = s * loss
    err = math.fsum(s * (err_eval + first + second) * (1 + 4 * U) + U * np.abs(terms))
    return [math.fsum(terms)], [err], residual(pi, y, s).T @ Xb


def add_accurate(a, b):
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


# -- the squared loss ------------------------------------------------------------------------
def ls_grad(W, i0, Xb, Y, s):
    """The block's ``(F_b, G_b)`` of ``sum_i s_i ||W x_i - y_i||^2 / 2``."""
    res = Xb @ W.T - Y
    sres = res * s[:, None]
    return 0.5 * float(np.sum(sres * res)), sres.T @ Xb


def weighted_rows(i0, Xb, Y, s):
    """The rows ``sqrt(s_i) x_i`` of the squared loss's factor."""
    return np.sqrt(s[:, None]) * Xb
