"""Losses ``l(p; y)``, convex and twice differentiable in the prediction ``p``, and the
registry that holds one entry per loss.

Built-in (computed inside the compiled kernels):

- ``"squared"``: ``l = (p - y)^2 / 2``.
- ``"logistic"``: ``l = log(1 + exp(-y p))``, labels in {-1, +1}; evaluated as
  ``max(-y p, 0) + log1p(exp(-|y p|))`` so no exponential of a positive number is taken
  (finite at any margin).
- ``"smoothed_hinge"``: the hinge ``max(0, t)``, ``t = 1 - y p``, with its kink replaced by a
  cubic on ``|t| < h`` (``h = 0.5``) so that ``l`` is twice continuously differentiable.
  With ``s = t + h``: ``l = 0`` for ``t <= -h``; ``s^3 / (6 h^2)`` for ``0 < s <= h``;
  ``s - h + (2h - s)^3 / (6 h^2)`` for ``h < s < 2h``; ``t`` for ``t >= h``.  Labels in
  {-1, +1}.  ``l'' = s / h^2`` then ``(2h - s) / h^2``: at most ``1/h`` (at ``t = 0``),
  continuous, and Lipschitz with constant ``1/h^2`` (``l'''`` jumps, ``l''`` does not).

Vector-valued (c outputs, the paper's Remark 2; computed in ``_vkernels``):

- ``"cross_entropy"``: ``l = logsumexp(p) - p_y`` for a score vector ``p`` (c entries) and
  an integer label ``y`` in ``0..c-1``; ``dl/dp = softmax(p) - e_y``, Hessian
  ``diag(pi) - pi pi^T``.
- the squared loss on an ``(n, c)`` target array: ``l = ||p - y||^2 / 2`` (the objectives
  switch to it when ``loss="squared"`` and ``y`` is 2-D: the scalar entry's
  ``vector_form``).

The registry
------------
:data:`BUILTIN_LOSSES` maps a name to its entry, a :class:`BuiltinLoss` holding everything
the package asks of a loss: the formula (a kernel code, or a vectorised ``formula``), the
label check, the zero margin, the c-output form, the constants of the theorems (suprema of
``|l'|``, ``l''``, the Lipschitz constant of ``l''``, and :meth:`Loss.bounds` over
``|p| <= P``) and ``predict_proba``'s link.  Callers read these fields, never a loss's
name; :func:`register_loss` adds an entry (``docs/losses.md`` says how).

A user-defined loss outside the registry is a :class:`CustomLoss`: a vectorised function
``fn(p, y) -> (l, l', l'')`` on arrays, or a scalar numba-compilable one through
:meth:`CustomLoss.from_scalar`.  The kernels then take ``l'`` and ``l''`` from it (one extra
pass over the data per new point); it has no constants.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import _kernels, _vkernels

# The smoothed hinge's ``h`` (compiled into the kernels, src/rc_elementwise.h).
SMOOTHING = 0.5

#: ``bounds(P, y) -> (L0, L1, L2, L3)``: per sample, bounds of ``l``, ``|l'|``, ``|l''|``
#: and the Lipschitz constant of ``l''`` over ``|p| <= P`` (``L3`` None: none known).
Bounds = Callable[[np.ndarray, np.ndarray], tuple]


class Loss:
    """A per-sample loss with its first two derivatives in ``p``: a registry entry.

    Attributes
    ----------
    name : str
    code : int
        Kernel code of a loss compiled into the kernels (``_kernels.LOSS_CODES``);
        ``LOSS_CODE_EXTERNAL`` (negative) for one computed by ``formula``.
    formula : callable or None
        ``formula(p, y) -> (l, l', l'')`` on float64 arrays (when ``code`` is negative).
    binary_labels : bool
        Whether labels must be -1 or +1 (the label check, :meth:`check_labels`).
    zero_margin : float or None
        Margin ``y p`` from which the loss is exactly 0 (None: never).
    margin : bool
        ``l = phi(y p)`` with ``phi`` convex, non-increasing and tending to 0: the linear
        baseline then decides separability first, and :meth:`bounds` follows from the
        suprema below.
    quadratic : bool
        ``l = (p - y)^2 / 2``: constant ``l'' = 1``, so ``F`` is a polynomial in the
        parameters and the optimisers may run on the data's moments.
    vector : bool
        ``l`` takes a vector of scores (c outputs); see :class:`VectorLoss`.
    vector_form : str or None
        Name in :data:`VECTOR_LOSSES` of this loss's form for c outputs (None: none).
    sup_d1, sup_d2, sup_d3 : float or None
        For labels -1/+1 and any ``p``: ``sup |l'|`` (``inf`` when unbounded), ``sup l''``,
        and the Lipschitz constant of ``l''`` (``sup |l'''|`` where it exists); None when
        not known.  ``sup_d2`` is the curvature of ``_gram_pass``'s error bound.
    proba : callable or None
        ``proba(scores) -> (n, 2)`` array ``[P(y=-1), P(y=+1)]`` when the loss is a
        negative log-likelihood (``predict_proba`` applies), else None.
    """

    code: int = _kernels.LOSS_CODE_EXTERNAL
    formula: Callable | None = None
    binary_labels: bool = False
    zero_margin: float | None = None
    margin: bool = False
    quadratic: bool = False
    vector: bool = False
    vector_form: str | None = None
    sup_d1: float | None = None
    sup_d2: float | None = None
    sup_d3: float | None = None
    proba: Callable | None = None

    def __init__(self, name: str):
        self.name = name

    def derivatives(self, p: np.ndarray, y: np.ndarray):
        """Return ``(l, l', l'')`` per sample, arrays of the shape of ``p``."""
        p = np.ascontiguousarray(p, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        if self.code >= 0:
            out = np.empty((3, p.shape[0]))
            _kernels.loss_derivatives(self.code, p, y, out[0], out[1], out[2])
            return out[0], out[1], out[2]
        if self.formula is None:
            raise NotImplementedError(f"the {self.name} loss has no formula")
        result = self.formula(p, y)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise ValueError(f"the {self.name} loss must return a tuple (l, dl, d2l); got "
                             f"{type(result).__name__}")
        arrays = []
        for label, arr in zip(("l", "dl", "d2l"), result):
            arr = np.broadcast_to(np.asarray(arr, dtype=np.float64), p.shape)
            if not np.isfinite(arr).all():
                raise ValueError(f"the {self.name} loss returned a non-finite {label}")
            arrays.append(arr)
        return tuple(arrays)

    def bounds(self, P: np.ndarray, y: np.ndarray):
        """``(L0, L1, L2, L3)`` per sample: bounds of ``l``, ``|l'|``, ``|l''|`` and of the
        Lipschitz constant of ``l''`` over ``|p| <= P`` (``L3`` None when not known), or None
        when the loss states no bounds."""
        return None

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
    """A registry entry: a loss compiled into the kernels (``code``) or given by its
    vectorised ``formula``, with its constants (see :class:`Loss` for the fields).

    ``bounds`` defaults to the quadratic loss's (``quadratic``) or, for a margin loss,
    ``L0 = l(-sign(y) P)``, ``L1 = |l'(-sign(y) P)|`` (``phi`` convex and
    non-increasing: both largest at the smallest margin), ``L2 = y^2 sup_d2``,
    ``L3 = |y|^3 sup_d3``.
    """

    def __init__(self, name: str, *, code: int | None = None, formula: Callable | None = None,
                 binary_labels: bool = False, zero_margin: float | None = None,
                 margin: bool = False, quadratic: bool = False, vector_form: str | None = None,
                 sup_d1: float | None = None, sup_d2: float | None = None,
                 sup_d3: float | None = None, proba: Callable | None = None,
                 bounds: Bounds | None = None):
        super().__init__(name)
        if (code is None) == (formula is None):
            raise ValueError(f"the {name} loss needs exactly one of code (kernels) and formula")
        if formula is not None and not callable(formula):
            raise TypeError(f"formula must be callable; got {formula!r}")
        if code is not None:
            if code not in _kernels.LOSS_CODES.values():
                raise ValueError(f"code of the {name} loss must be a kernel code "
                                 f"{dict(_kernels.LOSS_CODES)}; got {code!r}")
            self.code = int(code)
        for label, v in (("sup_d1", sup_d1), ("sup_d2", sup_d2), ("sup_d3", sup_d3)):
            if v is not None and not v >= 0:  # NaN and negatives: not a bound
                raise ValueError(f"{label} of the {name} loss must be a non-negative number "
                                 f"(inf: unbounded) or None; got {v!r}")
        self.formula = formula
        self.binary_labels, self.zero_margin = bool(binary_labels), zero_margin
        self.margin, self.quadratic, self.vector_form = bool(margin), bool(quadratic), vector_form
        self.sup_d1, self.sup_d2, self.sup_d3 = sup_d1, sup_d2, sup_d3
        self.proba, self._bounds = proba, bounds

    def bounds(self, P, y):
        P, y = np.asarray(P, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self._bounds is not None:
            return self._bounds(P, y)
        ay = np.abs(y)
        if self.quadratic:
            return 0.5 * (P + ay) ** 2, P + ay, np.ones_like(P), np.zeros_like(P)
        if self.margin and self.sup_d2 is not None:
            P, y = np.broadcast_arrays(P, y)
            l, d1, _ = self.derivatives(-np.sign(y) * P, y)
            L3 = None if self.sup_d3 is None else ay**3 * self.sup_d3
            return l, np.abs(d1), ay**2 * self.sup_d2, L3
        return None

    def __reduce_ex__(self, protocol):
        # one object per registered loss, also after pickling (the objectives compare by
        # `is`); an entry not in the registry travels whole, never as another of its name
        if BUILTIN_LOSSES.get(self.name) is self:
            return _builtin_loss, (self.name,)
        return super().__reduce_ex__(protocol)


class CustomLoss(Loss):
    """A user-defined loss outside the registry (no constants known).

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
        self.fn = self.formula = fn
        self.binary_labels = binary_labels

    @classmethod
    def from_scalar(cls, fn: Callable, *, name: str = "custom", binary_labels: bool = False):
        """Build a loss from a scalar ``fn(p, y) -> (l, dl, d2l)`` that numba can compile.

        The per-sample loop is compiled once, here, with numba.
        """
        return cls(vectorise_scalar(fn), name=name, binary_labels=binary_labels)


def vectorise_scalar(fn: Callable) -> Callable:
    """``formula(p, y) -> (l, l', l'')`` on arrays from a numba-compilable scalar ``fn(p, y)
    -> (l, l', l'')``: the per-sample loop compiled once, here."""
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

    return vectorised


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

    def __init__(self, name: str, labels: bool, proba: Callable | None = None):
        super().__init__(name)
        self.vcode = _vkernels.VLOSS_CODES[name]
        self.labels = labels
        self.proba = proba

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


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an (n, c) score array."""
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid_pair(scores: np.ndarray) -> np.ndarray:
    """``[sigmoid(-p), sigmoid(p)]`` per score, stable at both ends."""
    return np.column_stack([np.exp(-np.logaddexp(0.0, scores)),
                            np.exp(-np.logaddexp(0.0, -scores))])


#: The vector losses by name (``"squared"`` here is the (n, c)-target form).
VECTOR_LOSSES = {
    "cross_entropy": VectorLoss("cross_entropy", labels=True, proba=_softmax),
    "squared": VectorLoss("squared", labels=False),
}


def _builtin_loss(name: str) -> "BuiltinLoss":
    return BUILTIN_LOSSES[name]


def _vector_loss(name: str) -> "VectorLoss":
    return VECTOR_LOSSES[name]


_H = SMOOTHING
#: The registry of scalar losses: one entry per loss (module notes).
BUILTIN_LOSSES = {
    "squared": BuiltinLoss("squared", code=_kernels.LOSS_CODES["squared"], quadratic=True,
                           vector_form="squared", sup_d1=math.inf, sup_d2=1.0, sup_d3=0.0),
    # l' = -y sigma(-y p); l'' = sigma (1 - sigma) <= 1/4; |l'''| = sigma (1 - sigma)
    # |1 - 2 sigma| <= 1 / (6 sqrt 3), attained at sigma = (3 -+ sqrt 3) / 6
    "logistic": BuiltinLoss("logistic", code=_kernels.LOSS_CODES["logistic"],
                            binary_labels=True, margin=True, sup_d1=1.0, sup_d2=0.25,
                            sup_d3=1.0 / (6.0 * math.sqrt(3.0)), proba=_sigmoid_pair),
    "smoothed_hinge": BuiltinLoss("smoothed_hinge", code=_kernels.LOSS_CODES["smoothed_hinge"],
                                  binary_labels=True, zero_margin=1.0 + _H, margin=True,
                                  sup_d1=1.0, sup_d2=1.0 / _H, sup_d3=1.0 / _H**2),
}


def register_loss(loss: BuiltinLoss) -> BuiltinLoss:
    """Add ``loss`` to the registry: ``loss=loss.name`` then works wherever a built-in name
    does (objectives, the linear baseline, certificates, point files, and
    ``ResNetClassifier`` for a loss on labels -1/+1; ``ResNetRegressor`` takes the squared
    loss only).

    Raises ValueError when the name is taken.  A loss registered in one process is not known
    to another (dask workers unpickle registered losses by name): register it there too.
    """
    if not isinstance(loss, BuiltinLoss):
        raise TypeError(f"loss must be a BuiltinLoss; got {type(loss).__name__}")
    if loss.name in BUILTIN_LOSSES or loss.name in VECTOR_LOSSES:
        raise ValueError(f"a loss named {loss.name!r} is registered already")
    BUILTIN_LOSSES[loss.name] = loss
    return loss


def proba_losses() -> tuple[str, ...]:
    """Names of the registered losses for which ``predict_proba`` applies."""
    return tuple(name for name, loss in {**BUILTIN_LOSSES, **VECTOR_LOSSES}.items()
                 if loss.proba is not None)


def get_loss(loss) -> Loss:
    """A :class:`Loss` from a name, a Loss, or a callable ``fn(p, y) -> (l, dl, d2l)``.

    ``"cross_entropy"`` is a :class:`VectorLoss` (``loss.vector`` is True); ``"squared"`` is
    the scalar loss, which the objectives replace by its vector form for a 2-D ``y``."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss in BUILTIN_LOSSES:
            return BUILTIN_LOSSES[loss]
        if loss in VECTOR_LOSSES:
            return VECTOR_LOSSES[loss]
        names = sorted({*BUILTIN_LOSSES, *VECTOR_LOSSES})
        raise ValueError(f"loss must be one of {names}; got {loss!r}")
    if callable(loss):
        return CustomLoss(loss)
    raise TypeError(f"loss must be a name, a Loss or a callable; got {loss!r}")
