/* taskdata.c — the data of a task (inst.h): loaded once, then read by every instance of the task.
 * Fixed choices: Fashion-MNIST is area-resized (data.h's default) to `size`; the KJV text keeps 10 % for
 * validation; teacher tasks draw their teacher and inputs from a fixed seed (the same task for every run), with
 * 10000 test examples, classification when the loss is cross-entropy and noiseless regression otherwise;
 * quadratics are rotated (dense A) up to dimension 4096 and diagonal above. */
#include "taskdata.h"

#include "errmsg.h"
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

celo_task_data *celo_task_data_new(void)
{
    return calloc(1, sizeof(celo_task_data));
}

int celo_task_data_loaded(const celo_task_data *d)
{
    return d && d->loaded;
}

double celo_task_data_unigram(const celo_task_data *d)
{
    return d && d->loaded ? d->unigram : NAN;
}

void celo_task_data_free(celo_task_data *d)
{
    if (!d)
        return;
    celo_task_data_unload(d);
    free(d);
}

void celo_task_data_unload(celo_task_data *d)
{
    if (!d->loaded)
        return;
    celo_dataset_free(&d->train);
    celo_dataset_free(&d->test);
    celo_text_free(&d->text);
    celo_quadratic_free(&d->quad);
    memset(d, 0, sizeof *d);
}

int celo_task_data_load(celo_task_data *d, const celo_task *tk, int quiet, char *err, size_t errlen)
{
    if (d->loaded)
        return 0;
    memset(d, 0, sizeof *d);
    char e[512] = "";
    switch (tk->data) {
    case CELO_DATA_FASHION_MNIST: {
        if (tk->size < 0 || tk->size > 28) {
            celo_seterr(err, errlen, "task %s: fashion_mnist size %d (1..28)", tk->name, tk->size);
            return -1;
        }
        celo_fmnist_opts fo = {.size = tk->size, .resize = CELO_RESIZE_AREA, .normalize = tk->normalize, .dir = NULL};
        if (celo_fmnist_load(&d->train, &d->test, &fo, e, sizeof e)) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    case CELO_DATA_KJV: {
        if (celo_text_load_kjv(&d->text, KJV_VAL_FRAC, e, sizeof e)) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        int64_t n = d->text.split, count[256] = {0};
        for (int64_t i = 0; i < n; i++)
            count[d->text.ids[i]]++;
        double h = 0;
        for (int c = 0; c < 256; c++)
            if (count[c])
                h -= (double)count[c] / (double)n * log((double)count[c] / (double)n);
        d->unigram = h;
        if (!quiet)
            fprintf(stderr, "task %s: KJV text, %lld training characters, vocabulary %d, unigram entropy %.4f nats\n",
                    tk->name, (long long)n, d->text.vocab, h);
        break;
    }
    case CELO_DATA_TEACHER: {
        if (tk->teacher_in < 1 || tk->teacher_out < 1 || tk->teacher_hidden < 0 || tk->teacher_n < 1) {
            celo_seterr(err, errlen,
                        "task %s: teacher needs in >= 1, out >= 1, hidden >= 0 and n >= 1 (got %d, %d, %d, %lld)",
                        tk->name, tk->teacher_in, tk->teacher_out, tk->teacher_hidden, (long long)tk->teacher_n);
            return -1;
        }
        celo_teacher_opts to = {.in = tk->teacher_in,
                                .nhidden = tk->teacher_hidden > 0,
                                .hidden = {tk->teacher_hidden},
                                .out = tk->teacher_out,
                                .classify = tk->loss == CELO_LOSS_CROSS_ENTROPY,
                                .noise = 0.0f,
                                .seed = TASK_SEED};
        if (celo_teacher_dataset(&d->train, &to, CELO_SPLIT_TRAIN, tk->teacher_n, e, sizeof e) ||
            celo_teacher_dataset(&d->test, &to, CELO_SPLIT_TEST, TEACHER_TEST_N, e, sizeof e)) {
            celo_dataset_free(&d->train);
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    case CELO_DATA_QUADRATIC: {
        celo_quadratic_opts qo = {
            .dim = tk->quad_dim, .cond = tk->quad_cond, .rotate = tk->quad_dim <= 4096, .seed = TASK_SEED};
        if (celo_quadratic_make(&d->quad, &qo, e, sizeof e)) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    default: celo_seterr(err, errlen, "task %s: unknown data kind %d", tk->name, (int)tk->data); return -1;
    }
    d->loaded = 1;
    return 0;
}
