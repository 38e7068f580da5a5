/*
 * blocks.c — building a model's block list (nn_internal.h): resolving each block's inputs by tap name, checking
 * kinds and shapes, and laying out the parameter table (names, shapes, offsets, initialization) in block order.
 * Shared by both precisions; the forward and backward passes of each kind are in blocks.inc.
 */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM_MAX (1 << 24) /* as params.c: any one dimension */

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

/* weight [rows, cols] and bias [rows] of a linear map with fan-in `fan`: torch's U(-1/sqrt(fan), 1/sqrt(fan)),
 * or N(0, std) weights and zero biases when std > 0 (GPT-2's) */
static void add_affine(table *tb, const char *name, int64_t rows, int64_t cols, int bias, double fan, double std)
{
    double bound = 1 / sqrt(fan);
    if (std > 0)
        add(tb, CELO_INIT_NORMAL, std, SHAPE(rows, cols), "%s.weight", name);
    else
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(rows, cols), "%s.weight", name);
    if (bias)
        add(tb, std > 0 ? CELO_INIT_CONST : CELO_INIT_UNIFORM, std > 0 ? 0 : bound, SHAPE(rows), "%s.bias", name);
}

void celo_nn_net_free(celo_nn_net *net)
{
    free(net->blocks);
    free(net->spec);
    net->blocks = NULL, net->spec = NULL;
}

int celo_nn_net_copy(celo_nn_net *dst, const celo_nn_net *src)
{
    *dst = *src;
    dst->blocks = malloc((size_t)src->nblocks * sizeof *dst->blocks);
    dst->spec = malloc((size_t)src->ntensors * sizeof *dst->spec);
    if (!dst->blocks || !dst->spec) {
        celo_nn_net_free(dst);
        return -1;
    }
    memcpy(dst->blocks, src->blocks, (size_t)src->nblocks * sizeof *dst->blocks);
    memcpy(dst->spec, src->spec, (size_t)src->ntensors * sizeof *dst->spec);
    return 0;
}

static int find_tap(const celo_nn_net *net, int n, const char *name)
{
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(net->blocks[i].d.tap, name))
            return i;
    return -1;
}

int celo_nn_net_find_tap(const celo_nn_net *net, const char *name)
{
    if (!strcmp(name, "output"))
        return net->nblocks - 1;
    return find_tap(net, net->nblocks, name);
}

/* the input of block i named `from` ("": the previous block's output): its index (-1: the model's input), or -2 */
static int resolve(const celo_nn_net *net, int i, const char *from)
{
    if (!from[0])
        return i - 1;
    if (!strcmp(from, "input"))
        return -1;
    int j = find_tap(net, i, from);
    return j >= 0 ? j : -2;
}

