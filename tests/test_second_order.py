"""find_sopsp: the returned point is certified by an independent check_sopsp call, (w, V)
steps never raise F, Example 1's saddle is escaped in a few iterations for every eps, the
exact steps solve their subproblems, and every data path (memmap, dask, c outputs, an
Objective with theta steps) ends certified."""

import numpy as np
import pytest
from scipy.optimize import minimize

import resnet_core as rc
from conftest import LOSSES, make_data
from resnet_core import second_order as so
from resnet_core import saddles as so_saddles
from resnet_core._reduced_spectrum import residual_form
from resnet_core._trust_region import cubic_step


def _fo(rng, loss="logistic", head="residual", n=60, d=4, k=3, dtype=np.float64, **kw):
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(X @ rng.standard_normal((d, k)))
    return rc.FeatureObjective(X.astype(dtype), Phi, y, loss=loss, head=head,
                               sample_weight=sw, **kw)


def _wv_steps_monotone(res):
    """F never rises from one (w, V) row of the history to the next."""
    F, steps = np.array(res.history["F"]), res.history["step"]
    for i in range(len(F) - 1):
        if steps[i] in ("negative-curvature", "trust-region", "cubic"):
            assert F[i + 1] <= F[i], (i, steps[i], F[i], F[i + 1])


@pytest.mark.parametrize("method", so.METHODS)
@pytest.mark.parametrize("c", [1e-1, 1e-2, 1e-3, 1e-4])
def test_example1_saddle_escaped_and_certified(c, method):
    obj, z0 = rc.theory.example1(c)
    # threshold -c/2: the saddle (lambda_min = -c) is NOT an eps-SOPSP at this target
    eps, mu2 = c**2, 0.25
    before = rc.check_sopsp(obj, z0, eps=eps, mu2=mu2)
    assert before.is_sopsp is False
    res = so.find_sopsp(obj, z0, eps, mu2=mu2, method=method)
    assert res.success and res.status == 0, res.message
    assert res.nit <= 10
    assert res.history["step"][0] == "negative-curvature"
    again = rc.check_sopsp(obj, res.x, eps=eps, mu2=mu2)
    assert again.is_sopsp is True
    assert again.F == res.certificate.F and again.grad_norm <= eps
    assert res.fun < 1e-3  # near the valley of global minima w (1 + c v) = 1 (F = 0)
    _wv_steps_monotone(res)


