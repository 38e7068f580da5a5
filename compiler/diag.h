/* diag.h — located diagnostics: "file:line:col: error: message", the source line, and a caret. */
#ifndef CELO_DIAG_H
#define CELO_DIAG_H

#include "ast.h"

extern int diag_count; /* errors reported so far */
void diag_error(const srcfile *f, span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(const srcfile *f, span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Closest of names[0..n) to s by edit distance, or NULL when none is close enough. */
const char *diag_suggest(const char *s, const char *const *names, int n);

#endif
