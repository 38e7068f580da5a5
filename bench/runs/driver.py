"""bench/runs driver: many small training runs in one process, side by side against one after another, and the
thread count celo picks for one run against fixed thread counts.

Run through bench/runs/run.sh. Two measurements, each in rounds that alternate the configurations (rotated, with
a short wait for a quiet CPU before each):

1. Side by side. A sweep of N runs of the 8x8 Fashion-MNIST MLP (64-32-10, batch 64, AdamW, 16 learning rates:
   the inner runs of meta-training look like this) as one `celo run`: by default the runs go side by side, one per
   thread (runtime/train.c); CELO_SIDE_BY_SIDE=0 runs them one after another. Total steps/s =
   N (S2 - S1) / (T2 - T1) from two processes of S1 and S2 steps per run (T: wall time of the whole process;
   the difference cancels start-up, data loading, JIT and the final evaluations).
2. Thread policy. bench/train/MODEL.celo (mlp8, mlp28, gpt): the loop's steps/s from the short/long CSV logs, as
   bench/train measures it, with the default thread choice (2 threads available), OMP_NUM_THREADS=1, and
   CELO_RUN_THREADS=2 (two threads forced).
3. JAX's one run of the same 8x8 MLP (bench/train/jax_train.py in the benchmarks' venv, its best of 1 and 2 CPUs),
   against 2 celo runs side by side.
"""
import argparse
import datetime
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import (JAX_REQS, ROOT, QuietGate, first_line, git_rev, last_row, machine_info, run_cmd,  # noqa: E402
                      stats, venv_python, write_section)

SECTION = "## Runs side by side and the thread policy (bench/runs)"
OUT = os.path.join(ROOT, "build", "bench", "runs")
MODELS = ("mlp8", "mlp28", "gpt")


def log(msg):
    print(f"bench/runs: {msg}", file=sys.stderr, flush=True)


def sweep_file(n, steps):
    path = os.path.join(OUT, f"sweep{n}_{steps}.celo")
    with open(path, "w") as f:
        f.write(f"""# bench/runs: {n} runs of the 8x8 MLP with {steps} steps each (written by bench/runs/driver.py)
task fm8 {{ data = fashion_mnist(size = 8, normalize = 1); model = mlp(64, [32], 10); loss = cross_entropy; batch = 64; }}
train base {{ task = fm8; optimizer = adamw(lr = 1e-3, wd = 1e-4); steps = {steps}; seed = 1; }}
sweep many {{ train = base; lr = logspace(1e-4, 1e-2, {n}); }}
""")
    return path


def timed(cmd, env):
    t0 = time.perf_counter()
    rc, out, err = run_cmd(cmd, 900, env)
    return (time.perf_counter() - t0) if rc == 0 else None, first_line(err) or first_line(out)


def loop_rate(model, env, celo):
    """steps/s of bench/train/MODEL.celo's loop (short/long CSV difference), or None."""
    csvs = [os.path.join(ROOT, "build", "bench", "train", f"{model}_{k}.csv") for k in ("short", "long")]
    for p in csvs:
        if os.path.exists(p):
            os.unlink(p)
    rc, out, err = run_cmd([celo, "run", f"bench/train/{model}.celo", "--quiet"], 600, env)
    s, l = (last_row(p) for p in csvs)
    if rc != 0 or not s or not l or l[1] <= s[1]:
        log(f"  {model}: failed: {first_line(err) or first_line(out)}")
        return None
    return (l[0] - s[0]) / (l[1] - s[1])


def fmt(st, unit=""):
    if not st:
        return "n/a"
    med, lo, hi, _ = st
    return f"{med:,.0f}{unit} ({lo:,.0f}-{hi:,.0f})"


