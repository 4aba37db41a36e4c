"""Certificates over (W, V) for c outputs: lambda_min (reduced, dense, Lanczos) against the
NumPy reference and finite differences of the gradient, the Lemma 1 / Theorem 1 analogue
at random points, rank-deficient W, the report, and c = 1 against the scalar certificate."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import ArpackNoConvergence

import reference_vector as ref
import resnet_core as rc
from resnet_core import _certificate, certify, certify_vector as cv

LOSSES = ("cross_entropy", "squared")


def _problem(rng, n, d, k, c, loss, head="residual", weighted=True):
    X, Phi, y, s = ref.random_problem(rng, n, d, k, c, loss, weighted)
    fo = rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=s,
                             n_classes=c if loss == "cross_entropy" else None)
    return fo, (X, Phi, y, s)


def _ref_hessian(fo, data, z):
    X, Phi, y, s = data
    return ref.hessian(X, Phi, y, z, fo.n_outputs, fo.loss.name, s)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 25), d=st.integers(1, 4), k=st.integers(1, 4), c=st.integers(2, 4),
       loss=st.sampled_from(LOSSES), W_kind=st.sampled_from(["generic", "zero", "low_rank"]),
       seed=st.integers(0, 2**31))
def test_lambda_min_matches_dense_reference_and_finite_differences(n, d, k, c, loss, W_kind,
                                                                   seed):
    rng = np.random.default_rng(seed)
    fo, data = _problem(rng, n, d, k, c, loss)
    z = rng.standard_normal(fo.n_params)
    if W_kind == "zero":
        z[:c * d] = 0
    elif W_kind == "low_rank":  # every row of W a multiple of one: rank 1
        z[:c * d] = np.outer(rng.standard_normal(c), rng.standard_normal(d)).ravel()
    H = _ref_hessian(fo, data, z)
    H_fd = ref.hessian_fd(fo.grad, z)  # central differences of the compiled gradient
    scale = max(np.linalg.norm(H, 2), 1.0)
    assert np.abs(H_fd - H).max() <= 1e-6 * scale
    assert np.allclose(_certificate.dense_hessian(fo, z), H, rtol=0, atol=1e-12 * scale)
    exact = np.linalg.eigvalsh(H)[0]
    assert abs(np.linalg.eigvalsh(H_fd)[0] - exact) <= 1e-6 * scale
    for method in ("structured", "dense", "lanczos"):
        lam = getattr(cv, f"lambda_min_{method}")(fo, z)
        assert lam.converged and lam.method == method
        assert abs(lam.value - exact) <= 1e-9 * scale + lam.error, method


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 25), d=st.integers(1, 5), k=st.integers(1, 5), c=st.integers(1, 4),
       loss=st.sampled_from(LOSSES), seed=st.integers(0, 2**31))
def test_reduced_spectrum_is_the_full_spectrum(n, d, k, c, loss, seed):
    """Every eigenvalue, not only the smallest: the reduced matrix plus its zeros."""
    if loss == "cross_entropy" and c == 1:
        c = 2
    rng = np.random.default_rng(seed)
    X, Phi, y, s = ref.random_problem(rng, n, d, k, c, loss)
    z = rng.standard_normal(c * d + d * k)
    if seed % 3 == 0:
        z[:d] = z[d:2 * d] if c > 1 else 0  # two equal rows (or W = 0): W rank-deficient
    W, V = ref.split(z, c, d, k)
    fo = _StatsView(X, Phi, y, s, c, loss)
    stats = cv.VectorStats(fo, W, V, gauss_newton=True)
    M, zeros, pert = cv.reduced_hessian_vector(W, stats.T, stats.Gamma)
    r = np.linalg.matrix_rank(W)
    assert M.shape[0] + zeros == c * d + d * k and M.shape[0] <= c * d + r * k + (d - r) * c
    H = ref.hessian(X, Phi, y, z, c, loss, s)
    mine = np.sort(np.r_[np.linalg.eigvalsh(M), np.zeros(zeros)])
    assert np.abs(mine - np.linalg.eigvalsh(H)).max() <= 1e-12 * max(np.abs(H).max(), 1) + pert
    F, g = ref.value_grad(X, Phi, y, z, c, loss, s)
    assert stats.F == pytest.approx(F, rel=1e-12, abs=1e-14)
    assert np.allclose(stats.grad, g, rtol=0, atol=1e-12 * max(np.abs(g).max(), 1))


class _StatsView:
    """What VectorStats reads of an objective, straight from arrays (any c, the scalar
    squared loss for c = 1 included)."""

    def __init__(self, X, Phi, y, s, c, loss):
        self.X, self.Phi, self.y = X, Phi, y
        self.sample_weight = ref.weights(s, X.shape[0])
        self.n_samples, self.d = X.shape
        self.k, self.n_outputs = Phi.shape[1], c
        self.theta, self.feature_bias = None, False
        self.loss = type("L", (), {"name": loss})()


def test_squared_loss_reduced_problem_uses_only_the_gram_matrix(rng):
    """S = I: T = I_c kron E[z z^T], and the reduced matrix has size cd + ck + (d - c) c
    with (d - c)(k - c) zeros (W of full row rank, Gamma of rank c), much smaller than
    cd + dk when k is large."""
    c, d, k = 2, 5, 12
    fo, data = _problem(rng, 60, d, k, c, "squared")
    z = rng.standard_normal(fo.n_params)
    W, V = cv.head_matrices(fo, z)
    stats = cv.VectorStats(fo, W, V, gauss_newton=True)
    X, Phi, y, s = data
    Z = np.hstack([X + Phi @ V.T, Phi])
    G = (Z * ref.weights(s, 60)[:, None]).T @ Z
    assert np.allclose(stats.T.reshape(c * (d + k), -1), np.kron(np.eye(c), G), atol=1e-12)
    M, zeros, pert = cv.reduced_hessian_vector(W, stats.T, stats.Gamma)
    assert (M.shape[0], zeros, pert) == (c * d + c * k + (d - c) * c, (d - c) * (k - c), 0.0)
    assert M.shape[0] < fo.n_params
    lam = cv.lambda_min_structured(fo, z)
    assert lam.value == pytest.approx(np.linalg.eigvalsh(_ref_hessian(fo, data, z))[0],
                                      abs=1e-12 + lam.error)


@pytest.mark.parametrize("loss", LOSSES)
def test_skip_head_is_convex_and_exact(rng, loss):
    fo, (X, Phi, y, s) = _problem(rng, 40, 3, 2, 3, loss, head="skip")
    z = rng.standard_normal(fo.n_params)
    H = _certificate.dense_hessian(fo, z)
    lam = cv.lambda_min_structured(fo, z)
    assert lam.value == pytest.approx(np.linalg.eigvalsh(H)[0], abs=1e-12 + lam.error)
    assert lam.value >= -lam.error
    r = rc.check_sopsp(fo, z, eps=1.0)
    assert r.head == "skip" and r.lemma1_inner is None and r.theorem2_note is None
    # the whole spectrum, not only its (zero) bottom: T is the Hessian at p = W x + B phi
    T = cv.statistics(fo, *cv.head_matrices(fo, z), gauss_newton=True).T
    np.testing.assert_allclose(np.linalg.eigvalsh(T.reshape(H.shape)), np.linalg.eigvalsh(H),
                               atol=1e-12 * np.abs(H).max())
    # the standard errors of F and of the gap from the per-sample losses at p = W x + B phi
    # (regression: the statistics pass left B phi out of the scores)
    c, d, k = 3, 3, 2
    W, B = z[:c * d].reshape(c, d), z[c * d:].reshape(c, k)
    w = ref.weights(s, 40)
    l = np.array([ref.loss_terms(W @ X[i] + B @ Phi[i], y[i], loss)[0] for i in range(40)])
    l_lin = ref.linear_losses(X, y, np.asarray(r.w_star), loss)
    assert r.F == pytest.approx(w @ l, rel=1e-12)
    assert r.F_se == pytest.approx(np.sqrt(np.sum((w * (l - r.F)) ** 2)), rel=1e-10)
    gap = r.F - r.F_lin_at_w_star
    assert r.gap_se == pytest.approx(np.sqrt(np.sum((w * (l - l_lin - gap)) ** 2)), rel=1e-10)


def _lemma1_case(seed, loss, n, d, k, c, scale):
    rng = np.random.default_rng(seed)
    fo, data = _problem(rng, n, d, k, c, loss)
    z = scale * rng.standard_normal(fo.n_params)
    W_star = rng.standard_normal((c, d))
    return fo, data, z, W_star


@settings(max_examples=60, deadline=None)
@example(n=5, d=5, k=3, c=5, loss="squared", scale=0.1, best=True, seed=94)
@example(n=5, d=5, k=3, c=5, loss="cross_entropy", scale=0.1, best=False, seed=94)
@given(n=st.integers(2, 40), d=st.integers(2, 5), k=st.integers(1, 4), c=st.integers(2, 5),
       loss=st.sampled_from(LOSSES), scale=st.sampled_from([0.1, 1.0, 3.0]),
       best=st.booleans(), seed=st.integers(0, 2**31))
def test_lemma1_analogue_holds_at_random_points(n, d, k, c, loss, scale, best, seed):
    """<G, grad F> = E[r^T (W u - W* x)] >= F - F_lin(W*) and ||grad F|| >= that gap over
    ||G||_F, for W of full row rank and any W* (random, or the best linear predictor)."""
    fo, (X, Phi, y, s), z, W_star = _lemma1_case(seed, loss, n, d, k, c, scale)
    r = rc.check_sopsp(fo, z, eps=1e-3, w_star=None if best else W_star)
    W, V = cv.head_matrices(fo, z)
    if c > d:
        assert r.lemma1_inner is None and "full row rank" in r.lemma1_note
        return
    W_star = np.asarray(r.w_star)
    # independently: the direction and the expectation from the reference, sample by sample
    G = np.concatenate([(W - W_star).ravel(), (np.linalg.pinv(W) @ W_star @ V).ravel()])
    F, g = ref.value_grad(X, Phi, y, z, c, loss, s)
    w = ref.weights(s, n)
    expect = sum(w[i] * ref.loss_terms(W @ (X[i] + V @ Phi[i]), y[i], loss)[1]
                 @ (W @ (X[i] + V @ Phi[i]) - W_star @ X[i]) for i in range(n))
    F_lin = float(w @ ref.linear_losses(X, y, W_star, loss))
    tol = 1e-9 * (1 + abs(F) + abs(F_lin))
    # G holds W^+ W* V: the package and NumPy's pinv agree to about cond(W) rounding units
    # (hypothesis found W of condition 5e4 at relative differences of 2e-8)
    rel = max(1e-9, 1e-11 * np.linalg.cond(W))
    assert r.lemma1_inner == pytest.approx(G @ g, rel=rel, abs=1e-12)
    assert r.lemma1_expectation == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert r.F_lin_at_w_star == pytest.approx(F_lin, rel=1e-12, abs=1e-14)
    assert r.G_norm == pytest.approx(np.linalg.norm(G), rel=rel)
    assert G @ g >= F - F_lin - tol and r.lemma1_holds
    assert r.theorem1_bound == pytest.approx((F - F_lin) / np.linalg.norm(G), rel=rel,
                                             abs=1e-12)
    assert np.linalg.norm(g) >= r.theorem1_bound - tol and r.theorem1_holds


@pytest.mark.parametrize("case", ["zero", "equal_rows", "more_outputs_than_inputs"])
def test_rank_deficient_W_says_the_bound_does_not_apply(rng, case):
    c, d = (4, 3) if case == "more_outputs_than_inputs" else (3, 4)
    fo, _ = _problem(rng, 30, d, 2, c, "cross_entropy")
    z = rng.standard_normal(fo.n_params)
    if case == "zero":
        z[:c * d] = 0
    elif case == "equal_rows":
        z[d:2 * d] = z[:d]
    r = rc.check_sopsp(fo, z, eps=0.1)
    assert r.lemma1_inner is None and r.lemma1_holds is None and r.G_norm is None
    assert r.theorem1_bound is None and r.theorem1_holds is None
    assert f"< c = {c}" in r.lemma1_note and "full row rank" in r.lemma1_note
    text = str(r)
    assert "full row rank" in text and "Theorem 1 analogue bound" not in text
    # lambda_min is still exact there
    H = _certificate.dense_hessian(fo, z)
    assert r.lambda_min == pytest.approx(np.linalg.eigvalsh(H)[0],
                                         abs=1e-12 + r.lambda_min_error)


def test_report_fields_json_and_table(rng):
    fo, (X, Phi, y, s) = _problem(rng, 80, 4, 3, 3, "cross_entropy")
    z = 0.5 * rng.standard_normal(fo.n_params)
    r = rc.check_sopsp(fo, z, eps=0.1)
    assert r.n_outputs == 3 and r.method == "structured" and r.dim == fo.n_params
    assert np.shape(r.w_star) == (3, 4)
    lin = fo.linear_baseline()
    assert r.F_lin_star == lin.infimum and r.baseline_attained == lin.attained
    assert r.F == pytest.approx(fo.fun(z), rel=1e-14)
    assert r.grad_norm == pytest.approx(np.linalg.norm(fo.grad(z)), rel=1e-14)
    W, V = cv.head_matrices(fo, z)
    assert r.w_norm == pytest.approx(np.linalg.norm(W)) and r.V_norm == pytest.approx(
        np.linalg.norm(V, 2))
    assert r.theorem2_lhs is None and r.theorem2_holds is None
    assert "no known analogue for c > 1" in r.theorem2_note
    # standard errors: the weighted spread of the per-sample losses, as for c = 1
    w = ref.weights(s, 80)
    l = np.array([ref.loss_terms(W @ (X[i] + V @ Phi[i]), y[i], "cross_entropy")[0]
                  for i in range(80)])
    l_lin = ref.linear_losses(X, y, np.asarray(r.w_star), "cross_entropy")
    assert r.F_se == pytest.approx(np.sqrt(np.sum((w * (l - r.F)) ** 2)), rel=1e-9)
    gap = r.F - r.F_lin_at_w_star
    assert r.gap_se == pytest.approx(np.sqrt(np.sum((w * (l - l_lin - gap)) ** 2)), rel=1e-9)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["n_outputs"] == 3 and d["theorem2_note"] == r.theorem2_note
    assert d["w_star"] == r.w_star and d["lemma1_holds"] is True
    text = str(r)
    for key in ("||grad_(W,V) F||", "Lemma 1 analogue", "Theorem 1 analogue bound",
                "||G||_F", "Theorem 2", "no known analogue", "(c = 3 outputs)"):
        assert key in text, key
    for line in text.splitlines():
        assert "nan" not in line.lower(), line


def test_methods_agree_and_lanczos_reports_its_residual(rng):
    fo, _ = _problem(rng, 50, 5, 4, 3, "cross_entropy")
    z = rng.standard_normal(fo.n_params)
    reports = {m: rc.check_sopsp(fo, z, eps=0.1, method=m)
               for m in ("auto", "structured", "dense", "lanczos")}
    assert reports["auto"].method == "structured"
    lan = reports["lanczos"]
    assert lan.lanczos_residual is not None and lan.lambda_min_error == lan.lanczos_residual
    for m, r in reports.items():
        assert r.lambda_min == pytest.approx(reports["dense"].lambda_min,
                                             abs=1e-10 + r.lambda_min_error), m


def test_auto_switches_to_lanczos_beyond_the_dense_size(rng, monkeypatch):
    fo, _ = _problem(rng, 40, 4, 3, 3, "squared")
    z = rng.standard_normal(fo.n_params)
    monkeypatch.setattr(cv, "AUTO_MAX", 10)
    r = rc.check_sopsp(fo, z, eps=0.1)
    assert r.method == "lanczos" and r.lanczos_residual is not None
    monkeypatch.setattr(cv, "MAX_DENSE", 10)
    with pytest.raises(ValueError, match="method='lanczos'"):
        rc.check_sopsp(fo, z, eps=0.1, method="structured")
    monkeypatch.setattr(_certificate, "MAX_DENSE_HESSIAN", 10)
    with pytest.raises(ValueError, match="n_params"):
        rc.check_sopsp(fo, z, eps=0.1, method="dense")


def test_unconverged_lanczos_is_inconclusive(rng, monkeypatch):
    fo, _ = _problem(rng, 40, 4, 3, 3, "cross_entropy")
    z = rng.standard_normal(fo.n_params)

    def give_up(*args, **kwargs):
        raise ArpackNoConvergence("no convergence", np.array([]), np.zeros((fo.n_params, 0)))

    monkeypatch.setattr(_certificate, "eigsh", give_up)
    r = rc.check_sopsp(fo, z, eps=1e9, method="lanczos")
    assert r.lambda_min_converged is False and r.is_sopsp is None
    assert "NOT converged" in str(r) and "inconclusive" in str(r)


def test_objective_partial_streams_the_features(rng):
    """A full vector Objective: certified at its partial, features computed block by block
    by the frozen MLP (feature_bias included), the same numbers as given features."""
    X, _, y, s = ref.random_problem(rng, 70, 4, 2, 3, "cross_entropy")
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(5, 3), sample_weight=s,
                       feature_bias=True)
    x = obj.init(1)
    r = rc.check_sopsp(obj, x, eps=0.1)
    part = obj.partial(x, materialize=True)
    z = x[:part.n_params]
    r2 = rc.check_sopsp(part, z, eps=0.1)
    assert r.n_outputs == 3 and r.dim == part.n_params
    for key in ("lambda_min", "grad_norm", "F", "gap", "lemma1_inner", "theorem1_bound"):
        assert getattr(r, key) == pytest.approx(getattr(r2, key), rel=1e-10, abs=1e-13), key
    H = _certificate.dense_hessian(part, z)
    assert r.lambda_min == pytest.approx(np.linalg.eigvalsh(H)[0],
                                         abs=1e-12 + r.lambda_min_error)


def test_float32_objective(rng):
    fo, (X, Phi, y, s) = _problem(rng, 60, 3, 2, 3, "cross_entropy")
    fo32 = rc.FeatureObjective(X.astype(np.float32), Phi.astype(np.float32), y,
                               loss="cross_entropy", sample_weight=s)
    z = rng.standard_normal(fo.n_params)
    r64, r32 = rc.check_sopsp(fo, z, eps=0.1), rc.check_sopsp(fo32, z, eps=0.1)
    assert r32.lambda_min_error > r64.lambda_min_error
    assert r32.lambda_min == pytest.approx(r64.lambda_min, rel=1e-5, abs=1e-6)
    assert r32.F == pytest.approx(r64.F, rel=1e-5)


def test_bad_w_star(rng):
    fo, _ = _problem(rng, 30, 3, 2, 3, "cross_entropy")
    z = rng.standard_normal(fo.n_params)
    with pytest.raises(ValueError, match=r"w_star must have shape \(3, 3\) \(\(c, d\)\)"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.zeros(3))
    with pytest.raises(ValueError, match=r"w_star must have shape \(3, 3\)"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="w_star must be finite"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="not both"):
        rc.check_sopsp(fo, z, eps=0.1, w_star=np.zeros((3, 3)), radius=1.0)


def test_theorem3_inputs_are_refused_with_c_outputs(rng):
    """Theorem 3 rests on Theorem 2, which has no analogue for c > 1: its inputs are an
    error that says so, and the report's note says it without them."""
    fo, _ = _problem(rng, 30, 3, 2, 3, "cross_entropy")
    z = rng.standard_normal(fo.n_params)
    with pytest.raises(ValueError, match="theorem3 is for one output.*Theorem 2"):
        rc.check_sopsp(fo, z, eps=0.1, theorem3={"b": 2.0})
    r = rc.check_sopsp(fo, z, eps=0.1)
    assert r.theorem3_bound is None and "Theorem 2" in r.theorem3_note
    assert "no known analogue" in r.theorem2_note and r.theorem2_lhs is None