/* one block: shapes from its input, its tensors into tb; 0 or -1 with a reason */
static int build_block(celo_nn_net *net, int i, table *tb, char *err, size_t errlen)
{
    celo_nn_block *b = &net->blocks[i];
    const celo_block_desc *d = &b->d;
#define FAIL(...)                                 \
    do {                                          \
        celo_nn_seterr(err, errlen, __VA_ARGS__); \
        return -1;                                \
    } while (0)
    const char *nm = d->tap;
    b->in = resolve(net, i, d->from);
    if (b->in == -2)
        FAIL("block %s: no earlier tap named '%s'", nm, d->from);
    b->in2 = d->kind == CELO_BLOCK_ADD ? resolve(net, i, d->from2) : -1;
    if (b->in2 == -2)
        FAIL("block %s: no earlier tap named '%s'", nm, d->from2);
    if (find_tap(net, i, d->tap) >= 0 || !strcmp(d->tap, "input") || !strcmp(d->tap, "output"))
        FAIL("block %s: the tap name is taken", nm);
    const celo_nn_block *src = b->in >= 0 ? &net->blocks[b->in] : NULL;
    int ndim = src ? src->ndim : net->tokens ? 1 : net->in_ndim;
    int64_t dims[3] = {0, 0, 0};
    for (int k = 0; k < ndim; k++)
        dims[k] = src ? src->dims[k] : net->tokens ? 1 : net->in_dims[k];
    b->in_width = src ? src->width : net->tokens ? 1 : net->in_width;
    int ids = !src && net->tokens; /* the block reads token ids */
    if (ids != (d->kind == CELO_BLOCK_EMBED))
        FAIL("block %s: %s", nm, ids ? "token ids go into an embedding first" : "an embedding reads the token ids");
    if ((d->kind == CELO_BLOCK_POSITION || d->kind == CELO_BLOCK_ATTENTION || d->kind == CELO_BLOCK_LINATTN ||
         d->kind == CELO_BLOCK_MAMBA || d->kind == CELO_BLOCK_LSTM) &&
        !net->tokens)
        FAIL("block %s: needs sequences (a token input)", nm);
    b->p0 = tb->n;
    int64_t C = b->in_width;
    switch (d->kind) {
    case CELO_BLOCK_LINEAR:
        if (d->out < 1 || d->out > DIM_MAX)
            FAIL("block %s: out = %d must be in [1, %d]", nm, d->out, DIM_MAX);
        add_affine(tb, d->name, d->out, C, !d->nobias, (double)C, d->init_std);
        b->ndim = 1, b->dims[0] = d->out;
        break;
    case CELO_BLOCK_ACT:
        if (d->act != CELO_ACT_RELU && d->act != CELO_ACT_GELU && d->act != CELO_ACT_TANH)
            FAIL("block %s: unknown activation %d", nm, (int)d->act);
        b->ndim = ndim, memcpy(b->dims, dims, sizeof dims);
        break;
    case CELO_BLOCK_CONV: {
        int k = d->kernel, s = d->stride ? d->stride : 1;
        if (ndim != 3)
            FAIL("block %s: a convolution needs [C, H, W] inputs", nm);
        if (d->out < 1 || d->out > DIM_MAX || k < 1 || k > 15 || s < 1 || d->pad < 0 || d->pad >= k)
            FAIL("block %s: channels in [1, %d], kernel 1..15, stride >= 1, 0 <= pad < kernel", nm, DIM_MAX);
        int64_t ho = (dims[1] + 2 * d->pad - k) / s + 1, wo = (dims[2] + 2 * d->pad - k) / s + 1;
        if (dims[1] + 2 * d->pad < k || dims[2] + 2 * d->pad < k)
            FAIL("block %s: the %lldx%lld input is smaller than the kernel", nm, (long long)dims[1],
                 (long long)dims[2]);
        add_affine(tb, d->name, d->out, dims[0] * k * k, 1, (double)dims[0] * k * k, 0);
        tb->t[tb->n - 2].t.ndim = 4; /* [K, C, k, k] */
        int64_t sh[4] = {d->out, dims[0], k, k};
        memcpy(tb->t[tb->n - 2].t.shape, sh, sizeof sh);
        b->ndim = 3, b->dims[0] = d->out, b->dims[1] = ho, b->dims[2] = wo;
        break;
    }
    case CELO_BLOCK_POOL:
        if (ndim != 3)
            FAIL("block %s: pooling needs [C, H, W] inputs", nm);
        if (d->kernel < 1 || dims[1] < d->kernel || dims[2] < d->kernel)
            FAIL("block %s: pool %d on a %lldx%lld input", nm, d->kernel, (long long)dims[1], (long long)dims[2]);
        if (d->pool != CELO_POOL_MAX && d->pool != CELO_POOL_AVG)
            FAIL("block %s: unknown pool %d", nm, (int)d->pool);
        b->ndim = 3, b->dims[0] = dims[0], b->dims[1] = dims[1] / d->kernel, b->dims[2] = dims[2] / d->kernel;
        break;
    case CELO_BLOCK_LAYERNORM:
        if (ndim != 1)
            FAIL("block %s: layer norm over [features] rows", nm);
        add(tb, CELO_INIT_CONST, 1, SHAPE(C), "%s.weight", d->name);
        add(tb, CELO_INIT_CONST, 0, SHAPE(C), "%s.bias", d->name);
        b->ndim = 1, b->dims[0] = C;
        break;
    case CELO_BLOCK_EMBED:
        if (d->vocab < 1 || d->vocab > DIM_MAX || d->out < 1 || d->out > DIM_MAX)
            FAIL("block %s: vocab and out must be in [1, %d]", nm, DIM_MAX);
        add(tb, CELO_INIT_NORMAL, d->init_std > 0 ? d->init_std : 1, SHAPE(d->vocab, d->out), "%s.weight", d->name);
        b->ndim = 1, b->dims[0] = d->out;
        break;
    case CELO_BLOCK_POSITION:
        if (ndim != 1 || d->ctx < 1 || d->ctx > DIM_MAX)
            FAIL("block %s: positions over [features] rows, ctx in [1, %d]", nm, DIM_MAX);
        add(tb, CELO_INIT_NORMAL, d->init_std > 0 ? d->init_std : 1, SHAPE(d->ctx, C), "%s.weight", d->name);
        b->ndim = 1, b->dims[0] = C;
        break;
    case CELO_BLOCK_ATTENTION: {
        char sub[CELO_PARAM_NAME_MAX + 16];
        if (ndim != 1 || d->heads < 1 || C % d->heads)
            FAIL("block %s: width %lld is not a multiple of heads = %d", nm, (long long)C, d->heads);
        snprintf(sub, sizeof sub, "%s.c_attn", d->name);
        add_affine(tb, sub, 3 * C, C, 1, (double)C, d->init_std);
        snprintf(sub, sizeof sub, "%s.c_proj", d->name);
        add_affine(tb, sub, C, C, 1, (double)C, d->init_std > 0 ? d->init_std_proj : 0);
        b->ndim = 1, b->dims[0] = C;
        break;
    }
    case CELO_BLOCK_LINATTN: {
        /* the softmax attention's c_attn and c_proj (same names, shapes and init: weights copy across), then the
         * feature maps' tensors, one map for queries and one for keys, shared by the heads (torch's Linear init) */
        char sub[CELO_PARAM_NAME_MAX + 16];
        if (ndim != 1 || d->heads < 1 || C % d->heads)
            FAIL("block %s: width %lld is not a multiple of heads = %d", nm, (long long)C, d->heads);
        if (d->feature < CELO_FEATURE_IDENTITY || d->feature > CELO_FEATURE_HEDGEHOG || d->chunk < 0)
            FAIL("block %s: unknown feature map %d or chunk %d < 0", nm, (int)d->feature, d->chunk);
        snprintf(sub, sizeof sub, "%s.c_attn", d->name);
        add_affine(tb, sub, 3 * C, C, 1, (double)C, d->init_std);
        snprintf(sub, sizeof sub, "%s.c_proj", d->name);
        add_affine(tb, sub, C, C, 1, (double)C, d->init_std > 0 ? d->init_std_proj : 0);
        int64_t hs = C / d->heads;
        if (d->feature == CELO_FEATURE_MLP || d->feature == CELO_FEATURE_HEDGEHOG)
            for (int k = 0; k < 2; k++) {
                snprintf(sub, sizeof sub, "%s.feature_%c", d->name, k ? 'k' : 'q');
                add_affine(tb, sub, hs, hs, d->feature == CELO_FEATURE_MLP, (double)hs, 0);
            }
        b->ndim = 1, b->dims[0] = C;
        break;
    }
    case CELO_BLOCK_MAMBA: {
        /* nn.h's order: in_proj, conv, A_log, D, the map's tensors, out_proj. in_proj and out_proj as c_attn and
         * c_proj (torch's Linear, or GPT-2's normal with init_std) but for the dt rows of in_proj.bias: Mamba-2's
         * softplus^-1 of delta ~ exp(U[ln 1e-3, ln 0.1]) floored at 1e-4; the depthwise conv as torch's Conv1d
         * (U(+-1/sqrt(K)), fan-in K); A_log = ln U[1, 16]; D = 1; the maps as linattn's (hs -> N) */
        char sub[CELO_PARAM_NAME_MAX + 16];
        if (ndim != 1 || d->heads < 1 || C % d->heads)
            FAIL("block %s: width %lld is not a multiple of heads = %d", nm, (long long)C, d->heads);
        if (d->feature < CELO_FEATURE_IDENTITY || d->feature > CELO_FEATURE_HEDGEHOG || d->chunk < 0)
            FAIL("block %s: unknown feature map %d or chunk %d < 0", nm, (int)d->feature, d->chunk);
        if (d->state < 0 || d->state > 4096 || d->conv < 0 || d->conv > 64 || d->expand < 0 || d->expand > 64)
            FAIL("block %s: state = %d, conv = %d, expand = %d: each 0 (the default) or in [1, 4096], [1, 64], [1, 64]",
                 nm, d->state, d->conv, d->expand);
        int64_t nh = d->heads, N = d->state ? d->state : C / nh, K = d->conv ? d->conv : 4;
        int64_t Di = (d->expand ? d->expand : 1) * C, ncv = Di + 2 * nh * N, nin = 2 * Di + 2 * nh * N + nh;
        snprintf(sub, sizeof sub, "%s.in_proj", d->name);
        add_affine(tb, sub, nin, C, 1, (double)C, d->init_std);
        celo_nn_tensor_spec *ib = &tb->t[tb->n - 1];
        if (!tb->oom)
            ib->tail = nh, ib->tail_init = CELO_INIT_DT_BIAS, ib->ta = 1e-3, ib->tb = 0.1;
        add(tb, CELO_INIT_UNIFORM, 1 / sqrt((double)K), SHAPE(ncv, 1, K), "%s.conv.weight", d->name);
        add(tb, CELO_INIT_UNIFORM, 1 / sqrt((double)K), SHAPE(ncv), "%s.conv.bias", d->name);
        add(tb, CELO_INIT_LOG_UNIFORM, 1, SHAPE(nh), "%s.A_log", d->name);
        if (!tb->oom)
            tb->t[tb->n - 1].b = 16;
        add(tb, CELO_INIT_CONST, 1, SHAPE(nh), "%s.D", d->name);
        if (d->feature == CELO_FEATURE_MLP || d->feature == CELO_FEATURE_HEDGEHOG)
            for (int k = 0; k < 2; k++) {
                snprintf(sub, sizeof sub, "%s.feature_%c", d->name, k ? 'k' : 'q');
                add_affine(tb, sub, N, N, d->feature == CELO_FEATURE_MLP, (double)N, 0);
            }
        snprintf(sub, sizeof sub, "%s.out_proj", d->name);
        add_affine(tb, sub, C, Di, 1, (double)Di, d->init_std > 0 ? d->init_std_proj : 0);
        b->ndim = 1, b->dims[0] = C;
        break;
    }
    case CELO_BLOCK_ADD: {
        const celo_nn_block *o = b->in2 >= 0 ? &net->blocks[b->in2] : NULL;
        if (!o || b->in < 0)
            FAIL("block %s: adds two earlier taps of the same width", nm);
        if (o->width != C)
            FAIL("block %s: adds two earlier taps of the same width (got %lld and %lld)", nm, (long long)C,
                 (long long)o->width);
        b->ndim = ndim, memcpy(b->dims, dims, sizeof dims);
        break;
    }
    case CELO_BLOCK_LSTM: {
        int64_t H = d->out;
        double bound = 1 / sqrt((double)H);
        if (ndim != 1 || H < 1 || H > DIM_MAX)
            FAIL("block %s: hidden = %d must be in [1, %d]", nm, d->out, DIM_MAX);
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H, C), "%s.weight_ih_l%d", d->name, d->layer);
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H, H), "%s.weight_hh_l%d", d->name, d->layer);
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H), "%s.bias_ih_l%d", d->name, d->layer);
        add(tb, CELO_INIT_UNIFORM, bound, SHAPE(4 * H), "%s.bias_hh_l%d", d->name, d->layer);
        b->ndim = 1, b->dims[0] = H;
        break;
    }
    default: FAIL("block %s: unknown kind %d", nm, (int)d->kind);
    }
