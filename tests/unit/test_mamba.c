/*
 * test_mamba.c — the Mamba mixer (nn.h; runtime/nn/mamba.inc), for each feature map (identity, elu, mlp, hedgehog)
 * with and without the normalizer:
 *   1. finite differences of the layer in float64: dx and every tensor (in_proj, conv, A_log, D, the maps' weights
 *      and biases, out_proj), B 2, T 7, C 8, 2 heads, expand 1 and 2, N the default 4, 6 and 3, K 4, 1 and 2,
 *      with chunk 3 (3 + 3 + 1) and with one chunk, decays a = exp(delta A) between about 0.2 and 0.9; L = sum(y r),
 *      central differences, h = 1e-5, error max |g - n| / max(|g|, |n|) over up to 48 entries per tensor < 1e-6
 *      (as test_linattn.c). Measured: see the last line of the output (docs/distill.md quotes it).
 *   2. the chunked form against the sequential scan (celo_nn_mamba_forward_naive) on T = 37: chunks 1, 5, 8 (not
 *      dividing T), 37 and the default 64; y in float64 (tolerance 1e-12 relative to max |y|) and float32 (1e-5:
 *      float32 rounding over sums of <= 37 decayed terms); and the backward pass after either forward: float64
 *      gradients equal within 1e-10, float32 (after the chunked forward) against float64 within 1e-4;
 *   3. the recurrent step (celo_nn_mamba_step) token by token against the sequential scan: float64 1e-12, float32
 *      1e-5;
 *   4. causality: y at tokens before t does not move when x at token t does, and y from t on does;
 *   5. one and two threads give the same bits (float32 forward and backward, shapes above the threading threshold);
 *   6. against PyTorch: tests/golden/mamba/<feature>[_norm]/ from tests/reference/gen_mamba.py (the sequential scan
 *      written with torch ops, autograd for the gradients, run in float64 and stored in float64): y, dx and each
 *      parameter gradient of the float64 layer within 1e-10 and of the float32 layer within 1e-4, relative to the
 *      largest value.
 * Run from the repository root (tests/run.sh does); CELO_GOLDEN_MAMBA overrides the directory.
 */
#include "celort.h"
#include "nn.h"
#include "nn/nn_f64.h"
#include "rng.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H       1e-5
#define FD_TOL     1e-6
#define FD_SAMPLES 48
#define SEQ_TOL32  1e-5
#define SEQ_TOL64  1e-12
#define BWD_TOL64  1e-10
#define BWD_TOL32  1e-4
#define REF_TOL32  1e-4
#define REF_TOL64  1e-10
#define MAXT       12

static int fails = 0;
static double worst_fd = 0, worst_seq32 = 0, worst_seq64 = 0, worst_bwd64 = 0, worst_bwd32 = 0, worst_step32 = 0,
              worst_step64 = 0;
static celo_rng rng;
static const char *const feature_names[] = {"identity", "elu", "mlp", "hedgehog"};

static void report(int ok, const char *what, double err, double tol)
{
    printf("%s %-64s err %.2e (tolerance %.0e)\n", ok ? "ok  " : "FAIL", what, err, tol);
    fails += !ok;
}

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    fails += !ok;
}

/* max |a - b| / max |b| */
static double nerr(const double *a, const double *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i])), s = fmax(s, fabs(b[i]));
    return s > 0 ? d / s : d;
}

static float *to_f32(const double *a, int64_t n)
{
    float *f = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)a[i];
    return f;
}

static double *to_f64(const float *a, int64_t n)
{
    double *f = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++)
        f[i] = a[i];
    return f;
}

/* ---- a layer's tensors, in double ---- */
typedef struct {
    celo_mamba_dims d;
    int nt, N, K, Di, W, Cx;
    int64_t numel[MAXT], ny;
    double *w[MAXT], *x, *r;
} layer;

static const char *tensor_name(const layer *L, int i)
{
    static const char *head[6] = {"in_proj.weight", "in_proj.bias", "conv.weight", "conv.bias", "A_log", "D"};
    static const char *mlp[4] = {"feature_q.weight", "feature_q.bias", "feature_k.weight", "feature_k.bias"};
    static const char *hh[2] = {"feature_q.weight", "feature_k.weight"};
    if (i < 6)
        return head[i];
    if (i == L->nt - 2)
        return "out_proj.weight";
    if (i == L->nt - 1)
        return "out_proj.bias";
    return L->d.feature == CELO_FEATURE_MLP ? mlp[i - 6] : hh[i - 6];
}

