/*
 * pes.h — the meta-gradient estimators of meta-training: Persistent Evolution Strategies (PES; Vicol, Metz,
 * Sohl-Dickstein, ICML 2021) and full-unroll antithetic ES. Pure arithmetic on θ-sized vectors: the caller runs
 * the inner unrolls and hands over their per-slot losses; this module draws the perturbations, keeps PES's
 * persistent accumulators and turns losses into a gradient estimate. docs/meta.md has the conventions and tests.
 *
 * What PES is. An inner training run of H steps is cut into truncations of K steps ("slots"). Each outer step,
 * every particle i draws eps_i = std * N(0, I) over all of θ and unrolls an antithetic pair of persistent inner
 * states, one with θ + eps_i and one with θ - eps_i, for K slots. Plain truncated ES would credit the loss
 * difference to eps_i alone, but the inner state was shaped by the perturbations of all earlier truncations of
 * the same episode; PES keeps their sum xi_i (the accumulator) and credits old-episode losses to xi_i + eps_i.
 * That makes the estimate unbiased for the gradient of the truncation's loss through the whole episode.
 *
 * Conventions (learned_optimization's compute_pes_grad, ../shared research note learned-optimizers.md §4):
 *   hf_t   = (cumsum_{s<=t} done_s) > 0, inclusive: the slot flagged done already counts as "new"
 *   dOld_i = sum_t (L+ - L-)_{i,t} (1 - hf_t) mask_t / sum_t mask_t
 *   dNew_i = sum_t (L+ - L-)_{i,t} hf_t mask_t / sum_t mask_t
 *   grad   = mean_i [dOld_i (xi_i + eps_i) + dNew_i eps_i] / (2 std^2)
 *   xi_i  <- eps_i if hf_{K-1} else xi_i + eps_i          (after the gradient)
 *   loss   = mean_i (masked mean L+_i + masked mean L-_i) / 2
 * The note's pseudo-code adds eps_i to xi_i first and then resets xi_i to eps_i on hf; both say the same thing:
 * the gradient's old part uses xi_i + eps_i, and the stored accumulator ends as above. celo_pes_xi() is the
 * accumulator between truncations (before this truncation's eps is added).
 *
 * Slot mechanics (§1.5 of the note): done_t is set on the training step after which inner_step >= horizon; the
 * next slot is a reset (new task, init and horizon) with loss 0 and mask 0, so an episode of H steps fills H + 1
 * slots. The + and - particle of a pair share data, resets and horizons, hence one done/mask array per pair.
 *
 *     celo_pes *e = celo_pes_new(8, ntheta, 0.01);                 // NULL on bad arguments or out of memory
 *     for (int64_t step = 0; step < steps; step++) {
 *         celo_pes_draw(e, seed, step);
 *         for (int i = 0; i < 8; i++) {                             // theta +- celo_pes_eps(e, i): unroll K slots
 *             ...  lpos[i * K + t] = celo_meta_normalize(loss, 1.5 * log(10)); done[..], mask[..] ...
 *         }
 *         celo_pes_estimate(e, K, lpos, lneg, done, mask, grad, &loss);   // grad: ntheta doubles
 *         ...  outer optimizer step on θ with grad ...
 *     }
 *     celo_pes_free(e);
 *
 * Storage: eps and xi are float32 (θ is float32; 8 particles x |θ| each), every sum is in double. xi rounds to
 * float once per truncation: about 40 roundings per 2000-step episode, a relative 1e-6, far below the noise.
 * Everything is serial and deterministic: the result does not depend on the thread count.
 */
#ifndef CELO_PES_H
#define CELO_PES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct celo_pes celo_pes;

/* nparticles antithetic pairs (1 .. 2^24), θ of n floats, perturbation std > 0. Accumulators start at 0 (every
 * particle begins with the unperturbed θ). NULL on bad arguments or allocation failure. */
celo_pes *celo_pes_new(int nparticles, int64_t n, double std);
void celo_pes_free(celo_pes *e);

int celo_pes_nparticles(const celo_pes *e);
int64_t celo_pes_n(const celo_pes *e);
double celo_pes_std(const celo_pes *e);

/* eps_i = std * N(0, I) for every particle i, a pure function of (seed, outer_step, i): Philox key = seed, stream
 * 2^63 + outer_step * 2^24 + i (the upper half of the stream space, away from the small streams that inits and
 * data use under the same seed). eps_i does not depend on the number of particles. outer_step in [0, 2^39). */
void celo_pes_draw(celo_pes *e, uint64_t seed, int64_t outer_step);
const float *celo_pes_eps(const celo_pes *e, int i);
void celo_pes_set_eps(celo_pes *e, int i, const float *eps); /* tests: inject a perturbation */
/* The persistent accumulator of particle i (n floats): checkpoints read and write it. */
float *celo_pes_xi(celo_pes *e, int i);

/* After one truncation of K slots. Row-major [N][K] arrays: lpos/lneg = normalized per-slot losses of the + and -
 * particle (0 on reset slots), done = the slot's step was flagged is_done (inner_step >= horizon after it), mask =
 * inner_step after the slot != 0 (0 exactly on reset slots). + and - of a pair share done/mask.
 * grad (n doubles) = the mean over particles of [dOld_i * (xi_i + eps_i) + dNew_i * eps_i] / (2 std^2);
 * *meta_loss (may be NULL) = the reported loss; then updates every xi_i. Returns 0, or -1 on bad arguments (NULL
 * pointers, K < 1), in which case nothing is written or updated.
 * A particle whose K slots all have mask 0 (only possible for K = 1) contributes 0 to grad and loss where the
 * reference would divide 0 by 0; its accumulator is still updated. Non-finite losses pass through unchanged. */
int celo_pes_estimate(celo_pes *e, int K, const double *lpos, const double *lneg, const unsigned char *done,
                      const unsigned char *mask, double *grad, double *meta_loss);

/* Full-unroll antithetic ES (the second estimator): one whole episode per particle and outer step; Lpos/Lneg[i] =
 * the masked mean normalized loss of the episode of θ + eps_i / θ - eps_i. grad = mean_i (Lpos_i - Lneg_i) eps_i /
 * (2 std^2); *meta_loss (may be NULL) = mean_i (Lpos_i + Lneg_i) / 2. Accumulators are untouched. 0, or -1. */
int celo_es_estimate(celo_pes *e, const double *Lpos, const double *Lneg, double *grad, double *meta_loss);

/* The per-step meta-loss normalizer of §1.5: clip(loss, 0, hi); NaN and +-inf -> hi (hi = 1.5 ln 10 for 10
 * classes). */
double celo_meta_normalize(double loss, double hi);

#ifdef __cplusplus
}
#endif
#endif
