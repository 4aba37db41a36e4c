"""Ctrl-C stops the compiled loops (PGD, GD, escape studies, projected SGD), the streamed
one and the linear baseline's threaded Gram passes within a fraction of a second, and the
loops' block sizes never change a result.

The SIGINT test runs the loops in a child process: each case runs for 10**9 iterations (a
minute and more), gets a SIGINT after about a second, and must raise KeyboardInterrupt within
``LATENCY`` seconds (measured here at 0.02-0.07 s; generous for a loaded machine); the child
then runs the case's short version again and checks it still gives what it gave before.  The
last KeyboardInterrupt is not caught: the child must die of it within ``EXIT`` seconds.
"""

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc

# Escape studies here run from arbitrary points on purpose (their loops are under test).
pytestmark = pytest.mark.filterwarnings("ignore::resnet_core.studies.NotASaddleWarning")
from resnet_core import _blocks, theory

ROOT = Path(__file__).resolve().parents[1]
LATENCY = 2.0
EXIT = 3.0
CASES = ("pgd", "gd", "escape", "sgd", "streamed", "baseline")

CHILD = textwrap.dedent(
    """
    import pickle, signal, sys, threading, time
    import numpy as np
    import resnet_core as rc
    from resnet_core import theory

    # a parent started in the background by a non-interactive shell passes SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    saddle, z0 = theory.example1(0.1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    skip = rc.Objective(X[:200], y[:200], widths=(4,), head="skip", n_threads=1)
    mlp = rc.Objective(X, y, widths=(8,), n_threads=1)
    const = dict(eps=1e-3, ell=1.0, rho=1.0)
    Xb = rng.standard_normal((200000, 20))  # the linear baseline's chunks on two threads
    yb = np.sign(Xb[:, 0] + Xb[:, 1] + rng.standard_normal(200000))

    def run(case, n):
        if case == "pgd":  # g_thres < 0: never converges
            r = rc.perturbed_gd(saddle, z0 + [0.3, 0.0], g_thres=-1.0, max_iter=n, **const)
        elif case == "gd":
            r = rc.gradient_descent(saddle, z0, eta=0.1, eps=-1.0, max_iter=n)
        elif case == "escape":
            r = rc.studies.escape(saddle, z0, method="gd", n_runs=8, max_iter=n, n_threads=2,
                                  **const)
        elif case == "sgd":
            r = rc.projected_sgd(skip, skip.init(0), T=n, radius=2.0, eval_every=n, seed=1)
        elif case == "baseline":  # Gram passes whose chunks run on a thread pool
            for _ in range(min(n, 2) if n < 10**9 else n):
                r = rc.linear_baseline(Xb, yb, n_threads=2)
        else:  # one streamed kernel pass per step
            r = rc.perturbed_gd(mlp, mlp.init(0), g_thres=-1.0, max_iter=n, wrt="all", **const)
        return pickle.dumps(r.x)

    for case in sys.argv[1:]:
        before = run(case, 10)
        print("ready", case, flush=True)
        try:
            run(case, 10**9)
            print("finished", case, flush=True)
        except KeyboardInterrupt:
            at = time.monotonic()
            same = run(case, 10) == before
            print("interrupted", case, at, same, threading.active_count(), flush=True)
            if case == sys.argv[-1]:
                raise
    """
)


def _lines(stream):
    """A queue of the stream's lines, read on a thread (so a wait can time out)."""
    lines = queue.Queue()

    def read():
        for line in stream:
            lines.put(line.split())
        lines.put(["EOF"])

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_sigint_stops_every_loop_within_a_second():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    child = subprocess.Popen([sys.executable, "-c", CHILD, *CASES], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = _lines(child.stdout)
    try:
        for case in CASES:
            assert lines.get(timeout=120) == ["ready", case]
            time.sleep(1.0)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            words = lines.get(timeout=60)
            assert words[:2] == ["interrupted", case], words
            latency = float(words[2]) - sent
            assert latency < LATENCY, f"{case}: KeyboardInterrupt {latency:.2f} s after SIGINT"
            assert words[3] == "True", f"{case}: a rerun after the interrupt differs"
            assert words[4] == "1", f"{case}: threads still running after the interrupt"
        assert child.wait(timeout=60) == -signal.SIGINT  # the last one is not caught
        assert time.monotonic() - sent < EXIT, f"exit {time.monotonic() - sent:.2f} s after SIGINT"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        err = child.stderr.read()
        sys.stderr.write(err)
    assert err.rstrip().endswith("KeyboardInterrupt")


def _outcomes():
    """Every compiled loop, with what identifies its result bit for bit."""
    obj, z0 = theory.example1(0.1)
    seen = []
    pgd = rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=5000, seed=3,
                          record_every=7, callback=lambda info: seen.append((info.nit, info.fun)))
    gd = rc.gradient_descent(obj, z0 + [0.3, 0.1], eta=0.1, max_iter=3000, record_every=13)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    fo = rc.FeatureObjective(X, np.tanh(rng.standard_normal((60, 2))), np.sign(X[:, 0] + 0.1),
                             n_threads=1)
    starts = 0.1 * rng.standard_normal((3, fo.n_params))
    studies = [rc.studies.escape(fo, starts, method=m, n_runs=6, max_iter=800, eps=1e-2,
                                 ell=4.0, rho=4.0, n_threads=T, seed=4)
               for m in ("pgd", "gd") for T in (1, 2)]
    skip = rc.Objective(X, np.sign(X[:, 0]), widths=(4,), head="skip", n_threads=1)
    sgd = rc.projected_sgd(skip, skip.init(0), T=500, radius=2.0, seed=2, batch_size=3,
                           eval_every=40)
    return ([pgd.x, pgd.nit, pgd.nfev, pgd.status, pgd.perturbation_iters, seen,
             *pgd.history.values(), gd.x, gd.nit, *gd.history.values(),
             sgd.x, sgd.x_last, sgd.curve_fun, sgd.max_norm_wv, sgd.max_norm_theta]
            + [getattr(s, f) for s in studies for f in ("x", "escape_iter", "final_F",
                                                         "final_grad_norm", "status",
                                                         "n_perturbations", "nit")])


@pytest.fixture(scope="module")
def timed():
    return _outcomes()


@pytest.mark.parametrize("steps", [1, 5, 10**9])
def test_block_sizes_do_not_change_results(timed, monkeypatch, steps):
    monkeypatch.setattr(_blocks, "FIXED_STEPS", steps)
    fixed = _outcomes()
    assert len(fixed) == len(timed)
    for i, (a, b) in enumerate(zip(fixed, timed)):
        assert np.array_equal(np.asarray(a), np.asarray(b)), i


def test_blocks_aim_at_the_target_time(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_blocks.time, "perf_counter", lambda: now[0])
    blocks = _blocks.StepBlocks()
    sizes = []
    for _ in range(8):  # 1 microsecond per step: grows 8-fold per block up to 0.1 s
        n = blocks.next()
        sizes.append(n)
        now[0] += n * 1e-6
        blocks.done(n)
    assert sizes == [1, 8, 64, 512, 4096, 32768, 100000, 100000]
    n = blocks.next()
    now[0] += n * 1e-4  # a step now takes 100 times longer: the next block shrinks at once
    blocks.done(n)
    assert blocks.next() == 1000
    now[0] += 0.5  # a loop that stopped at once leaves the size as it was
    blocks.done(0)
    assert blocks.next() == 1000
