"""Dask arrays: every pass runs the kernels on row blocks where they live and adds partial
sums in block order.  Agreement with the in-memory objective, determinism across runs and
schedulers, a 2-process LocalCluster (one per module), a worker killed mid-pass, bad input."""

import functools
import os

import numpy as np
import pytest

import resnet_core as rc
from conftest import make_data, random_point, rel_err

# Escape studies here run from arbitrary points on purpose (their loops are under test).
pytestmark = pytest.mark.filterwarnings("ignore::resnet_core.studies.NotASaddleWarning")

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from resnet_core._dask import _pass  # noqa: E402

TOL = 1e-12
WIDTHS = (4, 3)


def _chunked(X, y, sw, rows=(700, 300, 1000, 1)):
    """Uneven row chunks, split columns and differently chunked y, weights."""
    n = X.shape[0]
    rest = n - sum(rows[:-1])
    Xd = da.from_array(X, chunks=(tuple(rows[:-1]) + (rest,), 3))
    yd = da.from_array(y, chunks=500)
    swd = None if sw is None else da.from_array(sw, chunks=900)
    return Xd, yd, swd


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    X, y, sw = make_data(rng, 2100, 5, "logistic")
    return X, y, sw


@pytest.fixture(params=["threads", "sync"])
def scheduler(request):
    with dask.config.set(scheduler=request.param):
        yield request.param


def _dask_objective(X, y, sw, **kw):
    Xd, yd, swd = _chunked(X, y, sw)
    return rc.Objective(Xd, yd, sample_weight=swd, **kw)


def _pair(X, y, sw, **kw):
    return rc.Objective(X, y, sample_weight=sw, **kw), _dask_objective(X, y, sw, **kw)


@pytest.mark.parametrize("head", ["residual", "skip"])
@pytest.mark.parametrize("feature_bias", [False, True])
def test_objective_agrees_with_in_memory(problem, scheduler, head, feature_bias, rng):
    X, y, sw = problem
    obj, dobj = _pair(X, y, sw, widths=WIDTHS, head=head, feature_bias=feature_bias)
    x = random_point(obj, rng)
    F, g = obj.fun_and_grad(x)
    Fd, gd = dobj.fun_and_grad(x)
    assert abs(F - Fd) <= TOL * abs(F) and rel_err(gd, g) < TOL
    p = rng.standard_normal(obj.n_params)
    assert rel_err(dobj.hessp(x, p), obj.hessp(x, p)) < TOL
    part, dpart = obj.partial(x), dobj.partial(x)
    z, dz = x[:part.n_params], rng.standard_normal(part.n_params)
    assert rel_err(dpart.hessp(z, dz), part.hessp(z, dz)) < TOL  # streamed product
    assert rel_err(dpart.hessp(z, dz), part.hessp(z, dz)) < TOL  # from the statistics
    st, dst = part.stats(z), dpart.stats(z)
    for a, b in ((st.A, dst.A), (st.B, dst.B), (st.C, dst.C), (st.g, dst.g)):
        assert rel_err(b, a) < TOL
    mat = dobj.partial(x, materialize=True)
    assert rel_err(mat.grad(z), part.grad(z)) < TOL
    # lazy per-sample outputs: dask arrays, computed on demand
    assert rel_err(dobj.predict(x).compute(), obj.predict(x)) < TOL
    assert rel_err(dobj.at(x).sample_losses.compute(), obj.at(x).sample_losses) < TOL
    assert rel_err(dobj.features(x).compute(), obj.features(x)) < TOL


