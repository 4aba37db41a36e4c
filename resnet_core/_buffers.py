"""What a point keeps between passes (the caller owns it, one per point; see
:mod:`resnet_core._engine` for the shapes and :mod:`resnet_core.state` for the owner):
:class:`SampleBuffers`, the per-sample quantities of an in-memory engine, or
:class:`PassValue`, the value alone, for a stateless engine.  Both declare
``keeps_samples``: whether the later passes at the point read the per-sample quantities
from them (True) or recompute them (False)."""

from __future__ import annotations

import numpy as np


class SampleBuffers:
    """``l``, ``r = s dl/dp``, ``q`` per sample and ``F`` at one point; ``filled`` once a
    pass has written all of them.  Shapes as in the module's table: ``outputs`` None for one
    output (``q = s l''``), c for c outputs (``q`` the softmax when ``softmax``, else empty:
    the squared loss's Hessian is the identity)."""

    __slots__ = ("l", "r", "q", "value", "filled")
    #: the per-sample quantities are kept (read by the later passes at the point)
    keeps_samples = True

    def __init__(self, n: int, dtype, *, outputs: int | None = None, softmax: bool = False):
        tail = () if outputs is None else (outputs,)
        self.l = np.empty(n, dtype=dtype)
        self.r = np.empty((n, *tail), dtype=dtype)
        self.q = np.empty((n if outputs is None or softmax else 0, *tail), dtype=dtype)
        self.value = float("nan")
        self.filled = False


class PassValue:
    """What a stateless engine keeps of a point: ``F`` once a pass computed it.  Every pass
    recomputes ``l, r, q`` block by block (the kernel does it with the built-in losses)."""

    __slots__ = ("value", "filled")
    keeps_samples = False

    def __init__(self):
        self.value = float("nan")
        self.filled = False
