"""The tracked benchmark suite: throughput of every tracked figure, calibrated by the machine,
recorded in ``benchmarks/history/`` (``make bench``).

    python benchmarks/tracked.py [--profile quick|full] [--rounds N] [--out DIR] [--dry-run]

One run measures, in one process:

- the **calibration** (:func:`calibration_functions`): numpy matmul on the kernels' chunk
  shapes (``128 x k`` by ``k x k``, ``k`` the sizes' widths 16 and 64, float64 and float32,
  one chunk product per kernel thread), a one-thread memory read rate and a one-thread
  scalar rate (a compiled multiply-add chain); every rate is sampled before each group of
  figures and at the end (the run's ``calibration``: medians);
- the **figures** (``*_figures``): each a throughput (samples, steps or evaluations per
  second) at fresh points, over ``rounds`` rounds of one warm-up call and ``block`` timed
  calls; the group's calibration product takes its turn in the same rounds.  Stored: the
  median throughput and its interquartile spread (``value``, ``spread``), and the median of
  each sample divided by the calibration sample of its round and slot, with its spread
  (``relative``, ``relative_spread``; docs/performance.md, "Tracked throughput").

The file written is ``DIR/<machine>/<UTC time>_<commit>.json``: the machine fingerprint
(:func:`fingerprint`), the commit of the ``resnet_core`` that was imported, the calibration
and the figures; ``<machine>`` is a short hash of the fingerprint.

This script imports only ``resnet_core``'s public API, numpy, scipy, numba and threadpoolctl
(scikit-learn for the real data sets, dask for one figure), so that it runs against older
commits of the package (``benchmarks/backfill.sh``): a figure whose API is missing there is
recorded as missing, with the reason.  For the same reason it does not import
``resnet_core.bench`` (whose CPU model and chunk-gemm pieces it mirrors).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import resnet_core as rc

#: The sizes of the issues: the reference problem and the small one.
SIZES = {"small": dict(n=20_000, d=16, widths=(16, 16)),
         "ref": dict(n=200_000, d=64, widths=(64, 64))}
#: Per profile: rounds, timed calls per round, and the figures measured at the reference size
#: (the quick profile, used by the backfill, keeps the reference size for the passes only).
PROFILES = {"quick": dict(rounds=5, block=2, ref=("passes",), pgd_steps=2_000_000,
                          batch_steps=10_000, escape_steps=300, lbfgs_iter=100),
            "full": dict(rounds=9, block=3, ref=("passes", "certificate", "vector", "baseline"),
                         pgd_steps=5_000_000, batch_steps=20_000, escape_steps=2_000,
                         lbfgs_iter=100)}
CHUNK = 128  # the kernels' default chunk (rows per product)
#: Work of one calibration call: gemm flops per chunk shape, bytes read, multiply-adds.
CALIBRATION_WORK = dict(gemm=200_000_000, read=1 << 27, scalar=80_000_000)
SCHEMA = 1
#: This file's hash, read when it is imported (the code that runs, even if the file changes).
RUNNER = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10]


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- the machine ---------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _x86_level() -> str:
    """The x86-64 microarchitecture level this CPU supports (v1-v4), from its flags."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(next(line for line in fh if line.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        return "unknown"
    v2 = {"sse4_2", "ssse3", "popcnt", "cx16"}
    v3 = {"avx2", "bmi1", "bmi2", "fma", "movbe"}
    v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    level = 1
    for lvl, need in ((2, v2), (3, v2 | v3), (4, v2 | v3 | v4)):
        if need <= flags:
            level = lvl
    return f"x86-64-v{level}"


def isa_level() -> str:
    """The instruction set the kernels were built for.

    The package's own :func:`resnet_core.build_info` when it has one (``native (level)``,
    ``portable (level dispatched)`` or the ``-march`` value); else, on older commits, the
    build's rule: ``setup.py`` builds
    with ``-march=native`` unless ``RESNET_CORE_PORTABLE`` is set, so ``native (<this CPU's
    level>)``; ``unknown`` when neither can be read.
    """
    info = getattr(rc, "build_info", None)
    if callable(info):  # the package says (resnet_core.build_info: build and run-time level)
        info = info()
        if info.get("dispatch"):
            return f"portable ({info['runtime_level']})"
        march = info.get("march")
        return (f"native ({info['build_level']})" if march == "native"
                else march or f"portable ({info['build_level']})")
    setup = Path(rc.__file__).resolve().parents[1] / "setup.py"
    try:
        text = setup.read_text()
    except OSError:
        return "unknown"
    if "-march=native" in text and not os.environ.get("RESNET_CORE_PORTABLE"):
        return f"native ({_x86_level()})"
    return "unknown"


