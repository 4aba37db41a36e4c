"""The compiled chunk of the linear baseline's Gram pass,
:func:`resnet_core._margin_pass.margin_chunk` (``src/rc_margin.h``), against an independent
NumPy reference (hypothesis over shapes, dtypes, losses and optional outputs), its float64
sums for float32 data, its argument checks, and :func:`resnet_core._gram_pass.gram_pass`'s
chunks on one and two threads (bit for bit).

Every tolerance is a rounding error bound: ``gamma_k = k u / (1 - k u)`` (``u = 2^-53``) for
a sum of ``k`` products in any order, and a few ulp per loss formula.
"""

import dataclasses
import math
import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import reference as ref
from conftest import LOSSES
from resnet_core import _gram_pass
from resnet_core._data import prepare
from resnet_core._margin_pass import margin_chunk
from resnet_core.losses import get_loss

U = 2.0 ** -53  # float64's unit roundoff
NONE = np.empty(0)


def gamma(k: int) -> float:
    """Higham's ``gamma_k``: the relative error bound of ``k`` roundings."""
    return k * U / (1 - k * U)


def _formula_bound(ref_value, z):
    """How far the kernel's loss formula and the reference's may be apart at the same
    margin: a few roundings and the kernels' ``exp``/``log1p`` (a few ulp each); the
    reference's sigmoid ``exp(-log(1 + e^-z))`` multiplies its logarithm's rounding by
    ``|z|``.  The kernels flush ``e^-|z|`` to 0 past ``|z| = 708``: a logistic loss or
    derivative below ``e^-708`` may be 0 there."""
    return 32 * U * (1 + np.abs(z)) * np.abs(ref_value) + math.exp(-708)


def _problem(seed, m, d, dtype, loss, far=False):
    """Rows, labels suited to ``loss`` (+-1 for the margin losses), weights with zeros and
    a few negative ones (``q < 0``: a zero row of ``Z``), ``w`` with margins over every
    branch of the smoothed hinge (``far``: margins of several hundreds to thousands, past
    where ``e^-|z|`` underflows), ``wabs`` of either sign, a non-zero starting ``g``."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((m, d)) * rng.choice([0.1, 1.0, 10.0], size=d)).astype(dtype)
    w = rng.standard_normal(d) * 1.5 / np.sqrt(max(d, 1)) / np.maximum(
        np.abs(X).mean(axis=0) if m else 1.0, 1e-3) * (500.0 if far else 1.0)
    if loss == "squared":
        y = (rng.standard_normal(m) * 2).astype(dtype)
    else:
        y = np.where(rng.random(m) < 0.5, 1.0, -1.0).astype(dtype)
    s = rng.random(m)
    s[rng.random(m) < 0.1] = 0.0
    s[rng.random(m) < 0.05] *= -1
    return X, y, s.astype(dtype), w, rng.standard_normal(d), rng.standard_normal(d)


def _outputs(m, d):
    return {k: np.full(m, np.nan) for k in ("p", "r", "q", "l")}, np.full(m, np.nan), \
        np.full(m, np.nan), np.full((m, d), np.nan), np.full((m, d), np.nan, np.float32)


def _check_against_reference(loss, X, y, s, w, wabs, g0):
    """Both calls (bare, and with every optional output) against the NumPy reference, and
    the bare outputs equal to the full call's, bit for bit."""
    m, d = X.shape
    code = get_loss(loss).code
    bare, _, _, _, _ = _outputs(m, d)
    g_bare = g0.copy()
    F_bare = margin_chunk(code, X, y, s, w, NONE, g_bare, bare["p"], bare["r"], bare["q"],
                          bare["l"], NONE, NONE)
    out, absp, sq, Z64, Z32 = _outputs(m, d)
    g = g0.copy()
    F = margin_chunk(code, X, y, s, w, wabs, g, out["p"], out["r"], out["q"], out["l"], absp,
                     sq, Z64=Z64, Z32=Z32)
    assert F == F_bare and np.array_equal(g, g_bare)
    for k in out:
        assert np.array_equal(out[k], bare[k]), k

    X64, y64, s64 = (np.asarray(a, dtype=np.float64) for a in (X, y, s))  # exact
    p, r, q, l = out["p"], out["r"], out["q"], out["l"]
    # margins: the kernel's and NumPy's each within gamma_d |x|^T |w| of x^T w
    assert np.all(np.abs(p - X64 @ w) <= 2 * gamma(d) * (np.abs(X64) @ np.abs(w)))
    if d == 0:
        assert np.array_equal(p, np.zeros(m))
    # losses and derivatives at the kernel's own margins (the reference's formulas)
    lr, d1, d2 = ref.LOSSES[loss](p, y64)
    z = y64 * p
    assert np.all(np.abs(l - lr) <= _formula_bound(lr, z))
    assert np.all(np.abs(r - s64 * d1) <= _formula_bound(s64 * d1, z))
    assert np.all(np.abs(q - s64 * d2) <= _formula_bound(s64 * d2, z))
    # F = sum s_i l_i in double: m products and m - 1 additions
    assert abs(F - math.fsum(s64 * l)) <= gamma(m + 1) * float(np.abs(s64 * l).sum())
    # g accumulates: g0 + X^T r, m + 1 terms in any order (kernel's and NumPy's)
    bound = 2 * gamma(m + 2) * (np.abs(g0) + np.abs(X64).T @ np.abs(r))
    assert np.all(np.abs(g - (g0 + X64.T @ r)) <= bound)
    # |X| wabs and ||x_i||^2
    assert np.all(np.abs(absp - np.abs(X64) @ wabs) <= 2 * gamma(d) * (np.abs(X64) @ np.abs(wabs)))
    assert np.all(np.abs(sq - (X64 * X64).sum(axis=1)) <= 2 * gamma(d) * (X64 * X64).sum(axis=1))
    # Z = sqrt(max(q, 0)) x: a square root and a product (and float32's rounding for Z32),
    # each relative or, underflowing, half the type's smallest subnormal
    Zr = np.sqrt(np.maximum(q, 0.0))[:, None] * X64
    assert np.all(np.abs(Z64 - Zr) <= 4 * gamma(1) * np.abs(Zr) + 2.0 ** -1073)
    assert np.all(np.abs(Z32 - Zr) <= (2.0 ** -24 + 4 * gamma(1)) * np.abs(Zr) + 2.0 ** -149)
    assert not np.any(Z64[q < 0]) and not np.any(Z32[q < 0])
    return F


