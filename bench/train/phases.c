/* bench/train/phases.c — where a celo training step spends its time: the loop of runtime/train.c (batch, forward +
 * loss, backward, finiteness checks, AdamW per tensor) with a clock around each phase, then the layers of the
 * model one by one at the model's shapes (median of repetitions). Built and run by bench/train/profile.sh:
 *
 *     phases MODEL [steps]        MODEL: mlp8, mlp28, gpt (the models of bench/train/MODEL.celo)
 *
 * Prints `phase NAME ms_per_step=X share=Y` lines and `layer NAME ms=X calls_per_step=K` lines. The optimizer is
 * stdlib adamw compiled ahead of time (`celo emit obj`), the code `celo run` JIT-compiles. With split batches
 * runtime/train.c runs the phases of many steps inside one thread team (team_steps); here each phase is an OpenMP
 * region of its own so that it can be timed alone, and the phases add up to a little more than a real step. */
#include "celort.h"
#include "data.h"
#include "nn.h"
#include "plan.h"
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "phases: %s\n", msg);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* as runtime/train.c */
static int all_finite(const float *x, int64_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)x;
    uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
    for (int64_t i = 0; i < n; i++)
        acc |= (u[i] & 0x7f800000u) + 0x00800000u;
    return !(acc & 0x80000000u);
}

static void fill(float *x, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- layer timing: median over reps of one call, in ms ---- */
#define REPS 15
typedef void (*thunk)(void *);
static double time_call(thunk f, void *ctx)
{
    double t[REPS];
    f(ctx); /* warm */
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        f(ctx);
        t[r] = now_s() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp_d);
    return 1e3 * t[REPS / 2];
}

typedef struct {
    int N, in, out, B, T, C, nh, V;
    float *x, *y, *w, *b, *dx, *dw, *db, *dy, *s1, *s2, *s3, *s4, *s5, *s6, *mean, *rstd;
    int32_t *ids;
} lctx;

static void f_lin_f(void *p)
{
    lctx *c = p;
    celo_nn_linear_forward(c->y, c->x, c->w, c->b, c->N, c->in, c->out);
}
static void f_lin_b(void *p)
{
    lctx *c = p;
    celo_nn_linear_backward(c->dx, c->dw, c->db, c->dy, c->x, c->w, c->N, c->in, c->out);
}
static void f_lin_b_nodx(void *p)
{
    lctx *c = p;
    celo_nn_linear_backward(NULL, c->dw, c->db, c->dy, c->x, c->w, c->N, c->in, c->out);
}
static void f_relu_f(void *p)
{
    lctx *c = p;
    celo_nn_relu_forward(c->y, c->x, (int64_t)c->N * c->in);
}
static void f_relu_b(void *p)
{
    lctx *c = p;
    celo_nn_relu_backward(c->dx, c->x, c->dy, (int64_t)c->N * c->in);
}
static void f_gelu_f(void *p)
{
    lctx *c = p;
    celo_nn_gelu_forward(c->y, c->x, (int64_t)c->N * c->in);
}
static void f_gelu_b(void *p)
{
    lctx *c = p;
    celo_nn_gelu_backward(c->dx, c->x, c->dy, (int64_t)c->N * c->in);
}
static void f_ce_f(void *p)
{
    lctx *c = p;
    celo_nn_crossentropy_forward(c->y, c->x, c->ids, c->N, c->in);
}
static void f_ce_b(void *p)
{
    lctx *c = p;
    celo_nn_crossentropy_backward(c->dx, c->y, c->ids, c->N, c->in, 1.0f);
}
static void f_ln_f(void *p)
{
    lctx *c = p;
    celo_nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->in);
}
static void f_ln_b(void *p)
{
    lctx *c = p;
    celo_nn_layernorm_backward(c->dx, c->dw, c->db, c->dy, c->x, c->mean, c->rstd, c->w, c->N, c->in);
}
static void f_att_f(void *p)
{
    lctx *c = p;
    celo_nn_attention_forward(c->y, c->s1, c->s2, c->s3, c->x, c->w, c->b, c->s4, c->s5, c->B, c->T, c->C, c->nh);
}
static void f_att_b(void *p)
{
    lctx *c = p;
    /* dwqkv, dbqkv, dwo, dbo share dw/db/s6 scratch (values do not matter, only the work) */
    celo_nn_attention_backward(c->dx, c->dw, c->db, c->dw + 3 * c->C * c->C, c->db + 3 * c->C, c->s6,
                               c->s6 + (int64_t)c->B * c->T * 3 * c->C, c->s6 + (int64_t)c->B * c->T * 4 * c->C, c->dy,
                               c->x, c->s1, c->s2, c->s3, c->w, c->s4, c->B, c->T, c->C, c->nh);
}
static void f_emb_f(void *p)
{
    lctx *c = p;
    celo_nn_embedding_forward(c->y, c->ids, c->w, c->N, c->C);
}
static void f_emb_b(void *p)
{
    lctx *c = p;
    celo_nn_embedding_backward(c->dw, c->dy, c->ids, c->N, c->C);
}

