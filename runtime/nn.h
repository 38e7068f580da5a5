/*
 * nn.h — celo's models: layers with hand-written backward passes, and the models built from them.
 *
 * Train a small MLP classifier with plain SGD:
 *
 *     #include "nn.h"
 *
 *     celo_model_config cfg = {.kind = CELO_MODEL_MLP,
 *                              .mlp = {.in = 64, .nhidden = 1, .hidden = {32}, .out = 10, .act = CELO_ACT_RELU}};
 *     char err[256];
 *     celo_model *m = celo_model_create(&cfg, 1234, err, sizeof err);   // NULL + message on a bad config
 *     float *p = celo_model_params(m), *g = celo_model_grads(m);       // one contiguous buffer each
 *     for (int step = 0; step < 1000; step++) {
 *         celo_batch b = {.n = 64, .x = images, .labels = labels};      // x: [64, 64] floats, labels: [64]
 *         float loss = celo_model_loss(m, &b);                         // forward + loss; NAN on bad input
 *         celo_model_backward(m);                                      // zeroes, then fills g
 *         for (int64_t i = 0; i < celo_model_nparams(m); i++) p[i] -= 0.1f * g[i];
 *     }
 *     celo_model_free(m);
 *
 * An optimizer compiled by celo runs per tensor: celo_model_tensor(m, i) names each parameter tensor
 * ("fc1.weight"), gives its shape (for celo_state_new) and its offset in the parameter and gradient buffers:
 *
 *     for (int i = 0; i < celo_model_ntensors(m); i++) {
 *         const celo_param_tensor *t = celo_model_tensor(m, i);
 *         celo_step(prog, state[i], p + t->offset, g + t->offset, hp, step, NULL);
 *     }
 *
 * Conventions
 *   - Everything is batch-major and contiguous, C order, float32: rows [N, features], images [N, C, H, W],
 *     sequences [B, T, C]. Parameters use torch's layouts and names (linear weight [out, in], conv weight
 *     [K, C, kh, kw], LSTM gate order i, f, g, o), so a torch state_dict maps onto the parameter buffer
 *     tensor by tensor (tests/reference/gen_nn.py does exactly that).
 *   - Layer functions take every buffer from the caller and keep no state: re-entrant, no globals. They split
 *     large work over the OpenMP threads celo_set_threads chose (GEMMs through OpenBLAS, one call per thread),
 *     always so that results are bit for bit the same for any number of threads.
 *   - Backward functions ACCUMULATE (+=) into every gradient they write (dx, dw, db); the caller zeroes.
 *     A NULL gradient pointer skips that gradient (e.g. dx of the first layer). Buffers described as
 *     "scratch" are overwritten.
 *   - Every function here also exists in double precision, with the suffix _f64 and double in place of
 *     float (runtime/nn/nn_f64.h): the same source compiled twice (runtime/nn/layers.inc, models.inc). The
 *     double build uses a plain-loop GEMM instead of OpenBLAS; the tests check gradients in it by finite
 *     differences, and compare the float build against it.
 */
#ifndef CELO_NN_H
#define CELO_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== layers ================================================================================================ */

/* linear: y[N, out] = x[N, in] w[out, in]^T + b[out]   (b may be NULL: no bias) */
void celo_nn_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int in, int out);
void celo_nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                             int in, int out);

/* element-wise activations over n values. relu and gelu differentiate at x, tanh at its output y.
 * gelu is the tanh approximation, torch.nn.functional.gelu(x, approximate='tanh'):
 *     gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))                                                 */
void celo_nn_relu_forward(float *y, const float *x, int64_t n);
void celo_nn_relu_backward(float *dx, const float *x, const float *dy, int64_t n);
void celo_nn_gelu_forward(float *y, const float *x, int64_t n);
void celo_nn_gelu_backward(float *dx, const float *x, const float *dy, int64_t n);
void celo_nn_tanh_forward(float *y, const float *x, int64_t n);
void celo_nn_tanh_backward(float *dx, const float *y, const float *dy, int64_t n);

/* softmax cross-entropy over N rows of C logits with integer labels in [0, C): returns the mean over the rows
 * of -log softmax(logits)[label] and stores the softmax in probs[N, C] for the backward pass, which adds
 * dloss * (probs - onehot(label)) / N to dlogits. (torch.nn.functional.cross_entropy, reduction='mean') */
float celo_nn_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int N, int C);
void celo_nn_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int N, int C,
                                   float dloss);

/* mean squared error over n values: mean((pred - target)^2) (torch.nn.functional.mse_loss, reduction='mean') */
float celo_nn_mse_forward(const float *pred, const float *target, int64_t n);
void celo_nn_mse_backward(float *dpred, const float *pred, const float *target, int64_t n, float dloss);

/* layer normalization of N rows of C values, eps = 1e-5 as torch: y = (x - mean) * rstd * w + b.
 * mean[N] and rstd[N] = 1/sqrt(var + eps) (biased variance) are saved for the backward pass. */
void celo_nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                               int N, int C);
void celo_nn_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                                const float *rstd, const float *w, int N, int C);

/* embedding: y[i, :] = table[ids[i], :] for N ids; the backward pass scatter-adds dy into dtable. */
void celo_nn_embedding_forward(float *y, const int32_t *ids, const float *table, int N, int C);
void celo_nn_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int N, int C);

