/*
 * gemm.h — float32 matrix products on fixed pieces.
 *
 * celo_sgemm computes C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C (row-major, as cblas_sgemm; C is not read
 * when beta == 0) through OpenBLAS, one single-threaded OpenBLAS call per piece. The pieces are a function of
 * (M, N, K) alone: the longer of M and N is cut into 1 or 2 stretches that start at multiples of 16. The
 * threads of the caller's OpenMP team take the pieces in turn (one thread runs them all in order), so a product
 * gives the same bits on 1, 2 or N threads, whatever kernels OpenBLAS picked on this CPU: OpenBLAS's own
 * threading, and the cut it makes from the thread count, never come into it.
 *
 * Called inside an active parallel region (a thread of a team that splits the work above, e.g. the halves of a
 * batch) it runs its pieces on the calling thread: the same pieces, the same bits.
 */
#ifndef CELO_GEMM_H
#define CELO_GEMM_H

#include <stdint.h>

typedef struct {
    int ta, tb; /* op(A) = A^T when ta, op(B) = B^T when tb */
    int M, N, K;
    float alpha;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float beta;
    float *C;
    int ldc;
} celo_gemm_args;

/* How many pieces a product of this shape is cut into (1 or 2): from the shape only. */
int celo_gemm_pieces(int M, int N, int K);

void celo_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc);

/* n independent products (no output overlaps another's inputs or outputs), their pieces dealt out over the team
 * together: the linear layer's backward runs dx and dW this way, one region for both. n <= 4. */
void celo_sgemm_many(const celo_gemm_args *g, int n);

#endif
