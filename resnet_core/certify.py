"""Certificates: is a point an eps-second-order partial stationary point (eps-SOPSP), how far
is it from the best linear predictor, and do the paper's bounds hold there?

Definition 1 (Shamir 2018): ``(w, V)`` is an eps-SOPSP of ``F_theta`` when
``||grad F_theta(w, V)|| <= eps`` and ``lambda_min(hess F_theta(w, V)) >= -sqrt(mu2 eps)``,
derivatives over ``(w, V)`` only.

The smallest eigenvalue of the ``(d + d k)``-dimensional partial Hessian comes three ways:

- ``"structured"``: from the sufficient statistics ``A, B, C, g`` (one pass over the data).
  The quadratic form depends on ``dV`` only through ``dV^T w`` and ``dV g``; in orthonormal
  coordinates ``dV = w^ z^T + Q zeta g^T / ||g|| + (rest)`` the Hessian is

      M = [[A,   ||w|| B + w^ g^T,  ||g|| Q],
           [.,   ||w||^2 C,         0      ],
           [.,   0,                 0      ]]       (size 2d + k - 1)

  plus ``dk - d - k + 1`` zero eigenvalues (``w^ = w / ||w||``, ``Q`` an orthonormal basis
  of the complement of ``w``).  At ``w = 0`` the form is ``[[A, ||g|| I], [||g|| I, 0]]``
  plus ``d (k - 1)`` zeros.  Exact, and the eigenproblem never touches the data.
- ``"dense"``: ``numpy.linalg.eigvalsh`` of the dense Hessian (small problems).
- ``"lanczos"``: ARPACK ``eigsh(which="SA")`` on ``hessp`` with a fixed start vector; the
  residual ``||H v - lambda v||`` is reported, and a solve that does not converge makes the
  certificate inconclusive, never a number that looks certain.
"""

from __future__ import annotations

import functools
import time

import numpy as np
from numpy.typing import ArrayLike

from ._certificate import (BaselineWarning, LambdaMin, SOPSPReport, baseline, curvature_threshold,
                           curvature_verdict, decide, feature_objective, lambda_min_dense,
                           lambda_min_lanczos, lanczos_extreme, rounding_error,
                           smallest_eigenvalue)
from ._threads import blas_single_thread
from . import lipschitz, theory
from ._lipschitz_bounds import bounds_from_sums, bounds_pass
from ._schema import NON_NEGATIVE, validated
from . import certify_vector
from ._reduced_spectrum import one_output_form, residual_form
from .certify_vector import VectorPart
from .objective import FeatureObjective, Objective

__all__ = ["BaselineWarning", "LambdaMin", "SOPSPReport", "check_sopsp", "lambda_min_dense",
           "lambda_min_lanczos", "lambda_min_structured", "lanczos_extreme", "reduced_hessian"]

METHODS = ("auto", "structured", "dense", "lanczos")


def reduced_hessian(w, A, B, C, g):
    """The matrix ``M`` whose spectrum, with ``n_zeros`` extra zeros, is the spectrum of the
    residual-head partial Hessian (see the module notes).  Returns ``(M, n_zeros)``."""
    form = residual_form(w, A, B, C, g)
    return form.M, form.n_zeros


def lambda_min_structured(fo: FeatureObjective, z) -> LambdaMin:
    """Exact ``lambda_min`` of the partial Hessian from the sufficient statistics (with c
    outputs: :func:`resnet_core.certify_vector.lambda_min_structured`)."""
    if fo.vector:
        return certify_vector.lambda_min_structured(fo, z)
    form = one_output_form(fo, z)
    ev = smallest_eigenvalue(form.M)
    value = min(ev, 0.0) if form.n_zeros > 0 else ev
    return LambdaMin(value, rounding_error(form.M, fo.n_samples, fo.dtype), "structured")


LAMBDA_MIN = {"structured": lambda_min_structured, "dense": lambda_min_dense,
              "lanczos": lambda_min_lanczos}


def _linear_sample_losses(fo: FeatureObjective, w_star: np.ndarray, chunk: int = 16384):
    """``(i0, i1, l(w*^T x_i; y_i))`` block by block: ``X w*`` in the data's dtype, the loss
    in float64 on blocks of ``chunk`` samples (no copy of ``X``)."""
    X, y = fo.X, fo.y
    w = w_star.astype(fo.dtype)
    for i0 in range(0, fo.n_samples, chunk):
        i1 = min(i0 + chunk, fo.n_samples)
        yield i0, i1, fo.loss.derivatives(X[i0:i1] @ w, y[i0:i1])[0]


