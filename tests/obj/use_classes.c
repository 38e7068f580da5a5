/* A C program stepping a rule with tensor classes compiled ahead of time (`celo emit obj tests/classes/split.celo`):
 * celo_state_new_named picks the variant of the tensor's rank and name, celo_step runs it. */
#include "celort.h"
#include "rules.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: use_classes P.npy G.npy NAME OUT.npy\n");
        return 1;
    }
    char err[256];
    celo_array p, g;
    if (celo_npy_read(argv[1], &p, err, sizeof err) || celo_npy_read(argv[2], &g, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const celo_program *rule = &celo_rule_split;
    float hp[16];
    celo_program_defaults(rule, hp);
    celo_state *st = celo_state_new_named(rule, p.ndim, p.shape, argv[3]);
    printf("%s: %s\n", st->prog->name, st->prog->cls);
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
    celo_array_free(&p);
    celo_array_free(&g);
    return 0;
}
