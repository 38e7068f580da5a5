/*
 * distill.c — distillation stages (distill.h): the teacher next to the student, the stage's losses, and the
 * student's first weights.
 */
#include "distill.h"

#include "ckpt.h"
#include "errmsg.h"
#include "inst.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 64

struct celo_distill {
    celo_model *teacher;
    const celo_run *run;
    int layers;                   /* the attention loss: layers matched */
    char in_tap[MAX_LAYERS][32];  /* h.l.ln_1: the mixer's input, pinned to the teacher's */
    char out_tap[MAX_LAYERS][32]; /* h.l.attn: the mixer's output, matched */
    float *g;                     /* gradients of the matched taps (layers x rows x width), or of logits */
    int64_t gcap;
};

static int has_tap(const celo_model *m, const char *name)
{
    for (int i = 0; i < celo_model_ntaps(m); i++)
        if (!strcmp(celo_model_tap_name(m, i), name))
            return 1;
    return 0;
}

celo_model *celo_model_from_ckpt(const celo_plan *plan, int task, const celo_ckpt *c, const char *path, char *err,
                                 size_t errlen)
{
    const celo_task *tk = &plan->tasks[task];
    celo_task_data *td = celo_task_data_new();
    celo_model *m = NULL;
    if (!td) {
        celo_seterr(err, errlen, "out of memory");
        goto done;
    }
    if (celo_task_data_load(td, tk, 1, err, errlen) || !(m = celo_task_model_new(tk, td, 0, err, errlen)))
        goto done;
    float *p = celo_model_params(m);
    for (int i = 0; i < celo_model_ntensors(m); i++) {
        const celo_param_tensor *t = celo_model_tensor(m, i);
        char e[512];
        if (celo_ckpt_load(c, t->name, p + t->offset, t->ndim, t->shape, e, sizeof e)) {
            celo_seterr(err, errlen, "%s: not weights of task %s's model: %s", path, tk->name, e);
            celo_model_free(m);
            m = NULL;
            break;
        }
    }
done:
    celo_task_data_free(td);
    return m;
}

celo_model *celo_model_from_checkpoint(const celo_plan *plan, int task, const char *path, char *err, size_t errlen)
{
    celo_ckpt c;
    celo_ckpt_init(&c);
    celo_model *m =
        celo_ckpt_read(&c, path, err, errlen) ? NULL : celo_model_from_ckpt(plan, task, &c, path, err, errlen);
    celo_ckpt_free(&c);
    return m;
}

/* the taps of the attention loss: every layer's mixer input and output, in both models */
static int attention_taps(celo_distill *d, const celo_model *student, char *err, size_t errlen)
{
    const celo_model_config *sc = celo_model_cfg(student), *tc = celo_model_cfg(d->teacher);
    if (sc->kind != CELO_MODEL_GPT || tc->kind != CELO_MODEL_GPT) {
        celo_seterr(err, errlen,
                    "run %s: the attention loss matches gpt layers: student and teacher must be gpt models",
                    d->run->name);
        return -1;
    }
    if (sc->gpt.layers != tc->gpt.layers || sc->gpt.dim != tc->gpt.dim || sc->gpt.layers > MAX_LAYERS) {
        celo_seterr(err, errlen,
                    "run %s: the attention loss needs as many layers of the same width as the teacher's "
                    "(student %d x %d, teacher %d x %d)",
                    d->run->name, sc->gpt.layers, sc->gpt.dim, tc->gpt.layers, tc->gpt.dim);
        return -1;
    }
    d->layers = sc->gpt.layers;
    for (int l = 0; l < d->layers; l++) {
        snprintf(d->in_tap[l], sizeof d->in_tap[l], "h.%d.ln_1", l);
        snprintf(d->out_tap[l], sizeof d->out_tap[l], "h.%d.attn", l);
        if (!has_tap(student, d->in_tap[l]) || !has_tap(student, d->out_tap[l]) || !has_tap(d->teacher, d->in_tap[l]) ||
            !has_tap(d->teacher, d->out_tap[l])) {
            celo_seterr(err, errlen, "run %s: no tap %s or %s to match", d->run->name, d->in_tap[l], d->out_tap[l]);
            return -1;
        }
    }
    return 0;
}

celo_distill *celo_distill_new(const celo_plan *plan, const celo_run *run, const celo_model *student, char *err,
                               size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (run->dloss == CELO_DLOSS_TASK)
        return NULL;
    if (!run->teacher_ckpt[0]) {
        celo_seterr(err, errlen, "run %s: its loss needs a teacher, and it has none", run->name);
        return NULL;
    }
    celo_distill *d = calloc(1, sizeof *d);
    if (!d) {
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
        return NULL;
    }
    d->run = run;
    char e[1024];
    if (!(d->teacher = celo_model_from_checkpoint(plan, run->teacher_task, run->teacher_ckpt, e, sizeof e))) {
        celo_seterr(err, errlen, "run %s: teacher: %s", run->name, e);
        goto fail;
    }
    if (run->dloss == CELO_DLOSS_ATTENTION && attention_taps(d, student, err, errlen))
        goto fail;
    return d;
fail:
    celo_distill_free(d);
    return NULL;
}

void celo_distill_free(celo_distill *d)
{
    if (!d)
        return;
    celo_model_free(d->teacher);
    free(d->g);
    free(d);
}

static float *grad_buf(celo_distill *d, int64_t n)
{
    if (n > d->gcap) {
        float *g = realloc(d->g, (size_t)n * sizeof *g);
        if (!g)
            return NULL;
        d->g = g, d->gcap = n;
    }
    return d->g;
}

