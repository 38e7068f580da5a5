/* test_pes.c — the PES and full-unroll ES estimators of runtime/pes.h.
 *
 *   1. A hand-computed sequence: N = 2 particles, n = 3, K = 4 slots, three truncations with injected eps, one of
 *      them with an episode end and reset slot mid-truncation; grad, reported loss and accumulators are checked
 *      against numbers worked out by hand in the comments (then a K = 1 truncation whose only slot is a reset for
 *      one particle, and one full-unroll ES estimate).
 *   2. Unbiasedness, statistically: a linear inner problem with quadratic per-step loss, whose meta-gradient is
 *      known exactly. The mean of M = 20000 independent PES estimates (fixed seeds) is z-tested per coordinate.
 *      False-failure rate: 1e-6 per run for a random seed, Bonferroni over the 8 z-tests (2 problems x 4
 *      coordinates): each must have |z| < 5.29, the two-sided normal quantile of 1.25e-7. The same draws fed to a
 *      wrong estimator (accumulators cleared every truncation: truncated ES) must fail the test: that shows power.
 *   3. Antithetic variance: with a large constant loss offset C, the one-sided estimate L(θ+ε) ε / σ² from the
 *      same draws has a variance larger by (C²/σ² + |g|² + g_j²) / (|g|² + g_j²) in coordinate j (5700 to 9900
 *      here); the measured ratio must be within 12 % of that (about 6 standard errors of the ratio at M = 20000),
 *      and the antithetic mean within 6 standard errors of g.
 *   4. celo_meta_normalize on NaN, ±inf, negatives, in-range and large values.
 *   5. Draws: the same (seed, step) gives the same eps, other steps / particles / seeds other eps, eps_i does not
 *      depend on the particle count, and the sample mean and std of eps are 0 and std.
 *   6. Bad arguments: NULL from celo_pes_new, -1 from the estimators, nothing changed.
 * Everything is deterministic (fixed seeds); the statistical thresholds are those a random seed would need. */
#include "check.h"
#include "pes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int near(double got, double want)
{
    return fabs(got - want) <= 1e-12 * (1 + fabs(want));
}

static void check3(const char *what, const double *got, double w0, double w1, double w2)
{
    int ok = near(got[0], w0) && near(got[1], w1) && near(got[2], w2);
    check(ok, "%s: got (%.12g, %.12g, %.12g) want (%.12g, %.12g, %.12g)", what, got[0], got[1], got[2], w0, w1, w2);
}

/* accumulators hold dyadic values here, so they must be exact */
static void check_xi(const char *what, celo_pes *e, int i, double w0, double w1, double w2)
{
    const float *xi = celo_pes_xi(e, i);
    int ok = xi[0] == w0 && xi[1] == w1 && xi[2] == w2;
    check(ok, "%s: xi_%d = (%g, %g, %g) want (%g, %g, %g)", what, i, xi[0], xi[1], xi[2], w0, w1, w2);
}

static void check1(const char *what, double got, double want)
{
    check(near(got, want), "%s: got %.12g want %.12g", what, got, want);
}

