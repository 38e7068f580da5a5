#!/usr/bin/env python3
"""Reference data for the stdlib update rules (tests/golden/).

    python3 tests/reference/gen_optim.py              # (re)write tests/golden/
    python3 tests/reference/gen_optim.py --check64    # compare the float32 references with float64 runs

For every case and every shape in SHAPES this runs the library optimizer the rule follows (torch.optim, or optax
where torch has none) for STEPS steps in float32 and writes tests/golden/<case>/<shape-tag>/:

    p0.npy     initial parameter (float32)
    grads.npy  [STEPS, *shape] gradients, one per step (float32)
    out.npy    parameter after the last step (float32)
    set        the hyper-parameters passed, one `name=value` per line (all of the rule's, so that the test does
               not depend on defaults): `celo apply RULE --param p0.npy --grads grads.npy --set name=value ...`

and tests/golden/cases.txt with one `<case> <rule> <shape-tag>` line per directory.

Inputs depend only on the shape (the same p0 and gradients for every case, so git stores them once); gradients
are normal, scaled per step (x0.2..x4.5), per column (x0.1..x10) and per row (x0.3..x3) so that norms, factored
statistics and clipping see varied magnitudes. Hyper-parameter values are rounded to float32 before they are
passed to the library and written to `set`, because celo keeps hyper-parameters as float32: both sides then start
from the same numbers. Everything is seeded and single-threaded: reruns give the same bytes on one machine.

Rules whose state is factored over celo's [R, C] view (adafactor, sm3) or that need a matrix (muon) are run on the
tensor reshaped to [R, C] (C = last dimension, R = the product of the others; a vector of n elements is [1, n]),
except where the library's own vector form is the same computation (adafactor, sm3: see their .celo comments;
--check64 also checks that equivalence).
"""
import argparse
import inspect
import os
import re
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
STDLIB = os.path.join(ROOT, "stdlib")

STEPS = 20
SHAPES = [("1000", (1000,)), ("64x33", (64, 33)), ("3x5x7", (3, 5, 7))]


def f32(x):
    """The double nearest to the float32 nearest to x (how celo will see the value)."""
    return float(np.float32(x))


# ---- inputs ------------------------------------------------------------------------------------------------

def inputs(index, shape):
    rng = np.random.default_rng([20240601, index])
    p0 = rng.standard_normal(shape).astype(np.float32)
    C = shape[-1]
    R = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    z = rng.standard_normal((STEPS, R, C))
    step_scale = np.exp(rng.uniform(-1.5, 1.5, size=STEPS))[:, None, None]
    col_scale = rng.permutation(np.logspace(-1, 1, C))[None, None, :]
    row_scale = rng.permutation(np.logspace(-0.5, 0.5, R))[None, :, None] if R > 1 else 1.0
    grads = (z * step_scale * row_scale * col_scale).reshape((STEPS,) + shape).astype(np.float32)
    return p0, grads


def rc_shape(shape):
    return (int(np.prod(shape[:-1])) if len(shape) > 1 else 1, shape[-1])


# ---- references ----------------------------------------------------------------------------------------------

def run_torch(make_opt, p0, grads, view, dtype):
    import torch
    p = torch.nn.Parameter(torch.tensor(p0, dtype=dtype).reshape(view).clone())
    opt = make_opt([p])
    for g in grads:
        p.grad = torch.tensor(g, dtype=dtype).reshape(view).clone()
        opt.step()
    return p.detach().numpy().reshape(p0.shape)


def run_optax(tx, p0, grads, view, dtype):
    import jax.numpy as jnp
    import optax
    p = jnp.asarray(p0.reshape(view), dtype=dtype)
    state = tx.init(p)
    for g in grads:
        u, state = tx.update(jnp.asarray(g.reshape(view), dtype=dtype), state, p)
        p = optax.apply_updates(p, u)
    return np.asarray(p).reshape(p0.shape)


def muon_newton_schulz(dtype):
    """torch.optim.Muon's Newton-Schulz iteration with its bfloat16 working copy replaced by `dtype`."""
    import torch.optim._muon as M
    src = inspect.getsource(M._zeropower_via_newtonschulz)
    if src.count("torch.bfloat16") != 1:
        raise SystemExit("gen_optim: torch.optim._muon changed; update muon_newton_schulz()")
    ns = dict(M.__dict__)
    ns["NS_DTYPE"] = dtype
    exec(src.replace("torch.bfloat16", "NS_DTYPE"), ns)  # noqa: S102 - torch's own source, one token changed
    return ns["_zeropower_via_newtonschulz"]


