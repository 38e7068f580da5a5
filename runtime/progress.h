/* progress.h — progress output of a training run, observing its instance (inst.h) and its rows (runlog.h). */
#ifndef CELO_PROGRESS_H
#define CELO_PROGRESS_H

#include "inst.h"
#include "runlog.h"

typedef struct {
    int on, tty;
    double t0, last;
    int64_t s0;   /* step when this session started */
    int64_t mark; /* plain output: next 10 % mark */
} celo_progress;

double celo_now_s(void);                           /* monotonic seconds */
void celo_fmt_time(double s, char *buf, size_t n); /* "m:ss" or "h:mm:ss"; "?" when unknown */

void celo_progress_start(celo_progress *pg, const celo_inst *in, int on);
/* After the instance's latest step; evaluated: a row was just added to l. */
void celo_progress_update(celo_progress *pg, const celo_inst *in, const celo_rowlog *l, int evaluated);
/* The bar's last state and a newline (terminal only). */
void celo_progress_end(celo_progress *pg, const celo_inst *in, const celo_rowlog *l);

#endif
