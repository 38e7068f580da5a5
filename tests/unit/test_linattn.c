/*
 * test_linattn.c — causal linear attention (nn.h; runtime/nn/linattn.inc), for each feature map (identity, elu,
 * mlp, hedgehog):
 *   1. finite differences of the layer in float64: dx and every tensor (c_attn, c_proj, the maps' weights and
 *      biases), with chunk 3 of T = 7 (3 + 3 + 1) and with one chunk; L = sum(y r), central differences,
 *      h = 1e-5, error max |g - n| / max(|g|, |n|) < 1e-6 (as test_nn_grad.c, whose reasoning holds here: sums
 *      of a few dozen terms of order 1). Measured: <= 8.3e-9.
 *   2. the chunked parallel form against the recurrent form run token by token from its state (plain loops, no
 *      chunks, no GEMM inside the heads): chunks 1, 5, 8 (not dividing T = 37), 37 and the default 64, in float32
 *      (tolerance 1e-5 relative to max |y|: float32 rounding 6e-8 over sums of <= 37 terms; measured <= 3.3e-7)
 *      and float64 (tolerance 1e-12; measured <= 1.1e-15);
 *   3. causality: y at tokens before t does not move when x at token t does, and y from t on does;
 *   4. against PyTorch: tests/golden/linattn/<feature>/ from tests/reference/gen_linattn.py (the masked quadratic
 *      form over all T = 20 tokens written with torch ops, run in float64, stored as float32; celo runs chunk 8):
 *      y, dx and each parameter gradient of the float32 layer within 2e-5 and of the float64 layer within 2e-6,
 *      relative to the largest value (measured <= 2.6e-6 and <= 4.7e-8: float32 sums of <= 20 terms, and the
 *      float32 rounding of the stored reference, 6e-8); and the torch module's state_dict (names, shapes,
 *      order) is the gpt block's h.0.attn.* table;
 *   5. a softmax gpt's tensors all copy into a linear one by name (celo_model_copy_from), the maps untouched.
 * Run from the repository root (tests/run.sh does); CELO_GOLDEN_LINATTN overrides the directory.
 */
#include "celort.h"
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
#define FD_SAMPLES 48
#define REC_TOL32  1e-5
#define REC_TOL64  1e-12
#define REF_TOL32  2e-5
#define REF_TOL64  2e-6

static int fails = 0;
static double worst_fd = 0, worst_rec32 = 0, worst_rec64 = 0;
static celo_rng rng;
static const char *const feature_names[] = {"identity", "elu", "mlp", "hedgehog"};

static void report(int ok, const char *what, double err, double tol)
{
    printf("%s %-52s err %.2e (tolerance %.0e)\n", ok ? "ok  " : "FAIL", what, err, tol);
    fails += !ok;
}

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    fails += !ok;
}

/* ---- a layer's tensors, in double, with float copies ---- */
typedef struct {
    celo_linattn_dims d;
    int nt;
    int64_t numel[8];
    double *w[8], *x, *r;
} layer;