@pytest.mark.parametrize("method", so.METHODS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("head", ["residual", "skip"])
def test_random_problems_certified_and_monotone(loss, head, method):
    rng = np.random.default_rng(hash((loss, head, method)) % 2**32)
    fo = _fo(rng, loss, head)
    z0 = 0.5 * rng.standard_normal(fo.n_params)
    res = so.find_sopsp(fo, z0, 1e-6, mu2=1.0, method=method)
    assert res.success, res.message
    rep = rc.check_sopsp(fo, res.x, eps=1e-6, mu2=1.0)
    assert rep.is_sopsp is True
    assert res.fun <= fo.fun(z0)
    _wv_steps_monotone(res)
    assert res.passes["total"] == sum(v for key, v in res.passes.items() if key != "total")
    assert res.passes["statistics"] == len(res.history["F"])


def test_theorem2_saddle_of_real_shape_is_escaped():
    rng = np.random.default_rng(3)
    fo = _fo(rng, "logistic", n=200, d=6, k=4)
    z0 = rc.theorem2_stationary_point(fo).x
    assert np.linalg.norm(fo.grad(z0)) < 1e-12
    rep = rc.check_sopsp(fo, z0, eps=1e-4, mu2=1.0)
    assert rep.lambda_min < rep.threshold and rep.is_sopsp is False
    for method in so.METHODS:
        res = so.find_sopsp(fo, z0, 1e-4, mu2=1.0, method=method)
        assert res.success and res.history["step"][0] == "negative-curvature"
        assert res.fun < fo.fun(z0) - 0.01
        _wv_steps_monotone(res)


@pytest.mark.parametrize("case", ["generic", "w=0", "g=0", "w=0,g=0"])
def test_lift_is_an_isometry_into_the_hessian(case):
    """H lift(r) = lift(M r) and ||lift(r)|| = ||r||: the reduced model is the full one."""
    rng = np.random.default_rng(["generic", "w=0", "g=0", "w=0,g=0"].index(case))
    d, k = 4, 3
    fo = _fo(rng, "logistic", d=d, k=k)
    z = rng.standard_normal(fo.n_params)
    if "w=0" in case:
        z[:d] = 0.0
    st = fo.stats(z)
    w = np.asarray(fo.unpack(z)["w"])
    g = np.zeros(k) if "g=0" in case else np.asarray(st.g)
    form = residual_form(w, st.A, st.B, st.C, g)
    M, lift = form.M, form.lift
    assert np.array_equal(M, rc.reduced_hessian(w, st.A, st.B, st.C, g)[0])
    # the Hessian with this g: the dense formula of FeatureObjective.hessian
    V = np.asarray(fo.unpack(z)["V"])
    H = rc.heads.HEADS["residual"].hessian(w, V, st.A, st.B, st.C, g)
    for _ in range(3):
        r = rng.standard_normal(M.shape[0])
        np.testing.assert_allclose(H @ lift(r), lift(M @ r), atol=1e-12 * np.abs(H).max())
        assert np.isclose(np.linalg.norm(lift(r)), np.linalg.norm(r))
    grad_V = np.outer(w, g).ravel()
    full = np.concatenate([st.grad[:d], grad_V])
    rg = form.reduce_grad(full)
    # the reduced gradient is the full one seen in these coordinates
    for i in range(M.shape[0]):
        e = np.zeros(M.shape[0])
        e[i] = 1.0
        assert np.isclose(rg[i], full @ lift(e), atol=1e-13)
    # the zero eigenvectors: orthonormal, in H's null space, orthogonal to lift's range
    left, right = form.zero_basis()
    Z = np.column_stack([form.pack_dV(np.outer(a, b)) for a in left.T for b in right.T])
    assert Z.shape[1] == form.n_zeros == d + d * k - M.shape[0]
    np.testing.assert_allclose(Z.T @ Z, np.eye(form.n_zeros), atol=1e-12)
    np.testing.assert_allclose(H @ Z, 0, atol=1e-12 * np.abs(H).max())
    L = np.column_stack([lift(e) for e in np.eye(M.shape[0])])
    np.testing.assert_allclose(L.T @ Z, 0, atol=1e-12)


def _model(rng, dim, hard=False):
    A = rng.standard_normal((dim, dim))
    H = (A + A.T) / 2
    ev, Q = np.linalg.eigh(H)
    g = rng.standard_normal(dim)
    if hard:
        g -= Q[:, 0] * (Q[:, 0] @ g)
    return so._LocalModel(0.0, g, g, ev, Q, lambda r: r, float(ev[0]), 0.0, None)


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("sigma", [0.1, 1.0, 10.0])
def test_cubic_step_minimises_its_model(sigma, hard):
    rng = np.random.default_rng(int(sigma * 10) + hard)
    m = _model(rng, 6, hard)
    r = cubic_step(m.ev, m.Q, m.rgrad, sigma)
    best = min((minimize(lambda p: -m.decrease(p, sigma), rng.standard_normal(6) * s,
                         method="BFGS", options={"gtol": 1e-12}).fun for s in (0.1, 1, 10)))
    assert -m.decrease(r, sigma) <= best + 1e-9
    lam = sigma * np.linalg.norm(r) / 2  # Nesterov and Polyak's optimality conditions
    np.testing.assert_allclose((m.Q * m.ev) @ m.Q.T @ r + lam * r, -m.rgrad, atol=1e-8)
    assert lam >= -m.ev[0] - 1e-9


def test_trust_region_step_minimises_its_model():
    rng = np.random.default_rng(7)
    m = _model(rng, 5)
    r = so._tr_step(m, 0.5)
    assert np.linalg.norm(r) <= 0.5 * (1 + 1e-12)
    cons = {"type": "ineq", "fun": lambda p: 0.25 - p @ p}
    tries = [minimize(lambda p: -m.decrease(p), rng.standard_normal(5) * 0.1,
                      constraints=[cons], method="SLSQP").x for _ in range(5)]
    # SLSQP may end an ulp outside the ball: its points are scaled back onto it
    best = min(-m.decrease(p * min(1.0, 0.5 / np.linalg.norm(p))) for p in tries)
    assert -m.decrease(r) <= best + 1e-10


def test_objective_with_theta_rounds_ends_certified():
    rng = np.random.default_rng(11)
    X, y, sw = make_data(rng, 80, 3, "logistic")
    obj = rc.Objective(X, y, loss="logistic", widths=(4,), sample_weight=sw)
    x0 = obj.init(0)
    res = so.find_sopsp(obj, x0, 1e-5, mu2=1.0, theta_iter=5, max_rounds=3)
    assert res.success, res.message
    assert res.x.shape == x0.shape and res.n_rounds >= 2
    assert "theta" in res.history["step"]
    rep = rc.check_sopsp(obj, res.x, eps=1e-5, mu2=1.0)
    assert rep.is_sopsp is True and np.isclose(rep.F, res.fun)
    assert res.passes["theta"] > 0 and res.fun < obj.fun(x0)


def test_memmap_and_dask_data_agree_with_memory(tmp_path):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(5)
    X, y, _ = make_data(rng, 300, 4, "logistic")
    Phi = np.tanh(X @ rng.standard_normal((4, 3)))
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    mem = rc.FeatureObjective(X, Phi, y)
    # off the exact saddle: there the sign of the first step is decided by rounding
    z0 = rc.theorem2_stationary_point(mem).x + 1e-3 * rng.standard_normal(mem.n_params)
    ref = so.find_sopsp(mem, z0, 1e-6, mu2=1.0)
    assert ref.success
    for X_other, Phi_other in ((Xm, Phi), (da.from_array(X, chunks=(100, 4)),
                                           da.from_array(Phi, chunks=(100, 3)))):
        other = rc.FeatureObjective(X_other, Phi_other, y)
        res = so.find_sopsp(other, z0, 1e-6, mu2=1.0)
        assert res.success and res.certificate.is_sopsp
        np.testing.assert_allclose(res.x, ref.x, rtol=1e-6, atol=1e-8)
        assert res.history["step"] == ref.history["step"]


def test_c_outputs_on_hessian_vector_products():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 3))
    y = rng.integers(0, 3, 60)
    fo = rc.FeatureObjective(X, np.tanh(X @ rng.standard_normal((3, 2))), y,
                             loss="cross_entropy")
    z0 = 0.3 * rng.standard_normal(fo.n_params)
    res = so.find_sopsp(fo, z0, 1e-5, mu2=1.0)
    assert res.success, res.message
    assert res.passes["hessp"] > 0 and res.passes["statistics"] == 0
    assert rc.check_sopsp(fo, res.x, eps=1e-5, mu2=1.0).is_sopsp is True
    _wv_steps_monotone(res)


