/* sample.c — text from a trained character model (sample.h). */
#include "sample.h"

#include "ckpt.h"
#include "distill.h"
#include "errmsg.h"
#include "nn.h"
#include "progress.h"
#include "rng.h"
#include "taskdata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The next token from logits [V]: the largest at temperature 0 (the first of equals), else a draw from
 * softmax(logits / temperature) over the top_k largest (0: all). p [V], idx [V]: scratch. */
static int pick(const float *logits, int V, double temperature, int top_k, celo_rng *r, double *p, int *idx)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best])
            best = v;
    if (temperature <= 0)
        return best;
    int n = V;
    for (int v = 0; v < V; v++)
        idx[v] = v;
    if (top_k > 0 && top_k < V) { /* the top_k largest first, by a partial selection sort (V is a vocabulary) */
        for (int i = 0; i < top_k; i++) {
            int m = i;
            for (int j = i + 1; j < V; j++)
                if (logits[idx[j]] > logits[idx[m]] || (logits[idx[j]] == logits[idx[m]] && idx[j] < idx[m]))
                    m = j;
            int t = idx[i];
            idx[i] = idx[m], idx[m] = t;
        }
        n = top_k;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += p[i] = exp(((double)logits[idx[i]] - logits[best]) / temperature);
    double u = celo_rng_uniform(r) * sum;
    for (int i = 0; i < n; i++) {
        if (u < p[i])
            return idx[i];
        u -= p[i];
    }
    return idx[n - 1]; /* u rounded up to the sum */
}

static int find_task(const celo_plan *plan, const char *name)
{
    for (int i = 0; i < plan->ntasks; i++)
        if (!strcmp(plan->tasks[i].name, name))
            return i;
    return -1;
}

