/* llvm.c — LLVM code generation for element passes, through the LLVM C API.
 *
 * Each pass k of a rule becomes two functions:
 *   celo_<rule>_pass<k>(i0, i1, C, ptr, sc, part)   the ABI entry (celort.h): loads pointers and scalars,
 *   an internal body with every pointer a `noalias` argument, which O3 inlines into the entry. Inlining turns
 *   the noalias arguments into alias scopes, so the loop vectorizes without runtime overlap checks.
 * Arithmetic is plain IEEE float32 (no contraction, no fast-math) so that results match the interpreter;
 * only the reduction accumulators (double) may be reassociated, which lets them vectorize. */
#include "backend.h"
#include "llvm_compat.h"
#include "../runtime/mathf.h"

#include <llvm-c/DebugInfo.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef f32, f64, i64, i32, ptr, vd;
    char prefix[32];  /* symbol prefix: "celo_" in object files, unique per module in the JIT */
    int wide_vectors; /* CELO_VECTOR_512=1 on an AVX-512 CPU: let the vectorizer use 512-bit vectors */
} cg;

/* A rule's name in symbol names: a rule compiled with a schedule is named "adamw@cosine" (compiler/lower.c), and
 * '@' is not a C identifier character (and means a symbol version to ELF linkers): it becomes "__". */
static const char *ident(const char *name, char *buf, size_t n)
{
    size_t k = 0;
    for (; *name && k + 3 < n; name++)
        if (*name == '@')
            buf[k++] = '_', buf[k++] = '_';
        else
            buf[k++] = *name;
    buf[k] = 0;
    return buf;
}

static LLVMValueRef intrinsic(cg *g, const char *name, LLVMTypeRef ty, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef tys[1] = {ty};
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(g->mod, id, tys, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(g->ctx, id, tys, 1);
    return LLVMBuildCall2(g->b, fty, fn, args, (unsigned)nargs, "");
}

static LLVMValueRef libcall(cg *g, const char *name, LLVMValueRef x)
{
    LLVMTypeRef fty = LLVMFunctionType(g->f32, &g->f32, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(g->mod, name);
    if (!fn)
        fn = LLVMAddFunction(g->mod, name, fty);
    return LLVMBuildCall2(g->b, fty, fn, &x, 1, "");
}

/* The maximum of a reduction keeps NaN, as the interpreter does: e if e > acc or e is NaN, else acc. (llvm.maxnum
 * would drop it.) */
static LLVMValueRef max_keep_nan(cg *g, LLVMValueRef acc, LLVMValueRef e)
{
    LLVMValueRef gt = LLVMBuildFCmp(g->b, LLVMRealOGT, e, acc, "");
    LLVMValueRef nan = LLVMBuildFCmp(g->b, LLVMRealUNO, e, e, "");
    return LLVMBuildSelect(g->b, LLVMBuildOr(g->b, gt, nan, ""), e, acc, "");
}

static LLVMValueRef fconst(cg *g, double v)
{
    return LLVMConstReal(g->f32, (float)v);
}
static LLVMValueRef bool_to_f(cg *g, LLVMValueRef c)
{
    return LLVMBuildUIToFP(g->b, c, g->f32, "");
}
static LLVMValueRef nonzero(cg *g, LLVMValueRef x)
{
    return LLVMBuildFCmp(g->b, LLVMRealUNE, x, fconst(g, 0), "");
}

/* e^a of a float32 a: runtime/mathf.h's operations, in double, inline (they vectorize; libm's expf is a call per
 * element), in the order celo_expf performs them, so that the kernels and the interpreter agree exactly. */
static LLVMValueRef emit_expf(cg *g, LLVMValueRef a)
{
    LLVMBuilderRef B = g->b;
    LLVMValueRef x = LLVMBuildFPExt(B, a, g->f64, ""), two[2];
    two[0] = x, two[1] = LLVMConstReal(g->f64, CELO_EXP_LO);
    two[0] = intrinsic(g, "llvm.maxnum", g->f64, two, 2);
    two[1] = LLVMConstReal(g->f64, CELO_EXP_HI);
    x = intrinsic(g, "llvm.minnum", g->f64, two, 2);
    LLVMValueRef k = LLVMBuildFMul(B, x, LLVMConstReal(g->f64, CELO_LOG2E), "");
    k = intrinsic(g, "llvm.rint", g->f64, &k, 1);
    LLVMValueRef r = LLVMBuildFSub(B, x, LLVMBuildFMul(B, k, LLVMConstReal(g->f64, CELO_LN2_HI), ""), "");
    r = LLVMBuildFSub(B, r, LLVMBuildFMul(B, k, LLVMConstReal(g->f64, CELO_LN2_LO), ""), "");
    LLVMValueRef p = LLVMConstReal(g->f64, celo_exp_poly[0]);
    for (int i = 1; i < CELO_EXP_NPOLY; i++)
        p = LLVMBuildFAdd(B, LLVMBuildFMul(B, p, r, ""), LLVMConstReal(g->f64, celo_exp_poly[i]), "");
    LLVMValueRef bits = LLVMBuildAdd(B, LLVMBuildFPToSI(B, k, g->i64, ""), LLVMConstInt(g->i64, 1023, 0), "");
    bits = LLVMBuildShl(B, bits, LLVMConstInt(g->i64, 52, 0), "");
    LLVMValueRef e = LLVMBuildFPTrunc(B, LLVMBuildFMul(B, p, LLVMBuildBitCast(B, bits, g->f64, ""), ""), g->f32, "");
    return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, a, a, ""), a, e, "");
}

/* One map op (runtime/ops.def); no default, so that a map op added to the table without its code here does not
 * compile. */
static LLVMValueRef emit_op(cg *g, celo_op op, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMBuilderRef B = g->b;
    LLVMValueRef args[2] = {a, b};
    switch (op) {
    case CELO_OP_NEG: return LLVMBuildFNeg(B, a, "");
    case CELO_OP_ELEMS: return a;
    case CELO_OP_ADD: return LLVMBuildFAdd(B, a, b, "");
    case CELO_OP_SUB: return LLVMBuildFSub(B, a, b, "");
    case CELO_OP_MUL: return LLVMBuildFMul(B, a, b, "");
    case CELO_OP_DIV: return LLVMBuildFDiv(B, a, b, "");
    case CELO_OP_POW: return intrinsic(g, "llvm.pow", g->f32, args, 2);
    case CELO_OP_MIN: return intrinsic(g, "llvm.minnum", g->f32, args, 2);
    case CELO_OP_MAX: return intrinsic(g, "llvm.maxnum", g->f32, args, 2);
    case CELO_OP_SQRT: return intrinsic(g, "llvm.sqrt", g->f32, args, 1);
    case CELO_OP_RSQRT: return LLVMBuildFDiv(B, fconst(g, 1), intrinsic(g, "llvm.sqrt", g->f32, args, 1), "");
    case CELO_OP_EXP: return emit_expf(g, a);
    case CELO_OP_LOG: return intrinsic(g, "llvm.log", g->f32, args, 1);
    case CELO_OP_ABS: return intrinsic(g, "llvm.fabs", g->f32, args, 1);
    case CELO_OP_FLOOR: return intrinsic(g, "llvm.floor", g->f32, args, 1);
    case CELO_OP_TANH: return libcall(g, "tanhf", a);
    case CELO_OP_COS: return libcall(g, "cosf", a);
    case CELO_OP_SIGMOID: {
        LLVMValueRef e = emit_expf(g, LLVMBuildFNeg(B, a, ""));
        return LLVMBuildFDiv(B, fconst(g, 1), LLVMBuildFAdd(B, fconst(g, 1), e, ""), "");
    }
    case CELO_OP_RELU:
        return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, fconst(g, 0), ""), a, fconst(g, 0), "");
    case CELO_OP_SIGN: {
        LLVMValueRef neg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, a, fconst(g, 0), ""), fconst(g, -1), a, "");
        return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, fconst(g, 0), ""), fconst(g, 1), neg, "");
    }
    case CELO_OP_LT: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""));
    case CELO_OP_LE: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOLE, a, b, ""));
    case CELO_OP_GT: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""));
    case CELO_OP_GE: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOGE, a, b, ""));
    case CELO_OP_EQ: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOEQ, a, b, ""));
    case CELO_OP_NE: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealUNE, a, b, ""));
    case CELO_OP_AND: return bool_to_f(g, LLVMBuildAnd(B, nonzero(g, a), nonzero(g, b), ""));
    case CELO_OP_OR: return bool_to_f(g, LLVMBuildOr(B, nonzero(g, a), nonzero(g, b), ""));
    case CELO_OP_NOT: return bool_to_f(g, LLVMBuildFCmp(B, LLVMRealOEQ, a, fconst(g, 0), ""));
    case CELO_OP_SELECT: return LLVMBuildSelect(B, nonzero(g, a), b, c, "");
    case CELO_OP_FMA: {
        LLVMValueRef abc[3] = {a, b, c};
        return intrinsic(g, "llvm.fma", g->f32, abc, 3);
    }
