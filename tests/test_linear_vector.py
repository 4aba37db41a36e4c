"""The best linear predictor for c outputs (resnet_core.linear_vector) against independent
solvers: scikit-learn's multinomial LogisticRegression, scipy L-BFGS and SLSQP on a NumPy
implementation written here, numpy.linalg.lstsq, and linear programs checked on the data."""

import functools
import tracemalloc

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp

import resnet_core as rc


def ce_value(W, X, y, s=None):
    """Independent multinomial cross-entropy ``E[logsumexp(W x) - (W x)_y]``."""
    s = np.full(len(y), 1.0 / len(y)) if s is None else s / s.sum()
    p = X @ W.T
    return float(s @ (logsumexp(p, axis=1) - p[np.arange(len(y)), y]))


def ce_grad(W, X, y, s=None):
    s = np.full(len(y), 1.0 / len(y)) if s is None else s / s.sum()
    p = X @ W.T
    pi = np.exp(p - logsumexp(p, axis=1)[:, None])
    pi[np.arange(len(y)), y] -= 1.0
    return (pi * s[:, None]).T @ X


def overlapping(n=400, d=4, c=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.normal(size=(n, d)), np.ones(n)]
    W = rng.normal(size=(c, d + 1))
    p = X @ W.T + rng.gumbel(size=(n, c)) * 2.0
    return X, np.argmax(p, axis=1)


def lbfgs_min(X, y, c, s=None):
    d = X.shape[1]
    res = minimize(lambda w: (ce_value(w.reshape(c, d), X, y, s),
                              ce_grad(w.reshape(c, d), X, y, s).ravel()),
                   np.zeros(c * d), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 5000, "maxcor": 30})
    return res.fun, res.x.reshape(c, d)


def pair_margins(W, X, y):
    p = X @ W.T
    m = p[np.arange(len(y)), y][:, None] - p
    m[np.arange(len(y)), y] = np.inf
    return m


def test_cross_entropy_matches_sklearn_and_lbfgs():
    from sklearn.linear_model import LogisticRegression

    X, y = overlapping()
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    assert r.w.shape == (4, 5) and r.converged and r.attained is True
    assert r.separability == "overlapping" and r.direction is None
    assert r.fun == pytest.approx(ce_value(r.w, X, y), rel=1e-14) and r.infimum == r.fun
    f_lbfgs, _ = lbfgs_min(X, y, 4)
    sk = LogisticRegression(C=1e12, fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y)
    f_sk = ce_value(sk.coef_, X, y)
    assert r.fun <= min(f_lbfgs, f_sk) + 1e-15
    assert r.fun == pytest.approx(f_lbfgs, abs=1e-10) and r.fun == pytest.approx(f_sk, abs=1e-10)
    # the centred representative: rows sum to 0; sklearn's coef_ centred agrees
    np.testing.assert_allclose(r.w.sum(axis=0), 0, atol=1e-13)
    np.testing.assert_allclose(r.w, sk.coef_ - sk.coef_.mean(axis=0), atol=1e-5)
    assert r.grad_norm == pytest.approx(np.linalg.norm(ce_grad(r.w, X, y)), abs=1e-15)
    assert r.grad_norm < 1e-14


def test_row_shift_invariance_and_label_permutation():
    X, y = overlapping(seed=3)
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    b = np.random.default_rng(0).normal(size=X.shape[1]) * 10
    assert ce_value(r.w + b, X, y) == pytest.approx(r.fun, rel=1e-12)
    # ||W + 1 b^T||_F is least at the returned (centred) W
    assert np.linalg.norm(r.w) < np.linalg.norm(r.w + 1e-3 * b)
    # labels held in floats, and an unseen fifth class (pairs with it separate: quasi)
    assert rc.linear_baseline(X, y.astype(float), loss="cross_entropy").fun == r.fun
    r5 = rc.linear_baseline(X, y, loss="cross_entropy", n_classes=5)
    assert r5.separability == "quasi_separable" and r5.w.shape == (5, 5)
    assert r5.infimum == pytest.approx(r.infimum, rel=1e-12)
    perm = np.array([2, 0, 3, 1])  # class k becomes perm[k]
    r2 = rc.linear_baseline(X, perm[y], loss="cross_entropy")
    assert r2.fun == pytest.approx(r.fun, rel=1e-13)
    np.testing.assert_allclose(r2.w[perm], r.w, atol=1e-10)


def test_two_classes_equal_the_scalar_logistic_baseline():
    X, y = overlapping(c=2, seed=5)
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    rs = rc.linear_baseline(X, 2.0 * y - 1, loss="logistic")
    assert r.fun == pytest.approx(rs.fun, rel=1e-14)
    np.testing.assert_allclose(r.w[1] - r.w[0], rs.w, rtol=1e-9, atol=1e-12)
    # ||W||_F = ||w|| / sqrt(2) for the centred W = [-w/2, w/2]
    rr = rc.linear_baseline(X, y, loss="cross_entropy", radius=0.05)
    rrs = rc.linear_baseline(X, 2.0 * y - 1, loss="logistic", radius=0.05 * np.sqrt(2))
    assert rr.fun == pytest.approx(rrs.fun, rel=1e-13)
    assert np.linalg.norm(rr.w) <= 0.05


