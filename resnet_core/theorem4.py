"""Projected SGD on the skip head and its guarantee (Shamir 2018, Theorem 4).

:func:`projected_sgd` runs ``(w, v, theta) <- Proj((w, v, theta) - eta grad h_t)`` on
minibatches, compiled (``resnet_core._loops.sgd_steps``); :func:`theorem4_bound` is the
theorem's right-hand side with explicit constants (derived in ``docs/theorem4.md``).
Theorem 4 is about one output and the skip head ``p = w^T x + v^T f_theta(x)``: the paper
has no analogue with c outputs, and :func:`projected_sgd` says so.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult

from . import _kernels, _loops
from ._blocks import StepBlocks
from ._pgd import STATUS_MESSAGES
from ._schema import PROBABILITY, Int, Real, validated
from .objective import Objective

__all__ = ["projected_sgd", "theorem4_bound"]


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


@validated(renamed={"b": "radius"}, delta=PROBABILITY, loss_bound=Real(0.0), T=Int(1))
def theorem4_bound(*, radius: float, lipschitz: float, loss_bound: float, T: int, eta: float,
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
    radius : float
        ``b``: the radius of the ball ``||(w, v)|| <= b`` (diameter ``2 b``).
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
    b = radius
    regret = 2.0 * b * b / (eta * T) + 0.5 * eta * lipschitz**2
    deviation = loss_bound * math.sqrt(2.0 * math.log(1.0 / delta) / (batch_size * T))
    order = (b * lipschitz + loss_bound * math.sqrt(math.log(1.0 / delta))) / math.sqrt(T)
    return {"regret_term": regret, "deviation_term": deviation,
            "theorem_rhs": regret + deviation, "theorem_rhs_order": order}


@validated(renamed={"b": "radius"})
def projected_sgd(objective, x0: ArrayLike, *, T: int, radius: float,
                  theta_radius: float | None = None, eta: float | None = None,
                  lipschitz: float | None = None, batch_size: int = 1, seed: int | None = 0,
                  eval_every: int | None = None, delta: float = 0.05) -> OptimizeResult:
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
        With ``head="skip"`` and a loss compiled into the kernels (squared, logistic,
        smoothed hinge).
    x0 : array
        Start; projected onto ``M`` first.
    T : int
        Steps.
    radius, theta_radius : float
        Radii of the two balls (``radius`` is ``b`` in the formulas).
    eta : float, optional
        Step; default ``b / (l sqrt(T))``.
    lipschitz : float, optional
        ``l``; default from the data (see ``_sgd_bounds``).
    batch_size : int
    seed : int or None
        Seeds the minibatches (default 0; ``None``: fresh entropy).
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

        ``eta``, ``radius``, ``max_norm_wv`` and ``max_norm_theta`` over all iterates,
        ``x_last``, ``nit``, ``status``, ``message``.
    """
    if not isinstance(objective, Objective) or objective.head != "skip":
        raise TypeError("projected_sgd needs an Objective with head='skip' (Theorem 4)")
    if objective.vector:
        raise NotImplementedError(
            "projected_sgd runs Theorem 4, which is about one output and the scalar skip head "
            "p = w^T x + v^T f_theta(x): the paper has no analogue with c outputs (this "
            f"objective has n_outputs = {objective.n_outputs})")
    if objective.loss.code < 0:
        raise TypeError("projected_sgd runs compiled: it needs a loss compiled into the "
                        f"kernels ({sorted(_kernels.LOSS_CODES)}); the {objective.loss.name} "
                        "loss is computed by its formula")
    if objective.feature_bias:
        raise NotImplementedError("projected_sgd does not support feature_bias=True yet")
    if objective.engine.stateless:
        raise ValueError("projected_sgd runs compiled over samples held in memory; this "
                         "objective's data are out-of-core or dask arrays")
    eval_every = max(T // 50, 1) if eval_every is None else eval_every
    x = np.array(objective.validate_point(x0, "x0"), dtype=np.float64)
    hv = objective.d + objective.k
    tr = -1.0 if theta_radius is None else float(theta_radius)
    b = radius
    max_norms = np.array([_project(x[:hv], b), _project(x[hv:], tr)])
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
    bound = theorem4_bound(radius=b, lipschitz=lip, loss_bound=rbound, T=T, eta=eta,
                           delta=delta, batch_size=batch_size)
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
        eta=eta, radius=radius, theta_radius=theta_radius, batch_size=batch_size,
        max_norm_wv=float(max_norms[0]), max_norm_theta=float(max_norms[1]))


def _project(part: np.ndarray, radius: float) -> float:
    """Scale ``part`` (a view) in place onto the ball of ``radius`` (no-op inside it, or
    ``radius < 0``); return the norm of the result."""
    nrm = float(np.linalg.norm(part))
    if radius >= 0 and nrm > radius:
        part *= radius / nrm
        return float(radius)
    return nrm
