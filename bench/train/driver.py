"""bench/train driver: steps/s of whole training steps in celo against PyTorch and JAX on the same models.

Run through bench/train/run.sh; see that file for the options. Every round runs each tool once (celo, torch and
JAX for each model) in a rotated order, waiting a little for a quiet CPU before each; the report gives, per tool,
the median over rounds and the min-max, and per model the ratios celo / best torch optimizer and celo / best JAX
CPU count (ratio of the medians, and the min-max of the per-round ratios, each round's numbers measured close
in time).

celo: `build/celo run bench/train/MODEL.celo --quiet` runs `warm`, `short` and `long` (same task, more steps);
steps/s = (long - short steps) / (long - short wall_s), wall_s from the runs' CSV logs (they start after data
loading and JIT and include the final eval; the difference cancels both, and each run's first steps).
torch: bench/train/torch_train.py MODEL, one line per AdamW implementation (fused, foreach, for-loop).
JAX: bench/train/jax_train.py MODEL --cpus N, one process per CPU count, in the benchmarks' own virtual
environment (build/bench/venv; jax and optax installed there from PyPI on first use, versions pinned in benchlib.JAX_REQS).
Progress goes to stderr, the report (markdown) to stdout.
"""
import argparse
import datetime
import os
import re
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import (JAX_REQS, ROOT, TORCH_REQS, VENV, QuietGate, first_line, git_rev, last_row, machine_info,  # noqa: E402
                      run_cmd, stats, venv_python, write_section)

SECTION = "## Training step throughput (bench/train)"
# key: (what, batch, target ratio celo/torch, target ratio celo/JAX or None where no JAX peer, from the issues)
MODELS = {
    "mlp8": ("MLP 64-32-10, 8x8 Fashion-MNIST", 64, 2.0, 1.2),
    "mlp28": ("MLP 784-128-10, 28x28 Fashion-MNIST", 128, 2.0, None),
    "gpt": ("GPT dim 128, 4 heads, 2 layers, seq 64, KJV chars", 16, 1.0, None),
}
OPTS = ("fused", "foreach", "forloop", "fused@1")  # torch AdamW implementation[@threads]
IMPLS = ("fused", "foreach", "forloop")
JAX_MODELS = ("mlp8", "mlp28", "gpt")  # what bench/train/jax_train.py trains
JAX_CPUS = (2, 1)
# pinned so that every machine measures the same JAX; versions pip resolved for Python 3.11 (December 2026)
TOOLS = ("celo", "torch", "jax")


def opt_label(o):
    """'fused' -> 'fused', 'forloop@1' -> 'for-loop, 1 thread'."""
    impl, _, nt = o.partition("@")
    impl = {"forloop": "for-loop"}.get(impl, impl)
    return impl + (f", {nt} thread{'s' if nt != '1' else ''}" if nt else "")


def log(msg):
    print(f"bench/train: {msg}", file=sys.stderr, flush=True)


def last_line(s):
    """Last non-empty line of a peer's stderr (a traceback's last line says what failed), repo-relative."""
    lines = [ln for ln in s.splitlines() if ln.strip()]
    return first_line(lines[-1]) if lines else ""


