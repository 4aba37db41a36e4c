"""Self-consistency checks of the plain-NumPy reference in ``tests/reference.py``.

These tests check the reference against itself (and against a few closed-form
facts), never against ``resnet_core``: derivatives against finite differences,
the dense fixed-feature Hessian against its Hessian-vector product, the
fixed-feature functions against the full objective, and the sample-weight
convention.

All data are drawn from fixed seeds.  ReLU and the smoothed hinge have kinks
(ReLU at ``z = 0``; the smoothed hinge's third derivative at
``t = 1 - y p in {-h, 0, h}``): a finite difference taken across a kink would
be wrong.  With continuous random data and the small steps used here the
chance that a sample lies within one step of a kink is negligible, and the
fixed seeds below were checked not to hit one.
"""

import itertools

import numpy as np
import pytest

import reference as ref

LOSS_NAMES = sorted(ref.LOSSES)
ACT_NAMES = sorted(ref.ACTIVATIONS)
HEADS = ["residual", "skip"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def fd_jacobian(f, x, eps):
    """4th-order central-difference Jacobian of ``f`` at ``x``, column ``j`` = d f / d x_j.

    ``(-f(x + 2e) + 8 f(x + e) - 8 f(x - e) + f(x - 2e)) / (12 eps)``.
    Works for scalar ``f`` (returns shape (m,)) and vector ``f`` (shape (out, m)).
    """
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.shape[0]):
        e = np.zeros_like(x)
        e[j] = eps
        col = (-np.asarray(f(x + 2 * e)) + 8 * np.asarray(f(x + e))
               - 8 * np.asarray(f(x - e)) + np.asarray(f(x - 2 * e))) / (12 * eps)
        cols.append(col)
    return np.stack(cols, axis=-1)


def make_labels(rng, n, loss):
    if loss == "squared":
        return rng.normal(size=n)
    return rng.choice([-1.0, 1.0], size=n)


