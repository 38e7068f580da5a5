/* mathf.h — float32 functions that every back end computes the same way, bit for bit.
 *
 * exp of a float32 x: in double, from the exact argument, rounded to float once. k = rint(x log2 e),
 * r = (x - k ln2_hi) - k ln2_lo (|r| <= ln2 / 2; ln2_hi has trailing zeros, so k ln2_hi is exact), e^r by Horner
 * in the Taylor coefficients 1/12! … 1/0! (truncation under 2^-52 relative), times 2^k built from its bits.
 * Error well under 2^-50 relative before the final rounding: correctly rounded but for results within that
 * distance of a midpoint between floats. The interpreter (celo_expf), the LLVM kernels (the same operations,
 * emitted inline so that they vectorize: libm's expf is a call per element) and OpenCL devices with double
 * precision (the same template) perform the same double operations in the same order, without contraction, so
 * they agree exactly. Arguments are clamped to [-104, 89] first (below, e^x rounds to 0; above, to infinity),
 * which keeps k and 2^k in range; NaN stays NaN. */
#ifndef CELO_MATHF_H
#define CELO_MATHF_H

#define CELO_EXP_LO    -104.0
#define CELO_EXP_HI    89.0
#define CELO_LOG2E     0x1.71547652b82fep+0
#define CELO_LN2_HI    0x1.62e42fee00000p-1  /* ln 2 to 32 bits */
#define CELO_LN2_LO    0x1.a39ef35793c76p-33 /* the rest, rounded */
#define CELO_EXP_NPOLY 13                    /* coefficients 1/n!, n = 12 … 0, Horner order */

extern const double celo_exp_poly[CELO_EXP_NPOLY];

float celo_expf(float x);

#endif
