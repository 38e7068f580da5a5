/* facdom.c — the factored domains of a tensor (celort.h, facdom.h).
 *
 * Every domain is the tensor's shape with a set of axes removed, its values in C order over the axes it keeps.
 * d0 and d1 come from a stable argsort of the sizes (ties by axis index): d0 the last, d1 the one before, so
 * that (4, 4, 4) has d1 = 1, d0 = 2. A tensor of one dimension or none has d0 = d1 = 0 and every factored domain
 * is one value. */
#include "facdom.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int celo_fac_used(const celo_program *P)
{
    for (int j = 0; j < P->nnodes; j++)
        if (celo_dom_is_fac(P->nodes[j].dom))
            return 1;
    for (int s = 0; s < P->nstate; s++)
        if (celo_dom_is_fac(P->state[s].dom))
            return 1;
    return 0;
}

unsigned celo_fac_removed(const celo_state *st, int dom)
{
    int nd = st->ndim;
    unsigned all = (1u << nd) - 1;
    switch (dom) {
    case CELO_ELEM: return 0;
    case CELO_ROW: return nd ? 1u << (nd - 1) : 0;
    case CELO_COL: return nd ? all & ~(1u << (nd - 1)) : 0;
    case CELO_FROW: return nd >= 2 ? 1u << st->d0 : all;
    case CELO_FCOL: return nd >= 2 ? 1u << st->d1 : all;
    case CELO_FBAT: return nd >= 2 ? (1u << st->d0) | (1u << st->d1) : all;
    case CELO_MAT: return nd >= 2 ? (1u << (nd - 1)) | (1u << (nd - 2)) : all;
    default: return all;
    }
}

/* stride[a] of axis a in the domain that removes `removed` (0 for a removed axis) */
static void strides(const celo_state *st, unsigned removed, int64_t *stride)
{
    int64_t s = 1;
    for (int a = st->ndim - 1; a >= 0; a--) {
        if (removed >> a & 1)
            stride[a] = 0;
        else {
            stride[a] = s;
            s *= st->shape[a];
        }
    }
}

int celo_fac_init(celo_state *st)
{
    int nd = st->ndim;
    st->d0 = st->d1 = 0;
    if (nd >= 2) {
        /* stable argsort of the sizes: d0 = the last, d1 = the one before it */
        int order[8];
        for (int a = 0; a < nd; a++) {
            int k = a;
            while (k > 0 && st->shape[order[k - 1]] > st->shape[a]) {
                order[k] = order[k - 1];
                k--;
            }
            order[k] = a;
        }
        st->d0 = order[nd - 1];
        st->d1 = order[nd - 2];
    }
    for (int d = 0; d < CELO_NDOM_; d++) {
        unsigned rm = celo_fac_removed(st, d);
        int64_t len = 1;
        for (int a = 0; a < nd; a++)
            if (!(rm >> a & 1))
                len *= st->shape[a];
        st->dlen[d] = len;
    }
    st->dlen[CELO_HOST] = st->dlen[CELO_SCALAR] = 1;
    st->dlen[CELO_ELEM] = st->n;
    st->dlen[CELO_ROW] = st->R;
    st->dlen[CELO_COL] = st->C;
    if (!celo_fac_used(st->prog))
        return 0;
    if (st->n > INT32_MAX)
        return -1;
    for (int d = 0; d < CELO_NFDOM; d++) {
        unsigned rm = celo_fac_removed(st, CELO_FROW + d);
        int64_t stride[8], idx[8] = {0}, base = 0;
        strides(st, rm, stride);
        int32_t *tab = malloc((size_t)(st->R + 1) * sizeof *tab);
        if (!tab)
            return -1;
        tab[0] = nd >= 1 && stride[nd - 1] ? 1 : 0;
        /* the rows in C order over axes 0..nd-2, an odometer carrying each row's base */
        for (int64_t r = 0; r < st->R; r++) {
            tab[1 + r] = (int32_t)base;
            for (int a = nd - 2; a >= 0; a--) {
                base += stride[a];
                if (++idx[a] < st->shape[a])
                    break;
                base -= stride[a] * st->shape[a];
                idx[a] = 0;
            }
        }
        st->ftab[d] = tab;
    }
    return 0;
}

void celo_fac_free(celo_state *st)
{
    for (int d = 0; d < CELO_NFDOM; d++) {
        free(st->ftab[d]);
        st->ftab[d] = NULL;
    }
}

/* The axes `from` keeps (in order), their sizes, and each one's stride in `to`; returns how many. */
/* The odometer step of a walk over m kept axes (sizes size, target strides ts): idx to the next multi-index, and the
 * target index t moved with it; returns the new t. */
static int64_t next_index(int m, int64_t *idx, const int64_t *size, const int64_t *ts, int64_t t)
{
    for (int k = m - 1; k >= 0; k--) {
        t += ts[k];
        if (++idx[k] < size[k])
            break;
        t -= ts[k] * size[k];
        idx[k] = 0;
    }
    return t;
}

