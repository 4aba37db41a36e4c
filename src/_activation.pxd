# Elementwise activations, in place: Z <- act(Z), with act'(Z) and act''(Z) stored when
# their buffers are given (NULL skips them).  The enum below is the one source of the
# activation codes (exported as _kernels.ACTIVATION_CODES).  The tanh, sigmoid and exp come
# from rc_math.h, whose branch-free forms gcc vectorises.
from cython cimport floating
from libc.math cimport log1p, fabs

cdef extern from "rc_math.h" nogil:
    double rc_tanh(double x)
    float rc_tanhf(float x)
    double rc_sigmoid(double x)
    double rc_exp(double x)

cdef enum:
    ACT_IDENTITY = 0
    ACT_TANH = 1
    ACT_RELU = 2
    ACT_SIGMOID = 3
    ACT_SOFTPLUS = 4


cdef inline void act_apply(int code, floating* Z, floating* D1, floating* D2,
                           Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    cdef double h, z
    cdef float hf, one = 1, mtwo = -2   # float constants: float arithmetic below
    if code == ACT_TANH and floating is float:
        for i in range(count):
            hf = rc_tanhf(Z[i])
            Z[i] = hf
            if D1 != NULL:
                D1[i] = one - hf * hf
            if D2 != NULL:
                D2[i] = mtwo * hf * (one - hf * hf)
    elif code == ACT_TANH:
        if D1 == NULL:
            for i in range(count):
                Z[i] = <floating> rc_tanh(Z[i])
        elif D2 == NULL:
            for i in range(count):
                h = rc_tanh(Z[i])
                Z[i] = <floating> h
                D1[i] = <floating> (1.0 - h * h)
        else:
            for i in range(count):
                h = rc_tanh(Z[i])
                Z[i] = <floating> h
                D1[i] = <floating> (1.0 - h * h)
                D2[i] = <floating> (-2.0 * h * (1.0 - h * h))
    elif code == ACT_RELU:
        for i in range(count):
            z = Z[i]
            Z[i] = <floating> (z if z > 0 else 0.0)
            if D1 != NULL:
                D1[i] = <floating> (1.0 if z > 0 else 0.0)
            if D2 != NULL:
                D2[i] = 0
    elif code == ACT_SIGMOID:
        for i in range(count):
            h = rc_sigmoid(Z[i])
            Z[i] = <floating> h
            if D1 != NULL:
                D1[i] = <floating> (h * (1.0 - h))
            if D2 != NULL:
                D2[i] = <floating> (h * (1.0 - h) * (1.0 - 2.0 * h))
    elif code == ACT_SOFTPLUS:
        # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}); its derivative is sigmoid(z).
        for i in range(count):
            z = Z[i]
            h = rc_sigmoid(z)
            Z[i] = <floating> ((z if z > 0 else 0.0) + log1p(rc_exp(-fabs(z))))
            if D1 != NULL:
                D1[i] = <floating> h
            if D2 != NULL:
                D2[i] = <floating> (h * (1.0 - h))
    else:
        for i in range(count):
            if D1 != NULL:
                D1[i] = 1
            if D2 != NULL:
                D2[i] = 0
