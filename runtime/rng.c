/*
 * rng.c — Philox4x32-10 counter-based random numbers (see rng.h). Checked against the known-answer vectors
 * of Random123 in tests/unit/test_rng.c.
 */
#include "rng.h"

#include <math.h>
#include <stddef.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void celo_philox4x32(uint64_t key, const uint32_t ctr[4], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void celo_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    celo_philox4x32(seed, ctr, out);
}

uint64_t celo_rng_hash64(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t w[4];
    celo_rng_block(seed, stream, counter, w);
    return (uint64_t)w[0] | (uint64_t)w[1] << 32;
}

void celo_rng_init(celo_rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->block = 0;
    r->buf[0] = r->buf[1] = r->buf[2] = r->buf[3] = 0;
    r->pos = 4;
}

void celo_rng_seek(celo_rng *r, uint64_t block) {
    r->block = block;
    r->pos = 4;
}

uint32_t celo_rng_u32(celo_rng *r) {
    if (r->pos >= 4) {
        celo_rng_block(r->seed, r->stream, r->block++, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t celo_rng_u64(celo_rng *r) {
    uint64_t lo = celo_rng_u32(r);
    return lo | (uint64_t)celo_rng_u32(r) << 32;
}

/* Lemire's multiply-and-reject: unbiased for every n. */
uint64_t celo_rng_below(celo_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    __extension__ typedef unsigned __int128 u128;
    uint64_t x = celo_rng_u64(r);
    u128 m = (u128)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            x = celo_rng_u64(r);
            m = (u128)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

float celo_u32_to_uniform(uint32_t w) { return (float)(w >> 8) * 0x1.0p-24f; }

float celo_rng_uniform(celo_rng *r) { return celo_u32_to_uniform(celo_rng_u32(r)); }

double celo_rng_uniform_double(celo_rng *r) { return (double)(celo_rng_u64(r) >> 11) * 0x1.0p-53; }

void celo_box_muller(uint32_t w0, uint32_t w1, float *z0, float *z1) {
    double u1 = ((double)w0 + 1.0) * 0x1.0p-32; /* (0, 1]: log is finite */
    double u2 = (double)w1 * 0x1.0p-32;         /* [0, 1) */
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925 * u2;
    *z0 = (float)(rad * cos(th));
    if (z1) *z1 = (float)(rad * sin(th));
}

float celo_rng_normal(celo_rng *r) {
    uint32_t w0 = celo_rng_u32(r), w1 = celo_rng_u32(r);
    float z;
    celo_box_muller(w0, w1, &z, NULL);
    return z;
}

#define FILL_PAR_MIN 65536 /* below this, threads cost more than they save */

void celo_rng_fill_uniform(uint64_t seed, uint64_t stream, uint64_t offset, float *x, int64_t n, float lo,
                           float hi) {
    const float scale = hi - lo;
#pragma omp parallel for schedule(static) if (n >= FILL_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint64_t j = offset + (uint64_t)i;
        uint32_t w[4];
        celo_rng_block(seed, stream, j >> 2, w);
        x[i] = lo + scale * celo_u32_to_uniform(w[j & 3]);
    }
}

void celo_rng_fill_normal(uint64_t seed, uint64_t stream, uint64_t offset, float *x, int64_t n, float mean,
                          float std) {
#pragma omp parallel for schedule(static) if (n >= FILL_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint64_t j = offset + (uint64_t)i;
        uint32_t w[4];
        celo_rng_block(seed, stream, j >> 1, w);
        float z0, z1;
        celo_box_muller(w[0], w[1], &z0, &z1);
        x[i] = mean + std * ((j & 1) ? z1 : z0);
    }
}
