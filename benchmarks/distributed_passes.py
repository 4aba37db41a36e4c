"""Distributed passes against in-memory ones, on the same cores.

    python benchmarks/distributed_passes.py [--n 1000000] [--d 64] [--widths 64 64]
                                            [--rows 62500] [--repeat 5]

Measures, on a LocalCluster of worker processes with one thread each (the data generated on
the workers and kept there, ``persist``):

- ``fun_and_grad`` at n samples on 2 workers against the in-memory objective with 2 threads
  (the same 2 cores; the two run in turn, never at once): medians and their ratio, and the
  agreement of the two results;
- the per-pass overhead: a pass over 2 blocks of 256 rows on the cluster, against the same
  pass in memory;
- the bytes of one pass, pickled: the point with the function (one key, sent once to each
  worker that needs it) and one block's partial sums (moved up the reduction tree on the
  workers; the client receives one set);
- weak scaling: n / 2 samples held by and computed on 1 worker (``dask.annotate``)
  against n on 2, interleaved (time per pass; efficiency ``t_1 / t_2``).

The machine may be shared: quote the medians and ratios with the load average printed.
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
import time

import numpy as np


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def make_data(da, n, d, rows, seed=0):
    rs = da.random.RandomState(seed)
    X = rs.standard_normal((n, d), chunks=(rows, d))
    y = da.where(X[:, 0] + 0.5 * rs.standard_normal(n, chunks=rows) > 0, 1.0, -1.0)
    return X.persist(), y.persist()


def pass_bytes(obj, x):
    """Pickled bytes of one ``fun_and_grad`` pass: the function with the point (one key,
    sent once to each worker that needs it), one block's partial sums (moved between workers
    up the reduction tree, once to the client), and the number of tasks."""
    from resnet_core._dask import _pass
    eng = obj._engine
    w, M, a, theta = obj._split(obj.validate_point(x))
    fn = functools.partial(_pass, "value_grad", (w, a, theta), {"need_theta": True})
    result = eng.map_rows(fn)[0]
    return len(pickle.dumps((eng._spec, fn))), len(pickle.dumps(result)), len(eng._parts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--rows", type=int, default=62_500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster

    import resnet_core as rc

    widths = tuple(args.widths)
    print(f"load average {os.getloadavg()}, cores {os.cpu_count()}, n {args.n}, d {args.d}, "
          f"widths {widths}, rows per block {args.rows}, repeat {args.repeat}")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        X, y = make_data(da, args.n, args.d, args.rows)
        dobj = rc.Objective(X, y, widths=widths)
        x = dobj.init(0)
        Xm, ym = X.compute(), y.compute()  # the same data in this process, for comparison
        obj = rc.Objective(Xm, ym, widths=widths, n_threads=2)
        F, g = obj.fun_and_grad(x)
        Fd, gd = dobj.fun_and_grad(x)
        agree = max(abs(F - Fd) / abs(F), float(np.abs(g - gd).max() / np.abs(g).max()))
        t_mem, t_dist = [], []
        for i in range(args.repeat):  # interleaved: both see the same load
            t_mem.append(median_time(lambda: obj.fun_and_grad(x + i * 1e-9), 1))
            t_dist.append(median_time(lambda: dobj.fun_and_grad(x + i * 1e-9), 1))
        t_mem, t_dist = float(np.median(t_mem)), float(np.median(t_dist))
        sent, back, tasks = pass_bytes(dobj, x)

        Xs, ys = make_data(da, 512, args.d, 256, seed=1)
        small = rc.Objective(Xs, ys, widths=widths)
        small_mem = rc.Objective(Xs.compute(), ys.compute(), widths=widths, n_threads=2)
        step = [0]

        def tiny(o):
            step[0] += 1
            return o.fun_and_grad(x + step[0] * 1e-9)

        over = median_time(lambda: tiny(small), 5 * args.repeat)
        over_mem = median_time(lambda: tiny(small_mem), 5 * args.repeat)
        del Xm, ym, obj

        # weak scaling: n / 2 samples held by and computed on one worker, interleaved with
        # the n samples on both (so both see the same load)
        import dask
        one = sorted(client.scheduler_info()["workers"])[:1]
        with dask.annotate(workers=one, allow_other_workers=False):
            Xh, yh = make_data(da, args.n // 2, args.d, args.rows, seed=2)
            half = rc.Objective(Xh, yh, widths=widths)
        t_one, t_two = [], []
        for _ in range(args.repeat):
            with dask.annotate(workers=one, allow_other_workers=False):
                t_one.append(median_time(lambda: tiny(half), 1))
            t_two.append(median_time(lambda: tiny(dobj), 1))
        t_one, t_two = float(np.median(t_one)), float(np.median(t_two))

    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| in memory, 2 threads: fun_and_grad (median) | {t_mem:.3f} s |")
    print(f"| dask, 2 workers x 1 thread: fun_and_grad (median) | {t_dist:.3f} s |")
    print(f"| ratio dask / in memory | {t_dist / t_mem:.2f} |")
    print(f"| agreement (relative, value and gradient) | {agree:.1e} |")
    print(f"| per-pass overhead (2 blocks of 256 rows): dask / in memory | "
          f"{1e3 * over:.1f} ms / {1e3 * over_mem:.2f} ms |")
    print(f"| bytes per pass: point and function (once per worker), partial sums per block, "
          f"blocks | {sent} B, {back} B, {tasks} |")
    print(f"| bytes per pass, at most: 2 workers x point + blocks x sums; of which the "
          f"client sends / receives | {(2 * sent + tasks * back) / 2**20:.2f} MiB; "
          f"{sent / 2**10:.0f} KiB / {back / 2**10:.0f} KiB |")
    print(f"| weak scaling: n/2 on 1 worker, n on 2 workers | {t_one:.3f} s, {t_two:.3f} s "
          f"(efficiency {t_one / t_two:.2f}) |")


if __name__ == "__main__":
    main()