class Celo:
    """celo's column for one model: steps/s of the loop from the short/long difference."""

    def __init__(self, model, celo, env):
        self.model, self.celo, self.env = model, celo, env
        self.values, self.error, self.disabled, self.failures = [], None, False, 0
        self.vocab = None
        self.verbose_once = model == "gpt"  # the first GPT run prints the KJV vocabulary (passed to torch)

    def run(self):
        csvs = [os.path.join(ROOT, "build", "bench", "train", f"{self.model}_{k}.csv") for k in ("short", "long")]
        for p in csvs:
            if os.path.exists(p):
                os.unlink(p)
        cmd = [self.celo, "run", f"bench/train/{self.model}.celo"] + ([] if self.verbose_once else ["--quiet"])
        rc, out, err = run_cmd(cmd, 300, self.env)
        if self.verbose_once:
            m = re.search(r"vocabulary (\d+)", err)
            self.vocab = int(m.group(1)) if m else None
            self.verbose_once = False
        s, l = (last_row(p) for p in csvs)
        if rc != 0 or not s or not l or l[1] <= s[1] or l[0] <= s[0]:
            why = first_line(err) or first_line(out) or (f"exit {rc}" if rc else "no CSV logs")
            self.error = self.error or why
            self.failures += 1
            self.disabled = self.failures >= 2
            log(f"  celo {self.model}: failed: {why}")
            return None
        self.failures = 0
        v = (l[0] - s[0]) / (l[1] - s[1])
        self.values.append(v)
        log(f"  celo {self.model}: {v:.1f} steps/s")
        return v


class Torch:
    """torch's columns for one model: one process per round, one value per AdamW implementation."""

    def __init__(self, model, opts, target_s, env, vocab_from, python):
        self.model, self.opts, self.target_s, self.env, self.vocab_from = model, list(opts), target_s, env, vocab_from
        self.python = python
        self.values = {o: [] for o in opts}
        self.errors = {}
        self.params = None
        self.disabled = False
        self.failures = 0

    def run(self):
        live = [o for o in self.opts if o not in self.errors]
        if not live:
            self.disabled = True
            return {}
        cmd = [self.python, "bench/train/torch_train.py", self.model, "--target-s", str(self.target_s)]
        for o in live:
            cmd += ["--opt", o]
        if self.vocab_from is not None and self.vocab_from.vocab:
            cmd += ["--vocab", str(self.vocab_from.vocab)]
        rc, out, err = run_cmd(cmd, 300, self.env)
        got = {}
        for o in live:
            line = next((ln for ln in out.splitlines() if ln.startswith(f"torch {self.model} opt={o} ")), None)
            m = re.search(r"steps_per_s=([0-9.eE+-]+)", line or "")
            if m:
                got[o] = float(m.group(1))
                self.values[o].append(got[o])
                p = re.search(r"params=(\d+)", line)
                self.params = int(p.group(1)) if p else self.params
            elif line and "error=" in line:
                self.errors[o] = line.split("error=", 1)[1]
            elif not self.values[o]:
                self.errors.setdefault(o, last_line(err) or f"exit {rc}")
        if got:
            log(f"  torch {self.model}: " + ", ".join(f"{opt_label(o)} {v:.1f}" for o, v in got.items()) + " steps/s")
        else:
            self.failures += 1
            self.disabled = self.failures >= 2
            log(f"  torch {self.model}: failed: {last_line(err) or f'exit {rc}'}")
        return got

    def best(self):
        """(median, opt) of the fastest implementation by median, or (None, None)."""
        meds = [(statistics.median(v), o) for o, v in self.values.items() if v]
        return max(meds) if meds else (None, None)


