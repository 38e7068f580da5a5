/*
 * nn_f64.h — the layers and models of nn.h in double precision, for tests (finite differences, references).
 * Same source as the float build (layers.inc, models.inc); same meaning, see nn.h. The configs and the
 * parameter table (celo_model_config, celo_param_tensor, celo_conv2d_dims) are shared with nn.h.
 */
#ifndef CELO_NN_F64_H
#define CELO_NN_F64_H

#include "../nn.h"

#ifdef __cplusplus
extern "C" {
#endif

void celo_nn_linear_forward_f64(double *y, const double *x, const double *w, const double *b, int N, int in, int out);
void celo_nn_linear_backward_f64(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                                 int N, int in, int out);
void celo_nn_relu_forward_f64(double *y, const double *x, int64_t n);
void celo_nn_relu_backward_f64(double *dx, const double *x, const double *dy, int64_t n);
void celo_nn_gelu_forward_f64(double *y, const double *x, int64_t n);
void celo_nn_gelu_backward_f64(double *dx, const double *x, const double *dy, int64_t n);
void celo_nn_tanh_forward_f64(double *y, const double *x, int64_t n);
void celo_nn_tanh_backward_f64(double *dx, const double *y, const double *dy, int64_t n);
double celo_nn_crossentropy_forward_f64(double *probs, const double *logits, const int32_t *labels, int N, int C);
void celo_nn_crossentropy_backward_f64(double *dlogits, const double *probs, const int32_t *labels, int N, int C,
                                       double dloss);
double celo_nn_mse_forward_f64(const double *pred, const double *target, int64_t n);
void celo_nn_mse_backward_f64(double *dpred, const double *pred, const double *target, int64_t n, double dloss);
void celo_nn_layernorm_forward_f64(double *y, double *mean, double *rstd, const double *x, const double *w,
                                   const double *b, int N, int C);
void celo_nn_layernorm_backward_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                                    const double *mean, const double *rstd, const double *w, int N, int C);
void celo_nn_embedding_forward_f64(double *y, const int32_t *ids, const double *table, int N, int C);
void celo_nn_embedding_backward_f64(double *dtable, const double *dy, const int32_t *ids, int N, int C);
void celo_nn_conv2d_forward_f64(double *y, double *col, const double *x, const double *w, const double *b,
                                const celo_conv2d_dims *d);
void celo_nn_conv2d_backward_f64(double *dx, double *dw, double *db, double *col, double *dcol, const double *dy,
                                 const double *x, const double *w, const celo_conv2d_dims *d);
void celo_nn_maxpool_forward_f64(double *y, int32_t *argmax, const double *x, int N, int C, int H, int W, int k);
void celo_nn_maxpool_backward_f64(double *dx, const double *dy, const int32_t *argmax, int N, int C, int H, int W,
                                  int k);
void celo_nn_avgpool_forward_f64(double *y, const double *x, int N, int C, int H, int W, int k);
void celo_nn_avgpool_backward_f64(double *dx, const double *dy, int N, int C, int H, int W, int k);
void celo_nn_attention_forward_f64(double *y, double *qkv, double *att, double *out, const double *x,
                                   const double *wqkv, const double *bqkv, const double *wo, const double *bo, int B,
                                   int T, int C, int nh);
void celo_nn_attention_backward_f64(double *dx, double *dwqkv, double *dbqkv, double *dwo, double *dbo, double *dqkv,
                                    double *dout, double *datt, const double *dy, const double *x, const double *qkv,
                                    const double *att, const double *out, const double *wqkv, const double *wo, int B,
                                    int T, int C, int nh);
void celo_nn_attention_step_f64(double *y, double *kcache, double *vcache, double *work, const double *x,
                                const double *wqkv, const double *bqkv, const double *wo, const double *bo, int B,
                                int C, int nh, int pos, int cap);
void celo_nn_lstm_forward_f64(double *h, double *c, double *gates, const double *x, const double *wih,
                              const double *whh, const double *bih, const double *bhh, int B, int T, int In, int H);
void celo_nn_lstm_backward_f64(double *dx, double *dwih, double *dwhh, double *dbih, double *dbhh, double *dgates,
                               double *dh, double *dc, const double *dy, const double *x, const double *h,
                               const double *c, const double *gates, const double *wih, const double *whh, int B, int T,
                               int In, int H);

void celo_nn_linattn_forward_f64(double *y, double *saved, double *work, const double *x, const double *const *w,
                                 const celo_linattn_dims *d);
void celo_nn_linattn_backward_f64(double *dx, double *const *dw, double *dsaved, double *work, const double *dy,
                                  const double *x, const double *saved, const double *const *w,
                                  const celo_linattn_dims *d);
void celo_nn_linattn_step_f64(double *y, double *state, double *work, const double *x, const double *const *w,
                              const celo_linattn_dims *d);

