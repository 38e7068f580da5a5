/* main.c — the celo command line: the usage text and the dispatch to the commands (cmd_*.c). */
#include "cli.h"

#include "../runtime/plan.h"
#include "backend.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: celo COMMAND ...\n"
    "  celo check FILE.celo                       check every rule of a file\n"
    "  celo emit ast|ir|llvm|llvm-raw|opencl FILE.celo [RULE]\n"
    "  celo emit obj FILE.celo -o RULES.o         object code of the rules plus RULES.h\n"
    "  celo apply RULE [--file F.celo] --param P.npy --grads G.npy [--set k=v]...\n"
    "             [--backend interp|llvm|opencl] --out OUT.npy [--state-out DIR]\n"
    "  celo bench RULE --size N | --shape AxB[x...] [--backend B] [--steps S] [--file F.celo] [--theta FILE]\n"
    "  celo bench --jit-all                       time checking + JIT-compiling every stdlib rule\n"
    "  celo run F.celo [--only NAME] [--set k=v]... [--backend llvm|interp|opencl] [--resume] [--quiet]\n"
    "  celo build F.celo -o BIN [--cpu NAME]      a standalone binary of F's runs (no LLVM needed to run it);\n"
    "                                             --cpu x86-64-v3: for any AVX2 CPU (default: this CPU)\n"
    "  celo sample F.celo --checkpoint FILE [--prompt TEXT] [--tokens N] [--samples N] [--temperature T]\n"
    "             [--top-k K] [--seed S] [--task NAME]   text from a character model's checkpoint\n"
    "  celo rules                                 list the stdlib rules and their hyper-parameters\n"
    "  celo theta show FILE                       names, shapes, sizes and L2 norms of a meta-parameter file\n"
    "  celo theta convert IN -o OUT.safetensors   flax msgpack (.state) or safetensors to safetensors\n"
    "  celo theta init RULE [--file F.celo] --seed S -o OUT.safetensors   a learned rule's own initial θ\n";

int main(int argc, char **argv)
{
    celo_pick_blas_kernels(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "check"))
        rc = cmd_check(argc - 2, argv + 2);
    else if (!strcmp(cmd, "emit"))
        rc = cmd_emit(argc - 2, argv + 2);
    else if (!strcmp(cmd, "apply"))
        rc = cmd_apply(argc - 2, argv + 2);
    else if (!strcmp(cmd, "bench"))
        rc = cmd_bench(argc - 2, argv + 2);
    else if (!strcmp(cmd, "run"))
        rc = cmd_run(argc - 2, argv + 2);
    else if (!strcmp(cmd, "build"))
        rc = cmd_build(argc - 2, argv + 2);
    else if (!strcmp(cmd, "sample"))
        rc = cmd_sample(argc - 2, argv + 2);
    else if (!strcmp(cmd, "rules"))
        rc = cmd_rules();
    else if (!strcmp(cmd, "theta"))
        rc = cmd_theta(argc - 2, argv + 2);
    else {
        fprintf(stderr, "celo: unknown command '%s'\n%s", cmd, usage);
        rc = 1;
    }
    llvm_shutdown();
    return rc;
}
