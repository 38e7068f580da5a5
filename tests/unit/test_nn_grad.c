/*
 * test_nn_grad.c — finite-difference checks of every hand-written backward pass in runtime/nn, in double
 * precision (the _f64 build: same source as the product, plain-loop GEMM), for every layer and every model;
 * then the float32 build of each model against the double build; then models built from block descriptions
 * (residual, strided conv, attention + LSTM), gpt with linear-attention and Mamba mixers; then backward passes
 * started from gradients injected at intermediate taps (celo_model_backward_taps), one or several at once.
 *
 * Layers: the scalar checked is L = sum(y * r) for a fixed random r (so dL/dy = r is what backward receives);
 * losses are checked directly. Each gradient g of a tensor x is compared with central differences
 *     n_i = (L(x + h e_i) - L(x - h e_i)) / 2h,   h = 1e-5,
 * on every element (or an evenly spread sample of 64 for larger tensors), by the normalized error
 *     err = max_i |g_i - n_i| / max_i max(|g_i|, |n_i|).
 * Threshold 1e-6: the truncation error of central differences is h^2 |L'''| / 6 ~ 1e-11 relative, and the
 * rounding error is absolute, ~ eps_64 |L| / h ~ 2e-16 * 3 / 1e-5 = 6e-11, i.e. 6e-11 relative to gradients of
 * order 1 and 2e-7 for a tensor whose largest gradient is 2.5e-4 (LayerNorm under GPT-2's init, the worst case
 * here: measured 1.9e-7). So a correct backward pass measures 1e-11..2e-7; a wrong index, a missing term or a
 * wrong factor gives 1e-3..1, and a 0.1% error in one element of the LSTM recurrence 1e-5. (h = 1e-4 crosses
 * relu kinks in the conv net; h = 3e-5 measures the same as 1e-5.)
 * Inputs are random (fixed seeds); for relu and max pooling an input within h of a kink would break the
 * difference, which for N(0, 1) inputs has probability ~1e-5 per element, and the fixed seeds do not hit one.
 */
#include "nn.h"
#include "nn/nn_f64.h"
#include "rng.h"
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H       1e-5
#define FD_TOL     1e-6
#define FD_SAMPLES 64

static int fails = 0, checks = 0;
static double worst = 0;

/* ---- test allocations: freed all at once at the end (the SAN build checks leaks) ---- */
static void *allocs[4096];
static int nallocs = 0;
static void *talloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || nallocs == 4096) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return allocs[nallocs++] = p;
}
static double *zeros(int64_t n)
{
    return talloc((size_t)n * sizeof(double));
}
static celo_rng rng;
static double *randn(int64_t n, double scale)
{
    double *x = zeros(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * celo_rng_normal(&rng);
    return x;
}
static int32_t *randint(int64_t n, int limit)
{
    int32_t *v = talloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++)
        v[i] = (int32_t)(celo_rng_u32(&rng) % (uint32_t)limit);
    return v;
}
static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- the check ---- */
typedef double (*loss_fn)(void *ctx);

static void check_grad(const char *what, loss_fn f, void *ctx, double *x, const double *g, int64_t n)
{
    int64_t count = n < FD_SAMPLES ? n : FD_SAMPLES;
    double scale, err = fd_error_scale(f, ctx, x, g, n, FD_SAMPLES, FD_H, &scale);
    int ok = err < FD_TOL && scale > 0;
    checks++;
    worst = fmax(worst, err);
    if (!ok)
        fails++;
    printf("%s %-40s err %.2e (max |g| %.2e, %lld of %lld checked)\n", ok ? "ok  " : "FAIL", what, err, scale,
           (long long)count, (long long)n);
}

/* ==== layers ==== */

typedef struct {
    int N, in, out;
    double *x, *w, *b, *y, *r;
} lin_ctx;
static double lin_loss(void *p)
{
    lin_ctx *c = p;
    celo_nn_linear_forward_f64(c->y, c->x, c->w, c->b, c->N, c->in, c->out);
    return dot(c->y, c->r, (int64_t)c->N * c->out);
}
static void test_linear(void)
{
    lin_ctx c = {5, 7, 4, NULL, NULL, NULL, NULL, NULL};
    c.x = randn(35, 1), c.w = randn(28, 0.5), c.b = randn(4, 0.5), c.y = zeros(20), c.r = randn(20, 1);
    double *dx = randn(35, 1), *dw = zeros(28), *db = zeros(4), *dx0 = zeros(35);
    memcpy(dx0, dx, 35 * sizeof(double)); /* backward accumulates: dx starts non-zero */
    celo_nn_linear_backward_f64(dx, dw, db, c.r, c.x, c.w, c.N, c.in, c.out);
    for (int i = 0; i < 35; i++)
        dx[i] -= dx0[i];
    check_grad("linear dx (accumulated)", lin_loss, &c, c.x, dx, 35);
    check_grad("linear dw", lin_loss, &c, c.w, dw, 28);
    check_grad("linear db", lin_loss, &c, c.b, db, 4);
}

