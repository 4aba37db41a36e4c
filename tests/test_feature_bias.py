"""The constant feature of Remark 1 (``feature_bias=True``: ``phi = [f_theta(x); 1]``, a bias
column in ``V``) against the NumPy reference, which builds ``[Phi, 1]`` explicitly: both
heads, float32 and float64, one and two threads, weights, a user-defined loss, the
streaming and materialised partial objectives, and the certificate."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import resnet_core as rc
from resnet_core import certify
from conftest import ACTIVATIONS, HEADS, LOSSES, make_data, random_point, rel_err


def _kw(obj, sw):
    return dict(widths=obj.widths, loss=obj.loss.name, activation=obj.activation,
                bias=obj.bias, head=obj.head, sample_weight=sw, feature_bias=True)


def _hessp_fd(X, y, x, p, kw):
    """The reference's HVP by differences of its gradient (a tiny 2-point step where ReLU or
    the smoothed hinge could put a kink inside the 4th-order stencil)."""
    if "relu" in (kw["activation"], kw["loss"]) or kw["loss"] == "smoothed_hinge":
        return (ref.gradient(X, y, x + 1e-7 * p, **kw)
                - ref.gradient(X, y, x - 1e-7 * p, **kw)) / 2e-7
    return ref.hessp_fd(X, y, x, p, **kw)


def _feature_problem(rng, loss, head, n=90, d=4, k=3, **kw):
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw,
                             feature_bias=True, **kw)
    return X, Phi, y, sw, fo, rng.standard_normal(fo.n_params)


# -- Objective: value, gradient, full Hessian-vector product ----------------------------


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_objective_against_reference(activation, head, n_threads, rng):
    loss = LOSSES[ACTIVATIONS.index(activation) % len(LOSSES)]
    X, y, sw = make_data(rng, 71, 4, loss)
    for bias in (True, False):
        obj = rc.Objective(X, y, loss=loss, widths=(4, 3), activation=activation, bias=bias,
                           head=head, sample_weight=sw, feature_bias=True, chunk_size=16,
                           n_threads=n_threads)
        assert obj.k == 4 and obj.feature_bias
        assert obj.n_params == ref.n_params(4, (4, 3), head, bias, feature_bias=True)
        x = random_point(obj, rng)
        kw = _kw(obj, sw)
        F, g = obj.fun_and_grad(x)
        assert F == pytest.approx(ref.value(X, y, x, **kw), rel=1e-12)
        assert rel_err(g, ref.gradient(X, y, x, **kw)) < 1e-11
        p = rng.standard_normal(obj.n_params)
        assert rel_err(obj.hessp(x, p), _hessp_fd(X, y, x, p, kw)) < 2e-6


@pytest.mark.parametrize("head", HEADS)
def test_objective_float32(head, rng):
    X, y, sw = make_data(rng, 300, 5, "logistic")
    X32 = X.astype(np.float32)
    obj = rc.Objective(X32, y, widths=(4, 3), head=head, sample_weight=sw, feature_bias=True,
                       n_threads=2, chunk_size=32)
    x = random_point(obj, rng).astype(np.float32)
    kw = _kw(obj, sw)
    X64, x64 = X32.astype(np.float64), x.astype(np.float64)
    F, g = obj.fun_and_grad(x)
    assert g.dtype == np.float32
    assert F == pytest.approx(ref.value(X64, y, x64, **kw), rel=1e-5)
    assert rel_err(g, ref.gradient(X64, y, x64, **kw)) < 1e-4
    p = rng.standard_normal(obj.n_params).astype(np.float32)
    Hp = obj.hessp(x, p)
    assert Hp.dtype == np.float32
    assert rel_err(Hp, ref.hessp_fd(X64, y, x64, p.astype(np.float64), **kw)) < 1e-4


def test_objective_finite_differences(rng):
    """The gradient against central differences of the value, and the HVP against central
    differences of the gradient, all from resnet_core itself."""
    X, y, sw = make_data(rng, 40, 3, "logistic")
    for head in HEADS:
        obj = rc.Objective(X, y, widths=(3, 2), head=head, sample_weight=sw,
                           feature_bias=True)
        x = random_point(obj, rng)
        E = np.eye(obj.n_params)
        eps = 1e-6
        gfd = np.array([(obj.fun(x + eps * e) - obj.fun(x - eps * e)) / (2 * eps) for e in E])
        assert rel_err(obj.grad(x), gfd) < 1e-7
        H = np.column_stack([obj.hessp(x, e) for e in E])
        Hfd = np.column_stack([(obj.grad(x + eps * e) - obj.grad(x - eps * e)) / (2 * eps)
                               for e in E])
        assert rel_err(H, Hfd) < 1e-6
        assert np.allclose(H, H.T, atol=1e-14 * np.abs(H).max())


def test_zero_bias_column_is_the_model_without_it(rng):
    """init gives the bias column zero and draws the rest as without the option; with a
    zero bias column the value, the other gradient entries and the predictions are those of
    the objective without it, and the bias entries' gradient is ``w E[l']`` (or ``E[l']``)."""
    X, y, sw = make_data(rng, 120, 4, "squared")
    for head in HEADS:
        kw = dict(loss="squared", widths=(5, 3), head=head, sample_weight=sw)
        with_b = rc.Objective(X, y, feature_bias=True, **kw)
        plain = rc.Objective(X, y, **kw)
        x = with_b.init(3)
        parts = with_b.unpack(x)
        M = parts["V"] if head == "residual" else parts["v"]
        assert np.all(M[..., -1] == 0)
        x0 = plain.pack(parts["w"], M[..., :-1], parts["layers"])
        assert np.array_equal(x0, plain.init(3))
        assert with_b.fun(x) == pytest.approx(plain.fun(x0), rel=1e-14)
        assert rel_err(with_b.predict(x), plain.predict(x0)) < 1e-14
        g, g0 = with_b.grad(x), plain.grad(x0)
        gparts = with_b.unpack(g)
        gM = gparts["V"] if head == "residual" else gparts["v"]
        gM0 = plain.unpack(g0)["V" if head == "residual" else "v"]
        assert rel_err(gM[..., :-1], gM0) < 1e-13
        l1 = with_b.at(x).weighted_dloss.sum()  # E[l'] (r = s l')
        assert rel_err(gM[..., -1], (parts["w"] if head == "residual" else 1.0) * l1) < 1e-12


def test_features_predict_and_partial(rng):
    X, y, sw = make_data(rng, 150, 4, "logistic")
    for head in HEADS:
        obj = rc.Objective(X, y, widths=(3, 2), head=head, sample_weight=sw,
                           feature_bias=True, n_threads=2, chunk_size=16)
        x = random_point(obj, rng)
        P = ref.unpack(x, 4, (3, 2), head, feature_bias=True)
        f = ref.features(X, P["layers"], "tanh")
        phi = obj.features(x)
        assert phi.shape == (150, 3) and np.all(phi[:, -1] == 1)
        assert rel_err(phi[:, :-1], f) < 1e-14
        c = P["V"].T @ P["w"] if head == "residual" else P["v"]
        assert rel_err(obj.predict(x), X @ P["w"] + phi @ c) < 1e-13
        nh = obj.n_params - obj.layout.n_params
        z = x[:nh]
        p = np.zeros(obj.n_params)
        p[:nh] = rng.standard_normal(nh)
        for materialize in (False, True):
            part = obj.partial(x, materialize=materialize)
            assert part.feature_bias and part.k == obj.k == 3 and part.n_params == nh
            if materialize:  # f_theta(X) alone is kept; the constant is added on the fly
                assert part._engine.Phi.shape == (150, 2)
            assert rel_err(part.Phi, phi) == 0
            assert part.fun(z) == pytest.approx(obj.fun(x), rel=1e-13)
            assert rel_err(part.grad(z), obj.grad(x)[:nh]) < 1e-13
            assert rel_err(part.hessp(z, p[:nh]), obj.hessp(x, p)[:nh]) < 1e-12
            assert rel_err(part.hessp(z, p[:nh]), obj.hessp(x, p)[:nh]) < 1e-12  # statistics


# -- FeatureObjective: value, gradient, statistics, Hessian ------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss", LOSSES)
def test_feature_objective_against_reference(loss, head, n_threads, dtype, rng):
    X, Phi, y, sw, _, z = _feature_problem(rng, loss, head)
    X, Phi = X.astype(dtype), Phi.astype(dtype)
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw,
                             feature_bias=True, n_threads=n_threads, chunk_size=16)
    assert fo.k == 4 and fo.dtype == dtype
    z = z.astype(dtype).astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    kw = dict(loss=loss, head=head, sample_weight=sw, feature_bias=True)
    F, g = ref.feature_value_grad(X, Phi, y, z, **kw)
    assert fo.fun(z) == pytest.approx(F, rel=tol)
    assert rel_err(fo.grad(z), g) < tol
    H = ref.feature_hessian(X, Phi, y, z, **kw)
    for _ in range(2):  # streamed, then from the statistics
        p = rng.standard_normal(fo.n_params).astype(dtype)
        assert rel_err(fo.hessp(z, p), H @ p) < 10 * tol
    A, B, C, gg = ref.stats(X, Phi, y, z, **kw)
    st_ = fo.stats(z)
    for mine, theirs in ((st_.A, A), (st_.B, B), (st_.C, C), (st_.g, gg)):
        assert rel_err(mine, theirs) < 10 * tol
    assert rel_err(fo.hessian(z), H) < 10 * tol


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("head", HEADS)
def test_same_as_an_explicit_ones_column(head, n_threads, rng):
    """FeatureObjective(X, Phi, feature_bias=True) is FeatureObjective(X, [Phi, 1]), without
    a copy of Phi."""
    X, Phi, y, sw, fo, z = _feature_problem(rng, "logistic", head, n=500, n_threads=n_threads,
                                            chunk_size=64)
    explicit = rc.FeatureObjective(X, np.column_stack([Phi, np.ones(len(y))]), y,
                                   head=head, sample_weight=sw, n_threads=n_threads,
                                   chunk_size=64)
    assert fo.n_params == explicit.n_params
    assert fo.fun(z) == pytest.approx(explicit.fun(z), rel=1e-14)
    assert rel_err(fo.grad(z), explicit.grad(z)) < 1e-13
    for _ in range(2):
        p = rng.standard_normal(fo.n_params)
        assert rel_err(fo.hessp(z, p), explicit.hessp(z, p)) < 1e-13
    assert rel_err(fo.stats(z).G, explicit.stats(z).G) < 1e-13
    assert rel_err(fo.hessian(z), explicit.hessian(z)) < 1e-13
    assert np.array_equal(fo.Phi, explicit.Phi)


def test_given_phi_is_used_in_place(rng):
    X, y, _ = make_data(rng, 50, 3, "logistic")
    Phi = np.ascontiguousarray(rng.standard_normal((50, 2)))
    fo = rc.FeatureObjective(X, Phi, y, feature_bias=True)
    assert np.shares_memory(fo._engine.Phi, Phi)


@pytest.mark.parametrize("head", HEADS)
def test_custom_loss(head, rng):
    """A user-defined loss (r, q computed in Python after a prediction pass) with the
    constant feature: a custom logistic against the reference, and a non-convex loss
    (negative l'') against the explicit 1-column."""
    def logistic(p, y):
        m = y * p
        s = 1.0 / (1.0 + np.exp(m))
        return np.logaddexp(0.0, -m), -y * s, s * (1.0 - s)

    X, y, sw = make_data(rng, 80, 3, "logistic")
    custom = rc.CustomLoss(logistic, binary_labels=True)
    obj = rc.Objective(X, y, loss=custom, widths=(3, 2), head=head, sample_weight=sw,
                       feature_bias=True, n_threads=2, chunk_size=16)
    x = random_point(obj, rng)
    kw = dict(_kw(obj, sw), loss="logistic")
    assert obj.fun(x) == pytest.approx(ref.value(X, y, x, **kw), rel=1e-12)
    assert rel_err(obj.grad(x), ref.gradient(X, y, x, **kw)) < 1e-11
    p = rng.standard_normal(obj.n_params)
    assert rel_err(obj.hessp(x, p), ref.hessp_fd(X, y, x, p, **kw)) < 2e-6
    nh = obj.n_params - obj.layout.n_params
    part = obj.partial(x)
    H = ref.feature_hessian(X, obj.features(x)[:, :-1], y, x[:nh], loss="logistic",
                            head=head, sample_weight=sw, feature_bias=True)
    assert rel_err(part.hessian(x[:nh]), H) < 1e-12

    cos = rc.CustomLoss(lambda p, y: (np.cos(p - y), -np.sin(p - y), -np.cos(p - y)))
    Phi = np.tanh(rng.standard_normal((80, 2)))
    fo = rc.FeatureObjective(X, Phi, y, loss=cos, head=head, feature_bias=True, n_threads=2)
    ex = rc.FeatureObjective(X, np.column_stack([Phi, np.ones(80)]), y, loss=cos, head=head,
                             n_threads=2)
    z = 2 * rng.standard_normal(fo.n_params)
    assert (fo.at(z).weighted_d2loss < 0).any()  # some l'' < 0
    assert rel_err(fo.grad(z), ex.grad(z)) < 1e-13
    assert rel_err(fo.hessian(z), ex.hessian(z)) < 1e-13


# -- random shapes -----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60), d=st.integers(1, 5),
    widths=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    chunk=st.integers(1, 70), threads=st.integers(1, 3),
    loss=st.sampled_from(LOSSES), activation=st.sampled_from(("tanh", "softplus", "sigmoid")),
    head=st.sampled_from(HEADS), bias=st.booleans(), seed=st.integers(0, 2**31),
)
def test_random_shapes_partial(n, d, widths, chunk, threads, loss, activation, head, bias, seed):
    rng = np.random.default_rng(seed)
    X, y, sw = make_data(rng, n, d, loss)
    obj = rc.Objective(X, y, loss=loss, widths=widths, activation=activation, bias=bias,
                       head=head, sample_weight=sw, feature_bias=True, chunk_size=chunk,
                       n_threads=threads)
    x = random_point(obj, rng)
    # the partial objective at this theta, against the reference's fixed-feature functions
    nh = obj.n_params - obj.layout.n_params
    part = obj.partial(x)
    f = obj.features(x)[:, :-1]
    fk = dict(loss=loss, head=head, sample_weight=sw, feature_bias=True)
    H = ref.feature_hessian(X, f, y, x[:nh], **fk)
    assert np.allclose(part.hessian(x[:nh]), H, rtol=1e-11,
                       atol=1e-13 * (np.abs(H).max() + 1))


