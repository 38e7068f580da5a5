#!/usr/bin/env python3
"""Reference data for the rules in examples/ that have a library counterpart (tests/golden/examples.txt).

    python3 tests/reference/gen_example.py

examples/adamax.celo is checked against torch.optim.Adamax (foreach=False), 20 steps in float32, on the inputs
that gen_optim.py wrote for each shape (tests/golden/adamw/<shape>/p0.npy and grads.npy).
"""
import os

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
SHAPES = ["1000", "64x33", "3x5x7"]
HP = {"lr": 0.05, "b1": 0.875, "b2": 0.984375, "eps": 1e-6, "wd": 0.1}


def f32(x):
    return float(np.float32(x))


def main():
    torch.set_num_threads(1)
    lines = []
    hp = {k: f32(v) for k, v in HP.items()}
    for tag in SHAPES:
        src = os.path.join(GOLDEN, "adamw", tag)
        p0 = np.load(os.path.join(src, "p0.npy"))
        grads = np.load(os.path.join(src, "grads.npy"))
        p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
        opt = torch.optim.Adamax([p], lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"],
                                 weight_decay=hp["wd"], foreach=False)
        for g in grads:
            p.grad = torch.from_numpy(g.copy())
            opt.step()
        out = os.path.join(GOLDEN, "adamax_example", tag)
        os.makedirs(out, exist_ok=True)
        np.save(os.path.join(out, "p0.npy"), p0)
        np.save(os.path.join(out, "grads.npy"), grads)
        np.save(os.path.join(out, "out.npy"), p.detach().numpy().astype(np.float32))
        with open(os.path.join(out, "set"), "w") as f:
            f.writelines(f"{k}={v!r}\n" for k, v in hp.items())
        lines.append(f"adamax_example adamax {tag} examples/adamax.celo\n")
    with open(os.path.join(GOLDEN, "examples.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
