/* report.c — what a sweep or compare leaves behind (report.h): the sweep's table on stdout, the compare's
 * Markdown table and SVG of eval-loss curves, and a train run's SVG beside its CSV. */
#include "report.h"

#include "errmsg.h"
#include "fileio.h"
#include "sbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A run's value of metric (eval_loss, eval_acc or train_loss). */
static double metric_value(const celo_run_result *r, const char *metric)
{
    return !strcmp(metric, "eval_acc")     ? r->final_eval_acc
           : !strcmp(metric, "train_loss") ? r->final_train_loss
                                           : r->final_eval_loss;
}

/* A run's score under metric (lower is better); +inf when it has none. */
static double score(const celo_outcome *o, const char *metric)
{
    if (!o->ran || o->res.diverged)
        return INFINITY;
    double v = metric_value(&o->res, metric);
    if (!strcmp(metric, "eval_acc"))
        v = -v;
    return isnan(v) ? INFINITY : v;
}

static const char *group_metric(const celo_group *g)
{
    return g->metric[0] ? g->metric : "eval_loss";
}

static void fmt_num(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.4g", v);
}

void celo_report_sweep(const celo_plan *plan, const celo_group *g, const celo_outcome *outs)
{
    const char *metric = group_metric(g);
    /* columns: the hyper-parameters (and seed, optimizer) whose values differ between the runs */
    const celo_run *r0 = &plan->runs[g->first];
    const char *cols[CELO_MAX_HP + 2];
    int ncol = 0;
    for (int i = 0; i < r0->nhp; i++) {
        int differs = 0;
        for (int k = 1; k < g->count; k++) {
            const celo_run *r = &plan->runs[g->first + k];
            int found = 0;
            for (int j = 0; j < r->nhp; j++)
                if (!strcmp(r->hp_name[j], r0->hp_name[i])) {
                    found = 1;
                    if (r->hp[j] != r0->hp[i])
                        differs = 1;
                }
            if (!found)
                differs = 1;
        }
        if (differs)
            cols[ncol++] = r0->hp_name[i];
    }
    int seed_col = 0;
    for (int k = 1; k < g->count; k++)
        if (plan->runs[g->first + k].seed != r0->seed)
            seed_col = 1;
    int namew = 3;
    for (int k = 0; k < g->count; k++) {
        int l = (int)strlen(plan->runs[g->first + k].name);
        if (l > namew)
            namew = l;
    }
    printf("sweep %s: %d runs, best by %s (%s is better)\n", g->name, g->count, metric,
           strcmp(metric, "eval_acc") ? "lower" : "higher");
    printf("  %-*s", namew, "run");
    for (int c = 0; c < ncol; c++)
        printf("  %12s", cols[c]);
    if (seed_col)
        printf("  %8s", "seed");
    printf("  %10s  %10s  %10s\n", "train_loss", "eval_loss", "eval_acc");
    int best = -1;
    double bs = INFINITY;
    for (int k = 0; k < g->count; k++) {
        const celo_run *r = &plan->runs[g->first + k];
        const celo_outcome *o = &outs[g->first + k];
        printf("  %-*s", namew, r->name);
        for (int c = 0; c < ncol; c++) {
            char v[32] = "-";
            for (int j = 0; j < r->nhp; j++)
                if (!strcmp(r->hp_name[j], cols[c]))
                    snprintf(v, sizeof v, "%.6g", r->hp[j]);
            printf("  %12s", v);
        }
        if (seed_col)
            printf("  %8llu", (unsigned long long)r->seed);
        if (o->res.diverged) {
            printf("  diverged at step %lld\n", (long long)o->diverged_at);
        } else {
            char a[32], b[32], c[32];
            fmt_num(a, sizeof a, o->res.final_train_loss);
            fmt_num(b, sizeof b, o->res.final_eval_loss);
            fmt_num(c, sizeof c, o->res.final_eval_acc);
            printf("  %10s  %10s  %10s\n", a, b, isnan(o->res.final_eval_acc) ? "-" : c);
        }
        double s = score(o, metric);
        if (s < bs)
            bs = s, best = g->first + k;
    }
    if (best < 0)
        printf("best: none (no run finished with a finite %s)\n", metric);
    else
        printf("best: %s (%s %.6g)\n", plan->runs[best].name, metric, metric_value(&outs[best].res, metric));
    fflush(stdout);
}

/* "lr=0.003, warmup=100": the hyper-parameters of run r that the group varies among the runs of r's rule (a
 * tuned one), and those that differ from the rule's defaults. */
