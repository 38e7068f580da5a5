/*
 * test_theta.c — meta-parameter files (runtime/theta.h) against the shared Celo data:
 *  - the published Celo θ (`theta.state`, flax msgpack): 37,089 floats, the tree names and shapes of
 *    docs/theta.md, and per-tensor L2 norms computed independently (Python's msgpack package + NumPy, float64);
 *  - every golden Celo2 θ (`golden/<variant>/theta.msgpack`) equals, bit for bit, the `theta_flat.npy` and
 *    `theta_layout.json` that the authors' side wrote beside it;
 *  - msgpack → safetensors → θ is bit-exact, and safetensors → safetensors gives the same bytes;
 *  - truncated, garbled, non-float32 and NaN/inf files of both formats fail with one line naming the file
 *    (run under ASan/UBSan by `make test SAN=1`: never a crash).
 *
 * The data lives in the shared folder beside the repository (`../shared/data/celo`, relative to the repository
 * root where tests/run.sh runs the unit tests; CELO_DATA_CELO overrides it). It is required: without it the
 * test fails rather than skips, because CI has a copy.
 */
#include "theta.h"

#include "celort.h"
#include "ckpt.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256], err[1024];
static const char *data_dir;

static int one_line(const char *s, const char *path)
{
    return *s && !strchr(s, '\n') && strstr(s, path);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len)
        abort();
    fclose(f);
}

static int same_theta(const celo_theta *a, const celo_theta *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const celo_theta_tensor *x = &a->t[i], *y = &b->t[i];
        if (strcmp(x->name, y->name) || x->ndim != y->ndim || x->n != y->n ||
            memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) || memcmp(x->data, y->data, (size_t)x->n * 4))
            return 0;
    }
    return 1;
}

/* ---- 1. the published Celo θ ---- */
static const struct {
    const char *name;
    int ndim;
    int64_t shape[3];
    double l2; /* float64 norm from Python's msgpack package + NumPy */
} celo_expect[] = {
    {"ff_mod_stack/~/b0", 2, {1, 4}, 0.8135797245021017},
    {"ff_mod_stack/~/b1", 2, {1, 4}, 0.32887357830167635},
    {"ff_mod_stack/~/b2", 2, {1, 3}, 0.4817360760063619},
    {"ff_mod_stack/~/w0__0", 3, {1, 1, 4}, 0.6464495026887059},
    {"ff_mod_stack/~/w0__1", 3, {1, 1, 4}, 0.6887036266030154},
    {"ff_mod_stack/~/w0__10", 3, {1, 3, 4}, 0.7944446838941552},
    {"ff_mod_stack/~/w0__11", 3, {1, 3, 4}, 0.9724759769498761},
    {"ff_mod_stack/~/w0__12", 3, {1, 3, 4}, 1.146441588264191},
    {"ff_mod_stack/~/w0__13", 3, {1, 3, 4}, 0.9821144787024347},
    {"ff_mod_stack/~/w0__2", 3, {1, 1, 4}, 0.6158205611229564},
    {"ff_mod_stack/~/w0__3", 3, {1, 3, 4}, 1.2129953452243258},
    {"ff_mod_stack/~/w0__4", 3, {1, 1, 4}, 0.2991512076915264},
    {"ff_mod_stack/~/w0__5", 3, {1, 3, 4}, 1.7718879148896183},
    {"ff_mod_stack/~/w0__6", 3, {1, 1, 4}, 0.7812117139888761},
    {"ff_mod_stack/~/w0__7", 3, {1, 3, 4}, 1.2994869246017797},
    {"ff_mod_stack/~/w0__8", 3, {1, 1, 4}, 0.598599949825533},
    {"ff_mod_stack/~/w0__9", 3, {1, 3, 4}, 0.7470371622699842},
    {"ff_mod_stack/~/w1", 3, {1, 4, 4}, 2.745325786637184},
    {"ff_mod_stack/~/w2", 3, {1, 4, 3}, 2.2229313638008037},
    {"lstm_init_state/hidden", 2, {1, 64}, 1.8051605692100166},
    {"lstm_init_state/cell", 2, {1, 64}, 2.028186182540293},
    {"rnn_params/linear/b", 1, {64}, 2.127896078553869},
    {"rnn_params/linear/w", 2, {18, 64}, 11.035833315257564},
    {"rnn_params/linear_1/b", 1, {64}, 1.7489465173376568},
    {"rnn_params/linear_1/w", 2, {18, 64}, 11.256070017202617},
    {"rnn_params/linear_2/b", 1, {64}, 2.427384005092422},
    {"rnn_params/linear_2/w", 2, {18, 64}, 11.07164554588733},
    {"rnn_params/rnn/linear/b", 1, {256}, 4.319075715139282},
    {"rnn_params/rnn/linear/w", 2, {128, 256}, 48.17757539370039},
    {"rnn_params/rnn_to_controls/b", 1, {1}, 0.061873532831668854},
    {"rnn_params/rnn_to_controls/w", 2, {64, 1}, 2.1234751451158593},
    {"rnn_params/step_size/b", 1, {1}, 0.2913304567337036},
    {"rnn_params/step_size/w", 2, {64, 1}, 2.281397257196374},
};

