/* taskdata.c — the data of a task (inst.h): loaded once, then read by every instance of the task.
 * Fixed choices: Fashion-MNIST is area-resized (data.h's default) to `size`; the KJV text keeps 10 % for
 * validation; teacher tasks draw their teacher and inputs from a fixed seed (the same task for every run), with
 * 10000 test examples, classification when the loss is cross-entropy and noiseless regression otherwise;
 * quadratics are rotated (dense A) up to dimension 4096 and diagonal above. A task's label variation (classes,
 * permute_labels) is a copy of the examples it keeps, made once per task: the shared source stays as loaded. */
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
    celo_source_put(d->src);
    celo_dataset_free(&d->own_train);
    celo_dataset_free(&d->own_test);
    memset(d, 0, sizeof *d);
}

/* The task's data set from the process-wide registry (data.h): one copy however many tasks or instances use it. */
static int get_source(celo_task_data *d, const celo_task *tk, const char *name, const celo_source_arg *args, int n,
                      char *err, size_t errlen)
{
    char e[512] = "";
    d->src = celo_source_get(name, args, n, e, sizeof e);
    if (!d->src) {
        celo_seterr(err, errlen, "task %s: %s", tk->name, e);
        return -1;
    }
    d->train = &d->src->train;
    d->test = &d->src->test;
    d->text = &d->src->text;
    d->quad = &d->src->quad;
    return 0;
}

_Static_assert(sizeof(((celo_task *)0)->classes) == CELO_MAX_CLASSES * sizeof(int), "plan.h's classes[] size");

/* The task's classes and permute_labels applied to both splits (data.h, celo_dataset_relabel). */
static int relabel(celo_task_data *d, const celo_task *tk, char *err, size_t errlen)
{
    if (tk->nclasses == 0 && tk->permute_labels == 0)
        return 0;
    char e[512] = "";
    int rc = -1;
    if (tk->nclasses < 0 || tk->nclasses > CELO_MAX_CLASSES)
        snprintf(e, sizeof e, "%d classes listed (at most %d)", tk->nclasses, CELO_MAX_CLASSES);
    else if (celo_dataset_relabel(&d->own_train, d->train, tk->classes, tk->nclasses, tk->permute_labels, e,
                                  sizeof e) == 0 &&
             celo_dataset_relabel(&d->own_test, d->test, tk->classes, tk->nclasses, tk->permute_labels, e, sizeof e) ==
                 0)
        rc = 0;
    if (rc) {
        celo_seterr(err, errlen, "task %s: %s", tk->name, e);
        celo_dataset_free(&d->own_train);
        celo_dataset_free(&d->own_test);
        celo_source_put(d->src);
        memset(d, 0, sizeof *d);
        return -1;
    }
    d->train = &d->own_train;
    d->test = &d->own_test;
    return 0;
}

int celo_task_data_load(celo_task_data *d, const celo_task *tk, int quiet, char *err, size_t errlen)
{
    if (d->loaded)
        return 0;
    memset(d, 0, sizeof *d);
    switch (tk->data) {
    case CELO_DATA_FASHION_MNIST: {
        if (tk->size < 0 || tk->size > 28) {
            celo_seterr(err, errlen, "task %s: fashion_mnist size %d (1..28)", tk->name, tk->size);
            return -1;
        }
        celo_source_arg a[] = {{"size", tk->size}, {"resize", CELO_RESIZE_AREA}, {"normalize", tk->normalize}};
        if (get_source(d, tk, "fashion_mnist", a, 3, err, errlen) || relabel(d, tk, err, errlen))
            return -1;
        break;
    }
    case CELO_DATA_DIGITS: {
        celo_source_arg a[] = {{"normalize", tk->normalize}};
        if (get_source(d, tk, "digits", a, 1, err, errlen) || relabel(d, tk, err, errlen))
            return -1;
        break;
    }
    case CELO_DATA_KJV: {
        celo_source_arg a[] = {{"val_frac", KJV_VAL_FRAC}};
        if (get_source(d, tk, "kjv", a, 1, err, errlen))
            return -1;
        int64_t n = d->text->split, count[256] = {0};
        for (int64_t i = 0; i < n; i++)
            count[d->text->ids[i]]++;
        double h = 0;
        for (int c = 0; c < 256; c++)
            if (count[c])
                h -= (double)count[c] / (double)n * log((double)count[c] / (double)n);
        d->unigram = h;
        if (!quiet)
            fprintf(stderr, "task %s: KJV text, %lld training characters, vocabulary %d, unigram entropy %.4f nats\n",
                    tk->name, (long long)n, d->text->vocab, h);
        break;
    }
    case CELO_DATA_TEACHER: {
        if (tk->teacher_in < 1 || tk->teacher_out < 1 || tk->teacher_hidden < 0 || tk->teacher_n < 1) {
            celo_seterr(err, errlen,
                        "task %s: teacher needs in >= 1, out >= 1, hidden >= 0 and n >= 1 (got %d, %d, %d, %lld)",
                        tk->name, tk->teacher_in, tk->teacher_out, tk->teacher_hidden, (long long)tk->teacher_n);
            return -1;
        }
        celo_source_arg a[] = {{"in", tk->teacher_in},
                               {"out", tk->teacher_out},
                               {"hidden", tk->teacher_hidden},
                               {"n", (double)tk->teacher_n},
                               {"test_n", TEACHER_TEST_N},
                               {"classify", tk->loss == CELO_LOSS_CROSS_ENTROPY},
                               {"noise", 0},
                               {"seed", (double)TASK_SEED}};
        if (get_source(d, tk, "teacher", a, 8, err, errlen))
            return -1;
        break;
    }
    case CELO_DATA_QUADRATIC: {
        celo_source_arg a[] = {{"dim", tk->quad_dim},
                               {"cond", tk->quad_cond},
                               {"rotate", tk->quad_dim <= 4096},
                               {"seed", (double)TASK_SEED}};
        if (get_source(d, tk, "quadratic", a, 4, err, errlen))
            return -1;
        break;
    }
    default: celo_seterr(err, errlen, "task %s: unknown data kind %d", tk->name, (int)tk->data); return -1;
    }
    d->loaded = 1;
    return 0;
}