static lctx *lctx_new(int N, int maxdim, int B, int T, int C, int nh, int V)
{
    lctx *c = xmalloc(sizeof *c);
    int64_t big = (int64_t)N * maxdim, wmax = (int64_t)maxdim * maxdim;
    if (wmax < (int64_t)4 * C * C + 4 * C)
        wmax = (int64_t)4 * C * C + 4 * C;
    c->N = N, c->B = B, c->T = T, c->C = C, c->nh = nh, c->V = V;
    float **bufs[] = {&c->x, &c->y, &c->dx, &c->dy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i] = xmalloc(sizeof(float) * (size_t)big);
        fill(*bufs[i], big, 7 + (unsigned)i);
    }
    c->w = xmalloc(sizeof(float) * (size_t)wmax);
    c->dw = xmalloc(sizeof(float) * (size_t)wmax);
    c->b = xmalloc(sizeof(float) * (size_t)maxdim * 4);
    c->db = xmalloc(sizeof(float) * (size_t)maxdim * 4);
    fill(c->w, wmax, 3);
    fill(c->b, maxdim, 4);
    int64_t BT = (int64_t)B * T;
    c->s1 = xmalloc(sizeof(float) * (size_t)(BT * 3 * C + 1));              /* qkv */
    c->s2 = xmalloc(sizeof(float) * (size_t)((int64_t)B * nh * T * T + 1)); /* att */
    c->s3 = xmalloc(sizeof(float) * (size_t)(BT * C + 1));                  /* out */
    c->s4 = xmalloc(sizeof(float) * (size_t)C * C + 1);                     /* wo */
    c->s5 = xmalloc(sizeof(float) * (size_t)C + 1);                         /* bo */
    c->s6 = xmalloc(sizeof(float) * (size_t)(BT * 4 * C + (int64_t)B * nh * T * T + 1));
    fill(c->s4, (int64_t)C * C, 5);
    c->mean = xmalloc(sizeof(float) * (size_t)N);
    c->rstd = xmalloc(sizeof(float) * (size_t)N);
    c->ids = xmalloc(sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++)
        c->ids[i] = (int32_t)((i * 7919) % (V > 0 ? V : 10));
    return c;
}

static void layer(const char *name, thunk f, lctx *c, int calls)
{
    printf("layer %-34s ms=%.4f calls_per_step=%d\n", name, time_call(f, c), calls);
}

static void linear_layers(lctx *c, const char *tag, int N, int in, int out, int calls, int first)
{
    char n1[64], n2[64];
    c->N = N, c->in = in, c->out = out;
    snprintf(n1, sizeof n1, "%s fwd %dx%d->%d", tag, N, in, out);
    snprintf(n2, sizeof n2, "%s bwd%s", tag, first ? " (no dx)" : "");
    layer(n1, f_lin_f, c, calls);
    layer(n2, first ? f_lin_b_nodx : f_lin_b, c, calls);
}

