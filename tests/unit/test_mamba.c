/*
 * test_mamba.c — the Mamba mixer (nn.h; runtime/nn/mamba.inc), for each feature map (identity, elu, mlp, hedgehog)
 * with and without the normalizer:
 *   1. finite differences of the layer in float64: dx and every tensor (in_proj, conv, A_log, D, the maps' weights
 *      and biases, out_proj), B 2, T 7, C 8, 2 heads, expand 1 and 2, N the default 4, 6 and 3, K 4, 1 and 2,
 *      with chunk 3 (3 + 3 + 1) and with one chunk, decays a = exp(-softplus(dt) exp(A_log)) well below 1 (dt's
 *      bias -0.5 + 0.3 h, A_log ~ 0.3 N(0, 1) - 0.3 h, layer_init); L = sum(y r), central differences, h = 1e-5,
 *      error max |g - n| / max(|g|, |n|) over up to 48 entries per tensor < 1e-6 (as test_linattn.c). Measured:
 *      the last line of the output (docs/distill.md quotes it).
 *   2. the chunked form against the sequential scan (celo_nn_mamba_forward_naive) on T = 37: chunks 1, 5, 8 (not
 *      dividing T), 37 and the default 64; y in float64 (tolerance 1e-12 relative to max |y|) and float32 (1e-5:
 *      float32 rounding over sums of <= 37 decayed terms); and the backward pass after either forward: float64
 *      gradients equal within 1e-10, float32 (after the chunked forward) against float64 within 1e-4;
 *      With strong decays (log a about -1 to -5 per token, T 150, chunk 64), float32 chunked against float64
 *      sequential within 1e-6 (each exponent summed directly; as differences of the chunk's cumulative sums, 3.5e-6);
 *   3. the recurrent step (celo_nn_mamba_step) token by token against the sequential scan: float64 1e-12, float32
 *      1e-5;
 *   4. causality: y at tokens before t does not move when x at token t does, and y from t on does;
 *   5. one, two and three threads give the same bits (float32 forward and backward, shapes above the threading
 * threshold); dx and the tensors' gradients NULL but one: that one is the same, bit for bit (NULL entries are skipped);
 *      a second backward pass into the same buffers doubles them (+=; 1e-14: sums added onto what is there);
 *   5c. a Mamba layer set from a linear-attention layer (a = 1, delta = 1, identity conv, gate 1, D 0, normalized)
 *      gives the linear attention's y in float64 within 1e-12 (the exact-equivalence init of the research notes);
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
#include "check.h"
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H         1e-5
#define FD_TOL       1e-6
#define FD_SAMPLES   48
#define SEQ_TOL32    1e-5
#define SEQ_TOL64    1e-12
#define STRONG_TOL32 1e-6 /* differences of the chunk's cumulative sums instead of the sums themselves: 3.5e-6 */
#define BWD_TOL64    1e-10
#define BWD_TOL32    1e-4
#define REF_TOL32    1e-4
#define REF_TOL64    1e-10
#define MAXT         12

static double worst_fd = 0, worst_seq32 = 0, worst_seq64 = 0, worst_bwd64 = 0, worst_bwd32 = 0, worst_step32 = 0,
              worst_step64 = 0, worst_ref32 = 0, worst_ref64 = 0, worst_equiv = 0, worst_strong = 0;
static celo_rng rng;
static const char *const feature_names[] = {"identity", "elu", "mlp", "hedgehog"};

