/*
 * par.h — when a loop opens an OpenMP region: only when there is work for it and a second thread to share it.
 *
 * A region of one thread (an `if` clause that is false, OMP_NUM_THREADS=1, or a run on a context of one thread)
 * still meets its barriers with a futex system call each: about 0.3 us on a VM, and with a dozen such regions a
 * fifth of a step of the 8x8 MLP. So the serial case is a plain loop, and OpenMP is entered only to split work.
 */
#ifndef CELO_PAR_H
#define CELO_PAR_H

#include <omp.h>

/* enough: the work is large enough to split. True when it is and a second thread can take part. */
static inline int celo_par(int enough)
{
    return enough && !omp_in_parallel() && omp_get_max_threads() > 1;
}

/* for (INIT; TEST; INCR) { BODY }: the iterations split over the threads (static schedule) when celo_par(COND),
 * otherwise a plain loop. Results must not depend on which (every split here keeps each sum's order). */
#define CELO_PAR_FOR(cond, init, test, incr, ...)                               \
    do {                                                                        \
        if (celo_par(cond)) {                                                   \
            _Pragma("omp parallel for schedule(static)") for (init; test; incr) \
            {                                                                   \
                __VA_ARGS__                                                     \
            }                                                                   \
        } else {                                                                \
            for (init; test; incr) {                                            \
                __VA_ARGS__                                                     \
            }                                                                   \
        }                                                                       \
    } while (0)

#endif
