/*
 * test_source.c — the data source interface (runtime/data.h): the table, parameters and keys, private loads,
 * and the shared registry: one copy per key, loaded once when many threads ask at once, reference-counted,
 * failures reported to every caller and never cached. Each set's source gives exactly the bytes that its own
 * loader gives with the settings runtime/train.c uses, so runs keep their numbers when they switch to sources.
 */
#include "data.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char err[512];

static int one_line(const char *s)
{
    return s[0] && !strchr(s, '\n');
}

static int same_dataset(const celo_dataset *a, const celo_dataset *b)
{
    return a->n == b->n && a->dim == b->dim && a->h == b->h && a->w == b->w && a->nclass == b->nclass &&
           a->ydim == b->ydim && a->mean == b->mean && a->std == b->std && strcmp(a->name, b->name) == 0 &&
           memcmp(a->x, b->x, sizeof(float) * (size_t)(a->n * a->dim)) == 0 && !a->y == !b->y &&
           (!a->y || memcmp(a->y, b->y, sizeof(int32_t) * (size_t)a->n) == 0) && !a->t == !b->t &&
           (!a->t || memcmp(a->t, b->t, sizeof(float) * (size_t)(a->n * a->ydim)) == 0);
}

static void test_table(void)
{
    int n = celo_source_count();
    CHECK(n == 5 && !strcmp(celo_source_type_at(0)->name, "fashion_mnist") &&
              !strcmp(celo_source_type_at(1)->name, "kjv") && !strcmp(celo_source_type_at(2)->name, "teacher") &&
              !strcmp(celo_source_type_at(3)->name, "quadratic") && !strcmp(celo_source_type_at(4)->name, "digits") &&
              celo_source_type_at(5) == NULL && celo_source_type_at(-1) == NULL,
          "table: fashion_mnist, kjv, teacher, quadratic, digits");
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const celo_source_type *t = celo_source_type_at(i);
        ok &= celo_source_find(t->name) == t && t->load && t->help && t->nparams <= CELO_SOURCE_MAX_PARAMS;
        for (int k = 0; k < t->nparams; k++)
            ok &= t->params[k].name && t->params[k].def >= t->params[k].min && t->params[k].def <= t->params[k].max;
    }
    CHECK(ok && celo_source_find("mnist") == NULL && celo_source_find(NULL) == NULL,
          "table: every entry found by name, defaults within their ranges");

    const celo_source_type *t = celo_source_find("teacher");
    double p[CELO_SOURCE_MAX_PARAMS];
    char key[CELO_SOURCE_KEY_MAX];
    celo_source_arg a[] = {{"n", 1000}, {"hidden", 0}};
    int rc = celo_source_params(t, a, 2, p, err, sizeof err);
    int kl = celo_source_key(t, p, key, sizeof key);
    CHECK(rc == 0 && kl == (int)strlen(key) &&
              !strcmp(key, "teacher(in=16,out=4,hidden=0,n=1000,test_n=10000,classify=1,noise=0,seed=1592621660)"),
          "key: every parameter, defaults included: %s", key);
    CHECK(celo_source_key(t, p, key, 20) == -1, "key: too small a buffer is -1");
    const celo_source_type *fm = celo_source_find("fashion_mnist");
    celo_source_params(fm, NULL, 0, p, err, sizeof err);
    setenv("CELO_FASHION_MNIST_DIR", "/elsewhere", 1);
    celo_source_key(fm, p, key, sizeof key);
    unsetenv("CELO_FASHION_MNIST_DIR");
    CHECK(!strcmp(key, "fashion_mnist(size=28,resize=0,normalize=0)@/elsewhere"),
          "key: the origin from the environment is part of it: %s", key);
    const celo_source_type *dg = celo_source_find("digits");
    celo_source_params(dg, NULL, 0, p, err, sizeof err);
    setenv("CELO_DIGITS_DIR", "/elsewhere", 1);
    celo_source_key(dg, p, key, sizeof key);
    unsetenv("CELO_DIGITS_DIR");
    CHECK(!strcmp(key, "digits(normalize=0)@/elsewhere/digits.csv.gz"), "key: digits' origin is its file: %s", key);

    struct {
        const char *set;
        celo_source_arg a[2];
        int n;
        const char *want;
    } bad[] = {
        {"fashion_mnist", {{"size", 29}}, 1, "fashion_mnist: size 29 is out of range 1..28"},
        {"fashion_mnist", {{"size", 7.5}}, 1, "fashion_mnist: size 7.5 is not a whole number"},
        {"fashion_mnist", {{"sise", 8}}, 1, "fashion_mnist: unknown parameter 'sise' (size, resize, normalize)"},
        {"fashion_mnist", {{"size", 8}, {"size", 9}}, 2, "fashion_mnist: parameter 'size' given twice"},
        {"kjv", {{"val_frac", NAN}}, 1, "kjv: val_frac nan is out of range 0..1"},
        {"mnist", {{"size", 8}}, 1, "unknown data set 'mnist' (fashion_mnist, kjv, teacher, quadratic, digits)"},
        {"digits", {{"size", 8}}, 1, "digits: unknown parameter 'size' (normalize)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const celo_source *s = celo_source_get(bad[i].set, bad[i].a, bad[i].n, err, sizeof err);
        CHECK(s == NULL && !strcmp(err, bad[i].want) && celo_source_live() == 0, "bad parameters: %s", err);
    }
}

