/* pipeline.c — checking task / train / sweep / compare / eval / meta blocks and turning them into a celo_plan (stage
 * and distill blocks: pipeline_distill.c).
 *
 * Every key a user can misspell gets a located error with a did-you-mean; shapes are checked here (an MLP whose
 * input width does not match the data is an error at check time, not a crash at step 1). */
#include "pipeline.h"
#include "pipeline_internal.h"

#include "diag.h"
#include "model.h"
#include "inst.h"
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pl_suggest_among(pctx *C, span sp, const char *s, const char *const *names, int n)
{
    const char *best = diag_suggest(s, names, n);
    if (best)
        diag_note(C->file, sp, "did you mean '%s'?", best);
}

/* ---- value helpers ---- */
int pl_want_int(pctx *C, const pval *v, const char *what, long long lo, long long hi, long long *out)
{
    if (v->kind != PV_NUM || v->num != floor(v->num)) {
        PERR(C, v->sp, "%s must be an integer", what);
        return -1;
    }
    if (v->num < (double)lo || v->num > (double)hi) {
        PERR(C, v->sp, "%s must be between %lld and %lld", what, lo, hi);
        return -1;
    }
    *out = (long long)v->num;
    return 0;
}

int pl_want_num(pctx *C, const pval *v, const char *what, double *out)
{
    if (v->kind != PV_NUM || !isfinite(v->num)) {
        PERR(C, v->sp, "%s must be a number", what);
        return -1;
    }
    *out = v->num;
    return 0;
}

int pl_want_str(pctx *C, const pval *v, const char *what, char *out, size_t len)
{
    if (v->kind != PV_STR) {
        PERR(C, v->sp, "%s must be a string, like \"runs/out.csv\"", what);
        return -1;
    }
    if (strlen(v->str) >= len || !v->str[0]) {
        PERR(C, v->sp, "%s must be a non-empty path of fewer than %zu characters", what, len);
        return -1;
    }
    snprintf(out, len, "%s", v->str);
    return 0;
}

/* The index of name value v among names[0 .. n) (calls: their callee's, when calls is set), or -1 after "WHAT
 * must be a, b or c" (and a did-you-mean). */
int pl_pick_name_or_call(pctx *C, const pval *v, const char *what, const char *const *names, int n, int calls)
{
    int named = v->kind == PV_NAME || (calls && v->kind == PV_CALL);
    for (int i = 0; named && i < n; i++)
        if (!strcmp(names[i], v->str))
            return i;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                i == 0       ? ""
                                : i == n - 1 ? " or "
                                             : ", ",
                                names[i]);
    PERR(C, v->sp, "%s must be %s", what, list);
    if (named)
        pl_suggest_among(C, v->sp, v->str, names, n);
    return -1;
}

int pl_pick_name(pctx *C, const pval *v, const char *what, const char *const *names, int n)
{
    return pl_pick_name_or_call(C, v, what, names, n, 0);
}

int pl_bind_args(pctx *C, const pval *v, const char *const *params, int nparams, callargs *out)
{
    memset(out, 0, sizeof *out);
    int pos = 0;
    for (const parg *a = v->kind == PV_CALL ? v->args : NULL; a; a = a->next) {
        const char *nm = a->name;
        if (!nm) {
            if (pos >= nparams) {
                PERR(C, a->value->sp, "%s takes at most %d argument%s", v->str, nparams, nparams == 1 ? "" : "s");
                return -1;
            }
            nm = params[pos++];
        } else {
            int k = 0;
            while (k < nparams && strcmp(params[k], nm))
                k++;
            if (k == nparams) {
                char list[512] = "";
                size_t len = 0;
                for (int q = 0; q < nparams && len < sizeof list; q++)
                    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", q ? ", " : "", params[q]);
                PERR(C, a->name_span, "%s has no argument '%s' (it has: %s)", v->str, nm, nparams ? list : "none");
                pl_suggest_among(C, a->name_span, nm, params, nparams);
                return -1;
            }
        }
        for (int k = 0; k < out->n; k++)
            if (!strcmp(out->names[k], nm)) {
                PERR(C, a->value->sp, "argument '%s' of %s is given twice", nm, v->str);
                return -1;
            }
        out->names[out->n] = nm;
        out->vals[out->n++] = a->value;
    }
    return 0;
}

const pval *pl_arg_of(const callargs *a, const char *name)
{
    for (int k = 0; k < a->n; k++)
        if (!strcmp(a->names[k], name))
            return a->vals[k];
    return NULL;
}

const char *pl_callee(const pval *v)
{
    return v->kind == PV_CALL || v->kind == PV_NAME ? v->str : NULL;
}

/* ---- task ---- */

/* classes = [a, b, …] and permute_labels = S of a data set of 10 classes (runtime/data.h, celo_label_map): the
 * same checks as the runtime's, located. */
static int label_args(pctx *C, celo_task *t, const callargs *a, const char *set)
{
    const pval *x;
    if ((x = pl_arg_of(a, "classes"))) {
        if (x->kind != PV_LIST) {
            PERR(C, x->sp, "classes must be a list of class numbers, like [0, 3, 5]");
            return -1;
        }
        int n = 0;
        for (const parg *e = x->args; e; e = e->next) {
            const pval *c = e->value;
            if (c->kind != PV_NUM || c->num != floor(c->num)) {
                PERR(C, c->sp, "a class must be a whole number, like 3");
                return -1;
            }
            if (c->num < 0 || c->num > 9) {
                PERR(C, c->sp, "%s has classes 0 to 9: there is no class %g", set, c->num);
                return -1;
            }
            for (int k = 0; k < n; k++)
                if (t->classes[k] == (int)c->num) {
                    PERR(C, c->sp, "class %d is listed twice", t->classes[k]);
                    return -1;
                }
            t->classes[n++] = (int)c->num; /* at most 10: an 11th would repeat one */
        }
        if (n < 2) {
            PERR(C, x->sp, "classes must list at least two classes (%s)",
                 n ? "one class leaves nothing to tell apart" : "the list is empty");
            return -1;
        }
        t->nclasses = n;
    }
    if ((x = pl_arg_of(a, "permute_labels"))) {
        long long iv;
        if (pl_want_int(C, x, "permute_labels", 0, 1LL << 53, &iv))
            return -1;
        t->permute_labels = (uint64_t)iv;
    }
    return 0;
}

/* The arguments the image data sets share: normalize, then the label variations (label_args). */
static int image_args(pctx *C, celo_task *t, const callargs *a, const char *k)
{
    const pval *x = pl_arg_of(a, "normalize");
    long long iv;
    if (x) {
        if (pl_want_int(C, x, "normalize", 0, 1, &iv))
            return -1;
        t->normalize = (int)iv;
    }
    return label_args(C, t, a, k);
}

static int task_data(pctx *C, celo_task *t, const pval *v)
{
    static const char *kinds[] = {"fashion_mnist", "kjv", "teacher", "quadratic", "digits"};
    const char *k = pl_callee(v);
    callargs a;
    long long iv;
    double dv;
    if (!k) {
        PERR(C, v->sp, "data must be a dataset, like fashion_mnist(size = 8) or kjv(seq = 64)");
        return -1;
    }
    if (!strcmp(k, "fashion_mnist")) {
        static const char *ps[] = {"size", "normalize", "classes", "permute_labels"};
        if (pl_bind_args(C, v, ps, 4, &a))
            return -1;
        t->data = CELO_DATA_FASHION_MNIST;
        t->size = 28;
        const pval *x;
        if ((x = pl_arg_of(&a, "size"))) {
            if (pl_want_int(C, x, "size", 1, 28, &iv))
                return -1;
            t->size = (int)iv;
        }
        return image_args(C, t, &a, k);
    }
    if (!strcmp(k, "digits")) {
        static const char *ps[] = {"normalize", "classes", "permute_labels"};
        if (pl_bind_args(C, v, ps, 3, &a))
            return -1;
        t->data = CELO_DATA_DIGITS;
        t->size = 8;
        return image_args(C, t, &a, k);
    }
    if (!strcmp(k, "kjv")) {
        static const char *ps[] = {"seq"};
        if (pl_bind_args(C, v, ps, 1, &a))
            return -1;
        t->data = CELO_DATA_KJV;
        t->seq = 64;
        const pval *x = pl_arg_of(&a, "seq");
        if (x) {
            if (pl_want_int(C, x, "seq", 2, 4096, &iv))
                return -1;
            t->seq = (int)iv;
        }
        return 0;
    }
    if (!strcmp(k, "teacher")) {
        static const char *ps[] = {"in", "out", "hidden", "n"};
        if (pl_bind_args(C, v, ps, 4, &a))
            return -1;
        t->data = CELO_DATA_TEACHER;
        t->teacher_in = 16;
        t->teacher_out = 4;
        t->teacher_hidden = 32;
        t->teacher_n = 8192;
        const pval *x;
        if ((x = pl_arg_of(&a, "in"))) {
            if (pl_want_int(C, x, "in", 1, 1 << 20, &iv))
                return -1;
            t->teacher_in = (int)iv;
        }
        if ((x = pl_arg_of(&a, "out"))) {
            if (pl_want_int(C, x, "out", 2, 1 << 16, &iv))
                return -1;
            t->teacher_out = (int)iv;
        }
        if ((x = pl_arg_of(&a, "hidden"))) {
            if (pl_want_int(C, x, "hidden", 1, 1 << 16, &iv))
                return -1;
            t->teacher_hidden = (int)iv;
        }
        if ((x = pl_arg_of(&a, "n"))) {
            if (pl_want_int(C, x, "n", 1, 1LL << 30, &iv))
                return -1;
            t->teacher_n = iv;
        }
        return 0;
    }
    if (!strcmp(k, "quadratic")) {
        static const char *ps[] = {"dim", "cond"};
        if (pl_bind_args(C, v, ps, 2, &a))
            return -1;
        t->data = CELO_DATA_QUADRATIC;
        t->quad_dim = 64;
        t->quad_cond = 100;
        const pval *x;
        if ((x = pl_arg_of(&a, "dim"))) {
            if (pl_want_int(C, x, "dim", 1, 1 << 24, &iv))
                return -1;
            t->quad_dim = (int)iv;
        }
        if ((x = pl_arg_of(&a, "cond"))) {
            if (pl_want_num(C, x, "cond", &dv))
                return -1;
            if (dv < 1) {
                PERR(C, x->sp, "cond must be at least 1");
                return -1;
            }
            t->quad_cond = dv;
        }
        return 0;
    }
    PERR(C, v->sp, "unknown dataset '%s'", k);
    pl_suggest_among(C, v->sp, k, kinds, 5);
    return -1;
}

