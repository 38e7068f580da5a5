#!/usr/bin/env python3
"""Checks tests/reference/celo_ref.py against every golden trajectory of the authors' JAX code.

    python3 tests/reference/compare_golden.py [--data ../shared/data/celo] [--float64]

For each variant in <data>/golden/ and each shape, runs the reference for the 20 steps on the same p0, gradients
(and, for Celo, losses) and compares every step's parameter with params.npy. Prints, per variant, the worst over
shapes and steps of:
  abs    max |ref - gold|
  rel    abs / max |gold - p0| (the error relative to the total update so far)
  ulp    abs in units of the float32 spacing at max |gold|
and for Celo the worst relative error of lr_mult. A step passes when
  max|ref - gold| <= max(REL_TOL * max|gold - p0|, ULP_TOL * ulp(max|gold|)),   REL_TOL = 2e-5, ULP_TOL = 8,
and Celo's lr_mult must agree to 1e-5 relative. Why these numbers (float32 rounding only): run with --float64,
the reference computes the formulas almost exactly, and the golden float32 trajectories then differ from it by up
to 7.7e-6 of the update (the bigstep variants: Newton-Schulz amplifies a 1-ulp change of its input ~2.5x, the loss
features of Celo cancel after the loss spike) and 4.3 ulp of |p| (the normal variants, whose update is ~1e-3 of
|p|, so that each step's rounding of p is ~6e-5 of the update and accumulates over 20 steps). An independent
float32 implementation carries its own rounding of the same size in another order, so two of them may differ by
about twice that. A formula error is orders of magnitude above it: swapping the tie rule of the factored dims,
dropping the LSTM's +1 forget bias, eps 1e-6 for 1e-8, normalizing over all axes, or running Newton-Schulz on a
rank-3 tensor unbatched each give errors of 10-100 % of the update (checked when this script was written).
Needs NumPy only.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import celo_ref as R  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
REL_TOL, ULP_TOL = 2e-5, 8  # see the docstring
SHAPES = [(1000,), (64, 33), (33, 64), (16, 16), (3, 5, 7)]


def tag(shape):
    return "x".join(str(s) for s in shape)


def tensor_name(i, shape):
    return "t%d_%s/%s" % (i, tag(shape), "b" if len(shape) == 1 else "w")


def run_variant(data, variant, dtype):
    d = os.path.join(data, "golden", variant)
    cfg = json.load(open(os.path.join(d, "config.json")))
    rows, lr_err = [], None
    for i, shape in enumerate(SHAPES):
        sd = os.path.join(d, tag(shape))
        p0, grads, gold = (np.load(os.path.join(sd, f)) for f in ("p0.npy", "grads.npy", "params.npy"))
        if variant.startswith("celo2"):
            opt = R.celo2_variant(R.load_msgpack(os.path.join(d, "theta.msgpack")), cfg, dtype)
            st = opt.init(p0, tensor_name(i, shape))
            step = lambda p, g, t: opt.step(p, g, st)[0]  # noqa: E731
        else:
            kw = cfg["kwargs"]
            opt = R.Celo(R.load_msgpack(os.path.join(data, "theta.state")), cfg["num_steps"], kw["train_phase"],
                         kw["step_mult"], dtype)
            st = opt.init(p0)
            losses = np.load(os.path.join(d, "losses.npy"))
            step = lambda p, g, t: opt.step(p, g, st, losses[t])[0]  # noqa: E731
        p = p0.astype(dtype)
        for t in range(grads.shape[0]):
            p = step(p, grads[t], t)
            g = gold[t].astype(np.float64)
            err = float(np.max(np.abs(p.astype(np.float64) - g)))
            upd = float(np.max(np.abs(g - p0)))
            ulp = float(np.spacing(np.float32(np.max(np.abs(g)))))
            rows.append((tag(shape), t + 1, err, upd, ulp))
        if not variant.startswith("celo2"):
            gl = np.load(os.path.join(d, "lr_mult.npy")).astype(np.float64)
            e = float(np.max(np.abs(np.array(opt.lr_mults, np.float64) - gl) / gl))
            lr_err = e if lr_err is None else max(lr_err, e)
    return rows, lr_err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "celo"))
    ap.add_argument("--float64", action="store_true", help="run the reference in float64 (formula check)")
    args = ap.parse_args()
    dtype = np.float64 if args.float64 else np.float32
    variants = sorted(v for v in os.listdir(os.path.join(args.data, "golden"))
                      if os.path.isdir(os.path.join(args.data, "golden", v)))
    bad = 0
    print("%-22s %10s %10s %8s %9s  %s" % ("variant", "abs", "rel", "ulp", "lr_mult", "worst (shape, step)"))
    for v in variants:
        rows, lr_err = run_variant(args.data, v, dtype)
        fails = [r for r in rows if r[2] > max(REL_TOL * r[3], ULP_TOL * r[4])]
        worst_abs = max(rows, key=lambda r: r[2])
        worst_rel = max(r[2] / r[3] for r in rows if r[3] > 0)
        worst_ulp = max(r[2] / r[4] for r in rows)
        lr_ok = lr_err is None or lr_err <= 1e-5
        if not args.float64:
            bad += len(fails) + (not lr_ok)
        print("%-22s %10.3g %10.3g %8.2f %9s  %s step %d%s" % (
            v, worst_abs[2], worst_rel, worst_ulp, "-" if lr_err is None else "%.2g" % lr_err, worst_abs[0],
            worst_abs[1], "" if not fails and lr_ok else "   FAIL (%d steps)" % len(fails)))
    if args.float64:
        print("float64 run: differences are the float32 rounding of the golden data plus any formula error")
    print("all variants within tolerance" if not bad else "%d failures" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
