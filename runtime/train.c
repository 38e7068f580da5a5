/*
 * train.c — executing a plan (plan.h): each run is an instance (inst.h) stepped to its end, evaluated every
 * eval_every steps and at the end (one CSV row each, runlog.h), checkpointed every checkpoint_every steps and
 * at the end, with progress on stderr (progress.h); then the summaries of sweeps and comparisons (report.h).
 *
 * Threads. A run whose steps are small (no split batches, no tensor large enough for celo_step to cut: the 8x8
 * MLP) runs on one thread, since waking a second one costs more than its half of such a step (celo_ctx_for). The
 * runs of a sweep or compare made of such runs go side by side instead, one per thread; their numbers are those
 * of the same runs one after another (an instance's numbers depend on its run alone). CELO_SIDE_BY_SIDE=0 turns
 * that off, and CELO_RUN_THREADS=N fixes the threads of every run. A run of larger steps uses every thread.
 * A run whose loss, a gradient or a parameter stops being finite stops with one line naming the step and the
 * tensor (res->diverged = 1; not an error).
 */
#include "plan.h"

#include "distill.h"
#include "errmsg.h"
#include "inst.h"
#include "meta.h"
#include "progress.h"
#include "ranks.h"
#include "report.h"
#include "runlog.h"
#include "sbuf.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Progress of runs side by side: one line now and then for the whole group (each run prints its end). */
typedef struct {
    const celo_group *g;
    _Atomic int64_t done; /* steps of all its runs */
    int64_t total;
    _Atomic int finished; /* runs */
    double t0, last;
    int tty;
} group_progress;

/* One run of the plan, from its instance to its outcome. */
typedef struct {
    const celo_plan *plan;
    const celo_run *run;
    const celo_run_opts *opts;
    celo_inst *in;
    celo_distill *dist; /* a distillation stage's teacher and loss (distill.h), or NULL */
    celo_ctx ctx;
    int live;           /* progress while it runs (off for runs side by side: each prints its end) */
    int solo;           /* under mpirun, this rank runs it alone (an eval block's runs spread over the ranks) */
    celo_progress pg;   /* live progress */
    group_progress *gp; /* runs side by side: the group's progress */
    celo_rowlog log;    /* one row per evaluation */
    celo_run_result res;
    int64_t diverged_at;
    char err[1024];
} run_job;

static const celo_run_opts default_opts = {0, 0, NULL, NULL, 0};

/* Checks the run, loads its task's data (td) and creates its instance. 0, or -1 with j->err. */
static int job_prepare(run_job *j, const celo_plan *plan, const celo_run *run, celo_task_data *td,
                       celo_rule_lookup lookup, void *lctx, const celo_run_opts *opts, int solo)
{
    memset(j, 0, sizeof *j);
    j->solo = solo;
    j->plan = plan;
    j->run = run;
    j->opts = opts ? opts : &default_opts;
    j->res.final_train_loss = j->res.final_eval_loss = j->res.final_eval_acc = NAN;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    if (run->task < 0 || run->task >= plan->ntasks) {
        celo_seterr(err, errlen, "run %s: task %d does not exist", run->name, run->task);
        return -1;
    }
    if (run->steps < 1 && !(run->stage && run->steps == 0)) { /* a stage of 0 steps: its initial weights, evaluated */
        celo_seterr(err, errlen, "run %s: steps = %lld (want at least 1)", run->name, (long long)run->steps);
        return -1;
    }
    if (run->eval_every < 0 || run->checkpoint_every < 0) {
        celo_seterr(err, errlen, "run %s: eval_every and checkpoint_every must not be negative", run->name);
        return -1;
    }
    const celo_program *prog = lookup ? lookup(run->rule, lctx) : NULL;
    if (!prog) {
        celo_seterr(err, errlen, "run %s: unknown optimizer '%s'", run->name, run->rule);
        return -1;
    }
    if (celo_task_data_load(td, &plan->tasks[run->task], j->opts->quiet, err, errlen))
        return -1;
    j->in = celo_inst_new(plan, run, prog, j->opts->backend, td, err, errlen);
    /* data-parallel over mpirun's ranks (a distillation stage too: its teacher runs on each rank's shard) */
    if (!j->in || (!solo && celo_inst_shard(j->in, celo_rank(), celo_nranks(), err, errlen)))
        return -1;
    if (run->stage) {
        j->dist = celo_distill_new(plan, run, celo_inst_model(j->in), err, errlen);
        if (!j->dist && err[0])
            return -1;
        celo_inst_set_distill(j->in, j->dist);
    }
    j->ctx = celo_ctx_for(j->in, celo_threads());
    const char *force = getenv("CELO_RUN_THREADS"); /* a fixed thread count per run (benchmarks, experiments) */
    if (force && atoi(force) > 0)
        j->ctx.threads = atoi(force);
    j->live = !j->opts->quiet;
    return 0;
}

