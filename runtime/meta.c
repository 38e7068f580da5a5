/* meta.c — the meta-training loop of a `meta` block (meta.h says what it does; docs/meta.md how to use it). */
#include "meta.h"

#include "ckpt.h"
#include "ckpt_pack.h"
#include "errmsg.h"
#include "fileio.h"
#include "pes.h"
#include "progress.h"
#include "ranks.h"
#include "report.h"
#include "rng.h"
#include "theta.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One antithetic pair of inner runs: in[0] trains with θ + ε, in[1] with θ − ε, on the same task. */
typedef struct {
    celo_run run;     /* the pair's run: its seed (the task draw) and steps (the horizon) change at each reset */
    celo_inst *in[2]; /* + and − */
    int64_t counter;  /* the truncation counter: steps since the reset (the first episode starts at an offset) */
    int64_t episode;  /* resets so far */
    int pending;      /* the next slot is a reset */
    double l0;        /* the episode's first loss: the normalizer of tasks without class labels */
    int64_t steps;    /* inner steps of this outer step (both runs) */
    int fail;
    char err[512];
} pair;

typedef struct {
    const celo_run *run; /* the family's run in the plan */
    celo_task_data *td;
    double hi; /* normalized losses lie in [0, hi] */
    int by_l0; /* normalize by the episode's first loss (no class labels) */
    celo_pes *est;
    pair *pairs;
    double *lp, *ln; /* [particles][K] */
    unsigned char *done, *mask;
    double *grad, loss;
} family;

typedef struct {
    const celo_plan *plan;
    const celo_group *g;
    const celo_run *outer;
    const celo_run_opts *opts;
    const celo_backend *be;
    const celo_program *prog, *oprog;
    int nf, np;
    family *fam;
    int64_t n; /* θ's length */
    float *theta, *gbuf, *ohp;
    unsigned char *trainable;
    celo_bprog *obp;
    celo_bstate *ost;
    int pes; /* 1: pes, 0: es */
    int64_t K;
    int rank, nranks; /* under mpirun: pair q is stepped on rank q % nranks (docs/meta.md, "MPI") */
    int shared_err;   /* err is every rank's (celo_ranks_any_failed): rank 0 alone prints it */
    char err[1024];
} meta;

