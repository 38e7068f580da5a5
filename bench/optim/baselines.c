/*
 * Hand-written C baselines for bench/optim: AdamW, Lion and Adafactor, each as
 *   fused   - the fewest passes over memory a person writes by hand (one for AdamW and Lion, three for Adafactor),
 *             computing the formula of stdlib/<rule>.celo operation for operation (the same float32 operations
 *             in the same order, so the same rounding; only the order inside reductions differs);
 *   floatsum - Adafactor only: the fused version with its sums in float instead of double (other rounding);
 *   rewrite - Adafactor only: the fused version with an algebraic rewrite (per-row x per-column rsqrt factors)
 *             that changes rounding, which a compiler may not make on its own;
 *   unfused - one OpenMP loop per arithmetic operation over temporary arrays, the way an eager framework runs it;
 *   traffic - the memory traffic of the fused version with trivial arithmetic (a bound for the rule's own access
 *             pattern);
 * and a STREAM triad (a[i] = b[i] + s*c[i]) for the memory-bandwidth bound.
 *
 * Build: gcc -O3 -march=native -fno-math-errno -ffp-contract=off -fopenmp baselines.c -o optbase -lm
 *        (also built as a shared library with -shared -fPIC -DOPTBASE_NO_MAIN for check_numerics.py).
 *        -ffp-contract=off: gcc (gnu mode) would contract a*b+c into an FMA, which rounds differently from the
 *        formula; celo's kernels do not contract either.
 * Run:   optbase fused|floatsum|rewrite|unfused|traffic adamw|lion|adafactor [--size N] [--cols C] [--reps K] [--warmup
 * W]
 * [--max-s S] optbase triad [--size N] [--reps K] The last stdout line is params_per_s=<number> (median step time of
 * the run), or triad_bytes_per_s=<number>.
 *
 * Hyper-parameters are passed as a double array, host scalars are computed once per step in double and the
 * element loops run in float32, as celo's kernels do.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int64_t i64;

/* ------------------------------------------------------------------------------------------------ AdamW */
/* hp: lr, b1, b2, eps, wd.  torch.optim.AdamW and stdlib/adamw.celo: p *= 1-lr*wd; m = lerp(m, g, 1-b1);
 * v = b2 v + (1-b2) g^2; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps): per element a square root and two
 * divisions (dividing by sqrt(bc2), not multiplying by its reciprocal, which rounds differently). */
void adamw_fused(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, i64 n,
                 const double *hp, i64 t)
{
    double lr = hp[0], b1 = hp[1], b2 = hp[2], eps = hp[3], wd = hp[4];
    const float decay = (float)(1.0 - lr * wd), c1 = (float)(1.0 - b1), fb2 = (float)b2, c2 = (float)(1.0 - b2);
    const float step = (float)(lr / (1.0 - pow(b1, (double)t)));
    const float bc2s = (float)sqrt(1.0 - pow(b2, (double)t)), feps = (float)eps;
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + c1 * (gi - m[i]);
        float vi = fb2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) / bc2s + feps);
    }
}

