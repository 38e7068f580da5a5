/*
 * test_generate.c — language models one token at a time (celo_generator, runtime/nn/generate.inc):
 *   1. for a gpt with each token mixer (softmax attention; linear attention with each feature map; Mamba with the
 *      identity and Hedgehog maps, normalized or not, expand 2, an mlp map, a conv of 2 taps) and a 2-layer lstm
 *      (one cell step per token against the layer's whole-sequence pass), every parameter
 *      moved off its init by N(0, 0.3^2): the generator's logits at each step t of 3 sequences of 13 tokens equal
 *      the model's forward-pass logits at position t, in float64 within TOL64 of the largest logit and in float32
 *      within TOL32 (TOL32_ID for linear attention's identity map: below). The two paths share no mixer code: the
 * forward pass runs the chunked forms (GEMMs over chunks of 4 or 5 tokens), the generator the recurrent forms from
 * states. The step is checked to depend on the past: a generator fed a different first token must differ at every later
 * step (the test can fail).
 *   2. reset: the same tokens after celo_generator_reset give the same bits; the position counts the steps.
 *   3. errors: a model that is not a language model, no capacity for a model without a position table, more tokens
 *      than the position table, a token out of range, a step past the capacity: NULL with a one-line reason.
 */
#include "nn.h"
#include "nn/nn_f64.h"
#include "rng.h"

#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL64 1e-10
#define TOL32 2e-5
/* linear attention with the identity map: phi(q) . sum phi(k) can come near 0 for a random model (no map keeps it
 * positive), and its float32 rounding is then divided by a small denominator: 1e-4 relative was seen here */
#define TOL32_ID 1e-3
#define B_       3
#define T_       13
#define V_       11

static int32_t tokens[B_ * T_];

typedef struct {
    const char *name;
    celo_mixer mixer;
    celo_feature_map feature;
    int normalize, expand, conv;
    int lstm; /* the lstm model instead of a gpt */
} mix;

static celo_model_config gpt_cfg(const mix *x)
{
    if (x->lstm)
        return (celo_model_config){.kind = CELO_MODEL_LSTM,
                                   .lstm = {.vocab = V_, .embed = 8, .hidden = 12, .layers = 2}};
    celo_model_config c = {.kind = CELO_MODEL_GPT,
                           .gpt = {.vocab = V_,
                                   .ctx = 16,
                                   .dim = 16,
                                   .heads = 4,
                                   .layers = 2,
                                   .mixer = x->mixer,
                                   .feature = x->feature,
                                   .normalize = x->normalize,
                                   .expand = x->expand,
                                   .conv = x->conv}};
    if (x->mixer != CELO_MIXER_SOFTMAX)
        c.gpt.chunk = x->mixer == CELO_MIXER_MAMBA ? 4 : 5;
    return c;
}

/* the float64 and float32 models of x with the same perturbed parameters */
static int models(const mix *x, celo_model **m, celo_model_f64 **m64)
{
    char err[256];
    celo_model_config c = gpt_cfg(x);
    *m = celo_model_create(&c, 21, err, sizeof err);
    *m64 = celo_model_create_f64(&c, 21, err, sizeof err);
    if (!*m || !*m64) {
        check(0, "%s: models: %s", x->name, err);
        return -1;
    }
    celo_rng r;
    celo_rng_init(&r, 9, (uint64_t)(x->mixer * 100 + x->feature * 10 + x->normalize));
    float *p = celo_model_params(*m);
    double *p64 = celo_model_params_f64(*m64);
    for (int64_t i = 0; i < celo_model_nparams(*m); i++)
        p64[i] = p[i] = p[i] + (float)(0.3 * celo_rng_normal(&r));
    return 0;
}

/* max over steps t and sequences b of |step logits - forward logits| (forward: [B, T, V]), and max |forward| */
static double compare_f64(celo_generator_f64 *g, const double *fwd, double *scale)
{
    double d = 0, s = 0;
    for (int t = 0; t < T_; t++) {
        int32_t tok[B_];
        for (int b = 0; b < B_; b++)
            tok[b] = tokens[b * T_ + t];
        const double *y = celo_generator_step_f64(g, tok);
        if (!y)
            return INFINITY;
        for (int b = 0; b < B_; b++)
            for (int v = 0; v < V_; v++) {
                double f = fwd[((int64_t)b * T_ + t) * V_ + v];
                d = fmax(d, fabs(y[(int64_t)b * V_ + v] - f)), s = fmax(s, fabs(f));
            }
    }
    *scale = s;
    return d;
}

