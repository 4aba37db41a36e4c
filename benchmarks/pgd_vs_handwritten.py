"""Steps per second of the package's compiled loops against loops written by hand for the
problem (``resnet_core.bench.frameworks_pgd``), in the same process, interleaved; medians.

    PYTHONPATH=. python benchmarks/pgd_vs_handwritten.py [--repeat 7] [--quick]

Rows: PGD on Example 1 (the hand-written loop has the gradient written out), one run and
1024 runs at once (``studies.escape`` on all cores against a numba ``prange``); gradient
descent on a FeatureObjective (residual head, n = 1000, d = k = 8) with the squared loss
(the package runs on second moments; hand-written on moments and on the samples) and the
logistic loss (both on the samples).  ``ratio`` = hand-written steps/s / package steps/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import resnet_core as rc
from resnet_core.bench import frameworks_pgd as fp


def _median_rate(fn, steps, repeat):
    fn()  # warm-up (compiles)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return steps / float(np.median(times))


def feature_problem(n=1000, d=8, k=8, loss="squared", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Phi = np.tanh(X @ rng.standard_normal((d, k)) / np.sqrt(d))
    y = np.sign(X[:, 0] + 0.3 * Phi[:, 0]) if loss == "logistic" else \
        X[:, 0] - Phi[:, 1] + 0.1 * rng.standard_normal(n)
    fo = rc.FeatureObjective(X, Phi, y, loss=loss)
    return fo, 0.1 * rng.standard_normal(fo.n_params)


def rows(repeat=7, quick=False):
    out = []
    # Example 1: one perturbation at the saddle, then plain steps
    n1 = 100_000 if quick else 2_000_000
    k = dict(eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=10**9)
    obj, z0 = rc.theory.example1(0.1)
    ours = _median_rate(lambda: rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0,
                                                max_iter=n1, seed=0, record_every=0, **k),
                        n1, repeat)
    hand = fp.numba_pgd(0.1, k["eta"], k["r"], k["g_thres"], k["f_thres"], k["t_thres"], n1)
    if hand is not None:
        out.append(("PGD Example 1", "numba hand-written", ours,
                    _median_rate(lambda: hand(z0, 0), n1, repeat)))
    # Example 1, R runs from the saddle at once: escape study against a prange loop
    R, nR = 1024, 1_000 if quick else 10_000
    starts, seeds = np.tile(z0, (R, 1)), np.arange(R)
    ours = _median_rate(lambda: rc.studies.escape(obj, z0, n_runs=R, max_iter=nR, eps=1e-3,
                                                  ell=1.0, rho=1.0, stop_at_escape=False,
                                                  **k), R * nR, repeat)
    hand = fp.numba_pgd_batched(0.1, k["eta"], k["r"], k["g_thres"], k["f_thres"],
                                k["t_thres"], nR)
    if hand is not None:
        out.append((f"PGD Example 1, {R} runs", "numba hand-written prange", ours,
                    _median_rate(lambda: hand(starts, seeds), R * nR, repeat)))
    # FeatureObjective n = 1000, d = k = 8, residual head
    for loss, steps, hands in (("squared", 5_000 if quick else 200_000,
                                (("numba hand-written, moments", True),
                                 ("numba hand-written, samples", False))),
                               ("logistic", 500 if quick else 20_000,
                                (("numba hand-written, samples", False),))):
        fo, x0 = feature_problem(loss=loss)
        eta = 0.05
        ours = _median_rate(lambda: rc.gradient_descent(fo, x0, eta=eta, eps=-1.0,
                                                        max_iter=steps, record_every=0),
                            steps, repeat)
        ref = rc.gradient_descent(fo, x0, eta=eta, eps=-1.0, max_iter=50, record_every=0)
        for name, mom in hands:
            # the hand-written loops have their own step count: fewer on samples
            hsteps = steps if mom or loss != "squared" else max(steps // 50, 100)
            run = fp.numba_gd_features(fo.X, fo.Phi, fo.y, loss, eta, hsteps, moments=mom)
            if run is None:
                continue
            z, _ = fp.numba_gd_features(fo.X, fo.Phi, fo.y, loss, eta, 50, moments=mom)(x0)
            assert np.allclose(z, ref.x, rtol=1e-10, atol=1e-12), name  # same problem
            out.append((f"GD FeatureObjective n=1000 d=k=8 {loss}", name, ours,
                        _median_rate(lambda: run(x0), hsteps, repeat)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    print(f"{'problem':<42} {'reference':<30} {'resnet-core':>14} {'reference':>14} {'ratio':>6}")
    for problem, ref, ours, hand in rows(args.repeat, args.quick):
        print(f"{problem:<42} {ref:<30} {ours:>12.4g}/s {hand:>12.4g}/s {hand / ours:>6.2f}")


if __name__ == "__main__":
    main()
