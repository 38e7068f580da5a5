/* model.c — `model` definitions: a body of `tap = block(input, args…);` statements, checked on its own
 * (model_check), and turned with a task's arguments and data into the celo_block_desc list the runtime builds the
 * model from (model_build). The shapes go through the runtime's own checks (celo_model_check_desc) here, so a
 * width that does not fit is an error at its block when the file is checked, not at step 1. */
#include "model.h"

#include "diag.h"
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS  32
#define WIDTH_MAX   (1 << 24) /* the runtime's largest dimension */
#define VOCAB_CHECK 256       /* stands in for the text's vocabulary while the shapes are checked (it loads later) */

/* The blocks a model can use: the input, then npos arguments by position or name, then the named-only ones. */
typedef struct {
    const char *name;
    celo_block_kind kind;
    celo_activation act;
    celo_pool_kind pool;
    int npos;
    const char *arg[8]; /* positional, then named-only; NULL after the last */
} block_kind;

static const block_kind kinds[] = {
    {"linear", CELO_BLOCK_LINEAR, 0, 0, 1, {"out", "bias"}},
    {"relu", CELO_BLOCK_ACT, CELO_ACT_RELU, 0, 0, {NULL}},
    {"gelu", CELO_BLOCK_ACT, CELO_ACT_GELU, 0, 0, {NULL}},
    {"tanh", CELO_BLOCK_ACT, CELO_ACT_TANH, 0, 0, {NULL}},
    {"conv", CELO_BLOCK_CONV, 0, 0, 2, {"channels", "kernel", "stride", "pad"}},
    {"maxpool", CELO_BLOCK_POOL, 0, CELO_POOL_MAX, 1, {"k"}},
    {"avgpool", CELO_BLOCK_POOL, 0, CELO_POOL_AVG, 1, {"k"}},
    {"layernorm", CELO_BLOCK_LAYERNORM, 0, 0, 0, {NULL}},
    {"embed", CELO_BLOCK_EMBED, 0, 0, 2, {"vocab", "dim"}},
    {"positions", CELO_BLOCK_POSITION, 0, 0, 1, {"ctx"}},
    {"attention", CELO_BLOCK_ATTENTION, 0, 0, 1, {"heads"}},
    {"lstm", CELO_BLOCK_LSTM, 0, 0, 1, {"hidden", "layer"}},
    {"linattn", CELO_BLOCK_LINATTN, 0, 0, 1, {"heads", "feature", "chunk"}},
    {"mamba", CELO_BLOCK_MAMBA, 0, 0, 1, {"heads", "state", "conv", "expand", "feature", "normalize", "chunk"}},
};
#define NARGS 8

/* arguments that take a name rather than a number */
static int named_arg(const char *key)
{
    return !strcmp(key, "feature") || !strcmp(key, "normalize");
}
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

typedef struct {
    double v;
    int vocab; /* the text's vocabulary, known when the data loads (CELO_WIDTH_VOCAB in the plan) */
} val;

typedef struct {
    char name[CELO_TAP_NAME_MAX]; /* as the body writes it: fc1, or h.2 for h[l] with l = 2 */
    char tap[CELO_TAP_NAME_MAX];
    span sp;
    int alias; /* `name = other;`: may name another tap later (y = h[l] in a loop) */
} binding;

typedef struct {
    const def *d;
    const srcfile *f; /* d's file */
    int build;        /* 0: model_check (parameters have no values); 1: model_build */
    int nerr, oom;
    int np;
    const char *pname[MAX_PARAMS];
    val pv[MAX_PARAMS];
    int nvar; /* the loop variables in scope, with their values */
    const char *var[8];
    int varv[8];
    binding *names; /* the taps and aliases written so far */
    int nnames, capnames;
    celo_block_desc *blocks;
    span *bsp; /* each block's expression, where its errors go */
    int nb, capb;
} mctx;

#define MERR(M, sp, ...)                     \
    do {                                     \
        (M)->nerr++;                         \
        diag_error((M)->f, sp, __VA_ARGS__); \
    } while (0)

static void suggest(const srcfile *f, span sp, const char *s, const char *const *cand, int n)
{
    const char *best = diag_suggest(s, cand, n);
    if (best)
        diag_note(f, sp, "did you mean '%s'?", best);
}

