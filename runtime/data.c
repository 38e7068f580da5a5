/*
 * data.c — datasets and batching for the celo runtime (see data.h).
 */
#include "data.h"
#include "celort.h"
#include "errmsg.h"
#include "fileio.h"

#include "rng.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

extern char **environ;

/* Streams of rng.h used here: the top byte names the user ('S' shuffling, 'X' text windows, 'T' teacher
 * networks, 'Q' quadratics), far from the small stream numbers (instance, tensor) of model code. */
#define STREAM(tag, sub) (((uint64_t)(unsigned char)(tag) << 56) | ((uint64_t)(sub)&0x00ffffffffffffffull))

/* A 64-bit random value that is a pure function of (seed, stream, counter): one Philox block. */
static uint64_t hash64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    celo_philox4x32(ctr, key, w);
    return (uint64_t)w[0] | (uint64_t)w[1] << 32;
}

/* x[j] ~ N(mean, std^2): the first n numbers of the stream (a prefix of a longer draw is the same). */
static void fill_normal(uint64_t seed, uint64_t stream, float *x, int64_t n, float mean, float std)
{
    celo_rng r;
    celo_rng_init(&r, seed, stream);
    celo_rng_fill_normal(&r, x, n, mean, std);
}

#define seterr celo_seterr /* the runtime's one error helper (errmsg.h), under this file's old name */

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static const char *env_or(const char *var, const char *def)
{
    const char *v = getenv(var);
    return v && *v ? v : def;
}

/* ================================ datasets ================================ */

void celo_dataset_free(celo_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    free(d->t);
    memset(d, 0, sizeof *d);
}

/* An example array of n floats: in 2 MiB-aligned memory that the kernel may back with huge pages
 * (MADV_HUGEPAGE), since batches read rows scattered over all of it and each row would otherwise cost a TLB miss
 * (gathering half a 28x28 Fashion-MNIST batch of 128 inside a training step: 48-54 us before, 38 us after). */
