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
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from . import _loops, certify_vector
from ._blocks import StepBlocks
from ._threads import resolve_n_threads
from ._escape_results import EscapeStudy, plot, summary, to_dataframe
from ._pgd import Problem, default_f_escape, pgd_constants, run
from ._progress import progress_bar
from ._schema import validated
from ._validation import as_float_array, check_alloc, check_choice, memory_limit
from .certify import lambda_min_structured
from .objective import FeatureObjective, Objective

__all__ = ["EscapeStudy", "METHODS", "NotASaddleWarning", "StudyMethod", "escape", "plot",
           "register_method", "summary", "to_dataframe"]


@dataclass(frozen=True)
class StudyMethod:
    """How :func:`escape` runs a trajectory: ``method=name`` picks it from :data:`METHODS`.

    ``configure(consts)`` adjusts the derived constants in place (``consts`` holds ``eta``,
    ``r``, ``g_thres``, ``f_thres``, ``t_thres``, ``chi`` and ``f_escape``).  With ``run``
    None the built-in loops run it (PGD when ``perturb``, else plain GD: compiled over
    threads where the objective allows).  Otherwise ``run(problem, seed, consts, *,
    max_iter, stop_at_escape, record_every)`` runs one trajectory of the
    :class:`resnet_core._pgd.Problem` ``problem`` (``problem.u0`` its start) and returns
    an ``OptimizeResult`` as :func:`resnet_core.perturbed_gd` does (``x``, ``fun``,
    ``jac``, ``nit``, ``status``, ``n_perturbations``, ``escape_iter`` with
    ``F <= F(start) - consts["f_escape"]``, ``history``); the study calls it run by run.
    """

    name: str
    perturb: bool = True
    configure: Callable[[dict], None] = lambda consts: None
    run: Callable | None = None


def _plain_gd(consts: dict) -> None:
    consts.update(r=0.0, g_thres=-1.0)  # plain GD runs its max_iter steps


METHODS: dict[str, StudyMethod] = {"pgd": StudyMethod("pgd"),
                                   "gd": StudyMethod("gd", perturb=False, configure=_plain_gd)}


def register_method(method: StudyMethod) -> None:
    """Make ``method`` available to :func:`escape` as ``method=method.name``."""
    if not isinstance(method, StudyMethod):
        raise TypeError(f"register_method needs a StudyMethod; got {type(method).__name__}")
    METHODS[method.name] = method


class NotASaddleWarning(UserWarning):
    """An escape study started where the gradient is larger than ``eps``."""


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


def _lambda_min(problem: Problem, u) -> float:
    """Smallest eigenvalue of the partial Hessian (in ``(w, V)``) at a final point: from the
    sufficient statistics (one output), the reduced eigenproblem (c outputs), or Lanczos on
    Hessian-vector products where that problem is too large to form."""
    fo, z = problem.fo, u
    if fo is None:
        fo = problem.target.partial(u, materialize=True)
        z = u[:fo.n_params]
    if not fo.vector:
        return lambda_min_structured(fo, z).value
    if certify_vector.structured_size(fo) <= certify_vector.MAX_DENSE:
        return certify_vector.lambda_min_structured(fo, z).value
    return certify_vector.lambda_min_lanczos(fo, z).value


