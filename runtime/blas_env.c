/* blas_env.c — the environment of the thread runtime, set before OpenBLAS and OpenMP start. */
#include "plan.h"

#include <stdlib.h>
#include <unistd.h>

/* Both libraries read their settings when they load, before main, so when something must change we set it and
 * re-execute once. A setting the user made always wins.
 *   OPENBLAS_CORETYPE  OpenBLAS 0.3.21 (Debian 12) does not recognize some current CPUs and falls back to its
 *                      SSE3 ("Prescott") kernels, 4-5x slower: pick the kernels from the CPU's features.
 *   OMP_WAIT_POLICY    libgomp's idle threads spin by default; between OpenBLAS's GEMMs they steal the cores
 *                      that celo's own work needs (a built binary ran 7x slower on 2 cores): make them sleep. */
void celo_pick_blas_kernels(char **argv)
{
    if (getenv("CELO_NO_BLAS_REEXEC"))
        return;
    int change = 0;
    if (!getenv("OPENBLAS_CORETYPE")) {
        const char *core = NULL;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
            core = "SkylakeX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            core = "Haswell";
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            change = 1;
        }
    }
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        change = 1;
    }
    if (!change)
        return;
    setenv("CELO_NO_BLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the defaults */
}