def torch_ref(name, h, p0, grads, dtype, view):
    import torch
    O = torch.optim
    b = lambda k: bool(h[k])
    if name == "sgd":
        mk = lambda ps: O.SGD(ps, lr=h["lr"], weight_decay=h["wd"], foreach=False)
    elif name == "sgdm":
        mk = lambda ps: O.SGD(ps, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                              weight_decay=h["wd"], nesterov=b("nesterov"), foreach=False)
    elif name in ("adam", "adamw"):
        cls = O.Adam if name == "adam" else O.AdamW
        mk = lambda ps: cls(ps, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], weight_decay=h["wd"],
                            foreach=False)
    elif name == "nadam":
        mk = lambda ps: O.NAdam(ps, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], weight_decay=h["wd"],
                                momentum_decay=h["momentum_decay"],
                                decoupled_weight_decay=b("decoupled_weight_decay"), foreach=False)
    elif name == "radam":
        mk = lambda ps: O.RAdam(ps, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], weight_decay=h["wd"],
                                decoupled_weight_decay=b("decoupled_weight_decay"), foreach=False)
    elif name == "rmsprop":
        mk = lambda ps: O.RMSprop(ps, lr=h["lr"], alpha=h["alpha"], eps=h["eps"], weight_decay=h["wd"],
                                  momentum=h["momentum"], centered=b("centered"), foreach=False)
    elif name == "adagrad":
        mk = lambda ps: O.Adagrad(ps, lr=h["lr"], lr_decay=h["lr_decay"], weight_decay=h["wd"],
                                  initial_accumulator_value=h["initial_accumulator_value"], eps=h["eps"],
                                  foreach=False)
    elif name == "adafactor":
        mk = lambda ps: O.Adafactor(ps, lr=h["lr"], beta2_decay=h["beta2_decay"], eps=(h["eps1"], h["eps2"]),
                                    d=h["d"], weight_decay=h["wd"], foreach=False)
    elif name == "muon":
        import torch.optim._muon as M
        mk = lambda ps: O.Muon(ps, lr=h["lr"], weight_decay=h["wd"], momentum=h["momentum"],
                               nesterov=b("nesterov"))
        saved = M._zeropower_via_newtonschulz
        M._zeropower_via_newtonschulz = muon_newton_schulz(dtype)
        try:
            return run_torch(mk, p0, grads, view, dtype)
        finally:
            M._zeropower_via_newtonschulz = saved
    else:
        raise KeyError(name)
    return run_torch(mk, p0, grads, view, dtype)


