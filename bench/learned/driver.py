"""bench/learned driver: step throughput of the learned optimizers celo and celo2 (stdlib) on one [4096, 1024]
float32 matrix, against a PyTorch eager implementation of the same step and this CPU's FP32 arithmetic peak.

Run through bench/learned/run.sh (which builds fma_peak first); see that file for the options.
Tools, each run once per round in a rotated order (as bench/optim):
  celo-llvm RULE     build/celo bench RULE --shape 4096x1024 --backend llvm --theta θ --steps S
  celo-opencl celo2  the same on --backend opencl (PoCL on this machine)
  torch RULE         bench/learned/torch_lopt.py RULE (eager ops, torch.set_num_threads(2), in build/bench/venv)
  fma_peak           build/bench/fma_peak: FMA and separate mul+add peak, 1 thread and all threads
Each celo and torch run reports params/s from the median of its own timed steps; the report gives the median
over rounds and the min-max. The peaks are the best over rounds (a peak: other work only lowers a round).
torch_lopt.py --check runs first: the peer must agree with tests/reference/celo_ref.py to float32 rounding.
Missing pieces (build/celo, a rule, θ, a back end, torch) show as n/a; the script still exits 0.
The second table, "Training step with a learned optimizer" (a subsection of the same section), is
bench/learned/training.py: whole training steps of bench/train's models with adamw, celo2 and celo. --only
throughput|training runs one table; --write then keeps the other one of docs/results.md as it was.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402  (the second table: bench/learned/training.py)

SECTION = "## Learned optimizer step throughput (bench/learned)"
RULES = ("celo", "celo2")
# per element: multiply-adds of the MLP (in -> h -> h -> 3), from the rules' widths (notes §1.3, §2.1)
MLP = {"celo": (30, 4), "celo2": (30, 8)}
THETA = {"celo": "theta.state", "celo2": os.path.join("golden", "celo2", "theta.msgpack")}  # under --data
OPENCL_RULES = ("celo2",)
TARGET_TORCH, TARGET_PEAK = 10.0, 0.30  # issue 10, "Speed"


def macs(rule):
    n_in, h = MLP[rule]
    return n_in * h + h * h + h * 3


def ns_flops(rows, cols, iters=5):
    """Matrix-product flops of Newton-Schulz on a rows x cols matrix (notes §2.2, on the short side r <= c):
    per iteration A = X X^T (2 r^2 c), A @ A (2 r^3), B @ X (2 r^2 c)."""
    r, c = min(rows, cols), max(rows, cols)
    return iters * (4 * r * r * c + 2 * r ** 3)


def log(msg):
    print(f"bench/learned: {msg}", file=sys.stderr, flush=True)


def key_value(text, key):
    """The number of the last `KEY=<number>` in text (a word of a line: `celo bench` prints it alone on the last
    line, torch_lopt.py at the end of its line), or None."""
    v = None
    for m in re.finditer(r"(?:^|\s)" + re.escape(key) + r"=([-+0-9.eEinfa]+)(?=\s|$)", text, re.M):
        try:
            v = float(m.group(1))
        except ValueError:
            pass
    return v


class Tool:
    """One column of measurements; values in params/s (or GFLOP/s for the peaks)."""

    def __init__(self, name, cmd=None, timeout=300):
        self.name, self.cmd, self.timeout = name, cmd, timeout
        self.values, self.by_round = [], {}
        self.round = 0
        self.error = None
        self.disabled = False
        self.failures = 0
        self.info = ""  # the first output line of a successful run

    def add(self, value, error=None):
        if value is not None and value > 0:
            self.values.append(value)
            self.by_round[self.round] = value
            self.failures = 0
        else:
            if error and not self.values:
                self.error = error
            self.failures += 1
            self.disabled = self.failures >= 2  # retried once, then left out

    def run(self):
        rc, out, err = run_cmd(self.cmd, self.timeout)
        v = key_value(out, "params_per_s") if rc == 0 else None
        if v is None:
            m = re.search(r"error=(.*)", out)  # torch_lopt.py: `torch RULE error=<message>`
            why = (m.group(1).strip()[:160] if m else "") or first_line(err) or first_line(out[-300:]) or f"exit {rc}"
            self.add(None, f"exit {rc}: {why}" if rc not in (None, 0) else why)
            log(f"  {self.name}: n/a ({self.error})")
        else:
            self.info = first_line(out)
            self.add(v)
            log(f"  {self.name}: {v / 1e6:.2f} Mparams/s")


def fmt_m(v):
    if v is None:
        return "n/a"
    return f"{v / 1e6:.0f}" if v >= 1e8 else f"{v / 1e6:.1f}" if v >= 1e6 else f"{v / 1e6:.2f}"


def fmt_mm(t):
    """median (min-max) in Mparams/s"""
    s = stats(t.values) if t else None
    if not s:
        return "n/a", ""
    return f"**{fmt_m(s[0])}**", f"({fmt_m(s[1])}-{fmt_m(s[2])}, {s[3]})"


def paired(ta, tb):
    """ratio of the medians of ta and tb, and (min-max) of the per-round ratios."""
    if not ta or not tb or not ta.values or not tb.values:
        return None, "n/a"
    r = statistics.median(ta.values) / statistics.median(tb.values)
    rs = [ta.by_round[k] / tb.by_round[k] for k in ta.by_round if k in tb.by_round]
    return r, f"{r:.2f}" + (f" ({min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else "")


def read_section(path):
    """The body of SECTION in PATH (after its heading, up to the next heading of its level or higher), or ""."""
    try:
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
    except OSError:
        return ""
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    if start is None:
        return ""
    out, in_code = [], False
    for ln in lines[start + 1:]:
        if ln.startswith("```"):
            in_code = not in_code
        if not in_code and re.match(r"#{1,2} ", ln):
            break
        out.append(ln)
    return "".join(out).strip("\n") + "\n"


def split_section(body):
    """{"throughput": ..., "training": ...} of a section's body, split at the training table's heading."""
    if not body.strip():
        return {}
    i = body.find(training.HEADING + "\n")
    if i < 0:
        return {"throughput": body}
    parts = {"training": body[i:].rstrip("\n") + "\n"}
    if body[:i].strip():
        parts["throughput"] = body[:i].rstrip("\n") + "\n"
    return parts


def throughput(a):
    """The first table: runs it and returns its markdown (the section's body up to the training table)."""
    t_start = time.time()
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        log(f"load average {load0:.2f}: other work is running; expect a wide spread")
    try:
        dims = [int(x) for x in a.shape.lower().split("x")]
        assert len(dims) == 2 and min(dims) > 0
    except (ValueError, AssertionError):
        log(f"--shape {a.shape}: expected RxC")
        return 2
    N = dims[0] * dims[1]
    celo = a.celo
    celo_ok = os.access(os.path.join(ROOT, celo), os.X_OK)
    celo_extra = shlex.split(os.environ.get("CELO_BENCH_ARGS", ""))
    fma = os.path.join(a.bindir, "fma_peak")
    fma_ok = os.access(os.path.join(ROOT, fma), os.X_OK)

    # ---- torch, in the benchmarks' own venv (installed there on first use), and its check against celo_ref
    torch_py, torch_why = (None, "--no-torch") if a.no_torch else venv_python(TORCH_REQS, log)
    if torch_why and not a.no_torch:
        log(f"torch: {torch_why}")
    check, check_lines = "n/a", []
    if torch_py:
        log("checking the torch peer against tests/reference/celo_ref.py (torch_lopt.py --check)")
        rc, out, err = run_cmd([torch_py, "bench/learned/torch_lopt.py", "--check", "--data", a.data], 300)
        check_lines = [ln for ln in out.splitlines() if ln.startswith("check ") and ": worst" in ln]
        check = "ok" if rc == 0 and "check=ok" in out else "FAILED"
        log((out.rstrip() or err.rstrip()) if check == "ok" else (out + err).rstrip())
        if check != "ok":
            log("WARNING: the torch peer does not agree with celo_ref; its columns are reported but not trusted")

    # ---- tools
    tools = {}  # (rule, name) -> Tool
    for rule in RULES:
        theta = os.path.join(a.data, THETA[rule])
        have_theta = os.path.exists(os.path.join(ROOT, theta))
        for backend in ("llvm", "opencl"):
            if backend == "opencl" and (rule not in OPENCL_RULES or a.no_opencl):
                continue
            steps = a.steps if backend == "llvm" else a.opencl_steps

            def celo_cmd(shape, n):
                return [celo, "bench", rule, "--shape", shape, "--backend", backend, "--theta", theta,  # noqa: B023
                        "--steps", str(n)] + celo_extra

            t = Tool(f"{rule} celo-{backend}", celo_cmd(a.shape, steps), timeout=600 if backend == "opencl" else 300)
            if not celo_ok:
                t.error, t.disabled = f"{celo} not found (make)", True
            elif not have_theta:
                t.error, t.disabled = f"θ {theta} not found", True
            else:  # a small step first: the rule exists, takes this θ and runs on this back end (seconds)
                rc, out, err = run_cmd(celo_cmd("64x32", 2), 300)
                if rc != 0 or key_value(out, "params_per_s") is None:
                    t.error = first_line(err) or first_line(out) or f"exit {rc}"
                    t.disabled = True
                    log(f"{t.name}: n/a ({t.error})")
            tools[(rule, t.name)] = t
        t = Tool(f"{rule} torch")
        if torch_py:
            t.cmd = [torch_py, "bench/learned/torch_lopt.py", "--shape", a.shape, "--data", a.data,
                     "--reps", str(a.torch_reps), "--warmup", "1", "--threads", "2", rule]
        else:
            t.error, t.disabled = torch_why, True
        tools[(rule, "torch")] = t
    peaks = {k: [] for k in ("fma_gflops_1t", "fma_gflops", "muladd_gflops_1t", "muladd_gflops")}
    peak_err = None if fma_ok else f"{fma} not built"
    peak_threads = None

    def run_peak():
        nonlocal peak_err, peak_threads
        rc, out, err = run_cmd([fma, "3"], 120)
        vals = {k: key_value(out, k) for k in peaks} if rc == 0 else {}
        if not vals or any(v is None for v in vals.values()):
            peak_err = first_line(err) or f"exit {rc}"
            return
        peak_threads = key_value(out, "threads")
        for k, v in vals.items():
            if v > 0:
                peaks[k].append(v)
        log(f"  fma_peak: FMA {vals['fma_gflops_1t']:.0f} / {vals['fma_gflops']:.0f} GFLOP/s, mul+add "
            f"{vals['muladd_gflops_1t']:.0f} / {vals['muladd_gflops']:.0f} (1 thread / all)")

    jobs = [("fma_peak", run_peak, None)] + [(t.name, t.run, t) for t in tools.values()]
    gate = QuietGate(log, total_s=a.max_wait_s)
    rounds_done = 0
    for r in range(a.rounds):
        t0 = time.time()
        k = r % len(jobs)
        for name, job, tool in jobs[k:] + jobs[:k]:  # rotated: no tool always first or last
            if tool is not None and tool.disabled:
                continue
            if tool is None and not fma_ok:
                continue
            log(f"round {r + 1}/{a.rounds}: {name}")
            for t in tools.values():
                t.round = r
            gate.wait()
            job()
        rounds_done += 1
        took, elapsed = time.time() - t0, time.time() - t_start
        if r + 1 < a.rounds and elapsed + took > a.budget_s:
            log(f"stopping after {rounds_done} rounds ({elapsed:.0f} s; budget {a.budget_s:.0f} s)")
            break

    # ---- report
    pk = {k: (max(v) if v else None) for k, v in peaks.items()}
    nt = int(peak_threads) if peak_threads else 2
    lines = []
    now = datetime.datetime.now().astimezone()
    lines.append(f"- Date: {now:%Y-%m-%d %H:%M %Z}; commit {git_rev()}")
    lines.append(f"- Machine: {machine_info()}")
    lines.append(f"- Command: `{a.cmd}`; {rounds_done} round{'s' if rounds_done != 1 else ''}, each tool once per "
                 f"round in rotated order; one float32 [{dims[0]}, {dims[1]}] matrix ({N} parameters); 2 threads "
                 "(OMP_NUM_THREADS=2, torch.set_num_threads(2)). celo: `build/celo bench RULE --shape "
                 f"{a.shape} --backend B --theta θ --steps {a.steps}` (opencl: `--steps {a.opencl_steps}`; "
                 f"3 untimed warm-up steps); torch: `bench/learned/torch_lopt.py RULE` ({a.torch_reps} timed steps "
                 "after 1 warm-up). Each run reports the median of its own timed steps; the table gives the median "
                 "over runs and (min-max, runs), in Mparams/s.")
    lines.append(f"- θ: celo `{os.path.join(a.data, THETA['celo'])}` (the published weights); celo2 "
                 f"`{os.path.join(a.data, THETA['celo2'])}` (the authors' init: no Celo2 weights are published; the "
                 "speed does not depend on the values).")
    if check_lines:
        lines.append(f"- Torch peer checked against tests/reference/celo_ref.py (`torch_lopt.py --check`: 20 steps "
                     f"on (64,33), (33,64), (3,5,7), bound of compare_golden.py): **{check}** — "
                     + "; ".join(ln.replace("check ", "", 1) for ln in check_lines))
    else:
        lines.append(f"- Torch peer checked against tests/reference/celo_ref.py: {check}")
    if pk["fma_gflops"]:
        lines.append(f"- FP32 peak (`bench/learned/fma_peak.c`, `gcc -O2 -march=native -ffp-contract=off`, best of "
                     f"{len(peaks['fma_gflops'])} round{'s' if len(peaks['fma_gflops']) != 1 else ''}): FMA "
                     f"**{pk['fma_gflops_1t']:.0f}** GFLOP/s on 1 thread, **{pk['fma_gflops']:.0f}** on {nt}; "
                     f"separate multiply + add (the rest of celo's kernels: no contraction outside the MLPs) "
                     f"{pk['muladd_gflops_1t']:.0f} on 1 thread, {pk['muladd_gflops']:.0f} on {nt}.")
    else:
        lines.append(f"- FP32 peak: n/a ({peak_err})")
    lines.append("")
    thr, ari = [], []  # the two tables: throughput, arithmetic rate
    thr.append(f"| rule | celo llvm | (min-max, runs) | passes | torch eager | (min-max, runs) | llvm / torch "
               f"(target ≥ {TARGET_TORCH:.0f}) | celo opencl | (min-max, runs) | opencl / llvm |")
    thr.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ari.append(f"| rule | MLP MACs/param | MLP GFLOP/s | / FMA peak (target ≥ {TARGET_PEAK * 100:.0f} %) | "
               "/ mul+add peak | MLP+NS GFLOP/s | MLP+NS / FMA peak |")
    ari.append("|---|---:|---:|---:|---:|---:|---:|")
    notes = {}
    for rule in RULES:
        tl, tt, to = tools.get((rule, f"{rule} celo-llvm")), tools.get((rule, "torch")), \
            tools.get((rule, f"{rule} celo-opencl"))
        for t in (tl, tt, to):
            if t and not t.values and t.error:
                notes.setdefault(t.error, []).append(t.name)
        ml, ml_mm = fmt_mm(tl)
        mt, mt_mm = fmt_mm(tt)
        mo, mo_mm = fmt_mm(to) if to else ("—", "")
        m = re.search(r"passes=(\d+)", tl.info) if tl else None
        passes = m.group(1) if m else "n/a"
        _, r_torch = paired(tl, tt)
        _, r_ocl = paired(to, tl) if to else (None, "—")
        thr.append(f"| {rule} | {ml} | {ml_mm} | {passes} | {mt} | {mt_mm} | {r_torch} | {mo} | {mo_mm} | {r_ocl} |")
        llvm = statistics.median(tl.values) if tl and tl.values else None
        gfl = 2 * macs(rule) * llvm / 1e9 if llvm else None
        pct = lambda x, peak: f"{100 * x / peak:.1f} %" if x and peak else "n/a"  # noqa: E731
        if rule == "celo2":
            gns = (2 * macs(rule) * N + ns_flops(*dims)) * llvm / N / 1e9 if llvm else None
            ns_txt = (f"{gns:.1f}" if gns else "n/a", pct(gns, pk["fma_gflops"]))
            if gns and pk["fma_gflops"] and gns > pk["fma_gflops"]:
                ns_txt = (ns_txt[0], ns_txt[1] + " (above the peak: this step does not do Newton-Schulz's products)")
        else:
            ns_txt = ("—", "—")
        ari.append(f"| {rule} | {macs(rule)} | {f'{gfl:.1f}' if gfl else 'n/a'} | {pct(gfl, pk['fma_gflops'])} | "
                   f"{pct(gfl, pk['muladd_gflops'])} | {ns_txt[0]} | {ns_txt[1]} |")
    lines += thr + ["", "Arithmetic rate of the celo llvm step (median above) against the peaks measured in this "
                    "run:", ""] + ari
    lines.append("")
    lines.append(f"MLP MACs/param: the multiply-adds of the per-element MLP, from the rules' widths — celo 30→4→4→3: "
                 f"30·4+4·4+4·3 = {macs('celo')}; celo2 30→8→8→3: 30·8+8·8+8·3 = {macs('celo2')}. MLP GFLOP/s = "
                 "2 · MACs · params/s of the whole step: it charges the whole step's time (the feature passes, the "
                 "reductions, the factored statistics, for celo2 Newton-Schulz) to the MLP, so the fractions of "
                 "the peak are lower bounds for the MLP part itself. The peaks are measured on as many threads as "
                 f"the step uses ({nt}). The MLPs' multiply-adds are fused (fma, docs/language.md \"Numbers\"), "
                 "so the FMA peak is their ceiling; the other arithmetic of the step is not contracted.")
    lines.append("")
    lines.append(f"MLP+NS (celo2): the MLP flops plus the matrix products of Newton-Schulz (5 iterations on the "
                 f"[{min(dims)}, {max(dims)}] orientation: 5·(4r²c + 2r³) = {ns_flops(*dims) / 1e9:.1f} GFLOP per "
                 f"step, {ns_flops(*dims) / N:.0f} flops per parameter against the MLP's {2 * macs('celo2')}), "
                 "over the same step time: a lower bound of the arithmetic rate of the whole step, which Newton-"
                 "Schulz dominates."
                 + (f" At the FMA peak measured here these products alone take "
                    f"{1e3 * ns_flops(*dims) / (pk['fma_gflops'] * 1e9):.0f} ms, so no celo2 step of this shape can "
                    f"exceed {fmt_m(N / (ns_flops(*dims) / (pk['fma_gflops'] * 1e9)))} Mparams/s here."
                    if pk["fma_gflops"] else ""))
    lines.append("")
    lines.append("torch eager (bench/learned/torch_lopt.py): the step written from the formulas of "
                 "../shared/research/learned-optimizers.md §1.1-1.3 and §2.2 as a researcher writes it — one torch "
                 "op at a time under torch.no_grad, float32, CPU, no torch.compile; the 30 features concatenated, "
                 "normalized per channel, the MLP as three matmuls. Celo's step takes a given lr_mult (the LSTM "
                 "scheduler runs once per step on a scalar, not per element); Celo2 is the deploy form p -= "
                 "lr·(u + wd·p) of a matrix (MLP path, Newton-Schulz, RMS-normalized).")
    lines.append("")
    lines.append(f"Load average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}; waited "
                 f"{gate.waited:.0f} s for other work to pause, {gate.busy_runs} of {gate.runs} measurements "
                 "started while the CPUs were still busy (other work on the machine shows up as spread).")
    if notes:
        lines.append("")
        lines.append("n/a: " + "; ".join(f"{', '.join(ts)}: {e}" for e, ts in notes.items()))
    body = "\n".join(lines) + "\n"
    log(f"throughput table done in {time.time() - t_start:.0f} s")
    return body


def main():
    ap = argparse.ArgumentParser(prog="bench/learned/run.sh")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each tool (default 3)")
    ap.add_argument("--shape", default="4096x1024", help="the matrix (default 4096x1024)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps of each celo llvm run (default 5)")
    ap.add_argument("--opencl-steps", type=int, default=3, help="timed steps of each celo opencl run (default 3)")
    ap.add_argument("--torch-reps", type=int, default=3, help="timed steps of each torch run (default 3)")
    ap.add_argument("--budget-s", type=float, default=300, help="stop starting rounds after ~this many seconds")
    ap.add_argument("--max-wait-s", type=float, default=30,
                    help="total seconds to wait for other work on the machine to pause (default 30)")
    ap.add_argument("--data", default=os.path.join("..", "shared", "data", "celo"),
                    help="the shared Celo data: theta.state, golden/ (repo-relative)")
    ap.add_argument("--write", action="store_true", help="update the section in docs/results.md in place")
    ap.add_argument("--results", default="docs/results.md", help="file --write updates (repo-relative)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-opencl", action="store_true")
    ap.add_argument("--celo", default="build/celo", help="celo binary (repo-relative)")
    ap.add_argument("--bindir", default="build/bench", help="where run.sh built fma_peak")
    ap.add_argument("--only", choices=("throughput", "training"),
                    help="run one table (with --write, the section keeps the other table as it was)")
    ap.add_argument("--train-scale", type=float, default=1.0,
                    help="training table: multiply bench/train's step counts (warm, short, long) by this")
    ap.add_argument("--train-budget-s", type=float, default=600,
                    help="training table: stop starting rounds after ~this many seconds (default 600)")
    ap.add_argument("--train-models", default=",".join(training.MODELS),
                    help="training table: comma-separated subset of " + ",".join(training.MODELS))
    ap.add_argument("--train-opts", default=",".join(training.OPTS),
                    help="training table: comma-separated subset of " + ",".join(training.OPTS))
    ap.add_argument("--cmd", default="bash bench/learned/run.sh", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.train_scale <= 0:
        ap.error("--train-scale: a positive factor")
    t_start = time.time()
    parts = {}  # "throughput": the body up to the training table; "training": that table, its heading first
    if a.only != "training":
        body = throughput(a)
        if isinstance(body, int):
            return body
        parts["throughput"] = body
    if a.only != "throughput":
        parts["training"] = training.table(a)
    print(SECTION)
    print()
    print("\n".join(parts[k] for k in ("throughput", "training") if k in parts))
    log(f"done in {time.time() - t_start:.0f} s")
    if a.write:
        path = os.path.join(ROOT, a.results)
        if len(parts) < 2:  # keep the other table of the section as it was
            old = split_section(read_section(path))
            for k, v in old.items():
                parts.setdefault(k, v)
        write_section(path, SECTION, "\n".join(parts[k] for k in ("throughput", "training") if k in parts))
        log(f"updated {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