/* the teacher's logits against the student's: KL, or the mix with cross-entropy on the labels */
static int logit_loss(celo_distill *d, celo_model *s, const celo_batch *b, float *loss, char *err, size_t errlen)
{
    const celo_run *run = d->run;
    celo_tap_shape ts, ss;
    if (celo_model_forward(s, b)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, celo_model_error(s));
        return -1;
    }
    const float *tl = celo_model_tap(d->teacher, "logits", &ts), *sl = celo_model_tap(s, "logits", &ss);
    int64_t rows = (int64_t)b->n * b->seq, V = ss.shape[ss.ndim - 1];
    if (ts.shape[ts.ndim - 1] != V) {
        celo_seterr(err, errlen, "run %s: the teacher has %lld classes, the student %lld", run->name,
                    (long long)ts.shape[ts.ndim - 1], (long long)V);
        return -1;
    }
    float *g = grad_buf(d, 2 * rows * V);
    if (!g) {
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
        return -1;
    }
    double kw = run->dloss == CELO_DLOSS_KL ? 1 : run->kl_weight, cw = run->dloss == CELO_DLOSS_KL ? 0 : run->ce_weight;
    float kl = celo_loss_kl(sl, tl, rows, (int)V, run->temperature, g), ce = 0;
    if (cw != 0) {
        ce = celo_loss_cross_entropy(sl, b->labels, rows, (int)V, g + rows * V);
        for (int64_t i = 0; i < rows * V; i++)
            g[i] = (float)(kw * g[i] + cw * g[rows * V + i]);
    } else if (kw != 1)
        for (int64_t i = 0; i < rows * V; i++)
            g[i] = (float)(kw * g[i]);
    *loss = (float)(kw * kl + cw * ce);
    if (celo_model_backward_from(s, "logits", g)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, celo_model_error(s));
        return -1;
    }
    return 0;
}

/* every layer's mixer fed the teacher's input, its output matched to the teacher's */
static int attention_loss(celo_distill *d, celo_model *s, const celo_batch *b, float *loss, char *err, size_t errlen)
{
    const celo_run *run = d->run;
    int L = d->layers;
    const char *in_names[MAX_LAYERS], *out_names[MAX_LAYERS];
    const float *tin[MAX_LAYERS], *grads[MAX_LAYERS];
    celo_tap_shape sh;
    for (int l = 0; l < L; l++) {
        in_names[l] = d->in_tap[l], out_names[l] = d->out_tap[l];
        tin[l] = celo_model_tap(d->teacher, d->in_tap[l], &sh);
    }
    if (celo_model_forward_pinned(s, b, L, in_names, tin)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, celo_model_error(s));
        return -1;
    }
    int64_t rows = (int64_t)b->n * b->seq, C = sh.shape[sh.ndim - 1];
    float *g = grad_buf(d, (int64_t)L * rows * C);
    if (!g) {
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
        return -1;
    }
    double total = 0;
    for (int l = 0; l < L; l++) {
        const float *t = celo_model_tap(d->teacher, d->out_tap[l], NULL), *y = celo_model_tap(s, d->out_tap[l], NULL);
        float *gl = g + (int64_t)l * rows * C;
        float v = run->dmetric == 0 ? celo_loss_cosine(y, t, rows, (int)C, gl) : celo_loss_mse(y, t, rows * C, gl);
        for (int64_t i = 0; i < rows * C; i++) /* the mean over layers */
            gl[i] /= (float)L;
        total += v;
        grads[l] = gl;
    }
    *loss = (float)(total / L);
    if (celo_model_backward_taps(s, L, out_names, grads)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, celo_model_error(s));
        return -1;
    }
    return 0;
}

int celo_distill_loss_grad(celo_distill *d, celo_model *student, const celo_batch *b, float *loss, char *err,
                           size_t errlen)
{
    if (celo_model_forward(d->teacher, b)) { /* forward only: the teacher keeps no gradients */
        celo_seterr(err, errlen, "run %s: teacher: %s", d->run->name, celo_model_error(d->teacher));
        return -1;
    }
    return d->run->dloss == CELO_DLOSS_ATTENTION ? attention_loss(d, student, b, loss, err, errlen)
                                                 : logit_loss(d, student, b, loss, err, errlen);
}

int celo_distill_init(celo_model *student, const celo_plan *plan, const celo_run *run, char *err, size_t errlen)
{
    if (!run->init_ckpt[0] || run->init_map == CELO_INIT_NONE)
        return 0;
    char e[1024];
    celo_model *src = celo_model_from_checkpoint(plan, run->init_task, run->init_ckpt, e, sizeof e);
    if (!src) {
        celo_seterr(err, errlen, "run %s: initial weights: %s", run->name, e);
        return -1;
    }
    int rc = 0;
    if (run->init_map == CELO_INIT_COPY) {
        if (celo_model_copy_from(student, src, "", "") < 1) {
            celo_seterr(err, errlen, "run %s: %s has no tensor of the student's names and shapes", run->name,
                        run->init_ckpt);
            rc = -1;
        }
    } else if (celo_model_mamba_from(student, src,
                                     run->init_map == CELO_INIT_BRIDGE ? CELO_MAMBA_FROM_BRIDGE : CELO_MAMBA_FROM_QKV,
                                     e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, e);
        rc = -1;
    }
    celo_model_free(src);
    return rc;
}
