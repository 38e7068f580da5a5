#include <stdint.h>
typedef struct celo_pes celo_pes;
celo_pes *celo_pes_new(int nparticles, int64_t n, double std);
void celo_pes_free(celo_pes *e);
void celo_pes_draw(celo_pes *e, uint64_t seed, int64_t outer_step);
const float *celo_pes_eps(const celo_pes *e, int i);
void celo_pes_set_eps(celo_pes *e, int i, const float *eps);
float *celo_pes_xi(celo_pes *e, int i);
int celo_pes_estimate(celo_pes *e, int K, const double *lpos, const double *lneg, const unsigned char *done,
                      const unsigned char *mask, double *grad, double *meta_loss);
int celo_es_estimate(celo_pes *e, const double *Lpos, const double *Lneg, double *grad, double *meta_loss);
double celo_meta_normalize(double loss, double hi);
