/*
 * teacher.c — the `teacher` data set: inputs x ~ N(0, I) labelled by a fixed random MLP (data.h).
 */
#include "data_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEACHER_W(layer)     CELO_DATA_STREAM('T', 0x10000u + (uint64_t)(layer))
#define TEACHER_X(split)     CELO_DATA_STREAM('T', ((uint64_t)(split) << 8) | 1u)
#define TEACHER_NOISE(split) CELO_DATA_STREAM('T', ((uint64_t)(split) << 8) | 2u)
#define TEACHER_CAL          CELO_DATA_STREAM('T', 0x20000u)
#define TEACHER_NCAL         4096

typedef struct {
    int L, width[6], maxw;
    float *W[5];           /* W[l] is [width[l], width[l + 1]], row-major */
    double *shift, *scale; /* output standardization */
} teacher;

/* The raw output of x into a (maxw doubles; b is scratch of maxw). */
static void teacher_forward(const teacher *tc, const float *x, double *a, double *b)
{
    for (int k = 0; k < tc->width[0]; k++)
        a[k] = x[k];
    for (int l = 0; l < tc->L; l++) {
        int fo = tc->width[l + 1];
        for (int j = 0; j < fo; j++)
            b[j] = 0;
        for (int k = 0; k < tc->width[l]; k++) {
            const float *wr = tc->W[l] + (size_t)k * fo;
            for (int j = 0; j < fo; j++)
                b[j] += a[k] * wr[j];
        }
        for (int j = 0; j < fo; j++)
            a[j] = (l < tc->L - 1 && b[j] < 0) ? 0 : b[j];
    }
}

int celo_teacher_dataset(celo_dataset *d, const celo_teacher_opts *o, int split, int64_t n, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (o->in < 1 || o->out < 1 || o->nhidden < 0 || o->nhidden > 4 || n < 1 || split < 0 || split > 255 ||
        (o->classify && o->out < 2) || !(o->noise >= 0)) {
        celo_seterr(err, errlen, "teacher: bad options (in %d, hidden layers %d, out %d, n %lld, split %d, noise %g)",
                    o->in, o->nhidden, o->out, (long long)n, split, (double)o->noise);
        return -1;
    }
    teacher tc = {0};
    tc.L = o->nhidden + 1;
    tc.width[0] = tc.maxw = o->in;
    for (int l = 0; l < o->nhidden; l++) {
        if (o->hidden[l] < 1) {
            celo_seterr(err, errlen, "teacher: hidden layer %d has width %d", l, o->hidden[l]);
            return -1;
        }
        tc.width[l + 1] = o->hidden[l];
        if (o->hidden[l] > tc.maxw)
            tc.maxw = o->hidden[l];
    }
    tc.width[tc.L] = o->out;
    if (o->out > tc.maxw)
        tc.maxw = o->out;
    int rc = -1, nout = o->out;
    float *cal = NULL;
    for (int l = 0; l < tc.L; l++) {
        size_t cnt = (size_t)tc.width[l] * (size_t)tc.width[l + 1];
        tc.W[l] = malloc(cnt * sizeof(float));
        if (!tc.W[l])
            goto oom;
        float std = (float)sqrt((l < tc.L - 1 ? 2.0 : 1.0) / tc.width[l]); /* He for ReLU layers, LeCun for output */
        celo_data_fill_normal(o->seed, TEACHER_W(l), tc.W[l], (int64_t)cnt, 0.0f, std);
    }
    /* calibration: each output unit is standardized over a fixed sample of inputs (its own stream), so that
     * argmax classes are not dominated by one unit and regression targets have unit variance */
    tc.shift = calloc((size_t)nout, sizeof(double));
    tc.scale = calloc((size_t)nout, sizeof(double));
    cal = malloc(sizeof(float) * TEACHER_NCAL * (size_t)o->in);
    double *a = malloc(sizeof(double) * (size_t)tc.maxw), *b = malloc(sizeof(double) * (size_t)tc.maxw);
    if (!tc.shift || !tc.scale || !cal || !a || !b) {
        free(a), free(b);
        goto oom;
    }
    celo_data_fill_normal(o->seed, TEACHER_CAL, cal, (int64_t)TEACHER_NCAL * o->in, 0.0f, 1.0f);
    for (int i = 0; i < TEACHER_NCAL; i++) {
        teacher_forward(&tc, cal + (size_t)i * o->in, a, b);
        for (int j = 0; j < nout; j++)
            tc.shift[j] += a[j], tc.scale[j] += a[j] * a[j];
    }
    free(a), free(b);
    for (int j = 0; j < nout; j++) {
        double m = tc.shift[j] / TEACHER_NCAL, v = tc.scale[j] / TEACHER_NCAL - m * m;
        tc.shift[j] = m;
        tc.scale[j] = v > 1e-20 ? 1.0 / sqrt(v) : 1.0;
    }

    d->x = malloc(sizeof(float) * (size_t)n * (size_t)o->in);
    if (o->classify)
        d->y = malloc(sizeof(int32_t) * (size_t)n);
    else
        d->t = malloc(sizeof(float) * (size_t)n * (size_t)nout);
    if (!d->x || (!d->y && !d->t))
        goto oom;
    celo_data_fill_normal(o->seed, TEACHER_X(split), d->x, n * o->in, 0.0f, 1.0f);
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        double *u = malloc(sizeof(double) * (size_t)tc.maxw), *v = malloc(sizeof(double) * (size_t)tc.maxw);
        if (!u || !v)
            oom = 1;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!u || !v)
                continue;
            teacher_forward(&tc, d->x + i * o->in, u, v);
            for (int j = 0; j < nout; j++)
                u[j] = (u[j] - tc.shift[j]) * tc.scale[j];
            if (o->classify) {
                int best = 0;
                for (int j = 1; j < nout; j++)
                    if (u[j] > u[best])
                        best = j;
                d->y[i] = best;
            } else {
                for (int j = 0; j < nout; j++)
                    d->t[i * nout + j] = (float)u[j];
            }
        }
        free(u);
        free(v);
    }
    if (oom)
        goto oom;
    if (!o->classify && o->noise > 0) {
        float *z = malloc(sizeof(float) * (size_t)n * (size_t)nout);
        if (!z)
            goto oom;
        celo_data_fill_normal(o->seed, TEACHER_NOISE(split), z, n * nout, 0.0f, o->noise);
        for (int64_t i = 0; i < n * nout; i++)
            d->t[i] += z[i];
        free(z);
    }
    snprintf(d->name, sizeof d->name, "teacher/%s", split == CELO_SPLIT_TRAIN ? "train" : "test");
    d->n = n;
    d->dim = o->in;
    d->nclass = o->classify ? nout : 0;
    d->ydim = o->classify ? 0 : nout;
    d->std = 1.0f;
    rc = 0;
    goto done;
