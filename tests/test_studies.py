"""Escape studies that mean what they say (issue 21): the escape criterion, the start check,
Theorem 2's stationary points as starts, traces, results a researcher can read, the hook
for more methods."""

import warnings

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _pgd, studies
from conftest import make_data


@pytest.fixture
def logistic_saddle(rng):
    """A Theorem 2 saddle on logistic data: (0, -s g^T / ||g||^2)."""
    X, y, sw = make_data(rng, 120, 4, "logistic")
    Phi = np.tanh(X @ rng.standard_normal((4, 3)) + 0.5)
    fo = rc.FeatureObjective(X, Phi, y, sample_weight=sw)
    return fo, rc.theorem2_stationary_point(fo)


def test_theorem2_point_scalar_matches_the_formula(logistic_saddle):
    fo, sp = logistic_saddle
    assert sp.exists and sp.grad_norm < 1e-14 and sp.lambda_min < -1e-3
    s, g = sp.S, sp.G  # E[l'(0) x], E[l'(0) phi]
    assert np.allclose(sp.V, -np.outer(s, g) / (g @ g), rtol=1e-12, atol=1e-15)
    parts = fo.unpack(sp.x)
    assert np.all(parts["w"] == 0) and np.array_equal(parts["V"], sp.V)
    assert sp.F == pytest.approx(np.log(2.0), rel=1e-14)  # p = 0 everywhere
    dense = np.linalg.eigvalsh(fo.hessian(sp.x))[0]
    assert sp.lambda_min == pytest.approx(dense, rel=1e-10)
    assert "exists=True" in repr(sp)


def test_theorem2_point_objective_and_vector_outputs(rng):
    X, y, _ = make_data(rng, 150, 5, "logistic")
    obj = rc.Objective(X, y, widths=(4,), n_threads=1)
    x = obj.init(3)
    sp = rc.theorem2_stationary_point(obj, x)
    nh = obj.d + obj.d * obj.k
    assert sp.exists and np.array_equal(sp.x[nh:], x[nh:])  # theta kept
    assert np.linalg.norm(obj.partial(sp.x).grad(sp.x[:nh])) < 1e-14
    assert sp.lambda_min < 0
    labels = np.argmax(X[:, :3], axis=1)
    vec = rc.FeatureObjective(X, np.tanh(X @ rng.standard_normal((5, 4))), labels,
                              loss="cross_entropy")
    vp = rc.theorem2_stationary_point(vec)
    assert vp.exists and vp.G.shape == (3, 4) and vp.grad_norm < 1e-13
    assert np.linalg.norm(vec.grad(vp.x)) < 1e-13 and vp.lambda_min < 0
    with pytest.raises(ValueError, match="x is required"):
        rc.theorem2_stationary_point(obj)
    with pytest.raises(ValueError, match="residual head"):
        rc.theorem2_stationary_point(rc.FeatureObjective(X, X[:, :2], y, head="skip"))


@pytest.mark.filterwarnings("ignore::resnet_core.studies.NotASaddleWarning")
def test_escape_studies_with_c_outputs(rng):
    """c outputs go where one output goes: from Theorem 2's saddle, compiled or streamed,
    PGD and GD, traces, lambda_min at the final points (the reduced eigenproblem)."""
    X = rng.standard_normal((90, 4))
    labels = np.argmax(X[:, :3], axis=1)
    vec = rc.FeatureObjective(X, np.tanh(X @ rng.standard_normal((4, 3))), labels,
                              loss="cross_entropy", n_threads=1)
    sp = rc.theorem2_stationary_point(vec)
    assert sp.exists and sp.lambda_min < 0
    kw = dict(n_runs=3, eps=1e-2, ell=1.0, rho=1.0, max_iter=3000, seed=0)
    st = studies.escape(vec, sp.x, lambda_min=True, **kw)
    assert st.escaped.all() and np.all(st.final_F <= sp.F - st.constants["f_escape"])
    assert np.allclose(st.final_F, [vec.fun(x) for x in st.x], rtol=1e-12)
    dense = [_lambda_min_dense(vec, x) for x in st.x]
    np.testing.assert_allclose(st.final_lambda_min, dense, rtol=1e-8, atol=1e-10)
    traced = studies.escape(vec, sp.x, record_every=10, **kw)
    assert np.array_equal(traced.escape_iter, st.escape_iter) and traced.traces[0] is not None
    assert studies.escape(vec, sp.x, method="gd", **kw).escaped.all()
    # an Objective with c outputs, theta fixed or not
    obj = rc.Objective(X, labels, widths=(3,), loss="cross_entropy", n_threads=1)
    x = obj.init(1)
    for wrt in ("wV", "all"):
        run = studies.escape(obj, x, wrt=wrt, lambda_min=True, n_runs=2, eps=1e-2, ell=1.0,
                             rho=1.0, max_iter=50, seed=0)
        assert np.all(run.final_F < obj.fun(x)) and np.all(np.isfinite(run.final_lambda_min))
        part = obj.partial(run.x[0], materialize=True)
        assert run.final_lambda_min[0] == pytest.approx(
            _lambda_min_dense(part, run.x[0][:part.n_params]), rel=1e-8, abs=1e-10)


