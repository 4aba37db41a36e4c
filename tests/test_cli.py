"""The command line: the quick demo's claims, certify's handling of good and bad files, and
the comparison table from a checkout and from an installed package."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import cli
from resnet_core.bench import compare
from resnet_core.reproduce import demo as reproduce_demo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("demo")
    lines = []
    summary = reproduce_demo.run_demo(out, quick=True, echo=lines.append)
    return out, summary, lines


def test_demo_writes_its_report(demo):
    out, summary, lines = demo
    for name in ("report.md", "summary.json", "figure1.png", "escape_trajectory.png",
                 "escape_vs_eps.png", "theorem4.png", "second_order.png"):
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


def test_demo_second_order_against_pgd(demo):
    """The second-order figure's numbers: every run certified, find_sopsp in fewer
    iterations than PGD, Example 1 in at most 10."""
    out, s, _ = demo
    so = s["second_order"]
    assert len(so["example1"]) == 4 and len(so["real"]) == 2
    for r in so["example1"] + so["real"]:
        for m in ("pgd", "newton-nc", "cubic"):
            assert r[f"{m}_certified"] is True and r[f"{m}_time"] > 0
        assert r["newton-nc_iter"] < r["pgd_iter"] and r["cubic_iter"] < r["pgd_iter"]
    assert all(r["newton-nc_iter"] <= 10 and r["cubic_iter"] <= 10 for r in so["example1"])
    assert "![second order vs PGD](second_order.png)" in (out / "report.md").read_text()


def test_demo_digits_with_ten_classes(demo):
    """The ResNet-vs-linear table's c-output row: 10-class digits by the vector objective,
    certified over (W, V), with what was and was not computed."""
    out, s, _ = demo
    row = next(r for r in s["resnet_vs_linear"] if r["data"] == "digits")
    assert (row["classes"], row["loss"], row["trainer"]) == (10, "cross_entropy", "L-BFGS")
    assert row["lambda_min_method"] == "structured" and row["baseline_converged"]
    assert row["lemma1_holds"] and row["theorem1_holds"] and row["lemma1_note"] is None
    assert "no known analogue for c > 1" in row["theorem2_note"]
    report = (out / "report.md").read_text()
    assert "| digits (10 classes) | cross_entropy | 1797 x 65 |" in report
    assert "Theorem 2 has no known analogue for c > 1" in report


@pytest.mark.parametrize("holds, status", [(True, 0), (False, 1)])
def test_demo_command_dispatches(tmp_path, monkeypatch, holds, status):
    seen = {}

    def run_demo(out, quick, seed):
        seen.update(out=out, quick=quick, seed=seed)
        return {"checks": {"a claim": True, "another": holds}}

    monkeypatch.setattr(reproduce_demo, "run_demo", run_demo)
    assert cli.main(["demo", "--quick", "--out", str(tmp_path), "--seed", "3"]) == status
    assert seen == {"out": tmp_path, "quick": True, "seed": 3}


def test_certify_feature_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    Phi = np.tanh(X @ rng.standard_normal((3, 2)))
    w, V = rng.standard_normal(3), rng.standard_normal((3, 2))
    np.savez(tmp_path / "point.npz", X=X, y=y, Phi=Phi, w=w, V=V, loss="logistic",
             head="residual", feature_bias=False)  # by hand: the keys save_point writes
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
    (dict(X=np.ones((3, 2)), y=np.ones(3), w=np.ones(2), loss="squared", head="residual",
          feature_bias=False),
     "missing key 'params' .* or 'Phi'"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), Phi=np.ones((3, 1)), w=np.ones(5), V=np.ones((2, 1)),
          loss="squared", head="residual", feature_bias=False), "w must have shape"),
    (dict(X=np.ones((3, 2)), y=np.ones(3), params=np.ones(9), widths=[1], loss="squared",
          head="residual", bias=True, feature_bias=False), "missing key 'activation'"),
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


# -- resnet-core bench -----------------------------------------------------------------------

TINY = ["--quick", "--n", "2000", "--d", "8", "--repeat", "1"]


def test_bench_runs_from_an_installed_package(tmp_path):
    """``resnet-core bench`` needs nothing outside the package: a copy of it alone on the
    path (as in site-packages, no checkout beside it) prints the whole table."""
    site = tmp_path / "site"
    package = Path(rc.__file__).resolve().parent
    shutil.copytree(package, site / "resnet_core", ignore=shutil.ignore_patterns("__pycache__"))
    kernels = Path(rc._kernels.__file__).resolve()
    if kernels.parent != package:  # an install that keeps the compiled kernels elsewhere
        shutil.copy(kernels, site / "resnet_core")
    (tmp_path / "elsewhere").mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-m", "resnet_core", "bench", *TINY],
                          cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for work in ("fun_and_grad", "hessp (full)", "check_sopsp / lambda_min",
                 "projected SGD step", "PGD, Example 1", "PGD, 1024 runs"):
        assert re.search(rf"^\| {re.escape(work)}.*\| resnet-core", out, re.M), work
    assert "| numpy " in out and "numba (hand-written)" in out
    missing = [m for m in ("torch", "jax") if importlib.util.find_spec(m) is None]
    if missing:  # it says what the missing rows need
        assert f"# not installed: {', '.join(missing)} (pip install 'resnet-core[compare]')" in out


def test_bench_script_in_a_checkout_is_the_same_command(capsys):
    """``python benchmarks/compare.py`` runs the package's comparison, with its options."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--help"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(Path(rc.__file__).parents[1])))
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    cli_help = capsys.readouterr().out
    for option in ("--quick", "--repeat", "--memory", "--n", "--d"):
        assert option in proc.stdout and option in cli_help


def test_bench_memory_workers_run_in_their_own_processes():
    rows = compare.memory_rows(5000, 4)
    assert [impl for impl, _, _ in rows][:2] == ["resnet-core", "numpy"]
    assert all(np.isfinite(extra) and xmib > 0 for _, extra, xmib in rows)


def test_report_tables_have_one_cell_per_column(demo):
    """Every row of each Markdown table has as many cells as its header (no stray '|')."""
    out, _, _ = demo
    rows = [line for line in (out / "report.md").read_text().splitlines()]
    header = None
    for line in rows:
        if not line.startswith("|"):
            header = None
            continue
        cells = len(line.replace("\\|", "").split("|"))
        header = header or cells
        assert cells == header, line


def test_certify_into_a_closed_pipe(tmp_path):
    """``resnet-core certify p.npz --json | head``: the reader leaves early; the verdict is
    still the exit status and nothing is printed on stderr."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    fo = rc.FeatureObjective(X, np.tanh(X[:, :2]), np.sign(X[:, 0]))
    rc.save_point(tmp_path / "p.npz", fo, 0.1 * np.ones(fo.n_params))
    proc = subprocess.Popen([sys.executable, "-m", "resnet_core", "certify",
                             str(tmp_path / "p.npz"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 1, 2) and "Traceback" not in err, err
    assert "BrokenPipeError" not in err


def test_certify_help_keeps_its_lines_short(capsys):
    """The epilog is printed as written (RawDescriptionHelpFormatter): no line runs past
    the width of a terminal."""
    with pytest.raises(SystemExit):
        cli.main(["certify", "--help"])
    out = capsys.readouterr().out
    assert "n_classes" in out and "inconclusive (2)" in out
    assert max(len(line) for line in out.splitlines()) <= 92
