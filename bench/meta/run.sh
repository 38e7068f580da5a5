#!/usr/bin/env bash
# bench/meta: inner particle-steps/s of Celo2 meta-training — celo's `meta` block (celo2_meta, 8 antithetic pairs =
# 16 particles of the 8x8 Fashion-MNIST MLP 64-32-10, batch 64, the recipe's PES estimator) against a JAX vmapped
# implementation of the same inner step (bench/meta/jax_celo2.py, checked against tests/reference/celo_ref.py
# first), with the target (11,100) and the authors' JAX figure (5,400, quoted) beside them. Prints a markdown
# report (progress on stderr); about 2-3 minutes.
#
#   bash bench/meta/run.sh [--write] [--rounds N] [--outer-steps N] [--skip N] [--target-s S] [--jax-cpus 2,1]
#                          [--biases mlp,adam] [--budget-s S] [--no-jax] [--data DIR]
#
#   --write        also replace the section "Meta-training inner throughput (bench/meta)" of docs/results.md
#   --outer-steps  outer steps of each celo run (default 30); --skip: the first ones left out of its rate (3)
#   --biases       jax_celo2.py's routing of the MLP's biases: mlp (what celo2_meta does on celo's fm8), adam
#   --data         the shared Celo data (golden/celo2/theta.msgpack); default ../shared/data/celo
# The JAX peer runs in build/bench/venv: the first run creates it and pip-installs the pinned jax[cpu]
# (bench/benchlib.py, JAX_REQS). Missing pieces (build/celo, θ, jax) show as n/a; the script still exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=2
if ! command -v python3 >/dev/null; then
    echo "bench/meta: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/meta/driver.py --cmd "bash bench/meta/run.sh${*:+ $*}" "$@"
exit 0
