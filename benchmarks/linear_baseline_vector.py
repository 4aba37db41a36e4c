"""The best linear predictor for c outputs against independent checks.

    python benchmarks/linear_baseline_vector.py [--quick]

Prints, per problem, ``linear_baseline``'s infimum, whether it is attained, its separability
answer, data passes and time, next to an independent check: for separable classes the
smallest pair margin ``(u_y - u_j)^T x_i`` of the returned direction on the data (positive:
the linear program's answer holds); otherwise scipy's L-BFGS on a NumPy cross-entropy, or
``numpy.linalg.lstsq`` for least squares; with a radius, the KKT residual
``||grad F_lin(W) + lam W||`` in NumPy.  ``--quick`` shrinks the synthetic problem.
``tests/test_linear_vector.py`` asserts the same comparisons on smaller data.
"""

import sys
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.datasets import load_diabetes, load_digits

import resnet_core as rc


def _with_bias(X):
    return np.c_[X, np.ones(len(X))]


def _lbfgs(X, y, c):
    n, d = X.shape

    def f(w):
        p = X @ w.reshape(c, d).T
        lse = logsumexp(p, axis=1)
        pi = np.exp(p - lse[:, None])
        pi[np.arange(n), y] -= 1
        return np.mean(lse - p[np.arange(n), y]), (pi.T @ X / n).ravel()

    res = minimize(f, np.zeros(c * d), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 20000, "maxcor": 30})
    return f"L-BFGS {res.fun:.12g}"


def _min_margin(r, X, y):
    p = X @ r.direction.T
    m = p[np.arange(len(y)), y][:, None] - p
    m[np.arange(len(y)), y] = np.inf
    return f"direction's smallest margin {m.min():.3g} (> 0: separable)"


def _kkt(r, X, y):
    """The KKT residual ``||grad + lam W||`` relative to ``||grad||``, in NumPy (convex: with
    ``lam > 0`` and ``||W||_F = R`` it proves the minimum over the ball)."""
    n, rows = len(y), np.arange(len(y))
    p = X @ r.w.T
    res = np.exp(p - logsumexp(p, axis=1)[:, None])
    res[rows, y] = 0.0
    res[rows, y] = -res.sum(axis=1)  # pi_y - 1 without cancellation
    G = res.T @ X / n
    return (f"KKT residual {np.linalg.norm(G + r.multiplier * r.w) / np.linalg.norm(G):.2g} "
            f"of the gradient, lam {r.multiplier:.3g}, norm {np.linalg.norm(r.w):.12g}")


def _lstsq(X, Y):
    W = np.linalg.lstsq(X, Y, rcond=None)[0]
    return f"lstsq {0.5 * np.mean(np.sum((X @ W - Y) ** 2, axis=1)):.12g}"


def problems(quick):
    X, y = load_digits(return_X_y=True)
    yield "digits, 10 classes, raw + bias", _with_bias(X), y, "cross_entropy", {}, _min_margin
    Xs = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    yield ("digits, 10 classes, standardised + bias", _with_bias(Xs), y, "cross_entropy", {},
           _min_margin)
    for name, A, R in [("raw + bias", _with_bias(X), 10.0), ("raw + bias", _with_bias(X), 100.0),
                       ("standardised + bias", _with_bias(Xs), 100.0)]:
        yield (f"digits, 10 classes, {name}, Frobenius norm <= {R:g}", A, y, "cross_entropy",
               {"radius": R}, _kkt)
    rng = np.random.default_rng(0)
    n = 10_000 if quick else 100_000
    Xg = _with_bias(rng.standard_normal((n, 32)))
    yg = np.argmax(Xg @ rng.standard_normal((5, 33)).T + 3 * rng.gumbel(size=(n, 5)), axis=1)
    yield (f"synthetic 5 classes, n = {n}, d = 32 + bias", Xg, yg, "cross_entropy", {},
           lambda r, X, y: _lbfgs(X, y, 5))
    Xd, t = load_diabetes(return_X_y=True, scaled=False)
    Y = np.c_[t, np.log(t), np.sqrt(t)]
    yield ("diabetes raw + bias, 3 outputs, squared", _with_bias(Xd), Y, "squared", {},
           lambda r, X, Y: _lstsq(X, Y))
    # (no "|" inside a cell: it would split the markdown table's columns)
    yield ("same, Frobenius norm <= 300", _with_bias(Xd), Y, "squared", {"radius": 300.0},
           lambda r, X, Y: f"KKT residual {r.grad_norm:.2g} (gradient at 0: "
                           f"{np.linalg.norm((X.T @ Y).T / len(X)):.2g}), "
                           f"Frobenius norm {np.linalg.norm(r.w):.6g}")


def main():
    quick = "--quick" in sys.argv
    print("| problem | infimum | attained | separability | passes | time (s) | independent |")
    print("|---|---|---|---|---|---|---|")
    for name, X, y, loss, kw, check in problems(quick):
        t0 = time.perf_counter()
        r = rc.linear_baseline(X, y, loss=loss, **kw)
        dt = time.perf_counter() - t0
        print(f"| {name} | {r.infimum:.12g} | {r.attained} | {r.separability} | {r.npass} | "
              f"{dt:.2f} | {check(r, X, y)} |", flush=True)


if __name__ == "__main__":
    main()
