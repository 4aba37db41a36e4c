"""Pieces shared by the best linear predictor for one output (:mod:`resnet_core.linear`) and
for ``c`` outputs (:mod:`resnet_core.linear_vector`): the result type, the declared *passes*
interface (:class:`Passes`, :class:`MarginPasses`), the Newton model from a Gram matrix
(:func:`gram_model`), the unconstrained minimum by trust-region Newton, the separable ->
quasi-separable -> undecided decision tree of a margin loss (:func:`margin_baseline`, one for
both), and the minimum over a ball by projected Newton (:func:`with_radius`).

Vocabulary of the passes, the same for one and ``c`` outputs:

- ``z``: the flat variables (``w`` itself, or ``Z`` with ``W = P Z`` for the cross-entropy);
- a *margin*: ``y_i x_i^T w`` per sample, or the pair margin ``(w_{y_i} - w_j)^T x_i`` per
  (sample, class) pair ``j != y_i``;
- ``lam``: the positive weights of the overlap certificate (``-s_i l'(m_i)`` per sample,
  ``s_i pi_ij`` per pair), and ``q``: the curvature weights of the Gram matrix
  ``sum q a a^T`` next to them (``s_i l''(m_i)``; ``lam`` itself for the pairs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.optimize import OptimizeResult

from ._threads import blas_single_thread
from ._trust_region import Model, ball_step, inside_ball, trust_region_newton
from .separability import CombinationSums, Separability, minimiser_certificate


# Margin past which the logistic loss is below 2.4e-16 (log1p(exp(-36))): a point on the
# separating ray with every margin there is within that of the infimum 0.
LOGISTIC_MARGIN = 36.0
# Rows per block of the streamed QR factor of the Hessian.
QR_CHUNK = 4096
EPS64 = float(np.finfo(np.float64).eps)
# A Gram model ``H`` (summed in float64) is used when its smallest eigenvalue, plus the shift
# it will be used with, is at least this many times the bound ``eps size ev_max`` of its
# rounding; otherwise the QR factor of its rows (eigenvalues to ``eps^2 ev_max``).  At the
# limit the Newton step is within ``1 / GRAM_TRUST = 1%`` of the exact one (and far closer
# at the typical rounding ``eps sqrt(n) ev_max``): an inexact Newton step, whose error the
# trust region (or the ball's line search) absorbs; the stop and the fixed point use the
# exact gradient, so the answer's precision does not depend on it.  10-class digits reach
# condition numbers near 1e10 before they separate (``size`` 585: the limit is 7.7e10).
GRAM_TRUST = 1e2
# The overlap certificate's ratio (:func:`resnet_core.separability.minimiser_certificate`)
# proves overlap below this: the argument holds with every rounding bounded against it.
CERTIFIED = 1.0
# The ``method`` notes of the decisions that need no linear program.
NEWTON_SEPARATED = " (separated by its iterates; no linear program)"
OVERLAP_CERTIFIED = " (overlap certified by its minimiser; no linear program)"


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
        exists is not decided; None also when Newton's run did not converge (``converged``
        False: no point is known to reach the infimum).
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


class Passes(Protocol):
    """What the minimisers of this module need of a problem: ``F_lin`` over the data in flat
    variables ``z`` (each evaluation a pass over the data).

    Implemented by :class:`resnet_core.linear.EnginePasses` (every loss of one output), and by
    :class:`resnet_core.linear_vector.CrossEntropyPasses` and ``LeastSquaresPasses``.  A new
    problem is one class with these members.
    """

    size: int          # number of variables
    eps: float         # the precision of F and g (the data's machine epsilon)
    convex: bool       # False: Newton's answer is a stationary point only
    gram_steps: bool   # ``full`` costs about what ``value`` does: trial points use ``full``
    quadratic: bool    # F is quadratic: a radius is one secular equation on ``full(0)``
    decides_separability: bool  # a margin loss (:class:`MarginPasses`)
    loss_name: str

    def value(self, z: np.ndarray) -> float:
        """``F_lin(z)``."""

    def grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``(F_lin(z), grad F_lin(z))``."""

    def full(self, z: np.ndarray, least_shift: float = 0.0) -> Model:
        """The Newton model at ``z``; ``least_shift``: it will be used as ``H + lam I`` with
        ``lam`` about that or more, so eigenvalues need only be resolved relative to it."""

    def coords(self, w: np.ndarray) -> np.ndarray:
        """The variables ``z`` of a returned predictor ``w``."""

    def start(self) -> np.ndarray:
        """Where the unconstrained Newton run starts (0, or a warm start: a subsample's
        minimiser at large ``n``)."""

    def result(self, z: np.ndarray, **fields) -> "LinearBaselineResult":
        """The answer at ``z``: ``fun`` evaluated accurately (with ``fun_error``), ``w`` in
        the caller's shape; ``fields`` as :class:`LinearBaselineResult`'s (``infimum`` is
        not read when ``attained``: the answer's ``fun`` is then the infimum)."""


