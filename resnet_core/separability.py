"""Linear separability of labelled data, decided by a linear program.

For labels ``y_i`` in {-1, +1} and weights ``s_i > 0``, a direction ``u`` with
``y_i x_i^T u >= 0`` for every sample moves every margin up or leaves it alone.  The samples
whose margin it can make positive form a set ``S`` (the largest one over all such ``u`` is
unique: two directions add), and the rest ``R`` keep ``y_i x_i^T u = 0`` for every such
``u``.  Three cases (Albert and Anderson, 1984):

- ``"separable"``: ``S`` is every sample (complete separation, ``y_i x_i^T u > 0`` for all).
- ``"quasi_separable"``: ``S`` and ``R`` both non-empty.
- ``"overlapping"``: ``S`` is empty; no direction improves one margin without hurting another.

Why it matters: along ``u``, a margin loss such as the logistic decreases on ``S`` towards its
limit (0) and is unchanged on ``R``, so ``inf_w F_lin(w) = min_w E[l; R]``, attained only when
``S`` is empty (or, for a loss that is exactly 0 beyond a finite margin, always).

The linear program: maximise ``sum_i t_i`` over ``u`` (free) and ``t`` in ``[0, 1]^m`` subject
to ``y_i z_i^T u >= t_i``, with ``z_i`` the sample rescaled by column (largest magnitude 1) and
then by row (unit norm), which leaves ``S`` unchanged and makes HiGHS's absolute tolerances
meaningful.  At an optimum ``t_i = 1`` exactly on ``S`` (scaling ``u`` up would raise any
``t_i < 1`` on ``S``).  The direction is then checked on the original data: every sample
claimed in ``S`` must have a positive margin, or it is moved to ``R``.

Classes ``0..c-1`` (multinomial labels): the same construction on the pairs ``(i, j)``,
``j != y_i``, with the pair margins ``(u_{y_i} - u_j)^T x_i`` of a ``c x d`` direction ``U``:
``S`` is the set of pairs some recession direction makes positive.  A sample's
cross-entropy ``log(1 + sum_{j != y_i} exp(-(w_{y_i} - w_j)^T x_i))`` tends to 0 along ``U``
when all its pairs are in ``S``, and otherwise to the same expression over its pairs in ``R``
only.  The program is ``max sum t_ij`` subject to ``(u_{y_i} - u_j)^T z_i >= t_ij``, ``t`` in
``[0, 1]``, with ``sum_k u_k = 0`` (margins do not see a shift of every row); it has
``m (c - 1) (2 d + 1)`` non-zeros.

Overlap first, without that program (labels -1 / +1): by Stiemke's lemma ``S`` is empty if and
only if some ``lam_i > 0`` give ``sum_i lam_i y_i x_i = 0``.  A smaller program, ``lam >= 1``
with ``B^T lam = 0`` (``d`` equality rows, ``B`` the rows ``y_i x_i`` scaled by powers of two,
exactly), is solved on a fixed random subset of ``64 d`` samples, growing by the samples the
subset's own recession direction gets wrong (constraint generation).  Its answer is not trusted
but verified in floating point with rounding bounded: a unit ``u`` with ``B u >= 0`` has
``b_i^T u <= lam_i b_i^T u <= r^T u <= ||r||`` for every ``i`` (``r = B^T lam``), so
``||B u|| <= sqrt(k) ||r||``; when that bound is below the smallest singular value of ``B`` (both with
their rounding errors bounded), no such ``u`` exists: exactly ``"overlapping"``, whatever the
program's tolerances.  Otherwise the full program below decides.  See
:func:`overlap_certificate`.

Cost: the program has ``m (d + 1)`` non-zeros (``m`` the samples with positive weight); it runs
up to ``max_lp_entries`` of them (default 4e6, e.g. 1e5 samples of 40 features, seconds to minutes
with HiGHS; the certificate runs under the same limit).  Above, the answer is ``"not_decided"``
and the caller must decide by other means (see :func:`resnet_core.linear_baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike
from scipy.optimize import linprog

from ._schema import validated
from ._validation import check_classes, check_data, check_sample_weight, to_numpy

MAX_LP_ENTRIES = 4_000_000
# Programs with more non-zeros than this run in a forked child, killed on Ctrl-C (HiGHS
# answers an interrupt only when it returns: 1.2-1.5 s on 3.6e5 samples, minutes on more).
FORK_ENTRIES = 200_000


def _linprog_child(conn, args, kwargs):
    try:
        res = linprog(*args, **kwargs)
        conn.send((res.status, res.x, res.fun, res.message))
    except BaseException as exc:  # noqa: BLE001 (reported to the parent)
        conn.send(exc)
    finally:
        conn.close()


def interruptible_linprog(*args, nnz: int = 0, **kwargs):
    """``scipy.optimize.linprog`` that Ctrl-C stops within a fraction of a second: above
    ``FORK_ENTRIES`` non-zeros the program runs in a forked child (the data shared
    copy-on-write, only the answer sent back), which is killed on KeyboardInterrupt.  Returns
    an object with ``status``, ``x``, ``fun``, ``message`` (and all of ``linprog``'s fields
    when solved here)."""
    import multiprocessing as mp
    from types import SimpleNamespace
    if nnz <= FORK_ENTRIES or "fork" not in mp.get_all_start_methods():
        return linprog(*args, **kwargs)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_linprog_child, args=(child, args, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        while not parent.poll(0.05):
            if not proc.is_alive() and not parent.poll(0):
                raise RuntimeError("the linear program's process died "
                                   f"(exit code {proc.exitcode})")
        answer = parent.recv()
    except BaseException:
        proc.kill()
        proc.join()
        raise
    finally:
        parent.close()
    proc.join()
    if isinstance(answer, BaseException):
        raise answer
    status, x, fun, message = answer
    return SimpleNamespace(status=status, x=x, fun=fun, message=message)


@dataclass
class Separability:
    """The answer of :func:`linear_separability`.

    Attributes
    ----------
    status : {"separable", "quasi_separable", "overlapping", "not_decided"}
    direction : ndarray of shape (d,) or (c, d), or None
        Unit ``u`` with ``y_i x_i^T u > 0`` on ``separated`` and ``= 0`` (up to the LP's
        tolerance) elsewhere; None when overlapping or not decided.  For classes: ``U`` of
        unit Frobenius norm with rows summing to 0, positive on ``separated_pairs``.
    separated : ndarray of bool, shape (n,), or None
        The set ``S`` (samples of zero weight are never in it); for classes, the samples
        whose every pair is in ``S``.
    min_margin : float
        ``min_{i in S} y_i x_i^T u / ||x_i||``, positive (0 when ``S`` is empty); for
        classes, over the separated pairs.
    message : str
    separated_pairs : ndarray of bool, shape (n, c), or None
        For classes only: ``[i, j]`` is True when the pair ``(i, j)``, ``j != y_i``, is in
        ``S`` (``[i, y_i]`` is False).
    method : {"linear program", "certificate", "minimiser"}
        What decided: the linear program over every sample, or (``"overlapping"`` only) the
        verified positive combination of :func:`overlap_certificate`, or a minimiser's
        weights (:func:`minimiser_certificate`).
    lp_skipped : str
        ``"too large"`` (above ``max_lp_entries``) or ``"data not in memory"`` when the
        program that would decide was not run (``"not_decided"``); else ``""``.
    lp_entries : int
        The non-zeros of that program.
    """

    status: str
    direction: np.ndarray | None
    separated: np.ndarray | None
    min_margin: float
    message: str
    separated_pairs: np.ndarray | None = None
    method: str = "linear program"
    npass: int = 0  # data passes of the Newton run that found a separation (0: none)
    # Why the program was not run ("too large": above max_lp_entries; "data not in memory"),
    # "" when it ran or was not needed, and its size in non-zeros.
    lp_skipped: str = ""
    lp_entries: int = 0

    @property
    def n_separated(self) -> int:
        return 0 if self.separated is None else int(self.separated.sum())


@validated(renamed={"max_entries": "max_lp_entries"})
def linear_separability(X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None, *,
                        n_classes: int | None = None,
                        max_lp_entries: int = MAX_LP_ENTRIES) -> Separability:
    """Decide whether labels ``y`` in {-1, +1}, or classes ``0..c-1``, are linearly
    separable on ``X`` (through the origin: append a constant column for an intercept).

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,)
        Labels -1 or +1; or integer classes ``0..c-1`` (any labels outside {-1, +1}, or
        ``n_classes`` given): separable then means some ``U`` (c x d) has
        ``(u_{y_i} - u_j)^T x_i > 0`` for every sample and class ``j != y_i``.
    sample_weight : array of shape (n,), optional
        Samples of zero weight are ignored.
    n_classes : int, optional
        Number of classes ``c`` (default ``max(y) + 1``); selects the multi-class test.
    max_lp_entries : int
        Largest linear program (non-zeros ``m (d + 1)``, or ``m (c - 1) (2 d + 1)`` for
        classes) to solve.

    Returns
    -------
    Separability
        See the module notes for the three cases and the linear program.
    """
    if n_classes is not None or not np.isin(np.asarray(to_numpy("y", y)), (-1, 1)).all():
        labels, c = check_classes(y, n_classes, np.shape(X)[0] if np.ndim(X) == 2 else None)
        X = check_data(X, labels.astype(np.float64))[0]
        s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return class_separability(X, labels, s, c, max_lp_entries)
    X, y = check_data(X, y)
    if not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError("y must hold labels -1 or +1 for a separability test; found "
                         f"{y[~np.isin(y, (-1.0, 1.0))][0]}")
    s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return binary_separability(X, y, s, max_lp_entries)


def _active(X, s):
    """The rows' norms and the samples the program sees: positive weight, ``x != 0``."""
    row_norm = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    return row_norm, np.flatnonzero((s > 0) & (row_norm > 0))


