"""The compiled PGD / GD loops give bit-identical results to the loops as they were before
their per-step speed-ups (commit a8741b9): SHA-256 digests of every output (iterates,
counters, history, perturbation marks) recorded from that code, at several seeds, on
Example 1 (both heads, the two-parameter fast path), on a larger moments problem and on
samples (the general loops), single runs and an escape study."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _blocks


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
               f_escape=1e-4)  # the escape criterion these digests were recorded with


def _digest_result(res) -> str:
    h = hashlib.sha256()
    for a in (res.x, res.fun, res.jac, res.nit, res.nfev, res.status, res.n_perturbations,
              res.perturbation_iters, res.escape_iter, res.history["iter"],
              res.history["fun"], res.history["grad_norm"]):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:24]


def _digest_study(st) -> str:
    h = hashlib.sha256()
    for a in (st.escape_iter, st.final_F, st.final_grad_norm, st.status,
              st.n_perturbations, st.nit, st.x):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:24]


def _case(name):
    kind, rest = name.split(":")
    if kind == "pgd1":  # Example 1, PGD, head, seed, record_every
        head, seed, every = rest.split(",")
        obj, z0 = _example1(head)
        return _digest_result(rc.perturbed_gd(obj, z0, eps=1e-3, ell=1.0, rho=1.0,
                                              max_iter=6000, seed=int(seed),
                                              record_every=int(every), **_CONSTS))
    if kind == "gd1":  # Example 1, plain GD from off the saddle
        obj, z0 = _example1(rest)
        return _digest_result(rc.gradient_descent(obj, z0 + [0.3, 0.2], eta=0.1,
                                                  gtol=1e-9, max_iter=5000, record_every=3))
    if kind == "nan1":  # Example 1 diverging: the non-finite stop restores x_prev
        obj, _ = _example1(rest)
        return _digest_result(rc.gradient_descent(obj, np.array([3.0, 40.0]), eta=5.0,
                                                  gtol=0.0, max_iter=5000, record_every=1))
    if kind == "study1":  # Example 1, escape study, stop at escape or not
        obj, z0 = _example1("residual")
        return _digest_study(rc.studies.escape(obj, z0, n_runs=12, seed=5, eps=1e-3,
                                               stop_at_escape=rest == "stop", max_iter=6000,
                                               n_threads=2, **_CONSTS))
    d, k, loss, seed = rest.split(",")  # general loops (moments or samples)
    fo, x0 = _features(int(d), int(k), loss)
    return _digest_result(rc.perturbed_gd(fo, x0, eps=1e-3, ell=1.0, rho=1.0, max_iter=2000,
                                          seed=int(seed), record_every=5, **_CONSTS))


GOLDEN = {
    "pgd1:residual,0,0": "022fbc30ee64517127a5a355",
    "pgd1:residual,0,7": "7d59dcde631367ce96092684",
    "pgd1:residual,1,0": "9a7bc381af86e29428d4de63",
    "pgd1:residual,1,7": "2623b00e45a156a0fb6a8bfa",
    "pgd1:residual,2,0": "e851a064acf2b26bf77b7ae8",
    "pgd1:residual,2,7": "946107670ea2963f061e8d34",
    "pgd1:skip,0,0": "5c3577192e46a7c43d8e9286",
    "pgd1:skip,0,7": "205ad7b62f9771a0afe1952a",
    "pgd1:skip,1,0": "5c3577192e46a7c43d8e9286",
    "pgd1:skip,1,7": "500f271abc00eaf163b6e882",
    "pgd1:skip,2,0": "5c3577192e46a7c43d8e9286",
    "pgd1:skip,2,7": "6fe551031895a886fea1c413",
    "gd1:residual": "c04f598085a69297c1ea1937",
    "gd1:skip": "a3834dbc31635610c16c2ab7",
    "nan1:residual": "81b30282fa04b68d231a1bc2",
    "nan1:skip": "d2b39c0a34b13f76e0b380f0",
    "study1:stop": "8423944c34e7ad996206b16b",
    "study1:go": "94ec6962eead2c83a1208505",
    "feat:2,3,squared,0": "9efb03196d6da0a41c3a5716",
    "feat:1,2,squared,4": "f120a5c763ba724fd5df03de",
    "feat:2,1,logistic,0": "81c3d619a0161099c58eaeb3",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_bit_identical_to_recorded(name):
    assert _case(name) == GOLDEN[name], name


@pytest.mark.parametrize("fixed", [1, 7, 1000])
def test_block_sizes_do_not_change_example1(fixed, monkeypatch):
    monkeypatch.setattr(_blocks, "FIXED_STEPS", fixed)
    assert _case("pgd1:residual,1,7") == GOLDEN["pgd1:residual,1,7"]


if __name__ == "__main__":  # print the digests of the current code
    names = ([f"pgd1:{h},{s},{e}" for h in ("residual", "skip") for s in (0, 1, 2)
              for e in (0, 7)] + [f"gd1:{h}" for h in ("residual", "skip")]
             + [f"nan1:{h}" for h in ("residual", "skip")]
             + ["study1:stop", "study1:go"]
             + ["feat:2,3,squared,0", "feat:1,2,squared,4", "feat:2,1,logistic,0"])
    for nm in names:
        print(f'    "{nm}": "{_case(nm)}",')


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
