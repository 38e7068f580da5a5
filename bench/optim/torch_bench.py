"""PyTorch baselines for bench/optim: one process measures several configurations.

    python3 torch_bench.py [--size N] [--cols C] [--reps K] [--max-s S] CONFIG...

CONFIG is one of: adamw-foreach adamw-fused adamw-single lion-eager adafactor-foreach adafactor-single.
For each it prints `torch CONFIG median_ms=... min_ms=... max_ms=... params_per_s=<number>`, or
`torch CONFIG error=<message>` when that configuration does not run here.
torch.set_num_threads(2) unless --threads says otherwise. Hyper-parameters: the defaults of celo's stdlib rules,
which are torch's for AdamW and Adafactor and optax's for Lion (lr 1e-4, betas 0.9/0.99, weight decay 1e-3).
"""
import argparse
import statistics
import sys
import time

import torch


class Lion(torch.optim.Optimizer):
    """Lion as in lion-pytorch (eager torch ops, one tensor at a time)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                m = st["exp_avg"]
                p.mul_(1.0 - lr * wd)
                update = m.clone().mul_(b1).add(p.grad, alpha=1.0 - b1).sign_()
                p.add_(update, alpha=-lr)
                m.mul_(b2).add_(p.grad, alpha=1.0 - b2)


def make(config, p):
    if config == "adamw-foreach":
        return torch.optim.AdamW([p], foreach=True)
    if config == "adamw-fused":
        return torch.optim.AdamW([p], fused=True)
    if config == "adamw-single":
        return torch.optim.AdamW([p], foreach=False)
    if config == "lion-eager":
        return Lion([p], lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-3)
    if config == "adafactor-foreach":
        return torch.optim.Adafactor([p], foreach=True)
    if config == "adafactor-single":
        return torch.optim.Adafactor([p], foreach=False)
    raise ValueError(f"unknown config {config}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-s", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("configs", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = (a.size // a.cols, a.cols) if a.size % a.cols == 0 else (a.size,)
    gen = torch.Generator().manual_seed(0)
    for config in a.configs:
        try:
            p = torch.nn.Parameter((torch.rand(shape, generator=gen) - 0.5) * 0.2)
            p.grad = (torch.rand(shape, generator=gen) - 0.5) * 0.02
            opt = make(config, p)
            for _ in range(a.warmup):
                opt.step()
            times = []
            start = time.perf_counter()
            for _ in range(a.reps):
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
                if len(times) >= 5 and time.perf_counter() - start > a.max_s:
                    break
            med = statistics.median(times)
            print(f"torch {config} shape={list(shape)} threads={torch.get_num_threads()} steps={len(times)} "
                  f"median_ms={med * 1e3:.3f} min_ms={min(times) * 1e3:.3f} max_ms={max(times) * 1e3:.3f} "
                  f"params_per_s={a.size / med:.6g}", flush=True)
            del opt, p
        except Exception as e:  # a configuration this torch build does not support
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"torch {config} error={msg}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