class Jax:
    """JAX's columns for one model: per round one process per CPU count (XLA reads its thread settings once,
    at start), one value each; the value is jax_train.py's median over its timed scans."""

    def __init__(self, model, cpus, target_s, python, vocab_from):
        self.model, self.cpus, self.target_s, self.python = model, list(cpus), target_s, python
        self.vocab_from = vocab_from
        self.values = {n: [] for n in cpus}
        self.util = {n: [] for n in cpus}  # process CPU time / wall time of the timed scans
        self.busy = {n: [] for n in cpus}  # threads with a tenth or more of that CPU time
        self.errors = {}
        self.info = {}  # jax version, what set the CPUs, per CPU count
        self.disabled = False
        self.failures = 0

    def run(self):
        live = [n for n in self.cpus if n not in self.errors]
        if not live:
            self.disabled = True
            return {}
        got = {}
        for n in live:
            cmd = [self.python, "bench/train/jax_train.py", self.model, "--cpus", str(n), "--target-s",
                   str(self.target_s)]
            if self.vocab_from is not None and self.vocab_from.vocab:
                cmd += ["--vocab", str(self.vocab_from.vocab)]
            rc, out, err = run_cmd(cmd, 300)
            line = next((ln for ln in out.splitlines() if ln.startswith(f"jax {self.model} cpus={n} ")), "")
            try:
                kv = dict(t.split("=", 1) for t in shlex.split(line)[3:] if "=" in t)
            except ValueError:
                kv = {}
            if "steps_per_s" in kv:
                got[n] = float(kv["steps_per_s"])
                self.values[n].append(got[n])
                if "cpu_util" in kv:
                    self.util[n].append(float(kv["cpu_util"]))
                if "busy_threads" in kv:
                    self.busy[n].append(int(kv["busy_threads"]))
                self.info[n] = kv
            elif "error=" in line:
                self.errors[n] = line.split("error=", 1)[1]
            elif not self.values[n]:
                self.errors.setdefault(n, last_line(err) or f"exit {rc}")
        if got:
            self.failures = 0
            log(f"  jax {self.model}: " + ", ".join(f"{cpu_label(n)} {v:.1f}" for n, v in got.items()) +
                " steps/s")
        else:
            self.failures += 1
            self.disabled = self.failures >= 2
            log(f"  jax {self.model}: failed: {'; '.join(self.errors.values()) or 'no result'}")
        return got

    def best(self):
        """(median, cpus) of the fastest CPU count by median, or (None, None)."""
        meds = [(statistics.median(v), n) for n, v in self.values.items() if v]
        return max(meds) if meds else (None, None)


def nthr(n):
    return f"{n:g} thread{'s' if n != 1 else ''}"


