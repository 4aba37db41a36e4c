"""The paper's results as inequalities on random problems and points (hypothesis), and at
the local minima a second-order solver finds (Corollary 1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import resnet_core as rc
from resnet_core import certify, theory
from conftest import make_data

problems = dict(n=st.integers(3, 40), d=st.integers(1, 4), k=st.integers(1, 4),
                loss=st.sampled_from(["logistic", "squared", "smoothed_hinge"]),
                seed=st.integers(0, 2**31))


def _problem(n, d, k, loss, seed):
    rng = np.random.default_rng(seed)
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, sample_weight=sw)
    return rng, X, y, sw, fo


def _F_lin(fo, X, y, sw, w_star):
    p = X @ w_star
    return float(np.average(fo.loss.derivatives(p, y)[0], weights=sw))


@settings(max_examples=200, deadline=None)
@given(**problems, scale=st.floats(0.01, 10.0))
def test_lemma1_and_theorem1(n, d, k, loss, seed, scale):
    rng, X, y, sw, fo = _problem(n, d, k, loss, seed)
    z = scale * rng.standard_normal(fo.n_params)
    w, V = fo.unpack(z)["w"], fo.unpack(z)["V"]
    w_star = rng.standard_normal(d) * rng.choice([0.1, 1.0, 10.0])
    F, grad = fo.fun_and_grad(z)
    gap = F - _F_lin(fo, X, y, sw, w_star)
    inner = theory.lemma1_inner(fo, z, w_star)
    # the identity <G, grad F> = E[l' (p - w*^T x)] ...
    p = X @ w + fo.Phi @ (V.T @ w)
    l1 = fo.loss.derivatives(p, y)[1]
    expect = float(np.average(l1 * (p - X @ w_star), weights=sw))
    tol = 1e-9 * (1 + abs(expect) + abs(F))
    assert inner == pytest.approx(expect, abs=tol)
    # ... and the inequality (convexity of l in p), then Theorem 1
    assert inner >= gap - tol
    assert np.linalg.norm(grad) >= theory.theorem1_bound(gap, w, V, w_star) - tol


@settings(max_examples=200, deadline=None)
@given(**problems)
def test_theorem2_at_w_zero(n, d, k, loss, seed):
    rng, X, y, sw, fo = _problem(n, d, k, loss, seed)
    z = np.r_[np.zeros(d), rng.standard_normal(d * k) * rng.choice([0.1, 1, 10])]
    w_star = rng.standard_normal(d)
    gap = fo.fun(z) - _F_lin(fo, X, y, sw, w_star)
    st = fo.stats(z)
    lam = certify.lambda_min_structured(fo, z)  # exact
    lhs = theory.theorem2_lhs(float(np.linalg.norm(st.grad)), lam.value, st.A, fo.unpack(z)["V"],
                              w_star)
    assert lam.value <= min(1e-12, lam.error)
    assert lhs >= gap - 1e-12 * (1 + abs(gap)), (lhs, gap)


def _local_minimum(fo, z0):
    res = minimize(fo.fun, z0, jac=fo.grad, hess=fo.hessian, method="trust-exact",
                   options={"gtol": 1e-10, "maxiter": 3000})
    lam = certify.lambda_min_structured(fo, res.x)
    return res, lam


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 30), d=st.integers(1, 3), k=st.integers(1, 3),
       loss=st.sampled_from(["squared", "logistic"]), seed=st.integers(0, 2**31))
def test_corollary1_local_minima_beat_linear(n, d, k, loss, seed):
    rng, X, y, sw, fo = _problem(n, d, k, loss, seed)
    if loss == "logistic":
        y[: max(2, n // 4)] *= -1  # not separable: the linear infimum is attained
        fo = rc.FeatureObjective(X, fo.Phi, y, loss=loss, sample_weight=sw)
    lin = rc.linear_baseline(X, y, loss=loss, sample_weight=sw, max_iter=200)
    if not lin.converged:
        return
    res, lam = _local_minimum(fo, rng.standard_normal(fo.n_params))
    grad_norm = np.linalg.norm(fo.grad(res.x))
    if grad_norm > 1e-8 or lam.value < -1e-8:
        return  # the solver did not reach a second-order point: nothing to check
    assert res.fun <= lin.infimum + 1e-6 * (1 + abs(lin.infimum))


def test_corollary1_finds_minima(rng):
    """The property above is not vacuous: the solver reaches local minima here."""
    found = 0
    for seed in range(10):
        _, X, y, sw, fo = _problem(20, 2, 2, "squared", seed)
        res, lam = _local_minimum(fo, np.random.default_rng(seed).standard_normal(fo.n_params))
        lin = rc.linear_baseline(X, y, loss="squared", sample_weight=sw)
        if np.linalg.norm(fo.grad(res.x)) <= 1e-8 and lam.value >= -1e-8:
            found += 1
            assert res.fun <= lin.fun + 1e-6
    assert found >= 8


def test_example1_formulas_match_paper():
    for eps in (1.0, 0.3):
        obj, z0 = theory.example1(eps)
        for w, v in [(0.3, -0.7), (1.5, 2.0), (0.0, -1 / eps)]:
            z = np.array([w, v])
            r = w - 1 + eps * w * v
            assert obj.fun(z) == pytest.approx(0.5 * (w * (1 + eps * v) - 1) ** 2, abs=1e-15)
            assert np.allclose(obj.grad(z), [r * (1 + eps * v), r * eps * w], atol=1e-15)
            off = eps * (2 * w + 2 * eps * w * v - 1)
            assert np.allclose(obj.hessian(z), [[(1 + eps * v) ** 2, off], [off, eps**2 * w**2]],
                               atol=1e-14)


@pytest.mark.parametrize("panel", ["a", "b", "c"])
def test_figure1_derivatives(panel):
    P = theory.figure1(panel)
    rng = np.random.default_rng(0)
    for z in rng.standard_normal((5, 2)) * 2:
        h = 1e-6
        fd = [(P.fun(z + h * e) - P.fun(z - h * e)) / (2 * h) for e in np.eye(2)]
        assert np.allclose(P.grad(z), fd, atol=1e-7)
        fdH = np.array([(P.grad(z + h * e) - P.grad(z - h * e)) / (2 * h) for e in np.eye(2)])
        assert np.allclose(P.hessian(z), fdH, atol=1e-6)
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 5), np.linspace(-2, 2, 7)), axis=-1)
    assert P.fun(grid).shape == (7, 5) and P.hessian(grid).shape == (7, 5, 2, 2)


def test_figure1b_has_the_spurious_minimum_the_paper_reports():
    P = theory.figure1("b")
    res = minimize(lambda z: P.fun(z), np.array([-1.0, -1.5]), jac=P.grad, hess=P.hessian,
                   method="trust-exact", options={"gtol": 1e-10})
    assert np.linalg.norm(P.grad(res.x)) < 1e-7
    assert np.all(np.linalg.eigvalsh(P.hessian(res.x)) > 0)
    assert np.allclose(res.x, [-1.0, -1.6], atol=0.15)  # "around (-1, -1.6)"
    best = minimize(lambda z: P.fun(z), np.array([1.0, 0.0]), jac=P.grad, hess=P.hessian,
                    method="trust-exact")
    assert best.fun < res.fun - 0.1  # a worse, spurious local minimum


def test_theory_errors():
    with pytest.raises(ValueError, match="w != 0"):
        theory.lemma1_direction(np.zeros(2), np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="eps must be a positive"):
        theory.example1(0.0)
    with pytest.raises(ValueError, match="panel must be one of"):
        theory.figure1("d")
