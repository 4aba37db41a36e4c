"""Optimisers: Example 1's saddle (GD stays, PGD escapes), the compiled and streamed loops
agree, NaN stops, callbacks, projected SGD feasibility and its 1/sqrt(T) rate on real data,
batched studies."""

import math
import sys

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _pgd, optim, theory
from conftest import make_data, random_point


@pytest.fixture
def saddle():
    return theory.example1(0.1)


def test_gd_never_moves_from_the_saddle(saddle):
    obj, z0 = saddle
    stay = rc.gradient_descent(obj, z0, eta=0.1, eps=-1.0, max_iter=5000)
    assert stay.nit == 5000 and stay.status == 1 and np.array_equal(stay.x, z0)
    assert stay.fun == 0.5 and not stay.escaped
    done = rc.gradient_descent(obj, z0, eta=0.1)  # eps = 0: the gradient is exactly 0
    assert done.success and done.nit == 0 and np.array_equal(done.x, z0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pgd_escapes_to_the_global_minimum(saddle, seed):
    obj, z0 = saddle
    res = rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=200_000, seed=seed)
    assert res.success and res.compiled
    assert res.fun < 1e-8 and res.escaped and res.n_perturbations >= 1
    assert res.perturbation_iters[0] == 0  # at the saddle the gradient test fires at once
    w, v = res.x
    assert abs(w * (1 + 0.1 * v) - 1) < 1e-4  # on the valley of global minima
    again = rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=200_000, seed=seed)
    assert np.array_equal(again.x, res.x)  # the seed alone decides


def test_pgd_constants_follow_the_paper():
    k = optim.pgd_constants(eps=1e-2, ell=2.0, rho=3.0, c=0.5, delta=0.1, delta_f=4.0, dim=10)
    chi = 3 * max(math.log(10 * 2.0 * 4.0 / (0.5 * 1e-4 * 0.1)), 4)
    assert k["chi"] == pytest.approx(chi)
    assert k["eta"] == 0.25 and k["r"] == pytest.approx(math.sqrt(0.5) / chi**2 * 1e-2 / 2)
    assert k["g_thres"] == pytest.approx(math.sqrt(0.5) / chi**2 * 1e-2)
    assert k["f_thres"] == pytest.approx(0.5 / chi**3 * math.sqrt(1e-6 / 3.0))
    assert k["t_thres"] == math.ceil(chi / 0.25 * 2.0 / math.sqrt(3e-2))


def test_compiled_and_streamed_loops_agree(rng, monkeypatch):
    X, y, sw = make_data(rng, 60, 3, "logistic")
    fo = rc.FeatureObjective(X, np.tanh(rng.standard_normal((60, 2))), y, sample_weight=sw)
    z0 = 0.1 * rng.standard_normal(fo.n_params)
    kw = dict(eps=1e-2, ell=4.0, rho=4.0, max_iter=3000, seed=5, record_every=50)
    fast = rc.perturbed_gd(fo, z0, **kw)
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    slow = rc.perturbed_gd(fo, z0, **kw)
    assert fast.compiled and not slow.compiled
    assert fast.nit == slow.nit and fast.status == slow.status
    assert np.array_equal(fast.perturbation_iters, slow.perturbation_iters)
    assert np.allclose(fast.x, slow.x, rtol=1e-9, atol=1e-12)
    assert np.array_equal(fast.history["iter"], slow.history["iter"])
    assert np.allclose(fast.history["fun"], slow.history["fun"], rtol=1e-10)


def test_history_and_callback(saddle):
    obj, z0 = saddle
    seen = []
    res = rc.perturbed_gd(obj, z0 + [0.3, 0.0], eps=1e-3, ell=1.0, rho=1.0, max_iter=1000,
                          record_every=100, callback=lambda info: seen.append(info.nit))
    assert seen == list(range(100, res.nit + 1, 100)) and len(seen) >= 1
    assert np.all(res.history["iter"] % 100 == 0)
    F0 = obj.fun(z0 + [0.3, 0.0])
    assert res.history["fun"][0] == pytest.approx(F0)
    stopped = rc.perturbed_gd(obj, z0 + [0.3, 0.0], eps=1e-3, ell=1.0, rho=1.0, max_iter=1000,
                              record_every=10, callback=lambda info: info.nit >= 30)
    assert stopped.status == 3 and stopped.nit == 30 and "callback" in stopped.message


def test_non_finite_run_keeps_the_last_finite_iterate(saddle):
    obj, _ = saddle
    res = rc.gradient_descent(obj, np.array([2.0, 3.0]), eta=50.0, max_iter=10_000)
    assert res.status == 2 and not res.success and "non-finite" in res.message
    assert np.all(np.isfinite(res.x)) and np.isfinite(obj.fun(res.x))


