/* mathf.c — the interpreter's float32 exp (runtime/mathf.h says how, and why every back end agrees). */
#include "mathf.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

const double celo_exp_poly[CELO_EXP_NPOLY] = {
    0x1.1eed8eff8d898p-29, /* 1/12! */
    0x1.ae64567f544e4p-26, /* 1/11! */
    0x1.27e4fb7789f5cp-22, /* 1/10! */
    0x1.71de3a556c734p-19, /* 1/9! */
    0x1.a01a01a01a01ap-16, /* 1/8! */
    0x1.a01a01a01a01ap-13, /* 1/7! */
    0x1.6c16c16c16c17p-10, /* 1/6! */
    0x1.1111111111111p-7,  /* 1/5! */
    0x1.5555555555555p-5,  /* 1/4! */
    0x1.5555555555555p-3,  /* 1/3! */
    0x1.0000000000000p-1,  /* 1/2! */
    0x1.0000000000000p+0,  /* 1/1! */
    0x1.0000000000000p+0,  /* 1/0! */
};

float celo_expf(float xf)
{
    if (isnan(xf))
        return xf;
    double x = fmin(fmax((double)xf, CELO_EXP_LO), CELO_EXP_HI);
    double k = rint(x * CELO_LOG2E);
    double r = (x - k * CELO_LN2_HI) - k * CELO_LN2_LO;
    double p = celo_exp_poly[0];
    for (int i = 1; i < CELO_EXP_NPOLY; i++)
        p = p * r + celo_exp_poly[i];
    uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double s;
    memcpy(&s, &bits, sizeof s);
    return (float)(p * s);
}
