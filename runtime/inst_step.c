/*
 * inst_step.c — a run instance's steps (inst.h): its batches (a pure function of the seed and the step), the
 * halves of a split batch on a model and its replica, the optimizer step of every tensor through the back end,
 * the finiteness checks, a team of threads that lives across the steps of a split-batch run, and evaluation.
 */
#include "inst_internal.h"

#include "clones.h"
#include "distill.h"
#include "errmsg.h"
#include "par.h"
#include "ranks.h"
#include "rng.h"
#include "taskdata.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The permutation of epoch e of [0, n): a Fisher-Yates shuffle driven by stream e of celo_rng under seed, with
 * unbiased bounded integers (Lemire's multiply-and-reject). One 32-bit draw per example, once per epoch: about
 * 30 times cheaper than celo_shuffle_index's Feistel network per index, which took a third of a step of a small
 * MLP. Batch k of a run is perm_{k / per}[(k % per) B ...], a pure function of (seed, k). */
static void epoch_perm(uint64_t seed, int64_t e, int64_t n, int32_t *perm)
{
    celo_rng r;
    celo_rng_init(&r, seed, (uint64_t)e);
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t bound = (uint32_t)(i + 1);
        uint64_t m = (uint64_t)celo_rng_u32(&r) * bound;
        if ((uint32_t)m < bound) {
            uint32_t thr = (uint32_t)(-bound) % bound;
            while ((uint32_t)m < thr)
                m = (uint64_t)celo_rng_u32(&r) * bound;
        }
        int64_t j = (int64_t)(m >> 32);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* the second half of batch b, from example n0 on (x_dim floats per example's x, t_dim per target) */
static celo_batch batch_tail(const celo_batch *b, int n0, int64_t x_dim, int64_t t_dim)
{
    celo_batch h = *b;
    int64_t per = b->seq > 0 ? b->seq : 1; /* labels and tokens per example */
    h.n = b->n - n0;
    if (h.x)
        h.x += n0 * x_dim;
    if (h.target)
        h.target += n0 * t_dim;
    if (h.tokens)
        h.tokens += n0 * per;
    if (h.labels)
        h.labels += n0 * per;
    return h;
}

/* loss and gradient of batch b on model m; 0, or -1 with celo_model_error(m) */
static int model_loss_grad(celo_model *m, const celo_batch *b, float *loss)
{
    celo_model_keep_x(m, 1); /* b->x stays as it is until the next batch: read in place, not copied */
    *loss = celo_model_loss(m, b);
    celo_model_keep_x(m, 0);
    return celo_model_backward(m);
}

/* The bits of a float with its exponent field plus one: an exponent of all ones (Inf, NaN) carries into bit 31.
 * OR-ed over many values, bit 31 says whether any was not finite. */
static inline CELO_ALWAYS_INLINE uint32_t nonfinite_bit(uint32_t u)
{
    return (u & 0x7f800000u) + 0x00800000u;
}

/* g0 = w0 g0 + w1 g1 over [0, n); 1 when every result is finite (all_finite's test, in the same pass) */
CELO_SIMD_CLONES static int combine_halves(float *g0, const float *g1, float w0, float w1, int64_t n)
{
    uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
    for (int64_t i = 0; i < n; i++) {
        union {
            float f;
            uint32_t u;
        } v = {.f = w0 * g0[i] + w1 * g1[i]};
        g0[i] = v.f;
        acc |= nonfinite_bit(v.u);
    }
    return !(acc & 0x80000000u);
}

/* Half h (0 or 1) of batch b: for a dataset task with gather = 1 it first gathers its own examples (rows of idx),
 * so the gathers overlap too; then forward and backward, on the model (h = 0) or the replica (h = 1). */
static int run_half(inst *in, const celo_batch *b, int gather, int h, float *loss)
{
    const celo_dataset *tr = in->T ? NULL : in->data->train;
    int n0 = b->n / 2, n = b->n;
    if (h == 0) {
        celo_batch h0 = *b;
        h0.n = n0;
        if (gather)
            celo_dataset_gather(tr, in->idx, n0, in->bx, in->by, in->bt);
        return model_loss_grad(in->model, &h0, loss);
    }
    celo_batch h1 = batch_tail(b, n0, tr ? tr->dim : 0, tr ? tr->ydim : 0);
    if (gather)
        celo_dataset_gather(tr, in->idx + n0, n - n0, in->bx + (int64_t)n0 * tr->dim, in->by ? in->by + n0 : NULL,
                            in->bt ? in->bt + (int64_t)n0 * tr->ydim : NULL);
    return model_loss_grad(in->replica, &h1, loss);
}

/* Slice w of nw of the combined gradient, (n0 g0 + n1 g1) / n into the model's gradients, in 64-KiB-aligned
 * pieces; 1 when every combined value of the slice is finite. */
static int combine_slice(inst *in, int n, int w, int nw)
{
    int n0 = n / 2;
    float w0 = (float)n0 / (float)n, w1 = (float)(n - n0) / (float)n;
    float *g0 = in->grads, *g1 = celo_model_grads(in->replica);
    int64_t np = celo_model_nparams(in->model);
    int64_t lo = np * w / nw / 16 * 16, hi = w == nw - 1 ? np : np * (w + 1) / nw / 16 * 16;
    return hi > lo ? combine_halves(g0 + lo, g1 + lo, w0, w1, hi - lo) : 1;
}

/* The two halves of a batch at once (run_half), then their gradients combined. *finite: every combined gradient
 * is finite. */
static int split_loss_grad(inst *in, const celo_batch *b, int gather, float *loss, int *finite)
{
    int n0 = b->n / 2, n = b->n;
    float l[2] = {0, 0};
    int r[2] = {0, 0}, ok[2] = {1, 1};
#pragma omp parallel num_threads(2) if (in->nthreads >= 2)
    {
        int w = omp_get_thread_num(), nw = omp_get_num_threads();
        for (int h = w; h < 2; h += nw)
            r[h] = run_half(in, b, gather, h, &l[h]);
#pragma omp barrier
        if (!r[0] && !r[1])
            ok[w] = combine_slice(in, n, w, nw);
    }
    if (r[0] || r[1])
        return r[0] ? -1 : -2;
    *finite = ok[0] && ok[1];
    *loss = (float)(((double)l[0] * n0 + (double)l[1] * (n - n0)) / n);
    return 0;
}

/* Rows [*lo, *hi) of a batch: this rank's shard (celo_inst_shard). */
static void shard_rows(const inst *in, int *lo, int *hi)
{
    *lo = (int)((int64_t)in->B * in->shard / in->shards);
    *hi = (int)((int64_t)in->B * (in->shard + 1) / in->shards);
}

/* Data parallelism over mpirun's ranks: the loss and gradient of this rank's shard of batch b (the task's loss, or
 * a distillation stage's), weighted by its share of the rows (n_r / n), then summed over the ranks: the whole
 * batch's mean gradient and loss on every rank. On 2 ranks this is split_loss_grad's arithmetic exactly (w0 g0 + w1 g1
 * in float, the losses in double); on more, the float sum's order is MPI's. */
static int shard_loss_grad(inst *in, const celo_batch *b, float *loss, char *err, size_t errlen)
{
    const celo_dataset *tr = in->T ? NULL : in->data->train;
    int lo, hi;
    shard_rows(in, &lo, &hi);
    celo_batch s = batch_tail(b, lo, tr ? tr->dim : 0, tr ? tr->ydim : 0);
    s.n = hi - lo;
    float l;
    if (in->distill) { /* a distillation stage's loss on the shard: its teacher runs on the same rows */
        if (celo_distill_loss_grad(in->distill, in->model, &s, &l, err, errlen))
            return -1;
    } else if (model_loss_grad(in->model, &s, &l)) {
        celo_seterr(err, errlen, "run %s: %s", in->run->name, celo_model_error(in->model));
        return -1;
    }
    float w = (float)(hi - lo) / (float)b->n, *g = in->grads;
    int64_t np = in->nparams;
    for (int64_t i = 0; i < np; i++)
        g[i] *= w;
    double lw = (double)l * (hi - lo);
    char e[256];
    if (celo_allreduce_f32(g, np, e, sizeof e) || celo_allreduce_f64(&lw, 1, e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s", in->run->name, e);
        return -1;
    }
    *loss = (float)(lw / b->n);
    return 0;
}

/* Batch k (0-based) of a model's task into b: text windows, or the example indices of a dataset (gathered
 * here unless the batch is split: then each half gathers its own, run_half). */
static void inst_batch(inst *in, int64_t k, celo_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n = in->B;
    if (in->T) {
        celo_text_batch(in->data->text, CELO_SPLIT_TRAIN, in->data_seed, (uint64_t)k, in->B, in->T, in->btok, in->by);
        b->seq = in->T;
        b->tokens = in->btok;
        b->labels = in->by;
        return;
    }
    const celo_dataset *tr = in->data->train;
    int64_t per = tr->n / in->B, e = k / per, off = (k % per) * in->B;
    if (in->perm) {
        if (in->perm_epoch != e) {
            epoch_perm(in->data_seed, e, tr->n, in->perm);
            in->perm_epoch = e;
        }
        for (int j = 0; j < in->B; j++)
            in->idx[j] = in->perm[off + j];
    } else {
        celo_epoch_batch(in->data_seed, tr->n, in->B, e, k % per, in->idx);
    }
    if (in->shards > 1) { /* this rank's rows only, in their places (shard_loss_grad views them) */
        int lo, hi;
        shard_rows(in, &lo, &hi);
        celo_dataset_gather(tr, in->idx + lo, hi - lo, in->bx + (int64_t)lo * tr->dim, in->by ? in->by + lo : NULL,
                            in->bt ? in->bt + (int64_t)lo * tr->ydim : NULL);
    } else if (!in->replica)
        celo_dataset_gather(tr, in->idx, in->B, in->bx, in->by, in->bt);
    b->x = in->bx;
    b->labels = in->by;
    b->target = in->bt;
}

/* Loss of batch k (0-based) and the gradient. Returns 0; -1 with err on a real error (bad input). *finite is 1
 * when the gradients are known to be finite (checked on the way), 0 when not checked. */
static int inst_loss_grad(inst *in, int64_t k, double *loss, int *finite, char *err, size_t errlen)
{
    *finite = 0;
    if (!in->model) {
        *loss = celo_quadratic_loss(in->data->quad, in->qx, in->qg);
        return 0;
    }
    celo_batch b;
    inst_batch(in, k, &b);
    float l;
    if (in->shards > 1) { /* data-parallel over mpirun's ranks (a distillation stage's loss included) */
        if (shard_loss_grad(in, &b, &l, err, errlen))
            return -1;
        *loss = l;
        return 0;
    }
    if (in->distill) { /* a distillation stage's loss (distill.h), on the whole batch (no replica: inst.c) */
        if (celo_distill_loss_grad(in->distill, in->model, &b, &l, err, errlen))
            return -1;
        *loss = l;
        return 0;
    }
    int r = in->replica ? split_loss_grad(in, &b, !in->T, &l, finite) : model_loss_grad(in->model, &b, &l);
    if (r) {
        celo_seterr(err, errlen, "run %s: %s", in->run->name, celo_model_error(r == -2 ? in->replica : in->model));
        return -1;
    }
    *loss = l;
    return 0;
}

static int inst_eval(inst *in, double *loss, double *acc, char *err, size_t errlen)
{
    if (!in->model) {
        *loss = celo_quadratic_loss(in->data->quad, in->qx, NULL);
        *acc = NAN;
        return 0;
    }
    if (celo_model_eval(in->model, &in->eb, in->echunk, loss, acc)) {
        celo_seterr(err, errlen, "run %s: evaluation: %s", in->run->name, celo_model_error(in->model));
        return -1;
    }
    return 0;
}

/* 1 when every value is finite (nonfinite_bit). Runs on every gradient and parameter each step, so it gets the
 * wide vector clones. */
CELO_SIMD_CLONES static int all_finite(const float *x, int64_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)x;
    uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
    for (int64_t i = 0; i < n; i++)
        acc |= nonfinite_bit(u[i]);
    return !(acc & 0x80000000u);
}

/* the lowest index of a tensor whose values in buf (the gradients or the parameters) are not all finite, or -1;
 * the tensors split over threads */
static int first_nonfinite(const inst *in, const float *buf)
{
    int n = in->ntensors, nf = -1;
    if (!celo_par(n > 1 && in->nthreads >= 2)) {
        for (int i = 0; i < n; i++)
            if (!all_finite(buf + inst_tensor(in, i)->offset, inst_tensor(in, i)->numel))
                return i;
        return -1;
    }
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        const celo_param_tensor *pt = inst_tensor(in, i);
        if (!all_finite(buf + pt->offset, pt->numel)) {
#pragma omp critical(celo_first_nonfinite)
            nf = nf < 0 || i < nf ? i : nf;
        }
    }
    return nf;
}

/* The optimizer step of every tensor, through the back end's table. On the CPU, a tensor large enough for
 * celo_step to split over the threads itself (CELO_STEP_SPLIT_MIN elements) runs alone; the smaller ones split
 * over threads, one tensor each; on other back ends the tensors go one after another (the device does the
 * parallel work). Each tensor's update is independent and gives the same values on one thread or in a team, so
 * results do not depend on the split. Returns the lowest index of a tensor whose step failed (its message in
 * msg), or -1; *nonfinite is the lowest index of a tensor whose parameters are not finite after the update, or -1. */
/* tensor i's step: 0 (*fin: its parameters are finite after it), or -1 with the message in e */
static int step_tensor(inst *in, int i, int64_t t, char *e, size_t elen, int *fin)
{
    const celo_param_tensor *pt = inst_tensor(in, i);
    if (in->rw) { /* reparameterized: the rule steps w with s * dL/dp, the model gets w * s */
        float *w = in->rw + pt->offset, *p = in->params + pt->offset, *g = in->grads + pt->offset;
        const float *s = in->rs + pt->offset;
        for (int64_t k = 0; k < pt->numel; k++)
            g[k] *= s[k];
        int r = in->be->step(in->st[i], w, g, in->hp, t, in->nthreads, e, elen);
        for (int64_t k = 0; k < pt->numel; k++)
            p[k] = w[k] * s[k];
        *fin = r == 0 && all_finite(p, pt->numel);
        return r;
    }
    int r = in->be->step(in->st[i], in->params + pt->offset, in->grads + pt->offset, in->hp, t, in->nthreads, e, elen);
    *fin = r == 0 && all_finite(in->params + pt->offset, pt->numel);
    return r;
}

static int update_tensors(inst *in, int64_t t, char *msg, size_t msglen, int *nonfinite)
{
    int n = in->ntensors, failed = -1, nf = -1, cpu = in->be->step_team != NULL;
    char e[256];
    for (int big = 1; big >= 0; big--) {
        if (!celo_par(cpu && !big && n > 1 && in->nthreads >= 2)) { /* in order on this thread */
            for (int i = 0; i < n && failed < 0; i++) {
                int fin;
                if ((inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN) != big || (in->frozen && in->frozen[i]))
                    continue;
                if (step_tensor(in, i, t, e, sizeof e, &fin)) {
                    failed = i;
                    snprintf(msg, msglen, "%s", e);
                } else if (!fin && (nf < 0 || i < nf))
                    nf = i;
            }
            continue;
        }
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            char te[256];
            int fin;
            if ((inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN) != big || (in->frozen && in->frozen[i]))
                continue;
            int r = step_tensor(in, i, t, te, sizeof te, &fin);
#pragma omp critical(celo_update_tensors)
            {
                if (r && (failed < 0 || i < failed)) {
                    failed = i;
                    snprintf(msg, msglen, "%s", te);
                }
                if (!r && !fin && (nf < 0 || i < nf))
                    nf = i;
            }
        }
    }
    *nonfinite = nf;
    return failed;
}

/* ================================ steps ================================ */

/* A rule that reads `loss` gets the step's training loss, the value the run logs for the step (with split batches:
 * the loss of the whole batch), in every tensor's state before the update; tensors w, w + nw, … (a team's share). */
static void feed_loss(inst *in, double loss, int w, int nw)
{
    if (!(in->prog->flags & CELO_PROG_READS_LOSS))
        return;
    for (int i = w; i < in->ntensors; i += nw)
        celo_bstate_set_loss(in->st[i], loss);
}

/* The step's loss and gradients' finiteness (fin: known finite) into o->bad. */
static void check_grads(inst *in, int fin, celo_step_out *o)
{
    o->bad = NULL;
    o->pre = o->post = "";
    if (!isfinite(o->loss))
        o->bad = "the loss";
    int nfg = o->bad || fin ? -1 : first_nonfinite(in, in->grads);
    if (nfg >= 0)
        o->bad = inst_tensor(in, nfg)->name, o->pre = "gradient of ";
}

/* Step t on the calling thread (each part may use threads of its own). 0, or -1 with err. */
static int train_step(inst *in, int64_t t, celo_step_out *o, char *err, size_t errlen)
{
    int fin;
    if (inst_loss_grad(in, t - 1, &o->loss, &fin, err, errlen))
        return -1;
    check_grads(in, fin, o);
    if (o->bad)
        return 0;
    feed_loss(in, o->loss, 0, 1);
    char msg[256];
    int nonfinite, failed = update_tensors(in, t, msg, sizeof msg, &nonfinite);
    if (failed >= 0) {
        celo_seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t,
                    inst_tensor(in, failed)->name, msg);
        return -1;
    }
    if (nonfinite >= 0)
        o->bad = inst_tensor(in, nonfinite)->name, o->post = " after the update";
    return 0;
}

