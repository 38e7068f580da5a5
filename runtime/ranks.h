/*
 * ranks.h — processes started by mpirun (Open MPI): which one this is, and the few collectives celo needs.
 *
 * `mpirun -n N celo run F.celo` (or a `celo build` binary) starts N processes, the ranks. A `meta` block spreads
 * its antithetic pairs over them (meta.c), a `train` run cuts every batch into one shard per rank (inst_step.c);
 * both keep every rank's numbers identical, so any rank could write the files: rank 0 does, and prints progress.
 *
 * MPI is initialized only when Open MPI launched the process (OMPI_COMM_WORLD_SIZE in the environment): a plain
 * `celo run` never calls into MPI and behaves as a program without it. Without MPI (or built without it,
 * CELO_HAVE_MPI undefined) celo_rank() is 0, celo_nranks() 1, and every collective is a no-op.
 */
#ifndef CELO_RANKS_H
#define CELO_RANKS_H

#include <stddef.h>
#include <stdint.h>

/* Joins the ranks when mpirun started this process (once; later calls do nothing). With more than one rank on
 * this machine and no OMP_NUM_THREADS, each rank gets its share of the cores (celo_set_threads). 0, or -1 after
 * printing one line. */
int celo_ranks_init(void);
/* The end of the program: MPI_Finalize when rc is 0, MPI_Abort (every rank stops) when rc is not and there are
 * several ranks, so that no rank waits forever for one that failed. Nothing without MPI. */
void celo_ranks_finish(int rc);

int celo_rank(void);   /* 0 .. celo_nranks() - 1 */
int celo_nranks(void); /* 1 without mpirun */
/* Rank 0: the one that prints progress and writes files. */
static inline int celo_rank0(void)
{
    return celo_rank() == 0;
}

/* In place, the element-wise sum over all ranks (every rank gets it). 0, or -1 with err. */
int celo_allreduce_f32(float *x, int64_t n, char *err, size_t errlen);
int celo_allreduce_f64(double *x, int64_t n, char *err, size_t errlen);
int celo_allreduce_i64(int64_t *x, int64_t n, char *err, size_t errlen);
/* In place, the element-wise bitwise OR over all ranks. */
int celo_allreduce_or_u8(unsigned char *x, int64_t n, char *err, size_t errlen);
/* Whether any rank failed (failed != 0 there): 1 on every rank if one did, and then msg (msglen bytes, a
 * NUL-terminated line) is that of the lowest failing rank everywhere, so that rank 0 can print it. 0 if none. */
int celo_ranks_any_failed(int failed, char *msg, size_t msglen);
/* Every rank's len bytes at data to rank 0: there *out (malloc'ed, the ranks' bytes one after another, in rank
 * order) and *outlen; elsewhere *out = NULL. 0, or -1 with err. */
int celo_gather_bytes(const void *data, size_t len, unsigned char **out, size_t *outlen, char *err, size_t errlen);

#endif