#undef FAIL
    b->np = tb->n - b->p0;
    b->width = 1;
    for (int k = 0; k < b->ndim; k++)
        b->width *= b->dims[k];
    return 0;
}

int celo_nn_net_build(celo_nn_net *net, const celo_block_desc *descs, int nblocks, char *err, size_t errlen)
{
    table tb = {0};
    net->blocks = NULL, net->spec = NULL;
    net->failed = -1;
    if (nblocks < 1) {
        celo_nn_seterr(err, errlen, "a model needs at least one block");
        return -1;
    }
    if (!(net->blocks = calloc((size_t)nblocks, sizeof *net->blocks)))
        goto oom;
    for (int i = 0; i < nblocks; i++) {
        celo_nn_block *b = &net->blocks[i];
        b->d = descs[i];
        if (!b->d.tap[0])
            memcpy(b->d.tap, b->d.name, sizeof b->d.tap);
        if (build_block(net, i, &tb, err, errlen)) {
            net->failed = i;
            free(tb.t);
            celo_nn_net_free(net);
            return -1;
        }
    }
    if (tb.oom)
        goto oom;
    net->nblocks = nblocks;
    net->spec = tb.t, net->ntensors = tb.n, net->nparams = tb.offset;
    return 0;
oom:
    free(tb.t);
    celo_nn_net_free(net);
    celo_nn_seterr(err, errlen, "out of memory creating the model");
    return -1;
}

