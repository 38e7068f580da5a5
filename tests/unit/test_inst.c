/*
 * test_inst.c — run instances (runtime/inst.h) many at once: 16 instances of the 8x8 Fashion-MNIST MLP task
 * (64-32-10, batch 64, AdamW with a warmup-cosine schedule), seeds 1..16, stepped in a random interleaving by
 * two threads at once, each give exactly (bit for bit) the per-step losses, final parameters and evaluation of
 * the same run stepped alone on one thread. A clone taken mid-run continues as the original does, and a reset
 * to seed s equals a fresh instance of seed s, also when they step interleaved with others.
 */
#include "inst.h"
#include "inst_internal.h" /* white box: whether an instance cuts its batches in halves (in->replica) */

#include "backend.h"
#include "diag.h"
#include "nn.h"
#include "rules.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

enum { NINST = 16, STEPS = 80, NSCHED = 400 };

static char err[1024];
static rule *adamw;
static module mod;

static const celo_program *lookup(const char *name, void *ctx)
{
    (void)ctx;
    return adamw && !strcmp(name, "adamw@warmup_cosine") ? &adamw->prog : NULL;
}

/* a run's per-step losses, final parameters and final evaluation */
typedef struct {
    double loss[STEPS];
    float *params;
    int64_t np;
    double eval_loss, eval_acc;
} trace;

static void trace_end(trace *tr, celo_inst *in)
{
    int64_t np;
    const float *p = celo_inst_params(in, &np);
    tr->params = malloc((size_t)np * sizeof *p);
    memcpy(tr->params, p, (size_t)np * sizeof *p);
    tr->np = np;
    celo_ctx one = {1};
    if (celo_inst_eval(in, &one, &tr->eval_loss, &tr->eval_acc, err, sizeof err))
        check(0, "eval: %s", err);
}

static int same_trace(const trace *a, const trace *b, int from)
{
    for (int t = from; t < STEPS; t++)
        if (memcmp(&a->loss[t], &b->loss[t], sizeof(double)))
            return 0;
    return a->np == b->np && !memcmp(a->params, b->params, (size_t)a->np * sizeof(float)) &&
           !memcmp(&a->eval_loss, &b->eval_loss, sizeof(double)) && !memcmp(&a->eval_acc, &b->eval_acc, sizeof(double));
}

/* steps from the instance's step to `to`, one call per step, on ctx; losses into tr */
static int step_to(celo_inst *in, const celo_ctx *ctx, int64_t to, trace *tr)
{
    celo_step_out o;
    for (int64_t t = celo_inst_step_count(in) + 1; t <= to; t++) {
        if (celo_inst_steps(in, ctx, t, &o, NULL, NULL, err, sizeof err) || o.bad) {
            check(0, "step %lld: %s", (long long)t, o.bad ? o.bad : err);
            return -1;
        }
        tr->loss[t - 1] = o.loss;
    }
    return 0;
}

/* A described model (the blocks of a .celo `model`) cuts its batches in halves as the built-in kinds do, except
 * with LSTM blocks, as the LSTM kind (runtime/inst.c, split_batches). */
