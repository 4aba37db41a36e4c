"""Streaming kernels for c outputs (the paper's Remark 2): one pass over the samples.

Design notes
------------
The conventions are those of ``_kernels`` (its design notes 2 to 6: slots with their own
partial sums, ``n_workers``, ``set_serial`` after ``fork``, BLAS on per-chunk blocks, no
checks and no GIL inside, the constant feature added on the fly), and so is the skeleton of
a pass (``_pass.pxi``: the job, the slots and their runner, the MLP's workspace blocks and
features); what differs is the width of a prediction.

1. What is computed.  For every sample, the scores ``p_i = W x_i + A phi_i`` (``c``
   entries; ``W`` is c x d, ``A`` is c x k, made by the caller from its head: ``W V`` for
   the residual head, ``B`` for the skip head).  A chunk's scores are the m x c block
   ``P = Xc W^T + Phic A^T``.  The loss is convex in ``p``:

   - ``VLOSS_SQUARED``: ``l = ||p - y||^2 / 2`` with ``y`` a row of an n x c target;
     ``dl/dp = p - y``, Hessian ``I``;
   - ``VLOSS_CROSS_ENTROPY``: ``l = logsumexp(p) - p_y`` with ``y`` an integer label
     (stored as a float); ``dl/dp = pi - e_y``, Hessian ``diag(pi) - pi pi^T``,
     ``pi = softmax(p)``, evaluated with the row's maximum subtracted (no overflow).

   Per sample, in double: the loss (into ``l``), ``R_i = s_i dl/dp`` (into the caller's
   n x c ``R``) and, for the cross-entropy, ``pi_i`` (into the n x c ``Q``; the squared loss
   needs only ``s``).  Outputs per slot: the value, ``SX = R^T X`` (c x d),
   ``SP = R^T Phi`` (c x k) and the MLP's gradient by back-propagating
   ``G = R A`` (m x kf).
2. HVP (the R-operator along ``(dW, dA, dtheta)``):
   ``RP = Xc dW^T + Phic dA^T + RPhi A^T``, ``RR_i = s_i H_i RP_i`` with ``H_i`` the loss
   Hessian in ``p``; outputs ``VX = RR^T X``, ``VP = RR^T Phi + R^T RPhi``,
   ``GP = R^T Phi`` and the MLP part by ``_r_backward`` with ``G = R A``,
   ``RG = RR A + R dA``.
3. Memory.  A slot's workspace is the MLP's blocks (as in ``_kernels``), two m x c blocks
   (``P``, ``RP``) and a chunk x (c + 1) block of doubles (the softmax's exponentials and
   row maxima; the column sums of the constant feature); the caller's ``R``
   (and ``Q``) are n x c in the data's dtype.  The exponentials of the softmax are
   ``rc_exp`` (rc_math.h, a few ulp), one per score, in one vectorised loop over the chunk
   (rc_elementwise.h).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy


cdef extern from "rc_elementwise.h" nogil:
    double rc_softmax_ce_f64(Py_ssize_t m, Py_ssize_t c, const double* P, const double* y,
                             const double* s, double* Q, double* R, double* l, double* e)
    double rc_softmax_ce_f32(Py_ssize_t m, Py_ssize_t c, const float* P, const float* y,
                             const float* s, float* Q, float* R, float* l, double* e)

from _blas cimport gemm_rm
from _activation cimport act_apply, mul, scale, rdelta

include "_mlp.pxi"
include "_pass.pxi"

cdef enum:
    VLOSS_EXTERNAL = -1   # R (and Q) already hold the point: read them
    VLOSS_SQUARED = 0
    VLOSS_CROSS_ENTROPY = 1

VLOSS_CODES = {"squared": VLOSS_SQUARED, "cross_entropy": VLOSS_CROSS_ENTROPY}
VLOSS_CODE_EXTERNAL = VLOSS_EXTERNAL


cdef inline Py_ssize_t _ws_entries(const MLP* net, Py_ssize_t mc, Py_ssize_t c) noexcept nogil:
    """Entries of a slot's workspace: the MLP's blocks (_carve), then P and RP (mc x c
    each); the formula of workspace_entries."""
    return _mlp_entries(net, mc) + 2 * mc * c + 1


def workspace_entries(chunk, dims, c):
    """Entries of one slot's workspace for chunks of ``chunk`` samples, the MLP
    ``dims = [d, h_1, ..., h_L]`` and ``c`` outputs, in Python integers."""
    return _mlp_entries_py(chunk, dims) + 2 * int(chunk) * int(c) + 1


cdef void _scores(Job* job, Py_ssize_t m, const floating* Xc, const floating* Phic,
                  const floating* W, const floating* A, floating* P) noexcept nogil:
    """P (m x c) = Xc W^T + Phic A[:, :kf]^T (+ A[:, kf] with the constant feature)."""
    cdef Py_ssize_t i, j, c = job.c, kf = job.kf
    gemm_rm(False, True, m, c, job.d, 1, Xc, job.d, W, job.d, 0, P, c)
    gemm_rm(False, True, m, c, kf, 1, Phic, kf, A, job.k, 1, P, c)
    if job.const_feat:
        for i in range(m):
            for j in range(c):
                P[i * c + j] += A[j * job.k + kf]


cdef double _loss_chunk(Job* job, Py_ssize_t m, Py_ssize_t row0, const floating* P,
                        double* e) noexcept nogil:
    """R = s dl/dp (and Q = softmax, l) for the chunk's rows; returns sum_i s_i l_i.
    ``e`` is a scratch block of m x (c + 1) doubles."""
    cdef Py_ssize_t i, j, c = job.c
    cdef const floating* s = <const floating*> job.s + row0
    cdef floating* R = <floating*> job.r + row0 * c
    cdef floating* lout = <floating*> job.l + row0
    cdef const floating* y
    cdef const floating* p
    cdef double val = 0, lv, diff
    if job.loss == VLOSS_CROSS_ENTROPY:
        # rc_elementwise.h: pi = exp(p - max p) / sum, the exponentials of the whole block
        # in one vectorised loop
        if floating is float:
            return rc_softmax_ce_f32(m, c, P, <const float*> job.y + row0, s,
                                     <float*> job.q + row0 * c, R, lout, e)
        else:
            return rc_softmax_ce_f64(m, c, P, <const double*> job.y + row0, s,
                                     <double*> job.q + row0 * c, R, lout, e)
    for i in range(m):
        p = P + i * c
        y = <const floating*> job.y + (row0 + i) * c
        lv = 0
        for j in range(c):
            diff = <double> p[j] - <double> y[j]
            lv += 0.5 * diff * diff
            R[i * c + j] = <floating> (s[i] * diff)
        lout[i] = <floating> lv
        val += s[i] * lv
    return val


cdef void _hess_apply(Job* job, Py_ssize_t m, Py_ssize_t row0, floating* RP) noexcept nogil:
    """In place RP_i <- s_i H_i RP_i, H_i the loss Hessian in p (I, or diag(pi) - pi pi^T)."""
    cdef Py_ssize_t i, j, c = job.c
    cdef const floating* s = <const floating*> job.s + row0
    cdef const floating* Q
    cdef double dot
    if job.q == NULL:
        for i in range(m):
            for j in range(c):
                RP[i * c + j] = s[i] * RP[i * c + j]
        return
    Q = <const floating*> job.q + row0 * c
    for i in range(m):
        dot = 0
        for j in range(c):
            dot += <double> Q[i * c + j] * RP[i * c + j]
        for j in range(c):
            RP[i * c + j] = <floating> (s[i] * Q[i * c + j] * (RP[i * c + j] - dot))


cdef void _add_col_sums(const floating* M, Py_ssize_t m, Py_ssize_t c, floating* out,
                        Py_ssize_t stride, double* acc) noexcept nogil:
    """out[j * stride] += sum_i M[i, j] (the constant feature's column of a c x k sum),
    each column summed in row order in acc[j] (c doubles of scratch): rows outer, so the
    loop over a row's c entries vectorises."""
    cdef Py_ssize_t i, j
    for j in range(c):
        acc[j] = 0
    for i in range(m):
        for j in range(c):
            acc[j] += M[i * c + j]
    for j in range(c):
        out[j * stride] += <floating> acc[j]


cdef void _add_transposed(Job* job, Py_ssize_t m, const floating* Xc, const floating* Phic,
                          const floating* M, floating* vx, floating* vp,
                          double* acc) noexcept nogil:
    """vx += M^T Xc (c x d; unless vx is NULL), vp += M^T [Phic, 1] (c x k, the 1 with the
    constant feature) for the chunk's m x c block M; acc: c doubles of scratch."""
    cdef Py_ssize_t c = job.c, d = job.d, k = job.k, kf = job.kf
    if vx != NULL:
        gemm_rm(True, False, c, d, m, 1, M, c, Xc, d, 1, vx, d)
    gemm_rm(True, False, c, kf, m, 1, M, c, Phic, kf, 1, vp, k)
    if job.const_feat:
        _add_col_sums(M, m, c, vp + kf, k, acc)


cdef int _process_slot(Job* job, Py_ssize_t t, const floating* X) noexcept nogil:
    """All chunks of slot t; returns 0, or 1 when the workspace cannot be allocated."""
    cdef Py_ssize_t n = job.n, d = job.d, k = job.k, kf = job.kf, c = job.c
    cdef Py_ssize_t L = job.net.L, mc = job.chunk
    cdef Py_ssize_t c0, c1, ch, m, row0
    cdef int mode = job.mode, hvp_theta = job.mode == MODE_HVP and job.need_theta
    cdef const floating* W = <const floating*> job.w
    cdef const floating* A = <const floating*> job.a
    cdef const floating* Xc
    cdef const floating* Phic
    cdef const floating* Rc
    cdef floating* vx
    cdef floating* vp
    cdef floating* gslot
    cdef floating* vtheta
    cdef floating* ws
    cdef floating* P
    cdef floating* RP
    cdef floating* G
    cdef floating* Gn
    cdef floating* RG
    cdef floating* RGn
    cdef floating* H[MAX_LAYERS]
    cdef floating* D1[MAX_LAYERS]
    cdef floating* D2[MAX_LAYERS]
    cdef floating* RZ[MAX_LAYERS]
    cdef floating* RH[MAX_LAYERS]
    cdef double val = 0
    cdef double* e
    _slot_chunks(job, t, &c0, &c1)
    if c0 >= c1:
        return 0
    ws = <floating*> malloc(_ws_entries(&job.net, mc, c) * sizeof(floating))
    if ws == NULL:
        return 1
    e = <double*> malloc(mc * (c + 1) * sizeof(double))
    if e == NULL:
        free(ws)
        return 1
    P = _carve(&job.net, mc, ws, H, D1, D2, RZ, RH, &G, &Gn, &RG, &RGn)
    RP = P + mc * c

    vx = <floating*> job.vx_out + t * c * d if job.vx_out != NULL else NULL
    vp = <floating*> job.vp_out + t * c * k if job.vp_out != NULL else NULL
    gslot = <floating*> job.g_out + t * c * k if job.g_out != NULL else NULL
    vtheta = <floating*> job.vtheta_out + t * job.net.n_theta if job.vtheta_out != NULL else NULL

    for ch in range(c0, c1):
        row0 = ch * mc
        m = mc if n - row0 > mc else n - row0
        Xc = X + row0 * d
        Phic = _features(job, m, row0, Xc, H, D1, D2, RZ, RH)

        if mode == MODE_PREDICT:
            _scores(job, m, Xc, Phic, W, A, <floating*> job.p_out + row0 * c)
            _copy_features(job, m, row0, Phic)
            continue

        if job.loss != VLOSS_EXTERNAL:
            _scores(job, m, Xc, Phic, W, A, P)
            val += _loss_chunk(job, m, row0, P, e)
        Rc = <const floating*> job.r + row0 * c

        if mode == MODE_VALUE_GRAD:
            # SX += R^T Xc, SP[:, :kf] += R^T Phic, SP[:, kf] += 1^T R
            _add_transposed(job, m, Xc, Phic, Rc, vx, vp, e)
            if job.need_theta and L > 0:
                # G = R A[:, :kf] (m x kf)
                gemm_rm(False, False, m, kf, c, 1, Rc, c, A, k, 0, G, kf)
                _backward(&job.net, m, Xc, <const floating*> job.theta, H, D1, G, Gn, vtheta)
            continue

        # MODE_HVP: RP = Xc dW^T + Phic dA^T (+ dA[:, kf]) + RPhi A^T; RR = s H RP (in RP)
        _scores(job, m, Xc, Phic, <const floating*> job.dw, <const floating*> job.da, RP)
        if hvp_theta and L > 0:
            gemm_rm(False, True, m, c, kf, 1, RH[L - 1], kf, A, k, 1, RP, c)
        _hess_apply(job, m, row0, RP)
        _add_transposed(job, m, Xc, Phic, RP, vx, vp, e)
        _add_transposed(job, m, Xc, Phic, Rc, NULL, gslot, e)
        if hvp_theta and L > 0:
            gemm_rm(True, False, c, kf, m, 1, Rc, c, RH[L - 1], kf, 1, vp, k)
            # G = R A, RG = RR A + R dA (A, dA restricted to the MLP's outputs)
            gemm_rm(False, False, m, kf, c, 1, Rc, c, A, k, 0, G, kf)
            gemm_rm(False, False, m, kf, c, 1, RP, c, A, k, 0, RG, kf)
            gemm_rm(False, False, m, kf, c, 1, Rc, c, <const floating*> job.da, k, 1, RG, kf)
            _r_backward(&job.net, m, Xc, <const floating*> job.theta,
                        <const floating*> job.dtheta, H, D1, D2, RZ, RH, G, RG, Gn, RGn, vtheta)
    job.value_out[t] = val
    free(e)
    free(ws)
    return 0


cdef inline void* _ptr3(const floating[:, :, ::1] v) noexcept:
    return (<void*> &v[0, 0, 0] if v.shape[0] > 0 and v.shape[1] > 0 and v.shape[2] > 0
            else NULL)


cdef void _setup(Job* job, int mode, const floating[:, ::1] X, const floating[:, ::1] Phi,
                 const floating[:, ::1] y, const floating[::1] s, const floating[::1] theta,
                 const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
                 const floating[:, ::1] W, const floating[:, ::1] A, int loss,
                 int need_theta, Py_ssize_t chunk, Py_ssize_t n_slots, int n_workers,
                 double[::1] value_out, int[::1] status) noexcept:
    """_setup_job for c outputs: W is c x d, A is c x k, y is n x c or n x 1."""
    _setup_job(job, mode, X, Phi, s, theta, dims, bias, act, const_feat, _ptr2(W), _ptr2(A),
               W.shape[0], A.shape[1], loss, need_theta, chunk, n_slots, n_workers, value_out,
               status)
    job.y = _ptr2(y)


def value_grad(const floating[:, ::1] X, const floating[:, ::1] Phi,
               const floating[:, ::1] y, const floating[::1] s, const floating[::1] theta,
               const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
               const floating[:, ::1] W, const floating[:, ::1] A, int loss, int need_theta,
               floating[:, ::1] R, floating[:, ::1] Q, floating[::1] l,
               double[::1] value_out, floating[:, :, ::1] vx_out, floating[:, :, ::1] vp_out,
               floating[:, ::1] vtheta_out, int[::1] status,
               Py_ssize_t chunk, int n_threads, int n_workers=0):
    """Partial sums of the value and gradient, one slot per ``n_threads``.

    ``P = X W^T + Phi A^T``; ``R = s dl/dp`` (n x c), ``Q = softmax(P)`` (cross-entropy,
    n x c; an empty array for the squared loss) and ``l`` are written (``loss >= 0``) or
    ``R`` is read (``loss == -1``, then ``value_out`` stays 0).  ``y`` is n x c (squared) or
    n x 1 (labels).  Per slot t: ``value_out[t] = sum s l``, ``vx_out[t] = R^T X``,
    ``vp_out[t] = R^T Phi`` and ``vtheta_out[t]`` by back-propagating ``R A`` (when
    ``need_theta``).  Outputs are added to; the caller zeroes them.
    """
    cdef Job job
    _setup(&job, MODE_VALUE_GRAD, X, Phi, y, s, theta, dims, bias, act, const_feat, W, A,
           loss, need_theta, chunk, n_threads, n_workers, value_out, status)
    _set_gradient_buffers(&job, &R[0, 0], _ptr2(Q), &l[0], &vx_out[0, 0, 0], _ptr3(vp_out))
    job.vtheta_out = _ptr2(vtheta_out)
    with nogil:
        _run(&job, &X[0, 0])


def hvp(const floating[:, ::1] X, const floating[:, ::1] Phi,
        const floating[:, ::1] y, const floating[::1] s, const floating[::1] theta,
        const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
        const floating[:, ::1] W, const floating[:, ::1] A, const floating[:, ::1] dW,
        const floating[:, ::1] dA, const floating[::1] dtheta, int loss, int need_theta,
        floating[:, ::1] R, floating[:, ::1] Q, floating[::1] l, double[::1] value_out,
        floating[:, :, ::1] vx_out, floating[:, :, ::1] vp_out, floating[:, :, ::1] g_out,
        floating[:, ::1] vtheta_out, int[::1] status,
        Py_ssize_t chunk, int n_threads, int n_workers=0):
    """Partial sums of a Hessian-vector product by the R-operator, one slot per row.

    ``RP = X dW^T + Phi dA^T + RPhi A^T``, ``RR_i = s_i H_i RP_i``: ``vx_out[t] = RR^T X``,
    ``vp_out[t] = RR^T Phi + R^T RPhi``, ``g_out[t] = R^T Phi``, ``vtheta_out[t]`` the
    directional derivative of the MLP gradient.  ``R``, ``Q``, ``l`` as in
    :func:`value_grad`.
    """
    cdef Job job
    _setup(&job, MODE_HVP, X, Phi, y, s, theta, dims, bias, act, const_feat, W, A, loss,
           need_theta, chunk, n_threads, n_workers, value_out, status)
    job.dw = _ptr2(dW)
    job.da = _ptr2(dA)
    job.dtheta = _ptr1(dtheta)
    _set_gradient_buffers(&job, &R[0, 0], _ptr2(Q), &l[0], &vx_out[0, 0, 0], _ptr3(vp_out))
    job.g_out = _ptr3(g_out)
    job.vtheta_out = _ptr2(vtheta_out)
    with nogil:
        _run(&job, &X[0, 0])


def predict(const floating[:, ::1] X, const floating[:, ::1] Phi, const floating[::1] theta,
            const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
            const floating[:, ::1] W, const floating[:, ::1] A, floating[:, ::1] p_out,
            floating[:, ::1] phi_out, double[::1] value_out, int[::1] status,
            Py_ssize_t chunk, int n_threads, int n_workers=0):
    """``p_out = X W^T + Phi A^T`` (n x c, plus ``A[:, -1]`` with the constant feature);
    the features also go to ``phi_out`` when it has ``n`` rows (as in ``_kernels.predict``)."""
    cdef Job job
    _setup(&job, MODE_PREDICT, X, Phi, p_out[:0], theta[:0], theta, dims, bias, act,
           const_feat, W, A, VLOSS_EXTERNAL, 0, chunk, n_threads, n_workers, value_out, status)
    job.p_out = &p_out[0, 0]
    _set_phi_out(&job, phi_out)
    with nogil:
        _run(&job, &X[0, 0])
