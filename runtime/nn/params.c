/*
 * params.c — model configs: checking them, and the table of parameter tensors (names, shapes, offsets,
 * initialization) that both precisions of the models share. The names and the order are torch's
 * state_dict of the modules in tests/reference/gen_nn.py.
 */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- conv geometry (declared in nn.h) ---- */

int celo_conv2d_out_h(const celo_conv2d_dims *d)
{
    return (d->H + 2 * d->pad - d->kh) / d->stride + 1;
}
int celo_conv2d_out_w(const celo_conv2d_dims *d)
{
    return (d->W + 2 * d->pad - d->kw) / d->stride + 1;
}
int64_t celo_conv2d_col_size(const celo_conv2d_dims *d)
{
    return (int64_t)d->C * d->kh * d->kw * celo_conv2d_out_h(d) * celo_conv2d_out_w(d);
}

/* ---- checking ---- */

#define DIM_MAX (1 << 24) /* any one dimension; keeps products of two or three within int64 and GEMM sizes sane */

static int bad_dim(int v)
{
    return v < 1 || v > DIM_MAX;
}

int celo_nn_check_config(const celo_model_config *cfg, char *err, size_t errlen)
{
#define FAIL(...)                                 \
    do {                                          \
        celo_nn_seterr(err, errlen, __VA_ARGS__); \
        return -1;                                \
    } while (0)
    if (!cfg)
        FAIL("no model config");
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER: {
        const celo_mlp_config *c = &cfg->mlp;
        const char *what = cfg->kind == CELO_MODEL_MLP ? "mlp" : "autoencoder";
        if (bad_dim(c->in))
            FAIL("%s: in = %d must be in [1, %d]", what, c->in, DIM_MAX);
        if (c->nhidden < 0 || c->nhidden > CELO_MLP_MAX_HIDDEN)
            FAIL("%s: %d hidden layers; at most %d", what, c->nhidden, CELO_MLP_MAX_HIDDEN);
        for (int i = 0; i < c->nhidden; i++)
            if (bad_dim(c->hidden[i]))
                FAIL("%s: hidden[%d] = %d must be in [1, %d]", what, i, c->hidden[i], DIM_MAX);
        if (cfg->kind == CELO_MODEL_MLP && bad_dim(c->out))
            FAIL("mlp: out = %d must be in [1, %d]", c->out, DIM_MAX);
        if (c->act != CELO_ACT_RELU && c->act != CELO_ACT_GELU && c->act != CELO_ACT_TANH)
            FAIL("%s: unknown activation %d", what, (int)c->act);
        if (cfg->kind == CELO_MODEL_MLP && c->loss != CELO_LOSS_CROSS_ENTROPY && c->loss != CELO_LOSS_MSE)
            FAIL("mlp: unknown loss %d", (int)c->loss);
        return 0;
    }
    case CELO_MODEL_CONVNET: {
        const celo_convnet_config *c = &cfg->conv;
        if (bad_dim(c->channels) || bad_dim(c->conv1) || bad_dim(c->conv2) || bad_dim(c->out))
            FAIL("convnet: channels, conv1, conv2 and out must be in [1, %d]", DIM_MAX);
        if (c->kernel < 1 || c->kernel % 2 == 0 || c->kernel > 15)
            FAIL("convnet: kernel = %d must be odd, 1..15", c->kernel);
        if (c->height < 4 || c->width < 4 || c->height > 4096 || c->width > 4096)
            FAIL("convnet: image %dx%d; both sides must be in [4, 4096] (two 2x2 pools)", c->height, c->width);
        if (c->pool != CELO_POOL_MAX && c->pool != CELO_POOL_AVG)
            FAIL("convnet: unknown pool %d", (int)c->pool);
        return 0;
    }
    case CELO_MODEL_GPT: {
        const celo_gpt_config *c = &cfg->gpt;
        if (bad_dim(c->vocab) || bad_dim(c->ctx) || bad_dim(c->dim) || bad_dim(c->heads) || c->layers < 1 ||
            c->layers > 1024)
            FAIL("gpt: vocab, ctx, dim, heads must be in [1, %d], layers in [1, 1024]", DIM_MAX);
        if (c->dim % c->heads)
            FAIL("gpt: dim = %d is not a multiple of heads = %d", c->dim, c->heads);
        return 0;
    }
    case CELO_MODEL_LSTM: {
        const celo_lstm_config *c = &cfg->lstm;
        if (bad_dim(c->vocab) || bad_dim(c->embed) || bad_dim(c->hidden) || c->layers < 1 || c->layers > 1024)
            FAIL("lstm: vocab, embed, hidden must be in [1, %d], layers in [1, 1024]", DIM_MAX);
        return 0;
    }
    }
    FAIL("unknown model kind %d", (int)cfg->kind);
