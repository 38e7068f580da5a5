#!/usr/bin/env python3
"""Reference data for celo's causal linear attention (runtime/nn.h, linattn), from PyTorch:
tests/golden/linattn/<feature>/ for feature in identity, elu, mlp, hedgehog.

    python3 tests/reference/gen_linattn.py          # (re)write tests/golden/linattn/

The layer is written here from the formulas (docs/distill.md; Katharopoulos et al. 2020 for the normalized causal
form, Hedgehog for its feature map), the way a torch user writes it: the masked quadratic form over all T tokens,
no chunks and no recurrence, so it shares no structure with celo's chunked kernel.

    q, k, v = c_attn(x) split into heads of hs channels
    A = phi_q(q) phi_k(k)^T masked to s <= t
    y = c_proj((A v) / (A 1 + eps)),   eps = 1e-6

Shapes: B 2, T 20, C 16, 2 heads (hs 8). Parameters: torch's default init under a fixed seed, in float32; for the
identity map the q and k biases get + 1.5 so that phi(q) . phi(k) stays away from 0 (with random signs the
denominator can vanish, and so would the reference's precision). The forward and backward passes then run in
float64 on those float32 values. Files, float32:

    tensors.txt   `name d0xd1...` per parameter tensor, in state_dict order (celo's order: c_attn, c_proj,
                  feature_q, feature_k)
    params.npy    the tensors flattened and concatenated in that order
    x.npy         [B, T, C] input,  r.npy  [B, T, C] the upstream gradient: the loss is sum(y * r)
    y.npy         [B, T, C] output, dx.npy [B, T, C] dL/dx, grads.npy dL/dparams laid out as params.npy

tests/unit/test_linattn.c runs celo's layer (float32 and float64, chunk 8: 8 + 8 + 4 tokens) on the same values.
"""
import os

import numpy as np
import torch
import torch.nn as nn

from featmaps import FeatureMap, write_case

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "linattn")
EPS = 1e-6
B, T, C, H = 2, 20, 16, 2


class LinearAttention(nn.Module):
    def __init__(self, dim, heads, kind):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        # one map for queries and one for keys, shared by the heads
        self.feature_q = FeatureMap(kind, dim // heads)
        self.feature_k = FeatureMap(kind, dim // heads)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        fq, fk = self.feature_q(q), self.feature_k(k)
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
        a = (fq @ fk.transpose(-2, -1)).masked_fill(~mask, 0.0)
        y = (a @ v) / (a.sum(dim=-1, keepdim=True) + EPS)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


def write(kind, seed):
    torch.manual_seed(seed)
    m = LinearAttention(C, H, kind)
    if kind == "identity":
        with torch.no_grad():
            m.c_attn.bias[: 2 * C] += 1.5
    x = torch.randn(B, T, C)
    r = torch.randn(B, T, C)
    names = [n for n, _ in m.named_parameters()]
    params32 = [p.detach().clone() for p in m.parameters()]
    m = m.double()
    xd = x.double().requires_grad_(True)
    y = m(xd)
    (y * r.double()).sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in m.parameters()])
    write_case(os.path.join(OUT, kind), np.float32, names, params32,
               [("x.npy", x), ("r.npy", r), ("y.npy", y), ("dx.npy", xd.grad), ("grads.npy", grads)])
    print("%-9s y %.3e  |dx| %.3e  %d parameters" % (kind, y.abs().max().item(), xd.grad.abs().max().item(),
                                                  sum(p.numel() for p in params32)))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for i, kind in enumerate(["identity", "elu", "mlp", "hedgehog"]):
        write(kind, 1000 + i)
