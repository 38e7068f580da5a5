/*
 * test_nn_taps.c — the tap API of nn.h in the float build: for every model kind, loss + backward through the
 * convenience path (celo_model_loss, celo_model_backward) equals, bit for bit, celo_model_forward, then the loss
 * function (celo_loss_cross_entropy / celo_loss_mse) on the "logits" tap, then celo_model_backward_from("logits",
 * dloss); the taps' names and shapes; injected gradients that sum; errors; copying tensors between models; models from
 * block descriptions (celo_model_create_desc). (Gradients from intermediate taps are checked against finite differences
 * in the float64 build: test_nn_grad.c.)
 */
#include "nn.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0;
static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        fails++;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

typedef struct {
    celo_batch b;
    float *x, *target;
    int32_t *tokens, *labels;
} batch;

/* a batch for cfg: inputs N(0, 1), labels / tokens uniform */
static void make_batch(const celo_model_config *cfg, int n, int seq, batch *bb)
{
    celo_rng r;
    celo_rng_init(&r, 31, (uint64_t)cfg->kind);
    memset(bb, 0, sizeof *bb);
    int64_t nx = 0, nt = 0, nl = 0;
    int classes = 0;
    switch (cfg->kind) {
    case CELO_MODEL_MLP:
    case CELO_MODEL_AUTOENCODER:
        nx = (int64_t)n * cfg->mlp.in;
        if (cfg->kind == CELO_MODEL_MLP && cfg->mlp.loss == CELO_LOSS_MSE)
            nt = (int64_t)n * cfg->mlp.out;
        else if (cfg->kind == CELO_MODEL_MLP)
            nl = n, classes = cfg->mlp.out;
        break;
    case CELO_MODEL_CONVNET:
        nx = (int64_t)n * cfg->conv.channels * cfg->conv.height * cfg->conv.width, nl = n, classes = cfg->conv.out;
        break;
    case CELO_MODEL_GPT: nl = (int64_t)n * seq, classes = cfg->gpt.vocab; break;
    case CELO_MODEL_LSTM: nl = (int64_t)n * seq, classes = cfg->lstm.vocab; break;
    }
    bb->x = xcalloc((size_t)nx, sizeof(float)), bb->target = xcalloc((size_t)nt, sizeof(float));
    bb->tokens = xcalloc((size_t)nl, sizeof(int32_t)), bb->labels = xcalloc((size_t)nl, sizeof(int32_t));
    celo_rng_fill_normal(&r, bb->x, nx, 0, 1);
    celo_rng_fill_normal(&r, bb->target, nt, 0, 1);
    for (int64_t i = 0; i < nl; i++)
        bb->tokens[i] = (int32_t)(celo_rng_u32(&r) % (uint32_t)classes),
        bb->labels[i] = (int32_t)(celo_rng_u32(&r) % (uint32_t)classes);
    int lm = cfg->kind == CELO_MODEL_GPT || cfg->kind == CELO_MODEL_LSTM;
    bb->b =
        (celo_batch){n, seq, nx ? bb->x : NULL, lm ? bb->tokens : NULL, nl ? bb->labels : NULL, nt ? bb->target : NULL};
}

static void free_batch(batch *bb)
{
    free(bb->x), free(bb->target), free(bb->tokens), free(bb->labels);
}

static int64_t numel(const celo_tap_shape *s)
{
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= s->shape[d];
    return n;
}

