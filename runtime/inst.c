/*
 * inst.c — one training run as an object (inst.h): building it from a plan entry (the model from the task, the
 * optimizer state through the back end, the buffers), clone, reset, and its state in a checkpoint. Its steps and
 * evaluation are inst_step.c's.
 *
 * A run
 *   - builds its task's model (nn.h) seeded by the seed, or, for a quadratic task, a starting point x0 ~ N(0, I)
 *     drawn from the seed (the quadratic itself is fixed by the task);
 *   - draws batch k (k = t - 1 at step t) as a pure function of (seed, k): consecutive slices of a per-epoch
 *     Fisher-Yates permutation (epoch_perm) for datasets, celo_text_batch windows for text; resuming at step
 *     s reproduces the rest;
 *   - keeps one optimizer state per parameter tensor, where its back end (backend.h) keeps it, each told the run's
 *     length (num_steps); the hyper-parameters are the rule's defaults overridden by run->hp, passed to every
 *     step unchanged (a learning-rate schedule is part of the compiled rule, RULE@SCHEDULE: docs/runtime.md);
 *   - checks the loss, every gradient tensor and every updated parameter tensor for NaN/Inf (celo_step_out names
 *     the first);
 *   - evaluates on the test split, or on 16 batches of validation windows spread over the validation text for
 *     language models.
 */
#include "inst_internal.h"

#include "errmsg.h"
#include "rng.h"
#include "taskdata.h"
#include "theta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "celo-train 1"

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Data parallelism inside one process: a batch is cut in two halves, each runs forward and backward on its own
 * model (the replica shares the parameters), one half on each of two threads with every layer inside on one
 * thread; the gradients then combine as the full batch's mean, (n0 g0 + n1 g1) / n. On 2 cores that beats
 * splitting each layer over the threads (no synchronization inside a step, every product at its one-thread
 * efficiency). The cut is made whatever the number of threads (one thread runs the halves in turn), so results
 * do not depend on it; it is made for steps of at least SPLIT_MIN multiply-adds (parameters x examples or
 * tokens), below which a fork and join cost more than the halves save, and not for a model with LSTM layers
 * (the LSTM kind, or a described model with an lstm block). */
#define SPLIT_MIN ((int64_t)1 << 22)

static int has_lstm(const celo_task *tk)
{
    for (int i = 0; i < tk->nblocks; i++)
        if (tk->blocks[i].kind == CELO_BLOCK_LSTM)
            return 1;
    return tk->model == CELO_MODEL_LSTM;
}

static int split_batches(const celo_task *tk, const celo_model *m, int B, int T)
{
    return !has_lstm(tk) && B >= 2 && celo_model_nparams(m) * B * (T > 0 ? T : 1) >= SPLIT_MIN;
}

static int freeze_tensors(inst *in, const char *train_only, char *err, size_t errlen);

static void inst_clear(inst *in)
{
    if (in->st)
        for (int i = 0; i < in->ntensors; i++)
            in->be->state_free(in->st[i]);
    free(in->st);
    if (in->bp)
        in->be->prog_free(in->bp);
    celo_model_free(in->replica);
    celo_model_free(in->model);
    free(in->qx);
    free(in->qg);
    free(in->rw);
    free(in->rs);
    free(in->hp);
    free(in->theta);
    free(in->bx);
    free(in->bt);
    free(in->by);
    free(in->btok);
    free(in->idx);
    free(in->perm);
    free(in->etok);
    free(in->elab);
    free(in->frozen);
    memset(in, 0, sizeof *in);
}

/* a language model: its batches are token windows (the built-in kinds need text, and text needs them) */
static int is_lm(const celo_task *tk)
{
    return tk->model == CELO_MODEL_GPT || tk->model == CELO_MODEL_LSTM || (tk->nblocks && tk->data == CELO_DATA_KJV);
}

/* image data: class labels, images of h x w (one channel) */
static int is_images(const celo_task *tk)
{
    return tk->data == CELO_DATA_FASHION_MNIST || tk->data == CELO_DATA_DIGITS;
}

static const char *image_set(const celo_task *tk)
{
    return tk->data == CELO_DATA_DIGITS ? "digits" : "fashion_mnist";
}

/* The description of a task's described model: its blocks from the plan on the input the data gives, with the
 * text's vocabulary for CELO_WIDTH_VOCAB. *blocks (malloc'd) is md->blocks, for the caller to free. */
