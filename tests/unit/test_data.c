/*
 * test_data.c — datasets and batching (runtime/data.h).
 *
 * Reference numbers for the real Fashion-MNIST files (Debian's dataset-fashion-mnist) came from Python:
 *
 *   python3 - <<'EOF'
 *   import gzip, numpy as np, torch
 *   D = '/usr/share/datasets/fashion-mnist/'
 *   def load(f, off): return np.frombuffer(gzip.open(D + f).read(), np.uint8, offset=off)
 *   X = load('train-images-idx3-ubyte.gz', 16).reshape(-1, 28, 28); Y = load('train-labels-idx1-ubyte.gz', 8)
 *   Xt = load('t10k-images-idx3-ubyte.gz', 16).reshape(-1, 28, 28); Yt = load('t10k-labels-idx1-ubyte.gz', 8)
 *   print(Y[:10], Yt[:10], np.bincount(Y))             # [9 0 0 3 0 2 7 2 5 5] [9 2 1 1 6 1 4 6 5 7] [6000]*10
 *   print(X[0].sum(), X[0, 14, 14], X[0, 5, 20], X.astype(np.int64).sum(), Xt[0].sum())
 *                                                      # 76247 217 23 3431114169 33456
 *   def W(n, m):                                       # area averaging as a matrix: overlap / scale
 *       s = n / m; M = np.zeros((m, n))
 *       for o in range(m):
 *           for i in range(n): M[o, i] = max(0.0, min((o + 1) * s, i + 1) - max(o * s, i)) / s
 *       return M
 *   M = W(28, 8); A = M @ (X[0] / 255.) @ M.T
 *   print(A.reshape(-1)[[0, 9, 27, 36, 63]], A.sum())  # [0 0 0.309243697 0.843937575 0.017206883] 24.408803521
 *   t = torch.tensor((X[0].astype(np.float32) / 255)[None, None])
 *   B = torch.nn.functional.interpolate(t, size=(8, 8), mode='bilinear', align_corners=False, antialias=False)
 *   print(B.reshape(-1)[[0, 9, 27, 36, 63]], B.sum())  # [0 0 0.227205887 0.850245118 0] 24.710539551
 *   Xa = np.einsum('oi,nij,pj->nop', M, X / 255., M); print(Xa.mean(), Xa.std())  # 0.286040597 0.304749255
 *   EOF
 *
 * torch's bilinear with align_corners=False and no antialiasing is TensorFlow's tf.image.resize default
 * (half-pixel centers), which learned_optimization uses for its 8x8 Fashion-MNIST tasks.
 *
 * The handwritten digits (Debian's python3-sklearn, sklearn/datasets/data/digits.csv.gz), with the standard
 * library only (the split: the last ceil(n / 5) lines are the test set):
 *
 *   python3 - <<'EOF'
 *   import gzip, csv
 *   D = '/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz'
 *   R = [[int(v) for v in r] for r in csv.reader(gzip.open(D, 'rt'))]
 *   n = len(R); nt = -(-n // 5); tr, te = R[:n - nt], R[n - nt:]
 *   cnt = lambda S: [sum(r[64] == c for r in S) for c in range(10)]
 *   print(n, len(tr), len(te), cnt(R), cnt(tr), cnt(te))
 *       # 1797 1437 360 [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
 *       # [143, 146, 142, 146, 144, 145, 144, 143, 141, 143] [35, 36, 35, 37, 37, 37, 37, 36, 33, 37]
 *   print(tr[0][64], sum(tr[0][:64]), te[0][64], sum(te[0][:64]), te[-1][64], sum(te[-1][:64]))
 *       # 0 294 2 347 8 392
 *   px = [v / 16 for r in tr for v in r[:64]]
 *   m = sum(px) / len(px); sd = (sum((v - m) ** 2 for v in px) / len(px)) ** 0.5
 *   pt = [v / 16 for r in te for v in r[:64]]
 *   print('%.9f %.9f %.9f' % (m, sd, (sum(pt) / len(pt) - m) / sd))   # 0.305386113 0.375507109 -0.001672626
 *   EOF
 *
 * sklearn itself agrees (python3 -s, Debian's numpy): load_digits + train_test_split(test_size=0.2, shuffle=False)
 * gives (1437, 64) (360, 64), test counts [35 36 35 37 37 37 37 36 33 37], train pixel mean / 16 0.305386113 and
 * std 0.375507109, test image 0 summing to 347 with label 2.
 */
#include "data.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"

static char tmpdir[256];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int count_files(const char *dir, const char *sub)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, sub))
            n++;
    if (d)
        closedir(d);
    return n;
}
static char err[512];

static int one_line(const char *s)
{
    return strchr(s, '\n') == NULL && *s;
}

/* ---- IDX ---- */

static void write_gz(const char *path, const unsigned char *b, size_t n)
{
    gzFile g = gzopen(path, "wb");
    gzwrite(g, b, (unsigned)n);
    gzclose(g);
}

static void expect_idx_error(const char *name, const unsigned char *b, size_t n, int gz, const char *want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (gz)
        write_gz(path, b, n);
    else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
    celo_idx m;
    int rc = celo_idx_read(path, &m, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) == err && strstr(err, want) && one_line(err) && m.data == NULL,
          "idx error %s: %s", name, err);
}

