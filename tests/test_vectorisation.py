"""The kernels' per-element and per-sample loops vectorise at every x86-64 level.

src/rc_elementwise.h holds them (activations with their derivatives, losses with theirs, the
products of back-propagation, the softmax's exponentials).  Each loop is compiled alone,
with the build's own flags, for x86-64-v2 (SSE4.2), x86-64-v3 (AVX2 + FMA) and x86-64-v4
(AVX-512), and must hold packed floating-point arithmetic (``v...pd`` / ``v...ps``): a loop
that falls back to scalar code on some level (a store behind a pointer test, possible
aliasing, a branch the compiler cannot turn into a select) fails here, naming the loop and
the level.  Skipped where the C compiler is not gcc 11+ or the machine is not x86-64.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import resnet_core as rc

SRC = Path(__file__).resolve().parents[1] / "src"
LEVELS = ("x86-64-v2", "x86-64-v3", "x86-64-v4")

#: Packed floating-point arithmetic, compares and conversions (not the bit logic and
#: blends that scalar code also runs on vector registers).
PACKED = re.compile(r"^v?(add|sub|mul|div|sqrt|max|min|cmp\w*|round|"
                    r"fn?m(add|sub)\d{3}|cvt\w*)p[sd]$")


def _loops() -> dict[str, str]:
    """C wrappers, each around one loop of rc_elementwise.h (its NULL pattern fixed)."""
    out = {}
    for sfx, t in (("_f64", "double"), ("_f32", "float")):
        for act in ("tanh", "relu", "sigmoid", "softplus"):  # identity: fills, no arithmetic
            pats = {"z": "NULL, NULL", "zd1": "D1, NULL", "zd1d2": "D1, D2"}
            for pat, args in pats.items():
                out[f"act_{act}{sfx}_{pat}"] = (
                    f"({t}* restrict Z, {t}* restrict D1, {t}* restrict D2, ptrdiff_t n)"
                    f" {{ rc_{act}_loops{sfx}(Z, {args}, n); }}")
        for loss in ("squared", "logistic", "smoothed_hinge"):
            out[f"loss_{loss}{sfx}"] = (
                f"(ptrdiff_t n, const {t}* p, const {t}* y, const {t}* s, {t}* r, {t}* q,"
                f" {t}* l, double* lv) {{ rc_{loss}_block{sfx}(n, p, y, s, r, q, l, lv); }}")
        out[f"mul{sfx}"] = (f"(ptrdiff_t n, const {t}* a, const {t}* b, {t}* o)"
                            f" {{ rc_mul{sfx}(n, a, b, o); }}")
        out[f"scale{sfx}"] = f"(ptrdiff_t n, {t}* g, const {t}* d) {{ rc_scale{sfx}(n, g, d); }}"
        out[f"rdelta{sfx}"] = (f"(ptrdiff_t n, {t}* a, {t}* b, const {t}* c, const {t}* d,"
                               f" const {t}* e) {{ rc_rdelta{sfx}(n, a, b, c, d, e); }}")
        out[f"softmax_exp{sfx}"] = (f"(ptrdiff_t n, double* e)"
                                    f" {{ rc_exp_inplace{sfx}(n, e); }}")
    return out


def _compiler(major: int = 11) -> str:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"not an x86-64 machine ({platform.machine()})")
    cc = os.environ.get("CC", "gcc")
    path = shutil.which(cc)
    if path is None:
        pytest.skip(f"no C compiler {cc!r} on PATH")
    version = subprocess.run([path, "-dumpfullversion", "-dumpversion"], capture_output=True,
                             text=True).stdout.strip()
    banner = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    if "Free Software Foundation" not in banner or int(version.split(".")[0] or 0) < major:
        pytest.skip(f"{cc} is not gcc {major} or later (the check reads gcc's assembly)")
    return path


def _flags() -> list[str]:
    """The kernels' C flags without the target (-march) or OpenMP."""
    flags = [f for f in rc.build_info()["compile_args"]
             if not f.startswith("-march=") and f != "-fopenmp"]
    if "-O3" not in flags:
        pytest.skip(f"not an optimised build ({' '.join(flags)})")
    return flags


def _packed_counts(cc: str, flags: list[str], source: str) -> dict[str, int]:
    """Packed floating-point instructions in each function of ``source``'s assembly."""
    asm = subprocess.run([cc, *flags, f"-I{SRC}", "-x", "c", "-S", "-o", "-", "-"],
                         input=source, capture_output=True, text=True, check=True).stdout
    counts, name = {}, None
    for line in asm.splitlines():
        label = re.match(r"^([A-Za-z_][\w.]*):", line)
        if label:
            name = label.group(1)
            counts.setdefault(name, 0)
        elif name and line.startswith("\t") and not line.startswith("\t."):
            counts[name] += bool(PACKED.match(line.split()[0]))
    return counts


def _source(loops: dict[str, str]) -> str:
    body = "\n".join(f"void t_{name}{sig}" for name, sig in loops.items())
    return f'#include "rc_elementwise.h"\n{body}\n'


@pytest.mark.parametrize("level", LEVELS)
def test_every_loop_vectorises(level):
    cc, loops = _compiler(), _loops()
    counts = _packed_counts(cc, [*_flags(), f"-march={level}"], _source(loops))
    scalar = [name for name in loops if counts.get(f"t_{name}", 0) == 0]
    assert not scalar, (f"scalar code at {level} in {scalar}: compile src/rc_elementwise.h "
                        f"with -march={level} -fopt-info-vec-missed to see why")


def test_the_check_sees_scalar_code():
    """The same loops with the vectoriser off count as scalar: the check can fail."""
    cc, loops = _compiler(), _loops()
    counts = _packed_counts(cc, [*_flags(), "-march=x86-64-v3", "-fno-tree-vectorize"],
                            _source(loops))
    assert all(counts.get(f"t_{name}", 0) == 0 for name in loops)


def test_portable_build_clones_each_level():
    """With RC_DISPATCH (the portable build) the entry points exist for x86-64-v4, v3 and
    the baseline, behind one resolver (rc_elementwise.h clones from gcc 12 on)."""
    cc = _compiler(12)
    src = ('#include "rc_elementwise.h"\n'
           "void* keep[] = {(void*) rc_act_f64, (void*) rc_act_f32, (void*) rc_loss_f32};\n")
    asm = subprocess.run([cc, *_flags(), "-DRC_DISPATCH", f"-I{SRC}", "-x", "c", "-S",
                          "-o", "-", "-"], input=src, capture_output=True, text=True,
                         check=True).stdout
    for fn in ("rc_act_f64", "rc_act_f32", "rc_loss_f32"):
        for clone in ("arch_x86_64_v4", "arch_x86_64_v3", "default"):
            assert re.search(rf"^{fn}\.{clone}[\w.]*:", asm, re.M), (fn, clone)
        assert re.search(rf"{fn}\.resolver", asm), fn


def test_build_info_states_the_levels():
    info = rc.build_info()
    names = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4")
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert info["build_level"] in names and info["runtime_level"] in names
        assert names.index(info["runtime_level"]) >= names.index(info["build_level"])
    assert info["build_level"] in info["summary"] and info["runtime_level"] in info["summary"]
    if info["march"] is not None:  # a build for one level does not dispatch
        assert not info["dispatch"]
    if not info["dispatch"]:
        assert info["runtime_level"] == info["build_level"]