class MarginPasses(Passes, Protocol):
    """A loss that decreases in the margins (logistic, smoothed hinge, cross-entropy): what
    :func:`margin_baseline` reads to decide separability."""

    far_margin: float      # every separated margin at least this: the loss below 2.4e-16 (0)
    attains_on_ray: bool   # the loss is 0 past ``far_margin`` (the smoothed hinge)

    def separation(self, z: np.ndarray) -> float:
        """The smallest margin at ``z`` over samples of positive weight, positive only when
        it proves every margin positive (rounding bounded).  May raise :class:`Separated`
        with a separating direction found near ``z``."""

    def ray(self, z: np.ndarray, smallest: float) -> Separability:
        """The ``"separable"`` answer from a ``z`` whose margins are all positive."""

    def certificate_sums(self, z: np.ndarray) -> CombinationSums:
        """The overlap certificate's sums at ``z``: ``lam`` and ``q`` per margin vector
        ``a`` (``y_i x_i``, or the pair vectors in ``z``'s coordinates)."""

    def linear_program(self, max_lp_entries: int) -> Separability:
        """The separability by the linear program over every sample (in memory, within
        ``max_lp_entries``), else ``"not_decided"`` with ``lp_skipped`` and ``lp_entries``."""

    def restricted(self, sep: Separability) -> "MarginPasses":
        """The problem on the samples (pairs) that ``sep.direction`` leaves on its
        hyperplane."""

    def push(self, z: np.ndarray, sep: Separability) -> np.ndarray:
        """``z + t u`` (``u``: ``sep.direction`` in ``z``'s coordinates), ``t >= 0`` the least
        that puts every margin ``sep`` separates at ``far_margin`` or beyond."""


def gram_model(F: float, g: np.ndarray, H: np.ndarray, *, live: np.ndarray | None = None,
               least_shift: float = 0.0, h_eps: float = EPS64) -> Model | None:
    """The Newton model ``(F, g, H)`` from ``eigh`` of a float64 Gram matrix ``H``, or None
    when it cannot be trusted: an eigenvalue (plus ``least_shift``) within ``GRAM_TRUST``
    times the rounding level ``null = h_eps size ev_max`` (see ``GRAM_TRUST``; ``h_eps`` is
    float32's for a Hessian summed from float32 products).  ``live``: the coordinates whose
    feature is non-zero on some sample; the others are exact null directions of ``H``,
    kept out of ``eigh`` (zero curvature, unit eigenvectors)."""
    size = g.size
    live = np.arange(size) if live is None else live
    ev_live, Q_live = np.linalg.eigh(H if live.size == size else H[np.ix_(live, live)])
    null = float(h_eps * size * np.abs(ev_live).max(initial=0.0))
    if ev_live.size and not ev_live[0] + least_shift > GRAM_TRUST * null:
        return None
    if live.size == size:
        return Model(F, g, ev_live, Q_live, null, EPS64)
    dead = np.setdiff1d(np.arange(size), live)
    ev = np.concatenate([np.zeros(dead.size), ev_live])
    Q = np.zeros((size, size))
    Q[dead, np.arange(dead.size)] = 1.0
    Q[np.ix_(live, np.arange(dead.size, size))] = Q_live
    order = np.argsort(ev, kind="stable")
    return Model(F, g, ev[order], Q[:, order], null, EPS64)