static int param_index(const mctx *M, const char *name)
{
    for (int i = 0; i < M->np; i++)
        if (!strcmp(M->pname[i], name))
            return i;
    return -1;
}

static const binding *find_name(const mctx *M, const char *name)
{
    for (int i = 0; i < M->nnames; i++)
        if (!strcmp(M->names[i].name, name))
            return &M->names[i];
    return NULL;
}

/* A number in the body: numbers and the parameters (those before it, for a default) with + - * /. */
static int eval(mctx *M, const expr *e, val *out)
{
    val a, b;
    memset(out, 0, sizeof *out);
    switch (e->kind) {
    case EX_NUM: out->v = e->num; return 0;
    case EX_NAME: {
        for (int k = 0; k < M->nvar; k++)
            if (!strcmp(M->var[k], e->name)) {
                out->v = M->varv[k];
                return 0;
            }
        int i = param_index(M, e->name);
        if (i >= 0) {
            *out = M->build ? M->pv[i] : (val){1, 0};
            return 0;
        }
        if (!strcmp(e->name, "x") || find_name(M, e->name))
            MERR(M, e->sp, "'%s' is a tap, not a number", e->name);
        else {
            MERR(M, e->sp, "unknown parameter '%s'", e->name);
            suggest(M->f, e->sp, e->name, M->pname, M->np);
        }
        return -1;
    }
    case EX_UNARY:
        if (e->op != OP_NEG)
            break;
        if (eval(M, e->a, &a))
            return -1;
        if (a.vocab)
            goto vocab;
        out->v = -a.v;
        return 0;
    case EX_BINARY:
        if (e->op != OP_ADD && e->op != OP_SUB && e->op != OP_MUL && e->op != OP_DIV)
            break;
        if (eval(M, e->a, &a) || eval(M, e->b, &b))
            return -1;
        if (a.vocab || b.vocab)
            goto vocab;
        if (e->op == OP_DIV && b.v == 0 && M->build) {
            MERR(M, e->sp, "division by zero");
            return -1;
        }
        out->v = e->op == OP_ADD   ? a.v + b.v
                 : e->op == OP_SUB ? a.v - b.v
                 : e->op == OP_MUL ? a.v * b.v
                 : b.v != 0        ? a.v / b.v
                                   : 1;
        return 0;
    default: break;
    }
    MERR(M, e->sp, "a width is a number or an arithmetic expression (+ - * /) of the model's parameters");
    return -1;
vocab:
    MERR(M, e->sp, "vocab is known only when the text loads: use it as a width on its own");
    return -1;
}

/* v as an integer in [lo, hi], or an error at e */
static int want_int(mctx *M, const expr *e, const val *v, const char *what, int lo, int hi, int *out)
{
    *out = lo;
    if (!M->build)
        return 0;
    if (v->vocab) {
        MERR(M, e->sp, "%s cannot be the text's vocabulary (a linear's out and an embedding's vocab can)", what);
        return -1;
    }
    if (v->v != floor(v->v) || v->v < lo || v->v > hi) {
        MERR(M, e->sp, "%s must be an integer from %d to %d (got %g)", what, lo, hi, v->v);
        return -1;
    }
    *out = (int)v->v;
    return 0;
}

/* a width: a positive integer, or (vocab_ok) the text's vocabulary */
static int width(mctx *M, const expr *e, const val *v, const char *what, int vocab_ok, int *out)
{
    if (M->build && v->vocab && vocab_ok) {
        *out = CELO_WIDTH_VOCAB;
        return 0;
    }
    return want_int(M, e, v, what, 1, WIDTH_MAX, out);
}

static const char *const features[] = {"identity", "elu", "mlp", "hedgehog"}; /* celo_feature_map's order */
static const char *const bools[] = {"false", "true"};

/* e as one of the n names (its index in *out), or an error at e listing them */
static int pick(mctx *M, const expr *e, const char *what, const char *const *names, int n, int *out)
{
    for (int i = 0; e->kind == EX_NAME && i < n; i++)
        if (!strcmp(e->name, names[i])) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? " | " : "", names[i]);
    MERR(M, e->sp, "%s must be %s", what, list);
    if (e->kind == EX_NAME)
        suggest(M->f, e->sp, e->name, names, n);
    return -1;
}

