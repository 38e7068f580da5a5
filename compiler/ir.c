/* ir.c — IR construction. Every node is hash-consed (CSE) and folded when its operands are constants. */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int arity;
} opinfo[CELO_OP_COUNT_] = {
    [CELO_OP_CONST] = {"const", 0}, [CELO_OP_HP] = {"hp", 0},
    [CELO_OP_T] = {"t", 0},         [CELO_OP_P] = {"p", 0},
    [CELO_OP_G] = {"g", 0},         [CELO_OP_STATE] = {"state", 0},
    [CELO_OP_NEG] = {"neg", 1},     [CELO_OP_ADD] = {"add", 2},
    [CELO_OP_SUB] = {"sub", 2},     [CELO_OP_MUL] = {"mul", 2},
    [CELO_OP_DIV] = {"div", 2},     [CELO_OP_POW] = {"pow", 2},
    [CELO_OP_MIN] = {"min", 2},     [CELO_OP_MAX] = {"max", 2},
    [CELO_OP_SQRT] = {"sqrt", 1},   [CELO_OP_RSQRT] = {"rsqrt", 1},
    [CELO_OP_EXP] = {"exp", 1},     [CELO_OP_LOG] = {"log", 1},
    [CELO_OP_ABS] = {"abs", 1},     [CELO_OP_SIGN] = {"sign", 1},
    [CELO_OP_TANH] = {"tanh", 1},   [CELO_OP_SIGMOID] = {"sigmoid", 1},
    [CELO_OP_RELU] = {"relu", 1},   [CELO_OP_FLOOR] = {"floor", 1},
    [CELO_OP_LT] = {"lt", 2},       [CELO_OP_LE] = {"le", 2},
    [CELO_OP_GT] = {"gt", 2},       [CELO_OP_GE] = {"ge", 2},
    [CELO_OP_EQ] = {"eq", 2},       [CELO_OP_NE] = {"ne", 2},
    [CELO_OP_AND] = {"and", 2},     [CELO_OP_OR] = {"or", 2},
    [CELO_OP_NOT] = {"not", 1},     [CELO_OP_SELECT] = {"select", 3},
    [CELO_OP_SUM] = {"sum", 1},     [CELO_OP_MAXR] = {"maxr", 1},
    [CELO_OP_ORTHO] = {"ortho", 1}, [CELO_OP_NUMEL] = {"numel", 0},
    [CELO_OP_NROWS] = {"rows", 0},  [CELO_OP_NCOLS] = {"cols", 0},
};

const char *ir_op_name(int op)
{
    return op >= 0 && op < CELO_OP_COUNT_ ? opinfo[op].name : "?";
}
int ir_op_arity(int op)
{
    return opinfo[op].arity;
}

celo_domain dom_join(celo_domain a, celo_domain b)
{
    if (a == b)
        return a;
    if ((a == CELO_ROW && b == CELO_COL) || (a == CELO_COL && b == CELO_ROW))
        return CELO_ELEM;
    return a > b ? a : b;
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

static int commutative(int op)
{
    return op == CELO_OP_ADD || op == CELO_OP_MUL || op == CELO_OP_MIN || op == CELO_OP_MAX || op == CELO_OP_EQ ||
           op == CELO_OP_NE || op == CELO_OP_AND || op == CELO_OP_OR;
}

int ir_node(irbuild *b, celo_op op, int a, int bb, int c, int aux, celo_domain dom)
{
    int ar = opinfo[op].arity;
    const celo_node *N = b->n;
    /* Constant folding: every operand is a constant. Folding uses the host evaluator (double). */
    if (ar > 0 && op != CELO_OP_SUM && op != CELO_OP_MAXR && op != CELO_OP_ORTHO) {
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
    if (commutative(op) && a > bb) {
        int tmp = a;
        a = bb;
        bb = tmp;
    }
    celo_node x = {.op = (uint8_t)op, .a = a, .b = bb, .c = c, .aux = aux};
    switch (op) {
    case CELO_OP_CONST:
    case CELO_OP_HP:
    case CELO_OP_T:
        x.dom = CELO_HOST;
        x.a = x.b = x.c = -1;
        break;
    case CELO_OP_P:
    case CELO_OP_G:
        x.dom = CELO_ELEM;
        x.a = x.b = x.c = -1;
        break;
    case CELO_OP_STATE:
        x.dom = (uint8_t)dom;
        x.a = x.b = x.c = -1;
        break;
    case CELO_OP_NUMEL:
    case CELO_OP_NROWS:
    case CELO_OP_NCOLS:
        x.dom = CELO_SCALAR;
        x.a = x.b = x.c = -1;
        break;
    case CELO_OP_SUM:
    case CELO_OP_MAXR:
        x.dom = (uint8_t)dom;
        x.b = x.c = -1;
        break;
    case CELO_OP_ORTHO:
        x.dom = CELO_ELEM;
        x.b = x.c = -1;
        break;
    default: {
        celo_domain d = (celo_domain)N[a].dom;
        if (ar > 1)
            d = dom_join(d, (celo_domain)N[bb].dom);
        if (ar > 2)
            d = dom_join(d, (celo_domain)N[c].dom);
        x.dom = (uint8_t)d;
        if (ar < 2)
            x.b = -1;
        if (ar < 3)
            x.c = -1;
    }
    }
    return intern(b, x);
}
