/*
 * train.c — executing a plan (plan.h): training runs, their logs, checkpoints and progress, and the summaries
 * of sweeps and comparisons.
 *
 * A run
 *   - builds its task's model (nn.h) seeded by run->seed, or, for a quadratic task, a starting point
 *     x0 ~ N(0, I) drawn from run->seed (the quadratic itself is fixed by the task);
 *   - draws batch k (k = t - 1 at step t) as a pure function of (seed, k): consecutive slices of a per-epoch
 *     Fisher-Yates permutation (epoch_perm) for datasets, celo_text_batch windows for text; resuming at step
 *     s reproduces the rest;
 *   - keeps one celo_state per parameter tensor; the hyper-parameters are the rule's defaults overridden by
 *     run->hp; the schedule multiplies `lr` by f(t), with c = t - 1 optimizer steps done before step t and
 *     S = run->steps, W = run->warmup:
 *         constant       1
 *         cosine         (1 + cos(pi c / S)) / 2                        (optax.cosine_decay_schedule)
 *         warmup_cosine  (c + 1) / W while c < W, then (1 + cos(pi (c - W) / (S - W))) / 2
 *         linear         1 - c / S
 *   - checks the loss, every gradient tensor and every updated parameter tensor for NaN/Inf and stops with
 *     one line naming the step and the tensor (res->diverged = 1; not an error);
 *   - evaluates every eval_every steps and at the end (test split, or 16 batches of validation windows spread
 *     over the validation text for language models), logs one CSV row per evaluation, and checkpoints every
 *     checkpoint_every steps and at the end.
 * Fixed choices of the tasks: Fashion-MNIST is area-resized (data.h's default) to `size`; the KJV text keeps
 * 10 % for validation; teacher tasks draw their teacher and inputs from a fixed seed (the same task for every
 * run), with 10000 test examples, classification when the loss is cross-entropy and noiseless regression
 * otherwise; quadratics are rotated (dense A) up to dimension 4096 and diagonal above.
 */
#include "plan.h"

#include "ckpt.h"
#include "clones.h"
#include "data.h"
#include "errmsg.h"
#include "nn.h"
#include "rng.h"
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TASK_SEED       0x5eed7a5cull /* teacher networks and quadratics: fixed per task */
#define TEACHER_TEST_N  10000
#define KJV_VAL_FRAC    0.1
#define LM_EVAL_BATCHES 16
#define EVAL_CHUNK      1000
#define EMA_DECAY       0.98
#define CKPT_FORMAT     "celo-train 1"

#define seterr    celo_seterr    /* the runtime's one error helper (errmsg.h), under this file's old name */
#define sb_printf celo_sb_printf /* and its one text buffer (sbuf.h) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ================================ files ================================ */

