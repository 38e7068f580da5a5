/*
 * test_nn_threads.c — the threaded paths of runtime/nn, at sizes where they run (layers.inc splits loops of at
 * least PAR_MIN = 32768 elements, nn_f32.c splits GEMMs of at least 2^18 multiply-adds):
 *   1. loss and every gradient bit for bit the same with 1, 2 and 3 threads (every split keeps the order of each
 *      sum, so the thread count must not change a bit);
 *   2. the float32 model (2 threads) against the double build (plain loops, one thread's order) on the same
 *      parameters and batch: relative error below 1e-5 (measured 2e-7..5e-7: float32 rounding, 6e-8, over sums
 *      of up to ~1000 terms a few layers deep; a race or a wrong slice in a split gives O(1));
 *   3. a replica (celo_model_replica: the same parameter buffer, its own gradients) on the second half of the
 *      batch and the model on the first, both at once on two threads, give the full batch's loss and gradient
 *      as (n0 g0 + n1 g1) / n, as runtime/train.c combines them: relative error below 1e-5 (only the order of
 *      the sums differs), and a change to the model's parameters is the replica's.
 */
#include "celort.h"
#include "nn.h"
#include "nn/nn_f64.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static double rel_err(const double *want, const float *got, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(want[i] - got[i])), s = fmax(s, fabs(want[i]));
    return s > 0 ? d / s : d;
}

/* loss and gradients of m on b with `threads` threads; grads copied to g */
static float run(celo_model *m, const celo_batch *b, int threads, float *g)
{
    celo_set_threads(threads);
    float loss = celo_model_loss(m, b);
    if (celo_model_backward(m) != 0) {
        printf("FAIL backward: %s\n", celo_model_error(m));
        fails++;
    }
    memcpy(g, celo_model_grads(m), (size_t)celo_model_nparams(m) * sizeof(float));
    return loss;
}

