"""Issue 18: the argument schema, data that change under an objective, memory sized up front,
non-regular point files, and the small items (dask chunk sizes, exact point-file round trip
with weights, estimators' strings)."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _schema
from resnet_core._guards import DataChangedError
from resnet_core._validation import TooLargeError


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] + 0.7 * rng.standard_normal(60) > 0, 1.0, -1.0)
    return X, y


# -- the schema ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec, good, expected", [
    (_schema.FLAG, np.bool_(True), True),
    (_schema.COUNT, np.int8(3), 3),
    (_schema.COUNT, np.uint64(2**40), 2**40),
    (_schema.POSITIVE, np.float32(0.5), 0.5),
    (_schema.POSITIVE, 3, 3.0),
    (_schema.PROBABILITY, 0.999, 0.999),
    (_schema.SCHEMA["widths"], np.int16(4), (4,)),
    (_schema.SCHEMA["widths"], [np.int32(4), np.uint8(3)], (4, 3)),
    (_schema.SCHEMA["widths"], np.array([5, 2]), (5, 2)),
])
def test_schema_converts_numpy_scalars(spec, good, expected):
    got = spec("arg", good)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, tuple):
        assert all(type(h) is int for h in got)


@pytest.mark.parametrize("spec, bad, error, match", [
    (_schema.FLAG, 0.5, TypeError, "arg must be True or False; got 0.5"),
    (_schema.FLAG, np.int64(1), TypeError, "True or False"),
    (_schema.COUNT, True, TypeError, "arg must be an integer >= 1"),
    (_schema.COUNT, 3.0, TypeError, "integer"),
    (_schema.COUNT, 2**63, ValueError, "integer >= 1"),
    (_schema.POSITIVE, 0.0, ValueError, r"arg must be a positive finite number \(> 0\)"),
    (_schema.POSITIVE, "0.1", TypeError, "positive finite number"),
    (_schema.POSITIVE, 10**400, ValueError, "finite"),
    (_schema.PROBABILITY, 1.0, ValueError, r"arg must lie in \(0, 1\)"),
    (_schema.PROBABILITY, np.nan, ValueError, r"\(0, 1\)"),
    (_schema.FINITE, -np.inf, ValueError, "finite"),
    (_schema.SCHEMA["widths"], (), ValueError, "at least one layer"),
    (_schema.SCHEMA["widths"], (4, 2.0), TypeError, "each entry of arg"),
])
def test_schema_refuses(spec, bad, error, match):
    with pytest.raises(error, match=match):
        spec("arg", bad)


def test_none_only_where_the_signature_defaults_to_none(data):
    X, y = data
    fo = rc.FeatureObjective(X, np.tanh(X), y)
    z = np.zeros(fo.n_params)
    with pytest.raises(TypeError, match="eps must be a non-negative finite number"):
        rc.check_sopsp(fo, z, eps=None)
    with pytest.raises(TypeError, match="eps must be"):
        rc.check_sopsp(fo, z, eps="0.1")
    assert rc.check_sopsp(fo, z, eps=0.1, mu2=None).eps == 0.1
    with pytest.raises(TypeError, match="eta must be a positive finite number"):
        rc.gradient_descent(fo, z, eta=None)


# -- the reproducers ---------------------------------------------------------------
def test_flags_are_booleans(data):
    X, y = data
    with pytest.raises(TypeError, match="bias must be True or False; got 0.5"):
        rc.Objective(X, y, widths=(4, 3), bias=0.5)
    with pytest.raises(TypeError, match="feature_bias must be True or False; got 'no'"):
        rc.Objective(X, y, widths=(4, 3), feature_bias="no")
    with pytest.raises(TypeError, match="widths must be a positive integer or a non-empty"):
        rc.Objective(X, y, widths=True)
    with pytest.raises(TypeError, match="widths must be a positive integer or a non-empty"):
        rc.Objective(X, y, widths=1.5)
    with pytest.raises(TypeError, match="bias must be True or False"):
        rc.ResNetClassifier(widths=(3,), bias=0.5, certify=False).fit(X, y)
    a = rc.Objective(X, y, widths=(4, 3), bias=np.bool_(False))
    b = rc.Objective(X, y, widths=(4, 3), bias=False)
    x = b.init(0)
    assert a.bias is False and a.fun(x) == b.fun(x)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint16, np.int64])
def test_integer_widths_of_every_dtype(data, dtype):
    X, y = data
    a = rc.Objective(X, y, widths=(dtype(4), dtype(3)))
    b = rc.Objective(X, y, widths=(4, 3))
    assert a.widths == (4, 3) and all(type(h) is int for h in a.widths)
    x = b.init(0)
    assert np.array_equal(a.grad(x), b.grad(x))


@pytest.mark.parametrize("kw, match", [
    ({"eta": -1.0}, "eta must be a positive"), ({"eta": 0.0}, "eta must be a positive"),
    ({"g_thres": np.nan}, "g_thres must be a finite"), ({"f_thres": np.nan}, "f_thres"),
    ({"f_escape": np.nan}, "f_escape"), ({"r": np.nan}, "r must be"),
    ({"ell": 0.0}, "ell must be a positive"), ({"rho": -1.0}, "rho must be a positive"),
    ({"c": 0.0}, "c must be a positive"), ({"delta": 0.0}, r"delta must lie in \(0, 1\)"),
    ({"delta": 1.5}, r"delta must lie in \(0, 1\)"), ({"delta_f": -1.0}, "delta_f"),
    ({"ell": np.nan}, "ell must be"),
])
def test_pgd_hyperparameters(data, kw, match):
    X, y = data
    fo = rc.FeatureObjective(X, np.tanh(X), y)
    with pytest.raises(ValueError, match=match):
        rc.perturbed_gd(fo, np.zeros(fo.n_params), **{"eps": 0.1, "max_iter": 5, **kw})


def test_gd_sgd_escape_spectrum_hyperparameters(data):
    X, y = data
    fo = rc.FeatureObjective(X, np.tanh(X), y)
    z = 0.1 * np.ones(fo.n_params)
    for kw, match in [({"eta": -1.0}, "eta"), ({"eta": 0.0}, "eta"), ({"eps": np.nan}, "eps")]:
        with pytest.raises(ValueError, match=match):
            rc.gradient_descent(fo, z, **{"eta": 0.1, **kw})
    skip = rc.Objective(X, y, widths=(3,), head="skip")
    for kw, match in [({"eta": -1.0}, "eta"), ({"eta": 0.0}, "eta"),
                      ({"lipschitz": -1.0}, "lipschitz"), ({"delta": 2.0}, "delta")]:
        with pytest.raises(ValueError, match=match):
            rc.projected_sgd(skip, skip.init(0), T=5, radius=1.0, **kw)
    for eps in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="eps must be a positive"):
            rc.studies.escape(fo, z, eps=eps, max_iter=5)
    for sigma in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="sigma must be a positive"):
            rc.spectral_density(fo, z, sigma=sigma)
    good = rc.spectral_density(fo, z, sigma=0.1, n_probes=2, lanczos_steps=4)
    assert np.all(good.density >= 0) and np.all(np.isfinite(good.density))


def test_pgd_constants_out_of_range_name_the_inputs():
    from resnet_core.optim import pgd_constants

    with pytest.raises(ValueError, match="give a PGD constant out of range"):
        pgd_constants(eps=1e-300, ell=1e300, rho=1e-300, c=1.0, delta=0.1, delta_f=1e300,
                      dim=10)


# -- memory sized up front -----------------------------------------------------------------
def test_widths_too_large_name_the_largest_that_fits(data, monkeypatch):
    from resnet_core import _validation
    # a fixed limit: the memory available on a shared machine moves between two calls
    monkeypatch.setattr(_validation, "memory_limit", lambda: 20 << 30)
    X, y = data
    with pytest.raises(TooLargeError, match=r"widths \(100000, 100000\) .*would take .* GiB, "
                       r"more than the memory available .*widths=\((\d+), \1\) is the widest"):
        rc.Objective(X, y, widths=(100000, 100000))
    try:
        rc.Objective(X, y, widths=(100000, 100000))
    except MemoryError as err:  # also a MemoryError, as NumPy's would have been
        h = int(str(err).split("widths=(")[-1].split(",")[0])
    layout = rc.MLPLayout(3, (h, h), True, "tanh")  # the width named fits
    assert 16 * layout.n_params <= _validation.memory_limit()
    with pytest.raises(TooLargeError):
        rc.MLPLayout(3, (h + 1, h + 1), True, "tanh")


def test_n_classes_too_large_names_the_largest(data):
    X, y = data
    labels = (y > 0).astype(int)
    with pytest.raises(TooLargeError, match=r"n_classes = 10000000000 .*use fewer classes: "
                                            r"n_classes = \d+ is the most that fits"):
        rc.Objective(X, labels, loss="cross_entropy", widths=(2,), n_classes=10**7 * 10**3)
    with pytest.raises(MemoryError, match="n_classes"):
        rc.Objective(np.repeat(X, 100, axis=0), np.repeat(labels, 100),
                     loss="cross_entropy", widths=(2,), n_classes=10**7)


def test_pgd_history_grows_with_the_run(data):
    """max_iter=10**12 costs nothing when the run stops early; the result is bit for bit
    the one of a run with an ordinary max_iter."""
    X, y = data
    fo = rc.FeatureObjective(X, np.tanh(X), y)
    z = np.zeros(fo.n_params)
    kw = dict(eps=0.05, ell=2.0, rho=2.0, seed=3, record_every=1)
    small = rc.perturbed_gd(fo, z, max_iter=100_000, **kw)
    huge = rc.perturbed_gd(fo, z, max_iter=10**12, **kw)
    assert small.status == 0 and small.nit < 100_000 and small.compiled
    assert np.array_equal(small.x, huge.x) and huge.nit == small.nit
    for key in ("iter", "fun", "grad_norm"):
        assert np.array_equal(small.history[key], huge.history[key])
    assert small.history["iter"].size == small.nit + 1
    assert np.array_equal(small.perturbation_iters, huge.perturbation_iters)
    gd = rc.gradient_descent(fo, z, eta=0.5, eps=1e-3, max_iter=10**12, record_every=10)
    assert gd.status == 0 and gd.history["iter"][-1] <= gd.nit


# -- data that change under the objective ---------------------------------------------------
def test_in_memory_data_changed_is_named(data):
    X, y = data
    X = np.repeat(X, 100, axis=0)
    y = np.repeat(y, 100)
    obj = rc.Objective(X, y, widths=(3,))
    kept = rc.Objective(X, y, widths=(3,), copy=True)
    x = obj.init(0)
    F = obj.fun(x)
    X[5000, 1] = np.nan
    with pytest.raises(DataChangedError, match=r"X is no longer finite: rows \d+:\d+ .* "
                                               r"at index \(5000, 1\).*copy=True"):
        obj.fun(x + 1e-3)
    assert kept.fun(x) == F  # its own copy
    fo = rc.FeatureObjective(np.ones((60, 2)), np.ones((60, 1)), y[:60].copy(), copy=False)
    fo._engine.y[7] = np.nan
    with pytest.raises(ValueError, match=r"y is no longer finite: .*index \(7,\)"):
        fo.fun(np.zeros(fo.n_params))


def test_memmap_rewritten_with_nan_is_named(tmp_path, data):
    X, y = data
    path = tmp_path / "X.npy"
    np.save(path, np.repeat(X, 50, axis=0))
    Xm = np.load(path, mmap_mode="r")
    obj = rc.Objective(Xm, np.repeat(y, 50), widths=(3,))
    x = obj.init(0)
    obj.fun(x)
    w = np.load(path, mmap_mode="r+")
    w[2000, 2] = np.nan
    w.flush()
    with pytest.raises(DataChangedError, match=r"X is no longer finite.*index \(2000, 2\)"):
        obj.fun(x + 1e-3)


_TRUNCATE = """
import numpy as np, resnet_core as rc, sys
X = np.random.default_rng(0).standard_normal((4000, 3))
np.save(sys.argv[1], X)
Xm = np.load(sys.argv[1], mmap_mode="r")
obj = rc.Objective(Xm, np.sign(X[:, 0]), widths=(3,))
x = obj.init(0)
obj.fun(x)
with open(sys.argv[1], "r+b") as f:
    f.truncate(int(sys.argv[2]))
