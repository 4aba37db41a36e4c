"""The exact reduced form of the partial Hessian over ``(w, V)``, and its eigenpairs.

:func:`residual_form` (one output; :func:`resnet_core.reduced_hessian` is its matrix) and
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
The certificates (``lambda_min``), the spectra and :func:`resnet_core.find_sopsp` (its exact
Newton steps in these coordinates) all take the form from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

from . import certify_vector

# Largest reduced matrix formed by method="auto" (as certify_vector.AUTO_MAX).
REDUCED_MAX = certify_vector.AUTO_MAX


@dataclass
class ReducedForm:
    """``M`` (symmetric) with ``n_zeros`` extra zero eigenvalues; ``lift(v)`` maps reduced
    coordinates to a flat float64 ``(w, V)`` (an isometry onto the subspace where the
    Hessian lives); ``reduce_grad(grad)`` maps a gradient over ``(w, V)`` to the reduced
    coordinates (the adjoint of ``lift``; the gradient lies in its range); ``zero_basis()``
    gives ``(left, right)``: the zero eigenvectors are ``dw = 0``,
    ``dV = left[:, i] right[:, j]^T``, flattened by ``pack_dV`` (computed on demand)."""

    M: np.ndarray
    n_zeros: int
    lift: Callable[[np.ndarray], np.ndarray]
    reduce_grad: Callable[[np.ndarray], np.ndarray] | None
    zero_basis: Callable[[], tuple[np.ndarray, np.ndarray]]
    pack_dV: Callable[[np.ndarray], np.ndarray] | None = None


def _null(v: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the complement of the unit vector ``v`` (d x (d - 1))."""
    return scipy.linalg.null_space(v[None, :])


def residual_form(w, A, B, C, g) -> ReducedForm:
    """The reduced form of the one-output residual head's partial Hessian from its
    statistics (:func:`resnet_core.reduced_hessian` is its ``(M, n_zeros)``): coordinates
    ``(dw, a, zeta)``, ``dV = w^ a^T + Q zeta g^T / ||g||`` (docs/partial_hessian.md,
    section 3, has the four cases ``w = 0`` or not, ``g = 0`` or not)."""
    w, A, B, C, g = (np.asarray(a, dtype=np.float64) for a in (w, A, B, C, g))
    d, k = B.shape
    nw, ng = float(np.linalg.norm(w)), float(np.linalg.norm(g))
    w_hat = w / nw if nw else None
    g_hat = g / ng if ng else None
    Q = _null(w_hat) if nw and ng else None  # d x (d - 1), orthonormal
    if not nw:
        M = A.copy() if not ng else np.block([[A, ng * np.eye(d)],
                                              [ng * np.eye(d), np.zeros((d, d))]])
    else:
        top = nw * B + np.outer(w_hat, g)
        M = np.zeros((2 * d + k - (1 if ng else d),) * 2)
        M[:d, :d] = A
        M[:d, d:d + k] = top
        M[d:d + k, :d] = top.T
        M[d:d + k, d:d + k] = nw**2 * C
        if ng:
            M[:d, d + k:] = ng * Q
            M[d + k:, :d] = ng * Q.T
    n_zeros = (d - (1 if nw else 0)) * (k - (1 if ng else 0))

    def lift(r):
        dw, rest = r[:d], r[d:]
        dV = np.zeros((d, k))
        if nw:
            dV += np.outer(w_hat, rest[:k])
            rest = rest[k:]
        if ng:
            dV += np.outer(Q @ rest if nw else rest, g_hat)
        return np.concatenate([dw, dV.ravel()])

    def reduce_grad(grad):
        # grad_V = w g^T: its a-part is ||w|| g, its zeta-part Q^T w (...) = 0
        parts = [np.asarray(grad[:d], dtype=np.float64)]
        if nw:
            parts.append(nw * g)
        if ng:
            parts.append(np.zeros(d - 1 if nw else d))
        return np.concatenate(parts)

    def zero_basis():
        return (Q if Q is not None else _null(w_hat) if nw else np.eye(d),
                _null(g_hat) if ng else np.eye(k))

    return ReducedForm(M, n_zeros, lift, reduce_grad, zero_basis,
                       lambda dV: np.concatenate([np.zeros(d), np.ravel(dV)]))


def skip_form(A, B, C) -> ReducedForm:
    """The one-output skip head: its Hessian is the statistics' ``[[A, B], [B^T, C]]``."""
    M = np.block([[A, B], [B.T, C]]).astype(np.float64)
    d, k = B.shape

    def identity(v):
        return np.asarray(v, dtype=np.float64)

    return ReducedForm(M, 0, identity, identity, lambda: (np.zeros((d, 0)), np.zeros((k, 0))))


