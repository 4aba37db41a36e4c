"""The explicit point state: ``at(x)`` against the adapters, objectives shared by threads,
passes interrupted by KeyboardInterrupt or MemoryError, predictions on new inputs."""

import threading

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _kernels
from conftest import make_data, random_point, rel_err


def _objective(rng, loss="logistic", n=300, d=4, **kw):
    X, y, sw = make_data(rng, n, d, loss)
    return rc.Objective(X, y, loss=loss, widths=(5, 3), sample_weight=sw, **kw)


def _feature_objective(rng, loss="logistic", n=300, d=4, k=3):
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    return rc.FeatureObjective(X, Phi, y, loss=loss, sample_weight=sw)


@pytest.mark.parametrize("loss", ["logistic", "squared", "smoothed_hinge"])
def test_state_matches_the_adapters(rng, loss):
    obj = _objective(rng, loss)
    x = random_point(obj, rng)
    p = rng.standard_normal(obj.n_params)
    st = obj.at(x)
    assert repr(st).endswith("computed=nothing yet)")
    F, g = obj.fun_and_grad(x)
    fresh = _objective(np.random.default_rng(12345), loss)  # the same data, no cache
    assert st.F == F == fresh.fun(x) and np.array_equal(st.grad, fresh.grad(x))
    assert np.array_equal(st.hessp(p), fresh.hessp(x, p))
    s = obj.sample_weight
    assert st.F == pytest.approx(float(s @ st.sample_losses), rel=1e-12)
    with pytest.raises(ValueError):
        st.grad[0] = 1.0  # read-only
    assert obj.at(x) is st  # the last state is remembered
    with pytest.raises(AttributeError, match="partial"):
        st.stats


def test_partial_state_holds_the_statistics(rng):
    fo = _feature_objective(rng)
    z = rng.standard_normal(fo.n_params)
    st = fo.at(z)
    stats = st.stats
    assert st.stats is stats and fo.stats(z) is stats
    assert stats.F == pytest.approx(st.F, rel=1e-13)
    assert rel_err(stats.grad, st.grad) < 1e-12
    H = fo.hessian(z)
    p = rng.standard_normal(fo.n_params)
    assert rel_err(st.hessp(p), H @ p) < 1e-12
    # the per-sample derivatives: r = s l', q = s l''
    l, d1, d2 = fo.loss.derivatives(fo.predict(z), fo.y)
    assert rel_err(st.weighted_dloss, fo.sample_weight * d1) < 1e-12
    assert rel_err(st.weighted_d2loss, fo.sample_weight * d2) < 1e-12


def _replay(obj, x, p, repeats):
    """What one thread's calls return: fun_and_grad and hessp at ``x``, ``repeats`` times."""
    out = []
    for _ in range(repeats):
        F, g = obj.fun_and_grad(x)
        out.append((F, g, obj.hessp(x, p)))
    return out


def _shared_data(kind, r, tmp_path):
    """``(X, y, Phi or None, loss)`` of a thread test, on the source that ``kind`` names
    (``memmap_*``, ``dask_*``: the stateless stream and dask engines)."""
    X, y, _ = make_data(r, 2000, 4, "logistic")
    loss = "logistic"
    if "vector" in kind:  # c outputs: cross-entropy on 3 classes
        y, loss = np.argmax(X[:, :3] + r.standard_normal((2000, 3)), axis=1), "cross_entropy"
    Phi = np.tanh(X[:, :2] + 0.1) if "feature" in kind else None
    if kind.startswith("memmap"):
        for name in ("X", "y"):
            np.save(tmp_path / f"{name}.npy", {"X": X, "y": y}[name])
        X, y = (np.load(tmp_path / f"{name}.npy", mmap_mode="r") for name in ("X", "y"))
    if kind.startswith("dask"):
        da = pytest.importorskip("dask.array")
        X, y = da.from_array(X, chunks=700), da.from_array(y, chunks=700)
    return X, y, Phi, loss


@pytest.mark.parametrize("kind", ["objective", "feature", "custom", "vector",
                                  "vector_feature", "memmap", "memmap_vector", "dask",
                                  "dask_vector"])
