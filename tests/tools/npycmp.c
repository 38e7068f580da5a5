/*
 * npycmp — compare two float .npy files (read with runtime/npy.c).
 *
 *     npycmp A.npy B.npy [--rtol X]        (B is the reference; X defaults to 1e-6)
 *
 * Prints `max_rel_err=<v>` on stdout (nan when a NaN is unmatched, inf when an infinity is), where
 *
 *     max_rel_err = max_i |a_i - b_i| / max_i |b_i|
 *
 * i.e. the largest absolute difference relative to the largest magnitude of the reference (over its finite
 * elements; when that is 0 the plain absolute difference is used). The error is normalised by the tensor's scale,
 * not element by element, so elements near zero do not dominate.
 *
 * Exit status: 0 when max_rel_err <= X; 1 when it is larger, when the shapes differ, when one file has a NaN
 * where the other has not (NaN in both at the same index counts as equal), when an infinity in one is not the
 * same infinity in the other, or when a file cannot be read; 2 on a usage error. Reasons for a 1 go to stderr.
 */
#include "celort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: npycmp A.npy B.npy [--rtol X]\n");
}

static void print_shape(FILE *f, const celo_array *a)
{
    fputc('[', f);
    for (int i = 0; i < a->ndim; i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    fputc(']', f);
}

int main(int argc, char **argv)
{
    const char *pa = NULL, *pb = NULL;
    double rtol = 1e-6;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *val = NULL;
        if (strcmp(s, "--rtol") == 0) {
            if (i + 1 >= argc) {
                usage();
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(s, "--rtol=", 7) == 0) {
            val = s + 7;
        } else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "npycmp: unknown option %s\n", s);
            usage();
            return 2;
        } else if (!pa) {
            pa = s;
        } else if (!pb) {
            pb = s;
        } else {
            usage();
            return 2;
        }
        if (val) {
            char *end;
            rtol = strtod(val, &end);
            if (end == val || *end || !(rtol >= 0)) {
                fprintf(stderr, "npycmp: bad --rtol value '%s'\n", val);
                return 2;
            }
        }
    }
    if (!pa || !pb) {
        usage();
        return 2;
    }

    celo_array a, b;
    char err[512];
    if (celo_npy_read(pa, &a, err, sizeof err) != 0) {
        fprintf(stderr, "npycmp: %s\n", err);
        return 1;
    }
    if (celo_npy_read(pb, &b, err, sizeof err) != 0) {
        fprintf(stderr, "npycmp: %s\n", err);
        celo_array_free(&a);
        return 1;
    }

    int rc = 0;
    int same = a.ndim == b.ndim;
    for (int i = 0; same && i < a.ndim; i++)
        same = a.shape[i] == b.shape[i];
    if (!same) {
        fprintf(stderr, "npycmp: shape mismatch: %s is ", pa);
        print_shape(stderr, &a);
        fprintf(stderr, ", %s is ", pb);
        print_shape(stderr, &b);
        fputc('\n', stderr);
        rc = 1;
        goto out;
    }

    double bmax = 0, dmax = 0;
    int64_t worst = -1, bad_nan = -1, bad_inf = -1;
    for (int64_t i = 0; i < a.n; i++) {
        double x = a.data[i], y = b.data[i];
        if (isfinite(y) && fabs(y) > bmax)
            bmax = fabs(y);
        if (isnan(x) || isnan(y)) {
            if (!(isnan(x) && isnan(y)) && bad_nan < 0)
                bad_nan = i;
            continue;
        }
        if (isinf(x) || isinf(y)) {
            if (x != y && bad_inf < 0)
                bad_inf = i;
            continue;
        }
        double d = fabs(x - y);
        if (d > dmax) {
            dmax = d;
            worst = i;
        }
    }
    double rel = bmax > 0 ? dmax / bmax : dmax;
    if (bad_inf >= 0)
        rel = INFINITY;
    if (bad_nan >= 0)
        rel = NAN;
    printf("max_rel_err=%.6g\n", rel);
    if (bad_nan >= 0) {
        fprintf(stderr, "npycmp: NaN in only one file at index %lld: %s has %g, %s has %g\n", (long long)bad_nan, pa,
                (double)a.data[bad_nan], pb, (double)b.data[bad_nan]);
        rc = 1;
    }
    if (bad_inf >= 0) {
        fprintf(stderr, "npycmp: infinity mismatch at index %lld: %s has %g, %s has %g\n", (long long)bad_inf, pa,
                (double)a.data[bad_inf], pb, (double)b.data[bad_inf]);
        rc = 1;
    }
    if (rel > rtol && bad_nan < 0 && bad_inf < 0) {
        if (worst >= 0)
            fprintf(stderr, "npycmp: max_rel_err %.6g > rtol %.6g; worst at index %lld: %s has %.9g, %s has %.9g\n",
                    rel, rtol, (long long)worst, pa, (double)a.data[worst], pb, (double)b.data[worst]);
        rc = 1;
    }
out:
    celo_array_free(&a);
    celo_array_free(&b);
    return rc;
}