def _first_words(message):
    return [line.split(":")[0] + ":" + line.split(":")[1].split()[0]
            for line in message.splitlines()]


@pytest.mark.parametrize("case", ["overlapping", "separable", "quasi", "skipped"])
def test_one_decision_tree_for_one_and_c_outputs(case):
    """Issue 20: c = 2 goes through the same decision tree as the scalar logistic loss, so
    the decision, how it was made and the message's decisions are the same."""
    rng = np.random.default_rng(4)
    X = np.c_[rng.standard_normal((300, 2)), np.ones(300)]
    y = np.where(X[:, 0] + rng.standard_normal(300) > 0, 1, 0)
    if case == "separable":
        y = (X[:, 0] > 0).astype(int)
    if case in ("quasi", "skipped"):
        X[150:, 0] = 0.0
        y[:150] = (X[:150, 0] > 0).astype(int)
    kw = {"max_lp_entries": 1} if case == "skipped" else {}
    r = rc.linear_baseline(X, y, loss="cross_entropy", **kw)
    rs = rc.linear_baseline(X, 2.0 * y - 1, loss="logistic", **kw)
    assert r.separability == rs.separability == {
        "overlapping": "overlapping", "separable": "separable", "quasi": "quasi_separable",
        "skipped": "not_decided"}[case]
    assert r.method == rs.method and r.attained == rs.attained
    assert _first_words(r.message) == _first_words(rs.message)
    assert r.infimum == pytest.approx(rs.infimum, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weights_equal_repeated_samples_and_float32(dtype):
    X, y = overlapping(n=200, c=3, seed=7)
    X = X.astype(dtype)
    k = np.random.default_rng(1).integers(0, 4, len(y))
    r = rc.linear_baseline(X, y, loss="cross_entropy", sample_weight=k)
    rep = rc.linear_baseline(np.repeat(X, k, axis=0), np.repeat(y, k), loss="cross_entropy")
    assert r.fun == pytest.approx(rep.fun, rel=1e-13)
    np.testing.assert_allclose(r.w, rep.w, atol=1e-9)
    # float32 data: the float64 answer for the same (rounded) numbers
    r64 = rc.linear_baseline(X.astype(np.float64), y, loss="cross_entropy", sample_weight=k)
    assert r.fun == pytest.approx(r64.fun, rel=1e-14)


def test_float32_streams_without_a_float64_copy():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100_000, 16)).astype(np.float32)
    y = rng.integers(0, 3, len(X))
    tracemalloc.start()
    try:
        r = rc.linear_baseline(X, y, loss="cross_entropy", max_lp_entries=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # no linear program (max_lp_entries=1): the overlap is proved by the minimiser
    assert r.converged and r.attained is True and r.separability == "overlapping"
    assert peak < 1.6 * X.nbytes  # a float64 copy alone is 2 X.nbytes


@pytest.mark.parametrize("kind", ["memmap", "zarr"])
def test_out_of_core_data_stream_through_the_engine(kind, tmp_path, monkeypatch):
    """A memmap or zarr X is read block by block through the engine's map_rows (never
    loaded whole): the same answers as in memory, the separability decided without a
    linear program (overlap from the minimiser)."""
    import resnet_core._vector_rows as rows

    rng = np.random.default_rng(5)
    n = 2 * rows.VALUE_BLOCK + 5
    X = rng.normal(size=(n, 4))
    y = rng.integers(0, 3, n)
    Y = X @ rng.normal(size=(4, 2)) + rng.normal(size=(n, 2))
    if kind == "memmap":
        np.save(tmp_path / "X.npy", X)
        Xo = np.load(tmp_path / "X.npy", mmap_mode="r")
    else:
        zarr = pytest.importorskip("zarr")
        Xo = zarr.open(str(tmp_path / "X.zarr"), mode="w", shape=X.shape, chunks=(7000, 4),
                       dtype="f8")
        Xo[:] = X
    ref = rc.linear_baseline(X, y, loss="cross_entropy")
    ref_ls = rc.linear_baseline(X, Y, loss="squared", radius=0.5)
    largest = []
    fold = rows.MemoryRows.fold

    def watched(self, fn, add=None, rows=rows.VALUE_BLOCK):
        largest.append(self.n)
        return fold(self, fn, *(() if add is None else (add,)), rows)

    monkeypatch.setattr(rows.MemoryRows, "fold", watched)
    got = rc.linear_baseline(Xo, y, loss="cross_entropy")
    got_ls = rc.linear_baseline(Xo, Y, loss="squared", radius=0.5)
    assert got.fun == pytest.approx(ref.fun, rel=1e-12) and got.separability == "overlapping"
    assert "no linear program" in got.method
    np.testing.assert_allclose(got.w, ref.w, atol=1e-12)
    assert got_ls.fun == pytest.approx(ref_ls.fun, rel=1e-12)
    np.testing.assert_allclose(got_ls.w, ref_ls.w, atol=1e-12)
    assert largest and max(largest) <= rows.VALUE_BLOCK  # one block at a time


def quasi_separable(seed=1, n01=200, n2=50):
    """Class 2 lies apart from classes 0 and 1, which overlap."""
    rng = np.random.default_rng(seed)
    X01 = np.c_[rng.normal(size=n01) - 3, rng.normal(size=n01), np.ones(n01)]
    y01 = rng.integers(0, 2, n01)
    X = np.r_[X01, np.c_[rng.uniform(1, 3, n2), rng.normal(size=n2), np.ones(n2)]]
    return X, np.r_[y01, np.full(n2, 2)]


def test_not_decided_fallback():
    # overlapping data need no linear program: the minimiser proves the overlap
    X, y = overlapping(c=3, seed=11)
    full = rc.linear_baseline(X, y, loss="cross_entropy")
    assert full.separability == "overlapping" and "certified" in full.method
    r = rc.linear_baseline(X, y, loss="cross_entropy", max_lp_entries=10)
    assert r.separability == "overlapping" and r.attained is True and r.converged
    assert r.infimum == pytest.approx(full.infimum, rel=1e-13)
    # quasi-separable data do: above the limit, the answer is not decided
    X, y = quasi_separable()
    full = rc.linear_baseline(X, y, loss="cross_entropy")
    r = rc.linear_baseline(X, y, loss="cross_entropy", max_lp_entries=10)
    assert r.separability == "not_decided" and r.attained is None
    assert "max_lp_entries" in r.message and "LP skipped" in r.method
    assert r.infimum == pytest.approx(full.infimum, rel=1e-6)
    # separable data are recognised from Newton's iterates
    rng = np.random.default_rng(2)
    centres = np.array([[4.0, 0], [-4, 0], [0, 4]])
    y = rng.integers(0, 3, 150)
    X = np.c_[centres[y] + rng.uniform(-1, 1, size=(150, 2)), np.ones(150)]
    r = rc.linear_baseline(X, y, loss="cross_entropy", max_lp_entries=1)
    assert r.separability == "separable" and r.attained is False and r.infimum == 0
    assert "no linear program" in r.method
    assert r.fun < 1e-15 and np.all(pair_margins(r.direction, X, y) > 0)


def test_digits_ten_classes_are_separable():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = np.c_[X, np.ones(len(X))]
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    assert r.separability == "separable" and r.attained is False and r.converged
    assert r.infimum == 0.0 and 0 <= r.fun < 1e-15
    m = pair_margins(r.w, X, y)  # every margin positive: loss = log1p(sum_j exp(-m_j))
    assert r.fun == pytest.approx(np.mean(np.log1p(np.exp(-m).sum(axis=1))), rel=1e-12)
    U = r.direction
    assert U.shape == (10, 65) and np.linalg.norm(U) == pytest.approx(1.0)
    np.testing.assert_allclose(U.sum(axis=0), 0, atol=1e-12)
    # found by Newton's iterates, with no linear program; checked on the data
    assert "no linear program" in r.method
    assert np.all(pair_margins(U, X, y) > 0)
    assert np.all(pair_margins(r.w, X, y) >= 36)
    # the linear program agrees (on 100 samples: it takes seconds on all of them)
    assert rc.linear_separability(X[:100], y[:100]).status == "separable"


def test_quasi_separable_constructed():
    """Class 2 lies apart from classes 0 and 1, which overlap: the pairs involving class 2
    separate, and inf F_lin is the binary logistic minimum on classes 0 and 1."""
    n01, n2 = 200, 50
    X, y = quasi_separable(1, n01, n2)
    X01, y01 = X[:n01], y[:n01]
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    assert r.separability == "quasi_separable" and r.attained is False and r.converged
    assert r.method.startswith("linear program")  # Newton's iterates cannot separate all
    sep = rc.linear_separability(X, y)
    assert sep.status == "quasi_separable"
    assert sep.separated_pairs.sum() == n01 + 2 * n2 and sep.separated.sum() == n2
    binary = minimize(lambda w: np.mean(np.logaddexp(0, -(2 * y01 - 1) * (X01 @ w))),
                      np.zeros(3), method="BFGS", options={"gtol": 1e-12}).fun
    expected = binary * n01 / (n01 + n2)
    assert r.infimum == pytest.approx(expected, rel=1e-9)
    assert r.fun == pytest.approx(r.infimum, rel=1e-14, abs=1e-15)
    assert r.fun == pytest.approx(ce_value(r.w, X, y), rel=1e-12)


def test_cross_entropy_radius_against_slsqp_and_kkt():
    X, y = overlapping(n=150, d=2, c=3, seed=4)
    free = rc.linear_baseline(X, y, loss="cross_entropy")
    R = 0.5 * np.linalg.norm(free.w)
    r = rc.linear_baseline(X, y, loss="cross_entropy", radius=R)
    assert r.converged and r.attained and r.multiplier > 0
    assert np.linalg.norm(r.w) <= R and np.linalg.norm(r.w) == pytest.approx(R, rel=1e-12)
    G = ce_grad(r.w, X, y)
    np.testing.assert_allclose(G + r.multiplier * r.w, 0, atol=1e-12)
    c, d = r.w.shape
    ref = minimize(lambda w: ce_value(w.reshape(c, d), X, y), np.zeros(c * d),
                   jac=lambda w: ce_grad(w.reshape(c, d), X, y).ravel(), method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda w: R**2 - w @ w,
                                 "jac": lambda w: -2 * w}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    assert r.fun <= ref.fun + 1e-12 and r.fun == pytest.approx(ref.fun, abs=1e-10)
    assert "projected Newton" in r.method
    # inactive radius: the free minimum; separable data: on the sphere
    big = rc.linear_baseline(X, y, loss="cross_entropy", radius=10 * np.linalg.norm(free.w))
    assert big.fun == free.fun and big.multiplier == 0
    rng = np.random.default_rng(2)
    centres = np.array([[4.0, 0], [-4, 0], [0, 4]])
    ys = rng.integers(0, 3, 90)
    Xs = np.c_[centres[ys] + rng.uniform(-1, 1, size=(90, 2)), np.ones(90)]
    rs = rc.linear_baseline(Xs, ys, loss="cross_entropy", radius=2.0)
    assert rs.separability == "separable" and rs.attained and rs.multiplier > 0
    assert np.linalg.norm(rs.w) == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(ce_grad(rs.w, Xs, ys) + rs.multiplier * rs.w, 0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-310, 1e-200, 1e-120, 1e120, 1e200, 1e300])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_any_scale_of_X_gives_the_same_answer_for_c_outputs(loss, scale):
    """Issue 18: X * 1e-200 gave log 3 "converged" and X * 1e200 a LinAlgError; solved on
    X * 2^e (exact) and scaled back, every scale gives the answer of X."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(60, 3)), axis=1)
    t = y if loss == "cross_entropy" else rng.standard_normal((60, 2))
    base = rc.linear_baseline(X, t, loss=loss)
    res = rc.linear_baseline(X * scale, t, loss=loss)
    assert res.converged and res.fun == pytest.approx(base.fun, rel=1e-12)
    k = 60 if scale < 1e-300 else 0
    assert res.w_fits == (scale > 1e-308)
    np.testing.assert_allclose(np.ldexp(res.w_scaled, res.w_exponent - k) * (scale * 2.0**k),
                               base.w, rtol=1e-9, atol=1e-12)


def _exact_cross_entropy(W, X, y, digits=50):
    """``mean_i logsumexp(W x_i) - (W x_i)_{y_i}`` with the scores exact (fractions of the
    floats) and the logarithms to ``digits`` digits (decimal)."""
    from decimal import Decimal, localcontext
    from fractions import Fraction
    with localcontext() as ctx:
        ctx.prec = digits
        total = Decimal(0)
        Wf = [[Fraction(v) for v in row] for row in W]
        for xi, yi in zip(X, y):
            xf = [Fraction(v) for v in xi]
            p = [sum(a * b for a, b in zip(row, xf)) for row in Wf]
            p = [Decimal(q.numerator) / Decimal(q.denominator) for q in p]
            top = max(p)
            total += top + sum((q - top).exp() for q in p).ln() - p[int(yi)]
        return total / len(y)


@pytest.mark.parametrize("case", ["overlapping", "separable", "radius"])
def test_cross_entropy_fun_error_bounds_the_exact_value(case):
    """Issue 19 for c outputs: ``fun`` at the returned W is within ``fun_error`` of a 50-digit
    evaluation with exact scores; on the separating ray (loss 1e-18) the bound is relative."""
    from decimal import Decimal
    rng = np.random.default_rng(0)
    if case == "overlapping":
        X, y = overlapping(n=200, d=4, c=3, seed=1)
        X = X * 1e3
    else:
        centres = np.array([[4.0, 0], [-4, 0], [0, 4]])
        y = rng.integers(0, 3, 90)
        X = np.c_[centres[y] + rng.uniform(-1, 1, size=(90, 2)), np.ones(90)]
    r = rc.linear_baseline(X, y, loss="cross_entropy",
                           **({"radius": 2.0} if case == "radius" else {}))
    exact = _exact_cross_entropy(r.w, X, y)
    assert abs(Decimal(r.fun) - exact) <= Decimal(r.fun_error)
    assert 0 < r.fun_error <= 1e-12 * r.fun
    if r.attained:
        assert r.infimum == r.fun


def _slsqp_on_ball(X, y, c, R):
    d = X.shape[1]
    return minimize(lambda w: ce_value(w.reshape(c, d), X, y), np.zeros(c * d),
                    jac=lambda w: ce_grad(w.reshape(c, d), X, y).ravel(), method="SLSQP",
                    constraints=[{"type": "ineq", "fun": lambda w: R**2 - w @ w,
                                  "jac": lambda w: -2 * w}],
                    options={"ftol": 1e-16, "maxiter": 2000})


@pytest.mark.parametrize("R", [0.3, 1.0, 3.0])
def test_cross_entropy_radius_on_separable_data_against_slsqp(R):
    """Issue 19: projected Newton on the ball agrees with SLSQP to 1e-10 on small separable
    and quasi-separable problems (where the free infimum is not attained)."""
    rng = np.random.default_rng(5)
    centres = np.array([[3.0, 0], [-3, 0], [0, 3], [0, -3]])
    y = rng.integers(0, 4, 80)
    X = np.c_[centres[y] + rng.uniform(-1, 1, size=(80, 2)), np.ones(80)]
    r = rc.linear_baseline(X, y, loss="cross_entropy", radius=R)
    ref = _slsqp_on_ball(X, y, 4, R)
    assert r.converged and r.attained and np.linalg.norm(r.w) <= R
    assert r.fun <= ref.fun + 1e-12 and r.fun == pytest.approx(ref.fun, abs=1e-10)
    np.testing.assert_allclose(ce_grad(r.w, X, y) + r.multiplier * r.w, 0, atol=1e-12)


def test_digits_with_a_radius_in_seconds():
    """Issue 19: separable 10-class digits with a radius (more than 8 minutes by Brent's
    method around full solves); the KKT conditions (convex: a proof of the minimum) checked
    in NumPy: ``grad + lam W = 0``, ``lam > 0``, ``||W||_F = R``."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    X = np.c_[X, np.ones(len(X))]
    r = rc.linear_baseline(X, y, loss="cross_entropy", radius=10.0)
    assert r.converged and r.attained and r.multiplier > 0
    assert np.linalg.norm(r.w) == pytest.approx(10.0, rel=1e-12)
    G = ce_grad(r.w, X, y)
    assert np.linalg.norm(G + r.multiplier * r.w) <= 1e-10 * np.linalg.norm(G)
    assert r.fun == pytest.approx(ce_value(r.w, X, y), rel=1e-12)


