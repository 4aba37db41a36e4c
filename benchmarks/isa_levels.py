"""``python benchmarks/isa_levels.py NAME=CHECKOUT ...``: the reference problem
(n = 200000, d = 64, widths (64, 64), logistic) on several builds of the kernels, in
alternating blocks.

Each CHECKOUT is a source tree whose kernels were built in place (for example
``RESNET_CORE_MARCH=x86-64-v3 python setup.py build_ext --inplace`` in a copy of the
repository).  For each round and each build, one fresh process times, as medians of
``--repeat`` calls at fresh points, ``fun_and_grad`` with tanh and with relu, in float64
and float32, and a full ``hessp`` (tanh, float64); the table gives each build's median over
the rounds and the ratios the issues track: tanh / relu, float64 / float32 time (the float32
speed-up), and each build against the first.  Every build states its level
(``resnet_core.build_info()``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import numpy as np
import resnet_core as rc
from resnet_core.bench.compare import REFERENCE
from resnet_core.bench.frameworks import make_data

n, d, widths = REFERENCE["n"], REFERENCE["d"], REFERENCE["widths"]
repeat = int(sys.argv[1])
X, y = make_data(n, d, seed=0)

def med(fn, z):
    # a fresh point per call (the objective caches its last point)
    zs = [z + 1e-9 * (k + 1) for k in range(repeat + 1)]
    fn(zs[0])
    ts = []
    for zk in zs[1:]:
        t0 = time.perf_counter(); fn(zk); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

out = {"build": rc.build_info()["summary"] if hasattr(rc, "build_info")
       else "a tree without build_info (before the ISA levels)"}
for dtype in ("float64", "float32"):
    Xd, yd = X.astype(dtype), y.astype(dtype)
    for act in ("tanh", "relu"):
        obj = rc.Objective(Xd, yd, loss="logistic", widths=widths, activation=act)
        z = obj.init(0)
        out[f"fun_and_grad {act} {dtype}"] = med(obj.fun_and_grad, z)
        if act == "tanh" and dtype == "float64":
            v = np.random.default_rng(1).standard_normal(z.size)
            out["hessp tanh float64"] = med(lambda zk: obj.hessp(zk, v), z)
print(json.dumps(out))
"""


def _run(path: str, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=path)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(repeat)], env=env, cwd=path,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="NAME=CHECKOUT (a tree built in place)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    builds = dict(b.split("=", 1) for b in args.builds)
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, path in builds.items():
            runs[name].append(_run(os.path.abspath(path), args.repeat))
    first = next(iter(builds))
    keys = [k for k in runs[first][0] if k != "build"]
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys}
           for name, rs in runs.items()}
    for name in builds:
        m = med[name]
        fg = {(act, dt): m[f"fun_and_grad {act} {dt}"] for act in ("tanh", "relu")
              for dt in ("float64", "float32")}
        print(f"{name}: {runs[name][0]['build']}")
        print("  " + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in m.items()))
        print(f"  tanh / relu: float64 {fg['tanh', 'float64'] / fg['relu', 'float64']:.2f}x, "
              f"float32 {fg['tanh', 'float32'] / fg['relu', 'float32']:.2f}x; "
              f"float32 speed-up (tanh) {fg['tanh', 'float64'] / fg['tanh', 'float32']:.2f}x")
        if name != first:
            print(f"  time / {first}: " + ", ".join(
                f"{k} {m[k] / med[first][k]:.2f}x" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
