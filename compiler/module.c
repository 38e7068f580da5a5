/* module.c — loading a file, its imports and the stdlib into one set of definitions, and the rules lowered from
 * them (each once). */
#include "diag.h"
#include "model.h"
#include "rules.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int loaded(module *m, const char *path)
{
    for (int i = 0; i < m->nfiles; i++)
        if (!strcmp(m->files[i]->path, path))
            return 1;
    return 0;
}

static int load_one(module *m, const char *path, const srcfile *from, span at, int depth);
static int load_src(module *m, srcfile *f, int depth);

static int load_imports(module *m, def *first, int depth)
{
    int nerr = 0;
    for (def *d = first; d; d = d->next) {
        if (d->kind != DEF_IMPORT)
            continue;
        char path[4096];
        const char *slash = strrchr(d->file->path, '/');
        if (d->name[0] == '/' || !slash)
            snprintf(path, sizeof path, "%s", d->name);
        else
            snprintf(path, sizeof path, "%.*s/%s", (int)(slash - d->file->path), d->file->path, d->name);
        nerr += load_one(m, path, d->file, d->name_span, depth + 1);
    }
    return nerr;
}

static int load_one(module *m, const char *path, const srcfile *from, span at, int depth)
{
    if (loaded(m, path))
        return 0;
    if (depth > 32) {
        diag_error(from, at, "imports nest too deeply (a cycle?)");
        return 1;
    }
    if (m->nfiles >= (int)(sizeof m->files / sizeof m->files[0])) {
        diag_error(from, at, "too many files");
        return 1;
    }
    char err[512];
    srcfile *f = srcfile_load(path, err, sizeof err);
    if (!f) {
        if (from)
            diag_error(from, at, "cannot import: %s", err);
        else {
            fprintf(stderr, "celo: %s\n", err);
            diag_count++;
        }
        return 1;
    }
    return load_src(m, f, depth);
}

/* Parses F (now owned by the module) and loads its imports. */
static int load_src(module *m, srcfile *f, int depth)
{
    m->files[m->nfiles++] = f;
    def *before = m->defs;
    while (before && before->next)
        before = before->next;
    int nerr = celo_parse_file(f, &m->ar, &m->defs);
    def *first = before ? before->next : m->defs;
    return nerr + load_imports(m, first, depth);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_rest(module *m);

int module_load(module *m, const char *path, const char *stdlib_dir)
{
    memset(m, 0, sizeof *m);
    m->stdlib_dir = stdlib_dir;
    int nerr = 0;
    span none = {0, 0};
    if (path)
        nerr += load_one(m, path, NULL, none, 0);
    return nerr + load_rest(m);
}

int module_load_string(module *m, const char *name, const char *text, const char *stdlib_dir)
{
    memset(m, 0, sizeof *m);
    m->stdlib_dir = stdlib_dir;
    int nerr = load_src(m, srcfile_from_string(name, text), 0);
    return nerr + load_rest(m);
}

/* The stdlib after the user's files, then the check for duplicate definitions. */
static int load_rest(module *m)
{
    const char *stdlib_dir = m->stdlib_dir;
    int nerr = 0;
    span none = {0, 0};
    /* The stdlib, in a fixed order so that diagnostics and `emit` output are reproducible. */
    DIR *dir = stdlib_dir ? opendir(stdlib_dir) : NULL;
    if (dir) {
        char *names[512];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir)) && n < 512) {
            size_t l = strlen(e->d_name);
            if (l > 5 && !strcmp(e->d_name + l - 5, ".celo"))
                names[n++] = strdup(e->d_name);
        }
        closedir(dir);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int i = 0; i < n; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", stdlib_dir, names[i]);
            nerr += load_one(m, p, NULL, none, 0);
            free(names[i]);
        }
    }
    /* Duplicate definitions: the user's file may not redefine a name it also imports. A user definition
     * shadows a stdlib one of the same name (that is how one tries a variant of a stdlib rule). */
    for (def *d = m->defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT)
            continue;
        for (def *e = d->next; e; e = e->next) {
            if (e->kind == DEF_IMPORT || strcmp(d->name, e->name))
                continue;
            int d_std = stdlib_dir && !strncmp(d->file->path, stdlib_dir, strlen(stdlib_dir));
            int e_std = stdlib_dir && !strncmp(e->file->path, stdlib_dir, strlen(stdlib_dir));
            if (d_std != e_std)
                continue;
            diag_error(e->file, e->name_span, "'%s' is defined twice", e->name);
            diag_note(d->file, d->name_span, "first defined here");
            nerr++;
        }
    }
    return nerr;
}

