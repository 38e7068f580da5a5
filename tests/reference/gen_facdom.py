#!/usr/bin/env python3
"""Reference data for the factored domains: tests/facdom/facdom.celo (rule facdom: mean_d0, mean_d1, mean_last2 and a
state slot in each of FROW, FCOL, FBAT, MAT; rule facdom_inputs: the factored means of g, p and an element-wise
state slot, which the passes store as they read them).

    python3 tests/reference/gen_facdom.py      # (re)writes tests/golden/facdom/ and tests/golden/facdom.txt

Written from docs/language.md ("Factored statistics", "Numbers") and the rule's text, not from celo's code:
d0 and d1 from a stable argsort of the sizes ((d1, d0) = argsort[-2], argsort[-1]; d0 = d1 = 0 for one axis), the
means as NumPy sums in double along the axes (keepdims, so that a factored value broadcasts), rounded to float32,
then divided by the count of values they cover. Element-wise values are float32, one IEEE operation at a time;
per-tensor and factored values (and the host values they read) are computed in double and rounded to float32
after each operation, as celo stores them; element code reads host values rounded to float32.
mean_last2 is the row mean (over the last axis) followed by the mean over axis -2 (for one axis: the row mean).
Sums in double may add in another order than celo does; rounded to float32 once they agree but for rare ties,
which the tolerance (tol, 1e-5 relative to max |p|) covers.
"""
import os

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
RULE = os.path.join("tests", "facdom", "facdom.celo")
# the shapes of the spec, and one whose rows are long enough for the OpenCL kernels' float8 loads of a factored value
SHAPES = [(1,), (37,), (8, 8), (4, 9), (9, 4), (3, 6, 6), (6, 2, 6), (4, 4, 4), (6, 6, 3), (3, 5, 7), (5, 33, 40)]
STEPS = 5
HP = {"lr": 1e-2, "b": 0.9, "wd": 0.1}
HP_INPUTS = {"lr": 1e-2}
SHAPES_INPUTS = [(37,), (4, 9), (6, 2, 6), (5, 33, 40)]
f32, f64 = np.float32, np.float64


def axes(shape):
    if len(shape) < 2:
        return 0, 0
    order = np.argsort(np.array(shape), kind="stable")
    return int(order[-1]), int(order[-2])


def vmean(x, axis):
    """A factored mean of x (float32, keepdims shape) along axis: double sum -> float32, / count -> float32."""
    s = f32(np.sum(x.astype(f64), axis=axis, keepdims=True))
    return f32(s.astype(f64) / x.shape[axis])


def mean_last2(x):
    r = vmean(x, x.ndim - 1)  # the row mean
    return vmean(r, x.ndim - 2) if x.ndim >= 2 else r


def V(x):
    """a per-tensor / factored value: computed in double, stored as float32"""
    return f32(x)


