/* backend.h — one interface to the back ends that run optimizer steps: a table of functions per back end.
 *
 * Three back ends run the same compiled rule (celo_program): "llvm" (the CPU, the program's compiled kernels:
 * JIT in `celo run`, object code in a built binary; a pass without a kernel runs through the interpreter),
 * "interp" (the CPU, every pass through the reference interpreter) and "opencl" (the rule's OpenCL C kernels on
 * an OpenCL device, runtime/clrun.c). `celo apply`, `celo bench`, `celo run` and built binaries all step tensors
 * through this table, so a training run works on any of them:
 *
 *     celo_backend be;
 *     if (celo_backend_init(&be, "opencl", err, sizeof err)) ...    // an unknown name: -1 with err
 *     be.cl_source = celo_opencl_source;                            // opencl: the compiler's generator
 *     celo_bprog *bp = be.compile(&be, prog, err, sizeof err);     // once per rule (NULL: err says why)
 *     celo_bstate *s = be.state_new(bp, ndim, shape, "fc1.weight", steps, err, sizeof err); // one per tensor
 *     be.step(s, p, g, hp, t, 0, err, sizeof err);                  // p updated in place, on the host
 *     celo_state *h = be.state_get(s, err, sizeof err);             // the state on the host (checkpoints)
 *     ... change *h (load a checkpoint, copy another tensor's state) ...
 *     be.state_put(s, err, sizeof err);                             // back where the back end keeps it
 *     be.state_free(s); be.prog_free(bp);
 *
 * Parameters and gradients stay on the host (the model is CPU code): a step takes p and g from host memory and
 * leaves the new p there. The optimizer state lives where the back end keeps it: in host memory for the CPU back
 * ends (state_get returns it, no copy), in device buffers for OpenCL (state_get reads them back into a host
 * mirror, state_put writes the mirror to the device).
 *
 * The CPU back ends also offer step_team (NULL for OpenCL): the step run by every thread of a team the caller
 * already runs (celo_step_team), which runtime/inst.c's split-batch loop uses; numbers equal step's.
 *
 * Numbers: llvm and interp give the same bits (the kernels compute the interpreter's float32 operations in its
 * order); OpenCL agrees to about 1e-6 relative per step (exp, log, pow and tanh round differently). */
#ifndef CELO_BACKEND_RT_H
#define CELO_BACKEND_RT_H

#include "celort.h"

#include <stddef.h>
#include <stdint.h>

typedef struct celo_backend celo_backend;
typedef struct celo_bprog celo_bprog;   /* a rule prepared for one back end */
typedef struct celo_bstate celo_bstate; /* one tensor's optimizer state, where the back end keeps it */

struct celo_backend {
    const char *name; /* "llvm", "interp", "opencl" */
    /* A rule ready to run: llvm and interp take the program as it is (compiling to machine code is the
     * compiler's job, before: JIT or object file); opencl generates its OpenCL C with cl_source and checks that
     * a device exists. NULL with a one-line err when the back end cannot run it. */
    celo_bprog *(*compile)(const celo_backend *be, const celo_program *prog, char *err, size_t errlen);
    void (*prog_free)(celo_bprog *bp);
    /* The state of one tensor of this shape called name (NULL: ""; a rule with tensor classes picks the variant
     * of its rank and name, celo_program_select), slots initialised at the first step as celo_state_new, in a run
     * of num_steps steps (what a rule reads as num_steps; 0 when unknown). */
    celo_bstate *(*state_new)(const celo_bprog *bp, int ndim, const int64_t *shape, const char *name, int64_t num_steps,
                              char *err, size_t errlen);
    /* One step t (1-based) over p (updated in place) with gradient g and hyper-parameters hp. nthreads: the
     * threads a CPU step may use (0: the OpenMP default). 0, or -1 with a one-line err. */
    int (*step)(celo_bstate *s, float *p, const float *g, const float *hp, int64_t t, int nthreads, char *err,
                size_t errlen);
    /* CPU back ends only (else NULL): step called by every thread w of team at once; every thread returns the
     * same value, err is set by thread 0. */
    int (*step_team)(celo_bstate *s, float *p, const float *g, const float *hp, int64_t t, celo_team *team, int w,
                     char *err, size_t errlen);
    /* The state on the host, current; valid until the next call on s. NULL with err on a device error. */
    celo_state *(*state_get)(celo_bstate *s, char *err, size_t errlen);
    /* After the caller changed the celo_state from state_get: make the back end use it. 0, or -1 with err. */
    int (*state_put)(celo_bstate *s, char *err, size_t errlen);
    void (*state_free)(celo_bstate *s);
    /* opencl: the OpenCL C of a rule (malloc'd), from the compiler (compiler/opencl.h); NULL in a binary that
     * carries none, where compile then says so */
    char *(*cl_source)(const celo_program *prog);
};

/* *be = the back end named name. 0, or -1 with "unknown backend 'x' (llvm, interp or opencl)" in err. */
int celo_backend_init(celo_backend *be, const char *name, char *err, size_t errlen);
/* A learned rule's θ for the steps of s (celo_state.theta: prog->theta_len floats, owned by the caller, kept
 * until s is freed); every back end reads it on the host, as host values. */
void celo_bstate_set_theta(celo_bstate *s, const float *theta, int64_t n);
/* The training loss of the step about to run (the mini-batch loss at the pre-update parameters), which a rule
 * reads as `loss` (celo_state.loss); a rule that reads it fails to step until it is set. Set it before every step. */
void celo_bstate_set_loss(celo_bstate *s, double loss);
/* The default: llvm (the program's kernels on the CPU). */
const celo_backend *celo_backend_cpu(void);

#endif
