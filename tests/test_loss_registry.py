"""The loss registry: each entry's constants against its compiled formula, and a loss added
by one entry alone (a Huber loss, registered here and nowhere else) working through the
objectives, the linear baseline and the certificate."""

import math
import pickle

import numba
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

import reference as ref
import resnet_core as rc
from resnet_core.losses import BUILTIN_LOSSES, BuiltinLoss, register_loss, vectorise_scalar
from conftest import make_data, rel_err

#: A fine grid of margins: steps of 1e-4 on [-8, 8] and the far ends.
MARGINS = np.concatenate([np.linspace(-8.0, 8.0, 160_001), [-1e4, -50.0, 50.0, 1e4]])


def _on_grid(loss, y):
    p = MARGINS * y  # margin y p on the grid
    return loss.derivatives(p, np.full(p.size, y))


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_registered_constants_are_the_formulas(name):
    """``sup |l'|``, ``sup l''`` and the Lipschitz constant of ``l''`` of each entry bound the
    compiled formula on a fine grid of margins (labels -1 and +1) and are attained to the
    grid's resolution (finite ones)."""
    loss = BUILTIN_LOSSES[name]
    for y in (-1.0, 1.0):
        _, d1, d2 = _on_grid(loss, y)
        top1, top2 = np.abs(d1).max(), d2.max()
        assert top1 <= loss.sup_d1 * (1 + 1e-12)
        assert top2 <= loss.sup_d2 * (1 + 1e-12) and top2 >= loss.sup_d2 * (1 - 1e-6)
        if math.isfinite(loss.sup_d1) and name != "squared":
            assert top1 >= loss.sup_d1 * (1 - 1e-6)
        inner = np.abs(MARGINS) <= 8
        slope = np.abs(np.diff(d2[inner]) / np.diff(MARGINS[inner]))
        assert slope.max() <= loss.sup_d3 * (1 + 1e-6) + 1e-9
        if loss.sup_d3 > 0:
            assert slope.max() >= loss.sup_d3 * (1 - 1e-3)


def test_smoothed_hinge_curvature_is_one_over_h():
    """l'' peaks at 1/h where t = 1 - y p = 0 (the value _gram_pass's error bound uses)."""
    loss = BUILTIN_LOSSES["smoothed_hinge"]
    _, _, d2 = loss.derivatives(np.array([1.0, -1.0]), np.array([1.0, -1.0]))
    assert np.array_equal(d2, [1 / rc.losses.SMOOTHING] * 2) and loss.sup_d2 == 2.0


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_bounds_hold_on_the_interval(name, rng):
    """``bounds(P, y)`` bounds ``l``, ``|l'|``, ``|l''|`` and the slope of ``l''`` over
    ``|p| <= P``, with equality for ``l`` (attained at an end)."""
    loss = BUILTIN_LOSSES[name]
    for P in (0.0, 0.3, 2.0, 9.0):
        for y in ((-1.0, 1.0) if loss.binary_labels else (-2.5, 0.0, 1.7)):
            p = np.linspace(-P, P, 20_001)
            l, d1, d2 = loss.derivatives(p, np.full(p.size, y))
            L0, L1, L2, L3 = (np.asarray(v).item() for v in loss.bounds([P], [y]))
            assert l.max() <= L0 * (1 + 1e-12) + 1e-300
            assert l.max() >= L0 * (1 - 1e-12)
            assert np.abs(d1).max() <= L1 * (1 + 1e-12) + 1e-300
            assert np.abs(d2).max() <= L2 * (1 + 1e-12)
            if P > 0:
                assert np.abs(np.diff(d2) / np.diff(p)).max() <= L3 * (1 + 1e-6) + 1e-9