@validated
def escape(objective, starts: ArrayLike, *, method: str = "pgd", n_runs: int | None = None,
           seeds=None, seed: int = 0, eps: float = 1e-3, ell: float = 1.0, rho: float = 1.0,
           c: float = 1.0, delta: float = 0.1, delta_f: float | None = None,
           eta: float | None = None, r: float | None = None, g_thres: float | None = None,
           f_thres: float | None = None, t_thres: int | None = None,
           f_escape: float | None = None, max_iter: int = 10_000, n_threads: int | None = None,
           lambda_min: bool = False, stop_at_escape: bool = True, wrt: str = "all",
           record_every: int = 0, check_start: str = "warn", progress: bool = False,
           distribute: bool = False, runs_per_task: int = 16,
           _loop: str | None = None) -> EscapeStudy:
    """Run many independent PGD or GD trajectories from saddles and collect escape statistics.

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
        Start points, approximate saddles (``||grad F|| <= g_thres``; see ``check_start``):
        :func:`resnet_core.theorem2_stationary_point` builds exact ones on any data.  Run
        ``i`` uses ``starts[i % S]``.
    method : str
        A name in :data:`METHODS`: ``"pgd"`` (Jin et al.'s Algorithm 2), ``"gd"`` (plain
        gradient descent), or one added by :func:`register_method`.
        ``"newton-nc"`` and ``"cubic"`` run :func:`resnet_core.find_sopsp` from each start
        to a certified eps-SOPSP with ``mu2 = rho``, on the same escape criterion
        (``stop_at_escape`` does not apply; ``status`` 0 means certified).
    n_runs : int, optional
        Default ``S``.
    seeds : array of int, optional
        One per run; default ``seed, seed + 1, ...``.
    eps, ell, rho, c, delta, delta_f, eta, r, g_thres, f_thres, t_thres
        As in :func:`resnet_core.perturbed_gd` (``ell``, ``rho`` must be given here: one set
        of constants serves every run; ``delta_f`` defaults to the largest ``F(start)``).
    f_escape : float, optional
        Decrease below ``F(start)`` that counts as an escape; default
        :func:`resnet_core.optim.default_f_escape` ``= 0.1 eps^1.5 / sqrt(rho)``, a tenth of
        the decrease a saddle with ``lambda_min = -sqrt(rho eps)`` offers (docs/pgd.md).
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
    record_every : int
        ``> 0``: record ``F`` and ``||grad F||`` of every run every ``record_every``
        iterations (``study.traces``).  The runs then go one after the other through
        :func:`resnet_core.perturbed_gd`'s loop (compiled where the study's would be, seeded
        as the study's), the same runs as without traces to rounding.
    check_start : {"warn", "raise", "ignore"}
        What to do when a start has ``||grad F|| > g_thres`` (PGD's threshold for a
        perturbation, ``eps / chi^2``): it is then no approximate saddle, PGD begins there
        by gradient descent, and a drop of ``F`` is descent, not an escape.  ``"warn"`` (a
        :class:`NotASaddleWarning` naming the start and its gradient norm), ``"raise"``
        (a ValueError), ``"ignore"``.
    progress : bool
        Show a tqdm bar of the runs finished (updated between blocks; needs tqdm); with
        ``distribute``, of the tasks finished.  Nothing is printed otherwise.
    distribute : bool
        Spread the runs over dask (the active ``distributed.Client``, else dask's local
        scheduler): one task per ``runs_per_task`` consecutive runs, each an ``escape`` of
        its runs on the worker, joined in run order.  Each run keeps its start, its seed,
        the study's constants (``delta_f`` is decided first, over all the starts) and the
        loop (compiled or streamed) the whole study would use: the same results per seed as
        on one machine.  The objective (with its in-memory data) is sent once to each
        worker; dask data are refused here (their passes are tasks already).
    runs_per_task : int

    Returns
    -------
    EscapeStudy
        Per-run arrays, with ``summary()``, ``plot()``, ``to_dataframe()`` and ``save()``.
    """
    if callable(objective) and not isinstance(objective, (FeatureObjective, Objective)):
        objective = objective()
    check_choice("method", method, tuple(METHODS))
    check_choice("check_start", check_start, ("warn", "raise", "ignore"))
    if not isinstance(objective, (FeatureObjective, Objective)):
        raise TypeError("escape needs a FeatureObjective or an Objective; got "
                        f"{type(objective).__name__}")
    starts = as_float_array("starts", np.atleast_2d(starts), ndim=2, dtype=np.float64,
                            shape=(None, objective.n_params))
    n_runs = starts.shape[0] if n_runs is None else n_runs
    per_run = 8 * (4 * starts.shape[1] + 12)  # x, x~, x_prev, its start; state, values, seed
    check_alloc(f"the state of {n_runs} runs of dimension {starts.shape[1]}",
                per_run * n_runs, f"use fewer runs (n_runs at most {memory_limit() // per_run}"
                "), in several studies")
    seeds = (np.arange(seed, seed + n_runs, dtype=np.int64) if seeds is None
             else np.asarray(seeds, dtype=np.int64))
    if seeds.shape != (n_runs,):
        raise ValueError(f"seeds must have shape ({n_runs},); got {seeds.shape}")
    spec = METHODS[method]
    problems = [Problem(objective, s0, wrt) for s0 in starts]
    dim = problems[0].dim
    compiled = all(p.compiled and np.array_equal(p.tail, problems[0].tail) for p in problems)
    if _loop is not None:
        compiled = _loop == "compiled"
    at_start = [p.fun_and_grad(p.u0) for p in problems]
    start_F = np.array([F for F, _ in at_start])
    start_g = np.array([float(np.linalg.norm(g)) for _, g in at_start])
    if delta_f is None:
        delta_f = max(float(start_F.max()), 1e-12)
    consts = pgd_constants(eps=eps, ell=ell, rho=rho, c=c, delta=delta, delta_f=delta_f,
                           dim=dim)
    for name, value in (("eta", eta), ("r", r), ("g_thres", g_thres), ("f_thres", f_thres)):
        if value is not None:
            consts[name] = float(value)
    _check_starts(start_g, consts["g_thres"], check_start)
    if distribute:
        from ._dask_studies import escape_on_dask
        return escape_on_dask(
            escape, EscapeStudy, objective, starts, seeds,
            runs_per_task, progress,
            "compiled" if compiled else "streamed",
            dict(method=method, eps=eps, ell=ell, rho=rho, c=c, delta=delta, delta_f=delta_f,
                 eta=eta, r=r, g_thres=g_thres, f_thres=f_thres, t_thres=t_thres,
                 f_escape=f_escape, max_iter=max_iter, n_threads=n_threads,
                 lambda_min=lambda_min, stop_at_escape=stop_at_escape, wrt=wrt,
                 record_every=record_every, check_start="ignore"))
    if t_thres is not None:
        consts["t_thres"] = t_thres
    consts["f_escape"] = default_f_escape(eps, rho) if f_escape is None else float(f_escape)
    consts.update(eps=float(eps), rho=float(rho))  # the target, for methods that need it
    spec.configure(consts)
    stop = bool(stop_at_escape)

    run_index = np.arange(n_runs) % len(problems)
    out = {"u": np.empty((n_runs, dim)), "istate": np.full((n_runs, 6), _loops.S_NEW,
                                                           dtype=np.int64),
           "F": np.empty(n_runs), "g": np.empty(n_runs)}
    traces = [None] * n_runs if record_every else None
    with progress_bar(progress, n_runs, "escape", "run") as update:
        if compiled and spec.run is None and not record_every:
            _compiled_runs(problems, run_index, seeds, spec.perturb, consts, max_iter, stop,
                           n_threads, out, update if progress else None)
        else:
            for i in range(n_runs):
                res = _one_run(spec, problems[run_index[i]], seeds[i], consts, max_iter, stop,
                               record_every)
                _store(out, i, res, dim)
                if traces is not None:
                    traces[i] = res.history
                update(1)
    u_out, istate = out["u"], out["istate"]
    lam = np.full(n_runs, np.nan)
    if lambda_min:
        lam = np.array([_lambda_min(problems[run_index[i]], u_out[i]) for i in range(n_runs)])
    x_out = u_out
    if problems[0].tail.size:
        x_out = np.array([problems[run_index[i]].to_x(u_out[i]) for i in range(n_runs)])
    return EscapeStudy(escape_iter=istate[:, _loops.I_ESCAPE].copy(), final_F=out["F"],
                       final_grad_norm=out["g"], final_lambda_min=lam,
                       status=istate[:, _loops.I_STATUS].copy(),
                       n_perturbations=istate[:, _loops.I_NPERT].copy(),
                       nit=istate[:, _loops.I_T].copy(), x=x_out, seeds=seeds,
                       start_F=start_F[run_index], start_grad_norm=start_g[run_index],
                       constants=consts, eps=float(eps), method=method,
                       compiled=compiled and spec.run is None, traces=traces)