#define CELO_INPUT(id, ...)  case CELO_OP_##id:
#define CELO_REDUCE(id, ...) case CELO_OP_##id:
#define CELO_MATRIX(id, ...) case CELO_OP_##id:
#include "../runtime/ops.def"
    break; /* not maps: emit_element loads inputs and staged values, and the passes accumulate reductions */
    }
    return fconst(g, 0);
}

static int is_elem_red(const celo_program *P, const celo_node *x)
{
    return celo_is_pass_reduction(P, x);
}

/* The pointer-table entry of factored domain dom's table (celort.h) */
static int ftab_src(const celo_program *P, int dom)
{
    return 2 + P->nstate + P->nnodes + dom - CELO_FROW;
}

/* What pass k touches, decided once: which nodes it computes, which buffers and scalars it reads. */
/* Where a pass argument comes from: >= 0 the kernel's pointer table, -(1 + j) the partials of reduction node j,
 * SC_SRC - j the host or per-tensor value of node j (below every partial: a rule may have ~100K nodes). */
enum { SC_SRC = -(1 << 28) };

typedef struct {
    const celo_program *P;
    int k, final, nested;
    int fac[CELO_NFDOM]; /* the factored domains it reads */
    char *comp;          /* ELEM nodes computed in the loop */
    int *arg;            /* node/buffer -> argument number of the body, -1 if absent */
    int nargs;
    LLVMTypeRef argty[1024];
    int argsrc[1024]; /* what the entry passes: >= 0 ptr index, <= SC_SRC: sc node (SC_SRC - j), -(1 + j) part */
} passinfo;

/* Marks the element-wise nodes pass k needs (outputs, staged values, reduction operands). */
static void need(passinfo *pi, int j)
{
    const celo_program *P = pi->P;
    const celo_node *x = &P->nodes[j];
    if (x->dom != CELO_ELEM || pi->comp[j])
        return;
    pi->comp[j] = 1;
    if ((x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED)) && x->pass < pi->k)
        return; /* loaded from its staged buffer */
    if (x->a >= 0)
        need(pi, x->a);
    if (x->b >= 0)
        need(pi, x->b);
    if (x->c >= 0)
        need(pi, x->c);
}

static void add_arg(passinfo *pi, int src, LLVMTypeRef ty)
{
    for (int i = 0; i < pi->nargs; i++)
        if (pi->argsrc[i] == src)
            return;
    pi->argsrc[pi->nargs] = src;
    pi->argty[pi->nargs++] = ty;
}

static int find_arg(const passinfo *pi, int src)
{
    for (int i = 0; i < pi->nargs; i++)
        if (pi->argsrc[i] == src)
            return i;
    return -1;
}

static int vec_src(const celo_program *P, int j)
{
    const celo_node *x = &P->nodes[j];
    return x->op == CELO_OP_STATE ? 2 + x->aux : 2 + P->nstate + j;
}

static void analyse(cg *g, passinfo *pi)
{
    const celo_program *P = pi->P;
    int nn = P->nnodes;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if ((is_elem_red(P, x) || x->op == CELO_OP_ORTHO) && x->pass == pi->k)
            need(pi, x->a);
        if ((x->flags & CELO_FLAG_STAGED) && x->pass == pi->k && x->dom == CELO_ELEM)
            need(pi, j); /* the operand of a factored mean, reduced by the runtime after the pass */
    }
    if (pi->final) {
        if (P->p_value >= 0)
            need(pi, P->p_value);
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                need(pi, P->state[s].value);
    }
    /* arguments: pointers first (noalias), then scalars */
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (!pi->comp[j])
            continue;
        if (x->op == CELO_OP_P)
            add_arg(pi, 0, g->ptr);
        else if (x->op == CELO_OP_G)
            add_arg(pi, 1, g->ptr);
        else if (x->op == CELO_OP_STATE)
            add_arg(pi, 2 + x->aux, g->ptr);
        if (x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED)) /* an input too, staged for a factored mean */
            add_arg(pi, 2 + P->nstate + j, g->ptr);
        int ops[3] = {x->a, x->b, x->c};
        if ((x->op == CELO_OP_ORTHO || (x->flags & CELO_FLAG_STAGED)) && x->pass < pi->k)
            continue;
        for (int q = 0; q < 3; q++) {
            int o = ops[q];
            if (o < 0)
                continue;
            const celo_node *y = &P->nodes[o];
            if (celo_dom_is_vec(y->dom)) {
                add_arg(pi, vec_src(P, o), g->ptr);
                pi->nested = 1;
                if (celo_dom_is_fac(y->dom)) {
                    add_arg(pi, ftab_src(P, y->dom), g->ptr);
                    pi->fac[y->dom - CELO_FROW] = 1;
                }
            } else if ((y->dom == CELO_HOST || y->dom == CELO_SCALAR) && y->op != CELO_OP_CONST)
                add_arg(pi, SC_SRC - o, g->f32);
        }
    }
    if (pi->final) {
        add_arg(pi, 0, g->ptr);
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                add_arg(pi, 2 + s, g->ptr);
        int outs[257], no = 0;
        if (P->p_value >= 0)
            outs[no++] = P->p_value;
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                outs[no++] = P->state[s].value;
        for (int q = 0; q < no; q++) {
            const celo_node *y = &P->nodes[outs[q]];
            if (celo_dom_is_vec(y->dom)) {
                add_arg(pi, vec_src(P, outs[q]), g->ptr);
                pi->nested = 1;
                if (celo_dom_is_fac(y->dom)) {
                    add_arg(pi, ftab_src(P, y->dom), g->ptr);
                    pi->fac[y->dom - CELO_FROW] = 1;
                }
            } else if (y->dom != CELO_ELEM && y->op != CELO_OP_CONST)
                add_arg(pi, SC_SRC - outs[q], g->f32);
        }
    }
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO && x->pass == pi->k)
            add_arg(pi, 2 + P->nstate + j, g->ptr);
        if (is_elem_red(P, x) && x->pass == pi->k) {
            add_arg(pi, -1 - j, g->ptr);
            if (x->dom != CELO_SCALAR)
                pi->nested = 1;
        }
    }
    /* the gradient: a read-only array of at least C values, which value_of reads in place of a factored value
     * that does not change along the row */
    for (int d = 0; d < CELO_NFDOM; d++)
        if (pi->fac[d] && CELO_FROW + d != CELO_MAT)
            add_arg(pi, 1, g->ptr);
}

typedef struct {
    LLVMValueRef *v; /* value of each node at the current element */
    LLVMValueRef fn, r, c, i, C;
    LLVMValueRef fbase[CELO_NFDOM], fflag[CELO_NFDOM]; /* factored tables: this row's base, the column flag */
} loopctx;

static LLVMValueRef argv_(loopctx *lc, const passinfo *pi, int src)
{
    return LLVMGetParam(lc->fn, 3 + (unsigned)find_arg(pi, src));
}

static LLVMValueRef gep(cg *g, LLVMTypeRef ty, LLVMValueRef base, LLVMValueRef idx)
{
    return LLVMBuildGEP2(g->b, ty, base, &idx, 1, "");
}

static LLVMValueRef value_of(cg *g, const passinfo *pi, loopctx *lc, int j)
{
    const celo_program *P = pi->P;
    const celo_node *x = &P->nodes[j];
    switch (x->dom) {
    case CELO_HOST:
    case CELO_SCALAR:
        if (x->op == CELO_OP_CONST)
            return fconst(g, x->imm);
        return argv_(lc, pi, SC_SRC - j);
    case CELO_ROW:
    case CELO_COL:
        return LLVMBuildLoad2(g->b, g->f32,
                              gep(g, g->f32, argv_(lc, pi, vec_src(P, j)), x->dom == CELO_ROW ? lc->r : lc->c), "");
    case CELO_FROW:
    case CELO_FCOL:
    case CELO_FBAT:
    case CELO_MAT: { /* vec[tab[1 + r] + tab[0] * c], the row's part loaded once per row */
        int d = x->dom - CELO_FROW;
        LLVMValueRef vec = argv_(lc, pi, vec_src(P, j));
        LLVMValueRef row = LLVMBuildLoad2(g->b, g->f32, gep(g, g->f32, vec, lc->fbase[d]), "");
        /* MAT drops the last axis on every shape (tab[0] = 0): one value per row, like ROW */
        if (x->dom == CELO_MAT)
            return row;
        /* Both readings, then a select on the tensor's flag: a value per column is a contiguous load from the
         * row's start (from the gradient, any C readable values, when the flag is 0), a value per row one load
         * per row. A select on the index instead left LLVM a gather per value and element. */
        LLVMValueRef start =
            LLVMBuildSelect(g->b, lc->fflag[d], gep(g, g->f32, vec, lc->fbase[d]), argv_(lc, pi, 1), "");
        LLVMValueRef col = LLVMBuildLoad2(g->b, g->f32, gep(g, g->f32, start, lc->c), "");
        return LLVMBuildSelect(g->b, lc->fflag[d], col, row, "");
    }
    default: return lc->v[j];
    }
}

