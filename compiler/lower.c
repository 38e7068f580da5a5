/* lower.c — semantic checks and lowering of one update rule from the syntax tree to the kernel IR.
 *
 * Names resolve, in order: for-loop variables, locals, names bound to MLP outputs and learned parts, state slots,
 * hyper-parameters, then p, g, t, num_steps, u and pi. Learned parts (`learned mlp f[…]`, `learned w[n]`) become
 * the program's θ table; an MLP call is unrolled here into host THETA reads and element-wise arithmetic.
 * The domain of each state slot is inferred by a fixpoint: lower with a guess, read off the domain of
 * each slot's final value, and repeat until nothing grows (domains only grow, so this ends quickly). */
#include "diag.h"
#include "rules.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN       2048 /* state slots and local names of a rule */
#define MAXLEARNED 64   /* learned declarations (θ tensors: 64 as well) */
/* Loops are unrolled: Celo's LSTM (256 gates of 128 products each) is 32768 copies of its innermost body. */
#define MAXREPEAT 4096
#define MAXCOPIES (1 << 17)

typedef struct {
    char name[96];
    int dom;  /* guess of the slot's domain */
    int init; /* HOST node */
    int cur;  /* current value node, -1 = not read or assigned yet */
    int assigned;
} slotinfo;

typedef struct {
    const char *name;
    int node;
} binding;

typedef struct {
    const char *name;
    int size, first; /* vector size (0 = scalar slot) and first slot number */
    span sp;
} statename;

/* A learned part: `learned mlp f[6 -> 4 -> 2] relu;` or `learned W[128, 256];`. Its tensors are the θ entries
 * L->th[spec], L->th[spec + 1], …: an MLP's w0 (or w0__0 … w0__{nsplit-1}, its rows split by `inputs = […]`), b0,
 * w1, b1, …; a plain tensor's one. */
typedef struct {
    const char *name;
    int mlp;             /* 1: an MLP, 0: a plain θ tensor */
    int dims[16], ndims; /* widths (a plain tensor: its shape) */
    celo_op act;         /* the MLP's activation after each hidden layer */
    int spec;
    int nsplit, split[64]; /* an MLP's first-layer rows per w0__i (inputs = […]); 0: one w0 */
    int bad;               /* its declaration failed (reported): uses of it fail quietly */
    span sp;
} learnedname;

enum { MAXOUT = 64 }; /* outputs an MLP may give */

/* A local vector: x[k] = e; assigns its elements, y = f(…) binds an MLP's outputs. node[k] is element k's value,
 * UNSET before it is assigned (-1 after an error, reported). */
enum { UNSET = -2 };
typedef struct {
    const char *name;
    int n, cap, *node;
} vecbinding;

/* One lexical scope: an optimizer body, or one transform instance of a chain. */
typedef struct {
    binding hps[64];
    int nhps;
    binding locals[MAXN];
    int nlocals;
    statename states[MAXN];
    int nstates;
    binding fors[8];
    int nfors;
    learnedname learned[MAXLEARNED];
    int nlearned;
    vecbinding vecs[MAXN];
    int nvecs;
    const char *prefix; /* state names are prefixed with the transform instance in chains */
    int is_transform;
    const srcfile *file;
} scope;

typedef struct {
    char name[128];
    int ndim, shape[4], init, fan_in; /* init, fan_in: as celo_thetaspec's */
    int64_t offset;
} thentry;

typedef struct {
    irbuild *ir;
    module *mod;
    int quiet;
    int muted; /* the last error was not printed (quiet, or already reported): its notes are not either */
    int nerr;
    struct {
        const srcfile *file;
        span sp;
    } seen[64]; /* errors printed: a for body (or a transform used twice) is lowered more than once */
    int nseen;
    int unroll; /* copies of the current statement made by the enclosing for loops */
    slotinfo slots[MAXN];
    int nslots;
    const int *guess; /* slot domain guesses */
    int p_cur, p_assigned;
    int u_cur;
    int alone;        /* a transform lowered on its own (celo check): its update u applied to p as p + u */
    const def *sched; /* the learning-rate schedule the rule is compiled with, or NULL */
    scope *sc;
    thentry th[64]; /* the θ table, in declaration order */
    int nth;
    int64_t theta_len;
    /* tensor classes: the class this program is lowered for (compile_def enumerates them), and the optimizers
     * being inlined (NAME(args); statements) */
    const struct classinfo *cls; /* NULL: the rule has no class conditions */
    int cls_ndim;
    unsigned cls_mask;
    int branch; /* inside an if branch */
    const def *root;
    const def *inl[8];
    int ninl;
    struct {
        const def *d;
        int n;
    } inlined[32]; /* optimizers inlined so far, and how often: the second adamw(…) gets slots adamw#2.m */
    int ninlined;
} lctx;

static int already_reported(lctx *L, span sp)
{
    for (int i = 0; i < L->nseen; i++)
        if (L->seen[i].file == L->sc->file && L->seen[i].sp.lo == sp.lo && L->seen[i].sp.hi == sp.hi)
            return 1;
    if (L->nseen < (int)(sizeof L->seen / sizeof L->seen[0])) {
        L->seen[L->nseen].file = L->sc->file;
        L->seen[L->nseen++].sp = sp;
    }
    return 0;
}

#define ERR(L, sp, ...)                                     \
    do {                                                    \
        (L)->nerr++;                                        \
        (L)->muted = (L)->quiet || already_reported(L, sp); \
        if (!(L)->muted)                                    \
            diag_error((L)->sc->file, sp, __VA_ARGS__);     \
    } while (0)

static int lower_expr(lctx *L, const expr *e);
static int reserved(const char *nm);

/* ---- builtin functions: the ops the table names (fn in runtime/ops.def), and these compositions of ops ---- */
typedef enum { BI_OP, BI_CLIP, BI_LERP, BI_SQUARE, BI_RED, BI_FAC } bikind;
typedef struct {
    const char *name;
    bikind kind;
    int nargs;
    celo_op op;      /* BI_OP: the op; BI_RED: SUM or MAXR */
    celo_domain dom; /* reductions: target domain */
    int mean;        /* reductions: 1 mean, 2 rms, 3 norm, 4 maxabs, 5 amin; BI_FAC: 0 d0, 1 d1, 2 last two */
} builtin;

static const builtin composed[] = {
    {"square", BI_SQUARE, 1, CELO_OP_MUL, 0, 0},
    {"orthogonalize_last2", BI_OP, 1, CELO_OP_ORTHO, 0, 1}, /* mean = 1: one matrix per leading index */
    {"clip", BI_CLIP, 3, 0, 0, 0},
    {"lerp", BI_LERP, 3, 0, 0, 0},
    {"sum", BI_RED, 1, CELO_OP_SUM, CELO_SCALAR, 0},
    {"mean", BI_RED, 1, CELO_OP_SUM, CELO_SCALAR, 1},
    {"rms", BI_RED, 1, CELO_OP_SUM, CELO_SCALAR, 2},
    {"norm", BI_RED, 1, CELO_OP_SUM, CELO_SCALAR, 3},
    {"maxabs", BI_RED, 1, CELO_OP_MAXR, CELO_SCALAR, 4},
    {"amax", BI_RED, 1, CELO_OP_MAXR, CELO_SCALAR, 0},
    {"amin", BI_RED, 1, CELO_OP_MAXR, CELO_SCALAR, 5},
    {"row_sum", BI_RED, 1, CELO_OP_SUM, CELO_ROW, 0},
    {"row_mean", BI_RED, 1, CELO_OP_SUM, CELO_ROW, 1},
    {"row_max", BI_RED, 1, CELO_OP_MAXR, CELO_ROW, 0},
    {"col_sum", BI_RED, 1, CELO_OP_SUM, CELO_COL, 0},
    {"col_mean", BI_RED, 1, CELO_OP_SUM, CELO_COL, 1},
    {"col_max", BI_RED, 1, CELO_OP_MAXR, CELO_COL, 0},
    {"mean_d0", BI_FAC, 1, CELO_OP_SUM, CELO_FROW, 0},
    {"mean_d1", BI_FAC, 1, CELO_OP_SUM, CELO_FCOL, 1},
    {"mean_last2", BI_FAC, 1, CELO_OP_SUM, CELO_MAT, 2},
};
#define NCOMPOSED ((int)(sizeof composed / sizeof composed[0]))
#define NBUILTIN  (CELO_OP_COUNT_ + NCOMPOSED) /* at most */

/* Builtin NAME into *out; 0 if there is none. */
static int find_builtin(const char *name, builtin *out)
{
    for (int op = 0; op < CELO_OP_COUNT_; op++) {
        const ir_opinfo *o = ir_op(op);
        if (o->fn && !strcmp(o->fn, name)) {
            *out = (builtin){o->fn, BI_OP, o->arity, (celo_op)op, 0, 0};
            return 1;
        }
    }
    for (int i = 0; i < NCOMPOSED; i++)
        if (!strcmp(composed[i].name, name)) {
            *out = composed[i];
            return 1;
        }
    return 0;
}

/* The name of every builtin into names (room for NBUILTIN); returns how many. */
static int builtin_names(const char **names)
{
    int n = 0;
    for (int op = 0; op < CELO_OP_COUNT_; op++)
        if (ir_op(op)->fn)
            names[n++] = ir_op(op)->fn;
    for (int i = 0; i < NCOMPOSED; i++)
        names[n++] = composed[i].name;
    return n;
}

static int N(lctx *L, celo_op op, int a, int b, int c)
{
    return ir_node(L->ir, op, a, b, c, 0, 0);
}

/* The mean of x over the values of domain `from` that meet in each value of domain `to`: SUM into `to` divided by
 * the count dlen(from) / dlen(to) (a per-tensor value, exact in double). */
static int fac_mean(lctx *L, int x, celo_domain from, celo_domain to)
{
    int r = ir_node(L->ir, CELO_OP_SUM, x, -1, -1, 0, to);
    int cnt = N(L, CELO_OP_DIV, ir_node(L->ir, CELO_OP_DLEN, -1, -1, -1, (int)from, 0),
                ir_node(L->ir, CELO_OP_DLEN, -1, -1, -1, (int)to, 0), -1);
    return N(L, CELO_OP_DIV, r, cnt, -1);
}

/* mean_d0, mean_d1, mean_last2 (docs/language.md, "Factored statistics"). A value already constant along the
 * axes (host, per-tensor, or a factored domain without them) is its own mean. mean_d0 / mean_d1 of an element
 * value are reduced by the runtime from the value its pass stages (fuse.c); mean_last2 of an element value is a
 * row mean (a native reduction of every back end) followed by a mean of the rows of each matrix between passes. */
static int lower_fac(lctx *L, const builtin *bi, int x, const expr *src)
{
    celo_domain d = ir_dom(L->ir, x);
    if (d == CELO_HOST || d == CELO_SCALAR)
        return x;
    switch (bi->mean) {
    case 0:
        if (d == CELO_FROW || d == CELO_FBAT)
            return x;
        if (d == CELO_ELEM)
            return fac_mean(L, x, CELO_ELEM, CELO_FROW);
        if (d == CELO_FCOL)
            return fac_mean(L, x, CELO_FCOL, CELO_FBAT);
        break;
    case 1:
        if (d == CELO_FCOL || d == CELO_FBAT)
            return x;
        if (d == CELO_ELEM)
            return fac_mean(L, x, CELO_ELEM, CELO_FCOL);
        if (d == CELO_FROW)
            return fac_mean(L, x, CELO_FROW, CELO_FBAT);
        break;
    default:
        if (d == CELO_MAT)
            return x;
        if (d == CELO_COL || celo_dom_is_fac(d)) { /* the mean of its element-wise form (Celo2's features) */
            x = N(L, CELO_OP_ELEMS, x, -1, -1);
            d = CELO_ELEM;
        }
        if (d == CELO_ELEM) { /* row_mean(x), the same nodes */
            x = N(L, CELO_OP_DIV, ir_node(L->ir, CELO_OP_SUM, x, -1, -1, 0, CELO_ROW), N(L, CELO_OP_NCOLS, -1, -1, -1),
                  -1);
            d = CELO_ROW;
        }
        if (d == CELO_ROW)
            return fac_mean(L, x, CELO_ROW, CELO_MAT);
        break;
    }
    static const char *what[] = {
        [CELO_ROW] = "a per-row",  [CELO_COL] = "a per-column",       [CELO_FROW] = "a mean_d0",
        [CELO_FCOL] = "a mean_d1", [CELO_FBAT] = "a mean_d0/mean_d1", [CELO_MAT] = "a mean_last2"};
    ERR(L, src->sp, "'%s' of %s value is not supported (it takes an element-wise value%s)", bi->name, what[d],
        bi->mean == 0   ? " or a mean_d1"
        : bi->mean == 1 ? " or a mean_d0"
                        : " or a per-row value");
    return -1;
}

/* ---- name lookup ---- */
static int find_binding(const binding *b, int n, const char *name)
{
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(b[i].name, name))
            return i;
    return -1;
}

