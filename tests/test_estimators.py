"""rc.ResNetClassifier and rc.ResNetRegressor: the fit is the package's objective driven by
the named solver, labels and shapes map as documented, the certificate is the one of the
fitted point, and they work in Pipeline and GridSearchCV."""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import resnet_core as rc  # noqa: E402

# Short fits on purpose: their ConvergenceWarning is asserted once, below, and muted elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _binary(rng, n=120, d=3, noise=0.8):
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] * X[:, 1] + X[:, 0] + noise * rng.standard_normal(n) > 0, "yes", "no")
    return X, y


def _augmented(X):
    return np.column_stack([X, np.ones(len(X), X.dtype)])


def _seed(random_state):
    return int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))


def _softmax(p):
    e = np.exp(p - p.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_binary_fit_is_the_objective_minimised_by_lbfgs(rng):
    X, y = _binary(rng)
    clf = rc.ResNetClassifier(widths=(5,), max_iter=60, random_state=3, alpha=0).fit(X, y)
    assert clf.classes_.tolist() == ["no", "yes"] and clf.loss_name_ == "logistic"
    # the same objective (labels -1 for classes_[0], +1 for classes_[1]; inputs [x, 1])
    # driven by hand from the same start
    obj = rc.Objective(_augmented(X), np.where(y == "yes", 1.0, -1.0), loss="logistic",
                       widths=(5,))
    res = scipy.optimize.minimize(obj.fun_and_grad, obj.init(_seed(3)), jac=True,
                                  method="L-BFGS-B",
                                  options={"maxiter": 60, "gtol": 1e-5, "ftol": 4 * 2.0**-52})
    np.testing.assert_allclose(clf.params_, res.x, rtol=1e-9, atol=1e-12)
    assert clf.n_iter_ == res.nit and clf.loss_ == pytest.approx(res.fun, rel=1e-12)
    np.testing.assert_array_equal(clf.coef_, clf.parts_["w"])
    assert clf.coef_.shape == (4,) and clf.parts_["V"].shape == (4, 5)
    # predictions: scores, classes by sign, probabilities by the sigmoid
    p = obj.predict(clf.params_, _augmented(X))
    np.testing.assert_allclose(clf.decision_function(X), p, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.where(p > 0, "yes", "no"))
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-p)), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(X, y) == np.mean(clf.predict(X) == y)


def test_multiclass_is_one_network_on_the_cross_entropy():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = rc.ResNetClassifier(widths=(6,), random_state=0).fit(X, names)
    assert clf.loss_name_ == "cross_entropy" and clf.coef_.shape == (3, 5)
    obj = rc.Objective(_augmented(X), y, loss="cross_entropy", widths=(6,))
    assert clf.params_.size == obj.n_params  # one network, W of shape (3, d + 1)
    assert clf.loss_ == pytest.approx(obj.fun(clf.params_), rel=1e-12)
    scores = clf.decision_function(X)
    np.testing.assert_allclose(scores, obj.predict(clf.params_, _augmented(X)), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])
    np.testing.assert_allclose(clf.predict_proba(X), _softmax(scores), rtol=1e-10, atol=1e-15)
    assert clf.score(X, names) > 0.95
    # the certificate is that of the fitted point, against the best linear predictor
    cert = clf.certificate_
    assert cert.F == pytest.approx(clf.loss_, rel=1e-10)
    assert cert.F_lin_star == clf.linear_baseline_.infimum
    assert cert.gap == pytest.approx(cert.F - cert.F_lin_star, abs=1e-15)


def test_binary_cross_entropy_and_binary_only_losses(rng):
    X, y = _binary(rng)
    clf = rc.ResNetClassifier(loss="cross_entropy", widths=(3,), random_state=0).fit(X, y)
    assert clf.coef_.shape == (2, 4)
    scores = clf._model.predict(clf.params_, _augmented(X))
    np.testing.assert_allclose(clf.decision_function(X), scores[:, 1] - scores[:, 0])
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])
    hinge = rc.ResNetClassifier(loss="smoothed_hinge", widths=(3,), random_state=0)
    assert not hasattr(hinge, "predict_proba")
    assert hinge.fit(X, y).score(X, y) > 0.7
    three = np.where(X[:, 2] > 1, "maybe", y)
    with pytest.raises(ValueError, match="Only binary classification is supported with loss "
                                         "'smoothed_hinge'; got 3 classes"):
        hinge.fit(X, three)
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        rc.ResNetClassifier().fit(X, np.full(len(X), "no"))
    with pytest.raises(ValueError, match="loss must be one of"):
        rc.ResNetClassifier(loss="squared").fit(X, y)


