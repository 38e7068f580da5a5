/*
 * test_train.c — executing plans (runtime/plan.h, plan.c, train.c) on plans built by hand, with stdlib rules
 * JIT-compiled through the compiler library: the text form round trips and rejects bad input with one line;
 * sgd and adamw lower the loss of a teacher MLP; a run resumed from a checkpoint gives the CSV and parameters
 * of an uninterrupted run bit for bit, also after a SIGKILL of a child process (whose CSV and checkpoint stay whole);
 * NaN/Inf stops a run naming the step and the tensor; sweeps, compare tables and SVG plots; checkpoint errors (corrupt,
 * another run, another model); hyper-parameter errors. With the data installed: Fashion-MNIST 8x8 MLP 64-32-10 speed
 * (steps/s), and a KJV language model.
 */
#include "plan.h"

#include "backend.h"
#include "ckpt.h"
#include "diag.h"
#include "nn.h"
#include "rules.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];
static char err[1024];

static int one_line(const char *s)
{
    return *s && strchr(s, '\n') == NULL;
}

/* ---- rules: stdlib sgd and adamw, a rule without lr, and sgd compiled with each stdlib schedule, JIT-compiled ---- */
#define NRULES 6
static const char *const rule_names[NRULES] = {"sgd", "adamw", "nolr", "sgd@cosine", "sgd@warmup_cosine", "sgd@linear"};
static rule *rules[NRULES];
static module mod;

static const celo_program *lookup(const char *name, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < NRULES; i++)
        if (rules[i] && !strcmp(name, rule_names[i]))
            return &rules[i]->prog;
    return NULL;
}