static void hp_text(const celo_plan *plan, const celo_group *g, const celo_run *r, const celo_program *prog, char *buf,
                    size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < r->nhp; i++) {
        int k = prog ? celo_program_hp_index(prog, r->hp_name[i]) : -1;
        int show = k < 0 || (float)r->hp[i] != (float)prog->hp[k].def;
        for (int q = g->first; q < g->first + g->count && !show; q++) {
            const celo_run *x = &plan->runs[q];
            show = x->entry == r->entry && !strcmp(x->rule, r->rule) && x->nhp == r->nhp &&
                   !strcmp(x->hp_name[i], r->hp_name[i]) && x->hp[i] != r->hp[i];
        }
        if (show && o < n)
            o += (size_t)snprintf(buf + o, n - o, "%s%s=%.6g", o ? ", " : "", r->hp_name[i], r->hp[i]);
    }
    if (!buf[0])
        snprintf(buf, n, "defaults");
}

static void md_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '*' || *s == '_' || *s == '`')
            celo_sb_printf(b, "\\%c", *s);
        else
            celo_sb_printf(b, "%c", *s);
    }
}

static void xml_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': celo_sb_printf(b, "&amp;"); break;
        case '<': celo_sb_printf(b, "&lt;"); break;
        case '>': celo_sb_printf(b, "&gt;"); break;
        case '"': celo_sb_printf(b, "&quot;"); break;
        default: celo_sb_printf(b, "%c", *s);
        }
    }
}

/* "nice" linear ticks covering [lo, hi] */
static int lin_ticks(double lo, double hi, double *t, int max)
{
    double span = hi - lo;
    if (!(span > 0))
        span = fabs(hi) > 0 ? fabs(hi) : 1;
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    int n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step && n < max; v += step)
        t[n++] = fabs(v) < 1e-12 * step ? 0 : v;
    return n;
}

/* log-scale ticks within [lo, hi] (both > 0): decades, else 1-2-5, else 1..9 per decade, whichever first gives
 * at least three; else nice linear values (a range within one decade) */
static int log_ticks(double lo, double hi, double *t, int max)
{
    static const double sets[3][9] = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nsets[3] = {1, 3, 9};
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    for (int s = 0; s < 3; s++) {
        int n = 0;
        for (int e = e0; e <= e1 && n < max; e++)
            for (int k = 0; k < nsets[s] && n < max; k++) {
                double v = sets[s][k] * pow(10, e);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9))
                    t[n++] = v;
            }
        if (n >= 3)
            return n;
    }
    return lin_ticks(lo, hi, t, max);
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* An SVG line plot of the rows' eval_loss against step for the given runs, labelled by names (NULL: the runs'
 * names) and ylabel. */
