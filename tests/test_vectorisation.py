"""The kernels' per-element and per-sample loops vectorise at every x86-64 level.

src/rc_elementwise.h holds them (activations with their derivatives, losses with theirs, the
products of back-propagation, the softmax's exponentials).  Each loop is compiled alone,
with the build's own flags, for x86-64-v2 (SSE4.2), x86-64-v3 (AVX2 + FMA) and x86-64-v4
(AVX-512), and must hold packed floating-point arithmetic (``v...pd`` / ``v...ps``): a loop
that falls back to scalar code on some level (a store behind a pointer test, possible
aliasing, a branch the compiler cannot turn into a select) fails here, naming the loop and
the level.  Skipped where the C compiler is not gcc 11+ or the machine is not x86-64.

src/rc_margin.h's row loops (the linear baseline's Gram pass: dot products, ``g += X^T r``,
the Hessian rows) are checked the same way, with OpenMP as the build has it (their sums are
``omp simd`` reductions, kept in order without it), and each must also be a loop gcc
reports vectorised with the level's full vectors (16 bytes at v2, 32 at v3 and v4): without
their ``omp simd`` the float32 rows' sums are packed across statements only, which the
packed-instruction count alone would pass.  (The float64 rows' four sums gcc then packs
across the four rows, in a loop it reports vectorised: neither measure tells that from the
``omp simd`` loop over features.)
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


def _margin_loops() -> dict[str, str]:
    """C wrappers, each around one function of rc_margin.h (``rc_`` + the name)."""
    out = {}
    for sfx, t in (("_f64", "double"), ("_f32", "float")):
        for fn in ("dots", "abs", "sq", "axpy"):
            out[f"margin_{fn}{sfx}"] = (
                f"(ptrdiff_t m, ptrdiff_t d, const {t}* X, const double* v, double* o)"
                f" {{ rc_margin_{fn}{sfx}(m, d, X, v, o); }}")
        for usfx, u in (("_f64", "double"), ("_f32", "float")):
            out[f"margin_rows{sfx}_to{usfx}"] = (
                f"(ptrdiff_t m, ptrdiff_t d, const {t}* X, const double* q, {u}* Z)"
                f" {{ rc_margin_rows{sfx}_to{usfx}(m, d, X, q, Z); }}")
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


def _flags(openmp: bool = False) -> list[str]:
    """The kernels' C flags without the target (-march), and without OpenMP unless
    ``openmp`` (then the build must have it)."""
    build = rc.build_info()["compile_args"]
    flags = [f for f in build if not f.startswith("-march=") and f != "-fopenmp"]
    if "-O3" not in flags:
        pytest.skip(f"not an optimised build ({' '.join(flags)})")
    if openmp:
        if "-fopenmp" not in build:
            pytest.skip("a build without OpenMP: rc_margin.h's omp simd reductions stay "
                        "in order (scalar)")
        flags.append("-fopenmp")
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


def _source(loops: dict[str, str], header: str = "rc_elementwise.h") -> str:
    body = "\n".join(f"void t_{name}{sig}" for name, sig in loops.items())
    return f'#include "{header}"\n{body}\n'


def _packed_in(counts: dict[str, int], name: str) -> int:
    """Packed instructions of wrapper ``t_name`` and of ``rc_name`` where gcc kept it a
    function of its own (OpenMP's simd loops are not inlined; ``.constprop`` clones)."""
    return counts.get(f"t_{name}", 0) + sum(
        c for label, c in counts.items() if re.fullmatch(rf"rc_{name}(\.\w+)*", label))


def _loop_vector_bytes(cc: str, flags: list[str], header: str, sig: str) -> int:
    """The widest vectors of a loop gcc reports vectorised in one wrapper compiled alone
    (0: none; blocks packed across statements do not count)."""
    info = subprocess.run([cc, *flags, "-fopt-info-vec-optimized", f"-I{SRC}", "-x", "c",
                           "-S", "-o", os.devnull, "-"], input=_source({"one": sig}, header),
                          capture_output=True, text=True, check=True).stderr
    return max(map(int, re.findall(r"loop vectorized using (\d+) byte vectors", info)),
               default=0)


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


#: Bytes of the widest vectors gcc uses by default at each level (v4: 256-bit or more)
VECTOR_BYTES = {"x86-64-v2": 16, "x86-64-v3": 32, "x86-64-v4": 32}


@pytest.mark.parametrize("level", LEVELS)
def test_every_margin_loop_vectorises(level):
    cc, loops = _compiler(), _margin_loops()
    flags = [*_flags(openmp=True), f"-march={level}"]
    counts = _packed_counts(cc, flags, _source(loops, "rc_margin.h"))
    scalar = [name for name in loops if _packed_in(counts, name) == 0]
    assert not scalar, (f"scalar code at {level} in {scalar}: compile src/rc_margin.h "
                        f"with -march={level} -fopenmp -fopt-info-vec-missed to see why")
    narrow = {name: b for name, sig in loops.items()
              if (b := _loop_vector_bytes(cc, flags, "rc_margin.h", sig)) < VECTOR_BYTES[level]}
    assert not narrow, (f"at {level} these loops of src/rc_margin.h are not vectorised with "
                        f"{VECTOR_BYTES[level]}-byte vectors (widest, bytes): {narrow}")


def test_the_margin_check_sees_scalar_code():
    """rc_margin.h with the vectoriser off and its omp simd ignored (no OpenMP): every loop
    scalar by both measures, so the check can fail."""
    cc, loops = _compiler(), _margin_loops()
    flags = [*_flags(), "-march=x86-64-v3", "-fno-tree-vectorize"]
    counts = _packed_counts(cc, flags, _source(loops, "rc_margin.h"))
    assert all(_packed_in(counts, name) == 0 for name in loops)
    assert all(_loop_vector_bytes(cc, flags, "rc_margin.h", sig) == 0
               for sig in loops.values())


@pytest.mark.parametrize("header, fns", [
    ("rc_elementwise.h", ("rc_act_f64", "rc_act_f32", "rc_loss_f32")),
    ("rc_margin.h", ("rc_margin_dots_f64", "rc_margin_dots_f32", "rc_margin_axpy_f32",
                     "rc_margin_rows_f32_to_f64")),
])
def test_portable_build_clones_each_level(header, fns):
    """With RC_DISPATCH (the portable build) the entry points exist for x86-64-v4, v3 and
    the baseline, behind one resolver (the headers clone from gcc 12 on)."""
    cc = _compiler(12)
    src = (f'#include "{header}"\n'
           f"void* keep[] = {{{', '.join(f'(void*) {fn}' for fn in fns)}}};\n")
    asm = subprocess.run([cc, *_flags(), "-DRC_DISPATCH", f"-I{SRC}", "-x", "c", "-S",
                          "-o", "-", "-"], input=src, capture_output=True, text=True,
                         check=True).stdout
    for fn in fns:
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
