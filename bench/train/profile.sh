#!/usr/bin/env bash
# bench/train/profile.sh: where celo's training step spends its time (bench/train/phases.c): the phases of
# runtime/train.c's loop (batch, forward + loss, backward, finite checks, AdamW) and each layer at the model's
# shapes. Needs `make` first (build/celo, build/libcelort.a).
#
#   bash bench/train/profile.sh [mlp8] [mlp28] [gpt]        (default: all three; OMP_NUM_THREADS default 2)
set -eu
cd "$(dirname "$0")/../.."
out=build/bench/train
mkdir -p "$out"
OB=/usr/lib/x86_64-linux-gnu/openblas-openmp
build/celo emit obj stdlib/adamw.celo -o "$out/rules.o"
${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Iruntime -I"$out" bench/train/phases.c "$out/rules.o" \
    build/libcelort.a -o "$out/phases" -L"$OB" -Wl,-rpath,"$OB" -lopenblas -lOpenCL -lz -lm -fopenmp
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for m in "${@:-mlp8 mlp28 gpt}"; do
    for x in $m; do "$out/phases" "$x"; done
done
