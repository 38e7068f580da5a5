/* step.c — executing one optimizer step of a compiled program over one tensor.
 *
 * The order is fixed by the pass numbers the compiler stored in the nodes (see celort.h): host values, then
 * for each element pass: the pass itself (compiled kernel or the interpreter, chunked over threads), the
 * combination of reduction partials, staged orthogonalizations, and the small per-tensor/row/column values
 * computed after it; finally the non-element state is committed. */
#include "celort.h"
#include "tape.h"
#include "facdom.h"
#include "mathf.h"

#include <limits.h>
#include <regex.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* ---- scalar semantics shared by every back end: the value of each map op, from runtime/ops.def ---- */
#define CELO_MAP(id, name, arity, cost, commutes, fn, value) \
    case CELO_OP_##id: return (value);
double celo_eval_op(int op, double a, double b, double c)
{
#define MATH(fn) fn
#define EXP_(x)  exp(x)
    switch (op) {
#include "ops.def"
    default: return NAN;
    }
#undef MATH
#undef EXP_
}

/* Element-wise arithmetic is float32, exactly as the compiled kernels do it (no contraction, no fast-math). */
#define CELO_MAP(id, name, arity, cost, commutes, fn, value) \
    case CELO_OP_##id: return (value);
static float eval_opf(int op, float a, float b, float c)
{
#define MATH(fn) fn##f
#define EXP_(x)  celo_expf(x)
    switch (op) {
#include "ops.def"
    default: return NAN;
    }
#undef MATH
#undef EXP_
}

static int is_elem_reduction(const celo_program *P, const celo_node *x)
{
    return celo_is_pass_reduction(P, x);
}

/* ---- state ---- */
static int64_t part_len(int dom, int64_t n, int64_t R, int64_t C);
static int64_t dom_len(int dom, int64_t n, int64_t R, int64_t C)
{
    return dom == CELO_ELEM ? n : dom == CELO_ROW ? R : dom == CELO_COL ? C : 1;
}

typedef struct {
    /* scratch kept between steps so that a step allocates nothing */
    celo_tape tape; /* the values before pass 1 (runtime/tape.h) */
    int *small;     /* per pass k >= 1: the non-element nodes computed after it, small[small_at[k] ..] */
    int *small_at;  /* npass + 2 offsets */
    int *reds;      /* element reductions (the pass's partials), in node order */
    int nreds;
    int *orthos; /* ORTHO nodes */
    int northos;
    double *val;         /* value of every host/scalar node (double) */
    float *sc;           /* the same, as float: the kernels' scalar block */
    float **ptr;         /* kernel pointer table */
    float *vecs;         /* ROW/COL/ORTHO scratch of the nodes */
    double *parts;       /* reduction partials of all chunks */
    double ***chunkpart; /* per chunk: pointer table indexed by node */
    int nchunks;
} scratch;

/* doubles of one chunk's partial: a COL partial carries C floats of blocking scratch after its C doubles */
static int64_t part_len(int dom, int64_t n, int64_t R, int64_t C)
{
    return dom == CELO_COL ? C + (C + 1) / 2 : dom_len(dom, n, R, C);
}

const celo_program *celo_program_select(const celo_program *P, int ndim, const char *name)
{
    if (!P->nvariant)
        return P;
    int r = ndim < 1 ? 1 : ndim > 8 ? 8 : ndim;
    unsigned mask = 0;
    for (int k = 0; k < P->npattern; k++) {
        regex_t re;
        if (regcomp(&re, P->pattern[k], REG_EXTENDED | REG_NOSUB))
            continue; /* the compiler checked every pattern: this does not happen */
        if (!regexec(&re, name ? name : "", 0, NULL, 0))
            mask |= 1u << k;
        regfree(&re);
    }
    return P->variant[P->classmap[(unsigned)(r - 1) << P->npattern | mask]];
}

int celo_program_has_op(const celo_program *P, int op)
{
    for (int j = 0; j < P->nnodes; j++)
        if (P->nodes[j].op == op)
            return 1;
    for (int v = 0; v < P->nvariant; v++)
        if (celo_program_has_op(P->variant[v], op))
            return 1;
    return 0;
}

celo_state *celo_state_new(const celo_program *P, int ndim, const int64_t *shape)
{
    return celo_state_new_named(P, ndim, shape, NULL);
}

celo_state *celo_state_new_named(const celo_program *P, int ndim, const int64_t *shape, const char *name)
{
    if (ndim < 0 || ndim > 8)
        return NULL;
    P = celo_program_select(P, ndim, name);
    celo_state *st = calloc(1, sizeof *st);
    st->name = strdup(name ? name : "");
    st->prog = P;
    st->ndim = ndim;
    st->n = 1;
    for (int i = 0; i < ndim; i++) {
        st->shape[i] = shape[i];
        st->n *= shape[i];
    }
    st->C = ndim ? shape[ndim - 1] : 1;
    st->R = st->C ? st->n / st->C : 0;
    st->slot = calloc((size_t)P->nstate + 1, sizeof *st->slot);
    st->slotlen = calloc((size_t)P->nstate + 1, sizeof *st->slotlen);
    if (celo_fac_init(st)) {
        celo_state_free(st);
        return NULL;
    }
    int64_t total = 0;
    for (int s = 0; s < P->nstate; s++) {
        st->slotlen[s] = st->dlen[P->state[s].dom];
        total += (st->slotlen[s] + 15) & ~(int64_t)15; /* keep each slot 64-byte aligned */
    }
    if (posix_memalign((void **)&st->data, 64, (size_t)(total ? total : 16) * sizeof(float))) {
        st->data = NULL;
        celo_state_free(st);
        return NULL;
    }
    /* zeros until the first step initializes the slots: a tensor that never steps (frozen by train_only) then
     * saves zeros in a checkpoint, not whatever the allocation held */
    memset(st->data, 0, (size_t)(total ? total : 16) * sizeof(float));
    int64_t off = 0;
    for (int s = 0; s < P->nstate; s++) {
        st->slot[s] = st->data + off;
        off += (st->slotlen[s] + 15) & ~(int64_t)15;
    }
    return st;
}