static int int_list(pctx *C, const pval *v, const char *what, int *out, int max, int *n)
{
    if (v->kind == PV_NUM) {
        long long iv;
        if (pl_want_int(C, v, what, 1, 1 << 20, &iv))
            return -1;
        out[0] = (int)iv;
        *n = 1;
        return 0;
    }
    if (v->kind != PV_LIST) {
        PERR(C, v->sp, "%s must be a list of widths, like [128, 64]", what);
        return -1;
    }
    *n = 0;
    for (const parg *a = v->args; a; a = a->next) {
        long long iv;
        if (*n >= max) {
            PERR(C, a->value->sp, "at most %d hidden layers", max);
            return -1;
        }
        if (pl_want_int(C, a->value, what, 1, 1 << 20, &iv))
            return -1;
        out[(*n)++] = (int)iv;
    }
    return 0;
}

/* gpt's mixer: softmax; linear(feature = identity | elu | mlp | hedgehog, chunk = N) (elu and 64 when not given);
 * or mamba(state = N, conv = K, expand = E, feature = ..., normalize = true | false, chunk = L) (dim / heads, 4,
 * 1, identity, false and 64 when not given) */
static int gpt_mixer(pctx *C, celo_task *t, const pval *x)
{
    static const char *mixers[] = {"softmax", "linear", "mamba"};
    static const char *features[] = {"identity", "elu", "mlp", "hedgehog"};
    static const char *bools[] = {"false", "true"};
    const char *k = pl_callee(x);
    int kind = -1;
    for (int i = 0; k && i < 3; i++)
        if (!strcmp(k, mixers[i]))
            kind = i;
    if (kind < 0) {
        PERR(C, x->sp,
             "mixer must be softmax, linear(feature = identity | elu | mlp | hedgehog) or mamba(state = N, conv = K, "
             "expand = E, feature = ..., normalize = true | false)");
        if (k)
            pl_suggest_among(C, x->sp, k, mixers, 3);
        return -1;
    }
    /* softmax binds every option (so that any of them is "no arguments"); linear its two; mamba its six */
    static const char *mamba_ps[] = {"state", "conv", "expand", "feature", "normalize", "chunk"};
    static const char *linear_ps[] = {"feature", "chunk"};
    callargs a;
    if (kind == CELO_MIXER_LINEAR ? pl_bind_args(C, x, linear_ps, 2, &a) : pl_bind_args(C, x, mamba_ps, 6, &a))
        return -1;
    t->mixer = CELO_MIXER_SOFTMAX, t->feature = 0, t->chunk = 0;
    t->mamba_state = t->mamba_conv = t->mamba_expand = t->mamba_normalize = 0;
    if (kind == CELO_MIXER_SOFTMAX) {
        if (a.n) {
            PERR(C, x->sp, "the softmax mixer takes no arguments");
            return -1;
        }
        return 0;
    }
    t->mixer = kind, t->feature = kind == CELO_MIXER_LINEAR ? CELO_FEATURE_ELU : CELO_FEATURE_IDENTITY;
    long long iv;
    const pval *v;
    if ((v = pl_arg_of(&a, "chunk"))) {
        if (pl_want_int(C, v, "chunk", 1, 1 << 14, &iv))
            return -1;
        t->chunk = (int)iv;
    }
    if ((v = pl_arg_of(&a, "feature"))) {
        int i = pl_pick_name(C, v, "feature", features, 4);
        if (i < 0)
            return -1;
        t->feature = i;
    }
    if (kind != CELO_MIXER_MAMBA)
        return 0;
    if ((v = pl_arg_of(&a, "state"))) {
        if (pl_want_int(C, v, "state", 1, 4096, &iv))
            return -1;
        t->mamba_state = (int)iv;
    }
    if ((v = pl_arg_of(&a, "conv"))) {
        if (pl_want_int(C, v, "conv", 1, 64, &iv))
            return -1;
        t->mamba_conv = (int)iv;
    }
    if ((v = pl_arg_of(&a, "expand"))) {
        if (pl_want_int(C, v, "expand", 1, 64, &iv))
            return -1;
        t->mamba_expand = (int)iv;
    }
    if ((v = pl_arg_of(&a, "normalize"))) {
        int i = pl_pick_name(C, v, "normalize", bools, 2);
        if (i < 0)
            return -1;
        t->mamba_normalize = i;
    }
    return 0;
}

/* the argument named `name` of a call, or NULL */
static const parg *named_arg(const pval *v, const char *name)
{
    for (const parg *a = v->kind == PV_CALL ? v->args : NULL; a; a = a->next)
        if (a->name && !strcmp(a->name, name))
            return a;
    return NULL;
}

static int task_model(pctx *C, celo_task *t, const pval *v)
{
    static const char *kinds[] = {"mlp", "autoencoder", "convnet", "gpt", "lstm"};
    const char *k = pl_callee(v);
    callargs a;
    long long iv;
    if (!k) {
        PERR(C, v->sp, "model must be a model, like mlp(64, [32], 10)");
        return -1;
    }
    const parg *mx = named_arg(v, "mixer");
    if (mx && strcmp(k, "gpt")) {
        PERR(C, mx->name_span, "mixer is an option of gpt only (%s has no token mixer)", k);
        return -1;
    }
    const pval *x;
#define INTARG(nm, field, lo, hi)               \
    if ((x = pl_arg_of(&a, nm))) {              \
        if (pl_want_int(C, x, nm, lo, hi, &iv)) \
            return -1;                          \
        t->field = (int)iv;                     \
    }
    if (!strcmp(k, "mlp") || !strcmp(k, "autoencoder")) {
        static const char *ps[] = {"in", "hidden", "out", "act"};
        if (pl_bind_args(C, v, ps, 4, &a))
            return -1;
        t->model = !strcmp(k, "mlp") ? CELO_MODEL_MLP : CELO_MODEL_AUTOENCODER;
        INTARG("in", in, 1, 1 << 24);
        INTARG("out", out, 1, 1 << 24);
        if ((x = pl_arg_of(&a, "hidden")) && int_list(C, x, "hidden", t->hidden, 8, &t->nhidden))
            return -1;
        if ((x = pl_arg_of(&a, "act"))) {
            static const char *acts[] = {"relu", "gelu", "tanh"};
            int i = pl_pick_name(C, x, "act", acts, 3);
            if (i < 0)
                return -1;
            t->act = i;
        }
        return 0;
    }
    if (!strcmp(k, "convnet")) {
        static const char *ps[] = {"conv1", "conv2", "kernel", "pool"};
        if (pl_bind_args(C, v, ps, 4, &a))
            return -1;
        t->model = CELO_MODEL_CONVNET;
        t->conv1 = 8, t->conv2 = 16, t->kernel = 3, t->pool = CELO_POOL_MAX;
        INTARG("conv1", conv1, 1, 4096);
        INTARG("conv2", conv2, 1, 4096);
        INTARG("kernel", kernel, 1, 15);
        if (t->kernel % 2 == 0) {
            PERR(C, pl_arg_of(&a, "kernel")->sp, "kernel must be odd (the convolutions keep the image size)");
            return -1;
        }
        if ((x = pl_arg_of(&a, "pool"))) {
            if (x->kind != PV_NAME || (strcmp(x->str, "max") && strcmp(x->str, "avg"))) {
                PERR(C, x->sp, "pool must be max or avg");
                return -1;
            }
            t->pool = !strcmp(x->str, "max") ? CELO_POOL_MAX : CELO_POOL_AVG;
        }
        return 0;
    }
    if (!strcmp(k, "gpt")) {
        static const char *ps[] = {"dim", "heads", "layers", "ctx", "mixer"};
        if (pl_bind_args(C, v, ps, 5, &a))
            return -1;
        t->model = CELO_MODEL_GPT;
        t->dim = 64, t->heads = 4, t->layers = 2, t->ctx = 0;
        INTARG("dim", dim, 1, 1 << 14);
        INTARG("heads", heads, 1, 256);
        INTARG("layers", layers, 1, 256);
        INTARG("ctx", ctx, 2, 1 << 14);
        t->mixer = CELO_MIXER_SOFTMAX, t->feature = 0, t->chunk = 0;
        t->mamba_state = t->mamba_conv = t->mamba_expand = t->mamba_normalize = 0;
        if ((x = pl_arg_of(&a, "mixer")) && gpt_mixer(C, t, x))
            return -1;
        if (t->dim % t->heads) {
            PERR(C, v->sp, "gpt: dim (%d) must be a multiple of heads (%d)", t->dim, t->heads);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "lstm")) {
        static const char *ps[] = {"embed", "hidden", "layers"};
        if (pl_bind_args(C, v, ps, 3, &a))
            return -1;
        t->model = CELO_MODEL_LSTM;
        t->embed = 32, t->lstm_hidden = 128, t->layers = 1;
        INTARG("embed", embed, 1, 1 << 14);
        INTARG("hidden", lstm_hidden, 1, 1 << 14);
        INTARG("layers", layers, 1, 64);
        return 0;
    }
#undef INTARG
    PERR(C, v->sp, "unknown model '%s'", k);
    pl_suggest_among(C, v->sp, k, kinds, 5);
    return -1;
}

