/* mamba_from.c — placeholder until the Mamba mixer exists (nn.h celo_model_mamba_from). */
#include "../errmsg.h"
#include "../nn.h"

int celo_model_mamba_from(celo_model *dst, const celo_model *src, celo_mamba_from how, char *err, size_t errlen)
{
    (void)dst, (void)src, (void)how;
    celo_seterr(err, errlen, "the Mamba mixer is not built yet");
    return -1;
}
