/* inst_internal.h — inside a run instance (inst.h): the struct that inst.c (building, cloning, checkpoints) and
 * inst_step.c (batches, steps, evaluation) share. */
#ifndef CELO_INST_INTERNAL_H
#define CELO_INST_INTERNAL_H

#include "backend.h"
#include "inst.h"
#include "nn.h"

#define LM_EVAL_BATCHES 16
#define EVAL_CHUNK      1000
#define EMA_DECAY       0.98

typedef struct celo_inst inst;

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
    int big_batch;          /* split_batches held: a step has work for more than one thread (celo_ctx_for) */
    celo_param_tensor qt;
    float *qx, *qg;
    float *params, *grads;
    float *rw, *rs; /* reparameterization (run->reparam): the optimizer's view w and the scale s; params = w * s */
    int64_t nparams;
    int ntensors;
    celo_bstate **st;
    float *hp;
    float *theta; /* a learned rule's θ (prog->theta_len floats) from run->theta, read by inst_init: every state's */
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
    /* data parallelism over mpirun's ranks (celo_inst_shard): this rank's shard of every batch; shards <= 1: off */
    int shard, shards;
    /* distillation stages (runtime/distill.h) */
    uint8_t *frozen;              /* per tensor: 1 = not trained (run->train_only), NULL: all train */
    struct celo_distill *distill; /* the stage's loss replaces the task's (celo_inst_set_distill), or NULL */
};

static inline const celo_param_tensor *inst_tensor(const inst *in, int i)
{
    return in->model ? celo_model_tensor(in->model, i) : &in->qt;
}

#endif
