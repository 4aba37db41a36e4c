# What the kernel modules share, included (textually) by each: the MLP f_theta (its shape,
# MLP; its forward and backward passes and their R-operators over one chunk of samples), and
# the data pointers of (possibly empty) memoryviews.
#
# theta is flat: for each layer l, W_l (h_l x h_{l-1}, row-major) at woff[l], then b_l
# (h_l) at boff[l] when the layers have biases.

cdef enum:
    MAX_LAYERS = 64


cdef inline void* _ptr1(const floating[::1] v) noexcept:
    return <void*> &v[0] if v.shape[0] > 0 else NULL


cdef inline void* _ptr2(const floating[:, ::1] v) noexcept:
    return <void*> &v[0, 0] if v.shape[0] > 0 and v.shape[1] > 0 else NULL


cdef struct MLP:
    int bias
    int act
    Py_ssize_t L, n_theta, maxw, sumw
    Py_ssize_t dims[MAX_LAYERS + 1]
    Py_ssize_t woff[MAX_LAYERS]
    Py_ssize_t boff[MAX_LAYERS]


cdef void _mlp_setup(MLP* net, const Py_ssize_t[::1] dims, int bias, int act) noexcept:
    """Fill ``net`` from ``dims = [d, h_1, ..., h_L]``: offsets of each layer's weights and
    biases in theta, ``n_theta``, the widest layer and the sum of the widths."""
    cdef Py_ssize_t l, off = 0
    net.L = dims.shape[0] - 1
    net.bias = bias
    net.act = act
    net.maxw = 1
    net.sumw = 0
    for l in range(net.L + 1):
        net.dims[l] = dims[l]
    for l in range(net.L):
        net.woff[l] = off
        off += dims[l + 1] * dims[l]
        net.boff[l] = off if bias else -1
        if bias:
            off += dims[l + 1]
        net.sumw += dims[l + 1]
        if dims[l + 1] > net.maxw:
            net.maxw = dims[l + 1]
    net.n_theta = off


cdef void _fill_rows(floating* Z, Py_ssize_t m, Py_ssize_t h, const floating* b) noexcept nogil:
    """Z[i, :] = b for each of the m rows."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(Z + i * h, b, h * sizeof(floating))


cdef void _col_sums(const floating* G, Py_ssize_t m, Py_ssize_t h, floating* out) noexcept nogil:
    """out[j] += sum_i G[i, j]."""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(h):
            out[j] += G[i * h + j]


cdef void _forward(const MLP* net, Py_ssize_t m, const floating* Xc, const floating* theta,
                   floating** H, floating** D1, floating** D2) noexcept nogil:
    """H[l] = act(H[l-1] W_l^T + b_l) for the chunk (H[-1] = Xc), with act' in D1[l] and
    act'' in D2[l] when those are not NULL."""
    cdef Py_ssize_t l, hin, hout
    cdef const floating* Hin = Xc
    cdef floating beta
    for l in range(net.L):
        hin = net.dims[l]
        hout = net.dims[l + 1]
        beta = 0
        if net.bias:
            _fill_rows(H[l], m, hout, theta + net.boff[l])
            beta = 1
        gemm_rm(False, True, m, hout, hin, 1, Hin, hin, theta + net.woff[l], hin, beta,
                H[l], hout)
        act_apply(net.act, H[l], D1[l] if D1 != NULL else NULL,
                  D2[l] if D2 != NULL else NULL, m * hout)
        Hin = H[l]


cdef void _r_forward(const MLP* net, Py_ssize_t m, const floating* Xc, const floating* theta,
                     const floating* dtheta, floating** H, floating** D1,
                     floating** RZ, floating** RH) noexcept nogil:
    """R-operator of the forward pass along dtheta:
    RZ_l = H_{l-1} dW_l^T + RH_{l-1} W_l^T + db_l, RH_l = act'(Z_l) * RZ_l (RH_0 = 0)."""
    cdef Py_ssize_t l, hin, hout
    cdef const floating* Hin = Xc
    cdef floating beta
    for l in range(net.L):
        hin = net.dims[l]
        hout = net.dims[l + 1]
        beta = 0
        if net.bias:
            _fill_rows(RZ[l], m, hout, dtheta + net.boff[l])
            beta = 1
        gemm_rm(False, True, m, hout, hin, 1, Hin, hin, dtheta + net.woff[l], hin, beta,
                RZ[l], hout)
        if l > 0:
            gemm_rm(False, True, m, hout, hin, 1, RH[l - 1], hin, theta + net.woff[l], hin,
                    1, RZ[l], hout)
        mul(m * hout, D1[l], RZ[l], RH[l])
        Hin = H[l]