static void scratch_free(scratch *s)
{
    if (!s)
        return;
    celo_tape_free(&s->tape);
    free(s->small);
    free(s->small_at);
    free(s->reds);
    free(s->orthos);
    free(s->val);
    free(s->sc);
    free(s->ptr);
    free(s->vecs);
    free(s->parts);
    if (s->chunkpart)
        for (int c = 0; c < s->nchunks; c++)
            free(s->chunkpart[c]);
    free(s->chunkpart);
    free(s);
}

int celo_state_copy(celo_state *dst, const celo_state *src)
{
    if (dst->prog != src->prog || dst->n != src->n || dst->R != src->R || dst->C != src->C ||
        memcmp(dst->dlen, src->dlen, sizeof dst->dlen))
        return -1;
    int64_t total = 0;
    for (int s = 0; s < src->prog->nstate; s++)
        total += (src->slotlen[s] + 15) & ~(int64_t)15;
    memcpy(dst->data, src->data, (size_t)total * sizeof(float));
    dst->t = src->t;
    return 0;
}

void celo_state_free(celo_state *st)
{
    if (!st)
        return;
    scratch_free(st->scratch);
    free(st->name);
    celo_fac_free(st);
    free(st->data);
    free(st->slot);
    free(st->slotlen);
    free(st);
}

void celo_program_defaults(const celo_program *P, float *hp)
{
    for (int i = 0; i < P->nhp; i++)
        hp[i] = (float)P->hp[i].def;
}

int celo_program_hp_index(const celo_program *P, const char *name)
{
    for (int i = 0; i < P->nhp; i++)
        if (!strcmp(P->hp[i].name, name))
            return i;
    return -1;
}

/* ---- threads: the one place that sets them ---- */
static int g_threads = 0;
extern void openblas_set_num_threads(int);
void celo_set_threads(int n)
{
    g_threads = n;
#ifdef _OPENMP
    if (n > 0)
        omp_set_num_threads(n);
#endif
    if (n > 0)
        openblas_set_num_threads(n);
}
int celo_threads(void)
{
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* Folds the float column scratch of pass k's COL reductions into their double partials (see celort.h). */
static void fold_cols(const celo_program *P, const int *reds, int nreds, int64_t C, double *const *part)
{
    for (int i = 0; i < nreds; i++) {
        int j = reds[i];
        const celo_node *x = &P->nodes[j];
        if (x->dom != CELO_COL)
            continue;
        double *acc = part[j];
        float *fs = (float *)(acc + C);
        for (int64_t c = 0; c < C; c++) {
            double e = fs[c];
            if (x->op == CELO_OP_SUM) {
                acc[c] += e;
                fs[c] = 0.0f;
            } else {
                if (e > acc[c] || isnan(e))
                    acc[c] = e;
                fs[c] = -INFINITY;
            }
        }
    }
}

/* ---- the interpreter: one element pass, node by node, element by element ---- */
static void interp_pass(const celo_program *P, int k, int64_t i0, int64_t i1, int64_t C, float *const *ptr,
                        const float *sc, double *const *part)
{
    int nn = P->nnodes, ns = P->nstate;
    float *v = malloc((size_t)nn * sizeof *v);
    /* the element-wise nodes, the per-row/column ones and this pass's reductions: an element visits only these
     * (a rule's host part may be ~100K nodes), the host and per-tensor values are set once */
    int *el = malloc(3 * ((size_t)nn + 1) * sizeof *el), *rc = el + nn + 1, *red = rc + nn + 1;
    int nel = 0, nrc = 0, nred = 0;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->dom == CELO_HOST || x->dom == CELO_SCALAR)
            v[j] = sc[j];
        else if (celo_dom_is_vec(x->dom))
            rc[nrc++] = j;
        else
            el[nel++] = j;
        if (is_elem_reduction(P, x) && x->pass == k)
            red[nred++] = j;
    }
    int64_t r0 = i0 / C, cur = -1;
    for (int64_t i = i0; i < i1; i++) {
        int64_t r = i / C, c = i % C;
        if (r != cur) {
            if (cur >= 0 && (cur - r0 + 1) % CELO_COL_BLOCK == 0)
                fold_cols(P, red, nred, C, part);
            cur = r;
        }
        for (int q = 0; q < nrc; q++) {
            int j = rc[q];
            const celo_node *x = &P->nodes[j];
            const float *vec = x->op == CELO_OP_STATE ? ptr[2 + x->aux] : ptr[2 + ns + j];
            if (x->dom == CELO_ROW || x->dom == CELO_COL) {
                v[j] = vec ? vec[x->dom == CELO_ROW ? r : c] : NAN;
            } else { /* factored: tab[1 + r] + tab[0] * c (celort.h) */
                const int32_t *tab = (const int32_t *)(const void *)ptr[2 + ns + nn + x->dom - CELO_FROW];
                v[j] = vec ? vec[tab[1 + r] + tab[0] * c] : NAN;
            }
        }
        for (int q = 0; q < nel; q++) {
            int j = el[q];
            const celo_node *x = &P->nodes[j];
            float val;
            if (x->op == CELO_OP_ORTHO) {
                if (x->pass == k)
                    ptr[2 + ns + j][i] = v[x->a];
                else if (x->pass < k)
                    v[j] = ptr[2 + ns + j][i];
                continue;
            }
            if (x->pass > k)
                continue;
            if ((x->flags & CELO_FLAG_STAGED) && x->pass < k) {
                v[j] = ptr[2 + ns + j][i];
                continue;
            }
            switch (x->op) {
            case CELO_OP_P: val = ptr[0][i]; break;
            case CELO_OP_G: val = ptr[1][i]; break;
            case CELO_OP_STATE: val = ptr[2 + x->aux][i]; break;
            default: val = eval_opf(x->op, v[x->a], x->b >= 0 ? v[x->b] : 0, x->c >= 0 ? v[x->c] : 0);
            }
            v[j] = val;
            if ((x->flags & CELO_FLAG_STAGED) && x->pass == k)
                ptr[2 + ns + j][i] = val;
        }
        /* reductions computed by this pass */
        for (int q = 0; q < nred; q++) {
            int j = red[q];
            const celo_node *x = &P->nodes[j];
            if (x->dom == CELO_COL) {
                float *fs = (float *)(part[j] + C) + c, a = v[x->a];
                if (x->op == CELO_OP_SUM)
                    *fs += a;
                else if (a > *fs || isnan(a))
                    *fs = a;
                continue;
            }
            double *acc = part[j] + (x->dom == CELO_ROW ? r : 0);
            double a = v[x->a];
            if (x->op == CELO_OP_SUM)
                *acc += a;
            else if (a > *acc || isnan(a))
                *acc = a;
        }
        if (k == P->npass) {
            for (int s = 0; s < ns; s++)
                if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                    ptr[2 + s][i] = v[P->state[s].value];
            if (P->p_value >= 0)
                ptr[0][i] = v[P->p_value];
        }
    }
    fold_cols(P, red, nred, C, part);
    free(el);
    free(v);
}