static int model_desc(const celo_task *tk, const celo_task_data *d, celo_model_desc *md, celo_block_desc **blocks,
                      char *err, size_t errlen)
{
    memset(md, 0, sizeof *md);
    int text = tk->data == CELO_DATA_KJV;
    if (text)
        md->tokens = 1;
    else if (is_images(tk)) {
        if (tk->loss != CELO_LOSS_CROSS_ENTROPY) {
            celo_seterr(err, errlen, "task %s: %s has class labels: the loss must be cross_entropy", tk->name,
                        image_set(tk));
            return -1;
        }
        md->in_ndim = 3, md->in_dims[0] = 1, md->in_dims[1] = d->train->h, md->in_dims[2] = d->train->w;
    } else
        md->in_ndim = 1, md->in_dims[0] = d->train->dim;
    md->loss = (celo_loss_kind)tk->loss;
    if (!(*blocks = malloc((size_t)tk->nblocks * sizeof **blocks))) {
        celo_seterr(err, errlen, "task %s: out of memory", tk->name);
        return -1;
    }
    for (int i = 0; i < tk->nblocks; i++) {
        celo_block_desc *b = &(*blocks)[i];
        *b = tk->blocks[i];
        int *w[] = {&b->out, &b->vocab, &b->ctx};
        for (int k = 0; k < 3; k++)
            if (*w[k] == CELO_WIDTH_VOCAB) {
                if (!text) {
                    celo_seterr(err, errlen, "task %s: block %s is as wide as a vocabulary, and the data is not text",
                                tk->name, b->name);
                    free(*blocks), *blocks = NULL;
                    return -1;
                }
                *w[k] = d->text->vocab;
            }
    }
    md->nblocks = tk->nblocks, md->blocks = *blocks;
    return 0;
}

void celo_task_gpt_config(const celo_task *tk, int vocab, celo_gpt_config *g)
{
    *g = (celo_gpt_config){.vocab = vocab,
                           .ctx = tk->ctx ? tk->ctx : tk->seq,
                           .dim = tk->dim,
                           .heads = tk->heads,
                           .layers = tk->layers,
                           .gpt2_init = 0,
                           .mixer = (celo_mixer)tk->mixer,
                           .feature = (celo_feature_map)tk->feature,
                           .chunk = tk->chunk,
                           .state = tk->mamba_state,
                           .conv = tk->mamba_conv,
                           .expand = tk->mamba_expand,
                           .normalize = tk->mamba_normalize};
}

