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

import warnings
from collections.abc import Mapping

import numpy as np
import scipy.optimize

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as err:  # pragma: no cover - the test environment has scikit-learn
    raise ImportError(
        "resnet_core's estimators need scikit-learn >= 1.6: pip install 'resnet-core[sklearn]'"
    ) from err

from ._threads import blas_single_thread
from ._schema import POSITIVE, check
from ._validation import check_choice, to_numpy
from .certify import SOPSPReport, check_sopsp
from .linear import LinearBaselineResult
from .objective import Objective
from ._progress import progress_bar
from .losses import BUILTIN_LOSSES, proba_losses
from .optim import perturbed_gd

__all__ = ["ResNetClassifier", "ResNetRegressor"]

SOLVERS = ("lbfgs", "trust-ncg", "trust-krylov", "pgd")


def binary_losses() -> tuple[str, ...]:
    """The scalar losses on labels -1/+1: the registry's entries now (a loss registered after
    this module was imported included)."""
    return tuple(name for name, loss in BUILTIN_LOSSES.items() if loss.binary_labels)


# Default L2 penalty alpha / 2 ||theta||^2 on the features' parameters (docs/estimators.md).
ALPHA = 0.1
# L-BFGS-B's relative-decrease stop (default 2.2e-9) would end runs long before the
# gradient is small; this one only stops a run whose decrease is lost in rounding.
_LBFGS_FTOL = 4 * np.finfo(np.float64).eps


def _host_array(name: str, a, numeric: bool = True):
    """Arrays of other libraries (torch, JAX, DLPack) as NumPy arrays in their own dtype;
    pandas objects and lists pass through (scikit-learn reads their column names).

    With ``numeric`` (``X``, ``sample_weight``, a regressor's ``y``), strings are refused
    as the core refuses them (``"1.5"`` is a TypeError, not 1.5); an object array of
    numbers is converted, as scikit-learn converts it (see :func:`_refuse_strings`)."""
    module = type(a).__module__.split(".")[0]
    if a is None or module in ("pandas", "polars", "scipy"):
        return a
    a = a if isinstance(a, np.ndarray) else to_numpy(name, a)
    if numeric:
        _refuse_strings(name, a)
    return a


