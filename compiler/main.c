/* main.c — the celo command line. */
#include "../runtime/backend.h"
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

static const char usage[] =
    "usage: celo COMMAND ...\n"
    "  celo check FILE.celo                       check every rule of a file\n"
    "  celo emit ast|ir|llvm|llvm-raw|opencl FILE.celo [RULE]\n"
    "  celo emit obj FILE.celo -o RULES.o         object code of the rules plus RULES.h\n"
    "  celo apply RULE [--file F.celo] --param P.npy --grads G.npy [--set k=v]...\n"
    "             [--backend interp|llvm|opencl] --out OUT.npy [--state-out DIR]\n"
    "  celo bench RULE --size N [--backend B] [--steps S] [--file F.celo]\n"
    "  celo bench --jit-all                       time checking + JIT-compiling every stdlib rule\n"
    "  celo run F.celo [--only NAME] [--set k=v]... [--backend llvm|interp|opencl] [--resume] [--quiet]\n"
    "  celo build F.celo -o BIN [--cpu NAME]      a standalone binary of F's runs (no LLVM needed to run it);\n"
    "                                             --cpu x86-64-v3: for any AVX2 CPU (default: this CPU)\n"
    "  celo rules                                 list the stdlib rules and their hyper-parameters\n"
    "  celo theta show FILE                       names, shapes, sizes and L2 norms of a meta-parameter file\n"
    "  celo theta convert IN -o OUT.safetensors   flax msgpack (.state) or safetensors to safetensors\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *stdlib_dir(void)
{
    static char buf[PATH_MAX];
    const char *env = getenv("CELO_STDLIB");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 32);
    if (n > 0) {
        buf[n] = 0;
        char *s = strrchr(buf, '/');
        if (s) {
            strcpy(s, "/../stdlib");
            struct stat sb;
            if (stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))
                return buf;
        }
    }
    return "stdlib";
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...);
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "celo: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- rule lookup with a helpful error ---- */
static def *find_optimizer(module *m, const char *name)
{
    def *d = module_find(m, name);
    if (d && d->kind == DEF_OPTIMIZER)
        return d;
    if (d && d->kind == DEF_SCHEDULE) {
        fprintf(stderr, "celo: '%s' is a schedule, not an optimizer; name a rule with it, like sgd@%s\n", name, name);
        return NULL;
    }
    if (d) {
        fprintf(stderr, "celo: '%s' is a transform, not an optimizer; use it inside chain(…)\n", name);
        return NULL;
    }
    const char *cand[512];
    int n = 0;
    for (def *x = m->defs; x && n < 512; x = x->next)
        if (x->kind == DEF_OPTIMIZER)
            cand[n++] = x->name;
    const char *best = diag_suggest(name, cand, n);
    fprintf(stderr, "celo: unknown rule '%s'", name);
    if (best)
        fprintf(stderr, "; did you mean '%s'?", best);
    fputc('\n', stderr);
    return NULL;
}

/* ---- --set k=v ---- */
typedef struct {
    const char *k[64];
    double v[64];
    int n;
} sets;

static int parse_set(sets *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return fail("--set expects name=value, got '%s'", kv);
    char *end;
    errno = 0;
    double v = strtod(eq + 1, &end);
    if (*end || end == eq + 1 || errno || !isfinite(v))
        return fail("--set: '%s' is not a finite number", eq + 1);
    if (s->n >= 64)
        return fail("%s", "too many --set options");
    s->k[s->n] = strndup(kv, (size_t)(eq - kv)); /* freed by sets_free */
    s->v[s->n++] = v;
    return 0;
}

static void sets_free(sets *s)
{
    for (int i = 0; i < s->n; i++)
        free((char *)s->k[i]);
    s->n = 0;
}

static int apply_sets(const celo_program *P, const sets *s, float *hp)
{
    celo_program_defaults(P, hp);
    for (int i = 0; i < s->n; i++) {
        int j = celo_program_hp_index(P, s->k[i]);
        if (j >= 0) {
            hp[j] = (float)s->v[i];
            continue;
        }
        const char *cand[64];
        for (int q = 0; q < P->nhp; q++)
            cand[q] = P->hp[q].name;
        const char *best = diag_suggest(s->k[i], cand, P->nhp);
        fprintf(stderr, "celo: --set: '%s' has no hyper-parameter '%s'", P->name, s->k[i]);
        if (best)
            fprintf(stderr, "; did you mean '%s'?", best);
        fprintf(stderr, " (valid:");
        for (int q = 0; q < P->nhp; q++)
            fprintf(stderr, "%s %s", q ? "," : "", P->hp[q].name);
        fprintf(stderr, "%s)\n", P->nhp ? "" : " none");
        return -1;
    }
    return 0;
}

