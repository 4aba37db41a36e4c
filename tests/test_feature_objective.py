"""FeatureObjective: value, gradient, statistics, dense Hessian and both HVP paths against
the NumPy reference; the second product at a point does not touch the data."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import resnet_core as rc
from conftest import HEADS, LOSSES, make_data, rel_err


def _problem(rng, loss, head, n=120, d=5, k=4, **kw):
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)))
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw, **kw)
    z = rng.standard_normal(fo.n_params)
    return X, Phi, y, sw, fo, z


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss", LOSSES)
def test_against_reference(loss, head, rng):
    X, Phi, y, sw, fo, z = _problem(rng, loss, head, chunk_size=32)
    kw = dict(loss=loss, head=head, sample_weight=sw)
    F, g = ref.feature_value_grad(X, Phi, y, z, **kw)
    assert fo.fun(z) == pytest.approx(F, rel=1e-13)
    assert rel_err(fo.grad(z), g) < 1e-12
    A, B, C, gg = ref.stats(X, Phi, y, z, **kw)
    st_ = fo.stats(z)
    for mine, theirs in ((st_.A, A), (st_.B, B), (st_.C, C), (st_.g, gg)):
        assert rel_err(mine, theirs) < 1e-12
    assert st_.F == pytest.approx(F, rel=1e-13) and rel_err(st_.grad, g) < 1e-12
    H = ref.feature_hessian(X, Phi, y, z, **kw)
    assert rel_err(fo.hessian(z), H) < 1e-12
    for _ in range(3):  # streamed, then from the statistics
        p = rng.standard_normal(fo.n_params)
        assert rel_err(fo.hessp(z, p), H @ p) < 1e-12


@pytest.mark.parametrize("head", HEADS)
def test_hessian_against_finite_differences(head, rng):
    X, Phi, y, sw, fo, z = _problem(rng, "logistic", head, n=60, d=3, k=2)
    H = fo.hessian(z)
    eps = 1e-6
    Hfd = np.column_stack([(fo.grad(z + eps * e) - fo.grad(z - eps * e)) / (2 * eps)
                           for e in np.eye(fo.n_params)])
    assert rel_err(H, Hfd) < 1e-7
    assert np.array_equal(H, H.T)


def test_repeated_products_do_not_touch_the_data(rng, monkeypatch):
    X, Phi, y, sw, fo, z = _problem(rng, "logistic", "residual", n=500)
    calls = []
    for name in ("hvp", "gram", "value_grad", "predict"):
        original = getattr(fo._engine, name)
        monkeypatch.setattr(fo._engine, name,
                            lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    H = ref.feature_hessian(X, Phi, y, z, loss="logistic", sample_weight=sw)
    ps = rng.standard_normal((6, fo.n_params))
    out = [fo.hessp(z, p) for p in ps]
    assert calls == ["hvp", "gram"]  # one streamed product, one Gram pass, then none
    assert all(rel_err(o, H @ p) < 1e-12 for o, p in zip(out, ps))
    fo.hessp(z + 1, ps[0])
    assert calls[-1] == "hvp"  # a new point streams again


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 5), k=st.integers(1, 5),
       chunk=st.integers(1, 70), threads=st.integers(1, 3), loss=st.sampled_from(LOSSES),
       head=st.sampled_from(HEADS), seed=st.integers(0, 2**31))
def test_random_shapes(n, d, k, chunk, threads, loss, head, seed):
    rng = np.random.default_rng(seed)
    X, Phi, y, sw, fo, z = _problem(rng, loss, head, n=n, d=d, k=k, chunk_size=chunk,
                                    n_threads=threads)
    kw = dict(loss=loss, head=head, sample_weight=sw)
    F, g = ref.feature_value_grad(X, Phi, y, z, **kw)
    assert fo.fun(z) == pytest.approx(F, rel=1e-12, abs=1e-15)
    assert np.allclose(fo.grad(z), g, rtol=1e-11, atol=1e-14)
    H = ref.feature_hessian(X, Phi, y, z, **kw)
    p = rng.standard_normal(fo.n_params)
    assert np.allclose(fo.hessp(z, p), H @ p, rtol=1e-11, atol=1e-13 * (np.abs(H).max() + 1))
    assert np.allclose(fo.hessian(z), H, rtol=1e-11, atol=1e-13 * (np.abs(H).max() + 1))


def test_float32(rng):
    X, Phi, y, sw, fo64, z = _problem(rng, "logistic", "residual")
    fo32 = rc.FeatureObjective(X.astype(np.float32), Phi, y, sample_weight=sw)
    assert fo32.grad(z).dtype == np.float32
    assert rel_err(fo32.grad(z), fo64.grad(z)) < 1e-4
    assert rel_err(fo32.hessian(z), fo64.hessian(z)) < 1e-4


def test_pack_unpack(rng):
    *_, fo, z = _problem(rng, "squared", "residual")
    parts = fo.unpack(z)
    assert parts["V"].shape == (fo.d, fo.k)
    assert np.array_equal(fo.pack(parts["w"], parts["V"]), z)
