/* opencl.c — OpenCL C 1.2 source for the element passes of a program.
 *
 * One kernel per pass, `celo_pass<k>`, with the argument list of runtime/clplan.h (n, R, C, per, then the
 * buffers, scalars and partials the pass touches). The arithmetic is IEEE float32 exactly as in the
 * interpreter (runtime/step.c) and the LLVM kernels: FP_CONTRACT OFF, no fast-math, min/max = fmin/fmax,
 * rsqrt = 1/sqrt, comparisons give 1.0f or 0.0f.
 *
 * Passes without reductions run one element per work-item on GPUs (CELO_EPW 1, set by the host); on CPUs
 * (CELO_EPW 8) they run explicit float8 code (PoCL's own vectorization across work-items gives up on larger
 * bodies: pow or log ran 5-20x slower than the LLVM kernels), over one contiguous chunk per work-item with
 * software prefetch, or 8 elements per work-item in passes that need row/column indices (a 2-D range:
 * columns, rows). Passes with reductions run one work-item per contiguous chunk and write partials that the host
 * combines in work-item order; inside a chunk the elements are processed in float8 blocks, four blocks per
 * iteration with their own accumulators, then one element at a time, so that the accumulation order is fixed.
 * Accumulators are double when the device has cl_khr_fp64 (CELO_ACC_DOUBLE, set by the host), else float;
 * column sums go through a float row folded every CELO_COL_BLOCK rows, as in runtime/step.c. exp, log, pow
 * and tanh are computed in double and rounded once (see math_double below). The source builds on its own
 * too (`celo emit opencl`): the macros default to one element per work-item and to cl_khr_fp64 if present. */
#include "opencl.h"
#include "ir.h"

#include "../runtime/clplan.h"
#include "../runtime/mathf.h"
#include "../runtime/sbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define sb_printf celo_sb_printf /* the one text buffer (runtime/sbuf.h), under this file's old name */

/* Expression text of one operand, kept in a small ring of buffers. */
typedef struct {
    char txt[8][96];
    int next;
} ring;

static char *ring_get(ring *rg)
{
    char *s = rg->txt[rg->next];
    rg->next = (rg->next + 1) % 8;
    return s;
}

static void float_lit(char *out, size_t len, double v)
{
    float f = (float)v;
    if (isnan(f))
        snprintf(out, len, "NAN");
    else if (isinf(f))
        snprintf(out, len, f > 0 ? "INFINITY" : "(-INFINITY)");
    else if (f < 0 || (f == 0 && signbit(f)))
        snprintf(out, len, "(%af)", (double)f);
    else
        snprintf(out, len, "%af", (double)f);
}

typedef struct {
    const celo_program *P;
    const celo_clpass *pi;
    int vec;  /* 1: float8 form */
    int lane; /* float8 form: which of the UNROLL accumulators of each reduction this copy of the body feeds */
    ring rg;
} gen;

/* The value of node j at the current element(s). */
static const char *value_of(gen *G, int j)
{
    const celo_program *P = G->P;
    const celo_node *x = &P->nodes[j];
    char *s = ring_get(&G->rg);
    char lit[64];
    switch (x->dom) {
    case CELO_HOST:
    case CELO_SCALAR:
        if (x->op == CELO_OP_CONST)
            float_lit(lit, sizeof lit, x->imm);
        else
            snprintf(lit, sizeof lit, "s%d", j);
        if (G->vec)
            snprintf(s, 96, "((float8)(%s))", lit);
        else
            snprintf(s, 96, "%s", lit);
        return s;
    case CELO_ROW:
        if (G->vec)
            snprintf(s, 96, "((float8)(b%d[r]))", celo_clplan_vec_src(P, j));
        else
            snprintf(s, 96, "b%d[r]", celo_clplan_vec_src(P, j));
        return s;
    case CELO_COL:
        if (G->vec)
            snprintf(s, 96, "vload8(0, b%d + c)", celo_clplan_vec_src(P, j));
        else
            snprintf(s, 96, "b%d[c]", celo_clplan_vec_src(P, j));
        return s;
    case CELO_FROW:
    case CELO_FCOL:
    case CELO_FBAT:
    case CELO_MAT: { /* vec[tab[1 + r] + tab[0] * c] (celort.h) */
        int v = celo_clplan_vec_src(P, j), t = celo_clplan_ftab(P, x->dom);
        if (x->dom == CELO_MAT) /* MAT drops the last axis on every shape (tab[0] = 0): one value per row */
            snprintf(s, 96, G->vec ? "((float8)(b%d[b%d[1 + r]]))" : "b%d[b%d[1 + r]]", v, t);
        else if (G->vec)
            snprintf(s, 96, "(b%d[0] ? vload8(0, b%d + b%d[1 + r] + c) : (float8)(b%d[b%d[1 + r]]))", t, v, t, v, t);
        else
            snprintf(s, 96, "b%d[b%d[1 + r] + b%d[0] * c]", v, t, t);
        return s;
    }
    default: snprintf(s, 96, "v%d", j); return s;
    }
}

/* One map op (runtime/ops.def) in scalar or float8 form; no default, so that a map op added to the table without
 * its code here does not compile. */
