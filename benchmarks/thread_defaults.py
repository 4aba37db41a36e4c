"""Everyday speed: scipy.optimize loops on small and large data with the default thread
count against one and two threads, measured in one process, interleaved.

    python benchmarks/thread_defaults.py [--repeat 3]

For each problem: median wall time of ``minimize(obj.fun_and_grad, x0, jac=True,
method="L-BFGS-B", options={"maxiter": iters})`` for ``n_threads`` None (the default), 1 and
2, run in alternating order ``repeat`` times, and the ratio default / best.  The thread
settings (``OMP_WAIT_POLICY``, cores) are printed with the table.
"""

import argparse
import os
import time

import numpy as np
from scipy.optimize import minimize

import resnet_core as rc


def problems():
    from resnet_core.reproduce import datasets

    for name, loss in (("diabetes", "squared"), ("breast_cancer", "logistic")):
        X, y = datasets.load(name)
        yield f"{name} (n {len(y)})", X, y, loss, (16, 16), 300
    rng = np.random.default_rng(0)
    for n, iters in ((400, 300), (4_000, 100), (40_000, 30), (400_000, 10), (1_000_000, 5)):
        X = rng.standard_normal((n, 10))
        y = np.where(X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n) > 0, 1.0, -1.0)
        yield f"synthetic n {n}", X, y, "logistic", (16, 16), iters


def fit_time(X, y, loss, widths, iters, n_threads):
    obj = rc.Objective(X, y, loss=loss, widths=widths, n_threads=n_threads)
    x0 = obj.init(0)
    t = time.perf_counter()
    minimize(obj.fun_and_grad, x0, jac=True, method="L-BFGS-B",
             options={"maxiter": iters, "maxfun": 2 * iters})
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"cores {os.cpu_count()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"numpy {np.__version__}, resnet_core {rc.__version__}")
    print(f"{'problem':24s} {'iters':>5s} {'default':>9s} {'1 thread':>9s} {'2 threads':>9s} "
          f"{'default/best':>12s}")
    for name, X, y, loss, widths, iters in problems():
        times = {None: [], 1: [], 2: []}
        for _ in range(args.repeat):
            for nt in times:
                times[nt].append(fit_time(X, y, loss, widths, iters, nt))
        med = {nt: float(np.median(v)) for nt, v in times.items()}
        best = min(med.values())
        print(f"{name:24s} {iters:5d} {1e3 * med[None]:8.0f}ms {1e3 * med[1]:8.0f}ms "
              f"{1e3 * med[2]:8.0f}ms {med[None] / best:12.2f}")


if __name__ == "__main__":
    main()
