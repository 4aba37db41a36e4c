"""The machinery of gradient descent with perturbations, shared by the optimisers
(:mod:`resnet_core.optim`) and the escape studies (:mod:`resnet_core.studies`): the problem
a run sees (:class:`Problem`), Jin et al.'s constants, the status codes and the driver of the
compiled and the streamed loops (:func:`run`).  An internal API module: its names are used
across the package, not by users.

Which loop runs: on fixed features held in memory (a :class:`FeatureObjective`, or an
:class:`Objective` with ``wrt="wV"``) and a built-in loss, the whole iteration is compiled
(numba, ``resnet_core._loops``): value, gradient, perturbation and bookkeeping, with no
Python per step.  A quadratic loss (the squared loss, or a registered ``quadratic`` entry
without kernel code) runs on the data's second moments (``M = E[z z^T]``,
``b = E[z y]``, ``c = E[y^2] / 2`` with ``z = [x; phi]``, one pass in float64), so a step
costs ``O((d + k)^2)`` whatever ``n`` (and any ``n`` runs compiled); the other losses run
on the samples up to ``COMPILED_WORK``.  With ``wrt="all"`` on an :class:`Objective` (or a
user-defined loss) each step is one streamed pass of the compiled kernels over all samples,
driven from Python: a step costs one ``fun_and_grad`` and the driver's share is a few
microseconds (measured in ``benchmarks/compare.py``).  Both loops draw the same random
numbers from the same seed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import OptimizeResult

from . import _loops
from ._blocks import StepBlocks
from ._schema import INT_MAX, validated
from ._validation import check_choice
from .objective import FeatureObjective, Objective

STATUS_MESSAGES = {
    0: "converged: no decrease of f_thres within t_thres steps of a perturbation",
    1: "maximum number of iterations reached",
    2: "stopped: non-finite value or gradient; x is the last finite iterate",
    3: "stopped by the callback",
    4: "stopped at escape: F <= F(start) - f_escape (escape studies with stop_at_escape)",
}
# Status 0 of plain gradient descent (the table's 0 is PGD's stop).
GD_CONVERGED = "converged: ||grad|| <= eps"
# Default escape criterion: a decrease of F by this fraction of eps^1.5 / sqrt(rho), the
# scale of what a saddle with lambda_min = -sqrt(rho eps) offers (docs/pgd.md, section 4).
ESCAPE_FRACTION = 0.1
# Work (samples x parameters) below which a compiled single-thread loop beats streaming.
COMPILED_WORK = 1 << 21
# The squared loss on fixed features runs compiled on second moments (any n); False: on the
# samples, as the other losses (tests compare the two).
MOMENTS = True


@validated(dim=None)
def pgd_constants(*, eps, ell, rho, c, delta, delta_f, dim):
    """The six constants of Jin et al. (2017), Algorithm 2 (see ``paper.md``):
    ``chi = 3 max(log(dim ell Delta_f / (c eps^2 delta)), 4)``, ``eta = c / ell``,
    ``r = sqrt(c) / chi^2 eps / ell``, ``g_thres = sqrt(c) / chi^2 eps``,
    ``f_thres = c / chi^3 sqrt(eps^3 / rho)``, ``t_thres = chi / c^2 ell / sqrt(rho eps)``
    (rounded up to an integer number of steps)."""
    # the formulas as written (the constants bit for bit as before); an input of absurd
    # size overflows or divides by zero: caught here and reported with the inputs
    try:
        chi = 3.0 * max(math.log(dim * ell * delta_f / (c * eps**2 * delta)), 4.0)
        consts = {"chi": chi, "eta": c / ell, "r": math.sqrt(c) / chi**2 * eps / ell,
                  "g_thres": math.sqrt(c) / chi**2 * eps,
                  "f_thres": c / chi**3 * math.sqrt(eps**3 / rho)}
        t_thres = chi / c**2 * ell / math.sqrt(rho * eps)
    except (ZeroDivisionError, OverflowError, ValueError):
        consts, t_thres = {"chi": math.nan}, math.nan
    bad = [k for k, v in consts.items() if not (math.isfinite(v) and v > 0)]
    if bad or not (math.isfinite(t_thres) and t_thres < INT_MAX):
        name = bad[0] if bad else "t_thres"
        value = consts[name] if bad else t_thres
        raise ValueError(
            f"eps={eps!r}, ell={ell!r}, rho={rho!r}, c={c!r}, delta={delta!r}, "
            f"delta_f={delta_f!r} give a PGD constant out of range ({name} = {value!r}): "
            "give values of ordinary size, or the constants (eta, r, g_thres, f_thres, "
            "t_thres) directly")
    consts["t_thres"] = int(math.ceil(t_thres))
    return consts


def status_message(status: int, perturb: bool = True) -> str:
    """The words for a status code of :func:`perturbed_gd` (``perturb``) or
    :func:`gradient_descent`."""
    return GD_CONVERGED if status == 0 and not perturb else STATUS_MESSAGES[int(status)]


def default_f_escape(eps: float, rho: float) -> float:
    """The default escape criterion: a decrease of ``F`` by
    ``ESCAPE_FRACTION * eps^1.5 / sqrt(rho)``.

    Along the eigenvector of a saddle with ``lambda_min = -gamma``, ``gamma = sqrt(rho eps)``
    (the curvature PGD resolves), the cubic model ``-gamma t^2 / 2 + rho |t|^3 / 6`` reaches
    ``-(2/3) gamma^3 / rho^2 = -(2/3) eps^1.5 / sqrt(rho)``: a drop of a tenth of that scale
    means the run left the saddle's neighbourhood.  Jin et al.'s ``f_thres`` is the same
    scale divided by ``chi^3`` (``chi >= 12``: at most 6e-4 of it), small enough for
    rounding or a start that is not stationary to count as an escape.
    """
    return ESCAPE_FRACTION * float(eps) ** 1.5 / math.sqrt(float(rho))


class Problem:
    """The function PGD runs on, in its own coordinates ``u``: all parameters, or
    ``(w, V)`` with ``theta`` fixed; knows how to go back to the objective's ``x``."""

    def __init__(self, objective, x0, wrt):
        check_choice("wrt", wrt, ("all", "wV"))
        if not isinstance(objective, (Objective, FeatureObjective)):
            raise TypeError("objective must be an Objective or a FeatureObjective; got "
                            f"{type(objective).__name__}")
        x0 = objective.validate_point(x0, "x0")
        self.tail = np.empty(0)
        target = objective  # what u is a point of
        # out-of-core or distributed data: the generic loop over the objective's passes
        streamed = objective.engine.stateless
        if isinstance(objective, Objective) and wrt == "wV":
            target = objective.partial(x0, materialize=not streamed)
            self.tail = x0[target.n_params:].copy()
            x0 = x0[:target.n_params]
        self.target = target
        self.fo = target if isinstance(target, FeatureObjective) else None
        self.u0 = np.asarray(x0, dtype=np.float64).copy()
        self.dim = self.u0.size
        # the squared loss runs on the data's second moments, whatever n (_loops.moment_data)
        self.moments = (MOMENTS and self.fo is not None and not streamed
                        and target.loss.quadratic)
        # (a quadratic loss runs on its moments whether or not the kernels compute it)
        self.compiled = self.moments or (
            self.fo is not None and target.loss.code >= 0 and not streamed
            and target.n_samples * target.n_params <= COMPILED_WORK)
        if self.moments:
            self.data = _loops.moment_data(target.X, target.Phi, target.y,
                                           target.sample_weight, target.head == "residual")
        elif self.compiled:
            self.data = (np.asarray(target.X, np.float64), np.asarray(target.Phi, np.float64),
                         np.asarray(target.y, np.float64),
                         np.asarray(target.sample_weight, np.float64),
                         target.loss.code, target.head == "residual")

    def fun_and_grad(self, u):
        F, g = self.target.fun_and_grad(u)
        return float(F), np.asarray(g, dtype=np.float64)

    def hessp(self, u, p):
        return np.asarray(self.target.hessp(u, p), dtype=np.float64)

    def to_x(self, u):
        return np.concatenate([u, self.tail]) if self.tail.size else u