def test_fields_callers_read():
    squared, logistic, hinge = (BUILTIN_LOSSES[n] for n in ("squared", "logistic",
                                                            "smoothed_hinge"))
    assert squared.quadratic and squared.vector_form == "squared" and not squared.margin
    assert logistic.margin and hinge.margin and logistic.binary_labels and hinge.binary_labels
    assert hinge.zero_margin == 1.5 and logistic.zero_margin is None
    assert rc.get_loss("cross_entropy").proba is not None and logistic.proba is not None
    assert hinge.proba is None and squared.proba is None
    assert rc.losses.proba_losses() == ("logistic", "cross_entropy")
    assert rc.ResNetClassifier.__module__ and "smoothed_hinge" in rc.estimators.binary_losses()
    assert not hasattr(rc.ResNetClassifier(loss="smoothed_hinge"), "predict_proba")
    assert hasattr(rc.ResNetClassifier(loss="logistic"), "predict_proba")
    s = np.array([-800.0, -1.0, 0.0, 2.0, 800.0])
    pr = logistic.proba(s)
    assert np.allclose(pr.sum(axis=1), 1) and np.allclose(pr[:, 1], expit(s))


def test_register_loss_refuses_bad_entries():
    with pytest.raises(ValueError, match="registered already"):
        register_loss(BuiltinLoss("logistic", formula=lambda p, y: (p, p, p)))
    with pytest.raises(ValueError, match="registered already"):
        register_loss(BuiltinLoss("cross_entropy", formula=lambda p, y: (p, p, p)))
    with pytest.raises(ValueError, match="exactly one of code"):
        BuiltinLoss("x")
    with pytest.raises(TypeError, match="BuiltinLoss"):
        register_loss(rc.CustomLoss(lambda p, y: (p, p, p)))
    # a code the kernels do not know would run some other formula, or none
    with pytest.raises(ValueError, match="kernel code"):
        BuiltinLoss("x", code=99)
    # the constants are bounds the theorems rely on: a negative or NaN one is refused
    for label in ("sup_d1", "sup_d2", "sup_d3"):
        for bad in (-1.0, float("nan")):
            with pytest.raises(ValueError, match=label):
                BuiltinLoss("x", formula=lambda p, y: (p, p, p), **{label: bad})
    assert BuiltinLoss("x", formula=lambda p, y: (p, p, p), sup_d1=float("inf")).sup_d1 > 0


# -- a Huber loss: one registry entry, no change to any other file ---------------------------

DELTA = 1.0


@numba.njit
def _huber_scalar(p, y):
    """``l = r^2 / 2`` for ``|r| <= delta``, ``delta (|r| - delta / 2)`` beyond (``r = p - y``)."""
    r = p - y
    if abs(r) <= DELTA:
        return 0.5 * r * r, r, 1.0
    return DELTA * (abs(r) - 0.5 * DELTA), DELTA * math.copysign(1.0, r), 0.0


def _huber_reference(p, y):
    """The NumPy reference (tests/reference.py's loss convention)."""
    r = np.asarray(p, np.float64) - np.asarray(y, np.float64)
    inside = np.abs(r) <= DELTA
    return (np.where(inside, 0.5 * r * r, DELTA * (np.abs(r) - 0.5 * DELTA)),
            np.clip(r, -DELTA, DELTA), inside.astype(np.float64))


def _huber_bounds(P, y):
    R = P + np.abs(y)  # |p - y| <= R on |p| <= P
    return (np.where(R <= DELTA, 0.5 * R * R, DELTA * (R - 0.5 * DELTA)), np.minimum(R, DELTA),
            np.ones_like(R), None)  # l'' jumps at |r| = delta: no Lipschitz constant


@pytest.fixture
def huber(monkeypatch):
    entry = register_loss(BuiltinLoss("huber", formula=vectorise_scalar(_huber_scalar),
                                      sup_d1=DELTA, sup_d2=1.0, bounds=_huber_bounds))
    monkeypatch.setitem(ref.LOSSES, "huber", _huber_reference)
    yield entry
    del BUILTIN_LOSSES["huber"]


def _off_the_kinks(r):
    """The finite differences below need every residual away from ``|r| = delta``."""
    assert np.abs(np.abs(r) - DELTA).min() > 1e-3 and (np.abs(r) > DELTA).any()


