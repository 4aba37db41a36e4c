"""The best linear predictor for ``c`` outputs: ``inf_W F_lin(W)`` and
``min_{||W||_F <= R} F_lin(W)`` with ``F_lin(W) = E[l(W x; y)]``, ``W`` of shape (c, d),
exactly (derivations in ``docs/linear_baseline.md``, section 6).

- ``loss="cross_entropy"`` on classes ``0..c-1``: ``l(p; y) = logsumexp(p) - p_y``.  ``F_lin``
  does not change under ``W -> W + 1 b^T``; the variables are ``Z`` ((c-1) x d) with
  ``W = P Z``, ``P`` an orthonormal basis of the vectors summing to 0 (Helmert), so the
  returned ``W`` is the *centred* representative (rows summing to 0), the one of least
  Frobenius norm, and ``||W||_F = ||Z||_F`` (a radius means the same in both).  Separability
  of the (sample, class) pairs is decided first by Newton's run on all the data (an iterate
  with every pair margin positive proves separation; a minimiser's positive pair weights,
  :func:`overlap_certificate`, prove overlap), else by a linear program
  (:func:`resnet_core.separability.class_separability`), and the scalar case's logic follows:
  separable, ``inf F_lin = 0`` not attained; quasi-separable, the minimum of the pairs the
  direction leaves on their hyperplanes; overlapping, trust-region Newton.
- ``loss="squared"`` with ``y`` of shape (n, c): ``l = ||p - y||^2 / 2``, ``c`` least-squares
  problems with one matrix: one QR factor ``R`` of the rows ``sqrt(s_i) x_i`` and its SVD serve
  every column, and a radius couples them through one multiplier (the secular equation on
  that SVD).

Passes are streamed over row blocks in float64 (a float32 ``X`` is converted block by block,
never as a whole): the cross-entropy Hessian is the factor of ``c`` rows per sample,
``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron x_i``, accumulated by tall-skinny QR (memory one block
of ``QR_CHUNK`` rows of ``(c-1) d`` columns plus the ``((c-1) d)^2`` factor); no array of size
``n x c x d`` is made.  The stop is the scalar case's: the Newton decrement against ``|F|``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

from ._baseline import (LOGISTIC_MARGIN, QR_CHUNK, LinearBaselineResult, Separated, Watched,
                        minimise, scale_exponent, scaled_back, scaled_radius, with_radius)
from ._threads import blas_single_thread, resolve_n_threads
from ._trust_region import Model, ball_step, inside_ball, qr_factor, safe_norm
from ._validation import (MAX_BYTES, as_float_array, check_classes, check_data,
                          check_positive_int, check_sample_weight, to_numpy)
from .separability import Separability, class_separability

# Samples per block of the value and gradient passes.
VALUE_BLOCK = 16384
# A Gram model is used when the smallest eigenvalue of its non-null block is this many times
# the bound ``eps size ev_max`` of its rounding or more (Newton steps within 1% of the exact
# ones, and within far less at the typical rounding ``eps sqrt(n) ev_max``: an inexact Newton
# step, which the trust region and the decrement on the exact gradient absorb); otherwise
# the QR factor.  10-class digits reach condition numbers near 1e10 before they separate.
GRAM_TRUST = 1e2
EPS = float(np.finfo(np.float64).eps)
U = EPS / 2  # unit roundoff
# The ``method`` note of a separation found by Newton's iterates before any linear program.
NEWTON_SEPARATED = " (separated by its iterates; no linear program)"
# ... and of an overlap proved by the minimiser's pair weights (:func:`overlap_certificate`).
OVERLAP_CERTIFIED = " (overlap certified by its minimiser; no linear program)"


def centred_basis(c: int) -> np.ndarray:
    """``P`` (c x (c-1)), orthonormal columns orthogonal to the ones vector (Helmert)."""
    P = np.zeros((c, c - 1))
    for k in range(1, c):
        P[:k, k - 1] = 1.0 / np.sqrt(k * (k + 1))
        P[k, k - 1] = -k / np.sqrt(k * (k + 1))
    return P


def softmax_terms(p: np.ndarray, y: np.ndarray):
    """Per-sample ``logsumexp(p) - p_y`` and ``softmax(p)`` (entries ``-inf``: excluded
    classes), accurate when the loss is tiny: with ``r = p - p_y`` and ``m = max r``, the loss
    is ``m + log1p(sum_{j != argmax} exp(r_j - m))``."""
    rows = np.arange(y.size)
    r = p - p[rows, y][:, None]
    k = np.argmax(r, axis=1)
    m = r[rows, k]
    e = np.exp(r - m[:, None])
    e[rows, k] = 0.0
    loss = m + np.log1p(e.sum(axis=1))
    return loss, np.exp(r - loss[:, None])


class _CrossEntropyPasses:
    """``F_lin`` (plus ``lam/2 ||Z||^2``), gradient and factored Hessian in ``Z``, where
    ``W = P Z``; ``allowed`` (n x c, optional) drops the pairs it marks False (the classes of
    a quasi-separable problem's separated pairs)."""

    convex = True

    def __init__(self, X, labels, s, c, allowed=None, lam=0.0, live=None, exact=False):
        self.X, self.labels, self.s, self.c = X, labels, s, c
        self.allowed, self.lam, self.exact = allowed, lam, exact
        self.n, self.d = X.shape
        self.size = (c - 1) * self.d
        self.P = centred_basis(c)
        self.PD = self.P[:, None, :] - self.P[None, :, :]  # P_k - P_j
        self.eps = EPS
        # Coordinates (m, a) of Z whose feature a is 0 on every sample of positive weight:
        # exact null directions of H, left out of its eigendecomposition.
        self._live = _live_coordinates(X, s, c) if live is None else live

    def penalised(self, lam: float) -> "_CrossEntropyPasses":
        return _CrossEntropyPasses(self.X, self.labels, self.s, self.c, self.allowed, lam,
                                   self._live, self.exact)

    def restricted(self, allowed) -> "_CrossEntropyPasses":
        return _CrossEntropyPasses(self.X, self.labels, self.s, self.c, allowed, self.lam,
                                   self._live, self.exact)

    def weights(self, z) -> np.ndarray:
        return self.P @ z.reshape(self.c - 1, self.d)

    def coords(self, W) -> np.ndarray:
        """``Z = P^T W`` (of the centred part of ``W``), flattened."""
        return (self.P.T @ W).ravel()

    def _blocks(self, z, rows):
        W = self.weights(z)
        for i0 in range(0, self.n, rows):
            i1 = min(i0 + rows, self.n)
            Xb = np.asarray(self.X[i0:i1], dtype=np.float64)
            p = Xb @ W.T
            if self.allowed is not None:
                p[~self.allowed[i0:i1]] = -np.inf
            yield i0, i1, Xb, *softmax_terms(p, self.labels[i0:i1])

    def value(self, z) -> float:
        F = sum(float(self.s[i0:i1] @ loss) for i0, i1, _, loss, _ in self._blocks(z, VALUE_BLOCK))
        return F + 0.5 * self.lam * float(z @ z)

    def _residual(self, pi, i0, i1):
        """``s_i (pi_i - e_{y_i})``, with ``pi_y - 1 = -sum_{j != y} pi_j`` (no cancellation)."""
        rows = np.arange(i1 - i0)
        res = pi.copy()
        res[rows, self.labels[i0:i1]] = 0.0
        res[rows, self.labels[i0:i1]] = -res.sum(axis=1)
        return res * self.s[i0:i1, None]

    def grad(self, z):
        """``(F_lin, grad_Z F_lin)`` without the penalty."""
        F, G = 0.0, np.zeros((self.c, self.d))
        for i0, i1, Xb, loss, pi in self._blocks(z, VALUE_BLOCK):
            F += float(self.s[i0:i1] @ loss)
            G += self._residual(pi, i0, i1).T @ Xb
        return F, (self.P.T @ G).ravel()

    shift_aware = True  # ``full`` takes ``least_shift`` (:func:`ball_newton`)

    def full(self, z, least_shift: float = 0.0) -> Model:
        """The Newton model at ``z``: ``F``, ``g`` and the Hessian ``H`` in one pass (the Gram
        form below); the QR factor of the Hessian's rows (one more pass) when ``H`` has an
        eigenvalue within ``GRAM_TRUST`` times its rounding level, or always with
        ``self.exact`` (see :meth:`_factor_model`).  ``least_shift``: the model will be
        used as ``H + lam I`` with ``lam`` about that or more (a ball's multiplier), so its
        eigenvalues need only be resolved relative to it."""
        F, g, H = self._gram(z)
        F, g = F + 0.5 * self.lam * float(z @ z), g + self.lam * z
        if not self.exact:
            m = _live_model(F, g, H, self.lam, self._live, least_shift)
            if m is not None:
                return m
        return self._factor_model(z, F, g)

    def _gram(self, z):
        """``(F, g, H)`` without the penalty: ``H = sum_i kron(D_i, x_i x_i^T)`` with
        ``D_i = s_i P^T (diag(pi_i) - pi_i pi_i^T) P``, one ``X^T diag(D_i[m, m']) X`` per
        pair ``m <= m'`` of the ``c - 1`` coordinates."""
        F, G = 0.0, np.zeros((self.c, self.d))
        k, d = self.c - 1, self.d
        H = np.zeros((k, d, k, d))
        pairs = [(m, m2) for m in range(k) for m2 in range(m, k)]
        for i0, i1, Xb, loss, pi in self._blocks(z, VALUE_BLOCK):
            F += float(self.s[i0:i1] @ loss)
            G += self._residual(pi, i0, i1).T @ Xb
            # D_i = V_i^T V_i with rows V_ik = sqrt(s_i pi_ik) sum_j pi_ij (P_k - P_j): no
            # cancellation when pi_i is near one class (the QR factor's rows, in the small)
            V = (np.sqrt(self.s[i0:i1, None] * pi)[:, :, None]
                 * np.einsum("bj,kja->bka", pi, self.PD))
            D = np.einsum("bkm,bkn->bmn", V, V)
            for m, m2 in pairs:
                H[m, :, m2, :] += (Xb * D[:, m, m2][:, None]).T @ Xb
        for m, m2 in pairs:
            H[m2, :, m, :] = H[m, :, m2, :].T
        return F, (self.P.T @ G).ravel(), H.reshape(self.size, self.size)

    def _factor_model(self, z, F, g) -> Model:
        """The model from the QR factor of the rows ``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron
        x_i`` (``c`` per sample): eigenvalues to ``eps^2`` of the largest."""
        rows = max(1, QR_CHUNK // self.c)

        def factor_rows():
            for i0, i1, Xb, _, pi in self._blocks(z, rows):
                # Hessian in p: diag(pi) - pi pi^T = C C^T, row k of C^T P being
                # sqrt(pi_k) (P_k - pi^T P) = sqrt(pi_k) sum_j pi_j (P_k - P_j).
                C = (np.sqrt(self.s[i0:i1, None] * pi)[:, :, None]
                     * np.einsum("bj,kja->bka", pi, self.PD))
                yield (C[:, :, :, None] * Xb[:, None, None, :]).reshape(-1, self.size)

        R = qr_factor(factor_rows(), self.size)
        return Model.from_factor(F, g, R, self.eps, self.n * self.c, shift=self.lam)

    def pair_factor(self, z) -> np.ndarray:
        """``R`` with ``R^T R = M = sum_{i, j != y_i} s_i pi_ij a_ij a_ij^T``, the pair vectors
        ``a_ij = (P_{y_i} - P_j) kron x_i`` (``a_ij^T z`` is the pair margin of ``W = P Z``)
        weighted by the softmax at ``z`` (``c`` rows per sample, the one at ``y_i`` zero)."""
        rows = max(1, QR_CHUNK // self.c)

        def factor_rows():
            for i0, i1, Xb, _, pi in self._blocks(z, rows):
                C = np.sqrt(self.s[i0:i1, None] * pi)[:, :, None] * self.PD[self.labels[i0:i1]]
                yield (C[:, :, :, None] * Xb[:, None, None, :]).reshape(-1, self.size)

        return qr_factor(factor_rows(), self.size)

    def least_pair_weight(self, z) -> float:
        """``min s_i pi_ij`` over the pairs ``j != y_i`` of samples of positive weight."""
        least = np.inf
        for i0, i1, _, _, pi in self._blocks(z, VALUE_BLOCK):
            w = self.s[i0:i1, None] * pi
            w[np.arange(i1 - i0), self.labels[i0:i1]] = np.inf
            w[self.s[i0:i1] <= 0] = np.inf
            least = min(least, float(w.min()))
        return least

    def _pair_margins(self, z):
        """Per block, the pair margins ``p_{y_i} - p_j`` (``inf`` at ``j = y_i`` and for
        samples of zero weight), ``p = W x_i``."""
        W = self.weights(z)
        for i0 in range(0, self.n, VALUE_BLOCK):
            i1 = min(i0 + VALUE_BLOCK, self.n)
            p = np.asarray(self.X[i0:i1], dtype=np.float64) @ W.T
            rows, y = np.arange(i1 - i0), self.labels[i0:i1]
            gap = p[rows, y][:, None] - p
            gap[rows, y] = np.inf
            gap[self.s[i0:i1] <= 0] = np.inf
            yield i0, i1, gap

    def smallest_margin(self, z) -> float:
        """The least pair margin over samples of positive weight (streamed)."""
        return min(float(gap.min()) for _, _, gap in self._pair_margins(z))

    separation = smallest_margin  # what :class:`Watched` checks

    def push(self, z, u, pairs, margin):
        """``z + t u`` with ``t >= 0`` the least that puts every margin of ``pairs`` (n x c)
        at ``margin`` or beyond (streamed; ``u`` positive on those pairs)."""
        t = 0.0
        for (i0, i1, base), (_, _, along) in zip(self._pair_margins(z), self._pair_margins(u)):
            on = pairs[i0:i1]
            if on.any():
                t = max(t, float(np.max((margin - base[on]) / along[on])))
        return z + t * u


def _live_coordinates(X, s, c) -> np.ndarray:
    """Indices ``m d + a`` of the coordinates of ``Z`` ((c-1) x d, flattened) whose feature
    ``a`` is non-zero on some sample of positive weight (streamed)."""
    n, d = X.shape
    used = np.zeros(d, bool)
    for i0 in range(0, n, VALUE_BLOCK):
        Xb = np.asarray(X[i0:i0 + VALUE_BLOCK])
        used |= np.any(Xb[s[i0:i0 + VALUE_BLOCK] > 0] != 0, axis=0)
    return (np.arange(c - 1)[:, None] * d + np.flatnonzero(used)[None, :]).ravel()


def _live_model(F, g, H, lam, live, least_shift=0.0) -> Model | None:
    """The model ``(F, g, H + lam I)`` from ``eigh`` of ``H`` on the ``live`` coordinates
    (the others: exact zero curvature, unit eigenvectors), or None when an eigenvalue of
    that block, plus ``least_shift``, lies within ``GRAM_TRUST`` times the Gram matrix's
    rounding level."""
    size = g.size
    with blas_single_thread():
        ev_live, Q_live = np.linalg.eigh(H[np.ix_(live, live)])
    null = float(EPS * size * np.abs(ev_live).max(initial=0.0))
    if ev_live.size and not ev_live[0] + lam + least_shift > GRAM_TRUST * null:
        return None
    dead = np.setdiff1d(np.arange(size), live)
    ev = np.concatenate([np.zeros(dead.size), ev_live]) + lam
    Q = np.zeros((size, size))
    Q[dead, np.arange(dead.size)] = 1.0
    Q[np.ix_(live, np.arange(dead.size, size))] = Q_live
    order = np.argsort(ev, kind="stable")
    return Model(F, g, ev[order], Q[:, order], null, EPS)


class _LeastSquaresPasses:
    """``F_lin(W) = E[||W x - y||^2 / 2]`` in ``vec(W)`` (row-major), with the Hessian
    ``I_c kron E[x x^T]`` from one QR factor of the rows ``sqrt(s_i) x_i``."""

    convex = True

    def __init__(self, X, Y, s):
        self.X, self.Y, self.s = X, Y, s
        self.n, self.d = X.shape
        self.c = Y.shape[1]
        self.size = self.c * self.d
        self.eps = EPS
        self._base: Model | None = None

    def weights(self, z) -> np.ndarray:
        return z.reshape(self.c, self.d)

    def grad(self, z):
        W = self.weights(z)
        F, G = 0.0, np.zeros((self.c, self.d))
        for i0 in range(0, self.n, VALUE_BLOCK):
            Xb = np.asarray(self.X[i0:i0 + VALUE_BLOCK], dtype=np.float64)
            res = Xb @ W.T - self.Y[i0:i0 + VALUE_BLOCK]
            sres = res * self.s[i0:i0 + VALUE_BLOCK, None]
            F += 0.5 * float(np.sum(sres * res))
            G += sres.T @ Xb
        return F, G.ravel()

    def value(self, z) -> float:
        return self.grad(z)[0]

    def full(self, z) -> Model:
        F, g = self.grad(z)
        if self._base is None:
            R = qr_factor((np.sqrt(self.s[i0:i0 + QR_CHUNK, None])
                           * np.asarray(self.X[i0:i0 + QR_CHUNK], dtype=np.float64)
                           for i0 in range(0, self.n, QR_CHUNK)), self.d)
            self._base = Model.from_factor(0.0, np.zeros(self.d), R, self.eps, self.n)
        b = self._base
        # One SVD serves every output: H = I_c kron (Q diag(ev) Q^T).
        return Model(F, g, np.tile(b.ev, self.c), np.kron(np.eye(self.c), b.Q), b.null,
                     self.eps)


def _result(passes, z, *, infimum, attained, converged, lam=0.0, radius=None, nit=0,
            npass=0, decrement=0.0, separability=None, direction=None, method="", message=""):
    F, g = passes.grad(z)
    W = passes.weights(z)
    if radius is not None:  # ||Z|| <= radius; W = P Z may round an ulp outside
        W = inside_ball(W, radius)
    fun_error = float("nan")
    if isinstance(passes, _CrossEntropyPasses) and passes.allowed is None:
        F, fun_error = accurate_cross_entropy(passes.X, passes.labels, passes.s, W)
        infimum = F if attained else infimum  # never below the minimum by more than the error
    return LinearBaselineResult(
        w=W, x=W, fun=float(F), fun_error=fun_error, infimum=float(infimum),
        attained=None if attained is None else bool(attained), converged=bool(converged),
        success=bool(converged), grad_norm=safe_norm(g + lam * z), decrement=float(decrement),
        multiplier=float(lam), radius=radius, nit=int(nit), npass=int(npass + 1),
        separability=separability, direction=direction, method=method, message=message,
        w_fits=True, w_scaled=None, w_exponent=0)


def accurate_cross_entropy(X, labels, s, W) -> tuple[float, float]:
    """``(F, fun_error)`` at ``W`` (c x d): ``F = sum_i s_i (logsumexp(W x_i) - (W x_i)_{y_i})``
    evaluated as :func:`softmax_terms` does, each block's sum correctly rounded
    (``math.fsum``), and ``fun_error`` a bound of ``|F - F_exact(W)|``: the scores
    ``p = W x`` off by ``delta <= gamma_d |W| |x|``, moving the loss by at most
    ``sum_{k != y} pi_k dr_k + e^(2 max dr) sum_{k != y} pi_k dr_k^2 / 2``
    (``dr_k = delta_k + delta_y + u |r_k|``; the loss's gradient and curvature in
    ``r = p - p_y``), plus the evaluation's own rounding
    (exp ``u (|x| + 1)`` relative, the sum, log1p, the final add) and that of the sums."""
    W = np.asarray(W, dtype=np.float64)
    n, d = X.shape
    c = W.shape[0]
    gamma = d * U / (1 - d * U)
    absW = np.abs(W)
    parts, errs = [], []
    for i0 in range(0, n, VALUE_BLOCK):
        i1 = min(i0 + VALUE_BLOCK, n)
        Xb = np.asarray(X[i0:i1], dtype=np.float64)
        y = labels[i0:i1]
        rows = np.arange(i1 - i0)
        p = Xb @ W.T
        delta = gamma * (np.abs(Xb) @ absW.T)  # |fl(p_ik) - p_ik|
        r = p - p[rows, y][:, None]
        k = np.argmax(r, axis=1)
        m = r[rows, k]
        x = r - m[:, None]
        e = np.exp(x)
        e[rows, k] = 0.0
        S = e.sum(axis=1)
        L = np.log1p(S)
        loss = m + L
        # rounding of the evaluation at the computed p: r and m (u |r|), exp (u (|x| + 1)
        # relative, |x| from the subtraction), the sum ((c + 1) u), log1p and the final add
        err_S = U * np.sum(e * (np.abs(x) + c + 3), axis=1)
        err_eval = (2 * U * np.abs(m) + U * L + err_S / (1 + S) * (1 + 2 * U)
                    + U * np.abs(loss))
        # the rounding of p, through r = p - p_y (also rounded): the loss's gradient in r_k
        # is pi_k (k != y)
        pi = np.exp(r - loss[:, None])
        dr = delta + delta[rows, y][:, None] + U * np.abs(r)
        dr[rows, y] = 0.0
        first = np.sum(pi * dr, axis=1)
        # (the curvature diag(pi) - pi pi^T at a point between: pi_k there is at most
        # pi_k e^(2 max dr) here)
        second = 0.5 * np.exp(2 * np.max(dr, axis=1)) * np.sum(pi * dr**2, axis=1)
        sb = np.asarray(s[i0:i1], dtype=np.float64)
        terms = sb * loss
        parts.append(math.fsum(terms))
        errs.append(math.fsum(sb * (err_eval + first + second) * (1 + 4 * U)
                              + U * np.abs(terms)))
    F = math.fsum(parts)
    err = (math.fsum(errs) + U * math.fsum(abs(v) for v in parts) + U * abs(F)) * (1 + 8 * U)
    return F, err


def _class_ray(passes, z, smallest):
    """A :class:`Separability` from a point whose pair margins are all positive."""
    W = passes.weights(z)
    pairs = np.repeat(passes.s[:, None] > 0, passes.c, axis=1)
    pairs[np.arange(passes.n), passes.labels] = False
    return Separability("separable", W / np.linalg.norm(W), passes.s > 0, smallest,
                        "separated by the direction of Newton's iterates", pairs)


def overlap_certificate(passes, z) -> float:
    """How far ``z`` is from proving the classes *overlapping* (``S`` empty): a value below 1
    is a proof, up to the stated rounding allowance (``docs/linear_baseline.md``, section 6).

    With ``lam_ij = s_i pi_ij > 0`` the softmax weights of the pairs at ``z``, the gradient is
    ``g = -sum lam_ij a_ij``.  Put ``v = M^-1 g`` (``M = sum lam_ij a_ij a_ij^T``, full rank)
    and ``lam'_ij = lam_ij (1 + a_ij^T v)``: then ``sum lam'_ij a_ij = -g + M v = 0``, and if
    every ``a_ij^T v > -1`` all ``lam'_ij > 0``, so a direction with every pair margin
    ``>= 0`` has ``sum lam'_ij m_ij = 0``, every margin 0 (Stiemke's lemma): nothing separates.
    ``a_ij^T v`` is the pair margin of the direction ``P v``.  Returned: ``-min a_ij^T v``
    plus a bound on what the rounding of ``g`` can add, ``sqrt(2) max ||x_i|| ||e|| /
    sigma_min(M)`` with ``||e|| <= 2 sqrt(2) (n + c d) eps sum_i s_i ||x_i||``; ``inf`` when
    a weight is 0 or ``M`` is ill-conditioned (condition above ``1e8``)."""
    if not passes.least_pair_weight(z) > 0:
        return np.inf
    _, g = passes.grad(z)
    _, sv, Vt = np.linalg.svd(passes.pair_factor(z))
    if not (sv.size == passes.size and sv[-1] ** 2 > 1e-8 * sv[0] ** 2):
        return np.inf
    v = Vt.T @ ((Vt @ g) / sv ** 2)
    norms = np.concatenate([np.linalg.norm(np.asarray(passes.X[i0:i0 + VALUE_BLOCK],
                                                      dtype=np.float64), axis=1)
                            for i0 in range(0, passes.n, VALUE_BLOCK)])
    e = 2 * np.sqrt(2) * (passes.n + passes.size + passes.c) * EPS * float(passes.s @ norms)
    rounding = np.sqrt(2) * float(norms.max(initial=0.0)) * e / sv[-1] ** 2
    return -passes.smallest_margin(v) + rounding


def _newton_first(passes, tol, max_iter):
    """Trust-region Newton on the unregularised cross-entropy, stopped at the first iterate
    that separates every pair.  Returns ``(Separability, None)`` when one does, else
    ``(None, (NewtonResult, message))`` for the caller to reuse (overlapping data)."""
    watched = Watched(passes)
    try:
        res, msg = minimise(watched, passes.size, tol, passes.eps, max_iter, "cross_entropy")
    except Separated as found:
        sep = _class_ray(passes, found.z, found.smallest)
        sep.npass = watched.calls
        return sep, None
    smallest = passes.smallest_margin(res.w)  # the last point, if no full pass saw it
    if smallest > 0:
        return _class_ray(passes, res.w, smallest), None
    return None, (res, msg)


def _cross_entropy(passes, sep, tol, max_iter, lp_note, newton):
    """Cross-entropy without a radius, given the separability answer and the unregularised
    Newton run ``(NewtonResult, message)`` on all the data (None when it separated them)."""
    size, eps = passes.size, passes.eps
    # Every separated sample's loss log(1 + sum_{j != y} e^-m_j) is then below e^-36.
    margin = LOGISTIC_MARGIN + np.log(passes.c - 1)
    if sep.status == "separable":
        z = passes.push(np.zeros(size), passes.coords(sep.direction), sep.separated_pairs,
                        margin)
        return _result(passes, z, infimum=0.0, attained=False, converged=True,
                       npass=sep.npass + 2, separability="separable", direction=sep.direction,
                       method=("trust-region Newton" if lp_note else
                               "linear program (HiGHS)") + lp_note,
                       message="linearly separable classes: inf F_lin = 0, not attained "
                               "(F_lin -> 0 along the separating direction; W is on that ray, "
                               f"every margin (w_y - w_j)^T x >= {margin:.4g})")
    if sep.status == "quasi_separable":
        allowed = ~sep.separated_pairs
        allowed[np.arange(passes.n), passes.labels] = True
        res, msg = minimise(passes.restricted(allowed), size, tol, eps, max_iter,
                             "cross_entropy")
        z = passes.push(res.w, passes.coords(sep.direction), sep.separated_pairs, margin)
        # As in the scalar case: the claim holds when the point reaches the infimum on all
        # the data (pairs almost, not exactly, on their hyperplanes break it).
        if passes.value(z) <= res.F + max(64 * eps * abs(res.F), 1e-15):
            return _result(
                passes, z, infimum=res.F, attained=False, converged=res.converged,
                nit=res.nit, npass=res.npass, decrement=res.decrement,
                separability="quasi_separable", direction=sep.direction,
                method="linear program (HiGHS) + trust-region Newton",
                message=f"quasi-separable: {int(sep.separated_pairs.sum())} (sample, class) "
                        "pairs separated along a direction, inf F_lin = the minimum over the "
                        f"other pairs ({msg}), not attained (W is far along the direction)")
        sep = Separability("not_decided", None, None, 0.0,
                           "not decided: the linear program's quasi-separation does not hold "
                           "on the data (margins at its tolerance)")
    # Newton's run on all the data, made (and its iterates checked for separation) before
    # the linear program.
    res, msg = newton
    status, converged, attained = sep.status, res.converged, res.converged
    if status == "not_decided":
        attained = None  # a converged Newton run reaches the infimum, not proof of a minimum
        msg = f"{sep.message}; {msg}" + ("" if converged else
                                         ": raise max_lp_entries or give a radius")
    return _result(passes, res.w, infimum=res.F, attained=attained, converged=converged,
                   nit=res.nit, npass=res.npass, decrement=res.decrement,
                   separability=status, method="trust-region Newton" + lp_note, message=msg)


def vector_baseline(X: ArrayLike, y: ArrayLike, *, loss: str, n_classes: int | None,
                    sample_weight: ArrayLike | None, radius: float | None, tol: float | None,
                    max_iter: int, n_threads: int | None,
                    max_lp_entries: int) -> LinearBaselineResult:
    """:func:`resnet_core.linear_baseline` for ``loss="cross_entropy"`` (``y``: classes) or
    ``loss="squared"`` with ``y`` of shape (n, c); ``radius`` is validated by the caller."""
    Xa = np.asarray(to_numpy("X", X)) if not isinstance(X, (str, bytes)) else X
    n = Xa.shape[0] if getattr(Xa, "ndim", 0) >= 1 else 0
    X = check_data(Xa, np.zeros(n))[0]
    n, d = X.shape
    if loss == "cross_entropy":
        labels, c = check_classes(y, n_classes, n)
        size = (c - 1) * d
    else:
        if n_classes is not None:
            raise ValueError("n_classes is for the cross_entropy loss only; the squared loss "
                             "takes c from y's shape (n, c)")
        Y = as_float_array("y", y, ndim=2, dtype=np.float64, shape=(n, None))
        if Y.shape[1] == 0:
            raise ValueError("y must have at least one column; got shape (n, 0)")
        size = Y.shape[1] * d
    if 8 * size * size > MAX_BYTES:
        raise ValueError(f"the Hessian of {size} variables needs {8 * size * size} bytes, "
                         f"above {MAX_BYTES}: fewer classes or features")
    s = check_sample_weight(sample_weight, n, np.float64)
    max_iter = check_positive_int("max_iter", max_iter)
    max_lp_entries = check_positive_int("max_lp_entries", max_lp_entries)
    tol = EPS if tol is None else tol
    if not (isinstance(tol, numbers.Real) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive finite number; got {tol!r}")
    resolve_n_threads(n_threads)  # validated; the passes here run on one thread
    # Any scale: X 2^e (and Y 2^f), exact, solved and scaled back (as for one output).
    target, c = (Y, None) if loss == "squared" else (labels, c)
    e = scale_exponent(X)
    f = scale_exponent(Y) if loss == "squared" else 0
    if e == 0 and f == 0:
        return _solve(X, target, s, loss, c, size, radius, tol, max_iter, max_lp_entries)
    res = _solve(np.ldexp(X, e), np.ldexp(target, f) if f else target, s, loss, c, size,
                 scaled_radius(radius, e, f), tol, max_iter, max_lp_entries)
    return scaled_back(res, e, f, radius)


def _solve(X, target, s, loss, c, size, radius, tol, max_iter, max_lp_entries):
    """:func:`vector_baseline` on validated data (``target``: the labels or ``Y``)."""
    n = X.shape[0]
    # BLAS on one thread: the blocks are small, and two OpenBLAS threads made one block's
    # QR 20x slower whenever another thread pool was busy (measured in the demo).
    with blas_single_thread():
        if loss == "squared":
            Y = target
            passes = _LeastSquaresPasses(X, Y, s)
            if radius is not None:
                z, lam = ball_step(passes.full(np.zeros(size)), radius)
                return _result(passes, z, infimum=passes.value(z), attained=True,
                               converged=True, lam=lam, radius=radius, npass=2,
                               method="secular equation",
                               message="minimum over the ball " + (
                                   "on its boundary" if lam > 0 else
                                   "inside it (constraint inactive)"))
            res, msg = minimise(passes, size, tol, EPS, max_iter, "squared")
            return _result(passes, res.w, infimum=res.F, attained=res.converged,
                           converged=res.converged, nit=res.nit, npass=res.npass,
                           decrement=res.decrement, method="trust-region Newton",
                           message=msg)
        labels = target
        passes = _CrossEntropyPasses(X, labels, s, c)
        sep, newton = _newton_first(passes, tol, max_iter)
        if sep is not None:
            free = _cross_entropy(passes, sep, tol, max_iter, NEWTON_SEPARATED, None)
        else:
            res = newton[0]
            if res.converged and overlap_certificate(passes, res.w) <= 0.5:
                sep = Separability("overlapping", None, np.zeros(n, bool), 0.0,
                                   "overlapping: certified by the minimiser's softmax weights",
                                   np.zeros((n, c), bool))
                note = OVERLAP_CERTIFIED
            else:
                sep = class_separability(X, labels, s, c, max_lp_entries)
                note = "" if sep.status != "not_decided" else " (LP skipped: too large)"
            free = _cross_entropy(passes, sep, tol, max_iter, note, newton)
        if radius is None:
            return free
        return with_radius(passes, free, passes.size, radius, tol, EPS, max_iter, _result,
                           newton_ball=True, start=passes.coords(free.w))
