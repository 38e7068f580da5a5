/*
 * nn_internal.h — what the float and double builds of the models share (runtime/nn/params.c): checking a
 * config, and the table of parameter tensors with how each is initialized.
 */
#ifndef CELO_NN_INTERNAL_H
#define CELO_NN_INTERNAL_H

#include "../clones.h"
#include "../errmsg.h"
#include "../nn.h"
#include "../par.h"

#include <stdarg.h>

typedef enum { CELO_INIT_UNIFORM = 0, CELO_INIT_NORMAL, CELO_INIT_CONST } celo_nn_init_kind;

typedef struct {
    celo_param_tensor t;
    celo_nn_init_kind init;
    double a; /* UNIFORM: U(-a, a); NORMAL: N(0, a^2); CONST: the value a */
} celo_nn_tensor_spec;

/* 0, or -1 with a one-line reason in err. */
int celo_nn_check_config(const celo_model_config *cfg, char *err, size_t errlen);

/* The parameter tensors of a (checked) config, in torch's state_dict order, packed one after the other.
 * Returns their number and a malloc'ed table in *out (NULL and -1 when out of memory). */
int celo_nn_build_table(const celo_model_config *cfg, celo_nn_tensor_spec **out, int64_t *nparams);

#define celo_nn_seterr  celo_seterr /* the runtime's one error helper (errmsg.h), under the nn code's name */
#define celo_nn_vseterr celo_vseterr

/* exp in float without a branch or a libm call, for vector loops (softmax, cross-entropy). exp(z) = 2^k exp(r),
 * k = round(z / ln 2), r = z - k ln 2 (ln 2 split in two, the first part exact), |r| <= ln 2 / 2, exp(r) a degree-7
 * Taylor polynomial (truncation < 6e-9 relative). 2^k is applied as two factors 2^(k/2) 2^(k - k/2), each a normal
 * float built from its bits, so that the results that are denormal (z < -87.3) or overflow (z > 88.72, +inf) round
 * as they should; z is clamped to [-104, 89] first, beyond which exp is 0 or +inf in float anyway. NaN stays NaN.
 * tests/unit/test_vecmath.c measures its error against double-precision exp. */
static inline CELO_ALWAYS_INLINE float celo_expf_simd(float z)
{
    float zc = z >= -104.0f ? z : -104.0f; /* NaN becomes -104 here (no NaN reaches the integer conversion) */
    zc = zc <= 89.0f ? zc : 89.0f;
    float kf = zc * 1.44269504088896341f + 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    kf -= 12582912.0f;
    float r = (zc - kf * 0.693145751953125f) - kf * 1.42860682030941723e-06f;
    float p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t k = (int32_t)kf, k1 = k / 2;
    union {
        int32_t i;
        float f;
    } s1 = {.i = (k1 + 127) << 23}, s2 = {.i = (k - k1 + 127) << 23};
    float e = (s1.f * p) * s2.f;
    return z == z ? e : z;
}

/* tanh in float without a branch or a libm call, so that loops over it vectorize under `#pragma omp simd`
 * (no -ffast-math: IEEE rounding throughout). tanh|v| = -m / (m + 2), m = expm1(-2|v|), and
 * expm1(z) = 2^k (expm1(r) + 1) - 1 = 2^k expm1(r) + (2^k - 1), k = round(z / ln 2), |r| <= ln 2 / 2, expm1(r) a
 * degree-7 Taylor polynomial (truncation < 2e-8 relative); for k = 0 (|v| < 0.17) it is p(r) itself, so there is
 * no cancellation near 0. |v| is clamped at 20 (tanh = 1 in float beyond 9.01); NaN gives +-1 (gelu's v factor keeps it
 * NaN). Max error against double-precision tanh, measured over [-12, 12] in steps of 2^-16 and +-[2^-40, 1] in
 * geometric steps of 1e-5 (7.1 million points): 2.49 ulp (at -4.019). */
static inline CELO_ALWAYS_INLINE float celo_tanhf_simd(float v)
{
    union {
        float f;
        uint32_t u;
    } a = {.f = __builtin_fabsf(v)};
    a.u = a.u < 0x41a00000u ? a.u : 0x41a00000u; /* |v| <= 20 by the bits (a float compare does not vectorize) */
    float z = -2 * a.f;
    float kf = z * 1.44269504088896341f + 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    kf -= 12582912.0f;
    float r = (z - kf * 0.693145751953125f) - kf * 1.42860682030941723e-06f; /* ln 2 = hi + lo, hi exact */
    float p =
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    union {
        int32_t i;
        float f;
    } s = {.i = ((int32_t)kf + 127) << 23};
    float m = s.f * p + (s.f - 1.0f), t = -m / (m + 2.0f);
    return __builtin_copysignf(t, v);
}

#endif