@pytest.mark.parametrize("head", ["residual", "skip"])
def test_huber_feature_objective(huber, head, rng):
    X, y, sw = make_data(rng, 80, 4, "squared")
    Phi = np.tanh(rng.standard_normal((80, 3)))
    fo = rc.FeatureObjective(X, Phi, y, loss="huber", head=head, sample_weight=sw)
    assert fo.loss is huber and pickle.loads(pickle.dumps(fo.loss)) is huber
    z = 0.5 * rng.standard_normal(fo.n_params)
    w = z[:4]
    p = X @ w + (Phi @ (z[4:].reshape(4, 3).T @ w) if head == "residual" else Phi @ z[4:])
    _off_the_kinks(p - y)
    kw = dict(loss="huber", head=head, sample_weight=sw)
    F, g = ref.feature_value_grad(X, Phi, y, z, **kw)
    assert fo.fun(z) == pytest.approx(F, rel=1e-13) and rel_err(fo.grad(z), g) < 1e-12
    v = rng.standard_normal(fo.n_params)
    assert rel_err(fo.hessp(z, v), ref.feature_hessp(X, Phi, y, z, v, **kw)) < 1e-12
    h = 1e-6
    fd = (fo.grad(z + h * v) - fo.grad(z - h * v)) / (2 * h)
    assert rel_err(fo.hessp(z, v), fd) < 1e-6
    e = np.eye(fo.n_params)[0]
    assert (fo.fun(z + h * e) - fo.fun(z - h * e)) / (2 * h) == pytest.approx(fo.grad(z)[0],
                                                                            rel=1e-6)


def test_huber_objective(huber, rng):
    X, y, sw = make_data(rng, 60, 3, "squared")
    obj = rc.Objective(X, y, loss="huber", widths=(3,), sample_weight=sw)
    x = obj.init(1) + 0.3 * rng.standard_normal(obj.n_params)
    _off_the_kinks(obj.predict(x) - y)
    kw = dict(widths=(3,), loss="huber", sample_weight=sw)
    assert obj.fun(x) == pytest.approx(ref.value(X, y, x, **kw), rel=1e-13)
    assert rel_err(obj.grad(x), ref.gradient(X, y, x, **kw)) < 1e-12
    v = rng.standard_normal(obj.n_params)
    assert rel_err(obj.hessp(x, v), ref.hessp_fd(X, y, x, v, eps=1e-5, **kw)) < 1e-6


def test_huber_baseline_and_certificate(huber, rng):
    X, y, _ = make_data(rng, 200, 3, "squared", weighted=False)
    y = y + 3.0 * (rng.random(200) < 0.1)  # outliers, beyond delta
    res = rc.linear_baseline(X, y, loss="huber")
    best = minimize(lambda w: _huber_reference(X @ w, y)[0].mean(), np.zeros(3),
                    jac=lambda w: X.T @ _huber_reference(X @ w, y)[1] / 200, method="BFGS",
                    options={"gtol": 1e-12})
    assert res.converged and res.infimum == pytest.approx(best.fun, rel=1e-9)
    Phi = np.tanh(X @ rng.standard_normal((3, 2)))
    fo = rc.FeatureObjective(X, Phi, y, loss="huber")
    z = np.concatenate([res.w, np.zeros(6)])
    report = rc.check_sopsp(fo, z, eps=1e-4)
    assert report.gap == pytest.approx(fo.fun(z) - res.infimum, abs=1e-9)
    bounds = rc.lipschitz.derivative_bounds(fo, 1.0, 1.0)
    assert bounds.mu2 is None and "Lipschitz constant of l''" in bounds.reason
    skip = rc.Objective(X, y, loss="huber", widths=(2,), head="skip", n_threads=1)
    with pytest.raises(TypeError, match="compiled into the kernels.*the huber loss"):
        rc.projected_sgd(skip, skip.init(0), T=5, radius=1.0)



