"""What an escape study returns (:class:`EscapeStudy`), and how a researcher reads it: a
short ``repr``, a per-``eps`` summary table, a plot, a DataFrame, and a file.

Several studies (one per ``eps``, say) are read together by the module functions
:func:`summary`, :func:`plot` and :func:`to_dataframe`; a study's own methods are these on
``[self]``.  matplotlib and pandas are imported only by :func:`plot` and :func:`to_dataframe`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._pgd import status_message

# Per-run arrays (length n_runs, ``x`` n_runs x n_params), in the order they are stored.
RUN_FIELDS = ("escape_iter", "final_F", "final_grad_norm", "final_lambda_min", "status",
              "n_perturbations", "nit", "x", "seeds", "start_F", "start_grad_norm")
_FORMAT = "resnet-core escape study 1"


@dataclass(repr=False, eq=False)
class EscapeStudy:
    """Per-run arrays of :func:`resnet_core.studies.escape` (length ``n_runs``).

    ``escape_iter``: first iteration with ``F <= F(start) - f_escape`` (-1: never);
    ``final_F``, ``final_grad_norm`` (at the point each run stopped), ``final_lambda_min``
    (NaN unless asked), ``status`` (codes of ``resnet_core.optim.STATUS_MESSAGES``; 4:
    stopped at escape), ``n_perturbations``, ``nit`` (the iteration a run stopped at: its
    ``escape_iter`` when it stopped at escape), ``x`` (final points, ``n_runs x n_params``),
    ``seeds``, ``start_F`` and ``start_grad_norm`` (each run's start), the ``constants`` used
    (``f_escape`` among them), ``eps``, ``method``, ``compiled`` (which loop ran) and
    ``traces`` (``None``, or per run a dict of ``iter``, ``fun``, ``grad_norm`` recorded
    every ``record_every`` iterations).

    ``print(study.summary())`` is a table, ``study.plot()`` a figure,
    ``study.to_dataframe()`` one row per run, ``study.save(path)`` /
    ``EscapeStudy.load(path)`` a ``.npz`` file.
    """

    escape_iter: np.ndarray
    final_F: np.ndarray
    final_grad_norm: np.ndarray
    final_lambda_min: np.ndarray
    status: np.ndarray
    n_perturbations: np.ndarray
    nit: np.ndarray
    x: np.ndarray
    seeds: np.ndarray
    start_F: np.ndarray
    start_grad_norm: np.ndarray
    constants: dict
    eps: float = float("nan")
    method: str = "pgd"
    compiled: bool = True
    traces: list | None = field(default=None)

    @property
    def n_runs(self) -> int:
        return int(self.escape_iter.size)

    @property
    def escaped(self) -> np.ndarray:
        return self.escape_iter >= 0

    def message(self, status: int) -> str:
        return status_message(status, self.method != "gd")

    def __repr__(self) -> str:
        esc = self.escape_iter[self.escaped]
        median = f"{np.median(esc):g}" if esc.size else "-"
        return (f"EscapeStudy(method={self.method!r}, eps={self.eps:g}, "
                f"n_runs={self.n_runs}, escaped={int(self.escaped.sum())}/{self.n_runs}, "
                f"median escape_iter={median}, f_escape={self.constants['f_escape']:.3g}, "
                f"compiled={self.compiled}, traces={self.traces is not None})")

    @classmethod
    def join(cls, parts: list[EscapeStudy]) -> EscapeStudy:
        """The runs of ``parts`` (studies with the same constants) in order, as one study."""
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in RUN_FIELDS}
        traces = (None if any(p.traces is None for p in parts)
                  else [t for p in parts for t in p.traces])
        first = parts[0]
        return cls(**arrays, constants=first.constants, eps=first.eps, method=first.method,
                   compiled=all(p.compiled for p in parts), traces=traces)

    def summary(self) -> StudySummary:
        """The per-``eps`` table of :func:`summary` for this study alone."""
        return summary([self])

    def plot(self, **kwargs):
        """:func:`plot` of this study alone."""
        return plot([self], **kwargs)

    def to_dataframe(self):
        """:func:`to_dataframe` of this study alone."""
        return to_dataframe([self])

    def save(self, path) -> None:
        """Write the study to ``path`` (a ``.npz`` archive: the per-run arrays, the traces
        as flat arrays with offsets, the rest as JSON); :meth:`load` reads it back."""
        arrays = {name: getattr(self, name) for name in RUN_FIELDS}
        if self.traces is not None:
            lengths = np.array([len(t["iter"]) for t in self.traces], dtype=np.int64)
            arrays["trace_offsets"] = np.r_[0, np.cumsum(lengths)]
            for key in ("iter", "fun", "grad_norm"):
                arrays[f"trace_{key}"] = (np.concatenate([t[key] for t in self.traces])
                                          if lengths.sum() else np.zeros(0))
        meta = {"format": _FORMAT, "constants": self.constants, "eps": self.eps,
                "method": self.method, "compiled": self.compiled,
                "traces": self.traces is not None}
        np.savez(path, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> EscapeStudy:
        """Read a study written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path} is not an escape study written by EscapeStudy.save")
            arrays = {name: f[name] for name in RUN_FIELDS}
            traces = None
            if meta["traces"]:
                off = f["trace_offsets"]
                traces = [{key: f[f"trace_{key}"][off[i]:off[i + 1]]
                           for key in ("iter", "fun", "grad_norm")}
                          for i in range(off.size - 1)]
        return cls(**arrays, constants=meta["constants"], eps=meta["eps"],
                   method=meta["method"], compiled=meta["compiled"], traces=traces)

    def equals(self, other: EscapeStudy) -> bool:
        """Same runs, constants and traces, bit for bit."""
        same = all(np.array_equal(getattr(self, name), getattr(other, name), equal_nan=True)
                   for name in RUN_FIELDS)
        same = same and self.constants == other.constants and self.method == other.method
        if (self.traces is None) != (other.traces is None):
            return False
        if self.traces is not None:
            same = same and all(np.array_equal(a[k], b[k]) for a, b in
                                zip(self.traces, other.traces) for k in a)
        return bool(same)