static void test_celo_state(void)
{
    char path[1024], st[1024];
    snprintf(path, sizeof path, "%s/theta.state", data_dir);
    celo_theta th, back;
    celo_theta_format fmt = 0;
    int rc = celo_theta_read(path, &th, &fmt, err, sizeof err);
    CHECK(rc == 0 && fmt == CELO_THETA_MSGPACK, "%s reads as flax msgpack %s", path, rc ? err : "");
    if (rc)
        return;
    int n = (int)(sizeof celo_expect / sizeof *celo_expect);
    CHECK(celo_theta_count(&th) == 37089 && th.n == n, "published Celo θ: %lld floats in %d tensors (want 37089 in %d)",
          (long long)celo_theta_count(&th), th.n, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const celo_theta_tensor *t = celo_theta_find(&th, celo_expect[i].name);
        double ss = 0;
        for (int64_t k = 0; t && k < t->n; k++)
            ss += (double)t->data[k] * t->data[k];
        int ok = t && t == &th.t[i] && t->ndim == celo_expect[i].ndim &&
                 !memcmp(t->shape, celo_expect[i].shape, sizeof(int64_t) * (size_t)t->ndim) &&
                 fabs(sqrt(ss) - celo_expect[i].l2) <= 1e-12 * celo_expect[i].l2;
        if (!ok) {
            bad++;
            check(0, "tensor %s (file position %d): missing, misplaced, wrong shape or norm %.17g != %.17g",
                  celo_expect[i].name, i, sqrt(ss), celo_expect[i].l2);
        }
    }
    CHECK(!bad, "published Celo θ: names in file order, shapes and float64 L2 norms of all %d tensors", n);
    snprintf(st, sizeof st, "%s/celo.safetensors", tmpdir);
    rc = celo_theta_write(st, &th, err, sizeof err) || celo_theta_read(st, &back, &fmt, err, sizeof err);
    CHECK(!rc && fmt == CELO_THETA_SAFETENSORS && same_theta(&th, &back),
          "published Celo θ: msgpack -> safetensors -> read is bit-exact (names, order, shapes, data) %s",
          rc ? err : "");
    if (!rc)
        celo_theta_free(&back);

    /* every truncation of the file fails cleanly: all short prefixes, then every 997th length */
    size_t len;
    unsigned char *buf = slurp(path, &len);
    CHECK(buf != NULL, "read %s", path);
    int fails_trunc = 0, tried = 0;
    for (size_t cut = 0; buf && cut < len; cut += cut < 300 ? 1 : 997) {
        celo_theta x;
        tried++;
        err[0] = 0;
        if (celo_theta_parse_msgpack(buf, cut, "cut.state", &x, err, sizeof err) == 0 || !one_line(err, "cut.state") ||
            x.n != 0) {
            fails_trunc++;
            if (fails_trunc < 4)
                check(0, "truncated to %zu bytes: rc 0 or a bad message '%s'", cut, err);
        }
    }
    CHECK(!fails_trunc, "%d truncations of theta.state each fail with one line naming the file", tried);
    free(buf);
    celo_theta_free(&th);
}

/* ---- 2. golden Celo2 θ against the authors' flat vector and layout ---- */
static const char *variants[] = {"celo2",        "celo2_base",    "celo2_base_bigstep", "celo2_base_deploy",
                                 "celo2_biased", "celo2_bigstep", "celo2_deploy",       "celo2_deploy_bigstep"};

