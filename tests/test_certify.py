"""check_sopsp: the three lambda_min methods agree, Example 1 is certified as the paper
says, inconclusive solves are reported as such, the report serialises."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import ArpackNoConvergence

import resnet_core as rc
from resnet_core import certify, theory
from conftest import make_data


def _fo(rng, n, d, k, loss="logistic", head="residual"):
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    return rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), d=st.integers(1, 5), k=st.integers(1, 5),
       loss=st.sampled_from(["logistic", "squared"]), head=st.sampled_from(["residual", "skip"]),
       w_zero=st.booleans(), g_zero=st.booleans(), seed=st.integers(0, 2**31))
def test_three_methods_agree(n, d, k, loss, head, w_zero, g_zero, seed):
    rng = np.random.default_rng(seed)
    fo = _fo(rng, n, d, k, loss, head)
    z = rng.standard_normal(fo.n_params)
    if w_zero:
        z[:d] = 0
    H = fo.hessian(z)
    scale = max(np.linalg.norm(H, 2), 1e-300)
    exact = np.linalg.eigvalsh(H)[0]
    for method in ("structured", "dense", "lanczos"):
        lam = certify.LAMBDA_MIN[method](fo, z)
        assert lam.converged
        assert abs(lam.value - exact) <= 1e-8 * scale + lam.error, method


def test_reduced_hessian_spectrum_is_the_full_spectrum(rng):
    fo = _fo(rng, 50, 4, 3)
    for z in (rng.standard_normal(fo.n_params), np.r_[np.zeros(4), rng.standard_normal(12)]):
        st_ = fo.stats(z)
        M, zeros = rc.reduced_hessian(fo.unpack(z)["w"], st_.A, st_.B, st_.C, st_.g)
        mine = np.sort(np.r_[np.linalg.eigvalsh(M), np.zeros(zeros)])
        assert mine.size == fo.n_params
        assert np.allclose(mine, np.linalg.eigvalsh(fo.hessian(z)), atol=1e-13)


def test_reduced_hessian_with_zero_gradient_features():
    """g = E[l' phi] = 0 drops the Q block (and with w = 0 leaves A alone)."""
    rng = np.random.default_rng(1)
    d, k = 3, 2
    A = rng.standard_normal((d, d))
    A = A @ A.T
    B, C = rng.standard_normal((d, k)), np.eye(k)
    w = rng.standard_normal(d)
    M, zeros = rc.reduced_hessian(w, A, B, C, np.zeros(k))
    assert M.shape == (d + k, d + k) and zeros == d * k - k
    M0, zeros0 = rc.reduced_hessian(np.zeros(d), A, B, C, np.zeros(k))
    assert np.array_equal(M0, A) and zeros0 == d * k


@pytest.mark.parametrize("eps", [0.1, 0.01, 0.001])
def test_example1_is_an_eps_sopsp_worse_than_linear(eps):
    obj, z0 = theory.example1(eps)
    for method in ("structured", "dense", "lanczos"):
        r = rc.check_sopsp(obj, z0, eps=eps, mu2=1.0, method=method)
        assert r.grad_norm == 0.0
        assert r.lambda_min == pytest.approx(-eps, rel=1e-12)
        assert r.F == 0.5 and r.F_lin_star == pytest.approx(0.0, abs=1e-20)
        assert r.gap == pytest.approx(0.5)
        # -eps >= -sqrt(mu2 eps) exactly when eps <= mu2 (Remark 3: mu2 is a constant)
        assert r.is_sopsp is True
        assert r.theorem2_holds  # w = 0: Theorem 2 applies, and holds
    assert rc.check_sopsp(obj, z0, eps=eps, mu2=eps / 4).is_sopsp is False
    assert np.allclose(np.linalg.eigvalsh(obj.hessian(z0)), [-eps, eps])


def test_gradient_test_fails_away_from_stationarity(rng):
    fo = _fo(rng, 200, 3, 2)
    z = rng.standard_normal(fo.n_params)
    r = rc.check_sopsp(fo, z, eps=1e-6)
    assert r.grad_norm > 1e-6 and r.gradient_ok is False and r.is_sopsp is False


def test_boundary_within_accuracy_is_inconclusive(rng):
    fo = _fo(rng, 100, 3, 2)
    z = rng.standard_normal(fo.n_params)
    lam = certify.lambda_min_structured(fo, z).value
    assert lam < 0
    r = rc.check_sopsp(fo, z, eps=1e9, curvature_tol=-lam)
    assert r.gradient_ok and r.curvature_ok is None and r.is_sopsp is None


def test_unconverged_lanczos_is_inconclusive(rng, monkeypatch):
    fo = _fo(rng, 100, 4, 3)
    z = rng.standard_normal(fo.n_params)

    def give_up(*args, **kwargs):
        raise ArpackNoConvergence("no convergence", np.array([]), np.zeros((fo.n_params, 0)))

    monkeypatch.setattr(certify, "eigsh", give_up)
    r = rc.check_sopsp(fo, z, eps=1e9, method="lanczos")
    assert r.lambda_min_converged is False and r.curvature_ok is None
    assert r.is_sopsp is None
    assert "NOT converged" in str(r) and "inconclusive" in str(r)


def test_report_on_an_objective(rng):
    X, y, sw = make_data(rng, 300, 4, "logistic")
    obj = rc.Objective(X, y, widths=(5, 3), sample_weight=sw)
    x = obj.init(0)
    r = rc.check_sopsp(obj, x, eps=0.05)
    part = obj.partial(x)
    z = x[:part.n_params]
    assert r.grad_norm == pytest.approx(np.linalg.norm(obj.grad(x)[:part.n_params]), rel=1e-12)
    assert r.F == pytest.approx(obj.fun(x), rel=1e-13)
    lin = rc.linear_baseline(X, y, sample_weight=sw)
    assert r.F_lin_star == pytest.approx(lin.fun, rel=1e-12)
    assert r.lambda_min == pytest.approx(np.linalg.eigvalsh(part.hessian(z))[0], abs=1e-12)
    # Lemma 1: <G, grad> equals E[l'(p - w*.x)] and bounds the gap from above
    assert r.lemma1_inner == pytest.approx(r.lemma1_expectation, rel=1e-9, abs=1e-13)
    assert r.lemma1_holds and r.theorem1_holds
    # standard errors: weighted per-sample spread of the loss and of the loss difference
    d = json.loads(json.dumps(r.to_dict()))
    assert d["F"] == r.F and len(d["w_star"]) == 4 and d["is_sopsp"] in (True, False, None)
    assert r.F_se > 0 and r.gap_se > 0
    text = str(r)
    for key in ("eps-SOPSP", "lambda_min", "F_lin(w*)", "Lemma 1", "Theorem 1"):
        assert key in text


def test_standard_error_matches_formula(rng):
    X, y, _ = make_data(rng, 400, 3, "squared")
    Phi = rng.standard_normal((400, 2))
    fo = rc.FeatureObjective(X, Phi, y, loss="squared")
    z = rng.standard_normal(fo.n_params)
    w_star = rng.standard_normal(3)
    r = rc.check_sopsp(fo, z, eps=1.0, w_star=w_star)
    w, V = z[:3], z[3:].reshape(3, 2)
    l = 0.5 * (X @ w + Phi @ (V.T @ w) - y) ** 2
    l_lin = 0.5 * (X @ w_star - y) ** 2
    assert r.F_se == pytest.approx(l.std() / np.sqrt(400), rel=1e-10)
    assert r.gap_se == pytest.approx((l - l_lin).std() / np.sqrt(400), rel=1e-10)
    assert r.F_lin_star == pytest.approx(l_lin.mean(), rel=1e-12)


def test_bad_arguments(rng):
    fo = _fo(rng, 20, 2, 2)
    z = np.zeros(fo.n_params)
    with pytest.raises(ValueError, match="method must be one of"):
        rc.check_sopsp(fo, z, eps=0.1, method="power")
    with pytest.raises(ValueError, match="eps must be"):
        rc.check_sopsp(fo, z, eps=-1)
    with pytest.raises(ValueError, match="mu2 or curvature_tol"):
        rc.check_sopsp(fo, z, eps=0.1, mu2=1, curvature_tol=1)
    with pytest.raises(ValueError, match="w_star must have shape"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.zeros(5))
    with pytest.raises(TypeError, match="Objective or a FeatureObjective"):
        rc.check_sopsp("f", z, eps=0.1)
    with pytest.raises(ValueError, match="z must have shape"):
        rc.check_sopsp(fo, z[:-1], eps=0.1)
