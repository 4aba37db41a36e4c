"""The compiled loops' scalars (numba): random numbers, the built-in losses and activations
with their first derivative, the projection onto a ball.

Randomness is a splitmix64 stream per run (state in a uint64 array the run owns), so a
run's result depends on its seed only, never on the thread that executes it.

Losses and activations repeat the formulas of the kernels (``src/rc_elementwise.h``,
``src/_activation.pxd``): ``tests/test_loop_scalars.py`` checks them value for value against
``_kernels.loss_derivatives`` and ``_kernels.activation`` over a grid of margins (1e4 and
-1e4 included, labels -1/+1 and real).  Their codes are read from the kernels
(``_kernels.LOSS_CODES``, ``ACTIVATION_CODES``) and frozen by numba into the machine code it
caches: ``resnet_core._loops.check_codes`` recompiles when they changed.  A loss without a
kernel code has no copy here: the loops never take it (``loss_d1`` gives NaN, which stops a
loop with status 2).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import _kernels
from .losses import SMOOTHING

# -- random numbers ------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, error_model="numpy")
def seed_state(seed):
    """A fresh splitmix64 state array for ``seed``."""
    st = np.empty(1, dtype=np.uint64)
    st[0] = np.uint64(seed) * _MIX2 + _GOLDEN
    return st


@numba.njit(cache=True, error_model="numpy")
def next_uniform(st):
    """Uniform on (0, 1]: the top 53 bits of the next splitmix64 output."""
    st[0] += _GOLDEN
    z = st[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 1.0) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, error_model="numpy")
def next_normal(st):
    """Standard normal by Box-Muller."""
    u1 = next_uniform(st)
    u2 = next_uniform(st)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(cache=True, error_model="numpy")
def add_ball_sample(x, r, st):
    """``x += xi`` with ``xi`` uniform in the ball of radius ``r``: a normalised Gaussian
    direction times ``r U^(1/dim)``."""
    dim = x.shape[0]
    xi = np.empty(dim)
    norm = 0.0
    for j in range(dim):
        xi[j] = next_normal(st)
        norm += xi[j] * xi[j]
    scale = r * next_uniform(st) ** (1.0 / dim) / math.sqrt(norm)
    for j in range(dim):
        x[j] += scale * xi[j]


# -- losses and activations (codes of the kernels) --------------------------------------

SQUARED, LOGISTIC, HINGE = (_kernels.LOSS_CODES[name]
                            for name in ("squared", "logistic", "smoothed_hinge"))
TANH, RELU, SIGMOID, SOFTPLUS = (_kernels.ACTIVATION_CODES[name]
                                 for name in ("tanh", "relu", "sigmoid", "softplus"))
#: The codes frozen into this module's machine code.
CODES = (SQUARED, LOGISTIC, HINGE, TANH, RELU, SIGMOID, SOFTPLUS)
_H = SMOOTHING


@numba.njit(cache=True, inline="always", error_model="numpy")
def loss_d1(code, p, y):
    """``(l(p; y), dl/dp)`` of a loss compiled into the kernels (NaN for another code)."""
    if code == SQUARED:
        return 0.5 * (p - y) * (p - y), p - y
    if code == LOGISTIC:
        z = y * p
        e = math.exp(-abs(z))
        if z >= 0:
            return math.log1p(e), -y * e / (1.0 + e)
        return -z + math.log1p(e), -y / (1.0 + e)
    if code != HINGE:
        return math.nan, math.nan
    h = _H  # smoothed hinge, see resnet_core.losses
    t = 1.0 - y * p
    if t <= -h:
        return 0.0, 0.0
    if t >= h:
        return t, -y
    s = t + h
    if s <= h:
        return s * s * s / (6 * h * h), -y * s * s / (2 * h * h)
    u = 2 * h - s
    return s - h + u * u * u / (6 * h * h), -y * (1.0 - u * u / (2 * h * h))


@numba.njit(cache=True, inline="always", error_model="numpy")
def act_d1(code, z):
    """``(act(z), act'(z))``."""
    if code == TANH:
        h = math.tanh(z)
        return h, 1.0 - h * h
    if code == RELU:
        return (z, 1.0) if z > 0 else (0.0, 0.0)
    if code == SIGMOID:
        e = math.exp(-abs(z))
        s = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return s, s * (1.0 - s)
    if code == SOFTPLUS:
        e = math.exp(-abs(z))
        s = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return max(z, 0.0) + math.log1p(e), s
    return z, 1.0



# -- projection ----------------------------------------------------------------------

@numba.njit(cache=True, error_model="numpy")
def project(x, lo, hi, radius):
    """Scale ``x[lo:hi]`` onto the ball of ``radius`` (no-op inside it, or radius < 0);
    return the norm of the result."""
    nrm = 0.0
    for j in range(lo, hi):
        nrm += x[j] * x[j]
    nrm = math.sqrt(nrm)
    if radius >= 0 and nrm > radius:
        f = radius / nrm
        for j in range(lo, hi):
            x[j] *= f
        return radius
    return nrm
