#!/usr/bin/env python3
"""Reference data for celo's models (runtime/nn.h), from PyTorch: tests/golden/nn/<model>/.

    python3 tests/reference/gen_nn.py          # (re)write tests/golden/nn/

For each model below this builds the torch module that celo's model mirrors (same layouts, same state_dict
names and order), initializes it with torch's defaults under a fixed seed, and writes, all float32:

    tensors.txt   one line per parameter tensor: `name d0xd1...` in state_dict order (celo's table must match)
    params.npy    [nparams] the initial parameters, the tensors flattened and concatenated in that order
                  (celo's parameter buffer layout)
    x.npy         the input batch: floats, or token ids stored as float32 (exact: ids < 2^24)
    y.npy         the labels / next tokens as float32 (classifiers, language models; absent for the autoencoder)
    loss.npy      [1] the loss on that batch at the initial parameters
    grads.npy     [nparams] its gradient, laid out as params.npy
    traj.npy      [STEPS + 1] the loss before each of STEPS plain SGD steps (p -= LR * grad, on the same batch)
                  and after the last one
    final.npy     [nparams] the parameters after the STEPS steps

Everything runs in float32 on one CPU thread with fixed seeds, so reruns give the same bytes on one machine.
tests/unit/test_nn_torch.c builds the same configs in celo (written out there too) and compares.
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "nn")
STEPS = 10
LR = 0.1


# ---- the modules: celo's models, written the way torch users write them -------------------------------------

class MLP(nn.Module):
    """celo MLP / autoencoder: fc1..fcL, activation after each hidden layer (gelu = tanh approximation)."""

    def __init__(self, dims, act):
        super().__init__()
        for i in range(len(dims) - 1):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))
        self.n, self.act = len(dims) - 1, act

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"fc{i + 1}")(x)
            if i < self.n - 1:
                x = {"relu": F.relu, "tanh": torch.tanh, "gelu": lambda v: F.gelu(v, approximate="tanh")}[self.act](x)
        return x


class ConvNet(nn.Module):
    """celo conv net: (conv k x k, padding k//2 -> relu -> 2x2 max pool) x 2 -> flatten -> fc."""

    def __init__(self, cin, h, w, c1, c2, k, out):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c1, k, padding=k // 2)
        self.conv2 = nn.Conv2d(c1, c2, k, padding=k // 2)
        self.fc = nn.Linear(c2 * (h // 4) * (w // 4), out)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class Attention(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.nh = nh

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.nh)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = Attention(C, nh)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C)
        self.mlp.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    """celo GPT: token + position embeddings, pre-LN blocks, final LayerNorm, untied head without bias."""

    def __init__(self, vocab, ctx, C, nh, layers):
        super().__init__()
        self.wte = nn.Embedding(vocab, C)
        self.wpe = nn.Embedding(ctx, C)
        self.h = nn.ModuleList(Block(C, nh) for _ in range(layers))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, vocab, bias=False)

    def forward(self, tok):
        x = self.wte(tok) + self.wpe(torch.arange(tok.shape[1]))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


class LSTMLM(nn.Module):
    """celo LSTM LM: embedding -> nn.LSTM (batch_first, zero initial state) -> linear head."""

    def __init__(self, vocab, E, H, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, E)
        self.lstm = nn.LSTM(E, H, layers, batch_first=True)
        self.head = nn.Linear(H, vocab)

    def forward(self, tok):
        return self.head(self.lstm(self.embed(tok))[0])


# ---- the cases: must match the configs in tests/unit/test_nn_torch.c ------------------------------------------

def cases():
    g = torch.Generator().manual_seed(1)
    yield ("mlp", lambda: MLP([20, 32, 24, 10], "gelu"),
           torch.randn(16, 20, generator=g), torch.randint(0, 10, (16,), generator=g), "ce")
    g = torch.Generator().manual_seed(2)
    yield ("autoencoder", lambda: MLP([12, 8, 4, 8, 12], "tanh"), torch.randn(10, 12, generator=g), None, "mse")
    g = torch.Generator().manual_seed(3)
    yield ("convnet", lambda: ConvNet(1, 8, 8, 4, 8, 3, 10),
           torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 10, (12,), generator=g), "ce")
    g = torch.Generator().manual_seed(4)
    yield ("gpt", lambda: GPT(24, 8, 16, 2, 2),
           torch.randint(0, 24, (4, 8), generator=g), torch.randint(0, 24, (4, 8), generator=g), "ce")
    g = torch.Generator().manual_seed(5)
    yield ("lstm", lambda: LSTMLM(20, 12, 16, 2),
           torch.randint(0, 20, (4, 7), generator=g), torch.randint(0, 20, (4, 7), generator=g), "ce")


def loss_of(model, x, y, kind):
    out = model(x)
    if kind == "mse":
        return F.mse_loss(out, x)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy().astype(np.float32)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    total = 0
    for k, (name, make, x, y, kind) in enumerate(cases()):
        torch.manual_seed(100 + k)
        model = make()
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        params = list(model.named_parameters())
        with open(os.path.join(d, "tensors.txt"), "w") as f:
            for n, p in params:
                f.write(f"{n} {'x'.join(str(s) for s in p.shape)}\n")
        files = {"params": flat(p for _, p in params), "x": x.numpy().astype(np.float32)}
        if y is not None:
            files["y"] = y.numpy().astype(np.float32)
        loss = loss_of(model, x, y, kind)
        loss.backward()
        files["loss"] = np.array([loss.item()], dtype=np.float32)
        files["grads"] = flat(p.grad for _, p in params)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        traj = []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = loss_of(model, x, y, kind)
            traj.append(loss.item())
            loss.backward()
            opt.step()
        with torch.no_grad():
            traj.append(loss_of(model, x, y, kind).item())
        files["traj"] = np.array(traj, dtype=np.float32)
        files["final"] = flat(p for _, p in params)
        for fn, a in files.items():
            np.save(os.path.join(d, fn + ".npy"), a)
            total += a.nbytes
        print(f"{name}: {files['params'].size} parameters, loss {files['loss'][0]:.6f} -> {traj[-1]:.6f}")
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({total / 1024:.0f} KiB of data)")


if __name__ == "__main__":
    main()