int celo_sample(const celo_plan *plan, const char *ckpt, const celo_sample_opts *o, FILE *out, char *err, size_t errlen)
{
    int rc = -1, S = o->samples > 0 ? o->samples : 1;
    celo_ckpt c;
    celo_ckpt_init(&c);
    celo_task_data *td = NULL;
    celo_model *m = NULL;
    celo_generator *g = NULL;
    int32_t *ids = NULL, *tok = NULL;
    double *p = NULL;
    int *idx = NULL;
    char *text = NULL;
    const char *prompt = o->prompt && *o->prompt ? o->prompt : "\n";
    int P = (int)strlen(prompt);
    if (celo_ckpt_read(&c, ckpt, err, errlen))
        goto done;
    const char *tname = o->task ? o->task : celo_ckpt_get_meta(&c, "task");
    if (!tname) {
        celo_seterr(err, errlen, "%s: names no task (not written by a celo run): say which with --task", ckpt);
        goto done;
    }
    int ti = find_task(plan, tname);
    if (ti < 0) {
        if (o->task)
            celo_seterr(err, errlen, "--task %s: no such task in this file", tname);
        else
            celo_seterr(err, errlen, "%s: its task '%s' is not a task of this file (--task names one that is)", ckpt,
                        tname);
        goto done;
    }
    const celo_task *tk = &plan->tasks[ti];
    if (tk->data != CELO_DATA_KJV) {
        celo_seterr(err, errlen, "task %s: its data is not character text: sampling writes characters", tname);
        goto done;
    }
    if (!(td = celo_task_data_new()) || celo_task_data_load(td, tk, 1, err, errlen) ||
        !(m = celo_model_from_ckpt(plan, ti, &c, ckpt, err, errlen)))
        goto done;
    const celo_text *tx = td->text;
    for (int i = 0; i < P; i++)
        if (tx->stoi[(unsigned char)prompt[i]] < 0) {
            unsigned char ch = (unsigned char)prompt[i];
            celo_seterr(err, errlen, "the prompt's character %d, %s%c%s (byte 0x%02x), is not in %s's text", i + 1,
                        ch >= 32 && ch < 127 ? "'" : "", ch >= 32 && ch < 127 ? ch : '?',
                        ch >= 32 && ch < 127 ? "'" : "", ch, tname);
            goto done;
        }
    /* the last generated character is never fed back: the model sees prompt + tokens - 1 positions. A model with
     * learned positions (gpt) holds at most its context; one without (lstm) any number, by default the task's
     * window. */
    int positions = celo_model_find(m, "wpe.weight") >= 0;
    int n = o->tokens > 0 ? o->tokens : positions ? 0 : tk->seq;
    if (!(g = celo_generator_new(m, S, positions ? 0 : P + n - 1, err, errlen)))
        goto done;
    int ctx = celo_generator_cap(g), room = ctx - P + 1;
    if (P > ctx) {
        celo_seterr(err, errlen, "a prompt of %d characters: more than the model's context of %d (its position table)",
                    P, ctx);
        goto done;
    }
    n = n > 0 ? n : room;
    if (n > room) {
        celo_seterr(err, errlen,
                    "a prompt of %d character%s and %d new one%s need %d positions: the model's context is %d (its "
                    "position table); ask for at most %d new characters",
                    P, P == 1 ? "" : "s", n, n == 1 ? "" : "s", P + n - 1, ctx, room);
        goto done;
    }
    int V = tx->vocab;
    ids = malloc(sizeof *ids * (size_t)S * (size_t)(P + n)), tok = malloc(sizeof *tok * (size_t)S);
    p = malloc(sizeof *p * (size_t)V), idx = malloc(sizeof *idx * (size_t)V);
    text = malloc((size_t)(P + n) + 1);
    celo_rng *rng = malloc(sizeof *rng * (size_t)S);
    if (!ids || !tok || !p || !idx || !text || !rng) {
        free(rng);
        celo_seterr(err, errlen, "out of memory");
        goto done;
    }
    for (int s = 0; s < S; s++)
        celo_rng_init(&rng[s], o->seed, (uint64_t)s);
    double t0 = celo_now_s();
    const float *logits = NULL;
    for (int t = 0; t < P + n - 1 && (t == 0 || logits); t++) {
        for (int s = 0; s < S; s++) {
            int32_t *row = ids + (int64_t)s * (P + n);
            if (t < P)
                row[t] = tx->stoi[(unsigned char)prompt[t]];
            tok[s] = row[t];
        }
        logits = celo_generator_step(g, tok);
        for (int s = 0; s < S && logits && t + 1 >= P; s++)
            ids[(int64_t)s * (P + n) + t + 1] =
                pick(logits + (int64_t)s * V, V, o->temperature, o->top_k, &rng[s], p, idx);
    }
    double dt = celo_now_s() - t0;
    free(rng);
    if (!logits) {
        celo_seterr(err, errlen, "%s", celo_generator_error(g));
        goto done;
    }
    for (int s = 0; s < S; s++) {
        celo_text_decode(tx, ids + (int64_t)s * (P + n), P + n, text);
        if (S > 1)
            fprintf(out, "--- sample %d\n", s + 1);
        fwrite(text, 1, (size_t)(P + n), out);
        fputc('\n', out);
    }
    fflush(out);
    if (!o->quiet) {
        const char *step = celo_ckpt_get_meta(&c, "step");
        fprintf(stderr,
                "celo: %d sample%s of %d characters after a prompt of %d, task %s (%s%s), %d positions in %.1f ms: "
                "%.0f us per position\n",
                S, S == 1 ? "" : "s", n, P, tname, step ? "checkpoint step " : "checkpoint", step ? step : "",
                P + n - 1, 1e3 * dt, 1e6 * dt / (P + n - 1));
    }
    rc = 0;
done:
    celo_generator_free(g);
    celo_model_free(m);
    celo_task_data_free(td);
    celo_ckpt_free(&c);
    free(ids), free(tok), free(p), free(idx), free(text);
    return rc;
}
