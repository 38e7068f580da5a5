/* test_facdom.c — the factored domains (celort.h: FROW, FCOL, FBAT, MAT).
 *
 * 1. The axes and tables of celo_state_new against a brute-force reading of the definition: d0 and d1 from a
 *    stable argsort of the sizes, each domain's length, and for every element i its index tab[1 + r] + tab[0] * c
 *    equal to the C-order index of its multi-index with the domain's axes removed.
 * 2. tests/facdom/facdom.celo (every factored builtin, a state slot in each factored domain) on tensors large
 *    enough to be cut into chunks ([40, 96, 91]: chunks cut rows; [1001, 300]: d0 = 0): on 1, 2 and 3 threads the
 *    compiled kernels equal the interpreter and the one-thread step bit for bit, parameters and state, and so
 *    does celo_step_team on a caller's team. Runs from the repository root. */
#include "backend.h"
#include "diag.h"
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"

/* ---- 1. axes and tables ---- */

/* the axes domain dom removes, from the definition (d0, d1 given) */
static unsigned removed(int dom, int nd, int d0, int d1)
{
    unsigned all = (1u << nd) - 1;
    if (nd < 2)
        return all;
    switch (dom) {
    case CELO_FROW: return 1u << d0;
    case CELO_FCOL: return 1u << d1;
    case CELO_FBAT: return (1u << d0) | (1u << d1);
    default: return (1u << (nd - 1)) | (1u << (nd - 2));
    }
}

static void check_shape(int nd, const int64_t *shape, int want_d0, int want_d1)
{
    static const celo_node nodes[] = {{.op = CELO_OP_CONST, .dom = CELO_HOST, .a = -1, .b = -1, .c = -1}};
    static const celo_stateslot slots[] = {{"s", CELO_FBAT, 0, -1}};
    static const celo_program P = {.name = "tabs", .nnodes = 1, .nodes = nodes, .nstate = 1, .state = slots};
    celo_state *st = celo_state_new(&P, nd, shape);
    char what[64];
    int k = snprintf(what, sizeof what, "(");
    for (int a = 0; a < nd; a++)
        k += snprintf(what + k, sizeof what - (size_t)k, "%s%lld", a ? "," : "", (long long)shape[a]);
    snprintf(what + k, sizeof what - (size_t)k, ")");
    check(st != NULL, "state of shape %s", what);
    if (!st)
        return;
    check(st->d0 == want_d0 && st->d1 == want_d1, "%s: d0 = %d, d1 = %d (got %d, %d)", what, want_d0, want_d1, st->d0,
          st->d1);
    int bad = 0;
    for (int dom = CELO_FROW; dom <= CELO_MAT; dom++) {
        unsigned rm = removed(dom, nd, want_d0, want_d1);
        int64_t len = 1;
        for (int a = 0; a < nd; a++)
            if (!(rm >> a & 1))
                len *= shape[a];
        bad |= st->dlen[dom] != len;
        const int32_t *tab = st->ftab[dom - CELO_FROW];
        for (int64_t i = 0; i < st->n && tab; i++) {
            /* the C-order index of i's multi-index over the kept axes */
            int64_t q = i, idx = 0, stride = 1;
            for (int a = nd - 1; a >= 0; a--) {
                int64_t ia = q % shape[a];
                q /= shape[a];
                if (!(rm >> a & 1)) {
                    idx += ia * stride;
                    stride *= shape[a];
                }
            }
            int64_t r = i / st->C, c = i % st->C;
            bad |= tab[1 + r] + tab[0] * c != idx;
        }
        bad |= !tab;
    }
    check(!bad, "%s: lengths and tables of FROW, FCOL, FBAT, MAT follow the definition", what);
    check(st->slotlen[0] == st->dlen[CELO_FBAT], "%s: an FBAT slot holds one float per FBAT value", what);
    celo_state_free(st);
}

/* ---- 2. threads ---- */

enum { STEPS = 3 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 - 0.5);
}

typedef struct {
    float *p;
    float *state; /* every slot, concatenated */
    int64_t nstate;
} result;

static void result_free(result *r)
{
    free(r->p);
    free(r->state);
}

