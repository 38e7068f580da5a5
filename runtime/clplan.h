/* clplan.h — what one element pass of a program touches, as the OpenCL back end sees it.
 *
 * Shared by the code generator (compiler/opencl.c), which turns it into a kernel signature, and the host side
 * (runtime/clrun.c), which binds buffers and scalars to that signature: both call celo_clpass_analyse, so the
 * argument lists cannot drift apart. Header-only (static functions) so that neither library depends on the
 * other.
 *
 * Every kernel starts with four fixed arguments (long n, long R, long C, long per), then the arguments listed
 * in the plan, in order:
 *   CELO_CLARG_BUF  __global float buffer with the ABI pointer index idx (0 p, 1 g, 2 + s state slot s,
 *                   2 + nstate + j scratch of node j: a ROW/COL vector, or a staged value: ORTHO, or
 *                   a node with CELO_FLAG_STAGED, stored by pass x->pass and loaded by later passes;
 *                   2 + nstate + nnodes + d: the int32 table of factored domain CELO_FROW + d, celort.h)
 *   CELO_CLARG_SC   float: the value of HOST/SCALAR node idx
 *   CELO_CLARG_PART __global acc_t partials of the reduction node idx computed by this pass
 *   CELO_CLARG_SCBUF __constant float buffer: the pass's host/scalar values packed, in the order of pi->packed,
 *                   used instead of CELO_CLARG_SC arguments when those would not fit the 1024 bytes of kernel
 *                   arguments every OpenCL device takes (a learned rule's θ: hundreds of host values)
 * A pass that computes reductions ("chunked") runs one work-item per contiguous chunk of `per` elements;
 * partials are laid out as
 *   SCALAR  part[w]                      one per work-item
 *   ROW     part[r] for rows lying whole inside the chunk of one work-item, part[R + 2w] for the first row
 *           of work-item w when it is cut, part[R + 2w + 1] for its last row when it is cut (and not the first)
 *   COL     part[w * C + c]              one row of C partials per work-item, followed (after nwi * C
 *                                        partials) by nwi rows of C floats: each work-item adds its rows into
 *                                        its float row and folds it into its partials every CELO_COL_BLOCK rows
 *                                        (counted from its first row) and at its end, as runtime/step.c does
 * Other passes run one work-item per element: 1-D (gid 0 = element) when the pass needs no row/column
 * index, else 2-D (gid 0 = column, gid 1 = row). */
#ifndef CELO_CLPLAN_H
#define CELO_CLPLAN_H

#include "celort.h"

#include <stdlib.h>

enum { CELO_CLARG_BUF = 0, CELO_CLARG_SC, CELO_CLARG_PART, CELO_CLARG_SCBUF };
/* the kernel-argument bytes every device accepts (CL_DEVICE_MAX_PARAMETER_SIZE is at least this) */
enum { CELO_CLPLAN_PARAM_MIN = 1024 };

typedef struct {
    int kind; /* CELO_CLARG_* */
    int idx;  /* BUF: ABI pointer index; SC, PART: node */
} celo_clarg;

typedef struct {
    int k;       /* 1-based pass number */
    int final;   /* the last pass: writes p and element-wise state */
    int chunked; /* computes reductions: one work-item per chunk */
    int nested;  /* needs the row/column index of each element */
    char *comp;  /* comp[j]: element-wise node j is computed by this pass */
    int nargs;
    celo_clarg *args;
    int npacked; /* with a CELO_CLARG_SCBUF argument: how many values it holds */
    int *packed; /* their nodes, in buffer order */
} celo_clpass;

static inline int celo_clplan_is_red(const celo_program *P, const celo_node *x)
{
    return celo_is_pass_reduction(P, x);
}

/* A factored mean of an element value: its pass stages the operand, the host reduces it (runtime/clrun.c). */
static inline int celo_clplan_is_facred(const celo_program *P, const celo_node *x)
{
    return (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && P->nodes[x->a].dom == CELO_ELEM &&
           celo_dom_is_fac(x->dom);
}

/* The buffer index of factored domain dom's table. */
static inline int celo_clplan_ftab(const celo_program *P, int dom)
{
    return 2 + P->nstate + P->nnodes + dom - CELO_FROW;
}

/* The buffer a ROW/COL value is read from: its state slot, or the node's own scratch vector. */
static inline int celo_clplan_vec_src(const celo_program *P, int j)
{
    const celo_node *x = &P->nodes[j];
    return x->op == CELO_OP_STATE ? 2 + x->aux : 2 + P->nstate + j;
}

/* Values kept in a scratch buffer between passes: ORTHO operands, and costly values the compiler staged. */
static inline int celo_clplan_staged(const celo_node *x)
{
    return x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED);
}

static inline void celo_clplan_need(const celo_program *P, celo_clpass *pi, int j)
{
    const celo_node *x = &P->nodes[j];
    if (x->dom != CELO_ELEM || pi->comp[j])
        return;
    pi->comp[j] = 1;
    if (celo_clplan_staged(x) && x->pass < pi->k)
        return; /* loaded from its staged buffer */
    if (x->a >= 0)
        celo_clplan_need(P, pi, x->a);
    if (x->b >= 0)
        celo_clplan_need(P, pi, x->b);
    if (x->c >= 0)
        celo_clplan_need(P, pi, x->c);
}

