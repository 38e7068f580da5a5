/* fileio.h — files written so that a crash never leaves a torn one, and celo's cache folder. (celo_write_atomic,
 * the whole-buffer form, is public: celort.h.) */
#ifndef CELO_FILEIO_H
#define CELO_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* A file being written atomically: the data goes to a temporary file beside the target ("PATH.tmp.XXXXXX", so
 * that the rename stays on one file system), which celo_atomic_commit flushes, fsyncs and renames over it. For
 * writers that stream (checkpoints, .npy arrays) rather than hold the whole file in memory. */
typedef struct {
    FILE *f; /* write here */
    char *tmp;
    const char *path;
} celo_atomic;

/* Opens the temporary file: a->f, or NULL with one line naming path in err. */
FILE *celo_atomic_open(celo_atomic *a, const char *path, char *err, size_t errlen);
/* Flushes, fsyncs and closes it, renames it over the target and fsyncs the folder (best effort). 0, or -1 with
 * one line in err: then the temporary file is gone and the target untouched. A write error on a->f counts. */
int celo_atomic_commit(celo_atomic *a, char *err, size_t errlen);

/* Creates the folders above path (mkdir -p of its directory). 0, or -1 with one line naming path in err. */
int celo_make_parents(const char *path, char *err, size_t errlen);
/* celo_write_atomic after creating the folders above path. */
int celo_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* The cache folder, created: $CELO_CACHE_DIR, else $XDG_CACHE_HOME/celo, else $HOME/.cache/celo. A malloc'd path,
 * or NULL: callers treat the cache as an optimisation and go on without it. */
char *celo_cache_dir(void);

#endif
