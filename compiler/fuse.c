/* fuse.c — the pass schedule of a rule, and the IR dump.
 *
 * An element-wise value can be computed in any pass after the reductions it reads are known, so it costs
 * nothing to recompute it in a later pass instead of storing it (every pass reads the inputs anyway).
 * The schedule therefore follows from one number per node:
 *   need(x)  for an element-wise x: the last pass whose results x reads (0 if it reads only inputs and host
 *            values); x can be computed in pass need(x) + 1.
 *   reduction r of an element-wise x, and a staged ORTHO of x: computed in pass need(x) + 1.
 *   anything else (host, per-tensor, per-row and per-column values): available after the stage at which its
 *            operands are, and computed there, between passes.
 * All reductions of the inputs therefore share pass 1, and the final element-wise writes happen in the last
 * pass. A purely element-wise rule has exactly one pass. */
#include "rules.h"

#include <stdlib.h>
#include <string.h>

static int is_reduce(int op)
{
    return ir_op(op)->kind == IR_REDUCE;
}
/* a matrix op (ORTHO): computed by the runtime from a value its pass stores */
static int is_matrix(int op)
{
    return ir_op(op)->kind == IR_MATRIX;
}

/* Marks the element-wise nodes pass k needs (stopping at staged values, which it loads). */
static void mark_needed(const celo_node *n, int j, unsigned char *need)
{
    if (n[j].dom != CELO_ELEM || need[j])
        return;
    need[j] = 1;
    if (is_matrix(n[j].op) || (n[j].flags & CELO_FLAG_STAGED))
        return;
    if (n[j].a >= 0)
        mark_needed(n, n[j].a, need);
    if (n[j].b >= 0)
        mark_needed(n, n[j].b, need);
    if (n[j].c >= 0)
        mark_needed(n, n[j].c, need);
}

static void pass_roots(const rule *r, int k, int npass, unsigned char *need)
{
    const celo_node *n = r->nodes;
    memset(need, 0, (size_t)r->prog.nnodes);
    for (int j = 0; j < r->prog.nnodes; j++)
        if ((is_reduce(n[j].op) || is_matrix(n[j].op)) && n[j].pass == k && n[n[j].a].dom == CELO_ELEM)
            mark_needed(n, n[j].a, need);
    if (k == npass) {
        if (r->prog.p_value >= 0)
            mark_needed(n, r->prog.p_value, need);
        for (int s = 0; s < r->prog.nstate; s++)
            if (r->state[s].value >= 0 && r->state[s].dom == CELO_ELEM)
                mark_needed(n, r->state[s].value, need);
    }
}

/* Division, square roots and transcendental functions of every element (cost SLOW or LIBM in ops.def) are not
 * free: when a later pass would recompute a value that holds two or more of them, the pass that first computes it
 * stores it instead (4 bytes written, 4 read back), and later passes load it. Measured on Adafactor (bench/optim):
 * recomputing its update made the LLVM kernel compute-bound at half the hand-written loop. CELO_NO_STAGING=1 turns
 * this off. */
static void stage_costly(rule *r, int npass)
{
    if (npass < 2 || getenv("CELO_NO_STAGING"))
        return;
    int nn = r->prog.nnodes;
    celo_node *n = r->nodes;
    unsigned char *first = calloc((size_t)nn + 1, 1), *need = malloc((size_t)nn + 1);
    int *cost = calloc((size_t)nn + 1, sizeof *cost);
    for (int k = 1; k <= npass; k++) {
        /* element-wise cost of computing each node from loads and staged values */
        for (int j = 0; j < nn; j++) {
            const celo_node *x = &n[j];
            cost[j] = 0;
            if (x->dom != CELO_ELEM || is_matrix(x->op) || (x->flags & CELO_FLAG_STAGED))
                continue;
            int c = ir_op(x->op)->cost != IR_FAST;
            if (x->a >= 0)
                c += cost[x->a];
            if (x->b >= 0 && x->b != x->a)
                c += cost[x->b];
            if (x->c >= 0)
                c += cost[x->c];
            cost[j] = c;
        }
        pass_roots(r, k, npass, need);
        /* a node this pass needs that an earlier pass computed: stage the largest costly ones (top-down) */
        for (int j = nn - 1; j >= 0; j--) {
            if (!need[j] || !first[j] || first[j] >= k || cost[j] < 2)
                continue;
            n[j].flags |= CELO_FLAG_STAGED;
            n[j].pass = first[j];
            pass_roots(r, k, npass, need); /* its operands may no longer be needed here */
        }
        for (int j = 0; j < nn; j++)
            if (need[j] && !first[j])
                first[j] = (unsigned char)k;
    }
    free(first);
    free(need);
    free(cost);
}