def _lambda_min_dense(fo, z) -> float:
    """lambda_min of the partial Hessian formed column by column from ``hessp``."""
    H = np.column_stack([fo.hessp(z, e) for e in np.eye(fo.n_params)])
    return float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])


def test_theorem2_point_says_when_none_exists(rng):
    X, y, _ = make_data(rng, 100, 3, "logistic")
    none = rc.theorem2_stationary_point(rc.FeatureObjective(X, np.zeros((100, 2)), y))
    assert not none.exists and none.x is None and "no V makes (0, V) stationary" in none.message
    assert "exists=False" in repr(none)


def test_default_escape_criterion_is_the_saddles_scale(logistic_saddle):
    fo, sp = logistic_saddle
    kw = dict(n_runs=8, eps=1e-2, ell=1.0, rho=1.0, max_iter=20_000, seed=0)
    st = rc.studies.escape(fo, sp.x, **kw)
    assert st.constants["f_escape"] == pytest.approx(0.1 * 1e-3)  # 0.1 eps^1.5 / sqrt(rho)
    assert st.constants["f_escape"] > 100 * st.constants["f_thres"]  # 0.1 chi^3 of it
    assert st.escaped.all() and np.all(st.n_perturbations >= 1)
    assert np.all(st.final_F <= sp.F - st.constants["f_escape"])
    assert np.all(st.start_F == sp.F) and np.all(st.start_grad_norm < 1e-14)
    assert np.allclose(st.final_F, [fo.fun(x) for x in st.x], rtol=1e-12)
    assert np.allclose(st.final_grad_norm, [np.linalg.norm(fo.grad(x)) for x in st.x],
                       rtol=1e-10)
    pgd = rc.perturbed_gd(fo, sp.x, eps=1e-2, ell=1.0, rho=1.0, max_iter=2000, seed=0)
    assert pgd.f_escape == st.constants["f_escape"]