static void emit_op(sbuf *b, int vec, celo_op op, const char *A, const char *B, const char *C)
{
    const char *zero = vec ? "((float8)(0.0f))" : "0.0f";
    const char *one = vec ? "((float8)(1.0f))" : "1.0f";
    const char *mone = vec ? "((float8)(-1.0f))" : "-1.0f";
    /* a 0/1 result of a condition */
#define COND(cond_fmt, ...)                             \
    do {                                                \
        if (vec) {                                      \
            sb_printf(b, "select(%s, %s, ", zero, one); \
            sb_printf(b, cond_fmt, __VA_ARGS__);        \
            sb_printf(b, ")");                          \
        } else {                                        \
            sb_printf(b, "((");                         \
            sb_printf(b, cond_fmt, __VA_ARGS__);        \
            sb_printf(b, ") ? 1.0f : 0.0f)");           \
        }                                               \
    } while (0)
    const char *land = vec ? "&" : "&&", *lor = vec ? "|" : "||";
    switch (op) {
    case CELO_OP_NEG: sb_printf(b, "-%s", A); break;
    case CELO_OP_ELEMS: sb_printf(b, "%s", A); break;
    case CELO_OP_ADD: sb_printf(b, "%s + %s", A, B); break;
    case CELO_OP_SUB: sb_printf(b, "%s - %s", A, B); break;
    case CELO_OP_MUL: sb_printf(b, "%s * %s", A, B); break;
    case CELO_OP_DIV: sb_printf(b, "%s / %s", A, B); break;
    case CELO_OP_POW: sb_printf(b, "celo_pow%s(%s, %s)", vec ? "8" : "", A, B); break;
    case CELO_OP_MIN: sb_printf(b, "fmin(%s, %s)", A, B); break;
    case CELO_OP_MAX: sb_printf(b, "fmax(%s, %s)", A, B); break;
    case CELO_OP_SQRT: sb_printf(b, "sqrt(%s)", A); break;
    case CELO_OP_RSQRT: sb_printf(b, "%s / sqrt(%s)", one, A); break;
    case CELO_OP_EXP: sb_printf(b, "celo_exp%s(%s)", vec ? "8" : "", A); break;
    case CELO_OP_LOG: sb_printf(b, "celo_log%s(%s)", vec ? "8" : "", A); break;
    case CELO_OP_ABS: sb_printf(b, "fabs(%s)", A); break;
    case CELO_OP_TANH: sb_printf(b, "celo_tanh%s(%s)", vec ? "8" : "", A); break;
    case CELO_OP_FLOOR: sb_printf(b, "floor(%s)", A); break;
    case CELO_OP_COS: sb_printf(b, "cos(%s)", A); break;
    case CELO_OP_SIGMOID: sb_printf(b, "%s / (%s + celo_exp%s(-%s))", one, one, vec ? "8" : "", A); break;
    case CELO_OP_SIGN:
        if (vec)
            sb_printf(b, "select(select(%s, %s, %s < %s), %s, %s > %s)", A, mone, A, zero, one, A, zero);
        else
            sb_printf(b, "(%s > 0.0f ? 1.0f : %s < 0.0f ? -1.0f : %s)", A, A, A);
        break;
    case CELO_OP_RELU:
        if (vec)
            sb_printf(b, "select(%s, %s, %s > %s)", zero, A, A, zero);
        else
            sb_printf(b, "(%s > 0.0f ? %s : 0.0f)", A, A);
        break;
    case CELO_OP_LT: COND("%s < %s", A, B); break;
    case CELO_OP_LE: COND("%s <= %s", A, B); break;
    case CELO_OP_GT: COND("%s > %s", A, B); break;
    case CELO_OP_GE: COND("%s >= %s", A, B); break;
    case CELO_OP_EQ: COND("%s == %s", A, B); break;
    case CELO_OP_NE: COND("%s != %s", A, B); break;
    case CELO_OP_AND: COND("(%s != %s) %s (%s != %s)", A, zero, land, B, zero); break;
    case CELO_OP_OR: COND("(%s != %s) %s (%s != %s)", A, zero, lor, B, zero); break;
    case CELO_OP_NOT: COND("%s == %s", A, zero); break;
    case CELO_OP_SELECT:
        if (vec)
            sb_printf(b, "select(%s, %s, %s != %s)", C, B, A, zero);
        else
            sb_printf(b, "(%s != 0.0f ? %s : %s)", A, B, C);
        break;
    case CELO_OP_FMA: /* correctly rounded in OpenCL C, as fmaf and llvm.fma; fma takes one vector type */
        if (vec)
            sb_printf(b, "fma((float8)(%s), (float8)(%s), (float8)(%s))", A, B, C);
        else
            sb_printf(b, "fma(%s, %s, %s)", A, B, C);
        break;
#define CELO_INPUT(id, ...)  case CELO_OP_##id:
#define CELO_REDUCE(id, ...) case CELO_OP_##id:
#define CELO_MATRIX(id, ...) case CELO_OP_##id:
#include "../runtime/ops.def"
        /* not maps: emit_body loads inputs and staged values, and the passes accumulate reductions */
        sb_printf(b, "%s", vec ? "((float8)(NAN))" : "NAN");
        break;
    }
#undef COND
}

