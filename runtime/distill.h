/*
 * distill.h — what makes a run a distillation stage (docs/distill.md): a teacher model running next to the
 * student, the stage's loss in place of the task's, and the student's first weights taken from the teacher or
 * the previous stage.
 *
 * A `distill` block of a .celo file becomes a plan group of kind "distill" whose runs are its stages in order;
 * each stage's run names its teacher's weights (teacher_ckpt, the model of teacher_task) and its initial weights
 * (init_ckpt, the model of init_task, mapped by init_map). train.c runs the stages one after another:
 *
 *     celo_distill *d = celo_distill_new(plan, run, student_model, err, errlen);   // NULL: no teacher needed
 *     celo_inst_set_distill(inst, d);                                             // its loss from now on
 *     if (!resumed) celo_distill_init(student_model, plan, run, err, errlen);    // the first weights
 *     ... celo_inst_steps ...
 *     celo_distill_free(d);
 */
#ifndef CELO_DISTILL_H
#define CELO_DISTILL_H

#include "ckpt.h"
#include "plan.h"

#include <stddef.h>

/* How the initial weights map onto the student (run->init_map). */
typedef enum {
    CELO_INIT_NONE = 0, /* the student's own initialization */
    CELO_INIT_COPY,     /* every tensor of the same name and shape (celo_model_copy_from) */
    CELO_INIT_BRIDGE,   /* linear attention -> Mamba, exactly (celo_model_mamba_from, CELO_MAMBA_FROM_BRIDGE) */
    CELO_INIT_QKV,      /* attention -> Mamba, Mamba-in-the-Llama's map (CELO_MAMBA_FROM_QKV) */
} celo_init_map;

/* The stage's loss (run->dloss). */
typedef enum {
    CELO_DLOSS_TASK = 0,  /* the task's own loss on the data (next-token cross-entropy): no teacher */
    CELO_DLOSS_KL,        /* KL(teacher || student) at run->temperature, times temperature^2 (celo_loss_kl) */
    CELO_DLOSS_MIX,       /* ce_weight * cross-entropy + kl_weight * the KL above */
    CELO_DLOSS_ATTENTION, /* per layer, the student's mixer output h.l.attn given the teacher's input h.l.ln_1
                             against the teacher's h.l.attn: mean over layers of cosine (1 - cos per token) or MSE */
} celo_distill_loss;

typedef struct celo_distill celo_distill;

/* The teacher of a stage, loaded from run->teacher_ckpt, checked against the student (same vocabulary; for the
 * attention loss the same layers and width). NULL with err[0] == 0 when the stage's loss needs no teacher; NULL
 * with err on an error (a missing or mismatched checkpoint). */
celo_distill *celo_distill_new(const celo_plan *plan, const celo_run *run, const celo_model *student, char *err,
                               size_t errlen);
void celo_distill_free(celo_distill *d);
/* The stage's loss on batch b (tokens, labels) and the student's gradients. 0, or -1 with err. */
int celo_distill_loss_grad(celo_distill *d, celo_model *student, const celo_batch *b, float *loss, char *err,
                           size_t errlen);

/* The student's first weights: run->init_ckpt read into the model of run->init_task, mapped by run->init_map.
 * Nothing when the run has none. 0, or -1 with err (the student unchanged or partly set: start over). */
int celo_distill_init(celo_model *student, const celo_plan *plan, const celo_run *run, char *err, size_t errlen);

/* A model of task t with the weights of a checkpoint file (the data is loaded for its widths). NULL with err. */
celo_model *celo_model_from_checkpoint(const celo_plan *plan, int task, const char *path, char *err, size_t errlen);
/* The same from a checkpoint already read (c; path: its file, for messages). */
celo_model *celo_model_from_ckpt(const celo_plan *plan, int task, const celo_ckpt *c, const char *path, char *err,
                                 size_t errlen);

#endif