static void test_described_split(const celo_run *run0, celo_task_data *fm8)
{
    celo_block_desc mlp[] = {
        {.kind = CELO_BLOCK_LINEAR, .name = "fc1", .out = 256},
        {.kind = CELO_BLOCK_ACT, .name = "h1", .act = CELO_ACT_RELU},
        {.kind = CELO_BLOCK_LINEAR, .name = "fc2", .out = 10},
    };
    celo_block_desc lstm[] = {
        {.kind = CELO_BLOCK_EMBED, .name = "embed", .vocab = CELO_WIDTH_VOCAB, .out = 32},
        {.kind = CELO_BLOCK_LSTM, .name = "lstm", .out = 128},
        {.kind = CELO_BLOCK_LINEAR, .name = "head", .out = CELO_WIDTH_VOCAB},
    };
    celo_task tasks[2];
    memset(tasks, 0, sizeof tasks);
    snprintf(tasks[0].name, sizeof tasks[0].name, "fm8_blocks");
    tasks[0].data = CELO_DATA_FASHION_MNIST, tasks[0].size = 8, tasks[0].batch = 256;
    tasks[0].nblocks = 3, tasks[0].blocks = mlp;
    snprintf(tasks[1].name, sizeof tasks[1].name, "kjv_blocks");
    tasks[1].data = CELO_DATA_KJV, tasks[1].seq = 32, tasks[1].batch = 32;
    tasks[1].nblocks = 3, tasks[1].blocks = lstm;
    celo_run runs[2] = {*run0, *run0};
    runs[1].task = 1;
    celo_plan plan = {.ntasks = 2, .nruns = 2, .tasks = tasks, .runs = runs};
    celo_task_data *text = celo_task_data_new();
    if (celo_task_data_load(text, &tasks[1], 1, err, sizeof err)) {
        check(0, "loading kjv: %s", err);
        celo_task_data_free(text);
        return;
    }
    celo_inst *a = celo_inst_new(&plan, &runs[0], &adamw->prog, NULL, fm8, err, sizeof err);
    check(a && ((inst *)a)->replica, "a described MLP of 19k parameters at batch 256 cuts its batches in halves%s%s",
          a ? "" : ": ", a ? "" : err);
    celo_inst *b = celo_inst_new(&plan, &runs[1], &adamw->prog, NULL, text, err, sizeof err);
    check(b && !((inst *)b)->replica && celo_inst_step_count(b) == 0,
          "a described model with an LSTM block does not, as the LSTM kind (the vocabulary from the text)%s%s",
          b ? "" : ": ", b ? "" : err);
    celo_inst_free(a);
    celo_inst_free(b);
    celo_task_data_free(text);
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

int main(void)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0 &&
        access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte", R_OK) != 0 &&
        !getenv("CELO_FASHION_MNIST_DIR")) {
        printf("FAIL test_inst: dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)\n");
        return 1;
    }
    if (module_load_string(&mod, "test_inst.celo", "", "stdlib") || diag_count ||
        !(adamw = rule_compile_named(&mod, "adamw@warmup_cosine")) || llvm_jit_rules(&adamw, 1, err, sizeof err)) {
        printf("FAIL test_inst: compiling adamw: %s\n", err);
        return 1;
    }
    celo_task task;
    memset(&task, 0, sizeof task);
    snprintf(task.name, sizeof task.name, "fm8");
    task.data = CELO_DATA_FASHION_MNIST;
    task.size = 8;
    task.model = CELO_MODEL_MLP;
    task.nhidden = 1;
    task.hidden[0] = 32;
    task.act = CELO_ACT_RELU;
    task.loss = CELO_LOSS_CROSS_ENTROPY;
    task.batch = 64;
    celo_run runs[NINST];
    for (int i = 0; i < NINST; i++) {
        celo_run *r = &runs[i];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "fm8_seed%d", i + 1);
        snprintf(r->rule, sizeof r->rule, "adamw@warmup_cosine");
        r->nhp = 2;
        snprintf(r->hp_name[0], sizeof r->hp_name[0], "lr");
        r->hp[0] = 3e-3;
        snprintf(r->hp_name[1], sizeof r->hp_name[1], "warmup");
        r->hp[1] = 10;
        r->steps = STEPS;
        r->seed = (uint64_t)(i + 1);
        r->group = -1;
    }
    celo_plan plan = {.ntasks = 1, .nruns = NINST, .tasks = &task, .runs = runs};
    celo_task_data *td = celo_task_data_new();
    if (celo_task_data_load(td, &task, 1, err, sizeof err)) {
        printf("FAIL test_inst: %s\n", err);
        return 1;
    }
    celo_ctx one = {1};

    /* each run alone, one thread */
    static trace alone[NINST];
    for (int i = 0; i < NINST; i++) {
        celo_inst *in = celo_inst_new(&plan, &runs[i], lookup(runs[i].rule, NULL), NULL, td, err, sizeof err);
        if (!in || step_to(in, &one, STEPS, &alone[i])) {
            printf("FAIL test_inst: run %d alone: %s\n", i, err);
            return 1;
        }
        trace_end(&alone[i], in);
        celo_inst_free(in);
    }
    check(alone[0].loss[STEPS - 1] < alone[0].loss[0] - 0.3, "the 8x8 MLP learns (loss %.4f -> %.4f)", alone[0].loss[0],
          alone[0].loss[STEPS - 1]);
    check(memcmp(alone[0].params, alone[1].params, (size_t)alone[0].np * sizeof(float)) != 0,
          "different seeds give different runs");

    /* 16 at once: a random order of (instance, steps to take) items, dealt out to two threads; an item waits until
     * the instance's earlier items are done */
    celo_inst *ins[NINST];
    static trace inter[NINST];
    for (int i = 0; i < NINST; i++)
        ins[i] = celo_inst_new(&plan, &runs[i], lookup(runs[i].rule, NULL), NULL, td, err, sizeof err);
    int item_inst[NSCHED * 2], item_to[NSCHED * 2], nitems = 0;
    int64_t planned[NINST] = {0};
    for (int left = NINST; left > 0;) {
        int i = (int)rnd(NINST);
        if (planned[i] >= STEPS)
            continue;
        int64_t to = planned[i] + 1 + rnd(4);
        planned[i] = to < STEPS ? to : STEPS;
        item_inst[nitems] = i;
        item_to[nitems++] = (int)planned[i];
        left -= planned[i] == STEPS;
    }
    atomic_int next = 0, done[NINST], errs = 0;
    for (int i = 0; i < NINST; i++)
        atomic_init(&done[i], 0);
