/*
 * test_ckpt.c — safetensors checkpoints (runtime/ckpt.h): a file written by Python's safetensors loads
 * (tests/golden/ckpt/py.safetensors, made by tests/reference/gen_ckpt.py), round trips, atomic writes,
 * truncated and foreign files, and the validation of every header field.
 *
 * The other direction (a file written here loads in Python): run with CELO_CKPT_PY_OUT=FILE, then
 * `python3 tests/reference/ckpt_compat.py FILE`.
 */
#include "ckpt.h"

#include "celort.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];
static char err[512];

static int one_line(const char *s)
{
    return strchr(s, '\n') == NULL && *s;
}

/* The values of tests/reference/gen_ckpt.py. */
static float fc1_w[12], fc1_b[4] = {0.1f, -0.2f, 0.3f, -0.4f}, opt_m[12], scalar = 3.25f, uni[2] = {1e30f, -1e-30f};
static float big[1000];
static const char *const NOTE = "quote \" backslash \\ newline \n tab \t \xc3\xa9 \xe2\x9c\x93";
static const char *const UNI = "\xc3\xbcn\xc3\xaf.c\xc3\xb3"
                               "digo";

static void init_values(void)
{
    for (int i = 0; i < 12; i++)
        fc1_w[i] = (float)i * 0.5f - 1.0f, opt_m[i] = 1e-3f;
    for (int i = 0; i < 1000; i++)
        big[i] = (float)i * 0.001f - 0.5f;
}

static int same_tensor(const celo_ckpt *c, const char *name, const float *want, int ndim, const int64_t *shape)
{
    const celo_ckpt_tensor *t = celo_ckpt_find(c, name);
    if (!t || t->ndim != ndim)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] != shape[i])
            return 0;
        n *= shape[i];
    }
    return t->n == n && (n == 0 || memcmp(t->data, want, (size_t)n * 4) == 0);
}

static int check_contents(const celo_ckpt *c, int with_big)
{
    int ok = same_tensor(c, "fc1.w", fc1_w, 2, (int64_t[]){3, 4}) &&
             same_tensor(c, "fc1.b", fc1_b, 1, (int64_t[]){4}) &&
             same_tensor(c, "opt.fc1.w.m", opt_m, 2, (int64_t[]){3, 4}) && same_tensor(c, "scalar", &scalar, 0, NULL) &&
             same_tensor(c, "empty", NULL, 1, (int64_t[]){0}) && same_tensor(c, UNI, uni, 1, (int64_t[]){2});
    if (with_big)
        ok = ok && same_tensor(c, "big", big, 1, (int64_t[]){1000});
    const char *cur = celo_ckpt_get_meta(c, "data.cursor"), *note = celo_ckpt_get_meta(c, "note");
    ok = ok && c->ntensor == 6 + with_big && c->nmeta == 4 && cur &&
         strcmp(cur, "seed=7 n=60000 batch=128 epoch=0 k=42") == 0 && note && strcmp(note, NOTE) == 0;
    int64_t step = 0;
    ok = ok && celo_ckpt_meta_i64(c, "step", &step, err, sizeof err) == 0 && step == 42;
    return ok;
}

static int build(celo_ckpt *c, int with_big)
{
    celo_ckpt_init(c);
    int rc = 0;
    rc |= celo_ckpt_add(c, "fc1.w", fc1_w, 2, (int64_t[]){3, 4}, err, sizeof err);
    rc |= celo_ckpt_add(c, "fc1.b", fc1_b, 1, (int64_t[]){4}, err, sizeof err);
    rc |= celo_ckpt_add(c, "opt.fc1.w.m", opt_m, 2, (int64_t[]){3, 4}, err, sizeof err);
    rc |= celo_ckpt_add(c, "scalar", &scalar, 0, NULL, err, sizeof err);
    rc |= celo_ckpt_add(c, "empty", NULL, 1, (int64_t[]){0}, err, sizeof err);
    rc |= celo_ckpt_add(c, UNI, uni, 1, (int64_t[]){2}, err, sizeof err);
    if (with_big)
        rc |= celo_ckpt_add(c, "big", big, 1, (int64_t[]){1000}, err, sizeof err);
    rc |= celo_ckpt_set_meta(c, "step", "1", err, sizeof err);
    rc |= celo_ckpt_set_meta_i64(c, "step", 42, err, sizeof err); /* replaces */
    rc |= celo_ckpt_set_meta(c, "seed", "7", err, sizeof err);
    rc |= celo_ckpt_set_meta(c, "data.cursor", "seed=7 n=60000 batch=128 epoch=0 k=42", err, sizeof err);
    rc |= celo_ckpt_set_meta(c, "note", NOTE, err, sizeof err);
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* A file from a header text and n data bytes (zeros); hlen_override != 0 replaces the length field. */
static void craft(const char *path, const char *hdr, size_t ndata, uint64_t hlen_override)
{
    size_t hl = strlen(hdr);
    unsigned char *b = calloc(8 + hl + ndata + 1, 1);
    uint64_t h = hlen_override ? hlen_override : hl;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8, hdr, hl);
    spit(path, b, 8 + hl + ndata);
    free(b);
}

