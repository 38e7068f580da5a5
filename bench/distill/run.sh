#!/usr/bin/env bash
# bench/distill: the token mixers of the distillation chain (issue 12; docs/distill.md), one layer at a time.
#   layers: tokens/s of forward + backward of one layer in celo (bench/distill/layers.c) against PyTorch
#           (bench/distill/torch_layers.py: the same layers from the same formulas with torch ops) for causal
#           linear attention (elu, hedgehog) and the Mamba mixer (hedgehog + normalize, identity), softmax attention
#           for reference; B 8, C 128, 4 heads, T 256 and 1024; torch at 2 and 1 threads, each layer's forms.
#   steps:  µs per generated token as the context grows (64 .. 16384): softmax attention with a key/value cache
#           against the fixed-size states of linear attention and Mamba.
# Prints a markdown report (progress on stderr); about 10 minutes with the defaults.
#
#   bash bench/distill/run.sh [--write] [--rounds N] [--budget-s S] [--parts layers,steps] [--kinds K,...]
#                             [--T 256,1024] [--ctx 64,...] [--threads 2,1] [--no-torch]
#
#   --write  also replace the sections "Token mixers vs PyTorch, one layer forward + backward (bench/distill)" and
#            "Generation cost per token as the context grows (bench/distill)" of docs/results.md (those measured)
# torch runs in build/bench/venv (benchlib.TORCH_REQS, pip-installed on first use); without it torch shows as n/a.
set -u
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=2
OB=/usr/lib/x86_64-linux-gnu/openblas-openmp
make --no-print-directory build/libcelort.a >&2 || exit 1
mkdir -p build/bench/distill
${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Wall -Wextra -Iruntime bench/distill/layers.c build/libcelort.a \
    -o build/bench/distill/layers -L"$OB" -Wl,-rpath,"$OB" -lopenblas -lOpenCL -lz -lm -fopenmp || exit 1
if ! command -v python3 >/dev/null; then
    echo "bench/distill: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/distill/driver.py --cmd "bash bench/distill/run.sh${*:+ $*}" "$@"
exit 0
