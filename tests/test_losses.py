"""Losses and activations: derivatives, stability at extreme margins, user-defined losses."""

import numba
import numpy as np
import pytest

import reference as ref
import resnet_core as rc
from resnet_core import _kernels
from resnet_core.features import ACTIVATIONS

from conftest import make_data, rel_err


@pytest.mark.parametrize("name", sorted(rc.BUILTIN_LOSSES))
def test_builtin_losses_match_reference(name, rng):
    p = np.concatenate([rng.standard_normal(500) * 3, [0.0, 0.5, 1.0, 1.5, -0.5, 1e4, -1e4]])
    y = np.where(rng.random(p.size) > 0.5, 1.0, -1.0)
    mine = rc.BUILTIN_LOSSES[name].derivatives(p, y)
    theirs = ref.LOSSES[name](p, y)
    for a, b in zip(mine, theirs):
        assert np.all(np.isfinite(a))
        assert np.allclose(a, b, rtol=1e-13, atol=1e-300)


def test_logistic_extreme_margins():
    p = np.array([1e4, -1e4, 800.0, -800.0])
    y = np.ones(4)
    l, d1, d2 = rc.BUILTIN_LOSSES["logistic"].derivatives(p, y)
    assert np.array_equal(l[[0, 2]], [0.0, 0.0]) and np.allclose(l[[1, 3]], [1e4, 800.0])
    assert np.allclose(d1, [0, -1, 0, -1]) and np.all(d2 >= 0) and np.all(np.isfinite(d2))


def test_objective_finite_at_large_margins():
    X = np.array([[1e4], [-1e4], [3e3]])
    y = np.array([1.0, 1.0, -1.0])
    for loss in ("logistic", "smoothed_hinge", "squared"):
        fo = rc.FeatureObjective(X, np.ones((3, 1)), y, loss=loss, head="skip")
        z = np.array([1.0, 0.0])
        assert np.isfinite(fo.fun(z)) and np.all(np.isfinite(fo.grad(z)))
        assert np.all(np.isfinite(fo.hessian(z)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_reference(name, rng):
    z = np.concatenate([rng.standard_normal(1000) * 4, [0.1249, 0.125, 30.0, -30.0, 800, -800]])
    h, d1, d2 = z.copy(), np.empty_like(z), np.empty_like(z)
    _kernels.activation(ACTIVATIONS[name], h, d1, d2)
    rh, rd1, rd2 = ref.ACTIVATIONS[name](z)
    assert rel_err(h, rh) < 4e-15 and rel_err(d1, rd1) < 4e-15 and rel_err(d2, rd2) < 4e-15


def test_float_tanh_error_bound(rng):
    """float32 data take rc_tanhf (a rational fit computed in float, src/rc_math.h): its
    stated bound, 3e-7 relative and absolute error, on a dense grid, small and large
    inputs, the clamp and the switch to ``tanh x = x``."""
    z = np.concatenate([np.linspace(-12, 12, 2_000_001), 0.01 * rng.standard_normal(10**5),
                        3 * rng.standard_normal(10**5),
                        [0, 1e-30, -1e-38, 4e-4, -4e-4, 3.9999e-4, 7.905, 7.906, 100, 3e38,
                         -3e38]]).astype(np.float32)
    h, d1, d2 = z.copy(), np.empty_like(z), np.empty_like(z)
    _kernels.activation(ACTIVATIONS["tanh"], h, d1, d2)
    t = np.tanh(z.astype(np.float64))
    err = np.abs(h - t)
    assert err.max() < 3e-7 and (err / np.maximum(np.abs(t), 1e-300)).max() < 3e-7
    assert np.abs(d1 - (1 - t * t)).max() < 1e-6
    assert np.abs(d2 + 2 * t * (1 - t * t)).max() < 2e-6
    assert np.array_equal(np.sign(h), np.sign(z)) and np.abs(h).max() <= 1


def _logistic_vec(p, y):
    z = y * p
    e = np.exp(-np.abs(z))
    s = 1 / (1 + e)
    return np.maximum(-z, 0) + np.log1p(e), np.where(z >= 0, -y * e * s, -y * s), e * s * s


@numba.njit
def _squared_scalar(p, y):
    return 0.5 * (p - y) ** 2, p - y, 1.0


def test_custom_losses_match_builtin(rng):
    X, y, sw = make_data(rng, 300, 4, "logistic")
    for custom, name in ((rc.CustomLoss(_logistic_vec, binary_labels=True), "logistic"),
                         (rc.CustomLoss.from_scalar(_squared_scalar), "squared"),
                         (_logistic_vec, "logistic")):
        a = rc.Objective(X, y, loss=custom, widths=(3,), sample_weight=sw)
        b = rc.Objective(X, y, loss=name, widths=(3,), sample_weight=sw)
        x = a.init(3)
        assert a.fun(x) == pytest.approx(b.fun(x), rel=1e-14)
        assert rel_err(a.grad(x), b.grad(x)) < 1e-13
        assert rel_err(a.hessp(x, x), b.hessp(x, x)) < 1e-13
        z = x[:a.d + a.d * a.k]
        assert rel_err(a.partial(x).hessian(z), b.partial(x).hessian(z)) < 1e-13


def test_custom_loss_output_checked(rng):
    X, y, _ = make_data(rng, 20, 2, "squared")
    bad = rc.CustomLoss(lambda p, y: (p * np.nan, p, p))
    obj = rc.Objective(X, y, loss=bad, widths=(2,))
    with pytest.raises(ValueError, match="non-finite l"):
        obj.fun(obj.init(0))
    with pytest.raises(ValueError, match="tuple"):
        rc.Objective(X, y, loss=lambda p, y: p, widths=(2,)).fun(obj.init(0))
    with pytest.raises(ValueError, match="labels -1 or \\+1"):
        rc.Objective(X, y, loss=rc.CustomLoss(_logistic_vec, binary_labels=True), widths=(2,))


def test_nonconvex_custom_loss_statistics(rng):
    """l'' < 0 on some samples: the Gram pass subtracts their part."""
    X, y, sw = make_data(rng, 200, 3, "squared")
    cos = rc.CustomLoss(lambda p, y: (np.cos(p - y), -np.sin(p - y), -np.cos(p - y)))
    Phi = rng.standard_normal((200, 2))
    fo = rc.FeatureObjective(X, Phi, y, loss=cos, sample_weight=sw)
    z = rng.standard_normal(fo.n_params)
    A, B, C, g = ref.stats(X, Phi, y, z, loss="squared", head="residual", sample_weight=sw)
    p = X @ z[:3] + Phi @ (z[3:].reshape(3, 2).T @ z[:3])
    q = -np.cos(p - y) * sw / sw.sum()
    U = X + Phi @ z[3:].reshape(3, 2).T
    assert rel_err(fo.stats(z).A, U.T @ (q[:, None] * U)) < 1e-12
