/* sample.h — text from a trained character model (`celo sample`, docs/distill.md "Sampling"): a checkpoint's
 * weights in its task's model, run one character at a time by celo_generator (nn.h) after a prompt. */
#ifndef CELO_SAMPLE_H
#define CELO_SAMPLE_H

#include "plan.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *task;   /* the task whose model the weights fill (NULL: the checkpoint's own, its "task" entry) */
    const char *prompt; /* bytes of the text's vocabulary (NULL or "": a newline) */
    int tokens;         /* new characters per sample (0: as many as the model's context leaves after the prompt) */
    int samples;        /* independent samples (0: 1) */
    double temperature; /* logits / temperature before the softmax; 0: the most likely character each time */
    int top_k;          /* draw among the top_k most likely only (0: all) */
    uint64_t seed;      /* sample i draws from stream i of celo_rng under seed */
    int quiet;          /* no summary line on stderr */
} celo_sample_opts;

/* Writes each sample, the prompt then its continuation, to out (a line "--- sample i" before each when there are
 * several), and a summary line (tokens, time per token) to stderr. 0, or -1 with a one-line reason in err (a
 * missing or foreign checkpoint, a task that is not character text, a prompt character outside the text, more
 * characters than the model's context). */
int celo_sample(const celo_plan *plan, const char *ckpt, const celo_sample_opts *o, FILE *out, char *err,
                size_t errlen);

#endif
