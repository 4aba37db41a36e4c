"""What the two objectives share (:class:`HeadObjective`): the engine over the data, the
head, the point states, packing and unpacking the head's parameters, class probabilities.
The objectives themselves are :class:`resnet_core.objective.FeatureObjective` and
:class:`resnet_core.objective.Objective`."""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike

from ._engine import Engine
from ._schema import check
from ._threads import resolve_n_threads
from ._validation import as_float_array, check_choice, check_point
from .heads import HEADS, make_head
from .linear import LinearBaselineResult, baseline_on_engine, linear_baseline
from .losses import Loss
from .state import PointState


class HeadObjective:
    """What FeatureObjective and Objective share: the data, the head, the point states
    (a subclass gives ``_new_state(x)`` and ``_point_name``)."""

    _point_name = "x"

    def _setup(self, engine: Engine, head: str, n_theta: int, baselines=None):
        check_choice("head", head, HEADS)
        self._engine = engine
        self.vector = engine.vector
        self.n_outputs = engine.c
        self.n_classes = engine.c if self.vector and engine.loss.labels else None
        self._head = make_head(head, engine.c, engine.vector)
        self.head = head
        self.loss: Loss = engine.loss
        self.n_samples, self.d = engine.n, engine.d
        self.k = engine.k
        self.feature_bias = bool(engine.feature_bias)
        self.dtype = engine.dtype
        self.n_head_params = self._head.n_params(self.d, self.k)
        self.n_params = self.n_head_params + n_theta
        self._local = threading.local()  # .state: the last point this thread asked for
        # radius -> LinearBaselineResult; shared with partial()s (same data, same baseline)
        self._baselines = {} if baselines is None else baselines

    # -- the data ---------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The compiled evaluator over this objective's data (the :class:`resnet_core._engine.
        EngineProtocol` contract): what optimisers, certificates and pointfiles run their
        passes on.  Shared, not copied; it holds nothing about a point."""
        return self._engine

    @property
    def X(self) -> np.ndarray:
        """The inputs (validated; the caller's array when it was usable as is)."""
        return self._engine.X

    @property
    def y(self) -> np.ndarray:
        """The targets: (n,), (n, c) for the vector squared loss, the labels (n,) for the
        cross-entropy."""
        y = self._engine.y
        return y[:, 0] if self.n_classes is not None else y

    @property
    def sample_weight(self) -> np.ndarray:
        """The normalised sample weights ``s`` (summing to one): ``E[h] = sum_i s_i h_i``
        (a lazy dask array for dask data, a new n-vector for out-of-core data)."""
        s = self._engine.s
        return s if hasattr(s, "compute") or isinstance(s, np.ndarray) else np.asarray(s)

    @property
    def chunk_size(self) -> int:
        """Samples per chunk of the streaming kernels."""
        return self._engine.chunk

    @property
    def n_threads(self) -> int:
        """Threads of the kernels."""
        return self._engine.n_threads

    @n_threads.setter
    def n_threads(self, value):
        self._engine.n_threads = resolve_n_threads(value)

    @property
    def progress(self) -> bool:
        """Whether a pass over the data shows a tqdm bar of its row blocks once it has run
        a few seconds (out-of-core and dask data: one tick per block or task)."""
        return self._engine.progress

    @progress.setter
    def progress(self, value: bool):
        self._engine.progress = check("progress", value)

    def linear_baseline(self, radius: float | None = None) -> LinearBaselineResult:
        """The best linear predictor on this objective's data, loss and weights
        (:func:`resnet_core.linear_baseline`), computed once per radius and cached."""
        if radius not in self._baselines:
            eng = self._engine
            if self.vector:  # c outputs: W* of shape (c, d) (linear_vector; dask: tasks)
                kw = {"loss": eng.loss.name}
                if self.n_classes is not None:
                    kw["n_classes"] = self.n_classes
                self._baselines[radius] = linear_baseline(
                    eng.X, self.y, **kw, sample_weight=eng.s, radius=radius,
                    n_threads=eng.n_threads)
            else:
                self._baselines[radius] = baseline_on_engine(eng.derive(k=0), radius=radius)
        return self._baselines[radius]

    # -- points -------------------------------------------------------------------------------
    def validate_point(self, x: ArrayLike, name: str | None = None) -> np.ndarray:
        """``x`` as a C-contiguous vector of this objective's dtype and size ``n_params``,
        finite (ValueError naming ``name`` otherwise: by default ``x`` for an
        :class:`Objective`, ``z`` for a :class:`FeatureObjective`)."""
        return check_point(name or self._point_name, x, self.n_params, self.dtype)

    def at(self, x: ArrayLike) -> PointState:
        """The :class:`~resnet_core.state.PointState` of ``x``: ``F``, the gradient, the
        per-sample quantities, ``hessp`` (and, for a :class:`FeatureObjective`, the
        sufficient statistics), each computed once, when first asked for.  Each thread's
        last state is remembered, so its calls at the same point share it, and a thread
        gets exactly the numbers it would get running alone."""
        x = self.validate_point(x)
        state = getattr(self._local, "state", None)
        if state is not None and np.array_equal(state.x, x):
            return state
        state = self._new_state(x)
        self._local.state = state
        return state

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_local"]  # remembered points stay with this process
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def fun(self, x: ArrayLike) -> float:
        """Objective value at ``x`` (a Python float)."""
        return self.at(x).F

    def grad(self, x: ArrayLike) -> np.ndarray:
        """Gradient at ``x`` (the ``jac`` of ``scipy.optimize.minimize``)."""
        return self.at(x).grad.copy()

    def fun_and_grad(self, x: ArrayLike):
        """``(F(x), grad F(x))`` in one pass (``jac=True`` in ``scipy.optimize.minimize``)."""
        F, grad = self.at(x).fun_and_grad()
        return F, grad.copy()

    def hessp(self, x: ArrayLike, p: ArrayLike) -> np.ndarray:
        """Hessian at ``x`` times ``p`` (``scipy.optimize.minimize``'s ``hessp``); see the
        class notes for what it costs."""
        return self.at(x).hessp(p)

    def _split_head(self, x: ArrayLike):
        w, M = self._head.split(x, self.d, self.k)
        return w, M, np.ascontiguousarray(self._head.a(w, M), dtype=self.dtype)

    def _head_names(self) -> tuple[str, str]:
        """Names of the head's two blocks: ``("w", "V")``, ``("w", "v")``; ``("W", "V")``,
        ``("W", "B")`` with c outputs."""
        if self.vector:
            return "W", ("V" if self.head == "residual" else "B")
        return "w", ("V" if self.head == "residual" else "v")

    def zero_head(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w, a)`` of zeros, as the engine takes them (a pass for the features only)."""
        if self.vector:
            c = self.n_outputs
            return np.zeros((c, self.d), self.dtype), np.zeros((c, self.k), self.dtype)
        return np.zeros(self.d, self.dtype), np.zeros(self.k, self.dtype)

    def _pack_head(self, w: ArrayLike, M: ArrayLike) -> np.ndarray:
        """Flat ``[w, vec(V)]`` (``M = V``, shape (d, k)) or ``[w, v]`` (``M = v``); with c
        outputs ``[vec(W), vec(V)]`` or ``[vec(W), vec(B)]``, all row-major."""
        if self.vector:
            c, (nw, nm) = self.n_outputs, self._head_names()
            W = as_float_array(nw, w, ndim=2, dtype=self.dtype, shape=(c, self.d))
            shape = (self.d, self.k) if self.head == "residual" else (c, self.k)
            M = as_float_array(nm, M, ndim=2, dtype=self.dtype, shape=shape)
            return np.concatenate([W.ravel(), M.ravel()])
        w = as_float_array("w", w, ndim=1, dtype=self.dtype, shape=(self.d,))
        if self.head == "residual":
            M = as_float_array("V", M, ndim=2, dtype=self.dtype, shape=(self.d, self.k))
        else:
            M = as_float_array("v", M, ndim=1, dtype=self.dtype, shape=(self.k,))
        return np.concatenate([w, M.ravel()])

    def _proba(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities from scores: the softmax of each row (cross-entropy), or
        ``[P(y=-1), P(y=+1)] = [sigmoid(-p), sigmoid(p)]`` (the scalar logistic loss)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.n_classes is not None:
            e = np.exp(s - s.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        elif self.loss.proba is not None:
            out = self.loss.proba(s)
        else:
            raise ValueError("predict_proba needs a probabilistic loss (cross_entropy, or "
                             f"logistic with labels -1/+1); this objective's loss is "
                             f"{self.loss.name!r}: use predict for its scores")
        return out.astype(self.dtype, copy=False)

    def _not_for_vectors(self, what: str) -> None:
        if self.vector:
            raise NotImplementedError(
                f"{what} is not implemented for c outputs (n_outputs = {self.n_outputs}): "
                "it needs the per-sample c x c loss Hessians; use hessp")

    def _new_inputs(self, X: ArrayLike) -> np.ndarray:
        """New inputs, validated like the training ones and in their dtype."""
        X = as_float_array("X", X, ndim=2, dtype=self.dtype, shape=(None, self.d))
        return X