typedef struct {
    int kind;
    int64_t n;
    double *x, *y, *r;
} act_ctx;
static double act_loss(void *p)
{
    act_ctx *c = p;
    if (c->kind == 0)
        celo_nn_relu_forward_f64(c->y, c->x, c->n);
    else if (c->kind == 1)
        celo_nn_gelu_forward_f64(c->y, c->x, c->n);
    else
        celo_nn_tanh_forward_f64(c->y, c->x, c->n);
    return dot(c->y, c->r, c->n);
}
static void test_activations(void)
{
    static const char *names[] = {"relu dx", "gelu dx", "tanh dx"};
    for (int k = 0; k < 3; k++) {
        act_ctx c = {k, 50, randn(50, 2), zeros(50), randn(50, 1)};
        double *dx = zeros(50);
        act_loss(&c);
        if (k == 0)
            celo_nn_relu_backward_f64(dx, c.x, c.r, c.n);
        else if (k == 1)
            celo_nn_gelu_backward_f64(dx, c.x, c.r, c.n);
        else
            celo_nn_tanh_backward_f64(dx, c.y, c.r, c.n);
        check_grad(names[k], act_loss, &c, c.x, dx, c.n);
    }
}

typedef struct {
    int N, C;
    double *z, *p, *t;
    int32_t *labels;
} loss_ctx;
static double ce_loss(void *p)
{
    loss_ctx *c = p;
    return celo_nn_crossentropy_forward_f64(c->p, c->z, c->labels, c->N, c->C);
}
static double mse_loss(void *p)
{
    loss_ctx *c = p;
    return celo_nn_mse_forward_f64(c->z, c->t, (int64_t)c->N * c->C);
}
static void test_losses(void)
{
    loss_ctx c = {6, 5, randn(30, 2), zeros(30), randn(30, 1), randint(6, 5)};
    double *dz = zeros(30);
    ce_loss(&c);
    celo_nn_crossentropy_backward_f64(dz, c.p, c.labels, c.N, c.C, 1);
    check_grad("cross-entropy dlogits", ce_loss, &c, c.z, dz, 30);
    memset(dz, 0, 30 * sizeof(double));
    celo_nn_mse_backward_f64(dz, c.z, c.t, 30, 1);
    check_grad("mse dpred", mse_loss, &c, c.z, dz, 30);
}

