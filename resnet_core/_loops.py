"""Compiled optimisation loops (numba): perturbed gradient descent and batched escape runs;
the module's own jobs are the loops, the scalars they use live in ``_loop_scalars``, the
squared loss by moments in ``_moments`` and Theorem 4's projected SGD in ``_sgd_loop``
(re-exported here: ``_loops`` is the loops' API).

Why numba here and Cython for the objective: these loops do O(d k) work per step on small
data (Example 1 has one sample and two parameters), where any call overhead per step would
dominate.  All are serial and cached (``cache=True``, compiled once per machine); batched
studies run blocks of independent runs on Python threads (``nogil=True``).  numba's own
``parallel=True`` is not used: in a process that has loaded the Cython kernels' libgomp, its
OpenMP layer ran the threads one at a time here (measured), and it cannot be cached.

``error_model="numpy"``: a division by zero gives inf/NaN (which the loops detect and stop
on, status 2) instead of raising; without the checks a PGD step on Example 1 took 48 ns
instead of 29 ns.

numba keys a function's cache on its own file, and freezes the globals it reads (the
kernels' loss and activation codes) into the cached machine code: :func:`check_codes`
recompiles the loop modules when those codes, or the source of a module another one
inlines, differ from what the cache was built with.
"""

from __future__ import annotations

import math
import sys
import zlib
from pathlib import Path

import numba
import numpy as np

from . import _loop_scalars, _moments, _sgd_loop
# re-exported: the loops' API (optim, studies)
from ._loop_scalars import add_ball_sample, loss_d1, project, seed_state
from ._moments import MOMENTS, moment_data, moment_value_grad, moment_value_grad_2
from ._sgd_loop import sgd_steps

__all__ = ["MOMENTS", "add_ball_sample", "check_codes", "escape_steps", "feature_value_grad",
           "moment_data", "pgd_core", "project", "seed_state", "sgd_steps"]

# -- F_theta(w, V) for given features -------------------------------------------------

@numba.njit(cache=True, inline="always", error_model="numpy")
def feature_value_grad(X, Phi, y, s, loss, residual, z, grad, a, g):
    """``F = sum_i s_i l(p_i)`` and its gradient over ``z = [w, vec(V)]`` (residual head,
    ``p = x.w + phi.(V^T w)``) or ``[w, v]`` (skip head) into ``grad``; ``a`` and ``g`` are
    ``k``-entry scratch vectors (no allocation per call: this runs once per PGD step).
    With ``loss == MOMENTS`` the data are :func:`moment_data`'s ``(M, -, b, [c])``."""
    if loss == MOMENTS:
        return moment_value_grad(X, y, s[0], residual, z, grad, a, g)
    return sample_value_grad(X, Phi, y, s, loss, residual, z, grad, a, g)


@numba.njit(cache=True, inline="always", error_model="numpy")
def sample_value_grad(X, Phi, y, s, loss, residual, z, grad, a, g):
    """:func:`feature_value_grad` on the samples (a built-in loss).  The head's loops are
    written out here, not ``_moments``' head helpers: with those a step on Example
    1's sample took 5x longer (numba 0.68, measured; LLVM's choices differ)."""
    n, d = X.shape
    k = Phi.shape[1]
    for m in range(k):
        if residual:
            acc = 0.0
            for j in range(d):
                acc += z[d + j * k + m] * z[j]
            a[m] = acc
        else:
            a[m] = z[d + m]
        g[m] = 0.0
    for j in range(grad.shape[0]):
        grad[j] = 0.0
    F = 0.0
    for i in range(n):
        p = 0.0
        for j in range(d):
            p += X[i, j] * z[j]
        for m in range(k):
            p += Phi[i, m] * a[m]
        lv, d1 = loss_d1(loss, p, y[i])
        F += s[i] * lv
        r = s[i] * d1
        for j in range(d):
            grad[j] += r * X[i, j]
        for m in range(k):
            g[m] += r * Phi[i, m]
    if residual:
        for j in range(d):
            acc = 0.0
            for m in range(k):
                acc += z[d + j * k + m] * g[m]
                grad[d + j * k + m] = z[j] * g[m]
            grad[j] += acc
    else:
        for m in range(k):
            grad[d + m] = g[m]
    return F


