"""bench/distill/torch_layers.py: the PyTorch side of bench/distill: the token mixers of runtime/nn.h written from
the same formulas with torch ops, the way a researcher writes them (nothing shared with celo's kernels), timed
forward + backward. Runs as a worker: one command per line on stdin, one answer per line on stdout, so that
bench/distill/driver.py can alternate it with celo's bench/distill/layers without paying torch's import each time.

    fb KIND FORM THREADS B T C NH BUDGET_S   -> `tokens_per_s=X ms=Y iters=N`   (median of forward + backward)
    check KIND FORM B T C NH FILE            -> `y_err=E dx_err=F`  against celo's `layers check` output
    quit

KIND as bench/distill/layers.c: softmax, linattn-elu, linattn-hedgehog, mamba-hedgehog-norm, mamba-identity.
FORM: softmax: sdpa (F.scaled_dot_product_attention(is_causal=True)); linattn: quadratic (the masked T x T form,
as tests/reference/gen_linattn.py) or chunked (chunks of 64: the masked product inside a chunk, a cumulative sum
of the chunks' k^T v states across them); mamba: ssd (the chunked SSD of mamba_ssm's ssd_minimal.py, chunks of 64; ssd32: of 32)
or scan (the recurrence token by token in a Python loop).

The formulas (runtime/nn.h): linear attention out_t = sum_{s<=t} (phi_q(q_t).phi_k(k_s)) v_s / (sum_{s<=t}
phi_q(q_t).phi_k(k_s) + 1e-6) between c_attn and c_proj; Mamba: in_proj -> [xv, b, c, zg, dt], causal depthwise
conv (K = 4) on [xv, b, c], B = phi_k(b), C = phi_q(c) per head, delta = softplus(dt), a = exp(-delta exp(A_log)),
H_t = a_t H_{t-1} + delta_t B_t xv_t^T, o_t = H_t^T C_t (normalize: / (z_t . C_t + 1e-6), z the scan of an
all-ones value channel), o += D xv, o *= 2 sigmoid(zg), out_proj.
"""
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6
CHUNK = 64


class FeatureMap(nn.Module):
    """phi: identity, elu(x) + 1, or Hedgehog's [softmax(W x), softmax(-W x)] (W shared by the heads)."""

    def __init__(self, kind, n):
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.empty(n, n)) if kind == "hedgehog" else None

    def forward(self, x):
        if self.kind == "identity":
            return x
        if self.kind == "elu":
            return F.elu(x) + 1
        u = x @ self.weight.t()
        return torch.cat([torch.softmax(u, dim=-1), torch.softmax(-u, dim=-1)], dim=-1)


class SoftmaxAttention(nn.Module):
    def __init__(self, c, nh):
        super().__init__()
        self.nh = nh
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)

    def tensors(self):
        return [self.c_attn.weight, self.c_attn.bias, self.c_proj.weight, self.c_proj.bias]

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.nh, c // self.nh).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class LinearAttention(nn.Module):
    def __init__(self, c, nh, feature, form):
        super().__init__()
        self.nh, self.form = nh, form
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.feature_q, self.feature_k = FeatureMap(feature, c // nh), FeatureMap(feature, c // nh)

    def tensors(self):
        t = [self.c_attn.weight, self.c_attn.bias, self.c_proj.weight, self.c_proj.bias]
        return t + [m.weight for m in (self.feature_q, self.feature_k) if m.weight is not None]

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.nh, c // self.nh).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        fq, fk = self.feature_q(q), self.feature_k(k)  # [b, h, t, D]
        if self.form == "quadratic":
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
            a = (fq @ fk.transpose(-2, -1)).masked_fill(~mask, 0.0)
            y = (a @ v) / (a.sum(dim=-1, keepdim=True) + EPS)
        else:  # chunked
            L = min(CHUNK, t)
            n = t // L
            fq, fk, v = (z.reshape(b, self.nh, n, L, z.shape[-1]) for z in (fq, fk, v))
            kv = fk.transpose(-2, -1) @ v  # [b, h, n, D, hs]: each chunk's sum of phi(k) v^T
            s = kv.cumsum(dim=2) - kv  # the chunks before
            zk = fk.sum(dim=-2)
            zs = zk.cumsum(dim=2) - zk  # [b, h, n, D]
            mask = torch.tril(torch.ones(L, L, dtype=torch.bool))
            a = (fq @ fk.transpose(-2, -1)).masked_fill(~mask, 0.0)
            num = a @ v + fq @ s
            den = a.sum(dim=-1) + (fq * zs.unsqueeze(-2)).sum(dim=-1) + EPS
            y = (num / den.unsqueeze(-1)).reshape(b, self.nh, t, -1)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


def segsum(x):
    """mamba_ssm's ssd_minimal.py: [..., T] -> [..., T, T], sum of x over (s, t] below the diagonal, -inf above."""
    t = x.size(-1)
    x = x.unsqueeze(-1).expand(*x.shape, t)
    x = x.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=-1), 0)
    x = torch.cumsum(x, dim=-2)
    return x.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=0), -torch.inf)


