"""Objectives with c outputs (issue 11, the paper's Remark 2): cross-entropy on integer
labels and the squared loss on an (n, c) target, against the independent NumPy reference
(tests/reference.py, extended to c outputs), finite differences, the scalar objective at
c = 1, on hypothesis-random shapes, float32 and float64, one and three threads."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import resnet_core as rc
from resnet_core._engine import Engine
from resnet_core.losses import BUILTIN_LOSSES, VECTOR_LOSSES
from conftest import ACTIVATIONS, HEADS, rel_err

VLOSSES = ("cross_entropy", "squared")


def _targets(rng, n, c, loss, X):
    if loss == "cross_entropy":
        scores = X[:, :1] * np.arange(c) + rng.standard_normal((n, c))
        y = np.argmax(scores, axis=1)
        y[:c] = np.arange(c)  # every class present, so c = max(y) + 1
        return y
    return X[:, :1] * rng.standard_normal(c) + 0.5 * rng.standard_normal((n, c))


def _problem(rng, *, n=60, d=4, c=3, loss="cross_entropy", weighted=True):
    X = rng.standard_normal((n, d))
    return X, _targets(rng, n, c, loss, X), (rng.random(n) + 0.1 if weighted else None)


def _point(obj, rng, scale=0.3):
    return obj.init(int(rng.integers(1 << 31))) + scale * rng.standard_normal(obj.n_params)


def _kw(obj, sw, fb):
    return dict(c=obj.n_outputs, widths=obj.widths, loss=obj.loss.name,
                activation=obj.activation, bias=obj.bias, head=obj.head, sample_weight=sw,
                feature_bias=fb)


def _hessp_fd(X, y, x, p, kw):
    """The reference's HVP by differences of its gradient (2-point with ReLU's kinks)."""
    if kw["activation"] == "relu":
        return (ref.vector_gradient(X, y, x + 1e-7 * p, **kw)
                - ref.vector_gradient(X, y, x - 1e-7 * p, **kw)) / 2e-7
    return ref.vector_hessp_fd(X, y, x, p, **kw)


# -- the reference checks itself --------------------------------------------------------


@pytest.mark.parametrize("loss", VLOSSES)
@pytest.mark.parametrize("head", HEADS)
def test_reference_gradient_and_hessian_by_differences(loss, head, rng):
    X, y, sw = _problem(rng, n=12, d=3, c=3, loss=loss)
    kw = dict(c=3, widths=(4, 2), loss=loss, head=head, sample_weight=sw, feature_bias=True)
    x = rng.standard_normal(ref.vector_n_params(3, 3, (4, 2), head, True, True)) * 0.5
    e, v = 1e-6, rng.standard_normal(x.size)
    fd = (ref.vector_value(X, y, x + e * v, **kw) - ref.vector_value(X, y, x - e * v, **kw))
    assert fd / (2 * e) == pytest.approx(ref.vector_gradient(X, y, x, **kw) @ v, rel=1e-7)
    Phi = rng.standard_normal((12, 2))
    z = rng.standard_normal(3 * 3 + (3 if head == "residual" else 3) * 3)
    fkw = dict(c=3, loss=loss, head=head, sample_weight=sw, feature_bias=True)
    F, g, H = ref.vector_feature_value_grad_hessian(X, Phi, y, z, **fkw)
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    gp = ref.vector_feature_value_grad_hessian(X, Phi, y, z + e * v[:z.size], **fkw)[1]
    gm = ref.vector_feature_value_grad_hessian(X, Phi, y, z - e * v[:z.size], **fkw)[1]
    assert rel_err(H @ v[:z.size], (gp - gm) / (2 * e)) < 1e-7


def test_reference_reduces_to_the_scalar_one(rng):
    """c = 1 squared is the scalar squared loss; 2-class cross-entropy is the logistic
    loss of the score difference."""
    X, y, sw = _problem(rng, n=15, d=3, c=1, loss="squared")
    x = rng.standard_normal(ref.n_params(3, (4, 2)))
    kw = dict(widths=(4, 2), sample_weight=sw)
    assert ref.vector_value(X, y, x, c=1, loss="squared", **kw) == pytest.approx(
        ref.value(X, y[:, 0], x, loss="squared", **kw), rel=1e-14)
    np.testing.assert_allclose(ref.vector_gradient(X, y, x, c=1, loss="squared", **kw),
                               ref.gradient(X, y[:, 0], x, loss="squared", **kw), rtol=1e-13)
    P = rng.standard_normal((15, 2))
    labels = rng.integers(0, 2, 15)
    l, _, _ = ref.vector_loss(P, labels, "cross_entropy")
    l2, _, _ = ref.logistic_loss(P[:, 1] - P[:, 0], 2.0 * labels - 1)
    np.testing.assert_allclose(l, l2, rtol=1e-13)


# -- Objective: value, gradient, full HVP against the reference ---------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), loss=st.sampled_from(VLOSSES), head=st.sampled_from(HEADS),
       activation=st.sampled_from(ACTIVATIONS), c=st.integers(1, 5), n=st.integers(1, 70),
       d=st.integers(1, 5), widths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       fb=st.booleans(), bias=st.booleans(), weighted=st.booleans(),
       n_threads=st.sampled_from([1, 3]))
def test_objective_against_reference(seed, loss, head, activation, c, n, d, widths, fb, bias,
                                     weighted, n_threads):
    rng = np.random.default_rng(seed)
    c = max(c, 2) if loss == "cross_entropy" else c
    n = max(n, c)
    X, y, sw = _problem(rng, n=n, d=d, c=c, loss=loss, weighted=weighted)
    obj = rc.Objective(X, y, loss=loss, widths=tuple(widths), activation=activation,
                       bias=bias, head=head, sample_weight=sw, feature_bias=fb,
                       n_threads=n_threads, chunk_size=16, n_classes=c if loss ==
                       "cross_entropy" else None)
    assert obj.n_outputs == c
    assert obj.n_params == ref.vector_n_params(d, c, widths, head, bias, fb)
    x = _point(obj, rng)
    kw = _kw(obj, sw, fb)
    F, g = obj.fun_and_grad(x)
    assert F == pytest.approx(ref.vector_value(X, y, x, **kw), rel=1e-12)
    assert rel_err(g, ref.vector_gradient(X, y, x, **kw)) < 1e-10
    p = rng.standard_normal(obj.n_params)
    assert rel_err(obj.hessp(x, p), _hessp_fd(X, y, x, p, kw)) < 1e-5
    # the predictions are the reference's scores
    pr = ref.vector_unpack(x, d, c, widths, head, bias, fb)
    Phi = ref.with_constant(ref.features(X, pr["layers"], activation), fb)
    M = pr["W"] @ pr["V"] if head == "residual" else pr["B"]
    # (c = 1: the scalar objective, whose predictions have shape (n,))
    np.testing.assert_allclose(obj.predict(x).reshape(n, c), X @ pr["W"].T + Phi @ M.T,
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), loss=st.sampled_from(VLOSSES), head=st.sampled_from(HEADS),
       c=st.integers(1, 4), n=st.integers(2, 40), d=st.integers(1, 4), k=st.integers(1, 3),
       fb=st.booleans(), weighted=st.booleans(), n_threads=st.sampled_from([1, 3]))
def test_feature_objective_against_dense_reference(seed, loss, head, c, n, d, k, fb, weighted,
                                                   n_threads):
    """F, grad and the partial HVP (first product streamed, later ones too) against the
    reference's dense Hessian, built from per-sample Jacobians."""
    rng = np.random.default_rng(seed)
    c = max(c, 2) if loss == "cross_entropy" else c
    n = max(n, c)
    X, y, sw = _problem(rng, n=n, d=d, c=c, loss=loss, weighted=weighted)
    Phi = np.tanh(rng.standard_normal((n, k)))
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw,
                             feature_bias=fb, n_threads=n_threads, chunk_size=8)
    z = 0.5 * rng.standard_normal(fo.n_params)
    F, g, H = ref.vector_feature_value_grad_hessian(X, Phi, y, z, c=c, loss=loss, head=head,
                                                    sample_weight=sw, feature_bias=fb)
    assert fo.fun(z) == pytest.approx(F, rel=1e-12)
    assert rel_err(fo.grad(z), g) < 1e-11
    for _ in range(3):
        p = rng.standard_normal(fo.n_params)
        assert rel_err(fo.hessp(z, p), H @ p) < 1e-11


