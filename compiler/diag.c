/* diag.c — the caret printer and did-you-mean. */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int diag_count = 0;

static void report(const char *kind, const srcfile *f, span sp, const char *fmt, va_list ap)
{
    if (!f) {
        fprintf(stderr, "celo: %s: ", kind);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        return;
    }
    int32_t lo = sp.lo < 0 ? 0 : sp.lo;
    if ((size_t)lo > f->len)
        lo = (int32_t)f->len;
    int line = 1;
    int32_t bol = 0;
    for (int32_t i = 0; i < lo; i++)
        if (f->text[i] == '\n') {
            line++;
            bol = i + 1;
        }
    int32_t eol = lo;
    while ((size_t)eol < f->len && f->text[eol] != '\n')
        eol++;
    /* Columns count characters, not bytes: UTF-8 continuation bytes take no column. */
    int col = 1;
    for (int32_t i = bol; i < lo; i++)
        col += ((unsigned char)f->text[i] & 0xc0) != 0x80;
    fprintf(stderr, "%s:%d:%d: %s: ", f->path, line, col, kind);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n    %.*s\n    ", (int)(eol - bol), f->text + bol);
    for (int32_t i = bol; i < lo; i++)
        if (((unsigned char)f->text[i] & 0xc0) != 0x80)
            fputc(f->text[i] == '\t' ? '\t' : ' ', stderr);
    fputc('^', stderr);
    int32_t hi = sp.hi > eol ? eol : sp.hi;
    for (int32_t i = lo + 1; i < hi; i++)
        if (((unsigned char)f->text[i] & 0xc0) != 0x80)
            fputc('~', stderr);
    fputc('\n', stderr);
}

void diag_error(const srcfile *f, span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("error", f, sp, fmt, ap);
    va_end(ap);
    diag_count++;
}

void diag_note(const srcfile *f, span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("note", f, sp, fmt, ap);
    va_end(ap);
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *diag_suggest(const char *s, const char *const *names, int n)
{
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < n; i++) {
        if (!names[i])
            continue;
        int d = edit_distance(s, names[i]);
        if (d < bd) {
            bd = d;
            best = names[i];
        }
    }
    size_t len = strlen(s);
    int limit = len <= 1 ? 0 : len <= 2 ? 1 : len <= 5 ? 2 : 3; /* one letter: any other is as close */
    return bd <= limit ? best : NULL;
}
