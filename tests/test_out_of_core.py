"""Out-of-core data on one machine: np.memmap and zarr arrays streamed block by block in
their own dtype; agreement with in-memory arrays; anonymous memory a small fraction of X for
every public call."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import resnet_core as rc
from conftest import make_data, random_point, rel_err
from resnet_core._sources import StreamEngine

zarr = pytest.importorskip("zarr")


def _memmap(path, a):
    np.save(path, a)
    return np.load(path, mmap_mode="r")


def _zarr(path, a, rows):
    z = zarr.open_array(str(path), mode="w", shape=a.shape, dtype=a.dtype,
                        chunks=(rows,) + a.shape[1:])
    z[...] = a
    return zarr.open_array(str(path), mode="r")


@pytest.fixture(params=["memmap", "zarr"])
def store(request, tmp_path):
    def put(name, a):
        if request.param == "memmap":
            return _memmap(tmp_path / f"{name}.npy", a)
        return _zarr(tmp_path / f"{name}.zarr", a, 333)
    put.kind = request.param
    return put


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_agrees_with_in_memory(store, loss, rng):
    X, y, sw = make_data(rng, 1200, 5, loss)
    obj = rc.Objective(X, y, loss=loss, widths=(4, 3), sample_weight=sw)
    ooc = rc.Objective(store("X", X), store("y", y), loss=loss, widths=(4, 3),
                       sample_weight=store("w", sw))
    assert isinstance(ooc._engine, StreamEngine)
    assert rel_err(ooc.sample_weight, obj.sample_weight) < 1e-15
    x = random_point(obj, rng)
    F, g = obj.fun_and_grad(x)
    Fo, go = ooc.fun_and_grad(x)
    assert abs(Fo - F) <= 1e-12 * abs(F) and rel_err(go, g) < 1e-12
    assert rel_err(ooc.hessp(x, g), obj.hessp(x, g)) < 1e-12
    assert rel_err(ooc.at(x).sample_losses, obj.at(x).sample_losses) < 1e-12
    part, opart = obj.partial(x), ooc.partial(x)
    z = x[:part.n_params]
    assert rel_err(opart.stats(z).A, part.stats(z).A) < 1e-12
    a = rc.check_sopsp(obj, x, eps=1e-2)
    b = rc.check_sopsp(ooc, x, eps=1e-2)
    for key in ("grad_norm", "lambda_min", "F", "F_se", "gap", "gap_se", "F_lin_at_w_star"):
        assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-10, abs=1e-13), key
    lin, olin = obj.linear_baseline(), ooc.linear_baseline()
    assert rel_err(olin.w, lin.w) < 1e-10 and olin.converged


def test_float32_stays_float32(store, rng):
    X, y, _ = make_data(rng, 900, 4, "logistic")
    X32 = X.astype(np.float32)
    ooc = rc.Objective(store("X", X32), store("y", y.astype(np.float32)), widths=(3,))
    obj = rc.Objective(X32, y, widths=(3,))
    assert ooc.X.dtype == np.float32 and ooc.dtype == np.float32
    x = obj.init(0)
    g = ooc.grad(x)
    assert g.dtype == np.float32 and rel_err(g, obj.grad(x)) < 1e-5


def test_bad_values_found_block_by_block(store, rng):
    X, y, sw = make_data(rng, 900, 4, "logistic")
    X[700, 1] = np.inf
    with pytest.raises(ValueError, match=r"X must be finite; found inf at index \(700, 1\)"):
        rc.Objective(store("X", X), y, widths=(3,))
    X[700, 1] = 0.0
    sw[5] = -1
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        rc.Objective(store("X", X), y, widths=(3,), sample_weight=store("w", sw))
    with pytest.raises(ValueError, match=r"y must have shape \(900,\)"):
        rc.Objective(store("X", X), y[:-1], widths=(3,))


def test_user_defined_loss_on_a_memmap_reads_it_in_place(tmp_path, rng):
    X, y, _ = make_data(rng, 300, 3, "squared")
    sq = rc.get_loss("squared")
    obj = rc.Objective(_memmap(tmp_path / "X.npy", X), y, widths=(2,),
                       loss=lambda p, t: sq.derivatives(p, t))
    assert not obj._engine.stateless
    ref = rc.Objective(X, y, widths=(2,), loss="squared")
    assert rel_err(obj.grad(ref.init(0)), ref.grad(ref.init(0))) < 1e-12


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["memmap", "zarr"])
def test_memory_is_a_small_fraction_of_X(kind, tmp_path):
    """Every public call on out-of-core float32 data: NumPy's allocations stay under
    0.1 x size(X) plus a few fixed MiB (no float64 copy, no n-vector of the per-sample
    quantities), plus zarr's decoding buffers."""
    rng = np.random.default_rng(1)
    n, d = 200_000, 32
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.where(X[:, 0] + rng.standard_normal(n) > 0, 1.0, -1.0).astype(np.float32)
    if kind == "memmap":
        Xs, ys = _memmap(tmp_path / "X.npy", X), _memmap(tmp_path / "y.npy", y)
    else:
        Xs, ys = _zarr(tmp_path / "X.zarr", X, 20_000), _zarr(tmp_path / "y.zarr", y, 20_000)
    size = X.nbytes
    del X, y
    obj = rc.Objective(Xs, ys, widths=(8, 8))
    x = obj.init(0)
    # a fixed 4 MiB: float64 rows of one QR block of the linear baseline (4096 x d) and
    # their factor; zarr also decodes a few of its chunks (2.5 MiB each here) at once
    budget = 0.1 * size + (4 << 20) + (16 << 20 if kind == "zarr" else 0)
    calls = {
        "construct": lambda: rc.Objective(Xs, ys, widths=(8, 8)),
        "fun_and_grad": lambda: obj.fun_and_grad(x + 1e-3),
        "hessp": lambda: obj.hessp(x, x),
        "linear_baseline": lambda: rc.linear_baseline(Xs, ys, max_iter=3),
        "check_sopsp": lambda: rc.check_sopsp(obj, x, eps=1e-2, w_star=np.zeros(32)),
        "gradient_descent": lambda: rc.gradient_descent(obj, x, eta=0.1, max_iter=2),
    }
    for name, call in calls.items():
        call()  # once first: imports and numba's compilation are not the data's
        peak = _peak(call)
        assert peak < budget, (name, peak / size)


def test_the_core_imports_without_the_extra():
    """dask, distributed and zarr are imported only when given one of their arrays."""
    code = ("import sys, numpy as np, resnet_core as rc\n"
            "X = np.random.default_rng(0).standard_normal((50, 3))\n"
            "rc.Objective(X, np.sign(X[:, 0]), widths=(2,)).fun(np.zeros(2 * 3 + 3 + 8))\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}\n"
            "             & {'dask', 'distributed', 'zarr'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