/* 2-d convolution, as torch.nn.Conv2d (cross-correlation, zero padding, no dilation or groups):
 *     x [N, C, H, W],  w [K, C, kh, kw],  b [K] (may be NULL),  y [N, K, Ho, Wo],
 *     Ho = (H + 2 pad - kh) / stride + 1,  Wo = (W + 2 pad - kw) / stride + 1.
 * Image by image: im2col gathers the receptive fields into col [C kh kw, Ho Wo], then one GEMM
 * y_n[K, Ho Wo] = w[K, C kh kw] col. The backward pass recomputes col, and uses dcol of the same size. */
typedef struct {
    int N, C, H, W;             /* input */
    int K, kh, kw, stride, pad; /* K output channels, kernel kh x kw */
} celo_conv2d_dims;
int celo_conv2d_out_h(const celo_conv2d_dims *d);
int celo_conv2d_out_w(const celo_conv2d_dims *d);
int64_t celo_conv2d_col_size(const celo_conv2d_dims *d); /* elements of col (and of dcol): C kh kw Ho Wo */
void celo_nn_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
                            const celo_conv2d_dims *d);
void celo_nn_conv2d_backward(float *dx, float *dw, float *db, float *col, float *dcol, const float *dy, const float *x,
                             const float *w, const celo_conv2d_dims *d);

/* pooling over non-overlapping k x k windows (stride k, as torch's max_pool2d / avg_pool2d with kernel k):
 * x [N, C, H, W] -> y [N, C, H/k, W/k] (rounded down: the last rows / columns that do not fill a window are
 * dropped). Max pooling saves, per output, the index h W + w of the maximum within its input plane. */
void celo_nn_maxpool_forward(float *y, int32_t *argmax, const float *x, int N, int C, int H, int W, int k);
void celo_nn_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int N, int C, int H, int W, int k);
void celo_nn_avgpool_forward(float *y, const float *x, int N, int C, int H, int W, int k);
void celo_nn_avgpool_backward(float *dx, const float *dy, int N, int C, int H, int W, int k);

/* multi-head causal self-attention over x [B, T, C] with nh heads of C/nh channels (GPT-2's):
 *     qkv[B, T, 3C] = x wqkv[3C, C]^T + bqkv        (q, k, v side by side; head h owns channels h C/nh...)
 *     att[B, nh, T, T] = softmax over s <= t of q_t . k_s / sqrt(C/nh)   (zero for s > t)
 *     out[B, T, C]  = att v                         (heads side by side)
 *     y[B, T, C]    = out wo[C, C]^T + bo
 * The forward pass saves qkv, att and out; the backward pass uses dqkv [B, T, 3C], dout [B, T, C] and
 * datt [B, nh, T, T] as scratch. The per-head products are GEMMs on strided views of qkv. */
void celo_nn_attention_forward(float *y, float *qkv, float *att, float *out, const float *x, const float *wqkv,
                               const float *bqkv, const float *wo, const float *bo, int B, int T, int C, int nh);
void celo_nn_attention_backward(float *dx, float *dwqkv, float *dbqkv, float *dwo, float *dbo, float *dqkv, float *dout,
                                float *datt, const float *dy, const float *x, const float *qkv, const float *att,
                                const float *out, const float *wqkv, const float *wo, int B, int T, int C, int nh);

/* Generation with a key/value cache: one token of each of B sequences at position pos (0-based), x [B, C] ->
 * y [B, C], the same layer (wqkv, bqkv, wo, bo) as celo_nn_attention_forward. kcache and vcache [B, nh, cap, hs]
 * (pos < cap) hold the keys and values of positions 0 .. pos - 1; the step writes the token's own at pos, then
 * attends over positions 0 .. pos. Its cost grows with pos (linattn and mamba steps cost the same at any pos).
 * work: celo_attention_step_work_size reals. Steps 0 .. T-1 give celo_nn_attention_forward's rows up to rounding. */
static inline int64_t celo_attention_step_work_size(int B, int C, int nh, int cap)
{
    return (int64_t)B * 4 * C + (int64_t)B * nh * cap; /* qkv [B, 3C], out [B, C], scores [B, nh, cap] */
}
void celo_nn_attention_step(float *y, float *kcache, float *vcache, float *work, const float *x, const float *wqkv,
                            const float *bqkv, const float *wo, const float *bo, int B, int C, int nh, int pos,
                            int cap);

/* LSTM over x [B, T, In] with H hidden units, as torch.nn.LSTM(In, H, batch_first=True) with zero initial
 * state: wih [4H, In], whh [4H, H], bih [4H], bhh [4H], gate order i, f, g, o:
 *     i, f, o = sigmoid(.), g = tanh(.) of  x_t wih^T + bih + h_{t-1} whh^T + bhh
 *     c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
 * Outputs h [B, T, H]; saves c [B, T, H] and the activated gates [B, T, 4H]. The backward pass
 * (through time) takes dy = dL/dh [B, T, H] and uses dgates [B, T, 4H], dh [B, H], dc [B, H] as scratch. */
void celo_nn_lstm_forward(float *h, float *c, float *gates, const float *x, const float *wih, const float *whh,
                          const float *bih, const float *bhh, int B, int T, int In, int H);
