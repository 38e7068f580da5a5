/* theta_rule.c — a learned rule's θ: binding a θ file to the rule's table (celo_program.theta) by name and shape,
 * and the rule's own initialization. */
#include "celort.h"
#include "errmsg.h"
#include "rng.h"
#include "theta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    int n = snprintf(buf, len, "[");
    for (int d = 0; d < ndim && n < (int)len; d++)
        n += snprintf(buf + n, len - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < (int)len)
        snprintf(buf + n, len - (size_t)n, "]");
}

static int spec_ndim(const celo_thetaspec *ts, int64_t *shape)
{
    for (int d = 0; d < ts->ndim && d < 4; d++)
        shape[d] = ts->shape[d];
    return ts->ndim;
}

int celo_theta_bind(const celo_program *P, const celo_theta *th, const char *path, float **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (P->ntheta == 0) {
        celo_seterr(err, errlen, "rule '%s' has no learned parameters: it takes no θ (%s)", P->name, path);
        return -1;
    }
    /* the rule's tensors in declaration order, then anything the file has besides: the first mismatch is named */
    for (int i = 0; i < P->ntheta; i++) {
        const celo_thetaspec *ts = &P->theta[i];
        int64_t want[4];
        int nd = spec_ndim(ts, want);
        char ws[64], hs[160];
        shape_str(ws, sizeof ws, nd, want);
        const celo_theta_tensor *t = celo_theta_find(th, ts->name);
        if (!t) {
            celo_seterr(err, errlen, "%s: no tensor '%s' (rule '%s' needs it, shape %s)", path, ts->name, P->name, ws);
            return -1;
        }
        int same = t->ndim == nd;
        for (int d = 0; same && d < nd; d++)
            same = t->shape[d] == want[d];
        if (!same) {
            shape_str(hs, sizeof hs, t->ndim, t->shape);
            celo_seterr(err, errlen, "%s: tensor '%s' has shape %s; rule '%s' needs %s", path, ts->name, hs, P->name,
                        ws);
            return -1;
        }
    }
    for (int k = 0; k < th->n; k++) {
        int known = 0;
        for (int i = 0; i < P->ntheta && !known; i++)
            known = !strcmp(P->theta[i].name, th->t[k].name);
        if (!known) {
            celo_seterr(err, errlen, "%s: tensor '%s' is not a learned parameter of rule '%s'", path, th->t[k].name,
                        P->name);
            return -1;
        }
    }
    float *flat = malloc((size_t)P->theta_len * sizeof *flat);
    if (!flat) {
        celo_seterr(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < P->ntheta; i++) {
        const celo_theta_tensor *t = celo_theta_find(th, P->theta[i].name);
        memcpy(flat + P->theta[i].offset, t->data, (size_t)t->n * sizeof *flat);
    }
    *out = flat;
    return 0;
}

int celo_theta_init_rule(const celo_program *P, uint64_t seed, celo_theta *th, char *err, size_t errlen)
{
    celo_theta_init(th);
    for (int i = 0; i < P->ntheta; i++) {
        const celo_thetaspec *ts = &P->theta[i];
        int64_t shape[4];
        int nd = spec_ndim(ts, shape), n = 1;
        for (int d = 0; d < nd; d++)
            n *= (int)shape[d];
        float *v = calloc((size_t)n, sizeof *v);
        if (!v) {
            celo_theta_free(th);
            celo_seterr(err, errlen, "out of memory");
            return -1;
        }
        if (ts->init == 1) { /* a weight (in, out): haiku's TruncatedNormal(1/sqrt(fan_in)), fan_in = in */
            celo_rng r;
            celo_rng_init(&r, seed, (uint64_t)i);
            double std = 1.0 / sqrt((double)ts->fan_in);
            for (int64_t k = 0; k < n; k++) {
                double z;
                do
                    z = celo_rng_normal(&r);
                while (fabs(z) > 2.0);
                v[k] = (float)(z * std);
            }
        }
        int rc = celo_theta_add(th, ts->name, nd, shape, v, err, errlen);
        free(v);
        if (rc) {
            celo_theta_free(th);
            return -1;
        }
    }
    return 0;
}