@settings(max_examples=200, deadline=None)
@given(m=st.integers(0, 300), d=st.integers(0, 70),
       dtype=st.sampled_from([np.float64, np.float32]), loss=st.sampled_from(LOSSES),
       far=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
@example(m=0, d=0, dtype=np.float64, loss="logistic", far=False, seed=0)
@example(m=0, d=5, dtype=np.float32, loss="squared", far=False, seed=1)
@example(m=7, d=0, dtype=np.float32, loss="logistic", far=False, seed=2)
@example(m=9, d=0, dtype=np.float64, loss="smoothed_hinge", far=False, seed=3)
# blocks of 32768 bytes: 58 float64 rows of 70 (300 = 5 x 58 + 10), 122 float32 rows of 67
@example(m=300, d=70, dtype=np.float64, loss="smoothed_hinge", far=False, seed=4)
@example(m=150, d=9, dtype=np.float64, loss="logistic", far=True, seed=8)
@example(m=299, d=67, dtype=np.float32, loss="logistic", far=False, seed=5)
@example(m=3, d=1, dtype=np.float32, loss="squared", far=False, seed=6)
def test_against_reference(m, d, dtype, loss, far, seed):
    _check_against_reference(loss, *_problem(seed, m, d, dtype, loss, far))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("m, d", [(2003, 5), (1001, 37), (6, 4099)])
def test_several_row_blocks(m, d, dtype, loss):
    """More rows than one block of rows (819 float64 rows of 5) and than one block of the
    loss loop (256 samples), neither a multiple of the other nor of 4; rows longer than a
    block (one row per block)."""
    _check_against_reference(loss, *_problem(m + d, m, d, dtype, loss))


def test_empty_chunk_leaves_g():
    g0 = np.array([1.5, -2.0, 0.25])
    g = g0.copy()
    F = margin_chunk(1, np.empty((0, 3)), NONE, NONE, np.ones(3), NONE, g, NONE, NONE, NONE,
                     NONE, NONE, NONE, Z64=np.empty((0, 3)))
    assert F == 0.0 and np.array_equal(g, g0)


# -- float32 data: float64 sums -------------------------------------------------------


def _exact_dots(A, v):
    """``A v`` for float64 ``A`` and ``v``, each entry the correctly rounded exact sum."""
    vf = [Fraction(x) for x in v]
    return np.array([float(sum(Fraction(a) * b for a, b in zip(row, vf) if a))
                     for row in A.tolist()])


def test_float32_rows_are_summed_in_double():
    """float32 rows: ``p`` and ``g`` are float64 computations on the (exactly converted)
    data, to 1e-12 of the sums of absolute terms, where summing in float32 errs by about
    1e-7 (checked here, so the test tells one from the other)."""
    rng = np.random.default_rng(20261208)
    m, d = 300, 64
    X = (rng.random((m, d)) + 0.5).astype(np.float32)  # positive: |x|^T |w| = x^T w
    w = (rng.random(d) / d).astype(np.float32).astype(np.float64)
    y = np.where(rng.random(m) < 0.5, 1.0, -1.0).astype(np.float32)
    s = np.full(m, 1.0 / m, np.float32)
    X64 = X.astype(np.float64)
    p, r, q, l = (np.empty(m) for _ in range(4))
    g = np.zeros(d)
    margin_chunk(get_loss("logistic").code, X, y, s, w, NONE, g, p, r, q, l, NONE, NONE)

    p_exact = _exact_dots(X64, w)
    g_exact = _exact_dots(X64.T, r)
    p_scale, g_scale = X64 @ w, np.abs(X64).T @ np.abs(r)
    assert np.max(np.abs(p - p_exact) / p_scale) < 1e-12
    assert np.max(np.abs(g - g_exact) / g_scale) < 1e-12
    # the same sums in float32 (in order, and as BLAS makes them) miss by far more
    w32, r32 = w.astype(np.float32), r.astype(np.float32)
    for p32 in (np.cumsum(X * w32, axis=1, dtype=np.float32)[:, -1], X @ w32):
        assert np.max(np.abs(p32 - p_exact) / p_scale) > 1e-9
    for g32 in (np.cumsum(X * r32[:, None], axis=0, dtype=np.float32)[-1], X.T @ r32):
        assert np.max(np.abs(g32 - g_exact) / g_scale) > 1e-9


# -- the wrapper's checks ---------------------------------------------------------------


def _valid(m=6, d=3, dtype=np.float64):
    rng = np.random.default_rng(0)
    return dict(loss=1, X=rng.standard_normal((m, d)).astype(dtype),
                y=np.ones(m, dtype), s=np.full(m, 1.0 / max(m, 1), dtype), w=np.ones(d),
                wabs=np.ones(d), g=np.zeros(d), p=np.empty(m), r=np.empty(m), q=np.empty(m),
                l=np.empty(m), absp=np.empty(m), sq=np.empty(m), Z64=np.empty((m, d)),
                Z32=np.empty((m, d), np.float32))


def _call(a):
    a = dict(a)
    return margin_chunk(a.pop("loss"), a.pop("X"), a.pop("y"), a.pop("s"), a.pop("w"),
                        a.pop("wabs"), a.pop("g"), a.pop("p"), a.pop("r"), a.pop("q"),
                        a.pop("l"), a.pop("absp"), a.pop("sq"), **a)


def test_valid_arguments_pass():
    for m, d in ((6, 3), (0, 3), (6, 0), (0, 0)):
        for dtype in (np.float64, np.float32):
            assert np.isfinite(_call(_valid(m, d, dtype)))


def _bad_lengths():
    cases = []
    for m, d in ((6, 3), (0, 2), (5, 0)):
        for name in ("y", "s", "p", "r", "q", "l", "absp", "sq"):
            for size in {m + 1, max(m - 1, 0)} - {m} - ({0} if name in ("absp", "sq") else set()):
                cases.append((m, d, name, (size,)))
        for name in ("w", "g", "wabs") if m else ("w", "g"):  # wabs: read with absp only
            for size in {d + 1, max(d - 1, 0)} - {d}:
                cases.append((m, d, name, (size,)))
        for name in ("Z64", "Z32"):
            for shape in ((m + 1, d), (m, d + 1), (d, m) if m != d else (m + 2, d)):
                cases.append((m, d, name, shape))
    return cases


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, d, name, shape", _bad_lengths())
def test_wrong_length_is_named(m, d, name, shape, dtype):
    a = _valid(m, d, dtype)
    a[name] = np.zeros(shape, a[name].dtype)
    what = "shape" if name.startswith("Z") else "length"
    with pytest.raises(ValueError, match=rf"margin_chunk: {name} has {what} "):
        _call(a)


def test_wabs_is_ignored_without_absp():
    """``wabs`` is not read (nor checked) when ``absp`` is empty."""
    a = _valid()
    a["absp"], a["wabs"] = NONE, np.ones(7)
    assert np.isfinite(_call(a))


@pytest.mark.parametrize("code", [-1, 3, 99])
def test_unknown_loss_code(code):
    a = _valid()
    a["loss"] = code
    with pytest.raises(ValueError, match=f"loss code {code} is not a built-in loss"):
        _call(a)


@pytest.mark.parametrize("change, error", [
    (lambda a: {"X": np.ones((6, 6))[:, ::2]}, ValueError),  # strided rows
    (lambda a: {"X": np.asfortranarray(a["X"])}, ValueError),
    (lambda a: {"X": a["X"][0]}, TypeError),  # one dimension
    (lambda a: {"X": a["X"][None]}, TypeError),  # three
    (lambda a: {"y": np.ones(12)[::2]}, ValueError),
    (lambda a: {"X": a["X"].astype(np.float32)}, ValueError),  # types mixed
    (lambda a: {"X": a["X"].astype(np.int64), "y": np.ones(6, np.int64),
                "s": np.ones(6, np.int64)}, TypeError),
    (lambda a: {"g": np.zeros(3, np.float32)}, ValueError),
    (lambda a: {"Z64": np.empty((6, 3), np.float32)}, ValueError),
    (lambda a: {"Z32": np.empty((6, 3))}, ValueError),
    (lambda a: {"Z64": np.empty((6, 6))[:, ::2]}, ValueError),
])
def test_bad_layouts_and_types_raise(change, error):
    """Non-contiguous, wrongly typed or shaped arrays: Cython's buffer checks refuse them
    (never a crash)."""
    a = _valid()
    a.update(change(a))
    with pytest.raises(error):
        _call(a)


@pytest.mark.parametrize("name", ["g", "p", "r", "q", "l", "absp", "sq", "Z64", "Z32"])
def test_read_only_outputs_raise_and_inputs_may_be(name):
    a = _valid()
    a[name].setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        _call(a)
    a = _valid()
    for k in ("X", "y", "s", "w", "wabs"):  # a read-only memmap's rows
        a[k].setflags(write=False)
    assert np.isfinite(_call(a))


# -- the pass: chunks on threads, added in row order ------------------------------------


def _same(a, b):
    """Two :class:`GramPass` equal bit for bit, field by field (the certificate's sums
    included)."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            _same(x, y)
        else:
            assert np.array_equal(x, y), f.name
            assert np.asarray(x).dtype == np.asarray(y).dtype, f.name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["logistic", "smoothed_hinge"])
def test_gram_pass_is_the_same_on_one_and_two_threads(loss, dtype, monkeypatch):
    """21 chunks of 341 rows in two blocks (``CHUNK_BYTES = 16 KiB``), on one thread and on
    a pool of two: ``F``, ``g``, ``H`` and every sum equal bit for bit, for the full pass,
    a Hessian stride, the warm start's subsample, float32 Hessians and the accurate value;
    and the full pass is the NumPy reference's."""
    monkeypatch.setattr(_gram_pass, "CHUNK_BYTES", 1 << 14)
    rng = np.random.default_rng(24)
    n, d = 7001, 6
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.where(X[:, 0] + rng.standard_normal(n) > 0, 1.0, -1.0)
    data = prepare(X, y, loss=get_loss(loss), sample_weight=rng.random(n) + 0.1)
    one, two = data.engine(0, n_threads=1), data.engine(0, n_threads=2)
    assert _gram_pass.chunk_rows(one) == _gram_pass.chunk_rows(two) == 341
    threads = set()
    chunk = _gram_pass.margin_chunk

    def recorded(*args, **kw):
        threads.add(threading.get_ident())
        return chunk(*args, **kw)

    monkeypatch.setattr(_gram_pass, "margin_chunk", recorded)
    w = rng.standard_normal(d)
    for kw in ({}, {"stride": 3}, {"sample": 2}, {"single_hessian": True}, {"value": True}):
        threads.clear()
        a = _gram_pass.gram_pass(one, w, **kw)
        assert threads == {threading.get_ident()}
        threads.clear()
        b = _gram_pass.gram_pass(two, w, **kw)
        assert threading.get_ident() not in threads and threads  # the pool's threads
        _same(a, b)
        assert a.single_hessian == kw.get("single_hessian", False)
        assert (a.value is not None) == kw.get("value", False)

    # the full pass against NumPy: sums of n terms, margins of d, the loss formulas a few
    # dozen ulp; a margin's error moves l by |l'| gamma_d |x|^T |w| (|l'| <= ~l here)
    full = _gram_pass.gram_pass(one, w)
    X64, s = X.astype(np.float64), np.asarray(data.s, dtype=np.float64)
    lr, d1, d2 = ref.LOSSES[loss](X64 @ w, y)
    tol = 2 * gamma(n + d + 64) * (1 + float(np.max(np.abs(X64) @ np.abs(w))))
    assert abs(full.F - float(s @ lr)) <= tol * float(s @ np.abs(lr))
    assert np.all(np.abs(full.g - X64.T @ (s * d1)) <= tol * (np.abs(X64).T @ np.abs(s * d1)))
    H = (X64 * (s * d2)[:, None]).T @ X64
    H_abs = (np.abs(X64) * np.abs(s * d2)[:, None]).T @ np.abs(X64)
    assert np.all(np.abs(np.triu(full.H) - np.triu(H)) <= tol * H_abs)
    assert full.h_share == 1.0 and np.any(full.H)
