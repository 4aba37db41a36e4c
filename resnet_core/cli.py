"""Command line: ``resnet-core demo`` (also ``python -m resnet_core demo``).

Until the paper's full reproduction lands, the demo builds a residual problem, evaluates
the objective, its derivatives and the linear baseline, checks them against each other,
and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import Objective, linear_baseline


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def demo(n: int = 50_000, d: int = 16, widths=(32, 32), seed: int = 0, out=None) -> dict:
    """Evaluate a residual network on a synthetic classification problem; return the
    numbers printed."""
    out = sys.stdout if out is None else out
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * rng.standard_normal(n) > 0,
                 1.0, -1.0)
    obj = Objective(X, y, loss="logistic", widths=widths, activation="tanh")
    x = obj.init(seed)
    (F, g), t_fg = _timed(obj.fun_and_grad, x)
    p = rng.standard_normal(obj.n_params)
    Hp, t_hvp = _timed(obj.hessp, x, p)
    eps = 1e-6
    fd = (obj.grad(x + eps * p) - obj.grad(x - eps * p)) / (2 * eps)
    part = obj.partial(x)
    z = x[: part.n_params]
    st, t_stats = _timed(part.stats, z)
    lam_min = float(np.linalg.eigvalsh(part.hessian(z))[0])
    base, t_lin = _timed(linear_baseline, X, y)
    rows = {
        "samples n / inputs d / widths": f"{n} / {d} / {widths}",
        "parameters (all / (w, V))": f"{obj.n_params} / {part.n_params}",
        "F(w, V, theta) at init": F,
        "||grad F|| (all parameters)": float(np.linalg.norm(g)),
        "||grad_(w,V) F||": float(np.linalg.norm(st.grad)),
        "lambda_min of the (w, V) Hessian": lam_min,
        "HVP vs central differences (rel.)": float(np.abs(Hp - fd).max() / np.abs(fd).max()),
        "F_lin(w*) best linear predictor": base.fun,
        "gap F - F_lin(w*)": F - base.fun,
        "time fun_and_grad [ms]": 1e3 * t_fg,
        "time full hessp [ms]": 1e3 * t_hvp,
        "time (w, V) statistics [ms]": 1e3 * t_stats,
        "time linear baseline [ms]": 1e3 * t_lin,
    }
    width = max(map(len, rows))
    print("resnet-core demo: a residual unit p = w^T (x + V f(x)) on synthetic data", file=out)
    for key, value in rows.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {shown}", file=out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="resnet-core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="evaluate a residual problem and print a table")
    p_demo.add_argument("--quick", action="store_true", help="a small problem")
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(n=5_000 if args.quick else 50_000, seed=args.seed)
    return 0


__all__ = ["demo", "main"]