static statename *find_state(scope *s, const char *name)
{
    for (int i = 0; i < s->nstates; i++)
        if (!strcmp(s->states[i].name, name))
            return &s->states[i];
    return NULL;
}

static learnedname *find_learned(scope *s, const char *name)
{
    for (int i = 0; i < s->nlearned; i++)
        if (!strcmp(s->learned[i].name, name))
            return &s->learned[i];
    return NULL;
}

static vecbinding *find_vec(scope *s, const char *name)
{
    for (int i = s->nvecs - 1; i >= 0; i--)
        if (!strcmp(s->vecs[i].name, name))
            return &s->vecs[i];
    return NULL;
}

/* The host node reading float k of θ. */
static int theta_at(lctx *L, int64_t k)
{
    return ir_node(L->ir, CELO_OP_THETA, -1, -1, -1, (int)k, 0);
}

static void suggest(lctx *L, span sp, const char *name)
{
    if (L->muted)
        return;
    /* Every name in scope: locals and states (MAXN each at most), hyper-parameters (64), loop variables (8) and the
     * predefined names. */
    const char *cand[2 * MAXN + 64 + 8 + 7];
    int n = 0;
    scope *s = L->sc;
    for (int i = 0; i < s->nlocals && i < MAXN; i++)
        cand[n++] = s->locals[i].name;
    for (int i = 0; i < s->nstates && i < MAXN; i++)
        cand[n++] = s->states[i].name;
    for (int i = 0; i < s->nhps && i < 64; i++)
        cand[n++] = s->hps[i].name;
    for (int i = 0; i < s->nfors && i < 8; i++)
        cand[n++] = s->fors[i].name;
    cand[n++] = "p";
    cand[n++] = "g";
    cand[n++] = "t";
    cand[n++] = "num_steps";
    cand[n++] = "loss";
    cand[n++] = "pi";
    if (s->is_transform)
        cand[n++] = "u";
    const char *best = diag_suggest(name, cand, n);
    if (best)
        diag_note(s->file, sp, "did you mean '%s'?", best);
}

static int slot_value(lctx *L, int slot)
{
    slotinfo *si = &L->slots[slot];
    if (si->cur < 0)
        si->cur = ir_node(L->ir, CELO_OP_STATE, -1, -1, -1, slot, (celo_domain)L->guess[slot]);
    return si->cur;
}

/* A constant integer from an expression that must be one (indices, loop bounds). */
static int const_int(lctx *L, const expr *e, const char *what, int *out)
{
    int n = lower_expr(L, e);
    if (n < 0)
        return -1;
    const celo_node *x = &L->ir->n[n];
    if (x->op != CELO_OP_CONST || x->imm != floor(x->imm) || fabs(x->imm) > 1e6) {
        /* A state index may also be a for variable; hyper-parameters are kernel arguments, not constants. */
        ERR(L, e->sp, "%s must be an integer constant%s%s", what,
            strstr(what, "index") ? " or a for-loop variable" : "",
            x->op == CELO_OP_HP ? " (a hyper-parameter can change with --set, so it is not a constant)" : "");
        return -1;
    }
    *out = (int)x->imm;
    return 0;
}

static int state_slot_ref(lctx *L, statename *st, const expr *index, span sp)
{
    if (st->size == 0) {
        if (index) {
            ERR(L, sp, "state '%s' is not a vector and cannot be indexed", st->name);
            return -1;
        }
        return st->first;
    }
    if (!index) {
        ERR(L, sp, "state '%s' is a vector of %d slots; use %s[0] … %s[%d]", st->name, st->size, st->name, st->name,
            st->size - 1);
        return -1;
    }
    int k;
    if (const_int(L, index, "a state index", &k))
        return -1;
    if (k < 0 || k >= st->size) {
        ERR(L, index->sp, "index %d is out of range for state '%s' of %d slots", k, st->name, st->size);
        return -1;
    }
    return st->first + k;
}

/* x[k] of a local vector: an element assigned before. */
static int vec_read(lctx *L, const vecbinding *vb, const expr *e)
{
    const char *nm = vb->name;
    int k;
    if (e->kind != EX_INDEX) {
        ERR(L, e->sp, "'%s' holds %d values; use %s[0] … %s[%d]", nm, vb->n, nm, nm, vb->n - 1);
        return -1;
    }
    if (e->nargs > 1) {
        ERR(L, e->sp, "'%s' is a vector: it takes one index", nm);
        return -1;
    }
    if (const_int(L, e->b, "an index", &k))
        return -1;
    if (k < 0 || k >= vb->n) {
        ERR(L, e->b->sp, "index %d is out of range for '%s' of %d values", k, nm, vb->n);
        return -1;
    }
    if (vb->node[k] == UNSET) {
        ERR(L, e->sp, "'%s[%d]' is read before it is assigned", nm, k);
        return -1;
    }
    return vb->node[k] < 0 ? -1 : vb->node[k];
}

/* W[i, j, …] of a plain learned tensor: constant indices, one per dimension, each in its range; C order. */
static int theta_read(lctx *L, const learnedname *ln, const expr *e)
{
    const char *nm = ln->name;
    int nd = ln->ndims, nidx = e->kind != EX_INDEX ? 0 : e->nargs > 1 ? e->nargs : 1;
    if (nidx == 0 && nd == 1) {
        ERR(L, e->sp, "'%s' holds %d values; use %s[0] … %s[%d]", nm, ln->dims[0], nm, nm, ln->dims[0] - 1);
        return -1;
    }
    if (nidx != nd) {
        ERR(L, e->sp, "learned '%s' has %d dimension%s: read it with %d ind%s, like %s[%s]", nm, nd, nd == 1 ? "" : "s",
            nd, nd == 1 ? "ex" : "ices", nm,
            nd == 1   ? "k"
            : nd == 2 ? "i, j"
            : nd == 3 ? "i, j, k"
                      : "i, j, k, l");
        return -1;
    }
    int64_t flat = 0;
    const arg *a = e->nargs > 1 ? e->args : NULL;
    for (int d = 0; d < nd; d++) {
        const expr *ix = a ? a->value : e->b;
        int k;
        if (const_int(L, ix, "an index", &k))
            return -1;
        if (k < 0 || k >= ln->dims[d]) {
            if (nd == 1)
                ERR(L, ix->sp, "index %d is out of range for '%s' of %d values", k, nm, ln->dims[0]);
            else
                ERR(L, ix->sp, "index %d is out of range for dimension %d of '%s' (size %d)", k, d, nm, ln->dims[d]);
            return -1;
        }
        flat = flat * ln->dims[d] + k;
        if (a)
            a = a->next;
    }
    return theta_at(L, L->th[ln->spec].offset + flat);
}

static int lower_name(lctx *L, const expr *e)
{
    scope *s = L->sc;
    const char *nm = e->name;
    int i;
    if (e->suffix) {
        ERR(L, e->sp, "'%s[…].%s' names a tap of a model; a rule reads a state vector as %s[k]", nm, e->suffix, nm);
        return -1;
    }
    if ((i = find_binding(s->fors, s->nfors, nm)) >= 0 && e->kind == EX_NAME)
        return ir_const(L->ir, s->fors[i].node);
    if ((i = find_binding(s->locals, s->nlocals, nm)) >= 0) {
        if (s->locals[i].node < 0)
            return -1; /* its definition failed (reported) */
        if (e->kind == EX_INDEX) {
            ERR(L, e->name_span, "'%s' is a local value, not a state vector, and cannot be indexed", nm);
            return -1;
        }
        return s->locals[i].node;
    }
    vecbinding *vb = find_vec(s, nm);
    learnedname *ln = find_learned(s, nm);
    if (ln && ln->bad)
        return -1;
    if (vb)
        return vec_read(L, vb, e);
    if (ln && !ln->mlp)
        return theta_read(L, ln, e);
    if (e->kind == EX_INDEX && e->nargs > 1) {
        ERR(L, e->sp, "'%s' takes one index; only a learned tensor (learned %s[n, m];) takes several", nm, nm);
        return -1;
    }
    if (ln) {
        ERR(L, e->sp, "'%s' is a learned MLP; call it as %s(…) with its %d inputs", nm, nm, ln->dims[0]);
        return -1;
    }
    statename *st = find_state(s, nm);
    if (st) {
        int slot = state_slot_ref(L, st, e->kind == EX_INDEX ? e->b : NULL, e->sp);
        return slot < 0 ? -1 : slot_value(L, slot);
    }
    if (e->kind == EX_INDEX) {
        if ((i = find_binding(s->hps, s->nhps, nm)) >= 0 || !strcmp(nm, "p") || !strcmp(nm, "g"))
            ERR(L, e->name_span, "'%s' cannot be indexed: only state vectors can", nm);
        else {
            ERR(L, e->name_span, "unknown state vector '%s'", nm);
            suggest(L, e->name_span, nm);
        }
        return -1;
    }
    if ((i = find_binding(s->hps, s->nhps, nm)) >= 0)
        return s->hps[i].node;
    if (!strcmp(nm, "p"))
        return L->p_cur;
    if (!strcmp(nm, "g"))
        return N(L, CELO_OP_G, -1, -1, -1);
    if (!strcmp(nm, "t"))
        return N(L, CELO_OP_T, -1, -1, -1);
    if (!strcmp(nm, "num_steps"))
        return N(L, CELO_OP_NSTEPS, -1, -1, -1);
    if (!strcmp(nm, "loss"))
        return N(L, CELO_OP_LOSS, -1, -1, -1);
    if (!strcmp(nm, "u") && s->is_transform)
        return L->u_cur;
    if (!strcmp(nm, "pi"))
        return ir_const(L->ir, 3.14159265358979323846);
    builtin bi;
    if (find_builtin(nm, &bi))
        ERR(L, e->sp, "'%s' is a function; call it as %s(…)", nm, nm);
    else if (!strcmp(nm, "u"))
        ERR(L, e->sp, "'u' (the incoming update) exists only in transforms; an optimizer reads 'g'");
    else {
        ERR(L, e->sp, "unknown name '%s'", nm);
        suggest(L, e->sp, nm);
    }
    return -1;
}

/* A matrix op's integer argument (ARGQ: its quoted name) from V: a constant in its range. 0, or -1 (reported). */
static int matrix_arg(lctx *L, const ir_opinfo *mat, const char *argq, const expr *v, int *aux)
{
    if (const_int(L, v, argq, aux))
        return -1;
    if (*aux < mat->arg_lo || *aux > mat->arg_hi) {
        ERR(L, v->sp, "%s must be between %d and %d", argq, mat->arg_lo, mat->arg_hi);
        return -1;
    }
    return 0;
}

/* MLP ln applied to the inputs of call e: out[0 .. dims[last]) get its outputs. Unrolled into the IR, each weight
 * a host THETA node: layer l computes h_j = (x_0 w[0,j] + x_1 w[1,j] + … + x_{in-1} w[in-1,j]) + b_j, summed
 * left to right (the order the NumPy reference uses), each term after the first a fused multiply-add (one
 * rounding: half the instructions of the multiply-adds that are the MLP's whole cost), then the activation on
 * every layer but the last. 0, or -1 (reported). */
/* The θ offsets of layer l's weight rows (row q: the q-th input) and of its bias: w0 (or w0__0, w0__1, … split by
 * rows), b0, w1, b1, … from ln->spec on. */
static int64_t mlp_offsets(const lctx *L, const learnedname *ln, int l, int64_t *row)
{
    int w0 = ln->nsplit ? ln->nsplit : 1, nout = ln->dims[l + 1];
    if (l == 0)
        for (int i = 0, q = 0; i < w0; i++)
            for (int r = 0; r < (ln->nsplit ? ln->split[i] : ln->dims[0]); r++, q++)
                row[q] = L->th[ln->spec + i].offset + (int64_t)r * nout;
    else
        for (int q = 0; q < ln->dims[l]; q++)
            row[q] = L->th[ln->spec + w0 + 2 * l - 1].offset + (int64_t)q * nout;
    return L->th[ln->spec + w0 + 2 * l].offset;
}