static int load_rules(void)
{
    const char *src = "optimizer nolr(step = 0.1) {\n    p -= step * g;\n}\n";
    if (module_load_string(&mod, "test_train.celo", src, "stdlib") || diag_count)
        return -1;
    for (int i = 0; i < NRULES; i++)
        if (!(rules[i] = rule_compile_named(&mod, rule_names[i])))
            return -1;
    if (llvm_jit_rules(rules, NRULES, err, sizeof err)) {
        printf("jit: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- plans built by hand ---- */
static celo_task teacher_task(const char *name, int hidden)
{
    celo_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.data = CELO_DATA_TEACHER;
    t.teacher_in = 16;
    t.teacher_out = 4;
    t.teacher_hidden = 32;
    t.teacher_n = 4096;
    t.model = CELO_MODEL_MLP;
    t.act = CELO_ACT_RELU;
    t.nhidden = 1;
    t.hidden[0] = hidden;
    t.loss = CELO_LOSS_CROSS_ENTROPY;
    t.batch = 32;
    return t;
}

static celo_run make_run(const char *name, int task, const char *rulename, double lr, int64_t steps)
{
    celo_run r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.rule, sizeof r.rule, "%s", rulename);
    r.task = task;
    r.nhp = 1;
    snprintf(r.hp_name[0], sizeof r.hp_name[0], "lr");
    r.hp[0] = lr;
    r.steps = steps;
    r.seed = 7;
    r.group = -1;
    return r;
}

static char *path_in_tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

/* The CSV without its wall_s column. */
static char *csv_losses(const char *path)
{
    char *s = read_text(path);
    if (!s)
        return NULL;
    char *o = s;
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *comma = end;
        while (comma > p && *comma != ',')
            comma--;
        size_t n = (size_t)(comma - p);
        memmove(o, p, n);
        o += n;
        *o++ = '\n';
        p = nl ? nl + 1 : end;
    }
    *o = 0;
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

/* The tensors of two checkpoints are the same, bit for bit. */
static int same_tensors(const char *a, const char *b)
{
    celo_ckpt ca, cb;
    celo_ckpt_init(&ca);
    celo_ckpt_init(&cb);
    int ok = celo_ckpt_read(&ca, a, err, sizeof err) == 0 && celo_ckpt_read(&cb, b, err, sizeof err) == 0 &&
             ca.ntensor == cb.ntensor && ca.ntensor > 0;
    for (int i = 0; ok && i < ca.ntensor; i++) {
        const celo_ckpt_tensor *x = &ca.tensor[i], *y = celo_ckpt_find(&cb, x->name);
        ok = y && y->n == x->n && memcmp(x->data, y->data, (size_t)x->n * 4) == 0;
    }
    celo_ckpt_free(&ca);
    celo_ckpt_free(&cb);
    return ok;
}

/* ================================ the text form ================================ */

static void fill_sample_plan(celo_plan *p)
{
    memset(p, 0, sizeof *p);
    p->ntasks = 2, p->nruns = 3, p->ngroups = 2;
    p->tasks = calloc(2, sizeof *p->tasks);
    p->runs = calloc(3, sizeof *p->runs);
    p->groups = calloc(2, sizeof *p->groups);
    p->tasks[0] = teacher_task("teach", 32);
    /* a described model: every field of a block, a vocabulary width, an empty input and GPT-2 stds */
    celo_task *t0 = &p->tasks[0];
    t0->nblocks = 3;
    t0->blocks = calloc(3, sizeof *t0->blocks);
    t0->blocks[0] = (celo_block_desc){.kind = CELO_BLOCK_LINEAR, .name = "fc1", .tap = "fc1", .out = 32, .nobias = 1};
    t0->blocks[1] = (celo_block_desc){.kind = CELO_BLOCK_CONV,
                                      .name = "h.0.conv",
                                      .tap = "c",
                                      .from = "input",
                                      .out = CELO_WIDTH_VOCAB,
                                      .kernel = 3,
                                      .stride = 2,
                                      .pad = 1,
                                      .act = CELO_ACT_TANH,
                                      .pool = CELO_POOL_AVG,
                                      .heads = 4,
                                      .vocab = 65,
                                      .ctx = 128,
                                      .layer = 7,
                                      .init_std = 0.02,
                                      .init_std_proj = 1.0 / 3.0};
    t0->blocks[2] = (celo_block_desc){.kind = CELO_BLOCK_ADD, .name = "res", .tap = "res", .from = "fc1", .from2 = "c"};
    celo_task *k = &p->tasks[1];
    snprintf(k->name, sizeof k->name, "kjv gpt");
    k->data = CELO_DATA_KJV;
    k->seq = 64, k->model = CELO_MODEL_GPT, k->ctx = 128, k->dim = 48, k->heads = 3, k->layers = 2;
    k->embed = 5, k->lstm_hidden = 6, k->quad_dim = 9, k->quad_cond = 1e-300, k->normalize = 1, k->size = 8;
    k->act = CELO_ACT_GELU, k->pool = CELO_POOL_AVG, k->conv1 = 3, k->conv2 = -4, k->kernel = 5;
    k->nhidden = 3, k->hidden[0] = 1, k->hidden[1] = 2, k->hidden[2] = 2147483647;
    k->teacher_n = -9000000000000LL, k->in = 7, k->out = 11, k->batch = 16, k->loss = CELO_LOSS_MSE;
    k->nclasses = 3, k->classes[0] = 9, k->classes[1] = 0, k->classes[2] = -2147483647 - 1;
    k->permute_labels = 9007199254740993ull;
    k->mixer = CELO_MIXER_MAMBA, k->feature = CELO_FEATURE_HEDGEHOG, k->chunk = 8;
    k->mamba_state = 12, k->mamba_conv = 3, k->mamba_expand = 2, k->mamba_normalize = 1;
    p->runs[0] = make_run("a", 0, "adamw", 0.1, 100);
    celo_run *r = &p->runs[1];
    *r = make_run("sweep [lr=3e-3]", 1, "sgd@warmup_cosine", 3e-3, 1000000000000LL);
    r->nhp = 4;
    snprintf(r->hp_name[1], sizeof r->hp_name[1], "wd");
    r->hp[1] = 1.0 / 3.0;
    snprintf(r->hp_name[2], sizeof r->hp_name[2], "b2");
    r->hp[2] = -INFINITY;
    snprintf(r->hp_name[3], sizeof r->hp_name[3], "warmup");
    r->hp[3] = 50;
    r->eval_every = 25, r->checkpoint_every = 100;
    r->seed = 18446744073709551615ull;
    snprintf(r->log, sizeof r->log, "runs/with space/a\\b\tc\nd.csv");
    snprintf(r->checkpoint, sizeof r->checkpoint, "ckpt/\x01\x7f\xc3\xa9.safetensors");
    r->group = 1;
    p->runs[2] = make_run("c", 0, "sgd@linear", 5e-324, 1);
    p->runs[2].group = 0;
    celo_group *g = &p->groups[0];
    snprintf(g->name, sizeof g->name, "sw");
    snprintf(g->kind, sizeof g->kind, "sweep");
    g->first = 1, g->count = 2;
    snprintf(g->metric, sizeof g->metric, "eval_acc");
    g = &p->groups[1];
    snprintf(g->name, sizeof g->name, "cmp");
    snprintf(g->kind, sizeof g->kind, "compare");
    g->first = 0, g->count = 3;
    snprintf(g->out, sizeof g->out, "out dir/cmp");
}

static void test_plan_text(void)
{
    celo_plan p, q;
    fill_sample_plan(&p);
    char *text = celo_plan_write(&p);
    int rc = celo_plan_read(&q, text, err, sizeof err);
    CHECK(rc == 0, "plan: read what write wrote (%s)", rc ? err : "ok");
    if (rc == 0) {
        int same = q.ntasks == p.ntasks && q.nruns == p.nruns && q.ngroups == p.ngroups &&
                   !memcmp(q.runs, p.runs, sizeof *p.runs * 3) && !memcmp(q.groups, p.groups, sizeof *p.groups * 2);
        for (int i = 0; same && i < 2; i++) { /* the tasks but their block pointers, then the blocks */
            celo_task a = p.tasks[i], b = q.tasks[i];
            same = a.nblocks == b.nblocks &&
                   (!a.nblocks || !memcmp(a.blocks, b.blocks, sizeof *a.blocks * (size_t)a.nblocks));
            a.blocks = b.blocks = NULL;
            same = same && !memcmp(&a, &b, sizeof a);
        }
        CHECK(same, "plan: round trip gives the same structs, byte for byte (doubles, -inf, 5e-324, u64 max, escapes, "
                    "blocks)");
        char *text2 = celo_plan_write(&q);
        CHECK(text2 && !strcmp(text, text2), "plan: write(read(write(p))) == write(p)");
        free(text2);
        celo_plan_free(&q);
    }
    CHECK(strstr(text, "hp wd 0.33333333333333331\n") && strstr(text, "rule sgd@warmup_cosine\n") &&
              strstr(text, "data teacher\n") && strstr(text, "log runs/with space/a\\\\b\\tc\\nd.csv\n") &&
              strstr(text, "  classes 9 0 -2147483648\n  permute_labels 9007199254740993\n") &&
              strstr(text, "  mixer mamba\n  feature hedgehog\n  chunk 8\n  mamba_state 12\n  mamba_conv 3\n"
                           "  mamba_expand 2\n  mamba_normalize 1\n"),
          "plan: readable text (names for enums, %%.17g doubles, escaped strings)");
    /* every prefix that cuts a block must fail cleanly, and every line alone must not crash */
    size_t n = strlen(text);
    int cut_ok = 1;
    for (size_t i = 12; i < n; i += 7) {
        char *s = strndup(text, i);
        if (celo_plan_read(&q, s, err, sizeof err) == 0)
            celo_plan_free(&q);
        else if (!one_line(err))
            cut_ok = 0;
        free(s);
    }
    CHECK(cut_ok, "plan: truncated texts give one-line errors");

    struct {
        const char *text, *want;
    } bad[] = {
        {"", "empty text"},
        {"celo-plan 2\n", "not a celo plan"},
        {"celo-plan 1\ntask t\n  data fashion_mnist\n", "missing 'end'"},
        {"celo-plan 1\ntask t\n  colour red\nend\n", "plan line 3: unknown key 'colour'"},
        {"celo-plan 1\ntask t\n  size 8x\nend\n", "plan line 3: size: expected an integer"},
        {"celo-plan 1\ntask t\n  size 99999999999\nend\n", "out of range"},
        {"celo-plan 1\ntask t\n  data mnist\nend\n", "plan line 3: data: unknown value 'mnist' (one of fashion_mnist"},
        {"celo-plan 1\ntask t\n  size 8\n  size 9\nend\n", "'size' set twice"},
        {"celo-plan 1\nrun r\n  task 0\nend\n", "run 'r': task 0 does not exist"},
        {"celo-plan 1\ntask t\nend\nrun r\n  task 0\n  hp lr 1e999\nend\n", "hp: 1e999 overflows"},
        {"celo-plan 1\ntask t\nend\nrun r\n  task 0\n  hp lr 1\n  hp lr 2\nend\n", "'lr' set twice"},
        {"celo-plan 1\ntask t\nend\nrun r\n  rule \\q\nend\n", "unknown escape"},
        {"celo-plan 1\ntask t\nend\nrun r\n  rule "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nend\n",
         "rule: longer than 63 bytes"},
        {"celo-plan 1\ngroup g\n  kind sweep\n  first 0\n  count 1\nend\n", "group 'g': runs 0..1 out of range"},
        {"celo-plan 1\ngroup g\n  kind tournament\nend\n", "kind 'tournament'"},
        {"celo-plan 1\nend\n", "expected 'task', 'run' or 'group'"},
        {"celo-plan 1\ntask t\n  hidden 1 2 3 4 5 6 7 8 9\nend\n", "more than 8 layers"},
        {"celo-plan 1\ntask t\n  classes 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nend\n", "more than 16 classes"},
        {"celo-plan 1\ntask t\n  classes 0,3\nend\n", "plan line 3: classes: expected integers"},
        {"celo-plan 1\ntask t\n  permute_labels -1\nend\n", "plan line 3: permute_labels: expected an unsigned"},
        {"celo-plan 1\ntask t\n  block linear fc1 fc1 - - 32 0 0 0 0 relu max 0 0 0 0 0 0\nend\n",
         "expected 24 fields, got 18"},
        {"celo-plan 1\ntask t\n  block lineal fc1 fc1 - - 32 0 0 0 0 relu max 0 0 0 0 0 0 elu 0 0 0 0 0\nend\n",
         "unknown kind"},
        {"celo-plan 1\ntask t\n  block linear f/c fc1 - - 32 0 0 0 0 relu max 0 0 0 0 0 0 elu 0 0 0 0 0\nend\n",
         "bad name"},
        {"celo-plan 1\ntask t\n  block mamba m m - - 0 0 0 0 0 relu max 4 0 0 0 0 0 softmax 0 0 0 0 0\nend\n",
         "unknown feature 'softmax'"},
        {"celo-plan 1\nrun r\n  block linear fc1 fc1 - - 32 0 0 0 0 relu max 0 0 0 0 0 0 elu 0 0 0 0 0\nend\n",
         "unknown key 'block'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = celo_plan_read(&q, bad[i].text, err, sizeof err);
        CHECK(rc != 0 && one_line(err) && strstr(err, bad[i].want), "plan: bad text %zu: %s", i, rc ? err : "accepted");
        if (rc == 0)
            celo_plan_free(&q);
    }
    rc = celo_plan_read(&q, "# comment\n\ncelo-plan 1\n  # indented comment\ntask t\n  data 3\nend\n", err, sizeof err);
    CHECK(rc == 0 && q.ntasks == 1 && q.tasks[0].data == CELO_DATA_TEACHER && q.tasks[0].nhidden == 0,
          "plan: comments, blank lines, enum by number, missing fields are zero");
    if (rc == 0)
        celo_plan_free(&q);
    free(text);
    celo_plan_free(&p);
}

/* ================================ training ================================ */

static celo_plan one_task_plan(celo_task t, int nruns)
{
    celo_plan p;
    memset(&p, 0, sizeof p);
    p.ntasks = 1;
    p.tasks = calloc(1, sizeof *p.tasks);
    p.tasks[0] = t;
    p.nruns = nruns;
    p.runs = calloc((size_t)(nruns > 0 ? nruns : 1), sizeof *p.runs);
    return p;
}

static const celo_run_opts quiet = {.quiet = 1};

static void test_lowers_loss(void)
{
    celo_plan p = one_task_plan(teacher_task("teach", 32), 2);
    p.runs[0] = make_run("t_sgd", 0, "sgd", 0.1, 300);
    p.runs[1] = make_run("t_adamw", 0, "adamw", 3e-3, 300);
    for (int i = 0; i < 2; i++) {
        celo_run *r = &p.runs[i];
        r->eval_every = 100;
        snprintf(r->log, sizeof r->log, "%s/logs/%s.csv", tmpdir, r->name);
        celo_run_result res;
        int rc = celo_train_run(&p, r, lookup, NULL, &quiet, &res, err, sizeof err);
        char *csv = read_text(r->log);
        double first = NAN;
        if (csv) {
            char *l2 = strchr(csv, '\n');
            long long st;
            double tl;
            if (l2 && sscanf(l2 + 1, "%lld,%lf,%lf", &st, &tl, &first) != 3)
                first = NAN;
        }
        CHECK(rc == 0 && !res.diverged && res.steps_done == 300 && res.final_eval_loss < 0.75 * log(4.0) &&
                  res.final_eval_acc > 0.6 && res.final_train_loss < 0.75 * log(4.0),
              "%s on a teacher MLP: eval loss %.4f (chance %.4f), acc %.3f, train loss %.4f (%s)", r->rule,
              res.final_eval_loss, log(4.0), res.final_eval_acc, res.final_train_loss, rc ? err : "ok");
        CHECK(csv && !strncmp(csv, "step,train_loss,eval_loss,eval_acc,wall_s\n", 42) && count_lines(csv) == 4 &&
                  res.final_eval_loss < first,
              "%s: CSV in a new folder, a header and rows at 100, 200, 300; eval loss falls (%.4f -> %.4f)", r->rule,
              first, res.final_eval_loss);
        free(csv);
    }
    celo_plan_free(&p);
}

static void test_resume(void)
{
    const char *sn = "adamw";
    celo_plan p = one_task_plan(teacher_task("teach", 32), 1);
    celo_run *r = &p.runs[0];
    *r = make_run("resumable", 0, "adamw", 1e-2, 100);
    r->eval_every = 20;
    r->checkpoint_every = 40;
    celo_run_result ra, rb, rc_;
    char ca[512], cc[512];
    /* A: uninterrupted */
    snprintf(r->log, sizeof r->log, "%s/resume/A.csv", tmpdir);
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s/resume/A.safetensors", tmpdir);
    snprintf(ca, sizeof ca, "%s", r->checkpoint);
    int rc = celo_train_run(&p, r, lookup, NULL, &quiet, &ra, err, sizeof err);
    CHECK(rc == 0, "resume (%s): uninterrupted run (%s)", sn, rc ? err : "ok");
    /* B: the same run stopped after step 40, as if killed right after its checkpoint (with a constant schedule,
     * a 40-step run is exactly the first 40 steps of the 100-step run) */
    snprintf(r->log, sizeof r->log, "%s/resume/C.csv", tmpdir);
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s/resume/C.safetensors", tmpdir);
    snprintf(cc, sizeof cc, "%s", r->checkpoint);
    r->steps = 40;
    rc = celo_train_run(&p, r, lookup, NULL, &quiet, &rb, err, sizeof err);
    CHECK(rc == 0 && rb.steps_done == 40, "resume (%s): run stopped at step 40 with a checkpoint", sn);
    /* C: resume to 100 */
    r->steps = 100;
    celo_run_opts ro = {.resume = 1, .quiet = 1};
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &rc_, err, sizeof err);
    char *a = csv_losses(path_in_tmp("resume/A.csv")), *c = csv_losses(path_in_tmp("resume/C.csv"));
    CHECK(rc == 0 && a && c && !strcmp(a, c) && count_lines(a) == 6,
          "resume (%s): the resumed CSV equals the uninterrupted one (except wall_s)", sn);
    CHECK(rc == 0 && ra.final_eval_loss == rc_.final_eval_loss && ra.final_eval_acc == rc_.final_eval_acc &&
              ra.final_train_loss == rc_.final_train_loss && rc_.steps_done == 100,
          "resume (%s): the same final numbers, bit for bit (%.9g %.9g)", sn, ra.final_eval_loss, rc_.final_eval_loss);
    CHECK(same_tensors(ca, cc), "resume (%s): the same final parameters and optimizer state, bit for bit", sn);
    free(a);
    free(c);
    /* resuming a finished run: nothing to do, the same results */
    celo_run_result rd;
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &rd, err, sizeof err);
    CHECK(rc == 0 && rd.final_eval_loss == ra.final_eval_loss && rd.steps_done == 100,
          "resume (%s): a finished run restores its results without training", sn);
    celo_plan_free(&p);
}

/* A run killed with SIGKILL (a child process: this binary re-executed) leaves a complete CSV and a loadable
 * checkpoint at some step s; resuming it to s + 100 steps gives what an uninterrupted (s + 100)-step run gives
 * (constant schedule: the first steps of a run do not depend on its length). */
#define KILL_STEPS 2000000
static celo_plan kill_plan(const char *dir)
{
    celo_plan p = one_task_plan(teacher_task("teach", 32), 1);
    celo_run *r = &p.runs[0];
    *r = make_run("killed", 0, "adamw", 1e-2, KILL_STEPS);
    r->eval_every = 50;
    r->checkpoint_every = 50;
    snprintf(r->log, sizeof r->log, "%s/run.csv", dir);
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s/run.safetensors", dir);
    return p;
}

static int kill_child(const char *dir)
{
    celo_plan p = kill_plan(dir);
    celo_run_result res;
    int rc = celo_train_run(&p, &p.runs[0], lookup, NULL, &quiet, &res, err, sizeof err);
    if (rc)
        fprintf(stderr, "child: %s\n", err);
    return rc;
}

static void test_kill(void)
{
    char dir[512], ck[600];
    snprintf(dir, sizeof dir, "%s/kill", tmpdir);
    snprintf(ck, sizeof ck, "%s/run.safetensors", dir);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CELO_TEST_TRAIN_CHILD", dir, 1);
        execl("/proc/self/exe", "test_train", (char *)NULL);
        _exit(127);
    }
    int status = 0, exited = 0;
    struct timespec ts = {0, 5000000};
    for (int i = 0; i < 6000 && !exited; i++) { /* up to 30 s for the first checkpoint */
        if (access(ck, F_OK) == 0)
            break;
        exited = waitpid(pid, &status, WNOHANG) == pid;
        nanosleep(&ts, NULL);
    }
    struct timespec more = {0, 30000000};
    nanosleep(&more, NULL); /* some more steps, then kill in the middle of whatever it does */
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    if (exited || !WIFSIGNALED(status)) {
        printf("skip kill: the child ended by itself (status %d)\n", status);
        return;
    }
    /* the CSV is complete: a header and whole rows */
    char csvp[600];
    snprintf(csvp, sizeof csvp, "%s/run.csv", dir);
    char *csv = read_text(csvp);
    size_t cl = csv ? strlen(csv) : 0;
    CHECK(csv && !strncmp(csv, "step,train_loss,eval_loss,eval_acc,wall_s\n", 42) && cl && csv[cl - 1] == '\n',
          "kill -9: the CSV is whole (%d rows)", count_lines(csv) - 1);
    free(csv);
    celo_ckpt c;
    celo_ckpt_init(&c);
    int64_t s = -1;
    int rc = celo_ckpt_read(&c, ck, err, sizeof err) || celo_ckpt_meta_i64(&c, "step", &s, err, sizeof err);
    celo_ckpt_free(&c);
    CHECK(rc == 0 && s > 0 && s % 50 == 0 && s < KILL_STEPS, "kill -9: the checkpoint loads (step %lld)", (long long)s);
    if (rc)
        return;
    /* resume to s + 100 */
    celo_plan p = kill_plan(dir);
    celo_run *r = &p.runs[0];
    r->steps = s + 100;
    celo_run_opts ro = {.resume = 1, .quiet = 1};
    celo_run_result rk, ru;
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &rk, err, sizeof err);
    /* uninterrupted */
    char ref[512];
    snprintf(ref, sizeof ref, "%s/kill_ref", tmpdir);
    celo_plan q = kill_plan(ref);
    q.runs[0].steps = s + 100;
    int rc2 = celo_train_run(&q, &q.runs[0], lookup, NULL, &quiet, &ru, err, sizeof err);
    char *a = csv_losses(csvp), *b = csv_losses(q.runs[0].log);
    CHECK(rc == 0 && rc2 == 0 && a && b && !strcmp(a, b) && rk.final_eval_loss == ru.final_eval_loss,
          "kill -9 at step >= %lld, resumed to %lld: the CSV and final numbers of an uninterrupted run", (long long)s,
          (long long)s + 100);
    CHECK(same_tensors(r->checkpoint, q.runs[0].checkpoint),
          "kill -9, resumed: the same parameters and state, bit for bit");
    free(a);
    free(b);
    celo_plan_free(&p);
    celo_plan_free(&q);
}

