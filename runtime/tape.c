/* tape.c — the host tape (tape.h): the values a step computes before its first pass, as flat instructions. */
#include "tape.h"

#include <stdlib.h>

static int is_elem_reduction(const celo_program *P, const celo_node *x)
{
    return (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && P->nodes[x->a].dom == CELO_ELEM;
}

static int is_map_op(int op)
{
    switch (op) {
#define CELO_MAP(id, ...) case CELO_OP_##id:
#include "ops.def"
        return 1;
    default: return 0;
    }
}

enum {
    TP_CALL,
    TP_HP,
    TP_T,
    TP_THETA,
    TP_LOSS,
    TP_SSTATE,
    TP_ADD,
    TP_SUB,
    TP_MUL,
    TP_DIV,
    TP_MAP,
    TP_ADDMUL_T,
    TP_DOT
};

/* Chains of TP_ADDMUL_T whose partial sums feed only the next one (an unrolled dot product, acc + x0 θ0 + x1 θ1 +
 * …) become one TP_DOT: the sum in a register, in the same order, instead of a store and a load per term. Only
 * within one part of the tape (host values, then per-tensor ones). 0, or -1 out of memory. */
static int tape_chains(celo_tape *S, const int *uses, int nn)
{
    int n = S->n, *ent = malloc(((size_t)nn + 1) * sizeof *ent), *prev = malloc(((size_t)n + 1) * sizeof *prev);
    char *more = calloc((size_t)n + 1, 1);
    celo_tape_ent *out = malloc(((size_t)n + 1) * sizeof *out);
    S->dot = malloc(((size_t)n + 1) * 2 * sizeof *S->dot);
    if (!ent || !prev || !more || !out || !S->dot) {
        free(ent);
        free(prev);
        free(more);
        free(out);
        return -1;
    }
    for (int j = 0; j < nn; j++)
        ent[j] = -1;
    for (int i = 0; i < n; i++) {
        const celo_tape_ent *e = &S->ent[i];
        prev[i] = -1;
        if (e->op != TP_ADDMUL_T)
            continue;
        int q = ent[e->a];
        if (q >= 0 && uses[e->a] == 1 && (q < S->n0) == (i < S->n0)) {
            prev[i] = q;
            more[q] = 1;
        }
        ent[e->d] = i;
    }
    int m = 0, ndot = 0, n0 = 0;
    for (int i = 0; i < n; i++) {
        const celo_tape_ent *e = &S->ent[i];
        if (e->op == TP_ADDMUL_T && more[i])
            continue; /* a partial sum: computed inside the chain's TP_DOT */
        if (e->op == TP_ADDMUL_T && prev[i] >= 0) {
            int h = i, len = 1;
            while (prev[h] >= 0)
                h = prev[h], len++;
            celo_tape_ent d = {TP_DOT, e->d, S->ent[h].a, len, -1, ndot};
            for (int q = i, at = ndot + len - 1; q >= 0; q = prev[q], at--) {
                S->dot[2 * at] = S->ent[q].b;
                S->dot[2 * at + 1] = S->ent[q].k;
            }
            ndot += len;
            out[m++] = d;
        } else
            out[m++] = *e;
        if (i < S->n0)
            n0 = m;
    }
    free(S->ent);
    S->ent = out;
    S->n = m;
    /* kept for every state of the rule: give back what the chains saved */
    celo_tape_ent *fit = realloc(S->ent, ((size_t)m + 1) * sizeof *fit);
    int32_t *dfit = realloc(S->dot, ((size_t)ndot + 1) * 2 * sizeof *dfit);
    S->ent = fit ? fit : S->ent;
    S->dot = dfit ? dfit : S->dot;
    S->n0 = S->n0 ? n0 : 0;
    free(ent);
    free(prev);
    free(more);
    return 0;
}

static int tape_node(const celo_program *P, const celo_node *x)
{
    return x->pass == 0 && x->dom != CELO_ELEM && !is_elem_reduction(P, x);
}

int celo_tape_build(const celo_program *P, celo_tape *S, double *val, float *sc)
{
    int nn = P->nnodes;
    int *uses = calloc((size_t)nn + 1, sizeof *uses), *fold = calloc((size_t)nn + 1, sizeof *fold);
    int *thfold = calloc((size_t)nn + 1, sizeof *thfold);
    S->ent = malloc(((size_t)nn + 1) * sizeof *S->ent);
    if (!uses || !fold || !thfold || !S->ent) {
        free(uses);
        free(fold);
        free(thfold);
        return -1;
    }
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        int ops[3] = {x->a, x->b, x->c};
        for (int o = 0; o < 3; o++)
            if (ops[o] >= 0)
                uses[ops[o]]++;
    }
    for (int s = 0; s < P->nstate; s++) {
        uses[P->state[s].init]++;
        if (P->state[s].value >= 0)
            uses[P->state[s].value]++;
    }
    if (P->p_value >= 0)
        uses[P->p_value]++;
    /* fold[m] = 1 + the θ node of a product m computed inside its one sum (host or per-tensor, before pass 1) */
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op != CELO_OP_ADD || !tape_node(P, x) || (x->dom != CELO_HOST && x->dom != CELO_SCALAR))
            continue;
        int ops[2] = {x->a, x->b};
        for (int o = 0; o < 2; o++) {
            const celo_node *m = &P->nodes[ops[o]];
            if (m->op != CELO_OP_MUL || uses[ops[o]] != 1 || !tape_node(P, m))
                continue;
            int th = P->nodes[m->b].op == CELO_OP_THETA ? m->b : P->nodes[m->a].op == CELO_OP_THETA ? m->a : -1;
            if (th < 0)
                continue;
            fold[ops[o]] = 1 + th;
            thfold[th]++;
            break;
        }
    }
    int n = 0;
    for (int host = 1; host >= 0; host--) {
        for (int j = 0; j < nn; j++) {
            const celo_node *x = &P->nodes[j];
            if (!tape_node(P, x) || (x->dom == CELO_HOST) != host || fold[j] ||
                (x->op == CELO_OP_THETA && thfold[j] == uses[j]))
                continue;
            celo_tape_ent e = {TP_CALL, j, x->a, x->b, x->c, 0};
            int dense = x->dom == CELO_HOST || x->dom == CELO_SCALAR;
            switch (x->op) {
            case CELO_OP_CONST:
                val[j] = x->imm;
                sc[j] = (float)x->imm;
                continue;
            case CELO_OP_HP:
                e.op = TP_HP;
                e.k = x->aux;
                break;
            case CELO_OP_T: e.op = TP_T; break;
            case CELO_OP_THETA:
                e.op = TP_THETA;
                e.k = x->aux;
                break;
            case CELO_OP_LOSS: e.op = TP_LOSS; break;
            case CELO_OP_STATE:
                e.op = dense ? TP_SSTATE : TP_CALL;
                e.k = x->aux;
                break;
            case CELO_OP_ADD:
                e.op = TP_ADD;
                for (int o = 0; o < 2 && dense; o++) {
                    int m = o ? x->b : x->a;
                    if (!fold[m])
                        continue;
                    const celo_node *M = &P->nodes[m];
                    e.op = TP_ADDMUL_T;
                    e.a = o ? x->a : x->b;                   /* the other summand */
                    e.b = fold[m] - 1 == M->b ? M->a : M->b; /* the factor that is not θ */
                    e.k = P->nodes[fold[m] - 1].aux;         /* θ's index */
                    break;
                }
                break;
            case CELO_OP_SUB: e.op = TP_SUB; break;
            case CELO_OP_MUL: e.op = TP_MUL; break;
            case CELO_OP_DIV: e.op = TP_DIV; break;
            default:
                if (is_map_op(x->op)) {
                    e.op = TP_MAP;
                    e.k = x->op;
                }
            }
            if (!dense)
                e.op = TP_CALL; /* per-row and per-column vectors: celo_eval_small's loops */
            S->ent[n++] = e;
        }
        if (host)
            S->n0 = n;
    }
    S->n = n;
    int rc = tape_chains(S, uses, nn);
    free(uses);
    free(fold);
    free(thfold);
    return rc;
}