static int mlp_eval(lctx *L, const learnedname *ln, const expr *e, int *out)
{
    int in = ln->dims[0];
    int bufa[4096], bufb[4096], *x = bufa, *y = bufb, i = 0;
    int64_t row[4096];
    for (const arg *a = e->args; a; a = a->next) {
        if (a->name) {
            ERR(L, a->name_span, "the inputs of '%s' are positional (no names)", ln->name);
            return -1;
        }
        /* a vector (a local one, or a state vector) given by its bare name: its elements, in order */
        const expr *v = a->value;
        scope *sc = L->sc;
        vecbinding *vb = NULL;
        statename *st = NULL;
        if (v->kind == EX_NAME && find_binding(sc->fors, sc->nfors, v->name) < 0 &&
            find_binding(sc->locals, sc->nlocals, v->name) < 0) {
            vb = find_vec(sc, v->name);
            st = vb ? NULL : find_state(sc, v->name);
            if (st && !st->size)
                st = NULL;
        }
        int n = vb ? vb->n : st ? st->size : 1;
        if (i + n > 4096) {
            ERR(L, e->sp, "'%s' takes %d inputs, got more than 4096", ln->name, in);
            return -1;
        }
        for (int k = 0; k < n; k++, i++) {
            if (vb && vb->node[k] == UNSET) {
                ERR(L, v->sp, "'%s[%d]' is not assigned: a vector given whole needs all its elements up to the last",
                    v->name, k);
                return -1;
            }
            x[i] = vb ? vb->node[k] : st ? slot_value(L, st->first + k) : lower_expr(L, v);
            if (x[i] < 0)
                return -1;
        }
    }
    if (i != in) {
        ERR(L, e->sp, "'%s' takes %d inputs, got %d", ln->name, in, i);
        return -1;
    }
    for (int l = 0; l + 1 < ln->ndims; l++) {
        int nin = ln->dims[l], nout = ln->dims[l + 1];
        int64_t b = mlp_offsets(L, ln, l, row);
        for (int j = 0; j < nout; j++) {
            int acc = N(L, CELO_OP_MUL, x[0], theta_at(L, row[0] + j), -1);
            for (int q = 1; q < nin; q++)
                acc = N(L, CELO_OP_FMA, x[q], theta_at(L, row[q] + j), acc);
            acc = N(L, CELO_OP_ADD, acc, theta_at(L, b + j), -1);
            y[j] = l + 2 < ln->ndims ? N(L, ln->act, acc, -1, -1) : acc;
        }
        int *tmp = x;
        x = y;
        y = tmp;
    }
    for (int j = 0; j < ln->dims[ln->ndims - 1]; j++)
        out[j] = x[j];
    return 0;
}

static int lower_call(lctx *L, const expr *e)
{
    if (!strcmp(e->name, "ndim") || !strcmp(e->name, "matches")) {
        ERR(L, e->sp,
            "%s describes the tensor's class: it may appear only in the condition of an if at the top level of a rule "
            "body",
            !strcmp(e->name, "ndim") ? "ndim()" : "matches(…)");
        return -1;
    }
    if (e->str) {
        ERR(L, e->sp, "'%s' takes no string; a string is the argument of matches(\"REGEX\") in an if's condition",
            e->name);
        return -1;
    }
    learnedname *ln = find_learned(L->sc, e->name);
    if (ln && ln->bad)
        return -1;
    if (ln && ln->mlp) {
        int nout = ln->dims[ln->ndims - 1], out[MAXOUT];
        if (nout != 1) {
            ERR(L, e->sp, "'%s' gives %d values; name them first (y = %s(…);) and read y[0] … y[%d]", e->name, nout,
                e->name, nout - 1);
            return -1;
        }
        return mlp_eval(L, ln, e, out) ? -1 : out[0];
    }
    if (ln) {
        ERR(L, e->name_span, "'%s' is a learned vector; read its values as %s[k]", e->name, e->name);
        return -1;
    }
    builtin bi;
    if (!find_builtin(e->name, &bi)) {
        def *d = module_find(L->mod, e->name);
        if (d && d->kind == DEF_TRANSFORM)
            ERR(L, e->name_span, "transform '%s' can only be used inside chain(…)", e->name);
        else if (d && d->kind == DEF_SCHEDULE)
            ERR(L, e->name_span, "schedule '%s' cannot be called inside a rule; a train block names it", e->name);
        else if (d && d->kind == DEF_MODEL)
            ERR(L, e->name_span, "model '%s' cannot be called inside a rule; a task names it", e->name);
        else if (d)
            ERR(L, e->name_span, "optimizer '%s' cannot be called inside a rule", e->name);
        else {
            ERR(L, e->name_span, "unknown function '%s'", e->name);
            if (!L->muted) {
                const char *cand[NBUILTIN];
                const char *best = diag_suggest(e->name, cand, builtin_names(cand));
                if (best)
                    diag_note(L->sc->file, e->name_span, "did you mean '%s'?", best);
            }
        }
        return -1;
    }
    /* a matrix op's integer argument (orthogonalize's steps), by name or second */
    const ir_opinfo *mat = bi.kind == BI_OP && ir_op(bi.op)->kind == IR_MATRIX ? ir_op(bi.op) : NULL;
    char argq[64] = "";
    if (mat)
        snprintf(argq, sizeof argq, "'%s'", mat->arg);
    int aux = mat ? mat->arg_def : 0, npos = 0;
    const expr *av[3] = {0};
    for (const arg *a = e->args; a; a = a->next) {
        if (a->name) {
            if (mat && !strcmp(a->name, mat->arg)) {
                if (matrix_arg(L, mat, argq, a->value, &aux))
                    return -1;
                continue;
            }
            ERR(L, a->name_span, "'%s' has no argument named '%s'", bi.name, a->name);
            if (!L->muted) {
                /* f(x = 0) where x is a value in scope: most likely a comparison. */
                scope *sc = L->sc;
                int known = find_binding(sc->locals, sc->nlocals, a->name) >= 0 || find_state(sc, a->name) ||
                            find_binding(sc->hps, sc->nhps, a->name) >= 0 || reserved(a->name) ||
                            (sc->is_transform && !strcmp(a->name, "u"));
                if (known)
                    diag_note(sc->file, a->name_span, "to compare '%s', write '=='", a->name);
                else if (mat) {
                    const char *cand[1] = {mat->arg};
                    if (diag_suggest(a->name, cand, 1))
                        diag_note(sc->file, a->name_span, "did you mean %s?", argq);
                }
            }
            return -1;
        }
        if (npos < 3)
            av[npos] = a->value;
        npos++;
    }
    if (mat && npos == 2) {
        if (matrix_arg(L, mat, argq, av[1], &aux))
            return -1;
        npos = 1;
    }
    if (npos != bi.nargs) {
        ERR(L, e->sp, "'%s' takes %d argument%s, got %d", bi.name, bi.nargs, bi.nargs == 1 ? "" : "s", npos);
        return -1;
    }
    int x[3] = {-1, -1, -1};
    for (int i = 0; i < npos; i++)
        if ((x[i] = lower_expr(L, av[i])) < 0)
            return -1;
    switch (bi.kind) {
    case BI_OP:
        if (mat && ir_dom(L->ir, x[0]) != CELO_ELEM) {
            ERR(L, av[0]->sp, "%s needs an element-wise value (a matrix), not a scalar", bi.name);
            return -1;
        }
        if (mat && bi.mean) /* orthogonalize_last2 */
            aux |= CELO_ORTHO_LAST2;
        return ir_node(L->ir, bi.op, x[0], x[1], x[2], aux, 0);
    case BI_SQUARE: return N(L, CELO_OP_MUL, x[0], x[0], -1);
    case BI_CLIP: return N(L, CELO_OP_MIN, N(L, CELO_OP_MAX, x[0], x[1], -1), x[2], -1);
    case BI_LERP: return N(L, CELO_OP_ADD, x[0], N(L, CELO_OP_MUL, x[2], N(L, CELO_OP_SUB, x[1], x[0], -1), -1), -1);
    case BI_FAC: return lower_fac(L, &bi, x[0], av[0]);
    case BI_RED: {
        int v = x[0];
        if (celo_dom_is_fac(ir_dom(L->ir, v)) && bi.dom != CELO_SCALAR) {
            ERR(L, av[0]->sp, "'%s' of a factored value (from mean_d0, mean_d1 or mean_last2) is not supported",
                bi.name);
            return -1;
        }
        if (bi.mean == 2 || bi.mean == 3)
            v = N(L, CELO_OP_MUL, v, v, -1);
        else if (bi.mean == 4)
            v = N(L, CELO_OP_ABS, v, -1, -1);
        else if (bi.mean == 5)
            v = N(L, CELO_OP_NEG, v, -1, -1);
        int r = ir_node(L->ir, bi.op, v, -1, -1, 0, bi.dom);
        if (bi.mean == 1 || bi.mean == 2) {
            celo_op cnt = bi.dom == CELO_ROW ? CELO_OP_NCOLS : bi.dom == CELO_COL ? CELO_OP_NROWS : CELO_OP_NUMEL;
            r = N(L, CELO_OP_DIV, r, N(L, cnt, -1, -1, -1), -1);
        }
        if (bi.mean == 2 || bi.mean == 3)
            r = N(L, CELO_OP_SQRT, r, -1, -1);
        if (bi.mean == 5)
            r = N(L, CELO_OP_NEG, r, -1, -1);
        return r;
    }
    }
    return -1;
}

static int lower_expr(lctx *L, const expr *e)
{
    static const celo_op binop[] = {
        [OP_ADD] = CELO_OP_ADD, [OP_SUB] = CELO_OP_SUB, [OP_MUL] = CELO_OP_MUL, [OP_DIV] = CELO_OP_DIV,
        [OP_POW] = CELO_OP_POW, [OP_LT] = CELO_OP_LT,   [OP_LE] = CELO_OP_LE,   [OP_GT] = CELO_OP_GT,
        [OP_GE] = CELO_OP_GE,   [OP_EQ] = CELO_OP_EQ,   [OP_NE] = CELO_OP_NE,   [OP_AND] = CELO_OP_AND,
        [OP_OR] = CELO_OP_OR,
    };
    switch (e->kind) {
    case EX_NUM: return ir_const(L->ir, e->num);
    case EX_NAME:
    case EX_INDEX: return lower_name(L, e);
    case EX_CALL: return lower_call(L, e);
    case EX_UNARY: {
        int a = lower_expr(L, e->a);
        if (a < 0)
            return -1;
        return N(L, e->op == OP_NEG ? CELO_OP_NEG : CELO_OP_NOT, a, -1, -1);
    }
    case EX_BINARY: {
        int a = lower_expr(L, e->a);
        int b = lower_expr(L, e->b);
        if (a < 0 || b < 0)
            return -1;
        return N(L, binop[e->op], a, b, -1);
    }
    }
    return -1;
}

/* ---- statements ---- */
static int reserved(const char *nm)
{
    return !strcmp(nm, "p") || !strcmp(nm, "g") || !strcmp(nm, "t") || !strcmp(nm, "num_steps") || !strcmp(nm, "loss");
}

static void lower_stmts(lctx *L, const stmt *s, int depth);

static void scope_free(scope *sc)
{
    for (int i = 0; i < sc->nvecs; i++)
        free(sc->vecs[i].node);
    free(sc);
}

/* After an error in a statement that would have defined NM, bind NM to "no value" (-1) so that its uses are
 * quiet: every consumer of a failed value fails silently, and the rule is rejected anyway. */
static void poison(lctx *L, const char *nm)
{
    scope *sc = L->sc;
    if (find_binding(sc->locals, sc->nlocals, nm) >= 0 || find_state(sc, nm) ||
        find_binding(sc->hps, sc->nhps, nm) >= 0 || find_binding(sc->fors, sc->nfors, nm) >= 0 || reserved(nm) ||
        !strcmp(nm, "u") || sc->nlocals >= MAXN)
        return;
    sc->locals[sc->nlocals].name = nm;
    sc->locals[sc->nlocals++].node = -1;
}

static void lower_state(lctx *L, const stmt *s, int depth)
{
    scope *sc = L->sc;
    if (depth > 0) {
        ERR(L, s->sp,
            "state cannot be declared inside a for loop; declare it before the loop (a vector: "
            "state m[4] = 0;)");
        for (const statevar *v = s->vars; v; v = v->next)
            poison(L, v->name);
        return;
    }
    for (const statevar *v = s->vars; v; v = v->next) {
        statename *prev = find_state(sc, v->name);
        if (prev) {
            ERR(L, v->sp, "state '%s' is declared twice", v->name);
            if (!L->muted)
                diag_note(sc->file, prev->sp, "first declared here");
            continue;
        }
        int is_u = sc->is_transform && !strcmp(v->name, "u");
        if (reserved(v->name) || is_u || find_binding(sc->hps, sc->nhps, v->name) >= 0 ||
            find_binding(sc->locals, sc->nlocals, v->name) >= 0) {
            ERR(L, v->sp, "state '%s' would hide %s '%s'", v->name,
                reserved(v->name) || is_u                       ? "the predefined name"
                : find_binding(sc->hps, sc->nhps, v->name) >= 0 ? "the hyper-parameter"
                                                                : "the local",
                v->name);
            continue;
        }
        /* state h[64] = h0; with h0 a learned tensor of 64 values: slot k starts at its entry k (C order) */
        learnedname *from = v->init->kind == EX_NAME ? find_learned(sc, v->init->name) : NULL;
        int64_t from_n = 1;
        if (from && !from->mlp && !from->bad) {
            for (int d = 0; d < from->ndims; d++)
                from_n *= from->dims[d];
            if (from_n != (v->size ? v->size : 1)) {
                ERR(L, v->init->sp, "state '%s' has %d slot%s; learned '%s' holds %lld values", v->name,
                    v->size ? v->size : 1, v->size > 1 ? "s" : "", from->name, (long long)from_n);
                from = NULL;
                from_n = -1;
            }
        } else if (from && from->bad)
            from_n = -1;
        else
            from = NULL;
        int init = from || from_n < 0 ? -1 : lower_expr(L, v->init);
        if (init >= 0 && ir_dom(L->ir, init) != CELO_HOST) {
            ERR(L, v->init->sp, "the initial value of state '%s' must depend only on hyper-parameters", v->name);
            init = -1;
        }
        if (init < 0)
            init = ir_const(L->ir, 0);
        int n = v->size ? v->size : 1;
        if (L->nslots + n > MAXN || sc->nstates >= MAXN) {
            ERR(L, v->sp, "too many state slots (at most %d)", MAXN);
            return;
        }
        statename *st = &sc->states[sc->nstates++];
        st->name = v->name;
        st->size = v->size;
        st->first = L->nslots;
        st->sp = v->sp;
        for (int k = 0; k < n; k++) {
            slotinfo *si = &L->slots[L->nslots++];
            if (from)
                init = theta_at(L, L->th[from->spec].offset + k);
            if (v->size)
                snprintf(si->name, sizeof si->name, "%s%s%s[%d]", sc->prefix ? sc->prefix : "", sc->prefix ? "." : "",
                         v->name, k);
            else
                snprintf(si->name, sizeof si->name, "%s%s%s", sc->prefix ? sc->prefix : "", sc->prefix ? "." : "",
                         v->name);
            si->init = init;
            si->cur = -1;
            si->assigned = 0;
        }
    }
}

