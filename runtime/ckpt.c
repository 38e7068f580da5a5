/*
 * ckpt.c — safetensors checkpoints (see ckpt.h): a strict JSON parser for the header, the validating reader
 * and the atomic writer.
 */
#include "ckpt.h"
#include "facdom.h"

#include "celort.h"
#include "errmsg.h"
#include "fileio.h"
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap4(void *p, int64_t n)
{
    unsigned char *b = p;
    for (int64_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3], b[1] = b[2], b[2] = t1, b[3] = t0;
    }
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Returns the offset of the first
 * bad byte, or len when all is well. */
static size_t utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned min, cp;
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, min = 0x10000, cp = c & 0x07;
        else
            return i;
        if (i + k >= len)
            return i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= len || (s[i + j] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += k + 1;
    }
    return len;
}

/* ================================ strict JSON ================================ */

typedef enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    size_t at;       /* byte offset in the header, for messages */
    const char *num; /* J_NUM: the literal, inside the header */
    size_t numlen;
    char *str; /* J_STR: decoded, NUL-terminated */
    size_t len;
    int n, cap; /* J_ARR / J_OBJ */
    struct jval *item;
    char **key; /* J_OBJ */
    size_t *keylen;
} jval;

typedef struct {
    const char *s, *p, *end;
    int depth;
    char msg[160];
} jparser;

#define JSON_MAX_DEPTH 64

static void jfree(jval *v)
{
    if (v->type == J_STR)
        free(v->str);
    if (v->type == J_ARR || v->type == J_OBJ) {
        for (int i = 0; i < v->n; i++) {
            jfree(&v->item[i]);
            if (v->type == J_OBJ)
                free(v->key[i]);
        }
        free(v->item);
        free(v->key);
        free(v->keylen);
    }
    memset(v, 0, sizeof *v);
}

static int jfail(jparser *P, const char *what)
{
    if (!P->msg[0])
        snprintf(P->msg, sizeof P->msg, "%s at byte %zu", what, (size_t)(P->p - P->s));
    return -1;
}

static void jws(jparser *P)
{
    while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r'))
        P->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at P->p (the opening quote): decoded into a malloc'd buffer. */
static int jstring(jparser *P, char **out, size_t *outlen)
{
    P->p++; /* '"' */
    const char *q = P->p;
    size_t cap = 0;
    while (q < P->end && *q != '"') { /* the decoded text is never longer than the source */
        if (*q == '\\')
            q++;
        q++;
        cap++;
    }
    char *o = malloc(cap * 2 + 1), *w = o;
    if (!o)
        return jfail(P, "out of memory");
    while (P->p < P->end && *P->p != '"') {
        unsigned char c = (unsigned char)*P->p;
        if (c < 0x20) {
            free(o);
            return jfail(P, "control character in a string");
        }
        if (c != '\\') {
            *w++ = (char)c;
            P->p++;
            continue;
        }
        if (P->p + 1 >= P->end)
            break;
        char e = P->p[1];
        P->p += 2;
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (P->end - P->p < 4 || hex4(P->p, &cp) != 0) {
                free(o);
                return jfail(P, "bad \\u escape");
            }
            P->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                free(o);
                return jfail(P, "lone low surrogate in a \\u escape");
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (P->end - P->p < 6 || P->p[0] != '\\' || P->p[1] != 'u' || hex4(P->p + 2, &lo) != 0 || lo < 0xdc00 ||
                    lo > 0xdfff) {
                    free(o);
                    return jfail(P, "unpaired high surrogate in a \\u escape");
                }
                P->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            w += put_utf8(w, cp);
            break;
        }
        default:
            free(o);
            P->p -= 2;
            return jfail(P, "bad escape in a string");
        }
    }
    if (P->p >= P->end) {
        free(o);
        return jfail(P, "unterminated string");
    }
    P->p++; /* '"' */
    *w = 0;
    *out = o;
    *outlen = (size_t)(w - o);
    return 0;
}

static int jvalue(jparser *P, jval *v);

