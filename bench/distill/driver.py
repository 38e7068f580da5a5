"""bench/distill/driver.py (run by bench/distill/run.sh): the token mixers of the distillation chain (issue 12), one
layer at a time.

Part `layers`: tokens/s of forward + backward of one layer (with its input and output projections) in celo
(bench/distill/layers, OMP_NUM_THREADS=2) against PyTorch (bench/distill/torch_layers.py, a worker process that
stays up) for causal linear attention (elu, hedgehog) and the Mamba mixer (hedgehog + normalize, identity), plus
softmax attention for reference; each torch layer in its forms (linear attention: chunked, quadratic; Mamba: ssd,
scan) at 2 and 1 threads. Rounds: every (layer, shape) measures celo and each torch configuration once, in an
order rotated by the round, after waiting a little for a quiet CPU (benchlib.QuietGate). Before timing, every
celo layer's y and dx are checked against every torch form on one deterministic input (float64 in torch).

Part `steps`: microseconds per generated token of one layer as the context grows: softmax attention with a
key/value cache (celo_nn_attention_step) against the constant-size states of celo_nn_linattn_step and
celo_nn_mamba_step.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import (ROOT, TORCH_REQS, QuietGate, first_line, git_rev, machine_info, run_cmd, stats,  # noqa: E402
                      venv_python, write_section)

SEC_LAYERS = "## Token mixers vs PyTorch, one layer forward + backward (bench/distill)"
SEC_STEPS = "## Generation cost per token as the context grows (bench/distill)"
LAYERS = "build/bench/distill/layers"
# kind: (what, torch forms, target celo / torch or None)
KINDS = {
    "linattn-elu": ("linear attention, elu + 1", ("chunked", "quadratic"), 3.0),
    "linattn-hedgehog": ("linear attention, hedgehog", ("chunked", "quadratic"), 3.0),
    "mamba-hedgehog-norm": ("Mamba, hedgehog + normalize", ("ssd", "ssd32", "scan"), 3.0),
    "mamba-identity": ("Mamba, identity", ("ssd", "ssd32", "scan"), 3.0),
    "softmax": ("softmax attention (reference)", ("sdpa",), None),
}
STEP_KINDS = ("softmax", "linattn-elu", "linattn-hedgehog", "mamba-hedgehog-norm", "mamba-identity")
STEP_LABEL = {"softmax": "softmax attention, KV cache", "linattn-elu": "linear attention, elu + 1",
              "linattn-hedgehog": "linear attention, hedgehog", "mamba-hedgehog-norm": "Mamba, hedgehog + normalize",
              "mamba-identity": "Mamba, identity"}


FMA_PEAK = 234.0  # GFLOP/s, 2 threads, bench/learned/fma_peak.c (docs/results.md, learned optimizer section)


def flops(kind, B, T, C=128, nh=4, L=64):
    """floating-point operations of forward + backward (3 x the forward's: the backward pass runs two products
    per forward product) of the chunked algorithm: projections, feature maps, the chunked mixer; elementwise work
    not counted. softmax: the full T x T products, as celo_nn_attention computes them."""
    R, hs = B * T, C // nh
    L = min(L, T)
    if kind == "softmax":
        f = 8 * R * C * C + B * nh * 4 * T * T * hs
    elif kind.startswith("linattn"):
        D = 2 * hs if "hedgehog" in kind else hs
        f = 8 * R * C * C + B * nh * (2 * T * L * (D + hs) + 4 * T * D * hs)
        if "hedgehog" in kind:
            f += B * nh * 4 * T * hs * hs
    else:  # mamba, expand 1, N = P = hs
        Nf = 2 * hs if "hedgehog" in kind else hs
        P = hs + ("-norm" in kind)
        f = 2 * R * C * (4 * C + nh) + 2 * R * C * C + B * nh * (2 * T * L * (Nf + P) + 4 * T * Nf * P)
        if "hedgehog" in kind:
            f += B * nh * 4 * T * hs * hs
    return 3 * f


def log(msg):
    print(f"bench/distill: {msg}", file=sys.stderr, flush=True)


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


class Torch:
    """the torch worker: one command line in, one answer line out"""

    def __init__(self, py, env):
        self.p = subprocess.Popen([py, "bench/distill/torch_layers.py"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, line):
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
            out = self.p.stdout.readline()
        except (OSError, ValueError) as e:
            return "error " + str(e)
        return out.strip() if out else "error the torch worker exited: " + first_line(self.p.stderr.read() or "")

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.p.kill()


def value(out, key):
    m = re.search(key + r"=([0-9.eE+-]+)", out or "")
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=1.0, help="seconds of timed repetitions per measurement")
    ap.add_argument("--parts", default="layers,steps")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--T", default="256,1024")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--ctx", default="64,256,1024,4096,16384")
    ap.add_argument("--threads", default="2,1", help="torch thread counts")
    ap.add_argument("--celo-threads", default="2,1", help="celo thread counts (OMP_NUM_THREADS) of the layers part")
    ap.add_argument("--quiet-wait-s", type=float, default=60.0,
                    help="seconds in all that the measurements may wait for other work to pause")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--results", default="docs/results.md")
    ap.add_argument("--cmd", default="bash bench/distill/run.sh")
    a = ap.parse_args()
    parts = a.parts.split(",")
    kinds = [k for k in a.kinds.split(",") if k]
    Ts = [int(t) for t in a.T.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    celo_threads = [int(t) for t in a.celo_threads.split(",")]
    C, NH = 128, 4
    env = dict(os.environ, OMP_NUM_THREADS="2")
    gate = QuietGate(log, total_s=a.quiet_wait_s)
    load0 = os.getloadavg()[0]
    t_start = time.time()
    now = datetime.datetime.now(datetime.timezone.utc)
    head = [f"- Date: {now:%Y-%m-%d %H:%M} UTC; commit {git_rev()}", f"- Machine: {machine_info()}"]
    sections = {}

    # ---- layers vs torch
    if "layers" in parts:
        torch = None
        if not a.no_torch:
            py, why = venv_python(TORCH_REQS, log)
            if py:
                torch = Torch(py, env)
            else:
                log(f"torch n/a: {why}")
        checks = {}
        for k in kinds:
            path = os.path.join(ROOT, "build", "bench", "distill", f"check_{k}.bin")
            rc, out, err = run_cmd([LAYERS, "check", k, "2", "128", str(C), str(NH), path], 120, env)
            if rc != 0:
                checks[k] = "celo failed: " + (first_line(err) or f"exit {rc}")
                continue
            if torch:
                checks[k] = "; ".join(f"{f}: " + torch.ask(f"check {k} {f} 2 128 {C} {NH} {path}")
                                      for f in KINDS[k][1])
            log(f"check {k}: {checks.get(k)}")
        cases = [(k, T) for k in kinds for T in Ts]
        celo_v = {c: {} for c in cases}  # threads -> values
        torch_v = {c: {} for c in cases}  # (form, threads) -> values
        per_round = {c: [] for c in cases}
        errors = {}
        for r in range(a.rounds):
            log(f"round {r + 1}/{a.rounds}")
            for ci, (k, T) in enumerate(cases):
                confs = [("celo", None, th) for th in celo_threads]
                if torch:
                    confs += [("torch", f, th) for f in KINDS[k][1] for th in threads]
                s = (r + ci) % len(confs)
                confs = confs[s:] + confs[:s]
                got_c, got_t = {}, {}
                for tool, form, th in confs:
                    gate.wait()
                    if tool == "celo":
                        rc, out, err = run_cmd([LAYERS, "fb", k, str(a.B), str(T), str(C), str(NH),
                                                str(a.budget_s)], 600, dict(env, OMP_NUM_THREADS=str(th)))
                        v = value(out, "tokens_per_s")
                        if v is None:
                            errors[("celo", k)] = first_line(err) or f"exit {rc}"
                        else:
                            celo_v[(k, T)].setdefault(th, []).append(v)
                            got_c[th] = v
                    else:
                        out = torch.ask(f"fb {k} {form} {th} {a.B} {T} {C} {NH} {a.budget_s}")
                        v = value(out, "tokens_per_s")
                        if v is None:
                            errors[("torch", k, form, th)] = out[:160]
                        else:
                            torch_v[(k, T)].setdefault((form, th), []).append(v)
                            got_t[(form, th)] = v
                    log(f"  {k} T={T} {tool}{' ' + form if form else ''} {th}t: {v}")
                if got_c and got_t:
                    per_round[(k, T)].append(max(got_c.values()) / max(got_t.values()))
        if torch:
            torch.close()
        lines = list(head)
        lines.append(f"- Command: `{a.cmd}`; {a.rounds} rounds; in each, every layer and shape runs each celo and "
                     "torch configuration once, in an order rotated by the round, after waiting a little for a "
                     "quiet CPU")
        lines.append(f"- A measurement: forward + backward of one layer on x [B {a.B}, T, C {C}], {NH} heads "
                     "(hs 32), input and output projections included (linear attention: c_attn, the feature maps, "
                     "c_proj; Mamba: in_proj, the causal depthwise conv (K 4), the maps on B and C, the scan, the "
                     "gate, out_proj; expand 1, N = hs), from deterministic weights; two untimed repetitions (one when "
                     "it takes a second or more), then "
                     f"repetitions for {a.budget_s:g} s (at least 5, or 1 where 5 take more than 5 s), the median; "
                     "tokens/s = B T / median. celo: "
                     "bench/distill/layers.c calling `celo_nn_linattn_forward/backward`, `celo_nn_mamba_forward/"
                     "backward` (chunks of 32, the default), `celo_nn_attention_forward/backward`, OMP_NUM_THREADS "
                     f"{' and '.join(map(str, celo_threads))}. torch: "
                     "bench/distill/torch_layers.py, the same layers written from runtime/nn.h's formulas with torch "
                     "ops, autograd for the backward pass: linear attention `chunked` (chunks of 64: the masked "
                     "product inside each, a cumsum of the chunks' phi(k)^T v states across) and `quadratic` (the "
                     "masked T x T form); Mamba `ssd` and `ssd32` (mamba_ssm's ssd_minimal, chunks of 64 and of 32, the "
                     "normalizer as an all-ones value channel) and `scan` (the recurrence token by token in a Python loop); softmax "
                     "`F.scaled_dot_product_attention(is_causal=True)`; torch.set_num_threads 2 and 1.")
        lines.append("- tokens/s: median over rounds (min-max) of the fastest configuration by median (celo: "
                     "threads; torch: form, threads). celo / torch: the ratio of the two medians, and (min-max) of "
                     "the per-round ratios (that round's fastest celo against its fastest torch).")
        lines.append("- Same outputs: y and dx of celo's float32 layer against each torch form run in float64 on "
                     "the same values (B 2, T 128), max |difference| / max |value|: " + "; ".join(
                         f"{k}: {v}" for k, v in checks.items()) + ".")
        lines.append("- GFLOP/s: bench/distill/driver.py's `flops` (projections, feature maps and the chunked "
                     "mixer's products, forward + backward = 3 x forward; elementwise work not counted) over the "
                     "median time. The last column: the rate celo would need for the target ratio, against the FMA "
                     f"peak of {FMA_PEAK:g} GFLOP/s on 2 threads (bench/learned/fma_peak.c); above 100 % the target "
                     "is out of reach on this machine whatever the code.")
        lines.append("")
        lines.append("| layer | T | celo tokens/s | torch tokens/s (fastest configuration) | celo / torch | target | "
                     "GFLOP | celo GFLOP/s | torch GFLOP/s | target needs GFLOP/s (of peak) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (k, T) in cases:
            what, forms, target = KINDS[k]
            cbest = max(celo_v[(k, T)].items(), key=lambda kv: stats(kv[1])[0], default=None)
            cs = stats(cbest[1]) if cbest else None
            best = max(torch_v[(k, T)].items(), key=lambda kv: stats(kv[1])[0], default=None)
            ts = stats(best[1]) if best else None
            ctext = (f"**{fmt(cs[0])}** ({fmt(cs[1])}-{fmt(cs[2])}) {cbest[0]} "
                     f"thread{'s' if cbest[0] != 1 else ''}") if cs else "n/a"
            ttext = (f"**{fmt(ts[0])}** ({fmt(ts[1])}-{fmt(ts[2])}) {best[0][0]}, {best[0][1]} "
                     f"thread{'s' if best[0][1] != 1 else ''}") if ts else "n/a"
            rr = stats(per_round[(k, T)])
            if cs and ts:
                ratio = f"**{cs[0] / ts[0]:.2f}**" + (f" ({rr[1]:.2f}-{rr[2]:.2f})" if rr else "")
                if target:
                    ratio += " met" if cs[0] / ts[0] >= target else " **not met**"
            else:
                ratio = "n/a"
            gf = flops(k, a.B, T) / 1e9
            per_s = lambda tok: gf * tok / (a.B * T)  # noqa: E731
            need = f"{per_s(ts[0]) * target:.0f} ({100 * per_s(ts[0]) * target / FMA_PEAK:.0f} %)" \
                if (ts and target) else "-"
            lines.append(f"| {what} | {T} | {ctext} | {ttext} | {ratio} | {f'≥ {target:g}x' if target else '-'} | "
                         f"{gf:.2f} | {f'{per_s(cs[0]):.0f}' if cs else '-'} | {f'{per_s(ts[0]):.0f}' if ts else '-'} "
                         f"| {need} |")
        confs = sorted({(f, th) for c in cases for (f, th) in torch_v[c]}, key=lambda x: (x[0], -x[1]))
        if confs:
            lines.append("")
            lines.append("Every configuration, tokens/s median (min-max):")
            lines.append("")
            lines.append("| layer | T | " + " | ".join(f"celo {th}t" for th in celo_threads) + " | " +
                         " | ".join(f"torch {f}, {th}t" for f, th in confs) + " |")
            lines.append("|---|---:|" + "---:|" * (len(celo_threads) + len(confs)))
            for (k, T) in cases:
                cells = []
                for th in celo_threads:
                    s_ = stats(celo_v[(k, T)].get(th, []))
                    cells.append(f"{fmt(s_[0])} ({fmt(s_[1])}-{fmt(s_[2])})" if s_ else "-")
                for fc in confs:
                    s = stats(torch_v[(k, T)].get(fc, []))
                    cells.append(f"{fmt(s[0])} ({fmt(s[1])}-{fmt(s[2])})" if s else "-")
                lines.append(f"| {k} | {T} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Load average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}; "
                     f"{gate.busy_runs} of {gate.runs} measurements started while the CPUs were still busy.")
        if errors:
            lines.append("")
            lines.append("n/a: " + "; ".join(f"{' '.join(map(str, k))}: {e}" for k, e in errors.items()))
        sections[SEC_LAYERS] = "\n".join(lines) + "\n"

    # ---- generation cost per token
    if "steps" in parts:
        ctxs = [int(c) for c in a.ctx.split(",")]
        skinds = [k for k in STEP_KINDS if k in kinds]
        vals = {(k, n): [] for k in skinds for n in ctxs}
        state_bytes = {}
        errors = {}
        budget = min(a.budget_s, 0.4)
        for r in range(a.rounds):
            log(f"steps round {r + 1}/{a.rounds}")
            keys = list(vals)
            s = (r * 7) % len(keys)
            for k, n in keys[s:] + keys[:s]:
                gate.wait()
                rc, out, err = run_cmd([LAYERS, "step", k, "1", str(C), str(NH), str(n), str(budget)], 300, env)
                v = value(out, "us_per_token")
                if v is None:
                    errors[k] = first_line(err) or f"exit {rc}"
                else:
                    vals[(k, n)].append(v)
                    state_bytes[(k, n)] = value(out, "state_bytes")
        lines = list(head)
        lines.append(f"- Command: `{a.cmd}`; {a.rounds} rounds, the (layer, context) pairs in an order rotated by "
                     "the round; OMP_NUM_THREADS=2")
        lines.append(f"- A measurement: one generation step of one layer (dim {C}, {NH} heads, batch 1; input and "
                     "output projections included) with CTX tokens of context before it: the step's median over "
                     f"{budget:g} s of repetitions (two untimed first), in µs per token (bench/distill/layers.c "
                     "`step`). Softmax attention: `celo_nn_attention_step` over a key/value cache holding CTX "
                     "tokens (filled with deterministic values; the step reads all of them, plus its own). Linear "
                     "attention and Mamba: `celo_nn_linattn_step` and `celo_nn_mamba_step` from a state of fixed "
                     "size (S [D, hs] and z per head; Mamba: the conv's last K - 1 inputs and H [Nf, P], z per "
                     "head), whatever the context. Median over rounds (min-max).")
        lines.append("")
        lines.append("| layer | " + " | ".join(f"ctx {n}" for n in ctxs) + " | state or cache at the largest "
                     "context |")
        lines.append("|---|" + "---:|" * len(ctxs) + "---:|")
        for k in skinds:
            cells = []
            for n in ctxs:
                s = stats(vals[(k, n)])
                cells.append(f"{s[0]:.1f} ({s[1]:.1f}-{s[2]:.1f})" if s else "n/a")
            mem = state_bytes.get((k, ctxs[-1]))
            lines.append(f"| {STEP_LABEL[k]} | " + " | ".join(cells) + " | " +
                         (f"{mem / 1024:,.0f} KiB |" if mem else "n/a |"))
        if errors:
            lines.append("")
            lines.append("n/a: " + "; ".join(f"{k}: {e}" for k, e in errors.items()))
        sections[SEC_STEPS] = "\n".join(lines) + "\n"

    for sec, body in sections.items():
        print(sec)
        print()
        print(body)
    log(f"done in {time.time() - t_start:.0f} s")
    if a.write:
        for sec, body in sections.items():
            write_section(os.path.join(ROOT, a.results), sec, body)
        log(f"updated {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