void celo_nn_lstm_backward(float *dx, float *dwih, float *dwhh, float *dbih, float *dbhh, float *dgates, float *dh,
                           float *dc, const float *dy, const float *x, const float *h, const float *c,
                           const float *gates, const float *wih, const float *whh, int B, int T, int In, int H);

/* ---- causal linear attention (runtime/nn/linattn.inc; docs/distill.md) ----
 * The same projections as the softmax attention above (c_attn: qkv = x wqkv^T + bqkv, c_proj: y = out wo^T + bo),
 * with the softmax replaced by a feature map phi on queries and keys. Per head, with q, k, v of hs channels:
 *     out_t = sum_{s<=t} (phi_q(q_t) . phi_k(k_s)) v_s / (sum_{s<=t} phi_q(q_t) . phi_k(k_s) + eps)
 * eps = CELO_LINATTN_EPS, added to the denominator only (it keeps an all-zero denominator finite; it does not
 * bound phi away from zero). No 1/sqrt(hs) scale on q, k (as LoLCATs): a learned phi absorbs any scale.
 * Feature maps (D = the feature dimension), one map for queries and one for keys, each shared by the heads:
 *     identity  phi(x) = x                                        D = hs, no parameters
 *     elu       phi(x) = elu(x) + 1                               D = hs, no parameters
 *     mlp       phi(x) = sigmoid(W x + b), W [hs, hs], b [hs]     D = hs
 *     hedgehog  phi(x) = [softmax(W x), softmax(-W x)], W [hs, hs] D = 2 hs (each half sums to 1)
 * The learned maps' tensors follow c_attn and c_proj: feature_q.weight (, feature_q.bias), feature_k.weight (,
 * feature_k.bias). w below lists the layer's tensors in that order: wqkv, bqkv, wo, bo, then the map's.
 *
 * Training runs the chunked parallel form: per chunk of `chunk` tokens the masked quadratic form inside the chunk
 * plus the running state S = sum phi(k_s) v_s^T [D, hs] and z = sum phi(k_s) [D] of the chunks before. Generation
 * runs the recurrent form, one token at a time from (S, z) (celo_nn_linattn_step). Both compute the formula
 * above; they differ only in rounding. */
#define CELO_LINATTN_EPS   1e-6
#define CELO_LINATTN_CHUNK 64 /* tokens per chunk when a config says 0 */

typedef enum {
    CELO_FEATURE_IDENTITY = 0,
    CELO_FEATURE_ELU,
    CELO_FEATURE_MLP,
    CELO_FEATURE_HEDGEHOG,
} celo_feature_map;

typedef struct {
    int B, T, C, nh; /* B sequences of T tokens, width C, nh heads of hs = C / nh */
    celo_feature_map feature;
    int chunk; /* tokens per chunk of the parallel form (0: CELO_LINATTN_CHUNK) */
} celo_linattn_dims;

int celo_linattn_feature_dim(celo_feature_map f, int hs); /* D */
int celo_linattn_ntensors(celo_feature_map f);            /* 4 + the map's: 4, 4, 8, 6 */
/* reals saved by the forward pass for the backward pass: qkv [B T, 3C], phi(q), phi(k) [B, nh, T, D] each,
 * the heads' outputs [B T, C] and denominators [B, nh, T]; the backward pass takes a scratch of the same size */
int64_t celo_linattn_saved_size(const celo_linattn_dims *d);
int64_t celo_linattn_work_size(const celo_linattn_dims *d); /* scratch reals of forward and backward */
void celo_nn_linattn_forward(float *y, float *saved, float *work, const float *x, const float *const *w,
                             const celo_linattn_dims *d);
/* accumulates (+=) into dx and the tensors' gradients dw (same order as w) */
void celo_nn_linattn_backward(float *dx, float *const *dw, float *dsaved, float *work, const float *dy, const float *x,
                              const float *saved, const float *const *w, const celo_linattn_dims *d);
/* The recurrent form: one token of each of d->B sequences, x [B, C] -> y [B, C], from and into state
 * [B, nh, D (hs + 1)] (per head S [D, hs] then z [D]; zero before a sequence's first token). d->T is ignored. */
int64_t celo_linattn_state_size(const celo_linattn_dims *d);
int64_t celo_linattn_step_work_size(const celo_linattn_dims *d);
void celo_nn_linattn_step(float *y, float *state, float *work, const float *x, const float *const *w,
                          const celo_linattn_dims *d);

