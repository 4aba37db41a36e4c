/* rc_math.h: branch-free elementwise maths that gcc vectorises (-O3).
 *
 * Why: glibc's tanh is scalar (numpy's np.tanh took 0.49 s for the 25.6 M activations of
 * one pass at n = 200000, widths (64, 64)); these loops run at SIMD width.  Accuracy is a
 * few ulp in double.  float data take rc_tanhf (computed in float, twice the SIMD lanes and
 * no double-precision division); sigmoid and exp of float data are computed in double and
 * rounded once.
 *
 * rc_exp: x = k ln2 + r, |r| <= ln2/2, exp(r) by its degree-13 Taylor polynomial (truncation
 * below 2e-16 relative), 2^k built in the exponent bits.  The input is clamped to
 * [-708, 709] so that 2^k stays a normal number: callers never pass more than that.
 * rc_tanh: sign(x) (-e / (2 + e)) with e = expm1(-2|x|) = 2^k expm1(r) + (2^k - 1), the
 * same reduction and polynomial (|x| clamped at 20, past which tanh(x) rounds to 1).  For
 * |x| < 0.17, k = 0 and e = expm1(r) to a few ulp, so small inputs keep their relative
 * accuracy without a second polynomial (one fewer per element than exp-based forms).
 * rc_tanhf: the (13, 6) odd/even rational minimax fit of tanh on [-7.9053, 7.9053] used by
 * Eigen and XLA for float (input clamped there; x itself below |x| < 4e-4), evaluated in
 * float: at most 3e-7 absolute and relative error against tanh (tests/test_losses.py checks
 * it on 2e6 points), against 6e-8 for a correctly rounded float.
 */
#ifndef RC_MATH_H
#define RC_MATH_H
#include <stdint.h>
#include <string.h>
#include <math.h>

/* ln 2 = RC_LN2_HI + RC_LN2_LO: the head has trailing zero bits, so k RC_LN2_HI is exact
 * for the integers k of rc_reduce. */
#define RC_LN2_HI 6.93147180369123816490e-01
#define RC_LN2_LO 1.90821492927058770002e-10

/* c[0] x^(n-1) + c[1] x^(n-2) + ... + c[n-1] by Horner's rule, in double and in float.  The
 * callers pass a constant n and table: gcc unrolls the loop, and their loops still
 * vectorise (tests/test_vectorisation.py). */
#define RC_HORNER(NAME, T)                                                  \
    static inline T NAME(T x, const T* c, int n)                            \
    {                                                                       \
        T p = c[0];                                                         \
        for (int i = 1; i < n; i++)                                         \
            p = p * x + c[i];                                               \
        return p;                                                           \
    }
RC_HORNER(rc_horner, double)
RC_HORNER(rc_hornerf, float)
#undef RC_HORNER

/* x = k ln2 + r with |r| <= ln2/2: returns 2^k (built in the exponent bits; k within the
 * normal range for the callers' |x| <= 709) and stores r. */
static inline double rc_reduce(double x, double* r)
{
    const double log2e = 1.4426950408889634074;
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: rounds to an integer */
    double t = x * log2e + shifter;
    double k = t - shifter;
    *r = (x - k * RC_LN2_HI) - k * RC_LN2_LO;
    int64_t ti;
    memcpy(&ti, &t, sizeof ti);
    int64_t bits = (ti - (int64_t)0x4338000000000000LL + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

/* (exp(r) - 1 - r) / r^2 = sum_{j >= 2} r^(j-2) / j!, to degree 13 in exp. */
static inline double rc_expm1_tail(double r)
{
    static const double c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                               1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
                               1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5};
    return rc_horner(r, c, 12);
}

static inline double rc_exp(double x)
{
    double r;
    x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    double scale = rc_reduce(x, &r);
    return (1.0 + (r + r * r * rc_expm1_tail(r))) * scale;
}

static inline double rc_tanh(double x)
{
    double r, a = fabs(x);
    double scale = rc_reduce(-2.0 * (a < 20.0 ? a : 20.0), &r);
    double em = scale * (r + r * r * rc_expm1_tail(r)) + (scale - 1.0);
    double h = -em / (2.0 + em);
    return x < 0.0 ? -h : h;
}

static inline float rc_tanhf(float x)
{
    static const float num[] = {-2.76076847742355e-16f, 2.00018790482477e-13f,
                                -8.60467152213735e-11f, 5.12229709037114e-08f,
                                1.48572235717979e-05f, 6.37261928875436e-04f,
                                4.89352455891786e-03f};
    static const float den[] = {1.19825839466702e-06f, 1.18534705686654e-04f,
                                2.26843463243900e-03f, 4.89352518554385e-03f};
    const float clamp = 7.90531110763549805f;
    float c = x < -clamp ? -clamp : (x > clamp ? clamp : x);
    float x2 = c * c;
    float p = rc_hornerf(x2, num, 7);
    float q = rc_hornerf(x2, den, 4);
    return (x < 4e-4f && x > -4e-4f) ? x : c * p / q;
}

/* Logistic sigmoid 1 / (1 + exp(-x)), stable at both ends (exp of -|x| only). */
static inline double rc_sigmoid(double x)
{
    double e = rc_exp(-fabs(x));
    double s = 1.0 / (1.0 + e);
    return x >= 0.0 ? s : e * s;
}

#endif