@pytest.mark.parametrize("shape", [(), (1,), (2,)])
def test_regressor_shapes(rng, shape):
    X = rng.standard_normal((80, 3))
    Y = np.column_stack([np.sin(X[:, 0]), X[:, 1] ** 2])[:, :max(shape, default=1)]
    y = Y[:, 0] if shape == () else Y
    reg = rc.ResNetRegressor(widths=(6,), random_state=1, alpha=0.0).fit(X, y)
    assert reg.predict(X).shape == (80,) + shape
    obj = rc.Objective(_augmented(X), y, loss="squared", widths=(6,))
    assert reg.params_.size == obj.n_params
    np.testing.assert_allclose(reg.predict(X).reshape(80, -1),
                               obj.predict(reg.params_, _augmented(X)).reshape(80, -1),
                               rtol=1e-12)
    assert reg.score(X, y) > 0.5
    assert reg.certificate_.gap <= 0  # better than the best affine predictor on these data
    with pytest.raises(ValueError, match="y must have shape"):
        reg.objective(X, np.zeros((80, 3)))


def test_dtypes_and_tensors(rng):
    X, y = _binary(rng)
    X32 = X.astype(np.float32)
    clf = rc.ResNetClassifier(widths=(4,), max_iter=30, random_state=0).fit(X32, y)
    assert clf.params_.dtype == np.float32 and clf.decision_function(X).dtype == np.float32
    torch = pytest.importorskip("torch")
    Xt = torch.from_numpy(X32.copy()).requires_grad_(True)
    labels = torch.from_numpy((y == "yes").astype(np.int64))
    tc = rc.ResNetClassifier(widths=(4,), max_iter=30, random_state=0).fit(Xt, labels)
    np.testing.assert_array_equal(tc.params_, clf.params_)  # same data, same numbers
    assert tc.classes_.tolist() == [0, 1] and Xt.requires_grad and Xt.grad is None
    np.testing.assert_array_equal(tc.decision_function(Xt), clf.decision_function(X32))
    reg = rc.ResNetRegressor(widths=(3,), max_iter=20, random_state=0)
    assert reg.fit(Xt, torch.from_numpy(X32[:, 0])).predict(Xt).dtype == np.float32
    # JAX arrays: tests/test_interop.py (in a child process)


def test_sample_weight_reaches_the_objective(rng):
    X, y = _binary(rng)
    w = rng.random(len(X)) + 0.1
    clf = rc.ResNetClassifier(widths=(4,), max_iter=40, random_state=0).fit(X, y, w)
    obj = clf.objective(X, y, sample_weight=w)
    assert clf.loss_ == obj.fun(clf.params_)
    assert clf.loss_ != clf.objective(X, y).fun(clf.params_)
    assert clf.certificate_.F == pytest.approx(clf.loss_, rel=1e-12)


@pytest.mark.parametrize("solver", ["lbfgs", "trust-ncg", "trust-krylov", "pgd"])
def test_solvers(rng, solver):
    X, y = _binary(rng, noise=0.3)
    max_iter = 3000 if solver == "pgd" else 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = rc.ResNetClassifier(widths=(6,), solver=solver, max_iter=max_iter,
                                  alpha=0.0, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.85
    assert 1 <= clf.n_iter_ <= max_iter
    start = rc.Objective(_augmented(X), np.where(y == "yes", 1.0, -1.0), widths=(6,))
    assert clf.loss_ < start.fun(start.init(_seed(0)))


@pytest.mark.parametrize("solver", ["lbfgs", "trust-ncg", "pgd"])
def test_every_solver_minimises_the_same_penalised_objective(rng, solver, monkeypatch):
    """``F + alpha / 2 ||theta||^2``, written once (``_Penalised``) for the scipy solvers and
    PGD: the fit is the run of the solver on that function written out here; the
    hyperparameters are checked once per fit."""
    from resnet_core import estimators

    X, y = _binary(rng, n=80)
    calls = []
    check = estimators._ResNetBase._check_params
    monkeypatch.setattr(estimators._ResNetBase, "_check_params",
                        lambda self: calls.append(1) or check(self))
    alpha, tol, max_iter = 0.05, 1e-6, 40
    clf = rc.ResNetClassifier(widths=(3,), solver=solver, alpha=alpha, tol=tol,
                              max_iter=max_iter, random_state=0, certify=False).fit(X, y)
    assert len(calls) == 1
    obj = clf.objective(X, y)
    nh = obj.n_head_params

    def fun_and_grad(x):
        F, g = obj.fun_and_grad(x)
        g = np.array(g, dtype=np.float64)
        g[nh:] += alpha * x[nh:]
        return F + 0.5 * alpha * float(x[nh:] @ x[nh:]), g

    def hessp(x, p):
        Hp = np.array(obj.hessp(x, p), dtype=np.float64)
        Hp[nh:] += alpha * p[nh:]
        return Hp

    x0 = obj.init(_seed(0))
    if solver == "pgd":
        pen = estimators._Penalised.of(obj, alpha)
        x = rng.standard_normal(obj.n_params)
        assert pen.fun(x) == pytest.approx(fun_and_grad(x)[0], rel=1e-14)
        np.testing.assert_allclose(pen.grad(x), fun_and_grad(x)[1], rtol=1e-13)
        np.testing.assert_allclose(pen.hessp(x, x0), hessp(x, x0), rtol=1e-13)
        ref = rc.perturbed_gd(pen, x0, eps=tol, max_iter=max_iter, seed=_seed(0),
                              record_every=0).x
    elif solver == "lbfgs":
        ref = scipy.optimize.minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B", options={
            "maxiter": max_iter, "gtol": tol, "ftol": estimators._LBFGS_FTOL}).x
    else:
        ref = scipy.optimize.minimize(fun_and_grad, x0, jac=True, hessp=hessp, method=solver,
                                      options={"maxiter": max_iter, "gtol": tol}).x
    np.testing.assert_allclose(clf.params_, ref, rtol=1e-9, atol=1e-12)
    assert estimators._Penalised.of(obj, 0.0) is obj