static celo_block_desc *new_block(mctx *M, span sp)
{
    if (M->nb == M->capb) {
        int cap = M->capb ? 2 * M->capb : 16;
        celo_block_desc *b = realloc(M->blocks, (size_t)cap * sizeof *b);
        if (b)
            M->blocks = b;
        span *s = realloc(M->bsp, (size_t)cap * sizeof *s);
        if (s)
            M->bsp = s;
        if (!b || !s) {
            M->oom = 1;
            return NULL;
        }
        M->capb = cap;
    }
    celo_block_desc *b = &M->blocks[M->nb];
    memset(b, 0, sizeof *b);
    M->bsp[M->nb++] = sp;
    return b;
}

/* name (written at sp) names tap from now on; "" after an error in its statement (its readers stay quiet) */
static int add_name(mctx *M, const char *name, const char *tap, span sp, int alias)
{
    if (M->nnames == M->capnames) {
        int cap = M->capnames ? 2 * M->capnames : 16;
        binding *b = realloc(M->names, (size_t)cap * sizeof *b);
        if (!b) {
            M->oom = 1;
            return -1;
        }
        M->names = b, M->capnames = cap;
    }
    binding *b = &M->names[M->nnames++];
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->tap, sizeof b->tap, "%s", tap);
    b->sp = sp;
    b->alias = alias;
    return 0;
}

/* `name` (written at sp) now names tap, checked; an alias may name another tap later */
static int bind(mctx *M, const char *name, const char *tap, span sp, int alias)
{
    binding *o = (binding *)find_name(M, name);
    if (o && o->alias && alias) {
        snprintf(o->tap, sizeof o->tap, "%s", tap);
        return 0;
    }
    if (o) {
        MERR(M, sp, "'%s' is written twice", name);
        diag_note(M->f, o->sp, "first written here");
        return -1;
    }
    if (!strcmp(name, "x") || !strcmp(name, "input") || !strcmp(name, "output")) {
        MERR(M, sp, "'%s' names the model's %s; give the tap another name", name,
             strcmp(name, "output") ? "input" : "output");
        return -1;
    }
    if (param_index(M, name) >= 0) {
        MERR(M, sp, "'%s' is a parameter of model '%s'; give the tap another name", name, M->d->name);
        return -1;
    }
    if (strlen(name) >= CELO_TAP_NAME_MAX) {
        MERR(M, sp, "'%s' is too long a name (at most %d characters)", name, CELO_TAP_NAME_MAX - 1);
        return -1;
    }
    return add_name(M, name, tap, sp, alias);
}

/* The name e writes or reads: a name, or NAME[i] = "NAME.i" and NAME[i].a.b = "NAME.i.a.b" (i a loop variable or
 * any whole number), torch's naming of repeated modules. -1 (reported) when it is neither, or too long. */
static int ref_name(mctx *M, const expr *e, char *out)
{
    if (e->kind == EX_NAME) {
        if (strlen(e->name) < CELO_TAP_NAME_MAX) {
            snprintf(out, CELO_TAP_NAME_MAX, "%s", e->name);
            return 0;
        }
    } else if (e->kind == EX_INDEX) {
        val v;
        if (eval(M, e->b, &v))
            return -1;
        if (v.vocab || v.v != floor(v.v) || v.v < 0 || v.v > 1 << 20) {
            MERR(M, e->b->sp, "an index is a whole number from 0, like a loop variable");
            return -1;
        }
        if (snprintf(out, CELO_TAP_NAME_MAX, "%s.%d%s%s", e->name, (int)v.v, e->suffix ? "." : "",
                     e->suffix ? e->suffix : "") < CELO_TAP_NAME_MAX)
            return 0;
    } else {
        MERR(M, e->sp, "a block reads a tap: x (the model's input), a tap written above, or a block call");
        return -1;
    }
    MERR(M, e->sp, "too long a name (at most %d characters)", CELO_TAP_NAME_MAX - 1);
    return -1;
}

