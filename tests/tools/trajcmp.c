/*
 * trajcmp — compare an optimizer trajectory with a reference trajectory, step by step.
 *
 *     trajcmp MINE.npy GOLD.npy P0.npy [--rel X] [--ulp N]
 *
 * MINE and GOLD are [T, *S] (the parameter after each of T steps), P0 is [*S] (the parameter before step 1).
 * Step t passes when
 *
 *     max_i |mine_t - gold_t| <= max(X * max_i |gold_t - p0|, N * ulp(max_i |gold_t|))
 *
 * (X defaults to 2e-5, N to 8): the error is measured against the whole update made so far, and never asked to be
 * finer than a few float32 spacings of the parameter itself. These are the bounds of
 * tests/reference/compare_golden.py, whose docstring says why they are float32 rounding and nothing more.
 * Prints `worst_rel=<err / update> worst_ulp=<err / ulp> at step <t>` on stdout. A NaN or infinity in MINE where
 * GOLD has a finite value fails.
 *
 * Exit status: 0 when every step passes, 1 when one does not or the files do not fit, 2 on a usage error.
 */
#include "celort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: trajcmp MINE.npy GOLD.npy P0.npy [--rel X] [--ulp N]\n");
}

static int number(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return end != s && !*end && *out >= 0;
}

int main(int argc, char **argv)
{
    const char *path[3] = {NULL, NULL, NULL};
    int np = 0;
    double rel = 2e-5, ulps = 8;
    for (int i = 1; i < argc; i++) {
        double *opt = !strcmp(argv[i], "--rel") ? &rel : !strcmp(argv[i], "--ulp") ? &ulps : NULL;
        if (opt) {
            if (i + 1 >= argc || !number(argv[++i], opt)) {
                fprintf(stderr, "trajcmp: %s needs a number >= 0\n", argv[i - 1]);
                return 2;
            }
        } else if (argv[i][0] == '-' || np == 3) {
            usage();
            return 2;
        } else {
            path[np++] = argv[i];
        }
    }
    if (np != 3) {
        usage();
        return 2;
    }
    celo_array a[3] = {{0}, {0}, {0}};
    char err[512];
    int rc = 1;
    for (int k = 0; k < 3; k++)
        if (celo_npy_read(path[k], &a[k], err, sizeof err)) {
            fprintf(stderr, "trajcmp: %s\n", err);
            goto done;
        }
    int fit = a[0].ndim == a[1].ndim && a[0].ndim == a[2].ndim + 1 && a[0].n == a[1].n;
    for (int d = 0; fit && d < a[0].ndim; d++)
        fit = a[0].shape[d] == a[1].shape[d] && (d == 0 || a[0].shape[d] == a[2].shape[d - 1]);
    if (!fit || a[2].n == 0) {
        fprintf(stderr, "trajcmp: %s, %s and %s do not fit ([T, *S], [T, *S], [*S])\n", path[0], path[1], path[2]);
        goto done;
    }
    int64_t n = a[2].n, T = a[0].shape[0];
    double worst = 0, worst_ulp = 0;
    int64_t worst_t = 0, bad_t = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *m = a[0].data + t * n, *g = a[1].data + t * n, *p0 = a[2].data;
        double e = 0, upd = 0, big = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)m[i] - g[i]);
            if (isnan(d) || isinf(d))
                d = isfinite(g[i]) ? INFINITY : 0;
            e = fmax(e, d);
            upd = fmax(upd, fabs((double)g[i] - p0[i]));
            big = fmax(big, fabs((double)g[i]));
        }
        double ulp = nextafterf((float)big, INFINITY) - (float)big;
        double r = upd > 0 ? e / upd : (e > 0 ? INFINITY : 0), u = e / ulp;
        if (r > worst || (t == 0 && r == 0)) {
            worst = r;
            worst_t = t + 1;
        }
        worst_ulp = fmax(worst_ulp, u);
        if (!(e <= fmax(rel * upd, ulps * ulp)) && !bad_t)
            bad_t = t + 1;
    }
    printf("worst_rel=%.3g worst_ulp=%.3g at step %lld\n", worst, worst_ulp, (long long)worst_t);
    if (bad_t)
        fprintf(stderr, "trajcmp: %s: step %lld is outside max(%g of the update, %g ulp) of %s\n", path[0],
                (long long)bad_t, rel, ulps, path[1]);
    rc = bad_t ? 1 : 0;
done:
    for (int k = 0; k < 3; k++)
        celo_array_free(&a[k]);
    return rc;
}
