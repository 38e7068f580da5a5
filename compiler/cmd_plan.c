/* cmd_plan.c — the commands that execute a file's plan: run (JIT-compiled rules) and build (a standalone
 * binary). */
#include "cli.h"

#include "../runtime/backend.h"
#include "../runtime/ranks.h"
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
    if (module_load(m, file, cli_stdlib_dir()) || diag_count)
        return -1;
    for (def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_OPTIMIZER && module_is_user(m, d))
            (void)module_rule(m, d); /* report errors in rules no run uses, too */
    if (diag_count || pipeline_build(m, plan) || diag_count) {
        fprintf(stderr, "%d error%s\n", diag_count, diag_count == 1 ? "" : "s");
        return -1;
    }
    if (!plan->nruns) {
        fprintf(stderr, "celo: %s has no train, sweep, compare or meta block: nothing to run\n", file);
        return -1;
    }
    char err[512];
    for (int i = 0; i < s->n; i++)
        if (celo_plan_override(plan, s->k[i], s->v[i], err, sizeof err))
            return cli_fail("%s", err), -1;
    for (int i = 0; i < plan->nruns; i++) {
        if (lookup_rule(plan->runs[i].rule, rs))
            continue;
        if (rs->n == 256)
            return cli_fail("%s", "too many different optimizers in one plan"), -1;
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
    fprintf(stderr, "celo: --only: no train, sweep, compare or meta named '%s'", only);
    if (best)
        fprintf(stderr, "; did you mean '%s'?", best);
    fputc('\n', stderr);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *file = NULL;
    sets s = {0};
    celo_run_opts o = {0};
    celo_backend be = cli_default_backend();
    const char *stop_s = NULL;
    const cli_opt opts[] = {{"--only", &o.only, NULL},
                            {"--resume", NULL, &o.resume},
                            {"--quiet", NULL, &o.quiet},
                            {"--stop-at", &stop_s, NULL},
                            {NULL, NULL, NULL}};
    if (cli_parse_args("run", argc, argv, opts, &s, &be, &file))
        return 1;
    if (!file)
        return cli_fail("%s",
                        "usage: celo run F.celo [--only NAME] [--set k=v]... [--backend llvm|interp|opencl] [--resume] "
                        "[--stop-at STEP] [--quiet]");
    if (stop_s) {
        char *end;
        long long v = strtoll(stop_s, &end, 10);
        if (end == stop_s || *end || v < 1)
            return cli_fail("--stop-at: '%s' is not a step number (1 or more)", stop_s);
        o.stop_at = v;
    }
    if (celo_ranks_init()) /* under mpirun: join the other ranks (ranks.h); otherwise nothing */
        return 1;
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
    if (cli_is_llvm(&be) && llvm_jit_rules(rs.r, rs.n, err, sizeof err)) {
        cli_fail("%s", err);
        goto done;
    }
    o.backend = &be;
    rc = celo_plan_execute(&plan, lookup_rule, &rs, &o);
done:
    celo_plan_free(&plan);
    module_free(&m);
    cli_sets_free(&s);
    celo_ranks_finish(rc);
    return rc;
}

int cmd_build(int argc, char **argv)
{
    const char *file = NULL, *out = NULL, *cpu = NULL;
    sets s = {0};
    const cli_opt opts[] = {{"-o", &out, NULL}, {"--cpu", &cpu, NULL}, {NULL, NULL, NULL}};
    if (cli_parse_args("build", argc, argv, opts, &s, NULL, &file))
        return 1;
    if (!file || !out)
        return cli_fail("%s", "usage: celo build F.celo -o BIN [--cpu NAME] [--set k=v]...");
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
        cli_fail("%s", err);
        goto done;
    }
    /* libcelort.a sits beside the celo executable (build/); CC links, as for any C program */
    snprintf(lib, sizeof lib, "%s", cli_stdlib_dir());
    char *slash = strrchr(lib, '/');
    if (slash && !strcmp(slash, "/stdlib"))
        strcpy(slash, "/build/libcelort.a");
    else
        snprintf(lib, sizeof lib, "build/libcelort.a");
    char exe[PATH_MAX];
    if (!cli_beside_exe("libcelort.a", exe, sizeof exe) && access(exe, R_OK) == 0)
        snprintf(lib, sizeof lib, "%s", exe);
    if (access(lib, R_OK)) {
        cli_fail("build: %s not found (run make first)", lib);
        goto done;
    }
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    snprintf(cmd, sizeof cmd,
             "%s -o '%s' '%s' '%s' -L" CELO_OPENBLAS_DIR " -Wl,-rpath," CELO_OPENBLAS_DIR
             " -lopenblas -lOpenCL -lz -lm -fopenmp " CELO_LINK_EXTRA,
             cc, out, obj, lib);
    if (strchr(out, '\'') || strchr(obj, '\'') || strchr(lib, '\'')) {
        cli_fail("%s", "build: paths may not contain quotes");
        goto done;
    }
    if (system(cmd) != 0) {
        cli_fail("build: linking failed: %s", cmd);
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
    cli_sets_free(&s);
    return rc;
}
