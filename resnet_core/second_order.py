"""Find, not only detect: a second-order method that returns certified eps-SOPSPs.

:func:`find_sopsp` minimises ``F_theta(w, V)`` with the exact partial Hessian and stops when
:func:`resnet_core.check_sopsp` certifies the point (Definition 1 of the paper:
``||grad_(w,V) F_theta|| <= eps`` and ``lambda_min >= -sqrt(mu2 eps)``).  Each ``(w, V)``
iteration is one of two steps:

- a **negative-curvature step** when ``lambda_min < -sqrt(mu2 eps)``: along the eigenvector
  of ``lambda_min``, with the sign that does not increase ``F`` to first order, the length
  ``2 |lambda_min| / mu2`` (the minimiser of the cubic bound along the line) doubled while
  ``F`` keeps falling, halved until it falls;
- otherwise a **Newton step**: the exact trust-region step (``method="newton-nc"``) or the
  exact cubic-regularised step of Nesterov and Polyak (``method="cubic"``, with the adaptive
  ``sigma`` of Cartis, Gould and Toint), accepted only when ``F`` does not increase.

Where the reduced matrix applies (one output, residual or skip head, any loss with the
statistics) both steps are solved exactly in the ``(2d + k - 1)`` coordinates of
:func:`resnet_core.reduced_hessian` and lifted back to ``(w, V)`` by the orthonormal map
``dV = w^ a^T + Q zeta g^^T``: one Gram pass per iteration, no product with the data.  The
model in ``(w, V)`` equals the model in those coordinates (the map is an isometry and the
gradient lies in its range), so the step is the exact step of the full problem.  Otherwise
(c outputs) the Newton step is a truncated conjugate-gradient (Steihaug) trust-region step
on ``hessp`` and ``lambda_min`` with its eigenvector comes from ARPACK on ``hessp``.

For an :class:`~resnet_core.Objective` the rounds alternate: ``(w, V)`` to a certified
eps-SOPSP of ``F_theta``, then L-BFGS on ``theta`` with ``(w, V)`` fixed (the features
recomputed in every pass); a round whose ``theta`` steps do not lower ``F`` by ``theta_ftol``
(relative) is undone, so the returned point is always the certified one.
docs/second_order.md states the assumptions and the iteration bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult, minimize

from ._certificate import (LambdaMin, curvature_threshold, curvature_verdict, rounding_error,
                           lanczos_extreme)
from ._threads import blas_single_thread
from ._trust_region import Model, ball_step, cubic_step, steihaug
from ._schema import POSITIVE, validated
from ._validation import check_choice
from ._reduced_spectrum import one_output_form
from .certify import check_sopsp
from .objective import FeatureObjective, Objective
from .studies import StudyMethod, register_method

__all__ = ["METHODS", "STATUS_MESSAGES", "cubic_iteration_bound", "find_sopsp",
           "pgd_until_certified"]

METHODS = ("newton-nc", "cubic")
STATUS_MESSAGES = {
    0: "certified: check_sopsp says the final point is an eps-SOPSP",
    1: "maximum number of (w, V) iterations reached before the certificate held",
    2: "stopped: no step lowers F any more (the step fell below rounding) before the "
       "certificate held",
    3: "maximum number of passes over the data reached before the certificate held",
    4: "stopped: the certificate is inconclusive here (lambda_min within its error of the "
       "threshold)",
}
# A step is accepted when F does not increase and the actual decrease is at least this
# fraction of the model's (Nocedal and Wright's eta_1; Cartis, Gould and Toint use the same).
_ACCEPT = 0.1
# Ratio above which a step is "very successful": the region grows / sigma shrinks.
_VERY = 0.75
# Smallest cubic sigma of the adaptive rule (it halves on very successful steps).
_SIGMA_MIN = 1e-16
# Largest number of doublings of a negative-curvature step: 2^60 times its first length.
_MAX_DOUBLINGS = 60


# -- the model at a point ---------------------------------------------------------------------
@dataclass
class _LocalModel:
    """``F``, the gradient and the Hessian at a point, in coordinates where the Hessian is
    ``Q diag(ev) Q^T`` (reduced: ``lift`` maps them to ``(w, V)``).  ``lam`` is the partial
    Hessian's ``lambda_min`` (with the extra zeros of the reduced form), ``error`` its
    accuracy, ``vec`` its unit eigenvector in ``(w, V)``."""

    F: float
    grad: np.ndarray      # in (w, V)
    rgrad: np.ndarray     # in the model's coordinates
    ev: np.ndarray
    Q: np.ndarray
    lift: Callable[[np.ndarray], np.ndarray]
    lam: float
    error: float
    vec: np.ndarray | None

    @property
    def grad_norm(self) -> float:
        return float(np.linalg.norm(self.grad))

    def decrease(self, r: np.ndarray, sigma: float = 0.0) -> float:
        """``m(0) - m(r)`` of ``g^T r + 1/2 r^T H r + sigma/6 ||r||^3``."""
        c = self.Q.T @ r
        return -float(self.rgrad @ r + 0.5 * np.sum(self.ev * c * c)
                      + sigma / 6.0 * np.linalg.norm(r) ** 3)


def _reduced_model(fo: FeatureObjective, z) -> _LocalModel:
    """The exact model from the sufficient statistics (one Gram pass), in the coordinates
    of the reduced form (:func:`resnet_core._reduced_spectrum.one_output_form`)."""
    st = fo.stats(z)
    form = one_output_form(fo, z)
    grad = np.asarray(st.grad, dtype=np.float64)
    ev, Q = np.linalg.eigh(form.M)
    lam = min(float(ev[0]), 0.0) if form.n_zeros > 0 else float(ev[0])
    vec = form.lift(Q[:, 0]) if ev[0] < 0 else None
    return _LocalModel(float(st.F), grad, form.reduce_grad(grad), ev, Q, form.lift, lam,
                       rounding_error(form.M, fo.n_samples, fo.dtype), vec)


# -- the generic path (c outputs): Hessian-vector products ------------------------------------
class _HesspModel:
    """``F``, the gradient and ``hessp`` at a point; ``lambda_min`` and its eigenvector by
    ARPACK on ``hessp`` (fixed start).  Each product streams the data once."""

    def __init__(self, fo, z, counts):
        F, grad = fo.fun_and_grad(z)
        counts["value"] += 1
        self.F, self.grad = float(F), np.asarray(grad, dtype=np.float64)
        self._fo, self._z, self._counts = fo, z, counts
        vals, vecs, res, ok, n = lanczos_extreme(self.hessp, z.size, k=1, tol=1e-8)
        if vals.size == 0 or not ok:
            self.lam, self.error, self.vec = float("nan"), float("inf"), None
        else:
            self.lam, self.error = float(vals[0]), float(res[0])
            self.vec = vecs[:, 0] / np.linalg.norm(vecs[:, 0]) if vals[0] < 0 else None

    @property
    def grad_norm(self) -> float:
        return float(np.linalg.norm(self.grad))

    def hessp(self, p):
        self._counts["hessp"] += 1
        return np.asarray(self._fo.hessp(self._z, p.astype(self._fo.dtype)), np.float64)


# -- the exact steps on an eigendecomposition -------------------------------------------------
def _tr_step(m: _LocalModel, radius: float) -> np.ndarray:
    """Exact trust-region step (Moré and Sorensen) via :func:`_trust_region.ball_step`."""
    null = float(np.finfo(float).eps * m.ev.size * np.abs(m.ev).max(initial=0.0))
    return ball_step(Model(m.F, m.rgrad, m.ev, m.Q, null, float(np.finfo(float).eps)),
                     radius)[0]


# -- one run over (w, V) ------------------------------------------------------------------------
class _Run:
    """The ``(w, V)`` loop on one partial objective ``fo`` (see the module notes)."""

    def __init__(self, fo, method, eps, curvature, counts, history, max_passes, t0,
                 radius, sigma, max_cg, adaptive=True):
        self.fo, self.method, self.eps, self.counts = fo, method, eps, counts
        self.threshold = curvature["threshold"]
        self.mu2 = curvature.get("mu2")
        self.history, self.max_passes, self.t0 = history, max_passes, t0
        self.reduced = fo.n_outputs == 1
        self.radius, self.sigma, self.max_cg = radius, sigma, max_cg
        self.adaptive = adaptive

    def model(self, z):
        if self.reduced:
            self.counts["statistics"] += 1
            return _reduced_model(self.fo, z)
        return _HesspModel(self.fo, z, self.counts)

    def value(self, z) -> float:
        self.counts["value"] += 1
        return float(self.fo.fun(z))

    def record(self, m, step, length):
        self.history.append({"F": m.F, "grad_norm": m.grad_norm, "lambda_min": m.lam,
                             "step": step, "step_norm": length,
                             "time": time.perf_counter() - self.t0})

    def passes(self) -> int:
        return sum(self.counts.values())

    # the two kinds of step; each returns (new z, its F, step norm) or None (no decrease)
    def negative_curvature(self, z, m):
        v = m.vec.astype(np.float64)
        slope = float(m.grad @ v)
        alpha = (2.0 * abs(m.lam) / self.mu2 if self.mu2 else
                 (self.radius if self.method == "newton-nc" else 2.0 * abs(m.lam) / self.sigma))
        signs = (-1.0,) if slope > 0 else (1.0,) if slope < 0 else (1.0, -1.0)
        best = None
        for s in signs:
            F = self.value(z + s * alpha * v)
            if best is None or F < best[1]:
                best = (s, F)
        s, F = best
        if F < m.F:  # expand while F keeps falling
            for _ in range(_MAX_DOUBLINGS):
                F2 = self.value(z + s * 2 * alpha * v)
                if not F2 < F:
                    break
                alpha, F = 2 * alpha, F2
        else:  # backtrack until it falls
            for _ in range(_MAX_DOUBLINGS):
                alpha /= 2
                F = self.value(z + s * alpha * v)
                if F < m.F:
                    break
            else:
                return None
        if self.method == "newton-nc":
            self.radius = max(self.radius, alpha)
        elif alpha > 0 and self.adaptive:
            self.sigma = max(min(self.sigma, 2.0 * abs(m.lam) / alpha), _SIGMA_MIN)
        return z + s * alpha * v, F, alpha

    def newton(self, z, m):
        """One trust-region or cubic step: tried, shrunk until accepted (never raises F)."""
        fp_floor = 4 * np.finfo(self.fo.dtype).eps * max(abs(m.F), np.finfo(float).tiny)
        scale = 1.0 + float(np.linalg.norm(z))
        while True:
            if self.reduced:
                if self.method == "cubic":
                    r = cubic_step(m.ev, m.Q, m.rgrad, self.sigma)
                    pred = m.decrease(r, self.sigma)
                else:
                    r = _tr_step(m, self.radius)
                    pred = m.decrease(r)
                p = m.lift(r)
            else:
                p, pred = steihaug(m.grad, m.hessp, self.radius, self.max_cg)
            length = float(np.linalg.norm(p))
            if length <= 1e-15 * scale or pred <= 0:
                return None
            trial = z + p
            F = self.value(trial)
            rho = (m.F - F) / pred
            ok = F <= m.F and (rho >= _ACCEPT or pred <= fp_floor)
            if self.method == "cubic" and self.reduced:
                if rho < _ACCEPT:
                    self.sigma *= 2
                elif rho >= _VERY and self.adaptive:
                    self.sigma = max(self.sigma / 2, _SIGMA_MIN)
            else:
                if rho < 0.25:
                    self.radius = 0.25 * length
                elif rho > _VERY and length >= 0.99 * self.radius:
                    self.radius = 2 * self.radius
            if ok:
                return trial, F, length
            if self.passes() >= self.max_passes:
                return None

    def run(self, z, max_iter, first=None):
        """Iterate to a certificate or a budget: ``(z, model, status)``; ``first`` is the
        model at ``z`` when the caller has it."""
        fo = self.fo
        for it in range(max_iter + 1):
            m = first if it == 0 and first is not None else self.model(z)
            lam = LambdaMin(m.lam, m.error, "structured" if self.reduced else "lanczos",
                            bool(np.isfinite(m.lam)))
            # a step decision, not a verdict: below the target threshold means a
            # negative-curvature step even when mu2 is a sampled (lower) estimate
            curvature_ok = curvature_verdict(lam, self.threshold, self.threshold)
            negative = curvature_ok is False
            stop = (0 if m.grad_norm <= self.eps and curvature_ok else
                    4 if m.grad_norm <= self.eps and curvature_ok is None else
                    1 if it == max_iter else 3 if self.passes() >= self.max_passes else None)
            if stop is not None:
                self.record(m, "end", 0.0)
                return z, m, stop
            out = None
            if negative and m.vec is not None:
                out = self.negative_curvature(z, m)
                kind = "negative-curvature"
            if out is None:
                out = self.newton(z, m)
                kind = "trust-region" if self.method == "newton-nc" or not self.reduced \
                    else "cubic"
            if out is None:
                self.record(m, "end", 0.0)
                return z, m, 3 if self.passes() >= self.max_passes else 2
            self.record(m, kind, out[2])
            z = fo.validate_point(out[0])
        raise AssertionError("unreachable")  # pragma: no cover


# -- theta steps (an Objective) ----------------------------------------------------------------
def _theta_steps(objective: Objective, x, max_iter: int, counts):
    """L-BFGS on ``theta`` with ``(w, V)`` fixed: ``(x, F)`` after at most ``max_iter``
    iterations (each evaluation one pass over the data, the features recomputed)."""
    h = objective.n_head_params
    head = x[:h].copy()

    def fg(theta):
        counts["theta"] += 1
        F, g = objective.fun_and_grad(np.concatenate([head, theta]).astype(objective.dtype))
        return float(F), np.asarray(g[h:], dtype=np.float64)

    res = minimize(fg, np.asarray(x[h:], np.float64), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})
    return np.concatenate([head, res.x]).astype(objective.dtype), float(res.fun)


def _partial(objective, x):
    if isinstance(objective, FeatureObjective):
        return objective, x
    part = objective.partial(x, materialize=not objective.engine.stateless)
    return part, x[:part.n_params]


# -- the public function -----------------------------------------------------------------------
@validated(theta_ftol=POSITIVE, trust_radius=POSITIVE, renamed={"baseline_radius": "radius"})
def find_sopsp(objective, x0: ArrayLike, eps: float, *, method: str = "newton-nc",
               mu2: float | None = None, curvature_tol: float | None = None,
               mu2_region=None, max_iter: int = 1000, max_passes: int = 100_000,
               theta_iter: int = 0, max_rounds: int = 10, theta_ftol: float = 1e-6,
               trust_radius: float = 1.0, sigma: float | None = None, adaptive: bool = True,
               max_cg: int = 200, w_star=None, radius: float | None = None) -> OptimizeResult:
    """Minimise ``F_theta(w, V)`` by a second-order method until :func:`check_sopsp`
    certifies an eps-SOPSP.

    Parameters
    ----------
    objective : FeatureObjective or Objective
        For an :class:`Objective` the certificate is over ``(w, V)`` at the final ``theta``.
    x0 : array
        The start: ``[w, vec(V)]`` (FeatureObjective) or all parameters (Objective).
    eps : float
        Definition 1's gradient tolerance.
    method : {"newton-nc", "cubic"}
        The Newton step: exact trust region, or exact cubic regularisation (adaptive
        ``sigma``); both take a negative-curvature step when ``lambda_min`` is below the
        threshold.  With c outputs both use the truncated-CG trust-region step on
        ``hessp``.
    mu2, curvature_tol, mu2_region
        The curvature threshold, exactly one: ``-sqrt(mu2 eps)``, ``-curvature_tol``, or
        ``mu2`` estimated on a ``resnet_core.lipschitz.Ball`` / ``Box`` (as in
        :func:`check_sopsp`, which certifies the result with the same argument).
    max_iter : int
        Most ``(w, V)`` iterations in all (one Gram pass each, plus the value passes of
        the step's tries).
    max_passes : int
        Most passes over the data in all (statistics, values, products, theta).
    theta_iter : int
        L-BFGS iterations on ``theta`` per round (Objective only; 0: ``theta`` stays).
    max_rounds : int
        Most ``(w, V)`` / ``theta`` rounds.
    theta_ftol : float
        A round of ``theta`` steps that lowers ``F`` by less than ``theta_ftol
        max(1, |F|)`` is undone and the run ends (at the certified point).
    trust_radius, sigma : float, optional
        First trust radius; first cubic ``sigma`` (default ``mu2`` when given, else the
        largest ``|eigenvalue|`` of the first model).
    adaptive : bool
        ``method="cubic"``: ``sigma`` halves after a very successful step and after a
        long negative-curvature step (Cartis, Gould and Toint).  False: ``sigma`` never
        shrinks (it doubles after a rejected step), Nesterov and Polyak's method, whose
        iteration bound :func:`cubic_iteration_bound` states for ``sigma = mu2 >= L``.
    max_cg : int
        Most conjugate-gradient products per step on the ``hessp`` path.
    w_star, radius
        Passed to :func:`check_sopsp` for the final certificate's baseline: ``radius``
        bounds ``||w||`` as everywhere in the API (docs/api.md; formerly
        ``baseline_radius``, still accepted for one release).  The first trust radius is
        ``trust_radius`` (called ``radius`` before this release: an old call passing
        ``radius`` now bounds the baseline instead, silently).

    Returns
    -------
    OptimizeResult
        ``x`` (the final point, all parameters), ``fun``, ``jac`` (over ``(w, V)``),
        ``nit`` (``(w, V)`` iterations), ``status``, ``success`` (certified), ``message``
        (``STATUS_MESSAGES``), ``certificate`` (the :class:`SOPSPReport` of
        :func:`check_sopsp` at ``x``, computed whatever the status), ``history`` (a dict of
        per-iteration lists: ``F``, ``grad_norm``, ``lambda_min``, ``step`` in
        {"negative-curvature", "trust-region", "cubic", "theta", "end"}: the step taken
        from that row's point, "end" for the last point of a round, ``step_norm``,
        ``time``), ``passes`` (dict: ``statistics`` Gram passes, ``value`` passes,
        ``hessp`` streamed products, ``theta`` passes, and ``total``; the certificate's
        own passes and the cached linear baseline are not counted), ``n_rounds``,
        ``method``, ``threshold``.
    """
    check_choice("method", method, METHODS)
    if not isinstance(objective, (FeatureObjective, Objective)):
        raise TypeError("objective must be a FeatureObjective or an Objective; got "
                        f"{type(objective).__name__}")
    if sum(a is not None for a in (mu2, curvature_tol, mu2_region)) != 1:
        raise ValueError("find_sopsp needs the curvature threshold of its certificate: give "
                         "exactly one of mu2, curvature_tol and mu2_region")
    if theta_iter and not isinstance(objective, Objective):
        raise ValueError("theta_iter > 0 needs an Objective (a FeatureObjective has no theta)")
    x = objective.validate_point(x0, "x0").copy()

    with blas_single_thread():
        return _find(objective, x, float(eps), method, dict(mu2=mu2, curvature_tol=curvature_tol,
                     mu2_region=mu2_region), max_iter, max_passes, theta_iter, max_rounds,
                     theta_ftol, trust_radius, sigma, bool(adaptive), max_cg,
                     dict(w_star=w_star, radius=radius))


def _find(objective, x, eps, method, curv_args, max_iter, max_passes, theta_iter, max_rounds,
          theta_ftol, radius, sigma, adaptive, max_cg, baseline):
    t0 = time.perf_counter()
    counts = {"statistics": 0, "value": 0, "hessp": 0, "theta": 0}
    history: list[dict] = []
    nit, status, rounds, run = 0, 1, 0, None
    while True:
        rounds += 1
        fo, z = _partial(objective, x)
        curvature = curvature_threshold(fo, eps, **curv_args)
        s0 = sigma if sigma is not None else curvature.get("mu2") or None
        run = _Run(fo, method, eps, curvature, counts, history, max_passes, t0,
                   radius if run is None else run.radius,
                   s0 if run is None else run.sigma, max_cg, adaptive)
        first = None
        if run.sigma is None:  # the first model chooses sigma, then is the loop's first
            first = run.model(z)
            run.sigma = max(float(np.abs(getattr(first, "ev", [1.0])).max()), 1e-12)
        n_before = len(history)
        z, m, status = run.run(z, max_iter - nit, first)
        nit += sum(1 for h in history[n_before:] if h["step"] != "end")
        x = np.concatenate([z, x[z.size:]]).astype(x.dtype) if z.size < x.size else z
        if status != 0 or not theta_iter or rounds >= max_rounds:
            break
        x_new, F_new = _theta_steps(objective, x, theta_iter, counts)
        if not F_new < m.F - theta_ftol * max(1.0, abs(m.F)):
            break  # theta stays: x is the certified point
        history.append({"F": F_new, "grad_norm": float("nan"), "lambda_min": float("nan"),
                        "step": "theta", "step_norm": float(np.linalg.norm(x_new - x)),
                        "time": time.perf_counter() - t0})
        x = x_new
    report = check_sopsp(fo, z, eps=eps, **curv_args, **baseline)
    if status == 0 and not report.is_sopsp:  # the loop's test and the certificate disagree
        status = 4
    hist = {key: [h[key] for h in history] for key in
            ("F", "grad_norm", "lambda_min", "step", "step_norm", "time")}
    passes = dict(counts, total=sum(counts.values()))
    return OptimizeResult(
        x=x, fun=report.F, jac=m.grad, nit=nit, status=status, success=status == 0,
        message=STATUS_MESSAGES[status], certificate=report, history=hist, passes=passes,
        n_rounds=rounds, method=method, threshold=report.threshold,
        time=time.perf_counter() - t0)


def cubic_iteration_bound(mu2: float, eps: float, delta_f: float) -> int:
    """Nesterov and Polyak's bound on the ``(w, V)`` iterations of ``method="cubic"`` with
    ``sigma = mu2`` fixed (``adaptive=False``), where ``mu2 >= L``, the Lipschitz constant
    of the partial Hessian on the sublevel set of the start, and ``delta_f >= F(start) -
    inf F``: ``ceil(81/2 sqrt(mu2) delta_f eps^(-3/2))`` (docs/second_order.md derives it
    from their Lemmas 4 and 5).  Each step that does not end at an eps-SOPSP has
    ``||r|| > (2/3) sqrt(eps / mu2)`` and lowers ``F`` by at least ``mu2 ||r||^3 / 12``."""
    for name, value in (("mu2", mu2), ("eps", eps), ("delta_f", delta_f)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return int(math.ceil(40.5 * math.sqrt(mu2) * delta_f * eps ** -1.5))


def pgd_until_certified(fo: FeatureObjective, z0: ArrayLike, eps: float, *, mu2: float,
                        ell: float, check_every: int = 100, max_iter: int = 2_000_000,
                        seed: int = 0):
    """PGD (:func:`resnet_core.perturbed_gd`, target ``eps``, ``rho = mu2``) stopped at the
    first checked iterate that passes the eps-SOPSP test (every ``check_every`` iterations,
    by a callback: ``||grad|| <= eps`` and the exact ``lambda_min >= -sqrt(mu2 eps)``), or
    at its own stop; returns ``(result, check_sopsp report at result.x)``.  What the
    benchmark and the demo compare :func:`find_sopsp` with."""
    from .certify import lambda_min_structured
    from .optim import perturbed_gd

    threshold = -math.sqrt(mu2 * eps)

    def passes(info):
        return (info.grad_norm <= eps and
                lambda_min_structured(fo, info.x).value >= threshold)

    res = perturbed_gd(fo, z0, eps=eps, ell=ell, rho=mu2, max_iter=max_iter, seed=seed,
                       record_every=check_every, callback=passes)
    return res, check_sopsp(fo, res.x, eps=eps, mu2=mu2)


# -- escape studies (the loop behind studies.escape(method="newton-nc" | "cubic")) ------------
def _study_run(method: str):
    """The run of :func:`resnet_core.studies.escape` for ``method``: :func:`find_sopsp` from
    the run's start to a certified eps-SOPSP with ``mu2 = rho`` (the curvature PGD
    targets).  ``escape_iter`` is the first ``(w, V)`` iteration with
    ``F <= F(start) - f_escape``; every run goes on to its certificate (or ``max_iter``), so
    ``stop_at_escape`` does not apply; ``status`` is 0 when certified, 1 otherwise.  The
    method draws no random numbers: the seeds only label the runs."""

    def run(problem, seed, consts, *, max_iter, stop_at_escape, record_every):
        if not isinstance(problem.target, FeatureObjective):
            raise ValueError(f"method={method!r} steps (w, V) with theta fixed: pass "
                             "wrt='wV' for an Objective")
        res = find_sopsp(problem.target, problem.u0, consts["eps"], mu2=consts["rho"],
                         method=method, max_iter=max_iter)
        F = np.asarray(res.history["F"], dtype=np.float64)
        hit = np.flatnonzero(F <= F[0] - consts["f_escape"])
        every = max(int(record_every), 1)
        return OptimizeResult(
            x=problem.to_x(res.x), fun=res.fun, jac=res.jac, nit=res.nit,
            status=0 if res.success else 1, n_perturbations=0,
            escape_iter=int(hit[0]) if hit.size else -1, time=res.time,
            passes=res.passes["total"],
            history={"iter": np.arange(F.size)[::every], "fun": F[::every],
                     "grad_norm": np.asarray(res.history["grad_norm"])[::every]})

    return run


for _name in METHODS:
    register_method(StudyMethod(_name, perturb=False, run=_study_run(_name)))
