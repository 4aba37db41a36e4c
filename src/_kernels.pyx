"""Streaming kernels of resnet_core: one pass over the samples, chunk by chunk.

Design notes
------------
1. What is computed.  For every sample, ``p_i = x_i . w + phi_i . a`` where ``phi_i`` is
   either a row of a given feature matrix ``Phi`` or ``f_theta(x_i)``, an MLP evaluated here
   (``L > 0`` layers).  The kernels return partial sums over the samples: the loss value,
   ``X^T r`` and ``Phi^T r`` (``r_i = s_i l'(p_i)``), the parameter gradient of the MLP, the
   same quantities along a direction (Pearlmutter's R-operator: forward over reverse), and
   the weighted Gram matrix ``[X, Phi]^T diag(s l'') [X, Phi]``.  How ``a`` is made from the
   head (``V^T w`` for the residual head, ``v`` for the skip head) and how the sums become a
   gradient in ``V`` is the caller's business: the head and the loss stay separable from
   the feature pass.
2. Memory.  Each slot owns a workspace of O(chunk * sum(widths)) entries
   (``workspace_entries``; chunks of at most ``n`` samples); nothing grows with ``n``
   except the caller's n-vectors ``r = s l'`` and ``q = s l''`` (written when the loss is
   computed here, read when the caller gives them: cached or user-defined losses).
3. Threads and determinism.  The chunks are split into ``n_slots`` contiguous ranges; a
   ``prange`` runs over the slots and each slot sums into its own row of every output.  The
   caller adds the rows in order, so a result depends on ``n_slots`` alone and is
   bit-identical from run to run.  The slots run on ``n_workers`` threads (fewer than the
   slots for small passes, where waking a team costs more than it saves), and a forked
   child runs them all on its calling thread (``set_serial``: libgomp's thread pool does
   not survive ``fork``): the same numbers either way.  Each slot is also a self-contained
   unit of partial sums, so the same kernels can run on blocks of a larger data set (Dask)
   and be added.
4. BLAS.  Matrix products go to scipy's BLAS (``cython_blas``) on per-chunk blocks; the
   caller holds the BLAS pool at one thread during a call, so threads do not multiply.
5. Trust.  The Python wrapper (``resnet_core._engine``) has validated shapes, dtypes,
   contiguity and finiteness: the kernels do no checks and never hold the GIL.
6. Constant feature (Remark 1 of the paper, ``const_feat = 1``).  The features are
   ``phi_i = [f_i; 1]`` with ``f_i`` the ``kf`` columns of ``Phi`` (or the MLP's output) and
   ``k = kf + 1`` entries in ``a`` and in every per-feature output; the 1-column is never
   stored.  So ``p = X w + F a[:kf] + a[kf]``, the last entry of a sum ``Phi^T v`` is
   ``sum_i v_i``, the Gram matrix gets the row/column ``(E[l'' x], E[l'' f], E[l''])``, and
   back-propagation into the MLP uses ``a[:kf]`` only (the constant does not depend on
   ``theta``).  With ``const_feat = 0``, ``kf = k``.
7. Layout.  What this module shares with ``_vkernels`` (c outputs) is in ``_pass.pxi``: the
   job (``Job``, here with c = 1), ``set_serial``, the slots' chunks and runner, the MLP's
   workspace blocks, the features of a chunk and ``predict``'s copy of them; the MLP itself
   is in ``_mlp.pxi``.  What stays here is the scalar loss and the body of a chunk.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.math cimport sqrt

from _blas cimport gemm_rm, gemv_rm, syrk_rm
from _loss cimport (loss_samples, LOSS_EXTERNAL, LOSS_SQUARED, LOSS_LOGISTIC,
                    LOSS_SMOOTHED_HINGE)
from _activation cimport (act_apply, mul, scale, rdelta, ACT_IDENTITY, ACT_TANH, ACT_RELU,
                          ACT_SIGMOID, ACT_SOFTPLUS)

include "_mlp.pxi"
include "_pass.pxi"

cdef extern from "rc_elementwise.h" nogil:
    int rc_build_level()
    int rc_dispatch_level()
    int rc_dispatching()

cdef extern from *:
    const char* RC_COMPILE_FLAGS    # setup.py: the C compiler's flags, space-separated

# The codes of the built-in losses and activations: the enums of _loss.pxd and
# _activation.pxd are their one source, read from here by resnet_core.losses, .features and
# the numba loops (resnet_core._loops).
LOSS_CODES = {"squared": LOSS_SQUARED, "logistic": LOSS_LOGISTIC,
              "smoothed_hinge": LOSS_SMOOTHED_HINGE}
LOSS_CODE_EXTERNAL = LOSS_EXTERNAL
ACTIVATION_CODES = {"identity": ACT_IDENTITY, "tanh": ACT_TANH, "relu": ACT_RELU,
                    "sigmoid": ACT_SIGMOID, "softplus": ACT_SOFTPLUS}


def build_info():
    """How these kernels were compiled and which code path runs: ``compile_args`` (the C
    flags), ``build_level`` (the x86-64 level the code was compiled for: 1 baseline, 2
    SSE4.2, 3 AVX2 + FMA, 4 AVX-512; 0 not x86-64), ``dispatch`` (the elementwise loops
    exist for several levels and the loader picks one) and ``runtime_level`` (the level
    whose elementwise loops run on this CPU)."""
    return {"compile_args": RC_COMPILE_FLAGS.decode().split(),
            "build_level": rc_build_level(), "dispatch": bool(rc_dispatching()),
            "runtime_level": rc_dispatch_level()}


def max_layers():
    """Deepest MLP the kernels accept."""
    return MAX_LAYERS


cdef inline double _sum(const floating* v, Py_ssize_t m) noexcept nogil:
    """sum_i v[i], accumulated in double."""
    cdef Py_ssize_t i
    cdef double acc = 0
    for i in range(m):
        acc += v[i]
    return acc


cdef void _add_const(floating* p, Py_ssize_t m, floating c) noexcept nogil:
    """p[i] += c."""
    cdef Py_ssize_t i
    for i in range(m):
        p[i] += c


cdef void _scores(Job* job, Py_ssize_t m, const floating* Xc, const floating* Phic,
                  const floating* w, const floating* a, floating* p) noexcept nogil:
    """p = Xc w + Phic a[:kf] (+ a[kf] with the constant feature)."""
    gemv_rm(False, m, job.d, 1, Xc, job.d, w, 0, p)
    gemv_rm(False, m, job.kf, 1, Phic, job.kf, a, 1, p)
    if job.const_feat:
        _add_const(p, m, a[job.kf])


cdef void _add_transposed(Job* job, Py_ssize_t m, const floating* Xc, const floating* Phic,
                          const floating* v, floating* vx, floating* vp) noexcept nogil:
    """vx += Xc^T v (unless vx is NULL), vp += [Phic, 1]^T v (the 1 with the constant
    feature)."""
    if vx != NULL:
        gemv_rm(True, m, job.d, 1, Xc, job.d, v, 1, vx)
    gemv_rm(True, m, job.kf, 1, Phic, job.kf, v, 1, vp)
    if job.const_feat:
        vp[job.kf] += <floating> _sum(v, m)


cdef double _loss_chunk(Job* job, Py_ssize_t m, Py_ssize_t row0, const floating* Xc,
                        const floating* Phic, floating* p) noexcept nogil:
    """p = Xc w + Phic a (plus a[kf] with the constant feature); r = s l'(p),
    q = s l''(p) (and l(p)) into the caller's n-vectors at row0; return sum_i s_i l(p_i)."""
    cdef const floating* y = <const floating*> job.y + row0
    cdef const floating* s = <const floating*> job.s + row0
    cdef floating* r = <floating*> job.r + row0
    cdef floating* q = <floating*> job.q + row0 if job.q != NULL else NULL
    cdef floating* lout = <floating*> job.l + row0 if job.l != NULL else NULL
    _scores(job, m, Xc, Phic, <const floating*> job.w, <const floating*> job.a, p)
    return loss_samples(job.loss, m, p, y, s, r, q, lout)


