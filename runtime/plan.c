/*
 * plan.c — the text form of a celo_plan (plan.h): what `celo build` embeds in a binary and reads back.
 *
 *     celo-plan 1
 *     task fmnist_mlp
 *       data fashion_mnist
 *       size 8
 *       ...
 *       hidden 32
 *       ...
 *       block linear fc1 fc1 - - 32 0 0 0 0 relu max 0 0 0 0 0 0 identity 0 0 0 0 0
 *     end
 *     run quick
 *       task 0
 *       rule adamw@cosine
 *       hp lr 0.0030000000000000001
 *       ...
 *     end
 *     group lrs
 *       kind sweep
 *       ...
 *     end
 *
 * One `key value` per line; the value is the rest of the line after one space. Strings are escaped (\\, \n,
 * \r, \t, \xHH for other control bytes), so names and paths may hold spaces. Enumerations are written by name
 * (an integer in range is accepted too). Doubles are "%.17g", which strtod reads back exactly. The writer
 * writes every field, so write -> read -> write gives the same text and the same plan; lists (hidden, classes)
 * are integers after the key, separated by single spaces, and an empty list is the key alone. Blank lines and lines
 * starting with '#' are ignored. A task with a described model has one `block` line per block, in order, with
 * every field of its celo_block_desc (nn.h) by position: kind, name, tap, from, from2 ("-" for an empty name), out,
 * nobias, kernel, stride, pad, act, pool, heads, vocab, ctx, layer, init_std, init_std_proj, feature, chunk, state,
 * conv, expand, normalize. The reader validates
 * syntax, numbers, enumerations, string lengths and the cross references (task indexes, group ranges) and
 * reports the first problem as "plan line N: ...".
 */
#include "plan.h"

#include "errmsg.h"
#include "nn.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_MAGIC "celo-plan 1"

/* ---- enumerations by name ---- */
static const char *const data_names[] = {NULL, "fashion_mnist", "kjv", "teacher", "quadratic", "digits"};
static const char *const model_names[] = {"none", "mlp", "convnet", "gpt", "lstm", "autoencoder"};
static const char *const act_names[] = {"relu", "gelu", "tanh"};
static const char *const loss_names[] = {"cross_entropy", "mse"};
static const char *const pool_names[] = {"max", "avg"};
static const char *const mixer_names[] = {"softmax", "linear", "mamba"};
static const char *const feature_names[] = {"identity", "elu", "mlp", "hedgehog"};
static const char *const init_map_names[] = {"none", "copy", "bridge", "qkv"};
static const char *const dloss_names[] = {"task", "kl", "mix", "attention"};
static const char *const dmetric_names[] = {"cosine", "mse"};
static const char *const block_names[] = {NULL,       "linear",    "act", "conv", "pool",    "layernorm", "embed",
                                          "position", "attention", "add", "lstm", "linattn", "mamba"};
#define NAMES(a) a, (int)(sizeof a / sizeof a[0])

/* ---- field tables: one entry per key of a block ---- */
typedef enum { F_INT, F_I64, F_U64, F_DBL, F_STR, F_ENUM, F_HIDDEN, F_CLASSES } ftype;
typedef struct {
    const char *key;
    ftype type;
    size_t off;
    size_t size;              /* F_STR: capacity */
    const char *const *names; /* F_ENUM */
    int nnames;
} field;

#define FI(k, s, m)                           \
    {                                         \
#k, F_INT, offsetof(s, m), 0, NULL, 0 \
    }
#define FL(k, s, m)                           \
    {                                         \
#k, F_I64, offsetof(s, m), 0, NULL, 0 \
    }
#define FU(k, s, m)                           \
    {                                         \
#k, F_U64, offsetof(s, m), 0, NULL, 0 \
    }
#define FD(k, s, m)                           \
    {                                         \
#k, F_DBL, offsetof(s, m), 0, NULL, 0 \
    }
#define FS(k, s, m)                                             \
    {                                                           \
#k, F_STR, offsetof(s, m), sizeof(((s *)0)->m), NULL, 0 \
    }