static void job_free(run_job *j)
{
    celo_inst_free(j->in);
    celo_distill_free(j->dist);
    celo_rowlog_free(&j->log);
    j->in = NULL, j->dist = NULL;
}

/* A line for the group at most every 2 s (on a terminal: redrawn in place every 0.2 s); any thread may call it. */
static void group_tick(group_progress *gp, int64_t steps)
{
    int64_t done = atomic_fetch_add(&gp->done, steps) + steps;
    if ((done & 1023) >= steps && done < gp->total) /* look at the clock about every 1024 steps */
        return;
    double now = celo_now_s();
    int print = 0;
#pragma omp critical(celo_group_progress)
    if (now - gp->last >= (gp->tty ? 0.2 : 2.0)) {
        gp->last = now;
        print = 1;
    }
    if (!print)
        return;
    double rate = (double)done / (now - gp->t0 > 0 ? now - gp->t0 : 1e-9);
    char eta[32];
    celo_fmt_time(rate > 0 ? (double)(gp->total - done) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%s%s %s: %lld/%lld steps (%.0f %%), %d of %d runs done, %.0f steps/s  ETA %s%s",
            gp->tty ? "\r" : "", gp->g->kind, gp->g->name, (long long)done, (long long)gp->total,
            100.0 * (double)done / (double)gp->total, atomic_load(&gp->finished), gp->g->count, rate, eta,
            gp->tty ? "\033[K" : "\n");
}

static void on_step(const celo_inst *in, void *cb_ctx)
{
    run_job *j = cb_ctx;
    if (j->gp)
        group_tick(j->gp, 1);
    else
        celo_progress_update(&j->pg, in, &j->log, 0);
}

/* The run's end on stderr, as one write (runs side by side print theirs as they end). */
static void print_end(const run_job *j, int resumed, int64_t s0, double secs)
{
    const celo_run *run = j->run;
    const celo_run_result *res = &j->res;
    char line[512], tm[32];
    int64_t step = celo_inst_step_count(j->in);
    size_t k = 0;
    celo_fmt_time(secs, tm, sizeof tm);
    if (resumed && step == s0)
        k += (size_t)snprintf(line, sizeof line, "%s: already done (%lld steps)", run->name, (long long)step);
    else
        k += (size_t)snprintf(line, sizeof line, "%s: done, %lld steps in %s (%.0f steps/s)", run->name,
                              (long long)step, tm, secs > 0 ? (double)(step - s0) / secs : 0.0);
    if (k < sizeof line)
        k += (size_t)snprintf(line + k, sizeof line - k, "; train_loss %.4g  eval_loss %.4g", res->final_train_loss,
                              res->final_eval_loss);
    if (!isnan(res->final_eval_acc) && k < sizeof line)
        snprintf(line + k, sizeof line - k, "  eval_acc %.4f", res->final_eval_acc);
    fprintf(stderr, "%s\n", line);
}

