#!/usr/bin/env python3
"""Inputs for the NaN test of the max reductions (tests/run.sh, tier agree): a NaN must survive amax, row_max and
col_max on every back end. The shape spans two chunks of the CPU executor (> 65536 elements, rows cut).

    python3 tests/reference/gen_nan.py
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "nan")
g = np.random.default_rng(5).standard_normal((1, 300, 301)).astype(np.float32)
g[0, 200, 7] = np.nan
np.save(os.path.join(OUT, "grads.npy"), g)
np.save(os.path.join(OUT, "p0.npy"), np.zeros((300, 301), np.float32))
