"""Compiled optimisation loops (numba): perturbed gradient descent, batched escape runs,
projected SGD.

Why numba here and Cython for the objective: these loops do O(d k) work per step on small
data (Example 1 has one sample and two parameters), where any call overhead per step would
dominate.  All are serial and cached (``cache=True``, compiled once per machine); batched
studies run blocks of independent runs on Python threads (``nogil=True``).  numba's own
``parallel=True`` is not used: in a process that has loaded the Cython kernels' libgomp, its
OpenMP layer ran the threads one at a time here (measured), and it cannot be cached.

``error_model="numpy"``: a division by zero gives inf/NaN (which the loops detect and stop
on, status 2) instead of raising; without the checks a PGD step on Example 1 took 48 ns
instead of 29 ns.

Randomness is a splitmix64 stream per run (state in a uint64 array the run owns), so a
run's result depends on its seed only, never on the thread that executes it.
Losses and activations repeat the formulas of ``src/_loss.pxd`` and ``src/_activation.pxd``
(the tests check both against the NumPy reference); their codes are read from the kernels
(``_kernels.LOSS_CODES``, ``ACTIVATION_CODES``), which numba freezes into the machine code
it caches: ``check_codes`` recompiles when the kernels were rebuilt with other codes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import _kernels

# -- random numbers ------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, error_model="numpy")
def seed_state(seed):
    """A fresh splitmix64 state array for ``seed``."""
    st = np.empty(1, dtype=np.uint64)
    st[0] = np.uint64(seed) * _MIX2 + _GOLDEN
    return st


@numba.njit(cache=True, error_model="numpy")
def next_uniform(st):
    """Uniform on (0, 1]: the top 53 bits of the next splitmix64 output."""
    st[0] += _GOLDEN
    z = st[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 1.0) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, error_model="numpy")
def next_normal(st):
    """Standard normal by Box-Muller."""
    u1 = next_uniform(st)
    u2 = next_uniform(st)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(cache=True, error_model="numpy")
def add_ball_sample(x, r, st):
    """``x += xi`` with ``xi`` uniform in the ball of radius ``r``: a normalised Gaussian
    direction times ``r U^(1/dim)``."""
    dim = x.shape[0]
    xi = np.empty(dim)
    norm = 0.0
    for j in range(dim):
        xi[j] = next_normal(st)
        norm += xi[j] * xi[j]
    scale = r * next_uniform(st) ** (1.0 / dim) / math.sqrt(norm)
    for j in range(dim):
        x[j] += scale * xi[j]


# -- losses and activations (codes of the kernels) --------------------------------------

_SQUARED, _LOGISTIC = _kernels.LOSS_CODES["squared"], _kernels.LOSS_CODES["logistic"]
_TANH, _RELU, _SIGMOID, _SOFTPLUS = (_kernels.ACTIVATION_CODES[name]
                                     for name in ("tanh", "relu", "sigmoid", "softplus"))
_CODES = (_SQUARED, _LOGISTIC, _TANH, _RELU, _SIGMOID, _SOFTPLUS)


@numba.njit(cache=True, inline="always", error_model="numpy")
def loss_d1(code, p, y):
    """``(l(p; y), dl/dp)`` of a built-in loss."""
    if code == _SQUARED:
        return 0.5 * (p - y) * (p - y), p - y
    if code == _LOGISTIC:
        z = y * p
        e = math.exp(-abs(z))
        if z >= 0:
            return math.log1p(e), -y * e / (1.0 + e)
        return -z + math.log1p(e), -y / (1.0 + e)
    h = 0.5  # smoothed hinge, see resnet_core.losses
    t = 1.0 - y * p
    if t <= -h:
        return 0.0, 0.0
    if t >= h:
        return t, -y
    s = t + h
    if s <= h:
        return s * s * s / (6 * h * h), -y * s * s / (2 * h * h)
    u = 2 * h - s
    return s - h + u * u * u / (6 * h * h), -y * (1.0 - u * u / (2 * h * h))


@numba.njit(cache=True, inline="always", error_model="numpy")
def act_d1(code, z):
    """``(act(z), act'(z))``."""
    if code == _TANH:
        h = math.tanh(z)
        return h, 1.0 - h * h
    if code == _RELU:
        return (z, 1.0) if z > 0 else (0.0, 0.0)
    if code == _SIGMOID:
        e = math.exp(-abs(z))
        s = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return s, s * (1.0 - s)
    if code == _SOFTPLUS:
        e = math.exp(-abs(z))
        s = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return max(z, 0.0) + math.log1p(e), s
    return z, 1.0


# -- F_theta(w, V) for given features -------------------------------------------------

# Loss code of moment data (not a loss of the kernels): the squared loss as
# ``F = 1/2 s^T M s - s^T b + c``, ``s = [w; V^T w]`` (residual head) or ``[w; v]`` (skip),
# with ``M = sum_i s_i z_i z_i^T``, ``b = sum_i s_i y_i z_i``, ``c = sum_i s_i y_i^2 / 2`` and
# ``z_i = [x_i; phi_i]``: see :func:`moment_data`.
MOMENTS = 1000
assert MOMENTS not in _kernels.LOSS_CODES.values()


def moment_data(X, Phi, y, s, residual, rows=1 << 16):
    """The data tuple of the loops for the squared loss by moments (float64, one pass in
    blocks of ``rows`` samples): ``(M, empty (0, k), b, [c], MOMENTS, residual)``, taken by
    every loop in place of ``(X, Phi, y, s, loss, residual)``; a step then costs
    ``O((d + k)^2)`` whatever ``n``."""
    n, d = X.shape
    k = Phi.shape[1]
    M = np.zeros((d + k, d + k))
    b = np.zeros(d + k)
    c = 0.0
    for lo in range(0, n, rows):
        Z = np.hstack([np.asarray(X[lo:lo + rows], np.float64),
                       np.asarray(Phi[lo:lo + rows], np.float64)])
        sw = np.asarray(s[lo:lo + rows], np.float64)
        yy = np.asarray(y[lo:lo + rows], np.float64)
        M += Z.T @ (Z * sw[:, None])
        b += Z.T @ (sw * yy)
        c += 0.5 * float(np.dot(sw, yy * yy))
    M = 0.5 * (M + M.T)
    return M, np.empty((0, k)), b, np.array([c]), MOMENTS, bool(residual)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _head_grad(residual, d, k, z, grad, g):
    """Chain rule from ``grad[:d] = dF/dw`` (at fixed ``a``) and ``g = dF/da`` to the
    gradient over ``z``: ``a = V^T w`` (residual head) or ``a = v`` (skip head)."""
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


@numba.njit(cache=True, inline="always", error_model="numpy")
def _head_a(residual, d, k, z, a):
    """``a = V^T w`` (residual head) or ``v`` (skip head)."""
    for m in range(k):
        if residual:
            acc = 0.0
            for j in range(d):
                acc += z[d + j * k + m] * z[j]
            a[m] = acc
        else:
            a[m] = z[d + m]


@numba.njit(cache=True, inline="always", error_model="numpy")
def moment_value_grad(M, b, c, residual, z, grad, a, g):
    """``F = 1/2 s^T M s - s^T b + c`` with ``s = [w; a]`` and its gradient over ``z``,
    from ``dF/ds = M s - b``: ``O((d + k)^2)``."""
    k = a.shape[0]
    D = M.shape[0]
    d = D - k
    _head_a(residual, d, k, z, a)
    F2 = 0.0
    for i in range(D):
        acc = -b[i]
        for j in range(d):
            acc += M[i, j] * z[j]
        for m in range(k):
            acc += M[i, d + m] * a[m]
        if i < d:
            grad[i] = acc
            F2 += z[i] * (acc - b[i])
        else:
            g[i - d] = acc
            F2 += a[i - d] * (acc - b[i])
    _head_grad(residual, d, k, z, grad, g)
    return 0.5 * F2 + c


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
    written out here, not :func:`_head_a` / :func:`_head_grad`: with those a step on Example
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


@numba.njit(cache=True, inline="always", error_model="numpy")
def _moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v):
    """:func:`moment_value_grad` for ``d = k = 1`` on scalars, ``z = (w, v)``: the same
    floating-point operations in the same order (so the same bits, signed zeros included),
    returns ``(F, dF/dw, dF/dv)``."""
    a = v if skip is not None else 0.0 + v * w
    acc0 = -b0 + M00 * w + M01 * a
    F2 = 0.0 + w * (acc0 - b0)
    acc1 = -b1 + M10 * w + M11 * a
    F2 += a * (acc1 - b1)
    if skip is not None:
        return 0.5 * F2 + c, acc0, acc1
    return 0.5 * F2 + c, acc0 + (0.0 + v * acc1), w * acc1


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
        F, gw, gv = _moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v)
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
            F, gw, gv = _moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v)
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


