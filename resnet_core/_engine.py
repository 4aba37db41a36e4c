"""Calls into the compiled kernels: allocation of outputs, slot reduction.

An :class:`Engine` holds validated data (``X``, ``y``, normalised weights ``s``), the source
of the features (a given ``Phi``, or an MLP evaluated chunk by chunk) and the loss.  It holds
nothing about a point: the per-sample quantities of a point, ``l(p_i)``, ``r_i = s_i l'(p_i)``
and ``q_i = s_i l''(p_i)``, live in :class:`SampleBuffers` that the caller owns (one per
point, see :mod:`resnet_core.state`).  The first pass at a point computes them inside the
kernel (a built-in loss) or from a prediction pass (a user-defined loss) and marks the
buffers filled; later passes read them.  A pass that does not complete (an interrupt, a
``MemoryError``) leaves the buffers unfilled, so nothing stale is ever read.  Passes on
different buffers may run at the same time from several threads.  Extra memory: the
buffers and the per-slot partial sums; nothing of size ``n x width``.

:class:`VectorEngine` is the same for c outputs (``_vkernels``): its buffers are n x c.

A *stateless* engine (out-of-core data, ``resnet_core._sources.StreamEngine``; dask
arrays, ``resnet_core._dask.DaskEngine``) keeps no n-vector: a point holds a
:class:`PassValue` and every pass recomputes ``l, r, q`` block by block inside the kernel
(built-in losses).  :meth:`Engine.map_rows` runs a function over the row blocks
(:class:`Block`, each with an engine of its own) and returns the results in row order: the
reductions the passes do not cover (a tall-skinny QR, margins, standard errors) are built
on it, the same way for every kind of engine.
"""

from __future__ import annotations

import math

import numpy as np

from . import _kernels, _vkernels
from ._guards import check_block, check_files, mapped_files
from ._threads import blas_single_thread, resolve_n_threads
from ._validation import check_alloc, check_chunk_size, memory_limit, resolve_dtype
from .losses import Loss

LOSS_EXTERNAL = _kernels.LOSS_CODE_EXTERNAL
# Samples per chunk: large enough for efficient BLAS blocks, small enough that a slot's
# workspace (a few chunk x width arrays) stays in the L2 cache.
DEFAULT_CHUNK = 128
# Multiply-adds per kernel call of a pass (a few hundredths of a second here), and a cap on
# its rows: a pass over any n hands control back to Python (and Ctrl-C) that often.
BLOCK_WORK = 1 << 27
# Below this many multiply-adds a kernel call runs its slots on the calling thread (measured
# on 2 cores: a team of 2 pays off from about 1e6 upwards; below, waking it costs more).
SERIAL_WORK = 1 << 20
MAX_BLOCK_ROWS = 1 << 18
# A pass shows a progress bar (when asked) once it has run this many seconds.
PROGRESS_DELAY = 2.0


class SampleBuffers:
    """``l``, ``r = s l'``, ``q = s l''`` per sample and ``F`` at one point; ``filled`` once a
    pass has written all of them."""

    __slots__ = ("l", "r", "q", "value", "filled")

    def __init__(self, n: int, dtype):
        self.l = np.empty(n, dtype=dtype)
        self.r = np.empty(n, dtype=dtype)
        self.q = np.empty(n, dtype=dtype)
        self.value = float("nan")
        self.filled = False


class PassValue:
    """What a stateless engine keeps of a point: ``F`` once a pass computed it.  Every pass
    recomputes ``l, r, q`` block by block (the kernel does it with the built-in losses)."""

    __slots__ = ("value", "filled")

    def __init__(self):
        self.value = float("nan")
        self.filled = False


class Block:
    """One row block of the data, as in-memory arrays, and an engine over it alone.

    ``rows`` is ``(i0, i1)`` in the whole data set; ``engine`` runs the kernels on the
    block (its weights are the block of the global normalised weights ``s``)."""

    __slots__ = ("rows", "X", "y", "s", "engine")

    def __init__(self, rows, engine: "Engine"):
        self.rows, self.engine = rows, engine
        self.X, self.y, self.s = engine.X, engine.y, engine.s