static int jpush(jparser *P, jval *v)
{
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 8;
        jval *ni = realloc(v->item, sizeof *ni * (size_t)nc);
        if (!ni)
            return jfail(P, "out of memory");
        v->item = ni;
        if (v->type == J_OBJ) {
            char **nk = realloc(v->key, sizeof *nk * (size_t)nc);
            if (!nk)
                return jfail(P, "out of memory");
            v->key = nk;
            size_t *nl = realloc(v->keylen, sizeof *nl * (size_t)nc);
            if (!nl)
                return jfail(P, "out of memory");
            v->keylen = nl;
        }
        v->cap = nc;
    }
    memset(&v->item[v->n], 0, sizeof v->item[v->n]);
    return 0;
}

static int jvalue(jparser *P, jval *v)
{
    memset(v, 0, sizeof *v);
    jws(P);
    v->at = (size_t)(P->p - P->s);
    if (P->p >= P->end)
        return jfail(P, "unexpected end of header");
    char c = *P->p;
    if (c == '{' || c == '[') {
        if (++P->depth > JSON_MAX_DEPTH)
            return jfail(P, "nesting too deep");
        int obj = c == '{';
        v->type = obj ? J_OBJ : J_ARR;
        P->p++;
        jws(P);
        if (P->p < P->end && *P->p == (obj ? '}' : ']')) {
            P->p++;
            P->depth--;
            return 0;
        }
        for (;;) {
            if (jpush(P, v) != 0)
                return -1;
            if (obj) {
                jws(P);
                if (P->p >= P->end || *P->p != '"')
                    return jfail(P, "expected a string key");
                char *k;
                size_t kl;
                if (jstring(P, &k, &kl) != 0)
                    return -1;
                v->key[v->n] = k;
                v->keylen[v->n] = kl;
                jws(P);
                if (P->p >= P->end || *P->p != ':') {
                    v->n++; /* so that jfree frees the key (its value is zeroed: J_NULL) */
                    return jfail(P, "expected ':'");
                }
                P->p++;
            }
            int r = jvalue(P, &v->item[v->n]);
            v->n++;
            if (r != 0)
                return -1;
            jws(P);
            if (P->p < P->end && *P->p == ',') {
                P->p++;
                continue;
            }
            if (P->p < P->end && *P->p == (obj ? '}' : ']')) {
                P->p++;
                P->depth--;
                return 0;
            }
            return jfail(P, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') {
        v->type = J_STR;
        return jstring(P, &v->str, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *q = P->p;
        if (*q == '-')
            q++;
        if (q >= P->end || *q < '0' || *q > '9')
            return jfail(P, "bad number");
        if (*q == '0')
            q++;
        else
            while (q < P->end && *q >= '0' && *q <= '9')
                q++;
        if (q < P->end && *q == '.') {
            q++;
            if (q >= P->end || *q < '0' || *q > '9')
                return jfail(P, "bad number");
            while (q < P->end && *q >= '0' && *q <= '9')
                q++;
        }
        if (q < P->end && (*q == 'e' || *q == 'E')) {
            q++;
            if (q < P->end && (*q == '+' || *q == '-'))
                q++;
            if (q >= P->end || *q < '0' || *q > '9')
                return jfail(P, "bad number");
            while (q < P->end && *q >= '0' && *q <= '9')
                q++;
        }
        v->type = J_NUM;
        v->num = P->p;
        v->numlen = (size_t)(q - P->p);
        P->p = q;
        return 0;
    }
    static const struct {
        const char *w;
        jtype t;
    } lit[3] = {{"null", J_NULL}, {"true", J_TRUE}, {"false", J_FALSE}};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lit[i].w);
        if ((size_t)(P->end - P->p) >= l && memcmp(P->p, lit[i].w, l) == 0) {
            v->type = lit[i].t;
            P->p += l;
            return 0;
        }
    }
    return jfail(P, "unexpected character");
}

/* A non-negative integer literal (no sign, fraction or exponent) that fits int64. */
static int jint(const jval *v, int64_t *out)
{
    if (v->type != J_NUM || v->numlen == 0)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < v->numlen; i++) {
        char c = v->num[i];
        if (c < '0' || c > '9')
            return -1;
        if (x > (INT64_MAX - (c - '0')) / 10)
            return -1;
        x = x * 10 + (c - '0');
    }
    *out = x;
    return 0;
}