/* An evaluation at step t: a row of the log (train_loss: the mean since the last row) and the CSV rewritten. 0, or
 * -1 with j->err. */
static int eval_row(run_job *j, int64_t t, double train_loss, double wall_prev, double t0)
{
    celo_row r = {t, train_loss, NAN, NAN, 0};
    if ((celo_rank0() || j->solo) && celo_inst_eval(j->in, &j->ctx, &r.eval_loss, &r.eval_acc, j->err, sizeof j->err))
        return -1;
    r.wall_s = wall_prev + celo_now_s() - t0;
    if (celo_rowlog_add(&j->log, r)) {
        celo_seterr(j->err, sizeof j->err, "run %s: out of memory", j->run->name);
        return -1;
    }
    return celo_rank0() && celo_runlog_write_csv(j->run->log, &j->log, j->err, sizeof j->err) ? -1 : 0;
}

/* Resumes the run if asked, steps it to its end with its evaluations, rows and checkpoints. 0 (also when it
 * diverged: j->res says so), or -1 with j->err. */
static int job_exec(run_job *j)
{
    const celo_run *run = j->run;
    const celo_run_opts *opts = j->opts;
    celo_inst *in = j->in;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    double wall_prev = 0;              /* seconds spent in earlier sessions */
    int resumed = 0, w = celo_rank0(); /* under mpirun, rank 0 alone evaluates and writes files (ranks.h) */
    if (opts->resume && run->checkpoint[0] && access(run->checkpoint, F_OK) == 0) {
        if (celo_runlog_load(in, &j->log, &wall_prev, err, errlen))
            return -1;
        resumed = 1;
        if (!opts->quiet)
            fprintf(stderr, "%s: resuming from %s at step %lld of %lld\n", run->name, run->checkpoint,
                    (long long)celo_inst_step_count(in), (long long)run->steps);
        if (w && celo_runlog_write_csv(run->log, &j->log, err, errlen))
            return -1;
    } else if (run->stage && celo_distill_init(celo_inst_model(in), j->plan, run, err, errlen))
        return -1;
    else if (run->stage && run->init_ckpt[0] && !opts->quiet)
        fprintf(stderr, "%s: starts from %s (%s)\n", run->name, run->init_ckpt,
                run->init_map == CELO_INIT_BRIDGE ? "the linear attention -> Mamba bridge"
                : run->init_map == CELO_INIT_QKV  ? "Q, K, V, O into C, B, x, out"
                                                  : "every tensor of the same name");
    celo_progress_start(&j->pg, in, j->live);
    const double t0 = j->pg.t0;
    const int64_t s0 = celo_inst_step_count(in), eval_every = run->eval_every, ck_every = run->checkpoint_every;
    if (j->gp)
        atomic_fetch_add(&j->gp->done, s0); /* resumed: the steps already taken */
    int diverged = 0;
    char msg[512] = "";
    const int64_t stop = opts->stop_at > 0 && opts->stop_at < run->steps ? opts->stop_at : run->steps;
    while (celo_inst_step_count(in) < stop) {
        /* the steps up to the next one that evaluates or checkpoints */
        int64_t step = celo_inst_step_count(in), t_end = stop;
        if (eval_every > 0 && (step / eval_every + 1) * eval_every < t_end)
            t_end = (step / eval_every + 1) * eval_every;
        if (run->checkpoint[0] && ck_every > 0 && (step / ck_every + 1) * ck_every < t_end)
            t_end = (step / ck_every + 1) * ck_every;
        celo_step_out o;
        if (celo_inst_steps(in, &j->ctx, t_end, &o, on_step, j, err, errlen))
            return -1;
        int64_t t = celo_inst_step_count(in);
        if (j->gp && t > step)
            group_tick(j->gp, 1); /* the call's last step (on_step saw the others) */
        if (o.bad) {
            snprintf(msg, sizeof msg, "run %s: step %lld: %s%s is not finite%s; stopping", run->name, (long long)t,
                     o.pre, o.bad, o.post);
            diverged = 1;
            celo_inst_stats s = celo_inst_get_stats(in);
            celo_row r = {t, s.loss_sum / (double)s.loss_n, NAN, NAN, wall_prev + celo_now_s() - t0};
            if (celo_rowlog_add(&j->log, r)) {
                celo_seterr(err, errlen, "run %s: out of memory", run->name);
                return -1;
            }
            if (w && celo_runlog_write_csv(run->log, &j->log, err, errlen))
                return -1;
            break;
        }
        int evaluated = 0;
        if ((eval_every > 0 && t % eval_every == 0) || t == run->steps) {
            if (eval_row(j, t, celo_inst_take_mean(in), wall_prev, t0))
                return -1;
            evaluated = 1;
        }
        if (w && run->checkpoint[0] && ((ck_every > 0 && t % ck_every == 0) || t == run->steps || t == stop))
            if (celo_runlog_save(in, &j->log, wall_prev + celo_now_s() - t0, err, errlen))
                return -1;
        celo_progress_update(&j->pg, in, &j->log, evaluated);
    }
    if (run->steps == 0 && j->log.n == 0) /* a stage that only maps weights: evaluate and keep them */
        if (eval_row(j, 0, NAN, wall_prev, t0) ||
            (w && run->checkpoint[0] && celo_runlog_save(in, &j->log, j->log.rows[0].wall_s, err, errlen)))
            return -1;
    double t1 = celo_now_s();
    celo_progress_end(&j->pg, in, &j->log);
    if (diverged) {
        if (w)
            fprintf(stderr, "%s\n", msg);
        celo_seterr(err, errlen, "%s", msg);
    }
    int64_t step = celo_inst_step_count(in);
    j->res.steps_done = diverged ? step - 1 : step;
    j->res.diverged = diverged;
    j->res.wall_s = wall_prev + t1 - t0;
    j->diverged_at = diverged ? step : 0;
    if (j->log.n) {
        const celo_row *r = &j->log.rows[j->log.n - 1];
        j->res.final_train_loss = r->train_loss;
        j->res.final_eval_loss = r->eval_loss;
        j->res.final_eval_acc = r->eval_acc;
        j->res.wall_s = r->wall_s;
    }
    if (j->gp) {
        atomic_fetch_add(&j->gp->finished, 1);
        if (j->gp->tty && !opts->quiet)
            fputs("\r\033[K", stderr); /* the group's line gives way to the run's end */
    }
    if (!opts->quiet && !diverged && step < run->steps)
        fprintf(stderr, "%s: stopped at step %lld of %lld (--stop-at)%s\n", run->name, (long long)step,
                (long long)run->steps, run->checkpoint[0] ? "; --resume continues it" : "");
    else if (!opts->quiet && !diverged)
        print_end(j, resumed, s0, t1 - t0);
    return 0;
}