/* each source equals its own loader with the settings runtime/train.c's task_data_load uses */
static void test_same_as_loaders(void)
{
    celo_source s;
    celo_source_arg fa[] = {{"size", 8}, {"normalize", 1}};
    int rc = celo_source_load(&s, "fashion_mnist", fa, 2, err, sizeof err);
    celo_dataset tr, te;
    celo_fmnist_opts fo = {.size = 8, .resize = CELO_RESIZE_AREA, .normalize = 1};
    rc |= celo_fmnist_load(&tr, &te, &fo, err, sizeof err);
    CHECK(rc == 0 && s.type->kind == CELO_SOURCE_EXAMPLES && same_dataset(&s.train, &tr) &&
              same_dataset(&s.test, &te) && s.train.n == 60000 && s.train.dim == 64,
          "fashion_mnist(size = 8, normalize = 1) == celo_fmnist_load, bit for bit %s", rc ? err : "");
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
    celo_source_free(&s);

    celo_source_arg da[] = {{"normalize", 1}};
    rc = celo_source_load(&s, "digits", da, 1, err, sizeof err);
    celo_digits_opts dop = {.normalize = 1};
    rc |= celo_digits_load(&tr, &te, &dop, err, sizeof err);
    CHECK(rc == 0 && s.type->kind == CELO_SOURCE_EXAMPLES && same_dataset(&s.train, &tr) &&
              same_dataset(&s.test, &te) && s.train.n == 1437 && s.test.n == 360 && s.train.dim == 64,
          "digits(normalize = 1) == celo_digits_load, bit for bit %s", rc ? err : "");
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
    celo_source_free(&s);

    celo_source_arg ta[] = {{"in", 10}, {"out", 3}, {"hidden", 20}, {"n", 3000}};
    rc = celo_source_load(&s, "teacher", ta, 4, err, sizeof err);
    celo_teacher_opts to = {.in = 10, .nhidden = 1, .hidden = {20}, .out = 3, .classify = 1, .seed = 0x5eed7a5cull};
    rc |= celo_teacher_dataset(&tr, &to, CELO_SPLIT_TRAIN, 3000, err, sizeof err);
    rc |= celo_teacher_dataset(&te, &to, CELO_SPLIT_TEST, 10000, err, sizeof err);
    CHECK(rc == 0 && same_dataset(&s.train, &tr) && same_dataset(&s.test, &te),
          "teacher(in = 10, out = 3, hidden = 20, n = 3000) == celo_teacher_dataset (train.c's seed, 10000 test)");
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
    celo_source_free(&s);
    celo_source_arg tr_a[] = {{"hidden", 0}, {"classify", 0}, {"n", 500}, {"test_n", 100}};
    rc = celo_source_load(&s, "teacher", tr_a, 4, err, sizeof err);
    to = (celo_teacher_opts){.in = 16, .nhidden = 0, .out = 4, .classify = 0, .seed = 0x5eed7a5cull};
    rc |= celo_teacher_dataset(&tr, &to, CELO_SPLIT_TRAIN, 500, err, sizeof err);
    CHECK(rc == 0 && same_dataset(&s.train, &tr) && s.test.n == 100 && s.train.ydim == 4,
          "teacher regression without a hidden layer == celo_teacher_dataset");
    celo_dataset_free(&tr);
    celo_source_free(&s);

    for (int dim = 100; dim <= 5000; dim += 4900) {
        celo_source_arg qa[] = {{"dim", dim}, {"cond", 1000}};
        rc = celo_source_load(&s, "quadratic", qa, 2, err, sizeof err);
        celo_quadratic q;
        celo_quadratic_opts qo = {.dim = dim, .cond = 1000, .rotate = dim <= 4096, .seed = 0x5eed7a5cull};
        rc |= celo_quadratic_make(&q, &qo, err, sizeof err);
        size_t d = (size_t)dim;
        CHECK(rc == 0 && s.type->kind == CELO_SOURCE_OBJECTIVE && s.quad.dim == dim && !s.quad.A == !q.A &&
                  memcmp(s.quad.eig, q.eig, d * 4) == 0 && memcmp(s.quad.x0, q.x0, d * 4) == 0 &&
                  (!q.A || memcmp(s.quad.A, q.A, d * d * 4) == 0) && (dim > 4096) == !q.A,
              "quadratic(dim = %d, cond = 1000) == celo_quadratic_make (rotated up to 4096)", dim);
        celo_quadratic_free(&q);
        celo_source_free(&s);
    }

    rc = celo_source_load(&s, "kjv", NULL, 0, err, sizeof err);
    celo_text t;
    rc |= celo_text_load_kjv(&t, 0.1, err, sizeof err);
    CHECK(rc == 0 && s.type->kind == CELO_SOURCE_TEXT && s.text.n == t.n && s.text.split == t.split &&
              s.text.vocab == t.vocab && memcmp(s.text.ids, t.ids, (size_t)t.n) == 0,
          "kjv == celo_text_load_kjv(0.1): %lld characters %s", (long long)t.n, rc ? err : "");
    celo_text_free(&t);
    celo_source_free(&s);

    setenv("CELO_FASHION_MNIST_DIR", "/nonexistent-celo", 1);
    rc = celo_source_load(&s, "fashion_mnist", NULL, 0, err, sizeof err);
    unsetenv("CELO_FASHION_MNIST_DIR");
    CHECK(rc == -1 && s.type == NULL && one_line(err) &&
              !strcmp(err, "/nonexistent-celo/train-images-idx3-ubyte.gz: not found; install the Debian package "
                           "dataset-fashion-mnist"),
          "missing files: one line naming the file and the package: %s", err);
}

