/*
 * inst.c — one training run as an object (inst.h): building it from a plan entry, its steps (one at a time, or
 * many inside one thread team), evaluation, clone, reset, and its state in a checkpoint.
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
#include "inst.h"

#include "clones.h"
#include "errmsg.h"
#include "nn.h"
#include "par.h"
#include "rng.h"
#include "taskdata.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LM_EVAL_BATCHES 16
#define EVAL_CHUNK      1000
#define EMA_DECAY       0.98
#define CKPT_FORMAT     "celo-train 1"

typedef struct celo_inst inst;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct celo_inst {
    const celo_plan *plan;
    const celo_run *run;
    const celo_task *task;
    celo_task_data *data;
    const celo_program *prog;
    const celo_backend *be; /* runs the optimizer steps (backend.h) */
    celo_bprog *bp;         /* prog prepared for be */
    uint64_t seed;          /* run->seed, or the seed of the last reset */
    int nthreads;           /* the context of the call in progress */
    celo_model *model;      /* NULL for quadratics */
    celo_model *replica;    /* over model's parameters: the second half of each batch (split_batches) */
    celo_param_tensor qt;
    float *qx, *qg;
    float *params, *grads;
    int64_t nparams;
    int ntensors;
    celo_bstate **st;
    float *hp;
    /* batches */
    int B, T;
    float *bx, *bt;
    int32_t *by, *btok;
    int64_t *idx;
    uint64_t data_seed;
    int32_t *perm; /* datasets: the permutation of epoch perm_epoch */
    int64_t perm_epoch;
    /* evaluation */
    celo_batch eb;
    int echunk;
    int32_t *etok, *elab;
    /* the running training loss */
    double loss_sum, ema;
    int64_t loss_n, ema_n;
    int64_t step; /* optimizer steps done */
};

/* Data parallelism inside one process: a batch is cut in two halves, each runs forward and backward on its own
 * model (the replica shares the parameters), one half on each of two threads with every layer inside on one
 * thread; the gradients then combine as the full batch's mean, (n0 g0 + n1 g1) / n. On 2 cores that beats
 * splitting each layer over the threads (no synchronization inside a step, every product at its one-thread
 * efficiency). The cut is made whatever the number of threads (one thread runs the halves in turn), so results
 * do not depend on it; it is made for steps of at least SPLIT_MIN multiply-adds (parameters x examples or
 * tokens), below which a fork and join cost more than the halves save, and not for the LSTM language model. */
#define SPLIT_MIN ((int64_t)1 << 22)

static int split_batches(const celo_model *m, int B, int T)
{
    const celo_model_config *cfg = celo_model_cfg(m);
    return cfg->kind != CELO_MODEL_LSTM && B >= 2 && celo_model_nparams(m) * B * (T > 0 ? T : 1) >= SPLIT_MIN;
}

static const celo_param_tensor *inst_tensor(const inst *in, int i)
{
    return in->model ? celo_model_tensor(in->model, i) : &in->qt;
}

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
    free(in->hp);
    free(in->bx);
    free(in->bt);
    free(in->by);
    free(in->btok);
    free(in->idx);
    free(in->perm);
    free(in->etok);
    free(in->elab);
    memset(in, 0, sizeof *in);
}

static int is_lm(const celo_task *tk)
{
    return tk->model == CELO_MODEL_GPT || tk->model == CELO_MODEL_LSTM;
}

/* The model configuration of a task, with the widths the data implies. */
static int model_config(const celo_task *tk, const celo_task_data *d, celo_model_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = (celo_model_kind)tk->model;
    int text = tk->data == CELO_DATA_KJV, images = tk->data == CELO_DATA_FASHION_MNIST;
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
            celo_seterr(err, errlen, "task %s: model %s needs vector data (fashion_mnist or teacher), not text",
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
            celo_seterr(err, errlen, "task %s: fashion_mnist has class labels: the mlp's loss must be cross_entropy",
                        tk->name);
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
            celo_seterr(err, errlen, "task %s: model convnet needs images (fashion_mnist)", tk->name);
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
            cfg->gpt = (celo_gpt_config){.vocab = d->text->vocab,
                                         .ctx = ctx,
                                         .dim = tk->dim,
                                         .heads = tk->heads,
                                         .layers = tk->layers,
                                         .gpt2_init = 0};
        } else {
            cfg->lstm = (celo_lstm_config){
                .vocab = d->text->vocab, .embed = tk->embed, .hidden = tk->lstm_hidden, .layers = tk->layers};
        }
        return 0;
    default: celo_seterr(err, errlen, "task %s: unknown model kind %d", tk->name, tk->model); return -1;
    }
}