static void test(const char *tag, const celo_model_config *cfg, int n, int seq)
{
    char err[256];
    celo_model *m = celo_model_create(cfg, 11, err, sizeof err);
    celo_model_f64 *md = celo_model_create_f64(cfg, 11, err, sizeof err);
    if (!m || !md) {
        printf("FAIL %s: %s\n", tag, err);
        fails++;
        return;
    }
    celo_rng rng;
    celo_rng_init(&rng, 99, 0);
    int64_t nx = 0, nl = n;
    if (cfg->kind == CELO_MODEL_MLP)
        nx = (int64_t)n * cfg->mlp.in;
    else if (cfg->kind == CELO_MODEL_CONVNET)
        nx = (int64_t)n * cfg->conv.channels * cfg->conv.height * cfg->conv.width;
    else
        nl = (int64_t)n * seq;
    int classes = cfg->kind == CELO_MODEL_MLP       ? cfg->mlp.out
                  : cfg->kind == CELO_MODEL_CONVNET ? cfg->conv.out
                  : cfg->kind == CELO_MODEL_GPT     ? cfg->gpt.vocab
                                                    : cfg->lstm.vocab;
    float *x = xcalloc((size_t)nx, sizeof(float));
    double *xd = xcalloc((size_t)nx, sizeof(double));
    int32_t *labels = xcalloc((size_t)nl, sizeof(int32_t)), *tokens = xcalloc((size_t)nl, sizeof(int32_t));
    for (int64_t i = 0; i < nx; i++)
        xd[i] = x[i] = (float)celo_rng_normal(&rng);
    for (int64_t i = 0; i < nl; i++) {
        labels[i] = (int32_t)(celo_rng_u32(&rng) % (uint32_t)classes);
        tokens[i] = (int32_t)(celo_rng_u32(&rng) % (uint32_t)classes);
    }
    int lm = cfg->kind == CELO_MODEL_GPT || cfg->kind == CELO_MODEL_LSTM;
    celo_batch b = {n, seq, nx ? x : NULL, lm ? tokens : NULL, labels, NULL};
    celo_batch_f64 bd = {n, seq, nx ? xd : NULL, lm ? tokens : NULL, labels, NULL};

    int64_t np = celo_model_nparams(m);
    float *g1 = xcalloc((size_t)np, sizeof(float)), *g = xcalloc((size_t)np, sizeof(float));
    float l1 = run(m, &b, 1, g1);
    for (int t = 2; t <= 3; t++) {
        float l = run(m, &b, t, g);
        int same = memcmp(&l, &l1, sizeof l) == 0 && memcmp(g, g1, (size_t)np * sizeof(float)) == 0;
        fails += !same;
        printf("%s %-28s %d threads = 1 thread, bit for bit (loss %.7g)\n", same ? "ok  " : "FAIL", tag, t, (double)l);
    }

    double *pd = celo_model_params_f64(md);
    const float *pf = celo_model_params(m);
    for (int64_t i = 0; i < np; i++)
        pd[i] = pf[i];
    float lf = run(m, &b, 2, g);
    double ld = celo_model_loss_f64(md, &bd);
    celo_model_backward_f64(md);
    double el = fabs(ld - lf) / fabs(ld), eg = rel_err(celo_model_grads_f64(md), g, np);
    int ok = el < 1e-5 && eg < 1e-5;
    fails += !ok;
    printf("%s %-28s float32 (2 threads) = float64: loss %.2e, grads %.2e (tolerance 1e-5)\n", ok ? "ok  " : "FAIL",
           tag, el, eg);

    /* 3. halves on the model and a replica, at once */
    celo_model *r = celo_model_replica(m, err, sizeof err);
    if (!r) {
        printf("FAIL %s replica: %s\n", tag, err);
        fails++;
    } else {
        int n0 = n / 2;
        int64_t per = lm ? seq : 1, xd0 = n ? nx / n : 0;
        celo_batch h0 = b, h1 = b;
        h0.n = n0, h1.n = n - n0;
        if (h1.x)
            h1.x += n0 * xd0;
        if (h1.tokens)
            h1.tokens += n0 * per;
        h1.labels += n0 * per;
        float full = run(m, &b, 2, g1), lh0 = 0, lh1 = 0;
        celo_set_threads(2);
#pragma omp parallel sections num_threads(2)
        {
#pragma omp section
            {
                lh0 = celo_model_loss(m, &h0);
                celo_model_backward(m);
            }
#pragma omp section
            {
                lh1 = celo_model_loss(r, &h1);
                celo_model_backward(r);
            }
        }
        const float *ga = celo_model_grads(m), *gb = celo_model_grads(r);
        float w0 = (float)n0 / (float)n, w1 = (float)(n - n0) / (float)n;
        double dg = 0, sg = 0;
        for (int64_t i = 0; i < np; i++) {
            double c = w0 * ga[i] + w1 * gb[i];
            dg = fmax(dg, fabs(c - g1[i])), sg = fmax(sg, fabs(g1[i]));
        }
        double lc = ((double)lh0 * n0 + (double)lh1 * (n - n0)) / n, eloss = fabs(lc - full) / fabs(full);
        celo_model_params(m)[0] += 1;
        int shared = celo_model_params(r)[0] == celo_model_params(m)[0];
        celo_model_params(m)[0] -= 1;
        int okr = eloss < 1e-5 && dg / sg < 1e-5 && shared;
        fails += !okr;
        printf("%s %-28s halves on model + replica = full batch: loss %.2e, grads %.2e (tolerance 1e-5)%s\n",
               okr ? "ok  " : "FAIL", tag, eloss, dg / sg, shared ? "" : "; parameters NOT shared");
        celo_model_free(r);
    }
    free(x), free(xd), free(labels), free(tokens), free(g1), free(g);
    celo_model_free(m);
    celo_model_free_f64(md);
}

int main(void)
{
    celo_model_config gpt = {.kind = CELO_MODEL_GPT,
                             .gpt = {.vocab = 200, .ctx = 64, .dim = 128, .heads = 4, .layers = 2, .gpt2_init = 1}};
    test("gpt 128d 4h 2L, 4 x 64", &gpt, 4, 64);
    celo_model_config mlp = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 784, .nhidden = 1, .hidden = {128}, .out = 10, .act = CELO_ACT_RELU}};
    test("mlp 784-128-10 relu, 128", &mlp, 128, 0);
    mlp.mlp.act = CELO_ACT_GELU;
    test("mlp 784-128-10 gelu, 128", &mlp, 128, 0);
    celo_model_config conv = {.kind = CELO_MODEL_CONVNET, .conv = {1, 28, 28, 8, 16, 3, CELO_POOL_MAX, 10}};
    test("convnet 28x28, 16", &conv, 16, 0);
    printf("%s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
