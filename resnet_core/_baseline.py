"""Pieces shared by the best linear predictor for one output (:mod:`resnet_core.linear`) and
for ``c`` outputs (:mod:`resnet_core.linear_vector`): the result type, the unconstrained
minimum by trust-region Newton, the push along a separating direction, and the minimum over
a ball by the multiplier of ``min F_lin + lam/2 ||w||^2``.

Each works on a *passes* object over the data in its own flat variables ``w``: ``value(w)``,
``grad(w) -> (F, g)`` (without the penalty), ``full(w) -> Model``, ``penalised(lam)``,
``margins(w)`` (per sample, or per (sample, class) pair) and ``convex``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, brentq

from ._trust_region import Model, NewtonResult, ball_step, inside_ball, trust_region_newton


# Margin past which the logistic loss is below 2.4e-16 (log1p(exp(-36))): a point on the
# separating ray with every margin there is within that of the infimum 0.
LOGISTIC_MARGIN = 36.0
# Rows per block of the streamed QR factor of the Hessian.
QR_CHUNK = 4096


class LinearBaselineResult(OptimizeResult):
    """Result of :func:`resnet_core.linear_baseline`.

    Attributes
    ----------
    w, x : ndarray
        The returned predictor (``x`` is an alias, as in scipy): shape (d,), or (c, d) for
        ``c`` outputs (norms are then Frobenius norms).
    fun : float
        ``F_lin(w)`` at the returned ``w``, evaluated accurately (float64 margins and losses,
        correctly rounded sums).
    fun_error : float
        A bound of ``|fun - F_lin(w)|`` (exact ``F_lin`` at the returned ``w``): the
        rounding of the margins, the losses and the sums, so ``fun`` is never below the
        true minimum by more than ``fun_error``; ``nan`` for a user-defined loss (its
        curvature unknown) and, for now, for least squares with ``c`` outputs.
    w_fits : bool
        False when ``w`` does not fit in float64 (the data were rescaled by a power of two
        to be solved, and ``w`` scaled back over- or underflows: subnormal ``X`` needs
        ``|w|`` near 1e310): ``w`` then holds its float64 rounding (inf or lost digits),
        and the exact predictor is ``w_scaled * 2**w_exponent``; ``fun`` and ``infimum``
        are right either way.
    w_scaled, w_exponent : ndarray or None, int
        The predictor of the rescaled data and the power of two back (None and 0 when the
        data were solved as given): ``w = w_scaled * 2**w_exponent`` exactly.
    infimum : float
        ``inf F_lin`` over ``R^d`` (or the minimum over the ball with a radius).
    attained : bool or None
        Whether some finite ``w`` reaches the infimum (``fun == infimum`` up to rounding);
        None when the separability could not be decided (Newton's run neither separated the
        data nor proved overlap by its minimiser, and the linear program was skipped: too
        large, or the data not in memory): ``infimum`` is then right, whether a minimiser
        exists is not decided.
    converged, success : bool
        Whether ``infimum`` is known to the solver's precision.
    direction : ndarray or None
        The separating direction (the shape of ``w``) when the infimum is approached along
        a ray.
    separability : str or None
        ``"separable"``, ``"quasi_separable"``, ``"overlapping"``, ``"not_decided"``;
        None for the squared and user-defined losses.
    grad_norm : float
        ``||grad F_lin(w)||``, or the KKT residual ``||grad F_lin(w) + lam w||`` with a radius.
    decrement : float
        Newton decrement ``nu^2`` at ``w`` (0 for closed forms).
    multiplier : float
        ``lam`` of the radius constraint (0 when it is inactive or absent).
    radius : float or None
    nit, npass : int
        Newton iterations and data passes (all solves together).
    method, message : str
    """

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field (arrays as lists, non-finite floats as
        the strings ``"nan"``, ``"inf"``, ``"-inf"``, which JSON has no numbers for)."""
        def clean(v):
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                return str(v)
            return v
        out = {k: clean(v) for k, v in self.items()}
        json.dumps(out, allow_nan=False)  # fails here rather than in the caller's serialiser
        return out


class Separated(Exception):
    """Raised by :class:`Watched` at the first point whose margins are all positive."""

    def __init__(self, z, smallest):
        super().__init__("separated")
        self.z, self.smallest = z, smallest


class Watched:
    """The passes, with every point Newton's method evaluates (trial or accepted) checked
    for complete separation: ``passes.separation(z)``, positive only when every margin of
    a sample of positive weight is (pairs ``(w_{y_i} - w_j)^T x_i`` for classes), proves
    the data separable whatever a linear program would say."""

    convex = True

    def __init__(self, passes):
        self.passes = passes
        self.gram_steps = getattr(passes, "gram_steps", False)
        self.calls = 0  # points evaluated (data passes of the run)

    def _check(self, z):
        smallest = self.passes.separation(z)
        if smallest > 0:
            raise Separated(z, smallest)

    def value(self, z):
        self.calls += 1
        value = self.passes.value(z)
        self._check(z)
        return value

    def full(self, z):
        self.calls += 1
        if not self.gram_steps:  # a separate pass: before the (costlier) model
            self._check(z)
            return self.passes.full(z)
        model = self.passes.full(z)  # the Gram pass has the margins: after it
        self._check(z)
        return model


