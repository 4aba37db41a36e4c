"""Command line: ``resnet-core demo | certify | bench`` (also ``python -m resnet_core``).

- ``demo``: the paper reproduced and checked, written to a folder as ``report.md``,
  ``summary.json`` and PNG figures.
- ``certify POINT.npz``: the eps-SOPSP report of a point stored in a file (the format of
  :func:`resnet_core.save_point`; nothing missing from it is guessed).  Its exit status is
  the verdict: 0 an eps-SOPSP, 1 not an eps-SOPSP, 2 inconclusive (``lambda_min`` within
  its accuracy of the threshold), 3 unusable input (a bad file, bad values, a usage error),
  with one line on stderr.
- ``bench``: the comparison table of ``benchmarks/compare.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUICK = dict(escape_eps=(1.0, 0.3, 0.1, 0.03, 0.01), escape_runs=64,
             sgd_T=(1000, 3000, 10000), resnet_iter=300)
FULL = dict(escape_eps=(1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001), escape_runs=1024,
            sgd_T=(1000, 10000, 100000, 1000000), resnet_iter=3000)


def _progress(total, desc):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False)


def _checks(s: dict) -> dict:
    """Each claim of the paper, as recomputed: True when it holds."""
    ex = [r for r in s["example1"]]
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
        "Theorem 4: the best-iterate gap shrinks at least like T^-0.4":
            all(v["slope"] <= -0.4 for v in t4.values()),
        "Theorem 4 with explicit constants (docs/theorem4.md): in every run some evaluated "
        "iterate z_t, t <= T, has a gap below 2.5 b l / sqrt(T) + r sqrt(2 log(1/delta) / T)":
            all(v["bound_witnessed"] and v["bounds_exact"] for v in t4.values()),
        "Lemma 1 and Theorem 1 hold at the trained residual networks":
            all(r["lemma1_holds"] and r["theorem1_holds"] for r in s["resnet_vs_linear"]),
        "ResNet vs linear: every best linear predictor is exact (converged), an infimum where "
        "(separable data) it is not attained, with Theorem 3's comparison over a ball there":
            all(r["baseline_converged"] and (r["attained"] or "F_lin_ball" in r)
                for r in s["resnet_vs_linear"]),
    }


def _report(s: dict, checks: dict) -> str:
    L = ["# resnet-core: Shamir (2018), \"Are ResNets Provably Better than Linear Predictors?\","
         " reproduced", "", f"Generated {s['date']} in {s['seconds']:.0f} s "
         f"({'quick' if s['quick'] else 'full'} run, seed {s['seed']}).", "", "## Checks", ""]
    L += [f"- {'holds' if ok else '**does not hold**'}: {name}" for name, ok in checks.items()]
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
          "Stationary points by multi-start second-order descent and Newton's method (81 "
          "starts), each certified by its gradient and Hessian; boundary minima of (c) by "
          "the KKT conditions.", "", "| panel | saddles | spurious local minima (w, v, F) |",
          "|---|---|---|"]
    for key in ("plain", "regularized", "constrained"):
        f = s["figure1"][key]
        sad = "; ".join(f"({p['z'][0]:.3f}, {p['z'][1]:.3f})" for p in f["saddles"]) or "-"
        spu = "; ".join(f"({m['w']:.3f}, {m['v']:.3f}, {m['F']:.4f}, {m['where']})"
                        for m in f["spurious_minima"]) or "none"
        L.append(f"| ({f['panel']}) {f['title']} | {sad} | {spu} |")
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
          "saddle, which its guarantee allows with probability delta = 0.1.", "",
          "## 4. Theorem 4 on real data", "",
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
          "Residual network `w^T (x + V f(x))`, MLP widths (16, 16), tanh, trained by perturbed "
          "GD over all parameters; the point is then certified over `(w, V)`, with `mu2` "
          "estimated (sampled) on the ball of radius 0.1 around it.  `inf F_lin` is exact "
          "(`linear_baseline`: a linear program decides separability).  Where it is not "
          "attained (separable data: Corollary 1 then says a local minimum has F <= 0), "
          "Theorem 3's comparison is added: the minimum of F_lin over ||u|| <= ||w||.", "",
          "| data | loss | n x d | iterations | inf F_lin | attained | F (ResNet) | "
          "gap +- s.e. | min F_lin, ||u|| <= ||w|| | gap to it | grad norm | lambda_min | mu2 | "
          "eps-SOPSP (eps 0.01) |", "|" + "---|" * 14]
    for r in s["resnet_vs_linear"]:
        ball = (f"{r['F_lin_ball']:.4f} (||w|| = {r['radius']:.3g}) | "
                f"{r['gap_ball']:.4f} +- {r['gap_ball_se']:.4f}" if "radius" in r else "- | -")
        L.append(f"| {r['data']} | {r['loss']} | {r['n']} x {r['d']} | {r['iterations']} | "
                 f"{r['F_lin_star']:.4f} | {'yes' if r['attained'] else 'no'} | {r['F']:.4f} | "
                 f"{r['gap']:.4f} +- {r['gap_se']:.4f} | {ball} | {r['grad_norm']:.2e} | "
                 f"{r['lambda_min']:.2e} | {r['mu2']:.3g} | {r['is_sopsp']} |")
    return "\n".join(L) + "\n"


def run_demo(out: Path, quick: bool = False, seed: int = 0, echo=print) -> dict:
    """Compute everything, write ``report.md``, ``summary.json`` and the figures to ``out``;
    return the summary (with its ``checks``)."""
    from . import paper, plots

    cfg = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    s = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "seed": seed, "config": cfg}
    steps = _progress(5 + len(cfg["escape_eps"]) + 2 * len(cfg["sgd_T"]) + 3, "demo")
    s["example1"] = paper.example1_table()
    steps.update(1)
    names = {"a": "plain", "b": "regularized", "c": "constrained"}
    s["figure1"] = {names[p]: paper.figure1_points(p) for p in "abc"}
    plots.figure1([s["figure1"][k] for k in ("plain", "regularized", "constrained")],
                  out / "figure1.png")
    steps.update(1)
    s["escape_trajectory"] = paper.escape_trajectories(0.1, seed=seed)
    plots.escape_trajectory(s["escape_trajectory"], out / "escape_trajectory.png")
    steps.update(1)
    s["escape"] = paper.escape_vs_eps(cfg["escape_eps"], cfg["escape_runs"], seed=seed,
                                      progress=steps)
    plots.escape_vs_eps(s["escape"], out / "escape_vs_eps.png")
    s["theorem4"] = paper.theorem4_curves(cfg["sgd_T"], progress=steps)
    plots.theorem4(s["theorem4"], out / "theorem4.png")
    s["resnet_vs_linear"] = paper.resnet_vs_linear(cfg["resnet_iter"], seed=seed, progress=steps)
    steps.close()
    s["seconds"] = time.perf_counter() - start
    checks = _checks(s)
    s["checks"] = checks
    (out / "summary.json").write_text(json.dumps(s, indent=1, default=float))
    (out / "report.md").write_text(_report(s, checks))
    echo(f"resnet-core demo: report written to {out / 'report.md'} "
         f"({s['seconds']:.0f} s; figures and summary.json beside it)")
    for name, ok in checks.items():
        echo(f"  {'holds' if ok else 'DOES NOT HOLD'}: {name}")
    return s


# Exit statuses of ``certify``: the verdict, or 3 when there is none to give.
CERTIFY_EXIT = {True: 0, False: 1, None: 2}
EXIT_UNUSABLE = 3
CERTIFY_EPILOG = """exit status: 0 = an eps-SOPSP, 1 = not an eps-SOPSP, 2 = inconclusive
(lambda_min within its accuracy of the threshold -sqrt(mu2 eps)), 3 = unusable input
(missing or damaged file, a missing or bad key, a usage error; one line on stderr).