void celo_nn_mamba_forward_f64(double *y, double *saved, double *work, const double *x, const double *const *w,
                               const celo_mamba_dims *d);
void celo_nn_mamba_forward_naive_f64(double *y, double *saved, double *work, const double *x, const double *const *w,
                                     const celo_mamba_dims *d);
void celo_nn_mamba_backward_f64(double *dx, double *const *dw, double *dsaved, double *work, const double *dy,
                                const double *x, const double *saved, const double *const *w, const celo_mamba_dims *d);
void celo_nn_mamba_step_f64(double *y, double *state, double *work, const double *x, const double *const *w,
                            const celo_mamba_dims *d);

typedef struct {
    int n, seq;
    const double *x;
    const int32_t *tokens;
    const int32_t *labels;
    const double *target;
} celo_batch_f64;

typedef struct celo_model_f64 celo_model_f64;

celo_model_f64 *celo_model_create_f64(const celo_model_config *cfg, uint64_t seed, char *err, size_t errlen);
celo_model_f64 *celo_model_create_desc_f64(const celo_model_desc *d, uint64_t seed, char *err, size_t errlen);
void celo_model_free_f64(celo_model_f64 *m);
celo_model_f64 *celo_model_replica_f64(celo_model_f64 *m, char *err, size_t errlen);
void celo_model_init_f64(celo_model_f64 *m, uint64_t seed); /* the float model's values, exactly */
const celo_model_config *celo_model_cfg_f64(const celo_model_f64 *m);
int64_t celo_model_nparams_f64(const celo_model_f64 *m);
double *celo_model_params_f64(celo_model_f64 *m);
double *celo_model_grads_f64(celo_model_f64 *m);
int celo_model_ntensors_f64(const celo_model_f64 *m);
const celo_param_tensor *celo_model_tensor_f64(const celo_model_f64 *m, int i);
int celo_model_find_f64(const celo_model_f64 *m, const char *name);
double celo_model_loss_f64(celo_model_f64 *m, const celo_batch_f64 *b);
void celo_model_keep_x_f64(celo_model_f64 *m, int on); /* as celo_model_keep_x */
int celo_model_backward_f64(celo_model_f64 *m);
float celo_model_accuracy_f64(const celo_model_f64 *m);
const double *celo_model_output_f64(const celo_model_f64 *m, int64_t *rows, int *cols);
int celo_model_eval_f64(celo_model_f64 *m, const celo_batch_f64 *b, int chunk, double *loss, double *accuracy);
const char *celo_model_error_f64(const celo_model_f64 *m);
int celo_model_forward_f64(celo_model_f64 *m, const celo_batch_f64 *b);
int celo_model_forward_pinned_f64(celo_model_f64 *m, const celo_batch_f64 *b, int n, const char *const *taps,
                                  const double *const *values);
int celo_model_ntaps_f64(const celo_model_f64 *m);
const char *celo_model_tap_name_f64(const celo_model_f64 *m, int i);
const double *celo_model_tap_f64(const celo_model_f64 *m, const char *name, celo_tap_shape *shape);
int celo_model_backward_from_f64(celo_model_f64 *m, const char *tap, const double *grad);
int celo_model_backward_taps_f64(celo_model_f64 *m, int n, const char *const *taps, const double *const *grads);
int celo_model_copy_from_f64(celo_model_f64 *dst, const celo_model_f64 *src, const char *prefix_dst,
                             const char *prefix_src);
int celo_model_mamba_from_f64(celo_model_f64 *dst, const celo_model_f64 *src, celo_mamba_from how, char *err,
                              size_t errlen);
typedef struct celo_generator_f64 celo_generator_f64; /* as celo_generator */
celo_generator_f64 *celo_generator_new_f64(celo_model_f64 *m, int B, int cap, char *err, size_t errlen);
void celo_generator_free_f64(celo_generator_f64 *g);
const double *celo_generator_step_f64(celo_generator_f64 *g, const int32_t *tokens);
void celo_generator_reset_f64(celo_generator_f64 *g);
int celo_generator_pos_f64(const celo_generator_f64 *g);
int celo_generator_cap_f64(const celo_generator_f64 *g);
const char *celo_generator_error_f64(const celo_generator_f64 *g);
double celo_loss_cross_entropy_f64(const double *logits, const int32_t *labels, int64_t rows, int classes,
                                   double *dlogits);
double celo_loss_mse_f64(const double *pred, const double *target, int64_t n, double *dpred);
double celo_loss_kl_f64(const double *logits, const double *teacher, int64_t rows, int classes, double temp,
                        double *dlogits);
double celo_loss_cosine_f64(const double *x, const double *target, int64_t rows, int width, double *dx);

#ifdef __cplusplus
}
#endif
#endif