static void test_idx(const char *dir)
{
    /* a valid 2x3 file, gzip and plain */
    unsigned char ok[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    char path[512];
    snprintf(path, sizeof path, "%s/ok.gz", tmpdir);
    write_gz(path, ok, sizeof ok);
    celo_idx m;
    int rc = celo_idx_read(path, &m, err, sizeof err);
    CHECK(rc == 0 && m.ndim == 2 && m.dim[0] == 2 && m.dim[1] == 3 && m.n == 6 && m.data[5] == 6,
          "idx: small gzip file %s", rc ? err : "");
    celo_idx_free(&m);
    snprintf(path, sizeof path, "%s/plain-ok", tmpdir);
    FILE *pf = fopen(path, "wb");
    fwrite(ok, 1, sizeof ok, pf);
    fclose(pf);
    rc = celo_idx_read(path, &m, err, sizeof err);
    CHECK(rc == 0 && m.n == 6, "idx: uncompressed file reads too");
    celo_idx_free(&m);

    unsigned char b[32];
    memcpy(b, ok, sizeof ok);
    b[0] = 1;
    expect_idx_error("magic.gz", b, sizeof ok, 1, "not an IDX file (bad magic)");
    memcpy(b, ok, sizeof ok);
    b[2] = 0x0D;
    expect_idx_error("type.gz", b, sizeof ok, 1, "element type 0x0d not supported");
    memcpy(b, ok, sizeof ok);
    b[3] = 9;
    expect_idx_error("ndim.gz", b, sizeof ok, 1, "9 dimensions");
    memcpy(b, ok, sizeof ok);
    b[7] = 0;
    expect_idx_error("zero.gz", b, sizeof ok, 1, "dimension 0 is 0");
    expect_idx_error("short-header.gz", ok, 9, 1, "truncated IDX header");
    expect_idx_error("short-data.gz", ok, sizeof ok - 2, 1, "truncated: 4 of 6 data bytes");
    unsigned char more[sizeof ok + 1];
    memcpy(more, ok, sizeof ok);
    more[sizeof ok] = 7;
    expect_idx_error("trailing.gz", more, sizeof more, 1, "trailing data after 6 bytes");
    expect_idx_error("empty.gz", ok, 0, 1, "bad magic");
    unsigned char huge[] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_idx_error("huge.gz", huge, sizeof huge, 1, "dimensions too large");

    /* a gzip stream cut in the middle: zlib's own error, named with the file */
    snprintf(path, sizeof path, "%s/cut.gz", tmpdir);
    {
        static unsigned char big[20000];
        big[2] = 8, big[3] = 1, big[6] = 0x4e, big[7] = 0x1c; /* 19996 bytes of data */
        for (size_t i = 8; i < sizeof big; i++)
            big[i] = (unsigned char)(i * 2654435761u >> 13);
        write_gz(path, big, sizeof big);
        if (truncate(path, 5000) != 0)
            perror("truncate");
        rc = celo_idx_read(path, &m, err, sizeof err);
        CHECK(rc == -1 && strstr(err, path) == err && one_line(err), "idx: cut gzip stream: %s", err);
    }
    snprintf(path, sizeof path, "%s/none.gz", tmpdir);
    rc = celo_idx_read(path, &m, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "none.gz: cannot open: No such file or directory"), "idx: missing file: %s", err);

    /* the real files */
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    rc = celo_idx_read(path, &m, err, sizeof err);
    int64_t sum = 0, sum0 = 0;
    if (rc == 0) {
        for (int64_t i = 0; i < m.n; i++)
            sum += m.data[i];
        for (int i = 0; i < 784; i++)
            sum0 += m.data[i];
    }
    CHECK(rc == 0 && m.ndim == 3 && m.dim[0] == 60000 && m.dim[1] == 28 && m.dim[2] == 28 && sum == 3431114169LL &&
              sum0 == 76247 && m.data[14 * 28 + 14] == 217 && m.data[5 * 28 + 20] == 23,
          "idx: train images [60000, 28, 28], pixel sum %lld (3431114169), image 0 sum %lld (76247) %s", (long long)sum,
          (long long)sum0, rc ? err : "");
    celo_idx_free(&m);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    rc = celo_idx_read(path, &m, err, sizeof err);
    static const uint8_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    CHECK(rc == 0 && m.ndim == 1 && m.dim[0] == 60000 && memcmp(m.data, first, 10) == 0,
          "idx: train labels [60000], first ten 9 0 0 3 0 2 7 2 5 5");
    celo_idx_free(&m);
}

/* ---- Fashion-MNIST ---- */

static void test_fmnist(void)
{
    celo_dataset tr, te;
    celo_fmnist_opts o = {0};
    int rc = celo_fmnist_load(&tr, &te, &o, err, sizeof err);
    CHECK(rc == 0, "fmnist 28x28 loads %s", rc ? err : "");
    if (rc)
        return;
    int cnt[10] = {0}, labels_ok = 1;
    for (int64_t i = 0; i < tr.n; i++) {
        if (tr.y[i] < 0 || tr.y[i] > 9)
            labels_ok = 0;
        else
            cnt[tr.y[i]]++;
    }
    for (int c = 0; c < 10; c++)
        labels_ok &= cnt[c] == 6000;
    float mn = 1, mx = 0;
    for (int64_t i = 0; i < tr.n * tr.dim; i++)
        mn = fminf(mn, tr.x[i]), mx = fmaxf(mx, tr.x[i]);
    CHECK(tr.n == 60000 && te.n == 10000 && tr.dim == 784 && tr.h == 28 && tr.w == 28 && tr.nclass == 10 &&
              strcmp(tr.name, "fashion_mnist/train") == 0,
          "fmnist: 60000 train / 10000 test, 784 features, 10 classes");
    CHECK(labels_ok && tr.y[0] == 9 && tr.y[3] == 3 && te.y[0] == 9 && te.y[1] == 2,
          "fmnist: labels int32, 6000 per class, train[0] = 9, test[0..1] = 9 2");
    CHECK(mn == 0.0f && mx == 1.0f && tr.x[14 * 28 + 14] == 217.0f / 255.0f && tr.x[5 * 28 + 20] == 23.0f / 255.0f,
          "fmnist: pixels in [0, 1], train[0][14,14] = 217/255, [5,20] = 23/255");
    double s = 0;
    for (int i = 0; i < 784; i++)
        s += te.x[i];
    CHECK(fabs(s - 33456 / 255.0) < 1e-4, "fmnist: test image 0 sums to 33456/255 (%.5f)", s);
    celo_dataset_free(&tr);
    celo_dataset_free(&te);

    /* 8x8, area averaging (the default) */
    o.size = 8;
    rc = celo_fmnist_load(&tr, NULL, &o, err, sizeof err);
    static const int at[5] = {0, 9, 27, 36, 63};
    static const double area[5] = {0, 0, 0.309243697, 0.843937575, 0.017206883};
    static const double bil[5] = {0, 0, 0.227205887, 0.850245118, 0};
    double maxd = 0;
    s = 0;
    if (rc == 0) {
        for (int k = 0; k < 5; k++)
            maxd = fmax(maxd, fabs(tr.x[at[k]] - area[k]));
        for (int i = 0; i < 64; i++)
            s += tr.x[i];
    }
    CHECK(rc == 0 && tr.dim == 64 && tr.h == 8 && tr.n == 60000 && maxd < 1e-6 && fabs(s - 24.408803521) < 1e-5,
          "fmnist 8x8 area: image 0 matches NumPy (max diff %.2g, sum %.7f vs 24.4088035)", maxd, s);
    double m1 = 0;
    for (int64_t i = 0; rc == 0 && i < tr.n * tr.dim; i++)
        m1 += tr.x[i];
    m1 /= (double)(tr.n * tr.dim);
    CHECK(fabs(m1 - 0.286040597) < 1e-6, "fmnist 8x8 area: train mean %.9f (NumPy 0.286040597)", m1);
    celo_dataset_free(&tr);

    /* 8x8 bilinear (TensorFlow's default resize) */
    o.resize = CELO_RESIZE_BILINEAR;
    rc = celo_fmnist_load(NULL, &te, &o, err, sizeof err);
    celo_dataset tr1;
    rc |= celo_fmnist_load(&tr1, NULL, &o, err, sizeof err);
    maxd = 0, s = 0;
    if (rc == 0) {
        for (int k = 0; k < 5; k++)
            maxd = fmax(maxd, fabs(tr1.x[at[k]] - bil[k]));
        for (int i = 0; i < 64; i++)
            s += tr1.x[i];
    }
    CHECK(rc == 0 && te.n == 10000 && te.dim == 64 && maxd < 1e-6 && fabs(s - 24.710539551) < 1e-5,
          "fmnist 8x8 bilinear: image 0 matches torch/TF (max diff %.2g, sum %.7f vs 24.7105396)", maxd, s);
    celo_dataset_free(&te);
    celo_dataset_free(&tr1);

    /* standardized with the train set's statistics */
    o.resize = CELO_RESIZE_AREA;
    o.normalize = 1;
    rc = celo_fmnist_load(&tr, &te, &o, err, sizeof err);
    double a = 0, a2 = 0, b = 0;
    for (int64_t i = 0; rc == 0 && i < tr.n * tr.dim; i++)
        a += tr.x[i], a2 += (double)tr.x[i] * tr.x[i];
    for (int64_t i = 0; rc == 0 && i < te.n * te.dim; i++)
        b += te.x[i];
    a /= (double)(tr.n * tr.dim), a2 /= (double)(tr.n * tr.dim), b /= (double)(te.n * te.dim);
    CHECK(rc == 0 && fabs(a) < 1e-5 && fabs(a2 - 1) < 1e-4 && fabs(tr.mean - 0.286040597) < 1e-6 &&
              fabs(tr.std - 0.304749255) < 1e-6 && te.mean == tr.mean && te.std == tr.std && fabs(b) < 0.05,
          "fmnist normalized: train mean %.2g var %.6f (mean %.6f std %.6f applied to test too; test mean %.3f)", a, a2,
          (double)tr.mean, (double)tr.std, b);
    celo_dataset_free(&tr);
    celo_dataset_free(&te);

    /* missing: one line naming the file and the package */
    setenv("CELO_FASHION_MNIST_DIR", "/nonexistent-celo", 1);
    rc = celo_fmnist_load(&tr, &te, NULL, err, sizeof err);
    CHECK(rc == -1 &&
              strcmp(err, "/nonexistent-celo/train-images-idx3-ubyte.gz: not found; install the Debian "
                          "package dataset-fashion-mnist") == 0 &&
              tr.x == NULL,
          "fmnist missing: %s", err);
    rc = celo_fmnist_load(NULL, &te, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "/nonexistent-celo/t10k-images-idx3-ubyte.gz: not found;"),
          "fmnist missing (test only): %s", err);
    unsetenv("CELO_FASHION_MNIST_DIR");
    o = (celo_fmnist_opts){.size = 29};
    rc = celo_fmnist_load(NULL, &te, &o, err, sizeof err);
    CHECK(rc == -1 && one_line(err), "fmnist size 29: %s", err);
}