/* ---- the small computations between passes (shared with the OpenCL host side, runtime/clrun.c) ---- */
/* The vector of a per-row/column node (its state slot or its scratch in the kernel pointer table). */
static const float *small_vec(const celo_program *P, float *const *ptr, int j)
{
    const celo_node *x = &P->nodes[j];
    return ptr[x->op == CELO_OP_STATE ? 2 + x->aux : 2 + P->nstate + j];
}

/* Reduction (SUM or MAXR) of node a's values over q = 0..len-1, in order: a vector, or one broadcast value. */
static double small_reduce(const celo_program *P, const double *val, float *const *ptr, int op, int a, int64_t len)
{
    int vec = celo_dom_is_vec(P->nodes[a].dom);
    const float *v = vec ? small_vec(P, ptr, a) : NULL;
    double acc = op == CELO_OP_SUM ? 0.0 : -INFINITY;
    if (op == CELO_OP_SUM) {
        if (vec)
            for (int64_t q = 0; q < len; q++)
                acc += v[q];
        else
            for (int64_t q = 0; q < len; q++)
                acc += val[a];
        return acc;
    }
    for (int64_t q = 0; q < len; q++) {
        double e = vec ? v[q] : val[a];
        acc = e > acc || isnan(e) ? e : acc;
    }
    return acc;
}

/* Operand values of a block of a per-row/column node, as doubles: its vector, or one broadcast value. */
enum { SMALL_BLOCK = 256 };
static void small_operand(const celo_program *P, const celo_state *st, int xdom, const double *val, float *const *ptr,
                          int j, int64_t q0, int m, double *out)
{
    if (j < 0) {
        for (int i = 0; i < m; i++)
            out[i] = 0.0;
        return;
    }
    int dom = P->nodes[j].dom;
    if (dom == xdom) {
        const float *v = small_vec(P, ptr, j) + q0;
#pragma omp simd
        for (int i = 0; i < m; i++)
            out[i] = v[i];
    } else if (celo_dom_is_vec(dom)) { /* a coarser vector (FBAT in FROW, MAT in ROW, ...): its value at each q */
        const float *v = small_vec(P, ptr, j);
        int64_t idx[SMALL_BLOCK];
        celo_fac_map(st, xdom, dom, q0, m, idx);
        for (int i = 0; i < m; i++)
            out[i] = v[idx[i]];
    } else if (dom == CELO_HOST || dom == CELO_SCALAR) {
        for (int i = 0; i < m; i++)
            out[i] = val[j];
    } else
        for (int i = 0; i < m; i++)
            out[i] = NAN;
}

/* small_operand's value 0 */
static double small_one(const celo_program *P, const celo_state *st, int xdom, const double *val, float *const *ptr,
                        int j)
{
    if (j < 0)
        return 0.0;
    int dom = P->nodes[j].dom;
    if (dom == xdom)
        return small_vec(P, ptr, j)[0];
    if (celo_dom_is_vec(dom)) {
        int64_t idx[1];
        celo_fac_map(st, xdom, dom, 0, 1, idx);
        return small_vec(P, ptr, j)[idx[0]];
    }
    if (dom == CELO_HOST || dom == CELO_SCALAR)
        return val[j];
    return NAN;
}