void rule_fuse(rule *r)
{
    celo_node *n = r->nodes;
    int nn = r->prog.nnodes;
    int *avail = calloc((size_t)(nn ? nn : 1), sizeof *avail);
    int npass = 1;
    for (int i = 0; i < nn; i++) {
        celo_node *x = &n[i];
        int ops[3] = {x->a, x->b, x->c}, m = 0;
        for (int k = 0; k < 3; k++)
            if (ops[k] >= 0 && avail[ops[k]] > m)
                m = avail[ops[k]];
        if (is_reduce(x->op) && n[x->a].dom == CELO_ELEM) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m + 1;
        } else if (is_matrix(x->op)) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m + 1;
        } else if (x->dom == CELO_ELEM) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m;
        } else {
            x->pass = (uint8_t)m;
            avail[i] = m;
        }
        if ((is_reduce(x->op) || is_matrix(x->op)) && x->pass > npass)
            npass = x->pass;
    }
    /* The final pass writes p and element-wise state: it comes after everything they need. */
    int outs[1 + 256], no = 0;
    if (r->prog.p_value >= 0)
        outs[no++] = r->prog.p_value;
    for (int s = 0; s < r->prog.nstate; s++)
        if (r->state[s].value >= 0 && r->state[s].dom == CELO_ELEM)
            outs[no++] = r->state[s].value;
    for (int k = 0; k < no; k++)
        if (avail[outs[k]] + 1 > npass)
            npass = avail[outs[k]] + 1;
    free(avail);
    stage_costly(r, npass);
    /* A factored mean of an element value (SUM into FROW or FCOL) is reduced by the runtime after its pass from
     * the staged operand (celort.h, celo_is_pass_reduction): the pass stores it. One staged value feeds every mean
     * of it. */
    for (int i = 0; i < nn; i++) {
        celo_node *x = &n[i];
        if (!is_reduce(x->op) || n[x->a].dom != CELO_ELEM || !celo_dom_is_fac(x->dom))
            continue;
        celo_node *a = &n[x->a];
        if (is_matrix(a->op) || ((a->flags & CELO_FLAG_STAGED) && a->pass <= x->pass))
            continue; /* already stored by then */
        a->flags |= CELO_FLAG_STAGED;
        a->pass = x->pass;
    }
    r->passes = calloc((size_t)npass, sizeof *r->passes);
    for (int k = 0; k < npass; k++)
        r->passes[k].id = k + 1;
    r->prog.npass = npass;
    r->prog.passes = r->passes;
}

static const char *dom_name[] = {"host", "scalar", "row", "col", "elem", "frow", "fcol", "fbat", "mat"};

static void print_node(const rule *r, int i, FILE *out)
{
    const celo_node *x = &r->nodes[i];
    fprintf(out, "  %%%-3d %-6s = %s", i, dom_name[x->dom], ir_op(x->op)->name);
    switch (x->op) {
    case CELO_OP_CONST: fprintf(out, " %.9g", x->imm); break;
    case CELO_OP_HP: fprintf(out, " %s", r->hp[x->aux].name); break;
    case CELO_OP_THETA: { /* the tensor and the element: f/w0[1,3] */
        int q = 0;
        while (q + 1 < r->prog.ntheta && r->prog.theta[q + 1].offset <= x->aux)
            q++;
        const celo_thetaspec *ts = &r->prog.theta[q];
        int64_t k = x->aux - ts->offset, idx[4];
        for (int d = ts->ndim - 1; d >= 0; d--) { /* C order */
            idx[d] = k % ts->shape[d];
            k /= ts->shape[d];
        }
        fprintf(out, " %s[", ts->name);
        for (int d = 0; d < ts->ndim; d++)
            fprintf(out, "%s%lld", d ? "," : "", (long long)idx[d]);
        fprintf(out, "]");
        break;
    }
    case CELO_OP_STATE: fprintf(out, " %s", r->state[x->aux].name); break;
    case CELO_OP_DLEN: fprintf(out, " %s", dom_name[x->aux]); break;
    case CELO_OP_ORTHO:
        fprintf(out, " %%%d steps=%d%s   (staged by this pass, orthogonalized with OpenBLAS after it)", x->a,
                x->aux & (CELO_ORTHO_LAST2 - 1), x->aux & CELO_ORTHO_LAST2 ? " last2" : "");
        break;
    default:
        if (x->a >= 0)
            fprintf(out, " %%%d", x->a);
        if (x->b >= 0)
            fprintf(out, ", %%%d", x->b);
        if (x->c >= 0)
            fprintf(out, ", %%%d", x->c);
    }
    int facop = 0; /* the operand of a factored mean, which the runtime reduces after the pass */
    for (int j = i + 1; j < r->prog.nnodes && (x->flags & CELO_FLAG_STAGED); j++)
        facop |= is_reduce(r->nodes[j].op) && celo_dom_is_fac(r->nodes[j].dom) && r->nodes[j].a == i;
    if (facop)
        fprintf(out, "   (stored by this pass for the factored means after it)");
    else if (x->flags & CELO_FLAG_STAGED)
        fprintf(out, "   (stored by this pass, loaded by later ones)");
    fputc('\n', out);
}