/* ---- handwritten digits (python3-sklearn) ---- */

static const int digits_all[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
static const int digits_train[10] = {143, 146, 142, 146, 144, 145, 144, 143, 141, 143};
static const int digits_test[10] = {35, 36, 35, 37, 37, 37, 37, 36, 33, 37};

static void count_labels(const celo_dataset *d, int nclass, int *cnt, int *bad)
{
    for (int c = 0; c < nclass; c++)
        cnt[c] = 0;
    *bad = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->y[i] < 0 || d->y[i] >= nclass)
            (*bad)++;
        else
            cnt[d->y[i]]++;
    }
}

/* "v0,v1,...,v(n-1)" + end */
static void join_ints(char *buf, size_t len, const int *v, int n, const char *end)
{
    size_t l = 0;
    for (int k = 0; k < n && l < len; k++)
        l += (size_t)snprintf(buf + l, len - l, "%s%d", k ? "," : "", v[k]);
    if (l < len)
        snprintf(buf + l, len - l, "%s", end);
}

static void test_digits(void)
{
    celo_dataset tr, te;
    int rc = celo_digits_load(&tr, &te, NULL, err, sizeof err);
    CHECK(rc == 0, "digits loads %s", rc ? err : "");
    if (rc)
        return;
    int ctr[10], cte[10], badtr, badte, counts_ok = 1;
    count_labels(&tr, 10, ctr, &badtr);
    count_labels(&te, 10, cte, &badte);
    for (int c = 0; c < 10; c++)
        counts_ok &= ctr[c] == digits_train[c] && cte[c] == digits_test[c] && ctr[c] + cte[c] == digits_all[c];
    CHECK(tr.n == 1437 && te.n == 360 && tr.n + te.n == 1797 && tr.dim == 64 && tr.h == 8 && tr.w == 8 &&
              tr.nclass == 10 && te.nclass == 10 && !strcmp(tr.name, "digits/train") && !strcmp(te.name, "digits/test"),
          "digits: 1797 images, 1437 train / 360 test, 8x8, 10 classes");
    CHECK(counts_ok && !badtr && !badte && tr.y[0] == 0 && te.y[0] == 2 && te.y[359] == 8,
          "digits: labels 0..9 with Python's counts per class in each split (train[0] = 0, test[0] = 2, last = 8)");
    int on_grid = 1;
    double s0 = 0, st0 = 0, stl = 0, m = 0;
    float mn = 1, mx = 0;
    for (int64_t i = 0; i < tr.n * 64; i++) {
        float v = tr.x[i];
        mn = fminf(mn, v), mx = fmaxf(mx, v), m += v;
        on_grid &= v * 16.0f == floorf(v * 16.0f);
    }
    m /= (double)(tr.n * 64);
    for (int i = 0; i < 64; i++)
        s0 += tr.x[i], st0 += te.x[i], stl += te.x[359 * 64 + i];
    CHECK(mn == 0.0f && mx == 1.0f && on_grid && tr.mean == 0.0f && tr.std == 1.0f,
          "digits: pixels k / 16 in [0, 1] (min %g, max %g)", (double)mn, (double)mx);
    CHECK(s0 * 16 == 294 && st0 * 16 == 347 && stl * 16 == 392 && fabs(m - 0.305386113) < 1e-7,
          "digits: image sums 294, 347, 392 (/16) as Python reads them; train mean %.9f (Python 0.305386113)", m);
    celo_dataset_free(&tr);
    celo_dataset_free(&te);

    /* standardized with the train set's statistics */
    celo_digits_opts o = {.normalize = 1};
    rc = celo_digits_load(&tr, &te, &o, err, sizeof err);
    double a = 0, a2 = 0, b = 0;
    for (int64_t i = 0; rc == 0 && i < tr.n * tr.dim; i++)
        a += tr.x[i], a2 += (double)tr.x[i] * tr.x[i];
    for (int64_t i = 0; rc == 0 && i < te.n * te.dim; i++)
        b += te.x[i];
    a /= (double)(tr.n * tr.dim), a2 /= (double)(tr.n * tr.dim), b /= (double)(te.n * te.dim);
    CHECK(rc == 0 && fabs(a) < 1e-6 && fabs(a2 - 1) < 1e-5 && fabs(tr.mean - 0.305386113) < 1e-7 &&
              fabs(tr.std - 0.375507109) < 1e-7 && te.mean == tr.mean && te.std == tr.std &&
              fabs(b - -0.001672626) < 1e-6,
          "digits normalized: train mean %.2g var %.7f, mean %.9f std %.9f (Python 0.305386113 0.375507109); test "
          "mean %.9f (Python -0.001672626)",
          a, a2, (double)tr.mean, (double)tr.std, b);
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
    rc = celo_digits_load(NULL, &te, &o, err, sizeof err);
    CHECK(rc == 0 && te.n == 360 && fabs(te.mean - 0.305386113) < 1e-7,
          "digits: the test split alone is standardized with the train set's statistics");
    celo_dataset_free(&te);

    /* missing: one line naming the file and the package */
    setenv("CELO_DIGITS_DIR", "/nonexistent-celo", 1);
    rc = celo_digits_load(&tr, &te, NULL, err, sizeof err);
    unsetenv("CELO_DIGITS_DIR");
    CHECK(rc == -1 && tr.x == NULL && te.x == NULL &&
              !strcmp(err, "/nonexistent-celo/digits.csv.gz: not found; install the Debian package python3-sklearn"),
          "digits missing: %s", err);

    /* malformed files: one line naming the file and the line */
    int v[66];
    for (int k = 0; k < 64; k++)
        v[k] = k % 17;
    v[64] = 3, v[65] = 8;
    char good[400], text[2400], path[512];
    join_ints(good, sizeof good, v, 65, "\n");
    struct {
        int at, val, n; /* v[at] = val, then the first n values */
        const char *end, *want;
    } bad[] = {
        {0, 0, 3, "\n", "line 3: too few fields; want 65"},
        {0, 0, 66, "\n", "line 3: too many fields; want 65"},
        {0, 17, 65, "\n", "line 3: pixel 1 is 17, out of range 0..16"},
        {64, 10, 65, "\n", "line 3: label 10 is out of range 0..9"},
        {0, 0, 64, ",1.0\n", "line 3: field 65 is not a whole number"},
        {0, 0, 65, ",,\n", "line 3: too many fields; want 65"},
        {0, 0, 0, "-1\n", "line 3: field 1 is not a whole number"},
        {0, 0, -1, "", "1 images; want at least 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int w[66];
        memcpy(w, v, sizeof w);
        w[bad[i].at] = bad[i].val;
        char tail[400] = "";
        if (bad[i].n > 0)
            join_ints(tail, sizeof tail, w, bad[i].n, bad[i].end);
        else
            snprintf(tail, sizeof tail, "%s", bad[i].end);
        snprintf(text, sizeof text, "%s%s%s", good, bad[i].n < 0 ? "" : good, tail);
        char name[32];
        snprintf(name, sizeof name, "digits%zu.csv.gz", i);
        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        write_gz(path, (const unsigned char *)text, strlen(text));
        celo_digits_opts bo = {.path = path};
        rc = celo_digits_load(&tr, &te, &bo, err, sizeof err);
        CHECK(rc == -1 && one_line(err) && strstr(err, path) == err && strstr(err, bad[i].want) && tr.x == NULL,
              "digits bad file %zu: %s", i, err);
    }
    /* a well-formed file of 6 lines (CRLF, no final newline): 4 train, the last 2 test */
    char crlf[400];
    join_ints(crlf, sizeof crlf, v, 65, "\r\n");
    snprintf(text, sizeof text, "%s%s%s%s%s", crlf, crlf, crlf, crlf, crlf);
    v[64] = 9;
    join_ints(text + strlen(text), sizeof text - strlen(text), v, 65, "");
    snprintf(path, sizeof path, "%s/digits-small.csv.gz", tmpdir);
    write_gz(path, (const unsigned char *)text, strlen(text));
    celo_digits_opts so = {.path = path};
    rc = celo_digits_load(&tr, &te, &so, err, sizeof err);
    CHECK(rc == 0 && tr.n == 4 && te.n == 2 && te.y[1] == 9 && tr.y[0] == 3 && tr.x[16] == 16.0f / 16.0f &&
              tr.x[17] == 0.0f,
          "digits: a 6-line file splits 4 / 2 (ceil(6 / 5) = 2 test), no final newline %s", rc ? err : "");
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
}

/* ---- label variations (classes, permute_labels) on the digits ---- */

/* The map old label -> new label that out's labels follow, read off the data (examples in order, keep[c]: whether
 * class c is kept): -1 when some example contradicts it or the rows differ. */
static int infer_map(const celo_dataset *in, const celo_dataset *out, const int *keep, int *map)
{
    for (int c = 0; c < 10; c++)
        map[c] = -1;
    int64_t o = 0;
    for (int64_t i = 0; i < in->n; i++) {
        int c = in->y[i];
        if (!keep[c])
            continue;
        if (o >= out->n || memcmp(in->x + i * 64, out->x + o * 64, 64 * sizeof(float)))
            return -1;
        if (map[c] < 0)
            map[c] = out->y[o];
        else if (map[c] != out->y[o])
            return -1;
        o++;
    }
    return o == out->n ? 0 : -1;
}

static void test_labels(void)
{
    celo_dataset tr, te, a, b;
    int rc = celo_digits_load(&tr, &te, NULL, err, sizeof err);
    if (rc) {
        CHECK(0, "labels: digits load %s", err);
        return;
    }
    int keep[10] = {0}, map[10], cnt[16], nbad;
    /* classes = [0, 3, 5]: 0 -> 0, 3 -> 1, 5 -> 2 */
    int cl[] = {0, 3, 5};
    keep[0] = keep[3] = keep[5] = 1;
    rc = celo_dataset_relabel(&a, &tr, cl, 3, 0, err, sizeof err);
    rc |= celo_dataset_relabel(&b, &te, cl, 3, 0, err, sizeof err);
    int ok = rc == 0 && infer_map(&tr, &a, keep, map) == 0 && map[0] == 0 && map[3] == 1 && map[5] == 2 &&
             infer_map(&te, &b, keep, map) == 0 && map[0] == 0 && map[3] == 1 && map[5] == 2;
    CHECK(
        ok && a.n == 143 + 146 + 145 && b.n == 35 + 37 + 37 && a.nclass == 3 && b.nclass == 3 && a.h == 8,
        "labels: classes [0, 3, 5] keep %lld train / %lld test examples (Python's counts 434 / 109), relabelled 0 1 2 "
        "in that order, pixels unchanged %s",
        (long long)a.n, (long long)b.n, rc ? err : "");
    celo_dataset_free(&a);
    celo_dataset_free(&b);
    /* the order of the list decides the labels */
    int cl2[] = {5, 0, 3};
    rc = celo_dataset_relabel(&a, &tr, cl2, 3, 0, err, sizeof err);
    CHECK(rc == 0 && infer_map(&tr, &a, keep, map) == 0 && map[5] == 0 && map[0] == 1 && map[3] == 2,
          "labels: classes [5, 0, 3] relabel 5 -> 0, 0 -> 1, 3 -> 2");
    celo_dataset_free(&a);

    /* permute_labels = 7: a permutation of the 10 labels, the examples unchanged */
    for (int c = 0; c < 10; c++)
        keep[c] = 1;
    rc = celo_dataset_relabel(&a, &tr, NULL, 0, 7, err, sizeof err);
    rc |= celo_dataset_relabel(&b, &te, NULL, 0, 7, err, sizeof err);
    int seen[10] = {0}, is_perm = 1, moved = 0, counts_ok = 1, map_te[10];
    ok = rc == 0 && infer_map(&tr, &a, keep, map) == 0 && infer_map(&te, &b, keep, map_te) == 0 &&
         !memcmp(map, map_te, sizeof map);
    for (int c = 0; ok && c < 10; c++) {
        is_perm &= map[c] >= 0 && map[c] < 10 && !seen[map[c]]++;
        moved += map[c] != c;
    }
    if (ok) {
        count_labels(&a, 10, cnt, &nbad);
        for (int c = 0; c < 10; c++)
            counts_ok &= cnt[map[c]] == digits_train[c];
        count_labels(&b, 10, cnt, &nbad);
        for (int c = 0; c < 10; c++)
            counts_ok &= cnt[map[c]] == digits_test[c];
    }
    CHECK(ok && is_perm && moved >= 2 && counts_ok && a.n == 1437 && b.n == 360 && a.nclass == 10,
          "labels: permute_labels = 7 is one permutation on both splits (%d of 10 labels move: %d %d %d %d %d %d %d %d "
          "%d %d); each new label counts its old label's examples",
          moved, map[0], map[1], map[2], map[3], map[4], map[5], map[6], map[7], map[8], map[9]);
    celo_dataset_free(&b);
    int map8[10];
    rc = celo_dataset_relabel(&b, &tr, NULL, 0, 7, err, sizeof err);
    CHECK(rc == 0 && !memcmp(a.y, b.y, sizeof(int32_t) * (size_t)a.n), "labels: permute_labels = 7 twice: the same");
    celo_dataset_free(&b);
    rc = celo_dataset_relabel(&b, &tr, NULL, 0, 8, err, sizeof err);
    CHECK(rc == 0 && infer_map(&tr, &b, keep, map8) == 0 && memcmp(map, map8, sizeof map),
          "labels: permute_labels = 8 is another permutation");
    celo_dataset_free(&a);
    celo_dataset_free(&b);

    /* both: classes [9, 2] then a permutation of the two new labels */
    int cl3[] = {9, 2};
    for (int c = 0; c < 10; c++)
        keep[c] = c == 9 || c == 2;
    int both_ok = 1, swapped = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        rc = celo_dataset_relabel(&a, &tr, cl3, 2, seed, err, sizeof err);
        both_ok &= rc == 0 && a.n == 143 + 142 && a.nclass == 2 && infer_map(&tr, &a, keep, map) == 0 &&
                   map[9] + map[2] == 1 && map[9] >= 0 && map[2] >= 0;
        swapped += rc == 0 && map[9] == 1;
        celo_dataset_free(&a);
    }
    CHECK(both_ok && swapped > 0 && swapped < 8,
          "labels: classes [9, 2] with permute_labels 1..8: 285 examples, labels {0, 1}, swapped by %d of 8 seeds",
          swapped);

    /* errors: one line naming the data set */
    struct {
        int cl[11], k;
        const char *want;
    } bad[] = {
        {{3}, 1, "digits/train: labels: keeping 1 classes of 10 (want 2..10)"},
        {{3, 10}, 2, "digits/train: labels: class 10 is out of range 0..9"},
        {{-1, 2}, 2, "digits/train: labels: class -1 is out of range 0..9"},
        {{4, 2, 4}, 3, "digits/train: labels: class 4 is listed twice"},
        {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0}, 11, "digits/train: labels: keeping 11 classes of 10 (want 2..10)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = celo_dataset_relabel(&a, &tr, bad[i].cl, bad[i].k, 5, err, sizeof err);
        CHECK(rc == -1 && !strcmp(err, bad[i].want) && a.x == NULL, "labels: bad classes %zu: %s", i, err);
    }
    celo_dataset_free(&tr);
    celo_dataset_free(&te);

    /* Fashion-MNIST 8x8: 6000 train / 1000 test per class */
    celo_fmnist_opts fo = {.size = 8};
    rc = celo_fmnist_load(&tr, &te, &fo, err, sizeof err);
    int cl4[] = {7, 1};
    rc |= celo_dataset_relabel(&a, &tr, cl4, 2, 0, err, sizeof err);
    rc |= celo_dataset_relabel(&b, &te, cl4, 2, 0, err, sizeof err);
    for (int c = 0; c < 10; c++)
        keep[c] = c == 7 || c == 1;
    CHECK(rc == 0 && a.n == 12000 && b.n == 2000 && infer_map(&tr, &a, keep, map) == 0 && map[7] == 0 && map[1] == 1,
          "labels: fashion_mnist classes [7, 1]: 12000 train / 2000 test, 7 -> 0, 1 -> 1 %s", rc ? err : "");
    celo_dataset_free(&a);
    celo_dataset_free(&b);
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
}

