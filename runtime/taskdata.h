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
    const celo_source *src; /* shared through the registry (data.h), read only */
    const celo_dataset *train, *test;
    const celo_text *text;
    const celo_quadratic *quad;
    celo_dataset own_train, own_test; /* the task's label variation of the source's splits (classes,
                                         permute_labels), when it has one: train and test point here */
    double unigram;                   /* kjv: entropy of the training text's characters, nats */
};

#endif