#undef FAIL
}

/* ---- the table ---- */

typedef struct {
    celo_nn_tensor_spec *t;
    int n, cap;
    int64_t offset;
    int oom;
} table;

static void add(table *tb, celo_nn_init_kind init, double a, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(table *tb, celo_nn_init_kind init, double a, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (tb->n == tb->cap) {
        int cap = tb->cap ? 2 * tb->cap : 16;
        celo_nn_tensor_spec *t = realloc(tb->t, (size_t)cap * sizeof *t);
        if (!t) {
            tb->oom = 1;
            return;
        }
        tb->t = t, tb->cap = cap;
    }
    celo_nn_tensor_spec *s = &tb->t[tb->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->t.name, sizeof s->t.name, fmt, ap);
    va_end(ap);
    s->t.ndim = ndim;
    s->t.numel = 1;
    for (int i = 0; i < ndim; i++)
        s->t.shape[i] = shape[i], s->t.numel *= shape[i];
    s->t.offset = tb->offset;
    tb->offset += s->t.numel;
    s->init = init;
    s->a = a;
}

#define SHAPE(...)                                                               \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) \
    {                                                                            \
        __VA_ARGS__                                                              \
    }

/* torch.nn.Linear(in, out): weight [out, in] and bias [out], both U(-1/sqrt(in), 1/sqrt(in)) */
static void add_linear(table *tb, const char *name, int in, int out, int bias)
{
    double bound = 1 / sqrt((double)in);
    add(tb, CELO_INIT_UNIFORM, bound, SHAPE(out, in), "%s.weight", name);
    if (bias)
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(out), "%s.bias", name);
}

static void add_layernorm(table *tb, const char *name, int C)
{
    add(tb, CELO_INIT_CONST, 1, SHAPE(C), "%s.weight", name);
    add(tb, CELO_INIT_CONST, 0, SHAPE(C), "%s.bias", name);
}

