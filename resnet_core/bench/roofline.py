"""Roofline of the streaming kernels on the reference problem: flops and bytes per pass,
achieved rates, and the gap to this machine's gemm rate measured in the same run.

    python benchmarks/roofline.py [--quick] [--repeat 5]

For each pass (``value`` = the forward pass of ``predict``, ``fun_and_grad``, the full
``hessp``, the partial ``hessp`` on fixed features, the ``Gram`` matrix of the sufficient
statistics) and each dtype: the BLAS flops (:func:`flops`, derived from the kernels in
docs/performance.md), the bytes that must cross memory (:func:`bytes_moved`), the tanh
evaluations, the median time at fresh points (passes alternate in blocks, each block warmed
first), GFLOP/s, GB/s, and the achieved rate as a fraction of numpy's matmul on the
kernels' chunk shapes and on large square matrices, with the threads the kernels use.
"""

from __future__ import annotations

import argparse
import sys
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

import resnet_core as rc

from . import frameworks as fw
from .compare import REFERENCE, SMALL
from .environment import describe, header_lines
from .timing import block_medians, median_time

PASSES = ("value", "fun_and_grad", "hessp (full)", "hessp (partial)", "Gram")


def _weights(d: int, widths) -> tuple[int, int]:
    """``(W, W1)``: multiply-adds of one sample through all layers, and through the first."""
    dims = [d, *widths]
    W = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    return W, (dims[0] * dims[1] if widths else 0)


def flops(kind: str, d: int, widths, k: int) -> int:
    """BLAS flops per sample (2 per multiply-add) of one pass; ``k`` features (the MLP's
    output width for the full passes).  Formulas and their derivation: docs/performance.md."""
    W, W1 = _weights(d, widths)
    per = {"value": 2 * W + 2 * (d + k),
           "fun_and_grad": 6 * W - 2 * W1 + 4 * (d + k),
           "hessp (full)": 16 * W - 10 * W1 + 6 * d + 12 * k,
           "hessp (partial)": 6 * d + 8 * k,
           "Gram": 4 * (d + k) + (d + k) * (d + k + 1)}
    return per[kind]


def bytes_moved(kind: str, d: int, k: int, itemsize: int) -> int:
    """Bytes per sample that must cross memory: the data read (``X``, and ``Phi`` for the
    fixed-feature passes; ``y``, ``s``) and the per-sample vectors written (``l``, ``r``,
    ``q``; ``p`` for ``value``).  A chunk's workspace stays in cache and is not counted."""
    if kind == "value":
        return (d + 1) * itemsize
    data = d + (k if kind in ("hessp (partial)", "Gram") else 0)
    return (data + 5) * itemsize


def activations(kind: str, widths) -> int:
    """tanh evaluations per sample."""
    return sum(widths) if kind in ("value", "fun_and_grad", "hessp (full)") else 0


