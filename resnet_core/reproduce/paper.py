"""The paper's examples and claims, recomputed: the numbers behind ``resnet-core demo``.

Each function returns plain data (dicts of floats, lists and arrays); the figures are drawn
by :mod:`.plots`, the checks and the report written by :mod:`.report`.  The settings of the
experiments are the constants below (the report states them).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import minimize, root

from .. import studies, theory
from ..certify import check_sopsp
from ..lipschitz import Ball, Box
from ..objective import FeatureObjective, Objective
from ..optim import (estimate_ell_rho, gradient_descent, perturbed_gd,
                     pgd_constants, projected_sgd)
from ..saddles import theorem2_stationary_point
from ..second_order import find_sopsp, pgd_until_certified
from . import datasets

#: Example 1's table: the curvatures ``eps``.
EXAMPLE1_EPS = (1.0, 0.1, 0.01, 0.001)
#: Figure 1: the stationary points are searched from a ``GRID x GRID`` lattice of starts in
#: ``[-BOX, BOX]^2`` (the plotted window).
FIGURE1_GRID = 9
FIGURE1_BOX = 3.0
#: Theorem 4: data set -> loss; SGD seeds, the ball ``||(w, v)|| <= b``, the radius of the
#: MLP's parameters, its widths, and the theorem's ``delta``.
THEOREM4_DATA = {"breast_cancer": "logistic", "diabetes": "squared"}
THEOREM4_SEEDS = (0, 1, 2)
THEOREM4_B = 5.0
THEOREM4_THETA_RADIUS = 10.0
THEOREM4_WIDTHS = (16,)
THEOREM4_DELTA = 0.05
#: ResNet vs linear: data set -> loss; the MLP's widths, the certificate's ``eps`` and the
#: radius of the ball around the trained point on which ``mu2`` is estimated.
RESNET_DATA = {"breast_cancer": "logistic", "diabetes": "squared", "digits_binary": "logistic"}
RESNET_WIDTHS = (16, 16)
RESNET_EPS = 1e-2
RESNET_MU2_BALL = 0.1
#: ResNet vs linear with c outputs (Remark 2): data set -> loss; trained by L-BFGS on the
#: vector objective (``scipy.optimize.minimize(jac=True)`` on ``fun_and_grad``) for at most
#: this many iterations, then certified over ``(W, V)`` like the scalar rows.
RESNET_VECTOR_DATA = {"digits": "cross_entropy"}
RESNET_LBFGS_ITER = 200
#: Second order vs PGD: the target's mu2 (threshold -sqrt(mu2 eps)); the random tanh
#: features of the real data set (width, seed).  Example 1 at curvature c has target
#: eps = c^2 / 4 (threshold -c/2, so its saddle does not pass).
SECOND_ORDER_MU2 = 1.0
SECOND_ORDER_DATA = "breast_cancer"
SECOND_ORDER_FEATURES = (8, 0)


# -- Example 1 ----------------------------------------------------------------------------

def example1_table() -> list[dict]:
    """At ``(0, -1/eps)`` for each ``eps`` of :data:`EXAMPLE1_EPS`: gradient, Hessian, its
    eigenvalues, ``F``, ``F_lin*`` and the package's eps-SOPSP verdict, with ``mu2`` (the
    Hessian's Lipschitz constant) bounded on Remark 3's box ``[-2/eps, 2/eps]^2`` by
    :func:`resnet_core.lipschitz.estimate_hessian_lipschitz` (a proven bound for this
    quartic)."""
    rows = []
    for eps in EXAMPLE1_EPS:
        obj, z0 = theory.example1(eps)
        box = Box(np.full(2, -2.0 / eps), np.full(2, 2.0 / eps))
        rep = check_sopsp(obj, z0, eps=eps, mu2_region=box)
        H = obj.hessian(z0)
        rows.append({"eps": eps, "point": z0.tolist(), "grad": obj.grad(z0).tolist(),
                     "hessian": H.tolist(), "eigenvalues": np.linalg.eigvalsh(H).tolist(),
                     "F": rep.F, "F_lin_star": rep.F_lin_star, "lambda_min": rep.lambda_min,
                     "is_sopsp": rep.is_sopsp, "threshold": rep.threshold, "mu2": rep.mu2,
                     "mu2_source": rep.mu2_source, "mu2_region": rep.mu2_region["description"]})
    return rows


# -- Figure 1 -------------------------------------------------------------------------------

def _dedupe(points):
    """The points, each kept once (two closer than 1e-4 are the same)."""
    out = []
    for p in points:
        if all(np.linalg.norm(np.asarray(p["z"]) - np.asarray(q["z"])) > 1e-4 for q in out):
            out.append(p)
    return out


def _interior_stationary(panel, starts):
    """Stationary points from each start: second-order descent (trust-exact, which finds
    minima) and Newton's method on ``grad F = 0`` (which also finds saddles); each point is
    certified by ``||grad|| <= 1e-8`` and classified by the Hessian's eigenvalues."""
    found = []
    for z0 in starts:
        candidates = [minimize(panel.fun, z0, jac=panel.grad, hess=panel.hessian,
                               method="trust-exact", options={"gtol": 1e-10}).x,
                      root(panel.grad, z0, jac=panel.hessian, method="hybr").x]
        for z in candidates:
            if not panel.feasible(z) or np.linalg.norm(panel.grad(z)) > 1e-8:
                continue
            ev = np.linalg.eigvalsh(panel.hessian(z))
            kind = "minimum" if ev[0] > -1e-9 else ("saddle" if ev[-1] > 1e-9 else "maximum")
            found.append({"z": z.tolist(), "F": float(panel.fun(z)), "kind": kind,
                          "grad_norm": float(np.linalg.norm(panel.grad(z))),
                          "eigenvalues": ev.tolist(), "where": "interior"})
    return found


