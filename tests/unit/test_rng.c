/* test_rng.c — Philox4x32-10 against Random123's known-answer vectors; moments of uniform and normal draws;
 * determinism and independence of streams. */
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int fails = 0;
static void check(int ok, const char *what, double got, double want)
{
    printf("%s %-44s got %.6g want %.6g\n", ok ? "ok  " : "FAIL", what, got, want);
    if (!ok)
        fails++;
}

int main(void)
{
    /* Random123 tests/kat_vectors: philox4x32 10 */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        celo_philox4x32(kat[k], kat[k] + 4, out);
        int ok = !memcmp(out, kat[k] + 6, sizeof out);
        char what[64];
        snprintf(what, sizeof what, "philox4x32-10 known answer %d", k);
        check(ok, what, out[0], kat[k][6]);
    }

    /* the stream layout: word 4i+j of stream s is word j of block {i, s} */
    celo_rng r;
    celo_rng_init(&r, 0x0123456789abcdefULL, 7);
    uint32_t w[12];
    for (int i = 0; i < 12; i++)
        w[i] = celo_rng_u32(&r);
    uint32_t blk[4], ctr[4] = {2, 0, 7, 0}, key[2] = {0x89abcdef, 0x01234567};
    celo_philox4x32(ctr, key, blk);
    check(!memcmp(blk, w + 8, sizeof blk), "stream layout (block 2, stream 7)", w[8], blk[0]);

    /* moments: n = 1e6 draws; standard errors of the mean 2.9e-4 (uniform) and 1e-3 (normal) */
    const int n = 1000000;
    double s = 0, s2 = 0, lo = 1, hi = 0;
    celo_rng_init(&r, 42, 0);
    for (int i = 0; i < n; i++) {
        double u = celo_rng_uniform(&r);
        s += u, s2 += u * u;
        lo = u < lo ? u : lo, hi = u > hi ? u : hi;
    }
    check(fabs(s / n - 0.5) < 2e-3, "uniform mean", s / n, 0.5);
    check(fabs(s2 / n - s * s / n / n - 1.0 / 12) < 2e-3, "uniform variance", s2 / n - s * s / n / n, 1.0 / 12);
    check(lo >= 0 && hi < 1, "uniform range [0, 1)", hi, 1);
    s = s2 = 0;
    double s4 = 0;
    for (int i = 0; i < n; i++) {
        double z = celo_rng_normal(&r);
        s += z, s2 += z * z, s4 += z * z * z * z;
    }
    check(fabs(s / n) < 6e-3, "normal mean", s / n, 0);
    check(fabs(s2 / n - 1) < 6e-3, "normal variance", s2 / n, 1);
    check(fabs(s4 / n - 3) < 4e-2, "normal fourth moment", s4 / n, 3);

    /* determinism, and different streams / seeds give different numbers */
    celo_rng a, b, c;
    celo_rng_init(&a, 5, 1), celo_rng_init(&b, 5, 1), celo_rng_init(&c, 5, 2);
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        double x = celo_rng_normal(&a), y = celo_rng_normal(&b), z = celo_rng_normal(&c);
        same &= x == y;
        diff += x != z;
    }
    check(same, "same (seed, stream): same numbers", same, 1);
    check(diff == 1000, "other stream: other numbers", diff, 1000);
    float f[1000];
    celo_rng_init(&a, 9, 3);
    celo_rng_fill_uniform(&a, f, 1000, -0.25, 0.25);
    int inrange = 1;
    for (int i = 0; i < 1000; i++)
        inrange &= f[i] >= -0.25f && f[i] <= 0.25f;
    check(inrange, "fill_uniform within [lo, hi]", inrange, 1);

    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails != 0;
}