/* ---- the Mamba mixer: a selective state-space scan (runtime/nn/mamba.inc; docs/distill.md) ----
 * Mamba-2 / SSD style (research notes §2.4–2.6): one scalar decay per head, so the scan has a chunked matrix form
 * made of GEMMs. x [B, T, C] -> y [B, T, C]; nh heads; per head P = expand C / nh channels (Di = expand C in all)
 * and B, C paths of N channels each before the feature map (Nf = celo_linattn_feature_dim(feature, N) after).
 *     [xv, b, c, zg, dt] = u in_proj^T + in_proj_b          widths Di, nh N, nh N, Di, nh (rows of in_proj, in order)
 *     [xv, b, c] = causal depthwise conv over time, K taps, no activation:
 *                  v_t = conv_b + sum_{j<K} conv_w[j] v_{t-K+1+j} (zero before the first token)
 *     per head h:  B_t = phi_k(b_{t,h}), C_t = phi_q(c_{t,h})                (the linattn feature maps, hs -> N)
 *                  delta_t = softplus(dt_{t,h}),  a_t = exp(delta_t A_h),  A_h = -exp(A_log_h)
 *                  H_t = a_t H_{t-1} + delta_t B_t xv_{t,h}^T               ([Nf, P], H_0 = 0)
 *                  o_t = H_t^T C_t          normalize: o_t = H_t^T C_t / (z_t . C_t + eps),
 *                                           z_t = a_t z_{t-1} + delta_t B_t (the all-ones value channel)
 *                  o_t += D_h xv_{t,h}
 *     gate:        o = o * 2 sigmoid(zg)    (1 at zg = 0: zero gate weights make it an identity; SiLU cannot be one)
 *     y = o out_proj^T + out_proj_b
 * eps = CELO_LINATTN_EPS. Tensors of a layer, in this order (w below, the model's names after the module's):
 *     in_proj.weight [2 Di + 2 nh N + nh, C], in_proj.bias [same], conv.weight [Di + 2 nh N, 1, K],
 *     conv.bias [Di + 2 nh N], A_log [nh], D [nh], then the map's tensors as linattn's with hs -> N
 *     (feature_q.weight [N, N] (, feature_q.bias [N]), feature_k.weight (, .bias)), out_proj.weight [C, Di],
 *     out_proj.bias [C].
 * Training runs the chunked form (chunk tokens per chunk); celo_nn_mamba_forward_naive is the sequential scan
 * above, token by token, the reference; celo_nn_mamba_step the recurrent form for generation. */
#define CELO_MAMBA_CHUNK 32 /* bench/mamba/layer.sh: 32 ran 2-9 % faster than 64 (less work in the masked products) */

typedef struct {
    int B, T, C, nh;          /* B sequences of T tokens, width C, nh heads */
    int N, K, expand;         /* B/C width per head before the map (0: C / nh), conv taps (0: 4), expand (0: 1) */
    celo_feature_map feature; /* on B and C */
    int normalize;            /* divide by the all-ones channel's scan */
    int chunk;                /* tokens per chunk of the parallel form (0: CELO_MAMBA_CHUNK) */
} celo_mamba_dims;

int celo_mamba_ntensors(celo_feature_map f);             /* 8 + the map's tensors */
int64_t celo_mamba_saved_size(const celo_mamba_dims *d); /* reals the forward pass keeps for backward */
int64_t celo_mamba_work_size(const celo_mamba_dims *d);  /* scratch reals of forward and backward */
void celo_nn_mamba_forward(float *y, float *saved, float *work, const float *x, const float *const *w,
                           const celo_mamba_dims *d);
void celo_nn_mamba_forward_naive(float *y, float *saved, float *work, const float *x, const float *const *w,
                                 const celo_mamba_dims *d);
/* accumulates (+=) into dx (may be NULL) and dw (same order as w; an entry may be NULL) */
void celo_nn_mamba_backward(float *dx, float *const *dw, float *dsaved, float *work, const float *dy, const float *x,
                            const float *saved, const float *const *w, const celo_mamba_dims *d);
/* one token of each of d->B sequences, x [B, C] -> y [B, C], from and into state (zero before the first token):
 * per sequence the last K - 1 conv inputs, then per head H [Nf, P] and z [Nf] */
int64_t celo_mamba_state_size(const celo_mamba_dims *d);
int64_t celo_mamba_step_work_size(const celo_mamba_dims *d);
void celo_nn_mamba_step(float *y, float *state, float *work, const float *x, const float *const *w,
                        const celo_mamba_dims *d);

/* ==== models ================================================================================================ */

/* The five kinds below are block lists built from their configs (runtime/nn/params.c; the taps: celo_model_tap);
 * any other list: celo_model_create_desc. */
typedef enum {
    CELO_MODEL_MLP = 1,     /* cfg.mlp: in -> hidden... -> out, activation after each hidden layer */
    CELO_MODEL_CONVNET,     /* cfg.conv: (conv -> relu -> pool) x 2 -> linear */
    CELO_MODEL_GPT,         /* cfg.gpt: transformer language model */
    CELO_MODEL_LSTM,        /* cfg.lstm: LSTM language model */
    CELO_MODEL_AUTOENCODER, /* cfg.mlp: in -> hidden... -> in, MSE against the input (out and loss ignored) */
} celo_model_kind;

typedef enum { CELO_ACT_RELU = 0, CELO_ACT_GELU, CELO_ACT_TANH } celo_activation;
typedef enum { CELO_LOSS_CROSS_ENTROPY = 0, CELO_LOSS_MSE } celo_loss_kind;
typedef enum { CELO_POOL_MAX = 0, CELO_POOL_AVG } celo_pool_kind;

#define CELO_MLP_MAX_HIDDEN 8

typedef struct {
    int in, nhidden, hidden[CELO_MLP_MAX_HIDDEN], out;
    celo_activation act;
    celo_loss_kind loss; /* cross-entropy over out classes (labels), or MSE against batch.target [n, out] */
} celo_mlp_config;

