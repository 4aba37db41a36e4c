"""Arrays of other libraries: read in their own dtype (float32 stays float32), tensors that
require grad used as data, pandas nullable columns refused with the conversion to use."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc
from resnet_core._validation import to_numpy


def _data(rng, n=40, d=3, dtype=np.float32):
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0).astype(dtype)
    return X, y


class ArrayOnly:
    """Exposes ``__array__`` only."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class DLPackOnly:
    """Exposes the DLPack protocol only."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class OnDevice(ArrayOnly):
    """An array that says it lives on a GPU."""

    class device:
        type = "cuda"

        def __str__(self):
            return "cuda:0"

    device = device()


@pytest.mark.parametrize("wrap", [ArrayOnly, DLPackOnly])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_protocols_keep_the_dtype(rng, wrap, dtype):
    X, y = _data(rng, dtype=dtype)
    obj = rc.Objective(wrap(X), wrap(y), widths=(4,))
    ref = rc.Objective(X, y, widths=(4,))
    assert obj.dtype == dtype
    x = ref.init(0)
    assert obj.fun(x) == ref.fun(x)


def test_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    X, y = _data(rng)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    obj = rc.Objective(Xt, yt, widths=(4,))
    assert obj.dtype == np.float32
    assert np.shares_memory(obj.X, X)  # read in place, no copy
    ref = rc.Objective(X, y, widths=(4,))
    x = ref.init(1)
    # points, directions and weights may be tensors too
    assert obj.fun(torch.from_numpy(x)) == ref.fun(x)
    np.testing.assert_array_equal(obj.hessp(x, torch.ones(x.size)), ref.hessp(x, np.ones(x.size)))
    w = rng.random(X.shape[0])
    assert rc.Objective(Xt, yt, widths=(4,), sample_weight=torch.from_numpy(w)).fun(x) == \
        rc.Objective(X, y, widths=(4,), sample_weight=w).fun(x)
    # float64 and integer tensors: float64
    assert rc.Objective(Xt.double(), yt.double(), widths=(4,)).dtype == np.float64
    assert rc.Objective(Xt.to(torch.int64), yt, widths=(4,)).dtype == np.float64
    assert rc.linear_baseline(Xt, yt).w.dtype == np.float64  # the baseline's own float64


def test_tensor_requiring_grad_is_data(rng):
    torch = pytest.importorskip("torch")
    X, y = _data(rng)
    Xt = torch.from_numpy(X.copy()).requires_grad_(True)
    obj = rc.Objective(Xt, torch.from_numpy(y), widths=(4,))
    x = obj.init(2)
    assert obj.fun(x) == rc.Objective(X, y, widths=(4,)).fun(x)
    assert Xt.requires_grad and Xt.grad is None  # the caller's tensor is left as it was
    # a point that requires grad is read as data too
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    assert obj.fun(xt) == obj.fun(x)
    labels = torch.from_numpy((y > 0).astype(np.int64))
    multi = rc.Objective(Xt, labels, loss="cross_entropy", widths=(4,))
    assert multi.n_classes == 2 and multi.dtype == np.float32


# JAX starts threads of its own: it runs in a child process, so that the tests that fork
# later in this session (test_fork) never fork a process holding them.
JAX_SNIPPET = """
import numpy as np, jax.numpy as jnp, resnet_core as rc
rng = np.random.default_rng(0)
X = rng.standard_normal((40, 3)).astype(np.float32)
y = np.where(X[:, 0] > 0, 1.0, -1.0).astype(np.float32)
obj = rc.Objective(jnp.asarray(X), jnp.asarray(y), widths=(4,))
assert obj.dtype == np.float32
x = obj.init(3)
assert obj.fun(jnp.asarray(x)) == rc.Objective(X, y, widths=(4,)).fun(x)
try:
    import sklearn  # noqa: F401
except ImportError:
    raise SystemExit(0)
fit = rc.ResNetClassifier(widths=(4,), max_iter=20, random_state=0).fit(jnp.asarray(X), y)
ref = rc.ResNetClassifier(widths=(4,), max_iter=20, random_state=0).fit(X, y)
assert fit.params_.dtype == np.float32 and (fit.params_ == ref.params_).all()
assert (fit.predict(jnp.asarray(X)) == ref.predict(X)).all()
print("ok")
"""


def test_jax_arrays():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", JAX_SNIPPET],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(rc.__file__).parents[1])))
    assert out.returncode == 0, out.stderr[-2000:]


def test_device_arrays_refused(rng):
    X, y = _data(rng)
    with pytest.raises(TypeError, match=r"X is on the device cuda:0.*X\.cpu\(\)"):
        rc.Objective(OnDevice(X), y)


def test_pandas_nullable_columns(rng):
    pd = pytest.importorskip("pandas")
    X, y = _data(rng, dtype=np.float64)
    frame = pd.DataFrame(X).astype("Float64")
    fix = r"X\.to_numpy\(dtype=float, na_value=np\.nan\).*missing values are refused"
    with pytest.raises(TypeError, match=r"X holds pandas nullable values \(dtype Float64\)"):
        rc.Objective(frame, y)
    with pytest.raises(TypeError, match=fix):
        rc.linear_baseline(frame, y)
    labels = pd.Series((y > 0).astype(int)).astype("Int64")
    with pytest.raises(TypeError, match=r"y holds pandas nullable values \(dtype Int64\)"):
        rc.Objective(X, labels, loss="cross_entropy")
    with pytest.raises(TypeError, match=r"y holds pandas nullable values \(dtype Int64\)"):
        rc.linear_baseline(X, labels, loss="cross_entropy")
    # the conversion the message gives works, and NaN from a missing value is refused
    obj = rc.Objective(frame.to_numpy(dtype=float, na_value=np.nan), y, widths=(3,))
    assert obj.dtype == np.float64
    frame.iloc[2, 1] = pd.NA
    with pytest.raises(ValueError, match=r"X must be finite; found nan at index \(2, 1\)"):
        rc.Objective(frame.to_numpy(dtype=float, na_value=np.nan), y)
    # ordinary NumPy-backed frames and series are read as they are
    assert rc.Objective(pd.DataFrame(X.astype(np.float32)), pd.Series(y), widths=(3,)).dtype \
        == np.float32


def test_to_numpy_passes_plain_inputs_through():
    a = np.ones(3)
    assert to_numpy("x", a) is a
    assert to_numpy("x", [1.0, 2.0]) == [1.0, 2.0]
    assert to_numpy("x", 3.0) == 3.0
