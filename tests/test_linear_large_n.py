"""The best linear predictor's machinery for large n (issue 24), on small data cut into many
chunks (``CHUNK_BYTES`` lowered): the warm start from a subsample of the chunks, Hessians by
float32 products for steps only, the polishing pass that carries the answer's value, the
range of ``X`` read from the first pass.  Each against the same solve without it."""

import numpy as np
import pytest

import resnet_core as rc
import resnet_core._gram_pass as gp_mod
import resnet_core.linear as lin
from resnet_core._baseline import scale_exponent
from resnet_core._data import prepare
from resnet_core.losses import get_loss


@pytest.fixture
def many_chunks(monkeypatch):
    """Chunks of 409 rows at d = 5 (the data below: about 150 of them)."""
    monkeypatch.setattr(gp_mod, "CHUNK_BYTES", 1 << 14)


def _overlapping(rng, n=60_000, d=5, dtype=np.float64):
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.sign(X[:, 0] + X[:, 1] + rng.standard_normal(n)).astype(dtype)
    return X, y


def _spy(monkeypatch):
    """Record every Gram pass of the linear module: (keyword arguments, GramPass)."""
    calls = []

    def spy(*args, **kwargs):
        out = gp_mod.gram_pass(*args, **kwargs)
        calls.append((kwargs, out))
        return out

    monkeypatch.setattr(lin, "gram_pass", spy)
    return calls


def _cold(monkeypatch):
    """No warm start and float64 Hessians only (the solve before issue 24's last round)."""
    monkeypatch.setattr(lin, "WARM_MIN_SAMPLE", 10 ** 9)
    monkeypatch.setattr(lin, "SINGLE_HESSIAN_MARGIN", 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_warm_start_and_float32_hessians_leave_the_answer(rng, many_chunks, monkeypatch,
                                                          dtype):
    X, y = _overlapping(rng, dtype=dtype)
    calls = _spy(monkeypatch)
    res = rc.linear_baseline(X, y)
    kinds = [(kw.get("sample", 1), kw.get("single_hessian", False)) for kw, _ in calls]
    assert any(sample > 1 for sample, _ in kinds), kinds  # the warm start ran
    assert any(single for _, single in kinds), kinds  # float32 Hessians made steps
    assert "warm start" in res.message
    with monkeypatch.context() as m:
        _cold(m)
        calls.clear()
        ref = rc.linear_baseline(X, y)
    assert not any(kw.get("sample", 1) > 1 or kw.get("single_hessian") for kw, _ in calls)
    assert res.separability == ref.separability == "overlapping"
    assert res.attained is True and ref.attained is True and res.converged
    assert res.fun == pytest.approx(ref.fun, rel=1e-14, abs=2 * (res.fun_error + ref.fun_error))
    np.testing.assert_allclose(res.w, ref.w, rtol=1e-12, atol=1e-12 * np.abs(ref.w).max())


def test_the_certificate_never_reads_a_float32_hessian(rng, many_chunks, monkeypatch):
    """The overlap proof bounds the rounding of a float64 sum: a pass whose H came from
    float32 products is skipped by ``pass_at`` (one more pass is made rather)."""
    X, y = _overlapping(rng)
    engine = prepare(X, y, loss=get_loss("logistic")).engine(0)
    passes = lin.EnginePasses(engine)
    w = np.array([0.9, 0.9, 0.0, 0.0, 0.0])
    single = gp_mod.gram_pass(engine, w, stride=passes.stride, single_hessian=True)
    assert single.single_hessian
    passes.history = [(w, single)]
    made = passes.pass_at(w)
    assert made is not single and not made.single_hessian
    assert passes.pass_at(w, make=False) is None
    seen = []
    orig = lin.EnginePasses.certificate_sums

    def spy(self, z):
        sums = orig(self, z)
        seen.append(any(np.array_equal(v, z) and g.sums is sums and g.single_hessian
                        for v, g in self.history))
        return sums

    monkeypatch.setattr(lin.EnginePasses, "certificate_sums", spy)
    res = rc.linear_baseline(X, y)
    assert res.separability == "overlapping" and seen and not any(seen)


def test_the_polishing_pass_carries_the_accurate_value(rng, many_chunks, monkeypatch):
    """The answer's fun and fun_error from the last pass equal accurate_value's at w, and
    no pass of its own is made for them."""
    X, y = _overlapping(rng)
    calls = _spy(monkeypatch)
    made = []
    monkeypatch.setattr(lin, "accurate_value",
                        lambda *a: made.append(1) or gp_mod.accurate_value(*a))
    res = rc.linear_baseline(X, y)
    assert any(kw.get("value") for kw, _ in calls) and not made
    engine = prepare(X, y, loss=get_loss("logistic")).engine(0)
    F, err, g = gp_mod.accurate_value(engine, res.w)
    assert res.fun == F and res.fun_error == err
    assert res.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-12)