cdef void _backward(const MLP* net, Py_ssize_t m, const floating* Xc, const floating* theta,
                    floating** H, floating** D1, floating* G, floating* Gn,
                    floating* gtheta) noexcept nogil:
    """Back-propagate G = dLoss/dphi (m x k) through the MLP, adding the parameter gradient
    to gtheta: Delta_l = G_l * act'(Z_l), dW_l += Delta_l^T H_{l-1}, db_l += sum Delta_l,
    G_{l-1} = Delta_l W_l.  G and Gn are overwritten."""
    cdef Py_ssize_t l, hin, hout
    cdef const floating* Hin
    cdef floating* tmp
    for l in range(net.L - 1, -1, -1):
        hin = net.dims[l]
        hout = net.dims[l + 1]
        Hin = Xc if l == 0 else H[l - 1]
        scale(m * hout, G, D1[l])
        gemm_rm(True, False, hout, hin, m, 1, G, hout, Hin, hin, 1, gtheta + net.woff[l], hin)
        if net.bias:
            _col_sums(G, m, hout, gtheta + net.boff[l])
        if l > 0:
            gemm_rm(False, False, m, hin, hout, 1, G, hout, theta + net.woff[l], hin, 0, Gn, hin)
            tmp = G
            G = Gn
            Gn = tmp


cdef void _r_backward(const MLP* net, Py_ssize_t m, const floating* Xc, const floating* theta,
                      const floating* dtheta, floating** H, floating** D1, floating** D2,
                      floating** RZ, floating** RH, floating* G, floating* RG, floating* Gn,
                      floating* RGn, floating* Rgtheta) noexcept nogil:
    """R-operator of _backward: with G = dLoss/dphi and RG its directional derivative,
    RDelta_l = RG_l act'(Z_l) + G_l act''(Z_l) RZ_l, R dW_l += RDelta_l^T H_{l-1} +
    Delta_l^T RH_{l-1}, R db_l += sum RDelta_l, RG_{l-1} = RDelta_l W_l + Delta_l dW_l."""
    cdef Py_ssize_t l, hin, hout
    cdef const floating* Hin
    cdef floating* tmp
    for l in range(net.L - 1, -1, -1):
        hin = net.dims[l]
        hout = net.dims[l + 1]
        Hin = Xc if l == 0 else H[l - 1]
        rdelta(m * hout, RG, G, D1[l], D2[l], RZ[l])
        gemm_rm(True, False, hout, hin, m, 1, RG, hout, Hin, hin, 1, Rgtheta + net.woff[l], hin)
        if l > 0:
            gemm_rm(True, False, hout, hin, m, 1, G, hout, RH[l - 1], hin, 1,
                    Rgtheta + net.woff[l], hin)
        if net.bias:
            _col_sums(RG, m, hout, Rgtheta + net.boff[l])
        if l > 0:
            gemm_rm(False, False, m, hin, hout, 1, G, hout, theta + net.woff[l], hin, 0, Gn, hin)
            gemm_rm(False, False, m, hin, hout, 1, RG, hout, theta + net.woff[l], hin, 0, RGn, hin)
            gemm_rm(False, False, m, hin, hout, 1, G, hout, dtheta + net.woff[l], hin, 1, RGn, hin)
            tmp = G
            G = Gn
            Gn = tmp
            tmp = RG
            RG = RGn
            RGn = tmp