def test_multi_output_least_squares_against_lstsq():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)) * np.array([1, 10, 1e-3, 1, 1e3, 1])
    Y = rng.normal(size=(300, 3)) + X[:, :3] @ rng.normal(size=(3, 3))
    s = rng.uniform(0.1, 2.0, 300)
    r = rc.linear_baseline(X, Y, loss="squared", sample_weight=s)
    sq = np.sqrt(s / s.sum())[:, None]
    W = np.linalg.lstsq(sq * X, sq * Y, rcond=None)[0].T
    assert r.w.shape == (3, 6) and r.converged and r.attained
    np.testing.assert_allclose(r.w, W, rtol=1e-9, atol=1e-12)
    F = 0.5 * float(np.sum((sq * (X @ W.T - Y)) ** 2))
    assert r.fun == pytest.approx(F, rel=1e-13)
    # every column is the scalar problem
    for k in range(3):
        rk = rc.linear_baseline(X, Y[:, k], loss="squared", sample_weight=s)
        np.testing.assert_allclose(r.w[k], rk.w, rtol=1e-9, atol=1e-12)
    # rank deficient: the minimum-norm solution
    Xd = np.c_[X[:, :3], X[:, :3]]
    rd = rc.linear_baseline(Xd, Y, loss="squared")
    np.testing.assert_allclose(rd.w, np.linalg.lstsq(Xd, Y, rcond=None)[0].T, atol=1e-9)
    # (n, 1) targets are the scalar problem, W of shape (1, d)
    r1 = rc.linear_baseline(X, Y[:, :1], loss="squared")
    assert r1.w.shape == (1, 6)
    np.testing.assert_array_equal(r1.w[0], rc.linear_baseline(X, Y[:, 0], loss="squared").w)


