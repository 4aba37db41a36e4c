"""Thread counts: the one place that resolves ``n_threads``, the BLAS pool limit, and what
a forked child does.

A child made by ``fork`` (``os.fork``, ``multiprocessing`` with the "fork" start method)
runs the kernels' slots on its calling thread: libgomp's thread pool does not survive
``fork`` and a child that started it again hung in its first parallel region.  The slots
stay those of ``n_threads``, so the child's numbers are the parent's, bit for bit.
"""

from __future__ import annotations

import contextlib
import numbers
import os

from threadpoolctl import ThreadpoolController

from . import _kernels, _vkernels

_controller: ThreadpoolController | None = None
# Most threads a call may start: libgomp aborted or crashed the process at 32768 and 65536.
MAX_THREADS = 1024


def default_n_threads() -> int:
    """All cores available to this process, or ``OMP_NUM_THREADS`` when it is set."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_n_threads(n_threads: int | None) -> int:
    """``None`` means all cores (at most ``MAX_THREADS``); otherwise a positive integer, at
    most ``MAX_THREADS``."""
    if n_threads is None:
        return min(default_n_threads(), MAX_THREADS)
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive integer or None; got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None; got {n_threads!r}")
    if n_threads > MAX_THREADS:
        raise ValueError(f"n_threads must be at most {MAX_THREADS}; got {n_threads}: use "
                         "fewer threads (None: all cores)")
    return int(n_threads)


def blas_single_thread():
    """Context in which BLAS runs on the calling thread only.

    The kernels call BLAS from their own OpenMP threads on per-chunk blocks; a BLAS that
    started threads of its own there would multiply the threads (oversubscription).
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    if not _controller.select(user_api="blas").lib_controllers:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def _after_fork_in_child():
    _kernels.set_serial(True)
    _vkernels.set_serial(True)


os.register_at_fork(after_in_child=_after_fork_in_child)
