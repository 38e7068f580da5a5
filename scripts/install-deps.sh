#!/usr/bin/env bash
# Installs the Debian packages celo needs, only when something is missing. Safe to run again.
# Data sets: dataset-fashion-mnist (fashion_mnist), bible-kjv (kjv), python3-sklearn (digits: only its
# sklearn/datasets/data/digits.csv.gz is read; no Python runs).
set -euo pipefail
pkgs=(make gcc flex bison llvm-19-dev libzstd-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
      libopenblas-openmp-dev zlib1g-dev dataset-fashion-mnist bible-kjv python3-sklearn clang-format
      libopenmpi-dev openmpi-bin)
# --fuzz: also what `make fuzz` needs (tests/fuzz/run.sh): clang-19 with libFuzzer and the sanitizer runtimes
# (libclang-rt-19-dev), and clang's OpenMP (runtime/step.c includes omp.h).
for a in "$@"; do
    case $a in
    --fuzz) pkgs+=(clang-19 libclang-rt-19-dev libomp-19-dev) ;;
    *) echo "install-deps: unknown option $a (--fuzz)" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# One thread runtime: OpenBLAS must be the OpenMP build so that it shares celo's OpenMP pool.
alt=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
if [ -e "$alt" ] && command -v update-alternatives >/dev/null; then
    cur=$(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so.0 || true)
    if [ "$cur" != "$(readlink -f $alt)" ]; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo update-alternatives --set libopenblas.so.0-x86_64-linux-gnu "$alt" >&2 || true
        $sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu \
            /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 >&2 || true
    fi
fi
exit 0
