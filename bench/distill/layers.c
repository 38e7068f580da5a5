/* bench/distill/layers.c — celo's token mixers one layer at a time (runtime/nn.h): forward + backward throughput,
 * per-token generation cost as the context grows, and the outputs that bench/distill/torch_layers.py checks its
 * PyTorch layers against. Built and run by bench/distill/run.sh (and gen.sh):
 *
 *     layers fb    KIND B T C NH BUDGET_S    forward + backward of one layer on [B, T, C]: prints
 *                                            `fb kind=K ... tokens_per_s=X ms=Y iters=N` (median step time)
 *     layers step  KIND B C NH CTX BUDGET_S  one generation step of B sequences whose context holds CTX tokens:
 *                                            prints `step kind=K ... ctx=CTX us_per_token=X iters=N state_bytes=S`
 *                                            (S: the key/value cache, or the recurrent state)
 *     layers check KIND B T C NH FILE        writes the forward output y [B, T, C] (float32) for the deterministic
 *                                            input and weights below (det_fill), and dx for dy = y
 *
 * KIND: softmax (celo_nn_attention_*), linattn-elu, linattn-hedgehog (celo_nn_linattn_*), mamba-hedgehog-norm,
 * mamba-identity (celo_nn_mamba_*: the hedgehog map on B and C with the normalizing all-ones channel, and the
 * identity map without). Each layer includes its input and output projections. Threads: OMP_NUM_THREADS. As every
 * celo program, it first sets the thread runtime's environment (celo_pick_blas_kernels, runtime/blas_env.c: idle
 * OpenMP threads sleep rather than spin, OMP_WAIT_POLICY=passive, unless the caller set it).
 *
 * Timing: two untimed repetitions (one when it takes a second or more), then repetitions until BUDGET_S seconds
 * have passed (at least 5, or at least 1 when 5 would take more than 5 s); the median. */
#include "nn.h"
#include "plan.h"

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
    fprintf(stderr, "layers: %s\n", msg);
    exit(1);
}

static float *falloc(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p)
        die("out of memory");
    return p;
}

/* element j of tensor i: sin(0.7 j + 1.3 i + 0.5) / sqrt(fan_in) (fan_in 0: scale 0.1); torch_layers.py computes
 * the same values in float64 and rounds them to float32 */