def test_parameters_checked_and_convergence_warned(rng):
    X, y = _binary(rng)
    with pytest.raises(ValueError, match="solver must be one of"):
        rc.ResNetClassifier(solver="adam").fit(X, y)
    with pytest.raises(ValueError, match="tol must be a positive finite number"):
        rc.ResNetClassifier(tol=0.0).fit(X, y)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        rc.ResNetRegressor(max_iter=0).fit(X, X[:, 0])
    with pytest.raises(TypeError, match="widths must be a positive integer or a non-empty tuple"):
        rc.ResNetRegressor(widths="wide").fit(X, X[:, 0])
    with pytest.raises(TypeError, match="certify must be True, False or a dict"):
        rc.ResNetRegressor(certify="yes").fit(X, X[:, 0])
    with pytest.raises(ValueError, match="activation must be one of"):
        rc.ResNetRegressor(activation="gelu").fit(X, X[:, 0])
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        clf = rc.ResNetClassifier(max_iter=1).fit(X, y)
    assert not clf.converged_ and "ITERATIONS" in clf.solver_message_
    clf = rc.ResNetClassifier(widths=(3,), max_iter=20).fit(X, y)
    with pytest.raises(ValueError, match="y holds a label not seen in fit: 'maybe'"):
        clf.objective(X, np.where(X[:, 0] > 1, "maybe", y))
    with pytest.raises(ValueError, match="X has 2 features, but ResNetClassifier is expecting 3"):
        clf.predict(X[:, :2])


def test_certificate_options(rng):
    X, y = _binary(rng)
    off = rc.ResNetClassifier(widths=(3,), max_iter=20, certify=False).fit(X, y)
    assert off.certificate_ is None and off.linear_baseline_ is None
    opts = {"eps": 0.5, "curvature_tol": 1e-3, "radius": 0.5}
    clf = rc.ResNetClassifier(widths=(3,), max_iter=20, random_state=0, certify=opts).fit(X, y)
    cert = clf.certificate_
    assert cert.eps == 0.5 and cert.curvature_tol == 1e-3 and cert.radius == 0.5
    assert clf.linear_baseline_.radius == 0.5
    assert np.linalg.norm(clf.linear_baseline_.w) <= 0.5 * (1 + 1e-12)
    # the same report as check_sopsp on the estimator's objective
    again = rc.check_sopsp(clf.objective(X, y), clf.params_, **opts)
    assert again.to_dict() | {"timings": {}} == cert.to_dict() | {"timings": {}}


def test_pipeline_grid_search_and_pickle():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), rc.ResNetClassifier(max_iter=50, random_state=0))
    grid = GridSearchCV(pipe, {"resnetclassifier__widths": [(2,), (8,)],
                               "resnetclassifier__head": ["residual", "skip"]}, cv=3)
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4 and grid.best_score_ > 0.85
    best = grid.best_estimator_
    assert best.score(X, y) > 0.9 and best[-1].certificate_ is not None
    clone = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(clone.predict_proba(X), best.predict_proba(X))
    reg = make_pipeline(StandardScaler(), rc.ResNetRegressor(widths=(4,), random_state=0))
    scores = cross_val_score(reg, X[:, :3], X[:, 3], cv=KFold(3, shuffle=True, random_state=0))
    assert scores.min() > 0.5


