/*
 * npy.c — NumPy .npy I/O for the celo runtime (declared in celort.h).
 *
 * Read:  format versions 1.0 and 2.0, C order, dtype '<f4' (loaded as is) or '<f8' (converted to float32).
 *        Anything else (Fortran order, other dtypes, big-endian, bad magic, malformed header, more than 8
 *        dimensions, truncated or oversized data) is rejected with a one-line message naming the file.
 * Write: format version 1.0, '<f4', C order, atomically (celo_atomic, fileio.h): the data goes to a temporary
 *        file beside PATH, is flushed and fsync'ed, then renamed over PATH. On failure PATH is left untouched.
 */
#include "celort.h"
#include "errmsg.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAGIC      "\x93NUMPY"
#define NPY_MAGIC_LEN  6
#define NPY_MAX_HEADER (1 << 20) /* far beyond any header numpy writes; guards against garbage lengths */

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- header parsing: a Python dict literal such as
 *      {'descr': '<f4', 'fortran_order': False, 'shape': (64, 33), }                                      */

typedef struct {
    const char *s, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return 1;
    }
    return 0;
}

/* a quoted string ('...' or "..."), no escapes (numpy never writes any in keys or dtypes) */
static int parse_str(cursor *c, char *buf, size_t buflen)
{
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"'))
        return -1;
    char q = *c->s++;
    size_t k = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || k + 1 >= buflen)
            return -1;
        buf[k++] = *c->s++;
    }
    if (c->s >= c->end)
        return -1;
    c->s++;
    buf[k] = 0;
    return 0;
}

static int parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->s) >= n && memcmp(c->s, w, n) == 0) {
        c->s += n;
        return 0;
    }
    return -1;
}

/* a tuple of non-negative integers: (), (n,), (a, b, ...); Python 2 'L' suffixes are accepted */
static int parse_shape(cursor *c, int *ndim, int64_t *shape)
{
    if (!accept(c, '('))
        return -1;
    int nd = 0;
    for (;;) {
        if (accept(c, ')'))
            break;
        skip_ws(c);
        if (c->s >= c->end || *c->s < '0' || *c->s > '9')
            return -1;
        int64_t v = 0;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*c->s++ - '0');
        }
        if (c->s < c->end && (*c->s == 'L' || *c->s == 'l'))
            c->s++;
        if (nd >= 8)
            return -2;
        shape[nd++] = v;
        if (accept(c, ','))
            continue;
        if (accept(c, ')'))
            break;
        return -1;
    }
    *ndim = nd;
    return 0;
}

/* ---- read ---- */

