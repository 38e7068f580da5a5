/* errmsg.c — one-line error messages into a caller's buffer (errmsg.h). */
#include "errmsg.h"

#include <stdio.h>

void celo_vseterr(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (!err || errlen == 0)
        return;
    vsnprintf(err, errlen, fmt, ap);
    for (char *s = err; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

void celo_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    celo_vseterr(err, errlen, fmt, ap);
    va_end(ap);
}
