/*
 * meta.h — meta-training a learned rule's θ: a `meta` block of a .celo file (docs/meta.md).
 *
 * Every task family keeps `particles` antithetic pairs of inner training runs (celo_inst, inst.h): the + run
 * trains its task with θ + ε_i, the − run the same task (same initialization, same mini-batches) with θ − ε_i.
 * Each outer step draws new perturbations, unrolls every pair for one truncation of K steps (PES) or one whole
 * episode (ES), turns the per-step training losses into an estimate of the meta-gradient (pes.h), averages the
 * families' estimates, zeroes NaN/inf entries and those outside train_only, and steps θ with the outer optimizer,
 * any celo rule, through the back end table (backend.h). Pairs run side by side, one per thread; their numbers
 * depend on their seeds alone, so θ's trajectory does not depend on the thread count. Under mpirun the pairs
 * spread over the ranks (pair q on rank q % N), which share their losses and all take the same outer step: θ's
 * trajectory does not depend on the number of ranks either (ranks.h; docs/meta.md, "MPI").
 *
 * Episodes follow learned_optimization's truncated-step mechanics (learned-optimizers.md §1.5): a horizon drawn
 * log-uniformly in [hmin, hmax] (passed to the rule as num_steps), a truncation counter that starts at a random
 * offset for the first episode, is_done on the step after which the counter reaches the horizon, then one reset
 * slot (loss 0, mask 0) where the pair gets a new task seed and horizon.
 *
 * Files: the CSV log (outer step, meta-loss, gradient norm, inner steps/s, wall seconds), a checkpoint with θ,
 * the outer optimizer's state, every particle's inner state and every PES accumulator (atomic; --resume
 * continues the same trajectory), and θ itself at the end (safetensors, the names of the rule's θ).
 */
#ifndef CELO_META_H
#define CELO_META_H

#include "inst.h"
#include "plan.h"

/* Runs the meta group g of plan (g->kind "meta"; the layout is plan.h's). tds: the plan's task data, one per
 * task (loaded here as needed). 0, or -1 after printing a one-line error. */
int celo_meta_execute(const celo_plan *plan, const celo_group *g, celo_rule_lookup lookup, void *lookup_ctx,
                      celo_task_data **tds, const celo_run_opts *opts);

#endif
