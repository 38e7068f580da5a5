/*
 * plan.h — what `celo run` and a binary made by `celo build` execute: training runs described as data.
 *
 * The compiler turns the task / train / sweep / compare blocks of a .celo file into a celo_plan; `celo run`
 * executes it with JIT-compiled rules, and `celo build` serializes it (celo_plan_write) into a standalone binary
 * beside the object code of the rules, which deserializes it (celo_plan_read) and executes the same plan, so both
 * print the same numbers.
 *
 *     celo_plan plan;                                   // filled by the compiler, or celo_plan_read()
 *     celo_run_opts o = {.resume = 0};
 *     return celo_plan_execute(&plan, lookup, lookup_ctx, &o);   // every run, then sweep/compare summaries
 *
 * A run whose loss, a gradient or a parameter stops being finite is stopped with a one-line message naming the
 * step and the tensor; celo_train_run then returns 0 with res->diverged = 1 (a diverged candidate of a sweep is
 * a result, not an error), and the CSV gets a last row with NaN eval values.
 */
#ifndef CELO_PLAN_H
#define CELO_PLAN_H

#include "backend.h"
#include "celort.h"
#include "nn.h"

#include <stddef.h>
#include <stdint.h>

#define CELO_NAME_MAX 64
#define CELO_PATH_MAX 512
#define CELO_MAX_HP   64

typedef enum {
    CELO_DATA_FASHION_MNIST = 1, /* size (28 or 8), normalize */
    CELO_DATA_KJV,               /* character text, seq */
    CELO_DATA_TEACHER,           /* random teacher MLP: in, out (classes), n */
    CELO_DATA_QUADRATIC,         /* dim, cond */
    CELO_DATA_DIGITS,            /* normalize (8x8 images: size 8) */
} celo_data_kind;

typedef struct {
    char name[CELO_NAME_MAX];
    celo_data_kind data;
    int size;      /* fashion_mnist: image side (28, or 8 for the downsampled task); digits: 8 */
    int seq;       /* kjv: sequence length T */
    int normalize; /* fashion_mnist, digits: standardize pixels */
    /* fashion_mnist, digits: label variations (data.h, celo_label_map), on both splits */
    int nclasses;            /* 0: every class; else keep classes[0..nclasses), relabelled 0..nclasses-1 */
    int classes[16];         /* CELO_MAX_CLASSES */
    uint64_t permute_labels; /* 0: none; else the seed of a permutation of the (kept) labels */
    int teacher_in, teacher_out, teacher_hidden;
    int64_t teacher_n;
    int quad_dim;
    double quad_cond;
    int model;        /* celo_model_kind (nn.h) */
    int in, out, act; /* mlp / autoencoder: widths and activation */
    int nhidden, hidden[8];
    int conv1, conv2, kernel, pool;    /* convnet */
    int ctx, dim, heads, layers;       /* gpt */
    int mixer, feature, chunk;         /* gpt: celo_mixer; the linear and mamba mixers' celo_feature_map and chunk */
    int mamba_state, mamba_conv;       /* gpt, mixer mamba: celo_gpt_config's state, conv, */
    int mamba_expand, mamba_normalize; /* expand and normalize (nn.h) */
    int embed, lstm_hidden;            /* lstm */
    int loss;                          /* celo_loss_kind */
    int batch;
    int nblocks;             /* a model described in the .celo file (`model NAME(...) {...}`; model is 0): its blocks,
                                in order (celo_model_create_desc); 0 for the built-in kinds above */
    celo_block_desc *blocks; /* malloc'd, freed by celo_plan_free; out, vocab or ctx = CELO_WIDTH_VOCAB stands for
                                the text's vocabulary, known only when the data loads */
} celo_task;

#define CELO_WIDTH_VOCAB (-1)

typedef struct {
    char name[CELO_NAME_MAX];
    int task;                 /* index into celo_plan.tasks */
    char rule[CELO_NAME_MAX]; /* the compiled rule, resolved by the caller's rule lookup: an optimizer's name, or
                                 RULE@SCHEDULE for one compiled with a learning-rate schedule (its lr scaled by
                                 the schedule inside the rule's host program: the runtime never changes lr) */
    int nhp;                  /* hyper-parameters of the rule, every one set (defaults filled in) */
    char hp_name[CELO_MAX_HP][CELO_NAME_MAX];
    double hp[CELO_MAX_HP];
    int64_t steps;            /* also what the rule reads as num_steps */
    int64_t eval_every;       /* 0: only at the end */
    int64_t checkpoint_every; /* 0: none */
    uint64_t seed;
    char log[CELO_PATH_MAX];        /* CSV: step,train_loss,eval_loss,eval_acc,wall_s ("" = none) */
    char checkpoint[CELO_PATH_MAX]; /* safetensors path ("" = none) */
    char theta[CELO_PATH_MAX];      /* a learned rule's θ file, read when the run is built ("" = not learned);
                                       relative to the working directory, like log and checkpoint */
    int reparam;                    /* task augmentation by reparameterization (docs/meta.md): 0 none, 1 global,
                                       2 tensor, 3 parameter; the model's function of w * s trains w from w0 / s */
    double reparam_lo, reparam_hi;  /* s = exp(U(ln lo, ln hi)), drawn from the run's seed */
    /* a stage of a distill block (runtime/distill.h, docs/distill.md); all zero for other runs */
    int stage;                        /* 1: a distillation stage */
    char teacher_ckpt[CELO_PATH_MAX]; /* the teacher's weights ("": no teacher), its model: teacher_task's */
    int teacher_task;
    char init_ckpt[CELO_PATH_MAX];            /* the weights the student starts from ("": its own initialization) */
    int init_task;                            /* ... their model: this task's */
    int init_map;                             /* celo_init_map (distill.h): how they map onto the student */
    char train_only[256];                     /* comma-separated parts of tensor names: only they train ("": all) */
    int dloss;                                /* celo_distill_loss (distill.h) */
    int dmetric;                              /* DLOSS_ATTENTION: 0 cosine, 1 mse */
    double ce_weight, kl_weight, temperature; /* DLOSS_KL, DLOSS_MIX */
    int group;                                /* runs of one sweep/compare share a group number (-1: none) */
    int entry; /* compare: which of its optimizers the run tries (0-based); -1 otherwise */
} celo_run;

