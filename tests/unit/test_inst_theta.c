/*
 * test_inst_theta.c — a run instance of a learned rule (runtime/inst.c, load_theta): its θ comes from the run's
 * file when the instance is made; a clone and a reset keep that θ without reading the file again (here it is gone
 * by then), and give the numbers of the run alone; a θ of the wrong shape, or none, is one line naming the run.
 */
#include "inst.h"

#include "backend.h"
#include "diag.h"
#include "rules.h"
#include "theta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

enum { STEPS = 40, DIM = 64 };

static char err[1024];

/* tests/learned/mlp6.celo's rule */
static const char *src = "optimizer mlp6(lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8) {\n"
                         "    learned mlp f[6 -> 4 -> 2] relu;\n"
                         "    learned w[2];\n"
                         "    state m = 0, v = 0;\n"
                         "    m = b1 * m + (1 - b1) * g;\n"
                         "    v = b2 * v + (1 - b2) * g * g;\n"
                         "    r = rsqrt(v + eps);\n"
                         "    y = f(g, m, v, p, m * r, g * r);\n"
                         "    p -= lr * (y[0] * exp(0.001 * y[1]) + w[0] * m * r + w[1] * p);\n"
                         "}\n";

typedef struct {
    double loss[STEPS];
    float p[DIM];
} trace;

static int step_to(celo_inst *in, int64_t to, trace *tr)
{
    celo_ctx one = {1};
    celo_step_out o;
    for (int64_t t = celo_inst_step_count(in) + 1; t <= to; t++) {
        if (celo_inst_steps(in, &one, t, &o, NULL, NULL, err, sizeof err) || o.bad) {
            check(0, "step %lld: %s", (long long)t, o.bad ? o.bad : err);
            return -1;
        }
        tr->loss[t - 1] = o.loss;
    }
    int64_t np;
    const float *p = celo_inst_params(in, &np);
    memcpy(tr->p, p, sizeof tr->p);
    return 0;
}

static int same(const trace *a, const trace *b, int from)
{
    for (int t = from; t < STEPS; t++)
        if (a->loss[t] != b->loss[t])
            return 0;
    return !memcmp(a->p, b->p, sizeof a->p);
}

int main(void)
{
    module mod;
    rule *r = NULL;
    if (module_load_string(&mod, "test_inst_theta.celo", src, "stdlib") || diag_count ||
        !(r = rule_compile_named(&mod, "mlp6")) || llvm_jit_rules(&r, 1, err, sizeof err)) {
        printf("FAIL test_inst_theta: compiling mlp6: %s\n", err);
        return 1;
    }
    /* the Adam-making θ, copied to a file of this test's own that goes away mid-run */
    char path[512];
    snprintf(path, sizeof path, "%s/celo_theta_XXXXXX", P_tmpdir);
    int fd = mkstemp(path);
    celo_theta th;
    celo_theta_init(&th);
    if (fd < 0 || celo_theta_read("tests/learned/theta_adam.safetensors", &th, NULL, err, sizeof err) ||
        celo_theta_write(path, &th, err, sizeof err)) {
        printf("FAIL test_inst_theta: θ file: %s\n", err);
        return 1;
    }
    close(fd);
    celo_task task;
    memset(&task, 0, sizeof task);
    snprintf(task.name, sizeof task.name, "q");
    task.data = CELO_DATA_QUADRATIC;
    task.quad_dim = DIM;
    task.quad_cond = 10;
    celo_run run;
    memset(&run, 0, sizeof run);
    snprintf(run.name, sizeof run.name, "q_mlp6");
    snprintf(run.rule, sizeof run.rule, "mlp6");
    run.nhp = 1;
    snprintf(run.hp_name[0], sizeof run.hp_name[0], "lr");
    run.hp[0] = 3e-2;
    run.steps = STEPS;
    run.seed = 3;
    run.group = -1;
    snprintf(run.theta, sizeof run.theta, "%s", path);
    celo_plan plan = {.ntasks = 1, .nruns = 1, .tasks = &task, .runs = &run};
    celo_task_data *td = celo_task_data_new();
    if (celo_task_data_load(td, &task, 1, err, sizeof err)) {
        printf("FAIL test_inst_theta: %s\n", err);
        return 1;
    }

    static trace alone, ta, tc, tr;
    celo_inst *in = celo_inst_new(&plan, &run, &r->prog, NULL, td, err, sizeof err);
    check(in != NULL, "an instance of a learned rule with its θ file: %s", in ? "" : err);
    celo_inst *a = celo_inst_new(&plan, &run, &r->prog, NULL, td, err, sizeof err);
    if (in && a) {
        step_to(in, STEPS, &alone);
        check(alone.loss[STEPS - 1] < 0.5 * alone.loss[0], "θ = Adam: the quadratic's loss falls (%g -> %g)",
              alone.loss[0], alone.loss[STEPS - 1]);
        unlink(path); /* from here on, nothing may read the file */
        step_to(a, 20, &ta);
        celo_inst *c = celo_inst_clone(a, err, sizeof err);
        check(c != NULL, "clone without the file: %s", c ? "" : err);
        if (c) {
            step_to(a, STEPS, &ta);
            step_to(c, STEPS, &tc);
            check(same(&ta, &alone, 0) && same(&tc, &alone, 20), "a clone at step 20 keeps θ: both == the run alone");
            check(celo_inst_reset(c, 3, err, sizeof err) == 0, "reset without the file: %s", err);
            step_to(c, STEPS, &tr);
            check(same(&tr, &alone, 0), "an instance reset to its seed keeps θ: == the run alone");
            celo_inst_free(c);
        }
        celo_inst *g = celo_inst_new(&plan, &run, &r->prog, NULL, td, err, sizeof err);
        char want[1200];
        snprintf(want, sizeof want, "run q_mlp6: %s: cannot open: No such file or directory", path);
        check(!g && !strcmp(err, want), "a run whose θ file is gone: %s", err);
        celo_inst_free(g);
    }
    run.theta[0] = 0;
    celo_inst *n = celo_inst_new(&plan, &run, &r->prog, NULL, td, err, sizeof err);
    check(!n && strstr(err, "run q_mlp6: rule 'mlp6' is learned"), "a run without θ: %s", err);
    celo_inst_free(n);
    celo_inst_free(in);
    celo_inst_free(a);
    celo_theta_free(&th);
    celo_task_data_free(td);
    rule_free(r);
    module_free(&mod);
    llvm_shutdown();
    printf("%s\n", fails ? "test_inst_theta: FAILED" : "test_inst_theta: ok");
    return fails != 0;
}
