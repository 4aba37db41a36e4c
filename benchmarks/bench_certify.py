"""pytest-benchmark suites of the certificates (see bench_objective.py for the sizes)."""

import numpy as np
import pytest

import resnet_core as rc
from problems import SIZES, make_objective
from resnet_core.bench.timing import alternating


@pytest.fixture(scope="module", params=SIZES)
def features(request):
    obj, x = make_objective(**request.param)
    part = obj.partial(x, materialize=True)
    part.linear_baseline()  # once per data set; cached, not timed
    return request.param, obj, x, part, x[:part.n_params].copy()


def test_check_sopsp_structured(benchmark, features):
    size, obj, x, part, z = features
    benchmark.group = f"certificate {size['n']}"
    nxt = alternating(z)
    report = benchmark(lambda: rc.check_sopsp(part, nxt(), eps=1e-3, method="structured"))
    assert np.isfinite(report.lambda_min) and report.lambda_min_converged


def test_one_training_step_for_scale(benchmark, features):
    """The yardstick of the certificate: one value + gradient over all parameters."""
    size, obj, x, part, z = features
    benchmark.group = f"certificate {size['n']}"
    nxt = alternating(x)
    benchmark(lambda: obj.fun_and_grad(nxt()))


def test_lanczos_on_cached_statistics(benchmark, features):
    size, obj, x, part, z = features
    benchmark.group = f"certificate {size['n']}"
    part.hessp(z, z)
    part.hessp(z, z)
    lam = benchmark(lambda: rc.certify.lambda_min_lanczos(part, z))
    assert lam.converged