/* ---- resize on a synthetic image: area averaging keeps the mean exactly ---- */

static void test_resize(void)
{
    float img[28 * 28], out[64];
    double s = 0;
    for (int i = 0; i < 28 * 28; i++)
        img[i] = (float)((i * 37) % 101) / 100.0f, s += img[i];
    celo_image_resize(img, 28, 28, out, 8, CELO_RESIZE_AREA);
    double so = 0;
    for (int i = 0; i < 64; i++)
        so += out[i];
    CHECK(fabs(so / 64 - s / 784) < 1e-6, "resize area: mean preserved (%.7f vs %.7f)", so / 64, s / 784);
    for (int i = 0; i < 28 * 28; i++)
        img[i] = 0.25f;
    celo_image_resize(img, 28, 28, out, 8, CELO_RESIZE_BILINEAR);
    int flat = 1;
    for (int i = 0; i < 64; i++)
        flat &= fabsf(out[i] - 0.25f) < 1e-7f;
    celo_image_resize(img, 28, 28, out, 8, CELO_RESIZE_AREA);
    for (int i = 0; i < 64; i++)
        flat &= fabsf(out[i] - 0.25f) < 1e-7f;
    CHECK(flat, "resize: a constant image stays constant (both methods)");
    float src[16], dst[4];
    for (int i = 0; i < 16; i++)
        src[i] = (float)i;
    celo_image_resize(src, 4, 4, dst, 2, CELO_RESIZE_AREA);
    CHECK(dst[0] == 2.5f && dst[1] == 4.5f && dst[2] == 10.5f && dst[3] == 12.5f, "resize area 4x4 -> 2x2: 2x2 means");
}

