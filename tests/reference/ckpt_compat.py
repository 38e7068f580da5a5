#!/usr/bin/env python3
"""Checks that a checkpoint written by celo's C writer loads with Python's safetensors.

    pip install safetensors numpy
    CELO_CKPT_PY_OUT=/tmp/c.safetensors build/tests/test_ckpt     # the C test also writes this file
    python3 tests/reference/ckpt_compat.py /tmp/c.safetensors

The C test writes the same tensors and metadata as gen_ckpt.py (plus a 1000-element tensor "big" of
values i * 0.001 - 0.5); this script compares every value exactly and exits 1 on any difference.
"""
import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, __import__("os").path.dirname(__file__))
from gen_ckpt import tensors, metadata  # noqa: E402

path = sys.argv[1]
got = load_file(path)
want = dict(tensors)
want["big"] = (np.arange(1000, dtype=np.float32) * np.float32(0.001) - np.float32(0.5)).astype(np.float32)
ok = True
if set(got) != set(want):
    print("FAIL names", sorted(got), sorted(want))
    ok = False
for k in want:
    if k in got:
        same = got[k].dtype == np.float32 and got[k].shape == want[k].shape and np.array_equal(got[k], want[k])
        print("ok  " if same else "FAIL", k, got[k].shape)
        ok &= bool(same)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()
print("ok   metadata" if meta == metadata else f"FAIL metadata {meta!r}")
ok &= meta == metadata
sys.exit(0 if ok else 1)
