"""``python benchmarks/compare.py [--quick] [--memory] [--repeat N]``: the comparison of
resnet-core with NumPy, PyTorch and JAX, as ``resnet-core bench`` prints it (the code is in
the package, :mod:`resnet_core.bench.compare`, so that an installed package runs it too)."""

import sys

from resnet_core.bench.compare import main

if __name__ == "__main__":
    sys.exit(main())