/* The job's result into the plan's outcome of the run (which takes the rows). */
static void job_outcome(run_job *j, celo_outcome *out)
{
    out->ran = 1;
    out->res = j->res;
    out->diverged_at = j->diverged_at;
    out->log = j->log;
    memset(&j->log, 0, sizeof j->log);
}

int celo_train_run(const celo_plan *plan, const celo_run *run, celo_rule_lookup lookup, void *lookup_ctx,
                   const celo_run_opts *opts, celo_run_result *res, char *err, size_t errlen)
{
    celo_task_data *td = celo_task_data_new();
    run_job j;
    int rc = -1;
    if (!td)
        celo_seterr(err, errlen, "run %s: out of memory", run->name);
    else {
        rc = job_prepare(&j, plan, run, td, lookup, lookup_ctx, opts, 0) || job_exec(&j) ? -1 : 0;
        if (res)
            *res = j.res;
        if (err && errlen)
            snprintf(err, errlen, "%s", j.err);
        job_free(&j);
    }
    celo_task_data_free(td);
    return rc;
}

/* ================================ the plan ================================ */

static int in_group(const celo_group *g, int run)
{
    return run >= g->first && run < g->first + g->count;
}

static int named(const celo_plan *plan, int i, const char *only)
{
    if (!strcmp(plan->runs[i].name, only))
        return 1;
    for (int k = 0; k < plan->ngroups; k++)
        if (in_group(&plan->groups[k], i) && !strcmp(plan->groups[k].name, only))
            return 1;
    return 0;
}

