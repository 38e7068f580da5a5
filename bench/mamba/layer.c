/* bench/mamba/layer.c — forward + backward of one Mamba mixer (runtime/nn/mamba.inc) in float32: the chunked
 * forward (training) against the sequential scan (celo_nn_mamba_forward_naive), each followed by the same
 * backward pass, on 1 and 2 threads. B 4, C 128, 4 heads, T 256 and 1024, expand 1 and 2, hedgehog with the
 * normalizer and identity without, chunk 64. Wall time, the median of 5 rounds after one untimed round, each round
 * running every column in turn (so the load of a shared machine hits them alike); prints a markdown table. Built and
 * run by bench/mamba/layer.sh. As every celo program, it first sets the thread runtime's environment
 * (celo_pick_blas_kernels, runtime/blas_env.c: idle OpenMP threads sleep rather than spin). */
#include "celort.h"
#include "nn.h"
#include "plan.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the median of ROUNDS values (sorts them) */
static double median(double *t)
{
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double v = t[j];
            t[j] = t[j - 1], t[j - 1] = v;
        }
    return t[ROUNDS / 2];
}

static float *randn(celo_rng *r, int64_t n, float scale, float shift)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = shift + scale * (float)celo_rng_normal(r);
    return x;
}

int main(int argc, char **argv)
{
    (void)argc;
    celo_pick_blas_kernels(argv);
    static const int Ts[2] = {256, 1024}, Es[2] = {1, 2};
    static const struct {
        celo_feature_map f;
        int norm;
        const char *name;
    } maps[2] = {{CELO_FEATURE_HEDGEHOG, 1, "hedgehog + normalize"}, {CELO_FEATURE_IDENTITY, 0, "identity"}};
    celo_rng rng;
    celo_rng_init(&rng, 7, 0);
    printf("| map | T | expand | threads | chunked fwd+bwd ms | naive fwd+bwd ms | chunked fwd ms | naive fwd ms |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < 2; m++)
        for (int ti = 0; ti < 2; ti++)
            for (int ei = 0; ei < 2; ei++) {
                int B = 4, C = 128, nh = 4, T = Ts[ti], E = Es[ei], N = C / nh, K = 4, Di = E * C;
                celo_mamba_dims d = {B, T, C, nh, 0, 0, E, maps[m].f, maps[m].norm, 0};
                int nt = celo_mamba_ntensors(d.feature), W = 2 * Di + 2 * nh * N + nh, Cx = Di + 2 * nh * N;
                int64_t sz[12] = {(int64_t)W * C, W, (int64_t)Cx * K, Cx, nh, nh, (int64_t)N * N, (int64_t)N * N};
                sz[nt - 2] = (int64_t)C * Di, sz[nt - 1] = C;
                float *w[12], *dw[12];
                for (int i = 0; i < nt; i++) {
                    w[i] = randn(&rng, sz[i], 0.1f, 0);
                    dw[i] = calloc((size_t)sz[i], sizeof(float));
                }
                for (int h = 0; h < nh; h++)
                    w[1][W - nh + h] = -0.5f, w[5][h] = 1;
                int64_t ny = (int64_t)B * T * C, ns = celo_mamba_saved_size(&d), nw = celo_mamba_work_size(&d);
                float *x = randn(&rng, ny, 1, 0), *dy = randn(&rng, ny, 1, 0), *y = malloc((size_t)ny * 4);
                float *dx = calloc((size_t)ny, 4), *s = calloc((size_t)ns, 4), *ds = calloc((size_t)ns, 4);
                float *wk = calloc((size_t)nw, 4);
                double t[2][2][2][ROUNDS];        /* [threads - 1][naive][fwd only / fwd+bwd][round] */
                for (int r = -1; r < ROUNDS; r++) /* rounds outermost: the machine's load hits all columns alike */
                    for (int th = 1; th <= 2; th++) {
                        celo_set_threads(th);
                        for (int nv = 0; nv < 2; nv++) {
                            double t0 = now_s();
                            if (nv)
                                celo_nn_mamba_forward_naive(y, s, wk, x, (const float *const *)w, &d);
                            else
                                celo_nn_mamba_forward(y, s, wk, x, (const float *const *)w, &d);
                            double t1 = now_s();
                            celo_nn_mamba_backward(dx, dw, ds, wk, dy, x, s, (const float *const *)w, &d);
                            double t2 = now_s();
                            if (r >= 0)
                                t[th - 1][nv][0][r] = 1e3 * (t1 - t0), t[th - 1][nv][1][r] = 1e3 * (t2 - t0);
                        }
                    }
                for (int th = 1; th <= 2; th++) {
                    double(*u)[2][ROUNDS] = t[th - 1];
                    printf("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", maps[m].name, T, E, th,
                           median(u[0][1]), median(u[1][1]), median(u[0][0]), median(u[1][0]));
                }
                fflush(stdout);
                for (int i = 0; i < nt; i++)
                    free(w[i]), free(dw[i]);
                free(x), free(dy), free(y), free(dx), free(s), free(ds), free(wk);
            }
    return 0;
}