cdef void _outer(floating* G, Py_ssize_t m, Py_ssize_t k, const floating* r,
                 const floating* a) noexcept nogil:
    """G = r a^T (m x k)."""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(k):
            G[i * k + j] = r[i] * a[j]


cdef bint _weighted_rows(Job* job, Py_ssize_t m, const floating* Xc, const floating* Phic,
                         const floating* q, double sign, floating* Y) noexcept nogil:
    """Row i of Y (m x D) = sqrt(max(sign q_i, 0)) [x_i, phi_i (, 1)]: Y^T Y is the part of
    Z^T diag(q) Z where sign q > 0.  Returns whether some sign q_i < 0 (a part is left)."""
    cdef Py_ssize_t i, j, d = job.d, kf = job.kf, D = job.d + job.k
    cdef double sq
    cdef bint other = False
    for i in range(m):
        sq = sign * q[i]
        other = other or sq < 0
        sq = sqrt(sq) if sq > 0 else 0.0
        for j in range(d):
            Y[i * D + j] = <floating> (sq * Xc[i * d + j])
        for j in range(kf):
            Y[i * D + d + j] = <floating> (sq * Phic[i * kf + j])
        if job.const_feat:
            Y[i * D + d + kf] = <floating> sq
    return other


cdef inline Py_ssize_t _ws_entries(const MLP* net, Py_ssize_t mc, Py_ssize_t D) noexcept nogil:
    """Entries of a slot's workspace: the MLP's blocks (_carve), then p, Rp (mc each) and Y
    (mc x D); the formula of workspace_entries, which the caller checks first."""
    return _mlp_entries(net, mc) + 2 * mc + mc * D + 1


