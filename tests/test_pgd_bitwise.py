"""The compiled PGD / GD loops are exact and machine-independent in what they promise:

- a rerun gives the same bytes (iterates, counters, history, perturbation marks), and so do
  other block sizes of the timed loop and other thread counts of an escape study;
- the register loop for d = k = 1 (Example 1) matches the general array loop byte for byte;
- every loop agrees with the loop written in Python over the objective's own pass (the
  Cython kernels on the samples, not the numba moment formulas; the same noise draws) to
  1e-9 relative, with the same counters, statuses and perturbation iterations.

Every comparison is between two runs in the same process: no digest recorded on another CPU
(numba and libm round differently on AVX2 and AVX-512 machines, equally validly)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _blocks, _pgd


def _example1(head):
    eps = 0.1
    return rc.FeatureObjective(np.ones((1, 1)), np.full((1, 1), eps), np.ones(1),
                               loss="squared", head=head), np.array([0.0, -1.0 / eps])


def _features(d, k, loss, n=30, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Phi = np.tanh(X @ rng.standard_normal((d, k)))
    y = np.sign(X[:, 0] + 0.1) if loss == "logistic" else X[:, 0] - Phi[:, -1]
    fo = rc.FeatureObjective(X, Phi, y, loss=loss)
    return fo, 0.1 * rng.standard_normal(fo.n_params)


_CONSTS = dict(eta=0.1, r=0.01, g_thres=1e-3, f_thres=1e-4, t_thres=400,
               f_escape=1e-4)  # a fixed escape criterion (not the scale-relative default)

_RESULT_FIELDS = ("x", "fun", "jac", "nit", "nfev", "status", "n_perturbations",
                  "perturbation_iters", "escape_iter")
_STUDY_FIELDS = ("escape_iter", "final_F", "final_grad_norm", "status", "n_perturbations",
                 "nit", "x")


def _arrays(res):
    if isinstance(res, rc.studies.EscapeStudy):
        return [np.asarray(getattr(res, f)) for f in _STUDY_FIELDS]
    return ([np.asarray(res[f]) for f in _RESULT_FIELDS]
            + [np.asarray(res.history[k]) for k in ("iter", "fun", "grad_norm")])


def _digest(res) -> str:
    h = hashlib.sha256()
    for a in _arrays(res):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _case(name, n_threads=2):
    kind, rest = name.split(":")
    if kind == "pgd1":  # Example 1, PGD, head, seed, record_every
        head, seed, every = rest.split(",")
        obj, z0 = _example1(head)
        return rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0, max_iter=6000,
                               seed=int(seed), record_every=int(every), **_CONSTS)
    if kind == "gd1":  # Example 1, plain GD from off the saddle
        obj, z0 = _example1(rest)
        return rc.gradient_descent(obj, z0 + [0.3, 0.2], eta=0.1, eps=1e-9, max_iter=5000,
                                   record_every=3)
    if kind == "nan1":  # Example 1 diverging: the non-finite stop restores x_prev
        obj, _ = _example1(rest)
        return rc.gradient_descent(obj, np.array([3.0, 40.0]), eta=5.0, eps=0.0,
                                   max_iter=5000, record_every=1)
    if kind == "study1":  # Example 1, escape study, stop at escape or not
        obj, z0 = _example1("residual")
        return rc.studies.escape(obj, z0, n_runs=12, seed=5, eps=1e-3,
                                 stop_at_escape=rest == "stop", max_iter=6000,
                                 n_threads=n_threads, **_CONSTS)
    d, k, loss, seed = rest.split(",")  # general loops (moments or samples)
    fo, x0 = _features(int(d), int(k), loss)
    return rc.perturbed_gd(fo, x0, eps=1e-3, ell=1.0, rho=1.0, max_iter=2000, seed=int(seed),
                           record_every=5, **_CONSTS)


RUNS = ([f"pgd1:{h},{s},{e}" for h in ("residual", "skip") for s in (0, 1) for e in (0, 7)]
        + ["gd1:residual", "gd1:skip", "nan1:residual", "nan1:skip",
           "feat:2,3,squared,0", "feat:1,2,squared,4", "feat:2,1,logistic,0"])
STUDIES = ["study1:stop", "study1:go"]


@pytest.mark.parametrize("name", RUNS + STUDIES)
def test_reruns_are_bit_identical(name):
    assert _digest(_case(name)) == _digest(_case(name)), name


@pytest.mark.parametrize("name", STUDIES)
def test_study_threads_do_not_change_bits(name):
    assert _digest(_case(name, n_threads=1)) == _digest(_case(name, n_threads=2)), name


@pytest.mark.parametrize("fixed", [1, 7, 1000])
def test_block_sizes_do_not_change_example1(fixed, monkeypatch):
    want = _digest(_case("pgd1:residual,1,7"))
    monkeypatch.setattr(_blocks, "FIXED_STEPS", fixed)
    assert _digest(_case("pgd1:residual,1,7")) == want


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # nan1 diverges
@pytest.mark.parametrize("name", RUNS)
def test_compiled_loops_match_the_python_loop(name, monkeypatch):
    """The compiled loop (numba; moments for the squared loss) against the loop in Python
    over the objective's Cython passes on the samples, with the same noise: the same
    counters and marks, iterates and values within 1e-9 relative (the two sum in other
    orders; Example 1's saddle amplifies a rounding no more than it does the noise)."""
    fast = _case(name)
    assert fast.compiled
    monkeypatch.setattr(_pgd, "MOMENTS", False)
    monkeypatch.setattr(_pgd, "COMPILED_WORK", 0)
    slow = _case(name)
    assert not slow.compiled
    for f in ("nit", "nfev", "status", "n_perturbations", "escape_iter"):
        assert fast[f] == slow[f], (name, f)
    assert np.array_equal(fast.perturbation_iters, slow.perturbation_iters)
    assert np.array_equal(fast.history["iter"], slow.history["iter"])
    scale = max(1.0, float(np.abs(fast.x).max()))
    assert np.allclose(fast.x, slow.x, rtol=1e-9, atol=1e-9 * scale), name
    for a, b in ((fast.fun, slow.fun), (fast.history["fun"], slow.history["fun"]),
                 (fast.history["grad_norm"], slow.history["grad_norm"]), (fast.jac, slow.jac)):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), name


