"""PyTorch eager peer for bench/learned: one Celo step and one Celo2 step for one float32 tensor, written from the
formulas of ../shared/research/learned-optimizers.md (§1.1 accumulators, §1.2 features, §1.3 MLP and step, §2.2
Celo2's update) the way a researcher writes them: one torch op at a time, under torch.no_grad, float32, on the CPU,
no torch.compile. The trailing axis of 3 holds the decays, as in the authors' code.

    python3 torch_lopt.py --check [--data DIR]
        both steps on (64,33), (33,64), (3,5,7) for 20 steps with the golden inputs and θ of DIR
        (../shared/data/celo) against tests/reference/celo_ref.py (NumPy, written independently from the same
        notes); also against the authors' JAX trajectories (DIR/golden/celo, DIR/golden/celo2_deploy). A step
        passes when max|torch - ref| <= max(2e-5 * max|ref - p0|, 8 ulp(max|ref|)) (compare_golden.py's bound:
        float32 rounding in another order only). Prints one line per rule and shape, then check=ok or
        check=FAILED; exits 1 on failure.
    python3 torch_lopt.py [--shape 4096x1024] [--reps N] [--warmup W] [--threads T] [--max-s S] celo celo2
        times one step of each rule: prints `torch RULE shape=[..] threads=T steps=N median_ms=.. min_ms=..
        params_per_s=<number>` (median over the timed steps after the warm-up), or `torch RULE error=<message>`.

Celo: p -= lr_mult * d * (param_scale * exp(1e-3 m)) * 1e-3 with lr_mult given (the LSTM scheduler is a scalar
per step and not what is measured here); θ = the published ../shared/data/celo/theta.state.
Celo2 (deploy form, the MLP path of a matrix): u = RMS-normalize(Newton-Schulz(d)); p -= lr * (u + wd * p),
lr 1e-3, wd 0.1 (stdlib celo2's defaults, the celo2 README recipe); θ = golden/celo2/theta.msgpack (the authors'
init; no Celo2 weights are published).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import celo_ref  # noqa: E402  (θ files: its msgpack reader; --check: the NumPy reference)

DATA = os.path.join(ROOT, "..", "shared", "data", "celo")
F32 = torch.float32


# ---------------------------------------------------------------------------------------------- θ


def mlp_weights(theta, leading_axis):
    """[W0 (30, h), W1, W2], [b0, b1, b2] as float32 tensors. W0 = w0__0 .. w0__13 stacked along the input axis in
    index order (§1.3); Celo's θ has a leading param_inits axis of 1, Celo2's has none (§2.1)."""
    take = (lambda a: a[0]) if leading_axis else (lambda a: a)
    pre = "ff_mod_stack/~/"
    w0 = np.concatenate([take(theta[pre + f"w0__{i}"]) for i in range(14)], axis=0)
    ws = [w0, take(theta[pre + "w1"]), take(theta[pre + "w2"])]
    bs = [take(theta[pre + f"b{i}"]).reshape(-1) for i in range(3)]
    return [torch.tensor(np.ascontiguousarray(w), dtype=F32) for w in ws], [torch.tensor(b, dtype=F32) for b in bs]


def load_celo(data):
    return mlp_weights(celo_ref.load_msgpack(os.path.join(data, "theta.state")), leading_axis=True)


def load_celo2(data):
    return mlp_weights(celo_ref.load_msgpack(os.path.join(data, "golden", "celo2", "theta.msgpack")),
                       leading_axis=False)


# ---------------------------------------------------------------------------------------------- the steps

MOM = torch.tensor([0.9, 0.99, 0.999], dtype=F32)  # momentum decays (float32, as the authors' jnp arrays)
FAC = torch.tensor([0.9, 0.99, 0.999], dtype=F32)  # Adafactor decays


def factored_dims(shape):
    """(d1, d0): the second largest and the largest axis, ties by axis index (§1.1); None below rank 2."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda a: (shape[a], a))
    return order[-2], order[-1]