def test_feature_objective_and_float32(problem, scheduler, rng):
    X, y, sw = problem
    Phi = np.tanh(X[:, :3] @ rng.standard_normal((3, 4)))
    fo = rc.FeatureObjective(X, Phi, y, sample_weight=sw)
    Xd, yd, swd = _chunked(X, y, sw)
    dfo = rc.FeatureObjective(Xd, da.from_array(Phi, chunks=(400, 2)), yd, sample_weight=swd)
    z = rng.standard_normal(fo.n_params)
    assert rel_err(dfo.grad(z), fo.grad(z)) < TOL
    assert rel_err(dfo.hessp(z, z), fo.hessp(z, z)) < TOL
    new = rng.standard_normal((9, X.shape[1]))
    assert rel_err(dfo.predict(z, X=new, Phi=Phi[:9]), fo.predict(z, X=new, Phi=Phi[:9])) == 0
    obj, dobj = _pair(X, y, sw, widths=WIDTHS)
    x = obj.init(2)
    assert rel_err(dobj.predict(x, X=new), obj.predict(x, X=new)) == 0
    o32 = rc.Objective(X.astype(np.float32), y, widths=WIDTHS)
    d32 = rc.Objective(Xd.astype(np.float32), yd, widths=WIDTHS)
    x = o32.init(3)
    g32 = d32.grad(x)
    assert g32.dtype == np.float32 and rel_err(g32, o32.grad(x)) < 1e-5


@pytest.mark.parametrize("loss", ["squared", "logistic", "smoothed_hinge"])
def test_linear_baseline_agrees(loss, rng):
    X, y, sw = make_data(rng, 1500, 4, loss)
    ref = rc.linear_baseline(X, y, loss=loss, sample_weight=sw)
    Xd, yd, _ = _chunked(X, y, sw, rows=(400, 400, 1))
    got = rc.linear_baseline(Xd, yd, loss=loss)  # unweighted
    ref_u = rc.linear_baseline(X, y, loss=loss)
    assert rel_err(got.w, ref_u.w) < 1e-10 and abs(got.fun - ref_u.fun) < TOL * abs(ref_u.fun)
    got_w = rc.linear_baseline(Xd, yd, loss=loss,
                               sample_weight=da.from_array(sw, chunks=300))
    assert rel_err(got_w.w, ref.w) < 1e-10 and got_w.converged
    if loss != "squared":  # no LP on dask data: overlap proved by the minimiser, or open
        assert got_w.separability == ref.separability or (
            got_w.separability == "not_decided" and "LP skipped" in got_w.method)
        if got_w.separability == "overlapping":
            assert "no linear program" in got_w.method and got_w.attained
    r_ref = rc.linear_baseline(X, y, loss=loss, sample_weight=sw, radius=0.1)
    r_got = rc.linear_baseline(Xd, yd, loss=loss, radius=0.1,
                               sample_weight=da.from_array(sw, chunks=300))
    assert rel_err(r_got.w, r_ref.w) < 1e-9 and np.linalg.norm(r_got.w) <= 0.1


def test_separable_data_found_along_a_ray(rng):
    X = rng.standard_normal((600, 3))
    y = np.where(X @ np.array([1.0, -2.0, 0.5]) > 0, 1.0, -1.0)
    res = rc.linear_baseline(da.from_array(X, chunks=(250, 3)), y, loss="logistic")
    assert res.separability == "separable" and res.infimum == 0.0 and res.fun < 1e-15
    assert np.all((X @ res.w) * y > 0)


def _c_output_problem(loss, rng, n=1500, d=4, c=3):
    X = rng.standard_normal((n, d))
    y = (rng.integers(0, c, n) if loss == "cross_entropy"
         else X @ rng.standard_normal((d, c)) + rng.standard_normal((n, c)))
    return X, y, rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_c_output_linear_baseline_agrees(loss, scheduler, rng):
    """Issue 20: the c-output baseline on dask (tasks over uneven chunks) equals the
    in-memory one, with and without a radius; no linear program there."""
    X, y, sw = _c_output_problem(loss, rng)
    Xd, yd, swd = _chunked(X, y, sw, rows=(400, 700, 1))
    for radius in (None, 0.2):
        ref = rc.linear_baseline(X, y, loss=loss, sample_weight=sw, radius=radius)
        got = rc.linear_baseline(Xd, yd, loss=loss, sample_weight=swd, radius=radius)
        assert got.w.shape == ref.w.shape and got.converged
        assert rel_err(got.w, ref.w) < 1e-10 and got.fun == pytest.approx(ref.fun, rel=TOL)
        assert got.separability == ref.separability and got.attained == ref.attained
    if loss == "cross_entropy":
        assert "no linear program" in got.method and got.fun_error < 1e-14
    # float32 data: the engine's float32 weights normalised again in float64, as in memory
    # (an (n, c) target is held in the data's dtype there, as the dask objective holds it)
    X32 = X.astype(np.float32)
    ref = rc.linear_baseline(X32, y if loss == "cross_entropy" else y.astype(np.float32),
                             loss=loss)
    got = rc.linear_baseline(Xd.astype(np.float32), yd, loss=loss)
    assert rel_err(got.w, ref.w) < 1e-10 and got.fun == pytest.approx(ref.fun, rel=TOL)