def _boundary_minima(panel):
    """Local minima of ``F`` on the circle ``||z|| = radius`` that are local minima of the
    constrained problem: a minimum of ``t -> F(R cos t, R sin t)`` (started from those among
    720 angles) with KKT multiplier ``mu = -grad F . z / (2 R^2) >= 0`` (``F`` decreases
    outwards)."""
    R = panel.radius
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    z = R * np.stack([np.cos(t), np.sin(t)], axis=-1)
    f = panel.fun(z)
    found = []
    for i in np.flatnonzero((f <= np.roll(f, 1)) & (f <= np.roll(f, -1))):
        res = minimize(lambda s: panel.fun(R * np.array([np.cos(s[0]), np.sin(s[0])])),
                       [t[i]], method="Nelder-Mead",
                       options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 2000})
        s = res.x[0]
        zb = R * np.array([np.cos(s), np.sin(s)])
        tangent = np.array([-np.sin(s), np.cos(s)])
        g = panel.grad(zb)
        mu = -float(g @ zb) / (2 * R * R)
        # d2/ds2 F(z(s)) / R^2 = t^T H t - grad F . z / R^2  (z'' = -z on the circle)
        curv = float(tangent @ panel.hessian(zb) @ tangent - (g @ zb) / R**2)
        if mu >= 0 and curv > 0:
            found.append({"z": zb.tolist(), "F": float(panel.fun(zb)), "kind": "minimum",
                          "grad_norm": float(np.linalg.norm(g)), "multiplier": mu,
                          "tangential_curvature": curv,
                          "tangential_grad": float(abs(g @ tangent)), "where": "boundary"})
    return found


def figure1_points(panel_name: str) -> dict:
    """Stationary points of a Figure 1 panel by multi-start second-order descent from the
    ``FIGURE1_GRID x FIGURE1_GRID`` lattice of starts in ``[-FIGURE1_BOX, FIGURE1_BOX]^2``
    (and, for panel c, the boundary minima), classified and certified; spurious minima are
    local minima whose value exceeds the panel's smallest by more than 1e-6."""
    panel = theory.figure1(panel_name)
    s = np.linspace(-FIGURE1_BOX, FIGURE1_BOX, FIGURE1_GRID)
    starts = [np.array([a, b]) for a in s for b in s]
    if panel.radius is not None:
        starts = [z for z in starts if panel.feasible(z)]
    pts = _interior_stationary(panel, starts)
    if panel.radius is not None:
        pts += _boundary_minima(panel)
    pts = _dedupe(pts)
    minima = [p for p in pts if p["kind"] == "minimum"]
    best_point = min(minima, key=lambda p: p["F"])
    best = best_point["F"]
    spurious = [dict(p) for p in minima if p["F"] > best + 1e-6]
    return {"panel": panel_name, "title": panel.title, "reg": panel.reg, "radius": panel.radius,
            "global_min_value": best, "global_min": best_point["z"],
            "saddles": [p for p in pts if p["kind"] == "saddle"],
            "spurious_minima": [{"w": p["z"][0], "v": p["z"][1], "F": p["F"],
                                 "where": p["where"], "grad_norm": p["grad_norm"]}
                                for p in spurious],
            "n_global_minima_found": sum(1 for p in minima if p["F"] <= best + 1e-6)}