/* Sets up the model (or the quadratic's point), optimizer state, hyper-parameters and buffers. */
static int inst_init(inst *in, const celo_plan *plan, const celo_run *run, celo_task_data *td, const celo_program *prog,
                     const celo_backend *be, uint64_t seed, char *err, size_t errlen)
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
        celo_model_config cfg;
        if (model_config(tk, td, &cfg, err, errlen))
            return -1;
        in->model = celo_model_create(&cfg, seed, e, sizeof e);
        if (!in->model) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
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
        if (split_batches(in->model, in->B, in->T) && !(in->replica = celo_model_replica(in->model, e, sizeof e))) {
            celo_seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
    }
    if (!(in->bp = be->compile(be, prog, e, sizeof e))) {
        celo_seterr(err, errlen, "run %s: %s", run->name, e);
        return -1;
    }
    in->st = calloc((size_t)in->ntensors, sizeof *in->st);
    if (!in->st)
        goto oom;
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        if (!(in->st[i] = be->state_new(in->bp, t->ndim, t->shape, run->steps, e, sizeof e))) {
            celo_seterr(err, errlen, "run %s: %s: %s", run->name, t->name, e);
            return -1;
        }
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

/* The permutation of epoch e of [0, n): a Fisher-Yates shuffle driven by stream e of celo_rng under seed, with
 * unbiased bounded integers (Lemire's multiply-and-reject). One 32-bit draw per example, once per epoch: about
 * 30 times cheaper than celo_shuffle_index's Feistel network per index, which took a third of a step of a small
 * MLP. Batch k of a run is perm_{k / per}[(k % per) B ...], a pure function of (seed, k). */