def test_c_output_separation_and_open_cases_on_dask(rng):
    """Separable classes: found from Newton's iterates, no n x c array of separated pairs;
    quasi-separable classes: not decided, with the reason and the linear program's cost."""
    from resnet_core._data import prepare
    from resnet_core._vector_rows import EngineRows
    from resnet_core.linear_vector import CrossEntropyPasses
    from resnet_core.losses import get_loss

    centres = np.array([[4.0, 0], [-4, 0], [0, 4]])
    y = rng.integers(0, 3, 600)
    X = np.c_[centres[y] + rng.uniform(-1, 1, size=(600, 2)), np.ones(600)]
    Xd, yd = da.from_array(X, chunks=(250, 3)), da.from_array(y, chunks=250)
    r = rc.linear_baseline(Xd, yd, loss="cross_entropy")
    assert r.separability == "separable" and r.infimum == 0 and r.fun < 1e-15
    p = X @ r.direction.T
    assert np.all(p[np.arange(600), y][:, None] - p + np.eye(3)[y] > 0)
    eng = prepare(Xd, yd, loss=get_loss("cross_entropy")).engine(0)
    passes = CrossEntropyPasses(EngineRows(eng, True), 3)
    sep = passes.ray(passes.coords(r.direction), 1.0)
    assert sep.separated is None and sep.separated_pairs is None
    # class 2 apart from the overlapping classes 0 and 1 (test_linear_vector.quasi_separable)
    X01 = np.c_[rng.normal(size=200) - 3, rng.normal(size=200), np.ones(200)]
    X = np.r_[X01, np.c_[rng.uniform(1, 3, 50), rng.normal(size=50), np.ones(50)]]
    y = np.r_[rng.integers(0, 2, 200), np.full(50, 2)]
    r = rc.linear_baseline(da.from_array(X, chunks=(100, 3)), y, loss="cross_entropy")
    assert r.separability == "not_decided" and r.attained is None
    assert "LP skipped: data not in memory" in r.method
    assert f"linear program of {250 * 2 * 7} non-zeros" in r.message  # n (c-1) (2d+1)


def test_check_sopsp_c_outputs_agrees(scheduler, rng):
    """check_sopsp on a c-output dask objective (its baseline through the tasks) agrees
    with the in-memory one."""
    for loss, kw in (("cross_entropy", {}), ("squared", {})):
        X, y, sw = _c_output_problem(loss, rng, n=600)
        obj = rc.Objective(X, y, sample_weight=sw, loss=loss, widths=(3,), **kw)
        Xd, yd, swd = _chunked(X, y, sw, rows=(250, 100, 1))
        dobj = rc.Objective(Xd, yd, sample_weight=swd, loss=loss, widths=(3,), **kw)
        x = random_point(obj, rng)
        a = rc.check_sopsp(obj, x, eps=1e-2)
        b = rc.check_sopsp(dobj, x, eps=1e-2)
        for key in ("grad_norm", "lambda_min", "F", "gap", "F_lin_star", "F_lin_at_w_star"):
            assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-10,
                                                    abs=1e-13), (loss, key)
        assert b.is_sopsp == a.is_sopsp


