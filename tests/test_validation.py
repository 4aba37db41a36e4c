"""Bad input gets a clear error naming the argument, never a crash or a wrong number."""

import numpy as np
import pytest

import resnet_core as rc


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = np.where(rng.random(30) > 0.5, 1.0, -1.0)
    return X, y


def test_shapes_and_lengths(data):
    X, y = data
    with pytest.raises(ValueError, match="X must be 2-D"):
        rc.Objective(X[0], y)
    with pytest.raises(ValueError, match="y must have shape"):
        rc.Objective(X, y[:-1])
    with pytest.raises(ValueError, match="y must be 1-D"):
        rc.Objective(X, y[:, None])
    with pytest.raises(ValueError, match="at least one sample"):
        rc.Objective(X[:0], y[:0])
    with pytest.raises(ValueError, match="at least one feature"):
        rc.Objective(X[:, :0], y)
    with pytest.raises(ValueError, match="Phi must have shape"):
        rc.FeatureObjective(X, np.ones((29, 2)), y)
    with pytest.raises(ValueError, match="Phi must have at least one column"):
        rc.FeatureObjective(X, np.ones((30, 0)), y)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        rc.Objective(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("where", ["X", "y", "Phi", "sample_weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data(data, where, bad):
    X, y = data
    arrays = {"X": X.copy(), "y": y.copy(), "Phi": np.ones((30, 2)), "sample_weight": np.ones(30)}
    arrays[where][(3,) if arrays[where].ndim == 1 else (3, 1)] = bad
    with pytest.raises(ValueError, match=f"{where} must be finite"):
        rc.FeatureObjective(arrays["X"], arrays["Phi"], arrays["y"], loss="squared",
                            sample_weight=arrays["sample_weight"])


def test_parameters_and_directions(data):
    X, y = data
    obj = rc.Objective(X, y, widths=(2,))
    x = obj.init(0)
    with pytest.raises(ValueError, match=f"x must have shape \\({obj.n_params},\\)"):
        obj.fun(x[:-1])
    with pytest.raises(ValueError, match="x must be finite"):
        obj.grad(np.where(np.arange(x.size) == 2, np.nan, x))
    with pytest.raises(ValueError, match="p must be finite"):
        obj.hessp(x, np.full(x.size, np.inf))
    with pytest.raises(ValueError, match="p must have shape"):
        obj.hessp(x, x[:3])
    with pytest.raises(TypeError, match="x must hold real numbers"):
        obj.fun(x.astype(complex))
    fo = obj.partial(x)
    with pytest.raises(ValueError, match="z must have shape"):
        fo.hessian(x)


def test_labels_weights_names(data):
    X, y = data
    with pytest.raises(ValueError, match="labels -1 or \\+1 for the logistic loss"):
        rc.Objective(X, y * 2)
    with pytest.raises(ValueError, match="labels -1 or \\+1 for the smoothed_hinge"):
        rc.Objective(X, (y > 0).astype(float), loss="smoothed_hinge")
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        rc.Objective(X, y, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match="positive sum"):
        rc.Objective(X, y, sample_weight=np.zeros(30))
    with pytest.raises(ValueError, match="loss must be one of"):
        rc.Objective(X, y, loss="hinge")
    with pytest.raises(TypeError, match="loss must be"):
        rc.Objective(X, y, loss=3)
    with pytest.raises(ValueError, match="activation must be one of"):
        rc.Objective(X, y, activation="gelu")
    with pytest.raises(ValueError, match="head must be one of"):
        rc.Objective(X, y, head="dense")
    with pytest.raises(ValueError, match="widths must name at least one layer"):
        rc.Objective(X, y, widths=())
    with pytest.raises(ValueError, match="each entry of widths"):
        rc.Objective(X, y, widths=(3, 0))
    with pytest.raises(TypeError, match="n_threads"):
        rc.Objective(X, y, n_threads=1.5)
    with pytest.raises(ValueError, match="n_threads"):
        rc.Objective(X, y, n_threads=0)
    with pytest.raises(ValueError, match="chunk_size"):
        rc.Objective(X, y, chunk_size=0)
    with pytest.raises(ValueError, match="radius must be a positive"):
        rc.linear_baseline(X, y, radius=-1)


def test_type_conversions(data):
    X, y = data
    with pytest.raises(TypeError, match="X must hold real numbers"):
        rc.Objective(X.astype(complex), y)
    with pytest.raises(TypeError, match="X must hold real numbers"):
        rc.Objective(X.astype(object), y)
    with pytest.raises(TypeError, match="X must be a numeric array"):
        rc.Objective("X", y)
    Xi = (X * 10).astype(np.int64)
    obj = rc.Objective(Xi, y, widths=(2,))  # integers become float64
    assert obj.dtype == np.float64
    Xf = np.asfortranarray(Xi.astype(float))  # copied into C order
    x = obj.init(0)
    assert obj.fun(x) == rc.Objective(Xf, y, widths=(2,)).fun(x)
    assert rc.Objective(X[:, ::-1], y, widths=(2,)).fun(x) == pytest.approx(
        rc.Objective(np.ascontiguousarray(X[:, ::-1]), y, widths=(2,)).fun(x), rel=0)


def test_up_front_checks_build_their_advice_only_on_failure(data, monkeypatch):
    """``check_alloc`` reads the memory available only for large allocations and builds its
    advice (an MLP layout's bisection for the widest network that fits) only when it
    refuses one."""
    from resnet_core import _validation, features

    def boom(*args):
        raise AssertionError("computed although nothing was refused")

    monkeypatch.setattr(_validation, "memory_limit", boom)
    _validation.check_alloc("a small block", 1 << 20, boom)  # neither read nor built
    monkeypatch.setattr(features, "largest_fitting", boom)
    monkeypatch.setattr(_validation, "memory_limit", lambda: 1 << 40)
    rc.MLPLayout(3, (64, 64), True, "tanh")  # fits: no bisection
    X, y = data
    assert rc.Objective(X, y, widths=(8,)).init() is not None
    monkeypatch.setattr(_validation, "memory_limit", lambda: 1 << 27)
    with pytest.raises(AssertionError, match="computed"):  # refused: the advice is built
        rc.MLPLayout(3, (4000, 4000), True, "tanh")
    with pytest.raises(_validation.TooLargeError, match=r"\(128 MiB\); at most 8 here"):
        _validation.check_alloc("a block", 1 << 28, lambda limit: f"at most {limit >> 24} here")
