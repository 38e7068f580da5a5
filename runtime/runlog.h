/*
 * runlog.h — the files of a training run: its CSV log (a row per evaluation) and its checkpoint file (the
 * instance's state, the rows so far and the wall time), each written atomically; and reading the checkpoint back
 * for --resume. Observes an instance (inst.h); the instance itself writes nothing.
 */
#ifndef CELO_RUNLOG_H
#define CELO_RUNLOG_H

#include "inst.h"

typedef struct {
    int64_t step;
    double train_loss, eval_loss, eval_acc, wall_s;
} celo_row;

typedef struct {
    celo_row *rows;
    int n, cap;
} celo_rowlog;

int celo_rowlog_add(celo_rowlog *l, celo_row r); /* 0, or -1 when out of memory */
void celo_rowlog_free(celo_rowlog *l);

/* step,train_loss,eval_loss,eval_acc,wall_s; nothing when path is "". */
int celo_runlog_write_csv(const char *path, const celo_rowlog *l, char *err, size_t errlen);
/* The instance, the rows and the wall time into the run's checkpoint file. */
int celo_runlog_save(const celo_inst *in, const celo_rowlog *l, double wall_s, char *err, size_t errlen);
/* The run's checkpoint file into the instance, the rows and the wall time. 0, or -1 with one line naming it. */
int celo_runlog_load(celo_inst *in, celo_rowlog *l, double *wall_s, char *err, size_t errlen);

#endif
