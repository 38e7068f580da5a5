/* taskdata.h — inside the training runtime: the data of a task as inst.c reads it (inst.h has the API). */
#ifndef CELO_TASKDATA_H
#define CELO_TASKDATA_H

#include "data.h"
#include "inst.h"

#define TASK_SEED      0x5eed7a5cull /* teacher networks and quadratics: fixed per task */
#define TEACHER_TEST_N 10000
#define KJV_VAL_FRAC   0.1

struct celo_task_data {
    int loaded;
    celo_dataset train, test;
    celo_text text;
    double unigram; /* kjv: entropy of the training text's characters, nats */
    celo_quadratic quad;
};

#endif