#define FE(k, s, m, names)                                            \
    {                                                                 \
#k, F_ENUM, offsetof(s, m), sizeof(((s *)0)->m), NAMES(names) \
    }

static const field task_fields[] = {
    FE(data, celo_task, data, data_names),
    FI(size, celo_task, size),
    FI(seq, celo_task, seq),
    FI(normalize, celo_task, normalize),
    {"classes", F_CLASSES, offsetof(celo_task, nclasses), 0, NULL, 0},
    FU(permute_labels, celo_task, permute_labels),
    FI(teacher_in, celo_task, teacher_in),
    FI(teacher_out, celo_task, teacher_out),
    FI(teacher_hidden, celo_task, teacher_hidden),
    FL(teacher_n, celo_task, teacher_n),
    FI(quad_dim, celo_task, quad_dim),
    FD(quad_cond, celo_task, quad_cond),
    FE(model, celo_task, model, model_names),
    FI(in, celo_task, in),
    FI(out, celo_task, out),
    FE(act, celo_task, act, act_names),
    {"hidden", F_HIDDEN, offsetof(celo_task, nhidden), 0, NULL, 0},
    FI(conv1, celo_task, conv1),
    FI(conv2, celo_task, conv2),
    FI(kernel, celo_task, kernel),
    FE(pool, celo_task, pool, pool_names),
    FI(ctx, celo_task, ctx),
    FI(dim, celo_task, dim),
    FI(heads, celo_task, heads),
    FI(layers, celo_task, layers),
    FE(mixer, celo_task, mixer, mixer_names),
    FE(feature, celo_task, feature, feature_names),
    FI(chunk, celo_task, chunk),
    FI(mamba_state, celo_task, mamba_state),
    FI(mamba_conv, celo_task, mamba_conv),
    FI(mamba_expand, celo_task, mamba_expand),
    FI(mamba_normalize, celo_task, mamba_normalize),
    FI(embed, celo_task, embed),
    FI(lstm_hidden, celo_task, lstm_hidden),
    FE(loss, celo_task, loss, loss_names),
    FI(batch, celo_task, batch),
};

/* hp lines are handled apart (repeated key) */
static const field run_fields[] = {
    FI(task, celo_run, task),
    FS(rule, celo_run, rule),
    FL(steps, celo_run, steps),
    FL(eval_every, celo_run, eval_every),
    FL(checkpoint_every, celo_run, checkpoint_every),
    FU(seed, celo_run, seed),
    FS(log, celo_run, log),
    FS(checkpoint, celo_run, checkpoint),
    FS(theta, celo_run, theta),
    FI(reparam, celo_run, reparam),
    FD(reparam_lo, celo_run, reparam_lo),
    FD(reparam_hi, celo_run, reparam_hi),
    FI(group, celo_run, group),
    FI(entry, celo_run, entry),
    FI(stage, celo_run, stage),
    FS(teacher_ckpt, celo_run, teacher_ckpt),
    FI(teacher_task, celo_run, teacher_task),
    FS(init_ckpt, celo_run, init_ckpt),
    FI(init_task, celo_run, init_task),
    FE(init_map, celo_run, init_map, init_map_names),
    FS(train_only, celo_run, train_only),
    FE(dloss, celo_run, dloss, dloss_names),
    FE(dmetric, celo_run, dmetric, dmetric_names),
    FD(ce_weight, celo_run, ce_weight),
    FD(kl_weight, celo_run, kl_weight),
    FD(temperature, celo_run, temperature),
};

static const field group_fields[] = {
    FS(kind, celo_group, kind),
    FI(first, celo_group, first),
    FI(count, celo_group, count),
    FS(metric, celo_group, metric),
    FS(out, celo_group, out),
    FI(particles, celo_group, particles),
    FS(estimator, celo_group, estimator),
    FL(truncation, celo_group, truncation),
    FD(std, celo_group, std),
    FL(hmin, celo_group, hmin),
    FL(hmax, celo_group, hmax),
    FL(offset, celo_group, offset),
    FU(theta_seed, celo_group, theta_seed),
    FS(train_only, celo_group, train_only),
    FI(seeds, celo_group, seeds),
    FI(reference, celo_group, reference),
};

