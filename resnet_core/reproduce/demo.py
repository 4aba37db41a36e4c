"""``resnet-core demo``: the paper reproduced and checked, written to a folder as
``report.md``, ``summary.json`` and PNG figures (needs ``pip install resnet-core[demo]``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import paper, plots, report

QUICK = dict(escape_eps=(1.0, 0.3, 0.1, 0.03, 0.01), escape_runs=64,
             sgd_T=(1000, 3000, 10000), resnet_iter=300,
             second_order_c=(0.3, 0.1, 0.03, 0.01), second_order_eps=(1e-1, 1e-2))
FULL = dict(escape_eps=(1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001), escape_runs=1024,
            sgd_T=(1000, 10000, 100000, 1000000), resnet_iter=3000,
            second_order_c=(0.3, 0.1, 0.03, 0.01, 0.003, 0.001),
            second_order_eps=(1e-1, 3e-2, 1e-2, 3e-3, 1e-3))


def _progress(total, desc):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False)


def run_demo(out: Path, quick: bool = False, seed: int = 0, echo=print) -> dict:
    """Compute everything, write ``report.md``, ``summary.json`` and the figures to ``out``;
    return the summary (with its ``checks``)."""
    cfg = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    s = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "seed": seed, "config": cfg}
    steps = _progress(3 + len(cfg["escape_eps"]) + len(paper.THEOREM4_DATA) * len(cfg["sgd_T"])
                      + len(paper.RESNET_DATA) + len(paper.RESNET_VECTOR_DATA)
                      + len(cfg["second_order_c"]) + len(cfg["second_order_eps"]), "demo")
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
    s["second_order"] = paper.second_order_vs_pgd(cfg["second_order_c"],
                                                  cfg["second_order_eps"], progress=steps)
    plots.second_order(s["second_order"], out / "second_order.png")
    s["theorem4"] = paper.theorem4_curves(cfg["sgd_T"], progress=steps)
    plots.theorem4(s["theorem4"], out / "theorem4.png")
    s["resnet_vs_linear"] = paper.resnet_vs_linear(cfg["resnet_iter"], seed=seed, progress=steps)
    steps.close()
    s["seconds"] = time.perf_counter() - start
    verdicts = report.checks(s)
    s["checks"] = verdicts
    (out / "summary.json").write_text(json.dumps(s, indent=1, default=float))
    (out / "report.md").write_text(report.markdown(s, verdicts))
    echo(f"resnet-core demo: report written to {out / 'report.md'} "
         f"({s['seconds']:.0f} s; figures and summary.json beside it)")
    for name, ok in verdicts.items():
        echo(f"  {'holds' if ok else 'DOES NOT HOLD'}: {name}")
    return s
