"""The best linear predictor at large n from two builds of the package: the same answers?

    python benchmarks/linear_baseline_builds.py before=DIR after=DIR [--n 1e6] [--d 32 128]
        [--dtype float64 float32] [--labels overlapping separable]

Each ``name=DIR`` is a source tree with its kernels built in place (``python setup.py
build_ext --inplace``).  For each case, each build runs ``linear_baseline`` once in its own
process (``PYTHONPATH=DIR``) on the same data (``linear_baseline_large.py``'s, in memory);
the table gives the decisions, ``fun``'s relative difference, ``w``'s largest relative
difference (overlapping data: the minimiser is unique), and each build's time (one run:
for speed, ``linear_baseline_large.py`` measures medians against NumPy).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = """
import json, sys, time
import numpy as np
import resnet_core as rc
sys.path.insert(0, {bench!r})
from linear_baseline_large import make
n, d, dtype, labels, out = {n}, {d}, {dtype!r}, {labels!r}, {out!r}
X, y = make(n, d, dtype, labels, "memory", None)
t = time.perf_counter()
r = rc.linear_baseline(X, y)
t = time.perf_counter() - t
np.save(out + ".npy", r.w)
json.dump(dict(fun=r.fun, fun_error=r.fun_error, sep=r.separability, attained=r.attained,
               time=t, file=rc.__file__), open(out + ".json", "w"))
"""


def run(tree, n, d, dtype, labels, folder, name):
    out = os.path.join(folder, f"{name}_{d}_{dtype}_{labels}")
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), n=n, d=d,
                        dtype=dtype, labels=labels, out=out)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=folder)
    with open(out + ".json") as f:
        info = json.load(f)
    if not info["file"].startswith(os.path.abspath(tree)):
        raise RuntimeError(f"{name}: imported {info['file']}, not the tree {tree}")
    return info, np.load(out + ".npy")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs=2, metavar="name=DIR")
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("--d", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--labels", nargs="+", default=["overlapping", "separable"])
    args = ap.parse_args()
    (a, tree_a), (b, tree_b) = (spec.split("=", 1) for spec in args.builds)
    print(f"| d | dtype | labels | separability ({a} / {b}) | fun rel. diff | w rel. diff | "
          f"time {a} | time {b} |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for d in args.d:
            for dtype in args.dtype:
                for labels in args.labels:
                    ia, wa = run(tree_a, int(args.n), d, dtype, labels, folder, a)
                    ib, wb = run(tree_b, int(args.n), d, dtype, labels, folder, b)
                    dfun = abs(ia["fun"] - ib["fun"]) / max(abs(ia["fun"]), 1e-300)
                    dw = (f"{np.abs(wa - wb).max() / np.abs(wa).max():.1e}"
                          if ia["sep"] == "overlapping" else "(a ray)")
                    print(f"| {d} | {dtype} | {labels} | {ia['sep']}, {ia['attained']} / "
                          f"{ib['sep']}, {ib['attained']} | {dfun:.1e} | {dw} | "
                          f"{ia['time']:.2f} s | {ib['time']:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
