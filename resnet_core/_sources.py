"""Out-of-core data: checks block by block, lazy normalised weights and labels, and the
stateless engine that streams them.  Which engine a data set gets is decided in one place,
:func:`resnet_core._data.prepare` (in memory: :class:`~resnet_core._engine.Engine`;
out-of-core: :class:`StreamEngine`; dask: :class:`resnet_core._dask.DaskEngine`).

Out-of-core arrays (``np.memmap``, zarr) are read in row blocks of at most ``BLOCK_BYTES``
of ``X`` in the data's own dtype; the engine keeps no n-vector: each pass recomputes the
per-sample quantities block by block (built-in losses, one output or c outputs; a
user-defined loss on a memmap falls back to the in-memory engine, which reads the memmap in
place).

The normalised weights ``s = w / sum(w)`` of out-of-core data are never stored: a
:class:`Weights` computes a block of them on demand from the caller's weights and the two
numbers ``max(w)`` and ``sum(w / max(w))`` found in the validation pass.  Cross-entropy
labels are read the same way (:class:`LabelColumn`: the (n, 1) column of the data's dtype
that the kernels take, block by block).
"""

from __future__ import annotations

import numpy as np

from ._engine import Engine
from ._guards import check_files, mapped_files
from ._targets import label_column, target_kind, vector_loss
from ._validation import (FINITE_BLOCK, as_float_array, check_label_block, check_n_classes,
                          resolve_dtype, shape_str)

# Most bytes of X one block of an out-of-core pass reads (the rest of a pass's memory is
# the kernels' workspaces and the block's per-sample quantities, a few n_block-vectors).
BLOCK_BYTES = 4 << 20


def is_dask(a) -> bool:
    """Whether ``a`` is a dask array (dask is imported only if ``a`` comes from it)."""
    if not type(a).__module__.startswith("dask"):
        return False
    import dask.array as da
    return isinstance(a, da.Array)


def is_zarr(a) -> bool:
    return type(a).__module__.startswith("zarr") and hasattr(a, "chunks")


def is_out_of_core(a) -> bool:
    """``np.memmap`` (``np.load(..., mmap_mode=...)``) or a zarr array."""
    return isinstance(a, np.memmap) or is_zarr(a)


class Weights:
    """The normalised weights ``s_i = (w_i / m) / t`` of out-of-core data, block by block
    (``m = max(w)``, ``t = sum(w / m)``; ``w = None``: uniform ``1 / n``)."""

    ndim = 1

    def __init__(self, w, n: int, dtype, largest: float = 1.0, total: float | None = None):
        self.w, self.n, self.dtype = w, n, np.dtype(dtype)
        self.largest, self.total = largest, float(n) if total is None else total
        self.shape = (n,)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> np.ndarray:
        i0, i1, _ = rows.indices(self.n)
        if self.w is None:
            return np.full(max(i1 - i0, 0), 1.0 / self.n, dtype=self.dtype)
        return ((np.asarray(self.w[i0:i1], dtype=np.float64) / self.largest) / self.total
                ).astype(self.dtype)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[0:self.n], dtype=dtype)


class LabelColumn:
    """Cross-entropy labels ``y`` (n,) of an out-of-core source as the (n, 1) column of
    ``dtype`` that the kernels take, read block by block (``base`` is ``y``: what the
    memory-map guard checks).  ``column[:, 0]`` is the labels themselves."""

    ndim = 2

    def __init__(self, y, dtype):
        self.base, self.dtype = y, np.dtype(dtype)
        self.shape = (y.shape[0], 1)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rows, column = (key if isinstance(key, tuple) else (key, None))
        block = np.asarray(self.base[rows], dtype=self.dtype)
        return block if column == 0 else block.reshape(-1, 1)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[0:self.shape[0]], dtype=dtype)


def _blocks(n: int, rows: int = FINITE_BLOCK):
    return [(i0, min(i0 + rows, n)) for i0 in range(0, n, rows)]


def check_meta(name: str, a, ndim: int, shape=None) -> None:
    """dtype, dimensions and shape of an array-like without reading its values."""
    dt = np.dtype(getattr(a, "dtype", np.float64))
    if dt.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {dt}")
    if len(a.shape) != ndim:
        what = {1: "1-D", 2: "2-D"}[ndim]
        raise ValueError(f"{name} must be {what}; got an array of shape {tuple(a.shape)}")
    for axis, (got, want) in enumerate(zip(a.shape, shape or ())):
        if want is not None and got != want:
            raise ValueError(f"{name} must have shape {shape_str(shape)}; got "
                             f"{tuple(a.shape)} (axis {axis} is {got}, expected {want})")


def check_block(name: str, block: np.ndarray, row0: int) -> None:
    """ValueError naming ``name`` and the global index of the first NaN / inf in a block
    that starts at row ``row0``."""
    ok = np.isfinite(block)
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(f"{name} must be finite; found {block[bad]} at index "
                         f"{(row0 + bad[0],) + bad[1:]}")


def weight_block_stats(w: np.ndarray, row0: int) -> tuple[float, float, int]:
    """``(max w, sum(w / max w), n)`` of one block of raw weights, after checking them."""
    check_block("sample_weight", w, row0)
    w = np.asarray(w, dtype=np.float64)
    if (w < 0).any():
        raise ValueError(f"sample_weight must be non-negative; found {w.min()}")
    m = float(w.max()) if w.size else 0.0
    return m, (float(np.sum(w / m)) if m > 0 else 0.0), w.size


