/* temporary stand-in for testing meta.c only; not committed */
#include "pes.h"
#include "rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
struct celo_pes { int N; int64_t n; double std; float *eps, *xi; };
celo_pes *celo_pes_new(int N, int64_t n, double std){ celo_pes *e=calloc(1,sizeof *e); e->N=N;e->n=n;e->std=std; e->eps=calloc((size_t)(N*n),4); e->xi=calloc((size_t)(N*n),4); return e;}
void celo_pes_free(celo_pes *e){ if(!e)return; free(e->eps); free(e->xi); free(e);}
void celo_pes_draw(celo_pes *e, uint64_t seed, int64_t t){ for(int i=0;i<e->N;i++){celo_rng r; celo_rng_init(&r, seed ^ (uint64_t)t*0x9e3779b97f4a7c15ull, (uint64_t)i); for(int64_t k=0;k<e->n;k++) e->eps[i*e->n+k]=(float)(e->std*celo_rng_normal(&r));}}
const float *celo_pes_eps(const celo_pes *e, int i){return e->eps+i*e->n;}
void celo_pes_set_eps(celo_pes *e, int i, const float *x){memcpy(e->eps+i*e->n,x,(size_t)e->n*4);}
float *celo_pes_xi(celo_pes *e, int i){return e->xi+i*e->n;}
int celo_pes_estimate(celo_pes *e, int K, const double *lp, const double *ln, const unsigned char *done, const unsigned char *mask, double *grad, double *loss){
  memset(grad,0,sizeof(double)*(size_t)e->n); double L=0;
  for(int i=0;i<e->N;i++){ double so=0,sn=0,m=0,lpp=0,lnn=0; int hf=0;
    for(int t=0;t<K;t++){ hf|=done[i*K+t]; double d=(lp[i*K+t]-ln[i*K+t])*mask[i*K+t]; if(hf) sn+=d; else so+=d; m+=mask[i*K+t]; lpp+=lp[i*K+t]*mask[i*K+t]; lnn+=ln[i*K+t]*mask[i*K+t];}
    if(m>0){so/=m;sn/=m;lpp/=m;lnn/=m;}
    L+=(lpp+lnn)/2;
    float *xi=e->xi+i*e->n; const float *ep=e->eps+i*e->n;
    for(int64_t k=0;k<e->n;k++){ grad[k]+=(so*(xi[k]+ep[k])+sn*ep[k])/(2*e->std*e->std)/e->N; xi[k]= hf? ep[k] : xi[k]+ep[k]; }
  }
  *loss=L/e->N; return 0;}
int celo_es_estimate(celo_pes *e, const double *Lp, const double *Ln, double *grad, double *loss){
  memset(grad,0,sizeof(double)*(size_t)e->n); double L=0;
  for(int i=0;i<e->N;i++){ L+=(Lp[i]+Ln[i])/2; for(int64_t k=0;k<e->n;k++) grad[k]+=(Lp[i]-Ln[i])*e->eps[i*e->n+k]/(2*e->std*e->std)/e->N;}
  *loss=L/e->N; return 0;}
double celo_meta_normalize(double L, double hi){ if(!isfinite(L)) return hi; return L<0?0:L>hi?hi:L;}