/* ---- elementary eager operations: every one is a full pass over memory ---- */
static void op_muls(float *o, const float *a, float s, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] * s;
}
static void op_adds(float *o, const float *a, float s, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] + s;
}
static void op_divs(float *o, const float *a, float s, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] / s;
}
static void op_maxs(float *o, const float *a, float s, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] > s ? a[i] : s;
}
static void op_add(float *o, const float *a, const float *b, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] + b[i];
}
static void op_sub(float *o, const float *a, const float *b, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] - b[i];
}
static void op_mul(float *o, const float *a, const float *b, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] * b[i];
}
static void op_div(float *o, const float *a, const float *b, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = a[i] / b[i];
}
static void op_sqrt(float *o, const float *a, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = sqrtf(a[i]);
}
static void op_rsqrt(float *o, const float *a, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = 1.0f / sqrtf(a[i]);
}
static void op_sign(float *o, const float *a, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        o[i] = (float)((a[i] > 0.0f) - (a[i] < 0.0f));
}
static double op_sum(const float *a, i64 n)
{
    double s = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
    for (i64 i = 0; i < n; i++)
        s += a[i];
    return s;
}
/* row sums of an [R, C] matrix: one pass */
static void op_row_sum(float *o, const float *a, i64 R, i64 C)
{
#pragma omp parallel for schedule(static)
    for (i64 r = 0; r < R; r++) {
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (i64 c = 0; c < C; c++)
            s += a[r * C + c];
        o[r] = s;
    }
}
/* column sums: one pass (each thread sums its rows into a private vector, then they are added) */
static void op_col_sum(float *o, const float *a, i64 R, i64 C)
{
    int nt = omp_get_max_threads();
    float *part = calloc((size_t)nt * (size_t)C, sizeof(float));
#pragma omp parallel
    {
        float *acc = part + (size_t)omp_get_thread_num() * (size_t)C;
#pragma omp for schedule(static)
        for (i64 r = 0; r < R; r++) {
#pragma omp simd
            for (i64 c = 0; c < C; c++)
                acc[c] += a[r * C + c];
        }
    }
    for (i64 c = 0; c < C; c++) {
        float s = 0.0f;
        for (int k = 0; k < nt; k++)
            s += part[(size_t)k * (size_t)C + c];
        o[c] = s;
    }
    free(part);
}
/* outer product o[r, c] = a[r] * b[c] */
static void op_outer(float *o, const float *a, const float *b, i64 R, i64 C)
{
#pragma omp parallel for schedule(static)
    for (i64 r = 0; r < R; r++) {
        float ar = a[r];
#pragma omp simd
        for (i64 c = 0; c < C; c++)
            o[r * C + c] = ar * b[c];
    }
}

/* AdamW as an eager framework evaluates the formula: 14 passes (one per operation), two temporaries. */
void adamw_unfused(float *p, const float *g, float *m, float *v, i64 n, const double *hp, i64 t, float *t1, float *t2)
{
    double lr = hp[0], b1 = hp[1], b2 = hp[2], eps = hp[3], wd = hp[4];
    double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    op_muls(p, p, (float)(1.0 - lr * wd), n); /* p = p * (1 - lr wd) */
    op_muls(t1, m, (float)b1, n);             /* m = b1 m + (1 - b1) g */
    op_muls(t2, g, (float)(1.0 - b1), n);
    op_add(m, t1, t2, n);
    op_muls(t1, v, (float)b2, n); /* v = b2 v + (1 - b2) g g */
    op_mul(t2, g, g, n);
    op_muls(t2, t2, (float)(1.0 - b2), n);
    op_add(v, t1, t2, n);
    op_sqrt(t1, v, n); /* denom = sqrt(v) / sqrt(bc2) + eps */
    op_divs(t1, t1, (float)sqrt(bc2), n);
    op_adds(t1, t1, (float)eps, n);
    op_muls(t2, m, (float)(lr / bc1), n); /* p = p - (lr / bc1) m / denom */
    op_div(t2, t2, t1, n);
    op_sub(p, p, t2, n);
}

/* ------------------------------------------------------------------------------------------------- Lion */
/* hp: lr, b1, b2, wd.  Lion as optax and stdlib/lion.celo write it: upd = sign((1-b1) g + b1 m) + wd p;
 * m = (1-b2) g + b2 m; p += -lr * upd. */
void lion_fused(float *restrict p, const float *restrict g, float *restrict m, i64 n, const double *hp, i64 t)
{
    (void)t;
    double lr = hp[0], b1 = hp[1], b2 = hp[2], wd = hp[3];
    const float nlr = (float)-lr, fwd = (float)wd, fb1 = (float)b1, c1 = (float)(1.0 - b1), fb2 = (float)b2,
                c2 = (float)(1.0 - b2);
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++) {
        float gi = g[i], mi = m[i], pi = p[i];
        float c = c1 * gi + fb1 * mi;
        float s = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c);
        p[i] = pi + nlr * (s + fwd * pi);
        m[i] = c2 * gi + fb2 * mi;
    }
}

