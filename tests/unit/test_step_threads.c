/* test_step_threads.c — the CPU executor (runtime/step.c) on a tensor large enough to be cut into chunks (the
 * chunks follow its size alone, celo_step_chunks): on 1, 2 and 3 threads the compiled kernels equal the
 * interpreter and the one-thread step bit for bit (reductions over the tensor, rows and columns, state per row and
 * column, an orthogonalization between passes, whose GEMMs run on fixed pieces too), and so do a step called from
 * inside another OpenMP team and celo_step_team run by a caller's team of 1 to 3 threads. Runs from the
 * repository root. */
#include "backend.h"
#include "diag.h"
#include "rules.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"

static const char rules_src[] = "optimizer ops_red(lr = 0.01) {\n"
                                "    state rv = 0, cv = 0, s = 1, rm = 0, cm = 0;\n"
                                "    rv = lerp(rv, row_mean(g * g), 0.1);\n"
                                "    cv = lerp(cv, col_sum(g * g) / rows(), 0.1);\n"
                                "    rm = row_max(abs(g) + p);\n"
                                "    cm = col_max(g * p);\n"
                                "    s = 0.5 * s + amax(g) - amin(p) + maxabs(g * p) + rms(g) + norm(p) / numel();\n"
                                "    u = g * rsqrt(rv * cv / max(mean(rv), 1e-30) + 1e-8) + 0.001 * (rm + cm);\n"
                                "    p -= lr * (u / max(1, rms(u)) + 0.01 * s * p);\n"
                                "}\n";

enum { STEPS = 3 };
static const int64_t shape[2] = {300, 1001}; /* 300300 elements: chunks cut rows */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 - 0.5);
}

/* STEPS steps of P from p0 with gradients g on nthreads threads; through celo_step, or (team > 0) through
 * celo_step_team called by every thread of an OpenMP team of `team` threads (a team may have fewer or more
 * threads than chunks). Returns the parameters (NULL and a FAIL line on error). */
static float *run(const celo_program *P, const float *p0, const float *g, int interp, int nthreads, int team)
{
    int64_t n = shape[0] * shape[1];
    float *p = malloc((size_t)n * sizeof *p), hp[64];
    memcpy(p, p0, (size_t)n * sizeof *p);
    celo_program_defaults(P, hp);
    celo_state *st = celo_state_new(P, 2, shape);
    celo_step_opts o = {.interp = interp, .nthreads = nthreads};
    int bad = 0;
    if (!team) {
        for (int t = 1; t <= STEPS && !bad; t++)
            bad = celo_step(P, st, p, g + (int64_t)(t - 1) * n, hp, t, &o) != 0;
    } else {
        celo_team *tm = celo_team_new(team);
#pragma omp parallel num_threads(team) reduction(| : bad)
        {
            int w = omp_get_thread_num();
            bad |= omp_get_num_threads() != team; /* every thread must call celo_step_team */
            for (int t = 1; t <= STEPS && !bad; t++)
                bad |= celo_step_team(P, st, p, g + (int64_t)(t - 1) * n, hp, t, &o, tm, w) != 0;
        }
        celo_team_free(tm);
    }
    if (bad) {
        check(0, "%s: %s (%d team threads): %s", P->name, team ? "celo_step_team" : "celo_step", team, o.err);
        free(p);
        p = NULL;
    }
    celo_state_free(st);
    return p;
}

static int same(const float *a, const float *b, int64_t n)
{
    return a && b && memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

int main(void)
{
    char path[] = "/tmp/celo-test-step-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || fputs(rules_src, f) == EOF || fclose(f)) {
        printf("FAIL writing the test rules\n");
        return 1;
    }
    module m;
    int bad = module_load(&m, path, "stdlib") || diag_count;
    remove(path);
    if (bad) {
        printf("FAIL loading the test rules\n");
        return 1;
    }
    const char *names[] = {"ops_red", "adafactor", "muon"};
    rule *rules[3] = {0};
    for (int i = 0; i < 3; i++) {
        def *d = module_find(&m, names[i]);
        rules[i] = d ? rule_compile(&m, d) : NULL;
        if (!rules[i]) {
            printf("FAIL compiling %s\n", names[i]);
            return 1;
        }
    }
    char err[512];
    if (llvm_jit_rules(rules, 3, err, sizeof err)) {
        printf("FAIL JIT: %s\n", err);
        return 1;
    }
    int64_t n = shape[0] * shape[1];
    float *p0 = malloc((size_t)n * sizeof *p0), *g = malloc((size_t)n * STEPS * sizeof *g);
    for (int64_t i = 0; i < n; i++)
        p0[i] = frand();
    for (int64_t i = 0; i < n * STEPS; i++)
        g[i] = 0.1f * frand();
    check(celo_step_chunks(n) == 8 && celo_step_chunks(65535) == 1 && celo_step_chunks(65536) == 2 &&
              celo_step_chunks(131071) == 2 && celo_step_chunks(131072) == 4 && celo_step_chunks(1 << 30) == 8,
          "chunks follow the size alone: 1 below 65536 elements, then 2, 4, 8 of at least 32768");
    for (int i = 0; i < 3; i++) {
        const celo_program *P = &rules[i]->prog;
        float *one = run(P, p0, g, 0, 1, 0);
        for (int nt = 1; nt <= 3; nt++) {
            float *a = run(P, p0, g, 0, nt, 0), *b = run(P, p0, g, 1, nt, 0);
            check(same(a, b, n), "%s [300, 1001], %d thread%s: llvm == interp bit for bit", names[i], nt,
                  nt > 1 ? "s" : "");
            check(same(a, one, n), "%s [300, 1001]: %d threads == 1 thread bit for bit", names[i], nt);
            free(a);
            free(b);
        }
        /* the step on a caller's team of 1, 2 or 3 threads == celo_step on one thread */
        for (int threads = 1; threads <= 3; threads++) {
            float *tm = run(P, p0, g, 0, 2, threads);
            check(same(one, tm, n), "%s: celo_step_team on %d thread%s == celo_step on one", names[i], threads,
                  threads > 1 ? "s" : "");
            free(tm);
        }
        /* two steps at once, each inside a team of two: each step's own team gets one thread */
        float *inner[2] = {0};
#pragma omp parallel for num_threads(2)
        for (int k = 0; k < 2; k++)
            inner[k] = run(P, p0, g, 0, 2, 0);
        check(same(one, inner[0], n) && same(one, inner[1], n), "%s: steps run inside another team == run alone",
              names[i]);
        free(one);
        free(inner[0]);
        free(inner[1]);
    }
    free(p0);
    free(g);
    for (int i = 0; i < 3; i++)
        rule_free(rules[i]);
    module_free(&m);
    llvm_shutdown();
    printf("%s\n", fails ? "test_step_threads: FAILED" : "test_step_threads: ok");
    return fails != 0;
}
