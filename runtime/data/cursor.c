/*
 * cursor.c — seeded, resumable batching over example data sets (data.h): a stateless per-epoch shuffle and the
 * cursor that walks it and serializes into checkpoints.
 */
#include "data_internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static uint64_t feistel(uint64_t seed, uint64_t stream, int half, uint64_t v)
{
    uint64_t mask = (half >= 64) ? ~0ull : ((1ull << half) - 1);
    uint64_t L = v >> half, R = v & mask;
    for (uint64_t r = 0; r < 8; r++) {
        uint64_t F = celo_data_hash64(seed, stream, r << 32 | R) & mask;
        uint64_t nl = R;
        R = L ^ F;
        L = nl;
    }
    return L << half | R;
}

int64_t celo_shuffle_index(uint64_t seed, int64_t epoch, int64_t n, int64_t i)
{
    if (n <= 1)
        return 0;
    int bits = 0;
    while (bits < 63 && ((uint64_t)1 << bits) < (uint64_t)n)
        bits++;
    if (bits & 1)
        bits++;
    int half = bits / 2;
    uint64_t stream = CELO_DATA_STREAM('S', (uint64_t)epoch);
    uint64_t v = (uint64_t)i;
    do
        v = feistel(seed, stream, half, v);
    while (v >= (uint64_t)n);
    return (int64_t)v;
}

void celo_epoch_batch(uint64_t seed, int64_t n, int64_t B, int64_t epoch, int64_t k, int64_t *idx)
{
    for (int64_t j = 0; j < B; j++)
        idx[j] = celo_shuffle_index(seed, epoch, n, k * B + j);
}

int celo_cursor_init(celo_cursor *c, uint64_t seed, int64_t n, int64_t batch, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (batch < 1 || n < batch) {
        celo_seterr(err, errlen, "batch size %lld does not fit a dataset of %lld examples", (long long)batch,
                    (long long)n);
        return -1;
    }
    c->seed = seed;
    c->n = n;
    c->batch = batch;
    return 0;
}

int64_t celo_cursor_batches_per_epoch(const celo_cursor *c)
{
    return c->n / c->batch;
}

int64_t celo_cursor_step(const celo_cursor *c)
{
    return c->epoch * celo_cursor_batches_per_epoch(c) + c->k;
}

void celo_cursor_seek(celo_cursor *c, int64_t step)
{
    int64_t per = celo_cursor_batches_per_epoch(c);
    c->epoch = step / per;
    c->k = step % per;
}

void celo_cursor_next(celo_cursor *c, int64_t *idx)
{
    celo_epoch_batch(c->seed, c->n, c->batch, c->epoch, c->k, idx);
    if (++c->k >= celo_cursor_batches_per_epoch(c)) {
        c->k = 0;
        c->epoch++;
    }
}

void celo_cursor_next_batch(celo_cursor *c, const celo_dataset *d, int64_t *idx, float *x, int32_t *y, float *t)
{
    celo_cursor_next(c, idx);
    celo_dataset_gather(d, idx, c->batch, x, y, t);
}

int celo_cursor_format(const celo_cursor *c, char *buf, size_t len)
{
    int k = snprintf(buf, len, "seed=%llu n=%lld batch=%lld epoch=%lld k=%lld", (unsigned long long)c->seed,
                     (long long)c->n, (long long)c->batch, (long long)c->epoch, (long long)c->k);
    return k < 0 || (size_t)k >= len ? -1 : k;
}

static int parse_field(const char **s, const char *key, uint64_t *v, uint64_t max)
{
    size_t kl = strlen(key);
    if (strncmp(*s, key, kl) != 0)
        return -1;
    const char *p = *s + kl;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t x = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned dgt = (unsigned)(*p - '0');
        if (x > (max - dgt) / 10)
            return -1;
        x = x * 10 + dgt;
        p++;
    }
    *v = x;
    *s = p;
    return 0;
}

int celo_cursor_parse(celo_cursor *c, const char *s, char *err, size_t errlen)
{
    uint64_t seed, n, b, e, k;
    const char *p = s;
    if (parse_field(&p, "seed=", &seed, UINT64_MAX) || parse_field(&p, " n=", &n, INT64_MAX) ||
        parse_field(&p, " batch=", &b, INT64_MAX) || parse_field(&p, " epoch=", &e, INT64_MAX) ||
        parse_field(&p, " k=", &k, INT64_MAX) || *p != 0) {
        celo_seterr(err, errlen, "bad data cursor '%.80s' (want 'seed=S n=N batch=B epoch=E k=K')", s);
        return -1;
    }
    if (b < 1 || n < b || k >= n / b) {
        celo_seterr(err, errlen, "bad data cursor '%.80s' (batch 1..n, k < n / batch)", s);
        return -1;
    }
    c->seed = seed;
    c->n = (int64_t)n;
    c->batch = (int64_t)b;
    c->epoch = (int64_t)e;
    c->k = (int64_t)k;
    return 0;
}