/* Input [n, channels, height, width]. Convolutions: kernel x kernel (odd), stride 1, padding kernel/2 (same
 * size); pools 2 x 2. Then the flattened [conv2, height/4, width/4] features (torch's flatten order) go
 * through a linear layer to out classes. E.g. {1, 28, 28, 8, 16, 3, CELO_POOL_MAX, 10} for MNIST. */
typedef struct {
    int channels, height, width;
    int conv1, conv2; /* output channels of the two convolutions */
    int kernel;
    celo_pool_kind pool;
    int out;
} celo_convnet_config;

typedef enum { CELO_MIXER_SOFTMAX = 0, CELO_MIXER_LINEAR, CELO_MIXER_MAMBA } celo_mixer;

/* GPT-2 style: token + learned position embeddings, `layers` pre-LayerNorm blocks
 *     x += attn(ln_1(x)); x += mlp(ln_2(x)),  mlp = linear(dim -> 4 dim), gelu (tanh approximation), linear
 * a final LayerNorm and an untied linear head without bias. Sequences of up to ctx tokens. */
typedef struct {
    int vocab, ctx, dim, heads, layers;
    int gpt2_init;            /* 0: torch's module defaults (below); 1: GPT-2's (normal 0.02, residual projections
                                 0.02/sqrt(2 layers), zero biases) */
    celo_mixer mixer;         /* the token mixer of each block: softmax attention (0), linear attention or Mamba */
    celo_feature_map feature; /* MIXER_LINEAR: its feature map (the maps' own tensors: torch's defaults) */
    int chunk;                /* MIXER_LINEAR, MAMBA: tokens per chunk (0: the layer's default) */
    int state, conv, expand;  /* MIXER_MAMBA: celo_mamba_dims's N, K, expand (0: defaults); its map: feature */
    int normalize;            /* MIXER_MAMBA: the all-ones channel's denominator */
} celo_gpt_config;

/* embedding -> `layers` stacked LSTMs (as one torch.nn.LSTM(embed, hidden, layers, batch_first=True)) ->
 * linear head to vocab logits. */
typedef struct {
    int vocab, embed, hidden, layers;
} celo_lstm_config;

typedef struct {
    celo_model_kind kind;
    union {
        celo_mlp_config mlp; /* MLP and autoencoder */
        celo_convnet_config conv;
        celo_gpt_config gpt;
        celo_lstm_config lstm;
    };
} celo_model_config;

/* ---- open model descriptions ----
 * Any model is a list of blocks; the kinds above are such lists (their taps: below, at celo_model_tap). A
 * description names each block's module (its tensors are name.weight, ...), its output (tap) and its input (an
 * earlier tap, or by default the previous block's output; the first block reads the batch's input). E.g. an MLP
 * with a residual layer:
 *
 *     celo_block_desc b[] = {
 *         {.kind = CELO_BLOCK_LINEAR, .name = "fc1", .out = 32},
 *         {.kind = CELO_BLOCK_LAYERNORM, .name = "ln"},
 *         {.kind = CELO_BLOCK_LINEAR, .name = "fc2", .out = 32},
 *         {.kind = CELO_BLOCK_ACT, .name = "h2", .act = CELO_ACT_GELU},
 *         {.kind = CELO_BLOCK_ADD, .name = "res", .from2 = "fc1"},         // res = h2 + fc1
 *         {.kind = CELO_BLOCK_LINEAR, .name = "head", .tap = "logits", .out = 10},
 *     };
 *     celo_model_desc d = {.in_ndim = 1, .in_dims = {64}, .nblocks = 6, .blocks = b};
 *     celo_model *m = celo_model_create_desc(&d, seed, err, sizeof err);
 */
typedef enum {
    CELO_BLOCK_LINEAR = 1, /* y = x w^T + b over the flattened input (torch.nn.Linear after a flatten) */
    CELO_BLOCK_ACT,        /* relu / gelu / tanh, element-wise */
    CELO_BLOCK_CONV,       /* torch.nn.Conv2d on [C, H, W] inputs */
    CELO_BLOCK_POOL,       /* max / avg pooling over k x k windows, stride k, on [C, H, W] */
    CELO_BLOCK_LAYERNORM,  /* over the last (only) dimension */
    CELO_BLOCK_EMBED,      /* token ids -> rows of a table [vocab, out] */
    CELO_BLOCK_POSITION,   /* y[b, t] = x[b, t] + table[t]: learned positions, table [ctx, width] */
    CELO_BLOCK_ATTENTION,  /* GPT-2's causal multi-head self-attention: c_attn, c_proj (nn.h attention) */
    CELO_BLOCK_ADD,        /* y = a + b (residual connections) */
    CELO_BLOCK_LSTM,       /* one layer of torch.nn.LSTM (batch_first) */
    CELO_BLOCK_LINATTN,    /* causal linear attention (nn.h linattn): c_attn, c_proj, the feature map's tensors */
    CELO_BLOCK_MAMBA,      /* the Mamba mixer (nn.h mamba): in_proj, conv, A_log, D, the map's tensors, out_proj */
} celo_block_kind;

#define CELO_TAP_NAME_MAX 48

