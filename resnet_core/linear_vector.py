"""The best linear predictor for ``c`` outputs: ``inf_W F_lin(W)`` and
``min_{||W||_F <= R} F_lin(W)`` with ``F_lin(W) = E[l(W x; y)]``, ``W`` of shape (c, d),
exactly (derivations in ``docs/linear_baseline.md``, section 6).

- ``loss="cross_entropy"`` on classes ``0..c-1``: ``l(p; y) = logsumexp(p) - p_y``.  ``F_lin``
  does not change under ``W -> W + 1 b^T``; the variables are ``Z`` ((c-1) x d) with
  ``W = P Z``, ``P`` an orthonormal basis of the vectors summing to 0 (Helmert), so the
  returned ``W`` is the *centred* representative (rows summing to 0), the one of least
  Frobenius norm, and ``||W||_F = ||Z||_F`` (a radius means the same in both).  Separability
  of the (sample, class) pairs is decided first by Newton's run on all the data (an iterate
  with every pair margin positive proves separation; a minimiser's positive pair weights
  prove overlap, :meth:`CrossEntropyPasses.certificate_sums` for the one certificate
  :func:`resnet_core.separability.minimiser_certificate`), else by a linear program
  (:func:`resnet_core.separability.class_separability`): the one-output decision tree
  (:func:`resnet_core._baseline.margin_baseline`) over :class:`CrossEntropyPasses`.
- ``loss="squared"`` with ``y`` of shape (n, c): ``l = ||p - y||^2 / 2``, ``c`` least-squares
  problems with one matrix: one QR factor ``R`` of the rows ``sqrt(s_i) x_i`` and its SVD serve
  every column, and a radius couples them through one multiplier (the secular equation on
  that SVD).

Passes are streamed over row blocks in float64 (a float32 ``X`` is converted block by block,
never as a whole): the cross-entropy Hessian is a Gram matrix ``sum_i kron(D_i, x_i x_i^T)``,
or, when :func:`resnet_core._baseline.gram_model` does not trust it, the factor of ``c`` rows
per sample, ``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron x_i``, accumulated by tall-skinny QR
(memory one block of ``QR_CHUNK`` rows of ``(c-1) d`` columns plus the ``((c-1) d)^2``
factor); no array of size ``n x c x d`` is made.  The stop is the scalar case's: the Newton decrement against ``|F|``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._baseline import (EPS64, LOGISTIC_MARGIN, QR_CHUNK, LinearBaselineResult, gram_model,
                        scale_exponent, scaled_back, scaled_radius, solve)
from ._threads import blas_single_thread, resolve_n_threads
from ._trust_region import Model, inside_ball, qr_factor, safe_norm
from ._validation import (MAX_BYTES, as_float_array, check_classes, check_data,
                          check_sample_weight, to_numpy)
from .separability import CombinationSums, Separability, class_separability

# Samples per block of the value and gradient passes.
VALUE_BLOCK = 16384
U = EPS64 / 2  # unit roundoff


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


def residual(pi, y, s):
    """``s_i (pi_i - e_{y_i})``, with ``pi_y - 1 = -sum_{j != y} pi_j`` (no cancellation)."""
    rows = np.arange(y.size)
    res = pi.copy()
    res[rows, y] = 0.0
    res[rows, y] = -res.sum(axis=1)
    return res * s[:, None]


class CrossEntropyPasses:
    """:class:`resnet_core._baseline.MarginPasses` of the cross-entropy: ``F_lin``, gradient
    and Hessian in ``Z``, where ``W = P Z``; ``allowed`` (n x c, optional) drops the pairs it
    marks False (the classes of a quasi-separable problem's separated pairs).  The margins
    are the pair margins ``(w_{y_i} - w_j)^T x_i``."""

    convex = True
    gram_steps = False
    decides_separability = True
    quadratic = False
    attains_on_ray = False
    loss_name = "cross_entropy"

    def __init__(self, X, labels, s, c, allowed=None, live=None, exact=False):
        self.X, self.labels, self.s, self.c = X, labels, s, c
        self.allowed, self.exact = allowed, exact
        self.n, self.d = X.shape
        self.size = (c - 1) * self.d
        self.P = centred_basis(c)
        self.PD = self.P[:, None, :] - self.P[None, :, :]  # P_k - P_j
        self.eps = EPS64
        # Every separated sample's loss log(1 + sum_{j != y} e^-m_j) is below e^-36 there.
        self.far_margin = LOGISTIC_MARGIN + np.log(c - 1)
        # Coordinates (m, a) of Z whose feature a is 0 on every sample of positive weight:
        # exact null directions of H, left out of its eigendecomposition.
        self._live = _live_coordinates(X, s, c) if live is None else live

    def restricted(self, sep) -> "CrossEntropyPasses":
        allowed = ~sep.separated_pairs
        allowed[np.arange(self.n), self.labels] = True
        return CrossEntropyPasses(self.X, self.labels, self.s, self.c, allowed, self._live,
                                  self.exact)

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
        return sum(float(self.s[i0:i1] @ loss)
                   for i0, i1, _, loss, _ in self._blocks(z, VALUE_BLOCK))

    def grad(self, z):
        """``(F_lin, grad_Z F_lin)``."""
        F, G = 0.0, np.zeros((self.c, self.d))
        for i0, i1, Xb, loss, pi in self._blocks(z, VALUE_BLOCK):
            F += float(self.s[i0:i1] @ loss)
            G += residual(pi, self.labels[i0:i1], self.s[i0:i1]).T @ Xb
        return F, (self.P.T @ G).ravel()

    def full(self, z, least_shift: float = 0.0) -> Model:
        """The Newton model at ``z``: ``F``, ``g`` and the Hessian ``H`` in one pass (the Gram
        form, :meth:`_gram`); the QR factor of the Hessian's rows (one more pass) when
        :func:`gram_model` does not trust ``H``, or always with ``self.exact`` (see
        :meth:`_factor_model`)."""
        F, g, H, _ = self._gram(z, self._hessian_rows)
        if not self.exact:
            with blas_single_thread():
                m = gram_model(F, g, H, live=self._live, least_shift=least_shift)
            if m is not None:
                return m
        return self._factor_model(z, F, g)

    def _hessian_rows(self, pi, i0, i1):
        """Rows ``V_ik = sqrt(s_i pi_ik) sum_j pi_ij (P_k - P_j)`` with ``V_i^T V_i =
        s_i P^T (diag(pi_i) - pi_i pi_i^T) P``: no cancellation when ``pi_i`` is near one
        class (the QR factor's rows, in the small)."""
        return (np.sqrt(self.s[i0:i1, None] * pi)[:, :, None]
                * np.einsum("bj,kja->bka", pi, self.PD))

    def _pair_rows(self, pi, i0, i1):
        """Rows ``V_ij = sqrt(s_i pi_ij) (P_{y_i} - P_j)`` (0 at ``j = y_i``): ``V_i^T V_i =
        sum_{j != y_i} s_i pi_ij (P_y - P_j)(P_y - P_j)^T``, the pair vectors' weights."""
        return np.sqrt(self.s[i0:i1, None] * pi)[:, :, None] * self.PD[self.labels[i0:i1]]

    def _gram(self, z, rows_of):
        """``(F, g, H, extra)``: ``H = sum_i kron(V_i^T V_i, x_i x_i^T)`` with the rows
        ``V_i = rows_of(pi_i)``, one ``X^T diag(D_i[m, m']) X`` per pair ``m <= m'`` of the
        ``c - 1`` coordinates; ``extra``: the overlap certificate's sums for the pair rows
        (``[sum s (1 - pi_y) ||x||, sum q ||x||^2, max ||x||, max q / lam, every lam > 0,
        blocks]``, ``q = t^2`` the squares of the rows' weights)."""
        F, G = 0.0, np.zeros((self.c, self.d))
        k, d = self.c - 1, self.d
        H = np.zeros((k, d, k, d))
        pairs = [(m, m2) for m in range(k) for m2 in range(m, k)]
        extra = [0.0, 0.0, 0.0, 0.0, True, 0]
        for i0, i1, Xb, loss, pi in self._blocks(z, VALUE_BLOCK):
            F += float(self.s[i0:i1] @ loss)
            G += residual(pi, self.labels[i0:i1], self.s[i0:i1]).T @ Xb
            V = rows_of(pi, i0, i1)
            D = np.einsum("bkm,bkn->bmn", V, V)
            for m, m2 in pairs:
                H[m, :, m2, :] += (Xb * D[:, m, m2][:, None]).T @ Xb
            if rows_of == self._pair_rows:
                _certificate_block(extra, Xb, pi, self.s[i0:i1], self.labels[i0:i1])
        for m, m2 in pairs:
            H[m2, :, m, :] = H[m, :, m2, :].T
        return F, (self.P.T @ G).ravel(), H.reshape(self.size, self.size), extra

    def certificate_sums(self, z) -> CombinationSums:
        """The overlap certificate's sums (:func:`resnet_core.separability.
        minimiser_certificate`) for the pair vectors ``a_ij = (P_{y_i} - P_j) kron x_i``
        (``a_ij^T z`` is the pair margin of ``W = P Z``, ``||a_ij|| = sqrt(2) ||x_i||``),
        ``lam_ij = s_i pi_ij`` and ``q_ij = fl(sqrt(lam_ij))^2``, in one pass: ``b =
        sum lam a = -g`` (summed as the gradient: ``|fl(b) - b*| <= gamma_N sum_i
        sum_k |res_ik| ||P_k|| ||x_i|| <= gamma_N 2 sum_i s_i (1 - pi_iy) ||x_i||``) and
        ``H = M = sum q a a^T``."""
        _, g, H, (b_abs, h_trace, x_max, q_over_lam, positive, blocks) = self._gram(
            z, self._pair_rows)
        return CombinationSums(b=-g, H=H, b_abs=2 * b_abs, h_trace=2 * h_trace,
                               x_max=np.sqrt(2) * x_max * (1 + 4 * U), q_over_lam=q_over_lam,
                               terms=self.n + blocks + self.c + self.d, positive=positive)

    def _factor_model(self, z, F, g) -> Model:
        """The model from the QR factor of the rows ``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron
        x_i`` (``c`` per sample): eigenvalues to ``eps^2`` of the largest."""
        rows = max(1, QR_CHUNK // self.c)

        def factor_rows():
            for i0, i1, Xb, _, pi in self._blocks(z, rows):
                C = self._hessian_rows(pi, i0, i1)
                yield (C[:, :, :, None] * Xb[:, None, None, :]).reshape(-1, self.size)

        R = qr_factor(factor_rows(), self.size)
        return Model.from_factor(F, g, R, self.eps, self.n * self.c)

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

    def separation(self, z) -> float:
        """The least pair margin over samples of positive weight (streamed)."""
        return min(float(gap.min()) for _, _, gap in self._pair_margins(z))

    def ray(self, z, smallest) -> Separability:
        """The separable answer from a point whose pair margins are all positive."""
        W = self.weights(z)
        pairs = np.repeat(self.s[:, None] > 0, self.c, axis=1)
        pairs[np.arange(self.n), self.labels] = False
        return Separability("separable", W / np.linalg.norm(W), self.s > 0, smallest,
                            "separated by the direction of Newton's iterates", pairs)

    def linear_program(self, max_lp_entries) -> Separability:
        return class_separability(self.X, self.labels, self.s, self.c, max_lp_entries)

    def push(self, z, sep):
        """``z + t u`` with ``t >= 0`` the least that puts every margin of the separated
        pairs at ``far_margin`` or beyond (streamed; ``u`` positive on those pairs)."""
        u, pairs, t = self.coords(sep.direction), sep.separated_pairs, 0.0
        for (i0, i1, base), (_, _, along) in zip(self._pair_margins(z), self._pair_margins(u)):
            on = pairs[i0:i1]
            if on.any():
                t = max(t, float(np.max((self.far_margin - base[on]) / along[on])))
        return z + t * u

    def result(self, z, **fields) -> LinearBaselineResult:
        """The answer at ``z`` (of the unrestricted problem): ``fun`` and ``fun_error`` by
        :func:`accurate_cross_entropy`, which gives the gradient too."""
        W = self.weights(z)
        if fields.get("radius") is not None:  # ||Z|| <= radius; W = P Z may round an ulp out
            W = inside_ball(W, fields["radius"])
        F, fun_error, G = accurate_cross_entropy(self.X, self.labels, self.s, W)
        return _answer(W, F, fun_error, (self.P.T @ G).ravel(), z, **fields)


def _certificate_block(extra, Xb, pi, s, y):
    """Add one block's part to the certificate's sums (see :meth:`CrossEntropyPasses._gram`)."""
    rows = np.arange(y.size)
    keep = s > 0
    norms = np.sqrt(np.einsum("ij,ij->i", Xb, Xb)) * (1 + (Xb.shape[1] + 2) * U)
    lam = s[:, None] * pi
    t = np.sqrt(lam)
    q = t * t
    lam[rows, y], q[rows, y] = np.inf, 0.0
    rest = (lam.sum(axis=1, where=np.isfinite(lam)) * (1 + pi.shape[1] * U))[keep]
    extra[0] += float(rest @ norms[keep])
    extra[1] += float(rest @ norms[keep] ** 2)
    extra[2] = max(extra[2], float(norms[keep].max(initial=0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):  # lam = 0: refused (positive)
        ratio = np.where(q[keep] > 0, q[keep] / lam[keep], 0.0)
    extra[3] = max(extra[3], float(np.max(ratio, initial=0.0)) * (1 + 4 * U))
    extra[4] = extra[4] and bool(np.all(lam[keep] > 0))
    extra[5] += 1


def _live_coordinates(X, s, c) -> np.ndarray:
    """Indices ``m d + a`` of the coordinates of ``Z`` ((c-1) x d, flattened) whose feature
    ``a`` is non-zero on some sample of positive weight (streamed)."""
    n, d = X.shape
    used = np.zeros(d, bool)
    for i0 in range(0, n, VALUE_BLOCK):
        Xb = np.asarray(X[i0:i0 + VALUE_BLOCK])
        used |= np.any(Xb[s[i0:i0 + VALUE_BLOCK] > 0] != 0, axis=0)
    return (np.arange(c - 1)[:, None] * d + np.flatnonzero(used)[None, :]).ravel()


class LeastSquaresPasses:
    """:class:`resnet_core._baseline.Passes` of ``F_lin(W) = E[||W x - y||^2 / 2]`` in
    ``vec(W)`` (row-major), with the Hessian ``I_c kron E[x x^T]`` from one QR factor of the
    rows ``sqrt(s_i) x_i``."""

    convex = True
    gram_steps = False
    decides_separability = False
    quadratic = True
    loss_name = "squared"

    def __init__(self, X, Y, s):
        self.X, self.Y, self.s = X, Y, s
        self.n, self.d = X.shape
        self.c = Y.shape[1]
        self.size = self.c * self.d
        self.eps = EPS64
        self._base: Model | None = None

    def weights(self, z) -> np.ndarray:
        return z.reshape(self.c, self.d)

    def coords(self, W) -> np.ndarray:
        return np.asarray(W, dtype=np.float64).ravel()

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

    def full(self, z, least_shift: float = 0.0) -> Model:
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

    def result(self, z, **fields) -> LinearBaselineResult:
        """The answer at ``z``; ``fun_error`` is not bounded yet (``nan``)."""
        F, g = self.grad(z)
        W = self.weights(z)
        if fields.get("radius") is not None:
            W = inside_ball(W, fields["radius"])
        return _answer(W, F, float("nan"), g, z, **fields)


def _answer(W, F, fun_error, g, z, *, infimum, attained, converged, lam=0.0, radius=None,
            nit=0, npass=0, decrement=0.0, separability=None, direction=None, method="",
            message=""):
    """The :class:`LinearBaselineResult` at ``W`` (``z`` its variables, ``g`` the gradient
    there); an attained infimum is ``F``."""
    return LinearBaselineResult(
        w=W, x=W, fun=float(F), fun_error=fun_error, infimum=float(F if attained else infimum),
        attained=None if attained is None else bool(attained), converged=bool(converged),
        success=bool(converged), grad_norm=safe_norm(g + lam * z), decrement=float(decrement),
        multiplier=float(lam), radius=radius, nit=int(nit), npass=int(npass + 1),
        separability=separability, direction=direction, method=method, message=message,
        w_fits=True, w_scaled=None, w_exponent=0)


def accurate_cross_entropy(X, labels, s, W) -> tuple[float, float, np.ndarray]:
    """``(F, fun_error, G)`` at ``W`` (c x d), ``G`` the gradient in ``W`` (c x d): ``F = sum_i s_i (logsumexp(W x_i) - (W x_i)_{y_i})``
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
    G = np.zeros((c, d))
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
        G += residual(pi, y, sb).T @ Xb
        terms = sb * loss
        parts.append(math.fsum(terms))
        errs.append(math.fsum(sb * (err_eval + first + second) * (1 + 4 * U)
                              + U * np.abs(terms)))
    F = math.fsum(parts)
    err = (math.fsum(errs) + U * math.fsum(abs(v) for v in parts) + U * abs(F)) * (1 + 8 * U)
    return F, err, G


def vector_baseline(X: ArrayLike, y: ArrayLike, *, loss: str, n_classes: int | None,
                    sample_weight: ArrayLike | None, radius: float | None, tol: float | None,
                    max_iter: int, n_threads: int | None,
                    max_lp_entries: int) -> LinearBaselineResult:
    """:func:`resnet_core.linear_baseline` for ``loss="cross_entropy"`` (``y``: classes) or
    ``loss="squared"`` with ``y`` of shape (n, c); the scalar arguments are validated by the
    caller."""
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
    tol = EPS64 if tol is None else tol  # tol, max_iter, max_lp_entries: validated
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
    # BLAS on one thread: the blocks are small, and two OpenBLAS threads made one block's
    # QR 20x slower whenever another thread pool was busy (measured in the demo).
    with blas_single_thread():
        passes = (LeastSquaresPasses(X, target, s) if loss == "squared" else
                  CrossEntropyPasses(X, target, s, c))
        return solve(passes, radius=radius, tol=tol, max_iter=max_iter,
                     max_lp_entries=max_lp_entries)