static double *randn(int64_t n, double scale)
{
    double *x = calloc((size_t)n, sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * celo_rng_normal(&rng);
    return x;
}

static void layer_init(layer *L, int B, int T, int C, int nh, celo_feature_map f, int chunk)
{
    memset(L, 0, sizeof *L);
    L->d = (celo_linattn_dims){B, T, C, nh, f, chunk};
    int hs = C / nh;
    L->nt = celo_linattn_ntensors(f);
    int64_t sz[8] = {3 * C * C, 3 * C, C * C, C, hs * hs, hs, hs * hs, hs};
    if (f == CELO_FEATURE_HEDGEHOG)
        sz[5] = hs * hs; /* feature_q.weight, feature_k.weight */
    for (int i = 0; i < L->nt; i++) {
        L->numel[i] = sz[i];
        L->w[i] = randn(sz[i], 0.4);
    }
    if (f == CELO_FEATURE_IDENTITY)
        for (int i = 0; i < 2 * C; i++)
            L->w[1][i] += 1.5; /* q, k mostly positive: phi(q) . phi(k) > 0, the denominator away from 0 */
    L->x = randn((int64_t)B * T * C, 1);
    L->r = randn((int64_t)B * T * C, 1);
}

static void layer_free(layer *L)
{
    for (int i = 0; i < L->nt; i++)
        free(L->w[i]);
    free(L->x), free(L->r);
}

/* y of the float64 layer (chunked form) */
static void fwd64(const layer *L, double *y, double *saved, double *work)
{
    celo_nn_linattn_forward_f64(y, saved, work, L->x, (const double *const *)L->w, &L->d);
}

/* ---- 1. finite differences ---- */
typedef struct {
    layer *L;
    double *y, *saved, *work;
    int64_t ny;
} fd_ctx;

static double fd_loss(void *ctx)
{
    fd_ctx *c = ctx;
    fwd64(c->L, c->y, c->saved, c->work);
    double s = 0;
    for (int64_t i = 0; i < c->ny; i++)
        s += c->y[i] * c->L->r[i];
    return s;
}

static void check_fd(const char *what, fd_ctx *c, double *x, const double *g, int64_t n)
{
    double err = fd_error(fd_loss, c, x, g, n, FD_SAMPLES, FD_H);
    worst_fd = fmax(worst_fd, err);
    report(err < FD_TOL, what, err, FD_TOL);
}

static void test_fd(celo_feature_map f, int chunk)
{
    layer L;
    layer_init(&L, 2, 7, 8, 2, f, chunk);
    int64_t ny = 2 * 7 * 8, ns = celo_linattn_saved_size(&L.d), nw = celo_linattn_work_size(&L.d);
    fd_ctx c = {&L, calloc((size_t)ny, 8), calloc((size_t)ns, 8), calloc((size_t)nw, 8), ny};
    double *dsaved = calloc((size_t)ns, 8), *dx = calloc((size_t)ny, 8), *dw[8] = {0};
    for (int i = 0; i < L.nt; i++)
        dw[i] = calloc((size_t)L.numel[i], 8);
    fwd64(&L, c.y, c.saved, c.work);
    celo_nn_linattn_backward_f64(dx, dw, dsaved, c.work, L.r, L.x, c.saved, (const double *const *)L.w, &L.d);
    static const char *tn[8] = {"c_attn.weight",    "c_attn.bias",    "c_proj.weight",    "c_proj.bias",
                                "feature_q.weight", "feature_q.bias", "feature_k.weight", "feature_k.bias"};
    char what[96];
    snprintf(what, sizeof what, "fd %s chunk %d dx", feature_names[f], chunk);
    check_fd(what, &c, L.x, dx, ny);
    for (int i = 0; i < L.nt; i++) {
        const char *name = f == CELO_FEATURE_HEDGEHOG && i == 5 ? tn[6] : tn[i];
        snprintf(what, sizeof what, "fd %s chunk %d %s", feature_names[f], chunk, name);
        check_fd(what, &c, L.w[i], dw[i], L.numel[i]);
    }
    for (int i = 0; i < L.nt; i++)
        free(dw[i]);
    free(dsaved), free(dx), free(c.y), free(c.saved), free(c.work);
    layer_free(&L);
}

/* ---- 2. parallel (chunked) == recurrent ---- */

/* y_rec [B, T, C] from the recurrent form, token by token (double) */
static void recurrent64(const layer *L, double *y)
{
    celo_linattn_dims d = L->d;
    int B = d.B, T = d.T, C = d.C;
    double *st = calloc((size_t)celo_linattn_state_size(&d), 8),
           *wk = calloc((size_t)celo_linattn_step_work_size(&d), 8);
    double *xt = calloc((size_t)B * C, 8), *yt = calloc((size_t)B * C, 8);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++)
            memcpy(xt + (int64_t)b * C, L->x + ((int64_t)b * T + t) * C, (size_t)C * 8);
        celo_nn_linattn_step_f64(yt, st, wk, xt, (const double *const *)L->w, &d);
        for (int b = 0; b < B; b++)
            memcpy(y + ((int64_t)b * T + t) * C, yt + (int64_t)b * C, (size_t)C * 8);
    }
    free(st), free(wk), free(xt), free(yt);
}

static void recurrent32(const layer *L, const float *const *w, const float *x, float *y)
{
    celo_linattn_dims d = L->d;
    int B = d.B, T = d.T, C = d.C;
    float *st = calloc((size_t)celo_linattn_state_size(&d), 4),
          *wk = calloc((size_t)celo_linattn_step_work_size(&d), 4);
    float *xt = calloc((size_t)B * C, 4), *yt = calloc((size_t)B * C, 4);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++)
            memcpy(xt + (int64_t)b * C, x + ((int64_t)b * T + t) * C, (size_t)C * 4);
        celo_nn_linattn_step(yt, st, wk, xt, w, &d);
        for (int b = 0; b < B; b++)
            memcpy(y + ((int64_t)b * T + t) * C, yt + (int64_t)b * C, (size_t)C * 4);
    }
    free(st), free(wk), free(xt), free(yt);
}