/* What a block is (the description a model is built from); zero fields take the defaults noted. */
typedef struct {
    celo_block_kind kind;
    char name[CELO_TAP_NAME_MAX];  /* the module: its tensors are name.weight, name.bias, ... */
    char tap[CELO_TAP_NAME_MAX];   /* the output's name ("": name) */
    char from[CELO_TAP_NAME_MAX];  /* input tap ("": the previous block's output, or the model's input) */
    char from2[CELO_TAP_NAME_MAX]; /* ADD: the second input */
    int out;                       /* LINEAR: features; CONV: channels; EMBED: width; LSTM: hidden units */
    int nobias;                    /* LINEAR */
    int kernel, stride, pad;       /* CONV (stride 0: 1); POOL: kernel */
    celo_activation act;           /* ACT */
    celo_pool_kind pool;           /* POOL */
    int heads;                     /* ATTENTION, LINATTN, MAMBA */
    celo_feature_map feature;      /* LINATTN, MAMBA */
    int chunk;                     /* LINATTN, MAMBA: tokens per chunk (0: the layer's default) */
    int state, conv, expand;       /* MAMBA: celo_mamba_dims's N, K, expand (0: defaults) */
    int normalize;                 /* MAMBA */
    int vocab;                     /* EMBED: table rows */
    int ctx;                       /* POSITION: table rows (the longest sequence) */
    int layer;                     /* LSTM: torch's suffix of the layer's tensors (weight_ih_l<layer>) */
    double init_std;               /* 0: torch's default init; > 0: weights N(0, init_std), biases 0 (GPT-2's) */
    double init_std_proj;          /* ATTENTION, LINATTN with init_std > 0: c_proj.weight's std */
} celo_block_desc;

/* A model made of blocks: its input, the loss of celo_model_loss (cross-entropy on batch.labels over the last
 * tap's width, or MSE against batch.target, or with mse_input against batch.x) and the blocks in order. */
typedef struct {
    int tokens;  /* 1: the input is token ids [n, seq] (batch.tokens); 0: floats [n, in_dims...] (batch.x) */
    int in_ndim; /* floats: 1 ([features]) or 3 ([C, H, W]) */
    int64_t in_dims[3];
    celo_loss_kind loss;
    int mse_input; /* MSE against the input (an autoencoder) */
    int nblocks;
    const celo_block_desc *blocks;
} celo_model_desc;

/* One parameter tensor: its elements are params[offset .. offset + numel) (and the same range of grads). */
#define CELO_PARAM_NAME_MAX 64
typedef struct {
    char name[CELO_PARAM_NAME_MAX]; /* torch's state_dict name: "fc1.weight", "h.0.attn.c_attn.bias" */
    int ndim;
    int64_t shape[4];
    int64_t offset, numel;
} celo_param_tensor;

/* One batch. Which fields a model reads:
 *     MLP (cross-entropy), conv net   x [n, in] / [n, C, H, W],  labels [n]
 *     MLP (MSE)                       x [n, in],  target [n, out]
 *     autoencoder                     x [n, in]   (the target is x)
 *     GPT, LSTM                       tokens [n, seq],  labels [n, seq] (the next tokens); seq <= ctx for GPT
 * The model copies what it needs: the caller may reuse its buffers right after celo_model_loss (unless it asked
 * otherwise with celo_model_keep_x). */
typedef struct {
    int n;   /* examples (sequences, for the language models) */
    int seq; /* language models: tokens per sequence */
    const float *x;
    const int32_t *tokens;
    const int32_t *labels; /* integer classes / next tokens */
    const float *target;
} celo_batch;

typedef struct celo_model celo_model;

/* Create and initialize (see celo_model_init). NULL on a bad config, with a one-line reason in err. */
celo_model *celo_model_create(const celo_model_config *cfg, uint64_t seed, char *err, size_t errlen);
/* The same from a block list; its celo_model_cfg has kind 0. The description may be freed after the call. */
celo_model *celo_model_create_desc(const celo_model_desc *d, uint64_t seed, char *err, size_t errlen);
void celo_model_free(celo_model *m);
/* The checks of celo_model_create_desc without building the model (the compiler checks a .celo model description
 * with them): 0, with the output's width (elements per example, per token for sequences) in *out_width, or -1
 * with a reason in err and the index of the block at fault in *bad_block (-1: the input or the loss). */
int celo_model_check_desc(const celo_model_desc *d, int *bad_block, int64_t *out_width, char *err, size_t errlen);

/* A second model over the same parameter buffer (not a copy: an update of m's parameters is the replica's), with
 * its own gradients and activations: two halves of a batch can run forward and backward at once, one on each.
 * celo_model_init on a replica would reinitialize m's parameters. Free the replica before m. NULL with a reason
 * in err when out of memory. */
celo_model *celo_model_replica(celo_model *m, char *err, size_t errlen);

/* (Re)initialize the parameters as torch's modules do by default: linear and conv weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), embeddings N(0, 1), LayerNorm
 * weight 1 and bias 0, LSTM weights and biases U(-1/sqrt(hidden), 1/sqrt(hidden)). Tensor i draws from
 * stream i of celo_rng under `seed`, so the values do not depend on the thread count or the batch size. */
void celo_model_init(celo_model *m, uint64_t seed);