def minimise(passes, d, tol, eps, max_iter, loss_name):
    """Unconstrained minimum of an attained problem by trust-region Newton from 0."""
    res = trust_region_newton(passes.full, passes.value, np.zeros(d), tol=tol,
                              max_iter=max_iter, floor_rel=eps,
                              trial_full=getattr(passes, "gram_steps", False))
    # A user-defined loss may not be convex: then all Newton's method can promise is a
    # stationary point.
    what = ("minimum attained" if passes.convex else
            "stationary point reached (the minimum if the loss is convex)")
    msg = (f"{what}; Newton decrement at the tolerance" if res.stop == "decrement"
           else f"{what}; converged to the rounding level" if res.converged
           else f"not converged ({res.stop}) after {res.nit} Newton iterations of the "
                f"{loss_name} loss")
    return res, msg


def push_along(passes, w_base, u, separated, margin):
    """``w_base + t u`` with ``t`` the least that puts every margin on ``separated`` at
    ``margin`` or beyond."""
    m_u = np.asarray(passes.margins(u), dtype=np.float64)[separated]
    m_b = np.asarray(passes.margins(w_base), dtype=np.float64)[separated]
    t = max(float(np.max((margin - m_b) / m_u)), 0.0)
    return w_base + t * u


@dataclass
class _BallSolution:
    w: np.ndarray
    lam: float
    nit: int
    npass: int
    converged: bool
    active: bool


def ball_minimum(passes, d, R, tol, eps, max_iter) -> _BallSolution:
    """``min F_lin`` over ``||w|| <= R`` by the multiplier: ``||w(lam)|| = R``."""
    F0 = passes.value(np.zeros(d))
    solves: dict[float, NewtonResult] = {}

    def solve(lam):
        if lam not in solves:
            start = (solves[min(solves, key=lambda l0: abs(l0 - lam))].w if solves
                     else np.zeros(d))
            pen = passes.penalised(lam)
            solves[lam] = trust_region_newton(pen.full, pen.value, start, tol=tol,
                                              max_iter=max_iter, F_floor=eps * abs(F0),
                                              trial_full=getattr(pen, "gram_steps", False))
        return solves[lam]

    def phi(log_lam):
        return 1.0 / max(np.linalg.norm(solve(np.exp(log_lam)).w), 1e-300) - 1.0 / R

    # ||w(lam)|| = ||grad F_lin(w)|| / lam: start at the gradient at 0 and bracket the root
    # in log(lam) (lam spans many decades between a radius of 1e-6 and one near ||w*||).
    hi = np.log(max(np.linalg.norm(passes.grad(np.zeros(d))[1]) / R, 1e-300))
    while phi(hi) < 0:
        hi += np.log(4.0)
    lo = hi - np.log(4.0)
    while phi(lo) > 0 and lo >= hi - 200.0:
        lo -= np.log(4.0)
    active = phi(lo) < 0  # else even e^-200 of the start leaves w(lam) inside: inactive
    log_lam = brentq(phi, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=200) if active else lo
    res = solve(float(np.exp(log_lam)))
    w = res.w
    if active:  # the solution lies on the sphere; put it there, never an ulp outside
        w = inside_ball(w * (R / np.linalg.norm(w)), R)
    return _BallSolution(
        w=w, lam=float(np.exp(log_lam)) if active else 0.0,
        nit=sum(r.nit for r in solves.values()), npass=sum(r.npass for r in solves.values()),
        converged=all(r.converged for r in solves.values()), active=active)


def _ball_model_step(m, w, R):
    """The minimiser ``v`` of the Newton model at ``w`` over ``||v|| <= R``, its multiplier
    and the predicted decrease ``-(g^T p + 1/2 p^T H p)`` of ``p = v - w``."""
    b = m.g - m.Q @ (m.ev * (m.Q.T @ w))
    v, lam = ball_step(Model(m.F, b, m.ev, m.Q, m.null, m.eps), R)
    p = v - w
    if lam > 0 and np.all(m.ev + lam > 0):
        # The same step from the KKT residual g + lam w, which is small near the solution,
        # instead of b = g - H w, whose rounding (eps ||H w||) would limit p to about
        # eps ||H w|| / lam: (H + lam I) v = -b is (H + lam I) p = -(g + lam w).
        p = -(m.Q @ ((m.Q.T @ (m.g + lam * w)) / (m.ev + lam)))
        v = inside_ball(w + p, R)
    return v, lam, -float(m.g @ p + 0.5 * m.quad(p))


