/*
 * quadratic.c — the `quadratic` data set: random quadratics L(x) = 1/2 x^T A x with a chosen condition number
 * (data.h), an objective rather than examples.
 */
#include "data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QUAD_MAX_ROTATED 4096

int celo_quadratic_make(celo_quadratic *q, const celo_quadratic_opts *o, char *err, size_t errlen)
{
    memset(q, 0, sizeof *q);
    if (o->dim < 1 || !(o->cond >= 1) || !isfinite(o->cond)) {
        celo_seterr(err, errlen, "quadratic: bad options (dim %d, condition number %g; want dim >= 1, cond >= 1)",
                    o->dim, o->cond);
        return -1;
    }
    if (o->rotate && o->dim > QUAD_MAX_ROTATED) {
        celo_seterr(err, errlen, "quadratic: dim %d too large for a rotated quadratic (at most %d)", o->dim,
                    QUAD_MAX_ROTATED);
        return -1;
    }
    int d = o->dim;
    q->dim = d;
    q->eig = malloc(sizeof(float) * (size_t)d);
    q->x0 = malloc(sizeof(float) * (size_t)d);
    if (!q->eig || !q->x0)
        goto oom;
    for (int i = 0; i < d; i++)
        q->eig[i] = (float)(d == 1 ? 1.0 : pow(o->cond, -(double)i / (d - 1)));
    celo_data_fill_normal(o->seed, CELO_DATA_STREAM('Q', 2), q->x0, d, 0.0f, 1.0f);
    if (o->rotate) {
        /* Q from the QR decomposition of a Gaussian matrix (Gram-Schmidt, twice for orthogonality): Haar */
        size_t dd = (size_t)d * (size_t)d;
        float *g = malloc(sizeof(float) * dd);
        double *Q = malloc(sizeof(double) * dd); /* column j at Q + j * d */
        q->A = malloc(sizeof(float) * dd);
        if (!g || !Q || !q->A) {
            free(g);
            free(Q);
            goto oom;
        }
        celo_data_fill_normal(o->seed, CELO_DATA_STREAM('Q', 1), g, (int64_t)dd, 0.0f, 1.0f);
        for (size_t i = 0; i < dd; i++)
            Q[i] = g[i];
        free(g);
        for (int j = 0; j < d; j++) {
            double *qj = Q + (size_t)j * d;
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < j; k++) {
                    const double *qk = Q + (size_t)k * d;
                    double dot = 0;
                    for (int i = 0; i < d; i++)
                        dot += qk[i] * qj[i];
                    for (int i = 0; i < d; i++)
                        qj[i] -= dot * qk[i];
                }
            double nrm = 0;
            for (int i = 0; i < d; i++)
                nrm += qj[i] * qj[i];
            nrm = sqrt(nrm);
            for (int i = 0; i < d; i++)
                qj[i] /= nrm;
        }
        /* A = Q diag(eig) Q^T */
#pragma omp parallel for schedule(static) if (d >= 256)
        for (int i = 0; i < d; i++)
            for (int k = i; k < d; k++) {
                double acc = 0;
                for (int j = 0; j < d; j++)
                    acc += Q[(size_t)j * d + i] * (double)q->eig[j] * Q[(size_t)j * d + k];
                q->A[(size_t)i * d + k] = q->A[(size_t)k * d + i] = (float)acc;
            }
        free(Q);
    }
    return 0;
oom:
    celo_quadratic_free(q);
    celo_seterr(err, errlen, "quadratic: out of memory (dim %d)", d);
    return -1;
}

double celo_quadratic_loss(const celo_quadratic *q, const float *x, float *g)
{
    int d = q->dim;
    double loss = 0;
    if (!q->A) {
        for (int i = 0; i < d; i++) {
            double gi = (double)q->eig[i] * x[i];
            loss += gi * x[i];
            if (g)
                g[i] = (float)gi;
        }
    } else {
        for (int i = 0; i < d; i++) {
            const float *row = q->A + (size_t)i * d;
            double gi = 0;
            for (int k = 0; k < d; k++)
                gi += (double)row[k] * x[k];
            loss += gi * x[i];
            if (g)
                g[i] = (float)gi;
        }
    }
    return 0.5 * loss;
}

void celo_quadratic_free(celo_quadratic *q)
{
    if (!q)
        return;
    free(q->eig);
    free(q->A);
    free(q->x0);
    memset(q, 0, sizeof *q);
}

/* ---- the source entry ---- */

enum { P_DIM, P_COND, P_ROTATE, P_SEED, NP };

static int source_load(celo_source *s, const double *p, char *err, size_t errlen)
{
    int dim = (int)p[P_DIM], rotate = (int)p[P_ROTATE];
    celo_quadratic_opts o = {.dim = dim,
                             .cond = p[P_COND],
                             .rotate = rotate < 0 ? dim <= QUAD_MAX_ROTATED : rotate,
                             .seed = (uint64_t)p[P_SEED]};
    return celo_quadratic_make(&s->quad, &o, err, errlen);
}

const celo_source_type celo_source_quadratic = {
    .name = "quadratic",
    .help = "L(x) = 1/2 x^T A x with log-spaced eigenvalues from 1 to 1 / cond; starting point x0 ~ N(0, I)",
    .kind = CELO_SOURCE_OBJECTIVE,
    .nparams = NP,
    .params = {[P_DIM] = {"dim", 64, 1, INT32_MAX, 1, "dimension"},
               [P_COND] = {"cond", 100, 1, 1e300, 0, "condition number"},
               [P_ROTATE] = {"rotate", -1, -1, 1, 1, "0: diagonal A, 1: randomly rotated, -1: rotated up to dim 4096"},
               [P_SEED] = {"seed", CELO_DATA_TASK_SEED, 0, CELO_DATA_MAX_SEED, 1, "fixes A and x0"}},
    .load = source_load,
    .origin = NULL,
};