/* The options after a learned declaration (name = "…", inputs = […], lead = 1, init = normal) into *name, ln->split,
 * *lead and *init. 0, or -1 (reported). */
static int learned_options(lctx *L, const stmt *s, learnedname *ln, const char **name, int *lead, int *init)
{
    const char *nm = s->var;
    for (const prop *o = s->lopts; o; o = o->next) {
        for (const prop *q = s->lopts; q != o; q = q->next)
            if (!strcmp(q->key, o->key)) {
                ERR(L, o->key_span, "option '%s' is given twice", o->key);
                return -1;
            }
        const pval *v = o->value;
        if (!strcmp(o->key, "name")) {
            if (v->kind != PV_STR || !*v->str || strlen(v->str) > 100) {
                ERR(L, v->sp,
                    "name = \"…\" takes a θ tensor name of 1 to 100 characters, like \"rnn_params/rnn/linear/w\"");
                return -1;
            }
            *name = v->str;
        } else if (!strcmp(o->key, "inputs") && ln->mlp) {
            int sum = 0;
            const parg *a = v->kind == PV_LIST ? v->args : NULL;
            for (ln->nsplit = 0; a; a = a->next) {
                if (a->value->kind != PV_NUM || a->value->num < 1 || a->value->num != (int)a->value->num ||
                    ln->nsplit >= 60) {
                    ln->nsplit = 0;
                    break;
                }
                sum += (int)a->value->num;
                ln->split[ln->nsplit++] = (int)a->value->num;
            }
            if (!ln->nsplit) {
                ERR(L, v->sp, "inputs = […] takes a list of 1 to 60 positive integers: the rows of each w0__i");
                return -1;
            }
            if (sum != ln->dims[0]) {
                ERR(L, v->sp, "inputs = […] adds up to %d; the MLP '%s' takes %d inputs", sum, nm, ln->dims[0]);
                return -1;
            }
        } else if (!strcmp(o->key, "lead") && ln->mlp) {
            if (v->kind != PV_NUM || (v->num != 0 && v->num != 1)) {
                ERR(L, v->sp, "lead = 1 gives every tensor of the MLP a leading axis of size 1 (or lead = 0: none)");
                return -1;
            }
            *lead = (int)v->num;
        } else if (!strcmp(o->key, "init") && !ln->mlp) {
            if (v->kind != PV_NAME || (strcmp(v->str, "normal") && strcmp(v->str, "zeros"))) {
                ERR(L, v->sp, "init = normal (truncated normal, std 1/sqrt(fan_in)) or init = zeros");
                return -1;
            }
            *init = !strcmp(v->str, "normal");
        } else {
            int other = !strcmp(o->key, "inputs") || !strcmp(o->key, "lead") || !strcmp(o->key, "init");
            if (other)
                ERR(L, o->key_span, "option '%s' is for %s", o->key,
                    !strcmp(o->key, "init") ? "a learned tensor, not an MLP (its weights start truncated normal)"
                                            : "a learned MLP");
            else
                ERR(L, o->key_span,
                    "unknown option '%s' of learned '%s' (name = \"…\"; for an MLP inputs = […] and "
                    "lead = 1; for a tensor init = normal)",
                    o->key, nm);
            return -1;
        }
    }
    return 0;
}

/* `learned mlp f[6 -> 4 -> 2] relu;` or `learned W[128, 256];` (and options): appends the part's tensors to the θ
 * table. */
static void lower_learned(lctx *L, const stmt *s, int depth)
{
    scope *sc = L->sc;
    const char *nm = s->var;
    if (depth > 0) {
        ERR(L, s->sp, "learned parameters cannot be declared inside a for loop; declare them before it");
        return;
    }

    const char *hides = find_learned(sc, nm)                                     ? "the learned"
                        : find_state(sc, nm)                                     ? "the state"
                        : find_binding(sc->hps, sc->nhps, nm) >= 0               ? "the hyper-parameter"
                        : find_binding(sc->locals, sc->nlocals, nm) >= 0         ? "the local"
                        : reserved(nm) || (sc->is_transform && !strcmp(nm, "u")) ? "the predefined name"
                                                                                 : NULL;
    if (hides) {
        ERR(L, s->var_span, "learned '%s' would hide %s '%s'", nm, hides, nm);
        return;
    }
    learnedname ln = {.name = nm, .sp = s->var_span, .ndims = s->ndims, .bad = 1};
    memcpy(ln.dims, s->dims, sizeof ln.dims);
    if (sc->nlearned < MAXLEARNED) /* poisoned until it is declared below */
        sc->learned[sc->nlearned] = ln;
    if (L->branch) {
        ERR(L, s->sp,
            "learned parameters cannot be declared inside an if: every class shares the rule's θ; declare them at "
            "the top level");
        goto poisoned;
    }
    if (s->lkind && strcmp(s->lkind, "mlp")) {
        ERR(L, s->lkind_span,
            "unknown kind of learned part '%s'; write 'learned mlp %s[in -> … -> out] relu;' or 'learned %s[n];'",
            s->lkind, nm, nm);
        goto poisoned;
    }
    ln.mlp = s->lkind != NULL;
    if (s->dims_arrow && s->dims_comma) {
        ERR(L, s->dims_span, "'->' joins an MLP's widths and ',' a tensor's dimensions: not both");
        goto poisoned;
    }
    if (!ln.mlp && s->dims_arrow) {
        ERR(L, s->dims_span, "a learned vector has one length ('learned %s[n];'); '->' is for an MLP ('learned mlp …')",
            nm);
        goto poisoned;
    }
    if (!ln.mlp && s->ndims > 4) {
        ERR(L, s->dims_span, "a learned tensor has at most 4 dimensions");
        goto poisoned;
    }
    if (ln.mlp && s->dims_comma) {
        ERR(L, s->dims_span, "an MLP's widths are joined by '->': '%s[in -> … -> out]'", nm);
        goto poisoned;
    }
    if (ln.mlp && s->ndims < 2) {
        ERR(L, s->dims_span, "an MLP needs at least its input and output widths: '%s[in -> out]'", nm);
        goto poisoned;
    }
    if (ln.mlp && s->dims[s->ndims - 1] > MAXOUT) {
        ERR(L, s->dims_span, "an MLP gives at most %d outputs", MAXOUT);
        goto poisoned;
    }
    if (ln.mlp && s->act) {
        static const struct {
            const char *name;
            celo_op op;
        } acts[] = {{"relu", CELO_OP_RELU}, {"tanh", CELO_OP_TANH}, {"sigmoid", CELO_OP_SIGMOID}};
        int found = 0;
        for (int i = 0; i < 3; i++)
            if (!strcmp(s->act, acts[i].name)) {
                ln.act = acts[i].op;
                found = 1;
            }
        if (!found) {
            ERR(L, s->act_span, "unknown activation '%s' (relu, tanh or sigmoid)", s->act);
            goto poisoned;
        }
    } else if (ln.mlp && s->ndims > 2) {
        ERR(L, s->act_span, "an MLP with hidden layers needs an activation after them: '%s[…] relu;'", nm);
        goto poisoned;
    }
    const char *tname = nm;
    int lead = 0, init = 0;
    if (learned_options(L, s, &ln, &tname, &lead, &init))
        goto poisoned;
    int64_t len = 1;
    int w0 = ln.nsplit ? ln.nsplit : 1;
    int ntens = ln.mlp ? w0 + 2 * (s->ndims - 1) - 1 : 1;
    if (ln.mlp) {
        len = 0;
        for (int l = 0; l + 1 < s->ndims; l++)
            len += (int64_t)s->dims[l] * s->dims[l + 1] + s->dims[l + 1];
    } else
        for (int d = 0; d < s->ndims; d++)
            len *= s->dims[d];
    if (L->theta_len + len > 65536 || L->nth + ntens > 64 || sc->nlearned >= MAXLEARNED) {
        ERR(L, s->sp, "too many learned parameters in one rule (at most 65536 values in 64 tensors)");
        goto poisoned;
    }
    ln.spec = L->nth;
    /* a name given with `name = "…"` is the θ tensor's whole name (the authors' tree path), also in a chained
     * transform: two transforms of a chain that name the same tensor are an error below, not two tensors */
    int given = tname != nm;
    const char *pre = sc->prefix && !given ? sc->prefix : "";
    const char *dot = sc->prefix && !given ? "." : "";
    for (int k = 0; k < ntens; k++) {
        thentry *th = &L->th[L->nth];
        memset(th, 0, sizeof *th);
        if (!ln.mlp) {
            snprintf(th->name, sizeof th->name, "%s%s%s", pre, dot, tname);
            th->ndim = s->ndims;
            memcpy(th->shape, s->dims, (size_t)s->ndims * sizeof *th->shape);
            th->init = init;
            th->fan_in = s->ndims >= 2 ? s->dims[s->ndims - 2] : s->dims[0];
        } else {
            /* w0 (or w0__0 … by input rows), b0, then w1, b1, …: layer l's weight (in, out), bias (out) */
            int l = k < w0 ? 0 : (k - w0 + 1) / 2, bias = k >= w0 && (k - w0) % 2 == 0;
            int rows = k < w0 && ln.nsplit ? ln.split[k] : s->dims[l];
            if (bias)
                snprintf(th->name, sizeof th->name, "%s%s%s/b%d", pre, dot, tname, l);
            else if (k < w0 && ln.nsplit)
                snprintf(th->name, sizeof th->name, "%s%s%s/w0__%d", pre, dot, tname, k);
            else
                snprintf(th->name, sizeof th->name, "%s%s%s/w%d", pre, dot, tname, l);
            if (lead)
                th->shape[th->ndim++] = 1; /* Celo's param_inits axis */
            if (!bias)
                th->shape[th->ndim++] = rows; /* (in, out), as the authors' haiku/flax weights */
            th->shape[th->ndim++] = s->dims[l + 1];
            th->init = !bias;
            th->fan_in = s->dims[l];
        }
        for (int q = 0; q < L->nth; q++)
            if (!strcmp(L->th[q].name, th->name)) {
                ERR(L, s->var_span, "θ tensor '%s' is declared twice (give this one another name = \"…\")", th->name);
                goto poisoned;
            }
        int64_t n = 1;
        for (int d = 0; d < th->ndim; d++)
            n *= th->shape[d];
        th->offset = L->theta_len;
        L->theta_len += n;
        L->nth++;
    }
    ln.bad = 0;
    sc->learned[sc->nlearned++] = ln;
    return;
poisoned:
    if (sc->nlearned < MAXLEARNED)
        sc->nlearned++;
}

static int combine(lctx *L, int aop, int old, int val)
{
    switch (aop) {
    case '+': return N(L, CELO_OP_ADD, old, val, -1);
    case '-': return N(L, CELO_OP_SUB, old, val, -1);
    case '*': return N(L, CELO_OP_MUL, old, val, -1);
    case '/': return N(L, CELO_OP_DIV, old, val, -1);
    default: return val;
    }
}

/* Local vector nm (found, or a new one). NULL after an error (reported). */
static vecbinding *new_vec(lctx *L, const char *nm, span sp)
{
    scope *sc = L->sc;
    vecbinding *vb = find_vec(sc, nm);
    if (vb)
        return vb;
    if (sc->nvecs >= MAXN) {
        ERR(L, sp, "too many local vectors (at most %d)", MAXN);
        return NULL;
    }
    vb = &sc->vecs[sc->nvecs++];
    memset(vb, 0, sizeof *vb);
    vb->name = nm;
    return vb;
}