/* run i runs under --only: it is named, or it makes a named distillation stage's teacher (its checkpoint file) */
static int selected(const celo_plan *plan, int i, const char *only)
{
    if (!only || named(plan, i, only))
        return 1;
    const char *ck = plan->runs[i].checkpoint;
    for (int q = 0; ck[0] && !plan->runs[i].stage && q < plan->nruns; q++)
        if (plan->runs[q].stage && !strcmp(plan->runs[q].teacher_ckpt, ck) && named(plan, q, only))
            return 1;
    return 0;
}

/* The group whose first run is i, when all its runs are selected and there are two or more; else NULL. */
static const celo_group *group_at(const celo_plan *plan, int i, const char *only)
{
    for (int k = 0; k < plan->ngroups; k++) {
        const celo_group *g = &plan->groups[k];
        if (g->first != i || g->count < 2)
            continue;
        for (int q = g->first; q < g->first + g->count; q++)
            if (!selected(plan, q, only))
                return NULL;
        return g;
    }
    return NULL;
}

/* The meta group whose first run is i, or NULL. */
static const celo_group *meta_at(const celo_plan *plan, int i)
{
    for (int k = 0; k < plan->ngroups; k++)
        if (plan->groups[k].first == i && plan->groups[k].count > 0 && !strcmp(plan->groups[k].kind, "meta"))
            return &plan->groups[k];
    return NULL;
}

typedef struct {
    const celo_plan *plan;
    celo_rule_lookup lookup;
    void *lctx;
    const celo_run_opts *opts;
    celo_task_data **tds;
    celo_outcome *outs;
    int *last_use; /* by task: 1 + the last selected run that uses it */
} plan_exec;

static celo_task_data *task_of(plan_exec *x, const celo_run *r)
{
    return r->task >= 0 && r->task < x->plan->ntasks ? x->tds[r->task] : NULL;
}

/* After run i: its SVG beside its CSV, and its task's data freed after the task's last run (unless a compare
 * summary still wants the text's entropy: kept, it is small). 0, or -1 after printing the error. */
