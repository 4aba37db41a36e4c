"""How many steps a compiled loop runs before it hands control back to Python.

A numba loop holds the interpreter until it returns, so a Ctrl-C waits for it.  The drivers
(``optim``, ``studies``) run their loops in blocks of about ``TARGET_SECONDS`` each, and a
KeyboardInterrupt is raised between two blocks.  Every loop resumes exactly from the state it
left (iterate, counters, random stream), so the block sizes never change a result; a step
itself is never cut, so a block lasts at least one step.
"""

from __future__ import annotations

import time

TARGET_SECONDS = 0.1
# Largest growth of a block over the previous one: a sudden slowdown costs at most this.
_GROWTH = 8
# Fixed block size instead of timed blocks (the tests use it to check that the block sizes
# do not change a result); None in normal use.
FIXED_STEPS: int | None = None


class StepBlocks:
    """Sizes of successive blocks aimed at ``TARGET_SECONDS`` each: one step first, then the
    rate measured on the previous block, at most ``_GROWTH`` times the previous size.

    Use ``n = blocks.next()`` before a block and ``blocks.done(steps)`` after it, with the
    steps it ran (fewer than ``n`` when the loop stopped early).
    """

    def __init__(self):
        self.size = FIXED_STEPS or 1
        self._start = time.perf_counter()

    def next(self) -> int:
        self._start = time.perf_counter()
        return self.size

    def done(self, steps: int) -> None:
        if FIXED_STEPS or steps <= 0:
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        want = int(steps * TARGET_SECONDS / elapsed)
        self.size = max(1, min(want, _GROWTH * self.size))
