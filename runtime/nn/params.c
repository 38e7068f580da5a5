/*
 * params.c — the model kinds of nn.h's configs: checking a config, and describing it as a block list
 * (nn_internal.h; blocks.c builds it). The blocks come in the order of the parameters of the torch modules in
 * tests/reference/gen_nn.py, so the parameter table is their state_dict, name for name.
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
        if (c->mixer != CELO_MIXER_SOFTMAX && c->mixer != CELO_MIXER_LINEAR && c->mixer != CELO_MIXER_MAMBA)
            FAIL("gpt: unknown mixer %d", (int)c->mixer);
        if (c->feature < CELO_FEATURE_IDENTITY || c->feature > CELO_FEATURE_HEDGEHOG || c->chunk < 0)
            FAIL("gpt: unknown feature map %d, or chunk = %d < 0", (int)c->feature, c->chunk);
        if (c->state < 0 || c->state > 4096 || c->conv < 0 || c->conv > 64 || c->expand < 0 || c->expand > 64)
            FAIL("gpt: mamba state = %d, conv = %d, expand = %d: each 0 (the default) or in [1, 4096], [1, 64], "
                 "[1, 64]",
                 c->state, c->conv, c->expand);
        if (c->mixer != CELO_MIXER_MAMBA && (c->state || c->conv || c->expand || c->normalize))
            FAIL("gpt: state, conv, expand and normalize are options of the mamba mixer only");
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

/* ---- the five kinds as block lists ---- */

typedef struct {
    celo_block_desc *d;
    int n;
} descs;

