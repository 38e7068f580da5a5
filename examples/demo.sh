#!/usr/bin/env bash
# `make demo`: a tour of celo's compiler core in under a minute, on the stdlib and on examples/adamax.celo.
set -euo pipefail
cd "$(dirname "$0")/.."
CELO=${CELO:-build/celo}
OUT=${OUT:-build/demo}
mkdir -p "$OUT"
# absolute paths: the runs below work in folders of their own
case $CELO in /* | *" "*) ;; */*) CELO=$PWD/$CELO ;; esac
OUT_ABS=$OUT
case $OUT in /*) ;; *) OUT_ABS=$PWD/$OUT ;; esac
EXAMPLES=$PWD/examples
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "The stdlib: update rules written in .celo, compiled on demand"
$CELO rules

say "A new rule in 8 lines (examples/adamax.celo)"
cat examples/adamax.celo
$CELO check examples/adamax.celo

say "What the compiler made of it: host scalars hoisted, one fused pass over memory"
$CELO emit ir examples/adamax.celo adamax

say "Adafactor needs reductions: the fuser gives it the fewest passes"
$CELO emit ir stdlib/adafactor.celo adafactor | grep -E '^(rule|pass|before|between)'

say "Apply it for 20 steps to a [64, 33] parameter, on three back ends, and compare"
d=tests/golden/adamax_example/64x33
for be in interp llvm opencl; do
    if $CELO apply adamax --file examples/adamax.celo --param $d/p0.npy --grads $d/grads.npy \
        --set lr=0.05 --backend $be --out "$OUT/adamax-$be.npy" 2>"$OUT/err"; then
        echo "$be: wrote $OUT/adamax-$be.npy"
    else
        echo "$be: not available here ($(head -n1 "$OUT/err"))"
    fi
done
if [ -x build/tests/tools/npycmp ]; then
    build/tests/tools/npycmp "$OUT/adamax-llvm.npy" "$OUT/adamax-interp.npy" --rtol 0 && echo "llvm == interp, bit for bit"
fi

say "A mistake gets a located error"
printf 'optimizer oops(lr = 1e-3) {\n    state m = 0;\n    m = 0.9 * mm + g;\n    p -= lr * m;\n}\n' >"$OUT/oops.celo"
$CELO check "$OUT/oops.celo" || true

say "A whole experiment in one file: AdamW, Lion and a new rule, each tuned by a sweep (examples/compare_optimizers.celo)"
sed -n '/^optimizer/,$p' examples/compare_optimizers.celo
(cd "$OUT" && $CELO run "$EXAMPLES/compare_optimizers.celo")
echo "table and plot: $OUT/runs/compare/results.md, $OUT/runs/compare/curves.svg"

say "The same experiment as a standalone binary (celo build): no LLVM at run time, the same numbers"
$CELO build examples/compare_optimizers.celo -o "$OUT/compare_bin"
# A 300-step check, each side in its own folder under $OUT/check: the 2000-step results above stay as they are.
CHECK=$OUT_ABS/check
mkdir -p "$CHECK/bin" "$CHECK/run"
(cd "$CHECK/bin" && "$OUT_ABS/compare_bin" --only compare --quiet --set steps=300 >/dev/null)
(cd "$CHECK/run" && $CELO run "$EXAMPLES/compare_optimizers.celo" --quiet --set steps=300 >/dev/null)
if diff <(cut -d, -f1-4 "$CHECK/run/runs/compare/compare.adamw_lr_0.001.csv") \
        <(cut -d, -f1-4 "$CHECK/bin/runs/compare/compare.adamw_lr_0.001.csv") >/dev/null; then
    echo "celo run and the built binary wrote identical loss curves (300 steps, in $OUT/check)"
else
    echo "the loss curves differ!"; exit 1
fi

say "Throughput of the compiled AdamW step on 4M parameters (llvm vs the interpreter oracle)"
$CELO bench adamw --size 4194304 --backend llvm | head -n1
$CELO bench adamw --size 262144 --backend interp --steps 5 | head -n1
