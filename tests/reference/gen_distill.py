#!/usr/bin/env python3
"""Reference values for celo's distillation losses (runtime/nn.h: celo_loss_kl, celo_loss_cosine), from NumPy:
tests/golden/distill/.

    python3 tests/reference/gen_distill.py          # (re)write tests/golden/distill/

Written from the definitions (docs/distill.md), in float64 on float32 inputs:

    kl:      mean over rows of T^2 sum_c p_c (log p_c - log q_c),  p = softmax(teacher / T), q = softmax(logits / T)
             d/dlogits = T (q - p) / rows                                        (T = 2; rows 6, classes 5)
    cosine:  mean over rows of 1 - a.b / (|a| |b|),  d/da = -(b / (|a||b|) - cos a / |a|^2) / rows  (rows 6, width 7)

Files, float32: logits, teacher [6, 5], kl_value [1], kl_grad [6, 5]; a, b [6, 7], cos_value [1], cos_grad [6, 7].
"""
import os

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "distill")
TEMP = 2.0


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(12)
    logits = (rng.standard_normal((6, 5)) * 2).astype(np.float32)
    teacher = (rng.standard_normal((6, 5)) * 2).astype(np.float32)
    lq = log_softmax(logits.astype(np.float64) / TEMP)
    lp = log_softmax(teacher.astype(np.float64) / TEMP)
    p, q = np.exp(lp), np.exp(lq)
    kl = TEMP * TEMP * (p * (lp - lq)).sum(axis=1).mean()
    kl_grad = TEMP * (q - p) / logits.shape[0]
    a = rng.standard_normal((6, 7)).astype(np.float32)
    b = (a * 0.5 + rng.standard_normal((6, 7))).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64, axis=1, keepdims=True), np.linalg.norm(b64, axis=1, keepdims=True)
    cos = (a64 * b64).sum(axis=1, keepdims=True) / (na * nb)
    cos_value = (1 - cos).mean()
    cos_grad = -(b64 / (na * nb) - cos * a64 / na**2) / a.shape[0]
    for name, v in [("logits", logits), ("teacher", teacher), ("kl_value", np.array([kl])), ("kl_grad", kl_grad),
                    ("a", a), ("b", b), ("cos_value", np.array([cos_value])), ("cos_grad", cos_grad)]:
        np.save(os.path.join(OUT, name + ".npy"), np.asarray(v, dtype=np.float32))


if __name__ == "__main__":
    main()