static celo_block_desc *blk(descs *ds, celo_block_kind kind, const char *tap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static celo_block_desc *blk(descs *ds, celo_block_kind kind, const char *tap, const char *fmt, ...)
{
    celo_block_desc *d = &ds->d[ds->n++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->name, sizeof d->name, fmt, ap);
    va_end(ap);
    snprintf(d->tap, sizeof d->tap, "%s", tap ? tap : d->name);
    return d;
}

/* fc1, h1, fc2, h2, ..., logits (the last linear, named fc<L> as torch's module) */
static void describe_mlp(const celo_model_config *cfg, descs *ds)
{
    const celo_mlp_config *c = &cfg->mlp;
    for (int l = 0; l <= c->nhidden; l++) {
        int last = l == c->nhidden;
        celo_block_desc *d = blk(ds, CELO_BLOCK_LINEAR, last ? "logits" : NULL, "fc%d", l + 1);
        d->out = !last ? c->hidden[l] : cfg->kind == CELO_MODEL_MLP ? c->out : c->in;
        if (!last)
            blk(ds, CELO_BLOCK_ACT, NULL, "h%d", l + 1)->act = c->act;
    }
}

/* conv1, relu1, pool1, conv2, relu2, pool2, logits (module fc) */
static void describe_conv(const celo_model_config *cfg, descs *ds)
{
    const celo_convnet_config *c = &cfg->conv;
    for (int l = 1; l <= 2; l++) {
        celo_block_desc *d = blk(ds, CELO_BLOCK_CONV, NULL, "conv%d", l);
        d->out = l == 1 ? c->conv1 : c->conv2, d->kernel = c->kernel, d->stride = 1, d->pad = c->kernel / 2;
        blk(ds, CELO_BLOCK_ACT, NULL, "relu%d", l)->act = CELO_ACT_RELU;
        d = blk(ds, CELO_BLOCK_POOL, NULL, "pool%d", l);
        d->pool = c->pool, d->kernel = 2;
    }
    blk(ds, CELO_BLOCK_LINEAR, "logits", "fc")->out = c->out;
}

/* wte, embed (+ wpe); per layer l: h.l.ln_1, h.l.attn, h.l.res1 = embed/h.(l-1) + attn, h.l.ln_2, h.l.mlp.c_fc,
 * h.l.mlp.act, h.l.mlp (c_proj), h.l = res1 + mlp; then ln_f and logits (module lm_head, no bias) */
static void describe_gpt(const celo_model_config *cfg, descs *ds)
{
    const celo_gpt_config *c = &cfg->gpt;
    double s = c->gpt2_init ? 0.02 : 0, sp = c->gpt2_init ? 0.02 / sqrt(2.0 * c->layers) : 0;
    celo_block_desc *d = blk(ds, CELO_BLOCK_EMBED, NULL, "wte");
    d->vocab = c->vocab, d->out = c->dim, d->init_std = s;
    d = blk(ds, CELO_BLOCK_POSITION, "embed", "wpe");
    d->ctx = c->ctx, d->init_std = s;
    char x[CELO_TAP_NAME_MAX] = "embed";
    for (int l = 0; l < c->layers; l++) {
        blk(ds, CELO_BLOCK_LAYERNORM, NULL, "h.%d.ln_1", l);
        /* every mixer's output is the tap h.l.attn (layer-wise losses find it the same way); the Mamba mixer's
         * module is h.l.mamba (its tensors h.l.mamba.in_proj.weight, ...), the attentions' h.l.attn */
        char tap[CELO_TAP_NAME_MAX];
        snprintf(tap, sizeof tap, "h.%d.attn", l);
        if (c->mixer == CELO_MIXER_MAMBA) {
            d = blk(ds, CELO_BLOCK_MAMBA, tap, "h.%d.mamba", l);
            d->state = c->state, d->conv = c->conv, d->expand = c->expand, d->normalize = c->normalize != 0;
        } else
            d = blk(ds, c->mixer == CELO_MIXER_LINEAR ? CELO_BLOCK_LINATTN : CELO_BLOCK_ATTENTION, NULL, "h.%d.attn",
                    l);
        d->heads = c->heads, d->init_std = s, d->init_std_proj = sp;
        d->feature = c->feature, d->chunk = c->chunk;
        d = blk(ds, CELO_BLOCK_ADD, NULL, "h.%d.res1", l);
        snprintf(d->from2, sizeof d->from2, "%s", x);
        blk(ds, CELO_BLOCK_LAYERNORM, NULL, "h.%d.ln_2", l);
        d = blk(ds, CELO_BLOCK_LINEAR, NULL, "h.%d.mlp.c_fc", l);
        d->out = 4 * c->dim, d->init_std = s;
        blk(ds, CELO_BLOCK_ACT, NULL, "h.%d.mlp.act", l)->act = CELO_ACT_GELU;
        snprintf(tap, sizeof tap, "h.%d.mlp", l);
        d = blk(ds, CELO_BLOCK_LINEAR, tap, "h.%d.mlp.c_proj", l);
        d->out = c->dim, d->init_std = sp;
        d = blk(ds, CELO_BLOCK_ADD, NULL, "h.%d", l);
        snprintf(d->from2, sizeof d->from2, "h.%d.res1", l);
        snprintf(x, sizeof x, "h.%d", l);
    }
    blk(ds, CELO_BLOCK_LAYERNORM, NULL, "ln_f");
    d = blk(ds, CELO_BLOCK_LINEAR, "logits", "lm_head");
    d->out = c->vocab, d->nobias = 1, d->init_std = s;
}

/* embed, lstm.0, lstm.1, ..., logits (module head) */
static void describe_lstm(const celo_model_config *cfg, descs *ds)
{
    const celo_lstm_config *c = &cfg->lstm;
    celo_block_desc *d = blk(ds, CELO_BLOCK_EMBED, NULL, "embed");
    d->vocab = c->vocab, d->out = c->embed;
    for (int l = 0; l < c->layers; l++) {
        char tap[CELO_TAP_NAME_MAX];
        snprintf(tap, sizeof tap, "lstm.%d", l);
        d = blk(ds, CELO_BLOCK_LSTM, tap, "lstm");
        d->out = c->hidden, d->layer = l;
    }
    blk(ds, CELO_BLOCK_LINEAR, "logits", "head")->out = c->vocab;
}

int celo_nn_describe(const celo_model_config *cfg, celo_nn_net *net, char *err, size_t errlen)
{
    memset(net, 0, sizeof *net);
    int max = 0;
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER: max = 2 * (cfg->mlp.nhidden + 1); break;
    case CELO_MODEL_CONVNET: max = 7; break;
    case CELO_MODEL_GPT: max = 4 + 8 * cfg->gpt.layers; break;
    case CELO_MODEL_LSTM: max = 2 + cfg->lstm.layers; break;
    }
    descs ds = {calloc((size_t)max + 1, sizeof *ds.d), 0};
    if (!ds.d) {
        celo_nn_seterr(err, errlen, "out of memory creating the model");
        return -1;
    }
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER:
        net->in_ndim = 1, net->in_dims[0] = net->in_width = cfg->mlp.in;
        net->loss = cfg->kind == CELO_MODEL_AUTOENCODER ? CELO_NN_LOSS_MSE_INPUT
                    : cfg->mlp.loss == CELO_LOSS_MSE    ? CELO_NN_LOSS_MSE
                                                        : CELO_NN_LOSS_CE;
        describe_mlp(cfg, &ds);
        break;
    case CELO_MODEL_CONVNET: {
        const celo_convnet_config *c = &cfg->conv;
        net->in_ndim = 3, net->in_dims[0] = c->channels, net->in_dims[1] = c->height, net->in_dims[2] = c->width;
        net->in_width = (int64_t)c->channels * c->height * c->width;
        describe_conv(cfg, &ds);
        break;
    }
    case CELO_MODEL_GPT: net->tokens = 1, describe_gpt(cfg, &ds); break;
    case CELO_MODEL_LSTM: net->tokens = 1, describe_lstm(cfg, &ds); break;
    }
    int r = celo_nn_net_build(net, ds.d, ds.n, err, errlen);
    free(ds.d);
    return r;
}