def test_built_in_losses_unpickle_to_themselves():
    """The objectives tell losses apart by identity; a pickled estimator (or objective)
    must find the same objects after loading."""
    for name in ("squared", "logistic", "smoothed_hinge", "cross_entropy"):
        loss = rc.get_loss(name)
        assert pickle.loads(pickle.dumps(loss)) is loss
    vector = rc.losses.VECTOR_LOSSES["squared"]
    assert pickle.loads(pickle.dumps(vector)) is vector


def test_fitted_estimator_does_not_keep_the_data(rng):
    X = rng.standard_normal((5000, 20))
    reg = rc.ResNetRegressor(widths=(4,), max_iter=5).fit(X, X[:, 0])
    assert len(pickle.dumps(reg)) < X.nbytes / 20


def test_core_imports_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import resnet_core as rc\n"
            "rc.Objective([[0.0], [1.0]], [1.0, -1.0], widths=(2,))\n"
            "from resnet_core import *\n"
            "try:\n    rc.ResNetClassifier\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(rc.__file__).parents[1])))
    assert "pip install 'resnet-core[sklearn]'" in out.stdout


def _lemma1_tolerance(est, report) -> float:
    """``||grad|| ||G||`` with Lemma 1's direction ``G`` at the fitted ``(w, V)`` against
    the baseline's ``w*``: ``F - F_lin(w*) <= <G, grad F> <= ||G|| ||grad F||``."""
    G = rc.theory.lemma1_direction(est.parts_["w"], est.parts_["V"], report.w_star)
    return report.grad_norm * float(np.linalg.norm(G))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_certified_local_minimum_is_no_worse_than_linear(kind):
    """The paper's training-data guarantee (Corollary 1 with a tolerance): a fitted point
    certified as an eps-SOPSP with lambda_min >= 0 (to its accuracy) has
    ``F <= inf F_lin + ||grad|| ||G||``, the tolerance it certifies."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2))
    if kind == "classifier":
        y = np.where(X[:, 0] * X[:, 1] + X[:, 0] + 0.8 * rng.standard_normal(100) > 0, 1, 0)
        est, solver = rc.ResNetClassifier, "trust-ncg"
    else:
        y = np.sin(X[:, 0]) + X[:, 1] ** 2 + 0.3 * rng.standard_normal(100)
        est, solver = rc.ResNetRegressor, "lbfgs"
    certified = []
    for seed in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = est(widths=(2,), solver=solver, tol=1e-6, max_iter=2000, random_state=seed,
                      certify={"curvature_tol": 1e-9}).fit(X, y)
        report = fit.certificate_
        # Lemma 1 holds at every point (w != 0); the certified ones are the claim
        assert report.gap <= _lemma1_tolerance(fit, report) + 1e-12
        if report.is_sopsp:
            certified.append((fit, report))
            if len(certified) == 2:
                break
    assert certified, "no seed reached a certified local minimum"
    for fit, report in certified:
        assert report.grad_norm <= 1e-6
        assert report.lambda_min + report.lambda_min_error >= -1e-9
        assert report.baseline_attained and report.baseline_converged
        tolerance = _lemma1_tolerance(fit, report)
        assert tolerance < 1e-3
        assert report.F <= report.F_lin_star + tolerance
    # the baseline itself, independently: least squares / a convex logistic fit on [x, 1]
    Xa = _augmented(X)
    if kind == "regressor":
        coef = np.linalg.lstsq(Xa, y, rcond=None)[0]
        F_lin = 0.5 * np.mean((Xa @ coef - y) ** 2)
    else:
        s = np.where(y == 1, 1.0, -1.0)
        F_lin = scipy.optimize.minimize(lambda w: np.mean(np.logaddexp(0, -s * (Xa @ w))),
                                        np.zeros(3), method="BFGS", options={"gtol": 1e-10}).fun
    assert certified[0][1].F_lin_star == pytest.approx(F_lin, rel=1e-8)


def test_pandas_frames(rng):
    pd = pytest.importorskip("pandas")
    X, y = _binary(rng)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype("Float64")
    clf = rc.ResNetClassifier(widths=(3,), max_iter=20, random_state=0).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c"]
    ref = rc.ResNetClassifier(widths=(3,), max_iter=20, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.params_, ref.params_)
    frame.iloc[4, 1] = pd.NA
    with pytest.raises(ValueError, match="Input X contains NaN"):
        rc.ResNetClassifier().fit(frame, y)
