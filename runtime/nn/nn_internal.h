/*
 * nn_internal.h — what the float and double builds of the models share (runtime/nn/params.c): checking a
 * config, and the table of parameter tensors with how each is initialized.
 */
#ifndef CELO_NN_INTERNAL_H
#define CELO_NN_INTERNAL_H

#include "../nn.h"

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

void celo_nn_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void celo_nn_vseterr(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
