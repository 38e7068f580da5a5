/* llvm_compat.h — the one place that knows which LLVM versions celo builds against.
 * celo uses opaque pointers (LLVMPointerTypeInContext), the new pass manager (LLVMRunPasses) and ORC LLJIT's C
 * API; all three exist from LLVM 16 on. A later API change gets a small l_* wrapper here, never an #if elsewhere. */
#ifndef CELO_LLVM_COMPAT_H
#define CELO_LLVM_COMPAT_H

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>

#if LLVM_VERSION_MAJOR < 16
#error "celo needs LLVM 16 or newer (Debian: llvm-19-dev)"
#endif

#endif