def _too_large(nnz, max_lp_entries) -> Separability:
    return Separability("not_decided", None, None, 0.0,
                        f"not decided: the linear program would have {nnz} non-zeros, "
                        f"above max_lp_entries = {max_lp_entries}",
                        lp_skipped="too large", lp_entries=nnz)


def binary_separability(X, y, s, max_lp_entries) -> Separability:
    """:func:`linear_separability` for labels ``y`` in {-1, +1} (validated)."""
    n, d = X.shape
    row_norm, active = _active(X, s)
    m = active.size
    if m * (d + 1) > max_lp_entries:
        return _too_large(m * (d + 1), max_lp_entries)
    if m == 0:
        return Separability("overlapping", None, np.zeros(n, bool), 0.0,
                            "no sample with positive weight and non-zero x")
    certified = overlap_certificate(X, y, active)
    if certified is not None:
        return Separability("overlapping", None, np.zeros(n, bool), 0.0,
                            "overlapping: sum_i lam_i y_i x_i = 0 with every lam_i >= 1 on "
                            f"{certified} samples (verified, rounding bounded)",
                            method="certificate")
    Z, col = _unit_rows(X, active)
    Z *= y[active, None]
    A = scipy.sparse.hstack([scipy.sparse.csr_matrix(-Z), scipy.sparse.identity(m, format="csr")],
                            format="csr")
    cost = np.concatenate([np.zeros(d), -np.ones(m)])
    bounds = [(None, None)] * d + [(0.0, 1.0)] * m
    res = interruptible_linprog(cost, A_ub=A, b_ub=np.zeros(m), bounds=bounds, method="highs",
                                nnz=m * (d + 1))
    if res.status != 0:
        return Separability("not_decided", None, None, 0.0,
                            f"not decided: the linear program failed ({res.message})")
    u = res.x[:d] / col
    t = res.x[d:]
    norm = np.linalg.norm(u)
    separated = np.zeros(n, bool)
    if norm == 0 or not np.any(t > 0.5):
        return Separability("overlapping", None, separated, 0.0,
                            "overlapping: no direction separates any sample")
    u /= norm
    margins = (np.asarray(X[active], dtype=np.float64) @ u) * y[active] / row_norm[active]
    # A margin this close to 0 is the LP's tolerance, not a separation.
    claimed = (t > 0.5) & (margins > 64 * np.finfo(np.float64).eps * d)
    separated[active[claimed]] = True
    if not claimed.any():
        return Separability("overlapping", None, separated, 0.0,
                            "overlapping: no direction separates any sample")
    min_margin = float(margins[claimed].min())
    if claimed.all() and m == np.count_nonzero(s > 0):
        return Separability("separable", u, separated, min_margin,
                            f"linearly separable: y_i x_i^T u > 0 for all {m} samples "
                            f"(smallest margin / ||x_i|| {min_margin:.3g})")
    return Separability("quasi_separable", u, separated, min_margin,
                        f"quasi-separable: a direction separates {int(claimed.sum())} of "
                        f"{np.count_nonzero(s > 0)} samples and leaves the others on its "
                        "hyperplane")


