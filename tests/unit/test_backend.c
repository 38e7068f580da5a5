/* test_backend.c — run instances on every back end of the table (runtime/backend.h): for each of llvm, interp
 * and opencl (when a device exists), a clone taken at step 40 and an instance loaded from a step-40 checkpoint
 * both continue exactly as the original (state read from and written to where the back end keeps it); a
 * checkpoint of an llvm instance loaded into an instance of each other back end continues as the llvm one
 * (interp bit for bit, opencl within 1e-5 relative of the largest weight); and the table's own errors. Plan:
 * tests/pipeline/backends.celo (AdamW, Adafactor with row/column state, Muon, LAMB). Runs from the repository
 * root. */
#include "../../runtime/backend.h"
#include "../../runtime/clrun.h"
#include "../../runtime/inst.h"
#include "backend.h"
#include "diag.h"
#include "opencl.h"
#include "pipeline.h"
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char err[1024];
static module mod;
static celo_plan plan;
static rule *rules[16];
static int nrules;

static const celo_program *prog_of(const char *name)
{
    for (int i = 0; i < nrules; i++)
        if (!strcmp(rules[i]->prog.name, name))
            return &rules[i]->prog;
    return NULL;
}

static int steps_to(celo_inst *in, int64_t t)
{
    celo_ctx one = {1};
    celo_step_out o;
    if (celo_inst_steps(in, &one, t, &o, NULL, NULL, err, sizeof err) || o.bad) {
        if (o.bad)
            snprintf(err, sizeof err, "%s%s%s is not finite", o.pre, o.bad, o.post);
        return -1;
    }
    return 0;
}

/* the largest difference of the two instances' parameters, relative to the largest parameter; -1 on a size
 * mismatch */
static double rel_diff(const celo_inst *a, const celo_inst *b)
{
    int64_t na, nb;
    const float *pa = celo_inst_params(a, &na), *pb = celo_inst_params(b, &nb);
    if (na != nb)
        return -1;
    double d = 0, m = 0;
    for (int64_t i = 0; i < na; i++) {
        d = fmax(d, fabs((double)pa[i] - pb[i]));
        m = fmax(m, fabs((double)pb[i]));
    }
    return m > 0 ? d / m : d;
}

static int same_params(const celo_inst *a, const celo_inst *b)
{
    int64_t na, nb;
    const float *pa = celo_inst_params(a, &na), *pb = celo_inst_params(b, &nb);
    return na == nb && !memcmp(pa, pb, (size_t)na * sizeof *pa);
}

/* llvm's instance of run r at step 40, saved and loaded into a new instance on be, both to step 80 */
static void cross(const celo_run *r, const celo_backend *llvm, const celo_backend *be, celo_task_data *td)
{
    const celo_program *P = prog_of(r->rule);
    celo_inst *a = celo_inst_new(&plan, r, P, llvm, td, err, sizeof err);
    celo_inst *b = celo_inst_new(&plan, r, P, be, td, err, sizeof err);
    celo_ckpt ck;
    celo_ckpt_init(&ck);
    int ok = a && b && !steps_to(a, 40) && !celo_inst_save(a, &ck, err, sizeof err) &&
             !celo_inst_load(b, &ck, "(memory)", err, sizeof err) && !steps_to(a, 80) && !steps_to(b, 80);
    double d = ok ? rel_diff(b, a) : -1;
    if (!strcmp(be->name, "interp"))
        check(ok && same_params(a, b), "%s: an llvm checkpoint at step 40 continues on interp bit for bit%s%s", r->name,
              ok ? "" : ": ", ok ? "" : err);
    else
        check(ok && d >= 0 && d <= 1e-5, "%s: an llvm checkpoint at step 40 continues on %s (difference %.3g)%s%s",
              r->name, be->name, d, ok ? "" : ": ", ok ? "" : err);
    celo_ckpt_free(&ck);
    celo_inst_free(a);
    celo_inst_free(b);
}

