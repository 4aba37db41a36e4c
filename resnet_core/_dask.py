"""Passes over dask arrays: one task per row block, partial sums back, added in block order.

A :class:`DaskEngine` holds the dask arrays ``X, y`` (``Phi``, the raw sample weights),
rechunked so that their row blocks line up (``X`` keeps its row chunks, one block of
columns).  A pass builds one task per block from the arrays' own chunks
(``Array.to_delayed``): the task builds an in-memory :class:`~resnet_core._engine.Engine`
over its block (weights ``s_b = w_b / sum(w)``, or ``1 / n``), runs the compiled kernels
there with block-local per-sample buffers, and returns only the partial sums (value,
gradients, Hessian-vector products, Gram matrix, or what a :meth:`map_rows` function
returns).  ``dask.compute`` runs the tasks on the active scheduler (a
``distributed.Client`` if one is the default, else dask's local scheduler); the client adds
the results in block order.  So the data stay where they are, and a result depends on the
row chunks and ``n_threads`` (the kernel's slots) only: the same numbers run after run,
whatever the scheduler or the number of workers.

Passes are stateless: the per-sample derivatives are recomputed inside every pass by the
kernel, which is why only the built-in losses are accepted.  A task runs its kernel calls on
at most the cores its process has per dask thread (``OMP_NUM_THREADS`` of a distributed
worker, set to 1 by its nanny by default), so tasks do not oversubscribe the cores.
"""

from __future__ import annotations

import functools

import numpy as np

from ._engine import PROGRESS_DELAY, Block, Engine, fill_block, progress_bar
from ._sources import (Weights, check_block, check_feature_columns, check_meta,
                       combine_weight_stats, is_dask, weight_block_stats)
from ._targets import target_kind, vector_loss
from ._threads import default_n_threads
from ._validation import check_label_block, check_n_classes, resolve_dtype

__all__ = ["DaskEngine", "prepare_dask"]

# Partial results added per node of the reduction tree of a pass.
FAN_IN = 8


