/* backend.c — the back-end tables (backend.h): llvm and interp over celo_step on the CPU, opencl over clrun.c.
 *
 * The CPU back ends keep the state in a celo_state in host memory, so state_get/state_put cost nothing and a step
 * is exactly celo_step (or celo_step_team): the numbers of a run do not change with the table in between. The
 * OpenCL back end keeps one celo_cl_rule per tensor (device buffers for its element-wise state) and, since the
 * parameters belong to the host's model, steps p in host memory (celo_cl_step_host). */
#include "backend.h"

#include "clrun.h"
#include "errmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct celo_bprog {
    const celo_program *prog;
    int interp;  /* CPU: every pass through the interpreter */
    char *src;   /* opencl: the kernels' source, copied for each tensor */
    char **vsrc; /* opencl, a rule with classes: the source of each variant (src is NULL) */
};

struct celo_bstate {
    const celo_bprog *bp;
    celo_state *st;   /* CPU */
    celo_cl_rule *cl; /* opencl */
};

static celo_bprog *bprog_new(const celo_program *prog, int interp, char *src, char *err, size_t errlen)
{
    celo_bprog *bp = calloc(1, sizeof *bp);
    if (!bp) {
        free(src);
        celo_seterr(err, errlen, "out of memory");
        return NULL;
    }
    bp->prog = prog;
    bp->interp = interp;
    bp->src = src;
    return bp;
}

static void bprog_free(celo_bprog *bp)
{
    if (!bp)
        return;
    free(bp->src);
    for (int v = 0; bp->vsrc && v < bp->prog->nvariant; v++)
        free(bp->vsrc[v]);
    free(bp->vsrc);
    free(bp);
}

/* ---- CPU: llvm and interp ---- */
static celo_bprog *cpu_compile_llvm(const celo_backend *be, const celo_program *prog, char *err, size_t errlen)
{
    (void)be;
    return bprog_new(prog, 0, NULL, err, errlen);
}

static celo_bprog *cpu_compile_interp(const celo_backend *be, const celo_program *prog, char *err, size_t errlen)
{
    (void)be;
    return bprog_new(prog, 1, NULL, err, errlen);
}

static celo_bstate *cpu_state_new(const celo_bprog *bp, int ndim, const int64_t *shape, const char *name,
                                  int64_t num_steps, char *err, size_t errlen)
{
    celo_bstate *s = calloc(1, sizeof *s);
    if (s)
        s->st = celo_state_new_named(bp->prog, ndim, shape, name);
    if (!s || !s->st) {
        free(s);
        celo_seterr(err, errlen, "out of memory (or a bad shape: %d dimensions)", ndim);
        return NULL;
    }
    s->st->num_steps = num_steps;
    s->bp = bp;
    return s;
}

static int cpu_step(celo_bstate *s, float *p, const float *g, const float *hp, int64_t t, int nthreads, char *err,
                    size_t errlen)
{
    celo_step_opts o;
    memset(&o, 0, sizeof o);
    o.interp = s->bp->interp;
    o.nthreads = nthreads;
    if (celo_step(s->bp->prog, s->st, p, g, hp, t, &o)) {
        celo_seterr(err, errlen, "%s", o.err);
        return -1;
    }
    return 0;
}

static int cpu_step_team(celo_bstate *s, float *p, const float *g, const float *hp, int64_t t, celo_team *team, int w,
                         char *err, size_t errlen)
{
    celo_step_opts o;
    memset(&o, 0, sizeof o);
    o.interp = s->bp->interp;
    if (celo_step_team(s->bp->prog, s->st, p, g, hp, t, &o, team, w)) {
        if (w == 0)
            celo_seterr(err, errlen, "%s", o.err);
        return -1;
    }
    return 0;
}

static celo_state *cpu_state_get(celo_bstate *s, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    return s->st;
}

static int cpu_state_put(celo_bstate *s, char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    return 0;
}

static void cpu_state_free(celo_bstate *s)
{
    if (!s)
        return;
    celo_state_free(s->st);
    free(s);
}

void celo_bstate_set_theta(celo_bstate *s, const float *theta, int64_t n)
{
    /* the host part reads θ: the CPU state, or OpenCL's host mirror, where the host part runs */
    celo_state *st = s->cl ? celo_cl_rule_state(s->cl) : s->st;
    st->theta = theta;
    st->ntheta = n;
}