/* ---- the registry under threads ---- */

#define NT 8

typedef struct {
    pthread_barrier_t *go;
    const char *set;
    celo_source_arg a[2];
    int n;
    const celo_source *got;
    char err[512];
} job;

static void *getter(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->go);
    j->got = celo_source_get(j->set, j->a, j->n, j->err, sizeof j->err);
    return NULL;
}

/* NT threads get at once; jobs alternate between sets a and b */
static void run_jobs(job *jobs, const char *a_set, celo_source_arg a0, const char *b_set, celo_source_arg b0)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NT);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (job){.go = &go, .set = i % 2 ? b_set : a_set, .n = 1};
        jobs[i].a[0] = i % 2 ? b0 : a0;
        pthread_create(&th[i], NULL, getter, &jobs[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

static void test_registry(void)
{
    celo_source_arg a = {"n", 200000}, b = {"n", 100000};
    const celo_source *s1 = celo_source_get("teacher", &a, 1, err, sizeof err);
    const celo_source *s2 = celo_source_get("teacher", &a, 1, err, sizeof err);
    const celo_source *s3 = celo_source_get("teacher", &b, 1, err, sizeof err);
    CHECK(s1 && s1 == s2 && s3 && s3 != s1 && celo_source_live() == 2 && s1->train.n == 200000 && s3->train.n == 100000,
          "registry: the same key gives the same copy, another key another (2 live)");
    celo_source_put(s1);
    CHECK(celo_source_live() == 2 && s2->train.x[0] == s2->train.x[0], "registry: one put of two keeps the copy");
    celo_source_put(s2);
    celo_source_put(s3);
    celo_source_put(NULL);
    CHECK(celo_source_live() == 0, "registry: the last put frees it (0 live)");

    job jobs[NT];
    run_jobs(jobs, "teacher", a, "teacher", b);
    int same = 1;
    for (int i = 2; i < NT; i++)
        same &= jobs[i].got == jobs[i % 2].got;
    CHECK(same && jobs[0].got && jobs[1].got && jobs[0].got != jobs[1].got && celo_source_live() == 2,
          "registry: %d threads asking for 2 sets at once get 2 copies, each loaded once", NT);
    celo_dataset ref;
    celo_teacher_opts to = {.in = 16, .nhidden = 1, .hidden = {32}, .out = 4, .classify = 1, .seed = 0x5eed7a5cull};
    int rc = celo_teacher_dataset(&ref, &to, CELO_SPLIT_TRAIN, 200000, err, sizeof err);
    CHECK(rc == 0 && same_dataset(&jobs[0].got->train, &ref), "registry: the shared copy is the set, bit for bit");
    celo_dataset_free(&ref);
    for (int i = 0; i < NT; i++)
        celo_source_put(jobs[i].got);
    CHECK(celo_source_live() == 0, "registry: all %d puts free both", NT);

    setenv("CELO_FASHION_MNIST_DIR", "/nonexistent-celo", 1);
    run_jobs(jobs, "fashion_mnist", (celo_source_arg){"size", 8}, "kjv", (celo_source_arg){"val_frac", 0.2});
    unsetenv("CELO_FASHION_MNIST_DIR");
    int failed = 1, ok = 1;
    for (int i = 0; i < NT; i += 2)
        failed &= jobs[i].got == NULL &&
                  strstr(jobs[i].err, "/nonexistent-celo/train-images-idx3-ubyte.gz: not found") &&
                  one_line(jobs[i].err);
    for (int i = 1; i < NT; i += 2)
        ok &= jobs[i].got == jobs[1].got && jobs[i].got && jobs[i].got->text.n > 4000000;
    CHECK(failed && ok && celo_source_live() == 1,
          "registry: a failing load gives every waiter its error and keeps nothing; the other set loads (%s)",
          jobs[0].err);
    for (int i = 1; i < NT; i += 2)
        celo_source_put(jobs[i].got);
    const celo_source *fm = celo_source_get("fashion_mnist", (celo_source_arg[]){{"size", 8}}, 1, err, sizeof err);
    CHECK(fm && fm->train.dim == 64 && celo_source_live() == 1,
          "registry: after a failure the next get loads again (here from the real files)");
    celo_source_put(fm);
    CHECK(celo_source_live() == 0, "registry: empty at the end");
}

int main(void)
{
    test_table();
    test_same_as_loaders();
    test_registry();
    printf("%s\n", fails ? "FAILED" : "all ok");
    return fails ? 1 : 0;
}
