"""The comparison of resnet-core with NumPy, PyTorch and JAX (``resnet-core bench``).

- :mod:`.compare`: the runner and its table;
- :mod:`.frameworks`: the objective in NumPy (hand-written derivatives), PyTorch and JAX;
- :mod:`.frameworks_pgd`: perturbed gradient descent on Example 1 in JAX, PyTorch, numba;
- :mod:`.roofline`: flops and bytes of each pass, achieved rates against the machine's gemm
  rate (``benchmarks/roofline.py``, docs/performance.md);
- :mod:`.environment`: the date, machine, versions and thread settings printed with each
  table, and the README's generated speed block (``compare.py --readme``);
- :mod:`.timing`: the median timer, alternating blocks and fresh points (shared with the
  pytest-benchmark suites in ``benchmarks/``).

PyTorch and JAX are optional (``pip install 'resnet-core[compare]'``); the core never
imports this package.
"""