def _sample_statistics(fo: FeatureObjective, z, F: float, w_star: np.ndarray, extra=None):
    """``F_lin(w*)``, the standard error of ``F`` and that of ``F - F_lin(w*)`` (two streamed
    passes over ``X``; on out-of-core and distributed data, two passes of partial sums over
    row blocks, the second recomputing the per-sample losses), and the per-block results of
    ``extra(block)``, which rides on the first of those passes (None on in-memory data: no
    pass to save there)."""
    eng = fo.engine
    if eng.stateless:
        w = w_star.astype(fo.dtype)
        first = eng.map_rows(functools.partial(_block_linear_value_and, w, extra))
        F_lin = sum(p[0] for p in first)
        state = fo.at(z)
        parts = eng.map_rows(functools.partial(_block_errors, w, F, F - F_lin),
                             point=state.head_point)
        return (F_lin, float(np.sqrt(sum(p[0] for p in parts))),
                float(np.sqrt(sum(p[1] for p in parts))),
                None if extra is None else [p[1] for p in first])
    l = fo.at(z).sample_losses  # filled by the statistics pass
    s = fo.sample_weight
    F_lin = sum(float(np.dot(s[i0:i1], l_lin)) for i0, i1, l_lin in
                _linear_sample_losses(fo, w_star))
    gap = F - F_lin
    se_F, se_gap = 0.0, 0.0
    for i0, i1, l_lin in _linear_sample_losses(fo, w_star):
        si, li = np.asarray(s[i0:i1], np.float64), np.asarray(l[i0:i1], np.float64)
        se_F += float(np.sum((si * (li - F)) ** 2))
        se_gap += float(np.sum((si * (li - l_lin - gap)) ** 2))
    return F_lin, float(np.sqrt(se_F)), float(np.sqrt(se_gap)), None


def _block_linear_losses(w, block):
    return block.engine.loss.derivatives(block.X @ w, block.y)[0]


def _block_linear_value(w, block) -> float:
    """One block's part of ``F_lin(w) = sum_i s_i l(w^T x_i)``."""
    return float(np.dot(np.asarray(block.s, np.float64), _block_linear_losses(w, block)))


def _block_linear_value_and(w, extra, block):
    """``(F_lin part, extra(block))`` of one block (``extra`` may be None)."""
    return _block_linear_value(w, block), None if extra is None else extra(block)


def _block_errors(w, F, gap, block):
    """One block's parts of the squared standard errors of ``F`` and of ``F - F_lin(w)``."""
    s = np.asarray(block.s, np.float64)
    l = np.asarray(block.engine.buf.l, np.float64)
    l_lin = _block_linear_losses(w, block)
    return float(np.sum((s * (l - F)) ** 2)), float(np.sum((s * (l - l_lin - gap)) ** 2))


