"""bench/optim driver: optimizer-step throughput of celo against hand-written C, PyTorch and a STREAM bound.

Run through bench/optim/run.sh (which builds the C baselines first); see that file for the options.
Every tool runs once per round, in a rotated order, for several rounds; each run reports params/s (the median
step time of its own repetitions) and the report gives, per tool, the median over the runs and their min-max.
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
from benchlib import (ROOT, TORCH_REQS, QuietGate, first_line, git_rev, machine_info, run_cmd, stats,  # noqa: E402
                      venv_python, write_section)

RULES = ("adamw", "lion", "adafactor")
# Bytes each rule must move per parameter (float32), counting every array read and written once per pass.
BYTES = {
    "adamw": (28, "read p, g, m, v; write p, m, v"),
    "lion": (20, "read p, g, m; write p, m"),
    "adafactor": (24, "3 passes: read p, g (row/col sums of g², sum p²); read g (sum u²); read p, g, write p"),
}
TORCH_CONFIGS = {
    "adamw": ["adamw-foreach", "adamw-fused"],
    "lion": ["lion-eager"],
    "adafactor": ["adafactor-foreach", "adafactor-single"],
}
TORCH_LABEL = {
    "adamw-foreach": "torch AdamW foreach",
    "adamw-fused": "torch AdamW fused",
    "adamw-single": "torch AdamW for-loop",
    "lion-eager": "torch Lion (eager ops)",
    "adafactor-foreach": "torch Adafactor foreach",
    "adafactor-single": "torch Adafactor for-loop",
}
SECTION = "## Optimizer step throughput (bench/optim)"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def last_value(text, key):
    """The number in the last non-empty line if that line is KEY=<number>."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    m = re.fullmatch(re.escape(key) + r"=\s*([-+0-9.eEinfa]+)", lines[-1])
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:
        return None


class Tool:
    """One column of measurements: a rule x implementation."""

    def __init__(self, rule, name, cmd=None, timeout=60):
        self.rule, self.name, self.cmd, self.timeout = rule, name, cmd, timeout
        self.values = []  # params/s, one per successful run
        self.by_round = {}  # round -> params/s, for ratios of tools measured in the same round
        self.round = 0
        self.error = None  # why there are no values
        self.disabled = False
        self.failures = 0  # consecutive

    def add(self, value, error=None):
        if value is not None and value > 0:
            self.values.append(value)
            self.by_round[self.round] = value
        elif error and not self.values:
            self.error = error

    def run(self):
        rc, out, err = run_cmd(self.cmd, self.timeout)
        v = last_value(out, "params_per_s") if rc == 0 else None
        if v is None:
            why = first_line(err) or first_line(out[-300:]) or f"exit {rc}"
            if rc not in (None, 0):
                why = f"exit {rc}: {why}"
            self.add(None, why)
            self.failures += 1
            self.disabled = self.failures >= 2  # retried once (a binary being rebuilt), then left out
        else:
            self.failures = 0
            self.add(v)
            log(f"bench/optim:   {self.rule} {self.name}: {v / 1e6:.0f} Mparams/s")


def fmt_m(v):
    """params/s -> Mparams/s text."""
    if v is None:
        return "n/a"
    return f"{v / 1e6:.0f}" if v >= 1e8 else f"{v / 1e6:.1f}"


