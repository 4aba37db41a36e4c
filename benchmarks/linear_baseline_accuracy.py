"""The best linear predictor against independent solvers, on issue 8's problems.

    python benchmarks/linear_baseline_accuracy.py

Prints, per problem, ``linear_baseline``'s infimum, whether it is attained, its separability
answer, the KKT residual and data passes, next to ``numpy.linalg.lstsq`` (squared loss) or
scipy's ``trust-exact`` on the dense Hessian (logistic).  ``tests/test_linear.py`` asserts
the same comparisons.
"""

import numpy as np
from scipy.optimize import minimize

import resnet_core as rc


def _lstsq(X, y):
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    return 0.5 * np.mean((X @ w - y) ** 2)


def _logistic(X, y):
    n = len(y)

    def f(w):
        m = y * (X @ w)
        return np.mean(np.logaddexp(0, -m)), -(X.T @ (y / (1 + np.exp(m)))) / n

    def hess(w):
        sig = 1 / (1 + np.exp(-y * (X @ w)))
        return (X.T * (sig * (1 - sig))) @ X / n

    return minimize(f, np.zeros(X.shape[1]), jac=True, hess=hess, method="trust-exact",
                    options={"gtol": 1e-14}).fun


def _ill_conditioned(rng, n, d, cond):
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.logspace(0, -np.log10(cond), d)) @ V.T * np.sqrt(n)


def problems():
    from sklearn import datasets

    X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    X1 = np.column_stack([X, np.ones(len(X))])
    Xs = np.column_stack([(X - X.mean(0)) / X.std(0), np.ones(len(X))])
    yield "diabetes raw + bias, squared", X1, y, "squared", {}, _lstsq(X1, y)
    yield "diabetes standardised, y x 1e4", Xs, 1e4 * y, "squared", {}, _lstsq(Xs, 1e4 * y)
    for R in (300.0, 500.0, 1000.0):
        yield f"diabetes raw, radius {R:g}", X1, y, "squared", {"radius": R}, None
    Xb, yb = datasets.load_breast_cancer(return_X_y=True)
    Xb = np.column_stack([(Xb - Xb.mean(0)) / Xb.std(0), np.ones(len(Xb))])
    yb = np.where(yb > 0, 1.0, -1.0)
    yield "breast cancer, logistic", Xb, yb, "logistic", {}, None
    yield "breast cancer, smoothed hinge", Xb, yb, "smoothed_hinge", {}, None
    rng = np.random.default_rng(0)
    for cond in (1e4, 1e6, 1e8):
        X = _ill_conditioned(rng, 2000, 10, cond)
        ys = X @ rng.standard_normal(10) + 0.1 * rng.standard_normal(2000)
        yield f"synthetic cond {cond:g}, squared", X, ys, "squared", {}, _lstsq(X, ys)
        yl = np.where(X @ rng.standard_normal(10) + rng.standard_normal(2000) > 0, 1.0, -1.0)
        yield f"synthetic cond {cond:g}, logistic", X, yl, "logistic", {}, _logistic(X, yl)


def main():
    print(f"{'problem':34s} {'infimum':>18s} {'attained':>8s} {'separability':>12s} "
          f"{'KKT':>8s} {'passes':>6s} {'reference':>18s}")
    for name, X, y, loss, kw, ref in problems():
        r = rc.linear_baseline(X, y, loss=loss, **kw)
        ref_s = "" if ref is None else f"{ref:18.12g}"
        print(f"{name:34s} {r.infimum:18.12g} {str(r.attained):>8s} {str(r.separability):>12s} "
              f"{r.grad_norm:8.1e} {r.npass:6d} {ref_s}")


if __name__ == "__main__":
    main()
