"""Data that change under an objective: caught at the next pass, named by row block.

The objectives use the caller's in-memory arrays without a copy (``copy=True`` makes one)
and read memory-mapped files in place, so the data a pass reads may no longer be the data
that were validated.  Two guards, both free in the normal case:

- before a pass, each memory-mapped array's file is ``stat``-ed: a file now shorter than
  the mapping would make the next read a SIGBUS (the process killed); it is a
  :class:`DataChangedError` instead;
- after each row block of a pass, the block's results (the loss value, the partial sums)
  are tested for finiteness; only when one is not finite are the block's rows of ``X``,
  ``Phi``, ``y`` and the weights read again: a NaN or inf found there is a
  :class:`DataChangedError` naming the array, the row block and the index.  A non-finite
  result on finite data (an overflow of the model itself) is returned as it is.
"""

from __future__ import annotations

import mmap
import os

import numpy as np


class DataChangedError(ValueError):
    """The data changed after the objective validated them (a NaN written into ``X``, a
    memory-mapped file truncated): the message names the array and the rows."""


_HOW = ("in-memory arrays are used without a copy (pass copy=True to keep a private one) "
        "and memory-mapped files are read at each pass")


def mapped_file(a) -> tuple[str, int] | None:
    """``(filename, bytes the mapping needs)`` when ``a`` (or the array it views) is a
    ``np.memmap`` of a file, else None."""
    while a is not None:
        if isinstance(a, np.memmap) and isinstance(a.base, mmap.mmap) and a.filename:
            start = a.offset - a.offset % mmap.ALLOCATIONGRANULARITY
            return a.filename, start + len(a.base)
        a = getattr(a, "base", None)
    return None


def mapped_files(**arrays) -> list[tuple[str, str, int]]:
    """``[(name, filename, bytes needed)]`` of the memory-mapped ones among ``arrays``."""
    out = []
    for name, a in arrays.items():
        found = mapped_file(a)
        if found is not None:
            out.append((name, *found))
    return out


def check_files(files) -> None:
    """Raise :class:`DataChangedError` when a mapped file is missing or shorter than its
    mapping (one ``os.stat`` per file)."""
    for name, filename, needed in files:
        try:
            size = os.stat(filename).st_size
        except OSError as err:
            raise DataChangedError(
                f"{name} is memory-mapped from {filename}, which cannot be read any more "
                f"({err.strerror or err}); rebuild the objective from the data") from None
        if size < needed:
            raise DataChangedError(
                f"{name} is memory-mapped from {filename}, which is now {size} bytes, "
                f"shorter than the {needed} bytes mapped from it (the "
                "file was truncated after it was opened): reading it would kill the process with "
                "SIGBUS; rebuild the objective from the file's new contents")


def check_block(arrays, i0: int, i1: int, *results) -> None:
    """After a row block ``i0:i1`` of a pass: when a result is not finite, find the first
    NaN / inf in the block's rows of ``arrays`` (``(name, array)`` pairs, each sliceable by
    rows) and raise :class:`DataChangedError` naming it."""
    if all(np.isfinite(r).all() for r in results):
        return
    for name, a in arrays:
        if a is None or len(getattr(a, "shape", ())) == 0 or a.shape[0] == 0:
            continue
        rows = np.asarray(a[i0:i1])
        ok = np.isfinite(rows)
        if not ok.all():
            bad = tuple(int(i) for i in np.argwhere(~ok)[0])
            index = (i0 + bad[0],) + bad[1:]
            raise DataChangedError(
                f"{name} is no longer finite: rows {i0}:{i1} (a row block of this pass) hold "
                f"{rows[bad]} at index {index}; the data changed after the objective was "
                f"built: {_HOW}")