class Separated(Exception):
    """Raised by :class:`Watched` at the first point whose margins are all positive."""

    def __init__(self, z, smallest):
        super().__init__("separated")
        self.z, self.smallest = z, smallest


class Watched:
    """The passes, with every point Newton's method evaluates (trial or accepted) checked
    for complete separation: ``passes.separation(z)``, positive only when every margin of
    a sample of positive weight is, proves the data separable whatever a linear program
    would say."""

    convex = True

    def __init__(self, passes: MarginPasses):
        self.passes = passes
        self.size, self.eps, self.gram_steps = passes.size, passes.eps, passes.gram_steps
        self.calls = 0  # points evaluated (data passes of the run)

    def start(self):
        return self.passes.start()

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


def minimise(passes: Passes, tol, max_iter, loss_name):
    """Unconstrained minimum of an attained problem by trust-region Newton from 0."""
    res = trust_region_newton(passes.full, passes.value, passes.start(), tol=tol,
                              max_iter=max_iter, floor_rel=passes.eps,
                              trial_full=passes.gram_steps)
    # A user-defined loss may not be convex: then all Newton's method can promise is a
    # stationary point.
    what = ("minimum attained" if passes.convex else
            "stationary point reached (the minimum if the loss is convex)")
    msg = (f"{what}; Newton decrement at the tolerance" if res.stop == "decrement"
           else f"{what}; converged to the rounding level" if res.converged
           else f"not converged ({res.stop}) after {res.nit} Newton iterations of the "
                f"{loss_name} loss")
    return res, msg


def lines(*parts) -> str:
    """A message of one decision per line."""
    return "\n".join(part for part in parts if part)


def margin_baseline(passes: MarginPasses, *, tol: float, max_iter: int,
                    max_lp_entries: int) -> "LinearBaselineResult":
    """``inf F_lin`` of a margin loss, decided (``docs/linear_baseline.md``): trust-region
    Newton on all the data first, stopped at an iterate that separates every sample
    (``"separable"``); at its minimiser, overlap proved by the certificate
    (:func:`decide_separability`), else the linear program; a quasi-separation is the
    minimum over the rest, kept when the point on the ray reaches it on all the data."""
    watched = Watched(passes)
    try:
        res, msg = minimise(watched, tol, max_iter, passes.loss_name)
    except Separated as found:
        sep = passes.ray(found.z, found.smallest)
        return _separable(passes, sep, watched.calls, "trust-region Newton" + NEWTON_SEPARATED)
    sep, note = decide_separability(passes, res, max_lp_entries)
    if sep.status == "separable":
        return _separable(passes, sep, res.npass, "linear program (HiGHS)" + note, res.nit)
    if sep.status == "quasi_separable":
        answer = _quasi_separable(passes, sep, tol, max_iter, res)
        if answer is not None:
            return answer
        sep = Separability("not_decided", None, None, 0.0,
                           "not decided: the linear program's quasi-separation does not hold "
                           "on the data (margins at its tolerance)")
    hinge = passes.attains_on_ray
    status, converged = sep.status, res.converged
    if status == "not_decided":
        attained = True if hinge else None  # the smoothed hinge attains its infimum always
        if not hinge:  # Newton's run reached a value; whether it is attained is open
            msg = msg.replace("minimum attained", "the value Newton's run reached")
        msg = lines(f"separability: {sep.message}",
                    f"infimum: {msg}",  # says "not converged" when it is not
                    "attained: " + ("not known (Newton's run did not converge)" if not converged
                                    else "yes (the smoothed hinge attains its infimum)" if hinge
                                    else "not decided (needs the separability)"))
    else:
        attained = converged
        msg = lines(f"separability: {sep.message}", f"infimum: {msg}")
    answer = passes.result(res.w, infimum=res.F, attained=attained if converged else None,
                           converged=converged, nit=res.nit, npass=res.npass,
                           decrement=res.decrement, separability=status,
                           method="trust-region Newton" + note, message=msg)
    # The infimum claimed is F_lin at Newton's point: its accurate value (``fun``, bounded by
    # ``fun_error``), not the pass's ``res.F`` (a float32 pass's when its model stopped the run).
    answer.infimum = answer.fun
    return answer


