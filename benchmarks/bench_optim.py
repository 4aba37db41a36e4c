"""pytest-benchmark suites of the optimisers (see bench_objective.py for the sizes)."""

import numpy as np
import pytest

import resnet_core as rc

# one perturbation at the saddle, then plain steps: a fixed number of iterations
FIXED = dict(eps=1e-3, ell=1.0, rho=1.0, eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4,
             t_thres=10**9)
STEPS = [pytest.param(100_000, id="1e5"),
         pytest.param(1_000_000, id="1e6", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def example1():
    return rc.theory.example1(0.1)


@pytest.mark.parametrize("n_steps", STEPS)
def test_pgd_example1(benchmark, example1, n_steps):
    obj, z0 = example1
    benchmark.group = f"PGD Example 1, {n_steps} steps"
    res = benchmark(lambda: rc.perturbed_gd(obj, z0, max_iter=n_steps, seed=0, record_every=0,
                                            **FIXED))
    assert res.nit == n_steps and res.escaped


@pytest.mark.parametrize("threads", [1, None])
def test_escape_batch(benchmark, example1, threads):
    obj, z0 = example1
    benchmark.group = "PGD Example 1, 1024 runs"
    st = benchmark(lambda: rc.studies.escape(obj, z0, n_runs=1024, max_iter=2_000,
                                             n_threads=threads, stop_at_escape=False,
                                             **FIXED))
    assert st.escaped.all()


def test_projected_sgd_steps(benchmark):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 16))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    obj = rc.Objective(X, y, widths=(16, 16), head="skip")
    x0 = obj.init(0)
    benchmark.group = "projected SGD, 10000 steps"
    res = benchmark(lambda: rc.projected_sgd(obj, x0, T=10_000, radius=5.0, seed=0,
                                             eval_every=10_000))
    assert res.max_norm_wv <= 5.0 + 1e-12


# FeatureObjective, residual head, n = 1000, d = k = 8: the squared loss runs on second
# moments (O((d + k)^2) per step), the logistic loss on the samples
FEATURE_STEPS = [pytest.param("squared", 10_000, id="squared-1e4"),
                 pytest.param("squared", 1_000_000, id="squared-1e6", marks=pytest.mark.slow),
                 pytest.param("logistic", 200, id="logistic-2e2"),
                 pytest.param("logistic", 20_000, id="logistic-2e4", marks=pytest.mark.slow)]


@pytest.mark.parametrize("loss, n_steps", FEATURE_STEPS)
def test_gd_feature_objective(benchmark, loss, n_steps):
    from pgd_vs_handwritten import feature_problem

    fo, x0 = feature_problem(loss=loss)
    benchmark.group = f"GD FeatureObjective n=1000 d=k=8 {loss}, {n_steps} steps"
    res = benchmark(lambda: rc.gradient_descent(fo, x0, eta=0.05, eps=-1.0,
                                                max_iter=n_steps, record_every=0))
    assert res.compiled and res.nit == n_steps and res.fun < fo.fun(x0)


def test_vs_handwritten_smoke():
    """benchmarks/pgd_vs_handwritten.py runs (tiny sizes): it checks that the hand-written
    loops solve the same problem."""
    from pgd_vs_handwritten import rows

    out = rows(repeat=1, quick=True)
    assert all(ours > 0 and hand > 0 for _, _, ours, hand in out)