def test_a_start_that_is_no_saddle_is_refused_or_warned():
    ex, z0 = rc.theory.example1(0.01)
    kw = dict(n_runs=10, eps=1e-2, ell=1.0, rho=1.0, max_iter=200)
    with pytest.warns(studies.NotASaddleWarning, 
                      match=r"start 0 has \|\|grad F\|\| = 0\.0036 > g_thres = 8\.38e-06"):
        st = rc.studies.escape(ex, z0 + [0.3, 0.2], **kw)
    assert st.start_grad_norm[0] == pytest.approx(np.linalg.norm(ex.grad(z0 + [0.3, 0.2])))
    with pytest.raises(ValueError, match="not approximate saddles"):
        rc.studies.escape(ex, z0 + [0.3, 0.2], check_start="raise", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc.studies.escape(ex, z0, **kw)  # the saddle itself: silent
        rc.studies.escape(ex, z0 + [0.3, 0.2], check_start="ignore", **kw)
    with pytest.raises(ValueError, match="check_start must be one of"):
        rc.studies.escape(ex, z0, check_start="maybe", **kw)


def test_traces_on_request_are_the_same_runs(logistic_saddle):
    fo, sp = logistic_saddle
    kw = dict(n_runs=4, eps=1e-2, ell=1.0, rho=1.0, max_iter=5000, seed=1)
    plain = rc.studies.escape(fo, sp.x, **kw)
    traced = rc.studies.escape(fo, sp.x, record_every=10, **kw)
    assert plain.traces is None and len(traced.traces) == 4
    for f in ("escape_iter", "nit", "status", "n_perturbations"):
        assert np.array_equal(getattr(plain, f), getattr(traced, f)), f
    assert np.allclose(plain.x, traced.x, rtol=1e-9, atol=1e-12)
    for i, tr in enumerate(traced.traces):
        assert tr["iter"][0] == 0 and np.all(np.diff(tr["iter"]) == 10)
        assert tr["fun"][0] == pytest.approx(sp.F, rel=1e-12)
        assert tr["iter"][-1] <= traced.nit[i]


def test_study_results_read_summarise_save_and_plot(logistic_saddle, tmp_path):
    fo, sp = logistic_saddle
    kw = dict(n_runs=6, ell=1.0, rho=1.0, max_iter=20_000, seed=0, record_every=50)
    a = rc.studies.escape(fo, sp.x, eps=1e-2, **kw)
    b = rc.studies.escape(fo, sp.x, eps=3e-3, **kw)
    assert len(repr(a)) < 250 and "escaped=6/6" in repr(a)
    table = studies.summary([a, b])
    assert [r["eps"] for r in table.rows] == [3e-3, 1e-2]
    row = table.rows[1]
    assert row["runs"] == 6 and row["escaped"] == 6
    q = np.percentile(a.escape_iter, [25, 50, 75])
    assert row["escape_iter_quartiles"] == pytest.approx(tuple(q))
    text = str(a.summary())
    assert "escape_iter q25/median/q75" in text and "6 (100%)" in text
    pd = pytest.importorskip("pandas")
    df = studies.to_dataframe([a, b])
    assert isinstance(df, pd.DataFrame) and len(df) == 12
    assert np.array_equal(df["escape_iter"].to_numpy()[:6], a.escape_iter)
    path = tmp_path / "study.npz"
    a.save(path)
    back = rc.studies.EscapeStudy.load(path)
    assert back.equals(a) and back.eps == a.eps and repr(back) == repr(a)
    assert not back.equals(b)
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    fig = studies.plot([a, b], n_traces=2)
    cdf, traces = fig.axes
    assert len(cdf.get_lines()) == 2 and len(traces.get_lines()) == 4
    assert "(6/6 escaped)" in cdf.get_legend().get_texts()[0].get_text()
    fig2 = rc.studies.escape(fo, sp.x, eps=1e-2, n_runs=2, max_iter=2000).plot()
    assert "no traces" in fig2.axes[1].texts[0].get_text()


def test_a_method_plugs_in(logistic_saddle, monkeypatch):
    """The hook a second-order method uses: a StudyMethod with its own ``run``."""
    fo, sp = logistic_saddle
    calls = []

    def run(problem, seed, consts, *, max_iter, stop_at_escape, record_every):
        calls.append(int(seed))
        return _pgd.run(problem, consts, perturb=False, max_iter=max_iter, seed=None,
                        callback=None, record_every=record_every,
                        rng=rc._loops.seed_state(seed), stop_at_escape=stop_at_escape)

    monkeypatch.setitem(studies.METHODS, "mine", studies.StudyMethod(
        "mine", configure=lambda c: c.update(g_thres=-1.0)))
    studies.register_method(studies.StudyMethod("mine", run=run,
                                                configure=lambda c: c.update(g_thres=-1.0)))
    kw = dict(n_runs=3, eps=1e-2, ell=1.0, rho=1.0, max_iter=300, seed=4)
    mine = rc.studies.escape(fo, sp.x, method="mine", **kw)
    gd = rc.studies.escape(fo, sp.x, method="gd", **kw)
    assert calls == [4, 5, 6] and mine.method == "mine" and not mine.compiled
    assert np.array_equal(mine.x, gd.x) and np.array_equal(mine.escape_iter, gd.escape_iter)
    with pytest.raises(TypeError, match="StudyMethod"):
        studies.register_method("newton")


def test_status_messages_name_one_algorithm():
    ex, z0 = rc.theory.example1(0.1)
    gd = rc.gradient_descent(ex, z0 + [0.3, 0.2], eta=0.5, eps=1e-6, max_iter=10_000)
    assert gd.status == 0 and gd.message == "converged: ||grad|| <= eps"
    pgd = rc.perturbed_gd(ex, z0, eps=1e-2, ell=1.0, rho=1.0, max_iter=100_000, seed=0)
    assert pgd.status == 0 and "perturbation" in pgd.message and "GD" not in pgd.message


def test_long_runs_talk_only_when_asked(monkeypatch, capsys, tqdm_bars):
    bars = tqdm_bars
    ex, z0 = rc.theory.example1(0.1)
    res = rc.perturbed_gd(ex, z0, eps=1e-2, ell=1.0, rho=1.0, max_iter=5000, seed=0,
                          progress=True)
    quiet = rc.perturbed_gd(ex, z0, eps=1e-2, ell=1.0, rho=1.0, max_iter=5000, seed=0)
    assert np.array_equal(res.x, quiet.x)
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [("perturbed_gd", 5000,
                                                                 res.nit, True)]
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    X, y, _ = make_data(np.random.default_rng(0), 50, 3, "logistic")
    obj = rc.Objective(X, y, widths=(3,), n_threads=1)
    gd = rc.gradient_descent(obj, obj.init(0), eta=0.5, max_iter=250, progress=True)
    assert bars[-1].desc == "gradient_descent" and bars[-1].n == gd.nit == 250
    assert capsys.readouterr().out == ""