/* 10 passes (9 when wd == 0); weight decay as p *= 1 - lr*wd first (lion-pytorch's order: the same update up to
 * rounding). */
void lion_unfused(float *p, const float *g, float *m, i64 n, const double *hp, i64 t, float *t1, float *t2)
{
    (void)t;
    double lr = hp[0], b1 = hp[1], b2 = hp[2], wd = hp[3];
    if (wd != 0.0)
        op_muls(p, p, (float)(1.0 - lr * wd), n);
    op_muls(t1, m, (float)b1, n);
    op_muls(t2, g, (float)(1.0 - b1), n);
    op_add(t1, t1, t2, n);
    op_sign(t1, t1, n);
    op_muls(t1, t1, (float)lr, n);
    op_sub(p, p, t1, n);
    op_muls(t1, m, (float)b2, n);
    op_muls(t2, g, (float)(1.0 - b2), n);
    op_add(m, t1, t2, n);
}

/* -------------------------------------------------------------------------------------------- Adafactor */
/* hp: lr, beta2_decay, eps1 (<= 0: float32 machine epsilon, torch's None), eps2, d, wd.
 * torch.optim.Adafactor on a matrix [R, C] (row_var: R floats, col_var: C floats):
 *   beta = t^beta2_decay; rho = min(lr, 1/sqrt(t)); alpha = max(eps2, rms(p)) * rho;  (rms of p before decay)
 *   p *= 1 - lr*wd
 *   row_var = lerp(row_var, row_mean(g^2), beta); col_var = lerp(col_var, col_mean(g^2), beta)
 *   u = g * rsqrt(max(row_var col_var^T / max(mean(row_var), eps1), eps1^2))
 *   p -= alpha / max(1, rms(u)/d) * u
 * Small host-side work (R + C values) happens between the passes. */
