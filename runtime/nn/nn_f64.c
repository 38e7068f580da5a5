/*
 * nn_f64.c — the test build of runtime/nn: the same layers and models in double precision (nn_f64.h), with
 * the plain-loop GEMM below in place of OpenBLAS: the readable reference the float build is checked against,
 * and precise enough for finite-difference gradient checks.
 */
#include "nn_f64.h"
#include "../rng.h"
#include "nn_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

typedef double real;
#define NAME(f) f##_f64
#define MODEL   celo_model_f64
#define BATCH   celo_batch_f64
#define vexp    exp
#define vtanh   fast_tanh /* layers.inc */

/* C[M, N] = alpha op(A) op(B) + beta C, row-major; op(A)[i, k] = ta ? A[k lda + i] : A[i lda + k] */
static void gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
                 real beta, real *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            real s = 0;
            for (int k = 0; k < K; k++)
                s += (ta ? A[(int64_t)k * lda + i] : A[(int64_t)i * lda + k]) *
                     (tb ? B[(int64_t)j * ldb + k] : B[(int64_t)k * ldb + j]);
            real *c = &C[(int64_t)i * ldc + j];
            *c = beta == 0 ? alpha * s : alpha * s + beta * *c;
        }
}

#include "layers.inc"
#include "models.inc"
