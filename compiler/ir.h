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

/* What the compiler knows of an op: its row of runtime/ops.def (which says what each field means). */
typedef enum { IR_INPUT, IR_MAP, IR_REDUCE, IR_MATRIX } ir_kind;
typedef enum { IR_FAST, IR_SLOW, IR_LIBM } ir_cost;
enum { IR_DOM_NODE = -1, IR_DOM_JOIN = -2 }; /* result domains besides a celo_domain */
typedef struct {
    const char *name; /* in IR dumps */
    ir_kind kind;
    int arity;
    int dom; /* a celo_domain, IR_DOM_NODE (the node's own) or IR_DOM_JOIN (where the operands meet: maps) */
    ir_cost cost;
    int commutes;
    const char *fn; /* the builtin function a rule calls it by, or NULL */
    /* a matrix op's integer argument (in aux): its name, range and default */
    const char *arg;
    int arg_lo, arg_hi, arg_def;
} ir_opinfo;
const ir_opinfo *ir_op(int op);

#endif
