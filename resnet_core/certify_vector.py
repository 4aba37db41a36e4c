"""Certificates over ``(W, V)`` for vector outputs (``c > 1``, the paper's Remark 2).

``p = W (x + V phi)`` with ``W`` (c x d), ``V`` (d x k), features ``phi`` fixed, a loss
convex in ``p`` with per-sample gradient ``r = grad_p l`` and Hessian ``S = hess_p l``
(``diag(pi) - pi pi^T`` for cross-entropy, ``I`` for the squared loss).  The quadratic form
of the partial Hessian along ``(dW, dV)`` is

    K = E[(dW u + W dV phi)^T S (dW u + W dV phi)] + 2 tr(dW dV Gamma),   Gamma = E[phi r^T]

so it depends on ``dV`` only through ``W dV`` (c x k) and ``dV Gamma`` (d x c).  With
``U`` an orthonormal basis of the row space of ``W`` (rank ``r``), ``Q`` of its complement,
``P1`` of the column space of ``Gamma`` (rank ``s``) and ``P2`` of its complement,
``dV = U a + Q zeta P1^T + Q R P2^T`` is an orthonormal change of coordinates in which ``R``
does not enter ``K``: the spectrum of the ``(cd + dk)``-dimensional Hessian is that of a
matrix of size ``cd + r k + (d - r) s`` plus ``(d - r)(k - s)`` zeros, for any loss.  The
matrix is assembled from one pass over the data: the Gauss-Newton statistic
``T = E[S kron z z^T]`` with ``z = [u; phi]`` (``I_c kron E[z z^T]`` for the squared loss)
and ``Gamma`` (docs/vector_outputs_certificates.md has the derivation).

The Lemma 1 analogue: for ``W`` of full row rank and any ``W*``, with ``G_W = W - W*`` and
``G_V = W^+ W* V`` (``W^+ = W^T (W W^T)^{-1}``), ``<G, grad F> = E[r^T (W u - W* x)] >=
F - F_lin(W*)``, hence ``||grad F|| >= (F - F_lin(W*)) / ||G||_F``.  Theorem 2 has no known
analogue for ``c > 1``: nothing is computed in its place.
"""

from __future__ import annotations

import numpy as np

from .objective import MAX_DENSE_HESSIAN
from ._certificate import (LambdaMin, SOPSPReport, lambda_min_dense, lambda_min_lanczos,
                           rounding_error, smallest_eigenvalue)

# method="auto" forms the reduced matrix and the Gauss-Newton statistic densely up to this
# size (a 4000 x 4000 float64 matrix is 128 MB, its eigvalsh a few seconds); beyond, Lanczos.
AUTO_MAX = 4000
# Largest matrix formed on request (method="structured" or "dense"), as FeatureObjective.hessian.
MAX_DENSE = MAX_DENSE_HESSIAN
# float64 entries of one block of the statistics pass (rows x c (d + k)): 8 MB.
BLOCK_ENTRIES = 1 << 20
LOSSES = ("cross_entropy", "squared")
THEOREM2_NOTE = ("no known analogue for c > 1 (the paper leaves it open): nothing computed "
                 "in its place")
THEOREM3_NOTE = ("it rests on Theorem 2, which has no known analogue for c > 1 outputs "
                 "(Remark 2)")


# -- the data, block by block ----------------------------------------------------------------
def _loss_name(fo) -> str:
    name = getattr(fo.loss, "name", None)
    if name not in LOSSES:
        raise ValueError(f"vector certificates know the losses {list(LOSSES)}; this objective's "
                         f"loss is {name!r}")
    return name


def head_matrices(fo, z):
    """``(W, M)`` of the point ``z`` as float64 arrays: ``W`` (c, d) and ``M = V`` (d, k)
    for the residual head, ``M = B`` (c, k) for the skip head ``p = W x + B phi``."""
    c, d, k = fo.n_outputs, fo.d, fo.k
    z = np.asarray(z)
    W = np.asarray(z[:c * d], dtype=np.float64).reshape(c, d)
    shape = (d, k) if getattr(fo, "head", "residual") == "residual" else (c, k)
    M = np.asarray(z[c * d:c * d + shape[0] * k], dtype=np.float64).reshape(shape)
    return W, M