def combine_weight_stats(parts) -> tuple[float, float]:
    """``(max w, sum(w / max w))`` from the blocks' statistics, added in block order."""
    largest = max(m for m, _, _ in parts)
    if not largest > 0:
        raise ValueError("sample_weight must have a positive sum; got all zeros")
    return largest, sum(t * (m / largest) for m, t, _ in parts if m > 0)


def _aligned(rows: int, a) -> int:
    """``rows`` rounded to whole chunks of a zarr array ``a`` (at least one chunk), so that a
    block decodes each of its chunks once and only once; ``rows`` for other arrays."""
    if not is_zarr(a):
        return rows
    step = int(a.chunks[0])
    return max(rows // step, 1) * step


class StreamEngine(Engine):
    """The engine over out-of-core arrays: stateless passes over blocks of at most
    ``BLOCK_BYTES`` of ``X`` (whole chunks of a zarr ``X``), read in the data's own
    dtype."""

    stateless = True
    _block_bytes = BLOCK_BYTES

    def _row_blocks(self, n: int, per_row: int):
        i0, i1 = super()._row_blocks(max(n, 1), per_row)[0]  # n = 0: no new inputs
        rows = _aligned(i1 - i0, self.X)
        return [(i, min(i + rows, n)) for i in range(0, n, rows)]


def check_features(Phi, n: int, dtype) -> np.ndarray:
    """Given features: 2-D, ``n`` rows, at least one column, converted to ``dtype``."""
    Phi = as_float_array("Phi", Phi, ndim=2, dtype=dtype, shape=(n, None))
    check_feature_columns(Phi)
    return Phi


def check_feature_columns(Phi) -> None:
    if Phi.shape[1] == 0:
        raise ValueError("Phi must have at least one column (feature); got shape "
                         f"{tuple(Phi.shape)}")


def _streamed(name, a, ndim, shape, *, rows=FINITE_BLOCK):
    """An out-of-core array checked block by block (values never all in memory); a small
    in-memory one is validated as usual."""
    if not is_out_of_core(a):
        dtype = resolve_dtype(a)
        return as_float_array(name, a, ndim=ndim, dtype=dtype, shape=shape)
    check_meta(name, a, ndim, shape)
    check_files(mapped_files(**{name: a}))  # a truncated file: an error, not a SIGBUS
    for i0, i1 in _blocks(a.shape[0], rows):
        check_block(name, np.asarray(a[i0:i1]), i0)
    return a


def _stream_targets(y, n: int, loss, n_classes, dtype):
    """``(y as the kernels take it, loss, c)`` of out-of-core data, checked block by block
    (the decision of :func:`resnet_core._targets.resolve_targets`)."""
    kind = target_kind(loss, y)
    if kind == "labels" and not is_out_of_core(y):
        y, found = label_column(y, n, dtype)
        return y, loss, check_n_classes(n_classes, found)
    if kind == "labels":
        check_meta("y", y, 1, (n,))
        check_files(mapped_files(y=y))
        found = max(check_label_block(np.asarray(y[i0:i1]), dtype, i0)
                    for i0, i1 in _blocks(n))
        return LabelColumn(y, dtype), loss, check_n_classes(n_classes, found)
    if n_classes is not None:
        raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
    if kind == "matrix":
        y = _streamed("y", y, 2, (n, None))
        if y.shape[1] == 0:
            raise ValueError(f"y must have at least one column; got shape {tuple(y.shape)}")
        if y.shape[1] > 1 or loss.vector:
            return y, vector_loss(loss), y.shape[1]
        y = y[:, 0]  # c = 1: the scalar objective
    y = _streamed("y", y, 1, (n,))
    for i0, i1 in _blocks(n):
        loss.check_labels(np.asarray(y[i0:i1]))
    return y, loss, 1


def prepare_stream(X, y, loss, sample_weight, Phi, n_classes=None):
    """Out-of-core data checked block by block: ``(X, y, s, Phi, loss, c, given_weight)``
    as :func:`resnet_core._data.prepare` takes them."""
    rows = FINITE_BLOCK
    if len(getattr(X, "shape", ())) == 2:
        rows = _aligned(max(BLOCK_BYTES // (8 * max(X.shape[1], 1)), 1), X)
    X = _streamed("X", X, 2, None, rows=rows)
    n = X.shape[0]
    if n == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature; got shape "
                         f"{tuple(X.shape)}")
    dtype = resolve_dtype(X)
    y, loss, c = _stream_targets(y, n, loss, n_classes, dtype)
    if Phi is not None:
        Phi = _streamed("Phi", Phi, 2, (n, None))
        check_feature_columns(Phi)
    if sample_weight is None:
        s = Weights(None, n, dtype)
    else:
        w = _streamed("sample_weight", sample_weight, 1, (n,))
        parts = [weight_block_stats(np.asarray(w[i0:i1]), i0) for i0, i1 in _blocks(n)]
        s = Weights(w, n, dtype, *combine_weight_stats(parts))
    return X, y, s, Phi, loss, c, s.w
