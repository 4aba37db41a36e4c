"""The best linear predictor against independent solvers: numpy.linalg.lstsq, scipy.optimize
and a linear program, on synthetic and bundled data (each row of issue 8's table)."""

import json

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

import resnet_core as rc
from conftest import make_data


def _lstsq_value(X, y, sw=None):
    sw = np.full(len(y), 1.0 / len(y)) if sw is None else sw / sw.sum()
    r = np.sqrt(sw)
    w = np.linalg.lstsq(X * r[:, None], y * r, rcond=None)[0]
    return w, 0.5 * float(sw @ (X @ w - y) ** 2)


EPS = float(np.finfo(np.float64).eps)


def _ill_conditioned(rng, n, d, cond):
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.logspace(0, -np.log10(cond), d)) @ V.T * np.sqrt(n)


def _logistic_reference(X, y, sw):
    """Newton-CG in scipy on the same weighted objective (independent code)."""
    sw = sw / sw.sum()

    def f(w):
        m = y * (X @ w)
        return float(sw @ np.logaddexp(0, -m)), -(X.T @ (sw * y / (1 + np.exp(m))))

    def hess(w):
        sig = 1 / (1 + np.exp(-y * (X @ w)))
        return (X.T * (sw * sig * (1 - sig))) @ X

    return minimize(f, np.zeros(X.shape[1]), jac=True, hess=hess, method="trust-exact",
                    options={"gtol": 1e-13})


def test_squared_matches_weighted_lstsq(rng):
    X, y, sw = make_data(rng, 400, 6, "squared")
    res = rc.linear_baseline(X, y, loss="squared", sample_weight=sw)
    w, F = _lstsq_value(X, y, sw)
    assert res.converged and res.attained and res.grad_norm < 1e-12
    assert np.allclose(res.w, w, rtol=1e-10, atol=1e-12)
    assert res.fun == pytest.approx(F, rel=1e-13) and res.infimum == res.fun


def test_rank_deficient_squared_gives_the_minimum_norm_solution(rng):
    X, y, _ = make_data(rng, 100, 3, "squared")
    X = np.column_stack([X, X[:, 0]])  # duplicated column: minimiser not unique
    res = rc.linear_baseline(X, y, loss="squared")
    w, F = _lstsq_value(X, y)
    assert res.converged and res.fun == pytest.approx(F, rel=1e-13)
    assert np.allclose(res.w, w, rtol=1e-8)  # lstsq's minimum-norm solution


@pytest.mark.parametrize("scale_X, scale_y", [(1.0, 1.0), (1e-3, 1.0), (1e3, 1e4), (1.0, 1e-5)])
def test_squared_is_invariant_to_the_scale_of_X_and_y(rng, scale_X, scale_y):
    X, y, sw = make_data(rng, 300, 5, "squared")
    base = rc.linear_baseline(X, y, loss="squared", sample_weight=sw)
    res = rc.linear_baseline(scale_X * X, scale_y * y, loss="squared", sample_weight=sw)
    assert res.converged and res.message == base.message
    assert res.fun == pytest.approx(scale_y**2 * base.fun, rel=1e-12)
    assert np.allclose(res.w, base.w * scale_y / scale_X, rtol=1e-9)


@pytest.mark.parametrize("cond", [1e4, 1e6, 1e8])
def test_ill_conditioned_squared_to_full_precision(rng, cond):
    X = _ill_conditioned(rng, 2000, 10, cond)
    y = X @ rng.standard_normal(10) + 0.1 * rng.standard_normal(2000)
    res = rc.linear_baseline(X, y, loss="squared")
    _, F = _lstsq_value(X, y)
    assert res.converged and res.fun <= F * (1 + 1e-11)
    assert res.fun == pytest.approx(F, rel=1e-11)


@pytest.mark.parametrize("cond", [1e4, 1e6])
def test_ill_conditioned_logistic_to_full_precision(rng, cond):
    X = _ill_conditioned(rng, 2000, 10, cond)
    y = np.where(X @ rng.standard_normal(10) + rng.standard_normal(2000) > 0, 1.0, -1.0)
    sw = rng.random(2000) + 0.5
    res = rc.linear_baseline(X, y, sample_weight=sw)
    ref = _logistic_reference(X, y, sw)
    assert res.converged and res.attained and res.separability == "overlapping"
    assert res.fun == pytest.approx(ref.fun, rel=1e-13) and res.fun <= ref.fun + 1e-15


