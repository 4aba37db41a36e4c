"""Projected SGD on the skip head (Theorem 4), compiled (numba): ``sgd_steps``."""

from __future__ import annotations

import math

import numba

from ._loop_scalars import act_d1, loss_d1, next_uniform, project

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
        max_norms[0] = max(max_norms[0], project(params, 0, hv, b))
        max_norms[1] = max(max_norms[1], project(params, hv, total, theta_radius))
    return True
