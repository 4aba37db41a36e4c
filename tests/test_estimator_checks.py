"""scikit-learn's own estimator checks, for both estimators: the defaults and variants that
run the other solvers, heads and losses.

About 30 s on 2 cores (the certificate is computed in every fit, so the checks run through
it too); the PGD variant (thousands of gradient steps per fit) is marked slow.
"""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import resnet_core as rc  # noqa: E402

ESTIMATORS = [
    rc.ResNetClassifier(),
    rc.ResNetRegressor(),
    rc.ResNetClassifier(solver="trust-krylov", head="skip", widths=(4,), max_iter=30,
                        fit_intercept=False, feature_bias=True, random_state=0),
    rc.ResNetClassifier(solver="trust-ncg", loss="smoothed_hinge", widths=(4, 4), max_iter=30,
                        random_state=0),
]
SLOW = [rc.ResNetRegressor(solver="pgd", widths=(4,), max_iter=2000, random_state=0)]


def expected_failures(estimator):
    if estimator.get_params()["solver"] == "trust-krylov":
        # Weights and repeated rows give the same objective up to rounding; on these
        # separable data every decrease is near rounding, so the trust-region's accept /
        # reject decisions, and so the end of its path, differ (predictions by ~1e-2).
        return {"check_sample_weight_equivalence_on_dense_data":
                "a non-convex optimiser's path amplifies rounding"}
    if isinstance(estimator, rc.ResNetRegressor) and estimator.get_params()["alpha"] > 0:
        # The same again for the penalised default: on these data alpha = 0 interpolates
        # (F -> 0, both paths end at the same exact fit), alpha > 0 stops both paths (L-BFGS
        # or PGD) at their tolerance, within it of each other (predictions by ~1e-4 > 1e-7).
        return {"check_sample_weight_equivalence_on_dense_data":
                "two optimiser paths stop within tol of each other"}
    return {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::resnet_core.BaselineWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::resnet_core.BaselineWarning")
@parametrize_with_checks(SLOW, expected_failed_checks=expected_failures)
def test_sklearn_compatible_pgd(estimator, check):
    check(estimator)
