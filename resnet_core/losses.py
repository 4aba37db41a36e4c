"""Losses ``l(p; y)``, convex and twice differentiable in the prediction ``p``.

Built-in (computed inside the compiled kernels):

- ``"squared"``: ``l = (p - y)^2 / 2``.
- ``"logistic"``: ``l = log(1 + exp(-y p))``, labels in {-1, +1}; evaluated as
  ``max(-y p, 0) + log1p(exp(-|y p|))`` so no exponential of a positive number is taken
  (finite at any margin).
- ``"smoothed_hinge"``: the hinge ``max(0, t)``, ``t = 1 - y p``, with its kink replaced by a
  cubic on ``|t| < h`` (``h = 0.5``) so that ``l`` is twice continuously differentiable.
  With ``s = t + h``: ``l = 0`` for ``t <= -h``; ``s^3 / (6 h^2)`` for ``0 < s <= h``;
  ``s - h + (2h - s)^3 / (6 h^2)`` for ``h < s < 2h``; ``t`` for ``t >= h``.  Labels in
  {-1, +1}; ``l'' <= 1/h``.

Vector-valued (c outputs, the paper's Remark 2; computed in ``_vkernels``):

- ``"cross_entropy"``: ``l = logsumexp(p) - p_y`` for a score vector ``p`` (c entries) and
  an integer label ``y`` in ``0..c-1``; ``dl/dp = softmax(p) - e_y``, Hessian
  ``diag(pi) - pi pi^T``.
- the squared loss on an ``(n, c)`` target array: ``l = ||p - y||^2 / 2`` (the objectives
  switch to it when ``loss="squared"`` and ``y`` is 2-D).

A user-defined loss is a :class:`CustomLoss`: a vectorised function ``fn(p, y) -> (l, l',
l'')`` on arrays, or a scalar numba-compilable one through :meth:`CustomLoss.from_scalar`.
The kernels then take ``l'`` and ``l''`` from it (one extra pass over the data per new point).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import _kernels, _vkernels

# The smoothed hinge's ``h`` (compiled into the kernels, src/_loss.pxd).
SMOOTHING = 0.5


class Loss:
    """A per-sample loss with its first two derivatives in ``p``.

    Attributes
    ----------
    name : str
    code : int
        Kernel code of a built-in loss (``_kernels.LOSS_CODES``); negative for a
        user-defined one.
    binary_labels : bool
        Whether labels must be -1 or +1.
    zero_margin : float or None
        Margin ``y p`` from which the loss is exactly 0 (None: never).
    """

    code: int = _kernels.LOSS_CODE_EXTERNAL
    binary_labels: bool = False
    zero_margin: float | None = None
    #: whether ``l`` takes a vector of scores (c outputs); see :class:`VectorLoss`
    vector: bool = False

    def __init__(self, name: str):
        self.name = name

    def derivatives(self, p: np.ndarray, y: np.ndarray):
        """Return ``(l, l', l'')`` per sample, arrays of the shape of ``p``."""
        raise NotImplementedError

    def check_labels(self, y: np.ndarray) -> None:
        """Raise ValueError when ``y`` is not a valid label vector for this loss."""
        if self.binary_labels and not np.isin(y, (-1.0, 1.0)).all():
            bad = y[~np.isin(y, (-1.0, 1.0))][0]
            raise ValueError(
                f"y must hold labels -1 or +1 for the {self.name} loss; found {bad}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class BuiltinLoss(Loss):
    """One of the losses compiled into the kernels."""

    def __init__(self, name: str, binary_labels: bool, zero_margin: float | None = None):
        super().__init__(name)
        self.code = _kernels.LOSS_CODES[name]
        self.binary_labels = binary_labels
        self.zero_margin = zero_margin

    def derivatives(self, p, y):
        p = np.ascontiguousarray(p, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        out = np.empty((3, p.shape[0]))
        _kernels.loss_derivatives(self.code, p, y, out[0], out[1], out[2])
        return out[0], out[1], out[2]

    def __reduce__(self):
        # one object per built-in loss, also after pickling (the objectives compare by `is`)
        return _builtin_loss, (self.name,)


class CustomLoss(Loss):
    """A user-defined loss.

    Parameters
    ----------
    fn : callable
        ``fn(p, y) -> (l, dl, d2l)`` on float64 arrays of shape ``(n,)``: the loss, its
        first and second derivative in ``p``, per sample.  A numba ``@njit`` function
        written on arrays works as is.
    name : str
    binary_labels : bool
        Require labels in {-1, +1}.

    Notes
    -----
    The loss should be convex in ``p`` (the paper's Assumption 1); a non-convex one works
    for values and derivatives, and the Hessian statistics then take ``l'' < 0`` into
    account.  Its outputs are checked for shape and finiteness on every call.
    """

    def __init__(self, fn: Callable, *, name: str = "custom", binary_labels: bool = False):
        if not callable(fn):
            raise TypeError(f"fn must be callable; got {fn!r}")
        super().__init__(name)
        self.fn = fn
        self.binary_labels = binary_labels

    @classmethod
    def from_scalar(cls, fn: Callable, *, name: str = "custom", binary_labels: bool = False):
        """Build a loss from a scalar ``fn(p, y) -> (l, dl, d2l)`` that numba can compile.

        The per-sample loop is compiled once, here, with numba.
        """
        import numba

        scalar = fn if hasattr(fn, "py_func") else numba.njit(fn)

        @numba.njit
        def vectorised(p, y):
            n = p.shape[0]
            out = np.empty((3, n))
            for i in range(n):
                a, b, c = scalar(p[i], y[i])
                out[0, i] = a
                out[1, i] = b
                out[2, i] = c
            return out[0], out[1], out[2]

        return cls(vectorised, name=name, binary_labels=binary_labels)

    def derivatives(self, p, y):
        p = np.ascontiguousarray(p, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        result = self.fn(p, y)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise ValueError(
                f"the {self.name} loss must return a tuple (l, dl, d2l); got {type(result).__name__}"
            )
        arrays = []
        for label, arr in zip(("l", "dl", "d2l"), result):
            arr = np.broadcast_to(np.asarray(arr, dtype=np.float64), p.shape)
            if not np.isfinite(arr).all():
                raise ValueError(f"the {self.name} loss returned a non-finite {label}")
            arrays.append(arr)
        return tuple(arrays)


class VectorLoss(Loss):
    """A loss of a score vector ``p`` (c entries), compiled into ``_vkernels``.

    Attributes
    ----------
    vcode : int
        Its code in ``_vkernels.VLOSS_CODES``.  ``code`` is the external code: the scalar
        kernels and the compiled optimiser loops never take a vector loss.
    labels : bool
        Targets are integer labels ``0..c-1`` (cross-entropy), not an ``(n, c)`` array.
    """

    vector = True

    def __init__(self, name: str, labels: bool):
        super().__init__(name)
        self.vcode = _vkernels.VLOSS_CODES[name]
        self.labels = labels

    def derivatives(self, p, y):
        """``(l, dl/dp)`` per sample in NumPy (the kernels compute the same in C): ``l`` of
        shape (n,), ``dl/dp`` of the shape of ``p`` (n, c).  No Hessians: each is c x c
        (``diag(pi) - pi pi^T`` or ``I``), applied inside the kernels, never formed."""
        p = np.asarray(p, dtype=np.float64)
        if self.labels:
            y = np.asarray(y).astype(np.intp)
            shifted = p - p.max(axis=1, keepdims=True)
            lse = np.log(np.exp(shifted).sum(axis=1))
            pi = np.exp(shifted - lse[:, None])
            l = lse - shifted[np.arange(p.shape[0]), y]
            d1 = pi.copy()
            d1[np.arange(p.shape[0]), y] -= 1.0
            return l, d1
        diff = p - np.asarray(y, dtype=np.float64)
        return 0.5 * np.einsum("ij,ij->i", diff, diff), diff

    def check_labels(self, y: np.ndarray) -> None:  # the objectives check vector targets
        pass

    def __reduce__(self):
        return _vector_loss, (self.name,)  # one object per loss, as the built-in ones


#: The vector losses by name (``"squared"`` here is the (n, c)-target form).
VECTOR_LOSSES = {
    "cross_entropy": VectorLoss("cross_entropy", labels=True),
    "squared": VectorLoss("squared", labels=False),
}


def _builtin_loss(name: str) -> "BuiltinLoss":
    return BUILTIN_LOSSES[name]


def _vector_loss(name: str) -> "VectorLoss":
    return VECTOR_LOSSES[name]


BUILTIN_LOSSES = {
    "squared": BuiltinLoss("squared", False),
    "logistic": BuiltinLoss("logistic", True),
    "smoothed_hinge": BuiltinLoss("smoothed_hinge", True, zero_margin=1.0 + SMOOTHING),
}


def get_loss(loss) -> Loss:
    """A :class:`Loss` from a name, a Loss, or a callable ``fn(p, y) -> (l, dl, d2l)``.

    ``"cross_entropy"`` is a :class:`VectorLoss` (``loss.vector`` is True); ``"squared"`` is
    the scalar loss, which the objectives replace by its vector form for a 2-D ``y``."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss == "cross_entropy":
            return VECTOR_LOSSES[loss]
        if loss not in BUILTIN_LOSSES:
            names = sorted([*BUILTIN_LOSSES, "cross_entropy"])
            raise ValueError(f"loss must be one of {names}; got {loss!r}")
        return BUILTIN_LOSSES[loss]
    if callable(loss):
        return CustomLoss(loss)
    raise TypeError(f"loss must be a name, a Loss or a callable; got {loss!r}")
