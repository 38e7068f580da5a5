#!/usr/bin/env bash
# bench/runs: many training runs at once, and the thread count one run picks by itself. Prints a markdown report
# (progress on stderr); about 3-5 minutes.
#
#   bash bench/runs/run.sh [--write] [--rounds N]
#
#   --write    also replace the section "Runs side by side and the thread policy (bench/runs)" of docs/results.md
# Needs `make` first (build/celo) and dataset-fashion-mnist; the script still exits 0 without them.
set -u
cd "$(dirname "$0")/../.." || exit 1
if ! command -v python3 >/dev/null; then
    echo "bench/runs: python3 not found; nothing measured" >&2
    exit 0
fi
python3 bench/runs/driver.py --cmd "bash bench/runs/run.sh${*:+ $*}" "$@"
exit 0
