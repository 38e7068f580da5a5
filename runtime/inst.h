/*
 * inst.h — a training run as an object: many of them live in one process, step in any interleaving, and give
 * the numbers of the same run alone.
 *
 * A run instance holds everything one run changes: the model's parameters (or a quadratic's point), the
 * optimizer state of every tensor, the data cursor (a pure function of the seed and the step), the
 * hyper-parameters, and the running training loss. It writes no file and prints
 * nothing: progress, CSV logs, checkpoint files and reports observe instances from their own modules
 * (progress.h, runlog.h, report.h). The data it trains on (celo_task_data) is loaded once and shared read-only by
 * every instance of the task.
 *
 *     celo_task_data *td = celo_task_data_new();
 *     celo_task_data_load(td, &plan->tasks[run->task], quiet, err, errlen);      // once per task
 *     celo_inst *in = celo_inst_new(plan, run, prog, NULL, td, err, errlen);   // NULL: the llvm back end
 *     celo_ctx ctx = celo_ctx_for(in);                    // how many threads one step of it uses well
 *     celo_step_out o;
 *     while (celo_inst_step_count(in) < run->steps) {
 *         celo_inst_steps(in, &ctx, celo_inst_step_count(in) + 1, &o, NULL, NULL, err, errlen);  // o.loss
 *         if (o.bad) break;                               // a NaN/Inf: o names it
 *     }
 *     celo_inst_eval(in, &ctx, &loss, &acc, err, errlen);
 *     celo_inst_free(in);
 *
 * Determinism: an instance's numbers depend on its run (seed, task, rule, hyper-parameters) and on nothing else —
 * not on the thread count of its context (docs/runtime.md, "Same numbers on any number of threads"), not on
 * other instances stepping before, after or beside it. A clone continues exactly as the original would; a reset
 * with seed s equals a new instance of the run with seed s.
 */
#ifndef CELO_INST_H
#define CELO_INST_H

#include "backend.h"
#include "ckpt.h"
#include "plan.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the execution context: how the work of one call may use threads ----
 * threads = 1: the call runs on its calling thread alone (many instances side by side, one per thread);
 * threads = n: the call's parallel parts use up to n threads. Numbers do not depend on it. */
typedef struct {
    int threads;
} celo_ctx;

/* ---- the data of a task, loaded once, read by many instances ---- */
typedef struct celo_task_data celo_task_data;
celo_task_data *celo_task_data_new(void);
/* Loads the task's data if not loaded yet (quiet: no note on stderr). 0, or -1 with a one-line err. Call it
 * before instances that share td run on other threads: after it, td is only read. */
int celo_task_data_load(celo_task_data *td, const celo_task *tk, int quiet, char *err, size_t errlen);
int celo_task_data_loaded(const celo_task_data *td);
double celo_task_data_unigram(const celo_task_data *td); /* text tasks: entropy of the training characters */
void celo_task_data_unload(celo_task_data *td);
void celo_task_data_free(celo_task_data *td);

/* The model of a task (its data td loaded: the widths it implies), initialized with seed. NULL with err. */
celo_model *celo_task_model_new(const celo_task *tk, const celo_task_data *td, uint64_t seed, char *err, size_t errlen);

/* The gpt configuration of a task whose model is gpt, for a vocabulary of `vocab` tokens (the compiler checks
 * distillation stages' shapes on such models before any data is read). */
void celo_task_gpt_config(const celo_task *tk, int vocab, celo_gpt_config *g);

/* ---- instances ---- */
typedef struct celo_inst celo_inst;

/* The model an instance trains (NULL for a quadratic): its parameters may be set before the first step. */
celo_model *celo_inst_model(celo_inst *in);
/* Distillation (distill.h): d's loss replaces the task's in every step from now on (d is the caller's; it must
 * outlive the instance). The run's train_only, if any, already froze the tensors it does not name. */
struct celo_distill;
void celo_inst_set_distill(celo_inst *in, struct celo_distill *d);

/* A new instance of run (its task's data td loaded) with rule prog, at step 0, its optimizer steps run by back
 * end be (backend.h; NULL: celo_backend_cpu(), the llvm one; be must outlive the instance, and its clones keep
 * it). NULL with err on a bad run or a back end that cannot run the rule. */
celo_inst *celo_inst_new(const celo_plan *plan, const celo_run *run, const celo_program *prog, const celo_backend *be,
                         celo_task_data *td, char *err, size_t errlen);
