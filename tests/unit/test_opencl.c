/* test_opencl.c — the OpenCL back end against the interpreter (the oracle): every element-wise operation,
 * every reduction kind (sum and max over the tensor, rows and columns, NaN-propagating max), per-row, per-column
 * and per-tensor state, orthogonalization, shapes that cut rows across work-items, an empty tensor, two rules
 * alive at once, steps without read-back, the binary cache (including a corrupt cache file), and a build
 * failure. Skips (exit 0) when no OpenCL platform is installed. Runs from the repository root. */
#include "diag.h"
#include "../../runtime/clrun.h"
#include "opencl.h"
#include "rules.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char rules_src[] =
    "optimizer ops_elem(lr = 0.01, a = 0.5) {\n"
    "    state m = 0;\n"
    "    x = g * a + m;\n"
    "    y = where(x > 0 and g < 0.5, tanh(x), sigmoid(x)) + relu(g) - sign(p) * floor(g * 3);\n"
    "    z = exp(-abs(x)) + log(1 + g * g) + rsqrt(1 + p * p) + (abs(g) + 1)^(a + x * 0.01) + sqrt(abs(p));\n"
    "    w = min(x, y) + max(z, g) + (not (g >= 0)) + (g <= 0 or p != 0) + (g == 0) + clip(g, -0.3, 0.3) / (1 + "
    "square(p));\n"
    "    m = 0.9 * m + fma(w, a, x);\n"
    "    p -= lr * w;\n"
    "}\n"
    "optimizer ops_red(lr = 0.01) {\n"
    "    state rv = 0, cv = 0, s = 1, rm = 0, cm = 0;\n"
    "    rv = lerp(rv, row_mean(g * g), 0.1);\n"
    "    cv = lerp(cv, col_sum(g * g) / rows(), 0.1);\n"
    "    rm = row_max(abs(g) + p);\n"
    "    cm = col_max(g * p);\n"
    "    s = 0.5 * s + amax(g) - amin(p) + maxabs(g * p) + rms(g) + norm(p) / numel();\n"
    "    u = g * rsqrt(rv * cv / max(mean(rv), 1e-30) + 1e-8) + 0.001 * (rm + cm);\n"
    "    p -= lr * (u / max(1, rms(u)) + 0.01 * s * p);\n"
    "}\n"
    "optimizer ops_ortho(lr = 0.02) {\n"
    "    state m = 0;\n"
    "    m = 0.9 * m + g;\n"
    "    o = orthogonalize(m + 0.1 * g, steps = 3);\n"
    "    p -= lr * (o + sum(o) / numel() * p);\n"
    "}\n"
    "optimizer ops_nanmax() {\n"
    "    p = p * 0 + amax(g) + row_max(g) + col_max(g);\n"
    "}\n";

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* max |a - b| / max |b| over non-NaN entries; NaN positions must agree (counted in *nanmis) */
static double relerr(const float *a, const float *b, int64_t n, int64_t *nanmis)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            *nanmis += isnan(a[i]) != isnan(b[i]);
            continue;
        }
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static int no_platform;