static double compare_f32(celo_generator *g, const float *fwd, double *scale, float *keep)
{
    double d = 0, s = 0;
    for (int t = 0; t < T_; t++) {
        int32_t tok[B_];
        for (int b = 0; b < B_; b++)
            tok[b] = tokens[b * T_ + t];
        const float *y = celo_generator_step(g, tok);
        if (!y)
            return INFINITY;
        if (keep)
            memcpy(keep + (int64_t)t * B_ * V_, y, sizeof(float) * B_ * V_);
        for (int b = 0; b < B_; b++)
            for (int v = 0; v < V_; v++) {
                double f = fwd[((int64_t)b * T_ + t) * V_ + v];
                d = fmax(d, fabs((double)y[(int64_t)b * V_ + v] - f)), s = fmax(s, fabs(f));
            }
    }
    *scale = s;
    return d;
}

static void test_mixer(const mix *x)
{
    celo_model *m = NULL;
    celo_model_f64 *m64 = NULL;
    celo_generator *g = NULL, *g2 = NULL;
    celo_generator_f64 *g64 = NULL;
    char err[256];
    float *keep = malloc(sizeof(float) * T_ * B_ * V_), *again = malloc(sizeof(float) * T_ * B_ * V_);
    if (!keep || !again || models(x, &m, &m64))
        goto out;
    celo_batch b = {.n = B_, .seq = T_, .tokens = tokens};
    celo_batch_f64 b64 = {.n = B_, .seq = T_, .tokens = tokens};
    if (celo_model_forward(m, &b) || celo_model_forward_f64(m64, &b64)) {
        check(0, "%s: forward: %s", x->name, celo_model_error(m));
        goto out;
    }
    const float *fwd = celo_model_tap(m, "logits", NULL);
    const double *fwd64 = celo_model_tap_f64(m64, "logits", NULL);
    g = celo_generator_new(m, B_, x->lstm ? T_ : 0, err, sizeof err); /* 0: the gpt's ctx */
    g64 = celo_generator_new_f64(m64, B_, T_, err, sizeof err);
    if (!g || !g64) {
        check(0, "%s: generator: %s", x->name, err);
        goto out;
    }
    double s64 = 0, s32 = 0, d64 = compare_f64(g64, fwd64, &s64), d32 = compare_f32(g, fwd, &s32, keep);
    double tol32 = x->mixer == CELO_MIXER_LINEAR && x->feature == CELO_FEATURE_IDENTITY ? TOL32_ID : TOL32;
    check(d64 <= TOL64 * s64 && d32 <= tol32 * s32,
          "%-22s step logits == forward logits at each of %d positions: float64 max |diff| %.2e (%.1e of max "
          "|logit| %.2f; tol %.0e), float32 %.2e (%.1e; tol %.0e)",
          x->name, T_, d64, d64 / s64, s64, TOL64, d32, d32 / s32, tol32);
    check(celo_generator_pos(g) == T_, "%s: position %d after %d steps", x->name, celo_generator_pos(g), T_);
    celo_generator_reset(g);
    double s2 = 0, d2 = compare_f32(g, fwd, &s2, again);
    check(d2 == d32 && !memcmp(keep, again, sizeof(float) * T_ * B_ * V_),
          "%s: after reset, the same tokens give the same bits", x->name);
    /* the state carries the past: another first token changes every later step */
    g2 = celo_generator_new(m, B_, T_, err, sizeof err);
    int differs = g2 != NULL;
    for (int t = 0; t < T_ && g2; t++) {
        int32_t tok[B_];
        for (int bb = 0; bb < B_; bb++)
            tok[bb] = t == 0 ? (tokens[bb * T_] + 1) % V_ : tokens[bb * T_ + t];
        const float *y = celo_generator_step(g2, tok);
        double dd = 0;
        for (int i = 0; y && i < B_ * V_; i++)
            dd = fmax(dd, fabs((double)y[i] - keep[(int64_t)t * B_ * V_ + i]));
        differs &= y && dd > 100 * tol32 * s32;
    }
    check(differs, "%s: a different first token changes the logits of every later step", x->name);
out:
    celo_generator_free(g), celo_generator_free(g2), celo_generator_free_f64(g64);
    celo_model_free(m), celo_model_free_f64(m64);
    free(keep), free(again);
}

