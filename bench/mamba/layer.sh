#!/usr/bin/env bash
# bench/mamba/layer.sh: forward + backward of one Mamba mixer, chunked against sequential (bench/mamba/layer.c).
# Needs `make` first (build/libcelort.a).
#
#   bash bench/mamba/layer.sh
set -eu
cd "$(dirname "$0")/../.."
out=build/bench/mamba
mkdir -p "$out"
OB=/usr/lib/x86_64-linux-gnu/openblas-openmp
${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Iruntime -I/usr/include/x86_64-linux-gnu/openblas-openmp \
    bench/mamba/layer.c build/libcelort.a -o "$out/layer" -L"$OB" -Wl,-rpath,"$OB" -lopenblas -lOpenCL -lz -lm \
    -fopenmp $(mpicc --showme:link 2>/dev/null || true)
"$out/layer"