def cpu_label(n):
    """JAX's configurations are CPU counts (affinity): XLA picks its own threads on them."""
    return f"{n} CPU{'s' if n != 1 else ''}"


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(prog="bench/train/run.sh")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5; at least 3 unless --budget-s ends it)")
    ap.add_argument("--budget-s", type=float, default=420, help="stop starting rounds after ~this many seconds")
    ap.add_argument("--max-wait-s", type=float, default=40,
                    help="total seconds to wait for other work on the machine to pause (default 40)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--opts", default=",".join(OPTS),
                    help="torch configurations: AdamW implementation (fused, foreach, forloop), optionally @N "
                         "threads (default: " + ",".join(OPTS) + ")")
    ap.add_argument("--target-s", type=float, default=1.5, help="timed seconds per torch configuration")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (fused AdamW) once per model, after the rounds (minutes)")
    ap.add_argument("--write", action="store_true", help="update the section in docs/results.md in place")
    ap.add_argument("--results", default="docs/results.md", help="file --write updates (repo-relative)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated subset of " + ",".join(TOOLS) + " to run (e.g. --tools jax)")
    ap.add_argument("--jax-cpus", default=",".join(map(str, JAX_CPUS)),
                    help="JAX CPU counts (affinity), one process each (default "
                         + ",".join(map(str, JAX_CPUS)) + ")")
    ap.add_argument("--celo", default="build/celo", help="celo binary (repo-relative)")
    ap.add_argument("--cmd", default="bash bench/train/run.sh", help=argparse.SUPPRESS)
    a = ap.parse_args()
    t_start = time.time()
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        log(f"load average {load0:.2f}: other work is running; expect a wide spread")
    models = [m for m in a.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m}")
    opts = [o for o in a.opts.split(",") if o]
    for o in opts:
        impl, _, nt = o.partition("@")
        if impl not in IMPLS or (nt and not nt.isdigit()):
            ap.error(f"unknown torch configuration {o} (IMPL[@THREADS], IMPL one of {', '.join(IMPLS)})")
    tools = [t for t in a.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t} (one of {', '.join(TOOLS)})")
    tools = [t for t in tools if not (t == "torch" and a.no_torch) and not (t == "jax" and a.no_jax)]
    try:
        jcpus = [int(n) for n in a.jax_cpus.split(",") if n]
    except ValueError:
        ap.error("--jax-cpus: comma-separated CPU counts")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    celo_ok = os.access(os.path.join(ROOT, a.celo), os.X_OK)
    os.makedirs(os.path.join(ROOT, "build", "bench", "train"), exist_ok=True)
    jax_py, jax_why = None, None
    if "jax" in tools and any(m in JAX_MODELS for m in models):
        jax_py, jax_why = venv_python(JAX_REQS, log)
        if jax_why:
            log(f"JAX: {jax_why}")

    torch_py, torch_why = None, None
    if "torch" in tools:
        torch_py, torch_why = venv_python(TORCH_REQS, log)
        if torch_why:
            log(f"torch: {torch_why}")

    celos, torches, jaxes, jobs = {}, {}, {}, []
    for m in models:
        c = celos[m] = Celo(m, a.celo, env)
        if not celo_ok:
            c.error, c.disabled = f"{a.celo} not found (run make)", True
        t = torches[m] = Torch(m, opts, a.target_s, env, c if m == "gpt" else None, torch_py)
        if "torch" in tools and torch_why:
            t.errors, t.disabled = {o: torch_why for o in opts}, True
        j = jaxes[m] = Jax(m, jcpus, a.target_s, jax_py, c if m == "gpt" else None)
        if m not in JAX_MODELS:
            j.disabled = True
        elif "jax" in tools and jax_why:
            j.errors, j.disabled = {n: jax_why for n in jcpus}, True
        c.disabled |= "celo" not in tools
        t.disabled |= "torch" not in tools
        j.disabled |= "jax" not in tools
        jobs += [(f"celo {m}", c), (f"torch {m}", t), (f"jax {m}", j)]
    per_round = {m: [] for m in models}  # celo / best torch of the same round
    per_round_jax = {m: [] for m in models}  # celo / best JAX of the same round
    gate = QuietGate(log, total_s=a.max_wait_s)
    rounds_done = 0
    for r in range(a.rounds):
        t0 = time.time()
        k = r % len(jobs)
        got = {}
        for name, tool in jobs[k:] + jobs[:k]:  # rotated so that no tool always runs first or last
            if tool.disabled:
                continue
            log(f"round {r + 1}/{a.rounds}: {name}")
            gate.wait()
            got[name] = tool.run()
        for m in models:
            cv, tv, jv = got.get(f"celo {m}"), got.get(f"torch {m}"), got.get(f"jax {m}")
            if cv and tv:
                per_round[m].append(cv / max(tv.values()))
            if cv and jv:
                per_round_jax[m].append(cv / max(jv.values()))
        rounds_done += 1
        took = time.time() - t0
        elapsed = time.time() - t_start
        if r + 1 < a.rounds and rounds_done >= 3 and elapsed + took > a.budget_s:
            log(f"stopping after {rounds_done} rounds ({elapsed:.0f} s; budget {a.budget_s:.0f} s)")
            break

    compiled = {}
    if a.compile and "torch" in tools:
        for m in models:
            log(f"torch.compile {m} (fused AdamW)")
            gate.wait()
            rc, out, err = run_cmd([torch_py or sys.executable, "bench/train/torch_train.py", m, "--compile", "--opt", "fused",
                                    "--target-s", "1.0"] +
                                   (["--vocab", str(celos[m].vocab)] if celos[m].vocab else []), 600, env)
            mm = re.search(r"steps_per_s=([0-9.eE+-]+) .*warmup_s=([0-9.]+)", out)
            compiled[m] = (float(mm.group(1)), float(mm.group(2))) if mm else (
                None, (last_line(err) or f"exit {rc}"))
            log(f"  torch.compile {m}: {compiled[m]}")

    # ---- report
    lines = []
    now = datetime.datetime.now().astimezone()
    lines.append(f"- Date: {now:%Y-%m-%d %H:%M %Z}; commit {git_rev()}")
    lines.append(f"- Machine: {machine_info()}")
    lines.append(f"- Command: `{a.cmd}`; {rounds_done} round{'s' if rounds_done != 1 else ''}, each tool once per "
                 "round in rotated order; 2 threads (celo: OMP_NUM_THREADS=2; torch: torch.set_num_threads(2), except "
                 "the configurations marked 1 thread; JAX: 2 CPUs, or 1 CPU as marked, see below)")
    lines.append("- A step: gather a batch (shuffled epoch for the MLPs, random windows for the GPT), forward, "
                 "loss, backward, AdamW step over every tensor (lr 1e-3, wd 1e-4 for the MLPs; lr 3e-3, wd 0.01 "
                 "for the GPT; betas 0.9, 0.999, eps 1e-8; constant lr). celo: `build/celo run "
                 "bench/train/MODEL.celo --quiet`, steps/s = (long - short steps) / (long - short wall_s) of two "
                 "runs in one process (CSV logs: no data loading, JIT or final eval). torch: "
                 "bench/train/torch_train.py, the same models (nn.Linear + ReLU; GPT pre-LN blocks with "
                 "`scaled_dot_product_attention(is_causal=True)`, gelu tanh), mean over ~"
                 f"{a.target_s:g} s of steps after warm-up. JAX: bench/train/jax_train.py, the same models, "
                 "data, init and hyper-parameters (optax.adamw; GPT attention `jax.nn.dot_product_attention("
                 "is_causal=True)`), the whole loop one `jax.jit`-ed `lax.scan` over N steps (batch rows or windows "
                 "gathered inside the scan by indices drawn before it: per-epoch permutations, random window "
                 f"starts), median of 3 scans filling ~{a.target_s:g} s after compiling and one untimed run.")
    lines.append("- Where celo's step spends its time (phases and layers): `bash bench/train/profile.sh`.")
    lines.append("- steps/s: median over rounds (min-max). celo / torch: the ratio of the medians against the "
                 "fastest torch configuration by median (AdamW implementation, threads), and (min-max) of the "
                 "per-round ratios (celo against the fastest torch configuration of the same round); celo / JAX "
                 "likewise against the fastest JAX CPU count.")
    lines.append("")
    lines.append("| model | batch | params | celo steps/s | torch steps/s (fastest configuration) | celo / torch | "
                 "target | JAX steps/s (fastest CPU count) | celo / JAX | target |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = {}

    def ratio_text(cs, xs, rr, target):
        if not (cs and xs):
            return "n/a"
        r = f"**{cs[0] / xs[0]:.2f}**" + (f" ({rr[1]:.2f}-{rr[2]:.2f})" if rr else "")
        if target:
            r += " met" if cs[0] / xs[0] >= target else " **not met**"
        return r

    for m in models:
        what, batch, target, jtarget = MODELS[m]
        c, t, j = celos[m], torches[m], jaxes[m]
        cs = stats(c.values)
        tv, to = t.best()
        ts = stats(t.values[to]) if to else None
        jv, jn = j.best()
        js = stats(j.values[jn]) if jn else None
        ctext = f"**{fmt(cs[0])}** ({fmt(cs[1])}-{fmt(cs[2])})" if cs else "n/a"
        ttext = f"**{fmt(ts[0])}** ({fmt(ts[1])}-{fmt(ts[2])}) {opt_label(to)}" if ts else "n/a"
        jtext = f"**{fmt(js[0])}** ({fmt(js[1])}-{fmt(js[2])}) {cpu_label(jn)}" if js else "n/a"
        params = t.params or next((int(i["params"]) for i in j.info.values() if "params" in i), None)
        lines.append(f"| {what} | {batch} | {params or '?'} | {ctext} | {ttext} | "
                     f"{ratio_text(cs, ts, stats(per_round[m]), target)} | ≥ {target:g}x | {jtext} | "
                     f"{ratio_text(cs, js, stats(per_round_jax[m]), jtarget)} | "
                     f"{f'≥ {jtarget:g}x' if jtarget else '-'} |")
        if not cs and c.error:
            notes.setdefault(c.error, []).append(f"celo {m}")
        for o, e in t.errors.items():
            notes.setdefault(e, []).append(f"torch {m} {opt_label(o)}")
        for n, e in j.errors.items():
            notes.setdefault(e, []).append(f"JAX {m} {cpu_label(n)}")
        if m not in JAX_MODELS and "jax" in tools:
            notes.setdefault("no JAX peer in bench/train/jax_train.py", []).append(f"JAX {m}")
    lines.append("")
    lines.append("Every torch configuration (AdamW implementation, threads) and JAX CPU count, steps/s median "
                 "(min-max):")
    lines.append("")
    lines.append("| model | celo ms/step | " + " | ".join(f"torch {opt_label(o)}" for o in opts) + " | " +
                 " | ".join(f"JAX {cpu_label(n)}" for n in jcpus) + " |")
    lines.append("|---|---:|" + "---:|" * (len(opts) + len(jcpus)))
    for m in models:
        cs = stats(celos[m].values)
        cells = []
        for s in [stats(torches[m].values[o]) for o in opts] + [stats(jaxes[m].values[n]) for n in jcpus]:
            cells.append(f"{fmt(s[0])} ({fmt(s[1])}-{fmt(s[2])})" if s else "n/a")
        lines.append(f"| {m} | {1e3 / cs[0]:.3f} | " if cs else f"| {m} | n/a | ")
        lines[-1] += " | ".join(cells) + " |"
    if compiled:
        lines.append("")
        lines.append("torch.compile (forward + loss compiled, fused AdamW), one run: " + "; ".join(
            f"{m} {fmt(v)} steps/s after {w:.0f} s of compiling and warm-up" if v else f"{m} n/a ({w})"
            for m, (v, w) in compiled.items()) + ".")
    jinfo = [(m, n, jaxes[m]) for m in models for n in jcpus if jaxes[m].values[n]]
    if jinfo:
        i = jinfo[0][2].info[jinfo[0][1]]
        lines.append("")
        lines.append(f"JAX: jax {i.get('jax', '?')}, optax {i.get('optax', '?')} (pip, in {VENV}). XLA's CPU "
                     "client has no thread-count setting; it sizes its thread pools from the CPUs the process may "
                     "use, so a JAX configuration is a CPU count: the process restricted to its first N CPUs "
                     "(sched_setaffinity, as `taskset -c`), for 1 CPU also XLA_FLAGS=--xla_cpu_multi_thread_eigen="
                     "false. CPU time / wall time of the timed scans and the threads that had a tenth or more of "
                     "it, median over rounds: " + "; ".join(
                         f"{m} {cpu_label(n)} {statistics.median(j.util[n]):.2f}"
                         + (f", {nthr(statistics.median(j.busy[n]))}" if j.busy[n] else "")
                         for m, n, j in jinfo if j.util[n]) + " (below the CPU count: other work on the machine "
                     "took CPU time, or XLA left a CPU idle).")
    lines.append("")
    lines.append(f"Load average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}; waited "
                 f"{gate.waited:.0f} s for other work to pause, {gate.busy_runs} of {gate.runs} measurements "
                 "started while the CPUs were still busy (other work on the machine shows up as spread; a busy "
                 "neighbour slows 2-thread torch far more than celo).")
    if notes:
        lines.append("")
        lines.append("n/a: " + "; ".join(f"{', '.join(ts)}: {e}" for e, ts in notes.items()))
    body = "\n".join(lines) + "\n"
    print(SECTION)
    print()
    print(body)
    log(f"done in {time.time() - t_start:.0f} s")
    if a.write:
        write_section(os.path.join(ROOT, a.results), SECTION, body)
        log(f"updated {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
