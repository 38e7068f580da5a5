/* sbuf.h — a growing text buffer for building files and sources in memory (checkpoint headers, CSV, reports,
 * OpenCL C). A failed allocation sets oom and makes every later append a no-op, so that a writer checks once at
 * the end. s is NUL-terminated whenever it is not NULL. */
#ifndef CELO_SBUF_H
#define CELO_SBUF_H

#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

void celo_sb_put(sbuf *b, const char *s, size_t n);
void celo_sb_str(sbuf *b, const char *s);
void celo_sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