def test_multi_output_least_squares_radius():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    Y = X @ rng.normal(size=(4, 3)) * 5 + rng.normal(size=(200, 3))
    W_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    for R in (1e-6, 0.3, 0.5 * np.linalg.norm(W_ls)):
        r = rc.linear_baseline(X, Y, loss="squared", radius=R)
        assert np.linalg.norm(r.w) <= R and np.linalg.norm(r.w) == pytest.approx(R, rel=1e-12)
        G = (X @ r.w.T - Y).T @ X / len(X)
        np.testing.assert_allclose(G + r.multiplier * r.w, 0, atol=1e-10 * np.abs(G).max())
        # one multiplier for all columns: W = B (H + lam I)^-1
        H, B = X.T @ X / len(X), Y.T @ X / len(X)
        np.testing.assert_allclose(r.w, np.linalg.solve(H + r.multiplier * np.eye(4), B.T).T,
                                   rtol=1e-9, atol=1e-15)
    r = rc.linear_baseline(X, Y, loss="squared", radius=2 * np.linalg.norm(W_ls))
    assert r.multiplier == 0 and np.allclose(r.w, W_ls, atol=1e-10)


def test_class_separability_and_scalar_labels():
    X, y = overlapping(c=2, seed=5)
    assert rc.linear_separability(X, y).status == rc.linear_separability(X, 2.0 * y - 1).status
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(60, 2)), np.ones(60)]
    y = rng.integers(0, 3, 60)
    assert rc.linear_separability(X, y).status == "overlapping"
    # an unseen fourth class: every pair (i, 3) separates (through the constant column)
    sep = rc.linear_separability(X, y, n_classes=4)
    assert sep.status == "quasi_separable" and sep.separated_pairs.shape == (60, 4)
    assert sep.separated_pairs[:, 3].all() and sep.separated_pairs[:, :3].sum() == 0
    w = np.zeros(60)
    w[:3] = 1.0  # three samples are always separable
    sep = rc.linear_separability(X, y, sample_weight=w)
    assert sep.status == "separable" and np.all(pair_margins(sep.direction, X[:3], y[:3]) > 0)


