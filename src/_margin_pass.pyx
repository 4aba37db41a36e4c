"""One chunk of the linear baseline's Gram pass in compiled code: the margins ``p = X w``,
the losses and their derivatives (the kernels' ``rc_loss``), and ``g += X^T (s l')``, every
sum in double for float32 and float64 data alike (``src/rc_margin.h``).

Rows go in blocks of ``BLOCK_BYTES`` (in L1 while the block's margins, losses and gradient
terms are made), so ``X`` is read from memory once per pass, and float32 data cost what
their bytes do, with float64's precision.

The wrapper checks every shape and the loss code before the loop (which does no checks);
the caller (:mod:`resnet_core._gram_pass`) holds validated, finite data.  One call is one
chunk (a few MiB): Ctrl-C is seen between chunks.
"""
from cython cimport floating
from libc.stdlib cimport malloc, free

cdef extern from "rc_margin.h" nogil:
    enum:
        LOSS_SQUARED
        LOSS_SMOOTHED_HINGE
    double rc_loss_f64(int code, Py_ssize_t n, const double* p, const double* y,
                       const double* s, double* r, double* q, double* l)
    void rc_margin_dots_f64(Py_ssize_t m, Py_ssize_t d, const double* X, const double* w,
                            double* p)
    void rc_margin_dots_f32(Py_ssize_t m, Py_ssize_t d, const float* X, const double* w,
                            double* p)
    void rc_margin_abs_f64(Py_ssize_t m, Py_ssize_t d, const double* X, const double* w,
                           double* p)
    void rc_margin_abs_f32(Py_ssize_t m, Py_ssize_t d, const float* X, const double* w,
                           double* p)
    void rc_margin_sq_f64(Py_ssize_t m, Py_ssize_t d, const double* X, const double* w,
                          double* p)
    void rc_margin_sq_f32(Py_ssize_t m, Py_ssize_t d, const float* X, const double* w,
                          double* p)
    void rc_margin_axpy_f64(Py_ssize_t m, Py_ssize_t d, const double* X, const double* r,
                            double* g)
    void rc_margin_axpy_f32(Py_ssize_t m, Py_ssize_t d, const float* X, const double* r,
                            double* g)
    void rc_margin_rows_f64_to_f64(Py_ssize_t m, Py_ssize_t d, const double* X,
                                   const double* q, double* Z)
    void rc_margin_rows_f64_to_f32(Py_ssize_t m, Py_ssize_t d, const double* X,
                                   const double* q, float* Z)
    void rc_margin_rows_f32_to_f64(Py_ssize_t m, Py_ssize_t d, const float* X,
                                   const double* q, double* Z)
    void rc_margin_rows_f32_to_f32(Py_ssize_t m, Py_ssize_t d, const float* X,
                                   const double* q, float* Z)

# Bytes of X per block of rows (at least one row)
cdef Py_ssize_t BLOCK_BYTES = 32768


cdef double* _optional(double[::1] a, Py_ssize_t size, str name) except? NULL:
    """``a``'s data, or NULL when ``a`` is empty; a ValueError unless its length is
    ``size`` or 0."""
    if a.shape[0] == 0:
        return NULL
    if a.shape[0] != size:
        raise ValueError(f"margin_chunk: {name} has length {a.shape[0]}, expected {size} or 0")
    return &a[0]


