"""The residual objective ``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]`` and its
fixed-feature restriction ``F_theta(w, V)``.

Both classes follow ``scipy.optimize.minimize``'s conventions: ``fun(x)``, ``grad(x)``
(``jac``), ``hessp(x, p)``, on a flat float vector.  Expectations are weighted means,
``E[h] = sum_i s_i h_i / sum_i s_i``.  With c outputs (Remark 2 of the paper:
``loss="cross_entropy"``, or the squared loss on an (n, c) target) the same classes compute
``F(W, V, theta) = E[l(W (x + V f_theta(x)); y)]``, ``W`` c x d (docs/vector_outputs.md);
``vector`` and ``n_outputs`` tell which.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._data import prepare
from ._engine import Engine
from ._head_objective import HeadObjective
from ._schema import validated
from ._validation import as_float_array
from .features import MLPLayout
from .losses import Loss, get_loss
from .state import PointState, SufficientStats

__all__ = ["FeatureObjective", "Objective", "PointState", "SufficientStats"]

# Largest dense Hessian that hessian() builds (a 20000 x 20000 float64 array is 3.2 GB).
MAX_DENSE_HESSIAN = 20000



class FeatureObjective(HeadObjective):
    r"""``F_theta(w, V) = E[l(w^T (x + V phi); y)]`` for a given feature matrix ``Phi``.

    Works for any feature map: ``Phi = f_theta(X)`` from the package's own network
    (:meth:`Objective.partial`) or from a network trained elsewhere.

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs.  float32 stays float32 (then every result is float32); integer and other
        float types become float64; a non-C-contiguous array is copied.  NaN/inf rejected.
        An ``np.memmap`` or zarr array is streamed block by block in its own dtype, a dask
        array (``X``, ``Phi``, ``y`` or ``sample_weight``) is evaluated by tasks on its row
        chunks; both keep no per-sample n-vector (docs/distributed.md).
    Phi : array of shape (n, k)
        Features ``phi_i = f_theta(x_i)``, converted to ``X``'s dtype.
    y : array of shape (n,) or (n, c)
        Targets; labels -1/+1 for the logistic and smoothed-hinge losses; integer labels
        ``0..c-1`` for the cross-entropy; an (n, c) array for the squared loss with c
        outputs.
    loss : str, Loss or callable
        ``"squared"``, ``"logistic"``, ``"smoothed_hinge"``, ``"cross_entropy"`` or a
        user-defined loss (see :mod:`resnet_core.losses`).
    head : {"residual", "skip"}
        ``p = w^T (x + V phi)`` or ``p = w^T x + v^T phi``.
    sample_weight : array of shape (n,), optional
        Non-negative weights with a positive sum.
    feature_bias : bool
        Remark 1: append a constant 1 to the features, a bias column in ``V``.  The
        features are then ``phi_i = [Phi_i, 1]`` and ``k = Phi.shape[1] + 1`` (the last
        column of ``V``, or the last entry of ``v``, multiplies the constant); the column
        is added inside the kernels, ``Phi`` is not copied.
    n_threads : int, optional
        Threads of the kernels (default: all cores, or ``OMP_NUM_THREADS``).
    chunk_size : int, optional
        Samples per chunk of the streaming kernels.
    n_classes : int, optional
        Cross-entropy only: the number of classes c (default ``max(y) + 1``).
    progress : bool
        Show a tqdm bar over the row blocks of a pass that runs longer than a few seconds
        (also the attribute ``progress``).
    copy : bool
        Keep a private copy of the in-memory arrays (``X``, ``Phi``, ``y``,
        ``sample_weight``).  By default a NumPy array that is usable as is (C-contiguous,
        of the working dtype) is used **without a copy**: changing it afterwards changes
        the objective.  Each pass checks what it read (a NaN or inf written into the data
        later is a ValueError naming the row block, never a silent ``nan``) and that a
        memory-mapped file still has its size (a file truncated under the objective is a
        ValueError, never a SIGBUS); ``copy=True`` makes the objective independent of the
        caller's arrays (out-of-core and dask arrays are never copied).

    Notes
    -----
    With c outputs (cross-entropy, or the squared loss on an (n, c) ``y``; ``n_outputs``
    is c) the point is ``[vec(W), vec(V)]`` or ``[vec(W), vec(B)]`` (``W`` c x d, ``B``
    c x k), ``predict`` returns (n, c) scores, every ``hessp`` streams the data, and
    ``stats`` / ``hessian`` raise NotImplementedError (docs/vector_outputs.md).

    The flat point is ``z = [w, vec(V)]`` (``V`` row-major, d x k) or ``[w, v]``.  With
    ``u = x + V phi``, ``p = w^T u``, ``g = E[l' phi]``:

    - ``grad_w = E[l' u]``, ``grad_V = w g^T``;
    - ``H_w = A dw + B dV^T w + dV g``, ``H_V = w (B^T dw + C dV^T w)^T + dw g^T`` with the
      statistics of :meth:`stats`.

    ``hessp`` streams the data once at a new point (``O(n (d + k))``); the second product
    at the same point builds the statistics in one Gram pass, after which every product
    costs ``O(d^2 + d k + k^2)`` and does not touch the data.
    """

    @validated
    def __init__(self, X: ArrayLike, Phi: ArrayLike, y: ArrayLike, *,
                 loss: str | Loss | Callable = "logistic", head: str = "residual",
                 sample_weight: ArrayLike | None = None, feature_bias: bool = False,
                 n_threads: int | None = None, chunk_size: int | None = None,
                 n_classes: int | None = None, progress: bool = False, copy: bool = False):
        if Phi is None:
            raise TypeError("Phi must be an array of shape (n, k) (the features); got None")
        data = prepare(X, y, loss=get_loss(loss), sample_weight=sample_weight, Phi=Phi,
                       n_threads=n_threads, n_classes=n_classes, copy=copy)
        engine = data.engine(data.Phi.shape[1] + bool(feature_bias), feature_bias=feature_bias,
                             n_threads=n_threads, chunk_size=chunk_size)
        engine.progress = bool(progress)
        self._init(engine, head, theta=None)

    _point_name = "z"

    @classmethod
    def from_engine(cls, engine: Engine, head: str = "residual", theta=None, baselines=None):
        """The objective of ``head`` over an existing engine (no data copied or re-checked):
        ``theta`` the frozen MLP parameters when the engine streams an MLP's features,
        ``baselines`` a ``{radius: LinearBaselineResult}`` cache to share."""
        self = cls.__new__(cls)
        self._init(engine, head, theta, baselines)
        return self

    def _init(self, engine, head, theta, baselines=None):
        self._setup(engine, head, 0, baselines)
        self._theta = theta  # frozen MLP parameters when the engine computes the features

    @property
    def theta(self) -> np.ndarray | None:
        """The frozen MLP parameters when the features stream from an MLP
        (:meth:`Objective.partial`), None when ``Phi`` was given."""
        return None if self._theta is None else self._theta.copy()

    def _new_state(self, z: np.ndarray) -> PointState:
        return PointState(self._engine, self._head, z, self._theta, full=False)

    @property
    def Phi(self) -> np.ndarray:
        """The feature matrix, n x k (computed, ``O(n k)`` memory, when it streams from an
        MLP; with ``feature_bias`` a new array whose last column is 1, the objective's own
        passes never make it)."""
        if self._theta is None:
            Phi = self._engine.Phi
            if self.feature_bias and hasattr(Phi, "rechunk"):  # dask: stays lazy
                import dask.array as da
                ones = da.ones((self.n_samples, 1), dtype=self.dtype, chunks=(Phi.chunks[0], 1))
                return da.concatenate([Phi, ones], axis=1)
            if self.feature_bias:
                return np.column_stack([Phi, np.ones(self.n_samples, self.dtype)])
            return Phi
        return self._engine.predict(*self.zero_head(), self._theta, features=True)[1]

    def unpack(self, z: ArrayLike) -> dict:
        """``{"w": w, "V": V}`` (or ``"v"``; ``"W"``, ``"V"`` or ``"B"`` with c outputs) as
        views of ``z``."""
        z = self.validate_point(z, "z")
        w, M = self._head.split(z, self.d, self.k)
        nw, nm = self._head_names()
        return {nw: w, nm: M}

    def pack(self, w: ArrayLike, M: ArrayLike) -> np.ndarray:
        """Flat ``[w, vec(V)]`` (``M = V``, shape (d, k)) or ``[w, v]`` (``M = v``); with c
        outputs ``[vec(W), vec(V)]`` or ``[vec(W), vec(B)]``."""
        return self._pack_head(w, M)

    def stats(self, z: ArrayLike) -> SufficientStats:
        """Sufficient statistics ``A, B, C, g`` (and ``F``, the gradient) at ``z``, in one
        pass over the data (a weighted Gram matrix of ``[X, Phi]``): ``at(z).stats``.
        Scalar outputs only (NotImplementedError with c outputs)."""
        self._not_for_vectors("stats (the sufficient statistics)")
        return self.at(z).stats

    def hessian(self, z: ArrayLike) -> np.ndarray:
        """Dense Hessian of ``F_theta`` at ``z``, of size ``n_params`` squared (one pass).

        Residual head: ``H_ww = A``, ``H_wV[a, (i, j)] = w_i B[a, j] + [a = i] g_j``,
        ``H_VV = (w w^T) kron C``.
        """
        self._not_for_vectors("the dense partial hessian")
        if self.n_params > MAX_DENSE_HESSIAN:
            raise ValueError(
                f"hessian is for small problems (n_params <= {MAX_DENSE_HESSIAN}); this one "
                f"has {self.n_params}: use hessp, or stats for the structured form"
            )
        state = self.at(z)
        st = state.stats
        w, M = self._head.split(state.x, self.d, self.k)
        return self._head.hessian(w, M, st.A, st.B, st.C, st.g)

    def predict(self, z: ArrayLike, X: ArrayLike | None = None,
                Phi: ArrayLike | None = None) -> np.ndarray:
        """Predictions ``p = w^T (x + V phi)`` (or ``w^T x + v^T phi``) on the training inputs,
        or on new inputs ``X`` with their features: ``Phi`` (n_new x k, without the constant
        column of ``feature_bias``) for given features, computed by the frozen MLP when the
        objective streams them (:meth:`Objective.partial`).  No labels needed."""
        w, M, a = self._split_head(self.validate_point(z, "z"))
        if X is None:
            if Phi is not None:
                raise ValueError("Phi of new inputs needs their X too")
            return self._engine.predict(w, a, self._theta)[0]
        X = self._new_inputs(X)
        if self._theta is None:
            if Phi is None:
                raise ValueError("predict on new inputs needs their features Phi (this "
                                 "objective was built from given features)")
            k0 = self.k - int(self.feature_bias)
            Phi = as_float_array("Phi", Phi, ndim=2, dtype=self.dtype, shape=(X.shape[0], k0))
        elif Phi is not None:
            raise ValueError("the features stream from the MLP here: give X only")
        return self._engine.predict(w, a, self._theta, X=X, Phi=Phi)[0]

    def predict_proba(self, z: ArrayLike, X: ArrayLike | None = None,
                      Phi: ArrayLike | None = None) -> np.ndarray:
        """Class probabilities (n, c) of :meth:`predict`'s scores: the softmax of each row
        for the cross-entropy, ``[P(y=-1), P(y=+1)]`` for the scalar logistic loss;
        ValueError for other losses."""
        return self._proba(self.predict(z, X, Phi))


class Objective(HeadObjective):
    r"""``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]`` with an MLP ``f_theta``.

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs (float32 kept, other numeric types become float64; NaN/inf rejected).
        A memory-mapped C-contiguous array is used in place.
    y : array of shape (n,) or (n, c)
        Targets, as in :class:`FeatureObjective`.
    loss : str, Loss or callable
        As in :class:`FeatureObjective`; ``"cross_entropy"`` on integer labels (or
        ``"squared"`` on an (n, c) ``y``) gives c outputs.
    widths : tuple of int
        Widths ``h_1, ..., h_L`` of the MLP; ``k = widths[-1]`` (``+ 1`` with
        ``feature_bias``).
    activation : {"tanh", "relu", "softplus", "sigmoid", "identity"}
    bias : bool
        Biases ``b_l`` in the MLP's layers.
    head : {"residual", "skip"}
    feature_bias : bool
        Remark 1: append a constant 1 to the features, a bias column in ``V``:
        ``phi(x) = [f_theta(x); 1]``, the last column of ``V`` (last entry of ``v``)
        multiplies the constant.
    sample_weight, n_threads, chunk_size, n_classes, progress, copy
        As in :class:`FeatureObjective` (out-of-core and dask arrays too, with one output
        or c outputs; in-memory data are used without a copy unless ``copy=True``).

    Notes
    -----
    Flat parameters: ``[w (d), V (d k, row-major) or v (k), W_1 (h_1 d), b_1, ..., W_L, b_L]``;
    with c outputs ``[W (c d), V (d k) or B (c k), W_1, b_1, ...]``, all row-major
    (docs/vector_outputs.md).
    Gradients by back-propagation and Hessian-vector products by the R-operator (forward
    over reverse), both streamed over chunks of samples: extra memory ``O(chunk x widths)``
    plus two n-vectors, whatever ``n``.
    """

    @validated
    def __init__(self, X: ArrayLike, y: ArrayLike, *, loss: str | Loss | Callable = "logistic",
                 widths: tuple[int, ...] | int = (64, 64), activation: str = "tanh",
                 bias: bool = True, head: str = "residual", feature_bias: bool = False,
                 sample_weight: ArrayLike | None = None, n_threads: int | None = None,
                 chunk_size: int | None = None, n_classes: int | None = None,
                 progress: bool = False, copy: bool = False):
        data = prepare(X, y, loss=get_loss(loss), sample_weight=sample_weight,
                       n_threads=n_threads, n_classes=n_classes, copy=copy)
        self.layout = MLPLayout(data.d, widths, bias, activation)
        self.widths, self.activation, self.bias = self.layout.widths, activation, bias
        engine = data.engine(self.layout.k + bool(feature_bias), dims=self.layout.dims,
                             bias=bias, act=self.layout.act_code, feature_bias=feature_bias,
                             n_threads=n_threads, chunk_size=chunk_size)
        engine.progress = bool(progress)
        self._setup(engine, head, self.layout.n_params)

    def init(self, seed: int | None = 0) -> np.ndarray:
        """A random start: LeCun-normal layers (zero biases), ``w ~ N(0, I/d)``,
        ``V ~ N(0, I/(d k))`` (``v ~ N(0, I/k)``; with c outputs ``W`` and ``B`` row by
        row the same, and c = 1 gives the scalar start) so that ``V f(x)`` starts small next to
        ``x``; with ``feature_bias`` the bias column (last entry of ``v``) starts at zero
        and the rest is the start without it (same seed, same numbers).

        ``seed`` defaults to 0 (the package's rule for seeds, docs/api.md): ``init()`` is
        reproducible; ``seed=None`` asks for fresh entropy (it was the default before)."""
        rng = np.random.default_rng(seed)
        k, c = self.layout.k, self.n_outputs
        w = rng.standard_normal((c, self.d) if self.vector else self.d) / np.sqrt(self.d)
        if self.head == "residual":
            M = rng.standard_normal((self.d, k)) / np.sqrt(self.d * k)
        else:
            M = rng.standard_normal((c, k) if self.vector else k) / np.sqrt(k)
        if self.feature_bias:
            M = np.concatenate([M, np.zeros(M.shape[:-1] + (1,))], axis=-1)
        theta = self.layout.init(rng)
        return np.concatenate([w.ravel(), M.ravel(), theta]).astype(self.dtype)

    def unpack(self, x: ArrayLike) -> dict:
        """``{"w", "V" or "v", "layers": [(W_l, b_l), ...]}`` as views of ``x`` (``"W"``,
        ``"V"`` or ``"B"`` with c outputs)."""
        x = self.validate_point(x)
        w, M = self._head.split(x, self.d, self.k)
        nw, nm = self._head_names()
        return {nw: w, nm: M, "layers": self.layout.unpack(x[self.n_head_params:])}

    def pack(self, w: ArrayLike, M: ArrayLike, layers) -> np.ndarray:
        """Flat parameters from ``w``, ``V`` (or ``v``) and ``[(W_l, b_l), ...]``."""
        head = self._pack_head(w, M)
        return np.concatenate([head, self.layout.pack(layers, dtype=self.dtype)])

    def _new_state(self, x: np.ndarray) -> PointState:
        return PointState(self._engine, self._head, x, None, full=True)

    def _split(self, x: ArrayLike):
        w, M, a = self._split_head(x)
        return w, M, a, x[self.n_head_params:]

    def features(self, x: ArrayLike, X: ArrayLike | None = None) -> np.ndarray:
        """``Phi = f_theta(X)`` (n x k) at the ``theta`` inside ``x``, on the training inputs
        or on new inputs ``X``; with ``feature_bias`` the rows are ``[f_theta(x_i), 1]``."""
        w, M, a, theta = self._split(self.validate_point(x))
        X = None if X is None else self._new_inputs(X)
        return self._engine.predict(w, a, theta, features=True, X=X)[1]

    def predict(self, x: ArrayLike, X: ArrayLike | None = None) -> np.ndarray:
        """Predictions ``p_i`` on the training inputs, or on new inputs ``X`` (no labels)."""
        w, M, a, theta = self._split(self.validate_point(x))
        X = None if X is None else self._new_inputs(X)
        return self._engine.predict(w, a, theta, X=X)[0]

    def predict_proba(self, x: ArrayLike, X: ArrayLike | None = None) -> np.ndarray:
        """Class probabilities (n, c) of :meth:`predict`'s scores: the softmax of each row
        for the cross-entropy, ``[P(y=-1), P(y=+1)]`` for the scalar logistic loss;
        ValueError for other losses."""
        return self._proba(self.predict(x, X))

    @validated
    def partial(self, x, *, materialize: bool = False) -> FeatureObjective:
        """The :class:`FeatureObjective` of ``F_theta`` at the ``theta`` inside ``x``.

        By default the features are recomputed chunk by chunk in each pass, so memory does
        not grow with ``n``; the sufficient statistics (what ``hessp``, ``hessian`` and the
        certificates use) are then made in one pass and cached.  ``materialize=True``
        computes ``Phi`` once and keeps it (``n x k`` memory, faster repeated passes).
        The point of the result is ``x[:n_head_params]`` (``[w, vec(V)]``).  The result has
        the same ``feature_bias`` (the kept ``Phi`` is then ``f_theta(X)`` alone: the
        constant column is added on the fly) and shares this objective's linear baselines.
        """
        x = self.validate_point(x)
        w, M, a, theta = self._split(x)
        theta = theta.copy()
        eng = self._engine
        if materialize:
            f = eng.predict(w, a, theta, features=True, constant=False)[1]
            if hasattr(f, "persist"):  # dask: the features stay on the workers
                f = f.persist()
            sub = eng.derive(k=self.k, Phi=f, feature_bias=self.feature_bias)
            return FeatureObjective.from_engine(sub, self.head, None, self._baselines)
        sub = eng.derive(k=self.k, dims=eng.dims, bias=eng.bias, act=eng.act,
                         feature_bias=self.feature_bias)
        return FeatureObjective.from_engine(sub, self.head, theta, self._baselines)
