/*
 * fashion_mnist.c — the `fashion_mnist` data set: Zalando's 28x28 clothing images in 10 classes, from Debian's
 * dataset-fashion-mnist (IDX files), optionally resized and standardized (data.h).
 */
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST_PKG "dataset-fashion-mnist"

static int fmnist_split(celo_dataset *d, const char *dir, const char *prefix, const char *split_name,
                        const celo_fmnist_opts *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    char *ipath = celo_data_path_join(dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    char *lpath = celo_data_path_join(dir, name);
    celo_idx im = {0}, lb = {0};
    int rc = -1;
    if (!ipath || !lpath) {
        celo_seterr(err, errlen, "fashion_mnist: out of memory");
        goto done;
    }
    if (celo_data_idx_read(ipath, &im, FMNIST_PKG, err, errlen) != 0)
        goto done;
    if (celo_data_idx_read(lpath, &lb, FMNIST_PKG, err, errlen) != 0)
        goto done;
    if (im.ndim != 3) {
        celo_seterr(err, errlen, "%s: %d dimensions; images need 3 (count, rows, columns)", ipath, im.ndim);
        goto done;
    }
    if (lb.ndim != 1) {
        celo_seterr(err, errlen, "%s: %d dimensions; labels need 1", lpath, lb.ndim);
        goto done;
    }
    if (lb.dim[0] != im.dim[0]) {
        celo_seterr(err, errlen, "%s: %lld labels for %lld images in %s", lpath, (long long)lb.dim[0],
                    (long long)im.dim[0], ipath);
        goto done;
    }
    for (int64_t i = 0; i < lb.n; i++)
        if (lb.data[i] > 9) {
            celo_seterr(err, errlen, "%s: label %d of example %lld is out of range 0..9", lpath, lb.data[i],
                        (long long)i);
            goto done;
        }
    int h = (int)im.dim[1], w = (int)im.dim[2];
    int size = o->size ? o->size : h;
    if (o->size && (size < 1 || size > h || size > w || h != w)) {
        celo_seterr(err, errlen, "fashion_mnist: cannot resize %dx%d images to %dx%d (want 1..%d)", h, w, size, size,
                    h < w ? h : w);
        goto done;
    }
    int resize = o->size && size != h;
    int64_t n = im.dim[0], dim = resize ? (int64_t)size * size : (int64_t)h * w;
    d->x = celo_data_examples_alloc((size_t)(n * dim));
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    if (!d->x || !d->y) {
        celo_seterr(err, errlen, "fashion_mnist: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        d->y[i] = lb.data[i];
    if (!resize) {
        for (int64_t i = 0; i < n * dim; i++)
            d->x[i] = (float)im.data[i] / 255.0f;
    } else {
        celo_resizer rs;
        if (celo_resizer_init(&rs, h, w, size, o->resize)) {
            celo_seterr(err, errlen, "fashion_mnist: out of memory");
            goto done;
        }
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
                celo_resizer_apply(&rs, img, d->x + i * dim, tmp);
            }
            free(img);
            free(tmp);
        }
        celo_resizer_free(&rs);
        if (oom) {
            celo_seterr(err, errlen, "fashion_mnist: out of memory");
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

int celo_fmnist_load(celo_dataset *train, celo_dataset *test, const celo_fmnist_opts *opts, char *err, size_t errlen)
{
    celo_fmnist_opts o = {0};
    if (opts)
        o = *opts;
    if (o.resize != CELO_RESIZE_AREA && o.resize != CELO_RESIZE_BILINEAR) {
        celo_seterr(err, errlen, "fashion_mnist: unknown resize method %d", o.resize);
        return -1;
    }
    if (o.size < 0) {
        celo_seterr(err, errlen, "fashion_mnist: bad image size %d", o.size);
        return -1;
    }
    const char *dir = o.dir ? o.dir : celo_data_env_or("CELO_FASHION_MNIST_DIR", CELO_FMNIST_DEFAULT_DIR);
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
        char *p = celo_data_path_join(dir, files[i]);
        if (!p) {
            celo_seterr(err, errlen, "fashion_mnist: out of memory");
            return -1;
        }
        struct stat st;
        if (stat(p, &st) != 0 && errno == ENOENT) {
            celo_seterr(err, errlen, "%s: not found; install the Debian package " FMNIST_PKG, p);
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
    if (o.normalize)
        celo_data_standardize(&tr, test ? &te : NULL);
    if (train)
        *train = tr;
    else
        celo_dataset_free(&tr);
    if (test)
        *test = te;
    return 0;
}

/* ---- the source entry ---- */

enum { P_SIZE, P_RESIZE, P_NORMALIZE, NP };

static int source_load(celo_source *s, const double *p, char *err, size_t errlen)
{
    celo_fmnist_opts o = {.size = (int)p[P_SIZE], .resize = (int)p[P_RESIZE], .normalize = (int)p[P_NORMALIZE]};
    return celo_fmnist_load(&s->train, &s->test, &o, err, errlen);
}

static void source_origin(char *buf, size_t len)
{
    snprintf(buf, len, "%s", celo_data_env_or("CELO_FASHION_MNIST_DIR", CELO_FMNIST_DEFAULT_DIR));
}

const celo_source_type celo_source_fashion_mnist = {
    .name = "fashion_mnist",
    .help = "Fashion-MNIST: 60000 train / 10000 test clothing images in 10 classes (Debian dataset-fashion-mnist)",
    .kind = CELO_SOURCE_EXAMPLES,
    .nparams = NP,
    .params = {[P_SIZE] = {"size", 28, 1, 28, 1, "side length of the (area-resized) images"},
               [P_RESIZE] = {"resize", CELO_RESIZE_AREA, 0, 1, 1, "0: area averaging, 1: bilinear (celo_resize)"},
               [P_NORMALIZE] = {"normalize", 0, 0, 1, 1, "1: standardize with the train set's pixel mean and std"}},
    .load = source_load,
    .origin = source_origin,
};
