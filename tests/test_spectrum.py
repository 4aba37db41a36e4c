"""Hessian spectrum, trace and density against the dense Hessian."""

import numpy as np
import pytest

import resnet_core as rc
from conftest import make_data, random_point


@pytest.fixture
def problem(rng):
    X, y, sw = make_data(rng, 300, 6, "logistic")
    obj = rc.Objective(X, y, widths=(8, 8), sample_weight=sw)
    x = random_point(obj, rng)
    return obj, x


def _dense(matvec, dim):
    return np.column_stack([matvec(e) for e in np.eye(dim)])


@pytest.mark.parametrize("wrt", ["wV", "all"])
def test_extreme_eigenpairs(problem, wrt):
    obj, x = problem
    matvec, dim = rc.spectrum.hessian_operator(obj, x, wrt)
    H = _dense(matvec, dim)
    exact = np.linalg.eigvalsh(0.5 * (H + H.T))
    sp = rc.hessian_spectrum(obj, x, wrt=wrt, k=3)
    assert sp.converged and sp.values.size == 6
    scale = np.abs(exact).max()
    assert np.allclose(sp.values, np.r_[exact[:3], exact[-3:]], atol=1e-8 * scale)
    assert np.all(sp.residuals < 1e-7 * scale)
    for i in range(6):
        v = sp.vectors[:, i]
        assert np.allclose(matvec(v), sp.values[i] * v, atol=1e-7 * scale)


def test_small_problem_uses_the_dense_spectrum(rng):
    obj, z0 = rc.theory.example1(0.1)
    sp = rc.hessian_spectrum(obj, z0, k=1)
    assert np.allclose(sp.values, [-0.1, 0.1])
    assert rc.hessian_spectrum(obj, z0, k=1, which="smallest").values == pytest.approx([-0.1])


def test_trace_estimators(problem):
    obj, x = problem
    part = obj.partial(x)
    z = x[:part.n_params]
    H = part.hessian(z)
    exact = rc.hessian_trace(obj, x, method="exact")
    assert exact.estimate == pytest.approx(np.trace(H), rel=1e-12)
    fro = np.linalg.norm(H)
    hpp = rc.hessian_trace(obj, x, method="hutch++", n_products=60, seed=0)
    hut = rc.hessian_trace(obj, x, method="hutchinson", n_products=60, seed=0)
    assert abs(hpp.estimate - np.trace(H)) < 0.2 * fro
    assert abs(hut.estimate - np.trace(H)) < 5 * hut.std_error + 1e-12
    full = _dense(rc.spectrum.hessian_operator(obj, x, "all")[0], obj.n_params)
    hall = rc.hessian_trace(obj, x, wrt="all", n_products=obj.n_params * 3, seed=1)
    assert hall.estimate == pytest.approx(np.trace(full), rel=1e-8)  # m >= 3 dim: exact


def test_spectral_density(problem):
    obj, x = problem
    part = obj.partial(x)
    z = x[:part.n_params]
    ev = np.linalg.eigvalsh(part.hessian(z))
    sd = rc.spectral_density(obj, x, n_probes=6, lanczos_steps=part.n_params, seed=0)
    assert np.trapezoid(sd.density, sd.grid) == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(sd.weights.sum(axis=1), 1.0)
    # full-length Lanczos: the quadrature nodes reach the extreme eigenvalues
    assert sd.nodes.min() == pytest.approx(ev[0], abs=1e-8 * np.abs(ev).max())
    assert sd.nodes.max() == pytest.approx(ev[-1], abs=1e-8 * np.abs(ev).max())
    # Gauss quadrature is exact for f(t) = t: sum_j tau_j^2 theta_j = v^T H v / v^T v
    H = part.hessian(z)
    probes = np.random.default_rng(0).choice([-1.0, 1.0], size=(6, part.n_params))
    rayleigh = np.einsum("ij,jk,ik->i", probes, H, probes) / part.n_params
    assert np.allclose((sd.weights * sd.nodes).sum(axis=1), rayleigh, rtol=1e-10)


def test_spectrum_argument_errors(problem):
    obj, x = problem
    with pytest.raises(ValueError, match="wrt must be one of"):
        rc.hessian_spectrum(obj, x, wrt="theta")
    with pytest.raises(ValueError, match="which must be one of"):
        rc.hessian_spectrum(obj, x, which="middle")
    with pytest.raises(TypeError, match="needs an Objective"):
        part = obj.partial(x)
        rc.hessian_spectrum(part, x[:part.n_params], wrt="all")
    with pytest.raises(ValueError, match="method must be one of"):
        rc.hessian_trace(obj, x, method="sketch")