void celo_tape_run(const celo_program *P, const celo_state *st, const celo_tape *S, int from, int to, int64_t t,
                   const float *hp, double *val, float *sc, float *const *ptr)
{
    const float *th = st->theta;
    for (int i = from; i < to; i++) {
        const celo_tape_ent *e = &S->ent[i];
        double v;
        switch (e->op) {
        case TP_HP: v = hp[e->k]; break;
        case TP_T: v = (double)t; break;
        case TP_THETA: v = th[e->k]; break;
        case TP_LOSS: v = st->loss; break;
        case TP_SSTATE: v = st->slot[e->k][0]; break;
        case TP_ADD: v = val[e->a] + val[e->b]; break;
        case TP_SUB: v = val[e->a] - val[e->b]; break;
        case TP_MUL: v = val[e->a] * val[e->b]; break;
        case TP_DIV: v = val[e->a] / val[e->b]; break;
        case TP_ADDMUL_T: v = val[e->a] + val[e->b] * (double)th[e->k]; break;
        case TP_DOT: {
            const int32_t *q = S->dot + 2 * (int64_t)e->k;
            v = val[e->a];
            for (int32_t r = 0; r < e->b; r++)
                v = v + val[q[2 * r]] * (double)th[q[2 * r + 1]];
            break;
        }
        case TP_MAP: v = celo_eval_op(e->k, val[e->a], e->b >= 0 ? val[e->b] : 0, e->c >= 0 ? val[e->c] : 0); break;
        default: celo_eval_small(P, st, e->d, t, hp, val, sc, ptr); continue;
        }
        val[e->d] = v;
        sc[e->d] = (float)v;
    }
}

void celo_tape_free(celo_tape *tp)
{
    free(tp->ent);
    free(tp->dot);
    tp->ent = NULL;
    tp->dot = NULL;
    tp->n = tp->n0 = 0;
}