/* The tap a block reads: x (the model's input) or a name written above it. */
static int tap_ref(mctx *M, const expr *e, char *out)
{
    char nm[CELO_TAP_NAME_MAX];
    if (ref_name(M, e, nm))
        return -1;
    if (!strcmp(nm, "x")) {
        snprintf(out, CELO_TAP_NAME_MAX, "input");
        return 0;
    }
    const binding *b = find_name(M, nm);
    if (b) {
        snprintf(out, CELO_TAP_NAME_MAX, "%s", b->tap);
        return b->tap[0] ? 0 : -1; /* "": its statement failed (reported) */
    }
    if (param_index(M, nm) >= 0) {
        MERR(M, e->sp, "'%s' is a parameter, not a tap", nm);
        return -1;
    }
    for (const stmt *s = M->d->body; s && e->kind == EX_NAME; s = s->next)
        if (s->kind == ST_ASSIGN && !s->index && !strcmp(s->target, nm) && s->target_span.lo > e->sp.lo) {
            MERR(M, e->sp, "tap '%s' is written later; a block reads the taps written above it", nm);
            diag_note(M->f, s->target_span, "'%s' is written here", nm);
            return -1;
        }
    MERR(M, e->sp, "unknown tap '%s'", nm);
    const char *cand[256];
    int n = 0;
    cand[n++] = "x";
    for (int i = 0; i < M->nnames && n < 256; i++)
        cand[n++] = M->names[i].name;
    suggest(M->f, e->sp, nm, cand, n);
    return -1;
}

/* Block call e: its block after those of a nested input; its tap into tap_out. target: the statement's left side
 * (the tap), or NULL for a call nested in another, whose tap is its name = … */