/* A finished step in the running loss and its moving average. */
static void account(inst *in, int64_t t, double loss)
{
    in->step = t;
    in->loss_sum += loss;
    in->loss_n++;
    in->ema = in->ema_n ? EMA_DECAY * in->ema + (1 - EMA_DECAY) * loss : loss;
    in->ema_n++;
}

/* Whether steps of this run go through team_steps: split batches, a CPU back end (the only ones with a team
 * step: the team path keeps the CPU's speed, the others take train_step), and a rule without orthogonalizations
 * (their GEMMs want both threads, which a team's thread 0 does not have). */
static int team_mode(const inst *in, const celo_program *prog)
{
    const char *env = getenv("CELO_TRAIN_TEAM"); /* 0: one OpenMP region per phase (tests, experiments) */
    if (!in->replica || in->shards > 1 || !in->be->step_team || in->rw || in->distill || in->frozen ||
        (env && !strcmp(env, "0")))
        return 0;
    return !celo_program_has_op(prog, CELO_OP_ORTHO);
}

/* Steps in->step + 1 .. t_end of a split-batch run, all inside one team of two threads that lives across the
 * steps. Waking a sleeping thread costs tens of microseconds on a VM (OMP_WAIT_POLICY=passive,
 * runtime/blas_env.c): with an OpenMP region per phase (the halves, the combination, the updates) that was a
 * sixth of an MLP 784-128-10 step; here the threads meet at celo_team barriers, which spin briefly before they
 * sleep. Per step: thread 0 draws the batch; each thread runs one half (run_half); each combines a slice of the
 * gradients; the tensors of at least CELO_STEP_SPLIT_MIN elements update in turn over both threads
 * (celo_step_team), the smaller ones one per thread; each thread checks the parameters it updated; thread 0 does
 * the bookkeeping. Results are those of train_step: every part computes the same values on any split. Stops
 * after t_end, after a step that found a non-finite value (o->bad), or on an error (-1 with err). Progress is
 * reported for every step but the last, which the caller reports after its evaluation. */
