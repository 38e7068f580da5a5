#!/usr/bin/env python3
"""Reference for celo's float32 exp (runtime/mathf.h) on every back end: tests/golden/expf/50003.

g: 50,003 float32 values over [-110, 95] (uniform), plus the edges: +-0, +-inf, NaN, the overflow and underflow
boundaries, denormal results, tiny arguments. out.npy = exp in long double (x87 80-bit on x86-64), rounded once to
float32: the correctly rounded result, so the test's tolerance is 0.

    python3 tests/reference/gen_expf.py
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "expf", "50003")
assert np.finfo(np.longdouble).nmant >= 63, "needs an 80-bit long double (x86-64)"
edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.72284, 88.7, -87.33, -87.34, -100.0, -103.97,
                  -103.98, -104.0, 1e-8, -1e-8, 1e-30, 1.0, -1.0, 0.5, 20.0, -20.0], np.float32)
rng = np.random.default_rng(11)
g = rng.uniform(-110, 95, 50003).astype(np.float32)
g[: len(edges)] = edges
with np.errstate(over="ignore", invalid="ignore"):
    out = np.exp(g.astype(np.longdouble)).astype(np.float32)
os.makedirs(OUT, exist_ok=True)
np.save(os.path.join(OUT, "p0.npy"), np.zeros_like(g))
np.save(os.path.join(OUT, "grads.npy"), g[None, :])
np.save(os.path.join(OUT, "out.npy"), out)
with open(os.path.join(OUT, "tol"), "w") as f:
    f.write("0\n")
