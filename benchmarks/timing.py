"""Tiny timing helpers shared by the benchmark scripts.

``median_time`` runs a zero-argument callable a few times and returns the
median wall-clock time in seconds (``time.perf_counter``).  ``format_table``
renders rows of ``(work, implementation, seconds)`` as a fixed-width table
with the median in milliseconds and the ratio against a named baseline
implementation of the same piece of work.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["median_time", "time_samples", "format_table", "print_table"]


def time_samples(fn: Callable[[], Any], *, repeat: int = 7, warmup: int = 2) -> list[float]:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeat`` times timed.

    Returns the list of per-call durations in seconds.  ``fn`` must force its
    own result (e.g. convert to NumPy / call ``block_until_ready``) if the
    framework is asynchronous.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    if warmup < 0:
        raise ValueError("warmup must be >= 0")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def median_time(fn: Callable[[], Any], *, repeat: int = 7, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``repeat`` calls of ``fn()`` after ``warmup`` calls."""
    return statistics.median(time_samples(fn, repeat=repeat, warmup=warmup))


def _row_fields(row: Any) -> tuple[str, str, float | None]:
    if isinstance(row, Mapping):
        work = row["work"]
        impl = row.get("implementation", row.get("impl"))
        sec = row.get("seconds", row.get("median_s"))
        if sec is None and row.get("median_ms") is not None:
            sec = row["median_ms"] / 1e3
    else:
        work, impl, sec = row[0], row[1], row[2]
    return str(work), str(impl), (None if sec is None else float(sec))


def format_table(
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    *,
    baseline: str = "numpy",
    title: str | None = None,
) -> str:
    """Fixed-width table: work | implementation | median ms | ratio vs ``baseline``.

    ``rows`` are ``(work, implementation, median_seconds)`` tuples or mappings
    with keys ``work``, ``implementation`` and ``seconds`` (or ``median_ms``).
    ``seconds`` may be ``None`` for an implementation that was skipped.  The
    ratio column is ``median / median(baseline row with the same work)``; it
    is ``-`` when that baseline row is missing.  Returns the table as a string
    (use :func:`print_table` to print it).
    """
    parsed = [_row_fields(r) for r in rows]
    base = {w: s for (w, i, s) in parsed if i == baseline and s is not None}
    header = ("work", "implementation", "median ms", f"x {baseline}")
    body = []
    for work, impl, sec in parsed:
        ms = "skipped" if sec is None else f"{sec * 1e3:.3f}"
        b = base.get(work)
        ratio = "-" if (sec is None or b is None or b == 0) else f"{sec / b:.2f}"
        body.append((work, impl, ms, ratio))
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(4)]
    fmt = f"{{:<{widths[0]}}}  {{:<{widths[1]}}}  {{:>{widths[2]}}}  {{:>{widths[3]}}}"
    lines = []
    if title:
        lines.append(title)
    lines.append(fmt.format(*header))
    lines.append(fmt.format(*("-" * w for w in widths)))
    lines.extend(fmt.format(*r) for r in body)
    return "\n".join(lines)


def print_table(rows, *, baseline: str = "numpy", title: str | None = None) -> None:
    """Print :func:`format_table` output."""
    print(format_table(rows, baseline=baseline, title=title), flush=True)
