"""Real data sets bundled with scikit-learn (an optional dependency: ``pip install
resnet-core[demo]``), standardised, with a constant-1 column for the bias (Remark 1).

- ``"breast_cancer"``: 569 x 30, labels -1 (malignant) / +1 (benign), for the logistic loss.
- ``"diabetes"``: 442 x 10, disease progression standardised, for the squared loss.
- ``"digits_binary"``: 1797 x 64 pixel intensities, +1 for digits 5-9, -1 for 0-4.
- ``"digits"``: the same inputs with their 10 classes, labels 0..9 (cross-entropy).
"""

from __future__ import annotations

import numpy as np

NAMES = ("breast_cancer", "diabetes", "digits_binary", "digits")


def _standardise(X):
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0  # constant pixels of the digits stay 0
    return np.column_stack([(X - X.mean(axis=0)) / sd, np.ones(len(X))])


def load(name: str):
    """``(X, y)`` of a bundled data set (see the module notes)."""
    try:
        from sklearn import datasets
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError("the real data sets come from scikit-learn: "
                          "pip install 'resnet-core[demo]'") from err
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return _standardise(X), np.where(y > 0, 1.0, -1.0)
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        return _standardise(X), (y - y.mean()) / y.std()
    if name == "digits_binary":
        X, y = datasets.load_digits(return_X_y=True)
        return _standardise(X.astype(float)), np.where(y >= 5, 1.0, -1.0)
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return _standardise(X.astype(float)), y.astype(np.intp)
    raise ValueError(f"name must be one of {list(NAMES)}; got {name!r}")
