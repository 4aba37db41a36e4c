"""What every eps-SOPSP certificate shares, one output or c: the report, the accuracy of a
``lambda_min``, ARPACK with a fixed start, the dense and Lanczos ``lambda_min``, the
baseline, and the curvature threshold (Definition 1: ``lambda_min >= -sqrt(mu2 eps)``).
:mod:`resnet_core.certify` assembles the report from these and from the parts that depend
on the number of outputs (its own for one, :mod:`resnet_core.certify_vector` for c).

The names here are the certificates' internal API: :mod:`resnet_core.second_order` and
:mod:`resnet_core.spectrum` use them too."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ._schema import validated
from ._validation import as_float_array
from .lipschitz import Ball, Box, estimate_hessian_lipschitz
from .objective import MAX_DENSE_HESSIAN, FeatureObjective, Objective


@dataclass
class LambdaMin:
    """The smallest eigenvalue of a Hessian and how far it can be trusted.

    ``error`` bounds ``|value - lambda_min|``: rounding for the direct methods
    (``eps_machine (dim + sqrt(n)) ||M||_F``), the Lanczos residual otherwise (some eigenvalue
    lies within it; that it is the smallest is ARPACK's claim).  ``converged`` is False for
    a Lanczos solve that stopped early.
    """

    value: float
    error: float
    method: str
    converged: bool = True
    residual: float | None = None
    n_products: int | None = None


def rounding_error(M, n_samples, dtype) -> float:
    eps = np.finfo(dtype).eps
    return float(eps * (M.shape[0] + np.sqrt(n_samples)) * np.linalg.norm(M))


def start_vector(dim: int) -> np.ndarray:
    """A fixed, generic start vector (reproducible ARPACK runs)."""
    v0 = np.random.default_rng(20180101).standard_normal(dim)
    return v0 / np.linalg.norm(v0)


def feature_objective(objective, x):
    """``(FeatureObjective, its point)``: ``objective.partial(x)`` and ``x``'s head part for
    an :class:`Objective`, the objective and ``x`` as given for a FeatureObjective."""
    if isinstance(objective, Objective):
        part = objective.partial(x)
        return part, np.asarray(x, dtype=part.dtype)[:part.n_params]
    if isinstance(objective, FeatureObjective):
        return objective, x
    raise TypeError("objective must be an Objective or a FeatureObjective; got "
                    f"{type(objective).__name__}")


def smallest_eigenvalue(M: np.ndarray) -> float:
    """The smallest eigenvalue of the symmetric ``M`` (LAPACK ``syevr`` asked for that one
    only; measured 1.4x faster than ``eigvalsh`` at size 1305)."""
    return float(scipy.linalg.eigh(M, eigvals_only=True, subset_by_index=[0, 0],
                                   check_finite=False)[0])


def dense_hessian(fo, z) -> np.ndarray:
    """The dense partial Hessian in float64: from the statistics with one output
    (``fo.hessian``), column by column from ``fo.hessp`` with c (symmetrised)."""
    z = fo.validate_point(z, "z")
    if fo.n_params > MAX_DENSE_HESSIAN:
        raise ValueError(f"a dense Hessian is for n_params <= {MAX_DENSE_HESSIAN}; this "
                         f"objective has {fo.n_params}: use method='structured' or 'lanczos'")
    if not fo.vector:
        return np.asarray(fo.hessian(z), dtype=np.float64)
    H = np.column_stack([np.asarray(fo.hessp(z, e), dtype=np.float64)
                         for e in np.eye(fo.n_params, dtype=fo.dtype)])
    return 0.5 * (H + H.T)


def lambda_min_dense(fo, z) -> LambdaMin:
    """``lambda_min`` of the dense partial Hessian (:func:`dense_hessian`)."""
    H = dense_hessian(fo, z)
    return LambdaMin(smallest_eigenvalue(H), rounding_error(H, fo.n_samples, fo.dtype), "dense")


def lambda_min_lanczos(fo, z, *, tol: float = 1e-10) -> LambdaMin:
    """``lambda_min`` by ARPACK on ``fo.hessp`` (``which="SA"``); the error is the residual
    ``||H v - lambda v||``."""
    z = fo.validate_point(z, "z")
    if fo.n_params < 3:  # ARPACK needs k < dim
        return lambda_min_dense(fo, z)
    vals, _, res, ok, count = lanczos_extreme(lambda v: fo.hessp(z, v), fo.n_params, tol=tol)
    if vals.size == 0:
        return LambdaMin(float("nan"), float("inf"), "lanczos", False, None, count)
    return LambdaMin(float(vals[0]), float(res[0]), "lanczos", ok, float(res[0]), count)


def baseline(fo, w_star, radius) -> dict:
    """What the certificate compares with: a given ``w*`` (shape (d,), or (c, d) with c
    outputs), or the best linear predictor (its infimum, or its minimum over
    ``||w|| <= radius``).  ``"w"`` is ``w*`` in float64; the rest are report fields."""
    shape = (fo.n_outputs, fo.d) if fo.vector else (fo.d,)
    if w_star is not None:
        if radius is not None:
            raise ValueError("give w_star or radius, not both")
        if np.ndim(w_star) != len(shape):
            raise ValueError(f"w_star must have shape {shape} ({'(c, d)' if fo.vector else '(d,)'}"
                             f"); got an array of shape {np.shape(w_star)}")
        w_star = as_float_array("w_star", w_star, ndim=len(shape), dtype=np.float64,
                                shape=shape)
        return {"w": w_star, "F_lin_star": None, "baseline": "given w_star"}
    lin = fo.linear_baseline(radius)
    if not lin.converged:
        warnings.warn(f"the best linear predictor did not converge ({lin.message}); the gap "
                      "is against the point the solver reached", BaselineWarning, stacklevel=5)
    return {"w": np.asarray(lin.w, dtype=np.float64).reshape(shape), "F_lin_star": lin.infimum,
            "baseline": "best linear predictor", "baseline_attained": lin.attained,
            "baseline_separability": lin.separability,
            "baseline_converged": bool(lin.converged), "radius": radius,
            "baseline_message": lin.message}


class _BudgetSpent(Exception):
    pass


def lanczos_extreme(hessp, dim: int, *, k: int = 1, which: str = "SA", tol: float = 1e-10,
                    maxiter: int | None = None, max_products: int | None = None,
                    ncv: int | None = None, residuals: bool = True):
    """Extreme eigenpairs of the symmetric operator ``hessp`` by ARPACK with a fixed ``v0``.

    Without ``max_products`` ARPACK runs to ``maxiter`` (default ``max(1000, 20 dim)``)
    restarts.  With it, at most ``max_products`` products: ``maxiter`` follows from the
    budget (each restart costs ``ncv - k`` products, ``ncv`` default
    ``min(dim, max(4 k + 1, 40))``) and a hard stop guards it.

    Returns ``(values, vectors, residuals, converged, n_products)``, ascending; on
    non-convergence the pairs ARPACK did converge (maybe none) with ``converged = False``.
    ``residuals[i] = ||H v_i - lambda_i v_i||`` costs one product per pair (counted; None
    with ``residuals=False``).
    """
    k = min(k, dim - 1)
    if max_products is not None and ncv is None:
        ncv = min(dim, max(4 * k + 1, 40))
    elif ncv is not None:
        ncv = min(int(ncv), dim)
    if ncv is not None and ncv <= k:
        raise ValueError(f"ncv must exceed the number of eigenpairs asked for (n_eigs = {k}); "
                         f"got {ncv}")
    count = [0]

    def product(v):
        count[0] += 1
        return np.asarray(hessp(np.ascontiguousarray(v.ravel())), dtype=np.float64)

    def mv(v):
        if max_products is not None and count[0] >= max_products:
            raise _BudgetSpent
        return product(v)

    if maxiter is None:
        maxiter = (max(1000, 20 * dim) if max_products is None else
                   max(1, (max_products - ncv) // (ncv - k)))
    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    converged = True
    try:
        vals, vecs = eigsh(op, k=k, which=which, v0=start_vector(dim), tol=tol, ncv=ncv,
                           maxiter=maxiter)
    except ArpackNoConvergence as err:
        vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
    except _BudgetSpent:
        vals, vecs, converged = np.zeros(0), np.zeros((dim, 0)), False
    vals, vecs = np.real(vals), np.real(vecs)
    order = np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order]
    res = (np.array([np.linalg.norm(product(vecs[:, i]) - vals[i] * vecs[:, i])
                     for i in range(vals.size)]) if residuals else None)
    return vals, vecs, res, converged, count[0]


@dataclass
class SOPSPReport:
    """The answer of :func:`check_sopsp`.  ``str(report)`` is a table, ``to_dict()`` JSON.

    ``is_sopsp`` is True or False when both tests are decided beyond the accuracy of
    ``lambda_min``, and None (inconclusive) otherwise.  ``F_se`` and ``gap_se`` are
    standard errors over the sample (``sqrt(sum_i s_i^2 (h_i - mean)^2)`` for normalised
    weights ``s``), since the certificate is about the population mean.

    The curvature threshold is ``-sqrt(mu2 eps)``: ``mu2_source`` says where ``mu2`` came
    from (``"given"``, ``"estimated (proven bound)"``, ``"estimated (sampled)"`` on
    ``mu2_region``, or ``"not given"``: then the curvature test is decided only when
    ``lambda_min >= 0``, and ``mu2_needed = lambda_min^2 / eps`` is the smallest ``mu2`` for
    which it would hold).  ``F_lin_star`` is ``inf F_lin`` (or the minimum over
    ``||w|| <= radius``, or ``F_lin(w_star)`` for a given ``w_star``); ``gap`` is
    ``F - F_lin_star``.  When the infimum is not attained (separable data), ``w_star`` is a
    point far along the separating direction with ``F_lin(w_star) = F_lin_at_w_star``.

    Lemma 1 is checked along ``G`` (``G_norm = ||G||``).  For ``n_outputs = c > 1`` (the
    head ``W`` is c x d, ``w_star`` a c x d list, ``w_norm = ||W||_F``):
    ``G = (W - W*, W^+ W* V)``, ``theorem1_bound = (F - F_lin(W*)) / ||G||_F`` (the
    analogue of Theorem 1), ``lemma1_note`` says why they were not computed (``W`` not of
    full row rank), and ``theorem2_note`` that Theorem 2 has no known analogue.
    """

    eps: float
    threshold: float | None
    grad_norm: float
    lambda_min: float
    lambda_min_error: float
    lambda_min_converged: bool
    is_sopsp: bool | None
    gradient_ok: bool
    curvature_ok: bool | None
    F: float
    F_se: float
    F_lin_star: float
    w_star: list
    gap: float
    gap_se: float
    method: str
    head: str
    n_samples: int
    dim: int
    baseline: str = "given w_star"
    baseline_attained: bool | None = True
    baseline_separability: str | None = None
    baseline_converged: bool = True
    radius: float | None = None
    baseline_message: str = ""
    F_lin_at_w_star: float = 0.0
    mu2: float | None = None
    mu2_source: str = "not given"
    mu2_region: dict | None = None
    mu2_needed: float | None = None
    mu2_upper: float | None = None
    curvature_tol: float | None = None
    w_norm: float = 0.0
    V_norm: float | None = None
    lemma1_inner: float | None = None
    lemma1_expectation: float | None = None
    lemma1_holds: bool | None = None
    theorem1_bound: float | None = None
    theorem1_holds: bool | None = None
    theorem2_lhs: float | None = None
    theorem2_holds: bool | None = None
    theorem3_bound: float | None = None
    theorem3_inputs: dict | None = None
    theorem3_applies: bool | None = None
    theorem3_holds: bool | None = None
    theorem3_note: str | None = None
    lanczos_residual: float | None = None
    n_outputs: int = 1
    G_norm: float | None = None
    lemma1_note: str | None = None
    theorem2_note: str | None = None
    timings: dict = field(default_factory=dict)

    @property
    def baseline_radius(self) -> float | None:
        """Deprecated: :attr:`radius`."""
        warnings.warn("SOPSPReport.baseline_radius is deprecated and will be removed in the "
                      "next release; call it 'radius'", DeprecationWarning, stacklevel=2)
        return self.radius

    @classmethod
    def from_dict(cls, d: dict) -> "SOPSPReport":
        """The report of a :meth:`to_dict` (or its JSON); the key ``baseline_radius`` of
        older files is read as ``radius``, and keys of no field are refused."""
        d = dict(d)
        if "baseline_radius" in d:
            old = d.pop("baseline_radius")
            d.setdefault("radius", old)
        names = {f.name for f in fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"not fields of SOPSPReport: {extra}")
        return cls(**d)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field (and, for one release, ``baseline_radius``,
        the old name of ``radius``)."""
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple, np.ndarray)):
                return [clean(x) for x in np.asarray(v).tolist()]
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                return v.item()
            return v
        out = clean(asdict(self))
        out["baseline_radius"] = out["radius"]
        json.dumps(out)  # fails loudly here rather than in the caller's serialiser
        return out

    def _baseline_row(self):
        if self.baseline == "given w_star":
            return ("F_lin(w*)", f"{self.F_lin_star:.6g} (the given w*)")
        if self.radius is not None:
            return (f"min F_lin, ||w|| <= {self.radius:g}",
                    f"{self.F_lin_star:.6g}{'' if self.baseline_converged else ' NOT converged'}")
        if not self.baseline_converged:
            return ("inf F_lin", f"{self.F_lin_star:.6g}, NOT converged "
                                 f"({self.baseline_message})")
        if self.baseline_attained is None:
            reasons = [line.split("not decided:", 1)[1].strip()
                       for line in self.baseline_message.splitlines()
                       if "not decided:" in line]
            why = f" ({reasons[0]})" if reasons else ""
            return ("inf F_lin", f"{self.F_lin_star:.6g}, whether attained is not decided{why}")
        if not self.baseline_attained:
            data = (self.baseline_separability or "separable").replace("_", "-")
            return ("inf F_lin", f"{self.F_lin_star:.6g}, NOT attained ({data} data: by "
                                 f"Corollary 1 a local minimum has F <= {self.F_lin_star:.6g};"
                                 f" F_lin(w*) = {self.F_lin_at_w_star:.3g} far along the "
                                 "separating direction)")
        return ("inf F_lin", f"{self.F_lin_star:.6g}, attained")

    def __str__(self) -> str:
        verdict = {True: "yes", False: "no", None: "inconclusive"}[self.is_sopsp]
        curv = self._verdict_reason()
        vec = self.n_outputs > 1
        rows = [
            ("eps-SOPSP", f"{verdict} (eps = {self.eps:g}: {curv})"),
            ("||grad_(W,V) F||" if vec else "||grad_(w,V) F||", f"{self.grad_norm:.6g}  ({'<=' if self.gradient_ok else '>'}"
                                 f" eps)"),
            ("lambda_min", f"{self.lambda_min:.6g} +- {self.lambda_min_error:.2g} "
                           f"[{self.method}"
                           f"{'' if self.lambda_min_converged else ', NOT converged'}]"),
        ]
        if self.curvature_tol is not None:
            rows.append(("mu2", f"none: curvature_tol {self.curvature_tol:g} given"))
        elif self.mu2 is not None:
            where = f" on {self.mu2_region['description']}" if self.mu2_region else ""
            if self.mu2_source == "estimated (sampled)":
                up = ("no proven upper bound" if self.mu2_upper is None else
                      f"proven upper bound {self.mu2_upper:.6g}")
                rows.append(("mu2", f"{self.mu2:.6g} (sampled lower estimate{where}; {up})"))
            else:
                rows.append(("mu2", f"{self.mu2:.6g} ({self.mu2_source}{where})"))
        else:
            rows.append(("mu2", "not given"))
        if self.mu2_needed is not None:
            rows.append(("mu2 deciding", f"the curvature test holds for mu2 >= about "
                                         f"{self.mu2_needed:.4g} (lambda_min^2 / eps, to "
                                         "lambda_min's accuracy)"))
        rows += [
            ("F(W, V, theta)" if vec else "F(w, V, theta)",
             f"{self.F:.6g} +- {self.F_se:.2g} (s.e.)"),
            self._baseline_row(),
            ("gap F - F_lin*", f"{self.gap:.6g} +- {self.gap_se:.2g} (s.e.)"),
        ]
        if self.lemma1_inner is not None:
            rows.append((f"Lemma 1{' analogue' if vec else ''} <G, grad F>",
                         f"{self.lemma1_inner:.6g} >= F - F_lin(w*) = "
                         f"{self.F - self.F_lin_at_w_star:.6g}: "
                         f"{'holds' if self.lemma1_holds else 'FAILS'}"))
        if self.theorem1_bound is not None:
            how = f" = (F - F_lin(W*)) / ||G||_F, ||G||_F = {self.G_norm:.4g}" if vec else ""
            rows.append((f"Theorem 1{' analogue' if vec else ''} bound",
                         f"||grad|| >= {self.theorem1_bound:.6g}{how}: "
                         f"{'holds' if self.theorem1_holds else 'FAILS'}"))
        if self.lemma1_note is not None:
            rows.append(("Lemma 1 / Theorem 1", self.lemma1_note))
        if self.theorem2_lhs is not None:
            rows.append(("Theorem 2 (w = 0)", f"{self.theorem2_lhs:.6g} >= F - F_lin(w*): "
                                              f"{'holds' if self.theorem2_holds else 'FAILS'}"))
        if self.theorem2_note is not None:
            rows.append(("Theorem 2", self.theorem2_note))
        rows.append(self._theorem3_row())
        rows.append(("samples / dimension", f"{self.n_samples} / {self.dim}"
                                            + (f" (c = {self.n_outputs} outputs)" if vec else "")))
        rows.append(("time", ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in self.timings.items())))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


    def _verdict_reason(self) -> str:
        """Why the verdict is what it is, in one clause."""
        if not self.gradient_ok:
            return "the gradient norm exceeds eps"
        t = "" if self.threshold is None else f"{self.threshold:.4g}"
        if self.curvature_ok is True:
            return ("lambda_min >= 0, so for every mu2" if not t else
                    f"lambda_min >= the curvature threshold {t}")
        if self.curvature_ok is False:
            if self.mu2_source in ("given", "curvature_tol given"):
                return f"lambda_min < the curvature threshold {t}"
            up = -float(np.sqrt(self.mu2_upper * self.eps))
            return f"lambda_min < the threshold {up:.4g} of the proven mu2 {self.mu2_upper:.4g}"
        if not self.lambda_min_converged:
            return "lambda_min did not converge"
        if self.mu2_source == "not given":
            return "lambda_min < 0 and mu2 not given"
        if self.mu2_source == "estimated (sampled)":
            return f"lambda_min < the threshold {t} of a sampled mu2, which decides only True"
        return f"lambda_min within its accuracy of the threshold {t}"

    def _theorem3_row(self):
        if self.theorem3_bound is None:
            return ("Theorem 3", f"not evaluated: {self.theorem3_note}")
        i = self.theorem3_inputs
        what = (f"F - min_(||w|| <= r) F_lin <= (eps + eps^(1/4)) poly = "
                f"{self.theorem3_bound:.6g} (poly {i['poly']:.4g}; b = {i['b']:.4g}, "
                f"r = {i['r']:.4g}, mu0 = {i['mu0']:.4g}, mu1 = {i['mu1']:.4g}, "
                f"mu2 = {i['mu2']:.4g})")
        if self.theorem3_holds is None:
            return ("Theorem 3", f"{what}: does not apply ({self.theorem3_note})")
        return ("Theorem 3", f"{what}: {'holds' if self.theorem3_holds else 'FAILS'}")