CERTIFICATE_SUBSET = 64  # samples per feature in the first certificate program, and per round
CERTIFICATE_ROUNDS = 8
_UNIT = 2.0 ** -53  # unit roundoff of float64


def overlap_certificate(X, y, active) -> int | None:
    """Prove that no ``u != 0`` has ``y_i x_i^T u >= 0`` for every row in ``active``
    (then ``S`` is empty: ``"overlapping"``), or return None.

    A proof on a subset of the rows holds for all of them.  Starting from a fixed random
    subset of ``CERTIFICATE_SUBSET * d`` rows, each round solves :func:`_elastic_combination`
    on the subset; when the subset has a recession direction ``u``, the rows of all the data
    that ``u`` gets wrong (most negative margins first, ``CERTIFICATE_SUBSET * d`` of them)
    join the subset.  None when ``u`` gets no row wrong (the data are not overlapping, up to
    rounding: the full program decides), when the verification fails, or after
    ``CERTIFICATE_ROUNDS`` rounds.  Returns the number of rows of the proof.
    """
    m, d = active.size, X.shape[1]
    block = CERTIFICATE_SUBSET * d
    rows = active if block >= m // 2 else active[np.sort(
        np.random.default_rng(0).choice(m, block, replace=False))]
    for _ in range(CERTIFICATE_ROUNDS):
        scaled = _exact_rows(X, y, rows)
        if scaled is None:
            return None
        B, col = scaled
        lam, u = _elastic_combination(B)
        if lam is not None:
            return rows.size if _verify(B, lam) else None
        margins = np.asarray(X @ (u * col), dtype=np.float64)[active] * y[active]
        wrong = np.setdiff1d(active[np.argsort(margins)[:block]], rows)
        wrong = wrong[(margins[np.searchsorted(active, wrong)] < 0)]
        if wrong.size == 0:
            return None
        rows = np.union1d(rows, wrong)
    return None