def import_dask():
    """``(dask, dask.array)``, with what to install when dask is missing."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - the objective saw a dask array
        raise ImportError("dask arrays need the optional extra: pip install "
                          "'resnet-core[dask]'") from exc
    return dask, da


def _task_threads(local_cap: int) -> int:
    """Threads a task's kernel calls may use: the process's cores per dask thread on a
    distributed worker, ``local_cap`` (decided by the client) otherwise."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return local_cap
    return max(1, default_n_threads() // max(int(worker.state.nthreads), 1))


def _local_cap(n_blocks: int) -> int:
    """Threads per task under dask's local schedulers: the cores shared by the tasks that
    run at once (one for the synchronous scheduler)."""
    dask, _ = import_dask()
    from dask.base import get_scheduler
    sched = get_scheduler()
    if sched is dask.local.get_sync:
        return default_n_threads()
    import dask.threaded
    if sched is dask.threaded.get:
        pool = dask.config.get("num_workers", None) or default_n_threads()
        return max(1, default_n_threads() // max(min(int(pool), n_blocks), 1))
    return 1  # processes or an unknown scheduler: one thread per task


class _Spec:
    """What a task needs to build its block's engine (small; shipped with every task)."""

    def __init__(self, n, dtype, loss, k, c, dims, bias, act, feature_bias, n_threads, chunk,
                 has_phi, weights):
        self.n, self.dtype, self.loss, self.k, self.c = n, np.dtype(dtype), loss, k, c
        self.dims, self.bias, self.act, self.feature_bias = dims, bias, act, feature_bias
        self.n_threads, self.chunk, self.has_phi = n_threads, chunk, has_phi
        self.weights = weights  # None: uniform; (largest, total): w / largest / total


def _block_engine(spec: _Spec, row0, X, y, w, Phi, cap) -> Block:
    dt = spec.dtype
    X = np.ascontiguousarray(X, dtype=dt)
    m = X.shape[0]
    if spec.weights is None:
        s = np.full(m, 1.0 / spec.n, dtype=dt)
    else:
        largest, total = spec.weights
        s = ((np.asarray(w, dtype=np.float64) / largest) / total).astype(dt)
    Phi = (np.ascontiguousarray(Phi, dtype=dt) if spec.has_phi
           else np.empty((m, 0), dtype=dt) if spec.dims.size == 1 else None)
    eng = Engine(X, np.ascontiguousarray(y, dtype=dt), s, spec.loss, spec.k, c=spec.c, Phi=Phi,
                 dims=spec.dims, bias=spec.bias, act=spec.act,
                 feature_bias=spec.feature_bias, n_threads=spec.n_threads,
                 chunk_size=min(spec.chunk, m))
    eng.max_workers = _task_threads(cap)
    return Block((row0, row0 + m), eng)


def _run_block(spec, row0, cap, fn, point, X, y, w, Phi):
    """One task: the block's engine, its buffers filled at ``point`` if asked, ``fn``."""
    block = _block_engine(spec, row0, X, y, w, Phi, cap)
    fill_block(block.engine, point)
    return fn(block)


def _pass(method, args, kwargs, block):
    """A pass of the block's own engine with fresh block-local buffers."""
    eng = block.engine
    return getattr(eng, method)(*args, eng.new_buffers(), **kwargs)


def _predict(args, kwargs, block):
    return block.engine.predict(*args, **kwargs)


def _validate(loss, dtype, row0, X, y, w, Phi):
    """Checks of one raw block; returns the block's weight statistics (or None) and its
    largest label + 1 (cross-entropy; else 0)."""
    check_block("X", np.asarray(X), row0)
    found = 0
    if loss.vector and loss.labels:
        found = check_label_block(np.asarray(y)[:, 0], dtype, row0)
    else:
        check_block("y", np.asarray(y), row0)
        loss.check_labels(np.asarray(y))
    if Phi is not None:
        check_block("Phi", np.asarray(Phi), row0)
    return None if w is None else weight_block_stats(np.asarray(w), row0), found


class DaskEngine(Engine):
    """The engine's passes as tasks over the row blocks of dask arrays (module notes).

    ``X, y`` (and ``Phi``) are validated dask arrays with aligned row chunks (``y`` as the
    kernels take it: (n,), (n, c), or the (n, 1) labels); ``s`` is a
    :class:`~resnet_core._sources.Weights` over the raw dask weights and their two
    statistics (``w`` None for uniform weights), kept as ``weights``.  ``self.s`` is then
    the lazy normalised weights.
    """

    stateless = True

    def __init__(self, X, y, s: Weights, loss, k, *, c=1, Phi=None, dims=None, bias=False,
                 act=0, feature_bias=False, n_threads=None, chunk_size=None):
        self.weights = s
        super().__init__(X, y, np.empty(0), loss, k, c=c, Phi=Phi,
                         dims=dims, bias=bias, act=act, feature_bias=feature_bias,
                         n_threads=n_threads, chunk_size=chunk_size)
        self._phi = Phi
        self.s = _normalised_weights(s, X.chunks[0])
        stats = None if s.w is None else (s.largest, s.total)
        self._spec = _Spec(self.n, self.dtype, loss, k, self.c, self.dims, self.bias,
                           self.act, self.feature_bias, self.n_threads, self.chunk,
                           Phi is not None, stats)
        self._parts = _delayed_blocks(X, y, s.w, Phi)

    def derive(self, *, k, Phi=None, dims=None, bias=False, act=0, feature_bias=False,
               s=None) -> "DaskEngine":
        if s is not None:
            raise ValueError("other weights on distributed data are not supported")
        if Phi is not None:
            Phi = _align(Phi, self.X.chunks[0])
        eng = DaskEngine(self.X, self.y, self.weights, self.loss, k, c=self.c, Phi=Phi,
                         dims=dims, bias=bias, act=act, feature_bias=feature_bias,
                         n_threads=self.n_threads, chunk_size=self.chunk)
        eng.progress = self.progress
        return eng

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_parts"] = None  # rebuilt from the arrays
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._parts = _delayed_blocks(self.X, self.y, self.weights.w, self._phi)

    # -- the one primitive -------------------------------------------------------------------
    def _tasks(self, fn, point=None) -> list:
        """One Delayed per row block: ``fn(block)`` where the block lives.  The function and
        the point are one key each in the graph, sent once to each worker that needs them
        (not once per task)."""
        dask, _ = import_dask()
        cap = _local_cap(len(self._parts))
        spec = dask.delayed(self._spec, pure=True, traverse=False)
        fn = dask.delayed(fn, pure=True, traverse=False)
        point = None if point is None else dask.delayed(point, pure=True, traverse=False)
        return [dask.delayed(_run_block, pure=True)(spec, row0, cap, fn, point, *parts)
                for row0, _, parts in self._parts]

    def _compute(self, tasks) -> list:
        """``dask.compute`` of the tasks on the active scheduler; a clear error when a
        worker died once too often (the scheduler retries a task whose worker died)."""
        dask, _ = import_dask()
        try:
            if self.progress:
                return list(compute_with_progress(dask, tasks, "pass"))
            return list(dask.compute(*tasks))
        except Exception as exc:
            if type(exc).__name__ != "KilledWorker":
                raise
            raise RuntimeError(
                "a pass over distributed data failed: the workers running one of its blocks "
                f"died repeatedly ({exc}); no partial result was used") from exc

    def map_rows(self, fn, point=None, rows=None) -> list:
        """``[fn(block) for each row block]`` in row order, each computed by a task where
        the block lives (``rows`` is ignored: the blocks are the arrays' row chunks)."""
        return self._compute(self._tasks(fn, point))

    # -- passes ------------------------------------------------------------------------------
    def _reduce(self, method, args, kwargs):
        """A pass's partial sums, added on the workers in a fixed tree of ``FAN_IN`` blocks
        per node, in block order: the client receives one set of sums (a progress bar
        shows the blocks instead, which the client then adds in order)."""
        dask, _ = import_dask()
        parts = self._tasks(functools.partial(_pass, method, args, kwargs))
        if self.progress:
            return _add_parts(*self._compute(parts))
        while len(parts) > 1:
            parts = [dask.delayed(_add_parts, pure=True)(*parts[i:i + FAN_IN])
                     for i in range(0, len(parts), FAN_IN)]
        return self._compute(parts)[0]

    def value_grad(self, w, a, theta, buf, *, need_theta):
        F, *sums = self._reduce("value_grad", (w, a, theta), {"need_theta": need_theta})
        buf.value, buf.filled = float(F), True
        return (buf.value, *sums)

    def hvp(self, w, a, theta, dw, da, dtheta, buf, *, need_theta):
        return tuple(self._reduce("hvp", (w, a, theta, dw, da, dtheta),
                                  {"need_theta": need_theta}))

    def gram(self, w, a, theta, buf):
        F, sx, sp, G = self._reduce("gram", (w, a, theta), {})
        buf.value, buf.filled = float(F), True
        return float(F), sx, sp, G

    def predict(self, w, a, theta, *, features=False, constant=True, X=None, Phi=None):
        """Lazy dask arrays ``p`` (and the features) over the training rows; in memory for
        new inputs ``X``."""
        if X is not None:
            rows = np.zeros(X.shape[0], self.dtype)
            eng = self.block_engine(X, rows, rows, Phi)
            return eng.predict(w, a, theta, features=features, constant=constant)
        dask, da = import_dask()
        cap = _local_cap(len(self._parts))
        fn = functools.partial(_predict, (w, a, theta), {"features": features,
                                                         "constant": constant})
        cols = self.k if constant else self.k - self.feature_bias
        ps, phis = [], []
        for row0, m, parts in self._parts:
            out = dask.delayed(_run_block, pure=True, nout=2)(self._spec, row0, cap, fn,
                                                              None, *parts)
            ps.append(da.from_delayed(out[0], shape=(m, *self._outputs), dtype=self.dtype))
            if features:
                phis.append(da.from_delayed(out[1], shape=(m, cols), dtype=self.dtype))
        p = da.concatenate(ps)
        return p, (da.concatenate(phis) if features else None)

    def sample_quantities(self, w, a, theta):
        """Lazy dask arrays ``(l, r, q)`` per sample."""
        dask, da = import_dask()
        cap = _local_cap(len(self._parts))
        cols = [[], [], []]
        for row0, m, parts in self._parts:
            out = dask.delayed(_run_block, pure=True, nout=3)(self._spec, row0, cap,
                                                              _block_quantities, (w, a, theta),
                                                              *parts)
            for col, o, shape in zip(cols, out, self.sample_shapes(m)):
                col.append(da.from_delayed(o, shape=shape, dtype=self.dtype))
        return tuple(da.concatenate(c) for c in cols)


def _add_parts(*parts):
    """The sums of a pass's partial results, added in the order given."""
    total = list(parts[0])
    for part in parts[1:]:
        for i, v in enumerate(part):
            total[i] = total[i] + v
    return total


def _block_quantities(block):
    buf = block.engine.buf
    return buf.l.copy(), buf.r.copy(), buf.q.copy()


def compute_with_progress(dask, tasks, desc: str):
    """``dask.compute`` of the tasks with a tqdm bar (one tick per finished task, shown after
    ``PROGRESS_DELAY`` seconds) when a distributed client runs them, else with dask's own
    progress bar (after the same delay)."""
    try:
        from distributed import as_completed, default_client
        client = default_client()
    except (ImportError, ValueError):
        from dask.diagnostics import ProgressBar
        with ProgressBar(minimum=PROGRESS_DELAY):
            return dask.compute(*tasks)
    futures = client.compute(tasks)
    for _ in progress_bar(as_completed(futures), desc, total=len(futures)):
        pass
    return client.gather(futures)


def _delayed_blocks(X, y, w, Phi):
    """``[(row0, rows, (X_b, y_b, w_b, Phi_b))]``: the Delayed of each row block, from the arrays'
    own chunks (no data move to the client)."""
    xs = X.to_delayed().ravel()
    ys = y.to_delayed().ravel()
    ws = w.to_delayed().ravel() if w is not None else [None] * len(xs)
    ps = Phi.to_delayed().ravel() if Phi is not None else [None] * len(xs)
    out, row0 = [], 0
    for xb, yb, wb, pb, m in zip(xs, ys, ws, ps, X.chunks[0]):
        out.append((row0, m, (xb, yb, wb, pb)))
        row0 += m
    return out


def _align(a, row_chunks):
    """A dask array (or an in-memory one, wrapped) chunked like ``row_chunks`` by rows and in
    one block of columns."""
    _, da = import_dask()
    if not hasattr(a, "rechunk"):
        a = np.asarray(a)
        return da.from_array(a, chunks=(row_chunks,) + tuple(a.shape[1:]))
    chunks = (row_chunks,) + tuple(-1 for _ in a.shape[1:])
    return a.rechunk(chunks)


def _normalised_weights(weights: Weights, row_chunks):
    """The normalised weights ``s`` as a lazy dask array."""
    _, da = import_dask()
    if weights.w is None:
        return da.full(weights.n, 1.0 / weights.n, dtype=weights.dtype, chunks=row_chunks)
    return ((weights.w.astype(np.float64) / weights.largest) / weights.total
            ).astype(weights.dtype)


def _known_chunks(name: str, a) -> None:
    """ValueError naming ``compute_chunk_sizes()`` when a dask array's chunk sizes (so its
    shape) are unknown (NaN), e.g. after boolean indexing."""
    if is_dask(a) and any(np.isnan(c) for sizes in a.chunks for c in sizes):
        raise ValueError(f"{name} has unknown chunk sizes (shape {a.shape}, e.g. after boolean "
                         f"indexing); call {name}.compute_chunk_sizes() first, or "
                         f"{name} = {name}.compute_chunk_sizes()")


def _dask_targets(y, n, rows, loss, n_classes):
    """``(y, loss, c)`` as the block engines take them (the decision of
    :func:`resnet_core._targets.resolve_targets`), from ``y``'s metadata."""
    _known_chunks("y", y)
    kind = target_kind(loss, y)
    if kind != "labels" and n_classes is not None:
        raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
    if kind == "labels":
        check_meta("y", y, 1, (n,))
        return _align(y, rows)[:, None], loss, n_classes
    if kind == "matrix":
        check_meta("y", y, 2, (n, None))
        if y.shape[1] == 0:
            raise ValueError(f"y must have at least one column; got shape {y.shape}")
        if y.shape[1] > 1 or loss.vector:
            return _align(y, rows), vector_loss(loss), y.shape[1]
        y = y[:, 0]  # c = 1: the scalar objective
    check_meta("y", y, 1, (n,))
    return _align(y, rows), loss, 1


def prepare_dask(X, y, loss, sample_weight=None, Phi=None, n_classes=None):
    """Check shapes and dtypes from the arrays' metadata, align the row chunks, and check
    the values in one pass of tasks (finite, labels, weights; the sum of the weights, the
    number of classes).  Returns ``(X, y, s, Phi, loss, c, None)`` as
    :func:`resnet_core._data.prepare` takes them (``s`` a :class:`Weights` over dask)."""
    dask, da = import_dask()
    if not (loss.vector or loss.code >= 0):
        raise ValueError(f"a user-defined loss ({loss.name}) cannot run on dask arrays: the "
                         "passes recompute the per-sample derivatives in the compiled kernel; "
                         "use a built-in loss (squared, logistic, smoothed_hinge, "
                         "cross_entropy) or in-memory data")
    if not is_dask(X):
        X = da.from_array(np.asarray(X))
    _known_chunks("X", X)
    check_meta("X", X, 2)
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one sample and one feature; got shape {X.shape}")
    X = X.rechunk({1: -1})
    rows = X.chunks[0]
    y, loss, c = _dask_targets(y, n, rows, loss, n_classes)
    if Phi is not None:
        _known_chunks("Phi", Phi)
        check_meta("Phi", Phi, 2, (n, None))
        check_feature_columns(Phi)
        Phi = _align(Phi, rows)
    w = None
    if sample_weight is not None:
        _known_chunks("sample_weight", sample_weight)
        check_meta("sample_weight", sample_weight, 1, (n,))
        w = _align(sample_weight, rows)
    dtype = resolve_dtype(X)
    parts = _delayed_blocks(X, y, w, Phi)
    tasks = [dask.delayed(_validate, pure=True)(loss, dtype, row0, *p) for row0, _, p in parts]
    stats, found = zip(*dask.compute(*tasks))
    if loss.vector and loss.labels:
        c = check_n_classes(c, max(found))  # c held n_classes (or None) until now
    s = Weights(w, n, dtype, *(() if w is None else combine_weight_stats(stats)))
    return X, y, s, Phi, loss, c, None
