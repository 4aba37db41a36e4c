"""Where data of each kind go: c outputs (issue 11) with out-of-core and dask data (issue 12),
and a NumPy-compatible dtype read without loading the data."""

import numpy as np
import pytest

import resnet_core as rc
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


def test_c_outputs_on_dask_arrays_are_refused_clearly(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    with pytest.raises(NotImplementedError, match="not implemented on dask arrays"):
        rc.Objective(da.from_array(X, chunks=100), y, loss="cross_entropy", widths=(4,))
    with pytest.raises(NotImplementedError, match="dask"):
        rc.linear_baseline(da.from_array(X, chunks=100), y, loss="cross_entropy")
    Y = np.column_stack([y, -y]).astype(float)
    with pytest.raises(NotImplementedError, match="dask"):
        rc.FeatureObjective(da.from_array(X, chunks=100), X[:, :2], Y, loss="squared")


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