/* The loop body for one element: every needed node in order, reductions, staging, and the final stores. */
static void emit_element(cg *g, const passinfo *pi, loopctx *lc, LLVMValueRef *acc, LLVMValueRef colred_base)
{
    const celo_program *P = pi->P;
    (void)colred_base;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!pi->comp[j])
            continue;
        LLVMValueRef v;
        switch (x->op) {
        case CELO_OP_P:
        case CELO_OP_G:
        case CELO_OP_STATE: {
            int src = x->op == CELO_OP_P ? 0 : x->op == CELO_OP_G ? 1 : 2 + x->aux;
            v = LLVMBuildLoad2(g->b, g->f32, gep(g, g->f32, argv_(lc, pi, src), lc->i), "in");
            /* an input staged for a factored mean (fuse.c) */
            if ((x->flags & CELO_FLAG_STAGED) && x->pass == pi->k)
                LLVMBuildStore(g->b, v, gep(g, g->f32, argv_(lc, pi, 2 + P->nstate + j), lc->i));
            break;
        }
        case CELO_OP_ORTHO:
            if (x->pass < pi->k)
                v = LLVMBuildLoad2(g->b, g->f32, gep(g, g->f32, argv_(lc, pi, 2 + P->nstate + j), lc->i), "o");
            else
                v = NULL;
            break;
        default:
            if ((x->flags & CELO_FLAG_STAGED) && x->pass < pi->k) {
                v = LLVMBuildLoad2(g->b, g->f32, gep(g, g->f32, argv_(lc, pi, 2 + P->nstate + j), lc->i), "st");
                break;
            }
            v = emit_op(g, (celo_op)x->op, value_of(g, pi, lc, x->a), x->b >= 0 ? value_of(g, pi, lc, x->b) : NULL,
                        x->c >= 0 ? value_of(g, pi, lc, x->c) : NULL);
            if ((x->flags & CELO_FLAG_STAGED) && x->pass == pi->k)
                LLVMBuildStore(g->b, v, gep(g, g->f32, argv_(lc, pi, 2 + P->nstate + j), lc->i));
        }
        lc->v[j] = v;
    }
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO && x->pass == pi->k)
            LLVMBuildStore(g->b, value_of(g, pi, lc, x->a), gep(g, g->f32, argv_(lc, pi, 2 + P->nstate + j), lc->i));
        if (!is_elem_red(P, x) || x->pass != pi->k)
            continue;
        if (x->dom == CELO_COL) {
            /* per-column partial: into the chunk's float scratch after the C doubles (celort.h), folded into the
             * doubles every CELO_COL_BLOCK rows by fold_cols below */
            LLVMValueRef e32 = value_of(g, pi, lc, x->a);
            LLVMValueRef addr = gep(g, g->f32, gep(g, g->f64, argv_(lc, pi, -1 - j), lc->C), lc->c);
            LLVMValueRef old = LLVMBuildLoad2(g->b, g->f32, addr, "");
            LLVMValueRef nw = x->op == CELO_OP_SUM ? LLVMBuildFAdd(g->b, old, e32, "") : max_keep_nan(g, old, e32);
            LLVMBuildStore(g->b, nw, addr);
            continue;
        }
        LLVMValueRef e = LLVMBuildFPExt(g->b, value_of(g, pi, lc, x->a), g->f64, "");
        LLVMValueRef nw;
        if (x->op == CELO_OP_SUM) {
            nw = LLVMBuildFAdd(g->b, acc[j], e, "");
            LLVMSetFastMathFlags(nw, LLVMFastMathAllowReassoc);
        } else
            nw = max_keep_nan(g, acc[j], e);
        acc[j] = nw;
    }
    if (pi->final) {
        if (P->p_value >= 0)
            LLVMBuildStore(g->b, value_of(g, pi, lc, P->p_value), gep(g, g->f32, argv_(lc, pi, 0), lc->i));
        for (int s = 0; s < P->nstate; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0)
                LLVMBuildStore(g->b, value_of(g, pi, lc, P->state[s].value),
                               gep(g, g->f32, argv_(lc, pi, 2 + s), lc->i));
    }
}

/* for (iv = lo; iv < hi; iv++) { body } with accumulator phis for the reductions listed in red[]. */
typedef struct {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef iv;
    LLVMValueRef phi[1024];
    int fold_tail; /* ask the vectorizer for a masked last vector instead of a scalar remainder */
} loop;

static void loop_begin(cg *g, loop *L, LLVMValueRef fn, LLVMValueRef lo, LLVMValueRef hi, int n, const int *red,
                       LLVMValueRef *acc, const char *name)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    L->head = LLVMAppendBasicBlockInContext(g->ctx, fn, name);
    L->body = LLVMAppendBasicBlockInContext(g->ctx, fn, "body");
    L->exit = LLVMAppendBasicBlockInContext(g->ctx, fn, "exit");
    LLVMBuildBr(g->b, L->head);
    LLVMPositionBuilderAtEnd(g->b, L->head);
    L->iv = LLVMBuildPhi(g->b, g->i64, "iv");
    LLVMAddIncoming(L->iv, &lo, &pre, 1);
    for (int q = 0; q < n; q++) {
        L->phi[q] = LLVMBuildPhi(g->b, g->f64, "acc");
        LLVMAddIncoming(L->phi[q], &acc[red[q]], &pre, 1);
        acc[red[q]] = L->phi[q];
    }
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, L->iv, hi, ""), L->body, L->exit);
    LLVMPositionBuilderAtEnd(g->b, L->body);
}

static void loop_end(cg *g, loop *L, int n, const int *red, LLVMValueRef *acc)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMValueRef next = LLVMBuildNSWAdd(g->b, L->iv, LLVMConstInt(g->i64, 1, 0), "");
    LLVMAddIncoming(L->iv, &next, &latch, 1);
    for (int q = 0; q < n; q++) {
        LLVMAddIncoming(L->phi[q], &acc[red[q]], &latch, 1);
        acc[red[q]] = L->phi[q];
    }
    LLVMValueRef br = LLVMBuildBr(g->b, L->head);
    if (L->fold_tail) {
        /* llvm.loop !{self, !{"llvm.loop.vectorize.predicate.enable", i1 true}} */
        LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->ctx, NULL, 0);
        LLVMMetadataRef kv[2] = {LLVMMDStringInContext2(g->ctx, "llvm.loop.vectorize.predicate.enable", 36),
                                 LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(g->ctx), 1, 0))};
        LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(g->ctx, kv, 2)};
        LLVMMetadataRef id = LLVMMDNodeInContext2(g->ctx, ops, 2);
        LLVMMetadataReplaceAllUsesWith(tmp, id);
        LLVMSetMetadata(br, LLVMGetMDKindIDInContext(g->ctx, "llvm.loop", 9), LLVMMetadataAsValue(g->ctx, id));
    }
    LLVMPositionBuilderAtEnd(g->b, L->exit);
}

static void store_partial(cg *g, const passinfo *pi, loopctx *lc, int j, LLVMValueRef idx, LLVMValueRef accv)
{
    const celo_node *x = &pi->P->nodes[j];
    LLVMValueRef addr = gep(g, g->f64, argv_(lc, pi, -1 - j), idx);
    LLVMValueRef old = LLVMBuildLoad2(g->b, g->f64, addr, "");
    LLVMValueRef nw = x->op == CELO_OP_SUM ? LLVMBuildFAdd(g->b, old, accv, "") : max_keep_nan(g, old, accv);
    LLVMBuildStore(g->b, nw, addr);
}

/* A pass over whole arrays with no reduction (most update passes) runs its body on blocks of PF_BLOCK elements
 * and, before each block, prefetches the cache lines PF_AHEAD elements ahead in every array it streams. The
 * loops' arithmetic (AdamW: a square root and two divisions per element) keeps a core busy long enough that the
 * hardware prefetchers alone leave memory idle: at 16M parameters AdamW's pass ran ~12 % and Lion's ~10 % faster
 * this way (6 ABBA rounds each), AdamW then at its same-traffic bound. Results are unchanged: the blocks only
 * split the element range.
 * Passes with reductions keep one call (their partials and column folds follow the chunk), and so do passes
 * with an element select on a hyper-parameter: O3 versions the loop on it, and on the block loop that doubled the
 * code to compile (all stdlib rules blocked: +34 % compile instructions; these excluded: +9 %). CELO_LLVM_PREFETCH=0
 * turns blocking off (experiments). Returns 1 when it emitted the blocked call. */
