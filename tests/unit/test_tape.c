/*
 * test_tape.c — the host tape (runtime/tape.h) gives the values of celo_eval_small node by node, bit for bit: a
 * rule with unrolled dot products over θ (per-tensor and host terms in one sum, so that a chain crosses from the
 * host part to the per-tensor part), a θ product used twice (not folded), a θ entry read by a folded product and
 * directly, the loss and t, stepped with celo_step; the reference evaluates every pass-0 node in order with
 * celo_eval_small, as the step did before the tape, and commits the state the same way. A step of the rule
 * without the loss fails with its one line.
 */
#include "celort.h"
#include "diag.h"
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *src = "optimizer tp(lr = 0.1) {\n"
                         "    learned W[6, 4];\n"
                         "    learned b[4];\n"
                         "    learned v[6];\n"
                         "    learned h0[4];\n"
                         "    state h[4] = h0, a = 0;\n"
                         "    for j in 0..4 {\n"
                         "        s = loss * W[4, j] + t * W[5, j];\n"
                         "        for k in 0..4 { s = s + h[k] * W[k, j]; }\n"
                         "        u[j] = s + b[j];\n"
                         "    }\n"
                         "    q = v[0] * loss;\n"
                         "    r = q + v[1] * t;\n"
                         "    z = q * v[2] + r + W[0, 0];\n"
                         "    for j in 0..4 { h[j] = tanh(u[j]) + z * 0.001; }\n"
                         "    a = a + norm(g) * v[3];\n"
                         "    p -= lr * (h[0] + a) * g;\n"
                         "}\n";

static int is_red(const celo_program *P, const celo_node *x)
{
    return (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && P->nodes[x->a].dom == CELO_ELEM;
}

int main(void)
{
    module mod;
    rule *r = NULL;
    if (module_load_string(&mod, "test_tape.celo", src, "stdlib") || diag_count ||
        !(r = rule_compile_named(&mod, "tp"))) {
        printf("FAIL test_tape: compiling the rule\n");
        return 1;
    }
    const celo_program *P = &r->prog;
    float theta[64], hp[1], p[10] = {0}, g[10];
    CHECK(P->theta_len == 38, "θ of 38 values (got %lld)", (long long)P->theta_len);
    for (int i = 0; i < 38; i++)
        theta[i] = (float)sin(1.7 * i + 0.3) * 0.8f;
    for (int i = 0; i < 10; i++)
        g[i] = (float)cos(0.9 * i);
    celo_program_defaults(P, hp);
    int64_t shape[1] = {10};
    celo_state *st = celo_state_new(P, 1, shape), *ref = celo_state_new(P, 1, shape);
    st->theta = ref->theta = theta;
    st->ntheta = ref->ntheta = 38;
    int nn = P->nnodes, ns = P->nstate, same = 1;
    double *val = calloc((size_t)nn, sizeof *val);
    float *sc = calloc((size_t)nn, sizeof *sc);
    float **ptr = calloc((size_t)(2 + ns + nn), sizeof *ptr);
    for (int s = 0; s < ns; s++)
        ptr[2 + s] = ref->slot[s];
    {
        celo_step_opts o = {.interp = 1, .nthreads = 1};
        CHECK(P->flags & CELO_PROG_READS_LOSS, "the rule reads the loss (CELO_PROG_READS_LOSS)");
        CHECK(celo_step(P, st, p, g, hp, 1, &o) == -1 &&
                  !strcmp(o.err, "rule 'tp' reads the loss: the step's training loss was not given "
                                 "(celo_bstate_set_loss; celo apply --loss L.npy)"),
              "a step without the loss fails: %s", o.err);
    }
    for (int64_t t = 1; t <= 6; t++) {
        double loss = 2.0 / (double)t + 0.1;
        st->loss = ref->loss = loss;
        st->has_loss = ref->has_loss = 1;
        celo_step_opts o = {.interp = 1, .nthreads = 1};
        CHECK(celo_step(P, st, p, g, hp, t, &o) == 0, "step %lld: %s", (long long)t, o.err);
        /* the reference: host nodes, the initial state at t = 1, then the per-tensor nodes, each by celo_eval_small */
        for (int j = 0; j < nn; j++)
            if (P->nodes[j].dom == CELO_HOST && P->nodes[j].pass == 0 && !is_red(P, &P->nodes[j]))
                celo_eval_small(P, ref, j, t, hp, val, sc, ptr);
        if (t == 1)
            for (int s = 0; s < ns; s++)
                ref->slot[s][0] = sc[P->state[s].init];
        for (int j = 0; j < nn; j++) {
            const celo_node *x = &P->nodes[j];
            if (x->dom != CELO_HOST && x->dom != CELO_ELEM && x->pass == 0 && !is_red(P, x))
                celo_eval_small(P, ref, j, t, hp, val, sc, ptr);
        }
        for (int s = 0; s < ns; s++) {
            int v = P->state[s].value;
            if (v < 0 || P->nodes[v].pass != 0)
                continue; /* `a` needs pass 1's reduction */
            celo_commit_slot(P, ref, s, sc, ptr);
            if (memcmp(st->slot[s], ref->slot[s], sizeof(float)))
                same = 0;
        }
    }
    CHECK(same, "6 steps: the tape's h[0..3] equal celo_eval_small node by node, bit for bit");
    CHECK(fabsf(st->slot[0][0]) > 0 && isfinite(st->slot[0][0]), "h[0] is a finite nonzero value (%g)",
          (double)st->slot[0][0]);
    free(val);
    free(sc);
    free(ptr);
    celo_state_free(st);
    celo_state_free(ref);
    rule_free(r);
    module_free(&mod);
    return fails != 0;
}