def test_objective_paths(rng):
    X, y, sw = make_data(rng, 200, 3, "logistic")
    obj = rc.Objective(X, y, widths=(4,), sample_weight=sw)
    x0 = random_point(obj, rng)
    part = rc.perturbed_gd(obj, x0, eps=1e-2, ell=2.0, rho=2.0, max_iter=300, wrt="wV")
    nh = obj.d + obj.d * obj.k
    assert np.array_equal(part.x[nh:], x0[nh:])  # theta fixed
    assert part.compiled and part.fun < obj.fun(x0)
    full = rc.perturbed_gd(obj, x0, eps=1e-2, ell=2.0, rho=2.0, max_iter=100, wrt="all")
    assert not full.compiled and full.fun < obj.fun(x0) and full.x.shape == x0.shape
    assert full.fun == pytest.approx(obj.fun(full.x))
    est = rc.perturbed_gd(obj, x0, eps=1e-2, max_iter=5, wrt="all")  # ell, rho estimated
    assert est.ell_rho_estimated and est.ell > 0 and est.rho > 0
    # the estimates perturbed_gd used are estimate_ell_rho's at the same seed (default 0)
    assert (est.ell, est.rho) == tuple(rc.estimate_ell_rho(obj, x0))


def test_estimate_ell_rho_is_a_named_reproducible_result(rng):
    X, y, _ = make_data(rng, 80, 3, "logistic")
    obj = rc.Objective(X, y, widths=(3,), n_threads=1)
    x0 = random_point(obj, rng)
    est = rc.estimate_ell_rho(obj, x0)
    ell, rho = est  # still unpacks as the tuple it was
    assert isinstance(est, optim.EllRhoEstimate) and (est.ell, est.rho) == (ell, rho)
    assert type(ell) is float and type(rho) is float and ell > 0 and rho > 0
    assert rc.estimate_ell_rho(obj, x0) == est  # seed 0 by default: reproducible
    assert rc.estimate_ell_rho(obj, x0, seed=0) == est
    assert rc.estimate_ell_rho(obj, x0, seed=1) != est
    assert est.to_dict() == {"ell": ell, "rho": rho}
    assert f"ell = {ell:.6g}" in str(est) and "not global bounds" in str(est)
    # ell is 2 ||H(x0)|| (power iteration): within a few percent of the dense Hessian's
    H = np.column_stack([obj.hessp(x0, e) for e in np.eye(obj.n_params)])
    assert ell == pytest.approx(2 * np.abs(np.linalg.eigvalsh(0.5 * (H + H.T))).max(),
                                rel=0.05)
    part = rc.estimate_ell_rho(obj, x0, wrt="wV")
    assert part != est  # (w, V) only: a smaller problem


def test_runs_are_reproducible_by_default(saddle):
    obj, z0 = saddle
    kw = dict(eps=1e-3, ell=1.0, rho=1.0, max_iter=2000)
    first, again = rc.perturbed_gd(obj, z0, **kw), rc.perturbed_gd(obj, z0, **kw)
    assert first.n_perturbations >= 1 and np.array_equal(first.x, again.x)
    assert np.array_equal(first.x, rc.perturbed_gd(obj, z0, seed=0, **kw).x)


def test_optimizer_argument_errors(saddle, rng):
    obj, z0 = saddle
    with pytest.raises(ValueError, match="eps must be a positive"):
        rc.perturbed_gd(obj, z0, eps=0.0, ell=1.0, rho=1.0)
    with pytest.raises(ValueError, match="wrt must be one of"):
        rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, wrt="theta")
    with pytest.raises(ValueError, match="x0 must have shape"):
        rc.gradient_descent(obj, np.zeros(3), eta=0.1)
    with pytest.raises(TypeError, match="Objective or a FeatureObjective"):
        rc.gradient_descent(lambda x: 0.0, z0, eta=0.1)
    X, y, _ = make_data(rng, 50, 3, "logistic")
    with pytest.raises(TypeError, match="head='skip'"):
        rc.projected_sgd(rc.Objective(X, y, widths=(2,)), np.zeros(20), T=10, radius=1.0)


@pytest.fixture(scope="module")
def breast_cancer():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return np.column_stack([X, np.ones(len(X))]), np.where(y > 0, 1.0, -1.0)


def test_projected_sgd_stays_feasible(breast_cancer):
    X, y = breast_cancer
    obj = rc.Objective(X, y, widths=(8,), head="skip")
    x0 = 10 * obj.init(0)  # outside M: projected first
    res = rc.projected_sgd(obj, x0, T=3000, radius=2.0, theta_radius=3.0, seed=1,
                           batch_size=4)
    assert res.max_norm_wv <= 2.0 + 1e-12 and res.max_norm_theta <= 3.0 + 1e-12
    hv = obj.d + obj.k
    assert np.linalg.norm(res.x[:hv]) <= 2.0 + 1e-12
    assert np.linalg.norm(res.x[hv:]) <= 3.0 + 1e-12
    assert res.fun == pytest.approx(obj.fun(res.x)) and res.fun == res.curve_fun.min()
    assert res.eta == pytest.approx(2.0 / (res.lipschitz * math.sqrt(3000)))


