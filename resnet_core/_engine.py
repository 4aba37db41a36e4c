"""Calls into the compiled kernels: allocation of outputs, slot reduction.

An :class:`Engine` holds validated data (``X``, ``y``, normalised weights ``s``), the source
of the features (a given ``Phi``, or an MLP evaluated chunk by chunk) and the loss.  It holds
nothing about a point: the per-sample quantities of a point, ``l(p_i)``, ``r_i = s_i l'(p_i)``
and ``q_i``, live in :class:`SampleBuffers` that the caller owns (one per point, see
:mod:`resnet_core.state`).  The first pass at a point computes them inside the kernel (a
built-in loss) or from a prediction pass (a user-defined loss) and marks the buffers
filled; later passes read them.  A pass that does not complete (an interrupt, a
``MemoryError``) leaves the buffers unfilled, so nothing stale is ever read.  Passes on
different buffers may run at the same time from several threads.  Extra memory: the
buffers and the per-slot partial sums; nothing of size ``n x width``.

One output and c outputs (Remark 2) are one engine: every pass runs the same loop
(:meth:`Engine._run`: row blocks, progress bar, slots, guards) over the scalar kernels
(``_kernels``) or the c-output ones (``_vkernels``), which take the same arguments in the
same order.  Only the shapes differ (``vector`` says which):

=========================  ========================  =====================================
                           one output                c outputs (``vector``)
=========================  ========================  =====================================
point ``w``, ``a``         (d,), (k,)                ``W`` (c, d), ``A`` (c, k)
``y`` as the kernels take  (n,)                      (n, c) targets, or (n, 1) labels
prediction ``p``           (n,)                      (n, c) scores
``r = s dl/dp``            (n,)                      (n, c)
``q``                      ``s l''`` (n,)            softmax (n, c) (cross-entropy), (0, c)
``l``                      (n,)                      (n,)
sums ``sx``, ``sp``, ``g``  (d,), (k,), (k,)          (c, d), (c, k), (c, k)
=========================  ========================  =====================================

A *stateless* engine (out-of-core data, ``resnet_core._sources.StreamEngine``; dask
arrays, ``resnet_core._dask.DaskEngine``) keeps no n-vector: a point holds a
:class:`PassValue` (``keeps_samples`` False) and every pass recomputes ``l, r, q`` block by
block inside the kernel (built-in losses).  :meth:`Engine.map_rows` runs a function over
the row blocks (:class:`Block`, each with an engine of its own) and returns the results in
row order: the reductions the passes do not cover (a tall-skinny QR, margins, standard
errors) are built on it, the same way for every kind of engine.  :class:`EngineProtocol`
states what the rest of the package may use of an engine.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from . import _kernels, _vkernels
from ._buffers import PassValue, SampleBuffers
from ._guards import check_block, check_files, mapped_files
from ._threads import blas_single_thread, resolve_n_threads
from ._validation import check_alloc, check_chunk_size, resolve_dtype
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


class Block:
    """One row block of the data, as in-memory arrays, and an engine over it alone.

    ``rows`` is ``(i0, i1)`` in the whole data set; ``engine`` runs the kernels on the
    block (its weights are the block of the global normalised weights ``s``)."""

    __slots__ = ("rows", "X", "y", "s", "engine")

    def __init__(self, rows, engine: "Engine"):
        self.rows, self.engine = rows, engine
        self.X, self.y, self.s = engine.X, engine.y, engine.s


@runtime_checkable
class EngineProtocol(Protocol):
    """What the package may use of an engine (objectives, states, optimisers, certificates,
    the linear baseline, pointfiles).  :class:`Engine` and its kinds (``StreamEngine``,
    ``DaskEngine``) implement it; a new kind of engine is one class that does.

    Data: ``X``, ``y`` (as the kernels take them: see the module's table), ``s`` (the
    normalised weights, summing to one), ``loss``, ``n``, ``d``, ``k`` (features, the
    constant one included), ``c`` outputs and ``vector`` (c outputs rather than one),
    ``dtype``, the MLP (``dims``, ``bias``, ``act``) or given features ``Phi``,
    ``feature_bias``; settings ``n_threads``, ``chunk``, ``progress``, ``max_workers``;
    ``given_weight`` (the caller's weights before normalisation, or None).

    ``stateless``: True when the engine keeps no n-vector; then ``new_buffers`` returns a
    :class:`PassValue` and each pass recomputes the per-sample quantities (``map_rows`` is
    how a caller gets at the rows).

    The passes take the point as ``(w, a, theta)`` (:attr:`resnet_core.state.PointState.
    head_point`) and the point's buffers from ``new_buffers``:
    ``value_grad -> (F, sx, sp, dF/dtheta)``, ``hvp -> (vx, vp, g, R dF/dtheta)``,
    ``gram -> (F, sx, sp, G)`` (one output only), ``predict -> (p, features or None)``,
    ``sample_quantities -> (l, r, q)``; ``derive`` gives an engine of the same kind over the
    same rows with other features; ``map_rows(fn, point, rows)`` is ``[fn(block) for each
    row block]`` in row order.
    """

    X: Any
    y: Any
    s: Any
    loss: Loss
    n: int
    d: int
    k: int
    c: int
    vector: bool
    dtype: np.dtype
    stateless: bool
    n_threads: int
    chunk: int
    progress: bool

    Phi: Any
    dims: np.ndarray
    bias: int
    act: int
    feature_bias: int
    given_weight: Any
    max_workers: int | None

    def new_buffers(self) -> SampleBuffers | PassValue: ...
    def predict(self, w, a, theta, *, features=False, constant=True, X=None,
                Phi=None) -> tuple: ...
    def value_grad(self, w, a, theta, buf, *, need_theta) -> tuple: ...
    def hvp(self, w, a, theta, dw, da, dtheta, buf, *, need_theta) -> tuple: ...
    def gram(self, w, a, theta, buf) -> tuple: ...
    def sample_quantities(self, w, a, theta) -> tuple: ...
    def derive(self, *, k: int, Phi=None, dims=None, bias=False, act=0, feature_bias=False,
               s=None) -> "EngineProtocol": ...
    def map_rows(self, fn: Callable, point=None, rows: int | None = None) -> list: ...


class Engine:
    """Streaming evaluation of ``p = X w + Phi a`` (or ``P = X W^T + Phi A^T``, c outputs)
    and the loss over validated data.

    Parameters
    ----------
    X, y, s : ndarray
        Validated, C-contiguous, same float dtype; ``s`` sums to one; ``y`` as the kernels
        take it (module notes).
    loss : Loss
        A :class:`~resnet_core.losses.VectorLoss` (``loss.vector``) gives c outputs.
    k : int
        Feature dimension, the constant feature included.
    c : int
        Outputs of a vector loss (the scores' columns); 1 otherwise.
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

    def __init__(self, X, y, s, loss: Loss, k: int, *, c: int = 1, Phi=None, dims=None,
                 bias=False, act=0, feature_bias=False, n_threads=None, chunk_size=None):
        self.X, self.y, self.s, self.loss, self.k = X, y, s, loss, k
        self.vector, self.c = bool(loss.vector), int(c)
        if not self.vector and self.c != 1:
            raise ValueError(f"the {loss.name} loss has one output; got c = {c}")
        self._external = (_vkernels.VLOSS_CODE_EXTERNAL if self.vector else LOSS_EXTERNAL)
        self._outputs = (self.c,) if self.vector else ()  # trailing axes of p, r, w, sums
        self._shape_x, self._shape_f = (*self._outputs, X.shape[1]), (*self._outputs, k)
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
        self.chunk = check_chunk_size(chunk_size, DEFAULT_CHUNK, self.n, self.dims,
                                      self.c if self.vector else k, self.dtype.itemsize,
                                      entries=self._kern.workspace_entries)
        self._empty = np.empty(0, dtype=self.dtype)
        dims = [int(h) for h in self.dims]
        # multiply-adds per sample of a value and gradient pass, roughly
        self._per_row = max(self.d + self.k + sum(a * b for a, b in zip(dims[:-1], dims[1:])), 1)
        if self.vector:
            self._per_row += self.c * (self.d + self.k)

    # -- helpers -------------------------------------------------------------------
    @property
    def _kern(self):  # a property: modules do not pickle
        """The kernels: ``_vkernels`` for c outputs, else ``_kernels`` (same arguments)."""
        return _vkernels if self.vector else _kernels

    def _vec(self, v):
        return np.ascontiguousarray(v, dtype=self.dtype) if v is not None else self._empty

    def _head(self, v, cols: int):
        """A head vector (``w``: ``cols = d``; ``a``: ``cols = k``) as the kernels take it:
        (cols,) or (c, cols); zeros for None."""
        if v is None:
            return np.zeros((*self._outputs, cols), dtype=self.dtype)
        return np.ascontiguousarray(v, dtype=self.dtype)

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

    def _shown(self, blocks):
        """``blocks`` under a tqdm bar (shown after ``PROGRESS_DELAY`` seconds) when
        ``progress`` is set."""
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
                self._rows(self.s, i0, i1), theta, self.dims, self.bias, self.act,
                self.feature_bias)

    def sample_buffers(self, n: int) -> SampleBuffers:
        """Empty per-sample buffers over ``n`` rows (shapes: the module's table)."""
        return SampleBuffers(n, self.dtype, outputs=self.c if self.vector else None,
                             softmax=self.vector and self.loss.labels)

    def sample_shapes(self, n: int) -> tuple[tuple, tuple, tuple]:
        """Shapes of ``(l, r, q)`` over ``n`` rows (the module's table)."""
        q_rows = n if not self.vector or self.loss.labels else 0
        return (n,), (n, *self._outputs), (q_rows, *self._outputs)

    def _per_sample(self, buf, i0, i1):
        """``(r, q, l)`` of rows ``i0:i1``: views of the point's buffers, or block-local
        arrays the kernel fills in this pass (stateless engine)."""
        if not buf.keeps_samples:
            buf = self.sample_buffers(i1 - i0)
            return buf.r, buf.q, buf.l
        return buf.r[i0:i1], buf.q[i0:i1], buf.l[i0:i1]

    def _run(self, kernel, args, shapes, per_row, *, n=None, guarded=None, results=None):
        """The pass loop of every pass: for each row block ``i0:i1`` (under a progress bar
        when asked), ``kernel(*args(i0, i1), value_out, *slots, status, chunk, n_threads,
        workers)`` with zeroed per-thread slots of the given ``shapes``; the slots are added
        in a fixed order (first within a block, then block after block), the block's sums
        (and ``results(i0, i1)``) checked by the guards.  Returns ``(value, sums)``."""
        T = self.n_threads
        value, sums = 0.0, [np.zeros(shape, dtype=self.dtype) for shape in shapes]
        for i0, i1 in self._shown(self._row_blocks(self.n if n is None else n, per_row)):
            slots = [np.zeros((T, *shape), dtype=self.dtype) for shape in shapes]
            value_out, status = np.zeros(T), np.zeros(T, dtype=np.intc)
            with blas_single_thread():
                kernel(*args(i0, i1), value_out, *slots, status, self.chunk, T,
                       self._workers(i1 - i0, per_row))
            if status.any():
                raise MemoryError("resnet_core: could not allocate a kernel workspace")
            # the slots' sums (one slot: itself, exactly); a NaN or inf survives the sum
            parts = [slot[0] if T == 1 else slot.sum(axis=0) for slot in slots]
            if results:
                parts += results(i0, i1)
            check_block(guarded or self._guarded, i0, i1, value_out, *parts)
            value += value_out.sum()
            for total, part in zip(sums, parts):
                total += part
        return value, sums

    def derive(self, *, k: int, Phi=None, dims=None, bias=False, act=0, feature_bias=False,
               s=None) -> "Engine":
        """An engine of the same kind and outputs on the same rows with other features
        (``Phi``, or an MLP of ``dims``) and optionally other normalised weights ``s``."""
        eng = type(self)(self.X, self.y, self.s if s is None else s, self.loss, k, c=self.c,
                         Phi=Phi, dims=dims, bias=bias, act=act, feature_bias=feature_bias,
                         n_threads=self.n_threads, chunk_size=self.chunk)
        eng.progress = self.progress
        eng.given_weight = self.given_weight if s is None else None
        return eng

    def block_engine(self, X, y, s, Phi) -> "Engine":
        """An in-memory engine with this one's model, loss and outputs over one row block
        (``Phi`` the block's given features, or None)."""
        eng = Engine(X, y, s, self.loss, self.k, c=self.c, Phi=Phi,
                     dims=None if Phi is not None else self.dims, bias=self.bias,
                     act=self.act, feature_bias=self.feature_bias, n_threads=self.n_threads,
                     chunk_size=self.chunk)
        eng.max_workers = self.max_workers
        return eng

    def map_rows(self, fn, point=None, rows: int | None = None) -> list:
        """``[fn(block) for each row block]`` in row order (:class:`Block`); with ``point =
        (w, a, theta)`` the block's engine has filled its own per-sample buffers there
        first (``block.engine.buf``).  ``rows``: rows per block (default: a pass's)."""
        check_files(self._files)
        rows = rows or max(self._row_blocks(self.n, self._per_row)[0][1], 1)
        blocks = [(i0, min(i0 + rows, self.n)) for i0 in range(0, self.n, rows)]
        out = []
        for i0, i1 in self._shown(blocks):
            Phi = self._rows(self.Phi, i0, i1) if self.Phi.shape[0] else None
            sub = self.block_engine(self._rows(self.X, i0, i1), self._rows(self.y, i0, i1),
                                    self._rows(self.s, i0, i1), Phi)
            fill_block(sub, point)
            out.append(fn(Block((i0, i1), sub)))
        return out

    def new_buffers(self) -> SampleBuffers | PassValue:
        """Empty per-sample buffers for one point (only its value for a stateless engine)."""
        return PassValue() if self.stateless else self.sample_buffers(self.n)

    def sample_quantities(self, w, a, theta):
        """``(l, r, q)`` per sample at a point, as new arrays (one value pass)."""
        buf = self.sample_buffers(self.n)
        self.value_grad(w, a, theta, buf, need_theta=False)
        return buf.l, buf.r, buf.q

    def _loss_code(self, w, a, theta, buf) -> int:
        """Kernel loss code for a pass: the built-in code when the pass must fill ``buf``
        (or, stateless, recompute its quantities), the external code when it already holds
        the point (a user-defined loss fills it here, from a prediction pass)."""
        if buf.filled and buf.keeps_samples:
            return self._external
        code = self.loss.vcode if self.vector else self.loss.code
        if code >= 0:
            return code
        p, _ = self.predict(w, a, theta)
        l, d1, d2 = self.loss.derivatives(p, self.y)
        s64 = self.s.astype(np.float64)
        buf.r[:] = s64 * d1
        buf.q[:] = s64 * d2
        buf.l[:] = l
        buf.value = float(np.dot(s64, l))
        buf.filled = True
        return self._external

    def _value_after(self, code, value: float, buf) -> float:
        """Marks ``buf`` filled once a pass that computed the loss completed every block."""
        if code != self._external:
            buf.value = float(value)
            buf.filled = True
        return buf.value

    # -- passes --------------------------------------------------------------------
    def predict(self, w, a, theta, *, features=False, constant=True, X=None, Phi=None):
        """``p = X w + Phi a`` (scores ``P = X W^T + Phi A^T``, n x c) and, when asked, the
        features (n x k): rows ``[f_i, 1]`` with the constant feature, or only ``f_i``
        (n x (k - 1)) when ``constant`` is False.  ``X`` (and ``Phi`` for given features),
        validated, replace the training data."""
        X = self.X if X is None else X
        Phi = self.Phi if Phi is None else Phi
        n = X.shape[0]
        p = np.empty((n, *self._outputs), dtype=self.dtype)
        cols = self.k if constant else self.k - self.feature_bias
        phi = np.empty((n if features else 0, cols), dtype=self.dtype)
        w, a, theta = self._head(w, self.d), self._head(a, self.k), self._vec(theta)

        def args(i0, i1):
            return (self._rows(X, i0, i1), self._rows(Phi, i0, i1) if Phi.shape[0] else Phi,
                    theta, self.dims, self.bias, self.act, self.feature_bias, w, a,
                    p[i0:i1], phi[i0:i1] if features else phi)

        self._run(self._kern.predict, args, (), self._per_row, n=n,
                  guarded=None if X is self.X else (("X", X), ("Phi", Phi)),
                  results=lambda i0, i1: (p[i0:i1],))
        return p, (phi if features else None)

    def value_grad(self, w, a, theta, buf, *, need_theta):
        """``(F, sx = E[r x], sp = E[r phi], dF/dtheta)`` at the point ``buf`` belongs to
        (``r = dl/dp``; with c outputs ``E[r x^T]``, ``E[r phi^T]``)."""
        code = self._loss_code(w, a, theta, buf)
        theta = self._vec(theta)
        w, a = self._head(w, self.d), self._head(a, self.k)
        shapes = (self._shape_x, self._shape_f, (theta.shape[0] if need_theta else 0,))

        def args(i0, i1):
            return (*self._common(theta, i0, i1), w, a, code, int(need_theta),
                    *self._per_sample(buf, i0, i1))

        value, sums = self._run(self._kern.value_grad, args, shapes, self._per_row)
        return (self._value_after(code, value, buf), *sums)

    def hvp(self, w, a, theta, dw, da, dtheta, buf, *, need_theta):
        """``(E[l'' dp x], E[l'' dp phi] + E[l' dphi], g = E[l' phi], R dF/dtheta)`` (with c
        outputs ``l'' dp`` is ``H_l Rp``, ``_vkernels`` design note 2)."""
        code = self._loss_code(w, a, theta, buf)
        theta = self._vec(theta)
        vecs = (self._head(w, self.d), self._head(a, self.k), self._head(dw, self.d),
                self._head(da, self.k), self._vec(dtheta if need_theta else None))
        shapes = (self._shape_x, self._shape_f, self._shape_f,
                  (theta.shape[0] if need_theta else 0,))

        def args(i0, i1):
            return (*self._common(theta, i0, i1), *vecs, code, int(need_theta),
                    *self._per_sample(buf, i0, i1))

        value, sums = self._run(self._kern.hvp, args, shapes, self._per_row)
        self._value_after(code, value, buf)
        return tuple(sums)

    def gram(self, w, a, theta, buf):
        """``(F, E[l' x], E[l' phi], G = E[l'' z z^T])`` with ``z = [x, phi]`` (one output
        only: with c outputs the loss Hessian is c x c per sample)."""
        if self.vector:
            raise NotImplementedError(
                "the Gram matrix / sufficient statistics of the partial Hessian are not "
                "implemented for c outputs (the loss Hessian is c x c per sample); use hessp")
        code = self._loss_code(w, a, theta, buf)
        T, D, theta = self.n_threads, self.d + self.k, self._vec(theta)
        w, a = self._head(w, self.d), self._head(a, self.k)
        size = self.dtype.itemsize * (T + 2)  # G, its slots per thread, the symmetrised copy
        check_alloc(f"the Gram matrix of z = [x, phi] (d + k = {D}, n_threads = {T})",
                    size * D * D, lambda limit: "use hessp without the statistics (it "
                    f"streams the data), or fewer features: d + k = "
                    f"{math.isqrt(limit // size)} is the most that fits")

        def args(i0, i1):
            return (*self._common(theta, i0, i1), w, a, code, *self._per_sample(buf, i0, i1))

        per_row = self._per_row + D * (D + 1) // 2  # the Gram's rank-one updates
        value, (sx, sp, G) = self._run(self._kern.gram, args,
                                       ((self.d,), (self.k,), (D, D)), per_row)
        value = self._value_after(code, value, buf)
        G = np.triu(G) + np.triu(G, 1).T
        return value, sx, sp, G


def fill_block(engine: Engine, point) -> None:
    """Give ``engine`` (over one block) per-sample buffers ``engine.buf``, filled at
    ``point = (w, a, theta)`` when one is given (a value pass), else None."""
    engine.buf = None
    if point is not None:
        engine.buf = engine.sample_buffers(engine.n)
        engine.value_grad(*point, engine.buf, need_theta=False)


def progress_bar(items, desc: str, total: int | None = None):
    """``items`` under a tqdm bar that appears once it has run ``PROGRESS_DELAY`` seconds
    (tqdm is imported only here)."""
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError("progress=True needs tqdm: pip install tqdm") from exc
    return tqdm(items, desc=desc, unit="block", delay=PROGRESS_DELAY, leave=False, total=total)
