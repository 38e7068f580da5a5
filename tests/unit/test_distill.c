/*
 * test_distill.c — the pieces of distillation stages (runtime/distill.h) below the pipeline:
 *   1. the KL and cosine losses against NumPy (tests/reference/gen_distill.py) and their gradients against finite
 *      differences in float64;
 *   2. the attention-transfer loss as distill.c composes it — the student's layers fed the teacher's inputs by
 *      pinned taps, cosine per layer, gradients injected at the mixer outputs — against finite differences in
 *      float64 over the feature maps' weights, with nothing flowing past a pin.
 *
 *     test_distill [tests/golden/distill]
 */
#include "check.h"
#include "celort.h"
#include "nn.h"
#include "nn/nn_f64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *load(const char *dir, const char *name, int64_t want)
{
    char path[1200], err[1400];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    celo_array a;
    if (celo_npy_read(path, &a, err, sizeof err) != 0 || a.n != want) {
        check(0, "%s: %s", path, err);
        return NULL;
    }
    return a.data;
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- 1. losses ---- */
static void test_losses_numpy(const char *dir)
{
    float *lg = load(dir, "logits", 30), *tc = load(dir, "teacher", 30), *klv = load(dir, "kl_value", 1),
          *klg = load(dir, "kl_grad", 30), *a = load(dir, "a", 42), *b = load(dir, "b", 42),
          *cv = load(dir, "cos_value", 1), *cg = load(dir, "cos_grad", 42);
    if (lg && tc && klv && klg && a && b && cv && cg) {
        float g[42];
        float v = celo_loss_kl(lg, tc, 6, 5, 2.0, g);
        double e = max_abs_diff(g, klg, 30);
        check(fabs(v - klv[0]) <= 1e-6 * fabs(klv[0]) + 1e-7 && e <= 1e-6,
              "kl (T = 2) against NumPy: value %.7g vs %.7g, gradient max diff %.1e (tolerance 1e-6)", v, klv[0], e);
        v = celo_loss_cosine(a, b, 6, 7, g);
        e = max_abs_diff(g, cg, 42);
        check(fabs(v - cv[0]) <= 1e-6 && e <= 1e-6,
              "cosine against NumPy: value %.7g vs %.7g, gradient max diff %.1e (tolerance 1e-6)", v, cv[0], e);
    }
    free(lg), free(tc), free(klv), free(klg), free(a), free(b), free(cv), free(cg);
}

static void test_losses_fd(void)
{
    double x[24], t[24], g[24];
    for (int i = 0; i < 24; i++)
        x[i] = sin(1.3 * i) * 2, t[i] = cos(0.7 * i) * 1.5;
    double worst_kl = 0, worst_cos = 0, h = 1e-6;
    for (int which = 0; which < 2; which++) {
        if (which == 0)
            celo_loss_kl_f64(x, t, 4, 6, 1.7, g);
        else
            celo_loss_cosine_f64(x, t, 4, 6, g);
        for (int i = 0; i < 24; i++) {
            double s = x[i], lp, lm;
            x[i] = s + h;
            lp = which == 0 ? celo_loss_kl_f64(x, t, 4, 6, 1.7, NULL) : celo_loss_cosine_f64(x, t, 4, 6, NULL);
            x[i] = s - h;
            lm = which == 0 ? celo_loss_kl_f64(x, t, 4, 6, 1.7, NULL) : celo_loss_cosine_f64(x, t, 4, 6, NULL);
            x[i] = s;
            double fd = (lp - lm) / (2 * h), e = fabs(fd - g[i]) / fmax(1e-3, fabs(fd));
            if (which == 0)
                worst_kl = fmax(worst_kl, e);
            else
                worst_cos = fmax(worst_cos, e);
        }
    }
    check(worst_kl < 1e-6, "kl gradient against finite differences (float64): worst %.1e (threshold 1e-6)", worst_kl);
    check(worst_cos < 1e-6, "cosine gradient against finite differences (float64): worst %.1e (threshold 1e-6)",
          worst_cos);
    double same = celo_loss_kl_f64(t, t, 4, 6, 3.0, g), gmax = 0;
    for (int i = 0; i < 24; i++)
        gmax = fmax(gmax, fabs(g[i]));
    check(fabs(same) < 1e-15 && gmax < 1e-15, "kl of the teacher against itself: %.1e, gradient %.1e", same, gmax);
}

/* ---- 2. the attention-transfer loss through pinned taps ---- */
#define L 2
typedef struct {
    celo_model_f64 *t, *s;
    celo_batch_f64 b;
    int32_t tok[2 * 9];
    const char *in[L], *out[L];
    double *g[L];
} att;

static double att_loss(att *a, int grads)
{
    const double *tin[L];
    for (int l = 0; l < L; l++)
        tin[l] = celo_model_tap_f64(a->t, a->in[l], NULL);
    if (celo_model_forward_pinned_f64(a->s, &a->b, L, a->in, tin))
        return NAN;
    double total = 0;
    for (int l = 0; l < L; l++) {
        const double *y = celo_model_tap_f64(a->s, a->out[l], NULL), *t = celo_model_tap_f64(a->t, a->out[l], NULL);
        total += celo_loss_cosine_f64(y, t, 18, 16, grads ? a->g[l] : NULL) / L;
        for (int i = 0; grads && i < 18 * 16; i++)
            a->g[l][i] /= L;
    }
    if (grads && celo_model_backward_taps_f64(a->s, L, a->out, (const double *const *)a->g))
        return NAN;
    return total;
}

static void test_attention_fd(void)
{
    char err[256];
    celo_model_config tc = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 9, .dim = 16, .heads = 2, .layers = L}};
    celo_model_config sc = tc;
    sc.gpt.mixer = CELO_MIXER_LINEAR, sc.gpt.feature = CELO_FEATURE_HEDGEHOG, sc.gpt.chunk = 4;
    att a = {0};
    a.t = celo_model_create_f64(&tc, 3, err, sizeof err);
    a.s = celo_model_create_f64(&sc, 4, err, sizeof err);
    if (!a.t || !a.s) {
        check(0, "attention transfer: %s", err);
        return;
    }
    int copied = celo_model_copy_from_f64(a.s, a.t, "", "");
    for (int i = 0; i < 18; i++)
        a.tok[i] = (i * 7 + 3) % 11;
    a.b = (celo_batch_f64){.n = 2, .seq = 9, .tokens = a.tok};
    char in[L][24], out[L][24];
    for (int l = 0; l < L; l++) {
        snprintf(in[l], sizeof in[l], "h.%d.ln_1", l);
        snprintf(out[l], sizeof out[l], "h.%d.attn", l);
        a.in[l] = in[l], a.out[l] = out[l];
        a.g[l] = malloc(18 * 16 * sizeof(double));
    }
    celo_model_forward_f64(a.t, &a.b);
    double loss = att_loss(&a, 1);
    double *p = celo_model_params_f64(a.s), *gr = malloc((size_t)celo_model_nparams_f64(a.s) * sizeof *gr);
    memcpy(gr, celo_model_grads_f64(a.s), (size_t)celo_model_nparams_f64(a.s) * sizeof *gr);
    /* the pinned inputs are the teacher's */
    double pin_diff = 0;
    for (int l = 0; l < L; l++) {
        const double *x = celo_model_tap_f64(a.s, in[l], NULL), *y = celo_model_tap_f64(a.t, in[l], NULL);
        for (int i = 0; i < 18 * 16; i++)
            pin_diff = fmax(pin_diff, fabs(x[i] - y[i]));
    }
    check(copied == celo_model_ntensors_f64(a.t) && pin_diff == 0 && loss > 0,
          "attention transfer: %d tensors copied, pinned inputs == the teacher's, loss %.4f", copied, loss);
    /* finite differences over every element of the maps' weights; nothing reaches the tensors before a pin */
    double worst = 0, before = 0, h = 1e-6;
    int nfd = 0;
    for (int i = 0; i < celo_model_ntensors_f64(a.s); i++) {
        const celo_param_tensor *t = celo_model_tensor_f64(a.s, i);
        int map = strstr(t->name, "feature_") != NULL;
        for (int64_t k = 0; k < t->numel; k++) {
            double *w = p + t->offset + k, g = gr[t->offset + k];
            if (!map) {
                if (strstr(t->name, "wte") || strstr(t->name, "wpe") || strstr(t->name, "ln_1") ||
                    strstr(t->name, "mlp") || strstr(t->name, "ln_2") || strstr(t->name, "ln_f") ||
                    strstr(t->name, "lm_head"))
                    before = fmax(before, fabs(g));
                continue;
            }
            double s = *w;
            *w = s + h;
            double lp = att_loss(&a, 0);
            *w = s - h;
            double lm = att_loss(&a, 0);
            *w = s;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - g) / fmax(1e-4, fabs(fd)));
            nfd++;
        }
    }
    check(nfd == 4 * 8 * 8 && worst < 1e-5,
          "attention transfer gradient of %d map weights against finite differences (float64): worst %.1e "
          "(threshold 1e-5)",
          nfd, worst);
    check(before == 0, "attention transfer: no gradient past the pinned inputs (embeddings, norms, MLPs, head: %.1e)",
          before);
    free(gr);
    for (int l = 0; l < L; l++)
        free(a.g[l]);
    celo_model_free_f64(a.t);
    celo_model_free_f64(a.s);
}

int main(int argc, char **argv)
{
    test_losses_numpy(argc > 1 ? argv[1] : "tests/golden/distill"); /* run from the repository's root */
    test_losses_fd();
    test_attention_fd();
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails ? 1 : 0;
}
