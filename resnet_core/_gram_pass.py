"""One streamed float64 pass of a margin loss's linear model: ``F_lin``, its gradient, a Gram
matrix ``H = sum_i q_i x_i x_i^T`` (``q_i = s_i l''_i``, by SYRK on row chunks) over all or
some of the rows, the smallest margin, and the sums of the overlap certificate
(:func:`resnet_core.separability.minimiser_certificate`).

Why not the objective's compiled passes: the Gram matrix is the Newton model of
:mod:`resnet_core.linear`, and a float32 accumulation (the kernels' for float32 data) holds
its eigenvalues to about ``1e-6`` of the largest only.  Each chunk of ``chunk_rows(engine)`` rows
goes through :func:`resnet_core._margin_pass.margin_chunk`, which reads each row once, sums
in double whatever the data's type, and writes the Hessian rows ``Z = sqrt(s l'') x``.
Memory is a few chunks.  BLAS runs on one thread per chunk; the chunks run on the engine's
``n_threads`` threads, their results added in row order (the same numbers for any count).

The Hessian rows: every ``stride``-th chunk (all with ``stride = 1``).  A Newton model from
a subsample of the rows costs a fraction of the full ``d^2`` work per row, and its steps are
exact up to the subsample's error in ``H`` (the gradient is always over every row).  A pass
over every ``sample``-th chunk only (all its sums over those rows) is the warm start's
(:mod:`resnet_core.linear`).  ``single_hessian``: ``Z`` in float32 and ``Z^T Z`` by float32
BLAS (each chunk's product added in float64): its rounding is about ``eps32 d`` of ``H``'s
largest eigenvalue, for Newton steps only; such a pass is flagged and never read by a proof.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dsyrk

from ._margin_pass import margin_chunk
from ._sources import is_dask
from ._threads import blas_single_thread
from .separability import CombinationSums

# Bytes of one float64 chunk of rows (a pass holds a few such arrays at once): the memory
# of a pass is a few MiB whatever n and d; a quarter of that for out-of-core data, whose
# passes must stay within a small fraction of X (fewer, larger chunks are faster).
CHUNK_BYTES = 1 << 23
STREAMED_SHARE = 64
_NONE = np.empty(0)  # an output margin_chunk leaves out
# Chunks per block of rows where a block is a view (in memory, memmap): the pool's threads
# take its chunks together.
BLOCK_CHUNKS = 16


def _block_rows(engine, rows: int) -> int | None:
    """Rows per block of a pass: ``BLOCK_CHUNKS`` chunks where ``X`` is an array (a block is
    a view), the engine's own blocks otherwise (zarr, dask: a block is read whole)."""
    return BLOCK_CHUNKS * rows if isinstance(engine.X, np.ndarray) else None


def _pass_threads(engine, rows: int) -> int:
    """Threads for a pass's chunks: the engine's, where its blocks are run in this process
    and there is more than one chunk; one for dask (its tasks are the parallelism, and a
    pool does not travel to another process) and for a single chunk (no pool to start)."""
    return 1 if is_dask(engine.X) or engine.n <= rows else engine.n_threads


