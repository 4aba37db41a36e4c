"""The explicit point state: one point of an objective and what has been computed there.

``objective.at(x)`` returns a :class:`PointState`.  It holds a read-only copy of ``x`` and,
computed at most once and only when asked: ``F``, the gradient, the per-sample quantities
``l(p_i)``, ``s_i l'(p_i)``, ``s_i l''(p_i)`` (one pass over the data fills them all), and
for the partial objective ``F_theta(w, V)`` the sufficient statistics ``A, B, C, g`` (a Gram
pass).  ``hessp(p)`` reuses the per-sample quantities: one pass per product for the full
Hessian (the R-operator); for the partial Hessian the first product streams the data once
and the second builds the statistics, after which products cost ``O(d^2 + d k + k^2)``.

The objectives' ``fun``, ``grad``, ``fun_and_grad``, ``hessp`` and ``stats`` are thin
adapters over ``at(x)``; an objective remembers its last state only to spare a repeated call
at the same point.

Safety: a state owns its buffers and is immutable once a quantity is computed.  The first
pass at a state, the gradient and the statistics are computed under the state's lock; a
computation that does not finish (KeyboardInterrupt, MemoryError) stores nothing, so the
next call recomputes it.  Products at a state whose buffers are filled only read them.  So
states may be shared between threads, and different points may be evaluated concurrently on
one objective: every call returns what a serial call returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._buffers import SampleBuffers
from ._engine import Engine
from ._validation import check_point


@dataclass(frozen=True)
class SufficientStats:
    """What the partial Hessian of ``F_theta`` at a point is made of (one data pass).

    ``A = E[l'' u u^T]`` (d x d), ``B = E[l'' u phi^T]`` (d x k), ``C = E[l'' phi phi^T]``
    (k x k), ``g = E[l' phi]`` (k), with ``u = x + V phi`` (residual head) or ``u = x`` (skip
    head); also the value ``F`` and gradient ``grad`` at the point, and the Gram matrix
    ``G = E[l'' [x, phi]^T [x, phi]]`` they came from.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    g: np.ndarray
    F: float
    grad: np.ndarray
    G: np.ndarray


def _read_only(a):
    if not isinstance(a, np.ndarray):
        return a  # a lazy dask array: nothing to write to
    a = a.view()
    a.flags.writeable = False
    return a


