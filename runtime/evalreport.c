/* evalreport.c — what an `eval` block leaves behind (docs/meta.md, "Evaluating learned optimizers"): per task, each
 * optimizer's best configuration (by the mean over seeds of the metric), its final value normalized by the
 * reference optimizer's and its speed-up (steps the reference needs to reach its own final value over the steps
 * this optimizer needs), aggregated over tasks and seeds by the interquartile mean with stratified bootstrap
 * intervals, as the learned-optimizer papers report them. Writes results.md, results.csv and one curves SVG per
 * task into the group's folder. */
#include "report.h"

#include "errmsg.h"
#include "fileio.h"
#include "rng.h"
#include "sbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BOOT = 2000 };

typedef struct {
    int task, entry, first, nseed; /* runs first .. first + nseed - 1, seeds in order */
    double mean;                   /* mean over seeds of the score (lower is better); +inf if any is missing */
} cfg;

static int higher_better(const char *metric)
{
    return !strcmp(metric, "eval_acc");
}

static double row_metric(const celo_row *r, const char *metric)
{
    return !strcmp(metric, "eval_acc") ? r->eval_acc : !strcmp(metric, "train_loss") ? r->train_loss : r->eval_loss;
}

static double final_metric(const celo_outcome *o, const char *metric)
{
    if (!o->ran || o->res.diverged)
        return NAN;
    return !strcmp(metric, "eval_acc")     ? o->res.final_eval_acc
           : !strcmp(metric, "train_loss") ? o->res.final_train_loss
                                           : o->res.final_eval_loss;
}

static int same_hp(const celo_run *a, const celo_run *b)
{
    if (a->nhp != b->nhp)
        return 0;
    for (int i = 0; i < a->nhp; i++)
        if (a->hp[i] != b->hp[i] || strcmp(a->hp_name[i], b->hp_name[i]))
            return 0;
    return 1;
}

/* The first logged step at which the run's metric reaches target (NAN: never). */
static double reach_step(const celo_outcome *o, const char *metric, double target)
{
    for (int k = 0; k < o->log.n; k++) {
        double v = row_metric(&o->log.rows[k], metric);
        if (isfinite(v) && (higher_better(metric) ? v >= target : v <= target))
            return (double)o->log.rows[k].step;
    }
    return NAN;
}

/* The mean over the seeds idx[0 .. n) of configuration b's final value (NaN if one is missing), and the first
 * logged step at which the mean over those seeds of its curve reaches target (NaN: never). */
static double mean_final(const celo_outcome *outs, const cfg *b, const int *idx, int n, const char *metric)
{
    double s = 0;
    for (int q = 0; q < n; q++)
        s += final_metric(&outs[b->first + idx[q]], metric);
    return s / n;
}