typedef struct {
    int N, C;
    double *x, *w, *b, *y, *mean, *rstd, *r;
} ln_ctx;
static double ln_loss(void *p)
{
    ln_ctx *c = p;
    celo_nn_layernorm_forward_f64(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dot(c->y, c->r, (int64_t)c->N * c->C);
}
static void test_layernorm(void)
{
    /* 18 rows of 21: the layer works in slices of 16 rows and 16 columns, so both have a partial last slice */
    enum { N = 18, C = 21, NC = N * C };
    ln_ctx c = {N, C, randn(NC, 2), randn(C, 1), randn(C, 1), zeros(NC), zeros(N), zeros(N), randn(NC, 1)};
    for (int i = 0; i < NC; i++)
        c.x[i] += 0.5; /* a non-zero mean */
    double *dx = zeros(NC), *dw = zeros(C), *db = zeros(C);
    ln_loss(&c);
    celo_nn_layernorm_backward_f64(dx, dw, db, c.r, c.x, c.mean, c.rstd, c.w, c.N, c.C);
    check_grad("layernorm dx", ln_loss, &c, c.x, dx, NC);
    check_grad("layernorm dw", ln_loss, &c, c.w, dw, C);
    check_grad("layernorm db", ln_loss, &c, c.b, db, C);
}

typedef struct {
    int N, C;
    int32_t *ids;
    double *table, *y, *r;
} emb_ctx;
static double emb_loss(void *p)
{
    emb_ctx *c = p;
    celo_nn_embedding_forward_f64(c->y, c->ids, c->table, c->N, c->C);
    return dot(c->y, c->r, (int64_t)c->N * c->C);
}
static void test_embedding(void)
{
    emb_ctx c = {12, 4, randint(12, 5), randn(20, 1), zeros(48), randn(48, 1)}; /* 12 ids of 5: repeats */
    double *dt = zeros(20);
    celo_nn_embedding_backward_f64(dt, c.r, c.ids, c.N, c.C);
    check_grad("embedding dtable", emb_loss, &c, c.table, dt, 20);
}

typedef struct {
    celo_conv2d_dims d;
    double *x, *w, *b, *y, *col, *r;
    int64_t ny;
} conv_ctx;
static double conv_loss(void *p)
{
    conv_ctx *c = p;
    celo_nn_conv2d_forward_f64(c->y, c->col, c->x, c->w, c->b, &c->d);
    return dot(c->y, c->r, c->ny);
}
static void test_conv(const char *tag, celo_conv2d_dims d)
{
    conv_ctx c = {.d = d};
    int64_t nx = (int64_t)d.N * d.C * d.H * d.W, nw = (int64_t)d.K * d.C * d.kh * d.kw;
    c.ny = (int64_t)d.N * d.K * celo_conv2d_out_h(&d) * celo_conv2d_out_w(&d);
    c.x = randn(nx, 1), c.w = randn(nw, 0.5), c.b = randn(d.K, 0.5), c.y = zeros(c.ny), c.r = randn(c.ny, 1);
    c.col = zeros(celo_conv2d_col_size(&d));
    double *dx = zeros(nx), *dw = zeros(nw), *db = zeros(d.K), *dcol = zeros(celo_conv2d_col_size(&d));
    celo_nn_conv2d_backward_f64(dx, dw, db, c.col, dcol, c.r, c.x, c.w, &d);
    char what[64];
    snprintf(what, sizeof what, "conv2d %s dx", tag), check_grad(what, conv_loss, &c, c.x, dx, nx);
    snprintf(what, sizeof what, "conv2d %s dw", tag), check_grad(what, conv_loss, &c, c.w, dw, nw);
    snprintf(what, sizeof what, "conv2d %s db", tag), check_grad(what, conv_loss, &c, c.b, db, d.K);
}

typedef struct {
    int max, N, C, H, W, k;
    double *x, *y, *r;
    int32_t *arg;
} pool_ctx;
static double pool_loss(void *p)
{
    pool_ctx *c = p;
    if (c->max)
        celo_nn_maxpool_forward_f64(c->y, c->arg, c->x, c->N, c->C, c->H, c->W, c->k);
    else
        celo_nn_avgpool_forward_f64(c->y, c->x, c->N, c->C, c->H, c->W, c->k);
    return dot(c->y, c->r, (int64_t)c->N * c->C * (c->H / c->k) * (c->W / c->k));
}
static void test_pool(int max, int k, int H, int W)
{
    int N = 2, C = 3;
    int64_t nx = (int64_t)N * C * H * W, ny = (int64_t)N * C * (H / k) * (W / k);
    pool_ctx c = {max, N, C, H, W, k, randn(nx, 1), zeros(ny), randn(ny, 1), talloc((size_t)ny * sizeof(int32_t))};
    double *dx = zeros(nx);
    pool_loss(&c);
    if (max)
        celo_nn_maxpool_backward_f64(dx, c.r, c.arg, N, C, H, W, k);
    else
        celo_nn_avgpool_backward_f64(dx, c.r, N, C, H, W, k);
    char what[64];
    snprintf(what, sizeof what, "%s %dx%d on %dx%d dx", max ? "maxpool" : "avgpool", k, k, H, W);
    check_grad(what, pool_loss, &c, c.x, dx, nx);
}

typedef struct {
    int B, T, C, nh;
    double *x, *wqkv, *bqkv, *wo, *bo, *y, *qkv, *att, *out, *r;
} attn_ctx;
static double attn_loss(void *p)
{
    attn_ctx *c = p;
    celo_nn_attention_forward_f64(c->y, c->qkv, c->att, c->out, c->x, c->wqkv, c->bqkv, c->wo, c->bo, c->B, c->T, c->C,
                                  c->nh);
    return dot(c->y, c->r, (int64_t)c->B * c->T * c->C);
}
static void test_attention(void)
{
    int B = 2, T = 5, C = 8, nh = 2, n = B * T * C;
    attn_ctx c = {B,
                  T,
                  C,
                  nh,
                  randn(n, 1),
                  randn(3 * C * C, 0.4),
                  randn(3 * C, 0.2),
                  randn(C * C, 0.4),
                  randn(C, 0.2),
                  zeros(n),
                  zeros(3 * n),
                  zeros(B * nh * T * T),
                  zeros(n),
                  randn(n, 1)};
    double *dx = zeros(n), *dwqkv = zeros(3 * C * C), *dbqkv = zeros(3 * C), *dwo = zeros(C * C), *dbo = zeros(C);
    double *dqkv = zeros(3 * n), *dout = zeros(n), *datt = zeros(B * nh * T * T);
    attn_loss(&c);
    celo_nn_attention_backward_f64(dx, dwqkv, dbqkv, dwo, dbo, dqkv, dout, datt, c.r, c.x, c.qkv, c.att, c.out, c.wqkv,
                                   c.wo, B, T, C, nh);
    check_grad("attention dx", attn_loss, &c, c.x, dx, n);
    check_grad("attention dwqkv", attn_loss, &c, c.wqkv, dwqkv, 3 * C * C);
    check_grad("attention dbqkv", attn_loss, &c, c.bqkv, dbqkv, 3 * C);
    check_grad("attention dwo", attn_loss, &c, c.wo, dwo, C * C);
    check_grad("attention dbo", attn_loss, &c, c.bo, dbo, C);
    /* causality: y at time t must not depend on x after t */
    double y2 = c.y[C * 2], keep = c.x[C * 3];
    c.x[C * 3] += 1;
    attn_loss(&c);
    int causal = c.y[C * 2] == y2;
    c.x[C * 3] = keep;
    checks++, fails += !causal;
    printf("%s attention is causal (y_2 independent of x_3)\n", causal ? "ok  " : "FAIL");
}

typedef struct {
    int B, T, In, H;
    double *x, *wih, *whh, *bih, *bhh, *h, *c, *gates, *r;
} lstm_ctx;
static double lstm_loss(void *p)
{
    lstm_ctx *c = p;
    celo_nn_lstm_forward_f64(c->h, c->c, c->gates, c->x, c->wih, c->whh, c->bih, c->bhh, c->B, c->T, c->In, c->H);
    return dot(c->h, c->r, (int64_t)c->B * c->T * c->H);
}
static void test_lstm(void)
{
    int B = 3, T = 4, In = 3, H = 5, G = 4 * H;
    lstm_ctx c = {B,
                  T,
                  In,
                  H,
                  randn(B * T * In, 1),
                  randn(G * In, 0.5),
                  randn(G * H, 0.5),
                  randn(G, 0.3),
                  randn(G, 0.3),
                  zeros(B * T * H),
                  zeros(B * T * H),
                  zeros(B * T * G),
                  randn(B * T * H, 1)};
    double *dx = zeros(B * T * In), *dwih = zeros(G * In), *dwhh = zeros(G * H), *dbih = zeros(G), *dbhh = zeros(G);
    double *dgates = zeros(B * T * G), *dh = zeros(B * H), *dc = zeros(B * H);
    lstm_loss(&c);
    celo_nn_lstm_backward_f64(dx, dwih, dwhh, dbih, dbhh, dgates, dh, dc, c.r, c.x, c.h, c.c, c.gates, c.wih, c.whh, B,
                              T, In, H);
    check_grad("lstm dx", lstm_loss, &c, c.x, dx, B * T * In);
    check_grad("lstm dwih", lstm_loss, &c, c.wih, dwih, G * In);
    check_grad("lstm dwhh", lstm_loss, &c, c.whh, dwhh, G * H);
    check_grad("lstm dbih", lstm_loss, &c, c.bih, dbih, G);
    check_grad("lstm dbhh", lstm_loss, &c, c.bhh, dbhh, G);
}

/* ==== models ==== */

typedef struct {
    celo_model_f64 *m;
    celo_batch_f64 b;
} model_ctx;
static double model_loss(void *p)
{
    model_ctx *c = p;
    return celo_model_loss_f64(c->m, &c->b);
}

/* a batch for cfg: inputs N(0, 1), labels / tokens uniform */
static void make_batch(const celo_model_config *cfg, int n, int seq, celo_batch_f64 *b)
{
    memset(b, 0, sizeof *b);
    b->n = n, b->seq = seq;
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
        b->x = randn((int64_t)n * cfg->mlp.in, 1);
        if (cfg->mlp.loss == CELO_LOSS_MSE)
            b->target = randn((int64_t)n * cfg->mlp.out, 1);
        else
            b->labels = randint(n, cfg->mlp.out);
        break;
    case CELO_MODEL_AUTOENCODER: b->x = randn((int64_t)n * cfg->mlp.in, 1); break;
    case CELO_MODEL_CONVNET:
        b->x = randn((int64_t)n * cfg->conv.channels * cfg->conv.height * cfg->conv.width, 1);
        b->labels = randint(n, cfg->conv.out);
        break;
    case CELO_MODEL_GPT:
        b->tokens = randint((int64_t)n * seq, cfg->gpt.vocab), b->labels = randint((int64_t)n * seq, cfg->gpt.vocab);
        break;
    case CELO_MODEL_LSTM:
        b->tokens = randint((int64_t)n * seq, cfg->lstm.vocab), b->labels = randint((int64_t)n * seq, cfg->lstm.vocab);
        break;
    }
}

