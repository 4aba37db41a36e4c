"""The benchmark problems: the reference size of the issues and a small one for CI smoke runs."""

from __future__ import annotations

import numpy as np

REFERENCE = dict(n=200_000, d=64, widths=(64, 64))
SMALL = dict(n=20_000, d=16, widths=(16, 16))


def make_data(n: int, d: int, seed: int = 0, dtype=np.float64):
    """Gaussian inputs and +-1 labels from a noisy nonlinear rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    score = np.tanh(X[:, 0] * X[:, 1]) + X[:, 2] + 0.5 * rng.standard_normal(n)
    return X, np.where(score > 0, 1.0, -1.0).astype(dtype)


def make_objective(n: int, d: int, widths, seed: int = 0, **kw):
    """The reference objective: logistic loss, tanh, residual head, and a start point."""
    import resnet_core as rc

    X, y = make_data(n, d, seed)
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh", **kw)
    return obj, obj.init(seed)


def alternating(x, step: float = 1e-3):
    """A function returning, call after call, ``x`` and ``x + step`` in turn: every
    evaluation is at a fresh point, so no cache (of the package or of anyone) can help."""
    pts, state = [x, x + step], [0]

    def nxt():
        state[0] ^= 1
        return pts[state[0]]

    return nxt