static float torch_lerp(float a, float b, float w)
{ /* at::lerp */
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

static void adafactor_host(float *row_var, float *col_var, const float *row_sum, const float *col_sum, i64 R, i64 C,
                           double beta, double eps1, float *M)
{
    float fb = (float)beta;
    double mean = 0.0;
    for (i64 r = 0; r < R; r++) {
        row_var[r] = torch_lerp(row_var[r], row_sum[r] / (float)C, fb);
        mean += row_var[r];
    }
    for (i64 c = 0; c < C; c++)
        col_var[c] = torch_lerp(col_var[c], col_sum[c] / (float)R, fb);
    mean /= (double)R;
    *M = (float)(mean > eps1 ? mean : eps1);
}

/* The rewrite (not the same formula): three passes as in adafactor_fused below, but the element loops multiply
 * by per-row and per-column rsqrt factors wherever no eps1 clamp applies. */
void adafactor_rewrite(float *restrict p, const float *restrict g, float *restrict row_var, float *restrict col_var,
                       i64 R, i64 C, const double *hp, i64 t)
{
    double lr = hp[0], b2d = hp[1], eps1 = hp[2] > 0 ? hp[2] : (double)__FLT_EPSILON__, eps2 = hp[3], d = hp[4],
           wd = hp[5];
    i64 n = R * C;
    int nt = omp_get_max_threads();
    size_t np = (size_t)(nt > 3 ? nt : 3) * (size_t)C; /* column partials, later three column vectors */
    float *part = calloc(np + (size_t)(R + C), sizeof(float));
    float *row_sum = part + np, *col_sum = row_sum + R;
    double psq = 0.0;
    /* pass 1 */
#pragma omp parallel reduction(+ : psq)
    {
        float *acc = part + (size_t)omp_get_thread_num() * (size_t)C;
#pragma omp for schedule(static)
        for (i64 r = 0; r < R; r++) {
            const float *gr = g + r * C, *pr = p + r * C;
            float rs = 0.0f, ps = 0.0f;
#pragma omp simd reduction(+ : rs, ps)
            for (i64 c = 0; c < C; c++) {
                float g2 = gr[c] * gr[c];
                rs += g2;
                acc[c] += g2;
                ps += pr[c] * pr[c];
            }
            row_sum[r] = rs;
            psq += ps;
        }
    }
    for (i64 c = 0; c < C; c++) {
        float s = 0.0f;
        for (int k = 0; k < nt; k++)
            s += part[(size_t)k * (size_t)C + c];
        col_sum[c] = s;
    }
    double beta = pow((double)t, b2d), rho = fmin(lr, 1.0 / sqrt((double)t));
    double alpha = fmax(eps2, sqrt(psq) / sqrt((double)n)) * rho;
    float M;
    adafactor_host(row_var, col_var, row_sum, col_sum, R, C, beta, eps1, &M);
    const float e2 = (float)(eps1 * eps1);
    /* var[r, c] = row_var[r] col_var[c] / M, clamped at eps1^2. Where no clamp applies in a row (checked with
     * the smallest col_var), rsqrt(var) = rsqrt(row_var[r] / M) rsqrt(col_var[c]): the element loops then only
     * multiply, and stay at memory speed; rows where the clamp may apply take the exact form. */
    float *colM = part, *icol = part + C, *ricol = part + 2 * C; /* reuses the partials' space */
    float cmin = col_var[0];
    for (i64 c = 0; c < C; c++) {
        colM[c] = col_var[c] / M;
        cmin = col_var[c] < cmin ? col_var[c] : cmin;
        icol[c] = 1.0f / col_var[c];
        ricol[c] = 1.0f / sqrtf(col_var[c]);
    }
    /* pass 2: sum of u^2 = g^2 / var */
    double usq = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : usq)
    for (i64 r = 0; r < R; r++) {
        const float *gr = g + r * C;
        float rr = row_var[r], s = 0.0f;
        if (rr / M * cmin > e2) {
#pragma omp simd reduction(+ : s)
            for (i64 c = 0; c < C; c++)
                s += gr[c] * gr[c] * icol[c];
            usq += (double)s * (double)(M / rr);
        } else {
#pragma omp simd reduction(+ : s)
            for (i64 c = 0; c < C; c++) {
                float ve = rr * colM[c];
                ve = ve > e2 ? ve : e2;
                s += gr[c] * gr[c] / ve;
            }
            usq += s;
        }
    }
    double denom = fmax(1.0, sqrt(usq) / (sqrt((double)n) * d));
    const float decay = (float)(1.0 - lr * wd), step = (float)(alpha / denom);
    /* pass 3 */
#pragma omp parallel for schedule(static)
    for (i64 r = 0; r < R; r++) {
        float *pr = p + r * C;
        const float *gr = g + r * C;
        float rr = row_var[r];
        if (rr / M * cmin > e2) {
            const float k = step * sqrtf(M / rr);
#pragma omp simd
            for (i64 c = 0; c < C; c++)
                pr[c] = pr[c] * decay - k * gr[c] * ricol[c];
        } else {
#pragma omp simd
            for (i64 c = 0; c < C; c++) {
                float ve = rr * colM[c];
                ve = ve > e2 ? ve : e2;
                pr[c] = pr[c] * decay - step * (gr[c] / sqrtf(ve));
            }
        }
    }
    free(part);
}

/* The same formula as stdlib/adafactor.celo, operation for operation (what a compiler may emit without changing
 * results), in three passes: (1) read p, g: sum p^2, row and column sums of g^2; (2) read g: sum u^2; (3) read
 * p, g, write p (24 bytes per parameter). Every element computes u = g * rsqrt(max(row_var / M * col_var,
 * eps1^2)), in pass 2 and again in pass 3. Float accumulators per row, folded into double per row. */
