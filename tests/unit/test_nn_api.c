/*
 * test_nn_api.c — the model API of nn.h beyond gradients: config and batch errors, the parameter table,
 * initialization (bounds, moments, determinism), constants (gelu's tanh approximation, LayerNorm's eps),
 * activation buffers that grow and shrink with the batch, chunked evaluation, accuracy, causality of the
 * language models, and several models trained at once on OpenMP threads (re-entrancy).
 */
#include "nn.h"
#include "rng.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0;
static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        fails++;
}

static double max_rel(const float *a, const float *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i])), s = fmax(s, fabs((double)b[i]));
    return s > 0 ? d / s : d;
}

static void fill_normal(float *x, int64_t n, uint64_t stream)
{
    celo_rng r;
    celo_rng_init(&r, 99, stream);
    celo_rng_fill_normal(&r, x, n, 0, 1);
}
static void fill_ids(int32_t *v, int64_t n, int limit, uint64_t stream)
{
    celo_rng r;
    celo_rng_init(&r, 98, stream);
    for (int64_t i = 0; i < n; i++)
        v[i] = (int32_t)(celo_rng_u32(&r) % (uint32_t)limit);
}

static void test_config_errors(void)
{
    char err[256];
    struct {
        celo_model_config cfg;
        const char *expect;
    } bad[] = {
        {{.kind = CELO_MODEL_GPT, .gpt = {.vocab = 10, .ctx = 4, .dim = 10, .heads = 3, .layers = 1}}, "multiple"},
        {{.kind = CELO_MODEL_MLP, .mlp = {.in = 4, .nhidden = 9, .out = 2}}, "hidden layers"},
        {{.kind = CELO_MODEL_MLP, .mlp = {.in = 4, .nhidden = 1, .hidden = {0}, .out = 2}}, "hidden[0]"},
        {{.kind = CELO_MODEL_CONVNET, .conv = {1, 8, 8, 4, 4, 2, CELO_POOL_MAX, 10}}, "odd"},
        {{.kind = CELO_MODEL_CONVNET, .conv = {1, 3, 8, 4, 4, 3, CELO_POOL_MAX, 10}}, "image"},
        {{.kind = CELO_MODEL_LSTM, .lstm = {.vocab = 5, .embed = 4, .hidden = 4, .layers = 0}}, "layers"},
        {{.kind = (celo_model_kind)42}, "unknown model kind"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        celo_model *m = celo_model_create(&bad[i].cfg, 1, err, sizeof err);
        char what[400];
        snprintf(what, sizeof what, "bad config %zu rejected: %s", i, err);
        check(!m && strstr(err, bad[i].expect), what);
        celo_model_free(m);
    }
}

static void test_batch_errors(void)
{
    char err[256];
    celo_model_config cfg = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 7, .ctx = 4, .dim = 8, .heads = 2, .layers = 1}};
    celo_model *m = celo_model_create(&cfg, 1, err, sizeof err);
    int32_t tok[8] = {0, 1, 2, 3, 4, 5, 6, 0}, lab[8] = {1, 2, 3, 4, 5, 6, 0, 1};
    check(celo_model_backward(m) == -1, "backward before any loss: -1");
    celo_batch b = {.n = 2, .seq = 4, .tokens = tok, .labels = lab};
    check(isfinite(celo_model_loss(m, &b)) && celo_model_backward(m) == 0, "valid batch: finite loss, backward 0");
    lab[5] = 7;
    check(isnan(celo_model_loss(m, &b)) && strstr(celo_model_error(m), "labels[5] = 7"),
          "label out of range: NAN, message names it");
    check(celo_model_backward(m) == -1, "backward after a failed loss: -1");
    lab[5] = 6, tok[2] = -1;
    check(isnan(celo_model_loss(m, &b)) && strstr(celo_model_error(m), "tokens[2]"), "token out of range: NAN");
    tok[2] = 2, b.seq = 5, b.n = 1;
    check(isnan(celo_model_loss(m, &b)) && strstr(celo_model_error(m), "context"), "seq > ctx: NAN");
    b.seq = 4, b.labels = NULL;
    check(isnan(celo_model_loss(m, &b)), "missing labels: NAN");
    celo_model_free(m);
}

