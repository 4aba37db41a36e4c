"""Batched saddle-escape studies: many independent PGD (or GD) runs, in parallel over cores.

Each run ``i`` starts from ``starts[i % len(starts)]`` with seed ``seeds[i]`` and owns row
``i`` of every output array, so the results depend on the seeds only, not on the number of
threads.  On fixed features held in memory with a built-in loss the runs are compiled loops
(``resnet_core._loops.escape_steps``, numba, GIL released); Python threads take contiguous
ranges of runs and advance them in timed blocks (``resnet_core._blocks``), so a Ctrl-C stops
a study within about a tenth of a second.  Any other objective (an :class:`Objective` over
all parameters, a custom loss, data too large to compile) runs each run in turn on the
streamed loop of :func:`resnet_core.perturbed_gd`, seeded as the compiled runs are: the same
escape iterations and final points to rounding, at the cost of one data pass per step per
run.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _loops, second_order
from ._blocks import StepBlocks
from ._threads import resolve_n_threads
from ._validation import as_float_array, check_choice, check_positive_int
from .certify import lambda_min_structured
from .objective import FeatureObjective, Objective
from .optim import STATUS_MESSAGES, _Problem, _python_core, pgd_constants
from .second_order import METHODS as SECOND_ORDER


@dataclass
class EscapeStudy:
    """Per-run arrays of :func:`escape` (length ``n_runs``).

    ``escape_iter``: first iteration with ``F <= F(start) - f_escape`` (-1: never);
    ``final_F``, ``final_grad_norm``, ``final_lambda_min`` (NaN unless asked), ``status``
    (codes of ``resnet_core.optim.STATUS_MESSAGES``; 4: stopped at escape), ``n_perturbations``,
    ``nit`` (the iteration a run stopped at: its ``escape_iter`` when it stopped at escape),
    ``x`` (final points, ``n_runs x n_params``), ``seeds``, the constants used, and
    ``compiled`` (which loop ran).
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
    compiled: bool = True

    @property
    def escaped(self) -> np.ndarray:
        return self.escape_iter >= 0

    @staticmethod
    def message(status: int) -> str:
        return STATUS_MESSAGES[int(status)]


def _run_blocks(args, bounds, finished=None):
    """Runs ``lo <= i < hi`` of each ``(lo, hi)`` in ``bounds`` on a thread of their own, in
    timed blocks; on an exception in the calling thread (Ctrl-C) the other threads stop at
    the end of their block before it propagates.  ``finished(n)``, if given, is told after a
    block that finished ``n > 0`` more runs (from the thread that ran it)."""
    stop = threading.Event()

    def advance(lo, hi):
        blocks = StepBlocks()
        while lo < hi and not stop.is_set():
            new_lo, spent = _loops.escape_steps(*args, lo, hi, blocks.next())
            blocks.done(spent)
            if finished is not None and new_lo > lo:
                finished(new_lo - lo)
            lo = new_lo

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


def _progress(enabled: bool, total: int):
    """A thread-safe ``update(n)`` over a tqdm bar of ``total`` runs, and its ``close``; both
    do nothing when not ``enabled``.  tqdm is imported only here."""
    if not enabled:
        return (lambda n: None), (lambda: None)
    try:
        import tqdm
    except ImportError as exc:
        raise ImportError("escape(progress=True) needs tqdm: pip install tqdm (or the "
                          "'demo' extras of resnet-core)") from exc
    bar = tqdm.tqdm(total=total, desc="escape study", unit="run")
    lock = threading.Lock()

    def update(n):
        with lock:
            bar.update(n)

    return update, bar.close


def _streamed_run(problem: _Problem, seed, consts, perturb, max_iter, stop_escape):
    """One run of a study on the streamed loop of ``optim`` (a ``fun_and_grad`` pass per
    step), started and seeded as ``_loops.escape_steps`` starts a run: returns ``u``, the
    integer state (``_loops.I_*``), and the final value and gradient norm."""
    I = _loops
    u = problem.u0.copy()
    F0, _ = problem.fun_and_grad(u)
    istate = np.zeros(6, dtype=np.int64)
    istate[I.I_NOISE] = -consts["t_thres"] - 1
    istate[I.I_STATUS] = -1
    istate[I.I_ESCAPE] = -1
    state = {"istate": istate, "x_tilde": u.copy(), "x_prev": u.copy(), "f_tilde": F0,
             "F_start": F0, "record_every": 0}
    _python_core(problem, u, state, consts, perturb, max_iter, [], [], _loops.seed_state(seed),
                 stop_escape=stop_escape)
    if istate[I.I_STATUS] < 0:
        istate[I.I_STATUS] = 1
    F, g = problem.fun_and_grad(u)
    return u, istate, F, float(np.linalg.norm(g))


