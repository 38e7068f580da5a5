/* tape.h — the host tape: the part of a step before its first pass (host values, then per-tensor, per-row and
 * per-column values of stage 0), for the CPU step (step.c) and the OpenCL host side (clrun.c), which both keep
 * those values in a double block val, the kernels' float block sc and the kernel pointer table ptr.
 *
 * A rule's host part may be large (Celo's LSTM scheduler unrolls to ~100K host and per-tensor nodes), and every
 * tensor runs it once per step. Scanning every node and calling celo_eval_small for each cost ~10 ns a node; the
 * tape lists, once per state, the nodes a step evaluates before pass 1, in node order, as flat instructions with
 * the common ops inlined. A product of a θ entry that only feeds one sum (x W[k, j] in s + x W[k, j]) is computed
 * inside that sum, with θ read from celo_state.theta directly; the θ node is then not evaluated at all when nothing
 * else reads it; and a chain of such sums whose partial sums nothing else reads (an unrolled dot product) is one
 * instruction that keeps the sum in a register. Every value is the one celo_eval_small gives: the same double
 * operations, each rounded once, in the same order (the build's -std=c11 keeps the compiler from contracting
 * a + b * c into a fused multiply-add). Constants are stored once, when the tape is made.
 *
 *     celo_tape tp;
 *     celo_tape_build(P, &tp, val, sc);                             // once per state: constants into val, sc
 *     celo_tape_run(P, st, &tp, 0, tp.n0, t, hp, val, sc, ptr);     // host values
 *     ... the initial state on the first step (from sc) ...
 *     celo_tape_run(P, st, &tp, tp.n0, tp.n, t, hp, val, sc, ptr);  // per-tensor/row/column values
 *     celo_tape_free(&tp);
 */
#ifndef CELO_TAPE_H
#define CELO_TAPE_H

#include "celort.h"

/* One instruction: node d's value from nodes a, b, c; k: a θ index, a celo_op, or an offset into dot. */
typedef struct {
    uint8_t op;
    int32_t d, a, b, c, k;
} celo_tape_ent;

typedef struct {
    celo_tape_ent *ent; /* the host values (ent[0 .. n0)), then the per-tensor/row/column ones (ent[n0 .. n)) */
    int n, n0;
    int32_t *dot; /* the dot products' terms: (node of x, θ index) pairs */
} celo_tape;

/* The tape of P's nodes before pass 1 (pass 0, not element-wise, not reductions of element values); constants
 * are written into val and sc now. 0, or -1 out of memory. */
int celo_tape_build(const celo_program *P, celo_tape *tp, double *val, float *sc);
/* Entries [from, to) for state st: into val and sc what celo_eval_small would compute for each of their nodes. */
void celo_tape_run(const celo_program *P, const celo_state *st, const celo_tape *tp, int from, int to, int64_t t,
                   const float *hp, double *val, float *sc, float *const *ptr);
void celo_tape_free(celo_tape *tp);

#endif