def test_printout_with_matrix_w():
    X, y = overlapping(n=50, c=3, seed=2)
    text = repr(rc.linear_baseline(X, y, loss="cross_entropy"))
    assert "separability" in text and "infimum" in text


@pytest.mark.parametrize("y, kw, err, match", [
    (np.r_[0.5, np.zeros(9)], {}, ValueError, "integer class labels"),
    (np.r_[-1, np.arange(9)], {"n_classes": 3}, ValueError, ">= 0"),
    (np.arange(10) % 3, {"n_classes": 2}, ValueError,
     r"n_classes must be at least max\(y\) \+ 1 = 3"),
    (np.zeros(10, int), {}, ValueError, "at least 2 classes"),
    (np.zeros((10, 2), int), {}, ValueError, "1-D"),
    (np.arange(9) % 2, {}, ValueError, r"shape \(10,\)"),
    (np.array(["a"] * 10), {}, TypeError, "integer class labels"),
    (np.arange(10) % 2, {"n_classes": 1}, ValueError, "n_classes"),
    (np.arange(10) % 2, {"radius": 0.0}, ValueError, "radius"),
    (np.arange(10) % 2, {"radius": -1.0}, ValueError, "radius"),
])
def test_bad_input(y, kw, err, match):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(err, match=match):
        rc.linear_baseline(X, y, loss="cross_entropy", **kw)