static void epoch_perm(uint64_t seed, int64_t e, int64_t n, int32_t *perm)
{
    celo_rng r;
    celo_rng_init(&r, seed, (uint64_t)e);
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t bound = (uint32_t)(i + 1);
        uint64_t m = (uint64_t)celo_rng_u32(&r) * bound;
        if ((uint32_t)m < bound) {
            uint32_t thr = (uint32_t)(-bound) % bound;
            while ((uint32_t)m < thr)
                m = (uint64_t)celo_rng_u32(&r) * bound;
        }
        int64_t j = (int64_t)(m >> 32);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* the second half of batch b, from example n0 on (x_dim floats per example's x, t_dim per target) */
static celo_batch batch_tail(const celo_batch *b, int n0, int64_t x_dim, int64_t t_dim)
{
    celo_batch h = *b;
    int64_t per = b->seq > 0 ? b->seq : 1; /* labels and tokens per example */
    h.n = b->n - n0;
    if (h.x)
        h.x += n0 * x_dim;
    if (h.target)
        h.target += n0 * t_dim;
    if (h.tokens)
        h.tokens += n0 * per;
    if (h.labels)
        h.labels += n0 * per;
    return h;
}

/* loss and gradient of batch b on model m; 0, or -1 with celo_model_error(m) */
static int model_loss_grad(celo_model *m, const celo_batch *b, float *loss)
{
    celo_model_keep_x(m, 1); /* b->x stays as it is until the next batch: read in place, not copied */
    *loss = celo_model_loss(m, b);
    celo_model_keep_x(m, 0);
    return celo_model_backward(m);
}

/* The bits of a float with its exponent field plus one: an exponent of all ones (Inf, NaN) carries into bit 31.
 * OR-ed over many values, bit 31 says whether any was not finite. */
static inline CELO_ALWAYS_INLINE uint32_t nonfinite_bit(uint32_t u)
{
    return (u & 0x7f800000u) + 0x00800000u;
}

/* g0 = w0 g0 + w1 g1 over [0, n); 1 when every result is finite (all_finite's test, in the same pass) */
CELO_SIMD_CLONES static int combine_halves(float *g0, const float *g1, float w0, float w1, int64_t n)
{
    uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
    for (int64_t i = 0; i < n; i++) {
        union {
            float f;
            uint32_t u;
        } v = {.f = w0 * g0[i] + w1 * g1[i]};
        g0[i] = v.f;
        acc |= nonfinite_bit(v.u);
    }
    return !(acc & 0x80000000u);
}

/* Half h (0 or 1) of batch b: for a dataset task with gather = 1 it first gathers its own examples (rows of idx),
 * so the gathers overlap too; then forward and backward, on the model (h = 0) or the replica (h = 1). */
static int run_half(inst *in, const celo_batch *b, int gather, int h, float *loss)
{
    const celo_dataset *tr = in->T ? NULL : in->data->train;
    int n0 = b->n / 2, n = b->n;
    if (h == 0) {
        celo_batch h0 = *b;
        h0.n = n0;
        if (gather)
            celo_dataset_gather(tr, in->idx, n0, in->bx, in->by, in->bt);
        return model_loss_grad(in->model, &h0, loss);
    }
    celo_batch h1 = batch_tail(b, n0, tr ? tr->dim : 0, tr ? tr->ydim : 0);
    if (gather)
        celo_dataset_gather(tr, in->idx + n0, n - n0, in->bx + (int64_t)n0 * tr->dim, in->by ? in->by + n0 : NULL,
                            in->bt ? in->bt + (int64_t)n0 * tr->ydim : NULL);
    return model_loss_grad(in->replica, &h1, loss);
}

/* Slice w of nw of the combined gradient, (n0 g0 + n1 g1) / n into the model's gradients, in 64-KiB-aligned
 * pieces; 1 when every combined value of the slice is finite. */
static int combine_slice(inst *in, int n, int w, int nw)
{
    int n0 = n / 2;
    float w0 = (float)n0 / (float)n, w1 = (float)(n - n0) / (float)n;
    float *g0 = in->grads, *g1 = celo_model_grads(in->replica);
    int64_t np = celo_model_nparams(in->model);
    int64_t lo = np * w / nw / 16 * 16, hi = w == nw - 1 ? np : np * (w + 1) / nw / 16 * 16;
    return hi > lo ? combine_halves(g0 + lo, g1 + lo, w0, w1, hi - lo) : 1;
}

/* The two halves of a batch at once (run_half), then their gradients combined. *finite: every combined gradient
 * is finite. */
static int split_loss_grad(inst *in, const celo_batch *b, int gather, float *loss, int *finite)
{
    int n0 = b->n / 2, n = b->n;
    float l[2] = {0, 0};
    int r[2] = {0, 0}, ok[2] = {1, 1};
#pragma omp parallel num_threads(2) if (in->nthreads >= 2)
    {
        int w = omp_get_thread_num(), nw = omp_get_num_threads();
        for (int h = w; h < 2; h += nw)
            r[h] = run_half(in, b, gather, h, &l[h]);
#pragma omp barrier
        if (!r[0] && !r[1])
            ok[w] = combine_slice(in, n, w, nw);
    }
    if (r[0] || r[1])
        return r[0] ? -1 : -2;
    *finite = ok[0] && ok[1];
    *loss = (float)(((double)l[0] * n0 + (double)l[1] * (n - n0)) / n);
    return 0;
}

/* Batch k (0-based) of a model's task into b: text windows, or the example indices of a dataset (gathered
 * here unless the batch is split: then each half gathers its own, run_half). */
static void inst_batch(inst *in, int64_t k, celo_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n = in->B;
    if (in->T) {
        celo_text_batch(in->data->text, CELO_SPLIT_TRAIN, in->data_seed, (uint64_t)k, in->B, in->T, in->btok, in->by);
        b->seq = in->T;
        b->tokens = in->btok;
        b->labels = in->by;
        return;
    }
    const celo_dataset *tr = in->data->train;
    int64_t per = tr->n / in->B, e = k / per, off = (k % per) * in->B;
    if (in->perm) {
        if (in->perm_epoch != e) {
            epoch_perm(in->data_seed, e, tr->n, in->perm);
            in->perm_epoch = e;
        }
        for (int j = 0; j < in->B; j++)
            in->idx[j] = in->perm[off + j];
    } else {
        celo_epoch_batch(in->data_seed, tr->n, in->B, e, k % per, in->idx);
    }
    if (!in->replica)
        celo_dataset_gather(tr, in->idx, in->B, in->bx, in->by, in->bt);
    b->x = in->bx;
    b->labels = in->by;
    b->target = in->bt;
}

/* Loss of batch k (0-based) and the gradient. Returns 0; -1 with err on a real error (bad input). *finite is 1
 * when the gradients are known to be finite (checked on the way), 0 when not checked. */
static int inst_loss_grad(inst *in, int64_t k, double *loss, int *finite, char *err, size_t errlen)
{
    *finite = 0;
    if (!in->model) {
        *loss = celo_quadratic_loss(in->data->quad, in->qx, in->qg);
        return 0;
    }
    celo_batch b;
    inst_batch(in, k, &b);
    float l;
    int r = in->replica ? split_loss_grad(in, &b, !in->T, &l, finite) : model_loss_grad(in->model, &b, &l);
    if (r) {
        celo_seterr(err, errlen, "run %s: %s", in->run->name, celo_model_error(r == -2 ? in->replica : in->model));
        return -1;
    }
    *loss = l;
    return 0;
}

static int inst_eval(inst *in, double *loss, double *acc, char *err, size_t errlen)
{
    if (!in->model) {
        *loss = celo_quadratic_loss(in->data->quad, in->qx, NULL);
        *acc = NAN;
        return 0;
    }
    if (celo_model_eval(in->model, &in->eb, in->echunk, loss, acc)) {
        celo_seterr(err, errlen, "run %s: evaluation: %s", in->run->name, celo_model_error(in->model));
        return -1;
    }
    return 0;
}

/* 1 when every value is finite (nonfinite_bit). Runs on every gradient and parameter each step, so it gets the
 * wide vector clones. */
CELO_SIMD_CLONES static int all_finite(const float *x, int64_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)x;
    uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
    for (int64_t i = 0; i < n; i++)
        acc |= nonfinite_bit(u[i]);
    return !(acc & 0x80000000u);
}

/* the lowest index of a tensor whose values in buf (the gradients or the parameters) are not all finite, or -1;
 * the tensors split over threads */
static int first_nonfinite(const inst *in, const float *buf)
{
    int n = in->ntensors, nf = -1;
    if (!celo_par(n > 1 && in->nthreads >= 2)) {
        for (int i = 0; i < n; i++)
            if (!all_finite(buf + inst_tensor(in, i)->offset, inst_tensor(in, i)->numel))
                return i;
        return -1;
    }
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        const celo_param_tensor *pt = inst_tensor(in, i);
        if (!all_finite(buf + pt->offset, pt->numel)) {
#pragma omp critical(celo_first_nonfinite)
            nf = nf < 0 || i < nf ? i : nf;
        }
    }
    return nf;
}