# the field's old name still works for one release (docs/api.md); no other argument is
# checked here (the report takes what check_sopsp computed)
SOPSPReport.__init__ = validated(renamed={"baseline_radius": "radius"},
                                 **{f.name: None for f in fields(SOPSPReport)})(
    SOPSPReport.__init__)


class BaselineWarning(RuntimeWarning):
    """The best linear predictor a certificate compares with did not converge."""


def curvature_threshold(fo, eps, mu2, mu2_region, curvature_tol) -> dict:
    """The threshold ``-sqrt(mu2 eps)`` (or ``-curvature_tol``), where ``mu2`` came from, and
    the threshold below which ``lambda_min`` proves "not an eps-SOPSP" (``false_threshold``):
    the same for a given or proven ``mu2``; for a sampled one (a lower estimate) the one of
    a proven upper bound ``mu2_upper`` when there is one, else none (False is never decided
    from a sample)."""
    given = sum(v is not None for v in (mu2, mu2_region, curvature_tol))
    if given > 1:
        raise ValueError("give at most one of mu2, mu2_region and curvature_tol")
    if mu2 is not None:
        if not (np.isfinite(mu2) and mu2 >= 0):
            raise ValueError(f"mu2 must be a non-negative finite number; got {mu2!r}")
        t = -float(np.sqrt(mu2 * eps))
        return {"threshold": t, "false_threshold": t, "mu2": float(mu2), "mu2_source": "given",
                "mu2_upper": float(mu2)}
    if curvature_tol is not None:
        if not (np.isfinite(curvature_tol) and curvature_tol >= 0):
            raise ValueError("curvature_tol must be a non-negative finite number; got "
                             f"{curvature_tol!r}")
        return {"threshold": -float(curvature_tol), "false_threshold": -float(curvature_tol),
                "curvature_tol": float(curvature_tol), "mu2_source": "curvature_tol given"}
    if mu2_region is not None:
        if not isinstance(mu2_region, (Ball, Box)):
            raise TypeError("mu2_region must be a resnet_core.lipschitz.Ball or Box; got "
                            f"{type(mu2_region).__name__}")
        est = estimate_hessian_lipschitz(fo, mu2_region)
        region = est.to_dict()["region"]
        if est.rigorous:
            t = -float(np.sqrt(est.mu2 * eps))
            return {"threshold": t, "false_threshold": t, "mu2": est.mu2,
                    "mu2_source": est.source, "mu2_region": region, "mu2_upper": est.mu2}
        # the largest norm found, less the differences' measured error: a lower estimate
        low = float(est.lower) * max(0.0, 1.0 - float(est.fd_rel_error))
        up = est.upper
        return {"threshold": -float(np.sqrt(low * eps)), "mu2": low, "mu2_source": est.source,
                "mu2_region": region, "mu2_upper": up,
                "false_threshold": None if up is None else -float(np.sqrt(up * eps))}
    return {"threshold": None, "false_threshold": None, "mu2_source": "not given"}


