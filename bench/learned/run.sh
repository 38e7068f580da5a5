#!/usr/bin/env bash
# bench/learned: step throughput of the learned optimizers celo and celo2 (stdlib) on one [4096, 1024] float32
# matrix: celo's llvm back end (and opencl/PoCL for celo2) against a PyTorch eager implementation of the same step
# (bench/learned/torch_lopt.py, checked against tests/reference/celo_ref.py first) and this CPU's FP32 FMA peak
# (bench/learned/fma_peak.c), all in the same run. A second table, "Training step with a learned optimizer"
# (bench/learned/training.py): steps/s of whole training steps of bench/train's models (mlp8 on one thread, mlp28
# and gpt on two) with adamw, celo2 and celo, by bench/train's short/long method. Prints a markdown report
# (progress on stderr); a few minutes per table.
#
#   bash bench/learned/run.sh [--write] [--only throughput|training] [--rounds N] [--steps S] [--opencl-steps S]
#                             [--torch-reps N] [--shape RxC] [--budget-s S] [--no-torch] [--no-opencl] [--data DIR]
#                             [--train-scale F] [--train-budget-s S] [--train-models mlp8,mlp28,gpt]
#                             [--train-opts adamw,celo2,celo]
#
#   --write    also replace the section "Learned optimizer step throughput (bench/learned)" of docs/results.md
#   --only     run one of the two tables; with --write the section keeps the other table as it was
#   --train-scale F   multiply bench/train's step counts by F (quick trials: --train-scale 0.05)
#   --data     the shared Celo data (θ files, golden trajectories); default ../shared/data/celo
#   CELO_BENCH_ARGS="..."  extra arguments for `build/celo bench RULE ...`
# torch runs in build/bench/venv (created and pip-installed on first use, bench/benchlib.py). Missing pieces
# (build/celo, the rules, θ, a back end, torch) show as n/a; the script still exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 1
out=build/bench
mkdir -p "$out"
CC=${CC:-gcc}
# -ffp-contract=off: the mul+add chains stay separate operations (the FMA chains use FMA instructions)
if ! "$CC" -O2 -march=native -ffp-contract=off -fopenmp bench/learned/fma_peak.c -o "$out/fma_peak"; then
    echo "bench/learned: building fma_peak failed; the peak columns will be n/a" >&2
    rm -f "$out/fma_peak"
fi
export OMP_NUM_THREADS=2
if ! command -v python3 >/dev/null; then
    echo "bench/learned: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/learned/driver.py --cmd "bash bench/learned/run.sh${*:+ $*}" "$@"
exit 0