/* the tensors' sizes in nn.h's order */
static void layer_shape(layer *L, int B, int T, int C, int nh, int N, int K, int expand, celo_feature_map f,
                        int normalize, int chunk)
{
    memset(L, 0, sizeof *L);
    L->d = (celo_mamba_dims){B, T, C, nh, N, K, expand, f, normalize, chunk};
    L->N = N > 0 ? N : C / nh, L->K = K > 0 ? K : 4, L->Di = (expand > 0 ? expand : 1) * C;
    L->W = 2 * L->Di + 2 * nh * L->N + nh, L->Cx = L->Di + 2 * nh * L->N;
    L->nt = celo_mamba_ntensors(f);
    int64_t NN = (int64_t)L->N * L->N;
    int64_t sz[MAXT] = {(int64_t)L->W * C, L->W, (int64_t)L->Cx * L->K, L->Cx, nh, nh};
    int k = 6;
    if (f == CELO_FEATURE_MLP)
        sz[k++] = NN, sz[k++] = L->N, sz[k++] = NN, sz[k++] = L->N;
    else if (f == CELO_FEATURE_HEDGEHOG)
        sz[k++] = NN, sz[k++] = NN;
    sz[k++] = (int64_t)C * L->Di, sz[k++] = C;
    for (int i = 0; i < L->nt; i++)
        L->numel[i] = sz[i];
    L->ny = (int64_t)B * T * C;
}

