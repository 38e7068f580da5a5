/* report.h — summaries of finished runs: a sweep's table (stdout), a compare's results.md and curves.svg, and a
 * train run's curve beside its CSV (runs/x.csv -> runs/x.svg). */
#ifndef CELO_REPORT_H
#define CELO_REPORT_H

#include "inst.h"
#include "runlog.h"
#include "sbuf.h"

/* How a run of the plan ended. */
typedef struct {
    int ran;
    celo_run_result res;
    int64_t diverged_at;
    celo_rowlog log;
} celo_outcome;

void celo_report_sweep(const celo_plan *plan, const celo_group *g, const celo_outcome *outs);
/* tds: the plan's task data by task index (for the text tasks' unigram entropy). */
int celo_report_compare(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, celo_rule_lookup lookup,
                        void *lctx, celo_task_data *const *tds, char *err, size_t errlen);
int celo_report_run_svg(const celo_plan *plan, int i, const celo_outcome *outs, char *err, size_t errlen);
/* An eval group's results.md, results.csv and curves_TASK.svg in g->out (runtime/evalreport.c). */
int celo_report_eval(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, char *err, size_t errlen);
/* g's results.md and curves.svg in its out folder (the working directory when it has none), then the table on
 * stdout under "KIND NAME (DIR/results.md, DIR/curves.svg):". 0, or -1 with err. */
int celo_report_write_md_svg(const celo_group *g, const sbuf *md, const sbuf *svg, char *err, size_t errlen);
/* A distill group's results.md and curves.svg in g->out (runtime/distillreport.c). */
int celo_report_distill(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, char *err, size_t errlen);
/* An SVG line plot of the rows' eval_loss of outs[runs[i]] against step, with legend names (NULL: the runs' names)
 * and the y axis labelled ylabel. */
void celo_report_svg(sbuf *b, const char *title, const celo_plan *plan, const celo_outcome *outs, const int *runs,
                     int n, const char *const *names, const char *ylabel);

#endif