def workspace_entries(chunk, dims, k):
    """Entries of one slot's workspace for chunks of ``chunk`` samples, the MLP
    ``dims = [d, h_1, ..., h_L]`` (``[d]`` for given features) and ``k`` features (the
    constant one included), in Python integers: no overflow, whatever the sizes."""
    chunk = int(chunk)
    return _mlp_entries_py(chunk, dims) + 2 * chunk + chunk * (int(dims[0]) + k) + 1


cdef int _process_slot(Job* job, Py_ssize_t t, const floating* X) noexcept nogil:
    """All chunks of slot t; returns 0, or 1 when the workspace cannot be allocated."""
    cdef Py_ssize_t n = job.n, d = job.d, k = job.k, kf = job.kf, L = job.net.L, mc = job.chunk
    cdef Py_ssize_t c0, c1, ch, i, j, m, row0, D = d + k
    cdef int mode = job.mode, hvp_theta = job.mode == MODE_HVP and job.need_theta
    cdef const floating* a = <const floating*> job.a
    cdef const floating* da = <const floating*> job.da
    cdef const floating* Xc
    cdef const floating* Phic
    cdef const floating* rc
    cdef const floating* qc
    cdef floating* vx
    cdef floating* vp
    cdef floating* gslot
    cdef floating* vtheta
    cdef floating* gram
    cdef floating* ws
    cdef floating* p
    cdef floating* Rp
    cdef floating* Y
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
    cdef bint negative
    _slot_chunks(job, t, &c0, &c1)
    if c0 >= c1:
        return 0
    ws = <floating*> malloc(_ws_entries(&job.net, mc, D) * sizeof(floating))
    if ws == NULL:
        return 1
    p = _carve(&job.net, mc, ws, H, D1, D2, RZ, RH, &G, &Gn, &RG, &RGn)
    Rp = p + mc
    Y = Rp + mc

    vx = <floating*> job.vx_out + t * d if job.vx_out != NULL else NULL
    vp = <floating*> job.vp_out + t * k if job.vp_out != NULL else NULL
    gslot = <floating*> job.g_out + t * k if job.g_out != NULL else NULL
    vtheta = <floating*> job.vtheta_out + t * job.net.n_theta if job.vtheta_out != NULL else NULL
    gram = <floating*> job.gram_out + t * D * D if job.gram_out != NULL else NULL

    for ch in range(c0, c1):
        row0 = ch * mc
        m = mc if n - row0 > mc else n - row0
        Xc = X + row0 * d
        Phic = _features(job, m, row0, Xc, H, D1, D2, RZ, RH)

        if mode == MODE_PREDICT:
            _scores(job, m, Xc, Phic, <const floating*> job.w, a, <floating*> job.p_out + row0)
            _copy_features(job, m, row0, Phic)
            continue

        # per-sample loss derivatives r = s l', q = s l''
        if job.loss != LOSS_EXTERNAL:
            val += _loss_chunk(job, m, row0, Xc, Phic, p)
        rc = <const floating*> job.r + row0
        qc = <const floating*> job.q + row0 if job.q != NULL else NULL

        if mode == MODE_VALUE_GRAD or mode == MODE_GRAM:
            _add_transposed(job, m, Xc, Phic, rc, vx, vp)
        if mode == MODE_VALUE_GRAD and job.need_theta and L > 0:
            _outer(G, m, kf, rc, a)
            _backward(&job.net, m, Xc, <const floating*> job.theta, H, D1, G, Gn, vtheta)

        if mode == MODE_GRAM:
            # [Xc, Phic] scaled by sqrt(q+), then by sqrt(q-) for a non-convex loss
            negative = _weighted_rows(job, m, Xc, Phic, qc, 1.0, Y)
            syrk_rm(m, D, 1, Y, D, 1, gram, D)
            if negative:
                _weighted_rows(job, m, Xc, Phic, qc, -1.0, Y)
                syrk_rm(m, D, -1, Y, D, 1, gram, D)

        if mode == MODE_HVP:
            # Rp = Xc dw + Phic da + RPhi a;  Rr = q Rp (kept in Rp).  The constant feature
            # adds da[kf] to Rp and sum(Rr), sum(r) to vp, g; it has no RPhi part (note 6).
            _scores(job, m, Xc, Phic, <const floating*> job.dw, da, Rp)
            if hvp_theta and L > 0:
                gemv_rm(False, m, kf, 1, RH[L - 1], kf, a, 1, Rp)
            for i in range(m):
                Rp[i] = qc[i] * Rp[i]
            _add_transposed(job, m, Xc, Phic, Rp, vx, vp)
            _add_transposed(job, m, Xc, Phic, rc, NULL, gslot)
            if hvp_theta and L > 0:
                gemv_rm(True, m, kf, 1, RH[L - 1], kf, rc, 1, vp)
                # G = r a^T, RG = Rr a^T + r da^T (a, da restricted to the MLP's outputs)
                _outer(G, m, kf, rc, a)
                _outer(RG, m, kf, Rp, a)
                for i in range(m):
                    for j in range(kf):
                        RG[i * kf + j] += rc[i] * da[j]
                _r_backward(&job.net, m, Xc, <const floating*> job.theta,
                            <const floating*> job.dtheta, H, D1, D2, RZ, RH, G, RG, Gn, RGn,
                            vtheta)
    job.value_out[t] = val
    free(ws)
    return 0


