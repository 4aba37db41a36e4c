"""Time resnet-core against NumPy, PyTorch and JAX on the same work, in one run.

    resnet-core bench             # the reference problem (n=200000, d=64)
    resnet-core bench --quick     # a small problem, seconds
    resnet-core bench --memory    # also peak memory at n=1,000,000

(also ``python -m resnet_core.bench.compare`` and, in a checkout, ``python
benchmarks/compare.py``, with the same options).  Every implementation computes the same
float64 quantities on the same flat parameter vector (layout and formulas in
:mod:`.frameworks`); the run first checks that all agree to 1e-8 (relative to the largest
entry), then prints median times and the speed-up of resnet-core (``median(other) /
median(resnet-core)``) for each piece of work.  PyTorch and JAX rows appear when they are
installed (``pip install 'resnet-core[compare]'``; ``make compare``); the table says which
are missing.  The machine is shared and noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import resnet_core as rc

from . import frameworks as fw
from . import frameworks_pgd as fp
from .environment import describe, header_lines, readme_block
from .timing import alternating, block_medians, median_time

AGREE = 1e-8
#: The problem sizes: the reference one of the issues, and a small one (``--quick``, and the
#: pytest-benchmark suites' CI size).
REFERENCE = dict(n=200_000, d=64, widths=(64, 64))
SMALL = dict(n=20_000, d=16, widths=(16, 16))


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def check_agreement(name, ours, theirs, x, p) -> None:
    F0, g0 = ours.value_and_grad(x)
    F1, g1 = theirs.value_and_grad(x)
    errs = {"value": abs(F0 - F1) / abs(F0), "grad": _rel(g1, g0),
            "hessp": _rel(theirs.hessp(x, p), ours.hessp(x, p))}
    bad = {k: v for k, v in errs.items() if not v <= AGREE}
    if bad:
        raise SystemExit(f"{name} disagrees with resnet-core beyond {AGREE}: {bad}")


class LiveRows(list):
    """The table's rows, each printed to stderr (flushed) with the run's elapsed time as
    soon as it is appended: a full run takes minutes, stdout holds the table at the end."""

    start = time.perf_counter()

    def append(self, row) -> None:
        super().append(row)
        work, impl, t = row
        print(f"[row {len(self):2d}, {time.perf_counter() - LiveRows.start:5.0f} s] {work} | "
              f"{impl} | {t * 1e3:.3g} ms", file=sys.stderr, flush=True)

    def __iadd__(self, rows):
        for row in rows:
            self.append(row)
        return self


class _Ours:
    """resnet-core behind the frameworks' ``value_and_grad`` / ``hessp`` interface."""

    def __init__(self, obj):
        self.obj = obj

    def value_and_grad(self, x):
        return self.obj.fun_and_grad(x)

    def hessp(self, x, p):
        return self.obj.hessp(x, p)


