"""The demo's checks and report: each claim of the paper as a verdict on the recomputed
numbers (:mod:`.paper`), and ``report.md`` written from them."""

from __future__ import annotations

import numpy as np

from . import paper


def checks(s: dict) -> dict:
    """Each claim of the paper, as recomputed: True when it holds."""
    ex = s["example1"]
    b = s["figure1"]["regularized"]["spurious_minima"]
    c = s["figure1"]["constrained"]["spurious_minima"]
    esc = s["escape"]
    t4 = s["theorem4"]
    return {
        "Example 1: zero gradient and Hessian eigenvalues +-eps at (0, -1/eps)":
            all(max(abs(g) for g in r["grad"]) == 0 and
                np.allclose(r["eigenvalues"], [-r["eps"], r["eps"]], rtol=1e-9) for r in ex),
        "Example 1: F = 1/2 > 0 = inf F_lin, an eps-SOPSP for every eps, with mu2 proven on "
        "Remark 3's box [-2/eps, 2/eps]^2":
            all(r["F"] == 0.5 and abs(r["F_lin_star"]) < 1e-12 and r["is_sopsp"] is True
                and r["mu2_source"] == "estimated (proven bound)" for r in ex),
        "Figure 1(b): a spurious local minimum near (-1, -1.6)":
            any(np.hypot(m["w"] + 1, m["v"] + 1.6) < 0.15 for m in b),
        "Figure 1(c): a spurious local minimum in the bottom-left quadrant":
            any(m["w"] < 0 and m["v"] < 0 for m in c),
        "Saddle escape: plain GD stays at the saddle, PGD reaches F < 1e-8":
            s["escape_trajectory"]["gd_final_F"] == 0.5 and
            s["escape_trajectory"]["pgd_final_F"] < 1e-8,
        "Saddle escape: at every eps at least 1 - delta = 90% of the PGD runs escape (Jin et "
        "al.: with probability 1 - delta), in ~1/eps iterations (slope <= -0.8)":
            all(r["escaped_fraction"] >= 0.9 for r in esc["rows"]) and esc["slope"] <= -0.8,
        "Second order (find_sopsp): a certified eps-SOPSP from every saddle, Example 1's in "
        "at most 10 iterations, in fewer iterations than PGD at every eps":
            all(r[f"{m}_certified"] and r[f"{m}_iter"] < r["pgd_iter"]
                for r in s["second_order"]["example1"] + s["second_order"]["real"]
                for m in ("newton-nc", "cubic"))
            and all(r[f"{m}_iter"] <= 10 for r in s["second_order"]["example1"]
                    for m in ("newton-nc", "cubic")),
        "Theorem 4: the best-iterate gap shrinks at least like T^-0.4":
            all(v["slope"] <= -0.4 for v in t4.values()),
        "Theorem 4 with explicit constants (docs/theorem4.md): in every run some evaluated "
        "iterate z_t, t <= T, has a gap below 2.5 b l / sqrt(T) + r sqrt(2 log(1/delta) / T)":
            all(v["bound_witnessed"] and v["bounds_exact"] for v in t4.values()),
        "Lemma 1 and Theorem 1 hold at the trained residual networks":
            all(r["lemma1_holds"] and r["theorem1_holds"] for r in s["resnet_vs_linear"]),
        "ResNet vs linear: every best linear predictor is exact (converged), an infimum where "
        "(separable data) it is not attained, with Theorem 3's comparison over a ball there "
        "(one output)":
            all(r["baseline_converged"] and (r["attained"] or "F_lin_ball" in r
                                             or r.get("classes"))
                for r in s["resnet_vs_linear"]),
    }


def _second_order_section(so: dict) -> list[str]:
    """Section 3b: PGD against find_sopsp, iterations and wall time to a certificate."""
    L = ["## 3b. Finding certified eps-SOPSPs: PGD against a second-order method", "",
         "![second order vs PGD](second_order.png)", "",
         f"From Example 1's saddle `(0, -1/c)` (target eps = c^2/4) and from the exact "
         f"Theorem 2 saddle of {so['data']} (logistic loss, {so['width']} random tanh "
         f"features, `w = 0`, `V = -s g^T / ||g||^2`, F = {so['F_saddle']:.4f}), to a point "
         f"`check_sopsp(..., mu2={so['mu2']:g})` certifies (threshold -sqrt(mu2 eps)).  PGD: "
         "Jin et al.'s constants with rho = mu2 and ell = 1 (Example 1) or estimated at the "
         f"saddle ({so['ell']:.3g}), stopped at its first certified iterate (checked every "
         "100 iterations).  find_sopsp: `resnet_core.second_order` (docs/second_order.md).  "
         "Wall times include the final certificate.", "",
         "| problem | eps | PGD: iterations / s | newton-nc: iterations / s | "
         "cubic: iterations / s | all certified |", "|---|---|---|---|---|---|"]
    for key, name in (("example1", "Example 1"), ("real", so["data"])):
        for r in so[key]:
            label = f"{name} (c = {r['c']:g})" if "c" in r else name
            ok = all(r[f"{m}_certified"] for m in ("pgd", "newton-nc", "cubic"))
            L.append(f"| {label} | {r['eps']:.3g} | {r['pgd_iter']} / {r['pgd_time']:.3f} | "
                     f"{r['newton-nc_iter']} / {r['newton-nc_time']:.3f} | "
                     f"{r['cubic_iter']} / {r['cubic_time']:.3f} | {'yes' if ok else 'no'} |")
    return L + [""]