def test_check_sopsp_agrees(problem, rng):
    X, y, sw = problem
    obj, dobj = _pair(X, y, sw, widths=WIDTHS)
    x = random_point(obj, rng)
    a = rc.check_sopsp(obj, x, eps=1e-2)
    b = rc.check_sopsp(dobj, x, eps=1e-2)
    for key in ("grad_norm", "lambda_min", "F", "F_se", "gap", "gap_se", "F_lin_star",
                "F_lin_at_w_star"):
        assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-10, abs=1e-13), key
    assert b.is_sopsp == a.is_sopsp
    lz = rc.check_sopsp(dobj, x, eps=1e-2, method="lanczos")
    assert lz.lambda_min == pytest.approx(a.lambda_min, abs=1e-8)
    vals = rc.hessian_spectrum(dobj, x, n_eigs=2, which="smallest").values
    assert vals == pytest.approx(rc.hessian_spectrum(obj, x, n_eigs=2, which="smallest").values,
                                 abs=1e-8)


def test_deterministic_across_runs_and_schedulers(problem, rng):
    X, y, sw = problem
    x = _dask_objective(X, y, sw, widths=WIDTHS).init(5)
    results = []
    for sched in ("threads", "sync", "threads"):
        with dask.config.set(scheduler=sched):
            results.append(_dask_objective(X, y, sw, widths=WIDTHS).fun_and_grad(x))
    for F, g in results[1:]:
        assert F == results[0][0] and np.array_equal(g, results[0][1])


def test_optimisers_over_all_parameters(problem):
    X, y, sw = problem
    obj, dobj = _pair(X, y, sw, widths=WIDTHS)
    x0 = obj.init(0)
    a = rc.gradient_descent(obj, x0, eta=0.5, max_iter=15)
    b = rc.gradient_descent(dobj, x0, eta=0.5, max_iter=15)
    assert rel_err(b.x, a.x) < 1e-10 and b.nit == a.nit
    kw = dict(eps=1e-1, ell=2.0, rho=1.0, delta_f=1.0, max_iter=20, seed=3)
    a = rc.perturbed_gd(obj, x0, **kw)
    b = rc.perturbed_gd(dobj, x0, **kw)
    assert rel_err(b.x, a.x) < 1e-10 and b.nit == a.nit
    a = rc.perturbed_gd(obj, x0, wrt="wV", **kw)  # the compiled loop in memory
    b = rc.perturbed_gd(dobj, x0, wrt="wV", **kw)  # the generic one over dask passes
    assert rel_err(b.x, a.x) < 1e-10


# -- bad input -------------------------------------------------------------------------------
def test_bad_values_name_the_argument_and_global_index(problem):
    X, y, sw = problem
    Xb = X.copy()
    Xb[1234, 2] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite; found nan at index \(1234, 2\)"):
        _dask_objective(Xb, y, sw, widths=WIDTHS)
    yb = y.copy()
    yb[1500] = 0.5
    with pytest.raises(ValueError, match="labels -1 or \\+1"):
        _dask_objective(X, yb, sw, widths=WIDTHS)
    swb = sw.copy()
    swb[10] = -1.0
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        _dask_objective(X, y, swb, widths=WIDTHS)
    with pytest.raises(ValueError, match="positive sum"):
        _dask_objective(X, y, 0 * sw, widths=WIDTHS)
    with pytest.raises(ValueError, match=r"y must have shape \(2100,\)"):
        rc.Objective(da.from_array(X), da.from_array(y[:-1]), widths=WIDTHS)
    with pytest.raises(ValueError, match="user-defined loss"):
        rc.Objective(da.from_array(X), y, widths=WIDTHS,
                     loss=lambda p, t: (p**2, 2 * p, 2 + 0 * p))
    with pytest.raises(TypeError, match="real numbers"):
        rc.Objective(da.from_array(X.astype(complex)), y, widths=WIDTHS)
    Xu = da.from_array(X, chunks=(500, 5))
    Xu = Xu[Xu[:, 0] > -100]  # unknown chunk sizes
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        rc.Objective(Xu, y, widths=WIDTHS)


