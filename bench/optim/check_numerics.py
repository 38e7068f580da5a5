"""Checks the hand-written C baselines (fused, unfused, and Adafactor's float-sum and rewrite variants) against torch.optim on small data.

    python3 check_numerics.py LIB.so

AdamW and Adafactor are compared with torch.optim.AdamW / torch.optim.Adafactor (foreach=False), Lion with the
lion-pytorch formula in torch_bench.py (the same as optax's, which stdlib/lion.celo follows). Several steps on a
[48, 80] matrix, with the default hyper-parameters, with a larger weight decay, and with gradients that have zero
rows and columns (so that Adafactor's eps1 clamps apply). Prints one line per case and
`check=ok` or `check=FAILED` last; exits 1 on failure.
"""
import ctypes
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import Lion  # noqa: E402

R, C, STEPS = 48, 80, 4


def ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def hp(vals):
    return (ctypes.c_double * len(vals))(*vals)


def close(name, a, b, rtol, atol):
    err = (a - b).abs().max().item()
    lim = (atol + rtol * b.abs()).sub((a - b).abs()).min().item()
    ok = lim >= 0 and bool(torch.isfinite(a).all())
    return ok, f"{name} max_abs_err={err:.3g}"


def main():
    lib = ctypes.CDLL(os.path.abspath(sys.argv[1]))
    i64 = ctypes.c_int64
    torch.manual_seed(0)
    results = []
    for wd_case in ("default", "wd", "zeros"):
        for rule in ("adamw", "lion", "adafactor"):
            for impl in ("fused", "unfused") + (("floatsum", "rewrite") if rule == "adafactor" else ()):
                p0 = (torch.rand(R, C) - 0.5) * 0.2
                grads = [(torch.rand(R, C) - 0.5) * 0.02 * (k + 1) for k in range(STEPS)]
                if wd_case == "zeros":  # zero columns and rows: Adafactor's eps1 clamps become active
                    for gk in grads:
                        gk[:, ::7] = 0
                        gk[::5, :] = 0
                ref = torch.nn.Parameter(p0.clone())
                p = p0.clone()
                t1, t2 = torch.empty(R * C), torch.empty(R * C)
                if rule == "adamw":
                    wd = 0.01 if wd_case == "default" else 0.3
                    opt = torch.optim.AdamW([ref], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                                            foreach=False)
                    h = hp([1e-3, 0.9, 0.999, 1e-8, wd])
                    m, v = torch.zeros(R, C), torch.zeros(R, C)
                elif rule == "lion":
                    wd = 1e-3 if wd_case == "default" else 0.5
                    opt = Lion([ref], lr=1e-4, betas=(0.9, 0.99), weight_decay=wd)
                    h = hp([1e-4, 0.9, 0.99, wd])
                    m = torch.zeros(R, C)
                else:
                    wd = 0.0 if wd_case == "default" else 0.2
                    opt = torch.optim.Adafactor([ref], lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                                                weight_decay=wd, foreach=False)
                    h = hp([1e-2, -0.8, 0.0, 1e-3, 1.0, wd])
                    rv, cv = torch.zeros(R), torch.zeros(C)
                for t in range(1, STEPS + 1):
                    g = grads[t - 1]
                    ref.grad = g.clone()
                    opt.step()
                    if rule == "adamw":
                        args = [ptr(p), ptr(g), ptr(m), ptr(v), i64(R * C), h, i64(t)]
                        f = lib.adamw_fused if impl == "fused" else lib.adamw_unfused
                    elif rule == "lion":
                        args = [ptr(p), ptr(g), ptr(m), i64(R * C), h, i64(t)]
                        f = lib.lion_fused if impl == "fused" else lib.lion_unfused
                    else:
                        args = [ptr(p), ptr(g), ptr(rv), ptr(cv), i64(R), i64(C), h, i64(t)]
                        f = {"fused": lib.adafactor_fused, "floatsum": lib.adafactor_floatsum,
                             "rewrite": lib.adafactor_rewrite, "unfused": lib.adafactor_unfused}[impl]
                    if impl == "unfused":
                        args += [ptr(t1), ptr(t2)]
                    f(*args)
                st = opt.state[ref]
                pairs = [("p", p, ref.detach())]
                if rule == "adamw":
                    pairs += [("m", m, st["exp_avg"]), ("v", v, st["exp_avg_sq"])]
                elif rule == "lion":
                    pairs += [("m", m, st["exp_avg"])]
                else:
                    pairs += [("row_var", rv, st["row_var"].reshape(-1)), ("col_var", cv, st["col_var"].reshape(-1))]
                # float32 with the operations in a different order: a few ulp of p (|p| <= 0.1 -> ~1e-8)
                oks, msgs = [], []
                for name, a, b in pairs:
                    ok, msg = close(name, a.reshape(b.shape), b, rtol=2e-5, atol=1e-9)
                    oks.append(ok)
                    msgs.append(msg)
                ok = all(oks)
                results.append(ok)
                print(f"{rule:9s} {impl:7s} hp={wd_case:7s} steps={STEPS} {'ok' if ok else 'MISMATCH'}  "
                      + "  ".join(msgs))
    print("check=" + ("ok" if all(results) else "FAILED"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
