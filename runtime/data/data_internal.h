/*
 * data_internal.h — what the files of runtime/data/ share and nothing outside them needs: the one-line error
 * helper, paths and environment defaults, the random streams, memory for example arrays, the image resampler and
 * the cache of derived files. Public API: runtime/data.h.
 */
#ifndef CELO_DATA_INTERNAL_H
#define CELO_DATA_INTERNAL_H

#include "../data.h"
#include "../rng.h"

#include <stddef.h>
#include <stdint.h>

/* ---- errors, paths, environment (common.c) ---- */
/* printf into err, newlines turned into spaces: every data error is one line, whatever a file name holds */
#include "../errmsg.h"
/* dir + '/' + name, malloc'ed (NULL when out of memory) */
char *celo_data_path_join(const char *dir, const char *name);
/* $var when set and not empty, else def */
const char *celo_data_env_or(const char *var, const char *def);

/* The default seed of the synthetic sets (teacher, quadratic): the one runtime/train.c fixes per task. Seeds
 * are parameters (doubles): whole numbers up to 2^53. */
#define CELO_DATA_TASK_SEED 0x5eed7a5cull
#define CELO_DATA_MAX_SEED  9007199254740992.0

/* ---- sources (source.c), for the registry ---- */
/* s's type, parameters and key from (name, args), its data empty; 0, or -1 with err */
int celo_data_source_prepare(celo_source *s, const char *name, const celo_source_arg *args, int nargs, char *err,
                             size_t errlen);
/* load a prepared s; on failure s is freed (and -1 with err) */
int celo_data_source_fill(celo_source *s, char *err, size_t errlen);

/* ---- random numbers (common.c) ----
 * Streams of rng.h used by data: the top byte names the user ('S' shuffling, 'X' text windows, 'T' teacher
 * networks, 'Q' quadratics), far from the small stream numbers (instance, tensor) of model code. */
#define CELO_DATA_STREAM(tag, sub) (((uint64_t)(unsigned char)(tag) << 56) | ((uint64_t)(sub)&0x00ffffffffffffffull))
/* A 64-bit random value that is a pure function of (seed, stream, counter): one Philox block. Inline: the
 * shuffle calls it 8 times per index. */
static inline uint64_t celo_data_hash64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    celo_philox4x32(ctr, key, w);
    return (uint64_t)w[0] | (uint64_t)w[1] << 32;
}
/* x[j] ~ N(mean, std^2): the first n numbers of the stream (a prefix of a longer draw is the same). */
void celo_data_fill_normal(uint64_t seed, uint64_t stream, float *x, int64_t n, float mean, float std);

/* ---- example arrays (examples.c) ---- */
/* n floats for a celo_dataset's x, freed with free(): large arrays in 2 MiB-aligned, huge-page-advised memory */
float *celo_data_examples_alloc(size_t n);
/* Standardizes train's pixels (all features alike) with their own mean and std (double sums, std at least 1e-6),
 * and test's, when not NULL, with the same two numbers; both record them in mean and std. */
void celo_data_standardize(celo_dataset *train, celo_dataset *test);

/* ---- IDX files (idx.c) ---- */
/* celo_idx_read; pkg, when not NULL, names the Debian package that provides a missing file */
int celo_data_idx_read(const char *path, celo_idx *out, const char *pkg, char *err, size_t errlen);

/* ---- image resampling (resize.c) ---- */
/* The separable resampling of h x w images to size x size by one method, computed once for a whole data set. */
typedef struct {
    int h, w, size;
    double *Wh, *Ww; /* [size, h] and [size, w] */
} celo_resizer;
int celo_resizer_init(celo_resizer *r, int h, int w, int size, int method); /* 0, or -1 when out of memory */
/* in [h, w] -> out [size, size]; tmp: scratch of size * w doubles (one per thread) */
void celo_resizer_apply(const celo_resizer *r, const float *in, float *out, double *tmp);
void celo_resizer_free(celo_resizer *r);

/* ---- cache of derived files (cache.c) ----
 * $CELO_CACHE_DIR, else $XDG_CACHE_HOME/celo, else $HOME/.cache/celo, created on demand. Every failure is
 * silent: the cache only saves time. */
/* the path of a cache entry named `name`, malloc'ed; NULL when there is no usable cache directory */
char *celo_data_cache_path(const char *name);
/* The whole entry (a regular file of at least 2 bytes ending in a newline), malloc'ed, or NULL. */
char *celo_data_cache_read_text(const char *path, size_t *len);
/* Written atomically: readers see the whole file or none. */
void celo_data_cache_write(const char *path, const void *buf, size_t len);

#endif