static double rel_err(const double *a, const float *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i])), s = fmax(s, fabs(a[i]));
    return s > 0 ? d / s : d;
}

/* float32 build against the double build on the same parameters (the double model's are the float model's,
 * exactly) and the same batch. Threshold 1e-4: float32 rounding (6e-8) times the accumulation depth of these
 * small models (sums of <= ~100 terms, a few layers deep) gives 1e-6..1e-5; the float build's GEMMs are
 * OpenBLAS and the double build's a plain loop, so a wrong transpose or leading dimension in a cblas call
 * shows as an O(1) error. */
#define F32_TOL 1e-4
static void compare_f32(const char *tag, const celo_model_config *cfg, model_ctx *c)
{
    char err[256];
    celo_model *m = celo_model_create(cfg, 7, err, sizeof err);
    if (!m) {
        printf("FAIL %s f32: %s\n", tag, err);
        fails++;
        return;
    }
    int64_t np = celo_model_nparams(m);
    const celo_batch_f64 *b = &c->b;
    int64_t nx = 0, nt = 0, nl = 0;
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER:
        nx = (int64_t)b->n * cfg->mlp.in, nt = b->target ? (int64_t)b->n * cfg->mlp.out : 0, nl = b->labels ? b->n : 0;
        break;
    case CELO_MODEL_CONVNET:
        nx = (int64_t)b->n * cfg->conv.channels * cfg->conv.height * cfg->conv.width, nl = b->n;
        break;
    default: nl = (int64_t)b->n * b->seq;
    }
    float *xf = talloc((size_t)(nx + 1) * sizeof(float)), *tf = talloc((size_t)(nt + 1) * sizeof(float));
    for (int64_t i = 0; i < nx; i++)
        xf[i] = (float)b->x[i];
    for (int64_t i = 0; i < nt; i++)
        tf[i] = (float)b->target[i];
    (void)nl;
    /* both models at the double model's current parameters, rounded to float */
    double *pd = celo_model_params_f64(c->m);
    float *pf = celo_model_params(m);
    for (int64_t i = 0; i < np; i++)
        pd[i] = pf[i];
    celo_batch bf = {b->n, b->seq, nx ? xf : NULL, b->tokens, b->labels, nt ? tf : NULL};
    double ld = celo_model_loss_f64(c->m, b);
    float lf = celo_model_loss(m, &bf);
    celo_model_backward_f64(c->m);
    celo_model_backward(m);
    double el = fabs(ld - lf) / fabs(ld);
    double eg = rel_err(celo_model_grads_f64(c->m), celo_model_grads(m), np);
    int ok = el < F32_TOL && eg < F32_TOL;
    checks++, fails += !ok;
    printf("%s %-40s loss %.2e, grads %.2e\n", ok ? "ok  " : "FAIL", tag, el, eg);
    celo_model_free(m);
}