void celo_eval_small(const celo_program *P, const celo_state *st, int j, int64_t t, const float *hp, double *val,
                     float *sc, float *const *ptr)
{
    const celo_node *x = &P->nodes[j];
    int64_t R = st->R, C = st->C;
    if (x->dom == CELO_HOST || x->dom == CELO_SCALAR) {
        double v;
        switch (x->op) {
        case CELO_OP_CONST: v = x->imm; break;
        case CELO_OP_HP: v = hp[x->aux]; break;
        case CELO_OP_T: v = (double)t; break;
        case CELO_OP_NSTEPS: v = (double)st->num_steps; break;
        case CELO_OP_THETA: v = st->theta[x->aux]; break; /* celo_theta_ready checked it is there */
        case CELO_OP_LOSS: v = st->loss; break;           /* and that the loss was given */
        case CELO_OP_STATE: v = st->slot[x->aux][0]; break;
        case CELO_OP_NUMEL: v = (double)st->n; break;
        case CELO_OP_NROWS: v = (double)R; break;
        case CELO_OP_NCOLS: v = (double)C; break;
        case CELO_OP_DLEN: v = (double)st->dlen[x->aux]; break;
        case CELO_OP_SUM:
        case CELO_OP_MAXR: {
            /* reduction of a broadcast per-tensor/row/column value over all elements */
            const celo_node *a = &P->nodes[x->a];
            int64_t len = a->dom == CELO_ROW ? R : a->dom == CELO_COL ? C : 1;
            double rep = a->dom == CELO_ROW ? (double)C : a->dom == CELO_COL ? (double)R : (double)st->n;
            if (celo_dom_is_fac(a->dom)) { /* each value stands for n / len elements */
                len = st->dlen[a->dom];
                rep = len ? (double)(st->n / len) : 0.0;
            }
            double acc = small_reduce(P, val, ptr, x->op, x->a, len);
            v = x->op == CELO_OP_SUM ? acc * rep : acc;
            break;
        }
        default: v = celo_eval_op(x->op, val[x->a], x->b >= 0 ? val[x->b] : 0, x->c >= 0 ? val[x->c] : 0);
        }
        val[j] = v;
        sc[j] = (float)v;
        return;
    }
    if (x->op == CELO_OP_STATE)
        return; /* read from the slot directly */
    float *out = ptr[2 + P->nstate + j];
    int64_t len = st->dlen[x->dom];
    if ((x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && celo_dom_is_fac(x->dom)) {
        /* a factored mean: of the element values the pass staged (or an ORTHO's buffer), or of a finer vector,
         * in order (the compiler makes no other). Its doubles are the one allocation of a step: the vector is
         * small next to the pass that staged it. */
        const celo_node *a = &P->nodes[x->a];
        const float *src = a->dom == CELO_ELEM ? ptr[2 + P->nstate + x->a] : small_vec(P, ptr, x->a);
        double *acc = malloc((size_t)(len ? len : 1) * sizeof *acc);
        if (!acc || !src) {
            for (int64_t q = 0; q < len; q++)
                out[q] = NAN;
        } else
            celo_fac_reduce(st, a->dom, x->dom, x->op, src, out, acc);
        free(acc);
        return;
    }
    if (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) {
        /* row reduction of a column value (or the reverse), or of a scalar: reduce the broadcast */
        const celo_node *a = &P->nodes[x->a];
        if (a->dom == x->dom) {
            const float *v = small_vec(P, ptr, x->a);
            double rep = x->op == CELO_OP_SUM ? (double)(x->dom == CELO_ROW ? C : R) : 1.0;
            for (int64_t q = 0; q < len; q++)
                out[q] = (float)(x->op == CELO_OP_SUM ? v[q] * rep : v[q]);
            return;
        }
        int64_t olen = a->dom == CELO_ROW ? R : a->dom == CELO_COL ? C : 1;
        double acc = small_reduce(P, val, ptr, x->op, x->a, olen);
        if (x->op == CELO_OP_SUM && olen == 1)
            acc *= (double)(x->dom == CELO_ROW ? C : R);
        for (int64_t q = 0; q < len; q++)
            out[q] = (float)acc;
        return;
    }
    if (len == 1) { /* one value (MAT of a matrix, ...): no blocks */
        out[0] =
            (float)celo_eval_op(x->op, small_one(P, st, x->dom, val, ptr, x->a),
                                small_one(P, st, x->dom, val, ptr, x->b), small_one(P, st, x->dom, val, ptr, x->c));
        return;
    }
    /* element by element in double, rounded to float once, in blocks whose loops the compiler can vectorize
     * (the same operations as celo_eval_op: vector and scalar double arithmetic round alike) */
    double A[SMALL_BLOCK], B[SMALL_BLOCK], Cv[SMALL_BLOCK];
    for (int64_t q0 = 0; q0 < len; q0 += SMALL_BLOCK) {
        int m = len - q0 < SMALL_BLOCK ? (int)(len - q0) : SMALL_BLOCK;
        float *o = out + q0;
        small_operand(P, st, x->dom, val, ptr, x->a, q0, m, A);
        small_operand(P, st, x->dom, val, ptr, x->b, q0, m, B);
        small_operand(P, st, x->dom, val, ptr, x->c, q0, m, Cv);
        switch (x->op) {
        case CELO_OP_ADD:
#pragma omp simd
            for (int i = 0; i < m; i++)
                o[i] = (float)(A[i] + B[i]);
            break;
        case CELO_OP_SUB:
#pragma omp simd
            for (int i = 0; i < m; i++)
                o[i] = (float)(A[i] - B[i]);
            break;
        case CELO_OP_MUL:
#pragma omp simd
            for (int i = 0; i < m; i++)
                o[i] = (float)(A[i] * B[i]);
            break;
        case CELO_OP_DIV:
#pragma omp simd
            for (int i = 0; i < m; i++)
                o[i] = (float)(A[i] / B[i]);
            break;
        /* the commonest others of the learned rules' per-row/column values, without a call per value (the
         * same expressions as ops.def) */
        case CELO_OP_RSQRT:
            for (int i = 0; i < m; i++)
                o[i] = (float)(1 / sqrt(A[i]));
            break;
        case CELO_OP_MAX:
            for (int i = 0; i < m; i++)
                o[i] = (float)fmax(A[i], B[i]);
            break;
        default:
            for (int i = 0; i < m; i++)
                o[i] = (float)celo_eval_op(x->op, A[i], B[i], Cv[i]);
        }
    }
}

int celo_commit_slot(const celo_program *P, celo_state *st, int s, const float *sc, float *const *ptr)
{
    int v = P->state[s].value;
    if (v < 0 || P->state[s].dom == CELO_ELEM)
        return 0;
    const celo_node *x = &P->nodes[v];
    float *dst = st->slot[s];
    if (x->dom == CELO_HOST || x->dom == CELO_SCALAR)
        for (int64_t q = 0; q < st->slotlen[s]; q++)
            dst[q] = sc[v];
    else {
        const float *src = x->op == CELO_OP_STATE ? ptr[2 + x->aux] : ptr[2 + P->nstate + v];
        if (x->dom != P->state[s].dom) { /* a coarser vector broadcast into the slot's domain */
            int64_t idx[SMALL_BLOCK];
            for (int64_t q0 = 0; q0 < st->slotlen[s]; q0 += SMALL_BLOCK) {
                int m = st->slotlen[s] - q0 < SMALL_BLOCK ? (int)(st->slotlen[s] - q0) : SMALL_BLOCK;
                celo_fac_map(st, P->state[s].dom, x->dom, q0, m, idx);
                for (int i = 0; i < m; i++)
                    dst[q0 + i] = src[idx[i]];
            }
        } else if (src != dst)
            memmove(dst, src, (size_t)st->slotlen[s] * sizeof *dst);
    }
    return 1;
}

static void eval_small(const celo_program *P, celo_state *st, scratch *S, int j, int64_t t, const float *hp)
{
    celo_eval_small(P, st, j, t, hp, S->val, S->sc, S->ptr);
}

/* ---- scratch set-up ---- */
static scratch *scratch_get(celo_state *st, int nchunks)
{
    const celo_program *P = st->prog;
    scratch *S = st->scratch;
    if (S && S->nchunks == nchunks)
        return S;
    scratch_free(S);
    S = calloc(1, sizeof *S);
    int nn = P->nnodes, ns = P->nstate;
    S->val = calloc((size_t)nn + 1, sizeof *S->val);
    S->sc = calloc((size_t)nn + 1, sizeof *S->sc);
    S->ptr = calloc((size_t)(2 + ns + nn + CELO_NFDOM), sizeof *S->ptr);
    int64_t vtot = 0, ptot = 0;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED))
            vtot += (st->n + 15) & ~(int64_t)15;
        else if (celo_dom_is_vec(x->dom) && x->op != CELO_OP_STATE)
            vtot += (st->dlen[x->dom] + 15) & ~(int64_t)15;
        if (is_elem_reduction(P, x))
            ptot += part_len(x->dom, st->n, st->R, st->C);
    }
    if (posix_memalign((void **)&S->vecs, 64, (size_t)(vtot ? vtot : 16) * sizeof(float)))
        S->vecs = NULL;
    S->parts = calloc((size_t)(ptot ? ptot : 1) * (size_t)nchunks, sizeof *S->parts);
    S->nchunks = nchunks;
    S->chunkpart = calloc((size_t)nchunks, sizeof *S->chunkpart);
    int64_t voff = 0;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED)) {
            S->ptr[2 + ns + j] = S->vecs + voff;
            voff += (st->n + 15) & ~(int64_t)15;
        } else if (celo_dom_is_vec(x->dom) && x->op != CELO_OP_STATE) {
            S->ptr[2 + ns + j] = S->vecs + voff;
            voff += (st->dlen[x->dom] + 15) & ~(int64_t)15;
        }
    }
    /* the lists a step walks instead of every node: element reductions, the small values after each pass */
    int nred = 0, northo = 0, nsmall = 0; /* sized to fit: a rule's host part may be ~100K nodes */
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        nred += is_elem_reduction(P, x);
        northo += x->op == CELO_OP_ORTHO;
        nsmall += x->dom != CELO_ELEM && x->pass > 0 && !is_elem_reduction(P, x);
    }
    S->reds = malloc(((size_t)nred + 1) * sizeof *S->reds);
    S->orthos = malloc(((size_t)northo + 1) * sizeof *S->orthos);
    S->small = malloc(((size_t)nsmall + 1) * sizeof *S->small);
    S->small_at = calloc((size_t)P->npass + 2, sizeof *S->small_at);
    if (!S->reds || !S->orthos || !S->small || !S->small_at || celo_tape_build(P, &S->tape, S->val, S->sc)) {
        free(S->vecs);
        S->vecs = NULL; /* the step reports "out of memory" */
    }
    for (int j = 0; S->reds && S->orthos && j < nn; j++) {
        if (is_elem_reduction(P, &P->nodes[j]))
            S->reds[S->nreds++] = j;
        if (P->nodes[j].op == CELO_OP_ORTHO)
            S->orthos[S->northos++] = j;
    }
    for (int k = 1, n = 0; S->small && S->small_at && k <= P->npass + 1; k++) {
        S->small_at[k] = n;
        for (int j = 0; k <= P->npass && j < nn; j++) {
            const celo_node *x = &P->nodes[j];
            if (x->dom != CELO_ELEM && x->pass == k && !is_elem_reduction(P, x))
                S->small[n++] = j;
        }
    }
    for (int d = 0; d < CELO_NFDOM; d++) /* the factored tables after the nodes (celort.h) */
        S->ptr[2 + ns + nn + d] = (float *)(void *)st->ftab[d];
    for (int c = 0; c < nchunks; c++) {
        S->chunkpart[c] = calloc((size_t)nn + 1, sizeof **S->chunkpart);
        int64_t poff = 0;
        for (int j = 0; j < nn; j++)
            if (is_elem_reduction(P, &P->nodes[j])) {
                S->chunkpart[c][j] = S->parts + (size_t)c * (size_t)ptot + poff;
                poff += part_len(P->nodes[j].dom, st->n, st->R, st->C);
            }
    }
    st->scratch = S;
    return S;
}

