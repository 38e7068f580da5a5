/* ir.h — building the kernel IR: hash-consed SSA nodes with domains, constant folding, simplification. */
#ifndef CELO_IR_H
#define CELO_IR_H

#include "../runtime/celort.h"

typedef struct {
    celo_node *n;
    int nn, cap;
    int *ht; /* open-addressing table of node numbers + 1, for CSE */
    int htcap;
} irbuild;

void ir_init(irbuild *b);
void ir_free(irbuild *b);
int ir_const(irbuild *b, double v);
/* A node; dom is only read for leaves (STATE) and reductions (their target domain). */
int ir_node(irbuild *b, celo_op op, int a, int bb, int c, int aux, celo_domain dom);
static inline celo_domain ir_dom(const irbuild *b, int n)
{
    return (celo_domain)b->n[n].dom;
}
static inline int ir_is_const(const irbuild *b, int n, double v)
{
    return b->n[n].op == CELO_OP_CONST && b->n[n].imm == v;
}
celo_domain dom_join(celo_domain a, celo_domain b);
const char *ir_op_name(int op);
int ir_op_arity(int op);

#endif
