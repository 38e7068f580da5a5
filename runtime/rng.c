/*
 * rng.c — Philox4x32-10 and the uniform / normal draws built on it (see rng.h).
 */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9) /* golden ratio */
#define PHILOX_W1 UINT32_C(0xBB67AE85) /* sqrt(3) - 1 */

void celo_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void celo_rng_init(celo_rng *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->stream = stream;
    r->block = 0;
    r->used = 4;
    r->has_spare = 0;
    r->spare = 0;
}

uint32_t celo_rng_u32(celo_rng *r)
{
    if (r->used == 4) {
        const uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->stream,
                                 (uint32_t)(r->stream >> 32)};
        celo_philox4x32(ctr, r->key, r->buf);
        r->block++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

double celo_rng_uniform(celo_rng *r)
{
    uint64_t a = celo_rng_u32(r) >> 5, b = celo_rng_u32(r) >> 6; /* 27 + 26 = 53 bits */
    return (double)(a * 67108864u + b) * 0x1p-53;
}

double celo_rng_normal(celo_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - celo_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = celo_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

void celo_rng_fill_uniform(celo_rng *r, float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * celo_rng_uniform(r));
}

void celo_rng_fill_normal(celo_rng *r, float *x, int64_t n, double mean, double std)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * celo_rng_normal(r));
}