/* ================================ checkpoint object ================================ */

void celo_ckpt_init(celo_ckpt *c)
{
    memset(c, 0, sizeof *c);
}

void celo_ckpt_free(celo_ckpt *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->ntensor; i++)
        free(c->tensor[i].name);
    for (int i = 0; i < c->nmeta; i++)
        free(c->meta[i].key), free(c->meta[i].value);
    free(c->tensor);
    free(c->meta);
    free(c->path);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

const celo_ckpt_tensor *celo_ckpt_find(const celo_ckpt *c, const char *name)
{
    for (int i = 0; i < c->ntensor; i++)
        if (strcmp(c->tensor[i].name, name) == 0)
            return &c->tensor[i];
    return NULL;
}

const char *celo_ckpt_get_meta(const celo_ckpt *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].key, key) == 0)
            return c->meta[i].value;
    return NULL;
}

static const char *cname(const celo_ckpt *c)
{
    return c->path ? c->path : "checkpoint";
}

static int valid_text(const char *s)
{
    return utf8_check((const unsigned char *)s, strlen(s)) == strlen(s);
}

/* shape -> element count; -1 when a dimension is negative or the count overflows */
static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && n > INT64_MAX / 4 / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

int celo_ckpt_add(celo_ckpt *c, const char *name, const float *data, int ndim, const int64_t *shape, char *err,
                  size_t errlen)
{
    if (!name || !*name || strcmp(name, "__metadata__") == 0 || !valid_text(name)) {
        celo_seterr(err, errlen, "%s: bad tensor name '%.80s'", cname(c), name ? name : "(null)");
        return -1;
    }
    if (celo_ckpt_find(c, name)) {
        celo_seterr(err, errlen, "%s: tensor '%.80s' added twice", cname(c), name);
        return -1;
    }
    int64_t n = (ndim < 0 || ndim > 8) ? -1 : shape_numel(ndim, shape);
    if (n < 0 || (n > 0 && !data)) {
        celo_seterr(err, errlen, "%s: tensor '%.80s': bad shape or no data", cname(c), name);
        return -1;
    }
    if (c->ntensor == c->ntensor_cap) {
        int nc = c->ntensor_cap ? c->ntensor_cap * 2 : 16;
        celo_ckpt_tensor *nt = realloc(c->tensor, sizeof *nt * (size_t)nc);
        if (!nt)
            goto oom;
        c->tensor = nt;
        c->ntensor_cap = nc;
    }
    celo_ckpt_tensor *t = &c->tensor[c->ntensor];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        goto oom;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->n = n;
    t->data = data;
    c->ntensor++;
    return 0;
oom:
    celo_seterr(err, errlen, "%s: out of memory", cname(c));
    return -1;
}

int celo_ckpt_set_meta(celo_ckpt *c, const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !value || !valid_text(key) || !valid_text(value)) {
        celo_seterr(err, errlen, "%s: metadata key and value must be UTF-8 text", cname(c));
        return -1;
    }
    char *v = strdup(value);
    if (!v)
        goto oom;
    for (int i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].key, key) == 0) {
            free(c->meta[i].value);
            c->meta[i].value = v;
            return 0;
        }
    if (c->nmeta == c->nmeta_cap) {
        int nc = c->nmeta_cap ? c->nmeta_cap * 2 : 8;
        celo_ckpt_meta *nm = realloc(c->meta, sizeof *nm * (size_t)nc);
        if (!nm) {
            free(v);
            goto oom;
        }
        c->meta = nm;
        c->nmeta_cap = nc;
    }
    c->meta[c->nmeta].key = strdup(key);
    if (!c->meta[c->nmeta].key) {
        free(v);
        goto oom;
    }
    c->meta[c->nmeta++].value = v;
    return 0;
oom:
    celo_seterr(err, errlen, "%s: out of memory", cname(c));
    return -1;
}

int celo_ckpt_set_meta_i64(celo_ckpt *c, const char *key, int64_t value, char *err, size_t errlen)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return celo_ckpt_set_meta(c, key, buf, err, errlen);
}