The file is a .npz archive as written by resnet_core.save_point: X, y, loss, head, and
either params, widths, activation, bias, feature_bias (an MLP's parameters) or Phi, w and V (or v, skip
head) (features given); optionally sample_weight.  Nothing missing is guessed."""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with status 3 (argparse's 2 is certify's "inconclusive")."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE, f"{self.prog}: error: {message}\n")


def _problem_rows(meta: dict, path: str) -> list:
    """The header of ``certify``'s report: what problem the file describes."""
    mlp = meta["kind"] == "Objective"
    rows = [("point file", f"{path} ({meta['kind']}: "
                           f"{'MLP parameters' if mlp else 'features given'})"),
            ("loss", meta["loss"])]
    if mlp:
        rows += [("activation", meta["activation"]),
                 ("widths", ", ".join(str(h) for h in meta["widths"])),
                 ("bias", "yes" if meta["bias"] else "no"),
                 ("feature bias", "yes (Remark 1)" if meta["feature_bias"] else "no")]
    else:
        rows.append(("features", f"given (k = {meta['k']})"))
    rows += [("head", meta["head"]),
             ("n / d / k", f"{meta['n']} / {meta['d']} / {meta['k']}"),
             ("sample weights", "given" if meta["weighted"] else "uniform")]
    return rows