def test_bad_input_squared_and_others():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match=r"shape \(10, any\)"):
        rc.linear_baseline(X, np.zeros((9, 2)), loss="squared")
    with pytest.raises(ValueError, match="n_classes is for the cross_entropy"):
        rc.linear_baseline(X, np.zeros((10, 2)), loss="squared", n_classes=2)
    with pytest.raises(ValueError, match="n_classes is for the cross_entropy"):
        rc.linear_baseline(X, np.ones(10), loss="logistic", n_classes=2)
    with pytest.raises(ValueError, match="radius"):
        rc.linear_baseline(X, np.zeros((10, 2)), loss="squared", radius=np.nan)
    with pytest.raises(ValueError, match="labels -1 or \\+1|>= 0"):
        rc.linear_separability(X, -np.arange(10.0))


@pytest.mark.parametrize("masked", [False, True])
def test_passes_gradient_and_hessian(masked):
    """The streamed passes in Z (W = P Z) against finite differences and the Hessian
    sum_i s_i (diag(pi) - pi pi^T) kron x_i x_i^T written out in W, reduced by P."""
    from resnet_core._vector_rows import MemoryRows
    from resnet_core.linear_vector import CrossEntropyPasses

    rng = np.random.default_rng(3)
    n, d, c = 70, 3, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, c, n)
    s = rng.uniform(0.5, 1.5, n)
    s /= s.sum()
    allowed = rng.uniform(size=(n, c)) < 0.6 if masked else np.ones((n, c), bool)
    allowed[np.arange(n), y] = True
    passes = CrossEntropyPasses(MemoryRows(X, y, s), c, allowed if masked else None)
    z = rng.normal(size=(c - 1) * d)
    P = passes.P

    def value(zz):
        p = np.where(allowed, X @ (P @ zz.reshape(c - 1, d)).T, -np.inf)
        return float(s @ (logsumexp(p, axis=1) - p[np.arange(n), y]))

    m = passes.full(z)
    assert m.F == pytest.approx(value(z), rel=1e-14) and passes.value(z) == pytest.approx(m.F)
    h = 1e-4
    fd = np.array([(value(z + h * e) - value(z - h * e)) / (2 * h) for e in np.eye(z.size)])
    np.testing.assert_allclose(m.g, fd, rtol=1e-7, atol=1e-9)
    p = np.where(allowed, X @ (P @ z.reshape(c - 1, d)).T, -np.inf)
    pi = np.exp(p - logsumexp(p, axis=1)[:, None])
    H_W = sum(s[i] * np.kron(np.diag(pi[i]) - np.outer(pi[i], pi[i]), np.outer(X[i], X[i]))
              for i in range(n))
    K = np.kron(P, np.eye(d))
    H = K.T @ H_W @ K
    np.testing.assert_allclose((m.Q * m.ev) @ m.Q.T, H, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-100, 1e-8, 1e8, 1e100])
