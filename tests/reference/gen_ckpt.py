#!/usr/bin/env python3
"""Reference checkpoint for tests/unit/test_ckpt.c, written by Python's safetensors.

    pip install safetensors numpy
    python3 tests/reference/gen_ckpt.py            # writes tests/golden/ckpt/py.safetensors

The C test loads it and checks every value listed in EXPECTED below (test_ckpt.c repeats them).
"""
import os
import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "ckpt", "py.safetensors")

tensors = {
    "fc1.w": (np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1.0),
    "fc1.b": np.array([0.1, -0.2, 0.3, -0.4], dtype=np.float32),
    "opt.fc1.w.m": np.full((3, 4), 1e-3, dtype=np.float32),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0,), dtype=np.float32),
    "ünï.código": np.array([1e30, -1e-30], dtype=np.float32),
}
metadata = {
    "step": "42",
    "seed": "7",
    "data.cursor": "seed=7 n=60000 batch=128 epoch=0 k=42",
    "note": 'quote " backslash \\ newline \n tab \t é ✓',
}

if __name__ == "__main__":
    save_file(tensors, OUT, metadata=metadata)
    print(OUT, os.path.getsize(OUT), "bytes")
