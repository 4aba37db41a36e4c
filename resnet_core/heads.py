"""Output heads: how ``(w, V)`` or ``(w, v)`` meet the features, and how the kernels' sums
become gradients and Hessian-vector products.

The kernels see the head only through ``p = x . w + phi . a`` and return
``sx = E[l' x]``, ``sp = g = E[l' phi]`` (gradient pass) or ``vx = E[l'' dp x]``,
``vp = E[l'' dp phi] + E[l' dphi]`` (HVP pass), and the Gram matrix
``G = E[l'' [x, phi]^T [x, phi]]``.

Residual head ``p = w^T (x + V phi)``: ``a = V^T w``;
``grad_w = sx + V g``, ``grad_V = w g^T``; along ``(dw, dV)``: ``da = dV^T w + V^T dw`` and
``H_w = vx + V vp + dV g``, ``H_V = dw g^T + w vp^T``.  From the statistics
``A = E[l'' u u^T]``, ``B = E[l'' u phi^T]``, ``C = E[l'' phi phi^T]`` (``u = x + V phi``):
``H_w = A dw + B dV^T w + dV g``, ``H_V = w (B^T dw + C dV^T w)^T + dw g^T``.

Skip head ``p = w^T x + v^T phi``: ``a = v``; the objective is a generalised linear model in
``(w, v)`` with Hessian ``[[A, B], [B^T, C]]`` (``u = x``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class HeadProtocol(Protocol):
    """What the objectives and point states use of a head (a new head is one class that
    implements it; ``resnet_core.state.PointState`` is its only caller besides the
    objectives).

    ``name`` (``"residual"`` or ``"skip"``); ``vector``: the head has c outputs (its
    blocks are matrices ``W``, ``V`` or ``B``; no sufficient statistics); ``n_params(d, k)``;
    ``split(z, d, k) -> (w, M)`` views of the flat point; ``a(w, M)``: the feature weights
    the engine takes; ``grad(w, M, sx, g)`` and ``hvp(w, M, dw, dM, vx, vp, g)``: the flat
    gradient and Hessian-vector product from the engine's sums; ``direction_a(w, M, dw,
    dM)``: ``a``'s derivative along ``(dw, dM)``.  A head with one output (``vector``
    False) also gives the partial Hessian from the statistics: ``stats(M, G, d) -> (A, B,
    C)``, ``hvp_stats(w, M, dw, dM, A, B, C, g)`` and ``hessian(w, M, A, B, C, g)``.
    """

    name: str
    vector: bool

    def n_params(self, d: int, k: int) -> int: ...

    def split(self, z, d: int, k: int) -> tuple: ...

    def a(self, w, M): ...

    def grad(self, w, M, sx, g): ...

    def direction_a(self, w, M, dw, dM): ...

    def hvp(self, w, M, dw, dM, vx, vp, g): ...


class ResidualHead:
    name = "residual"
    vector = False

    @staticmethod
    def n_params(d: int, k: int) -> int:
        return d + d * k

    @staticmethod
    def split(z, d, k):
        """Views ``(w, V)`` of the flat ``[w, vec(V) row-major]``."""
        return z[:d], z[d : d + d * k].reshape(d, k)

    @staticmethod
    def a(w, V):
        return V.T @ w

    @staticmethod
    def grad(w, V, sx, g):
        return np.concatenate([sx + V @ g, np.outer(w, g).ravel()])

    @staticmethod
    def direction_a(w, V, dw, dV):
        return dV.T @ w + V.T @ dw

    @staticmethod
    def hvp(w, V, dw, dV, vx, vp, g):
        return np.concatenate([vx + V @ vp + dV @ g, (np.outer(dw, g) + np.outer(w, vp)).ravel()])

    @staticmethod
    def stats(V, G, d):
        """``A, B, C`` from ``G = E[l'' [x, phi]^T [x, phi]]``."""
        Gxx, Gxp, Gpp = G[:d, :d], G[:d, d:], G[d:, d:]
        B = Gxp + V @ Gpp
        A = Gxx + V @ Gxp.T + Gxp @ V.T + V @ Gpp @ V.T
        return 0.5 * (A + A.T), B, Gpp.copy()

    @staticmethod
    def hvp_stats(w, V, dw, dV, A, B, C, g):
        e = dV.T @ w
        return np.concatenate(
            [A @ dw + B @ e + dV @ g, (np.outer(w, B.T @ dw + C @ e) + np.outer(dw, g)).ravel()]
        )

    @staticmethod
    def hessian(w, V, A, B, C, g):
        """Dense Hessian: ``H_ww = A``, ``H_wV[a, (i, j)] = w_i B[a, j] + [a = i] g_j``,
        ``H_VV = (w w^T) kron C`` (``vec(V)`` row-major)."""
        d, k = B.shape
        HwV = np.einsum("i,aj->aij", w, B)
        HwV[np.arange(d), np.arange(d), :] += g
        H = np.empty((d + d * k, d + d * k), dtype=A.dtype)
        H[:d, :d] = A
        H[:d, d:] = HwV.reshape(d, d * k)
        H[d:, :d] = H[:d, d:].T
        H[d:, d:] = np.kron(np.outer(w, w), C)
        return H


class SkipHead:
    name = "skip"
    vector = False

    @staticmethod
    def n_params(d: int, k: int) -> int:
        return d + k

    @staticmethod
    def split(z, d, k):
        return z[:d], z[d : d + k]

    @staticmethod
    def a(w, v):
        return v

    @staticmethod
    def grad(w, v, sx, g):
        return np.concatenate([sx, g])

    @staticmethod
    def direction_a(w, v, dw, dv):
        return dv

    @staticmethod
    def hvp(w, v, dw, dv, vx, vp, g):
        return np.concatenate([vx, vp])

    @staticmethod
    def stats(v, G, d):
        return G[:d, :d].copy(), G[:d, d:].copy(), G[d:, d:].copy()

    @staticmethod
    def hvp_stats(w, v, dw, dv, A, B, C, g):
        return np.concatenate([A @ dw + B @ dv, B.T @ dw + C @ dv])

    @staticmethod
    def hessian(w, v, A, B, C, g):
        return np.block([[A, B], [B.T, C]])


HEADS = {"residual": ResidualHead, "skip": SkipHead}


class VectorHead:
    """What the heads with ``c`` outputs share: ``c``, and no sufficient statistics."""

    vector = True

    def __init__(self, c: int):
        self.c = c


class VectorResidualHead(VectorHead):
    """``p = W (x + V phi)`` with ``c`` outputs (Remark 2): ``W`` is c x d, ``A = W V``.

    With ``SX = E[r x^T]``, ``SP = g = E[r phi^T]`` (c x k, ``r = dl/dp``) the gradient is
    ``grad_W = SX + SP V^T``, ``grad_V = W^T SP``; along ``(dW, dV)``,
    ``dA = dW V + W dV`` and, from the kernels' ``VX, VP`` (see ``_vkernels``),
    ``H_W = VX + VP V^T + g dV^T``, ``H_V = W^T VP + dW^T g`` (docs/vector_outputs.md).
    For ``c = 1`` these are the scalar head's formulas with ``W = w^T``.
    """

    name = "residual"

    def n_params(self, d: int, k: int) -> int:
        return self.c * d + d * k

    def split(self, z, d, k):
        """Views ``(W, V)`` of the flat ``[vec(W), vec(V)]`` (both row-major)."""
        c = self.c
        return z[: c * d].reshape(c, d), z[c * d : c * d + d * k].reshape(d, k)

    @staticmethod
    def a(W, V):
        return W @ V

    @staticmethod
    def grad(W, V, sx, g):
        return np.concatenate([(sx + g @ V.T).ravel(), (W.T @ g).ravel()])

    @staticmethod
    def direction_a(W, V, dW, dV):
        return dW @ V + W @ dV

    @staticmethod
    def hvp(W, V, dW, dV, vx, vp, g):
        return np.concatenate([(vx + vp @ V.T + g @ dV.T).ravel(),
                               (W.T @ vp + dW.T @ g).ravel()])


class VectorSkipHead(VectorHead):
    """``p = W x + B phi`` with ``c`` outputs: ``A = B``; ``grad = (SX, SP)``,
    ``H = (VX, VP)`` along ``(dW, dB)``."""

    name = "skip"

    def n_params(self, d: int, k: int) -> int:
        return self.c * (d + k)

    def split(self, z, d, k):
        """Views ``(W, B)`` of the flat ``[vec(W), vec(B)]`` (both row-major)."""
        c = self.c
        return z[: c * d].reshape(c, d), z[c * d : c * (d + k)].reshape(c, k)

    @staticmethod
    def a(W, B):
        return B

    @staticmethod
    def grad(W, B, sx, g):
        return np.concatenate([sx.ravel(), g.ravel()])

    @staticmethod
    def direction_a(W, B, dW, dB):
        return dB

    @staticmethod
    def hvp(W, B, dW, dB, vx, vp, g):
        return np.concatenate([vx.ravel(), vp.ravel()])


VECTOR_HEADS = {"residual": VectorResidualHead, "skip": VectorSkipHead}


def make_head(name: str, c: int, vector: bool) -> HeadProtocol:
    """The head ``name`` with one output, or with ``c`` outputs when ``vector``."""
    return VECTOR_HEADS[name](c) if vector else HEADS[name]