static int kept(const celo_state *st, int from, int to, int *ax, int64_t *size, int64_t *tstride)
{
    unsigned rm = celo_fac_removed(st, from);
    int64_t ts[8];
    strides(st, celo_fac_removed(st, to), ts);
    int m = 0;
    for (int a = 0; a < st->ndim; a++)
        if (!(rm >> a & 1)) {
            ax[m] = a;
            size[m] = st->shape[a];
            tstride[m++] = ts[a];
        }
    return m;
}

/* The sum of the elements of an element value into a factored domain, row by row through its table: a row whose
 * values all meet in one (tab[0] = 0) is summed on its own (four interleaved accumulators, combined in a fixed
 * order) and then added; else each element adds into its own value. The order is fixed by the shape alone, and
 * every back end reduces through this function. */
typedef double v4d __attribute__((vector_size(32)));

/* The sum of one row (four interleaved accumulators, s0..s3 the lanes of s) */
static double row_sum(const float *x, int64_t C)
{
    v4d s = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 4 <= C; c += 4)
        s += (v4d){x[c], x[c + 1], x[c + 2], x[c + 3]};
    for (; c < C; c++)
        s[0] += x[c];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static void sum_rows(const celo_state *st, const int32_t *tab, const float *src, double *acc)
{
    int64_t R = st->R, C = st->C;
    if (tab[0]) {
        for (int64_t r = 0; r < R; r++) {
            const float *x = src + r * C;
            double *a = acc + tab[1 + r];
#pragma omp simd
            for (int64_t c = 0; c < C; c++)
                a[c] += x[c];
        }
        return;
    }
    /* four rows at a time, each row's sum as row_sum computes it, added in row order */
    int64_t r = 0;
    for (; r + 4 <= R; r += 4) {
        const float *x0 = src + r * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        v4d s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
        int64_t c = 0;
        for (; c + 4 <= C; c += 4) {
            s0 += (v4d){x0[c], x0[c + 1], x0[c + 2], x0[c + 3]};
            s1 += (v4d){x1[c], x1[c + 1], x1[c + 2], x1[c + 3]};
            s2 += (v4d){x2[c], x2[c + 1], x2[c + 2], x2[c + 3]};
            s3 += (v4d){x3[c], x3[c + 1], x3[c + 2], x3[c + 3]};
        }
        for (; c < C; c++) {
            s0[0] += x0[c];
            s1[0] += x1[c];
            s2[0] += x2[c];
            s3[0] += x3[c];
        }
        acc[tab[1 + r]] += (s0[0] + s0[1]) + (s0[2] + s0[3]);
        acc[tab[2 + r]] += (s1[0] + s1[1]) + (s1[2] + s1[3]);
        acc[tab[3 + r]] += (s2[0] + s2[1]) + (s2[2] + s2[3]);
        acc[tab[4 + r]] += (s3[0] + s3[1]) + (s3[2] + s3[3]);
    }
    for (; r < R; r++)
        acc[tab[1 + r]] += row_sum(src + r * C, C);
}

void celo_fac_reduce(const celo_state *st, int from, int to, int op, const float *src, float *out, double *acc)
{
    int ax[8], m;
    int64_t size[8], ts[8], idx[8] = {0}, t = 0, len = st->dlen[from], tlen = st->dlen[to];
    m = kept(st, from, to, ax, size, ts);
    double id = op == CELO_OP_SUM ? 0.0 : -INFINITY;
    for (int64_t q = 0; q < tlen; q++)
        acc[q] = id;
    if (from == CELO_ELEM && op == CELO_OP_SUM && celo_dom_is_fac(to) && st->ftab[to - CELO_FROW]) {
        sum_rows(st, st->ftab[to - CELO_FROW], src, acc);
        len = 0;
    }
    /* the value being reduced into stays in a register while the index stays on it (a run of a vector
     * reduced into one value: MAT): the same operations on each value, in the same order */
    int64_t tc = 0;
    double cur = len ? acc[0] : 0;
    for (int64_t q = 0; q < len; q++) {
        double e = src[q];
        if (op == CELO_OP_SUM)
            cur += e;
        else if (e > cur || isnan(e))
            cur = e;
        t = next_index(m, idx, size, ts, t);
        if (t != tc) {
            acc[tc] = cur;
            cur = acc[tc = t];
        }
    }
    if (len)
        acc[tc] = cur;
    for (int64_t q = 0; q < tlen; q++)
        out[q] = (float)acc[q];
}

void celo_fac_map(const celo_state *st, int from, int to, int64_t q0, int m_, int64_t *out)
{
    int ax[8], m;
    int64_t size[8], ts[8], idx[8] = {0}, t = 0;
    m = kept(st, from, to, ax, size, ts);
    /* the multi-index of value q0 */
    int64_t q = q0;
    for (int k = m - 1; k >= 0; k--) {
        idx[k] = size[k] ? q % size[k] : 0;
        q = size[k] ? q / size[k] : 0;
        t += idx[k] * ts[k];
    }
    for (int i = 0; i < m_; i++) {
        out[i] = t;
        t = next_index(m, idx, size, ts, t);
    }
}
