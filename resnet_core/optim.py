"""Optimisers: perturbed gradient descent (Jin et al. 2017), plain gradient descent, and
projected SGD on the skip head (Shamir 2018, Theorem 4).

Which loop runs: on fixed features held in memory (a :class:`FeatureObjective`, or an
:class:`Objective` with ``wrt="wV"``) and a built-in loss, the whole iteration is compiled
(numba, ``resnet_core._loops``): value, gradient, perturbation and bookkeeping, with no
Python per step.  The squared loss runs on the data's second moments (``M = E[z z^T]``,
``b = E[z y]``, ``c = E[y^2] / 2`` with ``z = [x; phi]``, one pass in float64), so a step
costs ``O((d + k)^2)`` whatever ``n`` (and any ``n`` runs compiled); the other losses run
on the samples up to ``_COMPILED_WORK``.  With ``wrt="all"`` on an :class:`Objective` (or a user-defined loss) each
step is one streamed pass of the compiled kernels over all samples, driven from Python: a
step costs one ``fun_and_grad`` and the driver's share is a few microseconds (measured in
``benchmarks/compare.py``).  Both loops draw the same random numbers from the same seed.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult

from . import _loops
from ._blocks import StepBlocks
from ._progress import progress_bar
from ._schema import FINITE, INT_MAX, PROBABILITY, Int, Real, validated
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
_COMPILED_WORK = 1 << 21
# The squared loss on fixed features runs compiled on second moments (any n); False: on the
# samples, as the other losses (tests compare the two).
_MOMENTS = True


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


class _Problem:
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
        self.moments = (_MOMENTS and self.fo is not None and not streamed
                        and target.loss.quadratic)
        self.compiled = (self.fo is not None and target.loss.code >= 0 and not streamed
                         and (self.moments
                              or target.n_samples * target.n_params <= _COMPILED_WORK))
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


def _estimate_ell_rho(problem: _Problem, u0, rng):
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
    return max(2.0 * lam, 1e-12), max(2.0 * rho, 1e-12)


@validated
def estimate_ell_rho(objective, x0: ArrayLike, *, wrt: str = "all",
                     seed=None) -> tuple[float, float]:
    """Local estimates of the gradient and Hessian Lipschitz constants at ``x0`` (what
    :func:`perturbed_gd` uses when ``ell`` or ``rho`` is not given): ``ell = 2 ||H(x0)||``
    (power iteration on ``hessp``) and ``rho = 2 max_i ||H(x0 + h e_i) e_i - H(x0) e_i|| / h``
    over four random unit ``e_i``, ``h = 1e-3 (1 + ||x0||)``; over all parameters
    (``wrt="all"``) or ``(w, V)`` with ``theta`` fixed (``"wV"``).  The factor 2 is a margin;
    neither is a global bound."""
    problem = _Problem(objective, x0, wrt)
    return _estimate_ell_rho(problem, problem.u0, np.random.default_rng(seed))


def _python_core(problem, u, state, consts, perturb, t_stop, hist, pert, rng,
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


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    """``a`` with room for at least ``need`` entries (its own entries first): the same
    array when it has them, else one at least twice as long."""
    if a.size >= need:
        return a
    out = np.zeros(max(need, 2 * a.size), a.dtype)
    out[:a.size] = a
    return out


def _run(problem: _Problem, consts, *, perturb, max_iter, seed, callback, record_every,
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
                hist = {key: _grown(a, need) for key, a in hist.items()}
            pert = _grown(pert, n_pert + (t_stop - t) // t_thres + 2)
            n_hist, n_pert = _loops.pgd_core(
                *problem.data, u, state["x_tilde"], g, state["x_prev"], istate, fstate, rng,
                perturb, consts["eta"], consts["r"], consts["g_thres"], consts["f_thres"],
                consts["t_thres"], consts["f_escape"], t_stop, record_every, hist["t"],
                hist["F"], hist["g"], n_hist, pert, n_pert, stop_at_escape)
            blocks.done(int(istate[I.I_T]) - t)
        else:
            _python_core(problem, u, state, consts, perturb, t_callback, py_hist, py_pert, rng,
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


@validated
def perturbed_gd(objective, x0: ArrayLike, *, eps: float, ell: float | None = None,
                 rho: float | None = None, c: float = 1.0, delta: float = 0.1,
                 delta_f: float | None = None, eta: float | None = None,
                 r: float | None = None, g_thres: float | None = None,
                 f_thres: float | None = None, t_thres: int | None = None,
                 max_iter: int = 100_000, wrt: str = "all", seed=None, callback=None,
                 record_every: int = 100, f_escape: float | None = None,
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
    seed : int, optional
        Seeds the perturbations (the result depends on the seed alone).
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
    problem = _Problem(objective, x0, wrt)
    F0, _ = problem.fun_and_grad(problem.u0)
    estimated = ell is None or rho is None
    if estimated:
        e_ell, e_rho = _estimate_ell_rho(problem, problem.u0, np.random.default_rng(seed))
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
        res = _run(problem, consts, perturb=True, max_iter=max_iter, seed=seed,
                   callback=callback, record_every=record_every, F0=F0,
                   progress=update if progress else None)
    res.f_escape = consts["f_escape"]
    return res


@validated(renamed={"gtol": "eps"}, eps=FINITE)
def gradient_descent(objective, x0: ArrayLike, *, eta: float, eps: float = 0.0, max_iter: int = 10_000,
                     wrt: str = "all", callback=None, record_every: int = 100,
                     f_escape: float = 1e-8, progress: bool = False) -> OptimizeResult:
    """Plain gradient descent ``x_{t+1} = x_t - eta grad f(x_t)``, the baseline of
    :func:`perturbed_gd` (same loops, same result type); stops when ``||grad|| <= eps``
    (a negative ``eps`` runs all ``max_iter`` steps).
    ``progress=True``: a tqdm bar of the iterations, as in :func:`perturbed_gd`."""
    problem = _Problem(objective, x0, wrt)
    consts = {"eta": float(eta), "r": 0.0, "g_thres": float(eps), "f_thres": 0.0,
              "t_thres": 1, "f_escape": float(f_escape)}
    with progress_bar(progress, max_iter, "gradient_descent", "it") as update:
        return _run(problem, consts, perturb=False, max_iter=max_iter, seed=0,
                    callback=callback, record_every=record_every,
                    progress=update if progress else None)


def _sgd_bounds(objective: Objective, x, b: float):
    """Lipschitz constant ``l`` of the per-sample loss in ``(w, v)`` on ``||(w, v)|| <= b``
    and a bound ``r`` on its absolute value, from the data.

    With ``z = (x, f_theta(x))`` and ``|p| <= b ||z||``: ``l = L1 max ||z||`` and ``r = L0``
    from the loss's registry entry (``Loss.bounds``, docs/losses.md).  ``||f_theta(x)||`` is at
    most ``sqrt(k)`` for tanh and sigmoid, whatever ``theta``; for other activations it is
    taken at ``x`` (the start), which is then an estimate, not a bound.
    """
    X = np.asarray(objective.X, dtype=np.float64)
    if objective.activation in ("tanh", "sigmoid"):
        phi2 = float(objective.k)
        exact = True
    else:
        phi2 = float(np.max(np.sum(np.asarray(objective.features(x), np.float64) ** 2, axis=1)))
        exact = False
    zmax = math.sqrt(float(np.max(np.einsum("ij,ij->i", X, X))) + phi2)
    ymax = float(np.max(np.abs(objective.y)))
    rbound, d1 = (float(v[0]) for v in objective.loss.bounds([b * zmax], [ymax])[:2])
    lip = d1 * zmax
    return lip, rbound, exact


@validated(delta=PROBABILITY, loss_bound=Real(0.0), T=Int(1))
def theorem4_bound(*, b: float, lipschitz: float, loss_bound: float, T: int, eta: float,
                   delta: float, batch_size: int = 1) -> dict:
    """Theorem 4's right-hand side with explicit constants (derived in ``docs/theorem4.md``).

    With probability at least ``1 - delta`` over the samples, the iterates ``z_1..z_T`` of
    projected SGD on the ball ``||(w, v)|| <= b`` (minibatches of ``B = batch_size`` samples
    drawn uniformly with replacement, constant step ``eta``) satisfy::

        (1/T) sum_t F(w_t, v_t, theta_t) - min_{||u|| <= b} F_lin(u)
            <= regret_term + deviation_term
        regret_term    = 2 b^2 / (eta T) + eta l^2 / 2      (= 2.5 b l / sqrt(T) at the
                                                             default eta = b / (l sqrt(T)))
        deviation_term = r sqrt(2 log(1/delta) / (B T))

    so some iterate has a gap at most ``theorem_rhs = regret_term + deviation_term``.  ``l``
    bounds the gradient norm in ``(w, v)`` of the per-sample loss on the ball, ``r`` the
    (non-negative) per-sample loss there.  ``theorem_rhs_order`` is the paper's constant-free
    ``(b l + r sqrt(log(1/delta))) / sqrt(T)``, kept for reference.

    Parameters
    ----------
    b : float
        Radius of the ball ``||(w, v)|| <= b`` (diameter ``2 b``).
    lipschitz : float
        ``l``: bound on ``||grad_(w, v) l(w^T x + v^T f_theta(x); y)||`` on the ball.
    loss_bound : float
        ``r``: bound on the per-sample loss on the ball (the losses are ``>= 0``).
    T : int
        Steps.
    eta : float
        Constant step.
    delta : float
        Failure probability, in ``(0, 1)``.
    batch_size : int
        ``B``, samples per step.

    Returns
    -------
    dict
        ``regret_term``, ``deviation_term``, ``theorem_rhs``, ``theorem_rhs_order``.
    """
    regret = 2.0 * b * b / (eta * T) + 0.5 * eta * lipschitz**2
    deviation = loss_bound * math.sqrt(2.0 * math.log(1.0 / delta) / (batch_size * T))
    order = (b * lipschitz + loss_bound * math.sqrt(math.log(1.0 / delta))) / math.sqrt(T)
    return {"regret_term": regret, "deviation_term": deviation,
            "theorem_rhs": regret + deviation, "theorem_rhs_order": order}


@validated
def projected_sgd(objective, x0: ArrayLike, *, T: int, b: float, theta_radius: float | None = None,
                  eta: float | None = None, lipschitz: float | None = None,
                  batch_size: int = 1, seed=None, eval_every: int | None = None,
                  delta: float = 0.05) -> OptimizeResult:
    """Projected SGD on the skip head ``p = w^T x + v^T f_theta(x)`` (Theorem 4).

    ``(w, v, theta) <- Proj_M((w, v, theta) - eta grad h_t)`` with ``h_t`` the mean loss on a
    minibatch of ``B = batch_size`` samples drawn uniformly with replacement, ``M =
    {||(w, v)|| <= b} x {||theta|| <= theta_radius}`` (no constraint on ``theta`` when
    ``theta_radius`` is None).  Theorem 4 with explicit constants (``docs/theorem4.md``): with
    probability at least ``1 - delta`` the iterates ``z_t = (w_t, v_t, theta_t)``, ``t = 1..T``
    (``z_1`` the projected start, ``z_T`` the one before the last step) satisfy::

        (1/T) sum_t F(z_t) - min_{||u|| <= b} F_lin(u)
            <= 2 b^2 / (eta T) + eta l^2 / 2  +  r sqrt(2 log(1/delta) / (B T))
             = 2.5 b l / sqrt(T)              +  r sqrt(2 log(1/delta) / (B T))

    (the second line at the default ``eta = b / (l sqrt(T))``), hence so does the best of
    them; ``l`` bounds the per-sample gradient norm in ``(w, v)`` on the ball and ``r`` the
    per-sample loss (see :func:`theorem4_bound`).  ``F`` here is the average under the
    sampling, i.e. the objective's ``F`` when its sample weights are uniform.

    Parameters
    ----------
    objective : Objective
        With ``head="skip"`` and a built-in loss.
    x0 : array
        Start; projected onto ``M`` first.
    T : int
        Steps.
    b, theta_radius : float
        Radii of the two balls.
    eta : float, optional
        Step; default ``b / (l sqrt(T))``.
    lipschitz : float, optional
        ``l``; default from the data (see ``_sgd_bounds``).
    batch_size : int
    seed : int, optional
    eval_every : int, optional
        Full-data ``F`` is computed every ``eval_every`` steps (default ``T // 50``); the
        best of these iterates is returned.  ``eval_every=1`` evaluates every iterate (one
        full pass over the data per step), so the theorem's average itself is computed.
    delta : float
        Failure probability in the theorem's right-hand side.

    Returns
    -------
    OptimizeResult
        ``x`` (best evaluated iterate) and ``fun`` (its full-data ``F``), ``best_iter``,
        ``curve_iter`` / ``curve_fun`` (full-data ``F`` after ``curve_iter`` steps, i.e. at
        ``z_{t+1}``), ``F_lin_star`` and ``w_lin`` (best linear predictor with
        ``||u|| <= b``), ``gap`` (``fun - F_lin_star``);

        ``theorem_rhs = regret_term + deviation_term`` (formula above, with the run's
        ``eta``, ``lipschitz`` ``l`` and ``loss_bound`` ``r``; ``lipschitz_is_bound`` says
        whether ``l`` and ``r`` are bounds or estimates), ``theorem_rhs_order``
        ``= (b l + r sqrt(log(1/delta))) / sqrt(T)`` (the constant-free expression);

        ``gap_witness`` and ``gap_mean``: the smallest and the mean gap over the evaluated
        iterates among the theorem's ``z_1..z_T``.  ``gap_witness <= theorem_rhs`` exhibits
        an iterate with the theorem's guarantee; when ``all_iterates_evaluated``
        (``eval_every=1``) ``gap_mean`` is exactly the averaged left-hand side, otherwise it
        is only an estimate of it and a ``gap_witness`` above the bound proves nothing.
        ``uniform_weights``: whether the objective's ``F`` is the sampling's average (the
        bound is about the latter);

        ``eta``, ``max_norm_wv`` and ``max_norm_theta`` over all iterates, ``x_last``,
        ``nit``, ``status``, ``message``.
    """
    if not isinstance(objective, Objective) or objective.head != "skip":
        raise TypeError("projected_sgd needs an Objective with head='skip' (Theorem 4)")
    if objective.vector:
        raise NotImplementedError("projected_sgd (Theorem 4) is for scalar outputs; this "
                                  f"objective has n_outputs = {objective.n_outputs}")
    if objective.loss.code < 0:
        raise TypeError("projected_sgd runs compiled: it needs a built-in loss")
    if objective.feature_bias:
        raise NotImplementedError("projected_sgd does not support feature_bias=True yet")
    if objective.engine.stateless:
        raise ValueError("projected_sgd runs compiled over samples held in memory; this "
                         "objective's data are out-of-core or dask arrays")
    eval_every = max(T // 50, 1) if eval_every is None else eval_every
    x = np.array(objective.validate_point(x0, "x0"), dtype=np.float64)
    hv = objective.d + objective.k
    tr = -1.0 if theta_radius is None else float(theta_radius)
    max_norms = np.zeros(2)
    max_norms[0] = _loops.project(x, 0, hv, b)
    max_norms[1] = _loops.project(x, hv, x.size, tr)
    lip, rbound, exact = _sgd_bounds(objective, x, b)
    lip = lip if lipschitz is None else lipschitz
    eta = b / (lip * math.sqrt(T)) if eta is None else eta

    X = np.asarray(objective.X, dtype=np.float64)
    y = np.asarray(objective.y, dtype=np.float64)
    dims = objective.layout.dims.astype(np.int64)
    wmax = int(dims.max())
    L = dims.size - 1
    ws = (np.zeros(x.size), np.zeros((L, wmax)), np.zeros((L, wmax)), np.zeros(wmax),
          np.zeros(wmax))
    rng = _loops.seed_state(np.uint64(np.random.SeedSequence(seed).generate_state(1,
                                                                                  np.uint64)[0]))
    curve_t, curve_F = [0], [objective.fun(x)]
    best = (curve_F[0], 0, x.copy())
    status, t = 1, 0
    _loops.check_codes()
    blocks = StepBlocks()
    while t < T:
        steps = min(eval_every, T - t)
        ok, done = True, 0
        while ok and done < steps:
            n = min(blocks.next(), steps - done)
            ok = _loops.sgd_steps(X, y, objective.loss.code, objective.layout.act_code, dims,
                                  objective.bias, x, eta, b, tr, batch_size, n, rng, *ws,
                                  max_norms)
            blocks.done(n)
            done += n
        t += steps
        if not ok:
            status = 2
            break
        F = objective.fun(x)
        curve_t.append(t)
        curve_F.append(F)
        if F < best[0]:
            best = (F, t, x.copy())
    if status == 1:
        status = 0
    lin = objective.linear_baseline(radius=b)
    bound = theorem4_bound(b=b, lipschitz=lip, loss_bound=rbound, T=T, eta=eta, delta=delta,
                           batch_size=batch_size)
    curve_t, curve_F = np.array(curve_t), np.array(curve_F)
    in_theorem = curve_F[curve_t < t]  # F at the evaluated z_1..z_T (not z_{T+1})
    weights = np.asarray(objective.sample_weight)
    return OptimizeResult(
        x=best[2], fun=best[0], best_iter=best[1], x_last=x, nit=t, status=status,
        success=status == 0,
        message="completed T steps" if status == 0 else STATUS_MESSAGES[2],
        curve_iter=curve_t, curve_fun=curve_F, F_lin_star=lin.fun, w_lin=lin.w,
        gap=best[0] - lin.fun, gap_witness=float(in_theorem.min() - lin.fun),
        gap_mean=float(in_theorem.mean() - lin.fun),
        all_iterates_evaluated=eval_every == 1 and status == 0,
        uniform_weights=bool(np.all(weights == weights[0])), **bound, delta=delta,
        lipschitz=lip, lipschitz_is_bound=exact and lipschitz is None, loss_bound=rbound,
        eta=eta, b=b, theta_radius=theta_radius, batch_size=batch_size,
        max_norm_wv=float(max_norms[0]), max_norm_theta=float(max_norms[1]))