def chunk_rows(engine) -> int:
    """Rows per chunk of the engine's passes: ``CHUNK_BYTES`` of float64 rows; for
    out-of-core data at most ``1 / STREAMED_SHARE`` of ``X`` in float64 (at least a quarter
    of ``CHUNK_BYTES``: a pass's memory stays a small fraction of ``X``); at least 256."""
    d = max(engine.d, 1)
    size = CHUNK_BYTES
    if engine.stateless:
        size = min(size, max(CHUNK_BYTES >> 2, engine.n * d * 8 // STREAMED_SHARE))
    return max(256, size // (8 * d))


@dataclass
class GramPass:
    """``F``, ``g`` over every sample; ``H`` (upper triangle) over the Hessian rows, which
    carry the fraction ``h_share`` of the total weight (``H / h_share`` estimates the
    Hessian); the smallest margin ``y_i x_i^T w`` over samples of positive weight (``inf``
    when none); the certificate's sums (``q_i = 0`` outside the Hessian rows)."""

    F: float
    g: np.ndarray
    H: np.ndarray
    h_share: float
    min_margin: float
    sums: CombinationSums
    n_wrong: int = 0  # samples of positive weight with margin <= 0
    single_hessian: bool = False  # H from float32 products (a Newton model only, not proofs)
    top: float = 0.0  # the largest row norm (every row, weighted or not) of the chunks seen
    value: tuple | None = None  # (F, fun_error) as accurate_value's, when asked for


def _chunk(X, y, s, w, loss, hessian, norms, start, single_hessian=False, value=False):
    """One chunk: ``[F, g, H or None, weight of the H rows, smallest margin,
    sum lam ||x||, sum q ||x||^2, max ||x|| and max q / lam (H rows), every lam > 0,
    weight of the chunk, margins <= 0]``.  ``||x_i||`` is bounded by the chunk's largest
    row norm, computed once per chunk and kept in ``norms`` (keyed by the first row).
    Margins, losses, gradient and the rows ``Z = sqrt(q) x`` by
    :func:`resnet_core._margin_pass.margin_chunk` (every sum in double, float32 rows read as
    they are); ``H = Z^T Z`` by SYRK of the float64 ``Z`` (a float32 ``Z`` and product with
    ``single_hessian``).  ``value``: two more entries, the chunk's accurate value and its
    bound (:func:`_value_part`, as :func:`accurate_value`)."""
    m = X.shape[0]
    first = start not in norms
    p, r, q, l, sq = (np.empty(m) for _ in range(5))
    g = np.zeros(X.shape[1])
    Z = np.empty(X.shape, np.float32 if single_hessian else np.float64) if hessian else None
    delta = np.empty(m) if value else _NONE
    F = margin_chunk(loss.code, X, y, s, w, np.abs(w), g, p, r, q, l, delta,
                     sq if first else _NONE,
                     **({"Z32" if single_hessian else "Z64": Z} if hessian else {}))
    y, s = np.asarray(y, dtype=np.float64), np.asarray(s, dtype=np.float64)
    keep = s > 0
    if first:  # (over the rows of positive weight, over all rows)
        norms[start] = tuple(float(np.sqrt(v) * (1 + X.shape[1] * 2.0 ** -52))
                             for v in (sq[keep].max(initial=0.0), sq.max(initial=0.0)))
    x_max = norms[start][0]
    lam = (-r * y)[keep]
    margins = (y * p)[keep]
    parts = [F, g, None, 0.0, float(margins.min(initial=np.inf)),
             float(lam.sum()) * x_max, 0.0, 0.0, 0.0, bool(np.all(lam > 0)), float(s.sum()),
             int(np.count_nonzero(margins <= 0))]
    if hessian:
        t = np.sqrt(np.maximum(q, 0.0))
        qk = (t * t)[keep]
        # float32: the whole product (faster than ssyrk here); float64: the upper triangle
        parts[2] = (Z.T @ Z).astype(np.float64) if single_hessian else dsyrk(1.0, Z.T, trans=0)
        parts[3] = float(s.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            parts[8] = float(np.where(qk > 0, qk / lam, 0.0).max(initial=0.0))
        parts[6], parts[7] = float(qk.sum()) * x_max ** 2, x_max
    if value:
        delta *= _margin_gamma(w.size)
        parts += _value_part(w, loss, loss.sup_d2, X, y, s, p, delta)[:2]
    return parts


def _block(w, loss, stride, norms, rows, sample, single_hessian, value, pool, block):
    X, y, s = block.X, block.y, block.s
    i0 = block.rows[0]
    starts = [i for i in range(0, X.shape[0], rows) if ((i0 + i) // rows) % sample == 0]
    parts = ordered_map(lambda i: _chunk(
        X[i:i + rows], y[i:i + rows], s[i:i + rows], w, loss,
        ((i0 + i) // rows // sample) % stride == 0, norms, i0 + i, single_hessian, value),
        starts, pool)
    # the block's d x d sums added now (in row order): a pass holds one per block, not one
    # per chunk (d^2 / (8 rows) of X's size each)
    held = [c for c in parts if c[2] is not None]
    if len(held) > 1:
        held[0][2] = functools.reduce(np.add, (c[2] for c in held))
        for c in held[1:]:
            c[2] = None
    return parts


def ordered_map(fn, items, pool: ThreadPoolExecutor | None) -> list:
    """``[fn(x) for x in items]``, on the threads of ``pool`` when given (the chunks'
    compiled loops and BLAS release the GIL); the results in the order of ``items``, so
    every sum made from them is the same, bit for bit, whatever the thread count."""
    items = list(items)
    if pool is None or len(items) <= 1:
        return [fn(x) for x in items]
    # each chunk in a copy of the caller's context: its np.errstate holds there too
    return [f.result() for f in [pool.submit(contextvars.copy_context().run, fn, x)
                                 for x in items]]


@contextlib.contextmanager
def chunk_pool(n_threads: int):
    """A pool of ``n_threads`` threads for one pass (None for one thread).  On leaving it
    the chunks not yet started are cancelled (an exception, Ctrl-C included) and the ones
    running finished: the pass returns within one chunk's time, its threads gone."""
    if n_threads <= 1:
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=n_threads)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def hessian_stride(n: int, d: int, rows_per_feature: int, rows: int) -> int:
    """The stride of Hessian chunks (of ``rows`` rows) that keeps about
    ``rows_per_feature * d`` of ``n`` rows (at least one chunk; 1: every row)."""
    return max(1, n // max(rows_per_feature * d, rows))


def gram_pass(engine, w: np.ndarray, *, stride: int = 1, norms: dict | None = None,
              sample: int = 1, single_hessian: bool = False, value: bool = False
              ) -> GramPass:
    """One pass over the engine's rows (in memory or streamed) at ``w`` (float64).

    Per chunk: ``p = X w`` and ``l, l', l''`` in float64; ``F = sum s_i l_i``,
    ``g = X^T (s l')``; on the Hessian chunks ``H = Z^T Z`` with ``Z = diag(sqrt(s l'')) X``
    (so ``q_i = fl(sqrt(s_i l''_i))^2``).  The certificate's ``lam_i = -s_i l'_i y_i``
    (``b = sum lam_i y_i x_i = -g``).  ``norms``: the chunks' largest row norms, filled on
    the first pass and reused (a dict owned by the caller; ``top`` is the largest over all the
    chunks it holds).  ``sample``: every ``sample``-th chunk only (``F``, ``g``, ``H`` and
    the sums over those rows; the Hessian rows every ``stride``-th of them): the warm
    start's subsample.  ``single_hessian``: ``H`` from float32 rows (flagged).  ``value``: also
    :func:`accurate_value`'s ``(F, fun_error)`` (``GramPass.value``), in the same read of
    the rows.  The chunks run on ``engine.n_threads`` threads, their sums added in row
    order."""
    if engine.loss.code < 0:
        raise ValueError(f"gram_pass: the {engine.loss.name} loss has no compiled formula")
    norms = {} if norms is None else norms
    rows = chunk_rows(engine)
    with blas_single_thread(), chunk_pool(_pass_threads(engine, rows)) as pool:
        chunks = [c for blk in engine.map_rows(functools.partial(
            _block, np.ascontiguousarray(w, dtype=np.float64), engine.loss, stride, norms,
            rows, sample, single_hessian, value, pool), rows=_block_rows(engine, rows))
                  for c in blk]
    H = functools.reduce(np.add, (c[2] for c in chunks if c[2] is not None))
    total = float(np.sum([c[10] for c in chunks]))
    g = functools.reduce(np.add, (c[1] for c in chunks))
    sums = CombinationSums(
        b=-g, H=H, b_abs=float(np.sum([c[5] for c in chunks])),
        h_trace=float(np.sum([c[6] for c in chunks])), x_max=max(c[7] for c in chunks),
        q_over_lam=max(c[8] for c in chunks), terms=engine.n + len(chunks),
        positive=all(c[9] for c in chunks))
    return GramPass(float(np.sum([c[0] for c in chunks])), g, H,
                    min(1.0, float(np.sum([c[3] for c in chunks])) / total),
                    min(c[4] for c in chunks), sums, sum(c[11] for c in chunks),
                    single_hessian, max((v[1] for v in norms.values()), default=0.0),
                    _summed_value([c[12:14] for c in chunks]) if value else None)


def _chunk_margins(X, y, s, w, loss, bound: bool):
    """The margins ``y_i x_i^T w`` of one chunk's rows (by :func:`margin_chunk`: each row
    read once, summed in double), lowered by their rounding bound ``gamma_d |x_i|^T |w|``
    when ``bound``; ``inf`` on the rows of zero weight."""
    m = X.shape[0]
    p, r, q, l = (np.empty(m) for _ in range(4))
    low = np.empty(m) if bound else _NONE
    margin_chunk(loss.code, X, y, s, w, np.abs(w), np.zeros(w.size), p, r, q, l, low, _NONE)
    margins = np.asarray(y, dtype=np.float64) * p
    if bound:
        margins -= _margin_gamma(w.size) * low
    margins[np.asarray(s) <= 0] = np.inf
    return margins


def _block_margins(w, loss, rows, pool, fn, block):
    """``fn(margins, first row)`` of each chunk of one block (:func:`_chunk_margins`; ``fn``
    None: the rounding-bounded margins' minimum)."""
    X, y, s, i0 = block.X, block.y, block.s, block.rows[0]

    def one(i):
        m = _chunk_margins(X[i:i + rows], y[i:i + rows], s[i:i + rows], w, loss, fn is None)
        return float(m.min(initial=np.inf)) if fn is None else fn(m, i0 + i)

    return ordered_map(one, range(0, X.shape[0], rows), pool)


def _margin_pass(engine, w, fn=None) -> list:
    """One pass of :func:`_block_margins` over the engine's rows: a list per chunk."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    rows = chunk_rows(engine)
    with blas_single_thread(), chunk_pool(_pass_threads(engine, rows)) as pool:
        return [c for blk in engine.map_rows(
            functools.partial(_block_margins, w, engine.loss, rows, pool, fn),
            rows=_block_rows(engine, rows)) for c in blk]


def proven_min_margin(engine, w: np.ndarray) -> float:
    """A lower bound of the smallest margin ``y_i x_i^T w`` (samples of positive weight),
    rounding included: ``min (y_i x_i^T w - gamma_d |x_i|^T |w|)``, positive only when every
    margin is positive in exact arithmetic (one pass)."""
    return min(_margin_pass(engine, w), default=np.inf)


def smallest_margins(engine, w: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` samples of positive weight with the smallest margins at ``w``
    (one pass; each chunk keeps its ``k`` smallest)."""
    def smallest(m, start):
        idx = np.argpartition(m, k - 1)[:k] if m.size > k else np.arange(m.size)
        return m[idx], idx + start

    parts = _margin_pass(engine, w, smallest)
    m = np.concatenate([p[0] for p in parts])
    idx = np.concatenate([p[1] for p in parts])
    keep = np.isfinite(m)
    m, idx = m[keep], idx[keep]
    return np.sort(idx[np.argsort(m)[:k]])


def _split(a):
    """Dekker's split ``a = hi + lo`` with ``hi`` of 26 bits (exact)."""
    c = 134217729.0 * a
    hi = c - (c - a)
    return hi, a - hi


def dot2_rows(X: np.ndarray, w: np.ndarray):
    """``X w`` row by row in twice the working precision (Ogita, Rump and Oishi's Dot2, its
    sum cascaded pairwise over the columns): the products made exact by Dekker's TwoProduct
    (``p_j + e_j = x_j w_j``), the ``p_j`` added in a tree of TwoSums (each addition's error
    ``q`` exact), and the ``e_j`` and ``q`` summed apart and added at the end.  Every
    TwoSum error is at most ``u`` of its sum, and each of the ``ceil(log2 d)`` levels of the
    tree sums at most ``sum |p_j|``, so ``sum |q| <= gamma_d sum |p_j|`` (as for the
    sequential sum), and the bound is the same: ``(m, bound)`` with ``|m - x^T w| <= bound
    = u |m| + 2 gamma_d^2 |x|^T |w|``; None where the split would overflow or a product
    underflow (then not exact).  The tree makes ``log2 d`` vectorised steps where the
    sequential sum made ``d``."""
    P = X * w
    if np.any((P != 0) & (np.abs(P) < 2.0 ** -960)):
        return None
    Xh, Xl = _split(X)
    wh, wl = _split(w)
    E = Xl * wl - (((P - Xh * wh) - Xl * wh) - Xh * wl)  # P + E = X * w exactly
    if not (np.isfinite(E).all() and np.isfinite(P).all()):
        return None
    m = _cascade(P, E.sum(axis=1))
    d = X.shape[1]
    gamma = d * 2.0 ** -53 / (1 - d * 2.0 ** -53)
    return m, 2.0 ** -53 * np.abs(m) + gamma * gamma * (np.abs(X) @ np.abs(w)) * 2


def _margin_errors(loss, p, y, s, d1, delta, curvature):
    """Per sample, ``s_i`` times a bound of ``|l(p_i + t) - l(p_i)|`` over ``|t| <= delta_i``:
    ``(|l'| + C delta / 2) delta``, and for a margin loss also ``|l'(m - delta)| delta`` (its
    slope is largest at the lowest margin; the tighter of the two, which matters on a
    separating ray, where the loss and its slope are ``e^-m``)."""
    errors = (np.abs(d1) + 0.5 * curvature * delta) * delta
    # a margin loss's slope |l'| does not increase with the margin ``y p`` (the registry's
    # ``margin`` entry): a margin off by ``delta`` moves ``l`` by at most ``|l'(m - delta)| delta``
    if loss.margin and loss.code >= 0:
        # lowered by delta, and by the rounding of the subtraction (u |p|) as well
        _, slope, _ = loss.derivatives(p - y * (delta + 2.0 ** -52 * np.abs(p)), y)
        errors = np.minimum(errors, np.abs(slope) * delta * (1 + 16 * 2.0 ** -53))
    return s * errors


def _value_part(w, loss, curvature, Xc, y, s, p, delta):
    """``(sum_i s_i l_i, its error bound, l')`` of one chunk from its margins ``p`` and their
    rounding bounds ``delta`` (``y``, ``s`` float64; :func:`accurate_value`).  Where the
    chunk's margin rounding (``gamma_d |x|^T |w|``, large where the margins cancel:
    ill-conditioned data and a long ``w``) would make the bound exceed ``1024 u`` of its
    value, the rows that carry the most of it are evaluated again with the margins by
    :func:`dot2_rows`, until what the others carry is at most ``16 u`` of the value (on a
    separating ray a few rows carry nearly all the loss: Dot2 on every row cost 10 passes
    at d = 128)."""
    unit = 2.0 ** -53
    l, d1, _ = loss.derivatives(p, y)
    errors = _margin_errors(loss, p, y, s, d1, delta, curvature)
    value = abs(float(s @ l))
    # Dot2 (several times a plain pass) only where the bound would exceed about 1e-13
    # of the chunk's value: ill-conditioned X, a long w.
    if float(errors.sum()) > 1024 * unit * value:
        order = np.argsort(errors)  # the rows left as they are: the smallest errors
        left = np.searchsorted(np.cumsum(errors[order]), 16 * unit * value, side="right")
        redo = np.sort(order[left:])
        accurate = dot2_rows(np.asarray(Xc[redo], dtype=np.float64), w)
        if accurate is not None:
            p, delta = p.copy(), delta.copy()
            p[redo], delta[redo] = accurate
            l, d1, _ = loss.derivatives(p, y)
            errors = _margin_errors(loss, p, y, s, d1, delta, curvature)
    terms = s * l
    part, part_err = sum2(terms)
    err = (float(errors.sum()) + 9 * unit * float(s @ np.abs(l))) * (1 + 4 * unit * p.size)
    return part, err + part_err, d1


def _cascade(S: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Each row of ``S`` summed in a pairwise tree of TwoSums (``ceil(log2 n)`` vectorised
    steps), each addition's error made exact and added to ``comp`` (one per row, which
    holds the caller's own error terms), ``comp`` added at the end: Sum2's cascade
    (:func:`sum2`, :func:`dot2_rows`)."""
    comp = comp.copy()
    while S.shape[1] > 1:
        half = S.shape[1] // 2
        a, b = S[:, :half], S[:, half:2 * half]
        t = a + b
        z = t - a
        comp += ((a - (t - z)) + (b - z)).sum(axis=1)  # TwoSum's errors, exact
        S = np.concatenate([t, S[:, 2 * half:]], axis=1) if S.shape[1] % 2 else t
    return S[:, 0] + comp


def sum2(v: np.ndarray) -> tuple[float, float]:
    """``(S, bound)`` with ``|S - sum v| <= bound = u |S| + gamma_n^2 sum |v|``: Ogita,
    Rump and Oishi's Sum2 (every addition made exact by TwoSum, the errors summed apart and
    added at the end), its additions in a pairwise tree (``log2 n`` vectorised steps).  As
    accurate as a correctly rounded sum to first order (``math.fsum``'s ``u |S|``), at a
    tenth of its time on chunks of thousands of terms."""
    n = v.size
    if n == 0:
        return 0.0, 0.0
    total = float(_cascade(np.asarray(v, dtype=np.float64)[None, :], np.zeros(1))[0])
    # gamma_n (not n - 1): also covers u |S - total| (the bound is u |S| for the exact S)
    gamma = n * 2.0 ** -53 / (1 - n * 2.0 ** -53)
    return total, 2.0 ** -53 * abs(total) + gamma * gamma * float(np.abs(v).sum()) * (1 + 1e-12)


def _margin_gamma(d: int) -> float:
    """``gamma`` of a margin's rounding: ``|fl(x^T w) - x^T w| <= gamma |x|^T |w|`` for a
    sum of ``d`` products in any order (with two roundings to spare)."""
    return (d + 2) * 2.0 ** -53 / (1 - (d + 2) * 2.0 ** -53)


def _chunk_value(w, loss, curvature, Xc, y, s):
    """``(sum_i s_i l_i, its error bound, g)`` of one chunk (:func:`_value_part`), the
    margins and ``|x|^T |w|`` by :func:`margin_chunk` (a loss outside the kernels: NumPy)."""
    m = Xc.shape[0]
    if loss.code >= 0:  # margins, |x|^T |w| and g = X^T (s l') in one read of the rows
        p, delta, r, q, l = (np.empty(m) for _ in range(5))
        g = np.zeros(w.size)
        margin_chunk(loss.code, Xc, y, s, w, np.abs(w), g, p, r, q, l, delta, _NONE)
    else:
        X = np.asarray(Xc, dtype=np.float64)
        p, delta, g = X @ w, np.abs(X) @ np.abs(w), None
    delta *= _margin_gamma(w.size)
    y, s = np.asarray(y, dtype=np.float64), np.asarray(s, dtype=np.float64)
    part, err, d1 = _value_part(w, loss, curvature, Xc, y, s, p, delta)
    if g is None:
        g = np.asarray(Xc, dtype=np.float64).T @ (s * d1)
    return part, err, g


def _block_value(w, loss, curvature, rows, pool, block):
    """:func:`_chunk_value` of each chunk of one block."""
    return ordered_map(lambda i: _chunk_value(w, loss, curvature, block.X[i:i + rows],
                                              block.y[i:i + rows], block.s[i:i + rows]),
                       range(0, block.X.shape[0], rows), pool)


def accurate_value(engine, w: np.ndarray):
    """``(F, fun_error, g)`` at ``w``: ``F = sum_i s_i l(x_i^T w; y_i)`` with the margins and
    losses in float64, each chunk's sum by :func:`sum2` (within ``u`` of itself plus a
    second-order term, both in the bound) and the chunks' sums correctly rounded
    (``math.fsum``), and a bound of ``|F - F_exact(w)|``: per sample, a margin off by at
    most ``gamma_d |x_i|^T |w|`` moves ``l`` by at most ``(|l'| + C delta / 2) delta``
    (``C`` the loss's largest curvature), the loss and the product with ``s_i`` by
    ``9 u l_i``; the final sum by ``u |F|``.  ``C`` is the registry's ``sup_d2``;
    ``fun_error`` is ``nan`` for a loss outside the kernels."""
    loss = engine.loss
    curvature = loss.sup_d2  # the registry's largest l'' (labels checked)
    if loss.code < 0:
        curvature = None
    rows = chunk_rows(engine)
    with blas_single_thread(), chunk_pool(_pass_threads(engine, rows)) as pool:
        parts = [c for blk in engine.map_rows(functools.partial(
            _block_value, np.ascontiguousarray(w, dtype=np.float64), loss,
            0.0 if curvature is None else curvature, rows, pool),
            rows=_block_rows(engine, rows)) for c in blk]
    F, err = _summed_value(parts)
    g = functools.reduce(np.add, (c[2] for c in parts))
    return F, (err if curvature is not None else float("nan")), g


def _summed_value(parts) -> tuple[float, float]:
    """``(F, bound)`` from the chunks' ``(sum, bound)`` pairs: both correctly rounded sums,
    the bound raised by ``u |F|`` for the final rounding."""
    F = math.fsum(c[0] for c in parts)
    err = math.fsum(c[1] for c in parts) + 2.0 ** -53 * abs(F)
    return F, float(err) * (1 + 1e-12)