# -- certificate -------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_certificate(head, rng):
    """check_sopsp at a random point: the structured lambda_min (reduced Hessian) equals the
    dense spectrum's, with the bias column in V."""
    X, y, sw = make_data(rng, 200, 4, "logistic")
    obj = rc.Objective(X, y, widths=(4, 3), head=head, sample_weight=sw, feature_bias=True)
    x = random_point(obj, rng)
    report = rc.check_sopsp(obj, x, eps=1e-3)
    part = obj.partial(x)
    z = x[:part.n_params]
    H = part.hessian(z)
    exact = np.linalg.eigvalsh(H)[0]
    scale = np.linalg.norm(H, 2)
    assert report.method == "structured" and report.dim == part.n_params
    assert abs(report.lambda_min - exact) <= 1e-10 * scale + report.lambda_min_error
    assert report.grad_norm == pytest.approx(np.linalg.norm(obj.grad(x)[:part.n_params]),
                                             rel=1e-12)
    dense = certify.lambda_min_dense(part, z)
    assert abs(dense.value - exact) <= 1e-12 * scale
    if head == "residual":
        assert report.lemma1_holds and report.theorem1_holds


# -- optimisers --------------------------------------------------------------------------


def test_optimisers(rng, monkeypatch):
    """PGD's compiled loop (which reads ``FeatureObjective.Phi``, 1-column included) and the
    streamed one agree; projected SGD refuses the option (its loop has no constant)."""
    from resnet_core import _pgd

    X, y, sw = make_data(rng, 60, 3, "logistic")
    fo = rc.FeatureObjective(X, np.tanh(rng.standard_normal((60, 2))), y, sample_weight=sw,
                             feature_bias=True)
    z0 = 0.1 * rng.standard_normal(fo.n_params)
    kw = dict(eps=1e-2, ell=4.0, rho=4.0, max_iter=2000, seed=5)
    fast = rc.perturbed_gd(fo, z0, **kw)
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    slow = rc.perturbed_gd(fo, z0, **kw)
    assert fast.compiled and not slow.compiled and fast.nit == slow.nit
    assert np.allclose(fast.x, slow.x, rtol=1e-9, atol=1e-12)
    assert fast.fun < fo.fun(z0)
    obj = rc.Objective(X, y, widths=(2,), head="skip", feature_bias=True)
    with pytest.raises(NotImplementedError, match="feature_bias"):
        rc.projected_sgd(obj, obj.init(0), T=10, radius=1.0)