/* The model configuration of a task, with the widths the data implies. */
static int model_config(const celo_task *tk, const celo_task_data *d, celo_model_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = (celo_model_kind)tk->model;
    int text = tk->data == CELO_DATA_KJV, images = is_images(tk);
    const char *mname = tk->model == CELO_MODEL_MLP           ? "mlp"
                        : tk->model == CELO_MODEL_CONVNET     ? "convnet"
                        : tk->model == CELO_MODEL_GPT         ? "gpt"
                        : tk->model == CELO_MODEL_LSTM        ? "lstm"
                        : tk->model == CELO_MODEL_AUTOENCODER ? "autoencoder"
                                                              : "?";
    switch (tk->model) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER: {
        if (text) {
            celo_seterr(err, errlen, "task %s: model %s needs vector data (fashion_mnist, digits or teacher), not text",
                        tk->name, mname);
            return -1;
        }
        int in = (int)d->train->dim, out = d->train->nclass ? d->train->nclass : (int)d->train->ydim;
        if (tk->in && tk->in != in) {
            celo_seterr(err, errlen, "task %s: the model's input width is %d, the data has %d features", tk->name,
                        tk->in, in);
            return -1;
        }
        if (tk->model == CELO_MODEL_MLP && tk->out && tk->out != out) {
            celo_seterr(err, errlen, "task %s: the model has %d outputs, the data %d %s", tk->name, tk->out, out,
                        d->train->nclass ? "classes" : "targets");
            return -1;
        }
        if (tk->model == CELO_MODEL_MLP && images && tk->loss != CELO_LOSS_CROSS_ENTROPY) {
            celo_seterr(err, errlen, "task %s: %s has class labels: the mlp's loss must be cross_entropy", tk->name,
                        image_set(tk));
            return -1;
        }
        if (tk->nhidden < 0 || tk->nhidden > CELO_MLP_MAX_HIDDEN) {
            celo_seterr(err, errlen, "task %s: %d hidden layers (at most %d)", tk->name, tk->nhidden,
                        CELO_MLP_MAX_HIDDEN);
            return -1;
        }
        cfg->mlp.in = in;
        cfg->mlp.out = out;
        cfg->mlp.nhidden = tk->nhidden;
        for (int i = 0; i < tk->nhidden; i++)
            cfg->mlp.hidden[i] = tk->hidden[i];
        cfg->mlp.act = (celo_activation)tk->act;
        cfg->mlp.loss = tk->model == CELO_MODEL_AUTOENCODER ? CELO_LOSS_MSE : (celo_loss_kind)tk->loss;
        return 0;
    }
    case CELO_MODEL_CONVNET:
        if (!images) {
            celo_seterr(err, errlen, "task %s: model convnet needs images (fashion_mnist or digits)", tk->name);
            return -1;
        }
        cfg->conv = (celo_convnet_config){.channels = 1,
                                          .height = d->train->h,
                                          .width = d->train->w,
                                          .conv1 = tk->conv1,
                                          .conv2 = tk->conv2,
                                          .kernel = tk->kernel,
                                          .pool = (celo_pool_kind)tk->pool,
                                          .out = d->train->nclass};
        return 0;
    case CELO_MODEL_GPT:
    case CELO_MODEL_LSTM:
        if (!text) {
            celo_seterr(err, errlen, "task %s: model %s needs text (kjv)", tk->name, mname);
            return -1;
        }
        if (tk->seq < 1) {
            celo_seterr(err, errlen, "task %s: a language model needs seq >= 1 (got %d)", tk->name, tk->seq);
            return -1;
        }
        if (tk->model == CELO_MODEL_GPT) {
            int ctx = tk->ctx ? tk->ctx : tk->seq;
            if (tk->seq > ctx) {
                celo_seterr(err, errlen, "task %s: seq %d is longer than the model's context %d", tk->name, tk->seq,
                            ctx);
                return -1;
            }
            celo_task_gpt_config(tk, d->text->vocab, &cfg->gpt);
        } else {
            cfg->lstm = (celo_lstm_config){
                .vocab = d->text->vocab, .embed = tk->embed, .hidden = tk->lstm_hidden, .layers = tk->layers};
        }
        return 0;
    default: celo_seterr(err, errlen, "task %s: unknown model kind %d", tk->name, tk->model); return -1;
    }
}

celo_model *celo_task_model_new(const celo_task *tk, const celo_task_data *td, uint64_t seed, char *err, size_t errlen)
{
    char e[256];
    celo_model *m;
    if (tk->nblocks) {
        celo_model_desc md;
        celo_block_desc *blocks;
        if (model_desc(tk, td, &md, &blocks, err, errlen))
            return NULL;
        m = celo_model_create_desc(&md, seed, e, sizeof e);
        free(blocks);
    } else {
        celo_model_config cfg;
        if (model_config(tk, td, &cfg, err, errlen))
            return NULL;
        m = celo_model_create(&cfg, seed, e, sizeof e);
    }
    if (!m)
        celo_seterr(err, errlen, "task %s: %s", tk->name, e);
    return m;
}

/* Sets up the model (or the quadratic's point), optimizer state, hyper-parameters and buffers. */
/* The run's θ file, read and bound to the rule by name and shape (the checks and lines of `celo apply --theta`),
 * or, for a clone or a reset, a copy of the instance's θ (from; the file is not read again, so it may change or go
 * away during a run). Each instance holds its own copy: runs side by side on other threads share nothing, and a θ
 * is small next to the model. A checkpoint does not store θ: it is an input, read again on --resume. */
static int load_theta(inst *in, const float *from, char *err, size_t errlen)
{
    const char *path = in->run->theta;
    if (from) {
        size_t bytes = sizeof(float) * (size_t)in->prog->theta_len;
        if (!(in->theta = malloc(bytes))) {
            celo_seterr(err, errlen, "out of memory");
            return -1;
        }
        memcpy(in->theta, from, bytes);
        return 0;
    }
    if (!path[0] && in->prog->ntheta > 0) {
        celo_seterr(err, errlen, "rule '%s' is learned: give its θ with optimizer = %s(theta = \"FILE\")",
                    in->prog->name, in->prog->name);
        return -1;
    }
    if (!path[0])
        return 0;
    if (in->prog->ntheta == 0) {
        celo_seterr(err, errlen, "theta \"%s\": rule '%s' has no learned parameters", path, in->prog->name);
        return -1;
    }
    celo_theta th;
    celo_theta_init(&th);
    int rc =
        celo_theta_read(path, &th, NULL, err, errlen) || celo_theta_bind(in->prog, &th, path, &in->theta, err, errlen);
    celo_theta_free(&th);
    return rc ? -1 : 0;
}