/* ---- CELO_PROFILE=1: time spent in each pass of each rule, printed at exit (for tuning the fuser) ----
 * Many run instances may step at once on different threads: the table is read and written only inside the
 * critical section celo_prof (taken only when profiling is on). */
#define PROF_MAX 32
static struct {
    const celo_program *prog; /* identity only: the program may be freed before exit */
    char name[64];
    int npass;
    double pass_s[17], small_s;
    long steps;
} prof[PROF_MAX];
static int prof_on = -1;

static double prof_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0;
#endif
}

static void prof_report(void)
{
    for (int i = 0; i < PROF_MAX && prof[i].prog && prof[i].steps; i++) {
        fprintf(stderr, "celo profile: %s, %ld steps:", prof[i].name, prof[i].steps);
        for (int k = 1; k <= prof[i].npass && k <= 16; k++)
            fprintf(stderr, " pass %d %.3f ms", k, 1e3 * prof[i].pass_s[k] / (double)prof[i].steps);
        fprintf(stderr, ", host/small %.3f ms per step\n", 1e3 * prof[i].small_s / (double)prof[i].steps);
    }
}

static int prof_slot(const celo_program *P)
{
    int on = __atomic_load_n(&prof_on, __ATOMIC_ACQUIRE), slot = -1;
    if (on < 0) {
#pragma omp critical(celo_prof)
        if ((on = prof_on) < 0) {
            const char *e = getenv("CELO_PROFILE");
            on = e && *e && strcmp(e, "0");
            if (on)
                atexit(prof_report);
            __atomic_store_n(&prof_on, on, __ATOMIC_RELEASE);
        }
    }
    if (!on)
        return -1;
#pragma omp critical(celo_prof)
    for (int i = 0; i < PROF_MAX && slot < 0; i++) {
        if (prof[i].prog == P)
            slot = i;
        else if (!prof[i].prog) {
            prof[i].prog = P;
            snprintf(prof[i].name, sizeof prof[i].name, "%s", P->name);
            prof[i].npass = P->npass;
            slot = i;
        }
    }
    return slot;
}