def _exact_rows(X, y, rows):
    """The rows ``y_i x_i`` (float64) scaled by powers of two per column and per row (largest
    magnitudes in [1/2, 1)) and the column factors; None where that would lose bits."""
    A = np.asarray(X[rows], dtype=np.float64) * y[rows, None]
    if not np.isfinite(A).all():
        return None
    col = np.exp2(-np.frexp(np.abs(A).max(axis=0))[1].astype(np.float64))
    B = A * col
    row = np.exp2(-np.frexp(np.abs(B).max(axis=1))[1].astype(np.float64))[:, None]
    B *= row
    return (B, col) if np.array_equal(B / row / col, A) else None


def _elastic_combination(B):
    """Minimise ``||B^T lam||_1`` over ``lam >= 1`` (``d`` equality rows with slacks).

    Returns ``(lam, None)`` when the minimum is 0 to HiGHS's tolerance, else ``(None, u)``
    with ``u`` the program's dual: ``B u >= 0``, ``||u||_inf <= 1``, maximising
    ``sum_i b_i^T u`` (the subset's recession direction of largest total margin).
    """
    k, d = B.shape
    eye = np.eye(d)
    res = interruptible_linprog(np.r_[np.zeros(k), np.ones(2 * d)],
                                A_eq=np.hstack([B.T, eye, -eye]), b_eq=np.zeros(d),
                                bounds=[(1.0, None)] * k + [(0.0, None)] * (2 * d),
                                method="highs", nnz=(k + 2) * d)
    if res.status != 0:
        return None, np.zeros(d)
    if res.fun <= 1e-9 * max(1.0, float(np.max(res.x[:k]))):
        return np.maximum(res.x[:k], 1.0), None
    return None, -np.asarray(res.eqlin.marginals, dtype=np.float64)


