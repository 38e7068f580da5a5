/*
 * theta.c — meta-parameter (θ) files (see theta.h): a decoder for the subset of msgpack that flax writes, the
 * walk that flattens its nested maps into '/'-joined names, and safetensors through ckpt.c.
 *
 * flax.serialization.msgpack_serialize writes the state dict as nested msgpack maps with string keys; each array
 * leaf is a msgpack ext of type 1 whose payload is itself msgpack: [shape as a list of ints, dtype name as a
 * string, raw bytes (bin) in C order, host byte order = little-endian]. NumPy scalars are ext type 3 with the same
 * payload (shape []). Nothing else is a tensor; any other leaf is an error rather than something guessed.
 */
#include "theta.h"

#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* θ files are a few MB at most; this bound only keeps a garbage "file" from exhausting memory. */
#define THETA_MAX_FILE ((size_t)1 << 31)
/* Nesting of the parameter tree; flax trees are 3-4 deep, garbage can claim any depth. */
#define THETA_MAX_DEPTH 64
#define THETA_MAX_NAME  4096

enum { EXT_NDARRAY = 1, EXT_NPSCALAR = 3 }; /* flax's _MsgpackExtType */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void celo_theta_init(celo_theta *th)
{
    memset(th, 0, sizeof *th);
}

void celo_theta_free(celo_theta *th)
{
    for (int i = 0; i < th->n; i++) {
        free(th->t[i].name);
        free(th->t[i].data);
    }
    free(th->t);
    celo_theta_init(th);
}

const celo_theta_tensor *celo_theta_find(const celo_theta *th, const char *name)
{
    for (int i = 0; i < th->n; i++)
        if (!strcmp(th->t[i].name, name))
            return &th->t[i];
    return NULL;
}

int64_t celo_theta_count(const celo_theta *th)
{
    int64_t n = 0;
    for (int i = 0; i < th->n; i++)
        n += th->t[i].n;
    return n;
}

/* shape -> element count; -1 for a negative size or a count whose bytes overflow */
static int64_t numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] && n > INT64_MAX / 4 / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

/* Appends (name, shape, a copy of the n*4 bytes at src: possibly unaligned, little-endian). what names the file. */
static int add_bytes(celo_theta *th, const char *what, const char *name, int ndim, const int64_t *shape,
                     const void *src, char *err, size_t errlen)
{
    if (!*name) {
        seterr(err, errlen, "%s: empty tensor name", what);
        return -1;
    }
    if (celo_theta_find(th, name)) {
        seterr(err, errlen, "%s: tensor '%.200s' appears twice", what, name);
        return -1;
    }
    int64_t n = ndim < 0 || ndim > 8 ? -1 : numel(ndim, shape);
    if (n < 0) {
        seterr(err, errlen, "%s: tensor '%.200s': bad shape", what, name);
        return -1;
    }
    if (th->n == th->cap) {
        int nc = th->cap ? 2 * th->cap : 32;
        celo_theta_tensor *t = realloc(th->t, sizeof *t * (size_t)nc);
        if (!t)
            goto oom;
        th->t = t;
        th->cap = nc;
    }
    celo_theta_tensor *t = &th->t[th->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(n ? (size_t)n * 4 : 4);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        goto oom;
    }
    memcpy(t->data, src, (size_t)n * 4);
    /* a θ with NaN or inf inside is a broken file, not something to run an optimizer with */
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(t->data[k])) {
            seterr(err, errlen, "%s: tensor '%.200s' holds %s at element %lld", what, name,
                   isnan(t->data[k]) ? "NaN" : "inf", (long long)k);
            free(t->name);
            free(t->data);
            return -1;
        }
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->n = n;
    th->n++;
    return 0;
oom:
    seterr(err, errlen, "%s: out of memory", what);
    return -1;
}

int celo_theta_add(celo_theta *th, const char *name, int ndim, const int64_t *shape, const float *data, char *err,
                   size_t errlen)
{
    return add_bytes(th, "theta", name ? name : "", ndim, shape, data, err, errlen);
}

/* ================================ msgpack ================================ */

typedef struct {
    const unsigned char *p, *end, *start;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
} mp;

static int mp_fail(mp *m, const char *what)
{
    if (!m->failed)
        seterr(m->err, m->errlen, "%s: not a flax msgpack theta file: %s at byte %zu", m->path, what,
               (size_t)(m->p - m->start));
    m->failed = 1;
    return -1;
}

