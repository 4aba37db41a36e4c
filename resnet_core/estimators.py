"""scikit-learn estimators: a residual network fitted by the package's objective.

:class:`ResNetClassifier` and :class:`ResNetRegressor` fit
``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]`` (:class:`resnet_core.Objective`) with a
scipy optimiser or perturbed gradient descent, then certify the fitted point
(:func:`resnet_core.check_sopsp`) against the best linear predictor on the same training data
(:func:`resnet_core.linear_baseline`).  The certificate is computed in ``fit`` (the training
data is not kept afterwards, so it could not be computed later; ``certify=False`` skips it).

scikit-learn is an optional dependency (``pip install resnet-core[sklearn]``); the rest of the
package imports without it.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.optimize
import scipy.special

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as err:  # pragma: no cover - the test environment has scikit-learn
    raise ImportError(
        "resnet_core's estimators need scikit-learn >= 1.6: pip install 'resnet-core[sklearn]'"
    ) from err

from ._validation import check_choice, check_positive_int, to_numpy
from .certify import SOPSPReport, check_sopsp
from .linear import LinearBaselineResult
from .objective import Objective
from .optim import perturbed_gd

__all__ = ["ResNetClassifier", "ResNetRegressor"]

SOLVERS = ("lbfgs", "trust-ncg", "trust-krylov", "pgd")
BINARY_LOSSES = ("logistic", "smoothed_hinge")
# L-BFGS-B's relative-decrease stop (default 2.2e-9) would end runs long before the
# gradient is small; this one only stops a run whose decrease is lost in rounding.
_LBFGS_FTOL = 4 * np.finfo(np.float64).eps


def _host_array(a):
    """Arrays of other libraries (torch, JAX, DLPack) as NumPy arrays in their own dtype;
    pandas objects and lists pass through (scikit-learn reads their column names)."""
    module = type(a).__module__.split(".")[0]
    if a is None or isinstance(a, np.ndarray) or module in ("pandas", "polars", "scipy"):
        return a
    return to_numpy("X", a)


class _ResNetBase(BaseEstimator):
    """Parameters, fit and certificate shared by the classifier and the regressor."""

    _losses: tuple = ()

    def __init__(self, widths=(16,), *, activation="tanh", bias=True, head="residual",
                 loss=None, feature_bias=False, fit_intercept=True, solver="lbfgs",
                 max_iter=200, tol=1e-5, random_state=None, n_threads=None, certify=True):
        self.widths = widths
        self.activation = activation
        self.bias = bias
        self.head = head
        self.loss = loss
        self.feature_bias = feature_bias
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_threads = n_threads
        self.certify = certify

    # -- checks ---------------------------------------------------------------------------
    def _check_params(self):
        check_choice("solver", self.solver, SOLVERS)
        check_positive_int("max_iter", self.max_iter)
        tol = self.tol
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (
                np.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be a positive finite number; got {tol!r}")
        widths = self.widths
        if isinstance(widths, numbers.Integral) and not isinstance(widths, bool):
            widths = (int(widths),)
        if not isinstance(widths, (tuple, list)):
            raise TypeError(f"widths must be an int or a tuple of ints; got {widths!r}")
        return tuple(widths)

    def _validate_X(self, X, *, reset: bool):
        """``X`` validated by scikit-learn (float64 or float32 kept; other libraries' arrays
        read in their own dtype), with the constant column appended when ``fit_intercept``."""
        X = validate_data(self, _host_array(X), reset=reset, dtype=[np.float64, np.float32],
                          ensure_2d=True)
        return self._augment(X)

    def _augment(self, X):
        if not self.fit_intercept:
            return X
        return np.column_stack([X, np.ones(X.shape[0], dtype=X.dtype)])

    # -- fit ------------------------------------------------------------------------------
    def _objective(self, X, y, loss, sample_weight=None, **extra) -> Objective:
        return Objective(X, y, loss=loss, widths=self._check_params(),
                         activation=self.activation, bias=self.bias, head=self.head,
                         feature_bias=self.feature_bias, sample_weight=sample_weight,
                         n_threads=self.n_threads, **extra)

    def _fit(self, X, y, sample_weight, loss, placeholder_y, **extra):
        """Fit ``Objective(X, y, loss, **extra)`` from a seeded start; set the fitted
        attributes.  ``placeholder_y``: a valid label of one sample (see ``_model``)."""
        obj = self._objective(X, y, loss, _host_array(sample_weight), **extra)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        res = self._solve(obj, obj.init(seed), seed)
        params = np.asarray(res.x, dtype=obj.dtype)
        self.params_ = params
        self.parts_ = obj.unpack(params)
        self.coef_ = self.parts_["w"]
        self.n_iter_ = max(int(res.nit), 1)
        self.loss_ = float(obj.fun(params))
        self.converged_ = bool(res.success)
        self.solver_message_ = str(res.message)
        if not self.converged_:
            warnings.warn(f"{type(self).__name__} did not converge ({self.solver}: "
                          f"{res.message}); increase max_iter or tol", ConvergenceWarning,
                          stacklevel=3)
        self.linear_baseline_: LinearBaselineResult | None = None
        self.certificate_: SOPSPReport | None = None
        if self.certify:
            self.linear_baseline_ = obj.linear_baseline()
            self.certificate_ = check_sopsp(obj, params, eps=float(self.tol))
        # Predictions need the network, not the training data: the same model on one
        # placeholder sample (its predict streams the new inputs through the kernels).
        self._model = self._objective(np.zeros((1, obj.d), obj.dtype), placeholder_y, loss,
                                      **extra)
        return self

    def _solve(self, obj: Objective, x0: np.ndarray, seed: int):
        tol, max_iter = float(self.tol), int(self.max_iter)
        if self.solver == "pgd":
            return perturbed_gd(obj, x0, eps=tol, max_iter=max_iter, seed=seed,
                                record_every=0)

        def fun_and_grad(x):
            F, g = obj.fun_and_grad(x)
            return F, np.asarray(g, dtype=np.float64)

        x0 = np.asarray(x0, dtype=np.float64)
        if self.solver == "lbfgs":
            return scipy.optimize.minimize(
                fun_and_grad, x0, jac=True, method="L-BFGS-B",
                options={"maxiter": max_iter, "gtol": tol, "ftol": _LBFGS_FTOL})
        return scipy.optimize.minimize(
            fun_and_grad, x0, jac=True, method=self.solver,
            hessp=lambda x, p: np.asarray(obj.hessp(x, p), dtype=np.float64),
            options={"maxiter": max_iter, "gtol": tol})

    # -- predictions ----------------------------------------------------------------------
    def _scores(self, X) -> np.ndarray:
        """``p`` on new inputs: (n,) for one output, (n, c) for c outputs."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._model.predict(self.params_, X)


