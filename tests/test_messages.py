"""Messages that say one thing (issue 19): a certificate line states one decision and its
reason, a timing measures what it names, a figure shows the points a log axis cannot."""

import time

import numpy as np
import pytest

import resnet_core as rc
from resnet_core.objective import FeatureObjective


def test_baseline_row_on_memmap_data_states_one_decision(tmp_path):
    """Out-of-core quasi-separable data: neither the minimiser nor the iterates decide, the
    separability LP is not run, so whether the infimum is attained is not decided; the row
    says that and its reason only."""
    rng = np.random.default_rng(0)
    n, d = 300, 3
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    X[:20, 0] = 0.0  # both labels on the hyperplane x_0 = 0: quasi-separable
    y[:20] = np.where(np.arange(20) % 2, 1.0, -1.0)
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    fo = rc.FeatureObjective(Xm, np.tanh(X[:, :2]), y, loss="logistic", n_threads=1)
    r = rc.check_sopsp(fo, 0.1 * np.ones(fo.n_params), eps=1e-3)
    assert r.baseline_attained is None
    row = next(line for line in str(r).splitlines() if line.startswith("inf F_lin"))
    assert "whether attained is not decided (" in row and "data in memory" in row
    assert "attained;" not in row and "minimum attained" not in row


@pytest.mark.filterwarnings("ignore:.*did not converge")
def test_estimator_certificate_times_the_baseline_it_computes(monkeypatch):
    """The certificate's ``baseline`` timing includes computing the baseline (a delay
    injected into that computation shows in it)."""
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    original = FeatureObjective.linear_baseline

    def slow(self, radius=None):
        if radius not in self._baselines:
            time.sleep(0.3)
        return original(self, radius)

    monkeypatch.setattr(FeatureObjective, "linear_baseline", slow)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(60) > 0, 1, 0)
    clf = rc.ResNetClassifier(widths=(2,), random_state=0).fit(X, y)
    t = clf.certificate_.timings
    assert t["baseline"] >= 0.3 and "baseline (cached)" not in t
    assert clf.linear_baseline_ is not None
    assert "baseline " in str(clf.certificate_)
    # a baseline computed before the certificate is reported as cached, not as its cost
    fo = clf.objective(X, y).partial(clf.params_)
    fo.linear_baseline()
    r = rc.check_sopsp(fo, clf.params_[:fo.n_params], eps=1e-3)
    assert "baseline (cached)" in r.timings and "baseline" not in r.timings


def test_theorem4_figure_marks_nonpositive_gaps():
    pytest.importorskip("matplotlib")
    from resnet_core.reproduce import plots

    curves = {"a": {"loss": "logistic", "slope": -0.5,
                    "rows": [{"T": 1e3, "gap": 0.1}, {"T": 1e4, "gap": 0.03},
                             {"T": 1e6, "gap": -2e-4}]},
              "b": {"loss": "squared", "slope": float("nan"),
                    "rows": [{"T": 1e3, "gap": 0.0}, {"T": 1e6, "gap": -1e-3}]}}
    fig = plots.theorem4_figure(curves)
    ax = fig.axes[0]
    marks = [ln for ln in ax.lines if ln.get_marker() == "v" and len(ln.get_xdata())]
    assert len(marks) == 2
    assert sorted(np.round(np.log10(np.concatenate([m.get_xdata() for m in marks])))) == [3, 6, 6]
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "gap <= 0" in notes and "a T = 1e+06: -0.0002" in notes and "b T = 1e+03: 0" in notes
    import matplotlib.pyplot as plt
    plt.close(fig)