def _lambda_min(problem: _Problem, u) -> float:
    """Smallest eigenvalue of the partial Hessian (in ``(w, V)``) at a final point."""
    if problem.fo is not None:
        return lambda_min_structured(problem.fo, u).value
    fo = problem.target.partial(u, materialize=True)
    return lambda_min_structured(fo, u[:fo.n_params]).value


def escape(objective, starts: ArrayLike, *, method: str = "pgd", n_runs: int | None = None, seeds=None,
           seed: int = 0, eps: float = 1e-3, ell: float = 1.0, rho: float = 1.0,
           c: float = 1.0, delta: float = 0.1, delta_f: float | None = None,
           eta: float | None = None, r: float | None = None, g_thres: float | None = None,
           f_thres: float | None = None, t_thres: int | None = None,
           f_escape: float | None = None, max_iter: int = 10_000, n_threads: int | None = None,
           lambda_min: bool = False, stop_at_escape: bool = True, wrt: str = "all",
           progress: bool = False, distribute: bool = False,
           runs_per_task: int = 16, _loop: str | None = None) -> EscapeStudy:
    """Run many independent PGD or GD trajectories and collect escape statistics.

    Parameters
    ----------
    objective : FeatureObjective or Objective, or a callable returning one
        On a FeatureObjective (or an Objective with ``wrt="wV"`` whose starts share one
        ``theta``) with a built-in loss and ``n * n_params <= 2^21`` the runs are compiled and
        spread over threads.  Anything else (an Objective over all parameters, a custom loss,
        more data) runs each run in turn on :func:`resnet_core.perturbed_gd`'s streamed loop,
        seeded as the compiled runs: the same answers to rounding, but a full data pass per
        step per run (the kernels' own threads inside each pass; ``n_threads`` is unused).
    starts : array of shape (n_params,) or (S, n_params)
        Start points; run ``i`` uses ``starts[i % S]``.
    method : {"pgd", "gd", "newton-nc", "cubic"}
        The last two run :func:`resnet_core.second_order.find_sopsp` from each start to a
        certified eps-SOPSP with ``mu2 = rho`` (the curvature PGD targets), on the same
        escape criterion (see :func:`resnet_core.second_order.escape_study`).
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
        Threads over runs (default all cores; compiled runs only).
    lambda_min : bool
        Also the smallest eigenvalue of the partial Hessian at each final point.
    stop_at_escape : bool
        Stop a run at its escape iteration (status 4, ``nit == escape_iter``, ``x`` and
        ``final_F`` at that iterate).  ``False``: every run goes on until PGD's own stop or
        ``max_iter``, as :func:`resnet_core.perturbed_gd` does.
    wrt : {"all", "wV"}
        For an Objective: all parameters, or ``(w, V)`` with each start's ``theta`` fixed.
    progress : bool
        Show a tqdm bar of the runs finished (updated between blocks; needs tqdm); with
        ``distribute``, of the tasks finished.
    distribute : bool
        Spread the runs over dask (the active ``distributed.Client``, else dask's local
        scheduler): one task per ``runs_per_task`` consecutive runs, each an ``escape`` of
        its runs on the worker, joined in run order.  Each run keeps its start, its seed,
        the study's constants (``delta_f`` is decided first, over all the starts) and the
        loop (compiled or streamed) the whole study would use: the same results per seed as
        on one machine.  The objective (with its in-memory data) is sent once to each
        worker; dask data are refused here (their passes are tasks already).
    runs_per_task : int
    """
    if callable(objective) and not isinstance(objective, (FeatureObjective, Objective)):
        objective = objective()
    check_choice("method", method, ("pgd", "gd") + SECOND_ORDER)
    if not isinstance(objective, (FeatureObjective, Objective)):
        raise TypeError("escape needs a FeatureObjective or an Objective; got "
                        f"{type(objective).__name__}")
    starts = as_float_array("starts", np.atleast_2d(starts), ndim=2, dtype=np.float64,
                            shape=(None, objective.n_params))
    n_runs = starts.shape[0] if n_runs is None else check_positive_int("n_runs", n_runs)
    seeds = (np.arange(seed, seed + n_runs, dtype=np.int64) if seeds is None
             else np.asarray(seeds, dtype=np.int64))
    if seeds.shape != (n_runs,):
        raise ValueError(f"seeds must have shape ({n_runs},); got {seeds.shape}")
    max_iter = check_positive_int("max_iter", max_iter)
    problems = [_Problem(objective, s0, wrt) for s0 in starts]
    dim = problems[0].dim
    compiled = all(p.compiled and np.array_equal(p.tail, problems[0].tail) for p in problems)
    if _loop is not None:
        compiled = _loop == "compiled"
    if delta_f is None:
        delta_f = max(max(p.target.fun(p.u0) for p in problems), 1e-12)
    if distribute:
        from ._dask_studies import escape_on_dask
        return escape_on_dask(
            escape, EscapeStudy, objective, starts, seeds,
            check_positive_int("runs_per_task", runs_per_task), progress,
            "compiled" if compiled else "streamed",
            dict(method=method, eps=eps, ell=ell, rho=rho, c=c, delta=delta, delta_f=delta_f,
                 eta=eta, r=r, g_thres=g_thres, f_thres=f_thres, t_thres=t_thres,
                 f_escape=f_escape, max_iter=max_iter, n_threads=n_threads,
                 lambda_min=lambda_min, stop_at_escape=stop_at_escape, wrt=wrt))
    consts = pgd_constants(eps=eps, ell=ell, rho=rho, c=c, delta=delta, delta_f=delta_f,
                           dim=dim)
    for name, value in (("eta", eta), ("r", r), ("g_thres", g_thres), ("f_thres", f_thres)):
        if value is not None:
            consts[name] = float(value)
    if t_thres is not None:
        consts["t_thres"] = check_positive_int("t_thres", t_thres)
    f_esc = consts["f_thres"] if f_escape is None else float(f_escape)
    if method in SECOND_ORDER:  # the same starts, target (eps, rho) and escape criterion
        return second_order.escape_study(EscapeStudy, objective, starts, seeds, method=method, eps=eps,
                            mu2=rho, f_escape=f_esc, max_iter=max_iter, wrt=wrt)
    if method == "gd":
        consts.update(r=0.0, g_thres=-1.0)  # plain GD runs its max_iter steps
    consts["f_escape"] = f_esc
    stop = bool(stop_at_escape)

    u_out = np.empty((n_runs, dim))
    istate = np.full((n_runs, 6), _loops.S_NEW, dtype=np.int64)
    F_out, g_out = np.empty(n_runs), np.empty(n_runs)
    update, close = _progress(progress, n_runs)
    try:
        if compiled:
            run_starts = np.ascontiguousarray(
                np.array([p.u0 for p in problems])[np.arange(n_runs) % len(problems)])
            args = (*problems[0].data, run_starts, seeds, method == "pgd", consts["eta"],
                    consts["r"], consts["g_thres"], consts["f_thres"], consts["t_thres"], f_esc,
                    max_iter, stop, u_out, np.empty((n_runs, dim)), np.empty((n_runs, dim)),
                    istate, np.empty((n_runs, 2)), np.empty(n_runs, dtype=np.uint64), F_out,
                    g_out)
            T = min(resolve_n_threads(n_threads), n_runs)
            _loops.check_codes()
            _run_blocks(args, [(n_runs * b // T, n_runs * (b + 1) // T) for b in range(T)],
                        update if progress else None)
        else:
            for i in range(n_runs):
                u_out[i], istate[i], F_out[i], g_out[i] = _streamed_run(
                    problems[i % len(problems)], seeds[i], consts, method == "pgd", max_iter,
                    stop)
                update(1)
    finally:
        close()
    lam = np.full(n_runs, np.nan)
    if lambda_min:
        lam = np.array([_lambda_min(problems[i % len(problems)], u_out[i])
                        for i in range(n_runs)])
    x_out = u_out
    if problems[0].tail.size:
        x_out = np.array([problems[i % len(problems)].to_x(u_out[i]) for i in range(n_runs)])
    return EscapeStudy(escape_iter=istate[:, _loops.I_ESCAPE].copy(), final_F=F_out,
                       final_grad_norm=g_out, final_lambda_min=lam,
                       status=istate[:, _loops.I_STATUS].copy(),
                       n_perturbations=istate[:, _loops.I_NPERT].copy(),
                       nit=istate[:, _loops.I_T].copy(), x=x_out, seeds=seeds, constants=consts,
                       compiled=compiled)
