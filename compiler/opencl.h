/* opencl.h — the OpenCL back end: OpenCL C 1.2 source from a program's IR, and a device-side executor.
 *
 * celo_opencl_source() emits one kernel per element pass of the program (same pass structure as the LLVM back
 * end; hyper-parameters and per-tensor scalars as kernel arguments). celo_cl_rule keeps p, g and the state of
 * one tensor in device buffers and runs steps with the same semantics as celo_step() in runtime/step.c:
 * host values once per step on the host, reduction partials combined on the host, the small per-row/column
 * computations between passes on the host. Program binaries are cached on disk by a hash of every build input. */
#ifndef CELO_OPENCL_H
#define CELO_OPENCL_H

#include "../runtime/celort.h"

#include <stddef.h>
#include <stdint.h>

char *celo_opencl_source(const celo_program *prog); /* malloc'd */

typedef struct celo_cl_rule celo_cl_rule;
/* Takes ownership of src. Picks the first GPU, else the first device (PoCL here); CELO_OPENCL_DEVICE=N picks. */
celo_cl_rule *celo_cl_rule_new(const celo_program *prog, char *src, int ndim, const int64_t *shape, char *err,
                               size_t errlen);
/* One step: uploads g (and p on the first step), runs the passes. When read_back is set, p is read back into p. */
int celo_cl_step(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, int read_back, char *err,
                 size_t errlen);
int celo_cl_finish(celo_cl_rule *r, char *err, size_t errlen);     /* waits for the queue */
int celo_cl_state_read(celo_cl_rule *r, char *err, size_t errlen); /* device state -> the host celo_state */
const celo_state *celo_cl_rule_state(const celo_cl_rule *r);
/* The length of the run, which a rule reads as num_steps (celo_state.num_steps of the host mirror; 0 until set). */
void celo_cl_rule_set_num_steps(celo_cl_rule *r, int64_t num_steps);
void celo_cl_rule_free(celo_cl_rule *r);

#endif