def ball_newton(passes, d, R, tol, eps, max_iter, start=None) -> _BallSolution:
    """``min F_lin`` over ``||w|| <= R`` by projected (proximal) Newton: at ``w`` (in the
    ball) the Newton model ``g^T p + 1/2 p^T H p`` is minimised over the ball exactly, which
    in ``v = w + p`` is ``min (g - H w)^T v + 1/2 v^T H v`` over ``||v|| <= R``: the secular
    equation of :func:`ball_step` on the model's eigendecomposition.  The step ``p = v - w``
    is damped by backtracking (Armijo, ``F(w + t p) <= F - t pred / 4``; the ball is convex,
    so every ``w + t p`` stays in it).  For a convex ``F`` this converges from any start,
    quadratically near a minimiser where ``H`` is positive definite on the sphere's tangent
    space (proximal Newton; Lee, Sun and Saunders, 2014).  It stops when the predicted
    decrease ``pred`` is at most ``tol |F|`` (or at the rounding level ``16 eps |F|``), after
    at most three more full steps while the step ``||p||`` keeps falling (as the
    unconstrained polish: ``pred`` is quadratic in ``p`` and lost in rounding first; these
    take ``w`` and the KKT residual from ``sqrt(eps)`` to ``eps``); ``lam`` is
    the multiplier of the model at the final point (KKT: ``g + lam w ~ 0``).  One Gram pass
    per accepted step, instead of a penalised problem solved to full precision per trial
    multiplier (:func:`ball_minimum`)."""
    lam = 0.0

    def full(w):
        # The model enters as H + lam I: with a multiplier well above the rounding of a
        # Gram matrix, its eigenvalues below that rounding do not matter (the step's
        # relative error is about rounding / lam; the line search absorbs it, and the fixed
        # point ``g + lam w = 0`` does not depend on H).  A quarter of the last multiplier.
        if getattr(passes, "shift_aware", False):
            return passes.full(w, least_shift=lam / 4)
        return passes.full(w)

    w = np.zeros(d) if start is None else inside_ball(np.asarray(start, dtype=float), R)
    m = full(w)
    npass, converged, it = 1, False, 0
    F_floor = eps * abs(m.F)
    v, lam, pred = _ball_model_step(m, w, R)
    for it in range(max_iter):
        scale = max(abs(m.F), F_floor)
        if pred <= tol * scale or pred <= 16 * m.eps * scale:
            converged = True
            break
        t = 1.0
        while True:
            w_new = inside_ball(w + t * (v - w), R)
            m_new = full(w_new)
            npass += 1
            if np.isfinite(m_new.F) and m_new.F <= m.F - 0.25 * t * pred:
                break
            t *= 0.25
            if t * pred <= 16 * m.eps * scale:  # no decrease an evaluation can confirm
                return _BallSolution(w, lam, it, npass, pred <= np.sqrt(m.eps) * scale,
                                     lam > 0)
        w, m = w_new, m_new
        v, lam, pred = _ball_model_step(m, w, R)
    for _ in range(3 if converged else 0):  # the polish
        w_new = inside_ball(v, R)
        m_new = full(w_new)
        npass += 1
        step = _ball_model_step(m_new, w_new, R)
        size, size_new = np.linalg.norm(v - w), np.linalg.norm(step[0] - w_new)
        if not (m_new.F <= m.F + 16 * m.eps * max(abs(m.F), 1e-300) and size_new < size):
            break
        fell = size_new <= size / 16
        w, m, (v, lam, pred) = w_new, m_new, step
        if not fell:
            break
    return _BallSolution(w, lam, it, npass, converged, lam > 0)


def with_radius(passes, free, size, radius, tol, eps, max_iter, result, newton_ball=False,
                start=None):
    """``min F_lin`` over the ball of ``radius`` from the unconstrained answer ``free``
    (``result`` builds the answer from the variables of ``passes``); ``newton_ball``: by
    :func:`ball_newton` from ``start`` (``free``'s point in the variables of ``passes``)
    brought into the ball, else by the multiplier (:func:`ball_minimum`)."""
    if free.attained and np.linalg.norm(free.w) <= radius:
        free.radius = radius
        free.message = "minimum inside the ball (constraint inactive): " + free.message
        return free
    if newton_ball:
        ball = ball_newton(passes, size, radius, tol, eps, max_iter,
                           start=start if start is not None and np.all(np.isfinite(start))
                           else None)
        how = "projected Newton (the secular equation on each Newton model)"
    else:
        ball = ball_minimum(passes, size, radius, tol, eps, max_iter)
        how = "multiplier (Brent) + trust-region Newton"
    where = ("on its boundary" if ball.active else
             "inside it (constraint inactive)" if free.attained else
             # no finite free minimiser: the minimum over the ball is on the sphere, and the
             # run stopped inside where F no longer changes at its precision
             "inside it (F at its precision floor; the minimum itself is on the boundary, "
             "lower by less than that)")
    return result(passes, ball.w, infimum=passes.value(ball.w), attained=True,
                  converged=ball.converged, lam=ball.lam, radius=radius,
                  nit=ball.nit + free.nit, npass=ball.npass + free.npass,
                  separability=free.separability, direction=free.direction,
                  method=how,
                  message=f"minimum over the ball {where}" if ball.converged else
                  f"not converged: {'the projected Newton run' if newton_ball else 'a penalised solve'} "
                  f"stopped early (w {where.split(' (')[0]})")


