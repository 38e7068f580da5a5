/* facdom.h — the factored domains of a tensor (FROW, FCOL, FBAT, MAT: celort.h): which axes each keeps, their
 * lengths and element tables, and the moves between domains that the runtime makes between passes. Internal to
 * the runtime (step.c, clrun.c). */
#ifndef CELO_FACDOM_H
#define CELO_FACDOM_H

#include "celort.h"

/* Whether P has a node or a state slot in a factored domain (then its states carry the tables). */
int celo_fac_used(const celo_program *P);
/* Fills st->d0, st->d1 and st->dlen from st->ndim and st->shape; with tables (st->ftab) when P uses factored
 * domains. 0, or -1 when out of memory or a factored domain would not fit int32 indices. */
int celo_fac_init(celo_state *st);
void celo_fac_free(celo_state *st);
/* The axes domain dom removes from the shape (bit a: axis a), for a vector domain or ELEM (none). */
unsigned celo_fac_removed(const celo_state *st, int dom);
/* out[t] = the reduction (SUM or MAXR) of src over the values of domain `from` that meet in value t of domain `to`
 * (whose removed axes include from's), accumulated in double in the order of src, rounded to float once. acc:
 * st->dlen[to] doubles of scratch. */
void celo_fac_reduce(const celo_state *st, int from, int to, int op, const float *src, float *out, double *acc);
/* idx[i] = the index in domain `to` (coarser: its removed axes include from's) of value q0 + i of domain `from`,
 * i < m. */
void celo_fac_map(const celo_state *st, int from, int to, int64_t q0, int m, int64_t *idx);

#endif