static double *randn(int64_t n, double scale, double shift)
{
    double *x = calloc((size_t)n, sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = shift + scale * celo_rng_normal(&rng);
    return x;
}

/* Random tensors: decays a = exp(-softplus(dt) exp(A_log)) well inside (0, 1); the conv's b, c channels shifted
 * up so that the identity map's C . z stays away from 0 when normalizing (with random signs the denominator can
 * vanish, and with it the precision of any check) */
static void layer_init(layer *L, int B, int T, int C, int nh, int N, int K, int expand, celo_feature_map f,
                       int normalize, int chunk)
{
    layer_shape(L, B, T, C, nh, N, K, expand, f, normalize, chunk);
    for (int i = 0; i < L->nt; i++)
        L->w[i] = randn(L->numel[i], i == 0 ? 0.3 : 0.4, 0);
    for (int h = 0; h < nh; h++) {
        L->w[1][L->W - nh + h] = -0.5 + 0.3 * h; /* dt's bias: delta about 0.5 to 0.65 */
        L->w[4][h] = 0.3 * celo_rng_normal(&rng) - 0.3 * h;
        L->w[5][h] = 1 + 0.2 * celo_rng_normal(&rng);
    }
    for (int c = L->Di; c < L->Cx; c++)
        L->w[3][c] += 2;
    L->x = randn(L->ny, 1, 0);
    L->r = randn(L->ny, 1, 0);
}

static void layer_free(layer *L)
{
    for (int i = 0; i < L->nt; i++)
        free(L->w[i]);
    free(L->x), free(L->r);
}

static const char *desc(const layer *L)
{
    static char s[96];
    snprintf(s, sizeof s, "%s%s E%d N%d K%d chunk %d", feature_names[L->d.feature], L->d.normalize ? "+norm" : "",
             L->Di / L->d.C, L->N, L->K, L->d.chunk);
    return s;
}

typedef void (*fwd64_fn)(double *, double *, double *, const double *, const double *const *, const celo_mamba_dims *);

/* ---- 1. finite differences ---- */
typedef struct {
    layer *L;
    double *y, *saved, *work;
} fd_ctx;

static double fd_loss(fd_ctx *c)
{
    celo_nn_mamba_forward_f64(c->y, c->saved, c->work, c->L->x, (const double *const *)c->L->w, &c->L->d);
    double s = 0;
    for (int64_t i = 0; i < c->L->ny; i++)
        s += c->y[i] * c->L->r[i];
    return s;
}

static void check_fd(const char *what, fd_ctx *c, double *x, const double *g, int64_t n)
{
    int64_t count = n < FD_SAMPLES ? n : FD_SAMPLES;
    double maxdiff = 0, scale = 0;
    for (int64_t s = 0; s < count; s++) {
        int64_t i = count == n ? s : (s * n) / count + (s * 7919) % (n / count);
        double keep = x[i];
        x[i] = keep + FD_H;
        double lp = fd_loss(c);
        x[i] = keep - FD_H;
        double lm = fd_loss(c);
        x[i] = keep;
        double num = (lp - lm) / (2 * FD_H);
        maxdiff = fmax(maxdiff, fabs(num - g[i]));
        scale = fmax(scale, fmax(fabs(num), fabs(g[i])));
    }
    double err = scale > 0 ? maxdiff / scale : 1;
    worst_fd = fmax(worst_fd, err);
    report(err < FD_TOL && scale > 0, what, err, FD_TOL);
}

/* gradients of sum(y r) from the float64 layer after forward `fwd`: dx [ny] and dw (allocated) */
static void grads64(const layer *L, fwd64_fn fwd, double *dx, double **dw)
{
    int64_t ns = celo_mamba_saved_size(&L->d), nw = celo_mamba_work_size(&L->d);
    double *y = calloc((size_t)L->ny, 8), *s = calloc((size_t)ns, 8), *ds = calloc((size_t)ns, 8),
           *wk = calloc((size_t)nw, 8);
    for (int i = 0; i < L->nt; i++)
        dw[i] = calloc((size_t)L->numel[i], 8);
    memset(dx, 0, (size_t)L->ny * 8);
    fwd(y, s, wk, L->x, (const double *const *)L->w, &L->d);
    celo_nn_mamba_backward_f64(dx, dw, ds, wk, L->r, L->x, s, (const double *const *)L->w, &L->d);
    free(y), free(s), free(ds), free(wk);
}

static void test_fd(celo_feature_map f, int normalize, int expand, int N, int K, int chunk)
{
    layer L;
    layer_init(&L, 2, 7, 8, 2, N, K, expand, f, normalize, chunk);
    int64_t ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
    fd_ctx c = {&L, calloc((size_t)L.ny, 8), calloc((size_t)ns, 8), calloc((size_t)nw, 8)};
    double *dx = calloc((size_t)L.ny, 8), *dw[MAXT] = {0};
    grads64(&L, celo_nn_mamba_forward_f64, dx, dw);
    char what[160];
    snprintf(what, sizeof what, "fd %s dx", desc(&L));
    check_fd(what, &c, L.x, dx, L.ny);
    for (int i = 0; i < L.nt; i++) {
        snprintf(what, sizeof what, "fd %s %s", desc(&L), tensor_name(&L, i));
        check_fd(what, &c, L.w[i], dw[i], L.numel[i]);
    }
    for (int i = 0; i < L.nt; i++)
        free(dw[i]);
    free(dx), free(c.y), free(c.saved), free(c.work);
    layer_free(&L);
}

/* ---- 2. chunked == sequential, forward and backward ---- */

/* the float copies of a layer's tensors */
typedef struct {
    float *w[MAXT], *x, *r;
} layer32;

static void layer32_of(layer32 *F, const layer *L)
{
    for (int i = 0; i < L->nt; i++)
        F->w[i] = to_f32(L->w[i], L->numel[i]);
    F->x = to_f32(L->x, L->ny), F->r = to_f32(L->r, L->ny);
}

static void layer32_free(layer32 *F, const layer *L)
{
    for (int i = 0; i < L->nt; i++)
        free(F->w[i]);
    free(F->x), free(F->r);
}

/* y and the gradients of sum(y r) of the float32 layer (chunked forward); dx [ny], g: all gradients concatenated */
static void run32(const layer *L, const layer32 *F, double *y, double *dx, double *g)
{
    int64_t ns = celo_mamba_saved_size(&L->d), nw = celo_mamba_work_size(&L->d), np = 0;
    float *yf = calloc((size_t)L->ny, 4), *s = calloc((size_t)ns, 4), *ds = calloc((size_t)ns, 4),
          *wk = calloc((size_t)nw, 4), *dxf = calloc((size_t)L->ny, 4), *dw[MAXT];
    for (int i = 0; i < L->nt; i++)
        dw[i] = calloc((size_t)L->numel[i], 4);
    celo_nn_mamba_forward(yf, s, wk, F->x, (const float *const *)F->w, &L->d);
    celo_nn_mamba_backward(dxf, dw, ds, wk, F->r, F->x, s, (const float *const *)F->w, &L->d);
    for (int64_t i = 0; i < L->ny; i++)
        y[i] = yf[i], dx[i] = dxf[i];
    for (int i = 0; i < L->nt; i++) {
        for (int64_t j = 0; j < L->numel[i]; j++)
            g[np + j] = dw[i][j];
        np += L->numel[i];
        free(dw[i]);
    }
    free(yf), free(s), free(ds), free(wk), free(dxf);
}

/* the layer's largest gradient error, per tensor relative to its largest value */
static double grad_err(const layer *L, const double *dxa, double *const *dwa, const double *dxb, double *const *dwb)
{
    double e = nerr(dxa, dxb, L->ny);
    for (int i = 0; i < L->nt; i++)
        e = fmax(e, nerr(dwa[i], dwb[i], L->numel[i]));
    return e;
}

static void test_seq(celo_feature_map f, int normalize, int expand, int N, int K)
{
    static const int chunks[] = {1, 5, 8, 37, 0};
    layer L;
    layer_init(&L, 2, 37, 16, 2, N, K, expand, f, normalize, 0);
    int64_t ny = L.ny, ng = 0;
    for (int i = 0; i < L.nt; i++)
        ng += L.numel[i];
    double *yn = calloc((size_t)ny, 8), *yc = calloc((size_t)ny, 8), *dxn = calloc((size_t)ny, 8),
           *dxc = calloc((size_t)ny, 8), *dwn[MAXT], *dwc[MAXT];
    layer32 F;
    layer32_of(&F, &L);
    float *ynf = calloc((size_t)ny, 4), *ycf = calloc((size_t)ny, 4);
    double *y32 = calloc((size_t)ny, 8), *dx32 = calloc((size_t)ny, 8), *g32 = calloc((size_t)ng, 8);
    for (int k = 0; k < 5; k++) {
        L.d.chunk = chunks[k];
        int64_t ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
        double *s = calloc((size_t)ns, 8), *w = calloc((size_t)nw, 8);
        celo_nn_mamba_forward_naive_f64(yn, s, w, L.x, (const double *const *)L.w, &L.d);
        celo_nn_mamba_forward_f64(yc, s, w, L.x, (const double *const *)L.w, &L.d);
        double e64 = nerr(yc, yn, ny);
        float *sf = calloc((size_t)ns, 4), *wf = calloc((size_t)nw, 4);
        celo_nn_mamba_forward_naive(ynf, sf, wf, F.x, (const float *const *)F.w, &L.d);
        celo_nn_mamba_forward(ycf, sf, wf, F.x, (const float *const *)F.w, &L.d);
        double *a = to_f64(ycf, ny), *b = to_f64(ynf, ny), e32 = nerr(a, b, ny);
        worst_seq64 = fmax(worst_seq64, e64), worst_seq32 = fmax(worst_seq32, e32);
        char what[160];
        snprintf(what, sizeof what, "chunked == naive %s (T 37) float64", desc(&L));
        report(e64 < SEQ_TOL64, what, e64, SEQ_TOL64);
        snprintf(what, sizeof what, "chunked == naive %s (T 37) float32", desc(&L));
        report(e32 < SEQ_TOL32, what, e32, SEQ_TOL32);
        /* backward after either forward; float32 against float64 */
        grads64(&L, celo_nn_mamba_forward_naive_f64, dxn, dwn);
        grads64(&L, celo_nn_mamba_forward_f64, dxc, dwc);
        double eb = grad_err(&L, dxc, dwc, dxn, dwn);
        worst_bwd64 = fmax(worst_bwd64, eb);
        snprintf(what, sizeof what, "backward after chunked == after naive %s float64", desc(&L));
        report(eb < BWD_TOL64, what, eb, BWD_TOL64);
        run32(&L, &F, y32, dx32, g32);
        double e3 = nerr(dx32, dxc, ny);
        for (int i = 0, off = 0; i < L.nt; off += (int)L.numel[i], i++)
            e3 = fmax(e3, nerr(g32 + off, dwc[i], L.numel[i]));
        worst_bwd32 = fmax(worst_bwd32, e3);
        snprintf(what, sizeof what, "backward float32 == float64 %s", desc(&L));
        report(e3 < BWD_TOL32, what, e3, BWD_TOL32);
        for (int i = 0; i < L.nt; i++)
            free(dwn[i]), free(dwc[i]);
        free(s), free(w), free(sf), free(wf), free(a), free(b);
    }
    double d = 0;
    for (int64_t i = 0; i < ny; i++)
        d = fmax(d, fabs(yn[i]));
    check(d > 1e-3, "naive output is not trivially zero");
    layer32_free(&F, &L);
    free(yn), free(yc), free(dxn), free(dxc), free(ynf), free(ycf), free(y32), free(dx32), free(g32);
    layer_free(&L);
}

/* ---- 3. the recurrent step == the sequential scan ---- */
static void test_step(celo_feature_map f, int normalize, int expand, int N, int K)
{
    layer L;
    layer_init(&L, 3, 13, 16, 4, N, K, expand, f, normalize, 4);
    int B = 3, T = 13, C = 16;
    int64_t ny = L.ny, ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
    layer32 F;
    layer32_of(&F, &L);
    double *yn = calloc((size_t)ny, 8), *yr = calloc((size_t)ny, 8), *s = calloc((size_t)ns, 8),
           *w = calloc((size_t)nw, 8);
    float *ynf = calloc((size_t)ny, 4), *yrf = calloc((size_t)ny, 4), *sf = calloc((size_t)ns, 4),
          *wf = calloc((size_t)nw, 4);
    celo_nn_mamba_forward_naive_f64(yn, s, w, L.x, (const double *const *)L.w, &L.d);
    celo_nn_mamba_forward_naive(ynf, sf, wf, F.x, (const float *const *)F.w, &L.d);
    int64_t nst = celo_mamba_state_size(&L.d), nsw = celo_mamba_step_work_size(&L.d);
    double *st = calloc((size_t)nst, 8), *sw = calloc((size_t)nsw, 8), *xt = calloc((size_t)B * C, 8),
           *yt = calloc((size_t)B * C, 8);
    float *stf = calloc((size_t)nst, 4), *swf = calloc((size_t)nsw, 4), *xtf = calloc((size_t)B * C, 4),
          *ytf = calloc((size_t)B * C, 4);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            memcpy(xt + (int64_t)b * C, L.x + ((int64_t)b * T + t) * C, (size_t)C * 8);
            memcpy(xtf + (int64_t)b * C, F.x + ((int64_t)b * T + t) * C, (size_t)C * 4);
        }
        celo_nn_mamba_step_f64(yt, st, sw, xt, (const double *const *)L.w, &L.d);
        celo_nn_mamba_step(ytf, stf, swf, xtf, (const float *const *)F.w, &L.d);
        for (int b = 0; b < B; b++) {
            memcpy(yr + ((int64_t)b * T + t) * C, yt + (int64_t)b * C, (size_t)C * 8);
            memcpy(yrf + ((int64_t)b * T + t) * C, ytf + (int64_t)b * C, (size_t)C * 4);
        }
    }
    double *a = to_f64(yrf, ny), *b = to_f64(ynf, ny), e64 = nerr(yr, yn, ny), e32 = nerr(a, b, ny);
    worst_step64 = fmax(worst_step64, e64), worst_step32 = fmax(worst_step32, e32);
    char what[160];
    snprintf(what, sizeof what, "step == naive %s (B 3, T 13) float64", desc(&L));
    report(e64 < SEQ_TOL64, what, e64, SEQ_TOL64);
    snprintf(what, sizeof what, "step == naive %s (B 3, T 13) float32", desc(&L));
    report(e32 < SEQ_TOL32, what, e32, SEQ_TOL32);
    layer32_free(&F, &L);
    free(yn), free(yr), free(s), free(w), free(ynf), free(yrf), free(sf), free(wf), free(st), free(sw), free(xt);
    free(yt), free(stf), free(swf), free(xtf), free(ytf), free(a), free(b);
    layer_free(&L);
}

