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
    sp = rc.hessian_spectrum(obj, x, wrt=wrt, n_eigs=3)
    assert sp.converged and sp.values.size == 6
    scale = np.abs(exact).max()
    assert np.allclose(sp.values, np.r_[exact[:3], exact[-3:]], atol=1e-8 * scale)
    assert np.all(sp.residuals < 1e-7 * scale)
    for i in range(6):
        v = sp.vectors[:, i]
        assert np.allclose(matvec(v), sp.values[i] * v, atol=1e-7 * scale)


def test_small_problem_uses_the_dense_spectrum(rng):
    obj, z0 = rc.theory.example1(0.1)
    sp = rc.hessian_spectrum(obj, z0, n_eigs=1)
    assert np.allclose(sp.values, [-0.1, 0.1])
    assert rc.hessian_spectrum(obj, z0, n_eigs=1, which="smallest").values == pytest.approx([-0.1])


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


def _dense_partial(fo, z):
    H = np.column_stack([fo.hessp(z, e) for e in np.eye(fo.n_params)])
    return np.linalg.eigvalsh(0.5 * (H + H.T))


def _cases(rng):
    X, y, sw = make_data(rng, 150, 5, "logistic")
    Phi = np.tanh(X @ rng.standard_normal((5, 3)))
    fo = rc.FeatureObjective(X, Phi, y, sample_weight=sw)
    z = 0.3 * rng.standard_normal(fo.n_params)
    at_zero = z.copy()
    at_zero[:5] = 0.0  # w = 0: the other coordinates of the reduced matrix
    skip = rc.FeatureObjective(X, Phi, y, head="skip")
    labels = np.argmax(X[:, :3], axis=1)
    vec = rc.FeatureObjective(X, Phi, labels, loss="cross_entropy", sample_weight=sw)
    vskip = rc.FeatureObjective(X, Phi, labels, loss="cross_entropy", head="skip")
    vsq = rc.FeatureObjective(X, Phi, X[:, :2] + 0.1, loss="squared", sample_weight=sw)
    return [(fo, z), (fo, at_zero), (skip, 0.3 * rng.standard_normal(skip.n_params)),
            (vec, 0.3 * rng.standard_normal(vec.n_params)),
            (vskip, 0.3 * rng.standard_normal(vskip.n_params)),
            (vsq, 0.3 * rng.standard_normal(vsq.n_params))]


def _vector_objectives(rng):
    """c-output objectives: cross-entropy and the (n, c) squared loss, both heads, one on
    streamed MLP features."""
    X, y, sw = make_data(rng, 80, 4, "logistic")
    Phi = np.tanh(X @ rng.standard_normal((4, 3)))
    labels = np.argmax(X[:, :3], axis=1)
    out = []
    for head in ("residual", "skip"):
        for loss, target in (("cross_entropy", labels), ("squared", X[:, :3] - 0.2)):
            fo = rc.FeatureObjective(X, Phi, target, loss=loss, head=head, sample_weight=sw)
            out.append((fo, 0.4 * rng.standard_normal(fo.n_params)))
    obj = rc.Objective(X, labels, loss="cross_entropy", widths=(3,), sample_weight=sw)
    out.append((obj, obj.init(seed=3)))
    return out


@pytest.mark.parametrize("case", range(5))
def test_exact_trace_with_c_outputs(rng, case):
    """hessian_trace(method="exact") with c outputs: the dense partial Hessian's trace."""
    objective, x = _vector_objectives(rng)[case]
    part = objective.partial(x) if isinstance(objective, rc.Objective) else objective
    z = x[:part.n_params]
    H = rc._certificate.dense_hessian(part, z)
    exact = rc.hessian_trace(objective, x, method="exact")
    assert exact.method == "exact" and exact.n_products == 0
    assert exact.estimate == pytest.approx(np.trace(H), rel=1e-11)


def test_spectra_with_c_outputs(rng):
    """hessian_spectrum (reduced and Lanczos) and spectral_density with c outputs."""
    objective, x = _vector_objectives(rng)[4]  # an MLP's features, cross-entropy
    part = objective.partial(x)
    z = x[:part.n_params]
    ev = np.linalg.eigvalsh(rc._certificate.dense_hessian(part, z))
    scale = np.abs(ev).max()
    red = rc.hessian_spectrum(objective, x, n_eigs=2)
    lan = rc.hessian_spectrum(objective, x, n_eigs=2, method="lanczos")
    assert red.method == "reduced" and lan.method == "lanczos" and lan.converged
    for sp in (red, lan):
        assert np.allclose(sp.values, ev[[0, 1, -2, -1]], atol=1e-8 * scale)
    sd = rc.spectral_density(objective, x, n_probes=3, lanczos_steps=part.n_params)
    assert sd.nodes.min() == pytest.approx(ev[0], abs=1e-8 * scale)
    assert sd.nodes.max() == pytest.approx(ev[-1], abs=1e-8 * scale)