# -- perturbed gradient descent (Jin et al. 2017, Algorithm 2) ------------------------
# istate: [t, t_noise, n_perturbations, status, escape_iter, nfev]
# fstate: [f_tilde, F_start]
# status codes: -1 running, 0 converged, 1 max_iter, 2 non-finite value or gradient,
# (3 callback, set by the driver), 4 stopped at escape
I_T, I_NOISE, I_NPERT, I_STATUS, I_ESCAPE, I_NFEV = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sq_norm_or_nan(F, g):
    """``||g||^2``, or NaN when ``F`` or an entry of ``g`` is not finite."""
    acc = 0.0
    for j in range(g.shape[0]):
        acc += g[j] * g[j]
    return acc if math.isfinite(F) and math.isfinite(acc) else math.nan


@numba.njit(cache=True, error_model="numpy")
def pgd_core(X, Phi, y, s, loss, residual, x, x_tilde, g, x_prev, istate, fstate, rng,
             perturb, eta, r, g_thres, f_thres, t_thres, f_escape, t_stop, record_every,
             hist_t, hist_F, hist_g, n_hist, pert_t, n_pert, stop_escape):
    """Run PGD (``perturb``) or plain GD from the state until iteration ``t_stop`` or a stop.

    Returns the number of history rows and of perturbation marks written so far.  Plain GD
    stops (status 0) once ``||grad|| <= g_thres``; with ``stop_escape`` a run stops (status
    4, ``x`` the iterate ``x_t``) at its escape iteration ``t``, the first with
    ``F <= F(start) - f_escape``.  The counters live in locals during the loop and go back
    to ``istate`` / ``fstate`` on exit.  ``(X, Phi, y, s, loss)`` are the samples, or moment
    data (``loss == MOMENTS``, see :func:`moment_data`).
    """
    # M (moments) and skip (the skip head) None or not: four specialisations, in each of
    # which numba prunes the branches on them and the head is a constant (a step on
    # Example 1 took 3x longer with the flag tested inside the loops); moments with
    # d = k = 1 run on scalars (_pgd_loop_2: 1.9x -> 1.1x the time of a loop written for
    # Example 1 alone, measured)
    if loss == MOMENTS:
        if X.shape[0] == 2 and Phi.shape[1] == 1:  # d = k = 1: Example 1
            if residual:
                return _pgd_loop_2(X, y, s, None, x, x_tilde, g, x_prev, istate, fstate, rng,
                                   perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                                   t_stop, record_every, hist_t, hist_F, hist_g, n_hist,
                                   pert_t, n_pert, stop_escape)
            return _pgd_loop_2(X, y, s, 0, x, x_tilde, g, x_prev, istate, fstate, rng,
                               perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                               t_stop, record_every, hist_t, hist_F, hist_g, n_hist,
                               pert_t, n_pert, stop_escape)
        if residual:
            return _pgd_loop(X, Phi, y, s, loss, X, None, x, x_tilde, g, x_prev, istate,
                         fstate, rng, perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                         t_stop, record_every, hist_t, hist_F, hist_g, n_hist, pert_t, n_pert,
                         stop_escape)
        return _pgd_loop(X, Phi, y, s, loss, X, 0, x, x_tilde, g, x_prev, istate,
                         fstate, rng, perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                         t_stop, record_every, hist_t, hist_F, hist_g, n_hist, pert_t, n_pert,
                         stop_escape)
    if residual:
        return _pgd_loop(X, Phi, y, s, loss, None, None, x, x_tilde, g, x_prev, istate,
                         fstate, rng, perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                         t_stop, record_every, hist_t, hist_F, hist_g, n_hist, pert_t, n_pert,
                         stop_escape)
    return _pgd_loop(X, Phi, y, s, loss, None, 0, x, x_tilde, g, x_prev, istate,
                         fstate, rng, perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                         t_stop, record_every, hist_t, hist_F, hist_g, n_hist, pert_t, n_pert,
                         stop_escape)


