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
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike
import scipy.linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ._threads import blas_single_thread
from . import theory
from ._validation import as_float_array
from .lipschitz import Ball, Box, estimate_hessian_lipschitz
from .objective import FeatureObjective, Objective

METHODS = ("auto", "structured", "dense", "lanczos")


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
    parts = fo.unpack(z)
    w = parts["w"]
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
    z = fo.validate_point(z, "z")
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
            return ("inf F_lin", f"{self.F_lin_star:.6g}, whether attained is not decided "
                                 f"({self.baseline_message})")
        if not self.baseline_attained:
            data = (self.baseline_separability or "separable").replace("_", "-")
            return ("inf F_lin", f"{self.F_lin_star:.6g}, NOT attained ({data} data: by "
                                 f"Corollary 1 a local minimum has F <= {self.F_lin_star:.6g};"
                                 f" F_lin(w*) = {self.F_lin_at_w_star:.3g} far along the "
                                 "separating direction)")
        return ("inf F_lin", f"{self.F_lin_star:.6g}, attained")

    def __str__(self) -> str:
        verdict = {True: "yes", False: "no", None: "inconclusive"}[self.is_sopsp]
        if self.threshold is None:
            curv = "curvature threshold unknown: mu2 not given"
        else:
            curv = f"curvature threshold {self.threshold:.4g}"
        vec = self.n_outputs > 1
        rows = [
            ("eps-SOPSP", f"{verdict} (eps = {self.eps:g}, {curv})"),
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
            rows.append(("mu2", f"{self.mu2:.6g} ({self.mu2_source}{where})"))
        else:
            need = ("" if self.mu2_needed is None else
                    f"; the curvature test holds for mu2 >= about {self.mu2_needed:.4g} "
                    "(lambda_min^2 / eps, to lambda_min's accuracy)")
            rows.append(("mu2", f"not given{need}"))
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
        rows.append(("samples / dimension", f"{self.n_samples} / {self.dim}"
                                            + (f" (c = {self.n_outputs} outputs)" if vec else "")))
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


def _linear_sample_losses(fo: FeatureObjective, w_star: np.ndarray, chunk: int = 16384):
    """``(i0, i1, l(w*^T x_i; y_i))`` block by block: ``X w*`` in the data's dtype, the loss
    in float64 on blocks of ``chunk`` samples (no copy of ``X``)."""
    X, y = fo.X, fo.y
    w = w_star.astype(fo.dtype)
    for i0 in range(0, fo.n_samples, chunk):
        i1 = min(i0 + chunk, fo.n_samples)
        yield i0, i1, fo.loss.derivatives(X[i0:i1] @ w, y[i0:i1])[0]


def _sample_statistics(fo: FeatureObjective, l: np.ndarray, F: float, w_star: np.ndarray):
    """``F_lin(w*)``, the standard error of ``F`` and that of ``F - F_lin(w*)`` (two streamed
    passes over ``X``)."""
    s = fo.sample_weight
    F_lin = sum(float(np.dot(s[i0:i1], l_lin)) for i0, i1, l_lin in
                _linear_sample_losses(fo, w_star))
    gap = F - F_lin
    se_F, se_gap = 0.0, 0.0
    for i0, i1, l_lin in _linear_sample_losses(fo, w_star):
        si, li = np.asarray(s[i0:i1], np.float64), np.asarray(l[i0:i1], np.float64)
        se_F += float(np.sum((si * (li - F)) ** 2))
        se_gap += float(np.sum((si * (li - l_lin - gap)) ** 2))
    return F_lin, float(np.sqrt(se_F)), float(np.sqrt(se_gap))


class BaselineWarning(RuntimeWarning):
    """The best linear predictor a certificate compares with did not converge."""


def _baseline(fo: FeatureObjective, w_star, radius) -> dict:
    """What the certificate compares with: a given ``w*``, or the best linear predictor
    (its infimum, or its minimum over ``||w|| <= radius``)."""
    if w_star is not None:
        if radius is not None:
            raise ValueError("give w_star or baseline_radius, not both")
        w_star = as_float_array("w_star", w_star, ndim=1, dtype=np.float64, shape=(fo.d,))
        return {"w": w_star, "F_lin_star": None, "baseline": "given w_star"}
    lin = fo.linear_baseline(radius)
    if not lin.converged:
        warnings.warn(f"the best linear predictor did not converge ({lin.message}); the gap "
                      "is against the point the solver reached", BaselineWarning, stacklevel=4)
    return {"w": np.asarray(lin.w, dtype=np.float64), "F_lin_star": lin.infimum,
            "baseline": "best linear predictor", "baseline_attained": lin.attained,
            "baseline_separability": lin.separability,
            "baseline_converged": bool(lin.converged), "baseline_radius": radius,
            "baseline_message": lin.message}


def _curvature_threshold(fo, eps, mu2, mu2_region, curvature_tol) -> dict:
    """The threshold ``-sqrt(mu2 eps)`` (or ``-curvature_tol``) and where ``mu2`` came from."""
    given = sum(v is not None for v in (mu2, mu2_region, curvature_tol))
    if given > 1:
        raise ValueError("give at most one of mu2, mu2_region and curvature_tol")
    if mu2 is not None:
        if not (np.isfinite(mu2) and mu2 >= 0):
            raise ValueError(f"mu2 must be a non-negative finite number; got {mu2!r}")
        return {"threshold": -float(np.sqrt(mu2 * eps)), "mu2": float(mu2), "mu2_source": "given"}
    if curvature_tol is not None:
        if not (np.isfinite(curvature_tol) and curvature_tol >= 0):
            raise ValueError("curvature_tol must be a non-negative finite number; got "
                             f"{curvature_tol!r}")
        return {"threshold": -float(curvature_tol), "curvature_tol": float(curvature_tol),
                "mu2_source": "curvature_tol given"}
    if mu2_region is not None:
        if not isinstance(mu2_region, (Ball, Box)):
            raise TypeError("mu2_region must be a resnet_core.lipschitz.Ball or Box; got "
                            f"{type(mu2_region).__name__}")
        est = estimate_hessian_lipschitz(fo, mu2_region)
        return {"threshold": -float(np.sqrt(est.mu2 * eps)), "mu2": est.mu2,
                "mu2_source": est.source, "mu2_region": est.to_dict()["region"]}
    return {"threshold": None, "mu2_source": "not given"}


def _curvature_verdict(lam: LambdaMin, threshold) -> bool | None:
    """True / False when ``lambda_min`` is beyond its error from the threshold, else None.
    Without a threshold (``mu2`` unknown) only ``lambda_min >= 0`` decides (any ``mu2``)."""
    if not lam.converged or not np.isfinite(lam.value):
        return None
    if lam.value - lam.error >= (0.0 if threshold is None else threshold):
        return True
    if threshold is not None and lam.value + lam.error < threshold:
        return False
    return None


def check_sopsp(objective, x: ArrayLike, *, eps: float, mu2: float | None = None,
                mu2_region=None, curvature_tol: float | None = None, w_star=None,
                baseline_radius: float | None = None, method: str = "auto") -> SOPSPReport:
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
    baseline_radius : float, optional
        Compare with ``min_{||w|| <= baseline_radius} F_lin(w)`` (Theorem 3) instead.
    method : {"auto", "structured", "dense", "lanczos"}
        How ``lambda_min`` is computed; ``"auto"`` is ``"structured"`` (exact, one pass),
        with c outputs while its matrices have size at most 4000, else ``"lanczos"``.

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
                            curvature_tol=curvature_tol, w_star=w_star,
                            baseline_radius=baseline_radius, method=method)


