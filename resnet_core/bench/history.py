"""The tracked history (``benchmarks/history/``): load runs, check for regressions, plot.

    python -m resnet_core.bench.history compare [--baseline RUN] [--threshold 0.15] [--raw]
    python -m resnet_core.bench.history plot [--out docs/bench_history.png] [--raw]
    python -m resnet_core.bench.history table KEY... [--raw]

(``make bench-compare``, ``make bench-history``, ``resnet-core bench --history``.)  A run is
one JSON file written by ``benchmarks/tracked.py``: a machine fingerprint, a commit, the
calibration rates and, per figure, a throughput ``value`` (higher is better), its ``spread``
(interquartile range / median over the run's samples), and ``relative``: the median of each
sample divided by the calibration rate measured in the same round, with its own
``relative_spread`` (older records: value / the run's calibration, and ``spread``).

The regression check compares the newest run with the previous run on the same machine
fingerprint (the run of the newest commit up to the new run's commit; or a named baseline).  For each figure both runs have, the ratio is
``new / old`` of the calibrated throughput (``--raw``: of the raw one) and the spread
``s = (s_old + s_new) / 2`` of the same quantity; the figure is ``slower`` when ``ratio < 1 - threshold - s``,
``faster`` when ``ratio > 1 + threshold + s``, else ``same``; a figure the old run measured and
the new one could not is ``gone``.  The check fails (exit status 1) on any ``slower`` or
``gone``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path("benchmarks") / "history"
THRESHOLD = 0.15


def load_runs(folder: str | Path = DEFAULT_DIR) -> list[dict]:
    """Every run under ``folder`` (any depth), oldest run first; each gains ``path``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"history folder {str(folder)!r} does not exist (run `make bench`)")
    runs = []
    for path in sorted(folder.rglob("*.json")):
        run = json.loads(path.read_text())
        if "figures" in run and "machine" in run:
            run["path"] = str(path)
            runs.append(run)
    return sorted(runs, key=lambda r: r["time"])


def pick_pair(runs: list[dict], baseline: str | None = None) -> tuple[dict, dict]:
    """``(old, new)``: the newest run (by the time it ran) and, on the same machine
    fingerprint, the run of the newest commit not newer than its commit (by commit date; the
    later run of a commit measured twice), or ``baseline``: a run file's path, or a commit
    prefix (its newest run on that machine).  Commit dates, not run times, order the rest:
    a backfill runs old commits after new ones."""
    if not runs:
        raise ValueError("no runs in the history (run `make bench`)")
    new = runs[-1]

    def when(r):
        return r.get("date") or r["time"]
    same = sorted((r for r in runs[:-1] if r["machine"]["id"] == new["machine"]["id"]
                   and when(r) <= when(new)), key=lambda r: (when(r), r["time"]))
    if baseline is None:
        if not same:
            raise ValueError(f"no earlier run on machine {new['machine']['id']} to compare "
                             "with (run `make bench` again, or name --baseline)")
        return same[-1], new
    path = Path(baseline)
    if path.is_file():
        old = json.loads(path.read_text())
        old["path"] = str(path)
        return old, new
    match = [r for r in same if r["commit"].startswith(baseline)]
    if not match:
        raise ValueError(f"baseline {baseline!r} is neither a run file nor a commit with a "
                         f"run on machine {new['machine']['id']}")
    return match[-1], new


@dataclass
class Row:
    """One figure's comparison."""
    key: str
    old: float | None
    new: float | None
    ratio: float | None
    spread: float | None
    verdict: str


def verdict(ratio: float, spread: float, threshold: float = THRESHOLD) -> str:
    """``slower`` when ``ratio < 1 - threshold - spread``, ``faster`` when ``ratio > 1 +
    threshold + spread``, else ``same`` (ratio = new / old throughput)."""
    if ratio < 1 - threshold - spread:
        return "slower"
    if ratio > 1 + threshold + spread:
        return "faster"
    return "same"


