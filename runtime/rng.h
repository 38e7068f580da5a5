/*
 * rng.h — counter-based random numbers for the celo runtime: Philox4x32-10 (Salmon et al., SC'11, the
 * generator of Random123, cuRAND and JAX), keyed by (seed, stream), addressed by a 64-bit counter.
 *
 * No hidden state anywhere: a value is a pure function of (seed, stream, counter), so any run, any
 * instance and any step can be reproduced or skipped to without generating what came before, threads can
 * fill disjoint ranges of one array in any order, and a resumed run draws the same numbers as an
 * uninterrupted one. Conventions used across the runtime:
 *   seed    the run's (or meta-training instance's) seed
 *   stream  what the numbers are for (data shuffling, initialization of one tensor, a dataset's inputs, …)
 *   counter the position inside that stream (an element index, a step, a block number)
 *
 * The Philox block function maps a 128-bit counter and a 64-bit key to 128 random bits. Here
 * key = seed, counter words = (block lo, block hi, stream lo, stream hi).
 *
 *     celo_rng r;
 *     celo_rng_init(&r, seed, CELO_STREAM_INIT + layer);   // one stream per purpose
 *     float u = celo_rng_uniform(&r);                       // [0, 1), 24 random bits
 *     float z = celo_rng_normal(&r);                        // standard normal (Box–Muller)
 *     celo_rng_fill_normal(seed, stream, 0, w, n, 0.0f, 0.02f);  // element i uses counter i: thread-safe
 */
#ifndef CELO_RNG_H
#define CELO_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The raw block function: 10 rounds of Philox4x32 on ctr with key (k0 = low 32 bits, k1 = high 32 bits). */
void celo_philox4x32(uint64_t key, const uint32_t ctr[4], uint32_t out[4]);

/* Block `block` of stream (seed, stream): 4 random 32-bit words. */
void celo_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]);

/* A 64-bit random value addressed by (seed, stream, counter) (the first two words of that block). */
uint64_t celo_rng_hash64(uint64_t seed, uint64_t stream, uint64_t counter);

/* A sequential reader of one stream. Plain data: copy it, store it, restore it. */
typedef struct {
    uint64_t seed, stream;
    uint64_t block;  /* the next block to generate */
    uint32_t buf[4]; /* words of block - 1 */
    int pos;         /* next unused word of buf; 4 = empty */
} celo_rng;

void celo_rng_init(celo_rng *r, uint64_t seed, uint64_t stream); /* positioned at block 0 */
void celo_rng_seek(celo_rng *r, uint64_t block);                 /* next word = word 0 of that block */
uint32_t celo_rng_u32(celo_rng *r);
uint64_t celo_rng_u64(celo_rng *r);                              /* two words, the first is the low half */
uint64_t celo_rng_below(celo_rng *r, uint64_t n);                /* uniform in [0, n), unbiased; n > 0 */
float celo_rng_uniform(celo_rng *r);                             /* [0, 1): (u32 >> 8) * 2^-24 */
double celo_rng_uniform_double(celo_rng *r);                     /* [0, 1) with 53 bits */
float celo_rng_normal(celo_rng *r); /* N(0, 1): Box–Muller on two words (cosine branch only) */

/* Pure word -> number conversions, for code that draws words itself. */
float celo_u32_to_uniform(uint32_t w); /* [0, 1) */
void celo_box_muller(uint32_t w0, uint32_t w1, float *z0, float *z1); /* two independent N(0, 1) */

/* Counter-addressed fills: element i of x is a function of (seed, stream, offset + i) only, so
 * fill(offset 0, n) equals fill(0, k) followed by fill(k, n - k), and the loops may run on any thread.
 * Uniform: element j uses word j % 4 of block j / 4. Normal: elements 2m and 2m + 1 are the two Box–Muller
 * outputs of words 0, 1 of block m. Each call splits x over the OpenMP threads when n is large. */
void celo_rng_fill_uniform(uint64_t seed, uint64_t stream, uint64_t offset, float *x, int64_t n, float lo,
                           float hi);
void celo_rng_fill_normal(uint64_t seed, uint64_t stream, uint64_t offset, float *x, int64_t n, float mean,
                          float std);

#ifdef __cplusplus
}
#endif
#endif
