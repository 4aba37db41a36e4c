"""Build the Cython kernels of resnet_core from src/.

Environment switches:

- ``RESNET_CORE_DEBUG=1``: bounds and initialisation checks on in the kernels (slow; the
  tests can run against such a build to catch an indexing error as an exception).
- ``RESNET_CORE_PORTABLE=1``: no ``-march=native`` (for a wheel run on other machines).  On
  x86-64 with gcc 12 or later the elementwise loops (src/rc_elementwise.h) are compiled for
  x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and the loader picks the
  best one the CPU runs (``target_clones``); the rest of the code is baseline x86-64.
- ``RESNET_CORE_MARCH=LEVEL``: ``-march=LEVEL`` instead of ``-march=native``, for example
  ``x86-64-v3`` for an AVX2 build on an AVX-512 machine (what most users' machines run) or
  ``x86-64-v2``.  The build is redone whenever these flags change.

``resnet_core.build_info()`` reports the flags of the build and the level that runs.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("RESNET_CORE_DEBUG", "0") == "1"
PORTABLE = os.environ.get("RESNET_CORE_PORTABLE", "0") == "1"
MARCH = os.environ.get("RESNET_CORE_MARCH", "")

# What target_clones needs (gcc 12: the x86-64-vN names in it).
_CLONES_TEST = textwrap.dedent(
    """
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    static int f(const double* x) { return x[0] > 0; }
    int main(void) { double x[1] = {1}; __builtin_cpu_init();
      return f(x) && __builtin_cpu_supports("x86-64-v3") >= 0 ? 0 : 1; }
    """
)


def _compiles(flags, code=None):
    """True when the C compiler accepts ``flags`` on ``code`` (default: a small OpenMP
    program)."""
    code = code or textwrap.dedent(
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
# -ffp-contract=fast: fused multiply-adds in the polynomials and elementwise loops (ISO C
# mode, -std=c99, turns contraction off otherwise).  -fno-trapping-math: gcc may compute
# both sides of a select (`x < -708 ? -708 : ...`) without a branch; without it the
# elementwise loops vectorise only with AVX-512's masks (floating-point exceptions are
# never read; no value changes).
compile_args = ["-O3", "-std=c99", "-ffp-contract=fast", "-fno-trapping-math"] + openmp
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
if MARCH:
    if PORTABLE:
        sys.exit("setup.py: RESNET_CORE_MARCH and RESNET_CORE_PORTABLE=1 exclude each other")
    if not _compiles(openmp + [f"-march={MARCH}"]):
        sys.exit(f"setup.py: the C compiler rejects RESNET_CORE_MARCH={MARCH!r} "
                 "(expected a -march value such as x86-64-v3)")
    compile_args.append(f"-march={MARCH}")
elif PORTABLE:
    if _compiles(openmp, _CLONES_TEST):
        macros.append(("RC_DISPATCH", "1"))
    else:
        sys.stderr.write("\n*** NOTE: no target_clones (gcc >= 12 on x86-64): the portable "
                         "build's elementwise loops are baseline code only. ***\n\n")
elif _compiles(openmp + ["-march=native"]):
    compile_args.append("-march=native")
if DEBUG:
    compile_args = ["-O0", "-g", "-std=c99"] + openmp
macros.append(("RC_COMPILE_FLAGS", '"' + " ".join(compile_args) + '"'))

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
    # Headers reached only through rc_elementwise.h (Cython does not see them), and the
    # skeleton both modules include: a change to any of them rebuilds both.
    depends=["src/rc_elementwise.h", "src/rc_elementwise_impl.h", "src/rc_math.h",
             "src/_pass.pxi", "src/_mlp.pxi"],
    extra_compile_args=compile_args,
    extra_link_args=openmp,
    define_macros=macros,
)
# Both modules include src/_mlp.pxi (the MLP) and src/_pass.pxi (the skeleton of a pass):
# _kernels for scalar outputs, _vkernels for c outputs.
extensions = [
    Extension("resnet_core._kernels", ["src/_kernels.pyx"], **common),
    Extension("resnet_core._vkernels", ["src/_vkernels.pyx"], **common),
    # the linear baseline's Gram pass (src/rc_margin.h)
    Extension("resnet_core._margin_pass", ["src/_margin_pass.pyx"],
              **{**common, "depends": common["depends"] + ["src/rc_margin.h"]}),
]

class BuildExt(build_ext):
    """build_ext that rebuilds every extension when the flags differ from the last build's
    (setuptools alone looks at file times only, so a new RESNET_CORE_MARCH would be
    ignored)."""

    def run(self):
        stamp = os.path.join("build", "resnet-core-flags.txt")
        flags = repr((compile_args, macros))
        try:
            with open(stamp) as fh:
                self.force = self.force or fh.read() != flags
        except OSError:
            self.force = True
        super().run()
        os.makedirs("build", exist_ok=True)
        with open(stamp, "w") as fh:
            fh.write(flags)


setup(
    cmdclass={"build_ext": BuildExt},
    # A debug build generates its own C (other directives) beside, never over, the normal C.
    ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"],
                          **({"build_dir": os.path.join("build", "cython-debug"),
                              "force": True} if DEBUG else {})),
)
