"""Where data of each kind go (``resnet_core._data``, the one routing function): c outputs
on in-memory, out-of-core (memmap, zarr) and dask data alike, and a NumPy-compatible dtype
read without loading the data."""

import functools

import numpy as np
import pytest

import resnet_core as rc
from conftest import rel_err
from resnet_core._validation import resolve_dtype


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 5)), rng.integers(0, 3, 300)


def test_cross_entropy_on_a_memmap_equals_in_memory(data, tmp_path):
    X, y = data
    mm = np.memmap(tmp_path / "X.dat", dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    on_disk = rc.Objective(mm, y, loss="cross_entropy", widths=(4,))
    in_memory = rc.Objective(X, y, loss="cross_entropy", widths=(4,))
    x = in_memory.init(0)
    assert on_disk.n_outputs == 3
    F1, g1 = on_disk.fun_and_grad(x)
    F2, g2 = in_memory.fun_and_grad(x)
    assert F1 == F2 and np.array_equal(g1, g2)


def _store(kind, tmp_path, name, a):
    """``a`` as a memmap, a zarr array (uneven last chunk) or a dask array (uneven chunks)."""
    if kind == "memmap":
        np.save(tmp_path / f"{name}.npy", a)
        return np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    if kind == "zarr":
        zarr = pytest.importorskip("zarr")
        z = zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="w", shape=a.shape,
                            dtype=a.dtype, chunks=(70,) + a.shape[1:])
        z[...] = a
        return zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="r")
    da = pytest.importorskip("dask.array")
    return da.from_array(a, chunks=((100, 130, 70),) + tuple((m,) for m in a.shape[1:]))


@pytest.mark.parametrize("kind", ["memmap", "zarr", "dask"])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_c_outputs_on_every_source_agree_with_in_memory(kind, loss, data, tmp_path,
                                                       monkeypatch):
    """Value, gradient, hessp (full and partial objective), predictions and per-sample
    quantities of c outputs on out-of-core and dask data: the in-memory numbers."""
    from resnet_core import _engine, _sources
    monkeypatch.setattr(_sources, "BLOCK_BYTES", 60 * 5 * 8)  # several blocks per pass
    X, labels = data
    rng = np.random.default_rng(1)
    y = labels if loss == "cross_entropy" else rng.standard_normal((300, 3))
    sw = rng.random(300) + 0.1
    kw = dict(loss=loss, widths=(4,), sample_weight=sw)
    ref = rc.Objective(X, y, **kw)
    put = functools.partial(_store, kind, tmp_path)
    obj = rc.Objective(put("X", X), put("y", y), **{**kw, "sample_weight": put("w", sw)})
    assert obj.engine.stateless and obj.engine.vector and obj.n_outputs == 3
    assert isinstance(obj.engine, _engine.EngineProtocol)
    x = ref.init(0) + 0.3 * rng.standard_normal(ref.n_params)
    p = rng.standard_normal(ref.n_params)
    F, g = ref.fun_and_grad(x)
    Fo, go = obj.fun_and_grad(x)
    assert Fo == pytest.approx(F, rel=1e-12) and rel_err(go, g) < 1e-12
    assert rel_err(obj.hessp(x, p), ref.hessp(x, p)) < 1e-12
    assert rel_err(np.asarray(obj.predict(x)), ref.predict(x)) < 1e-12
    assert rel_err(np.asarray(obj.at(x).weighted_dloss), ref.at(x).weighted_dloss) < 1e-12
    assert rel_err(np.asarray(obj.y), ref.y) == 0
    part, opart = ref.partial(x), obj.partial(x)
    z = x[:part.n_params]
    assert rel_err(opart.hessp(z, p[:part.n_params]), part.hessp(z, p[:part.n_params])) < 1e-12


def _rel(a, b):
    return rel_err(np.asarray(a), b)


