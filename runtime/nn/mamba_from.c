/*
 * mamba_from.c — a gpt with Mamba mixers initialized from a gpt with attention mixers (nn.h celo_model_mamba_from;
 * docs/distill.md): the shared tensors copied by name, then each layer's mixer mapped from the attention's
 * c_attn, c_proj (and feature maps). One source (mamba_from.inc) for the float and the double model, through
 * their public APIs only.
 */
#include "nn_f64.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define REAL  float
#define MODEL celo_model
#define F(f)  f
#include "mamba_from.inc"
#undef REAL
#undef MODEL
#undef F

#define REAL  double
#define MODEL celo_model_f64
#define F(f)  f##_f64
#include "mamba_from.inc"
