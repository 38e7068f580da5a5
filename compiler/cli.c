/* cli.c — what the commands of the celo command line share (cli.h). */
#include "cli.h"

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

double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_beside_exe(const char *rel, char *buf, size_t n)
{
    ssize_t k = readlink("/proc/self/exe", buf, n);
    if (k <= 0 || (size_t)k >= n)
        return -1;
    buf[k] = 0;
    char *s = strrchr(buf, '/');
    if (!s || (size_t)(s - buf) + 1 + strlen(rel) >= n)
        return -1;
    snprintf(s + 1, n - (size_t)(s + 1 - buf), "%s", rel);
    return 0;
}

const char *cli_stdlib_dir(void)
{
    static char buf[PATH_MAX];
    const char *env = getenv("CELO_STDLIB");
    if (env && *env)
        return env;
    struct stat sb;
    if (!cli_beside_exe("../stdlib", buf, sizeof buf) && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))
        return buf;
    return "stdlib";
}

int cli_fail(const char *fmt, ...)
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
def *cli_find_optimizer(module *m, const char *name)
{
    def *d = module_find(m, name);
    if (d && d->kind == DEF_OPTIMIZER)
        return d;
    if (d && d->kind == DEF_SCHEDULE) {
        fprintf(stderr, "celo: '%s' is a schedule, not an optimizer; name a rule with it, like sgd@%s\n", name, name);
        return NULL;
    }
    if (d && d->kind == DEF_MODEL) {
        fprintf(stderr, "celo: '%s' is a model, not an optimizer; a task uses it (model = %s(…);)\n", name, name);
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

static int cli_parse_set(sets *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return cli_fail("--set expects name=value, got '%s'", kv);
    char *end;
    errno = 0;
    double v = strtod(eq + 1, &end);
    if (*end || end == eq + 1 || errno || !isfinite(v))
        return cli_fail("--set: '%s' is not a finite number", eq + 1);
    if (s->n >= 64)
        return cli_fail("%s", "too many --set options");
    s->k[s->n] = strndup(kv, (size_t)(eq - kv)); /* freed by sets_free */
    s->v[s->n++] = v;
    return 0;
}

void cli_sets_free(sets *s)
{
    for (int i = 0; i < s->n; i++)
        free((char *)s->k[i]);
    s->n = 0;
}

int cli_apply_sets(const celo_program *P, const sets *s, float *hp)
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
int cli_parse_backend(const char *s, celo_backend *b)
{
    char err[256];
    if (celo_backend_init(b, s, err, sizeof err))
        return cli_fail("%s", err);
    b->cl_source = celo_opencl_source;
    return 0;
}

/* The default back end: llvm. */
celo_backend cli_default_backend(void)
{
    celo_backend b;
    cli_parse_backend("llvm", &b);
    return b;
}

int cli_is_llvm(const celo_backend *b)
{
    return !strcmp(b->name, "llvm");
}

/* Parses a command's arguments: the options in opts (ended by a NULL name), `--set k=v` when s is not NULL,
 * `--backend B` when be is not NULL, and at most one positional argument, into *pos. 0, or 1 after printing the
 * error (the --set values parsed so far are freed). */
int cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts, sets *s, celo_backend *be,
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
            if (cli_parse_set(s, argv[++i])) {
                cli_sets_free(s);
                return 1;
            }
        } else if (be && !strcmp(a, "--backend") && more) {
            if (cli_parse_backend(argv[++i], be)) {
                if (s)
                    cli_sets_free(s);
                return 1;
            }
        } else if (a[0] == '-') {
            if (s)
                cli_sets_free(s);
            return cli_fail("%s: unknown or incomplete option '%s'", cmd, a);
        } else if (!*pos)
            *pos = a;
        else {
            if (s)
                cli_sets_free(s);
            return cli_fail("%s: unexpected argument '%s'", cmd, a);
        }
    }
    return 0;
}

rule *cli_load_rule(module *m, const char *file, const char *name)
{
    if (module_load(m, file, cli_stdlib_dir()) || diag_count)
        return NULL;
    const char *at = strchr(name, '@');
    if (at) { /* RULE@SCHEDULE: the rule compiled with a learning-rate schedule, as runs name it */
        char opt[256];
        snprintf(opt, sizeof opt, "%.*s", (int)(at - name), name);
        if (!cli_find_optimizer(m, opt))
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
    def *d = cli_find_optimizer(m, name);
    if (!d)
        return NULL;
    return rule_compile(m, d);
}
