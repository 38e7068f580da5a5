/* ranks.c — mpirun's processes and celo's collectives over them (ranks.h). */
#include "ranks.h"

#include "celort.h"
#include "errmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CELO_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_on = 0;

int celo_rank(void)
{
    return g_rank;
}

int celo_nranks(void)
{
    return g_size;
}

int celo_ranks_init(void)
{
    if (g_on || !getenv("OMPI_COMM_WORLD_SIZE"))
        return 0;
#ifdef CELO_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "error: MPI_Init failed\n");
        return -1;
    }
    g_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* N ranks on one machine, each with every core's worth of threads, would fight over the cores */
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int nlocal = local ? atoi(local) : 1;
    if (nlocal > 1 && !getenv("OMP_NUM_THREADS")) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int share = (int)(ncpu / nlocal);
        celo_set_threads(share > 0 ? share : 1);
    }
    return 0;
#else
    fprintf(stderr, "error: started by mpirun, but this celo was built without MPI (install libopenmpi-dev and "
                    "rebuild)\n");
    return -1;
#endif
}

void celo_ranks_finish(int rc)
{
#ifdef CELO_HAVE_MPI
    if (!g_on)
        return;
    g_on = 0;
    fflush(stdout);
    fflush(stderr);
    if (rc && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
#else
    (void)rc;
#endif
}

#ifdef CELO_HAVE_MPI
/* MPI counts are ints: n elements go in pieces of at most 2^30 */
#define PIECE ((int64_t)1 << 30)

/* Waits for r politely. Open MPI's blocking collectives poll the CPU at full speed while a rank waits for a slower
 * one (rank 0 evaluating or writing a checkpoint, a meta rank with more pairs): on a machine whose cores the ranks
 * share with their own threads or other programs, that spinning takes the core from the rank being waited for
 * (data-parallel training of tests/mpi/train.celo ran 2.2x slower so, on 2 cores busy with other programs). So: poll
 * for a short while, then sleep 50 us between polls. */
static int wait_politely(MPI_Request *r)
{
    int done = 0;
    for (long k = 0; !done; k++) {
        if (MPI_Test(r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (!done && k >= 2000) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static int reduce(void *x, int64_t n, size_t size, MPI_Datatype type, MPI_Op op, char *err, size_t errlen)
{
    for (int64_t k = 0; g_size > 1 && k < n; k += PIECE) {
        int cnt = (int)(n - k < PIECE ? n - k : PIECE);
        MPI_Request r;
        if (MPI_Iallreduce(MPI_IN_PLACE, (char *)x + (size_t)k * size, cnt, type, op, MPI_COMM_WORLD, &r) !=
                MPI_SUCCESS ||
            wait_politely(&r)) {
            celo_seterr(err, errlen, "MPI_Allreduce failed");
            return -1;
        }
    }
    return 0;
}
#endif

int celo_allreduce_f32(float *x, int64_t n, char *err, size_t errlen)
{
#ifdef CELO_HAVE_MPI
    return reduce(x, n, sizeof *x, MPI_FLOAT, MPI_SUM, err, errlen);
#else
    (void)x, (void)n, (void)err, (void)errlen;
    return 0;
#endif
}

int celo_allreduce_f64(double *x, int64_t n, char *err, size_t errlen)
{
#ifdef CELO_HAVE_MPI
    return reduce(x, n, sizeof *x, MPI_DOUBLE, MPI_SUM, err, errlen);
#else
    (void)x, (void)n, (void)err, (void)errlen;
    return 0;
#endif
}

int celo_allreduce_i64(int64_t *x, int64_t n, char *err, size_t errlen)
{
#ifdef CELO_HAVE_MPI
    return reduce(x, n, sizeof *x, MPI_INT64_T, MPI_SUM, err, errlen);
#else
    (void)x, (void)n, (void)err, (void)errlen;
    return 0;
#endif
}

int celo_allreduce_or_u8(unsigned char *x, int64_t n, char *err, size_t errlen)
{
#ifdef CELO_HAVE_MPI
    return reduce(x, n, sizeof *x, MPI_UNSIGNED_CHAR, MPI_BOR, err, errlen);
#else
    (void)x, (void)n, (void)err, (void)errlen;
    return 0;
#endif
}

int celo_ranks_any_failed(int failed, char *msg, size_t msglen)
{
    if (g_size == 1)
        return failed != 0;
#ifdef CELO_HAVE_MPI
    int who = failed ? g_rank : g_size;
    if (reduce(&who, 1, sizeof who, MPI_INT, MPI_MIN, NULL, 0))
        who = 0; /* cannot happen: MPI's default error handler aborts first */
    if (who == g_size)
        return 0;
    if (msglen > 0) {
        msg[msglen - 1] = 0;
        MPI_Bcast(msg, (int)(msglen < 0x7fffffff ? msglen : 0x7fffffff), MPI_CHAR, who, MPI_COMM_WORLD);
        msg[msglen - 1] = 0;
    }
    return 1;
#else
    (void)msg, (void)msglen;
    return failed != 0;
#endif
}

int celo_gather_bytes(const void *data, size_t len, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    if (g_size == 1) {
        if (!(*out = malloc(len ? len : 1))) {
            celo_seterr(err, errlen, "out of memory");
            return -1;
        }
        memcpy(*out, data, len);
        *outlen = len;
        return 0;
    }
#ifdef CELO_HAVE_MPI
    /* sizes first; then the bytes, in pieces of at most 2^30 per rank and round so that counts fit an int */
    long long mine = (long long)len, *lens = g_rank == 0 ? calloc((size_t)g_size, sizeof *lens) : NULL;
    int *cnt = g_rank == 0 ? calloc((size_t)g_size, sizeof *cnt) : NULL,
        *dsp = g_rank == 0 ? calloc((size_t)g_size, sizeof *dsp) : NULL;
    int bad = g_rank == 0 && (!lens || !cnt || !dsp);
    if (MPI_Gather(&mine, 1, MPI_LONG_LONG, lens, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        bad = 1;
    size_t total = 0, *base = NULL;
    if (g_rank == 0 && !bad) {
        for (int r = 0; r < g_size; r++)
            total += (size_t)lens[r];
        *out = malloc(total ? total : 1);
        base = calloc((size_t)g_size, sizeof *base);
        bad = !*out || !base;
        for (int r = 1; !bad && r < g_size; r++)
            base[r] = base[r - 1] + (size_t)lens[r - 1];
    }
    int64_t longest = (int64_t)len;
    MPI_Allreduce(MPI_IN_PLACE, &longest, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    for (int64_t k = 0; k < longest; k += PIECE) {
        int c = (int)((int64_t)len - k < PIECE ? ((int64_t)len > k ? (int64_t)len - k : 0) : PIECE);
        /* rank 0's displacements must fit an int: the pieces go to a buffer of their own, then into place */
        unsigned char *tmp = NULL;
        if (g_rank == 0 && !bad) {
            size_t sum = 0;
            for (int r = 0; r < g_size; r++) {
                int64_t lr = lens[r];
                cnt[r] = (int)(lr - k < PIECE ? (lr > k ? lr - k : 0) : PIECE);
                dsp[r] = (int)sum;
                sum += (size_t)cnt[r];
            }
            if (sum > (size_t)0x7fffffff || !(tmp = malloc(sum ? sum : 1)))
                bad = 1;
        }
        if (MPI_Gatherv(c ? (const char *)data + k : NULL, c, MPI_BYTE, tmp, cnt, dsp, MPI_BYTE, 0, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            bad = 1;
        if (tmp && !bad)
            for (int r = 0; r < g_size; r++)
                memcpy(*out + base[r] + k, tmp + dsp[r], (size_t)cnt[r]);
        free(tmp);
    }
    free(lens), free(cnt), free(dsp), free(base);
    if (bad) {
        free(*out);
        *out = NULL;
        celo_seterr(err, errlen, "gathering to rank 0 failed (out of memory?)");
        return -1;
    }
    *outlen = g_rank == 0 ? total : 0;
    return 0;
#else
    celo_seterr(err, errlen, "no MPI");
    return -1;
#endif
}
