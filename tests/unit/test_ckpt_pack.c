/*
 * test_ckpt_pack.c — checkpoints as bytes (runtime/ckpt_pack.h), the way meta-training's ranks send their pairs
 * to rank 0: a round trip keeps every name, shape, float (bit for bit) and metadata string, records of several
 * checkpoints read back one after another, and truncated or corrupted bytes are refused, never read past.
 * Without mpirun, MPI is never initialized and the ranks' helpers are those of one rank (ranks.h).
 */
#include "ckpt_pack.h"
#include "ranks.h"

#include <math.h>
#ifdef CELO_HAVE_MPI
#include <mpi.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "check.h"

static float w[6] = {1.5f, -2.25f, 0.0f, -0.0f, 1e-38f, 3.4e38f}, b[3] = {0.1f, 0.2f, 0.3f}, s = 7.0f;

static void make(celo_ckpt *c)
{
    celo_ckpt_init(c);
    w[2] = NAN;
    celo_ckpt_add(c, "fc1.w", w, 2, (int64_t[]){2, 3}, NULL, 0);
    celo_ckpt_add(c, "fc1.b", b, 1, (int64_t[]){3}, NULL, 0);
    celo_ckpt_add(c, "opt.fc1.w.t", &s, 0, NULL, NULL, 0);
    celo_ckpt_add(c, "empty", NULL, 1, (int64_t[]){0}, NULL, 0);
    celo_ckpt_set_meta(c, "step", "1200", NULL, 0);
    celo_ckpt_set_meta(c, "note", "\xc3\xa9 \" \\", NULL, 0);
}

static int same(const celo_ckpt *a, const celo_ckpt *c)
{
    if (a->ntensor != c->ntensor || a->nmeta != c->nmeta)
        return 0;
    for (int k = 0; k < a->ntensor; k++) {
        const celo_ckpt_tensor *x = &a->tensor[k], *y = &c->tensor[k];
        if (strcmp(x->name, y->name) || x->ndim != y->ndim || x->n != y->n ||
            memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) ||
            (x->n && memcmp(x->data, y->data, sizeof(float) * (size_t)x->n)) || ((uintptr_t)y->data % 4))
            return 0;
    }
    for (int k = 0; k < a->nmeta; k++)
        if (strcmp(a->meta[k].key, c->meta[k].key) || strcmp(a->meta[k].value, c->meta[k].value))
            return 0;
    return 1;
}

int main(void)
{
    celo_ckpt c, r1, r2;
    make(&c);
    sbuf sb = {0};
    celo_pack_i32(&sb, 42);
    celo_pack_str(&sb, "pair 1");
    celo_ckpt_pack(&c, &sb);
    celo_pack_str(&sb, "x"); /* the next record starts unaligned: its floats are padded */
    celo_ckpt_pack(&c, &sb);
    CHECK(!sb.oom, "packed two checkpoints (%zu bytes)", sb.len);
    unsigned char *buf = malloc(sb.len); /* malloc'ed, as the gathered bytes are */
    memcpy(buf, sb.s, sb.len);
    const unsigned char *p = buf, *end = buf + sb.len;
    int32_t q = 0;
    const char *str = NULL, *str2 = NULL;
    CHECK(!celo_unpack_i32(&p, end, &q) && q == 42 && !celo_unpack_str(&p, end, &str) && !strcmp(str, "pair 1"),
          "an int and a string read back");
    CHECK(!celo_ckpt_unpack(&p, end, &r1) && same(&c, &r1), "the first checkpoint read back bit for bit (NaN, -0, "
                                                            "denormal-range, a scalar, an empty tensor, metadata)");
    CHECK(!celo_unpack_str(&p, end, &str2) && !celo_ckpt_unpack(&p, end, &r2) && same(&c, &r2) && p == end,
          "the second after an odd-length string, floats aligned, ending exactly at the end");
    celo_ckpt_free(&r1), celo_ckpt_free(&r2);
    /* every truncation is refused */
    int refused = 0, n = 0;
    const unsigned char *start = buf + 4 + 4 + 7; /* the first checkpoint */
    for (const unsigned char *e = start; e < start + 100; e++, n++) {
        const unsigned char *pp = start;
        celo_ckpt t;
        if (celo_ckpt_unpack(&pp, e, &t))
            refused++;
        else
            celo_ckpt_free(&t);
    }
    CHECK(refused == n, "%d of %d truncations refused", refused, n);
    /* a bad magic, a huge string length */
    unsigned char bad[64];
    memcpy(bad, start, sizeof bad);
    bad[0] ^= 1;
    const unsigned char *pb = bad;
    celo_ckpt t;
    CHECK(celo_ckpt_unpack(&pb, bad + sizeof bad, &t) != 0, "a bad magic number refused");
    memcpy(bad, start, sizeof bad);
    int32_t huge = 0x7fffffff;
    memcpy(bad + 12, &huge, 4); /* the first tensor name's length */
    pb = bad;
    CHECK(celo_ckpt_unpack(&pb, bad + sizeof bad, &t) != 0, "a name longer than the bytes refused");
    /* a process that mpirun did not start never initializes MPI (a plain `celo run`) */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    int inited = 0;
    CHECK(celo_ranks_init() == 0 && celo_nranks() == 1, "celo_ranks_init without mpirun: one rank");
#ifdef CELO_HAVE_MPI
    MPI_Initialized(&inited);
#endif
    CHECK(!inited, "without mpirun MPI is not initialized");
    celo_ranks_finish(0);
    /* one rank: the collectives are the identity, gathering copies */
    double d[2] = {1.5, -2};
    unsigned char *out = NULL;
    size_t outlen = 0;
    char err[256];
    CHECK(celo_rank() == 0 && celo_nranks() == 1 && !celo_allreduce_f64(d, 2, err, sizeof err) && d[0] == 1.5 &&
              !celo_gather_bytes("abc", 3, &out, &outlen, err, sizeof err) && outlen == 3 && !memcmp(out, "abc", 3) &&
              !celo_ranks_any_failed(0, err, sizeof err),
          "without mpirun: rank 0 of 1, sums and gathers of one rank");
    free(out), free(buf), free(sb.s);
    celo_ckpt_free(&c);
    return fails != 0;
}