def _refuse_strings(name: str, a) -> None:
    """TypeError when ``a`` (an array or a list) holds strings.

    The estimators take what the core takes, plus one deliberate conversion: an object
    array (or a list) of numbers becomes a float array, as in scikit-learn.  Numbers given
    as text (a string dtype, or strings inside an object array) are refused, as
    :class:`resnet_core.Objective` refuses them, instead of being parsed."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a, dtype=object)
    if arr.dtype.kind in "US":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype} (strings): "
                        f"convert it first, e.g. {name}.astype(float)")
    if arr.dtype.kind == "O":
        for index, item in np.ndenumerate(arr):
            if isinstance(item, (str, bytes)):
                raise TypeError(f"{name} must hold real numbers; found the string {item!r} "
                                f"at index {index}: convert it first, e.g. "
                                f"{name}.astype(float)")


class _NonFinite(Exception):
    """A scipy solver asked for a non-finite point or direction."""


class _EarlyStop(Exception):
    """The validation score did not improve for ``n_iter_no_change`` iterations."""


class _ScipyRun:
    """``fun_and_grad`` and ``hessp`` of an objective (the penalised one of
    :class:`_Penalised` when ``alpha > 0``) for ``scipy.optimize.minimize``, in float64,
    remembering the best point evaluated and counting iterations.

    scipy's trust-krylov (trlib) can return a NaN step on a degenerate subproblem (a
    Hessian singular along the gradient); the run then stops at the best point so far
    instead of evaluating there.  ``after_step(x)``, if given, is called after each
    iteration (the progress bar, early stopping)."""

    def __init__(self, obj: Objective, after_step=None):
        self.obj, self.nit = obj, 0
        self.after_step = after_step
        self.best_x, self.best_F = None, np.inf

    def fun_and_grad(self, x):
        if not np.isfinite(x).all():
            raise _NonFinite("the next point")
        F, g = self.obj.fun_and_grad(x)
        g = np.asarray(g, dtype=np.float64)
        if F < self.best_F or self.best_x is None:
            self.best_x, self.best_F = x.copy(), F
        return F, g

    def hessp(self, x, p):
        if not np.isfinite(p).all():
            raise _NonFinite("the trust-region subproblem's direction")
        return np.asarray(self.obj.hessp(x, p), dtype=np.float64)

    def callback(self, intermediate_result=None, *args):
        self.nit += 1
        if self.after_step is not None:
            x = getattr(intermediate_result, "x", intermediate_result)
            self.after_step(np.asarray(x, dtype=np.float64))


class _Penalised(Objective):
    """``F + alpha / 2 ||theta||^2`` as an :class:`Objective`, what every solver minimises
    (:func:`resnet_core.perturbed_gd` over all parameters and the scipy solvers call only
    ``fun_and_grad`` and ``hessp``): the objective's own state, shared, with the penalty
    added."""

    @classmethod
    def of(cls, obj: Objective, alpha: float) -> Objective:
        """``obj`` with the penalty; ``obj`` itself when ``alpha`` is 0."""
        if not alpha:
            return obj
        pen = cls.__new__(cls)
        pen.__setstate__(obj.__getstate__())
        pen.alpha = float(alpha)
        return pen

    def fun_and_grad(self, x):
        F, g = super().fun_and_grad(x)
        theta = np.asarray(x, dtype=np.float64)[self.n_head_params:]
        g = np.array(g, dtype=np.float64)
        g[self.n_head_params:] += self.alpha * theta
        return F + 0.5 * self.alpha * float(theta @ theta), g

    def fun(self, x):
        return self.fun_and_grad(x)[0]

    def grad(self, x):
        return self.fun_and_grad(x)[1]

    def hessp(self, x, p):
        Hp = np.array(super().hessp(x, p), dtype=np.float64)
        Hp[self.n_head_params:] += self.alpha * np.asarray(p, dtype=np.float64)[
            self.n_head_params:]
        return Hp


class _Validation:
    """Early stopping as in scikit-learn's MLP: the score on held-out samples after each
    iteration; the run stops once it has not improved by ``tol`` for ``n_iter_no_change``
    iterations, and the point with the best score is returned."""

    def __init__(self, score, n_iter_no_change: int, tol: float):
        self.score, self.patience, self.tol = score, n_iter_no_change, tol
        self.best_score, self.best_x, self.stall = -np.inf, None, 0
        self.scores = []

    def __call__(self, x):
        value = float(self.score(x))
        self.scores.append(value)
        if value > self.best_score:
            if value > self.best_score + self.tol:
                self.stall = 0
            else:
                self.stall += 1
            self.best_score, self.best_x = value, x.copy()
        else:
            self.stall += 1
        if self.stall >= self.patience:
            raise _EarlyStop


def _scale_head(obj: Objective, params: np.ndarray, scale) -> np.ndarray:
    """``params`` with the output weights ``w`` (rows of ``W``) times ``scale`` (a scalar,
    or one per output): the network's outputs times ``scale``.  ``scale`` None: as given."""
    if scale is None:
        return np.asarray(params)
    out = np.array(params, dtype=obj.dtype)
    head = out[:obj.n_outputs * obj.d].reshape(obj.n_outputs, obj.d)
    head *= np.reshape(scale, (-1, 1)).astype(obj.dtype)
    return out


