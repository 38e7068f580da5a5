/*
 * nn_f32.c — the product build of runtime/nn: the layers and models of nn.h in float32, GEMMs through
 * OpenBLAS (cblas_sgemm, threaded as celo_set_threads says).
 */
#include "../nn.h"
#include "../rng.h"
#include "nn_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

typedef float real;
#define NAME(f) f
#define MODEL   celo_model
#define BATCH   celo_batch

static void gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
                 real beta, real *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

#include "layers.inc"
#include "models.inc"