/* NULL, or what test_model does to a model's parameters before the checks (Mamba: mamba_prep) */
static void (*model_prep)(celo_model_f64 *m) = NULL;

/* Mamba's init has delta = softplus(dt bias) in [1e-3, 0.1], so the decays are ~1 and A_log's gradient ~1e-6, where
 * finite differences measure their own rounding (1e-5 relative, above the threshold): each layer's dt bias rows
 * and A_log are moved to delta ~ 1 and A = -exp(A_log) in [-0.4, -1.1], decays 0.3..0.7 (a wrong decay term then
 * shows) */
static void mamba_prep(celo_model_f64 *m)
{
    for (int i = 0; i < celo_model_ntensors_f64(m); i++) {
        const celo_param_tensor *t = celo_model_tensor_f64(m, i);
        double *p = celo_model_params_f64(m) + t->offset;
        const char *dot = strstr(t->name, ".mamba.");
        if (!dot)
            continue;
        if (!strcmp(dot, ".mamba.A_log"))
            for (int64_t h = 0; h < t->numel; h++)
                p[h] = -1 + 0.3 * (double)h;
        if (!strcmp(dot, ".mamba.in_proj.bias")) {
            int64_t nh = celo_model_cfg_f64(m)->gpt.heads;
            for (int64_t h = 0; h < nh; h++)
                p[t->numel - nh + h] = 0.3 + 0.2 * (double)h;
        }
    }
}

static void test_model(const char *tag, const celo_model_config *cfg, int n, int seq)
{
    char err[256];
    model_ctx c = {celo_model_create_f64(cfg, 7, err, sizeof err), {0}};
    if (!c.m) {
        printf("FAIL %s: %s\n", tag, err);
        fails++;
        return;
    }
    if (model_prep)
        model_prep(c.m);
    make_batch(cfg, n, seq, &c.b);
    double loss = model_loss(&c);
    if (celo_model_backward_f64(c.m) != 0 || !isfinite(loss)) {
        printf("FAIL %s: loss %g: %s\n", tag, loss, celo_model_error_f64(c.m));
        fails++;
        celo_model_free_f64(c.m);
        return;
    }
    int64_t np = celo_model_nparams_f64(c.m);
    double *g = zeros(np);
    memcpy(g, celo_model_grads_f64(c.m), (size_t)np * sizeof(double));
    double *p = celo_model_params_f64(c.m);
    for (int i = 0; i < celo_model_ntensors_f64(c.m); i++) {
        const celo_param_tensor *t = celo_model_tensor_f64(c.m, i);
        char what[128];
        snprintf(what, sizeof what, "%s %s", tag, t->name);
        check_grad(what, model_loss, &c, p + t->offset, g + t->offset, t->numel);
    }
    char what[64];
    snprintf(what, sizeof what, "%s float32 = float64", tag);
    compare_f32(what, cfg, &c);
    celo_model_free_f64(c.m);
}

/* ==== models from block descriptions ==== */