/* The work on the current element (scalar form: index i, row r, column c) or on the eight elements
 * i..i+7 of one row (float8 form). */
static void emit_body(sbuf *b, gen *G, const char *ind)
{
    const celo_program *P = G->P;
    const celo_clpass *pi = G->pi;
    int vec = G->vec, ns = P->nstate;
    const char *ty = vec ? "float8" : "float";
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!pi->comp[j])
            continue;
        int src = -1;
        switch (x->op) {
        case CELO_OP_P: src = 0; break;
        case CELO_OP_G: src = 1; break;
        case CELO_OP_STATE: src = 2 + x->aux; break;
        case CELO_OP_ORTHO: src = x->pass < pi->k ? 2 + ns + j : -2; break;
        default:
            if ((x->flags & CELO_FLAG_STAGED) && x->pass < pi->k)
                src = 2 + ns + j;
            break;
        }
        if (src == -2)
            continue;
        if (src >= 0) {
            if (vec)
                sb_printf(b, "%sconst float8 v%d = vload8(0, b%d + i);\n", ind, j, src);
            else
                sb_printf(b, "%sconst float v%d = b%d[i];\n", ind, j, src);
            if (src < 2 + ns && (x->flags & CELO_FLAG_STAGED) && x->pass == pi->k) { /* for a factored mean */
                if (vec)
                    sb_printf(b, "%svstore8(v%d, 0, b%d + i);\n", ind, j, 2 + ns + j);
                else
                    sb_printf(b, "%sb%d[i] = v%d;\n", ind, 2 + ns + j, j);
            }
            continue;
        }
        sb_printf(b, "%sconst %s v%d = ", ind, ty, j);
        emit_op(b, vec, (celo_op)x->op, value_of(G, x->a), x->b >= 0 ? value_of(G, x->b) : "",
                x->c >= 0 ? value_of(G, x->c) : "");
        sb_printf(b, ";\n");
        if ((x->flags & CELO_FLAG_STAGED) && x->pass == pi->k) {
            if (vec)
                sb_printf(b, "%svstore8(v%d, 0, b%d + i);\n", ind, j, 2 + ns + j);
            else
                sb_printf(b, "%sb%d[i] = v%d;\n", ind, 2 + ns + j, j);
        }
    }
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op == CELO_OP_ORTHO && x->pass == pi->k) {
            if (vec)
                sb_printf(b, "%svstore8(%s, 0, b%d + i);\n", ind, value_of(G, x->a), 2 + ns + j);
            else
                sb_printf(b, "%sb%d[i] = %s;\n", ind, 2 + ns + j, value_of(G, x->a));
        }
        if (!celo_clplan_is_red(P, x) || x->pass != pi->k)
            continue;
        const char *e = value_of(G, x->a);
        int sum = x->op == CELO_OP_SUM;
        if (x->dom == CELO_COL) {
            /* into the float scratch row, folded into the partials every CELO_COL_BLOCK rows (celort.h) */
            if (vec) {
                if (sum)
                    sb_printf(b, "%svstore8(vload8(0, fs%d + c) + %s, 0, fs%d + c);\n", ind, j, e, j);
                else
                    sb_printf(b,
                              "%s{ const float8 o = vload8(0, fs%d + c), e = %s;\n"
                              "%s  vstore8(select(o, e, (e > o) | isnan(e)), 0, fs%d + c); }\n",
                              ind, j, e, ind, j);
            } else {
                if (sum)
                    sb_printf(b, "%sfs%d[c] += %s;\n", ind, j, e);
                else
                    sb_printf(b, "%s{ const float e = %s; if (e > fs%d[c] || isnan(e)) fs%d[c] = e; }\n", ind, e, j, j);
            }
            continue;
        }
        const char *acc = x->dom == CELO_ROW ? "ra" : "a";
        if (vec) {
            if (sum)
                sb_printf(b, "%sv%s%d_%d += CELO_ACCV(%s);\n", ind, acc, j, G->lane, e);
            else
                sb_printf(b,
                          "%s{ const accv_t e = CELO_ACCV(%s); v%s%d_%d = select(v%s%d_%d, e, (e > v%s%d_%d) | "
                          "isnan(e)); }\n",
                          ind, e, acc, j, G->lane, acc, j, G->lane, acc, j, G->lane);
        } else {
            if (sum)
                sb_printf(b, "%s%s%d += (acc_t)%s;\n", ind, acc, j, e);
            else
                sb_printf(b, "%s{ const acc_t e = (acc_t)%s; if (e > %s%d || isnan(e)) %s%d = e; }\n", ind, e, acc, j,
                          acc, j);
        }
    }
    if (pi->final) {
        if (P->p_value >= 0) {
            if (vec)
                sb_printf(b, "%svstore8(%s, 0, b0 + i);\n", ind, value_of(G, P->p_value));
            else
                sb_printf(b, "%sb0[i] = %s;\n", ind, value_of(G, P->p_value));
        }
        for (int s = 0; s < ns; s++)
            if (P->state[s].dom == CELO_ELEM && P->state[s].value >= 0) {
                if (vec)
                    sb_printf(b, "%svstore8(%s, 0, b%d + i);\n", ind, value_of(G, P->state[s].value), 2 + s);
                else
                    sb_printf(b, "%sb%d[i] = %s;\n", ind, 2 + s, value_of(G, P->state[s].value));
            }
    }
}

