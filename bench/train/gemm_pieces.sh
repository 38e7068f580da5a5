#!/usr/bin/env bash
# bench/train/gemm_pieces.sh: the one-thread cost of cutting GEMMs into fixed pieces (bench/train/gemm_pieces.c).
# Needs `make` first (build/libcelort.a).
#
#   bash bench/train/gemm_pieces.sh [rounds]
set -eu
cd "$(dirname "$0")/../.."
out=build/bench/train
mkdir -p "$out"
OB=/usr/lib/x86_64-linux-gnu/openblas-openmp
${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Iruntime -I/usr/include/x86_64-linux-gnu/openblas-openmp \
    bench/train/gemm_pieces.c build/libcelort.a -o "$out/gemm_pieces" -L"$OB" -Wl,-rpath,"$OB" -lopenblas -lm -fopenmp
"$out/gemm_pieces" "$@"