/* Creates the folders above path (mkdir -p of its directory). */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char buf[CELO_PATH_MAX + 16];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        seterr(err, errlen, "%s: path too long", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            seterr(err, errlen, "%s: cannot create folder %s: %s", path, buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        seterr(err, errlen, "%s: cannot create folder %s: %s", path, buf, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes data to path atomically, creating its folders first. */
static int write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    if (make_parents(path, err, errlen))
        return -1;
    return celo_write_atomic(path, data, len, err, errlen);
}

/* ================================ task data (shared by the runs of a task) ================================ */

typedef struct {
    int loaded;
    celo_dataset train, test;
    celo_text text;
    double unigram; /* kjv: entropy of the training text's characters, nats */
    celo_quadratic quad;
} task_data;

static void task_data_free(task_data *d)
{
    if (!d->loaded)
        return;
    celo_dataset_free(&d->train);
    celo_dataset_free(&d->test);
    celo_text_free(&d->text);
    celo_quadratic_free(&d->quad);
    memset(d, 0, sizeof *d);
}

static int task_data_load(task_data *d, const celo_task *tk, int quiet, char *err, size_t errlen)
{
    if (d->loaded)
        return 0;
    memset(d, 0, sizeof *d);
    char e[512] = "";
    switch (tk->data) {
    case CELO_DATA_FASHION_MNIST: {
        if (tk->size < 0 || tk->size > 28) {
            seterr(err, errlen, "task %s: fashion_mnist size %d (1..28)", tk->name, tk->size);
            return -1;
        }
        celo_fmnist_opts fo = {.size = tk->size, .resize = CELO_RESIZE_AREA, .normalize = tk->normalize, .dir = NULL};
        if (celo_fmnist_load(&d->train, &d->test, &fo, e, sizeof e)) {
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    case CELO_DATA_KJV: {
        if (celo_text_load_kjv(&d->text, KJV_VAL_FRAC, e, sizeof e)) {
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        int64_t n = d->text.split, count[256] = {0};
        for (int64_t i = 0; i < n; i++)
            count[d->text.ids[i]]++;
        double h = 0;
        for (int c = 0; c < 256; c++)
            if (count[c])
                h -= (double)count[c] / (double)n * log((double)count[c] / (double)n);
        d->unigram = h;
        if (!quiet)
            fprintf(stderr, "task %s: KJV text, %lld training characters, vocabulary %d, unigram entropy %.4f nats\n",
                    tk->name, (long long)n, d->text.vocab, h);
        break;
    }
    case CELO_DATA_TEACHER: {
        if (tk->teacher_in < 1 || tk->teacher_out < 1 || tk->teacher_hidden < 0 || tk->teacher_n < 1) {
            seterr(err, errlen,
                   "task %s: teacher needs in >= 1, out >= 1, hidden >= 0 and n >= 1 (got %d, %d, %d, %lld)", tk->name,
                   tk->teacher_in, tk->teacher_out, tk->teacher_hidden, (long long)tk->teacher_n);
            return -1;
        }
        celo_teacher_opts to = {.in = tk->teacher_in,
                                .nhidden = tk->teacher_hidden > 0,
                                .hidden = {tk->teacher_hidden},
                                .out = tk->teacher_out,
                                .classify = tk->loss == CELO_LOSS_CROSS_ENTROPY,
                                .noise = 0.0f,
                                .seed = TASK_SEED};
        if (celo_teacher_dataset(&d->train, &to, CELO_SPLIT_TRAIN, tk->teacher_n, e, sizeof e) ||
            celo_teacher_dataset(&d->test, &to, CELO_SPLIT_TEST, TEACHER_TEST_N, e, sizeof e)) {
            celo_dataset_free(&d->train);
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    case CELO_DATA_QUADRATIC: {
        celo_quadratic_opts qo = {
            .dim = tk->quad_dim, .cond = tk->quad_cond, .rotate = tk->quad_dim <= 4096, .seed = TASK_SEED};
        if (celo_quadratic_make(&d->quad, &qo, e, sizeof e)) {
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        break;
    }
    default: seterr(err, errlen, "task %s: unknown data kind %d", tk->name, (int)tk->data); return -1;
    }
    d->loaded = 1;
    return 0;
}

/* ================================ one training instance ================================ */

typedef struct {
    int64_t step;
    double train_loss, eval_loss, eval_acc, wall_s;
} row;

typedef struct {
    const celo_run *run;
    const celo_task *task;
    task_data *data;
    const celo_program *prog;
    celo_model *model;   /* NULL for quadratics */
    celo_model *replica; /* over model's parameters: the second half of each batch (split_batches) */
    celo_param_tensor qt;
    float *qx, *qg;
    float *params, *grads;
    int ntensors;
    celo_state **st;
    float *hp;
    int lr_idx;
    double lr0;
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
    /* log */
    row *rows;
    int nrows, caprows;
    double loss_sum, ema;
    int64_t loss_n, ema_n;
    double wall_prev; /* seconds spent in earlier sessions (resume) */
    int64_t step;     /* optimizer steps done */
} inst;

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

static void inst_free(inst *in)
{
    if (in->st)
        for (int i = 0; i < in->ntensors; i++)
            celo_state_free(in->st[i]);
    free(in->st);
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
    free(in->rows);
    memset(in, 0, sizeof *in);
}

static int is_lm(const celo_task *tk)
{
    return tk->model == CELO_MODEL_GPT || tk->model == CELO_MODEL_LSTM;
}

/* The model configuration of a task, with the widths the data implies. */
static int model_config(const celo_task *tk, const task_data *d, celo_model_config *cfg, char *err, size_t errlen)
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
            seterr(err, errlen, "task %s: model %s needs vector data (fashion_mnist or teacher), not text", tk->name,
                   mname);
            return -1;
        }
        int in = (int)d->train.dim, out = d->train.nclass ? d->train.nclass : (int)d->train.ydim;
        if (tk->in && tk->in != in) {
            seterr(err, errlen, "task %s: the model's input width is %d, the data has %d features", tk->name, tk->in,
                   in);
            return -1;
        }
        if (tk->model == CELO_MODEL_MLP && tk->out && tk->out != out) {
            seterr(err, errlen, "task %s: the model has %d outputs, the data %d %s", tk->name, tk->out, out,
                   d->train.nclass ? "classes" : "targets");
            return -1;
        }
        if (tk->model == CELO_MODEL_MLP && images && tk->loss != CELO_LOSS_CROSS_ENTROPY) {
            seterr(err, errlen, "task %s: fashion_mnist has class labels: the mlp's loss must be cross_entropy",
                   tk->name);
            return -1;
        }
        if (tk->nhidden < 0 || tk->nhidden > CELO_MLP_MAX_HIDDEN) {
            seterr(err, errlen, "task %s: %d hidden layers (at most %d)", tk->name, tk->nhidden, CELO_MLP_MAX_HIDDEN);
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
            seterr(err, errlen, "task %s: model convnet needs images (fashion_mnist)", tk->name);
            return -1;
        }
        cfg->conv = (celo_convnet_config){.channels = 1,
                                          .height = d->train.h,
                                          .width = d->train.w,
                                          .conv1 = tk->conv1,
                                          .conv2 = tk->conv2,
                                          .kernel = tk->kernel,
                                          .pool = (celo_pool_kind)tk->pool,
                                          .out = d->train.nclass};
        return 0;
    case CELO_MODEL_GPT:
    case CELO_MODEL_LSTM:
        if (!text) {
            seterr(err, errlen, "task %s: model %s needs text (kjv)", tk->name, mname);
            return -1;
        }
        if (tk->seq < 1) {
            seterr(err, errlen, "task %s: a language model needs seq >= 1 (got %d)", tk->name, tk->seq);
            return -1;
        }
        if (tk->model == CELO_MODEL_GPT) {
            int ctx = tk->ctx ? tk->ctx : tk->seq;
            if (tk->seq > ctx) {
                seterr(err, errlen, "task %s: seq %d is longer than the model's context %d", tk->name, tk->seq, ctx);
                return -1;
            }
            cfg->gpt = (celo_gpt_config){.vocab = d->text.vocab,
                                         .ctx = ctx,
                                         .dim = tk->dim,
                                         .heads = tk->heads,
                                         .layers = tk->layers,
                                         .gpt2_init = 0};
        } else {
            cfg->lstm = (celo_lstm_config){
                .vocab = d->text.vocab, .embed = tk->embed, .hidden = tk->lstm_hidden, .layers = tk->layers};
        }
        return 0;
    default: seterr(err, errlen, "task %s: unknown model kind %d", tk->name, tk->model); return -1;
    }
}

/* Sets up the model (or the quadratic's point), optimizer state, hyper-parameters and buffers. */
static int inst_init(inst *in, const celo_plan *plan, const celo_run *run, task_data *td, const celo_program *prog,
                     char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    in->run = run;
    in->task = &plan->tasks[run->task];
    in->data = td;
    in->prog = prog;
    const celo_task *tk = in->task;
    char e[512] = "";
    in->data_seed = mix64(run->seed ^ 0xda7a5eedull);
    if (tk->data == CELO_DATA_QUADRATIC) {
        int d = td->quad.dim;
        in->qx = malloc(sizeof(float) * (size_t)d);
        in->qg = calloc((size_t)d, sizeof(float));
        if (!in->qx || !in->qg)
            goto oom;
        celo_rng r;
        celo_rng_init(&r, run->seed, 0);
        celo_rng_fill_normal(&r, in->qx, d, 0.0, 1.0);
        snprintf(in->qt.name, sizeof in->qt.name, "x");
        in->qt.ndim = 1;
        in->qt.shape[0] = d;
        in->qt.offset = 0;
        in->qt.numel = d;
        in->params = in->qx;
        in->grads = in->qg;
        in->ntensors = 1;
    } else {
        if (tk->batch < 1) {
            seterr(err, errlen, "run %s: task %s has batch %d", run->name, tk->name, tk->batch);
            return -1;
        }
        celo_model_config cfg;
        if (model_config(tk, td, &cfg, err, errlen))
            return -1;
        in->model = celo_model_create(&cfg, run->seed, e, sizeof e);
        if (!in->model) {
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
        in->params = celo_model_params(in->model);
        in->grads = celo_model_grads(in->model);
        in->ntensors = celo_model_ntensors(in->model);
        int B = in->B = tk->batch;
        if (is_lm(tk)) {
            int T = in->T = tk->seq;
            if (celo_text_len(&td->text, CELO_SPLIT_TRAIN) < T + 1) {
                seterr(err, errlen, "task %s: the training text is shorter than seq + 1 = %d", tk->name, T + 1);
                return -1;
            }
            in->btok = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
            in->by = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
            int64_t nwin = celo_text_num_windows(&td->text, CELO_SPLIT_VAL, T);
            if (nwin < 1) {
                seterr(err, errlen, "task %s: the validation text is shorter than seq + 1 = %d", tk->name, T + 1);
                return -1;
            }
            int64_t ne = (int64_t)LM_EVAL_BATCHES * B < nwin ? (int64_t)LM_EVAL_BATCHES * B : nwin;
            in->etok = malloc(sizeof(int32_t) * (size_t)ne * (size_t)T);
            in->elab = malloc(sizeof(int32_t) * (size_t)ne * (size_t)T);
            if (!in->btok || !in->by || !in->etok || !in->elab)
                goto oom;
            for (int64_t i = 0; i < ne; i++) /* windows spread evenly over the validation text */
                celo_text_window(&td->text, CELO_SPLIT_VAL, i * nwin / ne, T, in->etok + i * T, in->elab + i * T);
            in->eb = (celo_batch){.n = (int)ne, .seq = T, .tokens = in->etok, .labels = in->elab};
            in->echunk = B;
        } else {
            const celo_dataset *tr = &td->train;
            if (tr->n < B) {
                seterr(err, errlen, "task %s: batch %d is larger than the %lld training examples", tk->name, B,
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
            const celo_dataset *te = &td->test;
            in->eb = (celo_batch){.n = (int)te->n, .x = te->x, .labels = te->y, .target = te->t};
            in->echunk = EVAL_CHUNK;
        }
        if (split_batches(in->model, in->B, in->T) && !(in->replica = celo_model_replica(in->model, e, sizeof e))) {
            seterr(err, errlen, "task %s: %s", tk->name, e);
            return -1;
        }
    }
    in->st = calloc((size_t)in->ntensors, sizeof *in->st);
    if (!in->st)
        goto oom;
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        in->st[i] = celo_state_new(prog, t->ndim, t->shape);
        if (!in->st[i])
            goto oom;
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
            seterr(err, errlen, "run %s: optimizer '%s' has no hyper-parameter '%s' (it has: %s)", run->name,
                   prog->name, run->hp_name[i], prog->nhp ? list : "none");
            return -1;
        }
        in->hp[k] = (float)run->hp[i];
    }
    in->lr_idx = celo_program_hp_index(prog, "lr");
    if (run->schedule != CELO_SCHED_CONSTANT) {
        if (in->lr_idx < 0) {
            seterr(err, errlen,
                   "run %s: a learning-rate schedule needs a hyper-parameter 'lr', and optimizer '%s' has "
                   "none",
                   run->name, prog->name);
            return -1;
        }
        if (run->schedule != CELO_SCHED_COSINE && run->schedule != CELO_SCHED_WARMUP_COSINE &&
            run->schedule != CELO_SCHED_LINEAR) {
            seterr(err, errlen, "run %s: unknown schedule %d", run->name, (int)run->schedule);
            return -1;
        }
        in->lr0 = in->hp[in->lr_idx];
        for (int i = 0; i < run->nhp; i++) /* the exact value, not its float rounding */
            if (!strcmp(run->hp_name[i], "lr"))
                in->lr0 = run->hp[i];
    }
    return 0;
oom:
    seterr(err, errlen, "run %s: out of memory", run->name);
    return -1;
}

static double sched_factor(const celo_run *r, int64_t t)
{
    double c = (double)(t - 1), S = (double)r->steps, W = (double)r->warmup;
    const double pi = 3.14159265358979323846;
    switch (r->schedule) {
    case CELO_SCHED_COSINE: return 0.5 * (1.0 + cos(pi * c / S));
    case CELO_SCHED_WARMUP_COSINE:
        if (c < W)
            return (c + 1.0) / W;
        return S > W ? 0.5 * (1.0 + cos(pi * (c - W) / (S - W))) : 1.0;
    case CELO_SCHED_LINEAR: return 1.0 - c / S;
    default: return 1.0;
    }
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
    const celo_dataset *tr = in->T ? NULL : &in->data->train;
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
#pragma omp parallel num_threads(2) if (celo_threads() >= 2)
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
        celo_text_batch(&in->data->text, CELO_SPLIT_TRAIN, in->data_seed, (uint64_t)k, in->B, in->T, in->btok, in->by);
        b->seq = in->T;
        b->tokens = in->btok;
        b->labels = in->by;
        return;
    }
    const celo_dataset *tr = &in->data->train;
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
        *loss = celo_quadratic_loss(&in->data->quad, in->qx, in->qg);
        return 0;
    }
    celo_batch b;
    inst_batch(in, k, &b);
    float l;
    int r = in->replica ? split_loss_grad(in, &b, !in->T, &l, finite) : model_loss_grad(in->model, &b, &l);
    if (r) {
        seterr(err, errlen, "run %s: %s", in->run->name, celo_model_error(r == -2 ? in->replica : in->model));
        return -1;
    }
    *loss = l;
    return 0;
}

static int inst_eval(inst *in, double *loss, double *acc, char *err, size_t errlen)
{
    if (!in->model) {
        *loss = celo_quadratic_loss(&in->data->quad, in->qx, NULL);
        *acc = NAN;
        return 0;
    }
    if (celo_model_eval(in->model, &in->eb, in->echunk, loss, acc)) {
        seterr(err, errlen, "run %s: evaluation: %s", in->run->name, celo_model_error(in->model));
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
#pragma omp parallel for schedule(dynamic) if (n > 1 && celo_threads() >= 2)
    for (int i = 0; i < n; i++) {
        const celo_param_tensor *pt = inst_tensor(in, i);
        if (!all_finite(buf + pt->offset, pt->numel)) {
#pragma omp critical(celo_first_nonfinite)
            nf = nf < 0 || i < nf ? i : nf;
        }
    }
    return nf;
}

/* The optimizer step of every tensor. A tensor large enough for celo_step to split over the threads itself
 * (CELO_STEP_SPLIT_MIN elements) runs alone; the smaller ones split over threads, one tensor each. Each
 * tensor's update is independent and gives the same values on one thread or in a team, so results do not depend
 * on the split. Returns the lowest index of a tensor whose step failed (its message in msg), or -1; *nonfinite is
 * the lowest index of a tensor whose parameters are not finite after the update, or -1. */
static int update_tensors(inst *in, const celo_program *prog, int64_t t, char *msg, size_t msglen, int *nonfinite)
{
    int n = in->ntensors, failed = -1, nf = -1;
    for (int big = 1; big >= 0; big--)
#pragma omp parallel for schedule(dynamic) if (!big && n > 1 && celo_threads() >= 2)
        for (int i = 0; i < n; i++) {
            const celo_param_tensor *pt = inst_tensor(in, i);
            if ((pt->numel >= CELO_STEP_SPLIT_MIN) != big)
                continue;
            celo_step_opts so;
            memset(&so, 0, sizeof so);
            int r = celo_step(prog, in->st[i], in->params + pt->offset, in->grads + pt->offset, in->hp, t, &so);
            int fin = r == 0 && all_finite(in->params + pt->offset, pt->numel);
#pragma omp critical(celo_update_tensors)
            {
                if (r && (failed < 0 || i < failed)) {
                    failed = i;
                    snprintf(msg, msglen, "%s", so.err);
                }
                if (!r && !fin && (nf < 0 || i < nf))
                    nf = i;
            }
        }
    *nonfinite = nf;
    return failed;
}

static int add_row(inst *in, row r)
{
    if (in->nrows == in->caprows) {
        int nc = in->caprows ? 2 * in->caprows : 16;
        row *p = realloc(in->rows, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        in->rows = p;
        in->caprows = nc;
    }
    in->rows[in->nrows++] = r;
    return 0;
}

static int write_csv(const inst *in, char *err, size_t errlen)
{
    const char *path = in->run->log;
    if (!path[0])
        return 0;
    sbuf b = {0};
    sb_printf(&b, "step,train_loss,eval_loss,eval_acc,wall_s\n");
    for (int i = 0; i < in->nrows; i++) {
        const row *r = &in->rows[i];
        sb_printf(&b, "%lld,%.7g,%.7g,%.7g,%.3f\n", (long long)r->step, r->train_loss, r->eval_loss, r->eval_acc,
                  r->wall_s);
    }
    int rc = -1;
    if (b.oom)
        seterr(err, errlen, "%s: out of memory", path);
    else
        rc = write_atomic(path, b.s, b.len, err, errlen);
    free(b.s);
    return rc;
}

/* ---- checkpoints ---- */

static int ckpt_save(const inst *in, double wall, char *err, size_t errlen)
{
    const celo_run *run = in->run;
    char e[512] = "", v[64];
    celo_ckpt c;
    celo_ckpt_init(&c);
    sbuf rows = {0};
    int rc = -1;
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        if (celo_ckpt_add(&c, t->name, in->params + t->offset, t->ndim, t->shape, e, sizeof e))
            goto done;
    }
    for (int i = 0; i < in->ntensors; i++)
        if (celo_ckpt_add_state(&c, inst_tensor(in, i)->name, in->st[i], e, sizeof e))
            goto done;
    for (int i = 0; i < in->nrows; i++) {
        const row *r = &in->rows[i];
        sb_printf(&rows, "%lld %.17g %.17g %.17g %.17g\n", (long long)r->step, r->train_loss, r->eval_loss, r->eval_acc,
                  r->wall_s);
    }
    if (rows.oom) {
        snprintf(e, sizeof e, "out of memory");
        goto done;
    }
    snprintf(v, sizeof v, "%llu", (unsigned long long)run->seed);
    if (celo_ckpt_set_meta(&c, "celo.format", CKPT_FORMAT, e, sizeof e) ||
        celo_ckpt_set_meta(&c, "run", run->name, e, sizeof e) ||
        celo_ckpt_set_meta(&c, "rule", run->rule, e, sizeof e) ||
        celo_ckpt_set_meta(&c, "task", in->task->name, e, sizeof e) || celo_ckpt_set_meta(&c, "seed", v, e, sizeof e) ||
        celo_ckpt_set_meta_i64(&c, "step", in->step, e, sizeof e) ||
        celo_ckpt_set_meta_i64(&c, "steps", run->steps, e, sizeof e) ||
        celo_ckpt_set_meta_i64(&c, "loss_n", in->loss_n, e, sizeof e) ||
        celo_ckpt_set_meta_i64(&c, "ema_n", in->ema_n, e, sizeof e) ||
        celo_ckpt_set_meta(&c, "rows", rows.s ? rows.s : "", e, sizeof e))
        goto done;
    snprintf(v, sizeof v, "%.17g", in->loss_sum);
    if (celo_ckpt_set_meta(&c, "loss_sum", v, e, sizeof e))
        goto done;
    snprintf(v, sizeof v, "%.17g", in->ema);
    if (celo_ckpt_set_meta(&c, "ema", v, e, sizeof e))
        goto done;
    snprintf(v, sizeof v, "%.17g", wall);
    if (celo_ckpt_set_meta(&c, "wall_s", v, e, sizeof e))
        goto done;
    if (make_parents(run->checkpoint, e, sizeof e) || celo_ckpt_write(&c, run->checkpoint, e, sizeof e))
        goto done;
    rc = 0;
done:
    if (rc)
        seterr(err, errlen, "run %s: checkpoint: %s", run->name, e);
    free(rows.s);
    celo_ckpt_free(&c);
    return rc;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    *v = strtod(s, &end);
    return *end ? -1 : 0;
}

/* Restores a run from its checkpoint. 0, or -1 with err (one line naming the file). */
static int ckpt_load(inst *in, char *err, size_t errlen)
{
    const celo_run *run = in->run;
    const char *path = run->checkpoint;
    char e[512] = "";
    celo_ckpt c;
    celo_ckpt_init(&c);
    int rc = -1;
    if (celo_ckpt_read(&c, path, e, sizeof e)) {
        seterr(err, errlen, "run %s: %s", run->name, e);
        goto done;
    }
    const char *fmt = celo_ckpt_get_meta(&c, "celo.format");
    const char *name = celo_ckpt_get_meta(&c, "run");
    const char *rule = celo_ckpt_get_meta(&c, "rule");
    const char *seed = celo_ckpt_get_meta(&c, "seed");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) || !name || !rule || !seed) {
        seterr(err, errlen, "run %s: %s: not a checkpoint of a celo training run", run->name, path);
        goto done;
    }
    if (strcmp(name, run->name)) {
        seterr(err, errlen, "run %s: %s is a checkpoint of run '%.64s'", run->name, path, name);
        goto done;
    }
    if (strcmp(rule, run->rule)) {
        seterr(err, errlen, "run %s: %s was trained with optimizer '%.64s', the run uses '%s'", run->name, path, rule,
               run->rule);
        goto done;
    }
    char sv[32];
    snprintf(sv, sizeof sv, "%llu", (unsigned long long)run->seed);
    if (strcmp(seed, sv)) {
        seterr(err, errlen, "run %s: %s has seed %.24s, the run has seed %s", run->name, path, seed, sv);
        goto done;
    }
    int64_t step, loss_n, ema_n;
    if (celo_ckpt_meta_i64(&c, "step", &step, e, sizeof e) || celo_ckpt_meta_i64(&c, "loss_n", &loss_n, e, sizeof e) ||
        celo_ckpt_meta_i64(&c, "ema_n", &ema_n, e, sizeof e)) {
        seterr(err, errlen, "run %s: %s: %s", run->name, path, e);
        goto done;
    }
    if (step < 1 || step > run->steps) {
        seterr(err, errlen, "run %s: %s is at step %lld, the run has %lld steps", run->name, path, (long long)step,
               (long long)run->steps);
        goto done;
    }
    /* a changed length changes every schedule but the constant one from here on: say so, it is not an error */
    int64_t steps0;
    if (run->schedule != CELO_SCHED_CONSTANT && !celo_ckpt_meta_i64(&c, "steps", &steps0, e, sizeof e) &&
        steps0 != run->steps)
        fprintf(stderr,
                "run %s: note: %s was written by a run of %lld steps, this one has %lld: its learning-rate schedule "
                "from step %lld on follows the new length, so the results differ from an uninterrupted run of either "
                "length\n",
                run->name, path, (long long)steps0, (long long)run->steps, (long long)step + 1);
    int64_t want = (int64_t)in->ntensors * (1 + in->prog->nstate);
    if (c.ntensor != want) {
        seterr(err, errlen,
               "run %s: %s holds %d tensors, the model and optimizer state of the run %lld (another model?)", run->name,
               path, c.ntensor, (long long)want);
        goto done;
    }
    for (int i = 0; i < in->ntensors; i++) {
        const celo_param_tensor *t = inst_tensor(in, i);
        if (celo_ckpt_load(&c, t->name, in->params + t->offset, t->ndim, t->shape, e, sizeof e) ||
            celo_ckpt_load_state(&c, t->name, in->st[i], e, sizeof e)) {
            seterr(err, errlen, "run %s: %s (another model?)", run->name, e);
            goto done;
        }
        in->st[i]->t = step;
    }
    double loss_sum, ema, wall;
    if (parse_double(celo_ckpt_get_meta(&c, "loss_sum"), &loss_sum) ||
        parse_double(celo_ckpt_get_meta(&c, "ema"), &ema) || parse_double(celo_ckpt_get_meta(&c, "wall_s"), &wall)) {
        seterr(err, errlen, "run %s: %s: bad metadata (loss_sum, ema or wall_s)", run->name, path);
        goto done;
    }
    const char *rows = celo_ckpt_get_meta(&c, "rows");
    in->nrows = 0;
    for (const char *p = rows ? rows : ""; *p;) {
        row r;
        int used = 0;
        long long st;
        char a[40], b2[40], c2[40], d2[40];
        if (sscanf(p, "%lld %39s %39s %39s %39s%n", &st, a, b2, c2, d2, &used) != 5 || p[used] != '\n' ||
            parse_double(a, &r.train_loss) || parse_double(b2, &r.eval_loss) || parse_double(c2, &r.eval_acc) ||
            parse_double(d2, &r.wall_s) || st < 1 || st > step) {
            seterr(err, errlen, "run %s: %s: bad metadata (rows)", run->name, path);
            goto done;
        }
        r.step = st;
        if (add_row(in, r)) {
            seterr(err, errlen, "run %s: out of memory", run->name);
            goto done;
        }
        p += used + 1;
    }
    in->step = step;
    in->loss_sum = loss_sum;
    in->loss_n = loss_n;
    in->ema = ema;
    in->ema_n = ema_n;
    in->wall_prev = wall;
    rc = 0;
done:
    celo_ckpt_free(&c);
    return rc;
}

/* ================================ progress ================================ */

typedef struct {
    int on, tty;
    double t0, last;
    int64_t s0;   /* step when this session started */
    int64_t mark; /* plain output: next 10 % mark */
    int width;    /* tty: characters of the last line */
} progress;

static void fmt_time(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%lld:%02lld", t / 60, t % 60);
}

static double prog_rate(const progress *pg, const inst *in, double now)
{
    double dt = now - pg->t0;
    return dt > 0 ? (double)(in->step - pg->s0) / dt : 0;
}

static void prog_tty(progress *pg, const inst *in, double now)
{
    const celo_run *run = in->run;
    double rate = prog_rate(pg, in, now);
    char eta[32], line[512];
    fmt_time(rate > 0 ? (double)(run->steps - in->step) / rate : -1, eta, sizeof eta);
    int w = 20, fill = run->steps > 0 ? (int)((double)w * (double)in->step / (double)run->steps) : w;
    char bar[32];
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[w] = 0;
    int k = snprintf(line, sizeof line, "%s [%s] %lld/%lld  loss %.4g", run->name, bar, (long long)in->step,
                     (long long)run->steps, in->ema);
    if (in->nrows && k > 0 && (size_t)k < sizeof line) {
        const row *r = &in->rows[in->nrows - 1];
        k += snprintf(line + k, sizeof line - (size_t)k, "  eval %.4g", r->eval_loss);
        if (!isnan(r->eval_acc) && k > 0 && (size_t)k < sizeof line)
            k += snprintf(line + k, sizeof line - (size_t)k, " (acc %.2f%%)", 100 * r->eval_acc);
    }
    if (k > 0 && (size_t)k < sizeof line)
        snprintf(line + k, sizeof line - (size_t)k, "  %.0f steps/s  ETA %s", rate, eta);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    pg->last = now;
}

static void prog_line(progress *pg, const inst *in, double now, int with_eval)
{
    const celo_run *run = in->run;
    double rate = prog_rate(pg, in, now);
    char eta[32];
    fmt_time(rate > 0 ? (double)(run->steps - in->step) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%s: step %lld/%lld  smoothed_loss %.4g", run->name, (long long)in->step, (long long)run->steps,
            in->ema);
    if (with_eval && in->nrows) {
        const row *r = &in->rows[in->nrows - 1];
        fprintf(stderr, "  eval_loss %.4g", r->eval_loss);
        if (!isnan(r->eval_acc))
            fprintf(stderr, "  eval_acc %.4f", r->eval_acc);
    }
    fprintf(stderr, "  %.0f steps/s  ETA %s\n", rate, eta);
    pg->last = now;
}

/* After step in->step; evaluated: a row was just added. */
static void prog_update(progress *pg, const inst *in, int evaluated)
{
    if (!pg->on)
        return;
    if (pg->tty) {
        double now = now_s();
        if (now - pg->last >= 0.2 || evaluated)
            prog_tty(pg, in, now);
        return;
    }
    /* plain lines: at each evaluation, and at every 10 % mark at most once a second (short runs print only their
     * evaluations); none at the last step, which the summary line reports */
    if (in->step >= in->run->steps)
        return;
    if (evaluated || in->step >= pg->mark) {
        double now = now_s();
        if (evaluated || now - pg->last >= 1.0)
            prog_line(pg, in, now, evaluated);
        while (pg->mark <= in->step)
            pg->mark += in->run->steps / 10 > 0 ? in->run->steps / 10 : 1;
    }
}

/* ================================ steps ================================ */

/* What a step found: its loss, and the first value that was not finite (bad = NULL when none), named as
 * pre + bad + post ("gradient of fc1.w", "fc1.w after the update", "the loss"). */
typedef struct {
    double loss;
    const char *bad, *pre, *post;
} step_out;

static void set_lr(inst *in, int64_t t)
{
    if (in->run->schedule != CELO_SCHED_CONSTANT)
        in->hp[in->lr_idx] = (float)(in->lr0 * sched_factor(in->run, t));
}

/* The step's loss and gradients' finiteness (fin: known finite) into o->bad. */
static void check_grads(inst *in, int fin, step_out *o)
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
static int train_step(inst *in, const celo_program *prog, int64_t t, step_out *o, char *err, size_t errlen)
{
    int fin;
    if (inst_loss_grad(in, t - 1, &o->loss, &fin, err, errlen))
        return -1;
    check_grads(in, fin, o);
    if (o->bad)
        return 0;
    set_lr(in, t);
    char msg[256];
    int nonfinite, failed = update_tensors(in, prog, t, msg, sizeof msg, &nonfinite);
    if (failed >= 0) {
        seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t, inst_tensor(in, failed)->name,
               msg);
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

/* Whether steps of this run go through team_steps: split batches, and a rule without orthogonalizations (their
 * GEMMs want both threads, which a team's thread 0 does not have). */
static int team_mode(const inst *in, const celo_program *prog)
{
    const char *env = getenv("CELO_TRAIN_TEAM"); /* 0: one OpenMP region per phase (tests, experiments) */
    if (!in->replica || (env && !strcmp(env, "0")))
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
static int team_steps(inst *in, const celo_program *prog, int64_t t_end, progress *pg, step_out *o, char *err,
                      size_t errlen)
{
    celo_team *team = NULL;
    celo_batch b;
    int n = in->B, n0 = in->B / 2, gather = !in->T, rc = 0, stop = 0;
    int r[2] = {0, 0}, ok[2] = {1, 1};
    float l[2] = {0, 0};
    int failed[2], nf[2];
    char msg[2][256];
    celo_step_opts so[2], big_so;
    memset(&big_so, 0, sizeof big_so);
    int nt = in->ntensors;
#pragma omp parallel num_threads(2) if (celo_threads() >= 2)
    {
        int w = omp_get_thread_num(), nw = omp_get_num_threads();
#pragma omp single
        {
            team = celo_team_new(nw);
            stop = !team;
        }
        for (int64_t t = in->step + 1; !stop; t++) {
            if (w == 0) {
                inst_batch(in, t - 1, &b);
                set_lr(in, t);
            }
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
                    if (celo_step_team(prog, in->st[i], p, in->grads + pt->offset, in->hp, t, &big_so, team, w)) {
                        if (w == 0) {
                            failed[0] = i;
                            snprintf(msg[0], sizeof msg[0], "%s", big_so.err);
                        }
                        break;
                    }
                    int64_t lo = pt->numel * w / nw, hi = pt->numel * (w + 1) / nw;
                    if (nf[w] < 0 && !all_finite(p + lo, hi - lo))
                        nf[w] = i;
                } else if (small++ % nw == w && failed[w] < 0) {
                    memset(&so[w], 0, sizeof so[w]);
                    so[w].nthreads = 1;
                    if (celo_step(prog, in->st[i], p, in->grads + pt->offset, in->hp, t, &so[w])) {
                        failed[w] = i;
                        snprintf(msg[w], sizeof msg[w], "%s", so[w].err);
                    } else if (nf[w] < 0 && !all_finite(p, pt->numel))
                        nf[w] = i;
                }
            }
            celo_team_wait(team);
            if (w == 0) {
                if (r[0] || r[1]) {
                    seterr(err, errlen, "run %s: %s", in->run->name, celo_model_error(r[0] ? in->model : in->replica));
                    rc = -1;
                } else {
                    o->loss = (float)loss;
                    check_grads(in, go, o);
                    int f = nw > 1 && failed[1] >= 0 && (failed[0] < 0 || failed[1] < failed[0]) ? 1 : 0;
                    int v = nw > 1 && nf[1] >= 0 && (nf[0] < 0 || nf[1] < nf[0]) ? 1 : 0;
                    if (go && failed[f] >= 0) {
                        seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t,
                               inst_tensor(in, failed[f])->name, msg[f]);
                        rc = -1;
                    } else {
                        if (go && nf[v] >= 0)
                            o->bad = inst_tensor(in, nf[v])->name, o->post = " after the update";
                        account(in, t, o->loss);
                        if (!o->bad && t < t_end)
                            prog_update(pg, in, 0);
                    }
                }
                stop = rc || o->bad || t >= t_end;
            }
            celo_team_wait(team);
        }
    }
    if (!team && !rc) {
        seterr(err, errlen, "run %s: out of memory", in->run->name);
        rc = -1;
    }
    celo_team_free(team);
    return rc;
}

/* ================================ a run ================================ */

typedef struct {
    int ran;
    celo_run_result res;
    int64_t diverged_at;
    row *rows;
    int nrows;
} outcome;

static int run_one(const celo_plan *plan, const celo_run *run, task_data *td, celo_rule_lookup lookup, void *lctx,
                   const celo_run_opts *opts, celo_run_result *res, outcome *out, char *err, size_t errlen)
{
    static const celo_run_opts defaults = {0, 0, NULL};
    if (!opts)
        opts = &defaults;
    memset(res, 0, sizeof *res);
    res->final_train_loss = res->final_eval_loss = res->final_eval_acc = NAN;
    if (err && errlen)
        err[0] = 0;
    if (run->task < 0 || run->task >= plan->ntasks) {
        seterr(err, errlen, "run %s: task %d does not exist", run->name, run->task);
        return -1;
    }
    if (run->steps < 1) {
        seterr(err, errlen, "run %s: steps = %lld (want at least 1)", run->name, (long long)run->steps);
        return -1;
    }
    if (run->eval_every < 0 || run->checkpoint_every < 0 || run->warmup < 0) {
        seterr(err, errlen, "run %s: eval_every, checkpoint_every and warmup must not be negative", run->name);
        return -1;
    }
    const celo_program *prog = lookup ? lookup(run->rule, lctx) : NULL;
    if (!prog) {
        seterr(err, errlen, "run %s: unknown optimizer '%s'", run->name, run->rule);
        return -1;
    }
    const celo_task *tk = &plan->tasks[run->task];
    if (task_data_load(td, tk, opts->quiet, err, errlen))
        return -1;
    inst in;
    int rc = -1;
    if (inst_init(&in, plan, run, td, prog, err, errlen))
        goto done;

    progress pg = {.on = !opts->quiet, .tty = isatty(2)};
    int resumed = 0;
    if (opts->resume && run->checkpoint[0] && access(run->checkpoint, F_OK) == 0) {
        if (ckpt_load(&in, err, errlen))
            goto done;
        resumed = 1;
        if (pg.on)
            fprintf(stderr, "%s: resuming from %s at step %lld of %lld\n", run->name, run->checkpoint,
                    (long long)in.step, (long long)run->steps);
        if (write_csv(&in, err, errlen))
            goto done;
    }
    double t0 = now_s();
    pg.t0 = pg.last = t0;
    pg.s0 = in.step;
    int64_t tenth = run->steps / 10 > 0 ? run->steps / 10 : 1;
    pg.mark = (in.step / tenth + 1) * tenth;
    const int64_t eval_every = run->eval_every, ck_every = run->checkpoint_every;
    const int team = team_mode(&in, prog);
    int diverged = 0;
    char msg[512] = "";
    while (in.step < run->steps) {
        /* the steps up to the next one that evaluates or checkpoints (one at a time outside a team) */
        int64_t t_end = run->steps;
        if (eval_every > 0 && (in.step / eval_every + 1) * eval_every < t_end)
            t_end = (in.step / eval_every + 1) * eval_every;
        if (run->checkpoint[0] && ck_every > 0 && (in.step / ck_every + 1) * ck_every < t_end)
            t_end = (in.step / ck_every + 1) * ck_every;
        step_out o;
        if (team) {
            if (team_steps(&in, prog, t_end, &pg, &o, err, errlen))
                goto done;
        } else {
            if (train_step(&in, prog, in.step + 1, &o, err, errlen))
                goto done;
            account(&in, in.step + 1, o.loss);
        }
        int64_t t = in.step;
        if (o.bad) {
            snprintf(msg, sizeof msg, "run %s: step %lld: %s%s is not finite%s; stopping", run->name, (long long)t,
                     o.pre, o.bad, o.post);
            diverged = 1;
            row r = {t, in.loss_sum / (double)in.loss_n, NAN, NAN, in.wall_prev + now_s() - t0};
            if (add_row(&in, r)) {
                seterr(err, errlen, "run %s: out of memory", run->name);
                goto done;
            }
            if (write_csv(&in, err, errlen))
                goto done;
            break;
        }
        if (t < t_end) {
            prog_update(&pg, &in, 0);
            continue;
        }
        int evaluated = 0;
        if ((eval_every > 0 && t % eval_every == 0) || t == run->steps) {
            row r = {t, in.loss_sum / (double)in.loss_n, NAN, NAN, 0};
            if (inst_eval(&in, &r.eval_loss, &r.eval_acc, err, errlen))
                goto done;
            r.wall_s = in.wall_prev + now_s() - t0;
            in.loss_sum = 0;
            in.loss_n = 0;
            if (add_row(&in, r)) {
                seterr(err, errlen, "run %s: out of memory", run->name);
                goto done;
            }
            if (write_csv(&in, err, errlen))
                goto done;
            evaluated = 1;
        }
        if (run->checkpoint[0] && ((ck_every > 0 && t % ck_every == 0) || t == run->steps))
            if (ckpt_save(&in, in.wall_prev + now_s() - t0, err, errlen))
                goto done;
        prog_update(&pg, &in, evaluated);
    }
    double t1 = now_s();
    if (pg.on && pg.tty && in.step > pg.s0) {
        prog_tty(&pg, &in, t1);
        fputc('\n', stderr);
    }
    if (diverged) {
        fprintf(stderr, "%s\n", msg);
        seterr(err, errlen, "%s", msg);
    }
    res->steps_done = diverged ? in.step - 1 : in.step;
    res->diverged = diverged;
    res->wall_s = in.wall_prev + t1 - t0;
    if (in.nrows) {
        const row *r = &in.rows[in.nrows - 1];
        res->final_train_loss = r->train_loss;
        res->final_eval_loss = r->eval_loss;
        res->final_eval_acc = r->eval_acc;
        res->wall_s = r->wall_s;
    }
    if (pg.on && !diverged) {
        char tm[32];
        fmt_time(t1 - t0, tm, sizeof tm);
        if (resumed && in.step == pg.s0)
            fprintf(stderr, "%s: already done (%lld steps)", run->name, (long long)in.step);
        else
            fprintf(stderr, "%s: done, %lld steps in %s (%.0f steps/s)", run->name, (long long)in.step, tm,
                    t1 > t0 ? (double)(in.step - pg.s0) / (t1 - t0) : 0.0);
        fprintf(stderr, "; train_loss %.4g  eval_loss %.4g", res->final_train_loss, res->final_eval_loss);
        if (!isnan(res->final_eval_acc))
            fprintf(stderr, "  eval_acc %.4f", res->final_eval_acc);
        fputc('\n', stderr);
    }
    if (out) {
        out->ran = 1;
        out->res = *res;
        out->diverged_at = diverged ? in.step : 0;
        out->rows = in.rows;
        out->nrows = in.nrows;
        in.rows = NULL;
        in.nrows = in.caprows = 0;
    }
    rc = 0;
done:
    inst_free(&in);
    return rc;
}

int celo_train_run(const celo_plan *plan, const celo_run *run, celo_rule_lookup lookup, void *lookup_ctx,
                   const celo_run_opts *opts, celo_run_result *res, char *err, size_t errlen)
{
    task_data td;
    memset(&td, 0, sizeof td);
    celo_run_result dummy;
    int rc = run_one(plan, run, &td, lookup, lookup_ctx, opts, res ? res : &dummy, NULL, err, errlen);
    task_data_free(&td);
    return rc;
}

/* ================================ summaries ================================ */

/* A run's value of metric (eval_loss, eval_acc or train_loss). */
static double metric_value(const celo_run_result *r, const char *metric)
{
    return !strcmp(metric, "eval_acc")     ? r->final_eval_acc
           : !strcmp(metric, "train_loss") ? r->final_train_loss
                                           : r->final_eval_loss;
}

/* A run's score under metric (lower is better); +inf when it has none. */
static double score(const outcome *o, const char *metric)
{
    if (!o->ran || o->res.diverged)
        return INFINITY;
    double v = metric_value(&o->res, metric);
    if (!strcmp(metric, "eval_acc"))
        v = -v;
    return isnan(v) ? INFINITY : v;
}

static const char *group_metric(const celo_group *g)
{
    return g->metric[0] ? g->metric : "eval_loss";
}

static void fmt_num(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.4g", v);
}

static void print_sweep(const celo_plan *plan, const celo_group *g, const outcome *outs)
{
    const char *metric = group_metric(g);
    /* columns: the hyper-parameters (and seed, optimizer) whose values differ between the runs */
    const celo_run *r0 = &plan->runs[g->first];
    const char *cols[CELO_MAX_HP + 2];
    int ncol = 0;
    for (int i = 0; i < r0->nhp; i++) {
        int differs = 0;
        for (int k = 1; k < g->count; k++) {
            const celo_run *r = &plan->runs[g->first + k];
            int found = 0;
            for (int j = 0; j < r->nhp; j++)
                if (!strcmp(r->hp_name[j], r0->hp_name[i])) {
                    found = 1;
                    if (r->hp[j] != r0->hp[i])
                        differs = 1;
                }
            if (!found)
                differs = 1;
        }
        if (differs)
            cols[ncol++] = r0->hp_name[i];
    }
    int seed_col = 0;
    for (int k = 1; k < g->count; k++)
        if (plan->runs[g->first + k].seed != r0->seed)
            seed_col = 1;
    int namew = 3;
    for (int k = 0; k < g->count; k++) {
        int l = (int)strlen(plan->runs[g->first + k].name);
        if (l > namew)
            namew = l;
    }
    printf("sweep %s: %d runs, best by %s (%s is better)\n", g->name, g->count, metric,
           strcmp(metric, "eval_acc") ? "lower" : "higher");
    printf("  %-*s", namew, "run");
    for (int c = 0; c < ncol; c++)
        printf("  %12s", cols[c]);
    if (seed_col)
        printf("  %8s", "seed");
    printf("  %10s  %10s  %10s\n", "train_loss", "eval_loss", "eval_acc");
    int best = -1;
    double bs = INFINITY;
    for (int k = 0; k < g->count; k++) {
        const celo_run *r = &plan->runs[g->first + k];
        const outcome *o = &outs[g->first + k];
        printf("  %-*s", namew, r->name);
        for (int c = 0; c < ncol; c++) {
            char v[32] = "-";
            for (int j = 0; j < r->nhp; j++)
                if (!strcmp(r->hp_name[j], cols[c]))
                    snprintf(v, sizeof v, "%.6g", r->hp[j]);
            printf("  %12s", v);
        }
        if (seed_col)
            printf("  %8llu", (unsigned long long)r->seed);
        if (o->res.diverged) {
            printf("  diverged at step %lld\n", (long long)o->diverged_at);
        } else {
            char a[32], b[32], c[32];
            fmt_num(a, sizeof a, o->res.final_train_loss);
            fmt_num(b, sizeof b, o->res.final_eval_loss);
            fmt_num(c, sizeof c, o->res.final_eval_acc);
            printf("  %10s  %10s  %10s\n", a, b, isnan(o->res.final_eval_acc) ? "-" : c);
        }
        double s = score(o, metric);
        if (s < bs)
            bs = s, best = g->first + k;
    }
    if (best < 0)
        printf("best: none (no run finished with a finite %s)\n", metric);
    else
        printf("best: %s (%s %.6g)\n", plan->runs[best].name, metric, metric_value(&outs[best].res, metric));
    fflush(stdout);
}

/* "lr=0.003, wd=0.01, schedule=cosine": lr, and every hyper-parameter that differs from the rule's default. */
static void hp_text(const celo_run *r, const celo_program *prog, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < r->nhp; i++) {
        int k = prog ? celo_program_hp_index(prog, r->hp_name[i]) : -1;
        int show = !strcmp(r->hp_name[i], "lr") || k < 0 || (float)r->hp[i] != (float)prog->hp[k].def;
        if (show && o < n)
            o += (size_t)snprintf(buf + o, n - o, "%s%s=%.6g", o ? ", " : "", r->hp_name[i], r->hp[i]);
    }
    static const char *const sn[] = {"constant", "cosine", "warmup_cosine", "linear"};
    if (r->schedule > CELO_SCHED_CONSTANT && r->schedule <= CELO_SCHED_LINEAR && o < n) {
        o += (size_t)snprintf(buf + o, n - o, "%sschedule=%s", o ? ", " : "", sn[r->schedule]);
        if (r->schedule == CELO_SCHED_WARMUP_COSINE && o < n)
            o += (size_t)snprintf(buf + o, n - o, ", warmup=%lld", (long long)r->warmup);
    }
    if (!buf[0])
        snprintf(buf, n, "defaults");
}

static void md_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '*' || *s == '_' || *s == '`')
            sb_printf(b, "\\%c", *s);
        else
            sb_printf(b, "%c", *s);
    }
}

