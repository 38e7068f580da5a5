/* pipeline_distill.c — checking stage and distill blocks and turning them into runs of the plan (runtime/distill.h,
 * docs/distill.md): a stage is a student's run; a distill block lists stages after a teacher, each starting from the
 * weights the one before it ended with. The checks that need shapes build the models of the tasks involved. */
#include "pipeline_internal.h"

#include "distill.h"
#include "inst.h"
#include "nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *stage_keys[] = {"task", "optimizer", "steps",      "schedule", "eval",
                                   "seed", "init",      "train_only", "loss"};

/* loss = cross_entropy | kl(temperature = T) | mix(ce = a, kl = b, temperature = T) | attention(cosine | mse) */
static int stage_loss(pctx *C, celo_run *r, const pval *v)
{
    static const char *kinds[] = {"cross_entropy", "kl", "mix", "attention"};
    int k = pl_pick_name_or_call(C, v, "loss", kinds, 4, 1);
    if (k < 0)
        return -1;
    r->dloss = k == 0 ? CELO_DLOSS_TASK : k == 1 ? CELO_DLOSS_KL : k == 2 ? CELO_DLOSS_MIX : CELO_DLOSS_ATTENTION;
    static const char *kl_args[] = {"temperature"}, *mix_args[] = {"ce", "kl", "temperature"}, *att_args[] = {"metric"};
    callargs a;
    if (k == 0) {
        if (v->kind == PV_CALL && v->nargs) {
            PERR(C, v->sp, "cross_entropy takes no arguments");
            return -1;
        }
        return 0;
    }
    if (pl_bind_args(C, v, k == 3 ? att_args : k == 2 ? mix_args : kl_args, k == 2 ? 3 : 1, &a))
        return -1;
    const pval *x;
    if (k == 3) {
        static const char *metrics[] = {"cosine", "mse"};
        int m = (x = pl_arg_of(&a, "metric")) ? pl_pick_name(C, x, "metric", metrics, 2) : 0;
        r->dmetric = m < 0 ? 0 : m;
        return m < 0 ? -1 : 0;
    }
    if ((x = pl_arg_of(&a, "temperature")) && pl_want_num(C, x, "temperature", &r->temperature))
        return -1;
    if (!(r->temperature > 0 && r->temperature <= 100)) {
        PERR(C, x ? x->sp : v->sp, "temperature must be in (0, 100]");
        return -1;
    }
    if (k == 2 && (((x = pl_arg_of(&a, "ce")) && pl_want_num(C, x, "ce", &r->ce_weight)) ||
                   ((x = pl_arg_of(&a, "kl")) && pl_want_num(C, x, "kl", &r->kl_weight))))
        return -1;
    if (k == 2 && (r->ce_weight < 0 || r->kl_weight < 0 || r->ce_weight + r->kl_weight <= 0)) {
        PERR(C, v->sp, "mix's weights ce and kl must not be negative, and one must be positive");
        return -1;
    }
    return 0;
}

