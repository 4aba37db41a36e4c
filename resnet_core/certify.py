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

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike
import scipy.linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ._threads import blas_single_thread
from ._validation import as_float_array
from .objective import FeatureObjective, Objective

METHODS = ("auto", "structured", "dense", "lanczos")
# Largest partial Hessian that method="auto" would ever hand to the dense solver.
MAX_DENSE = 2000


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


def reduced_hessian(w, A, B, C, g):
    """The matrix ``M`` whose spectrum, with ``n_zeros`` extra zeros, is the spectrum of the
    residual-head partial Hessian (see the module notes).  Returns ``(M, n_zeros)``."""
    d, k = B.shape
    nw, ng = float(np.linalg.norm(w)), float(np.linalg.norm(g))
    if nw == 0.0:
        if ng == 0.0:
            return A.copy(), d * k
        return np.block([[A, ng * np.eye(d)], [ng * np.eye(d), np.zeros((d, d))]]), d * (k - 1)
    w_hat = w / nw
    top = nw * B + np.outer(w_hat, g)
    if ng == 0.0:
        return np.block([[A, top], [top.T, nw**2 * C]]), d * k - k
    Q = scipy.linalg.null_space(w_hat[None, :])  # d x (d - 1), orthonormal
    M = np.zeros((2 * d + k - 1, 2 * d + k - 1), dtype=np.float64)
    M[:d, :d] = A
    M[:d, d:d + k] = top
    M[d:d + k, :d] = top.T
    M[d:d + k, d:d + k] = nw**2 * C
    M[:d, d + k:] = ng * Q
    M[d + k:, :d] = ng * Q.T
    return M, d * k - d - k + 1


def _rounding_error(M, n_samples, dtype) -> float:
    eps = np.finfo(dtype).eps
    return float(eps * (M.shape[0] + np.sqrt(n_samples)) * np.linalg.norm(M))


def lambda_min_structured(fo: FeatureObjective, z) -> LambdaMin:
    """Exact ``lambda_min`` of the partial Hessian from the sufficient statistics."""
    st = fo.stats(z)
    w, M_ = fo._head.split(fo._point(z, "z"), fo.d, fo.k)
    A, B, C, g = (np.asarray(a, dtype=np.float64) for a in (st.A, st.B, st.C, st.g))
    if fo.head == "residual":
        M, zeros = reduced_hessian(np.asarray(w, dtype=np.float64), A, B, C, g)
    else:
        M, zeros = np.block([[A, B], [B.T, C]]), 0
    ev = np.linalg.eigvalsh(M)[0]
    value = min(float(ev), 0.0) if zeros > 0 else float(ev)
    return LambdaMin(value, _rounding_error(M, fo.n_samples, fo.dtype), "structured")


def lambda_min_dense(fo: FeatureObjective, z) -> LambdaMin:
    """``lambda_min`` of the dense partial Hessian (``numpy.linalg.eigvalsh``)."""
    H = np.asarray(fo.hessian(z), dtype=np.float64)
    return LambdaMin(float(np.linalg.eigvalsh(H)[0]), _rounding_error(H, fo.n_samples, fo.dtype),
                     "dense")


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


def lambda_min_lanczos(fo: FeatureObjective, z, *, tol: float = 1e-10) -> LambdaMin:
    """``lambda_min`` by ARPACK on ``hessp`` (``which="SA"``), with its residual."""
    z = fo._point(z, "z")
    if fo.n_params < 3:  # ARPACK needs k < dim
        return lambda_min_dense(fo, z)
    vals, _, res, ok, count = lanczos_extreme(lambda v: fo.hessp(z, v), fo.n_params, tol=tol)
    if vals.size == 0:
        return LambdaMin(float("nan"), float("inf"), "lanczos", False, None, count)
    return LambdaMin(float(vals[0]), float(res[0]), "lanczos", ok, float(res[0]), count)


LAMBDA_MIN = {"structured": lambda_min_structured, "dense": lambda_min_dense,
              "lanczos": lambda_min_lanczos}