/* Whether buffer idx holds one value per element (p, g, element-wise state, staged values), not a row or
 * column vector. */
static int is_stream(const celo_program *P, int idx)
{
    if (idx < 2)
        return 1;
    if (idx < 2 + P->nstate)
        return P->state[idx - 2].dom == CELO_ELEM;
    if (idx >= 2 + P->nstate + P->nnodes)
        return 0; /* a factored table */
    return celo_clplan_staged(&P->nodes[idx - 2 - P->nstate]);
}

/* Chunked 1-D passes on CPUs prefetch each stream PF_AHEAD floats ahead, one cache line (PF_LINE floats) at a
 * time; distances of 256 to 1024 measured the same for Lion at 16M parameters. */
enum { PF_AHEAD = 512, PF_LINE = 16 };

/* Whether pass pi writes buffer idx (else it is declared const). */
static int writes_buf(const celo_program *P, const celo_clpass *pi, int idx)
{
    if (pi->final && idx == 0 && P->p_value >= 0)
        return 1;
    if (pi->final && idx >= 2 && idx < 2 + P->nstate && P->state[idx - 2].dom == CELO_ELEM &&
        P->state[idx - 2].value >= 0)
        return 1;
    if (idx >= 2 + P->nstate + P->nnodes)
        return 0; /* a factored table */
    if (idx >= 2 + P->nstate) {
        const celo_node *x = &P->nodes[idx - 2 - P->nstate];
        return celo_clplan_staged(x) && x->pass == pi->k;
    }
    return 0;
}

enum { RED_DECL, RED_VDECL, RED_FOLD, RED_STORE };

/* Chunked loops handle UNROLL blocks of eight elements per iteration, each block with its own vector
 * accumulators, so that the additions of consecutive blocks do not wait for each other (then single blocks,
 * then single elements). The accumulators are folded in a fixed order: the sums stay deterministic. */
enum { UNROLL = 4 };

/* The float8 body for the UNROLL blocks at base + 8u (index variable `var` = base + 8u, optionally also
 * i = rb + c), then for one block (lane 0). */
static void emit_unrolled(sbuf *b, gen *G, const char *ind, int nested)
{
    char in2[64];
    snprintf(in2, sizeof in2, "%s    ", ind);
    const char *var = nested ? "c0" : "i0_", *lim = nested ? "ce" : "i1";
    sb_printf(b, "%sfor (; %s + %d <= %s; %s += %d) {\n", ind, var, 8 * UNROLL, lim, var, 8 * UNROLL);
    G->vec = 1;
    for (int u = 0; u < UNROLL; u++) {
        if (nested)
            sb_printf(b, "%s{\n%s    const long c = c0 + %d, i = rb + c;\n", in2, in2, 8 * u);
        else
            sb_printf(b, "%s{\n%s    const long i = i0_ + %d;\n", in2, in2, 8 * u);
        G->lane = u;
        char in3[72];
        snprintf(in3, sizeof in3, "%s    ", in2);
        emit_body(b, G, in3);
        sb_printf(b, "%s}\n", in2);
    }
    sb_printf(b, "%s}\n", ind);
    sb_printf(b, "%sfor (; %s + 8 <= %s; %s += 8) {\n", ind, var, lim, var);
    if (nested)
        sb_printf(b, "%sconst long c = c0, i = rb + c;\n", in2);
    else
        sb_printf(b, "%sconst long i = i0_;\n", in2);
    G->lane = 0;
    emit_body(b, G, in2);
    sb_printf(b, "%s}\n", ind);
}

/* Declarations and folds of the accumulators of the reductions of domain dom computed by pass pi. */
static void emit_reds(sbuf *b, const celo_program *P, const celo_clpass *pi, int dom, int what, const char *ind)
{
    const char *pre = dom == CELO_ROW ? "ra" : "a";
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!celo_clplan_is_red(P, x) || x->pass != pi->k || x->dom != dom)
            continue;
        const char *id = x->op == CELO_OP_SUM ? "0" : "-INFINITY", *nm = x->op == CELO_OP_SUM ? "sum" : "max";
        switch (what) {
        case RED_DECL: sb_printf(b, "%sacc_t %s%d = %s;\n", ind, pre, j, id); break;
        case RED_VDECL:
            for (int u = 0; u < UNROLL; u++)
                sb_printf(b, "%saccv_t v%s%d_%d = (accv_t)(%s);\n", ind, pre, j, u, id);
            break;
        case RED_FOLD:
            for (int u = 0; u < UNROLL; u++)
                sb_printf(b, "%s%s%d = celo_fold_%s(%s%d, v%s%d_%d);\n", ind, pre, j, nm, pre, j, pre, j, u);
            break;
        default: sb_printf(b, "%sq%d[w] = %s%d;\n", ind, j, pre, j); break;
        }
    }
}