#pragma omp parallel num_threads(2)
    for (;;) {
        int q = atomic_fetch_add(&next, 1);
        if (q >= nitems)
            break;
        int i = item_inst[q];
        while (q > 0) { /* wait for this instance's previous item */
            int prev = -1;
            for (int k = q - 1; k >= 0 && prev < 0; k--)
                if (item_inst[k] == i)
                    prev = item_to[k];
            if (prev < 0 || atomic_load(&done[i]) >= prev)
                break;
        }
        celo_step_out o;
        char e[256];
        for (int64_t t = celo_inst_step_count(ins[i]) + 1; t <= item_to[q]; t++) {
            if (celo_inst_steps(ins[i], &one, t, &o, NULL, NULL, e, sizeof e) || o.bad)
                atomic_fetch_add(&errs, 1);
            inter[i].loss[t - 1] = o.loss;
        }
        atomic_store(&done[i], item_to[q]);
    }
    check(errs == 0, "16 interleaved instances step without error");
    int same = 0;
    for (int i = 0; i < NINST; i++) {
        trace_end(&inter[i], ins[i]);
        same += same_trace(&inter[i], &alone[i], 0);
    }
    check(same == NINST,
          "%d of 16 instances stepped in random interleaving on 2 threads (%d items) == alone, bit for bit", same,
          nitems);

    /* clone at step 40: the clone and the original both continue as the run alone does */
    celo_inst *a = celo_inst_new(&plan, &runs[2], &adamw->prog, NULL, td, err, sizeof err);
    static trace ta, tc, tr;
    step_to(a, &one, 40, &ta);
    celo_inst *c = celo_inst_clone(a, err, sizeof err);
    check(c != NULL, "clone: %s", c ? "" : err);
    if (c) {
        memcpy(tc.loss, ta.loss, sizeof ta.loss);
        /* interleaved with each other, on a 2-thread context for the clone */
        celo_ctx two = {2};
        for (int64_t t = 41; t <= STEPS; t++) {
            step_to(a, &one, t, &ta);
            step_to(c, &two, t, &tc);
        }
        trace_end(&ta, a);
        trace_end(&tc, c);
        check(same_trace(&ta, &alone[2], 0), "the original after a clone at step 40 == the run alone");
        check(same_trace(&tc, &alone[2], 40), "the clone taken at step 40 continues as the run alone does");
        celo_inst_free(c);
    }
    /* reset: the instance of seed 3, reset to seed 7 after 40 steps, then interleaved with instance 0 */
    check(celo_inst_reset(a, 7, err, sizeof err) == 0 && celo_inst_step_count(a) == 0, "reset: %s", err);
    celo_inst_reset(ins[0], 1, err, sizeof err);
    static trace t0;
    for (int64_t t = 1; t <= STEPS; t++) {
        step_to(a, &one, t, &tr);
        step_to(ins[0], &one, t, &t0);
    }
    trace_end(&tr, a);
    trace_end(&t0, ins[0]);
    check(same_trace(&tr, &alone[6], 0), "an instance reset to seed 7 == a fresh run of seed 7");
    check(same_trace(&t0, &alone[0], 0), "an instance reset to its own seed after a whole run == the run again");
    celo_inst_free(a);

    /* save and load through a checkpoint in memory: a new instance loaded at step 40 continues as the run alone */
    celo_inst *s = celo_inst_new(&plan, &runs[5], &adamw->prog, NULL, td, err, sizeof err);
    static trace ts, tl;
    step_to(s, &one, 40, &ts);
    celo_ckpt ck;
    celo_ckpt_init(&ck);
    celo_inst *l = celo_inst_new(&plan, &runs[5], &adamw->prog, NULL, td, err, sizeof err);
    int ok = celo_inst_save(s, &ck, err, sizeof err) == 0 && celo_inst_load(l, &ck, "(memory)", err, sizeof err) == 0;
    check(ok, "save and load: %s", ok ? "" : err);
    if (ok) {
        step_to(l, &one, STEPS, &tl);
        trace_end(&tl, l);
        check(same_trace(&tl, &alone[5], 40),
              "an instance loaded from a step-40 checkpoint continues as the run alone");
    }
    celo_ckpt_free(&ck);
    celo_inst_free(s);
    celo_inst_free(l);
    test_described_split(&runs[0], td);

    for (int i = 0; i < NINST; i++) {
        celo_inst_free(ins[i]);
        free(alone[i].params);
        free(inter[i].params);
    }
    free(ts.params), free(ta.params), free(tc.params), free(tr.params), free(t0.params), free(tl.params);
    celo_task_data_free(td);
    rule_free(adamw);
    module_free(&mod);
    llvm_shutdown();
    printf("%s\n", fails ? "test_inst: FAILED" : "test_inst: ok");
    return fails != 0;
}