def _verify(B, lam) -> bool:
    """True when ``lam >= 1`` proves that no unit ``u`` has ``B u >= 0``.

    For such a ``u``, ``0 <= b_i^T u <= sum_j lam_j b_j^T u = r^T u <= ||r||``
    (``r = B^T lam``), so ``||B u|| <= sqrt(k) ||r||``, while ``||B u|| >= sigma_min(B)``.
    Rounding is bounded: ``|fl(B^T lam) - B^T lam| <= gamma_k |B|^T lam`` componentwise
    (``gamma_k = k u / (1 - k u)``, any order of summation), and a backward-stable SVD
    gives ``sigma_min`` within ``10 k d u ||B||_F``; both bounds are taken against us.
    """
    k, d = B.shape
    if k < d:  # B u = 0 has a solution u != 0
        return False
    gamma = (k + 2) * _UNIT / (1 - (k + 2) * _UNIT)
    r = B.T @ lam
    bound = np.abs(B).T @ lam * (gamma * (1 + gamma))
    r_up = (np.linalg.norm(r) + np.linalg.norm(bound)) * (1 + 4 * (d + 2) * _UNIT)
    sv = np.linalg.svd(B, compute_uv=False)
    sigma_low = sv[-1] - 10 * k * d * _UNIT * np.sqrt(np.sum(B * B))
    return bool(sigma_low > 0 and np.sqrt(k) * r_up * (1 + 1e-12) < sigma_low)


def _unit_rows(X, active):
    """Rows ``active`` of ``X`` in float64, scaled per column (largest magnitude 1) and then
    per row (unit norm), and the column scales."""
    Z = np.asarray(X[active], dtype=np.float64)
    col = np.abs(Z).max(axis=0)
    col[col == 0] = 1.0
    Z /= col
    Z /= np.linalg.norm(Z, axis=1)[:, None]
    return Z, col