/* Task augmentation by reparameterization (learned_optimization's ReparamWeightsFamily, learned-optimizers.md
 * §1.5): scales s drawn log-uniformly in [lo, hi] from the run's seed, one for all parameters (global), one per
 * tensor, or one per parameter; the optimizer trains w from w0 / s, the model computes with w * s, so it sees
 * the gradient s * dL/dp. -1 on bad bounds or no memory. */
static int reparam_init(inst *in, uint64_t seed)
{
    const celo_run *run = in->run;
    double lo = run->reparam_lo, hi = run->reparam_hi;
    if (!(lo > 0) || !(hi >= lo) || !isfinite(hi))
        return -1;
    in->rw = malloc(sizeof(float) * (size_t)in->nparams);
    in->rs = malloc(sizeof(float) * (size_t)in->nparams);
    if (!in->rw || !in->rs)
        return -1;
    celo_rng r;
    celo_rng_init(&r, seed ^ 0x5ca1ab1eull, 0x7265706172616dull);
    double s = 0;
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        for (int64_t k = 0; k < t->numel; k++) {
            if ((run->reparam == 1 && i == 0 && k == 0) || (run->reparam == 2 && k == 0) || run->reparam == 3)
                s = exp(log(lo) + celo_rng_uniform(&r) * (log(hi) - log(lo)));
            in->rs[t->offset + k] = (float)s;
            in->rw[t->offset + k] = in->params[t->offset + k] / (float)s;
        }
    }
    return 0;
}

