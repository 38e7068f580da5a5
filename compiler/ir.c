/* ir.c — IR construction. Every node is hash-consed (CSE) and folded when its operands are constants. */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { IR_DOM_HOST = CELO_HOST, IR_DOM_SCALAR = CELO_SCALAR, IR_DOM_ELEM = CELO_ELEM };
enum { IR_ORDERED = 0, IR_COMMUTES = 1 };
static const ir_opinfo ops[CELO_OP_COUNT_] = {
#define CELO_INPUT(id, nm, d, f) [CELO_OP_##id] = {.name = nm, .kind = IR_INPUT, .dom = IR_DOM_##d, .fn = f},
#define CELO_MAP(id, nm, ar, cst, comm, f, value) \
    [CELO_OP_##id] = {.name = nm,                 \
                      .kind = IR_MAP,             \
                      .arity = ar,                \
                      .dom = IR_DOM_JOIN,         \
                      .cost = IR_##cst,           \
                      .commutes = IR_##comm,      \
                      .fn = f},
#define CELO_REDUCE(id, nm) [CELO_OP_##id] = {.name = nm, .kind = IR_REDUCE, .arity = 1, .dom = IR_DOM_NODE},
#define CELO_MATRIX(id, nm, f, a, lo, hi, def) \
    [CELO_OP_##id] = {.name = nm,              \
                      .kind = IR_MATRIX,       \
                      .arity = 1,              \
                      .dom = IR_DOM_ELEM,      \
                      .fn = f,                 \
                      .arg = a,                \
                      .arg_lo = lo,            \
                      .arg_hi = hi,            \
                      .arg_def = def},
#include "../runtime/ops.def"
};

/* Reductions and matrix ops reach code that names them one by one: the back ends combine a reduction as a sum or
 * else as a maximum (llvm.c, opencl.c, runtime/step.c and clrun.c), and the runtime runs a matrix op as ORTHO. A
 * row of either kind added to ops.def stops the build here until they learn it. */
enum {
    IR_NREDUCE = 0
#define CELO_REDUCE(...) +1
#include "../runtime/ops.def"
};
enum {
    IR_NMATRIX = 0
#define CELO_MATRIX(...) +1
#include "../runtime/ops.def"
};
_Static_assert(IR_NREDUCE == 2 && IR_NMATRIX == 1, "a new reduction or matrix op: teach the back ends first");

const ir_opinfo *ir_op(int op)
{
    static const ir_opinfo unknown = {.name = "?"};
    return op >= 0 && op < CELO_OP_COUNT_ ? &ops[op] : &unknown;
}

/* a <= b: a value of domain a can be read in domain b (celort.h: SCALAR below everything, FBAT below FROW and FCOL,
 * MAT below ROW, everything below ELEM) */
static int dom_le(celo_domain a, celo_domain b)
{
    if (a == b || b == CELO_ELEM || a == CELO_HOST)
        return 1;
    if (a == CELO_SCALAR)
        return b != CELO_HOST;
    if (a == CELO_FBAT)
        return b == CELO_FROW || b == CELO_FCOL;
    if (a == CELO_MAT)
        return b == CELO_ROW;
    return 0;
}

celo_domain dom_join(celo_domain a, celo_domain b)
{
    if (dom_le(a, b))
        return b;
    if (dom_le(b, a))
        return a;
    return CELO_ELEM;
}

void ir_init(irbuild *b)
{
    memset(b, 0, sizeof *b);
    b->htcap = 1024;
    b->ht = calloc((size_t)b->htcap, sizeof *b->ht);
}

void ir_free(irbuild *b)
{
    free(b->n);
    free(b->ht);
    memset(b, 0, sizeof *b);
}

static unsigned hash_node(const celo_node *x)
{
    unsigned long long bits;
    memcpy(&bits, &x->imm, sizeof bits);
    unsigned long long h = 1469598103934665603ull;
    long long f[7] = {x->op, x->dom, x->a, x->b, x->c, x->aux, (long long)bits};
    for (int i = 0; i < 7; i++) {
        h ^= (unsigned long long)f[i];
        h *= 1099511628211ull;
    }
    return (unsigned)(h ^ (h >> 32));
}

static int same(const celo_node *x, const celo_node *y)
{
    return x->op == y->op && x->dom == y->dom && x->a == y->a && x->b == y->b && x->c == y->c && x->aux == y->aux &&
           memcmp(&x->imm, &y->imm, sizeof x->imm) == 0;
}

