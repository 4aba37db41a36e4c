"""What every eps-SOPSP certificate shares, one output or c: the report, the accuracy of a
``lambda_min``, ARPACK with a fixed start, and the curvature threshold (Definition 1:
``lambda_min >= -sqrt(mu2 eps)``).  :mod:`resnet_core.certify` (one output) and
:mod:`resnet_core.certify_vector` (c outputs) build on it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from .lipschitz import Ball, Box, estimate_hessian_lipschitz


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


def _rounding_error(M, n_samples, dtype) -> float:
    eps = np.finfo(dtype).eps
    return float(eps * (M.shape[0] + np.sqrt(n_samples)) * np.linalg.norm(M))


def _start_vector(dim: int) -> np.ndarray:
    """A fixed, generic start vector (reproducible ARPACK runs)."""
    v0 = np.random.default_rng(20180101).standard_normal(dim)
    return v0 / np.linalg.norm(v0)


def lanczos_extreme(hessp, dim: int, *, k: int = 1, which: str = "SA", tol: float = 1e-10,
                    maxiter: int | None = None):
    """Extreme eigenpairs of the symmetric operator ``hessp`` by ARPACK with a fixed ``v0``.

    Returns ``(values, vectors, residuals, converged, n_products)``; on non-convergence the
    pairs ARPACK did converge are returned with ``converged = False``.
    """
    count = [0]

    def mv(v):
        count[0] += 1
        return np.asarray(hessp(np.ascontiguousarray(v.ravel())), dtype=np.float64)

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    k = min(k, dim - 1)
    converged = True
    try:
        vals, vecs = eigsh(op, k=k, which=which, v0=_start_vector(dim), tol=tol,
                           maxiter=maxiter or max(1000, 20 * dim))
    except ArpackNoConvergence as err:
        vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
    order = np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order]
    res = np.array([np.linalg.norm(mv(vecs[:, i]) - vals[i] * vecs[:, i])
                    for i in range(vals.size)])
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
    ``||w|| <= baseline_radius``, or ``F_lin(w_star)`` for a given ``w_star``); ``gap`` is
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
    baseline_radius: float | None = None
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

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple, np.ndarray)):
                return [clean(x) for x in np.asarray(v).tolist()]
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                return v.item()
            return v
        out = clean(asdict(self))
        json.dumps(out)  # fails loudly here rather than in the caller's serialiser
        return out

    def _baseline_row(self):
        if self.baseline == "given w_star":
            return ("F_lin(w*)", f"{self.F_lin_star:.6g} (the given w*)")
        if self.baseline_radius is not None:
            return (f"min F_lin, ||w|| <= {self.baseline_radius:g}",
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


class BaselineWarning(RuntimeWarning):
    """The best linear predictor a certificate compares with did not converge."""


def _curvature_threshold(fo, eps, mu2, mu2_region, curvature_tol) -> dict:
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


def _curvature_verdict(lam: LambdaMin, threshold, false_threshold=None) -> bool | None:
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


def _decide(lam: LambdaMin, curvature: dict, eps: float, gradient_ok: bool) -> dict:
    """The verdict fields of a report: ``curvature_ok``, ``is_sopsp`` (False as soon as one
    test fails, True when both hold, else None) and ``mu2_needed = lambda_min^2 / eps``, the
    ``mu2`` from which the curvature test holds, when it is undecided."""
    curvature_ok = _curvature_verdict(lam, curvature["threshold"],
                                      curvature.pop("false_threshold"))
    is_sopsp = False if (not gradient_ok or curvature_ok is False) else curvature_ok
    mu2_needed = (lam.value**2 / eps if curvature_ok is None and lam.value < 0 and eps > 0
                  and "curvature_tol" not in curvature else None)
    return {"curvature_ok": curvature_ok, "is_sopsp": is_sopsp, "mu2_needed": mu2_needed}