/* Vector vb at least n elements long (the new ones UNSET). 0, or -1 out of memory. */
static int vec_grow(vecbinding *vb, int n)
{
    if (n > vb->cap) {
        int cap = vb->cap ? vb->cap : 16;
        while (cap < n)
            cap *= 2;
        int *node = realloc(vb->node, (size_t)cap * sizeof *node);
        if (!node)
            return -1;
        vb->node = node;
        vb->cap = cap;
    }
    for (int k = vb->n; k < n; k++)
        vb->node[k] = UNSET;
    if (n > vb->n)
        vb->n = n;
    return 0;
}

/* x[i] = e; (or x[i] += e; …) where x is not a state: an element of a local vector. */
static void vec_assign(lctx *L, const stmt *s)
{
    scope *sc = L->sc;
    const char *nm = s->target;
    if (find_binding(sc->locals, sc->nlocals, nm) >= 0) {
        ERR(L, s->target_span, "'%s' is a local value, not a vector; its elements cannot be assigned", nm);
        return;
    }
    if (reserved(nm) || (!strcmp(nm, "u") && sc->is_transform)) {
        ERR(L, s->target_span, "'%s' cannot be indexed", nm);
        return;
    }
    int k;
    if (const_int(L, s->index, "a vector index", &k))
        return;
    if (k < 0 || k >= 65536) {
        ERR(L, s->index->sp, "index %d of local vector '%s' is out of range (0 to 65535)", k, nm);
        return;
    }
    vecbinding *vb = new_vec(L, nm, s->target_span);
    if (!vb)
        return;
    int val = lower_expr(L, s->value);
    if (vec_grow(vb, k + 1)) {
        ERR(L, s->target_span, "out of memory");
        return;
    }
    if (s->aop != '=' && vb->node[k] == UNSET) {
        ERR(L, s->target_span, "'%s[%d]' is not assigned yet; '%c=' needs a value to update", nm, k, s->aop);
        vb->node[k] = -1;
        return;
    }
    if (val < 0 || (s->aop != '=' && vb->node[k] < 0)) {
        vb->node[k] = -1;
        return;
    }
    vb->node[k] = combine(L, s->aop, vb->node[k], val);
}

static void lower_assign(lctx *L, const stmt *s)
{
    scope *sc = L->sc;
    const char *nm = s->target;
    int i;
    if (s->suffix) {
        ERR(L, s->target_span, "'%s[…].%s' names a tap of a model; a rule writes a state vector as %s[k]", nm,
            s->suffix, nm);
        return;
    }
    if (find_binding(sc->fors, sc->nfors, nm) >= 0) {
        ERR(L, s->target_span, "cannot assign to loop variable '%s'", nm);
        return;
    }
    if (find_binding(sc->hps, sc->nhps, nm) >= 0 && !find_state(sc, nm)) {
        ERR(L, s->target_span,
            "cannot assign to hyper-parameter '%s': hyper-parameters are read-only (change them with --set %s=…)", nm,
            nm);
        return;
    }
    if (!strcmp(nm, "g")) {
        ERR(L, s->target_span, "cannot assign to 'g': the gradient is read-only (bind a new name instead)");
        return;
    }
    if (!strcmp(nm, "t")) {
        ERR(L, s->target_span, "cannot assign to 't': the step number is read-only");
        return;
    }
    if (!strcmp(nm, "loss")) {
        ERR(L, s->target_span, "cannot assign to 'loss': the step's training loss is read-only (bind a new name)");
        return;
    }
    if (find_learned(sc, nm)) {
        ERR(L, s->target_span, "cannot assign to learned '%s': meta-parameters are read-only in a rule", nm);
        return;
    }
    learnedname *callee = !s->index && s->value->kind == EX_CALL ? find_learned(sc, s->value->name) : NULL;
    if (callee && callee->bad) {
        poison(L, nm);
        return;
    }
    if (callee && callee->mlp && callee->dims[callee->ndims - 1] > 1) {
        int nout = callee->dims[callee->ndims - 1];
        if (s->aop != '=' || find_state(sc, nm) || !strcmp(nm, "p") || (!strcmp(nm, "u") && sc->is_transform) ||
            find_binding(sc->locals, sc->nlocals, nm) >= 0) {
            ERR(L, s->target_span, "'%s' gives %d values; bind them to a new name (y = %s(…);)", callee->name, nout,
                callee->name);
            return;
        }
        vecbinding *vb = new_vec(L, nm, s->target_span);
        if (!vb)
            return;
        int got[MAXOUT];
        int bad = mlp_eval(L, callee, s->value, got);
        vb->n = 0;
        if (vec_grow(vb, nout))
            return;
        for (int k = 0; k < nout; k++)
            vb->node[k] = bad ? -1 : got[k]; /* -1: quiet uses, the error is reported */
        return;
    }
    if (find_vec(sc, nm) && !s->index) {
        ERR(L, s->target_span, "'%s' is a local vector; assign its elements (%s[k] = …) or bind a new name", nm, nm);
        return;
    }
    statename *st = find_state(sc, nm);
    if (s->index && !st) {
        vec_assign(L, s);
        return;
    }
    int val = lower_expr(L, s->value);
    if (val < 0) {
        poison(L, nm);
        return;
    }
    if (st) {
        int slot = state_slot_ref(L, st, s->index, s->target_span);
        if (slot < 0)
            return;
        int old = s->aop == '=' ? -1 : slot_value(L, slot);
        L->slots[slot].cur = combine(L, s->aop, old, val);
        L->slots[slot].assigned = 1;
        return;
    }
    if (!strcmp(nm, "p")) {
        if (sc->is_transform) {
            ERR(L, s->target_span, "a transform cannot assign 'p'; assign 'u', the update it passes on");
            return;
        }
        L->p_cur = combine(L, s->aop, L->p_cur, val);
        L->p_assigned = 1;
        return;
    }
    if (!strcmp(nm, "u") && sc->is_transform) {
        L->u_cur = combine(L, s->aop, L->u_cur, val);
        return;
    }
    if ((i = find_binding(sc->locals, sc->nlocals, nm)) >= 0) {
        if (s->aop == '=' || sc->locals[i].node >= 0)
            sc->locals[i].node = combine(L, s->aop, sc->locals[i].node, val);
        return;
    }
    if (s->aop != '=') {
        ERR(L, s->target_span, "'%s' is not defined yet; '%c=' needs a value to update", nm, s->aop);
        suggest(L, s->target_span, nm);
        poison(L, nm);
        return;
    }
    if (sc->nlocals >= MAXN) {
        ERR(L, s->target_span, "too many local names");
        return;
    }
    sc->locals[sc->nlocals].name = nm;
    sc->locals[sc->nlocals++].node = val;
}

/* ---- tensor classes: `if COND { … } else { … }` on the tensor's rank and name ----
 * A rule's conditions are collected from its body and the optimizers it inlines; compile_def then tries every
 * rank 1 … 8 with every truth of each distinct pattern, records which branches each takes, and lowers one
 * program (a variant) per distinct set of branches. */
enum { MAXPAT = 8, MAXVARIANT = 32, MAXSIG = 128 };

typedef struct classinfo {
    const char *pat[MAXPAT];
    int npat;
    int nif;  /* if statements seen */
    int nerr; /* conditions reported as wrong */
} classinfo;

static int cond_error(classinfo *ci, const srcfile *f, span sp, const char *msg)
{
    diag_error(f, sp, "%s", msg);
    ci->nerr++;
    return -1;
}

/* Checks condition e (reporting what is wrong) and collects its patterns. */
static void cond_check(classinfo *ci, const srcfile *f, const expr *e)
{
    static const char *may = "a class condition may use only ndim(), matches(\"REGEX\"), integer constants, "
                             "comparisons, and, or, not";
    switch (e->kind) {
    case EX_NUM: return;
    case EX_CALL:
        if (!strcmp(e->name, "ndim") && !e->args && !e->str)
            return;
        if (!strcmp(e->name, "matches") && e->str) {
            for (int k = 0; k < ci->npat; k++)
                if (!strcmp(ci->pat[k], e->str))
                    return;
            regex_t re;
            int rc = regcomp(&re, e->str, REG_EXTENDED | REG_NOSUB);
            if (rc) {
                char why[128], msg[512];
                regerror(rc, &re, why, sizeof why);
                snprintf(msg, sizeof msg, "matches(\"%.80s\"): not a POSIX extended regular expression (%s)", e->str,
                         why);
                cond_error(ci, f, e->sp, msg);
                return;
            }
            regfree(&re);
            if (ci->npat == MAXPAT) {
                cond_error(ci, f, e->sp, "a rule's conditions may use at most 8 distinct patterns");
                return;
            }
            ci->pat[ci->npat++] = e->str;
            return;
        }
        if (!strcmp(e->name, "matches"))
            cond_error(ci, f, e->sp, "matches(…) takes one string, the pattern: matches(\"embed\")");
        else if (!strcmp(e->name, "ndim"))
            cond_error(ci, f, e->sp, "ndim() takes no arguments");
        else
            cond_error(ci, f, e->sp, may);
        return;
    case EX_UNARY: cond_check(ci, f, e->a); return;
    case EX_BINARY:
        if (e->op >= OP_LT && e->op <= OP_OR) {
            cond_check(ci, f, e->a);
            cond_check(ci, f, e->b);
        } else
            cond_error(ci, f, e->sp, may);
        return;
    default: cond_error(ci, f, e->sp, may); return;
    }
}

static double cond_eval(const classinfo *ci, const expr *e, int ndim, unsigned mask)
{
    switch (e->kind) {
    case EX_NUM: return e->num;
    case EX_CALL:
        if (!strcmp(e->name, "ndim"))
            return ndim;
        for (int k = 0; k < ci->npat; k++)
            if (!strcmp(ci->pat[k], e->str))
                return (mask >> k) & 1;
        return 0;
    case EX_UNARY: {
        double a = cond_eval(ci, e->a, ndim, mask);
        return e->op == OP_NEG ? -a : a == 0;
    }
    case EX_BINARY: {
        double a = cond_eval(ci, e->a, ndim, mask), b = cond_eval(ci, e->b, ndim, mask);
        switch (e->op) {
        case OP_LT: return a < b;
        case OP_LE: return a <= b;
        case OP_GT: return a > b;
        case OP_GE: return a >= b;
        case OP_EQ: return a == b;
        case OP_NE: return a != b;
        case OP_AND: return a != 0 && b != 0;
        case OP_OR: return a != 0 || b != 0;
        default: return 0;
        }
    }
    default: return 0;
    }
}

/* The optimizer a statement NAME(args); inlines, when it has a body to walk. */
static const def *inlined_def(module *m, const stmt *s)
{
    const def *t = module_find(m, s->value->name);
    return t && t->kind == DEF_OPTIMIZER ? t : NULL;
}

static void class_collect_def(module *m, classinfo *ci, const def *d, int depth);

/* Collects the conditions of body s (and of the optimizers it inlines, depth levels at most). */
static void class_collect(module *m, classinfo *ci, const srcfile *f, const stmt *s, int depth)
{
    for (; s; s = s->next)
        if (s->kind == ST_IF) {
            ci->nif++;
            cond_check(ci, f, s->value);
            class_collect(m, ci, f, s->body, depth);
            class_collect(m, ci, f, s->els, depth);
        } else if (s->kind == ST_CALL && depth < 8) {
            const def *t = inlined_def(m, s);
            if (t)
                class_collect_def(m, ci, t, depth + 1);
        }
}

/* The member of a chain definition that argument a names, or NULL. */
static const def *chain_member(module *m, const arg *a)
{
    return a->value && a->value->kind == EX_CALL ? module_find(m, a->value->name) : NULL;
}

/* Definition d's conditions: its body's, or (a chain) its transforms' in order. */
static void class_collect_def(module *m, classinfo *ci, const def *d, int depth)
{
    if (d->body)
        class_collect(m, ci, d->file, d->body, depth);
    for (const arg *a = d->chain; a && depth < 8; a = a->next) {
        const def *t = chain_member(m, a);
        if (t)
            class_collect_def(m, ci, t, depth + 1);
    }
}

static void class_sig_def(module *m, const classinfo *ci, const def *d, int ndim, unsigned mask, char *sig, int *n,
                          int depth);

/* The branches class (ndim, mask) takes through body s, appended to sig as '0' (then) and '1' (else). */
static void class_sig(module *m, const classinfo *ci, const stmt *s, int ndim, unsigned mask, char *sig, int *n,
                      int depth)
{
    for (; s; s = s->next)
        if (s->kind == ST_IF) {
            int v = cond_eval(ci, s->value, ndim, mask) != 0;
            if (*n < MAXSIG - 1)
                sig[(*n)++] = v ? '0' : '1';
            class_sig(m, ci, v ? s->body : s->els, ndim, mask, sig, n, depth);
        } else if (s->kind == ST_CALL && depth < 8) {
            const def *t = inlined_def(m, s);
            if (t)
                class_sig_def(m, ci, t, ndim, mask, sig, n, depth + 1);
        }
}