static int team_steps(inst *in, int64_t t_end, celo_step_out *o, celo_step_cb cb, void *cb_ctx, char *err,
                      size_t errlen)
{
    celo_team *team = NULL;
    celo_batch b;
    int n = in->B, n0 = in->B / 2, gather = !in->T, rc = 0, stop = 0;
    int r[2] = {0, 0}, ok[2] = {1, 1};
    float l[2] = {0, 0};
    int failed[2], nf[2];
    char msg[2][256], big_err[256];
    int nt = in->ntensors;
#pragma omp parallel num_threads(2) if (in->nthreads >= 2)
    {
        int w = omp_get_thread_num(), nw = omp_get_num_threads();
#pragma omp single
        {
            team = celo_team_new(nw);
            stop = !team;
        }
        for (int64_t t = in->step + 1; !stop; t++) {
            if (w == 0)
                inst_batch(in, t - 1, &b);
            celo_team_wait(team);
            for (int h = w; h < 2; h += nw)
                r[h] = run_half(in, &b, gather, h, &l[h]);
            celo_team_wait(team);
            double loss = ((double)l[0] * n0 + (double)l[1] * (n - n0)) / n;
            if (!r[0] && !r[1]) {
                ok[w] = combine_slice(in, n, w, nw);
                failed[w] = nf[w] = -1;
                feed_loss(in, (float)loss, w, nw); /* the step's loss as logged below (o->loss) */
            }
            celo_team_wait(team);
            int go = !r[0] && !r[1] && isfinite(loss) && ok[0] && (nw < 2 || ok[1]);
            /* updates: the large tensors in turn over the team, the small ones dealt out round-robin */
            for (int i = 0, small = 0; go && i < nt; i++) {
                const celo_param_tensor *pt = inst_tensor(in, i);
                float *p = in->params + pt->offset;
                if (pt->numel >= CELO_STEP_SPLIT_MIN) {
                    if (in->be->step_team(in->st[i], p, in->grads + pt->offset, in->hp, t, team, w, big_err,
                                          sizeof big_err)) {
                        if (w == 0) {
                            failed[0] = i;
                            snprintf(msg[0], sizeof msg[0], "%s", big_err);
                        }
                        break;
                    }
                    int64_t lo = pt->numel * w / nw, hi = pt->numel * (w + 1) / nw;
                    if (nf[w] < 0 && !all_finite(p + lo, hi - lo))
                        nf[w] = i;
                } else if (small++ % nw == w && failed[w] < 0) {
                    if (in->be->step(in->st[i], p, in->grads + pt->offset, in->hp, t, 1, msg[w], sizeof msg[w]))
                        failed[w] = i;
                    else if (nf[w] < 0 && !all_finite(p, pt->numel))
                        nf[w] = i;
                }
            }
            celo_team_wait(team);
            if (w == 0) {
                if (r[0] || r[1]) {
                    celo_seterr(err, errlen, "run %s: %s", in->run->name,
                                celo_model_error(r[0] ? in->model : in->replica));
                    rc = -1;
                } else {
                    o->loss = (float)loss;
                    check_grads(in, go, o);
                    int f = nw > 1 && failed[1] >= 0 && (failed[0] < 0 || failed[1] < failed[0]) ? 1 : 0;
                    int v = nw > 1 && nf[1] >= 0 && (nf[0] < 0 || nf[1] < nf[0]) ? 1 : 0;
                    if (go && failed[f] >= 0) {
                        celo_seterr(err, errlen, "run %s: step %lld: %s: %s", in->run->name, (long long)t,
                                    inst_tensor(in, failed[f])->name, msg[f]);
                        rc = -1;
                    } else {
                        if (go && nf[v] >= 0)
                            o->bad = inst_tensor(in, nf[v])->name, o->post = " after the update";
                        account(in, t, o->loss);
                        if (!o->bad && t < t_end && cb)
                            cb(in, cb_ctx);
                    }
                }
                stop = rc || o->bad || t >= t_end;
            }
            celo_team_wait(team);
        }
    }
    if (!team && !rc) {
        celo_seterr(err, errlen, "run %s: out of memory", in->run->name);
        rc = -1;
    }
    celo_team_free(team);
    return rc;
}