/* T steps of rule r on shape through the interpreter and OpenCL; compares p and every state slot. */
static void compare(const rule *r, int ndim, const int64_t *shape, int with_nan, double tol, int read_back_each)
{
    const celo_program *P = &r->prog;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    char shp[64] = "";
    for (int i = 0; i < ndim; i++)
        snprintf(shp + strlen(shp), sizeof shp - strlen(shp), "%s%lld", i ? "x" : "", (long long)shape[i]);
    const int T = 3;
    float *p0 = malloc((size_t)(n ? n : 1) * sizeof *p0), *pi = malloc((size_t)(n ? n : 1) * sizeof *pi);
    float *pc = malloc((size_t)(n ? n : 1) * sizeof *pc), *g = malloc((size_t)(n ? n : 1) * T * sizeof *g);
    for (int64_t i = 0; i < n; i++)
        p0[i] = (float)(2 * urand() - 1);
    for (int64_t i = 0; i < n * T; i++)
        g[i] = i % 97 == 0 ? 0.0f : (float)(2 * urand() - 1);
    if (with_nan && n > 0)
        g[n / 2] = NAN;
    memcpy(pi, p0, (size_t)n * sizeof *pi);
    memcpy(pc, p0, (size_t)n * sizeof *pc);
    float hp[64];
    celo_program_defaults(P, hp);
    celo_state *st = celo_state_new(P, ndim, shape);
    celo_step_opts o = {.interp = 1};
    char err[1024] = "";
    celo_cl_rule *cr = celo_cl_rule_new(P, celo_opencl_source(P), ndim, shape, err, sizeof err);
    if (!cr) {
        if (strstr(err, "no platform"))
            no_platform = 1;
        else
            check(0, "%s %s: celo_cl_rule_new: %s", P->name, shp, err);
        goto done;
    }
    int ok = 1;
    for (int t = 1; t <= T && ok; t++) {
        if (celo_step(P, st, pi, g + (t - 1) * n, hp, t, &o)) {
            check(0, "%s %s: celo_step: %s", P->name, shp, o.err);
            ok = 0;
        }
        if (celo_cl_step(cr, pc, g + (t - 1) * n, hp, t, read_back_each || t == T, err, sizeof err)) {
            check(0, "%s %s: celo_cl_step: %s", P->name, shp, err);
            ok = 0;
        }
    }
    if (ok && celo_cl_finish(cr, err, sizeof err))
        check(ok = 0, "%s %s: celo_cl_finish: %s", P->name, shp, err);
    if (ok && celo_cl_state_read(cr, err, sizeof err))
        check(ok = 0, "%s %s: celo_cl_state_read: %s", P->name, shp, err);
    if (ok) {
        int64_t nanmis = 0;
        double e = relerr(pc, pi, n, &nanmis);
        const celo_state *cs = celo_cl_rule_state(cr);
        for (int s = 0; s < P->nstate; s++)
            e = fmax(e, relerr(cs->slot[s], st->slot[s], st->slotlen[s], &nanmis));
        check(e <= tol && nanmis == 0 && cs->t == T,
              "%-10s %-10s opencl vs interp: max rel diff %.2g (tol %.0e), NaN mismatches %lld", P->name, shp, e, tol,
              (long long)nanmis);
    }
    celo_cl_rule_free(cr);
done:
    celo_state_free(st);
    free(p0);
    free(pi);
    free(pc);
    free(g);
}