def ssd_minimal(X, A, B, C, L):
    """ssd_minimal_discrete of mamba_ssm (einops spelled out): X [b, l, h, p], A [b, l, h], B, C [b, l, h, n]."""
    b, l, h, p = X.shape
    c = l // L
    X, B, C = (z.reshape(b, c, L, h, z.shape[-1]) for z in (X, B, C))
    A = A.reshape(b, c, L, h).permute(0, 3, 1, 2)  # b h c l
    A_cumsum = torch.cumsum(A, dim=-1)
    Lm = torch.exp(segsum(A))  # b h c l s
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, Lm, X)
    decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(b, l, h, p)


def scan(X, A, B, C):
    """the recurrence token by token: H_t = exp(A_t) H_{t-1} + B_t X_t^T, y_t = H_t^T C_t."""
    b, l, h, p = X.shape
    H = X.new_zeros(b, h, B.shape[-1], p)
    ys = []
    for t in range(l):
        H = torch.exp(A[:, t])[..., None, None] * H + B[:, t, :, :, None] * X[:, t, :, None, :]
        ys.append(torch.einsum("bhn,bhnp->bhp", C[:, t], H))
    return torch.stack(ys, dim=1)


class Mamba(nn.Module):
    def __init__(self, c, nh, feature, normalize, form, K=4):
        super().__init__()
        self.nh, self.N, self.P, self.K, self.normalize, self.form = nh, c // nh, c // nh, K, normalize, form
        di = c
        self.di = di
        self.in_proj = nn.Linear(c, 2 * di + 2 * nh * self.N + nh)
        nconv = di + 2 * nh * self.N
        self.conv_w, self.conv_b = nn.Parameter(torch.empty(nconv, 1, K)), nn.Parameter(torch.empty(nconv))
        self.A_log, self.D = nn.Parameter(torch.empty(nh)), nn.Parameter(torch.empty(nh))
        self.feature_q, self.feature_k = FeatureMap(feature, self.N), FeatureMap(feature, self.N)
        self.out_proj = nn.Linear(di, c)

    def tensors(self):
        t = [self.in_proj.weight, self.in_proj.bias, self.conv_w, self.conv_b, self.A_log, self.D]
        t += [m.weight for m in (self.feature_q, self.feature_k) if m.weight is not None]
        return t + [self.out_proj.weight, self.out_proj.bias]

    def forward(self, u):
        b, t, _ = u.shape
        nh, N, P, di = self.nh, self.N, self.P, self.di
        xbc, zg, dt = self.in_proj(u).split([di + 2 * nh * N, di, nh], dim=-1)
        xbc = F.conv1d(xbc.transpose(1, 2), self.conv_w, self.conv_b, padding=self.K - 1,
                       groups=xbc.shape[-1])[..., :t].transpose(1, 2)
        xv, bb, cc = xbc.split([di, nh * N, nh * N], dim=-1)
        xv = xv.reshape(b, t, nh, P)
        Bt = self.feature_k(bb.reshape(b, t, nh, N))
        Ct = self.feature_q(cc.reshape(b, t, nh, N))
        delta = F.softplus(dt)  # [b, t, nh]
        dA = -delta * torch.exp(self.A_log)
        X = xv * delta.unsqueeze(-1)
        if self.normalize:  # the all-ones value channel: its scan is z_t . C_t
            X = torch.cat([X, delta.unsqueeze(-1)], dim=-1)
        if self.form in ("ssd", "ssd32"):  # chunks of 64 or 32: the driver keeps the faster
            Y = ssd_minimal(X, dA, Bt, Ct, min(CHUNK if self.form == "ssd" else 32, t))
        else:
            Y = scan(X, dA, Bt, Ct)
        if self.normalize:
            Y = Y[..., :P] / (Y[..., P:] + EPS)
        o = Y + self.D[:, None] * xv
        o = o.reshape(b, t, di) * (2 * torch.sigmoid(zg))
        return self.out_proj(o)


