/* model.h — `model` definitions (docs/language.md, "Models"): checking one, and turning a task's use of one into
 * the block list the runtime builds a model from (nn.h, celo_block_desc). */
#ifndef CELO_MODEL_H
#define CELO_MODEL_H

#include "ast.h"
#include "nn.h"

/* What a task's data gives a model: its input, and the widths in, out (= classes), vocab and ctx. */
typedef struct {
    int tokens;  /* text: token ids; vocab is known only when the data loads (CELO_WIDTH_VOCAB, plan.h) */
    int in_ndim; /* floats: 1 ([features]) or 3 ([C, H, W]) */
    int64_t in_dims[3];
    int features, classes; /* vector and image data */
    int ctx;               /* text: the sequence length */
    int loss;              /* celo_loss_kind: cross-entropy needs an output as wide as the classes */
} model_env;

/* Checks model definition d on its own: its parameters, its statements, the block kinds and their arguments, and
 * its taps (known, written once, read only after they are written). Reports errors; returns their number. */
int model_check(const def *d);

/* The blocks of d used as `call` (NAME(args) in file f) by a task whose data is env: malloc'd into *blocks (*n of
 * them), the widths checked against the data and by the runtime's own checks (celo_model_check_desc), each error
 * located at its block. d must have passed model_check. Reports errors; returns their number. */
int model_build(const def *d, const pval *call, const srcfile *f, const model_env *env, celo_block_desc **blocks,
                int *n);

#endif