# -- saddle escape --------------------------------------------------------------------------

def escape_constants(eps: float) -> dict:
    """PGD constants for Example 1 at curvature ``eps``: Jin et al.'s formulas with target
    ``eps_pgd = eps^2`` (so that ``sqrt(rho eps_pgd) = eps``), ``ell = rho = 1``,
    ``Delta_f = 1/2``."""
    return pgd_constants(eps=eps**2, ell=1.0, rho=1.0, c=1.0, delta=0.1, delta_f=0.5, dim=2)


def escape_trajectories(eps: float, seed: int) -> dict:
    """GD and PGD (at most 3000 iterations) from the saddle ``(0, -1/eps)`` of Example 1,
    with their histories."""
    obj, z0 = theory.example1(eps)
    k = escape_constants(eps)
    path = []
    pgd = perturbed_gd(obj, z0, eps=eps**2, ell=1.0, rho=1.0, delta_f=0.5, max_iter=3000,
                       seed=seed, record_every=1, callback=lambda info: path.append(info.x),
                       t_thres=k["t_thres"])
    gd = gradient_descent(obj, z0, eta=k["eta"], eps=-1.0, max_iter=max(pgd.nit, 1),
                          record_every=1)
    return {"eps": eps, "start": z0.tolist(), "pgd_path": np.array([z0] + path).tolist(),
            "pgd_fun": pgd.history["fun"].tolist(), "gd_fun": gd.history["fun"].tolist(),
            "pgd_final": pgd.x.tolist(), "pgd_final_F": pgd.fun, "gd_final": gd.x.tolist(),
            "gd_final_F": gd.fun, "pgd_escape_iter": pgd.escape_iter, "constants": k}


def escape_vs_eps(eps_values, n_runs: int, seed: int, progress=None) -> dict:
    """Batched PGD studies from the saddle for each ``eps``: escape iterations (first with
    ``F <= 1/2 - 0.05``) as median and quartiles over ``n_runs`` seeds, and the fitted
    log-log slope against ``eps``."""
    rows = []
    for eps in eps_values:
        obj, z0 = theory.example1(eps)
        k = escape_constants(eps)
        st = studies.escape(obj, z0, n_runs=n_runs, seed=seed, eps=eps**2, ell=1.0, rho=1.0,
                            delta_f=0.5, f_escape=0.05, max_iter=4 * k["t_thres"],
                            t_thres=k["t_thres"])
        it = st.escape_iter[st.escaped]
        q = np.percentile(it, [25, 50, 75]) if it.size else [np.nan] * 3
        rows.append({"eps": eps, "escaped_fraction": float(st.escaped.mean()),
                     "q25": float(q[0]), "median": float(q[1]), "q75": float(q[2]),
                     "F_at_stop_max": float(st.final_F.max()), "t_thres": k["t_thres"]})
        if progress is not None:
            progress.update(1)
    ok = [r for r in rows if np.isfinite(r["median"])]
    slope = fit_slope([r["eps"] for r in ok], [r["median"] for r in ok])
    return {"rows": rows, "slope": slope, "n_runs": n_runs}


# -- second order vs PGD -----------------------------------------------------------------

def _race(fo, z0, eps, ell) -> dict:
    """PGD (stopped at its first certified checked iterate) and find_sopsp (both methods)
    from ``z0`` to a certified eps-SOPSP: iterations, wall time and the verdicts (after an
    untimed short run of each: numba's compilation is not timed)."""
    pgd_until_certified(fo, z0, eps, mu2=SECOND_ORDER_MU2, ell=ell, max_iter=200)
    for method in ("newton-nc", "cubic"):
        find_sopsp(fo, z0, eps, mu2=SECOND_ORDER_MU2, method=method, max_iter=1)
    t = time.perf_counter()
    pgd, rep = pgd_until_certified(fo, z0, eps, mu2=SECOND_ORDER_MU2, ell=ell)
    row = {"eps": eps, "pgd_iter": int(pgd.nit), "pgd_time": time.perf_counter() - t,
           "pgd_certified": rep.is_sopsp}
    for method in ("newton-nc", "cubic"):
        t = time.perf_counter()
        res = find_sopsp(fo, z0, eps, mu2=SECOND_ORDER_MU2, method=method)
        row.update({f"{method}_iter": int(res.nit), f"{method}_time": time.perf_counter() - t,
                    f"{method}_certified": res.certificate.is_sopsp})
    return row