void celo_bstate_set_loss(celo_bstate *s, double loss)
{
    celo_state *st = s->cl ? celo_cl_rule_state(s->cl) : s->st; /* where the host part runs, as θ */
    st->loss = loss;
    st->has_loss = 1;
}

/* ---- OpenCL ---- */
static celo_bprog *cl_compile(const celo_backend *be, const celo_program *prog, char *err, size_t errlen)
{
    if (!be->cl_source) {
        celo_seterr(err, errlen,
                    "opencl: no OpenCL C for rule '%s' here (a built binary carries none; use celo run --backend "
                    "opencl)",
                    prog->name);
        return NULL;
    }
    if (celo_cl_available(err, errlen))
        return NULL;
    if (prog->nvariant) { /* one source per class; each tensor gets its variant's */
        char **vsrc = calloc((size_t)prog->nvariant, sizeof *vsrc);
        for (int v = 0; vsrc && v < prog->nvariant; v++)
            if (!(vsrc[v] = be->cl_source(prog->variant[v]))) {
                celo_seterr(err, errlen, "opencl: no kernel source for rule '%s'", prog->variant[v]->name);
                while (v > 0)
                    free(vsrc[--v]);
                free(vsrc);
                return NULL;
            }
        celo_bprog *bp = vsrc ? bprog_new(prog, 0, NULL, err, errlen) : NULL;
        if (bp)
            bp->vsrc = vsrc;
        else if (vsrc) {
            for (int v = 0; v < prog->nvariant; v++)
                free(vsrc[v]);
            free(vsrc);
        }
        return bp;
    }
    char *src = be->cl_source(prog);
    if (!src) {
        celo_seterr(err, errlen, "opencl: no kernel source for rule '%s'", prog->name);
        return NULL;
    }
    return bprog_new(prog, 0, src, err, errlen);
}

static celo_bstate *cl_state_new(const celo_bprog *bp, int ndim, const int64_t *shape, const char *name,
                                 int64_t num_steps, char *err, size_t errlen)
{
    celo_bstate *s = calloc(1, sizeof *s);
    const celo_program *P = celo_program_select(bp->prog, ndim, name);
    const char *psrc = bp->src;
    for (int v = 0; v < bp->prog->nvariant; v++)
        if (bp->prog->variant[v] == P)
            psrc = bp->vsrc[v];
    char *src = psrc ? strdup(psrc) : NULL;
    if (!s || !src) {
        free(s);
        free(src);
        celo_seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (!(s->cl = celo_cl_rule_new(P, src, ndim, shape, err, errlen))) {
        free(s);
        return NULL;
    }
    celo_cl_rule_set_num_steps(s->cl, num_steps);
    s->bp = bp;
    return s;
}

static int cl_step(celo_bstate *s, float *p, const float *g, const float *hp, int64_t t, int nthreads, char *err,
                   size_t errlen)
{
    (void)nthreads; /* the device decides */
    return celo_cl_step_host(s->cl, p, g, hp, t, err, errlen);
}

static celo_state *cl_state_get(celo_bstate *s, char *err, size_t errlen)
{
    return celo_cl_state_read(s->cl, err, errlen) ? NULL : celo_cl_rule_state(s->cl);
}

static int cl_state_put(celo_bstate *s, char *err, size_t errlen)
{
    return celo_cl_state_write(s->cl, err, errlen);
}

static void cl_state_free(celo_bstate *s)
{
    if (!s)
        return;
    celo_cl_rule_free(s->cl);
    free(s);
}

/* ---- the tables ---- */
static const celo_backend tables[] = {
    {"llvm", cpu_compile_llvm, bprog_free, cpu_state_new, cpu_step, cpu_step_team, cpu_state_get, cpu_state_put,
     cpu_state_free, NULL},
    {"interp", cpu_compile_interp, bprog_free, cpu_state_new, cpu_step, cpu_step_team, cpu_state_get, cpu_state_put,
     cpu_state_free, NULL},
    {"opencl", cl_compile, bprog_free, cl_state_new, cl_step, NULL, cl_state_get, cl_state_put, cl_state_free, NULL},
};

int celo_backend_init(celo_backend *be, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++)
        if (!strcmp(tables[i].name, name)) {
            *be = tables[i];
            return 0;
        }
    celo_seterr(err, errlen, "unknown backend '%s' (llvm, interp or opencl)", name);
    return -1;
}

const celo_backend *celo_backend_cpu(void)
{
    return &tables[0];
}
