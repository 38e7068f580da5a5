/* bench/train/gemm_pieces.c — what the fixed GEMM pieces (runtime/gemm.c) cost one thread: each product of the
 * models' training steps, as one OpenBLAS call against celo_sgemm's pieces run in turn, on one thread. Median of
 * interleaved rounds of the thread's CPU time (not wall time: on a shared machine the wall clock also counts
 * the time other processes held the core); prints a markdown table. Built and run by bench/train/gemm_pieces.sh. */
#include "gemm.h"
#include "plan.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* this thread's CPU time: a shared, busy machine preempts it */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

/* the products of one half batch (split-batch runs) and of an evaluation chunk */
static const shape shapes[] = {
    {"mlp28 fc1 forward (64 x 784 -> 128)", 0, 1, 64, 128, 784},
    {"mlp28 fc1 dW (128 x 784, K 64)", 1, 0, 128, 784, 64},
    {"mlp28 eval fc1 (1000 x 784 -> 128)", 0, 1, 1000, 128, 784},
    {"gpt qkv forward (512 x 128 -> 384)", 0, 1, 512, 384, 128},
    {"gpt mlp fc forward (512 x 128 -> 512)", 0, 1, 512, 512, 128},
    {"gpt mlp proj dx (512 x 512, K 128)", 0, 0, 512, 512, 128},
    {"gpt mlp fc dW (512 x 128, K 512)", 1, 0, 512, 128, 512},
    {"muon NS X X^T (128 x 128, K 784)", 0, 1, 128, 128, 784},
};

int main(int argc, char **argv)
{
    celo_pick_blas_kernels(argv); /* the kernels celo itself runs with (re-executes once) */
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    omp_set_num_threads(1);
    printf("| product | pieces | one call (us) | pieces in turn (us) | pieces / one call |\n|---|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *q = &shapes[s];
        int lda = q->ta ? q->M : q->K, ldb = q->tb ? q->K : q->N;
        float *A = malloc(sizeof(float) * (size_t)q->M * q->K), *B = malloc(sizeof(float) * (size_t)q->K * q->N);
        float *C = malloc(sizeof(float) * (size_t)q->M * q->N);
        for (long i = 0; i < (long)q->M * q->K; i++)
            A[i] = (float)(i % 7) * 0.1f;
        for (long i = 0; i < (long)q->K * q->N; i++)
            B[i] = (float)(i % 5) * 0.1f;
        double tw[64], tp[64], flops = 2.0 * q->M * q->N * q->K;
        int reps = (int)(2e8 / flops) + 1;
        for (int r = 0; r < rounds && r < 64; r++) {
            double t0 = now_s();
            for (int k = 0; k < reps; k++)
                cblas_sgemm(CblasRowMajor, q->ta ? CblasTrans : CblasNoTrans, q->tb ? CblasTrans : CblasNoTrans, q->M,
                            q->N, q->K, 1.0f, A, lda, B, ldb, 0.0f, C, q->N);
            double t1 = now_s();
            for (int k = 0; k < reps; k++)
                celo_sgemm(q->ta, q->tb, q->M, q->N, q->K, 1.0f, A, lda, B, ldb, 0.0f, C, q->N);
            double t2 = now_s();
            tw[r] = (t1 - t0) / reps;
            tp[r] = (t2 - t1) / reps;
        }
        int n = rounds < 64 ? rounds : 64;
        qsort(tw, (size_t)n, sizeof *tw, cmp);
        qsort(tp, (size_t)n, sizeof *tp, cmp);
        printf("| %s | %d | %.1f | %.1f | %.3f |\n", q->what, celo_gemm_pieces(q->M, q->N, q->K), 1e6 * tw[n / 2],
               1e6 * tp[n / 2], tp[n / 2] / tw[n / 2]);
        free(A), free(B), free(C);
    }
    return 0;
}