class _ResNetBase(BaseEstimator):
    """Parameters, fit and certificate shared by the classifier and the regressor."""

    def __init__(self, widths=(16,), *, activation="tanh", bias=True, head="residual",
                 loss=None, feature_bias=False, fit_intercept=True, solver="lbfgs",
                 alpha=ALPHA, max_iter=200, tol=1e-5, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, warm_start=False, verbose=0,
                 random_state=None, n_threads=None, certify=True):
        self.widths = widths
        self.activation = activation
        self.bias = bias
        self.head = head
        self.loss = loss
        self.feature_bias = feature_bias
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.verbose = verbose
        self.random_state = random_state
        self.n_threads = n_threads
        self.certify = certify

    # -- checks ---------------------------------------------------------------------------
    def _check_params(self):
        """The hyperparameters, checked by the package's schema at fit (scikit-learn's
        convention: ``__init__`` only stores them); returns the widths as a tuple."""
        check_choice("solver", self.solver, SOLVERS)
        check("max_iter", self.max_iter)
        check("n_iter_no_change", self.n_iter_no_change)
        check("tol", self.tol, POSITIVE)  # eps of PGD, gtol of the scipy solvers
        for name in ("bias", "feature_bias", "fit_intercept"):
            check(name, getattr(self, name))
        check("n_threads", self.n_threads, none=True)
        check("alpha", self.alpha)
        check("validation_fraction", self.validation_fraction)
        for name in ("early_stopping", "warm_start", "verbose"):
            check(name, getattr(self, name))
        if self.early_stopping and self.solver == "pgd":
            raise ValueError("early_stopping needs a scipy solver; solver='pgd' has none")
        return check("widths", self.widths)

    def _certify_options(self) -> dict | None:
        """Keywords of :func:`resnet_core.check_sopsp` (``eps = tol`` unless given), or None
        for ``certify=False``."""
        if isinstance(self.certify, bool):
            return {"eps": float(self.tol)} if self.certify else None
        if not isinstance(self.certify, Mapping):
            raise TypeError("certify must be True, False or a dict of check_sopsp keywords "
                            f"(eps, mu2, curvature_tol, radius, method); got "
                            f"{self.certify!r}")
        return {"eps": float(self.tol), **self.certify}

    def _validate_X(self, X, *, reset: bool):
        """``X`` validated by scikit-learn (float64 or float32 kept; other libraries' arrays
        read in their own dtype), with the constant column appended when ``fit_intercept``."""
        X = validate_data(self, _host_array("X", X), reset=reset, dtype=[np.float64, np.float32],
                          ensure_2d=True)
        return self._augment(X)

    def _augment(self, X):
        if not self.fit_intercept:
            return X
        return np.column_stack([X, np.ones(X.shape[0], dtype=X.dtype)])

    # -- fit ------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``(X, y)`` from a seeded start; ``sample_weight`` (n,) weights
        the samples (non-negative, a positive sum).  Returns ``self``."""
        certify = self._certify_options()
        widths = self._check_params()
        warm = self.warm_start and hasattr(self, "params_")
        X, y = self._check_data(X, y, reset=not warm)
        y, extra = self._targets(y, reset=not warm)
        sample_weight = _host_array("sample_weight", sample_weight)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        validation = None
        if self.early_stopping:
            X, y, sample_weight, held = self._split(X, y, sample_weight, rng)
        # The objective certified is F on the targets given; the one minimised may have
        # them in units of y_scale_ (the regressor), the same network up to the head's scale.
        obj = self._objective(X, y, widths, sample_weight, **extra)
        scale = self._target_scale(y, sample_weight, reset=not warm)
        fit_obj = obj if scale is None else self._objective(X, y / scale, widths,
                                                            sample_weight, **extra)
        if self.early_stopping:
            X_val, y_val, sw_val = held
            validation = _Validation(
                lambda x: self._validation_score(fit_obj.predict(x, X_val), y_val, sw_val),
                int(self.n_iter_no_change), float(self.tol))
        x0 = (_scale_head(obj, self.params_, None if scale is None else 1.0 / scale)
              if warm else obj.init(seed))
        if warm and np.size(x0) != obj.n_params:
            raise ValueError(f"warm_start: the fitted parameters ({np.size(x0)}) do not fit "
                             f"this problem ({obj.n_params} parameters)")
        # The solvers' own linear algebra is on vectors of n_params: one BLAS thread, so
        # that no BLAS thread spins against the kernels' (measured: L-BFGS on 100 x 2,
        # 718 iterations, 3.5 s -> 0.48 s).
        with blas_single_thread(), progress_bar(bool(self.verbose), int(self.max_iter),
                                                type(self).__name__, "it") as update:
            res = self._solve(fit_obj, np.asarray(x0, dtype=obj.dtype), seed, validation,
                              update)
        params = _scale_head(obj, np.asarray(res.x, dtype=obj.dtype), scale)
        self.validation_scores_ = None if validation is None else validation.scores
        self.best_validation_score_ = None if validation is None else validation.best_score
        self.params_ = params
        self.parts_ = obj.unpack(params)
        self.coef_ = self.parts_["W" if obj.vector else "w"]
        self.n_iter_ = max(int(res.nit), 1)
        self.loss_ = float(obj.fun(params))
        self.converged_ = bool(res.success)
        self.solver_message_ = str(res.message)
        if not self.converged_:
            warnings.warn(f"{type(self).__name__} did not converge ({self.solver}: "
                          f"{res.message}); increase max_iter or tol", ConvergenceWarning,
                          stacklevel=2)
        self.linear_baseline_: LinearBaselineResult | None = None
        self.certificate_: SOPSPReport | None = None
        if certify is not None:
            # the certificate first: it computes the baseline, so its "time" row counts it
            self.certificate_ = check_sopsp(obj, params, **certify)
            self.linear_baseline_ = obj.linear_baseline(self.certificate_.radius)
        # Predictions need the network, not the training data: the same model on one
        # placeholder sample (its predict streams the new inputs through the kernels).
        self._model = self._objective(np.zeros((1, obj.d), obj.dtype),
                                      self._placeholder_y(), widths, **extra)
        return self

    def objective(self, X, y, sample_weight=None) -> Objective:
        """The :class:`resnet_core.Objective` this estimator minimises on ``(X, y)`` (the
        labels encoded, the constant column appended), e.g. to certify the fitted point
        with other settings: ``rc.check_sopsp(est.objective(X, y), est.params_, eps=...,
        mu2=...)``."""
        check_is_fitted(self)
        X, y = self._check_data(X, y, reset=False)
        y, extra = self._targets(y, reset=False)
        return self._objective(X, y, self._check_params(),
                               _host_array("sample_weight", sample_weight), **extra)

    def _check_data(self, X, y, *, reset: bool):
        X, y = validate_data(self, _host_array("X", X),
                             _host_array("y", y, numeric=isinstance(self, RegressorMixin)),
                             reset=reset,
                             dtype=[np.float64, np.float32], multi_output=True,
                             y_numeric=isinstance(self, RegressorMixin))
        return self._augment(X), y

    def _objective(self, X, y, widths: tuple, sample_weight=None, **extra) -> Objective:
        """The objective on ``(X, y)``; ``widths`` as :meth:`_check_params` returns them."""
        return Objective(X, y, widths=widths, activation=self.activation,
                         bias=self.bias, head=self.head, feature_bias=self.feature_bias,
                         sample_weight=sample_weight, n_threads=self.n_threads, **extra)

    def _target_scale(self, y, sample_weight, *, reset: bool):
        """None: the targets are fitted as given (the classifier)."""
        return None

    def _split(self, X, y, sample_weight, rng):
        """Hold out ``validation_fraction`` of the samples (stratified for a classifier):
        ``(X, y, sample_weight)`` to fit and the same held out."""
        from sklearn.model_selection import train_test_split
        idx = np.arange(X.shape[0])
        strat = y if isinstance(self, ClassifierMixin) else None
        fit_idx, val_idx = train_test_split(idx, test_size=self.validation_fraction,
                                            random_state=rng, stratify=strat)
        sw = None if sample_weight is None else np.asarray(sample_weight)
        part = [(X[i], y[i], None if sw is None else sw[i]) for i in (fit_idx, val_idx)]
        return (*part[0], part[1])

    def _solve(self, obj: Objective, x0: np.ndarray, seed: int, validation=None,
               update=None):
        tol, max_iter = float(self.tol), int(self.max_iter)
        target = _Penalised.of(obj, float(self.alpha))
        if self.solver == "pgd":
            return perturbed_gd(target, x0, eps=tol, max_iter=max_iter, seed=seed,
                                record_every=0, progress=bool(self.verbose))

        def after_step(x):
            if update is not None:
                update(1)
            if validation is not None:
                validation(x)

        run = _ScipyRun(target, after_step)
        if self.solver == "lbfgs":
            method, extra = "L-BFGS-B", {"options": {"maxiter": max_iter, "gtol": tol,
                                                     "ftol": _LBFGS_FTOL}}
        else:
            method, extra = self.solver, {"hessp": run.hessp,
                                          "options": {"maxiter": max_iter, "gtol": tol}}
        try:
            res = scipy.optimize.minimize(run.fun_and_grad, np.asarray(x0, np.float64),
                                          jac=True, method=method, callback=run.callback,
                                          **extra)
            if validation is not None and validation.best_x is not None:
                res.x = validation.best_x  # the best validation score, as scikit-learn's MLP
            return res
        except _NonFinite as stop:
            return scipy.optimize.OptimizeResult(
                x=run.best_x, fun=run.best_F, nit=run.nit, success=False,
                message=f"stopped: {stop} is not finite; the point is the best one reached")
        except _EarlyStop:
            return scipy.optimize.OptimizeResult(
                x=validation.best_x, nit=run.nit, success=True,
                message=f"early stopping: the validation score did not improve by tol for "
                        f"{self.n_iter_no_change} iterations; the point is the one with the "
                        f"best score ({validation.best_score:.6g})")

    # -- predictions ----------------------------------------------------------------------
    def _scores(self, X) -> np.ndarray:
        """``p`` on new inputs: (n,) for one output, (n, c) for c outputs."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._model.predict(self.params_, X)


