"""Optimisers: perturbed gradient descent (Jin et al. 2017) and plain gradient descent.

Both run on the loops of :mod:`resnet_core._pgd`: compiled (numba) on fixed features held in
memory with a built-in loss, the squared loss on the data's second moments, else one
streamed pass of the compiled kernels per step, driven from Python (which loop runs, and
why, is in that module's notes).  Both loops draw the same random numbers from the same
seed.  Projected SGD on the skip head (Theorem 4) is :mod:`resnet_core.theorem4`; its names
are also found here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult

from ._pgd import (ESCAPE_FRACTION, GD_CONVERGED, STATUS_MESSAGES, Problem, default_f_escape,
                   estimate_local, pgd_constants, run, status_message)
from ._progress import progress_bar
from ._schema import FINITE, validated
from .theorem4 import projected_sgd, theorem4_bound

__all__ = ["ESCAPE_FRACTION", "EllRhoEstimate", "GD_CONVERGED", "STATUS_MESSAGES",
           "default_f_escape", "estimate_ell_rho", "gradient_descent", "perturbed_gd",
           "pgd_constants", "projected_sgd", "status_message", "theorem4_bound"]


class EllRhoEstimate(NamedTuple):
    """Local estimates of the gradient and Hessian Lipschitz constants at a point (what
    :func:`estimate_ell_rho` returns): ``ell = 2 ||H(x0)||`` and
    ``rho = 2 max_i ||H(x0 + h e_i) e_i - H(x0) e_i|| / h``.  Neither is a global bound.
    A tuple, so ``ell, rho = estimate_ell_rho(...)`` unpacks."""

    ell: float
    rho: float

    def to_dict(self) -> dict:
        """``{"ell": ..., "rho": ...}`` (JSON-serialisable)."""
        return {"ell": float(self.ell), "rho": float(self.rho)}

    def __str__(self) -> str:
        return (f"ell = {self.ell:.6g} (2 ||H(x0)||), rho = {self.rho:.6g} (2 x the largest "
                "of four Hessian differences at x0): local estimates, not global bounds")


@validated
def estimate_ell_rho(objective, x0: ArrayLike, *, wrt: str = "all",
                     seed: int | None = 0) -> EllRhoEstimate:
    """Local estimates of the gradient and Hessian Lipschitz constants at ``x0`` (what
    :func:`perturbed_gd` uses when ``ell`` or ``rho`` is not given): ``ell = 2 ||H(x0)||``
    (power iteration on ``hessp``) and ``rho = 2 max_i ||H(x0 + h e_i) e_i - H(x0) e_i|| / h``
    over four random unit ``e_i``, ``h = 1e-3 (1 + ||x0||)``; over all parameters
    (``wrt="all"``) or ``(w, V)`` with ``theta`` fixed (``"wV"``).  The factor 2 is a margin;
    neither is a global bound.  ``seed`` draws the directions (``None``: fresh entropy).

    Returns
    -------
    EllRhoEstimate
        ``(ell, rho)``, a named tuple with a printout.
    """
    problem = Problem(objective, x0, wrt)
    return EllRhoEstimate(*estimate_local(problem, problem.u0, np.random.default_rng(seed)))


@validated
def perturbed_gd(objective, x0: ArrayLike, *, eps: float, ell: float | None = None,
                 rho: float | None = None, c: float = 1.0, delta: float = 0.1,
                 delta_f: float | None = None, eta: float | None = None,
                 r: float | None = None, g_thres: float | None = None,
                 f_thres: float | None = None, t_thres: int | None = None,
                 max_iter: int = 100_000, wrt: str = "all", seed: int | None = 0,
                 callback=None, record_every: int = 100, f_escape: float | None = None,
                 progress: bool = False) -> OptimizeResult:
    """Perturbed gradient descent, Jin et al. (2017) Algorithm 2, exactly.

    ::

        t_noise = -t_thres - 1
        for t = 0, 1, ...:
            if ||grad f(x_t)|| <= g_thres and t - t_noise > t_thres:
                x~ = x_t; t_noise = t; x_t = x~ + xi,  xi uniform in the ball of radius r
            if t - t_noise == t_thres and f(x_t) - f(x~) > -f_thres:
                return x~
            x_{t+1} = x_t - eta grad f(x_t)

    Parameters
    ----------
    objective : Objective or FeatureObjective
    x0 : array
        Start (all parameters of the objective).
    eps : float
        Target: an eps-second-order stationary point w.h.p.
    ell, rho : float, optional
        Gradient and Hessian Lipschitz constants.  When missing they are estimated locally
        at ``x0`` (``2 ||H(x0)||`` by power iteration; ``rho`` from Hessian-vector products
        at four nearby points, times 2): not global bounds, so pass them when known.
    c, delta : float
        The algorithm's constant and failure probability.
    delta_f : float, optional
        ``Delta_f >= f(x0) - f*``; default ``f(x0)`` (the built-in losses are >= 0).
    eta, r, g_thres, f_thres, t_thres : optional
        Override the derived constants (see :func:`pgd_constants`).
    max_iter : int
    wrt : {"all", "wV"}
        All parameters, or ``(w, V)`` with ``theta`` fixed (an Objective's ``partial``).
    seed : int or None
        Seeds the perturbations and the estimates of ``ell``, ``rho`` (the result depends
        on the seed alone); default 0, ``None``: fresh entropy.
    callback : callable, optional
        ``callback(info)`` every ``record_every`` iterations with ``info.x``, ``info.fun``,
        ``info.nit``, ``info.grad_norm``; returning True stops the run (status 3).
    record_every : int
        History cadence (``0``: no history).
    f_escape : float, optional
        Decrease below ``f(x0)`` that counts as escaping; default
        :func:`default_f_escape` ``= 0.1 eps^1.5 / sqrt(rho)`` (docs/pgd.md, section 4).
    progress : bool
        A tqdm bar of the iterations (needs tqdm; updated between blocks of the compiled
        loop, or every ``record_every`` steps of the streamed one).  Nothing is printed
        otherwise.

    Returns
    -------
    OptimizeResult
        ``x, fun, jac, nit, nfev, status, success, message``, ``n_perturbations``,
        ``perturbation_iters``, ``escaped`` / ``escape_iter`` (first iteration with
        ``f <= f(x0) - f_escape``), ``history`` (``iter``, ``fun``, ``grad_norm``), the
        constants used (``eta, r, g_thres, f_thres, t_thres, chi, ell, rho, delta_f``) and
        ``compiled`` (which loop ran).
    """
    problem = Problem(objective, x0, wrt)
    F0, _ = problem.fun_and_grad(problem.u0)
    estimated = ell is None or rho is None
    if estimated:
        e_ell, e_rho = estimate_local(problem, problem.u0, np.random.default_rng(seed))
        ell = e_ell if ell is None else ell
        rho = e_rho if rho is None else rho
    delta_f = max(F0, 1e-12) if delta_f is None else delta_f
    consts = pgd_constants(eps=eps, ell=float(ell), rho=float(rho), c=c, delta=delta,
                           delta_f=delta_f, dim=problem.dim)
    for name, value in (("eta", eta), ("r", r), ("g_thres", g_thres), ("f_thres", f_thres)):
        if value is not None:
            consts[name] = float(value)
    if t_thres is not None:
        consts["t_thres"] = t_thres
    consts.update(ell=float(ell), rho=float(rho), delta_f=delta_f, ell_rho_estimated=estimated,
                  f_escape=(default_f_escape(eps, rho) if f_escape is None
                            else float(f_escape)))
    with progress_bar(progress, max_iter, "perturbed_gd", "it") as update:
        res = run(problem, consts, perturb=True, max_iter=max_iter, seed=seed,
                  callback=callback, record_every=record_every, F0=F0,
                  progress=update if progress else None)
    res.f_escape = consts["f_escape"]
    return res


@validated(renamed={"gtol": "eps"}, eps=FINITE)
def gradient_descent(objective, x0: ArrayLike, *, eta: float, eps: float = 0.0,
                     max_iter: int = 10_000, wrt: str = "all", callback=None,
                     record_every: int = 100, f_escape: float = 1e-8,
                     progress: bool = False) -> OptimizeResult:
    """Plain gradient descent ``x_{t+1} = x_t - eta grad f(x_t)``, the baseline of
    :func:`perturbed_gd` (same loops, same result type); stops when ``||grad|| <= eps``
    (a negative ``eps`` runs all ``max_iter`` steps).
    ``progress=True``: a tqdm bar of the iterations, as in :func:`perturbed_gd`."""
    problem = Problem(objective, x0, wrt)
    consts = {"eta": float(eta), "r": 0.0, "g_thres": float(eps), "f_thres": 0.0,
              "t_thres": 1, "f_escape": float(f_escape)}
    with progress_bar(progress, max_iter, "gradient_descent", "it") as update:
        return run(problem, consts, perturb=False, max_iter=max_iter, seed=0,
                   callback=callback, record_every=record_every,
                   progress=update if progress else None)

