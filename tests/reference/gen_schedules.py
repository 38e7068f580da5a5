#!/usr/bin/env python3
"""Reference data for the learning-rate schedules of stdlib/schedules.celo (tests/golden/schedules.txt).

    python3 tests/reference/gen_schedules.py

A run compiles its rule with its schedule (`sgd@cosine`: every read of lr reads lr * schedule(t)); `celo apply
sgd@cosine` runs that rule over the gradients, with num_steps = their number. This script computes the same 20
SGD steps in NumPy, the schedule factor written here from its definition rather than from the .celo text:

    cosine         (1 + cos(pi c / S)) / 2           optax.cosine_decay_schedule(1, S), at count c = t - 1
    warmup_cosine  (c + 1) / W while c < W, then (1 + cos(pi (c - W) / (S - W))) / 2
    linear         1 - c / S                         optax.linear_schedule(1, 0, S), at count c = t - 1

with S the number of steps and W the warmup. As in celo, the hyper-parameters are float32 values, the factor and
lr times it are computed in double, and lr * factor is rounded to float32 where the float32 update reads it
(torch.optim.SGD does the same with a Python float lr). Inputs are gen_optim.py's for the shape
(tests/golden/adamw/<shape>/p0.npy and grads.npy).
"""
import math
import os

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
SHAPES = ["1000", "64x33"]
LR = float(np.float32(0.05))
WARMUP = 5


def factor(name, t, S):
    c = t - 1
    if name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * c / S))
    if name == "warmup_cosine":
        return (c + 1) / WARMUP if c < WARMUP else 0.5 * (1 + math.cos(math.pi * (c - WARMUP) / (S - WARMUP)))
    if name == "linear":
        return 1 - c / S
    raise ValueError(name)


def main():
    lines = []
    for sched in ["cosine", "warmup_cosine", "linear"]:
        for tag in SHAPES:
            src = os.path.join(GOLDEN, "adamw", tag)
            p0 = np.load(os.path.join(src, "p0.npy"))
            grads = np.load(os.path.join(src, "grads.npy"))
            p = p0.copy()
            S = len(grads)
            for t, g in enumerate(grads, start=1):
                step = np.float32(LR * factor(sched, t, S))
                p = (p - step * (g + np.float32(0) * p)).astype(np.float32)
            out = os.path.join(GOLDEN, "sgd_" + sched, tag)
            os.makedirs(out, exist_ok=True)
            np.save(os.path.join(out, "p0.npy"), p0)
            np.save(os.path.join(out, "grads.npy"), grads)
            np.save(os.path.join(out, "out.npy"), p)
            with open(os.path.join(out, "set"), "w") as f:
                f.write(f"lr={LR!r}\nwd=0.0\n" + (f"warmup={WARMUP}\n" if sched == "warmup_cosine" else ""))
            lines.append(f"sgd_{sched} sgd@{sched} {tag}\n")
    with open(os.path.join(GOLDEN, "schedules.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