static int inst_init(inst *in, const celo_plan *plan, const celo_run *run, celo_task_data *td, const celo_program *prog,
                     const celo_backend *be, uint64_t seed, const float *theta, char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    in->be = be;
    in->plan = plan;
    in->run = run;
    in->seed = seed;
    in->nthreads = 1;
    in->task = &plan->tasks[run->task];
    in->data = td;
    in->prog = prog;
    const celo_task *tk = in->task;
    char e[512] = "";
    in->data_seed = mix64(seed ^ 0xda7a5eedull);
    if (tk->data == CELO_DATA_QUADRATIC) {
        int d = td->quad->dim;
        in->qx = malloc(sizeof(float) * (size_t)d);
        in->qg = calloc((size_t)d, sizeof(float));
        if (!in->qx || !in->qg)
            goto oom;
        celo_rng r;
        celo_rng_init(&r, seed, 0);
        celo_rng_fill_normal(&r, in->qx, d, 0.0, 1.0);
        snprintf(in->qt.name, sizeof in->qt.name, "x");
        in->qt.ndim = 1;
        in->qt.shape[0] = d;
        in->qt.offset = 0;
        in->qt.numel = d;
        in->params = in->qx;
        in->grads = in->qg;
        in->nparams = d;
        in->ntensors = 1;
    } else {
        if (tk->batch < 1) {
            celo_seterr(err, errlen, "run %s: task %s has batch %d", run->name, tk->name, tk->batch);
            return -1;
        }
        if (!(in->model = celo_task_model_new(tk, td, seed, err, errlen)))
            return -1;
        in->params = celo_model_params(in->model);
        in->grads = celo_model_grads(in->model);
        in->nparams = celo_model_nparams(in->model);
        in->ntensors = celo_model_ntensors(in->model);
        int B = in->B = tk->batch;
        if (is_lm(tk)) {
            int T = in->T = tk->seq;
            if (celo_text_len(td->text, CELO_SPLIT_TRAIN) < T + 1) {
                celo_seterr(err, errlen, "task %s: the training text is shorter than seq + 1 = %d", tk->name, T + 1);
                return -1;
            }
            in->btok = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
            in->by = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
            int64_t nwin = celo_text_num_windows(td->text, CELO_SPLIT_VAL, T);
            if (nwin < 1) {
                celo_seterr(err, errlen, "task %s: the validation text is shorter than seq + 1 = %d", tk->name, T + 1);
                return -1;
            }
            int64_t ne = (int64_t)LM_EVAL_BATCHES * B < nwin ? (int64_t)LM_EVAL_BATCHES * B : nwin;
            in->etok = malloc(sizeof(int32_t) * (size_t)ne * (size_t)T);
            in->elab = malloc(sizeof(int32_t) * (size_t)ne * (size_t)T);
            if (!in->btok || !in->by || !in->etok || !in->elab)
                goto oom;
            for (int64_t i = 0; i < ne; i++) /* windows spread evenly over the validation text */
                celo_text_window(td->text, CELO_SPLIT_VAL, i * nwin / ne, T, in->etok + i * T, in->elab + i * T);
            in->eb = (celo_batch){.n = (int)ne, .seq = T, .tokens = in->etok, .labels = in->elab};
            in->echunk = B;
        } else {
            const celo_dataset *tr = td->train;
            if (tr->n < B) {
                celo_seterr(err, errlen, "task %s: batch %d is larger than the %lld training examples", tk->name, B,
                            (long long)tr->n);
                return -1;
            }
            in->bx = malloc(sizeof(float) * (size_t)B * (size_t)tr->dim);
            in->idx = malloc(sizeof(int64_t) * (size_t)B);
            if (tr->n <= INT32_MAX && !(in->perm = malloc(sizeof(int32_t) * (size_t)tr->n)))
                goto oom;
            in->perm_epoch = -1;
            if (tr->y)
                in->by = malloc(sizeof(int32_t) * (size_t)B);
            if (tr->t)
                in->bt = malloc(sizeof(float) * (size_t)B * (size_t)tr->ydim);
            if (!in->bx || !in->idx || (tr->y && !in->by) || (tr->t && !in->bt))
                goto oom;
            const celo_dataset *te = td->test;
            in->eb = (celo_batch){.n = (int)te->n, .x = te->x, .labels = te->y, .target = te->t};
            in->echunk = EVAL_CHUNK;
        }
        in->big_batch = split_batches(tk, in->model, in->B, in->T);
        if (in->big_batch && !(in->replica = celo_model_replica(in->model, e, sizeof e))) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
    }
    if (run->reparam && reparam_init(in, seed)) {
        celo_seterr(err, errlen, "run %s: reparam needs 0 < lo <= hi (got %g, %g)", run->name, run->reparam_lo,
                    run->reparam_hi);
        return -1;
    }
    if (!(in->bp = be->compile(be, prog, e, sizeof e))) {
        celo_seterr(err, errlen, "run %s: %s", run->name, e);
        return -1;
    }
    if (load_theta(in, theta, e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, e);
        return -1;
    }
    if (run->train_only[0] && freeze_tensors(in, run->train_only, err, errlen))
        return -1;
    in->st = calloc((size_t)in->ntensors, sizeof *in->st);
    if (!in->st)
        goto oom;
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        if (!(in->st[i] = be->state_new(in->bp, t->ndim, t->shape, t->name, run->steps, e, sizeof e))) {
            celo_seterr(err, errlen, "run %s: %s: %s", run->name, t->name, e);
            return -1;
        }
        if (in->theta) /* the host part reads θ: celo_bstate_set_theta puts it where that part runs */
            celo_bstate_set_theta(in->st[i], in->theta, prog->theta_len);
    }
    /* hyper-parameters: the rule's defaults, then the run's values */
    in->hp = malloc(sizeof(float) * (size_t)(prog->nhp > 0 ? prog->nhp : 1));
    if (!in->hp)
        goto oom;
    celo_program_defaults(prog, in->hp);
    for (int i = 0; i < run->nhp; i++) {
        int k = celo_program_hp_index(prog, run->hp_name[i]);
        if (k < 0) {
            char list[256] = "";
            for (int j = 0; j < prog->nhp; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", prog->hp[j].name);
            }
            celo_seterr(err, errlen, "run %s: optimizer '%s' has no hyper-parameter '%s' (it has: %s)", run->name,
                        prog->name, run->hp_name[i], prog->nhp ? list : "none");
            return -1;
        }
        in->hp[k] = (float)run->hp[i];
    }
    return 0;
oom:
    celo_seterr(err, errlen, "run %s: out of memory", run->name);
    return -1;
}

