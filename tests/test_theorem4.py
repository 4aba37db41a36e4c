"""Theorem 4 with explicit constants (docs/theorem4.md): the formula the package returns, the
regret bound of projected online gradient descent checked on NumPy runs (one of them nearly
tight), the online-to-batch step on stochastic runs, and the bound on real projected SGD runs
that evaluate every iterate."""

import math

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import optim


def documented_rhs(b, l, r, T, delta, B=1, eta=None):
    """The formula of docs/theorem4.md, written out again."""
    eta = b / (l * math.sqrt(T)) if eta is None else eta
    regret = 4 * b**2 / (2 * eta * T) + eta * l**2 / 2
    deviation = r * math.sqrt(2 * math.log(1 / delta) / (B * T))
    return regret, deviation


def test_bound_formula():
    b, l, r, T, delta = 3.0, 7.0, 11.0, 2500, 0.05
    k = optim.theorem4_bound(radius=b, lipschitz=l, loss_bound=r, T=T, eta=b / (l * math.sqrt(T)),
                             delta=delta)
    assert k["regret_term"] == pytest.approx(2.5 * b * l / math.sqrt(T), rel=1e-14)
    assert k["deviation_term"] == pytest.approx(r * math.sqrt(2 * math.log(20) / T), rel=1e-14)
    assert k["theorem_rhs"] == k["regret_term"] + k["deviation_term"]
    assert k["theorem_rhs_order"] == pytest.approx((b * l + r * math.sqrt(math.log(20)))
                                                   / math.sqrt(T), rel=1e-14)
    k4 = optim.theorem4_bound(radius=b, lipschitz=l, loss_bound=r, T=T, eta=0.01, delta=delta,
                              batch_size=4)
    regret, deviation = documented_rhs(b, l, r, T, delta, B=4, eta=0.01)
    assert k4["regret_term"] == pytest.approx(regret, rel=1e-14)
    assert k4["deviation_term"] == pytest.approx(deviation, rel=1e-14)
    assert k4["deviation_term"] == pytest.approx(k["deviation_term"] / 2, rel=1e-14)


@pytest.fixture(scope="module")
def cancer():
    pytest.importorskip("sklearn")
    from resnet_core.reproduce import datasets

    X, y = datasets.load("breast_cancer")
    return rc.Objective(X, y, widths=(8,), head="skip", n_threads=1)


@pytest.fixture(scope="module")
def diabetes():
    pytest.importorskip("sklearn")
    from resnet_core.reproduce import datasets

    X, y = datasets.load("diabetes")
    return rc.Objective(X, y, loss="squared", widths=(4,), head="skip", n_threads=1)


def test_projected_sgd_returns_the_documented_bound(cancer):
    x0 = cancer.init(0)
    res = rc.projected_sgd(cancer, x0, T=400, radius=2.0, theta_radius=3.0, seed=0, delta=0.1)
    l, r = res.lipschitz, res.loss_bound
    assert res.lipschitz_is_bound and res.uniform_weights and res.success
    regret, deviation = documented_rhs(2.0, l, r, 400, 0.1)
    assert res.regret_term == pytest.approx(regret, rel=1e-12)
    assert res.regret_term == pytest.approx(2.5 * 2.0 * l / 20, rel=1e-12)
    assert res.deviation_term == pytest.approx(deviation, rel=1e-12)
    assert res.theorem_rhs == pytest.approx(regret + deviation, rel=1e-12)
    assert res.theorem_rhs_order == pytest.approx((2 * l + r * math.sqrt(math.log(10))) / 20)
    # a user's step and minibatches enter through the general formula
    mb = rc.projected_sgd(cancer, x0, T=400, radius=2.0, theta_radius=3.0, seed=0, delta=0.1,
                          eta=0.003, batch_size=9)
    regret, deviation = documented_rhs(2.0, l, r, 400, 0.1, B=9, eta=0.003)
    assert mb.regret_term == pytest.approx(regret, rel=1e-12)
    assert mb.deviation_term == pytest.approx(deviation, rel=1e-12)
    # the witness and the mean only look at z_1..z_T (F after 0..T-1 steps)
    F = res.curve_fun[res.curve_iter < 400]
    assert res.gap_witness == pytest.approx(F.min() - res.F_lin_star, abs=1e-14)
    assert res.gap_mean == pytest.approx(F.mean() - res.F_lin_star, abs=1e-14)
    assert not res.all_iterates_evaluated  # every T // 50 = 8 steps
    with pytest.raises(ValueError, match="delta must lie in"):
        rc.projected_sgd(cancer, x0, T=10, radius=1.0, delta=1.0)
    weighted = rc.Objective(cancer.X, cancer.y, widths=(8,), head="skip",
                            sample_weight=np.linspace(1, 2, cancer.n_samples))
    assert not rc.projected_sgd(weighted, weighted.init(0), T=10, radius=1.0).uniform_weights


