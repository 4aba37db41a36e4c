"""Theorem 3 evaluated (docs/theorem3.md): the polynomial by hand, and the bound holding at
every certified point tried, on Example 1 and on scikit-learn's diabetes and breast cancer
data."""

import json

import numpy as np
import pytest
import scipy.optimize

import resnet_core as rc
from resnet_core import theory


def test_poly_by_hand():
    b, r, mu0, mu1, mu2 = 2.0, 3.0, 0.5, 4.0, 9.0
    m = 3.0 + 9.0
    c = (np.sqrt(8 + 18), max(6.0, 0.5 + 12 + 6 * m), 6 * np.sqrt(4 * m))
    assert theory.theorem3_coefficients(b, r, mu0, mu1, mu2) == pytest.approx(c, rel=1e-15)
    assert theory.theorem3_poly(b, r, mu0, mu1, mu2) == pytest.approx(sum(c), rel=1e-15)
    eps = 1e-4
    bound = theory.theorem3_bound(eps, b, r, mu0, mu1, mu2)
    assert bound == pytest.approx((eps + eps**0.25) * sum(c), rel=1e-15)
    # the three-term form is the sharper one
    assert c[0] * eps + c[1] * eps**0.5 + c[2] * eps**0.25 <= bound
    with pytest.raises(ValueError, match="mu2"):
        theory.theorem3_poly(b, r, mu0, mu1, -1.0)
    with pytest.raises(ValueError, match="eps"):
        theory.theorem3_bound(np.nan, b, r, mu0, mu1, mu2)


def _check(report, expect_applies=True):
    """The bound's inputs are in the report and its JSON, and it holds where it applies."""
    d = report.to_dict()
    json.dumps(d)
    assert d["theorem3_bound"] is not None, d["theorem3_note"]
    inp = d["theorem3_inputs"]
    assert set(inp) >= {"b", "r", "mu0", "mu1", "mu2", "poly"}
    assert d["theorem3_bound"] == pytest.approx(theory.theorem3_bound(
        report.eps, inp["b"], inp["r"], inp["mu0"], inp["mu1"], inp["mu2"]), rel=1e-12)
    assert "Theorem 3" in str(report)
    if expect_applies:
        assert report.theorem3_applies is True, report.theorem3_note
        assert report.theorem3_holds is True
        assert report.F - report.F_lin_at_w_star <= report.theorem3_bound


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.01])
def test_example1_saddle(eps):
    """The eps-SOPSP of Example 1, F = 1/2 above inf F_lin = 0: the bound holds there and
    grows like 1/eps with the region max(|w|, |v|) <= 1/eps that must hold the point."""
    obj, z0 = theory.example1(eps)
    obj.n_threads = 1
    r = rc.check_sopsp(obj, z0, eps=eps)
    _check(r)
    assert r.gap == pytest.approx(0.5) and r.theorem3_inputs["b"] == pytest.approx(1 / eps)
    assert r.theorem3_inputs["r"] == pytest.approx(1.0)
    # the proven constants of the region: x = y = 1, phi = eps, so a = 1 + b eps = 2
    q = np.sqrt(4 + 1)
    assert r.theorem3_inputs["mu2"] == pytest.approx(3 * q * eps * (1 + 1e-12))
    assert r.theorem3_bound >= 1.4 * eps**0.25 / eps


def test_example1_certified_points_on_a_grid():
    """Every point of a grid that is an eps-SOPSP for the theorem's proven mu2 obeys the
    bound (a given region b = 3)."""
    obj, _ = theory.example1(0.5)
    obj.n_threads = 1
    applied = 0
    for w in np.linspace(-2.5, 2.5, 6):
        for v in np.linspace(-2.5, 2.5, 6):
            z = np.array([w, v])
            eps = max(float(np.linalg.norm(obj.grad(z))), 1e-3) * 1.5
            r = rc.check_sopsp(obj, z, eps=eps, theorem3={"b": 3.0})
            _check(r, expect_applies=False)
            if r.theorem3_applies:
                applied += 1
                assert r.theorem3_holds is True
    assert applied >= 10


def _exact_saddle(fo, y_deriv):
    """``w = 0``, ``V = -s g^T / ||g||^2`` with ``s = E[l'(0) x]``, ``g = E[l'(0) phi]``: the
    gradient is 0 there."""
    s_w = np.asarray(fo.sample_weight)
    s = fo.X.T @ (s_w * y_deriv)
    g = fo.Phi.T @ (s_w * y_deriv)
    V = -np.outer(s, g) / (g @ g)
    return np.concatenate([np.zeros(fo.d), V.ravel()])