/* Adafactor in three passes, the formula of stdlib/adafactor.celo; its sums (rows and columns of g^2, p^2, u^2)
 * accumulate in ACC. celo's language accumulates every reduction in double (docs/language.md), so the baseline
 * of the same formula is adafactor_fused (double); adafactor_floatsum sums in float as a C programmer might,
 * which rounds differently (shown beside it, like the rsqrt rewrite). */
#define ADAFACTOR_FUSED(NAME, ACC)                                                                                   \
    void NAME(float *restrict p, const float *restrict g, float *restrict row_var, float *restrict col_var, i64 R,   \
              i64 C, const double *hp, i64 t)                                                                        \
    {                                                                                                                \
        double lr = hp[0], b2d = hp[1], eps1 = hp[2] > 0 ? hp[2] : (double)__FLT_EPSILON__, eps2 = hp[3], d = hp[4], \
               wd = hp[5];                                                                                           \
        i64 n = R * C;                                                                                               \
        int nt = omp_get_max_threads();                                                                              \
        size_t np = (size_t)(nt > 1 ? nt : 1) * (size_t)C;                                                           \
        ACC *part = calloc(np, sizeof(ACC));                                                                         \
        float *sums = calloc((size_t)(2 * R + C), sizeof(float));                                                    \
        float *row_sum = sums, *col_sum = row_sum + R, *rowM = col_sum + C;                                          \
        double psq = 0.0;                                                                                            \
        _Pragma("omp parallel reduction(+ : psq)")                                                                   \
        {                                                                                                            \
            ACC *acc = part + (size_t)omp_get_thread_num() * (size_t)C;                                              \
            _Pragma("omp for schedule(static)") for (i64 r = 0; r < R; r++)                                          \
            {                                                                                                        \
                const float *gr = g + r * C, *pr = p + r * C;                                                        \
                ACC rs = 0, ps = 0;                                                                                  \
                _Pragma("omp simd reduction(+ : rs, ps)") for (i64 c = 0; c < C; c++)                                \
                {                                                                                                    \
                    float g2 = gr[c] * gr[c];                                                                        \
                    rs += (ACC)g2;                                                                                   \
                    acc[c] += (ACC)g2;                                                                               \
                    ps += (ACC)(pr[c] * pr[c]);                                                                      \
                }                                                                                                    \
                row_sum[r] = (float)rs;                                                                              \
                psq += ps;                                                                                           \
            }                                                                                                        \
        }                                                                                                            \
        for (i64 c = 0; c < C; c++) {                                                                                \
            ACC s = 0;                                                                                               \
            for (int k = 0; k < nt; k++)                                                                             \
                s += part[(size_t)k * (size_t)C + c];                                                                \
            col_sum[c] = (float)s;                                                                                   \
        }                                                                                                            \
        double beta = pow((double)t, b2d), rho = fmin(lr, 1.0 / sqrt((double)t));                                    \
        double alpha = fmax(eps2, sqrt(psq) / sqrt((double)n)) * rho;                                                \
        float M;                                                                                                     \
        adafactor_host(row_var, col_var, row_sum, col_sum, R, C, beta, eps1, &M);                                    \
        for (i64 r = 0; r < R; r++)                                                                                  \
            rowM[r] = row_var[r] / M;                                                                                \
        const float e2 = (float)(eps1 * eps1);                                                                       \
        double usq = 0.0;                                                                                            \
        _Pragma("omp parallel for schedule(static) reduction(+ : usq)") for (i64 r = 0; r < R; r++)                  \
        {                                                                                                            \
            const float *gr = g + r * C;                                                                             \
            const float rm = rowM[r];                                                                                \
            ACC s = 0;                                                                                               \
            _Pragma("omp simd reduction(+ : s)") for (i64 c = 0; c < C; c++)                                         \
            {                                                                                                        \
                float ve = rm * col_var[c];                                                                          \
                ve = ve > e2 ? ve : e2;                                                                              \
                float u = gr[c] * (1.0f / sqrtf(ve));                                                                \
                s += (ACC)(u * u);                                                                                   \
            }                                                                                                        \
            usq += s;                                                                                                \
        }                                                                                                            \
        double denom = fmax(1.0, sqrt(usq) / (sqrt((double)n) * d));                                                 \
        const float decay = (float)(1.0 - lr * wd), step = (float)(alpha / denom);                                   \
        _Pragma("omp parallel for schedule(static)") for (i64 r = 0; r < R; r++)                                     \
        {                                                                                                            \
            float *pr = p + r * C;                                                                                   \
            const float *gr = g + r * C;                                                                             \
            const float rm = rowM[r];                                                                                \
            _Pragma("omp simd") for (i64 c = 0; c < C; c++)                                                          \
            {                                                                                                        \
                float ve = rm * col_var[c];                                                                          \
                ve = ve > e2 ? ve : e2;                                                                              \
                pr[c] = pr[c] * decay - step * (gr[c] * (1.0f / sqrtf(ve)));                                         \
            }                                                                                                        \
        }                                                                                                            \
        free(part);                                                                                                  \
        free(sums);                                                                                                  \
    }