static void class_sig_def(module *m, const classinfo *ci, const def *d, int ndim, unsigned mask, char *sig, int *n,
                          int depth)
{
    if (d->body)
        class_sig(m, ci, d->body, ndim, mask, sig, n, depth);
    for (const arg *a = d->chain; a && depth < 8; a = a->next) {
        const def *t = chain_member(m, a);
        if (t)
            class_sig_def(m, ci, t, ndim, mask, sig, n, depth + 1);
    }
}

static int stmts_have_learned(const stmt *s)
{
    for (; s; s = s->next)
        if (s->kind == ST_LEARNED ||
            ((s->kind == ST_IF || s->kind == ST_FOR) && (stmts_have_learned(s->body) || stmts_have_learned(s->els))))
            return 1;
    return 0;
}

static void bind_params(lctx *L, const def *t, const expr *c, scope *ts, scope *outer, const char *what);
static void lower_chain(lctx *L, const def *d, scope *outer);

/* `NAME(args);`: optimizer NAME's body lowered here, its hyper-parameters bound to the arguments (expressions of
 * the outer rule's names, as in chain(…)), its state slots prefixed "NAME.". */
static void lower_inline(lctx *L, const stmt *s, int depth)
{
    scope *outer = L->sc;
    const expr *c = s->value;
    builtin bi;
    if (depth > 0) {
        ERR(L, s->sp,
            "an optimizer is inlined at the top level of a rule body or of an if branch, not inside a for "
            "loop");
        return;
    }
    def *t = module_find(L->mod, c->name);
    if (!t || t->kind != DEF_OPTIMIZER) {
        if (t && t->kind == DEF_TRANSFORM)
            ERR(L, c->name_span,
                "'%s' is a transform; a statement NAME(…); inlines an optimizer (transforms go in "
                "chain(…))",
                c->name);
        else if (t)
            ERR(L, c->name_span, "'%s' is a %s; a statement NAME(…); inlines an optimizer", c->name,
                t->kind == DEF_SCHEDULE ? "schedule" : "model");
        else if (find_builtin(c->name, &bi) || find_learned(outer, c->name))
            ERR(L, c->sp,
                "'%s(…)' computes a value; bind it to a name (x = %s(…);) — a statement NAME(…); inlines an "
                "optimizer",
                c->name, c->name);
        else {
            ERR(L, c->name_span, "unknown optimizer '%s'", c->name);
            if (!L->muted) {
                const char *cand[512];
                int n = 0;
                for (def *x = L->mod->defs; x && n < 512; x = x->next)
                    if (x->kind == DEF_OPTIMIZER)
                        cand[n++] = x->name;
                const char *best = diag_suggest(c->name, cand, n);
                if (best)
                    diag_note(outer->file, c->name_span, "did you mean '%s'?", best);
            }
        }
        return;
    }
    if (outer->is_transform) {
        ERR(L, c->sp, "a transform cannot inline optimizer '%s'", c->name);
        return;
    }
    int cyc = t == L->root;
    for (int i = 0; i < L->ninl; i++)
        cyc |= L->inl[i] == t;
    if (cyc || L->ninl >= 8) {
        ERR(L, c->name_span,
            cyc ? "optimizer '%s' inlines itself"
                : "optimizers inline each other more than 8 deep "
                  "(at '%s')",
            c->name);
        return;
    }
    if (stmts_have_learned(t->body)) {
        ERR(L, c->name_span, "optimizer '%s' has learned parameters; a rule cannot inline it (its θ is its own)",
            c->name);
        return;
    }
    int nth = 0;
    for (int i = 0; i < L->ninlined; i++)
        if (L->inlined[i].d == t)
            nth = ++L->inlined[i].n;
    if (!nth && L->ninlined < 32) {
        L->inlined[L->ninlined].d = t;
        L->inlined[L->ninlined++].n = nth = 1;
    }
    scope *ts = calloc(1, sizeof *ts);
    ts->file = t->file;
    char *prefix = arena_alloc(&L->mod->ar, strlen(t->name) + (outer->prefix ? strlen(outer->prefix) : 0) + 24);
    sprintf(prefix, "%s%s%s", outer->prefix ? outer->prefix : "", outer->prefix ? "." : "", t->name);
    if (nth > 1)
        sprintf(prefix + strlen(prefix), "#%d", nth);
    ts->prefix = prefix;
    bind_params(L, t, c, ts, outer, "optimizer");
    int before = L->nerr, shown = diag_count;
    L->sc = ts;
    L->inl[L->ninl++] = t;
    if (t->chain)
        lower_chain(L, t, ts);
    else
        lower_stmts(L, t->body, 0);
    L->ninl--;
    L->sc = outer;
    if (L->nerr > before && diag_count > shown)
        diag_note(outer->file, c->sp, "in optimizer '%s', inlined here", t->name);
    free(ts);
}

static void lower_stmts(lctx *L, const stmt *s, int depth)
{
    scope *sc = L->sc;
    for (; s; s = s->next) {
        switch (s->kind) {
        case ST_STATE: lower_state(L, s, depth); break;
        case ST_LEARNED: lower_learned(L, s, depth); break;
        case ST_ASSIGN: lower_assign(L, s); break;
        case ST_CALL: lower_inline(L, s, depth); break;
        case ST_IF:
            if (depth > 0) {
                ERR(L, s->sp,
                    "an if on the tensor's class goes at the top level of a rule body (or of a branch), not "
                    "inside a for loop");
                break;
            }
            if (L->cls) {
                L->branch++;
                lower_stmts(L, cond_eval(L->cls, s->value, L->cls_ndim, L->cls_mask) != 0 ? s->body : s->els, 0);
                L->branch--;
            } else if (!L->nerr) /* its condition was reported; else the class search missed it: never lower neither */
                ERR(L, s->sp, "internal error: this if was not seen when the rule's tensor classes were found");
            break;
        case ST_FOR: {
            int lo, hi;
            if (const_int(L, s->lo, "a loop bound", &lo) || const_int(L, s->hi, "a loop bound", &hi))
                break;
            span range = {s->lo->sp.lo, s->hi->sp.hi};
            if (hi - lo > MAXREPEAT) {
                ERR(L, range, "this loop repeats %d times; a for loop may repeat at most %d times (it is unrolled)",
                    hi - lo, MAXREPEAT);
                break;
            }
            /* Nested loops multiply: bound the total number of copies of the innermost body. */
            long copies = (long)L->unroll * (hi > lo ? hi - lo : 0);
            if (copies > MAXCOPIES) {
                ERR(L, range, "nested for loops unroll to %ld copies of this body (at most %d)", copies, MAXCOPIES);
                break;
            }
            if (sc->nfors >= 8) {
                ERR(L, s->var_span, "for loops nest at most 8 deep");
                break;
            }
            const char *hides = find_binding(sc->fors, sc->nfors, s->var) >= 0                   ? "the loop variable"
                                : find_state(sc, s->var)                                         ? "the state"
                                : find_binding(sc->hps, sc->nhps, s->var) >= 0                   ? "the hyper-parameter"
                                : find_binding(sc->locals, sc->nlocals, s->var) >= 0             ? "the local"
                                : reserved(s->var) || (sc->is_transform && !strcmp(s->var, "u")) ? "the predefined name"
                                                                                                 : NULL;
            if (hides) {
                ERR(L, s->var_span, "loop variable '%s' would hide %s '%s'", s->var, hides, s->var);
                break;
            }
            sc->fors[sc->nfors].name = s->var;
            sc->nfors++;
            int saved = L->unroll;
            L->unroll = (int)(copies > 0 ? copies : 1);
            for (int k = lo; k < hi; k++) {
                sc->fors[sc->nfors - 1].node = k;
                lower_stmts(L, s->body, depth + 1);
            }
            L->unroll = saved;
            sc->nfors--;
            break;
        }
        }
    }
}

/* ---- hyper-parameters ---- */
static int eval_default(lctx *L, const expr *e, double *out)
{
    /* Defaults are constant expressions: lower them in an empty scope and demand a constant. */
    scope empty = {.file = L->sc->file};
    scope *saved = L->sc;
    L->sc = &empty;
    int n = lower_expr(L, e);
    L->sc = saved;
    if (n < 0)
        return -1;
    if (L->ir->n[n].op != CELO_OP_CONST) {
        ERR(L, e->sp, "a default value must be a constant");
        return -1;
    }
    if (!isfinite(L->ir->n[n].imm)) {
        ERR(L, e->sp, "a default value must be a finite number (this one is %g)", L->ir->n[n].imm);
        return -1;
    }
    *out = L->ir->n[n].imm;
    return 0;
}

/* Declares the parameters of d as hyper-parameters of the program (optimizer) */
static int declare_hps(lctx *L, const def *d, celo_hparam *hp, int *nhp)
{
    scope *sc = L->sc;
    for (const param *p = d->params; p; p = p->next) {
        if (find_binding(sc->hps, sc->nhps, p->name) >= 0) {
            ERR(L, p->sp, "hyper-parameter '%s' is declared twice", p->name);
            const param *first = d->params;
            while (first != p && strcmp(first->name, p->name))
                first = first->next;
            if (!L->muted && first != p)
                diag_note(sc->file, first->sp, "first declared here");
            continue;
        }
        if (reserved(p->name)) {
            ERR(L, p->sp, "'%s' is predefined and cannot be a hyper-parameter", p->name);
            continue;
        }
        if (sc->nhps >= 64) {
            ERR(L, p->sp, "too many hyper-parameters (at most 64)");
            return -1;
        }
        double v = 0;
        if (!p->def) {
            if (d->kind != DEF_TRANSFORM) /* a transform's may come from each chain(…) that uses it */
                ERR(L, p->sp, "hyper-parameter '%s' needs a default value ('%s = …')", p->name, p->name);
        } else
            eval_default(L, p->def, &v);
        if (hp) {
            hp[*nhp].name = p->name;
            hp[*nhp].def = v;
        }
        sc->hps[sc->nhps].name = p->name;
        sc->hps[sc->nhps++].node = ir_node(L->ir, CELO_OP_HP, -1, -1, -1, *nhp, 0);
        (*nhp)++;
    }
    return 0;
}

/* ---- learning-rate schedules ----
 * A schedule is a factor of one hyper-parameter, celo_scheduled_hp: a rule compiled with schedule s reads
 * lr * s(t) wherever it reads lr. Both are host values, so the product is computed once per step before the first
 * pass, and the runtime passes lr on as the run gives it. This is the one place in celo that knows that name. */
const char *const celo_scheduled_hp = "lr";

/* Schedule s's value in a scope of its own: its parameters bound to nodes pn[], then t, num_steps and pi. -1 after
 * an error (reported). */
static int lower_schedule(lctx *L, const def *s, const int *pn)
{
    scope *sc = calloc(1, sizeof *sc);
    sc->file = s->file;
    int i = 0;
    for (const param *p = s->params; p && i < 64; p = p->next, i++)
        if (pn[i] >= 0) {
            sc->hps[sc->nhps].name = p->name;
            sc->hps[sc->nhps++].node = pn[i];
        }
    scope *saved = L->sc;
    L->sc = sc;
    int v = lower_expr(L, s->value);
    if (v >= 0 && ir_dom(L->ir, v) != CELO_HOST) {
        ERR(L, s->value->sp,
            "a schedule is one number per step, of t, num_steps and its parameters; this depends on "
            "the tensor");
        v = -1;
    }
    L->sc = saved;
    free(sc);
    return v;
}

/* Declares the parameters of schedule s as hyper-parameters first, first + 1, ... into pn[] (-1 for one in error)
 * and hp[] (when not NULL); a parameter without a default must be given where the schedule is used. */
static void schedule_params(lctx *L, const def *s, int first, int *pn, celo_hparam *hp)
{
    scope *saved = L->sc, own = {.file = s->file};
    L->sc = &own;
    int i = 0;
    for (const param *p = s->params; p; p = p->next, i++) {
        if (i >= 64) {
            ERR(L, p->sp, "too many parameters (at most 64)");
            break;
        }
        pn[i] = -1;
        const param *q = s->params;
        while (q != p && strcmp(q->name, p->name))
            q = q->next;
        if (q != p) {
            ERR(L, p->sp, "parameter '%s' is declared twice", p->name);
            if (!L->muted)
                diag_note(s->file, q->sp, "first declared here");
        } else if (reserved(p->name))
            ERR(L, p->sp, "'%s' is predefined and cannot be a parameter", p->name);
        else {
            double v = 0;
            if (p->def)
                eval_default(L, p->def, &v);
            if (hp)
                hp[i] = (celo_hparam){p->name, v};
            pn[i] = ir_node(L->ir, CELO_OP_HP, -1, -1, -1, first + i, 0);
        }
    }
    L->sc = saved;
}

int schedule_check(module *m, def *s)
{
    irbuild ir;
    ir_init(&ir);
    scope own = {.file = s->file};
    lctx L = {.mod = m, .ir = &ir, .sc = &own};
    int pn[64];
    schedule_params(&L, s, 0, pn, NULL);
    if (!L.nerr)
        lower_schedule(&L, s, pn);
    ir_free(&ir);
    return L.nerr;
}