@validated(eps=NON_NEGATIVE, renamed={"baseline_radius": "radius"})
def check_sopsp(objective, x: ArrayLike, *, eps: float, mu2: float | None = None,
                mu2_region=None, curvature_tol: float | None = None, w_star=None,
                radius: float | None = None, method: str = "auto",
                theorem3: dict | None = None) -> SOPSPReport:
    """Certify whether ``x`` is an eps-SOPSP of ``F_theta`` and compare it with the best
    linear predictor.

    Parameters
    ----------
    objective : Objective or FeatureObjective
        For an :class:`Objective`, ``F_theta`` is its ``partial(x)``.  With
        ``n_outputs = c > 1`` the certificate is over ``(W, V)``
        (:mod:`resnet_core.certify_vector`, docs/vector_outputs_certificates.md).
    x : array
        The point: all parameters (Objective) or ``[w, vec(V)]`` (FeatureObjective;
        ``[vec(W), vec(V)]`` with c outputs).
    eps : float
        Gradient tolerance of Definition 1.
    mu2 : float, optional
        Lipschitz constant of the partial Hessian: the curvature threshold is
        ``-sqrt(mu2 eps)``.
    mu2_region : resnet_core.lipschitz.Ball or Box, optional
        Estimate ``mu2`` on this region of ``[w, vec(V)]`` instead (see
        :func:`resnet_core.lipschitz.estimate_hessian_lipschitz`; a few hundred
        Hessian-vector products).
    curvature_tol : float, optional
        Threshold ``-curvature_tol`` instead.  With none of the three, the curvature test is
        decided only when ``lambda_min >= 0`` (true for every ``mu2``); the report gives the
        smallest ``mu2`` that would make it hold.
    w_star : array of shape (d,) (or (c, d)), optional
        The linear predictor to compare with; default the best one: ``inf F_lin``.
    radius : float, optional
        Compare with ``min_{||w|| <= radius} F_lin(w)`` (Theorem 3) instead (formerly
        ``baseline_radius``, still accepted for one release).
    method : {"auto", "structured", "dense", "lanczos"}
        How ``lambda_min`` is computed; ``"auto"`` is ``"structured"`` (exact, one pass),
        with c outputs while its matrices have size at most 4000, else ``"lanczos"``.
    theorem3 : dict, optional
        Theorem 3's inputs on the region ``max(||w||, ||V||) <= b``: any of ``"b"``,
        ``"mu0"``, ``"mu1"``, ``"mu2"`` (Lipschitz constants of ``F_theta``, its gradient and
        its Hessian there).  Default ``b = max(||w||, ||V||)`` at the point and each constant
        proven from the loss's derivative bounds (squared and logistic losses,
        :func:`resnet_core.lipschitz.derivative_bounds`); ``r = ||w*||``.  Theorem 3 has
        no analogue with c outputs (it rests on Theorem 2): its inputs are then refused
        (ValueError), and the report says so in ``theorem3_note``.

    Returns
    -------
    SOPSPReport
        With the gradient norm, ``lambda_min`` and its accuracy, the verdict, ``mu2`` and
        its source, ``F``, the baseline (and whether it is attained and converged), the gap
        with standard errors, and Lemma 1 / Theorem 1 (``w != 0``) or Theorem 2 (``w = 0``)
        checked at this point against ``w*`` (residual head).  With c outputs: the
        Lemma 1 / Theorem 1 analogue when ``W`` has full row rank (else ``lemma1_note``
        says why not), and ``theorem2_note``: Theorem 2 has no known analogue.

    Warns
    -----
    BaselineWarning
        When the best linear predictor did not converge.
    """
    # Its dense work is small: one BLAS thread, so that no BLAS thread spins against the
    # kernels' OpenMP threads between passes (measured: 111 ms -> 65 ms for the Gram pass).
    with blas_single_thread():
        return _check_sopsp(objective, x, eps=eps, mu2=mu2, mu2_region=mu2_region,
                            curvature_tol=curvature_tol, w_star=w_star, radius=radius,
                            method=method, theorem3=theorem3)


class _Clock:
    """Wall-clock laps into ``timings``: ``lap(name)`` records the time since the last."""

    def __init__(self, timings: dict):
        self.timings, self.t = timings, time.perf_counter()

    def lap(self, name: str | None) -> None:
        now = time.perf_counter()
        if name is not None:
            self.timings[name] = now - self.t
        self.t = now


def _check_sopsp(objective, x, *, eps, mu2, mu2_region, curvature_tol, w_star, radius,
                 method, theorem3, part=None) -> SOPSPReport:
    """The report, one assembly for one output and for c: the parts that depend on the
    number of outputs come from :class:`_OneOutput` or
    :class:`resnet_core.certify_vector.VectorPart` (``part`` forces one: the tests run the
    c-output part on one output)."""
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    fo, z = feature_objective(objective, x)
    z = fo.validate_point(z, "x" if isinstance(objective, Objective) else "z")
    part = (part or (VectorPart if fo.vector else _OneOutput))(fo, z)
    method = part.resolve(method)
    plan = part.theorem3_plan(theorem3)  # bad or unusable inputs refused before any pass
    timings = {}
    clock = _Clock(timings)
    part.statistics(method)
    clock.lap("statistics")
    lam = part.lambda_min(method)
    clock.lap("eigen")
    curvature = curvature_threshold(fo, eps, mu2, mu2_region, curvature_tol)
    clock.lap("mu2" if mu2_region is not None else None)

    cached = w_star is None and radius in getattr(fo, "_baselines", {})
    base = baseline(fo, w_star, radius)
    clock.lap("baseline (cached)" if cached else "baseline")
    w_star = base.pop("w")
    F_lin_star = base.pop("F_lin_star")
    F_lin_w, F_se, gap_se, t3_parts = part.gap_statistics(w_star, plan)
    F_lin_star = F_lin_w if F_lin_star is None else float(F_lin_star)
    clock.lap("gap statistics")

    F = part.F
    grad_norm = float(np.linalg.norm(part.grad))
    gradient_ok = grad_norm <= eps
    verdict = decide(lam, curvature, eps, gradient_ok)
    report = SOPSPReport(
        eps=float(eps), grad_norm=grad_norm,
        lambda_min=lam.value, lambda_min_error=lam.error, lambda_min_converged=lam.converged,
        gradient_ok=gradient_ok, F=F, F_se=F_se, F_lin_star=F_lin_star,
        w_star=w_star.tolist(), gap=F - F_lin_star, gap_se=gap_se, method=lam.method,
        head=fo.head, n_samples=fo.n_samples, dim=fo.n_params, F_lin_at_w_star=F_lin_w,
        w_norm=part.w_norm, lanczos_residual=lam.residual, n_outputs=fo.n_outputs,
        **verdict, **{k: v for k, v in curvature.items() if k != "false_threshold"}, **base)
    if fo.head == "residual":
        part.inequalities(report, lam, w_star, F - F_lin_w)
    else:
        report.theorem3_note = "Theorem 3 is about the residual head"
    if plan is not None:
        clock.lap(None)
        _theorem3(report, fo, lam, plan, t3_parts)
        clock.lap("theorem3")
    timings["total"] = time.perf_counter() - t0
    report.timings = timings
    return report


