"""Validated data and the engine that suits where they live (in memory, out-of-core, dask):
see :mod:`resnet_core._sources` and :mod:`resnet_core._dask`."""

from __future__ import annotations

from ._sources import Data, check_features, is_dask, is_out_of_core, prepare_stream
from ._validation import check_data, check_sample_weight


def prepare(X, y, *, loss, sample_weight=None, Phi=None, n_threads=None):
    """Validate the data of an objective or of the linear baseline (``Phi``: given
    features, or None).  Returns a :class:`Data` (or the dask engine's equivalent)."""
    if any(is_dask(a) for a in (X, y, Phi, sample_weight)):
        from ._dask import prepare_dask  # dask is imported only for dask arrays
        return prepare_dask(X, y, loss=loss, sample_weight=sample_weight, Phi=Phi,
                            n_threads=n_threads)
    if loss.code >= 0 and any(is_out_of_core(a) for a in (X, Phi)):
        return prepare_stream(X, y, loss, sample_weight, Phi)
    X, y = check_data(X, y)
    if Phi is not None:
        Phi = check_features(Phi, X.shape[0], X.dtype)
    loss.check_labels(y)
    s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return Data("memory", X, y, s, Phi, loss)