#define NF(t) ((int)(sizeof t / sizeof t[0]))

int celo_train_only_match(const char *name, const char *list)
{
    if (!list[0])
        return 1;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        for (const char *q = name; *q; q++)
            if (n && !strncmp(q, p, n))
                return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* ================================ writer ================================ */

static void put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\x%02x", *p);
            else
                fputc(*p, f);
        }
    }
}

/* An enum field's value: the fields are `int` or enums (int-sized). */
static int get_enum(const void *base, const field *fd)
{
    return *(const int *)((const char *)base + fd->off);
}

/* an int list's values, its count clamped to [0, cap] */
static void put_ints(FILE *f, const int *v, int n, int cap)
{
    n = n < 0 ? 0 : n > cap ? cap : n;
    for (int k = 0; k < n; k++)
        fprintf(f, " %d", v[k]);
}

static void put_fields(FILE *f, const void *base, const field *fs, int n)
{
    const char *b = base;
    for (int i = 0; i < n; i++) {
        const field *fd = &fs[i];
        fprintf(f, "  %s", fd->key);
        switch (fd->type) {
        case F_INT: fprintf(f, " %d", *(const int *)(b + fd->off)); break;
        case F_I64: fprintf(f, " %lld", (long long)*(const int64_t *)(b + fd->off)); break;
        case F_U64: fprintf(f, " %llu", (unsigned long long)*(const uint64_t *)(b + fd->off)); break;
        case F_DBL: fprintf(f, " %.17g", *(const double *)(b + fd->off)); break;
        case F_STR:
            fputc(' ', f);
            put_escaped(f, b + fd->off);
            break;
        case F_ENUM: {
            int v = get_enum(base, fd);
            if (v >= 0 && v < fd->nnames && fd->names[v])
                fprintf(f, " %s", fd->names[v]);
            else
                fprintf(f, " %d", v); /* out of range: written as is (the reader rejects it) */
            break;
        }
        case F_HIDDEN: {
            const celo_task *t = base;
            put_ints(f, t->hidden, t->nhidden, 8);
            break;
        }
        case F_CLASSES: {
            const celo_task *t = base;
            put_ints(f, t->classes, t->nclasses, (int)(sizeof t->classes / sizeof t->classes[0]));
            break;
        }
        }
        fputc('\n', f);
    }
}

/* An enumeration's name, or its number when out of range (the reader rejects it). */
static void put_enum(FILE *f, const char *const *names, int n, int v)
{
    if (v >= 0 && v < n && names[v])
        fprintf(f, " %s", names[v]);
    else
        fprintf(f, " %d", v);
}

static void put_name(FILE *f, const char *s)
{
    fprintf(f, " %s", s[0] ? s : "-");
}

static void put_block(FILE *f, const celo_block_desc *b)
{
    fputs("  block", f);
    put_enum(f, NAMES(block_names), (int)b->kind);
    put_name(f, b->name);
    put_name(f, b->tap);
    put_name(f, b->from);
    put_name(f, b->from2);
    fprintf(f, " %d %d %d %d %d", b->out, b->nobias, b->kernel, b->stride, b->pad);
    put_enum(f, NAMES(act_names), (int)b->act);
    put_enum(f, NAMES(pool_names), (int)b->pool);
    fprintf(f, " %d %d %d %d %.17g %.17g", b->heads, b->vocab, b->ctx, b->layer, b->init_std, b->init_std_proj);
    put_enum(f, NAMES(feature_names), (int)b->feature);
    fprintf(f, " %d %d %d %d %d\n", b->chunk, b->state, b->conv, b->expand, b->normalize);
}