static void test_recurrent(celo_feature_map f)
{
    static const int chunks[] = {1, 5, 8, 37, 0};
    layer L;
    layer_init(&L, 2, 37, 16, 2, f, 0);
    int64_t ny = (int64_t)2 * 37 * 16;
    /* float64: both forms on the same (double) values */
    double *yr = calloc((size_t)ny, 8), *yp = calloc((size_t)ny, 8);
    recurrent64(&L, yr);
    /* float32: the float tensors, and the double recurrent form on exactly those values as the scale */
    float *wf[8], *xf = to_f32(L.x, ny), *yf = calloc((size_t)ny, 4), *yrf = calloc((size_t)ny, 4);
    for (int i = 0; i < L.nt; i++)
        wf[i] = to_f32(L.w[i], L.numel[i]);
    recurrent32(&L, (const float *const *)wf, xf, yrf);
    double *yrf64 = to_f64(yrf, ny);
    for (int k = 0; k < 5; k++) {
        L.d.chunk = chunks[k];
        double *s = calloc((size_t)celo_linattn_saved_size(&L.d), 8),
               *w = calloc((size_t)celo_linattn_work_size(&L.d), 8);
        fwd64(&L, yp, s, w);
        double e64 = nerr(yp, yr, ny);
        float *sf = calloc((size_t)celo_linattn_saved_size(&L.d), 4),
              *wkf = calloc((size_t)celo_linattn_work_size(&L.d), 4);
        celo_nn_linattn_forward(yf, sf, wkf, xf, (const float *const *)wf, &L.d);
        double *yf64 = to_f64(yf, ny);
        double e32 = nerr(yf64, yrf64, ny);
        worst_rec64 = fmax(worst_rec64, e64), worst_rec32 = fmax(worst_rec32, e32);
        char what[96];
        snprintf(what, sizeof what, "parallel == recurrent %s chunk %d (T 37) float64", feature_names[f], chunks[k]);
        report(e64 < REC_TOL64, what, e64, REC_TOL64);
        snprintf(what, sizeof what, "parallel == recurrent %s chunk %d (T 37) float32", feature_names[f], chunks[k]);
        report(e32 < REC_TOL32, what, e32, REC_TOL32);
        free(s), free(w), free(sf), free(wkf), free(yf64);
    }
    /* the test can fail: a recurrent step that skipped the token's own key (s < t) is far off */
    double d = 0;
    for (int64_t i = 0; i < ny; i++)
        d = fmax(d, fabs(yr[i]));
    check(d > 1e-3, "recurrent output is not trivially zero");
    for (int i = 0; i < L.nt; i++)
        free(wf[i]);
    free(xf), free(yf), free(yrf), free(yrf64), free(yr), free(yp);
    layer_free(&L);
}

/* ---- 3. causality ---- */
static void test_causal(celo_feature_map f)
{
    layer L;
    layer_init(&L, 1, 9, 8, 2, f, 4);
    int64_t ny = 9 * 8;
    double *y0 = calloc((size_t)ny, 8), *y1 = calloc((size_t)ny, 8);
    double *s = calloc((size_t)celo_linattn_saved_size(&L.d), 8), *w = calloc((size_t)celo_linattn_work_size(&L.d), 8);
    fwd64(&L, y0, s, w);
    for (int c = 0; c < 8; c++)
        L.x[5 * 8 + c] += 1; /* token 5 */
    fwd64(&L, y1, s, w);
    double before = 0, after = 0;
    for (int64_t i = 0; i < ny; i++)
        if (i < 5 * 8)
            before = fmax(before, fabs(y1[i] - y0[i]));
        else
            after = fmax(after, fabs(y1[i] - y0[i]));
    char what[96];
    snprintf(what, sizeof what, "causal %s: tokens 0..4 unmoved, 5.. moved (%.1e)", feature_names[f], after);
    check(before == 0 && after > 1e-6, what);
    free(y0), free(y1), free(s), free(w);
    layer_free(&L);
}