def main():
    ap = argparse.ArgumentParser(prog="bench/runs/run.sh")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="16,2", help="numbers of runs side by side (default 16,2)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--write", action="store_true", help="update the section in docs/results.md in place")
    ap.add_argument("--results", default="docs/results.md")
    ap.add_argument("--celo", default="build/celo")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--cmd", default="bash bench/runs/run.sh", help=argparse.SUPPRESS)
    a = ap.parse_args()
    celo = os.path.join(ROOT, a.celo)
    if not os.access(celo, os.X_OK):
        log(f"{a.celo} not found (run make); nothing measured")
        return
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(os.path.join(ROOT, "build", "bench", "train"), exist_ok=True)
    base = dict(os.environ, OMP_NUM_THREADS="2")
    base.pop("CELO_SIDE_BY_SIDE", None)
    base.pop("CELO_RUN_THREADS", None)
    gate = QuietGate(log, total_s=60)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    models = [m for m in a.models.split(",") if m]

    # ---- 1. side by side
    side = {}  # (n, mode) -> [total steps/s]
    plans = {}
    for n in sizes:
        s1, s2 = (1000, 6000) if n >= 8 else (4000, 40000)
        plans[n] = (s1, s2, sweep_file(n, s1), sweep_file(n, s2))
    modes = {"side by side (default)": {}, "one after another": {"CELO_SIDE_BY_SIDE": "0"}}
    for r in range(a.rounds):
        order = list(modes.items())
        order = order[r % 2:] + order[:r % 2]
        for n in sizes:
            s1, s2, f1, f2 = plans[n]
            for name, extra in order:
                env = dict(base, **extra)
                gate.wait()
                t1, e1 = timed([celo, "run", f1, "--only", "many", "--quiet"], env)
                t2, e2 = timed([celo, "run", f2, "--only", "many", "--quiet"], env)
                if t1 is None or t2 is None or t2 <= t1:
                    log(f"  {n} runs, {name}: failed: {e1 or e2}")
                    continue
                v = n * (s2 - s1) / (t2 - t1)
                side.setdefault((n, name), []).append(v)
                log(f"round {r + 1}: {n} runs, {name}: {v:,.0f} steps/s")

    # ---- JAX's one run of the same MLP (bench/train/jax_train.py, its best of 1 and 2 CPUs), for "2 runs side by
    # side against JAX's one run"
    jax = []
    jax_py, jax_why = (None, "--no-jax") if a.no_jax else venv_python(JAX_REQS, log)
    for r in range(a.rounds if jax_py else 0):
        best = None
        for cpus in (2, 1):
            gate.wait()
            rc, out, err = run_cmd([jax_py, "bench/train/jax_train.py", "mlp8", "--cpus", str(cpus), "--target-s", "1.5"],
                                   300)
            m = re.search(r"steps_per_s=([0-9.eE+-]+)", out)
            if m:
                best = max(best or 0, float(m.group(1)))
            else:
                jax_why = first_line(err) or first_line(out) or f"exit {rc}"
        if best:
            jax.append(best)
            log(f"round {r + 1}: JAX one run (best of 1 and 2 CPUs): {best:,.0f} steps/s")

    # ---- 2. thread policy
    configs = {"default": {}, "1 thread": {"OMP_NUM_THREADS": "1"}, "2 threads": {"CELO_RUN_THREADS": "2"}}
    pol = {}  # (model, config) -> [steps/s]
    for r in range(a.rounds):
        order = list(configs.items())
        order = order[r % 3:] + order[:r % 3]
        for m in models:
            for name, extra in order:
                env = dict(base, **extra)
                gate.wait()
                v = loop_rate(m, env, celo)
                if v:
                    pol.setdefault((m, name), []).append(v)
                    log(f"round {r + 1}: {m}, {name}: {v:,.1f} steps/s")

    # ---- report
    now = datetime.datetime.now().astimezone()
    L = [f"- Date: {now:%Y-%m-%d %H:%M %Z}; commit {git_rev()}",
         f"- Machine: {machine_info()}",
         f"- Command: `{a.cmd}`; {a.rounds} rounds, configurations alternated in rotated order; OMP_NUM_THREADS=2 "
         "(the machine's 2 cores) unless noted.",
         "- Side by side: one `celo run` of a sweep of N runs of the 8x8 MLP (64-32-10, batch 64, AdamW), total "
         "steps/s = N (S2 - S1) / (T2 - T1) from whole processes of S1 and S2 steps per run. One after another: "
         "`CELO_SIDE_BY_SIDE=0`, each run then on the one thread the policy gives it. Same numbers either way "
         "(tests/run.sh checks the CSVs).",
         "- Thread policy: steps/s of bench/train/MODEL.celo's loop (short/long CSV difference, as bench/train); "
         "default = celo's own choice with 2 threads available; 1 thread = `OMP_NUM_THREADS=1`; 2 threads = "
         "`CELO_RUN_THREADS=2`. Median (min-max) over rounds.",
         "",
         "| runs | side by side, total steps/s | one after another, total steps/s | side by side / one after another |",
         "|---:|---:|---:|---:|"]
    for n in sizes:
        a_ = stats(side.get((n, "side by side (default)"), []))
        b_ = stats(side.get((n, "one after another"), []))
        ratio = f"**{a_[0] / b_[0]:.2f}**" if a_ and b_ else "n/a"
        L.append(f"| {n} | {fmt(a_)} | {fmt(b_)} | {ratio} |")
    js = stats(jax)
    two = stats(side.get((2, "side by side (default)"), []))
    L += ["", f"JAX, one run of the same MLP (bench/train/jax_train.py mlp8, jitted lax.scan, optax AdamW; best of 1 and 2 "
          f"CPUs per round): {fmt(js) if js else 'n/a (' + str(jax_why) + ')'} steps/s. 2 celo runs side by side / JAX's "
          f"one run: " + (f"**{two[0] / js[0]:.2f}** (target 2)" if js and two else "n/a") + "."]
    L += ["", "| model | default steps/s | 1 thread | 2 threads | default / best fixed |", "|---|---:|---:|---:|---:|"]
    for m in models:
        d, o, t = (stats(pol.get((m, c), [])) for c in ("default", "1 thread", "2 threads"))
        best = max([x[0] for x in (o, t) if x], default=None)
        ratio = f"**{d[0] / best:.3f}**" if d and best else "n/a"
        L.append(f"| {m} | {fmt(d)} | {fmt(o)} | {fmt(t)} | {ratio} |")
    body = "\n".join(L) + "\n"
    print(SECTION + "\n\n" + body)
    if a.write:
        write_section(os.path.join(ROOT, a.results), SECTION, body)
        log(f"wrote {a.results}")


if __name__ == "__main__":
    main()
