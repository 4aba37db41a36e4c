"""Targets of the objectives: scalar (today's ``y`` of shape (n,)) or vector (c outputs).

:func:`resolve_targets` decides from the loss and the shape of ``y``:

- ``loss="cross_entropy"``: ``y`` holds integer labels ``0..c-1`` (an integer array, or
  floats holding integers), ``c = n_classes`` or ``max(y) + 1``, at least 2;
- ``loss="squared"`` with ``y`` of shape (n, c), c >= 2: the vector squared loss
  (an (n, 1) ``y`` is flattened: it is today's scalar objective, same numbers; the
  c-output loss itself, ``VECTOR_LOSSES["squared"]``, keeps it as c = 1 outputs);
- anything else: the scalar objective, validated as today.

The kernels take vector targets as a C-contiguous array of the data's dtype: (n, c) for
the squared loss, (n, 1) labels for the cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (as_float_array, check_alloc, check_data, check_inputs,
                          check_label_block, check_n_classes, check_size, to_numpy)
from .losses import VECTOR_LOSSES, Loss, get_loss


@dataclass(frozen=True)
class Targets:
    """Validated data and targets: ``X``; ``y`` as the kernels take it; the loss (a
    :class:`~resnet_core.losses.VectorLoss` for vector targets); ``c`` outputs (1 for a
    scalar objective); ``n_classes`` (cross-entropy only, else None)."""

    X: np.ndarray
    y: np.ndarray
    loss: Loss
    c: int
    n_classes: int | None

    @property
    def vector(self) -> bool:
        return self.loss.vector


def label_column(y, n: int, dtype) -> tuple[np.ndarray, int]:
    """Integer labels as an (n, 1) array of ``dtype``, and ``max + 1``."""
    if isinstance(y, (str, bytes)):
        raise TypeError("y must be an array of integer labels; got a string")
    arr = np.asarray(to_numpy("y", y))
    if arr.dtype.kind in "iuf" and (arr.ndim != 1 or arr.shape[0] != n):
        raise ValueError("y must have shape (n,) = "
                         f"({n},) (integer labels) for the cross_entropy loss; got {arr.shape}")
    found = check_label_block(arr, dtype)
    return np.ascontiguousarray(arr, dtype=dtype).reshape(n, 1), found


def target_kind(loss, y) -> str:
    """How ``y`` is read for ``loss``: ``"labels"`` (cross-entropy), ``"matrix"`` (the
    squared loss on a 2-D ``y``: c outputs, or the scalar objective for c = 1) or
    ``"scalar"``.  Reads ``y``'s dimensions only (a dask or zarr ``y`` stays unread)."""
    if loss.vector:
        return "labels" if loss.labels else "matrix"
    if (loss.vector_form is not None and not isinstance(y, (str, bytes))
            and np.ndim(y) == 2):
        return "matrix"
    return "scalar"


def resolve_targets(X, y, loss, n_classes=None) -> Targets:
    """Validate ``X``, ``y``, the loss and ``n_classes`` (see the module notes)."""
    loss = get_loss(loss)
    if target_kind(loss, y) == "scalar":
        if n_classes is not None:
            raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
        X, y = check_data(X, y)
        loss.check_labels(y)
        return Targets(X, y, loss, 1, None)
    X = check_inputs(X)
    n, dtype = X.shape[0], X.dtype
    if loss.name == "cross_entropy":
        y, found = label_column(y, n, dtype)
        c = check_n_classes(n_classes, found)
        per_class = 3 * n * X.itemsize + 16 * X.shape[1]  # l, r, q per sample; W and its grad
        check_alloc(f"the per-sample buffers and the point for n_classes = {c} (n = {n})",
                    c * per_class, lambda limit: "use fewer classes: n_classes = "
                    f"{limit // per_class} is the most that fits")
        return Targets(X, y, loss, c, c)
    if n_classes is not None:
        raise ValueError(f"n_classes is for the cross_entropy loss; got loss {loss.name!r}")
    y = as_float_array("y", y, ndim=2, dtype=dtype, shape=(n, None))
    if y.shape[1] == 0:
        raise ValueError(f"y must have at least one column; got shape {y.shape}")
    if y.shape[1] == 1 and not loss.vector:  # c = 1: today's scalar objective
        return Targets(X, np.ascontiguousarray(y[:, 0]), loss, 1, None)
    check_size(f"the per-sample buffers for {y.shape[1]} outputs", 2 * y.size * X.itemsize,
               "use fewer outputs")
    return Targets(X, y, vector_loss(loss), y.shape[1], None)


def vector_loss(loss: Loss) -> Loss:
    """The c-output form of ``loss`` (itself when it has c outputs already)."""
    return loss if loss.vector else VECTOR_LOSSES[loss.vector_form]