def test_logistic_at_condition_1e8_reaches_below_scipy(rng):
    X = _ill_conditioned(rng, 2000, 10, 1e8)
    y = np.where(X @ rng.standard_normal(10) + rng.standard_normal(2000) > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y)
    ref = _logistic_reference(X, y, np.ones(2000))
    assert res.converged and res.fun <= ref.fun + 1e-15
    assert res.grad_norm < 1e-9


@pytest.mark.parametrize("loss", ["logistic", "smoothed_hinge"])
def test_margin_losses_match_scipy(loss, rng):
    X, y, sw = make_data(rng, 500, 5, "logistic")
    y[:60] *= -1  # not separable
    res = rc.linear_baseline(X, y, loss=loss, sample_weight=sw)
    obj = rc.FeatureObjective(X, np.zeros((500, 1)), y, loss=loss, head="skip", sample_weight=sw)

    def f(w):
        return obj.fun(np.append(w, 0.0)), obj.grad(np.append(w, 0.0))[:5]

    ref = minimize(f, np.zeros(5), jac=True, method="BFGS", options={"gtol": 1e-12})
    assert res.converged and res.attained and res.separability == "overlapping"
    assert res.grad_norm < 1e-9
    assert res.fun == pytest.approx(ref.fun, rel=1e-10) and res.fun <= ref.fun + 1e-14


def test_radius_constraint_kkt(rng):
    X, y, _ = make_data(rng, 300, 4, "logistic")
    free = rc.linear_baseline(X, y)
    R = 0.5 * np.linalg.norm(free.w)
    res = rc.linear_baseline(X, y, radius=R)
    assert res.converged and np.linalg.norm(res.w) == pytest.approx(R, rel=1e-10)
    assert np.linalg.norm(res.w) <= R
    assert res.multiplier > 0 and res.grad_norm < 1e-12
    cons = {"type": "ineq", "fun": lambda w: R**2 - w @ w, "jac": lambda w: -2 * w}
    obj = rc.FeatureObjective(X, np.zeros((300, 1)), y, head="skip")
    ref = minimize(lambda w: obj.fun(np.append(w, 0.0)), np.zeros(4),
                   jac=lambda w: obj.grad(np.append(w, 0.0))[:4], constraints=[cons],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    assert res.fun <= ref.fun + 1e-12 and res.infimum == res.fun
    inactive = rc.linear_baseline(X, y, radius=10 * np.linalg.norm(free.w))
    assert inactive.multiplier == 0 and np.allclose(inactive.w, free.w)


@pytest.mark.parametrize("loss", ["logistic", "smoothed_hinge", "squared"])
def test_every_radius_is_solved_inside_the_ball(rng, loss):
    X, y, sw = make_data(rng, 200, 4, loss)
    X[:, 0] *= 300.0  # raw, badly scaled features
    for R in (1e-6, 1e-3, 0.1, 10.0, 1e4):
        res = rc.linear_baseline(X, y, loss=loss, sample_weight=sw, radius=R)
        assert res.converged and res.attained, (R, res.message)
        assert np.linalg.norm(res.w) <= R
        # KKT: grad + lam w = 0 relative to the gradient's scale at w = 0
        g0 = np.linalg.norm(rc.FeatureObjective(X, np.zeros((200, 1)), y, loss=loss, head="skip",
                                                sample_weight=sw).grad(np.zeros(5)))
        assert res.grad_norm <= 1e-8 * g0


def test_separable_logistic_infimum_not_attained(rng):
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y)
    assert res.converged and not res.attained and res.infimum == 0.0
    assert res.separability == "separable" and "not attained" in res.message
    assert np.all(y * (X @ res.direction) > 0) and res.fun < 1e-15
    assert res.fun == pytest.approx(np.mean(np.logaddexp(0, -y * (X @ res.w))), rel=1e-12)
    bounded = rc.linear_baseline(X, y, radius=2.0)
    assert bounded.converged and np.linalg.norm(bounded.w) == pytest.approx(2.0, rel=1e-10)
    assert bounded.infimum == bounded.fun > 0


def test_separable_smoothed_hinge_zero_is_attained(rng):
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y, loss="smoothed_hinge")
    assert res.converged and res.attained and res.fun == 0.0 and res.infimum == 0.0
    assert np.all(y * (X @ res.w) >= 1.5)


