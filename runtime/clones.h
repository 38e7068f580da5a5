/*
 * clones.h — hot loops compiled once per x86 vector ISA, picked when the program loads.
 */
#ifndef CELO_CLONES_H
#define CELO_CLONES_H

/* The hot element-wise loops are compiled once per x86 vector ISA (AVX-512, AVX2, and the baseline's SSE2) and
 * the loader picks the clone for the CPU it runs on (GCC's function multi-versioning, by ISA features: `arch=`
 * clones match only that exact CPU model), so the runtime needs no -march and a built binary still runs on any
 * x86-64. A cloned function must not contain an OpenMP parallel region: GCC's resolver of the outlined region
 * picks the baseline. So the threads split work in a plain function and each slice runs a cloned kernel.
 * Every clone computes the same values: the build is ISO C (no FMA contraction), each element is computed
 * alone, and reductions fix their order in the source (runtime/nn/layers.inc's SUM8) rather than leave it to the
 * vector width (an `omp simd reduction` would group its additions by the clone's width). Sanitizer builds take
 * the baseline only.
 * Use: CELO_SIMD_CLONES static void kernel(...) { #pragma omp simd loops }, called from a plain function. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CELO_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CELO_SIMD_CLONES
#endif
/* helpers of a cloned kernel must inline into each clone: GCC inlines across targets only when forced */
#define CELO_ALWAYS_INLINE __attribute__((always_inline))

#endif