/* Folds the float column scratch rows into the partials (and resets them). */
static void emit_col_fold(sbuf *b, const celo_program *P, const celo_clpass *pi, const char *ind)
{
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!celo_clplan_is_red(P, x) || x->pass != pi->k || x->dom != CELO_COL)
            continue;
        if (x->op == CELO_OP_SUM)
            sb_printf(
                b, "%sfor (long c = 0; c < C; c++) {\n%s    cp%d[c] += (acc_t)fs%d[c];\n%s    fs%d[c] = 0.0f;\n%s}\n",
                ind, ind, j, j, ind, j, ind);
        else
            sb_printf(b,
                      "%sfor (long c = 0; c < C; c++) {\n%s    const acc_t e = fs%d[c];\n"
                      "%s    if (e > cp%d[c] || isnan(e))\n%s        cp%d[c] = e;\n%s    fs%d[c] = -INFINITY;\n%s}\n",
                      ind, ind, j, ind, j, ind, j, ind, j, ind);
    }
}

static void emit_pass(sbuf *b, const celo_program *P, const celo_clpass *pi)
{
    int has_col = 0;
    for (int j = 0; j < P->nnodes; j++)
        if (celo_clplan_is_red(P, &P->nodes[j]) && P->nodes[j].pass == pi->k && P->nodes[j].dom == CELO_COL)
            has_col = 1;
    sb_printf(b, "\n/* pass %d of %d: %s */\n", pi->k, P->npass,
              pi->chunked  ? "reductions, one work-item per chunk"
              : pi->nested ? "one work-item per element (2-D)"
                           : "one work-item per element (CELO_EPW 8: per chunk)");
    sb_printf(b, "__kernel void celo_pass%d(const long n, const long R, const long C, const long per", pi->k);
    for (int a = 0; a < pi->nargs; a++) {
        const celo_clarg *ar = &pi->args[a];
        if (ar->kind == CELO_CLARG_BUF && ar->idx >= 2 + P->nstate + P->nnodes)
            sb_printf(b, ",\n    __global const int *restrict b%d", ar->idx); /* a factored table */
        else if (ar->kind == CELO_CLARG_BUF)
            sb_printf(b, ",\n    __global %sfloat *restrict b%d", writes_buf(P, pi, ar->idx) ? "" : "const ", ar->idx);
        else if (ar->kind == CELO_CLARG_SC)
            sb_printf(b, ",\n    const float s%d", ar->idx);
        else if (ar->kind == CELO_CLARG_SCBUF)
            sb_printf(b, ",\n    __constant float *restrict scb");
        else
            sb_printf(b, ",\n    __global acc_t *restrict q%d", ar->idx);
    }
    sb_printf(b, ")\n{\n");
    for (int q = 0; q < pi->npacked; q++) /* the packed host values, under the names the body reads */
        sb_printf(b, "    const float s%d = scb[%d];\n", pi->packed[q], q);
    gen G = {.P = P, .pi = pi};
    if (!pi->chunked) {
        /* CELO_EPW (set by the host): 8 on CPUs, where explicit float8 code is what PoCL compiles reliably:
         * a 1-D pass then runs one work-item per contiguous chunk of `per` elements (a few per core) and
         * prefetches its streams ahead, as the LLVM kernels do (the hardware prefetchers alone left PoCL's
         * Lion ~15 % slower at 16M parameters); a 2-D pass runs 8 elements per work-item. Else 1 (GPUs): one
         * element per work-item. */
        sb_printf(b, "#if CELO_EPW == 8\n");
        if (!pi->nested) {
            sb_printf(b, "    const long i1 = min((long)get_global_id(0) * per + per, n);\n");
            sb_printf(b, "    long i0_ = get_global_id(0) * per;\n");
            sb_printf(b, "    for (; i0_ + 8 <= i1; i0_ += 8) {\n        const long i = i0_;\n");
            sb_printf(b, "        if ((i & %d) == 0) {\n", PF_LINE - 1);
            for (int a = 0; a < pi->nargs; a++)
                if (pi->args[a].kind == CELO_CLARG_BUF && is_stream(P, pi->args[a].idx))
                    sb_printf(b, "            CELO_PREFETCH(b%d + i + %d, %d);\n", pi->args[a].idx, PF_AHEAD,
                              writes_buf(P, pi, pi->args[a].idx));
            sb_printf(b, "        }\n");
            G.vec = 1;
            emit_body(b, &G, "        ");
            sb_printf(b, "    }\n    for (long i = i0_; i < i1; i++) {\n");
            G.vec = 0;
            emit_body(b, &G, "        ");
            sb_printf(b, "    }\n");
        } else {
            sb_printf(
                b,
                "    const long c8 = get_global_id(0) * 8, r = get_global_id(1);\n    if (r >= R)\n        return;\n");
            sb_printf(b, "    if (c8 + 8 <= C) {\n        const long c = c8, i = r * C + c;\n");
            G.vec = 1;
            emit_body(b, &G, "        ");
            sb_printf(b,
                      "    } else {\n        for (long c = c8; c < C; c++) {\n            const long i = r * C + c;\n");
            G.vec = 0;
            emit_body(b, &G, "            ");
            sb_printf(b, "        }\n    }\n");
        }
        sb_printf(b, "#else\n");
        if (!pi->nested) {
            sb_printf(b, "    const long i = get_global_id(0);\n    if (i >= n)\n        return;\n");
        } else {
            sb_printf(b, "    const long c = get_global_id(0), r = get_global_id(1);\n");
            sb_printf(b, "    if (c >= C || r >= R)\n        return;\n    const long i = r * C + c;\n");
        }
        emit_body(b, &G, "    ");
        sb_printf(b, "#endif\n}\n");
        return;
    }
    sb_printf(b, "    const long w = get_global_id(0);\n");
    sb_printf(b, "    const long i0 = w * per, i1 = min(i0 + per, n);\n");
    emit_reds(b, P, pi, CELO_SCALAR, RED_DECL, "    ");
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (celo_clplan_is_red(P, x) && x->pass == pi->k && x->dom == CELO_COL)
            sb_printf(b,
                      "    __global acc_t *restrict cp%d = q%d + w * C;\n"
                      "    __global float *restrict fs%d = (__global float *)(q%d + get_global_size(0) * C) + w * C;\n"
                      "    for (long c = 0; c < C; c++) {\n        cp%d[c] = %s;\n        fs%d[c] = %s;\n    }\n",
                      j, j, j, j, j, x->op == CELO_OP_SUM ? "0" : "-INFINITY", j,
                      x->op == CELO_OP_SUM ? "0.0f" : "-INFINITY");
    }
    sb_printf(b, "    if (i0 < i1) {\n");
    if (!pi->nested) {
        emit_reds(b, P, pi, CELO_SCALAR, RED_VDECL, "        ");
        sb_printf(b, "        long i0_ = i0;\n");
        emit_unrolled(b, &G, "        ", 0);
        emit_reds(b, P, pi, CELO_SCALAR, RED_FOLD, "        ");
        sb_printf(b, "        for (long i = i0_; i < i1; i++) {\n");
        G.vec = 0;
        emit_body(b, &G, "            ");
        sb_printf(b, "        }\n");
    } else {
        sb_printf(b, "        for (long r = i0 / C; r * C < i1; r++) {\n");
        if (has_col) {
            sb_printf(b, "            if (r != i0 / C && (r - i0 / C) %% %d == 0) {\n", CELO_COL_BLOCK);
            emit_col_fold(b, P, pi, "                ");
            sb_printf(b, "            }\n");
        }
        sb_printf(b, "            const long rb = r * C, cb = max(i0 - rb, 0L), ce = min(i1 - rb, C);\n");
        emit_reds(b, P, pi, CELO_ROW, RED_DECL, "            ");
        emit_reds(b, P, pi, CELO_SCALAR, RED_VDECL, "            ");
        emit_reds(b, P, pi, CELO_ROW, RED_VDECL, "            ");
        sb_printf(b, "            long c0 = cb;\n");
        emit_unrolled(b, &G, "            ", 1);
        emit_reds(b, P, pi, CELO_SCALAR, RED_FOLD, "            ");
        emit_reds(b, P, pi, CELO_ROW, RED_FOLD, "            ");
        sb_printf(b, "            for (long c = c0; c < ce; c++) {\n                const long i = rb + c;\n");
        G.vec = 0;
        emit_body(b, &G, "                ");
        sb_printf(b, "            }\n");
        for (int j = 0; j < P->nnodes; j++) {
            const celo_node *x = &P->nodes[j];
            if (celo_clplan_is_red(P, x) && x->pass == pi->k && x->dom == CELO_ROW)
                sb_printf(b,
                          "            if (cb == 0 && ce == C)\n                q%d[r] = ra%d;\n"
                          "            else if (r == i0 / C)\n                q%d[R + 2 * w] = ra%d;\n"
                          "            else\n                q%d[R + 2 * w + 1] = ra%d;\n",
                          j, j, j, j, j, j);
        }
        sb_printf(b, "        }\n");
        if (has_col)
            emit_col_fold(b, P, pi, "        ");
    }
    sb_printf(b, "    }\n");
    emit_reds(b, P, pi, CELO_SCALAR, RED_STORE, "    ");
    sb_printf(b, "}\n");
}