/* Whether pair q (family q / np, particle q % np) is this rank's: only its rank holds its two runs. */
static int owns(const meta *M, int q)
{
    return q % M->nranks == M->rank;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Episode e of pair i of family f: its horizon and task seed, a pure function of the meta seed and (f, i, e),
 * so that a resumed run draws what the uninterrupted one drew. offset: the first episode's counter. */
static void draw_episode(const meta *M, int f, int i, int64_t e, int64_t *horizon, uint64_t *seed, int64_t *offset)
{
    celo_rng r;
    celo_rng_init(&r, mix64(M->outer->seed ^ 0x6d657461ull), ((uint64_t)f << 44) | ((uint64_t)i << 32) | (uint64_t)e);
    double u = celo_rng_uniform(&r);
    int64_t lo = M->g->hmin, hi = M->g->hmax;
    int64_t h = lo == hi ? lo : (int64_t)floor(exp(log((double)lo) + u * (log((double)hi) - log((double)lo))));
    *horizon = h < lo ? lo : h > hi ? hi : h;
    *seed = ((uint64_t)celo_rng_u32(&r) << 32 | celo_rng_u32(&r)) & ((1ull << 53) - 1);
    *offset = M->g->offset > 0 ? (int64_t)floor(celo_rng_uniform(&r) * (double)M->g->offset) : 0;
}

/* learned_optimization's task normalizer (§1.5): clip(L, 0, 1.5 ln C) for C classes; NaN and ±inf give the
 * maximum. Tasks without class labels: the loss over the episode's first loss, clipped to [0, 1.5]. */
static double norm_loss(const family *F, const pair *p, double L)
{
    if (F->by_l0)
        L = p->l0 > 0 && isfinite(p->l0) ? L / p->l0 : NAN;
    return celo_meta_normalize(L, F->hi);
}

static void set_theta(const meta *M, pair *p, const float *eps)
{
    for (int s = 0; s < 2; s++) {
        float *th = celo_inst_theta(p->in[s]);
        for (int64_t q = 0; q < M->n; q++)
            th[q] = s == 0 ? M->theta[q] + eps[q] : M->theta[q] - eps[q];
    }
}

/* A new episode for pair i of family f: the next horizon and task, both runs back to step 0. */
static int reset_pair(const meta *M, int f, int i, pair *p)
{
    int64_t h, off;
    uint64_t seed;
    draw_episode(M, f, i, ++p->episode, &h, &seed, &off);
    p->run.steps = h;
    p->run.seed = seed;
    p->counter = 0;
    p->pending = 0;
    p->l0 = NAN;
    for (int s = 0; s < 2; s++)
        if (celo_inst_reset(p->in[s], seed, p->err, sizeof p->err))
            return -1;
    return 0;
}

/* One training step of both runs: their normalized losses. */
static int step_pair(const meta *M, const family *F, pair *p, double *lp, double *ln)
{
    celo_ctx one = {1};
    celo_step_out o[2];
    for (int s = 0; s < 2; s++)
        if (celo_inst_steps(p->in[s], &one, celo_inst_step_count(p->in[s]) + 1, &o[s], NULL, NULL, p->err,
                            sizeof p->err))
            return -1;
    (void)M;
    if (!(p->l0 == p->l0)) /* the + run's first loss: the parameters are still the task's initialization */
        p->l0 = o[0].loss;
    *lp = norm_loss(F, p, o[0].loss);
    *ln = norm_loss(F, p, o[1].loss);
    p->steps += 2;
    return 0;
}

/* PES: one truncation of K slots of pair i (row i of the family's arrays), episode mechanics of §1.5. */
static int unroll_pes(const meta *M, family *F, int f, int i)
{
    pair *p = &F->pairs[i];
    int64_t K = M->K;
    double *lp = F->lp + i * K, *ln = F->ln + i * K;
    unsigned char *done = F->done + i * K, *mask = F->mask + i * K;
    for (int64_t k = 0; k < K; k++) {
        if (p->pending) { /* the reset slot: loss 0, mask 0 */
            if (reset_pair(M, f, i, p))
                return -1;
            lp[k] = ln[k] = 0, done[k] = 0, mask[k] = 0;
            continue;
        }
        if (step_pair(M, F, p, &lp[k], &ln[k]))
            return -1;
        p->counter++;
        mask[k] = 1;
        done[k] = p->counter >= p->run.steps;
        p->pending = done[k];
    }
    return 0;
}

/* ES: one whole episode of pair i; *Lp, *Ln its mean normalized losses. */
static int unroll_es(const meta *M, family *F, int f, int i, double *Lp, double *Ln)
{
    pair *p = &F->pairs[i];
    if (reset_pair(M, f, i, p))
        return -1;
    double sp = 0, sn = 0;
    for (int64_t k = 0; k < p->run.steps; k++) {
        double a, b;
        if (step_pair(M, F, p, &a, &b))
            return -1;
        sp += a, sn += b;
    }
    *Lp = sp / (double)p->run.steps;
    *Ln = sn / (double)p->run.steps;
    return 0;
}

/* ---- setup ---- */

static int initial_theta(meta *M)
{
    const celo_run *r0 = &M->plan->runs[M->g->first + 1];
    celo_theta th;
    celo_theta_init(&th);
    char e[512];
    int rc = r0->theta[0] ? celo_theta_read(r0->theta, &th, NULL, e, sizeof e)
                          : celo_theta_init_rule(M->prog, M->g->theta_seed, &th, e, sizeof e);
    if (!rc)
        rc = celo_theta_bind(M->prog, &th, r0->theta[0] ? r0->theta : "the rule's initialization", &M->theta, e,
                             sizeof e);
    celo_theta_free(&th);
    if (rc)
        celo_seterr(M->err, sizeof M->err, "meta %s: %s", M->g->name, e);
    return rc ? -1 : 0;
}

static int setup(meta *M, celo_rule_lookup lookup, void *lctx, celo_task_data **tds)
{
    const celo_group *g = M->g;
    char e[512];
    M->outer = &M->plan->runs[g->first];
    M->nf = g->count - 1;
    M->np = g->particles;
    M->pes = !strcmp(g->estimator, "pes");
    M->K = g->truncation;
    M->rank = celo_rank(), M->nranks = celo_nranks();
    if (M->nf < 1 || M->np < 1 || (M->pes && M->K < 1) || !(g->std > 0) || g->hmin < 1 || g->hmax < g->hmin) {
        celo_seterr(M->err, sizeof M->err, "meta %s: a bad plan (families, particles, truncation, std or horizon)",
                    g->name);
        return -1;
    }
    const celo_run *r0 = &M->plan->runs[g->first + 1];
    M->prog = lookup ? lookup(r0->rule, lctx) : NULL;
    M->oprog = lookup ? lookup(M->outer->rule, lctx) : NULL;
    if (!M->prog || !M->oprog) {
        celo_seterr(M->err, sizeof M->err, "meta %s: unknown optimizer '%s'", g->name,
                    M->prog ? M->outer->rule : r0->rule);
        return -1;
    }
    if (M->prog->ntheta == 0) {
        celo_seterr(M->err, sizeof M->err, "meta %s: '%s' has no learned parameters", g->name, r0->rule);
        return -1;
    }
    if (initial_theta(M))
        return -1;
    M->n = M->prog->theta_len;
    M->gbuf = calloc((size_t)M->n, sizeof *M->gbuf);
    M->trainable = calloc((size_t)M->n, 1);
    M->ohp = malloc(sizeof(float) * (size_t)(M->oprog->nhp > 0 ? M->oprog->nhp : 1));
    M->fam = calloc((size_t)M->nf, sizeof *M->fam);
    if (!M->gbuf || !M->trainable || !M->ohp || !M->fam)
        goto oom;
    int64_t ntrain = 0;
    for (int k = 0; k < M->prog->ntheta; k++) {
        const celo_thetaspec *ts = &M->prog->theta[k];
        int64_t numel = 1;
        for (int d = 0; d < ts->ndim; d++)
            numel *= ts->shape[d];
        int on = celo_train_only_match(ts->name, g->train_only);
        memset(M->trainable + ts->offset, on, (size_t)numel);
        ntrain += on ? numel : 0;
    }
    if (!ntrain) {
        celo_seterr(M->err, sizeof M->err, "meta %s: train_only matches no θ tensor of '%s'", g->name, r0->rule);
        return -1;
    }
    /* the outer optimizer: its rule over θ as one vector */
    celo_program_defaults(M->oprog, M->ohp);
    for (int i = 0; i < M->outer->nhp; i++) {
        int k = celo_program_hp_index(M->oprog, M->outer->hp_name[i]);
        if (k >= 0)
            M->ohp[k] = (float)M->outer->hp[i];
    }
    if (!(M->obp = M->be->compile(M->be, M->oprog, e, sizeof e)) ||
        !(M->ost = M->be->state_new(M->obp, 1, &M->n, "theta", M->outer->steps, e, sizeof e))) {
        celo_seterr(M->err, sizeof M->err, "meta %s: the outer optimizer '%s': %s", g->name, M->outer->rule, e);
        return -1;
    }
    /* the families: data, estimator, pairs */
    for (int f = 0; f < M->nf; f++) {
        family *F = &M->fam[f];
        F->run = &M->plan->runs[g->first + 1 + f];
        const celo_task *tk = &M->plan->tasks[F->run->task];
        F->td = tds[F->run->task];
        if (celo_task_data_load(F->td, tk, M->opts->quiet, e, sizeof e)) {
            celo_seterr(M->err, sizeof M->err, "meta %s: %s", g->name, e);
            return -1;
        }
        int classes = tk->loss == CELO_LOSS_CROSS_ENTROPY && tk->out > 1 ? tk->out : 0;
        F->by_l0 = !classes;
        F->hi = classes ? 1.5 * log((double)classes) : 1.5;
        F->est = celo_pes_new(M->np, M->n, g->std);
        F->pairs = calloc((size_t)M->np, sizeof *F->pairs);
        int64_t K = M->pes ? M->K : 1;
        F->lp = calloc((size_t)(M->np * K), sizeof *F->lp);
        F->ln = calloc((size_t)(M->np * K), sizeof *F->ln);
        F->done = calloc((size_t)(M->np * K), 1);
        F->mask = calloc((size_t)(M->np * K), 1);
        F->grad = calloc((size_t)M->n, sizeof *F->grad);
        if (!F->est || !F->pairs || !F->lp || !F->ln || !F->done || !F->mask || !F->grad)
            goto oom;
        for (int i = 0; i < M->np; i++) {
            pair *p = &F->pairs[i];
            int64_t off;
            uint64_t seed;
            p->run = *F->run;
            draw_episode(M, f, i, 0, &p->run.steps, &seed, &off);
            p->run.seed = seed;
            p->counter = M->pes ? off : 0;
            p->l0 = NAN;
            for (int s = 0; s < 2 && owns(M, f * M->np + i); s++)
                if (!(p->in[s] = celo_inst_new_theta(M->plan, &p->run, M->prog, M->be, F->td, M->theta, e, sizeof e))) {
                    celo_seterr(M->err, sizeof M->err, "meta %s: %s", g->name, e);
                    return -1;
                }
        }
    }
    return 0;
oom:
    celo_seterr(M->err, sizeof M->err, "meta %s: out of memory", g->name);
    return -1;
}

static void teardown(meta *M)
{
    for (int f = 0; M->fam && f < M->nf; f++) {
        family *F = &M->fam[f];
        for (int i = 0; F->pairs && i < M->np; i++)
            for (int s = 0; s < 2; s++)
                celo_inst_free(F->pairs[i].in[s]);
        celo_pes_free(F->est);
        free(F->pairs), free(F->lp), free(F->ln), free(F->done), free(F->mask), free(F->grad);
    }
    if (M->ost)
        M->be->state_free(M->ost);
    if (M->obp)
        M->be->prog_free(M->obp);
    free(M->fam), free(M->theta), free(M->gbuf), free(M->trainable), free(M->ohp);
}

/* ---- one outer step ---- */

/* Under mpirun, after each rank unrolled its pairs: every pair's losses on every rank (PES: the rows of lp, ln,
 * done and mask; ES: Lp and Ln), and the inner steps of all. The rows of other ranks' pairs are zeroed first, so
 * the sums are exact copies: every rank then computes the same estimate and the same outer step. */
static int share_losses(meta *M, double *Lp, double *Ln, int64_t *inner)
{
    int npairs = M->nf * M->np;
    char *e = M->err;
    size_t el = sizeof M->err;
    if (M->nranks == 1)
        return 0;
    if (!M->pes) {
        if (celo_allreduce_f64(Lp, npairs, e, el) || celo_allreduce_f64(Ln, npairs, e, el))
            return -1;
    } else
        for (int f = 0; f < M->nf; f++) {
            family *F = &M->fam[f];
            int64_t K = M->K;
            for (int i = 0; i < M->np; i++)
                if (!owns(M, f * M->np + i)) {
                    memset(F->lp + i * K, 0, sizeof(double) * (size_t)K);
                    memset(F->ln + i * K, 0, sizeof(double) * (size_t)K);
                    memset(F->done + i * K, 0, (size_t)K);
                    memset(F->mask + i * K, 0, (size_t)K);
                }
            if (celo_allreduce_f64(F->lp, M->np * K, e, el) || celo_allreduce_f64(F->ln, M->np * K, e, el) ||
                celo_allreduce_or_u8(F->done, M->np * K, e, el) || celo_allreduce_or_u8(F->mask, M->np * K, e, el))
                return -1;
        }
    return celo_allreduce_i64(inner, 1, e, el);
}

/* Every pair's unroll (side by side, one pair per thread), then each family's estimate, their mean (NaN and
 * ±inf entries 0, entries outside train_only 0) into M->gbuf, and the outer step. *loss: the reported
 * meta-loss (NaN/inf: 20, as the recipe reports it), *gnorm: the norm of the gradient applied. */
static int outer_step(meta *M, int64_t t, double *loss, double *gnorm, int64_t *inner_steps)
{
    for (int f = 0; f < M->nf; f++)
        celo_pes_draw(M->fam[f].est, mix64(M->outer->seed ^ (0x9e37ull * (uint64_t)(f + 1))), t);
    int npairs = M->nf * M->np, fail = 0, nown = (npairs - M->rank + M->nranks - 1) / M->nranks;
    double *Lp = calloc((size_t)npairs, sizeof *Lp), *Ln = calloc((size_t)npairs, sizeof *Ln);
    if (!Lp || !Ln) {
        free(Lp), free(Ln);
        celo_seterr(M->err, sizeof M->err, "meta %s: out of memory", M->g->name);
        return -1;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < nown; j++) { /* this rank's pairs: all of them without mpirun */
        int q = M->rank + j * M->nranks, f = q / M->np, i = q % M->np;
        family *F = &M->fam[f];
        pair *p = &F->pairs[i];
        p->steps = 0;
        if (M->pes) {
            set_theta(M, p, celo_pes_eps(F->est, i));
            p->fail = unroll_pes(M, F, f, i) != 0;
        } else { /* θ± survive the episode's reset (celo_inst_reset keeps an instance's θ) */
            set_theta(M, p, celo_pes_eps(F->est, i));
            p->fail = unroll_es(M, F, f, i, &Lp[q], &Ln[q]) != 0;
        }
    }
    *inner_steps = 0;
    for (int q = M->rank; q < npairs; q += M->nranks) {
        pair *p = &M->fam[q / M->np].pairs[q % M->np];
        *inner_steps += p->steps;
        if (p->fail && !fail) {
            fail = 1;
            celo_seterr(M->err, sizeof M->err, "meta %s: %s", M->g->name, p->err);
        }
    }
    if (celo_ranks_any_failed(fail, M->err, sizeof M->err) || share_losses(M, Lp, Ln, inner_steps)) {
        M->shared_err = 1;
        free(Lp), free(Ln);
        return -1;
    }
    double lsum = 0;
    for (int f = 0; !fail && f < M->nf; f++) {
        family *F = &M->fam[f];
        int rc = M->pes ? celo_pes_estimate(F->est, (int)M->K, F->lp, F->ln, F->done, F->mask, F->grad, &F->loss)
                        : celo_es_estimate(F->est, Lp + f * M->np, Ln + f * M->np, F->grad, &F->loss);
        if (rc) {
            fail = 1;
            celo_seterr(M->err, sizeof M->err, "meta %s: the estimator failed", M->g->name);
        }
        lsum += F->loss;
    }
    free(Lp), free(Ln);
    if (fail)
        return -1;
    *loss = lsum / M->nf;
    if (!isfinite(*loss))
        *loss = 20;
    double ss = 0;
    for (int64_t k = 0; k < M->n; k++) {
        double s = 0;
        for (int f = 0; f < M->nf; f++)
            s += M->fam[f].grad[k];
        s /= M->nf;
        if (!isfinite(s) || !M->trainable[k])
            s = 0;
        M->gbuf[k] = (float)s;
        ss += s * s;
    }
    *gnorm = sqrt(ss);
    char e[512];
    if (M->be->step(M->ost, M->theta, M->gbuf, M->ohp, t, 1, e, sizeof e)) {
        celo_seterr(M->err, sizeof M->err, "meta %s: the outer step: %s", M->g->name, e);
        return -1;
    }
    return 0;
}

/* ---- checkpoints: one safetensors file ----
 * "theta", the outer optimizer's state (opt.theta.*), per family f and particle i the accumulator "f/i/xi"
 * and both runs' own checkpoints (celo_inst_save) under "f/i/+/" and "f/i/-/", with the pair's counters in the
 * metadata "f/i/pair" and the outer step in "meta.step". */

/* This rank's pairs as bytes (all pairs without mpirun): per pair its index q, its counters (the "f/i/pair"
 * line) and both runs' own checkpoints (celo_inst_save, packed: ckpt_pack.h), each record padded to 8 bytes so
 * that records start 8-byte aligned in the ranks' bytes one after another (the floats stay aligned). */
static int pack_pairs(meta *M, sbuf *b, char *e, size_t el)
{
    for (int q = M->rank; q < M->nf * M->np; q += M->nranks) {
        pair *p = &M->fam[q / M->np].pairs[q % M->np];
        char val[256];
        snprintf(val, sizeof val, "%" PRId64 " %" PRId64 " %d %" PRIu64 " %" PRId64 " %a", p->counter, p->episode,
                 p->pending, p->run.seed, p->run.steps, p->l0);
        celo_pack_i32(b, q);
        celo_pack_str(b, val);
        for (int s = 0; s < 2; s++) {
            celo_ckpt sub;
            celo_ckpt_init(&sub);
            int bad = celo_inst_save(p->in[s], &sub, e, el);
            if (!bad)
                celo_ckpt_pack(&sub, b);
            celo_ckpt_free(&sub);
            if (bad)
                return -1;
        }
        while (b->len % 8)
            celo_sb_put(b, "", 1);
    }
    if (b->oom) {
        celo_seterr(e, el, "out of memory");
        return -1;
    }
    return 0;
}

/* Every rank's pairs to rank 0 (celo_gather_bytes; without mpirun, this rank's own), which writes the file:
 * the same bytes whatever the number of ranks. Every rank calls it; 0, or -1 with e (on every rank when the
 * failure was a rank's packing; on rank 0 alone when it was the file). */
static int save_ckpt(meta *M, int64_t t, char *e, size_t el)
{
    int npairs = M->nf * M->np, rc = -1;
    sbuf b = {0};
    unsigned char *all = NULL;
    size_t alllen = 0;
    int bad = pack_pairs(M, &b, e, el);
    if (celo_gather_bytes(bad || !b.s ? "" : b.s, bad || !b.s ? 0 : b.len, &all, &alllen, bad ? NULL : e, bad ? 0 : el))
        bad = 1;
    free(b.s);
    if (celo_ranks_any_failed(bad, e, el)) {
        M->shared_err = 1;
        free(all);
        return -1;
    }
    if (M->rank != 0)
        return 0;
    celo_ckpt c;
    celo_ckpt_init(&c);
    const unsigned char **rec = calloc((size_t)npairs, sizeof *rec), *p = all, *end = all + alllen;
    const char **val = calloc((size_t)npairs, sizeof *val);
    if (!rec || !val) {
        celo_seterr(e, el, "out of memory");
        goto done;
    }
    /* the records, by pair: rank r's bytes hold pairs r, r + nranks, ... */
    while (p < end) {
        int32_t q;
        if (celo_unpack_i32(&p, end, &q) || q < 0 || q >= npairs || rec[q] || celo_unpack_str(&p, end, &val[q]))
            goto malformed;
        rec[q] = p;
        for (int s = 0; s < 2; s++) {
            celo_ckpt skip;
            if (celo_ckpt_unpack(&p, end, &skip))
                goto malformed;
            celo_ckpt_free(&skip);
        }
        p += (8 - (uintptr_t)p % 8) % 8; /* the record's padding */
    }
    char key[512];
    celo_state *ohost = M->be->state_get(M->ost, e, el);
    if (!ohost || celo_ckpt_add(&c, "theta", M->theta, 1, &M->n, e, el) ||
        celo_ckpt_add_state(&c, "theta", ohost, e, el) || celo_ckpt_set_meta_i64(&c, "meta.step", t, e, el) ||
        celo_ckpt_set_meta(&c, "meta.name", M->g->name, e, el))
        goto done;
    for (int q = 0; q < npairs; q++) {
        int f = q / M->np, i = q % M->np;
        if (!rec[q])
            goto malformed;
        snprintf(key, sizeof key, "%d/%d/xi", f, i);
        if (celo_ckpt_add(&c, key, celo_pes_xi(M->fam[f].est, i), 1, &M->n, e, el))
            goto done;
        snprintf(key, sizeof key, "%d/%d/pair", f, i);
        if (celo_ckpt_set_meta(&c, key, val[q], e, el))
            goto done;
        const unsigned char *r = rec[q];
        for (int s = 0; s < 2; s++) {
            celo_ckpt sub;
            if (celo_ckpt_unpack(&r, end, &sub))
                goto malformed;
            int fail = 0;
            for (int k = 0; !fail && k < sub.ntensor; k++) {
                const celo_ckpt_tensor *x = &sub.tensor[k];
                snprintf(key, sizeof key, "%d/%d/%c/%s", f, i, s ? '-' : '+', x->name);
                fail = celo_ckpt_add(&c, key, x->data, x->ndim, x->shape, e, el);
            }
            for (int k = 0; !fail && k < sub.nmeta; k++) {
                snprintf(key, sizeof key, "%d/%d/%c/%s", f, i, s ? '-' : '+', sub.meta[k].key);
                fail = celo_ckpt_set_meta(&c, key, sub.meta[k].value, e, el);
            }
            celo_ckpt_free(&sub); /* its tensors' data stays in `all` */
            if (fail)
                goto done;
        }
    }
    rc = celo_make_parents(M->outer->checkpoint, e, el) || celo_ckpt_write(&c, M->outer->checkpoint, e, el) ? -1 : 0;
    goto done;
malformed:
    celo_seterr(e, el, "the ranks' pairs arrived malformed");
done:
    celo_ckpt_free(&c);
    free(rec), free(val), free(all);
    return rc;
}

/* The part of checkpoint c under prefix, as a checkpoint of its own (names without the prefix; data in c). */
static int sub_ckpt(const celo_ckpt *c, const char *prefix, celo_ckpt *sub)
{
    size_t pl = strlen(prefix);
    celo_ckpt_init(sub);
    for (int k = 0; k < c->ntensor; k++)
        if (!strncmp(c->tensor[k].name, prefix, pl)) {
            if (sub->ntensor == sub->ntensor_cap) {
                int cap = sub->ntensor_cap ? 2 * sub->ntensor_cap : 16;
                celo_ckpt_tensor *nt = realloc(sub->tensor, (size_t)cap * sizeof *nt);
                if (!nt)
                    return -1;
                sub->tensor = nt, sub->ntensor_cap = cap;
            }
            celo_ckpt_tensor *x = &sub->tensor[sub->ntensor];
            *x = c->tensor[k];
            if (!(x->name = strdup(c->tensor[k].name + pl)))
                return -1;
            sub->ntensor++;
        }
    for (int k = 0; k < c->nmeta; k++)
        if (!strncmp(c->meta[k].key, prefix, pl) &&
            celo_ckpt_set_meta(sub, c->meta[k].key + pl, c->meta[k].value, NULL, 0))
            return -1;
    return 0;
}

/* Continues from the checkpoint: *t0 = the last outer step it holds. 0, or -1 with e. */
static int load_ckpt(meta *M, int64_t *t0, char *e, size_t el)
{
    const char *path = M->outer->checkpoint;
    celo_ckpt c;
    celo_ckpt_init(&c);
    int rc = -1;
    char key[512];
    if (celo_ckpt_read(&c, path, e, el))
        return -1;
    const char *nm = celo_ckpt_get_meta(&c, "meta.name");
    if (!nm || strcmp(nm, M->g->name)) {
        celo_seterr(e, el, "%s: not a checkpoint of meta '%s'", path, M->g->name);
        goto done;
    }
    celo_state *ohost = M->be->state_get(M->ost, e, el);
    if (celo_ckpt_meta_i64(&c, "meta.step", t0, e, el) || celo_ckpt_load(&c, "theta", M->theta, 1, &M->n, e, el) ||
        !ohost || celo_ckpt_load_state(&c, "theta", ohost, e, el))
        goto done;
    ohost->t = *t0;
    if (M->be->state_put(M->ost, e, el))
        goto done;
    for (int q = 0; q < M->nf * M->np; q++) {
        int f = q / M->np, i = q % M->np;
        pair *p = &M->fam[f].pairs[i];
        snprintf(key, sizeof key, "%d/%d/pair", f, i);
        const char *v = celo_ckpt_get_meta(&c, key);
        uint64_t seed;
        int64_t steps;
        if (!v || sscanf(v, "%" SCNd64 " %" SCNd64 " %d %" SCNu64 " %" SCNd64 " %la", &p->counter, &p->episode,
                         &p->pending, &seed, &steps, &p->l0) != 6) {
            celo_seterr(e, el, "%s: no valid '%s' (a checkpoint of another meta block?)", path, key);
            goto done;
        }
        p->run.seed = seed, p->run.steps = steps;
        snprintf(key, sizeof key, "%d/%d/xi", f, i);
        if (celo_ckpt_load(&c, key, celo_pes_xi(M->fam[f].est, i), 1, &M->n, e, el))
            goto done;
        for (int s = 0; s < 2 && owns(M, q); s++) { /* every rank reads the file, and restores its own pairs */
            celo_ckpt sub;
            snprintf(key, sizeof key, "%d/%d/%c/", f, i, s ? '-' : '+');
            int bad = sub_ckpt(&c, key, &sub) || celo_inst_reset(p->in[s], seed, e, el) ||
                      celo_inst_load(p->in[s], &sub, path, e, el);
            celo_ckpt_free(&sub);
            if (bad)
                goto done;
        }
    }
    rc = 0;
done:
    celo_ckpt_free(&c);
    return rc;
}

/* ---- the log: outer step, meta-loss, gradient norm, inner steps/s, wall seconds ---- */

typedef struct {
    char *text;
    size_t len, cap;
} textbuf;

static int tb_add(textbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nt = realloc(b->text, cap);
        if (!nt)
            return -1;
        b->text = nt, b->cap = cap;
    }
    memcpy(b->text + b->len, s, n + 1);
    b->len += n;
    return 0;
}

