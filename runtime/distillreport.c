/*
 * distillreport.c — a distill block's summary (report.h): results.md (each stage's student and its validation
 * loss in nats and bits per character, beside the teacher's, and a sample of each model's text) and curves.svg
 * (the stages' eval loss one after another on one step axis) in the block's out folder.
 */
#include "distill.h"
#include "errmsg.h"
#include "report.h"
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *loss_text(const celo_run *r, char *buf, size_t len)
{
    switch (r->dloss) {
    case CELO_DLOSS_KL: snprintf(buf, len, "kl(temperature = %g)", r->temperature); break;
    case CELO_DLOSS_MIX:
        snprintf(buf, len, "mix(ce = %g, kl = %g, temperature = %g)", r->ce_weight, r->kl_weight, r->temperature);
        break;
    case CELO_DLOSS_ATTENTION: snprintf(buf, len, "attention(%s)", r->dmetric ? "mse" : "cosine"); break;
    default: snprintf(buf, len, "cross_entropy"); break;
    }
    return buf;
}

static const char *init_text(const celo_run *r)
{
    static const char *names[] = {"its own", "copy", "bridge", "qkv"};
    return r->init_ckpt[0] && r->init_map >= 0 && r->init_map <= CELO_INIT_QKV ? names[r->init_map] : names[0];
}

/* the run whose checkpoint is the stages' teacher, -1 when the teacher is a file of no run */
static int teacher_run(const celo_plan *plan, const celo_group *g)
{
    const char *ck = plan->runs[g->first].teacher_ckpt;
    for (int i = 0; ck[0] && i < plan->nruns; i++)
        if (!plan->runs[i].stage && !strcmp(plan->runs[i].checkpoint, ck))
            return i;
    return -1;
}

static void row(sbuf *md, const char *name, const char *model, const char *how, const char *loss, int64_t steps,
                const celo_outcome *o)
{
    celo_sb_printf(md, "| %s | %s | %s | %s | %lld | ", name, model, how, loss, (long long)steps);
    if (!o || !o->ran || isnan(o->res.final_eval_loss)) {
        celo_sb_printf(md, "- | - | - |\n");
        return;
    }
    if (isnan(o->res.final_train_loss)) /* a stage of 0 steps: evaluated, not trained */
        celo_sb_printf(md, "- | ");
    else
        celo_sb_printf(md, "%.4f | ", o->res.final_train_loss);
    celo_sb_printf(md, "%.4f | %.4f |\n", o->res.final_eval_loss, o->res.final_eval_loss / log(2.0));
}

/* "NAME  text": a sample of run i's final weights after a newline, at temperature 1 under seed 1 (sample.h), on
 * one line (its newlines shown as \n), the names padded to width w; or why there is none */
static void sample_line(sbuf *md, const celo_plan *plan, int i, const char *name, int w)
{
    char *text = NULL, e[512] = "";
    size_t len = 0;
    FILE *f = plan->runs[i].checkpoint[0] ? open_memstream(&text, &len) : NULL;
    celo_sample_opts o = {.samples = 1, .temperature = 1, .seed = 1, .quiet = 1};
    int bad = !f || celo_sample(plan, plan->runs[i].checkpoint, &o, f, e, sizeof e);
    if (f)
        fclose(f);
    celo_sb_printf(md, "%-*s  ", w, name);
    if (bad)
        celo_sb_printf(md, "(no sample: %s)", f ? e : "the run keeps no checkpoint");
    for (size_t k = 1; !bad && k + 1 < len; k++) /* past the prompt's newline, up to the last one */
        celo_sb_printf(md, "%s", text[k] == '\n' ? "\\n" : (char[2]){text[k], 0});
    celo_sb_printf(md, "\n");
    free(text);
}