const celo_model_config *celo_model_cfg(const celo_model *m);
int64_t celo_model_nparams(const celo_model *m);
float *celo_model_params(celo_model *m); /* [nparams] */
float *celo_model_grads(celo_model *m);  /* [nparams], valid after celo_model_backward */
int celo_model_ntensors(const celo_model *m);
const celo_param_tensor *celo_model_tensor(const celo_model *m, int i);
int celo_model_find(const celo_model *m, const char *name); /* tensor index, or -1 */

/* Forward pass and loss (the mean over the batch; over every token for the language models). Keeps what the
 * backward pass needs; grows the model's activation buffers when a batch is larger than any before.
 * NAN on bad input (a label or token out of range, seq > ctx, ...): celo_model_error says why. */
float celo_model_loss(celo_model *m, const celo_batch *b);

/* on != 0: the caller promises to keep each batch's x valid and unchanged until the next celo_model_loss call,
 * and models with a float input (all but the language models) then read x in place instead of copying it
 * (celo_model_backward reads it). Off (0) by default. */
void celo_model_keep_x(celo_model *m, int on);

/* Gradient of the last loss with respect to every parameter: zeroes the gradient buffer, then fills it.
 * 0, or -1 when there is no successful loss to differentiate. */
int celo_model_backward(celo_model *m);

/* Of the last loss call: the fraction of rows whose largest logit is the label (NAN for MSE models), and the
 * output rows (logits [rows, classes], or the reconstruction / prediction for MSE models). */
float celo_model_accuracy(const celo_model *m);
const float *celo_model_output(const celo_model *m, int64_t *rows, int *cols);

/* Loss and accuracy over a large batch, `chunk` examples at a time (bounded memory): the means weighted by
 * examples. Overwrites the state of the last loss call. 0, or -1 with celo_model_error set. */
int celo_model_eval(celo_model *m, const celo_batch *b, int chunk, double *loss, double *accuracy);

const char *celo_model_error(const celo_model *m);

/* ==== taps: a model's activations by name ==================================================================
 *
 * A model is a list of blocks (runtime/nn/nn_internal.h), each writing one named activation, its tap; the last
 * tap is the output, "logits" (also for the reconstruction of MSE models; "output" finds it too). Taps of nn.h's
 * kinds, in order:
 *     mlp, autoencoder   fc1, h1, fc2, h2, ..., logits        (fc<i>: pre-activation; h<i>: after it)
 *     convnet            conv1, relu1, pool1, conv2, relu2, pool2, logits
 *     gpt                wte, embed (+ positions), then per layer l: h.l.ln_1, h.l.attn (the mixer's output, for
 *                        every mixer: the Mamba mixer's module is h.l.mamba, its tap still h.l.attn),
 *                        h.l.res1 (= input + attn), h.l.ln_2, h.l.mlp.c_fc, h.l.mlp.act, h.l.mlp, h.l (the
 *                        layer's output = res1 + mlp); then ln_f, logits
 *     lstm               embed, lstm.0, lstm.1, ..., logits
 * A layer-wise loss (distillation) reads taps after a forward pass, computes its gradient with respect to them,
 * and injects it:
 *
 *     celo_model_forward(m, &b);
 *     const float *h = celo_model_tap(m, "h.0.attn", &shape);           // [B, T, dim]
 *     ... g = dL/dh ...
 *     celo_model_backward_from(m, "h.0.attn", g);                       // grads = dL/dparams
 *
 * The blocks after the tap do not run and their parameter gradients are zero. celo_model_loss + backward is
 * exactly celo_model_forward, a loss function of nn.h on the "logits" tap, and backward_from("logits", dloss),
 * bit for bit. */

/* shape of a tap: [B, T, ...] for the language models, [B, ...] otherwise (e.g. [B, C, H, W]) */
typedef struct {
    int ndim;
    int64_t shape[5];
} celo_tap_shape;

/* Forward pass only (no loss: labels and target are not read). 0, or -1 with celo_model_error. */
int celo_model_forward(celo_model *m, const celo_batch *b);
/* The same with n taps pinned: right after the block of taps[j] runs, its output is replaced by values[j] (the
 * tap's shape), so the blocks after it read values[j]; a backward pass treats a pinned tap as a constant (no
 * gradient passes into its block). Layer-wise distillation feeds each student layer its teacher's input this way.
 * Pins last for this pass only. */
int celo_model_forward_pinned(celo_model *m, const celo_batch *b, int n, const char *const *taps,
                              const float *const *values);
int celo_model_ntaps(const celo_model *m);
const char *celo_model_tap_name(const celo_model *m, int i); /* in forward order; NULL out of range */
/* a tap of the last forward pass (or loss call), contiguous; NULL for an unknown name or before any pass */
const float *celo_model_tap(const celo_model *m, const char *name, celo_tap_shape *shape);
/* Parameter gradients of <grad, tap> (grad: the tap's shape): zeroes the gradient buffer, then fills it. Runs the
 * blocks up to the tap's backward. 0, or -1 (no forward pass, unknown tap) with celo_model_error. */
int celo_model_backward_from(celo_model *m, const char *tap, const float *grad);
/* the same for the sum of n injected gradients (layer-wise losses; one tap may appear more than once) */
int celo_model_backward_taps(celo_model *m, int n, const char *const *taps, const float *const *grads);

