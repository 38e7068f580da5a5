/*
 * ckpt.h — checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
 *
 *     [8 bytes: N, little-endian u64] [N bytes: JSON header, UTF-8, space-padded] [data]
 *     header = {"__metadata__": {"key": "value", ...},
 *               "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
 *
 * Offsets are relative to the start of the data section; tensors are little-endian, C order, and tile the
 * data section exactly. Files are interchangeable with Python's safetensors (safetensors.numpy.load_file /
 * save_file; tests/reference/ckpt_compat.py checks both directions).
 *
 * Naming used by the training runtime: model weights by layer name ("fc1.w"), optimizer state as
 * "opt.<param>.<slot>" (celo_ckpt_add_state), and metadata strings such as "step", "seed" and "data.cursor"
 * (celo_cursor_format in data.h).
 *
 * Writing is atomic: a temporary file in the target's directory, fwrite, fflush, fsync, rename over the
 * target, fsync of the directory. A crash leaves either the old checkpoint or the new one.
 * Reading validates everything (header length, strict JSON, UTF-8, dtype, shapes, offsets in range, neither
 * overlapping nor leaving gaps, file size) and reports any problem as one line naming the file. Only F32
 * tensors are supported.
 *
 *     celo_ckpt c;
 *     celo_ckpt_init(&c);
 *     celo_ckpt_add(&c, "fc1.w", w, 2, (int64_t[]){64, 32}, err, sizeof err);   // not copied: keep w alive
 *     celo_ckpt_add_state(&c, "fc1.w", st, err, sizeof err);                    // opt.fc1.w.m, opt.fc1.w.v
 *     celo_ckpt_set_meta(&c, "step", "1200", err, sizeof err);
 *     if (celo_ckpt_write(&c, "runs/quick.safetensors", err, sizeof err)) die(err);
 *     celo_ckpt_free(&c);
 *
 *     if (celo_ckpt_read(&c, "runs/quick.safetensors", err, sizeof err)) die(err);
 *     celo_ckpt_load(&c, "fc1.w", w, 2, (int64_t[]){64, 32}, err, sizeof err);  // shape must match
 *     celo_ckpt_load_state(&c, "fc1.w", st, err, sizeof err);
 *     int64_t step; celo_ckpt_meta_i64(&c, "step", &step, err, sizeof err);
 *     celo_ckpt_free(&c);
 */
#ifndef CELO_CKPT_H
#define CELO_CKPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct celo_state;

#define CELO_CKPT_MAX_HEADER 100000000 /* the limit of the reference implementation */

typedef struct {
    char *name;
    int ndim; /* 0..8; 0 is a scalar (one element) */
    int64_t shape[8];
    int64_t n;         /* elements */
    const float *data; /* writer: the caller's memory; reader: inside the checkpoint's buffer */
} celo_ckpt_tensor;

typedef struct {
    char *key, *value;
} celo_ckpt_meta;

typedef struct {
    int ntensor, ntensor_cap;
    celo_ckpt_tensor *tensor; /* in file order (by offset) after a read, in insertion order before a write */
    int nmeta, nmeta_cap;
    celo_ckpt_meta *meta;
    char *path; /* the file read, for messages */
    float *buf; /* the data section of a file read */
} celo_ckpt;

void celo_ckpt_init(celo_ckpt *c);
void celo_ckpt_free(celo_ckpt *c);

/* Writer side. Names are copied, tensor data is not. Errors: a duplicate or empty name, "__metadata__",
 * invalid UTF-8, a bad shape. */
int celo_ckpt_add(celo_ckpt *c, const char *name, const float *data, int ndim, const int64_t *shape, char *err,
                  size_t errlen);
int celo_ckpt_set_meta(celo_ckpt *c, const char *key, const char *value, char *err, size_t errlen); /* replaces */
int celo_ckpt_set_meta_i64(celo_ckpt *c, const char *key, int64_t value, char *err, size_t errlen);
int celo_ckpt_write(const celo_ckpt *c, const char *path, char *err, size_t errlen);

/* Reader side. */
int celo_ckpt_read(celo_ckpt *c, const char *path, char *err, size_t errlen);
const celo_ckpt_tensor *celo_ckpt_find(const celo_ckpt *c, const char *name);
const char *celo_ckpt_get_meta(const celo_ckpt *c, const char *key); /* NULL when absent */
/* Metadata as a decimal integer (strict); -1 with a message when absent or malformed. */
int celo_ckpt_meta_i64(const celo_ckpt *c, const char *key, int64_t *value, char *err, size_t errlen);
/* Copy tensor `name` into dst after checking that its shape is exactly (ndim, shape). */
int celo_ckpt_load(const celo_ckpt *c, const char *name, float *dst, int ndim, const int64_t *shape, char *err,
                   size_t errlen);

/* Optimizer state of one parameter (celort.h's celo_state): every slot as "opt.<param>.<slot name>", with
 * shape: ELEM slots the parameter's shape, ROW [R], COL [C], SCALAR [] (R x C is the parameter viewed as
 * a matrix over its last dimension). The step count st->t is not stored: keep it in the metadata. */
int celo_ckpt_add_state(celo_ckpt *c, const char *param, const struct celo_state *st, char *err, size_t errlen);
int celo_ckpt_load_state(const celo_ckpt *c, const char *param, struct celo_state *st, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
