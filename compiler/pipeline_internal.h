/* pipeline_internal.h — what the builders of pipeline.c (tasks, train, sweep, compare, eval, meta) and
 * pipeline_distill.c (stage, distill) share: the build context, located errors, and the checks of a block's values
 * and keys. Each function reports its own error (PERR) and returns -1 (or NULL) after it. */
#ifndef CELO_PIPELINE_INTERNAL_H
#define CELO_PIPELINE_INTERNAL_H

#include "ast.h"
#include "diag.h"
#include "plan.h"
#include "rules.h"

#include <stddef.h>

/* a `stage` block: its run, filled in by the distill blocks that list it */
typedef struct {
    const def *d;
    celo_run r;
    span train_only_sp; /* where train_only was given (zero: not given) */
    int checked;        /* its train_only was checked (once, whatever the distill blocks that list it) */
} stage_def;

typedef struct {
    module *mod;
    celo_plan *plan;
    int cap_tasks, cap_runs, cap_groups;
    int nerr;
    const srcfile *file;
    stage_def *stages;
    int nstages, cap_stages;
} pctx;

#define PERR(C, sp, ...)                        \
    do {                                        \
        (C)->nerr++;                            \
        diag_error((C)->file, sp, __VA_ARGS__); \
    } while (0)

/* A call's arguments by name, with positional ones mapped to names in order. */
typedef struct {
    const char *names[16];
    const pval *vals[16];
    int n;
} callargs;

typedef struct {
    def *d; /* NULL: none given (the rule as it is) */
    span sp;
    int n;
    const char *names[16];
    double vals[16];
} sched_use;

/* ---- values (pipeline.c) ---- */
void pl_suggest_among(pctx *C, span sp, const char *s, const char *const *names, int n); /* a did-you-mean note */
int pl_want_int(pctx *C, const pval *v, const char *what, long long lo, long long hi, long long *out);
int pl_want_num(pctx *C, const pval *v, const char *what, double *out);
int pl_want_str(pctx *C, const pval *v, const char *what, char *out, size_t len);
/* the index of name v among names (calls: a call's callee too), or -1 after the error */
int pl_pick_name_or_call(pctx *C, const pval *v, const char *what, const char *const *names, int n, int calls);
int pl_pick_name(pctx *C, const pval *v, const char *what, const char *const *names, int n);
int pl_bind_args(pctx *C, const pval *v, const char *const *params, int nparams, callargs *out);
const pval *pl_arg_of(const callargs *a, const char *name); /* NULL when not given */
const char *pl_callee(const pval *v);                       /* a call's or a name's name, else NULL */
/* train_only = ["part", ...] into out as comma-separated parts */
int pl_train_only_list(pctx *C, const pval *v, const char *what, const char *example, char *out, size_t cap);

/* ---- runs and groups (pipeline.c) ---- */
int pl_find_task(pctx *C, const pval *v); /* a task's index */
int pl_set_optimizer(pctx *C, celo_run *r, const pval *v);
int pl_run_key(pctx *C, celo_run *r, sched_use *su, const prop *p, const def *d); /* the keys train blocks share */
int pl_apply_schedule(pctx *C, celo_run *r, const sched_use *su, const def *blk);
celo_run *pl_new_run(pctx *C);
void pl_finish_run(pctx *C, celo_run *r, const def *d);
int pl_new_group(pctx *C, const def *d, const char *kind);
void pl_file_name(char *out, size_t len, const char *dir, const char *name, const char *ext);

/* ---- distillation (pipeline_distill.c) ---- */
int pl_build_stage(pctx *C, const def *d);
int pl_build_distill(pctx *C, const def *d);

#endif