void celo_report_svg(sbuf *b, const char *title, const celo_plan *plan, const celo_outcome *outs, const int *runs,
                     int n, const char *const *names, const char *ylabel)
{
#define NAME(i) (names ? names[i] : plan->runs[runs[i]].name)
    size_t longest = 0; /* the legend's width follows the longest name (about 7 px a character at 12 px) */
    for (int i = 0; i < n; i++) {
        size_t l = strlen(NAME(i)) + (outs[runs[i]].res.diverged ? 11 : 0);
        longest = l > longest ? l : longest;
    }
    const double pw = 520, ph = 348, L = 72, R = 60 + 7.0 * (double)longest, T = 40, Bm = 52;
    const double W = L + pw + R, H = T + ph + Bm;
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    int logy = 1;
    for (int i = 0; i < n; i++) {
        const celo_outcome *o = &outs[runs[i]];
        for (int k = 0; k < o->log.n; k++) {
            double y = o->log.rows[k].eval_loss;
            if ((double)o->log.rows[k].step > xmax)
                xmax = (double)o->log.rows[k].step;
            if (!isfinite(y))
                continue;
            if (y <= 0)
                logy = 0;
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
        }
    }
    if (!(ymin <= ymax))
        ymin = 0, ymax = 1, logy = 0;
    if (logy && ymax / ymin < 1.2)
        logy = 0;
    double y0, y1; /* the plotted range, in plot units (log10 when logy) */
    if (logy) {
        y0 = log10(ymin), y1 = log10(ymax);
        double pad = 0.04 * (y1 - y0);
        y0 -= pad, y1 += pad;
    } else {
        double pad = ymax > ymin ? 0.05 * (ymax - ymin) : (fabs(ymax) > 0 ? 0.05 * fabs(ymax) : 1);
        y0 = ymin - pad, y1 = ymax + pad;
    }
#define XP(s) (L + pw * (double)(s) / xmax)
#define YP(v) (T + ph * (1 - ((logy ? log10(v) : (v)) - y0) / (y1 - y0)))
    celo_sb_printf(b,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
                   "font-family=\"sans-serif\" font-size=\"12\">\n",
                   W, H, W, H);
    celo_sb_printf(b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    celo_sb_printf(b, "<text x=\"%g\" y=\"%g\" font-size=\"15\" text-anchor=\"middle\">", L + pw / 2, T - 16);
    xml_escape(b, title);
    celo_sb_printf(b, "</text>\n");
    /* grid and ticks */
    double tk[64];
    int nt = lin_ticks(0, xmax, tk, 64);
    for (int i = 0; i < nt; i++) {
        double x = XP(tk[i]);
        celo_sb_printf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e5e5e5\"/>\n", x, T, x, T + ph);
        celo_sb_printf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"black\"/>\n", x, T + ph, x,
                       T + ph + 5);
        celo_sb_printf(b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", x, T + ph + 18, tk[i]);
    }
    nt = logy ? log_ticks(pow(10, y0), pow(10, y1), tk, 64) : lin_ticks(y0, y1, tk, 64);
    for (int i = 0; i < nt; i++) {
        double y = YP(tk[i]);
        if (y < T - 0.5 || y > T + ph + 0.5)
            continue;
        celo_sb_printf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, y, L + pw, y);
        celo_sb_printf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"black\"/>\n", L - 5, y, L, y);
        celo_sb_printf(b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%.3g</text>\n",
                       L - 8, y, tk[i]);
    }
    celo_sb_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, pw,
                   ph);
    celo_sb_printf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", L + pw / 2, H - 14);
    celo_sb_printf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 %g %g)\">%s%s</text>\n",
                   18.0, T + ph / 2, 18.0, T + ph / 2, ylabel, logy ? " (log scale)" : "");
    /* curves */
    for (int i = 0; i < n; i++) {
        const celo_outcome *o = &outs[runs[i]];
        const char *col = palette[i % 10];
        celo_sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        int pts = 0;
        for (int k = 0; k < o->log.n; k++) {
            double y = o->log.rows[k].eval_loss;
            if (!isfinite(y) || (logy && y <= 0))
                continue;
            celo_sb_printf(b, "%s%.1f,%.1f", pts++ ? " " : "", XP(o->log.rows[k].step), YP(y));
        }
        celo_sb_printf(b, "\"/>\n");
        if (pts == 1) /* one point: a dot */
            for (int k = 0; k < o->log.n; k++)
                if (isfinite(o->log.rows[k].eval_loss))
                    celo_sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                                   XP(o->log.rows[k].step), YP(o->log.rows[k].eval_loss), col);
        double ly = T + 10 + 20 * i;
        celo_sb_printf(b, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                       L + pw + 14, ly, L + pw + 40, ly, col);
        celo_sb_printf(b, "<text x=\"%g\" y=\"%g\" dominant-baseline=\"middle\">", L + pw + 46, ly);
        xml_escape(b, NAME(i));
        celo_sb_printf(b, "%s</text>\n", o->res.diverged ? " (diverged)" : "");
    }
#undef XP
#undef YP
#undef NAME
    celo_sb_printf(b, "</svg>\n");
}

static void make_svg(sbuf *b, const char *title, const celo_plan *plan, const celo_outcome *outs, const int *runs,
                     int n)
{
    celo_report_svg(b, title, plan, outs, runs, n, NULL, "eval loss");
}

int celo_report_write_md_svg(const celo_group *g, const sbuf *md, const sbuf *svg, char *err, size_t errlen)
{
    char path[CELO_PATH_MAX + 32];
    const char *dir = g->out[0] ? g->out : ".";
    snprintf(path, sizeof path, "%s/results.md", dir);
    if (celo_write_file(path, md->s, md->len, err, errlen))
        return -1;
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    if (celo_write_file(path, svg->s, svg->len, err, errlen))
        return -1;
    printf("%s %s (%s/results.md, %s/curves.svg):\n%.*s", g->kind, g->name, dir, dir, (int)md->len, md->s);
    fflush(stdout);
    return 0;
}