static int after_run(plan_exec *x, int i)
{
    char err[1024];
    const celo_run *r = &x->plan->runs[i];
    if (celo_rank0() && celo_report_run_svg(x->plan, i, x->outs, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    celo_task_data *td = task_of(x, r);
    if (td && x->last_use[r->task] == i + 1 && x->plan->tasks[r->task].data != CELO_DATA_KJV)
        celo_task_data_unload(td);
    return 0;
}

/* A distillation stage starts from its teacher's and its previous stage's final weights: NULL when the runs of this
 * plan that write them finished, else the one that did not (stopped by --stop-at, diverged, or failed). */
static const celo_run *stage_waits_for(const plan_exec *x, const celo_run *r)
{
    const char *files[2] = {r->teacher_ckpt, r->init_ckpt};
    for (int k = 0; k < 2 && r->stage; k++)
        for (int q = 0; files[k][0] && q < x->plan->nruns; q++) {
            const celo_run *w = &x->plan->runs[q];
            if (w == r || strcmp(w->checkpoint, files[k]) || !selected(x->plan, q, x->opts->only))
                continue;
            const celo_outcome *o = &x->outs[q];
            if (!o->ran || o->res.diverged || o->res.steps_done < w->steps)
                return w;
        }
    return NULL;
}

/* Runs first .. first + n - 1 one after another. */
static int exec_in_turn(plan_exec *x, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        if (!selected(x->plan, i, x->opts->only))
            continue;
        const celo_run *w = stage_waits_for(x, &x->plan->runs[i]);
        if (w) {
            if (!x->opts->quiet)
                fprintf(stderr, "%s: not started: it starts from %s's final weights, and %s did not finish%s\n",
                        x->plan->runs[i].name, w->name, w->name, w->checkpoint[0] ? " (--resume continues it)" : "");
            continue;
        }
        const celo_run *r = &x->plan->runs[i];
        celo_task_data *td = task_of(x, r), *scratch = td ? NULL : celo_task_data_new();
        run_job j;
        int bad = job_prepare(&j, x->plan, r, td ? td : scratch, x->lookup, x->lctx, x->opts, 0) || job_exec(&j);
        if (!bad)
            job_outcome(&j, &x->outs[i]);
        else
            fprintf(stderr, "error: %s\n", j.err);
        job_free(&j);
        celo_task_data_free(scratch);
        /* under mpirun, every rank waits here for the others: the files rank 0 wrote (a teacher's or a stage's
         * final weights, which the next stage reads on every rank) are complete, and a run that failed on one
         * rank stops them all */
        char msg[sizeof j.err];
        memcpy(msg, bad ? j.err : "", bad ? sizeof msg : 1);
        if (celo_nranks() > 1 && celo_ranks_any_failed(bad, msg, sizeof msg)) {
            if (!bad && celo_rank0())
                fprintf(stderr, "error: another rank: %s\n", msg);
            return -1;
        }
        if (bad || after_run(x, i))
            return -1;
    }
    return 0;
}

/* The runs of group g side by side when each is small enough for one thread (see the top of this file);
 * otherwise one after another. */
static int exec_group(plan_exec *x, const celo_group *g)
{
    int avail = celo_threads(), n = g->count;
    const char *env = getenv("CELO_SIDE_BY_SIDE");
    /* under mpirun every run is data-parallel over the ranks, whose collectives go one run at a time */
    if (avail < 2 || (env && !strcmp(env, "0")) || celo_nranks() > 1)
        return exec_in_turn(x, g->first, n);
    run_job *jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs) {
        fprintf(stderr, "error: out of memory\n");
        return -1;
    }
    int rc = -1, made = 0, small = 1;
    int *fail = calloc((size_t)n, sizeof *fail);
    if (!fail) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    /* the instances first, on this thread (data loads included); side by side only if every one is small */
    while (made < n && small) {
        const celo_run *r = &x->plan->runs[g->first + made];
        int bad = job_prepare(&jobs[made], x->plan, r, task_of(x, r), x->lookup, x->lctx, x->opts, 0);
        made++;
        if (bad) {
            fprintf(stderr, "error: %s\n", jobs[made - 1].err);
            goto done;
        }
        small = jobs[made - 1].ctx.threads == 1;
    }
    if (!small) {
        for (int k = 0; k < made; k++)
            job_free(&jobs[k]);
        free(jobs);
        free(fail);
        return exec_in_turn(x, g->first, n);
    }
    int nt = avail < n ? avail : n;
    group_progress gp = {.g = g, .t0 = celo_now_s(), .tty = isatty(2)};
    gp.last = gp.t0;
    for (int k = 0; k < n; k++) {
        gp.total += x->plan->runs[g->first + k].steps;
        jobs[k].gp = x->opts->quiet ? NULL : &gp;
    }
    if (!x->opts->quiet)
        fprintf(stderr, "%s %s: %d runs side by side on %d threads\n", g->kind, g->name, n, nt);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int k = 0; k < n; k++) {
        jobs[k].live = 0;
        fail[k] = job_exec(&jobs[k]) != 0;
    }
    for (int k = 0; k < n; k++) {
        if (fail[k]) {
            fprintf(stderr, "error: %s\n", jobs[k].err);
            goto done;
        }
        job_outcome(&jobs[k], &x->outs[g->first + k]);
        if (after_run(x, g->first + k))
            goto done;
    }
    rc = 0;
