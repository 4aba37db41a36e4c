"""Sizes at the limits: any chunk_size gives the answer of chunk_size = n (never a crash or
F = 0); widths, workspaces and thread counts too large get an error that says the limit and
the fix."""

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _kernels, _threads
from resnet_core._validation import MAX_BYTES
from conftest import make_data, random_point


def _passes(obj, x):
    part = obj.partial(x)
    z = x[: part.n_params]
    return [*obj.fun_and_grad(x), obj.hessp(x, x), part.stats(z).G]


@pytest.mark.parametrize("chunk", [51, 2**31, 2**62, 2**63 - 1, 2**64, 10**30])
def test_chunk_larger_than_n_is_chunk_n(rng, chunk):
    X, y, sw = make_data(rng, 50, 3, "logistic")
    kw = dict(widths=(4, 3), sample_weight=sw, n_threads=2)
    obj = rc.Objective(X, y, chunk_size=50, **kw)
    x = random_point(obj, rng)
    expected = _passes(obj, x)
    big = rc.Objective(X, y, chunk_size=chunk, **kw)
    assert big._engine.chunk == 50
    for a, b in zip(_passes(big, x), expected):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("chunk", [2**62, 2**63 - 1])
def test_the_kernels_bound_the_chunk_by_n(rng, chunk):
    X, y, sw = make_data(rng, 40, 3, "squared")
    obj = rc.FeatureObjective(X, np.tanh(X[:, :2]), y, loss="squared", sample_weight=sw,
                              chunk_size=40)
    z = 0.3 * rng.standard_normal(obj.n_params)
    F, g = obj.fun_and_grad(z)
    obj._engine.chunk = chunk  # past the validation, straight to the kernels
    F2, g2 = obj.fun_and_grad(z + 0.0)
    assert F2 == F and np.array_equal(g2, g)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("64", TypeError)])
def test_chunk_size_must_be_a_positive_integer(rng, bad, error):
    X, y, _ = make_data(rng, 20, 2, "logistic")
    with pytest.raises(error, match="chunk_size must be an integer >= 1"):
        rc.Objective(X, y, widths=(2,), chunk_size=bad)


def test_workspace_limit_names_the_largest_chunk(rng):
    n, width = 20_000, 10**8
    X, y, _ = make_data(rng, n, 1, "logistic")
    per_sample = _kernels.workspace_entries(1, [1, width], width) - \
        _kernels.workspace_entries(0, [1, width], width)
    fit = (MAX_BYTES // 8 - _kernels.workspace_entries(0, [1, width], width)) // per_sample
    assert 1 < fit < n
    with pytest.raises(ValueError, match=f"workspace for chunks of {n} samples and widths "
                       rf"\({width},\) would take .* TiB, over the limit of 1 TiB; use a "
                       f"smaller chunk_size \\(at most {fit} here\\)"):
        rc.Objective(X, y, widths=(width,), chunk_size=n)
    rc.Objective(X, y, widths=(width,), chunk_size=fit)  # constructed only: no pass
    with pytest.raises(ValueError, match="over the limit"):
        rc.Objective(X, y, widths=(width,), chunk_size=fit + 1)
    # float32 halves the bytes: twice the chunk fits
    rc.Objective(X.astype(np.float32), y, widths=(width,), chunk_size=2 * fit)


@pytest.mark.parametrize("widths", [(2**62,), (10**9, 10**9), (2**70, 3)])
def test_absurd_widths(rng, widths):
    X, y, _ = make_data(rng, 20, 3, "logistic")
    with pytest.raises(ValueError, match=r"theta for widths .* over the limit of 1 TiB; use "
                                         "narrower or fewer layers"):
        rc.Objective(X, y, widths=widths)


def test_workspace_too_large_even_for_one_sample(rng):
    X, y, _ = make_data(rng, 20, 1, "logistic")
    width = 2 * 10**10  # theta (1 x width) fits; one sample's workspace (~9 x width) does not
    with pytest.raises(ValueError, match="use narrower or fewer layers"):
        rc.Objective(X, y, widths=(width,), chunk_size=1)


def test_thread_count_limit(rng, monkeypatch):
    X, y, _ = make_data(rng, 20, 2, "logistic")
    with pytest.raises(ValueError, match=f"n_threads must be at most {_threads.MAX_THREADS}; "
                                         "got 100000: use fewer threads"):
        rc.Objective(X, y, widths=(2,), n_threads=100_000)
    monkeypatch.setenv("OMP_NUM_THREADS", "100000")
    assert rc.Objective(X, y, widths=(2,)).n_threads == _threads.MAX_THREADS
