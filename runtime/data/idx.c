/*
 * idx.c — IDX files (LeCun's MNIST format), gzip-compressed or plain, validated strictly (data.h).
 */
#include "data_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_BYTES ((int64_t)1 << 36) /* 64 GiB: far beyond any IDX file; guards garbage dimensions */

/* Reads exactly len bytes; returns the number read (less at end of file), or -1 on a stream error. */
static int64_t gz_read_all(gzFile g, void *buf, int64_t len)
{
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got;
        if (want > (1 << 30))
            want = 1 << 30;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

static const char *gz_errmsg(gzFile g)
{
    int e = Z_OK;
    const char *m = gzerror(g, &e);
    if (e == Z_ERRNO)
        return strerror(errno);
    return m && *m ? m : "read error";
}

int celo_data_idx_read(const char *path, celo_idx *out, const char *pkg, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && pkg)
            celo_seterr(err, errlen, "%s: not found; install the Debian package %s", path, pkg);
        else
            celo_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        close(fd);
        celo_seterr(err, errlen, "%s: cannot open: out of memory", path);
        return -1;
    }
    gzbuffer(g, 1 << 17);
    int rc = -1;
    unsigned char h[4 + 4 * 4];
    int64_t r = gz_read_all(g, h, 4);
    if (r < 0) {
        celo_seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < 4 || h[0] != 0 || h[1] != 0) {
        celo_seterr(err, errlen, "%s: not an IDX file (bad magic)", path);
        goto done;
    }
    if (h[2] != 0x08) {
        celo_seterr(err, errlen, "%s: IDX element type 0x%02x not supported (want unsigned byte, 0x08)", path, h[2]);
        goto done;
    }
    int nd = h[3];
    if (nd < 1 || nd > 4) {
        celo_seterr(err, errlen, "%s: IDX file with %d dimensions (want 1 to 4)", path, nd);
        goto done;
    }
    r = gz_read_all(g, h + 4, 4 * nd);
    if (r < 0) {
        celo_seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < 4 * nd) {
        celo_seterr(err, errlen, "%s: truncated IDX header", path);
        goto done;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        const unsigned char *b = h + 4 + 4 * i;
        int64_t d = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        if (d == 0) {
            celo_seterr(err, errlen, "%s: IDX dimension %d is 0", path, i);
            goto done;
        }
        if (n > IDX_MAX_BYTES / d) {
            celo_seterr(err, errlen, "%s: IDX dimensions too large", path);
            goto done;
        }
        n *= d;
        out->dim[i] = d;
    }
    out->ndim = nd;
    out->data = malloc((size_t)n);
    if (!out->data) {
        celo_seterr(err, errlen, "%s: out of memory (%lld bytes)", path, (long long)n);
        goto done;
    }
    r = gz_read_all(g, out->data, n);
    if (r < 0) {
        celo_seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r < n) {
        celo_seterr(err, errlen, "%s: truncated: %lld of %lld data bytes", path, (long long)r, (long long)n);
        goto done;
    }
    unsigned char extra;
    r = gz_read_all(g, &extra, 1);
    if (r < 0) {
        celo_seterr(err, errlen, "%s: %s", path, gz_errmsg(g));
        goto done;
    }
    if (r > 0) {
        celo_seterr(err, errlen, "%s: trailing data after %lld bytes that the dimensions give", path, (long long)n);
        goto done;
    }
    out->n = n;
    rc = 0;
done:
    gzclose(g);
    if (rc != 0) {
        free(out->data);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int celo_idx_read(const char *path, celo_idx *out, char *err, size_t errlen)
{
    return celo_data_idx_read(path, out, NULL, err, errlen);
}

void celo_idx_free(celo_idx *m)
{
    if (!m)
        return;
    free(m->data);
    memset(m, 0, sizeof *m);
}
