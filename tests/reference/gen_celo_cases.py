#!/usr/bin/env python3
"""Extra Celo / Celo2 / Celo2-base trajectories on shapes the golden set lacks, and small_fc_lopt trajectories,
from tests/reference/celo_ref.py.

    python3 tests/reference/gen_celo_cases.py [--data ../shared/data/celo]     # (re)writes tests/reference/celo_cases/

The golden data of the authors' code (../shared/data/celo/golden/) covers (1000,), (64,33), (33,64), (16,16) and
(3,5,7). These cases add a scalar as shape (1,), a short 1-D tensor, a small square, non-square both ways, and
rank 3 with ties among the two largest dimensions, where the factored statistics pick their axes by the stable-
argsort rule of research/learned-optimizers.md §1.1 (d0 = the largest axis, d1 = the second; equal sizes ordered
by axis index):

    shape      d1 d0   why
    (1,)       -  -    scalar: not factored; input and output normalization over its single element
    (37,)      -  -    1-D: Celo's per-element v features; Celo2-base's 15 inputs; Celo2's Adam/AdamW route
    (8,8)      0  1    square tie
    (4,9)      0  1    wide
    (9,4)      1  0    tall: v_row holds the column means
    (3,6,6)    1  2    tie of the two largest, trailing
    (6,2,6)    0  2    tie of the two largest, not adjacent
    (4,4,4)    1  2    all equal
    (6,6,3)    0  1    tie of the two largest, leading; Celo2 normalizes/orthogonalizes the last two axes (6,3)

The tie rule for rank 3 comes from the notes, not from the authors' code (the golden set only has the 2-D tie):
check it against the authors' code before relying on it.

Inputs (the same for every variant), made as the golden README makes its own, with seed 200 + shape index:
p0 = standard_normal(shape) as float32; grads[t] = float32(Z[t] * s[t] * logspace(-1, 1, C)) with Z standard
normal, s = exp(uniform(-1.5, 1.5, T)) and C the size of the last axis; T = 20 steps.

Variants (θ of the Celo and Celo2 variants: the published Celo θ `theta.state`, or the golden Celo2 θ
`golden/celo2/theta.msgpack` and, for celo2_biased, `golden/celo2_biased/theta.msgpack`; read from --data when this
script runs, not stored here; the small_fc_lopt θ files are under theta/):

    celo               factory Celo, num_steps 20, the golden loss sequence (losses.npy), step_mult 1e-3
    celo_bigstep       the same with step_mult 0.1 (updates O(|p|): checks the update, not the rounding of p)
    celo2              meta-training wrapper, step_mult 1e-3; 1-D tensors are named ".../b" and go to Adam
    celo2_bigstep      the same with step_mult 1 (Adam lr 20)
    celo2_biased       celo2 with the golden θ whose MLP biases are non-zero
    celo2_base         every tensor through the MLP (rank < 2: 15 inputs), no Newton-Schulz
    celo2_base_bigstep the same with step_mult 1
    celo2_deploy       README recipe: lr 1e-3, wd 0.1; rank <= 1 to bias-corrected AdamW (lr x20, b2 0.95)
    small_fc_lopt      AdafacMLPLOpt (stdlib/small_fc_lopt.celo) with theta/small_fc_lopt_seed7.safetensors, the
                       rule's own initial θ (`build/celo theta init small_fc_lopt --seed 7`, committed: biases and
                       decays 0), step_mult 1e-3
    small_fc_lopt_decays
                       the same MLP weights with learned decays and non-zero biases:
                       theta/small_fc_lopt_decays.safetensors, written by this script from the seed-7 file with
                       default_rng(363): decays uniform(-0.3, 0.3) (momentum, rms, adafactor, in that order), then
                       b0, b1, b2 normal(0, 0.5). The draw gives a negative momentum decay (-0.49, kept: the
                       momentum accumulator does not clip), an Adafactor decay below 0 (clipped to 0), and decays
                       moved towards 1 (0.99989 for the RMS one), step_mult 1e-3
    small_fc_lopt_decays_bigstep
                       the same with step_mult 1 (steps O(1): checks the update, not the rounding of p)

Files under tests/reference/celo_cases/:
    inputs/<shape>/p0.npy, grads.npy      [*S] and [T, *S] float32
    losses.npy                             [T] the losses fed to Celo's scheduler (step t gets losses[t-1])
    <variant>/<shape>/params.npy           [T, *S] float32: params[t-1] is the parameter after step t
    <variant>/lr_mult.npy                  Celo variants: the scheduler's output per step
    theta/small_fc_lopt_*.safetensors      the small_fc_lopt θ files (the seed-7 one is an input: kept on reruns)
    cases.json                             the variants' settings, and per variant and shape the float32
                                           reference's distance from a float64 run of the same reference:
                                           max|ref32 - ref64| relative to the path length so far (the sum
                                           over steps of max|p_t - p_t-1|) and in ulp of max|ref64|, a
                                           measure of the float32 noise a C implementation should expect.
Everything is seeded; reruns give the same bytes on one machine (committed files: NumPy 2.4, x86-64).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import celo_ref as R  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "reference", "celo_cases")
SHAPES = [(1,), (37,), (8, 8), (4, 9), (9, 4), (3, 6, 6), (6, 2, 6), (4, 4, 4), (6, 6, 3)]
T = 20
LOSSES = np.array([10.0 if t == 10 else 2 * 0.97**t for t in range(T)], np.float32)

VARIANTS = {
    "celo": dict(kind="celo", step_mult=1e-3),
    "celo_bigstep": dict(kind="celo", step_mult=0.1),
    "celo2": dict(kind="celo2", theta="celo2", mode="meta", orthogonalize=True, route_1d="adam", step_mult=1e-3),
    "celo2_bigstep": dict(kind="celo2", theta="celo2", mode="meta", orthogonalize=True, route_1d="adam", step_mult=1.0),
    "celo2_biased": dict(kind="celo2", theta="celo2_biased", mode="meta", orthogonalize=True, route_1d="adam",
                         step_mult=1e-3),
    "celo2_base": dict(kind="celo2", theta="celo2", mode="meta", orthogonalize=False, route_1d=None, step_mult=1e-3),
    "celo2_base_bigstep": dict(kind="celo2", theta="celo2", mode="meta", orthogonalize=False, route_1d=None,
                               step_mult=1.0),
    "celo2_deploy": dict(kind="celo2", theta="celo2", mode="deploy", orthogonalize=True, route_1d="adamw", lr=1e-3,
                         wd=0.1),
    "small_fc_lopt": dict(kind="small_fc_lopt", theta="small_fc_lopt_seed7", step_mult=1e-3),
    "small_fc_lopt_decays": dict(kind="small_fc_lopt", theta="small_fc_lopt_decays", step_mult=1e-3),
    "small_fc_lopt_decays_bigstep": dict(kind="small_fc_lopt", theta="small_fc_lopt_decays", step_mult=1.0),
}
THETA = os.path.join(OUT, "theta")


def tag(shape):
    return "x".join(str(s) for s in shape)


def inputs(i, shape):
    rng = np.random.default_rng(200 + i)
    p0 = rng.standard_normal(shape).astype(np.float32)
    Z = rng.standard_normal((T,) + shape)
    s = np.exp(rng.uniform(-1.5, 1.5, T))
    scale = np.logspace(-1, 1, shape[-1])
    grads = (Z * s.reshape((T,) + (1,) * len(shape)) * scale).astype(np.float32)
    return p0, grads


def run(data, v, cfg, i, shape, p0, grads, dtype):
    name = "t%d_%s/%s" % (i, tag(shape), "b" if len(shape) == 1 else "w")
    if cfg["kind"] == "small_fc_lopt":
        opt = R.SmallFcLOpt(R.load_safetensors(os.path.join(THETA, cfg["theta"] + ".safetensors")),
                            step_mult=cfg["step_mult"], dtype=dtype)
        st = opt.init(p0)
        step = lambda p, t: opt.step(p, grads[t], st)[0]  # noqa: E731
    elif cfg["kind"] == "celo":
        opt = R.Celo(R.load_msgpack(os.path.join(data, "theta.state")), T, 2, cfg["step_mult"], dtype)
        st = opt.init(p0)
        step = lambda p, t: opt.step(p, grads[t], st, LOSSES[t])[0]  # noqa: E731
    else:
        th = R.load_msgpack(os.path.join(data, "golden", cfg["theta"], "theta.msgpack"))
        kw = {k: cfg[k] for k in ("mode", "orthogonalize", "route_1d", "step_mult", "lr", "wd") if k in cfg}
        opt = R.Celo2(th, dtype=dtype, **kw)
        st = opt.init(p0, name)
        step = lambda p, t: opt.step(p, grads[t], st)[0]  # noqa: E731
    p, out = p0.astype(dtype), []
    for t in range(T):
        p = step(p, t)
        out.append(p)
    return np.stack(out), getattr(opt, "lr_mults", None)


def small_fc_lopt_theta():
    """theta/small_fc_lopt_decays.safetensors from the committed seed-7 θ: learned decays and non-zero biases."""
    src = os.path.join(THETA, "small_fc_lopt_seed7.safetensors")
    if not os.path.isfile(src):
        sys.exit("%s is missing: build/celo theta init small_fc_lopt --seed 7 -o %s" % (src, src))
    th = R.load_safetensors(src)
    rng = np.random.default_rng(363)
    u = rng.uniform(-0.3, 0.3, 7).astype(np.float32)
    th["momentum_decays"], th["rms_decays"], th["adafactor_decays"] = u[:3], u[3:4], u[4:]
    for k in ("nn/~/b0", "nn/~/b1", "nn/~/b2"):
        th[k] = rng.normal(0, 0.5, th[k].shape).astype(np.float32)
    R.save_safetensors(os.path.join(THETA, "small_fc_lopt_decays.safetensors"), th)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "celo"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for e in os.listdir(OUT):  # everything but the θ inputs and the README
        if e not in ("theta", "README.md"):
            path = os.path.join(OUT, e)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(THETA, exist_ok=True)
    small_fc_lopt_theta()
    np.save(os.path.join(OUT, "losses.npy"), LOSSES)
    ins = []
    for i, shape in enumerate(SHAPES):
        p0, grads = inputs(i, shape)
        d = os.path.join(OUT, "inputs", tag(shape))
        os.makedirs(d)
        np.save(os.path.join(d, "p0.npy"), p0)
        np.save(os.path.join(d, "grads.npy"), grads)
        ins.append((p0, grads))
    noise = {}
    for v, cfg in VARIANTS.items():
        noise[v] = {}
        for i, shape in enumerate(SHAPES):
            p0, grads = ins[i]
            p32, lr = run(args.data, v, cfg, i, shape, p0, grads, np.float32)
            p64, _ = run(args.data, v, cfg, i, shape, p0, grads, np.float64)
            assert np.all(np.isfinite(p32)), (v, shape)
            d = os.path.join(OUT, v, tag(shape))
            os.makedirs(d)
            np.save(os.path.join(d, "params.npy"), p32.astype(np.float32))
            if lr is not None and i == 0:
                np.save(os.path.join(OUT, v, "lr_mult.npy"), np.array(lr, np.float32))
            err = np.abs(p32.astype(np.float64) - p64).reshape(T, -1).max(axis=1)
            # the scale of the update: the path length so far (sum of each step's largest change), not the distance
            # from p0, which alternating steps can bring near 0
            path = np.concatenate([p0.astype(np.float64)[None], p64])
            upd = np.cumsum(np.abs(np.diff(path, axis=0)).reshape(T, -1).max(axis=1))
            ulp = np.spacing(np.abs(p64).reshape(T, -1).max(axis=1).astype(np.float32)).astype(np.float64)
            noise[v][tag(shape)] = {"rel_to_update": float(np.max(err / upd)), "ulp": float(np.max(err / ulp))}
            print("%-20s %-6s  float32 vs float64: %.2g of the update, %.1f ulp" % (
                v, tag(shape), noise[v][tag(shape)]["rel_to_update"], noise[v][tag(shape)]["ulp"]))
    meta = {"T": T, "shapes": [list(s) for s in SHAPES], "seed_base": 200, "variants": VARIANTS,
            "float32_vs_float64": noise}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
