"""The estimators' generalisation and cost (issue 21): 5-fold cross-validation of the
default ResNetRegressor on standardised diabetes and ResNetClassifier on standardised digits
against RidgeCV / LogisticRegression, and what the certificate adds to a fit.

    python benchmarks/estimators_cv.py [--repeat 3]

Prints per model (the defaults, and ``alpha=0``: no penalty) the mean 5-fold score and the cross-validation wall time (median of
``--repeat`` runs, ``certify=False`` as in a grid search), then for one fit of each default
estimator on the whole data set the median time of ``fit`` with ``certify=False`` and with
``certify=True``, and the certificate's share.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import resnet_core as rc


def _median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    cases = [("diabetes R^2", load_diabetes(return_X_y=True), KFold(5, shuffle=True,
                                                                    random_state=0),
              [("RidgeCV()", RidgeCV()),
               ("ResNetRegressor()", rc.ResNetRegressor(certify=False, random_state=0)),
               ("ResNetRegressor(alpha=0)", rc.ResNetRegressor(alpha=0.0, certify=False,
                                                               random_state=0))]),
             ("digits accuracy", load_digits(return_X_y=True),
              StratifiedKFold(5, shuffle=True, random_state=0),
              [("LogisticRegression(max_iter=1000)", LogisticRegression(max_iter=1000)),
               ("ResNetClassifier()", rc.ResNetClassifier(certify=False, random_state=0)),
               ("ResNetClassifier(alpha=0)", rc.ResNetClassifier(alpha=0.0, certify=False,
                                                                 random_state=0))])]
    print(f"{'data':<16} {'model':<34} {'5-fold score':>12} {'CV time s':>10}")
    for name, (X, y), cv, models in cases:
        for label, model in models:
            pipe = make_pipeline(StandardScaler(), model)
            t, scores = _median_time(lambda: cross_val_score(pipe, X, y, cv=cv), args.repeat)
            print(f"{name:<16} {label:<34} {scores.mean():12.4f} {t:10.2f}")
    print(f"\n{'data':<16} {'fit, certify=False s':>21} {'fit, certify=True s':>20} "
          f"{'certificate share':>18}")
    for name, (X, y), _, models in cases:
        Xs = StandardScaler().fit_transform(X)
        est = models[1][1]
        plain, _ = _median_time(lambda: est.set_params(certify=False).fit(Xs, y), args.repeat)
        full, _ = _median_time(lambda: est.set_params(certify=True).fit(Xs, y), args.repeat)
        print(f"{name:<16} {plain:21.2f} {full:20.2f} {(full - plain) / full:18.0%}")


if __name__ == "__main__":
    main()
