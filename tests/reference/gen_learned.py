#!/usr/bin/env python3
"""Reference data for a learned rule of a user's own: tests/learned/mlp6.celo (an MLP 6 -> 4 -> 2 over θ).

    python3 tests/reference/gen_learned.py      # after `make`: (re)writes tests/golden/mlp6*/ and learned.txt

Written from the rule's text and docs/language.md ("Learned parameters"), not from celo's code: NumPy in float32,
one IEEE operation at a time, in the order the rule writes them, with the MLP's sums taken left to right
(x_0 w[0,j] + x_1 w[1,j] + ... then + b_j), no fused multiply-adds. Host values (lr, 1 - b1, ...) are computed
in double and rounded to float32 once, as celo computes host scalars.

Cases (STEPS steps each, shapes in SHAPES), each in tests/golden/<case>/<shape>/ with p0.npy, grads.npy, out.npy,
set and theta.safetensors (tests/run.sh passes --theta when a case has one):
    mlp6    θ from `celo theta init mlp6 --file tests/learned/mlp6.celo --seed 3` (also committed as
            tests/learned/theta_seed3.safetensors; the learned tier checks init gives those bytes again)
    mlp6_w  the same θ with nonzero biases and plain θ w (init leaves them 0), so that every θ entry matters
It also writes tests/learned/bad/{name,shape,nan,extra}.safetensors: the seed-3 θ with one mismatch each.
The only differences between celo and this reference are the roundings of exp (libm's expf, NumPy's own float32
exp, OpenCL's exp): an ulp or two in the step's scale, which after 10 steps leaves p a few float32 ulps apart
(measured: at most 5e-8 relative to max |p|); each case's `tol` file allows 1e-6 (about 16 ulps of max |p|).
"""
import json
import os
import shutil
import struct
import subprocess

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
RULE = os.path.join("tests", "learned", "mlp6.celo")
SHAPES = [(37,), (8, 5)]
STEPS = 10
HP = {"lr": 1e-2, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
f32 = np.float32


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8 : 8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=np.float32).reshape(v["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    head, data, off = {}, b"", 0
    for k, v in tensors.items():
        v = np.ascontiguousarray(v, dtype=np.float32)
        head[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
        data += v.tobytes()
    hj = json.dumps(head, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + data)


def dense(xs, w, b, act):
    """One layer: out_j = (sum_i x_i * w[i, j], left to right) + b_j, then act; xs: list of float32 arrays."""
    outs = []
    for j in range(w.shape[1]):
        acc = xs[0] * w[0, j]
        for i in range(1, w.shape[0]):
            acc = acc + xs[i] * w[i, j]
        acc = acc + b[j]
        outs.append(np.maximum(acc, f32(0)) if act else acc)
    return outs


def run(p0, grads, th):
    lr, b1, b2, eps = (f32(HP[k]) for k in ("lr", "b1", "b2", "eps"))
    omb1, omb2 = f32(1.0 - np.float64(b1)), f32(1.0 - np.float64(b2))  # host values: double, then float32
    c = f32(0.001)
    p = p0.astype(np.float32).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    w = th["w"]
    for g in grads:
        m = b1 * m + omb1 * g
        v = b2 * v + omb2 * g * g
        r = f32(1) / np.sqrt(v + eps)
        x = [g, m, v, p, m * r, g * r]
        h = dense(x, th["f/w0"], th["f/b0"], True)
        y = dense(h, th["f/w1"], th["f/b1"], False)
        upd = y[0] * np.exp(c * y[1]) + w[0] * m * r + w[1] * p
        p = p - lr * upd
        assert p.dtype == np.float32
    return p


def main():
    celo = os.path.join(ROOT, "build", "celo")
    seed3 = os.path.join(ROOT, "tests", "learned", "theta_seed3.safetensors")
    subprocess.run([celo, "theta", "init", "mlp6", "--file", os.path.join(ROOT, RULE), "--seed", "3", "-o", seed3],
                   check=True)
    th = read_safetensors(seed3)
    rng = np.random.default_rng(20261206)
    thw = {k: v.copy() for k, v in th.items()}
    thw["f/b0"] = (rng.standard_normal(4) * 0.3).astype(np.float32)
    thw["f/b1"] = (rng.standard_normal(2) * 0.3).astype(np.float32)
    thw["w"] = np.array([0.5, -0.01], dtype=np.float32)
    lines = []
    for case, theta in (("mlp6", th), ("mlp6_w", thw)):
        for shape in SHAPES:
            tag = "x".join(str(s) for s in shape)
            d = os.path.join(GOLDEN, case, tag)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            p0 = rng.standard_normal(shape).astype(np.float32)
            scale = np.exp(rng.uniform(-2, 1.5, size=(STEPS,) + (1,) * len(shape)))
            grads = (rng.standard_normal((STEPS,) + shape) * scale).astype(np.float32)
            np.save(os.path.join(d, "p0.npy"), p0)
            np.save(os.path.join(d, "grads.npy"), grads)
            np.save(os.path.join(d, "out.npy"), run(p0, grads, theta))
            write_safetensors(os.path.join(d, "theta.safetensors"), theta)
            with open(os.path.join(d, "tol"), "w") as f:
                f.write("1e-6\n")
            with open(os.path.join(d, "set"), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in HP.items())
            lines.append(f"{case} mlp6 {tag} {RULE}\n")
    with open(os.path.join(GOLDEN, "learned.txt"), "w") as f:
        f.writelines(lines)
    # θ files that do not fit mlp6, one mismatch each (the learned tier expects their exact error lines)
    bad = os.path.join(ROOT, "tests", "learned", "bad")
    os.makedirs(bad, exist_ok=True)
    write_safetensors(os.path.join(bad, "name.safetensors"), {("g/w0" if k == "f/w0" else k): v for k, v in th.items()})
    write_safetensors(os.path.join(bad, "shape.safetensors"), dict(th, **{"f/w0": th["f/w0"].T}))
    nan_b0 = th["f/b0"].copy()
    nan_b0[1] = np.nan
    write_safetensors(os.path.join(bad, "nan.safetensors"), dict(th, **{"f/b0": nan_b0}))
    write_safetensors(os.path.join(bad, "extra.safetensors"), dict(th, extra=np.zeros(2, np.float32)))


if __name__ == "__main__":
    main()