def test_float32():
    rng = np.random.default_rng(4)
    fo = _fo(rng, "squared", dtype=np.float32)
    res = so.find_sopsp(fo, rc.theorem2_stationary_point(fo).x, 1e-3, mu2=1.0)
    assert res.success and res.x.dtype == np.float32
    assert rc.check_sopsp(fo, res.x, eps=1e-3, mu2=1.0).is_sopsp is True


def test_budgets_say_why():
    obj, z0 = rc.theory.example1(0.01)
    res = so.find_sopsp(obj, z0, 1e-4, mu2=0.25, max_iter=1)
    assert res.status == 1 and not res.success and "maximum number" in res.message
    assert res.certificate.is_sopsp is False  # the certificate is given whatever the status
    res = so.find_sopsp(obj, z0, 1e-4, mu2=0.25, max_passes=3)
    assert res.status == 3 and not res.success


def test_mu2_region_and_curvature_tol():
    obj, z0 = rc.theory.example1(0.1)
    res = so.find_sopsp(obj, z0, 1e-4, curvature_tol=0.05)
    assert res.success and res.certificate.curvature_tol == 0.05
    res = so.find_sopsp(obj, z0, 1e-4, mu2_region=rc.lipschitz.Box([-20, -20], [20, 20]))
    assert res.success and res.certificate.mu2_source.startswith("estimated")


@pytest.mark.parametrize("kw, err, match", [
    (dict(), ValueError, "exactly one of mu2"),
    (dict(mu2=1.0, curvature_tol=0.1), ValueError, "exactly one of mu2"),
    (dict(mu2=1.0, method="newton"), ValueError, "method"),
    (dict(mu2=1.0, max_iter=0), ValueError, "max_iter"),
    (dict(mu2=1.0, radius=-1.0), ValueError, "radius"),
    (dict(mu2=1.0, theta_iter=2), ValueError, "theta_iter"),
])
def test_bad_arguments(kw, err, match):
    obj, z0 = rc.theory.example1(0.1)
    with pytest.raises(err, match=match):
        so.find_sopsp(obj, z0, 1e-3, **kw)


def test_bad_eps_and_objective():
    obj, z0 = rc.theory.example1(0.1)
    with pytest.raises(ValueError, match="eps"):
        so.find_sopsp(obj, z0, -1.0, mu2=1.0)
    with pytest.raises(TypeError, match="objective"):
        so.find_sopsp(lambda z: 0.0, z0, 1e-3, mu2=1.0)
    with pytest.raises(ValueError, match="x0"):
        so.find_sopsp(obj, [0.0], 1e-3, mu2=1.0)