static float *examples_alloc(size_t n)
{
    size_t bytes = n * sizeof(float), align = (size_t)2 << 20;
    void *x = NULL;
    if (bytes < align)
        return malloc(bytes ? bytes : 1);
    if (posix_memalign(&x, align, (bytes + align - 1) / align * align))
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(x, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
    return x;
}

/* rows split over threads for large batches: the rows are scattered over the dataset, so the copy waits on
 * memory more than it moves bytes, and two threads wait in parallel */
void celo_dataset_gather(const celo_dataset *d, const int64_t *idx, int64_t B, float *x, int32_t *y, float *t)
{
#pragma omp parallel for schedule(static) if (B * d->dim >= 32768)
    for (int64_t b = 0; b < B; b++) {
        int64_t i = idx[b];
        if (x)
            memcpy(x + b * d->dim, d->x + i * d->dim, (size_t)d->dim * sizeof(float));
        if (y && d->y)
            y[b] = d->y[i];
        if (t && d->t)
            memcpy(t + b * d->ydim, d->t + i * d->ydim, (size_t)d->ydim * sizeof(float));
    }
}

void celo_dataset_slice(const celo_dataset *d, int64_t i0, int64_t B, float *x, int32_t *y, float *t)
{
    if (x)
        memcpy(x, d->x + i0 * d->dim, (size_t)(B * d->dim) * sizeof(float));
    if (y && d->y)
        memcpy(y, d->y + i0, (size_t)B * sizeof(int32_t));
    if (t && d->t)
        memcpy(t, d->t + i0 * d->ydim, (size_t)(B * d->ydim) * sizeof(float));
}

/* ================================ IDX ================================ */

#define IDX_MAX_BYTES ((int64_t)1 << 36) /* 64 GiB: far beyond any IDX file; guards garbage dimensions */

/* Reads exactly len bytes; returns the number read (less at end of file), or -1 on a stream error. */
static int64_t gz_read_all(gzFile g, void *buf, int64_t len)
{
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got;
        if (want > (1 << 30))
            want = 1 << 30;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

static const char *gz_errmsg(gzFile g)
{
    int e = Z_OK;
    const char *m = gzerror(g, &e);
    if (e == Z_ERRNO)
        return strerror(errno);
    return m && *m ? m : "read error";
}

/* pkg: when not NULL, a missing file says which Debian package provides it. */
static int idx_read(const char *path, celo_idx *out, const char *pkg, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && pkg)
            seterr(err, errlen, "%s: not found; install the Debian package %s", path, pkg);
        else
            seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        close(fd);
        seterr(err, errlen, "%s: cannot open: out of memory", path);
        return -1;
    }
    gzbuffer(g, 1 << 17);
    int rc = -1;
    unsigned char h[4 + 4 * 4];
    int64_t r = gz_read_all(g, h, 4);
    if (r < 0) {
        seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < 4 || h[0] != 0 || h[1] != 0) {
        seterr(err, errlen, "%s: not an IDX file (bad magic)", path);
        goto done;
    }
    if (h[2] != 0x08) {
        seterr(err, errlen, "%s: IDX element type 0x%02x not supported (want unsigned byte, 0x08)", path, h[2]);
        goto done;
    }
    int nd = h[3];
    if (nd < 1 || nd > 4) {
        seterr(err, errlen, "%s: IDX file with %d dimensions (want 1 to 4)", path, nd);
        goto done;
    }
    r = gz_read_all(g, h + 4, 4 * nd);
    if (r < 0) {
        seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < 4 * nd) {
        seterr(err, errlen, "%s: truncated IDX header", path);
        goto done;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        const unsigned char *b = h + 4 + 4 * i;
        int64_t d = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        if (d == 0) {
            seterr(err, errlen, "%s: IDX dimension %d is 0", path, i);
            goto done;
        }
        if (n > IDX_MAX_BYTES / d) {
            seterr(err, errlen, "%s: IDX dimensions too large", path);
            goto done;
        }
        n *= d;
        out->dim[i] = d;
    }
    out->ndim = nd;
    out->data = malloc((size_t)n);
    if (!out->data) {
        seterr(err, errlen, "%s: out of memory (%lld bytes)", path, (long long)n);
        goto done;
    }
    r = gz_read_all(g, out->data, n);
    if (r < 0) {
        seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < n) {
        seterr(err, errlen, "%s: truncated: %lld of %lld data bytes", path, (long long)r, (long long)n);
        goto done;
    }
    unsigned char extra;
    r = gz_read_all(g, &extra, 1);
    if (r < 0) {
        seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r > 0) {
        seterr(err, errlen, "%s: trailing data after %lld bytes that the dimensions give", path, (long long)n);
        goto done;
    }
    out->n = n;
    rc = 0;
done:
    gzclose(g);
    if (rc != 0) {
        free(out->data);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int celo_idx_read(const char *path, celo_idx *out, char *err, size_t errlen)
{
    return idx_read(path, out, NULL, err, errlen);
}

void celo_idx_free(celo_idx *m)
{
    if (!m)
        return;
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* ================================ image resize ================================ */

/* W [out, in]: the separable 1-D resampling matrix of a method. */
static void resize_weights(int in, int out, int method, double *W)
{
    memset(W, 0, sizeof(double) * (size_t)in * (size_t)out);
    double s = (double)in / out;
    for (int o = 0; o < out; o++) {
        double *row = W + (size_t)o * in;
        if (method == CELO_RESIZE_BILINEAR) {
            double c = (o + 0.5) * s - 0.5;
            double f = floor(c);
            int i0 = (int)f, i1 = i0 + 1;
            double frac = c - f;
            if (i0 < 0)
                i0 = 0;
            if (i1 < 0)
                i1 = 0;
            if (i0 > in - 1)
                i0 = in - 1;
            if (i1 > in - 1)
                i1 = in - 1;
            row[i0] += 1.0 - frac;
            row[i1] += frac;
        } else {
            double a = o * s, b = (o + 1) * s;
            for (int i = (int)floor(a); i < in && i < b; i++) {
                double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
                if (hi > lo)
                    row[i] += (hi - lo) / s;
            }
        }
    }
}

static void resize_with(const float *in, int h, int w, float *out, int size, const double *Wh, const double *Ww,
                        double *tmp /* [size, w] */)
{
    /* the weights are sparse (a handful of inputs per output): skip the zeros */
    for (int o = 0; o < size; o++) {
        double *trow = tmp + (size_t)o * w;
        for (int j = 0; j < w; j++)
            trow[j] = 0;
        for (int i = 0; i < h; i++) {
            double wt = Wh[(size_t)o * h + i];
            if (wt == 0)
                continue;
            const float *irow = in + (size_t)i * w;
            for (int j = 0; j < w; j++)
                trow[j] += wt * irow[j];
        }
    }
    for (int o = 0; o < size; o++)
        for (int p = 0; p < size; p++) {
            const double *wrow = Ww + (size_t)p * w, *trow = tmp + (size_t)o * w;
            double acc = 0;
            for (int j = 0; j < w; j++)
                if (wrow[j] != 0)
                    acc += trow[j] * wrow[j];
            out[(size_t)o * size + p] = (float)acc;
        }
}

void celo_image_resize(const float *in, int h, int w, float *out, int size, int method)
{
    double *Wh = malloc(sizeof(double) * (size_t)size * (size_t)h);
    double *Ww = malloc(sizeof(double) * (size_t)size * (size_t)w);
    double *tmp = malloc(sizeof(double) * (size_t)size * (size_t)w);
    if (Wh && Ww && tmp) {
        resize_weights(h, size, method, Wh);
        resize_weights(w, size, method, Ww);
        resize_with(in, h, w, out, size, Wh, Ww, tmp);
    }
    free(Wh);
    free(Ww);
    free(tmp);
}

/* ================================ Fashion-MNIST ================================ */

#define FMNIST_PKG "dataset-fashion-mnist"

static int fmnist_split(celo_dataset *d, const char *dir, const char *prefix, const char *split_name,
                        const celo_fmnist_opts *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    char *ipath = path_join(dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    char *lpath = path_join(dir, name);
    celo_idx im = {0}, lb = {0};
    int rc = -1;
    if (!ipath || !lpath) {
        seterr(err, errlen, "fashion_mnist: out of memory");
        goto done;
    }
    if (idx_read(ipath, &im, FMNIST_PKG, err, errlen) != 0)
        goto done;
    if (idx_read(lpath, &lb, FMNIST_PKG, err, errlen) != 0)
        goto done;
    if (im.ndim != 3) {
        seterr(err, errlen, "%s: %d dimensions; images need 3 (count, rows, columns)", ipath, im.ndim);
        goto done;
    }
    if (lb.ndim != 1) {
        seterr(err, errlen, "%s: %d dimensions; labels need 1", lpath, lb.ndim);
        goto done;
    }
    if (lb.dim[0] != im.dim[0]) {
        seterr(err, errlen, "%s: %lld labels for %lld images in %s", lpath, (long long)lb.dim[0], (long long)im.dim[0],
               ipath);
        goto done;
    }
    for (int64_t i = 0; i < lb.n; i++)
        if (lb.data[i] > 9) {
            seterr(err, errlen, "%s: label %d of example %lld is out of range 0..9", lpath, lb.data[i], (long long)i);
            goto done;
        }
    int h = (int)im.dim[1], w = (int)im.dim[2];
    int size = o->size ? o->size : h;
    if (o->size && (size < 1 || size > h || size > w || h != w)) {
        seterr(err, errlen, "fashion_mnist: cannot resize %dx%d images to %dx%d (want 1..%d)", h, w, size, size,
               h < w ? h : w);
        goto done;
    }
    int resize = o->size && size != h;
    int64_t n = im.dim[0], dim = resize ? (int64_t)size * size : (int64_t)h * w;
    d->x = examples_alloc((size_t)(n * dim));
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    if (!d->x || !d->y) {
        seterr(err, errlen, "fashion_mnist: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        d->y[i] = lb.data[i];
    if (!resize) {
        for (int64_t i = 0; i < n * dim; i++)
            d->x[i] = (float)im.data[i] / 255.0f;
    } else {
        double *Wh = malloc(sizeof(double) * (size_t)size * (size_t)h);
        double *Ww = malloc(sizeof(double) * (size_t)size * (size_t)w);
        if (!Wh || !Ww) {
            free(Wh);
            free(Ww);
            seterr(err, errlen, "fashion_mnist: out of memory");
            goto done;
        }
        resize_weights(h, size, o->resize, Wh);
        resize_weights(w, size, o->resize, Ww);
        int oom = 0;
#pragma omp parallel reduction(| : oom)
        {
            float *img = malloc(sizeof(float) * (size_t)h * (size_t)w);
            double *tmp = malloc(sizeof(double) * (size_t)size * (size_t)w);
            if (!img || !tmp)
                oom = 1;
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; i++) {
                if (!img || !tmp)
                    continue;
                const uint8_t *src = im.data + i * (int64_t)h * w;
                for (int64_t k = 0; k < (int64_t)h * w; k++)
                    img[k] = (float)src[k] / 255.0f;
                resize_with(img, h, w, d->x + i * dim, size, Wh, Ww, tmp);
            }
            free(img);
            free(tmp);
        }
        free(Wh);
        free(Ww);
        if (oom) {
            seterr(err, errlen, "fashion_mnist: out of memory");
            goto done;
        }
    }
    snprintf(d->name, sizeof d->name, "fashion_mnist/%s", split_name);
    d->n = n;
    d->dim = dim;
    d->h = d->w = resize ? size : h;
    if (!resize)
        d->w = w;
    d->nclass = 10;
    d->std = 1.0f;
    rc = 0;
done:
    celo_idx_free(&im);
    celo_idx_free(&lb);
    free(ipath);
    free(lpath);
    if (rc != 0)
        celo_dataset_free(d);
    return rc;
}

static void standardize(celo_dataset *d, float mean, float std)
{
    int64_t N = d->n * d->dim;
    for (int64_t i = 0; i < N; i++)
        d->x[i] = (d->x[i] - mean) / std;
    d->mean = mean;
    d->std = std;
}

int celo_fmnist_load(celo_dataset *train, celo_dataset *test, const celo_fmnist_opts *opts, char *err, size_t errlen)
{
    celo_fmnist_opts o = {0};
    if (opts)
        o = *opts;
    if (o.resize != CELO_RESIZE_AREA && o.resize != CELO_RESIZE_BILINEAR) {
        seterr(err, errlen, "fashion_mnist: unknown resize method %d", o.resize);
        return -1;
    }
    if (o.size < 0) {
        seterr(err, errlen, "fashion_mnist: bad image size %d", o.size);
        return -1;
    }
    const char *dir = o.dir ? o.dir : env_or("CELO_FASHION_MNIST_DIR", CELO_FMNIST_DEFAULT_DIR);
    if (train)
        memset(train, 0, sizeof *train);
    if (test)
        memset(test, 0, sizeof *test);
    /* a missing file is reported before any work, whichever it is */
    static const char *const files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++) {
        int need = i < 2 ? (train || o.normalize) : test != NULL;
        if (!need)
            continue;
        char *p = path_join(dir, files[i]);
        if (!p) {
            seterr(err, errlen, "fashion_mnist: out of memory");
            return -1;
        }
        struct stat st;
        if (stat(p, &st) != 0 && errno == ENOENT) {
            seterr(err, errlen, "%s: not found; install the Debian package " FMNIST_PKG, p);
            free(p);
            return -1;
        }
        free(p);
    }
    celo_dataset tr = {0}, te = {0};
    if ((train || o.normalize) && fmnist_split(&tr, dir, "train", "train", &o, err, errlen) != 0)
        return -1;
    if (test && fmnist_split(&te, dir, "t10k", "test", &o, err, errlen) != 0) {
        celo_dataset_free(&tr);
        return -1;
    }
    if (o.normalize) {
        double s = 0, s2 = 0;
        int64_t N = tr.n * tr.dim;
        for (int64_t i = 0; i < N; i++)
            s += tr.x[i], s2 += (double)tr.x[i] * tr.x[i];
        double mean = s / (double)N, var = s2 / (double)N - mean * mean;
        float fm = (float)mean, fs = (float)sqrt(var > 1e-12 ? var : 1e-12);
        standardize(&tr, fm, fs);
        if (test)
            standardize(&te, fm, fs);
    }
    if (train)
        *train = tr;
    else
        celo_dataset_free(&tr);
    if (test)
        *test = te;
    return 0;
}

/* ================================ text ================================ */

void celo_text_free(celo_text *t)
{
    if (!t)
        return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

int celo_text_from_memory(celo_text *t, const char *name, const char *s, int64_t n, double val_frac, char *err,
                          size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "text");
    if (!(val_frac >= 0 && val_frac < 1)) {
        seterr(err, errlen, "%s: validation fraction %g is not in [0, 1)", t->name, val_frac);
        return -1;
    }
    if (n < 2) {
        seterr(err, errlen, "%s: text too short (%lld characters)", t->name, (long long)n);
        return -1;
    }
    t->ids = malloc((size_t)n);
    if (!t->ids) {
        seterr(err, errlen, "%s: out of memory", t->name);
        return -1;
    }
    int present[256] = {0};
    for (int64_t i = 0; i < n; i++)
        present[(unsigned char)s[i]] = 1;
    for (int c = 0; c < 256; c++) {
        t->stoi[c] = -1;
        if (present[c]) {
            t->stoi[c] = (int16_t)t->vocab;
            t->itos[t->vocab++] = (unsigned char)c;
        }
    }
    for (int64_t i = 0; i < n; i++)
        t->ids[i] = (uint8_t)t->stoi[(unsigned char)s[i]];
    t->n = n;
    /* validation starts at the beginning of a line: the first at or after the cut, else the last before it */
    int64_t cut = n - (int64_t)(val_frac * (double)n);
    if (cut < n) {
        int64_t c = cut;
        while (c < n && s[c - 1] != '\n')
            c++;
        if (c == n)
            for (c = cut; c > 1 && s[c - 1] != '\n'; c--) {
            }
        if (c > 1 && c < n && s[c - 1] == '\n')
            cut = c;
    }
    t->split = cut;
    return 0;
}

int celo_text_load_file(celo_text *t, const char *path, double val_frac, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                seterr(err, errlen, "%s: out of memory", path);
                return -1;
            }
            buf = nb, cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        seterr(err, errlen, "%s: read error", path);
        return -1;
    }
    const char *base = strrchr(path, '/');
    int rc = celo_text_from_memory(t, base ? base + 1 : path, buf, (int64_t)len, val_frac, err, errlen);
    if (rc != 0 && err && strncmp(err, "text", 4) != 0) {
        /* name the file, not just its base name */
        char tmp[256];
        const char *colon = strchr(err, ':');
        snprintf(tmp, sizeof tmp, "%s%s", path, colon ? colon : "");
        seterr(err, errlen, "%s", tmp);
    }
    free(buf);
    return rc;
}

#define KJV_PKG "bible-kjv"

/* "Ge1:1 ", "1Co13:4 ", "Psa119:176 ": an optional digit, letters, chapter ':' verse, one space. */
static int kjv_ref_len(const char *s, const char *end)
{
    const char *p = s;
    if (p < end && *p >= '1' && *p <= '3')
        p++;
    const char *q = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
        p++;
    if (p == q)
        return -1;
    q = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == q || p >= end || *p != ':')
        return -1;
    q = ++p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == q || p >= end || *p != ' ')
        return -1;
    return (int)(p + 1 - s);
}