def det(n, i, fan):
    """layers.c's det_fill: sin(0.7 j + 1.3 i + 0.5) / sqrt(fan) in float64, rounded to float32."""
    j = torch.arange(n, dtype=torch.float64)
    s = 1 / math.sqrt(fan) if fan > 0 else 0.1
    return (torch.sin(0.7 * j + 1.3 * i + 0.5) * s).float()


def build(kind, form, B, T, C, nh):
    """the module with layers.c's deterministic tensors, the input x and the upstream gradient dy"""
    if kind == "softmax":
        m = SoftmaxAttention(C, nh)
    elif kind.startswith("linattn-"):
        m = LinearAttention(C, nh, kind[8:], form)
    elif kind.startswith("mamba-"):
        m = Mamba(C, nh, kind.split("-")[1], kind.endswith("-norm"), form)
    else:
        raise ValueError(kind)
    with torch.no_grad():
        for i, p in enumerate(m.tensors()):
            fan = 0 if p.dim() == 1 else p.shape[-1]
            p.copy_(det(p.numel(), i, fan).reshape(p.shape))
    x = det(B * T * C, 100, 1).reshape(B, T, C).requires_grad_(True)
    dy = det(B * T * C, 101, 1).reshape(B, T, C)
    return m, x, dy


def cmd_fb(kind, form, threads, B, T, C, nh, budget):
    torch.set_num_threads(int(threads))
    B, T, C, nh, budget = int(B), int(T), int(C), int(nh), float(budget)
    m, x, dy = build(kind, form, B, T, C, nh)

    def once():
        x.grad = None
        m.zero_grad(set_to_none=True)
        m(x).backward(dy)

    t0 = time.perf_counter()
    once()
    if time.perf_counter() - t0 < 1:  # a second untimed repetition unless the first took a second or more
        once()
    times, start = [], time.perf_counter()
    # at least 5 repetitions, unless they would take more than 5 s (then at least 1), as layers.c
    while (len(times) < 5 or time.perf_counter() - start < budget) and \
            not (times and time.perf_counter() - start > 5):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return "tokens_per_s=%.1f ms=%.4f iters=%d" % (B * T / med, 1e3 * med, len(times))


def cmd_check(kind, form, B, T, C, nh, path):
    torch.set_num_threads(2)
    B, T, C, nh = int(B), int(T), int(C), int(nh)
    m, x, _ = build(kind, form, B, T, C, nh)
    m = m.double()
    xd = x.detach().double().requires_grad_(True)
    y = m(xd)
    y.backward(y.detach())
    got = np.fromfile(path, dtype=np.float32).astype(np.float64)
    n = B * T * C
    cy, cdx = torch.from_numpy(got[:n]), torch.from_numpy(got[n:2 * n])

    def rel(a, ref):
        return (a - ref.reshape(-1)).abs().max().item() / max(ref.abs().max().item(), 1e-30)

    return "y_err=%.3e dx_err=%.3e" % (rel(cy, y.detach()), rel(cdx, xd.grad))


def main():
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == "quit":
            break
        try:
            if w[0] == "fb":
                out = cmd_fb(*w[1:])
            elif w[0] == "check":
                out = cmd_check(*w[1:])
            else:
                out = "error unknown command"
        except Exception as e:  # an answer line either way: the driver shows n/a
            out = "error " + (str(e).splitlines() or [type(e).__name__])[0][:200]
        print(out, flush=True)


if __name__ == "__main__":
    main()
