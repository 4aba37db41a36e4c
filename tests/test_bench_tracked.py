"""The tracked suite's runner (benchmarks/tracked.py) on tiny sizes: every figure measurable
through the current API, the record's fields, the fingerprint.  Throughput values are not
checked (no timing assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tracked():
    spec = importlib.util.spec_from_file_location("tracked", ROOT / "benchmarks" / "tracked.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_figure_runs_on_this_commit(tracked, monkeypatch, tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("dask")
    monkeypatch.setattr(tracked, "SIZES", {"small": dict(n=400, d=4, widths=(4, 4)),
                                           "ref": dict(n=800, d=8, widths=(8, 8))})
    monkeypatch.setattr(tracked, "CALIBRATION_WORK", dict(gemm=10**5, read=1 << 16,
                                                         scalar=10**4))
    monkeypatch.setitem(tracked.PROFILES, "quick",
                        dict(tracked.PROFILES["quick"], pgd_steps=200, batch_steps=5,
                             escape_steps=5, lbfgs_iter=5))
    rec = tracked.run("quick", rounds=2)
    missing = {k: f["missing"] for k, f in rec["figures"].items() if "missing" in f}
    assert not missing  # an API change that the runner no longer reaches shows up here
    assert {f["family"] for f in rec["figures"].values()} == set(tracked.FAMILIES)
    for key, f in rec["figures"].items():
        assert f["value"] > 0 and f["relative"] > 0 and f["spread"] >= 0, key
        assert f["relative_spread"] >= 0
        assert f["samples"] == 2 * tracked.PROFILES["quick"]["block"]
        assert f["calibration"] in rec["calibration"]
        assert key == f"{f['figure']}|{f['size']}|{f['dtype']}"
    assert "fun_and_grad|ref|float32" in rec["figures"]
    assert "overhead_ms" in rec["figures"]["dask pass|small|float64"]
    for cal in rec["calibration"].values():
        assert cal["value"] > 0 and cal["samples"] == len(tracked.plan("quick")) + 1
    out = capsys.readouterr().out
    assert out.count("samples/s") >= 8 and "[1/" in out  # rows printed as measured
    path = tracked.save(rec, tmp_path)
    assert path.parent.name == rec["machine"]["id"]
    assert json.loads(path.read_text())["commit"] == rec["commit"]
    from resnet_core.bench import history
    assert history.load_runs(tmp_path)[0]["figures"].keys() == rec["figures"].keys()


def test_fingerprint(tracked):
    fp = tracked.fingerprint(2)
    assert set(fp) >= {"cpu", "isa", "cores", "threads", "blas", "blas_kernel", "numpy",
                       "scipy", "numba", "id"}
    assert len(fp["id"]) == 10 and fp == tracked.fingerprint(2)
    assert tracked.fingerprint(1)["id"] != fp["id"]  # runs on other thread counts: apart
    assert fp["isa"].startswith(("native (x86-64", "portable (x86-64", "x86-64")), fp["isa"]


def test_missing_api_is_recorded(tracked, monkeypatch):
    import resnet_core as rc
    monkeypatch.delattr(rc, "check_sopsp")
    with pytest.raises(tracked.Missing, match="check_sopsp"):
        tracked.certificate_figures("small", float)


def test_summary_and_keyword_fallback(tracked):
    s = tracked._summary([1.0, 2.0, 2.0, 4.0], work=8.0)
    assert s["value"] == 4.0 and s["samples"] == 4 and s["median_s"] == 2.0
    assert s["spread"] == pytest.approx((5.0 - 3.5) / 4.0)

    def old_api(a):  # a commit that lacks the keyword runs its old default
        return a
    assert tracked._call(old_api, dict(a=1), dict(stop_at_escape=False)) == 1
