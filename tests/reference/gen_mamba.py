#!/usr/bin/env python3
"""Reference data for celo's Mamba mixer (runtime/nn.h, mamba), from PyTorch:
tests/golden/mamba/<feature>[_norm]/ for feature in identity, elu, mlp, hedgehog, without and with the normalizer.

    python3 tests/reference/gen_mamba.py          # (re)write tests/golden/mamba/

(torch and numpy from pip, e.g. in a virtual environment such as build/bench/venv: `pip install torch numpy`.)

The layer is written here from nn.h's formulas (docs/distill.md "The Mamba layer"; Mamba-2 / SSD with one scalar
decay per head, research notes §2.4-2.6) the way a torch user writes it: the recurrence token by token, autograd
for the gradients, so it shares no structure with celo's chunked kernel.

    [xv, b, c, zg, dt] = in_proj(u)                     widths Di, nh N, nh N, Di, nh
    [xv, b, c] = depthwise Conv1d over time, K taps, left zero padding, no activation
    per head h: B = phi_k(b_h), C = phi_q(c_h), delta = softplus(dt_h), a = exp(-delta exp(A_log_h))
                H_t = a H_{t-1} + delta B xv_h^T,  z_t = a z_{t-1} + delta B
                o_t = H_t^T C (/ (z_t . C + 1e-6) with the normalizer) + D_h xv_h
    y = out_proj(o * 2 sigmoid(zg))

Shapes per case (dims.txt): B 2, T 9, C 8, 2 heads; N, K and expand vary by case (N 4 = C / heads, 6 or 3; K 4, 2
or 1; expand 1 or 2). Parameters: torch's default init under a fixed seed, rounded to float32, then dt's bias
-0.5 (delta about 0.5), A_log ~ 0.3 N(0, 1) (decays about 0.4 to 0.8) and D ~ 1 + 0.2 N(0, 1); with the normalizer
the conv's b and c channels get + 2 on their bias so that C . z stays away from 0 (identity map). The forward and
backward passes run in float64 on those float32 values (exact in both), so celo's float32 layer sees the same
inputs. Files, float64 ('<f8'):

    dims.txt      `B T C heads N K expand normalize`
    tensors.txt   `name d0xd1...` per parameter tensor, in celo's order (nn.h: in_proj, conv, A_log, D, feature_q,
                  feature_k, out_proj). Not torch's state_dict order: there a module's own parameters (A_log, D)
                  come before its submodules'.
    params.npy    the tensors flattened and concatenated in that order
    x.npy         [B, T, C] input,  r.npy  [B, T, C] the upstream gradient: the loss is sum(y * r)
    y.npy         [B, T, C] output, dx.npy [B, T, C] dL/dx, grads.npy dL/dparams laid out as params.npy

tests/unit/test_mamba.c runs celo's layer (float32 and float64, chunk 4: 4 + 4 + 1 tokens) on the same values.
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from featmaps import FeatureMap, write_case

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "mamba")
EPS = 1e-6
B, T, C, H = 2, 9, 8, 2


class Mamba(nn.Module):
    def __init__(self, dim, heads, n, k, expand, kind, normalize):
        super().__init__()
        self.heads, self.n, self.k, self.di, self.normalize = heads, n, k, expand * dim, normalize
        cx = self.di + 2 * heads * n
        self.in_proj = nn.Linear(dim, 2 * self.di + 2 * heads * n + heads)
        self.conv = nn.Conv1d(cx, cx, k, groups=cx)  # weight [cx, 1, k], bias [cx]
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.D = nn.Parameter(torch.ones(heads))
        self.feature_q = FeatureMap(kind, n)  # on C
        self.feature_k = FeatureMap(kind, n)  # on B
        self.out_proj = nn.Linear(self.di, dim)

    def ordered(self):
        """(name, parameter) in celo's order (nn.h)"""
        own = dict(self.named_parameters())
        first = ["in_proj.weight", "in_proj.bias", "conv.weight", "conv.bias", "A_log", "D"]
        maps = [nm for nm in own if nm.startswith("feature_")]
        return [(nm, own[nm]) for nm in first + maps + ["out_proj.weight", "out_proj.bias"]]

    def forward(self, u):
        b, t, _ = u.shape
        nh, n, di = self.heads, self.n, self.di
        p = di // nh
        proj = self.in_proj(u)
        cx = di + 2 * nh * n
        xbc = F.conv1d(F.pad(proj[..., :cx].transpose(1, 2), (self.k - 1, 0)), self.conv.weight, self.conv.bias,
                       groups=cx).transpose(1, 2)
        xv, bb, cc = xbc[..., :di], xbc[..., di:di + nh * n], xbc[..., di + nh * n:]
        zg, dt = proj[..., cx:cx + di], proj[..., cx + di:]
        delta = F.softplus(dt)  # [b, t, nh]
        a = torch.exp(-delta * torch.exp(self.A_log))
        outs = []
        for h in range(nh):
            X = xv[..., h * p:(h + 1) * p]
            Bm = self.feature_k(bb[..., h * n:(h + 1) * n])
            Cm = self.feature_q(cc[..., h * n:(h + 1) * n])
            S = torch.zeros(b, Bm.shape[-1], p, dtype=u.dtype)
            z = torch.zeros(b, Bm.shape[-1], dtype=u.dtype)
            ys = []
            for s in range(t):
                at, dl = a[:, s, h, None], delta[:, s, h, None]
                S = at[..., None] * S + (dl * Bm[:, s])[..., None] * X[:, s, None, :]
                z = at * z + dl * Bm[:, s]
                o = (S * Cm[:, s, :, None]).sum(1)
                if self.normalize:
                    o = o / ((z * Cm[:, s]).sum(1, keepdim=True) + EPS)
                ys.append(o + self.D[h] * X[:, s])
            outs.append(torch.stack(ys, 1))
        o = torch.cat(outs, -1)
        return self.out_proj(o * 2 * torch.sigmoid(zg))