int celo_report_distill(const celo_plan *plan, const celo_group *g, const celo_outcome *outs, char *err, size_t errlen)
{
    sbuf md = {0}, svg = {0};
    int n = g->count, t = teacher_run(plan, g), rc = -1;
    int *runs = malloc(sizeof(int) * (size_t)(n + 1));
    const char **names = malloc(sizeof(char *) * (size_t)(n + 1));
    celo_outcome *shifted = calloc((size_t)plan->nruns, sizeof *shifted);
    if (!runs || !names || !shifted)
        goto oom;
    celo_sb_printf(&md, "# %s\n\n", g->name);
    celo_sb_printf(
        &md, "| stage | student | starts from | loss | steps | train loss | eval loss (nats) | bits per char |\n");
    celo_sb_printf(&md, "|---|---|---|---|---:|---:|---:|---:|\n");
    int k = 0;
    if (t >= 0 && outs[t].ran) {
        row(&md, "teacher", plan->tasks[plan->runs[t].task].name, "its own", "cross_entropy", plan->runs[t].steps,
            &outs[t]);
    }
    int64_t offset = 0;
    for (int i = g->first; i < g->first + n; i++) {
        const celo_run *r = &plan->runs[i];
        char loss[96];
        row(&md, r->name, plan->tasks[r->task].name, init_text(r), loss_text(r, loss, sizeof loss), r->steps, &outs[i]);
        shifted[i] = outs[i]; /* the stage's rows after the stages before it on one axis */
        shifted[i].log.rows = malloc(sizeof(celo_row) * (size_t)(outs[i].log.n > 0 ? outs[i].log.n : 1));
        if (!shifted[i].log.rows)
            goto oom;
        for (int q = 0; q < outs[i].log.n; q++) {
            shifted[i].log.rows[q] = outs[i].log.rows[q];
            shifted[i].log.rows[q].step += offset;
        }
        offset += r->steps;
        runs[k] = i, names[k++] = r->name;
    }
    celo_row flat[2]; /* the teacher's final eval loss as a level line over the stages' steps */
    if (t >= 0 && outs[t].ran && !isnan(outs[t].res.final_eval_loss)) {
        flat[0] = flat[1] = (celo_row){0, NAN, outs[t].res.final_eval_loss, NAN, 0};
        flat[1].step = offset > 0 ? offset : 1;
        shifted[t] = outs[t];
        shifted[t].log = (celo_rowlog){flat, 2, 2};
        runs[k] = t, names[k++] = "teacher (final)";
    }
    celo_sb_printf(&md, "\nEval loss: next-token cross-entropy on the task's validation windows (nats; bits = nats / "
                        "ln 2). Stages run in order, each from the weights the one before it ended with.\n\n"
                        "![eval loss against step, the stages one after another](curves.svg)\n");
    /* the same draws for every model (one seed): a student near its teacher follows the teacher's text a while */
    celo_sb_printf(&md, "\nA sample of each model's text after a newline (`celo sample`: temperature 1, seed 1, the "
                        "same random draws for every model; \\n is a newline):\n\n```\n");
    int w = 7; /* "teacher" */
    for (int i = g->first; i < g->first + n; i++)
        w = (int)strlen(plan->runs[i].name) > w ? (int)strlen(plan->runs[i].name) : w;
    if (t >= 0 && outs[t].ran)
        sample_line(&md, plan, t, "teacher", w);
    for (int i = g->first; i < g->first + n; i++)
        if (outs[i].ran)
            sample_line(&md, plan, i, plan->runs[i].name, w);
    celo_sb_printf(&md, "```\n");
    char title[CELO_NAME_MAX + 32];
    snprintf(title, sizeof title, "%s: eval loss", g->name);
    celo_report_svg(&svg, title, plan, shifted, runs, k, names, "eval loss (nats)");
    if (md.oom || svg.oom)
        goto oom;
    rc = celo_report_write_md_svg(g, &md, &svg, err, errlen);
    goto done;
oom:
    celo_seterr(err, errlen, "distill %s: out of memory", g->name);
done:
    if (shifted)
        for (int i = g->first; i < g->first + n; i++) /* the teacher's rows are on the stack */
            if (shifted[i].log.rows != outs[i].log.rows)
                free(shifted[i].log.rows);
    free(shifted);
    free(runs);
    free(names);
    free(md.s);
    free(svg.s);
    return rc;
}