def test_quasi_separable_logistic(rng):
    """Samples with x_1 != 0 are separated by x_1; those on x_1 = 0 overlap: the infimum is
    the minimum over the latter, not attained."""
    X = rng.standard_normal((200, 3))
    X[100:, 0] = 0.0
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    y[100:] = np.where(rng.random(100) < 0.5, 1.0, -1.0)
    res = rc.linear_baseline(X, y)
    assert res.separability == "quasi_separable" and res.converged and not res.attained
    # independent: logistic fit on the overlapping half, counted with weight 1/2
    ref = _logistic_reference(X[100:, 1:], y[100:], np.ones(100))
    assert res.infimum == pytest.approx(0.5 * ref.fun, rel=1e-10)
    assert res.fun == pytest.approx(res.infimum, rel=1e-12)
    hinge = rc.linear_baseline(X, y, loss="smoothed_hinge")
    assert hinge.separability == "quasi_separable" and hinge.attained
    assert hinge.fun == pytest.approx(hinge.infimum, rel=1e-9)


def test_zero_weight_samples_do_not_spoil_separation(rng):
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    y[:5] *= -1
    sw = np.ones(100)
    sw[:5] = 0.0
    res = rc.linear_baseline(X, y, sample_weight=sw)
    assert res.separability == "separable" and res.infimum == 0.0


