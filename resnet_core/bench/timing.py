"""Timing helpers of the comparison and of the pytest-benchmark suites: the median of a
few calls, and points that change call after call so that no cache helps."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_time(fn: Callable[[], Any], *, repeat: int = 7, warmup: int = 2) -> float:
    """Median wall-clock seconds (``time.perf_counter``) of ``repeat`` calls of ``fn()``
    after ``warmup`` untimed calls.  ``fn`` must force its own result (e.g. convert to
    NumPy, ``block_until_ready``) if the framework is asynchronous."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def block_medians(fns: dict[str, Callable[[], Any]], *, repeat: int = 5,
                  block: int = 3) -> dict[str, float]:
    """Median wall-clock seconds of each function, the functions taking turns in blocks:
    ``repeat`` rounds, in each round every function runs one untimed call (its own thread
    pools and caches wake up) then ``block`` timed calls.  Calls that alternate one by one
    run on the previous framework's still-spinning threads; blocks do not."""
    if repeat < 1 or block < 1:
        raise ValueError("repeat and block must be >= 1")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


def alternating(x):
    """A function returning, call after call, ``x`` and ``x + 1e-3`` in turn: every
    evaluation is at a fresh point, so no cache (of the package or of anyone) can help."""
    pts, state = [x, x + 1e-3], [0]

    def nxt():
        state[0] ^= 1
        return pts[state[0]]

    return nxt