/* The model definition a task's model = NAME(…) names, or NULL (a built-in kind, or an error of task_model's) */
static def *model_def(pctx *C, const pval *v)
{
    const char *k = pl_callee(v);
    def *d = k ? module_find(C->mod, k) : NULL;
    return d && d->kind == DEF_MODEL ? d : NULL;
}

/* A task whose model is a model definition: its blocks for the task's data (model.c). */
static void task_described(pctx *C, celo_task *t, const def *d, def *md, const pval *call)
{
    model_env env = {.loss = t->loss};
    switch (t->data) {
    case CELO_DATA_FASHION_MNIST:
    case CELO_DATA_DIGITS:
        env.in_ndim = 3, env.in_dims[0] = 1, env.in_dims[1] = env.in_dims[2] = t->size;
        env.features = t->size * t->size, env.classes = t->nclasses ? t->nclasses : 10;
        if (t->loss != CELO_LOSS_CROSS_ENTROPY) {
            PERR(C, call->sp, "%s has class labels: the loss must be cross_entropy",
                 t->data == CELO_DATA_DIGITS ? "digits" : "fashion_mnist");
            return;
        }
        break;
    case CELO_DATA_TEACHER:
        env.in_ndim = 1, env.in_dims[0] = env.features = t->teacher_in, env.classes = t->teacher_out;
        break;
    case CELO_DATA_KJV: env.tokens = 1, env.ctx = t->seq; break;
    case CELO_DATA_QUADRATIC: PERR(C, call->sp, "a quadratic task has no model: its parameter is the point x"); return;
    default: PERR(C, d->name_span, "task '%s' has no data", d->name); return;
    }
    if (module_model_check(C->mod, md)) { /* reported once, where the model is defined */
        C->nerr++;
        return;
    }
    celo_block_desc *b = NULL;
    int n = 0, ne = model_build(md, call, C->file, &env, &b, &n);
    if (ne) {
        C->nerr += ne;
        return;
    }
    t->blocks = b, t->nblocks = n;
}

/* Shapes between data, model and loss, checked now rather than at step 1. */
static void task_check(pctx *C, celo_task *t, const def *d, span model_sp)
{
    int features = 0, classes = 0, lm = 0;
    switch (t->data) {
    case CELO_DATA_FASHION_MNIST:
    case CELO_DATA_DIGITS: features = t->size * t->size, classes = t->nclasses ? t->nclasses : 10; break;
    case CELO_DATA_TEACHER: features = t->teacher_in, classes = t->teacher_out; break;
    case CELO_DATA_KJV: lm = 1; break;
    case CELO_DATA_QUADRATIC: break;
    default: PERR(C, d->name_span, "task '%s' has no data", d->name); return;
    }
    if (t->data == CELO_DATA_QUADRATIC) {
        if (t->model)
            PERR(C, model_sp, "a quadratic task has no model: its parameter is the point x");
        return;
    }
    if (!t->model) {
        PERR(C, d->name_span, "task '%s' has no model", d->name);
        return;
    }
    if (lm != (t->model == CELO_MODEL_GPT || t->model == CELO_MODEL_LSTM)) {
        PERR(C, model_sp,
             lm ? "text data needs a language model (gpt or lstm)" : "a %s needs text data, like kjv(seq = 64)",
             t->model == CELO_MODEL_GPT ? "gpt" : "lstm");
        return;
    }
    if (t->model == CELO_MODEL_GPT && t->ctx == 0)
        t->ctx = t->seq;
    if (t->model == CELO_MODEL_GPT && t->ctx < t->seq)
        PERR(C, model_sp, "gpt: ctx (%d) is shorter than the data's seq (%d)", t->ctx, t->seq);
    if (t->model == CELO_MODEL_MLP || t->model == CELO_MODEL_AUTOENCODER) {
        if (t->in == 0)
            t->in = features;
        else if (t->in != features)
            PERR(C, model_sp, "the model's input width %d does not match the data: %d features per example", t->in,
                 features);
        if (t->model == CELO_MODEL_MLP) {
            if (t->out == 0)
                t->out = classes;
            else if (t->out != classes && t->loss == CELO_LOSS_CROSS_ENTROPY) {
                char kept[64] = ""; /* " (classes = [0, 3, 5])": where the count comes from */
                size_t l = 0;
                for (int k = 0; k < t->nclasses && l < sizeof kept; k++)
                    l += (size_t)snprintf(kept + l, sizeof kept - l, "%s%d%s", k ? ", " : " (classes = [",
                                          t->classes[k], k + 1 == t->nclasses ? "])" : "");
                PERR(C, model_sp, "the model's output width %d does not match the data: %d classes%s", t->out, classes,
                     kept);
            }
        }
    }
    if (t->model == CELO_MODEL_CONVNET && t->data != CELO_DATA_FASHION_MNIST && t->data != CELO_DATA_DIGITS)
        PERR(C, model_sp, "convnet needs image data (fashion_mnist or digits)");
    if (t->model == CELO_MODEL_CONVNET && t->size < 4)
        PERR(C, model_sp, "convnet needs images of at least 4x4 (two 2x2 poolings)");
    if (t->model == CELO_MODEL_AUTOENCODER)
        t->loss = CELO_LOSS_MSE;
}

static const char *task_keys[] = {"data", "model", "loss", "batch"};

