"""Shared fixtures: random problems and tolerances."""

import os
import sys
import types

import numpy as np
import pytest
from hypothesis import settings

# CI replays a fixed set of examples (no flaky landing); elsewhere hypothesis explores anew.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


LOSSES = ("squared", "logistic", "smoothed_hinge")
ACTIVATIONS = ("tanh", "relu", "softplus", "sigmoid", "identity")
HEADS = ("residual", "skip")


def make_data(rng, n, d, loss, weighted=True):
    """Inputs, targets suited to ``loss`` (labels +-1 for the margin losses) and weights."""
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    else:
        y = np.where(rng.standard_normal(n) + X[:, 0] > 0, 1.0, -1.0)
    sw = rng.random(n) + 0.1 if weighted else None
    return X, y, sw


def random_point(obj, rng, scale=0.3):
    """A point off the initialisation (non-zero biases, so no ReLU sits on its kink)."""
    return obj.init(int(rng.integers(1 << 31))) + scale * rng.standard_normal(obj.n_params)


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def tqdm_bars(monkeypatch):
    """tqdm replaced by a recorder: the list of the bars made (``desc``, ``total``, ``n``
    updated so far, ``closed``)."""
    bars = []

    class Bar:
        def __init__(self, total=None, desc=None, unit=None, **_):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=Bar))
    return bars