enum { PF_BLOCK = 64, PF_AHEAD = 256, PF_LINE = 16 };

static int emit_prefetch_blocks(cg *g, const passinfo *pi, LLVMValueRef entry, LLVMValueRef body, LLVMTypeRef bty,
                                LLVMValueRef *cargs)
{
    const celo_program *P = pi->P;
    const char *env = getenv("CELO_LLVM_PREFETCH");
    if (pi->nested || (env && !strcmp(env, "0")))
        return 0;
    for (int j = 0; j < P->nnodes; j++)
        if (pi->comp[j] && P->nodes[j].op == CELO_OP_SELECT && P->nodes[P->nodes[j].a].dom != CELO_ELEM)
            return 0;
    LLVMValueRef streams[1024];
    int written[1024], ns = 0;
    for (int i = 0; i < pi->nargs; i++) {
        int src = pi->argsrc[i];
        if (src < 0 && src > SC_SRC)
            return 0; /* a reduction partial */
        if (src < 0)
            continue;
        int elem = src < 2 || (src < 2 + P->nstate && P->state[src - 2].dom == CELO_ELEM);
        int j = src - 2 - P->nstate;
        if (j >= 0 && j < P->nnodes)
            elem = P->nodes[j].op == CELO_OP_ORTHO || (P->nodes[j].flags & CELO_FLAG_STAGED);
        if (!elem)
            continue;
        int w = pi->final && (src == 0 || (src >= 2 && src < 2 + P->nstate));
        if (j >= 0 && j < P->nnodes)
            w = P->nodes[j].pass == pi->k;
        streams[ns] = cargs[3 + i];
        written[ns++] = w;
    }
    if (!ns)
        return 0;
    LLVMValueRef i0 = LLVMGetParam(entry, 0), i1 = LLVMGetParam(entry, 1);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, entry, "blocks");
    LLVMBasicBlockRef blk = LLVMAppendBasicBlockInContext(g->ctx, entry, "block");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, entry, "done");
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, head);
    LLVMValueRef b = LLVMBuildPhi(g->b, g->i64, "b");
    LLVMAddIncoming(b, &i0, &pre, 1);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, b, i1, ""), blk, done);
    LLVMPositionBuilderAtEnd(g->b, blk);
    unsigned id = LLVMLookupIntrinsicID("llvm.prefetch", 13);
    LLVMTypeRef pty[1] = {g->ptr};
    LLVMValueRef pf = LLVMGetIntrinsicDeclaration(g->mod, id, pty, 1);
    LLVMTypeRef pfty = LLVMIntrinsicGetType(g->ctx, id, pty, 1);
    for (int q = 0; q < ns; q++)
        for (int l = 0; l < PF_BLOCK; l += PF_LINE) {
            /* a plain (not inbounds) address: prefetching past the end of an array is harmless */
            LLVMValueRef at = LLVMBuildAdd(g->b, b, LLVMConstInt(g->i64, PF_AHEAD + l, 0), "");
            LLVMValueRef args[4] = {gep(g, g->f32, streams[q], at), LLVMConstInt(g->i32, written[q] ? 1 : 0, 0),
                                    LLVMConstInt(g->i32, 3, 0), LLVMConstInt(g->i32, 1, 0)};
            LLVMBuildCall2(g->b, pfty, pf, args, 4, "");
        }
    LLVMValueRef e = LLVMBuildAdd(g->b, b, LLVMConstInt(g->i64, PF_BLOCK, 0), "");
    e = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, e, i1, ""), e, i1, "");
    LLVMValueRef bargs[1024 + 3];
    memcpy(bargs, cargs, (size_t)(3 + pi->nargs) * sizeof *bargs);
    bargs[0] = b;
    bargs[1] = e;
    LLVMBuildCall2(g->b, bty, body, bargs, (unsigned)(3 + pi->nargs), "");
    LLVMAddIncoming(b, &e, &blk, 1);
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, done);
    return 1;
}

/* After row r of the chunk: every CELO_COL_BLOCK rows (counted from the chunk's first row r0) and after its last
 * row r1 - 1, add the float column scratch of each COL reduction into its double partials and reset it. */
static void fold_cols(cg *g, const passinfo *pi, loopctx *lc, LLVMValueRef fn, LLVMValueRef r, LLVMValueRef r0,
                      LLVMValueRef r1)
{
    const celo_program *P = pi->P;
    int any = 0;
    for (int j = 0; j < P->nnodes; j++)
        any |= is_elem_red(P, &P->nodes[j]) && P->nodes[j].pass == pi->k && P->nodes[j].dom == CELO_COL;
    if (!any)
        return;
    LLVMValueRef one = LLVMConstInt(g->i64, 1, 0);
    LLVMValueRef done = LLVMBuildAdd(g->b, LLVMBuildSub(g->b, r, r0, ""), one, "");
    LLVMValueRef blk =
        LLVMBuildICmp(g->b, LLVMIntEQ, LLVMBuildSRem(g->b, done, LLVMConstInt(g->i64, CELO_COL_BLOCK, 0), ""),
                      LLVMConstInt(g->i64, 0, 0), "");
    LLVMValueRef last = LLVMBuildICmp(g->b, LLVMIntEQ, LLVMBuildAdd(g->b, r, one, ""), r1, "");
    LLVMBasicBlockRef foldb = LLVMAppendBasicBlockInContext(g->ctx, fn, "fold");
    LLVMBasicBlockRef cont = LLVMAppendBasicBlockInContext(g->ctx, fn, "folded");
    LLVMBuildCondBr(g->b, LLVMBuildOr(g->b, blk, last, ""), foldb, cont);
    LLVMPositionBuilderAtEnd(g->b, foldb);
    loop F;
    loop_begin(g, &F, fn, LLVMConstInt(g->i64, 0, 0), lc->C, 0, NULL, NULL, "foldc");
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!is_elem_red(P, x) || x->pass != pi->k || x->dom != CELO_COL)
            continue;
        LLVMValueRef base = argv_(lc, pi, -1 - j);
        LLVMValueRef da = gep(g, g->f64, base, F.iv), fa = gep(g, g->f32, gep(g, g->f64, base, lc->C), F.iv);
        LLVMValueRef d = LLVMBuildLoad2(g->b, g->f64, da, "");
        LLVMValueRef f = LLVMBuildFPExt(g->b, LLVMBuildLoad2(g->b, g->f32, fa, ""), g->f64, "");
        LLVMBuildStore(g->b, x->op == CELO_OP_SUM ? LLVMBuildFAdd(g->b, d, f, "") : max_keep_nan(g, d, f), da);
        LLVMBuildStore(g->b, LLVMConstReal(g->f32, x->op == CELO_OP_SUM ? 0.0 : -1.0 / 0.0), fa);
    }
    loop_end(g, &F, 0, NULL, NULL);
    LLVMBuildBr(g->b, cont);
    LLVMPositionBuilderAtEnd(g->b, cont);
}

