"""The benchmark problems: the reference size of the issues, and a small one for CI smoke
runs (the sizes and data of ``resnet-core bench``)."""

from __future__ import annotations

import pytest

import resnet_core as rc
from resnet_core.bench.compare import REFERENCE, SMALL
from resnet_core.bench.frameworks import make_data

SIZES = [pytest.param(SMALL, id="small"),
         pytest.param(REFERENCE, id="reference", marks=pytest.mark.slow)]


def make_objective(n: int, d: int, widths):
    """The reference objective (logistic loss, tanh, residual head) and a start point."""
    X, y = make_data(n, d, seed=0)
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    return obj, obj.init(0)