/* --backend NAME: the back end's table (runtime/backend.h); OpenCL gets the compiler's OpenCL C generator. */
static int parse_backend(const char *s, celo_backend *b)
{
    char err[256];
    if (celo_backend_init(b, s, err, sizeof err))
        return fail("%s", err);
    b->cl_source = celo_opencl_source;
    return 0;
}

/* The default back end: llvm. */
static celo_backend default_backend(void)
{
    celo_backend b;
    parse_backend("llvm", &b);
    return b;
}

static int is_llvm(const celo_backend *b)
{
    return !strcmp(b->name, "llvm");
}

/* One option of a command: `--name VALUE` stores VALUE in *str; a flag (str NULL) sets *flag to 1. */
typedef struct {
    const char *name;
    const char **str;
    int *flag;
} cli_opt;

/* Parses a command's arguments: the options in opts (ended by a NULL name), `--set k=v` when s is not NULL,
 * `--backend B` when be is not NULL, and at most one positional argument, into *pos. 0, or 1 after printing the
 * error (the --set values parsed so far are freed). */
static int parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts, sets *s, celo_backend *be,
                      const char **pos)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc, done = 0;
        for (const cli_opt *o = opts; o && o->name && !done; o++)
            if (!strcmp(a, o->name) && (o->flag || more)) {
                if (o->flag)
                    *o->flag = 1;
                else
                    *o->str = argv[++i];
                done = 1;
            }
        if (done)
            continue;
        if (s && !strcmp(a, "--set") && more) {
            if (parse_set(s, argv[++i])) {
                sets_free(s);
                return 1;
            }
        } else if (be && !strcmp(a, "--backend") && more) {
            if (parse_backend(argv[++i], be)) {
                if (s)
                    sets_free(s);
                return 1;
            }
        } else if (a[0] == '-') {
            if (s)
                sets_free(s);
            return fail("%s: unknown or incomplete option '%s'", cmd, a);
        } else if (!*pos)
            *pos = a;
        else {
            if (s)
                sets_free(s);
            return fail("%s: unexpected argument '%s'", cmd, a);
        }
    }
    return 0;
}

static rule *load_rule(module *m, const char *file, const char *name)
{
    if (module_load(m, file, stdlib_dir()) || diag_count)
        return NULL;
    const char *at = strchr(name, '@');
    if (at) { /* RULE@SCHEDULE: the rule compiled with a learning-rate schedule, as runs name it */
        char opt[256];
        snprintf(opt, sizeof opt, "%.*s", (int)(at - name), name);
        if (!find_optimizer(m, opt))
            return NULL;
        def *s = module_find(m, at + 1);
        if (s && s->kind == DEF_SCHEDULE)
            return rule_compile_named(m, name);
        const char *cand[512];
        int n = 0;
        for (def *x = m->defs; x && n < 512; x = x->next)
            if (x->kind == DEF_SCHEDULE)
                cand[n++] = x->name;
        const char *best = diag_suggest(at + 1, cand, n);
        fprintf(stderr, "celo: unknown schedule '%s'%s%s%s\n", at + 1, best ? "; did you mean '" : "", best ? best : "",
                best ? "'?" : "");
        return NULL;
    }
    def *d = find_optimizer(m, name);
    if (!d)
        return NULL;
    return rule_compile(m, d);
}