def class_separability(X, labels, s, c, max_lp_entries) -> Separability:
    """:func:`linear_separability` for integer classes ``labels`` in ``0..c-1`` (validated)."""
    n, d = X.shape
    row_norm, active = _active(X, s)
    m = active.size
    nnz = m * (c - 1) * (2 * d + 1)
    if nnz > max_lp_entries:
        return _too_large(nnz, max_lp_entries)
    none = np.zeros((n, c), bool)
    if m == 0:
        return Separability("overlapping", None, np.zeros(n, bool), 0.0,
                            "no sample with positive weight and non-zero x", none)
    Z, col = _unit_rows(X, active)
    ya = labels[active]
    # Pairs (sample a, class j != y_a), sample-major; pair r has margin (u_ya - u_j)^T z_a.
    others = np.array([np.delete(np.arange(c), k) for k in range(c)])[ya]  # (m, c-1)
    smp = np.repeat(np.arange(m), c - 1)
    cls = others.ravel()
    n_pairs = smp.size
    rows = np.repeat(np.arange(n_pairs), 2 * d + 1)
    cols = np.concatenate([
        (ya[smp] * d)[:, None] + np.arange(d),       # -z_a on u_{y_a}
        (cls * d)[:, None] + np.arange(d),          # +z_a on u_j
        (c * d + np.arange(n_pairs))[:, None]], axis=1).ravel()
    vals = np.concatenate([-Z[smp], Z[smp], np.ones((n_pairs, 1))], axis=1).ravel()
    A = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n_pairs, c * d + n_pairs))
    # sum_k u_k = 0: one representative of the shift U -> U + 1 b^T.
    A_eq = scipy.sparse.hstack([scipy.sparse.kron(np.ones((1, c)), scipy.sparse.identity(d)),
                                scipy.sparse.csr_matrix((d, n_pairs))], format="csr")
    scores_of = np.asarray(X[active], dtype=np.float64)

    def pair_margins(x):
        U = x[:c * d].reshape(c, d) / col
        U -= U.mean(axis=0)
        norm = np.linalg.norm(U)
        U = U / norm if norm > 0 else U
        scores = scores_of @ U.T
        return U, (scores[smp, ya[smp]] - scores[smp, cls]) / row_norm[active][smp]

    # A margin this close to 0 is the LP's tolerance, not a separation.
    threshold = 64 * np.finfo(np.float64).eps * d * c
    # Complete separation first, by the smaller feasibility program (every margin >= 1, no t;
    # an interior-point solve takes a fraction of the time of the full program's).
    feas = interruptible_linprog(np.zeros(c * d), A_ub=A[:, :c * d], b_ub=-np.ones(n_pairs),
                                 A_eq=A_eq[:, :c * d], b_eq=np.zeros(d), bounds=(None, None),
                                 method="highs-ipm", nnz=nnz)
    if feas.status == 0:
        U, margins = pair_margins(feas.x)
        t = np.ones(n_pairs)
    if feas.status != 0 or not np.all(margins > threshold):
        cost = np.concatenate([np.zeros(c * d), -np.ones(n_pairs)])
        bounds = [(None, None)] * (c * d) + [(0.0, 1.0)] * n_pairs
        res = interruptible_linprog(cost, A_ub=A, b_ub=np.zeros(n_pairs), A_eq=A_eq,
                                    b_eq=np.zeros(d), bounds=bounds, method="highs", nnz=nnz)
        if res.status != 0:
            return Separability("not_decided", None, None, 0.0,
                                f"not decided: the linear program failed ({res.message})")
        U, margins = pair_margins(res.x)
        t = res.x[c * d:]
    if not np.any(U) or not np.any(t > 0.5):
        return Separability("overlapping", None, np.zeros(n, bool), 0.0,
                            "overlapping: no direction separates any pair of classes", none)
    claimed = (t > 0.5) & (margins > threshold)
    if not claimed.any():
        return Separability("overlapping", None, np.zeros(n, bool), 0.0,
                            "overlapping: no direction separates any pair of classes", none)
    pairs = np.zeros((n, c), bool)
    pairs[active[smp[claimed]], cls[claimed]] = True
    whole = claimed.reshape(m, c - 1).all(axis=1)
    separated = np.zeros(n, bool)
    separated[active[whole]] = True
    min_margin = float(margins[claimed].min())
    if claimed.all() and m == np.count_nonzero(s > 0):
        return Separability("separable", U, separated, min_margin,
                            f"linearly separable: (u_y - u_j)^T x_i > 0 for all {m} samples "
                            f"and classes j != y_i (smallest margin / ||x_i|| "
                            f"{min_margin:.3g})", pairs)
    return Separability("quasi_separable", U, separated, min_margin,
                        f"quasi-separable: a direction separates {int(claimed.sum())} of "
                        f"{n_pairs + _zero_row_pairs(s, active, c)} (sample, class) pairs "
                        f"({int(whole.sum())} samples completely) and leaves the others on "
                        "their hyperplanes", pairs)


def _zero_row_pairs(s, active, c):
    """Pairs of positive-weight samples with ``x = 0`` (never separated, not in the LP)."""
    return (np.count_nonzero(s > 0) - active.size) * (c - 1)


@dataclass
class CombinationSums:
    """Sums over the margin vectors ``a_i`` of positive weight, in float64, at a point of a
    margin loss, for :func:`minimiser_certificate` (``a_i = y_i x_i`` with ``lam_i = -s_i l'``
    and ``q_i = s_i l''``; for classes the pair vectors ``a_ij = (P_{y_i} - P_j) kron x_i`` with
    ``lam_ij = s_i pi_ij`` and ``q_ij = fl(sqrt(lam_ij))^2``; any ``lam > 0`` and
    ``q = t^2 >= 0`` serve, ``||x_i||`` below reads ``||a_i||``).

    ``b = sum lam_i a_i``; ``H = sum q_i x_i x_i^T`` (its upper triangle is read);
    ``b_abs = sum lam_i ||x_i||`` and ``h_trace = sum q_i ||x_i||^2`` (rounding bounds);
    ``x_max = max ||x_i||``; ``q_over_lam = max q_i / lam_i``; ``terms``: the longest chain
    of additions in any entry (samples plus blocks); ``positive``: every ``lam_i > 0``."""

    b: np.ndarray
    H: np.ndarray
    b_abs: float
    h_trace: float
    x_max: float
    q_over_lam: float
    terms: int
    positive: bool


