/*
 * test_attention_step.c — generation with a key/value cache (nn.h celo_nn_attention_step) against the full causal
 * attention forward (celo_nn_attention_forward) on the same input and weights: steps at positions 0 .. T-1 give
 * the rows of the full forward's y, in float32 (tolerance 1e-5 relative to max |y|: the two sum the same terms in
 * different orders, GEMMs against plain loops) and float64 (1e-12), for one and two threads (the step's results
 * must not depend on the thread count: compared bit for bit), with a cache longer than needed (cap > T) and one
 * sized exactly (cap = T).
 */
#include "nn.h"
#include "nn/nn_f64.h"

#include "check.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 13, C = 16, NH = 4 };

static void fill(double *x, int n, unsigned *seed, double scale)
{
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = scale * ((double)((*seed >> 8) & 0xffff) / 65536.0 - 0.5);
    }
}

/* max |a - b| / max |b| */
static double rel_err_f(const float *a, const float *b, int n)
{
    double m = 0, e = 0;
    for (int i = 0; i < n; i++) {
        m = fmax(m, fabs((double)b[i]));
        e = fmax(e, fabs((double)a[i] - (double)b[i]));
    }
    return e / (m > 0 ? m : 1);
}

static double rel_err_d(const double *a, const double *b, int n)
{
    double m = 0, e = 0;
    for (int i = 0; i < n; i++) {
        m = fmax(m, fabs(b[i]));
        e = fmax(e, fabs(a[i] - b[i]));
    }
    return e / (m > 0 ? m : 1);
}

int main(void)
{
    static double xd[B * T * C], wqkv[3 * C * C], bqkv[3 * C], wo[C * C], bo[C];
    unsigned seed = 7;
    fill(xd, B * T * C, &seed, 2.0);
    fill(wqkv, 3 * C * C, &seed, 1.0);
    fill(bqkv, 3 * C, &seed, 0.2);
    fill(wo, C * C, &seed, 0.5);
    fill(bo, C, &seed, 0.2);
    static float xf[B * T * C], wqkvf[3 * C * C], bqkvf[3 * C], wof[C * C], bof[C];
    for (int i = 0; i < B * T * C; i++)
        xf[i] = (float)xd[i];
    for (int i = 0; i < 3 * C * C; i++)
        wqkvf[i] = (float)wqkv[i];
    for (int i = 0; i < 3 * C; i++)
        bqkvf[i] = (float)bqkv[i];
    for (int i = 0; i < C * C; i++)
        wof[i] = (float)wo[i];
    for (int i = 0; i < C; i++)
        bof[i] = (float)bo[i];

    /* the full forward */
    static float yf[B * T * C], qkvf[B * T * 3 * C], attf[B * NH * T * T], outf[B * T * C];
    static double yd[B * T * C], qkvd[B * T * 3 * C], attd[B * NH * T * T], outd[B * T * C];
    celo_nn_attention_forward(yf, qkvf, attf, outf, xf, wqkvf, bqkvf, wof, bof, B, T, C, NH);
    celo_nn_attention_forward_f64(yd, qkvd, attd, outd, xd, wqkv, bqkv, wo, bo, B, T, C, NH);

    static float ys1[B * T * C];
    int caps[2] = {T, T + 5};
    for (int ci = 0; ci < 2; ci++) {
        int cap = caps[ci];
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            float *kc = calloc((size_t)B * C * cap, 4), *vc = calloc((size_t)B * C * cap, 4);
            float *wk = calloc((size_t)celo_attention_step_work_size(B, C, NH, cap), 4);
            double *kcd = calloc((size_t)B * C * cap, 8), *vcd = calloc((size_t)B * C * cap, 8);
            double *wkd = calloc((size_t)celo_attention_step_work_size(B, C, NH, cap), 8);
            static float ys[B * T * C];
            static double ysd[B * T * C];
            for (int t = 0; t < T; t++) {
                float xt[B * C], yt[B * C];
                double xtd[B * C], ytd[B * C];
                for (int b = 0; b < B; b++) {
                    memcpy(xt + b * C, xf + (b * T + t) * C, sizeof(float) * C);
                    memcpy(xtd + b * C, xd + (b * T + t) * C, sizeof(double) * C);
                }
                celo_nn_attention_step(yt, kc, vc, wk, xt, wqkvf, bqkvf, wof, bof, B, C, NH, t, cap);
                celo_nn_attention_step_f64(ytd, kcd, vcd, wkd, xtd, wqkv, bqkv, wo, bo, B, C, NH, t, cap);
                for (int b = 0; b < B; b++) {
                    memcpy(ys + (b * T + t) * C, yt + b * C, sizeof(float) * C);
                    memcpy(ysd + (b * T + t) * C, ytd + b * C, sizeof(double) * C);
                }
            }
            double e32 = rel_err_f(ys, yf, B * T * C), e64 = rel_err_d(ysd, yd, B * T * C);
            CHECK(e32 < 1e-5, "cap %d, %d thread(s): float32 steps = full forward (rel err %.2e)", cap, threads, e32);
            CHECK(e64 < 1e-12, "cap %d, %d thread(s): float64 steps = full forward (rel err %.2e)", cap, threads, e64);
            if (threads == 1)
                memcpy(ys1, ys, sizeof ys);
            else
                CHECK(!memcmp(ys1, ys, sizeof ys), "cap %d: 2 threads give 1 thread's bits", cap);
            free(kc), free(vc), free(wk), free(kcd), free(vcd), free(wkd);
        }
    }
    /* a long cache, so that the heads split over threads (B n C >= PAR_MIN), bit for bit against one thread */
    {
        int cap = 2048, pos = cap - 1;
        float *kc = malloc((size_t)B * C * cap * 4), *vc = malloc((size_t)B * C * cap * 4);
        float *wk = calloc((size_t)celo_attention_step_work_size(B, C, NH, cap), 4);
        double *tmp = malloc((size_t)B * C * cap * 8);
        fill(tmp, B * C * cap, &seed, 2.0);
        for (int i = 0; i < B * C * cap; i++)
            kc[i] = (float)tmp[i];
        fill(tmp, B * C * cap, &seed, 2.0);
        for (int i = 0; i < B * C * cap; i++)
            vc[i] = (float)tmp[i];
        float y1[B * C], y2[B * C];
        omp_set_num_threads(1);
        celo_nn_attention_step(y1, kc, vc, wk, xf, wqkvf, bqkvf, wof, bof, B, C, NH, pos, cap);
        omp_set_num_threads(2);
        celo_nn_attention_step(y2, kc, vc, wk, xf, wqkvf, bqkvf, wof, bof, B, C, NH, pos, cap);
        CHECK(!memcmp(y1, y2, sizeof y1), "a cache of %d: 2 threads give 1 thread's bits", cap);
        free(kc), free(vc), free(wk), free(tmp);
    }
    return fails != 0;
}
