/* pes.c — PES and full-unroll antithetic ES estimators (runtime/pes.h has the conventions and a usage sketch). */
#include "pes.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PES_MAX_PARTICLES (1 << 24)          /* the particle index takes the low 24 bits of the stream */
#define PES_MAX_STEP      ((int64_t)1 << 39) /* the outer step the next 39, below the top bit */
#define PES_STREAM_BASE   ((uint64_t)1 << 63)

struct celo_pes {
    int np;
    int64_t n;
    double std;
    float *eps; /* [np][n] this outer step's perturbations */
    float *xi;  /* [np][n] persistent accumulators */
};

celo_pes *celo_pes_new(int nparticles, int64_t n, double std)
{
    if (nparticles < 1 || nparticles > PES_MAX_PARTICLES || n < 1 || !(std > 0) || !isfinite(std))
        return NULL;
    if ((uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)nparticles)
        return NULL;
    size_t count = (size_t)nparticles * (size_t)n;
    celo_pes *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->np = nparticles, e->n = n, e->std = std;
    e->eps = calloc(count, sizeof(float));
    e->xi = calloc(count, sizeof(float));
    if (!e->eps || !e->xi) {
        celo_pes_free(e);
        return NULL;
    }
    return e;
}

void celo_pes_free(celo_pes *e)
{
    if (!e)
        return;
    free(e->eps);
    free(e->xi);
    free(e);
}

int celo_pes_nparticles(const celo_pes *e)
{
    return e->np;
}
int64_t celo_pes_n(const celo_pes *e)
{
    return e->n;
}
double celo_pes_std(const celo_pes *e)
{
    return e->std;
}

void celo_pes_draw(celo_pes *e, uint64_t seed, int64_t outer_step)
{
    /* outside [0, 2^39) the step wraps into range rather than spilling into the particle or tag bits */
    uint64_t step = (uint64_t)outer_step & ((uint64_t)PES_MAX_STEP - 1);
    for (int i = 0; i < e->np; i++) {
        celo_rng r;
        celo_rng_init(&r, seed, PES_STREAM_BASE | step << 24 | (uint64_t)i);
        float *eps = e->eps + (size_t)i * (size_t)e->n;
        for (int64_t j = 0; j < e->n; j++)
            eps[j] = (float)(e->std * celo_rng_normal(&r));
    }
}

const float *celo_pes_eps(const celo_pes *e, int i)
{
    return e->eps + (size_t)i * (size_t)e->n;
}

void celo_pes_set_eps(celo_pes *e, int i, const float *eps)
{
    memcpy(e->eps + (size_t)i * (size_t)e->n, eps, (size_t)e->n * sizeof(float));
}

float *celo_pes_xi(celo_pes *e, int i)
{
    return e->xi + (size_t)i * (size_t)e->n;
}

int celo_pes_estimate(celo_pes *e, int K, const double *lpos, const double *lneg, const unsigned char *done,
                      const unsigned char *mask, double *grad, double *meta_loss)
{
    if (!e || K < 1 || !lpos || !lneg || !done || !mask || !grad)
        return -1;
    const int64_t n = e->n;
    const double scale = 1.0 / (2.0 * e->std * e->std * e->np); /* the 1/(2 std^2) and the mean over particles */
    double loss = 0;
    memset(grad, 0, (size_t)n * sizeof *grad);
    for (int i = 0; i < e->np; i++) {
        const double *lp = lpos + (size_t)i * K, *ln = lneg + (size_t)i * K;
        const unsigned char *dn = done + (size_t)i * K, *mk = mask + (size_t)i * K;
        double dsum_old = 0, dsum_new = 0, sp = 0, sn = 0;
        int hf = 0, count = 0;
        for (int t = 0; t < K; t++) {
            hf |= dn[t] != 0; /* inclusive: the done slot itself is the new episode's */
            if (!mk[t])
                continue;
            count++;
            sp += lp[t], sn += ln[t];
            if (hf)
                dsum_new += lp[t] - ln[t];
            else
                dsum_old += lp[t] - ln[t];
        }
        /* all slots masked (K = 1 on a reset slot): contribute nothing instead of the reference's 0/0 */
        double dold = count ? dsum_old / count : 0, dnew = count ? dsum_new / count : 0;
        if (count)
            loss += (sp / count + sn / count) / 2;
        float *xi = e->xi + (size_t)i * (size_t)n;
        const float *eps = e->eps + (size_t)i * (size_t)n;
        for (int64_t j = 0; j < n; j++) {
            double acc = (double)xi[j] + eps[j]; /* the perturbations the old episode has seen, this one included */
            grad[j] += (dold * acc + dnew * eps[j]) * scale;
            xi[j] = hf ? eps[j] : (float)acc;
        }
    }
    if (meta_loss)
        *meta_loss = loss / e->np;
    return 0;
}

int celo_es_estimate(celo_pes *e, const double *Lpos, const double *Lneg, double *grad, double *meta_loss)
{
    if (!e || !Lpos || !Lneg || !grad)
        return -1;
    const int64_t n = e->n;
    const double scale = 1.0 / (2.0 * e->std * e->std * e->np);
    double loss = 0;
    memset(grad, 0, (size_t)n * sizeof *grad);
    for (int i = 0; i < e->np; i++) {
        const float *eps = e->eps + (size_t)i * (size_t)n;
        double d = (Lpos[i] - Lneg[i]) * scale;
        for (int64_t j = 0; j < n; j++)
            grad[j] += d * eps[j];
        loss += (Lpos[i] + Lneg[i]) / 2;
    }
    if (meta_loss)
        *meta_loss = loss / e->np;
    return 0;
}

double celo_meta_normalize(double loss, double hi)
{
    if (!isfinite(loss))
        return hi; /* NaN and both infinities: a diverged inner run scores the worst loss */
    return loss < 0 ? 0 : loss > hi ? hi : loss;
}