def second_order_vs_pgd(curvatures, eps_values, progress=None) -> dict:
    """Iterations and wall time to a certified eps-SOPSP, PGD against
    :func:`resnet_core.second_order.find_sopsp`: from Example 1's saddle for each curvature
    ``c`` (target ``eps = c^2 / 4``, PGD with ``ell = 1`` as the escape studies), and from
    the exact Theorem 2 saddle of the real data set (logistic loss, random tanh features,
    residual head; ``ell`` estimated there) for each ``eps``."""
    ex = []
    for c in curvatures:
        obj, z0 = theory.example1(c)
        ex.append({"c": c, **_race(obj, z0, c**2 / 4, 1.0)})
        if progress is not None:
            progress.update(1)
    X, y = datasets.load(SECOND_ORDER_DATA)
    width, seed = SECOND_ORDER_FEATURES
    rng = np.random.default_rng(seed)
    Phi = np.tanh(X @ rng.standard_normal((X.shape[1], width)) / np.sqrt(X.shape[1]))
    fo = FeatureObjective(X, Phi, y, loss="logistic")
    z0 = theorem2_stationary_point(fo).x
    ell = estimate_ell_rho(fo, z0, seed=0)[0]
    real = []
    for eps in eps_values:
        real.append(_race(fo, z0, eps, ell))
        if progress is not None:
            progress.update(1)
    return {"example1": ex, "real": real, "data": SECOND_ORDER_DATA, "width": width,
            "mu2": SECOND_ORDER_MU2, "F_saddle": fo.fun(z0), "ell": ell}


# -- Theorem 4 ----------------------------------------------------------------------------

def theorem4_curves(T_values, progress=None) -> dict:
    """Projected SGD on the skip head for each data set and ``T`` (settings: the
    ``THEOREM4_*`` constants), against Theorem 4 with
    explicit constants (``docs/theorem4.md``): the median over seeds of the best-iterate gap
    ``F - min_{||u|| <= b} F_lin(u)`` and of the mean gap over the evaluated iterates (an
    estimate of the theorem's average), the largest witness gap (best evaluated iterate among
    the theorem's ``z_1..z_T``), the bound ``theorem_rhs = 2.5 b l / sqrt(T) +
    r sqrt(2 log(1/delta) / T)`` with its two terms and the constant-free expression, whether
    every run's witness is below the bound, and the fitted log-log slope of the positive
    gaps against ``T``."""
    b, delta = THEOREM4_B, THEOREM4_DELTA
    out = {}
    for name, loss in THEOREM4_DATA.items():
        X, y = datasets.load(name)
        obj = Objective(X, y, loss=loss, widths=THEOREM4_WIDTHS, head="skip")
        x0 = obj.init(0)
        rows = []
        for T in T_values:
            runs = [projected_sgd(obj, x0, T=int(T), radius=b, theta_radius=THEOREM4_THETA_RADIUS,
                                  seed=s, delta=delta) for s in THEOREM4_SEEDS]
            r0 = runs[0]  # the bound depends on the data, b, T and delta, not on the seed
            rows.append({"T": int(T), "gap": float(np.median([r.gap for r in runs])),
                         "gap_mean": float(np.median([r.gap_mean for r in runs])),
                         "gap_witness_max": max(r.gap_witness for r in runs),
                         "F": float(np.median([r.fun for r in runs])),
                         "rhs": r0.theorem_rhs, "regret_term": r0.regret_term,
                         "deviation_term": r0.deviation_term, "rhs_order": r0.theorem_rhs_order,
                         "witnessed": all(r.gap_witness <= r.theorem_rhs and r.success
                                          for r in runs),
                         "max_norm_wv": max(r.max_norm_wv for r in runs)})
            if progress is not None:
                progress.update(1)
        pos = [r for r in rows if r["gap"] > 0]
        slope = fit_slope([r["T"] for r in pos], [r["gap"] for r in pos])
        out[name] = {"loss": loss, "n": int(X.shape[0]), "d": int(X.shape[1]), "b": b,
                     "delta": delta, "lipschitz": r0.lipschitz, "loss_bound": r0.loss_bound,
                     "bounds_exact": bool(r0.lipschitz_is_bound and r0.uniform_weights),
                     "F_lin_star": obj.linear_baseline(radius=b).fun, "rows": rows,
                     "slope": slope, "bound_witnessed": all(r["witnessed"] for r in rows)}
    return out