def estimate_local(problem: Problem, u0, rng) -> tuple[float, float]:
    """Local estimates at ``u0``: ``ell = 2 ||H(u0)||`` (power iteration on ``hessp``) and
    ``rho = 2 max_i ||H(u0 + h e_i) e_i - H(u0) e_i|| / h`` over four random unit ``e_i``
    (``h = 1e-3 (1 + ||u0||)``).  The factor 2 is a margin; neither is a global bound."""
    v = rng.standard_normal(problem.dim)
    lam = 0.0
    for _ in range(30):
        v /= np.linalg.norm(v)
        hv = problem.hessp(u0, v)
        lam = float(np.linalg.norm(hv))
        if lam == 0.0:
            break
        v = hv
    h = 1e-3 * (1.0 + np.linalg.norm(u0))
    rho = 0.0
    for _ in range(4):
        e = rng.standard_normal(problem.dim)
        e /= np.linalg.norm(e)
        rho = max(rho, np.linalg.norm(problem.hessp(u0 + h * e, e) - problem.hessp(u0, e)) / h)
    return max(2.0 * lam, 1e-12), max(2.0 * float(rho), 1e-12)


def python_core(problem, u, state, consts, perturb, t_stop, hist, pert, rng,
                stop_escape=False):
    """The loop of ``_loops.pgd_core`` over the objective's own (streamed) fun_and_grad."""
    I = _loops
    x_tilde, F_escape = state["x_tilde"], state["F_start"] - consts["f_escape"]
    while state["istate"][I.I_T] < t_stop:
        ist = state["istate"]
        t = int(ist[I.I_T])
        F, g = problem.fun_and_grad(u)
        ist[I.I_NFEV] += 1
        if not (np.isfinite(F) and np.all(np.isfinite(g))):
            u[:] = state["x_prev"]
            ist[I.I_STATUS] = 2
            return
        gn = float(np.linalg.norm(g))
        if ist[I.I_ESCAPE] < 0 and F <= F_escape:
            ist[I.I_ESCAPE] = t
            if stop_escape:
                ist[I.I_STATUS] = 4
                return
        if state["record_every"] > 0 and t % state["record_every"] == 0:
            hist.append((t, F, gn))
        if not perturb:
            if gn <= consts["g_thres"]:
                ist[I.I_STATUS] = 0
                return
        elif gn <= consts["g_thres"] and t - ist[I.I_NOISE] > consts["t_thres"]:
            x_tilde[:] = u
            state["f_tilde"] = F
            ist[I.I_NOISE] = t
            ist[I.I_NPERT] += 1
            pert.append(t)
            _loops.add_ball_sample(u, consts["r"], rng)
            F, g = problem.fun_and_grad(u)
            ist[I.I_NFEV] += 1
            if not (np.isfinite(F) and np.all(np.isfinite(g))):
                u[:] = x_tilde
                ist[I.I_STATUS] = 2
                return
        if perturb and t - ist[I.I_NOISE] == consts["t_thres"] and \
                F - state["f_tilde"] > -consts["f_thres"]:
            u[:] = x_tilde
            ist[I.I_STATUS] = 0
            return
        state["x_prev"][:] = u
        u -= consts["eta"] * g
        ist[I.I_T] = t + 1