static int block_call(mctx *M, const expr *e, const char *target, span target_sp, char *tap_out)
{
    int k = 0;
    while (k < NKINDS && strcmp(kinds[k].name, e->name))
        k++;
    if (k == NKINDS) {
        MERR(M, e->name_span, "unknown block '%s'", e->name);
        const char *cand[NKINDS];
        for (int i = 0; i < NKINDS; i++)
            cand[i] = kinds[i].name;
        suggest(M->f, e->name_span, e->name, cand, NKINDS);
        return -1;
    }
    const block_kind *bk = &kinds[k];
    const expr *input = NULL, *name = NULL, *vals[NARGS] = {NULL};
    int pos = 0;
    for (const arg *a = e->args; a; a = a->next) {
        int slot = 0;
        if (!a->name) {
            if (!input) {
                input = a->value;
                continue;
            }
            if (pos >= bk->npos) {
                MERR(M, a->value->sp, "%s takes its input and %d more argument%s", bk->name, bk->npos,
                     bk->npos == 1 ? "" : "s");
                return -1;
            }
            slot = pos++;
        } else if (!strcmp(a->name, "name")) {
            if (name) {
                MERR(M, a->value->sp, "argument 'name' of %s is given twice", bk->name);
                return -1;
            }
            name = a->value;
            continue;
        } else {
            while (bk->arg[slot] && strcmp(bk->arg[slot], a->name))
                slot++;
            if (!bk->arg[slot]) {
                char list[256] = "";
                size_t len = 0;
                for (int q = 0; bk->arg[q] && len < sizeof list; q++)
                    len += (size_t)snprintf(list + len, sizeof list - len, "%s, ", bk->arg[q]);
                MERR(M, a->name_span, "%s has no argument '%s' (it has: %sname)", bk->name, a->name, list);
                suggest(M->f, a->name_span, a->name, bk->arg, slot);
                return -1;
            }
        }
        if (vals[slot]) {
            MERR(M, a->value->sp, "argument '%s' of %s is given twice", bk->arg[slot], bk->name);
            return -1;
        }
        vals[slot] = a->value;
    }
    if (!input) {
        MERR(M, e->sp, "%s needs its input: %s(x, …) or %s(TAP, …)", bk->name, bk->name, bk->name);
        return -1;
    }
    for (int i = 0; i < bk->npos; i++)
        if (!vals[i]) {
            MERR(M, e->sp, "%s needs a value for '%s'", bk->name, bk->arg[i]);
            return -1;
        }
    char nm[CELO_TAP_NAME_MAX];
    if (name && name->kind != EX_NAME && name->kind != EX_INDEX) {
        MERR(M, name->sp, "name = … takes a name, like name = fc2 (or fc[l] in a loop)");
        return -1;
    }
    if (!target && !name) {
        MERR(M, e->sp, "a block inside another needs a name for its tap: %s(…, name = …)", bk->name);
        return -1;
    }
    if (name && ref_name(M, name, nm))
        return -1;
    /* the input first: a nested block comes before this one */
    char from[CELO_TAP_NAME_MAX];
    if (input->kind == EX_CALL ? block_call(M, input, NULL, input->sp, from) : tap_ref(M, input, from))
        return -1;
    val v[NARGS];
    for (int i = 0; i < NARGS && bk->arg[i]; i++)
        if (vals[i] && !named_arg(bk->arg[i]) && eval(M, vals[i], &v[i]))
            return -1;
    celo_block_desc *b = new_block(M, e->sp);
    if (!b)
        return -1;
    const char *tap = target ? target : nm;
    b->kind = bk->kind, b->act = bk->act, b->pool = bk->pool;
    snprintf(b->name, sizeof b->name, "%s", name ? nm : target);
    snprintf(b->tap, sizeof b->tap, "%s", tap);
    snprintf(b->from, sizeof b->from, "%s", from);
    int r = 0, bias = 1;
    switch (bk->kind) {
    case CELO_BLOCK_LINEAR:
        r = width(M, vals[0], &v[0], "out", 1, &b->out) ||
            (vals[1] && want_int(M, vals[1], &v[1], "bias", 0, 1, &bias));
        b->nobias = !bias;
        break;
    case CELO_BLOCK_CONV:
        b->stride = 1;
        r = width(M, vals[0], &v[0], "channels", 0, &b->out) ||
            want_int(M, vals[1], &v[1], "kernel", 1, 15, &b->kernel) ||
            (vals[2] && want_int(M, vals[2], &v[2], "stride", 1, 1 << 12, &b->stride)) ||
            (vals[3] && want_int(M, vals[3], &v[3], "pad", 0, 14, &b->pad));
        break;
    case CELO_BLOCK_POOL: r = want_int(M, vals[0], &v[0], "k", 1, 1 << 12, &b->kernel); break;
    case CELO_BLOCK_EMBED:
        r = width(M, vals[0], &v[0], "vocab", 1, &b->vocab) || width(M, vals[1], &v[1], "dim", 0, &b->out);
        break;
    case CELO_BLOCK_POSITION: r = width(M, vals[0], &v[0], "ctx", 0, &b->ctx); break;
    case CELO_BLOCK_ATTENTION: r = width(M, vals[0], &v[0], "heads", 0, &b->heads); break;
    case CELO_BLOCK_LINATTN: { /* linattn(in, heads, feature = elu, chunk = 0): gpt's mixer = linear(…) */
        int f = CELO_FEATURE_ELU;
        r = width(M, vals[0], &v[0], "heads", 0, &b->heads) ||
            (vals[1] && pick(M, vals[1], "feature", features, 4, &f)) ||
            (vals[2] && want_int(M, vals[2], &v[2], "chunk", 1, 1 << 14, &b->chunk));
        b->feature = (celo_feature_map)f;
        break;
    }
    case CELO_BLOCK_MAMBA: { /* gpt's mixer = mamba(…); 0: the layer's defaults (nn.h) */
        int f = CELO_FEATURE_IDENTITY, nz = 0;
        r = width(M, vals[0], &v[0], "heads", 0, &b->heads) ||
            (vals[1] && want_int(M, vals[1], &v[1], "state", 1, 4096, &b->state)) ||
            (vals[2] && want_int(M, vals[2], &v[2], "conv", 1, 64, &b->conv)) ||
            (vals[3] && want_int(M, vals[3], &v[3], "expand", 1, 64, &b->expand)) ||
            (vals[4] && pick(M, vals[4], "feature", features, 4, &f)) ||
            (vals[5] && pick(M, vals[5], "normalize", bools, 2, &nz)) ||
            (vals[6] && want_int(M, vals[6], &v[6], "chunk", 1, 1 << 14, &b->chunk));
        b->feature = (celo_feature_map)f, b->normalize = nz;
        break;
    }
    case CELO_BLOCK_LSTM:
        r = width(M, vals[0], &v[0], "hidden", 0, &b->out) ||
            (vals[1] && want_int(M, vals[1], &v[1], "layer", 0, 1 << 20, &b->layer));
        break;
    default: break;
    }
    if (r || bind(M, tap, tap, target ? target_sp : name->sp, 0))
        return -1;
    snprintf(tap_out, CELO_TAP_NAME_MAX, "%s", tap);
    return 0;
}