int pl_build_stage(pctx *C, const def *d)
{
    int e0 = C->nerr;
    if (C->nstages == C->cap_stages) {
        C->cap_stages = C->cap_stages ? 2 * C->cap_stages : 8;
        C->stages = realloc(C->stages, (size_t)C->cap_stages * sizeof *C->stages);
    }
    stage_def *sd = &C->stages[C->nstages++];
    memset(sd, 0, sizeof *sd);
    sd->d = d;
    celo_run *r = &sd->r;
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", d->name);
    r->task = -1, r->group = -1, r->entry = -1;
    r->stage = 1;
    r->init_map = CELO_INIT_COPY;
    r->temperature = 1, r->ce_weight = 1, r->kl_weight = 1;
    sched_use su = {0};
    for (const prop *p = d->props; p; p = p->next) {
        if (!strcmp(p->key, "optimizer")) {
            if (p->word)
                PERR(C, p->word_span, "write optimizer = …");
            else if (pl_set_optimizer(C, r, p->value))
                snprintf(r->rule, sizeof r->rule, "?");
        } else if (!strcmp(p->key, "init") && !p->word) {
            static const char *maps[] = {"none", "copy", "bridge", "qkv"};
            int k = pl_pick_name(C, p->value, "init", maps, 4);
            if (k >= 0)
                r->init_map = k;
        } else if (!strcmp(p->key, "train_only") && !p->word) {
            pl_train_only_list(C, p->value, "tensor names", "feature_", r->train_only, sizeof r->train_only);
            sd->train_only_sp = p->value->sp;
        } else if (!strcmp(p->key, "loss") && !p->word) {
            stage_loss(C, r, p->value);
        } else if (!strcmp(p->key, "log") || !strcmp(p->key, "checkpoint") || !strcmp(p->key, "augment")) {
            PERR(C, p->key_span, "a stage has no %s: its files go in the out folder of the distill block that runs it",
                 p->key);
        } else if (!pl_run_key(C, r, &su, p, d)) {
            PERR(C, p->key_span, "unknown stage key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, stage_keys, 9);
        }
    }
    pl_apply_schedule(C, r, &su, d);
    pl_finish_run(C, r, d);
    return C->nerr == e0 ? 0 : -1;
}

static stage_def *find_stage(pctx *C, const pval *v)
{
    const char *k = pl_callee(v);
    if (!k) {
        PERR(C, v->sp, "stages lists stage blocks by name, like [align, finetune(steps = 900)]");
        return NULL;
    }
    for (int i = 0; i < C->nstages; i++)
        if (!strcmp(C->stages[i].d->name, k))
            return &C->stages[i];
    PERR(C, v->sp, "unknown stage '%s'", k);
    const char *cand[256];
    int n = 0;
    for (int i = 0; i < C->nstages && n < 256; i++)
        cand[n++] = C->stages[i].d->name;
    pl_suggest_among(C, v->sp, k, cand, n);
    return NULL;
}

/* teacher = TRAIN_BLOCK (run before; its final checkpoint) or checkpoint("FILE", task = TASK): the weights file
 * and its model's task into t (a template run). The train block gets a checkpoint file if it had none. */
static int distill_teacher(pctx *C, celo_run *t, const pval *v)
{
    celo_plan *P = C->plan;
    if (v->kind == PV_CALL && !strcmp(v->str, "checkpoint")) {
        static const char *params[] = {"file", "task"};
        callargs a;
        if (pl_bind_args(C, v, params, 2, &a))
            return -1;
        const pval *f = pl_arg_of(&a, "file"), *tk = pl_arg_of(&a, "task");
        if (!f || !tk) {
            PERR(C, v->sp, "write checkpoint(\"FILE\", task = TASK): the teacher's weights and the task of its model");
            return -1;
        }
        if (pl_want_str(C, f, "checkpoint", t->teacher_ckpt, sizeof t->teacher_ckpt))
            return -1;
        if (access(t->teacher_ckpt, R_OK)) {
            PERR(C, f->sp,
                 "no teacher checkpoint '%s' (train the teacher first, or name its train block: teacher = NAME)",
                 t->teacher_ckpt);
            return -1;
        }
        return (t->teacher_task = pl_find_task(C, tk)) < 0 ? -1 : 0;
    }
    if (v->kind != PV_NAME) {
        PERR(C, v->sp, "teacher must name a train block, or be checkpoint(\"FILE\", task = TASK)");
        return -1;
    }
    for (int i = 0; i < P->nruns; i++) {
        celo_run *r = &P->runs[i];
        if (r->stage || r->group >= 0 || strcmp(r->name, v->str))
            continue;
        if (!r->checkpoint[0])
            pl_file_name(r->checkpoint, sizeof r->checkpoint, "runs", r->name, ".safetensors");
        snprintf(t->teacher_ckpt, sizeof t->teacher_ckpt, "%s", r->checkpoint);
        t->teacher_task = r->task;
        return r->task >= 0 ? 0 : -1;
    }
    PERR(C, v->sp, "unknown train block '%s' for the teacher", v->str);
    const char *cand[256];
    int n = 0;
    for (int i = 0; i < P->nruns && n < 256; i++)
        if (!P->runs[i].stage && P->runs[i].group < 0)
            cand[n++] = P->runs[i].name;
    pl_suggest_among(C, v->sp, v->str, cand, n);
    return -1;
}

#define STANDIN_VOCAB 7919 /* a width no other dimension is likely to have: shown as "vocab" */

/* A gpt task's model with a stand-in vocabulary (the data is not read here): its tensor names and shapes. NULL for
 * other models, whose stages are checked when they run. */
static celo_model *shape_model(const celo_task *t)
{
    if (t->model != CELO_MODEL_GPT || t->nblocks)
        return NULL;
    celo_model_config cfg = {.kind = CELO_MODEL_GPT};
    celo_task_gpt_config(t, STANDIN_VOCAB, &cfg.gpt);
    char e[256];
    return celo_model_create(&cfg, 0, e, sizeof e);
}

static void shape_text(char *out, size_t len, const celo_param_tensor *t)
{
    size_t k = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += t->shape[i] == STANDIN_VOCAB
                 ? (size_t)snprintf(out + k, len - k, "%svocab", i ? ", " : "")
                 : (size_t)snprintf(out + k, len - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < len)
        snprintf(out + k, len - k, "]");
}

/* The checks a stage's run can get before any data: its train_only names a tensor of its model, and its model can
 * take the weights it starts from (from: what they are, for the message; at: the stage's entry in the list). */
static void check_stage(pctx *C, stage_def *sd, const celo_run *r, const char *from, span at)
{
    celo_model *st = shape_model(&C->plan->tasks[r->task]);
    if (!st)
        return;
    if (r->train_only[0] && !sd->checked) {
        int hit = 0;
        sd->checked = 1;
        for (int i = 0; i < celo_model_ntensors(st) && !hit; i++)
            hit = celo_train_only_match(celo_model_tensor(st, i)->name, r->train_only);
        if (!hit)
            PERR(C, sd->train_only_sp,
                 "stage '%s' would train nothing: train_only names no tensor of task %s's model (its tensors are "
                 "named like %s, %s)",
                 sd->d->name, C->plan->tasks[r->task].name, celo_model_tensor(st, 0)->name,
                 celo_model_tensor(st, celo_model_ntensors(st) > 6 ? 6 : 0)->name);
    }
    const celo_task *tt = r->teacher_ckpt[0] ? &C->plan->tasks[r->teacher_task] : NULL, *ts = &C->plan->tasks[r->task];
    if (r->dloss == CELO_DLOSS_ATTENTION && tt &&
        (tt->model != CELO_MODEL_GPT || tt->layers != ts->layers || tt->dim != ts->dim))
        PERR(C, at,
             "stage '%s' matches its mixers' outputs to the teacher's (loss = attention): it needs a gpt of the "
             "teacher's layers and width (%d x %d), not %d x %d",
             sd->d->name, tt->layers, tt->dim, ts->layers, ts->dim);
    celo_model *src =
        r->init_ckpt[0] && r->init_map != CELO_INIT_NONE ? shape_model(&C->plan->tasks[r->init_task]) : NULL;
    if (src && r->init_map == CELO_INIT_COPY) {
        int same = 0;
        for (int i = 0; i < celo_model_ntensors(st); i++) {
            const celo_param_tensor *a = celo_model_tensor(st, i);
            int j = celo_model_find(src, a->name);
            if (j < 0)
                continue;
            const celo_param_tensor *b = celo_model_tensor(src, j);
            if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim)) {
                char sa[64], sb[64];
                shape_text(sa, sizeof sa, a);
                shape_text(sb, sizeof sb, b);
                PERR(C, at, "stage '%s' cannot start from %s: its %s is %s there, %s in the student (task %s)",
                     sd->d->name, from, a->name, sb, sa, C->plan->tasks[r->task].name);
                same = -1;
                break;
            }
            same++;
        }
        if (!same)
            PERR(C, at, "stage '%s' cannot start from %s: no tensor has the same name (init = none starts afresh)",
                 sd->d->name, from);
    } else if (src) {
        char e[512];
        if (celo_model_mamba_from(
                st, src, r->init_map == CELO_INIT_BRIDGE ? CELO_MAMBA_FROM_BRIDGE : CELO_MAMBA_FROM_QKV, e, sizeof e))
            PERR(C, at, "stage '%s' cannot start from %s by init = %s: %s", sd->d->name, from,
                 r->init_map == CELO_INIT_BRIDGE ? "bridge" : "qkv", e);
    }
    celo_model_free(src);
    celo_model_free(st);
}

