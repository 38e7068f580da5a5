/* cli.h — what the commands of the celo command line share (cli.c): errors, the stdlib folder, rule lookup with
 * did-you-mean, --set, --backend and the option parser; and the commands, one file per group (cmd_*.c). */
#ifndef CELO_CLI_H
#define CELO_CLI_H

#include "../runtime/backend.h"
#include "rules.h"

#include <stddef.h>

typedef struct {
    const char *k[64];
    double v[64];
    int n;
} sets;

/* One option of a command: `--name VALUE` stores VALUE in *str; a flag (str NULL) sets *flag to 1. */
typedef struct {
    const char *name;
    const char **str;
    int *flag;
} cli_opt;

double cli_now_s(void);
const char *cli_stdlib_dir(void);
/* rel beside the running executable (its folder + "/" + rel) into buf. 0, or -1 when that cannot be known. */
int cli_beside_exe(const char *rel, char *buf, size_t n);
/* "celo: MESSAGE" on stderr; returns 1 (the exit status). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
def *cli_find_optimizer(module *m, const char *name);
void cli_sets_free(sets *s);
int cli_apply_sets(const celo_program *P, const sets *s, float *hp);
int cli_parse_backend(const char *s, celo_backend *b);
celo_backend cli_default_backend(void);
int cli_is_llvm(const celo_backend *b);
int cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts, sets *s, celo_backend *be,
                   const char **pos);
rule *cli_load_rule(module *m, const char *file, const char *name);

/* the commands: argc, argv after the command's name; the exit status */
int cmd_check(int argc, char **argv); /* cmd_inspect.c */
int cmd_emit(int argc, char **argv);
int cmd_rules(void);
int cmd_theta(int argc, char **argv);
int cmd_apply(int argc, char **argv); /* cmd_tensor.c */
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv); /* cmd_plan.c */
int cmd_build(int argc, char **argv);
int cmd_sample(int argc, char **argv); /* cmd_sample.c */

#endif
