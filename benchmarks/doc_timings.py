"""The timings quoted in docs/, one subcommand each (every figure there names its command).

    python benchmarks/doc_timings.py reduced-eigen          # docs/partial_hessian.md
    python benchmarks/doc_timings.py reassociation          # docs/objective.md
    python benchmarks/doc_timings.py separability           # docs/linear_baseline.md
    python benchmarks/doc_timings.py qr-threads             # docs/linear_baseline.md
    python benchmarks/doc_timings.py estimator-certificate  # docs/estimators.md, vector certs
    python benchmarks/doc_timings.py interrupt              # docs/safety.md

Medians of alternating blocks where two things are compared (the machine is shared);
each prints what it measured, on which problem.
"""

import os
import signal
import sys
import threading
import time

import numpy as np

import resnet_core as rc
from resnet_core.bench.timing import median_time


def reduced_eigen():
    """``lambda_min`` at d = k = 32 (logistic, n = 2000): dense eigvalsh of the 1056 x 1056
    partial Hessian against the reduced 95 x 95 matrix."""
    from resnet_core.certify import lambda_min_dense, lambda_min_structured

    rng = np.random.default_rng(0)
    n, d, k = 2000, 32, 32
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    fo = rc.FeatureObjective(X, np.tanh(X @ rng.standard_normal((d, k)) / 6), y)
    z = 0.1 * rng.standard_normal(fo.n_params)
    H = fo.hessian(z)
    dense = median_time(lambda: np.linalg.eigvalsh(H), repeat=3, warmup=1)
    fo.stats(z)
    reduced = median_time(lambda: lambda_min_structured(fo, z), repeat=7, warmup=1)
    a, b = lambda_min_dense(fo, z).value, lambda_min_structured(fo, z).value
    print(f"dense eigvalsh {H.shape[0]} x {H.shape[0]}: {dense:.3f} s; reduced (statistics "
          f"cached): {1e3 * reduced:.2f} ms; lambda_min {a:.6e} / {b:.6e}, |diff| {abs(a - b):.1e}")


def reassociation():
    """One prediction ``p = w^T (x + V phi)`` with NumPy at n = 2e5, d = k = 64: through
    ``U = X + Phi V^T`` against ``X w + Phi (V^T w)``."""
    rng = np.random.default_rng(0)
    n, d, k = 200_000, 64, 64
    X, Phi = rng.standard_normal((n, d)), rng.standard_normal((n, k))
    w, V = rng.standard_normal(d), rng.standard_normal((d, k))
    via_u = median_time(lambda: (X + Phi @ V.T) @ w, repeat=5)
    direct = median_time(lambda: X @ w + Phi @ (V.T @ w), repeat=5)
    print(f"n = {n}, d = k = {d}: through U {1e3 * via_u:.0f} ms, re-associated "
          f"{1e3 * direct:.0f} ms ({via_u / direct:.1f}x)")


def separability():
    """Deciding separability on overlapping data (d = 32, y = sign(x_0 + 0.5 noise))."""
    for n in (10_000, 30_000, 100_000):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, 32))
        y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
        t = median_time(lambda: rc.linear_separability(X, y), repeat=3, warmup=1)
        print(f"overlap, n = {n}: {t:.3f} s ({rc.linear_separability(X, y).status})")


def qr_threads():
    """One 4127 x 32 QR with OpenBLAS on 1 and on 2 threads (alternating blocks)."""
    from threadpoolctl import threadpool_limits

    A = np.random.default_rng(0).standard_normal((4127, 32))
    out = {1: [], 2: []}
    for _ in range(5):
        for threads in (1, 2):
            with threadpool_limits(threads, user_api="blas"):
                out[threads].append(median_time(lambda: np.linalg.qr(A), repeat=5))
    t1, t2 = np.median(out[1]), np.median(out[2])
    print(f"QR 4127 x 32: 1 thread {1e3 * t1:.2f} ms, 2 threads {1e3 * t2:.2f} ms "
          f"({t2 / t1:.1f}x)")


def estimator_certificate():
    """A 10-class digits ResNetClassifier (widths (16,)): fit with and without the
    certificate at n = 200 and n = 1797, and the certificate's own timings."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    for n in (200, 1797):
        times = {}
        for certify in (False, True):
            clf = rc.ResNetClassifier(widths=(16,), random_state=0, certify=certify)
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(X[:n], y[:n])
            times[certify] = time.perf_counter() - t
        c = clf.certificate_
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in c.timings.items())
        print(f"n = {n}: fit {times[False]:.1f} s without the certificate, {times[True]:.1f} s "
              f"with it; certificate: {parts}; lambda_min {c.lambda_min:.6e}")


def interrupt():
    """Ctrl-C latency during a value-and-gradient pass (n = 2e5, d = 64, widths (64, 64)):
    SIGINT sent after 1 s, the time until KeyboardInterrupt reaches Python."""
    rng = np.random.default_rng(0)
    n, d = 200_000, 64
    X = rng.standard_normal((n, d))
    obj = rc.Objective(X, np.where(X[:, 0] > 0, 1.0, -1.0), widths=(64, 64), n_threads=2)
    x = obj.init(0)
    sent = []

    def fire():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    lat = []
    for _ in range(3):
        sent.clear()
        threading.Timer(1.0, fire).start()
        try:
            while True:
                obj.fun_and_grad(x)
                x = x + 1e-9
        except KeyboardInterrupt:
            lat.append(time.perf_counter() - sent[0])
    print(f"Ctrl-C latency: {', '.join(f'{t:.3f} s' for t in lat)}")


COMMANDS = {"reduced-eigen": reduced_eigen, "reassociation": reassociation,
            "separability": separability, "qr-threads": qr_threads,
            "estimator-certificate": estimator_certificate, "interrupt": interrupt}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python benchmarks/doc_timings.py {{{'|'.join(COMMANDS)}}}")
    COMMANDS[sys.argv[1]]()
