"""A forked child computes what its parent computes, bit for bit, after the parent ran the
kernels on two threads: libgomp's thread pool does not survive ``fork`` and such a child
hung in its first parallel region (``resnet_core._threads`` runs a child's slots on its
calling thread).  A hang fails the test after ``TIMEOUT`` seconds instead of blocking."""

import multiprocessing
import os
import pickle
import time

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _gram_pass as gram_pass
from resnet_core import theory

TIMEOUT = 60


def _work(_=None):
    """Kernel passes on two threads (value, gradient, R-operator, Gram), an escape study on
    two Python threads over the numba loop, a threaded BLAS product, and the linear
    baseline's Gram passes on a thread pool, all built afresh (no cache inherited from the
    parent)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 4))
    y = np.where(X[:, 0] + rng.standard_normal(3000) > 0, 1.0, -1.0)
    obj = rc.Objective(X, y, widths=(8, 4), n_threads=2, chunk_size=64)
    x = obj.init(0)
    F, g = obj.fun_and_grad(x)
    part = obj.partial(x)
    z = x[: part.n_params]
    saddle, z0 = theory.example1(0.1)
    study = rc.studies.escape(saddle, z0, n_runs=8, max_iter=3000, eps=1e-3, ell=1.0,
                              rho=1.0, n_threads=2)
    A = rng.standard_normal((400, 400))
    old, gram_pass.CHUNK_BYTES = gram_pass.CHUNK_BYTES, 1 << 13  # chunks of 256 rows
    try:  # the linear baseline's Gram passes: chunks on a pool of two Python threads
        base = rc.linear_baseline(X, y, n_threads=2)
    finally:
        gram_pass.CHUNK_BYTES = old
    return [F, g, obj.hessp(x, g), part.stats(z).G, study.x, study.escape_iter, A @ A.T,
            base.w, base.fun, base.fun_error]


def _assert_same(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_multiprocessing_fork_pool():
    expected = _work()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_work, range(4)).get(timeout=TIMEOUT)
    for got in results:
        _assert_same(got, expected)


def test_os_fork(tmp_path):
    expected = _work()
    out = tmp_path / "child.pkl"
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            out.write_bytes(pickle.dumps(_work()))
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child hung for {TIMEOUT} s")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    _assert_same(pickle.loads(out.read_bytes()), expected)