static void expect_bad(const char *name, const char *hdr, size_t ndata, const char *want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", tmpdir, name);
    craft(path, hdr, ndata, 0);
    celo_ckpt c;
    int rc = celo_ckpt_read(&c, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) == err && strstr(err, want) && one_line(err) && c.ntensor == 0 && c.buf == NULL,
          "reject %s: %s", name, err);
}

static int temp_files_left(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    if (d)
        closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    (void)argc;
    init_values();
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/celo-test-ckpt.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* the golden file, relative to the repository root (the test runner's directory) or to this binary */
    const char *golden = "tests/golden/ckpt/py.safetensors";
    char alt[1024];
    if (access(golden, R_OK) != 0) {
        snprintf(alt, sizeof alt, "%s", argv[0]);
        char *s = strstr(alt, "/build");
        if (s) {
            snprintf(s, sizeof alt - (size_t)(s - alt), "/%s", golden);
            golden = alt;
        }
    }

    /* 1. Python's file */
    celo_ckpt c;
    int rc = celo_ckpt_read(&c, golden, err, sizeof err);
    CHECK(rc == 0 && check_contents(&c, 0),
          "python-written %s loads: 6 tensors (2-D, 1-D, scalar, empty, UTF-8 "
          "name), 4 metadata strings with escapes %s",
          golden, rc ? err : "");
    float w[12];
    rc = celo_ckpt_load(&c, "fc1.w", w, 2, (int64_t[]){3, 4}, err, sizeof err);
    CHECK(rc == 0 && memcmp(w, fc1_w, sizeof w) == 0, "load fc1.w into a buffer");
    rc = celo_ckpt_load(&c, "fc1.w", w, 2, (int64_t[]){4, 3}, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "tensor 'fc1.w' has shape [3, 4], expected [4, 3]") && strstr(err, golden) == err,
          "shape mismatch: %s", err);
    rc = celo_ckpt_load(&c, "fc2.w", w, 1, (int64_t[]){12}, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "no tensor 'fc2.w'"), "missing tensor: %s", err);
    int64_t v;
    CHECK(celo_ckpt_meta_i64(&c, "data.cursor", &v, err, sizeof err) == -1 && strstr(err, "is not an integer") &&
              celo_ckpt_meta_i64(&c, "epoch", &v, err, sizeof err) == -1 && strstr(err, "no metadata 'epoch'"),
          "metadata as integers: %s", err);
    celo_ckpt_free(&c);

    /* 2. round trip; the same file for Python when asked */
    char path[512];
    snprintf(path, sizeof path, "%s/c.safetensors", tmpdir);
    rc = build(&c, 1);
    rc |= celo_ckpt_write(&c, path, err, sizeof err);
    celo_ckpt_free(&c);
    celo_ckpt r;
    int rr = celo_ckpt_read(&r, path, err, sizeof err);
    CHECK(rc == 0 && rr == 0 && check_contents(&r, 1), "round trip: 7 tensors and the metadata, bit for bit %s",
          rr ? err : "");
    celo_ckpt_free(&r);
    const char *pyout = getenv("CELO_CKPT_PY_OUT");
    if (pyout && *pyout) {
        build(&c, 1);
        rc = celo_ckpt_write(&c, pyout, err, sizeof err);
        celo_ckpt_free(&c);
        CHECK(rc == 0, "wrote %s for tests/reference/ckpt_compat.py", pyout);
    }
    size_t flen = 0;
    char *file = slurp(path, &flen);
    if (!file) {
        printf("FAIL cannot read back %s\n", path);
        return 1;
    }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)(unsigned char)file[i] << (8 * i);
    CHECK((8 + hl) % 8 == 0 && (file[8 + hl - 1] == ' ' || file[8 + hl - 1] == '}'),
          "header padded to 8 bytes (data at offset %llu)", (unsigned long long)(8 + hl));

    /* 3. atomic writes: overwrite in place, no temporary files left, a failed write names the file */
    build(&c, 0);
    rc = celo_ckpt_write(&c, path, err, sizeof err);
    celo_ckpt_free(&c);
    rr = celo_ckpt_read(&r, path, err, sizeof err);
    CHECK(rc == 0 && rr == 0 && check_contents(&r, 0) && temp_files_left() == 0,
          "overwrite: the new checkpoint replaces the old, no temporary file left");
    celo_ckpt_free(&r);
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", tmpdir);
    build(&c, 0);
    rc = celo_ckpt_write(&c, nodir, err, sizeof err);
    celo_ckpt_free(&c);
    CHECK(rc == -1 && strstr(err, nodir) == err && one_line(err), "write into a missing directory: %s", err);
    celo_ckpt_init(&c);
    CHECK(celo_ckpt_add(&c, "a", w, 1, (int64_t[]){2}, err, sizeof err) == 0 &&
              celo_ckpt_add(&c, "a", w, 1, (int64_t[]){2}, err, sizeof err) == -1 && strstr(err, "added twice") &&
              celo_ckpt_add(&c, "__metadata__", w, 1, (int64_t[]){2}, err, sizeof err) == -1 &&
              celo_ckpt_add(&c, "", w, 1, (int64_t[]){2}, err, sizeof err) == -1 &&
              celo_ckpt_add(&c, "bad\xff", w, 1, (int64_t[]){2}, err, sizeof err) == -1 &&
              celo_ckpt_add(&c, "neg", w, 1, (int64_t[]){-2}, err, sizeof err) == -1 &&
              celo_ckpt_set_meta(&c, "k", "bad\xc0\xaf", err, sizeof err) == -1,
          "writer refuses duplicate, reserved, empty and non-UTF-8 names, negative sizes, non-UTF-8 metadata");
    celo_ckpt_free(&c);

    /* 4. truncated copies of a good file, cut everywhere that matters */
    size_t cuts[] = {0, 4, 7, 8, 20, 8 + hl / 2, 8 + hl - 1, 8 + hl, 8 + hl + 1, flen / 2 + hl / 2, flen - 4, flen - 1};
    char tpath[512];
    snprintf(tpath, sizeof tpath, "%s/trunc.safetensors", tmpdir);
    int allfail = 1, named = 1, data_cut_says = 1;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        spit(tpath, file, cuts[i]);
        rc = celo_ckpt_read(&r, tpath, err, sizeof err);
        allfail &= rc == -1;
        named &= strstr(err, tpath) == err && one_line(err);
        if (cuts[i] > 8 + hl)
            data_cut_says &= strstr(err, "truncated: the data section has") != NULL;
        if (rc == 0)
            celo_ckpt_free(&r);
    }
    CHECK(allfail && named && data_cut_says, "truncated files (12 cuts) fail with one line naming the file; last: %s",
          err);
    spit(tpath, file, 8 + hl / 2);
    celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(strstr(err, "truncated or not a safetensors file"), "cut inside the header: %s", err);
    /* trailing bytes */
    char *longer = malloc(flen + 4);
    memcpy(longer, file, flen);
    memset(longer + flen, 0, 4);
    spit(tpath, longer, flen + 4);
    free(longer);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "4 bytes after the tensor data"), "trailing bytes: %s", err);
    free(file);

    /* 5. foreign files */
    static const char npy[] = "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }   "
                              "                                                           \n";
    snprintf(tpath, sizeof tpath, "%s/p0.npy", tmpdir);
    spit(tpath, npy, sizeof npy - 1);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, tpath) == err && strstr(err, "not a safetensors file"), "a .npy file: %s", err);
    snprintf(tpath, sizeof tpath, "%s/text.txt", tmpdir);
    spit(tpath, "hello, world\n", 13);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not a safetensors file"), "a text file: %s", err);
    snprintf(tpath, sizeof tpath, "%s/gz.gz", tmpdir);
    spit(tpath, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not a safetensors file"), "a gzip file: %s", err);
    rc = celo_ckpt_read(&r, tmpdir, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not a regular file"), "a directory: %s", err);
    snprintf(tpath, sizeof tpath, "%s/none.safetensors", tmpdir);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cannot open: No such file"), "missing file: %s", err);
    snprintf(tpath, sizeof tpath, "%s/huge.safetensors", tmpdir);
    craft(tpath, "{}", 0, 200000000);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not a safetensors file (header length 200000000)"), "header length bound: %s", err);

    /* 6. the header, field by field */
#define T1(dt, sh, of) "{\"a\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":" of "}}"
    expect_bad("f16", T1("F16", "[2]", "[0,4]"), 4, "tensor 'a' has dtype F16; only F32 is supported");
    expect_bad("shape-vs-offsets", T1("F32", "[3]", "[0,8]"), 8, "do not hold its shape's 3 floats");
    expect_bad("negative", T1("F32", "[-2]", "[0,8]"), 8, "shape entries must be non-negative integers");
    expect_bad("float-shape", T1("F32", "[2.0]", "[0,8]"), 8, "shape entries must be non-negative integers");
    expect_bad("reversed", T1("F32", "[2]", "[8,0]"), 8, "begin <= end");
    expect_bad("three-offsets", T1("F32", "[2]", "[0,8,9]"), 8, "data_offsets must be [begin, end]");
    expect_bad("gap", T1("F32", "[2]", "[4,12]"), 12, "data_offsets leave a gap at 4 (expected 0)");
    expect_bad("beyond", T1("F32", "[2]", "[0,8]"), 4, "truncated: the data section has 4 bytes, the tensors need 8");
    expect_bad("overlap",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "overlap the previous tensor");
    expect_bad("dup-key",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "duplicate key 'a'");
    expect_bad("unknown-field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
               "unknown field 'x'");
    expect_bad("missing-field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing data_offsets");
    expect_bad("meta-number", "{\"__metadata__\":{\"step\":3}}", 0, "metadata 'step' is not a string");
    expect_bad("meta-array", "{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    expect_bad("tensor-not-object", "{\"a\":[1,2]}", 0, "tensor 'a': not an object");
    expect_bad("bad-json", "{\"a\":{\"dtype\":\"F32\",}}", 0, "malformed safetensors header: expected a string key");
    expect_bad("no-colon", "{\"a\" 1}", 0, "expected ':' at byte 5");
    expect_bad("trailing-json", "{}x", 0, "trailing characters after the JSON object");
    expect_bad("bad-escape", "{\"a\\q\":1}", 0, "bad escape in a string");
    expect_bad("lone-surrogate", "{\"\\ud800x\":1}", 0, "unpaired high surrogate");
    expect_bad("control-char", "{\"a\tb\":1}", 0, "control character in a string");
    expect_bad("bad-utf8", "{\"a\xff\":1}", 0, "invalid UTF-8 at byte 3");
    expect_bad("overlong-utf8", "{\"a\xc0\xaf\":1}", 0, "invalid UTF-8");
    expect_bad("unterminated", "{\"abc", 0, "unterminated string");
    expect_bad("bad-number", "{\"__metadata__\":{},\"a\":01}", 0, "expected ',' or '}'");
    expect_bad("nul-name", "{\"a\\u0000b\":{}}", 0, "a tensor name contains a NUL character");
    expect_bad("empty-name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name");
    {
        char deep[300] = "{\"__metadata__\":";
        size_t k = strlen(deep);
        for (int i = 0; i < 100; i++)
            deep[k++] = '[';
        deep[k] = 0;
        expect_bad("deep", deep, 0, "nesting too deep");
    }
    expect_bad("array-root", "[1]", 0, "not a safetensors file (the header is not a JSON object)");
    /* accepted: whitespace, escapes, surrogate pairs, an empty file body, offsets in any key order */
    snprintf(tpath, sizeof tpath, "%s/ok.safetensors", tmpdir);
    craft(tpath,
          "{ \"__metadata__\" : { \"k\\u00e9\\ud83d\\ude00\" : \"v\\\"\\/\" } ,\n"
          " \"b\" : {\"shape\":[1],\"data_offsets\":[4,8],\"dtype\":\"F32\"},"
          " \"a\" : {\"data_offsets\":[0,4],\"dtype\":\"F32\",\"shape\":[]} }   ",
          8, 0);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == 0 && r.ntensor == 2 && strcmp(r.tensor[0].name, "a") == 0 && r.tensor[1].data == r.buf + 1 &&
              celo_ckpt_get_meta(&r, "k\xc3\xa9\xf0\x9f\x98\x80") &&
              strcmp(celo_ckpt_get_meta(&r, "k\xc3\xa9\xf0\x9f\x98\x80"), "v\"/") == 0,
          "accepted: whitespace, \\u escapes with a surrogate pair, fields in any order, tensors sorted by offset %s",
          rc ? err : "");
    celo_ckpt_free(&r);
    craft(tpath, "{}", 0, 0);
    rc = celo_ckpt_read(&r, tpath, err, sizeof err);
    CHECK(rc == 0 && r.ntensor == 0 && r.nmeta == 0, "accepted: an empty checkpoint '{}'");
    celo_ckpt_free(&r);

    /* 7. optimizer state: one ELEM, one ROW, one COL and one SCALAR slot of a [3, 4] parameter */
    static const celo_stateslot slots[4] = {
        {"m", CELO_ELEM, -1, -1}, {"r", CELO_ROW, -1, -1}, {"c", CELO_COL, -1, -1}, {"s", CELO_SCALAR, -1, -1}};
    celo_program prog = {.name = "fake", .nstate = 4, .state = slots};
    float mem[12 + 3 + 4 + 1], *sl[4] = {mem, mem + 12, mem + 15, mem + 19};
    int64_t sll[4] = {12, 3, 4, 1};
    celo_state st = {.prog = &prog, .ndim = 2, .shape = {3, 4}, .n = 12, .R = 3, .C = 4, .slot = sl, .slotlen = sll};
    for (int i = 0; i < 20; i++)
        mem[i] = (float)i + 0.5f;
    celo_ckpt_init(&c);
    rc = celo_ckpt_add_state(&c, "fc1.w", &st, err, sizeof err);
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    rc |= celo_ckpt_write(&c, path, err, sizeof err);
    celo_ckpt_free(&c);
    memset(mem, 0, sizeof mem);
    rr = celo_ckpt_read(&r, path, err, sizeof err);
    const celo_ckpt_tensor *tm = rr ? NULL : celo_ckpt_find(&r, "opt.fc1.w.m"),
                           *tr = rr ? NULL : celo_ckpt_find(&r, "opt.fc1.w.r"),
                           *tc = rr ? NULL : celo_ckpt_find(&r, "opt.fc1.w.c"),
                           *ts = rr ? NULL : celo_ckpt_find(&r, "opt.fc1.w.s");
    int shapes = tm && tr && tc && ts && tm->ndim == 2 && tm->shape[0] == 3 && tm->shape[1] == 4 && tr->ndim == 1 &&
                 tr->shape[0] == 3 && tc->ndim == 1 && tc->shape[0] == 4 && ts->ndim == 0;
    rc |= rr || celo_ckpt_load_state(&r, "fc1.w", &st, err, sizeof err);
    int back = 1;
    for (int i = 0; i < 20; i++)
        back &= mem[i] == (float)i + 0.5f;
    CHECK(rc == 0 && shapes && back, "optimizer state: opt.fc1.w.{m [3,4], r [3], c [4], s []} saved and restored %s",
          rc ? err : "");
    rc = celo_ckpt_load_state(&r, "fc2.w", &st, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "no tensor 'opt.fc2.w.m'"), "state of another parameter: %s", err);
    celo_ckpt_free(&r);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%s\n", fails ? "FAILED" : "all ok");
    return fails ? 1 : 0;
}