cdef double _chunk(int loss, Py_ssize_t m, Py_ssize_t d, const floating* X, const floating* y,
                   const floating* s, const double* w, const double* wabs, double* g,
                   double* p, double* r, double* q, double* l, double* absp, double* sq,
                   double* Z64, float* Z32, double* yb) noexcept nogil:
    """The loop of :func:`margin_chunk` (``yb``: 2 x block doubles)."""
    cdef Py_ssize_t rows = max(1, BLOCK_BYTES // (d * sizeof(floating))), i0 = 0, nb, i
    cdef double F = 0
    cdef const floating* xb
    cdef double* sb = yb + rows
    while i0 < m:
        nb = min(rows, m - i0)
        xb = X + i0 * d
        if floating is double:
            rc_margin_dots_f64(nb, d, xb, w, p + i0)
            if absp != NULL:
                rc_margin_abs_f64(nb, d, xb, wabs, absp + i0)
            if sq != NULL:
                rc_margin_sq_f64(nb, d, xb, NULL, sq + i0)
        else:
            rc_margin_dots_f32(nb, d, xb, w, p + i0)
            if absp != NULL:
                rc_margin_abs_f32(nb, d, xb, wabs, absp + i0)
            if sq != NULL:
                rc_margin_sq_f32(nb, d, xb, NULL, sq + i0)
        for i in range(nb):
            yb[i] = y[i0 + i]
            sb[i] = s[i0 + i]
        F += rc_loss_f64(loss, nb, p + i0, yb, sb, r + i0, q + i0, l + i0)
        if floating is double:
            rc_margin_axpy_f64(nb, d, xb, r + i0, g)
            if Z64 != NULL:
                rc_margin_rows_f64_to_f64(nb, d, xb, q + i0, Z64 + i0 * d)
            if Z32 != NULL:
                rc_margin_rows_f64_to_f32(nb, d, xb, q + i0, Z32 + i0 * d)
        else:
            rc_margin_axpy_f32(nb, d, xb, r + i0, g)
            if Z64 != NULL:
                rc_margin_rows_f32_to_f64(nb, d, xb, q + i0, Z64 + i0 * d)
            if Z32 != NULL:
                rc_margin_rows_f32_to_f32(nb, d, xb, q + i0, Z32 + i0 * d)
        i0 += nb
    return F


def margin_chunk(int loss, const floating[:, ::1] X, const floating[::1] y,
                 const floating[::1] s, const double[::1] w, const double[::1] wabs,
                 double[::1] g, double[::1] p, double[::1] r, double[::1] q, double[::1] l,
                 double[::1] absp, double[::1] sq, double[:, ::1] Z64=None,
                 float[:, ::1] Z32=None) -> float:
    """For the rows of ``X`` (m x d, C-contiguous): ``p = X w``, ``r = s l'(p; y)``,
    ``q = s l''(p; y)``, ``l = l(p; y)`` (length-m outputs), ``g += X^T r`` (length d); with
    non-empty ``absp`` and ``sq`` also ``absp = |X| wabs`` and ``sq_i = ||x_i||^2``; with
    ``Z64`` or ``Z32`` (m x d) the rows ``sqrt(max(q_i, 0)) x_i`` in that type (their Gram
    matrix is the Hessian ``sum q_i x_i x_i^T``).  Every sum in double.  Returns
    ``sum_i s_i l_i`` (summed in row order)."""
    cdef Py_ssize_t m = X.shape[0], d = X.shape[1]
    if not LOSS_SQUARED <= loss <= LOSS_SMOOTHED_HINGE:
        raise ValueError(f"margin_chunk: loss code {loss} is not a built-in loss's")
    for name, size, want in (("y", y.shape[0], m), ("s", s.shape[0], m), ("w", w.shape[0], d),
                             ("g", g.shape[0], d), ("p", p.shape[0], m), ("r", r.shape[0], m),
                             ("q", q.shape[0], m), ("l", l.shape[0], m)):
        if size != want:
            raise ValueError(f"margin_chunk: {name} has length {size}, expected {want}")
    cdef double* absp_ = _optional(absp, m, "absp")
    cdef double* sq_ = _optional(sq, m, "sq")
    if absp_ != NULL and wabs.shape[0] != d:
        raise ValueError(f"margin_chunk: wabs has length {wabs.shape[0]}, expected {d}")
    cdef double* Z64_ = NULL
    cdef float* Z32_ = NULL
    if Z64 is not None:
        if Z64.shape[0] != m or Z64.shape[1] != d:
            raise ValueError(f"margin_chunk: Z64 has shape {(Z64.shape[0], Z64.shape[1])}, "
                             f"expected {(m, d)}")
        Z64_ = &Z64[0, 0] if m and d else NULL
    if Z32 is not None:
        if Z32.shape[0] != m or Z32.shape[1] != d:
            raise ValueError(f"margin_chunk: Z32 has shape {(Z32.shape[0], Z32.shape[1])}, "
                             f"expected {(m, d)}")
        Z32_ = &Z32[0, 0] if m and d else NULL
    if m == 0:
        return 0.0
    if d == 0:  # no feature: p = 0, nothing to add to g
        for i in range(m):
            p[i] = 0.0
            if absp_ != NULL:
                absp_[i] = 0.0
            if sq_ != NULL:
                sq_[i] = 0.0
        return _losses_only(loss, m, y, s, p, r, q, l)
    cdef Py_ssize_t rows = max(1, BLOCK_BYTES // (d * sizeof(floating)))
    cdef double* yb = <double*> malloc(2 * rows * sizeof(double))
    cdef double F
    if yb == NULL:
        raise MemoryError("margin_chunk: no memory for a block of rows")
    with nogil:
        F = _chunk(loss, m, d, &X[0, 0], &y[0], &s[0], &w[0],
                   &wabs[0] if absp_ != NULL else NULL, &g[0], &p[0], &r[0], &q[0], &l[0],
                   absp_, sq_, Z64_, Z32_, yb)
    free(yb)
    return F


def _losses_only(int loss, Py_ssize_t m, const floating[::1] y, const floating[::1] s,
                 double[::1] p, double[::1] r, double[::1] q, double[::1] l):
    """The losses at ``p`` alone (no feature)."""
    cdef double[::1] yd = y.base.astype("float64") if floating is float else y
    cdef double[::1] sd = s.base.astype("float64") if floating is float else s
    return rc_loss_f64(loss, m, &p[0], &yd[0], &sd[0], &r[0], &q[0], &l[0])
