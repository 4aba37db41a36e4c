# Per-sample losses l(p; y) and their first two derivatives in p, computed in double.
#
# The enum below is the one source of the loss codes (exported as _kernels.LOSS_CODES).
# Every branch is finite for any finite p (no exp of a positive argument), so margins of 1e4
# and more are safe.
from libc.math cimport exp, log1p, fabs

cdef enum:
    LOSS_EXTERNAL = -1
    LOSS_SQUARED = 0
    LOSS_LOGISTIC = 1
    LOSS_SMOOTHED_HINGE = 2

cdef inline double loss_eval(int code, double p, double y, double* d1, double* d2) noexcept nogil:
    """Return l(p; y); store dl/dp in d1[0] and d2l/dp2 in d2[0]."""
    # h: half-width of the smoothing window of the smoothed hinge (see losses.py)
    cdef double z, e, sig, t, s, h = 0.5, u
    if code == LOSS_SQUARED:
        d1[0] = p - y
        d2[0] = 1.0
        return 0.5 * (p - y) * (p - y)
    if code == LOSS_LOGISTIC:
        # log(1 + exp(-z)) = max(-z, 0) + log1p(exp(-|z|)): exp never overflows.
        z = y * p
        e = exp(-fabs(z))
        sig = 1.0 / (1.0 + e)           # sigmoid(|z|)
        d2[0] = e * sig * sig           # sigmoid(z) sigmoid(-z)
        if z >= 0:
            d1[0] = -y * e * sig        # -y sigmoid(-z)
            return log1p(e)
        d1[0] = -y * sig
        return -z + log1p(e)
    # smoothed hinge in t = 1 - y p, C^2 cubic smoothing of max(0, t) on |t| < h
    t = 1.0 - y * p
    if t <= -h:
        d1[0] = 0.0
        d2[0] = 0.0
        return 0.0
    if t >= h:
        d1[0] = -y
        d2[0] = 0.0
        return t
    s = t + h
    if s <= h:
        d1[0] = -y * s * s / (2 * h * h)
        d2[0] = s / (h * h)
        return s * s * s / (6 * h * h)
    u = 2 * h - s
    d1[0] = -y * (1.0 - u * u / (2 * h * h))
    d2[0] = u / (h * h)
    return s - h + u * u * u / (6 * h * h)