/* The rule's lr becomes lr * schedule: the schedule's parameters follow the rule's hyper-parameters. */
static void apply_schedule(lctx *L, const def *d, celo_hparam *hp, int *nhp)
{
    const def *s = L->sched;
    scope *sc = L->sc;
    int n = 0, pn[64];
    for (const param *p = s->params; p; p = p->next)
        n++;
    if (*nhp + n > 64) {
        ERR(L, d->name_span, "'%s' with schedule '%s' has too many hyper-parameters (at most 64)", d->name, s->name);
        return;
    }
    for (const param *p = s->params; p; p = p->next)
        if (find_binding(sc->hps, sc->nhps, p->name) >= 0) {
            ERR(L, d->name_span, "optimizer '%s' and schedule '%s' both have a hyper-parameter '%s'", d->name, s->name,
                p->name);
            return;
        }
    schedule_params(L, s, *nhp, pn, hp + *nhp);
    *nhp += n;
    int f = lower_schedule(L, s, pn);
    int lr = find_binding(sc->hps, sc->nhps, celo_scheduled_hp);
    if (lr < 0)
        ERR(L, d->name_span, "a schedule scales the hyper-parameter '%s', and optimizer '%s' has none",
            celo_scheduled_hp, d->name);
    else if (f >= 0)
        sc->hps[lr].node = N(L, CELO_OP_MUL, sc->hps[lr].node, f, -1);
}

/* Binds the hyper-parameters of transform or optimizer t in scope ts to the arguments of call c, evaluated in the
 * outer scope (what: "transform" or "optimizer", for the messages). */
static void bind_params(lctx *L, const def *t, const expr *c, scope *ts, scope *outer, const char *what)
{
    int npos = 0;
    for (const param *p = t->params; p; p = p->next) {
        if (find_binding(ts->hps, ts->nhps, p->name) >= 0 || reserved(p->name) || !strcmp(p->name, "u") ||
            ts->nhps >= 64) {
            L->sc = ts;
            if (ts->nhps >= 64)
                ERR(L, p->sp, "too many hyper-parameters (at most 64)");
            else if (find_binding(ts->hps, ts->nhps, p->name) >= 0)
                ERR(L, p->sp, "hyper-parameter '%s' is declared twice", p->name);
            else
                ERR(L, p->sp, "'%s' is predefined and cannot be a hyper-parameter", p->name);
            L->sc = outer;
            if (ts->nhps >= 64)
                break;
            continue;
        }
        int val = -1;
        const arg *given = NULL;
        int k = 0;
        for (const arg *a = c->args; a; a = a->next) {
            if (a->name ? !strcmp(a->name, p->name) : k++ == npos)
                given = a;
        }
        if (given)
            val = lower_expr(L, given->value);
        else if (p->def) {
            double v;
            L->sc = ts;
            /* an inlined optimizer reads a default as the rule alone reads it: a float32 kernel argument */
            if (eval_default(L, p->def, &v) == 0)
                val = ir_const(L->ir, strcmp(what, "optimizer") ? v : (double)(float)v);
            L->sc = outer;
        } else {
            ERR(L, c->sp, "%s '%s' needs a value for '%s' (it has no default)", what, t->name, p->name);
            if (!L->muted)
                diag_note(t->file, p->sp, "'%s' is declared here", p->name);
        }
        if (val < 0)
            val = ir_const(L->ir, 0);
        ts->hps[ts->nhps].name = p->name;
        ts->hps[ts->nhps++].node = val;
        npos++;
    }
    int pos = 0;
    for (const arg *a = c->args; a; a = a->next) {
        if (a->name) {
            const param *p = t->params;
            while (p && strcmp(p->name, a->name))
                p = p->next;
            if (!p) {
                ERR(L, a->name_span, "%s '%s' has no hyper-parameter '%s'", what, t->name, a->name);
                if (!L->muted) {
                    const char *cand[64];
                    int n = 0;
                    for (p = t->params; p && n < 64; p = p->next)
                        cand[n++] = p->name;
                    const char *best = diag_suggest(a->name, cand, n);
                    if (best)
                        diag_note(outer->file, a->name_span, "did you mean '%s'?", best);
                }
            }
        } else if (++pos == npos + 1) {
            int given = pos;
            for (const arg *b = a->next; b; b = b->next)
                given += !b->name;
            ERR(L, a->value->sp, "%s '%s' takes %d hyper-parameter%s, got %d", what, t->name, npos,
                npos == 1 ? "" : "s", given);
        }
    }
}

static void lower_chain(lctx *L, const def *d, scope *outer)
{
    L->u_cur = N(L, CELO_OP_G, -1, -1, -1);
    int idx = 0;
    for (const arg *m = d->chain; m; m = m->next, idx++) {
        const expr *c = m->value;
        if (c->kind != EX_CALL && c->kind != EX_NAME) {
            ERR(L, c->sp, "chain(…) takes transforms, like scale_by_adam(b1 = 0.9)");
            continue;
        }
        def *t = module_find(L->mod, c->name);
        if (!t || t->kind != DEF_TRANSFORM) {
            if (t)
                ERR(L, c->name_span, "'%s' is %s, not a transform; chain(…) takes transforms", c->name,
                    t->kind == DEF_SCHEDULE ? "a schedule"
                    : t->kind == DEF_MODEL  ? "a model"
                                            : "an optimizer");
            else
                ERR(L, c->name_span, "unknown transform '%s'", c->name);
            if (!t && !L->muted) {
                const char *cand[512];
                int n = 0;
                for (def *x = L->mod->defs; x && n < 512; x = x->next)
                    if (x->kind == DEF_TRANSFORM)
                        cand[n++] = x->name;
                const char *best = diag_suggest(c->name, cand, n);
                if (best)
                    diag_note(outer->file, c->name_span, "did you mean '%s'?", best);
            }
            continue;
        }
        /* Bind the transform's parameters: arguments are evaluated in the optimizer's scope. */
        scope *ts = calloc(1, sizeof *ts);
        ts->file = t->file;
        ts->is_transform = 1;
        /* an optimizer inlined into another rule (NAME(…);) has a prefix of its own: its transforms' slots go under it
         */
        const char *up = outer->prefix;
        char *prefix = arena_alloc(&L->mod->ar, strlen(t->name) + (up ? strlen(up) : 0) + 24);
        int dup = 0;
        for (const arg *m2 = d->chain; m2 != m; m2 = m2->next)
            dup += m2->value->name && !strcmp(m2->value->name, t->name);
        sprintf(prefix, "%s%s%s", up ? up : "", up ? "." : "", t->name);
        if (dup)
            sprintf(prefix + strlen(prefix), "#%d", dup + 1);
        ts->prefix = prefix;
        bind_params(L, t, c, ts, outer, "transform");
        /* Errors in the transform's body are reported where they are, with a note to this use of it. */
        int before = L->nerr, shown = diag_count;
        L->sc = ts;
        lower_stmts(L, t->body, 0);
        L->sc = outer;
        if (L->nerr > before && diag_count > shown)
            diag_note(outer->file, c->sp, "in transform '%s', used here", t->name);
        scope_free(ts);
    }
    L->p_cur = N(L, CELO_OP_ADD, L->p_cur, L->u_cur, -1);
    L->p_assigned = 1;
}

/* One lowering of the whole rule with the given slot-domain guesses. */
static void lower_once(lctx *L, const def *d, celo_hparam *hp, int *nhp)
{
    scope *sc = calloc(1, sizeof *sc);
    sc->file = d->file;
    L->sc = sc;
    L->nslots = 0;
    L->nth = 0;
    L->theta_len = 0;
    L->unroll = 1;
    L->root = d;
    L->ninl = L->ninlined = L->branch = 0;
    L->p_cur = N(L, CELO_OP_P, -1, -1, -1);
    L->p_assigned = 0;
    *nhp = 0;
    declare_hps(L, d, hp, nhp);
    if (L->sched)
        apply_schedule(L, d, hp, nhp);
    if (d->kind == DEF_TRANSFORM && L->alone) {
        sc->is_transform = 1;
        sc->prefix = d->name;
        L->u_cur = N(L, CELO_OP_G, -1, -1, -1);
        lower_stmts(L, d->body, 0);
        L->p_cur = N(L, CELO_OP_ADD, L->p_cur, L->u_cur, -1);
        L->p_assigned = 1;
    } else if (d->kind == DEF_TRANSFORM) {
        ERR(L, d->name_span, "'%s' is a transform; use it inside chain(…) of an optimizer", d->name);
    } else if (d->chain) {
        lower_chain(L, d, sc);
    } else {
        lower_stmts(L, d->body, 0);
        if (!L->p_assigned && !L->nerr)
            ERR(L, d->name_span, "optimizer '%s' never assigns 'p'", d->name);
    }
    scope_free(sc);
    L->sc = NULL;
}

/* One program of rule d: the whole rule, or (ci not NULL) its variant for class (ndim, mask), named vname.
 * reported (or NULL): the errors printed by the other variants, so that an error outside the branches is printed
 * once. */