def grown(a: np.ndarray, need: int) -> np.ndarray:
    """``a`` with room for at least ``need`` entries (its own entries first): the same
    array when it has them, else one at least twice as long."""
    if a.size >= need:
        return a
    out = np.zeros(max(need, 2 * a.size), a.dtype)
    out[:a.size] = a
    return out


def run(problem: Problem, consts, *, perturb, max_iter, seed, callback, record_every,
        F0=None, rng=None, stop_at_escape=False, progress=None):
    """Drive the compiled or the Python loop in segments of ``record_every`` iterations
    (the callback's cadence), the compiled one in timed blocks within them (a Ctrl-C is
    raised between two blocks), and package an OptimizeResult.  ``rng``: a splitmix64
    state to draw from (default: from ``SeedSequence(seed)``); ``stop_at_escape``: stop at
    the escape iteration (status 4); ``progress(n)``: told the iterations each segment or
    block advanced."""
    I = _loops
    u = problem.u0.copy()
    if F0 is None:
        F0, _ = problem.fun_and_grad(u)
    istate = np.zeros(6, dtype=np.int64)
    istate[I.I_NOISE] = -consts["t_thres"] - 1
    istate[I.I_STATUS] = -1
    istate[I.I_ESCAPE] = -1
    if rng is None:
        rng = _loops.seed_state(np.uint64(np.random.SeedSequence(seed).generate_state(
            1, np.uint64)[0]))
    # the history and the perturbation marks grow with the run (a block at a time), never
    # sized by max_iter: max_iter=10**12 costs nothing when the run stops early
    t_thres = max(consts["t_thres"], 1)
    hist = {"t": np.zeros(0, np.int64), "F": np.zeros(0), "g": np.zeros(0)}
    pert = np.zeros(0, np.int64)
    n_hist = n_pert = 0
    state = {"istate": istate, "x_tilde": u.copy(), "x_prev": u.copy(), "f_tilde": F0,
             "F_start": F0, "record_every": record_every}
    py_hist, py_pert = [], []
    fstate = np.array([F0, F0])
    g = np.empty(problem.dim)
    if problem.compiled:
        _loops.check_codes()
    every = record_every if (callback is not None and record_every > 0) else max_iter
    if progress is not None and callback is None and not problem.compiled:
        every = min(every, max(1, record_every or 100))  # the bar moves between segments
    blocks = StepBlocks()
    while istate[I.I_STATUS] < 0 and istate[I.I_T] < max_iter:
        t = int(istate[I.I_T])
        t_callback = min((t // every + 1) * every, max_iter)
        if problem.compiled:
            t_stop = min(t_callback, t + blocks.next())
            if record_every > 0:
                need = n_hist + (t_stop - t) // record_every + 2
                hist = {key: grown(a, need) for key, a in hist.items()}
            pert = grown(pert, n_pert + (t_stop - t) // t_thres + 2)
            n_hist, n_pert = _loops.pgd_core(
                *problem.data, u, state["x_tilde"], g, state["x_prev"], istate, fstate, rng,
                perturb, consts["eta"], consts["r"], consts["g_thres"], consts["f_thres"],
                consts["t_thres"], consts["f_escape"], t_stop, record_every, hist["t"],
                hist["F"], hist["g"], n_hist, pert, n_pert, stop_at_escape)
            blocks.done(int(istate[I.I_T]) - t)
        else:
            python_core(problem, u, state, consts, perturb, t_callback, py_hist, py_pert, rng,
                         stop_escape=stop_at_escape)
        if progress is not None:
            progress(int(istate[I.I_T]) - t)
        if callback is not None and istate[I.I_STATUS] < 0 and istate[I.I_T] == t_callback:
            Fc, gc = problem.fun_and_grad(u)
            info = OptimizeResult(x=problem.to_x(u.copy()), fun=Fc, nit=int(istate[I.I_T]),
                                  grad_norm=float(np.linalg.norm(gc)))
            if callback(info):
                istate[I.I_STATUS] = 3
    if istate[I.I_STATUS] < 0:
        istate[I.I_STATUS] = 1
    if not problem.compiled:
        n_hist, n_pert = len(py_hist), len(py_pert)
        if n_hist:
            hist["t"], hist["F"], hist["g"] = (np.array(c) for c in zip(*py_hist))
        pert = np.array(py_pert, dtype=np.int64)
    F, g = problem.fun_and_grad(u)
    status = int(istate[I.I_STATUS])
    return OptimizeResult(
        x=problem.to_x(u), fun=F, jac=g, nit=int(istate[I.I_T]), nfev=int(istate[I.I_NFEV]) + 2,
        status=status, success=status == 0, message=status_message(status, perturb),
        n_perturbations=int(istate[I.I_NPERT]), perturbation_iters=pert[:n_pert].copy(),
        escaped=bool(istate[I.I_ESCAPE] >= 0), escape_iter=int(istate[I.I_ESCAPE]),
        history={"iter": hist["t"][:n_hist].copy(), "fun": hist["F"][:n_hist].copy(),
                 "grad_norm": hist["g"][:n_hist].copy()},
        compiled=problem.compiled, **{k: v for k, v in consts.items() if k != "f_escape"})