/* ---- the element passes: one thread team runs a run of passes, meeting at barriers ----
 * A team per pass would wake sleeping threads for each pass (OMP_WAIT_POLICY=passive, runtime/blas_env.c): tens
 * of microseconds each on a VM. Inside one team, a thread that waits for the other (the end of a pass, the host
 * work between passes) spins for a few microseconds, then sleeps on a futex: on a machine busy with other work the
 * team's threads may share a core, and a long spin would take the time the other thread needs. */
typedef struct {
    const celo_program *P;
    celo_state *st;
    scratch *S;
    const float *hp;
    int64_t t, per;
    int nchunks, use_interp;
    int ps;          /* profile slot, or -1 */
    double pt0, pkt; /* profile: the step's start, the time in passes */
    celo_step_opts *opts;
} step_run;

struct celo_team {
    atomic_int count, gen, sleepers;
    int n;
    int rc;       /* celo_step_team: thread 0's result of a serial part, read by all after a barrier */
    step_run run; /* celo_step_team: the step, set up by thread 0 */
};

enum { BARRIER_SPINS = 512 };

celo_team *celo_team_new(int n)
{
    celo_team *b = calloc(1, sizeof *b);
    if (b)
        b->n = n < 1 ? 1 : n;
    return b;
}

void celo_team_free(celo_team *b)
{
    free(b);
}

int celo_team_size(const celo_team *b)
{
    return b ? b->n : 1;
}

void celo_team_wait(celo_team *b)
{
    if (!b || b->n <= 1)
        return;
    int gen = atomic_load_explicit(&b->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->gen, gen + 1, memory_order_seq_cst);
#ifdef __linux__
        if (atomic_load_explicit(&b->sleepers, memory_order_seq_cst))
            syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
        return;
    }
    for (int spins = 0; spins < BARRIER_SPINS; spins++) {
        if (atomic_load_explicit(&b->gen, memory_order_acquire) != gen)
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    atomic_fetch_add_explicit(&b->sleepers, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&b->gen, memory_order_seq_cst) == gen) {
#ifdef __linux__
        /* returns at once when gen has already moved on */
        syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, gen, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    atomic_fetch_sub_explicit(&b->sleepers, 1, memory_order_relaxed);
}

/* identities of chunk c's partials of pass k, then chunk c of pass k (kernel or interpreter) */
static void run_chunk(const step_run *R, int k, int c)
{
    const celo_program *P = R->P;
    const celo_state *st = R->st;
    scratch *S = R->S;
    for (int i = 0; i < S->nreds; i++) {
        int j = S->reds[i];
        const celo_node *x = &P->nodes[j];
        if (x->pass != k)
            continue;
        int64_t len = dom_len(x->dom, st->n, st->R, st->C);
        double id = x->op == CELO_OP_SUM ? 0.0 : -INFINITY, *d = S->chunkpart[c][j];
        for (int64_t q = 0; q < len; q++)
            d[q] = id;
        if (x->dom == CELO_COL) {
            float *fs = (float *)(d + len);
            for (int64_t q = 0; q < len; q++)
                fs[q] = (float)id;
        }
    }
    int64_t i0 = (int64_t)c * R->per, i1 = i0 + R->per < st->n ? i0 + R->per : st->n;
    if (i0 >= i1)
        return;
    celo_kernel_fn fn = R->use_interp ? NULL : P->passes[k - 1].fn;
    if (fn)
        fn(i0, i1, st->C, S->ptr, S->sc, S->chunkpart[c]);
    else
        interp_pass(P, k, i0, i1, st->C, S->ptr, S->sc, S->chunkpart[c]);
}