def make_problem(seed, *, loss, n=7, d=3, widths=(4, 2), head="residual",
                 bias=True, weighted=True):
    """Random small problem: X, y, flat params x, sample weights (or None)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = make_labels(rng, n, loss)
    x = 0.7 * rng.normal(size=ref.n_params(d, widths, head, bias))
    sw = None
    if weighted:
        sw = rng.uniform(0.2, 2.0, size=n)
        sw[0] = 0.0  # a zero weight must simply drop the sample
    return X, y, x, sw


def kw(widths, loss, act, bias, head, sw):
    return dict(widths=widths, loss=loss, activation=act, bias=bias, head=head,
                sample_weight=sw)


# ---------------------------------------------------------------------------
# Elementwise building blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_loss_derivatives(loss):
    rng = np.random.default_rng(0)
    p = rng.uniform(-3, 3, size=200)
    y = make_labels(rng, 200, loss)
    eps = 1e-4
    l, dl, d2l = ref.LOSSES[loss](p, y)
    f = ref.LOSSES[loss]
    num_dl = (-f(p + 2 * eps, y)[0] + 8 * f(p + eps, y)[0]
              - 8 * f(p - eps, y)[0] + f(p - 2 * eps, y)[0]) / (12 * eps)
    num_d2l = (-f(p + 2 * eps, y)[1] + 8 * f(p + eps, y)[1]
               - 8 * f(p - eps, y)[1] + f(p - 2 * eps, y)[1]) / (12 * eps)
    np.testing.assert_allclose(dl, num_dl, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d2l, num_d2l, rtol=1e-7, atol=1e-7)
    assert np.all(d2l >= 0)  # all three losses are convex in p


def test_logistic_stable_and_exact():
    p = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    y = np.ones_like(p)
    l, dl, d2l = ref.LOSSES["logistic"](p, y)
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(dl)) and np.all(np.isfinite(d2l))
    np.testing.assert_allclose(l[0], 800.0)
    np.testing.assert_allclose(l[2], np.log(2.0))
    np.testing.assert_allclose(dl[2], -0.5)
    np.testing.assert_allclose(d2l[2], 0.25)
    np.testing.assert_allclose(l[3], np.log1p(np.exp(-30.0)), rtol=1e-14)
    # symmetric in the label: l(p; -1) = l(-p; +1)
    l_neg, _, _ = ref.LOSSES["logistic"](p, -y)
    np.testing.assert_allclose(l_neg, l[::-1])


def test_smoothed_hinge_pieces():
    h = ref.SMOOTHED_HINGE_H
    f = ref.LOSSES["smoothed_hinge"]
    # outside |t| < h it is exactly the hinge max(0, t), t = 1 - y p
    t = np.concatenate([np.linspace(-4, -h, 20), np.linspace(h, 4, 20)])
    for yv in (1.0, -1.0):
        y = np.full_like(t, yv)
        p = (1 - t) / yv
        l, dl, d2l = f(p, y)
        np.testing.assert_allclose(l, np.maximum(0.0, t), atol=1e-15)
        np.testing.assert_allclose(dl, -yv * (t >= h), atol=1e-15)
        np.testing.assert_allclose(d2l, 0.0, atol=1e-15)
    # C^2 at the three breakpoints t = -h, 0, h (s = 0, h, 2h)
    y = np.ones(2)
    for tb in (-h, 0.0, h):
        delta = 1e-9
        p = 1 - np.array([tb - delta, tb + delta])
        l, dl, d2l = f(p, y)
        assert abs(l[0] - l[1]) < 1e-8
        assert abs(dl[0] - dl[1]) < 1e-8
        assert abs(d2l[0] - d2l[1]) < 1e-7
    # values at the centre t = 0: l = h/6, dl/dt = 1/2, d2l/dt2 = 1/h
    l, dl, d2l = f(np.array([1.0]), np.array([1.0]))
    np.testing.assert_allclose([l[0], dl[0], d2l[0]], [h / 6, -0.5, 1 / h])
    # lies between the hinge and the hinge shifted by h
    t = np.linspace(-2, 2, 401)
    l, _, _ = f(1 - t, np.ones_like(t))
    assert np.all(l >= np.maximum(0, t) - 1e-15)
    assert np.all(l <= np.maximum(0, t + h) + 1e-15)


@pytest.mark.parametrize("act", ACT_NAMES)
def test_activation_derivatives(act):
    rng = np.random.default_rng(1)
    z = rng.uniform(-4, 4, size=300)
    z = z[np.abs(z) > 1e-2]  # keep away from the ReLU kink
    f = ref.ACTIVATIONS[act]
    eps = 1e-4
    a, da, d2a = f(z)
    for k, deriv in ((0, da), (1, d2a)):
        num = (-f(z + 2 * eps)[k] + 8 * f(z + eps)[k]
               - 8 * f(z - eps)[k] + f(z - 2 * eps)[k]) / (12 * eps)
        np.testing.assert_allclose(deriv, num, rtol=1e-7, atol=1e-9)


def test_activations_stable():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    for act in ACT_NAMES:
        out = ref.ACTIVATIONS[act](z)
        for arr in out:
            assert np.all(np.isfinite(arr)), act
    a, da, _ = ref.ACTIVATIONS["softplus"](z)
    np.testing.assert_allclose(a, [0.0, np.log1p(np.exp(-50.0)), np.log(2.0), 50.0, 1000.0],
                               rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(da[2], 0.5)
    a, _, _ = ref.ACTIVATIONS["relu"](z)
    np.testing.assert_array_equal(a, [0, 0, 0, 50, 1000])
    _, da, _ = ref.ACTIVATIONS["relu"](np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(da, [0, 0, 1])  # derivative 0 at z = 0


# ---------------------------------------------------------------------------
# Parameter layout
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("head,bias", list(itertools.product(HEADS, [True, False])))
def test_layout(head, bias):
    d, widths = 3, [4, 5, 2]
    k = widths[-1]
    m = ref.n_params(d, widths, head, bias)
    expected = d + (d * k if head == "residual" else k)
    expected += 4 * 3 + 5 * 4 + 2 * 5 + (4 + 5 + 2 if bias else 0)
    assert m == expected
    x = np.arange(m, dtype=np.float64)
    P = ref.unpack(x, d, widths, head, bias)
    np.testing.assert_array_equal(P["w"], [0, 1, 2])
    if head == "residual":
        assert P["V"].shape == (d, k)
        # row-major: V[i, j] at offset d + i*k + j
        assert P["V"][1, 0] == d + 1 * k + 0
        pos = d + d * k
    else:
        assert P["v"].shape == (k,)
        pos = d + k
    W1, b1 = P["layers"][0]
    assert W1.shape == (4, 3)
    assert W1[1, 0] == pos + 3  # row-major, (h_1, d)
    if bias:
        np.testing.assert_array_equal(b1, pos + 12 + np.arange(4))
    else:
        assert b1 is None
    assert [W.shape for W, _ in P["layers"]] == [(4, 3), (5, 4), (2, 5)]
    np.testing.assert_array_equal(ref.pack(P, head), x)
    with pytest.raises(ValueError):
        ref.unpack(x[:-1], d, widths, head, bias)


# ---------------------------------------------------------------------------
# Full objective
# ---------------------------------------------------------------------------


def _value_loop(X, y, x, *, widths, loss, activation, bias, head, sample_weight):
    """Independent per-sample evaluation of F, straight from the definitions."""
    n, d = X.shape
    P = ref.unpack(x, d, widths, head, bias)
    act = ref.ACTIVATIONS[activation]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    total = 0.0
    for i in range(n):
        a = X[i]
        for W, b in P["layers"]:
            zz = W @ a + (b if b is not None else 0.0)
            a = act(zz)[0]
        if head == "residual":
            p = P["w"] @ (X[i] + P["V"] @ a)
        else:
            p = P["w"] @ X[i] + P["v"] @ a
        total += s[i] * ref.LOSSES[loss](np.array([p]), np.array([y[i]]))[0][0]
    return total / s.sum()


@pytest.mark.parametrize("head,bias", list(itertools.product(HEADS, [True, False])))
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_value_matches_loop(loss, head, bias):
    widths = [4, 2]
    X, y, x, sw = make_problem(10, loss=loss, widths=widths, head=head, bias=bias)
    for act in ACT_NAMES:
        k = kw(widths, loss, act, bias, head, sw)
        np.testing.assert_allclose(ref.value(X, y, x, **k), _value_loop(X, y, x, **k),
                                   rtol=1e-13)


@pytest.mark.parametrize("head,bias", list(itertools.product(HEADS, [True, False])))
@pytest.mark.parametrize("act", ACT_NAMES)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_gradient_vs_fd(loss, act, head, bias):
    # two shapes: a deep-ish net and a single layer, weighted and unweighted
    cases = [
        dict(seed=100, n=7, d=3, widths=[4, 2], weighted=True),
        dict(seed=200, n=5, d=2, widths=[3], weighted=False),
    ]
    for c in cases:
        X, y, x, sw = make_problem(c["seed"], loss=loss, n=c["n"], d=c["d"],
                                   widths=c["widths"], head=head, bias=bias,
                                   weighted=c["weighted"])
        k = kw(c["widths"], loss, act, bias, head, sw)
        g = ref.gradient(X, y, x, **k)
        num = fd_jacobian(lambda t: ref.value(X, y, t, **k), x, eps=1e-4)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{loss}/{act}/{head}/bias={bias}/{c}")


def test_sample_weights_convention():
    """Integer weights = repeated rows; weights are scale-free; zero weight drops a row."""
    widths, loss, act, head = [3, 2], "logistic", "tanh", "residual"
    X, y, x, _ = make_problem(5, loss=loss, widths=widths, head=head, weighted=False)
    counts = np.array([1, 3, 0, 2, 1, 1, 4])
    k = kw(widths, loss, act, True, head, counts)
    k_rep = kw(widths, loss, act, True, head, None)
    Xr, yr = np.repeat(X, counts, axis=0), np.repeat(y, counts)
    np.testing.assert_allclose(ref.value(X, y, x, **k), ref.value(Xr, yr, x, **k_rep),
                               rtol=1e-13)
    np.testing.assert_allclose(ref.gradient(X, y, x, **k),
                               ref.gradient(Xr, yr, x, **k_rep), rtol=1e-12, atol=1e-15)
    k_scaled = kw(widths, loss, act, True, head, 2.5 * counts)
    np.testing.assert_allclose(ref.value(X, y, x, **k), ref.value(X, y, x, **k_scaled),
                               rtol=1e-13)
    # None == all ones
    k_ones = kw(widths, loss, act, True, head, np.ones(len(y)))
    assert ref.value(X, y, x, **k_rep) == pytest.approx(ref.value(X, y, x, **k_ones),
                                                        rel=1e-14)
    with pytest.raises(ValueError):
        ref.value(X, y, x, **kw(widths, loss, act, True, head, np.zeros(len(y))))


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss,act,bias", [("logistic", "tanh", True),
                                           ("smoothed_hinge", "softplus", False),
                                           ("squared", "sigmoid", True)])
def test_full_hessian_fd(loss, act, head, bias):
    """hessian_fd is symmetric, agrees with hessp_fd, and its head block is
    feature_hessian (the features do not depend on the head parameters)."""
    widths = [3, 2]
    X, y, x, sw = make_problem(300, loss=loss, n=6, d=2, widths=widths, head=head,
                               bias=bias)
    k = kw(widths, loss, act, bias, head, sw)
    H = ref.hessian_fd(X, y, x, **k)
    m = x.shape[0]
    assert H.shape == (m, m)
    np.testing.assert_allclose(H, H.T, rtol=1e-6, atol=1e-8)

    p = np.random.default_rng(301).normal(size=m)
    np.testing.assert_allclose(ref.hessp_fd(X, y, x, p, **k), H @ p, rtol=1e-6, atol=1e-8)

    d = X.shape[1]
    P = ref.unpack(x, d, widths, head, bias)
    Phi = ref.features(X, P["layers"], act)
    nz = d + (d * widths[-1] if head == "residual" else widths[-1])
    Hf = ref.feature_hessian(X, Phi, y, x[:nz], loss=loss, head=head, sample_weight=sw)
    np.testing.assert_allclose(H[:nz, :nz], Hf, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# Fixed-feature problem
# ---------------------------------------------------------------------------


def make_feature_problem(seed, loss, head, n=9, d=3, k=4, weighted=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Phi = np.tanh(rng.normal(size=(n, k)))
    y = make_labels(rng, n, loss)
    z = 0.8 * rng.normal(size=d + (d * k if head == "residual" else k))
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return X, Phi, y, z, sw


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_feature_grad_and_hessian_vs_fd(loss, head, weighted):
    X, Phi, y, z, sw = make_feature_problem(400, loss, head, weighted=weighted)
    fk = dict(loss=loss, head=head, sample_weight=sw)

    F, g = ref.feature_value_grad(X, Phi, y, z, **fk)
    num_g = fd_jacobian(lambda t: ref.feature_value_grad(X, Phi, y, t, **fk)[0], z, eps=1e-4)
    np.testing.assert_allclose(g, num_g, rtol=1e-7, atol=1e-10)

    H = ref.feature_hessian(X, Phi, y, z, **fk)
    num_H = fd_jacobian(lambda t: ref.feature_value_grad(X, Phi, y, t, **fk)[1], z, eps=1e-5)
    np.testing.assert_allclose(H, num_H, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(H, H.T, rtol=1e-14, atol=1e-16)  # symmetric up to rounding

    rng = np.random.default_rng(401)
    for _ in range(3):
        p = rng.normal(size=z.shape[0])
        np.testing.assert_allclose(ref.feature_hessp(X, Phi, y, z, p, **fk), H @ p,
                                   rtol=1e-12, atol=1e-13)
    # basis vectors give the columns of H
    E = np.eye(z.shape[0])
    cols = np.stack([ref.feature_hessp(X, Phi, y, z, E[j], **fk) for j in range(z.shape[0])],
                    axis=1)
    np.testing.assert_allclose(cols, H, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("head", HEADS)
def test_stats_definitions(head):
    loss = "logistic"
    X, Phi, y, z, sw = make_feature_problem(500, loss, head)
    n, d = X.shape
    k = Phi.shape[1]
    A, B, C, g = ref.stats(X, Phi, y, z, loss=loss, head=head, sample_weight=sw)
    # per-sample sums, straight from the definitions
    w = z[:d]
    q = sw / sw.sum()
    A2, B2, C2, g2 = np.zeros((d, d)), np.zeros((d, k)), np.zeros((k, k)), np.zeros(k)
    for i in range(n):
        if head == "residual":
            V = z[d:].reshape(d, k)
            u = X[i] + V @ Phi[i]
            p = w @ u
        else:
            u = X[i]
            p = w @ u + z[d:] @ Phi[i]
        _, dl, d2l = ref.LOSSES[loss](np.array([p]), np.array([y[i]]))
        A2 += q[i] * d2l[0] * np.outer(u, u)
        B2 += q[i] * d2l[0] * np.outer(u, Phi[i])
        C2 += q[i] * d2l[0] * np.outer(Phi[i], Phi[i])
        g2 += q[i] * dl[0] * Phi[i]
    for a, b in ((A, A2), (B, B2), (C, C2), (g, g2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # H_wV entry formula for the residual head
    if head == "residual":
        H = ref.feature_hessian(X, Phi, y, z, loss=loss, head=head, sample_weight=sw)
        for a_, i, j in [(0, 0, 1), (1, 0, 3), (2, 2, 0), (1, 1, 2)]:
            expected = w[i] * B[a_, j] + (g[j] if i == a_ else 0.0)
            assert H[a_, d + i * k + j] == pytest.approx(expected, rel=1e-14, abs=1e-16)
        np.testing.assert_allclose(H[d:, d:], np.kron(np.outer(w, w), C), rtol=1e-14)


@pytest.mark.parametrize("head,bias", list(itertools.product(HEADS, [True, False])))
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_feature_functions_match_full_objective(loss, head, bias):
    widths = [4, 3]
    for act in ACT_NAMES:
        X, y, x, sw = make_problem(600, loss=loss, n=8, d=3, widths=widths, head=head,
                                   bias=bias)
        k = kw(widths, loss, act, bias, head, sw)
        d = X.shape[1]
        P = ref.unpack(x, d, widths, head, bias)
        Phi = ref.features(X, P["layers"], act)
        assert Phi.shape == (8, widths[-1])
        nz = d + (d * widths[-1] if head == "residual" else widths[-1])
        F, g = ref.feature_value_grad(X, Phi, y, x[:nz], loss=loss, head=head,
                                      sample_weight=sw)
        np.testing.assert_allclose(F, ref.value(X, y, x, **k), rtol=1e-14)
        np.testing.assert_allclose(g, ref.gradient(X, y, x, **k)[:nz], rtol=1e-12,
                                   atol=1e-15)


def test_identity_squared_closed_form():
    """Identity activation, no bias, squared loss: the model is linear,
    p = x^T (I + V W_2 W_1)^T w, and F is a weighted least-squares objective."""
    rng = np.random.default_rng(700)
    n, d, widths = 10, 3, [4, 2]
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    x = rng.normal(size=ref.n_params(d, widths, "residual", False))
    P = ref.unpack(x, d, widths, "residual", False)
    W1, W2 = P["layers"][0][0], P["layers"][1][0]
    beta = (np.eye(d) + P["V"] @ W2 @ W1).T @ P["w"]
    F = ref.value(X, y, x, widths=widths, loss="squared", activation="identity",
                  bias=False, head="residual")
    np.testing.assert_allclose(F, 0.5 * np.mean((X @ beta - y) ** 2), rtol=1e-13)
    # gradient with respect to w is (I + V W2 W1) E[(p - y) x]
    g = ref.gradient(X, y, x, widths=widths, loss="squared", activation="identity",
                     bias=False, head="residual")
    np.testing.assert_allclose(g[:d], (np.eye(d) + P["V"] @ W2 @ W1) @ (X.T @ (X @ beta - y)) / n,
                               rtol=1e-12)


# ---------------------------------------------------------------------------
# Constant feature (Remark 1, feature_bias=True)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss,act,bias", [("logistic", "tanh", True),
                                           ("squared", "softplus", False),
                                           ("smoothed_hinge", "sigmoid", True)])
def test_feature_bias_value_and_gradient(loss, act, bias, head):
    """With the constant feature: the value from a per-sample loop, the gradient against
    finite differences, the bias entries' gradient w_i E[l'] (residual) or E[l'] (skip),
    and the feature functions as the head block of the full objective."""
    widths = [4, 2]
    rng = np.random.default_rng(800)
    X, y, _, sw = make_problem(801, loss=loss, n=8, d=3, widths=widths, head=head,
                               bias=bias)
    x = 0.7 * rng.normal(size=ref.n_params(3, widths, head, bias, feature_bias=True))
    k = dict(kw(widths, loss, act, bias, head, sw), feature_bias=True)
    P = ref.unpack(x, 3, widths, head, bias, feature_bias=True)
    Phi = ref.features(X, P["layers"], act)
    # the loop: p = w.x + (V^T w | v).[f; 1]
    c = P["V"].T @ P["w"] if head == "residual" else P["v"]
    p = X @ P["w"] + Phi @ c[:-1] + c[-1]
    q = sw / sw.sum()
    np.testing.assert_allclose(ref.value(X, y, x, **k), q @ ref.LOSSES[loss](p, y)[0],
                               rtol=1e-13)
    g = ref.gradient(X, y, x, **k)
    num = fd_jacobian(lambda t: ref.value(X, y, t, **k), x, eps=1e-4)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)
    El = q @ ref.LOSSES[loss](p, y)[1]
    if head == "residual":
        np.testing.assert_allclose(g[3:3 + 3 * 3].reshape(3, 3)[:, -1], P["w"] * El,
                                   rtol=1e-12)
    else:
        np.testing.assert_allclose(g[3 + 2], El, rtol=1e-12)
    nz = 3 + (3 * 3 if head == "residual" else 3)
    fk = dict(loss=loss, head=head, sample_weight=sw, feature_bias=True)
    F, gz = ref.feature_value_grad(X, Phi, y, x[:nz], **fk)
    np.testing.assert_allclose(F, ref.value(X, y, x, **k), rtol=1e-14)
    np.testing.assert_allclose(gz, g[:nz], rtol=1e-12, atol=1e-15)
    # the fixed-feature functions equal those of the explicit [Phi, 1] without the option
    Phi1 = np.column_stack([Phi, np.ones(len(y))])
    fk0 = dict(loss=loss, head=head, sample_weight=sw)
    for a, b in zip(ref.stats(X, Phi, y, x[:nz], **fk), ref.stats(X, Phi1, y, x[:nz], **fk0)):
        np.testing.assert_array_equal(a, b)
    H = ref.feature_hessian(X, Phi, y, x[:nz], **fk)
    num_H = fd_jacobian(lambda t: ref.feature_value_grad(X, Phi, y, t, **fk)[1], x[:nz],
                        eps=1e-5)
    np.testing.assert_allclose(H, num_H, rtol=1e-6, atol=1e-9)
    Hfull = ref.hessian_fd(X, y, x, **k)
    np.testing.assert_allclose(Hfull[:nz, :nz], H, rtol=1e-6, atol=1e-8)