/* ---- 1. hand-computed sequence ---- */
static void test_hand(void)
{
    /* std = 0.5, so 1 / (2 std^2) = 2: every particle's bracket below is doubled, then the two are averaged */
    celo_pes *e = celo_pes_new(2, 3, 0.5);
    double g[3], loss;
    check(e != NULL, "celo_pes_new(2, 3, 0.5)");
    if (!e)
        return;
    check_xi("accumulators start at 0", e, 0, 0, 0, 0);

    /* Truncation 1: no resets, xi = 0.
     *   eps0 = (0.5, -1, 0.25), eps1 = (1, 0.5, -0.5)
     *   P0: L+ - L- = 0.5, 0.4, 0, 0.2 -> sum 1.1, dOld = 1.1/4 = 0.275, dNew = 0
     *       g0 = 2 * 0.275 * (xi0 + eps0) = 0.55 * (0.5, -1, 0.25) = (0.275, -0.55, 0.1375)
     *   P1: L+ - L- = 1, 1, 0, -1 -> dOld = 1/4 = 0.25; g1 = 2 * 0.25 * (1, 0.5, -0.5) = (0.5, 0.25, -0.25)
     *   grad = (g0 + g1)/2 = (0.775/2, -0.3/2, -0.1125/2) = (0.3875, -0.15, -0.05625)
     *   loss: P0 (2.8/4 + 1.7/4)/2 = (0.7 + 0.425)/2 = 0.5625; P1 (6/4 + 5/4)/2 = 1.375; mean 0.96875
     *   no hf: xi_i = 0 + eps_i */
    {
        const float e0[3] = {0.5f, -1, 0.25f}, e1[3] = {1, 0.5f, -0.5f};
        const double lp[8] = {1.0, 0.8, 0.6, 0.4, 2, 2, 1, 1}, ln[8] = {0.5, 0.4, 0.6, 0.2, 1, 1, 1, 2};
        const unsigned char dn[8] = {0}, mk[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        celo_pes_set_eps(e, 0, e0), celo_pes_set_eps(e, 1, e1);
        check(celo_pes_estimate(e, 4, lp, ln, dn, mk, g, &loss) == 0, "truncation 1 returns 0");
        check3("truncation 1 grad", g, 0.3875, -0.15, -0.05625);
        check1("truncation 1 loss", loss, 0.96875);
        check_xi("truncation 1", e, 0, 0.5, -1, 0.25);
        check_xi("truncation 1", e, 1, 1, 0.5, -0.5);
    }
    /* Truncation 2: P0's episode ends at slot 1 (done), slot 2 is the reset (loss 0, mask 0), slot 3 is the new
     * episode's first step; P1 goes on without a reset.
     *   eps0 = (-0.5, 0.5, 1), eps1 = (0.25, 0.25, 0.5)
     *   P0: hf = 0, 1, 1, 1 (inclusive); mask = 1, 1, 0, 1 -> sum 3; L+ - L- = 0.4, 0.2, (0), 1.0
     *       dOld = 0.4/3; dNew = (0.2 + 1.0)/3 = 0.4; xi0 + eps0 = (0.5-0.5, -1+0.5, 0.25+1) = (0, -0.5, 1.25)
     *       g0 = 2 * [(0.4/3)(0, -0.5, 1.25) + 0.4 (-0.5, 0.5, 1)] = 2 * [(0, -0.2/3, 0.5/3) + (-0.2, 0.2, 0.4)]
     *          = 2 * (-0.2, 0.4/3, 1.7/3) = (-0.4, 0.8/3, 3.4/3)
     *   P1: L+ - L- = 0.5 x 4 -> dOld = 0.5; xi1 + eps1 = (1.25, 0.75, 0); g1 = 2 * 0.5 * that = (1.25, 0.75, 0)
     *   grad = ((-0.4 + 1.25)/2, (0.8/3 + 2.25/3)/2, (3.4/3 + 0)/2) = (0.425, 3.05/6, 1.7/3)
     *   loss: P0 L+ = (1 + 0.9 + 2)/3 = 3.9/3, L- = (0.6 + 0.7 + 1)/3 = 2.3/3, (L+ + L-)/2 = 6.2/6;
     *         P1 (1 + 0.5)/2 = 4.5/6; mean (6.2 + 4.5)/12 = 10.7/12
     *   P0 has hf at the last slot: xi0 = eps0 = (-0.5, 0.5, 1); P1: xi1 = (1.25, 0.75, 0) */
    {
        const float e0[3] = {-0.5f, 0.5f, 1}, e1[3] = {0.25f, 0.25f, 0.5f};
        const double lp[8] = {1.0, 0.9, 0, 2.0, 1, 1, 1, 1}, ln[8] = {0.6, 0.7, 0, 1.0, 0.5, 0.5, 0.5, 0.5};
        const unsigned char dn[8] = {0, 1, 0, 0, 0, 0, 0, 0}, mk[8] = {1, 1, 0, 1, 1, 1, 1, 1};
        celo_pes_set_eps(e, 0, e0), celo_pes_set_eps(e, 1, e1);
        check(celo_pes_estimate(e, 4, lp, ln, dn, mk, g, &loss) == 0, "truncation 2 returns 0");
        check3("truncation 2 grad (reset mid-truncation)", g, 0.425, 3.05 / 6, 1.7 / 3);
        check1("truncation 2 loss", loss, 10.7 / 12);
        check_xi("truncation 2 (reset: xi = eps)", e, 0, -0.5, 0.5, 1);
        check_xi("truncation 2", e, 1, 1.25, 0.75, 0);
    }
    /* Truncation 3: P0 continues the episode begun in truncation 2; P1's episode ends at the last slot.
     *   eps0 = (1, 1, -1), eps1 = (-1, 0.5, 0.25)
     *   P0: L+ - L- = 1, 0, -1, 1 -> dOld = 1/4; xi0 + eps0 = (0.5, 1.5, 0); g0 = 2 * 0.25 * that = (0.25, 0.75, 0)
     *   P1: hf = 0, 0, 0, 1; L+ - L- = 0, 1, 0, 2 -> dOld = 1/4, dNew = 2/4; xi1 + eps1 = (0.25, 1.25, 0.25)
     *       g1 = 2 * [0.25 (0.25, 1.25, 0.25) + 0.5 (-1, 0.5, 0.25)] = 2 * [(0.0625, 0.3125, 0.0625) + (-0.5, 0.25,
     *            0.125)] = 2 * (-0.4375, 0.5625, 0.1875) = (-0.875, 1.125, 0.375)
     *   grad = ((0.25 - 0.875)/2, (0.75 + 1.125)/2, 0.375/2) = (-0.3125, 0.9375, 0.1875)
     *   loss: P0 (8/4 + 7/4)/2 = 1.875; P1 (6/4 + 3/4)/2 = 1.125; mean 1.5
     *   xi0 = (0.5, 1.5, 0) (no hf); xi1 = eps1 = (-1, 0.5, 0.25) (hf at the last slot) */
    {
        const float e0[3] = {1, 1, -1}, e1[3] = {-1, 0.5f, 0.25f};
        const double lp[8] = {3, 2, 1, 2, 1, 1, 1, 3}, ln[8] = {2, 2, 2, 1, 1, 0, 1, 1};
        const unsigned char dn[8] = {0, 0, 0, 0, 0, 0, 0, 1}, mk[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        celo_pes_set_eps(e, 0, e0), celo_pes_set_eps(e, 1, e1);
        check(celo_pes_estimate(e, 4, lp, ln, dn, mk, g, &loss) == 0, "truncation 3 returns 0");
        check3("truncation 3 grad (done at the last slot)", g, -0.3125, 0.9375, 0.1875);
        check1("truncation 3 loss", loss, 1.5);
        check_xi("truncation 3", e, 0, 0.5, 1.5, 0);
        check_xi("truncation 3 (done at the last slot: xi = eps)", e, 1, -1, 0.5, 0.25);
    }
    /* K = 1, same eps: P0's only slot is a reset (mask 0), P1 trains.
     *   P0: no unmasked slot -> contributes 0 to grad and loss;
     *       no hf: xi0 = (0.5, 1.5, 0) + (1, 1, -1) = (1.5, 2.5, -1)
     *   P1: L+ - L- = 2 - 1 = 1 -> dOld = 1; xi1 + eps1 = (-2, 1, 0.5); g1 = 2 * (-2, 1, 0.5) = (-4, 2, 1)
     *   grad = g1/2 = (-2, 1, 0.5); loss = (0 + (2 + 1)/2)/2 = 0.75; xi1 = (-2, 1, 0.5) */
    {
        const double lp[2] = {0, 2}, ln[2] = {0, 1};
        const unsigned char dn[2] = {0, 0}, mk[2] = {0, 1};
        check(celo_pes_estimate(e, 1, lp, ln, dn, mk, g, &loss) == 0, "K = 1 returns 0");
        check3("K = 1 grad (P0 all masked)", g, -2, 1, 0.5);
        check1("K = 1 loss", loss, 0.75);
        check_xi("K = 1", e, 0, 1.5, 2.5, -1);
        check_xi("K = 1", e, 1, -2, 1, 0.5);
    }
    /* Full-unroll ES with the same eps: Lpos = (1.5, 0.5), Lneg = (0.5, 1.0)
     *   grad = 2 * [1 * (1, 1, -1) + (-0.5) * (-1, 0.5, 0.25)] / 2 = (1 + 0.5, 1 - 0.25, -1 - 0.125)
     *        = (1.5, 0.75, -1.125)
     *   loss = ((1.5 + 0.5)/2 + (0.5 + 1.0)/2)/2 = (1 + 0.75)/2 = 0.875; accumulators untouched */
    {
        const double Lp[2] = {1.5, 0.5}, Ln[2] = {0.5, 1.0};
        check(celo_es_estimate(e, Lp, Ln, g, &loss) == 0, "ES returns 0");
        check3("ES grad", g, 1.5, 0.75, -1.125);
        check1("ES loss", loss, 0.875);
        check_xi("ES leaves accumulators", e, 1, -2, 1, 0.5);
    }
    celo_pes_free(e);
}

/* ---- 2. unbiasedness ----
 * Inner problem per coordinate j: w <- w - a_j w + θ_j, per-step loss ½‖w‖² at the pre-update w (as the reference
 * records the training loss); restarts at w0. The antithetic difference of a quadratic is exactly linear in the
 * perturbations, so Gaussian smoothing moves nothing and E[PES] is the exact gradient of the truncation's mean loss
 * through every step of the episode, summed here over UT truncations. */
enum { UN = 4, UK = 10, UT = 4, UNP = 8, UM = 20000 };
static const double ua[UN] = {0.1, 0.2, 0.05, 0.3};
static const double uw0[UN] = {1.0, -1.0, 0.5, 2.0};
static const double uth[UN] = {0.3, -0.2, 0.1, 0.05};

typedef struct {
    double w[UN];
    int step, horizon, done;
} inner;

static void inner_init(inner *s, int offset, int horizon)
{
    memcpy(s->w, uw0, sizeof uw0);
    s->step = offset, s->horizon = horizon, s->done = 0;
}

/* One slot under θ' = th: a reset if the previous step finished the episode, else a training step (§1.5). */
static void slot(inner *s, const double *th, double *loss, unsigned char *done, unsigned char *mask)
{
    if (s->done) {
        inner_init(s, 0, s->horizon);
        *loss = 0, *done = 0, *mask = 0;
        return;
    }
    double l = 0;
    for (int j = 0; j < UN; j++) {
        l += 0.5 * s->w[j] * s->w[j];
        s->w[j] += -ua[j] * s->w[j] + th[j];
    }
    s->done = ++s->step >= s->horizon;
    *loss = l, *done = (unsigned char)s->done, *mask = 1;
}

/* The expectations, from one unperturbed run per particle. s_all = dw/dθ through every step of the episode, s_cur
 * through this truncation's steps only. Slot t's loss ½‖w‖² has the exact derivative w s_all; crediting it to this
 * truncation's eps alone (truncated ES, and the reference convention for hf slots) sees only w s_cur. */
static void expectations(const int *offsets, int horizon, double *exact, double *conv, double *tes)
{
    memset(exact, 0, UN * sizeof *exact), memset(conv, 0, UN * sizeof *conv), memset(tes, 0, UN * sizeof *tes);
    for (int i = 0; i < UNP; i++) {
        inner s;
        inner_init(&s, offsets[i], horizon);
        double sall[UN] = {0}, scur[UN];
        for (int tau = 0; tau < UT; tau++) {
            double ex[UN] = {0}, cv[UN] = {0}, tr[UN] = {0};
            int count = 0, hf = 0;
            memset(scur, 0, sizeof scur);
            for (int t = 0; t < UK; t++) {
                if (s.done) {
                    inner_init(&s, 0, horizon);
                    memset(sall, 0, sizeof sall), memset(scur, 0, sizeof scur);
                    continue;
                }
                double w[UN];
                memcpy(w, s.w, sizeof w);
                s.done = ++s.step >= horizon;
                hf |= s.done;
                count++;
                for (int j = 0; j < UN; j++) {
                    ex[j] += w[j] * sall[j];
                    cv[j] += w[j] * (hf ? scur[j] : sall[j]);
                    tr[j] += w[j] * scur[j];
                    s.w[j] += -ua[j] * s.w[j] + uth[j];
                    sall[j] += -ua[j] * sall[j] + 1;
                    scur[j] += -ua[j] * scur[j] + 1;
                }
            }
            for (int j = 0; j < UN; j++) {
                exact[j] += ex[j] / count / UNP;
                conv[j] += cv[j] / count / UNP;
                tes[j] += tr[j] / count / UNP;
            }
        }
    }
}

/* One meta-gradient sample for `seed`: UT truncations from fresh inner states, the PES estimates summed into gp;
 * the same losses and eps through truncated ES (accumulators cleared before every truncation) summed into gt. */
static int sample(celo_pes *e, celo_pes *tes, const int *offsets, int horizon, uint64_t seed, double *gp, double *gt)
{
    inner pos[UNP], neg[UNP];
    double lp[UNP * UK], ln[UNP * UK], g[UN], loss;
    unsigned char dn[UNP * UK], mk[UNP * UK], dn2, mk2;
    int same = 1;
    for (int i = 0; i < UNP; i++) {
        inner_init(&pos[i], offsets[i], horizon), neg[i] = pos[i];
        memset(celo_pes_xi(e, i), 0, UN * sizeof(float));
    }
    memset(gp, 0, UN * sizeof *gp), memset(gt, 0, UN * sizeof *gt);
    for (int tau = 0; tau < UT; tau++) {
        celo_pes_draw(e, seed, tau);
        for (int i = 0; i < UNP; i++) {
            const float *eps = celo_pes_eps(e, i);
            double thp[UN], thn[UN];
            for (int j = 0; j < UN; j++)
                thp[j] = uth[j] + eps[j], thn[j] = uth[j] - eps[j];
            for (int t = 0; t < UK; t++) {
                int k = i * UK + t;
                slot(&pos[i], thp, &lp[k], &dn[k], &mk[k]);
                slot(&neg[i], thn, &ln[k], &dn2, &mk2);
                same &= dn2 == dn[k] && mk2 == mk[k];
            }
            celo_pes_set_eps(tes, i, eps);
            memset(celo_pes_xi(tes, i), 0, UN * sizeof(float));
        }
        celo_pes_estimate(e, UK, lp, ln, dn, mk, g, &loss);
        for (int j = 0; j < UN; j++)
            gp[j] += g[j];
        celo_pes_estimate(tes, UK, lp, ln, dn, mk, g, &loss);
        for (int j = 0; j < UN; j++)
            gt[j] += g[j];
    }
    return same;
}

/* the |z| a standard normal exceeds with probability p (two-sided), by bisection on erfc */
static double z_two_sided(double p)
{
    double lo = 0, hi = 40;
    for (int k = 0; k < 200; k++) {
        double mid = (lo + hi) / 2;
        if (erfc(mid / sqrt(2.0)) > p)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

static void unbiased(const char *name, const int *offsets, int horizon, uint64_t seed0, int nreset, double zmax)
{
    celo_pes *e = celo_pes_new(UNP, UN, 0.01), *tes = celo_pes_new(UNP, UN, 0.01);
    check(e && tes, "%s: celo_pes_new", name);
    if (!e || !tes) {
        celo_pes_free(e), celo_pes_free(tes);
        return;
    }
    double exact[UN], conv[UN], tes_exp[UN];
    expectations(offsets, horizon, exact, conv, tes_exp);
    double sp[UN] = {0}, sp2[UN] = {0}, st[UN] = {0}, st2[UN] = {0};
    int same = 1;
    for (int m = 0; m < UM; m++) {
        double gp[UN], gt[UN];
        same &= sample(e, tes, offsets, horizon, seed0 + (uint64_t)m, gp, gt);
        for (int j = 0; j < UN; j++) {
            sp[j] += gp[j], sp2[j] += gp[j] * gp[j];
            st[j] += gt[j], st2[j] += gt[j] * gt[j];
        }
    }
    check(same, "%s: + and - particles share done and mask", name);
    double zp = 0, zt = 0;
    for (int j = 0; j < UN; j++) {
        double mp = sp[j] / UM, sep = sqrt((sp2[j] / UM - mp * mp) / (UM - 1));
        double mt = st[j] / UM, set = sqrt((st2[j] / UM - mt * mt) / (UM - 1));
        /* the expectation PES must meet: the exact gradient, or without resets in the window the same thing */
        double z = (mp - conv[j]) / sep, zw = (mt - conv[j]) / set;
        printf("     %s coord %d: exact %.6f (PES convention %.6f, truncated ES %.6f); PES %.6f +- %.6f z = %+.2f; "
               "truncated ES %.6f +- %.6f z = %+.1f\n",
               name, j, exact[j], conv[j], tes_exp[j], mp, sep, z, mt, set, zw);
        check(fabs(z) < zmax, "%s coord %d: PES mean within %.2f standard errors of its expectation (z = %+.2f)", name,
              j, zmax, z);
        zp = fmax(zp, fabs(z)), zt = fmax(zt, fabs(zw));
    }
    if (!nreset)
        for (int j = 0; j < UN; j++)
            check(conv[j] == exact[j], "%s coord %d: no reset, so PES's expectation is the exact gradient", name, j);
    else /* the convention's bias (docs/meta.md): done slots credited to eps alone; a measurement, not a check */
        for (int j = 0; j < UN; j++)
            printf("     %s coord %d: PES mean against the exact gradient: z = %+.1f (bias %+.1f %%)\n", name, j,
                   (sp[j] / UM - exact[j]) / sqrt((sp2[j] / UM - sp[j] / UM * sp[j] / UM) / (UM - 1)),
                   100 * (conv[j] / exact[j] - 1));
    check(zt > zmax, "%s: truncated ES (same draws, no accumulation) fails the test: max |z| = %.1f > %.2f", name, zt,
          zmax);
    printf("     %s: max |z| PES %.2f, truncated ES %.1f\n", name, zp, zt);
    celo_pes_free(e), celo_pes_free(tes);
}

static void test_unbiased(void)
{
    const double zmax = z_two_sided(1e-6 / (2 * UN));
    check(fabs(zmax - 5.29) < 0.01, "z threshold for 1e-6 over %d tests: %.3f", 2 * UN, zmax);
    /* A: one episode spans the whole window (horizon 1000): no done, no reset */
    const int off_a[UNP] = {0, 5, 10, 20, 50, 100, 200, 500};
    unbiased("no reset", off_a, 1000, 1000, 0, zmax);
    /* B: horizon 12 (13 slots per episode): dones at every slot position, also at slot 0 (offset 11) and at the
     * last slot (offset 2, then a reset as the next truncation's first slot). The expectation is the reference
     * convention's, which credits each episode's done slot to the current eps alone. */
    const int off_b[UNP] = {0, 2, 3, 5, 6, 7, 9, 11};
    unbiased("resets", off_b, 12, 500000, 1, zmax);
}

/* ---- 3. antithetic variance ---- */
static void test_antithetic(void)
{
    enum { AN = 4, AP = 4, AM = 20000 };
    const double C = log(10.0), sd = 0.01, gl[AN] = {1.0, -0.5, 0.25, 2.0};
    celo_pes *e = celo_pes_new(AP, AN, sd);
    check(e != NULL, "antithetic: celo_pes_new");
    if (!e)
        return;
    double sa[AN] = {0}, sa2[AN] = {0}, so[AN] = {0}, so2[AN] = {0}, g2 = 0;
    for (int j = 0; j < AN; j++)
        g2 += gl[j] * gl[j];
    for (int m = 0; m < AM; m++) {
        /* L(θ) = C + g·θ at θ = 0 */
        double Lp[AP], Ln[AP], g[AN], one[AN] = {0};
        celo_pes_draw(e, 4242, m);
        for (int i = 0; i < AP; i++) {
            const float *eps = celo_pes_eps(e, i);
            double d = 0;
            for (int j = 0; j < AN; j++)
                d += gl[j] * eps[j];
            Lp[i] = C + d, Ln[i] = C - d;
            for (int j = 0; j < AN; j++)
                one[j] += Lp[i] * eps[j] / (sd * sd) / AP;
        }
        celo_es_estimate(e, Lp, Ln, g, NULL);
        for (int j = 0; j < AN; j++) {
            sa[j] += g[j], sa2[j] += g[j] * g[j];
            so[j] += one[j], so2[j] += one[j] * one[j];
        }
    }
    for (int j = 0; j < AN; j++) {
        double va = sa2[j] / AM - (sa[j] / AM) * (sa[j] / AM), vo = so2[j] / AM - (so[j] / AM) * (so[j] / AM);
        double want = (C * C / (sd * sd) + g2 + gl[j] * gl[j]) / (g2 + gl[j] * gl[j]);
        check(fabs(vo / va / want - 1) < 0.12,
              "antithetic coord %d: var one-sided / var antithetic = %.0f, expected %.0f (%.1f %% off)", j, vo / va,
              want, 100 * (vo / va / want - 1));
        check(fabs(sa[j] / AM - gl[j]) < 6 * sqrt(va / AM), "antithetic coord %d: mean %.4f, gradient %.4f", j,
              sa[j] / AM, gl[j]);
    }
    celo_pes_free(e);
}

/* ---- 4. normalizer ---- */
static void test_normalize(void)
{
    const double hi = 1.5 * log(10.0);
    check(celo_meta_normalize(NAN, hi) == hi, "normalize NaN -> hi");
    check(celo_meta_normalize(INFINITY, hi) == hi, "normalize +inf -> hi");
    check(celo_meta_normalize(-INFINITY, hi) == hi, "normalize -inf -> hi");
    check(celo_meta_normalize(-0.5, hi) == 0, "normalize -0.5 -> 0");
    check(celo_meta_normalize(0.7, hi) == 0.7, "normalize 0.7 -> 0.7");
    check(celo_meta_normalize(hi, hi) == hi, "normalize hi -> hi");
    check(celo_meta_normalize(100, hi) == hi, "normalize 100 -> hi");
    check(celo_meta_normalize(1e300, hi) == hi, "normalize 1e300 -> hi");
}

/* ---- 5. draws ---- */
static void test_draw(void)
{
    enum { DN = 200000 };
    const double sd = 0.01;
    celo_pes *a = celo_pes_new(3, DN, sd), *b = celo_pes_new(5, DN, sd);
    float *keep = malloc(DN * sizeof *keep);
    check(a && b && keep, "draw: allocations");
    if (!a || !b || !keep) {
        celo_pes_free(a), celo_pes_free(b), free(keep);
        return;
    }
    celo_pes_draw(a, 77, 12);
    memcpy(keep, celo_pes_eps(a, 1), DN * sizeof *keep);
    celo_pes_draw(a, 77, 13);
    int differ = 0, differ_i = 0, differ_seed = 0;
    for (int j = 0; j < DN; j++)
        differ += keep[j] != celo_pes_eps(a, 1)[j];
    celo_pes_draw(a, 77, 12);
    check(!memcmp(keep, celo_pes_eps(a, 1), DN * sizeof *keep), "same (seed, step) again: identical eps");
    check(differ > DN - 100, "another step: other eps (%d of %d differ)", differ, DN);
    for (int j = 0; j < DN; j++)
        differ_i += celo_pes_eps(a, 0)[j] != celo_pes_eps(a, 1)[j];
    check(differ_i > DN - 100, "another particle: other eps (%d of %d differ)", differ_i, DN);
    celo_pes_draw(b, 77, 12);
    check(!memcmp(keep, celo_pes_eps(b, 1), DN * sizeof *keep), "eps_1 does not depend on the particle count");
    celo_pes_draw(b, 78, 12);
    for (int j = 0; j < DN; j++)
        differ_seed += keep[j] != celo_pes_eps(b, 1)[j];
    check(differ_seed > DN - 100, "another seed: other eps (%d of %d differ)", differ_seed, DN);
    /* moments over 3 particles x 2e5: SE of the mean sd/775 = 1.3e-5, of the std 0.09 % */
    double s = 0, s2 = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < DN; j++) {
            double x = celo_pes_eps(a, i)[j];
            s += x, s2 += x * x;
        }
    double mean = s / (3.0 * DN), std = sqrt(s2 / (3.0 * DN) - mean * mean);
    check(fabs(mean) < 1e-4, "eps mean %.3g ~ 0", mean);
    check(fabs(std / sd - 1) < 0.006, "eps std %.6f ~ %.6f", std, sd);
    celo_pes_free(a), celo_pes_free(b), free(keep);
}

/* ---- 6. bad arguments ---- */
static void test_args(void)
{
    check(!celo_pes_new(0, 3, 0.1), "new: 0 particles -> NULL");
    check(!celo_pes_new(2, 0, 0.1), "new: n = 0 -> NULL");
    check(!celo_pes_new(2, 3, 0), "new: std 0 -> NULL");
    check(!celo_pes_new(2, 3, -1), "new: std < 0 -> NULL");
    check(!celo_pes_new(2, 3, NAN), "new: std NaN -> NULL");
    check(!celo_pes_new(2, INT64_MAX, 0.1), "new: size overflow -> NULL");
    celo_pes *e = celo_pes_new(1, 2, 0.1);
    double lp[1] = {1}, ln[1] = {0}, g[2] = {7, 7}, loss = 7;
    unsigned char dn[1] = {0}, mk[1] = {1};
    check(e != NULL, "new(1, 2, 0.1)");
    if (!e)
        return;
    celo_pes_xi(e, 0)[0] = 3;
    check(celo_pes_estimate(e, 0, lp, ln, dn, mk, g, &loss) == -1, "estimate: K = 0 -> -1");
    check(celo_pes_estimate(e, 1, NULL, ln, dn, mk, g, &loss) == -1, "estimate: lpos NULL -> -1");
    check(celo_pes_estimate(e, 1, lp, ln, dn, NULL, g, &loss) == -1, "estimate: mask NULL -> -1");
    check(celo_pes_estimate(NULL, 1, lp, ln, dn, mk, g, &loss) == -1, "estimate: no estimator -> -1");
    check(celo_es_estimate(e, lp, NULL, g, &loss) == -1, "ES: Lneg NULL -> -1");
    check(g[0] == 7 && g[1] == 7 && loss == 7 && celo_pes_xi(e, 0)[0] == 3, "refused calls change nothing");
    check(celo_pes_estimate(e, 1, lp, ln, dn, mk, g, NULL) == 0, "estimate: meta_loss may be NULL");
    celo_pes_free(e);
    celo_pes_free(NULL);
}

int main(void)
{
    test_hand();
    test_unbiased();
    test_antithetic();
    test_normalize();
    test_draw();
    test_args();
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails != 0;
}
