"""Eigenpairs of the partial Hessian over ``(w, V)`` from its exact reduced matrix.

:func:`resnet_core.certify.reduced_hessian` (one output) and
:func:`resnet_core.certify_vector.reduced_hessian_vector` (c outputs) give a matrix ``M``,
in orthonormal coordinates of a subspace ``R`` of the ``(w, V)`` space, whose spectrum with
``n_zeros`` zeros is the Hessian's; the Hessian vanishes on the complement of ``R``.  An
eigenvector ``v`` of ``M`` is therefore the eigenvector ``lift(v)`` of the Hessian, and the
zero eigenvectors are an orthonormal basis of the complement, ``dw = 0``,
``dV = l_i r_j^T`` with ``l_i`` from the left and ``r_j`` from the right factor below.

One output, residual head (``w^ = w / ||w||``, ``g^ = g / ||g||``, ``Q`` a basis of the
complement of ``w``, ``P`` of that of ``g``)::

    coordinates (dw, z, zeta):  dV = w^ z^T + Q zeta g^T / ||g||;   zeros: dV = Q_i P_j^T

(at ``w = 0``: ``dV = y g^T``, ``Q = I``; at ``g = 0``: no ``zeta``, ``P = I``).  c outputs:
``dV = U a + Q zeta P1^T``, zeros ``Q_i (P2)_j^T`` (certify_vector's notes).  The skip head's
Hessian (one output) is the statistics' matrix ``[[A, B], [B^T, C]]`` itself (no zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

from . import certify_vector
from .certify import reduced_hessian

# Largest reduced matrix formed by method="auto" (as certify_vector.AUTO_MAX).
REDUCED_MAX = certify_vector.AUTO_MAX


@dataclass
class ReducedForm:
    """``M`` (symmetric), ``lift(v)`` (a reduced eigenvector to a flat ``(w, V)``),
    ``left`` and ``right`` (the zero eigenvectors are ``dV = left[:, i] right[:, j]^T``,
    ``dw = 0``, flattened by ``pack_dV``)."""

    M: np.ndarray
    lift: Callable[[np.ndarray], np.ndarray]
    left: np.ndarray
    right: np.ndarray
    pack_dV: Callable[[np.ndarray], np.ndarray] = None

    @property
    def n_zeros(self) -> int:
        return self.left.shape[1] * self.right.shape[1]


def _null(v: np.ndarray) -> np.ndarray:
    return scipy.linalg.null_space(v[None, :])


def _scalar_residual(fo, z) -> ReducedForm:
    st = fo.stats(z)
    w = np.asarray(fo.unpack(z)["w"], dtype=np.float64)
    A, B, C, g = (np.asarray(a, dtype=np.float64) for a in (st.A, st.B, st.C, st.g))
    d, k = B.shape
    M, _ = reduced_hessian(w, A, B, C, g)
    nw, ng = float(np.linalg.norm(w)), float(np.linalg.norm(g))
    w_hat = w / nw if nw else None
    g_hat = g / ng if ng else None
    Q = _null(w_hat) if nw else np.eye(d)
    P = _null(g_hat) if ng else np.eye(k)

    def lift(v):
        dw, rest = v[:d], v[d:]
        dV = np.zeros((d, k))
        if nw:
            dV += np.outer(w_hat, rest[:k])
            rest = rest[k:]
        if ng:
            dV += np.outer(Q @ rest if nw else rest, g_hat)
        return fo.pack(dw, dV)

    return ReducedForm(M, lift, Q, P, lambda dV: fo.pack(np.zeros(d), dV))


def _vector_residual(fo, z) -> ReducedForm:
    W, V = certify_vector.head_matrices(fo, z)
    stats = certify_vector._stats(fo, W, V, gauss_newton=True)
    M, _, _ = certify_vector.reduced_hessian_vector(W, stats.T, stats.Gamma)
    U, Q, _ = certify_vector._split_range(W, "row")
    P1, P2, _ = certify_vector._split_range(stats.Gamma, "col")
    c, d = W.shape
    k, r, s = stats.Gamma.shape[0], U.shape[1], P1.shape[1]

    def lift(v):
        dW = v[:c * d].reshape(c, d)
        a = v[c * d:c * d + r * k].reshape(r, k)
        zeta = v[c * d + r * k:].reshape(d - r, s)
        return fo.pack(dW, U @ a + Q @ zeta @ P1.T)

    return ReducedForm(M, lift, Q, P2, lambda dV: fo.pack(np.zeros((c, d)), dV))


def _skip(fo, z) -> ReducedForm:
    st = fo.stats(z)
    A, B, C = (np.asarray(a, dtype=np.float64) for a in (st.A, st.B, st.C))
    M = np.block([[A, B], [B.T, C]])

    def lift(v):
        return fo.pack(v[:fo.d], v[fo.d:])

    return ReducedForm(M, lift, np.zeros((fo.d, 0)), np.zeros((fo.k, 0)))


def reduced_size(fo) -> int:
    """Rows of the reduced matrix (its largest, for generic ranks)."""
    c, d, k = fo.n_outputs, fo.d, fo.k
    if fo.head != "residual":
        return c * (d + k)
    if not fo.vector:
        return 2 * d + k - 1
    return certify_vector.structured_size(fo)


def reduced_form(fo, z) -> ReducedForm | None:
    """The reduced form of the partial Hessian at ``z``, or None when it is larger than
    :data:`REDUCED_MAX` or the objective has no statistics (a loss without ``l''``)."""
    if reduced_size(fo) > REDUCED_MAX or (fo.vector and fo.head != "residual"):
        # c outputs, skip head: certify_vector's statistics leave B phi out of the
        # predictions (its T is not this Hessian), so products decide
        return None
    try:
        if fo.head != "residual":
            return _skip(fo, z)
        return _vector_residual(fo, z) if fo.vector else _scalar_residual(fo, z)
    except NotImplementedError:
        return None


def _extreme_eigh(M: np.ndarray, k: int, which: str):
    """The ``k`` lowest and/or highest eigenpairs of ``M`` (LAPACK ``syevr`` asked for those
    only), ascending."""
    m = M.shape[0]
    if 2 * k >= m:
        return np.linalg.eigh(M)
    parts = []
    if which in ("smallest", "both"):
        parts.append(scipy.linalg.eigh(M, subset_by_index=[0, k - 1], check_finite=False))
    if which in ("largest", "both"):
        parts.append(scipy.linalg.eigh(M, subset_by_index=[m - k, m - 1], check_finite=False))
    return np.concatenate([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def reduced_eigenpairs(form: ReducedForm, k: int, which: str):
    """The ``k`` smallest and/or largest eigenpairs of the Hessian (``which``), ascending:
    ``(values, vectors)``, vectors as columns of flat ``(w, V)`` points."""
    vals, vecs = _extreme_eigh(0.5 * (form.M + form.M.T), k, which)
    n_zeros = form.n_zeros
    allv = np.r_[vals, np.zeros(n_zeros)]
    src = np.r_[np.arange(vals.size), -1 - np.arange(n_zeros)]  # >= 0: M's; < 0: a zero
    order = np.argsort(allv, kind="stable")
    n = allv.size
    lo, hi = order[:min(k, n)], order[max(n - k, 0):]
    pick = {"smallest": lo, "largest": hi, "both": np.unique(np.r_[lo, hi])}[which]
    pick = pick[np.argsort(allv[pick], kind="stable")]
    columns = []
    n_right = form.right.shape[1]
    for p in pick:
        i = src[p]
        if i >= 0:
            u = form.lift(vecs[:, i])
        else:
            j = -1 - i
            u = form.pack_dV(np.outer(form.left[:, j // n_right], form.right[:, j % n_right]))
        u = np.asarray(u, dtype=np.float64)
        columns.append(u / np.linalg.norm(u))
    return allv[pick], np.column_stack(columns) if columns else np.zeros((0, 0))
