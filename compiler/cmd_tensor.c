/* cmd_tensor.c — the commands that run a rule over tensors: apply (a rule over a sequence of gradients) and
 * bench (its step's speed). */
#include "cli.h"

#include "../runtime/backend.h"
#include "../runtime/facdom.h"
#include "backend.h"
#include "diag.h"
#include "opencl.h"
#include "pipeline.h"
#include "rules.h"
#include "theta.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int write_state(const celo_state *st, const char *dir)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        return cli_fail("--state-out: cannot create directory '%s'", dir);
    const celo_program *P = st->prog;
    for (int s = 0; s < P->nstate; s++) {
        char path[PATH_MAX], err[512];
        snprintf(path, sizeof path, "%s/%s.npy", dir, P->state[s].name);
        int64_t shp[8];
        int nd;
        switch (P->state[s].dom) {
        case CELO_ELEM:
            nd = st->ndim;
            memcpy(shp, st->shape, sizeof shp);
            break;
        case CELO_ROW:
            nd = 1;
            shp[0] = st->R;
            break;
        case CELO_COL:
            nd = 1;
            shp[0] = st->C;
            break;
        case CELO_FROW:
        case CELO_FCOL:
        case CELO_FBAT:
        case CELO_MAT: { /* the axes the domain keeps */
            unsigned rm = celo_fac_removed(st, P->state[s].dom);
            nd = 0;
            for (int a = 0; a < st->ndim; a++)
                if (!(rm >> a & 1))
                    shp[nd++] = st->shape[a];
            break;
        }
        default: nd = 0; break;
        }
        if (celo_npy_write(path, st->slot[s], nd, shp, err, sizeof err))
            return cli_fail("%s", err);
    }
    return 0;
}

/* A learned rule's θ from --theta FILE (NULL: none given), named and checked against the rule's table before
 * anything is compiled; *theta stays NULL for a rule without learned parameters. 0, or 1 after a one-line error. */
static int load_theta(const celo_program *P, const char *thetaf, float **theta)
{
    char err[1024];
    *theta = NULL;
    if (thetaf && P->ntheta == 0)
        return cli_fail("--theta: rule '%s' has no learned parameters", P->name);
    if (!thetaf && P->ntheta > 0)
        return cli_fail("rule '%s' is learned: give its meta-parameters with --theta FILE (celo theta init makes one)",
                        P->name);
    if (!thetaf)
        return 0;
    celo_theta th;
    int bad =
        celo_theta_read(thetaf, &th, NULL, err, sizeof err) || celo_theta_bind(P, &th, thetaf, theta, err, sizeof err);
    celo_theta_free(&th);
    return bad ? cli_fail("%s", err) : 0;
}