# -- ResNet vs linear on real data ----------------------------------------------------------

def resnet_vs_linear(max_iter: int, seed: int, progress=None) -> list[dict]:
    """Train the residual network (widths :data:`RESNET_WIDTHS`) on each data set by PGD over
    all parameters and certify the result over ``(w, V)`` at ``eps =`` :data:`RESNET_EPS`:
    ``inf F_lin`` (and whether it is attained), ``F``, the gap with its standard error,
    ``||grad_(w,V)||``, ``lambda_min``, ``mu2`` estimated on the ball of radius
    :data:`RESNET_MU2_BALL` around the point, and the eps-SOPSP verdict.  Where the infimum is not
    attained (separable data) the row adds Theorem 3's comparison: the minimum of ``F_lin``
    over ``||u|| <= ||w||``, the norm the network's output layer has.  Then the data sets of
    :data:`RESNET_VECTOR_DATA` with all their classes (c outputs, ``W`` c x d), trained by
    L-BFGS (:data:`RESNET_LBFGS_ITER` iterations at most) and certified over ``(W, V)``;
    Theorem 3 is stated for one output, so these rows have no ball comparison."""
    widths, eps = RESNET_WIDTHS, RESNET_EPS
    rows = []
    for name, loss in RESNET_DATA.items():
        X, y = datasets.load(name)
        obj = Objective(X, y, loss=loss, widths=widths)
        x0 = obj.init(seed)
        ell, rho = estimate_ell_rho(obj, x0, seed=seed)
        res = perturbed_gd(obj, x0, eps=eps, ell=2 * ell, rho=rho, max_iter=max_iter,
                           seed=seed, record_every=0)
        rows.append(_certified_row(name, obj, x0, res.x, res.nit, "PGD"))
        if progress is not None:
            progress.update(1)
    for name, loss in RESNET_VECTOR_DATA.items():
        X, y = datasets.load(name)
        obj = Objective(X, y, loss=loss, widths=widths)
        x0 = obj.init(seed)
        res = minimize(obj.fun_and_grad, x0, jac=True, method="L-BFGS-B",
                       options={"maxiter": RESNET_LBFGS_ITER})
        rows.append(_certified_row(name, obj, x0, res.x, int(res.nit), "L-BFGS"))
        if progress is not None:
            progress.update(1)
    return rows


def _certified_row(name, obj, x0, x, nit, trainer) -> dict:
    """The certificate of a trained ``x`` over the output layers, as a row of the table."""
    eps = RESNET_EPS
    part = obj.partial(x)
    z = x[:part.n_params]
    rep = check_sopsp(part, z, eps=eps, mu2_region=Ball(z, RESNET_MU2_BALL))
    row = {"data": name, "loss": obj.loss.name, "n": int(obj.n_samples), "d": int(obj.d),
           "classes": obj.n_outputs if obj.n_outputs > 1 else None, "trainer": trainer,
           "widths": list(obj.widths), "iterations": nit, "F_init": obj.fun(x0),
           "F": rep.F, "F_lin_star": rep.F_lin_star, "attained": rep.baseline_attained,
           "baseline_converged": rep.baseline_converged,
           "baseline_message": rep.baseline_message, "gap": rep.gap,
           "gap_se": rep.gap_se, "grad_norm": rep.grad_norm,
           "lambda_min": rep.lambda_min, "lambda_min_error": rep.lambda_min_error,
           "lambda_min_method": rep.method, "mu2": rep.mu2, "mu2_source": rep.mu2_source,
           "threshold": rep.threshold, "is_sopsp": rep.is_sopsp,
           "lemma1_holds": rep.lemma1_holds, "theorem1_holds": rep.theorem1_holds,
           "theorem1_bound": rep.theorem1_bound, "lemma1_note": rep.lemma1_note,
           "theorem2_note": rep.theorem2_note}
    if not rep.baseline_attained and obj.n_outputs == 1:  # Theorem 3 has one output
        r = rep.w_norm
        ball = check_sopsp(part, z, eps=eps, curvature_tol=0.0, radius=r)
        row.update(radius=r, F_lin_ball=ball.F_lin_star, gap_ball=ball.gap,
                   gap_ball_se=ball.gap_se)
    return row


def fit_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) >= 2 else math.nan