def optax_ref(name, h, p0, grads, dtype, view):
    import optax
    if name == "adabelief":
        tx = optax.adabelief(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=h["eps_root"],
                             nesterov=bool(h["nesterov"]))
    elif name == "yogi":
        tx = optax.yogi(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"])
    elif name in ("lamb", "lamb_chain"):
        tx = optax.lamb(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=h["eps_root"],
                        weight_decay=h["wd"])
    elif name == "lars":
        tx = optax.lars(h["lr"], weight_decay=h["wd"], trust_coefficient=h["trust_coefficient"], eps=h["eps"],
                        momentum=h["momentum"], nesterov=bool(h["nesterov"]))
    elif name == "sm3":
        # optax.sm3(lr, momentum) is exactly this chain with eps = 1e-8; spelled out so that eps can be passed.
        tx = optax.chain(optax.scale_by_sm3(b1=h["momentum"], b2=1.0, eps=h["eps"]), optax.scale(-h["lr"]))
    elif name == "fromage":
        tx = optax.fromage(h["lr"], min_norm=h["min_norm"])
    elif name == "lion":
        tx = optax.lion(h["lr"], b1=h["b1"], b2=h["b2"], weight_decay=h["wd"])
    else:
        raise KeyError(name)
    return run_optax(tx, p0, grads, view, dtype)


TORCH_RULES = {"sgd", "sgdm", "adam", "adamw", "nadam", "radam", "rmsprop", "adagrad", "adafactor", "muon"}
OPTAX_RULES = {"adabelief", "yogi", "lamb", "lamb_chain", "lars", "sm3", "fromage", "lion"}
# Rules run on the [R, C] view: always (muon: torch needs a matrix), or only for more than two dimensions
# (adafactor, sm3: their vector form is the [1, n] computation).
RC_ALWAYS = {"muon"}
RC_ABOVE_2D = {"adafactor", "sm3"}


def view_for(rule, shape, force_rc=False):
    if rule in RC_ALWAYS or (rule in RC_ABOVE_2D and (len(shape) > 2 or force_rc)):
        return rc_shape(shape)
    return shape


def reference(rule, h, p0, grads, dtype_name="float32", force_rc=False):
    view = view_for(rule, p0.shape, force_rc)
    if rule in TORCH_RULES:
        import torch
        torch.set_num_threads(1)
        return torch_ref(rule, h, p0, grads, getattr(torch, dtype_name), view)
    import jax.numpy as jnp
    return optax_ref(rule, h, p0, grads, getattr(jnp, dtype_name), view)


# ---- cases ---------------------------------------------------------------------------------------------------
# (case, rule, hyper-parameters): every hyper-parameter of the rule, non-default where that exercises a term.
# Betas and momenta are dyadic (exact in float32) so that 1 - b^t means the same in every implementation.

CASES = [
    ("sgd", "sgd", dict(lr=0.01, wd=0.01)),
    ("sgdm", "sgdm", dict(lr=0.005, momentum=0.875, dampening=0.125, wd=0.01, nesterov=0)),
    ("sgdm_nesterov", "sgdm", dict(lr=0.005, momentum=0.875, dampening=0, wd=0.01, nesterov=1)),
    ("adam", "adam", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-6, wd=0.02)),
    ("adamw", "adamw", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-7, wd=0.1)),
    ("nadam", "nadam", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-6, wd=0.02, momentum_decay=0.01,
                            decoupled_weight_decay=0)),
    ("nadam_decoupled", "nadam", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-6, wd=0.1, momentum_decay=0.01,
                                      decoupled_weight_decay=1)),
    # b2 = 0.984375: rho_t passes 5 at t = 6, so both branches of the rectification run
    ("radam", "radam", dict(lr=0.01, b1=0.875, b2=0.984375, eps=1e-6, wd=0.02, decoupled_weight_decay=0)),
    ("radam_decoupled", "radam", dict(lr=0.01, b1=0.875, b2=0.984375, eps=1e-6, wd=0.1,
                                      decoupled_weight_decay=1)),
    ("rmsprop", "rmsprop", dict(lr=0.02, alpha=0.9375, eps=1e-6, wd=0.01, momentum=0.5, centered=1)),
    ("rmsprop_plain", "rmsprop", dict(lr=0.02, alpha=0.9375, eps=1e-6, wd=0.01, momentum=0, centered=0)),
    ("adagrad", "adagrad", dict(lr=0.2, lr_decay=0.01, wd=0.01, initial_accumulator_value=0.1, eps=1e-8)),
    # lr = 0.3: rho_t = min(lr, 1/sqrt(t)) switches at t = 12
    ("adafactor", "adafactor", dict(lr=0.3, beta2_decay=-0.7, eps1=1e-6, eps2=1e-3, d=1.0, wd=0.02)),
    ("muon", "muon", dict(lr=0.1, wd=0.05, momentum=0.875, nesterov=1)),
    ("muon_plain", "muon", dict(lr=0.1, wd=0.05, momentum=0.875, nesterov=0)),
    ("adabelief", "adabelief", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-10, eps_root=1e-12, nesterov=0)),
    ("adabelief_nesterov", "adabelief", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-10, eps_root=1e-12,
                                             nesterov=1)),
    ("yogi", "yogi", dict(lr=0.05, b1=0.875, b2=0.9375, eps=1e-3)),
    ("lamb", "lamb", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-6, eps_root=1e-8, wd=0.05)),
    ("lamb_chain", "lamb_chain", dict(lr=0.05, b1=0.875, b2=0.984375, eps=1e-6, eps_root=1e-8, wd=0.05)),
    ("lars", "lars", dict(lr=0.5, wd=0.01, trust_coefficient=0.01, eps=1e-4, momentum=0.875, nesterov=0)),
    ("lars_nesterov", "lars", dict(lr=0.5, wd=0.01, trust_coefficient=0.01, eps=1e-4, momentum=0.875,
                                   nesterov=1)),
    ("sm3", "sm3", dict(lr=0.2, momentum=0.875, eps=1e-8)),
    ("fromage", "fromage", dict(lr=0.05, min_norm=1e-6)),
    ("lion", "lion", dict(lr=0.01, b1=0.875, b2=0.96875, wd=0.05)),
]


