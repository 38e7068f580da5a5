/* A plain C program stepping a learned rule compiled ahead of time (`celo emit obj tests/learned/mlp6.celo -o
 * rules.o`): the object file carries the rule's θ table, the program binds a θ file to it by name
 * (celo_theta_bind) and hands it to the state. */
#include "celort.h"
#include "rules.h"
#include "theta.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: use_learned THETA.safetensors P.npy G.npy OUT.npy\n");
        return 1;
    }
    char err[512];
    celo_array p, g;
    celo_theta th;
    float *theta = NULL;
    const celo_program *rule = &celo_rule_mlp6;
    if (celo_theta_read(argv[1], &th, NULL, err, sizeof err) ||
        celo_theta_bind(rule, &th, argv[1], &theta, err, sizeof err) || celo_npy_read(argv[2], &p, err, sizeof err) ||
        celo_npy_read(argv[3], &g, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    celo_theta_free(&th);
    float hp[16];
    celo_program_defaults(rule, hp);
    celo_state *st = celo_state_new(rule, p.ndim, p.shape);
    st->theta = theta;
    st->ntheta = rule->theta_len;
    celo_step_opts o = {0};
    for (int64_t t = 1; t <= g.shape[0]; t++)
        if (celo_step(rule, st, p.data, g.data + (t - 1) * p.n, hp, t, &o)) {
            fprintf(stderr, "%s\n", o.err);
            return 1;
        }
    if (celo_npy_write(argv[4], p.data, p.ndim, p.shape, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    celo_state_free(st);
    free(theta);
    celo_array_free(&p);
    celo_array_free(&g);
    return 0;
}
