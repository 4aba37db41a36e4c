"""The squared loss on fixed features runs on second moments (``_loops.moment_data``): the
same iterates as the loop on the samples to rounding, the same perturbations, and the
same escape iterations on Example 1; any n runs compiled."""

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _loops, _pgd, theory


def _problem(rng, head, feature_bias, weighted, n=40, d=3, k=2):
    X = rng.standard_normal((n, d))
    Phi = np.tanh(X @ rng.standard_normal((d, k)) + 0.3)
    y = X[:, 0] - 0.5 * Phi[:, -1] + 0.1 * rng.standard_normal(n)
    sw = rng.uniform(0.2, 2.0, n) if weighted else None
    fo = rc.FeatureObjective(X, Phi, y, loss="squared", head=head, sample_weight=sw,
                             feature_bias=feature_bias)
    return fo, 0.3 * rng.standard_normal(fo.n_params)


def _both(monkeypatch, run):
    fast = run()
    monkeypatch.setattr(_pgd, "MOMENTS", False)
    slow = run()
    monkeypatch.setattr(_pgd, "MOMENTS", True)
    return fast, slow


@pytest.mark.parametrize("head", ["residual", "skip"])
@pytest.mark.parametrize("feature_bias", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_moments_match_samples(rng, monkeypatch, head, feature_bias, weighted):
    fo, z0 = _problem(rng, head, feature_bias, weighted)
    fast, slow = _both(monkeypatch, lambda: rc.gradient_descent(
        fo, z0, eta=0.05, max_iter=300, eps=-1.0, record_every=1))
    assert fast.compiled and slow.compiled and fast.nit == slow.nit == 300
    scale = np.linalg.norm(slow.x)
    assert np.linalg.norm(fast.x - slow.x) <= 1e-12 * scale
    F, G = slow.history["fun"], slow.history["grad_norm"]
    # F by moments: 1/2 s^T M s - s^T b + c, rounding relative to c (not to F)
    assert np.allclose(fast.history["fun"], F, rtol=1e-12, atol=1e-14 * fo.fun(z0))
    assert np.allclose(fast.history["grad_norm"], G, rtol=1e-10, atol=1e-13 * G[0])
    # PGD: same perturbation draws at the same iterations
    kw = dict(eps=1e-2, ell=4.0, rho=4.0, t_thres=20, g_thres=1e-1, max_iter=400, seed=3,
              record_every=0)
    fast, slow = _both(monkeypatch, lambda: rc.perturbed_gd(fo, z0, **kw))
    assert fast.n_perturbations > 1
    assert np.array_equal(fast.perturbation_iters, slow.perturbation_iters)
    assert fast.nit == slow.nit and fast.status == slow.status
    assert np.linalg.norm(fast.x - slow.x) <= 1e-12 * np.linalg.norm(slow.x)


def test_example1_escape_iterations_identical(monkeypatch):
    obj, z0 = theory.example1(0.1)
    m = _loops.moment_data(obj.X, obj.Phi, obj.y, obj.sample_weight, True)
    assert m[4] == _loops.MOMENTS and m[0].shape == (2, 2)
    for seed in range(8):
        kw = dict(eps=1e-3, ell=1.0, rho=1.0, eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4,
                  t_thres=10**9, max_iter=1000, seed=seed, record_every=0)
        fast, slow = _both(monkeypatch, lambda: rc.perturbed_gd(obj, z0, **kw))
        assert fast.escaped and fast.escape_iter == slow.escape_iter
        assert np.array_equal(fast.perturbation_iters, slow.perturbation_iters)
        assert fast.nit == slow.nit
        assert np.allclose(fast.x, slow.x, rtol=1e-12)
    # the saddle stays exactly stationary on moments
    stay = rc.gradient_descent(obj, z0, eta=0.1, eps=-1.0, max_iter=100)
    assert np.array_equal(stay.x, z0)


def test_moments_any_n(rng, monkeypatch):
    """Above the work limit of the loop on samples, the squared loss still runs compiled
    (and agrees with the streamed loop); the logistic loss streams."""
    fo, z0 = _problem(rng, "residual", True, True, n=300)
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    fast, slow = _both(monkeypatch, lambda: rc.gradient_descent(
        fo, z0, eta=0.05, max_iter=200, eps=-1.0, record_every=50))
    assert fast.compiled and not slow.compiled
    assert np.linalg.norm(fast.x - slow.x) <= 1e-12 * np.linalg.norm(slow.x)
    assert np.allclose(fast.history["fun"], slow.history["fun"], rtol=1e-12,
                       atol=1e-14 * fo.fun(z0))
    lo = rc.FeatureObjective(fo.X, np.tanh(fo.X[:, :2]), np.sign(fo.X[:, 0]))
    assert not rc.gradient_descent(lo, np.zeros(lo.n_params), eta=0.1, max_iter=2).compiled
    # moment data in blocks: the same M, b, c as in one block
    one = _loops.moment_data(fo.X, fo.Phi, fo.y, fo.sample_weight, True)
    blk = _loops.moment_data(fo.X, fo.Phi, fo.y, fo.sample_weight, True, rows=7)
    for a, b in zip(one[:4], blk[:4]):
        assert np.allclose(a, b, rtol=1e-13, atol=1e-13)