static inline int celo_clplan_add(celo_clpass *pi, int kind, int idx)
{
    for (int i = 0; i < pi->nargs; i++)
        if (pi->args[i].kind == kind && pi->args[i].idx == idx)
            return 0;
    celo_clarg *a = realloc(pi->args, sizeof *a * (size_t)(pi->nargs + 1));
    if (!a)
        return -1;
    pi->args = a;
    pi->args[pi->nargs].kind = kind;
    pi->args[pi->nargs].idx = idx;
    pi->nargs++;
    return 0;
}

/* Arguments for reading non-element value o inside the loop. */
static inline int celo_clplan_use(const celo_program *P, celo_clpass *pi, int o)
{
    const celo_node *y = &P->nodes[o];
    if (celo_dom_is_vec(y->dom)) {
        pi->nested = 1;
        if (celo_dom_is_fac(y->dom) && celo_clplan_add(pi, CELO_CLARG_BUF, celo_clplan_ftab(P, y->dom)))
            return -1;
        return celo_clplan_add(pi, CELO_CLARG_BUF, celo_clplan_vec_src(P, o));
    }
    if ((y->dom == CELO_HOST || y->dom == CELO_SCALAR) && y->op != CELO_OP_CONST)
        return celo_clplan_add(pi, CELO_CLARG_SC, o);
    return 0;
}

static inline void celo_clpass_free(celo_clpass *pi)
{
    free(pi->comp);
    free(pi->args);
    free(pi->packed);
    pi->comp = NULL;
    pi->args = NULL;
    pi->packed = NULL;
    pi->nargs = 0;
    pi->npacked = 0;
}

/* When the arguments would pass CELO_CLPLAN_PARAM_MIN bytes, the float arguments move into one packed buffer. */
static inline int celo_clplan_pack(celo_clpass *pi)
{
    size_t bytes = 4 * 8; /* n, R, C, per */
    int nsc = 0;
    for (int i = 0; i < pi->nargs; i++) {
        bytes += pi->args[i].kind == CELO_CLARG_SC ? 4 : 8;
        nsc += pi->args[i].kind == CELO_CLARG_SC;
    }
    if (bytes <= CELO_CLPLAN_PARAM_MIN)
        return 0;
    if (!(pi->packed = malloc(sizeof *pi->packed * (size_t)nsc)))
        return -1;
    int m = 0;
    for (int i = 0; i < pi->nargs; i++)
        if (pi->args[i].kind == CELO_CLARG_SC)
            pi->packed[pi->npacked++] = pi->args[i].idx;
        else
            pi->args[m++] = pi->args[i];
    pi->nargs = m;
    return celo_clplan_add(pi, CELO_CLARG_SCBUF, 0);
}

/* Fills *pi for pass k (1-based). Returns 0, or -1 when out of memory. */
static inline int celo_clpass_analyse(const celo_program *P, int k, celo_clpass *pi)
{
    int nn = P->nnodes, rc = 0;
    pi->k = k;
    pi->final = k == P->npass;
    pi->chunked = 0;
    pi->nested = 0;
    pi->nargs = 0;
    pi->args = NULL;
    pi->npacked = 0;
    pi->packed = NULL;
    pi->comp = calloc((size_t)nn + 1, 1);
    if (!pi->comp)
        return -1;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if ((celo_clplan_is_red(P, x) || x->op == CELO_OP_ORTHO) && x->pass == k)
            celo_clplan_need(P, pi, x->a);
        if ((x->flags & CELO_FLAG_STAGED) && x->pass == k && x->dom == CELO_ELEM)
            celo_clplan_need(P, pi, j); /* the operand of a factored mean */
    }
    if (pi->final) {
        if (P->p_value >= 0)
            celo_clplan_need(P, pi, P->p_value);
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                celo_clplan_need(P, pi, P->state[s].value);
    }
    for (int j = 0; j < nn && !rc; j++) {
        const celo_node *x = &P->nodes[j];
        if (!pi->comp[j])
            continue;
        if (x->op == CELO_OP_P)
            rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 0);
        else if (x->op == CELO_OP_G)
            rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 1);
        else if (x->op == CELO_OP_STATE)
            rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 2 + x->aux);
        if (celo_clplan_staged(x)) /* also an input staged for a factored mean */
            rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 2 + P->nstate + j);
        if (celo_clplan_staged(x) && x->pass < k)
            continue;
        if (x->op == CELO_OP_P || x->op == CELO_OP_G || x->op == CELO_OP_STATE)
            continue;
        int ops[3] = {x->a, x->b, x->c};
        for (int q = 0; q < 3; q++)
            if (ops[q] >= 0)
                rc |= celo_clplan_use(P, pi, ops[q]);
    }
    if (pi->final) {
        rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 0);
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 2 + s);
        if (P->p_value >= 0)
            rc |= celo_clplan_use(P, pi, P->p_value);
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                rc |= celo_clplan_use(P, pi, P->state[s].value);
    }
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO && x->pass == k) {
            rc |= celo_clplan_use(P, pi, x->a);
            rc |= celo_clplan_add(pi, CELO_CLARG_BUF, 2 + P->nstate + j);
        }
        if (celo_clplan_is_red(P, x) && x->pass == k) {
            rc |= celo_clplan_add(pi, CELO_CLARG_PART, j);
            pi->chunked = 1;
            if (x->dom != CELO_SCALAR)
                pi->nested = 1;
        }
    }
    if (!rc)
        rc = celo_clplan_pack(pi);
    if (rc) {
        celo_clpass_free(pi);
        return -1;
    }
    return 0;
}

#endif
