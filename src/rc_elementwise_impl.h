/* rc_elementwise_impl.h: the loops of rc_elementwise.h for one data type T (included once
 * with T = double, suffix _f64, and once with T = float, suffix _f32).  No include guard:
 * that is the point.
 *
 * Precision: the activations of double data are computed in double; tanh of float data in
 * float (rc_tanhf, with its derivatives in float), sigmoid and softplus of float data in
 * double and rounded once.  The losses are computed in double. */
#define RC_NAME(name) RC_CAT(name, RC_SFX)

/* tanh(z) in T, with 1 - h^2 and -2 h (1 - h^2) in T. */
RC_INLINE T RC_NAME(rc_tanh1)(T z, T* d1, T* d2)
{
    T one = 1, mtwo = -2;
    T h = (sizeof(T) == sizeof(float)) ? (T) rc_tanhf((float) z) : (T) rc_tanh((double) z);
    *d1 = one - h * h;
    *d2 = mtwo * h * (one - h * h);
    return h;
}

RC_INLINE T RC_NAME(rc_relu1)(T z, T* d1, T* d2)
{
    *d1 = z > 0 ? 1 : 0;
    *d2 = 0;
    return z > 0 ? z : 0;
}

RC_INLINE T RC_NAME(rc_sigmoid1)(T z, T* d1, T* d2)
{
    double h = rc_sigmoid((double) z);
    *d1 = (T) (h * (1.0 - h));
    *d2 = (T) (h * (1.0 - h) * (1.0 - 2.0 * h));
    return (T) h;
}

/* log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}); its derivative is sigmoid(z). */
RC_INLINE T RC_NAME(rc_softplus1)(T z, T* d1, T* d2)
{
    double x = (double) z;
    double e = rc_exp(-fabs(x));
    double s = 1.0 / (1.0 + e);
    double h = x >= 0.0 ? s : e * s;
    *d1 = (T) h;
    *d2 = (T) (h * (1.0 - h));
    return (T) ((x > 0 ? x : 0.0) + rc_log1p01(e));
}

RC_INLINE T RC_NAME(rc_identity1)(T z, T* d1, T* d2)
{
    *d1 = 1;
    *d2 = 0;
    return z;
}

/* One activation over Z[0:n], one loop per pattern of NULL buffers. */
#define RC_ACT_LOOPS(F)                                                     \
    do {                                                                    \
        ptrdiff_t i;                                                        \
        T a, b;                                                             \
        if (D1 == NULL) {                                                   \
            for (i = 0; i < n; i++)                                         \
                Z[i] = F(Z[i], &a, &b);                                     \
        } else if (D2 == NULL) {                                            \
            for (i = 0; i < n; i++) {                                       \
                Z[i] = F(Z[i], &a, &b);                                     \
                D1[i] = a;                                                  \
            }                                                               \
        } else {                                                            \
            for (i = 0; i < n; i++) {                                       \
                Z[i] = F(Z[i], &a, &b);                                     \
                D1[i] = a;                                                  \
                D2[i] = b;                                                  \
            }                                                               \
        }                                                                   \
    } while (0)

/* The loops of each activation, one function each (the vectorisation test compiles them
 * one by one). */
