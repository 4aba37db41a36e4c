# The skeleton of a streaming pass, included (textually, after _mlp.pxi) by both kernel
# modules: _kernels.pyx (one output) and _vkernels.pyx (c outputs, Remark 2 of the paper).
# Each module keeps what is its own: its losses, the body of a chunk (``_process_slot``, which
# the slot runner here calls) and its Python entry points.  What they share is here: the
# description of a job (``Job``), the switch for a forked child (``set_serial``), how a slot
# finds its chunks and carves the MLP's blocks out of its workspace, the features of a
# chunk, the copy of the features made by ``predict``, the slot runner and the setup of a
# job.  The design notes of _kernels.pyx say why the pass is cut this way.

cdef enum:
    MODE_VALUE_GRAD = 0
    MODE_HVP = 1
    MODE_GRAM = 2        # _kernels only
    MODE_PREDICT = 3


cdef struct Job:
    int mode
    int loss          # >= 0: loss code, r (and q, l) are computed here; < 0: given
    int need_theta    # also the MLP's parameters (gradient / R-gradient)
    int const_feat    # 1: phi = [f; 1] (_kernels' design note 6); k = kf + 1
    Py_ssize_t n, d, k, kf, c, chunk, n_slots   # c outputs: 1 in _kernels
    int n_workers     # threads that run the slots (0: one per slot)
    MLP net           # the features' MLP (net.L = 0: given features)
    void* X           # n x d
    void* Phi         # n x kf given features (net.L = 0)
    void* y           # n targets (_kernels); n x c targets or n labels (_vkernels)
    void* s           # n sample weights
    void* theta
    void* w           # c x d (the vector w in _kernels, W in _vkernels)
    void* a           # c x k (a, A)
    void* dw          # directions of the HVP: dw, da, dtheta
    void* da
    void* dtheta
    void* r           # n x c: s dl/dp
    void* q           # n x c: s l'' (_kernels), softmax (_vkernels' cross-entropy), or NULL
    void* l           # n per-sample losses, written with r when not NULL
    void* p_out       # n x c predictions
    void* phi_out     # n x phi_cols, phi_cols = kf (f only) or k (rows [f, 1])
    Py_ssize_t phi_cols
    double* value_out # one per slot, as every output below
    void* vx_out      # slots x c x d
    void* vp_out      # slots x c x k
    void* g_out       # slots x c x k
    void* vtheta_out  # slots x n_theta
    void* gram_out    # slots x (d + k) x (d + k) (_kernels only)
    int* status       # one per slot: 0, or 1 when its workspace could not be allocated


# 1: every slot runs on the calling thread (set in a forked child: libgomp's thread pool
# does not survive fork; _kernels' design note 3).
cdef int _serial = 0


def set_serial(bint serial):
    """Run the slots of every later call on the calling thread (``True``) or each on a
    thread of its own (``False``); the results depend on the slots alone, not on this."""
    global _serial
    _serial = serial


cdef void _setup_job(Job* job, int mode, const floating[:, ::1] X,
                     const floating[:, ::1] Phi, const floating[::1] s,
                     const floating[::1] theta, const Py_ssize_t[::1] dims, int bias, int act,
                     int const_feat, void* w, void* a, Py_ssize_t c, Py_ssize_t k, int loss,
                     int need_theta, Py_ssize_t chunk, Py_ssize_t n_slots, int n_workers,
                     double[::1] value_out, int[::1] status) noexcept:
    """Fill ``job`` with the sizes, the MLP's parameter offsets and the inputs every mode
    reads; the mode-specific pointers start as NULL."""
    job.mode = mode
    job.n = X.shape[0]
    job.d = X.shape[1]
    job.c = c
    job.k = k
    job.const_feat = const_feat
    job.kf = k - const_feat
    job.phi_cols = 0
    _mlp_setup(&job.net, dims, bias, act)
    job.loss = loss
    job.need_theta = need_theta
    job.chunk = max(min(chunk, job.n), 1)
    job.n_slots = n_slots
    job.n_workers = n_workers
    job.value_out = &value_out[0]
    job.status = &status[0]
    job.X = _ptr2(X)
    job.Phi = _ptr2(Phi)
    job.s = _ptr1(s)
    job.theta = _ptr1(theta)
    job.w = w
    job.a = a
    job.y = job.dw = job.da = job.dtheta = job.r = job.q = job.l = NULL
    job.p_out = job.phi_out = NULL
    job.vx_out = job.vp_out = job.g_out = job.vtheta_out = job.gram_out = NULL


cdef void _set_gradient_buffers(Job* job, void* r, void* q, void* l, void* vx_out,
                                void* vp_out) noexcept:
    """What every mode but ``predict`` writes: the per-sample r, q and losses l (or reads:
    r and q of an external loss) and the slots' sums vx (X^T r) and vp (Phi^T r)."""
    job.r = r
    job.q = q
    job.l = l
    job.vx_out = vx_out
    job.vp_out = vp_out


