"""Hessian spectra without autograd: extreme eigenpairs, trace and spectral density.

What PyHessian offers for PyTorch models, for this objective, on CPU: every method needs
only Hessian-vector products, from ``FeatureObjective.hessp`` (``wrt="wV"``: the partial
Hessian over ``(w, V)``, whose products after the first two do not touch the data) or
``Objective.hessp`` (``wrt="all"``: the full Hessian by the R-operator).

- :func:`hessian_spectrum`: extreme eigenpairs with residuals: for ``wrt="wV"`` from the
  exact reduced matrix (``resnet_core._reduced_spectrum``), else ARPACK (fixed start vector)
  within a budget of products.
- :func:`hessian_trace`: Hutchinson's estimator or Hutch++ (Meyer, Musco, Musco, Woodruff
  2021); for ``wrt="wV"`` also ``method="exact"`` from the sufficient statistics
  (``tr A + ||w||^2 tr C`` for the residual head).
- :func:`spectral_density`: stochastic Lanczos quadrature (Lin, Saad, Yang 2016; Ghorbani,
  Krishnan, Xiao 2019): for Rademacher probes ``v``, ``m`` Lanczos steps give the nodes
  ``theta_j`` and weights ``tau_j^2`` of a Gauss quadrature of ``v^T f(H) v``; the density is
  the probe average of ``sum_j tau_j^2 N(t; theta_j, sigma^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import certify_vector
from ._certificate import feature_objective, lanczos_extreme
from ._progress import progress_bar
from ._reduced_spectrum import REDUCED_MAX, pick, reduced_form, reduced_eigenpairs
from .objective import Objective
from ._schema import COUNT, validated
from ._validation import as_float_array, check_alloc, check_choice, memory_limit

WRT = ("wV", "all")
METHODS = ("auto", "reduced", "dense", "lanczos")


def hessian_operator(objective, x: ArrayLike, wrt: str = "wV"):
    """``(matvec, dim)`` of the partial (``"wV"``) or full (``"all"``) Hessian at ``x``."""
    check_choice("wrt", wrt, WRT)
    if wrt == "all":
        if not isinstance(objective, Objective):
            raise TypeError("wrt='all' needs an Objective (the full Hessian over theta too)")
        x = objective.validate_point(x)
        return (lambda v: np.asarray(objective.hessp(x, v), dtype=np.float64)), objective.n_params
    fo, z = feature_objective(objective, x)
    z = fo.validate_point(z, "z")
    return (lambda v: np.asarray(fo.hessp(z, v), dtype=np.float64)), fo.n_params


@dataclass(repr=False)
class Spectrum:
    """Extreme eigenpairs: ``values`` ascending, ``vectors[:, i]`` unit eigenvectors,
    ``residuals[i] = ||H v_i - lambda_i v_i||`` (from Hessian-vector products, whatever the
    method).  ``converged`` is False when Lanczos stopped on its product budget or iteration
    limit: then only the pairs it did converge are returned (maybe none), and ``message``
    says so.  ``method``: ``"reduced"`` (the exact reduced matrix of the partial Hessian),
    ``"dense"`` or ``"lanczos"``; ``n_products`` counts Hessian-vector products."""

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    converged: bool
    wrt: str
    n_products: int
    method: str = "lanczos"
    message: str = "converged"

    def __repr__(self) -> str:
        vals = ", ".join(f"{v:.6g}" for v in self.values)
        res = f"{self.residuals.max():.1e}" if self.residuals.size else "-"
        return (f"Spectrum(values=[{vals}], max residual={res}, method={self.method!r}, "
                f"wrt={self.wrt!r}, n_products={self.n_products}, {self.message})")


def _dense(matvec, dim):
    H = np.column_stack([matvec(e) for e in np.eye(dim)])
    return 0.5 * (H + H.T)


@validated(n_eigs=COUNT, renamed={"k": "n_eigs"})
def hessian_spectrum(objective, x: ArrayLike, *, wrt: str = "wV", n_eigs: int = 6,
                     which: str = "both",
                     tol: float = 1e-10, method: str = "auto", max_products: int = 5000,
                     ncv: int | None = None, progress: bool = False) -> Spectrum:
    """The ``n_eigs`` smallest and/or largest eigenpairs of the Hessian at ``x``.

    Parameters
    ----------
    objective : Objective or FeatureObjective
    x : array
        The point (all parameters for an Objective).
    wrt : {"wV", "all"}
        The partial Hessian over ``(w, V)`` or the full one (Objective only).
    n_eigs : int
        Eigenpairs at each requested end (formerly ``k``, still accepted for one release).
    which : {"both", "smallest", "largest"}
    tol : float
        ARPACK's relative tolerance.
    method : {"auto", "reduced", "dense", "lanczos"}
        ``"reduced"`` (``wrt="wV"``): the eigenpairs of the reduced matrix of the partial
        Hessian that :func:`resnet_core.check_sopsp` uses (one pass over the data, exact;
        the rest of the spectrum is zeros, whose eigenvectors are known), mapped back to
        ``(w, V)``.  ``"dense"``: ``eigh`` of the Hessian formed from ``dim`` products.
        ``"lanczos"``: ARPACK on products.  ``"auto"``: reduced for ``wrt="wV"`` when its
        matrix has at most 4000 rows, else dense up to 50 parameters, else Lanczos.
    max_products : int
        Lanczos's budget of Hessian-vector products (per end of the spectrum); when it is
        spent the result says "not converged" and gives the residuals reached.
    ncv : int, optional
        Lanczos basis size; default ``min(dim, max(4 n_eigs + 1, 40))``, twice ARPACK's usual,
        which resolves near-degenerate clusters in fewer products (docs/performance.md).
    progress : bool
        A tqdm bar of the Hessian-vector products (Lanczos and dense; needs tqdm).
    """
    k = n_eigs
    check_choice("which", which, ("both", "smallest", "largest"))
    check_choice("method", method, METHODS)
    if method == "reduced" and wrt != "wV":
        raise ValueError("method='reduced' is for wrt='wV' (the partial Hessian)")
    if method in ("auto", "reduced") and wrt == "wV":
        fo, z = feature_objective(objective, x)
        z = fo.validate_point(z, "z")
        reduced = reduced_form(fo, z)
        if reduced is not None:
            return _reduced_spectrum(fo, z, reduced, k, which)
        if method == "reduced":
            raise ValueError("method='reduced': the reduced matrix of this objective has more "
                             f"than {REDUCED_MAX} rows; use method='lanczos'")
    matvec, dim = hessian_operator(objective, x, wrt)
    with progress_bar(progress, None if method == "lanczos" or dim > 50 else dim,
                      "hessian_spectrum", "Hv") as update:
        counted = _counted(matvec, update)
        if method == "dense" or (method == "auto" and dim <= max(2 * k + 1, 50)):
            vals, vecs = np.linalg.eigh(_dense(counted, dim))
            idx = pick(vals, k, which)
            res = np.array([np.linalg.norm(counted(vecs[:, i]) - vals[i] * vecs[:, i])
                            for i in idx])
            return Spectrum(vals[idx], vecs[:, idx], res, True, wrt, counted.count, "dense")
        parts, ok, notes = [], True, []
        for end in (("SA",) if which == "smallest" else ("LA",) if which == "largest"
                    else ("SA", "LA")):
            vals, vecs, _, conv, used = lanczos_extreme(
                counted, dim, k=k, which=end, tol=tol, max_products=max_products, ncv=ncv,
                residuals=False)
            parts.append((vals, vecs))
            ok = ok and conv
            if not conv:
                notes.append(f"{'smallest' if end == 'SA' else 'largest'} end: {vals.size} of "
                             f"{min(k, dim - 1)} pairs converged within {used} products "
                             f"(max_products = {max_products})")
        vals = np.concatenate([p[0] for p in parts])
        vecs = np.hstack([p[1] for p in parts])
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
        res = np.array([np.linalg.norm(counted(vecs[:, i]) - vals[i] * vecs[:, i])
                        for i in range(vals.size)])
    message = "converged" if ok else "NOT converged: " + "; ".join(notes)
    if not ok and res.size:
        message += f" (residuals of the pairs returned: max {res.max():.1e})"
    return Spectrum(vals, vecs, res, ok, wrt, counted.count, "lanczos", message)


def _reduced_spectrum(fo, z, form, k: int, which: str) -> Spectrum:
    """Eigenpairs from the reduced matrix; residuals from ``fo.hessp``."""
    vals, vecs = reduced_eigenpairs(form, k, which)
    res = np.array([np.linalg.norm(np.asarray(fo.hessp(z, vecs[:, i]), dtype=np.float64)
                                   - vals[i] * vecs[:, i]) for i in range(vals.size)])
    return Spectrum(vals, vecs, res, True, "wV", vals.size, "reduced",
                    "exact (reduced matrix)")


def _counted(matvec, update):
    """``matvec`` that counts its calls (``.count``) and tells ``update``."""
    def call(v):
        call.count += 1
        update(1)
        return matvec(v)
    call.count = 0
    return call


@dataclass
class TraceEstimate:
    """``estimate`` of ``tr H``; ``std_error`` of the Hutchinson average (None for Hutch++
    and exact); ``n_products`` Hessian-vector products used."""

    estimate: float
    std_error: float | None
    method: str
    n_products: int


@validated
def hessian_trace(objective, x: ArrayLike, *, wrt: str = "wV", method: str = "hutch++",
                  n_products: int = 99, seed=0, progress: bool = False) -> TraceEstimate:
    """Trace of the Hessian at ``x``.

    ``"hutchinson"``: mean of ``v^T H v`` over Rademacher ``v``; ``"hutch++"``: the exact
    trace on a sketched range ``Q`` of ``H S`` plus Hutchinson on the rest,
    ``tr(Q^T H Q) + (3/m) tr(G^T (I - QQ^T) H (I - QQ^T) G)`` (variance ``O(1/m^2)``);
    ``"exact"`` (``wrt="wV"``): from the sufficient statistics (``tr A + ||w||^2 tr C``
    for the residual head), or with c outputs from one pass
    (:func:`resnet_core.certify_vector.hessian_trace`).  ``seed`` draws the probes
    (default 0: the same estimate on every call; None: fresh entropy).  ``progress=True``:
    a tqdm bar of the products.
    """
    check_choice("method", method, ("hutchinson", "hutch++", "exact"))
    if method == "exact":
        if wrt != "wV":
            raise ValueError("method='exact' is for wrt='wV' (from the statistics)")
        fo, z = feature_objective(objective, x)
        z = fo.validate_point(z, "z")
        if fo.vector:
            return TraceEstimate(certify_vector.hessian_trace(fo, z), None, "exact", 0)
        st = fo.stats(z)
        w = fo.unpack(z)["w"]
        extra = float(w @ w) * np.trace(st.C) if fo.head == "residual" else np.trace(st.C)
        return TraceEstimate(float(np.trace(st.A) + extra), None, "exact", 0)
    m = n_products
    operator, dim = hessian_operator(objective, x, wrt)
    check_alloc(f"the {m} probe vectors of dimension {dim}", 8 * m * dim,
                f"use fewer products (n_products at most {memory_limit() // (8 * dim)})")
    with progress_bar(progress, m, "hessian_trace", "Hv") as update:
        return _trace(_counted(operator, update), dim, m, method, np.random.default_rng(seed))


def _trace(matvec, dim, m, method, rng) -> TraceEstimate:
    if method == "hutchinson":
        samples = np.array([v @ matvec(v) for v in rng.choice([-1.0, 1.0], size=(m, dim))])
        return TraceEstimate(float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(m))
                             if m > 1 else None, method, m)
    third = m // 3
    S = rng.choice([-1.0, 1.0], size=(dim, third))
    G = rng.choice([-1.0, 1.0], size=(dim, m - 2 * third))
    Q, _ = np.linalg.qr(np.column_stack([matvec(s) for s in S.T]))
    HQ = np.column_stack([matvec(q) for q in Q.T])
    G = G - Q @ (Q.T @ G)
    HG = np.column_stack([matvec(g) for g in G.T])
    est = np.trace(Q.T @ HQ) + np.trace(G.T @ HG) / G.shape[1]
    return TraceEstimate(float(est), None, method, 2 * third + G.shape[1])


@dataclass
class SpectralDensity:
    """Stochastic Lanczos quadrature: ``nodes[i]`` and ``weights[i]`` (summing to one) of
    probe ``i``; ``density`` on ``grid``, a probability density (times ``dim`` it counts
    eigenvalues per unit)."""

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    dim: int


def _lanczos_tridiagonal(matvec, v, steps):
    """``steps`` Lanczos steps with full reorthogonalisation; returns (alpha, beta)."""
    dim = v.size
    V = np.zeros((steps, dim))
    alpha, beta = np.zeros(steps), np.zeros(max(steps - 1, 0))
    V[0] = v / np.linalg.norm(v)
    for j in range(steps):
        w = matvec(V[j])
        alpha[j] = V[j] @ w
        w -= V[:j + 1].T @ (V[:j + 1] @ w)
        w -= V[:j + 1].T @ (V[:j + 1] @ w)  # twice is enough (Kahan-Parlett)
        if j + 1 == steps:
            break
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-12 * max(abs(alpha[j]), 1.0):  # invariant subspace found
            return alpha[:j + 1], beta[:j]
        V[j + 1] = w / beta[j]
    return alpha, beta


@validated
def spectral_density(objective, x: ArrayLike, *, wrt: str = "wV", n_probes: int = 8,
                     lanczos_steps: int = 60, grid=None, n_grid: int = 400,
                     sigma: float | None = None, seed=0,
                     progress: bool = False) -> SpectralDensity:
    """Spectral density of the Hessian at ``x`` by stochastic Lanczos quadrature.

    ``sigma`` (the Gaussian broadening) defaults to 1% of the spectral range seen; ``seed``
    draws the probes (default 0: the same density on every call; None: fresh entropy);
    ``progress=True``: a tqdm bar of the probes.
    """
    steps = lanczos_steps
    n_points = n_grid if grid is None else np.size(grid)
    cells = n_probes * steps  # the Gaussian kernel's temporary: n_grid x n_probes x steps
    check_alloc(f"the density's kernel for {n_points} grid points", 8 * n_points * cells,
                f"use fewer points (n_grid or len(grid) at most {memory_limit() // (8 * cells)})")
    matvec, dim = hessian_operator(objective, x, wrt)
    steps = min(steps, dim)
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    with progress_bar(progress, n_probes, "spectral_density", "probe") as update:
        for _ in range(n_probes):
            alpha, beta = _lanczos_tridiagonal(matvec, rng.choice([-1.0, 1.0], size=dim),
                                               steps)
            theta, U = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
            pad = steps - theta.size  # early breakdown: zero-weight padding
            nodes.append(np.r_[theta, np.full(pad, theta[-1])])
            weights.append(np.r_[U[0] ** 2, np.zeros(pad)])
            update(1)
    nodes, weights = np.array(nodes), np.array(weights)
    lo, hi = nodes.min(), nodes.max()
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    sigma = 0.01 * span if sigma is None else sigma
    grid = (np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid) if grid is None
            else as_float_array("grid", grid, ndim=1, dtype=np.dtype(np.float64)))
    kern = np.exp(-0.5 * ((grid[:, None, None] - nodes[None]) / sigma) ** 2)
    density = (kern * weights[None]).sum(axis=(1, 2)) / (n_probes * sigma * np.sqrt(2 * np.pi))
    return SpectralDensity(nodes, weights, grid, density, sigma, dim)