/* The tensors whose names contain none of the comma-separated parts of train_only keep their values: in->frozen.
 * -1 with err when no tensor would train. */
static int freeze_tensors(inst *in, const char *train_only, char *err, size_t errlen)
{
    if (!(in->frozen = calloc((size_t)in->ntensors, 1))) {
        celo_seterr(err, errlen, "run %s: out of memory", in->run->name);
        return -1;
    }
    int trained = 0;
    for (int i = 0; i < in->ntensors; i++) {
        int hit = celo_train_only_match(inst_tensor(in, i)->name, train_only);
        in->frozen[i] = !hit;
        trained += hit;
    }
    if (!trained) {
        celo_seterr(err, errlen,
                    "run %s: train_only \"%s\" names no tensor of the model (e.g. %s): nothing would train",
                    in->run->name, train_only, inst_tensor(in, 0)->name);
        return -1;
    }
    return 0;
}

/* ================================ the API ================================ */

celo_inst *celo_inst_new_theta(const celo_plan *plan, const celo_run *run, const celo_program *prog,
                               const celo_backend *be, celo_task_data *td, const float *theta, char *err, size_t errlen)
{
    inst *in = malloc(sizeof *in);
    if (!in) {
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
        return NULL;
    }
    if (inst_init(in, plan, run, td, prog, be ? be : celo_backend_cpu(), run->seed, theta, err, errlen)) {
        inst_clear(in);
        free(in);
        return NULL;
    }
    return in;
}

celo_inst *celo_inst_new(const celo_plan *plan, const celo_run *run, const celo_program *prog, const celo_backend *be,
                         celo_task_data *td, char *err, size_t errlen)
{
    return celo_inst_new_theta(plan, run, prog, be, td, NULL, err, errlen);
}

float *celo_inst_theta(celo_inst *in)
{
    return in->theta;
}

void celo_inst_free(celo_inst *in)
{
    if (!in)
        return;
    inst_clear(in);
    free(in);
}

int celo_inst_reset(celo_inst *in, uint64_t seed, char *err, size_t errlen)
{
    inst fresh;
    if (inst_init(&fresh, in->plan, in->run, in->data, in->prog, in->be, seed, in->theta, err, errlen)) {
        inst_clear(&fresh);
        return -1;
    }
    fresh.shard = in->shard, fresh.shards = in->shards;
    fresh.distill = in->distill;
    inst_clear(in);
    *in = fresh;
    return 0;
}

int celo_inst_shard(celo_inst *in, int rank, int nranks, char *err, size_t errlen)
{
    if (!in->model || nranks <= 1)
        return 0;
    if (in->B < nranks) {
        celo_seterr(err, errlen, "run %s: batch %d is smaller than the %d ranks of mpirun (one row each at least)",
                    in->run->name, in->B, nranks);
        return -1;
    }
    in->shard = rank, in->shards = nranks;
    return 0;
}

celo_inst *celo_inst_clone(const celo_inst *in, char *err, size_t errlen)
{
    inst *c = malloc(sizeof *c);
    if (!c) {
        celo_seterr(err, errlen, "run %s: out of memory", in->run->name);
        return NULL;
    }
    if (inst_init(c, in->plan, in->run, in->data, in->prog, in->be, in->seed, in->theta, err, errlen)) {
        inst_clear(c);
        free(c);
        return NULL;
    }
    c->shard = in->shard, c->shards = in->shards;
    if (in->distill) /* shared: a clone and its original must not step at the same time */
        celo_inst_set_distill(c, in->distill);
    memcpy(c->params, in->params, (size_t)in->nparams * sizeof *in->params);
    if (in->rw)
        memcpy(c->rw, in->rw, (size_t)in->nparams * sizeof *in->rw);
    for (int i = 0; i < in->ntensors; i++) { /* the state through the host: the back end may keep it elsewhere */
        char e[256];
        celo_state *from = in->be->state_get(in->st[i], e, sizeof e);
        celo_state *to = from ? c->be->state_get(c->st[i], e, sizeof e) : NULL;
        if (!to || celo_state_copy(to, from) || c->be->state_put(c->st[i], e, sizeof e)) {
            celo_seterr(err, errlen, "run %s: clone: %s", in->run->name, to ? e : "state of another shape");
            celo_inst_free(c);
            return NULL;
        }
    }
    memcpy(c->hp, in->hp, sizeof(float) * (size_t)(in->prog->nhp > 0 ? in->prog->nhp : 1));
    c->loss_sum = in->loss_sum;
    c->ema = in->ema;
    c->loss_n = in->loss_n;
    c->ema_n = in->ema_n;
    c->step = in->step;
    return c;
}