def _blas() -> dict:
    """Every loaded BLAS (numpy's, scipy's: the kernels call scipy's), in a fixed order:
    ``internal_api version (package)`` and its kernel."""
    from threadpoolctl import threadpool_info
    libs = []
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            parts = Path(lib.get("filepath", "")).parts
            owner = next((p.split(".")[0] for p in reversed(parts) if p.endswith(".libs")),
                         Path(lib.get("filepath", "?")).name)
            libs.append((f"{lib.get('internal_api')} {lib.get('version')} ({owner})",
                         str(lib.get("architecture"))))
    libs = sorted(set(libs))
    return {"blas": ", ".join(b for b, _ in libs) or "none",
            "blas_kernel": ", ".join(k for _, k in libs) or "none"}


def fingerprint(threads: int) -> dict:
    """The fields that make runs comparable: CPU model, the kernels' ISA level, cores and the
    kernels' thread count, BLAS and its kernel, numpy/scipy/numba versions; ``id`` is a short
    hash of them."""
    import numba
    import scipy
    import scipy.linalg  # noqa: F401  (its BLAS loaded, as the kernels load it)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = _blas()
    fp = {"cpu": _cpu_model(), "isa": isa_level(), "cores": cores, "threads": threads,
          "blas": blas["blas"],
          "blas_kernel": blas["blas_kernel"], "numpy": np.__version__,
          "scipy": scipy.__version__, "numba": numba.__version__,
          "python": platform.python_version()}
    fp["id"] = hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:10]
    return fp


def commit_info() -> dict:
    """The commit of the imported ``resnet_core`` (its checkout), with its date and subject;
    ``dirty`` when the checkout has uncommitted changes to tracked files."""
    root = Path(rc.__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        sha, stamp, subject = git("log", "-1", "--format=%H%x00%cI%x00%s").split("\x00")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError, ValueError):
        return {"commit": "unknown", "date": None, "subject": "", "dirty": None}
    return {"commit": sha, "date": stamp, "subject": subject[:100], "dirty": dirty,
            "package": str(root)}


# -- the calibration -----------------------------------------------------------------------
def _scalar_kernel():
    import numba

    @numba.njit(cache=False, fastmath=False)
    def chain(n, a, b):  # four dependent multiply-add chains: the scalar rate of one core
        x0, x1, x2, x3 = 0.1, 0.2, 0.3, 0.4
        for _ in range(n):
            x0 = x0 * a + b
            x1 = x1 * a + b
            x2 = x2 * a + b
            x3 = x3 * a + b
        return x0 + x1 + x2 + x3
    chain(10, 0.5, 0.25)
    return chain