# -- a LocalCluster of 2 worker processes -------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    # a task is retried once after its worker died (the default is 3): keeps the test short
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_local_cluster_agrees_and_is_deterministic(client, problem, rng):
    X, y, sw = problem
    Xd, yd, swd = (a.persist() for a in _chunked(X, y, sw))
    obj = rc.Objective(X, y, sample_weight=sw, widths=WIDTHS)
    dobj = rc.Objective(Xd, yd, sample_weight=swd, widths=WIDTHS)
    x = random_point(obj, rng)
    F, g = obj.fun_and_grad(x)
    runs = [rc.Objective(Xd, yd, sample_weight=swd, widths=WIDTHS).fun_and_grad(x)
            for _ in range(2)]
    for Fd, gd in runs:
        assert abs(Fd - F) <= TOL * abs(F) and rel_err(gd, g) < TOL
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert rel_err(dobj.hessp(x, x), obj.hessp(x, x)) < TOL
    with dask.config.set(scheduler="sync"):  # the same numbers without the cluster
        Fs, gs = _dask_objective(X, y, sw, widths=WIDTHS).fun_and_grad(x)
    assert Fs == runs[0][0] and np.array_equal(gs, runs[0][1])
    report = rc.check_sopsp(dobj, x, eps=1e-2)
    assert report.F == pytest.approx(F, rel=1e-12)


def test_linear_baseline_of_many_chunks_on_the_cluster(client, rng, monkeypatch):
    """The Gram passes' chunks (here several per dask block) run inside the workers' tasks,
    one after another: nothing of the client's thread pool travels with them, and the
    answer is the in-memory one (whose chunks run on the client's threads)."""
    import resnet_core._gram_pass as gram_pass
    monkeypatch.setattr(gram_pass, "CHUNK_BYTES", 1 << 13)  # chunks of 256 rows
    X = rng.standard_normal((3000, 4))
    y = np.where(X[:, 0] + X[:, 1] + rng.standard_normal(3000) > 0, 1.0, -1.0)
    ref = rc.linear_baseline(X, y, n_threads=2)
    got = rc.linear_baseline(da.from_array(X, chunks=(1000, 4)).persist(),
                             da.from_array(y, chunks=1000).persist(), n_threads=2)
    assert got.separability == ref.separability == "overlapping" and got.attained
    assert rel_err(got.w, ref.w) < 1e-10 and got.fun == pytest.approx(ref.fun, rel=1e-13)