celo_inst_stats celo_inst_get_stats(const celo_inst *in)
{
    return (celo_inst_stats){
        .step = in->step, .loss_sum = in->loss_sum, .ema = in->ema, .loss_n = in->loss_n, .ema_n = in->ema_n};
}

double celo_inst_take_mean(celo_inst *in)
{
    double m = in->loss_sum / (double)in->loss_n;
    in->loss_sum = 0;
    in->loss_n = 0;
    return m;
}

int64_t celo_inst_step_count(const celo_inst *in)
{
    return in->step;
}

const celo_run *celo_inst_run(const celo_inst *in)
{
    return in->run;
}

const celo_task *celo_inst_task(const celo_inst *in)
{
    return in->task;
}

const float *celo_inst_params(const celo_inst *in, int64_t *nparams)
{
    if (nparams)
        *nparams = in->nparams;
    return in->params;
}

/* ---- checkpoints ---- */

int celo_inst_save(const celo_inst *in, celo_ckpt *c, char *err, size_t errlen)
{
    const celo_run *run = in->run;
    char e[512] = "", v[64];
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        if (celo_ckpt_add(c, t->name, in->params + t->offset, t->ndim, t->shape, e, sizeof e))
            goto fail;
    }
    for (int i = 0; i < in->ntensors; i++) {
        const celo_state *st = in->be->state_get(in->st[i], e, sizeof e);
        if (!st || celo_ckpt_add_state(c, inst_tensor(in, i)->name, st, e, sizeof e))
            goto fail;
    }
    if (in->rw && celo_ckpt_add(c, "reparam.w", in->rw, 1, &in->nparams, e, sizeof e))
        goto fail;
    snprintf(v, sizeof v, "%llu", (unsigned long long)in->seed);
    if (celo_ckpt_set_meta(c, "celo.format", CKPT_FORMAT, e, sizeof e) ||
        celo_ckpt_set_meta(c, "run", run->name, e, sizeof e) || celo_ckpt_set_meta(c, "rule", run->rule, e, sizeof e) ||
        celo_ckpt_set_meta(c, "task", in->task->name, e, sizeof e) || celo_ckpt_set_meta(c, "seed", v, e, sizeof e) ||
        celo_ckpt_set_meta_i64(c, "step", in->step, e, sizeof e) ||
        celo_ckpt_set_meta_i64(c, "steps", run->steps, e, sizeof e) ||
        celo_ckpt_set_meta_i64(c, "loss_n", in->loss_n, e, sizeof e) ||
        celo_ckpt_set_meta_i64(c, "ema_n", in->ema_n, e, sizeof e))
        goto fail;
    snprintf(v, sizeof v, "%.17g", in->loss_sum);
    if (celo_ckpt_set_meta(c, "loss_sum", v, e, sizeof e))
        goto fail;
    snprintf(v, sizeof v, "%.17g", in->ema);
    if (celo_ckpt_set_meta(c, "ema", v, e, sizeof e))
        goto fail;
    return 0;
fail:
    celo_seterr(err, errlen, "run %s: checkpoint: %s", run->name, e);
    return -1;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    *v = strtod(s, &end);
    return *end ? -1 : 0;
}

