"""The best linear predictor against numpy.linalg.lstsq and scipy.optimize."""

import numpy as np
import pytest
from scipy.optimize import minimize

import resnet_core as rc
from conftest import make_data


def test_squared_matches_weighted_lstsq(rng):
    X, y, sw = make_data(rng, 400, 6, "squared")
    res = rc.linear_baseline(X, y, loss="squared", sample_weight=sw)
    r = np.sqrt(sw)
    w = np.linalg.lstsq(X * r[:, None], y * r, rcond=None)[0]
    assert res.converged and res.grad_norm < 1e-10
    assert np.allclose(res.w, w, rtol=1e-10, atol=1e-12)
    assert res.fun == pytest.approx(0.5 * np.average((X @ w - y) ** 2, weights=sw), rel=1e-12)


def test_rank_deficient_squared(rng):
    X, y, _ = make_data(rng, 100, 3, "squared")
    X = np.column_stack([X, X[:, 0]])  # duplicated column: minimiser not unique
    res = rc.linear_baseline(X, y, loss="squared")
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    assert res.converged and res.fun == pytest.approx(0.5 * np.mean((X @ w - y) ** 2), rel=1e-12)


@pytest.mark.parametrize("loss", ["logistic", "smoothed_hinge"])
def test_margin_losses_match_scipy(loss, rng):
    X, y, sw = make_data(rng, 500, 5, "logistic")
    y[:60] *= -1  # not separable
    res = rc.linear_baseline(X, y, loss=loss, sample_weight=sw)
    obj = rc.FeatureObjective(X, np.zeros((500, 1)), y, loss=loss, head="skip", sample_weight=sw)

    def f(w):
        return obj.fun(np.append(w, 0.0)), obj.grad(np.append(w, 0.0))[:5]

    ref = minimize(f, np.zeros(5), jac=True, method="BFGS", options={"gtol": 1e-12})
    assert res.converged and res.grad_norm < 1e-9
    assert res.fun == pytest.approx(ref.fun, rel=1e-10)
    assert res.fun <= ref.fun + 1e-14


def test_radius_constraint_kkt(rng):
    X, y, _ = make_data(rng, 300, 4, "logistic")
    free = rc.linear_baseline(X, y)
    R = 0.5 * np.linalg.norm(free.w)
    res = rc.linear_baseline(X, y, radius=R)
    assert res.converged and np.linalg.norm(res.w) == pytest.approx(R, rel=1e-10)
    assert res.multiplier > 0 and res.grad_norm < 1e-9
    cons = {"type": "ineq", "fun": lambda w: R**2 - w @ w, "jac": lambda w: -2 * w}
    obj = rc.FeatureObjective(X, np.zeros((300, 1)), y, head="skip")
    ref = minimize(lambda w: obj.fun(np.append(w, 0.0)), np.zeros(4),
                   jac=lambda w: obj.grad(np.append(w, 0.0))[:4], constraints=[cons],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    assert res.fun <= ref.fun + 1e-10
    inactive = rc.linear_baseline(X, y, radius=10 * np.linalg.norm(free.w))
    assert inactive.multiplier == 0 and np.allclose(inactive.w, free.w)


def test_separable_logistic(rng):
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y, max_iter=30)
    assert not res.converged and "separable" in res.message
    bounded = rc.linear_baseline(X, y, radius=2.0)
    assert bounded.converged and np.linalg.norm(bounded.w) == pytest.approx(2.0, rel=1e-10)