static void test_ckpt_errors(void)
{
    celo_plan p = one_task_plan(teacher_task("teach", 32), 1);
    p.ntasks = 2;
    p.tasks = realloc(p.tasks, 2 * sizeof *p.tasks);
    p.tasks[1] = teacher_task("teach16", 16);
    celo_run *r = &p.runs[0];
    *r = make_run("ck", 0, "sgd", 0.1, 20);
    char *ck = path_in_tmp("ckerr/ck.safetensors");
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s", ck);
    celo_run_result res;
    celo_run_opts ro = {.resume = 1, .quiet = 1};
    int rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc == 0 && access(ck, F_OK) == 0, "checkpoint: resume without a checkpoint starts afresh and writes one");
    /* another run */
    snprintf(r->name, sizeof r->name, "other");
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "checkpoint of run 'ck'"), "checkpoint of another run: %s", err);
    snprintf(r->name, sizeof r->name, "ck");
    /* another optimizer */
    snprintf(r->rule, sizeof r->rule, "adamw");
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "optimizer 'sgd'"), "checkpoint of another optimizer: %s", err);
    snprintf(r->rule, sizeof r->rule, "sgd");
    /* another seed */
    r->seed = 8;
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "seed"), "checkpoint with another seed: %s", err);
    r->seed = 7;
    /* another model shape */
    r->task = 1;
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "fc1.weight") && strstr(err, "another model"),
          "checkpoint of another model shape: %s", err);
    r->task = 0;
    /* fewer steps than the checkpoint */
    r->steps = 10;
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "step 20"), "checkpoint beyond the run's steps: %s", err);
    r->steps = 20;
    /* corrupt: truncated, then garbage */
    char *all = read_text(ck);
    FILE *f = fopen(ck, "wb");
    fwrite(all, 1, 100, f);
    fclose(f);
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, ck), "truncated checkpoint: %s", err);
    f = fopen(ck, "wb");
    fputs("this is not a checkpoint at all, just some text that is long enough", f);
    fclose(f);
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, ck), "garbage checkpoint: %s", err);
    /* a safetensors file that is not a celo checkpoint */
    celo_ckpt c;
    celo_ckpt_init(&c);
    float w[4] = {1, 2, 3, 4};
    celo_ckpt_add(&c, "w", w, 1, (int64_t[]){4}, err, sizeof err);
    celo_ckpt_write(&c, ck, err, sizeof err);
    celo_ckpt_free(&c);
    rc = celo_train_run(&p, r, lookup, NULL, &ro, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "not a checkpoint of a celo training run"),
          "foreign safetensors file: %s", err);
    free(all);
    celo_plan_free(&p);
}

