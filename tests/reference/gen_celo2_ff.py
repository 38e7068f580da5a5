#!/usr/bin/env python3
"""Reference data for tests/learned/celo2_ff.celo: Celo2's MLP over the authors' golden θ.

    python3 tests/reference/gen_celo2_ff.py      # needs ../shared/data/celo/golden/celo2/theta_flat.npy

Independent of celo's θ reader: θ comes from the authors' flat dump theta_flat.npy (w0__0 … w0__13 stacked =
the 30 x 8 first layer, then b0, w1, b1, w2, b2; ../shared/data/celo/golden/README.md). NumPy float32, each sum
left to right (x_0 w[0,j] + x_1 w[1,j] + ... then + b_j), as docs/language.md specifies; host constants (0.1 k - 1,
0.05 k) in double rounded to float32. Writes tests/learned/celo2_ff/{p0,grads,out}.npy (8 x 5, 6 steps).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_learned import dense  # noqa: E402  (one copy of the helper)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "learned", "celo2_ff")
f32 = np.float32


def main():
    flat = np.load(os.path.join(ROOT, "..", "shared", "data", "celo", "golden", "celo2", "theta_flat.npy"))
    o = 0
    w0 = flat[o : o + 240].reshape(30, 8); o += 240
    b0 = flat[o : o + 8]; o += 8
    w1 = flat[o : o + 64].reshape(8, 8); o += 64
    b1 = flat[o : o + 8]; o += 8
    w2 = flat[o : o + 24].reshape(8, 3); o += 24
    b2 = flat[o : o + 3]; o += 3
    assert o == flat.size == 347
    rng = np.random.default_rng(20261208)
    p = rng.standard_normal((8, 5)).astype(np.float32)
    grads = rng.standard_normal((6, 8, 5)).astype(np.float32)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "p0.npy"), p)
    np.save(os.path.join(OUT, "grads.npy"), grads)
    lr = f32(1e-2)

    for g in grads:
        y = [g * f32(0.1 * k - 1) + p * f32(0.05 * k) for k in range(30)]
        out = dense(dense(dense(y, w0, b0, True), w1, b1, True), w2, b2, False)
        p = p - lr * (out[0] + f32(0.5) * out[1] - f32(0.25) * out[2])
        assert p.dtype == np.float32
    np.save(os.path.join(OUT, "out.npy"), p)


if __name__ == "__main__":
    main()