def init_state(p, rms_decay):
    shape = tuple(p.shape)
    d1, d0 = factored_dims(shape)  # only matrices and up here: 1-D tensors are not what is measured
    return {
        "m": torch.zeros(shape + (3,), dtype=F32),
        "rms": torch.zeros(shape + (1,), dtype=F32),
        "v_row": torch.zeros(tuple(s for a, s in enumerate(shape) if a != d0) + (3,), dtype=F32),
        "v_col": torch.zeros(tuple(s for a, s in enumerate(shape) if a != d1) + (3,), dtype=F32),
        "br": torch.tensor([rms_decay], dtype=F32),
    }


def features(p, g, st, e1):
    """§1.1 (accumulators, updated first) and §1.2 (the 30 channels, in checkpoint order), for rank >= 2."""
    shape = tuple(p.shape)
    d1, d0 = factored_dims(shape)
    g = g.unsqueeze(-1)
    st["m"] = MOM * st["m"] + (1 - MOM) * g
    st["rms"] = st["br"] * st["rms"] + (1 - st["br"]) * (g * g)
    gsq = g * g + 1e-30
    st["v_row"] = FAC * st["v_row"] + (1 - FAC) * gsq.mean(dim=d0)
    st["v_col"] = FAC * st["v_col"] + (1 - FAC) * gsq.mean(dim=d1)
    rd1 = d1 - 1 if d1 > d0 else d1  # d1's position once d0 is removed
    row_mean = st["v_row"].mean(dim=rd1, keepdim=True)
    row_factor = torch.rsqrt(torch.clamp(st["v_row"] / (row_mean + 1e-9), min=1e-9)).unsqueeze(d0)
    col_factor = torch.rsqrt(torch.clamp(st["v_col"], min=1e-9)).unsqueeze(d1)
    row = st["v_row"].unsqueeze(d0)
    col = st["v_col"].unsqueeze(d1)
    m, rms = st["m"], st["rms"]
    r = torch.rsqrt(rms + e1)
    full = shape + (3,)
    feats = [
        g,
        torch.clamp(g, -0.1, 0.1),
        p.unsqueeze(-1),
        m,
        rms,
        m * r,
        r,
        g * row_factor * col_factor,
        g * r,
        row.expand(full),
        col.expand(full),
        torch.rsqrt(row + 1e-8).expand(full),
        torch.rsqrt(col + 1e-8).expand(full),
        m * row_factor * col_factor,
    ]
    return torch.cat(feats, dim=-1)


def normalize(x, dims, eps):
    """Each channel divided by its RMS over DIMS of the tensor, eps inside the root."""
    return x * torch.rsqrt((x * x).mean(dim=dims, keepdim=True) + eps)


def mlp(x, ws, bs):
    h = torch.relu(x @ ws[0] + bs[0])
    h = torch.relu(h @ ws[1] + bs[1])
    return h @ ws[2] + bs[2]


@torch.no_grad()
def celo_step(p, g, st, ws, bs, lr_mult):
    """One Celo step (§1.1-1.3, train_phase 2); returns the new p."""
    g = torch.clamp(g, -1000, 1000)
    x = features(p, g, st, 1e-6)
    x = normalize(x, tuple(range(p.dim())), 1e-5)  # over all axes
    out = mlp(x, ws, bs)
    d, mag = out[..., 0], out[..., 1]
    param_scale = torch.sqrt(torch.mean(p * p) + 1e-9)
    step = d * (param_scale * torch.exp(1e-3 * mag)) * 1e-3
    step = lr_mult * step
    return p - step