/* every tensor of a model made from a description against finite differences of its loss; b: its batch */
static void test_desc(const char *tag, const celo_model_desc *d, celo_batch_f64 b)
{
    char err[256];
    model_ctx c = {celo_model_create_desc_f64(d, 7, err, sizeof err), b};
    if (!c.m) {
        printf("FAIL %s: %s\n", tag, err);
        fails++;
        return;
    }
    double loss = model_loss(&c);
    if (celo_model_backward_f64(c.m) != 0 || !isfinite(loss)) {
        printf("FAIL %s: loss %g: %s\n", tag, loss, celo_model_error_f64(c.m));
        fails++;
        celo_model_free_f64(c.m);
        return;
    }
    int64_t np = celo_model_nparams_f64(c.m);
    double *g = zeros(np);
    memcpy(g, celo_model_grads_f64(c.m), (size_t)np * sizeof(double));
    double *p = celo_model_params_f64(c.m);
    for (int i = 0; i < celo_model_ntensors_f64(c.m); i++) {
        const celo_param_tensor *t = celo_model_tensor_f64(c.m, i);
        char what[128];
        snprintf(what, sizeof what, "%s %s", tag, t->name);
        check_grad(what, model_loss, &c, p + t->offset, g + t->offset, t->numel);
    }
    celo_model_free_f64(c.m);
}

static void test_descs(void)
{
    /* an MLP with a residual layer around a layer norm, MSE against a target */
    celo_block_desc res[] = {
        {.kind = CELO_BLOCK_LINEAR, .name = "fc1", .out = 7},
        {.kind = CELO_BLOCK_LAYERNORM, .name = "ln"},
        {.kind = CELO_BLOCK_LINEAR, .name = "fc2", .out = 7},
        {.kind = CELO_BLOCK_ACT, .name = "h2", .act = CELO_ACT_GELU},
        {.kind = CELO_BLOCK_ADD, .name = "res", .from2 = "fc1"},
        {.kind = CELO_BLOCK_LINEAR, .name = "head", .tap = "logits", .out = 3},
    };
    celo_model_desc d = {.in_ndim = 1, .in_dims = {5}, .loss = CELO_LOSS_MSE, .nblocks = 6, .blocks = res};
    test_desc("desc residual mlp", &d, (celo_batch_f64){.n = 4, .x = randn(4 * 5, 1), .target = randn(4 * 3, 1)});
    /* a strided, padded convolution, average pooling and a linear head on its flattened output */
    celo_block_desc conv[] = {
        {.kind = CELO_BLOCK_CONV, .name = "c", .out = 3, .kernel = 3, .stride = 2, .pad = 1},
        {.kind = CELO_BLOCK_ACT, .name = "t", .act = CELO_ACT_TANH},
        {.kind = CELO_BLOCK_POOL, .name = "p", .pool = CELO_POOL_AVG, .kernel = 2},
        {.kind = CELO_BLOCK_LINEAR, .name = "fc", .tap = "logits", .out = 4},
    };
    d = (celo_model_desc){.in_ndim = 3, .in_dims = {2, 7, 9}, .nblocks = 4, .blocks = conv};
    test_desc("desc strided conv", &d, (celo_batch_f64){.n = 2, .x = randn(2 * 2 * 7 * 9, 1), .labels = randint(2, 4)});
    /* token model: attention over embeddings with a residual, then an LSTM layer, then a head */
    celo_block_desc seq[] = {
        {.kind = CELO_BLOCK_EMBED, .name = "emb", .vocab = 7, .out = 6},
        {.kind = CELO_BLOCK_POSITION, .name = "pos", .ctx = 5},
        {.kind = CELO_BLOCK_ATTENTION, .name = "attn", .heads = 2},
        {.kind = CELO_BLOCK_ADD, .name = "res", .from2 = "pos"},
        {.kind = CELO_BLOCK_LSTM, .name = "rnn", .out = 5},
        {.kind = CELO_BLOCK_LINEAR, .name = "head", .tap = "logits", .out = 7},
    };
    d = (celo_model_desc){.tokens = 1, .nblocks = 6, .blocks = seq};
    test_desc("desc attention + lstm", &d,
              (celo_batch_f64){.n = 2, .seq = 4, .tokens = randint(2 * 4, 7), .labels = randint(2 * 4, 7)});
}

/* ==== backward from taps ==== */

/* L = sum_j <r_j, tap_j> over the injected taps, for finite differences */
typedef struct {
    celo_model_f64 *m;
    celo_batch_f64 b;
    int n;
    const char *const *taps;
    const double *const *r;
} tap_ctx;
static double tap_loss(void *p)
{
    tap_ctx *c = p;
    if (celo_model_forward_f64(c->m, &c->b))
        return NAN;
    double s = 0;
    for (int j = 0; j < c->n; j++) {
        celo_tap_shape sh;
        const double *t = celo_model_tap_f64(c->m, c->taps[j], &sh);
        int64_t len = 1;
        for (int d = 0; d < sh.ndim; d++)
            len *= sh.shape[d];
        s += dot(t, c->r[j], len);
    }
    return s;
}

/* celo_model_backward_taps with random gradients r_j ~ N(0, 1) at n taps against finite differences of
 * sum_j <r_j, tap_j>; tensors after the last tap must get exactly zero gradients (and their differences are 0) */
