"""pytest-benchmark suites of the objective's kernels.

CI runs them once as smoke tests (``--benchmark-disable`` in pytest's addopts) at the small
size; ``make bench`` times them, the reference size (n=200000, d=64, widths (64, 64),
tanh, logistic, float64) included (``-m slow``).
"""

import numpy as np
import pytest

from problems import SIZES, make_objective
from resnet_core.bench.timing import alternating


@pytest.fixture(scope="module", params=SIZES)
def problem(request):
    obj, x = make_objective(**request.param)
    return request.param, obj, x


def test_fun_and_grad(benchmark, problem):
    size, obj, x = problem
    benchmark.group = f"fun_and_grad {size['n']}"
    nxt = alternating(x)
    F, g = benchmark(lambda: obj.fun_and_grad(nxt()))
    assert np.isfinite(F) and g.shape == (obj.n_params,)


def test_full_hessp(benchmark, problem):
    size, obj, x = problem
    benchmark.group = f"hessp {size['n']}"
    p = np.random.default_rng(1).standard_normal(obj.n_params)
    nxt = alternating(x)
    Hp = benchmark(lambda: obj.hessp(nxt(), p))
    assert np.all(np.isfinite(Hp))


@pytest.fixture(scope="module")
def partial(problem):
    size, obj, x = problem
    part = obj.partial(x, materialize=True)
    return size, part, x[:part.n_params].copy()


def test_feature_hessp_fresh(benchmark, partial):
    size, part, z = partial
    benchmark.group = f"feature hessp {size['n']}"
    p = np.random.default_rng(2).standard_normal(part.n_params)
    nxt = alternating(z)
    benchmark(lambda: part.hessp(nxt(), p))


def test_feature_hessp_repeated(benchmark, partial):
    size, part, z = partial
    benchmark.group = f"feature hessp {size['n']}"
    p = np.random.default_rng(3).standard_normal(part.n_params)
    part.hessp(z, p)
    part.hessp(z, p)  # the statistics are now cached at z
    benchmark(lambda: part.hessp(z, p))


def test_stats(benchmark, partial):
    size, part, z = partial
    benchmark.group = f"stats {size['n']}"
    nxt = alternating(z)
    st = benchmark(lambda: part.stats(nxt()))
    assert np.allclose(st.A, st.A.T)