/* ---- cache of the extracted text: $CELO_CACHE_DIR, else $XDG_CACHE_HOME/celo, else $HOME/.cache/celo (as
 * celo_cache_dir, fileio.h). The file name carries the size, mtime and inode of bible.data and a format version, so
 * an updated package makes a new entry. Every cache failure is silent: the cache only saves time. */

#define KJV_CACHE_VERSION 1

static char *kjv_cache_path(const struct stat *st)
{
    char *dir = celo_cache_dir();
    if (!dir)
        return NULL;
    char name[128];
    snprintf(name, sizeof name, "kjv-v%d-%llx-%llx-%llx.txt", KJV_CACHE_VERSION, (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtime, (unsigned long long)st->st_ino);
    char *p = path_join(dir, name);
    free(dir);
    return p;
}

/* The cached text, or NULL. */
static char *kjv_cache_read(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 1 && (buf = malloc((size_t)st.st_size))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size || buf[got - 1] != '\n') {
            free(buf);
            buf = NULL;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

/* readers see the whole file or none; a failure only means no cache */
static void kjv_cache_write(const char *path, const char *buf, size_t len)
{
    (void)celo_write_atomic(path, buf, len, NULL, 0);
}

/* Runs `bible -f -p DIR gen1:1-rev22:21` and strips the references: one verse per line. */
static int kjv_extract(const char *dir, char **out, size_t *outlen, char *err, size_t errlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        seterr(err, errlen, "bible: cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char a0[] = "bible", a1[] = "-f", a2[] = "-p", a4[] = "gen1:1-rev22:21";
    char *a3 = strdup(dir);
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    pid_t pid;
    int sr = a3 ? posix_spawnp(&pid, "bible", &fa, NULL, argv, environ) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    free(a3);
    close(pfd[1]);
    if (sr != 0) {
        close(pfd[0]);
        if (sr == ENOENT)
            seterr(err, errlen, "bible: not found; install the Debian package " KJV_PKG);
        else
            seterr(err, errlen, "bible: cannot run: %s", strerror(sr));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 23;
            char *nb = realloc(buf, nc);
            if (!nb) {
                oom = 1;
                break;
            }
            buf = nb, cap = nc;
        }
        ssize_t r = read(pfd[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (oom) {
        free(buf);
        seterr(err, errlen, "bible: out of memory");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || len == 0) {
        const char *nl = buf ? memchr(buf, '\n', len) : NULL;
        int show = (int)(nl ? (size_t)(nl - buf) : len);
        if (show > 160)
            show = 160;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            seterr(err, errlen, "bible: not found; install the Debian package " KJV_PKG);
        else
            seterr(err, errlen, "bible: failed (%s %d)%s%.*s", WIFEXITED(status) ? "exit status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), show ? ": " : "", show, buf ? buf : "");
        free(buf);
        return -1;
    }
    /* strip the references in place: "Ge1:1 In the beginning..." -> "In the beginning..." */
    size_t w = 0, line = 0;
    for (size_t i = 0; i < len;) {
        const char *end = memchr(buf + i, '\n', len - i);
        size_t e = end ? (size_t)(end - buf) : len;
        line++;
        int k = kjv_ref_len(buf + i, buf + e);
        if (k < 0) {
            int show = (int)(e - i > 80 ? 80 : e - i);
            seterr(err, errlen, "bible: unexpected output at line %zu: '%.*s'", line, show, buf + i);
            free(buf);
            return -1;
        }
        memmove(buf + w, buf + i + (size_t)k, e - i - (size_t)k);
        w += e - i - (size_t)k;
        buf[w++] = '\n';
        i = e + 1;
    }
    *out = buf;
    *outlen = w;
    return 0;
}

int celo_text_load_kjv(celo_text *t, double val_frac, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *txt = getenv("CELO_BIBLE_TEXT");
    if (txt && *txt)
        return celo_text_load_file(t, txt, val_frac, err, errlen);
    const char *dir = env_or("CELO_BIBLE_DIR", "/usr/lib");
    char *data = path_join(dir, "bible.data");
    if (!data) {
        seterr(err, errlen, "kjv: out of memory");
        return -1;
    }
    struct stat st;
    if (stat(data, &st) != 0) {
        if (errno == ENOENT)
            seterr(err, errlen, "%s: not found; install the Debian package " KJV_PKG, data);
        else
            seterr(err, errlen, "%s: %s", data, strerror(errno));
        free(data);
        return -1;
    }
    free(data);
    char *cpath = kjv_cache_path(&st);
    if (cpath) {
        size_t clen = 0;
        char *cached = kjv_cache_read(cpath, &clen);
        if (cached) {
            free(cpath);
            int crc = celo_text_from_memory(t, "kjv", cached, (int64_t)clen, val_frac, err, errlen);
            free(cached);
            return crc;
        }
    }
    char *buf = NULL;
    size_t len = 0;
    if (kjv_extract(dir, &buf, &len, err, errlen) != 0) {
        free(cpath);
        return -1;
    }
    if (cpath)
        kjv_cache_write(cpath, buf, len);
    free(cpath);
    int rc = celo_text_from_memory(t, "kjv", buf, (int64_t)len, val_frac, err, errlen);
    free(buf);
    return rc;
}

int64_t celo_text_len(const celo_text *t, int split)
{
    return split == CELO_SPLIT_TRAIN ? t->split : t->n - t->split;
}

int celo_text_batch(const celo_text *t, int split, uint64_t seed, uint64_t step, int B, int T, int32_t *x, int32_t *y)
{
    int64_t len = celo_text_len(t, split), base = split == CELO_SPLIT_TRAIN ? 0 : t->split;
    if (T < 1 || B < 1 || len < (int64_t)T + 1)
        return -1;
    uint64_t starts = (uint64_t)(len - T); /* s in [0, len - T - 1] */
    uint64_t stream = STREAM('X', (uint64_t)split);
    __extension__ typedef unsigned __int128 u128;
    for (int b = 0; b < B; b++) {
        uint64_t h = hash64(seed, stream, step * (uint64_t)B + (uint64_t)b);
        int64_t s = base + (int64_t)(((u128)h * starts) >> 64);
        const uint8_t *src = t->ids + s;
        for (int i = 0; i < T; i++) {
            x[(size_t)b * T + i] = src[i];
            y[(size_t)b * T + i] = src[i + 1];
        }
    }
    return 0;
}

int64_t celo_text_num_windows(const celo_text *t, int split, int T)
{
    int64_t len = celo_text_len(t, split);
    return T < 1 || len < 1 ? 0 : (len - 1) / T;
}

void celo_text_window(const celo_text *t, int split, int64_t k, int T, int32_t *x, int32_t *y)
{
    const uint8_t *src = t->ids + (split == CELO_SPLIT_TRAIN ? 0 : t->split) + k * T;
    for (int i = 0; i < T; i++) {
        x[i] = src[i];
        y[i] = src[i + 1];
    }
}

void celo_text_decode(const celo_text *t, const int32_t *ids, int64_t n, char *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = (ids[i] >= 0 && ids[i] < t->vocab) ? (char)t->itos[ids[i]] : '?';
    out[n] = 0;
}

/* ================================ teacher networks ================================ */

#define TEACHER_W(layer)     STREAM('T', 0x10000u + (uint64_t)(layer))
#define TEACHER_X(split)     STREAM('T', ((uint64_t)(split) << 8) | 1u)
#define TEACHER_NOISE(split) STREAM('T', ((uint64_t)(split) << 8) | 2u)
#define TEACHER_CAL          STREAM('T', 0x20000u)
#define TEACHER_NCAL         4096

typedef struct {
    int L, width[6], maxw;
    float *W[5];           /* W[l] is [width[l], width[l + 1]], row-major */
    double *shift, *scale; /* output standardization */
} teacher;

/* The raw output of x into a (maxw doubles; b is scratch of maxw). */
static void teacher_forward(const teacher *tc, const float *x, double *a, double *b)
{
    for (int k = 0; k < tc->width[0]; k++)
        a[k] = x[k];
    for (int l = 0; l < tc->L; l++) {
        int fo = tc->width[l + 1];
        for (int j = 0; j < fo; j++)
            b[j] = 0;
        for (int k = 0; k < tc->width[l]; k++) {
            const float *wr = tc->W[l] + (size_t)k * fo;
            for (int j = 0; j < fo; j++)
                b[j] += a[k] * wr[j];
        }
        for (int j = 0; j < fo; j++)
            a[j] = (l < tc->L - 1 && b[j] < 0) ? 0 : b[j];
    }
}

int celo_teacher_dataset(celo_dataset *d, const celo_teacher_opts *o, int split, int64_t n, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (o->in < 1 || o->out < 1 || o->nhidden < 0 || o->nhidden > 4 || n < 1 || split < 0 || split > 255 ||
        (o->classify && o->out < 2) || !(o->noise >= 0)) {
        seterr(err, errlen, "teacher: bad options (in %d, hidden layers %d, out %d, n %lld, split %d, noise %g)", o->in,
               o->nhidden, o->out, (long long)n, split, (double)o->noise);
        return -1;
    }
    teacher tc = {0};
    tc.L = o->nhidden + 1;
    tc.width[0] = tc.maxw = o->in;
    for (int l = 0; l < o->nhidden; l++) {
        if (o->hidden[l] < 1) {
            seterr(err, errlen, "teacher: hidden layer %d has width %d", l, o->hidden[l]);
            return -1;
        }
        tc.width[l + 1] = o->hidden[l];
        if (o->hidden[l] > tc.maxw)
            tc.maxw = o->hidden[l];
    }
    tc.width[tc.L] = o->out;
    if (o->out > tc.maxw)
        tc.maxw = o->out;
    int rc = -1, nout = o->out;
    float *cal = NULL;
    for (int l = 0; l < tc.L; l++) {
        size_t cnt = (size_t)tc.width[l] * (size_t)tc.width[l + 1];
        tc.W[l] = malloc(cnt * sizeof(float));
        if (!tc.W[l])
            goto oom;
        float std = (float)sqrt((l < tc.L - 1 ? 2.0 : 1.0) / tc.width[l]); /* He for ReLU layers, LeCun for output */
        fill_normal(o->seed, TEACHER_W(l), tc.W[l], (int64_t)cnt, 0.0f, std);
    }
    /* calibration: each output unit is standardized over a fixed sample of inputs (its own stream), so that
     * argmax classes are not dominated by one unit and regression targets have unit variance */
    tc.shift = calloc((size_t)nout, sizeof(double));
    tc.scale = calloc((size_t)nout, sizeof(double));
    cal = malloc(sizeof(float) * TEACHER_NCAL * (size_t)o->in);
    double *a = malloc(sizeof(double) * (size_t)tc.maxw), *b = malloc(sizeof(double) * (size_t)tc.maxw);
    if (!tc.shift || !tc.scale || !cal || !a || !b) {
        free(a), free(b);
        goto oom;
    }
    fill_normal(o->seed, TEACHER_CAL, cal, (int64_t)TEACHER_NCAL * o->in, 0.0f, 1.0f);
    for (int i = 0; i < TEACHER_NCAL; i++) {
        teacher_forward(&tc, cal + (size_t)i * o->in, a, b);
        for (int j = 0; j < nout; j++)
            tc.shift[j] += a[j], tc.scale[j] += a[j] * a[j];
    }
    free(a), free(b);
    for (int j = 0; j < nout; j++) {
        double m = tc.shift[j] / TEACHER_NCAL, v = tc.scale[j] / TEACHER_NCAL - m * m;
        tc.shift[j] = m;
        tc.scale[j] = v > 1e-20 ? 1.0 / sqrt(v) : 1.0;
    }

    d->x = malloc(sizeof(float) * (size_t)n * (size_t)o->in);
    if (o->classify)
        d->y = malloc(sizeof(int32_t) * (size_t)n);
    else
        d->t = malloc(sizeof(float) * (size_t)n * (size_t)nout);
    if (!d->x || (!d->y && !d->t))
        goto oom;
    fill_normal(o->seed, TEACHER_X(split), d->x, n * o->in, 0.0f, 1.0f);
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        double *u = malloc(sizeof(double) * (size_t)tc.maxw), *v = malloc(sizeof(double) * (size_t)tc.maxw);
        if (!u || !v)
            oom = 1;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!u || !v)
                continue;
            teacher_forward(&tc, d->x + i * o->in, u, v);
            for (int j = 0; j < nout; j++)
                u[j] = (u[j] - tc.shift[j]) * tc.scale[j];
            if (o->classify) {
                int best = 0;
                for (int j = 1; j < nout; j++)
                    if (u[j] > u[best])
                        best = j;
                d->y[i] = best;
            } else {
                for (int j = 0; j < nout; j++)
                    d->t[i * nout + j] = (float)u[j];
            }
        }
        free(u);
        free(v);
    }
    if (oom)
        goto oom;
    if (!o->classify && o->noise > 0) {
        float *z = malloc(sizeof(float) * (size_t)n * (size_t)nout);
        if (!z)
            goto oom;
        fill_normal(o->seed, TEACHER_NOISE(split), z, n * nout, 0.0f, o->noise);
        for (int64_t i = 0; i < n * nout; i++)
            d->t[i] += z[i];
        free(z);
    }
    snprintf(d->name, sizeof d->name, "teacher/%s", split == CELO_SPLIT_TRAIN ? "train" : "test");
    d->n = n;
    d->dim = o->in;
    d->nclass = o->classify ? nout : 0;
    d->ydim = o->classify ? 0 : nout;
    d->std = 1.0f;
    rc = 0;
    goto done;
oom:
    seterr(err, errlen, "teacher: out of memory (%lld examples)", (long long)n);
    celo_dataset_free(d);
done:
    for (int l = 0; l < 5; l++)
        free(tc.W[l]);
    free(tc.shift);
    free(tc.scale);
    free(cal);
    return rc;
}

/* ================================ quadratics ================================ */

#define QUAD_MAX_ROTATED 4096

int celo_quadratic_make(celo_quadratic *q, const celo_quadratic_opts *o, char *err, size_t errlen)
{
    memset(q, 0, sizeof *q);
    if (o->dim < 1 || !(o->cond >= 1) || !isfinite(o->cond)) {
        seterr(err, errlen, "quadratic: bad options (dim %d, condition number %g; want dim >= 1, cond >= 1)", o->dim,
               o->cond);
        return -1;
    }
    if (o->rotate && o->dim > QUAD_MAX_ROTATED) {
        seterr(err, errlen, "quadratic: dim %d too large for a rotated quadratic (at most %d)", o->dim,
               QUAD_MAX_ROTATED);
        return -1;
    }
    int d = o->dim;
    q->dim = d;
    q->eig = malloc(sizeof(float) * (size_t)d);
    q->x0 = malloc(sizeof(float) * (size_t)d);
    if (!q->eig || !q->x0)
        goto oom;
    for (int i = 0; i < d; i++)
        q->eig[i] = (float)(d == 1 ? 1.0 : pow(o->cond, -(double)i / (d - 1)));
    fill_normal(o->seed, STREAM('Q', 2), q->x0, d, 0.0f, 1.0f);
    if (o->rotate) {
        /* Q from the QR decomposition of a Gaussian matrix (Gram-Schmidt, twice for orthogonality): Haar */
        size_t dd = (size_t)d * (size_t)d;
        float *g = malloc(sizeof(float) * dd);
        double *Q = malloc(sizeof(double) * dd); /* column j at Q + j * d */
        q->A = malloc(sizeof(float) * dd);
        if (!g || !Q || !q->A) {
            free(g);
            free(Q);
            goto oom;
        }
        fill_normal(o->seed, STREAM('Q', 1), g, (int64_t)dd, 0.0f, 1.0f);
        for (size_t i = 0; i < dd; i++)
            Q[i] = g[i];
        free(g);
        for (int j = 0; j < d; j++) {
            double *qj = Q + (size_t)j * d;
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < j; k++) {
                    const double *qk = Q + (size_t)k * d;
                    double dot = 0;
                    for (int i = 0; i < d; i++)
                        dot += qk[i] * qj[i];
                    for (int i = 0; i < d; i++)
                        qj[i] -= dot * qk[i];
                }
            double nrm = 0;
            for (int i = 0; i < d; i++)
                nrm += qj[i] * qj[i];
            nrm = sqrt(nrm);
            for (int i = 0; i < d; i++)
                qj[i] /= nrm;
        }
        /* A = Q diag(eig) Q^T */
#pragma omp parallel for schedule(static) if (d >= 256)
        for (int i = 0; i < d; i++)
            for (int k = i; k < d; k++) {
                double acc = 0;
                for (int j = 0; j < d; j++)
                    acc += Q[(size_t)j * d + i] * (double)q->eig[j] * Q[(size_t)j * d + k];
                q->A[(size_t)i * d + k] = q->A[(size_t)k * d + i] = (float)acc;
            }
        free(Q);
    }
    return 0;
oom:
    celo_quadratic_free(q);
    seterr(err, errlen, "quadratic: out of memory (dim %d)", d);
    return -1;
}

double celo_quadratic_loss(const celo_quadratic *q, const float *x, float *g)
{
    int d = q->dim;
    double loss = 0;
    if (!q->A) {
        for (int i = 0; i < d; i++) {
            double gi = (double)q->eig[i] * x[i];
            loss += gi * x[i];
            if (g)
                g[i] = (float)gi;
        }
    } else {
        for (int i = 0; i < d; i++) {
            const float *row = q->A + (size_t)i * d;
            double gi = 0;
            for (int k = 0; k < d; k++)
                gi += (double)row[k] * x[k];
            loss += gi * x[i];
            if (g)
                g[i] = (float)gi;
        }
    }
    return 0.5 * loss;
}

void celo_quadratic_free(celo_quadratic *q)
{
    if (!q)
        return;
    free(q->eig);
    free(q->A);
    free(q->x0);
    memset(q, 0, sizeof *q);
}

/* ================================ batching ================================ */

static uint64_t feistel(uint64_t seed, uint64_t stream, int half, uint64_t v)
{
    uint64_t mask = (half >= 64) ? ~0ull : ((1ull << half) - 1);
    uint64_t L = v >> half, R = v & mask;
    for (uint64_t r = 0; r < 8; r++) {
        uint64_t F = hash64(seed, stream, r << 32 | R) & mask;
        uint64_t nl = R;
        R = L ^ F;
        L = nl;
    }
    return L << half | R;
}

int64_t celo_shuffle_index(uint64_t seed, int64_t epoch, int64_t n, int64_t i)
{
    if (n <= 1)
        return 0;
    int bits = 0;
    while (bits < 63 && ((uint64_t)1 << bits) < (uint64_t)n)
        bits++;
    if (bits & 1)
        bits++;
    int half = bits / 2;
    uint64_t stream = STREAM('S', (uint64_t)epoch);
    uint64_t v = (uint64_t)i;
    do
        v = feistel(seed, stream, half, v);
    while (v >= (uint64_t)n);
    return (int64_t)v;
}

void celo_epoch_batch(uint64_t seed, int64_t n, int64_t B, int64_t epoch, int64_t k, int64_t *idx)
{
    for (int64_t j = 0; j < B; j++)
        idx[j] = celo_shuffle_index(seed, epoch, n, k * B + j);
}

int celo_cursor_init(celo_cursor *c, uint64_t seed, int64_t n, int64_t batch, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (batch < 1 || n < batch) {
        seterr(err, errlen, "batch size %lld does not fit a dataset of %lld examples", (long long)batch, (long long)n);
        return -1;
    }
    c->seed = seed;
    c->n = n;
    c->batch = batch;
    return 0;
}

int64_t celo_cursor_batches_per_epoch(const celo_cursor *c)
{
    return c->n / c->batch;
}

int64_t celo_cursor_step(const celo_cursor *c)
{
    return c->epoch * celo_cursor_batches_per_epoch(c) + c->k;
}

void celo_cursor_seek(celo_cursor *c, int64_t step)
{
    int64_t per = celo_cursor_batches_per_epoch(c);
    c->epoch = step / per;
    c->k = step % per;
}

void celo_cursor_next(celo_cursor *c, int64_t *idx)
{
    celo_epoch_batch(c->seed, c->n, c->batch, c->epoch, c->k, idx);
    if (++c->k >= celo_cursor_batches_per_epoch(c)) {
        c->k = 0;
        c->epoch++;
    }
}

void celo_cursor_next_batch(celo_cursor *c, const celo_dataset *d, int64_t *idx, float *x, int32_t *y, float *t)
{
    celo_cursor_next(c, idx);
    celo_dataset_gather(d, idx, c->batch, x, y, t);
}

int celo_cursor_format(const celo_cursor *c, char *buf, size_t len)
{
    int k = snprintf(buf, len, "seed=%llu n=%lld batch=%lld epoch=%lld k=%lld", (unsigned long long)c->seed,
                     (long long)c->n, (long long)c->batch, (long long)c->epoch, (long long)c->k);
    return k < 0 || (size_t)k >= len ? -1 : k;
}

static int parse_field(const char **s, const char *key, uint64_t *v, uint64_t max)
{
    size_t kl = strlen(key);
    if (strncmp(*s, key, kl) != 0)
        return -1;
    const char *p = *s + kl;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t x = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned dgt = (unsigned)(*p - '0');
        if (x > (max - dgt) / 10)
            return -1;
        x = x * 10 + dgt;
        p++;
    }
    *v = x;
    *s = p;
    return 0;
}

int celo_cursor_parse(celo_cursor *c, const char *s, char *err, size_t errlen)
{
    uint64_t seed, n, b, e, k;
    const char *p = s;
    if (parse_field(&p, "seed=", &seed, UINT64_MAX) || parse_field(&p, " n=", &n, INT64_MAX) ||
        parse_field(&p, " batch=", &b, INT64_MAX) || parse_field(&p, " epoch=", &e, INT64_MAX) ||
        parse_field(&p, " k=", &k, INT64_MAX) || *p != 0) {
        seterr(err, errlen, "bad data cursor '%.80s' (want 'seed=S n=N batch=B epoch=E k=K')", s);
        return -1;
    }
    if (b < 1 || n < b || k >= n / b) {
        seterr(err, errlen, "bad data cursor '%.80s' (batch 1..n, k < n / batch)", s);
        return -1;
    }
    c->seed = seed;
    c->n = (int64_t)n;
    c->batch = (int64_t)b;
    c->epoch = (int64_t)e;
    c->k = (int64_t)k;
    return 0;
}