def compare(old: dict, new: dict, *, threshold: float = THRESHOLD,
            raw: bool = False) -> list[Row]:
    """One :class:`Row` per figure measured by ``old`` (figures only ``new`` has are left
    out; figures missing from both are left out; a figure ``new`` did not attempt, as a
    quick run after a full one, is left out too: ``gone`` is a figure ``new`` recorded as
    missing, i.e. one its API no longer reaches)."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    field = "value" if raw else "relative"
    rows = []
    for key, a in old["figures"].items():
        if field not in a:
            continue
        if key not in new["figures"]:
            continue
        b = new["figures"][key]
        if field not in b:
            rows.append(Row(key, a[field], None, None, None, "gone"))
            continue
        ratio = b[field] / a[field]
        sfield = "spread" if raw else "relative_spread"
        spread = (a.get(sfield, a["spread"]) + b.get(sfield, b["spread"])) / 2
        rows.append(Row(key, a[field], b[field], ratio, spread,
                        verdict(ratio, spread, threshold)))
    return rows


def failed(rows: list[Row]) -> bool:
    return any(r.verdict in ("slower", "gone") for r in rows)


def format_table(rows: list[Row]) -> str:
    """Markdown: figure, old, new, ratio, spread, verdict."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)
    body = [(r.key.replace("|", " "), num(r.old, ".4g"), num(r.new, ".4g"), num(r.ratio, ".3f"),
             num(r.spread, ".1%"), r.verdict.upper() if r.verdict in ("slower", "gone")
             else r.verdict) for r in rows]
    head = ("figure", "old", "new", "new/old", "spread", "verdict")
    widths = [max(len(x[c]) for x in [head, *body]) for c in range(6)]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)),
                      *(fmt.format(*b) for b in body)])


def _describe(run: dict) -> str:
    return (f"{run['commit'][:10]}{' (dirty)' if run.get('dirty') else ''} at {run['time']} "
            f"({run['profile']}, load {run['load'][0]:.1f})" if run.get("load") else
            f"{run['commit'][:10]} at {run['time']}")


def run_compare(folder, baseline=None, threshold=THRESHOLD, raw=False) -> int:
    """Print the comparison of the newest run with its baseline; 1 on a regression."""
    old, new = pick_pair(load_runs(folder), baseline)
    rows = compare(old, new, threshold=threshold, raw=raw)
    print(f"# machine {new['machine']['id']}: {new['machine']['cpu']}, {new['machine']['isa']}")
    print(f"# old: {_describe(old)}\n# new: {_describe(new)}")
    print(f"# {'raw' if raw else 'calibrated'} throughput; slower when new/old < 1 - "
          f"{threshold:g} - spread")
    print(format_table(rows))
    bad = [r.key for r in rows if r.verdict in ("slower", "gone")]
    print(f"# {len(bad)} regression(s){': ' + ', '.join(bad) if bad else ''}")
    return 1 if bad else 0


# -- the plot ------------------------------------------------------------------------------
def series(runs: list[dict], raw: bool = False) -> dict:
    """``{family: {(figure key, machine id): {commit: value}}}`` with the commits' order:
    the newest run per (commit, machine) counts."""
    field = "value" if raw else "relative"
    out: dict = {}
    for run in runs:  # oldest first: a later run of the same commit replaces an earlier one
        for key, fig in run["figures"].items():
            if field in fig:
                line = out.setdefault(fig["family"], {}).setdefault((key, run["machine"]["id"]), {})
                line[run["commit"]] = fig[field]
    return out


def commit_order(runs: list[dict]) -> list[dict]:
    """One entry per commit (``commit``, ``date``, ``subject``), by commit date."""
    seen = {}
    for r in runs:
        seen[r["commit"]] = {"commit": r["commit"], "date": r.get("date") or r["time"],
                             "subject": r.get("subject", "")}
    return sorted(seen.values(), key=lambda c: c["date"])