struct lowered {
    const def *d, *s;
    rule *r; /* NULL: d does not compile (under s) */
    lowered *next;
};

rule *module_rule(module *m, def *d)
{
    return module_rule_scheduled(m, d, NULL);
}

/* d checked once: the errors are reported where it is defined, once, however many blocks use it */
static int check_once(module *m, def *d)
{
    for (int i = 0; i < m->nchecked; i++)
        if (m->checked[i].d == d)
            return m->checked[i].nerr;
    int nerr = d->kind == DEF_MODEL ? model_check(d) : schedule_check(m, d);
    if (m->nchecked < 64) {
        m->checked[m->nchecked].d = d;
        m->checked[m->nchecked++].nerr = nerr;
    }
    return nerr;
}

int module_schedule_check(module *m, def *s)
{
    return check_once(m, s);
}

int module_model_check(module *m, def *d)
{
    return check_once(m, d);
}

int schedule_is_one(const def *s)
{
    return !s->params && s->value && s->value->kind == EX_NUM && s->value->num == 1;
}

rule *module_rule_scheduled(module *m, def *d, def *s)
{
    if (s && schedule_is_one(s))
        s = NULL;
    for (lowered *l = m->lowered; l; l = l->next)
        if (l->d == d && l->s == s)
            return l->r;
    lowered *l = malloc(sizeof *l);
    if (!l)
        return NULL;
    l->d = d;
    l->s = s;
    l->r = s ? rule_compile_scheduled(m, d, s) : rule_compile(m, d);
    l->next = m->lowered;
    m->lowered = l;
    return l->r;
}

/* "adamw@cosine" into the optimizer's and the schedule's definitions (*s NULL without '@'); -1 when either is not
 * one. */
static int split_named(module *m, const char *name, def **d, def **s)
{
    const char *at = strchr(name, '@');
    char opt[256];
    snprintf(opt, sizeof opt, "%.*s", at ? (int)(at - name) : (int)strlen(name), name);
    *d = module_find(m, opt);
    *s = at ? module_find(m, at + 1) : NULL;
    return !*d || (*d)->kind != DEF_OPTIMIZER || (at && (!*s || (*s)->kind != DEF_SCHEDULE)) ? -1 : 0;
}

rule *module_rule_named(module *m, const char *name)
{
    def *d, *s;
    return split_named(m, name, &d, &s) ? NULL : module_rule_scheduled(m, d, s);
}

rule *rule_compile_named(module *m, const char *name)
{
    def *d, *s;
    if (split_named(m, name, &d, &s))
        return NULL;
    return s && !schedule_is_one(s) ? rule_compile_scheduled(m, d, s) : rule_compile(m, d);
}

void module_free(module *m)
{
    for (lowered *l = m->lowered, *next; l; l = next) {
        next = l->next;
        rule_free(l->r);
        free(l);
    }
    for (int i = 0; i < m->nfiles; i++)
        srcfile_free(m->files[i]);
    arena_free(&m->ar);
    memset(m, 0, sizeof *m);
}

int module_is_user(const module *m, const def *d)
{
    return !(m->stdlib_dir && !strncmp(d->file->path, m->stdlib_dir, strlen(m->stdlib_dir)));
}

def *module_find(module *m, const char *name)
{
    def *std = NULL;
    for (def *d = m->defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT || strcmp(d->name, name))
            continue;
        if (module_is_user(m, d))
            return d;
        if (!std)
            std = d;
    }
    return std;
}