@dataclass
class SOPSPReport:
    """The answer of :func:`check_sopsp`.  ``str(report)`` is a table, ``to_dict()`` JSON.

    ``is_sopsp`` is True or False when both tests are decided beyond the accuracy of
    ``lambda_min``, and None (inconclusive) otherwise.  ``F_se`` and ``gap_se`` are
    standard errors over the sample (``sqrt(sum_i s_i^2 (h_i - mean)^2)`` for normalised
    weights ``s``), since the certificate is about the population mean.
    """

    eps: float
    threshold: float
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
    mu2: float | None = None
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
    lanczos_residual: float | None = None
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

    def __str__(self) -> str:
        verdict = {True: "yes", False: "no", None: "inconclusive"}[self.is_sopsp]
        rows = [
            ("eps-SOPSP", f"{verdict} (eps = {self.eps:g}, curvature threshold "
                          f"{self.threshold:.4g})"),
            ("||grad_(w,V) F||", f"{self.grad_norm:.6g}  ({'<=' if self.gradient_ok else '>'}"
                                 f" eps)"),
            ("lambda_min", f"{self.lambda_min:.6g} +- {self.lambda_min_error:.2g} "
                           f"[{self.method}{'' if self.lambda_min_converged else ', NOT converged'}]"),
            ("F(w, V, theta)", f"{self.F:.6g} +- {self.F_se:.2g} (s.e.)"),
            ("F_lin(w*)", f"{self.F_lin_star:.6g}"),
            ("gap F - F_lin(w*)", f"{self.gap:.6g} +- {self.gap_se:.2g} (s.e.)"),
        ]
        if self.lemma1_inner is not None:
            rows.append(("Lemma 1 <G, grad F>", f"{self.lemma1_inner:.6g} >= gap: "
                                                 f"{'holds' if self.lemma1_holds else 'FAILS'}"))
            rows.append(("Theorem 1 bound", f"||grad|| >= {self.theorem1_bound:.6g}: "
                                            f"{'holds' if self.theorem1_holds else 'FAILS'}"))
        if self.theorem2_lhs is not None:
            rows.append(("Theorem 2 (w = 0)", f"{self.theorem2_lhs:.6g} >= gap: "
                                              f"{'holds' if self.theorem2_holds else 'FAILS'}"))
        rows.append(("samples / dimension", f"{self.n_samples} / {self.dim}"))
        rows.append(("time", ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in self.timings.items())))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _feature_objective(objective, x):
    if isinstance(objective, Objective):
        part = objective.partial(x)
        return part, np.asarray(x, dtype=part.dtype)[:part.n_params]
    if isinstance(objective, FeatureObjective):
        return objective, x
    raise TypeError("objective must be an Objective or a FeatureObjective; got "
                    f"{type(objective).__name__}")


def _linear_losses(fo: FeatureObjective, w_star) -> np.ndarray:
    """Per-sample ``l(w*^T x_i; y_i)``; the last one is cached with the objective's linear
    baselines (one data set, usually one ``w*``)."""
    cached = fo._baselines.get("sample_losses")
    if cached is not None and np.array_equal(cached[0], w_star):
        return cached[1]
    eng = fo._engine
    l_lin = fo.loss.derivatives(np.asarray(eng.X, dtype=np.float64) @ w_star, eng.y)[0]
    fo._baselines["sample_losses"] = (w_star.copy(), l_lin)
    return l_lin


def _weighted_se(s, h, mean) -> float:
    """Standard error of the weighted mean ``sum s_i h_i`` (``s`` sums to one)."""
    return float(np.sqrt(np.sum((s * (h - mean)) ** 2)))


def check_sopsp(objective, x: ArrayLike, *, eps: float, mu2: float | None = None,
                curvature_tol: float | None = None, w_star=None,
                method: str = "auto") -> SOPSPReport:
    """Certify whether ``x`` is an eps-SOPSP of ``F_theta`` and compare it with the best
    linear predictor.

    Parameters
    ----------
    objective : Objective or FeatureObjective
        For an :class:`Objective`, ``F_theta`` is its ``partial(x)``.
    x : array
        The point: all parameters (Objective) or ``[w, vec(V)]`` (FeatureObjective).
    eps : float
        Gradient tolerance of Definition 1.
    mu2 : float, optional
        Hessian Lipschitz constant: the curvature threshold is ``-sqrt(mu2 eps)``.
    curvature_tol : float, optional
        Threshold ``-curvature_tol`` instead (give one of ``mu2``, ``curvature_tol``;
        neither means ``mu2 = 1``).
    w_star : array of shape (d,), optional
        The linear predictor to compare with; default the best one (cached per data set).
    method : {"auto", "structured", "dense", "lanczos"}
        How ``lambda_min`` is computed; ``"auto"`` is ``"structured"`` (exact, one pass).

    Returns
    -------
    SOPSPReport
        With the gradient norm, ``lambda_min`` and its accuracy, the verdict, ``F``,
        ``F_lin(w*)``, the gap with standard errors, and Lemma 1 / Theorem 1 (``w != 0``) or
        Theorem 2 (``w = 0``) checked at this point (residual head).
    """
    # Its dense work is small: one BLAS thread, so that no BLAS thread spins against the
    # kernels' OpenMP threads between passes (measured: 111 ms -> 65 ms for the Gram pass).
    with blas_single_thread():
        return _check_sopsp(objective, x, eps=eps, mu2=mu2, curvature_tol=curvature_tol,
                            w_star=w_star, method=method)


