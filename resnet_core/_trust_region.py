"""Second-order minimisation of a smooth function of a few variables whose every evaluation is
a pass over the data: the exact trust-region step on a spectral decomposition of the Hessian,
and the trust-region Newton method built on it.

The model at ``w`` is ``m(p) = g^T p + 1/2 p^T H p`` with ``H = Q diag(ev) Q^T``, given as a
:class:`Model` (from ``eigh`` of a Gram matrix, or from the SVD of a QR factor ``R`` with
``H = R^T R``, which resolves eigenvalues down to ``eps^2 ev_max`` instead of ``eps ev_max``).

- :func:`ball_step` solves ``min m(p)`` over ``||p|| <= radius`` exactly (Moré and Sorensen):
  ``p(lam) = -Q (ev + lam)^-1 Q^T g`` with ``lam >= max(0, -ev_min)`` the root of the secular
  equation ``1 / ||p(lam)|| = 1 / radius`` (or ``lam = 0`` when the unconstrained step is
  inside), found by Brent's method on a bracket that is always valid.  The same routine gives
  the radius-constrained least squares solution of :mod:`resnet_core.linear`.
- :func:`newton_decrement` is ``nu^2 = g^T H^+ g``: twice the decrease the Newton step
  predicts, invariant to a rescaling of the variables; ``nu^2 / 2`` relative to ``|F|`` is
  the stopping rule.
- :func:`cubic_step` minimises the cubic model ``m(p) + sigma/6 ||p||^3`` exactly (Nesterov
  and Polyak), :func:`steihaug` the model within a ball by truncated conjugate gradients on
  Hessian-vector products (both for :func:`resnet_core.find_sopsp`).
- :func:`trust_region_newton` is Algorithm 4.1 of Nocedal and Wright with exact steps:
  globally convergent to a stationary point for a twice continuously differentiable
  function, to the minimum for a convex one, quadratically where ``H`` is positive definite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import math

import numpy as np
from scipy.optimize import brentq


@dataclass
class Model:
    """``F``, ``g`` and ``H = Q diag(ev) Q^T`` at a point; eigenvalues at or below ``null``
    are zero at the precision ``H`` is known to; ``eps`` is that of ``F`` and ``g``."""

    F: float
    g: np.ndarray
    ev: np.ndarray
    Q: np.ndarray
    null: float
    eps: float
    # The decrement that rounding of ``g`` alone can give (0: not known); the polish stops
    # there.
    noise: float = 0.0

    @classmethod
    def from_hessian(cls, F, g, H, eps):
        """From a summed Hessian (a Gram matrix): eigenvalues known to ``eps d ev_max``."""
        ev, Q = np.linalg.eigh(H)
        return cls(F, g, ev, Q, float(eps * ev.size * np.abs(ev).max(initial=0.0)), eps)

    @classmethod
    def from_factor(cls, F, g, R, eps, n_rows, shift=0.0):
        """From ``R`` with ``H = R^T R + shift I``, the QR factor of ``n_rows`` rows: its
        singular values are known to ``eps (d + sqrt(n_rows)) s_max`` (the backward error
        of Householder QR), so eigenvalues to the square of that, relative."""
        _, sv, Vt = np.linalg.svd(R, full_matrices=True)
        sv = np.concatenate([sv, np.zeros(R.shape[1] - sv.size)])
        order = np.argsort(sv)
        ev = sv[order] ** 2
        null = float((eps * (ev.size + np.sqrt(n_rows))) ** 2 * ev.max(initial=0.0))
        return cls(F, g, ev + shift, Vt.T[:, order], null, eps)

    def quad(self, p) -> float:
        """``p^T H p`` (as a sum of squares: no underflow at tiny scales)."""
        c = self.Q.T @ p
        root = np.sqrt(np.abs(self.ev)) * c
        return float(np.sum(np.sign(self.ev) * root**2))


def qr_factor(row_blocks, n_cols: int) -> np.ndarray:
    """The triangular factor ``R`` of the rows of all ``row_blocks`` stacked (float64), by
    tall-skinny QR: ``R <- qr([R; block])``, so memory is one block plus ``R``."""
    R = np.zeros((0, n_cols))
    for rows in row_blocks:
        R = np.linalg.qr(np.vstack([R, rows]), mode="r")
    return R


def newton_decrement(m: Model) -> float:
    """``nu^2 = g^T H^+ g``.

    A gradient component along a null direction of ``H`` (no curvature to stop a step) counts
    as if its curvature were ``sqrt(eps) ev_max``: the rounding noise of a sum lies far below
    that, a real slope (a linear piece of the smoothed hinge) far above; with ``H = 0`` any
    gradient gives ``inf``.
    """
    c = m.Q.T @ m.g
    pos = m.ev > m.null
    null_part = float(c[~pos] @ c[~pos])
    curved = float(np.sum((c[pos] / np.sqrt(m.ev[pos])) ** 2))  # no over/underflow
    if null_part == 0.0:
        return curved
    floor = np.sqrt(m.eps) * max(float(m.ev[-1]), 0.0)
    return float("inf") if floor == 0.0 else curved + null_part / floor


def newton_step(m: Model) -> np.ndarray:
    """The minimum-norm Newton step ``-H^+ g`` (pseudo-inverse on the positive part)."""
    c = -(m.Q.T @ m.g)
    pos = m.ev > m.null
    q = np.zeros_like(c)
    q[pos] = c[pos] / m.ev[pos]
    return m.Q @ q


def safe_norm(v: np.ndarray) -> float:
    """``||v||`` without overflow or underflow of the squares (gradients of 1e200 occur)."""
    top = float(np.max(np.abs(v), initial=0.0))
    return top * float(np.linalg.norm(v / top)) if top > 0 else 0.0


def inside_ball(p: np.ndarray, radius: float) -> np.ndarray:
    """``p`` scaled onto the ball ``||p|| <= radius`` when it lies outside, never an ulp
    beyond it."""
    norm = np.linalg.norm(p)
    if norm <= radius:
        return p
    p = p * (radius / norm)
    while np.linalg.norm(p) > radius:
        p = p * (1.0 - np.finfo(float).eps)
    return p


def _step_norm(ev, c, lam):
    with np.errstate(divide="ignore", invalid="ignore"):
        q = c / (ev + lam)
    q[c == 0] = 0.0
    return float(np.linalg.norm(q))


def ball_step(m: Model, radius: float):
    """Exact minimiser of ``g^T p + 1/2 p^T H p`` over ``||p|| <= radius``.

    Returns ``(p, lam)`` with ``(H + lam I) p = -g``, ``lam >= 0``, ``lam (radius - ||p||) = 0``
    (the KKT conditions; ``H + lam I`` positive semi-definite).
    """
    c = -(m.Q.T @ m.g)
    ev = np.where(np.abs(m.ev) <= m.null, 0.0, m.ev)
    lam_lo = max(0.0, -float(ev.min()))
    # lam = lam_lo works when the step it gives (pseudo-inverse on the zero eigenvalues of
    # H + lam_lo I, whose components of c must vanish) lies inside the ball.
    shifted = ev + lam_lo
    zero = shifted <= m.null
    inside = np.zeros_like(c)
    inside[~zero] = c[~zero] / shifted[~zero]
    # Components of c along zero curvature at the rounding level do not block the step.
    blocked = np.any(np.abs(c[zero]) > np.sqrt(m.eps) * safe_norm(c))
    if not blocked:
        c[zero] = 0.0  # rounding noise: no step along zero curvature
    if not blocked and np.linalg.norm(inside) <= radius:
        p = m.Q @ inside
        if lam_lo > 0:  # hard case: fill up to the boundary along the null direction
            tau = np.sqrt(max(radius**2 - float(inside @ inside), 0.0))
            p = p + tau * m.Q[:, int(np.argmin(ev))]
        return p, lam_lo

    def psi(lam):
        n = _step_norm(ev, c, lam)
        return (1.0 / n if n > 0 else np.inf) - 1.0 / radius

    lam_hi = lam_lo + safe_norm(c) / radius
    while psi(lam_hi) < 0:  # rounding only: ||p(lam_hi)|| <= radius in exact arithmetic
        lam_hi = 2.0 * lam_hi + 1e-300
    if psi(lam_lo) >= 0:
        lam = lam_lo
    else:
        lam = brentq(psi, lam_lo, lam_hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                     maxiter=400)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = c / (ev + lam)
    q[c == 0] = 0.0
    return inside_ball(m.Q @ q, radius), float(lam)


def cubic_step(ev: np.ndarray, Q: np.ndarray, g: np.ndarray, sigma: float) -> np.ndarray:
    """Exact minimiser, for ``H = Q diag(ev) Q^T``, of ``g^T r + 1/2 r^T H r +
    sigma/6 ||r||^3`` (Nesterov and Polyak 2006, section 5): ``(H + lam I) r = -g`` with
    ``lam = sigma ||r|| / 2`` and ``H + lam I`` positive semi-definite, ``lam`` the root of a
    decreasing function; in the hard case the step is filled up along the eigenvector of
    the smallest eigenvalue."""
    c = -(Q.T @ g)
    lam_lo = max(0.0, -float(ev[0]))
    tiny = 1e-14 * max(float(np.abs(c).max(initial=0.0)), 1e-300)
    near = ev + lam_lo <= 1e-14 * max(float(np.abs(ev).max()), 1e-300)

    def q_of(lam):
        with np.errstate(divide="ignore", invalid="ignore"):
            q = c / (ev + lam)
        q[c == 0] = 0.0
        return q

    def phi(lam):
        return float(np.linalg.norm(q_of(lam))) - 2.0 * lam / sigma

    if np.all(np.abs(c[near]) <= tiny):  # possibly the hard case
        c_soft = np.where(near, 0.0, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(near, 0.0, c_soft / (ev + lam_lo))
        if np.linalg.norm(q) <= 2.0 * lam_lo / sigma:
            if lam_lo == 0.0:
                return Q @ q
            q[int(np.argmin(ev))] = math.sqrt(max((2.0 * lam_lo / sigma) ** 2 - q @ q, 0.0))
            return Q @ q
    lo = lam_lo
    hi = lam_lo + max(math.sqrt(sigma * float(np.linalg.norm(c)) / 2.0), 1e-300)
    while phi(hi) > 0:
        lo, hi = hi, 2.0 * hi
    if phi(lo) <= 0:  # lo = lam_lo and no root above it: rounding at the boundary
        return Q @ q_of(hi)
    lam = brentq(phi, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=400)
    return Q @ q_of(lam)


def steihaug(g: np.ndarray, hessp: Callable, radius: float, max_cg: int,
             rtol: float = 1e-6):
    """Truncated CG on ``g^T p + 1/2 p^T H p`` within ``||p|| <= radius`` (Steihaug-Toint),
    ``H`` given by its products ``hessp(p)``: returns ``(p, model decrease)``."""
    p, r = np.zeros_like(g), g.copy()
    d = -r
    gnorm = np.linalg.norm(g)

    def to_boundary(p, d):
        a, b, c = d @ d, 2 * p @ d, p @ p - radius**2
        return (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)

    for _ in range(max_cg):
        Hd = hessp(d)
        curv = float(d @ Hd)
        if curv <= 0:
            p = p + to_boundary(p, d) * d
            break
        alpha = float(r @ r) / curv
        if np.linalg.norm(p + alpha * d) >= radius:
            p = p + to_boundary(p, d) * d
            break
        p = p + alpha * d
        r_new = r + alpha * Hd
        if np.linalg.norm(r_new) <= rtol * gnorm:
            break
        d = -r_new + float(r_new @ r_new) / float(r @ r) * d
        r = r_new
    return p, -float(g @ p + 0.5 * p @ hessp(p))


@dataclass
class NewtonResult:
    """The end of :func:`trust_region_newton`: the point, its :class:`Model`, the Newton
    decrement ``nu^2``, iterations, data passes, and why it stopped (``"decrement"``,
    ``"rounding"``: converged; ``"stalled"``, ``"diverged"``, ``"max_iter"``: not)."""

    w: np.ndarray
    model: Model
    decrement: float
    nit: int
    npass: int
    stop: str

    @property
    def F(self) -> float:
        return self.model.F

    @property
    def converged(self) -> bool:
        return self.stop in ("decrement", "rounding")


def _polish(full, w, m, nu2, it, npass, stop):
    """At most three full Newton steps once ``F`` has converged: the evaluation can no longer
    see the decrease, so a step is kept when the Newton decrement falls and ``F`` does not rise
    beyond rounding, and the next is tried only while the decrement falls by 16 or more
    (below that it is rounding noise).  This takes ``w`` and the gradient from ``sqrt(eps)``
    to ``eps`` accuracy."""
    for _ in range(3):
        if nu2 <= 16 * m.noise:
            break
        w_new = w + newton_step(m)
        m_new = full(w_new)
        npass += 1
        nu2_new = newton_decrement(m_new)
        if not (m_new.F <= m.F + 16 * m.eps * max(abs(m.F), 1e-300) and nu2_new < nu2):
            break
        w, m, nu2, fell = w_new, m_new, nu2_new, nu2_new <= nu2 / 16
        if not fell:
            break
    return NewtonResult(w, m, nu2, it, npass, stop)


def trust_region_newton(full: Callable, value: Callable, w0: np.ndarray, *, tol: float,
                        max_iter: int, F_floor: float = 0.0, floor_rel: float = 0.0,
                        trial_full: bool = False, polish: bool = True) -> NewtonResult:
    """Minimise ``F`` from ``w0`` by trust-region Newton with exact steps.

    Parameters
    ----------
    full : callable
        ``w -> Model`` (one data pass).
    value : callable
        ``w -> F`` (a cheaper pass, for trial points).
    tol : float
        Stop when ``nu^2 / 2 <= tol max(|F|, F_floor)``: the Newton model predicts no
        decrease beyond that fraction of ``F`` (scale-invariant in the variables and in
        ``F``).  A step whose predicted decrease is below ``16 eps max(|F|, F_floor)`` (the
        model's ``eps``: the precision of the passes) cannot be confirmed by an evaluation
        and stops the run at the rounding level.
    F_floor : float
        Scale of ``F`` below which relative changes are meaningless (e.g. ``eps F(w0)``).
    floor_rel : float
        Raises ``F_floor`` to ``floor_rel |F(w0)|`` (no extra pass for ``F(w0)``).
    trial_full : bool
        Evaluate trial points by ``full`` (its model is kept when the step is accepted): one
        pass per accepted step instead of two, when ``full`` costs about what ``value`` does
        (a Gram pass computes ``F``, ``g`` and ``H`` together).
    polish : bool
        Take the polishing steps after convergence (:func:`_polish`); False for a rough
        answer (a warm start).
    """
    w = np.array(w0, dtype=np.float64)
    m = full(w)
    npass = 1
    F_floor = max(F_floor, floor_rel * abs(m.F))
    delta = None
    for it in range(max_iter + 1):
        if not (np.isfinite(m.F) and np.all(np.isfinite(w)) and np.all(np.isfinite(m.g))):
            return NewtonResult(w, m, float("nan"), it, npass, "diverged")
        nu2 = newton_decrement(m)
        scale = max(abs(m.F), F_floor)
        if nu2 / 2 <= tol * scale:
            if not polish:
                return NewtonResult(w, m, nu2, it, npass, "decrement")
            return _polish(full, w, m, nu2, it, npass, "decrement")
        if it == max_iter:
            break
        if delta is None:  # the first Newton step sets the scale of w (or F / ||g||)
            norm = np.linalg.norm(newton_step(m))
            delta = norm if norm > 0 else scale / np.linalg.norm(m.g)
        while True:
            if not 0 < delta < np.inf:
                return NewtonResult(w, m, nu2, it, npass, "diverged")
            p, _ = ball_step(m, delta)
            pred = -float(m.g @ p + 0.5 * m.quad(p))
            if not pred > 16 * m.eps * scale:
                # No step can be confirmed by the evaluation: the rounding level, if the
                # Newton model agrees that little is left; otherwise the model is wrong here.
                if nu2 / 2 <= np.sqrt(m.eps) * scale:
                    return _polish(full, w, m, nu2, it, npass, "rounding")
                return NewtonResult(w, m, nu2, it, npass, "stalled")
            m_new = full(w + p) if trial_full else None
            F_new = m_new.F if trial_full else value(w + p)
            npass += 1
            rho = (m.F - F_new) / pred if np.isfinite(F_new) else -np.inf
            step = np.linalg.norm(p)
            if rho < 0.25:
                delta = 0.25 * step
            elif rho > 0.75 and step >= 0.99 * delta:
                delta = 2.0 * delta
            if rho > 1e-4:
                break
        w = w + p
        if m_new is None:
            m = full(w)
            npass += 1
        else:
            m = m_new
    return NewtonResult(w, m, nu2, max_iter, npass, "max_iter")
