/*
 * linattn.c — the sizes of causal linear attention (nn.h), shared by the float and double builds of
 * linattn.inc: feature dimensions, tensor counts, and the layouts of the saved, scratch and state buffers.
 */
#include "../nn.h"

int celo_linattn_feature_dim(celo_feature_map f, int hs)
{
    return f == CELO_FEATURE_HEDGEHOG ? 2 * hs : hs;
}

int celo_linattn_ntensors(celo_feature_map f)
{
    switch (f) {
    case CELO_FEATURE_MLP: return 8;      /* + feature_q.weight, .bias, feature_k.weight, .bias */
    case CELO_FEATURE_HEDGEHOG: return 6; /* + feature_q.weight, feature_k.weight */
    default: return 4;
    }
}

/* the chunk length actually used: at most T (a longer chunk would only waste scratch) */
static int64_t chunk_of(const celo_linattn_dims *d)
{
    int L = d->chunk > 0 ? d->chunk : CELO_LINATTN_CHUNK;
    return L < d->T ? L : d->T;
}

int64_t celo_linattn_saved_size(const celo_linattn_dims *d)
{
    int64_t R = (int64_t)d->B * d->T, D = celo_linattn_feature_dim(d->feature, d->C / d->nh);
    int64_t BH = (int64_t)d->B * d->nh;
    return R * 3 * d->C + BH * 2 * d->T * D + R * d->C + BH * d->T;
}

int64_t celo_linattn_work_size(const celo_linattn_dims *d)
{
    int64_t hs = d->C / d->nh, D = celo_linattn_feature_dim(d->feature, (int)hs), L = chunk_of(d);
    return (int64_t)d->B * d->nh * (D * hs + D + 2 * L * L);
}

int64_t celo_linattn_state_size(const celo_linattn_dims *d)
{
    int64_t hs = d->C / d->nh, D = celo_linattn_feature_dim(d->feature, (int)hs);
    return (int64_t)d->B * d->nh * D * (hs + 1);
}

int64_t celo_linattn_step_work_size(const celo_linattn_dims *d)
{
    int64_t hs = d->C / d->nh, D = celo_linattn_feature_dim(d->feature, (int)hs);
    return (int64_t)d->B * 4 * d->C + 2 * D; /* qkv [B, 3C], out [B, C], phi(q), phi(k) of one head */
}