/* Combines the chunks' partials of pass k in chunk order (the chunks depend on the size alone: the same bits on
 * any number of threads). */
static void combine(const step_run *R, int k)
{
    const celo_program *P = R->P;
    const celo_state *st = R->st;
    scratch *S = R->S;
    for (int i = 0; i < S->nreds; i++) {
        int j = S->reds[i];
        const celo_node *x = &P->nodes[j];
        if (x->pass != k)
            continue;
        int64_t len = dom_len(x->dom, st->n, st->R, st->C);
        double *acc = S->chunkpart[0][j]; /* combined in place: chunk 0's partial is refilled next step */
        for (int c = 1; c < R->nchunks; c++) {
            const double *e = S->chunkpart[c][j];
            if (x->op == CELO_OP_SUM)
#pragma omp simd
                for (int64_t q = 0; q < len; q++)
                    acc[q] += e[q];
            else
                for (int64_t q = 0; q < len; q++)
                    acc[q] = e[q] > acc[q] || isnan(e[q]) ? e[q] : acc[q];
        }
        if (x->dom == CELO_SCALAR) {
            S->val[j] = acc[0];
            S->sc[j] = (float)acc[0];
        } else {
            float *out = S->ptr[2 + P->nstate + j];
#pragma omp simd
            for (int64_t q = 0; q < len; q++)
                out[q] = (float)acc[q];
        }
    }
}

/* the per-tensor/row/column values computed after pass k */
static void stage_small(const step_run *R, int k)
{
    const scratch *S = R->S;
    for (int i = S->small_at[k]; i < S->small_at[k + 1]; i++)
        eval_small(R->P, R->st, R->S, S->small[i], R->t, R->hp);
}

static int has_ortho(const celo_program *P, const scratch *S, int k)
{
    for (int i = 0; i < S->northos; i++)
        if (P->nodes[S->orthos[i]].pass == k)
            return 1;
    return 0;
}

int celo_theta_ready(const celo_program *P, const celo_state *st, char *err, size_t errlen)
{
    if ((P->flags & CELO_PROG_READS_LOSS) && !st->has_loss) {
        snprintf(err, errlen,
                 "rule '%.80s' reads the loss: the step's training loss was not given (celo_bstate_set_loss; "
                 "celo apply --loss L.npy)",
                 P->name);
        return -1;
    }
    if (P->theta_len == 0)
        return 0;
    if (!st->theta) {
        snprintf(err, errlen, "rule '%.80s' is learned: its meta-parameters θ were not given", P->name);
        return -1;
    }
    if (st->ntheta != P->theta_len) {
        snprintf(err, errlen, "rule '%.80s' needs %lld θ values, got %lld", P->name, (long long)P->theta_len,
                 (long long)st->ntheta);
        return -1;
    }
    return 0;
}

static int step_fail(const step_run *R, const char *msg)
{
    if (R->opts)
        snprintf(R->opts->err, sizeof R->opts->err, "%s", msg);
    return -1;
}

/* The step's start, on one thread: scratch, host values (and stage-0 per-tensor values), and on the first
 * step the initial state. 0, or -1 with the message in R->opts. */
int celo_step_chunks(int64_t n)
{
    int c = 1;
    while (c < 8 && n / (2 * c) >= CELO_STEP_SPLIT_MIN / 2)
        c *= 2;
    return c;
}

static int step_begin(step_run *R, const celo_program *P, celo_state *st, float *p, const float *g, const float *hp,
                      int64_t t, celo_step_opts *opts)
{
    memset(R, 0, sizeof *R);
    R->opts = opts;
    R->ps = prof_slot(P);
    R->pt0 = R->ps >= 0 ? prof_now() : 0;
    if (st->prog != P) {
        char msg[200];
        snprintf(msg, sizeof msg, "state belongs to rule '%.80s', not '%.80s'", st->prog->name, P->name);
        return step_fail(R, msg);
    }
    char terr[200];
    if (celo_theta_ready(P, st, terr, sizeof terr))
        return step_fail(R, terr);
    int64_t n = st->n;
    int nchunks = celo_step_chunks(n);
    scratch *S = scratch_get(st, nchunks);
    if (!S->vecs)
        return step_fail(R, "out of memory");
    int ns = P->nstate;
    S->ptr[0] = p;
    S->ptr[1] = (float *)g;
    for (int s = 0; s < ns; s++)
        S->ptr[2 + s] = st->slot[s];
    R->P = P;
    R->st = st;
    R->S = S;
    R->hp = hp;
    R->t = t;
    R->nchunks = nchunks;
    R->use_interp = opts && opts->interp;
    int64_t per = (n + nchunks - 1) / nchunks;
    R->per = (per + 63) & ~(int64_t)63;

    celo_tape_run(P, st, &S->tape, 0, S->tape.n0, t, hp, S->val, S->sc, S->ptr); /* host values */
    if (st->t == 0)
        for (int s = 0; s < ns; s++) {
            float v = S->sc[P->state[s].init];
            for (int64_t q = 0; q < st->slotlen[s]; q++)
                st->slot[s][q] = v;
        }
    /* per-tensor, per-row and per-column values of stage 0 */
    celo_tape_run(P, st, &S->tape, S->tape.n0, S->tape.n, t, hp, S->val, S->sc, S->ptr);
    return 0;
}