def _feature_block(fo, i0: int, i1: int) -> np.ndarray:
    """The features of samples ``i0:i1`` (with the constant column of ``feature_bias``),
    float64; computed by the frozen MLP when the objective streams them."""
    theta = getattr(fo, "theta", None)
    if theta is not None:
        Xb = np.ascontiguousarray(fo.X[i0:i1])
        Phi = fo.engine.predict(*fo.zero_head(), theta, features=True, X=Xb)[1]
        return np.asarray(Phi, dtype=np.float64)
    if getattr(fo, "feature_bias", False):
        base = np.asarray(fo.engine.Phi[i0:i1], dtype=np.float64)
        return np.column_stack([base, np.ones(i1 - i0)])
    return np.asarray(fo.Phi[i0:i1], dtype=np.float64)


def _blocks(fo, width: int):
    """``(i0, i1)`` row blocks of about ``BLOCK_ENTRIES / width`` samples."""
    rows = max(1, BLOCK_ENTRIES // max(width, 1))
    return [(i0, min(i0 + rows, fo.n_samples)) for i0 in range(0, fo.n_samples, rows)]


def sample_loss_terms(P: np.ndarray, y: np.ndarray, loss: str):
    """Per-sample ``l`` (n,), ``r = grad_p l`` (n, c) and, for cross-entropy, the
    probabilities ``pi`` (n, c) of scores ``P`` (n, c); ``l = logsumexp(p) - p_y`` is
    evaluated with the maximum subtracted (finite at any score)."""
    if loss == "squared":
        R = P - np.asarray(y, dtype=np.float64).reshape(P.shape)
        return 0.5 * np.einsum("ia,ia->i", R, R), R, None
    m = P.max(axis=1, keepdims=True)
    E = np.exp(P - m)
    tot = E.sum(axis=1, keepdims=True)
    pi = E / tot
    labels = np.asarray(y).astype(np.intp)
    rows = np.arange(P.shape[0])
    l = (m[:, 0] + np.log(tot[:, 0])) - P[rows, labels]
    R = pi.copy()
    R[rows, labels] -= 1.0
    return l, R, pi


class VectorStats:
    """One pass at ``(W, V)``: ``F``, ``grad_W = E[r u^T]``, ``Gamma = E[phi r^T]`` (so
    ``grad_V = W^T Gamma^T``), the per-sample losses and, when asked, the Gauss-Newton
    statistic ``T = E[S kron z z^T]`` (shape (c, d + k, c, d + k), ``z = [u; phi]``).
    For the skip head ``p = W x + B phi`` pass ``V = 0`` and ``B`` (then ``u = x``, and
    ``T`` is its Hessian over ``(W, B)`` up to the order of coordinates)."""

    def __init__(self, fo, W, V, *, gauss_newton: bool, B=None):
        loss = _loss_name(fo)
        c, d, k = W.shape[0], fo.d, fo.k
        D = d + k
        s = np.asarray(fo.sample_weight, dtype=np.float64)
        self.sample_losses = np.empty(fo.n_samples)
        self.grad_W, self.Gamma = np.zeros((c, d)), np.zeros((k, c))
        T = np.zeros((c * D, c * D)) if gauss_newton and loss == "cross_entropy" else None
        G = np.zeros((D, D)) if gauss_newton and loss == "squared" else None
        for i0, i1 in _blocks(fo, c * D):
            Phi = _feature_block(fo, i0, i1)
            U = np.asarray(fo.X[i0:i1], dtype=np.float64) + Phi @ V.T
            P = U @ W.T if B is None else U @ W.T + Phi @ B.T
            l, R, pi = sample_loss_terms(P, fo.y[i0:i1], loss)
            sb = s[i0:i1]
            self.sample_losses[i0:i1] = l
            Rs = R * sb[:, None]
            self.grad_W += Rs.T @ U
            self.Gamma += Phi.T @ Rs
            if not gauss_newton:
                continue
            Z = np.hstack([U, Phi])
            if G is not None:
                G += (Z * sb[:, None]).T @ Z
                continue
            # diag(pi) - pi pi^T: a weighted Gram per class minus one of the (pi kron z)
            for a in range(c):
                T[a * D:(a + 1) * D, a * D:(a + 1) * D] += (Z * (sb * pi[:, a])[:, None]).T @ Z
            Y = (np.sqrt(sb)[:, None, None] * pi[:, :, None] * Z[:, None, :]).reshape(-1, c * D)
            T -= Y.T @ Y
        if G is not None:
            T = np.kron(np.eye(c), 0.5 * (G + G.T))
        self.T = None if T is None else (0.5 * (T + T.T)).reshape(c, D, c, D)
        self.F = float(s @ self.sample_losses)
        self.grad_V = W.T @ self.Gamma.T

    @property
    def grad(self) -> np.ndarray:
        return np.concatenate([self.grad_W.ravel(), self.grad_V.ravel()])


# -- the reduced eigenproblem -------------------------------------------------------------------
def split_range(A: np.ndarray, side: str):
    """Orthonormal bases of the range of ``A`` (``side="col"``) or of ``A^T`` (``"row"``)
    and of its complement, and the largest singular value left out (numerical rank with
    NumPy's ``matrix_rank`` tolerance ``max(shape) eps sigma_max``)."""
    n = A.shape[0] if side == "col" else A.shape[1]
    if A.size == 0:
        return np.zeros((n, 0)), np.eye(n), 0.0
    Uf, sv, Vt = np.linalg.svd(A, full_matrices=True)
    basis = Uf if side == "col" else Vt.T
    tol = max(A.shape) * np.finfo(np.float64).eps * (sv[0] if sv.size else 0.0)
    rank = int(np.sum(sv > tol))
    dropped = float(sv[rank]) if rank < sv.size else 0.0
    return basis[:, :rank], basis[:, rank:], dropped


def reduced_hessian_vector(W: np.ndarray, T: np.ndarray, Gamma: np.ndarray):
    """The matrix whose spectrum, with ``n_zeros`` zeros, is the spectrum of the partial
    Hessian over ``(W, V)`` (see the module notes).

    Parameters
    ----------
    W : array (c, d)
    T : array (c, d + k, c, d + k)
        ``E[S kron z z^T]``, ``z = [u; phi]``.
    Gamma : array (k, c)
        ``E[phi r^T]``.

    Returns
    -------
    M : array
        Symmetric, of size ``c d + r k + (d - r) s`` in the coordinates
        ``(vec dW, vec a, vec zeta)``.
    n_zeros : int
        ``(d - r)(k - s)``.
    perturbation : float
        A bound on the eigenvalue error from singular values of ``W`` or ``Gamma`` below
        the rank tolerance (0 when none was dropped):
        ``||T|| (2 (1 + ||W||) dW + dW^2) + 2 dGamma``.
    """
    c, d = W.shape
    k = Gamma.shape[0]
    U, Q, drop_W = split_range(W, "row")          # d x r, d x (d - r)
    P1, _, drop_G = split_range(Gamma, "col")     # k x s
    r, s = U.shape[1], P1.shape[1]
    Mw = W @ U                                      # c x r: W dV = Mw a
    G1 = P1.T @ Gamma                               # s x c
    Tww = T[:, :d, :, :d].reshape(c * d, c * d)
    Twa = np.einsum("ipjq,jm->ipmq", T[:, :d, :, d:], Mw).reshape(c * d, r * k)
    Taa = np.einsum("jm,jqlt,ln->mqnt", Mw, T[:, d:, :, d:], Mw).reshape(r * k, r * k)
    # 2 tr(dW U a Gamma) and 2 tr(dW Q zeta P1^T Gamma): bilinear in (dW, a), (dW, zeta)
    N1 = np.einsum("jm,li->ijml", U, Gamma).reshape(c * d, r * k)
    N2 = np.einsum("jm,li->ijml", Q, G1).reshape(c * d, (d - r) * s)
    m1, m2 = c * d, c * d + r * k
    M = np.zeros((m2 + (d - r) * s,) * 2)
    M[:m1, :m1] = Tww
    M[:m1, m1:m2] = Twa + N1
    M[m1:m2, :m1] = (Twa + N1).T
    M[m1:m2, m1:m2] = Taa
    M[:m1, m2:] = N2
    M[m2:, :m1] = N2.T
    M = 0.5 * (M + M.T)
    perturbation = 0.0
    if drop_W or drop_G:
        nT = float(np.linalg.norm(T.reshape(c * (d + k), -1), 2))
        perturbation = nT * (2 * (1 + np.linalg.norm(W, 2)) * drop_W + drop_W**2) + 2 * drop_G
    return M, (d - r) * (k - s), perturbation


def structured_size(fo) -> int:
    """The larger of the Gauss-Newton statistic's size ``c (d + k)`` and the reduced matrix's
    for generic ranks (``r = min(c, d)``, ``s = min(c, k)``)."""
    c, d, k = fo.n_outputs, fo.d, fo.k
    r, s = min(c, d), min(c, k)
    return max(c * (d + k), c * d + r * k + (d - r) * s)


def statistics(fo, W, M, *, gauss_newton: bool) -> VectorStats:
    """:class:`VectorStats` at the head ``(W, M)`` (``M = V``, or ``B`` for the skip head,
    whose pass takes ``V = 0``)."""
    if fo.head == "residual":
        return VectorStats(fo, W, M, gauss_newton=gauss_newton)
    return VectorStats(fo, W, np.zeros((fo.d, fo.k)), gauss_newton=gauss_newton, B=M)


def hessian_trace(fo, z) -> float:
    """The exact trace of the partial Hessian over ``(W, V)`` (or ``(W, B)``), one pass:
    ``E[tr(S) ||u||^2] + E[||phi||^2 tr(W^T S W)]`` for the residual head (the ``dW`` and
    ``dV`` diagonal blocks; the bilinear term ``2 tr(dW dV Gamma)`` has no diagonal),
    ``E[tr(S) (||x||^2 + ||phi||^2)]`` for the skip head.  For cross-entropy
    ``tr S = 1 - ||pi||^2`` and ``tr(W^T S W) = sum_a pi_a ||W_a||^2 - ||W^T pi||^2``; for
    the squared loss ``S = I``."""
    loss = _loss_name(fo)
    W, M = head_matrices(fo, z)
    residual = fo.head == "residual"
    s = np.asarray(fo.sample_weight, dtype=np.float64)
    row_norms = np.einsum("ad,ad->a", W, W)
    total = 0.0
    for i0, i1 in _blocks(fo, fo.n_outputs * (fo.d + fo.k)):
        Phi = _feature_block(fo, i0, i1)
        X = np.asarray(fo.X[i0:i1], dtype=np.float64)
        U = X + Phi @ M.T if residual else X
        P = U @ W.T if residual else U @ W.T + Phi @ M.T
        pi = sample_loss_terms(P, fo.y[i0:i1], loss)[2]
        u2, f2 = np.einsum("ij,ij->i", U, U), np.einsum("ij,ij->i", Phi, Phi)
        if pi is None:  # S = I
            trS, trWSW = float(fo.n_outputs), float(row_norms.sum())
        else:
            PW = pi @ W
            trS = 1.0 - np.einsum("ia,ia->i", pi, pi)
            trWSW = pi @ row_norms - np.einsum("ij,ij->i", PW, PW)
        per = trS * u2 + f2 * trWSW if residual else trS * (u2 + f2)
        total += float(s[i0:i1] @ per)
    return total


def lambda_min_structured(fo, z, stats: VectorStats | None = None) -> LambdaMin:
    """Exact ``lambda_min`` from one statistics pass: the reduced eigenproblem (residual
    head), or ``T`` itself (skip head: ``F`` is convex in ``(W, B)``, its Hessian is
    ``E[S kron z z^T]``, ``z = [x; phi]``)."""
    if structured_size(fo) > MAX_DENSE:
        raise ValueError(f"method='structured' forms matrices of size {structured_size(fo)} "
                         f"> {MAX_DENSE} here: use method='lanczos'")
    W, V = head_matrices(fo, z)
    if stats is None or stats.T is None:
        stats = statistics(fo, W, V, gauss_newton=True)
    if fo.head != "residual":
        T = stats.T.reshape(fo.n_outputs * (fo.d + fo.k), -1)
        return LambdaMin(smallest_eigenvalue(T), rounding_error(T, fo.n_samples, fo.dtype),
                         "structured")
    M, zeros, perturbation = reduced_hessian_vector(W, stats.T, stats.Gamma)
    ev = smallest_eigenvalue(M)
    value = min(ev, 0.0) if zeros > 0 else ev
    error = rounding_error(M, fo.n_samples, fo.dtype) + perturbation
    return LambdaMin(value, error, "structured")


# -- the report -------------------------------------------------------------------------------
def _linear_statistics(fo, W_star, sample_losses, F):
    """``F_lin(W*)`` and the standard errors of ``F`` and of ``F - F_lin(W*)``, the linear
    losses block by block (no copy of ``X``)."""
    loss = _loss_name(fo)
    s = np.asarray(fo.sample_weight, dtype=np.float64)
    l_lin = np.empty(fo.n_samples)
    for i0, i1 in _blocks(fo, fo.d + fo.n_outputs):
        P = np.asarray(fo.X[i0:i1], dtype=np.float64) @ W_star.T
        l_lin[i0:i1] = sample_loss_terms(P, fo.y[i0:i1], loss)[0]
    F_lin = float(s @ l_lin)
    gap = F - F_lin
    se_F = float(np.sqrt(np.sum((s * (sample_losses - F)) ** 2)))
    se_gap = float(np.sqrt(np.sum((s * (sample_losses - l_lin - gap)) ** 2)))
    return F_lin, se_F, se_gap


def lemma1_direction(W, V, W_star):
    """``G = (W - W*, W^+ W* V)`` flattened, or None when ``W`` is not of full row rank
    (numerical rank below ``c``: the analogue does not apply)."""
    W, V, W_star = (np.asarray(a, dtype=np.float64) for a in (W, V, W_star))
    c, d = W.shape
    sv = np.linalg.svd(W, compute_uv=False)
    if c > d or sv[-1] <= max(c, d) * np.finfo(np.float64).eps * sv[0]:
        return None
    W_plus = np.linalg.solve(W @ W.T, W).T  # W^T (W W^T)^{-1}, d x c
    return np.concatenate([(W - W_star).ravel(), (W_plus @ W_star @ V).ravel()])


def _lemma1(report: SOPSPReport, W, V, W_star, stats: VectorStats, grad, gap_w):
    G = lemma1_direction(W, V, W_star)
    if G is None:
        rank = int(np.linalg.matrix_rank(W))
        report.lemma1_note = (f"W ({W.shape[0]} x {W.shape[1]}) has rank {rank} < c = "
                              f"{W.shape[0]}: the Lemma 1 analogue needs W of full row rank; "
                              "not computed")
        return
    tol = 1e-9 * (1.0 + abs(report.F) + abs(report.F_lin_at_w_star))
    report.G_norm = float(np.linalg.norm(G))
    report.lemma1_inner = float(G @ grad)
    # E[r^T (W u - W* x)] = <W, grad_W> - <W*, E[r x^T]>,  E[r x^T] = grad_W - Gamma^T V^T
    report.lemma1_expectation = float(np.sum(W * stats.grad_W)
                                      - np.sum(W_star * (stats.grad_W - stats.Gamma.T @ V.T)))
    report.lemma1_holds = bool(report.lemma1_inner >= gap_w - tol)
    report.theorem1_bound = float(gap_w / report.G_norm) if report.G_norm > 0 else None
    report.theorem1_holds = (None if report.theorem1_bound is None else
                             bool(report.grad_norm >= report.theorem1_bound - tol))


class VectorPart:
    """What the certificate of :func:`resnet_core.check_sopsp` computes differently with c
    outputs (:mod:`resnet_core.certify` assembles the report): the statistics pass, the
    structured ``lambda_min``, the gap's statistics, and the Lemma 1 / Theorem 1 analogue
    (Theorems 2 and 3 have none)."""

    def __init__(self, fo, z):
        self.fo, self.z = fo, z
        self.W, self.M = head_matrices(fo, z)
        self.w_norm = float(np.linalg.norm(self.W))

    def resolve(self, method: str) -> str:
        """``"auto"``: ``"structured"`` while its matrices have size at most
        :data:`AUTO_MAX`, else ``"lanczos"``."""
        if method != "auto":
            return method
        return "structured" if structured_size(self.fo) <= AUTO_MAX else "lanczos"

    def statistics(self, method: str) -> None:
        """One pass: ``F``, the gradient (the objective's own, in its dtype) and the
        per-sample losses (with ``T`` when the structured ``lambda_min`` needs it)."""
        fo = self.fo
        self.stats = statistics(fo, self.W, self.M, gauss_newton=method == "structured")
        F, grad = fo.fun_and_grad(self.z)
        self.F, self.grad = float(F), np.asarray(grad, dtype=np.float64)

    def lambda_min(self, method: str) -> LambdaMin:
        if method == "structured":
            return lambda_min_structured(self.fo, self.z, self.stats)
        return {"dense": lambda_min_dense, "lanczos": lambda_min_lanczos}[method](self.fo, self.z)

    def theorem3_plan(self, given):
        """None: Theorem 3 has no analogue here; its inputs, given, are refused."""
        if given is not None:
            raise ValueError(f"theorem3 is for one output: with c = {self.fo.n_outputs} "
                             f"outputs {THEOREM3_NOTE}, so its inputs are not used")
        return None

    def gap_statistics(self, W_star, plan):
        """``(F_lin(W*), s.e. of F, s.e. of the gap, None)``."""
        W_star = np.reshape(W_star, self.W.shape)
        return (*_linear_statistics(self.fo, W_star, self.stats.sample_losses, self.F), None)

    def inequalities(self, report: SOPSPReport, lam, W_star, gap_w) -> None:
        """The Lemma 1 / Theorem 1 analogue (residual head) and the notes on Theorems 2, 3."""
        report.V_norm = float(np.linalg.norm(self.M, 2))
        report.theorem2_note = THEOREM2_NOTE
        report.theorem3_note = THEOREM3_NOTE
        _lemma1(report, self.W, self.M, np.reshape(W_star, self.W.shape), self.stats, self.grad,
                gap_w)