static const char prologue[] =
    "#pragma OPENCL FP_CONTRACT OFF\n"
    "#ifndef CELO_EPW\n"
    "#define CELO_EPW 1\n"
    "#endif\n"
    "/* a software prefetch of the cache line at p, for writing when w (Clang's builtin; PoCL and other\n"
    " * Clang-based CPU compilers have it), else nothing */\n"
    "#if defined(__clang__) && defined(__has_builtin)\n"
    "#if __has_builtin(__builtin_prefetch)\n"
    "#define CELO_PREFETCH(p, w) __builtin_prefetch((p), (w), 3)\n"
    "#endif\n"
    "#endif\n"
    "#ifndef CELO_PREFETCH\n"
    "#define CELO_PREFETCH(p, w)\n"
    "#endif\n"
    "#ifndef CELO_ACC_DOUBLE\n"
    "#ifdef cl_khr_fp64\n"
    "#define CELO_ACC_DOUBLE 1\n"
    "#else\n"
    "#define CELO_ACC_DOUBLE 0\n"
    "#endif\n"
    "#endif\n"
    "#if CELO_ACC_DOUBLE\n"
    "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "typedef double acc_t;\n"
    "typedef double8 accv_t;\n"
    "#define CELO_ACCV(x) convert_double8(x)\n"
    "#else\n"
    "typedef float acc_t;\n"
    "typedef float8 accv_t;\n"
    "#define CELO_ACCV(x) (x)\n"
    "#endif\n"
    "\n"
    "/* lanes of a vector accumulator folded into a scalar one, in lane order */\n"
    "acc_t celo_fold_sum(acc_t a, accv_t v);\n"
    "acc_t celo_fold_sum(acc_t a, accv_t v)\n"
    "{\n"
    "    a += v.s0; a += v.s1; a += v.s2; a += v.s3; a += v.s4; a += v.s5; a += v.s6; a += v.s7;\n"
    "    return a;\n"
    "}\n"
    "acc_t celo_max1(acc_t a, acc_t e);\n"
    "acc_t celo_max1(acc_t a, acc_t e) { return e > a || isnan(e) ? e : a; }\n"
    "acc_t celo_fold_max(acc_t a, accv_t v);\n"
    "acc_t celo_fold_max(acc_t a, accv_t v)\n"
    "{\n"
    "    a = celo_max1(a, v.s0); a = celo_max1(a, v.s1); a = celo_max1(a, v.s2); a = celo_max1(a, v.s3);\n"
    "    a = celo_max1(a, v.s4); a = celo_max1(a, v.s5); a = celo_max1(a, v.s6); a = celo_max1(a, v.s7);\n"
    "    return a;\n"
    "}\n";