# -- c = 1 ------------------------------------------------------------------------------------
def test_one_output_column_is_the_scalar_report(rng):
    """y of shape (n, 1) is today's scalar objective: the same report, number for number."""
    X, Phi, y, s = ref.random_problem(rng, 50, 3, 2, 1, "squared")
    one = rc.FeatureObjective(X, Phi, y, loss="squared", sample_weight=s)
    scalar = rc.FeatureObjective(X, Phi, y[:, 0], loss="squared", sample_weight=s)
    z = rng.standard_normal(scalar.n_params)
    a, b = rc.check_sopsp(one, z, eps=0.1).to_dict(), rc.check_sopsp(scalar, z, eps=0.1).to_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b and a["n_outputs"] == 1


@pytest.mark.parametrize("w_zero", [False, True])
def test_vector_code_at_one_output_gives_the_scalar_numbers(rng, w_zero):
    """The vector certificate run on a scalar squared-loss objective (c = 1, W = w^T):
    lambda_min, gradient, F, gap, Lemma 1 and ||G|| as the scalar report; its Theorem 1
    bound is gap / ||G|| (the scalar report's is the paper's closed form, which is smaller)."""
    X, Phi, y, s = ref.random_problem(rng, 60, 4, 3, 1, "squared")
    fo = rc.FeatureObjective(X, Phi, y[:, 0], loss="squared", sample_weight=s)
    z = rng.standard_normal(fo.n_params)
    if w_zero:
        z[:4] = 0
    kw = dict(eps=0.1, mu2=None, mu2_region=None, curvature_tol=None, w_star=None,
              radius=None, theorem3=None)
    vec = certify._check_sopsp(fo, z, method="structured", part=cv.VectorPart, **kw)
    sca = rc.check_sopsp(fo, z, eps=0.1)
    for key in ("lambda_min", "grad_norm", "F", "F_lin_star", "gap", "F_se", "gap_se",
                "F_lin_at_w_star", "w_norm", "V_norm"):
        assert getattr(vec, key) == pytest.approx(getattr(sca, key), rel=1e-9, abs=1e-12), key
    assert np.allclose(np.ravel(vec.w_star), sca.w_star)
    if w_zero:  # W = 0 has rank 0 < 1: no Lemma 1 (the scalar report has Theorem 2 there)
        assert vec.lemma1_inner is None and sca.theorem2_lhs is not None
        return
    for key in ("lemma1_inner", "lemma1_expectation", "G_norm"):
        assert getattr(vec, key) == pytest.approx(getattr(sca, key), rel=1e-9), key
    assert vec.theorem1_bound == pytest.approx(sca.gap / sca.G_norm, rel=1e-9)
    assert vec.theorem1_bound >= sca.theorem1_bound - 1e-12