/* The optimizer step of every tensor, through the back end's table. On the CPU, a tensor large enough for
 * celo_step to split over the threads itself (CELO_STEP_SPLIT_MIN elements) runs alone; the smaller ones split
 * over threads, one tensor each; on other back ends the tensors go one after another (the device does the
 * parallel work). Each tensor's update is independent and gives the same values on one thread or in a team, so
 * results do not depend on the split. Returns the lowest index of a tensor whose step failed (its message in
 * msg), or -1; *nonfinite is the lowest index of a tensor whose parameters are not finite after the update, or -1. */
/* tensor i's step: 0 (*fin: its parameters are finite after it), or -1 with the message in e */
static int step_tensor(inst *in, int i, int64_t t, char *e, size_t elen, int *fin)
{
    const celo_param_tensor *pt = inst_tensor(in, i);
    int r = in->be->step(in->st[i], in->params + pt->offset, in->grads + pt->offset, in->hp, t, in->nthreads, e, elen);
    *fin = r == 0 && all_finite(in->params + pt->offset, pt->numel);
    return r;
}

static int update_tensors(inst *in, int64_t t, char *msg, size_t msglen, int *nonfinite)
{
    int n = in->ntensors, failed = -1, nf = -1, cpu = in->be->step_team != NULL;
    char e[256];
    for (int big = 1; big >= 0; big--) {
        if (!celo_par(cpu && !big && n > 1 && in->nthreads >= 2)) { /* in order on this thread */
            for (int i = 0; i < n && failed < 0; i++) {
                int fin;
                if ((inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN) != big)
                    continue;
                if (step_tensor(in, i, t, e, sizeof e, &fin)) {
                    failed = i;
                    snprintf(msg, msglen, "%s", e);
                } else if (!fin && (nf < 0 || i < nf))
                    nf = i;
            }
            continue;
        }
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            char te[256];
            int fin;
            if ((inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN) != big)
                continue;
            int r = step_tensor(in, i, t, te, sizeof te, &fin);
#pragma omp critical(celo_update_tensors)
            {
                if (r && (failed < 0 || i < failed)) {
                    failed = i;
                    snprintf(msg, msglen, "%s", te);
                }
                if (!r && !fin && (nf < 0 || i < nf))
                    nf = i;
            }
        }
    }
    *nonfinite = nf;
    return failed;
}

