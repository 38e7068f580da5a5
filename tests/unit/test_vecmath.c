/* The vectorizable float math of the layers (runtime/nn/nn_internal.h) against double precision.
 * tanh (GELU, LSTM): at most 3 ulp over [-12, 12] in steps of 2^-12 and over +-[2^-40, 1] in geometric steps,
 * exact signs and saturation beyond 20, and tanh(0) = 0 (its comment states 2.49 ulp as the measured maximum).
 * exp (softmax, cross-entropy): at most 2 ulp over [-87.3, 88.7] in steps of 2^-12 (normal results), denormal
 * results within one denormal step, 0 below -104, +inf above 88.73, NaN kept. */
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
    double eworst = 0, eat = 0;
    long en = 0;
    for (double x = -87.33; x <= 88.72; x += 1.0 / 4096) {
        double e = ulp_err(celo_expf_simd((float)x), exp((double)(float)x));
        if (e > eworst)
            eworst = e, eat = x;
        en++;
    }
    double dworst = 0;
    for (double x = -103.9; x < -87.4; x += 1.0 / 1024) {
        double d = fabs((double)celo_expf_simd((float)x) - exp((double)(float)x)) / ldexp(1.0, -149);
        dworst = d > dworst ? d : dworst;
    }
    printf("exp, denormal results: max error %.2f of the smallest denormal\n", dworst);
    if (dworst > 1.0)
        printf("FAIL: exp denormal results off by more than one denormal step\n"), fails++;
    printf("exp: %ld points, max error %.2f ulp at %.6g\n", en, eworst, eat);
    if (eworst > 2.0)
        printf("FAIL: exp more than 2 ulp\n"), fails++;
    if (celo_expf_simd(0.0f) != 1.0f || celo_expf_simd(-105.0f) != 0.0f || !isinf(celo_expf_simd(100.0f)) ||
        !isnan(celo_expf_simd(NAN)))
        printf("FAIL: exp(0) != 1, or exp(-105), exp(100), exp(NaN) not 0, inf, NaN\n"), fails++;
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