def _loop_state(x0, rng_seed, F0, t_thres, max_hist=64):
    from resnet_core import _loops as L
    istate = np.zeros(6, np.int64)
    istate[L.I_NOISE], istate[L.I_STATUS], istate[L.I_ESCAPE] = -t_thres - 1, -1, -1
    return dict(x=x0.copy(), x_tilde=x0.copy(), g=np.zeros(2), x_prev=x0.copy(),
                istate=istate, fstate=np.array([F0, F0]), rng=L.seed_state(rng_seed),
                hist_t=np.zeros(max_hist, np.int64), hist_F=np.zeros(max_hist),
                hist_g=np.zeros(max_hist), pert_t=np.zeros(max_hist, np.int64))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("residual", [True, False])
def test_two_parameter_loop_matches_general_loop(seed, residual):
    """The register loop for d = k = 1 against the general array loop, side by side, on
    random moment data, in blocks (the state carried between calls), PGD and GD."""
    from resnet_core import _loops as L
    rng = np.random.default_rng(seed)
    X, Phi = rng.standard_normal((5, 1)), rng.standard_normal((5, 1))
    y = rng.standard_normal(5)
    M, empty, b, c, code, _ = L.moment_data(X, Phi, y, np.full(5, 0.2), residual)
    x0 = rng.standard_normal(2)
    perturb = bool(seed % 2)
    t_thres, every = int(rng.integers(1, 30)), int(rng.integers(0, 5))
    g_thres = 10.0 ** rng.uniform(-3, 0)
    F0 = L.feature_value_grad(M, empty, b, c, code, residual, x0, np.empty(2), np.empty(1),
                              np.empty(1))
    a, b_ = _loop_state(x0, seed, F0, t_thres), _loop_state(x0, seed, F0, t_thres)
    counts = []
    for st, loop, head in ((a, L._pgd_loop, (M, None if residual else 0)),
                           (b_, L._pgd_loop_2, None)):
        n_hist = n_pert = 0
        for t_stop in (1, 2, 17, 60, 400):
            args = (st["x"], st["x_tilde"], st["g"], st["x_prev"], st["istate"], st["fstate"],
                    st["rng"], perturb, 0.3, 0.05, g_thres, 1e-4, t_thres, 1e-3, t_stop,
                    every, st["hist_t"], st["hist_F"], st["hist_g"], n_hist, st["pert_t"],
                    n_pert, False)
            if head is not None:
                n_hist, n_pert = loop(M, empty, b, c, code, *head, *args)
            else:
                n_hist, n_pert = loop(M, b, c, None if residual else 0, *args)
            if st["istate"][L.I_STATUS] >= 0:
                break
        counts.append((n_hist, n_pert))
    assert counts[0] == counts[1]
    for key in a:
        assert np.array_equal(a[key].view(np.uint8), b_[key].view(np.uint8)), key


@pytest.mark.parametrize("loss, moments", [("squared", False), ("squared", True),
                                           ("logistic", False)])
def test_the_benchmarks_hand_written_gd_is_gradient_descent(loss, moments):
    """``bench.frameworks_pgd.numba_gd_features`` (the hand-written loops the package's GD is
    timed against) computes the same iterates as :func:`resnet_core.gradient_descent`."""
    from resnet_core.bench import frameworks_pgd

    fo, x0 = _features(3, 2, loss, n=40)
    run = frameworks_pgd.numba_gd_features(fo.X, fo.Phi, fo.y, loss, 0.1, 150,
                                           moments=moments)
    if run is None:
        pytest.skip("numba is not installed")
    z, F = run(x0.copy())
    ref = rc.gradient_descent(fo, x0, eta=0.1, eps=-1.0, max_iter=150)
    np.testing.assert_allclose(z, ref.x, rtol=1e-12, atol=1e-14)
    # F is the value at the last iterate before the last step
    assert F == pytest.approx(fo.fun(rc.gradient_descent(fo, x0, eta=0.1, eps=-1.0,
                                                         max_iter=149).x), rel=1e-12)
