"""Command line: ``resnet-core demo | certify | bench`` (also ``python -m resnet_core``).

- ``demo``: the paper reproduced and checked, written to a folder as ``report.md``,
  ``summary.json`` and PNG figures.
- ``certify DATA.npz``: the eps-SOPSP report of a point stored in a file.
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
        "Example 1: F = 1/2 > 0 = F_lin(w*), an eps-SOPSP (mu2 = 1) for every eps < 1":
            all(r["F"] == 0.5 and abs(r["F_lin_star"]) < 1e-12 and
                (r["is_sopsp"] is True or r["eps"] >= 1) for r in ex),
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
        "Theorem 4: the gap stays below (b l + r sqrt(log 1/delta)) / sqrt(T)":
            all(v["gap_below_rhs"] for v in t4.values()),
        "Lemma 1 and Theorem 1 hold at the trained residual networks":
            all(r["lemma1_holds"] and r["theorem1_holds"] for r in s["resnet_vs_linear"]),
    }


def _report(s: dict, checks: dict) -> str:
    L = ["# resnet-core: Shamir (2018), \"Are ResNets Provably Better than Linear Predictors?\","
         " reproduced", "", f"Generated {s['date']} in {s['seconds']:.0f} s "
         f"({'quick' if s['quick'] else 'full'} run, seed {s['seed']}).", "", "## Checks", ""]
    L += [f"- {'holds' if ok else '**does not hold**'}: {name}" for name, ok in checks.items()]
    L += ["", "## 1. Example 1: an eps-SOPSP worse than the linear predictor", "",
          "`F(w, v) = (w (1 + eps v) - 1)^2 / 2` at `(0, -1/eps)`, certified by "
          "`check_sopsp(..., mu2=1)`.", "",
          "| eps | gradient | Hessian | eigenvalues | F | F_lin* | eps-SOPSP |",
          "|---|---|---|---|---|---|---|"]
    for r in s["example1"]:
        H = r["hessian"]
        L.append(f"| {r['eps']:g} | ({r['grad'][0]:g}, {r['grad'][1]:g}) | "
                 f"[[{H[0][0]:.3g}, {H[0][1]:.3g}], [{H[1][0]:.3g}, {H[1][1]:.3g}]] | "
                 f"{r['eigenvalues'][0]:.6g}, {r['eigenvalues'][1]:.6g} | {r['F']:g} | "
                 f"{r['F_lin_star']:.2g} | {r['is_sopsp']} |")
    L += ["", "(At eps = 1 the curvature -1 equals the threshold -sqrt(mu2 eps): inconclusive "
          "by design.)", "", "## 2. Figure 1: norms and regularisation", "",
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
          "| data | loss | n x d | T | median best-iterate gap | theorem's (b l + r sqrt(log 1/delta))/sqrt(T) |",
          "|---|---|---|---|---|---|"]
    for name, c in s["theorem4"].items():
        for r in c["rows"]:
            L.append(f"| {name} | {c['loss']} | {c['n']} x {c['d']} | {r['T']} | "
                     f"{r['gap']:.4g} | {r['rhs']:.3g} |")
    L += [""] + [f"- {n}: fitted slope {c['slope']:.2f} (positive gaps), F_lin* over "
                 f"||u|| <= {c['b']:g} = {c['F_lin_star']:.4f}" for n, c in s["theorem4"].items()]
    L += ["", "A negative gap means the network beat the best linear predictor of norm at "
          "most b, which the theorem allows; the slope is fitted to the positive gaps."]
    L += ["", "## 5. ResNet vs linear on real data", "",
          "Residual network `w^T (x + V f(x))`, MLP widths (16, 16), tanh, trained by perturbed "
          "GD over all parameters; the point is then certified over `(w, V)`.", "",
          "| data | loss | n x d | iterations | F_lin* | F (ResNet) | gap +- s.e. | "
          "grad norm | lambda_min | eps-SOPSP (eps 0.01) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["resnet_vs_linear"]:
        L.append(f"| {r['data']} | {r['loss']} | {r['n']} x {r['d']} | {r['iterations']} | "
                 f"{r['F_lin_star']:.4f} | {r['F']:.4f} | {r['gap']:.4f} +- {r['gap_se']:.4f} | "
                 f"{r['grad_norm']:.2e} | {r['lambda_min']:.2e} | {r['is_sopsp']} |")
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


def _load_npz(path: str):
    """``(objective, point)`` from a file with ``X``, ``y`` and either ``Phi``, ``w``, ``V``
    (a FeatureObjective) or ``params`` and ``widths`` (an Objective: an MLP's flat
    parameters); optional ``loss``, ``activation``, ``head``, ``bias``."""
    from . import FeatureObjective, Objective

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SystemExit(f"resnet-core certify: cannot read {path!r} as a .npz file: {err}")
    keys = set(data.files)
    missing = {"X", "y"} - keys
    if missing:
        raise SystemExit(f"resnet-core certify: {path} lacks {sorted(missing)} "
                         f"(has {sorted(keys)}); it needs X, y and Phi + w + V or params + widths")
    X, y = data["X"], data["y"]
    loss = str(data["loss"]) if "loss" in keys else (
        "logistic" if np.isin(y, (-1, 1)).all() else "squared")
    try:
        if {"Phi", "w", "V"} <= keys:
            obj = FeatureObjective(X, data["Phi"], y, loss=loss)
            return obj, obj.pack(data["w"], data["V"])
        if {"params", "widths"} <= keys:
            obj = Objective(X, y, loss=loss, widths=tuple(int(h) for h in data["widths"]),
                            activation=str(data["activation"]) if "activation" in keys
                            else "tanh", bias=bool(data["bias"]) if "bias" in keys else True,
                            head=str(data["head"]) if "head" in keys else "residual")
            return obj, data["params"]
    except (ValueError, TypeError) as err:
        raise SystemExit(f"resnet-core certify: {path}: {err}")
    raise SystemExit(f"resnet-core certify: {path} has {sorted(keys)}; it needs Phi, w and V, "
                     "or params and widths, beside X and y")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="resnet-core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="reproduce and check the paper; write a report")
    p.add_argument("--out", default="resnet-core-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="small grids (under a minute)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("certify", help="eps-SOPSP report of a point stored in a .npz file")
    p.add_argument("data", help="X, y and Phi + w + V, or params + widths")
    p.add_argument("--eps", type=float, default=1e-2)
    p.add_argument("--mu2", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = sub.add_parser("bench", help="the NumPy / PyTorch / JAX comparison table")
    p.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "demo":
        checks = run_demo(Path(args.out), quick=args.quick, seed=args.seed)["checks"]
        return 0 if all(checks.values()) else 1
    if args.command == "certify":
        from .certify import check_sopsp

        obj, x = _load_npz(args.data)
        try:
            report = check_sopsp(obj, x, eps=args.eps, mu2=args.mu2)
        except (ValueError, TypeError) as err:
            raise SystemExit(f"resnet-core certify: {args.data}: {err}")
        print(json.dumps(report.to_dict(), indent=1) if args.json else report)
        return 0
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    if not script.exists():
        raise SystemExit("resnet-core bench needs the source tree (benchmarks/compare.py); "
                         "run it from a checkout of the repository")
    env = dict(os.environ)  # the same resnet_core as this process, installed or not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(script.parents[1]),
                                                      env.get("PYTHONPATH")]))
    return subprocess.call([sys.executable, str(script)] + (["--quick"] if args.quick else []),
                           env=env)
