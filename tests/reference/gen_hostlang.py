#!/usr/bin/env python3
"""Reference data for tests/learned/hostlang.celo (the loss, loops, local vectors, learned tensors and options).

    python3 tests/reference/gen_hostlang.py      # after `make`: (re)writes tests/golden/hostlang/ and hostlang.txt

Written from the rule's text and docs/language.md, not from celo's code. Host values (everything of the loss,
θ and the state h) in Python floats (IEEE double), one operation at a time, state slots stored as float32 at the
end of each step; element values in NumPy float32 in the order the rule writes them, the MLP's sums left to right
(x_0 w[0,j] + x_1 w[1,j] + ... then + b_j), host values rounded to float32 where element code reads them. The MLP's
first layer is the rows of net/~/w0__0, w0__1, w0__2 (inputs = [1, 3, 1]) one after another; lead = 1 gives every
tensor a leading axis of 1. θ: `celo theta init hostlang --seed 4` with nonzero biases and h0 added here.
"""
import math
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_learned import read_safetensors, write_safetensors, dense  # noqa: E402  (one copy of the helpers)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
RULE = os.path.join("tests", "learned", "hostlang.celo")
SHAPES = [(37,), (4, 6)]
STEPS = 10
HP = {"lr": 1e-2, "b1": 0.9}
f32 = np.float32


def mlp(xs, th):
    w0 = np.concatenate([th["net/~/w0__0"][0], th["net/~/w0__1"][0], th["net/~/w0__2"][0]], axis=0)
    hid = dense(xs, w0, th["net/~/b0"][0], True)
    return dense(hid, th["net/~/w1"][0], th["net/~/b1"][0], False)[0]


def run(p0, grads, losses, th):
    lr, b1 = f32(HP["lr"]), f32(HP["b1"])
    omb1 = f32(1.0 - float(b1))
    p = p0.copy()
    m = np.zeros_like(p)
    W = th["mix/w"]
    h = [float(v) for v in th["init/h"]]
    lmin = float(f32(1e12))
    for g, L in zip(grads, losses):
        loss = float(L)
        lmin = min(lmin, loss)
        for j in range(2):
            s = h[j]
            for k in range(3):
                s = s + float(W[k, j]) * (loss - lmin + k)
            h[j] = math.tanh(s)
        hf = [f32(v) for v in h]
        m = b1 * m + omb1 * g
        x = [g, m * hf[0], p * hf[1], m * hf[1], p * hf[0]]
        y1 = mlp(x, th)
        y2 = mlp([g, np.full_like(p, hf[0]), np.full_like(p, hf[1]), x[3], x[4]], th)
        p = p - lr * (y1 + f32(0.5) * y2 + m)
        assert p.dtype == np.float32
        h = [float(f32(v)) for v in h]
        lmin = float(f32(lmin))
    return p


def main():
    celo = os.path.join(ROOT, "build", "celo")
    tmp = os.path.join(GOLDEN, "hostlang", "init.safetensors")
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    subprocess.run([celo, "theta", "init", "hostlang", "--file", os.path.join(ROOT, RULE), "--seed", "4", "-o", tmp],
                   check=True)
    th = read_safetensors(tmp)
    os.remove(tmp)
    rng = np.random.default_rng(20261207)
    th["net/~/b0"] = (rng.standard_normal((1, 3)) * 0.3).astype(np.float32)
    th["net/~/b1"] = (rng.standard_normal((1, 1)) * 0.3).astype(np.float32)
    th["init/h"] = np.array([0.4, -0.7], np.float32)
    lines = []
    for shape in SHAPES:
        tag = "x".join(str(s) for s in shape)
        d = os.path.join(GOLDEN, "hostlang", tag)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        p0 = rng.standard_normal(shape).astype(np.float32)
        grads = (rng.standard_normal((STEPS,) + shape) * 0.5).astype(np.float32)
        losses = (2.0 * np.exp(-np.arange(STEPS) / 4.0) + 0.3 + 0.1 * rng.standard_normal(STEPS)).astype(np.float32)
        np.save(os.path.join(d, "p0.npy"), p0)
        np.save(os.path.join(d, "grads.npy"), grads)
        np.save(os.path.join(d, "loss.npy"), losses)
        np.save(os.path.join(d, "out.npy"), run(p0, grads, losses, th))
        write_safetensors(os.path.join(d, "theta.safetensors"), th)
        with open(os.path.join(d, "tol"), "w") as f:
            f.write("1e-6\n")
        with open(os.path.join(d, "set"), "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in HP.items())
        lines.append(f"hostlang hostlang {tag} {RULE}\n")
    with open(os.path.join(GOLDEN, "hostlang.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