def test_separable_data_with_a_warm_start(rng, many_chunks, monkeypatch):
    """The subsample's Newton run runs along the separating ray: its last point starts the
    run on all the data, which is decided separable (a direction checked on every sample)."""
    monkeypatch.setattr(lin, "binary_separability",
                        lambda *a, **k: pytest.fail("the linear program over n was called"))
    n, d = 60_000, 5
    X = rng.standard_normal((n, d))
    y = np.sign(X[:, 0])
    res = rc.linear_baseline(X, y)
    assert res.separability == "separable" and res.infimum == 0.0 and not res.attained
    assert np.min(y * (X @ res.direction)) > 0


def test_sorted_labels_fall_back_to_zero(rng, many_chunks, monkeypatch):
    """Rows sorted by label: the subsample's chunks hold one class (separable alone), the
    warm start's point is worse than 0 on all the data or separates nothing; the answer is
    the cold one."""
    X, y = _overlapping(rng)
    order = np.argsort(y, kind="stable")
    X, y = np.ascontiguousarray(X[order]), y[order]
    res = rc.linear_baseline(X, y)
    with monkeypatch.context() as m:
        _cold(m)
        ref = rc.linear_baseline(X, y)
    assert res.separability == ref.separability == "overlapping" and res.attained
    np.testing.assert_allclose(res.w, ref.w, rtol=1e-12, atol=1e-12 * np.abs(ref.w).max())


@pytest.mark.parametrize("exponent", [-600, 600])
def test_out_of_range_data_are_rescaled_after_the_first_pass(rng, many_chunks, monkeypatch,
                                                             exponent):
    """X with entries near 2^+-600: the first pass finds the range exceeded (no pass of its
    own reads it) and the data are solved rescaled: the same margins as the unscaled data."""
    X, y = _overlapping(rng, n=20_000)
    ref = rc.linear_baseline(X, y)
    scanned = []
    monkeypatch.setattr(lin, "scale_exponent",
                        lambda a: scanned.append(1) or scale_exponent(a))
    res = rc.linear_baseline(np.ldexp(X, exponent), y)
    assert res.separability == "overlapping" and res.attained
    np.testing.assert_allclose(np.ldexp(res.w, exponent), ref.w, rtol=1e-12,
                               atol=1e-12 * np.abs(ref.w).max())
    assert res.fun == pytest.approx(ref.fun, rel=1e-13)
    # in range: no pass reads X for its range alone
    scanned.clear()
    rc.linear_baseline(X, y)
    assert not scanned


@pytest.mark.parametrize("n", [1, 2, 3, 255, 8191, 8192, 20_001])
def test_sum2_is_within_its_bound_of_the_exact_sum(rng, n):
    """The chunks' values are summed by Sum2 in a pairwise tree (not math.fsum): against
    the exact rational sum, on positive terms, terms of every sign over 40 decades, and a
    large term that swallows the rest in plain float64."""
    from fractions import Fraction
    cases = [rng.random(n), rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n),
             np.r_[1e16, rng.random(n - 1)], np.r_[1.0, np.full(n - 1, 2.0 ** -60)]]
    for v in cases:
        total, bound = gp_mod.sum2(v)
        exact = sum(Fraction(x) for x in v)
        assert abs(Fraction(total) - exact) <= Fraction(bound)
        # as tight as a correctly rounded sum to first order
        assert bound <= 2.0 ** -53 * abs(total) * (1 + 1e-6) + 1e-20 * float(np.abs(v).sum())
    plain = np.r_[1.0, np.full(1023, 2.0 ** -60)]
    exact = float(Fraction(1) + 1023 * Fraction(2) ** -60)  # correctly rounded
    assert gp_mod.sum2(plain)[0] == exact > sum(plain.tolist()) == 1.0  # the small terms count


def test_a_full_hessian_pass_holds_one_gram_matrix_per_block(monkeypatch):
    """Chunks of 256 rows at d = 128: each chunk's d x d sum is half of its rows' size; the
    pass adds them block by block, so its memory is not a growing list of them."""
    import tracemalloc
    monkeypatch.setattr(gp_mod, "CHUNK_BYTES", 256 * 128 * 8)
    rng = np.random.default_rng(0)
    n, d = 32_768, 128
    X = rng.standard_normal((n, d))
    y = np.sign(X[:, 0] + rng.standard_normal(n))
    engine = prepare(X, y, loss=get_loss("logistic")).engine(0, n_threads=1)
    w = np.zeros(d)
    ref = gp_mod.gram_pass(engine, w, stride=10 ** 9)  # imports, first visits: not measured
    tracemalloc.start()
    try:
        full = gp_mod.gram_pass(engine, w, norms={})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 8, peak / X.nbytes  # 128 chunks' sums would be X.nbytes / 2
    assert full.F == ref.F and np.array_equal(full.g, ref.g)
    H = np.triu(full.H)
    np.testing.assert_allclose(H, np.triu(X.T @ (0.25 * X / n)), rtol=1e-12, atol=1e-15)
