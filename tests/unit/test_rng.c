/* test_rng.c — Philox4x32-10 against Random123's known-answer vectors; stream/counter addressing; moments. */
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;
#define CHECK(cond, ...)                                                                                           \
    do {                                                                                                           \
        if (cond) {                                                                                                \
            printf("ok   ");                                                                                       \
        } else {                                                                                                   \
            printf("FAIL ");                                                                                       \
            fails++;                                                                                               \
        }                                                                                                          \
        printf(__VA_ARGS__);                                                                                       \
        printf("\n");                                                                                              \
    } while (0)

static void kat(const uint32_t ctr[4], uint32_t k0, uint32_t k1, const uint32_t want[4]) {
    uint32_t out[4];
    celo_philox4x32((uint64_t)k0 | (uint64_t)k1 << 32, ctr, out);
    CHECK(memcmp(out, want, sizeof out) == 0, "philox4x32-10 KAT ctr %08x.. key %08x %08x -> %08x %08x %08x %08x",
          ctr[0], k0, k1, out[0], out[1], out[2], out[3]);
}

int main(void) {
    /* Random123 kat_vectors: philox4x32 10 */
    kat((const uint32_t[]){0, 0, 0, 0}, 0, 0, (const uint32_t[]){0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
    kat((const uint32_t[]){0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 0xffffffff, 0xffffffff,
        (const uint32_t[]){0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
    kat((const uint32_t[]){0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822, 0x299f31d0,
        (const uint32_t[]){0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});

    /* sequential reader == addressed blocks; seek; copies resume identically */
    celo_rng r;
    celo_rng_init(&r, 42, 7);
    uint32_t w[4], seq[8];
    for (int i = 0; i < 8; i++) seq[i] = celo_rng_u32(&r);
    celo_rng_block(42, 7, 1, w);
    CHECK(memcmp(seq + 4, w, sizeof w) == 0, "reader word 4..7 == block 1");
    celo_rng_seek(&r, 1);
    CHECK(celo_rng_u32(&r) == seq[4], "seek to block 1");
    celo_rng copy = r;
    uint32_t a = celo_rng_u32(&r), b = celo_rng_u32(&copy);
    CHECK(a == b && a == seq[5], "a copied reader continues identically");
    celo_rng s2;
    celo_rng_init(&s2, 42, 8);
    CHECK(celo_rng_u32(&s2) != seq[0], "another stream differs");
    celo_rng_init(&s2, 43, 7);
    CHECK(celo_rng_u32(&s2) != seq[0], "another seed differs");

    /* fills: split ranges equal one range */
    enum { N = 1001 };
    static float x[N], y[N];
    celo_rng_fill_normal(5, 3, 0, x, N, 0.0f, 1.0f);
    celo_rng_fill_normal(5, 3, 0, y, 333, 0.0f, 1.0f);
    celo_rng_fill_normal(5, 3, 333, y + 333, N - 333, 0.0f, 1.0f);
    CHECK(memcmp(x, y, sizeof x) == 0, "fill_normal: [0,333) + [333,1001) == [0,1001)");
    celo_rng_fill_uniform(5, 3, 0, x, N, -1.0f, 1.0f);
    celo_rng_fill_uniform(5, 3, 0, y, 3, -1.0f, 1.0f);
    celo_rng_fill_uniform(5, 3, 3, y + 3, N - 3, -1.0f, 1.0f);
    CHECK(memcmp(x, y, sizeof x) == 0, "fill_uniform: [0,3) + [3,1001) == [0,1001)");

    /* moments over 2^20 draws (5-sigma bounds) */
    enum { M = 1 << 20 };
    float *z = malloc(M * sizeof *z);
    celo_rng_fill_normal(1, 2, 0, z, M, 0.0f, 1.0f);
    double s1 = 0, s2m = 0, s4 = 0;
    for (int i = 0; i < M; i++) s1 += z[i], s2m += (double)z[i] * z[i], s4 += (double)z[i] * z[i] * z[i] * z[i];
    s1 /= M, s2m /= M, s4 /= M;
    CHECK(fabs(s1) < 5 / sqrt(M) && fabs(s2m - 1) < 5 * sqrt(2.0 / M) && fabs(s4 - 3) < 5 * sqrt(96.0 / M),
          "normal moments: mean %.5f var %.5f kurtosis %.4f", s1, s2m, s4);
    celo_rng_fill_uniform(1, 2, 0, z, M, 0.0f, 1.0f);
    double u1 = 0, umin = 1, umax = 0;
    for (int i = 0; i < M; i++) u1 += z[i], umin = fmin(umin, z[i]), umax = fmax(umax, z[i]);
    u1 /= M;
    CHECK(fabs(u1 - 0.5) < 5 * sqrt(1.0 / 12 / M) && umin >= 0 && umax < 1, "uniform: mean %.5f in [%g, %g]", u1,
          umin, umax);
    free(z);

    /* below(): range and rough uniformity over 10 buckets */
    celo_rng_init(&r, 9, 9);
    int cnt[10] = {0}, inrange = 1;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = celo_rng_below(&r, 10);
        if (v >= 10) inrange = 0;
        else cnt[v]++;
    }
    int okb = inrange;
    for (int i = 0; i < 10; i++) okb &= abs(cnt[i] - 10000) < 500;
    CHECK(okb, "below(10): in range, buckets within 5 sigma");
    CHECK(celo_rng_below(&r, 1) == 0, "below(1) == 0");

    printf("%s\n", fails ? "FAILED" : "all ok");
    return fails ? 1 : 0;
}