@numba.njit(cache=True, error_model="numpy")
def _pgd_loop(X, Phi, y, s, loss, M, skip, x, x_tilde, g, x_prev, istate, fstate, rng,
              perturb, eta, r, g_thres, f_thres, t_thres, f_escape, t_stop, record_every,
              hist_t, hist_F, hist_g, n_hist, pert_t, n_pert, stop_escape):
    """:func:`pgd_core` on moments (``M`` the moment matrix, which is ``X``) or on samples
    (``M`` None), for the residual head (``skip`` None) or the skip head."""
    dim = x.shape[0]
    wa, wg = np.empty(Phi.shape[1]), np.empty(Phi.shape[1])
    t, t_noise, n_perturb = istate[I_T], istate[I_NOISE], istate[I_NPERT]
    escape, nfev, status = istate[I_ESCAPE], istate[I_NFEV], istate[I_STATUS]
    f_tilde, F_escape = fstate[0], fstate[1] - f_escape
    g2_thres = g_thres * g_thres if g_thres >= 0 else -1.0
    next_record = t if record_every > 0 else t_stop + 1
    if record_every > 0 and t % record_every:
        next_record = t + record_every - t % record_every
    while t < t_stop:
        if M is None:
            if skip is None:
                F = sample_value_grad(X, Phi, y, s, loss, True, x, g, wa, wg)
            else:
                F = sample_value_grad(X, Phi, y, s, loss, False, x, g, wa, wg)
        elif skip is None:
            F = moment_value_grad(M, y, s[0], True, x, g, wa, wg)
        else:
            F = moment_value_grad(M, y, s[0], False, x, g, wa, wg)
        nfev += 1
        g2 = _sq_norm_or_nan(F, g)
        if math.isnan(g2):
            x[:] = x_prev
            status = 2
            break
        if escape < 0 and F <= F_escape:
            escape = t
            if stop_escape:
                status = 4
                break
        if t == next_record:
            next_record += record_every
            if n_hist < hist_t.shape[0]:
                hist_t[n_hist] = t
                hist_F[n_hist] = F
                hist_g[n_hist] = math.sqrt(g2)
                n_hist += 1
        if not perturb:
            if g2 <= g2_thres:
                status = 0
                break
        elif g2 <= g2_thres and t - t_noise > t_thres:
            for j in range(dim):
                x_tilde[j] = x[j]
            f_tilde = F
            t_noise = t
            n_perturb += 1
            if n_pert < pert_t.shape[0]:
                pert_t[n_pert] = t
                n_pert += 1
            add_ball_sample(x, r, rng)
            if M is None:
                if skip is None:
                    F = sample_value_grad(X, Phi, y, s, loss, True, x, g, wa, wg)
                else:
                    F = sample_value_grad(X, Phi, y, s, loss, False, x, g, wa, wg)
            elif skip is None:
                F = moment_value_grad(M, y, s[0], True, x, g, wa, wg)
            else:
                F = moment_value_grad(M, y, s[0], False, x, g, wa, wg)
            nfev += 1
            if math.isnan(_sq_norm_or_nan(F, g)):
                x[:] = x_tilde
                status = 2
                break
        if perturb and t - t_noise == t_thres and F - f_tilde > -f_thres:
            x[:] = x_tilde
            status = 0
            break
        for j in range(dim):
            x_prev[j] = x[j]
            x[j] -= eta * g[j]
        t += 1
    istate[I_T], istate[I_NOISE], istate[I_NPERT] = t, t_noise, n_perturb
    istate[I_ESCAPE], istate[I_NFEV], istate[I_STATUS] = escape, nfev, status
    fstate[0] = f_tilde
    return n_hist, n_pert


