"""The overlap certificate of :mod:`resnet_core.separability`: sound (never claims overlap
where a recession direction exists), taken on overlapping data, and agreeing with the linear
program it replaces."""

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import separability as sep_mod


def _overlapping(rng, n, d, dtype=np.float64):
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0).astype(dtype)
    return X, y


def _quasi(rng, n, d, eps):
    """Half the samples on the hyperplane x_0 = 0 with random labels, half at margin
    >= eps along e_0: quasi-separable for every eps > 0."""
    X = rng.standard_normal((n, d))
    y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    X[: n // 2, 0] = 0.0
    X[n // 2:, 0] = y[n // 2:] * (eps + rng.random(n - n // 2))
    return X, y


def _lp_only(monkeypatch):
    monkeypatch.setattr(sep_mod, "overlap_certificate", lambda X, y, active: None)


@pytest.mark.parametrize("n, d", [(60, 3), (3000, 8), (20000, 16)])
def test_certificate_decides_overlap_and_agrees_with_the_lp(rng, monkeypatch, n, d):
    X, y = _overlapping(rng, n, d)
    sep = rc.linear_separability(X, y)
    assert sep.status == "overlapping" and sep.method == "certificate"
    assert "verified" in sep.message and not sep.separated.any()
    _lp_only(monkeypatch)
    lp = rc.linear_separability(X, y)
    assert lp.status == "overlapping" and lp.method == "linear program"


def test_certificate_on_float32_and_weighted_data(rng):
    X, y = _overlapping(rng, 2000, 5, np.float32)
    sep = rc.linear_separability(X, y, sample_weight=rng.random(2000) + 0.1)
    assert sep.status == "overlapping" and sep.method == "certificate"


def test_few_overlapping_samples_are_found_by_constraint_generation(rng):
    """Separable data with 3 labels flipped: the random subset is separable, the rounds
    add the samples its direction gets wrong until the combination exists."""
    n, d = 20000, 4
    X = rng.standard_normal((n, d))
    y = np.sign(X[:, 0] + 0.5 * X[:, 1])
    y[rng.choice(n, 3, replace=False)] *= -1
    rows = sep_mod.overlap_certificate(X, y, np.arange(n))
    assert rows is not None and sep_mod.CERTIFICATE_SUBSET * d < rows < n


@pytest.mark.parametrize("eps", [1.0, 1e-6, 1e-12])
def test_no_certificate_for_quasi_separable_data(rng, monkeypatch, eps):
    X, y = _quasi(rng, 400, 3, eps)
    assert sep_mod.overlap_certificate(X, y, np.arange(400)) is None
    sep = rc.linear_separability(X, y)
    assert sep.method == "linear program"
    if eps >= 1e-6:  # below, the LP's own tolerance decides
        assert sep.status == "quasi_separable" and sep.n_separated == 200


def test_no_certificate_for_separable_data(rng):
    X = rng.standard_normal((5000, 6))
    y = np.sign(X @ rng.standard_normal(6))
    sep = rc.linear_separability(X, y)
    assert sep.status == "separable" and sep.method == "linear program"


def test_zero_weight_samples_cannot_make_data_overlap(rng):
    X = rng.standard_normal((300, 3))
    y = np.sign(X[:, 0])
    y[:5] *= -1
    s = np.ones(300)
    s[:5] = 0.0
    assert rc.linear_separability(X, y).method == "certificate"
    sep = rc.linear_separability(X, y, sample_weight=s)
    assert sep.status == "separable" and sep.method == "linear program"


def test_rank_deficient_overlap_is_left_to_the_lp(rng):
    X, y = _overlapping(rng, 500, 3)
    X = np.hstack([X, X[:, :1]])  # a repeated column: no certificate (sigma_min = 0)
    sep = rc.linear_separability(X, y)
    assert sep.status == "overlapping" and sep.method == "linear program"


def test_verify_rejects_every_multiplier_when_a_recession_direction_exists(rng):
    """Soundness: with b_i^T e_0 >= 0 for all i and > 0 for some, r^T e_0 =
    sum_i lam_i b_i^T e_0 >= lam_min * 1e-12 > 0 whatever lam, and ``_verify`` must say no
    even when the rest of the residual is 0 to rounding."""
    X, y = _quasi(rng, 200, 3, 1e-12)
    B, _ = sep_mod._exact_rows(X, y, np.arange(200))
    lam = np.ones(200)
    lam[:100] = sep_mod._elastic_combination(B[:100, 1:])[0]  # cancels columns 1, 2 on R
    assert not sep_mod._verify(B, lam)
    for _ in range(20):
        assert not sep_mod._verify(B, 1.0 + rng.exponential(size=200))


def test_verify_accepts_an_exact_combination():
    """The 2 d points +-e_k: lam = 1 gives B^T lam = 0 exactly, sigma_min = sqrt(2)."""
    d = 5
    B = np.vstack([np.eye(d), -np.eye(d)])
    assert sep_mod._verify(B, np.ones(2 * d))
    assert not sep_mod._verify(B[:-1], np.ones(2 * d - 1))  # +e_{d-1} is separable


def test_linear_baseline_reports_the_certificate(rng):
    X, y = _overlapping(rng, 1000, 4)
    res = rc.linear_baseline(X, y)
    assert res.separability == "overlapping" and res.attained and res.converged
    assert "certified" in res.method


def test_max_lp_entries_still_bounds_the_decision(rng):
    X, y = _overlapping(rng, 1000, 4)
    sep = rc.linear_separability(X, y, max_lp_entries=1000 * 5 - 1)
    assert sep.status == "not_decided"
    # the reason is a field, not only words (the baseline reads it)
    assert sep.lp_skipped == "too large" and sep.lp_entries == 1000 * 5
    assert "max_lp_entries = 4999" in sep.message
    # the old name works for one release, with a warning naming the new one
    with pytest.warns(DeprecationWarning, match="max_lp_entries"):
        old = rc.linear_separability(X, y, max_entries=1000 * 5 - 1)
    assert old.status == "not_decided"
    assert rc.linear_separability(X, y, max_lp_entries=1000 * 5).lp_skipped == ""


LP_CHILD = """
import multiprocessing, signal, sys, time
# a parent started in the background by a non-interactive shell passes SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import resnet_core as rc
from resnet_core import separability

rng = np.random.default_rng(0)
n, d = 120_000, 10
X = rng.standard_normal((n, d))
X[n // 2:, 0] = 0.0  # quasi-separable: half separated along e_0, the rest overlapping
y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
y[: n // 2] = np.sign(X[: n // 2, 0])
solve = separability.interruptible_linprog

def marked(*args, **kwargs):
    if kwargs.get("nnz", 0) > separability.FORK_ENTRIES:
        print("lp", flush=True)
    return solve(*args, **kwargs)

separability.interruptible_linprog = marked
try:
    rc.linear_separability(X, y, max_lp_entries=10**8)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.perf_counter(), len(multiprocessing.active_children()), flush=True)
"""


def test_ctrl_c_during_the_separability_program(tmp_path):
    """Issue 18: Ctrl-C during the linear program over every sample (quasi-separable,
    n = 3.6e5, d = 10) took 1.2-1.5 s inside HiGHS; the program now runs in a forked child
    that is killed, and the interrupt arrives within a second (here n = 1.2e5)."""
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "child.py"
    script.write_text(LP_CHILD)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "lp"
        time.sleep(0.3)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline().split()
        assert line[0] == "interrupted", line
        assert float(line[1]) - sent < 1.0  # perf_counter is system-wide on Linux
        assert line[2] == "0"  # the program's process is gone
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


# -- the decision tree of resnet_core._baseline.margin_baseline (review of issue 20) ------------

def _quasi_half(rng):
    """A third of the samples separated by x_0, the rest on x_0 = 0 with random labels."""
    X = rng.standard_normal((60, 3))
    X[20:, 0] = 0.0
    y = np.where(rng.standard_normal(60) > 0, 1.0, -1.0)
    y[:20] = np.sign(X[:20, 0])
    return X, y


def test_quasi_separable_answer_counts_newtons_run_on_all_the_data(rng):
    """The quasi-separable answer comes after Newton's run on every sample (which did not
    separate them): its passes and iterations count, as they do when the program is skipped."""
    X, y = _quasi_half(rng)
    exact = rc.linear_baseline(X, y)
    skipped = rc.linear_baseline(X, y, max_lp_entries=1)  # the same run, then "not decided"
    assert exact.separability == "quasi_separable" and skipped.separability == "not_decided"
    assert exact.npass > skipped.npass and exact.nit > skipped.nit


def test_separable_by_the_program_counts_newtons_run(rng, monkeypatch):
    """Separable data that Newton's iterates do not prove separable (the check switched off
    here): the linear program decides after the run, whose passes count."""
    from resnet_core import linear
    monkeypatch.setattr(linear.EnginePasses, "separation", lambda self, w: -1.0)
    X = rng.standard_normal((200, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    res = rc.linear_baseline(X, y, max_iter=5)
    assert res.separability == "separable" and res.method.startswith("linear program")
    assert res.nit == 5 and res.npass >= 5 + 2


def test_not_decided_infimum_is_the_accurate_value_at_w(rng, monkeypatch):
    """Not decided: the infimum claimed is F_lin at Newton's point, evaluated accurately
    (``fun``), not the pass's value that stopped the run (a float32 pass's, for float32
    data; simulated here by a value off by 1e-9)."""
    from resnet_core import _baseline
    minimise = _baseline.minimise

    def off(*args, **kwargs):
        res, msg = minimise(*args, **kwargs)
        res.model.F *= 1 + 1e-9
        return res, msg

    monkeypatch.setattr(_baseline, "minimise", off)
    X, y = _quasi_half(rng)
    res = rc.linear_baseline(X, y, max_lp_entries=1)
    assert res.separability == "not_decided" and res.attained is None
    assert res.infimum == res.fun


def test_not_converged_hinge_does_not_claim_attained(rng):
    """The smoothed hinge attains its infimum, but a run that did not converge has not
    reached it: ``attained`` is None and the message says so (not "yes")."""
    X, y = _overlapping(rng, 300, 3)
    res = rc.linear_baseline(X, y, loss="smoothed_hinge", max_iter=1, max_lp_entries=1)
    assert res.separability == "not_decided" and not res.converged and res.attained is None
    assert "attained: not known" in res.message and "attained: yes" not in res.message
    assert res.message.count("not converged") == 1
