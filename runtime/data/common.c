/*
 * common.c — the small helpers every data file uses (data_internal.h): one-line errors, paths, environment
 * defaults, and normal draws from a stream.
 */
#include "data_internal.h"

#include "../rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *celo_data_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

const char *celo_data_env_or(const char *var, const char *def)
{
    const char *v = getenv(var);
    return v && *v ? v : def;
}

void celo_data_fill_normal(uint64_t seed, uint64_t stream, float *x, int64_t n, float mean, float std)
{
    celo_rng r;
    celo_rng_init(&r, seed, stream);
    celo_rng_fill_normal(&r, x, n, mean, std);
}
