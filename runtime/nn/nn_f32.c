/*
 * nn_f32.c — the product build of runtime/nn: the layers and models of nn.h in float32, GEMMs through
 * OpenBLAS (cblas_sgemm, threaded as celo_set_threads says).
 */
#include "../nn.h"
#include "../rng.h"
#include "nn_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

typedef float real;
#define NAME(f) f
#define MODEL   celo_model
#define BATCH   celo_batch
#define vexp    celo_expf_simd
#define vtanh   celo_tanhf_simd

/* One OpenBLAS call per thread on a slice of C (rows of C, or columns when C is wide), each call single-threaded
 * (OpenBLAS runs on one thread inside an OpenMP region). Measured at the GPT's shapes (1024 x 128 x 384 and alike)
 * on 2 cores: 170-190 GFLOP/s against 90-140 for OpenBLAS's own threading, whose fine-grained synchronization
 * costs more than these small products take. Slices start at multiples of 16 rows or columns (whole vectors). */
static void gemm1(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
                  real beta, real *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static void gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
                 real beta, real *C, int ldc)
{
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt < 2 || (int64_t)M * N * K < ((int64_t)1 << 18) || (M < 32 && N < 32)) {
        gemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int by_rows = M >= N, len = by_rows ? M : N;
    if (nt > len / 16)
        nt = len / 16;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int lo = (int)((int64_t)len * t / n) / 16 * 16,
            hi = t == n - 1 ? len : (int)((int64_t)len * (t + 1) / n) / 16 * 16;
        if (hi > lo) {
            if (by_rows)
                gemm1(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + (int64_t)lo * lda, lda, B, ldb, beta,
                      C + (int64_t)lo * ldc, ldc);
            else
                gemm1(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + (int64_t)lo * ldb : B + lo, ldb, beta, C + lo,
                      ldc);
        }
    }
}

#include "layers.inc"
#include "models.inc"
