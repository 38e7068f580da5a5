/* parse.c — source files, the arena, and the driver of the scanner and parser. */
#include "ast.h"
#include "diag.h"
#include "parser.h"
#define YYSTYPE CELO_YYSTYPE
#define YYLTYPE CELO_YYLTYPE
#include "lexer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->used + n > a->head->cap) {
        size_t cap = n > 65536 ? n : 65536;
        arena_block *b = malloc(sizeof *b + cap);
        if (!b) {
            fprintf(stderr, "celo: out of memory\n");
            exit(1);
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void arena_free(arena *a)
{
    while (a->head) {
        arena_block *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

srcfile *srcfile_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    srcfile *f = calloc(1, sizeof *f);
    size_t cap = 4096;
    f->text = malloc(cap);
    size_t n;
    while ((n = fread(f->text + f->len, 1, cap - f->len - 1, fp)) > 0) {
        f->len += n;
        if (f->len + 1 >= cap) {
            cap *= 2;
            f->text = realloc(f->text, cap);
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        srcfile_free(f);
        return NULL;
    }
    if (memchr(f->text, 0, f->len)) {
        snprintf(err, errlen, "%s: not a text file (contains NUL bytes)", path);
        srcfile_free(f);
        return NULL;
    }
    f->text[f->len] = 0;
    f->path = strdup(path);
    return f;
}

srcfile *srcfile_from_string(const char *name, const char *text)
{
    srcfile *f = calloc(1, sizeof *f);
    f->path = strdup(name);
    f->len = strlen(text);
    f->text = malloc(f->len + 1);
    memcpy(f->text, text, f->len + 1);
    return f;
}

void srcfile_free(srcfile *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->text);
    free(f);
}

int celo_parse_file(srcfile *f, arena *ar, def **out)
{
    parse_ctx ctx = {.file = f, .ar = ar};
    yyscan_t sc;
    if (celo_yylex_init_extra(&ctx, &sc))
        return 1;
    YY_BUFFER_STATE b = celo_yy_scan_bytes(f->text, (int)f->len, sc);
    ctx.scanner = sc;
    celo_yyparse(sc, &ctx);
    celo_yy_delete_buffer(b, sc);
    celo_yylex_destroy(sc);
    def **pp = out;
    while (*pp)
        pp = &(*pp)->next;
    *pp = ctx.defs;
    return ctx.nerrors;
}