int celo_ckpt_meta_i64(const celo_ckpt *c, const char *key, int64_t *value, char *err, size_t errlen)
{
    const char *s = celo_ckpt_get_meta(c, key);
    if (!s) {
        celo_seterr(err, errlen, "%s: no metadata '%.80s'", cname(c), key);
        return -1;
    }
    const char *p = s;
    int neg = *p == '-';
    if (neg)
        p++;
    int64_t x = 0;
    if (*p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (x > (INT64_MAX - (*p - '0')) / 10)
            goto bad;
        x = x * 10 + (*p - '0');
    }
    if (*p)
        goto bad;
    *value = neg ? -x : x;
    return 0;
bad:
    celo_seterr(err, errlen, "%s: metadata '%.80s' = '%.80s' is not an integer", cname(c), key, s);
    return -1;
}

static void fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
}

int celo_ckpt_load(const celo_ckpt *c, const char *name, float *dst, int ndim, const int64_t *shape, char *err,
                   size_t errlen)
{
    const celo_ckpt_tensor *t = celo_ckpt_find(c, name);
    if (!t) {
        celo_seterr(err, errlen, "%s: no tensor '%.80s'", cname(c), name);
        return -1;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        fmt_shape(a, sizeof a, t->ndim, t->shape);
        fmt_shape(b, sizeof b, ndim, shape);
        celo_seterr(err, errlen, "%s: tensor '%.80s' has shape %s, expected %s", cname(c), name, a, b);
        return -1;
    }
    if (t->n)
        memcpy(dst, t->data, (size_t)t->n * sizeof(float));
    return 0;
}

/* ---- optimizer state ---- */

static int slot_shape(const celo_state *st, int s, int64_t *shape)
{
    switch (st->prog->state[s].dom) {
    case CELO_ELEM:
        for (int i = 0; i < st->ndim; i++)
            shape[i] = st->shape[i];
        return st->ndim;
    case CELO_ROW: shape[0] = st->R; return 1;
    case CELO_COL: shape[0] = st->C; return 1;
    case CELO_FROW:
    case CELO_FCOL:
    case CELO_FBAT:
    case CELO_MAT: { /* the axes the domain keeps (none: one value, stored as a scalar) */
        unsigned rm = celo_fac_removed(st, st->prog->state[s].dom);
        int k = 0;
        for (int a = 0; a < st->ndim; a++)
            if (!(rm >> a & 1))
                shape[k++] = st->shape[a];
        return k;
    }
    default: return 0;
    }
}

static int slot_name(char *buf, size_t len, const char *param, const char *slot)
{
    int k = snprintf(buf, len, "opt.%s.%s", param, slot);
    return k < 0 || (size_t)k >= len ? -1 : 0;
}