def test_projected_sgd_gap_shrinks_like_inverse_sqrt_T(breast_cancer):
    X, y = breast_cancer
    obj = rc.Objective(X, y, widths=(16,), head="skip")
    x0 = obj.init(0)
    Ts = np.array([1000, 4000, 16000])
    gaps = np.array([np.median([rc.projected_sgd(obj, x0, T=int(T), radius=5.0,
                                                 theta_radius=10.0, seed=s).gap
                                for s in range(3)]) for T in Ts])
    slope = np.polyfit(np.log(Ts), np.log(np.maximum(gaps, 1e-12)), 1)[0]
    assert np.all(np.diff(gaps) < 0) and slope <= -0.4, (gaps, slope)
    res = rc.projected_sgd(obj, x0, T=4000, radius=5.0, theta_radius=10.0, seed=0)
    assert res.gap <= res.gap_witness <= res.theorem_rhs  # explicit constants, docs/theorem4.md
    assert res.theorem_rhs == pytest.approx(res.regret_term + res.deviation_term)
    lin = rc.linear_baseline(X, y, radius=5.0)
    assert res.F_lin_star == pytest.approx(lin.fun) and np.linalg.norm(res.w_lin) <= 5 + 1e-9


def test_escape_study(saddle):
    obj, z0 = saddle
    kw = dict(n_runs=64, max_iter=20_000, eps=1e-3, ell=1.0, rho=1.0, stop_at_escape=False)
    two = rc.studies.escape(obj, z0, n_threads=2, lambda_min=True, **kw)
    one = rc.studies.escape(obj, z0, n_threads=1, **kw)
    assert np.array_equal(two.x, one.x) and np.array_equal(two.escape_iter, one.escape_iter)
    assert two.escaped.all() and np.all(two.final_F < 1e-8)
    assert np.all(two.final_lambda_min > -1e-6)  # the valley: a minimum, not a saddle
    single = rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=20_000, seed=0)
    assert single.fun < 1e-8
    gd = rc.studies.escape(obj, z0, method="gd", n_runs=4, max_iter=1000, eps=1e-3, ell=1.0,
                           rho=1.0)
    assert not gd.escaped.any() and np.all(gd.x == z0) and np.all(gd.final_F == 0.5)
    with pytest.raises(ValueError, match="seeds must have shape"):
        rc.studies.escape(obj, z0, n_runs=3, seeds=[1, 2], **{k: v for k, v in kw.items()
                                                                 if k != "n_runs"})


def test_escape_study_stops_at_escape(saddle):
    obj, z0 = saddle
    kw = dict(n_runs=6, max_iter=20_000, eps=1e-3, ell=1.0, rho=1.0, seed=3)
    on = rc.studies.escape(obj, z0, **kw)
    off = rc.studies.escape(obj, z0, stop_at_escape=False, **kw)
    assert on.escaped.all() and np.array_equal(on.escape_iter, off.escape_iter)
    assert np.array_equal(on.nit, on.escape_iter) and np.all(on.status == 4)
    assert "escape" in on.message(4) and np.all(off.nit > on.nit)
    assert np.all(on.final_F <= 0.5 - on.constants["f_escape"])
    # the point at escape is the uninterrupted run's iterate there, bit for bit
    for i in (0, 4):
        cut = rc.studies.escape(obj, z0, stop_at_escape=False, seeds=[on.seeds[i]],
                                **{**kw, "n_runs": 1, "max_iter": int(on.escape_iter[i])})
        assert np.array_equal(cut.x[0], on.x[i]) and cut.final_F[0] == on.final_F[i]
    # a run that never escapes is the same either way
    gd = [rc.studies.escape(obj, z0, method="gd", n_runs=2, max_iter=500, stop_at_escape=s,
                            eps=1e-3) for s in (True, False)]
    assert np.array_equal(gd[0].x, gd[1].x) and np.all(gd[0].status == 1)
    assert np.all(gd[0].nit == 500) and not gd[0].escaped.any()