cdef void _setup(Job* job, int mode, const floating[:, ::1] X, const floating[:, ::1] Phi,
                 const floating[::1] y, const floating[::1] s, const floating[::1] theta,
                 const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
                 const floating[::1] w, const floating[::1] a, int loss, int need_theta,
                 Py_ssize_t chunk, Py_ssize_t n_slots, int n_workers,
                 double[::1] value_out, int[::1] status) noexcept:
    """_setup_job for one output: w and a are vectors, y has n entries."""
    _setup_job(job, mode, X, Phi, s, theta, dims, bias, act, const_feat, _ptr1(w), _ptr1(a),
               1, a.shape[0], loss, need_theta, chunk, n_slots, n_workers, value_out, status)
    job.y = _ptr1(y)


def value_grad(const floating[:, ::1] X, const floating[:, ::1] Phi,
               const floating[::1] y, const floating[::1] s, const floating[::1] theta,
               const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
               const floating[::1] w, const floating[::1] a, int loss, int need_theta,
               floating[::1] r, floating[::1] q, floating[::1] l, double[::1] value_out,
               floating[:, ::1] vx_out, floating[:, ::1] vp_out, floating[:, ::1] vtheta_out,
               int[::1] status,
               Py_ssize_t chunk, int n_threads, int n_workers=0):
    """Partial sums of the value and gradient, one row per slot (``n_threads`` slots).

    With ``p = X w + Phi a`` (``Phi = f_theta(X)`` when ``dims`` has more than one entry)
    and ``r = s l'(p)``: ``value_out[t] = sum s l(p)``, ``vx_out[t] = X^T r``,
    ``vp_out[t] = Phi^T r`` and ``vtheta_out[t] = d/dtheta sum s l`` by back-propagation of
    ``dl/dphi = r a^T`` (when ``need_theta``), each over slot t's samples.  ``r``,
    ``q = s l''`` and the per-sample losses ``l`` are written (``loss >= 0``) or ``r`` is
    read (``loss == -1``, then ``value_out`` stays 0).  Outputs are added to, so the caller
    zeroes them.  With ``const_feat = 1`` every ``Phi`` here stands for ``[Phi, 1]`` (design
    note 6): ``a`` and the rows of ``vp_out`` have one entry more than ``Phi`` has columns.
    """
    cdef Job job
    _setup(&job, MODE_VALUE_GRAD, X, Phi, y, s, theta, dims, bias, act, const_feat, w, a,
           loss, need_theta, chunk, n_threads, n_workers, value_out, status)
    _set_gradient_buffers(&job, &r[0], &q[0], &l[0], &vx_out[0, 0], _ptr2(vp_out))
    job.vtheta_out = _ptr2(vtheta_out)
    with nogil:
        _run(&job, &X[0, 0])