static void test_nan(void)
{
    /* a quadratic with a huge learning rate: x grows 1e10-fold per step until the update overflows */
    celo_task q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "quad");
    q.data = CELO_DATA_QUADRATIC;
    q.quad_dim = 10;
    q.quad_cond = 10;
    celo_plan p = one_task_plan(q, 1);
    p.runs[0] = make_run("blowup", 0, "sgd", 1e10, 100);
    snprintf(p.runs[0].log, sizeof p.runs[0].log, "%s/nan/blowup.csv", tmpdir);
    celo_run_result res;
    int rc = celo_train_run(&p, &p.runs[0], lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc == 0 && res.diverged && one_line(err) && strstr(err, "run blowup: step ") &&
              strstr(err, ": x is not finite after the update; stopping") && res.steps_done < 10,
          "NaN/Inf: a diverging run stops, names the step and tensor, and is not an error: %s", err);
    char *csv = read_text(p.runs[0].log);
    CHECK(csv && count_lines(csv) == 2 && strstr(csv, ",nan,nan,"),
          "NaN/Inf: the CSV ends with the step it stopped at");
    free(csv);
    celo_plan_free(&p);
    /* an MLP with lr 1e30: whatever overflows first is named */
    p = one_task_plan(teacher_task("teach", 32), 1);
    p.runs[0] = make_run("mlp_blowup", 0, "sgd", 1e30, 100);
    rc = celo_train_run(&p, &p.runs[0], lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc == 0 && res.diverged && one_line(err) && strstr(err, "not finite") &&
              (strstr(err, "loss") || strstr(err, "fc")),
          "NaN/Inf on an MLP: %s", err);
    celo_plan_free(&p);
}