def test_lemma1_direction_of_a_nearly_rank_deficient_W():
    """W of full row rank whose smallest singular value is 1e-9 of the largest: W W^T is
    singular in floating point (its solve failed), the SVD's pseudo-inverse is not."""
    from resnet_core.certify_vector import lemma1_direction
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    Q, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    W = U @ np.diag([1.0, 1e-3, 1e-9]) @ Q.T
    V, W_star = rng.standard_normal((5, 4)), rng.standard_normal((3, 5))
    G = lemma1_direction(W, V, W_star)
    assert G is not None and np.isfinite(G).all()
    expect = np.concatenate([(W - W_star).ravel(), (np.linalg.pinv(W, rcond=1e-12) @ W_star @ V).ravel()])
    np.testing.assert_allclose(G, expect, rtol=1e-5, atol=1e-5 * np.abs(expect).max())


@pytest.mark.parametrize("c", [1, 3])
def test_theorem3_inputs_are_checked_before_any_pass(rng, c, monkeypatch):
    """Refused Theorem 3 inputs (c outputs; a bad key with one) cost no statistics pass and
    no baseline: the error comes first."""
    fo, _ = _problem(rng, 30, 3, 2, c, "cross_entropy" if c > 1 else "squared")
    z = rng.standard_normal(fo.n_params)
    calls = []
    for name in ("linear_baseline", "fun_and_grad") + (("stats",) if c == 1 else ()):
        monkeypatch.setattr(fo, name, lambda *a, _n=name, **k: calls.append(_n))
    monkeypatch.setattr(cv, "statistics", lambda *a, **k: calls.append("statistics"))
    with pytest.raises(ValueError, match="theorem3"):
        rc.check_sopsp(fo, z, eps=0.1, theorem3={"b": 2.0} if c > 1 else {"bogus": 1.0})
    assert calls == []