/* The layout file is a small JSON written by Python's json.dump: each tensor object has "name", "shape",
 * "offset" and "count" in this order, which is all this scan relies on. Returns how many it checked, -1 on a
 * mismatch (reported). */
static int check_layout(const char *variant, const char *json, const celo_theta *th, const celo_array *flat)
{
    int k = 0;
    for (const char *p = strstr(json, "\"name\""); p; p = strstr(p, "\"name\""), k++) {
        char name[256];
        long long shape[8], off, cnt;
        int nd = 0;
        p = strchr(p + 6, '"');
        const char *q = p ? strchr(p + 1, '"') : NULL;
        if (!q || q - p - 1 >= (long)sizeof name)
            return check(0, "%s layout: unreadable name", variant), -1;
        memcpy(name, p + 1, (size_t)(q - p - 1));
        name[q - p - 1] = 0;
        const char *s = strstr(q, "\"shape\"");
        s = s ? strchr(s, '[') : NULL;
        if (s)
            s++;
        while (s && nd < 8) {
            s += strspn(s, " \n,");
            if (*s == ']')
                break;
            char *e;
            shape[nd] = strtoll(s, &e, 10);
            if (e == s)
                s = NULL;
            else
                nd++, s = e;
        }
        const char *o = strstr(q, "\"offset\""), *c = strstr(q, "\"count\"");
        if (!s || !o || !c || sscanf(strchr(o, ':') + 1, "%lld", &off) != 1 ||
            sscanf(strchr(c, ':') + 1, "%lld", &cnt) != 1)
            return check(0, "%s layout: unreadable entry for %s", variant, name), -1;
        const celo_theta_tensor *t = celo_theta_find(th, name);
        int ok = t && t->ndim == nd && t->n == cnt && off >= 0 && off + cnt <= flat->n;
        for (int d = 0; ok && d < nd; d++)
            ok = t->shape[d] == shape[d];
        ok = ok && !memcmp(t->data, flat->data + off, (size_t)cnt * 4);
        if (!ok)
            return check(0, "%s: tensor %s differs from theta_flat.npy[%lld:%lld] or its layout shape", variant, name,
                         off, off + cnt),
                   -1;
        p = c;
    }
    return k;
}

static void test_golden_celo2(void)
{
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        char mp[1024], fl[1024], lay[1024], st[1024], st2[1024];
        snprintf(mp, sizeof mp, "%s/golden/%s/theta.msgpack", data_dir, variants[v]);
        snprintf(fl, sizeof fl, "%s/golden/%s/theta_flat.npy", data_dir, variants[v]);
        snprintf(lay, sizeof lay, "%s/golden/%s/theta_layout.json", data_dir, variants[v]);
        celo_theta th, a, b;
        celo_array flat = {0};
        size_t jl;
        char *json = (char *)slurp(lay, &jl);
        int rc = celo_theta_read(mp, &th, NULL, err, sizeof err);
        if (rc || !json || celo_npy_read(fl, &flat, err, sizeof err)) {
            check(0, "%s: cannot read the θ files: %s", variants[v], rc || json ? err : lay);
            if (!rc)
                celo_theta_free(&th);
            free(json);
            continue;
        }
        json = realloc(json, jl + 1);
        json[jl] = 0;
        int k = check_layout(variants[v], json, &th, &flat);
        CHECK(k == 19 && th.n == 19 && celo_theta_count(&th) == 347 && flat.n == 347,
              "%s: theta.msgpack == theta_flat.npy by theta_layout.json, bit for bit (%d tensors, 347 floats)",
              variants[v], k);
        /* msgpack -> safetensors -> θ, and safetensors -> safetensors gives the same bytes */
        snprintf(st, sizeof st, "%s/%s.safetensors", tmpdir, variants[v]);
        snprintf(st2, sizeof st2, "%s/%s.2.safetensors", tmpdir, variants[v]);
        rc = celo_theta_write(st, &th, err, sizeof err) || celo_theta_read(st, &a, NULL, err, sizeof err);
        int same = !rc && same_theta(&th, &a);
        if (!rc && !celo_theta_write(st2, &a, err, sizeof err) && !celo_theta_read(st2, &b, NULL, err, sizeof err)) {
            size_t l1, l2;
            unsigned char *x = slurp(st, &l1), *y = slurp(st2, &l2);
            same = same && x && y && l1 == l2 && !memcmp(x, y, l1) && same_theta(&a, &b);
            free(x);
            free(y);
            celo_theta_free(&b);
        } else
            same = 0;
        CHECK(same, "%s: msgpack -> safetensors -> safetensors round trip is bit-exact, same bytes twice %s",
              variants[v], rc ? err : "");
        if (!rc)
            celo_theta_free(&a);
        celo_theta_free(&th);
        celo_array_free(&flat);
        free(json);
    }
}