static void xml_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

/* "nice" linear ticks covering [lo, hi] */
static int lin_ticks(double lo, double hi, double *t, int max)
{
    double span = hi - lo;
    if (!(span > 0))
        span = fabs(hi) > 0 ? fabs(hi) : 1;
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    int n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step && n < max; v += step)
        t[n++] = fabs(v) < 1e-12 * step ? 0 : v;
    return n;
}

/* log-scale ticks within [lo, hi] (both > 0): decades, else 1-2-5, else 1..9 per decade, whichever first gives
 * at least three; else nice linear values (a range within one decade) */
static int log_ticks(double lo, double hi, double *t, int max)
{
    static const double sets[3][9] = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nsets[3] = {1, 3, 9};
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    for (int s = 0; s < 3; s++) {
        int n = 0;
        for (int e = e0; e <= e1 && n < max; e++)
            for (int k = 0; k < nsets[s] && n < max; k++) {
                double v = sets[s][k] * pow(10, e);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9))
                    t[n++] = v;
            }
        if (n >= 3)
            return n;
    }
    return lin_ticks(lo, hi, t, max);
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* An SVG line plot of eval loss against step for the given runs. */
static void make_svg(sbuf *b, const char *title, const celo_plan *plan, const outcome *outs, const int *runs, int n)
{
    size_t longest = 0; /* the legend's width follows the longest name (about 7 px a character at 12 px) */
    for (int i = 0; i < n; i++) {
        size_t l = strlen(plan->runs[runs[i]].name) + (outs[runs[i]].res.diverged ? 11 : 0);
        longest = l > longest ? l : longest;
    }
    const double pw = 520, ph = 348, L = 72, R = 60 + 7.0 * (double)longest, T = 40, Bm = 52;
    const double W = L + pw + R, H = T + ph + Bm;
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    int logy = 1;
    for (int i = 0; i < n; i++) {
        const outcome *o = &outs[runs[i]];
        for (int k = 0; k < o->nrows; k++) {
            double y = o->rows[k].eval_loss;
            if ((double)o->rows[k].step > xmax)
                xmax = (double)o->rows[k].step;
            if (!isfinite(y))
                continue;
            if (y <= 0)
                logy = 0;
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
        }
    }
    if (!(ymin <= ymax))
        ymin = 0, ymax = 1, logy = 0;
    if (logy && ymax / ymin < 1.2)
        logy = 0;
    double y0, y1; /* the plotted range, in plot units (log10 when logy) */
    if (logy) {
        y0 = log10(ymin), y1 = log10(ymax);
        double pad = 0.04 * (y1 - y0);
        y0 -= pad, y1 += pad;
    } else {
        double pad = ymax > ymin ? 0.05 * (ymax - ymin) : (fabs(ymax) > 0 ? 0.05 * fabs(ymax) : 1);
        y0 = ymin - pad, y1 = ymax + pad;
    }
#define XP(s) (L + pw * (double)(s) / xmax)
#define YP(v) (T + ph * (1 - ((logy ? log10(v) : (v)) - y0) / (y1 - y0)))
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
              "font-family=\"sans-serif\" font-size=\"12\">\n",
              W, H, W, H);
    sb_printf(b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    sb_printf(b, "<text x=\"%g\" y=\"%g\" font-size=\"15\" text-anchor=\"middle\">", L + pw / 2, T - 16);
    xml_escape(b, title);
    sb_printf(b, "</text>\n");
    /* grid and ticks */
    double tk[64];
    int nt = lin_ticks(0, xmax, tk, 64);
    for (int i = 0; i < nt; i++) {
        double x = XP(tk[i]);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e5e5e5\"/>\n", x, T, x, T + ph);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"black\"/>\n", x, T + ph, x,
                  T + ph + 5);
        sb_printf(b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", x, T + ph + 18, tk[i]);
    }
    nt = logy ? log_ticks(pow(10, y0), pow(10, y1), tk, 64) : lin_ticks(y0, y1, tk, 64);
    for (int i = 0; i < nt; i++) {
        double y = YP(tk[i]);
        if (y < T - 0.5 || y > T + ph + 0.5)
            continue;
        sb_printf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, y, L + pw, y);
        sb_printf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"black\"/>\n", L - 5, y, L, y);
        sb_printf(b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%.3g</text>\n", L - 8,
                  y, tk[i]);
    }
    sb_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, pw, ph);
    sb_printf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", L + pw / 2, H - 14);
    sb_printf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 %g %g)\">eval loss%s</text>\n",
              18.0, T + ph / 2, 18.0, T + ph / 2, logy ? " (log scale)" : "");
    /* curves */
    for (int i = 0; i < n; i++) {
        const outcome *o = &outs[runs[i]];
        const char *col = palette[i % 10];
        sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        int pts = 0;
        for (int k = 0; k < o->nrows; k++) {
            double y = o->rows[k].eval_loss;
            if (!isfinite(y) || (logy && y <= 0))
                continue;
            sb_printf(b, "%s%.1f,%.1f", pts++ ? " " : "", XP(o->rows[k].step), YP(y));
        }
        sb_printf(b, "\"/>\n");
        if (pts == 1) /* one point: a dot */
            for (int k = 0; k < o->nrows; k++)
                if (isfinite(o->rows[k].eval_loss))
                    sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", XP(o->rows[k].step),
                              YP(o->rows[k].eval_loss), col);
        double ly = T + 10 + 20 * i;
        sb_printf(b, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                  L + pw + 14, ly, L + pw + 40, ly, col);
        sb_printf(b, "<text x=\"%g\" y=\"%g\" dominant-baseline=\"middle\">", L + pw + 46, ly);
        xml_escape(b, plan->runs[runs[i]].name);
        sb_printf(b, "%s</text>\n", o->res.diverged ? " (diverged)" : "");
    }