/* ---- text ---- */

static void test_text(void)
{
    celo_text t;
    const char *s = "ab\ncab\nbca\nabc\n";
    int rc = celo_text_from_memory(&t, "tiny", s, (int64_t)strlen(s), 0.25, err, sizeof err);
    CHECK(rc == 0 && t.vocab == 4 && t.itos[0] == '\n' && t.itos[3] == 'c' && t.stoi['a'] == 1 && t.stoi['z'] == -1 &&
              t.split == 11 && celo_text_len(&t, CELO_SPLIT_VAL) == 4 && t.n == 15,
          "text: vocabulary in byte order, validation starts at a line (split %lld)", (long long)t.split);
    int32_t x[8], y[8];
    char dec[9];
    celo_text_window(&t, CELO_SPLIT_VAL, 0, 3, x, y);
    celo_text_decode(&t, x, 3, dec);
    CHECK(strcmp(dec, "abc") == 0 && y[2] == t.stoi['\n'], "text: validation window 0 is 'abc' -> 'bc\\n'");
    celo_text_free(&t);
    rc = celo_text_from_memory(&t, "tiny", s, 1, 0.1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "tiny: text too short"), "text: too short: %s", err);
    rc = celo_text_from_memory(&t, "tiny", s, 10, 1.0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "validation fraction"), "text: bad fraction: %s", err);

    char cache[300], cache2[300];
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    snprintf(cache2, sizeof cache2, "%s/cache2", tmpdir);
    setenv("CELO_CACHE_DIR", cache, 1);
    double t0 = now();
    rc = celo_text_load_kjv(&t, 0.1, err, sizeof err);
    double t1 = now();
    CHECK(rc == 0, "kjv loads (bible program: %.3f s) %s", t1 - t0, rc ? err : "");
    if (rc)
        return;
    celo_text t2;
    rc = celo_text_load_kjv(&t2, 0.1, err, sizeof err);
    double t2s = now();
    int cached_files = count_files(cache, "kjv-v1-");
    CHECK(rc == 0 && t2.n == t.n && t2.split == t.split && t2.vocab == t.vocab &&
              memcmp(t2.ids, t.ids, (size_t)t.n) == 0 && cached_files == 1 && count_files(cache, ".tmp.") == 0,
          "kjv: second load from the cache (%.3f s), identical text", t2s - t1);
    if (rc == 0)
        celo_text_free(&t2);
    setenv("CELO_CACHE_DIR", cache2, 1); /* the checks of missing files below must not hit the cache */
    int64_t lines = 0, digits = 0;
    for (int64_t i = 0; i < t.n; i++) {
        unsigned char c = t.itos[t.ids[i]];
        lines += c == '\n';
        digits += c >= '0' && c <= '9';
    }
    static const char gen[] = "In the beginning God created the heaven and the earth.\nAnd the earth was";
    char head[sizeof gen];
    int32_t ids[sizeof gen];
    for (size_t i = 0; i + 1 < sizeof gen; i++)
        ids[i] = t.ids[i];
    celo_text_decode(&t, ids, (int64_t)sizeof gen - 1, head);
    static const char rev[] = "The grace of our Lord Jesus Christ be with you all. Amen.\n";
    char tail[sizeof rev];
    for (size_t i = 0; i + 1 < sizeof rev; i++)
        ids[i] = t.ids[t.n - (int64_t)sizeof rev + 1 + (int64_t)i];
    celo_text_decode(&t, ids, (int64_t)sizeof rev - 1, tail);
    CHECK(strcmp(head, gen) == 0 && strcmp(tail, rev) == 0, "kjv: starts with Genesis 1:1-2, ends with Rev 22:21");
    CHECK(lines == 31102 && digits == 0 && t.vocab < 80 && t.n > 4000000 && t.n < 4400000,
          "kjv: %lld verses, one per line, no verse numbers (%lld digits), %lld chars, vocabulary %d", (long long)lines,
          (long long)digits, (long long)t.n, t.vocab);
    int64_t vlen = celo_text_len(&t, CELO_SPLIT_VAL);
    CHECK(t.itos[t.ids[t.split - 1]] == '\n' && vlen > t.n / 10 - 1000 && vlen <= t.n / 10 + 1,
          "kjv: last 10%% is validation (%lld chars), starting at a verse", (long long)vlen);

    /* random windows: deterministic in (seed, split, step), targets shifted by one, inside the split */
    enum { B = 4, T = 64 };
    int32_t x1[B * T], y1[B * T], x2[B * T], y2[B * T];
    celo_text_batch(&t, CELO_SPLIT_TRAIN, 7, 3, B, T, x1, y1);
    celo_text_batch(&t, CELO_SPLIT_TRAIN, 7, 3, B, T, x2, y2);
    int same = memcmp(x1, x2, sizeof x1) == 0 && memcmp(y1, y2, sizeof y1) == 0;
    int shifted = 1;
    for (int b = 0; b < B; b++)
        for (int i = 0; i + 1 < T; i++)
            shifted &= y1[b * T + i] == x1[b * T + i + 1];
    celo_text_batch(&t, CELO_SPLIT_TRAIN, 7, 4, B, T, x2, y2);
    int differ = memcmp(x1, x2, sizeof x1) != 0;
    celo_text_batch(&t, CELO_SPLIT_TRAIN, 8, 3, B, T, x2, y2);
    differ &= memcmp(x1, x2, sizeof x1) != 0;
    CHECK(same && shifted && differ,
          "kjv windows: same (seed, step) same batch; y = x shifted; other step/seed differ");
    /* windows of the validation split lie in it: find each window's text in the validation part */
    int inside = 1;
    for (int step = 0; step < 50; step++) {
        celo_text_batch(&t, CELO_SPLIT_VAL, 1, (uint64_t)step, B, T, x1, y1);
        for (int b = 0; b < B; b++) {
            int found = 0;
            for (int64_t p = t.split; p + T + 1 <= t.n && !found; p++) {
                if (t.ids[p] != x1[b * T])
                    continue;
                int eq = 1;
                for (int i = 0; i < T && eq; i++)
                    eq = t.ids[p + i] == x1[b * T + i] && t.ids[p + i + 1] == y1[b * T + i];
                found = eq;
            }
            inside &= found;
        }
        if (!inside)
            break;
    }
    CHECK(inside, "kjv windows: validation windows come from the validation text");
    CHECK(celo_text_num_windows(&t, CELO_SPLIT_VAL, T) == (vlen - 1) / T &&
              celo_text_batch(&t, CELO_SPLIT_VAL, 1, 0, 1, (int)vlen, x1, y1) == -1,
          "kjv: evaluation windows count; a window longer than the split is refused");
    celo_text_free(&t);

    /* missing program or data: one line naming the package */
    setenv("CELO_BIBLE_DIR", "/nonexistent-celo", 1);
    rc = celo_text_load_kjv(&t, 0.1, err, sizeof err);
    CHECK(rc == -1 && strcmp(err, "/nonexistent-celo/bible.data: not found; install the Debian package bible-kjv") == 0,
          "kjv missing data: %s", err);
    unsetenv("CELO_BIBLE_DIR");
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", tmpdir, 1);
    rc = celo_text_load_kjv(&t, 0.1, err, sizeof err);
    CHECK(rc == -1 && strcmp(err, "bible: not found; install the Debian package bible-kjv") == 0,
          "kjv missing program: %s", err);
    if (path)
        setenv("PATH", path, 1), free(path);
    /* a plain text file instead */
    char tp[512];
    snprintf(tp, sizeof tp, "%s/corpus.txt", tmpdir);
    FILE *f = fopen(tp, "w");
    fputs("hello world\nsecond line\n", f);
    fclose(f);
    setenv("CELO_BIBLE_TEXT", tp, 1);
    rc = celo_text_load_kjv(&t, 0.0, err, sizeof err);
    CHECK(rc == 0 && t.n == 24 && t.split == 24, "kjv: CELO_BIBLE_TEXT replaces the corpus");
    celo_text_free(&t);
    unsetenv("CELO_BIBLE_TEXT");
    snprintf(tp, sizeof tp, "%s/none.txt", tmpdir);
    rc = celo_text_load_file(&t, tp, 0.1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, tp) == err && strstr(err, "No such file"), "text file missing: %s", err);
}