int celo_inst_load(celo_inst *in, const celo_ckpt *cp, const char *path, char *err, size_t errlen)
{
    const celo_run *run = in->run;
    const celo_ckpt *c = cp;
    char e[512] = "";
    const char *fmt = celo_ckpt_get_meta(c, "celo.format");
    const char *name = celo_ckpt_get_meta(c, "run");
    const char *rule = celo_ckpt_get_meta(c, "rule");
    const char *seed = celo_ckpt_get_meta(c, "seed");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) || !name || !rule || !seed) {
        celo_seterr(err, errlen, "run %s: %s: not a checkpoint of a celo training run", run->name, path);
        return -1;
    }
    if (strcmp(name, run->name)) {
        celo_seterr(err, errlen, "run %s: %s is a checkpoint of run '%.64s'", run->name, path, name);
        return -1;
    }
    if (strcmp(rule, run->rule)) {
        celo_seterr(err, errlen, "run %s: %s was trained with optimizer '%.64s', the run uses '%s'", run->name, path,
                    rule, run->rule);
        return -1;
    }
    char sv[32];
    snprintf(sv, sizeof sv, "%llu", (unsigned long long)in->seed);
    if (strcmp(seed, sv)) {
        celo_seterr(err, errlen, "run %s: %s has seed %.24s, the run has seed %s", run->name, path, seed, sv);
        return -1;
    }
    int64_t step, loss_n, ema_n;
    if (celo_ckpt_meta_i64(c, "step", &step, e, sizeof e) || celo_ckpt_meta_i64(c, "loss_n", &loss_n, e, sizeof e) ||
        celo_ckpt_meta_i64(c, "ema_n", &ema_n, e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s: %s", run->name, path, e);
        return -1;
    }
    if ((step < 1 && !(run->stage && run->steps == 0)) || step < 0 || step > run->steps) { /* 0: a 0-step stage */
        celo_seterr(err, errlen, "run %s: %s is at step %lld, the run has %lld steps", run->name, path, (long long)step,
                    (long long)run->steps);
        return -1;
    }
    /* a changed length changes what a rule that reads num_steps (a schedule) computes from here on: say so, it is
     * not an error */
    int64_t steps0;
    int reads_len = 0;
    reads_len = celo_program_has_op(in->prog, CELO_OP_NSTEPS);
    if (reads_len && !celo_ckpt_meta_i64(c, "steps", &steps0, e, sizeof e) && steps0 != run->steps)
        fprintf(stderr,
                "run %s: note: %s was written by a run of %lld steps, this one has %lld: its learning-rate schedule "
                "from step %lld on follows the new length, so the results differ from an uninterrupted run of either "
                "length\n",
                run->name, path, (long long)steps0, (long long)run->steps, (long long)step + 1);
    /* the parameters, each tensor's slots (its class's variant's, with classes), and a reparameterized run's w */
    int64_t want = in->ntensors + (in->rw != NULL);
    for (int i = 0; i < in->ntensors; i++) {
        celo_state *st = in->be->state_get(in->st[i], e, sizeof e);
        want += st ? st->prog->nstate : in->prog->nstate;
    }
    if (c->ntensor != want) {
        celo_seterr(err, errlen,
                    "run %s: %s holds %d tensors, the model and optimizer state of the run %lld (another model?)",
                    run->name, path, c->ntensor, (long long)want);
        return -1;
    }
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        celo_state *st = in->be->state_get(in->st[i], e, sizeof e);
        if (!st) {
            celo_seterr(err, errlen, "run %s: %s", run->name, e);
            return -1;
        }
        if (celo_ckpt_load(c, t->name, in->params + t->offset, t->ndim, t->shape, e, sizeof e) ||
            celo_ckpt_load_state(c, t->name, st, e, sizeof e)) {
            celo_seterr(err, errlen, "run %s: %s (another model?)", run->name, e);
            return -1;
        }
        st->t = step;
        if (in->be->state_put(in->st[i], e, sizeof e)) {
            celo_seterr(err, errlen, "run %s: %s", run->name, e);
            return -1;
        }
    }
    if (in->rw && celo_ckpt_load(c, "reparam.w", in->rw, 1, &in->nparams, e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s (a run without augment = reparam?)", run->name, e);
        return -1;
    }
    double loss_sum, ema;
    if (parse_double(celo_ckpt_get_meta(c, "loss_sum"), &loss_sum) ||
        parse_double(celo_ckpt_get_meta(c, "ema"), &ema)) {
        celo_seterr(err, errlen, "run %s: %s: bad metadata (loss_sum or ema)", run->name, path);
        return -1;
    }
    in->step = step;
    in->loss_sum = loss_sum;
    in->loss_n = loss_n;
    in->ema = ema;
    in->ema_n = ema_n;
    return 0;
}

void celo_inst_set_distill(celo_inst *in, struct celo_distill *d)
{
    in->distill = d;
    /* a distillation loss runs on the whole batch (distill.c): the split batch's replica would go unused (a stage
     * of plain cross-entropy has no d, and keeps it) */
    if (d) {
        celo_model_free(in->replica);
        in->replica = NULL;
    }
}

celo_model *celo_inst_model(celo_inst *in)
{
    return in->model;
}
