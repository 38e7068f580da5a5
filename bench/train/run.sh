#!/usr/bin/env bash
# bench/train: steps/s of whole training steps (batch, forward, backward, AdamW) in celo against PyTorch and JAX
# on the same models: MLP 64-32-10 (batch 64, 8x8 Fashion-MNIST), MLP 784-128-10 (batch 128, 28x28
# Fashion-MNIST) and the character GPT of examples/char_transformer.celo (batch 16 x 64). Prints a markdown report
# (progress on stderr); about 6-10 minutes.
#
#   bash bench/train/run.sh [--write] [--rounds N] [--budget-s S] [--models mlp8,mlp28,gpt]
#                           [--opts fused,foreach,forloop,fused@1] [--compile] [--no-torch] [--no-jax]
#                           [--tools celo,torch,jax] [--jax-cpus 2,1]
#
#   --write    also replace the section "Training step throughput (bench/train)" of docs/results.md
#   --compile  also time torch.compile once per model (adds minutes of compiling)
#   --tools    run only these (JAX alone, quickly: --models mlp8 --tools jax --rounds 1)
# The JAX peer runs in build/bench/venv: the first run creates it and pip-installs the pinned jax[cpu] and optax
# (bench/train/driver.py, JAX_REQS). Missing pieces (build/celo, data, torch, jax) show as n/a; the script still
# exits 0. Where celo's time goes: bash bench/train/profile.sh.
set -u
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=2
if ! command -v python3 >/dev/null; then
    echo "bench/train: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/train/driver.py --cmd "bash bench/train/run.sh${*:+ $*}" "$@"
exit 0