ADAFACTOR_FUSED(adafactor_fused, double)
ADAFACTOR_FUSED(adafactor_floatsum, float)

/* One pass per operation, as torch's single-tensor Adafactor runs it (~14 passes). */
void adafactor_unfused(float *p, const float *g, float *row_var, float *col_var, i64 R, i64 C, const double *hp, i64 t,
                       float *t1, float *t2)
{
    double lr = hp[0], b2d = hp[1], eps1 = hp[2] > 0 ? hp[2] : (double)__FLT_EPSILON__, eps2 = hp[3], d = hp[4],
           wd = hp[5];
    i64 n = R * C;
    float *row_sum = malloc(sizeof(float) * (size_t)(R + C)), *col_sum = row_sum + R;
    double beta = pow((double)t, b2d), rho = fmin(lr, 1.0 / sqrt((double)t));
    op_mul(t2, p, p, n); /* alpha = max(eps2, norm(p)/sqrt(n)) * rho */
    double alpha = fmax(eps2, sqrt(op_sum(t2, n)) / sqrt((double)n)) * rho;
    if (wd != 0.0)
        op_muls(p, p, (float)(1.0 - lr * wd), n);
    op_mul(t1, g, g, n);
    op_row_sum(row_sum, t1, R, C);
    op_col_sum(col_sum, t1, R, C);
    float M;
    adafactor_host(row_var, col_var, row_sum, col_sum, R, C, beta, eps1, &M);
    op_outer(t1, row_var, col_var, R, C); /* var_estimate */
    op_divs(t1, t1, M, n);
    op_maxs(t1, t1, (float)(eps1 * eps1), n);
    op_rsqrt(t1, t1, n);
    op_mul(t1, t1, g, n); /* update */
    op_mul(t2, t1, t1, n);
    double denom = fmax(1.0, sqrt(op_sum(t2, n)) / (sqrt((double)n) * d));
    op_muls(t1, t1, (float)(alpha / denom), n);
    op_sub(p, p, t1, n);
    free(row_sum);
}

/* ------------------------------------------------------------------------------------------ STREAM triad */
void triad(float *restrict a, const float *restrict b, const float *restrict c, float s, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

/* ------------------------------------------------------------------------------ same-traffic loops */
/* The memory traffic of each fused rule with trivial arithmetic: a bound measured with the rule's own access
 * pattern (read-only streams, read-modify-write streams), where the triad has a write-allocate stream. */
void adamw_traffic(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++) {
        float gi = g[i] * 1e-6f;
        p[i] += gi, m[i] += gi, v[i] += gi;
    }
}
void lion_traffic(float *restrict p, const float *restrict g, float *restrict m, i64 n)
{
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++) {
        float gi = g[i] * 1e-6f;
        p[i] += gi, m[i] += gi;
    }
}
double adafactor_traffic(float *restrict p, const float *restrict g, i64 n)
{
    float s1 = 0.0f, s2 = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+ : s1)
    for (i64 i = 0; i < n; i++)
        s1 += p[i] * g[i];