def fmt_r(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def main():
    ap = argparse.ArgumentParser(prog="bench/optim/run.sh")
    ap.add_argument("--rounds", type=int, default=5, help="runs of each tool (default 5)")
    ap.add_argument("--size", type=int, default=16 * 1024 * 1024, help="parameters (default 16M)")
    ap.add_argument("--cols", type=int, default=4096, help="matrix columns; size/cols rows (default 4096)")
    ap.add_argument("--budget-s", type=float, default=270, help="stop starting rounds after ~this many seconds")
    ap.add_argument("--max-wait-s", type=float, default=40,
                    help="total seconds to wait for other work on the machine to pause (default 40)")
    ap.add_argument("--write", action="store_true", help="update the section in docs/results.md in place")
    ap.add_argument("--results", default="docs/results.md", help="file --write updates (repo-relative)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--celo", default="build/celo", help="celo binary (repo-relative)")
    ap.add_argument("--bindir", default="build/bench", help="where run.sh built the C baselines")
    ap.add_argument("--cmd", default="bash bench/optim/run.sh", help=argparse.SUPPRESS)
    a = ap.parse_args()
    t_start = time.time()
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        log(f"bench/optim: load average {load0:.2f}: other work is running; expect a wide spread")
    N, C = a.size, a.cols
    shape = f"[{N // C}, {C}]" if N % C == 0 else f"[{N}]"
    optbase = os.path.join(a.bindir, "optbase")
    celo = a.celo
    celo_ok = os.access(os.path.join(ROOT, celo), os.X_OK)
    celo_extra = shlex.split(os.environ.get("CELO_BENCH_ARGS", ""))
    have_c = os.access(os.path.join(ROOT, optbase), os.X_OK)

    # ---- torch, in the benchmarks' own venv (installed there on first use)
    torch_py, torch_why = (None, "--no-torch") if a.no_torch else venv_python(TORCH_REQS, log)
    if torch_why and not a.no_torch:
        log(f"torch: {torch_why}")

    # ---- numerical check of the C baselines against torch.optim (small data, seconds)
    check = "n/a"
    lib = os.path.join(a.bindir, "liboptbase.so")
    if torch_py and os.path.exists(os.path.join(ROOT, lib)):
        rc, out, err = run_cmd([torch_py, "bench/optim/check_numerics.py", lib], 120)
        check = "ok" if rc == 0 and "check=ok" in out else "FAILED"
        log(out.rstrip() if out else err.rstrip())
        if check != "ok":
            log("bench/optim: WARNING: the C baselines do not match torch.optim")

    # ---- tools
    tools = {}  # (rule, name) -> Tool
    order = []
    for rule in RULES:
        for backend in ("llvm", "opencl"):
            t = Tool(rule, f"celo-{backend}",
                     [celo, "bench", rule, "--size", str(N), "--backend", backend] + celo_extra, timeout=120)
            if not celo_ok:
                t.error, t.disabled = f"{celo} not found", True
            tools[(rule, t.name)] = t
            order.append(t)
        impls = (("fused", "floatsum", "rewrite", "unfused", "traffic") if rule == "adafactor"
                 else ("fused", "unfused", "traffic"))
        for impl in impls:
            label = {"traffic": "C same-traffic loop", "rewrite": "C fused, rsqrt-factor rewrite (other rounding)",
                     "floatsum": "C fused, float sums (other rounding)"}.get(impl, f"C {impl}")
            t = Tool(rule, label, [optbase, impl, rule, "--size", str(N), "--cols", str(C)], timeout=60)
            if not have_c:
                t.error, t.disabled = "C baselines not built", True
            tools[(rule, t.name)] = t
            order.append(t)
        for cfg in TORCH_CONFIGS[rule]:
            t = Tool(rule, TORCH_LABEL[cfg])
            t.cfg = cfg
            if not torch_py:
                t.error, t.disabled = torch_why, True
            tools[(rule, t.name)] = t
    triad = []  # bytes/s, STREAM counting (12 B/elem)
    triad_err = None
    torch_tools = [t for t in tools.values() if hasattr(t, "cfg")]

    def run_torch():
        live = [t for t in torch_tools if not t.disabled]
        if not live:
            return
        cmd = [torch_py, "bench/optim/torch_bench.py", "--size", str(N), "--cols", str(C),
               "--max-s", "1.0"] + [t.cfg for t in live]
        rc, out, err = run_cmd(cmd, 180)
        for t in live:
            line = next((ln for ln in out.splitlines() if ln.startswith(f"torch {t.cfg} ")), None)
            v = None
            if line:
                m = re.search(r"params_per_s=([0-9.eE+-]+)", line)
                v = float(m.group(1)) if m else None
            if v is None:
                e = re.search(r"error=(.*)", line).group(1) if line and "error=" in line else (
                    first_line(err) or f"exit {rc}")
                t.add(None, e)
                t.disabled = True
            else:
                t.add(v)
                log(f"bench/optim:   {t.rule} {t.name}: {v / 1e6:.0f} Mparams/s")

    def run_triad():
        nonlocal triad_err
        if not have_c:
            triad_err = "C baselines not built"
            return
        rc, out, err = run_cmd([optbase, "triad", "--size", str(N)], 60)
        v = last_value(out, "triad_bytes_per_s") if rc == 0 else None
        if v is None:
            triad_err = first_line(err) or f"exit {rc}"
        else:
            triad.append(v)
            log(f"bench/optim:   triad: {v / 1e9:.1f} GB/s (12 B/elem)")

    jobs = [("triad", run_triad, None)] + [(f"{t.rule} {t.name}", t.run, t) for t in order] + \
        [("torch", run_torch, None)]
    gate = QuietGate(lambda m: log("bench/optim: " + m), total_s=a.max_wait_s)
    rounds_done = 0
    for r in range(a.rounds):
        t0 = time.time()
        k = r % len(jobs)
        for name, job, tool in jobs[k:] + jobs[:k]:  # rotate so that no tool always runs first or last
            if tool is not None and tool.disabled:
                continue
            log(f"bench/optim: round {r + 1}/{a.rounds}: {name}")
            for t in tools.values():
                t.round = r
            gate.wait()
            job()
        rounds_done += 1
        took = time.time() - t0
        elapsed = time.time() - t_start
        if r + 1 < a.rounds and elapsed + took > a.budget_s:
            log(f"bench/optim: stopping after {rounds_done} rounds ({elapsed:.0f} s; budget {a.budget_s:.0f} s)")
            break

    # ---- compile time of all stdlib rules
    jit = []
    jit_err = None
    if celo_ok:
        for _ in range(3):
            rc, out, err = run_cmd([celo, "bench", "--jit-all"], 120)
            v = last_value(out, "jit_ms") if rc == 0 else None
            if v is None:
                jit_err = first_line(err) or f"exit {rc}"
                break
            jit.append(v)
    else:
        jit_err = f"{celo} not found"

    # ---- report
    triad_s = stats(triad)
    bw = triad_s[0] * 16 / 12 if triad_s else None  # bytes/s actually moved by the triad (write-allocate)
    lines = []
    now = datetime.datetime.now().astimezone()
    lines.append(f"- Date: {now:%Y-%m-%d %H:%M %Z}; commit {git_rev()}")
    lines.append(f"- Machine: {machine_info()}")
    lines.append(f"- Command: `{a.cmd}`; {rounds_done} round{'s' if rounds_done != 1 else ''}, each tool once per round in rotated order; "
                 f"{N} float32 parameters as a {shape} matrix; 2 threads (OMP_NUM_THREADS=2, torch.set_num_threads(2))")
    lines.append("- Each run reports the median of its own timed steps; the table gives the median over runs "
                 "and (min-max) over runs, in Mparams/s.")
    if triad_s:
        lines.append(f"- STREAM triad `a[i]=b[i]+s*c[i]` ({N} floats, 2 threads): "
                     f"{triad_s[0] / 1e9:.1f} GB/s STREAM-counted (12 B/elem; {triad_s[1] / 1e9:.1f}-"
                     f"{triad_s[2] / 1e9:.1f}), so {bw / 1e9:.1f} GB/s moved counting its write-allocate "
                     f"(16 B/elem). Bound = {bw / 1e9:.1f} GB/s / (bytes per parameter). Read-modify-write streams "
                     "(every array a rule writes it also reads) run faster than the triad's write-allocate "
                     "stream here, so a rule can exceed this bound; the same-traffic loops measure each "
                     "rule's own access pattern.")
    else:
        lines.append(f"- STREAM triad: n/a ({triad_err})")
    if jit:
        j = stats(jit)
        lines.append(f"- Compile time, `celo bench --jit-all` (check + JIT of all stdlib rules): "
                     f"**{j[0]:.0f} ms** ({j[1]:.0f}-{j[2]:.0f}, {j[3]} runs)")
    else:
        lines.append(f"- Compile time, `celo bench --jit-all`: n/a ({jit_err})")
    lines.append(f"- C baselines checked against torch.optim (bench/optim/check_numerics.py): {check}")
    lines.append("")
    lines.append("| rule | implementation | Mparams/s | (min-max) | runs | GB/s | / bound |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    best = {}
    notes = {}  # error -> tools
    for rule in RULES:
        bpp = BYTES[rule][0]
        bound = bw / bpp if bw else None
        lines.append(f"| {rule} | STREAM bound ({bpp} B/param) | {fmt_m(bound)} | | | "
                     f"{bw / 1e9:.1f} |" if bw else f"| {rule} | STREAM bound ({bpp} B/param) | n/a | | | | |")
        if bw:
            lines[-1] += " 1.00 |"
        med = {}
        for (ru, name), t in tools.items():
            if ru != rule:
                continue
            s = stats(t.values)
            if s:
                med[name] = s[0]
                gbs = s[0] * bpp / 1e9
                lines.append(f"| {rule} | {name} | **{fmt_m(s[0])}** | ({fmt_m(s[1])}-{fmt_m(s[2])}) | {s[3]} | "
                             f"{gbs:.1f} | {fmt_r(s[0], bound)} |")
            else:
                lines.append(f"| {rule} | {name} | n/a | | 0 | | |")
                if t.error:
                    notes.setdefault(t.error, []).append(f"{rule} {name}")
        tb = [(v, n) for n, v in med.items() if n.startswith("torch")]
        best[rule] = (med, max(tb) if tb else (None, None), bound)
    lines.append("")
    lines.append("Ratios of the medians above; in brackets the min-max of the same ratio within each round (the two "
                 "tools measured minutes apart at most, so a busy neighbour affects both).")
    lines.append("")
    lines.append("| rule | B/param | llvm / C fused | opencl / llvm | llvm / best torch | best torch | "
                 "C fused / best torch | C fused / C unfused | llvm / bound | opencl / bound | C fused / bound | "
                 "llvm / same-traffic | llvm / C rewrite |")
    lines.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")

    def paired(rule, a_name, b_name):
        """ratio of medians, and (min-max) of the per-round ratios"""
        ta, tb = tools.get((rule, a_name)), tools.get((rule, b_name))
        if not ta or not tb or not ta.values or not tb.values:
            return "n/a"
        txt = fmt_r(statistics.median(ta.values), statistics.median(tb.values))
        rs = [ta.by_round[k] / tb.by_round[k] for k in ta.by_round if k in tb.by_round]
        return txt + (f" ({min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else "")

    for rule in RULES:
        med, (tv, tn), bound = best[rule]
        llvm, ocl, cf, cu, ct, cr = (med.get(k) for k in ("celo-llvm", "celo-opencl", "C fused", "C unfused",
                                                          "C same-traffic loop",
                                                          "C fused, rsqrt-factor rewrite (other rounding)"))
        lines.append(f"| {rule} | {BYTES[rule][0]} | {paired(rule, 'celo-llvm', 'C fused')} | "
                     f"{paired(rule, 'celo-opencl', 'celo-llvm')} | {paired(rule, 'celo-llvm', tn) if tn else 'n/a'} | "
                     f"{tn or 'n/a'} | {fmt_r(cf, tv)} | {fmt_r(cf, cu)} | {fmt_r(llvm, bound)} | "
                     f"{fmt_r(ocl, bound)} | {fmt_r(cf, bound)} | {fmt_r(llvm, ct)} | {fmt_r(llvm, cr)} |")
    lines.append("")
    lines.append("Bytes per parameter: " + "; ".join(f"{r} {BYTES[r][0]} ({BYTES[r][1]})" for r in RULES) + ".")
    lines.append("")
    lines.append("C fused: `gcc -O3 -march=native -fno-math-errno -ffp-contract=off -fopenmp` (no FMA contraction, "
                 "as in celo's kernels), the formula of stdlib/<rule>.celo operation for operation in one pass "
                 "(AdamW: a square root and two divisions per element; Lion) or three (Adafactor: per element a "
                 "multiply, a clamp, a square root and a division in passes 2 and 3), its sums accumulated in "
                 "double as celo's language defines (docs/language.md: reductions accumulate in double); C fused, "
                 "float sums: the same Adafactor loops with float accumulators, as a C programmer might write them "
                 "(other rounding; shown for reference, not the baseline); C fused, rsqrt-factor rewrite: Adafactor multiplying by per-row and per-column rsqrt "
                 "factors wherever no eps1 clamp applies, so that its element loops do no division or square "
                 "root (an algebraic rewrite that changes rounding, which a compiler may not make on its own; "
                 "shown for reference, not the baseline); C unfused: one OpenMP loop per arithmetic operation over temporaries "
                 "(AdamW 14 passes, Lion 10, Adafactor 14); C same-traffic loop: the fused version's passes and "
                 "arrays with trivial arithmetic (a bound for the rule's own access pattern, which has no "
                 "write-allocate stream). Hyper-parameters: the stdlib rules' defaults "
                 "(torch's for AdamW and Adafactor, optax's for Lion with lr 1e-4).")
    lines.append("")
    lines.append(f"Load average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}; waited "
                 f"{gate.waited:.0f} s for other work to pause, {gate.busy_runs} of {gate.runs} measurements "
                 "started while the CPUs were still busy (other work on the machine shows up as spread).")
    if notes:
        lines.append("")
        lines.append("n/a: " + "; ".join(f"{', '.join(ts)}: {e}" for e, ts in notes.items()))
    body = "\n".join(lines) + "\n"
    print(SECTION)
    print()
    print(body)
    log(f"bench/optim: done in {time.time() - t_start:.0f} s")

    if a.write:
        path = os.path.join(ROOT, a.results)
        write_section(path, SECTION, body)
        log(f"bench/optim: updated {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
