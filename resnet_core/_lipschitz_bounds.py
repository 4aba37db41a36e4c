r"""Proven Lipschitz constants of ``F_theta``, its gradient and its Hessian on a norm region,
from bounds on the loss's derivatives (one streamed pass over the data).

The region is ``R = {(w, M) : ||w|| <= b_w, ||M||_2 <= b_M}`` (``M = V``, d x k, for the
residual head, ``M = v`` for the skip head): convex, so on ``R`` the Lipschitz constants of
``F``, ``grad F`` and ``hess F`` are at most ``sup_R ||D^j F||`` for ``j = 1, 2, 3``, and for
a symmetric ``j``-linear form the norm is ``sup_{|h| = 1} |D^j F[h, ..., h]|``.

Write ``h = (dw, dM)`` with ``||dw||^2 + ||dM||_F^2 = 1`` and, per sample,
``a_i = ||x_i|| + b_M ||phi_i||`` (a bound of ``||u_i||``, ``u_i = x_i + V phi_i``).

Residual head, ``p = w^T (x + V phi)``:

- ``|p_i| <= P_i = b_w a_i``;
- ``D p[h] = dw^T u + w^T dV phi``, so ``|D p| <= q_i = sqrt(a_i^2 + b_w^2 ||phi_i||^2)``
  (Cauchy-Schwarz over ``(||dw||, ||dV||)``);
- ``D^2 p[h, h] = 2 dw^T dV phi``, so ``|D^2 p| <= e_i = ||phi_i||`` (``2 ab <= a^2 + b^2``);
- ``D^3 p = 0``.

Skip head, ``p = w^T x + v^T phi``: ``P_i = b_w ||x_i|| + b_M ||phi_i||``,
``q_i = sqrt(||x_i||^2 + ||phi_i||^2)``, ``e_i = 0``.

With ``L_j(P)`` a bound of ``|l^(j)(p; y)|`` over ``|p| <= P`` (chain rule for
``F = E[l(p)]``):

    mu0 = E[L_1 q],   mu1 = E[L_2 q^2 + L_1 e],   mu2 = E[L_3 q^3 + 3 L_2 q e].

The losses' bounds ``L_j`` come from the registry (:meth:`resnet_core.losses.Loss.bounds`;
``L_3`` is the Lipschitz constant of ``l''``, which bounds ``|l'''|`` wherever it exists and is
all the argument needs: along a segment the Hessian is then absolutely continuous).  For
example squared ``L_1 = P + |y|``, ``L_2 = 1``, ``L_3 = 0``; logistic (``l' = -y sigma(-y p)``)
``L_1 = |y| sigma(|y| P)``, ``L_2 = y^2 / 4``, ``L_3 = |y|^3 / (6 sqrt(3))`` (the maximum of
``sigma (1 - sigma) |1 - 2 sigma|``); the smoothed hinge ``L_1 = |l'(-sign(y) P)|``,
``L_2 = y^2 / h``, ``L_3 = |y|^3 / h^2``.  A loss without bounds (a user-defined one) or
without a Lipschitz constant of ``l''`` gives no constants: ``mu0 .. mu2`` are None.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .losses import Loss

#: Entries of X (or Phi) per block: its float64 copy stays small.
_BLOCK_ENTRIES = 1 << 16


@dataclass(frozen=True)
class DerivativeBounds:
    """Proven Lipschitz constants on ``{||w|| <= w_bound, ||M||_2 <= M_bound}``.

    ``mu0``, ``mu1``, ``mu2``: of ``F_theta``, its gradient and its Hessian (None where the
    loss gives no bound; ``reason`` says why).
    """

    w_bound: float
    M_bound: float
    mu0: float | None
    mu1: float | None
    mu2: float | None
    reason: str = ""


def derivative_bounds(objective, w_bound: float, M_bound: float) -> DerivativeBounds:
    """Proven ``mu0, mu1, mu2`` of ``F_theta`` on ``{||w|| <= w_bound, ||M||_2 <= M_bound}``
    (module notes): one pass over the data, row block by row block (memmap and dask data
    included; MLP features streamed).

    Parameters
    ----------
    objective : FeatureObjective
        One output (residual or skip head).
    w_bound, M_bound : float
        Non-negative bounds of ``||w||`` and of ``||V||_2`` (``||v||`` for the skip head).
    """
    fn, none = bounds_pass(objective, w_bound, M_bound)
    if fn is None:
        return none
    rows = max(64, _BLOCK_ENTRIES // max(objective.d, objective.k, 1))
    return bounds_from_sums(w_bound, M_bound, objective.engine.map_rows(fn, rows=rows))


def bounds_pass(objective, w_bound: float, M_bound: float):
    """``(fn, None)``: ``fn(block)`` gives a row block's three sums (for a pass of its own
    or folded into another one, :func:`bounds_from_sums` adds them); or ``(None, bounds)``
    without constants, ``bounds.reason`` saying why."""
    w_bound, M_bound = float(w_bound), float(M_bound)
    for name, v in (("w_bound", w_bound), ("M_bound", M_bound)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a non-negative finite number; got {v!r}")
    loss = getattr(objective, "loss", None)
    if getattr(objective, "n_outputs", 1) > 1 or getattr(loss, "vector", False):
        return None, DerivativeBounds(w_bound, M_bound, None, None, None,
                                      "no derivative bounds for c outputs")
    probe = loss.bounds(np.ones(1), np.ones(1)) if isinstance(loss, Loss) else None
    if probe is None or probe[3] is None:
        why = (f"the {loss.name} loss states no Lipschitz constant of l''" if probe is not None
               else f"no bounds on the derivatives of the loss {getattr(loss, 'name', loss)!r}")
        return None, DerivativeBounds(w_bound, M_bound, None, None, None, why)
    theta = objective.theta
    theta = np.zeros(0, objective.dtype) if theta is None else theta
    w0, a0 = objective.zero_head()
    return functools.partial(_block_sums, objective.head == "residual", loss, w_bound,
                             M_bound, w0, a0, theta), None


def _block_sums(residual, loss, w_bound, M_bound, w0, a0, theta, block) -> tuple:
    """One row block's ``(E[L_1 q], E[L_2 q^2 + L_1 e], E[L_3 q^3 + 3 L_2 q e])`` parts, in
    sub-blocks of ``_BLOCK_ENTRIES`` entries (small float64 copies whatever the block)."""
    eng = block.engine
    rows = max(64, _BLOCK_ENTRIES // max(eng.X.shape[1], 1))
    sums = [0.0, 0.0, 0.0]
    for i0 in range(0, eng.X.shape[0], rows):
        i1 = min(i0 + rows, eng.X.shape[0])
        Xc = eng.X[i0:i1]
        # the features of these rows (given, or streamed through the MLP)
        _, Phi = eng.predict(w0, a0, theta, features=True, X=Xc,
                             Phi=eng.Phi[i0:i1] if eng.Phi.shape[0] else None)
        nx = np.linalg.norm(np.asarray(Xc, np.float64), axis=1)
        nphi = np.linalg.norm(np.asarray(Phi, np.float64), axis=1)
        yi, si = np.asarray(eng.y[i0:i1], np.float64), np.asarray(eng.s[i0:i1], np.float64)
        if residual:
            a = nx + M_bound * nphi
            P, q, e = w_bound * a, np.sqrt(a**2 + (w_bound * nphi) ** 2), nphi
        else:
            P, q, e = w_bound * nx + M_bound * nphi, np.sqrt(nx**2 + nphi**2), 0.0 * nphi
        _, L1, L2, L3 = loss.bounds(P, yi)
        sums[0] += float(si @ (L1 * q))
        sums[1] += float(si @ (L2 * q**2 + L1 * e))
        sums[2] += float(si @ (L3 * q**3 + 3 * L2 * q * e))
    # plain floats: an array would travel back from a dask worker with its own frames
    return tuple(sums)


def bounds_from_sums(w_bound: float, M_bound: float, parts) -> DerivativeBounds:
    """The constants from the blocks' sums (in row order)."""
    sums = np.sum(np.asarray(parts, dtype=np.float64).reshape(-1, 3), axis=0)
    # the sums are of non-negative terms: rounding is relative, a few ulps per term
    mu0, mu1, mu2 = (float(v) * (1 + 1e-12) for v in sums)
    return DerivativeBounds(float(w_bound), float(M_bound), mu0, mu1, mu2)


def region_norm_bounds(region, d: int) -> tuple[float, float]:
    """``(max ||w||, max ||M||_F)`` over a Ball or Box of flat ``z = [w, vec(M)]``
    (``||M||_F >= ||M||_2``): exact for a box, ``||c_w|| + r`` and ``||c_M|| + r`` for a ball."""
    if hasattr(region, "radius"):
        c, r = region.center, region.radius
        return float(np.linalg.norm(c[:d]) + r), float(np.linalg.norm(c[d:]) + r)
    far = np.maximum(np.abs(region.lower), np.abs(region.upper))
    return float(np.linalg.norm(far[:d])), float(np.linalg.norm(far[d:]))