/* ---- teacher networks ---- */

static void test_teacher(void)
{
    celo_teacher_opts o = {.in = 16, .nhidden = 2, .hidden = {32, 32}, .out = 4, .classify = 1, .seed = 11};
    celo_dataset a, b, c, te;
    int rc = celo_teacher_dataset(&a, &o, CELO_SPLIT_TRAIN, 2000, err, sizeof err);
    rc |= celo_teacher_dataset(&b, &o, CELO_SPLIT_TRAIN, 1000, err, sizeof err);
    rc |= celo_teacher_dataset(&te, &o, CELO_SPLIT_TEST, 1000, err, sizeof err);
    CHECK(rc == 0, "teacher: classification datasets %s", rc ? err : "");
    if (rc)
        return;
    int prefix = memcmp(a.x, b.x, sizeof(float) * 1000 * 16) == 0 && memcmp(a.y, b.y, sizeof(int32_t) * 1000) == 0;
    int cnt[4] = {0};
    for (int64_t i = 0; i < a.n; i++)
        cnt[a.y[i]]++;
    int used = 0;
    for (int k = 0; k < 4; k++)
        used += cnt[k] > 50;
    CHECK(prefix && memcmp(a.x, te.x, sizeof(float) * 16) != 0 && a.nclass == 4 && a.dim == 16 && a.t == NULL,
          "teacher: example i depends on (seed, split, i) only; test split differs");
    CHECK(used >= 3, "teacher: labels use the classes (%d %d %d %d)", cnt[0], cnt[1], cnt[2], cnt[3]);
    o.seed = 12;
    rc = celo_teacher_dataset(&c, &o, CELO_SPLIT_TRAIN, 1000, err, sizeof err);
    int diff = 0;
    for (int i = 0; i < 1000; i++)
        diff += c.y[i] != b.y[i];
    CHECK(rc == 0 && diff > 100, "teacher: another seed, another teacher (%d of 1000 labels differ)", diff);
    celo_dataset_free(&a), celo_dataset_free(&b), celo_dataset_free(&c), celo_dataset_free(&te);

    /* regression: noise-free targets are a deterministic function of x; noise has the asked std */
    celo_teacher_opts r = {.in = 8, .nhidden = 1, .hidden = {16}, .out = 2, .classify = 0, .noise = 0, .seed = 3};
    rc = celo_teacher_dataset(&a, &r, CELO_SPLIT_TRAIN, 5000, err, sizeof err);
    r.noise = 0.5f;
    rc |= celo_teacher_dataset(&b, &r, CELO_SPLIT_TRAIN, 5000, err, sizeof err);
    double m = 0, v = 0;
    for (int64_t i = 0; rc == 0 && i < 10000; i++) {
        double e = b.t[i] - a.t[i];
        m += e, v += e * e;
    }
    m /= 10000, v /= 10000;
    CHECK(rc == 0 && a.ydim == 2 && a.nclass == 0 && a.y == NULL && fabs(m) < 0.03 && fabs(sqrt(v) - 0.5) < 0.02,
          "teacher regression: noise mean %.4f std %.4f (0.5)", m, sqrt(v));
    celo_dataset_free(&a), celo_dataset_free(&b);
    r.nhidden = 5;
    rc = celo_teacher_dataset(&a, &r, 0, 10, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "teacher: bad options"), "teacher: bad options: %s", err);
}