/* ================================ the API: stepping and evaluating ================================ */

/* The context's thread count for the OpenMP regions of this call (the nn layers and GEMMs read the calling
 * thread's OpenMP setting): set on entry, restored on exit. Inside another team's thread, nested regions are
 * inactive anyway and everything runs on that thread. */
static int ctx_enter(inst *in, const celo_ctx *ctx)
{
    int saved = omp_get_max_threads();
    in->nthreads = ctx && ctx->threads > 0 ? ctx->threads : saved;
    if (omp_in_parallel())
        in->nthreads = 1;
    if (in->nthreads != saved)
        omp_set_num_threads(in->nthreads);
    return saved;
}

static void ctx_leave(inst *in, int saved)
{
    if (in->nthreads != saved)
        omp_set_num_threads(saved);
}

celo_ctx celo_ctx_for(const celo_inst *in, int avail)
{
    celo_ctx c = {.threads = avail > 0 ? avail : 1};
    /* one thread unless a step has work to share: a batch big enough to split (a distillation stage's included,
     * which runs it whole), or a tensor that celo_step cuts into chunks */
    int big = in->big_batch;
    for (int i = 0; i < in->ntensors && !big; i++)
        big = inst_tensor(in, i)->numel >= CELO_STEP_SPLIT_MIN;
    if (!big)
        c.threads = 1;
    return c;
}

int celo_inst_steps(celo_inst *in, const celo_ctx *ctx, int64_t t_end, celo_step_out *o, celo_step_cb cb, void *cb_ctx,
                    char *err, size_t errlen)
{
    int saved = ctx_enter(in, ctx), rc = 0;
    memset(o, 0, sizeof *o);
    o->pre = o->post = "";
    if (team_mode(in, in->prog))
        rc = team_steps(in, t_end, o, cb, cb_ctx, err, errlen);
    else
        for (int64_t t = in->step + 1; t <= t_end; t++) {
            if (train_step(in, t, o, err, errlen)) {
                rc = -1;
                break;
            }
            account(in, t, o->loss);
            if (o->bad)
                break;
            if (t < t_end && cb)
                cb(in, cb_ctx);
        }
    ctx_leave(in, saved);
    return rc;
}

int celo_inst_eval(celo_inst *in, const celo_ctx *ctx, double *loss, double *acc, char *err, size_t errlen)
{
    int saved = ctx_enter(in, ctx);
    int rc = inst_eval(in, loss, acc, err, errlen);
    ctx_leave(in, saved);
    return rc;
}
