"""A 64-run escape study on real features, with and without ``stop_at_escape`` (issue 10).

    python benchmarks/escape_stop.py [f_escape]

breast_cancer (569 x 30), a residual ResNet head of width 8 trained-ish by 2000 GD steps on
``(w, V)``, its features frozen (``partial(x, materialize=True)``, 279 parameters); 64 PGD
runs from there, ``eps = 1e-2``, ``ell`` and ``rho`` estimated at the start, ``max_iter =
20000``.  Prints the wall time (best of two) of each setting and what the runs did.
"""

import sys
import time

import numpy as np

import resnet_core as rc
from resnet_core.reproduce import datasets


def main(f_escape=None):
    X, y = datasets.load("breast_cancer")
    obj = rc.Objective(X, y, widths=(8,), n_threads=1)
    gd = rc.gradient_descent(obj, obj.init(0), eta=0.05, max_iter=2000, wrt="wV")
    fo = obj.partial(gd.x, materialize=True)
    z0 = gd.x[:fo.n_params]
    ell, rho = rc.estimate_ell_rho(fo, z0, seed=0)
    kw = dict(n_runs=64, eps=1e-2, ell=ell, rho=rho, max_iter=20_000, seed=0, f_escape=f_escape)
    print(f"n={fo.n_samples} dim={fo.n_params} F(z0)={fo.fun(z0):.6f} "
          f"||g||={np.linalg.norm(fo.grad(z0)):.2e} ell={ell:.3g} rho={rho:.3g}")
    rc.studies.escape(fo, z0, **{**kw, "n_runs": 2, "max_iter": 10})  # numba's cache
    for stop in (True, False):
        best = np.inf
        for _ in range(2):
            t = time.perf_counter()
            st = rc.studies.escape(fo, z0, stop_at_escape=stop, **kw)
            best = min(best, time.perf_counter() - t)
        print(f"stop_at_escape={stop}: {best:.3f} s (best of 2), escaped {st.escaped.sum()}/64, "
              f"median escape_iter {np.median(st.escape_iter[st.escaped]):.0f}, "
              f"iterations run {st.nit.sum()}, f_escape {st.constants['f_escape']:.3g}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else None)