/* Copies into dst every parameter tensor of src whose name starting with prefix_src ("" or NULL: all) names,
 * with prefix_dst in its place, a tensor of dst of the same shape (a student initialized from its teacher:
 * prefixes "" and ""; one layer of a model into another: "h.3." and "h.0."). Returns the number copied. */
int celo_model_copy_from(celo_model *dst, const celo_model *src, const char *prefix_dst, const char *prefix_src);

/* A gpt with Mamba mixers (dst) initialized from a gpt with attention mixers (src) of the same dim, heads, layers,
 * ctx and vocabulary (docs/distill.md): everything shared is copied (celo_model_copy_from), then per layer
 *   BRIDGE (src: linear attention, dst: the same feature map, N = hs, normalize): the exact-equivalence map of
 *          research notes §1.3 — x rows of in_proj <- the value rows of c_attn, b <- key rows, c <- query rows (and
 *          their biases), feature_k/q <- src's, zg and dt weights 0, dt bias ln(e - 1) (delta = 1), A_log = -20
 *          (a = 1 in float), D = 0, conv taps [0, ..., 0, 1] and bias 0, out_proj <- c_proj; with expand > 1 each
 *          head's extra channels get zero in_proj rows and zero out_proj columns. The dst model then computes src's
 *          function up to rounding (tested).
 *   QKV    (Mamba-in-the-Llama, research notes §3.2; src softmax or linear): x <- V, b <- K, c <- Q rows,
 *          out_proj <- c_proj; every other mixer tensor keeps dst's own initialization.
 * 0, or -1 with a one-line reason in err (dst unchanged) when the shapes cannot take src's weights. */
typedef enum { CELO_MAMBA_FROM_BRIDGE = 1, CELO_MAMBA_FROM_QKV } celo_mamba_from;
int celo_model_mamba_from(celo_model *dst, const celo_model *src, celo_mamba_from how, char *err, size_t errlen);

/* ==== generation: a language model one token at a time ======================================================
 *
 * A generator runs a model whose input is token ids and whose output is next-token logits (gpt with any token
 * mixer) one token of each of B sequences per step, from the states of its token mixers: softmax attention's
 * key/value cache (a step's cost grows with the position), linear attention's and Mamba's recurrent states (a
 * step costs the same at any position). Step t's logits are the model's forward-pass logits at position t of the
 * same sequences, up to rounding (tested). The parameters are read from the model at each step.
 *
 *     celo_generator *g = celo_generator_new(m, 1, 0, err, sizeof err);   // 1 sequence, up to the model's ctx
 *     for (...) { const float *logits = celo_generator_step(g, &tok); ... tok = a choice from logits ...; }
 *     celo_generator_free(g);
 */
typedef struct celo_generator celo_generator;
/* B sequences of at most cap tokens (0: the model's context, the rows of its position table; no more than that).
 * NULL with a one-line reason in err: not a language model, a block without a step (conv, pool, lstm), bad sizes,
 * out of memory. The model must outlive the generator. */
celo_generator *celo_generator_new(celo_model *m, int B, int cap, char *err, size_t errlen);
void celo_generator_free(celo_generator *g);
/* tokens [B] at the next position -> logits [B, vocab] (valid until the next step), or NULL with
 * celo_generator_error set (a token out of range, the sequences full) */
const float *celo_generator_step(celo_generator *g, const int32_t *tokens);
void celo_generator_reset(celo_generator *g);    /* back to position 0, states cleared */
int celo_generator_pos(const celo_generator *g); /* tokens taken so far */
int celo_generator_cap(const celo_generator *g); /* the most tokens per sequence */
const char *celo_generator_error(const celo_generator *g);

/* ==== losses ================================================================================================ */

/* Losses as functions of any activation, with their gradient in the same call (dlogits / dpred may be NULL: the
 * loss only), to inject with celo_model_backward_from; the model's own loss (celo_model_loss) is exactly these.
 * Cross-entropy: the mean over `rows` rows of -log softmax(logits)[label]; dlogits = (softmax - onehot) / rows.
 * NAN when a label is out of [0, classes). MSE: mean((pred - target)^2) over n values; dpred = 2 (pred - target)
 * / n. */
float celo_loss_cross_entropy(const float *logits, const int32_t *labels, int64_t rows, int classes, float *dlogits);
float celo_loss_mse(const float *pred, const float *target, int64_t n, float *dpred);
/* Distillation's losses (docs/distill.md). KL to a teacher at temperature temp, scaled by temp^2 (Hinton et al.):
 * the mean over rows of temp^2 sum_c p_c (log p_c - log q_c), p = softmax(teacher / temp), q = softmax(logits /
 * temp); dlogits = temp (q - p) / rows (the teacher is a constant). At temp = 1 it is cross-entropy against the
 * teacher's distribution minus the teacher's entropy. Cosine: the mean over rows of 1 - cos(x_r, target_r) over
 * `width` values, norms floored at CELO_COSINE_EPS. NAN on bad sizes or temp <= 0. */
#define CELO_COSINE_EPS 1e-8
float celo_loss_kl(const float *logits, const float *teacher, int64_t rows, int classes, double temp, float *dlogits);
float celo_loss_cosine(const float *x, const float *target, int64_t rows, int width, float *dx);

#ifdef __cplusplus
}
#endif
#endif