/* Passes k0..k1 (a run without orthogonalizations before k1) on thread w of nw: each thread takes chunks
 * w, w + nw, ...; between passes thread 0 combines the partials and computes the small values while the others
 * wait. Ends when this thread's chunks of pass k1 are done (the caller's barrier ends the run). pk: profile
 * times of the passes (thread 0). */
static void step_run_passes(const step_run *R, int k0, int k1, int w, int nw, celo_team *team, double *pk)
{
    for (int k = k0; k <= k1; k++) {
        if (R->ps >= 0 && w == 0 && k <= 16)
            pk[k] = prof_now();
        for (int c = w; c < R->nchunks; c += nw)
            run_chunk(R, k, c);
        if (k == k1)
            break;
        celo_team_wait(team);
        if (w == 0) {
            if (R->ps >= 0 && k <= 16)
                pk[k] = prof_now() - pk[k];
            combine(R, k);
            stage_small(R, k);
        }
        celo_team_wait(team);
    }
}

/* After the run k0..k1, on one thread: the partials of k1, its orthogonalizations and small values. */
static int step_after_run(step_run *R, int k0, int k1, double *pk)
{
    const celo_program *P = R->P;
    if (R->ps >= 0 && k1 <= 16)
        pk[k1] = prof_now() - pk[k1];
    combine(R, k1);
    if (R->ps >= 0)
#pragma omp critical(celo_prof)
        for (int k = k0; k <= k1 && k <= 16; k++) {
            prof[R->ps].pass_s[k] += pk[k];
            R->pkt += pk[k];
        }
    for (int i = 0; i < R->S->northos; i++) {
        int j = R->S->orthos[i];
        const celo_node *x = &P->nodes[j];
        if (x->pass == k1)
            if (celo_orthogonalize_node(R->S->ptr[2 + P->nstate + j], R->st, x->aux))
                return step_fail(R, "orthogonalize: out of memory");
    }
    stage_small(R, k1);
    return 0;
}

/* The step's end, on one thread: commit the state that is not element-wise (element-wise state was written by
 * the last pass). */
static void step_end(step_run *R)
{
    const celo_program *P = R->P;
    for (int s = 0; s < P->nstate; s++)
        celo_commit_slot(P, R->st, s, R->S->sc, R->S->ptr);
    R->st->t = R->t;
    if (R->ps >= 0) {
        double small = prof_now() - R->pt0 - R->pkt;
#pragma omp critical(celo_prof)
        {
            prof[R->ps].small_s += small;
            prof[R->ps].steps++;
        }
    }
}

/* A rule with classes steps each tensor with its variant: the one its state was made with, when that is one of P's. */
static const celo_program *class_prog(const celo_program *P, const celo_state *st)
{
    for (int v = 0; v < P->nvariant; v++)
        if (st->prog == P->variant[v])
            return st->prog;
    return P;
}

static int next_run_end(const celo_program *P, const scratch *S, int k0)
{
    int k1 = k0;
    while (k1 < P->npass && !has_ortho(P, S, k1))
        k1++;
    return k1;
}

int celo_step(const celo_program *P, celo_state *st, float *p, const float *g, const float *hp, int64_t t,
              celo_step_opts *opts)
{
    int nt = opts && opts->nthreads > 0 ? opts->nthreads : celo_threads();
    P = class_prog(P, st);
    step_run R;
    if (step_begin(&R, P, st, p, g, hp, t, opts))
        return -1;
    if (nt > R.nchunks)
        nt = R.nchunks;
    /* Runs of passes up to the next orthogonalization, which runs outside the team (its GEMMs use the threads). */
    for (int k0 = 1, k1; k0 <= P->npass; k0 = k1 + 1) {
        k1 = next_run_end(P, R.S, k0);
        double pk[17] = {0}; /* profile: a pass's start time, then its length */
        if (nt > 1) {
            celo_team team = {.n = nt};
#pragma omp parallel num_threads(nt)
            {
                int w = 0, nw = 1;
#ifdef _OPENMP
                w = omp_get_thread_num();
                nw = omp_get_num_threads(); /* fewer than nchunks when called inside another team */
#endif
                if (w == 0)
                    team.n = nw;
#pragma omp barrier
                step_run_passes(&R, k0, k1, w, nw, &team, pk);
            }
        } else
            step_run_passes(&R, k0, k1, 0, 1, NULL, pk);
        if (step_after_run(&R, k0, k1, pk))
            return -1;
    }
    step_end(&R);
    return 0;
}

int celo_step_team(const celo_program *P, celo_state *st, float *p, const float *g, const float *hp, int64_t t,
                   celo_step_opts *opts, celo_team *team, int w)
{
    int nw = celo_team_size(team);
    P = class_prog(P, st);
    step_run *S = &team->run;
    if (w == 0)
        team->rc = step_begin(S, P, st, p, g, hp, t, opts);
    celo_team_wait(team);
    if (team->rc)
        return -1;
    for (int k0 = 1, k1; k0 <= P->npass; k0 = k1 + 1) {
        k1 = next_run_end(P, S->S, k0);
        double pk[17] = {0};
        step_run_passes(S, k0, k1, w, nw, team, pk);
        celo_team_wait(team);
        if (w == 0)
            team->rc = step_after_run(S, k0, k1, pk);
        celo_team_wait(team);
        if (team->rc)
            return -1;
    }
    if (w == 0)
        step_end(S);
    celo_team_wait(team); /* the next use of the team may set up another step */
    return 0;
}