# Data whose largest magnitude lies outside [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT] are solved
# rescaled by a power of two (Gram entries of x^2 under- or overflow from about 2^+-500).
SAFE_EXPONENT = 100


def scale_exponent(a) -> int:
    """``e`` with ``max |a| 2^e`` in [1/2, 1) when ``max |a|`` lies outside
    [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT] and ``a`` is an in-memory array (not a memmap:
    rescaling copies), else 0."""
    if not isinstance(a, np.ndarray) or isinstance(a, np.memmap) or a.size == 0:
        return 0
    top = max(float(np.max(a)), -float(np.min(a)))
    if top == 0 or 2.0 ** -SAFE_EXPONENT <= top <= 2.0 ** SAFE_EXPONENT:
        return 0
    return -int(np.frexp(top)[1])


def scaled_radius(radius, e, f):
    """The radius for the data ``X 2^e``, ``y 2^f`` (``||u|| = 2^(f-e) ||w||``)."""
    if radius is None:
        return None
    r = float(np.ldexp(radius, f - e))
    if not 0 < r < np.inf:
        raise ValueError(
            f"radius = {radius:g} is {'below' if r == 0 else 'above'} what float64 can "
            f"represent on X * 2^{e}" + (f", y * 2^{f}" if f else "") + " (the scale at which "
            "the data are solved): rescale X and the radius together")
    return r


def _fits(v: float, e: int) -> bool:
    """Whether ``v 2^e`` is a normal float64 (or 0 when ``v`` is)."""
    with np.errstate(over="ignore", under="ignore"):
        r = np.ldexp(v, e)
    return bool(r == 0 if v == 0 else np.isfinite(r) and abs(r) >= np.finfo(np.float64).tiny)


def scaled_back(res, e, f, radius):
    """The answer for ``X``, ``y`` from ``res``, the answer for ``X 2^e``, ``y 2^f`` (exact
    powers of two): ``w = u 2^(e-f)``, ``F = F' 2^-2f`` (also ``fun_error``, the infimum and
    the decrement), ``grad = g' 2^-(e+f)``, ``lam = lam' 2^-2e``; the direction is unchanged.
    A ``w`` that over- or underflows float64 is reported (``w_fits = False``; ``w_scaled``
    and ``w_exponent`` hold it exactly) rather than returned wrong; a value that does not
    fit float64 raises a ValueError."""
    if f and not _fits(res.fun, -2 * f):
        raise ValueError(
            f"y's entries are of order 2^{-f}: the least-squares value is of order "
            f"2^{-2 * f} times {res.fun:.3g}, outside float64's range; rescale y "
            "(e.g. y * 2**k) and the value by 2**(2k)")
    with np.errstate(over="ignore", under="ignore"):
        res.fun, res.fun_error, res.infimum, res.decrement = (
            float(np.ldexp(v, -2 * f))
            for v in (res.fun, res.fun_error, res.infimum, res.decrement))
        u = np.asarray(res.w, dtype=np.float64)
        w = np.ldexp(u, e - f)
        fits = bool(np.array_equal(np.ldexp(w, f - e), u))
        res.grad_norm = float(np.ldexp(res.grad_norm, -(e + f)))
        res.multiplier = float(np.ldexp(res.multiplier, -2 * e))
    res.w = res.x = w
    res.radius = radius
    res.w_fits, res.w_scaled, res.w_exponent = fits, u, e - f
    res.message += (f"\nscale: solved on X * 2^{e}" + (f", y * 2^{f}" if f else "")
                    + " (exact), w = w_scaled * 2^w_exponent")
    if not fits:
        res.message += (
            f"\nw: does not fit in float64 (|w| of order 2^{e - f} times "
            f"{np.max(np.abs(u), initial=0.0):.3g}): w holds its float64 rounding (inf or "
            "lost digits); the exact predictor is w_scaled * 2**w_exponent (w_fits = False); "
            "fun and infimum are exact")
    return res
