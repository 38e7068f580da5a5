/* sbuf.c — the growing text buffer (sbuf.h). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the terminator; 0, or -1 (oom set). */
static int sb_reserve(sbuf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > nc)
        nc *= 2;
    char *s = realloc(b->s, nc);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s, b->cap = nc;
    return 0;
}

void celo_sb_put(sbuf *b, const char *s, size_t n)
{
    if (sb_reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void celo_sb_str(sbuf *b, const char *s)
{
    celo_sb_put(b, s, strlen(s));
}

void celo_sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) { /* format into the room left; when it does not fit, grow and format again */
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        if (sb_reserve(b, (size_t)k))
            return;
    }
}