char *celo_plan_write(const celo_plan *plan)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "%s\n", PLAN_MAGIC);
    for (int i = 0; i < plan->ntasks; i++) {
        fputs("task ", f);
        put_escaped(f, plan->tasks[i].name);
        fputc('\n', f);
        put_fields(f, &plan->tasks[i], task_fields, NF(task_fields));
        for (int k = 0; k < plan->tasks[i].nblocks; k++)
            put_block(f, &plan->tasks[i].blocks[k]);
        fputs("end\n", f);
    }
    for (int i = 0; i < plan->nruns; i++) {
        const celo_run *r = &plan->runs[i];
        fputs("run ", f);
        put_escaped(f, r->name);
        fputc('\n', f);
        put_fields(f, r, run_fields, 2); /* task, rule */
        int nhp = r->nhp < 0 ? 0 : r->nhp > CELO_MAX_HP ? CELO_MAX_HP : r->nhp;
        for (int k = 0; k < nhp; k++) {
            fputs("  hp ", f);
            put_escaped(f, r->hp_name[k]);
            fprintf(f, " %.17g\n", r->hp[k]);
        }
        put_fields(f, r, run_fields + 2, NF(run_fields) - 2);
        fputs("end\n", f);
    }
    for (int i = 0; i < plan->ngroups; i++) {
        fputs("group ", f);
        put_escaped(f, plan->groups[i].name);
        fputc('\n', f);
        put_fields(f, &plan->groups[i], group_fields, NF(group_fields));
        fputs("end\n", f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ================================ reader ================================ */

typedef struct {
    int line;
    char *err;
    size_t errlen;
} rd;

static int rd_fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(rd *r, const char *fmt, ...)
{
    if (r->err && r->errlen) {
        int k = r->line > 0 ? snprintf(r->err, r->errlen, "plan line %d: ", r->line)
                            : snprintf(r->err, r->errlen, "plan: ");
        if (k >= 0 && (size_t)k < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            celo_vseterr(r->err + k, r->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Unescapes s[0, n) into dst (capacity cap, NUL included). */
static int get_string(rd *r, const char *key, const char *s, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return rd_fail(r, "%s: the value ends with a lone backslash", key);
            int e = s[++i];
            if (e == '\\')
                c = '\\';
            else if (e == 'n')
                c = '\n';
            else if (e == 'r')
                c = '\r';
            else if (e == 't')
                c = '\t';
            else if (e == 'x' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
                i += 2;
                if (c == 0)
                    return rd_fail(r, "%s: \\x00 in a string", key);
            } else
                return rd_fail(r, "%s: unknown escape '\\%c'", key, e);
        } else if (c < 0x20 || c == 0x7f)
            return rd_fail(r, "%s: unescaped control character 0x%02x", key, c);
        if (o + 1 >= cap)
            return rd_fail(r, "%s: longer than %zu bytes", key, cap - 1);
        dst[o++] = (char)c;
    }
    dst[o] = 0;
    return 0;
}

/* Strict numbers: the whole value, nothing else. */
static int get_i64(rd *r, const char *key, const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    errno = 0;
    if (!*s || *s == ' ')
        return rd_fail(r, "%s: expected an integer", key);
    long long x = strtoll(s, &end, 10);
    if (*end)
        return rd_fail(r, "%s: expected an integer, got '%s'", key, s);
    if (errno == ERANGE || x < lo || x > hi)
        return rd_fail(r, "%s: %s is out of range [%lld, %lld]", key, s, lo, hi);
    *v = x;
    return 0;
}

static int get_u64(rd *r, const char *key, const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return rd_fail(r, "%s: expected an unsigned integer, got '%s'", key, s);
    unsigned long long x = strtoull(s, &end, 10);
    if (*end)
        return rd_fail(r, "%s: expected an unsigned integer, got '%s'", key, s);
    if (errno == ERANGE)
        return rd_fail(r, "%s: %s is out of range", key, s);
    *v = x;
    return 0;
}

static int get_dbl(rd *r, const char *key, const char *s, double *v)
{
    char *end;
    if (!*s || *s == ' ')
        return rd_fail(r, "%s: expected a number", key);
    errno = 0;
    double x = strtod(s, &end);
    if (*end)
        return rd_fail(r, "%s: expected a number, got '%s'", key, s);
    /* ERANGE on underflow still gives the correctly rounded (subnormal or zero) value: accept it */
    if (errno == ERANGE && isinf(x) && !strstr(s, "inf"))
        return rd_fail(r, "%s: %s overflows a double", key, s);
    *v = x;
    return 0;
}

/* A list of at most cap integers separated by single spaces (an empty list: no value). */
static int get_ints(rd *r, const char *key, const char *val, int *out, int cap, const char *what, int *n)
{
    const char *p = val;
    *n = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ' ') || errno == ERANGE || v < INT_MIN || v > INT_MAX)
            return rd_fail(r, "%s: expected integers, got '%s'", key, val);
        if (*n == cap)
            return rd_fail(r, "%s: more than %d %s", key, cap, what);
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int set_field(rd *r, void *base, const field *fd, const char *val, size_t vlen)
{
    char *b = base;
    long long x;
    switch (fd->type) {
    case F_INT:
        if (get_i64(r, fd->key, val, INT_MIN, INT_MAX, &x))
            return -1;
        *(int *)(b + fd->off) = (int)x;
        return 0;
    case F_I64:
        if (get_i64(r, fd->key, val, LLONG_MIN, LLONG_MAX, &x))
            return -1;
        *(int64_t *)(b + fd->off) = (int64_t)x;
        return 0;
    case F_U64: return get_u64(r, fd->key, val, (uint64_t *)(b + fd->off));
    case F_DBL: return get_dbl(r, fd->key, val, (double *)(b + fd->off));
    case F_STR: return get_string(r, fd->key, val, vlen, b + fd->off, fd->size);
    case F_ENUM:
        for (int k = 0; k < fd->nnames; k++)
            if (fd->names[k] && !strcmp(val, fd->names[k])) {
                *(int *)(b + fd->off) = k;
                return 0;
            }
        if (*val >= '0' && *val <= '9' && get_i64(r, fd->key, val, 0, fd->nnames - 1, &x) == 0 && fd->names[x]) {
            *(int *)(b + fd->off) = (int)x;
            return 0;
        }
        {
            char list[256] = "";
            for (int k = 0; k < fd->nnames; k++)
                if (fd->names[k]) {
                    size_t l = strlen(list);
                    snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", fd->names[k]);
                }
            return rd_fail(r, "%s: unknown value '%s' (one of %s)", fd->key, val, list);
        }
    case F_HIDDEN: {
        celo_task *t = base;
        return get_ints(r, fd->key, val, t->hidden, 8, "layers", &t->nhidden);
    }
    case F_CLASSES: {
        celo_task *t = base;
        return get_ints(r, fd->key, val, t->classes, (int)(sizeof t->classes / sizeof t->classes[0]), "classes",
                        &t->nclasses);
    }
    }
    return rd_fail(r, "internal: field type");
}

/* A name of a block line: "-" (empty) or letters, digits, '_' and '.' (as the compiler writes them). */
static int get_name(rd *r, const char *tok, char *dst, size_t cap)
{
    if (!strcmp(tok, "-")) {
        dst[0] = 0;
        return 0;
    }
    if (strlen(tok) >= cap)
        return rd_fail(r, "block: name '%s' longer than %zu bytes", tok, cap - 1);
    for (const char *c = tok; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '.'))
            return rd_fail(r, "block: bad name '%s'", tok);
    snprintf(dst, cap, "%s", tok);
    return 0;
}

static int get_enum_tok(rd *r, const char *what, const char *tok, const char *const *names, int n, int *v)
{
    for (int k = 0; k < n; k++)
        if (names[k] && !strcmp(tok, names[k])) {
            *v = k;
            return 0;
        }
    return rd_fail(r, "block: unknown %s '%s'", what, tok);
}

/* One `block` line's value: the 24 fields of put_block. */
static int get_block(rd *r, const char *val, celo_block_desc *b)
{
    char buf[1024], *tok[26];
    int n = 0;
    if (strlen(val) >= sizeof buf)
        return rd_fail(r, "block: line too long");
    strcpy(buf, val);
    for (char *p = buf; *p && n < 26;) {
        tok[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = 0;
        p = sp + 1;
    }
    if (n != 24)
        return rd_fail(r, "block: expected 24 fields, got %d", n);
    memset(b, 0, sizeof *b);
    int kind = 0, act = 0, pool = 0, feature = 0;
    long long iv[14];
    /* out nobias kernel stride pad, heads vocab ctx layer, chunk state conv expand normalize */
    int ints[] = {5, 6, 7, 8, 9, 12, 13, 14, 15, 19, 20, 21, 22, 23};
    if (get_enum_tok(r, "kind", tok[0], NAMES(block_names), &kind) || get_name(r, tok[1], b->name, sizeof b->name) ||
        get_name(r, tok[2], b->tap, sizeof b->tap) || get_name(r, tok[3], b->from, sizeof b->from) ||
        get_name(r, tok[4], b->from2, sizeof b->from2) ||
        get_enum_tok(r, "activation", tok[10], NAMES(act_names), &act) ||
        get_enum_tok(r, "pool", tok[11], NAMES(pool_names), &pool) || get_dbl(r, "block", tok[16], &b->init_std) ||
        get_dbl(r, "block", tok[17], &b->init_std_proj) ||
        get_enum_tok(r, "feature", tok[18], NAMES(feature_names), &feature))
        return -1;
    for (int k = 0; k < 14; k++)
        if (get_i64(r, "block", tok[ints[k]], INT_MIN, INT_MAX, &iv[k]))
            return -1;
    if (!b->name[0])
        return rd_fail(r, "block: no name");
    b->kind = (celo_block_kind)kind, b->act = (celo_activation)act, b->pool = (celo_pool_kind)pool;
    b->out = (int)iv[0], b->nobias = (int)iv[1], b->kernel = (int)iv[2], b->stride = (int)iv[3], b->pad = (int)iv[4];
    b->heads = (int)iv[5], b->vocab = (int)iv[6], b->ctx = (int)iv[7], b->layer = (int)iv[8];
    b->feature = (celo_feature_map)feature, b->chunk = (int)iv[9], b->state = (int)iv[10], b->conv = (int)iv[11];
    b->expand = (int)iv[12], b->normalize = (int)iv[13];
    return 0;
}

typedef enum { B_NONE, B_TASK, B_RUN, B_GROUP } block;

/* Grows an array of elements of size sz to hold n + 1. */
static int grow(void **arr, int n, int *cap, size_t sz)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, (size_t)nc * sz);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int celo_plan_read(celo_plan *plan, const char *text, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    if (err && errlen)
        err[0] = 0;
    rd r = {0, err, errlen};
    if (!text)
        return rd_fail(&r, "no text");
    int capt = 0, capr = 0, capg = 0, capb = 0;
    block cur = B_NONE;
    void *base = NULL;
    const field *fs = NULL;
    int nfs = 0;
    unsigned char seen[64]; /* which keys the current block has set (a key twice is an error) */
    _Static_assert(NF(task_fields) <= sizeof seen && NF(run_fields) <= sizeof seen, "seen[] holds every key");
    int header = 0;
    char *line = NULL;
    size_t linecap = 0;
    const char *p = text;
    while (*p) {
        r.line++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n + 1 > linecap) {
            char *nl = realloc(line, n + 1);
            if (!nl) {
                rd_fail(&r, "out of memory");
                goto fail;
            }
            line = nl;
            linecap = n + 1;
        }
        memcpy(line, p, n);
        line[n] = 0;
        p = e ? e + 1 : p + n;
        if (memchr(line, 0, n)) {
            rd_fail(&r, "NUL byte");
            goto fail;
        }
        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        if (!header) {
            if (strcmp(s, PLAN_MAGIC) != 0) {
                rd_fail(&r, "not a celo plan (the first line must be '%s')", PLAN_MAGIC);
                goto fail;
            }
            header = 1;
            continue;
        }
        /* key, then the value after one space */
        const char *ke = s;
        while (*ke && *ke != ' ')
            ke++;
        char key[32];
        size_t kl = (size_t)(ke - s);
        if (kl >= sizeof key) {
            rd_fail(&r, "unknown key '%.*s'", 40, s);
            goto fail;
        }
        memcpy(key, s, kl);
        key[kl] = 0;
        const char *val = *ke ? ke + 1 : ke;
        size_t vlen = strlen(val);

        if (cur == B_NONE) {
            char name[CELO_NAME_MAX] = "";
            if (!strcmp(key, "task") || !strcmp(key, "run") || !strcmp(key, "group")) {
                if (get_string(&r, key, val, vlen, name, sizeof name))
                    goto fail;
                if (!name[0]) {
                    rd_fail(&r, "%s without a name", key);
                    goto fail;
                }
            }
            if (!strcmp(key, "task")) {
                if (grow((void **)&plan->tasks, plan->ntasks, &capt, sizeof *plan->tasks))
                    goto oom;
                celo_task *t = &plan->tasks[plan->ntasks++];
                memset(t, 0, sizeof *t);
                strcpy(t->name, name);
                capb = 0;
                cur = B_TASK, base = t, fs = task_fields, nfs = NF(task_fields);
            } else if (!strcmp(key, "run")) {
                if (grow((void **)&plan->runs, plan->nruns, &capr, sizeof *plan->runs))
                    goto oom;
                celo_run *u = &plan->runs[plan->nruns++];
                memset(u, 0, sizeof *u);
                strcpy(u->name, name);
                u->group = -1;
                u->entry = -1;
                cur = B_RUN, base = u, fs = run_fields, nfs = NF(run_fields);
            } else if (!strcmp(key, "group")) {
                if (grow((void **)&plan->groups, plan->ngroups, &capg, sizeof *plan->groups))
                    goto oom;
                celo_group *g = &plan->groups[plan->ngroups++];
                memset(g, 0, sizeof *g);
                strcpy(g->name, name);
                cur = B_GROUP, base = g, fs = group_fields, nfs = NF(group_fields);
            } else {
                rd_fail(&r, "expected 'task', 'run' or 'group', got '%s'", key);
                goto fail;
            }
            memset(seen, 0, sizeof seen);
            continue;
        }
        if (!strcmp(key, "end")) {
            if (*val) {
                rd_fail(&r, "'end' takes no value");
                goto fail;
            }
            cur = B_NONE;
            continue;
        }
        if (cur == B_TASK && !strcmp(key, "block")) {
            celo_task *t = base;
            if (t->nblocks >= 1 << 16) {
                rd_fail(&r, "task '%s': more than %d blocks", t->name, 1 << 16);
                goto fail;
            }
            if (grow((void **)&t->blocks, t->nblocks, &capb, sizeof *t->blocks))
                goto oom;
            if (get_block(&r, val, &t->blocks[t->nblocks]))
                goto fail;
            t->nblocks++;
            continue;
        }
        if (cur == B_RUN && !strcmp(key, "hp")) {
            celo_run *u = base;
            if (u->nhp >= CELO_MAX_HP) {
                rd_fail(&r, "run '%s': more than %d hyper-parameters", u->name, CELO_MAX_HP);
                goto fail;
            }
            const char *sp = strchr(val, ' ');
            if (!sp || sp == val) {
                rd_fail(&r, "hp: expected 'hp NAME VALUE'");
                goto fail;
            }
            char *nm = u->hp_name[u->nhp];
            if (get_string(&r, "hp", val, (size_t)(sp - val), nm, CELO_NAME_MAX) ||
                get_dbl(&r, "hp", sp + 1, &u->hp[u->nhp]))
                goto fail;
            for (int k = 0; k < u->nhp; k++)
                if (!strcmp(u->hp_name[k], nm)) {
                    rd_fail(&r, "run '%s': hyper-parameter '%s' set twice", u->name, nm);
                    goto fail;
                }
            u->nhp++;
            continue;
        }
        int fi = -1;
        for (int k = 0; k < nfs; k++)
            if (!strcmp(fs[k].key, key))
                fi = k;
        if (fi < 0) {
            rd_fail(&r, "unknown key '%s' in a %s block", key, cur == B_TASK ? "task" : cur == B_RUN ? "run" : "group");
            goto fail;
        }
        if (seen[fi]) {
            rd_fail(&r, "'%s' set twice", key);
            goto fail;
        }
        seen[fi] = 1;
        if (set_field(&r, base, &fs[fi], val, vlen))
            goto fail;
    }
    if (!header) {
        r.line = 0;
        rd_fail(&r, "empty text (no '%s' line)", PLAN_MAGIC);
        goto fail;
    }
    if (cur != B_NONE) {
        rd_fail(&r, "unexpected end of the text inside a block (missing 'end')");
        goto fail;
    }
    free(line);
    line = NULL;
    /* cross references */
    r.line = 0;
    for (int i = 0; i < plan->nruns; i++) {
        const celo_run *u = &plan->runs[i];
        if (u->task < 0 || u->task >= plan->ntasks) {
            rd_fail(&r, "run '%s': task %d does not exist (%d tasks)", u->name, u->task, plan->ntasks);
            goto fail;
        }
        if (u->group < -1 || u->group >= plan->ngroups) {
            rd_fail(&r, "run '%s': group %d does not exist (%d groups)", u->name, u->group, plan->ngroups);
            goto fail;
        }
        if ((u->teacher_ckpt[0] && (u->teacher_task < 0 || u->teacher_task >= plan->ntasks)) ||
            (u->init_ckpt[0] && (u->init_task < 0 || u->init_task >= plan->ntasks))) {
            rd_fail(&r, "run '%s': its teacher's or initial weights' task does not exist (%d tasks)", u->name,
                    plan->ntasks);
            goto fail;
        }
    }
    for (int i = 0; i < plan->ngroups; i++) {
        const celo_group *g = &plan->groups[i];
        if (strcmp(g->kind, "sweep") && strcmp(g->kind, "compare") && strcmp(g->kind, "meta") &&
            strcmp(g->kind, "eval") && strcmp(g->kind, "distill")) {
            rd_fail(&r, "group '%s': kind '%s' (sweep, compare, meta, eval or distill)", g->name, g->kind);
            goto fail;
        }
        if (!strcmp(g->kind, "meta") &&
            (g->count < 2 || g->particles < 1 || !(g->std > 0) || g->hmin < 1 || g->hmax < g->hmin ||
             (strcmp(g->estimator, "pes") && strcmp(g->estimator, "es")) ||
             (!strcmp(g->estimator, "pes") && g->truncation < 1))) {
            rd_fail(&r,
                    "group '%s': a meta group needs 2+ runs, particles, an estimator (pes or es), std > 0 and "
                    "horizons 1 <= hmin <= hmax",
                    g->name);
            goto fail;
        }
        if (g->first < 0 || g->count < 0 || g->first > plan->nruns || g->count > plan->nruns - g->first) {
            rd_fail(&r, "group '%s': runs %d..%d out of range (%d runs)", g->name, g->first, g->first + g->count,
                    plan->nruns);
            goto fail;
        }
        if (g->metric[0] && strcmp(g->metric, "eval_loss") && strcmp(g->metric, "eval_acc") &&
            strcmp(g->metric, "train_loss")) {
            rd_fail(&r, "group '%s': metric '%s' (eval_loss, eval_acc or train_loss)", g->name, g->metric);
            goto fail;
        }
    }
    return 0;
oom:
    rd_fail(&r, "out of memory");
fail:
    free(line);
    celo_plan_free(plan);
    return -1;
}

void celo_plan_free(celo_plan *plan)
{
    if (!plan)
        return;
    for (int i = 0; i < plan->ntasks; i++)
        free(plan->tasks[i].blocks);
    free(plan->tasks);
    free(plan->runs);
    free(plan->groups);
    memset(plan, 0, sizeof *plan);
}