static int build_task(pctx *C, const def *d)
{
    celo_plan *P = C->plan;
    if (P->ntasks == C->cap_tasks) {
        C->cap_tasks = C->cap_tasks ? 2 * C->cap_tasks : 8;
        P->tasks = realloc(P->tasks, (size_t)C->cap_tasks * sizeof *P->tasks);
    }
    celo_task *t = &P->tasks[P->ntasks];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", d->name);
    t->batch = 64;
    int e0 = C->nerr;
    span model_sp = d->name_span;
    def *mdef = NULL; /* a model definition, used as mcall */
    const pval *mcall = NULL;
    for (const prop *p = d->props; p; p = p->next) {
        long long iv;
        if (p->word) {
            PERR(C, p->word_span, "unexpected '%s': write %s = …", p->word, p->key);
            continue;
        }
        if (!strcmp(p->key, "data"))
            task_data(C, t, p->value);
        else if (!strcmp(p->key, "model")) {
            if ((mdef = model_def(C, p->value)))
                mcall = p->value;
            else
                task_model(C, t, p->value);
            model_sp = p->value->sp;
        } else if (!strcmp(p->key, "loss")) {
            if (p->value->kind != PV_NAME || (strcmp(p->value->str, "cross_entropy") && strcmp(p->value->str, "mse")))
                PERR(C, p->value->sp, "loss must be cross_entropy or mse");
            else
                t->loss = !strcmp(p->value->str, "mse") ? CELO_LOSS_MSE : CELO_LOSS_CROSS_ENTROPY;
        } else if (!strcmp(p->key, "batch")) {
            if (!pl_want_int(C, p->value, "batch", 1, 1 << 20, &iv))
                t->batch = (int)iv;
        } else {
            PERR(C, p->key_span, "unknown task key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, task_keys, 4);
        }
    }
    if (C->nerr == e0 && mdef)
        task_described(C, t, d, mdef, mcall);
    else if (C->nerr == e0)
        task_check(C, t, d, model_sp);
    P->ntasks++;
    return C->nerr == e0 ? 0 : -1;
}

/* ---- optimizers referenced by runs ---- */
static rule *get_rule(pctx *C, const char *name, span sp)
{
    def *d = module_find(C->mod, name);
    if (!d || d->kind != DEF_OPTIMIZER) {
        PERR(C, sp, d ? "'%s' is not an optimizer" : "unknown optimizer '%s'", name);
        if (!d) {
            const char *cand[512];
            int n = 0;
            for (def *x = C->mod->defs; x && n < 512; x = x->next)
                if (x->kind == DEF_OPTIMIZER)
                    cand[n++] = x->name;
            pl_suggest_among(C, sp, name, cand, n);
        }
        return NULL;
    }
    rule *r = module_rule(C->mod, d); /* lowered once per module, for its hyper-parameters */
    if (!r)
        C->nerr++;
    return r;
}

int pl_find_task(pctx *C, const pval *v)
{
    if (v->kind != PV_NAME) {
        PERR(C, v->sp, "task must name a task block");
        return -1;
    }
    for (int i = 0; i < C->plan->ntasks; i++)
        if (!strcmp(C->plan->tasks[i].name, v->str))
            return i;
    PERR(C, v->sp, "unknown task '%s'", v->str);
    const char *cand[256];
    int n = 0;
    for (int i = 0; i < C->plan->ntasks && n < 256; i++)
        cand[n++] = C->plan->tasks[i].name;
    pl_suggest_among(C, v->sp, v->str, cand, n);
    return -1;
}

/* optimizer = RULE or RULE(hp = value, ...): fills the run's rule and every hyper-parameter (defaults first).
 * A learned rule needs theta = "FILE", except where θ_optional (a meta block: θ may start from the rule's own
 * initialization). */
static int set_optimizer_opt(pctx *C, celo_run *r, const pval *v, int theta_optional)
{
    const char *k = pl_callee(v);
    if (!k) {
        PERR(C, v->sp, "optimizer must name a rule, like adamw(lr = 3e-3)");
        return -1;
    }
    rule *ru = get_rule(C, k, v->sp);
    if (!ru)
        return -1;
    snprintf(r->rule, sizeof r->rule, "%s", k);
    r->nhp = ru->prog.nhp;
    for (int i = 0; i < ru->prog.nhp; i++) {
        snprintf(r->hp_name[i], CELO_NAME_MAX, "%s", ru->prog.hp[i].name);
        r->hp[i] = ru->prog.hp[i].def;
    }
    /* theta = "FILE": a learned rule's meta-parameters, an argument after its hyper-parameters */
    const char *names[CELO_MAX_HP + 1];
    for (int i = 0; i < ru->prog.nhp; i++)
        names[i] = ru->prog.hp[i].name;
    int learned = ru->prog.ntheta > 0, nn = ru->prog.nhp;
    if (learned && celo_program_hp_index(&ru->prog, "theta") < 0)
        names[nn++] = "theta";
    for (const parg *a = v->kind == PV_CALL ? v->args : NULL; !learned && a; a = a->next)
        if (a->name && !strcmp(a->name, "theta")) {
            PERR(C, a->name_span, "optimizer '%s' has no learned parameters: remove theta", k);
            return -1;
        }
    callargs a;
    if (pl_bind_args(C, v, names, nn, &a))
        return -1;
    for (int q = 0; q < a.n; q++) {
        int i = celo_program_hp_index(&ru->prog, a.names[q]);
        if (i < 0) { /* theta */
            if (pl_want_str(C, a.vals[q], "theta", r->theta, sizeof r->theta))
                return -1;
        } else if (pl_want_num(C, a.vals[q], a.names[q], &r->hp[i]))
            return -1;
    }
    if (learned && !r->theta[0] && !theta_optional) {
        PERR(C, v->sp,
             "optimizer '%s' is learned: give its meta-parameters, %s(theta = \"FILE\", …) (celo theta init "
             "makes one)",
             k, k);
        return -1;
    }
    return 0;
}

int pl_set_optimizer(pctx *C, celo_run *r, const pval *v)
{
    return set_optimizer_opt(C, r, v, 0);
}

static const char *train_keys[] = {"task", "optimizer",  "steps", "schedule", "eval",
                                   "log",  "checkpoint", "seed",  "augment"};

static int hp_index(const celo_run *r, const char *name)
{
    for (int i = 0; i < r->nhp; i++)
        if (!strcmp(r->hp_name[i], name))
            return i;
    return -1;
}

/* A run's schedule = NAME or NAME(param = value, ...), kept until the run's optimizer is known (apply_schedule). */
static int parse_schedule(pctx *C, sched_use *su, const pval *v)
{
    memset(su, 0, sizeof *su);
    const char *k = pl_callee(v);
    def *d = k ? module_find(C->mod, k) : NULL;
    if (!d || d->kind != DEF_SCHEDULE) {
        if (!k)
            PERR(C, v->sp, "schedule must name a schedule, like cosine or warmup_cosine(warmup = 100)");
        else
            PERR(C, v->sp, d ? "'%s' is not a schedule" : "unknown schedule '%s'", k);
        const char *cand[256];
        int n = 0;
        for (def *x = C->mod->defs; x && n < 256; x = x->next)
            if (x->kind == DEF_SCHEDULE)
                cand[n++] = x->name;
        if (k && !d)
            pl_suggest_among(C, v->sp, k, cand, n);
        return -1;
    }
    if (module_schedule_check(C->mod, d)) { /* its errors are reported once, where it is defined */
        C->nerr++;
        return -1;
    }
    const char *names[16];
    int np = 0;
    for (const param *p = d->params; p && np < 16; p = p->next)
        names[np++] = p->name;
    callargs a;
    if (pl_bind_args(C, v, names, np, &a))
        return -1;
    for (const param *p = d->params; p; p = p->next) {
        const pval *x = pl_arg_of(&a, p->name);
        if (!x && !p->def) {
            PERR(C, v->sp, "schedule '%s' needs a value for '%s': write %s(%s = …)", d->name, p->name, d->name,
                 p->name);
            return -1;
        }
        if (x) {
            su->names[su->n] = p->name;
            if (pl_want_num(C, x, p->name, &su->vals[su->n]))
                return -1;
            su->n++;
        }
    }
    su->d = d;
    su->sp = v->sp;
    return 0;
}

/* Run r (its optimizer set) under schedule su: r names the rule compiled with it (RULE@SCHEDULE) and gets the
 * schedule's parameters as hyper-parameters. The rule must have the hyper-parameter a schedule scales. */
int pl_apply_schedule(pctx *C, celo_run *r, const sched_use *su, const def *blk)
{
    if (!su->d || schedule_is_one(su->d) || !r->rule[0] || !strcmp(r->rule, "?"))
        return 0; /* the rule as it is: constant needs no lr */
    if (hp_index(r, celo_scheduled_hp) < 0) {
        PERR(C, blk->name_span, "a schedule scales the hyper-parameter '%s', and optimizer '%s' has none",
             celo_scheduled_hp, r->rule);
        return -1;
    }
    for (const param *p = su->d->params; p; p = p->next)
        if (hp_index(r, p->name) >= 0) {
            PERR(C, su->sp, "optimizer '%s' and schedule '%s' both have a hyper-parameter '%s'", r->rule, su->d->name,
                 p->name);
            return -1;
        }
    rule *v = module_rule_scheduled(C->mod, module_find(C->mod, r->rule), su->d);
    if (!v) {
        C->nerr++;
        return -1;
    }
    if (strlen(v->prog.name) >= sizeof r->rule) {
        PERR(C, blk->name_span, "'%s' is too long a name (at most %d characters)", v->prog.name,
             (int)sizeof r->rule - 1);
        return -1;
    }
    snprintf(r->rule, sizeof r->rule, "%s", v->prog.name);
    for (int i = r->nhp; i < v->prog.nhp; i++) {
        snprintf(r->hp_name[i], CELO_NAME_MAX, "%s", v->prog.hp[i].name);
        r->hp[i] = v->prog.hp[i].def;
    }
    r->nhp = v->prog.nhp;
    for (int q = 0; q < su->n; q++)
        r->hp[hp_index(r, su->names[q])] = su->vals[q];
    return 0;
}

/* augment = reparam(level = global | tensor | parameter, range = [lo, hi]): task augmentation (docs/meta.md) */
static int parse_augment(pctx *C, celo_run *r, const pval *v)
{
    const char *k = pl_callee(v);
    if (!k || strcmp(k, "reparam")) {
        PERR(C, v->sp, "augment must be reparam(level = global, range = [1e-3, 1e3]) (or level = tensor, parameter)");
        return -1;
    }
    static const char *ps[] = {"level", "range"};
    callargs a;
    if (pl_bind_args(C, v, ps, 2, &a))
        return -1;
    const pval *lv = pl_arg_of(&a, "level"), *rv = pl_arg_of(&a, "range");
    r->reparam = 1, r->reparam_lo = 1e-3, r->reparam_hi = 1e3; /* the recipe's (learned-optimizers.md §1.5) */
    if (lv) {
        static const char *levels[] = {"global", "tensor", "parameter"};
        int q = 0;
        while (q < 3 && (lv->kind != PV_NAME || strcmp(lv->str, levels[q])))
            q++;
        if (q == 3) {
            PERR(C, lv->sp, "level must be global, tensor or parameter");
            return -1;
        }
        r->reparam = q + 1;
    }
    if (!rv)
        return 0;
    if (rv->kind != PV_LIST || rv->nargs != 2) {
        PERR(C, rv->sp, "range must be [lo, hi] with 0 < lo <= hi");
        return -1;
    }
    if (pl_want_num(C, rv->args->value, "range", &r->reparam_lo) ||
        pl_want_num(C, rv->args->next->value, "range", &r->reparam_hi))
        return -1;
    if (!(r->reparam_lo > 0) || r->reparam_hi < r->reparam_lo) {
        PERR(C, rv->sp, "range must be [lo, hi] with 0 < lo <= hi");
        return -1;
    }
    return 0;
}

/* The keys a train block and a compare block share. Returns 1 when the key was one of them. */
int pl_run_key(pctx *C, celo_run *r, sched_use *su, const prop *p, const def *d)
{
    long long iv;
    if (!strcmp(p->key, "task")) {
        int t = pl_find_task(C, p->value);
        r->task = t >= 0 ? t : -2; /* -2: given but wrong (reported), so no "needs a task" on top */
    } else if (!strcmp(p->key, "steps")) {
        if (!pl_want_int(C, p->value, "steps", 1, 1LL << 40, &iv))
            r->steps = iv;
    } else if (!strcmp(p->key, "schedule")) {
        parse_schedule(C, su, p->value);
    } else if (!strcmp(p->key, "seed")) {
        if (!pl_want_int(C, p->value, "seed", 0, 1LL << 53, &iv))
            r->seed = (uint64_t)iv;
    } else if (!strcmp(p->key, "eval") || !strcmp(p->key, "eval_every")) {
        if (p->word && strcmp(p->word, "every"))
            PERR(C, p->word_span, "write 'eval every N;'");
        else if (!pl_want_int(C, p->value, "eval every", 1, 1LL << 40, &iv))
            r->eval_every = iv;
    } else if (!strcmp(p->key, "augment")) {
        parse_augment(C, r, p->value);
    } else if (!strcmp(p->key, "log")) {
        pl_want_str(C, p->value, "log", r->log, sizeof r->log);
    } else if (!strcmp(p->key, "checkpoint")) {
        if (p->word && !strcmp(p->word, "every")) {
            if (!pl_want_int(C, p->value, "checkpoint every", 1, 1LL << 40, &iv))
                r->checkpoint_every = iv;
        } else if (p->word)
            PERR(C, p->word_span, "write 'checkpoint every N;' or 'checkpoint \"path\";'");
        else
            pl_want_str(C, p->value, "checkpoint", r->checkpoint, sizeof r->checkpoint);
    } else
        return 0;
    (void)d;
    return 1;
}

/* A run name as a file name: "s1[lr=0.001]" -> "s1_lr_0.001" */
void pl_file_name(char *out, size_t len, const char *dir, const char *name, const char *ext)
{
    char clean[CELO_NAME_MAX];
    size_t k = 0;
    for (const char *c = name; *c && k + 1 < sizeof clean; c++) {
        int keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                   *c == '-' || *c == '_';
        if (keep)
            clean[k++] = *c;
        else if (k && clean[k - 1] != '_' && c[1])
            clean[k++] = '_';
    }
    while (k && clean[k - 1] == '_')
        k--;
    clean[k] = 0;
    snprintf(out, len, "%.400s/%s%s", dir, clean, ext);
}

celo_run *pl_new_run(pctx *C)
{
    celo_plan *P = C->plan;
    if (P->nruns == C->cap_runs) {
        C->cap_runs = C->cap_runs ? 2 * C->cap_runs : 16;
        P->runs = realloc(P->runs, (size_t)C->cap_runs * sizeof *P->runs);
    }
    celo_run *r = &P->runs[P->nruns++];
    memset(r, 0, sizeof *r);
    r->task = -1;
    r->group = -1;
    r->entry = -1;
    r->seed = 0;
    return r;
}

void pl_finish_run(pctx *C, celo_run *r, const def *d)
{
    if (r->task == -1)
        PERR(C, d->name_span, "%s '%s' needs a task (task = NAME;)", d->block, d->name);
    if (!r->rule[0])
        PERR(C, d->name_span, "%s '%s' needs an optimizer (optimizer = adamw(lr = 1e-3);)", d->block, d->name);
    if (!r->steps)
        PERR(C, d->name_span, "%s '%s' needs a number of steps (steps = N;)", d->block, d->name);
    if (r->checkpoint_every && !r->checkpoint[0])
        pl_file_name(r->checkpoint, sizeof r->checkpoint, "runs", r->name, ".safetensors");
}

static int build_train(pctx *C, const def *d)
{
    int e0 = C->nerr;
    celo_run *r = pl_new_run(C);
    snprintf(r->name, sizeof r->name, "%s", d->name);
    int ri = C->plan->nruns - 1;
    sched_use su = {0};
    for (const prop *p = d->props; p; p = p->next) {
        r = &C->plan->runs[ri];
        if (!strcmp(p->key, "optimizer")) {
            if (p->word)
                PERR(C, p->word_span, "write optimizer = …");
            else if (pl_set_optimizer(C, r, p->value))
                snprintf(r->rule, sizeof r->rule, "?"); /* given but wrong (reported): no "needs an optimizer" */
        } else if (!pl_run_key(C, r, &su, p, d)) {
            PERR(C, p->key_span, "unknown train key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, train_keys, 9);
        }
    }
    pl_apply_schedule(C, &C->plan->runs[ri], &su, d);
    pl_finish_run(C, &C->plan->runs[ri], d);
    return C->nerr == e0 ? 0 : -1;
}

/* logspace(a, b, n), linspace(a, b, n) or a list of numbers */
static int value_grid(pctx *C, const pval *v, double *out, int max, int *n)
{
    *n = 0;
    if (v->kind == PV_NUM) {
        out[(*n)++] = v->num;
        return 0;
    }
    if (v->kind == PV_LIST) {
        for (const parg *a = v->args; a; a = a->next) {
            if (*n >= max) {
                PERR(C, a->value->sp, "at most %d values", max);
                return -1;
            }
            if (pl_want_num(C, a->value, "a swept value", &out[*n]))
                return -1;
            (*n)++;
        }
        if (!*n)
            PERR(C, v->sp, "an empty list of values");
        return *n ? 0 : -1;
    }
    const char *k = pl_callee(v);
    if (k && (!strcmp(k, "logspace") || !strcmp(k, "linspace"))) {
        static const char *ps[] = {"from", "to", "n"};
        callargs a;
        if (pl_bind_args(C, v, ps, 3, &a))
            return -1;
        double lo, hi;
        long long cnt;
        if (a.n != 3) {
            PERR(C, v->sp, "%s(from, to, n) takes three arguments", k);
            return -1;
        }
        if (pl_want_num(C, pl_arg_of(&a, "from"), "from", &lo) || pl_want_num(C, pl_arg_of(&a, "to"), "to", &hi) ||
            pl_want_int(C, pl_arg_of(&a, "n"), "n", 1, max, &cnt))
            return -1;
        int lg = !strcmp(k, "logspace");
        if (lg && (lo <= 0 || hi <= 0)) {
            PERR(C, v->sp, "logspace needs positive bounds");
            return -1;
        }
        for (int i = 0; i < cnt; i++) {
            double f = cnt == 1 ? 0 : (double)i / (double)(cnt - 1);
            out[i] = lg ? exp(log(lo) + f * (log(hi) - log(lo))) : lo + f * (hi - lo);
        }
        *n = (int)cnt;
        return 0;
    }
    PERR(C, v->sp, "values to sweep must be a list [a, b, …], logspace(from, to, n) or linspace(from, to, n)");
    return -1;
}

int pl_new_group(pctx *C, const def *d, const char *kind)
{
    celo_plan *P = C->plan;
    if (P->ngroups == C->cap_groups) {
        C->cap_groups = C->cap_groups ? 2 * C->cap_groups : 4;
        P->groups = realloc(P->groups, (size_t)C->cap_groups * sizeof *P->groups);
    }
    celo_group *g = &P->groups[P->ngroups];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", d->name);
    snprintf(g->kind, sizeof g->kind, "%s", kind);
    snprintf(g->metric, sizeof g->metric, "eval_loss");
    g->first = P->nruns;
    return P->ngroups++;
}

static void set_metric(pctx *C, celo_group *g, const pval *v)
{
    if (v->kind != PV_NAME ||
        (strcmp(v->str, "eval_loss") && strcmp(v->str, "eval_acc") && strcmp(v->str, "train_loss")))
        PERR(C, v->sp, "metric must be eval_loss, eval_acc or train_loss");
    else
        snprintf(g->metric, sizeof g->metric, "%s", v->str);
}

/* sweep NAME { train = T; lr = logspace(1e-4, 1e-1, 7); ... } : the cartesian product of the swept values */
static int build_sweep(pctx *C, const def *d)
{
    int e0 = C->nerr;
    const pval *trainv = NULL;
    for (const prop *p = d->props; p; p = p->next)
        if (!strcmp(p->key, "train"))
            trainv = p->value;
    if (!trainv || trainv->kind != PV_NAME) {
        PERR(C, trainv ? trainv->sp : d->name_span,
             "sweep '%s' needs train = NAME (the run whose hyper-parameters it varies)", d->name);
        return -1;
    }
    int base = -1;
    for (int i = 0; i < C->plan->nruns; i++)
        if (C->plan->runs[i].group < 0 && !strcmp(C->plan->runs[i].name, trainv->str))
            base = i;
    if (base < 0) {
        PERR(C, trainv->sp, "unknown train '%s' (define it above the sweep)", trainv->str);
        return -1;
    }
    int gi = pl_new_group(C, d, "sweep");
    const char *keys[8];
    double vals[8][64];
    int nv[8], nk = 0;
    for (const prop *p = d->props; p; p = p->next) {
        if (!strcmp(p->key, "train"))
            continue;
        if (!strcmp(p->key, "metric")) {
            set_metric(C, &C->plan->groups[gi], p->value);
            continue;
        }
        if (hp_index(&C->plan->runs[base], p->key) < 0) {
            PERR(C, p->key_span, "'%s' is not a hyper-parameter of %s (the optimizer of %s)", p->key,
                 C->plan->runs[base].rule, trainv->str);
            const char *cand[CELO_MAX_HP];
            for (int i = 0; i < C->plan->runs[base].nhp; i++)
                cand[i] = C->plan->runs[base].hp_name[i];
            pl_suggest_among(C, p->key_span, p->key, cand, C->plan->runs[base].nhp);
            continue;
        }
        if (nk == 8) {
            PERR(C, p->key_span, "a sweep varies at most 8 hyper-parameters");
            continue;
        }
        if (value_grid(C, p->value, vals[nk], 64, &nv[nk]) == 0)
            keys[nk++] = p->key;
    }
    if (C->nerr != e0)
        return -1;
    long long total = 1;
    for (int k = 0; k < nk; k++)
        total *= nv[k];
    if (total > 4096) {
        PERR(C, d->name_span, "sweep '%s' would make %lld runs (at most 4096)", d->name, total);
        return -1;
    }
    celo_run tmpl = C->plan->runs[base];
    for (long long q = 0; q < total; q++) {
        celo_run *r = pl_new_run(C);
        *r = tmpl;
        r->group = gi;
        long long rem = q;
        int len = snprintf(r->name, sizeof r->name, "%s", d->name);
        for (int k = 0; k < nk; k++) {
            double v = vals[k][rem % nv[k]];
            rem /= nv[k];
            r->hp[hp_index(r, keys[k])] = v;
            if (len < (int)sizeof r->name)
                len += snprintf(r->name + len, sizeof r->name - (size_t)len, "%s%s=%.3g", k ? "," : "[", keys[k], v);
        }
        if (nk && len < (int)sizeof r->name)
            snprintf(r->name + len, sizeof r->name - (size_t)len, "]");
        /* logs and checkpoints of the candidates go beside the base run's, one per candidate */
        if (tmpl.log[0])
            pl_file_name(r->log, sizeof r->log, "runs", r->name, ".csv");
        if (tmpl.checkpoint[0])
            pl_file_name(r->checkpoint, sizeof r->checkpoint, "runs", r->name, ".safetensors");
    }
    C->plan->groups[gi].count = (int)total;
    return 0;
}

/* compare NAME { task = T; optimizers = [adamw, lion(b1 = 0.95), mine]; steps = N; tune lr = logspace(...);
 *                out "runs/compare"; ... } : every optimizer, each tuned over the given values */
static int build_compare(pctx *C, const def *d)
{
    int e0 = C->nerr;
    celo_run tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    tmpl.task = -1;
    const pval *opts = NULL, *tune = NULL;
    const char *tune_key = NULL;
    span tune_sp = d->name_span;
    sched_use su = {0};
    int gi = pl_new_group(C, d, "compare");
    snprintf(C->plan->groups[gi].out, sizeof C->plan->groups[gi].out, "runs/%.200s", d->name);
    static const char *keys[] = {"task",       "optimizers", "steps", "schedule", "eval",  "log",
                                 "checkpoint", "seed",       "tune",  "out",      "metric"};
    for (const prop *p = d->props; p; p = p->next) {
        if (!strcmp(p->key, "optimizers"))
            opts = p->value;
        else if (!strcmp(p->key, "tune")) {
            if (!p->word) {
                PERR(C, p->key_span, "write 'tune lr = …;' naming the hyper-parameter to tune");
                continue;
            }
            tune_key = p->word;
            tune = p->value;
            tune_sp = p->word_span;
        } else if (!strcmp(p->key, "out"))
            pl_want_str(C, p->value, "out", C->plan->groups[gi].out, sizeof C->plan->groups[gi].out);
        else if (!strcmp(p->key, "metric"))
            set_metric(C, &C->plan->groups[gi], p->value);
        else if (!strcmp(p->key, "log") || !strcmp(p->key, "checkpoint"))
            PERR(C, p->key_span, "a compare block writes one log per run under its out folder; remove '%s'", p->key);
        else if (!pl_run_key(C, &tmpl, &su, p, d)) {
            PERR(C, p->key_span, "unknown compare key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, keys, 11);
        }
    }
    if (!opts || opts->kind != PV_LIST || !opts->nargs) {
        PERR(C, opts ? opts->sp : d->name_span, "compare '%s' needs optimizers = [rule, rule(hp = v), …]", d->name);
        return -1;
    }
    double tv[64];
    int ntv = 1;
    tv[0] = 0;
    if (tune && value_grid(C, tune, tv, 64, &ntv))
        return -1;
    if (C->nerr != e0)
        return -1;
    int entry = 0, tuned = 0, scheduled = 0;
    for (const parg *o = opts->args; o; o = o->next, entry++) {
        celo_run base = tmpl;
        if (pl_set_optimizer(C, &base, o->value))
            continue;
        char plain[CELO_NAME_MAX]; /* the rule's name, before the schedule's is added to it */
        snprintf(plain, sizeof plain, "%s", base.rule);
        /* a compare's schedule scales the learning rate of the entries that have one; an entry without (a learned
         * rule with a schedule of its own, as celo) runs as it is */
        int has_lr = hp_index(&base, celo_scheduled_hp) >= 0;
        scheduled += has_lr;
        if (has_lr && pl_apply_schedule(C, &base, &su, d))
            continue;
        /* a rule listed again (other hyper-parameters) gets its own runs, named rule#2, rule#3, ... */
        int occ = 1, last = -1;
        for (int k = C->plan->groups[gi].first; k < C->plan->nruns; k++)
            if (C->plan->runs[k].entry != last) {
                last = C->plan->runs[k].entry;
                occ += !strcmp(C->plan->runs[k].rule, base.rule);
            }
        char label[CELO_NAME_MAX];
        if (occ > 1)
            snprintf(label, sizeof label, "%.40s#%d", plain, occ);
        else
            snprintf(label, sizeof label, "%.40s", plain);
        /* an entry without the tuned hyper-parameter (a learned rule with no learning rate, say) runs once, untuned;
         * a name that no entry has is an error below */
        int ti = tune_key ? hp_index(&base, tune_key) : -1;
        tuned += ti >= 0;
        for (int q = 0; q < (ti >= 0 ? ntv : 1); q++) {
            celo_run *r = pl_new_run(C);
            *r = base;
            r->group = gi;
            r->entry = entry;
            if (ti >= 0) {
                r->hp[ti] = tv[q];
                snprintf(r->name, sizeof r->name, "%.24s.%.24s[%s=%.3g]", d->name, label, tune_key, tv[q]);
            } else
                snprintf(r->name, sizeof r->name, "%.30s.%.30s", d->name, label);
            pl_file_name(r->log, sizeof r->log, C->plan->groups[gi].out, r->name, ".csv");
            pl_finish_run(C, r, d);
        }
    }
    if (su.d && !schedule_is_one(su.d) && !scheduled && C->nerr == e0)
        PERR(C, d->name_span, "a schedule scales the hyper-parameter '%s', and no optimizer of '%s' has one",
             celo_scheduled_hp, d->name);
    if (tune_key && !tuned && C->nerr == e0)
        PERR(C, tune_sp, "no optimizer of '%s' has a hyper-parameter '%s' to tune", d->name, tune_key);
    C->plan->groups[gi].count = C->plan->nruns - C->plan->groups[gi].first;
    return C->nerr == e0 ? 0 : -1;
}

/* eval NAME { tasks = [fm28, conv]; optimizers = [adamw, lion, celo2(theta = "…")]; reference = adamw;
 *             tune lr = logspace(1e-4, 1e-1, 7); seeds = 3; steps = 2000 (or one per task: [2000, 500]);
 *             eval every 100; schedule = …; metric = eval_loss; out "runs/NAME"; }
 * Runs: for each task, optimizer entry, tuned value and seed 0 .. seeds - 1 (docs/meta.md, "Evaluating"). */
static int build_eval(pctx *C, const def *d)
{
    int e0 = C->nerr;
    celo_run tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    tmpl.task = -1;
    const pval *opts = NULL, *tune = NULL, *tasks = NULL, *steps = NULL, *ref = NULL;
    const char *tune_key = NULL;
    span tune_sp = d->name_span;
    sched_use su = {0};
    int gi = pl_new_group(C, d, "eval");
    celo_group *g = &C->plan->groups[gi];
    g->seeds = 3;
    snprintf(g->out, sizeof g->out, "runs/%.200s", d->name);
    static const char *keys[] = {"tasks", "optimizers", "reference", "tune",   "seeds",
                                 "steps", "schedule",   "eval",      "metric", "out"};
    long long iv;
    for (const prop *p = d->props; p; p = p->next) {
        g = &C->plan->groups[gi];
        if (!strcmp(p->key, "optimizers"))
            opts = p->value;
        else if (!strcmp(p->key, "tasks"))
            tasks = p->value;
        else if (!strcmp(p->key, "reference"))
            ref = p->value;
        else if (!strcmp(p->key, "steps"))
            steps = p->value;
        else if (!strcmp(p->key, "seeds")) {
            if (!pl_want_int(C, p->value, "seeds", 1, 1000, &iv))
                g->seeds = (int)iv;
        } else if (!strcmp(p->key, "tune")) {
            if (!p->word) {
                PERR(C, p->key_span, "write 'tune lr = …;' naming the hyper-parameter to tune");
                continue;
            }
            tune_key = p->word, tune = p->value, tune_sp = p->word_span;
        } else if (!strcmp(p->key, "out"))
            pl_want_str(C, p->value, "out", g->out, sizeof g->out);
        else if (!strcmp(p->key, "metric"))
            set_metric(C, g, p->value);
        else if (!strcmp(p->key, "schedule") || !strcmp(p->key, "eval") || !strcmp(p->key, "eval_every"))
            pl_run_key(C, &tmpl, &su, p, d);
        else {
            PERR(C, p->key_span, "unknown eval key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, keys, (int)(sizeof keys / sizeof *keys));
        }
    }
    if (!opts || opts->kind != PV_LIST || !opts->nargs) {
        PERR(C, opts ? opts->sp : d->name_span, "eval '%s' needs optimizers = [rule, rule(theta = \"…\"), …]", d->name);
        return -1;
    }
    if (!tasks || tasks->kind != PV_LIST || !tasks->nargs) {
        PERR(C, tasks ? tasks->sp : d->name_span, "eval '%s' needs tasks = [task, …]", d->name);
        return -1;
    }
    int ntask = tasks->nargs, task_idx[64];
    long long budget[64];
    if (ntask > 64) {
        PERR(C, tasks->sp, "an eval has at most 64 tasks");
        return -1;
    }
    int k = 0;
    for (const parg *a = tasks->args; a; a = a->next, k++)
        task_idx[k] = pl_find_task(C, a->value);
    if (!steps)
        PERR(C, d->name_span, "eval '%s' needs each task's budget (steps = N; or steps = [N1, N2, …], one per task)",
             d->name);
    else if (steps->kind == PV_LIST) {
        if (steps->nargs != ntask)
            PERR(C, steps->sp, "steps lists %d budgets for %d tasks", steps->nargs, ntask);
        k = 0;
        for (const parg *a = steps->args; a && k < ntask; a = a->next, k++)
            pl_want_int(C, a->value, "steps", 1, 1LL << 40, &budget[k]);
    } else if (!pl_want_int(C, steps, "steps", 1, 1LL << 40, &budget[0]))
        for (k = 1; k < ntask; k++)
            budget[k] = budget[0];
    double tv[64];
    int ntv = 1;
    tv[0] = 0;
    if (tune && value_grid(C, tune, tv, 64, &ntv))
        return -1;
    if (C->nerr != e0)
        return -1;
    /* the entries (checked once), then the runs task by task */
    celo_run base[32];
    char label[32][CELO_NAME_MAX];
    const char *rname[32];
    int nent = 0, tuned = 0, refent = ref ? -1 : 0;
    for (const parg *o = opts->args; o; o = o->next) {
        if (nent == 32) {
            PERR(C, o->value->sp, "an eval compares at most 32 optimizers");
            return -1;
        }
        base[nent] = tmpl;
        if (pl_set_optimizer(C, &base[nent], o->value))
            continue;
        if (hp_index(&base[nent], celo_scheduled_hp) >= 0 && pl_apply_schedule(C, &base[nent], &su, d))
            continue;
        const char *rn = rname[nent] = pl_callee(o->value);
        int occ = 1;
        for (int q = 0; q < nent; q++)
            occ += !strcmp(rname[q], rn);
        if (occ > 1)
            snprintf(label[nent], CELO_NAME_MAX, "%.40s#%d", rn, occ);
        else
            snprintf(label[nent], CELO_NAME_MAX, "%.40s", rn);
        if (ref && refent < 0 && pl_callee(ref) && !strcmp(pl_callee(ref), label[nent]))
            refent = nent;
        tuned += tune_key && hp_index(&base[nent], tune_key) >= 0;
        nent++;
    }
    if (C->nerr != e0)
        return -1;
    if (refent < 0) {
        PERR(C, ref->sp, "reference must be one of the optimizers (by name; a rule listed twice: name#2)");
        return -1;
    }
    if (tune_key && !tuned) {
        PERR(C, tune_sp, "no optimizer of '%s' has a hyper-parameter '%s' to tune", d->name, tune_key);
        return -1;
    }
    C->plan->groups[gi].reference = refent;
    for (int t = 0; t < ntask; t++)
        for (int e = 0; e < nent; e++) {
            int ti = tune_key ? hp_index(&base[e], tune_key) : -1;
            for (int q = 0; q < (ti >= 0 ? ntv : 1); q++)
                for (int s = 0; s < C->plan->groups[gi].seeds; s++) {
                    celo_run *r = pl_new_run(C);
                    *r = base[e];
                    r->group = gi;
                    r->entry = e;
                    r->task = task_idx[t];
                    r->steps = budget[t];
                    r->seed = (uint64_t)s;
                    if (!r->eval_every)
                        r->eval_every = budget[t] >= 20 ? budget[t] / 20 : 1;
                    char tv_s[48] = "";
                    if (ti >= 0) {
                        r->hp[ti] = tv[q];
                        snprintf(tv_s, sizeof tv_s, "[%s=%.3g]", tune_key, tv[q]);
                    }
                    char nm[256];
                    snprintf(nm, sizeof nm, "%.14s.%.14s.%.16s%s#%d", d->name, C->plan->tasks[task_idx[t]].name,
                             label[e], tv_s, s);
                    snprintf(r->name, sizeof r->name, "%.63s", nm);
                    pl_file_name(r->log, sizeof r->log, C->plan->groups[gi].out, r->name, ".csv");
                    pl_finish_run(C, r, d);
                }
        }
    C->plan->groups[gi].count = C->plan->nruns - C->plan->groups[gi].first;
    return C->nerr == e0 ? 0 : -1;
}

/* meta NAME { optimizer = celo2(…); tasks = [fm8, digits8]; particles = 8; estimator = pes(truncation = 50,
 *             std = 0.01); horizon = loguniform(100, 2000); offset = 2000; outer = adamw(lr = 5e-5, wd = 1e-4);
 *             steps = 200; seed = 0; train_only = ["ff_mod_stack"]; log "…"; checkpoint every 50; out "…"; }
 * A group of kind "meta" (plan.h): runs[first] the outer run, then one run per task family (docs/meta.md). */
static const char *meta_keys[] = {"optimizer",  "tasks", "particles",  "estimator", "horizon",
                                  "offset",     "outer", "steps",      "seed",      "theta_seed",
                                  "train_only", "log",   "checkpoint", "out",       "augment"};

static int meta_estimator(pctx *C, celo_group *g, const pval *v)
{
    const char *k = pl_callee(v);
    if (!k || (strcmp(k, "pes") && strcmp(k, "es"))) {
        PERR(C, v->sp, "estimator must be pes(truncation = 50, std = 0.01) or es(std = 0.01)");
        return -1;
    }
    snprintf(g->estimator, sizeof g->estimator, "%s", k);
    static const char *pes_args[] = {"truncation", "std"}, *es_args[] = {"std"};
    int pes = !strcmp(k, "pes");
    callargs a;
    if (pl_bind_args(C, v, pes ? pes_args : es_args, pes ? 2 : 1, &a))
        return -1;
    const pval *tv = pl_arg_of(&a, "truncation"), *sv = pl_arg_of(&a, "std");
    long long iv;
    if (tv && pl_want_int(C, tv, "truncation", 1, 1 << 20, &iv) == 0)
        g->truncation = iv;
    if (sv && pl_want_num(C, sv, "std", &g->std) == 0 && !(g->std > 0)) {
        PERR(C, sv->sp, "std must be positive");
        return -1;
    }
    return 0;
}

static int meta_horizon(pctx *C, celo_group *g, const pval *v)
{
    long long lo, hi;
    if (v->kind == PV_NUM) {
        if (pl_want_int(C, v, "horizon", 1, 1LL << 40, &lo))
            return -1;
        g->hmin = g->hmax = lo;
        return 0;
    }
    if (v->kind != PV_CALL || strcmp(v->str, "loguniform") || v->nargs != 2 || v->args->name || v->args->next->name) {
        PERR(C, v->sp, "horizon must be a number of steps or loguniform(MIN, MAX)");
        return -1;
    }
    if (pl_want_int(C, v->args->value, "horizon's minimum", 1, 1LL << 40, &lo) ||
        pl_want_int(C, v->args->next->value, "horizon's maximum", 1, 1LL << 40, &hi))
        return -1;
    if (lo > hi) {
        PERR(C, v->sp, "loguniform(%lld, %lld): the minimum is above the maximum", lo, hi);
        return -1;
    }
    g->hmin = lo, g->hmax = hi;
    return 0;
}

/* train_only = ["part", ...]: the parts joined by commas into out; `what` names what the parts are parts of */
int pl_train_only_list(pctx *C, const pval *v, const char *what, const char *example, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    if (v->kind != PV_LIST || !v->nargs) {
        PERR(C, v->sp, "train_only must be a list of strings (parts of %s), like [\"%s\"]", what, example);
        return -1;
    }
    for (const parg *a = v->args; a; a = a->next) {
        const pval *x = a->value;
        if (x->kind != PV_STR || !x->str[0] || strchr(x->str, ',')) {
            PERR(C, x->sp, "train_only's entries are non-empty strings without commas");
            return -1;
        }
        int k = snprintf(out + len, cap - len, "%s%s", len ? "," : "", x->str);
        if (k < 0 || (size_t)k >= cap - len) {
            PERR(C, x->sp, "train_only is longer than %zu characters", cap - 1);
            return -1;
        }
        len += (size_t)k;
    }
    return 0;
}

static int meta_train_only(pctx *C, celo_group *g, const pval *v)
{
    return pl_train_only_list(C, v, "θ names", "ff_mod_stack", g->train_only, sizeof g->train_only);
}

static int build_meta(pctx *C, const def *d)
{
    int e0 = C->nerr;
    int gi = pl_new_group(C, d, "meta");
    celo_group *g = &C->plan->groups[gi];
    g->particles = 8;
    snprintf(g->estimator, sizeof g->estimator, "pes");
    g->truncation = 50;
    g->std = 0.01;
    g->hmin = 100, g->hmax = 2000;
    g->offset = -1; /* default: the longest horizon */
    pl_file_name(g->out, sizeof g->out, "runs", d->name, ".theta.safetensors");
    celo_run outer;
    memset(&outer, 0, sizeof outer);
    snprintf(outer.name, sizeof outer.name, "%s", d->name);
    outer.task = -1, outer.group = gi, outer.entry = -1;
    celo_run inner;
    memset(&inner, 0, sizeof inner);
    inner.task = -1, inner.group = gi;
    const pval *tasks = NULL, *optv = NULL, *outerv = NULL;
    span opt_sp = d->name_span;
    long long iv;
    sched_use su = {0};
    for (const prop *p = d->props; p; p = p->next) {
        const pval *v = p->value;
        if (p->word && strcmp(p->key, "checkpoint")) {
            PERR(C, p->word_span, "write %s = …", p->key);
            continue;
        }
        if (!strcmp(p->key, "optimizer")) {
            optv = v, opt_sp = v->sp;
            if (set_optimizer_opt(C, &inner, v, 1))
                snprintf(inner.rule, sizeof inner.rule, "?");
        } else if (!strcmp(p->key, "outer")) {
            outerv = v;
            if (pl_set_optimizer(C, &outer, v))
                snprintf(outer.rule, sizeof outer.rule, "?");
        } else if (!strcmp(p->key, "tasks")) {
            tasks = v;
        } else if (!strcmp(p->key, "particles")) {
            if (!pl_want_int(C, v, "particles", 1, 4096, &iv))
                g->particles = (int)iv;
        } else if (!strcmp(p->key, "estimator")) {
            meta_estimator(C, g, v);
        } else if (!strcmp(p->key, "horizon")) {
            meta_horizon(C, g, v);
        } else if (!strcmp(p->key, "offset")) {
            if (!pl_want_int(C, v, "offset", 0, 1LL << 40, &iv))
                g->offset = iv;
        } else if (!strcmp(p->key, "theta_seed")) {
            if (!pl_want_int(C, v, "theta_seed", 0, 1LL << 53, &iv))
                g->theta_seed = (uint64_t)iv;
        } else if (!strcmp(p->key, "train_only")) {
            meta_train_only(C, g, v);
        } else if (!strcmp(p->key, "out")) {
            pl_want_str(C, v, "out", g->out, sizeof g->out);
        } else if (!strcmp(p->key, "augment")) {
            parse_augment(C, &inner, v);
        } else if (!strcmp(p->key, "steps") || !strcmp(p->key, "seed") || !strcmp(p->key, "log") ||
                   !strcmp(p->key, "checkpoint")) {
            pl_run_key(C, &outer, &su, p, d);
        } else {
            PERR(C, p->key_span, "unknown meta key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, meta_keys, (int)(sizeof meta_keys / sizeof *meta_keys));
        }
    }
    g = &C->plan->groups[gi];
    if (!optv)
        PERR(C, d->name_span, "meta '%s' needs the learned rule it trains (optimizer = celo2_meta;)", d->name);
    if (!tasks)
        PERR(C, d->name_span, "meta '%s' needs its task families (tasks = [fm8, …];)", d->name);
    if (!outer.steps)
        PERR(C, d->name_span, "meta '%s' needs a number of outer steps (steps = N;)", d->name);
    if (g->offset < 0)
        g->offset = g->hmax;
    if (C->nerr != e0)
        return -1;
    if (!outerv) { /* the recipe's outer optimizer (learned-optimizers.md §1.5): AdamW, lr 3e-4, wd 1e-4 */
        pl_set_optimizer(C, &outer, &(pval){.kind = PV_NAME, .str = "adamw", .sp = d->name_span});
        int il = hp_index(&outer, "lr"), iw = hp_index(&outer, "wd");
        if (il >= 0)
            outer.hp[il] = 3e-4;
        if (iw >= 0)
            outer.hp[iw] = 1e-4;
    }
    if (inner.rule[0] && strcmp(inner.rule, "?")) {
        const celo_program *ip = NULL;
        rule *ru = get_rule(C, inner.rule, opt_sp);
        ip = ru ? &ru->prog : NULL;
        if (ip && ip->ntheta == 0)
            PERR(C, opt_sp, "'%s' has no learned parameters: a meta block trains a learned rule's θ", inner.rule);
    }
    if (tasks->kind != PV_LIST || !tasks->nargs)
        PERR(C, tasks->sp, "tasks must be a list of task blocks, like [fm8, digits8]");
    if (outer.checkpoint_every && !outer.checkpoint[0])
        pl_file_name(outer.checkpoint, sizeof outer.checkpoint, "runs", d->name, ".meta.safetensors");
    if (C->nerr != e0)
        return -1;
    outer.task = pl_find_task(C, tasks->args->value); /* unused by the outer run; a valid index for the plan text */
    if (outer.task < 0)
        return -1;
    *pl_new_run(C) = outer;
    int fam = 0;
    for (const parg *a = tasks->args; a; a = a->next, fam++) {
        int t = pl_find_task(C, a->value);
        if (t < 0)
            continue;
        celo_run *r = pl_new_run(C);
        *r = inner;
        r->task = t;
        r->entry = fam;
        r->steps = g->hmax;
        r->seed = outer.seed;
        snprintf(r->name, sizeof r->name, "%.31s/%.31s", d->name, C->plan->tasks[t].name);
    }
    C->plan->groups[gi].count = C->plan->nruns - C->plan->groups[gi].first;
    return C->nerr == e0 ? 0 : -1;
}

int pipeline_build(module *m, celo_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    pctx C = {.mod = m, .plan = plan};
    static const char *kinds[] = {"task", "train", "sweep", "compare", "meta", "eval", "stage", "distill"};
    /* tasks first: a file may use the tasks of a file it imports, whose blocks come after its own */
    for (def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_BLOCK && !strcmp(d->block, "task")) {
            C.file = d->file;
            build_task(&C, d);
        }
    for (def *d = m->defs; d; d = d->next) {
        if (d->kind != DEF_BLOCK)
            continue;
        C.file = d->file;
        if (!strcmp(d->block, "task"))
            continue;
        else if (!strcmp(d->block, "train"))
            build_train(&C, d);
        else if (!strcmp(d->block, "sweep"))
            build_sweep(&C, d);
        else if (!strcmp(d->block, "compare"))
            build_compare(&C, d);
        else if (!strcmp(d->block, "meta"))
            build_meta(&C, d);
        else if (!strcmp(d->block, "eval"))
            build_eval(&C, d);
        else if (!strcmp(d->block, "stage"))
            pl_build_stage(&C, d);
        else if (!strcmp(d->block, "distill"))
            continue; /* below: after every train and stage block it may name */
        else {
            PERR(&C, d->block_span,
                 "unknown block kind '%s' (task, train, sweep, compare, meta, eval, stage or distill)", d->block);
            pl_suggest_among(&C, d->block_span, d->block, kinds, 8);
        }
    }
    for (def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_BLOCK && !strcmp(d->block, "distill")) {
            C.file = d->file;
            pl_build_distill(&C, d);
        }
    free(C.stages);
    return C.nerr;
}
