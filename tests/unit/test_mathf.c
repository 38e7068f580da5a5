/* celo_expf (runtime/mathf.h), the exp every back end computes, against long double exp rounded to float:
 * correctly rounded on every 997th float32 bit pattern (4.3 M values: normal, subnormal and zero results,
 * overflow), and its special values. The kernels' copies (llvm, opencl) are checked against it bit for bit by
 * the golden/agree tiers and test_opencl. */
#include "mathf.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

static int same(float a, float b)
{
    return (isnan(a) && isnan(b)) || !memcmp(&a, &b, sizeof a);
}

int main(void)
{
    long n = 0, off = 0;
    float first = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 997) {
        uint32_t bits = (uint32_t)u;
        float x;
        memcpy(&x, &bits, sizeof x);
        float want = (float)expl((long double)x);
        if (!same(celo_expf(x), want) && off++ == 0)
            first = x;
        n++;
    }
    if (off)
        check(0, "celo_expf correctly rounded on %ld floats: %ld differ, the first at %a", n, off, (double)first);
    else
        check(1, "celo_expf correctly rounded on %ld floats", n);
    check(celo_expf(0.0f) == 1.0f && celo_expf(-0.0f) == 1.0f, "exp(+-0) = 1");
    check(celo_expf(INFINITY) == INFINITY && celo_expf(-INFINITY) == 0.0f, "exp(inf) = inf, exp(-inf) = 0");
    check(isnan(celo_expf(NAN)), "exp(NaN) is NaN");
    check(celo_expf(88.72283f) < INFINITY && celo_expf(88.72284f) == INFINITY,
          "overflow between 88.72283 and 88.72284");
    check(celo_expf(-103.97f) > 0.0f && celo_expf(-103.98f) == 0.0f && celo_expf(-200.0f) == 0.0f,
          "the smallest denormal at -103.97, 0 below");
    check(celo_expf(1.0f) == 0x1.5bf0a8p+1f, "exp(1) = e rounded");
    return fails != 0;
}
