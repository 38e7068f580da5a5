/* clrun.h — the host side of the OpenCL back end (runtime/clrun.c): runs a rule's OpenCL kernels on a device.
 *
 * The kernels' source comes from the compiler (compiler/opencl.h, celo_opencl_source); everything here is
 * runtime. celo_cl_rule keeps p, g and the state of one tensor in device buffers and runs steps with the same
 * semantics as celo_step() in runtime/step.c: host values once per step on the host, reduction partials combined
 * on the host, the small per-row/column computations between passes on the host. Program binaries are cached on
 * disk by a hash of every build input. Training runs use it through the back-end table (backend.h). */
#ifndef CELO_CLRUN_H
#define CELO_CLRUN_H

#include "celort.h"

#include <stddef.h>
#include <stdint.h>

typedef struct celo_cl_rule celo_cl_rule;
/* 0 when an OpenCL device can be used, else -1 with one line in err ("OpenCL: no platform found ..."). */
int celo_cl_available(char *err, size_t errlen);
/* Takes ownership of src. Picks the first GPU, else the first device (PoCL here); CELO_OPENCL_DEVICE=N picks. */
celo_cl_rule *celo_cl_rule_new(const celo_program *prog, char *src, int ndim, const int64_t *shape, char *err,
                               size_t errlen);
/* One step with p kept on the device: uploads g (and p on the first step), runs the passes. When read_back is
 * set, p is read back into p. */
int celo_cl_step(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, int read_back, char *err,
                 size_t errlen);
/* One step with p in host memory (training: the model owns it), back there, current, when it returns. Devices
 * that share memory with the host (PoCL) update it in place through a CL_MEM_USE_HOST_PTR buffer; others copy
 * it there and back. */
int celo_cl_step_host(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, char *err, size_t errlen);
int celo_cl_finish(celo_cl_rule *r, char *err, size_t errlen);     /* waits for the queue */
int celo_cl_state_read(celo_cl_rule *r, char *err, size_t errlen); /* device state -> the host celo_state */
/* The host celo_state (current after celo_cl_state_read); a caller may change it, then celo_cl_state_write. */
celo_state *celo_cl_rule_state(celo_cl_rule *r);
int celo_cl_state_write(celo_cl_rule *r, char *err, size_t errlen); /* the host celo_state -> the device */
/* The length of the run, which a rule reads as num_steps (celo_state.num_steps of the host mirror; 0 until set). */
void celo_cl_rule_set_num_steps(celo_cl_rule *r, int64_t num_steps);
void celo_cl_rule_free(celo_cl_rule *r);

#endif