# (feature, normalize, N, K, expand) per case
CASES = [
    ("identity", 0, 4, 4, 1),
    ("identity", 1, 6, 4, 2),
    ("elu", 0, 6, 2, 2),
    ("elu", 1, 4, 4, 1),
    ("mlp", 0, 3, 4, 2),
    ("mlp", 1, 4, 1, 1),
    ("hedgehog", 0, 4, 4, 2),
    ("hedgehog", 1, 6, 4, 1),
]


def write(kind, normalize, n, k, expand, seed):
    torch.manual_seed(seed)
    m = Mamba(C, H, n, k, expand, kind, normalize)
    di = expand * C
    with torch.no_grad():
        m.in_proj.bias[-H:] = -0.5
        m.A_log.copy_(0.3 * torch.randn(H))
        m.D.copy_(1 + 0.2 * torch.randn(H))
        if normalize:
            m.conv.bias[di:] += 2
        for q in m.parameters():  # float32 values, exact in float64
            q.copy_(q.float())
    x = torch.randn(B, T, C)
    r = torch.randn(B, T, C)
    m = m.double()
    names, params = zip(*m.ordered())
    xd = x.double().requires_grad_(True)
    y = m(xd)
    (y * r.double()).sum().backward()
    d = os.path.join(OUT, kind + ("_norm" if normalize else ""))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "dims.txt"), "w") as f:
        f.write("%d %d %d %d %d %d %d %d\n" % (B, T, C, H, n, k, expand, normalize))
    write_case(d, np.float64, names, params,
               [("x.npy", x.double()), ("r.npy", r.double()), ("y.npy", y), ("dx.npy", xd.grad),
                ("grads.npy", torch.cat([q.grad.reshape(-1) for q in params]))])
    print("%-14s y %.3e  |dx| %.3e  %d parameters" % (os.path.basename(d), y.abs().max().item(),
                                                       xd.grad.abs().max().item(),
                                                       sum(q.numel() for q in params)))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for i, case in enumerate(CASES):
        write(*case, seed=2000 + i)
