/*
 * digits.c — the `digits` data set: 1797 handwritten digits as 8x8 images of pixel counts 0..16 (the test set of
 * UCI's "Optical Recognition of Handwritten Digits"), from the copy Debian's python3-sklearn ships as a gzip CSV:
 * one image per line, 64 pixels row by row, then the label (data.h).
 *
 * The split is fixed, by file order: the last ceil(n / 5) lines are the test set (360 of 1797), the rest the
 * training set (1437), as sklearn's train_test_split(test_size = 0.2, shuffle = False) gives: no random numbers,
 * so any tool can reproduce it, and each digit has 33 to 37 test images.
 */
#include "data_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define DIGITS_PKG      "python3-sklearn"
#define DIGITS_FILE     "digits.csv.gz"
#define DIGITS_PIXELS   64
#define DIGITS_MAXVAL   16
#define DIGITS_MAXBYTES ((size_t)64 << 20) /* the real file is 270 kB uncompressed: anything this big is not it */

/* The whole (decompressed) file, NUL-terminated, malloc'd; NULL with err. */
static char *read_gz(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            celo_seterr(err, errlen, "%s: not found; install the Debian package " DIGITS_PKG, path);
        else
            celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    gzFile g = gzdopen(fd, "rb"); /* reads plain files as they are, too */
    if (!g) {
        close(fd);
        celo_seterr(err, errlen, "%s: cannot open: out of memory", path);
        return NULL;
    }
    size_t cap = (size_t)1 << 19, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            celo_seterr(err, errlen, "%s: out of memory", path);
            break;
        }
        if (n + 1 >= cap) {
            if (cap >= DIGITS_MAXBYTES) {
                celo_seterr(err, errlen, "%s: more than %zu MiB of text; not the digits CSV", path,
                            DIGITS_MAXBYTES >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb, cap *= 2;
            continue;
        }
        int r = gzread(g, buf + n, (unsigned)(cap - 1 - n));
        if (r < 0) {
            int e = Z_OK;
            const char *m = gzerror(g, &e);
            celo_seterr(err, errlen, "%s: %s", path, e == Z_ERRNO ? strerror(errno) : m && *m ? m : "read error");
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) {
            buf[n] = 0;
            *len = n;
            break;
        }
        n += (size_t)r;
    }
    gzclose(g);
    return buf;
}

/* One unsigned integer field ending at ',' or the end of the line; -1 when it is not one. */
static int field(const char **p)
{
    const char *s = *p;
    int v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 6)
        v = v * 10 + (*s++ - '0'), digits++;
    if (!digits || (*s >= '0' && *s <= '9'))
        return -1;
    *p = s;
    return v;
}

/* Parses every line into pix [n, 64] (raw counts) and lab [n]. */
static int parse(const char *path, const char *text, size_t len, unsigned char **pix, int32_t **lab, int64_t *nout,
                 char *err, size_t errlen)
{
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    lines += len > 0 && text[len - 1] != '\n';
    *pix = malloc((size_t)(lines ? lines : 1) * DIGITS_PIXELS);
    *lab = malloc(sizeof(int32_t) * (size_t)(lines ? lines : 1));
    if (!*pix || !*lab) {
        celo_seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int64_t n = 0, line = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *stop = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (stop == p) { /* blank lines (a trailing one) carry nothing */
            p = eol + 1;
            continue;
        }
        for (int k = 0; k <= DIGITS_PIXELS; k++) {
            int v = field(&p);
            if (v < 0 || (p != stop && *p != ',')) {
                celo_seterr(err, errlen, "%s: line %lld: field %d is not a whole number", path, (long long)line, k + 1);
                return -1;
            }
            if ((k < DIGITS_PIXELS) != (p != stop)) {
                celo_seterr(err, errlen, "%s: line %lld: %s fields; want %d (64 pixels, then the label)", path,
                            (long long)line, k < DIGITS_PIXELS ? "too few" : "too many", DIGITS_PIXELS + 1);
                return -1;
            }
            if (k < DIGITS_PIXELS && v > DIGITS_MAXVAL) {
                celo_seterr(err, errlen, "%s: line %lld: pixel %d is %d, out of range 0..%d", path, (long long)line,
                            k + 1, v, DIGITS_MAXVAL);
                return -1;
            }
            if (k == DIGITS_PIXELS && v > 9) {
                celo_seterr(err, errlen, "%s: line %lld: label %d is out of range 0..9", path, (long long)line, v);
                return -1;
            }
            if (k < DIGITS_PIXELS)
                (*pix)[n * DIGITS_PIXELS + k] = (unsigned char)v, p++;
            else
                (*lab)[n] = v;
        }
        n++;
        p = eol + 1;
    }
    if (n < 2) {
        celo_seterr(err, errlen, "%s: %lld images; want at least 2 (a training and a test split)", path, (long long)n);
        return -1;
    }
    *nout = n;
    return 0;
}