/* ---- commands ---- */
/* Whether an optimizer of the module uses transform t in its chain(…). */
static int transform_used(const module *m, const def *t)
{
    for (const def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_OPTIMIZER)
            for (const arg *a = d->chain; a; a = a->next)
                if (a->value && a->value->name && !strcmp(a->value->name, t->name))
                    return 1;
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 1)
        return fail("%s", "usage: celo check FILE.celo");
    module m;
    int nerr = module_load(&m, argv[0], stdlib_dir());
    int nrules = 0, nblocks = 0;
    if (!nerr) {
        for (def *d = m.defs; d; d = d->next) {
            if (d->kind == DEF_SCHEDULE && !strcmp(d->file->path, argv[0])) {
                if (!module_schedule_check(&m, d))
                    fprintf(stderr, "%s: schedule %s\n", argv[0], d->name);
                nrules++;
            }
            if ((d->kind != DEF_OPTIMIZER && d->kind != DEF_TRANSFORM) || strcmp(d->file->path, argv[0]))
                continue;
            if (d->kind == DEF_TRANSFORM && transform_used(&m, d))
                continue; /* checked where a chain uses it, which reports its errors with that use */
            /* an optimizer's lowering is kept for the blocks below (module_rule); a transform's is its own */
            rule *t = d->kind == DEF_TRANSFORM ? rule_compile_transform(&m, d) : NULL;
            const rule *r = t ? t : d->kind == DEF_OPTIMIZER ? module_rule(&m, d) : NULL;
            if (r)
                fprintf(stderr, "%s: %s: %d pass%s, %d state slot%s\n", argv[0], r->prog.name, r->prog.npass,
                        r->prog.npass == 1 ? "" : "es", r->prog.nstate, r->prog.nstate == 1 ? "" : "s");
            nrules++;
            rule_free(t);
        }
        for (def *d = m.defs; d; d = d->next)
            nblocks += d->kind == DEF_BLOCK && module_is_user(&m, d);
        if (nblocks) {
            celo_plan plan;
            if (pipeline_build(&m, &plan) == 0)
                fprintf(stderr, "%s: %d task%s, %d run%s\n", argv[0], plan.ntasks, plan.ntasks == 1 ? "" : "s",
                        plan.nruns, plan.nruns == 1 ? "" : "s");
            free(plan.tasks);
            free(plan.runs);
            free(plan.groups);
        }
    }
    module_free(&m);
    if (diag_count) {
        fprintf(stderr, "%d error%s\n", diag_count, diag_count == 1 ? "" : "s");
        return 1;
    }
    if (!nrules && !nblocks)
        fprintf(stderr, "%s: no rules\n", argv[0]);
    return 0;
}

static void dump_expr(const expr *e, FILE *out)
{
    static const char *ops[] = {"+", "-", "*", "/", "^", "neg", "<", "<=", ">", ">=", "==", "!=", "and", "or", "not"};
    switch (e->kind) {
    case EX_NUM: fprintf(out, "%.9g", e->num); break;
    case EX_NAME: fprintf(out, "%s", e->name); break;
    case EX_INDEX:
        fprintf(out, "%s[", e->name);
        dump_expr(e->b, out);
        fputc(']', out);
        break;
    case EX_UNARY:
        fprintf(out, "(%s ", ops[e->op]);
        dump_expr(e->a, out);
        fputc(')', out);
        break;
    case EX_BINARY:
        fprintf(out, "(%s ", ops[e->op]);
        dump_expr(e->a, out);
        fputc(' ', out);
        dump_expr(e->b, out);
        fputc(')', out);
        break;
    case EX_CALL:
        fprintf(out, "(call %s", e->name);
        for (arg *a = e->args; a; a = a->next) {
            fputc(' ', out);
            if (a->name)
                fprintf(out, "%s=", a->name);
            dump_expr(a->value, out);
        }
        fputc(')', out);
        break;
    }
}

static void dump_stmts(const stmt *s, int ind, FILE *out)
{
    for (; s; s = s->next) {
        fprintf(out, "%*s", ind, "");
        switch (s->kind) {
        case ST_STATE:
            fprintf(out, "state");
            for (statevar *v = s->vars; v; v = v->next) {
                fprintf(out, " %s", v->name);
                if (v->size)
                    fprintf(out, "[%d]", v->size);
                fputc('=', out);
                dump_expr(v->init, out);
            }
            fputc('\n', out);
            break;
        case ST_ASSIGN:
            fprintf(out, "%s", s->target);
            if (s->index) {
                fputc('[', out);
                dump_expr(s->index, out);
                fputc(']', out);
            }
            if (s->aop == '=')
                fprintf(out, " = ");
            else
                fprintf(out, " %c= ", s->aop);
            dump_expr(s->value, out);
            fputc('\n', out);
            break;
        case ST_FOR:
            fprintf(out, "for %s in ", s->var);
            dump_expr(s->lo, out);
            fprintf(out, "..");
            dump_expr(s->hi, out);
            fputc('\n', out);
            dump_stmts(s->body, ind + 2, out);
            break;
        }
    }
}