def curvature_verdict(lam: LambdaMin, threshold, false_threshold=None) -> bool | None:
    """True when ``lambda_min`` is beyond its error above ``threshold`` (``0`` without one:
    then it holds for every ``mu2``), False when beyond its error below ``false_threshold``,
    else None."""
    if not lam.converged or not np.isfinite(lam.value):
        return None
    if lam.value - lam.error >= (0.0 if threshold is None else threshold):
        return True
    if false_threshold is not None and lam.value + lam.error < false_threshold:
        return False
    return None


def decide(lam: LambdaMin, curvature: dict, eps: float, gradient_ok: bool) -> dict:
    """The verdict fields of a report: ``curvature_ok``, ``is_sopsp`` (False as soon as one
    test fails, True when both hold, else None) and ``mu2_needed = lambda_min^2 / eps``, the
    ``mu2`` from which the curvature test holds, when it is undecided."""
    curvature_ok = curvature_verdict(lam, curvature["threshold"], curvature["false_threshold"])
    is_sopsp = False if (not gradient_ok or curvature_ok is False) else curvature_ok
    mu2_needed = (lam.value**2 / eps if curvature_ok is None and lam.value < 0 and eps > 0
                  and "curvature_tol" not in curvature else None)
    return {"curvature_ok": curvature_ok, "is_sopsp": is_sopsp, "mu2_needed": mu2_needed}