static double mean_reach(const celo_outcome *outs, const cfg *b, const int *idx, int n, const char *metric,
                         double target)
{
    const celo_outcome *o0 = &outs[b->first];
    for (int k = 0; k < o0->log.n; k++) {
        double m = 0;
        for (int q = 0; q < n; q++) {
            const celo_outcome *o = &outs[b->first + idx[q]];
            m += k < o->log.n ? row_metric(&o->log.rows[k], metric) : NAN;
        }
        m /= n;
        if (isfinite(m) && (higher_better(metric) ? m >= target : m <= target))
            return (double)o0->log.rows[k].step;
    }
    return NAN;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The interquartile mean: the mean of the middle half, a quarter of the values (rounded down) cut from each end
 * (scipy.stats.trim_mean(x, 0.25)). NaN for no values. Sorts v. */
static double iqm(double *v, int n)
{
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    int cut = n / 4;
    double s = 0;
    for (int i = cut; i < n - cut; i++)
        s += v[i];
    return s / (double)(n - 2 * cut);
}

/* IQM of values[task][seed] (nt tasks, ns seeds each, NaN entries dropped), and its 95 % interval from a
 * bootstrap stratified by task (each task's seeds resampled with replacement), rliable's method. */
static void iqm_ci(const double *values, int nt, int ns, double *mid, double *lo, double *hi)
{
    double *v = malloc(sizeof(double) * (size_t)(nt * ns > 0 ? nt * ns : 1));
    double *boot = malloc(sizeof(double) * BOOT);
    *mid = *lo = *hi = NAN;
    if (!v || !boot) {
        free(v), free(boot);
        return;
    }
    int n = 0;
    for (int i = 0; i < nt * ns; i++)
        if (!isnan(values[i]))
            v[n++] = values[i];
    *mid = iqm(v, n);
    celo_rng r;
    celo_rng_init(&r, 0x1e9a1ull, 0);
    int nb = 0;
    for (int b = 0; b < BOOT; b++) {
        n = 0;
        for (int t = 0; t < nt; t++)
            for (int s = 0; s < ns; s++) {
                double x = values[t * ns + (int)(celo_rng_uniform(&r) * ns)];
                if (!isnan(x))
                    v[n++] = x;
            }
        if (n)
            boot[nb++] = iqm(v, n);
    }
    if (nb) {
        qsort(boot, (size_t)nb, sizeof *boot, cmp_dbl);
        *lo = boot[(int)(0.025 * (nb - 1))];
        *hi = boot[(int)(0.975 * (nb - 1))];
    }
    free(v), free(boot);
}

/* Entry e's speed-up: IQM over tasks of T_ref / T_e, both from mean curves over seeds (0 where e's never reaches
 * the reference's final value), and its 95 % interval from a bootstrap that resamples, for every task, the
 * reference's seeds and e's seeds with replacement and recomputes everything from them. */
static void speed_iqm_ci(const celo_outcome *outs, const cfg *c, const int *best, int nt, int ne, int e, int ref,
                         const char *metric, double *mid, double *lo, double *hi)
{
    double *v = malloc(sizeof(double) * (size_t)(nt > 0 ? nt : 1)), *boot = malloc(sizeof(double) * BOOT);
    *mid = *lo = *hi = NAN;
    if (!v || !boot) {
        free(v), free(boot);
        return;
    }
    celo_rng r;
    celo_rng_init(&r, 0x5eedull, (uint64_t)e);
    int nb = 0;
    for (int b = -1; b < BOOT; b++) { /* b = -1: the point estimate, every seed once */
        int n = 0;
        for (int t = 0; t < nt; t++) {
            const cfg *rc = best[t * ne + ref] >= 0 ? &c[best[t * ne + ref]] : NULL;
            const cfg *ec = best[t * ne + e] >= 0 ? &c[best[t * ne + e]] : NULL;
            if (!rc || !ec)
                continue;
            int ri[1024], ei[1024];
            for (int q = 0; q < rc->nseed && q < 1024; q++)
                ri[q] = b < 0 ? q : (int)(celo_rng_uniform(&r) * rc->nseed);
            for (int q = 0; q < ec->nseed && q < 1024; q++)
                ei[q] = b < 0 ? q : (int)(celo_rng_uniform(&r) * ec->nseed);
            double L = mean_final(outs, rc, ri, rc->nseed, metric);
            double tr = isfinite(L) ? mean_reach(outs, rc, ri, rc->nseed, metric, L) : NAN;
            if (isnan(tr))
                continue;
            double te = mean_reach(outs, ec, ei, ec->nseed, metric, L);
            v[n++] = isnan(te) ? 0 : tr / te;
        }
        double m = iqm(v, n);
        if (b < 0)
            *mid = m;
        else if (!isnan(m))
            boot[nb++] = m;
    }
    if (nb) {
        qsort(boot, (size_t)nb, sizeof *boot, cmp_dbl);
        *lo = boot[(int)(0.025 * (nb - 1))];
        *hi = boot[(int)(0.975 * (nb - 1))];
    }
    free(v), free(boot);
}

static void fmt(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (isinf(v))
        snprintf(buf, n, "inf");
    else
        snprintf(buf, n, "%.4g", v);
}

int celo_report_eval(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, char *err, size_t errlen)
{
    const char *metric = g->metric[0] ? g->metric : "eval_loss";
    int sign = higher_better(metric) ? -1 : 1;
    int rc = -1, nc = 0, nt = 0, ne = 0, ns = g->seeds > 0 ? g->seeds : 1;
    cfg *c = calloc((size_t)(g->count > 0 ? g->count : 1), sizeof *c);
    int *tasks = calloc((size_t)(g->count > 0 ? g->count : 1), sizeof *tasks);
    sbuf md = {0}, csv = {0}, svg = {0};
    double *norm = NULL, *speed = NULL, *refv = NULL, *tref = NULL;
    int *best = NULL;
    if (!c || !tasks)
        goto oom;
    /* configurations: consecutive runs of one task, entry and hyper-parameters (the seeds) */
    for (int k = g->first; k < g->first + g->count; k++) {
        const celo_run *r = &plan->runs[k];
        cfg *p = nc ? &c[nc - 1] : NULL;
        if (p && p->task == r->task && p->entry == r->entry && same_hp(&plan->runs[p->first], r))
            p->nseed++;
        else
            c[nc++] = (cfg){r->task, r->entry, k, 1, 0};
        if (!nt || tasks[nt - 1] != r->task) {
            int seen = 0;
            for (int q = 0; q < nt; q++)
                seen |= tasks[q] == r->task;
            if (!seen)
                tasks[nt++] = r->task;
        }
        ne = r->entry + 1 > ne ? r->entry + 1 : ne;
    }
    for (int i = 0; i < nc; i++) {
        double s = 0;
        for (int q = 0; q < c[i].nseed; q++) {
            double v = final_metric(&outs[c[i].first + q], metric);
            s += isnan(v) ? INFINITY : sign * v;
        }
        c[i].mean = s / c[i].nseed;
    }
    best = malloc(sizeof(int) * (size_t)(nt * ne));
    norm = malloc(sizeof(double) * (size_t)(nt * ne * ns));
    speed = malloc(sizeof(double) * (size_t)(nt * ne * ns));
    refv = malloc(sizeof(double) * (size_t)nt);
    tref = malloc(sizeof(double) * (size_t)nt);
    if (!best || !norm || !speed || !refv || !tref)
        goto oom;
    for (int t = 0; t < nt; t++)
        for (int e = 0; e < ne; e++) {
            int b = -1;
            for (int i = 0; i < nc; i++)
                if (c[i].task == tasks[t] && c[i].entry == e && (b < 0 || c[i].mean < c[b].mean))
                    b = i;
            best[t * ne + e] = b;
        }
    /* the reference's final value (mean over its seeds) and the first step its mean curve reaches it */
    int all[1024];
    for (int q = 0; q < 1024; q++)
        all[q] = q;
    for (int t = 0; t < nt; t++) {
        int b = best[t * ne + g->reference];
        refv[t] = b >= 0 ? mean_final(outs, &c[b], all, c[b].nseed, metric) : NAN;
        tref[t] = isfinite(refv[t]) ? mean_reach(outs, &c[b], all, c[b].nseed, metric, refv[t]) : NAN;
    }
    /* per task, entry and seed: normalized final value and speed-up (0: never reached the reference's value) */
    celo_sb_printf(&csv, "task,optimizer,hyper_parameters,seed,%s,normalized,steps_to_reference,speedup_of_mean\n",
                   metric);
    for (int t = 0; t < nt; t++)
        for (int e = 0; e < ne; e++)
            for (int s = 0; s < ns; s++) {
                int b = best[t * ne + e], at = (t * ne + e) * ns + s;
                norm[at] = speed[at] = NAN;
                if (b < 0 || s >= c[b].nseed)
                    continue;
                const celo_outcome *o = &outs[c[b].first + s];
                const celo_run *r = &plan->runs[c[b].first + s];
                double v = final_metric(o, metric), st = reach_step(o, metric, refv[t]);
                double te = mean_reach(outs, &c[b], all, c[b].nseed, metric, refv[t]);
                norm[at] = isnan(v) ? INFINITY : v / refv[t];
                speed[at] = isnan(te) ? 0 : tref[t] / te; /* the configuration's, from its mean curve */
                char hp[512] = "";
                for (int i = 0, len = 0; i < r->nhp && len < (int)sizeof hp; i++)
                    len +=
                        snprintf(hp + len, sizeof hp - (size_t)len, "%s%s=%.6g", i ? " " : "", r->hp_name[i], r->hp[i]);
                celo_sb_printf(&csv, "%s,%s,%s,%lld,%.9g,%.9g,%.9g,%.9g\n", plan->tasks[tasks[t]].name, r->rule, hp,
                               (long long)r->seed, v, norm[at], st, speed[at]);
            }
    /* the summary: IQM over tasks and seeds, per optimizer */
    celo_sb_printf(&md, "# %s\n\n", g->name);
    celo_sb_printf(&md,
                   "Each optimizer's best configuration per task (lowest mean %s over %d seed%s), normalized by the "
                   "reference `%s`; IQM over tasks × seeds with 95 %% stratified-bootstrap intervals (%d resamples). "
                   "Normalized %s: below 1 is better than the reference%s. Speed-up: the steps the reference's mean "
                   "curve needs to reach its own final %s over the steps this optimizer's mean curve needs (0 where "
                   "it never does); IQM over tasks, intervals from resampling each task's seeds.\n\n",
                   metric, ns, ns == 1 ? "" : "s", plan->runs[c[best[g->reference]].first].rule, BOOT, metric,
                   higher_better(metric) ? " (above 1 for accuracy)" : "", metric);
    celo_sb_printf(&md, "| optimizer | IQM normalized %s | 95 %% interval | IQM speed-up | 95 %% interval |\n", metric);
    celo_sb_printf(&md, "|---|---:|---:|---:|---:|\n");
    for (int e = 0; e < ne; e++) {
        double *nv = malloc(sizeof(double) * (size_t)(nt * ns));
        if (!nv)
            goto oom;
        for (int t = 0; t < nt; t++)
            for (int s = 0; s < ns; s++)
                nv[t * ns + s] = norm[(t * ne + e) * ns + s];
        double m1, l1, h1, m2, l2, h2;
        iqm_ci(nv, nt, ns, &m1, &l1, &h1);
        speed_iqm_ci(outs, c, best, nt, ne, e, g->reference, metric, &m2, &l2, &h2);
        free(nv);
        int b0 = best[e];
        char a[4][32];
        fmt(a[0], 32, m1), fmt(a[1], 32, l1), fmt(a[2], 32, h1);
        celo_sb_printf(&md, "| %s | %s | %s – %s | ", b0 >= 0 ? plan->runs[c[b0].first].rule : "?", a[0], a[1], a[2]);
        fmt(a[0], 32, m2), fmt(a[1], 32, l2), fmt(a[2], 32, h2);
        celo_sb_printf(&md, "%s | %s – %s |\n", a[0], a[1], a[2]);
    }
    /* per task */
    for (int t = 0; t < nt; t++) {
        const celo_task *tk = &plan->tasks[tasks[t]];
        char rv[32];
        fmt(rv, sizeof rv, refv[t]);
        celo_sb_printf(&md, "\n## %s\n\nReference %s %s, reached at step %.0f. ", tk->name, metric, rv, tref[t]);
        celo_sb_printf(&md, "![%s against step](curves_%s.svg)\n\n", metric, tk->name);
        celo_sb_printf(&md, "| optimizer | best configuration | %s (mean ± sd) | normalized | speed-up |\n", metric);
        celo_sb_printf(&md, "|---|---|---:|---:|---:|\n");
        const char *names[32];
        char namebuf[32][CELO_NAME_MAX + 272];
        int runs[32], nr = 0;
        celo_outcome *mean = calloc((size_t)(ne > 0 ? ne : 1), sizeof *mean);
        if (!mean)
            goto oom;
        for (int e = 0; e < ne; e++) {
            int b = best[t * ne + e];
            if (b < 0)
                continue;
            const celo_run *r = &plan->runs[c[b].first];
            double m = 0, m2 = 0, nm = 0, sp = 0;
            int n = 0;
            for (int s = 0; s < c[b].nseed; s++) {
                double v = final_metric(&outs[c[b].first + s], metric);
                m += v, m2 += v * v, n++;
                nm += norm[(t * ne + e) * ns + s], sp += speed[(t * ne + e) * ns + s];
            }
            m /= n, nm /= n, sp /= n;
            double sd = n > 1 ? sqrt(fmax(0, (m2 - n * m * m) / (n - 1))) : 0;
            char hp[256] = "";
            for (int i = 0, len = 0; i < r->nhp && len < (int)sizeof hp; i++) {
                int varies = 0;
                for (int q = 0; q < nc && !varies; q++)
                    varies = c[q].task == c[b].task && c[q].entry == e && plan->runs[c[q].first].hp[i] != r->hp[i];
                if (varies)
                    len += snprintf(hp + len, sizeof hp - (size_t)len, "%s%s=%.3g", len ? ", " : "", r->hp_name[i],
                                    r->hp[i]);
            }
            char a[3][32];
            fmt(a[0], 32, m), fmt(a[1], 32, sd), fmt(a[2], 32, nm);
            celo_sb_printf(&md, "| %s | %s | %s ± %s | %s | %.3g |\n", r->rule, hp[0] ? hp : "as given", a[0], a[1],
                           a[2], sp);
            /* the mean curve over seeds, for the plot */
            celo_outcome *mo = &mean[nr];
            const celo_outcome *o0 = &outs[c[b].first];
            mo->ran = 1;
            for (int k = 0; k < o0->log.n; k++) {
                celo_row row = o0->log.rows[k];
                double acc = 0;
                for (int s = 0; s < c[b].nseed; s++) {
                    const celo_outcome *o = &outs[c[b].first + s];
                    acc += k < o->log.n ? row_metric(&o->log.rows[k], metric) : NAN;
                }
                row.eval_loss = acc / c[b].nseed;
                if (celo_rowlog_add(&mo->log, row))
                    goto oom;
            }
            snprintf(namebuf[nr], sizeof namebuf[nr], "%s%s%s", r->rule, hp[0] ? " " : "", hp);
            names[nr] = namebuf[nr];
            runs[nr] = nr;
            nr++;
        }
        char title[256], path[CELO_PATH_MAX + CELO_NAME_MAX + 16];
        snprintf(title, sizeof title, "%s, %s: %s (mean of %d seeds)", g->name, tk->name, metric, ns);
        svg.len = 0;
        celo_report_svg(&svg, title, plan, mean, runs, nr, names, metric);
        for (int e = 0; e < nr; e++)
            celo_rowlog_free(&mean[e].log);
        free(mean);
        snprintf(path, sizeof path, "%s/curves_%s.svg", g->out[0] ? g->out : ".", tk->name);
        if (svg.oom || celo_write_file(path, svg.s, svg.len, err, errlen))
            goto fail;
    }
    if (md.oom || csv.oom)
        goto oom;
    char path[CELO_PATH_MAX + 32];
    const char *dir = g->out[0] ? g->out : ".";
    snprintf(path, sizeof path, "%s/results.md", dir);
    if (celo_write_file(path, md.s, md.len, err, errlen))
        goto fail;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if (celo_write_file(path, csv.s, csv.len, err, errlen))
        goto fail;
    printf("eval %s (%s/results.md, results.csv, curves_*.svg):\n%.*s", g->name, dir, (int)md.len, md.s);
    fflush(stdout);
    rc = 0;
    goto done;
oom:
    celo_seterr(err, errlen, "eval %s: out of memory", g->name);
fail:
done:
    free(c), free(tasks), free(best), free(norm), free(speed), free(refv), free(tref);
    free(md.s), free(csv.s), free(svg.s);
    return rc;
}
