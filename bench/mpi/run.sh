#!/usr/bin/env bash
# bench/mpi/run.sh — the speed-up of mpirun (docs/results.md, "MPI (mpirun -n 2)").
#   meta: tests/mpi/meta8.celo (8 antithetic pairs of the 8x8 MLP, K = 10) for OUTER outer steps, as 1 process on
#         1 thread, 1 process on 2 threads, and mpirun -n 2 with 1 thread per rank; the loop's seconds from the
#         log's last wall_s (process start, data loading and MPI_Init excluded) and the whole process's seconds.
#   CPU s: user + system seconds of all processes (the ranks, mpirun): what the machine paid, whatever its load.
#   train: tests/mpi/train.celo's mlp (784-256-10, batch 128) for STEPS steps, 1 process (2 threads) against
#         mpirun -n 2 (data-parallel, 1 thread per rank); the run's wall_s.
# Each configuration ROUNDS times, in rotated order; the median, and min-max. θ must be the same in all.
# Usage: bash bench/mpi/run.sh [ROUNDS=3] [OUTER=60] [STEPS=300]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3} OUTER=${2:-60} STEPS=${3:-300}
CELO=$(pwd)/build/celo
ROOT=$(pwd)
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/celo-mpi-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
run_cfg() { # name: one run in $TMP/name; prints "loop_s process_s cpu_s" (cpu: user + system of every process)
    local d=$TMP/$1 t0 t1 csv meta=$ROOT/tests/mpi/meta8.celo train=$ROOT/tests/mpi/train.celo TIMEFORMAT='%3U %3S'
    local -a cmd
    case $1 in
    meta_1p1t) cmd=(env OMP_NUM_THREADS=1 "$CELO" run "$meta" --quiet --set steps=$OUTER) ;;
    meta_1p2t) cmd=(env OMP_NUM_THREADS=2 "$CELO" run "$meta" --quiet --set steps=$OUTER) ;;
    meta_2r1t) cmd=(env OMP_NUM_THREADS=1 "${MPIRUN[@]}" -n 2 "$CELO" run "$meta" --quiet --set steps=$OUTER) ;;
    train_1p2t) cmd=(env OMP_NUM_THREADS=2 "$CELO" run "$train" --quiet --only mlp --set steps=$STEPS) ;;
    train_2r1t) cmd=(env OMP_NUM_THREADS=1 "${MPIRUN[@]}" -n 2 "$CELO" run "$train" --quiet --only mlp --set steps=$STEPS) ;;
    esac
    rm -rf "$d" && mkdir -p "$d"
    t0=$(date +%s.%N)
    { time (cd "$d" && "${cmd[@]}" 2>/dev/null); } 2>"$TMP/cpu"
    t1=$(date +%s.%N)
    csv=$(ls "$d"/runs/*.csv | head -1)
    echo "$(tail -1 "$csv" | awk -F, '{print $NF}') $(echo "$t1 - $t0" | bc) $(awk '{print $1 + $2}' "$TMP/cpu")"
}
# Before each measurement, wait up to QUIET_WAIT (10) s for other work on the (shared) machine to pause: the fraction of CPU
# time used over 0.25 s, from /proc/stat, at most 25 % (as bench/benchlib.py's QuietGate). Counted, not hidden.
busy_pct() {
    local a b c d
    read -r _ a b c d _ < <(head -1 /proc/stat | awk '{t = 0; for (i = 2; i <= NF; i++) t += $i; print "x", t, $5 + $6, 0, 0}')
    sleep 0.25
    read -r _ c d _ < <(head -1 /proc/stat | awk '{t = 0; for (i = 2; i <= NF; i++) t += $i; print "x", t, $5 + $6}')
    echo $(((100 * ((c - a) - (d - b))) / ((c - a) > 0 ? (c - a) : 1)))
}
nbusy=0 nmeas=0
quiet_gate() {
    local t0=$SECONDS
    nmeas=$((nmeas + 1))
    while [ "$(busy_pct)" -gt 25 ]; do
        if [ $((SECONDS - t0)) -ge "${QUIET_WAIT:-10}" ]; then nbusy=$((nbusy + 1)); return; fi
    done
}
cfgs=(meta_1p1t meta_1p2t meta_2r1t train_1p2t train_2r1t)
declare -A loop proc cpu
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < ${#cfgs[@]}; k++)); do
        c=${cfgs[$(((k + r) % ${#cfgs[@]}))]}
        quiet_gate
        read -r l p u < <(run_cfg "$c")
        loop[$c]+="$l "
        proc[$c]+="$p "
        cpu[$c]+="$u "
        [ "${c#meta}" != "$c" ] && cp "$TMP/$c/runs/eight.theta.safetensors" "$TMP/theta_$c"
    done
    cmp -s "$TMP/theta_meta_1p1t" "$TMP/theta_meta_1p2t" && cmp -s "$TMP/theta_meta_1p1t" "$TMP/theta_meta_2r1t" ||
        { echo "bench/mpi: θ differs between configurations" >&2; exit 1; }
done
stat() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {printf "%.3f (%.3f-%.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }
med() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "rounds $ROUNDS; meta: $OUTER outer steps of 8 pairs; train: mlp $STEPS steps; seconds, median (min-max)"
echo "| configuration | loop s | process s | CPU s (all processes) |"
echo "|---|---:|---:|---:|"
for c in "${cfgs[@]}"; do
    echo "| $c | $(echo "${loop[$c]}" | stat) | $(echo "${proc[$c]}" | stat) | $(echo "${cpu[$c]}" | stat) |"
done
m1=$(echo "${loop[meta_1p1t]}" | med) m2=$(echo "${loop[meta_1p2t]}" | med) m3=$(echo "${loop[meta_2r1t]}" | med)
echo "meta loop speed-up, mpirun -n 2 over 1 process 1 thread: $(echo "scale=2; $m1 / $m3" | bc); over 1 process 2 threads: $(echo "scale=2; $m2 / $m3" | bc)"
t1=$(echo "${loop[train_1p2t]}" | med) t2=$(echo "${loop[train_2r1t]}" | med)
echo "train mlp: mpirun -n 2 data-parallel / 1 process 2 threads, run seconds: $(echo "scale=2; $t2 / $t1" | bc)"
echo "θ identical in all meta configurations (bit for bit)"
echo "$nbusy of $nmeas measurements started while the CPUs were still busy with other work (waited up to ${QUIET_WAIT:-10} s each)"
