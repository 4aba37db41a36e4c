"""The squared loss by moments for the compiled loops (numba): ``F_theta(w, V)`` and its
gradient from the data's second moments, ``O((d + k)^2)`` per step whatever ``n``."""

from __future__ import annotations

import numba
import numpy as np

from . import _kernels

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
def moment_value_grad_2(M00, M01, M10, M11, b0, b1, c, skip, w, v):
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