static void test_table(void)
{
    char err[256];
    celo_model_config cfg = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 5, .dim = 8, .heads = 2, .layers = 3}};
    celo_model *m = celo_model_create(&cfg, 1, err, sizeof err);
    int64_t next = 0;
    int ok = 1;
    for (int i = 0; i < celo_model_ntensors(m); i++) {
        const celo_param_tensor *t = celo_model_tensor(m, i);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
        ok &= t->offset == next && t->numel == numel && celo_model_find(m, t->name) == i;
        next += t->numel;
    }
    check(ok && next == celo_model_nparams(m), "table: packed in order, shapes give numel, names unique");
    int q = celo_model_find(m, "h.2.attn.c_attn.weight");
    check(q >= 0 && celo_model_tensor(m, q)->shape[0] == 24 && celo_model_tensor(m, q)->shape[1] == 8,
          "find h.2.attn.c_attn.weight: [3 dim, dim]");
    check(celo_model_find(m, "h.3.ln_1.weight") == -1 && celo_model_tensor(m, -1) == NULL, "unknown names: -1/NULL");
    /* 2 embeddings + 12 per block + ln_f (2) + head */
    check(celo_model_ntensors(m) == 2 + 12 * 3 + 3, "gpt: 2 + 12 layers + 3 tensors");
    celo_model_free(m);
}

/* mean and variance of a tensor, and its largest |value| */
static void moments(const celo_model *m, celo_model *mm, const char *name, double *mean, double *var, double *amax)
{
    const celo_param_tensor *t = celo_model_tensor(m, celo_model_find(m, name));
    const float *p = celo_model_params(mm) + t->offset;
    double s = 0, s2 = 0, a = 0;
    for (int64_t i = 0; i < t->numel; i++)
        s += p[i], s2 += (double)p[i] * p[i], a = fmax(a, fabs(p[i]));
    *mean = s / t->numel, *var = s2 / t->numel - *mean * *mean, *amax = a;
}

static void test_init(void)
{
    char err[256], what[200];
    double mean, var, amax;
    /* linear: U(-1/sqrt(in), 1/sqrt(in)); 256 x 400 = 102400 values: the variance 1/(3 in) within 2% */
    celo_model_config mlp = {.kind = CELO_MODEL_MLP, .mlp = {.in = 400, .nhidden = 1, .hidden = {256}, .out = 10}};
    celo_model *m = celo_model_create(&mlp, 5, err, sizeof err);
    moments(m, m, "fc1.weight", &mean, &var, &amax);
    snprintf(what, sizeof what, "linear weight U(+-1/20): max %.5f, mean %.1e, var*3*400 %.4f", amax, mean,
             var * 3 * 400);
    check(amax <= 0.05f && amax > 0.0499 && fabs(mean) < 3e-4 && fabs(var * 1200 - 1) < 0.02, what);
    moments(m, m, "fc1.bias", &mean, &var, &amax);
    check(amax <= 0.05f, "linear bias within +-1/sqrt(in)");
    /* determinism: same seed same values; another seed other values; tensor i's stream does not depend on the
     * other tensors (a different output size leaves fc1 unchanged) */
    mlp.mlp.out = 3;
    celo_model *m2 = celo_model_create(&mlp, 5, err, sizeof err), *m3 = celo_model_create(&mlp, 6, err, sizeof err);
    const celo_param_tensor *t = celo_model_tensor(m, 0);
    check(!memcmp(celo_model_params(m), celo_model_params(m2), (size_t)t->numel * sizeof(float)),
          "same seed: same fc1 (whatever the other tensors)");
    check(memcmp(celo_model_params(m), celo_model_params(m3), (size_t)t->numel * sizeof(float)) != 0,
          "another seed: another fc1");
    celo_model_init(m3, 5);
    check(!memcmp(celo_model_params(m2), celo_model_params(m3), (size_t)celo_model_nparams(m2) * sizeof(float)),
          "celo_model_init(seed) = create(seed)");
    celo_model_free(m), celo_model_free(m2), celo_model_free(m3);

    celo_model_config gpt = {.kind = CELO_MODEL_GPT,
                             .gpt = {.vocab = 500, .ctx = 64, .dim = 64, .heads = 4, .layers = 2}};
    m = celo_model_create(&gpt, 5, err, sizeof err);
    moments(m, m, "wte.weight", &mean, &var, &amax);
    snprintf(what, sizeof what, "embedding N(0, 1): mean %.1e, var %.4f", mean, var);
    check(fabs(mean) < 0.015 && fabs(var - 1) < 0.03, what);
    moments(m, m, "h.1.ln_2.weight", &mean, &var, &amax);
    check(mean == 1 && var == 0, "layernorm weight 1");
    moments(m, m, "h.1.ln_2.bias", &mean, &var, &amax);
    check(mean == 0 && amax == 0, "layernorm bias 0");
    celo_model_free(m);
    gpt.gpt.gpt2_init = 1;
    m = celo_model_create(&gpt, 5, err, sizeof err);
    moments(m, m, "h.0.mlp.c_fc.weight", &mean, &var, &amax);
    snprintf(what, sizeof what, "gpt2 init: c_fc std %.5f (0.02)", sqrt(var));
    check(fabs(sqrt(var) / 0.02 - 1) < 0.02, what);
    moments(m, m, "h.0.mlp.c_proj.weight", &mean, &var, &amax);
    snprintf(what, sizeof what, "gpt2 init: c_proj std %.5f (0.02 / sqrt(2 layers) = 0.01)", sqrt(var));
    check(fabs(sqrt(var) / 0.01 - 1) < 0.02, what);
    moments(m, m, "h.0.attn.c_attn.bias", &mean, &var, &amax);
    check(amax == 0, "gpt2 init: biases 0");
    celo_model_free(m);

    celo_model_config lstm = {.kind = CELO_MODEL_LSTM, .lstm = {.vocab = 10, .embed = 8, .hidden = 64, .layers = 1}};
    m = celo_model_create(&lstm, 5, err, sizeof err);
    moments(m, m, "lstm.weight_hh_l0", &mean, &var, &amax);
    snprintf(what, sizeof what, "lstm weight U(+-1/8): max %.5f, var*3*64 %.4f", amax, var * 192);
    check(amax <= 0.125f && amax > 0.1249 && fabs(var * 192 - 1) < 0.02, what);
    celo_model_free(m);
}