static int cmd_emit(int argc, char **argv)
{
    if (argc < 2)
        return fail("%s", "usage: celo emit ast|ir|llvm|llvm-raw|opencl|obj FILE.celo [RULE] [-o OUT]");
    const char *what = argv[0], *file = argv[1], *name = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!name)
            name = argv[i];
        else
            return fail("emit: unexpected argument '%s'", argv[i]);
    }
    if (strcmp(what, "ast") && strcmp(what, "ir") && strcmp(what, "llvm") && strcmp(what, "llvm-raw") &&
        strcmp(what, "opencl") && strcmp(what, "obj"))
        return fail("emit: unknown form '%s' (ast, ir, llvm, llvm-raw, opencl or obj)", what);
    if (!strcmp(what, "obj") && !out)
        return fail("%s", "emit obj needs -o RULES.o");
    module m;
    if (module_load(&m, file, stdlib_dir()) || diag_count) {
        module_free(&m);
        return 1;
    }
    rule *rules[512];
    int n = 0, rc = 0, found = 0;
    if (name && strchr(name, '@') && strcmp(what, "ast")) { /* a rule with its schedule, as a run names it */
        rules[n] = rule_compile_named(&m, name);
        found = rules[n] != NULL;
        n += found;
    }
    for (def *d = m.defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT || strcmp(d->file->path, file) || (name && strcmp(d->name, name)))
            continue;
        found = 1;
        if (!strcmp(what, "ast")) {
            printf("%s %s(",
                   d->kind == DEF_TRANSFORM  ? "transform"
                   : d->kind == DEF_SCHEDULE ? "schedule"
                                             : "optimizer",
                   d->name);
            for (param *p = d->params; p; p = p->next) {
                printf("%s%s=", p == d->params ? "" : ", ", p->name);
                if (p->def)
                    dump_expr(p->def, stdout);
            }
            printf(")\n");
            if (d->value) {
                printf("  = ");
                dump_expr(d->value, stdout);
                printf("\n");
            }
            if (d->chain)
                for (arg *a = d->chain; a; a = a->next) {
                    printf("  chain ");
                    dump_expr(a->value, stdout);
                    printf("\n");
                }
            dump_stmts(d->body, 2, stdout);
            continue;
        }
        if (d->kind != DEF_OPTIMIZER)
            continue;
        rule *r = rule_compile(&m, d);
        if (!r) {
            rc = 1;
            continue;
        }
        if (n < 512)
            rules[n++] = r;
    }
    if (name && !found) {
        fprintf(stderr, "celo: %s defines no rule '%s'\n", file, name);
        rc = 1;
    }
    char err[1024] = "";
    if (!rc && strcmp(what, "ast")) {
        for (int i = 0; i < n && !rc; i++) {
            if (!strcmp(what, "ir"))
                rule_dump(rules[i], stdout);
            else if (!strcmp(what, "llvm") || !strcmp(what, "llvm-raw"))
                rc = llvm_dump_ir(rules[i], !strcmp(what, "llvm"), stdout, err, sizeof err) ? 1 : 0;
            else if (!strcmp(what, "opencl")) {
                char *src = celo_opencl_source(&rules[i]->prog);
                fputs(src, stdout);
                free(src);
            }
        }
        if (!rc && !strcmp(what, "obj")) {
            char hdr[PATH_MAX];
            snprintf(hdr, sizeof hdr, "%s", out);
            char *dot = strrchr(hdr, '.');
            if (dot && !strchr(dot, '/'))
                strcpy(dot, ".h");
            else
                strncat(hdr, ".h", sizeof hdr - strlen(hdr) - 1);
            rc = llvm_emit_object(rules, n, out, hdr, err, sizeof err) ? 1 : 0;
        }
        if (rc)
            fprintf(stderr, "celo: %s\n", err);
    }
    for (int i = 0; i < n; i++)
        rule_free(rules[i]);
    module_free(&m);
    return rc || diag_count ? 1 : 0;
}

static int write_state(const celo_state *st, const char *dir)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        return fail("--state-out: cannot create directory '%s'", dir);
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
        default: nd = 0; break;
        }
        if (celo_npy_write(path, st->slot[s], nd, shp, err, sizeof err))
            return fail("%s", err);
    }
    return 0;
}

