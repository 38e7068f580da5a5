/* errmsg.h — the one way the runtime fills a caller's error buffer (char *err, size_t errlen). */
#ifndef CELO_ERRMSG_H
#define CELO_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into err (nothing when err is NULL or errlen 0) and turns newlines into spaces: every message is one
 * line, whatever file, tensor or device names it quotes. */
void celo_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void celo_vseterr(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
