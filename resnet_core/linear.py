"""The best linear predictor ``w* = argmin E[l(w^T x; y)]`` (optionally over ``||w|| <= R``).

``F_lin(w) = F(w, 0, theta)`` is convex; the residual objective is compared with its
minimum.  Solved by Newton's method on the compiled Gram pass (each iteration: one pass for
``F``, the gradient ``E[l' x]`` and the Hessian ``E[l'' x x^T]``), regularised by the
gradient norm and with a backtracking line search.
With a radius, ``min F_lin(w) + lam/2 ||w||^2`` is solved for the multiplier ``lam >= 0``
that puts ``w`` on the sphere (``||w(lam)||`` decreases in ``lam``), by Brent's method.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult, brentq

from ._engine import Engine
from ._validation import check_data, check_sample_weight
from .losses import get_loss


class LinearBaselineResult(OptimizeResult):
    """Result of :func:`linear_baseline`.

    Attributes
    ----------
    w, x : ndarray
        The minimiser (``x`` is an alias, as in scipy).
    fun : float
        ``F_lin(w)``.
    grad_norm : float
        Norm of the gradient at ``w``; with an active radius constraint, of the KKT
        residual ``grad F_lin(w) + lam w``.
    converged, success : bool
    multiplier : float
        ``lam`` of the radius constraint (0 when it is inactive or absent).
    radius : float or None
    nit : int
        Newton iterations (all solves together).
    message : str
    """


def _newton(engine: Engine, w0, lam, gtol, max_iter):
    """Minimise ``F_lin(w) + lam/2 ||w||^2`` from ``w0``; returns ``(w, F_lin, grad, nit, ok)``."""
    d = engine.d
    empty = np.empty(0, dtype=engine.dtype)
    w = np.asarray(w0, dtype=np.float64)
    for it in range(max_iter):
        F, sx, _, G = engine.gram(w.astype(engine.dtype), empty, None, key=w)
        grad = sx.astype(np.float64) + lam * w
        if np.linalg.norm(grad) <= gtol:
            return w, F, sx.astype(np.float64), it, True
        # Regularised Newton: the shift ||grad|| keeps the step defined where l'' = 0 on
        # many samples (smoothed hinge) and vanishes at the optimum (superlinear there).
        H = G.astype(np.float64) + (lam + np.linalg.norm(grad)) * np.eye(d)
        step = np.linalg.lstsq(H, -grad, rcond=None)[0]
        decrement = -grad @ step
        if not decrement > 0:  # no descent left at this precision
            return w, F, sx.astype(np.float64), it, False
        total = F + 0.5 * lam * (w @ w)
        t = 1.0
        # Full Newton steps once the decrement is at rounding level: the line search can
        # no longer see a decrease in F there.
        if decrement > 1e-12 * (1.0 + abs(total)):
            while t > 1e-12:
                wt = w + t * step
                Ft = engine.value_grad(wt.astype(engine.dtype), empty, None, need_theta=False,
                                       key=wt)[0] + 0.5 * lam * (wt @ wt)
                if Ft <= total - 1e-4 * t * decrement:
                    break
                t *= 0.5
        w = w + t * step
    F, sx, _, _ = engine.value_grad(w.astype(engine.dtype), empty, None, need_theta=False, key=w)
    sx = sx.astype(np.float64)
    return w, F, sx, max_iter, np.linalg.norm(sx + lam * w) <= gtol


def linear_baseline(X: ArrayLike, y: ArrayLike, *, loss="logistic", sample_weight=None, radius=None, gtol=None,
                    max_iter: int = 100, n_threads=None) -> LinearBaselineResult:
    """Best linear predictor ``w* = argmin_{||w|| <= radius} E[l(w^T x; y)]``.

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,)
    loss : str, Loss or callable
    sample_weight : array of shape (n,), optional
    radius : float, optional
        Constrain ``||w|| <= radius``.
    gtol : float, optional
        Target gradient (KKT residual) norm: 1e-10 in float64, 1e-5 in float32.
    max_iter : int
        Newton iterations per solve.
    n_threads : int, optional

    Returns
    -------
    LinearBaselineResult
        ``w``, ``fun = F_lin(w)``, ``grad_norm``, ``converged``, ``multiplier``.  When the
        infimum is not attained (separable data under the logistic loss, no radius), the
        iterates grow without bound and ``converged`` is False.
    """
    X, y = check_data(X, y)
    loss = get_loss(loss)
    loss.check_labels(y)
    s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    if radius is not None:
        radius = float(radius)
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a positive finite number or None; got {radius}")
    if gtol is None:
        gtol = 1e-10 if X.dtype == np.float64 else 1e-5
    n, d = X.shape
    engine = Engine(X, y, s, loss, 0, Phi=np.empty((n, 0), dtype=X.dtype),
                    n_threads=n_threads)

    w, F, g, nit, ok = _newton(engine, np.zeros(d), 0.0, gtol, max_iter)
    lam = 0.0
    if radius is not None and (not ok or np.linalg.norm(w) > radius):
        solves = {}

        def excess(lam_):
            start = solves[min(solves, key=lambda l0: abs(l0 - lam_))][0] if solves else np.zeros(d)
            solves[lam_] = _newton(engine, start, lam_, gtol, max_iter)
            return np.linalg.norm(solves[lam_][0]) - radius

        hi = 1.0
        while excess(hi) > 0:
            hi *= 10.0
        lo = hi / 10.0
        while lo > 1e-14 and excess(lo) < 0:
            hi, lo = lo, lo / 10.0
        lam = brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14) if lo > 1e-14 else 0.0
        w, F, g, it2, ok = _newton(engine, solves[min(solves, key=lambda l0: abs(l0 - lam))][0],
                                   lam, gtol, max_iter)
        nit += sum(v[3] for v in solves.values()) + it2
    grad_norm = float(np.linalg.norm(g + lam * w))
    message = "converged" if ok else (
        "not converged: the infimum may not be attained (separable data?); give a radius"
        if radius is None else "not converged within max_iter")
    return LinearBaselineResult(w=w, x=w, fun=float(F), grad_norm=grad_norm, converged=bool(ok),
                                success=bool(ok), multiplier=float(lam), radius=radius,
                                nit=int(nit), message=message)
