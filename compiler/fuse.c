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
        if ((x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && n[x->a].dom == CELO_ELEM) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m + 1;
        } else if (x->op == CELO_OP_ORTHO) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m + 1;
        } else if (x->dom == CELO_ELEM) {
            x->pass = (uint8_t)(m + 1);
            avail[i] = m;
        } else {
            x->pass = (uint8_t)m;
            avail[i] = m;
        }
        if ((x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR || x->op == CELO_OP_ORTHO) && x->pass > npass)
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
    r->passes = calloc((size_t)npass, sizeof *r->passes);
    for (int k = 0; k < npass; k++)
        r->passes[k].id = k + 1;
    r->prog.npass = npass;
    r->prog.passes = r->passes;
}

static const char *dom_name[] = {"host", "scalar", "row", "col", "elem"};

static void print_node(const rule *r, int i, FILE *out)
{
    const celo_node *x = &r->nodes[i];
    fprintf(out, "  %%%-3d %-6s = %s", i, dom_name[x->dom], ir_op_name(x->op));
    switch (x->op) {
    case CELO_OP_CONST:
        fprintf(out, " %.9g", x->imm);
        break;
    case CELO_OP_HP:
        fprintf(out, " %s", r->hp[x->aux].name);
        break;
    case CELO_OP_STATE:
        fprintf(out, " %s", r->state[x->aux].name);
        break;
    case CELO_OP_ORTHO:
        fprintf(out, " %%%d steps=%d   (staged by this pass, orthogonalized with OpenBLAS after it)", x->a, x->aux);
        break;
    default:
        if (x->a >= 0)
            fprintf(out, " %%%d", x->a);
        if (x->b >= 0)
            fprintf(out, ", %%%d", x->b);
        if (x->c >= 0)
            fprintf(out, ", %%%d", x->c);
    }
    fputc('\n', out);
}

/* The dump lists nodes by where they are computed: host, then each pass and the stage after it. */
void rule_dump(const rule *r, FILE *out)
{
    const celo_program *P = &r->prog;
    int nred = 0;
    for (int i = 0; i < P->nnodes; i++)
        nred += r->nodes[i].op == CELO_OP_SUM || r->nodes[i].op == CELO_OP_MAXR;
    fprintf(out, "rule %s: %d pass%s over memory, %d reduction%s, %d state slot%s\n", P->name, P->npass,
            P->npass == 1 ? "" : "es", nred, nred == 1 ? "" : "s", P->nstate, P->nstate == 1 ? "" : "s");
    for (int i = 0; i < P->nhp; i++)
        fprintf(out, "  hp %s = %.9g\n", r->hp[i].name, r->hp[i].def);
    for (int s = 0; s < P->nstate; s++)
        fprintf(out, "  state %s: %s, init %%%d\n", r->state[s].name, dom_name[r->state[s].dom], r->state[s].init);
    fprintf(out, "host (once per step, double precision):\n");
    for (int i = 0; i < P->nnodes; i++)
        if (r->nodes[i].dom == CELO_HOST)
            print_node(r, i, out);
    for (int k = 0; k <= P->npass; k++) {
        if (k > 0) {
            fprintf(out, "pass %d (one loop over the elements%s):\n", k,
                    k == P->npass ? "; writes p and state" : "; element-wise values a later pass needs are recomputed there");
            for (int i = 0; i < P->nnodes; i++) {
                const celo_node *x = &r->nodes[i];
                int show = 0;
                if ((x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && r->nodes[x->a].dom == CELO_ELEM)
                    show = x->pass == k;
                else if (x->op == CELO_OP_ORTHO)
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
            int red_elem = (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && r->nodes[x->a].dom == CELO_ELEM;
            if (x->dom != CELO_HOST && x->dom != CELO_ELEM && !red_elem && x->pass == k) {
                if (!any)
                    fprintf(out, "%s:\n", k == 0 ? "before pass 1 (per tensor)" : "between passes (per tensor/row/column)");
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