int celo_nn_net_from_desc(const celo_model_desc *d, celo_nn_net *net, char *err, size_t errlen)
{
    memset(net, 0, sizeof *net);
    net->failed = -1;
    if (!d || !d->blocks) {
        celo_nn_seterr(err, errlen, "no model description");
        return -1;
    }
    net->tokens = d->tokens != 0;
    if (!net->tokens) {
        if (d->in_ndim != 1 && d->in_ndim != 3) {
            celo_nn_seterr(err, errlen, "the input is [features] or [C, H, W]: in_ndim = %d", d->in_ndim);
            return -1;
        }
        net->in_ndim = d->in_ndim, net->in_width = 1;
        for (int k = 0; k < d->in_ndim; k++) {
            if (d->in_dims[k] < 1 || d->in_dims[k] > DIM_MAX) {
                celo_nn_seterr(err, errlen, "input dimension %d = %lld must be in [1, %d]", k, (long long)d->in_dims[k],
                               DIM_MAX);
                return -1;
            }
            net->in_dims[k] = d->in_dims[k], net->in_width *= d->in_dims[k];
        }
    }
    if (d->loss != CELO_LOSS_CROSS_ENTROPY && d->loss != CELO_LOSS_MSE) {
        celo_nn_seterr(err, errlen, "unknown loss %d", (int)d->loss);
        return -1;
    }
    if (d->mse_input && net->tokens) {
        celo_nn_seterr(err, errlen, "mse_input needs a float input");
        return -1;
    }
    net->loss = d->mse_input ? CELO_NN_LOSS_MSE_INPUT : d->loss == CELO_LOSS_MSE ? CELO_NN_LOSS_MSE : CELO_NN_LOSS_CE;
    if (celo_nn_net_build(net, d->blocks, d->nblocks, err, errlen))
        return -1;
    if (net->loss == CELO_NN_LOSS_MSE_INPUT && net->blocks[net->nblocks - 1].width != net->in_width) {
        celo_nn_seterr(err, errlen, "mse_input: the output's width %lld is not the input's, %lld",
                       (long long)net->blocks[net->nblocks - 1].width, (long long)net->in_width);
        celo_nn_net_free(net);
        return -1;
    }
    return 0;
}

int celo_model_check_desc(const celo_model_desc *d, int *bad_block, int64_t *out_width, char *err, size_t errlen)
{
    celo_nn_net net;
    int r = celo_nn_net_from_desc(d, &net, err, errlen);
    if (bad_block)
        *bad_block = r ? net.failed : -1;
    if (r)
        return -1;
    if (out_width)
        *out_width = net.blocks[net.nblocks - 1].width;
    celo_nn_net_free(&net);
    return 0;
}