/* exp, log, pow and tanh of float32 values (used by element-wise code). With double precision they are computed
 * in double from the exact float argument and rounded once, which is correctly rounded except in rare cases,
 * like the C library that the interpreter and the LLVM kernels call; the code is branch-free so that PoCL
 * vectorizes it (its own float log and pow are not vectorized and 10-100 times slower). Without double
 * precision they are OpenCL's built-ins. Each is written once with $F (float type), $I (int), $D (double),
 * $L (long) and $N ("" or "8") and emitted for scalars and for float8. */
static const char math_double[] =
    "/* ln x in double for finite x > 0 */\n"
    "$D celo_lnd$N($F x);\n"
    "$D celo_lnd$N($F x)\n"
    "{\n"
    "    const $I sub = as_$I(x) < 0x00800000;\n"
    "    const $I ix = as_$I(select(x, x * 0x1p23f, sub));\n"
    "    $I k = ((ix >> 23) & 0xff) - 127 - select(($I)0, ($I)23, sub);\n"
    "    $F m = as_$F((ix & 0x007fffff) | 0x3f800000);\n"
    "    const $I big = m > 1.41421356f;\n"
    "    m = select(m, m * 0.5f, big);\n"
    "    k = k + select(($I)0, ($I)1, big);\n"
    "    const $D md = convert_$D(m), s = (md - 1.0) / (md + 1.0), s2 = s * s;\n"
    "    $D q = 1.0 / 21.0;\n"
    "    q = q * s2 + 1.0 / 19.0; q = q * s2 + 1.0 / 17.0; q = q * s2 + 1.0 / 15.0; q = q * s2 + 1.0 / 13.0;\n"
    "    q = q * s2 + 1.0 / 11.0; q = q * s2 + 1.0 / 9.0; q = q * s2 + 1.0 / 7.0; q = q * s2 + 1.0 / 5.0;\n"
    "    q = q * s2 + 1.0 / 3.0; q = q * s2 + 1.0;\n"
    "    return convert_$D(k) * 0x1.62e42fefa39efp-1 + 2.0 * s * q;\n"
    "}\n"
    "$E"
    "$F celo_log$N($F x);\n"
    "$F celo_log$N($F x)\n"
    "{\n"
    "    $F r = convert_$F(celo_lnd$N(x));\n"
    "    r = select(r, ($F)(-INFINITY), x == 0.0f);\n"
    "    r = select(r, ($F)(NAN), x < 0.0f);\n"
    "    return select(r, x, isnan(x) | (x == INFINITY));\n"
    "}\n"
    "$F celo_pow$N($F x, $F y);\n"
    "$F celo_pow$N($F x, $F y)\n"
    "{\n"
    "    const $F ax = fabs(x);\n"
    "    const $D axd = convert_$D(ax);\n"
    "    $D l = celo_lnd$N(ax);\n"
    "    l = select(l, ($D)(-INFINITY), ($L)(axd == 0.0));\n"
    "    l = select(l, axd, ($L)(isinf(axd) | isnan(axd)));\n"
    "    $F r = convert_$F(exp(convert_$D(y) * l));\n"
    "    const $I isint = floor(y) == y;\n"
    "    const $I odd = isint & (fabs(y) < 0x1p24f) & ((convert_$I_sat(y) & 1) != 0);\n"
    "    r = select(r, -r, signbit(x) & odd);\n"
    "    r = select(r, ($F)(NAN), (x < 0.0f) & (x != -INFINITY) & !isint);\n"
    "    r = select(r, ($F)(1.0f), (x == -1.0f) & isinf(y));\n"
    "    return select(r, ($F)(1.0f), (y == 0.0f) | (x == 1.0f));\n"
    "}\n"
    "/* tanh x = sign(x) (1 - 2 / (exp(2|x|) + 1)), and its series below 2^-7 */\n"
    "$F celo_tanh$N($F x);\n"
    "$F celo_tanh$N($F x)\n"
    "{\n"
    "    const $D a = convert_$D(fabs(x)), a2 = a * a;\n"
    "    const $D big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);\n"
    "    const $D small = a + a * a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0)));\n"
    "    const $F r = convert_$F(select(big, small, ($L)(a < 0x1p-7)));\n"
    "    return select(copysign(r, x), x, isnan(x));\n"
    "}\n";