@pytest.mark.filterwarnings("ignore::resnet_core.studies.NotASaddleWarning")  # loops from arbitrary points
@pytest.mark.parametrize("stop", [True, False])
def test_escape_study_streamed_fallback_agrees(saddle, rng, monkeypatch, stop):
    """Forced onto the streamed loop (one data pass per step), a study gives the compiled
    study's answers: same escape iterations and counters, final points to rounding."""
    obj, z0 = saddle
    X, y, sw = make_data(rng, 60, 3, "logistic")
    fo = rc.FeatureObjective(X, np.tanh(rng.standard_normal((60, 2))), y, sample_weight=sw)
    cases = [(obj, z0, dict(n_runs=4, max_iter=4000, eps=1e-3, ell=1.0, rho=1.0, seed=1)),
             (fo, 0.1 * rng.standard_normal((2, fo.n_params)),
              dict(n_runs=4, max_iter=600, eps=1e-2, ell=4.0, rho=4.0, seed=2, f_escape=0.05))]
    fast = [rc.studies.escape(o, s, stop_at_escape=stop, lambda_min=True, **kw)
            for o, s, kw in cases]
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    monkeypatch.setattr(_pgd, "MOMENTS", False)  # squared loss: moments compile any n
    slow = [rc.studies.escape(o, s, stop_at_escape=stop, lambda_min=True, **kw)
            for o, s, kw in cases]
    for a, b in zip(fast, slow):
        assert a.compiled and not b.compiled and a.escaped.any()
        for f in ("escape_iter", "nit", "status", "n_perturbations", "seeds"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f
        # the unstable direction multiplies rounding differences by (1 + eta eps) a step
        assert np.allclose(a.x, b.x, rtol=1e-8, atol=1e-10)
        assert np.allclose(a.final_F, b.final_F, rtol=1e-10)
        assert np.allclose(a.final_lambda_min, b.final_lambda_min, rtol=1e-8, atol=1e-12)
    assert np.any(fast[0].n_perturbations > 0)


@pytest.mark.filterwarnings("ignore::resnet_core.studies.NotASaddleWarning")  # loops from arbitrary points
def test_escape_study_on_any_objective(rng):
    X, y, sw = make_data(rng, 80, 3, "logistic")
    obj = rc.Objective(X, y, widths=(4,), sample_weight=sw, n_threads=1)
    x0 = random_point(obj, rng)
    kw = dict(n_runs=2, max_iter=40, eps=1e-2, ell=2.0, rho=2.0, f_escape=1e-3,
              lambda_min=True)
    full = rc.studies.escape(obj, x0, **kw)
    assert not full.compiled and full.x.shape == (2, obj.n_params)
    assert full.escaped.all() and np.all(full.status == 4)
    assert np.allclose(full.final_F, [obj.fun(x) for x in full.x], rtol=1e-12)
    assert np.all(np.isfinite(full.final_lambda_min))
    part = rc.studies.escape(obj, x0, wrt="wV", **kw)
    nh = obj.d + obj.d * obj.k
    assert part.compiled and np.all(part.x[:, nh:] == x0[nh:])
    assert np.allclose(part.final_F, [obj.fun(x) for x in part.x], rtol=1e-12)
    two = rc.studies.escape(obj, [x0, random_point(obj, rng)], wrt="wV", **kw)
    assert not two.compiled  # two thetas: streamed, each start with its own features
    assert np.allclose(two.x[0], part.x[0], rtol=1e-9, atol=1e-12)

    def logistic(p, t):
        e = np.exp(-t * p)
        return np.log1p(e), -t * e / (1 + e), e / (1 + e) ** 2

    Phi = np.tanh(rng.standard_normal((80, 2)))
    built = rc.FeatureObjective(X, Phi, y, sample_weight=sw)
    custom = rc.FeatureObjective(X, Phi, y, sample_weight=sw, loss=logistic)
    z0 = 0.1 * rng.standard_normal(built.n_params)
    a, b = (rc.studies.escape(o, z0, n_runs=3, max_iter=300, eps=1e-2, ell=4.0, rho=4.0,
                              f_escape=0.05) for o in (built, custom))
    assert a.compiled and not b.compiled
    assert np.array_equal(a.escape_iter, b.escape_iter) and np.allclose(a.x, b.x, rtol=1e-8)


def test_escape_study_progress(saddle, monkeypatch, tqdm_bars):
    obj, z0 = saddle
    kw = dict(n_runs=6, max_iter=5000, eps=1e-3, ell=1.0, rho=1.0, n_threads=2)
    bars = tqdm_bars
    shown = rc.studies.escape(obj, z0, progress=True, **kw)
    plain = rc.studies.escape(obj, z0, **kw)
    assert np.array_equal(shown.x, plain.x) and np.array_equal(shown.nit, plain.nit)
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    rc.studies.escape(obj, z0, progress=True, **{**kw, "n_runs": 3})
    assert [(b.total, b.n, b.closed) for b in bars] == [(6, 6, True), (3, 3, True)]
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match="needs tqdm"):
        rc.studies.escape(obj, z0, progress=True, **kw)