static void emit_pass(cg *g, const rule *r, int k)
{
    const celo_program *P = &r->prog;
    passinfo pi = {.P = P, .k = k, .final = k == P->npass};
    pi.comp = calloc((size_t)P->nnodes + 1, 1);
    analyse(g, &pi);

    char name[256];
    /* the body, with noalias pointer arguments */
    LLVMTypeRef bparams[1024 + 3] = {g->i64, g->i64, g->i64};
    for (int i = 0; i < pi.nargs; i++)
        bparams[3 + i] = pi.argty[i];
    LLVMTypeRef bty = LLVMFunctionType(g->vd, bparams, (unsigned)(3 + pi.nargs), 0);
    char id[128];
    snprintf(name, sizeof name, "%s%s_pass%d_body", g->prefix, ident(P->name, id, sizeof id), k);
    LLVMValueRef body = LLVMAddFunction(g->mod, name, bty);
    LLVMSetLinkage(body, LLVMInternalLinkage);
    if (g->wide_vectors)
        LLVMAddTargetDependentFunctionAttr(body, "prefer-vector-width", "512");
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (int i = 0; i < pi.nargs; i++)
        if (pi.argty[i] == g->ptr)
            LLVMAddAttributeAtIndex(body, (unsigned)(4 + i), LLVMCreateEnumAttribute(g->ctx, noalias, 0));

    LLVMValueRef *vals = calloc((size_t)P->nnodes + 1, sizeof *vals);
    LLVMValueRef *acc = calloc((size_t)P->nnodes + 1, sizeof *acc);
    loopctx lc = {.v = vals, .fn = body, .C = LLVMGetParam(body, 2)};
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, body, "entry"));
    LLVMValueRef i0 = LLVMGetParam(body, 0), i1 = LLVMGetParam(body, 1), C = LLVMGetParam(body, 2);
    int sred[1024], nsred = 0, rred[1024], nrred = 0;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (is_elem_red(P, x) && x->pass == k) {
            if (x->dom == CELO_SCALAR)
                sred[nsred++] = j;
            else if (x->dom == CELO_ROW)
                rred[nrred++] = j;
        }
    }
    LLVMValueRef zero = LLVMConstReal(g->f64, 0), ninf = LLVMConstReal(g->f64, -1.0 / 0.0);
    for (int q = 0; q < nsred; q++)
        acc[sred[q]] = P->nodes[sred[q]].op == CELO_OP_SUM ? zero : ninf;
    if (!pi.nested) {
        loop L;
        loop_begin(g, &L, body, i0, i1, nsred, sred, acc, "loop");
        lc.i = L.iv;
        emit_element(g, &pi, &lc, acc, NULL);
        loop_end(g, &L, nsred, sred, acc);
    } else {
        /* rows r0..r1 of the [R, C] view, each restricted to the columns inside [i0, i1) */
        LLVMValueRef one = LLVMConstInt(g->i64, 1, 0);
        LLVMValueRef r0 = LLVMBuildSDiv(g->b, i0, C, "r0");
        LLVMValueRef r1 = LLVMBuildAdd(g->b, LLVMBuildSDiv(g->b, LLVMBuildSub(g->b, i1, one, ""), C, ""), one, "r1");
        loop R;
        loop_begin(g, &R, body, r0, r1, nsred, sred, acc, "rows");
        LLVMValueRef base = LLVMBuildMul(g->b, R.iv, C, "");
        LLVMValueRef cb = LLVMBuildSub(g->b, i0, base, "");
        cb = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, cb, LLVMConstInt(g->i64, 0, 0), ""), cb,
                             LLVMConstInt(g->i64, 0, 0), "cb");
        LLVMValueRef ce = LLVMBuildSub(g->b, i1, base, "");
        ce = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ce, C, ""), ce, C, "ce");
        for (int q = 0; q < nrred; q++)
            acc[rred[q]] = P->nodes[rred[q]].op == CELO_OP_SUM ? zero : ninf;
        int both[2048], nb = 0;
        for (int q = 0; q < nsred; q++)
            both[nb++] = sred[q];
        for (int q = 0; q < nrred; q++)
            both[nb++] = rred[q];
        for (int d = 0; d < CELO_NFDOM; d++) {
            if (!pi.fac[d])
                continue;
            LLVMValueRef tab = argv_(&lc, &pi, ftab_src(P, CELO_FROW + d));
            LLVMValueRef rb = LLVMBuildNSWAdd(g->b, R.iv, one, "");
            lc.fbase[d] = LLVMBuildSExt(g->b, LLVMBuildLoad2(g->b, g->i32, gep(g, g->i32, tab, rb), "fb"), g->i64, "");
            lc.fflag[d] =
                LLVMBuildICmp(g->b, LLVMIntNE, LLVMBuildLoad2(g->b, g->i32, tab, "ff"), LLVMConstInt(g->i32, 0, 0), "");
        }
        /* a masked last vector: a row of 10 columns is one vector, not 8 lanes and 2 scalar iterations (celo2's 32 x 10
         * matrix: pass 3 about half the time); and no epilogue loop to compile */
        loop Cl = {.fold_tail = 1};
        loop_begin(g, &Cl, body, cb, ce, nb, both, acc, "cols");
        lc.r = R.iv;
        lc.c = Cl.iv;
        lc.i = LLVMBuildNSWAdd(g->b, base, Cl.iv, "i");
        emit_element(g, &pi, &lc, acc, NULL);
        loop_end(g, &Cl, nb, both, acc);
        fold_cols(g, &pi, &lc, body, R.iv, r0, r1);
        lc.r = R.iv;
        for (int q = 0; q < nrred; q++)
            store_partial(g, &pi, &lc, rred[q], R.iv, acc[rred[q]]);
        loop_end(g, &R, nsred, sred, acc);
    }
    for (int q = 0; q < nsred; q++)
        store_partial(g, &pi, &lc, sred[q], LLVMConstInt(g->i64, 0, 0), acc[sred[q]]);
    LLVMBuildRetVoid(g->b);

    /* the ABI entry */
    LLVMTypeRef eparams[6] = {g->i64, g->i64, g->i64, g->ptr, g->ptr, g->ptr};
    LLVMTypeRef ety = LLVMFunctionType(g->vd, eparams, 6, 0);
    snprintf(name, sizeof name, "%s%s_pass%d", g->prefix, id, k);
    LLVMValueRef entry = LLVMAddFunction(g->mod, name, ety);
    if (g->wide_vectors)
        LLVMAddTargetDependentFunctionAttr(entry, "prefer-vector-width", "512");
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, entry, "entry"));
    LLVMValueRef cargs[1024 + 3] = {LLVMGetParam(entry, 0), LLVMGetParam(entry, 1), LLVMGetParam(entry, 2)};
    for (int i = 0; i < pi.nargs; i++) {
        int src = pi.argsrc[i];
        LLVMValueRef v;
        if (src >= 0)
            v = LLVMBuildLoad2(g->b, g->ptr,
                               gep(g, g->ptr, LLVMGetParam(entry, 3), LLVMConstInt(g->i64, (unsigned long long)src, 0)),
                               "");
        else if (src <= SC_SRC)
            v = LLVMBuildLoad2(
                g->b, g->f32,
                gep(g, g->f32, LLVMGetParam(entry, 4), LLVMConstInt(g->i64, (unsigned long long)(SC_SRC - src), 0)),
                "");
        else
            v = LLVMBuildLoad2(
                g->b, g->ptr,
                gep(g, g->ptr, LLVMGetParam(entry, 5), LLVMConstInt(g->i64, (unsigned long long)(-1 - src), 0)), "");
        cargs[3 + i] = v;
    }
    if (!emit_prefetch_blocks(g, &pi, entry, body, bty, cargs))
        LLVMBuildCall2(g->b, bty, body, cargs, (unsigned)(3 + pi.nargs), "");
    LLVMBuildRetVoid(g->b);
    free(vals);
    free(acc);
    free(pi.comp);
}

static void cg_init(cg *g, LLVMContextRef ctx, const char *modname)
{
    g->ctx = ctx;
    g->mod = LLVMModuleCreateWithNameInContext(modname, ctx);
    g->b = LLVMCreateBuilderInContext(ctx);
    g->f32 = LLVMFloatTypeInContext(ctx);
    g->f64 = LLVMDoubleTypeInContext(ctx);
    g->i64 = LLVMInt64TypeInContext(ctx);
    g->i32 = LLVMInt32TypeInContext(ctx);
    g->ptr = LLVMPointerTypeInContext(ctx, 0);
    g->vd = LLVMVoidTypeInContext(ctx);
    snprintf(g->prefix, sizeof g->prefix, "celo_");
    char *feat = LLVMGetHostCPUFeatures();
    /* LLVM prefers 256-bit vectors on AVX-512 CPUs; 512 bits (CELO_VECTOR_512=1) made no measurable difference to
     * the memory-bound update loops here and cost ~25 % more compile time, so it is opt-in. */
    g->wide_vectors = strstr(feat, "+avx512f") != NULL && getenv("CELO_VECTOR_512") != NULL;
    LLVMDisposeMessage(feat);
}

/* Builds, verifies and optimizes one module holding every pass of the given rules. */
static int build_module(cg *g, rule **rules, int n, LLVMTargetMachineRef tm, int optimize, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        for (int k = 1; k <= rules[i]->prog.npass; k++)
            emit_pass(g, rules[i], k);
        for (int v = 0; v < rules[i]->nvariants; v++) /* a rule with classes: the kernels of every variant */
            for (int k = 1; k <= rules[i]->variants[v]->prog.npass; k++)
                emit_pass(g, rules[i]->variants[v], k);
    }
    char *msg = NULL;
    if (LLVMVerifyModule(g->mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "internal error: LLVM module does not verify: %s", msg);
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(g->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(g->mod, td);
    LLVMDisposeTargetData(td);
    if (optimize) {
        const char *pipeline = getenv("CELO_LLVM_PIPELINE");
        LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
        /* Update loops are memory-bound: vectorize, but skip unrolling and interleaving (they cost compile time
         * and gain nothing here). Overridable for experiments: CELO_LLVM_UNROLL=1. */
        int unroll = getenv("CELO_LLVM_UNROLL") != NULL;
        LLVMPassBuilderOptionsSetLoopUnrolling(po, unroll);
        LLVMPassBuilderOptionsSetLoopInterleaving(po, unroll);
        LLVMPassBuilderOptionsSetSLPVectorization(po, unroll);
        LLVMErrorRef e = LLVMRunPasses(g->mod, pipeline ? pipeline : "default<O3>", tm, po);
        LLVMDisposePassBuilderOptions(po);
        if (e) {
            char *m = LLVMGetErrorMessage(e);
            snprintf(err, errlen, "LLVM optimization failed: %s", m);
            LLVMDisposeErrorMessage(m);
            return -1;
        }
    }
    return 0;
}

/* ---- the host target machine ---- */
/* Once per process, before any compilation thread starts: the native target, and LLVM's options.
 * -vectorizer-maximize-bandwidth lets the loop vectorizer size its vectors by the narrowest type of a loop
 * (float) instead of the widest (the double accumulators of reductions): reduction passes then run their float
 * arithmetic 8 wide instead of 4 (Adafactor's passes 1 and 2: about 20 % faster at 16M parameters). Results
 * do not change: only reassociable double accumulators are split differently.
 * Two passes that cost compile time and do nothing for these loops (same speed at 16M parameters, measured):
 * -disable-lsr skips loop strength reduction (a fifth of the compile's instructions; the loops keep one integer
 * add per vector for the address), -vectorize-slp=false the SLP vectorizer, which LLVM 19 runs in spite of
 * LLVMPassBuilderOptionsSetSLPVectorization(0) and which only merged a few scalar loads of hyper-parameters.
 * CELO_LLVM_ARGS appends options (experiments; e.g. -vectorizer-maximize-bandwidth=false). */
static void llvm_init_once(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
    static char buf[1024];
    const char *av[32] = {"celo", "-vectorizer-maximize-bandwidth", "-disable-lsr", "-vectorize-slp=false"};
    int ac = 4;
    const char *extra = getenv("CELO_LLVM_ARGS");
    snprintf(buf, sizeof buf, "%s", extra ? extra : "");
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && ac < 32; t = strtok_r(NULL, " ", &save))
        av[ac++] = t;
    LLVMParseCommandLineOptions(ac, av, NULL);
}

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;

