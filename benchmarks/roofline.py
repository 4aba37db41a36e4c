"""``python benchmarks/roofline.py [--quick] [--repeat N]``: flops, bytes and achieved rates
of each pass of the reference problem against this machine's gemm rate (the code is in the
package, :mod:`resnet_core.bench.roofline`)."""

import sys

from resnet_core.bench.roofline import main

if __name__ == "__main__":
    sys.exit(main())