def _real(name):
    datasets = pytest.importorskip("sklearn.datasets")
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        loss = "squared"
    else:
        X, y = datasets.load_breast_cancer(return_X_y=True)
        X, y, loss = X[:, :4], np.where(y > 0, 1.0, -1.0), "logistic"
    X = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(0)
    Phi = np.tanh(X @ rng.standard_normal((X.shape[1], 3)) / np.sqrt(X.shape[1]))
    return rc.FeatureObjective(X, Phi, y, loss=loss, n_threads=1), loss


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer"])
def test_real_data_saddle_and_minimum(name):
    """At the exact saddle w = 0 (an eps-SOPSP once eps reaches lambda_min^2 / mu2, with a
    positive gap) and at a local minimum found by L-BFGS, the bound holds."""
    fo, loss = _real(name)
    y = np.asarray(fo.y)
    zs = _exact_saddle(fo, -y if loss == "squared" else -y / 2)
    assert np.linalg.norm(fo.grad(zs)) < 1e-10
    first = rc.check_sopsp(fo, zs, eps=1e-6)
    mu2 = first.theorem3_inputs["mu2"]
    eps = 1.01 * first.lambda_min**2 / mu2
    r = rc.check_sopsp(fo, zs, eps=eps)
    _check(r)
    assert r.gap > 0 and r.theorem3_inputs["b"] == pytest.approx(r.V_norm)

    rng = np.random.default_rng(1)
    z0 = 0.1 * rng.standard_normal(fo.n_params)
    res = scipy.optimize.minimize(fo.fun, z0, jac=fo.grad, method="L-BFGS-B",
                                  options={"gtol": 1e-10, "maxiter": 5000})
    gnorm = float(np.linalg.norm(fo.grad(res.x)))
    r = rc.check_sopsp(fo, res.x, eps=max(2 * gnorm, 1e-9))
    _check(r, expect_applies=False)
    if r.theorem3_applies:
        assert r.theorem3_holds is True


def test_missing_inputs_and_bad_input():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    fo = rc.FeatureObjective(X, np.tanh(X), y, loss=rc.CustomLoss(
        lambda p, y: rc.BUILTIN_LOSSES["logistic"].derivatives(p, y)), n_threads=1)
    z = 0.1 * rng.standard_normal(fo.n_params)
    r = rc.check_sopsp(fo, z, eps=1e-3)
    assert r.theorem3_bound is None and "no bounds" in r.theorem3_note
    assert "Theorem 3" in str(r) and "not evaluated" in str(r)
    # given constants evaluate it
    r = rc.check_sopsp(fo, z, eps=1e-3, theorem3={"mu0": 1.0, "mu1": 2.0, "mu2": 3.0})
    assert r.theorem3_bound is not None
    assert r.theorem3_inputs["mu2_source"] == "given"
    with pytest.raises(ValueError, match="theorem3"):
        rc.check_sopsp(fo, z, eps=1e-3, theorem3={"c": 1.0})
    with pytest.raises(ValueError, match=r"theorem3\['b'\]"):
        rc.check_sopsp(fo, z, eps=1e-3, theorem3={"b": -1.0})
    skip = rc.FeatureObjective(X, np.tanh(X), y, loss="logistic", head="skip", n_threads=1)
    r = rc.check_sopsp(skip, np.zeros(skip.n_params), eps=1e-3)
    assert r.theorem3_bound is None and "residual head" in r.theorem3_note


def test_constants_stream_over_every_kind_of_data(tmp_path):
    """The proven constants read the data block by block: the same on in-memory, memmap and
    dask data, and with MLP features streamed or materialized."""
    rng = np.random.default_rng(2)
    n, d = 500, 3
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] + rng.standard_normal(n) > 0, 1.0, -1.0)
    obj = rc.Objective(X, y, widths=(4,), loss="logistic", n_threads=1)
    x = obj.init(0)
    streamed, materialized = obj.partial(x), obj.partial(x, materialize=True)
    ref = rc.lipschitz.derivative_bounds(materialized, 1.5, 2.0)
    got = rc.lipschitz.derivative_bounds(streamed, 1.5, 2.0)
    assert (got.mu0, got.mu1, got.mu2) == pytest.approx((ref.mu0, ref.mu1, ref.mu2), rel=1e-12)
    Phi = np.asarray(materialized.Phi)[:, :-1] if materialized.feature_bias else materialized.Phi
    np.save(tmp_path / "X.npy", X)
    kinds = [np.load(tmp_path / "X.npy", mmap_mode="r")]
    da = pytest.importorskip("dask.array")
    kinds.append(da.from_array(X, chunks=(128, d)))
    fb = materialized.feature_bias
    base = rc.FeatureObjective(X, Phi, y, loss="logistic", feature_bias=fb, n_threads=1)
    ref = rc.lipschitz.derivative_bounds(base, 1.5, 2.0)
    for Xk in kinds:
        Phik = Phi if not hasattr(Xk, "compute") else da.from_array(Phi, chunks=(128, Phi.shape[1]))
        yk = y if not hasattr(Xk, "compute") else da.from_array(y, chunks=128)
        fo = rc.FeatureObjective(Xk, Phik, yk, loss="logistic", feature_bias=fb, n_threads=1)
        got = rc.lipschitz.derivative_bounds(fo, 1.5, 2.0)
        assert (got.mu0, got.mu1, got.mu2) == pytest.approx((ref.mu0, ref.mu1, ref.mu2),
                                                            rel=1e-12)