def one_output_form(fo, z) -> ReducedForm:
    """The reduced form at ``z`` of an objective with one output (one statistics pass;
    NotImplementedError for a loss without ``l''``)."""
    st = fo.stats(z)
    if fo.head != "residual":
        return skip_form(st.A, st.B, st.C)
    return residual_form(fo.unpack(z)["w"], st.A, st.B, st.C, st.g)


def _vector_residual(fo, z) -> ReducedForm:
    W, V = certify_vector.head_matrices(fo, z)
    stats = certify_vector.statistics(fo, W, V, gauss_newton=True)
    M, n_zeros, _ = certify_vector.reduced_hessian_vector(W, stats.T, stats.Gamma)
    U, Q, _ = certify_vector.split_range(W, "row")
    P1, P2, _ = certify_vector.split_range(stats.Gamma, "col")
    c, d = W.shape
    k, r, s = stats.Gamma.shape[0], U.shape[1], P1.shape[1]

    def lift(v):
        a = v[c * d:c * d + r * k].reshape(r, k)
        zeta = v[c * d + r * k:].reshape(d - r, s)
        return np.concatenate([v[:c * d], (U @ a + Q @ zeta @ P1.T).ravel()])

    def reduce_grad(grad):  # lift's adjoint: a = U^T G_V, zeta = Q^T G_V P1
        G_V = np.asarray(grad[c * d:], dtype=np.float64).reshape(d, k)
        return np.concatenate([np.asarray(grad[:c * d], dtype=np.float64),
                               (U.T @ G_V).ravel(), (Q.T @ G_V @ P1).ravel()])

    return ReducedForm(M, n_zeros, lift, reduce_grad, lambda: (Q, P2),
                       lambda dV: np.concatenate([np.zeros(c * d), np.ravel(dV)]))


def _vector_skip(fo, z) -> ReducedForm:
    """c outputs, skip head ``p = W x + B phi``: the Hessian is the statistic
    ``T = E[S kron z z^T]``, ``z = [x; phi]``, whose coordinates ``(a, [x; phi])`` are the
    flat ``[vec(W), vec(B)]`` in another order (no zeros)."""
    W, B = certify_vector.head_matrices(fo, z)
    stats = certify_vector.statistics(fo, W, B, gauss_newton=True)
    c, d, k = fo.n_outputs, fo.d, fo.k
    D = d + k
    M = stats.T.reshape(c * D, c * D)
    order = np.array([a * d + p if p < d else c * d + a * k + p - d
                      for a in range(c) for p in range(D)])

    def lift(v):
        out = np.empty(c * D)
        out[order] = v
        return out

    def reduce_grad(grad):
        return np.asarray(grad, dtype=np.float64)[order]

    return ReducedForm(M, 0, lift, reduce_grad, lambda: (np.zeros((d, 0)), np.zeros((k, 0))))


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
    if reduced_size(fo) > REDUCED_MAX:
        return None
    try:
        if fo.vector:
            return _vector_residual(fo, z) if fo.head == "residual" else _vector_skip(fo, z)
        return one_output_form(fo, z)
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


def pick(values: np.ndarray, n: int, which: str) -> np.ndarray:
    """Indices of the ``n`` smallest and/or largest (``which``) of ``values``, in
    ascending order of value."""
    order = np.argsort(values, kind="stable")
    m = values.size
    lo, hi = order[:min(n, m)], order[max(m - n, 0):]
    idx = {"smallest": lo, "largest": hi, "both": np.unique(np.r_[lo, hi])}[which]
    return idx[np.argsort(values[idx], kind="stable")]


def reduced_eigenpairs(form: ReducedForm, k: int, which: str):
    """The ``k`` smallest and/or largest eigenpairs of the Hessian (``which``), ascending:
    ``(values, vectors)``, vectors as columns of flat ``(w, V)`` points."""
    vals, vecs = _extreme_eigh(0.5 * (form.M + form.M.T), k, which)
    allv = np.r_[vals, np.zeros(form.n_zeros)]
    src = np.r_[np.arange(vals.size), -1 - np.arange(form.n_zeros)]  # >= 0: M's; < 0: a zero
    chosen = pick(allv, k, which)
    left, right = form.zero_basis() if np.any(src[chosen] < 0) else (None, None)
    columns = []
    for p in chosen:
        i = src[p]
        if i >= 0:
            u = form.lift(vecs[:, i])
        else:
            j = -1 - i
            n_right = right.shape[1]
            u = form.pack_dV(np.outer(left[:, j // n_right], right[:, j % n_right]))
        columns.append(u / np.linalg.norm(u))
    return allv[chosen], np.column_stack(columns) if columns else np.zeros((0, 0))