done:
    for (int k = 0; k < made; k++)
        job_free(&jobs[k]);
    free(jobs);
    free(fail);
    return rc;
}

/* Under mpirun, an eval group's runs spread over the ranks: run k on rank (k - first) % nranks, alone (not
 * data-parallel); then every rank's outcomes (results and logged rows) go to rank 0, which writes their CSV logs
 * and the report, as one process would. A run's numbers do not depend on where it runs. */
typedef struct {
    int32_t run;
    int32_t nrows;
    int64_t diverged_at;
    celo_run_result res;
} spread_head;

static int exec_spread(plan_exec *x, const celo_group *g)
{
    int n = celo_nranks(), me = celo_rank(), failed = 0;
    char msg[1024] = "";
    sbuf out = {0};
    for (int k = g->first; k < g->first + g->count && !failed; k++) {
        if ((k - g->first) % n != me || !selected(x->plan, k, x->opts->only))
            continue;
        const celo_run *r = &x->plan->runs[k];
        run_job j;
        failed = job_prepare(&j, x->plan, r, task_of(x, r), x->lookup, x->lctx, x->opts, 1) || job_exec(&j);
        if (failed)
            snprintf(msg, sizeof msg, "%s", j.err);
        else {
            job_outcome(&j, &x->outs[k]);
            spread_head h = {k, x->outs[k].log.n, x->outs[k].diverged_at, x->outs[k].res};
            celo_sb_put(&out, (const char *)&h, sizeof h);
            celo_sb_put(&out, (const char *)x->outs[k].log.rows, sizeof(celo_row) * (size_t)x->outs[k].log.n);
        }
        job_free(&j);
    }
    if (out.oom && !failed)
        failed = 1, snprintf(msg, sizeof msg, "eval %s: out of memory", g->name);
    if (celo_ranks_any_failed(failed, msg, sizeof msg)) {
        if (celo_rank0())
            fprintf(stderr, "error: %s\n", msg);
        free(out.s);
        return -1;
    }
    unsigned char *all = NULL;
    size_t len = 0;
    char err[512];
    int rc = celo_gather_bytes(out.s, out.len, &all, &len, err, sizeof err);
    free(out.s);
    for (size_t o = 0; rc == 0 && all && o + sizeof(spread_head) <= len;) {
        spread_head h;
        memcpy(&h, all + o, sizeof h);
        o += sizeof h;
        size_t rb = sizeof(celo_row) * (size_t)h.nrows;
        if (h.run < g->first || h.run >= g->first + g->count || h.nrows < 0 || o + rb > len) {
            snprintf(err, sizeof err, "eval %s: a rank sent a malformed outcome", g->name);
            rc = -1;
            break;
        }
        celo_outcome *oc = &x->outs[h.run];
        if (!oc->ran) { /* another rank's run: its outcome, and its log written here */
            oc->ran = 1, oc->res = h.res, oc->diverged_at = h.diverged_at;
            for (int q = 0; q < h.nrows && rc == 0; q++) {
                celo_row row;
                memcpy(&row, all + o + sizeof(celo_row) * (size_t)q, sizeof row);
                if (celo_rowlog_add(&oc->log, row))
                    rc = -1, snprintf(err, sizeof err, "eval %s: out of memory", g->name);
            }
            const celo_run *r = &x->plan->runs[h.run];
            if (rc == 0 && r->log[0] && celo_runlog_write_csv(r->log, &oc->log, err, sizeof err))
                rc = -1;
        }
        o += rb;
    }
    free(all);
    if (rc)
        fprintf(stderr, "error: %s\n", err);
    return rc;
}

