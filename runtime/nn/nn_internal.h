/*
 * nn_internal.h — what the float and double builds of the models share: checking a config and describing it
 * as a list of blocks (runtime/nn/params.c), building a block list into a parameter table (blocks.c).
 */
#ifndef CELO_NN_INTERNAL_H
#define CELO_NN_INTERNAL_H

#include "../clones.h"
#include "../errmsg.h"
#include "../nn.h"
#include "../par.h"

#include <stdarg.h>

typedef enum {
    CELO_INIT_UNIFORM = 0,
    CELO_INIT_NORMAL,
    CELO_INIT_CONST,
    CELO_INIT_LOG_UNIFORM, /* ln U[a, b] (Mamba's A_log: a = 1, b = 16) */
    CELO_INIT_DT_BIAS,     /* softplus^-1(max(exp(U[ln a, ln b]), 1e-4)) (Mamba-2's dt bias: a = 1e-3, b = 0.1) */
} celo_nn_init_kind;

/* How a tensor's elements are drawn (celo_model_init: tensor i from stream i of celo_rng, element by element). */
typedef struct {
    celo_param_tensor t;
    celo_nn_init_kind init;
    double a, b;  /* UNIFORM: U(-a, a); NORMAL: N(0, a^2); CONST: the value a; the others: above */
    int64_t tail; /* > 0: the last `tail` elements are drawn by tail_init, ta, tb instead (Mamba's
                     in_proj.bias: its dt rows) */
    celo_nn_init_kind tail_init;
    double ta, tb;
} celo_nn_tensor_spec;

/* 0, or -1 with a one-line reason in err. */
int celo_nn_check_config(const celo_model_config *cfg, char *err, size_t errlen);

/* ---- models as block lists (blocks.c builds them, params.c describes the five kinds of nn.h) ----
 *
 * A model is an ordered list of blocks. Block i reads one or two earlier outputs (or the batch's input), owns the
 * parameter tensors p0 .. p0 + np - 1 of the table, and writes one activation: its tap, [rows, width] where rows
 * are the examples (or the B T tokens of a sequence model) and width = the product of dims. The parameter table is
 * the blocks' tensors in block order, so a block list gives torch's state_dict order when its blocks come in the
 * order of the torch module's parameters. */

/* A built block: its description, resolved inputs, parameters and output shape. */
typedef struct {
    celo_block_desc d;
    int in, in2; /* block indices of the inputs; -1: the model's input */
    int p0, np;  /* its parameter tensors */
    int ndim;    /* dims of one row of the output ([C, H, W] for images, [features] otherwise) */
    int64_t dims[3];
    int64_t width;    /* elements of one row of the output */
    int64_t in_width; /* ... of the (first) input */
} celo_nn_block;

typedef enum { CELO_NN_LOSS_CE = 0, CELO_NN_LOSS_MSE, CELO_NN_LOSS_MSE_INPUT } celo_nn_loss;

/* A model's structure: input, blocks, parameter table and the loss of the convenience API (celo_model_loss). */
typedef struct {
    int tokens;  /* the input is token ids [B, T] (sequence models); else floats [B, in_dims] */
    int in_ndim; /* floats: 1 ([features]) or 3 ([C, H, W]) */
    int64_t in_dims[3], in_width;
    celo_nn_loss loss; /* CE: against labels over the last tap's width; MSE: against batch.target; MSE_INPUT: x */
    int nblocks;
    celo_nn_block *blocks;
    int ntensors;
    celo_nn_tensor_spec *spec; /* in block order, packed one after the other */
    int64_t nparams;
    int failed; /* after celo_nn_net_build fails: the block at fault, or -1 (the input or the loss) */
} celo_nn_net;

/* Builds net from nblocks descriptions after net's input and loss fields are set: resolves the inputs, checks
 * kinds and shapes, and lays out the parameter table. 0, or -1 with a reason in err (net freed). */
int celo_nn_net_build(celo_nn_net *net, const celo_block_desc *descs, int nblocks, char *err, size_t errlen);
void celo_nn_net_free(celo_nn_net *net);
/* a copy of a built net (replicas), 0 or -1 when out of memory */
int celo_nn_net_copy(celo_nn_net *dst, const celo_nn_net *src);
/* the block whose tap is `name` ("output": the last block), or -1 */
int celo_nn_net_find_tap(const celo_nn_net *net, const char *name);

/* The net of a description (nn.h). 0, or -1 with a reason in err. */
int celo_nn_net_from_desc(const celo_model_desc *d, celo_nn_net *net, char *err, size_t errlen);

/* The block list of a (checked) config of one of nn.h's model kinds. 0, or -1 with a reason in err. */
int celo_nn_describe(const celo_model_config *cfg, celo_nn_net *net, char *err, size_t errlen);

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

/* The Mamba mixer's sizes (nn.h) with the defaults filled in, and the layout of its saved buffer: in_proj's output
 * proj [B T, W], the conv's xbc [B T, Cx], phi [B, nh, 2, T, Nf] (phi_q(c) then phi_k(b) per head), the heads'
 * scan outputs out [B T, Di] (normalized, before D and the gate), den [B, nh, T] (1 without normalize), the gated
 * og [B T, Di + 1] (out_proj's input, and a column of ones), xa [B T, C + 1] (in_proj's input x, and a column of
 * ones): the projections' biases as one more input column, so that a product adds them in forward and sums their
 * gradients backward without passes of their own. wbh: scratch reals per (sequence, head); convw: where the scratch's
 * conv part starts (after the heads': the conv weights and their gradient, each transposed to [K, Cx], then the conv
 * backward's partial sums per MB_CONV_BLOCK rows). runtime/nn/mamba.c. */
enum { MB_CONV_BLOCK = 256 };
typedef struct {
    int B, T, C, nh, N, K, E, Di, P, Nf, Pv, W, Cx, L, nt, normalize;
    int64_t proj, xbc, phi, out, den, og, xa, saved, wbh, convw, augw, work;
} celo_mamba_shape;
void celo_mamba_shape_of(const celo_mamba_dims *d, celo_mamba_shape *s);

#endif
