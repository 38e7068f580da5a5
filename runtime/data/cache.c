/*
 * cache.c — a cache of files derived from installed data (data_internal.h): the text extracted from a data
 * package's own format, for example, so that the second load takes milliseconds. Keys (file names) are the
 * caller's; they must change when the source changes.
 */
#include "data_internal.h"

#include "../celort.h"
#include "../fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *celo_data_cache_path(const char *name)
{
    char *dir = celo_cache_dir();
    if (!dir)
        return NULL;
    char *p = celo_data_path_join(dir, name);
    free(dir);
    return p;
}

char *celo_data_cache_read_text(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 1 && (buf = malloc((size_t)st.st_size))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size || buf[got - 1] != '\n') {
            free(buf);
            buf = NULL;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

void celo_data_cache_write(const char *path, const void *buf, size_t len)
{
    (void)celo_write_atomic(path, buf, len, NULL, 0);
}
