"""Command line: ``resnet-core demo | certify | bench`` (also ``python -m resnet_core``).

- ``demo``: the paper reproduced and checked, written to a folder as ``report.md``,
  ``summary.json`` and PNG figures.
- ``certify POINT.npz``: the eps-SOPSP report of a point stored in a file (the format of
  :func:`resnet_core.save_point`; nothing missing from it is guessed).  Its exit status is
  the verdict: 0 an eps-SOPSP, 1 not an eps-SOPSP, 2 inconclusive (``lambda_min`` within
  its accuracy of the threshold), 3 unusable input (a bad file, bad values, a usage error),
  with one line on stderr.
- ``bench``: the NumPy / PyTorch / JAX comparison table (:mod:`resnet_core.bench.compare`);
  ``bench --history``: the tracked throughput per commit (:mod:`resnet_core.bench.history`).

The work is done elsewhere: the core (``certify``), the reproduction of the paper
(:mod:`resnet_core.reproduce`), the benchmarks (:mod:`resnet_core.bench`); this module
parses the arguments and dispatches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .bench import compare

# Exit statuses of ``certify``: the verdict, or 3 when there is none to give.
CERTIFY_EXIT = {True: 0, False: 1, None: 2}
EXIT_UNUSABLE = 3
CERTIFY_EPILOG = """exit status: 0 = an eps-SOPSP, 1 = not an eps-SOPSP, 2 = inconclusive
(lambda_min within its accuracy of the threshold -sqrt(mu2 eps)), 3 = unusable input
(missing or damaged file, a missing or bad key, a usage error; one line on stderr).

The file is a .npz archive as written by resnet_core.save_point: X, y, loss, head,
feature_bias, and either params, widths, activation, bias (an MLP's parameters) or Phi, w
and V (or v, skip head) (features given; with c outputs W and V, or B); n_classes with the
cross-entropy loss; optionally sample_weight.  Nothing missing is guessed.  Without --mu2
or --mu2-ball the curvature test is decided only when lambda_min >= 0 (then for every
mu2); otherwise the verdict is inconclusive (2)."""


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
                 ("bias", "yes" if meta["bias"] else "no")]
    else:
        rows.append(("features", f"given (k = {meta['k']})"))
    rows.append(("feature bias", "yes (Remark 1)" if meta["feature_bias"] else "no"))
    rows.append(("head", meta["head"]))
    if meta.get("n_outputs", 1) > 1:
        rows.append(("outputs", f"c = {meta['n_outputs']} (Remark 2)"))
    rows += [("n / d / k", f"{meta['n']} / {meta['d']} / {meta['k']}"),
             ("sample weights", "given" if meta["weighted"] else "uniform")]
    return rows


def _emit(text: str) -> None:
    """Print ``text``; a reader that stopped reading (``| head``) is not an error: the rest
    of the output goes to the null device, so that nothing is raised at exit either."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _certify(path: str, eps: float, mu2: float | None, mu2_ball: float | None,
             radius: float | None, as_json: bool) -> int:
    """``resnet-core certify``: the report, and the verdict as the exit status."""
    from .certify import check_sopsp
    from .lipschitz import Ball
    from .pointfile import PointFileError, load_point

    try:
        obj, x, meta = load_point(path)
        kw = {"mu2": mu2, "radius": radius}
        if mu2_ball is not None:
            z = np.asarray(x, dtype=np.float64)[:obj.n_head_params]  # (w, V): mu2's space
            kw["mu2_region"] = Ball(z, mu2_ball)
        report = check_sopsp(obj, x, eps=eps, **kw)
    except (ValueError, TypeError, MemoryError) as err:
        reason = err.reason if isinstance(err, PointFileError) else str(err) or type(err).__name__
        print(f"resnet-core certify: {path}: {' '.join(reason.split())}", file=sys.stderr)
        return EXIT_UNUSABLE
    if as_json:
        _emit(json.dumps({**report.to_dict(), "problem": {"file": path, **meta}}, indent=1))
    else:
        rows = _problem_rows(meta, path)
        width = max(len(k) for k, _ in rows)
        _emit("\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n\n" + str(report))
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
    p.add_argument("--radius", type=float, default=None, metavar="R",
                   help="compare with min F_lin over ||w|| <= R (Theorem 3) instead of inf F_lin")
    # the old name of --radius, for one release (docs/api.md)
    p.add_argument("--baseline-radius", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON, with the problem under \"problem\"")
    p = sub.add_parser("bench", help="the NumPy / PyTorch / JAX comparison table; with "
                       "--history, the plot of the tracked throughput per commit")
    compare.add_arguments(p)
    p.add_argument("--history", action="store_true",
                   help="plot benchmarks/history (throughput per commit, one panel per "
                        "family) instead of running the comparison")
    p.add_argument("--history-dir", default="benchmarks/history", help=argparse.SUPPRESS)
    p.add_argument("--out", default="docs/bench_history.png",
                   help="the plot's PNG with --history (default docs/bench_history.png)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .reproduce.demo import run_demo

        checks = run_demo(Path(args.out), quick=args.quick, seed=args.seed)["checks"]
        return 0 if all(checks.values()) else 1
    if args.command == "certify":
        radius = args.radius
        if args.baseline_radius is not None:
            if radius is not None:
                parser.error("give --radius or its old name --baseline-radius, not both")
            print("resnet-core certify: --baseline-radius is deprecated and will be removed in "
                  "the next release; use --radius", file=sys.stderr)
            radius = args.baseline_radius
        return _certify(args.data, args.eps, args.mu2, args.mu2_ball, radius, args.json)
    if args.history:
        from .bench import history

        return history.main(["plot", "--history-dir", args.history_dir, "--out", args.out])
    return compare.bench(args)