/* The dump lists nodes by where they are computed: host, then each pass and the stage after it. */
void rule_dump(const rule *r, FILE *out)
{
    if (r->nvariants) { /* tensor classes: each variant with its class */
        fprintf(out, "rule %s: %d tensor classes, one program each, chosen per tensor by rank and name\n", r->prog.name,
                r->nvariants);
        for (int v = 0; v < r->nvariants; v++) {
            fprintf(out, "class %d: %s\n", v, r->variants[v]->cls);
            rule_dump(r->variants[v], out);
        }
        return;
    }
    const celo_program *P = &r->prog;
    int nred = 0;
    for (int i = 0; i < P->nnodes; i++)
        nred += is_reduce(r->nodes[i].op);
    fprintf(out, "rule %s: %d pass%s over memory, %d reduction%s, %d state slot%s\n", P->name, P->npass,
            P->npass == 1 ? "" : "es", nred, nred == 1 ? "" : "s", P->nstate, P->nstate == 1 ? "" : "s");
    for (int i = 0; i < P->nhp; i++)
        fprintf(out, "  hp %s = %.9g\n", r->hp[i].name, r->hp[i].def);
    for (int s = 0; s < P->nstate; s++)
        fprintf(out, "  state %s: %s, init %%%d\n", r->state[s].name, dom_name[r->state[s].dom], r->state[s].init);
    for (int i = 0; i < P->ntheta; i++) {
        const celo_thetaspec *ts = &P->theta[i];
        fprintf(out, "  theta %s [", ts->name);
        for (int d = 0; d < ts->ndim; d++)
            fprintf(out, "%s%d", d ? ", " : "", ts->shape[d]);
        fprintf(out, "] at %lld\n", (long long)ts->offset);
    }
    fprintf(out, "host (once per step, double precision):\n");
    for (int i = 0; i < P->nnodes; i++)
        if (r->nodes[i].dom == CELO_HOST)
            print_node(r, i, out);
    for (int k = 0; k <= P->npass; k++) {
        if (k > 0) {
            fprintf(out, "pass %d (one loop over the elements%s):\n", k, k == P->npass ? "; writes p and state" : "");
            for (int i = 0; i < P->nnodes; i++) {
                const celo_node *x = &r->nodes[i];
                int show = 0;
                if (celo_is_pass_reduction(&r->prog, x))
                    show = x->pass == k;
                else if (is_matrix(x->op))
                    show = x->pass == k;
                else if (x->dom == CELO_ELEM)
                    show = x->pass == k;
                if (show)
                    print_node(r, i, out);
            }
        }
        int any = 0;
        for (int i = 0; i < P->nnodes; i++) {
            const celo_node *x = &r->nodes[i];
            int red_elem = celo_is_pass_reduction(&r->prog, x);
            if (x->dom != CELO_HOST && x->dom != CELO_ELEM && !red_elem && x->pass == k) {
                if (!any)
                    fprintf(out, "%s:\n",
                            k == 0 ? "before pass 1 (per tensor)" : "between passes (per tensor/row/column)");
                any = 1;
                print_node(r, i, out);
            }
        }
    }
    fprintf(out, "outputs:\n");
    if (P->p_value >= 0)
        fprintf(out, "  p <- %%%d\n", P->p_value);
    for (int s = 0; s < P->nstate; s++)
        if (r->state[s].value >= 0)
            fprintf(out, "  %s <- %%%d\n", r->state[s].name, r->state[s].value);
}