/* ---- 4. PyTorch ---- */
static float *load(const char *dir, const char *name, int64_t want)
{
    char path[1200], err[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    celo_array a;
    if (celo_npy_read(path, &a, err, sizeof err) != 0) {
        printf("FAIL %s\n", err);
        fails++;
        return NULL;
    }
    if (a.n != want) {
        printf("FAIL %s: %lld values, want %lld\n", path, (long long)a.n, (long long)want);
        fails++;
        celo_array_free(&a);
        return NULL;
    }
    return a.data; /* malloc'd by the reader */
}

/* the reference's shapes (gen_linattn.py): B 2, T 20, C 16, heads 2 (hs 8); celo runs chunk 8 (8 + 8 + 4) */
static void test_torch(const char *root, celo_feature_map f)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", root, feature_names[f]);
    celo_linattn_dims d = {2, 20, 16, 2, f, 8};
    int hs = 8, nt = celo_linattn_ntensors(f), C = 16;
    int64_t sz[8] = {3 * C * C, 3 * C, C * C, C, hs * hs, hs, hs * hs, hs}, np = 0, off[8];
    if (f == CELO_FEATURE_HEDGEHOG)
        sz[5] = hs * hs;
    for (int i = 0; i < nt; i++)
        off[i] = np, np += sz[i];
    int64_t nx = 2 * 20 * C;
    float *x = load(dir, "x.npy", nx), *p = load(dir, "params.npy", np), *r = load(dir, "r.npy", nx);
    float *y = load(dir, "y.npy", nx), *dx = load(dir, "dx.npy", nx), *g = load(dir, "grads.npy", np);
    if (!x || !p || !r || !y || !dx || !g) {
        free(x), free(p), free(r), free(y), free(dx), free(g);
        return;
    }
    double *y64 = to_f64(y, nx), *dx64 = to_f64(dx, nx), *g64 = to_f64(g, np);
    /* float32 */
    {
        const float *w[8];
        float *dw[8], *gf = calloc((size_t)np, 4);
        for (int i = 0; i < nt; i++)
            w[i] = p + off[i], dw[i] = gf + off[i];
        float *yc = calloc((size_t)nx, 4), *dxc = calloc((size_t)nx, 4);
        float *s = calloc((size_t)celo_linattn_saved_size(&d), 4), *ds = calloc((size_t)celo_linattn_saved_size(&d), 4);
        float *wk = calloc((size_t)celo_linattn_work_size(&d), 4);
        celo_nn_linattn_forward(yc, s, wk, x, w, &d);
        celo_nn_linattn_backward(dxc, dw, ds, wk, r, x, s, w, &d);
        double *a = to_f64(yc, nx), *b = to_f64(dxc, nx), *c = to_f64(gf, np);
        char what[96];
        snprintf(what, sizeof what, "torch %s float32 y", feature_names[f]);
        report(nerr(a, y64, nx) < REF_TOL32, what, nerr(a, y64, nx), REF_TOL32);
        snprintf(what, sizeof what, "torch %s float32 dx", feature_names[f]);
        report(nerr(b, dx64, nx) < REF_TOL32, what, nerr(b, dx64, nx), REF_TOL32);
        for (int i = 0; i < nt; i++) {
            double e = nerr(c + off[i], g64 + off[i], sz[i]);
            snprintf(what, sizeof what, "torch %s float32 grad of tensor %d", feature_names[f], i);
            report(e < REF_TOL32, what, e, REF_TOL32);
        }
        free(a), free(b), free(c), free(gf), free(yc), free(dxc), free(s), free(ds), free(wk);
    }
    /* float64 */
    {
        double *pd = to_f64(p, np), *xd = to_f64(x, nx), *rd = to_f64(r, nx), *gd = calloc((size_t)np, 8);
        const double *w[8];
        double *dw[8];
        for (int i = 0; i < nt; i++)
            w[i] = pd + off[i], dw[i] = gd + off[i];
        double *yc = calloc((size_t)nx, 8), *dxc = calloc((size_t)nx, 8);
        double *s = calloc((size_t)celo_linattn_saved_size(&d), 8),
               *ds = calloc((size_t)celo_linattn_saved_size(&d), 8);
        double *wk = calloc((size_t)celo_linattn_work_size(&d), 8);
        celo_nn_linattn_forward_f64(yc, s, wk, xd, w, &d);
        celo_nn_linattn_backward_f64(dxc, dw, ds, wk, rd, xd, s, w, &d);
        char what[96];
        snprintf(what, sizeof what, "torch %s float64 y", feature_names[f]);
        report(nerr(yc, y64, nx) < REF_TOL64, what, nerr(yc, y64, nx), REF_TOL64);
        snprintf(what, sizeof what, "torch %s float64 dx", feature_names[f]);
        report(nerr(dxc, dx64, nx) < REF_TOL64, what, nerr(dxc, dx64, nx), REF_TOL64);
        for (int i = 0; i < nt; i++) {
            double e = nerr(gd + off[i], g64 + off[i], sz[i]);
            snprintf(what, sizeof what, "torch %s float64 grad of tensor %d", feature_names[f], i);
            report(e < REF_TOL64, what, e, REF_TOL64);
        }
        free(pd), free(xd), free(rd), free(gd), free(yc), free(dxc), free(s), free(ds), free(wk);
    }
    free(y64), free(dx64), free(g64);
    free(x), free(p), free(r), free(y), free(dx), free(g);
}