def test_radius_is_the_name_and_b_still_works_for_one_release(cancer):
    x0 = cancer.init(0)
    new = rc.projected_sgd(cancer, x0, T=50, radius=2.0, seed=0)
    with pytest.warns(DeprecationWarning, match=r"projected_sgd.*'b'.*'radius'"):
        old = rc.projected_sgd(cancer, x0, T=50, b=2.0, seed=0)
    np.testing.assert_array_equal(old.x, new.x)
    assert new.radius == 2.0 and "b" not in new
    assert np.array_equal(rc.projected_sgd(cancer, x0, T=50, radius=2.0).x, new.x)  # seed 0
    kw = dict(lipschitz=1.0, loss_bound=1.0, T=10, eta=0.1, delta=0.1)
    with pytest.warns(DeprecationWarning, match=r"theorem4_bound.*'b'.*'radius'"):
        assert optim.theorem4_bound(b=2.0, **kw) == optim.theorem4_bound(radius=2.0, **kw)


def test_theorem4_has_no_c_output_analogue(rng):
    X = rng.standard_normal((60, 3))
    vec = rc.Objective(X, np.argmax(X, axis=1), widths=(2,), head="skip",
                       loss="cross_entropy", n_threads=1)
    with pytest.raises(NotImplementedError, match="paper has no analogue with c outputs"):
        rc.projected_sgd(vec, vec.init(0), T=10, radius=1.0)


def projected_ogd(grads, z1, b, eta, T):
    """Projected online gradient descent on the ball of radius b: ``grads(t, z)`` is the
    gradient of the t-th loss; returns the iterates z_1..z_T."""
    z, out = z1.copy(), []
    for t in range(T):
        out.append(z.copy())
        z = z - eta * grads(t, z)
        nz = np.linalg.norm(z)
        if nz > b:
            z *= b / nz
    return np.array(out)


def best_in_hindsight(A, y, b, iters=5000):
    """min over ||u|| <= b of sum_t log(1 + exp(-y_t a_t^T u)), by projected gradient descent
    with step 1 / smoothness (the objective is convex)."""
    step = 4.0 / np.linalg.norm(A, 2) ** 2
    u = np.zeros(A.shape[1])
    for _ in range(iters):
        m = y * (A @ u)
        u = u + step * A.T @ (y / (1 + np.exp(m)))
        nu = np.linalg.norm(u)
        if nu > b:
            u *= b / nu
    return u


def logistic_total(A, y, Z):
    return float(np.sum(np.logaddexp(0.0, -y * np.einsum("ij,ij->i", A, Z))))


