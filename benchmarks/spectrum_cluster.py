"""The spectrum case of issue 21: ``hessian_spectrum(n_eigs=3, which="smallest")`` of the partial
Hessian of a ResNet fitted to standardised digits (cross-entropy, 10 classes, widths (16,)),
whose smallest eigenvalues form a near-degenerate cluster.

    python benchmarks/spectrum_cluster.py [--budgets 2000,5000,20000]

Prints, for the exact reduced matrix (median of three calls) (the default for ``wrt="wV"``) and for Lanczos at
ARPACK's usual basis size (``ncv = 20``) and at the default ``ncv = 40`` under a few product
budgets: the time, the products used, whether it converged, and the smallest value found
against the exact one.  (Before issue 21 the same call ran ARPACK with up to
``max(1000, 20 dim)`` restarts: 293,477 products, 556 s.)
"""

import argparse
import time

import numpy as np
from scipy.optimize import minimize

import resnet_core as rc


def problem():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(16,))
    res = minimize(obj.fun, obj.init(0), jac=obj.grad, method="L-BFGS-B",
                   options={"maxiter": 200})
    return obj, res.x


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="2000,5000,20000")
    parser.add_argument("--reduced-only", action="store_true")
    args = parser.parse_args()
    obj, x = problem()
    times = []
    for _ in range(3):  # the median of three
        t = time.perf_counter()
        exact = rc.hessian_spectrum(obj, x, n_eigs=3, which="smallest")
        times.append(time.perf_counter() - t)
    t_exact = float(np.median(times))
    print(f"n = {obj.n_samples}, (W, V) dimension {obj.partial(x).n_params}")
    print(f"{'method':<28} {'time s':>8} {'products':>9} {'converged':>9}  smallest values")
    print(f"{'reduced (exact)':<28} {t_exact:8.3f} {exact.n_products:9d} {'yes':>9}  "
          f"{np.array2string(exact.values, precision=6)}")
    for budget in ([] if args.reduced_only else (int(b) for b in args.budgets.split(","))):
        for ncv in (20, 40):
            t = time.perf_counter()
            sp = rc.hessian_spectrum(obj, x, n_eigs=3, which="smallest", method="lanczos",
                                     max_products=budget, ncv=ncv)
            dt = time.perf_counter() - t
            err = (f"max |diff| {np.abs(sp.values - exact.values).max():.1e}"
                   if sp.values.size == 3 else f"{sp.values.size} of 3 pairs")
            print(f"{f'lanczos ncv={ncv} budget={budget}':<28} {dt:8.2f} {sp.n_products:9d} "
                  f"{'yes' if sp.converged else 'no':>9}  {err}, max residual "
                  f"{sp.residuals.max() if sp.residuals.size else float('nan'):.1e}")


if __name__ == "__main__":
    main()