def _check_sopsp(objective, x, *, eps, mu2, curvature_tol, w_star, method) -> SOPSPReport:
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a non-negative finite number; got {eps!r}")
    if mu2 is not None and curvature_tol is not None:
        raise ValueError("give mu2 or curvature_tol, not both")
    if mu2 is not None and not (np.isfinite(mu2) and mu2 >= 0):
        raise ValueError(f"mu2 must be a non-negative finite number; got {mu2!r}")
    if curvature_tol is not None and not (np.isfinite(curvature_tol) and curvature_tol >= 0):
        raise ValueError(f"curvature_tol must be a non-negative finite number; got {curvature_tol!r}")
    if curvature_tol is None and mu2 is None:
        mu2 = 1.0
    threshold = -float(curvature_tol) if curvature_tol is not None else -np.sqrt(mu2 * eps)

    fo, z = _feature_objective(objective, x)
    z = fo._point(z, "x" if isinstance(objective, Objective) else "z")
    timings = {}
    method = "structured" if method == "auto" else method

    t = time.perf_counter()
    st = fo.stats(z)
    timings["statistics"] = time.perf_counter() - t
    t = time.perf_counter()
    lam = LAMBDA_MIN[method](fo, z)
    timings["eigen"] = time.perf_counter() - t

    t = time.perf_counter()
    eng = fo._engine
    if w_star is None:
        w_star = fo.linear_baseline().w
    w_star = as_float_array("w_star", w_star, ndim=1, dtype=np.float64, shape=(fo.d,))
    w, M, a = fo._split_head(z)
    l = eng.derivatives(w, a, fo._theta, key=z)[0]  # kept by the statistics pass
    l_lin = _linear_losses(fo, w_star)
    s = np.asarray(eng.s, dtype=np.float64)
    F = float(st.F)
    F_lin = float(s @ l_lin)
    gap = F - F_lin
    timings["baseline"] = time.perf_counter() - t

    grad = np.asarray(st.grad, dtype=np.float64)
    grad_norm = float(np.linalg.norm(grad))
    gradient_ok = grad_norm <= eps
    if not lam.converged or not np.isfinite(lam.value):
        curvature_ok = None
    elif lam.value - lam.error >= threshold:
        curvature_ok = True
    elif lam.value + lam.error < threshold:
        curvature_ok = False
    else:
        curvature_ok = None
    is_sopsp = False if (not gradient_ok or curvature_ok is False) else curvature_ok

    report = SOPSPReport(
        eps=float(eps), threshold=float(threshold), grad_norm=grad_norm,
        lambda_min=lam.value, lambda_min_error=lam.error, lambda_min_converged=lam.converged,
        is_sopsp=is_sopsp, gradient_ok=gradient_ok, curvature_ok=curvature_ok, F=F,
        F_se=_weighted_se(s, l, F), F_lin_star=F_lin, w_star=w_star.tolist(), gap=gap,
        gap_se=_weighted_se(s, l - l_lin, gap), method=lam.method, head=fo.head,
        n_samples=fo.n_samples, dim=fo.n_params, mu2=mu2, curvature_tol=curvature_tol,
        w_norm=float(np.linalg.norm(w)), lanczos_residual=lam.residual)
    if fo.head == "residual":
        from . import theory

        V = np.asarray(M, dtype=np.float64)
        report.V_norm = float(np.linalg.norm(V, 2))
        # The paper's inequalities, checked with a tolerance of the rounding in F.
        tol = 1e-9 * (1.0 + abs(F) + abs(F_lin))
        if report.w_norm > 0:
            G = theory.lemma1_direction(np.asarray(w, np.float64), V, w_star)
            report.lemma1_inner = float(G @ grad)
            # E[l' (p - w*^T x)] = w . grad_w - E[l' x] . w*, with E[l' x] = grad_w - V g
            grad_w = grad[:fo.d]
            report.lemma1_expectation = float(
                grad_w @ np.asarray(w, np.float64) - (grad_w - V @ st.g) @ w_star)
            report.lemma1_holds = bool(report.lemma1_inner >= gap - tol)
            report.theorem1_bound = theory.theorem1_bound(gap, w, V, w_star)
            report.theorem1_holds = bool(grad_norm >= report.theorem1_bound - tol)
        elif lam.converged:
            report.theorem2_lhs = theory.theorem2_lhs(grad_norm, lam.value, st.A, V, w_star)
            report.theorem2_holds = bool(lam.value <= lam.error
                                         and report.theorem2_lhs >= gap - tol)
    timings["total"] = time.perf_counter() - t0
    report.timings = timings
    return report