cdef void _set_phi_out(Job* job, const floating[:, ::1] phi_out) noexcept:
    """``predict`` also writes the features when ``phi_out`` has ``n`` rows."""
    job.phi_out = _ptr2(phi_out) if phi_out.shape[0] == job.n else NULL
    job.phi_cols = phi_out.shape[1]


cdef inline Py_ssize_t _mlp_entries(const MLP* net, Py_ssize_t mc) noexcept nogil:
    """Entries of a workspace's MLP blocks (``_carve``) for chunks of ``mc`` samples."""
    return 5 * mc * net.sumw + 4 * mc * net.maxw


cdef object _mlp_entries_py(chunk, dims):
    """``_mlp_entries`` in Python integers (no overflow, whatever the sizes), for
    ``workspace_entries``."""
    widths = [int(h) for h in dims[1:]]
    return 5 * int(chunk) * sum(widths) + 4 * int(chunk) * max(widths, default=1)


cdef floating* _carve(const MLP* net, Py_ssize_t mc, floating* ws, floating** H,
                      floating** D1, floating** D2, floating** RZ, floating** RH, floating** G,
                      floating** Gn, floating** RG, floating** RGn) noexcept nogil:
    """Lay the MLP's blocks out from the start of ``ws``: for each layer l, H[l] (its output),
    D1[l], D2[l] (act', act''), RZ[l], RH[l] (their R-operators), mc x h_l each; then the
    four mc x maxw blocks of back-propagation, *G, *Gn, *RG, *RGn.  Returns the first entry
    after them (``_mlp_entries(net, mc)`` entries on)."""
    cdef Py_ssize_t l, h, off = 0
    for l in range(net.L):
        h = net.dims[l + 1]
        H[l] = ws + off
        D1[l] = ws + off + mc * h
        D2[l] = ws + off + 2 * mc * h
        RZ[l] = ws + off + 3 * mc * h
        RH[l] = ws + off + 4 * mc * h
        off += 5 * mc * h
    G[0] = ws + off
    Gn[0] = G[0] + mc * net.maxw
    RG[0] = Gn[0] + mc * net.maxw
    RGn[0] = RG[0] + mc * net.maxw
    return RGn[0] + mc * net.maxw


cdef inline void _slot_chunks(const Job* job, Py_ssize_t t, Py_ssize_t* c0,
                              Py_ssize_t* c1) noexcept nogil:
    """Slot t's chunks are c0, ..., c1 - 1: the chunks split into n_slots contiguous
    ranges."""
    cdef Py_ssize_t nc = (job.n + job.chunk - 1) // job.chunk
    c0[0] = nc * t // job.n_slots
    c1[0] = nc * (t + 1) // job.n_slots


cdef const floating* _features(Job* job, Py_ssize_t m, Py_ssize_t row0, const floating* Xc,
                               floating** H, floating** D1, floating** D2, floating** RZ,
                               floating** RH) noexcept nogil:
    """The chunk's features (m x kf): the MLP's output on Xc (with act' kept for a gradient
    in theta, and act'', RZ, RH for its R-operator), or the given Phi's rows."""
    cdef const floating* theta = <const floating*> job.theta
    cdef Py_ssize_t L = job.net.L
    if L == 0:
        return <const floating*> job.Phi + row0 * job.kf
    if job.mode == MODE_VALUE_GRAD and job.need_theta:
        _forward(&job.net, m, Xc, theta, H, D1, <floating**> NULL)
    elif job.mode == MODE_HVP and job.need_theta:
        _forward(&job.net, m, Xc, theta, H, D1, D2)
        _r_forward(&job.net, m, Xc, theta, <const floating*> job.dtheta, H, D1, RZ, RH)
    else:
        _forward(&job.net, m, Xc, theta, H, <floating**> NULL, <floating**> NULL)
    return H[L - 1]


cdef void _copy_features(Job* job, Py_ssize_t m, Py_ssize_t row0,
                         const floating* Phic) noexcept nogil:
    """``predict``'s copy of the chunk's features into phi_out: rows f_i, or [f_i, 1]."""
    cdef Py_ssize_t i, k = job.k, kf = job.kf
    cdef floating* out = <floating*> job.phi_out
    if out == NULL:
        return
    if job.phi_cols == kf:
        memcpy(out + row0 * kf, Phic, m * kf * sizeof(floating))
        return
    for i in range(m):
        memcpy(out + (row0 + i) * k, Phic + i * kf, kf * sizeof(floating))
        out[(row0 + i) * k + kf] = 1


cdef void _run(Job* job, const floating* X) noexcept nogil:
    """Every slot's ``_process_slot`` (the including module's), on ``n_workers`` threads
    (one per slot when 0 or more than the slots; the calling thread after ``set_serial``)."""
    cdef Py_ssize_t t
    cdef int workers = job.n_slots
    if _serial:
        workers = 1
    elif 0 < job.n_workers < job.n_slots:
        workers = job.n_workers
    for t in prange(job.n_slots, schedule="static", num_threads=workers):
        job.status[t] = _process_slot(job, t, X)