int celo_ckpt_add_state(celo_ckpt *c, const char *param, const celo_state *st, char *err, size_t errlen)
{
    for (int s = 0; s < st->prog->nstate; s++) {
        char name[512];
        int64_t shape[8];
        if (slot_name(name, sizeof name, param, st->prog->state[s].name) != 0) {
            celo_seterr(err, errlen, "%s: parameter name too long: '%.80s'", cname(c), param);
            return -1;
        }
        int nd = slot_shape(st, s, shape);
        if (celo_ckpt_add(c, name, st->slot[s], nd, shape, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int celo_ckpt_load_state(const celo_ckpt *c, const char *param, celo_state *st, char *err, size_t errlen)
{
    for (int s = 0; s < st->prog->nstate; s++) {
        char name[512];
        int64_t shape[8];
        if (slot_name(name, sizeof name, param, st->prog->state[s].name) != 0) {
            celo_seterr(err, errlen, "%s: parameter name too long: '%.80s'", cname(c), param);
            return -1;
        }
        int nd = slot_shape(st, s, shape);
        if (celo_ckpt_load(c, name, st->slot[s], nd, shape, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* ================================ write ================================ */

static void sb_json_string(sbuf *b, const char *s)
{
    celo_sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"')
            celo_sb_put(b, "\\\"", 2);
        else if (*p == '\\')
            celo_sb_put(b, "\\\\", 2);
        else if (*p == '\n')
            celo_sb_put(b, "\\n", 2);
        else if (*p == '\t')
            celo_sb_put(b, "\\t", 2);
        else if (*p == '\r')
            celo_sb_put(b, "\\r", 2);
        else if (*p < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *p);
            celo_sb_put(b, e, 6);
        } else
            celo_sb_put(b, (const char *)p, 1);
    }
    celo_sb_put(b, "\"", 1);
}

int celo_ckpt_write(const celo_ckpt *c, const char *path, char *err, size_t errlen)
{
    /* header: metadata first (as Python writes it), then tensors in insertion order, contiguous */
    sbuf h = {0};
    char num[96];
    celo_sb_str(&h, "{");
    int first = 1;
    if (c->nmeta > 0) {
        celo_sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < c->nmeta; i++) {
            if (i)
                celo_sb_str(&h, ",");
            sb_json_string(&h, c->meta[i].key);
            celo_sb_str(&h, ":");
            sb_json_string(&h, c->meta[i].value);
        }
        celo_sb_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < c->ntensor; i++) {
        const celo_ckpt_tensor *t = &c->tensor[i];
        if (!first)
            celo_sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, t->name);
        celo_sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            celo_sb_str(&h, num);
        }
        uint64_t end = off + (uint64_t)t->n * 4;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)end);
        celo_sb_str(&h, num);
        off = end;
    }
    celo_sb_str(&h, "}");
    while (!h.oom && h.len % 8 != 0)
        celo_sb_str(&h, " "); /* data starts 8-byte aligned, like the reference */
    if (h.oom || h.len > CELO_CKPT_MAX_HEADER) {
        free(h.s);
        celo_seterr(err, errlen, "%s: %s", path, h.oom ? "out of memory" : "header too large");
        return -1;
    }

    celo_atomic a;
    FILE *f = celo_atomic_open(&a, path, err, errlen);
    if (!f) {
        free(h.s);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    free(h.s);
    int le = host_is_little_endian();
    for (int i = 0; ok && i < c->ntensor; i++) {
        const celo_ckpt_tensor *t = &c->tensor[i];
        if (t->n == 0)
            continue;
        if (le) {
            ok = fwrite(t->data, 4, (size_t)t->n, f) == (size_t)t->n;
        } else {
            for (int64_t k = 0; ok && k < t->n; k++) {
                unsigned char b[4];
                memcpy(b, &t->data[k], 4);
                swap4(b, 1);
                ok = fwrite(b, 1, 4, f) == 4;
            }
        }
    }
    return celo_atomic_commit(&a, err, errlen);
}

/* ================================ read ================================ */

static int off_cmp(const void *a, const void *b)
{
    const int64_t *x = a, *y = b; /* [begin, end, index] */
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

int celo_ckpt_read(celo_ckpt *c, const char *path, char *err, size_t errlen)
{
    celo_ckpt_init(c);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *hdr = NULL;
    int64_t *offs = NULL;
    jval root = {0};
    int rc = -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        celo_seterr(err, errlen, "%s: not a regular file", path);
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char len8[8];
    if (fsize < 8 || fread(len8, 1, 8, f) != 8) {
        celo_seterr(err, errlen, "%s: not a safetensors file (%llu bytes, shorter than the header length)", path,
                    (unsigned long long)fsize);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)len8[i] << (8 * i);
    if (hlen < 2 || hlen > CELO_CKPT_MAX_HEADER) {
        celo_seterr(err, errlen, "%s: not a safetensors file (header length %llu)", path, (unsigned long long)hlen);
        goto done;
    }
    if (hlen > fsize - 8) {
        celo_seterr(err, errlen, "%s: truncated or not a safetensors file (header of %llu bytes, file of %llu)", path,
                    (unsigned long long)hlen, (unsigned long long)fsize);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        celo_seterr(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        celo_seterr(err, errlen, "%s: read error", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (hdr[0] != '{') {
        celo_seterr(err, errlen, "%s: not a safetensors file (the header is not a JSON object)", path);
        goto done;
    }
    size_t bad = utf8_check((const unsigned char *)hdr, hlen);
    if (bad != hlen) {
        celo_seterr(err, errlen, "%s: malformed safetensors header: invalid UTF-8 at byte %zu", path, bad);
        goto done;
    }
    jparser P = {hdr, hdr, hdr + hlen, 0, ""};
    if (jvalue(&P, &root) != 0) {
        celo_seterr(err, errlen, "%s: malformed safetensors header: %s", path, P.msg);
        goto done;
    }
    jws(&P);
    if (P.p != P.end) {
        jfail(&P, "trailing characters after the JSON object");
        celo_seterr(err, errlen, "%s: malformed safetensors header: %s", path, P.msg);
        goto done;
    }
    if (root.type != J_OBJ) {
        celo_seterr(err, errlen, "%s: not a safetensors file (the header is not a JSON object)", path);
        goto done;
    }
    c->path = strdup(path);
    if (!c->path)
        goto oom;
    /* keys: no duplicates; names without NUL (C strings) */
    for (int i = 0; i < root.n; i++) {
        if (strlen(root.key[i]) != root.keylen[i]) {
            celo_seterr(err, errlen, "%s: a tensor name contains a NUL character", path);
            goto done;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(root.key[i], root.key[j]) == 0) {
                celo_seterr(err, errlen, "%s: duplicate key '%.80s' in the header", path, root.key[i]);
                goto done;
            }
    }
    uint64_t data_size = fsize - 8 - hlen;
    int ntens = 0;
    for (int i = 0; i < root.n; i++)
        ntens += strcmp(root.key[i], "__metadata__") != 0;
    c->tensor = calloc((size_t)(ntens ? ntens : 1), sizeof *c->tensor);
    offs = malloc(sizeof(int64_t) * 3 * (size_t)(ntens ? ntens : 1));
    if (!c->tensor || !offs)
        goto oom;
    c->ntensor_cap = ntens;
    for (int i = 0; i < root.n; i++) {
        const char *k = root.key[i];
        const jval *v = &root.item[i];
        if (strcmp(k, "__metadata__") == 0) {
            if (v->type != J_OBJ) {
                celo_seterr(err, errlen, "%s: __metadata__ is not an object", path);
                goto done;
            }
            for (int m = 0; m < v->n; m++) {
                if (v->item[m].type != J_STR) {
                    celo_seterr(err, errlen, "%s: metadata '%.80s' is not a string", path, v->key[m]);
                    goto done;
                }
                if (strlen(v->key[m]) != v->keylen[m] || strlen(v->item[m].str) != v->item[m].len) {
                    celo_seterr(err, errlen, "%s: metadata contains a NUL character", path);
                    goto done;
                }
                for (int q = 0; q < m; q++)
                    if (strcmp(v->key[m], v->key[q]) == 0) {
                        celo_seterr(err, errlen, "%s: duplicate metadata key '%.80s'", path, v->key[m]);
                        goto done;
                    }
                if (celo_ckpt_set_meta(c, v->key[m], v->item[m].str, err, errlen) != 0)
                    goto done;
            }
            continue;
        }
        if (!*k) {
            celo_seterr(err, errlen, "%s: empty tensor name", path);
            goto done;
        }
        if (v->type != J_OBJ) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': not an object", path, k);
            goto done;
        }
        const jval *dt = NULL, *sh = NULL, *of = NULL;
        for (int m = 0; m < v->n; m++) {
            const jval **slot = strcmp(v->key[m], "dtype") == 0          ? &dt
                                : strcmp(v->key[m], "shape") == 0        ? &sh
                                : strcmp(v->key[m], "data_offsets") == 0 ? &of
                                                                         : NULL;
            if (!slot) {
                celo_seterr(err, errlen, "%s: tensor '%.80s': unknown field '%.40s'", path, k, v->key[m]);
                goto done;
            }
            if (*slot) {
                celo_seterr(err, errlen, "%s: tensor '%.80s': duplicate field '%s'", path, k, v->key[m]);
                goto done;
            }
            *slot = &v->item[m];
        }
        if (!dt || !sh || !of) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': missing %s", path, k,
                        !dt   ? "dtype"
                        : !sh ? "shape"
                              : "data_offsets");
            goto done;
        }
        if (dt->type != J_STR) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': dtype is not a string", path, k);
            goto done;
        }
        if (strcmp(dt->str, "F32") != 0) {
            celo_seterr(err, errlen, "%s: tensor '%.80s' has dtype %.16s; only F32 is supported", path, k, dt->str);
            goto done;
        }
        celo_ckpt_tensor *t = &c->tensor[c->ntensor];
        if (sh->type != J_ARR || sh->n > 8) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': shape is not a list of at most 8 sizes", path, k);
            goto done;
        }
        for (int d = 0; d < sh->n; d++)
            if (jint(&sh->item[d], &t->shape[d]) != 0) {
                celo_seterr(err, errlen, "%s: tensor '%.80s': shape entries must be non-negative integers", path, k);
                goto done;
            }
        t->ndim = sh->n;
        t->n = shape_numel(t->ndim, t->shape);
        int64_t b, e;
        if (of->type != J_ARR || of->n != 2 || jint(&of->item[0], &b) != 0 || jint(&of->item[1], &e) != 0 || e < b) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': data_offsets must be [begin, end] with begin <= end", path,
                        k);
            goto done;
        }
        if (t->n < 0 || (uint64_t)(e - b) != (uint64_t)t->n * 4) {
            celo_seterr(err, errlen,
                        "%s: tensor '%.80s': data_offsets [%lld, %lld] do not hold its shape's %lld floats", path, k,
                        (long long)b, (long long)e, (long long)t->n);
            goto done;
        }
        t->name = strdup(k);
        if (!t->name)
            goto oom;
        offs[3 * c->ntensor] = b, offs[3 * c->ntensor + 1] = e, offs[3 * c->ntensor + 2] = c->ntensor;
        c->ntensor++;
    }
    /* the tensors tile the data section: sorted by offset, each starts where the previous ended */
    qsort(offs, (size_t)c->ntensor, sizeof(int64_t) * 3, off_cmp);
    uint64_t pos = 0;
    for (int i = 0; i < c->ntensor; i++) {
        const char *nm = c->tensor[offs[3 * i + 2]].name;
        if ((uint64_t)offs[3 * i] != pos) {
            celo_seterr(err, errlen, "%s: tensor '%.80s': data_offsets %s at %lld (expected %llu)", path, nm,
                        (uint64_t)offs[3 * i] < pos ? "overlap the previous tensor" : "leave a gap",
                        (long long)offs[3 * i], (unsigned long long)pos);
            goto done;
        }
        pos = (uint64_t)offs[3 * i + 1];
    }
    if (pos > data_size) {
        celo_seterr(err, errlen, "%s: truncated: the data section has %llu bytes, the tensors need %llu", path,
                    (unsigned long long)data_size, (unsigned long long)pos);
        goto done;
    }
    if (pos < data_size) {
        celo_seterr(err, errlen,
                    "%s: %llu bytes after the tensor data (the data section has %llu bytes, the tensors "
                    "use %llu)",
                    path, (unsigned long long)(data_size - pos), (unsigned long long)data_size,
                    (unsigned long long)pos);
        goto done;
    }
    if (data_size > SIZE_MAX - 4)
        goto oom;
    c->buf = malloc(data_size ? (size_t)data_size : 4);
    if (!c->buf)
        goto oom;
    if (data_size && fread(c->buf, 1, (size_t)data_size, f) != data_size) {
        celo_seterr(err, errlen, "%s: read error", path);
        goto done;
    }
    if (!host_is_little_endian())
        swap4(c->buf, (int64_t)(data_size / 4));
    /* tensors in file order, pointing into the buffer */
    celo_ckpt_tensor *sorted = malloc(sizeof *sorted * (size_t)(c->ntensor ? c->ntensor : 1));
    if (!sorted)
        goto oom;
    for (int i = 0; i < c->ntensor; i++) {
        sorted[i] = c->tensor[offs[3 * i + 2]];
        sorted[i].data = c->buf + offs[3 * i] / 4;
    }
    free(c->tensor);
    c->tensor = sorted;
    rc = 0;
    goto done;
oom:
    celo_seterr(err, errlen, "%s: out of memory", path);
done:
    jfree(&root);
    free(hdr);
    free(offs);
    fclose(f);
    if (rc != 0)
        celo_ckpt_free(c);
    return rc;
}