def hvp(const floating[:, ::1] X, const floating[:, ::1] Phi,
        const floating[::1] y, const floating[::1] s, const floating[::1] theta,
        const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
        const floating[::1] w, const floating[::1] a, const floating[::1] dw,
        const floating[::1] Ra, const floating[::1] dtheta, int loss, int need_theta,
        floating[::1] r, floating[::1] q, floating[::1] l, double[::1] value_out,
        floating[:, ::1] vx_out, floating[:, ::1] vp_out, floating[:, ::1] g_out,
        floating[:, ::1] vtheta_out,
        int[::1] status, Py_ssize_t chunk, int n_threads, int n_workers=0):
    """Partial sums of a Hessian-vector product by the R-operator, one row per slot.

    With ``Rp = X dw + Phi Ra + RPhi a`` (``RPhi`` the forward derivative of the features
    along ``dtheta``, zero unless ``need_theta``) and ``Rr = q Rp``: ``vx_out[t] = X^T Rr``,
    ``vp_out[t] = Phi^T Rr + RPhi^T r``, ``g_out[t] = Phi^T r``, ``vtheta_out[t]`` the
    directional derivative of the MLP gradient.  ``r = s l'``, ``q = s l''`` are written
    (``loss >= 0``) or read (``loss == -1``: a cached point or a user-defined loss).
    ``const_feat`` as in :func:`value_grad`.
    """
    cdef Job job
    _setup(&job, MODE_HVP, X, Phi, y, s, theta, dims, bias, act, const_feat, w, a, loss,
           need_theta, chunk, n_threads, n_workers, value_out, status)
    job.dw = _ptr1(dw)
    job.da = _ptr1(Ra)
    job.dtheta = _ptr1(dtheta)
    _set_gradient_buffers(&job, &r[0], &q[0], &l[0], &vx_out[0, 0], _ptr2(vp_out))
    job.g_out = _ptr2(g_out)
    job.vtheta_out = _ptr2(vtheta_out)
    with nogil:
        _run(&job, &X[0, 0])