class ResNetClassifier(ClassifierMixin, _ResNetBase):
    """A residual network classifier: ``p = w^T (x + V f_theta(x))``, fitted by minimising
    the empirical loss ``F = sum_i s_i l(p_i; y_i) / sum_i s_i`` without regularisation.

    Two classes: the scalar logistic (default) or smoothed-hinge loss on labels mapped to -1
    (``classes_[0]``) and +1 (``classes_[1]``).

    Parameters
    ----------
    widths : int or tuple of int
        Hidden widths of the MLP ``f_theta``; ``k = widths[-1]``.
    activation : {"tanh", "relu", "softplus", "sigmoid", "identity"}
    bias : bool
        Biases in the MLP's layers.
    head : {"residual", "skip"}
        ``p = w^T (x + V phi)`` or ``p = w^T x + v^T phi``.
    loss : {"logistic", "smoothed_hinge"}, optional
        Default ``"logistic"``.
    feature_bias : bool
        Append a constant 1 to the features (Remark 1 of the paper).
    fit_intercept : bool
        Append a constant 1 to the inputs: ``x -> [x, 1]``.  The network and the linear
        baseline it is compared with then both have an intercept (the baseline is the best
        affine predictor).  Costs a copy of ``X`` during ``fit``.
    solver : {"lbfgs", "trust-ncg", "trust-krylov", "pgd"}
        ``"lbfgs"``: scipy's L-BFGS-B on ``fun_and_grad``; ``"trust-ncg"``,
        ``"trust-krylov"``: scipy's trust-region methods on the objective's exact
        Hessian-vector products; ``"pgd"``: :func:`resnet_core.perturbed_gd` (``max_iter``
        gradient steps at most, constants estimated at the start).
    max_iter : int
        Iterations of the solver.
    tol : float
        Gradient tolerance: the solver's ``gtol`` (``eps`` for ``"pgd"``) and the ``eps`` of
        the certificate.
    random_state : int, RandomState or None
        Seeds the start (:meth:`resnet_core.Objective.init`) and PGD's perturbations.
    n_threads : int, optional
        Threads of the kernels (default: all cores, or ``OMP_NUM_THREADS``).
    certify : bool
        Compute ``linear_baseline_`` and ``certificate_`` in ``fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    params_ : ndarray
        The fitted flat point ``[w, vec(V), theta]`` (:meth:`resnet_core.Objective.unpack`
        layout), in the training data's dtype.
    parts_ : dict
        Views of ``params_``: ``"w"``, ``"V"`` (or ``"v"``), ``"layers"``.
    coef_ : ndarray
        The output weights ``w`` (over ``[x, 1]`` with ``fit_intercept``).
    n_iter_ : int
    loss_ : float
        ``F`` at the fitted point (training data).
    converged_ : bool
        Whether the solver met its stopping rule (else a ``ConvergenceWarning`` was issued).
    linear_baseline_ : LinearBaselineResult or None
        The best linear predictor on the training data, loss and weights.
    certificate_ : SOPSPReport or None
        :func:`resnet_core.check_sopsp` at ``params_`` with ``eps = tol``: the gradient
        norm, ``lambda_min`` of the partial Hessian, the verdict and the gap
        ``F - inf F_lin`` to the best linear predictor.
    n_features_in_ : int
    feature_names_in_ : ndarray
        When ``X`` has column names.

    Notes
    -----
    Inputs may be NumPy arrays, pandas frames, PyTorch tensors, JAX arrays or any object with
    ``__array__`` or ``__dlpack__``; float32 stays float32 (the fit then runs in float32),
    other types become float64.  A tensor that requires grad is used as data: it is detached
    and no gradient flows back to it.
    """

    _losses = BINARY_LOSSES

    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``(X, y)``; ``sample_weight`` weights the samples."""
        X, y = validate_data(self, _host_array(X), _host_array(y), dtype=[np.float64, np.float32],
                             y_numeric=False, multi_output=True)
        X = self._augment(X)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got "
                             f"1 class ({self.classes_[0]!r})")
        loss = "logistic" if self.loss is None else self.loss
        if self.classes_.size > 2:
            raise ValueError("Only binary classification is supported. The type of the "
                             f"target is multiclass ({self.classes_.size} classes).")
        check_choice("loss", loss, self._losses)
        labels = np.where(codes == 1, 1.0, -1.0)
        return self._fit(X, labels, sample_weight, loss, np.ones(1))

    def decision_function(self, X) -> np.ndarray:
        """The network's output ``p``: shape (n,) for two classes (positive: ``classes_[1]``)."""
        return self._scores(X)

    def predict(self, X) -> np.ndarray:
        """The predicted class of each sample."""
        p = self.decision_function(X)
        return self.classes_[(p > 0).astype(np.intp)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``: ``[1 - sigma(p),
        sigma(p)]`` for the logistic loss, ``sigma(p) = 1 / (1 + e^{-p})``.  The smoothed
        hinge is not a likelihood: no probabilities."""
        check_is_fitted(self)
        if self.loss == "smoothed_hinge":
            raise AttributeError("predict_proba needs the logistic loss; the smoothed hinge "
                                 "gives no probabilities (use decision_function)")
        p = np.asarray(self.decision_function(X), dtype=np.float64)
        return np.column_stack([scipy.special.expit(-p), scipy.special.expit(p)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class ResNetRegressor(RegressorMixin, _ResNetBase):
    """A residual network regressor: ``p = w^T (x + V f_theta(x))`` fitted by minimising
    ``F = sum_i s_i (p_i - y_i)^2 / (2 sum_i s_i)`` without regularisation.

    Parameters are those of :class:`ResNetClassifier`, with ``loss`` ``"squared"`` (the
    default, and the only one).  Attributes likewise, without ``classes_``.
    """

    _losses = ("squared",)

    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``(X, y)``; ``sample_weight`` weights the samples."""
        X, y = validate_data(self, _host_array(X), _host_array(y),
                             dtype=[np.float64, np.float32], y_numeric=True)
        X = self._augment(X)
        loss = check_choice("loss", "squared" if self.loss is None else self.loss,
                            self._losses)
        return self._fit(X, np.asarray(y, dtype=X.dtype), sample_weight, loss, np.zeros(1))

    def predict(self, X) -> np.ndarray:
        """The network's output ``p`` on ``X``."""
        return self._scores(X)