static int mp_need(mp *m, size_t n)
{
    if ((size_t)(m->end - m->p) < n) {
        if (!m->failed)
            seterr(m->err, m->errlen, "%s: truncated: %zu more bytes needed at byte %zu of %zu", m->path,
                   n - (size_t)(m->end - m->p), (size_t)(m->p - m->start), (size_t)(m->end - m->start));
        m->failed = 1;
        return -1;
    }
    return 0;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One msgpack header: its kind and, for containers, strings, bins and exts, its length (elements or bytes). */
typedef enum { K_NIL, K_BOOL, K_INT, K_FLOAT, K_STR, K_BIN, K_ARRAY, K_MAP, K_EXT } kind;
typedef struct {
    kind k;
    uint64_t len;  /* STR/BIN/EXT: bytes; ARRAY: elements; MAP: pairs */
    int64_t i;     /* INT (uint64 above INT64_MAX: neg = 1 and i unused) */
    int big;       /* INT larger than INT64_MAX */
    int8_t type;   /* EXT type */
    const char *s; /* STR/BIN/EXT: the bytes (m->p is moved past them) */
} item;

static const char *kind_name(kind k)
{
    static const char *n[] = {"nil", "bool", "integer", "float", "string", "bin", "array", "map", "ext"};
    return n[k];
}

/* Reads one header; the payload of STR/BIN/EXT is skipped over and pointed to by it->s. */
static int mp_item(mp *m, item *it)
{
    memset(it, 0, sizeof *it);
    if (mp_need(m, 1))
        return -1;
    unsigned c = *m->p++;
    int lenbytes = 0;
    if (c <= 0x7f) {
        it->k = K_INT, it->i = c;
        return 0;
    }
    if (c >= 0xe0) {
        it->k = K_INT, it->i = (int8_t)c;
        return 0;
    }
    if (c >= 0x80 && c <= 0x8f) {
        it->k = K_MAP, it->len = c & 0x0f;
        return 0;
    }
    if (c >= 0x90 && c <= 0x9f) {
        it->k = K_ARRAY, it->len = c & 0x0f;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        it->k = K_STR, it->len = c & 0x1f;
        goto payload;
    }
    switch (c) {
    case 0xc0: it->k = K_NIL; return 0;
    case 0xc2:
    case 0xc3: it->k = K_BOOL; return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6: it->k = K_BIN, lenbytes = 1 << (c - 0xc4); break;
    case 0xc7:
    case 0xc8:
    case 0xc9: it->k = K_EXT, lenbytes = 1 << (c - 0xc7); break;
    case 0xca:
    case 0xcb:
        it->k = K_FLOAT;
        if (mp_need(m, c == 0xca ? 4 : 8))
            return -1;
        m->p += c == 0xca ? 4 : 8;
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        int nb = 1 << (c - 0xcc);
        if (mp_need(m, (size_t)nb))
            return -1;
        uint64_t v = be(m->p, nb);
        m->p += nb;
        it->k = K_INT;
        if (v > (uint64_t)INT64_MAX)
            it->big = 1;
        else
            it->i = (int64_t)v;
        return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int nb = 1 << (c - 0xd0);
        if (mp_need(m, (size_t)nb))
            return -1;
        uint64_t v = be(m->p, nb);
        m->p += nb;
        it->k = K_INT;
        it->i = nb == 1 ? (int8_t)v : nb == 2 ? (int16_t)v : nb == 4 ? (int32_t)v : (int64_t)v;
        return 0;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1, 2, 4, 8, 16: type byte, then that many bytes */
        if (mp_need(m, 1))
            return -1;
        it->k = K_EXT, it->type = (int8_t)*m->p++, it->len = 1u << (c - 0xd4);
        goto payload;
    case 0xd9:
    case 0xda:
    case 0xdb: it->k = K_STR, lenbytes = 1 << (c - 0xd9); break;
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf: {
        int nb = c == 0xdc || c == 0xde ? 2 : 4;
        if (mp_need(m, (size_t)nb))
            return -1;
        it->k = c <= 0xdd ? K_ARRAY : K_MAP;
        it->len = be(m->p, nb);
        m->p += nb;
        return 0;
    }
    default: m->p--; return mp_fail(m, "invalid type byte");
    }
    if (mp_need(m, (size_t)lenbytes))
        return -1;
    it->len = be(m->p, lenbytes);
    m->p += lenbytes;
    if (it->k == K_EXT) {
        if (mp_need(m, 1))
            return -1;
        it->type = (int8_t)*m->p++;
    }
payload:
    if (mp_need(m, it->len))
        return -1;
    it->s = (const char *)m->p;
    m->p += it->len;
    return 0;
}

/* The payload of an ndarray ext (or an npscalar ext: the same, packed from np.asarray(x), so its shape is []):
 * [shape, dtype, bytes], itself a msgpack document inside the ext's bytes. Checks it and adds the tensor. */
static int mp_tensor(mp *outer, const item *ext, const char *name, celo_theta *th)
{
    mp m = {(const unsigned char *)ext->s,
            (const unsigned char *)ext->s + ext->len,
            outer->start,
            outer->path,
            outer->err,
            outer->errlen,
            0};
    item a, x, sh;
    int64_t shape[8];
    int ndim = 0;
    if (mp_item(&m, &a))
        return -1;
    if (a.k != K_ARRAY || a.len != 3)
        return mp_fail(&m, "an array leaf is not [shape, dtype, bytes]");
    if (mp_item(&m, &sh))
        return -1;
    if (sh.k != K_ARRAY)
        return mp_fail(&m, "an array's shape is not a list");
    if (sh.len > 8) {
        seterr(outer->err, outer->errlen, "%s: tensor '%.200s' has %llu dimensions; at most 8 are supported",
               outer->path, name, (unsigned long long)sh.len);
        return -1;
    }
    ndim = (int)sh.len;
    for (int d = 0; d < ndim; d++) {
        if (mp_item(&m, &x))
            return -1;
        if (x.k != K_INT || x.big || x.i < 0)
            return mp_fail(&m, "a shape entry is not a non-negative integer");
        shape[d] = x.i;
    }
    item dt, data;
    if (mp_item(&m, &dt))
        return -1;
    if (dt.k != K_STR)
        return mp_fail(&m, "an array's dtype is not a string");
    if (dt.len != 7 || memcmp(dt.s, "float32", 7)) {
        seterr(outer->err, outer->errlen, "%s: tensor '%.200s' has dtype %.*s; only float32 is supported", outer->path,
               name, (int)(dt.len > 32 ? 32 : dt.len), dt.s);
        return -1;
    }
    if (mp_item(&m, &data))
        return -1;
    if (data.k != K_BIN)
        return mp_fail(&m, "an array's data is not bytes");
    if (m.p != m.end)
        return mp_fail(&m, "extra bytes after an array leaf");
    int64_t n = numel(ndim, shape);
    if (n < 0 || (uint64_t)n * 4 != data.len) {
        seterr(outer->err, outer->errlen, "%s: tensor '%.200s': %llu data bytes do not hold its shape's %lld floats",
               outer->path, name, (unsigned long long)data.len, (long long)n);
        return -1;
    }
    return add_bytes(th, outer->path, name, ndim, shape, data.s, outer->err, outer->errlen);
}

/* A map of the parameter tree: every key joined to prefix with '/'; maps recurse, array leaves become tensors. */
static int mp_map(mp *m, uint64_t npairs, char *name, size_t prefix, int depth, celo_theta *th)
{
    if (depth > THETA_MAX_DEPTH)
        return mp_fail(m, "the parameter tree is nested too deeply");
    for (uint64_t i = 0; i < npairs; i++) {
        item k, v;
        if (mp_item(m, &k))
            return -1;
        if (k.k != K_STR)
            return mp_fail(m, "a key of the parameter tree is not a string");
        if (!k.len || memchr(k.s, 0, k.len))
            return mp_fail(m, "a key of the parameter tree is empty or holds a NUL");
        size_t at = prefix ? prefix + 1 : 0;
        if (at + k.len + 1 > THETA_MAX_NAME)
            return mp_fail(m, "a parameter name is too long");
        if (prefix)
            name[prefix] = '/';
        memcpy(name + at, k.s, k.len);
        name[at + k.len] = 0;
        if (mp_item(m, &v))
            return -1;
        if (v.k == K_MAP) {
            if (mp_map(m, v.len, name, at + k.len, depth + 1, th))
                return -1;
        } else if (v.k == K_EXT && (v.type == EXT_NDARRAY || v.type == EXT_NPSCALAR)) {
            if (mp_tensor(m, &v, name, th))
                return -1;
        } else {
            seterr(m->err, m->errlen, "%s: '%.200s' is a msgpack %s, not a float32 array", m->path, name,
                   v.k == K_EXT ? "ext of an unknown type" : kind_name(v.k));
            m->failed = 1;
            return -1;
        }
        name[prefix] = 0;
    }
    return 0;
}

int celo_theta_parse_msgpack(const unsigned char *buf, size_t len, const char *path, celo_theta *th, char *err,
                             size_t errlen)
{
    celo_theta_init(th);
    mp m = {buf, buf + len, buf, path, err, errlen, 0};
    item top;
    char name[THETA_MAX_NAME];
    name[0] = 0;
    int rc = -1;
    if (mp_item(&m, &top))
        goto done;
    if (top.k != K_MAP) {
        m.p = m.start;
        mp_fail(&m, "the top level is not a map");
        goto done;
    }
    if (mp_map(&m, top.len, name, 0, 0, th))
        goto done;
    if (m.p != m.end) {
        seterr(err, errlen, "%s: %zu stray bytes after the parameter tree", path, (size_t)(m.end - m.p));
        goto done;
    }
    if (!th->n) {
        seterr(err, errlen, "%s: the parameter tree holds no arrays", path);
        goto done;
    }
    rc = 0;
done:
    if (rc)
        celo_theta_free(th);
    return rc;
}

/* ================================ files ================================ */

static int read_all(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        seterr(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((uint64_t)sb.st_size > THETA_MAX_FILE) {
        seterr(err, errlen, "%s: too large for a theta file (%lld bytes)", path, (long long)sb.st_size);
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, off = 0;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        seterr(err, errlen, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    while (off < n) {
        ssize_t r = read(fd, b + off, n - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            seterr(err, errlen, "%s: read error: %s", path, r ? strerror(errno) : "file shrank while reading");
            free(b);
            close(fd);
            return -1;
        }
        off += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

static int read_safetensors(const char *path, celo_theta *th, char *err, size_t errlen)
{
    celo_ckpt c;
    if (celo_ckpt_read(&c, path, err, errlen))
        return -1; /* ckpt.c validates the header, the dtype (F32 only), offsets and the file size */
    int rc = 0;
    for (int i = 0; i < c.ntensor && !rc; i++)
        rc = add_bytes(th, path, c.tensor[i].name, c.tensor[i].ndim, c.tensor[i].shape, c.tensor[i].data, err, errlen);
    if (!rc && !th->n) {
        seterr(err, errlen, "%s: holds no tensors", path);
        rc = -1;
    }
    celo_ckpt_free(&c);
    if (rc)
        celo_theta_free(th);
    return rc;
}

int celo_theta_read(const char *path, celo_theta *th, celo_theta_format *fmt, char *err, size_t errlen)
{
    celo_theta_init(th);
    unsigned char *buf;
    size_t len;
    if (read_all(path, &buf, &len, err, errlen))
        return -1;
    int rc = -1;
    /* safetensors: an 8-byte little-endian header length, then the JSON header's '{'. flax msgpack: a map. */
    uint64_t hlen = 0;
    for (int i = 7; len >= 9 && i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (!len)
        seterr(err, errlen, "%s: empty file", path);
    else if (len >= 9 && buf[8] == '{' && hlen >= 2 && hlen <= len - 8) {
        if (fmt)
            *fmt = CELO_THETA_SAFETENSORS;
        rc = read_safetensors(path, th, err, errlen);
    } else if ((buf[0] >= 0x80 && buf[0] <= 0x8f) || buf[0] == 0xde || buf[0] == 0xdf) {
        if (fmt)
            *fmt = CELO_THETA_MSGPACK;
        rc = celo_theta_parse_msgpack(buf, len, path, th, err, errlen);
    } else if (len >= 9 && buf[8] == '{')
        seterr(err, errlen, "%s: truncated or not a safetensors file (header of %llu bytes, file of %zu)", path,
               (unsigned long long)hlen, len);
    else
        seterr(err, errlen, "%s: not a theta file (neither flax msgpack nor safetensors)", path);
    free(buf);
    return rc;
}

int celo_theta_write(const char *path, const celo_theta *th, char *err, size_t errlen)
{
    celo_ckpt c;
    celo_ckpt_init(&c);
    int rc = 0;
    for (int i = 0; i < th->n && !rc; i++) {
        const celo_theta_tensor *t = &th->t[i];
        for (int64_t k = 0; k < t->n && !rc; k++)
            if (!isfinite(t->data[k])) {
                seterr(err, errlen, "%s: tensor '%.200s' holds %s at element %lld; not written", path, t->name,
                       isnan(t->data[k]) ? "NaN" : "inf", (long long)k);
                rc = -1;
            }
        if (!rc && celo_ckpt_add(&c, t->name, t->data, t->ndim, t->shape, err, errlen)) {
            seterr(err, errlen, "%s: cannot store tensor '%.200s' (bad name or shape)", path, t->name);
            rc = -1;
        }
    }
    if (!rc)
        rc = celo_ckpt_write(&c, path, err, errlen); /* temp file, fsync, rename, fsync of the folder */
    celo_ckpt_free(&c);
    return rc;
}
