/*
 * text.c — celo_text, the in-memory form of every character-level text (data.h): building it from bytes or a
 * file with a validation split at a line start, random training windows, evaluation windows, decoding.
 */
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        celo_seterr(err, errlen, "%s: validation fraction %g is not in [0, 1)", t->name, val_frac);
        return -1;
    }
    if (n < 2) {
        celo_seterr(err, errlen, "%s: text too short (%lld characters)", t->name, (long long)n);
        return -1;
    }
    t->ids = malloc((size_t)n);
    if (!t->ids) {
        celo_seterr(err, errlen, "%s: out of memory", t->name);
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
        celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
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
                celo_seterr(err, errlen, "%s: out of memory", path);
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
        celo_seterr(err, errlen, "%s: read error", path);
        return -1;
    }
    const char *base = strrchr(path, '/');
    int rc = celo_text_from_memory(t, base ? base + 1 : path, buf, (int64_t)len, val_frac, err, errlen);
    if (rc != 0 && err && strncmp(err, "text", 4) != 0) {
        /* name the file, not just its base name */
        char tmp[256];
        const char *colon = strchr(err, ':');
        snprintf(tmp, sizeof tmp, "%s%s", path, colon ? colon : "");
        celo_seterr(err, errlen, "%s", tmp);
    }
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
    uint64_t stream = CELO_DATA_STREAM('X', (uint64_t)split);
    __extension__ typedef unsigned __int128 u128;
    for (int b = 0; b < B; b++) {
        uint64_t h = celo_data_hash64(seed, stream, step * (uint64_t)B + (uint64_t)b);
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
