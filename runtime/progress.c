/* progress.c — what a training run prints while it runs (progress.h): a bar redrawn in place on a terminal,
 * plain lines at evaluations and every 10 % otherwise. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double celo_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void celo_progress_start(celo_progress *pg, const celo_inst *in, int on)
{
    const celo_run *run = celo_inst_run(in);
    pg->on = on;
    pg->tty = isatty(2);
    pg->t0 = pg->last = celo_now_s();
    pg->s0 = celo_inst_step_count(in);
    int64_t tenth = run->steps / 10 > 0 ? run->steps / 10 : 1;
    pg->mark = (pg->s0 / tenth + 1) * tenth;
}

void celo_fmt_time(double s, char *buf, size_t n)
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

static double prog_rate(const celo_progress *pg, const celo_inst *in, double now)
{
    double dt = now - pg->t0;
    return dt > 0 ? (double)(celo_inst_step_count(in) - pg->s0) / dt : 0;
}

static void prog_tty(celo_progress *pg, const celo_inst *in, const celo_rowlog *l, double now)
{
    const celo_run *run = celo_inst_run(in);
    celo_inst_stats s = celo_inst_get_stats(in);
    int64_t step = s.step;
    double rate = prog_rate(pg, in, now);
    char eta[32], line[512];
    celo_fmt_time(rate > 0 ? (double)(run->steps - step) / rate : -1, eta, sizeof eta);
    int w = 20, fill = run->steps > 0 ? (int)((double)w * (double)step / (double)run->steps) : w;
    char bar[32];
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[w] = 0;
    int k = snprintf(line, sizeof line, "%s [%s] %lld/%lld  loss %.4g", run->name, bar, (long long)step,
                     (long long)run->steps, s.ema);
    if (l->n && k > 0 && (size_t)k < sizeof line) {
        const celo_row *r = &l->rows[l->n - 1];
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

static void prog_line(celo_progress *pg, const celo_inst *in, const celo_rowlog *l, double now, int with_eval)
{
    const celo_run *run = celo_inst_run(in);
    celo_inst_stats s = celo_inst_get_stats(in);
    int64_t step = s.step;
    double rate = prog_rate(pg, in, now);
    char eta[32];
    celo_fmt_time(rate > 0 ? (double)(run->steps - step) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%s: step %lld/%lld  smoothed_loss %.4g", run->name, (long long)step, (long long)run->steps, s.ema);
    if (with_eval && l->n) {
        const celo_row *r = &l->rows[l->n - 1];
        fprintf(stderr, "  eval_loss %.4g", r->eval_loss);
        if (!isnan(r->eval_acc))
            fprintf(stderr, "  eval_acc %.4f", r->eval_acc);
    }
    fprintf(stderr, "  %.0f steps/s  ETA %s\n", rate, eta);
    pg->last = now;
}

/* After step step; evaluated: a row was just added. */
void celo_progress_update(celo_progress *pg, const celo_inst *in, const celo_rowlog *l, int evaluated)
{
    const celo_run *run = celo_inst_run(in);
    int64_t step = celo_inst_step_count(in);
    if (!pg->on)
        return;
    if (pg->tty) {
        double now = celo_now_s();
        if (now - pg->last >= 0.2 || evaluated)
            prog_tty(pg, in, l, now);
        return;
    }
    /* plain lines: at each evaluation, and at every 10 % mark at most once a second (short runs print only their
     * evaluations); none at the last step, which the summary line reports */
    if (step >= run->steps)
        return;
    if (evaluated || step >= pg->mark) {
        double now = celo_now_s();
        if (evaluated || now - pg->last >= 1.0)
            prog_line(pg, in, l, now, evaluated);
        while (pg->mark <= step)
            pg->mark += run->steps / 10 > 0 ? run->steps / 10 : 1;
    }
}

void celo_progress_end(celo_progress *pg, const celo_inst *in, const celo_rowlog *l)
{
    if (pg->on && pg->tty && celo_inst_step_count(in) > pg->s0) {
        prog_tty(pg, in, l, celo_now_s());
        fputc('\n', stderr);
    }
}
