# Per-sample losses l(p; y) and their first two derivatives in p, computed in double.
#
# The loops and the loss codes (exported as _kernels.LOSS_CODES) live in rc_elementwise.h,
# branch-free so that gcc vectorises them; every loss is finite for any finite p (no exp of
# a positive argument), so margins of 1e4 and more are safe.
from cython cimport floating

cdef extern from "rc_elementwise.h" nogil:
    enum:
        LOSS_EXTERNAL
        LOSS_SQUARED
        LOSS_LOGISTIC
        LOSS_SMOOTHED_HINGE
    double rc_loss_f64(int code, Py_ssize_t n, const double* p, const double* y,
                       const double* s, double* r, double* q, double* l)
    double rc_loss_f32(int code, Py_ssize_t n, const float* p, const float* y,
                       const float* s, float* r, float* q, float* l)


cdef inline double loss_samples(int code, Py_ssize_t n, const floating* p, const floating* y,
                                const floating* s, floating* r, floating* q,
                                floating* l) noexcept nogil:
    """r = s l'(p; y), q = s l'' and l = l(p; y) for n samples (q, l may be NULL; distinct
    buffers); returns sum_i s_i l_i, accumulated in double in sample order."""
    if floating is float:
        return rc_loss_f32(code, n, p, y, s, r, q, l)
    else:
        return rc_loss_f64(code, n, p, y, s, r, q, l)
