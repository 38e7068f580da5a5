/*
 * theta.h — meta-parameter (θ) files of learned optimizers: reading the authors' flax-msgpack `.state` files and
 * reading/writing celo's own safetensors files (docs/theta.md describes both formats and the naming).
 *
 * A θ is a list of named float32 tensors. Names are the paths of the parameter tree joined with '/':
 * `ff_mod_stack/~/w0__0`, `lstm_init_state/hidden`, `rnn_params/rnn/linear/w` (a flax key may itself contain a
 * '/', as haiku's "rnn/linear" does; the joined name keeps it). The order of the tensors is the file's order
 * and carries no meaning: look tensors up by name.
 *
 *     celo_theta th;
 *     char err[512];
 *     if (celo_theta_read("theta.state", &th, err, sizeof err)) die(err);   // flax msgpack or safetensors
 *     const celo_theta_tensor *w1 = celo_theta_find(&th, "ff_mod_stack/~/w1");
 *     if (celo_theta_write("theta.safetensors", &th, err, sizeof err)) die(err);   // atomic
 *     celo_theta_free(&th);
 *
 * Every tensor that is read or written is checked: float32 only, at most 8 dimensions, every value finite.
 * Any problem (missing, truncated or garbled file, another dtype, NaN or inf inside, duplicate names) is one
 * line in err that names the file; nothing is guessed or converted.
 */
#ifndef CELO_THETA_H
#define CELO_THETA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    int ndim; /* 0..8; 0 is a scalar (one element) */
    int64_t shape[8];
    int64_t n;   /* elements */
    float *data; /* owned by the θ */
} celo_theta_tensor;

typedef struct {
    int n, cap;
    celo_theta_tensor *t;
} celo_theta;

typedef enum { CELO_THETA_MSGPACK = 1, CELO_THETA_SAFETENSORS = 2 } celo_theta_format;

void celo_theta_init(celo_theta *th);
void celo_theta_free(celo_theta *th);

/* Reads a θ file of either format, told apart by its first bytes (not its name). fmt (may be NULL) receives the
 * format. 0, or -1 with one line naming the file in err; *th is then empty. */
int celo_theta_read(const char *path, celo_theta *th, celo_theta_format *fmt, char *err, size_t errlen);
/* The same for a flax msgpack image already in memory (path only names it in messages). */
int celo_theta_parse_msgpack(const unsigned char *buf, size_t len, const char *path, celo_theta *th, char *err,
                             size_t errlen);

/* Writes th as safetensors (F32 tensors in th's order, no metadata), atomically: temp file, fsync, rename. */
int celo_theta_write(const char *path, const celo_theta *th, char *err, size_t errlen);

/* Appends a copy of (name, shape, data). Errors: empty or duplicate name, bad shape, a non-finite value. */
int celo_theta_add(celo_theta *th, const char *name, int ndim, const int64_t *shape, const float *data, char *err,
                   size_t errlen);
const celo_theta_tensor *celo_theta_find(const celo_theta *th, const char *name);
int64_t celo_theta_count(const celo_theta *th); /* floats in all tensors */

/* A learned rule's θ (runtime/theta_rule.c; docs/language.md, "Learned parameters"). */
struct celo_program;
/* The flat θ of rule P (P->theta_len floats, malloc'd into *out, for celo_state.theta) from th, read from path,
 * matched by name and shape, every tensor of the rule and no other. 0, or -1 with one line naming the first
 * mismatch in err. */
int celo_theta_bind(const struct celo_program *P, const celo_theta *th, const char *path, float **out, char *err,
                    size_t errlen);
/* *th = the rule's own initialization under seed: MLP weights truncated normal (cut at ±2, not rescaled) times
 * 1/sqrt(fan_in), biases and plain θ vectors 0; tensor i draws from stream i. */
int celo_theta_init_rule(const struct celo_program *P, uint64_t seed, celo_theta *th, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