int celo_npy_read(const char *path, celo_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *hdr = NULL;
    unsigned char pre[12];
    int rc = -1;

    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        celo_seterr(err, errlen, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    uint32_t hlen;
    long hstart;
    if (major == 1 && minor == 0) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
        hstart = 10;
    } else if (major == 2 && minor == 0) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            celo_seterr(err, errlen, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        hstart = 12;
    } else {
        celo_seterr(err, errlen, "%s: unsupported .npy format version %d.%d (want 1.0 or 2.0)", path, major, minor);
        goto done;
    }
    if (hlen == 0 || hlen > NPY_MAX_HEADER) {
        celo_seterr(err, errlen, "%s: bad .npy header length %u", path, (unsigned)hlen);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        celo_seterr(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        celo_seterr(err, errlen, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = 0;

    /* parse the dict */
    char descr[32] = "", key[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    cursor c = {hdr, hdr + hlen};
    if (!accept(&c, '{'))
        goto bad_header;
    for (;;) {
        if (accept(&c, '}'))
            break;
        if (parse_str(&c, key, sizeof key) != 0 || !accept(&c, ':'))
            goto bad_header;
        if (strcmp(key, "descr") == 0) {
            skip_ws(&c);
            if (c.s < c.end && (*c.s == '[' || *c.s == '{')) {
                celo_seterr(err, errlen, "%s: structured dtype not supported (want float32 '<f4' or float64 '<f8')",
                            path);
                goto done;
            }
            if (parse_str(&c, descr, sizeof descr) != 0)
                goto bad_header;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "False") == 0)
                fortran = 0;
            else if (parse_word(&c, "True") == 0)
                fortran = 1;
            else
                goto bad_header;
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            int r = parse_shape(&c, &out->ndim, out->shape);
            if (r == -2) {
                celo_seterr(err, errlen, "%s: more than 8 dimensions", path);
                goto done;
            }
            if (r != 0)
                goto bad_header;
            have_shape = 1;
        } else {
            goto bad_header;
        }
        if (accept(&c, ','))
            continue;
        if (accept(&c, '}'))
            break;
        goto bad_header;
    }
    if (!have_descr || !have_order || !have_shape)
        goto bad_header;
    if (fortran) {
        celo_seterr(err, errlen, "%s: Fortran-order array not supported (want C order)", path);
        goto done;
    }
    size_t isz;
    if (strcmp(descr, "<f4") == 0)
        isz = 4;
    else if (strcmp(descr, "<f8") == 0)
        isz = 8;
    else {
        for (char *q = descr; *q; q++)
            if (*q < 0x20 || *q > 0x7e)
                *q = '?';
        celo_seterr(err, errlen, "%s: dtype '%s' not supported (want float32 '<f4' or float64 '<f8')", path, descr);
        goto done;
    }

    /* element count, guarding against overflow */
    int64_t n = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->shape[i] != 0 && n > INT64_MAX / 8 / out->shape[i]) {
            celo_seterr(err, errlen, "%s: shape too large", path);
            goto done;
        }
        n *= out->shape[i];
    }
    if ((uint64_t)n > SIZE_MAX / 8) {
        celo_seterr(err, errlen, "%s: shape too large", path);
        goto done;
    }

    /* the data must be exactly n items */
    if (fseek(f, 0, SEEK_END) != 0) {
        celo_seterr(err, errlen, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    long fsize = ftell(f);
    if (fsize < 0 || fseek(f, hstart + (long)hlen, SEEK_SET) != 0) {
        celo_seterr(err, errlen, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    uint64_t have = (uint64_t)fsize - (uint64_t)(hstart + (long)hlen), want = (uint64_t)n * isz;
    if (have < want) {
        celo_seterr(err, errlen, "%s: truncated data: %llu bytes, shape needs %llu", path, (unsigned long long)have,
                    (unsigned long long)want);
        goto done;
    }
    if (have > want) {
        celo_seterr(err, errlen, "%s: trailing data: %llu bytes, shape needs %llu", path, (unsigned long long)have,
                    (unsigned long long)want);
        goto done;
    }

    float *data = malloc(n > 0 ? (size_t)n * sizeof(float) : sizeof(float));
    if (!data) {
        celo_seterr(err, errlen, "%s: out of memory (%lld elements)", path, (long long)n);
        goto done;
    }
    int le = host_is_little_endian();
    if (isz == 4) {
        if (fread(data, 4, (size_t)n, f) != (size_t)n) {
            free(data);
            celo_seterr(err, errlen, "%s: read error", path);
            goto done;
        }
        if (!le) {
            unsigned char *b = (unsigned char *)data;
            for (int64_t i = 0; i < n; i++, b += 4) {
                unsigned char t0 = b[0], t1 = b[1];
                b[0] = b[3], b[1] = b[2], b[2] = t1, b[3] = t0;
            }
        }
    } else {
        unsigned char buf[8 * 1024];
        int64_t i = 0;
        while (i < n) {
            size_t k = (size_t)(n - i < 1024 ? n - i : 1024);
            if (fread(buf, 8, k, f) != k) {
                free(data);
                celo_seterr(err, errlen, "%s: read error", path);
                goto done;
            }
            for (size_t j = 0; j < k; j++) {
                unsigned char b[8];
                for (int q = 0; q < 8; q++)
                    b[q] = buf[8 * j + (size_t)(le ? q : 7 - q)];
                double d;
                memcpy(&d, b, 8);
                data[i + (int64_t)j] = (float)d;
            }
            i += (int64_t)k;
        }
    }
    out->n = n;
    out->data = data;
    rc = 0;
    goto done;

bad_header:
    celo_seterr(err, errlen, "%s: malformed .npy header", path);
done:
    if (rc != 0)
        memset(out, 0, sizeof *out);
    free(hdr);
    fclose(f);
    return rc;
}

/* ---- write ---- */

int celo_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, char *err, size_t errlen)
{
    if (ndim < 0 || ndim > 8) {
        celo_seterr(err, errlen, "%s: cannot write %d dimensions (0..8)", path, ndim);
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] != 0 && n > INT64_MAX / 4 / shape[i])) {
            celo_seterr(err, errlen, "%s: bad shape", path);
            return -1;
        }
        n *= shape[i];
    }

    /* header: dict, padded with spaces and a final newline so that data starts on a 64-byte boundary */
    char dict[512];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)k + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    unsigned char head[10 + 512 + 64];
    memcpy(head, NPY_MAGIC, NPY_MAGIC_LEN);
    head[6] = 1;
    head[7] = 0;
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)k);
    memset(head + 10 + k, ' ', hlen - (size_t)k - 1);
    head[padded - 1] = '\n';

    celo_atomic a;
    FILE *f = celo_atomic_open(&a, path, err, errlen);
    if (!f)
        return -1;
    int ok = fwrite(head, 1, padded, f) == padded;
    if (ok) {
        if (host_is_little_endian()) {
            ok = fwrite(data, 4, (size_t)n, f) == (size_t)n;
        } else {
            for (int64_t i = 0; ok && i < n; i++) {
                unsigned char b[4], s[4];
                memcpy(s, &data[i], 4);
                b[0] = s[3], b[1] = s[2], b[2] = s[1], b[3] = s[0];
                ok = fwrite(b, 1, 4, f) == 4;
            }
        }
    }
    return celo_atomic_commit(&a, err, errlen);
}

void celo_array_free(celo_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