static void on_backend(const celo_backend *be, const celo_backend *llvm, celo_task_data *td)
{
    for (int i = 0; i < plan.nruns; i++) {
        const celo_run *r = &plan.runs[i];
        const celo_program *P = prog_of(r->rule);
        celo_inst *a = celo_inst_new(&plan, r, P, be, td, err, sizeof err);
        if (!a || steps_to(a, 40)) {
            check(0, "%s on %s: %s", r->name, be->name, err);
            celo_inst_free(a);
            continue;
        }
        /* clone at 40; save at 40 and load into a fresh instance; all three to step 80 */
        celo_inst *c = celo_inst_clone(a, err, sizeof err);
        celo_inst *l = celo_inst_new(&plan, r, P, be, td, err, sizeof err);
        celo_ckpt ck;
        celo_ckpt_init(&ck);
        int ok = c && l && !celo_inst_save(a, &ck, err, sizeof err) &&
                 !celo_inst_load(l, &ck, "(memory)", err, sizeof err) && !steps_to(a, 80) && !steps_to(c, 80) &&
                 !steps_to(l, 80);
        check(ok && same_params(a, c), "%s on %s: a clone at step 40 continues as the original%s%s", r->name, be->name,
              ok ? "" : ": ", ok ? "" : err);
        check(ok && same_params(a, l), "%s on %s: an instance loaded at step 40 continues as the original%s%s", r->name,
              be->name, ok ? "" : ": ", ok ? "" : err);
        celo_ckpt_free(&ck);
        celo_inst_free(a);
        celo_inst_free(c);
        celo_inst_free(l);
        if (be != llvm)
            cross(r, llvm, be, td);
    }
}

int main(void)
{
    if (module_load(&mod, "tests/pipeline/backends.celo", "stdlib") || diag_count || pipeline_build(&mod, &plan) ||
        diag_count) {
        printf("FAIL test_backend: loading tests/pipeline/backends.celo\n");
        return 1;
    }
    for (int i = 0; i < plan.nruns && nrules < 16; i++)
        if (!prog_of(plan.runs[i].rule) &&
            !(rules[nrules++] = rule_compile(&mod, module_find(&mod, plan.runs[i].rule)))) {
            printf("FAIL test_backend: compiling %s\n", plan.runs[i].rule);
            return 1;
        }
    if (llvm_jit_rules(rules, nrules, err, sizeof err)) {
        printf("FAIL test_backend: %s\n", err);
        return 1;
    }
    celo_backend llvm, interp, ocl, bad;
    check(!celo_backend_init(&llvm, "llvm", err, sizeof err) &&
              !celo_backend_init(&interp, "interp", err, sizeof err) &&
              !celo_backend_init(&ocl, "opencl", err, sizeof err),
          "the three back ends by name");
    check(celo_backend_init(&bad, "cuda", err, sizeof err) && strstr(err, "unknown backend 'cuda'"),
          "an unknown back end: %s", err);
    check(llvm.step_team && interp.step_team && !ocl.step_team, "a team step on the CPU back ends only");
    /* opencl without the compiler's generator (a built binary): one line from compile */
    celo_bprog *none = ocl.compile(&ocl, &rules[0]->prog, err, sizeof err);
    check(!none && strstr(err, "carries none") && !strchr(err, '\n'), "opencl without OpenCL C: %s", err);
    ocl.cl_source = celo_opencl_source;

    celo_task_data *td = celo_task_data_new();
    if (celo_task_data_load(td, &plan.tasks[0], 1, err, sizeof err)) {
        printf("FAIL test_backend: %s\n", err);
        return 1;
    }
    on_backend(&llvm, &llvm, td);
    on_backend(&interp, &llvm, td);
    char e2[256];
    if (celo_cl_available(e2, sizeof e2) == 0)
        on_backend(&ocl, &llvm, td);
    else
        printf("skip opencl: %s\n", e2);

    celo_task_data_free(td);
    for (int i = 0; i < nrules; i++)
        rule_free(rules[i]);
    celo_plan_free(&plan);
    module_free(&mod);
    printf("%s\n", fails ? "test_backend: FAILED" : "test_backend: ok");
    return fails ? 1 : 0;
}