/* ================================ steps ================================ */

/* The step's loss and gradients' finiteness (fin: known finite) into o->bad. */
static void check_grads(inst *in, int fin, celo_step_out *o)
{
    o->bad = NULL;
    o->pre = o->post = "";
    if (!isfinite(o->loss))
        o->bad = "the loss";
    int nfg = o->bad || fin ? -1 : first_nonfinite(in, in->grads);
    if (nfg >= 0)
        o->bad = inst_tensor(in, nfg)->name, o->pre = "gradient of ";
}

/* Step t on the calling thread (each part may use threads of its own). 0, or -1 with err. */
static int train_step(inst *in, int64_t t, celo_step_out *o, char *err, size_t errlen)
{
    int fin;
    if (inst_loss_grad(in, t - 1, &o->loss, &fin, err, errlen))
        return -1;
    check_grads(in, fin, o);
    if (o->bad)
        return 0;
    char msg[256];
    int nonfinite, failed = update_tensors(in, t, msg, sizeof msg, &nonfinite);
    if (failed >= 0) {
        celo_seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t,
                    inst_tensor(in, failed)->name, msg);
        return -1;
    }
    if (nonfinite >= 0)
        o->bad = inst_tensor(in, nonfinite)->name, o->post = " after the update";
    return 0;
}

/* A finished step in the running loss and its moving average. */
static void account(inst *in, int64_t t, double loss)
{
    in->step = t;
    in->loss_sum += loss;
    in->loss_n++;
    in->ema = in->ema_n ? EMA_DECAY * in->ema + (1 - EMA_DECAY) * loss : loss;
    in->ema_n++;
}

/* Whether steps of this run go through team_steps: split batches, a CPU back end (the only ones with a team
 * step: the team path keeps the CPU's speed, the others take train_step), and a rule without orthogonalizations
 * (their GEMMs want both threads, which a team's thread 0 does not have). */
static int team_mode(const inst *in, const celo_program *prog)
{
    const char *env = getenv("CELO_TRAIN_TEAM"); /* 0: one OpenMP region per phase (tests, experiments) */
    if (!in->replica || !in->be->step_team || (env && !strcmp(env, "0")))
        return 0;
    for (int j = 0; j < prog->nnodes; j++)
        if (prog->nodes[j].op == CELO_OP_ORTHO)
            return 0;
    return 1;
}

/* Steps in->step + 1 .. t_end of a split-batch run, all inside one team of two threads that lives across the
 * steps. Waking a sleeping thread costs tens of microseconds on a VM (OMP_WAIT_POLICY=passive,
 * runtime/blas_env.c): with an OpenMP region per phase (the halves, the combination, the updates) that was a
 * sixth of an MLP 784-128-10 step; here the threads meet at celo_team barriers, which spin briefly before they
 * sleep. Per step: thread 0 draws the batch; each thread runs one half (run_half); each combines a slice of the
 * gradients; the tensors of at least CELO_STEP_SPLIT_MIN elements update in turn over both threads
 * (celo_step_team), the smaller ones one per thread; each thread checks the parameters it updated; thread 0 does
 * the bookkeeping. Results are those of train_step: every part computes the same values on any split. Stops
 * after t_end, after a step that found a non-finite value (o->bad), or on an error (-1 with err). Progress is
 * reported for every step but the last, which the caller reports after its evaluation. */
