/*
 * nn_f64.c — the test build of runtime/nn: the same layers and models in double precision (nn_f64.h), with
 * the plain-loop GEMM below in place of OpenBLAS: the readable reference the float build is checked against,
 * and precise enough for finite-difference gradient checks.
 */
#include "nn_f64.h"
#include "../rng.h"
#include "nn_internal.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

typedef double real;
#define NAME(f) f##_f64
#define MODEL   celo_model_f64
#define GEN     celo_generator_f64
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

/* the float build runs these two as one piece list over its threads; here: one after the other */
static void gemm_pair(int ta1, int tb1, int M1, int N1, int K1, const real *A1, int lda1, const real *B1, int ldb1,
                      real beta1, real *C1, int ldc1, int ta2, int tb2, int M2, int N2, int K2, const real *A2,
                      int lda2, const real *B2, int ldb2, real beta2, real *C2, int ldc2)
{
    gemm(ta1, tb1, M1, N1, K1, 1, A1, lda1, B1, ldb1, beta1, C1, ldc1);
    gemm(ta2, tb2, M2, N2, K2, 1, A2, lda2, B2, ldb2, beta2, C2, ldc2);
}

#include "layers.inc"
#include "featmap.inc"
#include "linattn.inc"
#include "mamba.inc"
#include "blocks.inc"
#include "models.inc"
#include "generate.inc"