static void walk_stmts(mctx *M, const stmt *list);

/* One `target = v;` statement of the body (target: its name, h.2 for h[l]): a block call, an add, or an alias.
 * 0, or -1 (reported, or a read of a name whose own statement failed). */
static int statement(mctx *M, const stmt *s, const char *target)
{
    const expr *v = s->value;
    char tap[CELO_TAP_NAME_MAX], a[CELO_TAP_NAME_MAX], b[CELO_TAP_NAME_MAX];
    if (v->kind == EX_CALL)
        return block_call(M, v, target, s->target_span, tap);
    if (v->kind == EX_NAME || v->kind == EX_INDEX) /* an alias: another name for a tap */
        return tap_ref(M, v, tap) || bind(M, target, tap, s->target_span, 1) ? -1 : 0;
    if (v->kind != EX_BINARY || v->op != OP_ADD) {
        MERR(M, v->sp, "a model's statements are tap = block(…), tap = a + b (a residual) or tap = other_tap");
        return -1;
    }
    if (tap_ref(M, v->a, a) || tap_ref(M, v->b, b))
        return -1;
    celo_block_desc *d = new_block(M, v->sp);
    if (!d)
        return -1;
    d->kind = CELO_BLOCK_ADD;
    snprintf(d->name, sizeof d->name, "%s", target);
    snprintf(d->tap, sizeof d->tap, "%s", target);
    snprintf(d->from, sizeof d->from, "%s", a);
    snprintf(d->from2, sizeof d->from2, "%s", b);
    return bind(M, target, target, s->target_span, 0);
}

/* for VAR in LO..HI { … }: the body once per VAR = LO, …, HI - 1 (unrolled; model_check runs it once, with LO) */
static void loop(mctx *M, const stmt *s)
{
    val lo, hi;
    if (eval(M, s->lo, &lo) || eval(M, s->hi, &hi))
        return;
    span range = {s->lo->sp.lo, s->hi->sp.hi};
    if (M->build && (lo.vocab || hi.vocab || lo.v != floor(lo.v) || hi.v != floor(hi.v) || hi.v - lo.v > 1024)) {
        MERR(M, range, "a loop's bounds are whole numbers, at most 1024 apart");
        return;
    }
    if (M->nvar == 8 || param_index(M, s->var) >= 0 || !strcmp(s->var, "x")) {
        MERR(M, s->var_span,
             M->nvar == 8 ? "for loops nest at most 8 deep" : "'%s' is taken: name the loop variable otherwise",
             s->var);
        return;
    }
    int a = (int)lo.v, b = M->build ? (int)hi.v : a + 1, k = M->nvar++;
    M->var[k] = s->var;
    for (int i = a; i < b && !M->nerr; i++) {
        M->varv[k] = i;
        walk_stmts(M, s->body);
    }
    M->nvar--;
}

static void walk_stmts(mctx *M, const stmt *list)
{
    for (const stmt *s = list; s; s = s->next) {
        char target[CELO_TAP_NAME_MAX];
        if (s->kind == ST_FOR)
            loop(M, s);
        else if (s->kind != ST_ASSIGN || s->aop != '=')
            MERR(M, s->sp, "a model's statements are tap = block(…), tap = a + b (a residual) or tap = other_tap");
        else if (s->index) {
            expr t = {.kind = EX_INDEX, .sp = s->target_span, .name = s->target, .b = s->index, .suffix = s->suffix};
            if (!ref_name(M, &t, target) && statement(M, s, target) && !find_name(M, target))
                add_name(M, target, "", s->target_span, 0); /* its readers stay quiet */
        } else if (statement(M, s, s->target) && !find_name(M, s->target))
            add_name(M, s->target, "", s->target_span, 0);
    }
}

static void walk(mctx *M)
{
    walk_stmts(M, M->d->body);
    if (!M->nerr && !M->nb)
        MERR(M, M->d->name_span, "model '%s' has no blocks", M->d->name);
}

/* Blocks with tensors must have distinct modules (their tensors are module.weight, …); LSTM layers share one
 * module, as torch's, with distinct layer numbers. */
