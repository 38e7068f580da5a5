#!/usr/bin/env bash
# bench/meta/recipe_cost.sh: costs the full Celo2 recipe (100,000 outer steps of bench/meta/recipe.celo) from a
# measured run of STEPS outer steps (default 200): seconds per outer step = the wall-clock time between outer
# step 20 and the last over the steps between (the log's wall_s column; the first steps include building the 64
# inner runs and loading data), then hours for 100,000 on this machine, and that time over N for N machines
# (a projection: per outer step the ranks exchange only the per-step losses, [pairs][50] doubles per family).
# Prints a markdown report; --write puts it in docs/results.md ("Meta-training: the full Celo2 recipe, costed").
#
#   bash bench/meta/recipe_cost.sh [--write] [--steps N]
set -u
cd "$(dirname "$0")/../.." || exit 1
write=0
steps=200
while [ $# -gt 0 ]; do
    case $1 in
    --write) write=1 ;;
    --steps) steps=$2; shift ;;
    *) echo "usage: bash bench/meta/recipe_cost.sh [--write] [--steps N]" >&2; exit 1 ;;
    esac
    shift
done
mkdir -p build/bench/meta
[ -x build/celo ] || make -s build/celo || exit 1
load0=$(cut -d' ' -f1 /proc/loadavg)
if ! build/celo run bench/meta/recipe.celo --set steps="$steps" --quiet 2>build/bench/meta/recipe.err; then
    echo "bench/meta: the recipe run failed: $(head -c 400 build/bench/meta/recipe.err)" >&2
    exit 1
fi
load1=$(cut -d' ' -f1 /proc/loadavg)
python3 - "$steps" "$write" "$load0" "$load1" <<'PY'
import csv, datetime, os, re, subprocess, sys
steps, write, load0, load1 = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open("build/bench/meta/recipe.csv")))
w = {int(r["step"]): float(r["wall_s"]) for r in rows}
rates = sorted(float(r["inner_steps_per_s"]) for r in rows if int(r["step"]) > 20)
s0 = 20 if steps > 40 else 1
per = (w[steps] - w[s0]) / (steps - s0)
inner = 4 * 8 * 2 * 50
hours = per * 100000 / 3600
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
lines = ["## Meta-training: the full Celo2 recipe, costed (bench/meta/recipe_cost.sh)", "",
         f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; commit {commit}; {cpu}, {os.cpu_count()} cores",
         f"- Command: `bash bench/meta/recipe_cost.sh --write` (bench/meta/recipe.celo: 4 families × 8 antithetic pairs "
         f"× 2 × truncation 50 = {inner} inner steps of celo2_meta on the 8×8 MLP per outer step; horizons 100..2000; "
         f"global reparameterization; {os.cpu_count()} threads); {steps} outer steps measured, seconds per outer step "
         f"from the log's wall clock between step {s0} and {steps}. Load average (1 min) at start / end: {load0} / {load1}.",
         "",
         "| seconds per outer step | inner particle-steps/s (median over steps) | 100,000 outer steps, this machine | "
         "on 2 / 4 / 8 machines (projected) | authors' JAX loop, measured here | target |",
         "|---:|---:|---:|---:|---:|---|",
         f"| {per:.3f} | {rates[len(rates) // 2]:,.0f} | **{hours:.1f} h** | {hours / 2:.1f} / {hours / 4:.1f} / "
         f"{hours / 8:.1f} h | 0.21 s per family, 23–24 h (issue 11) | ≤ 8 h: **{'met' if hours <= 8 else 'not met'}** |",
         "",
         "The projection divides by the number of machines: every rank unrolls its share of the pairs and they "
         "exchange only the per-step losses (docs/meta.md, MPI)."]
text = "\n".join(lines) + "\n"
print(text)
if write:
    p = "docs/results.md"
    doc = open(p).read()
    title = lines[0]
    if title in doc:
        a = doc.index(title)
        b = doc.find("\n## ", a + len(title))
        doc = doc[:a] + text + (doc[b + 1:] if b >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    open(p, "w").write(doc)
PY