def _certify(path: str, eps: float, mu2: float | None, mu2_ball: float | None,
             baseline_radius: float | None, as_json: bool) -> int:
    """``resnet-core certify``: the report, and the verdict as the exit status."""
    from .certify import check_sopsp
    from .lipschitz import Ball
    from .pointfile import PointFileError, load_point

    try:
        obj, x, meta = load_point(path)
        kw = {"mu2": mu2, "baseline_radius": baseline_radius}
        if mu2_ball is not None:
            part = obj.partial(x) if hasattr(obj, "partial") else obj
            kw["mu2_region"] = Ball(np.asarray(x, dtype=np.float64)[:part.n_params], mu2_ball)
        report = check_sopsp(obj, x, eps=eps, **kw)
    except (ValueError, TypeError, MemoryError) as err:
        reason = err.reason if isinstance(err, PointFileError) else str(err) or type(err).__name__
        print(f"resnet-core certify: {path}: {' '.join(reason.split())}", file=sys.stderr)
        return EXIT_UNUSABLE
    if as_json:
        print(json.dumps({**report.to_dict(), "problem": {"file": path, **meta}}, indent=1))
    else:
        rows = _problem_rows(meta, path)
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n")
        print(report)
    return CERTIFY_EXIT[report.is_sopsp]


def main(argv=None) -> int:
    parser = _Parser(prog="resnet-core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="reproduce and check the paper; write a report")
    p.add_argument("--out", default="resnet-core-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="small grids (under a minute)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("certify", help="eps-SOPSP report of a point stored in a .npz file "
                       "(exit status: 0 yes, 1 no, 2 inconclusive, 3 unusable input)",
                       epilog=CERTIFY_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a point file written by resnet_core.save_point")
    p.add_argument("--eps", type=float, default=1e-2, help="gradient tolerance (default 0.01)")
    p.add_argument("--mu2", type=float, default=None,
                   help="Hessian Lipschitz constant: curvature threshold -sqrt(mu2 eps) "
                        "(default: not given; only lambda_min >= 0 then decides the "
                        "curvature test)")
    p.add_argument("--mu2-ball", type=float, default=None, metavar="RADIUS",
                   help="estimate mu2 on the ball of this radius around the point (w, V)")
    p.add_argument("--baseline-radius", type=float, default=None, metavar="R",
                   help="compare with min F_lin over ||w|| <= R (Theorem 3) instead of inf F_lin")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON, with the problem under \"problem\"")
    p = sub.add_parser("bench", help="the NumPy / PyTorch / JAX comparison table")
    p.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "demo":
        checks = run_demo(Path(args.out), quick=args.quick, seed=args.seed)["checks"]
        return 0 if all(checks.values()) else 1
    if args.command == "certify":
        return _certify(args.data, args.eps, args.mu2, args.mu2_ball, args.baseline_radius,
                        args.json)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    if not script.exists():
        raise SystemExit("resnet-core bench needs the source tree (benchmarks/compare.py); "
                         "run it from a checkout of the repository")
    env = dict(os.environ)  # the same resnet_core as this process, installed or not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(script.parents[1]),
                                                      env.get("PYTHONPATH")]))
    return subprocess.call([sys.executable, str(script)] + (["--quick"] if args.quick else []),
                           env=env)