class _OneOutput:
    """What the certificate computes with one output: the statistics ``A, B, C, g`` (one
    pass), ``lambda_min`` three ways, the gap's statistics (with Theorem 3's constants
    folded into their pass on streamed data), Lemma 1 and Theorems 1 to 3."""

    def __init__(self, fo: FeatureObjective, z):
        self.fo, self.z = fo, z
        parts = fo.unpack(z)
        self.w, self.M = parts["w"], parts.get("V", parts.get("v"))
        self.w_norm = float(np.linalg.norm(self.w))

    def resolve(self, method: str) -> str:
        return "structured" if method == "auto" else method

    def statistics(self, method: str) -> None:
        self.st = self.fo.stats(self.z)
        self.F = float(self.st.F)
        self.grad = np.asarray(self.st.grad, dtype=np.float64)

    def lambda_min(self, method: str) -> LambdaMin:
        return LAMBDA_MIN[method](self.fo, self.z)

    def theorem3_plan(self, given):
        if self.fo.head != "residual":
            return None
        return _theorem3_plan(self.fo, self.w, self.M, given)

    def gap_statistics(self, w_star, plan):
        """``(F_lin(w*), s.e. of F, s.e. of the gap, Theorem 3's pass parts or None)``."""
        fold = plan is not None and plan["fn"] is not None and self.fo.engine.stateless
        return _sample_statistics(self.fo, self.z, self.F, w_star, plan["fn"] if fold else None)

    def inequalities(self, report: SOPSPReport, lam, w_star, gap_w) -> None:
        """Lemma 1 and Theorem 1 or 2 (residual head)."""
        _paper_inequalities(report, self.fo, self.st, lam, self.w, self.M, w_star, gap_w,
                            self.grad)


def _paper_inequalities(report, fo, st, lam, w, M, w_star, gap_w, grad):
    """Lemma 1 and Theorem 1 (``w != 0``) or Theorem 2 (``w = 0``) at the point, against
    ``w*`` (``gap_w = F - F_lin(w*)``), with a tolerance of the rounding in ``F``."""
    V = np.asarray(M, dtype=np.float64)
    report.V_norm = float(np.linalg.norm(V, 2))
    tol = 1e-9 * (1.0 + abs(report.F) + abs(report.F_lin_at_w_star))
    if report.w_norm > 0:
        G = theory.lemma1_direction(np.asarray(w, np.float64), V, w_star)
        report.G_norm = float(np.linalg.norm(G))
        report.lemma1_inner = float(G @ grad)
        # E[l' (p - w*^T x)] = w . grad_w - E[l' x] . w*, with E[l' x] = grad_w - V g
        grad_w = grad[:fo.d]
        report.lemma1_expectation = float(
            grad_w @ np.asarray(w, np.float64) - (grad_w - V @ st.g) @ w_star)
        report.lemma1_holds = bool(report.lemma1_inner >= gap_w - tol)
        report.theorem1_bound = theory.theorem1_bound(gap_w, w, V, w_star)
        report.theorem1_holds = bool(report.grad_norm >= report.theorem1_bound - tol)
    elif lam.converged:
        report.theorem2_lhs = theory.theorem2_lhs(report.grad_norm, lam.value, st.A, V, w_star)
        report.theorem2_holds = bool(lam.value <= lam.error and report.theorem2_lhs >= gap_w - tol)


