/* gemm.c — float32 matrix products on fixed pieces (gemm.h): the cut, and who runs which piece. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>

/* A piece keeps at least PIECE_MIN_MACS multiply-adds and PIECE_MIN_LEN rows (or columns): smaller, the
 * repeated packing of the shared operand and the call itself cost more than a second thread saves. At most
 * MAX_PIECES: one thread that runs them all in turn pays the packing of the shared operand that many times.
 * bench/train/gemm_pieces.sh measures that cost at the models' shapes: with 2 pieces 0-5 % (noise) for the
 * models' products and 11 % for Muon's 128 x 128 Newton-Schulz product; with 4 pieces 2-8 % and 21 %. Machines
 * of our kind have 2 cores, and many runs at once fill more cores better than 4-way GEMMs would: 2. */
enum { PIECE_MIN_LEN = 32, MAX_PIECES = 2 };
#define PIECE_MIN_MACS ((int64_t)1 << 19)

int celo_gemm_pieces(int M, int N, int K)
{
    int64_t macs = (int64_t)M * N * K;
    int len = M >= N ? M : N, p = 1;
    while (p < MAX_PIECES && macs / (2 * p) >= PIECE_MIN_MACS && len / (2 * p) >= PIECE_MIN_LEN)
        p *= 2;
    return p;
}

static void piece(const celo_gemm_args *g, int i, int p)
{
    int by_rows = g->M >= g->N, len = by_rows ? g->M : g->N;
    int lo = (int)((int64_t)len * i / p) / 16 * 16, hi = i == p - 1 ? len : (int)((int64_t)len * (i + 1) / p) / 16 * 16;
    if (hi <= lo)
        return;
    enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    if (by_rows) /* rows lo..hi of op(A) and of C */
        cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, g->N, g->K, g->alpha,
                    g->ta ? g->A + lo : g->A + (int64_t)lo * g->lda, g->lda, g->B, g->ldb, g->beta,
                    g->C + (int64_t)lo * g->ldc, g->ldc);
    else /* columns lo..hi of op(B) and of C */
        cblas_sgemm(CblasRowMajor, ta, tb, g->M, hi - lo, g->K, g->alpha, g->A, g->lda,
                    g->tb ? g->B + (int64_t)lo * g->ldb : g->B + lo, g->ldb, g->beta, g->C + lo, g->ldc);
}

void celo_sgemm_many(const celo_gemm_args *g, int n)
{
    int np[4], total = 0;
    for (int j = 0; j < n; j++)
        total += np[j] = celo_gemm_pieces(g[j].M, g[j].N, g[j].K);
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > total)
        nt = total;
    if (nt <= 1) {
        /* The OpenMP build of OpenBLAS threads a call made outside a parallel region over omp_get_max_threads()
         * threads, and its cut of the work follows that number: one thread here, whatever the caller's setting. */
        int saved = omp_in_parallel() ? 1 : omp_get_max_threads();
        if (saved > 1)
            omp_set_num_threads(1);
        for (int j = 0; j < n; j++)
            for (int i = 0; i < np[j]; i++)
                piece(&g[j], i, np[j]);
        if (saved > 1)
            omp_set_num_threads(saved);
        return;
    }
    /* inside the region OpenBLAS runs on the calling thread */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int q = 0; q < total; q++) {
        int j = 0, i = q;
        while (i >= np[j])
            i -= np[j++];
        piece(&g[j], i, np[j]);
    }
}

void celo_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc)
{
    celo_gemm_args g = {ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    celo_sgemm_many(&g, 1);
}