def test_seeds_default_to_0_and_k_is_n_eigs(problem):
    obj, x = problem
    a = rc.hessian_trace(obj, x, n_products=12)
    assert a.estimate == rc.hessian_trace(obj, x, n_products=12, seed=0).estimate
    d1 = rc.spectral_density(obj, x, n_probes=2, lanczos_steps=5)
    d2 = rc.spectral_density(obj, x, n_probes=2, lanczos_steps=5, seed=0)
    assert np.array_equal(d1.density, d2.density)
    with pytest.warns(DeprecationWarning, match="'k'.*'n_eigs'"):
        old = rc.hessian_spectrum(obj, x, k=2, which="smallest")
    assert np.array_equal(old.values, rc.hessian_spectrum(obj, x, n_eigs=2,
                                                          which="smallest").values)


@pytest.mark.parametrize("case", range(6))
def test_reduced_spectrum_is_exact(rng, case):
    """wrt="wV" takes the reduced matrix: the dense spectrum's ends, zeros included, with
    eigenvectors whose residuals from hessp are rounding."""
    fo, z = _cases(rng)[case]
    exact = _dense_partial(fo, z)
    scale = np.abs(exact).max()
    for which, idx in (("smallest", [0, 1, 2]), ("largest", [-3, -2, -1]),
                       ("both", [0, 1, 2, -3, -2, -1])):
        sp = rc.hessian_spectrum(fo, z, n_eigs=3, which=which)
        assert sp.method == "reduced" and sp.converged and sp.n_products == len(idx)
        assert np.allclose(sp.values, exact[idx], atol=1e-12 * scale)
        assert np.all(sp.residuals < 1e-12 * scale)
        assert np.allclose(np.linalg.norm(sp.vectors, axis=0), 1.0)
    lots = rc.hessian_spectrum(fo, z, n_eigs=fo.n_params // 2 - 1, which="smallest")
    assert np.allclose(lots.values, exact[:lots.values.size], atol=1e-12 * scale)
    assert np.all(lots.residuals < 1e-12 * scale)  # the zeros' eigenvectors too


def test_lanczos_budget_says_not_converged(problem, tqdm_bars):
    obj, x = problem
    full = rc.hessian_spectrum(obj, x, wrt="all", n_eigs=2, which="smallest")
    assert full.method == "lanczos" and full.converged and "converged" in repr(full)
    cut = rc.hessian_spectrum(obj, x, wrt="all", n_eigs=2, which="smallest", max_products=25)
    assert not cut.converged and cut.message.startswith("NOT converged")
    assert "within" in cut.message and cut.n_products <= 25 + cut.values.size
    assert cut.residuals.size == cut.values.size
    forced = rc.hessian_spectrum(obj, x, n_eigs=2, which="smallest", method="lanczos")
    reduced = rc.hessian_spectrum(obj, x, n_eigs=2, which="smallest")
    assert forced.method == "lanczos" and reduced.method == "reduced"
    assert np.allclose(forced.values, reduced.values, atol=1e-8 * np.abs(full.values).max())
    bars = tqdm_bars
    shown = rc.hessian_spectrum(obj, x, wrt="all", n_eigs=2, which="smallest", progress=True)
    assert len(bars) == 1 and bars[0].n == shown.n_products
    with pytest.raises(ValueError, match="method='reduced' is for wrt='wV'"):
        rc.hessian_spectrum(obj, x, wrt="all", method="reduced")


def test_too_small_ncv_names_n_eigs(problem):
    """The Krylov basis must exceed the pairs asked for: the error names the public
    argument (``n_eigs``, formerly ``k``)."""
    obj, x = problem
    with pytest.raises(ValueError, match=r"ncv must exceed .*n_eigs = 4.*got 3"):
        rc.hessian_spectrum(obj, x, wrt="all", n_eigs=4, ncv=3, method="lanczos")