def test_partial_equals_full_restricted(rng):
    """The partial objective (streamed and materialised) at theta is the full one with theta
    fixed: same F, the head block of the gradient and of the HVP."""
    X, y, sw = _problem(rng, n=80, d=4, c=4)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(5, 3), sample_weight=sw,
                       feature_bias=True)
    x = _point(obj, rng)
    p = np.zeros(obj.n_params)
    p[:obj.n_head_params] = rng.standard_normal(obj.n_head_params)
    for fo in (obj.partial(x), obj.partial(x, materialize=True)):
        z = x[:fo.n_params]
        assert fo.n_outputs == 4 and fo.n_classes == 4
        assert fo.fun(z) == pytest.approx(obj.fun(x), rel=1e-13)
        assert rel_err(fo.grad(z), obj.grad(x)[:fo.n_params]) < 1e-12
        assert rel_err(fo.hessp(z, p[:fo.n_params]),
                       obj.hessp(x, p)[:fo.n_params]) < 1e-12
        np.testing.assert_allclose(fo.predict(z), obj.predict(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", VLOSSES)
def test_float32_follows_float64(dtype, loss, rng):
    X, y, sw = _problem(rng, n=300, d=6, c=5, loss=loss)
    o64 = rc.Objective(X, y, loss=loss, widths=(8, 4), sample_weight=sw)
    o = rc.Objective(X.astype(dtype), y, loss=loss, widths=(8, 4), sample_weight=sw)
    x = _point(o64, rng)
    F, g = o.fun_and_grad(x)
    p = rng.standard_normal(o.n_params)
    h = o.hessp(x, p)
    assert g.dtype == dtype and h.dtype == dtype and o.predict(x).dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-13
    assert F == pytest.approx(o64.fun(x), rel=tol)
    assert rel_err(g, o64.grad(x)) < 10 * tol
    assert rel_err(h, o64.hessp(x, p)) < 10 * tol


# -- c = 1 and the scalar objective ------------------------------------------------------


def test_n_by_1_squared_target_is_the_scalar_objective(rng):
    X, y, sw = _problem(rng, n=50, d=3, c=1, loss="squared")
    o1 = rc.Objective(X, y, loss="squared", widths=(4,), sample_weight=sw)
    o0 = rc.Objective(X, y[:, 0], loss="squared", widths=(4,), sample_weight=sw)
    assert o1.n_outputs == 1 and not o1.vector and o1.n_params == o0.n_params
    x = _point(o0, rng)
    p = rng.standard_normal(o0.n_params)
    assert o1.fun(x) == o0.fun(x)
    np.testing.assert_array_equal(o1.grad(x), o0.grad(x))
    np.testing.assert_array_equal(o1.hessp(x, p), o0.hessp(x, p))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 60),
       d=st.integers(1, 5), widths=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       fb=st.booleans(), given_features=st.booleans(), n_threads=st.sampled_from([1, 3]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_vector_kernels_at_c1_equal_the_scalar_kernels(seed, n, d, widths, fb,
                                                       given_features, n_threads, dtype):
    """The compiled vector pass with one output (squared loss) gives the scalar pass's
    value, gradient sums, HVP sums and predictions (same engine inputs, W = w^T)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    s = (rng.random(n) + 0.1).astype(dtype)
    s /= s.sum()
    kf = widths[-1]
    k = kf + fb
    dims = np.array([d, *widths], dtype=np.intp)
    theta = rng.standard_normal(rc.MLPLayout(d, tuple(widths), True, "tanh").n_params)
    theta = theta.astype(dtype)
    if given_features:
        src = dict(Phi=np.tanh(rng.standard_normal((n, kf))).astype(dtype))
        theta_arg = None
    else:
        src = dict(dims=dims, bias=True, act=rc.ACTIVATIONS["tanh"])
        theta_arg = theta
    common = dict(feature_bias=fb, n_threads=n_threads, chunk_size=7, **src)
    e0 = Engine(X, y, s, BUILTIN_LOSSES["squared"], k, **common)
    e1 = Engine(X, y[:, None].copy(), s, VECTOR_LOSSES["squared"], k, c=1, **common)
    w, a = rng.standard_normal(d).astype(dtype), rng.standard_normal(k).astype(dtype)
    dw, da = rng.standard_normal(d).astype(dtype), rng.standard_normal(k).astype(dtype)
    dth = None if given_features else rng.standard_normal(theta.size).astype(dtype)
    full = not given_features
    tol = 2e-5 if dtype == np.float32 else 1e-12
    r0 = e0.value_grad(w, a, theta_arg, e0.new_buffers(), need_theta=full)
    r1 = e1.value_grad(w[None], a[None], theta_arg, e1.new_buffers(), need_theta=full)
    assert r1[0] == pytest.approx(r0[0], rel=tol, abs=1e-30)
    for u, v in zip(r0[1:], r1[1:]):
        np.testing.assert_allclose(v.ravel(), u, rtol=tol, atol=tol * (1 + np.abs(u).max(initial=0)))
    h0 = e0.hvp(w, a, theta_arg, dw, da, dth, e0.new_buffers(), need_theta=full)
    h1 = e1.hvp(w[None], a[None], theta_arg, dw[None], da[None], dth, e1.new_buffers(),
                need_theta=full)
    for u, v in zip(h0, h1):
        np.testing.assert_allclose(v.ravel(), u, rtol=tol, atol=tol * (1 + np.abs(u).max(initial=0)))
    np.testing.assert_allclose(e1.predict(w[None], a[None], theta_arg)[0][:, 0],
                               e0.predict(w, a, theta_arg)[0], rtol=tol, atol=tol)


# -- finite differences, symmetry, determinism --------------------------------------------


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss", VLOSSES)
def test_finite_differences_and_symmetry(loss, head, rng):
    X, y, sw = _problem(rng, n=120, d=5, c=4, loss=loss)
    obj = rc.Objective(X, y, loss=loss, widths=(6, 3), head=head, sample_weight=sw,
                       activation="softplus", feature_bias=True)
    x = _point(obj, rng)
    u, v = rng.standard_normal((2, obj.n_params))
    e = 1e-5
    assert (obj.fun(x + e * u) - obj.fun(x - e * u)) / (2 * e) == pytest.approx(
        obj.grad(x) @ u, rel=1e-7)
    fd = (obj.grad(x + e * u) - obj.grad(x - e * u)) / (2 * e)
    Hu, Hv = obj.hessp(x, u), obj.hessp(x, v)
    assert rel_err(Hu, fd) < 1e-6
    assert u @ Hv == pytest.approx(v @ Hu, rel=1e-11)
    fo = obj.partial(x)
    z, uz, vz = x[:fo.n_params], u[:fo.n_params], v[:fo.n_params]
    assert uz @ fo.hessp(z, vz) == pytest.approx(vz @ fo.hessp(z, uz), rel=1e-11)


def test_threads_deterministic_and_consistent(rng):
    X, y, sw = _problem(rng, n=3000, d=8, c=6)
    x = p = None
    results = {}
    for T in (1, 3):
        runs = []
        for _ in range(2):
            obj = rc.Objective(X, y, loss="cross_entropy", widths=(16, 8), sample_weight=sw,
                               n_threads=T, chunk_size=64)
            if x is None:
                x, p = _point(obj, rng), rng.standard_normal(obj.n_params)
            F, g = obj.fun_and_grad(x)
            runs.append((F, g, obj.hessp(x, p), obj.partial(x).hessp(x[:obj.n_head_params],
                                                                      p[:obj.n_head_params])))
        for a, b in zip(*runs):  # bit-identical from run to run
            np.testing.assert_array_equal(a, b)
        results[T] = runs[0]
    for a, b in zip(results[1], results[3]):
        assert rel_err(a, b) < 1e-12


# -- predictions ---------------------------------------------------------------------------


def test_predict_and_predict_proba(rng):
    X, y, sw = _problem(rng, n=90, d=4, c=3)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(5, 3))
    x = _point(obj, rng)
    P = obj.predict(x)
    assert P.shape == (90, 3)
    prob = obj.predict_proba(x)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.log(prob) - np.log(prob[:, :1]), P - P[:, :1], atol=1e-12)
    # the mean of -log prob[y] is the objective
    assert -np.mean(np.log(prob[np.arange(90), y])) == pytest.approx(obj.fun(x), rel=1e-12)
    Xn = rng.standard_normal((7, 4))
    assert obj.predict(x, Xn).shape == (7, 3)
    np.testing.assert_allclose(obj.predict_proba(x, Xn).sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(obj.predict(x, X[:7]), P[:7], rtol=1e-13)
    # huge scores: no overflow
    big = obj.pack(obj.unpack(x)["W"] * 1e4, obj.unpack(x)["V"], obj.unpack(x)["layers"])
    pb = obj.predict_proba(big)
    assert np.isfinite(pb).all()
    np.testing.assert_allclose(pb.sum(axis=1), 1.0, rtol=1e-12)


def test_predict_proba_of_the_logistic_loss(rng):
    X = rng.standard_normal((40, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    obj = rc.Objective(X, y, loss="logistic", widths=(4,))
    x = _point(obj, rng)
    prob = obj.predict_proba(x)
    assert prob.shape == (40, 2)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-14)
    # P(y) for the true label: the mean of -log is the logistic objective
    py = np.where(y > 0, prob[:, 1], prob[:, 0])
    assert -np.mean(np.log(py)) == pytest.approx(obj.fun(x), rel=1e-12)
    sq = rc.Objective(X, y, loss="squared", widths=(4,))
    with pytest.raises(ValueError, match="predict_proba needs a probabilistic loss"):
        sq.predict_proba(x)


def test_feature_objective_predict_on_new_inputs(rng):
    X, y, sw = _problem(rng, n=50, d=3, c=4, loss="squared")
    Phi = rng.standard_normal((50, 2))
    fo = rc.FeatureObjective(X, Phi, y, loss="squared", head="skip", feature_bias=True)
    z = rng.standard_normal(fo.n_params)
    parts = fo.unpack(z)
    assert set(parts) == {"W", "B"} and parts["B"].shape == (4, 3)
    np.testing.assert_array_equal(fo.pack(parts["W"], parts["B"]), z)
    P = fo.predict(z, X[:5], Phi[:5])
    np.testing.assert_allclose(P, X[:5] @ parts["W"].T + Phi[:5] @ parts["B"][:, :2].T
                               + parts["B"][:, 2], rtol=1e-12)
    with pytest.raises(ValueError, match="predict_proba needs a probabilistic loss"):
        fo.predict_proba(z)


# -- layout --------------------------------------------------------------------------------


def test_layout_and_init(rng):
    X, y, _ = _problem(rng, n=30, d=4, c=3)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(5, 2), feature_bias=True)
    assert obj.n_head_params == 3 * 4 + 4 * 3
    x = obj.init(7)
    parts = obj.unpack(x)
    assert parts["W"].shape == (3, 4) and parts["V"].shape == (4, 3)
    assert np.all(parts["V"][:, -1] == 0)  # the bias column starts at zero
    np.testing.assert_array_equal(obj.pack(parts["W"], parts["V"], parts["layers"]), x)
    # c = 1 of init is the scalar init (same seed, same numbers)
    o1 = rc.Objective(X, X[:, 0], loss="squared", widths=(5, 2), feature_bias=True)
    x1 = o1.init(7)
    np.testing.assert_array_equal(x[:4], x1[:4])  # W's first row is the scalar w
    skip = rc.Objective(X, y, loss="cross_entropy", widths=(5, 2), head="skip")
    assert skip.unpack(skip.init(0))["B"].shape == (3, 2)


# -- optimisers ----------------------------------------------------------------------------


@pytest.mark.parametrize("wrt", ["all", "wV"])
def test_gradient_descent_and_pgd_decrease_the_objective(wrt, rng):
    X, y, sw = _problem(rng, n=200, d=4, c=3)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(6, 3), sample_weight=sw)
    x0 = obj.init(0)
    F0 = obj.fun(x0)
    res = rc.gradient_descent(obj, x0, eta=0.5, max_iter=60)
    assert not res.compiled and res.fun < F0 - 0.05
    assert res.fun == pytest.approx(obj.fun(res.x), rel=1e-12)
    pgd = rc.perturbed_gd(obj, x0, eps=1e-3, ell=4.0, rho=4.0, max_iter=60, wrt=wrt, seed=1)
    assert pgd.fun < F0 - 0.05
    assert pgd.x.shape == x0.shape
    assert pgd.fun == pytest.approx(obj.fun(pgd.x), rel=1e-12)
    if wrt == "wV":  # theta did not move
        np.testing.assert_array_equal(pgd.x[obj.n_head_params:], x0[obj.n_head_params:])


# -- what is not there for c outputs, and bad input ------------------------------------------


def test_not_implemented_for_vectors(rng):
    X, y, _ = _problem(rng, n=30, d=3, c=3)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(4,))
    x = obj.init(0)
    fo = obj.partial(x)
    z = x[:fo.n_params]
    with pytest.raises(NotImplementedError, match="stats"):
        fo.stats(z)
    with pytest.raises(NotImplementedError, match="stats"):
        fo.at(z).stats
    with pytest.raises(NotImplementedError, match="hessian"):
        fo.hessian(z)
    with pytest.raises(NotImplementedError, match="c x c"):
        obj.at(x).weighted_d2loss
    assert obj.at(x).weighted_dloss.shape == (30, 3)
    assert rc.check_sopsp(obj, x, eps=1e-3).n_outputs == 3  # certified over (W, V)
    skip = rc.Objective(X, y, loss="cross_entropy", widths=(4,), head="skip")
    with pytest.raises(NotImplementedError, match="no analogue with c outputs"):
        rc.projected_sgd(skip, skip.init(0), T=10, radius=1.0)


@pytest.mark.parametrize("y, kw, exc, match", [
    (np.array([0, 1, 2.5] * 10), {}, ValueError, "integer class labels"),
    (np.array([0, 1, -1] * 10), {}, ValueError, "labels 0..c-1"),
    (np.array(["a", "b", "c"] * 10), {}, TypeError, "integer class labels"),
    (np.array([0, 1, 2] * 10), {"n_classes": 2}, ValueError, "at least max\\(y\\) \\+ 1 = 3"),
    (np.array([0, 1, 2] * 10), {"n_classes": 1}, ValueError, "n_classes must be an integer >= 2"),
    (np.array([0, 1, 2] * 10), {"n_classes": 2.5}, TypeError, "n_classes must be an integer"),
    (np.zeros(30), {}, ValueError, "at least 2 classes"),
    (np.zeros((30, 2)), {}, ValueError, "shape \\(n,\\)"),
    (np.array([0, 1, 2] * 9), {}, ValueError, "shape \\(n,\\)"),
    (np.array([0, 1, np.nan] * 10), {}, ValueError, "finite"),
])
def test_bad_labels(y, kw, exc, match, rng):
    X = rng.standard_normal((30, 3))
    with pytest.raises(exc, match=match):
        rc.Objective(X, y, loss="cross_entropy", widths=(3,), **kw)
    with pytest.raises(exc, match=match):
        rc.FeatureObjective(X, X[:, :2], y, loss="cross_entropy", **kw)


def test_bad_vector_targets(rng):
    X = rng.standard_normal((30, 3))
    with pytest.raises(ValueError, match="axis 0 is 29, expected 30"):
        rc.Objective(X, np.zeros((29, 2)), loss="squared", widths=(3,))
    with pytest.raises(ValueError, match="n_classes is for the cross_entropy loss"):
        rc.Objective(X, np.zeros((30, 2)), loss="squared", widths=(3,), n_classes=2)
    with pytest.raises(ValueError, match="n_classes is for the cross_entropy loss"):
        rc.Objective(X, np.ones(30), loss="logistic", widths=(3,), n_classes=2)
    with pytest.raises(ValueError, match="y must be 1-D"):
        rc.Objective(X, np.ones((30, 2)), loss="logistic", widths=(3,))
    with pytest.raises(ValueError, match="at least one column"):
        rc.Objective(X, np.zeros((30, 0)), loss="squared", widths=(3,))
    with pytest.raises(ValueError, match="y must be finite"):
        rc.Objective(X, np.full((30, 2), np.inf), loss="squared", widths=(3,))
    obj = rc.Objective(X, np.arange(30) % 3, loss="cross_entropy", widths=(3,))
    with pytest.raises(ValueError, match="W must have shape \\(3, 3\\)"):
        obj.pack(np.zeros((2, 3)), np.zeros((3, 3)), obj.unpack(obj.init(0))["layers"])
    with pytest.raises(ValueError, match="x must have shape"):
        obj.fun(np.zeros(obj.n_params - 1))
    with pytest.raises(ValueError, match="X must have shape"):
        obj.predict(obj.init(0), np.zeros((4, 2)))


def test_n_classes_above_the_labels(rng):
    """An absent class is allowed with n_classes: its scores still enter the softmax."""
    X = rng.standard_normal((40, 3))
    y = np.arange(40) % 3
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(4,), n_classes=5)
    assert obj.n_outputs == 5 and obj.n_classes == 5
    x = _point(obj, rng)
    kw = _kw(obj, None, False)
    assert obj.fun(x) == pytest.approx(ref.vector_value(X, y, x, **kw), rel=1e-12)
    assert rel_err(obj.grad(x), ref.vector_gradient(X, y, x, **kw)) < 1e-11
    np.testing.assert_array_equal(obj.y, y)


def test_vector_loss_derivatives_match_the_reference(rng):
    P = 30 * rng.standard_normal((20, 4))
    y = rng.integers(0, 4, 20)
    l, d1 = rc.get_loss("cross_entropy").derivatives(P, y)
    l0, d0, _ = ref.vector_loss(P, y, "cross_entropy")
    np.testing.assert_allclose(l, l0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d1, d0, atol=1e-14)
    Y = rng.standard_normal((20, 4))
    l, d1 = VECTOR_LOSSES["squared"].derivatives(P, Y)
    l0, d0, _ = ref.vector_loss(P, Y, "squared")
    np.testing.assert_allclose(l, l0, rtol=1e-13)
    np.testing.assert_allclose(d1, d0, rtol=1e-13)
    assert rc.get_loss("cross_entropy").vector and not rc.get_loss("squared").vector


def test_large_scores_stay_finite(rng):
    """logsumexp with the maximum subtracted: margins of 1e4 give finite values and
    gradients (l = max - p_y + log(...) exactly)."""
    X = rng.standard_normal((50, 3)) * 1e3
    y = np.arange(50) % 3
    fo = rc.FeatureObjective(X, np.ones((50, 1)), y, loss="cross_entropy", head="skip")
    z = rng.standard_normal(fo.n_params) * 10
    F, g = fo.fun_and_grad(z)
    assert np.isfinite(F) and np.isfinite(g).all()
    assert F == pytest.approx(ref.vector_feature_value_grad_hessian(
        X, np.ones((50, 1)), y, z, c=3, loss="cross_entropy", head="skip")[0], rel=1e-12)


# -- memory and fork -----------------------------------------------------------------------


def test_memory_is_the_per_sample_buffers_only():
    """A value+gradient, full and partial HVPs and predictions at n = 100000: the peak is
    the n x c buffers (R and the softmax, of the objective and of its partial), the
    predictions (n x c) and a few n-vectors; nothing of size n x width."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n, d, c = 100_000, 32, 4
    X = rng.standard_normal((n, d))
    y = rng.integers(0, c, n)
    tracemalloc.start()
    try:
        obj = rc.Objective(X, y, loss="cross_entropy", widths=(32, 32))
        x = obj.init(0)
        F, g = obj.fun_and_grad(x)
        obj.hessp(x, g)
        fo = obj.partial(x)
        z = x[:fo.n_params]
        fo.hessp(z, z[::-1].copy())
        obj.predict(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < (5 * n * c + 8 * n) * 8 + 2 * 2**20, peak / (n * c * 8)
    assert peak < 0.8 * X.nbytes  # one n x 32 activation alone would be X.nbytes


def _vector_work(_=None):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 4))
    y = rng.integers(0, 3, 3000)
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(8, 4), n_threads=2, chunk_size=64)
    x = obj.init(0)
    F, g = obj.fun_and_grad(x)
    return [F, g, obj.hessp(x, g), obj.predict(x)]