def plot(runs: list[dict], out: str | Path, *, raw: bool = False) -> Path:
    """Throughput per commit, one panel per family, one line per figure and machine, each
    line divided by its median over the commits (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    commits = commit_order(runs)
    xpos = {c["commit"]: i for i, c in enumerate(commits)}
    data = series(runs, raw=raw)
    machines = sorted({m for fam in data.values() for (_, m) in fam})
    # colour: the figure; line: the dtype; marker: the size; width: the machine
    dash = {"float64": "-", "float32": "--"}
    mark = {"small": "o", "ref": "s"}
    ncol = 2
    nrow = (len(data) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(14, 3.6 * nrow), squeeze=False)
    for ax, (family, lines) in zip(axes.flat, sorted(data.items())):
        names = sorted({key.split("|")[0] for key, _ in lines})
        for (key, machine), points in sorted(lines.items()):
            name, size, dtype = (key.split("|") + ["", ""])[:3]
            xs = sorted(xpos[c] for c in points)
            by_x = {xpos[c]: v for c, v in points.items()}
            mid = statistics.median(by_x.values())
            label = key.replace("|", " ") + (f" [{machine}]" if len(machines) > 1 else "")
            ax.plot(xs, [by_x[x] / mid for x in xs], dash.get(dtype, ":"),
                    marker=mark.get(size, "^"), ms=3, color=f"C{names.index(name) % 10}",
                    lw=1 + machines.index(machine), label=label)
        ax.set_yscale("log")
        ax.set_title(family)
        ax.set_ylabel(("raw" if raw else "calibrated") + " throughput / line's median")
        ax.set_xticks(range(len(commits)))
        ax.set_xticklabels([f"{c['commit'][:7]} {c['date'][5:10]}" for c in commits],
                           rotation=60, fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(data):]:
        ax.axis("off")
    fig.suptitle("resnet-core tracked throughput per commit (benchmarks/history; "
                 f"{'raw' if raw else 'divided by the calibration'})")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def format_history(runs: list[dict], keys: list[str], *, raw: bool = False) -> str:
    """Markdown: one row per commit (by commit date; the newest run per commit and machine),
    one column per figure key, each the figure over its median across the commits."""
    data = {}
    for fam in series(runs, raw=raw).values():
        data.update(fam)
    head = ["commit", "machine", *(k.replace("|", " ") for k in keys)]
    rows = []
    machines = sorted({m for (_, m) in data})
    for m in machines:
        cols = [data.get((k, m), {}) for k in keys]
        mids = [statistics.median(c.values()) if c else None for c in cols]
        for c in commit_order(runs):
            if any(c["commit"] in col for col in cols):
                rows.append([c["commit"][:7], m, *("-" if c["commit"] not in col else
                                                  f"{col[c['commit']] / mid:.2f}"
                                                  for col, mid in zip(cols, mids))])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--history-dir", default=str(DEFAULT_DIR),
                    help="the runs' folder (default benchmarks/history)")
    ap.add_argument("--raw", action="store_true", help="raw throughput, not calibrated")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="the newest run against the previous one (exit 1 if "
                                       "slower)")
    add_arguments(c)
    c.add_argument("--baseline", default=None, help="a run file or a commit prefix")
    c.add_argument("--threshold", type=float, default=THRESHOLD,
                   help=f"allowed slowdown beyond the spread (default {THRESHOLD})")
    p = sub.add_parser("plot", help="throughput per commit, PNG")
    add_arguments(p)
    p.add_argument("--out", default="docs/bench_history.png")
    t = sub.add_parser("table", help="chosen figures per commit, over their medians")
    add_arguments(t)
    t.add_argument("keys", nargs="+", help="figure keys, e.g. 'fun_and_grad|ref|float64'")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "compare":
            return run_compare(args.history_dir, args.baseline, args.threshold, args.raw)
        if args.cmd == "table":
            print(format_history(load_runs(args.history_dir), args.keys, raw=args.raw))
            return 0
        print(f"wrote {plot(load_runs(args.history_dir), args.out, raw=args.raw)}")
        return 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