def test_c_outputs_on_dask_with_given_features_and_n_classes(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    Phi = np.tanh(X[:, :2])
    kw = dict(loss="cross_entropy", n_classes=5, feature_bias=True)
    ref = rc.FeatureObjective(X, Phi, y, **kw)
    obj = rc.FeatureObjective(da.from_array(X, chunks=120), da.from_array(Phi, chunks=50),
                              da.from_array(y, chunks=90), **kw)
    assert obj.n_classes == 5 and obj.n_params == ref.n_params
    z = np.random.default_rng(2).standard_normal(ref.n_params)
    assert obj.fun(z) == pytest.approx(ref.fun(z), rel=1e-12)
    assert _rel(obj.hessp(z, z), ref.hessp(z, z)) < 1e-12
    assert _rel(obj.predict_proba(z), ref.predict_proba(z)) < 1e-12


@pytest.mark.parametrize("kind", ["memmap", "dask"])
def test_bad_labels_on_a_source_name_the_global_index(kind, data, tmp_path):
    X, y = data
    bad = y.astype(float)
    bad[250] = 1.5
    with pytest.raises(ValueError, match=r"integer class labels.*found 1.5 at index 250"):
        rc.Objective(_store(kind, tmp_path, "X", X), _store(kind, tmp_path, "y", bad),
                     loss="cross_entropy", widths=(2,))
    with pytest.raises(ValueError, match="n_classes must be at least max"):
        rc.Objective(_store(kind, tmp_path, "X2", X), _store(kind, tmp_path, "y2", y),
                     loss="cross_entropy", widths=(2,), n_classes=2)


def test_c_outputs_baseline_on_dask_runs(data):  # (more in test_distributed.py)
    da = pytest.importorskip("dask.array")
    X, y = data
    got = rc.linear_baseline(da.from_array(X, chunks=100), y, loss="cross_entropy")
    ref = rc.linear_baseline(X, y, loss="cross_entropy")
    assert got.fun == pytest.approx(ref.fun, rel=1e-12)
    obj = rc.Objective(da.from_array(X, chunks=100), y, loss="cross_entropy", widths=(2,))
    assert obj.linear_baseline().fun == pytest.approx(ref.fun, rel=1e-12)  # docs/vector_outputs.md


def test_an_n_by_1_squared_target_on_dask_is_the_scalar_objective(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    t = y.astype(float)
    on_dask = rc.Objective(da.from_array(X, chunks=100), da.from_array(t[:, None], chunks=100),
                           loss="squared", widths=(4,))
    in_memory = rc.Objective(X, t, loss="squared", widths=(4,))
    x = in_memory.init(0)
    assert on_dask.n_outputs == 1
    assert on_dask.fun(x) == pytest.approx(in_memory.fun(x), rel=1e-12)


def test_n_classes_with_a_scalar_loss_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="n_classes is for the cross_entropy loss"):
        rc.Objective(X, np.where(y > 0, 1.0, -1.0), loss="logistic", n_classes=3)


def test_the_dtype_of_a_dask_array_is_read_without_computing_it():
    da = pytest.importorskip("dask.array")

    def boom(block):
        raise AssertionError("the data were computed")

    X = da.zeros((100, 3), chunks=50, dtype=np.float32).map_blocks(boom, dtype=np.float32)
    assert resolve_dtype(X) == np.float32


def test_engines_and_heads_declare_their_contracts(data, tmp_path):
    """Every kind of engine, one output or c outputs, implements ``EngineProtocol``; every
    head ``HeadProtocol``, with ``vector`` declared (not guessed)."""
    from resnet_core._engine import EngineProtocol
    from resnet_core.heads import HEADS, VECTOR_HEADS, HeadProtocol, make_head
    X, y = data
    signs = np.where(y > 0, 1.0, -1.0)
    for kind in ("memmap", "dask"):
        for labels, loss in ((signs, "logistic"), (y, "cross_entropy")):
            obj = rc.Objective(_store(kind, tmp_path, f"X{loss}", X),
                               _store(kind, tmp_path, f"y{loss}", labels), loss=loss,
                               widths=(2,))
            assert isinstance(obj.engine, EngineProtocol) and obj.engine.stateless
            assert isinstance(obj.partial(obj.init()).engine, EngineProtocol)
    for labels, loss in ((signs, "logistic"), (y, "cross_entropy")):
        eng = rc.Objective(X, labels, loss=loss, widths=(2,)).engine
        assert isinstance(eng, EngineProtocol) and not eng.stateless
        assert eng.vector == (loss == "cross_entropy") and eng.c == (3 if eng.vector else 1)
    for name in HEADS:
        assert isinstance(HEADS[name], HeadProtocol) and not HEADS[name].vector
        assert isinstance(VECTOR_HEADS[name](3), HeadProtocol) and make_head(name, 3, True).vector


def _block_value_and_dloss(block):
    buf = block.engine.buf
    return block.rows, float(buf.value), buf.r.copy()


@pytest.mark.parametrize("kind", ["memory", "memmap", "dask"])
def test_row_blocks_of_c_outputs(kind, data, tmp_path):
    """``map_rows`` with c outputs: each block's engine filled at the point holds its rows'
    ``s dl/dp`` (n_b x c), and the blocks' values add up to ``F``."""
    X, y = data
    put = (lambda name, a: a) if kind == "memory" else functools.partial(_store, kind, tmp_path)
    obj = rc.Objective(put("X", X), put("y", y), loss="cross_entropy", widths=(3,))
    ref = rc.Objective(X, y, loss="cross_entropy", widths=(3,))
    x = ref.init(0)
    parts = obj.engine.map_rows(_block_value_and_dloss, obj.at(x).head_point, rows=110)
    assert [rows for rows, _, _ in parts] == ([(0, 110), (110, 220), (220, 300)]
                                             if kind != "dask" else [(0, 100), (100, 230),
                                                                     (230, 300)])
    assert sum(v for _, v, _ in parts) == pytest.approx(ref.fun(x), rel=1e-12)
    r = np.concatenate([r for _, _, r in parts])
    assert r.shape == (300, 3) and rel_err(r, ref.at(x).weighted_dloss) < 1e-12


@pytest.mark.parametrize("kind", ["memmap", "zarr", "dask"])
@pytest.mark.parametrize("loss", ["logistic", "cross_entropy"])
def test_predictions_on_no_new_inputs_are_empty(kind, data, loss, tmp_path):
    """``predict(x, X)`` with zero new rows: an empty result on stateless data, as in memory
    (dask's block engine over no rows once divided by a chunk of 0; the stream engine's
    blocks of no rows were an IndexError)."""
    X, y = data
    labels = y if loss == "cross_entropy" else np.where(y > 0, 1.0, -1.0)
    ref = rc.Objective(X, labels, loss=loss, widths=(2,))
    obj = rc.Objective(_store(kind, tmp_path, "X", X), _store(kind, tmp_path, "y", labels),
                       loss=loss, widths=(2,))
    x = ref.init(0)
    assert np.asarray(obj.predict(x, X[:0])).shape == ref.predict(x, X[:0]).shape


def test_class_labels_of_no_numeric_dtype_are_a_type_error():
    """``check_classes`` (linear baseline, separability) names ``y``'s dtype before reading
    its shape: ``None`` is a TypeError, not an IndexError."""
    from resnet_core._validation import check_classes
    for bad in (None, np.array(["a", "b"])):
        with pytest.raises(TypeError, match="integer class labels"):
            check_classes(bad, None, 2)


@pytest.mark.parametrize("kind", ["memory", "memmap", "dask"])
def test_the_c_output_squared_loss_on_one_column(kind, data, tmp_path):
    """The c-output squared loss given as such, on an (n, 1) ``y``: c = 1 outputs with the
    scalar objective's numbers (it once left the kernels a 1-D ``y``: a buffer error)."""
    from resnet_core.losses import VECTOR_LOSSES
    X, _ = data
    Y = np.random.default_rng(3).standard_normal((300, 1))
    put = (lambda name, a: a) if kind == "memory" else functools.partial(_store, kind, tmp_path)
    ref = rc.Objective(X, Y[:, 0], loss="squared", widths=(2,))
    obj = rc.Objective(put("X", X), put("y", Y), loss=VECTOR_LOSSES["squared"], widths=(2,))
    assert obj.vector and obj.n_outputs == 1 and obj.n_params == ref.n_params
    x = ref.init(0)
    assert obj.fun(x) == pytest.approx(ref.fun(x), rel=1e-12)
    assert rel_err(obj.grad(x), ref.grad(x)) < 1e-12