static void test_hp_errors(void)
{
    celo_plan p = one_task_plan(teacher_task("teach", 32), 1);
    celo_run *r = &p.runs[0];
    *r = make_run("hp", 0, "adamw", 1e-3, 5);
    snprintf(r->hp_name[0], sizeof r->hp_name[0], "lrr");
    celo_run_result res;
    int rc = celo_train_run(&p, r, lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "no hyper-parameter 'lrr'") && strstr(err, "lr, b1"),
          "unknown hyper-parameter: %s", err);
    *r = make_run("hp", 0, "nolr", 1e-3, 5);
    r->nhp = 0;
    rc = celo_train_run(&p, r, lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc == 0 && !res.diverged, "a rule without lr runs (%s)", rc ? err : "ok");
    snprintf(r->rule, sizeof r->rule, "nosuchrule");
    rc = celo_train_run(&p, r, lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc != 0 && one_line(err) && strstr(err, "unknown optimizer 'nosuchrule'"), "unknown optimizer: %s", err);
    celo_plan_free(&p);
}

/* Schedules through a quadratic with sgd: with a diagonal-free view, just check that they train and differ. */
static void test_schedules(void)
{
    celo_task q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "quad");
    q.data = CELO_DATA_QUADRATIC;
    q.quad_dim = 32;
    q.quad_cond = 100;
    celo_plan p = one_task_plan(q, 4);
    double fin[4];
    static const char *const sched[4] = {"sgd", "sgd@cosine", "sgd@warmup_cosine", "sgd@linear"};
    for (int s = 0; s < 4; s++) {
        p.runs[s] = make_run("sched", 0, sched[s], 0.5, 200);
        if (s == 2) {
            p.runs[s].nhp = 2;
            snprintf(p.runs[s].hp_name[1], sizeof p.runs[s].hp_name[1], "warmup");
            p.runs[s].hp[1] = 20;
        }
        celo_run_result res;
        int rc = celo_train_run(&p, &p.runs[s], lookup, NULL, &quiet, &res, err, sizeof err);
        fin[s] = rc == 0 ? res.final_eval_loss : NAN;
    }
    CHECK(fin[0] < 1 && fin[1] < 1 && fin[2] < 1 && fin[3] < 1 && fin[0] != fin[1] && fin[1] != fin[2] &&
              fin[2] != fin[3],
          "schedules: constant %.4g, cosine %.4g, warmup_cosine %.4g, linear %.4g: all train, all differ", fin[0],
          fin[1], fin[2], fin[3]);
    celo_plan_free(&p);
}