_COLUMNS = ("eps", "runs", "escaped", "escape_iter q25/median/q75", "perturbations q25/median/q75",
            "final F median", "f_escape")


@dataclass
class StudySummary:
    """One row per ``eps``: ``rows`` (dicts), ``str()`` a table."""

    rows: list

    def __str__(self) -> str:
        cells = [_COLUMNS] + [tuple(_cell(r, c) for c in _COLUMNS) for r in self.rows]
        widths = [max(len(row[j]) for row in cells) for j in range(len(_COLUMNS))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    __repr__ = __str__


def _quartiles(a: np.ndarray):
    return tuple(float(q) for q in np.percentile(a, [25, 50, 75])) if a.size else None


def _cell(row: dict, column: str) -> str:
    if column == "escaped":
        return f"{row['escaped']} ({100 * row['escaped'] / row['runs']:.0f}%)"
    if column.endswith("q25/median/q75"):
        q = row[column.split()[0] + "_quartiles"]
        return " / ".join(f"{v:g}" for v in q) if q else "-"
    if column == "final F median":
        return f"{row['final_F_median']:.6g}"
    value = row[column]
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def summary(studies: list[EscapeStudy]) -> StudySummary:
    """Per ``eps`` (studies with the same ``eps`` pooled, rows in ascending ``eps``): runs,
    runs escaped, quartiles of the escape iteration (over the runs that escaped) and of the
    number of perturbations, the median final ``F``, and ``f_escape``."""
    rows = []
    for eps in sorted({s.eps for s in studies}):
        group = EscapeStudy.join([s for s in studies if s.eps == eps])
        rows.append({"eps": eps, "runs": group.n_runs, "escaped": int(group.escaped.sum()),
                     "escape_iter_quartiles": _quartiles(group.escape_iter[group.escaped]),
                     "perturbations_quartiles": _quartiles(group.n_perturbations),
                     "final_F_median": float(np.median(group.final_F)),
                     "f_escape": float(group.constants["f_escape"])})
    return StudySummary(rows)


def to_dataframe(studies: list[EscapeStudy]):
    """One row per run of every study (needs pandas): ``eps``, ``run``, ``seed``,
    ``escaped``, ``escape_iter``, ``n_perturbations``, ``nit``, ``status``, ``start_F``,
    ``start_grad_norm``, ``final_F``, ``final_grad_norm``, ``final_lambda_min``."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("to_dataframe needs pandas: pip install pandas") from exc
    frames = [pd.DataFrame({
        "eps": np.full(s.n_runs, s.eps), "run": np.arange(s.n_runs), "seed": s.seeds,
        "escaped": s.escaped, "escape_iter": s.escape_iter, "n_perturbations": s.n_perturbations,
        "nit": s.nit, "status": s.status, "start_F": s.start_F,
        "start_grad_norm": s.start_grad_norm, "final_F": s.final_F,
        "final_grad_norm": s.final_grad_norm, "final_lambda_min": s.final_lambda_min})
        for s in studies]
    return pd.concat(frames, ignore_index=True)


def plot(studies: list[EscapeStudy], *, n_traces: int = 5, axes=None):
    """Two panels (needs matplotlib): the fraction of runs escaped by iteration ``t`` (an
    empirical CDF per ``eps``; log ``t`` when the times span more than a factor 20), and
    ``F - F(start)`` against the iteration for the first ``n_traces`` runs of each study
    that recorded traces (``record_every > 0``).
    Returns the figure."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plot needs matplotlib: pip install matplotlib") from exc
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    else:
        fig = axes[0].figure
    cdf, tr = axes
    for eps in sorted({s.eps for s in studies}):
        group = EscapeStudy.join([s for s in studies if s.eps == eps])
        t = np.sort(group.escape_iter[group.escaped])
        label = f"eps = {eps:g} ({t.size}/{group.n_runs} escaped)"
        if t.size == 0:
            cdf.plot([], [], label=label)
            continue
        frac = np.arange(1, t.size + 1) / group.n_runs
        cdf.step(np.r_[t[0], t].clip(min=1), np.r_[0.0, frac], where="post", label=label)
    escaped = np.concatenate([s.escape_iter[s.escaped] for s in studies])
    wide = escaped.size and escaped.max() > 20 * max(escaped.min(), 1)
    cdf.set(xscale="log" if wide else "linear", xlabel="escape iteration", ylabel="fraction of runs escaped",
            ylim=(0, 1.02), title="escape time (CDF)")
    cdf.legend(fontsize="small")
    shown = 0
    for s in studies:
        for i, trace in enumerate((s.traces or [])[:n_traces]):
            tr.plot(trace["iter"], trace["fun"] - s.start_F[i], lw=1,
                    label=f"eps = {s.eps:g}, seed {s.seeds[i]}")
            shown += 1
    if shown:
        tr.set(xlabel="iteration", ylabel="F - F(start)", title="F along a few runs")
        tr.legend(fontsize="x-small")
    else:
        tr.text(0.5, 0.5, "no traces: run the study with record_every > 0", ha="center",
                va="center", transform=tr.transAxes)
        tr.set_axis_off()
    fig.tight_layout()
    return fig