/* ---- 4. causality ---- */
static void test_causal(celo_feature_map f, int normalize)
{
    layer L;
    layer_init(&L, 1, 9, 8, 2, 0, 4, 2, f, normalize, 4);
    int64_t ny = L.ny, ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
    double *y0 = calloc((size_t)ny, 8), *y1 = calloc((size_t)ny, 8), *s = calloc((size_t)ns, 8),
           *w = calloc((size_t)nw, 8);
    celo_nn_mamba_forward_f64(y0, s, w, L.x, (const double *const *)L.w, &L.d);
    for (int c = 0; c < 8; c++)
        L.x[5 * 8 + c] += 1; /* token 5 */
    celo_nn_mamba_forward_f64(y1, s, w, L.x, (const double *const *)L.w, &L.d);
    double before = 0, after = 0;
    for (int64_t i = 0; i < ny; i++)
        if (i < 5 * 8)
            before = fmax(before, fabs(y1[i] - y0[i]));
        else if (i >= 8 * 8) /* the last token: through the conv and the scan */
            after = fmax(after, fabs(y1[i] - y0[i]));
    char what[160];
    snprintf(what, sizeof what, "causal %s: tokens 0..4 unmoved, 8 moved (%.1e)", desc(&L), after);
    check(before == 0 && after > 1e-6, what);
    free(y0), free(y1), free(s), free(w);
    layer_free(&L);
}