#undef XP
#undef YP
    sb_printf(b, "</svg>\n");
}

static int write_compare(const celo_plan *plan, const celo_group *g, const outcome *outs, celo_rule_lookup lookup,
                         void *lctx, const task_data *tds, char *err, size_t errlen)
{
    const char *metric = group_metric(g);
    /* the best run of each optimizer entry (a rule listed twice is two entries; plans built by hand, with every
     * entry 0, get one per rule), in list order */
    int *best = malloc(sizeof(int) * (size_t)(g->count > 0 ? g->count : 1));
    int *cnt = calloc((size_t)(g->count > 0 ? g->count : 1), sizeof(int));
    int nb = 0, rc = -1;
    sbuf md = {0}, svg = {0};
    if (!best || !cnt)
        goto oom;
    for (int k = g->first; k < g->first + g->count; k++) {
        int j = 0;
        while (j < nb && (plan->runs[best[j]].entry != plan->runs[k].entry ||
                          strcmp(plan->runs[best[j]].rule, plan->runs[k].rule)))
            j++;
        if (j == nb) {
            best[nb++] = k;
            cnt[j] = 1;
            continue;
        }
        cnt[j]++;
        if (score(&outs[k], metric) < score(&outs[best[j]], metric))
            best[j] = k;
    }
    sb_printf(&md, "# %s\n\n", g->name);
    sb_printf(&md, "| run | optimizer | hyper-parameters | train loss | eval loss | eval acc | wall time |\n");
    sb_printf(&md, "|---|---|---|---:|---:|---:|---:|\n");
    for (int j = 0; j < nb; j++) {
        const celo_run *r = &plan->runs[best[j]];
        const outcome *o = &outs[best[j]];
        char hp[1024], a[32], b[32], c[32], w[32];
        hp_text(r, lookup ? lookup(r->rule, lctx) : NULL, hp, sizeof hp);
        sb_printf(&md, "| ");
        md_escape(&md, r->name);
        if (cnt[j] > 1)
            sb_printf(&md, " (best of %d)", cnt[j]);
        sb_printf(&md, " | ");
        md_escape(&md, r->rule);
        sb_printf(&md, " | ");
        md_escape(&md, hp);
        fmt_num(a, sizeof a, o->res.final_train_loss);
        fmt_num(b, sizeof b, o->res.final_eval_loss);
        if (isnan(o->res.final_eval_acc))
            snprintf(c, sizeof c, "-");
        else
            snprintf(c, sizeof c, "%.2f %%", 100 * o->res.final_eval_acc);
        snprintf(w, sizeof w, o->res.wall_s < 10 ? "%.2f s" : "%.1f s", o->res.wall_s);
        if (o->res.diverged)
            sb_printf(&md, " | diverged at step %lld | - | - | %s |\n", (long long)o->diverged_at, w);
        else
            sb_printf(&md, " | %s | %s | %s | %s |\n", a, b, c, w);
    }
    sb_printf(&md, "\nBest run per optimizer by %s. ", metric);
    /* tasks of the group */
    for (int k = g->first; k < g->first + g->count; k++) {
        int t = plan->runs[k].task, first = 1;
        for (int q = g->first; q < k; q++)
            if (plan->runs[q].task == t)
                first = 0;
        if (!first)
            continue;
        const celo_task *tk = &plan->tasks[t];
        sb_printf(&md, "Task ");
        md_escape(&md, tk->name);
        sb_printf(&md, ", %lld steps", (long long)plan->runs[k].steps);
        if (tk->data == CELO_DATA_KJV && tds[t].loaded)
            sb_printf(&md, "; unigram entropy of the training text %.4f nats (a model that ignores context)",
                      tds[t].unigram);
        sb_printf(&md, ". ");
    }
    sb_printf(&md, "\n\n![eval loss against step](curves.svg)\n");
    char title[256];
    snprintf(title, sizeof title, "%s: eval loss", g->name);
    make_svg(&svg, title, plan, outs, best, nb);
    if (md.oom || svg.oom)
        goto oom;
    char path[CELO_PATH_MAX + 32];
    const char *dir = g->out[0] ? g->out : ".";
    snprintf(path, sizeof path, "%s/results.md", dir);
    if (write_atomic(path, md.s, md.len, err, errlen))
        goto done;
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    if (write_atomic(path, svg.s, svg.len, err, errlen))
        goto done;
    printf("compare %s (%s/results.md, %s/curves.svg):\n%.*s", g->name, dir, dir, (int)md.len, md.s);
    fflush(stdout);
    rc = 0;
    goto done;
oom:
    seterr(err, errlen, "compare %s: out of memory", g->name);
done:
    free(best);
    free(cnt);
    free(md.s);
    free(svg.s);
    return rc;
}