static void report(int ok, const char *what, double err, double tol)
{
    check(ok, "%-64s err %.2e (tolerance %.0e)", what, err, tol);
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

static double fd_loss(void *ctx)
{
    fd_ctx *c = ctx;
    celo_nn_mamba_forward_f64(c->y, c->saved, c->work, c->L->x, (const double *const *)c->L->w, &c->L->d);
    double s = 0;
    for (int64_t i = 0; i < c->L->ny; i++)
        s += c->y[i] * c->L->r[i];
    return s;
}

static void check_fd(const char *what, fd_ctx *c, double *x, const double *g, int64_t n)
{
    double err = fd_error(fd_loss, c, x, g, n, FD_SAMPLES, FD_H);
    worst_fd = fmax(worst_fd, err);
    report(err < FD_TOL, what, err, FD_TOL);
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

/* strong decays (log a about -1 to -5 per token): the cumulative sums inside a chunk of 64 reach a few hundred,
 * while the terms that matter are the last few tokens' (exp of a small sum, which must not be computed as the
 * difference of two large ones) */
static void test_strong_decay(celo_feature_map f, int normalize)
{
    layer L;
    layer_init(&L, 2, 150, 16, 2, 0, 4, 1, f, normalize, 64);
    for (int h = 0; h < 2; h++)
        L.w[4][h] = 1.2 + 0.3 * h, L.w[1][L.W - 2 + h] = 0.5; /* A = -3.3, -4.5; delta about 1 */
    int64_t ny = L.ny, ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
    layer32 F;
    layer32_of(&F, &L);
    double *yn = calloc((size_t)ny, 8), *s = calloc((size_t)ns, 8), *w = calloc((size_t)nw, 8);
    float *yc = calloc((size_t)ny, 4), *sf = calloc((size_t)ns, 4), *wf = calloc((size_t)nw, 4);
    celo_nn_mamba_forward_naive_f64(yn, s, w, L.x, (const double *const *)L.w, &L.d);
    celo_nn_mamba_forward(yc, sf, wf, F.x, (const float *const *)F.w, &L.d);
    double *a = to_f64(yc, ny), e = nerr(a, yn, ny);
    worst_strong = fmax(worst_strong, e);
    char what[160];
    snprintf(what, sizeof what, "strong decays: float32 chunked == float64 naive %s (T 150)", desc(&L));
    report(e < STRONG_TOL32, what, e, STRONG_TOL32);
    layer32_free(&F, &L);
    free(yn), free(s), free(w), free(yc), free(sf), free(wf), free(a);
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
    check(before == 0 && after > 1e-6, "%s", what);
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
    double *y[3], *dx[3], *g[3];
    int keep = celo_threads(), same = 1;
    for (int k = 0; k < 3; k++) { /* celo_set_threads: celo's loops and the GEMM pieces */
        celo_set_threads(k + 1);
        y[k] = calloc((size_t)L.ny, 8), dx[k] = calloc((size_t)L.ny, 8), g[k] = calloc((size_t)ng, 8);
        run32(&L, &F, y[k], dx[k], g[k]);
        same = same && !memcmp(y[0], y[k], (size_t)L.ny * 8) && !memcmp(dx[0], dx[k], (size_t)L.ny * 8) &&
               !memcmp(g[0], g[k], (size_t)ng * 8);
    }
    celo_set_threads(keep);
    check(same, "1 thread == 2 == 3 threads, float32 y, dx, gradients: %s (B 4, T 64)", desc(&L));
    for (int k = 0; k < 3; k++)
        free(y[k]), free(dx[k]), free(g[k]);
    layer32_free(&F, &L);
    layer_free(&L);
}

/* ---- 5b. NULL gradients are skipped, the others unchanged ---- */
static void test_null(celo_feature_map f)
{
    layer L;
    layer_init(&L, 2, 9, 8, 2, 0, 4, 1, f, 1, 4);
    double *dx = calloc((size_t)L.ny, 8), *dw[MAXT];
    grads64(&L, celo_nn_mamba_forward_f64, dx, dw);
    int64_t ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
    double *y = calloc((size_t)L.ny, 8), *s = calloc((size_t)ns, 8), *ds = calloc((size_t)ns, 8),
           *wk = calloc((size_t)nw, 8);
    int ok = 1;
    for (int keep = 0; keep < L.nt; keep++) { /* only tensor `keep`'s gradient asked for, dx NULL */
        double *one[MAXT] = {0};
        one[keep] = calloc((size_t)L.numel[keep], 8);
        celo_nn_mamba_forward_f64(y, s, wk, L.x, (const double *const *)L.w, &L.d);
        celo_nn_mamba_backward_f64(NULL, one, ds, wk, L.r, L.x, s, (const double *const *)L.w, &L.d);
        ok = ok && !memcmp(one[keep], dw[keep], (size_t)L.numel[keep] * 8);
        free(one[keep]);
    }
    check(ok, "%s: dx NULL and all gradients NULL but one: that one unchanged, bit for bit (%d tensors)", desc(&L),
          L.nt);
    /* accumulation: a second backward pass into the same buffers doubles them (up to rounding: sums over tokens
     * add term by term onto what is there) */
    double *dx2 = calloc((size_t)L.ny, 8), *dw2[MAXT];
    grads64(&L, celo_nn_mamba_forward_f64, dx2, dw2);
    celo_nn_mamba_backward_f64(dx2, dw2, ds, wk, L.r, L.x, s, (const double *const *)L.w, &L.d);
    for (int64_t j = 0; j < L.ny; j++)
        dx2[j] /= 2;
    double e = nerr(dx2, dx, L.ny);
    for (int i = 0; i < L.nt; i++) {
        for (int64_t j = 0; j < L.numel[i]; j++)
            dw2[i][j] /= 2;
        e = fmax(e, nerr(dw2[i], dw[i], L.numel[i]));
        free(dw2[i]);
    }
    free(dx2);
    char what[160];
    snprintf(what, sizeof what, "%s: backward adds into dx and every gradient (twice = 2x)", desc(&L));
    report(e < 1e-14, what, e, 1e-14);
    for (int i = 0; i < L.nt; i++)
        free(dw[i]);
    free(dx), free(y), free(s), free(ds), free(wk);
    layer_free(&L);
}

/* ---- 5c. linear attention as a special case ---- */

/* A Mamba layer set from a linear-attention layer (in_proj's xv, b, c rows = c_attn's v, k, q rows, out_proj =
 * c_proj, the same maps; the conv the identity, D = 0, the gate 1, delta = 1, a = 1, normalized) computes the
 * linear attention's y: the exact-equivalence initialization of the research notes (§1.3, §5.2). */
static void test_linattn_equiv(celo_feature_map f, int K)
{
    int B = 2, T = 11, C = 8, nh = 2, hs = C / nh;
    celo_linattn_dims ld = {B, T, C, nh, f, 4};
    layer L;
    layer_init(&L, B, T, C, nh, 0, K, 1, f, 1, 4);
    int nla = celo_linattn_ntensors(f), W = L.W, nm = nla - 4;
    double *la[8], *x = L.x;
    int64_t lsz[8] = {3 * C * C, 3 * C, C * C, C, hs * hs, f == CELO_FEATURE_MLP ? hs : hs * hs, hs * hs, hs};
    for (int i = 0; i < nla; i++)
        la[i] = randn(lsz[i], 0.4, 0);
    if (f == CELO_FEATURE_IDENTITY)
        for (int i = 0; i < 2 * C; i++)
            la[1][i] += 1.5;              /* the denominator away from 0 (test_linattn.c) */
    static const int from[3] = {2, 1, 0}; /* xv <- v, b <- k, c <- q */
    memset(L.w[0], 0, (size_t)W * C * 8), memset(L.w[1], 0, (size_t)W * 8);
    for (int part = 0; part < 3; part++) {
        memcpy(L.w[0] + (int64_t)part * C * C, la[0] + (int64_t)from[part] * C * C, (size_t)C * C * 8);
        memcpy(L.w[1] + part * C, la[1] + from[part] * C, (size_t)C * 8);
    }
    for (int h = 0; h < nh; h++)
        L.w[1][W - nh + h] = log(exp(1.0) - 1), L.w[4][h] = -1e30, L.w[5][h] = 0; /* delta 1, a 1, D 0 */
    memset(L.w[2], 0, (size_t)L.numel[2] * 8), memset(L.w[3], 0, (size_t)L.numel[3] * 8);
    for (int c = 0; c < L.Cx; c++)
        L.w[2][(int64_t)c * K + K - 1] = 1; /* the conv: the current token */
    for (int i = 0; i < nm; i++)
        memcpy(L.w[6 + i], la[4 + i], (size_t)lsz[4 + i] * 8);
    memcpy(L.w[L.nt - 2], la[2], (size_t)C * C * 8), memcpy(L.w[L.nt - 1], la[3], (size_t)C * 8);
    double *ya = calloc((size_t)L.ny, 8), *ym = calloc((size_t)L.ny, 8);
    double *s = calloc((size_t)celo_linattn_saved_size(&ld), 8), *wk = calloc((size_t)celo_linattn_work_size(&ld), 8);
    celo_nn_linattn_forward_f64(ya, s, wk, x, (const double *const *)la, &ld);
    free(s), free(wk);
    s = calloc((size_t)celo_mamba_saved_size(&L.d), 8), wk = calloc((size_t)celo_mamba_work_size(&L.d), 8);
    celo_nn_mamba_forward_f64(ym, s, wk, x, (const double *const *)L.w, &L.d);
    double e = nerr(ym, ya, L.ny);
    char what[160];
    snprintf(what, sizeof what, "linattn %s == Mamba set from it (K %d, a = 1, delta = 1) float64", feature_names[f],
             K);
    report(e < SEQ_TOL64, what, e, SEQ_TOL64);
    worst_equiv = fmax(worst_equiv, e);
    for (int i = 0; i < nla; i++)
        free(la[i]);
    free(ya), free(ym), free(s), free(wk);
    layer_free(&L);
}

/* ---- 6. PyTorch ---- */

/* a float64 .npy file ('<f8', C order, format 1.x or 2.x) of `want` values, or NULL (a failure reported) */
static double *load64(const char *dir, const char *name, int64_t want)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    unsigned char pre[12];
    double *v = NULL;
    size_t hl = 0;
    if (fp && fread(pre, 1, 10, fp) == 10 && !memcmp(pre, "\x93NUMPY", 6)) {
        hl = pre[8] | (size_t)pre[9] << 8;
        if (pre[6] >= 2 && fread(pre + 10, 1, 2, fp) == 2)
            hl |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    char *hdr = hl ? calloc(hl + 1, 1) : NULL;
    if (hdr && fread(hdr, 1, hl, fp) == hl && strstr(hdr, "'<f8'") && strstr(hdr, "'fortran_order': False")) {
        v = malloc((size_t)want * 8);
        if (fread(v, 8, (size_t)want, fp) != (size_t)want || fgetc(fp) != EOF)
            free(v), v = NULL;
    }
    free(hdr);
    if (fp)
        fclose(fp);
    if (!v) {
        printf("FAIL %s: not a float64 .npy of %lld values\n", path, (long long)want);
        fails++;
    }
    return v;
}

/* the reference's case (gen_mamba.py): dims.txt, tensors.txt (celo's order and shapes), then y, dx and every
 * gradient of the float64 and the float32 layer (chunk 4: 4 + 4 + 1 tokens) */
static void test_torch(const char *root, celo_feature_map f, int normalize)
{
    char dir[1100], path[1200], line[256], what[160];
    snprintf(dir, sizeof dir, "%s/%s%s", root, feature_names[f], normalize ? "_norm" : "");
    int v[8] = {0};
    snprintf(path, sizeof path, "%s/dims.txt", dir);
    FILE *fp = fopen(path, "r");
    int ok = fp && fscanf(fp, "%d %d %d %d %d %d %d %d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8;
    if (fp)
        fclose(fp);
    snprintf(what, sizeof what, "torch %s%s: %s", feature_names[f], normalize ? "+norm" : "", "dims.txt");
    check(ok && v[7] == normalize, "%s", what);
    if (!ok)
        return;
    layer L;
    layer_shape(&L, v[0], v[1], v[2], v[3], v[4], v[5], v[6], f, v[7], 4);
    /* tensors.txt: the names and shapes of nn.h's order */
    snprintf(path, sizeof path, "%s/tensors.txt", dir);
    fp = fopen(path, "r");
    int k = 0;
    ok = fp != NULL;
    while (ok && fgets(line, sizeof line, fp)) {
        int64_t n = 1;
        char *p = line + strcspn(line, " ");
        *p++ = 0;
        for (char *e; *p && *p != '\n'; p = *e == 'x' ? e + 1 : e)
            n *= strtoll(p, &e, 10);
        ok = k < L.nt && !strcmp(line, tensor_name(&L, k)) && n == L.numel[k];
        k++;
    }
    if (fp)
        fclose(fp);
    snprintf(what, sizeof what, "torch %s: tensors.txt = nn.h's names, shapes and order (%d)", desc(&L), k);
    check(ok && k == L.nt, "%s", what);
    if (!ok || k != L.nt)
        return;
    int64_t np = 0, off[MAXT];
    for (int i = 0; i < L.nt; i++)
        off[i] = np, np += L.numel[i];
    double *x = load64(dir, "x.npy", L.ny), *p = load64(dir, "params.npy", np), *r = load64(dir, "r.npy", L.ny);
    double *y = load64(dir, "y.npy", L.ny), *dx = load64(dir, "dx.npy", L.ny), *g = load64(dir, "grads.npy", np);
    if (x && p && r && y && dx && g) {
        for (int i = 0; i < L.nt; i++)
            L.w[i] = p + off[i];
        L.x = x, L.r = r;
        /* float64 */
        int64_t ns = celo_mamba_saved_size(&L.d), nw = celo_mamba_work_size(&L.d);
        double *yc = calloc((size_t)L.ny, 8), *s = calloc((size_t)ns, 8), *wk = calloc((size_t)nw, 8);
        double *dxc = calloc((size_t)L.ny, 8), *dwc[MAXT];
        celo_nn_mamba_forward_f64(yc, s, wk, x, (const double *const *)L.w, &L.d);
        grads64(&L, celo_nn_mamba_forward_f64, dxc, dwc);
        /* float32 */
        layer32 F;
        layer32_of(&F, &L);
        double *y32 = calloc((size_t)L.ny, 8), *dx32 = calloc((size_t)L.ny, 8), *g32 = calloc((size_t)np, 8);
        run32(&L, &F, y32, dx32, g32);
        for (int prec = 0; prec < 2; prec++) {
            double tol = prec ? REF_TOL32 : REF_TOL64, e = nerr(prec ? y32 : yc, y, L.ny),
                   *worst = prec ? &worst_ref32 : &worst_ref64;
            snprintf(what, sizeof what, "torch %s float%d y", desc(&L), prec ? 32 : 64);
            report(e < tol, what, e, tol);
            *worst = fmax(*worst, e);
            e = nerr(prec ? dx32 : dxc, dx, L.ny);
            snprintf(what, sizeof what, "torch %s float%d dx", desc(&L), prec ? 32 : 64);
            report(e < tol, what, e, tol);
            *worst = fmax(*worst, e);
            for (int i = 0; i < L.nt; i++) {
                e = nerr(prec ? g32 + off[i] : dwc[i], g + off[i], L.numel[i]);
                snprintf(what, sizeof what, "torch %s float%d %s", desc(&L), prec ? 32 : 64, tensor_name(&L, i));
                report(e < tol, what, e, tol);
                *worst = fmax(*worst, e);
            }
        }
        for (int i = 0; i < L.nt; i++)
            free(dwc[i]);
        layer32_free(&F, &L);
        free(yc), free(s), free(wk), free(dxc), free(y32), free(dx32), free(g32);
    }
    free(x), free(p), free(r), free(y), free(dx), free(g);
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
            test_strong_decay((celo_feature_map)f, norm);
            test_step((celo_feature_map)f, norm, 2 - norm, norm ? 0 : 3, f % 2 ? 4 : 1);
            test_causal((celo_feature_map)f, norm);
            test_threads((celo_feature_map)f, norm);
        }
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++) {
        test_null((celo_feature_map)f);
        test_linattn_equiv((celo_feature_map)f, f % 2 ? 4 : 1);
    }
    const char *root = getenv("CELO_GOLDEN_MAMBA");
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        for (int norm = 0; norm < 2; norm++)
            test_torch(root ? root : "tests/golden/mamba", (celo_feature_map)f, norm);
    printf("worst: finite differences %.2e; chunked vs naive %.2e (float32) %.2e (float64); backward after chunked "
           "vs naive %.2e (float64), float32 vs float64 %.2e; step vs naive %.2e (float32) %.2e (float64); torch %.2e "
           "(float32) %.2e (float64); linattn equivalence %.2e; strong decays %.2e; %d failed\n",
           worst_fd, worst_seq32, worst_seq64, worst_bwd64, worst_bwd32, worst_step32, worst_step64, worst_ref32,
           worst_ref64, worst_equiv, worst_strong, fails);
    return fails != 0;
}