int celo_nn_build_table(const celo_model_config *cfg, celo_nn_tensor_spec **out, int64_t *nparams)
{
    table tb = {0};
    char name[CELO_PARAM_NAME_MAX];
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER: {
        const celo_mlp_config *c = &cfg->mlp;
        int prev = c->in;
        for (int l = 0; l <= c->nhidden; l++) {
            int next = l < c->nhidden ? c->hidden[l] : cfg->kind == CELO_MODEL_MLP ? c->out : c->in;
            snprintf(name, sizeof name, "fc%d", l + 1);
            add_linear(&tb, name, prev, next, 1);
            prev = next;
        }
        break;
    }
    case CELO_MODEL_CONVNET: {
        const celo_convnet_config *c = &cfg->conv;
        int k = c->kernel;
        double b1 = 1 / sqrt((double)c->channels * k * k), b2 = 1 / sqrt((double)c->conv1 * k * k);
        add(&tb, CELO_INIT_UNIFORM, b1, SHAPE(c->conv1, c->channels, k, k), "conv1.weight");
        add(&tb, CELO_INIT_UNIFORM, b1, SHAPE(c->conv1), "conv1.bias");
        add(&tb, CELO_INIT_UNIFORM, b2, SHAPE(c->conv2, c->conv1, k, k), "conv2.weight");
        add(&tb, CELO_INIT_UNIFORM, b2, SHAPE(c->conv2), "conv2.bias");
        add_linear(&tb, "fc", c->conv2 * (c->height / 4) * (c->width / 4), c->out, 1);
        break;
    }
    case CELO_MODEL_GPT: {
        const celo_gpt_config *c = &cfg->gpt;
        int C = c->dim;
        if (!c->gpt2_init) {
            add(&tb, CELO_INIT_NORMAL, 1, SHAPE(c->vocab, C), "wte.weight");
            add(&tb, CELO_INIT_NORMAL, 1, SHAPE(c->ctx, C), "wpe.weight");
            for (int l = 0; l < c->layers; l++) {
                snprintf(name, sizeof name, "h.%d.ln_1", l), add_layernorm(&tb, name, C);
                snprintf(name, sizeof name, "h.%d.attn.c_attn", l), add_linear(&tb, name, C, 3 * C, 1);
                snprintf(name, sizeof name, "h.%d.attn.c_proj", l), add_linear(&tb, name, C, C, 1);
                snprintf(name, sizeof name, "h.%d.ln_2", l), add_layernorm(&tb, name, C);
                snprintf(name, sizeof name, "h.%d.mlp.c_fc", l), add_linear(&tb, name, C, 4 * C, 1);
                snprintf(name, sizeof name, "h.%d.mlp.c_proj", l), add_linear(&tb, name, 4 * C, C, 1);
            }
            add_layernorm(&tb, "ln_f", C);
            add_linear(&tb, "lm_head", C, c->vocab, 0);
        } else { /* GPT-2 (and nanoGPT): N(0, 0.02), residual projections 0.02 / sqrt(2 layers), biases 0 */
            double s = 0.02, sp = 0.02 / sqrt(2.0 * c->layers);
            add(&tb, CELO_INIT_NORMAL, s, SHAPE(c->vocab, C), "wte.weight");
            add(&tb, CELO_INIT_NORMAL, s, SHAPE(c->ctx, C), "wpe.weight");
            for (int l = 0; l < c->layers; l++) {
                snprintf(name, sizeof name, "h.%d.ln_1", l), add_layernorm(&tb, name, C);
                add(&tb, CELO_INIT_NORMAL, s, SHAPE(3 * C, C), "h.%d.attn.c_attn.weight", l);
                add(&tb, CELO_INIT_CONST, 0, SHAPE(3 * C), "h.%d.attn.c_attn.bias", l);
                add(&tb, CELO_INIT_NORMAL, sp, SHAPE(C, C), "h.%d.attn.c_proj.weight", l);
                add(&tb, CELO_INIT_CONST, 0, SHAPE(C), "h.%d.attn.c_proj.bias", l);
                snprintf(name, sizeof name, "h.%d.ln_2", l), add_layernorm(&tb, name, C);
                add(&tb, CELO_INIT_NORMAL, s, SHAPE(4 * C, C), "h.%d.mlp.c_fc.weight", l);
                add(&tb, CELO_INIT_CONST, 0, SHAPE(4 * C), "h.%d.mlp.c_fc.bias", l);
                add(&tb, CELO_INIT_NORMAL, sp, SHAPE(C, 4 * C), "h.%d.mlp.c_proj.weight", l);
                add(&tb, CELO_INIT_CONST, 0, SHAPE(C), "h.%d.mlp.c_proj.bias", l);
            }
            add_layernorm(&tb, "ln_f", C);
            add(&tb, CELO_INIT_NORMAL, s, SHAPE(c->vocab, C), "lm_head.weight");
        }
        break;
    }
    case CELO_MODEL_LSTM: {
        const celo_lstm_config *c = &cfg->lstm;
        int H = c->hidden;
        double bound = 1 / sqrt((double)H);
        add(&tb, CELO_INIT_NORMAL, 1, SHAPE(c->vocab, c->embed), "embed.weight");
        for (int l = 0; l < c->layers; l++) {
            int in = l == 0 ? c->embed : H;
            add(&tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H, in), "lstm.weight_ih_l%d", l);
            add(&tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H, H), "lstm.weight_hh_l%d", l);
            add(&tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H), "lstm.bias_ih_l%d", l);
            add(&tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H), "lstm.bias_hh_l%d", l);
        }
        add_linear(&tb, "head", H, c->vocab, 1);
        break;
    }
    }
    if (tb.oom) {
        free(tb.t);
        *out = NULL;
        return -1;
    }
    *out = tb.t;
    *nparams = tb.offset;
    return tb.n;
}
