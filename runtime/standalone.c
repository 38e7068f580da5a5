/* standalone.c — main() of the binaries made by `celo build`: the embedded plan, run with the embedded rules.
 * --backend picks the back-end table (backend.h) as in `celo run`: llvm (the embedded object code, the default) or
 * interp; the binary carries no OpenCL C, so opencl is refused with one line (`celo run --backend opencl` has it).
 * Under mpirun it runs over the ranks as `celo run` does (ranks.h). */
#include "plan.h"
#include "ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const celo_program *const *rules;
    int n;
} table;

static const celo_program *lookup(const char *name, void *ctx)
{
    const table *t = ctx;
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->rules[i]->name, name))
            return t->rules[i];
    return NULL;
}

int celo_standalone_main(int argc, char **argv, const char *plan_text, const celo_program *const *rules, int nrules)
{
    celo_pick_blas_kernels(argv);
    celo_run_opts o = {0};
    celo_backend be = *celo_backend_cpu();
    celo_plan plan;
    char err[512];
    if (celo_plan_read(&plan, plan_text, err, sizeof err)) {
        fprintf(stderr, "%s: embedded plan: %s\n", argv[0], err);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--only") && i + 1 < argc)
            o.only = argv[++i];
        else if (!strcmp(a, "--resume"))
            o.resume = 1;
        else if (!strcmp(a, "--quiet"))
            o.quiet = 1;
        else if (!strcmp(a, "--backend") && i + 1 < argc) {
            if (celo_backend_init(&be, argv[++i], err, sizeof err)) {
                fprintf(stderr, "%s: %s\n", argv[0], err);
                celo_plan_free(&plan);
                return 1;
            }
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            char key[CELO_NAME_MAX], *end;
            double v = eq ? strtod(eq + 1, &end) : 0;
            if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key || end == eq + 1 || *end) {
                fprintf(stderr, "%s: --set expects name=number, got '%s'\n", argv[0], kv);
                celo_plan_free(&plan);
                return 1;
            }
            snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
            if (celo_plan_override(&plan, key, v, err, sizeof err)) {
                fprintf(stderr, "%s: %s\n", argv[0], err);
                celo_plan_free(&plan);
                return 1;
            }
        } else {
            fprintf(stderr, "usage: %s [--only NAME] [--set k=v]... [--backend llvm|interp] [--resume] [--quiet]\n",
                    argv[0]);
            celo_plan_free(&plan);
            return 1;
        }
    }
    table t = {rules, nrules};
    o.backend = &be;
    int rc = celo_ranks_init() ? 1 : celo_plan_execute(&plan, lookup, &t, &o); /* mpirun: ranks.h */
    celo_plan_free(&plan);
    celo_ranks_finish(rc);
    return rc;
}
