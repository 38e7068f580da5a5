/*
 * kjv.c — the `kjv` data set: the King James Bible as character-level text, from Debian's bible-kjv (data.h).
 */
#include "data_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define KJV_PKG "bible-kjv"

/* "Ge1:1 ", "1Co13:4 ", "Psa119:176 ": an optional digit, letters, chapter ':' verse, one space. */
static int kjv_ref_len(const char *s, const char *end)
{
    const char *p = s;
    if (p < end && *p >= '1' && *p <= '3')
        p++;
    const char *q = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
        p++;
    if (p == q)
        return -1;
    q = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == q || p >= end || *p != ':')
        return -1;
    q = ++p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == q || p >= end || *p != ' ')
        return -1;
    return (int)(p + 1 - s);
}

/* The extracted text's cache entry is named by the size, mtime and inode of bible.data and a format version, so
 * an updated package makes a new entry. */
#define KJV_CACHE_VERSION 1

static char *kjv_cache_path(const struct stat *st)
{
    char name[128];
    snprintf(name, sizeof name, "kjv-v%d-%llx-%llx-%llx.txt", KJV_CACHE_VERSION, (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtime, (unsigned long long)st->st_ino);
    return celo_data_cache_path(name);
}

/* Runs `bible -f -p DIR gen1:1-rev22:21` and strips the references: one verse per line. */
static int kjv_extract(const char *dir, char **out, size_t *outlen, char *err, size_t errlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        celo_seterr(err, errlen, "bible: cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char a0[] = "bible", a1[] = "-f", a2[] = "-p", a4[] = "gen1:1-rev22:21";
    char *a3 = strdup(dir);
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    pid_t pid;
    int sr = a3 ? posix_spawnp(&pid, "bible", &fa, NULL, argv, environ) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    free(a3);
    close(pfd[1]);
    if (sr != 0) {
        close(pfd[0]);
        if (sr == ENOENT)
            celo_seterr(err, errlen, "bible: not found; install the Debian package " KJV_PKG);
        else
            celo_seterr(err, errlen, "bible: cannot run: %s", strerror(sr));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 23;
            char *nb = realloc(buf, nc);
            if (!nb) {
                oom = 1;
                break;
            }
            buf = nb, cap = nc;
        }
        ssize_t r = read(pfd[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (oom) {
        free(buf);
        celo_seterr(err, errlen, "bible: out of memory");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || len == 0) {
        const char *nl = buf ? memchr(buf, '\n', len) : NULL;
        int show = (int)(nl ? (size_t)(nl - buf) : len);
        if (show > 160)
            show = 160;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            celo_seterr(err, errlen, "bible: not found; install the Debian package " KJV_PKG);
        else
            celo_seterr(err, errlen, "bible: failed (%s %d)%s%.*s", WIFEXITED(status) ? "exit status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), show ? ": " : "", show,
                        buf ? buf : "");
        free(buf);
        return -1;
    }
    /* strip the references in place: "Ge1:1 In the beginning..." -> "In the beginning..." */
    size_t w = 0, line = 0;
    for (size_t i = 0; i < len;) {
        const char *end = memchr(buf + i, '\n', len - i);
        size_t e = end ? (size_t)(end - buf) : len;
        line++;
        int k = kjv_ref_len(buf + i, buf + e);
        if (k < 0) {
            int show = (int)(e - i > 80 ? 80 : e - i);
            celo_seterr(err, errlen, "bible: unexpected output at line %zu: '%.*s'", line, show, buf + i);
            free(buf);
            return -1;
        }
        memmove(buf + w, buf + i + (size_t)k, e - i - (size_t)k);
        w += e - i - (size_t)k;
        buf[w++] = '\n';
        i = e + 1;
    }
    *out = buf;
    *outlen = w;
    return 0;
}

int celo_text_load_kjv(celo_text *t, double val_frac, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *txt = getenv("CELO_BIBLE_TEXT");
    if (txt && *txt)
        return celo_text_load_file(t, txt, val_frac, err, errlen);
    const char *dir = celo_data_env_or("CELO_BIBLE_DIR", "/usr/lib");
    char *data = celo_data_path_join(dir, "bible.data");
    if (!data) {
        celo_seterr(err, errlen, "kjv: out of memory");
        return -1;
    }
    struct stat st;
    if (stat(data, &st) != 0) {
        if (errno == ENOENT)
            celo_seterr(err, errlen, "%s: not found; install the Debian package " KJV_PKG, data);
        else
            celo_seterr(err, errlen, "%s: %s", data, strerror(errno));
        free(data);
        return -1;
    }
    free(data);
    char *cpath = kjv_cache_path(&st);
    if (cpath) {
        size_t clen = 0;
        char *cached = celo_data_cache_read_text(cpath, &clen);
        if (cached) {
            free(cpath);
            int crc = celo_text_from_memory(t, "kjv", cached, (int64_t)clen, val_frac, err, errlen);
            free(cached);
            return crc;
        }
    }
    char *buf = NULL;
    size_t len = 0;
    if (kjv_extract(dir, &buf, &len, err, errlen) != 0) {
        free(cpath);
        return -1;
    }
    if (cpath)
        celo_data_cache_write(cpath, buf, len);
    free(cpath);
    int rc = celo_text_from_memory(t, "kjv", buf, (int64_t)len, val_frac, err, errlen);
    free(buf);
    return rc;
}

/* ---- the source entry ---- */

static int source_load(celo_source *s, const double *p, char *err, size_t errlen)
{
    return celo_text_load_kjv(&s->text, p[0], err, errlen);
}

static void source_origin(char *buf, size_t len)
{
    const char *txt = getenv("CELO_BIBLE_TEXT");
    if (txt && *txt)
        snprintf(buf, len, "text=%s", txt);
    else
        snprintf(buf, len, "%s", celo_data_env_or("CELO_BIBLE_DIR", "/usr/lib"));
}

const celo_source_type celo_source_kjv = {
    .name = "kjv",
    .help = "the King James Bible as characters, one verse per line (Debian bible-kjv)",
    .kind = CELO_SOURCE_TEXT,
    .nparams = 1,
    .params = {{"val_frac", 0.1, 0, 1, 0, "share of the text (from a line start on) kept for validation"}},
    .load = source_load,
    .origin = source_origin,
};