static void test_constants(void)
{
    /* torch.nn.functional.gelu(x, approximate='tanh') in float64 */
    const float x[7] = {-3, -1, -0.5f, 0, 0.5f, 1, 3};
    const double want[7] = {-0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0,
                            0.34571400982514394,    0.84119199060827676,  2.9963626079182268};
    float y[7];
    celo_nn_gelu_forward(y, x, 7);
    double e = 0;
    for (int i = 0; i < 7; i++)
        e = fmax(e, fabs(y[i] - want[i]));
    char what[128];
    snprintf(what, sizeof what, "gelu = torch's approximate='tanh' (max error %.1e)", e);
    check(e < 1e-6, what);
    /* torch.nn.LayerNorm(2) on [0.003, -0.003]: variance 9e-6 is comparable to eps = 1e-5 */
    float xl[2] = {0.003f, -0.003f}, w[2] = {1, 1}, b[2] = {0, 0}, yl[2], mu, rs;
    celo_nn_layernorm_forward(yl, &mu, &rs, xl, w, b, 1, 2);
    snprintf(what, sizeof what, "layernorm eps = 1e-5 (%.7f, torch 0.6882472)", yl[0]);
    check(fabs(yl[0] - 0.6882472016116854) < 2e-6 && fabs(yl[1] + 0.6882472016116854) < 2e-6, what);
}

/* a batch of n for an MLP classifier with in = 10 inputs and 4 classes */
static celo_batch mlp_batch(float *x, int32_t *y, int n)
{
    fill_normal(x, (int64_t)n * 10, 1);
    fill_ids(y, n, 4, 2);
    return (celo_batch){.n = n, .x = x, .labels = y};
}

static void test_buffers_and_eval(void)
{
    char err[256];
    celo_model_config cfg = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 10, .nhidden = 2, .hidden = {16, 12}, .out = 4, .act = CELO_ACT_TANH}};
    celo_model *m = celo_model_create(&cfg, 3, err, sizeof err);
    int64_t np = celo_model_nparams(m);
    float x[100 * 10];
    int32_t y[100];
    celo_batch small = mlp_batch(x, y, 10), big = mlp_batch(x, y, 100);
    float *g1 = malloc((size_t)np * sizeof(float));
    float l1 = celo_model_loss(m, &small);
    celo_model_backward(m);
    memcpy(g1, celo_model_grads(m), (size_t)np * sizeof(float));
    celo_model_loss(m, &big); /* grows the buffers */
    celo_model_backward(m);
    float l2 = celo_model_loss(m, &small);
    celo_model_backward(m);
    check(l1 == l2 && !memcmp(g1, celo_model_grads(m), (size_t)np * sizeof(float)),
          "loss and gradient of a batch are the same before and after a larger batch");

    int64_t rows;
    int cols;
    const float *out = celo_model_output(m, &rows, &cols);
    check(out && rows == 10 && cols == 4, "output: logits [10, 4]");

    /* eval in chunks of 7 = the loss and accuracy of the whole batch */
    double el, ea;
    float lw = celo_model_loss(m, &big), aw = celo_model_accuracy(m);
    int rc = celo_model_eval(m, &big, 7, &el, &ea);
    char what[160];
    snprintf(what, sizeof what, "eval in chunks of 7: loss %.7f = %.7f, accuracy %.3f = %.3f", el, lw, ea, aw);
    check(rc == 0 && fabs(el - lw) < 1e-6 && fabs(ea - aw) < 1e-6, what);

    /* accuracy: zero weights and a bias that favours class 2: every prediction is 2 */
    float *p = celo_model_params(m);
    memset(p, 0, (size_t)np * sizeof(float));
    p[celo_model_tensor(m, celo_model_find(m, "fc3.bias"))->offset + 2] = 1;
    int32_t lab[4] = {2, 0, 2, 1};
    celo_batch b4 = {.n = 4, .x = x, .labels = lab};
    celo_model_loss(m, &b4);
    check(celo_model_accuracy(m) == 0.5f, "accuracy: 2 of 4 labels are the predicted class");
    free(g1);
    celo_model_free(m);

    celo_model_config ae = {.kind = CELO_MODEL_AUTOENCODER, .mlp = {.in = 10, .nhidden = 1, .hidden = {3}}};
    m = celo_model_create(&ae, 3, err, sizeof err);
    celo_batch ba = {.n = 5, .x = x};
    float l = celo_model_loss(m, &ba);
    check(isfinite(l) && isnan(celo_model_accuracy(m)), "autoencoder: finite loss, accuracy NAN");
    celo_model_free(m);
}