int main(void)
{
    char dir[] = "/tmp/celo-test-opencl.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[256], cache[256];
    snprintf(path, sizeof path, "%s/ops.celo", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    setenv("CELO_CACHE_DIR", cache, 1);
    FILE *f = fopen(path, "w");
    if (!f || fputs(rules_src, f) < 0 || fclose(f)) {
        perror(path);
        return 1;
    }
    module m;
    if (module_load(&m, path, "stdlib") || diag_count) {
        printf("FAIL loading the test rules\n");
        return 1;
    }
    const char *names[] = {"ops_elem", "ops_red", "ops_ortho", "ops_nanmax", "adafactor", "adamw"};
    rule *rules[6] = {0};
    for (int i = 0; i < 6; i++) {
        def *d = module_find(&m, names[i]);
        rules[i] = d ? rule_compile(&m, d) : NULL;
        if (!rules[i]) {
            printf("FAIL compiling %s\n", names[i]);
            return 1;
        }
    }

    /* the source: one kernel per pass */
    for (int i = 0; i < 6; i++) {
        char *src = celo_opencl_source(&rules[i]->prog);
        int ok = src != NULL;
        for (int k = 1; ok && k <= rules[i]->prog.npass + 1; k++) {
            char kn[32];
            snprintf(kn, sizeof kn, "celo_pass%d(", k);
            ok = (strstr(src, kn) != NULL) == (k <= rules[i]->prog.npass);
        }
        check(ok && strstr(src, "FP_CONTRACT OFF"), "%s: source has celo_pass1..%d and FP_CONTRACT OFF", names[i],
              rules[i]->prog.npass);
        free(src);
    }

    /* shapes: tiny, odd 3-D, a long vector (one row cut by many work-items), rows cut across work-items,
     * many short rows, an empty tensor */
    static const int64_t shapes[][3] = {{7}, {3, 5, 7}, {100003}, {300, 1001}, {70000, 3}, {1, 70001}, {0}};
    static const int ndims[] = {1, 3, 1, 2, 2, 2, 1};
    for (int s = 0; s < 7 && !no_platform; s++) {
        /* exp/log/pow/tanh: correctly rounded on OpenCL, the C library in the interpreter: a few ulp apart */
        compare(rules[0], ndims[s], shapes[s], 0, 1e-5, 0);
        compare(rules[1], ndims[s], shapes[s], 0, 1e-5, 1);
        compare(rules[2], ndims[s], shapes[s], 0, 1e-5, 0);
        compare(rules[3], ndims[s], shapes[s], 1, 0, 0);
        compare(rules[4], ndims[s], shapes[s], 0, 1e-5, 0);
    }
    /* the other work layouts and the float-only configuration, on the shapes that cut rows */
    static const char *const configs[][3] = {
        {"CELO_OPENCL_LAYOUT", "gpu", "GPU layout, one element per work-item"},
        {"CELO_OPENCL_EPW", "1", "CPU layout, one element per work-item"},
        {"CELO_OPENCL_FP64", "0", "float accumulators and built-in math"},
    };
    for (int c = 0; c < 3 && !no_platform; c++) {
        printf("---- %s\n", configs[c][2]);
        setenv(configs[c][0], configs[c][1], 1);
        for (int s = 3; s < 6; s++)
            for (int i = 0; i < 5; i++)
                compare(rules[i], ndims[s], shapes[s], i == 3, i == 3 ? 0 : 1e-5, i == 1);
        unsetenv(configs[c][0]);
    }
    if (no_platform) {
        printf("skip: no OpenCL platform\n");
        return 0;
    }

    /* two rules alive at once, steps interleaved */
    {
        int64_t shape[2] = {64, 33};
        char err[1024];
        celo_cl_rule *a =
            celo_cl_rule_new(&rules[5]->prog, celo_opencl_source(&rules[5]->prog), 2, shape, err, sizeof err);
        celo_cl_rule *b =
            celo_cl_rule_new(&rules[4]->prog, celo_opencl_source(&rules[4]->prog), 2, shape, err, sizeof err);
        celo_state *sa = celo_state_new(&rules[5]->prog, 2, shape), *sb = celo_state_new(&rules[4]->prog, 2, shape);
        float pa[64 * 33], pb[64 * 33], qa[64 * 33], qb[64 * 33], g[64 * 33], hpa[64], hpb[64];
        for (int i = 0; i < 64 * 33; i++) {
            pa[i] = pb[i] = qa[i] = qb[i] = (float)(2 * urand() - 1);
            g[i] = (float)(2 * urand() - 1);
        }
        celo_program_defaults(&rules[5]->prog, hpa);
        celo_program_defaults(&rules[4]->prog, hpb);
        celo_step_opts o = {.interp = 1};
        int ok = a && b;
        for (int t = 1; t <= 4 && ok; t++) {
            ok = !celo_cl_step(a, qa, g, hpa, t, 1, err, sizeof err) &&
                 !celo_cl_step(b, qb, g, hpb, t, 1, err, sizeof err) &&
                 !celo_step(&rules[5]->prog, sa, pa, g, hpa, t, &o) &&
                 !celo_step(&rules[4]->prog, sb, pb, g, hpb, t, &o);
        }
        int64_t nm = 0;
        check(ok && relerr(qa, pa, 64 * 33, &nm) <= 1e-6 && relerr(qb, pb, 64 * 33, &nm) <= 1e-6 && !nm,
              "two rules alive at once agree with the interpreter%s%s", ok ? "" : ": ", ok ? "" : err);
        celo_cl_rule_free(a);
        celo_cl_rule_free(b);
        celo_state_free(sa);
        celo_state_free(sb);
    }

    /* the binary cache: files were written; a corrupt one falls back to the source */
    {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "ls %s/opencl-*.bin >/dev/null 2>&1", cache);
        check(system(cmd) == 0, "binary cache files written under CELO_CACHE_DIR");
        int64_t shape[2] = {300, 1001};
        snprintf(cmd, sizeof cmd, "rm -f %s/opencl-*.bin", cache);
        if (system(cmd) != 0)
            check(0, "emptying the cache");
        compare(rules[4], 2, shape, 0, 1e-5, 0);
        snprintf(cmd, sizeof cmd,
                 "test $(ls %s/opencl-*.bin | wc -l) = 1 && for f in %s/opencl-*.bin; do echo garbage > $f; done",
                 cache, cache);
        check(system(cmd) == 0, "one rule, one cache file");
        compare(rules[4], 2, shape, 0, 1e-5, 0);
        snprintf(cmd, sizeof cmd, "! grep -l garbage %s/opencl-*.bin >/dev/null 2>&1", cache);
        check(system(cmd) == 0, "corrupt cache files are replaced");
    }

    /* a build failure: an error naming it, no crash */
    {
        char err[1024] = "";
        int64_t shape[1] = {10};
        char *bad = strdup("__kernel void celo_pass1(void) { this is not OpenCL C }\n");
        fprintf(stderr, "(a build log is expected below)\n");
        celo_cl_rule *r = celo_cl_rule_new(&rules[5]->prog, bad, 1, shape, err, sizeof err);
        check(!r && strstr(err, "CL_BUILD_PROGRAM_FAILURE"), "a bad kernel source fails cleanly: %s", err);
        celo_cl_rule_free(r);
        r = celo_cl_rule_new(&rules[5]->prog, NULL, 1, shape, err, sizeof err);
        check(!r && err[0], "no source fails cleanly: %s", err);
    }

    for (int i = 0; i < 6; i++)
        rule_free(rules[i]);
    module_free(&m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("%d failed\n", fails);
    return fails != 0;
}