def run_objectives(n: int, d: int, widths, repeat: int) -> list[tuple[str, str, float]]:
    """The objective's value + gradient and Hessian-vector products (full, and on fixed
    features), the statistics, and the certificate against eigsh on the frameworks'
    products."""
    X, y = fw.make_data(n, d, seed=0)
    x = fw.init_params(d, widths, seed=1)
    rng = np.random.default_rng(2)
    rows = LiveRows()

    # -- full objective: value + gradient, Hessian-vector product ----------------------
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    ours = _Ours(obj)
    p = rng.standard_normal(obj.n_params)
    others = fw.implementations(X, y, widths=widths)
    for name, impl in others.items():
        check_agreement(name, ours, impl, x, p)
    nxt = alternating(x)
    # in alternating blocks (timing.block_medians): every implementation sees the same
    # machine load, none runs on another's spinning thread pool
    for work, ours_fn, call in (
            ("fun_and_grad", lambda: obj.fun_and_grad(nxt()),
             lambda impl: lambda: impl.value_and_grad(nxt())),
            ("hessp (full)", lambda: obj.hessp(nxt(), p),
             lambda impl: lambda: impl.hessp(nxt(), p))):
        fns = {"resnet-core": ours_fn, **{name: call(impl) for name, impl in others.items()}}
        times = block_medians(fns, repeat=repeat, block=2)
        rows += [(work, name, t) for name, t in times.items()]

    # -- fixed features: F_theta(w, V) --------------------------------------------------
    Phi = obj.features(x)
    fo = rc.FeatureObjective(X, Phi, y, loss="logistic")
    z = x[:fo.n_params].copy()
    pz = rng.standard_normal(fo.n_params)
    ours_f = _Ours(fo)
    others_f = fw.implementations(X, y, Phi=Phi)
    for name, impl in others_f.items():
        check_agreement(name, ours_f, impl, z, pz)
    nz = alternating(z)
    rows.append(("feature hessp (fresh point)", "resnet-core",
                 median_time(lambda: fo.hessp(nz(), pz), repeat=repeat)))
    for name, impl in others_f.items():
        rows.append(("feature hessp (fresh point)", name,
                     median_time(lambda: impl.hessp(nz(), pz), repeat=repeat)))
    fo.hessp(z, pz)
    fo.hessp(z, pz)
    rows.append(("feature hessp (same point)", "resnet-core",
                 median_time(lambda: fo.hessp(z, pz), repeat=max(repeat, 20))))
    for name, impl in others_f.items():
        rows.append(("feature hessp (same point)", name,
                     median_time(lambda: impl.hessp(z, pz), repeat=repeat)))
    rows.append(("stats (A, B, C, g)", "resnet-core",
                 median_time(lambda: fo.stats(nz()), repeat=repeat)))

    # -- certificate: lambda_min of the partial Hessian (dimension d + d k) -------------
    fo.linear_baseline()  # once per data set, cached: not part of the certificate's time
    rows.append(("check_sopsp / lambda_min", "resnet-core (structured)",
                 median_time(lambda: rc.check_sopsp(fo, nz(), eps=1e-3), repeat=repeat)))
    t_fg = next(t for w, i, t in rows if w == "fun_and_grad" and i == "resnet-core")
    rows.append(("check_sopsp / lambda_min", "one Objective.fun_and_grad", t_fg))
    lam = rc.check_sopsp(fo, z, eps=1e-3).lambda_min
    for name, impl in others_f.items():
        if name == "numpy" or name == "torch-func":
            continue  # the slowest; eigsh on them takes minutes
        vals, _, _, _, count = rc.certify.lanczos_extreme(lambda v: impl.hessp(z, v),
                                                          fo.n_params, tol=1e-10)
        if abs(vals[0] - lam) > AGREE * max(1.0, abs(lam)):
            raise SystemExit(f"eigsh on {name} products gives {vals[0]}, structured {lam}")
        t = median_time(lambda: rc.certify.lanczos_extreme(lambda v: impl.hessp(z, v),
                                                           fo.n_params, tol=1e-10),
                        repeat=max(1, repeat // 3), warmup=0)
        rows.append(("check_sopsp / lambda_min", f"eigsh on {name} hessp ({count} products)", t))
    return rows


def run_optimisers(repeat: int, quick: bool) -> list[tuple[str, str, float]]:
    """PGD on Example 1 (steps per second: the table shows seconds per 1e6 steps), batched
    escape runs."""
    eps, n1, R, nR = 0.1, (200_000 if quick else 1_000_000), 1024, (2_000 if quick else 10_000)
    # t_thres large: one perturbation at the saddle, then plain steps (a fixed step count
    # in every implementation, as the JAX loop cannot stop early)
    k = dict(eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=10**9)
    obj, z0 = rc.theory.example1(eps)
    rows = LiveRows()

    def ours_one():
        return rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=n1, seed=0,
                               record_every=0, **k).x

    per = 1e6
    rows.append(("PGD, Example 1 (per 1e6 steps)", "resnet-core",
                 per * median_time(ours_one, repeat=repeat) / n1))
    builders = {"jax (lax.fori_loop)": fp.jax_pgd, "numba (hand-written)": fp.numba_pgd}
    for name, build in builders.items():
        run = build(eps, k["eta"], k["r"], k["g_thres"], k["f_thres"], k["t_thres"], n1)
        if run is not None:  # the warm-up call compiles
            rows.append(("PGD, Example 1 (per 1e6 steps)", name,
                         per * median_time(lambda: run(z0, 0), repeat=repeat, warmup=1) / n1))
    run = fp.torch_pgd(eps, k["eta"], k["r"], k["g_thres"], k["f_thres"], k["t_thres"], 2000)
    if run is not None:
        rows.append(("PGD, Example 1 (per 1e6 steps)", "torch (eager)",
                     per * median_time(lambda: run(z0, 0), repeat=1, warmup=1) / 2000))

    starts = np.tile(z0, (R, 1))
    seeds = np.arange(R)

    def study(threads):
        return lambda: rc.studies.escape(obj, z0, n_runs=R, max_iter=nR, eps=1e-3, ell=1.0,
                                         rho=1.0, n_threads=threads, stop_at_escape=False,
                                         **k).x

    work = f"PGD, {R} runs (per 1e6 run-steps)"
    rows.append((work, "resnet-core", per * median_time(study(None), repeat=repeat) / (R * nR)))
    rows.append((work, "resnet-core, 1 thread",
                 per * median_time(study(1), repeat=repeat) / (R * nR)))
    for name, build in {"jax (vmap in fori_loop)": fp.jax_pgd_batched,
                        "numba (hand-written prange)": fp.numba_pgd_batched}.items():
        run = build(eps, k["eta"], k["r"], k["g_thres"], k["f_thres"], k["t_thres"], nR)
        if run is not None:
            rows.append((work, name, per * median_time(lambda: run(starts, seeds), repeat=repeat,
                                                       warmup=1) / (R * nR)))
    return rows


def run_step_costs(n: int, d: int, widths, repeat: int,
                   quick: bool) -> list[tuple[str, str, float]]:
    """One PGD iteration over all parameters vs one fun_and_grad; one projected-SGD step
    (batch 1) at n and at n / 100."""
    T1, T2 = (2_000, 10_000) if quick else (10_000, 50_000)
    X, y = fw.make_data(n, d, seed=0)
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    x = obj.init(0)
    nxt = alternating(x)
    rows = LiveRows()
    rows.append(("one PGD iteration (all parameters)", "resnet-core fun_and_grad",
                 median_time(lambda: obj.fun_and_grad(nxt()), repeat=repeat)))
    steps = 4
    res = [None]

    def pgd():
        res[0] = rc.perturbed_gd(obj, nxt(), eps=1e-3, ell=10.0, rho=10.0, max_iter=steps,
                                 record_every=0, t_thres=10**9)

    t = median_time(pgd, repeat=max(3, repeat // 2), warmup=1)
    # the call also evaluates the start and the end point: nfev passes in all
    rows.append(("one PGD iteration (all parameters)", "perturbed_gd, per pass",
                 t / res[0].nfev))
    for m in (n, max(n // 100, 100)):
        sk = rc.Objective(X[:m], y[:m], loss="logistic", widths=widths, head="skip")
        x0 = sk.init(0)
        # the difference of two run lengths leaves out the full-data evaluations
        t1, t2 = (median_time(lambda T=T: rc.projected_sgd(sk, x0, T=T, radius=5.0, seed=0,
                                                           eval_every=T), repeat=3, warmup=1)
                  for T in (T1, T2))
        rows.append((f"projected SGD step (batch 1, n={m})", "resnet-core", (t2 - t1) / (T2 - T1)))
    return rows


def format_rows(rows) -> str:
    """Markdown table; the last column is time / time of the work's first resnet-core row
    (above 1: resnet-core is faster)."""
    ours = {}
    for work, impl, t in rows:
        if impl.startswith("resnet-core"):
            ours.setdefault(work, t)
    header = ("work", "implementation", "median ms", "time / resnet-core")
    body = [(w, i, f"{t * 1e3:.3g}", "-" if t == ours[w] else f"{t / ours[w]:.2f}x")
            for w, i, t in rows]
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(4)]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


# -- memory: each implementation in its own process, peak RSS above the data ------------
def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def resnet_core_memory_work(X, y, widths, x=None) -> None:
    """What the memory row of resnet-core measures: build the objective, ``fun_and_grad`` and
    ``hessp`` at a point, and two products of its partial objective."""
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    x = obj.init(0) if x is None else x
    obj.fun_and_grad(x)
    obj.hessp(x, x)
    part = obj.partial(x)
    z = x[:part.n_params]
    part.hessp(z, z)
    part.hessp(z, z)


def memory_worker(impl: str, n: int, d: int, widths) -> dict:
    X, y = fw.make_data(n, d, seed=0)
    x = fw.init_params(d, widths, seed=1)
    # The peak (VmHWM) is read against the resident size once the data exist.
    if impl == "resnet-core":
        base = _rss_mib()
        resnet_core_memory_work(X, y, widths, x)
    else:
        base = _rss_mib()
        fw.implementations(X, y, widths=widths)[impl].value_and_grad(x)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))
    return {"impl": impl, "base_mib": base, "peak_mib": peak, "X_mib": X.nbytes / 2**20}


def memory_rows(n: int, d: int) -> list[tuple[str, float, float]]:
    """Each implementation's peak memory above the data, measured in its own process."""
    impls = ["resnet-core", "numpy"]
    if fw.torch_available() is not None:
        impls.append("torch-autograd")
    if fw.jax_available() is not None:
        impls.append("jax")
    env = dict(os.environ)  # the same resnet_core as this process, installed or not
    home = str(Path(rc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
    out = []
    for impl in impls:
        cmd = [sys.executable, "-m", __name__, "--memory-worker", impl, "--n", str(n),
               "--d", str(d)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                        env=env).stdout.strip().splitlines()[-1])
        out.append((impl, res["peak_mib"] - res["base_mib"], res["X_mib"]))
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the comparison (``resnet-core bench`` and :func:`main`)."""
    ap.add_argument("--quick", action="store_true", help="n=20000, d=16, widths (16, 16)")
    ap.add_argument("--n", type=int, default=None, help="number of samples")
    ap.add_argument("--d", type=int, default=None, help="number of features")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per row (default 7)")
    ap.add_argument("--memory", action="store_true", help="also peak memory at n=1,000,000")
    ap.add_argument("--readme", action="store_true",
                    help="print the README's speed block: date, machine, versions, thread "
                         "settings and the table, with a checksum (paste it whole)")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)


def argv_extra(args: argparse.Namespace) -> list[str]:
    """The options of this run besides ``--readme``, as typed."""
    extra = ["--quick"] if args.quick else []
    extra += [f"--{k} {v}" for k in ("n", "d") if (v := getattr(args, k)) is not None]
    return extra + ([f"--repeat {args.repeat}"] if args.repeat != 7 else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return bench(ap.parse_args(argv))


def bench(args: argparse.Namespace) -> int:
    """Print the comparison table (and the memory table with ``--memory``)."""
    size = SMALL if args.quick else REFERENCE
    n, d = args.n or size["n"], args.d or size["d"]
    widths = (d, d) if d != size["d"] else size["widths"]
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, n, d, widths)))
        return 0

    t0 = time.perf_counter()
    problem = (f"n={n}, d={d}, widths={widths}, tanh, logistic, float64; medians of "
               f"{args.repeat} runs (fun_and_grad and hessp (full): of {args.repeat} rounds of "
               f"alternating blocks); all implementations agree to {AGREE}")
    if not args.readme:
        print(f"# resnet-core vs NumPy / PyTorch / JAX; {problem}")
        missing = [k for k in ("torch", "jax") if getattr(fw, f"{k}_available")() is None]
        if missing:
            print(f"# not installed: {', '.join(missing)} (pip install "
                  "'resnet-core[compare]'): no rows for them")
    sys.stdout.flush()  # the header before the rows' progress lines on stderr
    LiveRows.start = time.perf_counter()
    rows = [*run_objectives(n, d, widths, args.repeat),
            *run_step_costs(n, d, widths, args.repeat, args.quick),
            *run_optimisers(args.repeat, args.quick)]
    fields = describe(problem=problem)
    if args.readme:
        minutes = (time.perf_counter() - t0) / 60
        command = "python benchmarks/compare.py --readme" + "".join(
            f" {a}" for a in (argv_extra(args)))
        print(readme_block(fields, format_rows(rows), command=command, minutes=minutes))
    else:
        print("\n".join(f"# {line[2:]}" for line in header_lines(fields)))
        print(format_rows(rows))
    if args.memory:
        nm = 1_000_000
        print(f"\n# peak memory above the data at n={nm}, d={d} (fun_and_grad; resnet-core "
              "also hessp and partial(x).hessp)")
        for impl, extra, xmib in memory_rows(nm, d):
            print(f"| {impl:<15} | {extra:8.1f} MiB | {extra / xmib:5.2f} x size(X) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