/* convenience path == forward, loss function on the logits tap, backward_from("logits"): bit for bit */
static void test_split(const char *tag, const celo_model_config *cfg, int n, int seq)
{
    char err[256], what[200];
    celo_model *a = celo_model_create(cfg, 5, err, sizeof err), *b = celo_model_create(cfg, 5, err, sizeof err);
    if (!a || !b) {
        printf("FAIL %s: %s\n", tag, err);
        fails++;
        return;
    }
    batch bb;
    make_batch(cfg, n, seq, &bb);
    int64_t np = celo_model_nparams(a);
    int ok = 1;
    for (int step = 0; step < 2; step++) { /* the second step after an SGD update, with grown buffers reused */
        float la = celo_model_loss(a, &bb.b);
        ok &= celo_model_backward(a) == 0;
        ok &= celo_model_forward(b, &bb.b) == 0;
        celo_tap_shape s;
        const float *logits = celo_model_tap(b, "logits", &s);
        const float *out = celo_model_tap(b, "output", NULL);
        if (!logits || logits != out) {
            printf("FAIL %s: no logits tap\n", tag);
            fails++;
            break;
        }
        int64_t len = numel(&s), cols = s.shape[s.ndim - 1];
        float *dl = xcalloc((size_t)len, sizeof(float));
        float lb;
        if (bb.b.labels)
            lb = celo_loss_cross_entropy(logits, bb.b.labels, len / cols, (int)cols, dl);
        else
            lb = celo_loss_mse(logits, bb.b.target ? bb.b.target : bb.b.x, len, dl);
        ok &= celo_model_backward_from(b, "logits", dl) == 0;
        ok &= memcmp(&la, &lb, sizeof la) == 0;
        ok &= memcmp(celo_model_grads(a), celo_model_grads(b), (size_t)np * sizeof(float)) == 0;
        /* the taps of the loss call are those of the forward pass */
        for (int i = 0; i < celo_model_ntaps(a); i++) {
            celo_tap_shape sa, sb;
            const float *ta = celo_model_tap(a, celo_model_tap_name(a, i), &sa);
            const float *tb = celo_model_tap(b, celo_model_tap_name(b, i), &sb);
            ok &=
                ta && tb && memcmp(&sa, &sb, sizeof sa) == 0 && memcmp(ta, tb, (size_t)numel(&sa) * sizeof(float)) == 0;
        }
        free(dl);
        float *pa = celo_model_params(a), *pb = celo_model_params(b), *g = celo_model_grads(a);
        for (int64_t i = 0; i < np; i++)
            pa[i] -= 0.1f * g[i], pb[i] -= 0.1f * g[i];
    }
    snprintf(what, sizeof what, "%s: loss + backward == forward, loss on logits, backward_from(logits), bits", tag);
    check(ok, what);
    free_batch(&bb);
    celo_model_free(a);
    celo_model_free(b);
}

static void test_names_shapes(void)
{
    char err[256];
    celo_model_config gpt = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 6, .dim = 8, .heads = 2, .layers = 2}};
    celo_model *m = celo_model_create(&gpt, 1, err, sizeof err);
    batch bb;
    make_batch(&gpt, 3, 5, &bb);
    check(celo_model_tap(m, "h.0.attn", NULL) == NULL, "no tap before a forward pass");
    check(celo_model_forward(m, &bb.b) == 0, "gpt forward");
    static const char *want[] = {"wte",          "embed",       "h.0.ln_1", "h.0.attn", "h.0.res1", "h.0.ln_2",
                                 "h.0.mlp.c_fc", "h.0.mlp.act", "h.0.mlp",  "h.0",      "h.1.ln_1"};
    int ok = celo_model_ntaps(m) == 2 + 8 * 2 + 2;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ok &= !strcmp(celo_model_tap_name(m, (int)i), want[i]);
    ok &= !strcmp(celo_model_tap_name(m, celo_model_ntaps(m) - 1), "logits") && !celo_model_tap_name(m, 99);
    check(ok, "gpt taps: wte, embed, h.0.ln_1, h.0.attn, ..., logits");
    celo_tap_shape s;
    const float *t = celo_model_tap(m, "h.0.mlp.c_fc", &s);
    check(t && s.ndim == 3 && s.shape[0] == 3 && s.shape[1] == 5 && s.shape[2] == 32, "h.0.mlp.c_fc: [3, 5, 32]");
    /* res1 = embed + attn, element for element */
    const float *e = celo_model_tap(m, "embed", NULL), *a = celo_model_tap(m, "h.0.attn", NULL),
                *r = celo_model_tap(m, "h.0.res1", NULL);
    ok = 1;
    for (int i = 0; i < 3 * 5 * 8; i++)
        ok &= r[i] == e[i] + a[i];
    check(ok, "h.0.res1 = embed + h.0.attn");
    check(celo_model_backward(m) == -1, "convenience backward after forward only: -1 (no loss)");
    float g[3 * 5 * 8];
    check(celo_model_backward_from(m, "h.9", g) == -1 && strstr(celo_model_error(m), "h.9"), "unknown tap: -1");
    celo_model_free(m);
    free_batch(&bb);

    celo_model_config conv = {.kind = CELO_MODEL_CONVNET, .conv = {2, 9, 10, 3, 4, 3, CELO_POOL_AVG, 4}};
    m = celo_model_create(&conv, 1, err, sizeof err);
    make_batch(&conv, 2, 0, &bb);
    bb.b.labels = NULL; /* forward needs no labels */
    check(celo_model_forward(m, &bb.b) == 0, "convnet forward without labels");
    t = celo_model_tap(m, "pool2", &s);
    check(t && s.ndim == 4 && s.shape[0] == 2 && s.shape[1] == 4 && s.shape[2] == 2 && s.shape[3] == 2,
          "convnet pool2: [2, 4, 2, 2]");
    celo_model_free(m);
    free_batch(&bb);
}

