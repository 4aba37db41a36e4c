"""One tqdm bar per long call, and nothing at all when it is not asked for.

``with progress_bar(enabled, total, desc, unit) as update:`` gives a thread-safe
``update(n)``; tqdm is imported only when a bar is asked for, so the core never needs it.
"""

from __future__ import annotations

import contextlib
import threading


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int | None, desc: str, unit: str = "it"):
    """A tqdm bar of ``total`` units (``None``: unknown) as a thread-safe ``update(n)``,
    closed on exit; a no-op ``update`` when not ``enabled``."""
    if not enabled:
        yield lambda n=1: None
        return
    try:
        import tqdm
    except ImportError as exc:
        raise ImportError(f"{desc}(progress=True) needs tqdm: pip install tqdm (or the "
                          "'demo' extras of resnet-core)") from exc
    bar = tqdm.tqdm(total=total, desc=desc, unit=unit)
    lock = threading.Lock()

    def update(n=1):
        with lock:
            bar.update(n)

    try:
        yield update
    finally:
        bar.close()