def _check_starts(grad_norms: np.ndarray, g_thres: float, action: str) -> None:
    """Warn or raise when a start's gradient norm exceeds PGD's ``g_thres``."""
    bad = np.flatnonzero(grad_norms > g_thres)
    if action == "ignore" or bad.size == 0:
        return
    i = int(bad[np.argmax(grad_norms[bad])])
    msg = (f"{bad.size} of {grad_norms.size} starts are not approximate saddles: start {i} "
           f"has ||grad F|| = {grad_norms[i]:.3g} > g_thres = {g_thres:.3g} (below which PGD "
           "perturbs), so F decreases there by gradient descent alone and an 'escape' means "
           "nothing; start at a stationary point (e.g. "
           "resnet_core.theorem2_stationary_point), or pass check_start='ignore'")
    if action == "raise":
        raise ValueError(msg)
    # frames: this function, escape, its @validated wrapper, then the caller
    warnings.warn(msg, NotASaddleWarning, stacklevel=4)


def _compiled_runs(problems, run_index, seeds, perturb, consts, max_iter, stop, n_threads,
                   out, update):
    """All runs at once in the compiled batch loop, threads over contiguous ranges."""
    n_runs, dim = out["u"].shape
    run_starts = np.ascontiguousarray(np.array([p.u0 for p in problems])[run_index])
    args = (*problems[0].data, run_starts, seeds, perturb, consts["eta"], consts["r"],
            consts["g_thres"], consts["f_thres"], consts["t_thres"], consts["f_escape"],
            max_iter, stop, out["u"], np.empty((n_runs, dim)), np.empty((n_runs, dim)),
            out["istate"], np.empty((n_runs, 2)), np.empty(n_runs, dtype=np.uint64),
            out["F"], out["g"])
    T = min(resolve_n_threads(n_threads), n_runs)
    _loops.check_codes()
    _run_blocks(args, [(n_runs * b // T, n_runs * (b + 1) // T) for b in range(T)], update)


def _one_run(spec: StudyMethod, problem: Problem, seed, consts, max_iter, stop,
             record_every):
    """One run on its own: the method's ``run``, or the loop of ``perturbed_gd`` drawing
    from the splitmix64 stream of ``seed`` as the compiled batch does."""
    if spec.run is not None:
        return spec.run(problem, seed, consts, max_iter=max_iter, stop_at_escape=stop,
                        record_every=record_every)
    return run(problem, consts, perturb=spec.perturb, max_iter=max_iter, seed=None,
               callback=None, record_every=record_every, rng=_loops.seed_state(seed),
               stop_at_escape=stop)


def _store(out: dict, i: int, res, dim: int) -> None:
    I = _loops
    out["u"][i] = np.asarray(res.x, dtype=np.float64)[:dim]
    ist = out["istate"][i]
    ist[I.I_T], ist[I.I_STATUS] = res.nit, res.status
    ist[I.I_ESCAPE], ist[I.I_NPERT] = res.escape_iter, res.n_perturbations
    out["F"][i], out["g"][i] = res.fun, float(np.linalg.norm(res.jac))
