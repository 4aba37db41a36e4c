"""The command line: the quick demo's claims, and certify's handling of good and bad files."""

import json

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import cli

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines = []
    summary = cli.run_demo(out, quick=True, echo=lines.append)
    return out, summary, lines


def test_demo_writes_its_report(demo):
    out, summary, lines = demo
    for name in ("report.md", "summary.json", "figure1.png", "escape_trajectory.png",
                 "escape_vs_eps.png", "theorem4.png"):
        assert (out / name).stat().st_size > 1000, name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["checks"] == summary["checks"]
    assert str(out / "report.md") in lines[0]
    assert len(lines) == 1 + len(summary["checks"])
    report = (out / "report.md").read_text()
    assert "![Figure 1](figure1.png)" in report and "does not hold" not in report


def test_demo_claims(demo):
    _, s, _ = demo
    for row in s["example1"]:  # eigenvalues +-eps at (0, -1/eps)
        assert np.allclose(row["eigenvalues"], [-row["eps"], row["eps"]], rtol=1e-9)
        assert row["grad"] == [0.0, 0.0] and row["F"] == 0.5
    spurious = s["figure1"]["regularized"]["spurious_minima"]
    assert any(abs(m["w"] + 1) < 0.1 and abs(m["v"] + 1.6) < 0.1 for m in spurious)
    assert all(m["F"] > s["figure1"]["regularized"]["global_min_value"] for m in spurious)
    constrained = s["figure1"]["constrained"]["spurious_minima"]
    assert constrained and all(m["w"] < 0 and m["v"] < 0 for m in constrained)
    for name, curve in s["theorem4"].items():
        assert curve["slope"] <= -0.4, name
    assert all(s["checks"].values()), s["checks"]


def test_certify_feature_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    Phi = np.tanh(X @ rng.standard_normal((3, 2)))
    w, V = rng.standard_normal(3), rng.standard_normal((3, 2))
    np.savez(tmp_path / "point.npz", X=X, y=y, Phi=Phi, w=w, V=V)
    assert cli.main(["certify", str(tmp_path / "point.npz"), "--json", "--eps", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    fo = rc.FeatureObjective(X, Phi, y)
    assert out["F"] == pytest.approx(fo.fun(fo.pack(w, V)))
    assert out["eps"] == 0.5


def test_certify_mlp_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 4))
    y = X[:, 0] + 0.1 * rng.standard_normal(80)
    obj = rc.Objective(X, y, loss="squared", widths=(5, 3))
    np.savez(tmp_path / "net.npz", X=X, y=y, params=obj.init(2), widths=[5, 3], loss="squared")
    assert cli.main(["certify", str(tmp_path / "net.npz")]) == 0
    text = capsys.readouterr().out
    assert "eps-SOPSP" in text and "lambda_min" in text


@pytest.mark.parametrize("content, message", [
    (dict(X=np.ones((3, 2))), "lacks \\['y'\\]"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), w=np.ones(2)), "needs Phi, w and V"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), Phi=np.ones((3, 1)), w=np.ones(5), V=np.ones((2, 1))),
     "w must have shape"),
])
def test_certify_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(SystemExit, match=message):
        cli.main(["certify", str(path)])
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(SystemExit, match="cannot read"):
        cli.main(["certify", str(tmp_path / "junk.npz")])
