"""The stationary points of Theorem 2 (``w = 0``), built exactly on any data.

At ``w = 0`` every prediction is ``p = 0``, so ``l'`` is ``l'(0; y)`` whatever ``V``, and
(residual head, ``c`` outputs, ``W`` of shape (c, d))::

    grad_W F(0, V) = S + G V^T,   S = E[l'(0) x^T]  (c x d),   G = E[l'(0) phi^T]  (c x k)
    grad_V F(0, V) = W^T G = 0

(for ``c = 1``: ``grad_w = s + V g`` with ``s = E[l'(0) x]``, ``g = E[l'(0) phi]``).  The
point ``(0, V)`` is stationary exactly when ``G V^T = -S``: solvable iff every row of ``S``
lies in the row space of ``G`` (for ``c = 1``: ``g != 0``, or ``s = 0``), and then the
solution of least Frobenius norm is ``V = -(G^+ S)^T`` (``c = 1``: ``V = -s g^T / ||g||^2``).
By Theorem 2 such a point has ``lambda_min <= 0``; with ``G != 0`` the partial Hessian there
contains ``[[A, ||g|| I], [||g|| I, 0]]`` (``c = 1``), so ``lambda_min < 0``: a strict saddle,
which is where escape studies should start.

``S`` and ``G`` come from one pass over the data at ``(0, 0)``: the sufficient statistics
(``s`` is the gradient in ``w``, ``g`` the statistic ``E[l' phi]``), or with c outputs the
statistics pass of :mod:`resnet_core.certify_vector` (``S = grad_W``, ``G = Gamma^T``);
then one more pass for ``F`` and the gradient at the point, and the exact ``lambda_min``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import certify, certify_vector
from ._schema import validated
from .objective import FeatureObjective, Objective


@dataclass(repr=False)
class StationaryPoint:
    """The answer of :func:`theorem2_stationary_point`.

    ``exists``: whether some ``V`` makes ``(0, V)`` stationary; then ``x`` is the point (all
    parameters for an Objective: ``theta`` as given), ``V`` its least-norm ``V``, ``F``,
    ``grad_norm`` (``||grad_(w, V) F||``, rounding only) and ``lambda_min`` of the partial
    Hessian (exact, from the reduced matrix; NaN when too large to form).  Otherwise ``x``
    and ``V`` are None and ``message`` says why.  ``residual`` is
    ``||G V^T + S|| / ||S||``, ``S`` and ``G`` (``s``, ``g`` for ``c = 1``) the module's
    statistics.
    """

    exists: bool
    x: np.ndarray | None
    V: np.ndarray | None
    F: float
    grad_norm: float
    lambda_min: float
    residual: float
    S: np.ndarray
    G: np.ndarray
    message: str

    def __repr__(self) -> str:
        if not self.exists:
            return f"StationaryPoint(exists=False: {self.message})"
        return (f"StationaryPoint(exists=True, F={self.F:.6g}, grad_norm={self.grad_norm:.2e}, "
                f"lambda_min={self.lambda_min:.6g})")


@validated
def theorem2_stationary_point(objective, x: ArrayLike | None = None, *,
                              rtol: float = 1e-10) -> StationaryPoint:
    """The stationary point ``(w, V) = (0, -(G^+ S)^T)`` of Theorem 2, when one exists.

    Parameters
    ----------
    objective : FeatureObjective or Objective
        Residual head (``p = w^T (x + V phi)``, or ``W (x + V phi)`` with c outputs).
    x : array, optional
        For an Objective: a point whose ``theta`` fixes the features (its ``(w, V)`` is
        ignored); the result keeps that ``theta``.  Not used for a FeatureObjective.
    rtol : float
        ``G V^T = -S`` counts as solved when ``||G V^T + S|| <= rtol ||S||``.

    Returns
    -------
    StationaryPoint
        ``exists``, ``x``, ``V``, ``F``, ``grad_norm``, ``lambda_min``, ``message``.
    """
    fo, tail = _features(objective, x)
    if fo.head != "residual":
        raise ValueError("Theorem 2 is about the residual head p = w^T (x + V phi); this "
                         f"objective has head={fo.head!r}")
    c = fo.n_outputs
    W0 = np.zeros((c, fo.d)) if fo.vector else np.zeros(fo.d)
    origin = fo.pack(W0, np.zeros((fo.d, fo.k)))
    S, G = _origin_statistics(fo, origin)
    V = -(np.linalg.pinv(G) @ S).T
    nS = float(np.linalg.norm(S))
    residual = float(np.linalg.norm(G @ V.T + S)) / nS if nS > 0 else 0.0
    stats = (S[0], G[0]) if not fo.vector else (S, G)
    if residual > rtol:
        why = ("g = E[l'(0) phi] = 0 while s = E[l'(0) x] != 0" if c == 1 else
               f"the rows of S = E[l'(0) x^T] are not in the row space of G = E[l'(0) phi^T] "
               f"(rank {np.linalg.matrix_rank(G)} of {c})")
        return StationaryPoint(False, None, None, float("nan"), float("nan"), float("nan"),
                               residual, *stats,
                               f"no V makes (0, V) stationary: {why}, so grad_w F(0, V) = "
                               "s + V g cannot vanish")
    z = fo.pack(W0, V)
    F, grad = fo.fun_and_grad(z)
    point = np.concatenate([z, tail]) if tail.size else z
    return StationaryPoint(True, point, V, float(F), float(np.linalg.norm(grad)),
                           _lambda_min(fo, z), residual, *stats,
                           "stationary: w = 0, V = -(G^+ S)^T (least norm)")


def _features(objective, x):
    if isinstance(objective, Objective):
        if x is None:
            raise ValueError("x is required for an Objective: its theta fixes the features")
        x = objective.validate_point(x, "x")
        fo = objective.partial(x, materialize=True)
        return fo, np.asarray(x[fo.n_params:], dtype=np.float64)
    if isinstance(objective, FeatureObjective):
        return objective, np.empty(0)
    raise TypeError("objective must be an Objective or a FeatureObjective; got "
                    f"{type(objective).__name__}")


def _origin_statistics(fo, origin):
    """``S = E[l'(0) x^T]`` (c, d) and ``G = E[l'(0) phi^T]`` (c, k) in float64, from one
    pass (see the module notes)."""
    d, k = fo.d, fo.k
    if fo.vector:
        c = fo.n_outputs
        st = certify_vector.statistics(fo, np.zeros((c, d)), np.zeros((d, k)),
                                       gauss_newton=False)
        return st.grad_W, st.Gamma.T
    st = fo.stats(origin)
    return (np.asarray(st.grad, dtype=np.float64)[None, :d],
            np.asarray(st.g, dtype=np.float64)[None, :])


def _lambda_min(fo, z) -> float:
    if fo.vector and certify_vector.structured_size(fo) > certify_vector.MAX_DENSE:
        return float("nan")
    return certify.lambda_min_structured(fo, z).value