class ResNetClassifier(ClassifierMixin, _ResNetBase):
    """A residual network classifier: ``p = w^T (x + V f_theta(x))`` (``W (x + V f_theta(x))``
    with c outputs), fitted by minimising the empirical loss
    ``F = sum_i s_i l(p_i; y_i) / sum_i s_i`` plus ``alpha / 2 ||theta||^2`` on the
    features' parameters only (the certificate is about ``F`` itself).

    Two classes: the scalar logistic (default) or smoothed-hinge loss on labels mapped to -1
    (``classes_[0]``) and +1 (``classes_[1]``).  More classes: the softmax cross-entropy on c
    outputs, one network for all classes (no one-vs-rest).

    Parameters
    ----------
    widths : int or tuple of int
        Hidden widths of the MLP ``f_theta``; ``k = widths[-1]``.
    activation : {"tanh", "relu", "softplus", "sigmoid", "identity"}
    bias : bool
        Biases in the MLP's layers.
    head : {"residual", "skip"}
        ``p = w^T (x + V phi)`` or ``p = w^T x + v^T phi`` (``W x + B phi`` with c outputs).
    loss : {"logistic", "smoothed_hinge", "cross_entropy"}, optional
        Default: ``"logistic"`` for two classes, ``"cross_entropy"`` for more.  The scalar
        losses fit two classes only; ``"cross_entropy"`` fits any number (two included:
        then two outputs).
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
    alpha : float
        L2 penalty ``alpha / 2 ||theta||^2`` on the MLP's weights and biases, never on
        ``(w, V)``: the partial Hessian over ``(w, V)`` is that of ``F``, so the certificate
        and the paper's bounds apply to the unpenalised ``F`` at the point returned
        (penalising ``(w, V)`` creates spurious minima: the paper's Section 4,
        docs/estimators.md).  Default 0.1: within 0.05 of a tuned linear model on
        standardised diabetes and digits (5-fold, ``benchmarks/estimators_cv.py``).
    max_iter : int
        Iterations of the solver.
    tol : float
        Gradient tolerance: the solver's ``gtol`` (``eps`` for ``"pgd"``) and the ``eps`` of
        the certificate; with ``early_stopping``, the improvement of the validation score
        that counts.
    early_stopping : bool
        Hold out ``validation_fraction`` of the training samples (stratified for the
        classifier), score the iterate on them after each iteration (accuracy, R^2), stop
        once the score has not improved by ``tol`` for ``n_iter_no_change`` iterations, and
        return the iterate with the best score, as scikit-learn's MLP does.  The network is
        fitted, and certified, on the rest.  scipy solvers only.
    validation_fraction : float
        In (0, 1); default 0.1.
    n_iter_no_change : int
        Default 10.
    warm_start : bool
        Start the next ``fit`` from the fitted parameters (same data shape; the labels and
        the regressor's ``y_scale_`` of the first fit are kept) instead of a seeded start.
    verbose : int
        ``> 0``: a tqdm bar of the solver's iterations in ``fit`` (needs tqdm).  Nothing is
        printed otherwise.
    random_state : int, RandomState or None
        Seeds the start (:meth:`resnet_core.Objective.init`) and PGD's perturbations.
    n_threads : int, optional
        Threads of the kernels (default: all cores, or ``OMP_NUM_THREADS``).
    certify : bool or dict
        Compute ``linear_baseline_`` and ``certificate_`` in ``fit`` (True, the default);
        a dict gives :func:`resnet_core.check_sopsp`'s keywords (``eps`` (default
        ``tol``), ``mu2``, ``curvature_tol``, ``radius``, ``method``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_name_ : str
        The loss fitted (``loss`` resolved).
    params_ : ndarray
        The fitted flat point ``[w, vec(V), theta]`` (:meth:`resnet_core.Objective.unpack`
        layout; ``[vec(W), vec(V), theta]`` with c outputs), in the training data's dtype.
    parts_ : dict
        Views of ``params_``: ``"w"`` (``"W"``), ``"V"`` (``"v"``, ``"B"``), ``"layers"``.
    coef_ : ndarray
        The output weights ``w`` (``W``, c x d), over ``[x, 1]`` with ``fit_intercept``.
    n_iter_ : int
    loss_ : float
        ``F`` at the fitted point (training data; without the penalty).
    validation_scores_, best_validation_score_ : list of float, float or None
        With ``early_stopping``: the score after each iteration, and the best.
    converged_ : bool
        Whether the solver met its stopping rule (else a ``ConvergenceWarning`` was issued).
    solver_message_ : str
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

    def _targets(self, y, *, reset: bool):
        """Labels as the loss takes them: -1/+1 (``classes_[0]``, ``classes_[1]``) for the
        scalar losses, ``0..c-1`` for the cross-entropy."""
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y)
            c = self.classes_.size
            if c < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                                 f"got 1 class ({self.classes_[0]!r})")
            loss = self.loss if self.loss is not None else (
                "logistic" if c == 2 else "cross_entropy")
            check_choice("loss", loss, binary_losses() + ("cross_entropy",))
            if loss in binary_losses() and c > 2:
                raise ValueError(f"Only binary classification is supported with loss {loss!r};"
                                 f" got {c} classes: use loss='cross_entropy' (or None) for "
                                 "more")
            self.loss_name_ = loss
        codes = np.searchsorted(self.classes_, y).clip(max=self.classes_.size - 1)
        unseen = self.classes_[codes] != y
        if unseen.any():
            label = y[unseen][:1].tolist()[0]
            raise ValueError(f"y holds a label not seen in fit: {label!r} (classes_ is "
                             f"{self.classes_.tolist()})")
        if self.loss_name_ == "cross_entropy":
            return codes, {"loss": "cross_entropy", "n_classes": self.classes_.size}
        return np.where(codes == 1, 1.0, -1.0), {"loss": self.loss_name_}

    def _placeholder_y(self):
        return np.zeros(1, np.intp) if self.loss_name_ == "cross_entropy" else np.ones(1)

    @staticmethod
    def _validation_score(p, y, sample_weight) -> float:
        """Accuracy of the scores ``p`` on the encoded labels ``y``."""
        hit = (p.argmax(axis=1) == y) if p.ndim == 2 else ((p > 0) == (y > 0))
        return float(np.average(hit, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = self.loss not in binary_losses()
        return tags

    def decision_function(self, X) -> np.ndarray:
        """Scores: shape (n,) for two classes (positive: ``classes_[1]``; with the
        cross-entropy the log-odds ``p_1 - p_0``), (n, c) for more (the logits ``W u``)."""
        p = self._scores(X)
        if p.ndim == 2 and self.classes_.size == 2:
            return p[:, 1] - p[:, 0]
        return p

    def predict(self, X) -> np.ndarray:
        """The predicted class of each sample (the largest score)."""
        p = self._scores(X)
        index = p.argmax(axis=1) if p.ndim == 2 else (p > 0).astype(np.intp)
        return self.classes_[index]

    @available_if(lambda est: est.loss is None or est.loss in proba_losses())
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``: the softmax of the
        scores (cross-entropy), ``[1 - sigma(p), sigma(p)]`` for the logistic loss
        (``sigma(p) = 1 / (1 + e^{-p})``).  Not for the smoothed hinge (not a likelihood)."""
        check_is_fitted(self)
        return self._model.predict_proba(self.params_, self._validate_X(X, reset=False))