static rule *compile_variant(module *m, def *d, int alone, const def *sched, const classinfo *ci, int ndim,
                             unsigned mask, const char *vname, lctx *reported)
{
    int guess[MAXN];
    for (int i = 0; i < MAXN; i++)
        guess[i] = CELO_SCALAR;
    irbuild ir;
    lctx L = {.mod = m, .guess = guess, .alone = alone, .sched = sched, .cls = ci, .cls_ndim = ndim, .cls_mask = mask};
    celo_hparam hp[64];
    int nhp = 0;
    for (int iter = 0;; iter++) {
        ir_init(&ir);
        memset(L.slots, 0, sizeof L.slots);
        L.ir = &ir;
        L.nerr = 0;
        L.quiet = 1;
        lower_once(&L, d, hp, &nhp);
        if (L.nerr || iter > 8)
            break;
        int changed = 0;
        for (int s = 0; s < L.nslots; s++) {
            int v = L.slots[s].assigned ? L.slots[s].cur : -1;
            int dom = v >= 0 ? (int)dom_join((celo_domain)guess[s], (celo_domain)ir.n[v].dom) : guess[s];
            if (dom < CELO_SCALAR)
                dom = CELO_SCALAR;
            if (dom != guess[s]) {
                guess[s] = dom;
                changed = 1;
            }
        }
        if (!changed)
            break;
        ir_free(&ir);
    }
    if (L.nerr) {
        /* Report: lower once more, loudly. */
        ir_free(&ir);
        ir_init(&ir);
        memset(L.slots, 0, sizeof L.slots);
        L.ir = &ir;
        L.nerr = 0;
        L.quiet = 0;
        if (reported) {
            memcpy(L.seen, reported->seen, sizeof L.seen);
            L.nseen = reported->nseen;
        }
        lower_once(&L, d, hp, &nhp);
        if (reported) {
            memcpy(reported->seen, L.seen, sizeof L.seen);
            reported->nseen = L.nseen;
        }
        ir_free(&ir);
        return NULL;
    }

    /* Keep what the outputs need, numbered canonically: a depth-first post-order from the outputs (p, then each
     * state slot's value and initial value), so that the same computation gets the same IR whatever order the
     * source built it in: chain(...) and the hand-written rule dump identically. */
    int nn = ir.nn;
    /* Operands of commutative operations are ordered by a structural hash, not by creation order. */
    unsigned long long *sh = malloc((size_t)(nn ? nn : 1) * sizeof *sh);
    for (int i = 0; i < nn; i++) {
        celo_node *X = &ir.n[i];
        if (ir_op(X->op)->commutes && sh[X->a] > sh[X->b]) {
            int tmp = X->a;
            X->a = X->b;
            X->b = tmp;
        }
        unsigned long long bits;
        memcpy(&bits, &X->imm, sizeof bits);
        unsigned long long h = 1469598103934665603ull;
        unsigned long long f[7] = {X->op,
                                   X->dom,
                                   (unsigned long long)X->aux,
                                   bits,
                                   X->a >= 0 ? sh[X->a] : 0,
                                   X->b >= 0 ? sh[X->b] : 0,
                                   X->c >= 0 ? sh[X->c] : 0};
        for (int q = 0; q < 7; q++) {
            h ^= f[q] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
            h *= 1099511628211ull;
        }
        sh[i] = h;
    }
    free(sh);
    int *map = malloc((size_t)nn * sizeof *map);
    int *order = malloc((size_t)nn * sizeof *order);
    int *stack = malloc((size_t)(2 * nn + 2) * sizeof *stack);
    for (int i = 0; i < nn; i++)
        map[i] = -1;
    int nstate = L.nslots, k = 0;
    int roots[1 + 2 * MAXN], nroots = 0;
    roots[nroots++] = L.p_cur;
    for (int s = 0; s < nstate; s++) {
        if (L.slots[s].assigned)
            roots[nroots++] = L.slots[s].cur;
        roots[nroots++] = L.slots[s].init;
    }
    for (int q = 0; q < nroots; q++) {
        int sp = 0;
        if (map[roots[q]] != -1)
            continue;
        stack[sp++] = roots[q];
        while (sp) {
            int x = stack[sp - 1];
            if (map[x] >= 0) {
                sp--;
                continue;
            }
            const celo_node *X = &ir.n[x];
            int ops[3] = {X->a, X->b, X->c}, pushed = 0;
            for (int o = 2; o >= 0; o--)
                if (ops[o] >= 0 && map[ops[o]] == -1) {
                    stack[sp++] = ops[o];
                    pushed = 1;
                }
            if (!pushed || map[x] == -2) {
                map[x] = k;
                order[k++] = x;
                sp--;
            } else
                map[x] = -2; /* operands pushed; number it when we come back */
        }
    }
    rule *r = calloc(1, sizeof *r);
    r->src = d;
    r->sched = sched;
    char name[2 * 256];
    snprintf(name, sizeof name, "%s%s%s", d->name, sched ? "@" : "", sched ? sched->name : "");
    if (vname)
        snprintf(name, sizeof name, "%s", vname);
    r->nodes = calloc((size_t)(k ? k : 1), sizeof *r->nodes);
    for (int q = 0; q < k; q++) {
        celo_node x = ir.n[order[q]];
        if (x.a >= 0)
            x.a = map[x.a];
        if (x.b >= 0)
            x.b = map[x.b];
        if (x.c >= 0)
            x.c = map[x.c];
        r->nodes[q] = x;
    }
    free(order);
    free(stack);
    size_t strsz = strlen(name) + 1;
    for (int i = 0; i < nhp; i++)
        strsz += strlen(hp[i].name) + 1;
    for (int s = 0; s < nstate; s++)
        strsz += strlen(L.slots[s].name) + 1;
    for (int i = 0; i < L.nth; i++)
        strsz += strlen(L.th[i].name) + 1;
    r->strings = malloc(strsz);
    char *sp = r->strings;
#define PUT(dst, src)          \
    do {                       \
        strcpy(sp, src);       \
        dst = sp;              \
        sp += strlen(src) + 1; \
    } while (0)
    PUT(r->prog.name, name);
    r->hp = calloc((size_t)(nhp ? nhp : 1), sizeof *r->hp);
    for (int i = 0; i < nhp; i++) {
        PUT(r->hp[i].name, hp[i].name);
        r->hp[i].def = hp[i].def;
    }
    r->state = calloc((size_t)(nstate ? nstate : 1), sizeof *r->state);
    for (int s = 0; s < nstate; s++) {
        PUT(r->state[s].name, L.slots[s].name);
        r->state[s].dom = (uint8_t)guess[s];
        r->state[s].init = map[L.slots[s].init];
        r->state[s].value = L.slots[s].assigned ? map[L.slots[s].cur] : -1;
    }
    r->theta = calloc((size_t)(L.nth ? L.nth : 1), sizeof *r->theta);
    for (int i = 0; i < L.nth; i++) {
        PUT(r->theta[i].name, L.th[i].name);
        r->theta[i].offset = L.th[i].offset;
        r->theta[i].ndim = L.th[i].ndim;
        memcpy(r->theta[i].shape, L.th[i].shape, sizeof r->theta[i].shape);
        r->theta[i].init = L.th[i].init;
        r->theta[i].fan_in = L.th[i].fan_in;
    }
#undef PUT
    r->prog.ntheta = L.nth;
    r->prog.theta = r->theta;
    r->prog.theta_len = L.theta_len;
    r->prog.nnodes = k;
    r->prog.nodes = r->nodes;
    r->prog.nhp = nhp;
    r->prog.hp = r->hp;
    r->prog.nstate = nstate;
    r->prog.state = r->state;
    r->prog.p_value = map[L.p_cur];
    for (int q = 0; q < k; q++)
        if (r->nodes[q].op == CELO_OP_LOSS)
            r->prog.flags |= CELO_PROG_READS_LOSS;
    free(map);
    ir_free(&ir);
    rule_fuse(r);
    if (r->prog.npass > 255) { /* celo_node.pass is a byte */
        diag_error(d->file, d->name_span,
                   "'%s' needs %d passes over memory (at most 255): reductions of values "
                   "that need reductions nest too deeply",
                   d->name, r->prog.npass);
        rule_free(r);
        return NULL;
    }
    return r;
}

/* A class in words: the ranks ndset (bit r - 1 for rank r) with the pattern truths val on the bits care. */
static void class_term(const classinfo *ci, unsigned ndset, unsigned care, unsigned val, char *out, size_t n)
{
    size_t k = strlen(out);
    int parts = 0;
    if (ndset != 0xff) {
        int lo = 0, hi = 7;
        while (!(ndset >> lo & 1))
            lo++;
        while (!(ndset >> hi & 1))
            hi--;
        if (ndset != ((0xffu >> (7 - hi)) & (0xffu << lo))) { /* not one interval */
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "ndim() in {");
            for (int r = 0, first = 1; r < 8; r++)
                if (ndset >> r & 1) {
                    k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%s%d", first ? "" : ", ", r + 1);
                    first = 0;
                }
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "}");
        } else if (lo == hi)
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "ndim() == %d", lo + 1);
        else if (lo == 0)
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "ndim() <= %d", hi + 1);
        else if (hi == 7)
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "ndim() >= %d", lo + 1);
        else
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "ndim() >= %d and ndim() <= %d", lo + 1, hi + 1);
        parts++;
    }
    for (int b = 0; b < ci->npat; b++)
        if (care >> b & 1)
            k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%s%smatches(\"%s\")", parts++ ? " and " : "",
                                  val >> b & 1 ? "" : "not ", ci->pat[b]);
    if (!parts)
        snprintf(out + k, k < n ? n - k : 0, "every tensor");
}

/* Variant v's class in words, from the class map: one term per pattern truth, terms that differ in one pattern
 * merged. */
static char *class_words(const classinfo *ci, const uint8_t *map, int v)
{
    unsigned nm = 1u << ci->npat, nt = 0;
    struct {
        unsigned nd, care, val;
    } t[256];
    for (unsigned m = 0; m < nm; m++) {
        unsigned nd = 0;
        for (int r = 0; r < 8; r++)
            nd |= (unsigned)(map[(unsigned)r * nm + m] == v) << r;
        if (nd) {
            t[nt].nd = nd;
            t[nt].care = nm - 1;
            t[nt++].val = m;
        }
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (unsigned i = 0; i < nt && !changed; i++)
            for (unsigned j = i + 1; j < nt && !changed; j++) {
                unsigned x = t[i].val ^ t[j].val;
                if (t[i].care != t[j].care || !x || (x & (x - 1)) || !(x & t[i].care))
                    continue;
                if (t[i].nd == t[j].nd) { /* the same ranks either way: the pattern does not matter */
                    t[i].care &= ~x;
                    t[i].val &= ~x;
                    t[j] = t[--nt];
                    changed = 1;
                } else if ((t[i].nd & t[j].nd) == t[i].nd || (t[i].nd & t[j].nd) == t[j].nd) {
                    unsigned s = (t[i].nd & t[j].nd) == t[i].nd ? i : j; /* its ranks are in the other's too */
                    t[s].care &= ~x;
                    t[s].val &= ~x;
                    changed = 1;
                }
            }
    }
    char buf[4096] = "";
    for (unsigned i = 0; i < nt; i++) {
        if (i)
            strncat(buf, " or ", sizeof buf - strlen(buf) - 1);
        class_term(ci, t[i].nd, t[i].care, t[i].val, buf, sizeof buf);
    }
    return strdup(buf);
}

/* Rule d: one program, or (its body branches on the tensor's class) one variant per class under a program that
 * only chooses (celort.h). */
static rule *compile_def(module *m, def *d, int alone, const def *sched)
{
    classinfo ci = {0};
    class_collect_def(m, &ci, d, 0);
    if (ci.nerr)
        return NULL;
    if (!ci.nif)
        return compile_variant(m, d, alone, sched, NULL, 0, 0, NULL, NULL);
    unsigned nm = 1u << ci.npat;
    uint8_t *map = malloc(8 * nm);
    char sigs[MAXVARIANT][MAXSIG];
    int rep_nd[MAXVARIANT], nv = 0;
    unsigned rep_mask[MAXVARIANT];
    for (int r = 1; r <= 8; r++)
        for (unsigned mask = 0; mask < nm; mask++) {
            char sig[MAXSIG];
            int n = 0;
            class_sig_def(m, &ci, d, r, mask, sig, &n, 0);
            sig[n] = 0;
            int v = 0;
            while (v < nv && strcmp(sigs[v], sig))
                v++;
            if (v == nv) {
                if (nv == MAXVARIANT) {
                    diag_error(d->file, d->name_span, "'%s' has more than %d tensor classes", d->name, MAXVARIANT);
                    free(map);
                    return NULL;
                }
                strcpy(sigs[nv], sig);
                rep_nd[nv] = r;
                rep_mask[nv++] = mask;
            }
            map[(unsigned)(r - 1) * nm + mask] = (uint8_t)v;
        }
    if (nv == 1) { /* the conditions do not tell tensors apart: one program, as a rule without classes */
        free(map);
        return compile_variant(m, d, alone, sched, &ci, rep_nd[0], rep_mask[0], NULL, NULL);
    }
    char base[512];
    snprintf(base, sizeof base, "%s%s%s", d->name, sched ? "@" : "", sched ? sched->name : "");
    rule *top = calloc(1, sizeof *top);
    top->variants = calloc((size_t)nv, sizeof *top->variants);
    top->varprogs = calloc((size_t)nv, sizeof *top->varprogs);
    top->classmap = map;
    lctx *reported = calloc(1, sizeof *reported);
    int failed = 0;
    for (int v = 0; v < nv; v++) {
        char vname[600];
        snprintf(vname, sizeof vname, "%s/%d", base, v);
        rule *vr = compile_variant(m, d, alone, sched, &ci, rep_nd[v], rep_mask[v], vname, reported);
        if (!vr) { /* reported; the other classes are still compiled, for their errors */
            failed = 1;
            continue;
        }
        vr->cls = class_words(&ci, map, v);
        vr->prog.cls = vr->cls;
        top->variants[top->nvariants++] = vr;
        top->varprogs[v] = &vr->prog;
    }
    free(reported);
    if (failed) {
        rule_free(top);
        return NULL;
    }
    const rule *v0 = top->variants[0];
    top->src = d;
    top->sched = sched;
    top->strings = strdup(base);
    top->patterns = calloc((size_t)ci.npat + 1, sizeof *top->patterns);
    for (int k = 0; k < ci.npat; k++)
        top->patterns[k] = strdup(ci.pat[k]);
    /* the same hyper-parameters and θ in every variant: the first one's */
    top->hp = calloc((size_t)v0->prog.nhp + 1, sizeof *top->hp);
    memcpy(top->hp, v0->hp, (size_t)v0->prog.nhp * sizeof *top->hp);
    top->theta = calloc((size_t)v0->prog.ntheta + 1, sizeof *top->theta);
    memcpy(top->theta, v0->theta, (size_t)v0->prog.ntheta * sizeof *top->theta);
    top->nodes = calloc(1, sizeof *top->nodes);
    top->state = calloc(1, sizeof *top->state);
    top->passes = calloc(1, sizeof *top->passes);
    top->prog = (celo_program){.name = top->strings,
                               .nodes = top->nodes,
                               .nhp = v0->prog.nhp,
                               .hp = top->hp,
                               .state = top->state,
                               .p_value = -1,
                               .passes = top->passes,
                               .ntheta = v0->prog.ntheta,
                               .theta = top->theta,
                               .theta_len = v0->prog.theta_len,
                               .nvariant = nv,
                               .variant = top->varprogs,
                               .npattern = ci.npat,
                               .pattern = (const char *const *)top->patterns,
                               .classmap = map};
    for (int v = 0; v < nv; v++) /* what a caller must give (the loss) is what any class needs */
        top->prog.flags |= top->variants[v]->prog.flags;
    return top;
}

void rule_free(rule *r)
{
    if (!r)
        return;
    free(r->nodes);
    free(r->hp);
    free(r->state);
    free(r->passes);
    free(r->theta);
    free(r->strings);
    for (int v = 0; v < r->nvariants; v++)
        rule_free(r->variants[v]);
    free(r->variants);
    free(r->varprogs);
    free(r->classmap);
    for (int k = 0; r->patterns && r->patterns[k]; k++)
        free(r->patterns[k]);
    free(r->patterns);
    free(r->cls);
    free(r);
}

rule *rule_compile(module *m, def *d)
{
    return compile_def(m, d, 0, NULL);
}

rule *rule_compile_scheduled(module *m, def *d, const def *sched)
{
    return compile_def(m, d, 0, sched);
}

rule *rule_compile_transform(module *m, def *d)
{
    return compile_def(m, d, 1, NULL);
}
