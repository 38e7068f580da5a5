/*
 * stdiff — which tensors two safetensors checkpoints (runtime/ckpt.h) hold with the same values.
 *
 *     stdiff A.safetensors B.safetensors
 *
 * One line per tensor of A whose name B also has, optimizer state ("opt.*") left out, in A's order:
 * `NAME same` (bit for bit), `NAME differs max_abs=<v>`, or `NAME shape` (shapes differ); then `only_in_a N`.
 * Exit status 0, or 1 when a file cannot be read (the reason on stderr).
 */
#include "ckpt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: stdiff A.safetensors B.safetensors\n");
        return 2;
    }
    celo_ckpt a, b;
    char err[512];
    celo_ckpt_init(&a);
    celo_ckpt_init(&b);
    if (celo_ckpt_read(&a, argv[1], err, sizeof err) || celo_ckpt_read(&b, argv[2], err, sizeof err)) {
        fprintf(stderr, "stdiff: %s\n", err);
        return 1;
    }
    int only = 0;
    for (int i = 0; i < a.ntensor; i++) {
        const celo_ckpt_tensor *x = &a.tensor[i], *y = celo_ckpt_find(&b, x->name);
        if (!strncmp(x->name, "opt.", 4))
            continue;
        if (!y) {
            only++;
            continue;
        }
        if (x->n != y->n || x->ndim != y->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
            printf("%s shape\n", x->name);
            continue;
        }
        double m = 0;
        for (int64_t k = 0; k < x->n; k++)
            m = fmax(m, fabs((double)x->data[k] - y->data[k]));
        if (!memcmp(x->data, y->data, sizeof(float) * (size_t)x->n))
            printf("%s same\n", x->name);
        else
            printf("%s differs max_abs=%.3g\n", x->name, m);
    }
    printf("only_in_a %d\n", only);
    celo_ckpt_free(&a);
    celo_ckpt_free(&b);
    return 0;
}
