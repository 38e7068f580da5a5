/*
 * labels.c — label variations of a classification set (data.h): keep some classes, renumber them, permute the
 * labels. Meta-training draws task families from one data set this way (3-way digits, permuted Fashion-MNIST).
 */
#include "data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int celo_label_map(int nclass, const int *classes, int k, uint64_t seed, int32_t *map, char *err, size_t errlen)
{
    if (nclass < 2 || nclass > CELO_MAX_CLASSES) {
        celo_seterr(err, errlen, "labels: %d classes (2..%d)", nclass, CELO_MAX_CLASSES);
        return -1;
    }
    if (k == 1 || k < 0 || k > nclass) {
        celo_seterr(err, errlen, "labels: keeping %d classes of %d (want 2..%d)", k, nclass, nclass);
        return -1;
    }
    for (int c = 0; c < nclass; c++)
        map[c] = k ? -1 : c;
    for (int i = 0; i < k; i++) {
        if (classes[i] < 0 || classes[i] >= nclass) {
            celo_seterr(err, errlen, "labels: class %d is out of range 0..%d", classes[i], nclass - 1);
            return -1;
        }
        if (map[classes[i]] >= 0) {
            celo_seterr(err, errlen, "labels: class %d is listed twice", classes[i]);
            return -1;
        }
        map[classes[i]] = i;
    }
    if (seed == 0)
        return 0;
    /* Fisher-Yates over the kept labels; each swap index a pure function of (seed, position): the modulo's bias
     * is below 2^-59 for 16 labels */
    int m = k ? k : nclass, perm[CELO_MAX_CLASSES];
    for (int i = 0; i < m; i++)
        perm[i] = i;
    for (int i = m - 1; i > 0; i--) {
        int j = (int)(celo_data_hash64(seed, CELO_DATA_STREAM('L', m), (uint64_t)i) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int c = 0; c < nclass; c++)
        if (map[c] >= 0)
            map[c] = perm[map[c]];
    return 0;
}

int celo_dataset_relabel(celo_dataset *out, const celo_dataset *in, const int *classes, int k, uint64_t seed, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!in->y || in->nclass < 1) {
        celo_seterr(err, errlen, "%s: no class labels to keep or permute", in->name);
        return -1;
    }
    int32_t map[CELO_MAX_CLASSES];
    char e[256];
    if (celo_label_map(in->nclass, classes, k, seed, map, e, sizeof e)) {
        celo_seterr(err, errlen, "%s: %s", in->name, e);
        return -1;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < in->n; i++)
        n += in->y[i] >= 0 && in->y[i] < in->nclass && map[in->y[i]] >= 0;
    out->x = celo_data_examples_alloc((size_t)(n * in->dim));
    out->y = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!out->x || !out->y) {
        celo_dataset_free(out);
        celo_seterr(err, errlen, "%s: out of memory", in->name);
        return -1;
    }
    int64_t o = 0;
    for (int64_t i = 0; i < in->n; i++) {
        int32_t c = in->y[i];
        if (c < 0 || c >= in->nclass || map[c] < 0)
            continue;
        memcpy(out->x + o * in->dim, in->x + i * in->dim, sizeof(float) * (size_t)in->dim);
        out->y[o++] = map[c];
    }
    snprintf(out->name, sizeof out->name, "%s", in->name);
    out->n = n;
    out->dim = in->dim;
    out->h = in->h, out->w = in->w;
    out->nclass = k ? k : in->nclass;
    out->mean = in->mean, out->std = in->std;
    return 0;
}
