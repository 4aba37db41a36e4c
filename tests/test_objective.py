"""Objective: value, gradient and full Hessian-vector product against the NumPy reference,
finite differences, and invariances (threads, chunks, dtype, repeat runs)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import reference as ref
import resnet_core as rc
from conftest import ACTIVATIONS, HEADS, LOSSES, make_data, random_point, rel_err


def _kw(obj, sw):
    return dict(widths=obj.widths, loss=obj.loss.name, activation=obj.activation,
                bias=obj.bias, head=obj.head, sample_weight=sw, feature_bias=obj.feature_bias)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_against_reference(loss, activation, head, rng):
    X, y, sw = make_data(rng, 83, 5, loss)
    for bias in (True, False):
        obj = rc.Objective(X, y, loss=loss, widths=(4, 3), activation=activation, bias=bias,
                           head=head, sample_weight=sw, chunk_size=16, n_threads=2)
        x = random_point(obj, rng)
        kw = _kw(obj, sw)
        F, g = obj.fun_and_grad(x)
        assert isinstance(F, float)
        assert F == pytest.approx(ref.value(X, y, x, **kw), rel=1e-12)
        assert rel_err(g, ref.gradient(X, y, x, **kw)) < 1e-11
        p = rng.standard_normal(obj.n_params)
        Hp = obj.hessp(x, p)
        # ReLU and the smoothed hinge are piecewise (l''' or act'' jump): a tiny 2-point
        # step stays on one piece, where the 4th-order formula's wide stencil may not.
        fd = (ref.hessp_fd(X, y, x, p, **kw) if "relu" not in (activation, loss)
              and loss != "smoothed_hinge" else
              (ref.gradient(X, y, x + 1e-7 * p, **kw) - ref.gradient(X, y, x - 1e-7 * p, **kw))
              / 2e-7)
        assert rel_err(Hp, fd) < 2e-6


def test_hessp_matches_dense_fd_hessian(rng):
    X, y, sw = make_data(rng, 40, 3, "logistic")
    obj = rc.Objective(X, y, widths=(3, 2), sample_weight=sw)
    x = random_point(obj, rng)
    H = np.column_stack([obj.hessp(x, e) for e in np.eye(obj.n_params)])
    assert np.allclose(H, H.T, atol=1e-14 * np.abs(H).max())
    Hfd = ref.hessian_fd(X, y, x, **_kw(obj, sw))
    assert rel_err(H, 0.5 * (Hfd + Hfd.T)) < 1e-6


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 70), d=st.integers(1, 6),
    widths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    chunk=st.integers(1, 80), threads=st.integers(1, 3),
    loss=st.sampled_from(LOSSES), activation=st.sampled_from(("tanh", "softplus", "sigmoid")),
    head=st.sampled_from(HEADS), bias=st.booleans(), feature_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_random_shapes(n, d, widths, chunk, threads, loss, activation, head, bias, feature_bias,
                       seed):
    rng = np.random.default_rng(seed)
    X, y, sw = make_data(rng, n, d, loss)
    obj = rc.Objective(X, y, loss=loss, widths=widths, activation=activation, bias=bias,
                       head=head, sample_weight=sw, feature_bias=feature_bias, chunk_size=chunk,
                       n_threads=threads)
    x = random_point(obj, rng)
    kw = _kw(obj, sw)
    F, g = obj.fun_and_grad(x)
    assert F == pytest.approx(ref.value(X, y, x, **kw), rel=1e-11, abs=1e-14)
    assert rel_err(g, ref.gradient(X, y, x, **kw)) < 1e-10
    u, v = rng.standard_normal((2, obj.n_params))
    Hu, Hv = obj.hessp(x, u), obj.hessp(x, v)
    scale = np.abs(Hu).max() * np.abs(v).max() * obj.n_params + 1e-300
    assert abs(v @ Hu - u @ Hv) <= 1e-12 * scale
    if loss == "smoothed_hinge":  # piecewise third derivative: a tiny 2-point step
        fd = (ref.gradient(X, y, x + 1e-7 * u, **kw) - ref.gradient(X, y, x - 1e-7 * u, **kw)) / 2e-7
    else:
        fd = ref.hessp_fd(X, y, x, u, **kw)
    assert np.allclose(Hu, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max() + 1e-9)


def test_thread_and_chunk_invariance(rng):
    X, y, sw = make_data(rng, 3001, 6, "logistic")
    x = None
    grads, hvps = [], []
    for threads in (1, 2, 3, 4):
        for chunk in (None, 7, 1000):
            obj = rc.Objective(X, y, widths=(5, 4), sample_weight=sw, n_threads=threads,
                               chunk_size=chunk)
            x = random_point(obj, np.random.default_rng(0)) if x is None else x
            grads.append(obj.grad(x))
            hvps.append(obj.hessp(x, x))
    for g, h in zip(grads, hvps):
        assert rel_err(g, grads[0]) < 1e-12
        assert rel_err(h, hvps[0]) < 1e-12


def test_bit_identical_runs(rng):
    X, y, _ = make_data(rng, 2000, 6, "logistic")
    obj = rc.Objective(X, y, widths=(5, 4), n_threads=2, chunk_size=64)
    x = random_point(obj, rng)
    first = obj.fun_and_grad(x)
    for _ in range(3):
        again = rc.Objective(X, y, widths=(5, 4), n_threads=2, chunk_size=64).fun_and_grad(x)
        assert again[0] == first[0] and np.array_equal(again[1], first[1])


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_float32_matches_float64(loss, rng):
    X, y, _ = make_data(rng, 500, 6, loss)
    o64 = rc.Objective(X, y, loss=loss, widths=(5, 4))
    o32 = rc.Objective(X.astype(np.float32), y, loss=loss, widths=(5, 4))
    assert o32.dtype == np.float32 and o64.dtype == np.float64
    x = random_point(o64, rng)
    F32, g32 = o32.fun_and_grad(x)
    assert g32.dtype == np.float32
    assert F32 == pytest.approx(o64.fun(x), rel=1e-5)
    assert rel_err(g32, o64.grad(x)) < 1e-4
    assert rel_err(o32.hessp(x, x), o64.hessp(x, x)) < 1e-4


def test_read_only_and_memmap_inputs(rng, tmp_path):
    X, y, _ = make_data(rng, 300, 4, "logistic")
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    y.flags.writeable = False
    obj = rc.Objective(Xm, y, widths=(3,))
    assert np.shares_memory(obj.X, Xm)  # used in place, not copied
    x = random_point(obj, rng)
    x.flags.writeable = False
    assert rel_err(obj.grad(x), rc.Objective(X, y, widths=(3,)).grad(x)) == 0


def test_partial_is_the_wV_restriction(rng):
    X, y, sw = make_data(rng, 400, 5, "logistic")
    obj = rc.Objective(X, y, widths=(4, 3), sample_weight=sw)
    x = random_point(obj, rng)
    nh = obj.d + obj.d * obj.k
    p = np.zeros(obj.n_params)
    p[:nh] = rng.standard_normal(nh)
    for materialize in (False, True):
        part = obj.partial(x, materialize=materialize)
        z = x[:nh]
        assert part.n_params == nh
        assert part.fun(z) == pytest.approx(obj.fun(x), rel=1e-13)
        assert rel_err(part.grad(z), obj.grad(x)[:nh]) < 1e-13
        assert rel_err(part.hessp(z, p[:nh]), obj.hessp(x, p)[:nh]) < 1e-12
        assert rel_err(part.Phi, obj.features(x)) == 0


def test_scipy_trust_krylov(rng):
    X, y, _ = make_data(rng, 300, 4, "logistic")
    obj = rc.Objective(X, y, widths=(3,))
    x0 = obj.init(0)
    res = minimize(obj.fun, x0, jac=obj.grad, hessp=obj.hessp, method="trust-krylov",
                   options={"maxiter": 50})
    assert res.fun < obj.fun(x0)
    assert np.linalg.norm(obj.grad(res.x)) < np.linalg.norm(obj.grad(x0))


def test_pack_unpack_init(rng):
    X, y, _ = make_data(rng, 50, 4, "logistic")
    for head in HEADS:
        obj = rc.Objective(X, y, widths=(3, 2), head=head)
        x = obj.init(7)
        assert np.array_equal(x, obj.init(7)) and not np.array_equal(x, obj.init(8))
        # seeds default to 0 (docs/api.md): init() is reproducible; None is fresh entropy
        assert np.array_equal(obj.init(), obj.init(0))
        assert not np.array_equal(obj.init(None), obj.init(None))
        parts = obj.unpack(x)
        M = parts["V"] if head == "residual" else parts["v"]
        assert np.array_equal(obj.pack(parts["w"], M, parts["layers"]), x)
        r = ref.unpack(x, 4, (3, 2), head)
        assert np.array_equal(r["layers"][1][0], parts["layers"][1][0])
        assert obj.n_params == ref.n_params(4, (3, 2), head)


def test_predict_and_features(rng):
    X, y, _ = make_data(rng, 60, 4, "squared")
    obj = rc.Objective(X, y, loss="squared", widths=(3, 2), activation="softplus")
    x = random_point(obj, rng)
    layers = ref.unpack(x, 4, (3, 2))["layers"]
    Phi = ref.features(X, layers, "softplus")
    assert rel_err(obj.features(x), Phi) < 1e-14
    w, V = obj.unpack(x)["w"], obj.unpack(x)["V"]
    assert rel_err(obj.predict(x), X @ w + Phi @ (V.T @ w)) < 1e-13
