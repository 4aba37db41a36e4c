# BLAS for row-major arrays, through scipy.linalg.cython_blas (no link-time BLAS of our own).
#
# Each wrapper states the row-major operation it computes and maps it onto the
# column-major Fortran call: a row-major (m x n) array with leading dimension ld is, to
# BLAS, the column-major (n x m) transpose.  Zero-sized products are handled here so that
# callers never pass BLAS a leading dimension of 0.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm, dgemv, sgemv, dsyrk, ssyrk


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                         const floating* A, int lda, const floating* B, int ldb,
                         floating beta, floating* C, int ldc) noexcept nogil:
    """C (m x n) = alpha op(A) op(B) + beta C, all row-major; op(A) is m x k."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = beta * C[i * ldc + j] if beta != 0 else 0
        return
    if floating is double:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)
    else:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)


cdef inline void gemv_rm(bint trans, int m, int n, floating alpha, const floating* A, int lda,
                         const floating* x, floating beta, floating* y) noexcept nogil:
    """y = alpha op(A) x + beta y for row-major A (m x n): op(A) = A (y has m entries)
    or A^T (trans, y has n entries)."""
    cdef char t = b'N' if trans else b'T'
    cdef int one = 1, i, ylen = n if trans else m
    if ylen <= 0:
        return
    if m <= 0 or n <= 0:
        for i in range(ylen):
            y[i] = beta * y[i] if beta != 0 else 0
        return
    if floating is double:
        dgemv(&t, &n, &m, &alpha, <double*> A, &lda, <double*> x, &one, &beta, y, &one)
    else:
        sgemv(&t, &n, &m, &alpha, <float*> A, &lda, <float*> x, &one, &beta, y, &one)


cdef inline void syrk_rm(int m, int n, floating alpha, const floating* A, int lda,
                         floating beta, floating* C, int ldc) noexcept nogil:
    """C (n x n) = alpha A^T A + beta C for row-major A (m x n); only the upper triangle of
    the row-major C is written (symmetrise afterwards)."""
    cdef char uplo = b'L'
    cdef char t = b'N'
    if m <= 0 or n <= 0:
        return
    if floating is double:
        dsyrk(&uplo, &t, &n, &m, &alpha, <double*> A, &lda, &beta, C, &ldc)
    else:
        ssyrk(&uplo, &t, &n, &m, &alpha, <float*> A, &lda, &beta, C, &ldc)