#define RC_ACT_FUNCS(NAME)                                                  \
    RC_INLINE void RC_NAME(NAME##_loops)(T* restrict Z, T* restrict D1,     \
                                         T* restrict D2, ptrdiff_t n)       \
    {                                                                       \
        RC_ACT_LOOPS(RC_NAME(NAME##1));                                     \
    }
RC_ACT_FUNCS(rc_tanh)
RC_ACT_FUNCS(rc_relu)
RC_ACT_FUNCS(rc_sigmoid)
RC_ACT_FUNCS(rc_softplus)
RC_ACT_FUNCS(rc_identity)

RC_CLONES RC_STATIC void RC_NAME(rc_act)(int code, T* restrict Z, T* restrict D1,
                                      T* restrict D2, ptrdiff_t n)
{
    switch (code) {
    case ACT_TANH:
        RC_NAME(rc_tanh_loops)(Z, D1, D2, n);
        break;
    case ACT_RELU:
        RC_NAME(rc_relu_loops)(Z, D1, D2, n);
        break;
    case ACT_SIGMOID:
        RC_NAME(rc_sigmoid_loops)(Z, D1, D2, n);
        break;
    case ACT_SOFTPLUS:
        RC_NAME(rc_softplus_loops)(Z, D1, D2, n);
        break;
    default:
        if (D1 != NULL)
            RC_NAME(rc_identity_loops)(Z, D1, D2, n);
    }
}

/* One block of a built-in loss, one function per loss: lv = l (double), r = s l',
 * q = s l'', l = l (all given). */
#define RC_LOSS_BLOCK_FUNC(NAME)                                                        \
    RC_INLINE void RC_NAME(NAME##_block)(ptrdiff_t nb, const T* restrict p,             \
                                         const T* restrict y, const T* restrict s,      \
                                         T* restrict r, T* restrict q, T* restrict l,   \
                                         double* restrict lv)                           \
    {                                                                                   \
        for (ptrdiff_t i = 0; i < nb; i++) {                                            \
            double d1, d2, v = NAME##1((double) p[i], (double) y[i], &d1, &d2);         \
            lv[i] = v;                                                                  \
            r[i] = (T) (s[i] * d1);                                                     \
            q[i] = (T) (s[i] * d2);                                                     \
            l[i] = (T) v;                                                               \
        }                                                                               \
    }
RC_LOSS_BLOCK_FUNC(rc_squared)
RC_LOSS_BLOCK_FUNC(rc_logistic)
RC_LOSS_BLOCK_FUNC(rc_smoothed_hinge)

RC_CLONES RC_STATIC double RC_NAME(rc_loss)(int code, ptrdiff_t n, const T* restrict p,
                                         const T* restrict y, const T* restrict s,
                                         T* restrict r, T* restrict q, T* restrict l)
{
    double lv[RC_LOSS_BLOCK], val = 0;
    T qs[RC_LOSS_BLOCK], ls[RC_LOSS_BLOCK];
    ptrdiff_t i0, i, nb;
    for (i0 = 0; i0 < n; i0 += RC_LOSS_BLOCK) {
        nb = n - i0 < RC_LOSS_BLOCK ? n - i0 : RC_LOSS_BLOCK;
        T* qb = q != NULL ? q + i0 : qs;
        T* lb = l != NULL ? l + i0 : ls;
        if (code == LOSS_SQUARED)
            RC_NAME(rc_squared_block)(nb, p + i0, y + i0, s + i0, r + i0, qb, lb, lv);
        else if (code == LOSS_LOGISTIC)
            RC_NAME(rc_logistic_block)(nb, p + i0, y + i0, s + i0, r + i0, qb, lb, lv);
        else
            RC_NAME(rc_smoothed_hinge_block)(nb, p + i0, y + i0, s + i0, r + i0, qb, lb, lv);
        for (i = 0; i < nb; i++)
            val += s[i0 + i] * lv[i];
    }
    return val;
}

RC_CLONES RC_STATIC void RC_NAME(rc_mul)(ptrdiff_t n, const T* restrict a, const T* restrict b,
                                      T* restrict out)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

RC_CLONES RC_STATIC void RC_NAME(rc_scale)(ptrdiff_t n, T* restrict g, const T* restrict d)
{
    for (ptrdiff_t i = 0; i < n; i++)
        g[i] = g[i] * d[i];
}

RC_CLONES RC_STATIC void RC_NAME(rc_rdelta)(ptrdiff_t n, T* restrict RG, T* restrict G,
                                         const T* restrict D1, const T* restrict D2,
                                         const T* restrict RZ)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        RG[i] = RG[i] * D1[i] + G[i] * D2[i] * RZ[i];
        G[i] = G[i] * D1[i];
    }
}

RC_INLINE void RC_NAME(rc_exp_inplace)(ptrdiff_t n, double* restrict e)
{
    for (ptrdiff_t i = 0; i < n; i++)
        e[i] = rc_exp(e[i]);
}

/* Softmax cross-entropy l_i = logsumexp(P_i) - P_{i, y_i} of m rows of c scores (y holds
 * the labels as floats): Q = softmax(P), R_i = s_i (Q_i - e_{y_i}), l; returns
 * sum_i s_i l_i.  e (m (c + 1) doubles of scratch): first e_ij = exp(P_ij - mx_i) in (0, 1]
 * (no overflow), mx_i = max_j P_ij, over the whole block at once; the row maxima after them,
 * e[m c + i]; then the row sums in order. */
RC_CLONES RC_STATIC double RC_NAME(rc_softmax_ce)(ptrdiff_t m, ptrdiff_t c, const T* restrict P,
                                               const T* restrict y, const T* restrict s,
                                               T* restrict Q, T* restrict R, T* restrict l,
                                               double* restrict e)
{
    ptrdiff_t i, j, yi;
    double val = 0, mx, tot, lv, pi;
    double* restrict rowmax = e + m * c;
    for (i = 0; i < m; i++) {
        mx = P[i * c];
        for (j = 1; j < c; j++)
            mx = P[i * c + j] > mx ? P[i * c + j] : mx;
        rowmax[i] = mx;
        for (j = 0; j < c; j++)
            e[i * c + j] = (double) P[i * c + j] - mx;
    }
    RC_NAME(rc_exp_inplace)(m * c, e);
    for (i = 0; i < m; i++) {
        yi = (ptrdiff_t) y[i];
        tot = 0;
        for (j = 0; j < c; j++)
            tot += e[i * c + j];
        lv = rowmax[i] + log(tot) - (double) P[i * c + yi];
        for (j = 0; j < c; j++) {
            pi = e[i * c + j] / tot;
            Q[i * c + j] = (T) pi;
            R[i * c + j] = (T) (s[i] * (pi - (j == yi ? 1.0 : 0.0)));
        }
        l[i] = (T) lv;
        val += s[i] * lv;
    }
    return val;
}

#undef RC_NAME
#undef RC_ACT_LOOPS
#undef RC_ACT_FUNCS
#undef RC_LOSS_BLOCK_FUNC