def run(p0, grads):
    shape = p0.shape
    d0, d1 = axes(shape)
    lr, b, wd = f64(f32(HP["lr"])), f64(f32(HP["b"])), f64(f32(HP["wd"]))
    omb = 1 - b  # host, double
    lr32 = f32(lr)
    eps30, eps9 = 1e-30, 1e-9
    p = p0.copy()
    one = [1] * len(shape)
    # state slots in their domains (keepdims shapes), 0 at t = 1
    frow = list(shape)
    frow[d0] = 1
    fcol = list(shape)
    fcol[d1] = 1
    fbat = list(frow)
    fbat[d1] = 1
    mat = list(shape)
    mat[-1] = 1
    if len(shape) >= 2:
        mat[-2] = 1
    if len(shape) < 2:
        frow = fcol = fbat = mat = one
    vr = np.zeros(frow, f32)
    vc = np.zeros(fcol, f32)
    fb = np.zeros(fbat, f32)
    mt = np.zeros(mat, f32)
    for g in grads:
        gsq = g * g + f32(eps30)  # element-wise float32
        vr = V(V(b * vr.astype(f64)).astype(f64) + V(omb * vmean(gsq, d0).astype(f64)).astype(f64))
        vc = V(V(b * vc.astype(f64)).astype(f64) + V(omb * vmean(gsq, d1).astype(f64)).astype(f64))
        mvr = vmean(vr, d1)  # FROW -> FBAT
        fb = V(V(b * fb.astype(f64)).astype(f64) + V(omb * V(mvr.astype(f64) + vmean(vc, d0).astype(f64)).astype(f64)))
        mt = V(V(b * mt.astype(f64)).astype(f64) + V(omb * mean_last2(gsq).astype(f64)).astype(f64))
        rf = V(1 / np.sqrt(V(np.fmax(V(vr.astype(f64) / V(mvr.astype(f64) + eps9).astype(f64)), eps9)).astype(f64)))
        cf = V(1 / np.sqrt(V(np.fmax(vc.astype(f64), eps9)).astype(f64)))
        u = g * rf * cf
        inv = V(1 / np.sqrt(V(mean_last2(u * u).astype(f64) + eps9).astype(f64)))
        n = u * inv
        # wd * fb / (mt + fb) * p: wd * fb is a factored value (double, rounded); (mt + fb) meets in the elements
        wfb = V(wd * fb.astype(f64))
        p = p - lr32 * (n + wfb / (mt + fb) * p)
    return p.astype(f32)


def run_inputs(p0, grads):
    """facdom_inputs: factored means of g, p and an element-wise state slot"""
    shape = p0.shape
    d0, d1 = axes(shape)
    lr32 = f32(f32(HP_INPUTS["lr"]))
    p = p0.copy()
    vr = vc = ms = ve = f32(0)
    es = np.ones(shape, f32)
    for g in grads:
        vr = V(V(0.9 * f64(vr)).astype(f64) + V(0.1 * vmean(g, d0).astype(f64)).astype(f64))
        vc = V(V(0.9 * f64(vc)).astype(f64) + V(0.1 * vmean(p, d1).astype(f64)).astype(f64))
        ve = vmean(es, d0)
        es = g
        ms = V(V(0.5 * f64(ms)).astype(f64) + mean_last2(g).astype(f64))
        p = p - lr32 * (((g + vr * vc) + ms) + ve)
    return p.astype(f32)


def main():
    rng = np.random.default_rng(20261206)
    d = os.path.join(GOLDEN, "facdom")
    lines = []
    for shape in SHAPES:
        name = "x".join(str(s) for s in shape)
        p0 = rng.standard_normal(shape).astype(f32)
        grads = rng.standard_normal((STEPS,) + shape).astype(f32)
        out = run(p0, grads)
        sd = os.path.join(d, name)
        os.makedirs(sd, exist_ok=True)
        np.save(os.path.join(sd, "p0.npy"), p0)
        np.save(os.path.join(sd, "grads.npy"), grads)
        np.save(os.path.join(sd, "out.npy"), out)
        with open(os.path.join(sd, "set"), "w") as f:
            for k, v in HP.items():
                f.write(f"{k}={v!r}\n")
        lines.append(f"facdom facdom {name} {RULE}\n")
    d = os.path.join(GOLDEN, "facdom_inputs")
    for shape in SHAPES_INPUTS:
        name = "x".join(str(s) for s in shape)
        p0 = rng.standard_normal(shape).astype(f32)
        grads = rng.standard_normal((STEPS,) + shape).astype(f32)
        sd = os.path.join(d, name)
        os.makedirs(sd, exist_ok=True)
        np.save(os.path.join(sd, "p0.npy"), p0)
        np.save(os.path.join(sd, "grads.npy"), grads)
        np.save(os.path.join(sd, "out.npy"), run_inputs(p0, grads))
        with open(os.path.join(sd, "set"), "w") as f:
            for k, v in HP_INPUTS.items():
                f.write(f"{k}={v!r}\n")
        lines.append(f"facdom_inputs facdom_inputs {name} {RULE}\n")
    with open(os.path.join(GOLDEN, "facdom.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