int cmd_apply(int argc, char **argv)
{
    const char *name = NULL, *file = NULL, *paramf = NULL, *grads = NULL, *out = NULL, *stdir = NULL, *thetaf = NULL;
    const char *trajf = NULL, *lossf = NULL;
    const char *tname = ""; /* the tensor's name, for a rule with classes (matches("…")) */
    celo_backend be = cli_default_backend();
    sets s = {0};
    const cli_opt opts[] = {{"--file", &file, NULL},  {"--param", &paramf, NULL},     {"--grads", &grads, NULL},
                            {"--out", &out, NULL},    {"--state-out", &stdir, NULL},  {"--theta", &thetaf, NULL},
                            {"--name", &tname, NULL}, {"--trajectory", &trajf, NULL}, {"--loss", &lossf, NULL},
                            {NULL, NULL, NULL}};
    if (cli_parse_args("apply", argc, argv, opts, &s, &be, &name))
        return 1;
    if (!name || !paramf || !grads || !out)
        return cli_fail("%s", "usage: celo apply RULE [--file F.celo] --param P.npy --grads G.npy [--set k=v]... "
                              "[--theta FILE] [--name TENSOR] [--loss L.npy] [--backend interp|llvm|opencl] "
                              "--out OUT.npy [--state-out DIR] [--trajectory TRAJ.npy]");
    char err[1024];
    celo_array P = {0}, G = {0}, Lo = {0};
    if (celo_npy_read(paramf, &P, err, sizeof err) || celo_npy_read(grads, &G, err, sizeof err)) {
        celo_array_free(&P);
        return cli_fail("%s", err);
    }
    int ok = G.ndim == P.ndim + 1;
    for (int i = 0; ok && i < P.ndim; i++)
        ok = G.shape[i + 1] == P.shape[i];
    if (!ok) {
        fprintf(stderr, "celo: %s: gradients must have shape [T, *param.shape]; param is [", grads);
        for (int i = 0; i < P.ndim; i++)
            fprintf(stderr, "%s%lld", i ? ", " : "", (long long)P.shape[i]);
        fprintf(stderr, "], gradients are [");
        for (int i = 0; i < G.ndim; i++)
            fprintf(stderr, "%s%lld", i ? ", " : "", (long long)G.shape[i]);
        fprintf(stderr, "]\n");
        celo_array_free(&P);
        celo_array_free(&G);
        return 1;
    }
    module m;
    rule *r = cli_load_rule(&m, file, name);
    int rc = 1;
    float hp[64];
    celo_bprog *bp = NULL;
    celo_bstate *st = NULL;
    float *theta = NULL, *traj = NULL;
    if (!r || cli_apply_sets(&r->prog, &s, hp))
        goto done;
    if (load_theta(&r->prog, thetaf, &theta))
        goto done;
    /* --loss L.npy: the training loss of each step (T values), which a rule reads as `loss` */
    if (lossf && !(r->prog.flags & CELO_PROG_READS_LOSS)) {
        cli_fail("--loss: rule '%s' does not read the loss", r->prog.name);
        goto done;
    }
    if (!lossf && (r->prog.flags & CELO_PROG_READS_LOSS)) {
        cli_fail("rule '%s' reads the loss: give each step's training loss with --loss L.npy (%lld values)",
                 r->prog.name, (long long)G.shape[0]);
        goto done;
    }
    if (lossf && celo_npy_read(lossf, &Lo, err, sizeof err)) {
        cli_fail("%s", err);
        goto done;
    }
    if (lossf && Lo.n != G.shape[0]) {
        cli_fail("%s: %lld losses for %lld gradients (one per step)", lossf, (long long)Lo.n, (long long)G.shape[0]);
        goto done;
    }
    if (cli_is_llvm(&be) && llvm_jit_rules(&r, 1, err, sizeof err)) {
        cli_fail("%s", err);
        goto done;
    }
    int64_t T = G.shape[0];
    if (!(bp = be.compile(&be, &r->prog, err, sizeof err)) ||
        !(st = be.state_new(bp, P.ndim, P.shape, tname, T, err, sizeof err))) {
        cli_fail("%s", err);
        goto done;
    }
    if (theta)
        celo_bstate_set_theta(st, theta, r->prog.theta_len);
    if (trajf && !(traj = malloc((size_t)(T * P.n) * sizeof *traj))) {
        cli_fail("%s", "out of memory");
        goto done;
    }
    for (int64_t t = 1; t <= T; t++) {
        if (lossf)
            celo_bstate_set_loss(st, Lo.data[t - 1]);
        if (be.step(st, P.data, G.data + (t - 1) * P.n, hp, t, 0, err, sizeof err)) {
            cli_fail("%s", err);
            goto done;
        }
        if (traj)
            memcpy(traj + (t - 1) * P.n, P.data, (size_t)P.n * sizeof *traj);
    }
    if (traj && celo_npy_write(trajf, traj, G.ndim, G.shape, err, sizeof err)) { /* [T, *param.shape] */
        cli_fail("%s", err);
        goto done;
    }
    const celo_state *hs = stdir ? be.state_get(st, err, sizeof err) : NULL;
    if (stdir && !hs) {
        cli_fail("%s", err);
        goto done;
    }
    if (stdir && write_state(hs, stdir))
        goto done;
    if (celo_npy_write(out, P.data, P.ndim, P.shape, err, sizeof err)) {
        cli_fail("%s", err);
        goto done;
    }
    rc = 0;
done:
    if (st)
        be.state_free(st);
    if (bp)
        be.prog_free(bp);
    free(theta);
    free(traj);
    cli_sets_free(&s);
    rule_free(r);
    module_free(&m);
    celo_array_free(&P);
    celo_array_free(&G);
    celo_array_free(&Lo);
    return rc;
}