static void test_execute(void)
{
    celo_plan p = one_task_plan(teacher_task("teach", 32), 5);
    p.runs[0] = make_run("sw_lr0.01", 0, "sgd", 0.01, 150);
    p.runs[1] = make_run("sw_lr0.1", 0, "sgd", 0.1, 150);
    p.runs[2] = make_run("sw_lr1e9", 0, "sgd", 1e9, 150);
    p.runs[3] = make_run("cmp_adamw", 0, "adamw", 3e-3, 150);
    p.runs[4] = make_run("alone", 0, "adamw", 3e-3, 10);
    for (int i = 0; i < 5; i++)
        p.runs[i].eval_every = 50;
    for (int i = 0; i < 3; i++)
        p.runs[i].group = 0;
    p.runs[3].group = 1;
    p.ngroups = 2;
    p.groups = calloc(2, sizeof *p.groups);
    snprintf(p.groups[0].name, sizeof p.groups[0].name, "sw");
    snprintf(p.groups[0].kind, sizeof p.groups[0].kind, "sweep");
    p.groups[0].first = 0, p.groups[0].count = 3;
    snprintf(p.groups[1].name, sizeof p.groups[1].name, "cmp");
    snprintf(p.groups[1].kind, sizeof p.groups[1].kind, "compare");
    p.groups[1].first = 0, p.groups[1].count = 4;
    snprintf(p.groups[1].out, sizeof p.groups[1].out, "%s/cmp/out", tmpdir);
    celo_run_opts o = {.quiet = 1, .only = "cmp"};
    int rc = celo_plan_execute(&p, lookup, NULL, &o);
    char *md = read_text(path_in_tmp("cmp/out/results.md")), *svg = read_text(path_in_tmp("cmp/out/curves.svg"));
    CHECK(rc == 0 && md &&
              strstr(md, "| run | optimizer | hyper-parameters | train loss | eval loss | eval acc | "
                         "wall time |") &&
              strstr(md, "sw\\_lr0.1 (best of 3) | sgd | lr=0.1 |") &&
              strstr(md, "| cmp\\_adamw | adamw | lr=0.003 |") && count_substr(md, "\n| ") == 3,
          "compare: results.md has the best run per optimizer (sgd: best of 3 by eval loss)");
    CHECK(svg && !strncmp(svg, "<svg", 4) && strstr(svg, "</svg>\n") && count_substr(svg, "<polyline") == 2 &&
              strstr(svg, ">sw_lr0.1</text>") && strstr(svg, ">cmp_adamw</text>") && strstr(svg, ">step</text>"),
          "compare: curves.svg plots eval loss of the best run per optimizer, with axes and a legend");
    if (getenv("CELO_TEST_KEEP"))
        printf("     %s\n", path_in_tmp("cmp/out"));
    free(md);
    free(svg);
    o.only = "nothing";
    rc = celo_plan_execute(&p, lookup, NULL, &o);
    CHECK(rc == 1, "execute: --only naming nothing is an error");
    o.only = "alone";
    rc = celo_plan_execute(&p, lookup, NULL, &o);
    CHECK(rc == 0, "execute: --only one run");
    celo_plan_free(&p);
}