/* LLVM's C API cannot ask whether a CPU name exists: creating a target machine for an unknown one only prints
 * "'NAME' is not a recognized processor for this target (ignoring processor)" to stderr and goes on with a
 * generic CPU. So the warning is caught (stderr into a temporary file while the machine is made) and turned into
 * an error; anything else LLVM prints goes on to stderr (for the name "help", its list of CPUs). */
static LLVMTargetMachineRef named_cpu_tm(LLVMTargetRef target, const char *triple, const char *cpu, char *err,
                                         size_t errlen)
{
    fflush(stderr);
    FILE *cap = tmpfile();
    int saved = cap ? dup(2) : -1;
    if (saved >= 0)
        dup2(fileno(cap), 2);
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, "", LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                                      LLVMCodeModelDefault);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    int unknown = 0;
    if (cap) {
        char line[512];
        rewind(cap);
        while (fgets(line, sizeof line, cap)) {
            if (strstr(line, "is not a recognized processor"))
                unknown = 1;
            else
                fputs(line, stderr);
        }
        fclose(cap);
    }
    unknown |= !*cpu;                /* "" would silently mean LLVM's generic CPU */
    int help = !strcmp(cpu, "help"); /* LLVM has just listed its CPUs (and features) on stderr */
    if ((unknown || help) && tm) {
        if (help)
            snprintf(err, errlen, "the CPU names for %s are listed above", triple);
        else
            snprintf(err, errlen, "unknown CPU '%s' for %s (--cpu help lists the names; x86-64-v3 is portable)", cpu,
                     triple);
        LLVMDisposeTargetMachine(tm);
        return NULL;
    }
    if (!tm)
        snprintf(err, errlen, "LLVM: cannot make a target machine for CPU '%s'", cpu);
    return tm;
}

/* The target machine for cpu: NULL, the host's CPU with all its features (the JIT, and celo build by default);
 * else the named CPU with its own features only, so that the code runs on every CPU that has them. */
static LLVMTargetMachineRef cpu_tm(const char *cpu, char *err, size_t errlen)
{
    pthread_once(&llvm_once, llvm_init_once);
    char *triple = LLVMGetDefaultTargetTriple();
    char *msg = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "LLVM: no target for %s: %s", triple, msg);
        LLVMDisposeMessage(msg);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    LLVMTargetMachineRef tm;
    if (cpu)
        tm = named_cpu_tm(target, triple, cpu, err, errlen);
    else {
        char *host = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
        tm = LLVMCreateTargetMachine(target, triple, host, feat, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                     LLVMCodeModelDefault);
        LLVMDisposeMessage(host);
        LLVMDisposeMessage(feat);
    }
    LLVMDisposeMessage(triple);
    return tm;
}

static LLVMTargetMachineRef host_tm(char *err, size_t errlen)
{
    return cpu_tm(NULL, err, errlen);
}

static LLVMOrcLLJITRef g_jit;

void llvm_shutdown(void)
{
    if (g_jit)
        LLVMOrcDisposeLLJIT(g_jit);
    g_jit = NULL;
}

static int orc_error(LLVMErrorRef e, const char *what, char *err, size_t errlen)
{
    char *m = LLVMGetErrorMessage(e);
    snprintf(err, errlen, "LLVM JIT: %s: %s", what, m);
    LLVMDisposeErrorMessage(m);
    return -1;
}

/* Compiles one group of rules to an in-memory object file (own context and target machine: thread-safe). */
typedef struct {
    rule **rules;
    int n;
    char prefix[32];
    LLVMMemoryBufferRef obj;
    char err[512];
} jitgroup;

static void compile_group(jitgroup *jg)
{
    LLVMTargetMachineRef tm = host_tm(jg->err, sizeof jg->err);
    if (!tm)
        return;
    LLVMContextRef ctx = LLVMContextCreate();
    cg g;
    cg_init(&g, ctx, jg->prefix);
    snprintf(g.prefix, sizeof g.prefix, "%s", jg->prefix);
    if (build_module(&g, jg->rules, jg->n, tm, 1, jg->err, sizeof jg->err) == 0) {
        char *msg = NULL;
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, g.mod, LLVMObjectFile, &msg, &jg->obj)) {
            snprintf(jg->err, sizeof jg->err, "LLVM code generation failed: %s", msg);
            jg->obj = NULL;
        }
        LLVMDisposeMessage(msg);
    }
    LLVMDisposeBuilder(g.b);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
}

/* A guess at a rule's compile time, to balance the compile threads: passes × nodes, plus the loops the optimizer
 * adds: per-row/column passes (a loop nest, column folds) and element selects on a hyper-parameter (O3 versions
 * the loop on it). Weights from callgrind counts of compiling each stdlib rule alone. */
static int compile_cost(const celo_program *P)
{
    int cost = P->npass * P->nnodes;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->dom == CELO_ELEM && x->op == CELO_OP_SELECT && P->nodes[x->a].dom != CELO_ELEM)
            cost += 20;
        if ((x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && P->nodes[x->a].dom == CELO_ELEM &&
            (x->dom == CELO_ROW || x->dom == CELO_COL))
            cost += 60;
    }
    return cost;
}

/* The rules are split into one group per thread; each group is optimized and compiled to machine code on its
 * own thread (separate LLVM contexts), and the object files are then linked into the JIT. */
static int llvm_jit_flat(rule **rules, int n, char *err, size_t errlen);

int llvm_jit_rules(rule **given, int ngiven, char *err, size_t errlen)
{
    /* a rule with classes is compiled as its variants (its own program has no passes) */
    int n = 0;
    for (int i = 0; i < ngiven; i++)
        n += given[i]->nvariants ? given[i]->nvariants : 1;
    rule **rules = malloc((size_t)(n ? n : 1) * sizeof *rules);
    n = 0;
    for (int i = 0; i < ngiven; i++)
        if (given[i]->nvariants)
            for (int v = 0; v < given[i]->nvariants; v++)
                rules[n++] = given[i]->variants[v];
        else
            rules[n++] = given[i];
    int rc = llvm_jit_flat(rules, n, err, errlen);
    free(rules);
    return rc;
}

static int llvm_jit_flat(rule **rules, int n, char *err, size_t errlen)
{
    LLVMErrorRef e;
    if (!g_jit) {
        LLVMTargetMachineRef tm2 = host_tm(err, errlen);
        if (!tm2)
            return -1;
        LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm2));
        if ((e = LLVMOrcCreateLLJIT(&g_jit, jb)))
            return orc_error(e, "creating the JIT", err, errlen);
        /* libm (tanhf, expf, powf) comes from the process */
        LLVMOrcDefinitionGeneratorRef gen;
        if ((e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(g_jit), NULL,
                                                                      NULL)))
            return orc_error(e, "process symbols", err, errlen);
        LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(g_jit), gen);
    }
    static int modno;
    int ng = celo_threads();
    if (ng > n)
        ng = n;
    if (ng < 1)
        ng = 1;
    jitgroup *gs = calloc((size_t)ng, sizeof *gs);
    rule **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    /* deal the rules out by size (number of passes × nodes), largest first, to balance the threads */
    int *cost = malloc((size_t)(n ? n : 1) * sizeof *cost);
    for (int i = 0; i < n; i++) {
        order[i] = rules[i];
        cost[i] = compile_cost(&rules[i]->prog);
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cost[j] > cost[j - 1]; j--) {
            int c = cost[j];
            cost[j] = cost[j - 1];
            cost[j - 1] = c;
            rule *t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int *load = calloc((size_t)ng, sizeof *load);
    for (int q = 0; q < ng; q++) {
        gs[q].rules = malloc((size_t)(n ? n : 1) * sizeof(rule *));
        snprintf(gs[q].prefix, sizeof gs[q].prefix, "celo_j%d_", modno++);
    }
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int q = 1; q < ng; q++)
            if (load[q] < load[best])
                best = q;
        gs[best].rules[gs[best].n++] = order[i];
        load[best] += cost[i];
    }