/* On --resume: the rows of the existing log up to outer step t0 (a later row was written after the checkpoint). */
static int keep_rows(textbuf *b, const char *path, int64_t t0)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        long long st;
        if (sscanf(line, "%lld,", &st) == 1 && st > t0)
            break;
        if (sscanf(line, "%lld,", &st) == 1 && tb_add(b, line)) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* The meta-loss curve beside the log: runs/x.csv -> runs/x.svg (rows: outer step, meta-loss). */
static int write_curve(const meta *M, const textbuf *log, char *e, size_t el)
{
    celo_outcome o;
    memset(&o, 0, sizeof o);
    o.ran = 1;
    const char *p = log->text ? strchr(log->text, '\n') : NULL; /* after the header */
    while (p && p[1]) {
        long long st;
        double ml;
        if (sscanf(p + 1, "%lld,%lf", &st, &ml) == 2 &&
            celo_rowlog_add(&o.log, (celo_row){.step = st, .eval_loss = ml, .train_loss = ml}))
            break;
        p = strchr(p + 1, '\n');
    }
    char path[CELO_PATH_MAX + 8], title[CELO_NAME_MAX + 32];
    snprintf(path, sizeof path, "%s", M->outer->log);
    char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        *dot = 0;
    strcat(path, ".svg");
    snprintf(title, sizeof title, "%s: meta-loss", M->g->name);
    sbuf svg = {0};
    int zero = 0;
    const char *name = "meta-loss (mean normalized training loss)";
    celo_report_svg(&svg, title, M->plan, &o, &zero, 1, &name, "meta-loss");
    int rc = svg.oom ? (celo_seterr(e, el, "out of memory"), -1) : celo_write_file(path, svg.s, svg.len, e, el);
    free(svg.s);
    celo_rowlog_free(&o.log);
    return rc;
}

