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

import functools
import math

import numpy as np
from numpy.typing import ArrayLike

from ._baseline import (EPS64, LOGISTIC_MARGIN, QR_CHUNK, LinearBaselineResult, gram_model,
                        scale_exponent, scaled_back, scaled_radius, solve)
from ._threads import blas_single_thread, resolve_n_threads
from ._trust_region import Model, inside_ball, safe_norm
from ._validation import (MAX_BYTES, as_float_array, check_classes, check_data,
                          check_sample_weight, to_numpy)
from ._vector_rows import (U, EngineRows, MemoryRows, accurate_block, add_accurate,
                           add_gram, add_parts, ce_factor_rows, ce_grad, ce_gram, ce_value,
                           ls_grad, proven_least_gap, push_block, used_features,
                           weighted_rows)
from .separability import CombinationSums, Separability, class_separability


def centred_basis(c: int) -> np.ndarray:
    """``P`` (c x (c-1)), orthonormal columns orthogonal to the ones vector (Helmert)."""
    P = np.zeros((c, c - 1))
    for k in range(1, c):
        P[:k, k - 1] = 1.0 / np.sqrt(k * (k + 1))
        P[k, k - 1] = -k / np.sqrt(k * (k + 1))
    return P


class CrossEntropyPasses:
    """:class:`resnet_core._baseline.MarginPasses` of the cross-entropy: ``F_lin``, gradient
    and Hessian in ``Z``, where ``W = P Z``, over the row blocks of ``data``
    (:class:`~resnet_core._vector_rows.MemoryRows` or ``EngineRows``); ``allowed`` (n x c,
    optional, in memory) drops the pairs it marks False (the classes of a quasi-separable
    problem's separated pairs).  The margins are the pair margins ``(w_{y_i} - w_j)^T x_i``."""

    convex = True
    gram_steps = False
    decides_separability = True
    quadratic = False
    attains_on_ray = False
    loss_name = "cross_entropy"

    def __init__(self, data, c, allowed=None, live=None, exact=False):
        self.data, self.c = data, c
        self.allowed, self.exact = allowed, exact
        self.n, self.d = data.n, data.d
        self.size = (c - 1) * self.d
        self.P = centred_basis(c)
        self.PD = self.P[:, None, :] - self.P[None, :, :]  # P_k - P_j
        self.eps = EPS64
        # Every separated sample's loss log(1 + sum_{j != y} e^-m_j) is below e^-36 there.
        self.far_margin = LOGISTIC_MARGIN + np.log(c - 1)
        # Coordinates (m, a) of Z whose feature a is 0 on every sample of positive weight:
        # exact null directions of H, left out of its eigendecomposition.
        self._live = _live_coordinates(data, c) if live is None else live

    def restricted(self, sep) -> "CrossEntropyPasses":
        allowed = ~sep.separated_pairs
        allowed[np.arange(self.n), self.data.target] = True
        return CrossEntropyPasses(self.data, self.c, allowed, self._live, self.exact)

    def weights(self, z) -> np.ndarray:
        return self.P @ z.reshape(self.c - 1, self.d)

    def start(self) -> np.ndarray:
        return np.zeros(self.size)

    def coords(self, W) -> np.ndarray:
        """``Z = P^T W`` (of the centred part of ``W``), flattened."""
        return (self.P.T @ W).ravel()

    def value(self, z) -> float:
        return self.data.fold(functools.partial(ce_value, self.weights(z), self.allowed))

    def grad(self, z):
        """``(F_lin, grad_Z F_lin)``."""
        F, G = self.data.fold(functools.partial(ce_grad, self.weights(z), self.allowed),
                              add_parts)
        return F, (self.P.T @ G).ravel()

    def full(self, z, least_shift: float = 0.0) -> Model:
        """The Newton model at ``z``: ``F``, ``g`` and the Hessian ``H`` in one pass (the Gram
        form, :meth:`_gram`); the QR factor of the Hessian's rows (one more pass) when
        :func:`gram_model` does not trust ``H``, or always with ``self.exact`` (see
        :meth:`_factor_model`)."""
        F, g, H, _ = self._gram(z, pairs=False)
        if not self.exact:
            with blas_single_thread():
                m = gram_model(F, g, H, live=self._live, least_shift=least_shift)
            if m is not None:
                return m
        return self._factor_model(z, F, g)

    def _gram(self, z, pairs):
        """``(F, g, H, extra)``: ``H = sum_i kron(V_i^T V_i, x_i x_i^T)`` with the rows
        ``V_i`` of :func:`~resnet_core._vector_rows.pair_rows` (``pairs``) or
        :func:`~resnet_core._vector_rows.hessian_rows`, one ``X^T diag(D_i[m, m']) X`` per pair
        ``m <= m'`` of the ``c - 1`` coordinates; ``extra``: the overlap certificate's sums
        for the pair rows (``[sum s (1 - pi_y) ||x||, sum q ||x||^2, max ||x||, max q / lam,
        every lam > 0, blocks]``, ``q = t^2`` the squares of the rows' weights)."""
        F, G, H, extra = self.data.fold(functools.partial(
            ce_gram, self.weights(z), self.allowed, self.PD, pairs), add_gram)
        k = self.c - 1
        for m in range(k):
            for m2 in range(m, k):
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
            z, pairs=True)
        return CombinationSums(b=-g, H=H, b_abs=2 * b_abs, h_trace=2 * h_trace,
                               x_max=np.sqrt(2) * x_max * (1 + 4 * U), q_over_lam=q_over_lam,
                               terms=self.n + blocks + self.c + self.d, positive=positive)

    def _factor_model(self, z, F, g) -> Model:
        """The model from the QR factor of the rows ``sqrt(s_i pi_ik) (P_k - pi_i^T P) kron
        x_i`` (``c`` per sample): eigenvalues to ``eps^2`` of the largest."""
        R = self.data.factor(functools.partial(ce_factor_rows, self.weights(z), self.allowed,
                                               self.PD),
                             self.size, max(1, QR_CHUNK // self.c))
        return Model.from_factor(F, g, R, self.eps, self.n * self.c)

    def separation(self, z) -> float:
        """The least pair margin over samples of positive weight, rounding bounded
        (:func:`~resnet_core._vector_rows.proven_least_gap`, streamed): positive only when
        every pair margin of ``W = P Z`` (as computed) is positive in exact arithmetic."""
        return self.data.fold(functools.partial(proven_least_gap, self.weights(z)), min)

    def ray(self, z, smallest) -> Separability:
        """The separable answer from a point whose pair margins are all positive; the
        separated samples and pairs are None (all of positive weight) when the data are not
        in memory (no n-sized array is made)."""
        W = self.weights(z)
        separated = pairs = None
        if self.data.in_memory:
            separated = self.data.s > 0
            pairs = np.repeat(separated[:, None], self.c, axis=1)
            pairs[np.arange(self.n), self.data.target] = False
        return Separability("separable", W / np.linalg.norm(W), separated, smallest,
                            "separated by the direction of Newton's iterates: every pair margin "
                            f"(w_y - w_j)^T x_i > 0 (smallest {smallest:.3g}, rounding "
                            "bounded)", pairs)

    def linear_program(self, max_lp_entries) -> Separability:
        if not self.data.in_memory:
            return Separability("not_decided", None, None, 0.0, "data not in memory",
                                lp_skipped="data not in memory",
                                lp_entries=self.n * (self.c - 1) * (2 * self.d + 1))
        return class_separability(self.data.X, self.data.target, self.data.s, self.c,
                                  max_lp_entries)

    def push(self, z, sep):
        """``z + t u`` with ``t >= 0`` the least that puts every margin of the separated
        pairs at ``far_margin`` or beyond (streamed; ``u`` positive on those pairs)."""
        u = self.coords(sep.direction)
        t = self.data.fold(functools.partial(push_block, self.weights(z), self.weights(u),
                                             self.far_margin, sep.separated_pairs), max)
        return z + max(t, 0.0) * u

    def result(self, z, **fields) -> LinearBaselineResult:
        """The answer at ``z`` (of the unrestricted problem): ``fun`` and ``fun_error`` by
        :func:`accurate_cross_entropy`, which gives the gradient too."""
        W = self.weights(z)
        if fields.get("radius") is not None:  # ||Z|| <= radius; W = P Z may round an ulp out
            W = inside_ball(W, fields["radius"])
        F, fun_error, G = accurate_cross_entropy(self.data, W)
        return _answer(W, F, fun_error, (self.P.T @ G).ravel(), z, **fields)


def _live_coordinates(data, c) -> np.ndarray:
    """Indices ``m d + a`` of the coordinates of ``Z`` ((c-1) x d, flattened) whose feature
    ``a`` is non-zero on some sample of positive weight (streamed)."""
    used = data.fold(used_features, np.logical_or)
    return (np.arange(c - 1)[:, None] * data.d + np.flatnonzero(used)[None, :]).ravel()


class LeastSquaresPasses:
    """:class:`resnet_core._baseline.Passes` of ``F_lin(W) = E[||W x - y||^2 / 2]`` in
    ``vec(W)`` (row-major), with the Hessian ``I_c kron E[x x^T]`` from one QR factor of the
    rows ``sqrt(s_i) x_i``."""

    convex = True
    gram_steps = False
    decides_separability = False
    quadratic = True
    loss_name = "squared"

    def __init__(self, data, c):
        self.data, self.c = data, c
        self.n, self.d = data.n, data.d
        self.size = self.c * self.d
        self.eps = EPS64
        self._base: Model | None = None

    def weights(self, z) -> np.ndarray:
        return z.reshape(self.c, self.d)

    def start(self) -> np.ndarray:
        return np.zeros(self.size)

    def coords(self, W) -> np.ndarray:
        return np.asarray(W, dtype=np.float64).ravel()

    def grad(self, z):
        F, G = self.data.fold(functools.partial(ls_grad, self.weights(z)), add_parts)
        return F, G.ravel()

    def value(self, z) -> float:
        return self.grad(z)[0]

    def full(self, z, least_shift: float = 0.0) -> Model:
        F, g = self.grad(z)
        if self._base is None:
            R = self.data.factor(weighted_rows, self.d, QR_CHUNK)
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


def accurate_cross_entropy(data, W) -> tuple[float, float, np.ndarray]:
    """``(F, fun_error, G)`` at ``W`` (c x d) over the row blocks of ``data``, ``G`` the
    gradient in ``W`` (c x d): ``F = sum_i s_i (logsumexp(W x_i) - (W x_i)_{y_i})``
    evaluated as :func:`~resnet_core._vector_rows.softmax_terms` does, each block's sum
    correctly rounded (``math.fsum``), and ``fun_error`` a bound of ``|F - F_exact(W)|``: the
    scores ``p = W x`` off by ``delta <= gamma_d |W| |x|``, moving the loss by at most
    ``sum_{k != y} pi_k dr_k + e^(2 max dr) sum_{k != y} pi_k dr_k^2 / 2``
    (``dr_k = delta_k + delta_y + u |r_k|``; the loss's gradient and curvature in
    ``r = p - p_y``), plus the evaluation's own rounding
    (exp ``u (|x| + 1)`` relative, the sum, log1p, the final add) and that of the sums
    (:func:`~resnet_core._vector_rows.accurate_block`)."""
    W = np.asarray(W, dtype=np.float64)
    parts, errs, G = data.fold(functools.partial(accurate_block, W), add_accurate)
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
    _check_size(size)
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


def engine_vector_baseline(engine, *, radius: float | None, tol: float | None,
                           max_iter: int, max_lp_entries: int) -> LinearBaselineResult:
    """:func:`vector_baseline` on a stateless engine's data (dask arrays: one task per row
    chunk; out-of-core arrays: block by block), through its ``map_rows``
    (:class:`~resnet_core._vector_rows.EngineRows`): solved as given (no rescaling), no
    n-sized array on the client, and no separability linear program (it needs the data in
    memory): separation from Newton's iterates, overlap from the minimiser's certificate,
    else ``"not_decided"`` with the reason and the cost."""
    labels = bool(engine.loss.labels)
    size = (engine.c - int(labels)) * engine.d
    _check_size(size)
    data = EngineRows(engine, labels)
    with blas_single_thread():
        passes = (CrossEntropyPasses(data, engine.c) if labels else
                  LeastSquaresPasses(data, engine.c))
        return solve(passes, radius=radius, tol=EPS64 if tol is None else tol,
                     max_iter=max_iter, max_lp_entries=max_lp_entries)


def _check_size(size):
    if 8 * size * size > MAX_BYTES:
        raise ValueError(f"the Hessian of {size} variables needs {8 * size * size} bytes, "
                         f"above {MAX_BYTES}: fewer classes or features")


def _solve(X, target, s, loss, c, size, radius, tol, max_iter, max_lp_entries):
    """:func:`vector_baseline` on validated data (``target``: the labels or ``Y``)."""
    # BLAS on one thread: the blocks are small, and two OpenBLAS threads made one block's
    # QR 20x slower whenever another thread pool was busy (measured in the demo).
    data = MemoryRows(X, target, s)
    with blas_single_thread():
        passes = (LeastSquaresPasses(data, target.shape[1]) if loss == "squared" else
                  CrossEntropyPasses(data, c))
        return solve(passes, radius=radius, tol=tol, max_iter=max_iter,
                     max_lp_entries=max_lp_entries)