def decide_separability(passes: MarginPasses, res, max_lp_entries: int):
    """The separability of data Newton's run did not separate, and the ``method`` note:
    overlap proved by the minimiser's weights (:func:`minimiser_certificate` below
    ``CERTIFIED``), else the linear program (in memory, within ``max_lp_entries``), else
    ``"not_decided"`` with the reason and the cost."""
    if res.converged:
        sums = passes.certificate_sums(res.w)
        with blas_single_thread():  # a d x d eigh: threads only cost (shared machines)
            ratio = minimiser_certificate(sums)
        if ratio < CERTIFIED:
            return Separability(
                "overlapping", None, None, 0.0,
                "overlapping: the minimiser's positive weights, corrected by a "
                f"{passes.size}-dimensional solve, combine the margin vectors to exactly 0 "
                f"(verified, rounding bounded; certificate ratio {ratio:.2g} < 1)",
                method="minimiser"), OVERLAP_CERTIFIED
        why = (f"the minimiser's weights do not prove overlap (certificate ratio {ratio:.3g}, "
               "needs < 1)")
    else:
        why = "Newton's run did not converge (no minimiser to certify overlap)"
    sep = passes.linear_program(max_lp_entries)
    if sep.lp_skipped:
        cost = (f"deciding takes a linear program of {sep.lp_entries} non-zeros over the "
                "data in memory")
        sep.message = (f"not decided: {why}; {cost}, above max_lp_entries = "
                       f"{max_lp_entries} (raise it to decide)"
                       if sep.lp_skipped == "too large" else
                       f"not decided: {why}; {cost} (out-of-core or distributed data)")
        return sep, f" (LP skipped: {sep.lp_skipped})"
    return sep, (" (overlap certified by a positive combination, no LP)"
                 if sep.method == "certificate" else "")


def _separable(passes: MarginPasses, sep, npass, method, nit=0):
    """The answer on the separating ray: every separated margin at ``far_margin``; ``npass``
    and ``nit``: those of the runs before (Newton's on all the data)."""
    z = passes.push(np.zeros(passes.size), sep)
    hinge = passes.attains_on_ray
    msg = lines(f"separability: separable ({sep.message})",
                "infimum: inf F_lin = 0, " + (
                    "attained (every margin past the smoothed hinge's flat part)" if hinge
                    else "not attained (F_lin -> 0 along the separating direction; w is on "
                         f"that ray, every margin >= {passes.far_margin:.4g})"))
    return passes.result(z, infimum=0.0, attained=hinge, converged=True, nit=nit,
                         npass=npass + 2, separability="separable", direction=sep.direction, method=method,
                         message=msg)


def _quasi_separable(passes: MarginPasses, sep, tol, max_iter, before):
    """The minimum over the samples (pairs) the direction leaves on its hyperplane, at a
    point pushed along it; None when that point does not reach it on all the data (margins
    at the linear program's tolerance).  ``before``: Newton's run on all the data (its
    iterations and passes count)."""
    res, msg = minimise(passes.restricted(sep), tol, max_iter, passes.loss_name)
    z = passes.push(res.w, sep)
    if not passes.value(z) <= res.F + max(64 * passes.eps * abs(res.F), 1e-15):
        return None
    hinge = passes.attains_on_ray
    msg = lines(f"separability: {sep.message}",
                f"infimum: the minimum over the other samples ({msg}), " +
                ("attained" if hinge else "not attained (w is far along the direction)"))
    return passes.result(z, infimum=res.F, attained=hinge, converged=res.converged,
                         nit=before.nit + res.nit, npass=before.npass + res.npass + 1,
                         decrement=res.decrement,
                         separability="quasi_separable", direction=sep.direction,
                         method="linear program (HiGHS) + trust-region Newton", message=msg)


