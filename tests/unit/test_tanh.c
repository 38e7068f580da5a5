/* The vectorizable float tanh of the GELU layers (runtime/nn/nn_internal.h) against double-precision tanh:
 * at most 3 ulp over [-12, 12] in steps of 2^-12 and over +-[2^-40, 1] in geometric steps, exact signs and
 * saturation beyond 20, and tanh(0) = 0. (Its comment states 2.49 ulp as the measured maximum.) */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>

static double ulp_err(float got, double want)
{
    float w = (float)want;
    double ulp = (double)nextafterf(fabsf(w), INFINITY) - (double)fabsf(w);
    return fabs((double)got - want) / ulp;
}

int main(void)
{
    double worst = 0, at = 0;
    long n = 0;
    for (double x = -12.0; x <= 12.0; x += 1.0 / 4096) {
        double e = ulp_err(celo_tanhf_simd((float)x), tanh((double)(float)x));
        if (e > worst)
            worst = e, at = x;
        n++;
    }
    for (double x = ldexp(1.0, -40); x <= 1.0; x *= 1.0001) {
        for (int s = -1; s <= 1; s += 2) {
            float xf = (float)(s * x);
            double e = ulp_err(celo_tanhf_simd(xf), tanh((double)xf));
            if (e > worst)
                worst = e, at = xf;
            n++;
        }
    }
    int fails = 0;
    printf("tanh: %ld points, max error %.2f ulp at %.6g\n", n, worst, at);
    if (worst > 3.0)
        printf("FAIL: more than 3 ulp\n"), fails++;
    if (celo_tanhf_simd(0.0f) != 0.0f)
        printf("FAIL: tanh(0) != 0\n"), fails++;
    if (celo_tanhf_simd(30.0f) != 1.0f || celo_tanhf_simd(-30.0f) != -1.0f)
        printf("FAIL: no saturation at +-30\n"), fails++;
    printf("%s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