def newton_schulz(x, steps=5, coeffs=(3.4445, -4.7750, 2.0315), eps=1e-8):
    """§2.2: over the last two axes, leading axes batched, one Frobenius norm per matrix."""
    a, b, c = coeffs
    tr = x.shape[-2] > x.shape[-1]
    if tr:
        x = x.transpose(-2, -1)
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + eps)
    for _ in range(steps):
        A = x @ x.transpose(-2, -1)
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x.transpose(-2, -1) if tr else x


@torch.no_grad()
def celo2_step(p, g, st, ws, bs, lr=1e-3, wd=0.1):
    """One Celo2 step, deploy form, MLP path (§2.2): direction only, Newton-Schulz, RMS-normalized."""
    g = torch.clamp(g, -1000, 1000)
    last2 = (p.dim() - 2, p.dim() - 1)
    x = features(p, g, st, 1e-8)
    x = normalize(x, last2, 1e-9)  # over the last two axes
    u = mlp(x, ws, bs)[..., 0]
    u = newton_schulz(u)
    u = u * torch.rsqrt((u * u).mean(dim=last2, keepdim=True) + 1e-9)
    return p - lr * (u + wd * p)


# ---------------------------------------------------------------------------------------------- --check

REL_TOL, ULP_TOL = 2e-5, 8  # tests/reference/compare_golden.py's bound (float32 rounding in another order)


