"""Validated data and the engine that suits where they live (in memory, out-of-core, dask):
see :mod:`resnet_core._sources` and :mod:`resnet_core._dask`."""

from __future__ import annotations

import numpy as np

from ._sources import Data, check_features, is_dask, is_out_of_core, prepare_stream
from ._targets import resolve_targets
from ._validation import check_data, given_weights, normalise_weights


def prepare(X, y, *, loss, sample_weight=None, Phi=None, n_threads=None, n_classes=None):
    """Validate the data of an objective or of the linear baseline (``Phi``: given
    features, or None).  Returns a :class:`Data` (or the dask engine's equivalent).
    c outputs (the cross-entropy, the squared loss on an (n, c) ``y``;
    :mod:`resnet_core._targets`) are held in memory (a memmap is read through as is)."""
    dask_data = any(is_dask(a) for a in (X, y, Phi, sample_weight))
    squared2d = (loss.vector_form is not None and not isinstance(y, (str, bytes))
                 and np.ndim(y) == 2)
    if n_classes is not None and not loss.vector:
        raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
    if loss.vector or squared2d:
        if not dask_data:
            tg = resolve_targets(X, y, loss, n_classes)
            Phi = None if Phi is None else check_features(Phi, tg.X.shape[0], tg.X.dtype)
            given = given_weights(sample_weight, tg.X.shape[0])
            s = normalise_weights(given, tg.X.shape[0], tg.X.dtype)
            return Data("memory", tg.X, tg.y, s, Phi, tg.loss, c=tg.c, given_weight=given)
        if loss.vector or y.shape[1] != 1:
            raise NotImplementedError(
                "c outputs (the cross_entropy loss, an (n, c) target) are not implemented on "
                "dask arrays yet: pass numpy arrays (or a memmap), e.g. X.compute()")
        y = y[:, 0]  # dask, an (n, 1) squared target: the scalar objective
    if dask_data:
        from ._dask import prepare_dask  # dask is imported only for dask arrays
        return prepare_dask(X, y, loss=loss, sample_weight=sample_weight, Phi=Phi,
                            n_threads=n_threads)
    if loss.code >= 0 and any(is_out_of_core(a) for a in (X, Phi)):
        return prepare_stream(X, y, loss, sample_weight, Phi)
    X, y = check_data(X, y)
    if Phi is not None:
        Phi = check_features(Phi, X.shape[0], X.dtype)
    loss.check_labels(y)
    given = given_weights(sample_weight, X.shape[0])
    s = normalise_weights(given, X.shape[0], X.dtype)
    return Data("memory", X, y, s, Phi, loss, given_weight=given)
