#!/usr/bin/env bash
# bench/optim: optimizer-step throughput (adamw, lion, adafactor on 16M float32 parameters as [4096, 4096]) of
# celo's llvm and opencl back ends against a hand-written fused C loop, an unfused one-pass-per-operation C
# version, PyTorch, and a STREAM-triad memory bound. Prints a markdown report (progress on stderr).
#
#   bash bench/optim/run.sh [--write] [--rounds N] [--size N] [--cols C] [--budget-s S] [--no-torch]
#
#   --write    also replace the section "Optimizer step throughput (bench/optim)" of docs/results.md
#   CELO_BENCH_ARGS="..."  extra arguments for `build/celo bench RULE ...`
# Missing pieces (build/celo, a back end, torch) show as n/a; the script still exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 1
out=build/bench
mkdir -p "$out"
CC=${CC:-gcc}
# -ffp-contract=off: no a*b+c -> FMA contraction (gcc's default in gnu mode), as in celo's kernels
flags=(-O3 -march=native -fno-math-errno -ffp-contract=off -fopenmp)
if ! "$CC" "${flags[@]}" bench/optim/baselines.c -o "$out/optbase" -lm; then
    echo "bench/optim: building the C baselines failed; their columns will be n/a" >&2
    rm -f "$out/optbase"
fi
"$CC" "${flags[@]}" -shared -fPIC -DOPTBASE_NO_MAIN bench/optim/baselines.c -o "$out/liboptbase.so" -lm \
    || rm -f "$out/liboptbase.so"
export OMP_NUM_THREADS=2
if ! command -v python3 >/dev/null; then
    echo "bench/optim: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/optim/driver.py --cmd "bash bench/optim/run.sh${*:+ $*}" "$@"
exit 0