static int cmd_apply(int argc, char **argv)
{
    const char *name = NULL, *file = NULL, *paramf = NULL, *grads = NULL, *out = NULL, *stdir = NULL;
    celo_backend be = default_backend();
    sets s = {0};
    const cli_opt opts[] = {{"--file", &file, NULL}, {"--param", &paramf, NULL},    {"--grads", &grads, NULL},
                            {"--out", &out, NULL},   {"--state-out", &stdir, NULL}, {NULL, NULL, NULL}};
    if (parse_args("apply", argc, argv, opts, &s, &be, &name))
        return 1;
    if (!name || !paramf || !grads || !out)
        return fail("%s", "usage: celo apply RULE [--file F.celo] --param P.npy --grads G.npy [--set k=v]... "
                          "[--backend interp|llvm|opencl] --out OUT.npy [--state-out DIR]");
    char err[1024];
    celo_array P = {0}, G = {0};
    if (celo_npy_read(paramf, &P, err, sizeof err) || celo_npy_read(grads, &G, err, sizeof err)) {
        celo_array_free(&P);
        return fail("%s", err);
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
    rule *r = load_rule(&m, file, name);
    int rc = 1;
    float hp[64];
    celo_bprog *bp = NULL;
    celo_bstate *st = NULL;
    if (!r || apply_sets(&r->prog, &s, hp))
        goto done;
    if (is_llvm(&be) && llvm_jit_rules(&r, 1, err, sizeof err)) {
        fail("%s", err);
        goto done;
    }
    int64_t T = G.shape[0];
    if (!(bp = be.compile(&be, &r->prog, err, sizeof err)) ||
        !(st = be.state_new(bp, P.ndim, P.shape, T, err, sizeof err))) {
        fail("%s", err);
        goto done;
    }
    for (int64_t t = 1; t <= T; t++)
        if (be.step(st, P.data, G.data + (t - 1) * P.n, hp, t, 0, err, sizeof err)) {
            fail("%s", err);
            goto done;
        }
    const celo_state *hs = stdir ? be.state_get(st, err, sizeof err) : NULL;
    if (stdir && !hs) {
        fail("%s", err);
        goto done;
    }
    if (stdir && write_state(hs, stdir))
        goto done;
    if (celo_npy_write(out, P.data, P.ndim, P.shape, err, sizeof err)) {
        fail("%s", err);
        goto done;
    }
    rc = 0;
done:
    if (st)
        be.state_free(st);
    if (bp)
        be.prog_free(bp);
    sets_free(&s);
    rule_free(r);
    module_free(&m);
    celo_array_free(&P);
    celo_array_free(&G);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
    const char *name = NULL, *file = NULL;
    const char *size_s = NULL, *steps_s = NULL;
    long long size = 0;
    int steps = 0, jit_all = 0;
    celo_backend be = default_backend();
    const cli_opt opts[] = {{"--size", &size_s, NULL},
                            {"--steps", &steps_s, NULL},
                            {"--file", &file, NULL},
                            {"--jit-all", NULL, &jit_all},
                            {NULL, NULL, NULL}};
    if (parse_args("bench", argc, argv, opts, NULL, &be, &name))
        return 1;
    if (size_s)
        size = atoll(size_s);
    if (steps_s)
        steps = atoi(steps_s);
    char err[1024];
    if (jit_all) {
        /* check + lower + fuse + JIT every stdlib rule, as one module */
        double t0 = now_s();
        module m;
        if (module_load(&m, NULL, stdlib_dir()) || diag_count)
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
        double t1 = now_s();
        if (llvm_jit_rules(rules, n, err, sizeof err))
            return fail("%s", err);
        double t2 = now_s();
        printf("rules=%d check_ms=%.1f jit_ms_only=%.1f\n", n, 1e3 * (t1 - t0), 1e3 * (t2 - t1));
        printf("jit_ms=%.1f\n", 1e3 * (t2 - t0));
        for (int i = 0; i < n; i++)
            rule_free(rules[i]);
        module_free(&m);
        return 0;
    }
    if (!name || size <= 0)
        return fail("%s", "usage: celo bench RULE --size N [--backend interp|llvm|opencl] [--steps S]");
    module m;
    rule *r = load_rule(&m, file, name);
    if (!r)
        return 1;
    float hp[64];
    celo_program_defaults(&r->prog, hp);
    if (is_llvm(&be) && llvm_jit_rules(&r, 1, err, sizeof err))
        return fail("%s", err);
    /* a matrix view close to square, so that factored rules see realistic rows and columns */
    int64_t cols = 1;
    while (cols * cols < size)
        cols *= 2;
    int64_t shape[2] = {size / cols, cols};
    int nd = size % cols == 0 ? 2 : 1;
    if (nd == 1)
        shape[0] = size;
    float *p = NULL, *g = NULL;
    if (posix_memalign((void **)&p, 64, (size_t)size * 4) || posix_memalign((void **)&g, 64, (size_t)size * 4))
        return fail("%s", "out of memory");
    for (long long i = 0; i < size; i++) {
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        g[i] = (float)((i * 40503u) % 997) * 1e-3f - 0.5f;
    }
    if (steps <= 0)
        steps = size >= (1 << 22) ? 15 : size >= (1 << 16) ? 200 : 2000;
    double *ts = malloc((size_t)steps * sizeof *ts);
    /* through the back-end table, as a training run steps a tensor: p and g in host memory */
    celo_bprog *bp = be.compile(&be, &r->prog, err, sizeof err);
    celo_bstate *st = bp ? be.state_new(bp, nd, shape, steps, err, sizeof err) : NULL;
    if (!st)
        return fail("%s", err);
    /* warm-up steps are not timed (first-touch of the state, PoCL's first-launch compile) */
    for (int t = 1; t <= steps + 3; t++) {
        double t0 = now_s();
        if (be.step(st, p, g, hp, t, 0, err, sizeof err))
            return fail("%s", err);
        if (t > 3)
            ts[t - 4] = now_s() - t0;
    }
    qsort(ts, (size_t)steps, sizeof *ts, cmp_double);
    double med = ts[steps / 2];
    printf("rule=%s backend=%s size=%lld passes=%d steps=%d median_ms=%.3f min_ms=%.3f threads=%d\n", name, be.name,
           size, r->prog.npass, steps, 1e3 * med, 1e3 * ts[0], celo_threads());
    printf("params_per_s=%.6g\n", (double)size / med);
    free(ts);
    free(p);
    free(g);
    be.state_free(st);
    be.prog_free(bp);
    rule_free(r);
    module_free(&m);
    return 0;
}

/* ---- pipelines: celo run and celo build ---- */
typedef struct {
    rule *r[256]; /* the plan's rules, lowered once and owned by the module (module_rule) */
    int n;
} ruleset;

static const celo_program *lookup_rule(const char *name, void *ctx)
{
    ruleset *rs = ctx;
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->r[i]->prog.name, name))
            return &rs->r[i]->prog;
    return NULL;
}

