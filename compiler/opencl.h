/* opencl.h — the OpenCL back end's code generator: OpenCL C 1.2 source from a program's IR.
 *
 * celo_opencl_source() emits one kernel per element pass of the program (same pass structure as the LLVM back
 * end; hyper-parameters and per-tensor scalars as kernel arguments). The host side that builds and runs these
 * kernels is runtime (runtime/clrun.h), reached through the back-end table (runtime/backend.h). */
#ifndef CELO_OPENCL_H
#define CELO_OPENCL_H

#include "../runtime/celort.h"

char *celo_opencl_source(const celo_program *prog); /* malloc'd */

#endif