static void distinct_modules(mctx *M)
{
    for (int i = 0; i < M->nb; i++) {
        const celo_block_desc *b = &M->blocks[i];
        if (b->kind == CELO_BLOCK_ACT || b->kind == CELO_BLOCK_POOL || b->kind == CELO_BLOCK_ADD)
            continue;
        for (int j = 0; j < i; j++) {
            const celo_block_desc *o = &M->blocks[j];
            if (o->kind == CELO_BLOCK_ACT || o->kind == CELO_BLOCK_POOL || o->kind == CELO_BLOCK_ADD ||
                strcmp(o->name, b->name) ||
                (o->kind == CELO_BLOCK_LSTM && b->kind == CELO_BLOCK_LSTM && o->layer != b->layer))
                continue;
            MERR(M, M->bsp[i], "module '%s' already has tensors (%s.weight, …): give this block another name = …",
                 b->name, b->name);
            diag_note(M->f, M->bsp[j], "that block");
            return;
        }
    }
}

static void mctx_free(mctx *M)
{
    free(M->names);
    free(M->bsp);
    free(M->blocks);
}

int model_check(const def *d)
{
    mctx M = {.d = d, .f = d->file};
    for (const param *p = d->params; p; p = p->next) {
        val v;
        if (M.np == MAX_PARAMS) {
            MERR(&M, p->sp, "a model has at most %d parameters", MAX_PARAMS);
            break;
        }
        if (param_index(&M, p->name) >= 0 || !strcmp(p->name, "x")) {
            MERR(&M, p->sp,
                 !strcmp(p->name, "x") ? "'x' is the model's input, not a parameter" : "parameter '%s' is given twice",
                 p->name);
            continue;
        }
        if (p->def)
            eval(&M, p->def, &v); /* only earlier parameters */
        M.pname[M.np++] = p->name;
    }
    if (!M.nerr)
        walk(&M);
    if (M.oom)
        MERR(&M, d->name_span, "out of memory");
    mctx_free(&M);
    return M.nerr;
}

/* The value the task's data gives a parameter of this name (1), or 0 when it gives none. */
static int data_value(const model_env *env, const char *name, val *v)
{
    memset(v, 0, sizeof *v);
    if (env->tokens) {
        if (!strcmp(name, "vocab") || !strcmp(name, "out") || !strcmp(name, "classes"))
            return v->vocab = 1;
        v->v = env->ctx;
        return !strcmp(name, "ctx");
    }
    v->v = !strcmp(name, "in") ? env->features : env->classes;
    return !strcmp(name, "in") || !strcmp(name, "out") || !strcmp(name, "classes");
}

