"""Shared by tests/reference/gen_linattn.py and gen_mamba.py: the feature maps phi written from their formulas
with torch ops, and the writer of one reference case's files (tensors.txt, params.npy and the arrays)."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class FeatureMap(nn.Module):
    """phi: identity, elu(x) + 1, sigmoid(W x + b), or Hedgehog's [softmax(W x), softmax(-W x)]."""

    def __init__(self, kind, n):
        super().__init__()
        self.kind = kind
        if kind in ("mlp", "hedgehog"):  # a Linear's tensors under the map's own name (feature_q.weight)
            lin = nn.Linear(n, n, bias=kind == "mlp")
            self.weight = lin.weight
            self.bias = lin.bias

    def forward(self, x):
        if self.kind == "identity":
            return x
        if self.kind == "elu":
            return F.elu(x) + 1
        u = F.linear(x, self.weight, self.bias)
        if self.kind == "mlp":
            return torch.sigmoid(u)
        return torch.cat([torch.softmax(u, dim=-1), torch.softmax(-u, dim=-1)], dim=-1)


def write_case(d, dtype, names, params, arrays):
    """Into folder d: tensors.txt (`name d0xd1...` per parameter), params.npy (the parameters flattened and
    concatenated in that order), then each (file, tensor) of arrays flattened; every array as dtype."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tensors.txt"), "w") as f:
        for n, p in zip(names, params):
            f.write("%s %s\n" % (n, "x".join(str(s) for s in p.shape)))

    def save(name, t):
        np.save(os.path.join(d, name), t.detach().numpy().astype(dtype).reshape(-1))

    save("params.npy", torch.cat([p.reshape(-1) for p in params]))
    for name, t in arrays:
        save(name, t)
