/* check.h — the unit tests' assertion, included once by each test program that uses it: check(ok, fmt, ...)
 * prints "ok   " or "FAIL " and the message, and counts failures in `fails`, which main turns into its exit
 * status. CHECK is the same with any condition. */
#ifndef CELO_TEST_CHECK_H
#define CELO_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int fails;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (!ok)
        fails++;
}

#define CHECK(cond, ...) check((cond) != 0, __VA_ARGS__)

#endif