#pragma omp parallel for schedule(static, 1) num_threads(ng) if (ng > 1)
    for (int q = 0; q < ng; q++)
        compile_group(&gs[q]);
    int rc = 0;
    for (int q = 0; q < ng && !rc; q++) {
        if (!gs[q].obj) {
            snprintf(err, errlen, "%s", gs[q].err);
            rc = -1;
            break;
        }
        if ((e = LLVMOrcLLJITAddObjectFile(g_jit, LLVMOrcLLJITGetMainJITDylib(g_jit), gs[q].obj))) {
            rc = orc_error(e, "adding object code", err, errlen);
            break;
        }
        gs[q].obj = NULL; /* owned by the JIT now */
        for (int i = 0; i < gs[q].n && !rc; i++)
            for (int k = 1; k <= gs[q].rules[i]->prog.npass; k++) {
                char name[256];
                char id[128];
                snprintf(name, sizeof name, "%s%s_pass%d", gs[q].prefix,
                         ident(gs[q].rules[i]->prog.name, id, sizeof id), k);
                LLVMOrcExecutorAddress addr;
                if ((e = LLVMOrcLLJITLookup(g_jit, &addr, name))) {
                    rc = orc_error(e, name, err, errlen);
                    break;
                }
                gs[q].rules[i]->passes[k - 1].fn = (celo_kernel_fn)(uintptr_t)addr;
            }
    }
    for (int q = 0; q < ng; q++) {
        if (gs[q].obj)
            LLVMDisposeMemoryBuffer(gs[q].obj);
        free(gs[q].rules);
    }
    free(gs);
    free(order);
    free(cost);
    free(load);
    return rc;
}

int llvm_dump_ir(const rule *r, int optimized, FILE *out, char *err, size_t errlen)
{
    LLVMTargetMachineRef tm = host_tm(err, errlen);
    if (!tm)
        return -1;
    LLVMContextRef ctx = LLVMContextCreate();
    cg g;
    cg_init(&g, ctx, r->prog.name);
    rule *rr = (rule *)r;
    int rc = build_module(&g, &rr, 1, tm, optimized, err, errlen);
    if (!rc) {
        char *s = LLVMPrintModuleToString(g.mod);
        fputs(s, out);
        LLVMDisposeMessage(s);
    }
    LLVMDisposeBuilder(g.b);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}

/* ---- object files: the kernels plus a celo_program for each rule, linkable into any C program ---- */
static LLVMValueRef const_str(cg *g, const char *s, const char *gname)
{
    LLVMValueRef init = LLVMConstStringInContext(g->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), gname);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

static LLVMValueRef const_array_global(cg *g, LLVMTypeRef elty, LLVMValueRef *els, unsigned n, const char *gname)
{
    LLVMValueRef init = LLVMConstArray2(elty, els, n);
    LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), gname);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

static LLVMValueRef ci32(cg *g, long long v)
{
    return LLVMConstInt(g->i32, (unsigned long long)v, 1);
}
static LLVMValueRef ci8(cg *g, int v)
{
    return LLVMConstInt(LLVMInt8TypeInContext(g->ctx), (unsigned long long)v, 0);
}

static void emit_program_table(cg *g, const rule *r)
{
    const celo_program *P = &r->prog;
    for (int v = 0; v < r->nvariants; v++) /* a rule with classes points at its variants: emit them first */
        emit_program_table(g, r->variants[v]);
    char gname[300];
    LLVMTypeRef i8 = LLVMInt8TypeInContext(g->ctx);
    /* the same layouts as the C structs of celort.h (natural alignment on both sides) */
    LLVMTypeRef node_f[9] = {i8, i8, i8, i8, g->i32, g->i32, g->i32, g->i32, g->f64};
    LLVMTypeRef node_t = LLVMStructTypeInContext(g->ctx, node_f, 9, 0);
    LLVMTypeRef hp_f[2] = {g->ptr, g->f64};
    LLVMTypeRef hp_t = LLVMStructTypeInContext(g->ctx, hp_f, 2, 0);
    LLVMTypeRef st_f[4] = {g->ptr, i8, g->i32, g->i32};
    LLVMTypeRef st_t = LLVMStructTypeInContext(g->ctx, st_f, 4, 0);
    LLVMTypeRef pass_f[2] = {g->ptr, g->i32};
    LLVMTypeRef pass_t = LLVMStructTypeInContext(g->ctx, pass_f, 2, 0);
    LLVMTypeRef i64 = LLVMInt64TypeInContext(g->ctx);
    LLVMTypeRef th_f[9] = {g->ptr, i64, g->i32, g->i32, g->i32, g->i32, g->i32, g->i32, g->i32};
    LLVMTypeRef th_t = LLVMStructTypeInContext(g->ctx, th_f, 9, 0);
    LLVMTypeRef prog_f[20] = {g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i32, g->i32, g->ptr,
                              g->i32, g->ptr, i64,    g->i32, g->ptr, g->i32, g->ptr, g->ptr, g->ptr, g->i32};
    LLVMTypeRef prog_t = LLVMStructTypeInContext(g->ctx, prog_f, 20, 0);

    LLVMValueRef *els = calloc((size_t)P->nnodes + (size_t)P->nhp + (size_t)P->nstate + (size_t)P->npass +
                                   (size_t)P->ntheta + (size_t)P->nvariant + (8u << P->npattern) + 1,
                               sizeof *els);
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        LLVMValueRef f[9] = {ci8(g, x->op),    ci8(g, x->dom),  ci8(g, x->pass),
                             ci8(g, x->flags), ci32(g, x->a),   ci32(g, x->b),
                             ci32(g, x->c),    ci32(g, x->aux), LLVMConstReal(g->f64, x->imm)};
        els[j] = LLVMConstNamedStruct(node_t, f, 9);
    }
    char id[128];
    ident(P->name, id, sizeof id);
    snprintf(gname, sizeof gname, "celo_%s_nodes", id);
    LLVMValueRef nodes = const_array_global(g, node_t, els, (unsigned)P->nnodes, gname);
    for (int i = 0; i < P->nhp; i++) {
        snprintf(gname, sizeof gname, "celo_%s_hpname%d", id, i);
        LLVMValueRef f[2] = {const_str(g, P->hp[i].name, gname), LLVMConstReal(g->f64, P->hp[i].def)};
        els[i] = LLVMConstNamedStruct(hp_t, f, 2);
    }
    snprintf(gname, sizeof gname, "celo_%s_hp", id);
    LLVMValueRef hps = const_array_global(g, hp_t, els, (unsigned)P->nhp, gname);
    for (int s = 0; s < P->nstate; s++) {
        snprintf(gname, sizeof gname, "celo_%s_statename%d", id, s);
        LLVMValueRef f[4] = {const_str(g, P->state[s].name, gname), ci8(g, P->state[s].dom), ci32(g, P->state[s].init),
                             ci32(g, P->state[s].value)};
        els[s] = LLVMConstNamedStruct(st_t, f, 4);
    }
    snprintf(gname, sizeof gname, "celo_%s_state", id);
    LLVMValueRef sts = const_array_global(g, st_t, els, (unsigned)P->nstate, gname);
    for (int k = 1; k <= P->npass; k++) {
        snprintf(gname, sizeof gname, "celo_%s_pass%d", id, k);
        LLVMValueRef f[2] = {LLVMGetNamedFunction(g->mod, gname), ci32(g, k)};
        els[k - 1] = LLVMConstNamedStruct(pass_t, f, 2);
    }
    snprintf(gname, sizeof gname, "celo_%s_passes", id);
    LLVMValueRef passes = const_array_global(g, pass_t, els, (unsigned)P->npass, gname);
    for (int i = 0; i < P->ntheta; i++) {
        snprintf(gname, sizeof gname, "celo_%s_thetaname%d", id, i);
        const celo_thetaspec *ts = &P->theta[i];
        LLVMValueRef f[9] = {const_str(g, ts->name, gname),
                             LLVMConstInt(i64, (unsigned long long)ts->offset, 0),
                             ci32(g, ts->ndim),
                             ci32(g, ts->shape[0]),
                             ci32(g, ts->shape[1]),
                             ci32(g, ts->shape[2]),
                             ci32(g, ts->shape[3]),
                             ci32(g, ts->init),
                             ci32(g, ts->fan_in)};
        els[i] = LLVMConstNamedStruct(th_t, f, 9);
    }
    snprintf(gname, sizeof gname, "celo_%s_theta", id);
    LLVMValueRef thetas = const_array_global(g, th_t, els, (unsigned)P->ntheta, gname);
    /* tensor classes: the variants, the patterns and the class map (NULL and 0 without classes) */
    LLVMValueRef variants = LLVMConstPointerNull(g->ptr), patterns = variants, classmap = variants, cls = variants;
    if (P->nvariant) {
        for (int v = 0; v < P->nvariant; v++) {
            char vid[128];
            snprintf(gname, sizeof gname, "celo_rule_%s", ident(P->variant[v]->name, vid, sizeof vid));
            els[v] = LLVMGetNamedGlobal(g->mod, gname);
        }
        snprintf(gname, sizeof gname, "celo_%s_variants", id);
        variants = const_array_global(g, g->ptr, els, (unsigned)P->nvariant, gname);
        for (int k = 0; k < P->npattern; k++) {
            snprintf(gname, sizeof gname, "celo_%s_pattern%d", id, k);
            els[k] = const_str(g, P->pattern[k], gname);
        }
        snprintf(gname, sizeof gname, "celo_%s_patterns", id);
        patterns = const_array_global(g, g->ptr, els, (unsigned)P->npattern, gname);
        for (unsigned k = 0; k < 8u << P->npattern; k++)
            els[k] = ci8(g, P->classmap[k]);
        snprintf(gname, sizeof gname, "celo_%s_classmap", id);
        classmap = const_array_global(g, i8, els, 8u << P->npattern, gname);
    }
    if (P->cls) {
        snprintf(gname, sizeof gname, "celo_%s_class", id);
        cls = const_str(g, P->cls, gname);
    }
    snprintf(gname, sizeof gname, "celo_%s_name", id);
    LLVMValueRef pf[20] = {const_str(g, P->name, gname),
                           ci32(g, P->nnodes),
                           nodes,
                           ci32(g, P->nhp),
                           hps,
                           ci32(g, P->nstate),
                           sts,
                           ci32(g, P->p_value),
                           ci32(g, P->npass),
                           passes,
                           ci32(g, P->ntheta),
                           thetas,
                           LLVMConstInt(i64, (unsigned long long)P->theta_len, 0),
                           ci32(g, P->nvariant),
                           variants,
                           ci32(g, P->npattern),
                           patterns,
                           classmap,
                           cls,
                           ci32(g, P->flags)};
    snprintf(gname, sizeof gname, "celo_rule_%s", id);
    LLVMValueRef prog = LLVMAddGlobal(g->mod, prog_t, gname);
    LLVMSetInitializer(prog, LLVMConstNamedStruct(prog_t, pf, 20));
    LLVMSetGlobalConstant(prog, 1);
    free(els);
}