static int team_steps(inst *in, int64_t t_end, celo_step_out *o, celo_step_cb cb, void *cb_ctx, char *err,
                      size_t errlen)
{
    celo_team *team = NULL;
    celo_batch b;
    int n = in->B, n0 = in->B / 2, gather = !in->T, rc = 0, stop = 0;
    int r[2] = {0, 0}, ok[2] = {1, 1};
    float l[2] = {0, 0};
    int failed[2], nf[2];
    char msg[2][256], big_err[256];
    int nt = in->ntensors;
#pragma omp parallel num_threads(2) if (in->nthreads >= 2)
    {
        int w = omp_get_thread_num(), nw = omp_get_num_threads();
#pragma omp single
        {
            team = celo_team_new(nw);
            stop = !team;
        }
        for (int64_t t = in->step + 1; !stop; t++) {
            if (w == 0)
                inst_batch(in, t - 1, &b);
            celo_team_wait(team);
            for (int h = w; h < 2; h += nw)
                r[h] = run_half(in, &b, gather, h, &l[h]);
            celo_team_wait(team);
            if (!r[0] && !r[1]) {
                ok[w] = combine_slice(in, n, w, nw);
                failed[w] = nf[w] = -1;
            }
            celo_team_wait(team);
            double loss = ((double)l[0] * n0 + (double)l[1] * (n - n0)) / n;
            int go = !r[0] && !r[1] && isfinite(loss) && ok[0] && (nw < 2 || ok[1]);
            /* updates: the large tensors in turn over the team, the small ones dealt out round-robin */
            for (int i = 0, small = 0; go && i < nt; i++) {
                const celo_param_tensor *pt = inst_tensor(in, i);
                float *p = in->params + pt->offset;
                if (pt->numel >= CELO_STEP_SPLIT_MIN) {
                    if (in->be->step_team(in->st[i], p, in->grads + pt->offset, in->hp, t, team, w, big_err,
                                          sizeof big_err)) {
                        if (w == 0) {
                            failed[0] = i;
                            snprintf(msg[0], sizeof msg[0], "%s", big_err);
                        }
                        break;
                    }
                    int64_t lo = pt->numel * w / nw, hi = pt->numel * (w + 1) / nw;
                    if (nf[w] < 0 && !all_finite(p + lo, hi - lo))
                        nf[w] = i;
                } else if (small++ % nw == w && failed[w] < 0) {
                    if (in->be->step(in->st[i], p, in->grads + pt->offset, in->hp, t, 1, msg[w], sizeof msg[w]))
                        failed[w] = i;
                    else if (nf[w] < 0 && !all_finite(p, pt->numel))
                        nf[w] = i;
                }
            }
            celo_team_wait(team);
            if (w == 0) {
                if (r[0] || r[1]) {
                    celo_seterr(err, errlen, "run %s: %s", in->run->name,
                                celo_model_error(r[0] ? in->model : in->replica));
                    rc = -1;
                } else {
                    o->loss = (float)loss;
                    check_grads(in, go, o);
                    int f = nw > 1 && failed[1] >= 0 && (failed[0] < 0 || failed[1] < failed[0]) ? 1 : 0;
                    int v = nw > 1 && nf[1] >= 0 && (nf[0] < 0 || nf[1] < nf[0]) ? 1 : 0;
                    if (go && failed[f] >= 0) {
                        celo_seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t,
                                    inst_tensor(in, failed[f])->name, msg[f]);
                        rc = -1;
                    } else {
                        if (go && nf[v] >= 0)
                            o->bad = inst_tensor(in, nf[v])->name, o->post = " after the update";
                        account(in, t, o->loss);
                        if (!o->bad && t < t_end && cb)
                            cb(in, cb_ctx);
                    }
                }
                stop = rc || o->bad || t >= t_end;
            }
            celo_team_wait(team);
        }
    }
    if (!team && !rc) {
        celo_seterr(err, errlen, "run %s: out of memory", in->run->name);
        rc = -1;
    }
    celo_team_free(team);
    return rc;
}

/* ================================ the API ================================ */

/* The context's thread count for the OpenMP regions of this call (the nn layers and GEMMs read the calling
 * thread's OpenMP setting): set on entry, restored on exit. Inside another team's thread, nested regions are
 * inactive anyway and everything runs on that thread. */