oom:
    celo_seterr(err, errlen, "teacher: out of memory (%lld examples)", (long long)n);
    celo_dataset_free(d);
done:
    for (int l = 0; l < 5; l++)
        free(tc.W[l]);
    free(tc.shift);
    free(tc.scale);
    free(cal);
    return rc;
}

/* ---- the source entry: one hidden layer (0: none), both splits ---- */

enum { P_IN, P_OUT, P_HIDDEN, P_N, P_TEST_N, P_CLASSIFY, P_NOISE, P_SEED, NP };

static int source_load(celo_source *s, const double *p, char *err, size_t errlen)
{
    celo_teacher_opts o = {.in = (int)p[P_IN],
                           .nhidden = p[P_HIDDEN] > 0,
                           .hidden = {(int)p[P_HIDDEN]},
                           .out = (int)p[P_OUT],
                           .classify = (int)p[P_CLASSIFY],
                           .noise = (float)p[P_NOISE],
                           .seed = (uint64_t)p[P_SEED]};
    if (celo_teacher_dataset(&s->train, &o, CELO_SPLIT_TRAIN, (int64_t)p[P_N], err, errlen))
        return -1;
    return celo_teacher_dataset(&s->test, &o, CELO_SPLIT_TEST, (int64_t)p[P_TEST_N], err, errlen);
}

#define MAX_WIDTH 1000000
#define MAX_N     ((double)((int64_t)1 << 40))

const celo_source_type celo_source_teacher = {
    .name = "teacher",
    .help = "inputs x ~ N(0, I) labelled by a fixed random MLP (argmax classes or regression targets)",
    .kind = CELO_SOURCE_EXAMPLES,
    .nparams = NP,
    .params = {[P_IN] = {"in", 16, 1, MAX_WIDTH, 1, "input features"},
               [P_OUT] = {"out", 4, 1, MAX_WIDTH, 1, "classes (classify) or regression targets"},
               [P_HIDDEN] = {"hidden", 32, 0, MAX_WIDTH, 1, "width of the teacher's hidden layer; 0: none"},
               [P_N] = {"n", 8192, 1, MAX_N, 1, "training examples"},
               [P_TEST_N] = {"test_n", 10000, 1, MAX_N, 1, "test examples"},
               [P_CLASSIFY] = {"classify", 1, 0, 1, 1, "1: argmax labels, 0: regression targets"},
               [P_NOISE] = {"noise", 0, 0, 1e6, 0, "regression: std of Gaussian noise added to the targets"},
               [P_SEED] = {"seed", CELO_DATA_TASK_SEED, 0, CELO_DATA_MAX_SEED, 1, "fixes the teacher and the inputs"}},
    .load = source_load,
    .origin = NULL,
};
