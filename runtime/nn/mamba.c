/*
 * mamba.c — the sizes of the Mamba mixer (nn.h), shared by the float and double builds of mamba.inc: defaults,
 * tensor counts, and the layouts of the saved, scratch and state buffers.
 */
#include "nn_internal.h"

void celo_mamba_shape_of(const celo_mamba_dims *d, celo_mamba_shape *s)
{
    s->B = d->B, s->T = d->T, s->C = d->C, s->nh = d->nh, s->normalize = d->normalize != 0;
    s->N = d->N > 0 ? d->N : d->C / d->nh;
    s->K = d->K > 0 ? d->K : 4;
    s->E = d->expand > 0 ? d->expand : 1;
    s->Di = s->E * d->C;
    s->P = s->Di / d->nh;
    s->Nf = celo_linattn_feature_dim(d->feature, s->N);
    s->Pv = s->P + s->normalize; /* the all-ones value channel as one more column */
    s->W = 2 * s->Di + 2 * d->nh * s->N + d->nh;
    s->Cx = s->Di + 2 * d->nh * s->N;
    int L = d->chunk > 0 ? d->chunk : CELO_MAMBA_CHUNK;
    s->L = L < d->T ? L : (d->T > 0 ? d->T : 1); /* a longer chunk would only waste scratch */
    s->nt = celo_mamba_ntensors(d->feature);
    int64_t R = (int64_t)d->B * d->T, BH = (int64_t)d->B * d->nh;
    s->proj = 0;
    s->xbc = s->proj + R * s->W;
    s->phi = s->xbc + R * s->Cx;
    s->out = s->phi + (d->feature == CELO_FEATURE_IDENTITY ? 0 : BH * 2 * d->T * s->Nf); /* identity: in xbc */
    s->den = s->out + R * s->Di;
    s->og = s->den + BH * d->T;
    s->xa = s->og + R * (s->Di + 1);
    s->saved = s->xa + R * (s->C + 1);
    /* per head: cum [L + 1] doubles (2 L + 2 reals), V, Y / dY, dV [T, Pv], delta, ell, dell [T], H / R [Nf, P + 1]
     * (the chunked form's [Nf, Pv], the sequential scan's H and z), A, dA [L, L], tmp [L, Nf + Pv], tr [L, Nf + Pv]
     * (a chunk's operands transposed), lam [2 L], the head's partial gradients of A_log and D; in steps of 16 reals
     * so that every head's block starts 64-byte aligned */
    int64_t T = d->T, Lc = s->L;
    s->wbh = 2 * (Lc + 1) + 3 * T * s->Pv + 3 * T + (int64_t)s->Nf * (s->P + 1) + 2 * Lc * Lc +
             2 * Lc * (s->Nf + s->Pv) + 2 * Lc + 2;
    s->wbh = (s->wbh + 15) / 16 * 16;
    s->convw = BH * s->wbh; /* then conv.weight and its gradient transposed, [K, Cx] each, then the conv backward's
                             * partial sums, [K + 1, Cx] per block of MB_CONV_BLOCK rows */
    int64_t nblk = (R + MB_CONV_BLOCK - 1) / MB_CONV_BLOCK, wi = (int64_t)s->W * (s->C + 1);
    int64_t wo = (int64_t)s->C * (s->Di + 1);
    s->augw = s->convw + 2 * (int64_t)s->K * s->Cx + nblk * (s->K + 1) * s->Cx;
    s->work = s->augw + wi + wo; /* in_proj's and out_proj's [weight | bias] (backward: a gradient's) */
}

int celo_mamba_ntensors(celo_feature_map f)
{
    return 8 + celo_linattn_ntensors(f) - 4; /* in_proj, conv, A_log, D, out_proj: 8, then the maps' */
}

int64_t celo_mamba_saved_size(const celo_mamba_dims *d)
{
    celo_mamba_shape s;
    celo_mamba_shape_of(d, &s);
    return s.saved;
}

int64_t celo_mamba_work_size(const celo_mamba_dims *d)
{
    celo_mamba_shape s;
    celo_mamba_shape_of(d, &s);
    return s.work;
}

int64_t celo_mamba_state_size(const celo_mamba_dims *d)
{
    celo_mamba_shape s;
    celo_mamba_shape_of(d, &s);
    return (int64_t)d->B * ((int64_t)(s.K - 1) * s.Cx + (int64_t)d->nh * s.Nf * (s.P + 1));
}

int64_t celo_mamba_step_work_size(const celo_mamba_dims *d)
{
    celo_mamba_shape s;
    celo_mamba_shape_of(d, &s);
    /* proj [B, W], xbc [B, Cx], out, og [B, Di], phi_q, phi_k of one head */
    return (int64_t)d->B * (s.W + s.Cx + 2 * s.Di) + 2 * s.Nf;
}