static int ctx_enter(inst *in, const celo_ctx *ctx)
{
    int saved = omp_get_max_threads();
    in->nthreads = ctx && ctx->threads > 0 ? ctx->threads : saved;
    if (omp_in_parallel())
        in->nthreads = 1;
    if (in->nthreads != saved)
        omp_set_num_threads(in->nthreads);
    return saved;
}

static void ctx_leave(inst *in, int saved)
{
    if (in->nthreads != saved)
        omp_set_num_threads(saved);
}

celo_inst *celo_inst_new(const celo_plan *plan, const celo_run *run, const celo_program *prog, const celo_backend *be,
                         celo_task_data *td, char *err, size_t errlen)
{
    inst *in = malloc(sizeof *in);
    if (!in) {
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
        return NULL;
    }
    if (inst_init(in, plan, run, td, prog, be ? be : celo_backend_cpu(), run->seed, err, errlen)) {
        inst_clear(in);
        free(in);
        return NULL;
    }
    return in;
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
    if (inst_init(&fresh, in->plan, in->run, in->data, in->prog, in->be, seed, err, errlen)) {
        inst_clear(&fresh);
        return -1;
    }
    inst_clear(in);
    *in = fresh;
    return 0;
}

celo_inst *celo_inst_clone(const celo_inst *in, char *err, size_t errlen)
{
    inst *c = malloc(sizeof *c);
    if (!c) {
        celo_seterr(err, errlen, "run %s: out of memory", in->run->name);
        return NULL;
    }
    if (inst_init(c, in->plan, in->run, in->data, in->prog, in->be, in->seed, err, errlen)) {
        inst_clear(c);
        free(c);
        return NULL;
    }
    memcpy(c->params, in->params, (size_t)in->nparams * sizeof *in->params);
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

celo_ctx celo_ctx_for(const celo_inst *in, int avail)
{
    celo_ctx c = {.threads = avail > 0 ? avail : 1};
    /* one thread unless a step has work to share: split batches, or a tensor that celo_step cuts into chunks */
    int big = in->replica != NULL;
    for (int i = 0; i < in->ntensors && !big; i++)
        big = inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN;
    if (!big)
        c.threads = 1;
    return c;
}

int celo_inst_steps(celo_inst *in, const celo_ctx *ctx, int64_t t_end, celo_step_out *o, celo_step_cb cb, void *cb_ctx,
                    char *err, size_t errlen)
{
    int saved = ctx_enter(in, ctx), rc = 0;
    memset(o, 0, sizeof *o);
    o->pre = o->post = "";
    if (team_mode(in, in->prog))
        rc = team_steps(in, t_end, o, cb, cb_ctx, err, errlen);
    else
        for (int64_t t = in->step + 1; t <= t_end; t++) {
            if (train_step(in, t, o, err, errlen)) {
                rc = -1;
                break;
            }
            account(in, t, o->loss);
            if (o->bad)
                break;
            if (t < t_end && cb)
                cb(in, cb_ctx);
        }
    ctx_leave(in, saved);
    return rc;
}

int celo_inst_eval(celo_inst *in, const celo_ctx *ctx, double *loss, double *acc, char *err, size_t errlen)
{
    int saved = ctx_enter(in, ctx);
    int rc = inst_eval(in, loss, acc, err, errlen);
    ctx_leave(in, saved);
    return rc;
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
    if (step < 1 || step > run->steps) {
        celo_seterr(err, errlen, "run %s: %s is at step %lld, the run has %lld steps", run->name, path, (long long)step,
                    (long long)run->steps);
        return -1;
    }
    /* a changed length changes what a rule that reads num_steps (a schedule) computes from here on: say so, it is
     * not an error */
    int64_t steps0;
    int reads_len = 0;
    for (int j = 0; j < in->prog->nnodes; j++)
        reads_len |= in->prog->nodes[j].op == CELO_OP_NSTEPS;
    if (reads_len && !celo_ckpt_meta_i64(c, "steps", &steps0, e, sizeof e) && steps0 != run->steps)
        fprintf(stderr,
                "run %s: note: %s was written by a run of %lld steps, this one has %lld: its learning-rate schedule "
                "from step %lld on follows the new length, so the results differ from an uninterrupted run of either "
                "length\n",
                run->name, path, (long long)steps0, (long long)run->steps, (long long)step + 1);
    int64_t want = (int64_t)in->ntensors * (1 + in->prog->nstate);
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
