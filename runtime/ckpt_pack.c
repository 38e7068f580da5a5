/* ckpt_pack.c — checkpoints as bytes in memory (ckpt_pack.h). */
#include "ckpt_pack.h"

#include <string.h>

#define MAGIC 0x4b504b43u /* "CKPK" */

void celo_pack_i32(sbuf *b, int32_t v)
{
    celo_sb_put(b, (const char *)&v, sizeof v);
}

void celo_pack_str(sbuf *b, const char *s)
{
    size_t n = strlen(s) + 1;
    celo_pack_i32(b, (int32_t)n);
    celo_sb_put(b, s, n);
}

int celo_unpack_i32(const unsigned char **p, const unsigned char *end, int32_t *v)
{
    if (end - *p < (ptrdiff_t)sizeof *v)
        return -1;
    memcpy(v, *p, sizeof *v);
    *p += sizeof *v;
    return 0;
}

int celo_unpack_str(const unsigned char **p, const unsigned char *end, const char **s)
{
    int32_t n;
    if (celo_unpack_i32(p, end, &n) || n < 1 || end - *p < n || (*p)[n - 1] != 0)
        return -1;
    *s = (const char *)*p;
    *p += n;
    return 0;
}

static void pad4(sbuf *b)
{
    static const char zero[4] = {0};
    if (b->len % 4)
        celo_sb_put(b, zero, 4 - b->len % 4);
}

void celo_ckpt_pack(const celo_ckpt *c, sbuf *b)
{
    celo_pack_i32(b, (int32_t)MAGIC);
    celo_pack_i32(b, c->ntensor);
    celo_pack_i32(b, c->nmeta);
    for (int k = 0; k < c->ntensor; k++) {
        const celo_ckpt_tensor *t = &c->tensor[k];
        celo_pack_str(b, t->name);
        celo_pack_i32(b, t->ndim);
        celo_sb_put(b, (const char *)t->shape, sizeof(int64_t) * (size_t)t->ndim);
        pad4(b);
        if (t->n > 0)
            celo_sb_put(b, (const char *)t->data, sizeof(float) * (size_t)t->n);
    }
    for (int k = 0; k < c->nmeta; k++) {
        celo_pack_str(b, c->meta[k].key);
        celo_pack_str(b, c->meta[k].value);
    }
}

int celo_ckpt_unpack(const unsigned char **p, const unsigned char *end, celo_ckpt *c)
{
    celo_ckpt_init(c);
    int32_t magic, nt, nm;
    if (celo_unpack_i32(p, end, &magic) || magic != (int32_t)MAGIC || celo_unpack_i32(p, end, &nt) ||
        celo_unpack_i32(p, end, &nm) || nt < 0 || nm < 0)
        return -1;
    for (int k = 0; k < nt; k++) {
        const char *name;
        int32_t ndim;
        int64_t shape[8], n = 1;
        if (celo_unpack_str(p, end, &name) || celo_unpack_i32(p, end, &ndim) || ndim < 0 || ndim > 8 ||
            end - *p < (ptrdiff_t)(sizeof(int64_t) * (size_t)ndim))
            goto bad;
        memcpy(shape, *p, sizeof(int64_t) * (size_t)ndim);
        *p += sizeof(int64_t) * (size_t)ndim;
        for (int d = 0; d < ndim; d++)
            n = shape[d] < 0 || (shape[d] > 0 && n > INT64_MAX / shape[d]) ? -1 : n * shape[d];
        while ((uintptr_t)*p % 4) /* pad4 of the packer */
            (*p)++;
        if (n < 0 || *p > end || (end - *p) / (ptrdiff_t)sizeof(float) < n)
            goto bad;
        if (celo_ckpt_add(c, name, (const float *)(const void *)*p, ndim, shape, NULL, 0))
            goto bad;
        *p += sizeof(float) * (size_t)n;
    }
    for (int k = 0; k < nm; k++) {
        const char *key, *val;
        if (celo_unpack_str(p, end, &key) || celo_unpack_str(p, end, &val) || celo_ckpt_set_meta(c, key, val, NULL, 0))
            goto bad;
    }
    return 0;
bad:
    celo_ckpt_free(c);
    return -1;
}