/* two injected gradients at once == the sum of the two passes (up to rounding); blocks past the tap: zero */
static void test_sum(void)
{
    char err[256];
    celo_model_config mlp = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 6, .nhidden = 2, .hidden = {8, 7}, .out = 4, .act = CELO_ACT_TANH}};
    celo_model *m = celo_model_create(&mlp, 3, err, sizeof err);
    batch bb;
    make_batch(&mlp, 5, 0, &bb);
    celo_model_forward(m, &bb.b);
    int64_t np = celo_model_nparams(m);
    float r1[5 * 8], r2[5 * 4], *g1 = xcalloc((size_t)np, 4), *g2 = xcalloc((size_t)np, 4);
    celo_rng r;
    celo_rng_init(&r, 3, 3);
    celo_rng_fill_normal(&r, r1, 5 * 8, 0, 1);
    celo_rng_fill_normal(&r, r2, 5 * 4, 0, 1);
    celo_model_backward_from(m, "h1", r1);
    memcpy(g1, celo_model_grads(m), (size_t)np * 4);
    int fc2 = celo_model_find(m, "fc2.weight");
    int zero = 1;
    for (int64_t i = celo_model_tensor(m, fc2)->offset; i < np; i++)
        zero &= g1[i] == 0;
    check(zero, "backward_from(h1): fc2 and fc3 gradients are zero");
    celo_model_backward_from(m, "logits", r2);
    memcpy(g2, celo_model_grads(m), (size_t)np * 4);
    celo_model_backward_taps(m, 2, (const char *const[]){"h1", "logits"}, (const float *const[]){r1, r2});
    double d = 0, sc = 0;
    for (int64_t i = 0; i < np; i++)
        d = fmax(d, fabs((double)celo_model_grads(m)[i] - (g1[i] + g2[i]))), sc = fmax(sc, fabs(g1[i] + g2[i]));
    check(d <= 1e-6 * sc, "backward_taps(h1, logits) == backward_from(h1) + backward_from(logits)");
    free(g1), free(g2);
    free_batch(&bb);
    celo_model_free(m);
}