/* The training loss `celo bench` gives a rule that reads it, every step (docs/language.md). */
#define CELO_BENCH_LOSS 1.0

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cmd_bench(int argc, char **argv)
{
    const char *name = NULL, *file = NULL;
    const char *size_s = NULL, *steps_s = NULL, *thetaf = NULL, *shape_s = NULL;
    long long size = 0;
    int steps = 0, jit_all = 0;
    celo_backend be = cli_default_backend();
    const cli_opt opts[] = {{"--size", &size_s, NULL}, {"--shape", &shape_s, NULL}, {"--steps", &steps_s, NULL},
                            {"--file", &file, NULL},   {"--theta", &thetaf, NULL},  {"--jit-all", NULL, &jit_all},
                            {NULL, NULL, NULL}};
    if (cli_parse_args("bench", argc, argv, opts, NULL, &be, &name))
        return 1;
    if (size_s)
        size = atoll(size_s);
    /* --shape 4096x1024: the tensor's shape (factored statistics and per-matrix operations depend on it) */
    int64_t shape[8];
    int nd = 0;
    if (shape_s) {
        const char *s = shape_s;
        long long n = 1;
        while (*s) {
            char *end;
            errno = 0;
            long long d = strtoll(s, &end, 10);
            if (end == s || d <= 0 || errno || nd == 8 || (*end && *end != 'x') || (*end == 'x' && !end[1]) ||
                n > LLONG_MAX / d)
                return cli_fail("bench: --shape '%s': expected sizes joined by 'x', e.g. 4096x1024 (at most 8)",
                                shape_s);
            shape[nd++] = d;
            n *= d;
            s = *end ? end + 1 : end;
        }
        if (!nd)
            return cli_fail("bench: --shape '%s': expected sizes joined by 'x', e.g. 4096x1024", shape_s);
        if (size_s && size != n)
            return cli_fail("bench: --size %lld does not match --shape %s (%lld elements)", size, shape_s, n);
        size = n;
    }
    if (steps_s)
        steps = atoi(steps_s);
    char err[1024];
    if (jit_all) {
        /* check + lower + fuse + JIT every stdlib rule, as one module */
        double t0 = cli_now_s();
        module m;
        if (module_load(&m, NULL, cli_stdlib_dir()) || diag_count)
            return 1;
        rule *rules[512];
        int n = 0;
        for (def *d = m.defs; d; d = d->next)
            if (d->kind == DEF_OPTIMIZER && n < 512) {
                rules[n] = rule_compile(&m, d);
                if (!rules[n])
                    return 1;
                n++;
            }
        double t1 = cli_now_s();
        if (llvm_jit_rules(rules, n, err, sizeof err))
            return cli_fail("%s", err);
        double t2 = cli_now_s();
        printf("rules=%d check_ms=%.1f jit_ms_only=%.1f\n", n, 1e3 * (t1 - t0), 1e3 * (t2 - t1));
        printf("jit_ms=%.1f\n", 1e3 * (t2 - t0));
        for (int i = 0; i < n; i++)
            rule_free(rules[i]);
        module_free(&m);
        return 0;
    }
    if (!name || size <= 0)
        return cli_fail(
            "%s", "usage: celo bench RULE --size N | --shape AxB[x...] [--backend interp|llvm|opencl] [--steps S] "
                  "[--theta FILE]");
    module m;
    rule *r = cli_load_rule(&m, file, name);
    if (!r)
        return 1;
    float hp[64], *theta = NULL;
    celo_program_defaults(&r->prog, hp);
    if (load_theta(&r->prog, thetaf, &theta))
        return 1;
    if (cli_is_llvm(&be) && llvm_jit_rules(&r, 1, err, sizeof err))
        return cli_fail("%s", err);
    if (!nd) { /* --size only: a matrix view close to square, so that factored rules see realistic rows and columns */
        int64_t cols = 1;
        while (cols * cols < size)
            cols *= 2;
        nd = size % cols == 0 ? 2 : 1;
        shape[0] = nd == 2 ? size / cols : size;
        shape[1] = cols;
    }
    float *p = NULL, *g = NULL;
    if (posix_memalign((void **)&p, 64, (size_t)size * 4) || posix_memalign((void **)&g, 64, (size_t)size * 4))
        return cli_fail("%s", "out of memory");
    for (long long i = 0; i < size; i++) {
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        g[i] = (float)((i * 40503u) % 997) * 1e-3f - 0.5f;
    }
    if (steps <= 0)
        steps = size >= (1 << 22) ? 15 : size >= (1 << 16) ? 200 : 2000;
    double *ts = malloc((size_t)steps * sizeof *ts);
    /* through the back-end table, as a training run steps a tensor: p and g in host memory */
    celo_bprog *bp = be.compile(&be, &r->prog, err, sizeof err);
    celo_bstate *st = bp ? be.state_new(bp, nd, shape, NULL, steps, err, sizeof err) : NULL;
    if (!st)
        return cli_fail("%s", err);
    if (theta)
        celo_bstate_set_theta(st, theta, r->prog.theta_len);
    if (r->prog.flags & CELO_PROG_READS_LOSS)
        celo_bstate_set_loss(st, CELO_BENCH_LOSS); /* a rule that reads the loss sees this constant every step */
    /* warm-up steps are not timed (first-touch of the state, PoCL's first-launch compile) */
    for (int t = 1; t <= steps + 3; t++) {
        double t0 = cli_now_s();
        if (be.step(st, p, g, hp, t, 0, err, sizeof err))
            return cli_fail("%s", err);
        if (t > 3)
            ts[t - 4] = cli_now_s() - t0;
    }
    qsort(ts, (size_t)steps, sizeof *ts, cmp_double);
    double med = ts[steps / 2];
    char shp[160];
    int o = 0;
    for (int i = 0; i < nd && o < (int)sizeof shp - 24; i++)
        o += snprintf(shp + o, sizeof shp - (size_t)o, "%s%lld", i ? "x" : "", (long long)shape[i]);
    printf("rule=%s backend=%s size=%lld shape=%s passes=%d steps=%d median_ms=%.3f min_ms=%.3f threads=%d\n", name,
           be.name, size, shp, celo_program_select(&r->prog, nd, NULL)->npass, steps, 1e3 * med, 1e3 * ts[0],
           celo_threads());
    printf("params_per_s=%.6g\n", (double)size / med);
    free(ts);
    free(p);
    free(g);
    be.state_free(st);
    be.prog_free(bp);
    free(theta);
    rule_free(r);
    module_free(&m);
    return 0;
}