static void rehash(irbuild *b)
{
    free(b->ht);
    b->htcap *= 2;
    b->ht = calloc((size_t)b->htcap, sizeof *b->ht);
    for (int i = 0; i < b->nn; i++) {
        unsigned h = hash_node(&b->n[i]) & (unsigned)(b->htcap - 1);
        while (b->ht[h])
            h = (h + 1) & (unsigned)(b->htcap - 1);
        b->ht[h] = i + 1;
    }
}

static int intern(irbuild *b, celo_node x)
{
    unsigned h = hash_node(&x) & (unsigned)(b->htcap - 1);
    while (b->ht[h]) {
        if (same(&b->n[b->ht[h] - 1], &x))
            return b->ht[h] - 1;
        h = (h + 1) & (unsigned)(b->htcap - 1);
    }
    if (b->nn == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->n = realloc(b->n, (size_t)b->cap * sizeof *b->n);
    }
    b->n[b->nn] = x;
    b->ht[h] = ++b->nn;
    if (2 * b->nn > b->htcap)
        rehash(b);
    return b->nn - 1;
}

int ir_const(irbuild *b, double v)
{
    celo_node x = {.op = CELO_OP_CONST, .dom = CELO_HOST, .a = -1, .b = -1, .c = -1, .imm = v};
    return intern(b, x);
}

int ir_node(irbuild *b, celo_op op, int a, int bb, int c, int aux, celo_domain dom)
{
    const ir_opinfo *info = ir_op(op);
    int ar = info->arity;
    const celo_node *N = b->n;
    /* Constant folding: every operand is a constant. Folding uses the host evaluator (double). */
    if (info->kind == IR_MAP && op != CELO_OP_ELEMS) {
        int allc =
            N[a].op == CELO_OP_CONST && (ar < 2 || N[bb].op == CELO_OP_CONST) && (ar < 3 || N[c].op == CELO_OP_CONST);
        if (allc)
            return ir_const(b, celo_eval_op(op, N[a].imm, ar > 1 ? N[bb].imm : 0, ar > 2 ? N[c].imm : 0));
    }
    /* Identities that hold in IEEE arithmetic. */
    switch (op) {
    case CELO_OP_ADD:
        if (ir_is_const(b, bb, 0))
            return a;
        if (ir_is_const(b, a, 0))
            return bb;
        break;
    case CELO_OP_SUB:
        if (ir_is_const(b, bb, 0))
            return a;
        if (ir_is_const(b, a, 0))
            return ir_node(b, CELO_OP_NEG, bb, -1, -1, 0, 0);
        break;
    case CELO_OP_MUL:
        if (ir_is_const(b, bb, 1))
            return a;
        if (ir_is_const(b, a, 1))
            return bb;
        if (ir_is_const(b, a, -1))
            return ir_node(b, CELO_OP_NEG, bb, -1, -1, 0, 0);
        if (ir_is_const(b, bb, -1))
            return ir_node(b, CELO_OP_NEG, a, -1, -1, 0, 0);
        break;
    case CELO_OP_DIV:
        if (ir_is_const(b, bb, 1))
            return a;
        break;
    case CELO_OP_NEG:
        if (N[a].op == CELO_OP_NEG)
            return N[a].a;
        break;
    case CELO_OP_POW:
        /* Element-wise powers by small integers become multiplications: exact for 1 and 2. */
        if (ir_is_const(b, bb, 1))
            return a;
        if (ir_is_const(b, bb, 2) && N[a].dom != CELO_HOST)
            return ir_node(b, CELO_OP_MUL, a, a, -1, 0, 0);
        if (ir_is_const(b, bb, 0.5) && N[a].dom != CELO_HOST)
            return ir_node(b, CELO_OP_SQRT, a, -1, -1, 0, 0);
        break;
    default: break;
    }
    if (info->commutes && a > bb) {
        int tmp = a;
        a = bb;
        bb = tmp;
    }
    /* operands beyond the arity are -1; the domain is the table's, the node's own, or where the operands meet */
    celo_node x = {.op = (uint8_t)op, .a = ar > 0 ? a : -1, .b = ar > 1 ? bb : -1, .c = ar > 2 ? c : -1, .aux = aux};
    if (op == CELO_OP_ELEMS) /* element-wise whatever its operand's domain */
        x.dom = CELO_ELEM;
    else if (info->dom == IR_DOM_JOIN) {
        celo_domain d = (celo_domain)N[a].dom;
        if (ar > 1)
            d = dom_join(d, (celo_domain)N[bb].dom);
        if (ar > 2)
            d = dom_join(d, (celo_domain)N[c].dom);
        x.dom = (uint8_t)d;
    } else
        x.dom = (uint8_t)(info->dom == IR_DOM_NODE ? (int)dom : info->dom);
    return intern(b, x);
}