/* a student taking the teacher's tensors: all of them, and one layer into another */
static void test_copy(void)
{
    char err[256];
    celo_model_config t = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 6, .dim = 8, .heads = 2, .layers = 2}};
    celo_model_config s = t;
    s.gpt.layers = 1;
    celo_model *teacher = celo_model_create(&t, 1, err, sizeof err),
               *student = celo_model_create(&s, 2, err, sizeof err);
    int n = celo_model_copy_from(student, teacher, "", "");
    int ok = n == celo_model_ntensors(student);
    for (int i = 0; i < celo_model_ntensors(student); i++) {
        const celo_param_tensor *a = celo_model_tensor(student, i);
        const celo_param_tensor *b = celo_model_tensor(teacher, celo_model_find(teacher, a->name));
        ok &= !memcmp(celo_model_params(student) + a->offset, celo_model_params(teacher) + b->offset,
                      (size_t)a->numel * sizeof(float));
    }
    check(ok, "copy_from: a 1-layer student takes every tensor of its 2-layer teacher with the same name");
    n = celo_model_copy_from(student, teacher, "h.0.", "h.1.");
    int q = celo_model_find(teacher, "h.1.mlp.c_fc.weight"), p = celo_model_find(student, "h.0.mlp.c_fc.weight");
    check(n == 12 && !memcmp(celo_model_params(student) + celo_model_tensor(student, p)->offset,
                             celo_model_params(teacher) + celo_model_tensor(teacher, q)->offset,
                             (size_t)celo_model_tensor(student, p)->numel * sizeof(float)),
          "copy_from(h.0. <- h.1.): the teacher's second layer into the student's first");
    celo_model_free(teacher);
    celo_model_free(student);
}

/* the MLP of a config and the same MLP as a description: the same model, bit for bit; bad descriptions */
static void test_desc(void)
{
    char err[256];
    celo_model_config cfg = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 6, .nhidden = 2, .hidden = {8, 7}, .out = 4, .act = CELO_ACT_GELU}};
    celo_block_desc b[] = {
        {.kind = CELO_BLOCK_LINEAR, .name = "fc1", .out = 8},
        {.kind = CELO_BLOCK_ACT, .name = "h1", .act = CELO_ACT_GELU},
        {.kind = CELO_BLOCK_LINEAR, .name = "fc2", .out = 7},
        {.kind = CELO_BLOCK_ACT, .name = "h2", .act = CELO_ACT_GELU},
        {.kind = CELO_BLOCK_LINEAR, .name = "fc3", .tap = "logits", .out = 4},
    };
    celo_model_desc d = {.in_ndim = 1, .in_dims = {6}, .nblocks = 5, .blocks = b};
    celo_model *a = celo_model_create(&cfg, 9, err, sizeof err), *m = celo_model_create_desc(&d, 9, err, sizeof err);
    batch bb;
    make_batch(&cfg, 5, 0, &bb);
    int64_t np = celo_model_nparams(a);
    int ok = m && np == celo_model_nparams(m) &&
             !memcmp(celo_model_params(a), celo_model_params(m), (size_t)np * sizeof(float));
    float la = celo_model_loss(a, &bb.b), lm = m ? celo_model_loss(m, &bb.b) : NAN;
    ok &= m && celo_model_backward(a) == 0 && celo_model_backward(m) == 0 && !memcmp(&la, &lm, sizeof la) &&
          !memcmp(celo_model_grads(a), celo_model_grads(m), (size_t)np * sizeof(float));
    celo_model *r = m ? celo_model_replica(m, err, sizeof err) : NULL;
    ok &= r && celo_model_params(r) == celo_model_params(m) && celo_model_cfg(m)->kind == 0;
    float lr = r ? celo_model_loss(r, &bb.b) : NAN;
    ok &= !memcmp(&la, &lr, sizeof la);
    check(ok, "an MLP described as blocks == the mlp config: parameters, loss, gradients; its replica too");
    celo_model_free(r);
    celo_model_free(m);
    celo_model_free(a);
    free_batch(&bb);

    struct {
        celo_block_desc b[2];
        int tokens;
        const char *expect;
    } bad[] = {
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}, {.kind = CELO_BLOCK_ACT, .name = "b", .from = "z"}},
         0,
         "no earlier tap named 'z'"},
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}, {.kind = CELO_BLOCK_ADD, .name = "b", .from2 = "input"}},
         0,
         "same width"},
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}, {.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}},
         0,
         "taken"},
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}, {.kind = CELO_BLOCK_ATTENTION, .name = "b", .heads = 1}},
         0,
         "sequences"},
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3}, {.kind = CELO_BLOCK_ACT, .name = "b"}}, 1, "embedding"},
        {{{.kind = CELO_BLOCK_LINEAR, .name = "a", .out = 3},
          {.kind = CELO_BLOCK_CONV, .name = "b", .out = 2, .kernel = 3}},
         0,
         "[C, H, W]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        celo_model_desc e = {.tokens = bad[i].tokens, .in_ndim = 1, .in_dims = {4}, .nblocks = 2, .blocks = bad[i].b};
        err[0] = 0;
        m = celo_model_create_desc(&e, 1, err, sizeof err);
        char what[400];
        snprintf(what, sizeof what, "bad description %zu rejected: %s", i, err);
        check(!m && strstr(err, bad[i].expect), what);
        celo_model_free(m);
        /* the same checks without building (the compiler's), naming the block at fault */
        int at = -2;
        err[0] = 0;
        int rc = celo_model_check_desc(&e, &at, NULL, err, sizeof err);
        snprintf(what, sizeof what, "bad description %zu: celo_model_check_desc says block %d: %s", i, at, err);
        check(rc == -1 && at == (bad[i].tokens ? 0 : 1) && strstr(err, bad[i].expect), what);
    }
    int at = -2;
    int64_t width = 0;
    check(celo_model_check_desc(&d, &at, &width, err, sizeof err) == 0 && at == -1 && width == 4,
          "celo_model_check_desc of a good description: no block at fault, the output's width");
}