/* ================================ real data (skipped when absent) ================================ */

static void test_fmnist_speed(void)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0 &&
        !getenv("CELO_FASHION_MNIST_DIR")) {
        printf("skip Fashion-MNIST: dataset-fashion-mnist is not installed\n");
        return;
    }
    celo_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "fmnist_mlp");
    t.data = CELO_DATA_FASHION_MNIST;
    t.size = 8;
    t.normalize = 1;
    t.model = CELO_MODEL_MLP;
    t.nhidden = 1;
    t.hidden[0] = 32;
    t.act = CELO_ACT_RELU;
    t.loss = CELO_LOSS_CROSS_ENTROPY;
    t.batch = 64;
    celo_plan p = one_task_plan(t, 1);
    const char *s = getenv("CELO_TEST_STEPS");
    int64_t steps = s ? atoll(s) : 3000;
    p.runs[0] = make_run("fmnist_adamw", 0, "adamw", 3e-3, steps);
    p.runs[0].eval_every = steps;
    celo_run_result res;
    int rc = celo_train_run(&p, &p.runs[0], lookup, NULL, &quiet, &res, err, sizeof err);
    CHECK(rc == 0 && !res.diverged && res.final_eval_acc > 0.7,
          "Fashion-MNIST 8x8 MLP 64-32-10, adamw, batch 64, %lld steps: eval loss %.4f, acc %.4f, %.2f s with data "
          "loading and one eval (%s)",
          (long long)steps, res.final_eval_loss, res.final_eval_acc, res.wall_s, rc ? err : "ok");
    if (rc == 0)
        printf("     steps_per_s=%.0f (wall of the training loop, incl. the final eval)\n", (double)steps / res.wall_s);
    celo_plan_free(&p);
}

