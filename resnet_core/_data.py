"""Validated data and the engine that suits where they live: the one place that routes data
to engines.

:func:`source_of` decides where the data live, :data:`SOURCES` names, for each place, how
its data are validated and which engine runs their passes:

- ``"memory"``: NumPy arrays (and a memmap with a user-defined loss, read in place):
  :class:`~resnet_core._engine.Engine`, per-sample buffers per point;
- ``"stream"``: out-of-core arrays (``np.memmap``, zarr) with a built-in loss:
  :class:`~resnet_core._sources.StreamEngine`, stateless passes over row blocks;
- ``"dask"``: any of ``X, y, Phi, sample_weight`` a dask array:
  :class:`~resnet_core._dask.DaskEngine`, one task per row block where it lives.

Every place takes one output and c outputs (the cross-entropy, the squared loss on an
(n, c) ``y``; :mod:`resnet_core._targets`) alike.
"""

from __future__ import annotations

import numpy as np

from ._dask import DaskEngine, prepare_dask
from ._engine import Engine
from ._sources import StreamEngine, check_features, is_dask, is_out_of_core, prepare_stream
from ._targets import resolve_targets
from ._validation import given_weights, normalise_weights, resolve_dtype, to_numpy


def prepare_memory(X, y, loss, sample_weight, Phi, n_classes=None):
    """In-memory data validated: ``(X, y, s, Phi, loss, c, given_weight)``."""
    tg = resolve_targets(X, y, loss, n_classes)
    n, dtype = tg.X.shape[0], tg.X.dtype
    Phi = None if Phi is None else check_features(Phi, n, dtype)
    given = given_weights(sample_weight, n)
    return tg.X, tg.y, normalise_weights(given, n, dtype), Phi, tg.loss, tg.c, given


#: where the data live -> (how they are validated, the engine that runs their passes)
SOURCES = {"memory": (prepare_memory, Engine), "stream": (prepare_stream, StreamEngine),
           "dask": (prepare_dask, DaskEngine)}


def source_of(X, y, Phi, sample_weight, loss) -> str:
    """``"dask"``, ``"stream"`` or ``"memory"`` (module notes).  Out-of-core data stream
    with the built-in losses only (the kernels recompute the per-sample quantities)."""
    if any(is_dask(a) for a in (X, y, Phi, sample_weight)):
        return "dask"
    builtin = loss.vector or loss.code >= 0
    if builtin and any(is_out_of_core(a) for a in (X, Phi)):
        return "stream"
    return "memory"


class Data:
    """Validated data, where they live (``kind``, a key of :data:`SOURCES`) and ``c``
    outputs; :meth:`engine` builds the engine that suits them."""

    def __init__(self, kind, X, y, s, Phi, loss, c: int = 1, given_weight=None):
        self.kind, self.X, self.y, self.s, self.Phi, self.loss = kind, X, y, s, Phi, loss
        self.given_weight = given_weight  # the caller's weights, validated (None: uniform)
        self.c = c
        self.n, self.d = X.shape
        self.dtype = resolve_dtype(X)

    def engine(self, k: int, **kw) -> Engine:
        """The engine over these data with ``k`` features (``kw``: the model, settings)."""
        eng = SOURCES[self.kind][1](self.X, self.y, self.s, self.loss, k, c=self.c,
                                    Phi=self.Phi, **kw)
        eng.given_weight = self.given_weight
        return eng


def _private(name: str, a):
    """A private copy of an in-memory array (the objectives' ``copy=True``); None, strings,
    out-of-core and dask arrays as they are (they are read in place by design)."""
    if a is None or isinstance(a, (str, bytes)) or is_dask(a) or is_out_of_core(a):
        return a
    return np.array(to_numpy(name, a), copy=True)


def prepare(X, y, *, loss, sample_weight=None, Phi=None, n_threads=None, n_classes=None,
            copy: bool = False) -> Data:
    """Validate the data of an objective or of the linear baseline (``Phi``: given
    features, or None) where they live; ``copy``: validate private copies of the in-memory
    arrays.  ``n_threads`` is accepted for the callers' convenience (the engines take it)."""
    if n_classes is not None and not loss.vector:
        raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
    if copy:
        X, y, Phi, sample_weight = (_private(name, a) for name, a in (
            ("X", X), ("y", y), ("Phi", Phi), ("sample_weight", sample_weight)))
    kind = source_of(X, y, Phi, sample_weight, loss)
    return Data(kind, *SOURCES[kind][0](X, y, loss, sample_weight, Phi, n_classes))
