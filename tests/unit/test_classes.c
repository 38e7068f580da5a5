/* test_classes.c — tensor classes through the C API (celort.h): the variants of tests/classes/split.celo's rules,
 * celo_program_select by rank and name (a 0-D tensor counts as rank 1, no name as ""), celo_state_new_named
 * keeping the name and stepping the tensor's variant, a state of another rule refused, and a rule without
 * classes choosing itself. Runs from the repository root. */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int main(void)
{
    module m;
    if (module_load(&m, "tests/classes/split.celo", "stdlib")) {
        fprintf(stderr, "tests/classes/split.celo does not load\n");
        return 1;
    }
    rule *split = module_rule(&m, module_find(&m, "split"));
    rule *three = module_rule(&m, module_find(&m, "three"));
    rule *adamw = module_rule(&m, module_find(&m, "adamw"));
    if (!split || !three || !adamw) {
        fprintf(stderr, "the rules do not compile\n");
        return 1;
    }
    const celo_program *S = &split->prog, *T = &three->prog, *A = &adamw->prog;
    CHECK(S->nvariant == 2 && S->npattern == 1 && !strcmp(S->pattern[0], "embed"), "split: 2 variants, 1 pattern");
    CHECK(S->nnodes == 0 && S->npass == 0 && S->nstate == 0 && S->nhp == 9, "split chooses only; its 9 hps");
    CHECK(T->nvariant == 3 && T->npattern == 1, "three: 3 variants");
    CHECK(A->nvariant == 0 && celo_program_select(A, 2, "x") == A, "adamw: no classes, chooses itself");
    const celo_program *adam_class = S->variant[0], *lion_class = S->variant[1];
    CHECK(adam_class->nstate == 2 && !strcmp(adam_class->state[0].name, "adamw.m"), "split/0: adamw.m, adamw.v");
    CHECK(lion_class->nstate == 1 && !strcmp(lion_class->state[0].name, "lion.m"), "split/1: lion.m");
    CHECK(!strcmp(adam_class->cls, "ndim() == 1 or matches(\"embed\")"), "split/0's class: %s", adam_class->cls);
    struct {
        const celo_program *P;
        int ndim;
        const char *name;
        int want;
    } cases[] = {
        {S, 1, "", 0},
        {S, 0, NULL, 0},
        {S, 2, "", 1},
        {S, 2, "wte.embed", 0},
        {S, 4, "conv1.weight", 1},
        {S, 8, "embedding", 0},
        {T, 2, "fc1.weight", 1},
        {T, 1, "fc1.bias", 1},
        {T, 2, "xfc1.weight", 2},
        {T, 1, "fc2.bias", 0},
        {T, 3, "", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const celo_program *got = celo_program_select(cases[i].P, cases[i].ndim, cases[i].name);
        CHECK(got == cases[i].P->variant[cases[i].want], "%s: rank %d, name '%s' -> %s (want variant %d)",
              cases[i].P->name, cases[i].ndim, cases[i].name ? cases[i].name : "(null)", got->name, cases[i].want);
    }
    int64_t shape[2] = {3, 4};
    celo_state *st = celo_state_new_named(S, 2, shape, "tok.embed.weight");
    CHECK(st->prog == adam_class && !strcmp(st->name, "tok.embed.weight"), "state_new_named: the variant, the name");
    float p[12], g[12], hp[16];
    for (int i = 0; i < 12; i++)
        p[i] = 0.1f * (float)i, g[i] = 1.0f - 0.2f * (float)i;
    celo_program_defaults(S, hp);
    celo_step_opts o = {0};
    CHECK(celo_step(S, st, p, g, hp, 1, &o) == 0 && st->t == 1, "a step through the rule runs the variant");
    celo_state *plain = celo_state_new(S, 2, shape);
    CHECK(plain->prog == lion_class && !strcmp(plain->name, ""), "state_new: no name, the rank's class");
    celo_state *other = celo_state_new(A, 2, shape);
    CHECK(celo_step(S, other, p, g, hp, 1, &o) != 0 && strstr(o.err, "state belongs to rule 'adamw'"),
          "a state of another rule is refused: %s", o.err);
    celo_state_free(st);
    celo_state_free(plain);
    celo_state_free(other);
    module_free(&m);
    return fails != 0;
}