static void test_taps(const char *tag, const celo_model_config *cfg, int n, int seq, int ntaps, const char *const *taps)
{
    char err[256];
    tap_ctx c = {celo_model_create_f64(cfg, 7, err, sizeof err), {0}, ntaps, taps, NULL};
    if (!c.m) {
        printf("FAIL %s: %s\n", tag, err);
        fails++;
        return;
    }
    if (model_prep)
        model_prep(c.m);
    make_batch(cfg, n, seq, &c.b);
    const double **r = talloc((size_t)ntaps * sizeof *r);
    if (celo_model_forward_f64(c.m, &c.b)) {
        printf("FAIL %s: forward: %s\n", tag, celo_model_error_f64(c.m));
        fails++;
        celo_model_free_f64(c.m);
        return;
    }
    for (int j = 0; j < ntaps; j++) {
        celo_tap_shape sh;
        int64_t len = 1;
        if (!celo_model_tap_f64(c.m, taps[j], &sh)) {
            printf("FAIL %s: no tap %s\n", tag, taps[j]);
            fails++;
            celo_model_free_f64(c.m);
            return;
        }
        for (int d = 0; d < sh.ndim; d++)
            len *= sh.shape[d];
        r[j] = randn(len, 1);
    }
    c.r = r;
    if (celo_model_backward_taps_f64(c.m, ntaps, taps, r)) {
        printf("FAIL %s: backward_taps: %s\n", tag, celo_model_error_f64(c.m));
        fails++;
        celo_model_free_f64(c.m);
        return;
    }
    int64_t np = celo_model_nparams_f64(c.m);
    double *g = zeros(np);
    memcpy(g, celo_model_grads_f64(c.m), (size_t)np * sizeof(double));
    double *p = celo_model_params_f64(c.m);
    for (int i = 0; i < celo_model_ntensors_f64(c.m); i++) {
        const celo_param_tensor *t = celo_model_tensor_f64(c.m, i);
        char what[160];
        snprintf(what, sizeof what, "%s <- %s: %s", tag, taps[ntaps - 1], t->name);
        int nonzero = 0;
        for (int64_t k = 0; k < t->numel; k++)
            nonzero |= g[t->offset + k] != 0;
        if (nonzero) {
            check_grad(what, tap_loss, &c, p + t->offset, g + t->offset, t->numel);
            continue;
        }
        /* a tensor the taps do not depend on: the differences of its first elements are zero too */
        double worst_fd = 0;
        for (int64_t k = 0; k < t->numel && k < 4; k++) {
            double keep = p[t->offset + k];
            p[t->offset + k] = keep + FD_H;
            double lp = tap_loss(&c);
            p[t->offset + k] = keep - FD_H;
            double lm = tap_loss(&c);
            p[t->offset + k] = keep;
            worst_fd = fmax(worst_fd, fabs(lp - lm) / (2 * FD_H));
        }
        int ok = worst_fd == 0;
        checks++, fails += !ok;
        printf("%s %-40s zero gradient, differences %.2e\n", ok ? "ok  " : "FAIL", what, worst_fd);
    }
    celo_model_free_f64(c.m);
}

