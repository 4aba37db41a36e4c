"""resnet_core: the training landscape of residual networks with a linear output layer.

Shamir, "Are ResNets Provably Better than Linear Predictors?" (NeurIPS 2018): the objective
``F(w, V, theta) = E[l(w^T (x + V f_theta(x)); y)]``, its derivatives, and the best linear
predictor it is compared with, computed by compiled streaming kernels.
"""

from .features import ACTIVATIONS, MLPLayout
from .linear import LinearBaselineResult, linear_baseline
from .losses import BUILTIN_LOSSES, CustomLoss, Loss, get_loss
from .objective import FeatureObjective, Objective, SufficientStats

__all__ = [
    "ACTIVATIONS",
    "BUILTIN_LOSSES",
    "CustomLoss",
    "FeatureObjective",
    "LinearBaselineResult",
    "Loss",
    "MLPLayout",
    "Objective",
    "SufficientStats",
    "get_loss",
    "linear_baseline",
]

__version__ = "0.1.0"
