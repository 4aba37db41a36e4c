"""``python benchmarks/vector_outputs.py [--quick] [--repeat N] [--json PATH]``: the cost of
c outputs (issue 11).

At the reference size (n = 200000, d = 64, widths (64, 64), tanh, float64) it times
``fun_and_grad`` of

- resnet-core with c = 10 and the cross-entropy (labels 0..9),
- resnet-core with c = 1 and the logistic loss (today's scalar objective),
- JAX ``jit(value_and_grad)`` and PyTorch (eager autograd) on the c = 10 objective, when
  installed,

each at fresh points (two points in turn, :func:`resnet_core.bench.timing.alternating`), in
alternating blocks: every round calls each implementation once, in turn, so a change of load
on a shared machine hits them all alike.  It first checks that the frameworks agree with
resnet-core to 1e-8 (value and gradient), then prints the medians and the ratios
``c=10 / c=1`` (target <= 1.3) and ``framework / resnet-core`` (target >= 1.5 for JAX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import resnet_core as rc
from resnet_core.bench import frameworks as fw
from resnet_core.bench.timing import alternating

REFERENCE = dict(n=200_000, d=64, widths=(64, 64), c=10)
SMALL = dict(n=20_000, d=16, widths=(16, 16), c=10)
AGREE = 1e-8


def make_labels(X, c: int, seed: int) -> np.ndarray:
    """Labels 0..c-1: the argmax of a random linear score plus noise (every class present)."""
    rng = np.random.default_rng(seed)
    scores = X @ rng.standard_normal((X.shape[1], c)) + rng.standard_normal((X.shape[0], c))
    y = np.argmax(scores, axis=1)
    y[:c] = np.arange(c)
    return y


def _unpack(xp, x, d, c, widths):
    """``W (c, d), V (d, k), [(W_l, b_l)]`` from the flat vector (the objective's layout)."""
    k = widths[-1]
    W = x[: c * d].reshape(c, d)
    V = x[c * d : c * d + d * k].reshape(d, k)
    off, fan, layers = c * d + d * k, d, []
    for h in widths:
        Wl = x[off : off + h * fan].reshape(h, fan)
        off += h * fan
        layers.append((Wl, x[off : off + h]))
        off += h
        fan = h
    return W, V, layers


def jax_impl(X, y, d, c, widths):
    jax = fw.jax_available()
    if jax is None:
        return None
    jnp = jax.numpy

    def f(x, X, y):
        W, V, layers = _unpack(jnp, x, d, c, widths)
        H = X
        for Wl, b in layers:
            H = jnp.tanh(H @ Wl.T + b)
        P = X @ W.T + H @ (W @ V).T
        lse = jax.scipy.special.logsumexp(P, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(P, y[:, None], axis=1)[:, 0])

    vg = jax.jit(jax.value_and_grad(f))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def value_and_grad(x):
        val, g = vg(jnp.asarray(x), Xj, yj)
        return float(val), np.asarray(g)

    return value_and_grad


def torch_impl(X, y, d, c, widths):
    torch = fw.torch_available()
    if torch is None:
        return None
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    ce = torch.nn.functional.cross_entropy

    def value_and_grad(x):
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        W, V, layers = _unpack(torch, xt, d, c, widths)
        H = Xt
        for Wl, b in layers:
            H = torch.tanh(torch.addmm(b, H, Wl.T))
        val = ce(Xt @ W.T + H @ (W @ V).T, yt)
        (g,) = torch.autograd.grad(val, xt)
        return float(val.detach()), g.numpy()

    return value_and_grad


def interleaved(fns: dict, points: dict, repeat: int, warmup: int = 2) -> dict:
    """Median seconds of each ``fns[name](points[name]())``, timed round by round: every
    round calls each function once, in turn."""
    for _ in range(warmup):
        for name, fn in fns.items():
            fn(points[name]())
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            x = points[name]()
            t0 = time.perf_counter()
            fn(x)
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def run(n: int, d: int, widths, c: int, repeat: int) -> dict:
    X, y_bin = fw.make_data(n, d, seed=0)
    y = make_labels(X, c, seed=3)
    vec = rc.Objective(X, y, loss="cross_entropy", widths=widths, activation="tanh")
    sca = rc.Objective(X, y_bin, loss="logistic", widths=widths, activation="tanh")
    xv, xs = vec.init(1), sca.init(1)
    fns = {"resnet-core c=10 cross_entropy": vec.fun_and_grad,
           "resnet-core c=1 logistic": sca.fun_and_grad}
    points = {"resnet-core c=10 cross_entropy": alternating(xv),
              "resnet-core c=1 logistic": alternating(xs)}
    F0, g0 = vec.fun_and_grad(xv)
    for name, build in (("jax jit", jax_impl), ("torch autograd", torch_impl)):
        impl = build(X, y, d, c, tuple(widths))
        if impl is None:
            print(f"({name}: not installed)")
            continue
        F1, g1 = impl(xv)
        err = max(abs(F1 - F0) / abs(F0), np.abs(g1 - g0).max() / np.abs(g0).max())
        if not err <= AGREE:
            raise SystemExit(f"{name} disagrees with resnet-core: {err:.2e} > {AGREE}")
        fns[f"{name} c=10"] = impl
        points[f"{name} c=10"] = alternating(xv)
    times = interleaved(fns, points, repeat)
    ours = times["resnet-core c=10 cross_entropy"]
    ratios = {"c=10 / c=1": ours / times["resnet-core c=1 logistic"]}
    for name, t in times.items():
        if not name.startswith("resnet-core"):
            ratios[f"{name} / resnet-core c=10"] = t / ours
    return {"size": dict(n=n, d=d, widths=list(widths), c=c), "repeat": repeat,
            "median_seconds": times, "ratios": ratios}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small problem (seconds)")
    ap.add_argument("--repeat", type=int, default=7, help="timed rounds (median)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    size = SMALL if args.quick else REFERENCE
    out = run(size["n"], size["d"], size["widths"], size["c"], args.repeat)
    print(f"fun_and_grad, n={size['n']}, d={size['d']}, widths={size['widths']}, "
          f"median of {args.repeat} alternating rounds:")
    for name, t in out["median_seconds"].items():
        print(f"  {name:34s} {t * 1e3:9.1f} ms")
    for name, r in out["ratios"].items():
        print(f"  {name:34s} {r:9.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