int main(void)
{
    celo_rng_init(&rng, 20240607, 0);
    test_linear();
    test_activations();
    test_losses();
    test_layernorm();
    test_embedding();
    test_conv("3x2 stride 2 pad 1", (celo_conv2d_dims){2, 2, 5, 6, 3, 3, 2, 2, 1});
    test_conv("3x3 stride 1 pad 0", (celo_conv2d_dims){2, 3, 5, 5, 2, 3, 3, 1, 0});
    test_conv("3x3 stride 3 pad 2", (celo_conv2d_dims){1, 2, 7, 8, 2, 3, 3, 3, 2});
    test_conv("1x4 stride 1 pad 3", (celo_conv2d_dims){2, 1, 3, 4, 2, 1, 4, 1, 3});
    test_pool(1, 2, 4, 6);
    test_pool(1, 2, 5, 5); /* odd sides: the last row and column are dropped */
    test_pool(0, 2, 5, 4);
    test_pool(1, 3, 6, 6);
    test_attention();
    test_lstm();

    celo_model_config mlp = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 6, .nhidden = 2, .hidden = {8, 7}, .out = 4, .act = CELO_ACT_RELU}};
    test_model("mlp relu", &mlp, 5, 0);
    mlp.mlp.act = CELO_ACT_GELU;
    test_model("mlp gelu", &mlp, 5, 0);
    mlp.mlp.act = CELO_ACT_TANH, mlp.mlp.loss = CELO_LOSS_MSE;
    test_model("mlp tanh mse", &mlp, 5, 0);
    celo_model_config ae = {.kind = CELO_MODEL_AUTOENCODER,
                            .mlp = {.in = 8, .nhidden = 3, .hidden = {6, 3, 6}, .act = CELO_ACT_TANH}};
    test_model("autoencoder", &ae, 4, 0);
    celo_model_config conv = {.kind = CELO_MODEL_CONVNET, .conv = {1, 8, 8, 3, 4, 3, CELO_POOL_MAX, 5}};
    test_model("convnet max", &conv, 3, 0);
    conv.conv = (celo_convnet_config){2, 9, 10, 2, 3, 3, CELO_POOL_AVG, 4};
    test_model("convnet avg", &conv, 2, 0);
    celo_model_config gpt = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 6, .dim = 8, .heads = 2, .layers = 2}};
    test_model("gpt", &gpt, 2, 5);
    gpt.gpt.gpt2_init = 1;
    test_model("gpt (gpt2 init)", &gpt, 2, 6);
    /* linear-attention mixers, chunk 2 of 5 tokens (the layer alone with each map: test_linattn.c; not identity
     * here, whose denominator can come near 0 under a random init and then amplifies rounding) */
    static const char *const maps[] = {"gpt linear elu", "gpt linear mlp", "gpt linear hedgehog"};
    for (int f = CELO_FEATURE_ELU; f <= CELO_FEATURE_HEDGEHOG; f++) {
        celo_model_config lin = gpt;
        lin.gpt.gpt2_init = 0, lin.gpt.mixer = CELO_MIXER_LINEAR, lin.gpt.feature = (celo_feature_map)f;
        lin.gpt.chunk = 2;
        test_model(maps[f - CELO_FEATURE_ELU], &lin, 2, 5);
    }
    /* Mamba mixers (the layer alone: test_mamba.c), chunk 2 of 5 tokens: hedgehog with the denominator, conv 3,
     * expand 2; identity without it (no denominator to come near 0), state 3 (not the head size 4), conv 2; and
     * GPT-2's init (out_proj 0.02 / sqrt(2 layers)); decays moved off 1 by mamba_prep */
    celo_model_config mb = gpt;
    mb.gpt.gpt2_init = 0, mb.gpt.mixer = CELO_MIXER_MAMBA, mb.gpt.feature = CELO_FEATURE_HEDGEHOG;
    mb.gpt.normalize = 1, mb.gpt.chunk = 2, mb.gpt.conv = 3, mb.gpt.expand = 2;
    model_prep = mamba_prep;
    test_model("gpt mamba hedgehog normalize", &mb, 2, 5);
    mb.gpt.feature = CELO_FEATURE_IDENTITY, mb.gpt.normalize = 0, mb.gpt.state = 3, mb.gpt.conv = 2, mb.gpt.expand = 0;
    test_model("gpt mamba identity", &mb, 2, 5);
    mb.gpt.gpt2_init = 1;
    test_model("gpt mamba identity (gpt2 init)", &mb, 2, 5);
    model_prep = NULL;
    celo_model_config lstm = {.kind = CELO_MODEL_LSTM, .lstm = {.vocab = 9, .embed = 5, .hidden = 6, .layers = 2}};
    test_model("lstm", &lstm, 3, 4);

    test_descs();

    /* gradients injected at intermediate taps (one tap, and several at once as a layer-wise loss) */
    mlp.mlp.act = CELO_ACT_GELU, mlp.mlp.loss = CELO_LOSS_CROSS_ENTROPY;
    test_taps("mlp gelu", &mlp, 5, 0, 1, (const char *const[]){"h1"});
    test_taps("mlp gelu", &mlp, 5, 0, 2, (const char *const[]){"fc1", "h2"});
    test_taps("autoencoder", &ae, 4, 0, 1, (const char *const[]){"fc2"});
    conv.conv = (celo_convnet_config){1, 8, 8, 3, 4, 3, CELO_POOL_MAX, 5};
    test_taps("convnet max", &conv, 3, 0, 1, (const char *const[]){"pool1"});
    test_taps("convnet max", &conv, 3, 0, 1, (const char *const[]){"relu2"});
    gpt.gpt.gpt2_init = 0;
    test_taps("gpt", &gpt, 2, 5, 1, (const char *const[]){"h.0.attn"});
    test_taps("gpt", &gpt, 2, 5, 3, (const char *const[]){"h.0.attn", "h.0.mlp", "h.1.attn"});
    test_taps("gpt", &gpt, 2, 5, 2, (const char *const[]){"h.1.res1", "logits"});
    mb.gpt.gpt2_init = 0, model_prep = mamba_prep; /* every mixer's output is the tap h.l.attn */
    test_taps("gpt mamba", &mb, 2, 5, 2, (const char *const[]){"h.0.attn", "h.1.attn"});
    model_prep = NULL;
    test_taps("lstm", &lstm, 3, 4, 1, (const char *const[]){"lstm.0"});
    test_taps("lstm", &lstm, 3, 4, 2, (const char *const[]){"embed", "lstm.1"});

    for (int i = 0; i < nallocs; i++)
        free(allocs[i]);
    printf("%d checks, %d failed; worst finite-difference error %.2e (threshold %.0e)\n", checks, fails, worst, FD_TOL);
    return fails != 0;
}
