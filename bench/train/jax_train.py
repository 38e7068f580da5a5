"""bench/train, JAX side: steps/s of the models that bench/train/*.celo train with celo, as a JAX user would
write the loop: every step (batch gather, forward, loss, backward, optax AdamW) inside one jax.jit-ed lax.scan.

    python bench/train/jax_train.py MODEL [--cpus N] [--target-s S] [--reps R] [--steps N] [--vocab V]

MODEL: mlp8 (64-32-10, batch 64, 8x8 Fashion-MNIST), mlp28 (784-128-10, batch 128, 28x28 Fashion-MNIST), gpt
(dim 128, 4 heads, 2 layers, seq 64, batch 16, character vocabulary V); the same data (bench/train/fmnist.py,
as torch_train.py loads it; random characters for the GPT, as there), init (nn.Linear's and nn.Embedding's
defaults) and AdamW hyper-parameters as torch_train.py. Prints one line
    jax MODEL cpus=N steps_per_s=X min=A max=B steps=N reps=R compile_s=C cpu_util=U busy_threads=K
        params=P jax=V optax=V data=D cpus_set="..."
or `jax MODEL cpus=N error=...`. steps_per_s is the median over R timed scans of N steps each (after a
compile and an untimed run of the same scan); cpu_util is process CPU time / wall time over the timed scans
(about 1 when XLA keeps to one thread); busy_threads: the most threads that had at least a tenth of one scan's
CPU time.

Batches: drawn with numpy before the timed scan, as int32 indices [N, batch] that the scan steps through; the
rows (MLPs) or windows (GPT) are gathered from the data set, which sits in memory as one array, inside the scan,
each step. MLPs: each epoch's permutation (as torch.randperm in torch_train.py, one per 60000 // batch steps);
GPT: B random window starts per step (as torch.randint there).

CPUs (XLA's CPU client has no thread-count setting): --cpus N restricts the process to its first N allowed
CPUs (sched_setaffinity, as taskset -c would; XLA sizes its thread pools from the CPUs the process may use), and
--cpus 1 also sets XLA_FLAGS=--xla_cpu_multi_thread_eigen=false (meant to keep the compiled matmuls off
Eigen's thread pool; with 2 CPUs allowed, jax 0.10.2 still keeps two Eigen threads busy with it set, so the
affinity is what makes one thread), before jax is imported. The often-quoted `intra_op_parallelism_threads=1` is
a TensorFlow session option, not an XLA flag: in XLA_FLAGS after a --flag it is silently ignored, so it is not
set. The default (0) uses every allowed CPU.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np

# as torch_train.py's MODELS; probe: steps of the scan that measures the pace before the timed length is chosen
MODELS = {
    "mlp8": dict(kind="mlp", dims=(64, 32, 10), batch=64, side=8, lr=1e-3, wd=1e-4, probe=2000),
    "mlp28": dict(kind="mlp", dims=(784, 128, 10), batch=128, side=28, lr=1e-3, wd=1e-4, probe=200),
    "gpt": dict(kind="gpt", dim=128, heads=4, layers=2, seq=64, batch=16, lr=3e-3, wd=0.01, probe=5),
}


def set_cpus(n):
    """Limits XLA to n CPUs; must run before jax is imported. Returns a note of what was set."""
    notes = []
    if n:
        cpus = sorted(os.sched_getaffinity(0))
        if n < len(cpus):
            os.sched_setaffinity(0, cpus[:n])
            notes.append(f"affinity {','.join(map(str, cpus[:n]))}")
    if n == 1:
        flags = "--xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        notes.append("XLA_FLAGS " + flags)
    return "; ".join(notes) or "default"


def thread_ticks():
    """CPU clock ticks (user + system) of each thread of this process, by thread id, from /proc."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            out[tid] = int(v[11]) + int(v[12])  # fields 14 and 15 of stat(5), counted after the name
        except (OSError, IndexError, ValueError):
            pass
    return out