#pragma omp parallel for simd schedule(static) reduction(+ : s2)
    for (i64 i = 0; i < n; i++)
        s2 += g[i];
    const float k = 1e-6f;
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++)
        p[i] += k * g[i];
    return (double)s1 + (double)s2;
}

#ifndef OPTBASE_NO_MAIN
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static float *alloc_init(i64 n, uint32_t seed, float lo, float hi)
{ /* first touch with the loops' layout */
    float *a = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!a) {
        fprintf(stderr, "optbase: out of memory\n");
        exit(1);
    }
#pragma omp parallel for simd schedule(static)
    for (i64 i = 0; i < n; i++) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed * 40503u;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13;
        a[i] = lo + (hi - lo) * (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    return a;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: optbase fused|floatsum|rewrite|unfused|traffic adamw|lion|adafactor [--size N] [--cols "
                        "C] [--reps K]"
                        " [--warmup W] [--max-s S]\n       optbase triad [--size N] [--reps K]\n");
        return 2;
    }
    const char *mode = argv[1], *rule = "";
    int ai = 2;
    if (strcmp(mode, "triad") != 0) {
        if (argc < 3)
            return fprintf(stderr, "optbase: missing rule\n"), 2;
        rule = argv[2];
        ai = 3;
    }
    i64 n = 16 * 1024 * 1024, C = 4096;
    int reps = 15, warm = 2;
    double max_s = 1.5;
    for (; ai + 1 < argc; ai += 2) {
        if (!strcmp(argv[ai], "--size"))
            n = atoll(argv[ai + 1]);
        else if (!strcmp(argv[ai], "--cols"))
            C = atoll(argv[ai + 1]);
        else if (!strcmp(argv[ai], "--reps"))
            reps = atoi(argv[ai + 1]);
        else if (!strcmp(argv[ai], "--warmup"))
            warm = atoi(argv[ai + 1]);
        else if (!strcmp(argv[ai], "--max-s"))
            max_s = atof(argv[ai + 1]);
        else
            return fprintf(stderr, "optbase: unknown option %s\n", argv[ai]), 2;
    }
    if (n % C)
        C = n; /* a vector: one row */
    i64 R = n / C;
    double *times = calloc((size_t)reps, sizeof(double));

    if (!strcmp(mode, "triad")) {
        float *a = alloc_init(n, 1, 0, 1), *b = alloc_init(n, 2, 0, 1), *c = alloc_init(n, 3, 0, 1);
        for (int w = 0; w < 2; w++)
            triad(a, b, c, 3.0f, n);
        for (int k = 0; k < reps; k++) {
            double t0 = now_s();
            triad(a, b, c, 3.0f, n);
            times[k] = now_s() - t0;
        }
        qsort(times, (size_t)reps, sizeof(double), cmp_d);
        double med = times[reps / 2];
        printf("triad n=%lld threads=%d median_ms=%.3f min_ms=%.3f\n", (long long)n, omp_get_max_threads(), med * 1e3,
               times[0] * 1e3);
        printf("triad_gbs_stream=%.2f (12 B/elem) triad_gbs_with_write_allocate=%.2f (16 B/elem)\n",
               12.0 * (double)n / med / 1e9, 16.0 * (double)n / med / 1e9);
        printf("triad_bytes_per_s=%.6g\n", 12.0 * (double)n / med);
        return 0;
    }

    int fused = !strcmp(mode, "fused"), traffic = !strcmp(mode, "traffic"), rewrite = !strcmp(mode, "rewrite"),
        floatsum = !strcmp(mode, "floatsum");
    if (traffic || rewrite || floatsum)
        fused = 1;
    if (!fused && strcmp(mode, "unfused"))
        return fprintf(stderr, "optbase: unknown mode %s\n", mode), 2;
    float *p = alloc_init(n, 11, -0.1f, 0.1f), *g = alloc_init(n, 12, -1e-2f, 1e-2f);
    float *s1 = NULL, *s2 = NULL, *t1 = NULL, *t2 = NULL;
    double hp[6];
    int kind;
    if (!strcmp(rule, "adamw")) {
        kind = 0;
        double h[] = {1e-3, 0.9, 0.999, 1e-8, 1e-2};
        memcpy(hp, h, sizeof h);
        s1 = alloc_init(n, 13, 0, 0), s2 = alloc_init(n, 14, 0, 0);
    } else if (!strcmp(rule, "lion")) {
        kind = 1;
        double h[] = {1e-4, 0.9, 0.99, 1e-3}; /* stdlib/lion.celo's defaults (optax) */
        memcpy(hp, h, sizeof h);
        s1 = alloc_init(n, 13, 0, 0);
    } else if (!strcmp(rule, "adafactor")) {
        kind = 2;
        double h[] = {1e-2, -0.8, 0.0, 1e-3, 1.0, 0.0};
        memcpy(hp, h, sizeof h);
        s1 = calloc((size_t)R, sizeof(float)), s2 = calloc((size_t)C, sizeof(float));
    } else
        return fprintf(stderr, "optbase: unknown rule %s\n", rule), 2;
    if ((rewrite || floatsum) && kind != 2)
        return fprintf(stderr, "optbase: %s is Adafactor's only\n", mode), 2;
    if (!fused)
        t1 = alloc_init(n, 15, 0, 0), t2 = alloc_init(n, 16, 0, 0);

    i64 step = 0;
    int done = 0;
    double sink = 0;
    double start = 0;
    for (int k = -warm; k < reps; k++) {
        if (k == 0)
            start = now_s();
        double t0 = now_s();
        step++;
        switch (traffic ? 6 + kind : kind * 2 + fused) {
        case 0: adamw_unfused(p, g, s1, s2, n, hp, step, t1, t2); break;
        case 1: adamw_fused(p, g, s1, s2, n, hp, step); break;
        case 2: lion_unfused(p, g, s1, n, hp, step, t1, t2); break;
        case 3: lion_fused(p, g, s1, n, hp, step); break;
        case 4: adafactor_unfused(p, g, s1, s2, R, C, hp, step, t1, t2); break;
        case 5:
            if (rewrite)
                adafactor_rewrite(p, g, s1, s2, R, C, hp, step);
            else if (floatsum)
                adafactor_floatsum(p, g, s1, s2, R, C, hp, step);
            else
                adafactor_fused(p, g, s1, s2, R, C, hp, step);
            break;
        case 6: adamw_traffic(p, g, s1, s2, n); break;
        case 7: lion_traffic(p, g, s1, n); break;
        case 8: sink += adafactor_traffic(p, g, n); break;
        }
        double dt = now_s() - t0;
        if (k >= 0) {
            times[done++] = dt;
            if (done >= 5 && now_s() - start > max_s)
                break; /* keep slow variants within the time budget */
        }
    }
    qsort(times, (size_t)done, sizeof(double), cmp_d);
    double med = done % 2 ? times[done / 2] : 0.5 * (times[done / 2 - 1] + times[done / 2]);
    double chk = 0;
    for (i64 i = 0; i < n; i += 4099)
        chk += p[i];
    chk += 0 * sink;
    printf("%s %s n=%lld shape=[%lld,%lld] threads=%d steps=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f checksum=%.6g\n",
           mode, rule, (long long)n, (long long)R, (long long)C, omp_get_max_threads(), done, med * 1e3, times[0] * 1e3,
           times[done - 1] * 1e3, chk);
    printf("params_per_s=%.6g\n", (double)n / med);
    return 0;
}
#endif