def test_separability_above_the_lp_limit_is_read_from_newton(rng):
    X = rng.standard_normal((300, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y, max_lp_entries=10)
    assert res.separability == "separable" and res.infimum == 0.0 and not res.attained
    y[:40] *= -1
    res = rc.linear_baseline(X, y, max_lp_entries=10)
    full = rc.linear_baseline(X, y)
    # overlap proved by the minimiser's weights: no linear program needed at any size
    assert res.separability == "overlapping" and res.converged and res.attained
    assert "no linear program" in res.method
    assert res.fun == pytest.approx(full.fun, rel=1e-13)


def test_custom_loss_is_honest(rng):
    X, y, _ = make_data(rng, 200, 3, "squared")

    def pseudo_huber(p, y):
        r = p - y
        s = np.sqrt(1 + r * r)
        return s - 1, r / s, 1 / s**3

    res = rc.linear_baseline(X, y, loss=pseudo_huber)
    ref = minimize(lambda w: np.mean(np.sqrt(1 + (X @ w - y) ** 2) - 1), np.zeros(3),
                   method="BFGS", options={"gtol": 1e-12})
    assert res.converged and res.fun == pytest.approx(ref.fun, rel=1e-10)
    few = rc.linear_baseline(X, y * 1e6, loss=pseudo_huber, max_iter=2)
    assert not few.converged and "not converged" in few.message


def test_float32_data_stays_float32_and_converges(rng):
    X, y, _ = make_data(rng, 500, 5, "logistic")
    y[:50] *= -1
    res32 = rc.linear_baseline(X.astype(np.float32), y)
    res64 = rc.linear_baseline(X, y)
    assert res32.converged and res32.fun == pytest.approx(res64.fun, rel=1e-5)


def test_bad_arguments():
    X, y = np.ones((4, 2)), np.ones(4)
    for kw, msg in [({"radius": 0.0}, "radius"), ({"tol": -1.0}, "tol"),
                    ({"max_iter": 0}, "max_iter"), ({"max_lp_entries": 0}, "max_lp_entries")]:
        with pytest.raises(ValueError, match=msg):
            rc.linear_baseline(X, y, **kw)


# -- the bundled data sets (issue 8's table) ------------------------------------------------

sklearn = pytest.importorskip("sklearn.datasets")


def test_diabetes_raw_features_with_bias():
    X, y = sklearn.load_diabetes(return_X_y=True, scaled=False)
    X = np.column_stack([X, np.ones(len(X))])
    _, F = _lstsq_value(X, y)
    res = rc.linear_baseline(X, y, loss="squared")
    assert res.converged and res.fun == pytest.approx(F, rel=1e-12)
    assert F == pytest.approx(1429.85, abs=0.01)
    big = rc.linear_baseline(X, y * 1e4, loss="squared")
    assert big.fun == pytest.approx(1e8 * F, rel=1e-12)
    Xs = np.column_stack([(X[:, :-1] - X[:, :-1].mean(0)) / X[:, :-1].std(0), X[:, -1]])
    std = rc.linear_baseline(Xs, y * 1e4, loss="squared")  # standardised, y x 1e4
    assert std.converged and std.fun == pytest.approx(_lstsq_value(Xs, y * 1e4)[1], rel=1e-12)
    for R in (300.0, 500.0, 1000.0):
        ball = rc.linear_baseline(X, y, loss="squared", radius=R)
        assert ball.converged and np.linalg.norm(ball.w) <= R
    cons = {"type": "ineq", "fun": lambda w: 300.0**2 - w @ w}
    ref = minimize(lambda w: 0.5 * np.mean((X @ w - y) ** 2), np.zeros(X.shape[1]),
                   jac=lambda w: X.T @ (X @ w - y) / len(y), constraints=[cons],
                   method="SLSQP", options={"ftol": 1e-15, "maxiter": 2000})
    ball = rc.linear_baseline(X, y, loss="squared", radius=300.0)
    assert ball.fun <= ref.fun * (1 + 1e-9) and ball.multiplier > 0


def test_breast_cancer_is_separable():
    X, y = sklearn.load_breast_cancer(return_X_y=True)
    X = np.column_stack([(X - X.mean(0)) / X.std(0), np.ones(len(X))])
    y = np.where(y > 0, 1.0, -1.0)
    sep = rc.linear_separability(X, y)
    assert sep.status == "separable" and np.all(y * (X @ sep.direction) > 0)
    res = rc.linear_baseline(X, y)
    assert res.infimum == 0.0 and not res.attained and res.fun < 1e-15
    hinge = rc.linear_baseline(X, y, loss="smoothed_hinge")
    assert hinge.infimum == 0.0 and hinge.attained and hinge.fun == 0.0


# -- edge cases found in review ---------------------------------------------------------------

def test_margins_at_the_lp_tolerance_fall_back_to_newton(rng):
    """Samples almost (not exactly) on the separating hyperplane: the LP's quasi-separation
    would give an infimum below what any w reaches; it is checked and dropped."""
    XS = rng.standard_normal((20, 3))
    yS = np.where(rng.standard_normal(20) > 0, 1.0, -1.0)
    XS[:, 0] = yS * (0.1 + rng.random(20))
    XR = rng.standard_normal((40, 3))
    XR[:, 0] = 1e-12 * rng.standard_normal(40)
    X = np.vstack([XS, XR])
    y = np.r_[yS, np.where(rng.standard_normal(40) > 0, 1.0, -1.0)]
    res = rc.linear_baseline(X, y)
    full = rc.linear_baseline(X, y, max_lp_entries=1)  # Newton on every sample
    assert res.converged and res.infimum == pytest.approx(full.infimum, rel=1e-12)
    assert res.fun == pytest.approx(res.infimum, rel=1e-12)
    assert res.attained is None and "tolerance" in res.message


def test_quasi_separation_with_the_lp_skipped_leaves_attainment_open(rng):
    X = rng.standard_normal((60, 3))
    X[20:, 0] = 0.0
    y = np.where(rng.standard_normal(60) > 0, 1.0, -1.0)
    y[:20] = np.sign(X[:20, 0])
    exact = rc.linear_baseline(X, y)
    skipped = rc.linear_baseline(X, y, max_lp_entries=1)
    assert exact.separability == "quasi_separable" and exact.attained is False
    assert skipped.separability == "not_decided" and skipped.attained is None
    assert skipped.infimum == pytest.approx(exact.infimum, rel=1e-10)


@pytest.mark.parametrize("scale", [1e-100, 1e-30, 1e30, 1e100])
def test_extreme_scales_keep_full_precision(rng, scale):
    X, y, _ = make_data(rng, 100, 3, "squared")
    base = rc.linear_baseline(X, y, loss="squared")
    res = rc.linear_baseline(scale * X, scale * y, loss="squared")
    assert res.converged and np.allclose(res.w, base.w, rtol=1e-12)
    assert res.fun == pytest.approx(scale**2 * base.fun, rel=1e-12)


def test_huge_weights_are_normalised_not_zeroed(rng):
    X, y, _ = make_data(rng, 30, 2, "squared")
    res = rc.linear_baseline(X, y, loss="squared", sample_weight=np.full(30, 1e308))
    assert res.fun == pytest.approx(rc.linear_baseline(X, y, loss="squared").fun, rel=1e-14)


def test_results_never_leave_the_ball(rng):
    outside = 0
    for _ in range(60):
        X = rng.standard_normal((30, 4))
        y = np.where(rng.standard_normal(30) > 0, 1.0, -1.0)
        R = 10 ** rng.uniform(-3, 0)
        for loss in ("logistic", "squared"):
            outside += np.linalg.norm(rc.linear_baseline(X, y, loss=loss, radius=R).w) > R
    assert outside == 0


def test_an_unconverged_free_solve_is_not_pushed_onto_the_sphere(rng):
    X, y, _ = make_data(rng, 200, 3, "logistic")
    y[:40] *= -1
    res = rc.linear_baseline(X, y, radius=1e3, max_iter=1)
    best = rc.linear_baseline(X, y)
    assert np.linalg.norm(res.w) < 1e3 and res.multiplier == 0.0
    assert res.fun < 2 * best.fun and "inside" in res.message


def test_a_custom_loss_reports_a_stationary_point(rng):
    X, y, _ = make_data(rng, 50, 2, "squared")
    res = rc.linear_baseline(X, y, loss=lambda p, y: (np.cos(p - y), -np.sin(p - y),
                                                      -np.cos(p - y)))
    assert "stationary point" in res.message


def _no_lp(*args, **kwargs):
    raise AssertionError("the linear program over every sample was called")


def test_overlap_at_2e5_samples_is_proved_without_a_linear_program(rng, monkeypatch,
                                                                    tmp_path):
    """Issue 24: the minimiser's weights prove overlap; no program over n."""
    import resnet_core.linear as lin
    monkeypatch.setattr(lin, "binary_separability", _no_lp)
    n = 200_000
    X = rng.standard_normal((n, 6))
    y = np.sign(X[:, 0] + X[:, 1] + rng.standard_normal(n))
    res = rc.linear_baseline(X, y)
    assert res.separability == "overlapping" and res.attained is True and res.converged
    assert "no linear program" in res.method and "\n" in res.message
    assert res.grad_norm < 1e-12
    # float32 in a memmap: the same decision, streamed
    np.save(tmp_path / "X.npy", X[:20_000].astype(np.float32))
    X32 = np.load(tmp_path / "X.npy", mmap_mode="r")
    r32 = rc.linear_baseline(X32, y[:20_000].astype(np.float32))
    assert r32.separability == "overlapping" and r32.attained is True


def test_separation_at_2e5_samples_without_the_full_program(rng, monkeypatch):
    import resnet_core.linear as lin
    monkeypatch.setattr(lin, "binary_separability", _no_lp)
    n = 200_000
    X = rng.standard_normal((n, 6))
    y = np.sign(X[:, 0])
    res = rc.linear_baseline(X, y)
    assert res.separability == "separable" and res.infimum == 0.0 and not res.attained
    assert np.min(y * (X @ res.direction)) > 0 and np.min(y * (X @ res.w)) >= 36 * (1 - 1e-12)


def test_minimiser_certificate_refuses_where_a_recession_direction_exists(rng):
    """Quasi-separable data: whatever point the sums come from, no proof of overlap."""
    from resnet_core._data import prepare
    from resnet_core._gram_pass import gram_pass
    from resnet_core.losses import get_loss
    from resnet_core.separability import minimiser_certificate
    X = rng.standard_normal((400, 3))
    X[200:, 0] = 0.0
    y = np.where(rng.standard_normal(400) > 0, 1.0, -1.0)
    y[:200] = np.sign(X[:200, 0])
    eng = prepare(X, y, loss=get_loss("logistic"), sample_weight=None,
                  n_threads=None).engine(0, n_threads=None)
    res = rc.linear_baseline(X, y, max_lp_entries=1)
    for w in (np.zeros(3), res.w, res.w * 0.5, res.w + [5.0, 0, 0]):
        assert not minimiser_certificate(gram_pass(eng, np.asarray(w, float)).sums) < 1


def test_minimiser_certificate_weights_combine_to_zero(rng):
    """The proof's construction rebuilt in NumPy: lam'_i = lam_i + q_i a_i^T v > 0 and
    sum lam'_i a_i ~ 0 at a logistic minimiser."""
    from resnet_core.separability import CombinationSums, minimiser_certificate
    X = rng.standard_normal((500, 4))
    y = np.sign(X[:, 0] + rng.standard_normal(500))
    w = rc.linear_baseline(X, y).w
    m = y * (X @ w)
    lam = 1 / (1 + np.exp(m)) / 500
    q = lam * (1 / (1 + np.exp(-m)))
    A = X * y[:, None]
    H = (X * q[:, None]).T @ X
    b = A.T @ lam
    sums = CombinationSums(b=b, H=H, b_abs=float(lam @ np.linalg.norm(X, axis=1)),
                           h_trace=float(q @ np.sum(X * X, axis=1)),
                           x_max=float(np.linalg.norm(X, axis=1).max()),
                           q_over_lam=float(np.max(q / lam)), terms=500, positive=True)
    assert minimiser_certificate(sums) < 1e-3
    v = -np.linalg.solve(H, b)
    lam2 = lam + q * (A @ v)
    assert np.all(lam2 > lam / 2) and np.linalg.norm(A.T @ lam2) < 1e-15
    sums.positive = False
    assert minimiser_certificate(sums) == np.inf


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_a_radius_above_the_minimiser_returns_the_unconstrained_minimum_exactly(rng, loss):
    """Issue 19: a radius of 2 ||w*|| gives the unconstrained answer, to the last bit."""
    X, y, _ = make_data(rng, 400, 6, loss)
    X = _ill_conditioned(rng, 400, 6, 1e4) if loss == "squared" else X
    free = rc.linear_baseline(X, y, loss=loss)
    ball = rc.linear_baseline(X, y, loss=loss, radius=2 * np.linalg.norm(free.w))
    assert ball.fun == free.fun and np.array_equal(ball.w, free.w) and ball.multiplier == 0
    assert "inactive" in ball.message


def _exact_logistic(X, y, w, digits=50):
    """``mean_i log(1 + exp(-y_i x_i^T w))`` with the margins exact (fractions of the floats)
    and the logarithms to ``digits`` digits (decimal): an independent high-precision value."""
    from decimal import Decimal, localcontext
    from fractions import Fraction
    with localcontext() as ctx:
        ctx.prec = digits
        total = Decimal(0)
        wf = [Fraction(v) for v in w]
        for xi, yi in zip(X, y):
            m = Fraction(yi) * sum(Fraction(a) * b for a, b in zip(xi, wf))
            md = Decimal(m.numerator) / Decimal(m.denominator)
            total += (1 + (-md).exp()).ln()
        return total / len(y)


def _decimal_solve(H, g):
    """``H^-1 g`` by Gaussian elimination with partial pivoting (Decimal or Fraction)."""
    d = len(g)
    M = [list(H[j]) + [g[j]] for j in range(d)]
    for c in range(d):
        piv = max(range(c, d), key=lambda r: abs(M[r][c]))
        M[c], M[piv] = M[piv], M[c]
        for r in range(c + 1, d):
            f = M[r][c] / M[c][c]
            M[r] = [a - f * b for a, b in zip(M[r], M[c])]
    s = [0] * d
    for c in reversed(range(d)):
        s[c] = (M[c][d] - sum(M[c][k] * s[k] for k in range(c + 1, d))) / M[c][c]
    return s


def _true_logistic_minimum(X, y, w0, digits=40, iters=4):
    """``min_w mean_i log(1 + exp(-y_i x_i^T w))`` by Newton's method in ``decimal`` at
    ``digits + 10`` digits from ``w0`` (quadratic convergence: 4 steps from a float64
    minimiser reach 40 digits), the data exact (every float64 is a finite decimal)."""
    from decimal import Decimal, localcontext
    with localcontext() as ctx:
        ctx.prec = digits + 10
        A = [[Decimal(float(a)) * Decimal(float(b)) for a in row] for row, b in zip(X, y)]
        d = len(A[0])
        w = [Decimal(float(v)) for v in w0]
        for _ in range(iters):
            g = [Decimal(0)] * d
            H = [[Decimal(0)] * d for _ in range(d)]
            for a in A:
                p = 1 / (1 + sum(ai * wi for ai, wi in zip(a, w)).exp())  # sigma(-m)
                for j in range(d):
                    g[j] -= p * a[j]
                    for k in range(d):
                        H[j][k] += p * (1 - p) * a[j] * a[k]
            w = [wi - si for wi, si in zip(w, _decimal_solve(H, g))]
        return +(sum((1 + (-sum(ai * wi for ai, wi in zip(a, w))).exp()).ln() for a in A)
                 / len(A))


def _true_least_squares_minimum(X, y):
    """``min_w mean_i (x_i^T w - y_i)^2 / 2`` exactly, in fractions (normal equations)."""
    from fractions import Fraction
    A = [[Fraction(float(v)) for v in row] for row in X]
    b = [Fraction(float(v)) for v in y]
    n, d = len(A), len(A[0])
    G = [[sum(A[i][j] * A[i][k] for i in range(n)) for k in range(d)] for j in range(d)]
    r = [sum(A[i][j] * b[i] for i in range(n)) for j in range(d)]
    w = _decimal_solve(G, r)
    return (sum(v * v for v in b) - sum(wi * ri for wi, ri in zip(w, r))) / (2 * n)


# Decimal scales (their rounding changes the problem: each has its own minimum) and powers
# of two near them (exact: the minimum of X itself).
SCALES = [1.0, 1e3, 1e-100, 1e100, 2.0**-332, 2.0**332]


@pytest.mark.parametrize("scale", SCALES)
def test_the_minimum_is_never_reported_below_its_exact_value(rng, scale):
    """Issue 19: at condition 1e8 (n = 400, d = 6) the logistic infimum was 3.3e-11 below
    the 40-digit minimum.  Against an independent 40-digit Newton: ``fun >= min - fun_error``
    and ``fun - min`` at the rounding level, from 1e-100 to 1e100 in X; the value at the
    returned w agrees with a 50-digit evaluation within fun_error."""
    from decimal import Decimal
    X = _ill_conditioned(rng, 400, 6, 1e8)
    y = np.where(X @ rng.standard_normal(6) + rng.standard_normal(400) > 0, 1.0, -1.0)
    X = X * scale
    res = rc.linear_baseline(X, y)
    assert res.attained and res.infimum == res.fun and 0 < res.fun_error < 1e-14
    true_min = _true_logistic_minimum(X, y, res.w)
    assert Decimal(res.fun) >= true_min - Decimal(res.fun_error)
    assert Decimal(res.fun) - true_min <= Decimal(32 * EPS * res.fun)
    assert abs(Decimal(res.fun) - _exact_logistic(X, y, res.w)) <= Decimal(res.fun_error)
    assert "fun_error" in str(res)
    assert json.loads(json.dumps(res.to_dict()))["fun_error"] == res.fun_error


@pytest.mark.parametrize("scale", SCALES)
def test_the_least_squares_minimum_is_never_below_its_exact_value(rng, scale):
    """Issue 19, y from 1e-100 to 1e100 (squared loss): the exact rational minimum of the
    normal equations against ``fun`` and ``fun_error``."""
    from fractions import Fraction
    X = _ill_conditioned(rng, 400, 6, 1e8)
    y = (X @ rng.standard_normal(6) + rng.standard_normal(400)) * scale
    res = rc.linear_baseline(X, y, loss="squared")
    true_min = _true_least_squares_minimum(X, y)
    assert res.attained and 0 < res.fun_error < 1e-14 * res.fun
    assert Fraction(res.fun) >= true_min - Fraction(res.fun_error)
    assert Fraction(res.fun) - true_min <= Fraction(32 * EPS * res.fun)


def _issue18_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    return X, np.sign(X[:, 0] + 0.7 * rng.standard_normal(60))


@pytest.mark.parametrize("scale", [1e-310, 1e-300, 1e-200, 1e-160, 1e-100, 1e-20, 1e20,
                                   1e100, 1e160, 1e200, 1e300])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_any_scale_of_X_gives_the_same_answer(loss, scale):
    """Issue 18: X * 1e-200 returned log 2 "converged"; every scale from subnormal to 1e300
    gives the answer of X (solved on X * 2^e, exactly).  Subnormal X (rounded: its own
    answer, to 1e-12) needs |w| ~ 1e310: w_fits says so and w_scaled * 2^w_exponent is it."""
    X, y = _issue18_data()
    base = rc.linear_baseline(X, y, loss=loss)
    if loss == "logistic":
        assert base.fun == pytest.approx(0.29308, abs=1e-5)
    res = rc.linear_baseline(X * scale, y, loss=loss)
    assert res.converged and res.attained
    assert res.fun == pytest.approx(base.fun, rel=1e-12) and res.infimum == res.fun
    assert res.fun_error < 1e-14
    k = 60 if scale < 1e-300 else 0  # 2^-k: brings w back into float64's range
    w_back = np.ldexp(res.w_scaled, res.w_exponent - k) if res.w_scaled is not None else res.w
    assert np.allclose(w_back * (scale * 2.0**k), base.w, rtol=1e-9)
    assert res.w_fits == (scale > 1e-308)
    if not res.w_fits:
        assert not np.all(np.isfinite(res.w)) and "does not fit in float64" in res.message
    elif scale != 1e-20 and scale != 1e20:
        assert np.array_equal(res.w, np.ldexp(res.w_scaled, res.w_exponent))
    assert json.loads(json.dumps(res.to_dict()))["w_fits"] == res.w_fits


def test_a_radius_is_scaled_with_X():
    """The radius and the multiplier follow the rescaling: X c, radius R / c give w / c and
    lam c^2."""
    X, y = _issue18_data()
    base = rc.linear_baseline(X, y, radius=1.0)
    res = rc.linear_baseline(X * 1e-150, y, radius=1e150)
    assert base.multiplier > 0 and res.fun == pytest.approx(base.fun, rel=1e-12)
    assert res.multiplier == pytest.approx(base.multiplier * 1e-300, rel=1e-8)
    assert np.allclose(res.w * 1e-150, base.w, rtol=1e-9) and np.linalg.norm(res.w) <= 1e150


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_a_squared_value_outside_float64_says_so(scale):
    X, y = _issue18_data()
    with pytest.raises(ValueError, match="outside float64's range"):
        rc.linear_baseline(X, y * scale, loss="squared")


def test_squared_loss_with_more_features_than_samples_uses_the_row_space(rng):
    """Issue 18: n = 20, d = 40000 raised MemoryError (a d x d Gram matrix); the minimum-norm
    solution lives in the n-dimensional row space."""
    X = rng.standard_normal((20, 40_000))
    y = rng.standard_normal(20)
    res = rc.linear_baseline(X, y, loss="squared")
    w = np.linalg.lstsq(X, y, rcond=None)[0]  # minimum norm
    assert res.converged and res.fun < 1e-20 and np.allclose(res.w, w, rtol=1e-9, atol=1e-12)
    small = rc.linear_baseline(X[:, :30], y, loss="squared", radius=0.1)
    ref = rc.linear_baseline(np.c_[X[:, :30], np.zeros((20, 5))][:, :35], y, loss="squared",
                             radius=0.1)
    assert small.fun == pytest.approx(ref.fun, rel=1e-10) and np.linalg.norm(small.w) <= 0.1
    Xs, ys, sw = rng.standard_normal((30, 50)), rng.standard_normal(30), rng.random(30)
    res = rc.linear_baseline(Xs, ys, loss="squared", sample_weight=sw)
    r = np.sqrt(sw / sw.sum())
    w = np.linalg.lstsq(Xs * r[:, None], ys * r, rcond=None)[0]
    assert "row space" in res.message and np.allclose(res.w, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1.5e307])