@pytest.mark.parametrize("T", [50, 500, 3000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ogd_regret_below_the_bound_on_random_logistic_losses(T, seed):
    rng = np.random.default_rng(seed)
    dim, b = 5, 2.0
    w_true = rng.standard_normal(dim)
    A = rng.standard_normal((T, dim)) * rng.uniform(0.2, 2.0, size=(T, 1))
    y = np.where(A @ w_true + 0.5 * rng.standard_normal(T) > 0, 1.0, -1.0)
    l = float(np.linalg.norm(A, axis=1).max())  # |l'| <= 1 for the logistic loss
    eta = b / (l * math.sqrt(T))  # the package's step
    z1 = rng.standard_normal(dim)
    z1 *= b / np.linalg.norm(z1)  # a start on the sphere: ||z_1 - u|| up to 2b

    def grad(t, z):
        return -y[t] * A[t] / (1 + np.exp(y[t] * (A[t] @ z)))

    Z = projected_ogd(grad, z1, b, eta, T)
    assert np.all(np.linalg.norm(Z, axis=1) <= b + 1e-12)
    u = best_in_hindsight(A, y, b)
    regret = logistic_total(A, y, Z) - logistic_total(A, y, np.tile(u, (T, 1)))
    bound = optim.theorem4_bound(radius=b, lipschitz=l, loss_bound=1.0, T=T, eta=eta, delta=0.5)
    assert regret / T <= bound["regret_term"], (regret / T, bound["regret_term"])
    assert regret / T <= 2.5 * b * l / math.sqrt(T)


@pytest.mark.parametrize("T", [100, 1000, 10000])
def test_ogd_regret_bound_is_nearly_tight(T):
    """Linear losses l z on [-b, b] from z_1 = b: the iterates walk to -b in 2 sqrt(T) steps
    and the regret against u = -b is about 2 b l sqrt(T), 80% of the bound 2.5 b l sqrt(T)
    (and twice what a diameter of b instead of 2b would allow)."""
    b, l = 2.0, 3.0
    eta = b / (l * math.sqrt(T))
    Z = projected_ogd(lambda t, z: np.array([l]), np.array([b]), b, eta, T)[:, 0]
    regret = float(np.sum(l * (Z + b)))
    bound = optim.theorem4_bound(radius=b, lipschitz=l, loss_bound=1.0, T=T, eta=eta,
                                 delta=0.5)["regret_term"] * T
    assert 0.78 * bound <= regret <= bound
    assert regret > 1.5 * b * l * math.sqrt(T)


@pytest.mark.parametrize("B", [1, 4])
def test_online_to_batch_on_stochastic_runs(B):
    """Projected SGD on a linear model (no features), samples drawn uniformly with
    replacement as in the package: the mean full-data gap over z_1..z_T stays below
    regret_term + deviation_term in every one of 40 runs (each: probability >= 1 - delta)."""
    rng = np.random.default_rng(7)
    n, dim, b, T, delta = 300, 4, 1.5, 400, 0.05
    A = rng.standard_normal((n, dim))
    y = np.where(A[:, 0] - A[:, 1] + rng.standard_normal(n) > 0, 1.0, -1.0)
    zmax = float(np.linalg.norm(A, axis=1).max())
    l, r = zmax, math.log1p(math.exp(b * zmax))  # as _sgd_bounds
    eta = b / (l * math.sqrt(T))
    u = best_in_hindsight(A, y, b)
    F_lin = logistic_total(A, y, np.tile(u, (n, 1))) / n
    bound = optim.theorem4_bound(radius=b, lipschitz=l, loss_bound=r, T=T, eta=eta, delta=delta,
                                 batch_size=B)["theorem_rhs"]
    gaps = []
    for seed in range(40):
        idx = np.random.default_rng(seed).integers(0, n, size=(T, B))

        def grad(t, z):
            a, yy = A[idx[t]], y[idx[t]]
            return -(yy / (1 + np.exp(yy * (a @ z)))) @ a / B

        Z = projected_ogd(grad, np.zeros(dim), b, eta, T)
        F = np.logaddexp(0.0, -y[None, :] * (Z @ A.T)).mean(axis=1)
        gaps.append(F.mean() - F_lin)
    assert max(gaps) <= bound, (max(gaps), bound)
    assert min(gaps) > -1e-6  # F_lin is the minimum over the ball, which holds the iterates


@pytest.mark.parametrize("seed", range(4))
def test_bound_holds_on_real_runs_evaluating_every_iterate(cancer, seed):
    """With eval_every=1 the package computes the theorem's left-hand side itself."""
    T = 600
    res = rc.projected_sgd(cancer, cancer.init(0), T=T, radius=3.0, theta_radius=5.0, seed=seed,
                           eval_every=1)
    assert res.all_iterates_evaluated and res.lipschitz_is_bound
    assert np.array_equal(res.curve_iter, np.arange(T + 1))
    assert res.gap_mean == pytest.approx(res.curve_fun[:T].mean() - res.F_lin_star)
    assert res.gap <= res.gap_witness <= res.gap_mean <= res.theorem_rhs
    assert res.theorem_rhs > res.theorem_rhs_order  # the constants 2.5 and sqrt(2) are > 1


def test_bound_holds_on_a_squared_loss_run(diabetes):
    res = rc.projected_sgd(diabetes, diabetes.init(0), T=500, radius=2.0, seed=3, eval_every=1,
                           batch_size=2)
    assert res.all_iterates_evaluated and res.lipschitz_is_bound
    assert res.gap_witness <= res.gap_mean <= res.theorem_rhs
    assert res.deviation_term == pytest.approx(
        res.loss_bound * math.sqrt(2 * math.log(20) / (2 * 500)))


@pytest.mark.parametrize("loss", ["logistic", "smoothed_hinge", "squared"])
def test_default_l_and_r_are_the_documented_bounds(loss, rng):
    """``l`` and ``r`` of docs/theorem4.md's table (the registry's ``Loss.bounds`` at
    ``P = b zmax``): their closed forms, and bounds of the per-sample gradient norm in
    ``(w, v)`` and of the loss on the ball, at random points and at the worst direction."""
    from resnet_core.theorem4 import _sgd_bounds

    X = rng.standard_normal((50, 3))
    y = (X @ [1.0, -2.0, 0.5] if loss == "squared"
         else np.where(X[:, 0] + 0.5 * rng.standard_normal(50) > 0, 1.0, -1.0))
    obj = rc.Objective(X, y, loss=loss, widths=(4,), head="skip", n_threads=1)
    x, b = obj.init(0), 1.7
    lip, r, exact = _sgd_bounds(obj, x, b)
    zmax = math.sqrt(np.max(np.sum(X**2, axis=1)) + 4)  # tanh: ||phi|| <= sqrt(k)
    P, ymax = b * zmax, np.max(np.abs(y))
    sigma = 1 / (1 + math.exp(-P))
    documented = {"logistic": (sigma * zmax, math.log1p(math.exp(P))),
                  "smoothed_hinge": (zmax, 1 + P),
                  "squared": ((P + ymax) * zmax, (P + ymax) ** 2 / 2)}[loss]
    assert exact and (lip, r) == pytest.approx(documented, rel=1e-13)
    Z = np.hstack([X, obj.features(x)])
    entry = rc.BUILTIN_LOSSES[loss]
    for _ in range(20):
        u = rng.standard_normal(Z.shape[1])
        u *= b * rng.random() / np.linalg.norm(u)
        l, d1, _ = entry.derivatives(Z @ u, y)
        assert l.max() <= r and (np.abs(d1) * np.linalg.norm(Z, axis=1)).max() <= lip
    # the worst point of the ball for the sample of largest ||z||: margin -b ||z||
    i = np.argmax(np.linalg.norm(Z, axis=1))
    u = -np.sign(y[i] if y[i] else 1.0) * b * Z[i] / np.linalg.norm(Z[i])
    l, d1, _ = entry.derivatives(Z[i:i + 1] @ u, y[i:i + 1])
    assert l[0] <= r and abs(d1[0]) * np.linalg.norm(Z[i]) <= lip