/* ---- quadratics ---- */

static void test_quadratic(void)
{
    for (int rot = 0; rot < 2; rot++) {
        celo_quadratic_opts o = {.dim = 40, .cond = 1000, .rotate = rot, .seed = 5};
        celo_quadratic q, q2;
        int rc = celo_quadratic_make(&q, &o, err, sizeof err);
        rc |= celo_quadratic_make(&q2, &o, err, sizeof err);
        CHECK(rc == 0, "quadratic (rotate %d) %s", rot, rc ? err : "");
        if (rc)
            return;
        int det =
            memcmp(q.x0, q2.x0, 40 * sizeof(float)) == 0 && (!rot || memcmp(q.A, q2.A, 40 * 40 * sizeof(float)) == 0);
        CHECK(det && q.eig[0] == 1.0f && fabs(q.eig[39] - 1e-3) < 1e-9 && (rot ? q.A != NULL : q.A == NULL),
              "quadratic (rotate %d): seeded; eigenvalues 1 .. 1/cond", rot);
        /* gradient against central differences in double */
        float g[40], xp[40];
        double L = celo_quadratic_loss(&q, q.x0, g), maxe = 0;
        for (int i = 0; i < 40; i++) {
            memcpy(xp, q.x0, sizeof xp);
            float h = 1e-2f;
            xp[i] = q.x0[i] + h;
            double lp = celo_quadratic_loss(&q, xp, NULL);
            xp[i] = q.x0[i] - h;
            double lm = celo_quadratic_loss(&q, xp, NULL);
            double fd = (lp - lm) / (2.0 * h);
            maxe = fmax(maxe, fabs(fd - g[i]));
        }
        CHECK(L > 0 && maxe < 1e-4, "quadratic (rotate %d): gradient = central differences (max err %.2g)", rot, maxe);
        if (rot) {
            double tr = 0, fro = 0, se = 0, se2 = 0, asym = 0;
            for (int i = 0; i < 40; i++) {
                tr += q.A[i * 40 + i];
                se += q.eig[i], se2 += (double)q.eig[i] * q.eig[i];
                for (int k = 0; k < 40; k++) {
                    fro += (double)q.A[i * 40 + k] * q.A[i * 40 + k];
                    asym = fmax(asym, fabs(q.A[i * 40 + k] - q.A[k * 40 + i]));
                }
            }
            CHECK(asym == 0 && fabs(tr - se) < 1e-5 && fabs(fro - se2) < 1e-5,
                  "quadratic rotated: symmetric, trace = sum(eig), |A|_F^2 = sum(eig^2) (Q orthogonal)");
        }
        celo_quadratic_free(&q);
        celo_quadratic_free(&q2);
    }
    celo_quadratic q;
    celo_quadratic_opts bad = {.dim = 4, .cond = 0.5};
    CHECK(celo_quadratic_make(&q, &bad, err, sizeof err) == -1 && one_line(err), "quadratic bad cond: %s", err);
}