def rule_hparams(rule):
    """Hyper-parameter names of `optimizer RULE(...)` in stdlib/, in order."""
    for fn in sorted(os.listdir(STDLIB)):
        if not fn.endswith(".celo"):
            continue
        text = re.sub(r"#[^\n]*", "", open(os.path.join(STDLIB, fn)).read())
        m = re.search(r"\boptimizer\s+%s\s*\(([^)]*)\)" % re.escape(rule), text)
        if m:
            return [a.split("=")[0].strip() for a in m.group(1).split(",") if a.strip()]
    raise SystemExit("gen_optim: no optimizer %s in stdlib/" % rule)


def fmt(v):
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e6 else repr(v)


def max_rel_err(a, b):
    """max_i |a_i - b_i| / max_i |b_i|, as tests/tools/npycmp computes it."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = np.max(np.abs(a - b))
    m = np.max(np.abs(b))
    return d / m if m > 0 else d


def generate():
    os.makedirs(GOLDEN, exist_ok=True)
    for entry in os.listdir(GOLDEN):  # drop the directories of earlier runs (stale cases), nothing else
        d = os.path.join(GOLDEN, entry)
        if os.path.isdir(d) and _only_ours(d):
            shutil.rmtree(d)
    lines = []
    for case, rule, hp in CASES:
        names = rule_hparams(rule)
        if sorted(names) != sorted(hp):
            raise SystemExit("gen_optim: case %s gives %s, rule %s has %s" % (case, sorted(hp), rule, names))
        h = {k: f32(hp[k]) for k in names}
        for index, (tag, shape) in enumerate(SHAPES):
            p0, grads = inputs(index, shape)
            out = reference(rule, h, p0, grads)
            if not np.all(np.isfinite(out)):
                raise SystemExit("gen_optim: %s %s: non-finite result" % (case, tag))
            d = os.path.join(GOLDEN, case, tag)
            os.makedirs(d, exist_ok=True)
            np.save(os.path.join(d, "p0.npy"), p0)
            np.save(os.path.join(d, "grads.npy"), grads)
            np.save(os.path.join(d, "out.npy"), out.astype(np.float32))
            with open(os.path.join(d, "set"), "w") as f:
                f.writelines("%s=%s\n" % (k, fmt(h[k])) for k in names)
            lines.append("%s %s %s\n" % (case, rule, tag))
            moved = max_rel_err(out, p0)
            print("%-20s %-6s moved %.3g" % (case, tag, moved))
    with open(os.path.join(GOLDEN, "cases.txt"), "w") as f:
        f.writelines(lines)


def _only_ours(case_dir):
    """True when case_dir holds nothing but <shape-tag>/ directories of what generate() writes."""
    for tag in os.listdir(case_dir):
        d = os.path.join(case_dir, tag)
        if not os.path.isdir(d) or not set(os.listdir(d)) <= {"p0.npy", "grads.npy", "out.npy", "set"}:
            return False
    return True


def check64():
    """Runs every case in float64 (in a child process: jax's x64 mode is process-wide) and reports how far the
    committed float32 references are from it, to size test tolerances; also checks the vector forms of the
    factored rules against their [1, n] forms."""
    if os.environ.get("GEN_OPTIM_X64") != "1":
        env = dict(os.environ, GEN_OPTIM_X64="1", JAX_ENABLE_X64="1")
        sys.exit(subprocess.call([sys.executable, os.path.abspath(__file__), "--check64"], env=env))
    print("%-20s %-6s %12s %12s" % ("case", "shape", "f32_vs_f64", "vec_vs_1xn"))
    for case, rule, hp in CASES:
        h = {k: f32(v) for k, v in hp.items()}
        for index, (tag, shape) in enumerate(SHAPES):
            p0, grads = inputs(index, shape)
            ref32 = np.load(os.path.join(GOLDEN, case, tag, "out.npy"))
            ref64 = reference(rule, h, p0, grads, "float64")
            extra = ""
            if rule in RC_ABOVE_2D and len(shape) == 1:
                rc64 = reference(rule, h, p0, grads, "float64", force_rc=True)
                extra = "%12.3g" % max_rel_err(rc64, ref64)
            print("%-20s %-6s %12.3g %s" % (case, tag, max_rel_err(ref32, ref64), extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check64", action="store_true", help="compare the float32 references with float64 runs")
    args = ap.parse_args()
    check64() if args.check64 else generate()


if __name__ == "__main__":
    main()