def minimiser_certificate(sums: CombinationSums) -> float:
    """How far the weights of a minimiser are from proving *overlap* (``S`` empty): a value
    below 1 is a proof with every rounding error bounded against it; ``inf`` when the
    construction does not apply (a zero weight, a singular ``H``).  The one overlap
    certificate of a minimiser, for one output and for the pairs of ``c`` outputs.

    Put ``v = -H^-1 b`` and ``lam'_i = lam_i + q_i a_i^T v``.  Then ``sum lam'_i a_i = b* +
    H* v = rho`` (the starred sums exact), and ``|a_i^T v| <= x_max ||v|| = kappa`` gives
    ``lam'_i >= lam_i / 2 > 0`` when ``kappa q_over_lam <= 1/2``.  A unit ``u`` with every
    ``a_i^T u >= 0`` would have ``sum lam'_i a_i^T u = rho^T u <= ||rho||``, so

        u^T H* u = sum q_i (a_i^T u)^2 <= max_i (q_i / lam'_i) max_i (a_i^T u) ||rho||
                 <= 2 q_over_lam x_max ||rho||,

    while ``u^T H* u >= lambda_min(H*)``.  Returned: the ratio of the right-hand bound to a
    lower bound of ``lambda_min(H*)``, or ``2 kappa q_over_lam`` if larger.  Bounds used:
    ``|H - H*| <= gamma_N |X|^T diag(q) |X|`` (spectral norm at most ``gamma_N h_trace``),
    ``||b - b*|| <= gamma_N b_abs``, the residual ``H v + b`` evaluated with
    ``gamma_{d+1} (|H| |v| + |b|)`` added, and ``eigvalsh`` within ``10 d u ||H||_F``.
    """
    d = sums.b.size
    H = np.triu(sums.H) + np.triu(sums.H, 1).T
    if not (sums.positive and np.isfinite(H).all() and np.isfinite(sums.b).all()):
        return np.inf
    ev, Q = np.linalg.eigh(H)
    if not ev[0] > 0:
        return np.inf
    v = -(Q @ ((Q.T @ sums.b) / ev))
    v = v - Q @ ((Q.T @ (H @ v + sums.b)) / ev)  # one step of refinement
    N = sums.terms + 4
    gamma = N * _UNIT / (1 - N * _UNIT)
    gamma_d = (d + 2) * _UNIT / (1 - (d + 2) * _UNIT)
    v_norm = float(np.linalg.norm(v)) * (1 + d * _UNIT)
    residual = H @ v + sums.b
    res_up = (float(np.linalg.norm(residual))
              + gamma_d * float(np.linalg.norm(np.abs(H) @ np.abs(v) + np.abs(sums.b))))
    h_error = gamma * sums.h_trace
    rho_up = (res_up + h_error * v_norm + gamma * sums.b_abs) * 1.01
    lam_low = float(ev[0]) - 10 * d * _UNIT * float(np.linalg.norm(H)) - h_error
    kappa = 2 * sums.x_max * v_norm * sums.q_over_lam * 1.01
    if not lam_low > 0:
        return np.inf
    return max(2 * sums.q_over_lam * sums.x_max * rho_up * 1.01 / lam_low, kappa)


def subset_direction(A: np.ndarray) -> np.ndarray | None:
    """A direction ``u`` with ``a_i^T u > 0`` for every row of ``A`` (the rows ``y_i x_i`` of a
    subset of the samples), from the feasibility program ``a_i^T u / ||a_i|| >= 1`` (no
    objective: HiGHS solves it several times faster than a largest-margin program); None
    when it is infeasible or fails.  Not trusted: the caller checks ``u`` on all the data."""
    norms = np.linalg.norm(A, axis=1)
    Z = A[norms > 0] / norms[norms > 0, None]
    res = interruptible_linprog(np.zeros(Z.shape[1]), A_ub=-Z, b_ub=-np.ones(Z.shape[0]),
                                bounds=(None, None), method="highs", nnz=Z.size)
    return res.x if res.status == 0 and np.all(np.isfinite(res.x)) else None
