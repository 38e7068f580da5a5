#!/usr/bin/env python3
"""Recomputes an eval block's summary from its runs' CSV logs, independently of runtime/evalreport.c, and checks
celo's results.md and results.csv against it (tests/run.sh, tier meta).

    python3 tests/reference/eval_ref.py OUT_DIR EVAL_NAME REFERENCE [METRIC]

Definitions (docs/meta.md, "Evaluating learned optimizers"): a configuration is (task, optimizer, tuned value);
its score is the mean over seeds of the final metric (the last CSV row); each optimizer's best configuration per
task has the lowest score. L_ref = the reference's best score; normalized = final / L_ref per seed; speed-up =
T_ref / T_opt, the first logged steps at which the mean curves over seeds reach L_ref (0: never); IQM = the mean
after cutting floor(n/4) values from each end. The logs hold 7 significant digits, so values are compared to
1e-5 relative (the bootstrap intervals use celo's random numbers and are not checked here).
"""
import csv
import glob
import os
import re
import sys

import numpy as np


def iqm(v):
    v = np.sort(np.asarray(v, float))
    k = len(v) // 4
    return float(v[k:len(v) - k].mean())


def main():
    out, name, ref = sys.argv[1:4]
    metric = sys.argv[4] if len(sys.argv) > 4 else "eval_loss"
    runs = {}  # (task, opt, tuned) -> {seed: rows}
    pat = re.compile(re.escape(name) + r"\.([^.]+)\.(.+?)(?:_lr_([0-9.e+-]+))?_(\d+)\.csv$")
    for path in sorted(glob.glob(os.path.join(out, name + ".*.csv"))):
        m = pat.match(os.path.basename(path))
        if not m:
            continue
        task, opt, lr, seed = m.group(1), m.group(2), m.group(3) or "", int(m.group(4))
        with open(path) as f:
            rows = [(int(r["step"]), float(r[metric])) for r in csv.DictReader(f)]
        runs.setdefault((task, opt, lr), {})[seed] = rows
    tasks = sorted({k[0] for k in runs}, key=lambda t: min(i for i, k in enumerate(runs) if k[0] == t))
    opts = []
    for k in runs:
        if k[1] not in opts:
            opts.append(k[1])
    score = {k: np.mean([rows[-1][1] for rows in v.values()]) for k, v in runs.items()}
    best = {(t, o): min((k for k in runs if k[0] == t and k[1] == o), key=lambda k: score[k]) for t in tasks for o in opts}

    def reach(k, target):
        seeds = sorted(runs[k])
        steps = [s for s, _ in runs[k][seeds[0]]]
        mean = np.mean([[v for _, v in runs[k][s]] for s in seeds], axis=0)
        hit = [st for st, m in zip(steps, mean) if m <= target]
        return hit[0] if hit else None

    norm, speed = {o: [] for o in opts}, {o: [] for o in opts}
    per_run = {}
    for t in tasks:
        L = score[best[(t, ref)]]
        tr = reach(best[(t, ref)], L)
        for o in opts:
            k = best[(t, o)]
            te = reach(k, L)
            sp = 0.0 if te is None else tr / te
            speed[o].append(sp)
            for s, rows in sorted(runs[k].items()):
                norm[o].append(rows[-1][1] / L)
                per_run[(t, o, s)] = (rows[-1][1] / L, sp)
    bad = []
    # results.md: the summary table's point estimates
    table = {}
    with open(os.path.join(out, "results.md")) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0] in opts and cells[0] not in table:
                table[cells[0]] = (float(cells[1]), float(cells[3]))
    for o in opts:
        want = (iqm(norm[o]), iqm(speed[o]))
        got = table.get(o)
        if got is None or any(abs(g - w) > 1e-3 * max(abs(w), 1e-3) for g, w in zip(got, want)):
            bad.append(f"{o}: results.md has IQM {got}, the logs give {want[0]:.4g}, {want[1]:.4g}")
    # results.csv: every run's normalized value and speed-up
    with open(os.path.join(out, "results.csv")) as f:
        for r in csv.DictReader(f):
            want = per_run.get((r["task"], r["optimizer"], int(r["seed"])))
            got = (float(r["normalized"]), float(r["speedup_of_mean"]))
            if want is None or any(abs(g - w) > 1e-5 * max(abs(w), 1e-3) for g, w in zip(got, want)):
                bad.append(f"results.csv {r['task']} {r['optimizer']} seed {r['seed']}: {got}, the logs give {want}")
    if bad:
        print("\n".join(bad))
        return 1
    print(f"{len(tasks)} tasks, {len(opts)} optimizers, {len(per_run)} runs: IQMs and per-run values agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