static const char math_builtin[] = "$F celo_exp$N($F x);\n"
                                   "$F celo_exp$N($F x) { return exp(x); }\n"
                                   "$F celo_log$N($F x);\n"
                                   "$F celo_log$N($F x) { return log(x); }\n"
                                   "$F celo_pow$N($F x, $F y);\n"
                                   "$F celo_pow$N($F x, $F y) { return pow(x, y); }\n"
                                   "$F celo_tanh$N($F x);\n"
                                   "$F celo_tanh$N($F x) { return tanh(x); }\n";

/* celo_exp: runtime/mathf.h's double operations in its order (FP_CONTRACT is off), so that it equals celo_expf */
static void emit_exp(sbuf *b, int vec)
{
    const char *F = vec ? "float8" : "float", *D = vec ? "double8" : "double", *L = vec ? "long8" : "long";
    const char *N = vec ? "8" : "";
    sb_printf(b, "%s celo_exp%s(%s x);\n%s celo_exp%s(%s x)\n{\n", F, N, F, F, N, F);
    sb_printf(b, "    const %s xd = fmin(fmax(convert_%s(x), %a), %a);\n", D, D, CELO_EXP_LO, CELO_EXP_HI);
    sb_printf(b, "    const %s k = rint(xd * %a);\n", D, CELO_LOG2E);
    sb_printf(b, "    const %s r = (xd - k * %a) - k * %a;\n", D, CELO_LN2_HI, CELO_LN2_LO);
    sb_printf(b, "    %s q = %a;\n", D, celo_exp_poly[0]);
    for (int i = 1; i < CELO_EXP_NPOLY; i++)
        sb_printf(b, "    q = q * r + %a;\n", celo_exp_poly[i]);
    sb_printf(b, "    const %s s = as_%s((convert_%s(k) + 1023) << 52);\n", D, D, L);
    sb_printf(b, "    return select(convert_%s(q * s), x, isnan(x));\n}\n", F);
}

static void emit_template(sbuf *b, const char *t, int vec)
{
    for (const char *p = t; *p; p++) {
        if (*p != '$') {
            sb_printf(b, "%c", *p);
            continue;
        }
        switch (*++p) {
        case 'F': sb_printf(b, "float%s", vec ? "8" : ""); break;
        case 'I': sb_printf(b, "int%s", vec ? "8" : ""); break;
        case 'D': sb_printf(b, "double%s", vec ? "8" : ""); break;
        case 'L': sb_printf(b, "long%s", vec ? "8" : ""); break;
        case 'N': sb_printf(b, "%s", vec ? "8" : ""); break;
        case 'E': emit_exp(b, vec); break;
        default: sb_printf(b, "$%c", *p); break;
        }
    }
}

/* Whether an element pass calls a math library function (cost LIBM): then the source needs celo's own. */
static int uses_math(const celo_program *P)
{
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->dom == CELO_ELEM && ir_op(x->op)->cost == IR_LIBM)
            return 1;
    }
    return 0;
}

char *celo_opencl_source(const celo_program *P)
{
    if (!P)
        return NULL;
    sbuf b = {0};
    sb_printf(&b, "/* celo rule '%s': OpenCL C 1.2, one kernel per element pass (%d). Generated; do not edit. */\n",
              P->name ? P->name : "?", P->npass);
    sb_printf(&b, "%s", prologue);
    if (uses_math(P)) {
        sb_printf(&b, "\n#if CELO_ACC_DOUBLE\n");
        emit_template(&b, math_double, 0);
        emit_template(&b, math_double, 1);
        sb_printf(&b, "#else\n");
        emit_template(&b, math_builtin, 0);
        emit_template(&b, math_builtin, 1);
        sb_printf(&b, "#endif\n");
    }
    for (int k = 1; k <= P->npass; k++) {
        celo_clpass pi;
        if (celo_clpass_analyse(P, k, &pi)) {
            free(b.s);
            return NULL;
        }
        emit_pass(&b, P, &pi);
        celo_clpass_free(&pi);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