# -- projected SGD on the skip head (Theorem 4) ----------------------------------------

@numba.njit(cache=True, error_model="numpy")
def _project(x, lo, hi, radius):
    """Scale ``x[lo:hi]`` onto the ball of ``radius`` (no-op inside it, or radius < 0);
    return the norm of the result."""
    nrm = 0.0
    for j in range(lo, hi):
        nrm += x[j] * x[j]
    nrm = math.sqrt(nrm)
    if radius >= 0 and nrm > radius:
        f = radius / nrm
        for j in range(lo, hi):
            x[j] *= f
        return radius
    return nrm


@numba.njit(cache=True, error_model="numpy")
def sgd_steps(X, y, loss, act, dims, bias, params, eta, b, theta_radius, batch_size,
              n_steps, rng, grad, H, D1, delta, delta_next, max_norms):
    """``n_steps`` projected SGD steps on ``p = w.x + v.f_theta(x)`` in place on ``params``
    (``[w, v, theta]``), each on ``batch_size`` samples drawn uniformly (with replacement):
    ``params <- Proj(params - eta grad)``, ``(w, v)`` onto the ball of radius ``b``, ``theta``
    onto that of ``theta_radius`` (none when negative).  ``H``, ``D1`` (L x max width) and
    ``delta``/``delta_next`` (max width) are the caller's workspace; ``max_norms`` keeps the
    largest ``||(w, v)||`` and ``||theta||`` of any iterate.  Returns False if a non-finite
    gradient appeared (``params`` then hold the last finite iterate)."""
    n, d = X.shape
    L = dims.shape[0] - 1
    k = dims[L]
    hv = d + k
    total = params.shape[0]
    for _ in range(n_steps):
        grad[:] = 0.0
        for _b in range(batch_size):
            i = min(int(next_uniform(rng) * n), n - 1)
            # forward
            off = hv
            for l in range(L):
                hin, hout = dims[l], dims[l + 1]
                for o in range(hout):
                    acc = params[off + hout * hin + o] if bias else 0.0
                    for j in range(hin):
                        acc += params[off + o * hin + j] * (X[i, j] if l == 0 else H[l - 1, j])
                    H[l, o], D1[l, o] = act_d1(act, acc)
                off += hout * hin + (hout if bias else 0)
            p = 0.0
            for j in range(d):
                p += params[j] * X[i, j]
            for m in range(k):
                p += params[d + m] * H[L - 1, m]
            _, d1 = loss_d1(loss, p, y[i])
            c = d1 / batch_size
            for j in range(d):
                grad[j] += c * X[i, j]
            for m in range(k):
                grad[d + m] += c * H[L - 1, m]
                delta[m] = c * params[d + m]
            # backward through the MLP
            for l in range(L - 1, -1, -1):
                hin, hout = dims[l], dims[l + 1]
                off = hv
                for ll in range(l):
                    off += dims[ll + 1] * dims[ll] + (dims[ll + 1] if bias else 0)
                for o in range(hout):
                    delta[o] *= D1[l, o]
                for o in range(hout):
                    for j in range(hin):
                        grad[off + o * hin + j] += delta[o] * (X[i, j] if l == 0 else H[l - 1, j])
                    if bias:
                        grad[off + hout * hin + o] += delta[o]
                if l > 0:
                    for j in range(hin):
                        acc = 0.0
                        for o in range(hout):
                            acc += params[off + o * hin + j] * delta[o]
                        delta_next[j] = acc
                    delta[:hin] = delta_next[:hin]
        for j in range(total):
            if not math.isfinite(grad[j]):
                return False
        for j in range(total):
            params[j] -= eta * grad[j]
        max_norms[0] = max(max_norms[0], _project(params, 0, hv, b))
        max_norms[1] = max(max_norms[1], _project(params, hv, total, theta_radius))
    return True


@numba.njit(cache=True)
def _frozen_codes():
    """The codes in this module's compiled (possibly cached) machine code."""
    return (_SQUARED, _LOGISTIC, _TANH, _RELU, _SIGMOID, _SOFTPLUS)


def _drop_stale_cache():
    """Empty numba's cache of this module when its codes are not the kernels' (the cache is
    keyed on this file's text alone): every function then compiles afresh."""
    if _frozen_codes() == _CODES:
        return
    for fn in list(globals().values()):
        if isinstance(fn, numba.core.dispatcher.Dispatcher):
            fn._cache.flush()
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
