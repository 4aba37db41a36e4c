# Elementwise activations, in place: Z <- act(Z), with act'(Z) and act''(Z) stored when
# their buffers are given (NULL skips them; D2 is written only together with D1).  The
# loops and the activation codes (exported as _kernels.ACTIVATION_CODES) live in
# rc_elementwise.h, written so that gcc vectorises them at every x86-64 level.
from cython cimport floating

cdef extern from "rc_elementwise.h" nogil:
    enum:
        ACT_IDENTITY
        ACT_TANH
        ACT_RELU
        ACT_SIGMOID
        ACT_SOFTPLUS
    void rc_act_f64(int code, double* Z, double* D1, double* D2, Py_ssize_t n)
    void rc_act_f32(int code, float* Z, float* D1, float* D2, Py_ssize_t n)
    void rc_mul_f64(Py_ssize_t n, const double* a, const double* b, double* out)
    void rc_mul_f32(Py_ssize_t n, const float* a, const float* b, float* out)
    void rc_scale_f64(Py_ssize_t n, double* g, const double* d)
    void rc_scale_f32(Py_ssize_t n, float* g, const float* d)
    void rc_rdelta_f64(Py_ssize_t n, double* RG, double* G, const double* D1,
                       const double* D2, const double* RZ)
    void rc_rdelta_f32(Py_ssize_t n, float* RG, float* G, const float* D1,
                       const float* D2, const float* RZ)


cdef inline void act_apply(int code, floating* Z, floating* D1, floating* D2,
                           Py_ssize_t count) noexcept nogil:
    """Z <- act(Z), act'(Z) into D1 and act''(Z) into D2 (distinct buffers or NULL)."""
    if floating is float:
        rc_act_f32(code, Z, D1, D2, count)
    else:
        rc_act_f64(code, Z, D1, D2, count)


cdef inline void mul(Py_ssize_t n, const floating* a, const floating* b,
                     floating* out) noexcept nogil:
    """out = a * b (out distinct from a and b)."""
    if floating is float:
        rc_mul_f32(n, a, b, out)
    else:
        rc_mul_f64(n, a, b, out)


cdef inline void scale(Py_ssize_t n, floating* g, const floating* d) noexcept nogil:
    """g <- g * d."""
    if floating is float:
        rc_scale_f32(n, g, d)
    else:
        rc_scale_f64(n, g, d)


cdef inline void rdelta(Py_ssize_t n, floating* RG, floating* G, const floating* D1,
                        const floating* D2, const floating* RZ) noexcept nogil:
    """RG <- RG D1 + G D2 RZ, G <- G D1 (the R-operator of back-propagation's G D1)."""
    if floating is float:
        rc_rdelta_f32(n, RG, G, D1, D2, RZ)
    else:
        rc_rdelta_f64(n, RG, G, D1, D2, RZ)