def test_row_space_at_extreme_scales_of_finite_data(rng, scale):
    """d > n at any scale: R^T of X^T = Q R reaches sqrt(d) times X's magnitude (here
    sqrt(400) 1.6e307, past the largest double), so it is solved at the scale of the QR
    (such data once overflowed there and were refused as not finite)."""
    X, y = 1 + 0.1 * rng.random((3, 400)), rng.standard_normal(3)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = rc.linear_baseline(X * scale, y, loss="squared")
    assert res.fun < 1e-20
    w = res.w if res.w_fits else res.w_scaled * 2.0**res.w_exponent
    np.testing.assert_allclose(w * scale, ref, rtol=1e-8, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("d", [1, 2, 5, 8, 33, 128])
def test_dot2_rows_is_within_its_bound_of_the_exact_dot_product(rng, d):
    """The pairwise-cascaded Dot2 (issue 24: log2 d vectorised steps) against the exact
    product in fractions, on rows of mixed magnitudes and on rows that cancel to 1e-15."""
    from fractions import Fraction
    from resnet_core._gram_pass import dot2_rows
    X = rng.standard_normal((12, d)) * 10.0 ** rng.integers(-8, 8, size=(12, d))
    w = rng.standard_normal(d) * 10.0 ** rng.integers(-4, 4, size=d)
    if d % 2 == 0:  # the second half cancels the first up to 1e-15
        h = d // 2
        X[6:, h:] = X[6:, :h] * (1 + 1e-15 * rng.standard_normal((6, h)))
        w[h:] = -w[:h] * (1 + 2.0 ** -40)
    m, bound = dot2_rows(X, w)
    for i in range(12):
        exact = sum(Fraction(a) * Fraction(b) for a, b in zip(X[i], w))
        assert abs(Fraction(m[i]) - exact) <= Fraction(bound[i])
