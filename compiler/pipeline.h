/* pipeline.h — task / train / sweep / compare blocks to a celo_plan (runtime/plan.h). */
#ifndef CELO_PIPELINE_H
#define CELO_PIPELINE_H

#include "plan.h"
#include "rules.h"

/* Checks every block of the module's files and fills plan; reports errors and returns their number. */
int pipeline_build(module *m, celo_plan *plan);

#endif
