"""The tracked history's regression check and plot on synthetic runs (no timing here)."""

import copy
import json

import numpy as np
import pytest

from resnet_core.bench import history as h


def _run(commit, time, scale=1.0, spread=0.03, machine="m1", missing=()):
    figs = {}
    for i, key in enumerate(["fun_and_grad|ref|float64", "hessp full|ref|float32",
                             "PGD Example 1|small|float64"]):
        fam = "PGD" if key.startswith("PGD") else "passes"
        if key in missing:
            figs[key] = {"family": fam, "missing": "Objective.hessp"}
            continue
        base = 1e6 * (i + 1)
        figs[key] = {"family": fam, "value": base * scale, "relative": base * scale / 50.0,
                     "spread": spread, "samples": 10, "unit": "samples/s"}
    return {"schema": 1, "profile": "quick", "time": time, "commit": commit,
            "date": time, "subject": "s", "dirty": False, "load": [1.0, 1.0, 1.0],
            "machine": {"id": machine, "cpu": "test cpu", "isa": "native (x86-64-v3)"},
            "calibration": {}, "figures": figs}


def _write(folder, runs):
    for r in runs:
        d = folder / r["machine"]["id"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{r['time']}_{r['commit']}.json").write_text(json.dumps(r))


@pytest.mark.parametrize("slowdown, flagged", [(0.20, True), (0.05, False)])
def test_synthetic_slowdown(slowdown, flagged):
    old = _run("a" * 40, "2026-01-01T00:00:00Z")
    new = _run("b" * 40, "2026-01-02T00:00:00Z")
    key = "hessp full|ref|float32"
    new["figures"][key]["relative"] *= 1 - slowdown  # throughput down by `slowdown`
    rows = {r.key: r for r in h.compare(old, new)}
    assert rows[key].ratio == pytest.approx(1 - slowdown)
    assert (rows[key].verdict == "slower") is flagged
    assert h.failed(rows.values()) is flagged
    assert all(r.verdict == "same" for k, r in rows.items() if k != key)


def test_spread_widens_the_band():
    # a 20% slowdown within a 10% measured spread is not flagged at threshold 0.15
    assert h.verdict(0.80, 0.02) == "slower"
    assert h.verdict(0.80, 0.10) == "same"
    assert h.verdict(1.25, 0.02) == "faster"
    with pytest.raises(ValueError, match="threshold"):
        h.compare(_run("a", "t"), _run("b", "u"), threshold=1.5)


def test_raw_and_calibrated_differ():
    # raw throughput 25% down on a machine whose calibration fell as much: calibrated same
    old = _run("a" * 40, "2026-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    new.update(commit="b" * 40, time="2026-01-02T00:00:00Z")
    for f in new["figures"].values():
        f["value"] *= 0.75
    assert h.failed(h.compare(old, new, raw=True))
    assert not h.failed(h.compare(old, new))


def test_gone_figure_fails():
    old = _run("a" * 40, "2026-01-01T00:00:00Z")
    new = _run("b" * 40, "2026-01-02T00:00:00Z", missing=("fun_and_grad|ref|float64",))
    rows = {r.key: r for r in h.compare(old, new)}
    assert rows["fun_and_grad|ref|float64"].verdict == "gone"
    assert h.failed(rows.values())
    # missing in the old run: nothing to compare, left out
    assert "fun_and_grad|ref|float64" not in {r.key for r in h.compare(new, old)}
    # not attempted by the new run (a quick profile after a full one): left out, no failure
    del new["figures"]["fun_and_grad|ref|float64"]
    assert "fun_and_grad|ref|float64" not in {r.key for r in h.compare(old, new)}
    assert not h.failed(h.compare(old, new))


def test_pick_pair_same_machine_and_baseline(tmp_path, capsys):
    runs = [_run("a" * 40, "2026-01-01T00:00:00Z"),
            _run("c" * 40, "2026-01-02T00:00:00Z", machine="m2"),
            _run("b" * 40, "2026-01-03T00:00:00Z", scale=0.7)]
    _write(tmp_path, runs)
    loaded = h.load_runs(tmp_path)
    old, new = h.pick_pair(loaded)
    assert (old["commit"][0], new["commit"][0]) == ("a", "b")  # m2's run is skipped
    assert h.pick_pair(loaded, baseline="aaaa")[0]["commit"][0] == "a"
    with pytest.raises(ValueError, match="baseline"):
        h.pick_pair(loaded, baseline="cccc")  # another machine
    assert h.run_compare(tmp_path) == 1  # 30% slower everywhere
    out = capsys.readouterr().out
    assert "SLOWER" in out and "| figure" in out
    assert h.main(["compare", "--history-dir", str(tmp_path), "--threshold", "0.5"]) == 0
    with pytest.raises(ValueError, match="no earlier run"):
        h.pick_pair(loaded[:2])
    # a backfill: an older commit run last is compared with the commit before it, and a new
    # commit run after the backfill with the newest commit, not with the last run
    back = _run("0" * 40, "2026-01-05T00:00:00Z")
    back["date"] = "2025-12-31T00:00:00Z"
    with pytest.raises(ValueError, match="no earlier run"):
        h.pick_pair([*loaded, back])
    head = _run("d" * 40, "2026-01-06T00:00:00Z")
    assert h.pick_pair([*loaded, back, head])[0]["commit"][0] == "b"
    again = _run("d" * 40, "2026-01-07T00:00:00Z")
    again["date"] = head["date"]
    assert h.pick_pair([*loaded, back, head, again])[0]["time"] == head["time"]
    with pytest.raises(ValueError, match="does not exist"):
        h.load_runs(tmp_path / "none")


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [_run(c * 40, f"2026-01-0{i + 1}T00:00:00Z", scale=1 + i / 10)
            for i, c in enumerate("abc")]
    runs.append(_run("b" * 40, "2026-01-04T00:00:00Z", machine="m2"))
    runs[-1]["date"] = runs[1]["date"]  # the same commit, run later on another machine
    data = h.series(runs)
    line = data["passes"][("fun_and_grad|ref|float64", "m1")]
    assert line == {c * 40: pytest.approx(2e4 * (1 + i / 10)) for i, c in enumerate("abc")}
    assert [c["commit"][0] for c in h.commit_order(runs)] == ["a", "b", "c"]
    out = h.plot(runs, tmp_path / "h.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(out).shape[0] > 100  # a drawn figure, not an empty file


def test_cli_bench_history(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from resnet_core.cli import main
    _write(tmp_path / "h", [_run("a" * 40, "2026-01-01T00:00:00Z"),
                            _run("b" * 40, "2026-01-02T00:00:00Z")])
    out = tmp_path / "plot.png"
    assert main(["bench", "--history", "--history-dir", str(tmp_path / "h"),
                 "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["bench", "--history", "--history-dir", str(tmp_path / "none"),
                 "--out", str(out)]) == 2


def test_table_per_commit(tmp_path, capsys):
    runs = [_run(c * 40, f"2026-01-0{i + 1}T00:00:00Z", scale=1 + i) for i, c in enumerate("abc")]
    _write(tmp_path, runs)
    assert h.main(["table", "--history-dir", str(tmp_path), "fun_and_grad|ref|float64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| commit | machine | fun_and_grad ref float64 |"
    assert [line.split(" | ")[-1] for line in lines[2:]] == ["0.50 |", "1.00 |", "1.50 |"]