int main(int argc, char **argv)
{
    celo_pick_blas_kernels(argv); /* as celo run: OpenBLAS kernels for this CPU, passive OpenMP threads */
    if (argc < 2) {
        fprintf(stderr, "usage: phases mlp8|mlp28|gpt [steps]\n");
        return 2;
    }
    const char *model = argv[1];
    int gpt = !strcmp(model, "gpt"), side = !strcmp(model, "mlp8") ? 8 : 28;
    if (!gpt && strcmp(model, "mlp8") && strcmp(model, "mlp28"))
        die("model: mlp8, mlp28 or gpt");
    int steps = argc > 2 ? atoi(argv[2]) : (gpt ? 60 : side == 8 ? 20000 : 1500);
    char err[512];
    celo_dataset tr, te;
    celo_text text;
    memset(&tr, 0, sizeof tr);
    memset(&text, 0, sizeof text);
    celo_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int B, T = 0, C = 128, nh = 4, L = 2;
    if (gpt) {
        if (celo_text_load_kjv(&text, 0.1, err, sizeof err))
            die(err);
        B = 16, T = 64;
        cfg.kind = CELO_MODEL_GPT;
        cfg.gpt = (celo_gpt_config){.vocab = text.vocab, .ctx = T, .dim = C, .heads = nh, .layers = L};
    } else {
        celo_fmnist_opts fo = {.size = side, .resize = CELO_RESIZE_AREA, .normalize = 1};
        if (celo_fmnist_load(&tr, &te, &fo, err, sizeof err))
            die(err);
        celo_dataset_free(&te);
        B = side == 8 ? 64 : 128;
        cfg.kind = CELO_MODEL_MLP;
        cfg.mlp = (celo_mlp_config){.in = side * side, .nhidden = 1, .hidden = {side == 8 ? 32 : 128}, .out = 10};
    }
    celo_model *m = celo_model_create(&cfg, 1, err, sizeof err);
    if (!m)
        die(err);
    float *p = celo_model_params(m), *g = celo_model_grads(m);
    int nt = celo_model_ntensors(m);
    /* as runtime/train.c: steps of >= 2^22 multiply-adds run two half batches at once on the model and a replica */
    celo_model *rep =
        celo_model_nparams(m) * B * (T ? T : 1) >= ((int64_t)1 << 22) ? celo_model_replica(m, err, sizeof err) : NULL;
    const celo_program *rule = &celo_rule_adamw;
    float hp[16];
    celo_program_defaults(rule, hp);
    hp[0] = gpt ? 3e-3f : 1e-3f, hp[4] = gpt ? 0.01f : 1e-4f;
    celo_state **st = xmalloc(sizeof *st * (size_t)nt);
    for (int i = 0; i < nt; i++) {
        const celo_param_tensor *pt = celo_model_tensor(m, i);
        st[i] = celo_state_new(rule, pt->ndim, pt->shape);
    }
    int32_t *btok = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)(T ? T : 1));
    int32_t *by = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)(T ? T : 1));
    float *bx = gpt ? NULL : xmalloc(sizeof(float) * (size_t)B * (size_t)tr.dim);
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)B);
    int32_t *perm = gpt ? NULL : xmalloc(sizeof(int32_t) * (size_t)tr.n);
    int64_t perm_epoch = -1;
    celo_step_opts so;
    memset(&so, 0, sizeof so);
    enum { P_DATA, P_FWD, P_BWD, P_CHECK, P_OPT, NP };
    const char *pname[NP] = {"data (batch gather)", "forward + loss", "backward (zero + grads)", "finite checks",
                             "optimizer (adamw, per tensor)"};
    if (rep)
        pname[P_FWD] = "forward + backward, two halves at once", pname[P_BWD] = "combine the halves' gradients";
    double acc[NP] = {0};
    int warm = steps / 10 > 0 ? steps / 10 : 1;
    double tall = 0;
    for (int k = 0; k < warm + steps; k++) {
        double t[NP + 1];
        t[0] = now_s();
        celo_batch b = {.n = B};
        if (gpt) {
            celo_text_batch(&text, CELO_SPLIT_TRAIN, 12345, (uint64_t)k, B, T, btok, by);
            b.seq = T, b.tokens = btok, b.labels = by;
        } else {
            int64_t per = tr.n / B, e = k / per, off = (k % per) * B;
            if (e != perm_epoch) { /* a plain shuffle: train.c's costs about as much, once per epoch */
                for (int64_t i = 0; i < tr.n; i++)
                    perm[i] = (int32_t)i;
                unsigned s = (unsigned)e * 2654435761u + 1;
                for (int64_t i = tr.n - 1; i > 0; i--) {
                    s = s * 1664525u + 1013904223u;
                    int64_t j = (int64_t)(((uint64_t)s * (uint64_t)(i + 1)) >> 32);
                    int32_t tmp = perm[i];
                    perm[i] = perm[j], perm[j] = tmp;
                }
                perm_epoch = e;
            }
            for (int j = 0; j < B; j++)
                idx[j] = perm[off + j];
            celo_dataset_gather(&tr, idx, B, bx, by, NULL);
            b.x = bx, b.labels = by;
        }
        t[1] = now_s();
        float loss;
        if (rep) {
            int n0 = B / 2, per = T ? T : 1;
            celo_batch h0 = b, h1 = b;
            h0.n = n0, h1.n = B - n0;
            if (h1.x)
                h1.x += (int64_t)n0 * tr.dim;
            if (h1.tokens)
                h1.tokens += (int64_t)n0 * per;
            h1.labels += (int64_t)n0 * per;
            float l0 = 0, l1 = 0;
            int r0 = 0, r1 = 0;
#pragma omp parallel sections num_threads(2) if (celo_threads() >= 2)
            {
#pragma omp section
                r0 = (l0 = celo_model_loss(m, &h0), celo_model_backward(m));
#pragma omp section
                r1 = (l1 = celo_model_loss(rep, &h1), celo_model_backward(rep));
            }
            if (r0 || r1)
                die(celo_model_error(r0 ? m : rep));
            t[2] = now_s();
            const float *g1 = celo_model_grads(rep);
            float w0 = (float)n0 / (float)B, w1 = (float)(B - n0) / (float)B;
            int64_t np = celo_model_nparams(m);
#pragma omp parallel for simd schedule(static) if (np >= 65536)
            for (int64_t i = 0; i < np; i++)
                g[i] = w0 * g[i] + w1 * g1[i];
            loss = (float)(((double)l0 * n0 + (double)l1 * (B - n0)) / B);
        } else {
            loss = celo_model_loss(m, &b);
            t[2] = now_s();
            if (celo_model_backward(m))
                die(celo_model_error(m));
        }
        t[3] = now_s();
        int ok = isfinite(loss);
        for (int i = 0; ok && i < nt; i++) {
            const celo_param_tensor *pt = celo_model_tensor(m, i);
            ok = all_finite(g + pt->offset, pt->numel);
        }
        t[4] = now_s();
        double tchk = 0;
        for (int i = 0; i < nt; i++) {
            const celo_param_tensor *pt = celo_model_tensor(m, i);
            if (celo_step(rule, st[i], p + pt->offset, g + pt->offset, hp, k + 1, &so))
                die(so.err);
            double c0 = now_s();
            ok &= all_finite(p + pt->offset, pt->numel);
            tchk += now_s() - c0;
        }
        t[5] = now_s();
        if (!ok)
            die("not finite");
        if (k >= warm) {
            for (int i = 0; i < NP; i++)
                acc[i] += t[i + 1] - t[i];
            acc[P_OPT] -= tchk;
            acc[P_CHECK] += tchk;
            tall += t[NP] - t[0];
        }
    }
    printf("model %s params=%lld tensors=%d batch=%d steps=%d steps_per_s=%.1f ms_per_step=%.4f threads=%d\n", model,
           (long long)celo_model_nparams(m), nt, B, steps, steps / tall, 1e3 * tall / steps, celo_threads());
    for (int i = 0; i < NP; i++)
        printf("phase %-30s ms_per_step=%.4f share=%.3f\n", pname[i], 1e3 * acc[i] / steps, acc[i] / tall);

    /* ---- the layers at the model's shapes ---- */
    if (gpt) {
        int N = B * T, V = text.vocab;
        lctx *c = lctx_new(N, 4 * C > V ? 4 * C : V, B, T, C, nh, V);
        c->N = N, c->C = C, c->in = C;
        layer("embedding fwd (wte)", f_emb_f, c, 1);
        layer("embedding bwd (wte)", f_emb_b, c, 1);
        layer("layernorm fwd", f_ln_f, c, 2 * L + 1);
        layer("layernorm bwd", f_ln_b, c, 2 * L + 1);
        layer("attention fwd (incl. qkv + proj GEMMs)", f_att_f, c, L);
        layer("attention bwd (incl. qkv + proj GEMMs)", f_att_b, c, L);
        linear_layers(c, "linear qkv", N, C, 3 * C, L, 0);
        linear_layers(c, "linear attn proj", N, C, C, L, 0);
        linear_layers(c, "linear mlp fc", N, C, 4 * C, L, 0);
        c->in = 4 * C;
        layer("gelu fwd (N x 4C)", f_gelu_f, c, L);
        layer("gelu bwd (N x 4C)", f_gelu_b, c, L);
        linear_layers(c, "linear mlp proj", N, 4 * C, C, L, 0);
        linear_layers(c, "linear lm_head", N, C, V, 1, 0);
        c->in = V;
        layer("cross-entropy fwd", f_ce_f, c, 1);
        layer("cross-entropy bwd", f_ce_b, c, 1);
    } else {
        int H = side == 8 ? 32 : 128, in = side * side;
        lctx *c = lctx_new(B, in > H ? in : H, 0, 0, 0, 0, 10);
        linear_layers(c, "linear fc1", B, in, H, 1, 1);
        c->N = B, c->in = H;
        layer("relu fwd", f_relu_f, c, 1);
        layer("relu bwd", f_relu_b, c, 1);
        linear_layers(c, "linear fc2", B, H, 10, 1, 0);
        c->N = B, c->in = 10;
        layer("cross-entropy fwd", f_ce_f, c, 1);
        layer("cross-entropy bwd", f_ce_b, c, 1);
    }
    /* the optimizer alone, every tensor once (median step) */
    {
        double tt[REPS];
        for (int r = 0; r < REPS; r++) {
            double t0 = now_s();
            for (int i = 0; i < nt; i++) {
                const celo_param_tensor *pt = celo_model_tensor(m, i);
                celo_step(rule, st[i], p + pt->offset, g + pt->offset, hp, 1000 + r, &so);
            }
            tt[r] = now_s() - t0;
        }
        qsort(tt, REPS, sizeof tt[0], cmp_d);
        printf("layer %-34s ms=%.4f calls_per_step=1\n", "adamw over all tensors", 1e3 * tt[REPS / 2]);
    }
    return 0;
}