@numba.njit(cache=True, error_model="numpy")
def _pgd_loop_2(M, b, cs, skip, x, x_tilde, g, x_prev, istate, fstate, rng, perturb, eta,
                r, g_thres, f_thres, t_thres, f_escape, t_stop, record_every, hist_t, hist_F,
                hist_g, n_hist, pert_t, n_pert, stop_escape):
    """:func:`_pgd_loop` on moments with ``d = k = 1`` (Example 1), step for step the same
    arithmetic: the iterate, the previous iterate and the gradient live in registers (in
    the general loop every step stores and reloads them through memory, which nearly
    doubled the dependency chain of a step) and go back to the arrays on exit and around a
    perturbation."""
    M00, M01, M10, M11 = M[0, 0], M[0, 1], M[1, 0], M[1, 1]
    b0, b1, c = b[0], b[1], cs[0]
    w, v, pw, pv = x[0], x[1], x_prev[0], x_prev[1]
    gw, gv = g[0], g[1]
    t, t_noise, n_perturb = istate[I_T], istate[I_NOISE], istate[I_NPERT]
    escape, nfev, status = istate[I_ESCAPE], istate[I_NFEV], istate[I_STATUS]
    f_tilde, F_escape = fstate[0], fstate[1] - f_escape
    g2_thres = g_thres * g_thres if g_thres >= 0 else -1.0
    next_record = t if record_every > 0 else t_stop + 1
    if record_every > 0 and t % record_every:
        next_record = t + record_every - t % record_every
    while t < t_stop:
        F, gw, gv = moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v)
        nfev += 1
        g2 = 0.0 + gw * gw + gv * gv
        if not (math.isfinite(F) and math.isfinite(g2)):
            w, v = pw, pv
            status = 2
            break
        if escape < 0 and F <= F_escape:
            escape = t
            if stop_escape:
                status = 4
                break
        if t == next_record:
            next_record += record_every
            if n_hist < hist_t.shape[0]:
                hist_t[n_hist] = t
                hist_F[n_hist] = F
                hist_g[n_hist] = math.sqrt(g2)
                n_hist += 1
        if not perturb:
            if g2 <= g2_thres:
                status = 0
                break
        elif g2 <= g2_thres and t - t_noise > t_thres:
            x_tilde[0], x_tilde[1] = w, v
            f_tilde = F
            t_noise = t
            n_perturb += 1
            if n_pert < pert_t.shape[0]:
                pert_t[n_pert] = t
                n_pert += 1
            x[0], x[1] = w, v
            add_ball_sample(x, r, rng)
            w, v = x[0], x[1]
            F, gw, gv = moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v)
            nfev += 1
            g2 = 0.0 + gw * gw + gv * gv
            if not (math.isfinite(F) and math.isfinite(g2)):
                w, v = x_tilde[0], x_tilde[1]
                status = 2
                break
        if perturb and t - t_noise == t_thres and F - f_tilde > -f_thres:
            w, v = x_tilde[0], x_tilde[1]
            status = 0
            break
        pw, pv = w, v
        w -= eta * gw
        v -= eta * gv
        t += 1
    x[0], x[1], x_prev[0], x_prev[1], g[0], g[1] = w, v, pw, pv, gw, gv
    istate[I_T], istate[I_NOISE], istate[I_NPERT] = t, t_noise, n_perturb
    istate[I_ESCAPE], istate[I_NFEV], istate[I_STATUS] = escape, nfev, status
    fstate[0] = f_tilde
    return n_hist, n_pert


# Status of an escape run that has not started yet (istate of escape_steps).
S_NEW = -2


