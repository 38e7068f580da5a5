/* gradcheck.h — what the gradient tests share (test_linattn.c, test_mamba.c, test_nn_grad.c), included once by each:
 * errors relative to the largest value, float <-> double copies, and central finite differences of a scalar loss. */
#ifndef CELO_TEST_GRADCHECK_H
#define CELO_TEST_GRADCHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* max |a - b| / max |b| */
static inline double nerr(const double *a, const double *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i])), s = fmax(s, fabs(b[i]));
    return s > 0 ? d / s : d;
}

static inline float *to_f32(const double *a, int64_t n)
{
    float *f = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)a[i];
    return f;
}

static inline double *to_f64(const float *a, int64_t n)
{
    double *f = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++)
        f[i] = a[i];
    return f;
}

/* The gradient g of loss(ctx) with respect to x [n] against central differences with step h, at up to `samples`
 * entries spread over x: max |g - num| / max(|g|, |num|), or 1 when all are 0 (a check that cannot pass);
 * *scale_out (NULL: not set) = that max(|g|, |num|). */
static inline double fd_error_scale(double (*loss)(void *), void *ctx, double *x, const double *g, int64_t n,
                                    int64_t samples, double h, double *scale_out)
{
    int64_t count = n < samples ? n : samples;
    double maxdiff = 0, scale = 0;
    for (int64_t s = 0; s < count; s++) {
        int64_t i = count == n ? s : (s * n) / count + (s * 7919) % (n / count);
        double keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * h);
        maxdiff = fmax(maxdiff, fabs(num - g[i]));
        scale = fmax(scale, fmax(fabs(num), fabs(g[i])));
    }
    if (scale_out)
        *scale_out = scale;
    return scale > 0 ? maxdiff / scale : 1;
}

static inline double fd_error(double (*loss)(void *), void *ctx, double *x, const double *g, int64_t n, int64_t samples,
                              double h)
{
    return fd_error_scale(loss, ctx, x, g, n, samples, h, NULL);
}

#endif