def test_scale_of_x_rescales_w(scale):
    X, y = overlapping(n=120, c=3, seed=9)
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    rs = rc.linear_baseline(X * scale, y, loss="cross_entropy")
    assert rs.converged and rs.fun == pytest.approx(r.fun, rel=1e-13)
    np.testing.assert_allclose(rs.w * scale, r.w, rtol=1e-8, atol=1e-12)


def test_n_threads():
    X, y = overlapping(n=300, c=3, seed=8)
    r1 = rc.linear_baseline(X, y, loss="cross_entropy", n_threads=1)
    r2 = rc.linear_baseline(X, y, loss="cross_entropy", n_threads=2)
    assert r1.fun == pytest.approx(r2.fun, rel=1e-14)
    np.testing.assert_allclose(r1.w, r2.w, atol=1e-12)
    with pytest.raises(ValueError, match="n_threads"):
        rc.linear_baseline(X, y, loss="cross_entropy", n_threads=0)


@pytest.mark.parametrize("seed", [0, 3])
def test_overlap_certificate_gives_positive_pair_weights(seed):
    """The certificate's weights lam'_ij = s_i pi_ij (1 + a_ij^T v), rebuilt here in NumPy,
    are positive and combine the pair vectors to (nearly) 0; the linear program agrees; on
    quasi-separable data the certificate fails."""
    from resnet_core._vector_rows import MemoryRows
    from resnet_core.linear_vector import CrossEntropyPasses
    from resnet_core.separability import minimiser_certificate

    X, y = overlapping(n=300, d=3, c=4, seed=seed)
    c, s = 4, np.full(len(y), 1 / len(y))
    r = rc.linear_baseline(X, y, loss="cross_entropy")
    assert r.separability == "overlapping" and r.attained is True and "certified" in r.method
    assert rc.linear_separability(X, y).status == "overlapping"
    passes = CrossEntropyPasses(MemoryRows(X, y, s), c)
    z = passes.coords(r.w)
    assert minimiser_certificate(passes.certificate_sums(z)) < 1
    # independent: pairs a_ij = (e_y - e_j) x_i^T, weights s_i pi_ij, v = M^-1 g in W-space
    p = X @ r.w.T
    pi = np.exp(p - logsumexp(p, axis=1)[:, None])
    i, j = np.nonzero(np.arange(c)[None, :] != y[:, None])
    A = np.zeros((i.size, c, X.shape[1]))
    A[np.arange(i.size), y[i]] += X[i]
    A[np.arange(i.size), j] -= X[i]
    A = A.reshape(i.size, -1)
    lam = s[i] * pi[i, j]
    g = -(lam @ A)
    M = (A * lam[:, None]).T @ A
    v = np.linalg.lstsq(M, g, rcond=None)[0]
    lam2 = lam * (1 + A @ v)
    assert np.all(lam2 > 0.5 * lam)
    assert np.linalg.norm(lam2 @ A) < 1e-12 * np.linalg.norm(lam) * np.abs(X).max()
    # quasi-separable: some pair weights go to 0 along Newton's run; no certificate
    X, y = quasi_separable()
    passes = CrossEntropyPasses(MemoryRows(X, y, np.full(len(y), 1 / len(y))), 3)
    z = passes.coords(rc.linear_baseline(X, y, loss="cross_entropy",
                                         max_lp_entries=1).w)
    assert not minimiser_certificate(passes.certificate_sums(z)) < 1


def test_gram_model_agrees_with_the_qr_factor(rng):
    """The cross-entropy Newton model from the Gram pass against the QR factor's."""
    from resnet_core._vector_rows import MemoryRows
    from resnet_core.linear_vector import CrossEntropyPasses
    X = np.c_[rng.standard_normal((300, 4)), np.zeros(300), np.ones(300)]  # a zero feature
    y = rng.integers(0, 4, 300)
    s = np.full(300, 1 / 300)
    z = 0.3 * rng.standard_normal(3 * 6)
    gram = CrossEntropyPasses(MemoryRows(X, y, s), 4).full(z)
    qr = CrossEntropyPasses(MemoryRows(X, y, s), 4, exact=True).full(z)
    H_gram = (gram.Q * gram.ev) @ gram.Q.T
    H_qr = (qr.Q * qr.ev) @ qr.Q.T
    assert np.abs(H_gram - H_qr).max() < 1e-12 * np.abs(H_qr).max()
    assert gram.F == qr.F and np.array_equal(gram.g, qr.g)
    assert np.sum(gram.ev == 0) == 3  # the zero feature's coordinates, exactly null


