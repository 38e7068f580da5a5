/*
 * fma_peak.c: this CPU's FP32 arithmetic peak for bench/learned, in GFLOP/s, on one thread and on all threads
 * (OpenMP; OMP_NUM_THREADS sets "all").
 *
 *   fma     - independent chains of a = fma(a, b, c) (2 flops per lane): the FMA peak;
 *   mul+add - the same chains as a separate multiply and add, a = a*b; a = a+c (2 flops per lane), which is what
 *             celo's kernels execute (docs/language.md "Numbers": no contraction into fused multiply-adds).
 *
 * Each runs at every vector width the compiler targets (AVX-512, AVX2/FMA, SSE) with enough independent chains per
 * thread to cover the latency of the dependent operations (NCHAIN >= latency x pipes on current x86 cores), and
 * the widest/fastest one is the peak. Each figure is the best of several timed repeats of ~50 ms (a peak: noise
 * from other work only lowers a repeat).
 *
 * Build: gcc -O2 -march=native -ffp-contract=off -fopenmp fma_peak.c -o fma_peak
 *        (-ffp-contract=off keeps the mul+add chains from being contracted into FMAs.)
 * Output: one line per width and kind, then
 *        fma_gflops_1t=<n>  fma_gflops=<n>  muladd_gflops_1t=<n>  muladd_gflops=<n>   (one per line)
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NCHAIN 12 /* independent accumulators per thread (16 AVX registers: 12 + 2 constants) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float sink; /* keeps the results alive */

/* KERNEL(name, vector type, lanes, set1, the operations on a[k], store): n iterations of NCHAIN chains; returns
 * the flops done (2 per lane and chain: one FMA, or one multiply and one add). */
#define KERNEL(name, V, W, SET1, OPS, STORE)                               \
    static double name(long n)                                             \
    {                                                                      \
        V b = SET1(0.99999994f), c = SET1(1e-7f);                          \
        V a[NCHAIN];                                                       \
        for (int k = 0; k < NCHAIN; k++)                                   \
            a[k] = SET1(1.0f + 0.001f * (float)k);                         \
        for (long i = 0; i < n; i++) {                                     \
            _Pragma("GCC unroll 12") for (int k = 0; k < NCHAIN; k++) OPS; \
        }                                                                  \
        float out[W], s = 0;                                               \
        for (int k = 0; k < NCHAIN; k++) {                                 \
            STORE(out, a[k]);                                              \
            for (int j = 0; j < W; j++)                                    \
                s += out[j];                                               \
        }                                                                  \
        sink = s;                                                          \
        return 2.0 * W * NCHAIN * (double)n;                               \
    }

#if defined(__AVX512F__)
KERNEL(fma512, __m512, 16, _mm512_set1_ps, a[k] = _mm512_fmadd_ps(a[k], b, c), _mm512_storeu_ps)
KERNEL(mul512, __m512, 16, _mm512_set1_ps, (a[k] = _mm512_mul_ps(a[k], b), a[k] = _mm512_add_ps(a[k], c)),
       _mm512_storeu_ps)
#endif
#if defined(__AVX2__) && defined(__FMA__)
KERNEL(fma256, __m256, 8, _mm256_set1_ps, a[k] = _mm256_fmadd_ps(a[k], b, c), _mm256_storeu_ps)
#endif
#if defined(__AVX__)
KERNEL(mul256, __m256, 8, _mm256_set1_ps, (a[k] = _mm256_mul_ps(a[k], b), a[k] = _mm256_add_ps(a[k], c)),
       _mm256_storeu_ps)
#endif
#if defined(__FMA__)
KERNEL(fma128, __m128, 4, _mm_set1_ps, a[k] = _mm_fmadd_ps(a[k], b, c), _mm_storeu_ps)
#endif
KERNEL(mul128, __m128, 4, _mm_set1_ps, (a[k] = _mm_mul_ps(a[k], b), a[k] = _mm_add_ps(a[k], c)), _mm_storeu_ps)

typedef double (*kernel_fn)(long);

/* GFLOP/s of fn on nthreads threads: iterations calibrated to ~50 ms, best of `reps` repeats. */
static double measure(kernel_fn fn, int nthreads, int reps)
{
    long n = 1 << 16;
    for (;;) {
        double t0 = now_s();
        fn(n);
        if (now_s() - t0 > 0.02 || n > (1L << 40))
            break;
        n *= 2;
    }
    n *= 2; /* ~40-80 ms */
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double flops = 0, t0 = now_s();
#pragma omp parallel num_threads(nthreads) reduction(+ : flops)
        flops += fn(n);
        double g = flops / (now_s() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    return best;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1)
        reps = 1;
    int nt = omp_get_max_threads();
    struct {
        const char *name;
        int fma;
        kernel_fn fn;
    } ks[] = {
#if defined(__AVX512F__)
        {"avx512", 1, fma512},
        {"avx512", 0, mul512},
#endif
#if defined(__AVX2__) && defined(__FMA__)
        {"avx2", 1, fma256},
#endif
#if defined(__AVX__)
        {"avx", 0, mul256},
#endif
#if defined(__FMA__)
        {"sse", 1, fma128},
#endif
        {"sse", 0, mul128},
    };
    double best[2][2] = {{0, 0}, {0, 0}}; /* [fma][all threads] */
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        double g1 = measure(ks[i].fn, 1, reps), gn = measure(ks[i].fn, nt, reps);
        printf("fma_peak %s %s chains=%d: %.1f GFLOP/s 1 thread, %.1f GFLOP/s %d threads\n", ks[i].name,
               ks[i].fma ? "fma" : "mul+add", NCHAIN, g1, gn, nt);
        if (g1 > best[ks[i].fma][0])
            best[ks[i].fma][0] = g1;
        if (gn > best[ks[i].fma][1])
            best[ks[i].fma][1] = gn;
    }
    printf("threads=%d\n", nt);
    printf("fma_gflops_1t=%.2f\n", best[1][0]);
    printf("fma_gflops=%.2f\n", best[1][1]);
    printf("muladd_gflops_1t=%.2f\n", best[0][0]);
    printf("muladd_gflops=%.2f\n", best[0][1]);
    return 0;
}
