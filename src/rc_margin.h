/* rc_margin.h: the row loops of resnet_core._margin_pass (one chunk of the linear
 * baseline's Gram pass), for float64 (suffix _f64) and float32 (_f32) rows, every sum in
 * double.
 *
 *   rc_margin_dots_*(m, d, X, w, p)     p_i = x_i . w
 *   rc_margin_abs_*(m, d, X, wabs, a)   a_i = |x_i| . wabs
 *   rc_margin_sq_*(m, d, X, sq)         sq_i = ||x_i||^2
 *   rc_margin_axpy_*(m, d, X, r, g)     g += sum_i r_i x_i
 *   rc_margin_rows_*_to_*(m, d, X, q, Z)  row i of Z = sqrt(max(q_i, 0)) x_i, in Z's type
 *                                       (the rows whose Gram matrix Z^T Z is the Hessian)
 *
 * Four rows at a time: four independent sums (a BLAS gemv on blocks of 128 rows ran at half
 * this speed here), vectorised by gcc (`omp simd`; the order of a sum's terms is free:
 * the error bounds that read p assume none).  Like rc_elementwise.h, each function is
 * compiled for x86-64-v4, v3 and the baseline when RC_DISPATCH is defined (the portable
 * build), so AVX2 machines run vector code too. */
#ifndef RC_MARGIN_H
#define RC_MARGIN_H
#include "rc_elementwise.h"

/* Rows i .. i + 3 of X: x0, x1, x2, x3. */
#define RC_FOUR_ROWS(T)                                                                      \
    const T* restrict x0 = X + i * d;                                                       \
    const T* restrict x1 = x0 + d;                                                          \
    const T* restrict x2 = x1 + d;                                                          \
    const T* restrict x3 = x2 + d;

#define RC_MARGIN_ROWS(T, SFX, NAME, TERM)                                                   \
RC_CLONES RC_STATIC void NAME##SFX(ptrdiff_t m, ptrdiff_t d, const T* restrict X,           \
                                   const double* restrict v, double* restrict out)          \
{                                                                                           \
    ptrdiff_t i = 0;                                                                        \
    for (; i + 4 <= m; i += 4) {                                                            \
        RC_FOUR_ROWS(T)                                                                     \
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                              \
        _Pragma("omp simd reduction(+:a0,a1,a2,a3)")                                        \
        for (ptrdiff_t j = 0; j < d; j++) {                                                 \
            a0 += TERM(x0[j], j);                                                           \
            a1 += TERM(x1[j], j);                                                           \
            a2 += TERM(x2[j], j);                                                           \
            a3 += TERM(x3[j], j);                                                           \
        }                                                                                   \
        out[i] = a0; out[i + 1] = a1; out[i + 2] = a2; out[i + 3] = a3;                     \
    }                                                                                       \
    for (; i < m; i++) {                                                                    \
        const T* restrict x0 = X + i * d;                                                   \
        double a0 = 0;                                                                      \
        _Pragma("omp simd reduction(+:a0)")                                                 \
        for (ptrdiff_t j = 0; j < d; j++)                                                   \
            a0 += TERM(x0[j], j);                                                           \
        out[i] = a0;                                                                        \
    }                                                                                       \
}

#define RC_DOT_TERM(x, j) ((double) (x) * v[j])
#define RC_ABS_TERM(x, j) (fabs((double) (x)) * v[j])
#define RC_SQ_TERM(x, j) ((double) (x) * (double) (x))

#define RC_MARGIN_AXPY(T, SFX)                                                               \
RC_CLONES RC_STATIC void rc_margin_axpy##SFX(ptrdiff_t m, ptrdiff_t d, const T* restrict X, \
                                             const double* restrict r, double* restrict g)  \
{                                                                                           \
    ptrdiff_t i = 0;                                                                        \
    for (; i + 4 <= m; i += 4) {                                                            \
        RC_FOUR_ROWS(T)                                                                     \
        double r0 = r[i], r1 = r[i + 1], r2 = r[i + 2], r3 = r[i + 3];                      \
        _Pragma("omp simd")                                                                 \
        for (ptrdiff_t j = 0; j < d; j++)                                                   \
            g[j] += ((r0 * (double) x0[j] + r1 * (double) x1[j])                            \
                     + (r2 * (double) x2[j] + r3 * (double) x3[j]));                        \
    }                                                                                       \
    for (; i < m; i++) {                                                                    \
        const T* restrict x0 = X + i * d;                                                   \
        double r0 = r[i];                                                                   \
        _Pragma("omp simd")                                                                 \
        for (ptrdiff_t j = 0; j < d; j++)                                                   \
            g[j] += r0 * (double) x0[j];                                                    \
    }                                                                                       \
}

#define RC_MARGIN_SCALED(T, SFX, U, USFX)                                                    \
RC_CLONES RC_STATIC void rc_margin_rows##SFX##_to##USFX(ptrdiff_t m, ptrdiff_t d,            \
                                                       const T* restrict X,                 \
                                                       const double* restrict q,            \
                                                       U* restrict Z)                       \
{                                                                                           \
    for (ptrdiff_t i = 0; i < m; i++) {                                                     \
        double t = q[i] > 0 ? sqrt(q[i]) : 0.0;                                             \
        const T* restrict x = X + i * d;                                                    \
        U* restrict z = Z + i * d;                                                          \
        for (ptrdiff_t j = 0; j < d; j++)                                                   \
            z[j] = (U) (t * (double) x[j]);                                                 \
    }                                                                                       \
}

RC_MARGIN_SCALED(double, _f64, double, _f64)
RC_MARGIN_SCALED(double, _f64, float, _f32)
RC_MARGIN_SCALED(float, _f32, double, _f64)
RC_MARGIN_SCALED(float, _f32, float, _f32)
RC_MARGIN_ROWS(double, _f64, rc_margin_dots, RC_DOT_TERM)
RC_MARGIN_ROWS(float, _f32, rc_margin_dots, RC_DOT_TERM)
RC_MARGIN_ROWS(double, _f64, rc_margin_abs, RC_ABS_TERM)
RC_MARGIN_ROWS(float, _f32, rc_margin_abs, RC_ABS_TERM)
RC_MARGIN_ROWS(double, _f64, rc_margin_sq, RC_SQ_TERM)
RC_MARGIN_ROWS(float, _f32, rc_margin_sq, RC_SQ_TERM)
RC_MARGIN_AXPY(double, _f64)
RC_MARGIN_AXPY(float, _f32)

#endif