typedef struct {
    char name[CELO_NAME_MAX];
    char kind[16];           /* "sweep", "compare", "meta" or "eval" */
    int first, count;        /* its runs: runs[first .. first + count) */
    char metric[32];         /* "eval_loss" or "train_loss" (lower is better), "eval_acc" (higher) */
    char out[CELO_PATH_MAX]; /* compare, eval: folder for the tables and plots; meta: the θ file written */
    /* meta (runtime/meta.h): runs[first] is the outer run (the outer optimizer of θ, its steps, log, checkpoint,
     * seed; its task is the first family's, unused); runs[first + 1 ..] one per task family (the learned rule, its
     * hyper-parameters, its initial θ file or "" for the rule's own initialization with theta_seed). */
    int particles;        /* antithetic pairs per family */
    char estimator[8];    /* "pes" or "es" */
    int64_t truncation;   /* PES: steps per truncation */
    double std;           /* perturbation standard deviation */
    int64_t hmin, hmax;   /* inner horizons, log-uniform in [hmin, hmax] */
    int64_t offset;       /* PES: each particle's first truncation counter, uniform in [0, offset] */
    uint64_t theta_seed;  /* the rule's initialization when no θ file is given */
    char train_only[256]; /* comma-separated substrings of θ names: only they train ("" = all of θ) */
    /* eval (runtime/report.c): runs = tasks × optimizer entries (run.entry) × tuned values × seeds */
    int seeds;     /* runs per configuration, seeds 0 .. seeds - 1 */
    int reference; /* the entry every task's numbers are normalized by */
} celo_group;

typedef struct {
    int ntasks, nruns, ngroups;
    celo_task *tasks;
    celo_run *runs;
    celo_group *groups;
} celo_plan;

/* train_only lists (a run's, a meta group's): 1 when name contains one of the comma-separated parts of list, or
 * when list is empty. */
int celo_train_only_match(const char *name, const char *list);

/* Text form of a plan (one `key value` per line), embedded in binaries made by `celo build`. */
char *celo_plan_write(const celo_plan *plan); /* malloc'd */
int celo_plan_read(celo_plan *plan, const char *text, char *err, size_t errlen);
void celo_plan_free(celo_plan *plan);

/* --set KEY=V: a run setting (steps, seed, eval_every), the tasks' batch, or an optimizer hyper-parameter of every
 * run that has it. -1 with a message when nothing has that name. (runtime/plan_set.c) */
int celo_plan_override(celo_plan *plan, const char *key, double v, char *err, size_t errlen);

/* ---- executing runs (runtime/train.c) ---- */
typedef const celo_program *(*celo_rule_lookup)(const char *name, void *ctx);

typedef struct {
    int resume;                  /* continue from the run's checkpoint if it exists */
    int quiet;                   /* no progress output */
    const char *only;            /* run only this train/sweep/compare name (NULL: all) */
    const celo_backend *backend; /* runs the optimizer steps (backend.h); NULL: celo_backend_cpu(), llvm */
    int64_t stop_at;             /* > 0: each run stops after this step (its checkpoint written), as if killed there,
                                    keeping its length (num_steps, schedules): --resume continues it exactly */
} celo_run_opts;

typedef struct {
    double final_train_loss, final_eval_loss, final_eval_acc, wall_s;
    int64_t steps_done;
    int diverged; /* NaN/Inf stopped the run */
} celo_run_result;

int celo_train_run(const celo_plan *plan, const celo_run *run, celo_rule_lookup lookup, void *lookup_ctx,
                   const celo_run_opts *opts, celo_run_result *res, char *err, size_t errlen);
/* Runs every run of the plan (honouring opts->only), then each group's summary: the best of a sweep, the table
 * and SVG plot of a compare. Returns 0, or 1 after printing a one-line error. */
int celo_plan_execute(const celo_plan *plan, celo_rule_lookup lookup, void *lookup_ctx, const celo_run_opts *opts);

/* The main() of a binary made by `celo build` (runtime/standalone.c): flags --only NAME, --set k=v,
 * --backend llvm|interp, --resume, --quiet; runs the embedded plan with the embedded rules. */
int celo_standalone_main(int argc, char **argv, const char *plan_text, const celo_program *const *rules, int nrules);

/* OpenBLAS 0.3.21 falls back to slow SSE3 kernels on CPUs it does not know. When OPENBLAS_CORETYPE is unset, set
 * it from the CPU's features and re-execute the program once (OpenBLAS reads it when it loads, before main). */
void celo_pick_blas_kernels(char **argv);

#endif
