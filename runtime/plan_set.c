/* plan_set.c — `--set KEY=V` on a plan: used by `celo run` and by binaries made with `celo build`. */
#include "plan.h"

#include <stdio.h>
#include <string.h>

int celo_plan_override(celo_plan *plan, const char *key, double v, char *err, size_t errlen)
{
    int hits = 0;
    for (int i = 0; i < plan->nruns; i++) {
        celo_run *r = &plan->runs[i];
        if (!strcmp(key, "steps"))
            r->steps = (int64_t)v, hits++;
        else if (!strcmp(key, "seed"))
            r->seed = (uint64_t)v, hits++;
        else if (!strcmp(key, "eval_every"))
            r->eval_every = (int64_t)v, hits++;
        else
            for (int k = 0; k < r->nhp; k++)
                if (!strcmp(r->hp_name[k], key))
                    r->hp[k] = v, hits++;
    }
    if (!strcmp(key, "batch"))
        for (int i = 0; i < plan->ntasks; i++)
            plan->tasks[i].batch = (int)v, hits++;
    if (!hits) {
        snprintf(err, errlen,
                 "--set %s: no run has a hyper-parameter or setting named '%s' (settings: steps, seed, "
                 "eval_every, batch)",
                 key, key);
        return -1;
    }
    return 0;
}
