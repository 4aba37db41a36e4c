"""Build the Cython kernels of resnet_core from src/.

Environment switches:

- ``RESNET_CORE_DEBUG=1``: bounds and initialisation checks on in the kernels (slow; the
  tests can run against such a build to catch an indexing error as an exception).
- ``RESNET_CORE_PORTABLE=1``: no ``-march=native`` (for a wheel run on other machines).
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RESNET_CORE_DEBUG", "0") == "1"
PORTABLE = os.environ.get("RESNET_CORE_PORTABLE", "0") == "1"


def _compiles(flags):
    """True when the C compiler accepts ``flags`` on a small OpenMP program."""
    code = textwrap.dedent(
        """
        #ifdef _OPENMP
        #include <omp.h>
        #endif
        int main(void) { int s = 0;
        #pragma omp parallel for reduction(+:s)
          for (int i = 0; i < 8; i++) s += i;
        #ifdef _OPENMP
          s += omp_get_max_threads();
        #endif
          return s > 0 ? 0 : 1; }
        """
    )
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as fh:
            fh.write(code)
        cmd = [cc, src, "-o", os.path.join(tmp, "t.out"), *flags]
        return subprocess.run(cmd, capture_output=True).returncode == 0


openmp = ["-fopenmp"] if _compiles(["-fopenmp"]) else []
if not openmp:
    sys.stderr.write(
        "\n*** WARNING: the C compiler does not support OpenMP: resnet_core's kernels are "
        "built SERIAL (n_threads is ignored). Install a compiler with OpenMP (gcc). ***\n\n"
    )
compile_args = ["-O3", "-std=c99"] + openmp
if not PORTABLE and _compiles(openmp + ["-march=native"]):
    compile_args.append("-march=native")
if DEBUG:
    compile_args = ["-O0", "-g", "-std=c99"] + openmp

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "cpow": True,
}

common = dict(
    include_dirs=[np.get_include(), "src"],
    extra_compile_args=compile_args,
    extra_link_args=openmp,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
)
# Both modules include src/_mlp.pxi: _kernels for scalar outputs, _vkernels for c outputs.
extensions = [
    Extension("resnet_core._kernels", ["src/_kernels.pyx"], **common),
    Extension("resnet_core._vkernels", ["src/_vkernels.pyx"], **common),
]

setup(
    # A debug build generates its own C (other directives) beside, never over, the normal C.
    ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"],
                          **({"build_dir": os.path.join("build", "cython-debug"),
                              "force": True} if DEBUG else {})),
)