def gemm_functions(dtype, chunk: int, width: int, threads: int, *,
                   large: int = 2048) -> dict:
    """``{name: (function, flops)}``: numpy matmul in ``dtype`` with ``threads`` threads.

    ``chunk``: the kernels' three chunk products (``(chunk x width)(width x width)^T``, its
    ``NN`` form and ``(width x chunk)(chunk x width)``), 16 chunks per matmul call, on
    single-threaded BLAS, run by ``threads`` Python threads at once (as the kernels run one
    chunk per thread; the GIL is released inside each call); ``large``: a
    ``large x large`` square product on ``threads`` BLAS threads.
    """
    controller = ThreadpoolController()  # made once: a new one scans every loaded library
    rng = np.random.default_rng(0)
    A = rng.standard_normal((16, chunk, width)).astype(dtype)
    At = np.ascontiguousarray(A.transpose(0, 2, 1))
    B = rng.standard_normal((width, width)).astype(dtype)
    big = rng.standard_normal((large, large)).astype(dtype)
    reps = max(1, 300_000_000 // (3 * 16 * 2 * chunk * width * width))  # ~0.3 GFLOP a call

    def chunk_products():
        for _ in range(reps):
            A @ B.T
            A @ B
            At @ A

    def concurrent():
        with controller.limit(limits=1, user_api="blas"):
            pool = [threading.Thread(target=chunk_products) for _ in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()

    def square():
        with controller.limit(limits=threads, user_api="blas"):
            big @ big

    chunk_flops = threads * 3 * reps * 16 * 2 * chunk * width ** 2
    return {f"chunk gemm {threads}": (concurrent, chunk_flops),
            f"large gemm {threads}": (square, 2 * large ** 3)}


def read_rate(nbytes: int = 1 << 28, *, repeat: int = 5) -> float:
    """GB/s of one thread summing a float64 array of ``nbytes`` (a memory read rate)."""
    a = np.ones(nbytes // 8)
    return nbytes / median_time(lambda: a.sum(), repeat=repeat, warmup=1) / 1e9


def pass_functions(X, y, widths, dtype) -> dict:
    """The five passes of the reference problem in ``dtype``, each a function of a fresh
    point (so no cached state helps)."""
    X, y = X.astype(dtype), y.astype(dtype)
    obj = rc.Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    x = fw.init_params(X.shape[1], widths, seed=1)
    p = np.random.default_rng(2).standard_normal(x.size)
    part = obj.partial(x, materialize=True)
    z, pz = x[:part.n_params], p[:part.n_params]
    pts = {"x": [x, x + 1e-3], "z": [z, z + 1e-3]}
    state = [0]

    def fresh(key):
        state[0] += 1
        return pts[key][state[0] % 2]

    return {"value": lambda: obj.predict(fresh("x")),
            "fun_and_grad": lambda: obj.fun_and_grad(fresh("x")),
            "hessp (full)": lambda: obj.hessp(fresh("x"), p),
            "hessp (partial)": lambda: part.hessp(fresh("z"), pz),
            "Gram": lambda: part.stats(fresh("z"))}, obj


def run(n: int, d: int, widths, *, repeat: int, large: int = 2048,
        read_bytes: int = 1 << 28) -> tuple[list, list, float, int]:
    """``(pass rows, gemm rows, read GB/s, n_threads)``: a pass row is ``(pass, dtype,
    GFLOP, MB, tanh M, seconds, GFLOP/s, GB/s, fraction of chunk gemm, of large gemm)``, a
    gemm row ``(dtype, threads, chunk GFLOP/s, large GFLOP/s)``.  The gemm products take
    their turns in the same alternating blocks as the passes: both see the same load."""
    X, y = fw.make_data(n, d, seed=0)
    k = widths[-1]
    rows, gemm = [], []
    threads = None
    for dtype in (np.float64, np.float32):
        fns, obj = pass_functions(X, y, widths, dtype)
        threads = obj.n_threads
        products = {}
        for t in sorted({1, threads}):
            products.update(gemm_functions(dtype, obj.chunk_size, k, t, large=large))
        times = block_medians({**fns, **{name: fn for name, (fn, _) in products.items()}},
                              repeat=repeat)
        rate = {name: fl / times[name] / 1e9 for name, (_, fl) in products.items()}
        dt = np.dtype(dtype).name
        gemm += [(dt, t, rate[f"chunk gemm {t}"], rate[f"large gemm {t}"])
                 for t in sorted({1, threads})]
        item = np.dtype(dtype).itemsize
        for kind in PASSES:
            gf = flops(kind, d, widths, k) * n / 1e9
            mb = bytes_moved(kind, d, k, item) * n / 1e6
            t = times[kind]
            rows.append((kind, dt, gf, mb, activations(kind, widths) * n / 1e6, t, gf / t,
                         mb / 1e3 / t, gf / t / rate[f"chunk gemm {threads}"],
                         gf / t / rate[f"large gemm {threads}"]))
    return rows, gemm, read_rate(read_bytes), threads


def format_tables(rows, gemm, read_gbs: float, threads: int) -> str:
    """The pass table and the machine-rate table, in markdown."""
    out = ["| pass | dtype | GFLOP | MB moved | tanh (M) | median ms | GFLOP/s | GB/s "
           f"| of chunk gemm ({threads} thr) | of large gemm ({threads} thr) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, dt, gf, mb, act, t, rate, gbs, fc, fl in rows:
        out.append(f"| {kind} | {dt} | {gf:.3g} | {mb:.0f} | {act:.1f} | {t * 1e3:.1f} "
                   f"| {rate:.1f} | {gbs:.2f} | {fc:.0%} | {fl:.0%} |")
    out += ["", "| numpy matmul | threads | chunk shapes GFLOP/s | large square GFLOP/s |",
            "|---|---|---|---|"]
    out += [f"| {dt} | {t} | {c:.1f} | {lg:.1f} |" for dt, t, c, lg in gemm]
    out.append(f"\nmemory read rate (1 thread, numpy sum of 256 MiB): {read_gbs:.1f} GB/s")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n=20000, d=16, widths (16, 16)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of blocks (default 5)")
    args = ap.parse_args(argv)
    size = SMALL if args.quick else REFERENCE
    n, d, widths = size["n"], size["d"], size["widths"]
    problem = (f"n={n}, d={d}, widths={widths}, tanh, logistic; medians of {args.repeat} "
               "rounds of alternating blocks")
    print("\n".join(f"# {line[2:]}" for line in header_lines(describe(problem=problem))))
    print(format_tables(*run(n, d, widths, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