/* Loads F, checks its rules and blocks, builds the plan and compiles the rules it uses. */
static int load_plan(const char *file, const sets *s, module *m, celo_plan *plan, ruleset *rs)
{
    memset(rs, 0, sizeof *rs);
    if (module_load(m, file, stdlib_dir()) || diag_count)
        return -1;
    for (def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_OPTIMIZER && module_is_user(m, d))
            (void)module_rule(m, d); /* report errors in rules no run uses, too */
    if (diag_count || pipeline_build(m, plan) || diag_count) {
        fprintf(stderr, "%d error%s\n", diag_count, diag_count == 1 ? "" : "s");
        return -1;
    }
    if (!plan->nruns) {
        fprintf(stderr, "celo: %s has no train, sweep or compare block: nothing to run\n", file);
        return -1;
    }
    char err[512];
    for (int i = 0; i < s->n; i++)
        if (celo_plan_override(plan, s->k[i], s->v[i], err, sizeof err))
            return fail("%s", err), -1;
    for (int i = 0; i < plan->nruns; i++) {
        if (lookup_rule(plan->runs[i].rule, rs))
            continue;
        if (rs->n == 256)
            return fail("%s", "too many different optimizers in one plan"), -1;
        rule *r = module_rule_named(m, plan->runs[i].rule);
        if (!r)
            return -1;
        rs->r[rs->n++] = r;
    }
    return 0;
}