THEOREM3_KEYS = ("b", "mu0", "mu1", "mu2")


def _theorem3_plan(fo: FeatureObjective, w, V, given: dict | None) -> dict:
    """Theorem 3's given inputs (validated), ``b`` (given, else ``max(||w||, ||V||)`` here)
    and the pass that proves the missing constants on ``max(||w||, ||V||) <= b``
    (``fn``; None with ``none`` saying why when there is no proof)."""
    given = {} if given is None else given
    if not isinstance(given, dict) or set(given) - set(THEOREM3_KEYS):
        raise ValueError(f"theorem3 must be a dict with keys among {list(THEOREM3_KEYS)}; got "
                         f"{given!r:.200}")
    for key, v in given.items():
        if isinstance(v, bool) or not (np.isscalar(v) and np.isfinite(v) and v >= 0):
            raise ValueError(f"theorem3[{key!r}] must be a non-negative finite number; got "
                             f"{v!r}")
    if "b" in given:
        b, b_source = float(given["b"]), "given"
    else:
        b = max(float(np.linalg.norm(np.asarray(w, np.float64))),
                float(np.linalg.norm(np.asarray(V, np.float64), 2)))
        b_source = "max(||w||, ||V||) here"
    fn, none = None, None
    if any(m not in given for m in ("mu0", "mu1", "mu2")):
        fn, none = bounds_pass(fo, b, b)
    return {"given": given, "b": b, "b_source": b_source, "fn": fn, "none": none}


def _theorem3_inputs(fo: FeatureObjective, report, plan: dict, parts) -> dict:
    """``b, r, mu0, mu1, mu2`` and where each came from (``missing`` when some constant is
    neither given nor proven)."""
    given, b = plan["given"], plan["b"]
    out = {"r": float(np.linalg.norm(report.w_star)), "r_source": "||w*||", "b": b,
           "b_source": plan["b_source"]}
    proven = (plan["none"] if plan["fn"] is None else
              bounds_from_sums(b, b, parts) if parts is not None else
              lipschitz.derivative_bounds(fo, b, b))
    for m in ("mu0", "mu1", "mu2"):
        if m in given:
            out[m], out[m + "_source"] = float(given[m]), "given"
        else:
            out[m], out[m + "_source"] = getattr(proven, m), "proven (derivative bounds)"
    if any(out[m] is None for m in ("mu0", "mu1", "mu2")):
        missing = [m for m in ("mu0", "mu1", "mu2") if out[m] is None]
        out["missing"] = f"{', '.join(missing)} not given and not proven: {proven.reason}"
    return out


def _theorem3(report, fo: FeatureObjective, lam: LambdaMin, plan: dict, parts) -> None:
    """Theorem 3's bound at this point (docs/theorem3.md), whether its premises hold here
    (an eps-SOPSP for the theorem's ``mu2``, inside its region) and whether the bound does."""
    inp = _theorem3_inputs(fo, report, plan, parts)
    if "missing" in inp:
        report.theorem3_note = inp.pop("missing")
        report.theorem3_inputs = inp
        return
    args = [inp[k] for k in ("b", "r", "mu0", "mu1", "mu2")]
    inp["poly"] = theory.theorem3_poly(*args)
    report.theorem3_inputs = inp
    report.theorem3_bound = theory.theorem3_bound(report.eps, *args)
    b = inp["b"]
    threshold = -float(np.sqrt(inp["mu2"] * report.eps))
    curvature = curvature_verdict(lam, threshold, threshold)
    inside = report.w_norm <= b and report.V_norm <= b
    if not inside:
        report.theorem3_applies = False
        report.theorem3_note = f"the point is outside the region max(||w||, ||V||) <= {b:.4g}"
    elif not report.gradient_ok or curvature is False:
        report.theorem3_applies = False
        report.theorem3_note = ("the point is not an eps-SOPSP for the theorem's mu2 "
                                f"{inp['mu2']:.4g}")
    elif curvature is None:
        report.theorem3_note = ("whether the point is an eps-SOPSP for the theorem's mu2 "
                                f"{inp['mu2']:.4g} is not decided (lambda_min's accuracy)")
    else:
        report.theorem3_applies = True
        gap = report.F - report.F_lin_at_w_star
        tol = 1e-9 * (1.0 + abs(report.F) + abs(report.F_lin_at_w_star))
        report.theorem3_holds = bool(gap <= report.theorem3_bound + tol)
        report.theorem3_note = "an eps-SOPSP of the region for the theorem's mu2"