def test_forked_children_compute_the_parents_numbers():
    """After the parent ran the vector kernels on two threads, forked children (whose
    slots run on their calling thread) give the same numbers bit for bit, without hanging."""
    import multiprocessing

    expected = _vector_work()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_vector_work, range(2)).get(timeout=60)
    for got in results:
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_pickled_objective_gives_the_same_numbers(rng):
    import pickle

    X, y, sw = _problem(rng, n=80, d=3, c=4, loss="squared")
    obj = rc.Objective(X, y, loss="squared", widths=(4,), sample_weight=sw, head="skip")
    x = _point(obj, rng)
    F, g = obj.fun_and_grad(x)
    back = pickle.loads(pickle.dumps(obj))
    assert back.n_outputs == 4 and back.vector
    F2, g2 = back.fun_and_grad(x)
    assert F2 == F
    np.testing.assert_array_equal(g2, g)


@pytest.mark.parametrize("loss", VLOSSES)
def test_progress_bar_over_a_c_output_pass(loss, rng, monkeypatch, capsys):
    """``progress=True`` shows a bar over the row blocks of a c-output pass (value,
    gradient, hessp, predict: the one pass loop of the engine), with the same numbers."""
    from resnet_core import _engine
    X, y, sw = _problem(rng, n=400, loss=loss)
    ref_obj = rc.Objective(X, y, loss=loss, widths=(4,), sample_weight=sw)
    x = _point(ref_obj, rng)
    want = (ref_obj.fun(x), ref_obj.hessp(x, x), ref_obj.predict(x))
    monkeypatch.setattr(_engine, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(_engine, "BLOCK_WORK", 1)  # blocks of one chunk: several per pass
    obj = rc.Objective(X, y, loss=loss, widths=(4,), sample_weight=sw, progress=True,
                       chunk_size=64)
    capsys.readouterr()
    for i, got in enumerate((lambda: obj.fun(x), lambda: obj.hessp(x, x),
                             lambda: obj.predict(x))):
        assert rel_err(got(), want[i]) < 1e-12
        err = capsys.readouterr().err
        assert "pass" in err and "block" in err and "/7 " in err  # 400 rows, 64 a block
    obj.progress = False
    obj.hessp(x, 2 * x)
    assert capsys.readouterr().err == ""