def _check_sopsp(objective, x, *, eps, mu2, mu2_region, curvature_tol, w_star,
                 baseline_radius, method) -> SOPSPReport:
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a non-negative finite number; got {eps!r}")
    if baseline_radius is not None and not (np.isfinite(baseline_radius) and baseline_radius > 0):
        raise ValueError("baseline_radius must be a positive finite number or None; got "
                         f"{baseline_radius!r}")

    fo, z = _feature_objective(objective, x)
    z = fo.validate_point(z, "x" if isinstance(objective, Objective) else "z")
    if getattr(fo, "n_outputs", 1) > 1:
        from .certify_vector import check_sopsp_vector
        return check_sopsp_vector(fo, z, eps=eps, mu2=mu2, mu2_region=mu2_region,
                                  curvature_tol=curvature_tol, w_star=w_star,
                                  baseline_radius=baseline_radius, method=method)
    timings = {}
    method = "structured" if method == "auto" else method

    t = time.perf_counter()
    st = fo.stats(z)
    timings["statistics"] = time.perf_counter() - t
    t = time.perf_counter()
    lam = LAMBDA_MIN[method](fo, z)
    timings["eigen"] = time.perf_counter() - t
    t = time.perf_counter()
    curvature = _curvature_threshold(fo, eps, mu2, mu2_region, curvature_tol)
    if mu2_region is not None:
        timings["mu2"] = time.perf_counter() - t

    t = time.perf_counter()
    base = _baseline(fo, w_star, baseline_radius)
    w_star = base.pop("w")
    parts = fo.unpack(z)
    w, M = parts["w"], parts.get("V", parts.get("v"))
    l = fo.at(z).sample_losses  # filled by the statistics pass
    F = float(st.F)
    F_lin_w, F_se, gap_se = _sample_statistics(fo, l, F, w_star)
    F_lin_star = base.pop("F_lin_star")
    F_lin_star = F_lin_w if F_lin_star is None else float(F_lin_star)
    timings["baseline"] = time.perf_counter() - t

    grad = np.asarray(st.grad, dtype=np.float64)
    grad_norm = float(np.linalg.norm(grad))
    gradient_ok = grad_norm <= eps
    curvature_ok = _curvature_verdict(lam, curvature["threshold"])
    is_sopsp = False if (not gradient_ok or curvature_ok is False) else curvature_ok
    mu2_needed = (lam.value**2 / eps if lam.value < 0 and eps > 0 and "mu2" not in curvature
                  and curvature_tol is None else None)

    report = SOPSPReport(
        eps=float(eps), grad_norm=grad_norm,
        lambda_min=lam.value, lambda_min_error=lam.error, lambda_min_converged=lam.converged,
        is_sopsp=is_sopsp, gradient_ok=gradient_ok, curvature_ok=curvature_ok, F=F,
        F_se=F_se, F_lin_star=F_lin_star, w_star=w_star.tolist(), gap=F - F_lin_star,
        gap_se=gap_se, method=lam.method, head=fo.head, n_samples=fo.n_samples,
        dim=fo.n_params, F_lin_at_w_star=F_lin_w, mu2_needed=mu2_needed,
        w_norm=float(np.linalg.norm(w)), lanczos_residual=lam.residual, **curvature, **base)
    if fo.head == "residual":
        _paper_inequalities(report, fo, st, lam, w, M, w_star, F - F_lin_w, grad)
    timings["total"] = time.perf_counter() - t0
    report.timings = timings
    return report


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
