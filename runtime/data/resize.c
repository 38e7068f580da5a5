/*
 * resize.c — resampling images to a smaller square (data.h's celo_resize methods): the separable weights are
 * computed once per data set (celo_resizer), then applied to every image.
 */
#include "data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* W [out, in]: the separable 1-D resampling matrix of a method. */
static void resize_weights(int in, int out, int method, double *W)
{
    memset(W, 0, sizeof(double) * (size_t)in * (size_t)out);
    double s = (double)in / out;
    for (int o = 0; o < out; o++) {
        double *row = W + (size_t)o * in;
        if (method == CELO_RESIZE_BILINEAR) {
            double c = (o + 0.5) * s - 0.5;
            double f = floor(c);
            int i0 = (int)f, i1 = i0 + 1;
            double frac = c - f;
            if (i0 < 0)
                i0 = 0;
            if (i1 < 0)
                i1 = 0;
            if (i0 > in - 1)
                i0 = in - 1;
            if (i1 > in - 1)
                i1 = in - 1;
            row[i0] += 1.0 - frac;
            row[i1] += frac;
        } else {
            double a = o * s, b = (o + 1) * s;
            for (int i = (int)floor(a); i < in && i < b; i++) {
                double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
                if (hi > lo)
                    row[i] += (hi - lo) / s;
            }
        }
    }
}

void celo_resizer_apply(const celo_resizer *r, const float *in, float *out, double *tmp)
{
    int h = r->h, w = r->w, size = r->size;
    const double *Wh = r->Wh, *Ww = r->Ww;
    /* the weights are sparse (a handful of inputs per output): skip the zeros */
    for (int o = 0; o < size; o++) {
        double *trow = tmp + (size_t)o * w;
        for (int j = 0; j < w; j++)
            trow[j] = 0;
        for (int i = 0; i < h; i++) {
            double wt = Wh[(size_t)o * h + i];
            if (wt == 0)
                continue;
            const float *irow = in + (size_t)i * w;
            for (int j = 0; j < w; j++)
                trow[j] += wt * irow[j];
        }
    }
    for (int o = 0; o < size; o++)
        for (int p = 0; p < size; p++) {
            const double *wrow = Ww + (size_t)p * w, *trow = tmp + (size_t)o * w;
            double acc = 0;
            for (int j = 0; j < w; j++)
                if (wrow[j] != 0)
                    acc += trow[j] * wrow[j];
            out[(size_t)o * size + p] = (float)acc;
        }
}

int celo_resizer_init(celo_resizer *r, int h, int w, int size, int method)
{
    r->h = h, r->w = w, r->size = size;
    r->Wh = malloc(sizeof(double) * (size_t)size * (size_t)h);
    r->Ww = malloc(sizeof(double) * (size_t)size * (size_t)w);
    if (!r->Wh || !r->Ww) {
        celo_resizer_free(r);
        return -1;
    }
    resize_weights(h, size, method, r->Wh);
    resize_weights(w, size, method, r->Ww);
    return 0;
}

void celo_resizer_free(celo_resizer *r)
{
    free(r->Wh);
    free(r->Ww);
    r->Wh = r->Ww = NULL;
}

void celo_image_resize(const float *in, int h, int w, float *out, int size, int method)
{
    celo_resizer r;
    double *tmp = malloc(sizeof(double) * (size_t)size * (size_t)w);
    if (tmp && celo_resizer_init(&r, h, w, size, method) == 0) {
        celo_resizer_apply(&r, in, out, tmp);
        celo_resizer_free(&r);
    }
    free(tmp);
}