@numba.njit(cache=True, nogil=True)
def escape_steps(X, Phi, y, s, loss, residual, starts, seeds, perturb, eta, r, g_thres,
                 f_thres, t_thres, f_escape, max_iter, stop_escape, x_out, x_tilde, x_prev,
                 istate_out, fstate_out, rng_out, F_out, gnorm_out, i, hi, budget):
    """Advance the independent runs ``i, i + 1, ... < hi`` in turn by ``budget`` iterations
    in all (a run's start and its final evaluation count as one each); return the first
    unfinished run and the iterations spent.  With ``stop_escape`` a run stops at its escape
    iteration (status 4).

    Run ``i`` starts from ``starts[i]`` with seed ``seeds[i]`` (status ``S_NEW`` in
    ``istate_out[i]``) and owns row ``i`` of every array, its whole state: a run can stop at
    any iteration and resume with the same result, blocks of runs can go to any threads (the
    GIL is released), and the results depend on the seeds only.
    """
    dim = starts.shape[1]
    g = np.empty(dim)
    wa, wg = np.empty(Phi.shape[1]), np.empty(Phi.shape[1])
    empty_f = np.empty(0)
    empty_i = np.empty(0, dtype=np.int64)
    spent = 0
    while i < hi and spent < budget:
        x, istate, fstate = x_out[i], istate_out[i], fstate_out[i]
        if istate[I_STATUS] == S_NEW:
            x[:] = starts[i]
            x_tilde[i] = starts[i]
            x_prev[i] = starts[i]
            istate[:] = 0
            istate[I_NOISE] = -t_thres - 1
            istate[I_STATUS] = -1
            istate[I_ESCAPE] = -1
            fstate[1] = feature_value_grad(X, Phi, y, s, loss, residual, x, g, wa, wg)
            fstate[0] = fstate[1]
            rng_out[i] = seed_state(seeds[i])[0]
            spent += 1
        t0 = istate[I_T]
        t_stop = min(max_iter, t0 + max(budget - spent, 1))
        pgd_core(X, Phi, y, s, loss, residual, x, x_tilde[i], g, x_prev[i], istate, fstate,
                 rng_out[i:i + 1], perturb, eta, r, g_thres, f_thres, t_thres, f_escape,
                 t_stop, 0, empty_i, empty_f, empty_f, 0, empty_i, 0, stop_escape)
        spent += istate[I_T] - t0
        if istate[I_STATUS] >= 0 or istate[I_T] >= max_iter:
            if istate[I_STATUS] < 0:
                istate[I_STATUS] = 1
            F_out[i] = feature_value_grad(X, Phi, y, s, loss, residual, x, g, wa, wg)
            gnorm_out[i] = math.sqrt(np.dot(g, g))
            spent += 1
            i += 1
    return i, spent


def loop_key() -> int:
    """A checksum of the kernels' codes and of the source of the modules whose functions
    the loops inline: a change in either makes every cached loop stale."""
    sources = [Path(m.__file__).read_bytes() for m in (_loop_scalars, _moments)]
    return zlib.crc32(repr((_loop_scalars.CODES, sources)).encode())


_KEY = loop_key()


@numba.njit(cache=True)
def _frozen_key():
    """The key in this module's compiled (possibly cached) machine code."""
    return _KEY


def _drop_stale_cache():
    """Recompile every loop (numba's ``recompile`` also empties its cache) when the cached
    machine code was built with another :data:`_KEY`."""
    if _frozen_key() == _KEY:
        return
    for module in (_loop_scalars, _moments, _sgd_loop, sys.modules[__name__]):
        for fn in vars(module).values():
            if (isinstance(fn, numba.core.dispatcher.Dispatcher)
                    and fn.py_func.__module__ == module.__name__):
                fn.recompile()


_codes_checked = False


def check_codes():
    """Call before a loop that evaluates a loss or an activation: the first call in a
    process runs ``_drop_stale_cache`` (not at import: loading any cached function costs
    about 0.1 s)."""
    global _codes_checked
    if not _codes_checked:
        _drop_stale_cache()
        _codes_checked = True