def test_escape_study_compares_pgd_and_second_order_on_the_same_starts():
    c = 0.1
    obj, z0 = rc.theory.example1(c)
    starts = np.array([z0, z0 + [0.01, 0.0], z0 + [0.0, -0.02]])
    kw = dict(n_runs=6, seed=0, eps=c**2 / 4, ell=1.0, rho=1.0, delta_f=0.5, f_escape=0.05,
              max_iter=5000, check_start="ignore")
    pgd = rc.studies.escape(obj, starts, method="pgd", **kw)
    for method in so.METHODS:
        st = rc.studies.escape(obj, starts, method=method, **kw)
        assert np.array_equal(st.seeds, pgd.seeds) and st.x.shape == pgd.x.shape
        assert st.escaped.all() and st.escape_iter.max() <= 2
        assert np.all(st.escape_iter < pgd.escape_iter)
        assert np.all(st.status == 0)
        assert np.all(st.final_F < 0.5 - 0.05)
        for i in range(6):  # each run is find_sopsp from its start
            res = so.find_sopsp(obj, starts[i % 3], c**2 / 4, mu2=1.0, method=method)
            np.testing.assert_array_equal(st.x[i], res.x)
    with pytest.raises(ValueError, match="wrt='wV'"):
        X, y, _ = make_data(np.random.default_rng(0), 20, 2, "logistic")
        full = rc.Objective(X, y, widths=(2,))
        rc.studies.escape(full, full.init(0), method="cubic", check_start="ignore")


def test_cubic_with_fixed_sigma_within_nesterov_polyak_bound():
    c = 0.1
    obj, z0 = rc.theory.example1(c)
    mu2 = 10.6520 * c  # proven on Remark 3's box [-2/c, 2/c]^2 (docs/certificates.md)
    eps = 1e-3
    res = so.find_sopsp(obj, z0, eps, mu2=mu2, method="cubic", adaptive=False)
    assert res.success
    assert res.nit <= so.cubic_iteration_bound(mu2, eps, 0.5)
    _wv_steps_monotone(res)
    assert so.cubic_iteration_bound(1.0, 1e-2, 1.0) == 40500
    with pytest.raises(ValueError, match="delta_f"):
        so.cubic_iteration_bound(1.0, 1e-2, 0.0)


def test_custom_loss_through_the_statistics():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)

    def logistic(p, y):
        m = y * p
        s = np.exp(-np.logaddexp(0.0, m))  # sigmoid(-m), stable
        return np.logaddexp(0.0, -m), -y * s, s * (1 - s)

    fo = rc.FeatureObjective(X, np.tanh(X[:, :2]), y, loss=rc.CustomLoss(logistic))
    res = so.find_sopsp(fo, rc.theorem2_stationary_point(fo).x, 1e-4, mu2=1.0, method="cubic")
    assert res.success and res.passes["statistics"] > 0
    assert rc.check_sopsp(fo, res.x, eps=1e-4, mu2=1.0).is_sopsp is True
    _wv_steps_monotone(res)


@pytest.mark.parametrize("c", [1, 3])
def test_theorem2_point_takes_one_statistics_pass(rng, c, monkeypatch):
    """S and G come from one statistics pass at the origin (no gradient pass, no
    Hessian-vector products): the point is stationary and agrees with the product route."""
    X, y, sw = make_data(rng, 120, 4, "logistic")
    Phi = np.tanh(X @ rng.standard_normal((4, 3)) + 0.5)
    target = y if c == 1 else np.argmax(X[:, :3], axis=1)
    fo = rc.FeatureObjective(X, Phi, target, loss="logistic" if c == 1 else "cross_entropy",
                             sample_weight=sw)
    calls = []
    for name in ("grad", "hessp"):
        monkeypatch.setattr(fo, name, lambda *a, _n=name: calls.append(_n))
    S, G = so_saddles._origin_statistics(fo, fo.pack(*fo.zero_head()[:1],
                                                     np.zeros((4, 3))))
    assert calls == []
    monkeypatch.undo()
    origin = fo.pack(np.zeros((c, 4)) if c > 1 else np.zeros(4), np.zeros((4, 3)))
    S_ref = np.asarray(fo.grad(origin))[:c * 4].reshape(c, 4)
    G_ref = np.empty((c, 3))
    for a in range(c):  # row a of G: the V block of H along dW = e_a e_0^T, row 0
        dW = np.zeros((c, 4))
        dW[a, 0] = 1.0
        p = fo.pack(dW if c > 1 else dW[0], np.zeros((4, 3)))
        G_ref[a] = np.asarray(fo.hessp(origin, p))[c * 4:].reshape(4, 3)[0]
    np.testing.assert_allclose(S, S_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(G, G_ref, rtol=1e-12, atol=1e-15)
    sp = rc.theorem2_stationary_point(fo)
    assert sp.exists and sp.grad_norm < 1e-13 and sp.lambda_min < 0
