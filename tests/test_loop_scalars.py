"""The compiled loops' copies of the losses and activations (resnet_core._loop_scalars) are
the kernels', value for value."""

import numpy as np
import pytest

from resnet_core import _kernels, _loop_scalars

MARGINS = np.concatenate([np.linspace(-6, 6, 1201), [0.0, 0.5, 1.0, 1.5, -0.5, 1e4, -1e4,
                                                    800.0, -800.0, 1e-300, -1e-300]])


@pytest.mark.parametrize("name", sorted(_kernels.LOSS_CODES))
@pytest.mark.parametrize("labels", ["binary", "real"])
def test_numba_losses_are_the_kernels(name, labels, rng):
    """``loss_d1`` against ``_kernels.loss_derivatives`` on a grid of margins (1e4 and -1e4
    included), labels -1/+1 and real labels (the formulas are defined for any y)."""
    code = _kernels.LOSS_CODES[name]
    p = np.tile(MARGINS, 2)
    y = (np.repeat([1.0, -1.0], MARGINS.size) if labels == "binary"
         else rng.uniform(-3, 3, p.size))
    l, d1, d2 = (np.empty_like(p) for _ in range(3))
    _kernels.loss_derivatives(code, p, y, l, d1, d2)
    mine = np.array([_loop_scalars.loss_d1(code, pi, yi) for pi, yi in zip(p, y)])
    assert np.all(np.isfinite(mine))
    # a few ulps of the value and of the margin ``1 + |y p|`` times the slope: the kernels'
    # branch-free forms round the margin differently (the hinge's ``s = 1 - y p + h``)
    u, m = np.finfo(float).eps, 1.0 + np.abs(y * p)
    assert np.all(np.abs(mine[:, 0] - l) <= 4 * u * (np.abs(l) + m * np.abs(d1)))
    assert np.all(np.abs(mine[:, 1] - d1) <= 4 * u * (np.abs(d1) + m * np.abs(d2)))


def test_a_code_without_a_copy_gives_nan():
    """A loss the loops do not know stops them (status 2) instead of taking another's form."""
    unknown = max(_kernels.LOSS_CODES.values()) + 1
    assert np.isnan(_loop_scalars.loss_d1(unknown, 0.5, 1.0)).all()
    assert np.isnan(_loop_scalars.loss_d1(_kernels.LOSS_CODE_EXTERNAL, 0.5, 1.0)).all()


@pytest.mark.parametrize("name", sorted(_kernels.ACTIVATION_CODES))
def test_numba_activations_are_the_kernels(name, rng):
    code = _kernels.ACTIVATION_CODES[name]
    z = np.concatenate([4 * rng.standard_normal(200), np.linspace(-40, 40, 801),
                        [0.0, 30.0, -30.0, 800.0, -800.0]])
    h, d1, d2 = z.copy(), np.empty_like(z), np.empty_like(z)
    _kernels.activation(code, h, d1, d2)
    mine = np.array([_loop_scalars.act_d1(code, zi) for zi in z])
    np.testing.assert_allclose(mine[:, 0], h, rtol=4e-15, atol=1e-300)
    # ``1 - tanh^2`` cancels near |tanh| = 1: a few ulps of 1, absolute
    np.testing.assert_allclose(mine[:, 1], d1, rtol=4e-15, atol=1e-15)


def test_project():
    x = np.array([3.0, 4.0, 1.0])
    assert _loop_scalars.project(x, 0, 2, 10.0) == 5.0 and x[0] == 3.0  # inside: no-op
    assert _loop_scalars.project(x, 0, 2, 1.0) == 1.0
    np.testing.assert_allclose(x, [0.6, 0.8, 1.0])
    assert _loop_scalars.project(x, 0, 3, -1.0) == pytest.approx(np.sqrt(2.0))  # no ball