int celo_report_compare(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, celo_rule_lookup lookup,
                        void *lctx, celo_task_data *const *tds, char *err, size_t errlen)
{
    const char *metric = group_metric(g);
    /* the best run of each optimizer entry (a rule listed twice is two entries; plans built by hand, with every
     * entry 0, get one per rule), in list order */
    int *best = malloc(sizeof(int) * (size_t)(g->count > 0 ? g->count : 1));
    int *cnt = calloc((size_t)(g->count > 0 ? g->count : 1), sizeof(int));
    int nb = 0, rc = -1;
    sbuf md = {0}, svg = {0};
    if (!best || !cnt)
        goto oom;
    for (int k = g->first; k < g->first + g->count; k++) {
        int j = 0;
        while (j < nb && (plan->runs[best[j]].entry != plan->runs[k].entry ||
                          strcmp(plan->runs[best[j]].rule, plan->runs[k].rule)))
            j++;
        if (j == nb) {
            best[nb++] = k;
            cnt[j] = 1;
            continue;
        }
        cnt[j]++;
        if (score(&outs[k], metric) < score(&outs[best[j]], metric))
            best[j] = k;
    }
    celo_sb_printf(&md, "# %s\n\n", g->name);
    celo_sb_printf(&md, "| run | optimizer | hyper-parameters | train loss | eval loss | eval acc | wall time |\n");
    celo_sb_printf(&md, "|---|---|---|---:|---:|---:|---:|\n");
    for (int j = 0; j < nb; j++) {
        const celo_run *r = &plan->runs[best[j]];
        const celo_outcome *o = &outs[best[j]];
        char hp[1024], a[32], b[32], c[32], w[32];
        hp_text(plan, g, r, lookup ? lookup(r->rule, lctx) : NULL, hp, sizeof hp);
        celo_sb_printf(&md, "| ");
        md_escape(&md, r->name);
        if (cnt[j] > 1)
            celo_sb_printf(&md, " (best of %d)", cnt[j]);
        celo_sb_printf(&md, " | ");
        md_escape(&md, r->rule);
        celo_sb_printf(&md, " | ");
        md_escape(&md, hp);
        fmt_num(a, sizeof a, o->res.final_train_loss);
        fmt_num(b, sizeof b, o->res.final_eval_loss);
        if (isnan(o->res.final_eval_acc))
            snprintf(c, sizeof c, "-");
        else
            snprintf(c, sizeof c, "%.2f %%", 100 * o->res.final_eval_acc);
        snprintf(w, sizeof w, o->res.wall_s < 10 ? "%.2f s" : "%.1f s", o->res.wall_s);
        if (o->res.diverged)
            celo_sb_printf(&md, " | diverged at step %lld | - | - | %s |\n", (long long)o->diverged_at, w);
        else
            celo_sb_printf(&md, " | %s | %s | %s | %s |\n", a, b, c, w);
    }
    celo_sb_printf(&md, "\nBest run per optimizer by %s. ", metric);
    /* tasks of the group */
    for (int k = g->first; k < g->first + g->count; k++) {
        int t = plan->runs[k].task, first = 1;
        for (int q = g->first; q < k; q++)
            if (plan->runs[q].task == t)
                first = 0;
        if (!first)
            continue;
        const celo_task *tk = &plan->tasks[t];
        celo_sb_printf(&md, "Task ");
        md_escape(&md, tk->name);
        celo_sb_printf(&md, ", %lld steps", (long long)plan->runs[k].steps);
        if (tk->data == CELO_DATA_KJV && celo_task_data_loaded(tds[t]))
            celo_sb_printf(&md, "; unigram entropy of the training text %.4f nats (a model that ignores context)",
                           celo_task_data_unigram(tds[t]));
        celo_sb_printf(&md, ". ");
    }
    celo_sb_printf(&md, "\n\n![eval loss against step](curves.svg)\n");
    char title[256];
    snprintf(title, sizeof title, "%s: eval loss", g->name);
    make_svg(&svg, title, plan, outs, best, nb);
    if (md.oom || svg.oom)
        goto oom;
    rc = celo_report_write_md_svg(g, &md, &svg, err, errlen);
    goto done;
oom:
    celo_seterr(err, errlen, "compare %s: out of memory", g->name);
done:
    free(best);
    free(cnt);
    free(md.s);
    free(svg.s);
    return rc;
}

/* A train run with a CSV log also gets its loss curve beside it: runs/x.csv -> runs/x.svg. */
int celo_report_run_svg(const celo_plan *plan, int i, const celo_outcome *outs, char *err, size_t errlen)
{
    const celo_run *r = &plan->runs[i];
    if (!r->log[0] || r->group >= 0 || outs[i].log.n == 0)
        return 0;
    char path[CELO_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s", r->log);
    char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        *dot = 0;
    strcat(path, ".svg");
    sbuf svg = {0};
    char title[CELO_NAME_MAX + 16];
    snprintf(title, sizeof title, "%s: eval loss", r->name);
    make_svg(&svg, title, plan, outs, &i, 1);
    int rc =
        svg.oom ? (celo_seterr(err, errlen, "out of memory"), -1) : celo_write_file(path, svg.s, svg.len, err, errlen);
    free(svg.s);
    return rc;
}
