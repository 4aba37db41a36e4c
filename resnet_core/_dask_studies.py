"""Escape studies over dask: blocks of consecutive runs, one task each (see
:func:`resnet_core.studies.escape`, ``distribute=True``)."""

from __future__ import annotations

import numpy as np

from ._dask import compute_with_progress, import_dask
from ._sources import is_dask


def _block(escape, objective, starts, seeds, loop, kwargs):
    return escape(objective, starts, n_runs=len(seeds), seeds=seeds, _loop=loop, **kwargs)


def escape_on_dask(escape, study, objective, starts, seeds, runs_per_task, progress, loop,
                   kwargs):
    """Runs ``lo:hi`` of the study as one task each (run ``i``: ``starts[i % S]``,
    ``seeds[i]``) of ``escape``, joined in run order into one ``study``
    (:class:`~resnet_core.studies.EscapeStudy`)."""
    if is_dask(objective.X):
        raise ValueError("distribute=True runs whole trajectories on the workers: it needs "
                         "an objective over in-memory data, not dask arrays")
    dask, _ = import_dask()
    n_runs = seeds.size
    obj = dask.delayed(objective, traverse=False)  # sent once to each worker that needs it
    tasks = []
    for lo in range(0, n_runs, runs_per_task):
        idx = np.arange(lo, min(lo + runs_per_task, n_runs))
        tasks.append(dask.delayed(_block, pure=True)(escape, obj, starts[idx % len(starts)],
                                                      seeds[idx], loop, kwargs))
    parts = (compute_with_progress(dask, tasks, "escape study") if progress
             else dask.compute(*tasks))
    return study.join(list(parts))
