/* fileio.c — writing a file so that a crash never leaves a torn one (temp file beside it, fsync, rename, fsync of
 * the folder), for every writer of the runtime: checkpoints, .npy arrays, logs, plots, tables and caches; and the
 * cache folder that the OpenCL binaries and the extracted KJV text share. */
#include "fileio.h"

#include "celort.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *celo_atomic_open(celo_atomic *a, const char *path, char *err, size_t errlen)
{
    a->f = NULL;
    a->path = path;
    size_t plen = strlen(path);
    a->tmp = malloc(plen + 16);
    if (!a->tmp) {
        celo_seterr(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    memcpy(a->tmp, path, plen);
    memcpy(a->tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        celo_seterr(err, errlen, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(a->tmp);
        return NULL;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a written file is an ordinary file */
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        celo_seterr(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        unlink(a->tmp);
        free(a->tmp);
        return NULL;
    }
    return a->f;
}

/* Makes a rename in path's folder durable (best effort: some file systems refuse fsync on a folder). */
static void fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int celo_atomic_commit(celo_atomic *a, char *err, size_t errlen)
{
    int saved = errno;
    int ok = !ferror(a->f);
    if (ok)
        ok = fflush(a->f) == 0, saved = errno;
    if (ok)
        ok = fsync(fileno(a->f)) == 0, saved = errno;
    if (fclose(a->f) != 0 && ok)
        ok = 0, saved = errno;
    a->f = NULL;
    if (!ok) {
        celo_seterr(err, errlen, "%s: write failed: %s", a->path, strerror(saved));
        unlink(a->tmp);
        free(a->tmp);
        return -1;
    }
    if (rename(a->tmp, a->path) != 0) {
        celo_seterr(err, errlen, "%s: cannot rename temporary file into place: %s", a->path, strerror(errno));
        unlink(a->tmp);
        free(a->tmp);
        return -1;
    }
    free(a->tmp);
    fsync_dir_of(a->path);
    return 0;
}

int celo_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    celo_atomic a;
    if (!celo_atomic_open(&a, path, err, errlen))
        return -1;
    if (len)
        (void)fwrite(data, 1, len, a.f); /* a short write sets the stream's error flag: commit reports it */
    return celo_atomic_commit(&a, err, errlen);
}

char *celo_cache_dir(void)
{
    const char *d = getenv("CELO_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    char *path = NULL;
    if (d && *d)
        path = strdup(d);
    else if ((x && *x) || (h && *h)) {
        size_t len = strlen(x && *x ? x : h) + 16;
        path = malloc(len);
        if (path)
            snprintf(path, len, x && *x ? "%s/celo" : "%s/.cache/celo", x && *x ? x : h);
    }
    if (!path)
        return NULL;
    for (char *q = path + 1;; q++) { /* mkdir -p */
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                free(path);
                return NULL;
            }
            *q = c;
            if (!c)
                break;
        }
    }
    return path;
}

int celo_make_parents(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        celo_seterr(err, errlen, "%s: path too long", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            celo_seterr(err, errlen, "%s: cannot create folder %s: %s", path, buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        celo_seterr(err, errlen, "%s: cannot create folder %s: %s", path, buf, strerror(errno));
        return -1;
    }
    return 0;
}

int celo_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    if (celo_make_parents(path, err, errlen))
        return -1;
    return celo_write_atomic(path, data, len, err, errlen);
}