/* ---- shuffling and cursors ---- */

static int is_perm(uint64_t seed, int64_t epoch, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        int64_t v = celo_shuffle_index(seed, epoch, n, i);
        if (v < 0 || v >= n || seen[v])
            ok = 0;
        else
            seen[v] = 1;
    }
    free(seen);
    return ok;
}

static void test_batching(void)
{
    int ok = 1;
    for (int64_t n = 1; n <= 70; n++)
        ok &= is_perm(3, 0, n) && is_perm(3, 5, n);
    CHECK(ok, "shuffle: a permutation for every n in 1..70");
    CHECK(is_perm(1, 0, 60000) && is_perm(1, 1, 60000) && is_perm(99, 7, 10000), "shuffle: a permutation of 60000");
    int moved = 0, differ = 0, seeds = 0;
    for (int64_t i = 0; i < 1000; i++) {
        moved += celo_shuffle_index(1, 0, 60000, i) != i;
        differ += celo_shuffle_index(1, 0, 60000, i) != celo_shuffle_index(1, 1, 60000, i);
        seeds += celo_shuffle_index(1, 0, 60000, i) != celo_shuffle_index(2, 0, 60000, i);
    }
    CHECK(moved > 990 && differ > 990 && seeds > 990, "shuffle: shuffled; epochs and seeds give other orders");
    /* the first batch of an epoch is spread over the data set (mean index near n/2) */
    double mean = 0;
    for (int64_t i = 0; i < 6000; i++)
        mean += (double)celo_shuffle_index(4, 2, 60000, i);
    mean /= 6000;
    CHECK(fabs(mean - 30000) < 1000, "shuffle: first 10%% of an epoch has mean index %.0f (30000)", mean);

    /* cursor: drop-last, epoch rollover, batch k of epoch e by direct address */
    celo_cursor c;
    CHECK(celo_cursor_init(&c, 9, 10, 3, err, sizeof err) == 0 && celo_cursor_batches_per_epoch(&c) == 3,
          "cursor: 10 examples, batch 3 -> 3 batches per epoch (drop last)");
    int64_t idx[3], e0[9], want[3];
    for (int k = 0; k < 3; k++)
        celo_cursor_next(&c, e0 + 3 * k);
    int distinct = 1;
    for (int i = 0; i < 9; i++)
        for (int j = i + 1; j < 9; j++)
            distinct &= e0[i] != e0[j];
    CHECK(distinct && c.epoch == 1 && c.k == 0, "cursor: one epoch gives 9 distinct indices, then epoch 1");
    celo_cursor_next(&c, idx);
    celo_epoch_batch(9, 10, 3, 1, 0, want);
    CHECK(memcmp(idx, want, sizeof idx) == 0, "cursor: batch 0 of epoch 1 == celo_epoch_batch(seed, n, B, 1, 0)");
    CHECK(celo_cursor_init(&c, 9, 2, 3, err, sizeof err) == -1 && one_line(err), "cursor: batch > n: %s", err);

    /* save / restore mid-run reproduces the rest of the run */
    celo_cursor run, saved;
    celo_cursor_init(&run, 1234, 60000, 128, err, sizeof err);
    enum { STEPS = 1000, CUT = 700, B = 128 };
    static int64_t all[STEPS][B], again[STEPS - CUT][B];
    char buf[160] = "";
    for (int s = 0; s < STEPS; s++) {
        if (s == CUT)
            celo_cursor_format(&run, buf, sizeof buf);
        celo_cursor_next(&run, all[s]);
    }
    int prc = celo_cursor_parse(&saved, buf, err, sizeof err);
    for (int s = CUT; s < STEPS; s++)
        celo_cursor_next(&saved, again[s - CUT]);
    CHECK(prc == 0 && strcmp(buf, "seed=1234 n=60000 batch=128 epoch=1 k=232") == 0 &&
              memcmp(all[CUT], again[0], sizeof again) == 0,
          "cursor: '%s' restored, steps %d..%d identical", buf, CUT, STEPS - 1);
    celo_cursor_seek(&saved, CUT);
    int64_t idxb[B];
    celo_cursor_next(&saved, idxb);
    CHECK(celo_cursor_step(&run) == STEPS && memcmp(idxb, all[CUT], sizeof idxb) == 0,
          "cursor: seek(step) positions at that batch; step() counts batches");
    static const char *const badc[] = {"",
                                       "seed=1 n=10 batch=3 epoch=0",
                                       "seed=1 n=10 batch=3 epoch=0 k=3",
                                       "seed=1 n=10 batch=0 epoch=0 k=0",
                                       "seed=-1 n=10 batch=3 epoch=0 k=0",
                                       "seed=1 n=10 batch=3 epoch=0 k=0 ",
                                       "seed=99999999999999999999 n=10 batch=3 "
                                       "epoch=0 k=0"};
    int allbad = 1;
    for (size_t i = 0; i < sizeof badc / sizeof *badc; i++)
        allbad &= celo_cursor_parse(&saved, badc[i], err, sizeof err) == -1;
    CHECK(allbad && one_line(err), "cursor: malformed strings refused (%s)", err);

    /* gather */
    celo_dataset d = {.n = 5, .dim = 2, .nclass = 3};
    float xs[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, gx[4];
    int32_t ys[5] = {0, 1, 2, 0, 1}, gy[2];
    d.x = xs, d.y = ys;
    int64_t gi[2] = {4, 1};
    celo_dataset_gather(&d, gi, 2, gx, gy, NULL);
    CHECK(gx[0] == 8 && gx[1] == 9 && gx[2] == 2 && gx[3] == 3 && gy[0] == 1 && gy[1] == 1, "gather: rows 4, 1");
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/celo-test-data.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *dir = getenv("CELO_FASHION_MNIST_DIR");
    test_idx(dir && *dir ? dir : CELO_FMNIST_DEFAULT_DIR);
    test_fmnist();
    test_digits();
    test_labels();
    test_resize();
    test_text();
    test_teacher();
    test_quadratic();
    test_batching();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%s\n", fails ? "FAILED" : "all ok");
    return fails ? 1 : 0;
}
