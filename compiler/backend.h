/* backend.h — the code generators: LLVM (JIT and object files) and OpenCL C. */
#ifndef CELO_BACKEND_H
#define CELO_BACKEND_H

#include "rules.h"

#include <stdio.h>

/* JIT-compiles every pass of each rule and stores the function pointers in rule->passes[k].fn.
 * The code stays valid until llvm_shutdown(). Returns 0 or -1 with a message in err. */
int llvm_jit_rules(rule **rules, int n, char *err, size_t errlen);
void llvm_shutdown(void);
/* Writes textual LLVM IR (after O3 when optimized != 0) of one rule. */
int llvm_dump_ir(const rule *r, int optimized, FILE *out, char *err, size_t errlen);
/* Emits an object file holding the kernels and a celo_program for each rule, and a C header. */
int llvm_emit_object(rule **rules, int n, const char *obj_path, const char *header_path, char *err, size_t errlen);

/* The object file of a standalone binary: the rules' kernels and tables, the plan text, and a main() that calls
 * celo_standalone_main (runtime/standalone.c). cpu: an LLVM CPU name such as x86-64-v3 (code for every CPU with
 * its features; an unknown name is an error), or NULL for the host's CPU and all its features. */
int llvm_emit_binary_object(rule **rules, int n, const char *plan_text, const char *cpu, const char *obj_path,
                            char *err, size_t errlen);

#endif
