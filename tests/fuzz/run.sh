#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS — builds the libFuzzer target of the front end (tests/fuzz/fuzz_frontend.c: parser,
# sema, lowering and fusion, under AddressSanitizer and UndefinedBehaviorSanitizer) with clang-19 and fuzzes it
# for SECONDS (default 60). The corpus starts from every .celo file of the repository and grows in
# build/fuzz/corpus between runs. Exit status 0 only when nothing crashed, leaked or hung; a failing input is
# left in build/fuzz/ (crash-*, leak-*, timeout-*, oom-*) and can be replayed: build/fuzz/fuzz_frontend FILE.
# `make fuzz` installs clang-19 first (scripts/install-deps.sh --fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
BUILD=${BUILD:-build}
OUT=$BUILD/fuzz
CLANG=${CLANG:-clang-19}
command -v "$CLANG" >/dev/null || { echo "fuzz: $CLANG not found (bash scripts/install-deps.sh --fuzz)" >&2; exit 1; }
mkdir -p "$OUT/corpus" "$OUT/obj"

# The generated scanner and parser come from the Makefile; nothing else of the normal build is needed.
make --no-print-directory -s "$BUILD/gen/parser.c" "$BUILD/gen/lexer.c"

SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-sanitize=float-divide-by-zero
     -fno-omit-frame-pointer)
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -Igrammar -Icompiler -Iruntime -I"$BUILD/gen"
        -I/usr/include/x86_64-linux-gnu/openblas-openmp -fsanitize=fuzzer-no-link "${SAN[@]}")
# The front end, sema and fusion; runtime/step.c for celo_eval_op (constant folding) and what it calls.
srcs=(compiler/parse.c compiler/module.c compiler/lower.c compiler/ir.c compiler/fuse.c compiler/diag.c
      "$BUILD/gen/lexer.c" "$BUILD/gen/parser.c" runtime/step.c runtime/ortho.c tests/fuzz/fuzz_frontend.c)
objs=()
for s in "${srcs[@]}"; do
    o=$OUT/obj/$(basename "${s%.c}").o
    objs+=("$o")
    extra=()
    case $s in
    runtime/step.c) extra=(-fopenmp -Wno-unknown-pragmas) ;;
    # The generated tables: comparison tracing there costs most of the time (the stdlib is scanned on every
    # input) and teaches little that the dictionary does not.
    */gen/*) extra=(-fno-sanitize-coverage=trace-cmp) ;;
    esac
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ compiler/ast.h -nt "$o" ] || [ compiler/rules.h -nt "$o" ] ||
        [ runtime/celort.h -nt "$o" ] || [ runtime/ops.def -nt "$o" ] || [ "$0" -nt "$o" ]; then
        "$CLANG" "${CFLAGS[@]}" "${extra[@]}" -c "$s" -o "$o"
    fi
done
"$CLANG" -fsanitize=fuzzer "${SAN[@]}" -fopenmp -o "$OUT/fuzz_frontend" "${objs[@]}" \
    -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm

# Seeds: every rule file we have (the corpus directory keeps what earlier runs found).
for f in stdlib/*.celo examples/*.celo tests/diag/*.celo tests/diag/lib/*.celo tests/ir/*.celo tests/ir/same/*.celo; do
    [ -f "$f" ] && cp -f "$f" "$OUT/corpus/seed-$(echo "$f" | tr / _)"
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The stdlib is parsed again for every input, which would take most of the time: the target sees only the part
# that inputs can refer to in interesting ways (the transforms for chain(...), two optimizers for the errors
# about using one as a function or a transform). FUZZ_STDLIB=full gives it all of stdlib/.
if [ "${FUZZ_STDLIB:-}" = full ]; then
    export CELO_STDLIB=stdlib
else
    rm -rf "$OUT/stdlib" && mkdir -p "$OUT/stdlib"
    cp stdlib/transforms.celo stdlib/adam.celo stdlib/sgd.celo "$OUT/stdlib/"
    export CELO_STDLIB=$OUT/stdlib
fi
echo "fuzz: $OUT/fuzz_frontend for ${secs}s" >&2
# -close_fd_mask=2: the target's diagnostics go nowhere; libFuzzer and the sanitizers keep their own stderr.
set +e
"$OUT/fuzz_frontend" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -dict=tests/fuzz/celo.dict -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$OUT/" \
    "$OUT/corpus" 2>"$OUT/log"
rc=$?
set -e
grep -E "^(stat::|#[0-9]+ *DONE|==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$OUT/log" >&2 || true
if [ $rc != 0 ]; then
    tail -60 "$OUT/log" >&2
    echo "fuzz: FAILED (exit $rc); the input is in $OUT/ (see $OUT/log)" >&2
    exit 1
fi
echo "fuzz: no crash in ${secs}s" >&2
