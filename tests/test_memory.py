"""Memory does not grow with n beyond the data: the kernels stream over chunks."""

import tracemalloc

import numpy as np

from resnet_core.bench.compare import resnet_core_memory_work


def test_peak_memory_is_a_small_fraction_of_X():
    rng = np.random.default_rng(0)
    n, d = 200_000, 32
    X = rng.standard_normal((n, d))
    y = np.where(rng.random(n) > 0.5, 1.0, -1.0)
    tracemalloc.start()
    try:
        resnet_core_memory_work(X, y, (32, 32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # n-vectors (weights, l', l'' of the objective and of its partial) and small arrays;
    # NumPy/PyTorch/JAX hold about 4 x size(X) of activations for one value+gradient.
    assert peak < 0.25 * X.nbytes + 1 * 2**20, peak / X.nbytes