def gram(const floating[:, ::1] X, const floating[:, ::1] Phi,
         const floating[::1] y, const floating[::1] s, const floating[::1] theta,
         const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
         const floating[::1] w, const floating[::1] a, int loss,
         floating[::1] r, floating[::1] q, floating[::1] l, double[::1] value_out,
         floating[:, ::1] vx_out, floating[:, ::1] vp_out, floating[:, :, ::1] gram_out,
         int[::1] status,
         Py_ssize_t chunk, int n_threads, int n_workers=0):
    """Partial sums of the weighted Gram matrix and the gradient, one slot per row.

    ``gram_out[t] += Z^T diag(q) Z`` with ``Z = [X, Phi]`` (upper triangle of each slot,
    row-major; the caller symmetrises), plus ``value_out``, ``vx_out = X^T r`` and
    ``vp_out = Phi^T r`` as in :func:`value_grad` (``const_feat`` too).
    """
    cdef Job job
    _setup(&job, MODE_GRAM, X, Phi, y, s, theta, dims, bias, act, const_feat, w, a, loss,
           0, chunk, n_threads, n_workers, value_out, status)
    _set_gradient_buffers(&job, &r[0], &q[0], &l[0], &vx_out[0, 0], _ptr2(vp_out))
    job.gram_out = &gram_out[0, 0, 0]
    with nogil:
        _run(&job, &X[0, 0])


def predict(const floating[:, ::1] X, const floating[:, ::1] Phi, const floating[::1] theta,
            const Py_ssize_t[::1] dims, int bias, int act, int const_feat,
            const floating[::1] w, const floating[::1] a, floating[::1] p_out,
            floating[:, ::1] phi_out, double[::1] value_out, int[::1] status,
            Py_ssize_t chunk, int n_threads, int n_workers=0):
    """``p_out = X w + Phi a`` (plus ``a[-1]`` with the constant feature) for every sample;
    the features are also written to ``phi_out`` when it has ``n`` rows: ``f_theta(X)``
    (or the given ``Phi``) when it has as many columns, rows ``[f_i, 1]`` when it has one
    more (the constant feature)."""
    cdef Job job
    _setup(&job, MODE_PREDICT, X, Phi, theta[:0], theta[:0], theta, dims, bias, act,
           const_feat, w, a, LOSS_EXTERNAL, 0, chunk, n_threads, n_workers, value_out, status)
    job.p_out = &p_out[0]
    _set_phi_out(&job, phi_out)
    with nogil:
        _run(&job, &X[0, 0])


def loss_derivatives(int loss, const floating[::1] p, const floating[::1] y,
                     floating[::1] value_out, floating[::1] d1_out, floating[::1] d2_out):
    """Per-sample ``l(p; y)``, ``l'`` and ``l''`` of a built-in loss (for tests and the
    linear baseline)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating* ones
    if n == 0:
        return
    ones = <floating*> malloc(n * sizeof(floating))
    if ones == NULL:
        raise MemoryError("loss_derivatives: no memory for the sample weights")
    with nogil:
        for i in range(n):
            ones[i] = 1
        loss_samples(loss, n, &p[0], &y[0], ones, &d1_out[0], &d2_out[0], &value_out[0])
    free(ones)


def activation(int act, floating[::1] z, floating[::1] d1_out, floating[::1] d2_out):
    """In place ``z <- act(z)`` with ``act'`` and ``act''`` of the input (for tests)."""
    if z.shape[0] == 0:
        return
    with nogil:
        act_apply(act, &z[0], &d1_out[0], &d2_out[0], z.shape[0])