def test_threads_sharing_one_objective_get_serial_answers(rng, kind, tmp_path):
    """Four threads at four points on one objective: each gets exactly what it gets alone
    (the old engine shared its buffers: 18 of 160 results were wrong); one output and c
    outputs, in memory, out-of-core (memmap) and on dask arrays."""
    def build(seed):
        r = np.random.default_rng(seed)
        if kind == "objective":
            return _objective(r, n=2000, n_threads=2)
        if kind == "feature":
            return _feature_objective(r, n=2000)
        if kind == "custom":
            X, y, _ = make_data(r, 2000, 4, "logistic")
            return rc.Objective(X, y, widths=(5, 3), loss=lambda p, y: (
                np.logaddexp(0, -y * p), -y / (1 + np.exp(y * p)),
                1 / (2 + np.exp(y * p) + np.exp(-y * p))))
        X, y, Phi, loss = _shared_data(kind, r, tmp_path)
        if Phi is not None:
            return rc.FeatureObjective(X, Phi, y, loss=loss, n_threads=2)
        return rc.Objective(X, y, loss=loss, widths=(5, 3), n_threads=2)

    obj = build(7)
    assert obj.engine.stateless == kind.startswith(("memmap", "dask"))
    assert obj.vector == ("vector" in kind)
    repeats = 3 if kind.startswith("dask") else 10
    points = [obj.validate_point(rng.standard_normal(obj.n_params)) * 0.5 for _ in range(4)]
    p = rng.standard_normal(obj.n_params)
    expected = [_replay(build(7), x, p, repeats) for x in points]
    results = [None] * 4

    def work(i):
        results[i] = _replay(obj, points[i], p, repeats)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for got, want in zip(results, expected):
        for (F, g, H), (F0, g0, H0) in zip(got, want):
            assert F == F0 and np.array_equal(g, g0) and np.array_equal(H, H0)


def test_objectives_pickle_without_their_states(rng):
    import pickle

    fo = _feature_objective(rng)
    z = rng.standard_normal(fo.n_params)
    F = fo.fun(z)
    clone = pickle.loads(pickle.dumps(fo))
    assert clone.fun(z) == F


def _interrupting(monkeypatch, name, exc):
    """Replace the kernel ``name`` by one that runs, then raises ``exc`` once (the buffers are
    written: the worst moment)."""
    original = getattr(_kernels, name)
    fired = []

    def kernel(*args):
        original(*args)
        if not fired:
            fired.append(1)
            raise exc

    monkeypatch.setattr(_kernels, name, kernel)
    return fired


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError])
@pytest.mark.parametrize("kernel", ["value_grad", "hvp", "gram"])
def test_an_interrupted_pass_leaves_nothing_stale(rng, monkeypatch, exc, kernel):
    fo = _feature_objective(rng)
    z_old, z_new = rng.standard_normal((2, fo.n_params))
    p = rng.standard_normal(fo.n_params)
    reference = _feature_objective(np.random.default_rng(12345))
    want_old = (reference.fun(z_old), reference.hessp(z_old, p))
    want_new = (reference.fun(z_new), reference.grad(z_new), reference.stats(z_new).A)
    fo.fun(z_old)  # the old point is evaluated and remembered
    fired = _interrupting(monkeypatch, kernel, exc)
    with pytest.raises(exc):
        {"value_grad": lambda: fo.fun(z_new), "hvp": lambda: fo.hessp(z_new, p),
         "gram": lambda: fo.stats(z_new)}[kernel]()
    assert fired
    assert fo.fun(z_old) == want_old[0] and np.array_equal(fo.hessp(z_old, p), want_old[1])
    assert fo.fun(z_new) == want_new[0] and np.array_equal(fo.grad(z_new), want_new[1])
    assert np.array_equal(fo.stats(z_new).A, want_new[2])


def test_an_interrupted_custom_loss_leaves_nothing_stale(rng, monkeypatch):
    X, y, _ = make_data(rng, 200, 3, "squared")
    calls = []

    def sq(p, y):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return 0.5 * (p - y) ** 2, p - y, np.ones_like(p)

    obj = rc.Objective(X, y, loss=sq, widths=(4,))
    ref = rc.Objective(X, y, loss="squared", widths=(4,))
    x0, x1 = random_point(obj, rng), random_point(obj, rng)
    obj.fun(x0)
    with pytest.raises(KeyboardInterrupt):
        obj.fun(x1)
    assert obj.fun(x0) == pytest.approx(ref.fun(x0), rel=1e-13)
    assert obj.fun(x1) == pytest.approx(ref.fun(x1), rel=1e-13)