int celo_plan_execute(const celo_plan *plan, celo_rule_lookup lookup, void *lookup_ctx, const celo_run_opts *opts)
{
    if (!opts)
        opts = &default_opts;
    celo_run_opts quiet_rank; /* under mpirun, ranks other than 0 print no progress (ranks.h) */
    if (!celo_rank0()) {
        quiet_rank = *opts;
        quiet_rank.quiet = 1;
        opts = &quiet_rank;
    }
    char err[1024] = "";
    int nsel = 0;
    for (int i = 0; i < plan->nruns; i++)
        nsel += selected(plan, i, opts->only);
    if (opts->only && !nsel) {
        fprintf(stderr, "error: no train, sweep, compare or meta named '%s' in the plan\n", opts->only);
        return 1;
    }
    size_t nt = (size_t)(plan->ntasks > 0 ? plan->ntasks : 1), nr = (size_t)(plan->nruns > 0 ? plan->nruns : 1);
    plan_exec x = {plan,
                   lookup,
                   lookup_ctx,
                   opts,
                   calloc(nt, sizeof(celo_task_data *)),
                   calloc(nr, sizeof(celo_outcome)),
                   calloc(nt, sizeof(int))};
    int rc = 1, ok = x.tds && x.outs && x.last_use;
    for (int t = 0; ok && t < plan->ntasks; t++)
        ok = (x.tds[t] = celo_task_data_new()) != NULL;
    if (!ok) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    for (int i = 0; i < plan->nruns; i++)
        if (selected(plan, i, opts->only) && plan->runs[i].task >= 0 && plan->runs[i].task < plan->ntasks)
            x.last_use[plan->runs[i].task] = i + 1;
    for (int i = 0; i < plan->nruns;) {
        const celo_group *m = meta_at(plan, i);
        if (m) { /* a meta block: its runs are particles and the outer optimizer, not runs of their own */
            if (selected(plan, i, opts->only) && celo_meta_execute(plan, m, lookup, lookup_ctx, x.tds, opts))
                goto done;
            i += m->count;
            continue;
        }
        const celo_group *g = group_at(plan, i, opts->only);
        int n = g ? g->count : 1;
        int spread = g && celo_nranks() > 1 && !strcmp(g->kind, "eval");
        int in_turn = g && !strcmp(g->kind, "distill"); /* each stage starts from the one before */
        if (spread    ? exec_spread(&x, g)
            : in_turn ? exec_in_turn(&x, i, n)
            : g       ? exec_group(&x, g)
                      : exec_in_turn(&x, i, 1))
            goto done;
        i += n;
    }
    for (int k = 0; k < plan->ngroups && celo_rank0(); k++) { /* the summaries: rank 0's (ranks.h) */
        const celo_group *g = &plan->groups[k];
        if (!strcmp(g->kind, "meta"))
            continue;
        int all = g->count > 0;
        for (int i = g->first; i < g->first + g->count; i++)
            all &= x.outs[i].ran;
        if (!all)
            continue;
        if (!strcmp(g->kind, "distill")) {
            if (celo_report_distill(plan, g, x.outs, err, sizeof err)) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        } else if (!strcmp(g->kind, "eval")) {
            if (celo_report_eval(plan, g, x.outs, err, sizeof err)) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        } else if (!strcmp(g->kind, "compare")) {
            if (celo_report_compare(plan, g, x.outs, lookup, lookup_ctx, x.tds, err, sizeof err)) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        } else {
            celo_report_sweep(plan, g, x.outs);
        }
    }
    rc = 0;
done:
    if (x.outs)
        for (int i = 0; i < plan->nruns; i++)
            celo_rowlog_free(&x.outs[i].log);
    if (x.tds)
        for (int t = 0; t < plan->ntasks; t++)
            celo_task_data_free(x.tds[t]);
    free(x.tds);
    free(x.outs);
    free(x.last_use);
    return rc;
}
