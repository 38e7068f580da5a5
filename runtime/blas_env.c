/* blas_env.c — choosing OpenBLAS's kernels before it starts. */
#include "plan.h"

#include <stdlib.h>
#include <unistd.h>

/* OpenBLAS 0.3.21 (Debian 12) does not recognize some current CPUs and falls back to its SSE3 ("Prescott")
 * kernels, 4-5x slower. It reads OPENBLAS_CORETYPE when the library loads, before main, so when the variable is
 * unset we set it from the CPU's features and re-execute once. The user's own setting always wins. */
void celo_pick_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("CELO_NO_BLAS_REEXEC"))
        return;
    const char *core = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (!core)
        return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("CELO_NO_BLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with whatever OpenBLAS chose */
}