/* ---- 3. bad files ---- */
static void expect_fail(const char *what, const char *path, const char *needle)
{
    celo_theta th;
    err[0] = 0;
    int rc = celo_theta_read(path, &th, NULL, err, sizeof err);
    CHECK(rc == -1 && th.n == 0 && one_line(err, path) && (!needle || strstr(err, needle)),
          "%s: fails with one line naming the file%s%s: '%s'", what, needle ? " and saying " : "", needle ? needle : "",
          err);
}

/* Replaces the first occurrence of pat (n bytes) after offset `from`; the offset of the match, or -1. */
static long patch(unsigned char *b, size_t len, size_t from, const void *pat, const void *rep, size_t n)
{
    for (size_t i = from; i + n <= len; i++)
        if (!memcmp(b + i, pat, n)) {
            memcpy(b + i, rep, n);
            return (long)i;
        }
    return -1;
}

static void test_bad_files(void)
{
    char src[1024], p[1100];
    snprintf(src, sizeof src, "%s/golden/celo2_biased/theta.msgpack", data_dir);
    size_t len;
    unsigned char *orig = slurp(src, &len), *b = malloc(len);
    if (!orig || !b) {
        check(0, "read %s", src);
        free(orig);
        free(b);
        return;
    }
    snprintf(p, sizeof p, "%s/missing.state", tmpdir);
    expect_fail("missing file", p, "cannot open");
    snprintf(p, sizeof p, "%s/empty.state", tmpdir);
    spit(p, "", 0);
    expect_fail("empty file", p, "empty");
    snprintf(p, sizeof p, "%s/garbage.state", tmpdir);
    spit(p, "this is not a theta file at all\n", 32);
    expect_fail("text garbage", p, "not a theta file");
    snprintf(p, sizeof p, "%s/trunc.state", tmpdir);
    spit(p, orig, len - 7);
    expect_fail("msgpack truncated by 7 bytes", p, "truncated");
    snprintf(p, sizeof p, "%s/trail.state", tmpdir);
    memcpy(b, orig, len);
    spit(p, b, len);
    FILE *f = fopen(p, "ab");
    fputs("xx", f);
    fclose(f);
    expect_fail("msgpack with bytes after the tree", p, "stray bytes");
    /* dtype: "float32" -> "float64" / "float16" (same string length, so the rest of the file still parses) */
    snprintf(p, sizeof p, "%s/f64.state", tmpdir);
    memcpy(b, orig, len);
    patch(b, len, 0, "float32", "float64", 7);
    spit(p, b, len);
    expect_fail("msgpack float64 array", p, "dtype float64; only float32");
    memcpy(b, orig, len);
    patch(b, len, 0, "float32", "bfloat1", 7);
    spit(p, b, len);
    expect_fail("msgpack bfloat1 array", p, "only float32");
    /* NaN and inf inside a tensor: element 5 of w1, the first 256-byte (64-float) data, a bin16 "c5 01 00" */
    memcpy(b, orig, len);
    long at = patch(b, len, 0, "\xc5\x01\x00", "\xc5\x01\x00", 3);
    CHECK(at > 0, "found the 256-byte data of w1 in %s", src);
    if (at > 0) {
        static const unsigned char qnan[4] = {0x00, 0x00, 0xc0, 0x7f}, pinf[4] = {0x00, 0x00, 0x80, 0x7f};
        snprintf(p, sizeof p, "%s/nan.state", tmpdir);
        memcpy(b + at + 3 + 4 * 5, qnan, 4);
        spit(p, b, len);
        expect_fail("msgpack NaN inside", p, "'ff_mod_stack/~/w1' holds NaN at element 5");
        memcpy(b + at + 3 + 4 * 5, pinf, 4);
        spit(p, b, len);
        expect_fail("msgpack inf inside", p, "holds inf at element 5");
    }
    /* a shape that does not match the bytes */
    memcpy(b, orig, len);
    at = patch(b, len, 0, "\x92\x08\x08\xa7", "\x92\x08\x07\xa7", 4); /* w1's shape [8, 8] -> [8, 7] */
    snprintf(p, sizeof p, "%s/shape.state", tmpdir);
    spit(p, b, len);
    CHECK(at > 0, "found w1's shape");
    expect_fail("msgpack shape [8, 7] with 64 floats", p, "do not hold its shape's 56 floats");
    /* a leaf that is not an array */
    snprintf(p, sizeof p, "%s/leaf.state", tmpdir);
    spit(p, "\x81\xa1x\x81\xa1y\xcb\x3f\xf0\0\0\0\0\0\0", 15);
    expect_fail("msgpack float leaf", p, "'x/y' is a msgpack float, not a float32 array");
    snprintf(p, sizeof p, "%s/emptymap.state", tmpdir);
    spit(p, "\x81\xa1x\x80", 4);
    expect_fail("msgpack tree without arrays", p, "holds no arrays");
    snprintf(p, sizeof p, "%s/deep.state", tmpdir);
    {
        unsigned char deep[3 * 200 + 1];
        for (int i = 0; i < 200; i++)
            memcpy(deep + 3 * i, "\x81\xa1x", 3);
        deep[600] = 0x80;
        spit(p, deep, sizeof deep);
    }
    expect_fail("msgpack nested 200 deep", p, "nested too deeply");

    /* random byte flips: success or one clean line, never a crash (ASan/UBSan builds check the memory) */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int flips = 0, bad = 0, okc = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(b, orig, len);
        for (int k = 0; k < 1 + trial % 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b[(s >> 33) % len] = (unsigned char)(s >> 20);
        }
        celo_theta x;
        err[0] = 0;
        int rc = celo_theta_parse_msgpack(b, len, "flip.state", &x, err, sizeof err);
        flips++;
        if (rc == 0) {
            okc++;
            celo_theta_free(&x);
        } else if (!one_line(err, "flip.state") || x.n)
            bad++;
    }
    CHECK(!bad, "%d randomly corrupted msgpack files: %d still parse, the others fail with one line", flips, okc);

    /* safetensors side (the header checks themselves are ckpt.c's, tested in test_ckpt) */
    celo_theta th;
    char st[1100];
    snprintf(st, sizeof st, "%s/bad.safetensors", tmpdir);
    if (celo_theta_read(src, &th, NULL, err, sizeof err) || celo_theta_write(st, &th, err, sizeof err)) {
        check(0, "write %s: %s", st, err);
    } else {
        size_t sl;
        unsigned char *sb = slurp(st, &sl);
        snprintf(p, sizeof p, "%s/trunc.safetensors", tmpdir);
        spit(p, sb, sl - 4);
        expect_fail("safetensors truncated by 4 bytes", p, "truncated");
        spit(p, sb, 20);
        expect_fail("safetensors cut inside the header", p, "truncated or not a safetensors file");
        unsigned char *sc = malloc(sl);
        memcpy(sc, sb, sl);
        patch(sc, sl, 8, "\"F32\"", "\"F64\"", 5);
        snprintf(p, sizeof p, "%s/f64.safetensors", tmpdir);
        spit(p, sc, sl);
        expect_fail("safetensors F64 tensor", p, "only F32");
        memcpy(sc, sb, sl);
        patch(sc, sl, 8, "\"shape\"", "\"shapf\"", 7);
        snprintf(p, sizeof p, "%s/hdr.safetensors", tmpdir);
        spit(p, sc, sl);
        expect_fail("safetensors bad header field", p, "unknown field");
        memcpy(sc, sb, sl);
        sc[9] = '!';
        spit(p, sc, sl);
        expect_fail("safetensors header not JSON", p, "malformed safetensors header");
        /* NaN in the last float of the file (b2 of the biased θ) */
        memcpy(sc, sb, sl);
        memcpy(sc + sl - 4, "\x00\x00\xc0\x7f", 4);
        snprintf(p, sizeof p, "%s/nan.safetensors", tmpdir);
        spit(p, sc, sl);
        expect_fail("safetensors NaN inside", p, "'ff_mod_stack/~/b2' holds NaN at element 2");
        free(sc);
        free(sb);
        /* the writer refuses a NaN θ and leaves an existing file alone */
        th.t[0].data[0] = NAN;
        CHECK(celo_theta_write(st, &th, err, sizeof err) == -1 && one_line(err, st) && strstr(err, "not written"),
              "writing a θ with NaN fails: '%s'", err);
        celo_theta x;
        CHECK(celo_theta_read(st, &x, NULL, err, sizeof err) == 0, "the earlier file is still intact");
        celo_theta_free(&x);
        celo_theta_free(&th);
    }
    /* a NumPy scalar leaf (ext type 3, payload [[], "float32", 4 bytes], as flax packs np.asarray(x)) and an array
     * in the longer encodings (str8 key, ext16, uint16 shape entry, bin32); then the scalar through safetensors as a
     * 0-dimensional tensor */
    {
        static const unsigned char sc[] = {
            0x82,                        /* map of 2 */
            0xd9, 0x03, 's',  'c',  'l', /* str8 key "scl" */
            0xc7, 0x10, 0x03,            /* ext8, 16 bytes, type 3 */
            0x93, 0x90, 0xa7, 'f',  'l',  'o',  'a',  't',  '3',  '2',  0xc4, 0x04, 0x00, 0x00, 0x40, 0x40, /* 3.0 */
            0xa1, 'v',                                                                    /* key "v" */
            0xc8, 0x00, 0x1a, 0x01,                                                       /* ext16, 26 bytes, type 1 */
            0x93, 0x91, 0xcd, 0x00, 0x02, 0xa7, 'f',  'l',  'o',  'a',  't',  '3',  '2',  /* shape [2] (uint16) */
            0xc6, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, /* bin32: 1, -2 */
        };
        snprintf(p, sizeof p, "%s/scalar.state", tmpdir);
        spit(p, sc, sizeof sc);
        celo_theta x, y;
        int rc = celo_theta_read(p, &x, NULL, err, sizeof err);
        const celo_theta_tensor *s0 = rc ? NULL : celo_theta_find(&x, "scl"), *v = rc ? NULL : celo_theta_find(&x, "v");
        CHECK(s0 && v && s0->ndim == 0 && s0->n == 1 && s0->data[0] == 3.0f && v->ndim == 1 && v->shape[0] == 2 &&
                  v->data[0] == 1.0f && v->data[1] == -2.0f,
              "msgpack npscalar (shape []), str8 key, ext16, uint16 shape, bin32 %s", rc ? err : "");
        snprintf(st, sizeof st, "%s/scalar.safetensors", tmpdir);
        int rc2 = rc || celo_theta_write(st, &x, err, sizeof err) || celo_theta_read(st, &y, NULL, err, sizeof err);
        CHECK(!rc2 && same_theta(&x, &y), "a 0-dimensional tensor through safetensors %s", rc2 ? err : "");
        if (!rc)
            celo_theta_free(&x);
        if (!rc2)
            celo_theta_free(&y);
    }
    /* add() validates too */
    celo_theta_init(&th);
    float nanv = NAN, one = 1;
    CHECK(celo_theta_add(&th, "a", 1, (int64_t[]){1}, &one, err, sizeof err) == 0 &&
              celo_theta_add(&th, "a", 1, (int64_t[]){1}, &one, err, sizeof err) == -1 && strstr(err, "twice") &&
              celo_theta_add(&th, "b", 1, (int64_t[]){1}, &nanv, err, sizeof err) == -1 && th.n == 1,
          "celo_theta_add refuses duplicates and NaN");
    celo_theta_free(&th);
    free(orig);
    free(b);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/celo-test-theta.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    data_dir = getenv("CELO_DATA_CELO");
    if (!data_dir || !*data_dir)
        data_dir = "../shared/data/celo";
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/theta.state", data_dir);
    CHECK(access(probe, R_OK) == 0,
          "the shared Celo data is at %s (run from the repository root, or set CELO_DATA_CELO)", data_dir);
    test_celo_state();
    test_golden_celo2();
    test_bad_files();
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char f[1024];
        snprintf(f, sizeof f, "%s/%s", tmpdir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(f);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails ? 1 : 0;
}