static result run(const celo_program *P, int nd, const int64_t *shape, const float *p0, const float *g, int interp,
                  int nthreads, int team)
{
    result res = {0};
    celo_state *st = celo_state_new(P, nd, shape);
    int64_t n = st->n;
    float hp[64];
    res.p = malloc((size_t)n * sizeof *res.p);
    memcpy(res.p, p0, (size_t)n * sizeof *res.p);
    celo_program_defaults(P, hp);
    celo_step_opts o = {.interp = interp, .nthreads = nthreads};
    int bad = 0;
    if (!team) {
        for (int t = 1; t <= STEPS && !bad; t++)
            bad = celo_step(P, st, res.p, g + (int64_t)(t - 1) * n, hp, t, &o) != 0;
    } else {
        celo_team *tm = celo_team_new(team);
#pragma omp parallel num_threads(team) reduction(| : bad)
        {
            int w = omp_get_thread_num();
            bad |= omp_get_num_threads() != team;
            for (int t = 1; t <= STEPS && !bad; t++)
                bad |= celo_step_team(P, st, res.p, g + (int64_t)(t - 1) * n, hp, t, &o, tm, w) != 0;
        }
        celo_team_free(tm);
    }
    for (int s = 0; s < P->nstate; s++)
        res.nstate += st->slotlen[s];
    res.state = malloc((size_t)(res.nstate + 1) * sizeof *res.state);
    int64_t off = 0;
    for (int s = 0; s < P->nstate; s++) {
        memcpy(res.state + off, st->slot[s], (size_t)st->slotlen[s] * sizeof *res.state);
        off += st->slotlen[s];
    }
    if (bad) {
        check(0, "%s: step failed: %s", P->name, o.err);
        result_free(&res);
        res.p = NULL;
        res.state = NULL;
    }
    celo_state_free(st);
    return res;
}

static int same(const result *a, const result *b, int64_t n)
{
    return a->p && b->p && a->nstate == b->nstate && memcmp(a->p, b->p, (size_t)n * sizeof *a->p) == 0 &&
           memcmp(a->state, b->state, (size_t)a->nstate * sizeof *a->state) == 0;
}

static void check_threads(const celo_program *P, int nd, const int64_t *shape, const char *what)
{
    int64_t n = 1;
    for (int a = 0; a < nd; a++)
        n *= shape[a];
    float *p0 = malloc((size_t)n * sizeof *p0), *g = malloc((size_t)n * STEPS * sizeof *g);
    for (int64_t i = 0; i < n; i++)
        p0[i] = frand();
    for (int64_t i = 0; i < n * STEPS; i++)
        g[i] = 0.1f * frand();
    check(celo_step_chunks(n) == 8, "%s: cut into 8 chunks", what);
    result one = run(P, nd, shape, p0, g, 0, 1, 0);
    for (int nt = 1; nt <= 3; nt++) {
        result a = run(P, nd, shape, p0, g, 0, nt, 0), b = run(P, nd, shape, p0, g, 1, nt, 0);
        check(same(&a, &b, n), "facdom %s, %d thread%s: llvm == interp bit for bit (p and state)", what, nt,
              nt > 1 ? "s" : "");
        check(same(&a, &one, n), "facdom %s: %d threads == 1 thread bit for bit (p and state)", what, nt);
        result_free(&a);
        result_free(&b);
    }
    for (int threads = 2; threads <= 3; threads++) {
        result tm = run(P, nd, shape, p0, g, 0, 2, threads);
        check(same(&one, &tm, n), "facdom %s: celo_step_team on %d threads == celo_step on one", what, threads);
        result_free(&tm);
    }
    result_free(&one);
    free(p0);
    free(g);
}

int main(void)
{
    check_shape(1, (const int64_t[]){37}, 0, 0);
    check_shape(2, (const int64_t[]){4, 9}, 1, 0);
    check_shape(2, (const int64_t[]){9, 4}, 0, 1);
    check_shape(2, (const int64_t[]){8, 8}, 1, 0);
    check_shape(3, (const int64_t[]){3, 5, 7}, 2, 1);
    check_shape(3, (const int64_t[]){6, 2, 6}, 2, 0);
    check_shape(3, (const int64_t[]){4, 4, 4}, 2, 1);
    check_shape(3, (const int64_t[]){6, 6, 3}, 1, 0);
    check_shape(3, (const int64_t[]){3, 6, 6}, 2, 1);
    check_shape(4, (const int64_t[]){2, 7, 3, 5}, 1, 3);
    check_shape(4, (const int64_t[]){5, 1, 6, 2}, 2, 0);

    module m;
    if (module_load(&m, "tests/facdom/facdom.celo", "stdlib") || diag_count) {
        printf("FAIL loading tests/facdom/facdom.celo\n");
        return 1;
    }
    def *d = module_find(&m, "facdom");
    rule *r = d ? rule_compile(&m, d) : NULL;
    char err[512];
    if (!r || llvm_jit_rules(&r, 1, err, sizeof err)) {
        printf("FAIL compiling facdom: %s\n", r ? err : "");
        return 1;
    }
    check_threads(&r->prog, 3, (const int64_t[]){40, 96, 91}, "[40, 96, 91]");
    check_threads(&r->prog, 2, (const int64_t[]){1001, 300}, "[1001, 300]");
    rule_free(r);
    module_free(&m);
    llvm_shutdown();
    printf("%s\n", fails ? "test_facdom: FAILED" : "test_facdom: ok");
    return fails != 0;
}
