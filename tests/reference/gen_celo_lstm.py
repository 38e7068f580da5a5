#!/usr/bin/env python3
"""Reference data for tests/learned/celo_lstm.celo: Celo's learned LSTM scheduler over the published θ.

    python3 tests/reference/gen_celo_lstm.py     # after `make`; needs ../shared/data/celo/theta.state

Written from ../shared/research/learned-optimizers.md §1.4 and docs/language.md ("Numbers": host values in double,
state slots stored as float32 at the end of each step, element arithmetic in float32), not from celo's code: plain
Python floats (IEEE double) one operation at a time in the order the rule writes them, every dot product summed
left to right. θ comes from the authors' file, converted to safetensors by `celo theta convert` (the reader is
tested against the authors' own dumps in tests/unit/test_theta.c).

The case: p0 = 0 (3 values), g = -1 at every step, so that after T steps p = the sum of the T step sizes
lr_mult (each rounded to float32 where the element code reads it, then added in float32). The losses fall
smoothly with noise, as a training loss does. Writes tests/learned/celo_lstm/{p0,grads,loss,out}.npy and
lr_mult.npy (each step's lr_mult, for the record; the first is 0.4436, the research notes' check value).
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_learned import read_safetensors  # noqa: E402  (one copy of the helpers)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "learned", "celo_lstm")
T = 20
f32 = np.float32


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def main():
    src = os.path.join(ROOT, "..", "shared", "data", "celo", "theta.state")
    with tempfile.TemporaryDirectory() as d:
        conv = os.path.join(d, "celo.safetensors")
        subprocess.run([os.path.join(ROOT, "build", "celo"), "theta", "convert", src, "-o", conv], check=True)
        th = read_safetensors(conv)
    W = lambda name: [[float(v) for v in row] for row in th[name].reshape(th[name].shape[-2], -1)]
    V = lambda name: [float(v) for v in th[name].reshape(-1)]
    W_mix, b_mix = W("rnn_params/linear_1/w"), V("rnn_params/linear_1/b")
    W_x, b_x = W("rnn_params/linear_2/w"), V("rnn_params/linear_2/b")
    W_lstm, b_lstm = W("rnn_params/rnn/linear/w"), V("rnn_params/rnn/linear/b")
    W_s, b_s = W("rnn_params/step_size/w"), V("rnn_params/step_size/b")
    h = [float(v) for v in th["lstm_init_state/hidden"].reshape(-1)]
    c = [float(v) for v in th["lstm_init_state/cell"].reshape(-1)]
    means, rmin, it = [0.0] * 10, [float(f32(1e12))] * 10, 0.0
    tau = [0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1]
    rng = np.random.default_rng(20261206)
    losses = (2.3 * np.exp(-np.arange(T) / 8.0) + 0.2 + 0.05 * rng.standard_normal(T)).astype(np.float32)
    lr = float(f32(1.0))
    p = np.zeros(3, np.float32)
    mults = []
    for t in range(1, T + 1):
        loss = float(losses[t - 1])
        decay = [math.exp(-1 / 10 ** (1 + k * (math.log(T) / math.log(10) - 1) / 9)) for k in range(10)]
        cor = [means[k] / (1 - decay[k] ** (it + 1)) for k in range(10)]
        mx = cor[0]
        for k in range(1, 10):
            mx = max(mx, cor[k])
        L = min(2 * abs(loss if it == 0 else mx), loss)
        means = [means[k] * decay[k] + L * (1 - decay[k]) for k in range(10)]
        rmin = [min(rmin[k], means[k] / (1 - decay[k] ** (it + 1))) for k in range(10)]
        it = it + 1
        z = [0.0] * 18
        for k in range(9):
            z[k] = math.tanh(10 * ((t - 1) / T - tau[k]))
            cork = means[k] / (1 - decay[k] ** it)
            corn = means[k + 1] / (1 - decay[k + 1] ** it)
            z[9 + k] = min(max((cork - rmin[k]) / max(1e-8, corn - rmin[k]) - 1, -1), 1) * (1.0 if it > 2 else 0.0)
        xh = [0.0] * 128
        for j in range(64):
            a = z[0] * W_mix[0][j]
            b = z[0] * W_x[0][j]
            for k in range(1, 18):
                a = a + z[k] * W_mix[k][j]
                b = b + z[k] * W_x[k][j]
            xh[j] = b + b_x[j] + max(a + b_mix[j], 0.0)
            xh[64 + j] = h[j]
        gate = [0.0] * 256
        for j in range(256):
            s = xh[0] * W_lstm[0][j]
            for k in range(1, 128):
                s = s + xh[k] * W_lstm[k][j]
            gate[j] = s + b_lstm[j]
        c = [sigmoid(gate[128 + k] + 1) * c[k] + sigmoid(gate[k]) * math.tanh(gate[64 + k]) for k in range(64)]
        h = [sigmoid(gate[192 + k]) * math.tanh(c[k]) for k in range(64)]
        s = h[0] * W_s[0][0]
        for k in range(1, 64):
            s = s + h[k] * W_s[k][0]
        lr_mult = 0.1 * math.exp(s + b_s[0])
        mults.append(lr_mult)
        p = p - f32(lr * lr_mult) * f32(-1)  # the host value rounded to float32 where element code reads it
        # the end of the step: state slots are stored as float32
        r = lambda v: float(f32(v))
        h, c, means, rmin, it = [r(v) for v in h], [r(v) for v in c], [r(v) for v in means], [r(v) for v in rmin], r(it)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "p0.npy"), np.zeros(3, np.float32))
    np.save(os.path.join(OUT, "grads.npy"), -np.ones((T, 3), np.float32))
    np.save(os.path.join(OUT, "loss.npy"), losses)
    np.save(os.path.join(OUT, "out.npy"), p.astype(np.float32))
    np.save(os.path.join(OUT, "lr_mult.npy"), np.array(mults, np.float64))
    print("lr_mult:", " ".join("%.4f" % m for m in mults))


if __name__ == "__main__":
    main()