int main(void)
{
    celo_model_config mlp = {.kind = CELO_MODEL_MLP,
                             .mlp = {.in = 6, .nhidden = 2, .hidden = {8, 7}, .out = 4, .act = CELO_ACT_RELU}};
    test_split("mlp relu", &mlp, 5, 0);
    mlp.mlp.act = CELO_ACT_TANH, mlp.mlp.loss = CELO_LOSS_MSE;
    test_split("mlp tanh mse", &mlp, 5, 0);
    mlp = (celo_model_config){.kind = CELO_MODEL_MLP,
                              .mlp = {.in = 64, .nhidden = 2, .hidden = {128, 64}, .out = 10, .act = CELO_ACT_GELU}};
    test_split("mlp gelu (threaded sizes)", &mlp, 512, 0);
    celo_model_config ae = {.kind = CELO_MODEL_AUTOENCODER,
                            .mlp = {.in = 8, .nhidden = 3, .hidden = {6, 3, 6}, .act = CELO_ACT_TANH}};
    test_split("autoencoder", &ae, 4, 0);
    celo_model_config conv = {.kind = CELO_MODEL_CONVNET, .conv = {1, 8, 8, 3, 4, 3, CELO_POOL_MAX, 5}};
    test_split("convnet max", &conv, 3, 0);
    conv.conv = (celo_convnet_config){1, 16, 16, 8, 16, 3, CELO_POOL_AVG, 10};
    test_split("convnet avg (threaded sizes)", &conv, 64, 0);
    celo_model_config gpt = {.kind = CELO_MODEL_GPT, .gpt = {.vocab = 11, .ctx = 6, .dim = 8, .heads = 2, .layers = 2}};
    test_split("gpt", &gpt, 2, 5);
    gpt.gpt = (celo_gpt_config){.vocab = 50, .ctx = 32, .dim = 64, .heads = 4, .layers = 2, .gpt2_init = 1};
    test_split("gpt (gpt2 init, threaded sizes)", &gpt, 16, 32);
    celo_model_config lstm = {.kind = CELO_MODEL_LSTM, .lstm = {.vocab = 9, .embed = 5, .hidden = 6, .layers = 2}};
    test_split("lstm", &lstm, 3, 4);
    test_names_shapes();
    test_sum();
    test_copy();
    test_desc();
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails != 0;
}