static int write_header(rule **rules, int n, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write", path);
        return -1;
    }
    fprintf(f, "/* Generated by `celo emit obj`: update rules compiled to machine code for this CPU.\n"
               " * Link the object file with libcelort.a and call celo_step() (see celort.h). */\n"
               "#pragma once\n#include \"celort.h\"\n\n");
    for (int i = 0; i < n; i++) {
        const celo_program *P = &rules[i]->prog;
        if (P->nvariant) /* tensor classes: celo_state_new_named picks the variant */
            fprintf(f,
                    "/* %s: %d tensor classes (celo_state_new_named picks a tensor's).\n *   hyper-parameters "
                    "(hp[] index = default):",
                    P->name, P->nvariant);
        else
            fprintf(f, "/* %s: %d pass%s over memory.\n *   hyper-parameters (hp[] index = default):", P->name,
                    P->npass, P->npass == 1 ? "" : "es");
        for (int k = 0; k < P->nhp; k++)
            fprintf(f, "%s %d %s = %.9g", k ? "," : "", k, P->hp[k].name, P->hp[k].def);
        fprintf(f, "\n *   state slots:%s", P->nvariant ? " each class's own (celo emit ir)" : "");
        for (int s = 0; s < P->nstate; s++)
            fprintf(f, "%s %s", s ? "," : "", P->state[s].name);
        char id[128];
        fprintf(f, "%s */\nextern const celo_program celo_rule_%s;\n", P->nstate || P->nvariant ? "" : " none",
                ident(P->name, id, sizeof id));
    }
    int bad = ferror(f);
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int llvm_emit_object(rule **rules, int n, const char *obj_path, const char *header_path, char *err, size_t errlen)
{
    LLVMTargetMachineRef tm = host_tm(err, errlen);
    if (!tm)
        return -1;
    LLVMContextRef ctx = LLVMContextCreate();
    cg g;
    cg_init(&g, ctx, "celo_rules");
    int rc = build_module(&g, rules, n, tm, 1, err, errlen);
    if (!rc) {
        for (int i = 0; i < n; i++)
            emit_program_table(&g, rules[i]);
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", obj_path);
        char *msg = NULL;
        if (LLVMTargetMachineEmitToFile(tm, g.mod, tmp, LLVMObjectFile, &msg)) {
            snprintf(err, errlen, "%s: %s", obj_path, msg);
            LLVMDisposeMessage(msg);
            rc = -1;
        } else if (rename(tmp, obj_path)) {
            snprintf(err, errlen, "%s: cannot rename the temporary file", obj_path);
            rc = -1;
        }
    }
    if (!rc)
        rc = write_header(rules, n, header_path, err, errlen);
    LLVMDisposeBuilder(g.b);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}

int llvm_emit_binary_object(rule **rules, int n, const char *plan_text, const char *cpu, const char *obj_path,
                            char *err, size_t errlen)
{
    LLVMTargetMachineRef tm = cpu_tm(cpu, err, errlen);
    if (!tm)
        return -1;
    LLVMContextRef ctx = LLVMContextCreate();
    cg g;
    cg_init(&g, ctx, "celo_binary");
    if (cpu)
        g.wide_vectors = 0; /* cg_init asked the host; a named CPU's code keeps LLVM's own vector width */
    int rc = build_module(&g, rules, n, tm, 1, err, errlen);
    if (!rc) {
        for (int i = 0; i < n; i++)
            emit_program_table(&g, rules[i]);
        /* the plan, the table of rules, and main() */
        LLVMValueRef ptext = LLVMConstStringInContext(ctx, plan_text, (unsigned)strlen(plan_text), 0);
        LLVMValueRef pg = LLVMAddGlobal(g.mod, LLVMTypeOf(ptext), "celo_embedded_plan");
        LLVMSetInitializer(pg, ptext);
        LLVMSetGlobalConstant(pg, 1);
        LLVMSetLinkage(pg, LLVMPrivateLinkage);
        LLVMValueRef *progs = calloc((size_t)n + 1, sizeof *progs);
        for (int i = 0; i < n; i++) {
            char gname[300];
            char id[128];
            snprintf(gname, sizeof gname, "celo_rule_%s", ident(rules[i]->prog.name, id, sizeof id));
            progs[i] = LLVMGetNamedGlobal(g.mod, gname);
        }
        LLVMValueRef tab = const_array_global(&g, g.ptr, progs, (unsigned)n, "celo_embedded_rules");
        free(progs);
        LLVMTypeRef sm_args[5] = {g.i32, g.ptr, g.ptr, g.ptr, g.i32};
        LLVMTypeRef sm_ty = LLVMFunctionType(g.i32, sm_args, 5, 0);
        LLVMValueRef sm = LLVMAddFunction(g.mod, "celo_standalone_main", sm_ty);
        LLVMTypeRef main_args[2] = {g.i32, g.ptr};
        LLVMValueRef mainf = LLVMAddFunction(g.mod, "main", LLVMFunctionType(g.i32, main_args, 2, 0));
        LLVMPositionBuilderAtEnd(g.b, LLVMAppendBasicBlockInContext(ctx, mainf, "entry"));
        LLVMValueRef args[5] = {LLVMGetParam(mainf, 0), LLVMGetParam(mainf, 1), pg, tab, ci32(&g, n)};
        LLVMBuildRet(g.b, LLVMBuildCall2(g.b, sm_ty, sm, args, 5, ""));
        char *msg = NULL;
        if (LLVMVerifyModule(g.mod, LLVMReturnStatusAction, &msg)) {
            snprintf(err, errlen, "internal error: binary module does not verify: %s", msg);
            rc = -1;
        } else if (LLVMTargetMachineEmitToFile(tm, g.mod, obj_path, LLVMObjectFile, &msg)) {
            snprintf(err, errlen, "%s: %s", obj_path, msg);
            rc = -1;
        }
        LLVMDisposeMessage(msg);
    }
    LLVMDisposeBuilder(g.b);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}