int model_build(const def *d, const pval *call, const srcfile *f, const model_env *env, celo_block_desc **blocks,
                int *n)
{
    *blocks = NULL, *n = 0;
    mctx M = {.d = d, .f = d->file, .build = 1};
    int cerr = 0; /* errors of the call, located in the task */
#define CERR(sp, ...)                   \
    do {                                \
        cerr++;                         \
        diag_error(f, sp, __VA_ARGS__); \
    } while (0)
    const char *names[MAX_PARAMS];
    const pval *given[MAX_PARAMS] = {NULL};
    int np = 0, pos = 0, own_vocab = 0; /* own_vocab: the call gives the vocabulary's width itself */
    for (const param *p = d->params; p && np < MAX_PARAMS; p = p->next)
        names[np++] = p->name;
    for (const parg *a = call->kind == PV_CALL ? call->args : NULL; a && !cerr; a = a->next) {
        int i = 0;
        if (!a->name) {
            if (pos >= np) {
                CERR(a->value->sp, "model '%s' takes at most %d argument%s", d->name, np, np == 1 ? "" : "s");
                break;
            }
            i = pos++;
        } else {
            while (i < np && strcmp(names[i], a->name))
                i++;
            if (i == np) {
                char list[512] = "";
                size_t len = 0;
                for (int q = 0; q < np && len < sizeof list; q++)
                    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", q ? ", " : "", names[q]);
                CERR(a->name_span, "model '%s' has no parameter '%s' (it has: %s)", d->name, a->name,
                     np ? list : "none");
                suggest(f, a->name_span, a->name, names, np);
                break;
            }
        }
        if (given[i])
            CERR(a->value->sp, "parameter '%s' of model '%s' is given twice", names[i], d->name);
        else if (a->value->kind != PV_NUM || !isfinite(a->value->num))
            CERR(a->value->sp, "%s must be a number", names[i]);
        given[i] = a->value;
    }
    /* each parameter: the call's value, else the data's, else its default */
    int i = 0;
    for (const param *p = d->params; p && i < np && !cerr; p = p->next, i++) {
        val v, dv;
        int data = data_value(env, p->name, &dv);
        if (given[i]) {
            v = (val){given[i]->num, 0};
            own_vocab |= data && dv.vocab;
            if (data && !env->tokens && !strcmp(p->name, "in") && v.v != env->features)
                CERR(given[i]->sp, "the model's input width %g does not match the data: %d features per example", v.v,
                     env->features);
            else if (data && !env->tokens && strcmp(p->name, "in") && env->loss == CELO_LOSS_CROSS_ENTROPY &&
                     v.v != env->classes)
                CERR(given[i]->sp, "the model's output width %g does not match the data: %d classes", v.v,
                     env->classes);
            else if (data && env->tokens && !strcmp(p->name, "ctx") && v.v < env->ctx)
                CERR(given[i]->sp, "ctx (%g) is shorter than the data's seq (%d)", v.v, env->ctx);
        } else if (data)
            v = dv;
        else if (p->def) {
            if (eval(&M, p->def, &v))
                break;
        } else {
            CERR(call->sp, "model '%s' needs a value for '%s': write %s(%s = …)", d->name, p->name, d->name, p->name);
            break;
        }
        M.pname[M.np] = p->name;
        M.pv[M.np++] = v;
    }
    if (!cerr && !M.nerr)
        walk(&M);
    if (!cerr && !M.nerr)
        distinct_modules(&M);
    if (M.nerr) /* the values of this use made the errors in the definition */
        diag_note(f, call->sp, "in model '%s' as this task uses it", d->name);
    if (!cerr && !M.nerr && !M.oom) {
        /* the runtime's checks, with a stand-in for a vocabulary not loaded yet */
        celo_block_desc *chk = malloc((size_t)M.nb * sizeof *chk);
        if (!chk)
            M.oom = 1;
        for (int k = 0; chk && k < M.nb; k++) {
            chk[k] = M.blocks[k];
            if (chk[k].out == CELO_WIDTH_VOCAB)
                chk[k].out = VOCAB_CHECK;
            if (chk[k].vocab == CELO_WIDTH_VOCAB)
                chk[k].vocab = VOCAB_CHECK;
        }
        celo_model_desc md = {.tokens = env->tokens,
                              .in_ndim = env->in_ndim,
                              .loss = (celo_loss_kind)env->loss,
                              .nblocks = M.nb,
                              .blocks = chk};
        memcpy(md.in_dims, env->in_dims, sizeof md.in_dims);
        char err[512];
        int bad = -1;
        int64_t out = 0;
        if (chk && celo_model_check_desc(&md, &bad, &out, err, sizeof err)) {
            MERR(&M, bad >= 0 ? M.bsp[bad] : d->name_span, "%s", err);
            diag_note(f, call->sp, "in model '%s' as this task uses it", d->name);
        } else if (chk && env->loss == CELO_LOSS_CROSS_ENTROPY && !env->tokens && out != env->classes) {
            MERR(&M, M.bsp[M.nb - 1], "the model's output has width %lld; cross_entropy needs the data's %d classes",
                 (long long)out, env->classes);
            diag_note(f, call->sp, "in model '%s' as this task uses it", d->name);
        } else if (chk && env->loss == CELO_LOSS_CROSS_ENTROPY && env->tokens &&
                   M.blocks[M.nb - 1].out != CELO_WIDTH_VOCAB && !own_vocab) {
            /* a language model predicts the next token: its output is as wide as the vocabulary */
            MERR(&M, M.bsp[M.nb - 1],
                 "the model's output has width %lld; cross_entropy over text needs the "
                 "vocabulary's: end with linear(…, vocab)",
                 (long long)out);
            diag_note(f, call->sp, "in model '%s' as this task uses it", d->name);
        }
        free(chk);
    }
    if (M.oom)
        MERR(&M, d->name_span, "out of memory");
#undef CERR
    if (!cerr && !M.nerr) {
        *blocks = M.blocks, *n = M.nb;
        M.blocks = NULL;
    }
    mctx_free(&M);
    return cerr + M.nerr;
}