class Engine:
    """Streaming evaluation of ``p = X w + Phi a`` and the loss over validated data.

    Parameters
    ----------
    X, y, s : ndarray
        Validated, C-contiguous, same float dtype; ``s`` sums to one.
    loss : Loss
    k : int
        Feature dimension, the constant feature included.
    Phi : ndarray of shape (n, k - feature_bias) or None
        Given features; ``None`` when an MLP computes them (``dims``, ``bias``, ``act``).
    dims : ndarray of intp
        ``[d, h_1, ..., h_L]``; ``[d]`` when ``Phi`` is given.
    feature_bias : bool
        The features are ``[Phi, 1]`` (Remark 1): the kernels add the constant column on
        the fly (design note 6 of ``_kernels``), no copy of ``Phi`` is made.
    """

    # True: no per-sample buffers; each pass recomputes them block by block (out-of-core and
    # distributed data; the built-in losses only).
    stateless = False
    # Rows of one block read from an out-of-core source: at most this many bytes of X.
    _block_bytes = None

    def __init__(self, X, y, s, loss: Loss, k: int, *, Phi=None, dims=None, bias=False,
                 act=0, feature_bias=False, n_threads=None, chunk_size=None):
        self.X, self.y, self.s, self.loss, self.k = X, y, s, loss, k
        self.feature_bias = int(bool(feature_bias))
        self.dtype = resolve_dtype(X)
        self.n, self.d = X.shape
        if Phi is None:  # an MLP's features (dims), or none: the linear predictor's engine
            Phi = np.empty((self.n if dims is None else 0, 0), dtype=self.dtype)
        self.Phi = Phi
        # what a pass re-checks (resnet_core._guards): mapped files, and rows on a NaN result
        self._files = mapped_files(X=X, Phi=Phi, y=y, sample_weight=getattr(s, "w", s))
        self._guarded = (("X", X), ("Phi", Phi), ("y", y), ("sample_weight", s))
        self.dims = np.asarray(dims if dims is not None else [self.d], dtype=np.intp)
        self.bias, self.act = int(bias), int(act)
        self.n_threads = resolve_n_threads(n_threads)
        # the caller's weights before normalisation (what save_point stores: the objective
        # rebuilt from them has exactly this s); None for uniform or unknown weights
        self.given_weight = None
        self.max_workers = None  # threads a kernel call may use (None: one per slot)
        self.progress = False  # a tqdm bar over the blocks of a pass longer than a few seconds
        self.chunk = check_chunk_size(chunk_size, DEFAULT_CHUNK, self.n, self.dims, k,
                                      self.dtype.itemsize)
        self._empty = np.empty(0, dtype=self.dtype)
        dims = [int(h) for h in self.dims]
        # multiply-adds per sample of a value and gradient pass, roughly
        self._per_row = max(self.d + self.k + sum(a * b for a, b in zip(dims[:-1], dims[1:])), 1)

    # -- helpers -------------------------------------------------------------------
    def _vec(self, v):
        return np.ascontiguousarray(v, dtype=self.dtype) if v is not None else self._empty

    def _slots(self, *cols):
        T = self.n_threads
        return [np.zeros((T, c), dtype=self.dtype) for c in cols]

    def _row_blocks(self, n: int, per_row: int):
        """Row ranges of one pass's kernel calls: Python sees Ctrl-C between two of them.
        The size depends on the model's shape and the kind of pass only (so do the
        results): about ``BLOCK_WORK`` multiply-adds per block, a multiple of the chunk.
        A memory-mapped source is checked to still have its size first."""
        check_files(self._files)
        rows = max(BLOCK_WORK // per_row, self.chunk)
        if self._block_bytes:
            rows = min(rows, max(self._block_bytes // (self.d * self.dtype.itemsize), 1))
        rows = min(rows, MAX_BLOCK_ROWS) // self.chunk * self.chunk or self.chunk
        return [(i, min(i + rows, n)) for i in range(0, n, rows)]

    def _pass_blocks(self, n: int, per_row: int):
        """The row blocks of a pass, under a tqdm bar (shown after ``PROGRESS_DELAY``
        seconds) when ``progress`` is set."""
        blocks = self._row_blocks(n, per_row)
        if not self.progress or len(blocks) < 2:
            return blocks
        return progress_bar(blocks, "pass")

    def _workers(self, rows: int, per_row: int) -> int:
        """Threads for a kernel call over ``rows`` samples of ``per_row`` multiply-adds each:
        one when the call is too small to pay for waking a team (``SERIAL_WORK``), else one
        per slot.  The slots, and so the numbers, are the same either way."""
        if rows * per_row < SERIAL_WORK:
            return 1
        return min(self.n_threads, self.max_workers or self.n_threads)

    def _rows(self, a, i0, i1):
        """Rows ``i0:i1`` of a data array as a C-contiguous array of the engine's dtype (a
        view of an in-memory array; read from disk for an out-of-core one)."""
        return np.ascontiguousarray(a[i0:i1], dtype=self.dtype)

    def _common(self, theta, i0, i1):
        Phi = self._rows(self.Phi, i0, i1) if self.Phi.shape[0] else self.Phi
        return (self._rows(self.X, i0, i1), Phi, self._rows(self.y, i0, i1),
                self._rows(self.s, i0, i1), self._vec(theta), self.dims, self.bias, self.act,
                self.feature_bias)

    def _per_sample(self, buf, i0, i1):
        """``(r, q, l)`` of rows ``i0:i1``: views of the point's buffers, or block-local
        arrays the kernel fills in this pass (stateless engine)."""
        if isinstance(buf, PassValue):
            return tuple(np.empty(i1 - i0, dtype=self.dtype) for _ in range(3))
        return buf.r[i0:i1], buf.q[i0:i1], buf.l[i0:i1]

    def derive(self, *, k: int, Phi=None, dims=None, bias=False, act=0, feature_bias=False,
               s=None) -> "Engine":
        """An engine of the same kind on the same rows with other features (``Phi``, or
        an MLP of ``dims``) and optionally other normalised weights ``s``."""
        eng = type(self)(self.X, self.y, self.s if s is None else s, self.loss, k, Phi=Phi,
                         dims=dims, bias=bias, act=act, feature_bias=feature_bias,
                         n_threads=self.n_threads, chunk_size=self.chunk)
        eng.progress = self.progress
        eng.given_weight = self.given_weight if s is None else None
        return eng

    def map_rows(self, fn, point=None, rows: int | None = None) -> list:
        """``[fn(block) for each row block]`` in row order (:class:`Block`); with ``point =
        (w, a, theta)`` the block's engine has filled its own per-sample buffers there
        first (``block.engine.buf``).  ``rows``: rows per block (default: a pass's)."""
        check_files(self._files)
        rows = rows or max(self._row_blocks(self.n, self._per_row)[0][1], 1)
        blocks = [(i0, min(i0 + rows, self.n)) for i0 in range(0, self.n, rows)]
        out = []
        for i0, i1 in (progress_bar(blocks, "pass") if self.progress else blocks):
            Phi = self._rows(self.Phi, i0, i1) if self.Phi.shape[0] else None
            sub = Engine(self._rows(self.X, i0, i1), self._rows(self.y, i0, i1),
                         self._rows(self.s, i0, i1), self.loss, self.k, Phi=Phi,
                         dims=None if Phi is not None else self.dims, bias=self.bias,
                         act=self.act, feature_bias=self.feature_bias, n_threads=self.n_threads,
                         chunk_size=self.chunk)
            sub.max_workers = self.max_workers
            fill_block(sub, point)
            out.append(fn(Block((i0, i1), sub)))
        return out

    def _check(self, status):
        if status.any():
            raise MemoryError("resnet_core: could not allocate a kernel workspace")

    def new_buffers(self) -> SampleBuffers | PassValue:
        """Empty per-sample buffers for one point (only its value for a stateless engine)."""
        return PassValue() if self.stateless else SampleBuffers(self.n, self.dtype)

    def sample_quantities(self, w, a, theta):
        """``(l, r, q)`` per sample at a point, as new n-vectors (one value pass)."""
        buf = SampleBuffers(self.n, self.dtype)
        self.value_grad(w, a, theta, buf, need_theta=False)
        return buf.l, buf.r, buf.q

    def _loss_code(self, w, a, theta, buf: SampleBuffers) -> int:
        """Kernel loss code for a pass: the built-in code when the pass must fill ``buf``,
        ``LOSS_EXTERNAL`` when it already holds the point (a user-defined loss fills it
        here, from a prediction pass)."""
        if buf.filled and isinstance(buf, SampleBuffers):
            return LOSS_EXTERNAL
        if self.loss.code >= 0:
            return self.loss.code
        p, _ = self.predict(w, a, theta)
        l, d1, d2 = self.loss.derivatives(p, self.y)
        s64 = self.s.astype(np.float64)
        buf.r[:] = s64 * d1
        buf.q[:] = s64 * d2
        buf.l[:] = l
        buf.value = float(np.dot(s64, l))
        buf.filled = True
        return LOSS_EXTERNAL

    @staticmethod
    def _value_after(code, value: float, buf: SampleBuffers) -> float:
        """Marks ``buf`` filled once a pass that computed the loss completed every block."""
        if code != LOSS_EXTERNAL:
            buf.value = float(value)
            buf.filled = True
        return buf.value

    # -- passes --------------------------------------------------------------------
    def predict(self, w, a, theta, *, features=False, constant=True, X=None, Phi=None):
        """``p = X w + Phi a`` and, when asked, the features (n x k): rows ``[f_i, 1]`` with
        the constant feature, or only ``f_i`` (n x (k - 1)) when ``constant`` is False.
        ``X`` (and ``Phi`` for given features), validated, replace the training data."""
        X = self.X if X is None else X
        Phi = self.Phi if Phi is None else Phi
        T, n = self.n_threads, X.shape[0]
        p = np.empty(n, dtype=self.dtype)
        cols = self.k if constant else self.k - self.feature_bias
        phi = np.empty((n if features else 0, cols), dtype=self.dtype)
        w, a, theta = self._vec(w), self._vec(a), self._vec(theta)
        guarded = self._guarded if X is self.X else (("X", X), ("Phi", Phi))
        for i0, i1 in self._pass_blocks(n, self._per_row):
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _kernels.predict(self._rows(X, i0, i1),
                                 self._rows(Phi, i0, i1) if Phi.shape[0] else Phi, theta,
                                 self.dims, self.bias, self.act, self.feature_bias, w, a,
                                 p[i0:i1], phi[i0:i1] if features else phi, value_out, status,
                                 self.chunk, T, self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(guarded, i0, i1, p[i0:i1])
        return p, (phi if features else None)

    def value_grad(self, w, a, theta, buf: SampleBuffers, *, need_theta):
        """``(F, E[l' x], E[l' phi], dF/dtheta)`` at the point ``buf`` belongs to."""
        code = self._loss_code(w, a, theta, buf)
        n_theta = self._vec(theta).shape[0] if need_theta else 0
        T, w, a = self.n_threads, self._vec(w), self._vec(a)
        value, sums = 0.0, [np.zeros(c, dtype=self.dtype) for c in (self.d, self.k, n_theta)]
        for i0, i1 in self._pass_blocks(self.n, self._per_row):
            vx, vp, vt = self._slots(self.d, self.k, n_theta)
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _kernels.value_grad(*self._common(theta, i0, i1), w, a, code, int(need_theta),
                                    *self._per_sample(buf, i0, i1), value_out, vx, vp,
                                    vt, status, self.chunk, T,
                                    self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(self._guarded, i0, i1, value_out, vx, vp, vt)
            value += value_out.sum()
            for total, slots in zip(sums, (vx, vp, vt)):
                total += slots.sum(axis=0)
        return (self._value_after(code, value, buf), *sums)

    def hvp(self, w, a, theta, dw, da, dtheta, buf: SampleBuffers, *, need_theta):
        """``(E[l'' dp x], E[l'' dp phi] + E[l' dphi], g = E[l' phi], R dF/dtheta)``."""
        code = self._loss_code(w, a, theta, buf)
        n_theta = self._vec(theta).shape[0] if need_theta else 0
        T = self.n_threads
        vecs = (self._vec(w), self._vec(a), self._vec(dw), self._vec(da),
                self._vec(dtheta if need_theta else None))
        value, sums = 0.0, [np.zeros(c, dtype=self.dtype)
                            for c in (self.d, self.k, self.k, n_theta)]
        for i0, i1 in self._pass_blocks(self.n, self._per_row):
            vx, vp, g, vt = self._slots(self.d, self.k, self.k, n_theta)
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _kernels.hvp(*self._common(theta, i0, i1), *vecs, code, int(need_theta),
                             *self._per_sample(buf, i0, i1), value_out, vx, vp, g, vt,
                             status, self.chunk, T, self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(self._guarded, i0, i1, value_out, vx, vp, g, vt)
            value += value_out.sum()
            for total, slots in zip(sums, (vx, vp, g, vt)):
                total += slots.sum(axis=0)
        self._value_after(code, value, buf)
        return tuple(sums)

    def gram(self, w, a, theta, buf: SampleBuffers):
        """``(F, E[l' x], E[l' phi], G = E[l'' z z^T])`` with ``z = [x, phi]``."""
        code = self._loss_code(w, a, theta, buf)
        T, D, w, a = self.n_threads, self.d + self.k, self._vec(w), self._vec(a)
        size = self.dtype.itemsize * (T + 2)  # G, its slots per thread, the symmetrised copy
        check_alloc(f"the Gram matrix of z = [x, phi] (d + k = {D}, n_threads = {T})",
                    size * D * D, "use hessp without the statistics (it streams the data), "
                    f"or fewer features: d + k = {math.isqrt(memory_limit() // size)} is the "
                    "most that fits")
        value, sx, sp = 0.0, np.zeros(self.d, self.dtype), np.zeros(self.k, self.dtype)
        G = np.zeros((D, D), dtype=self.dtype)
        per_row = self._per_row + D * (D + 1) // 2  # the Gram's rank-one updates
        for i0, i1 in self._pass_blocks(self.n, per_row):
            vx, vp = self._slots(self.d, self.k)
            Gs = np.zeros((T, D, D), dtype=self.dtype)
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _kernels.gram(*self._common(theta, i0, i1), w, a, code,
                              *self._per_sample(buf, i0, i1), value_out, vx, vp, Gs, status,
                              self.chunk, T, self._workers(i1 - i0, per_row))
            self._check(status)
            Gb = Gs.sum(axis=0)  # checked after the sum: a NaN or inf survives it
            check_block(self._guarded, i0, i1, value_out, vx, vp, Gb)
            value += value_out.sum()
            sx += vx.sum(axis=0)
            sp += vp.sum(axis=0)
            G += Gb
        value = self._value_after(code, value, buf)
        G = np.triu(G) + np.triu(G, 1).T
        return value, sx, sp, G


class VectorBuffers:
    """Per-sample quantities of one point with ``c`` outputs: ``l`` (n), ``r = s dl/dp``
    (n x c), ``q = softmax(p)`` (n x c, cross-entropy only; the squared loss's Hessian is
    the identity) and ``F``; ``filled`` once a pass has written all of them."""

    __slots__ = ("l", "r", "q", "value", "filled")

    def __init__(self, n: int, c: int, dtype, softmax: bool):
        self.l = np.empty(n, dtype=dtype)
        self.r = np.empty((n, c), dtype=dtype)
        self.q = np.empty((n if softmax else 0, c), dtype=dtype)
        self.value = float("nan")
        self.filled = False


class VectorEngine(Engine):
    """:class:`Engine` for ``c`` outputs (``_vkernels``): scores ``P = X W^T + Phi A^T``.

    ``y`` is the (n, c) target of the squared loss, or the labels as an (n, 1) array of the
    data's dtype for the cross-entropy (validated: integers in ``0..c-1``).  The point
    enters as ``W`` (c x d) and ``A`` (c x k); the sums come back as c x d and c x k
    matrices.  Same slots, blocks and determinism as the scalar engine.
    """

    def __init__(self, X, y, s, loss, k: int, c: int, **kwargs):
        self.c = int(c)
        chunk = kwargs.pop("chunk_size", None)
        super().__init__(X, y, s, loss, k, chunk_size=chunk, **kwargs)
        self.chunk = check_chunk_size(
            chunk, DEFAULT_CHUNK, self.n, self.dims, self.c, X.itemsize,
            entries=_vkernels.workspace_entries)
        self._per_row += self.c * (self.d + self.k)
        self._softmax = loss.labels

    def _vec2(self, M, shape):
        if M is None:
            return np.zeros(shape, dtype=self.dtype)
        return np.ascontiguousarray(M, dtype=self.dtype)

    def _slots3(self, *shapes):
        return [np.zeros((self.n_threads, *shape), dtype=self.dtype) for shape in shapes]

    def new_buffers(self) -> VectorBuffers:
        return VectorBuffers(self.n, self.c, self.dtype, self._softmax)

    def _vcode(self, buf: VectorBuffers) -> int:
        return _vkernels.VLOSS_CODE_EXTERNAL if buf.filled else self.loss.vcode

    def _after(self, code, value, buf):
        if code != _vkernels.VLOSS_CODE_EXTERNAL:
            buf.value = float(value)
            buf.filled = True
        return buf.value

    def _vcommon(self, theta, i0, i1):
        Phi = self.Phi[i0:i1] if self.Phi.shape[0] else self.Phi
        return (self.X[i0:i1], Phi, self.y[i0:i1], self.s[i0:i1], self._vec(theta), self.dims,
                self.bias, self.act, self.feature_bias)

    def predict(self, W, A, theta, *, features=False, constant=True, X=None, Phi=None):
        """Scores ``P = X W^T + Phi A^T`` (n x c) and, when asked, the features (as
        :meth:`Engine.predict`)."""
        X = self.X if X is None else X
        Phi = self.Phi if Phi is None else Phi
        T, n = self.n_threads, X.shape[0]
        P = np.empty((n, self.c), dtype=self.dtype)
        cols = self.k if constant else self.k - self.feature_bias
        phi = np.empty((n if features else 0, cols), dtype=self.dtype)
        W, A = self._vec2(W, (self.c, self.d)), self._vec2(A, (self.c, self.k))
        theta = self._vec(theta)
        guarded = self._guarded if X is self.X else (("X", X), ("Phi", Phi))
        for i0, i1 in self._row_blocks(n, self._per_row):
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _vkernels.predict(X[i0:i1], Phi[i0:i1] if Phi.shape[0] else Phi, theta,
                                  self.dims, self.bias, self.act, self.feature_bias, W, A,
                                  P[i0:i1], phi[i0:i1] if features else phi, value_out,
                                  status, self.chunk, T, self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(guarded, i0, i1, P[i0:i1])
        return P, (phi if features else None)

    def value_grad(self, W, A, theta, buf: VectorBuffers, *, need_theta):
        """``(F, SX = E[r x^T], SP = E[r phi^T], dF/dtheta)``, ``r = dl/dp``."""
        code = self._vcode(buf)
        n_theta = self._vec(theta).shape[0] if need_theta else 0
        T, W, A = self.n_threads, self._vec2(W, None), self._vec2(A, None)
        shapes = ((self.c, self.d), (self.c, self.k), (n_theta,))
        value, sums = 0.0, [np.zeros(shape, dtype=self.dtype) for shape in shapes]
        for i0, i1 in self._row_blocks(self.n, self._per_row):
            slots = self._slots3(*shapes)
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _vkernels.value_grad(*self._vcommon(theta, i0, i1), W, A, code,
                                     int(need_theta), buf.r[i0:i1], buf.q[i0:i1],
                                     buf.l[i0:i1], value_out, *slots, status, self.chunk, T,
                                     self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(self._guarded, i0, i1, value_out, *slots)
            value += value_out.sum()
            for total, part in zip(sums, slots):
                total += part.sum(axis=0)
        return (self._after(code, value, buf), *sums)

    def hvp(self, W, A, theta, dW, dA, dtheta, buf: VectorBuffers, *, need_theta):
        """``(VX = E[Rr x^T], VP = E[Rr phi^T] + E[r Rphi^T], g = E[r phi^T], R dF/dtheta)``
        with ``Rr = H_l Rp`` (``_vkernels`` design note 2)."""
        code = self._vcode(buf)
        n_theta = self._vec(theta).shape[0] if need_theta else 0
        T = self.n_threads
        mats = (self._vec2(W, None), self._vec2(A, None), self._vec2(dW, None),
                self._vec2(dA, None), self._vec(dtheta if need_theta else None))
        shapes = ((self.c, self.d), (self.c, self.k), (self.c, self.k), (n_theta,))
        value, sums = 0.0, [np.zeros(shape, dtype=self.dtype) for shape in shapes]
        for i0, i1 in self._row_blocks(self.n, self._per_row):
            slots = self._slots3(*shapes)
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                _vkernels.hvp(*self._vcommon(theta, i0, i1), *mats, code, int(need_theta),
                              buf.r[i0:i1], buf.q[i0:i1], buf.l[i0:i1], value_out, *slots,
                              status, self.chunk, T, self._workers(i1 - i0, self._per_row))
            self._check(status)
            check_block(self._guarded, i0, i1, value_out, *slots)
            value += value_out.sum()
            for total, part in zip(sums, slots):
                total += part.sum(axis=0)
        self._after(code, value, buf)
        return tuple(sums)

    def derive(self, *, k: int, Phi=None, dims=None, bias=False, act=0, feature_bias=False,
               s=None) -> "VectorEngine":
        """As :meth:`Engine.derive`, with the same c outputs."""
        eng = VectorEngine(self.X, self.y, self.s if s is None else s, self.loss, k, self.c,
                           Phi=Phi, dims=dims, bias=bias, act=act, feature_bias=feature_bias,
                           n_threads=self.n_threads, chunk_size=self.chunk)
        eng.progress = self.progress
        eng.given_weight = self.given_weight if s is None else None
        return eng

    def map_rows(self, fn, point=None, rows=None):
        raise NotImplementedError("row-block reductions (map_rows) are not implemented for "
                                  "c outputs")

    def gram(self, *args, **kwargs):
        raise NotImplementedError(
            "the Gram matrix / sufficient statistics of the partial Hessian are not "
            "implemented for c outputs (the loss Hessian is c x c per sample); use hessp")

def fill_block(engine: Engine, point) -> None:
    """Give ``engine`` (over one block) per-sample buffers ``engine.buf``, filled at
    ``point = (w, a, theta)`` when one is given (a value pass), else None."""
    engine.buf = None
    if point is not None:
        engine.buf = SampleBuffers(engine.n, engine.dtype)
        engine.value_grad(*point, engine.buf, need_theta=False)


def progress_bar(items, desc: str, total: int | None = None):
    """``items`` under a tqdm bar that appears once it has run ``PROGRESS_DELAY`` seconds
    (tqdm is imported only here)."""
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError("progress=True needs tqdm: pip install tqdm") from exc
    return tqdm(items, desc=desc, unit="block", delay=PROGRESS_DELAY, leave=False, total=total)