def test_every_passes_class_implements_the_declared_interface():
    """Issue 20: the passes of one output, of the cross-entropy and of least squares have
    every member of the protocol they are declared to implement (``_baseline.Passes``,
    ``_baseline.MarginPasses``)."""
    from resnet_core._baseline import MarginPasses, Passes
    from resnet_core._data import prepare
    from resnet_core.linear import EnginePasses
    from resnet_core._vector_rows import MemoryRows
    from resnet_core.linear_vector import CrossEntropyPasses, LeastSquaresPasses
    from resnet_core.losses import get_loss

    def members(proto):
        names = set()
        for cls in proto.__mro__:
            if cls.__name__ in ("Passes", "MarginPasses"):
                names |= {n for n in vars(cls) if not n.startswith("_")}
                names |= set(getattr(cls, "__annotations__", {}))
        return names

    X, y = overlapping(n=40, c=3, seed=1)
    eng = prepare(X, np.where(y == 0, 1.0, -1.0), loss=get_loss("logistic"),
                  sample_weight=None, n_threads=None).engine(0, n_threads=None)
    s = np.full(40, 1 / 40)
    margin = [EnginePasses(eng), CrossEntropyPasses(MemoryRows(X, y, s), 3)]
    plain = [LeastSquaresPasses(MemoryRows(X, np.ones((40, 2)), s), 2)]
    assert {"separation", "certificate_sums", "push", "far_margin"} <= members(MarginPasses)
    for passes in margin:
        assert passes.decides_separability
        assert all(hasattr(passes, m) for m in members(MarginPasses)), type(passes)
    for passes in plain + margin:
        assert all(hasattr(passes, m) for m in members(Passes)), type(passes)



def _computed_margins(W, i0, Xb, y, s):
    """Per sample, the least computed pair margin (the check before review 4's N2, rounding
    not bounded)."""
    from resnet_core._vector_rows import pair_gaps
    return pair_gaps(W, Xb, y, np.ones_like(s)).min(axis=1)


def _on_the_hyperplane(W, n, rng):
    """``n`` samples of class 0 with ``x_{d-1}`` set so that the pair margin
    ``(w_0 - w_1)^T x`` is 0 up to rounding (``x_0 = 1``: class 2 far below), and each
    sample's least exact pair margin (fractions)."""
    from fractions import Fraction
    v = W[0] - W[1]
    X = np.c_[np.ones(n), rng.uniform(-1, 1, size=(n, W.shape[1] - 1))]
    X[:, -1] = -(X[:, :-1] @ v[:-1]) / v[-1]
    Wf = [[Fraction(a) for a in w] for w in W]
    exact = [min(sum((a - b) * Fraction(x) for a, b, x in zip(Wf[0], Wf[k], row))
                 for k in (1, 2)) for row in X]
    return X, np.array(exact, dtype=object)


@pytest.mark.parametrize("streamed", [False, True])
def test_separation_is_rounding_bounded(streamed, tmp_path):
    """Review 4, N2: the c-output separation check subtracts a bound of each pair margin's
    rounding.  Samples within rounding of the pair hyperplane ``(w_0 - w_1)^T x = 0``, kept
    (weight 1) where the computed margin is positive: some are positive only by rounding
    (exact margin <= 0, fractions), and the old check's least margin was positive (so
    ``margin_baseline`` answered "separable"); the bounded one is below every exact margin,
    so not positive, in memory and streamed (memmap through the engine's ``map_rows``)."""
    from resnet_core._data import prepare
    from resnet_core._vector_rows import EngineRows, MemoryRows
    from resnet_core.linear_vector import CrossEntropyPasses
    from resnet_core.losses import get_loss

    rng = np.random.default_rng(3)
    n, d = 400, 7
    W0 = np.zeros((3, d))
    W0[:2, 1:] = rng.uniform(-1, 1, (2, d - 1))
    W0[:, 0] = [50.0, 50.0, -100.0]
    y = np.zeros(n, np.intp)
    base = CrossEntropyPasses(MemoryRows(W0, y[:3], np.ones(3)), 3)  # W = P Z, no data
    z = base.coords(W0)

    def passes(s):
        if not streamed:
            return CrossEntropyPasses(MemoryRows(X, y, s), 3)
        np.save(tmp_path / "X.npy", X)
        eng = prepare(np.load(tmp_path / "X.npy", mmap_mode="r"), y,
                      loss=get_loss("cross_entropy"), sample_weight=s, n_classes=3)
        return CrossEntropyPasses(EngineRows(eng.engine(0, n_threads=None), True), 3)

    W = base.weights(z)
    X, exact = _on_the_hyperplane(W, n, rng)
    computed = passes(np.ones(n)).data.fold(
        functools.partial(_computed_margins, W), lambda a, b: np.r_[a, b])
    keep = computed > 0
    assert np.any(exact[keep] <= 0)  # positive only by rounding
    sub = passes(keep.astype(np.float64))
    assert sub.data.fold(functools.partial(_computed_margins, W), lambda a, b: np.r_[a, b]
                         )[keep].min() > 0  # the old check: "separable"
    assert sub.separation(z) <= min(exact[keep]) <= 0
    assert passes(np.ones(n)).separation(z) <= min(exact)
    # a clear separation (w_0's bias one more) is still proven
    bias = np.zeros((3, d))
    bias[0, 0] = 1.0
    assert passes(np.ones(n)).separation(z + base.coords(bias)) > 0.5
