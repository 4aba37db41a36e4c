"""check_sopsp: the three lambda_min methods agree, Example 1 is certified as the paper
says, inconclusive solves are reported as such, the report serialises."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import ArpackNoConvergence

import resnet_core as rc
from resnet_core import _certificate, certify, theory
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

    monkeypatch.setattr(_certificate, "eigsh", give_up)
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
    for key in ("eps-SOPSP", "lambda_min", "inf F_lin", "Lemma 1", "Theorem 1"):
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
    with pytest.raises(ValueError, match="at most one of mu2, mu2_region and curvature_tol"):
        rc.check_sopsp(fo, z, eps=0.1, mu2=1, curvature_tol=1)
    with pytest.raises(ValueError, match="w_star must have shape"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.zeros(5))
    with pytest.raises(TypeError, match="Objective or a FeatureObjective"):
        rc.check_sopsp("f", z, eps=0.1)
    with pytest.raises(ValueError, match="z must have shape"):
        rc.check_sopsp(fo, z[:-1], eps=0.1)


# -- the baseline the certificate compares with (issue 8) -----------------------------------

def test_a_linear_predictor_does_not_beat_the_best_one():
    """At the least-squares point with V = 0 the network is a linear predictor: the gap to
    the best one is 0 (raw diabetes features; the old baseline reported -2935 +- 279)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    X = np.column_stack([X, np.ones(len(X))])
    Phi = np.tanh(X[:, :3] / X[:, :3].std(0))
    fo = rc.FeatureObjective(X, Phi, y, loss="squared")
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    r = rc.check_sopsp(fo, fo.pack(w, np.zeros((11, 3))), eps=1.0)
    assert r.baseline_attained and r.baseline_converged
    assert abs(r.gap) <= 1e-9 * r.F and r.gap_se < 1e-6 * r.F


def test_separable_data_compare_with_the_infimum_zero(rng):
    X = rng.standard_normal((200, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    fo = rc.FeatureObjective(X, np.tanh(X[:, 1:]), y)
    z = 0.1 * rng.standard_normal(fo.n_params)
    r = rc.check_sopsp(fo, z, eps=0.1)
    assert r.F_lin_star == 0.0 and r.baseline_attained is False and r.gap == r.F
    assert r.F_lin_at_w_star < 1e-15 and r.lemma1_holds and r.theorem1_holds
    d = r.to_dict()
    assert d["baseline_attained"] is False and d["baseline_converged"] is True
    assert "NOT attained" in str(r) and "Corollary 1" in str(r)
    ball = rc.check_sopsp(fo, z, eps=0.1, radius=1.0)
    assert ball.radius == 1.0 and ball.baseline_attained and ball.F_lin_star > 0
    assert "||w|| <= 1" in str(ball)


def test_a_baseline_that_did_not_converge_warns(rng):
    X = rng.standard_normal((50, 2))

    def unbounded(p, y):  # no minimum: the solver cannot converge
        return -p, -np.ones_like(p), np.zeros_like(p)

    fo = rc.FeatureObjective(X, np.tanh(X), rng.standard_normal(50), loss=unbounded)
    with pytest.warns(certify.BaselineWarning, match="did not converge"):
        r = rc.check_sopsp(fo, np.ones(fo.n_params), eps=0.1)
    assert r.baseline_converged is False and "NOT converged" in str(r)


def test_float32_data_is_not_copied_to_float64(rng):
    import tracemalloc

    n, d = 200_000, 16
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] + 0.1 * rng.standard_normal(n)).astype(np.float32)
    fo = rc.FeatureObjective(X, np.tanh(X[:, :2]), y, loss="squared", n_threads=1)
    z = np.concatenate([np.ones(d), np.zeros(2 * d)]).astype(np.float32) * 0.1
    fo.linear_baseline()
    tracemalloc.start()
    rc.check_sopsp(fo, z, eps=0.1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # the point's three per-sample vectors (float32), blocks of 16384 samples, no more
    # (a float64 copy of X would be 2 x X.nbytes)
    assert peak < 3 * X[:, 0].nbytes + 0.1 * X.nbytes + 2**20


# -- mu2: given, estimated on a stated region, or not given -------------------------------

def test_mu2_not_given_decides_only_what_any_mu2_decides():
    obj, z0 = theory.example1(0.1)
    r = rc.check_sopsp(obj, z0, eps=0.1)
    assert r.mu2 is None and r.mu2_source == "not given" and r.threshold is None
    assert r.is_sopsp is None and r.mu2_needed == pytest.approx(0.1, rel=1e-12)
    assert "holds for mu2 >= about 0.1" in str(r)
    json.dumps(r.to_dict())


def test_mu2_estimated_on_remark3_box_certifies_example1():
    from resnet_core.lipschitz import Box

    for eps in (1.0, 0.1):
        obj, z0 = theory.example1(eps)
        box = Box(np.full(2, -2 / eps), np.full(2, 2 / eps))
        r = rc.check_sopsp(obj, z0, eps=eps, mu2_region=box)
        assert r.mu2_source == "estimated (proven bound)" and r.mu2 >= 10.648 * eps
        assert r.mu2_region["kind"] == "box" and r.is_sopsp is True
        assert "mu2" in r.to_dict() and "box" in str(r)
    with pytest.raises(TypeError, match="mu2_region"):
        rc.check_sopsp(obj, z0, eps=0.1, mu2_region=(0, 1))