/* the torch module's state_dict (tensors.txt: names, shapes, order) is the gpt block's h.0.attn.* table */
static void test_names(const char *root, celo_feature_map f)
{
    char path[1200], err[256], line[256];
    snprintf(path, sizeof path, "%s/%s/tensors.txt", root, feature_names[f]);
    celo_model_config cfg = {
        .kind = CELO_MODEL_GPT,
        .gpt = {.vocab = 5, .ctx = 4, .dim = 16, .heads = 2, .layers = 1, .mixer = CELO_MIXER_LINEAR, .feature = f}};
    celo_model *m = celo_model_create(&cfg, 1, err, sizeof err);
    FILE *fp = fopen(path, "r");
    int ok = m && fp, k = 0, first = m ? celo_model_find(m, "h.0.attn.c_attn.weight") : -1;
    while (ok && fgets(line, sizeof line, fp)) {
        const celo_param_tensor *t = celo_model_tensor(m, first + k++);
        char want[256] = "", dims[64] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%lld", i ? "x" : "", (long long)t->shape[i]);
        line[strcspn(line, "\n")] = 0;
        snprintf(want, sizeof want, "h.0.attn.%.*s", (int)strcspn(line, " "), line);
        ok = !strcmp(t->name, want) && !strcmp(line + strcspn(line, " ") + 1, dims);
    }
    ok = ok && k == celo_linattn_ntensors(f);
    char what[96];
    snprintf(what, sizeof what, "gpt %s: h.0.attn.* = torch's state_dict (%d tensors)", feature_names[f], k);
    check(ok, what);
    if (fp)
        fclose(fp);
    celo_model_free(m);
}

/* a softmax gpt's tensors all copy into the linear one (celo_model_copy_from: same names and shapes), and the
 * feature maps keep their own initialization */
static void test_copy(celo_feature_map f)
{
    char err[256], what[128];
    celo_model_config cfg = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 7, .ctx = 8, .dim = 16, .heads = 2, .layers = 2}};
    celo_model *soft = celo_model_create(&cfg, 1, err, sizeof err);
    cfg.gpt.mixer = CELO_MIXER_LINEAR, cfg.gpt.feature = f;
    celo_model *lin = celo_model_create(&cfg, 2, err, sizeof err);
    int ok = soft && lin && celo_model_ntensors(lin) == celo_model_ntensors(soft) + 2 * (celo_linattn_ntensors(f) - 4);
    int64_t off = 0;
    int fq = lin ? celo_model_find(lin, "h.1.attn.feature_q.weight") : -1;
    if (ok && fq >= 0)
        off = celo_model_tensor(lin, fq)->offset;
    float keep = fq >= 0 ? celo_model_params(lin)[off] : 0;
    int n = ok ? celo_model_copy_from(lin, soft, "", "") : -1;
    ok = ok && n == celo_model_ntensors(soft);
    for (int i = 0; ok && i < celo_model_ntensors(soft); i++) {
        const celo_param_tensor *t = celo_model_tensor(soft, i);
        const celo_param_tensor *u = celo_model_tensor(lin, celo_model_find(lin, t->name));
        ok = !memcmp(celo_model_params(soft) + t->offset, celo_model_params(lin) + u->offset,
                     (size_t)t->numel * sizeof(float));
    }
    ok = ok && (fq < 0 || celo_model_params(lin)[off] == keep);
    snprintf(what, sizeof what, "softmax gpt -> linear %s gpt: all %d softmax tensors copy, the maps stay",
             feature_names[f], n);
    check(ok, what);
    celo_model_free(soft);
    celo_model_free(lin);
}

int main(void)
{
    celo_rng_init(&rng, 20261206, 0);
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++) {
        test_fd((celo_feature_map)f, 3); /* 3 + 3 + 1 tokens */
        test_fd((celo_feature_map)f, 0); /* one chunk */
    }
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        test_recurrent((celo_feature_map)f);
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        test_causal((celo_feature_map)f);
    const char *root = getenv("CELO_GOLDEN_LINATTN");
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        test_torch(root ? root : "tests/golden/linattn", (celo_feature_map)f);
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        test_names(root ? root : "tests/golden/linattn", (celo_feature_map)f);
    for (int f = CELO_FEATURE_IDENTITY; f <= CELO_FEATURE_HEDGEHOG; f++)
        test_copy((celo_feature_map)f);
    printf("worst: finite differences %.2e, parallel vs recurrent %.2e (float32) %.2e (float64); %d failed\n", worst_fd,
           worst_rec32, worst_rec64, fails);
    return fails != 0;
}
