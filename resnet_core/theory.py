"""The paper's quantities: Lemma 1, Theorems 1, 2 and 3, Example 1 and Figure 1.

Notation of ``paper.md``: ``F = F(w, V, theta)``, ``F_lin(w*) = E[l(w*^T x; y)]``,
``||V||`` the spectral norm, the gradient over ``(w, V)`` with ``theta`` fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .objective import FeatureObjective


def lemma1_direction(w: ArrayLike, V: ArrayLike, w_star: ArrayLike) -> np.ndarray:
    """Lemma 1's direction ``G = (w - w*, w (w*)^T V / ||w||^2)`` as a flat ``[dw, vec(dV)]``
    (``w != 0``); ``<G, grad F_theta(w, V)> = E[l' (p - w*^T x)] >= F - F_lin(w*)``."""
    w, V, w_star = (np.asarray(a, dtype=np.float64) for a in (w, V, w_star))
    nw2 = float(w @ w)
    if nw2 == 0.0:
        raise ValueError("Lemma 1 needs w != 0 (at w = 0 use Theorem 2)")
    return np.concatenate([w - w_star, np.outer(w, w_star @ V).ravel() / nw2])


def lemma1_inner(objective: FeatureObjective, z: ArrayLike, w_star: ArrayLike) -> float:
    """``<G, grad F_theta(w, V)>`` at ``z = [w, vec(V)]`` (residual head)."""
    z = np.asarray(z, dtype=np.float64)
    parts = objective.unpack(z)
    return float(lemma1_direction(parts["w"], parts["V"], w_star) @ objective.grad(z))


def theorem1_bound(gap: float, w: ArrayLike, V: ArrayLike, w_star: ArrayLike) -> float:
    """Theorem 1's lower bound on ``||grad F_theta(w, V)||`` (``w != 0``):
    ``(F - F_lin(w*)) / sqrt(2 ||w||^2 + ||w*||^2 (2 + ||V||^2 / ||w||^2))``."""
    w, V, w_star = (np.asarray(a, dtype=np.float64) for a in (w, V, w_star))
    nw2 = float(w @ w)
    if nw2 == 0.0:
        raise ValueError("Theorem 1 needs w != 0 (at w = 0 use Theorem 2)")
    nV = float(np.linalg.norm(V, 2))
    return float(gap / np.sqrt(2 * nw2 + float(w_star @ w_star) * (2 + nV**2 / nw2)))


def theorem2_lhs(grad_norm: float, lambda_min: float, A, V, w_star) -> float:
    """Left side of Theorem 2 at ``w = 0``:
    ``||w*|| (||grad|| + ||V|| sqrt(|lambda_min| ||d2F/dw2|| + lambda_min^2))`` with
    ``d2F/dw2 (0, V) = A``; the theorem says it is at least ``F - F_lin(w*)``."""
    nA = float(np.linalg.norm(np.asarray(A, dtype=np.float64), 2))
    nV = float(np.linalg.norm(np.asarray(V, dtype=np.float64), 2))
    lam = float(lambda_min)
    return float(np.linalg.norm(w_star) * (grad_norm + nV * np.sqrt(abs(lam) * nA + lam**2)))


def theorem3_coefficients(b: float, r: float, mu0: float, mu1: float,
                          mu2: float) -> tuple[float, float, float]:
    """``(c1, c2, c4)`` with ``F - min_{||w|| <= r} F_lin <= c1 eps + c2 sqrt(eps)
    + c4 eps^(1/4)`` at every eps-SOPSP of the region ``max(||w||, ||V||) <= b``
    (docs/theorem3.md derives them from Theorems 1 and 2)::

        c1 = sqrt(2 b^2 + 2 r^2)
        c2 = max(r b, mu0 + r mu1 + r b (sqrt(mu2) + mu2))
        c4 = r b sqrt(mu1 (sqrt(mu2) + mu2))
    """
    vals = [float(v) for v in (b, r, mu0, mu1, mu2)]
    for name, v in zip(("b", "r", "mu0", "mu1", "mu2"), vals):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a non-negative finite number; got {v!r}")
    b, r, mu0, mu1, mu2 = vals
    m = np.sqrt(mu2) + mu2
    c1 = float(np.sqrt(2 * b**2 + 2 * r**2))
    c2 = float(max(r * b, mu0 + r * mu1 + r * b * m))
    c4 = float(r * b * np.sqrt(mu1 * m))
    return c1, c2, c4


def theorem3_poly(b: float, r: float, mu0: float, mu1: float, mu2: float) -> float:
    """Theorem 3's ``poly(b, r, mu0, mu1, mu2) = c1 + c2 + c4`` (:func:`theorem3_coefficients`):
    ``eps``, ``sqrt(eps)`` and ``eps^(1/4)`` are each at most ``eps + eps^(1/4)``."""
    return float(sum(theorem3_coefficients(b, r, mu0, mu1, mu2)))


def theorem3_bound(eps: float, b: float, r: float, mu0: float, mu1: float,
                   mu2: float) -> float:
    """Theorem 3's bound ``(eps + eps^(1/4)) poly(b, r, mu0, mu1, mu2)`` on
    ``F(w, V, theta) - min_{||w|| <= r} F_lin(w)`` at an eps-SOPSP (Definition 1 with this
    ``mu2``) of the region ``max(||w||, ||V||) <= b`` where ``F_theta``, its gradient and
    its Hessian are ``mu0``, ``mu1``, ``mu2``-Lipschitz."""
    eps = float(eps)
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a non-negative finite number; got {eps!r}")
    return float((eps + eps**0.25) * theorem3_poly(b, r, mu0, mu1, mu2))


def example1(eps: float):
    """Example 1: ``x = y = 1``, ``f_theta(x) = eps x``, squared loss, so
    ``F(w, v) = (w (1 + eps v) - 1)^2 / 2``.

    Returns ``(objective, z0)``: the :class:`FeatureObjective` and its stationary point
    ``z0 = (0, -1/eps)``, where the gradient is 0, the Hessian ``[[0, -eps], [-eps, 0]]``
    (eigenvalues ``+-eps``) and ``F = 1/2 > 0 = F_lin(1)``: an eps-SOPSP worse than a linear
    predictor, because its norm is ``1/eps``.
    """
    eps = float(eps)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    obj = FeatureObjective(np.ones((1, 1)), np.full((1, 1), eps), np.ones(1), loss="squared")
    return obj, np.array([0.0, -1.0 / eps])


@dataclass(frozen=True)
class Figure1Panel:
    """One panel of Figure 1: ``F(w, v) = (w (1 + v) - 1)^2`` (Example 1 with ``eps = 1``,
    without the 1/2), plus ``reg/2 (w^2 + v^2)`` and restricted to ``||(w, v)|| <= radius``.

    ``fun``, ``grad``, ``hessian`` take ``z`` with ``z[..., 0] = w``, ``z[..., 1] = v`` and
    broadcast over leading axes (contour grids).
    """

    name: str
    title: str
    reg: float = 0.0
    radius: float | None = None

    def fun(self, z: ArrayLike):
        z = np.asarray(z, dtype=np.float64)
        w, v = z[..., 0], z[..., 1]
        return (w * (1 + v) - 1) ** 2 + 0.5 * self.reg * (w**2 + v**2)

    def grad(self, z: ArrayLike):
        z = np.asarray(z, dtype=np.float64)
        w, v = z[..., 0], z[..., 1]
        r = w * (1 + v) - 1
        return np.stack([2 * r * (1 + v) + self.reg * w, 2 * r * w + self.reg * v], axis=-1)

    def hessian(self, z: ArrayLike):
        z = np.asarray(z, dtype=np.float64)
        w, v = z[..., 0], z[..., 1]
        off = 2 * (2 * w * (1 + v) - 1)
        return np.stack([np.stack([2 * (1 + v) ** 2 + self.reg, off], axis=-1),
                         np.stack([off, 2 * w**2 + self.reg], axis=-1)], axis=-2)

    def feasible(self, z: ArrayLike) -> np.ndarray:
        """Whether ``z`` lies in the panel's domain."""
        z = np.asarray(z, dtype=np.float64)
        if self.radius is None:
            return np.ones(z.shape[:-1], dtype=bool)
        return np.linalg.norm(z, axis=-1) <= self.radius


FIGURE1 = {
    "a": Figure1Panel("a", "F(w, v) = (w(1+v) - 1)^2"),
    "b": Figure1Panel("b", "F + (w^2 + v^2)/4", reg=0.5),
    "c": Figure1Panel("c", "F on ||(w, v)|| <= 2", radius=2.0),
}


def figure1(panel: str) -> Figure1Panel:
    """The objective of Figure 1's panel ``"a"``, ``"b"`` or ``"c"``."""
    if panel not in FIGURE1:
        raise ValueError(f"panel must be one of {sorted(FIGURE1)}; got {panel!r}")
    return FIGURE1[panel]