def check(data):
    tag = lambda s: "x".join(map(str, s))  # noqa: E731
    theta_celo = celo_ref.load_msgpack(os.path.join(data, "theta.state"))
    theta_celo2 = celo_ref.load_msgpack(os.path.join(data, "golden", "celo2", "theta.msgpack"))
    W = {"celo": mlp_weights(theta_celo, True), "celo2": mlp_weights(theta_celo2, False)}
    ok = True
    for rule in ("celo", "celo2"):
        gold_dir = os.path.join(data, "golden", "celo" if rule == "celo" else "celo2_deploy")
        worst = [0.0, 0.0, 0.0]  # rel vs ref, ulp vs ref, rel vs golden
        for shape in ((64, 33), (33, 64), (3, 5, 7)):
            d = os.path.join(gold_dir, tag(shape))
            p0, grads, gold = (np.load(os.path.join(d, f)) for f in ("p0.npy", "grads.npy", "params.npy"))
            T = grads.shape[0]
            if rule == "celo":
                losses = np.load(os.path.join(gold_dir, "losses.npy"))
                ref = celo_ref.Celo(theta_celo, num_steps=T)
                rst = ref.init(p0)
                ref_step = lambda p, g, t: ref.step(p, g, rst, losses[t])[0]  # noqa: E731
            else:
                ref = celo_ref.Celo2(theta_celo2, mode="deploy", orthogonalize=True, route_1d="adamw", lr=1e-3,
                                     wd=0.1)
                rst = ref.init(p0, "w")
                ref_step = lambda p, g, t: ref.step(p, g, rst)[0]  # noqa: E731
            ws, bs = W[rule]
            pt = torch.tensor(p0, dtype=F32)
            st = init_state(pt, 0.999 if rule == "celo" else 0.95)
            pr = p0.astype(np.float32)
            line_err = [0.0, 0.0, 0.0, 0.0]
            for t in range(T):
                pr = ref_step(pr, grads[t], t)
                gt = torch.tensor(grads[t], dtype=F32)
                if rule == "celo":
                    # the reference's scheduler output for this step (float32), so that only the update is compared
                    pt = celo_step(pt, gt, st, ws, bs, torch.tensor(ref.lr_mults[t], dtype=F32))
                else:
                    pt = celo2_step(pt, gt, st, ws, bs)
                a = pt.numpy().astype(np.float64)
                r = pr.astype(np.float64)
                err = float(np.max(np.abs(a - r)))
                upd = float(np.max(np.abs(r - p0)))
                ulp = float(np.spacing(np.float32(np.max(np.abs(r)))))
                gerr = float(np.max(np.abs(a - gold[t])))
                gupd = float(np.max(np.abs(gold[t].astype(np.float64) - p0)))
                gulp = float(np.spacing(np.float32(np.max(np.abs(gold[t])))))
                if err > max(REL_TOL * upd, ULP_TOL * ulp) or not np.isfinite(err):
                    ok = False
                    print(f"torch_lopt: {rule} {tag(shape)} step {t + 1}: max|torch-ref| {err:.3g} over the bound "
                          f"(update {upd:.3g}, ulp {ulp:.3g})")
                if gerr > max(REL_TOL * gupd, ULP_TOL * gulp) or not np.isfinite(gerr):
                    ok = False
                    print(f"torch_lopt: {rule} {tag(shape)} step {t + 1}: max|torch-golden| {gerr:.3g} over the bound")
                line_err = [max(line_err[0], err), max(line_err[1], err / upd), max(line_err[2], err / ulp),
                            max(line_err[3], gerr / gupd)]
            print(f"check {rule} {tag(shape)}: {T} steps, max|torch-ref| {line_err[0]:.3g} = {line_err[1]:.3g} of "
                  f"the update = {line_err[2]:.2f} ulp of |p|; vs the authors' JAX: {line_err[3]:.3g} of the update")
            worst = [max(worst[0], line_err[1]), max(worst[1], line_err[2]), max(worst[2], line_err[3])]
        print(f"check {rule}: worst rel {worst[0]:.3g}, {worst[1]:.2f} ulp (ref); rel {worst[2]:.3g} (golden)")
    print("check=ok" if ok else "check=FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- timing


def timing(a):
    shape = tuple(int(s) for s in a.shape.lower().split("x"))
    n = int(np.prod(shape))
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    for rule in a.rules:
        try:
            if rule == "celo":
                ws, bs = load_celo(a.data)
                lr_mult = torch.tensor(1.0, dtype=F32)
                step = lambda p, g, st: celo_step(p, g, st, ws, bs, lr_mult)  # noqa: E731
                rms_decay = 0.999
            elif rule == "celo2":
                ws, bs = load_celo2(a.data)
                step = lambda p, g, st: celo2_step(p, g, st, ws, bs)  # noqa: E731
                rms_decay = 0.95
            else:
                raise ValueError(f"unknown rule {rule}")
            p = (torch.rand(shape, generator=gen) - 0.5) * 0.2
            g = (torch.rand(shape, generator=gen) - 0.5) * 0.02
            st = init_state(p, rms_decay)
            for _ in range(a.warmup):
                p = step(p, g, st)
            times = []
            start = time.perf_counter()
            for _ in range(a.reps):
                t0 = time.perf_counter()
                p = step(p, g, st)
                times.append(time.perf_counter() - t0)
                if len(times) >= 3 and time.perf_counter() - start > a.max_s:
                    break
            if not bool(torch.isfinite(p).all()):
                raise RuntimeError("non-finite parameters after the timed steps")
            med = statistics.median(times)
            print(f"torch {rule} shape={list(shape)} threads={torch.get_num_threads()} steps={len(times)} "
                  f"median_ms={med * 1e3:.3f} min_ms={min(times) * 1e3:.3f} max_ms={max(times) * 1e3:.3f} "
                  f"params_per_s={n / med:.6g}", flush=True)
        except Exception as e:  # noqa: BLE001  (reported as the peer's n/a)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"torch {rule} error={msg}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with tests/reference/celo_ref.py and exit")
    ap.add_argument("--data", default=DATA, help="the shared Celo data (theta.state, golden/)")
    ap.add_argument("--shape", default="4096x1024")
    ap.add_argument("--reps", type=int, default=5, help="timed steps at most (default 5)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-s", type=float, default=10.0, help="stop timing after 3 steps and this many seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("rules", nargs="*", default=["celo", "celo2"])
    a = ap.parse_args()
    if a.check:
        return check(a.data)
    return timing(a)


if __name__ == "__main__":
    sys.exit(main())