static int only_exists(const celo_plan *plan, const char *only)
{
    const char *cand[4096];
    int n = 0;
    for (int i = 0; i < plan->nruns; i++) {
        if (!strcmp(plan->runs[i].name, only))
            return 1;
        if (plan->runs[i].group < 0 && n < 4096)
            cand[n++] = plan->runs[i].name;
    }
    for (int g = 0; g < plan->ngroups; g++) {
        if (!strcmp(plan->groups[g].name, only))
            return 1;
        if (n < 4096)
            cand[n++] = plan->groups[g].name;
    }
    const char *best = diag_suggest(only, cand, n);
    fprintf(stderr, "celo: --only: no train, sweep or compare named '%s'", only);
    if (best)
        fprintf(stderr, "; did you mean '%s'?", best);
    fputc('\n', stderr);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *file = NULL;
    sets s = {0};
    celo_run_opts o = {0};
    celo_backend be = default_backend();
    const cli_opt opts[] = {
        {"--only", &o.only, NULL}, {"--resume", NULL, &o.resume}, {"--quiet", NULL, &o.quiet}, {NULL, NULL, NULL}};
    if (parse_args("run", argc, argv, opts, &s, &be, &file))
        return 1;
    if (!file)
        return fail("%s",
                    "usage: celo run F.celo [--only NAME] [--set k=v]... [--backend llvm|interp|opencl] [--resume] "
                    "[--quiet]");
    module m;
    celo_plan plan;
    ruleset rs;
    memset(&plan, 0, sizeof plan);
    int rc = 1;
    char err[1024];
    if (load_plan(file, &s, &m, &plan, &rs))
        goto done;
    if (o.only && !only_exists(&plan, o.only))
        goto done;
    if (is_llvm(&be) && llvm_jit_rules(rs.r, rs.n, err, sizeof err)) {
        fail("%s", err);
        goto done;
    }
    o.backend = &be;
    rc = celo_plan_execute(&plan, lookup_rule, &rs, &o);
done:
    celo_plan_free(&plan);
    module_free(&m);
    sets_free(&s);
    return rc;
}

static int cmd_build(int argc, char **argv)
{
    const char *file = NULL, *out = NULL, *cpu = NULL;
    sets s = {0};
    const cli_opt opts[] = {{"-o", &out, NULL}, {"--cpu", &cpu, NULL}, {NULL, NULL, NULL}};
    if (parse_args("build", argc, argv, opts, &s, NULL, &file))
        return 1;
    if (!file || !out)
        return fail("%s", "usage: celo build F.celo -o BIN [--cpu NAME] [--set k=v]...");
    module m;
    celo_plan plan;
    ruleset rs;
    memset(&plan, 0, sizeof plan);
    int rc = 1;
    char err[1024], obj[PATH_MAX], lib[PATH_MAX], cmd[4 * PATH_MAX];
    char *text = NULL;
    if (load_plan(file, &s, &m, &plan, &rs))
        goto done;
    text = celo_plan_write(&plan);
    snprintf(obj, sizeof obj, "%s.o", out);
    if (llvm_emit_binary_object(rs.r, rs.n, text, cpu, obj, err, sizeof err)) {
        fail("%s", err);
        goto done;
    }
    /* libcelort.a sits beside the celo executable (build/); CC links, as for any C program */
    snprintf(lib, sizeof lib, "%s", stdlib_dir());
    char *slash = strrchr(lib, '/');
    if (slash && !strcmp(slash, "/stdlib"))
        strcpy(slash, "/build/libcelort.a");
    else
        snprintf(lib, sizeof lib, "build/libcelort.a");
    {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            char *e = strrchr(exe, '/');
            if (e) {
                strcpy(e, "/libcelort.a");
                if (access(exe, R_OK) == 0)
                    snprintf(lib, sizeof lib, "%s", exe);
            }
        }
    }
    if (access(lib, R_OK)) {
        fail("build: %s not found (run make first)", lib);
        goto done;
    }
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    snprintf(cmd, sizeof cmd,
             "%s -o '%s' '%s' '%s' -L" CELO_OPENBLAS_DIR " -Wl,-rpath," CELO_OPENBLAS_DIR
             " -lopenblas -lOpenCL -lz -lm -fopenmp " CELO_LINK_EXTRA,
             cc, out, obj, lib);
    if (strchr(out, '\'') || strchr(obj, '\'') || strchr(lib, '\'')) {
        fail("%s", "build: paths may not contain quotes");
        goto done;
    }
    if (system(cmd) != 0) {
        fail("build: linking failed: %s", cmd);
        goto done;
    }
    unlink(obj);
    fprintf(stderr, "celo: wrote %s (%d run%s, %d rule%s)\n", out, plan.nruns, plan.nruns == 1 ? "" : "s", rs.n,
            rs.n == 1 ? "" : "s");
    rc = 0;
done:
    free(text);
    celo_plan_free(&plan);
    module_free(&m);
    sets_free(&s);
    return rc;
}