def epoch_batches(rng, n, batch, steps, state):
    """Indices [steps, batch] continuing a stream of shuffled epochs (last partial batch of each epoch dropped,
    as torch_train.py does); state: [permutation, next batch of it]."""
    per = n // batch
    out = []
    while len(out) < steps:
        if state[0] is None or state[1] == per:
            state[0], state[1] = rng.permutation(n).astype("int32"), 0
        take = min(per - state[1], steps - len(out))
        out.extend(state[0][(state[1] + i) * batch:(state[1] + i + 1) * batch] for i in range(take))
        state[1] += take
    return np.stack(out)


def make(name, vocab, rng):
    """(params, data, loss(params, data, batch indices), draw(k) -> batch indices [k, ...] for k steps, what the
    data is) for MODEL; data stays an argument of the jitted loop, not a constant folded into the program."""
    import jax
    import jax.numpy as jnp
    import optax

    cfg = MODELS[name]

    def linear(a, b, bias=True):  # nn.Linear's default init: U(-1/sqrt(a), 1/sqrt(a)), weight stored [in, out]
        k = 1.0 / np.sqrt(a)
        w = jnp.asarray(rng.uniform(-k, k, (a, b)), jnp.float32)
        return {"w": w, "b": jnp.asarray(rng.uniform(-k, k, (b,)), jnp.float32)} if bias else {"w": w}

    def apply(l, x):
        return x @ l["w"] + l["b"] if "b" in l else x @ l["w"]

    if cfg["kind"] == "mlp":
        from fmnist import fashion

        X, Y, src = fashion(cfg["side"])
        data = (jax.device_put(X), jax.device_put(Y.astype(np.int32)))
        params = [linear(a, b) for a, b in zip(cfg["dims"][:-1], cfg["dims"][1:])]
        stream = [None, 0]

        def loss(p, d, i):
            x = d[0][i]
            for j, l in enumerate(p):
                x = apply(l, x)
                if j + 1 < len(p):
                    x = jax.nn.relu(x)
            return optax.softmax_cross_entropy_with_integer_labels(x, d[1][i]).mean()

        def draw(k):
            return epoch_batches(rng, len(X), cfg["batch"], k, stream)

        return params, data, loss, draw, src

    # GPT as torch_train.py's: pre-LN blocks, causal attention, gelu (tanh), untied head without bias; on random
    # characters of the KJV's length (the values do not matter for speed)
    T, B, C, H = cfg["seq"], cfg["batch"], cfg["dim"], cfg["heads"]
    text = jax.device_put(rng.integers(0, vocab, 3_700_000).astype(np.int32))

    def ln():
        return {"g": jnp.ones(C, jnp.float32), "b": jnp.zeros(C, jnp.float32)}

    params = {"wte": jnp.asarray(rng.standard_normal((vocab, C)), jnp.float32),  # nn.Embedding: N(0, 1)
              "wpe": jnp.asarray(rng.standard_normal((T, C)), jnp.float32),
              "h": [{"ln_1": ln(), "c_attn": linear(C, 3 * C), "c_proj": linear(C, C), "ln_2": ln(),
                     "c_fc": linear(C, 4 * C), "mlp_proj": linear(4 * C, C)} for _ in range(cfg["layers"])],
              "ln_f": ln(), "lm_head": linear(C, vocab, bias=False)}

    def norm(l, x):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) * jax.lax.rsqrt(v + 1e-5) * l["g"] + l["b"]

    def loss(p, d, starts):  # starts [B]: B windows of T + 1 characters
        w = d[0][starts[:, None] + jnp.arange(T + 1)]
        x = p["wte"][w[:, :-1]] + p["wpe"]
        for blk in p["h"]:
            q, k, v = jnp.split(apply(blk["c_attn"], norm(blk["ln_1"], x)), 3, axis=-1)
            a = jax.nn.dot_product_attention(*(t.reshape(B, T, H, C // H) for t in (q, k, v)), is_causal=True)
            x = x + apply(blk["c_proj"], a.reshape(B, T, C))
            x = x + apply(blk["mlp_proj"], jax.nn.gelu(apply(blk["c_fc"], norm(blk["ln_2"], x)), approximate=True))
        logits = apply(p["lm_head"], norm(p["ln_f"], x))
        return optax.softmax_cross_entropy_with_integer_labels(logits, w[:, 1:]).mean()

    def draw(k):  # random window starts, as torch_train.py draws them each step
        return rng.integers(0, len(text) - T - 1, (k, B)).astype(np.int32)

    return params, (text,), loss, draw, "random"


def bench(name, target_s, reps, steps, vocab):
    import jax
    import jax.numpy as jnp
    import optax

    cfg = MODELS[name]
    rng = np.random.default_rng(1)
    params, data, loss_fn, draw, src = make(name, vocab, rng)
    opt = optax.adamw(cfg["lr"], b1=0.9, b2=0.999, eps=1e-8, weight_decay=cfg["wd"])
    opt_state = opt.init(params)

    @jax.jit
    def train(p, s, d, idx):  # the whole loop: len(idx) steps in one scan
        def step(carry, i):
            p, s, _ = carry
            loss, g = jax.value_and_grad(loss_fn)(p, d, i)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s, loss), None

        return jax.lax.scan(step, (p, s, jnp.float32(0)), idx)[0]

    def batches(k):
        return jax.device_put(draw(k))

    carry = (params, opt_state)

    def timed(fn, idx):
        nonlocal carry
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        p, s, loss = fn(*carry, data, idx)
        loss = float(loss)  # waits for the scan
        dt = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if not np.isfinite(loss):
            raise RuntimeError("loss is not finite")
        carry = (p, s)
        return dt, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)

    # compile and probe the pace on a short scan, then compile the timed length (scan lengths are static)
    n0 = cfg["probe"]
    c, _ = timed(train, batches(n0))
    probe_s, _ = timed(train, batches(n0))
    if steps <= 0:
        steps = max(n0, int(target_s / reps * n0 / probe_s))
    t0 = time.perf_counter()
    idx = batches(steps)
    fn = train.lower(*carry, data, idx).compile()
    c += time.perf_counter() - t0
    timed(fn, idx)  # untimed first run of the compiled loop
    rates, cpu, wall, busy = [], 0.0, 0.0, 0
    for _ in range(reps):
        idx = batches(steps)
        t0 = thread_ticks()
        dt, ct = timed(fn, idx)
        # threads that did this scan's work, each at least a tenth of its CPU time (per scan: XLA may run the
        # next scan on another thread of its pool)
        d = [v - t0.get(tid, 0) for tid, v in thread_ticks().items()]
        busy = max(busy, sum(1 for v in d if v > 0 and v >= 0.1 * sum(d)))
        rates.append(steps / dt)
        cpu, wall = cpu + ct, wall + dt
    npar = sum(x.size for x in jax.tree_util.tree_leaves(params))
    return (rates, steps, c, cpu / wall, busy, npar, f"jax={jax.__version__} optax={optax.__version__}", src)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--cpus", type=int, default=0, help="CPUs for XLA (default: all the process may use)")
    ap.add_argument("--target-s", type=float, default=1.5, help="timed seconds in all (default 1.5)")
    ap.add_argument("--reps", type=int, default=3, help="timed scans; the median counts (default 3)")
    ap.add_argument("--steps", type=int, default=0, help="steps per timed scan (default: from --target-s)")
    ap.add_argument("--vocab", type=int, default=63, help="character vocabulary of the KJV text (celo: 63)")
    a = ap.parse_args()
    how = set_cpus(a.cpus)
    nt = a.cpus or len(os.sched_getaffinity(0))
    tag = f"jax {a.model} cpus={nt}"
    try:
        rates, steps, c, util, busy, npar, ver, src = bench(a.model, a.target_s, max(1, a.reps), a.steps, a.vocab)
    except Exception as e:  # missing jax or optax, or a run that failed: say why, exit 0 (n/a in the report)
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        print(f"{tag} error={type(e).__name__}: {msg}", flush=True)
        return 0
    print(f"{tag} steps_per_s={statistics.median(rates):.6g} min={min(rates):.6g} max={max(rates):.6g} "
          f"steps={steps} reps={len(rates)} compile_s={c:.2f} cpu_util={util:.2f} busy_threads={busy} "
          f"params={npar} {ver} data={src} cpus_set=\"{how}\"", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