static void det_fill(float *x, int64_t n, int i, int fan_in)
{
    double s = fan_in > 0 ? 1 / sqrt((double)fan_in) : 0.1;
    for (int64_t j = 0; j < n; j++)
        x[j] = (float)(sin(0.7 * (double)j + 1.3 * i + 0.5) * s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef enum { K_SOFTMAX, K_LINATTN, K_MAMBA } kind_class;

/* one layer: its tensors, buffers and passes */
typedef struct {
    kind_class cls;
    const char *name;
    int B, T, C, nh;
    int nt;           /* tensors */
    int64_t size[16]; /* elements per tensor */
    int fan[16];      /* fan-in for det_fill (0: a vector) */
    float *w[16], *dw[16];
    float *x, *y, *dx, *dy, *saved, *dsaved, *work; /* softmax: saved = qkv | att | out, dsaved the same */
    celo_linattn_dims la;
    celo_mamba_dims mb;
} layer;

static void add_tensor(layer *L, int64_t n, int fan)
{
    L->size[L->nt] = n;
    L->fan[L->nt] = fan;
    L->nt++;
}

static void layer_init(layer *L, const char *kind, int B, int T, int C, int nh)
{
    memset(L, 0, sizeof *L);
    L->name = kind;
    L->B = B, L->T = T, L->C = C, L->nh = nh;
    int hs = C / nh;
    int64_t R = (int64_t)B * T, nsaved = 0, nwork = 0;
    if (!strcmp(kind, "softmax")) {
        L->cls = K_SOFTMAX;
        add_tensor(L, 3 * C * C, C), add_tensor(L, 3 * C, 0), add_tensor(L, C * C, C), add_tensor(L, C, 0);
        nsaved = R * 3 * C + (int64_t)B * nh * T * T + R * C;
    } else if (!strncmp(kind, "linattn-", 8)) {
        L->cls = K_LINATTN;
        celo_feature_map f = !strcmp(kind + 8, "elu")        ? CELO_FEATURE_ELU
                             : !strcmp(kind + 8, "hedgehog") ? CELO_FEATURE_HEDGEHOG
                             : !strcmp(kind + 8, "identity") ? CELO_FEATURE_IDENTITY
                                                             : (die("unknown feature"), CELO_FEATURE_ELU);
        L->la = (celo_linattn_dims){B, T, C, nh, f, 0};
        add_tensor(L, 3 * C * C, C), add_tensor(L, 3 * C, 0), add_tensor(L, C * C, C), add_tensor(L, C, 0);
        if (f == CELO_FEATURE_HEDGEHOG)
            add_tensor(L, hs * hs, hs), add_tensor(L, hs * hs, hs);
        nsaved = celo_linattn_saved_size(&L->la);
        nwork = celo_linattn_work_size(&L->la);
    } else if (!strncmp(kind, "mamba-", 6)) {
        L->cls = K_MAMBA;
        int norm = strstr(kind, "-norm") != NULL;
        celo_feature_map f = !strncmp(kind + 6, "hedgehog", 8)   ? CELO_FEATURE_HEDGEHOG
                             : !strncmp(kind + 6, "identity", 8) ? CELO_FEATURE_IDENTITY
                             : !strncmp(kind + 6, "elu", 3)      ? CELO_FEATURE_ELU
                                                                 : (die("unknown feature"), CELO_FEATURE_ELU);
        L->mb = (celo_mamba_dims){B, T, C, nh, 0, 0, 0, f, norm, 0};
        int N = hs, K = 4, Di = C, nin = 2 * Di + 2 * nh * N + nh, nconv = Di + 2 * nh * N;
        add_tensor(L, (int64_t)nin * C, C), add_tensor(L, nin, 0);
        add_tensor(L, (int64_t)nconv * K, K), add_tensor(L, nconv, 0);
        add_tensor(L, nh, 0), add_tensor(L, nh, 0);
        if (f == CELO_FEATURE_HEDGEHOG)
            add_tensor(L, N * N, N), add_tensor(L, N * N, N);
        add_tensor(L, (int64_t)C * Di, Di), add_tensor(L, C, 0);
        if (L->nt != celo_mamba_ntensors(f))
            die("mamba tensor count differs from celo_mamba_ntensors");
        nsaved = celo_mamba_saved_size(&L->mb);
        nwork = celo_mamba_work_size(&L->mb);
    } else {
        die("unknown kind (softmax, linattn-elu, linattn-hedgehog, mamba-hedgehog-norm, mamba-identity)");
    }
    for (int i = 0; i < L->nt; i++) {
        L->w[i] = falloc(L->size[i]);
        L->dw[i] = falloc(L->size[i]);
        det_fill(L->w[i], L->size[i], i, L->fan[i]);
    }
    L->x = falloc(R * C), L->y = falloc(R * C), L->dx = falloc(R * C), L->dy = falloc(R * C);
    det_fill(L->x, R * C, 100, 1);
    det_fill(L->dy, R * C, 101, 1);
    L->saved = falloc(nsaved), L->dsaved = falloc(nsaved), L->work = falloc(nwork);
}

static void layer_forward(layer *L)
{
    int64_t R = (int64_t)L->B * L->T;
    switch (L->cls) {
    case K_SOFTMAX: {
        float *qkv = L->saved, *att = qkv + R * 3 * L->C, *out = att + (int64_t)L->B * L->nh * L->T * L->T;
        celo_nn_attention_forward(L->y, qkv, att, out, L->x, L->w[0], L->w[1], L->w[2], L->w[3], L->B, L->T, L->C,
                                  L->nh);
        break;
    }
    case K_LINATTN: celo_nn_linattn_forward(L->y, L->saved, L->work, L->x, (const float *const *)L->w, &L->la); break;
    case K_MAMBA: celo_nn_mamba_forward(L->y, L->saved, L->work, L->x, (const float *const *)L->w, &L->mb); break;
    }
}

static void layer_backward(layer *L)
{
    int64_t R = (int64_t)L->B * L->T;
    switch (L->cls) {
    case K_SOFTMAX: {
        float *qkv = L->saved, *att = qkv + R * 3 * L->C, *out = att + (int64_t)L->B * L->nh * L->T * L->T;
        float *dqkv = L->dsaved, *datt = dqkv + R * 3 * L->C, *dout = datt + (int64_t)L->B * L->nh * L->T * L->T;
        celo_nn_attention_backward(L->dx, L->dw[0], L->dw[1], L->dw[2], L->dw[3], dqkv, dout, datt, L->dy, L->x, qkv,
                                   att, out, L->w[0], L->w[2], L->B, L->T, L->C, L->nh);
        break;
    }
    case K_LINATTN:
        celo_nn_linattn_backward(L->dx, L->dw, L->dsaved, L->work, L->dy, L->x, L->saved, (const float *const *)L->w,
                                 &L->la);
        break;
    case K_MAMBA:
        celo_nn_mamba_backward(L->dx, L->dw, L->dsaved, L->work, L->dy, L->x, L->saved, (const float *const *)L->w,
                               &L->mb);
        break;
    }
}

/* median seconds of fn over BUDGET_S after untimed calls (the timing rule above) */
static double median_time(void (*fn)(void *), void *arg, double budget, int *iters)
{
    double w0 = now_s();
    fn(arg);
    if (now_s() - w0 < 1) /* a second untimed repetition unless the first took a second or more */
        fn(arg);
    int cap = 4096, n = 0;
    double *t = malloc(sizeof(double) * (size_t)cap), start = now_s();
    /* at least 5 repetitions, unless they would take more than 5 s (then at least 1) */
    while (n < cap && (n < 5 || now_s() - start < budget) && !(n >= 1 && now_s() - start > 5)) {
        double t0 = now_s();
        fn(arg);
        t[n++] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    *iters = n;
    return m;
}

static void fb_once(void *p)
{
    layer_forward(p);
    layer_backward(p);
}

/* ---- generation steps ---- */

typedef struct {
    layer *L;
    int ctx;
    float *state, *kc, *vc, *xs, *ys, *work;
} stepper;

static void step_once(void *p)
{
    stepper *s = p;
    layer *L = s->L;
    switch (L->cls) {
    case K_SOFTMAX:
        /* the token at position ctx sees the ctx cached tokens and itself; the cache keeps its length */
        celo_nn_attention_step(s->ys, s->kc, s->vc, s->work, s->xs, L->w[0], L->w[1], L->w[2], L->w[3], L->B, L->C,
                               L->nh, s->ctx, s->ctx + 1);
        break;
    case K_LINATTN: celo_nn_linattn_step(s->ys, s->state, s->work, s->xs, (const float *const *)L->w, &L->la); break;
    case K_MAMBA: celo_nn_mamba_step(s->ys, s->state, s->work, s->xs, (const float *const *)L->w, &L->mb); break;
    }
}

static void run_step(const char *kind, int B, int C, int nh, int ctx, double budget)
{
    layer L;
    layer_init(&L, kind, B, 1, C, nh);
    stepper s = {&L, ctx, NULL, NULL, NULL, NULL, NULL, NULL};
    s.xs = falloc((int64_t)B * C), s.ys = falloc((int64_t)B * C);
    det_fill(s.xs, (int64_t)B * C, 100, 1);
    if (L.cls == K_SOFTMAX) {
        int64_t n = (int64_t)B * C * (ctx + 1); /* [B, nh, ctx + 1, hs] keys, and values */
        s.kc = falloc(n), s.vc = falloc(n);
        det_fill(s.kc, n, 102, C), det_fill(s.vc, n, 103, 1);
        s.work = falloc(celo_attention_step_work_size(B, C, nh, ctx + 1));
    } else if (L.cls == K_LINATTN) {
        /* the state's size does not depend on the context: any contents cost the same */
        int64_t n = celo_linattn_state_size(&L.la);
        s.state = falloc(n);
        det_fill(s.state, n, 104, 0);
        for (int64_t i = 0; i < n; i++)
            s.state[i] = fabsf(s.state[i]) * (float)ctx; /* a positive z of a long context */
        s.work = falloc(celo_linattn_step_work_size(&L.la));
    } else {
        int64_t n = celo_mamba_state_size(&L.mb);
        s.state = falloc(n);
        det_fill(s.state, n, 104, 0);
        for (int64_t i = 0; i < n; i++)
            s.state[i] = fabsf(s.state[i]);
        s.work = falloc(celo_mamba_step_work_size(&L.mb));
    }
    int64_t state = L.cls == K_SOFTMAX   ? 2 * (int64_t)B * C * (ctx + 1)
                    : L.cls == K_LINATTN ? celo_linattn_state_size(&L.la)
                                         : celo_mamba_state_size(&L.mb);
    int iters;
    double t = median_time(step_once, &s, budget, &iters);
    printf("step kind=%s B=%d C=%d nh=%d ctx=%d us_per_token=%.3f iters=%d state_bytes=%lld\n", kind, B, C, nh, ctx,
           1e6 * t / B, iters, (long long)(state * (int64_t)sizeof(float)));
}

int main(int argc, char **argv)
{
    celo_pick_blas_kernels(argv);
    if (argc >= 8 && !strcmp(argv[1], "fb")) {
        layer L;
        layer_init(&L, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
        int iters;
        double t = median_time(fb_once, &L, atof(argv[7]), &iters);
        printf("fb kind=%s B=%d T=%d C=%d nh=%d tokens_per_s=%.1f ms=%.4f iters=%d\n", L.name, L.B, L.T, L.C, L.nh,
               (double)L.B * L.T / t, 1e3 * t, iters);
        return 0;
    }
    if (argc >= 8 && !strcmp(argv[1], "step")) {
        run_step(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atof(argv[7]));
        return 0;
    }
    if (argc >= 8 && !strcmp(argv[1], "check")) {
        layer L;
        layer_init(&L, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
        int64_t n = (int64_t)L.B * L.T * L.C;
        layer_forward(&L);
        memcpy(L.dy, L.y, (size_t)n * sizeof(float));
        layer_backward(&L);
        FILE *f = fopen(argv[7], "wb");
        if (!f || fwrite(L.y, sizeof(float), (size_t)n, f) != (size_t)n ||
            fwrite(L.dx, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f))
            die("cannot write the check file");
        return 0;
    }
    fprintf(stderr, "usage: layers fb KIND B T C NH BUDGET_S | step KIND B C NH CTX BUDGET_S | "
                    "check KIND B T C NH FILE\n");
    return 2;
}