def calibration_functions(threads: int) -> dict:
    """``{name: (function, work)}``; a rate is ``work / seconds``: GFLOP/s of the chunk
    products per dtype and width, GB/s of a one-thread read, G multiply-adds/s of one core."""
    from threadpoolctl import ThreadpoolController
    controller = ThreadpoolController()
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float64, np.float32):
        for k in sorted({size["widths"][-1] for size in SIZES.values()}):
            A = rng.standard_normal((8, CHUNK, k)).astype(dt)
            B = rng.standard_normal((k, k)).astype(dt)
            reps = max(1, CALIBRATION_WORK["gemm"] // (3 * 8 * 2 * CHUNK * k * k))

            def products(A=A, B=B, reps=reps):
                At = A.transpose(0, 2, 1)
                for _ in range(reps):
                    A @ B.T
                    A @ B
                    At @ A

            def concurrent(products=products):
                with controller.limit(limits=1, user_api="blas"):
                    pool = [threading.Thread(target=products) for _ in range(threads)]
                    for t in pool:
                        t.start()
                    for t in pool:
                        t.join()
            name = f"{'d' if dt == np.float64 else 's'}gemm k={k}"
            out[name] = (concurrent, threads * 3 * reps * 8 * 2 * CHUNK * k * k / 1e9)
    big = np.ones(CALIBRATION_WORK["read"] // 8)
    out["read"] = (lambda: big.sum(), big.nbytes / 1e9)
    chain, steps = _scalar_kernel(), CALIBRATION_WORK["scalar"] // 4
    out["scalar"] = (lambda: chain(steps, 0.999, 1e-3), 4 * steps / 1e9)
    return out


UNITS = {"dgemm": "GFLOP/s", "sgemm": "GFLOP/s", "read": "GB/s", "scalar": "G madd/s"}


def calibrate(fns: dict, samples: dict) -> None:
    """One sample of every calibration rate, appended to ``samples``."""
    for name, (fn, work) in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        samples.setdefault(name, []).append(work / (time.perf_counter() - t0))


# -- the figures ---------------------------------------------------------------------------
class Missing(Exception):
    """The commit under test lacks the API a figure needs."""


def _fresh(x):
    pts, state = [x, x + 1e-3], [0]

    def nxt():
        state[0] ^= 1
        return pts[state[0]]
    return nxt


def make_data(n: int, d: int, seed: int = 0):
    """Gaussian features and +-1 labels from a noisy linear rule (as ``bench.frameworks``)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    return X, y


def _init(obj, d, widths, seed=1):
    if hasattr(obj, "init"):
        return np.asarray(obj.init(seed), dtype=np.float64)
    raise Missing("Objective.init")


def _check_dtype(out, dtype) -> None:
    arr = out[1] if isinstance(out, tuple) else out
    if np.asarray(arr).dtype != np.dtype(dtype):
        raise Missing(f"{np.dtype(dtype).name} passes (computed in {np.asarray(arr).dtype})")


def _real(name: str):
    from sklearn import datasets
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    if name == "breast_cancer":
        return X, np.where(y > 0, 1.0, -1.0)
    return X, (y - y.mean()) / y.std()


def _call(fn, kwargs: dict, optional: dict):
    """``fn(**kwargs, **optional)``, or without ``optional`` on a commit that lacks those
    keywords (their behaviour then is the old default)."""
    try:
        return fn(**kwargs, **optional)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        return fn(**kwargs)


def pass_figures(size: str, dtype) -> dict:
    """fun_and_grad, full hessp, partial hessp, Gram statistics at fresh points: samples/s."""
    s = SIZES[size]
    X, y = make_data(s["n"], s["d"])
    X, y = X.astype(dtype), y.astype(dtype)
    obj = rc.Objective(X, y, loss="logistic", widths=s["widths"], activation="tanh")
    x = _init(obj, s["d"], s["widths"])
    p = np.random.default_rng(2).standard_normal(x.size)
    _check_dtype(obj.fun_and_grad(x), dtype)
    part = obj.partial(x, materialize=True)
    z = x[:part.n_params].copy()
    pz = p[:part.n_params].copy()
    nx, nz = _fresh(x), _fresh(z)
    return {"fun_and_grad": (lambda: obj.fun_and_grad(nx()), s["n"]),
            "hessp full": (lambda: obj.hessp(nx(), p), s["n"]),
            "hessp partial": (lambda: part.hessp(nz(), pz), s["n"]),
            "Gram stats": (lambda: part.stats(nz()), s["n"])}


def certificate_figures(size: str, dtype) -> dict:
    """check_sopsp at a fresh point (structured lambda_min, gap): samples/s."""
    if not hasattr(rc, "check_sopsp"):
        raise Missing("check_sopsp")
    s = SIZES[size]
    X, y = make_data(s["n"], s["d"])
    obj = rc.Objective(X.astype(dtype), y.astype(dtype), loss="logistic", widths=s["widths"])
    x = _init(obj, s["d"], s["widths"])
    fo = obj.partial(x, materialize=True)
    z = x[:fo.n_params].copy()
    fo.linear_baseline()  # cached once per data set: not the certificate's time
    nz = _fresh(z)
    return {"check_sopsp lambda_min": (lambda: rc.check_sopsp(fo, nz(), eps=1e-3), s["n"])}


def vector_figures(size: str, dtype) -> dict:
    """c = 10 cross-entropy fun_and_grad: samples/s."""
    s = SIZES[size]
    X, _ = make_data(s["n"], s["d"])
    rng = np.random.default_rng(3)
    y = np.argmax(X @ rng.standard_normal((s["d"], 10)) + rng.standard_normal((s["n"], 10)), 1)
    y[:10] = np.arange(10)
    try:
        obj = rc.Objective(X.astype(dtype), y, loss="cross_entropy", widths=s["widths"])
    except (ValueError, KeyError) as e:
        raise Missing(f"cross_entropy loss ({e})") from None
    x = _init(obj, s["d"], s["widths"])
    _check_dtype(obj.fun_and_grad(x), dtype)
    nx = _fresh(x)
    return {"c=10 fun_and_grad": (lambda: obj.fun_and_grad(nx()), s["n"])}


def baseline_figures(size: str, dtype) -> dict:
    """linear_baseline: squared on diabetes, logistic on breast cancer (small, real data);
    logistic on the reference problem (ref).  Samples/s."""
    if size == "small":
        data = {"squared": _real("diabetes"), "logistic": _real("breast_cancer")}
    else:
        s = SIZES[size]
        data = {"logistic": make_data(s["n"], s["d"])}
    out = {}
    for loss, (X, y) in data.items():
        X, y = X.astype(dtype), y.astype(dtype)
        _check_dtype(rc.linear_baseline(X, y, loss=loss).w, dtype)
        out[f"linear_baseline {loss}"] = (
            lambda X=X, y=y, loss=loss: rc.linear_baseline(X, y, loss=loss), X.shape[0])
    return out


def lbfgs_figures(size: str, dtype, profile: dict) -> dict:
    """L-BFGS-B (scipy) on the full objective, widths (8,), 100 iterations at most:
    function evaluations per second on diabetes (squared) and breast cancer (logistic)."""
    from scipy.optimize import minimize
    out = {}
    for name, loss in (("diabetes", "squared"), ("breast_cancer", "logistic")):
        X, y = _real(name)
        obj = rc.Objective(X, y, loss=loss, widths=(8,))
        x0 = _init(obj, X.shape[1], (8,), seed=0)
        opts = {"maxiter": profile["lbfgs_iter"]}
        nfev = minimize(obj.fun_and_grad, x0, jac=True, method="L-BFGS-B", options=opts).nfev
        out[f"L-BFGS {name}"] = (
            lambda obj=obj, x0=x0: minimize(obj.fun_and_grad, x0, jac=True, method="L-BFGS-B",
                                            options=opts), nfev)
    return out


PGD = dict(eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=10**9)


def pgd_figures(size: str, dtype, profile: dict) -> dict:
    """PGD steps/s on Example 1 (one run; a batch of 1024 runs), and an escape study (64 PGD
    runs on breast cancer features, widths (8,), no stop at escape): run-steps/s."""
    if not hasattr(rc, "theory") or not hasattr(rc, "perturbed_gd"):
        raise Missing("theory.example1 / perturbed_gd")
    obj, z0 = rc.theory.example1(0.1)
    n1, nR, R = profile["pgd_steps"], profile["batch_steps"], 1024

    def one():
        return rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=n1, seed=0,
                               record_every=0, **PGD)

    def batch(obj=obj, z0=z0, runs=R, steps=nR):
        return _call(rc.studies.escape, dict(objective=obj, starts=z0, n_runs=runs,
                                             max_iter=steps, eps=1e-3, ell=1.0, rho=1.0, **PGD),
                     dict(stop_at_escape=False))
    out = {"PGD Example 1": (one, n1), "PGD Example 1, 1024 runs": (batch, R * nR)}
    X, y = _real("breast_cancer")
    full = rc.Objective(X, y, widths=(8,), n_threads=1)
    fo = full.partial(full.init(0), materialize=True)
    zb = full.init(0)[:fo.n_params].copy()
    nE = profile["escape_steps"]

    def study():
        # a throughput figure: the start is the network's initialisation, not a saddle
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not approximate saddles")
            return _call(rc.studies.escape, dict(objective=fo, starts=zb, n_runs=64,
                                                 max_iter=nE, eps=1e-2, ell=1.0, rho=1.0,
                                                 seed=0), dict(stop_at_escape=False))
    out["escape study, 64 runs"] = (study, 64 * nE)
    return out


def dask_figures(size: str, dtype) -> dict:
    """A fun_and_grad pass over a dask array of 4 blocks (default scheduler): samples/s;
    its overhead over the same pass in memory is recorded with it."""
    try:
        import dask.array as da
    except ImportError:
        raise Missing("dask not installed") from None
    import importlib.util
    if importlib.util.find_spec("resnet_core._dask") is None:
        # before the dask engine the objective converted the array once: no dask pass
        raise Missing("dask passes (this commit converts a dask array to NumPy)")
    s = SIZES[size]
    X, y = make_data(s["n"], s["d"])
    Xd = da.from_array(X, chunks=(s["n"] // 4, s["d"]))
    yd = da.from_array(y, chunks=s["n"] // 4)
    try:
        obj = rc.Objective(Xd, yd, loss="logistic", widths=s["widths"])
    except (TypeError, ValueError) as e:
        raise Missing(f"dask arrays ({str(e)[:80]})") from None
    x = _init(obj, s["d"], s["widths"])
    mem = rc.Objective(X, y, loss="logistic", widths=s["widths"])
    nx, nm = _fresh(x), _fresh(x)
    return {"dask pass": (lambda: obj.fun_and_grad(nx()), s["n"]),
            "_in-memory pass": (lambda: mem.fun_and_grad(nm()), s["n"])}


#: family -> (builder, dtypes, calibration of each dtype, unit)
FAMILIES = {
    "passes": (pass_figures, ("float64", "float32"), "gemm", "samples/s"),
    "certificate": (certificate_figures, ("float64",), "gemm", "samples/s"),
    "vector": (vector_figures, ("float64", "float32"), "gemm", "samples/s"),
    "baseline": (baseline_figures, ("float64",), "gemm", "samples/s"),
    "L-BFGS": (lbfgs_figures, ("float64",), "scalar", "evaluations/s"),
    "PGD": (pgd_figures, ("float64",), "scalar", "steps/s"),
    "dask": (dask_figures, ("float64",), "read", "samples/s"),
}
#: families measured at the small size only (their data have one size)
SMALL_ONLY = ("L-BFGS", "PGD", "dask")


def calibration_key(kind: str, dtype: str, size: str) -> str:
    if kind == "gemm":
        return f"{'d' if dtype == 'float64' else 's'}gemm k={SIZES[size]['widths'][-1]}"
    return kind


def _summary(samples: list[float], work: float) -> dict:
    """Median throughput, its interquartile range relative to the median, the rounds."""
    rates = sorted(work / t for t in samples)
    q1, _, q3 = statistics.quantiles(rates, n=4, method="inclusive")
    med = statistics.median(rates)
    return {"value": med, "spread": (q3 - q1) / med, "samples": len(rates),
            "median_s": statistics.median(samples)}


def measure(fns: dict, rounds: int, block: int) -> dict:
    """Wall-clock samples of each function, the functions taking turns in blocks: each round,
    one untimed call then ``block`` timed calls of each."""
    out = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, _) in fns.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                out[name].append(time.perf_counter() - t0)
    return out


def plan(profile_name: str) -> list[tuple[str, str, str]]:
    """``(family, size, dtype)`` of every group of figures in a profile."""
    prof = PROFILES[profile_name]
    groups = []
    for fam, (_, dtypes, _, _) in FAMILIES.items():
        sizes = ["small"] + ([] if fam in SMALL_ONLY or fam not in prof["ref"] else ["ref"])
        groups += [(fam, size, dt) for size in sizes for dt in dtypes]
    return groups


def run(profile_name: str, rounds: int | None = None) -> dict:
    """Measure the calibration and every figure; return the run's record."""
    prof = dict(PROFILES[profile_name])
    rounds = rounds or prof["rounds"]
    probe = rc.Objective(*make_data(256, 4), widths=(4,))
    threads = int(getattr(probe, "n_threads", os.cpu_count()))
    cal_fns = calibration_functions(threads)
    cal_samples: dict = {}
    figures, groups = {}, plan(profile_name)
    t_start = time.perf_counter()
    _say(f"# tracked suite, profile {profile_name}: {len(groups)} groups, {rounds} rounds x "
         f"{prof['block']} calls each, kernel threads {threads}")
    for i, (fam, size, dt) in enumerate(groups, 1):
        builder, _, cal_kind, unit = FAMILIES[fam]
        calibrate(cal_fns, cal_samples)
        head = f"[{i}/{len(groups)} {time.perf_counter() - t_start:5.0f} s] {fam} {size} {dt}"
        try:
            args = (size, np.dtype(dt).type) + ((prof,) if fam in ("PGD", "L-BFGS") else ())
            fns = builder(*args)
        except Missing as e:
            _say(f"{head}: missing ({e})")
            figures[f"{fam}|{size}|{dt}"] = {"family": fam, "missing": str(e)}
            continue
        except Exception as e:  # an old commit failing on this figure: recorded, not fatal
            _say(f"{head}: failed ({type(e).__name__}: {e})")
            figures[f"{fam}|{size}|{dt}"] = {"family": fam,
                                            "missing": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        key = calibration_key(cal_kind, dt, size)
        times = measure({**fns, "_calibration": cal_fns[key]}, rounds, prof["block"])
        cal_work = cal_fns[key][1]
        for name, (_, work) in fns.items():
            if name.startswith("_"):
                continue
            rec = {"family": fam, "figure": name, "size": size, "dtype": dt, "unit": unit,
                   "calibration": key, **_summary(times[name], work)}
            # the calibration took its turn in the same rounds: each sample against the
            # calibration sample of its round and slot (the same load on both)
            ratios = [(work / t) / (cal_work / c) for t, c in zip(times[name],
                                                                   times["_calibration"])]
            paired = _summary([1 / r for r in ratios], 1.0)
            rec["relative"], rec["relative_spread"] = paired["value"], paired["spread"]
            if fam == "dask":
                rec["overhead_ms"] = 1e3 * (statistics.median(times[name])
                                            - statistics.median(times["_in-memory pass"]))
            figures[f"{name}|{size}|{dt}"] = rec
            _say(f"{head}  {name:<26} {rec['value']:12.4g} {unit:<14} "
                 f"spread {rec['spread']:5.1%}")
    calibrate(cal_fns, cal_samples)
    cal = {}
    for name, vals in cal_samples.items():
        kind = name.split()[0]
        kind = "dgemm" if kind == "dgemm" else "sgemm" if kind == "sgemm" else kind
        cal[name] = {"value": statistics.median(vals), "unit": UNITS[kind],
                     "spread": (max(vals) - min(vals)) / statistics.median(vals),
                     "samples": len(vals)}
    _say("# calibration: " + ", ".join(f"{k} {v['value']:.3g} {v['unit']}"
                                       for k, v in cal.items()))
    return {"schema": SCHEMA, "profile": profile_name, "rounds": rounds,
            "block": prof["block"], "threads": threads,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(time.perf_counter() - t_start, 1),
            "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "machine": fingerprint(threads), **commit_info(), "calibration": cal, "figures": figures,
            "runner": RUNNER}


def save(record: dict, out: Path) -> Path:
    """``out/<machine id>/<time>_<commit[:10]>.json``."""
    folder = out / record["machine"]["id"]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = record["time"].replace(":", "").replace("-", "")
    path = folder / f"{stamp}_{record['commit'][:10]}.json"
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per figure (>= 2)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "history")
    ap.add_argument("--dry-run", action="store_true", help="measure and print, save nothing")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 2:
        ap.error("--rounds must be >= 2 (the spread needs samples)")
    record = run(args.profile, args.rounds)
    _say(f"# commit {record['commit'][:10]}{' (dirty)' if record['dirty'] else ''}, machine "
         f"{record['machine']['id']}: {record['machine']['cpu']}, {record['machine']['isa']}")
    if not args.dry_run:
        _say(f"# saved {save(record, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