for call in (lambda: obj.fun(x + 1e-3), lambda: rc.Objective(Xm, np.sign(X[:, 0]))):
    try:
        call()
    except rc._guards.DataChangedError as err:
        print("refused:", err)
"""


@pytest.mark.parametrize("size", [1000, 128])
def test_truncated_memmap_is_an_error_not_sigbus(tmp_path, size):
    """In a child process: a SIGBUS would kill it (and the test would see the signal)."""
    out = subprocess.run([sys.executable, "-c", _TRUNCATE, str(tmp_path / "X.npy"), str(size)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all("now " + str(size) + " bytes" in ln for ln in lines)
    assert all("X is memory-mapped from" in ln for ln in lines)


# -- non-regular point files ---------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_certify_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "x.npz"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, "-m", "resnet_core", "certify", str(fifo)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert "is a FIFO (named pipe), not a regular file" in out.stderr
    with pytest.raises(rc.PointFileError, match="not a regular file"):
        rc.load_point(fifo)


# -- small items ---------------------------------------------------------------------------
def test_dask_unknown_chunk_sizes_name_compute_chunk_sizes(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    Xd, yd = da.from_array(X, chunks=20), da.from_array(y, chunks=20)
    y_unknown = yd[yd == yd]
    with pytest.raises(ValueError, match=r"y has unknown chunk sizes.*"
                                         r"y.compute_chunk_sizes\(\)"):
        rc.Objective(Xd, y_unknown, widths=(2,))
    with pytest.raises(ValueError, match=r"X.compute_chunk_sizes\(\)"):
        rc.Objective(Xd[yd == yd], y, widths=(2,))


@pytest.mark.parametrize("kind", ["Objective", "FeatureObjective", "partial"])
def test_point_file_round_trip_with_weights_is_exact(tmp_path, data, kind):
    X, y = data
    bad = 0
    for seed in range(8):
        w = np.random.default_rng(seed).random(60) * 3
        obj = rc.Objective(X, y, widths=(4,), sample_weight=w)
        x = obj.init(seed)
        if kind == "FeatureObjective":
            obj = rc.FeatureObjective(X, np.tanh(X[:, :2]), y, sample_weight=w)
            x = 0.1 * np.arange(obj.n_params)
        elif kind == "partial":
            obj = obj.partial(x)
            x = x[:obj.n_params]
        path = rc.save_point(tmp_path / f"p{seed}.npz", obj, x)
        back, x2, _ = rc.load_point(path)
        bad += not (np.array_equal(obj.sample_weight, back.sample_weight)
                    and np.array_equal(obj.grad(x), back.grad(x2))
                    and obj.fun(x) == back.fun(x2))
    assert bad == 0


def test_estimators_refuse_strings_and_convert_object_numbers(data):
    pytest.importorskip("sklearn")
    X, y = data
    est = rc.ResNetRegressor(widths=(2,), max_iter=3, certify=False)
    with pytest.raises(TypeError, match="X must hold real numbers; got dtype <U"):
        est.fit(X.astype(str), y)
    obj_X = X.astype(object)
    obj_X[3, 1] = "0.5"
    with pytest.raises(TypeError, match=r"X must hold real numbers; found the string '0.5' "
                                        r"at index \(3, 1\)"):
        est.fit(obj_X, y)
    with pytest.raises(TypeError, match="y must hold real numbers"):
        est.fit(X, y.astype(str))
    with pytest.raises(TypeError, match="sample_weight must hold real numbers"):
        est.fit(X, y, sample_weight=np.ones(60).astype(str))
    with pytest.raises(TypeError, match="X must hold real numbers"):  # the core, the same
        rc.Objective(X.astype(str), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = rc.ResNetRegressor(widths=(2,), max_iter=3, certify=False, random_state=0)
        b = rc.ResNetRegressor(widths=(2,), max_iter=3, certify=False, random_state=0)
        a.fit(X.astype(object), y)  # numbers in an object array: converted, as scikit-learn
        b.fit(X, y)
    assert np.array_equal(a.params_, b.params_)
    clf = rc.ResNetClassifier(widths=(2,), max_iter=3, certify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, np.where(y > 0, "yes", "no"))  # string class labels stay labels
    assert set(clf.classes_) == {"no", "yes"}
