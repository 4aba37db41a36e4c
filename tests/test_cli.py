"""The command line: the quick demo's claims, and certify's handling of good and bad files."""

import json
import re

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
    np.savez(tmp_path / "point.npz", X=X, y=y, Phi=Phi, w=w, V=V, loss="logistic",
             head="residual")  # by hand: the keys save_point writes
    fo = rc.FeatureObjective(X, Phi, y)
    verdict = rc.check_sopsp(fo, fo.pack(w, V), eps=0.5).is_sopsp
    status = cli.main(["certify", str(tmp_path / "point.npz"), "--json", "--eps", "0.5"])
    assert status == cli.CERTIFY_EXIT[verdict]
    out = json.loads(capsys.readouterr().out)
    assert out["F"] == pytest.approx(fo.fun(fo.pack(w, V)))
    assert out["eps"] == 0.5 and out["is_sopsp"] == verdict
    assert out["problem"]["kind"] == "FeatureObjective" and out["problem"]["loss"] == "logistic"


def test_certify_mlp_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 4))
    y = X[:, 0] + 0.1 * rng.standard_normal(80)
    obj = rc.Objective(X, y, loss="squared", widths=(5, 3))
    rc.save_point(tmp_path / "net.npz", obj, obj.init(2))
    assert cli.main(["certify", str(tmp_path / "net.npz")]) == 1  # a random start
    text = capsys.readouterr().out
    assert "eps-SOPSP" in text and "lambda_min" in text and "activation      tanh" in text


@pytest.mark.parametrize("content, message", [
    (dict(X=np.ones((3, 2))), "missing key 'y'"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), w=np.ones(2), loss="squared", head="residual"),
     "missing key 'params' .* or 'Phi'"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), Phi=np.ones((3, 1)), w=np.ones(5), V=np.ones((2, 1)),
          loss="squared", head="residual"), "w must have shape"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), params=np.ones(9), widths=[1], loss="squared",
          head="residual", bias=True), "missing key 'activation'"),
])
def test_certify_bad_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    assert cli.main(["certify", str(path)]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert re.search(f"^resnet-core certify: {re.escape(str(path))}: .*{message}", err), err
    (tmp_path / "junk.npz").write_text("not a zip")
    assert cli.main(["certify", str(tmp_path / "junk.npz")]) == 3
    assert "not a .npz archive" in capsys.readouterr().err