def _sq_hinge_scalar(p, y):
    """The squared hinge ``max(0, 1 - y p)^2 / 2``, labels -1/+1."""
    t = 1.0 - y * p
    if t <= 0.0:
        return 0.0, 0.0, 0.0
    return 0.5 * t * t, -y * t, 1.0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_registered_binary_loss_fits_the_classifier(rng):
    """``register_loss``: the name then works in the estimators too (the classifier reads
    the registry when it fits, not a list made at import)."""
    from resnet_core import estimators  # imported before the loss is registered

    assert estimators.ResNetClassifier
    entry = register_loss(BuiltinLoss("sq_hinge", formula=vectorise_scalar(_sq_hinge_scalar),
                                      binary_labels=True, margin=True, sup_d1=math.inf,
                                      sup_d2=1.0))
    try:
        X = rng.standard_normal((60, 3))
        y = np.where(X[:, 0] + 0.3 * rng.standard_normal(60) > 0, "b", "a")
        clf = rc.ResNetClassifier(loss="sq_hinge", widths=(2,), max_iter=20,
                                  certify=False).fit(X, y)
        assert clf.loss_name_ == "sq_hinge" and clf.predict(X).shape == (60,)
        assert not hasattr(clf, "predict_proba")  # no proba in the entry
        assert not clf.__sklearn_tags__().classifier_tags.multi_class
        with pytest.raises(ValueError, match="Only binary classification"):
            rc.ResNetClassifier(loss="sq_hinge", widths=(2,), certify=False).fit(
                X, np.arange(60) % 3)
    finally:
        del BUILTIN_LOSSES[entry.name]


def _twice_logistic(p, y):
    l, d1, d2 = BUILTIN_LOSSES["logistic"].derivatives(p, y)
    return 2 * l, 2 * d1, 2 * d2


def test_an_unregistered_entry_pickles_as_itself():
    """Only the registered entry of a name travels by that name: an entry that is not in
    the registry (here one reusing the name ``logistic``) is never swapped for it."""
    mine = BuiltinLoss("logistic", formula=_twice_logistic, binary_labels=True)
    back = pickle.loads(pickle.dumps(mine))
    assert back is not BUILTIN_LOSSES["logistic"] and back.formula is _twice_logistic
    p, y = np.array([0.3, -2.0]), np.array([1.0, -1.0])
    np.testing.assert_array_equal(back.derivatives(p, y)[0], mine.derivatives(p, y)[0])
    registered = BUILTIN_LOSSES["smoothed_hinge"]
    assert pickle.loads(pickle.dumps(registered)) is registered
    import copy

    assert copy.deepcopy(registered) is registered


def _squared_formula(p, y):
    return 0.5 * (p - y) ** 2, p - y, np.ones_like(p)


def test_a_registered_quadratic_loss_runs_on_the_moments(rng):
    """A ``quadratic`` entry given by its formula runs PGD compiled on the data's moments,
    as the squared loss does (it computed them, then streamed)."""
    register_loss(BuiltinLoss("squared_formula", formula=_squared_formula, quadratic=True,
                              sup_d1=math.inf, sup_d2=1.0, sup_d3=0.0))
    try:
        X, y, sw = make_data(rng, 70, 3, "squared")
        Phi = np.tanh(rng.standard_normal((70, 2)))
        kw = dict(eps=1e-4, ell=4.0, rho=4.0, delta_f=1.0, f_escape=1e-6, max_iter=400)
        runs = [rc.perturbed_gd(rc.FeatureObjective(X, Phi, y, loss=name, sample_weight=sw,
                                                    n_threads=1), np.full(9, 0.1), **kw)
                for name in ("squared", "squared_formula")]
        assert runs[1].compiled and runs[0].compiled
        np.testing.assert_allclose(runs[1].x, runs[0].x, rtol=1e-12, atol=1e-14)
        assert runs[1].nit == runs[0].nit
    finally:
        del BUILTIN_LOSSES["squared_formula"]