/* ================================ the plan ================================ */

/* A train run with a CSV log also gets its loss curve beside it: runs/x.csv -> runs/x.svg. */
static int write_run_svg(const celo_plan *plan, int i, const outcome *outs, char *err, size_t errlen)
{
    const celo_run *r = &plan->runs[i];
    if (!r->log[0] || r->group >= 0 || outs[i].nrows == 0)
        return 0;
    char path[CELO_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s", r->log);
    char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        *dot = 0;
    strcat(path, ".svg");
    sbuf svg = {0};
    char title[CELO_NAME_MAX + 16];
    snprintf(title, sizeof title, "%s: eval loss", r->name);
    make_svg(&svg, title, plan, outs, &i, 1);
    int rc = svg.oom ? (seterr(err, errlen, "out of memory"), -1) : write_atomic(path, svg.s, svg.len, err, errlen);
    free(svg.s);
    return rc;
}

static int in_group(const celo_group *g, int run)
{
    return run >= g->first && run < g->first + g->count;
}

static int selected(const celo_plan *plan, int i, const char *only)
{
    if (!only)
        return 1;
    if (!strcmp(plan->runs[i].name, only))
        return 1;
    for (int k = 0; k < plan->ngroups; k++)
        if (in_group(&plan->groups[k], i) && !strcmp(plan->groups[k].name, only))
            return 1;
    return 0;
}

int celo_plan_execute(const celo_plan *plan, celo_rule_lookup lookup, void *lookup_ctx, const celo_run_opts *opts)
{
    static const celo_run_opts defaults = {0, 0, NULL};
    if (!opts)
        opts = &defaults;
    char err[1024] = "";
    int nsel = 0;
    for (int i = 0; i < plan->nruns; i++)
        nsel += selected(plan, i, opts->only);
    if (opts->only && !nsel) {
        fprintf(stderr, "error: no train, sweep or compare named '%s' in the plan\n", opts->only);
        return 1;
    }
    task_data *tds = calloc((size_t)(plan->ntasks > 0 ? plan->ntasks : 1), sizeof *tds);
    outcome *outs = calloc((size_t)(plan->nruns > 0 ? plan->nruns : 1), sizeof *outs);
    int *last_use = calloc((size_t)(plan->ntasks > 0 ? plan->ntasks : 1), sizeof *last_use);
    int rc = 1;
    if (!tds || !outs || !last_use) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    for (int i = 0; i < plan->nruns; i++)
        if (selected(plan, i, opts->only) && plan->runs[i].task >= 0 && plan->runs[i].task < plan->ntasks)
            last_use[plan->runs[i].task] = i + 1;
    for (int i = 0; i < plan->nruns; i++) {
        if (!selected(plan, i, opts->only))
            continue;
        const celo_run *r = &plan->runs[i];
        celo_run_result res;
        task_data *td = r->task >= 0 && r->task < plan->ntasks ? &tds[r->task] : NULL;
        task_data scratch;
        memset(&scratch, 0, sizeof scratch);
        if (run_one(plan, r, td ? td : &scratch, lookup, lookup_ctx, opts, &res, &outs[i], err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            goto done;
        }
        if (write_run_svg(plan, i, outs, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            goto done;
        }
        /* free a task's data after its last run, unless a compare summary still wants its entropy (kept: small) */
        if (td && last_use[r->task] == i + 1 && plan->tasks[r->task].data != CELO_DATA_KJV)
            task_data_free(td);
    }
    for (int k = 0; k < plan->ngroups; k++) {
        const celo_group *g = &plan->groups[k];
        int all = g->count > 0;
        for (int i = g->first; i < g->first + g->count; i++)
            all &= outs[i].ran;
        if (!all)
            continue;
        if (!strcmp(g->kind, "compare")) {
            if (write_compare(plan, g, outs, lookup, lookup_ctx, tds, err, sizeof err)) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        } else {
            print_sweep(plan, g, outs);
        }
    }
    rc = 0;
done:
    if (outs)
        for (int i = 0; i < plan->nruns; i++)
            free(outs[i].rows);
    if (tds)
        for (int t = 0; t < plan->ntasks; t++)
            task_data_free(&tds[t]);
    free(tds);
    free(outs);
    free(last_use);
    return rc;
}