class PointState:
    """One point ``x`` of an objective and everything computed there (see the module notes).

    Not built directly: ``objective.at(x)``.

    Attributes
    ----------
    x : ndarray
        The point (read-only copy).
    F : float
        The objective's value.
    grad : ndarray
        Its gradient (read-only): over all parameters for an :class:`Objective`, over
        ``(w, V)`` for a :class:`FeatureObjective`.
    sample_losses, weighted_dloss, weighted_d2loss : ndarray
        ``l(p_i; y_i)``, ``s_i l'(p_i; y_i)``, ``s_i l''(p_i; y_i)`` per sample (read-only;
        ``s`` the normalised weights, so ``F = sum_i s_i l_i``).  With c outputs
        ``weighted_dloss`` is the n x c ``s_i dl/dp`` and ``weighted_d2loss`` raises
        NotImplementedError (a c x c Hessian per sample).
    stats : SufficientStats
        The partial Hessian's statistics (a :class:`FeatureObjective`'s states only).
    """

    def __init__(self, engine: Engine, head, x: np.ndarray, theta, *, full: bool):
        self.x = _read_only(np.array(x, copy=True))
        self._engine, self._head, self._full = engine, head, full
        d, k = engine.d, engine.k
        self._n_head = head.n_params(d, k)
        self._w, self._M = head.split(self.x, d, k)
        self._a = _read_only(np.ascontiguousarray(head.a(self._w, self._M), dtype=engine.dtype))
        self._theta = self.x[self._n_head:] if full else _read_only(theta)
        self._lock = threading.Lock()
        self._buf: SampleBuffers | None = None
        self._grad: np.ndarray | None = None
        self._stats: SufficientStats | None = None
        self._streamed = False  # a partial product has streamed the data once
        # c outputs: no Gram statistics; every partial product streams the data
        self._vector = head.vector

    @property
    def head_point(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(w, a, theta)`` as the engine takes them: the head's output weights, the
        skip-plus-residual feature weights ``a`` (``V^T w`` for the residual head), and the
        MLP parameters (None for given features).  Read-only views."""
        return self._w, self._a, self._theta

    # -- the first pass ------------------------------------------------------------------
    def _buffers(self) -> SampleBuffers:
        """The per-sample buffers, filled (a gradient pass if no pass ran yet)."""
        buf = self._buf
        if buf is not None and buf.filled:
            return buf
        with self._lock:
            if self._buf is None or not self._buf.filled:
                self._compute_grad()
            return self._buf

    def _compute_grad(self) -> None:
        """One gradient pass (lock held); stores the gradient only when it completed."""
        if self._buf is None:
            self._buf = self._engine.new_buffers()
        F, sx, g, gtheta = self._engine.value_grad(self._w, self._a, self._theta, self._buf,
                                                   need_theta=self._full)
        grad = self._head.grad(self._w, self._M, sx, g)
        if self._full:
            grad = np.concatenate([grad, gtheta])
        self._grad = _read_only(grad.astype(self._engine.dtype, copy=False))

    # -- values ---------------------------------------------------------------------------
    @property
    def F(self) -> float:
        return self._buffers().value

    @property
    def grad(self) -> np.ndarray:
        if self._grad is None:
            with self._lock:
                if self._grad is None:
                    self._compute_grad()
        return self._grad

    def fun_and_grad(self) -> tuple[float, np.ndarray]:
        """``(F, grad)`` (one pass the first time)."""
        grad = self.grad
        return self._buf.value, grad

    def _sample_quantities(self):
        """``(l, r, q)``: the point's buffers, or, for out-of-core and distributed data
        (which keep none), new n-vectors (lazy dask arrays for dask data) from one pass."""
        if self._engine.stateless:
            return self._engine.sample_quantities(self._w, self._a, self._theta)
        buf = self._buffers()
        return buf.l, buf.r, buf.q

    @property
    def sample_losses(self) -> np.ndarray:
        return _read_only(self._sample_quantities()[0])

    @property
    def weighted_dloss(self) -> np.ndarray:
        return _read_only(self._sample_quantities()[1])

    @property
    def weighted_d2loss(self) -> np.ndarray:
        if self._vector:
            raise NotImplementedError(
                "weighted_d2loss is not stored for c outputs: the loss Hessian of a sample "
                "is a c x c matrix (s_i (diag(pi) - pi pi^T) for the cross-entropy, s_i I "
                "for the squared loss); use hessp")
        return _read_only(self._sample_quantities()[2])

    @property
    def stats(self) -> SufficientStats:
        if self._vector:
            raise NotImplementedError("stats (the sufficient statistics A, B, C, g) are not "
                                      "implemented for c outputs; use hessp")
        if self._full:
            raise AttributeError("stats belong to the partial objective F_theta(w, V): use "
                                 "objective.partial(x).at(z).stats")
        if self._stats is None:
            with self._lock:
                if self._stats is None:
                    if self._buf is None:
                        self._buf = self._engine.new_buffers()
                    F, sx, g, G = self._engine.gram(self._w, self._a, self._theta, self._buf)
                    A, B, C = self._head.stats(self._M, G, self._engine.d)
                    grad = self._head.grad(self._w, self._M, sx, g)
                    self._stats = SufficientStats(
                        A=A, B=B, C=C, g=g, F=F, G=G,
                        grad=_read_only(grad.astype(self._engine.dtype, copy=False)))
        return self._stats

    # -- Hessian-vector products -------------------------------------------------------------
    def hessp(self, p: ArrayLike) -> np.ndarray:
        """Hessian at ``x`` times ``p`` (all parameters for an :class:`Objective`, ``(w, V)``
        for a :class:`FeatureObjective`)."""
        p = check_point("p", p, self.x.size, self._engine.dtype)
        dw, dM = self._head.split(p, self._engine.d, self._engine.k)
        if self._full:
            vx, vp, g, vt = self._hvp_pass(dw, dM, p[self._n_head:])
            return np.concatenate([self._head.hvp(self._w, self._M, dw, dM, vx, vp, g),
                                   vt]).astype(self._engine.dtype, copy=False)
        if self._vector or (self._stats is None and not self._streamed):
            self._streamed = True
            vx, vp, g, _ = self._hvp_pass(dw, dM, None)
            return self._head.hvp(self._w, self._M, dw, dM, vx, vp, g).astype(
                self._engine.dtype, copy=False)
        st = self.stats
        return self._head.hvp_stats(self._w, self._M, dw, dM, st.A, st.B, st.C, st.g).astype(
            self._engine.dtype, copy=False)

    def _hvp_pass(self, dw, dM, dtheta):
        """One streamed R-operator pass; the first pass at the state (under the lock) also
        fills the per-sample buffers, later ones only read them."""
        da = self._head.direction_a(self._w, self._M, dw, dM)
        args = (self._w, self._a, self._theta, dw, da, dtheta)
        buf = self._buf
        if buf is None or not buf.filled:
            with self._lock:
                if self._buf is None:
                    self._buf = self._engine.new_buffers()
                if not self._buf.filled:
                    return self._engine.hvp(*args, self._buf, need_theta=self._full)
        return self._engine.hvp(*args, self._buf, need_theta=self._full)

    def __repr__(self) -> str:
        done = [name for name, v in (("F", self._buf is not None and self._buf.filled),
                                     ("grad", self._grad is not None),
                                     ("stats", self._stats is not None)) if v]
        return f"PointState(n_params={self.x.size}, computed={done or 'nothing yet'})"