static void test_errors(void)
{
    char err[256];
    mix sm = {"softmax", CELO_MIXER_SOFTMAX, 0, 0, 0, 0, 0};
    celo_model_config c = gpt_cfg(&sm);
    celo_model *m = celo_model_create(&c, 1, err, sizeof err);
    celo_model_config mc = {.kind = CELO_MODEL_MLP, .mlp = {.in = 4, .hidden = {8}, .nhidden = 1, .out = 3}};
    celo_model *mlp = celo_model_create(&mc, 1, err, sizeof err);
    celo_model_config lc = {.kind = CELO_MODEL_LSTM, .lstm = {.vocab = V_, .embed = 8, .hidden = 8, .layers = 1}};
    celo_model *lstm = celo_model_create(&lc, 1, err, sizeof err);
    if (!m || !mlp || !lstm) {
        check(0, "error models: %s", err);
        goto out;
    }
    err[0] = 0;
    celo_generator *g = celo_generator_new(mlp, 1, 4, err, sizeof err);
    check(!g && strstr(err, "language model"), "an mlp: %s", err);
    g = celo_generator_new(lstm, 1, 0, err, sizeof err);
    check(!g && strstr(err, "no position table"), "an lstm (no position table) with no capacity given: %s", err);
    g = celo_generator_new(m, 1, 17, err, sizeof err);
    check(!g && strstr(err, "context of 16"), "17 tokens of a ctx-16 gpt: %s", err);
    g = celo_generator_new(m, 0, 4, err, sizeof err);
    check(!g && strstr(err, "positive"), "0 sequences: %s", err);
    g = celo_generator_new(m, 2, 2, err, sizeof err);
    if (!g) {
        check(0, "generator: %s", err);
        goto out;
    }
    int32_t bad[2] = {0, V_}, ok[2] = {1, 2};
    check(!celo_generator_step(g, bad) && strstr(celo_generator_error(g), "token 11 of sequence 1 is not in [0, 11)"),
          "a token out of range: %s", celo_generator_error(g));
    check(celo_generator_pos(g) == 0, "a refused step does not advance (position %d)", celo_generator_pos(g));
    int took = celo_generator_step(g, ok) && celo_generator_step(g, ok);
    check(took && !celo_generator_step(g, ok) && strstr(celo_generator_error(g), "full: 2 tokens"),
          "a step past the capacity: %s", celo_generator_error(g));
    celo_generator_free(g);
out:
    celo_model_free(m), celo_model_free(mlp), celo_model_free(lstm);
}

int main(void)
{
    celo_rng r;
    celo_rng_init(&r, 3, 0);
    for (int i = 0; i < B_ * T_; i++)
        tokens[i] = (int32_t)(celo_rng_u32(&r) % V_);
    const mix mixes[] = {
        {"softmax", CELO_MIXER_SOFTMAX, 0, 0, 0, 0, 0},
        {"linear identity", CELO_MIXER_LINEAR, CELO_FEATURE_IDENTITY, 0, 0, 0, 0},
        {"linear elu", CELO_MIXER_LINEAR, CELO_FEATURE_ELU, 0, 0, 0, 0},
        {"linear mlp", CELO_MIXER_LINEAR, CELO_FEATURE_MLP, 0, 0, 0, 0},
        {"linear hedgehog", CELO_MIXER_LINEAR, CELO_FEATURE_HEDGEHOG, 0, 0, 0, 0},
        {"mamba identity", CELO_MIXER_MAMBA, CELO_FEATURE_IDENTITY, 0, 0, 0, 0},
        {"mamba hedgehog norm", CELO_MIXER_MAMBA, CELO_FEATURE_HEDGEHOG, 1, 0, 0, 0},
        {"mamba mlp expand 2", CELO_MIXER_MAMBA, CELO_FEATURE_MLP, 0, 2, 0, 0},
        {"mamba elu norm conv 2", CELO_MIXER_MAMBA, CELO_FEATURE_ELU, 1, 0, 2, 0},
        {"lstm (2 layers)", 0, 0, 0, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof mixes / sizeof *mixes; i++)
        test_mixer(&mixes[i]);
    test_errors();
    printf("test_generate: %s\n", fails ? "FAILED" : "passed");
    return fails != 0;
}