def test_predictions_on_new_inputs_match_the_concatenated_objective(rng):
    X, y, _ = make_data(rng, 300, 4, "logistic")
    X_new = rng.standard_normal((57, 4))
    for kw in ({}, {"feature_bias": True, "head": "skip"}):
        obj = rc.Objective(X, y, widths=(6, 3), **kw)
        both = rc.Objective(np.vstack([X, X_new]), np.ones(357), widths=(6, 3), **kw)
        x = random_point(obj, rng)
        assert np.array_equal(obj.predict(x, X_new), both.predict(x)[300:])
        assert np.array_equal(obj.features(x, X_new), both.features(x)[300:])
        part = obj.partial(x)
        z = x[:part.n_params]
        assert np.array_equal(part.predict(z, X_new), both.predict(x)[300:])
        mat = obj.partial(x, materialize=True)
        Phi_new = obj.features(x, X_new)[:, :obj.k - int(obj.feature_bias)]
        assert rel_err(mat.predict(z, X_new, Phi_new), both.predict(x)[300:]) < 1e-14
    with pytest.raises(ValueError, match="features Phi"):
        mat.predict(z, X_new)
    with pytest.raises(ValueError, match="X must have shape"):
        obj.predict(x, rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="MLP"):
        part.predict(z, X_new, Phi_new)


def test_predict_keeps_float32(rng):
    X, y, _ = make_data(rng, 100, 3, "logistic")
    obj = rc.Objective(X.astype(np.float32), y, widths=(4,))
    x = obj.init(0)
    assert obj.predict(x, rng.standard_normal((7, 3))).dtype == np.float32


def test_passes_in_many_blocks_agree_and_stop_cleanly(rng, monkeypatch):
    """A pass is a sequence of kernel calls over row blocks (Ctrl-C is seen between two):
    many small blocks give the one-block numbers to rounding, and an interrupt after the
    first block stores nothing."""
    from resnet_core import _engine

    X, y, sw = make_data(rng, 1000, 4, "logistic")
    one = rc.Objective(X, y, widths=(5, 3), sample_weight=sw)
    x = random_point(one, rng)
    p = rng.standard_normal(one.n_params)
    want = (one.fun(x), one.grad(x), one.hessp(x, p), one.predict(x),
            one.partial(x).stats(x[:one.n_head_params]).G)
    monkeypatch.setattr(_engine, "BLOCK_WORK", 1)  # blocks of one chunk
    many = rc.Objective(X, y, widths=(5, 3), sample_weight=sw, chunk_size=64)
    assert len(many._engine._row_blocks(1000, many._engine._per_row)) == 16
    got = (many.fun(x), many.grad(x), many.hessp(x, p), many.predict(x),
           many.partial(x).stats(x[:many.n_head_params]).G)
    for a, b in zip(got, want):
        assert rel_err(a, b) < 1e-13
    calls = []
    original = _kernels.value_grad

    def second_block_interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(*args)

    monkeypatch.setattr(_kernels, "value_grad", second_block_interrupted)
    x2 = random_point(many, rng)
    with pytest.raises(KeyboardInterrupt):
        many.fun(x2)
    assert many.fun(x2) == pytest.approx(one.fun(x2), rel=1e-13)


def test_small_passes_on_one_thread_give_the_same_numbers(rng, monkeypatch):
    """Small kernel calls run their slots on the calling thread (waking a team costs more
    than it saves); the slots, and so every number, are those of a threaded call."""
    from resnet_core import _engine

    X, y, sw = make_data(rng, 3000, 5, "logistic")
    obj = rc.Objective(X, y, widths=(6, 4), sample_weight=sw, n_threads=2)
    x = random_point(obj, rng)
    p = rng.standard_normal(obj.n_params)
    answers = []
    for serial_work in (0, 1 << 62):
        monkeypatch.setattr(_engine, "SERIAL_WORK", serial_work)
        fresh = rc.Objective(X, y, widths=(6, 4), sample_weight=sw, n_threads=2)
        answers.append((fresh.fun(x), fresh.grad(x), fresh.hessp(x, p)))
    for a, b in zip(*answers):
        assert np.array_equal(a, b)


def test_idle_openmp_threads_sleep_by_default():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", "import os, resnet_core; "
                          "print(os.environ['OMP_WAIT_POLICY'])"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # the user's choice is kept
    out = subprocess.run([sys.executable, "-c", "import os, resnet_core; "
                          "print(os.environ['OMP_WAIT_POLICY'])"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ACTIVE"


@pytest.mark.parametrize("partial", [False, True])
def test_head_point_is_read_only(rng, partial):
    """``PointState.head_point`` hands out the state's own arrays: none may be written to
    (``a`` is a new array for the residual head, ``theta`` the partial objective's)."""
    X = rng.standard_normal((40, 3))
    obj = rc.Objective(X, np.where(X[:, 0] > 0, 1.0, -1.0), loss="logistic", widths=(2,))
    x = obj.init(0)
    state = obj.partial(x).at(x[:obj.partial(x).n_params]) if partial else obj.at(x)
    for part in state.head_point:
        with pytest.raises(ValueError, match="read-only"):
            part[...] = 0.0