/* causal language models: the logits of a prefix do not depend on what follows */
static void test_prefix(celo_model_config cfg, int vocab, const char *tag)
{
    char err[256], what[128];
    celo_model *m = celo_model_create(&cfg, 4, err, sizeof err);
    enum { B = 2, T = 6, S = 3 };
    int32_t tok[B * T], lab[B * T], tok3[B * S], lab3[B * S];
    fill_ids(tok, B * T, vocab, 3), fill_ids(lab, B * T, vocab, 4);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < S; t++)
            tok3[b * S + t] = tok[b * T + t], lab3[b * S + t] = lab[b * T + t];
    celo_batch full = {.n = B, .seq = T, .tokens = tok, .labels = lab},
               pre = {.n = B, .seq = S, .tokens = tok3, .labels = lab3};
    int64_t rows;
    int cols;
    celo_model_loss(m, &full);
    const float *o = celo_model_output(m, &rows, &cols);
    float *keep = malloc((size_t)rows * cols * sizeof(float));
    memcpy(keep, o, (size_t)rows * cols * sizeof(float));
    celo_model_loss(m, &pre);
    o = celo_model_output(m, &rows, &cols);
    double e = 0;
    for (int b = 0; b < B; b++)
        e = fmax(e, max_rel(o + (int64_t)b * S * cols, keep + (int64_t)b * T * cols, S * cols));
    snprintf(what, sizeof what, "%s: logits of a 3-token prefix = first 3 of 6 (%.1e)", tag, e);
    check(e < 1e-5, what);
    free(keep);
    celo_model_free(m);
}

/* several models at once, one per OpenMP thread, each training 5 SGD steps: the same numbers as alone */
static void test_threads(void)
{
    enum { K = 4, STEPS = 5 };
    celo_model_config cfg = {.kind = CELO_MODEL_GPT,
                             .gpt = {.vocab = 13, .ctx = 8, .dim = 16, .heads = 2, .layers = 2}};
    int32_t tok[K][4 * 8], lab[K][4 * 8];
    float alone[K][STEPS], together[K][STEPS];
    for (int k = 0; k < K; k++)
        fill_ids(tok[k], 32, 13, 10 + k), fill_ids(lab[k], 32, 13, 20 + k);
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for num_threads(pass ? K : 1) schedule(static, 1)
        for (int k = 0; k < K; k++) {
            char err[256];
            celo_model *m = celo_model_create(&cfg, 100 + (uint64_t)k, err, sizeof err);
            celo_batch b = {.n = 4, .seq = 8, .tokens = tok[k], .labels = lab[k]};
            float *p = celo_model_params(m), *g = celo_model_grads(m);
            for (int s = 0; s < STEPS; s++) {
                (pass ? together : alone)[k][s] = celo_model_loss(m, &b);
                celo_model_backward(m);
                for (int64_t i = 0; i < celo_model_nparams(m); i++)
                    p[i] -= 0.05f * g[i];
            }
            celo_model_free(m);
        }
    }
    double e = max_rel(&together[0][0], &alone[0][0], K * STEPS);
    char what[128];
    snprintf(what, sizeof what, "%d models trained on %d threads at once = one at a time (%.1e)", K, K, e);
    check(e < 1e-6 && together[0][STEPS - 1] < together[0][0], what);
}

int main(void)
{
    test_config_errors();
    test_batch_errors();
    test_table();
    test_init();
    test_constants();
    test_buffers_and_eval();
    test_prefix(
        (celo_model_config){.kind = CELO_MODEL_GPT, .gpt = {.vocab = 9, .ctx = 6, .dim = 8, .heads = 2, .layers = 2}},
        9, "gpt");
    test_prefix(
        (celo_model_config){.kind = CELO_MODEL_LSTM, .lstm = {.vocab = 9, .embed = 4, .hidden = 5, .layers = 2}}, 9,
        "lstm");
    test_threads();
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails != 0;
}
