"""resnet_core: the training landscape of residual networks with a linear output layer.

Shamir, "Are ResNets Provably Better than Linear Predictors?" (NeurIPS 2018): the objective
``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]``, its derivatives, and the best linear
predictor it is compared with, computed by compiled streaming kernels.
"""

import os

# Idle OpenMP threads sleep instead of spinning between passes, where they would compete
# with NumPy's BLAS threads and the caller's own work (measured: L-BFGS on a 442-sample data
# set 35x slower with spinning threads).  Read when libgomp loads, so set before the kernels
# are imported; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import lipschitz, second_order, studies, theory  # noqa: E402
from ._guards import DataChangedError
from ._validation import TooLargeError
from .build import build_info
from .certify import BaselineWarning, LambdaMin, SOPSPReport, check_sopsp, reduced_hessian
from .features import ACTIVATIONS, MLPLayout
from .linear import LinearBaselineResult, linear_baseline
from .losses import BUILTIN_LOSSES, CustomLoss, Loss, get_loss
from .objective import FeatureObjective, Objective
from .state import PointState, SufficientStats
from .optim import (EllRhoEstimate, estimate_ell_rho, gradient_descent, perturbed_gd,
                    projected_sgd)
from .pointfile import PointFileError, load_point, save_point
from .saddles import StationaryPoint, theorem2_stationary_point
from .second_order import find_sopsp
from .separability import Separability, linear_separability
from .spectrum import (SpectralDensity, Spectrum, TraceEstimate, hessian_spectrum,
                       hessian_trace, spectral_density)

__all__ = [
    "ACTIVATIONS",
    "BUILTIN_LOSSES",
    "BaselineWarning",
    "CustomLoss",
    "DataChangedError",
    "EllRhoEstimate",
    "FeatureObjective",
    "LambdaMin",
    "LinearBaselineResult",
    "Loss",
    "MLPLayout",
    "Objective",
    "PointFileError",
    "PointState",
    "SOPSPReport",
    "Separability",
    "SpectralDensity",
    "Spectrum",
    "StationaryPoint",
    "SufficientStats",
    "TooLargeError",
    "TraceEstimate",
    "build_info",
    "check_sopsp",
    "estimate_ell_rho",
    "find_sopsp",
    "get_loss",
    "gradient_descent",
    "hessian_spectrum",
    "hessian_trace",
    "lipschitz",
    "linear_baseline",
    "linear_separability",
    "load_point",
    "perturbed_gd",
    "projected_sgd",
    "reduced_hessian",
    "save_point",
    "second_order",
    "spectral_density",
    "studies",
    "theorem2_stationary_point",
    "theory",
]

__version__ = "0.1.0"

# The scikit-learn estimators import scikit-learn, an optional dependency: loaded on first use
# of their names (and left out of __all__, so that a star import works without it).
_ESTIMATORS = ("ResNetClassifier", "ResNetRegressor")


def __getattr__(name):
    if name in _ESTIMATORS:
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'resnet_core' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ESTIMATORS))
