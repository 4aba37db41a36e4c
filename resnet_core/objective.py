"""The residual objective ``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]`` and its
fixed-feature restriction ``F_theta(w, V)``.

Both classes follow ``scipy.optimize.minimize``'s conventions: ``fun(x)``, ``grad(x)``
(``jac``), ``hessp(x, p)``, on a flat float vector.  Expectations are weighted means,
``E[h] = sum_i s_i h_i / sum_i s_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._engine import Engine
from ._validation import (
    as_float_array,
    check_choice,
    check_data,
    check_point,
    check_sample_weight,
)
from .features import MLPLayout
from .heads import HEADS
from .linear import linear_baseline
from .losses import Loss, get_loss

# Largest dense Hessian that hessian() builds (a 20000 x 20000 float64 array is 3.2 GB).
MAX_DENSE_HESSIAN = 20000


@dataclass
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


class _HeadObjective:
    """What FeatureObjective and Objective share: the head, the point cache, the checks."""

    def _setup(self, engine: Engine, head: str, n_theta: int):
        check_choice("head", head, HEADS)
        self._engine = engine
        self._head = HEADS[head]
        self.head = head
        self.loss: Loss = engine.loss
        self.n_samples, self.d = engine.n, engine.d
        self.k = engine.k
        self.feature_bias = bool(engine.feature_bias)
        self.dtype = engine.dtype
        self._n_head = self._head.n_params(self.d, self.k)
        self.n_params = self._n_head + n_theta
        self._last = None  # (x, F, grad) of the last fun/grad call
        self._baselines = {}  # radius -> LinearBaselineResult, shared with partial()s

    def linear_baseline(self, radius: float | None = None):
        """The best linear predictor on this objective's data, loss and weights
        (:func:`resnet_core.linear_baseline`), computed once per radius and cached."""
        if radius not in self._baselines:
            eng = self._engine
            self._baselines[radius] = linear_baseline(
                eng.X, eng.y, loss=eng.loss, sample_weight=eng.s, radius=radius,
                n_threads=eng.n_threads)
        return self._baselines[radius]

    @property
    def n_threads(self) -> int:
        return self._engine.n_threads

    @n_threads.setter
    def n_threads(self, value):
        from ._threads import resolve_n_threads

        self._engine.n_threads = resolve_n_threads(value)

    def _point(self, x, name="x"):
        return check_point(name, x, self.n_params, self.dtype)

    def _split_head(self, x: ArrayLike):
        w, M = self._head.split(x, self.d, self.k)
        return w, M, np.ascontiguousarray(self._head.a(w, M), dtype=self.dtype)

    def _pack_head(self, w: ArrayLike, M: ArrayLike) -> np.ndarray:
        """Flat ``[w, vec(V)]`` (``M = V``, shape (d, k)) or ``[w, v]`` (``M = v``)."""
        w = as_float_array("w", w, ndim=1, dtype=self.dtype, shape=(self.d,))
        if self.head == "residual":
            M = as_float_array("V", M, ndim=2, dtype=self.dtype, shape=(self.d, self.k))
        else:
            M = as_float_array("v", M, ndim=1, dtype=self.dtype, shape=(self.k,))
        return np.concatenate([w, M.ravel()])

    def fun(self, x: ArrayLike) -> float:
        """Objective value at ``x`` (a Python float)."""
        return self.fun_and_grad(x)[0]

    def grad(self, x: ArrayLike) -> np.ndarray:
        """Gradient at ``x`` (the ``jac`` of ``scipy.optimize.minimize``)."""
        return self.fun_and_grad(x)[1]

    def fun_and_grad(self, x: ArrayLike):
        """``(F(x), grad F(x))`` in one pass; the last result is remembered, so ``fun``
        then ``grad`` at the same point cost one pass."""
        x = self._point(x)
        if self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1], self._last[2].copy()
        F, grad = self._fun_and_grad(x)
        self._last = (x.copy(), F, grad)
        return F, grad.copy()


class FeatureObjective(_HeadObjective):
    r"""``F_theta(w, V) = E[l(w^T (x + V phi); y)]`` for a given feature matrix ``Phi``.

    Works for any feature map: ``Phi = f_theta(X)`` from the package's own network
    (:meth:`Objective.partial`) or from a network trained elsewhere.

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs.  float32 stays float32 (then every result is float32); integer and other
        float types become float64; a non-C-contiguous array is copied.  NaN/inf rejected.
    Phi : array of shape (n, k)
        Features ``phi_i = f_theta(x_i)``, converted to ``X``'s dtype.
    y : array of shape (n,)
        Targets; labels -1/+1 for the logistic and smoothed-hinge losses.
    loss : str, Loss or callable
        ``"squared"``, ``"logistic"``, ``"smoothed_hinge"`` or a user-defined loss (see
        :mod:`resnet_core.losses`).
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

    Notes
    -----
    The flat point is ``z = [w, vec(V)]`` (``V`` row-major, d x k) or ``[w, v]``.  With
    ``u = x + V phi``, ``p = w^T u``, ``g = E[l' phi]``:

    - ``grad_w = E[l' u]``, ``grad_V = w g^T``;
    - ``H_w = A dw + B dV^T w + dV g``, ``H_V = w (B^T dw + C dV^T w)^T + dw g^T`` with the
      statistics of :meth:`stats`.

    ``hessp`` streams the data once at a new point (``O(n (d + k))``); the second product
    at the same point builds the statistics in one Gram pass, after which every product
    costs ``O(d^2 + d k + k^2)`` and does not touch the data.
    """

    def __init__(self, X: ArrayLike, Phi: ArrayLike, y: ArrayLike, *,
                 loss: str | Loss | Callable = "logistic", head: str = "residual",
                 sample_weight: ArrayLike | None = None, feature_bias: bool = False,
                 n_threads: int | None = None, chunk_size: int | None = None):
        X, y = check_data(X, y)
        Phi = as_float_array("Phi", Phi, ndim=2, dtype=X.dtype, shape=(X.shape[0], None))
        if Phi.shape[1] == 0:
            raise ValueError("Phi must have at least one column (feature); got shape "
                             f"{Phi.shape}")
        loss = get_loss(loss)
        loss.check_labels(y)
        s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        engine = Engine(X, y, s, loss, Phi.shape[1] + bool(feature_bias), Phi=Phi,
                        feature_bias=feature_bias, n_threads=n_threads, chunk_size=chunk_size)
        self._init(engine, head, theta=None)

    @classmethod
    def _from_engine(cls, engine: Engine, head: str, theta):
        self = cls.__new__(cls)
        self._init(engine, head, theta)
        return self

    def _init(self, engine, head, theta):
        self._setup(engine, head, 0)
        self._theta = theta  # frozen MLP parameters when the engine computes the features
        self._hvp_at = None  # point of the last streamed product
        self._stats_at = None  # (z, SufficientStats)

    @property
    def Phi(self) -> np.ndarray:
        """The feature matrix, n x k (computed, ``O(n k)`` memory, when it streams from an
        MLP; with ``feature_bias`` a new array whose last column is 1, the objective's own
        passes never make it)."""
        if self._theta is None:
            if self.feature_bias:
                return np.column_stack([self._engine.Phi, np.ones(self.n_samples, self.dtype)])
            return self._engine.Phi
        return self._engine.predict(np.zeros(self.d, self.dtype), np.zeros(self.k, self.dtype),
                                    self._theta, features=True)[1]

    def unpack(self, z: ArrayLike) -> dict:
        """``{"w": w, "V": V}`` (or ``"v"``) as views of ``z``."""
        z = self._point(z, "z")
        w, M = self._head.split(z, self.d, self.k)
        return {"w": w, ("V" if self.head == "residual" else "v"): M}

    def pack(self, w: ArrayLike, M: ArrayLike) -> np.ndarray:
        """Flat ``[w, vec(V)]`` (``M = V``, shape (d, k)) or ``[w, v]`` (``M = v``)."""
        return self._pack_head(w, M)

    def _fun_and_grad(self, z: ArrayLike):
        w, M, a = self._split_head(z)
        F, sx, g, _ = self._engine.value_grad(w, a, self._theta, need_theta=False, key=z)
        return F, self._head.grad(w, M, sx, g).astype(self.dtype, copy=False)

    def stats(self, z: ArrayLike) -> SufficientStats:
        """Sufficient statistics ``A, B, C, g`` (and ``F``, the gradient) at ``z``, in one
        pass over the data (a weighted Gram matrix of ``[X, Phi]``); cached per point."""
        z = self._point(z, "z")
        if self._stats_at is not None and np.array_equal(self._stats_at[0], z):
            return self._stats_at[1]
        w, M, a = self._split_head(z)
        F, sx, g, G = self._engine.gram(w, a, self._theta, key=z)
        A, B, C = self._head.stats(M, G, self.d)
        st = SufficientStats(A=A, B=B, C=C, g=g, F=F,
                             grad=self._head.grad(w, M, sx, g).astype(self.dtype, copy=False),
                             G=G)
        self._stats_at = (z.copy(), st)
        return st

    def hessp(self, z: ArrayLike, p: ArrayLike) -> np.ndarray:
        """Hessian of ``F_theta`` at ``z`` times ``p`` (``scipy.optimize.minimize``'s
        ``hessp``).  See the class notes for what it costs."""
        z = self._point(z, "z")
        p = self._point(p, "p")
        w, M, a = self._split_head(z)
        dw, dM = self._head.split(p, self.d, self.k)
        fresh = self._hvp_at is None or not np.array_equal(self._hvp_at, z)
        cached = self._stats_at is not None and np.array_equal(self._stats_at[0], z)
        if fresh and not cached:
            self._hvp_at = z.copy()
            da = self._head.direction_a(w, M, dw, dM)
            vx, vp, g, _ = self._engine.hvp(w, a, self._theta, dw, da, None,
                                            need_theta=False, key=z)
            return self._head.hvp(w, M, dw, dM, vx, vp, g).astype(self.dtype, copy=False)
        st = self.stats(z)
        return self._head.hvp_stats(w, M, dw, dM, st.A, st.B, st.C, st.g).astype(
            self.dtype, copy=False)

    def hessian(self, z: ArrayLike) -> np.ndarray:
        """Dense Hessian of ``F_theta`` at ``z``, of size ``n_params`` squared (one pass).

        Residual head: ``H_ww = A``, ``H_wV[a, (i, j)] = w_i B[a, j] + [a = i] g_j``,
        ``H_VV = (w w^T) kron C``.
        """
        if self.n_params > MAX_DENSE_HESSIAN:
            raise ValueError(
                f"hessian is for small problems (n_params <= {MAX_DENSE_HESSIAN}); this one "
                f"has {self.n_params}: use hessp, or stats for the structured form"
            )
        z = self._point(z, "z")
        st = self.stats(z)
        w, M = self._head.split(z, self.d, self.k)
        return self._head.hessian(w, M, st.A, st.B, st.C, st.g)


class Objective(_HeadObjective):
    r"""``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]`` with an MLP ``f_theta``.

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs (float32 kept, other numeric types become float64; NaN/inf rejected).
        A memory-mapped C-contiguous array is used in place.
    y : array of shape (n,)
        Targets; labels -1/+1 for the logistic and smoothed-hinge losses.
    loss : str, Loss or callable
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
    sample_weight, n_threads, chunk_size
        As in :class:`FeatureObjective`.

    Notes
    -----
    Flat parameters: ``[w (d), V (d k, row-major) or v (k), W_1 (h_1 d), b_1, ..., W_L, b_L]``.
    Gradients by back-propagation and Hessian-vector products by the R-operator (forward
    over reverse), both streamed over chunks of samples: extra memory ``O(chunk x widths)``
    plus two n-vectors, whatever ``n``.
    """

    def __init__(self, X: ArrayLike, y: ArrayLike, *, loss: str | Loss | Callable = "logistic",
                 widths: tuple[int, ...] | int = (64, 64), activation: str = "tanh",
                 bias: bool = True, head: str = "residual", feature_bias: bool = False,
                 sample_weight: ArrayLike | None = None, n_threads: int | None = None,
                 chunk_size: int | None = None):
        X, y = check_data(X, y)
        if isinstance(widths, (int, np.integer)):
            widths = (int(widths),)
        self.layout = MLPLayout(X.shape[1], tuple(widths), bool(bias), activation)
        self.widths, self.activation, self.bias = self.layout.widths, activation, bool(bias)
        loss = get_loss(loss)
        loss.check_labels(y)
        s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        engine = Engine(X, y, s, loss, self.layout.k + bool(feature_bias),
                        dims=self.layout.dims, bias=bias, act=self.layout.act_code,
                        feature_bias=feature_bias, n_threads=n_threads, chunk_size=chunk_size)
        self._setup(engine, head, self.layout.n_params)

    def init(self, seed: int | None = None) -> np.ndarray:
        """A random start: LeCun-normal layers (zero biases), ``w ~ N(0, I/d)``,
        ``V ~ N(0, I/(d k))`` (``v ~ N(0, I/k)``) so that ``V f(x)`` starts small next to
        ``x``; with ``feature_bias`` the bias column (last entry of ``v``) starts at zero
        and the rest is the start without it (same seed, same numbers)."""
        rng = np.random.default_rng(seed)
        k = self.layout.k
        w = rng.standard_normal(self.d) / np.sqrt(self.d)
        if self.head == "residual":
            M = rng.standard_normal((self.d, k)) / np.sqrt(self.d * k)
        else:
            M = rng.standard_normal(k) / np.sqrt(k)
        if self.feature_bias:
            M = np.concatenate([M, np.zeros(M.shape[:-1] + (1,))], axis=-1)
        theta = self.layout.init(rng)
        return np.concatenate([w, M.ravel(), theta]).astype(self.dtype)

    def unpack(self, x: ArrayLike) -> dict:
        """``{"w", "V" or "v", "layers": [(W_l, b_l), ...]}`` as views of ``x``."""
        x = self._point(x)
        w, M = self._head.split(x, self.d, self.k)
        return {"w": w, ("V" if self.head == "residual" else "v"): M,
                "layers": self.layout.unpack(x[self._n_head:])}

    def pack(self, w: ArrayLike, M: ArrayLike, layers) -> np.ndarray:
        """Flat parameters from ``w``, ``V`` (or ``v``) and ``[(W_l, b_l), ...]``."""
        head = self._pack_head(w, M)
        return np.concatenate([head, self.layout.pack(layers, dtype=self.dtype)])

    def _split(self, x: ArrayLike):
        w, M, a = self._split_head(x)
        return w, M, a, x[self._n_head:]

    def _fun_and_grad(self, x: ArrayLike):
        w, M, a, theta = self._split(x)
        F, sx, g, gtheta = self._engine.value_grad(w, a, theta, need_theta=True, key=x)
        return F, np.concatenate([self._head.grad(w, M, sx, g), gtheta]).astype(
            self.dtype, copy=False)

    def hessp(self, x: ArrayLike, p: ArrayLike) -> np.ndarray:
        """Full Hessian (over all parameters) at ``x`` times ``p``, by Pearlmutter's
        R-operator: one streamed forward-over-reverse pass."""
        x = self._point(x)
        p = self._point(p, "p")
        w, M, a, theta = self._split(x)
        dw, dM = self._head.split(p, self.d, self.k)
        da = self._head.direction_a(w, M, dw, dM)
        vx, vp, g, vt = self._engine.hvp(w, a, theta, dw, da, p[self._n_head:],
                                         need_theta=True, key=x)
        return np.concatenate([self._head.hvp(w, M, dw, dM, vx, vp, g), vt]).astype(
            self.dtype, copy=False)

    def features(self, x: ArrayLike) -> np.ndarray:
        """``Phi = f_theta(X)`` (n x k) at the ``theta`` inside ``x``; with ``feature_bias``
        the rows are ``[f_theta(x_i), 1]`` (the last column is the constant)."""
        w, M, a, theta = self._split(self._point(x))
        return self._engine.predict(w, a, theta, features=True)[1]

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Predictions ``p_i`` on the training inputs."""
        w, M, a, theta = self._split(self._point(x))
        return self._engine.predict(w, a, theta)[0]

    def partial(self, x, *, materialize: bool = False) -> FeatureObjective:
        """The :class:`FeatureObjective` of ``F_theta`` at the ``theta`` inside ``x``.

        By default the features are recomputed chunk by chunk in each pass, so memory does
        not grow with ``n``; the sufficient statistics (what ``hessp``, ``hessian`` and the
        certificates use) are then made in one pass and cached.  ``materialize=True``
        computes ``Phi`` once and keeps it (``n x k`` memory, faster repeated passes).
        The point of the result is ``x[:n_params_head]`` (``[w, vec(V)]``).  The result has
        the same ``feature_bias`` (the kept ``Phi`` is then ``f_theta(X)`` alone: the
        constant column is added on the fly).
        """
        x = self._point(x)
        w, M, a, theta = self._split(x)
        theta = theta.copy()
        eng = self._engine
        if materialize:
            f = eng.predict(w, a, theta, features=True, constant=False)[1]
            part = FeatureObjective(eng.X, f, eng.y, loss=self.loss, head=self.head,
                                    sample_weight=eng.s, feature_bias=self.feature_bias,
                                    n_threads=eng.n_threads, chunk_size=eng.chunk)
        else:
            sub = Engine(eng.X, eng.y, eng.s, eng.loss, self.k, dims=eng.dims, bias=eng.bias,
                         act=eng.act, feature_bias=self.feature_bias,
                         n_threads=eng.n_threads, chunk_size=eng.chunk)
            part = FeatureObjective._from_engine(sub, self.head, theta)
        part._baselines = self._baselines  # same data: one linear baseline
        return part
