#!/usr/bin/env python3
"""Writes tests/reference/celo_cases/noise.txt from cases.json: per case, the float32 reference's own distance from a
float64 run of itself (rel_to_update, ulp), one line `variant shape rel ulp`, so that tests/run.sh (tier lopt) can
read it without Python.

    python3 tests/reference/celo_cases_noise.py

Why: a case's bound is compare_golden.py's, max(2e-5 of the update, 8 ulp), unless the reference's own float32
rounding is larger than that (Newton-Schulz on 4x4 matrices: celo2_bigstep (4,4,4) is 3.1e-5 of the update from
float64); two independent float32 implementations may then differ by about twice it (compare_golden.py's
docstring), so the tier allows max(2e-5, 2 * rel) and max(8, 2 * ulp).
"""
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celo_cases")
cases = json.load(open(os.path.join(HERE, "cases.json")))["float32_vs_float64"]
with open(os.path.join(HERE, "noise.txt"), "w") as f:
    for v in sorted(cases):
        for s in sorted(cases[v]):
            f.write("%s %s %.3g %.3g\n" % (v, s, cases[v][s]["rel_to_update"], cases[v][s]["ulp"]))