static int cmd_rules(void)
{
    module m;
    if (module_load(&m, NULL, stdlib_dir()) || diag_count)
        return 1;
    for (def *d = m.defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT)
            continue;
        rule *r = d->kind == DEF_OPTIMIZER ? rule_compile(&m, d) : NULL;
        printf("%-10s %-20s",
               d->kind == DEF_OPTIMIZER  ? "optimizer"
               : d->kind == DEF_SCHEDULE ? "schedule"
                                         : "transform",
               d->name);
        for (param *p = d->params; p; p = p->next)
            printf(" %s", p->name);
        if (r)
            printf("   [%d pass%s]", r->prog.npass, r->prog.npass == 1 ? "" : "es");
        printf("\n");
        rule_free(r);
    }
    module_free(&m);
    return diag_count ? 1 : 0;
}

/* ---- celo theta: meta-parameter files (runtime/theta.c; docs/theta.md) ---- */
static int theta_show(const char *file)
{
    celo_theta th;
    celo_theta_format fmt = 0;
    char err[1024];
    if (celo_theta_read(file, &th, &fmt, err, sizeof err))
        return fail("%s", err);
    int w = 4;
    for (int i = 0; i < th.n; i++)
        w = (int)strlen(th.t[i].name) > w ? (int)strlen(th.t[i].name) : w;
    printf("%-*s  %-14s %9s  %s\n", w, "name", "shape", "count", "l2");
    for (int i = 0; i < th.n; i++) {
        const celo_theta_tensor *t = &th.t[i];
        char shape[160] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        double ss = 0;
        for (int64_t k = 0; k < t->n; k++)
            ss += (double)t->data[k] * t->data[k];
        printf("%-*s  %-14s %9lld  %.9g\n", w, t->name, shape, (long long)t->n, sqrt(ss));
    }
    printf("total %lld floats in %d tensors (%s)\n", (long long)celo_theta_count(&th), th.n,
           fmt == CELO_THETA_MSGPACK ? "flax msgpack" : "safetensors");
    celo_theta_free(&th);
    return 0;
}

static int cmd_theta(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *in = NULL, *out = NULL;
    const cli_opt opts[] = {{"-o", &out, NULL}, {NULL, NULL, NULL}};
    if (!strcmp(sub, "show")) {
        if (parse_args("theta show", argc - 1, argv + 1, NULL, NULL, NULL, &in))
            return 1;
        return in ? theta_show(in) : fail("%s", "usage: celo theta show FILE");
    }
    if (strcmp(sub, "convert"))
        return fail("%s", "usage: celo theta show FILE | celo theta convert IN -o OUT.safetensors");
    if (parse_args("theta convert", argc - 1, argv + 1, opts, NULL, NULL, &in))
        return 1;
    if (!in || !out)
        return fail("%s", "usage: celo theta convert IN -o OUT.safetensors");
    /* only safetensors is written: a typo must not overwrite an authors' .state file with another format */
    size_t n = strlen(out);
    if (n < 12 || strcmp(out + n - 12, ".safetensors"))
        return fail("theta convert: %s: the output must be a .safetensors file", out);
    celo_theta th;
    char err[1024];
    if (celo_theta_read(in, &th, NULL, err, sizeof err))
        return fail("%s", err);
    int rc = celo_theta_write(out, &th, err, sizeof err) ? fail("%s", err) : 0;
    if (!rc)
        fprintf(stderr, "celo: wrote %s (%lld floats in %d tensors)\n", out, (long long)celo_theta_count(&th), th.n);
    celo_theta_free(&th);
    return rc;
}

int main(int argc, char **argv)
{
    celo_pick_blas_kernels(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "check"))
        rc = cmd_check(argc - 2, argv + 2);
    else if (!strcmp(cmd, "emit"))
        rc = cmd_emit(argc - 2, argv + 2);
    else if (!strcmp(cmd, "apply"))
        rc = cmd_apply(argc - 2, argv + 2);
    else if (!strcmp(cmd, "bench"))
        rc = cmd_bench(argc - 2, argv + 2);
    else if (!strcmp(cmd, "run"))
        rc = cmd_run(argc - 2, argv + 2);
    else if (!strcmp(cmd, "build"))
        rc = cmd_build(argc - 2, argv + 2);
    else if (!strcmp(cmd, "rules"))
        rc = cmd_rules();
    else if (!strcmp(cmd, "theta"))
        rc = cmd_theta(argc - 2, argv + 2);
    else {
        fprintf(stderr, "celo: unknown command '%s'\n%s", cmd, usage);
        rc = 1;
    }
    llvm_shutdown();
    return rc;
}