static const char *distill_keys[] = {"teacher", "stages", "out"};

/* distill NAME { teacher = …; stages = [s1, s2(steps = N)]; out "DIR"; }: the stages' runs in order, each starting
 * from the weights the one before it (the teacher, for the first) ended with */
int pl_build_distill(pctx *C, const def *d)
{
    int e0 = C->nerr;
    const pval *tv = NULL, *sv = NULL;
    celo_run t;
    memset(&t, 0, sizeof t);
    char out[CELO_PATH_MAX];
    pl_file_name(out, sizeof out, "runs", d->name, "");
    for (const prop *p = d->props; p; p = p->next) {
        if (p->word)
            PERR(C, p->word_span, "write %s = …", p->key);
        else if (!strcmp(p->key, "teacher"))
            tv = p->value;
        else if (!strcmp(p->key, "stages"))
            sv = p->value;
        else if (!strcmp(p->key, "out"))
            pl_want_str(C, p->value, "out", out, sizeof out);
        else {
            PERR(C, p->key_span, "unknown distill key '%s'", p->key);
            pl_suggest_among(C, p->key_span, p->key, distill_keys, 3);
        }
    }
    if (!tv)
        PERR(C, d->name_span, "distill '%s' needs a teacher (teacher = TRAIN_BLOCK; or checkpoint(\"FILE\", task = T))",
             d->name);
    else
        distill_teacher(C, &t, tv);
    if (!sv || sv->kind != PV_LIST || !sv->nargs) {
        PERR(C, sv ? sv->sp : d->name_span, "distill '%s' needs its stages in order: stages = [align, finetune];",
             d->name);
        return -1;
    }
    if (C->nerr != e0)
        return -1;
    int gi = pl_new_group(C, d, "distill");
    snprintf(C->plan->groups[gi].out, sizeof C->plan->groups[gi].out, "%s", out);
    char prev_ckpt[CELO_PATH_MAX]; /* a copy: new_run may move the runs */
    const char *prev_name = "";
    snprintf(prev_ckpt, sizeof prev_ckpt, "%s", t.teacher_ckpt);
    int prev_task = t.teacher_task;
    for (const parg *a = sv->args; a; a = a->next) {
        stage_def *sd = find_stage(C, a->value);
        if (!sd)
            continue;
        celo_run *r = pl_new_run(C);
        *r = sd->r;
        snprintf(r->name, sizeof r->name, "%.30s.%.30s", d->name, sd->d->name);
        r->group = gi;
        static const char *over[] = {"steps", "seed"};
        callargs ca;
        long long iv;
        const pval *x;
        if (!pl_bind_args(C, a->value, over, 2, &ca)) {
            /* steps = 0: the stage only maps the weights before it onto its student, and evaluates them */
            if ((x = pl_arg_of(&ca, "steps")) && !pl_want_int(C, x, "steps", 0, 1LL << 40, &iv))
                r->steps = iv;
            if ((x = pl_arg_of(&ca, "seed")) && !pl_want_int(C, x, "seed", 0, 1LL << 53, &iv))
                r->seed = (uint64_t)iv;
        }
        snprintf(r->teacher_ckpt, sizeof r->teacher_ckpt, "%s", t.teacher_ckpt);
        r->teacher_task = t.teacher_task;
        if (r->init_map != CELO_INIT_NONE) {
            snprintf(r->init_ckpt, sizeof r->init_ckpt, "%s", prev_ckpt);
            r->init_task = prev_task;
        }
        pl_file_name(r->checkpoint, sizeof r->checkpoint, out, sd->d->name, ".safetensors");
        pl_file_name(r->log, sizeof r->log, out, sd->d->name, ".csv");
        if (r->task >= 0 && (r->init_map == CELO_INIT_NONE || prev_task >= 0)) {
            char from[CELO_NAME_MAX + 16];
            snprintf(from, sizeof from, "%s%s", a == sv->args ? "the teacher" : "stage ",
                     a == sv->args ? "" : prev_name);
            check_stage(C, sd, r, from, a->value->sp);
        }
        snprintf(prev_ckpt, sizeof prev_ckpt, "%s", r->checkpoint);
        prev_task = r->task;
        prev_name = sd->d->name;
    }
    C->plan->groups[gi].count = C->plan->nruns - C->plan->groups[gi].first;
    return C->nerr == e0 ? 0 : -1;
}