/* ---- 5. one thread == two threads, bit for bit ---- */
static void test_threads(celo_feature_map f, int normalize)
{
    layer L;
    layer_init(&L, 4, 64, 32, 4, 0, 4, 2, f, normalize, 16);
    int64_t ng = 0;
    for (int i = 0; i < L.nt; i++)
        ng += L.numel[i];
    layer32 F;
    layer32_of(&F, &L);
    double *y[2], *dx[2], *g[2];
    int keep = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        y[k] = calloc((size_t)L.ny, 8), dx[k] = calloc((size_t)L.ny, 8), g[k] = calloc((size_t)ng, 8);
        run32(&L, &F, y[k], dx[k], g[k]);
    }
    omp_set_num_threads(keep);
    char what[160];
    snprintf(what, sizeof what, "1 thread == 2 threads, float32 y, dx, gradients: %s (B 4, T 64)", desc(&L));
    check(!memcmp(y[0], y[1], (size_t)L.ny * 8) && !memcmp(dx[0], dx[1], (size_t)L.ny * 8) &&
              !memcmp(g[0], g[1], (size_t)ng * 8),
          what);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dx[k]), free(g[k]);
    layer32_free(&F, &L);
    layer_free(&L);
}

int main(void)
{
    celo_rng_init(&rng, 20261206, 0);
    static const int Ns[4] = {0, 6, 3, 0}, Ks[4] = {4, 1, 4, 2};
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        for (int norm = 0; norm < 2; norm++)
            for (int e = 1; e <= 2; e++) {
                int idx = f * 4 + norm * 2 + e - 1;
                test_fd((celo_feature_map)f, norm, e, Ns[idx % 4], Ks[(idx / 4 + idx) % 4], 3); /* 3 + 3 + 1 */
                test_fd((celo_feature_map)f, norm, e, Ns[idx % 4], Ks[(idx / 4 + idx) % 4], 0); /* one chunk */
            }
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        for (int norm = 0; norm < 2; norm++) {
            test_seq((celo_feature_map)f, norm, 1 + norm, norm ? 6 : 0, f % 2 ? 1 : 4);
            test_step((celo_feature_map)f, norm, 2 - norm, norm ? 0 : 3, f % 2 ? 4 : 1);
            test_causal((celo_feature_map)f, norm);
            test_threads((celo_feature_map)f, norm);
        }
    printf("worst: finite differences %.2e; chunked vs naive %.2e (float32) %.2e (float64); backward after chunked "
           "vs naive %.2e (float64), float32 vs float64 %.2e; step vs naive %.2e (float32) %.2e (float64); %d failed\n",
           worst_fd, worst_seq32, worst_seq64, worst_bwd64, worst_bwd32, worst_step32, worst_step64, fails);
    return fails != 0;
}