static void test_kjv(void)
{
    if (access("/usr/lib/bible.data", R_OK) != 0 && !getenv("CELO_BIBLE_TEXT") && !getenv("CELO_BIBLE_DIR")) {
        printf("skip KJV: bible-kjv is not installed\n");
        return;
    }
    celo_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "kjv_gpt");
    t.data = CELO_DATA_KJV;
    t.seq = 16;
    t.model = CELO_MODEL_GPT;
    t.dim = 16, t.heads = 2, t.layers = 1;
    t.batch = 8;
    celo_plan p = one_task_plan(t, 2);
    p.runs[0] = make_run("kjv_a", 0, "adamw", 1e-2, 30);
    p.runs[0].eval_every = 15;
    p.tasks = realloc(p.tasks, 2 * sizeof *p.tasks);
    p.ntasks = 2;
    p.tasks[1] = t;
    p.tasks[1].model = CELO_MODEL_LSTM;
    p.tasks[1].embed = 8, p.tasks[1].lstm_hidden = 16;
    snprintf(p.tasks[1].name, sizeof p.tasks[1].name, "kjv_lstm");
    p.runs[1] = make_run("kjv_b", 1, "adamw", 1e-2, 30);
    celo_run_result res;
    for (int i = 0; i < 2; i++) {
        int rc = celo_train_run(&p, &p.runs[i], lookup, NULL, &quiet, &res, err, sizeof err);
        CHECK(rc == 0 && !res.diverged && isfinite(res.final_eval_loss) && res.final_eval_loss < log(80.0) &&
                  res.final_eval_acc > 0.05 && res.final_eval_acc < 1,
              "KJV %s LM: 30 steps, validation loss %.4f, next-char accuracy %.3f (%s)", i ? "LSTM" : "GPT",
              res.final_eval_loss, res.final_eval_acc, rc ? err : "ok");
    }
    celo_plan_free(&p);
}

int main(void)
{
    const char *child = getenv("CELO_TEST_TRAIN_CHILD");
    if (child) /* test_kill's child process */
        return load_rules() ? 1 : kill_child(child);
    snprintf(tmpdir, sizeof tmpdir, "%s/celo-train-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("FAIL mkdtemp\n");
        return 1;
    }
    test_plan_text();
    if (load_rules()) {
        printf("FAIL cannot compile the stdlib rules sgd and adamw (run from the repository root)\n");
        return 1;
    }
    test_lowers_loss();
    test_resume();
    test_kill();
    test_ckpt_errors();
    test_nan();
    test_hp_errors();
    test_schedules();
    test_execute();
    test_fmnist_speed();
    test_kjv();
    if (!getenv("CELO_TEST_KEEP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("note: could not remove %s\n", tmpdir);
    }
    for (int i = 0; i < NRULES; i++)
        rule_free(rules[i]);
    module_free(&mod);
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails != 0;
}