def test_data_stay_on_the_workers(client):
    """The client's own allocations during passes are a small fraction of X, which lives
    on the workers only."""
    import tracemalloc
    rs = da.random.RandomState(0)
    # large enough that dask's constant per-pass overhead on the client (~0.1-0.8 MB a
    # compute) is not what the ratio measures
    X = rs.standard_normal((400_000, 16), chunks=(50_000, 16)).persist()
    y = da.where(X[:, 0] > 0, 1.0, -1.0).persist()
    obj = rc.Objective(X, y, widths=(4,))
    x = obj.init(0)
    obj.fun_and_grad(x)
    # warm-up: the first certificate's one-time allocations (lazy imports, dask's caches of
    # new task functions) are not data
    rc.check_sopsp(obj, x, eps=1e-2, w_star=np.zeros(16))
    tracemalloc.start()
    try:
        obj.fun_and_grad(x + 1e-3)
        obj.hessp(x, x)
        rc.check_sopsp(obj, x, eps=1e-2, w_star=np.zeros(16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * X.nbytes, peak / X.nbytes


def _die_once(marker, fn, block):
    """The task of the first block kills its worker process the first time it runs."""
    if block.rows[0] == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return fn(block)


def _set_allowed_failures(n, dask_scheduler=None):
    dask_scheduler.allowed_failures = n


def _always_die(block):
    os._exit(1)


def test_a_worker_killed_mid_pass_is_retried_or_fails_clearly(client, problem, tmp_path):
    X, y, sw = problem
    Xd, yd, swd = _chunked(X, y, sw)
    dobj = rc.Objective(Xd, yd, sample_weight=swd, widths=WIDTHS)
    x = dobj.init(1)
    F, g = dobj.fun_and_grad(x)
    eng = dobj._engine
    args = (*dobj._split(x)[:1], *dobj._split(x)[2:])
    fn = functools.partial(_pass, "value_grad", args, {"need_theta": True})
    parts = eng.map_rows(functools.partial(_die_once, str(tmp_path / "died"), fn))
    assert (tmp_path / "died").exists()  # a worker did die
    assert sum(p[0] for p in parts) == F  # the scheduler re-ran its task: the same numbers
    assert np.array_equal(functools.reduce(np.add, (p[3] for p in parts)), g[-parts[0][3].size:])
    client.run_on_scheduler(_set_allowed_failures, 0)  # no retry: one death fails the pass
    try:
        with pytest.raises(RuntimeError, match="workers running one of its blocks died"):
            eng.map_rows(_always_die)
    finally:
        client.run_on_scheduler(_set_allowed_failures, 1)
    client.wait_for_workers(2, timeout=60)


# -- studies and progress ---------------------------------------------------------------------
def _study_args(problem):
    X, y, _ = problem
    obj = rc.Objective(X[:300], y[:300], widths=(3,))
    fo = obj.partial(obj.init(0))
    kw = dict(n_runs=7, seed=3, eps=1e-2, ell=2.0, rho=1.0, max_iter=60, stop_at_escape=False)
    return obj, fo, kw


def _same_study(a, b):
    for name in ("x", "escape_iter", "final_F", "status", "nit", "n_perturbations", "seeds"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.compiled == b.compiled and a.constants == b.constants


def test_escape_study_over_dask_same_per_seed(problem, scheduler):
    from resnet_core.studies import escape
    obj, fo, kw = _study_args(problem)
    starts = np.zeros((2, fo.n_params))
    _same_study(escape(fo, starts, **kw),
                escape(fo, starts, distribute=True, runs_per_task=3, **kw))
    kw.update(n_runs=3, max_iter=8)  # over all parameters: the streamed loop
    a = escape(obj, obj.init(1), **kw)
    b = escape(obj, obj.init(1), distribute=True, runs_per_task=2, **kw)
    _same_study(a, b)
    assert not b.compiled
    with pytest.raises(ValueError, match="in-memory data"):
        escape(_dask_objective(*problem, widths=(3,)), obj.init(1), distribute=True, **kw)


def test_progress_bars(problem, monkeypatch, capsys):
    import resnet_core._engine as engine
    monkeypatch.setattr(engine, "PROGRESS_DELAY", 0.0)
    X, y, sw = problem
    obj = _dask_objective(X, y, sw, widths=WIDTHS, progress=True)
    ref = rc.Objective(X, y, sample_weight=sw, widths=WIDTHS)
    x = ref.init(0)
    assert rel_err(obj.grad(x), ref.grad(x)) < TOL
    assert obj.partial(x).progress
    mem = rc.Objective(X, y, widths=WIDTHS, progress=True, chunk_size=16)
    mem._engine._row_blocks = lambda n, per_row: [(0, 1000), (1000, n)]
    assert mem.fun(x) == pytest.approx(rc.Objective(X, y, widths=WIDTHS).fun(x), rel=1e-12)
    err = capsys.readouterr().err
    assert "pass" in err and "block" in err


def test_study_on_the_cluster(client, problem):
    from resnet_core.studies import escape
    obj, fo, kw = _study_args(problem)
    _same_study(escape(fo, np.zeros(fo.n_params), **kw),
                escape(fo, np.zeros(fo.n_params), distribute=True, runs_per_task=2,
                       progress=True, **kw))


def test_data_properties_stay_lazy(problem):
    X, y, sw = problem
    Xd, yd, swd = _chunked(X, y, sw)
    Phi = np.tanh(X[:, :2])
    fo = rc.FeatureObjective(Xd, da.from_array(Phi, chunks=500), yd, sample_weight=swd,
                             feature_bias=True)
    ref = rc.FeatureObjective(X, Phi, y, sample_weight=sw, feature_bias=True)
    assert isinstance(fo.Phi, da.Array) and isinstance(fo.sample_weight, da.Array)
    assert rel_err(fo.Phi.compute(), ref.Phi) == 0
    assert rel_err(fo.sample_weight.compute(), ref.sample_weight) < 1e-15
    obj = rc.Objective(Xd, yd, widths=(2,), head="skip")
    with pytest.raises(ValueError, match="held in memory"):
        rc.projected_sgd(obj, obj.init(0), T=2, radius=1.0)