@dataclass
class _BallSolution:
    w: np.ndarray
    lam: float
    nit: int
    npass: int
    converged: bool
    active: bool


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


def ball_newton(passes: Passes, R, tol, max_iter, start=None) -> _BallSolution:
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
    multiplier (Brent's method on it took minutes on separable data, issue 19)."""
    lam = 0.0

    def full(w):
        # The model enters as H + lam I: with a multiplier well above the rounding of a
        # Gram matrix, its eigenvalues below that rounding do not matter (the step's
        # relative error is about rounding / lam; the line search absorbs it, and the fixed
        # point ``g + lam w = 0`` does not depend on H).  A quarter of the last multiplier.
        return passes.full(w, least_shift=lam / 4)

    w = np.zeros(passes.size) if start is None else inside_ball(np.asarray(start, dtype=float), R)
    m = full(w)
    npass, converged, it = 1, False, 0
    F_floor = passes.eps * abs(m.F)
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


def solve(passes: Passes, *, radius: float | None, tol: float, max_iter: int,
          max_lp_entries: int) -> LinearBaselineResult:
    """The baseline of ``passes`` (one entry for one and ``c`` outputs): a margin loss by
    :func:`margin_baseline`; a quadratic one with a radius by the secular equation on its
    Hessian (one pass) when the constraint is active; otherwise trust-region Newton; then
    the ball (:func:`with_radius`)."""
    if passes.quadratic and radius is not None:
        z, lam = ball_step(passes.full(np.zeros(passes.size)), radius)
        if lam > 0:
            return passes.result(z, infimum=None, attained=True, converged=True, lam=lam,
                                 radius=radius, npass=2, method="secular equation",
                                 message="minimum over the ball on its boundary")
        # inactive: the unconstrained minimum itself (refined), not the one-step solution
    if passes.decides_separability:
        free = margin_baseline(passes, tol=tol, max_iter=max_iter,
                               max_lp_entries=max_lp_entries)
    else:
        res, msg = minimise(passes, tol, max_iter, passes.loss_name)
        free = passes.result(res.w, infimum=res.F, attained=res.converged,
                             converged=res.converged, nit=res.nit, npass=res.npass,
                             decrement=res.decrement, method="trust-region Newton",
                             message=msg)
    return free if radius is None else with_radius(passes, free, radius, tol, max_iter)


def with_radius(passes: Passes, free, radius, tol, max_iter):
    """``min F_lin`` over the ball of ``radius`` from the unconstrained answer ``free``: by
    :func:`ball_newton` from ``free``'s point brought into the ball (the separating ray's
    point for separable data)."""
    if free.attained and np.linalg.norm(free.w) <= radius:
        free.radius = radius
        free.message = "minimum inside the ball (constraint inactive): " + free.message
        return free
    start = passes.coords(free.w)
    ball = ball_newton(passes, radius, tol, max_iter,
                       start=start if np.all(np.isfinite(start)) else None)
    where = ("on its boundary" if ball.active else
             "inside it (constraint inactive)" if free.attained else
             # no finite free minimiser: the minimum over the ball is on the sphere, and the
             # run stopped inside where F no longer changes at its precision
             "inside it (F at its precision floor; the minimum itself is on the boundary, "
             "lower by less than that)")
    return passes.result(ball.w, infimum=None, attained=True, converged=ball.converged,
                         lam=ball.lam, radius=radius, nit=ball.nit + free.nit,
                         npass=ball.npass + free.npass, separability=free.separability,
                         direction=free.direction,
                         method="projected Newton (the secular equation on each Newton model)",
                         message=f"minimum over the ball {where}" if ball.converged else
                         "not converged: the projected Newton run stopped early "
                         f"(w {where.split(' (')[0]})")


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