class ResNetRegressor(RegressorMixin, _ResNetBase):
    """A residual network regressor: ``p = w^T (x + V f_theta(x))`` (``W (...)`` for y with
    c columns) fitted by minimising ``F = sum_i s_i ||p_i - y_i||^2 / (2 sum_i s_i)`` plus
    ``alpha / 2 ||theta||^2``.

    Parameters are those of :class:`ResNetClassifier`, with ``loss`` ``"squared"`` (the
    default, and the only one).  Attributes likewise, without ``classes_``, and with
    ``y_scale_``: the solver runs on ``y / y_scale_`` (the weighted standard deviation of
    each target column), so that ``alpha`` and ``tol`` mean the same in any units, and the
    point found is mapped back exactly (``w`` times ``y_scale_``: the same network in the
    units of ``y``); ``params_``, ``loss_`` and the certificate are in those units.
    ``predict`` returns the shape of the ``y`` fitted ((n,), (n, 1) or (n, c)).
    """

    def _targets(self, y, *, reset: bool):
        """``y`` as given: (n,), (n, 1) (both the scalar objective) or (n, c)."""
        if reset:
            self.loss_name_ = check_choice(
                "loss", "squared" if self.loss is None else self.loss, ("squared",))
            self._y_shape = np.shape(y)[1:]
        elif np.shape(y)[1:] != self._y_shape:
            want = "".join(f", {c}" for c in self._y_shape)
            raise ValueError(f"y must have shape (n_samples{want}) as in fit; got "
                             f"{np.shape(y)}")
        return y, {"loss": "squared"}

    def _placeholder_y(self):
        return np.zeros((1,) + self._y_shape)

    def _target_scale(self, y, sample_weight, *, reset: bool):
        """``y_scale_``: the weighted standard deviation of each target column (1 where it
        is 0), fixed at the first fit (kept by ``warm_start``)."""
        if reset:
            y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            sd = np.sqrt(np.average((y2 - np.average(y2, axis=0, weights=sample_weight)) ** 2,
                                    axis=0, weights=sample_weight))
            sd = np.where(sd > 0, sd, 1.0)
            self.y_scale_ = sd if np.ndim(y) == 2 and y2.shape[1] > 1 else float(sd[0])
        return self.y_scale_ if np.ndim(y) == 1 else np.asarray(self.y_scale_).reshape(1, -1)

    @staticmethod
    def _validation_score(p, y, sample_weight) -> float:
        """R^2 of the predictions ``p`` (averaged over outputs)."""
        from sklearn.metrics import r2_score
        return float(r2_score(np.asarray(y).reshape(p.shape), p, sample_weight=sample_weight))

    def predict(self, X) -> np.ndarray:
        """The network's output ``p`` on ``X``, shaped as the ``y`` fitted."""
        p = self._scores(X)
        return p.reshape((p.shape[0],) + self._y_shape)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
