/* rules.h — from parsed definitions to checked, lowered and fused update rules. */
#ifndef CELO_RULES_H
#define CELO_RULES_H

#include "ast.h"
#include "ir.h"

#include <stdio.h>

typedef struct lowered lowered; /* module_rule's cache (module.c) */

/* Every definition visible to a compilation: the user's files, their imports and the stdlib. */
typedef struct {
    arena ar;
    def *defs;
    srcfile *files[256];
    int nfiles;
    const char *stdlib_dir;
    lowered *lowered;
    struct {
        const def *d;
        int nerr;
    } checked[64]; /* schedules and models checked (module_schedule_check, module_model_check), with their error
                      counts */
    int nchecked;
} module;

/* Loads PATH (NULL: only the stdlib), its imports, and the stdlib. Errors are reported; returns their count. */
int module_load(module *m, const char *path, const char *stdlib_dir);
/* The same with the user's file given as text (NAME is its path in diagnostics and for relative imports). */
int module_load_string(module *m, const char *name, const char *text, const char *stdlib_dir);
void module_free(module *m);
def *module_find(module *m, const char *name);
/* The rules defined in PATH's own file (not imports or stdlib), for `celo check`. */
int module_is_user(const module *m, const def *d);

/* A lowered rule: owns a celo_program and everything it points to. */
typedef struct rule {
    celo_program prog;
    celo_node *nodes;
    celo_hparam *hp;
    celo_stateslot *state;
    celo_pass *passes;
    celo_thetaspec *theta; /* the learned parameters' table */
    char *strings;         /* names, packed */
    const def *src;
    const def *sched; /* the learning-rate schedule compiled into it, or NULL */
    /* tensor classes (celort.h): a rule whose body branches on the class owns one rule per class, its variants
     * (prog only chooses among them: no nodes, state or passes); a variant has its class in words */
    struct rule **variants;
    int nvariants;
    const celo_program **varprogs;
    uint8_t *classmap;
    char **patterns; /* NULL-terminated */
    char *cls;
} rule;

/* Checks and lowers optimizer NAME; reports errors and returns NULL on failure. The caller owns the rule. */
rule *rule_compile(module *m, def *d);
/* The same with learning-rate schedule s applied (lower.c): every read of the hyper-parameter celo_scheduled_hp
 * ("lr") reads lr * s(t), a host value; s's parameters follow the rule's hyper-parameters, and the program is named
 * "RULE@SCHEDULE". */
rule *rule_compile_scheduled(module *m, def *d, const def *s);
extern const char *const celo_scheduled_hp;
/* Checks schedule s on its own (its parameters and its expression); reports errors and returns their number. */
int schedule_check(module *m, def *s);
/* Whether schedule s is the constant 1 (`schedule constant = 1;`): a rule under it is the rule itself. */
int schedule_is_one(const def *s);
/* Optimizer d lowered once per module: compiled on the first call, kept until module_free, so that the checks,
 * the plan and the JIT of one command share one lowering of each rule. NULL when d does not compile (its errors
 * reported on that first call only). The module owns the rule: never rule_free it. */
rule *module_rule(module *m, def *d);
/* schedule_check of s once per module: later calls return the same count and report nothing. */
int module_schedule_check(module *m, def *s);
/* model_check (model.h) of model d once per module, the same way. */
int module_model_check(module *m, def *d);
/* The same for optimizer d under schedule s (module_rule(m, d) when s is NULL or schedule_is_one). */
rule *module_rule_scheduled(module *m, def *d, def *s);
/* The rule a plan's run names: "RULE" or "RULE@SCHEDULE", lowered once and owned by the module (module_rule_scheduled),
 * or freshly compiled and owned by the caller (rule_compile_named). NULL (nothing reported) when a name is not an
 * optimizer or not a schedule; NULL after reporting when it does not compile. */
rule *module_rule_named(module *m, const char *name);
rule *rule_compile_named(module *m, const char *name);
/* Checks transform d on its own (celo check): its body with its defaults (0 where it has none), the update it
 * makes applied as p + u. Reports errors; NULL on failure. */
rule *rule_compile_transform(module *m, def *d);
void rule_free(rule *r);
/* Assigns passes (fuse.c). */
void rule_fuse(rule *r);
/* Text dump of the IR with its passes. */
void rule_dump(const rule *r, FILE *out);

#endif
