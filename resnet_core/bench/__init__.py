"""The comparison of resnet-core with NumPy, PyTorch and JAX (``resnet-core bench``).

- :mod:`.compare`: the runner and its table;
- :mod:`.frameworks`: the objective in NumPy (hand-written derivatives), PyTorch and JAX;
- :mod:`.frameworks_pgd`: perturbed gradient descent on Example 1 in JAX, PyTorch, numba;
- :mod:`.timing`: the median timer and fresh points (shared with the pytest-benchmark
  suites in ``benchmarks/``).

PyTorch and JAX are optional (``pip install 'resnet-core[compare]'``); the core never
imports this package.
"""