def markdown(s: dict, verdicts: dict) -> str:
    """``report.md``: the verdicts of :func:`checks`, then each section's numbers."""
    L = ["# resnet-core: Shamir (2018), \"Are ResNets Provably Better than Linear Predictors?\","
         " reproduced", "", f"Generated {s['date']} in {s['seconds']:.0f} s "
         f"({'quick' if s['quick'] else 'full'} run, seed {s['seed']}).", "", "## Checks", ""]
    L += [f"- {'holds' if ok else '**does not hold**'}: {name}" for name, ok in verdicts.items()]
    L += ["", "## 1. Example 1: an eps-SOPSP worse than the linear predictor", "",
          "`F(w, v) = (w (1 + eps v) - 1)^2 / 2` at `(0, -1/eps)`, certified by "
          "`check_sopsp(..., mu2_region=Box(-2/eps, 2/eps))`: `mu2` is the Hessian's "
          "Lipschitz constant on Remark 3's box, a proven bound here (the objective is a "
          "quartic; see `resnet_core.lipschitz`).", "",
          "| eps | gradient | Hessian | eigenvalues | F | inf F_lin | mu2 | threshold | "
          "eps-SOPSP |", "|---|---|---|---|---|---|---|---|---|"]
    for r in s["example1"]:
        H = r["hessian"]
        L.append(f"| {r['eps']:g} | ({r['grad'][0]:g}, {r['grad'][1]:g}) | "
                 f"[[{H[0][0]:.3g}, {H[0][1]:.3g}], [{H[1][0]:.3g}, {H[1][1]:.3g}]] | "
                 f"{r['eigenvalues'][0]:.6g}, {r['eigenvalues'][1]:.6g} | {r['F']:g} | "
                 f"{r['F_lin_star']:.2g} | {r['mu2']:.4g} | {r['threshold']:.4g} | "
                 f"{r['is_sopsp']} |")
    L += ["", "## 2. Figure 1: norms and regularisation", "",
          "![Figure 1](figure1.png)", "",
          "Stationary points by multi-start second-order descent and Newton's method (from "
          f"a {paper.FIGURE1_GRID} x {paper.FIGURE1_GRID} lattice of starts in "
          f"[-{paper.FIGURE1_BOX:g}, {paper.FIGURE1_BOX:g}]^2), each certified by its "
          "gradient and Hessian; boundary minima of (c) by the KKT conditions.", "",
          "| panel | saddles | spurious local minima (w, v, F) |", "|---|---|---|"]
    for key in ("plain", "regularized", "constrained"):
        f = s["figure1"][key]
        sad = "; ".join(f"({p['z'][0]:.3f}, {p['z'][1]:.3f})" for p in f["saddles"]) or "-"
        spu = "; ".join(f"({m['w']:.3f}, {m['v']:.3f}, {m['F']:.4f}, {m['where']})"
                        for m in f["spurious_minima"]) or "none"
        title = f["title"].replace("|", "\\|")  # a norm's bars inside a table cell
        L.append(f"| ({f['panel']}) {title} | {sad} | {spu} |")
    t = s["escape_trajectory"]
    L += ["", "The paper's text places the saddle of F at (1, -1/eps); the gradient vanishes "
          "at (0, -1/eps) (Example 1's point), which is where the search finds it.", "",
          "## 3. Escaping the saddle", "", "![trajectories](escape_trajectory.png)", "",
          f"From (0, {t['start'][1]:g}) (eps = {t['eps']:g}): plain GD stays at F = "
          f"{t['gd_final_F']:g}; PGD (Jin et al. 2017, constants from the paper's formulas "
          f"with target eps^2, ell = rho = 1) escapes at iteration {t['pgd_escape_iter']} and "
          f"ends at F = {t['pgd_final_F']:.2g}.", "", "![escape vs eps](escape_vs_eps.png)", "",
          "| eps | runs escaped | escape iterations: q25 / median / q75 | t_thres |",
          "|---|---|---|---|"]
    for r in s["escape"]["rows"]:
        L.append(f"| {r['eps']:g} | {100 * r['escaped_fraction']:.1f}% | {r['q25']:.0f} / "
                 f"{r['median']:.0f} / {r['q75']:.0f} | {r['t_thres']} |")
    L += ["", f"Fitted log-log slope: {s['escape']['slope']:.2f} (escape time ~ "
          "log(1/r) / (eta eps)).  A run that stops at the saddle is one whose perturbation "
          "did not decrease F by f_thres within t_thres steps: Algorithm 2 then returns the "
          "saddle, which its guarantee allows with probability delta = 0.1.", ""]
    L += _second_order_section(s["second_order"])
    L += ["## 4. Theorem 4 on real data", "",
          "![Theorem 4](theorem4.png)", "",
          "Projected SGD (one sample per step, step b / (l sqrt(T))) against Theorem 4 with "
          "the constants derived in `docs/theorem4.md`: with probability 1 - delta the mean "
          "gap over the iterates z_1..z_T, hence the best of them, is at most "
          "`regret + deviation = 2.5 b l / sqrt(T) + r sqrt(2 log(1/delta) / T)` (l: bound on "
          "the per-sample gradient in (w, v) on the ball, r: bound on the loss there).  F is "
          "evaluated every T/50 steps: the witness gap is the best evaluated iterate among "
          "z_1..z_T; below the bound it exhibits the iterate the theorem promises.  The mean "
          "gap over the evaluated iterates only estimates the theorem's average.", "",
          "| data | loss | n x d | T | median best-iterate gap | median mean gap (evaluated) "
          "| largest witness gap | regret 2.5 b l/sqrt(T) | deviation r sqrt(2 log(1/delta)/T) "
          "| explicit bound | O(.) expression (b l + r sqrt(log 1/delta))/sqrt(T) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in s["theorem4"].items():
        for r in c["rows"]:
            L.append(f"| {name} | {c['loss']} | {c['n']} x {c['d']} | {r['T']} | "
                     f"{r['gap']:.4g} | {r['gap_mean']:.4g} | {r['gap_witness_max']:.4g} | "
                     f"{r['regret_term']:.3g} | {r['deviation_term']:.3g} | {r['rhs']:.3g} | "
                     f"{r['rhs_order']:.3g} |")
    L.append("")
    for n, c in s["theorem4"].items():
        kind = "bounds" if c["bounds_exact"] else "estimates, not bounds"
        L.append(f"- {n}: l = {c['lipschitz']:.4g}, r = {c['loss_bound']:.4g} ({kind}) at "
                 f"b = {c['b']:g}, delta = {c['delta']:g}; fitted slope {c['slope']:.2f} "
                 f"(positive gaps); F_lin* over ||u|| <= {c['b']:g} = {c['F_lin_star']:.4f}")
    L += ["", "A negative gap means the network beat the best linear predictor of norm at "
          "most b, which the theorem allows; the slope is fitted to the positive gaps."]
    L += ["", "## 5. ResNet vs linear on real data", "",
          f"Residual network `w^T (x + V f(x))`, MLP widths {paper.RESNET_WIDTHS}, tanh, "
          "trained by perturbed GD over all parameters; the point is then certified over "
          "`(w, V)`, with `mu2` estimated (sampled) on the ball of radius "
          f"{paper.RESNET_MU2_BALL:g} around it (a lower estimate: it decides True or "
          "nothing; False needs a proven upper bound).  `inf F_lin` is exact "
          "(`linear_baseline`: a linear program decides separability).  Where it is not "
          "attained (separable or quasi-separable data: Corollary 1 then says a local "
          "minimum has F <= inf F_lin), Theorem 3's comparison is added: the minimum of "
          "F_lin over ||u|| <= ||w||.", "",
          "Rows with c classes (Remark 2) have the output layer `W (x + V f(x))`, `W` c x d, "
          "the cross-entropy, and are trained by L-BFGS on the vector objective (at most "
          f"{paper.RESNET_LBFGS_ITER} iterations); the certificate is over `(W, V)`: "
          "`lambda_min` exact from the reduced eigenproblem "
          "(docs/vector_outputs_certificates.md), Lemma 1 and Theorem 1 in their c-output "
          "form (`||grad|| >= (F - F_lin(W*)) / ||G||_F`, `W` of full row rank).  Theorem 2 "
          "has no known analogue for c > 1 (the paper leaves it open), and Theorem 3 is "
          "stated for one output: nothing is computed in their place.", "",
          "| data | loss | n x d | iterations | inf F_lin | attained | F (ResNet) | "
          "gap +- s.e. | min F_lin, norm(u) <= norm(w) | gap to it | grad norm | "
          f"lambda_min | mu2 | eps-SOPSP (eps {paper.RESNET_EPS:g}) |", "|" + "---|" * 14]
    for r in s["resnet_vs_linear"]:
        ball = (f"{r['F_lin_ball']:.4f} (norm(w) = {r['radius']:.3g}) | "
                f"{r['gap_ball']:.4f} +- {r['gap_ball_se']:.4f}" if "radius" in r else "- | -")
        data = r["data"] + (f" ({r['classes']} classes)" if r.get("classes") else "")
        iters = f"{r['iterations']}" + (" (L-BFGS)" if r.get("trainer") == "L-BFGS" else "")
        L.append(f"| {data} | {r['loss']} | {r['n']} x {r['d']} | {iters} | "
                 f"{r['F_lin_star']:.4f} | {'yes' if r['attained'] else 'no'} | {r['F']:.4f} | "
                 f"{r['gap']:.4f} +- {r['gap_se']:.4f} | {ball} | {r['grad_norm']:.2e} | "
                 f"{r['lambda_min']:.2e} | {r['mu2']:.3g} | {r['is_sopsp']} |")
    return "\n".join(L) + "\n"