/* Examples [i0, i0 + n) as a split: pixels / 16 in [0, 1]. */
static int make_split(celo_dataset *d, const char *split, const unsigned char *pix, const int32_t *lab, int64_t i0,
                      int64_t n, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->x = celo_data_examples_alloc((size_t)(n * DIGITS_PIXELS));
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    if (!d->x || !d->y) {
        celo_dataset_free(d);
        celo_seterr(err, errlen, "digits: out of memory");
        return -1;
    }
    for (int64_t i = 0; i < n * DIGITS_PIXELS; i++)
        d->x[i] = (float)pix[i0 * DIGITS_PIXELS + i] / (float)DIGITS_MAXVAL;
    memcpy(d->y, lab + i0, sizeof(int32_t) * (size_t)n);
    snprintf(d->name, sizeof d->name, "digits/%s", split);
    d->n = n;
    d->dim = DIGITS_PIXELS;
    d->h = d->w = 8;
    d->nclass = 10;
    d->std = 1.0f;
    return 0;
}

static const char *digits_path(const celo_digits_opts *o, char **owned)
{
    *owned = NULL;
    if (o && o->path)
        return o->path;
    return *owned = celo_data_path_join(celo_data_env_or("CELO_DIGITS_DIR", CELO_DIGITS_DEFAULT_DIR), DIGITS_FILE);
}

int celo_digits_load(celo_dataset *train, celo_dataset *test, const celo_digits_opts *opts, char *err, size_t errlen)
{
    if (train)
        memset(train, 0, sizeof *train);
    if (test)
        memset(test, 0, sizeof *test);
    char *owned;
    const char *path = digits_path(opts, &owned);
    if (!path) {
        celo_seterr(err, errlen, "digits: out of memory");
        return -1;
    }
    size_t len = 0;
    unsigned char *pix = NULL;
    int32_t *lab = NULL;
    int64_t n = 0;
    celo_dataset tr = {0}, te = {0};
    int rc = -1;
    char *text = read_gz(path, &len, err, errlen);
    if (!text || parse(path, text, len, &pix, &lab, &n, err, errlen))
        goto done;
    int64_t ntest = (n + 4) / 5;
    if (make_split(&tr, "train", pix, lab, 0, n - ntest, err, errlen) ||
        make_split(&te, "test", pix, lab, n - ntest, ntest, err, errlen))
        goto done;
    if (opts && opts->normalize)
        celo_data_standardize(&tr, &te);
    if (train)
        *train = tr, memset(&tr, 0, sizeof tr);
    if (test)
        *test = te, memset(&te, 0, sizeof te);
    rc = 0;
done:
    celo_dataset_free(&tr);
    celo_dataset_free(&te);
    free(text);
    free(pix);
    free(lab);
    free(owned);
    return rc;
}

/* ---- the source entry ---- */

enum { P_NORMALIZE, NP };

static int source_load(celo_source *s, const double *p, char *err, size_t errlen)
{
    celo_digits_opts o = {.normalize = (int)p[P_NORMALIZE]};
    return celo_digits_load(&s->train, &s->test, &o, err, errlen);
}

static void source_origin(char *buf, size_t len)
{
    snprintf(buf, len, "%s/" DIGITS_FILE, celo_data_env_or("CELO_DIGITS_DIR", CELO_DIGITS_DEFAULT_DIR));
}

const celo_source_type celo_source_digits = {
    .name = "digits",
    .help = "handwritten digits: 1437 train / 360 test 8x8 images in 10 classes (Debian python3-sklearn)",
    .kind = CELO_SOURCE_EXAMPLES,
    .nparams = NP,
    .params = {[P_NORMALIZE] = {"normalize", 0, 0, 1, 1, "1: standardize with the train set's pixel mean and std"}},
    .load = source_load,
    .origin = source_origin,
};
