/* ortho.c — Newton–Schulz orthogonalization (Muon's quintic iteration) with OpenBLAS on fixed pieces (gemm.h:
 * the same bits on any number of threads).
 * X <- X / max(||X||_F, 1e-7); work on the wide orientation (rows <= cols); repeat `steps` times:
 *   A = X X^T,  B = b A + c A A,  X = a X + B X,   (a, b, c) = (3.4445, -4.7750, 2.0315). */
#include "celort.h"
#include "gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ortho_one(float *x, int64_t R, int64_t C, int steps)
{
    const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
    int64_t n = R * C;
    int tr = R > C;
    int64_t r = tr ? C : R, w = tr ? R : C; /* work matrix is r x w with r <= w */
    float *X = malloc((size_t)n * sizeof *X), *Y = malloc((size_t)n * sizeof *Y);
    float *A = malloc((size_t)(r * r) * sizeof *A), *B = malloc((size_t)(r * r) * sizeof *B);
    if (!X || !Y || !A || !B) {
        free(X), free(Y), free(A), free(B);
        return -1;
    }
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float nrm = (float)sqrt(ss);
    float inv = 1.0f / (nrm > 1e-7f ? nrm : 1e-7f);
    if (tr) {
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++)
                X[j * R + i] = x[i * C + j] * inv;
    } else
        for (int64_t i = 0; i < n; i++)
            X[i] = x[i] * inv;
    for (int s = 0; s < steps; s++) {
        celo_sgemm(0, 1, (int)r, (int)r, (int)w, 1.0f, X, (int)w, X, (int)w, 0.0f, A, (int)r);
        memcpy(B, A, (size_t)(r * r) * sizeof *B);
        celo_sgemm(0, 0, (int)r, (int)r, (int)r, c, A, (int)r, A, (int)r, b, B, (int)r);
        memcpy(Y, X, (size_t)n * sizeof *Y);
        celo_sgemm(0, 0, (int)r, (int)w, (int)r, 1.0f, B, (int)r, Y, (int)w, a, X, (int)w);
    }
    if (tr) {
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++)
                x[i * C + j] = X[j * R + i];
    } else
        memcpy(x, X, (size_t)n * sizeof *x);
    free(X), free(Y), free(A), free(B);
    return 0;
}

int celo_orthogonalize(float *x, int64_t B, int64_t R, int64_t C, int steps)
{
    for (int64_t i = 0; i < B; i++)
        if (ortho_one(x + i * R * C, R, C, steps))
            return -1;
    return 0;
}

int celo_orthogonalize_node(float *x, const celo_state *st, int aux)
{
    int64_t C = st->C, R = st->R, B = 1;
    if ((aux & CELO_ORTHO_LAST2) && st->ndim >= 3) {
        R = st->shape[st->ndim - 2];
        B = R && C ? st->n / (R * C) : 0;
    }
    return celo_orthogonalize(x, B, R, C, aux & (CELO_ORTHO_LAST2 - 1));
}
