"""The estimators' hyperparameters (issue 21): alpha on theta only, targets in units of
y_scale_, early stopping, warm starts, a progress bar on request; and (slow) defaults
within 0.05 of the linear models under 5-fold cross-validation."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import resnet_core as rc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _regression(rng, n=150, d=4, noise=0.5):
    X = rng.standard_normal((n, d))
    return X, np.sin(2 * X[:, 0]) + X[:, 1] + noise * rng.standard_normal(n)


def test_alpha_penalises_theta_only(rng):
    X, y = _regression(rng)
    kw = dict(widths=(6,), max_iter=500, tol=1e-8, random_state=0)
    free = rc.ResNetRegressor(alpha=0.0, **kw).fit(X, y)
    tied = rc.ResNetRegressor(alpha=1.0, **kw).fit(X, y)
    obj = tied.objective(X, y)
    nh = obj.n_head_params
    assert np.linalg.norm(tied.params_[nh:]) < 0.5 * np.linalg.norm(free.params_[nh:])
    # stationary for F + alpha/2 ||theta||^2 on the solver's targets y / y_scale_
    scaled = rc.Objective(obj.X, y / tied.y_scale_, loss="squared", widths=(6,))
    z = tied.params_.copy()
    z[:obj.d] /= tied.y_scale_
    g = scaled.grad(z)
    g[nh:] += 1.0 * z[nh:]
    assert np.abs(g).max() < 1e-6
    # the certificate and loss_ are about the unpenalised F in the units of y
    assert tied.loss_ == pytest.approx(obj.fun(tied.params_), rel=1e-12)
    assert tied.certificate_.F == pytest.approx(tied.loss_, rel=1e-12)
    assert tied.certificate_.grad_norm == pytest.approx(
        np.linalg.norm(obj.grad(tied.params_)[:nh]), rel=1e-10)
    assert free.score(X, y) > tied.score(X, y)  # the penalty costs training fit
    # PGD runs on the penalised objective too
    pgd = [rc.ResNetRegressor(alpha=a, solver="pgd", widths=(6,), max_iter=2000,
                              random_state=0).fit(X, y) for a in (0.0, 1.0)]
    norms = [np.linalg.norm(p.params_[nh:]) for p in pgd]
    assert norms[1] < 0.5 * norms[0] and pgd[1].loss_ > pgd[0].loss_


def test_regressor_is_the_same_in_any_units(rng):
    X, y = _regression(rng)
    a = rc.ResNetRegressor(widths=(4,), max_iter=50, random_state=0).fit(X, y)
    b = rc.ResNetRegressor(widths=(4,), max_iter=50, random_state=0).fit(X, 1000.0 * y)
    assert b.y_scale_ == pytest.approx(1000.0 * a.y_scale_, rel=1e-12)
    np.testing.assert_allclose(b.predict(X), 1000.0 * a.predict(X), rtol=1e-7, atol=1e-7)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.predict(X), a.objective(X, y).predict(a.params_, a._augment(X)),
                               rtol=1e-12)


def test_early_stopping_returns_the_best_validation_point(rng):
    X, y = _regression(rng, n=200, noise=1.0)
    es = rc.ResNetRegressor(widths=(16,), alpha=0.0, max_iter=2000, early_stopping=True,
                            n_iter_no_change=5, random_state=0).fit(X, y)
    scores = es.validation_scores_
    assert len(scores) == es.n_iter_ < 2000 and "early stopping" in es.solver_message_
    assert es.best_validation_score_ == max(scores)
    assert np.argmax(scores) < len(scores) - 1  # stopped after the best, returned the best
    assert rc.ResNetRegressor(max_iter=20).fit(X, y).validation_scores_ is None
    clf = rc.ResNetClassifier(widths=(4,), max_iter=30, early_stopping=True,
                              validation_fraction=0.25, random_state=0)
    labels = np.where(X[:, 0] > 0, "a", "b")
    clf.fit(X, labels)
    assert all(0 <= s <= 1 for s in clf.validation_scores_)
    assert clf.certificate_.F == pytest.approx(clf.loss_)  # certified on the fitted part


def test_warm_start_continues(rng):
    X, y = _regression(rng)
    kw = dict(widths=(4,), max_iter=5, random_state=0)
    cold = rc.ResNetRegressor(**kw).fit(X, y)
    again = rc.ResNetRegressor(**kw).fit(X, y).fit(X, y)
    np.testing.assert_array_equal(cold.params_, again.params_)  # no warm start: a refit
    warm = rc.ResNetRegressor(warm_start=True, **kw).fit(X, y)
    first = warm.loss_
    warm.fit(X, y)
    assert warm.loss_ < first and not np.array_equal(warm.params_, cold.params_)
    with pytest.raises(ValueError, match="features"):
        warm.fit(X[:, :3], y)


def test_verbose_is_one_bar_and_silence_is_default(rng, capsys, tqdm_bars):
    bars = tqdm_bars
    X, y = _regression(rng)
    quiet = rc.ResNetRegressor(widths=(4,), max_iter=15, random_state=0).fit(X, y)
    assert bars == [] and capsys.readouterr() == ("", "")
    loud = rc.ResNetRegressor(widths=(4,), max_iter=15, verbose=1, random_state=0).fit(X, y)
    assert [(b.desc, b.total, b.n) for b in bars] == [("ResNetRegressor", 15, loud.n_iter_)]
    np.testing.assert_array_equal(quiet.params_, loud.params_)


def test_new_parameters_checked(rng):
    X, y = _regression(rng, n=30)
    with pytest.raises(ValueError, match="alpha must be a non-negative"):
        rc.ResNetRegressor(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction must lie in"):
        rc.ResNetRegressor(early_stopping=True, validation_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match="n_iter_no_change"):
        rc.ResNetRegressor(n_iter_no_change=0).fit(X, y)
    with pytest.raises(ValueError, match="early_stopping needs a scipy solver"):
        rc.ResNetRegressor(solver="pgd", alpha=0.0, early_stopping=True).fit(X, y)


@pytest.mark.slow
def test_defaults_are_within_005_of_the_linear_models():
    """Issue 21's bar: 5-fold CV of the defaults on standardised data."""
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    cv = KFold(5, shuffle=True, random_state=0)
    ridge = cross_val_score(make_pipeline(StandardScaler(), RidgeCV()), X, y, cv=cv).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = cross_val_score(make_pipeline(StandardScaler(), rc.ResNetRegressor(
            certify=False, random_state=0)), X, y, cv=cv).mean()
    assert net >= ridge - 0.05, (net, ridge)
    X, y = load_digits(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    logreg = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                             X, y, cv=cv).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = cross_val_score(make_pipeline(StandardScaler(), rc.ResNetClassifier(
            certify=False, random_state=0)), X, y, cv=cv).mean()
    assert net >= logreg - 0.05, (net, logreg)


def test_certificate_time_counts_the_baseline(rng, monkeypatch):
    """The certificate's "time" row names the baseline: it must include computing it (the
    fit used to compute it first, and the row then showed the cached look-up)."""
    import time

    from resnet_core import _head_objective as objective  # where linear_baseline lives

    slow = objective.baseline_on_engine

    def baseline_on_engine(*args, **kwargs):
        time.sleep(0.3)
        return slow(*args, **kwargs)

    monkeypatch.setattr(objective, "baseline_on_engine", baseline_on_engine)
    X, y = _regression(rng, n=60)
    reg = rc.ResNetRegressor(widths=(3,), max_iter=10, random_state=0).fit(X, y)
    assert reg.certificate_.timings["baseline"] >= 0.3
    assert reg.linear_baseline_.fun == pytest.approx(reg.certificate_.F_lin_star, rel=1e-12)
