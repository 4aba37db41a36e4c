"""Batched saddle-escape studies: many independent PGD (or GD) runs, in parallel over cores.

Each run ``i`` starts from ``starts[i % len(starts)]`` with seed ``seeds[i]`` and owns row
``i`` of every output array, so the results depend on the seeds only, not on the number of
threads.  The runs are compiled loops (``resnet_core._loops.escape_steps``, numba, GIL
released) on fixed features held in memory with a built-in loss; Python threads take
contiguous ranges of runs and advance them in timed blocks (``resnet_core._blocks``), so a
Ctrl-C stops a study within about a tenth of a second.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _loops
from ._blocks import StepBlocks
from ._threads import resolve_n_threads
from ._validation import as_float_array, check_choice, check_positive_int
from .certify import lambda_min_structured
from .objective import FeatureObjective
from .optim import STATUS_MESSAGES, pgd_constants


@dataclass
class EscapeStudy:
    """Per-run arrays of :func:`escape` (length ``n_runs``).

    ``escape_iter``: first iteration with ``F <= F(start) - f_escape`` (-1: never);
    ``final_F``, ``final_grad_norm``, ``final_lambda_min`` (NaN unless asked), ``status``
    (codes of ``resnet_core.optim.STATUS_MESSAGES``), ``n_perturbations``, ``nit``, ``x``
    (final points, ``n_runs x dim``), ``seeds``, and the constants used.
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
    constants: dict

    @property
    def escaped(self) -> np.ndarray:
        return self.escape_iter >= 0

    @staticmethod
    def message(status: int) -> str:
        return STATUS_MESSAGES[int(status)]


def _run_blocks(args, bounds):
    """Runs ``lo <= i < hi`` of each ``(lo, hi)`` in ``bounds`` on a thread of their own, in
    timed blocks; on an exception in the calling thread (Ctrl-C) the other threads stop at
    the end of their block before it propagates."""
    stop = threading.Event()

    def advance(lo, hi):
        blocks = StepBlocks()
        while lo < hi and not stop.is_set():
            lo, spent = _loops.escape_steps(*args, lo, hi, blocks.next())
            blocks.done(spent)

    if len(bounds) == 1:
        advance(*bounds[0])
        return
    with ThreadPoolExecutor(max_workers=len(bounds)) as pool:
        try:
            futures = [pool.submit(advance, lo, hi) for lo, hi in bounds]
            for future in futures:
                future.result()
        except BaseException:
            stop.set()
            raise


def escape(objective, starts: ArrayLike, *, method: str = "pgd", n_runs: int | None = None, seeds=None,
           seed: int = 0, eps: float = 1e-3, ell: float = 1.0, rho: float = 1.0,
           c: float = 1.0, delta: float = 0.1, delta_f: float | None = None,
           eta: float | None = None, r: float | None = None, g_thres: float | None = None,
           f_thres: float | None = None, t_thres: int | None = None,
           f_escape: float | None = None, max_iter: int = 10_000, n_threads: int | None = None,
           lambda_min: bool = False) -> EscapeStudy:
    """Run many independent PGD or GD trajectories and collect escape statistics.

    Parameters
    ----------
    objective : FeatureObjective, or a callable returning one
        Fixed features in memory, a built-in loss.
    starts : array of shape (dim,) or (S, dim)
        Start points; run ``i`` uses ``starts[i % S]``.
    method : {"pgd", "gd"}
    n_runs : int, optional
        Default ``S``.
    seeds : array of int, optional
        One per run; default ``seed, seed + 1, ...``.
    eps, ell, rho, c, delta, delta_f, eta, r, g_thres, f_thres, t_thres
        As in :func:`resnet_core.perturbed_gd` (``ell``, ``rho`` must be given here: one set
        of constants serves every run; ``delta_f`` defaults to the largest ``F(start)``).
    f_escape : float, optional
        Decrease below ``F(start)`` that counts as an escape (default ``f_thres``).
    max_iter : int
    n_threads : int, optional
        Threads over runs (default all cores).
    lambda_min : bool
        Also the smallest eigenvalue of the partial Hessian at each final point.
    """
    if callable(objective) and not isinstance(objective, FeatureObjective):
        objective = objective()
    if not isinstance(objective, FeatureObjective) or objective.loss.code < 0:
        raise TypeError("escape needs a FeatureObjective with a built-in loss")
    check_choice("method", method, ("pgd", "gd"))
    dim = objective.n_params
    starts = as_float_array("starts", np.atleast_2d(starts), ndim=2, dtype=np.float64,
                            shape=(None, dim))
    n_runs = starts.shape[0] if n_runs is None else check_positive_int("n_runs", n_runs)
    seeds = (np.arange(seed, seed + n_runs, dtype=np.int64) if seeds is None
             else np.asarray(seeds, dtype=np.int64))
    if seeds.shape != (n_runs,):
        raise ValueError(f"seeds must have shape ({n_runs},); got {seeds.shape}")
    max_iter = check_positive_int("max_iter", max_iter)
    run_starts = np.ascontiguousarray(starts[np.arange(n_runs) % starts.shape[0]])
    if delta_f is None:
        delta_f = max(max(objective.fun(s0) for s0 in starts), 1e-12)
    consts = pgd_constants(eps=eps, ell=ell, rho=rho, c=c, delta=delta, delta_f=delta_f,
                           dim=dim)
    for name, value in (("eta", eta), ("r", r), ("g_thres", g_thres), ("f_thres", f_thres)):
        if value is not None:
            consts[name] = float(value)
    if t_thres is not None:
        consts["t_thres"] = check_positive_int("t_thres", t_thres)
    f_esc = consts["f_thres"] if f_escape is None else float(f_escape)
    if method == "gd":
        consts.update(r=0.0, g_thres=-1.0)  # plain GD runs its max_iter steps

    data = (np.asarray(objective.X, np.float64), np.asarray(objective.Phi, np.float64),
            np.asarray(objective.y, np.float64), np.asarray(objective.sample_weight, np.float64),
            objective.loss.code, objective.head == "residual")
    x_out = np.empty((n_runs, dim))
    istate = np.full((n_runs, 6), _loops.S_NEW, dtype=np.int64)
    F_out, g_out = np.empty(n_runs), np.empty(n_runs)
    args = (*data, run_starts, seeds, method == "pgd", consts["eta"], consts["r"],
            consts["g_thres"], consts["f_thres"], consts["t_thres"], f_esc, max_iter, x_out,
            np.empty((n_runs, dim)), np.empty((n_runs, dim)), istate, np.empty((n_runs, 2)),
            np.empty(n_runs, dtype=np.uint64), F_out, g_out)
    T = min(resolve_n_threads(n_threads), n_runs)
    _loops.check_codes()
    _run_blocks(args, [(n_runs * b // T, n_runs * (b + 1) // T) for b in range(T)])
    lam = np.full(n_runs, np.nan)
    if lambda_min:
        lam = np.array([lambda_min_structured(objective, xi).value for xi in x_out])
    consts["f_escape"] = f_esc
    return EscapeStudy(escape_iter=istate[:, _loops.I_ESCAPE].copy(), final_F=F_out,
                       final_grad_norm=g_out, final_lambda_min=lam,
                       status=istate[:, _loops.I_STATUS].copy(),
                       n_perturbations=istate[:, _loops.I_NPERT].copy(),
                       nit=istate[:, _loops.I_T].copy(), x=x_out, seeds=seeds, constants=consts)
