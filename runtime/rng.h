/*
 * rng.h — celo's random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011), a counter-based generator. Number j of stream s under seed k is a pure function of (k, s, j):
 * no hidden state to share between threads, and any instance / step / tensor can get its own stream.
 *
 *     celo_rng r;
 *     celo_rng_init(&r, seed, stream);             // e.g. stream = instance * 1000 + tensor index
 *     double u = celo_rng_uniform(&r);             // [0, 1)
 *     double z = celo_rng_normal(&r);              // N(0, 1)
 *     celo_rng_fill_uniform(&r, w, n, -b, b);      // float buffer, uniform on [-b, b] (rounded to float)
 *
 * Layout: block i of stream s is philox(counter = {lo32(i), hi32(i), lo32(s), hi32(s)}, key = {lo32(k),
 * hi32(k)}); its four 32-bit words are numbers 4i..4i+3 of the stream. The block function is tested against
 * Random123's known-answer vectors (tests/unit/test_rng.c).
 */
#ifndef CELO_RNG_H
#define CELO_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t key[2];
    uint64_t stream;
    uint64_t block;  /* next block to generate */
    uint32_t buf[4]; /* the current block */
    int used;        /* words of buf already returned (4: empty) */
    int has_spare;   /* Box–Muller makes normals in pairs: the second is kept here */
    double spare;
} celo_rng;

/* The Philox4x32-10 block function. */
void celo_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void celo_rng_init(celo_rng *r, uint64_t seed, uint64_t stream);
uint32_t celo_rng_u32(celo_rng *r);
double celo_rng_uniform(celo_rng *r); /* [0, 1), 53 random bits (two words) */
double celo_rng_normal(celo_rng *r);  /* N(0, 1), Box–Muller in double (two uniforms per pair of normals) */
void celo_rng_fill_uniform(celo_rng *r, float *x, int64_t n, double lo, double hi);
void celo_rng_fill_normal(celo_rng *r, float *x, int64_t n, double mean, double std);

#ifdef __cplusplus
}
#endif
#endif
