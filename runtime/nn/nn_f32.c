/*
 * nn_f32.c — the product build of runtime/nn: the layers and models of nn.h in float32, GEMMs through
 * OpenBLAS on fixed pieces (runtime/gemm.h).
 */
#include "../nn.h"
#include "../rng.h"
#include "nn_internal.h"
#include "../gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

typedef float real;
#define NAME(f) f
#define MODEL   celo_model
#define GEN     celo_generator
#define BATCH   celo_batch
#define vexp    celo_expf_simd
#define vtanh   celo_tanhf_simd

/* GEMMs on fixed pieces (runtime/gemm.h): the same bits on any number of threads. Measured at the GPT's shapes
 * (1024 x 128 x 384 and alike) on 2 cores, one single-threaded OpenBLAS call per piece ran at 170-190 GFLOP/s
 * against 90-140 for OpenBLAS's own threading, whose fine-grained synchronization costs more than these small
 * products take. */
#define gemm celo_sgemm

/* dx = op1 and dw = op2 of a linear layer's backward: independent products, their pieces over one team */
static void gemm_pair(int ta1, int tb1, int M1, int N1, int K1, const real *A1, int lda1, const real *B1, int ldb1,
                      real beta1, real *C1, int ldc1, int ta2, int tb2, int M2, int N2, int K2, const real *A2,
                      int lda2, const real *B2, int ldb2, real beta2, real *C2, int ldc2)
{
    celo_gemm_args g[2] = {{ta1, tb1, M1, N1, K1, 1, A1, lda1, B1, ldb1, beta1, C1, ldc1},
                           {ta2, tb2, M2, N2, K2, 1, A2, lda2, B2, ldb2, beta2, C2, ldc2}};
    celo_sgemm_many(g, 2);
}

#include "layers.inc"
#include "featmap.inc"
#include "linattn.inc"
#include "mamba.inc"
#include "blocks.inc"
#include "models.inc"
#include "generate.inc"
