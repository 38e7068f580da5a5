"""bench/train, PyTorch side: steps/s of training steps (batch gather + forward + backward + AdamW step) of the
models that bench/train/*.celo train with celo, on the same batches sizes and hyper-parameters.

    python3 bench/train/torch_train.py MODEL [--steps N | --target-s S] [--warmup W]
        [--opt fused|foreach|forloop]... [--compile] [--threads 2] [--vocab V]

MODEL: mlp8 (64-32-10, batch 64, 8x8 Fashion-MNIST), mlp28 (784-128-10, batch 128, 28x28 Fashion-MNIST),
gpt (celo's GPT: dim 128, 4 heads, 2 layers, seq 64, batch 16, character vocabulary V of the KJV text).
For each --opt (default: fused, foreach, forloop; OPT@N runs it on N threads) prints one line
    torch MODEL opt=OPT steps_per_s=X steps=N warmup_s=S params=P
or `torch MODEL opt=OPT error=...` (a configuration this torch cannot run). steps_per_s is the mean over the N
timed steps after W warm-up steps (the same measure as the celo side: N steps / their wall time); without
--steps, N is what fills about --target-s seconds at the pace of 0.2 s of steps after the warm-up.
"""
import argparse
import sys
import time

import fmnist  # bench/train/fmnist.py: the script's folder is first on sys.path
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# model: (in, hidden, out, batch, image side) / GPT config; hyper-parameters as in bench/train/*.celo
MODELS = {
    "mlp8": dict(kind="mlp", dims=(64, 32, 10), batch=64, side=8, lr=1e-3, wd=1e-4),
    "mlp28": dict(kind="mlp", dims=(784, 128, 10), batch=128, side=28, lr=1e-3, wd=1e-4),
    "gpt": dict(kind="gpt", dim=128, heads=4, layers=2, seq=64, batch=16, lr=3e-3, wd=0.01),
}


def fashion(side):
    """Training images [n, side*side] float32 and labels int64 as tensors, loaded as bench/train/fmnist.py does
    for every Python peer."""
    x, y, src = fmnist.fashion(side)
    return torch.from_numpy(x), torch.from_numpy(y), src


class MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, l in enumerate(self.fc):
            x = l(x)
            if i + 1 < len(self.fc):
                x = F.relu(x)
        return x


class Block(nn.Module):
    """Pre-LayerNorm block as runtime/nn.h: x += attn(ln_1(x)); x += mlp(ln_2(x)); causal MHA, gelu (tanh)."""

    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, C, H, L):
        super().__init__()
        self.wte = nn.Embedding(vocab, C)
        self.wpe = nn.Embedding(ctx, C)
        self.h = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.lm_head = nn.Linear(C, vocab, bias=False)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:T]
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def make(name, vocab):
    cfg = MODELS[name]
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    if cfg["kind"] == "mlp":
        X, Y, _ = fashion(cfg["side"])
        model = MLP(cfg["dims"])
        B, n = cfg["batch"], len(X)
        per = n // B
        state = {"perm": None, "epoch": -1}

        def batch(k):  # batch k of a shuffled epoch, gathered by index (celo: epoch permutation + gather)
            e, off = divmod(k, per)
            if state["epoch"] != e:
                state["perm"], state["epoch"] = torch.randperm(n, generator=g), e
            idx = state["perm"][off * B:(off + 1) * B]
            return X[idx], Y[idx]

        def loss_fn(m, b):
            return F.cross_entropy(m(b[0]), b[1])
    else:
        T, B = cfg["seq"], cfg["batch"]
        model = GPT(vocab, T, cfg["dim"], cfg["heads"], cfg["layers"])
        text = torch.randint(0, vocab, (3_700_000,), generator=g, dtype=torch.int64)  # the KJV has 3.7M chars
        ar = torch.arange(T)

        def batch(k):  # B random windows of T + 1 characters (celo: hashed window starts)
            s = torch.randint(0, len(text) - T - 1, (B, 1), generator=g) + ar
            return text[s], text[s + 1]

        def loss_fn(m, b):
            logits = m(b[0])
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), b[1].view(-1))
    return model, batch, loss_fn, cfg


def bench(name, opt, steps, warmup, vocab, compile_, target_s):
    model, batch, loss_fn, cfg = make(name, vocab)
    kw = dict(lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg["wd"])
    if opt == "fused":
        kw["fused"] = True
    elif opt == "foreach":
        kw["foreach"] = True
    else:
        kw["foreach"] = False
    o = torch.optim.AdamW(model.parameters(), **kw)
    fwd = torch.compile(loss_fn) if compile_ else loss_fn

    def step(k):
        b = batch(k)
        loss = fwd(model, b)
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()
        return loss

    t0 = time.perf_counter()
    for k in range(warmup):
        step(k)
    w = time.perf_counter() - t0
    if steps <= 0:  # as many steps as fill about target_s at the pace of 0.2 s of further warm-up (at least 10)
        t1, n = time.perf_counter(), 0
        while time.perf_counter() - t1 < 0.2 or n < 2:
            step(warmup + n)
            n += 1
        steps = max(10, int(target_s * n / (time.perf_counter() - t1)))
        warmup += n
    t0 = time.perf_counter()
    for k in range(warmup, warmup + steps):
        loss = step(k)
    loss = loss.item()
    dt = time.perf_counter() - t0
    if not np.isfinite(loss):
        raise RuntimeError("loss is not finite")
    return steps / dt, steps, w, sum(q.numel() for q in model.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: as many as fill --target-s)")
    ap.add_argument("--target-s", type=float, default=1.0, help="timed seconds when --steps is not given")
    ap.add_argument("--warmup", type=int, default=0, help="warm-up steps (default: per model)")
    ap.add_argument("--opt", action="append", metavar="OPT[@THREADS]",
                    help="fused, foreach or forloop, optionally @N threads (default --threads)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the forward and loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=63, help="character vocabulary of the KJV text (celo: 63)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warmup = a.warmup or {"mlp8": 300, "mlp28": 50, "gpt": 5}[a.model]
    if a.compile:
        warmup = max(warmup, 3)
    for spec in a.opt or ["fused", "foreach", "forloop"]:
        opt, _, nt = spec.partition("@")
        tag = f"torch {a.model} opt={spec}{'+compile' if a.compile else ''}"
        if opt not in ("fused", "foreach", "forloop") or (nt and not nt.isdigit()):
            print(f"{tag} error=unknown configuration", flush=True)
            continue
        torch.set_num_threads(int(nt) if nt else a.threads)
        try:
            r, steps, w, npar = bench(a.model, opt, a.steps, warmup, a.vocab, a.compile, a.target_s)
        except Exception as e:  # a configuration this torch cannot run: say why, go on
            msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            print(f"{tag} error={msg}", flush=True)
            continue
        print(f"{tag} steps_per_s={r:.6g} steps={steps} warmup_s={w:.3f} params={npar}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