/* The same with the learned rule's θ given (prog->theta_len floats, copied) instead of read from run->theta:
 * meta-training's particles (runtime/meta.c). */
celo_inst *celo_inst_new_theta(const celo_plan *plan, const celo_run *run, const celo_program *prog,
                               const celo_backend *be, celo_task_data *td, const float *theta, char *err,
                               size_t errlen);
/* The instance's own θ (NULL for a rule without one): writes change the next step's θ. A reset or a clone keeps
 * its values (in a new buffer: call again after celo_inst_reset). */
float *celo_inst_theta(celo_inst *in);
void celo_inst_free(celo_inst *in);
/* A copy that continues exactly as the original would (parameters, optimizer state, cursor, loss statistics). */
celo_inst *celo_inst_clone(const celo_inst *in, char *err, size_t errlen);
/* Back to step 0 with another seed: the same as celo_inst_new for the run with that seed. 0, or -1 with err. */
int celo_inst_reset(celo_inst *in, uint64_t seed, char *err, size_t errlen);

/* The context one step of this instance uses best on a machine whose default is `avail` threads: one thread for
 * small steps (a step of the 8x8 MLP is shorter than waking a second thread), avail for large ones. */
celo_ctx celo_ctx_for(const celo_inst *in, int avail);

/* What a step found: its loss, and the first value that was not finite (bad = NULL when none), named as
 * pre + bad + post ("gradient of fc1.w", "fc1.w after the update", "the loss"). */
typedef struct {
    double loss;
    const char *bad, *pre, *post;
} celo_step_out;

/* Called after each step but the last of a celo_inst_steps call (progress output). */
typedef void (*celo_step_cb)(const celo_inst *in, void *cb_ctx);

/* Steps step+1 .. t_end. Stops early after a step that found a non-finite value (o->bad; the step counts as
 * taken). 0, or -1 with err on an error (bad input, out of memory). */
int celo_inst_steps(celo_inst *in, const celo_ctx *ctx, int64_t t_end, celo_step_out *o, celo_step_cb cb, void *cb_ctx,
                    char *err, size_t errlen);
/* The loss (and accuracy, NaN when the task has none) on the task's evaluation data. */
int celo_inst_eval(celo_inst *in, const celo_ctx *ctx, double *loss, double *acc, char *err, size_t errlen);

/* The running training loss: the sum and count of step losses since the last celo_inst_take_mean (which
 * returns their mean and starts again), and an exponential moving average (decay 0.98) over all steps. */
typedef struct {
    int64_t step; /* optimizer steps taken */
    double loss_sum, ema;
    int64_t loss_n, ema_n;
} celo_inst_stats;
celo_inst_stats celo_inst_get_stats(const celo_inst *in);
double celo_inst_take_mean(celo_inst *in);
int64_t celo_inst_step_count(const celo_inst *in);
const celo_run *celo_inst_run(const celo_inst *in);
const celo_task *celo_inst_task(const celo_inst *in);
/* Every parameter, packed tensor after tensor (nparams floats). */
const float *celo_inst_params(const celo_inst *in, int64_t *nparams);

/* Data parallelism over the ranks of mpirun (ranks.h): every batch is cut into nranks shards of consecutive rows,
 * this instance computes the loss and gradient of shard `rank` only, and the shards' gradients and losses are
 * summed over the ranks, each weighted by its share of the rows, before the optimizer step. Every rank then takes
 * the same step with the whole batch's mean gradient (the numbers of one process up to the order of the sums), so
 * the ranks' parameters stay identical. Every rank must make the same calls of celo_inst_steps. A quadratic task
 * has no batch: its instance is left whole (every rank computes the same step). -1 with err when the batch has
 * fewer rows than there are ranks. A reset or a clone keeps the sharding. */
int celo_inst_shard(celo_inst *in, int rank, int nranks, char *err, size_t errlen);

/* The instance's state into a checkpoint (parameters, optimizer state per tensor, step, loss statistics, and
 * the run's name, rule, task and seed as metadata), and back. Files are runlog.h's job. celo_inst_load checks
 * that the checkpoint belongs to this run (path: for messages); -1 with a one-line err otherwise. */
int celo_inst_save(const celo_inst *in, celo_ckpt *c, char *err, size_t errlen);
int celo_inst_load(celo_inst *in, const celo_ckpt *c, const char *path, char *err, size_t errlen);

#endif