static int write_theta(const meta *M, char *e, size_t el)
{
    celo_theta th;
    celo_theta_init(&th);
    int rc = 0;
    for (int k = 0; !rc && k < M->prog->ntheta; k++) {
        const celo_thetaspec *ts = &M->prog->theta[k];
        int64_t shape[4];
        for (int d = 0; d < ts->ndim; d++)
            shape[d] = ts->shape[d];
        rc = celo_theta_add(&th, ts->name, ts->ndim, shape, M->theta + ts->offset, e, el);
    }
    if (!rc)
        rc = celo_make_parents(M->g->out, e, el) || celo_theta_write(M->g->out, &th, e, el);
    celo_theta_free(&th);
    return rc ? -1 : 0;
}

int celo_meta_execute(const celo_plan *plan, const celo_group *g, celo_rule_lookup lookup, void *lookup_ctx,
                      celo_task_data **tds, const celo_run_opts *opts)
{
    meta M;
    memset(&M, 0, sizeof M);
    M.plan = plan, M.g = g, M.opts = opts;
    M.be = opts->backend ? opts->backend : celo_backend_cpu();
    textbuf log = {0};
    int rc = -1;
    char e[1024];
    int64_t t0 = 0;
    if (setup(&M, lookup, lookup_ctx, tds))
        goto fail;
    const celo_run *o = M.outer;
    if (opts->resume && o->checkpoint[0] && access(o->checkpoint, F_OK) == 0) {
        if (load_ckpt(&M, &t0, e, sizeof e)) {
            celo_seterr(M.err, sizeof M.err, "meta %s: %s", g->name, e);
            goto fail;
        }
        if (!opts->quiet)
            fprintf(stderr, "meta %s: resumed from %s at outer step %lld\n", g->name, o->checkpoint, (long long)t0);
    }
    if (o->log[0] && (tb_add(&log, "step,meta_loss,grad_norm,inner_steps_per_s,wall_s\n") ||
                      (t0 > 0 && keep_rows(&log, o->log, t0))))
        goto oom;
    char trunc[48], ranks[64] = "";
    if (M.nranks > 1)
        snprintf(ranks, sizeof ranks, " per rank x %d ranks (mpirun)", M.nranks);
    snprintf(trunc, sizeof trunc, "truncation %lld, ", (long long)M.K);
    if (!opts->quiet)
        fprintf(stderr,
                "meta %s: θ of '%s' (%lld values), %d famil%s x %d antithetic pairs, %s(%sstd %g), "
                "horizons %lld..%lld, outer %s, %lld steps, %d threads%s\n",
                g->name, M.prog->name, (long long)M.n, M.nf, M.nf == 1 ? "y" : "ies", M.np, g->estimator,
                M.pes ? trunc : "", g->std, (long long)g->hmin, (long long)g->hmax, o->rule, (long long)o->steps,
                celo_threads(), ranks);
    double wall0 = celo_now_s(), last = 0;
    int64_t tend = opts->stop_at > 0 && opts->stop_at < o->steps ? opts->stop_at : o->steps;
    for (int64_t t = t0 + 1; t <= tend; t++) {
        double ts = celo_now_s(), loss, gnorm;
        int64_t inner;
        if (outer_step(&M, t, &loss, &gnorm, &inner))
            goto fail;
        double now = celo_now_s(), rate = (double)inner / (now - ts > 0 ? now - ts : 1e-9);
        if (o->log[0]) {
            char row[256];
            snprintf(row, sizeof row, "%lld,%.9g,%.9g,%.6g,%.3f\n", (long long)t, loss, gnorm, rate, now - wall0);
            if (tb_add(&log, row))
                goto oom;
        }
        int ck = o->checkpoint[0] && ((o->checkpoint_every && t % o->checkpoint_every == 0) || t == tend);
        if (ck && o->log[0] && M.rank == 0 && celo_write_file(o->log, log.text, log.len, e, sizeof e)) {
            celo_seterr(M.err, sizeof M.err, "meta %s: %s", g->name, e);
            goto fail;
        }
        if (ck && save_ckpt(&M, t, e, sizeof e)) { /* every rank: they send rank 0 their pairs */
            celo_seterr(M.err, sizeof M.err, "meta %s: checkpoint: %s", g->name, e);
            goto fail;
        }
        if (!opts->quiet && (now - last >= 2.0 || t == tend)) {
            last = now;
            char eta[32];
            double per = (now - wall0) / (double)(t - t0);
            celo_fmt_time(per * (double)(tend - t), eta, sizeof eta);
            fprintf(stderr, "meta %s: step %lld/%lld  meta-loss %.4f  |grad| %.3g  %.0f inner steps/s  ETA %s\n",
                    g->name, (long long)t, (long long)o->steps, loss, gnorm, rate, eta);
        }
    }
    if (o->log[0] && M.rank == 0 &&
        (celo_write_file(o->log, log.text, log.len, e, sizeof e) || write_curve(&M, &log, e, sizeof e))) {
        celo_seterr(M.err, sizeof M.err, "meta %s: %s", g->name, e);
        goto fail;
    }
    if (tend == o->steps && M.rank == 0) {
        if (write_theta(&M, e, sizeof e)) {
            celo_seterr(M.err, sizeof M.err, "meta %s: %s", g->name, e);
            goto fail;
        }
        if (!opts->quiet)
            fprintf(stderr, "meta %s: θ written to %s\n", g->name, g->out);
    }
    rc = 0;
    goto done;
oom:
    celo_seterr(M.err, sizeof M.err, "meta %s: out of memory", g->name);
fail:
    if (M.rank == 0 || !M.shared_err)
        fprintf(stderr, "error: %s\n", M.err);
done:
    free(log.text);
    teardown(&M);
    return rc;
}
