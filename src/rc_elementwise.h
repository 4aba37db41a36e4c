/* rc_elementwise.h: the kernels' per-element and per-sample loops, written so that gcc
 * vectorises them at every x86-64 level (x86-64-v2 SSE4.2, v3 AVX2 + FMA, v4 AVX-512).
 *
 * Why C and not Cython: a loop that stores through a pointer tested inside the loop
 * (`if (D1 != NULL) D1[i] = ...`) needs masked stores, which only AVX-512 has, and buffers
 * that may alias need run-time checks; gcc then leaves the loop scalar below AVX-512.  Here
 * every loop has one shape per pattern of NULL buffers (loop versioning), its pointers are
 * `restrict`, and its branches are selects.  tests/test_vectorisation.py compiles this file
 * for v2, v3 and v4 and fails when one of the loops it names stops vectorising.
 *
 * Run-time dispatch.  With RC_DISPATCH defined (the portable build: no -march=native), each
 * function below is compiled three times, for x86-64-v4, x86-64-v3 and the baseline, and
 * the loader picks the best one the CPU runs (gcc's target_clones, an ifunc).
 * rc_dispatch_level() says which level that is; rc_build_level() the level the rest of the
 * code was compiled for.
 *
 * The codes of the built-in activations and losses are defined here, once (the Cython
 * modules read them from this header and export them to Python).
 *
 * Functions (T = double with suffix _f64, T = float with _f32; rc_elementwise_impl.h):
 *   rc_act_*(code, Z, D1, D2, n)       Z <- act(Z); act', act'' into D1, D2 unless NULL
 *                                      (D2 is written only with D1)
 *   rc_loss_*(code, n, p, y, s, r, q, l)  r = s l'(p; y), q = s l'', l = l(p; y) (q, l may
 *                                      be NULL); returns sum_i s_i l_i in double, in order
 *   rc_mul_*(n, a, b, out)             out = a * b
 *   rc_scale_*(n, g, d)                g <- g * d
 *   rc_rdelta_*(n, RG, G, D1, D2, RZ)  RG <- RG D1 + G D2 RZ, G <- G D1 (R-back-propagation)
 *   rc_softmax_ce_*(m, c, P, y, s, Q, R, l, e)  softmax cross-entropy of m rows of c scores
 *                                      (e: scratch of m * (c + 1) doubles); returns
 *                                      sum s_i l_i
 */
#ifndef RC_ELEMENTWISE_H
#define RC_ELEMENTWISE_H
#include <stddef.h>
#include <math.h>
#include "rc_math.h"

enum {
    ACT_IDENTITY = 0,
    ACT_TANH = 1,
    ACT_RELU = 2,
    ACT_SIGMOID = 3,
    ACT_SOFTPLUS = 4
};

enum {
    LOSS_EXTERNAL = -1,
    LOSS_SQUARED = 0,
    LOSS_LOGISTIC = 1,
    LOSS_SMOOTHED_HINGE = 2
};

#if defined(RC_DISPATCH) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) \
    && __GNUC__ >= 12
#define RC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define RC_CLONED 1
#else
#define RC_CLONES
#define RC_CLONED 0
#endif

#define RC_INLINE static inline __attribute__((always_inline))
#define RC_STATIC static __attribute__((unused))

/* The x86-64 level this translation unit was compiled for (0: not x86-64). */
static inline int rc_build_level(void)
{
#if !defined(__x86_64__)
    return 0;
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) \
    && defined(__AVX512DQ__) && defined(__AVX512VL__)
    return 4;
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
    return 3;
#elif defined(__SSE4_2__) && defined(__POPCNT__)
    return 2;
#else
    return 1;
#endif
}

/* The level whose code the elementwise loops run: the clone the loader picked (dispatching
 * builds, same tests as gcc's resolver) or the build level. */
static inline int rc_dispatch_level(void)
{
#if RC_CLONED
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return 4;
    if (__builtin_cpu_supports("x86-64-v3"))
        return 3;
#endif
    return rc_build_level();
}

static inline int rc_dispatching(void) { return RC_CLONED; }

/* log1p(x) for 0 <= x <= 1, branch-free: 2 atanh(s) with s = x / (2 + x), or
 * ln 2 + 2 atanh(s) with s = (x - 1) / (x + 3) for x > sqrt(2) - 1, so |s| <= 0.1716 and
 * the odd series of atanh to s^23 is below 1e-17 relative.  A few ulp. */
RC_INLINE double rc_log1p01(double x)
{
    static const double c[] = {1.0 / 23, 1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13,
                               1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3};
    int big = x > 0.41421356237309503;
    double s = (big ? x - 1.0 : x) / (big ? x + 3.0 : x + 2.0);
    double s2 = s * s;
    double tail = 2.0 * s * s2 * rc_horner(s2, c, 11);
    return big ? RC_LN2_HI + (2.0 * s + (tail + RC_LN2_LO)) : 2.0 * s + tail;
}

/* exp(-a) for a >= 0, exactly 0 past 708 (where rc_exp clamps). */
RC_INLINE double rc_exp_neg(double a)
{
    double e = rc_exp(-a);
    return a > 708.0 ? 0.0 : e;
}

/* One sample of each built-in loss: returns l(p; y), stores l' and l'' (branch-free). */
RC_INLINE double rc_squared1(double p, double y, double* d1, double* d2)
{
    *d1 = p - y;
    *d2 = 1.0;
    return 0.5 * (p - y) * (p - y);
}

/* log(1 + exp(-z)) = max(-z, 0) + log1p(exp(-|z|)): exp never overflows. */
RC_INLINE double rc_logistic1(double p, double y, double* d1, double* d2)
{
    double z = y * p;
    double e = rc_exp_neg(fabs(z));
    double sig = 1.0 / (1.0 + e);          /* sigmoid(|z|) */
    *d2 = e * sig * sig;                    /* sigmoid(z) sigmoid(-z) */
    *d1 = z >= 0.0 ? -y * e * sig : -y * sig;
    return (z >= 0.0 ? 0.0 : -z) + rc_log1p01(e);
}

/* Smoothed hinge in t = 1 - y p: the C^2 cubic smoothing of max(0, t) on |t| < h = 1/2
 * (resnet_core/losses.py). */
RC_INLINE double rc_smoothed_hinge1(double p, double y, double* d1, double* d2)
{
    const double h = 0.5, hh = h * h;
    double t = 1.0 - y * p;
    double s = t + h;
    double u = 2 * h - s;
    int lo = s <= h;
    double g1 = lo ? -y * s * s / (2 * hh) : -y * (1.0 - u * u / (2 * hh));
    double g2 = lo ? s / hh : u / hh;
    double v = lo ? s * s * s / (6 * hh) : s - h + u * u * u / (6 * hh);
    int zero = t <= -h, lin = t >= h;
    *d1 = zero ? 0.0 : (lin ? -y : g1);
    *d2 = (zero || lin) ? 0.0 : g2;
    return zero ? 0.0 : (lin ? t : v);
}

/* Samples per block of the loss loops (their values are summed, in order, per block). */
#define RC_LOSS_BLOCK 256

#define RC_CAT_(a, b) a##b
#define RC_CAT(a, b) RC_CAT_(a, b)

#define T double
#define RC_SFX _f64
#include "rc_elementwise_impl.h"
#undef T
#undef RC_SFX

#define T float
#define RC_SFX _f32
#include "rc_elementwise_impl.h"
#undef T
#undef RC_SFX

#endif
