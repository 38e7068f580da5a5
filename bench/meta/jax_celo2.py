"""bench/meta, JAX side: inner particle-steps/s of Celo2 meta-training as a JAX user writes it: 16 particles (8
antithetic pairs, θ + ε and θ - ε) of the 8x8 Fashion-MNIST MLP 64-32-10 (batch 64, cross-entropy), each with its
own parameters, optimizer state and perturbed θ, trained by celo2_meta (stdlib/celo2.celo); one particle's step
(batch gather, forward, loss, backward, the Celo2 update) jax.vmap-ed over the 16 and S steps in one jax.jit-ed
lax.scan.

    python bench/meta/jax_celo2.py [--cpus N] [--target-s S] [--reps R] [--steps N] [--bias adam|mlp] [--data DIR]
    python bench/meta/jax_celo2.py --check [--steps T] [--bias adam|mlp] [--data DIR]

The step, written from ../shared/research/learned-optimizers.md §1.1 (accumulators), §1.2 (30 features), §2.1-2.2
(Celo2's MLP 30 -> 8 -> 8 -> 3, Newton-Schulz, RMS-normalized output) and §1.5 (the meta-training task), in
celo2_meta's meta-training form: p -= 1e-3 u (step_mult), gradients clipped to ±1000 on the MLP path, features
normalized per channel over the last two axes (eps 1e-9). The task's tensors carry the recipe's haiku names
mlp/~/linear_{0,1}/{w,b}; --bias adam (default, the recipe: the factory's --regex_1d=/b$) sends the biases to
Adam without bias correction on the raw gradient (b1 0.9, b2 0.95, eps 1e-8 inside the root, lr step_mult *
mult_1d = 0.02); --bias mlp sends them through the MLP with the 15 features of rank-1 tensors (celo2_meta's
else-branch for a 1-D tensor that does not match /b$). θ: DIR/golden/celo2/theta.msgpack (the authors' init, read
with tests/reference/celo_ref.py's reader; the speed does not depend on the values), perturbed per pair by
ε ~ N(0, 0.01²) (PES's std), + for the even particle and - for the odd one. Each particle also keeps the sum of
its normalized per-step losses clip(L, 0, 1.5 ln 10) (what PES reads), so that no loss is optimized away.

Timing: prints one line
    jax celo2_meta cpus=N particle_steps_per_s=X min=A max=B particles=16 steps=S reps=R compile_s=C
        cpu_util=U busy_threads=K bias=B jax=V data=D cpus_set="..."
or `jax celo2_meta cpus=N error=...`. particle_steps_per_s = 16 * S / seconds of one timed scan of S steps, the
median over R scans (after a compile and an untimed run of the same scan); S from --target-s by a probe scan, as
bench/train/jax_train.py does (its --cpus handling, CPU-time and thread counts too). Data: 8x8 Fashion-MNIST
exactly as bench/train loads it (bench/train/fmnist.py); the pairs' batch indices (a stream of shuffled epochs per
pair, shared by its two particles as the antithetic runs share their batches) are drawn with numpy before the
scan, the rows gathered inside it, each step. The parameters start as celo's fm8 task's (nn.Linear's default:
U(±1/sqrt(fan_in)) weights and biases), one draw per pair. Not timed: PES's estimate, the outer step, episode
resets (celo's inner_steps_per_s includes them; see bench/meta/run.sh).

--check: particles 0, 1 and 15 (θ + ε_0, θ - ε_0, θ - ε_7) over T steps (default 20) of the vmapped scan, each
against tests/reference/celo_ref.py (NumPy, written independently from the same notes), Celo2(its θ, mode="meta",
orthogonalize=True,
route_1d="adam" or None) fed the same gradients, run freely from the same initial parameters: every tensor after
every step must agree within max(2e-5 * max|ref - p0|, 8 ulp(max|ref|)) (compare_golden.py's bound, as
bench/learned/torch_lopt.py --check); and the gradients and loss of each step against a NumPy forward/backward of
the MLP at the scan's parameters of that step (relative 1e-4 of the largest gradient entry, float32 matmuls in
another order). Prints one line per tensor, then check=ok or check=FAILED; exits 1 on failure.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "train"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import celo_ref  # noqa: E402  (θ: its msgpack reader; --check: the NumPy reference)
from jax_train import epoch_batches, set_cpus, thread_ticks  # noqa: E402  (numpy only at import)

DATA = os.path.join("..", "shared", "data", "celo")  # repo-relative
PAIRS, BATCH, DIMS = 8, 64, (64, 32, 10)
NAMES = ("mlp/~/linear_0/w", "mlp/~/linear_0/b", "mlp/~/linear_1/w", "mlp/~/linear_1/b")
STD = 0.01  # PES's perturbation (meta block: estimator = pes(truncation = 50, std = 0.01))
STEP_MULT, MULT_1D, B1, B2, EPS = 1e-3, 20.0, 0.9, 0.95, 1e-8  # celo2_meta's defaults
DECAYS = (0.9, 0.99, 0.999)  # momenta and factored second moments (§1.1)
RMS_DECAY = 0.95  # Celo2 (§2.1)
REL_TOL, ULP_TOL = 2e-5, 8  # --check: compare_golden.py's bound
GRAD_TOL = 1e-4


def load_theta(data):
    """Celo2's θ as (W0 (30, 8), W1, W2), (b0, b1, b2) float32: w0__0 .. w0__13 stacked along the input axis in
    index order (§1.3; Celo2's θ has no leading axis, §2.1), and the flat dict for celo_ref."""
    th = celo_ref.load_msgpack(os.path.join(ROOT, data, "golden", "celo2", "theta.msgpack"))
    pre = "ff_mod_stack/~/"
    w0 = np.concatenate([th[pre + f"w0__{i}"] for i in range(14)], axis=0)
    ws = (w0, th[pre + "w1"], th[pre + "w2"])
    bs = tuple(th[pre + f"b{i}"].reshape(-1) for i in range(3))
    return tuple(np.asarray(w, np.float32) for w in ws), tuple(np.asarray(b, np.float32) for b in bs), th


def perturb_theta(th, eps):
    """celo_ref's θ dict plus the perturbation eps ((W0, W1, W2), (b0, b1, b2)), W0 split back into w0__i."""
    pre = "ff_mod_stack/~/"
    out = dict(th)
    (e0, e1, e2), (c0, c1, c2) = eps
    row = 0
    for i in range(14):
        k = pre + f"w0__{i}"
        n = th[k].shape[0]
        out[k] = (th[k] + e0[row:row + n]).astype(np.float32)
        row += n
    out[pre + "w1"] = (th[pre + "w1"] + e1).astype(np.float32)
    out[pre + "w2"] = (th[pre + "w2"] + e2).astype(np.float32)
    for i, c in enumerate((c0, c1, c2)):
        out[pre + f"b{i}"] = (th[pre + f"b{i}"] + c.reshape(th[pre + f"b{i}"].shape)).astype(np.float32)
    return out


def init_params(rng):
    """[pairs] of [w0 (64, 32), b0, w1 (32, 10), b1] (weights (in, out), as the recipe's haiku MLP): nn.Linear's
    default U(±1/sqrt(fan_in)), as celo's fm8 task; both particles of a pair start from the same draw."""
    out = []
    for _ in range(PAIRS):
        p = []
        for a, b in zip(DIMS[:-1], DIMS[1:]):
            k = 1.0 / np.sqrt(a)
            p += [rng.uniform(-k, k, (a, b)).astype(np.float32), rng.uniform(-k, k, (b,)).astype(np.float32)]
        out.append(p)
    return [np.repeat(np.stack([o[j] for o in out]), 2, axis=0) for j in range(4)]  # [16, ...] each


def draw_eps(rng):
    """ε of the 8 pairs, antithetic: [16, ...] per θ tensor, + for even particles and - for odd ones."""
    W, B = THETA_SHAPES
    out = []
    for s in W + B:
        e = (STD * rng.standard_normal((PAIRS,) + s)).astype(np.float32)
        out.append(np.stack([e, -e], axis=1).reshape((2 * PAIRS,) + s))
    return out


THETA_SHAPES = (((30, 8), (8, 8), (8, 3)), ((8,), (8,), (3,)))


def build(bias):
    """(init_state(params) -> state, scan(params, state, theta_eps, X, Y, idx, trace) -> ...) in JAX."""
    import jax
    import jax.numpy as jnp

    f32 = jnp.float32
    bm = jnp.asarray(DECAYS, f32)

    def fac_dims(shape):  # (d1, d0): the second largest and the largest axis, ties by index (§1.1)
        order = sorted(range(len(shape)), key=lambda a: (shape[a], a))
        return order[-2], order[-1]

    def mlp(x, ws, bs):
        h = jax.nn.relu(x @ ws[0][:x.shape[-1]] + bs[0])
        h = jax.nn.relu(h @ ws[1] + bs[1])
        return (h @ ws[2] + bs[2])[..., 0]  # the direction only (exp_mult 0)

    def normalize(x, axes):  # each channel over its RMS over the tensor's last two axes (axis 0 for 1-D)
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=axes, keepdims=True) + f32(1e-9))

    def safe_rsqrt(x):
        return jax.lax.rsqrt(jnp.maximum(x, f32(1e-9)))

    def newton_schulz(x):  # §2.2: the short side first, one Frobenius norm, 5 iterations
        a, b, c = f32(3.4445), f32(-4.7750), f32(2.0315)
        tr = x.shape[0] > x.shape[1]
        if tr:
            x = x.T
        x = x / (jnp.sqrt(jnp.sum(x * x)) + f32(1e-8))
        for _ in range(5):
            A = x @ x.T
            x = a * x + (b * A + c * (A @ A)) @ x
        return x.T if tr else x

    def routed(name):
        return bias == "adam" and name.endswith("/b")

    def init_one(name, p):
        z = lambda *s: jnp.zeros(s, f32)  # noqa: E731
        if routed(name):
            return {"am": z(*p.shape), "av": z(*p.shape)}
        st = {"m": z(*p.shape, 3), "rms": z(*p.shape, 1)}
        if p.ndim == 2:
            d1, d0 = fac_dims(p.shape)
            st["vr"] = z(p.shape[1 - d0], 3)  # the shape without d0
            st["vc"] = z(p.shape[1 - d1], 3)
        else:
            st["v"] = z(*p.shape, 3)
        return st

    def update(name, p, g, st, ws, bs):
        """celo2_meta on one tensor: (new p, new state)."""
        if routed(name):  # Adam, no bias correction, raw gradient
            am = f32(B1) * st["am"] + f32(1 - B1) * g
            av = f32(B2) * st["av"] + f32(1 - B2) * g * g
            return p - f32(STEP_MULT * MULT_1D) * (am * jax.lax.rsqrt(av + f32(EPS))), {"am": am, "av": av}
        g = jnp.clip(g, f32(-1000), f32(1000))
        gg = g[..., None]
        m = bm * st["m"] + (1 - bm) * gg
        rms = f32(RMS_DECAY) * st["rms"] + f32(1 - RMS_DECAY) * gg * gg
        gsq = gg * gg + f32(1e-30)
        r = jax.lax.rsqrt(rms + f32(1e-8))
        f = [gg, jnp.clip(gg, f32(-0.1), f32(0.1)), p[..., None], m, rms, m * r, r]
        new = {"m": m, "rms": rms}
        if p.ndim == 2:
            d1, d0 = fac_dims(p.shape)
            vr = bm * st["vr"] + (1 - bm) * jnp.mean(gsq, axis=d0)
            vc = bm * st["vc"] + (1 - bm) * jnp.mean(gsq, axis=d1)
            rf = jnp.expand_dims(safe_rsqrt(vr / (jnp.mean(vr, axis=0, keepdims=True) + f32(1e-9))), d0)
            cf = jnp.expand_dims(safe_rsqrt(vc), d1)
            row = jnp.broadcast_to(jnp.expand_dims(vr, d0), p.shape + (3,))
            col = jnp.broadcast_to(jnp.expand_dims(vc, d1), p.shape + (3,))
            f += [gg * rf * cf, gg * r, row, col, jax.lax.rsqrt(row + f32(1e-8)), jax.lax.rsqrt(col + f32(1e-8)),
                  m * rf * cf]
            new.update(vr=vr, vc=vc)
            axes = (0, 1)
        else:  # rank 1 through the MLP: groups 0-8 only (15 channels, rows 0-14 of W0)
            v = bm * st["v"] + (1 - bm) * gsq
            f += [gg * safe_rsqrt(v + f32(1e-9)), gg * r]
            new["v"] = v
            axes = (0,)
        x = jnp.concatenate([jnp.broadcast_to(t, p.shape + (t.shape[-1],)) for t in f], axis=-1)
        u = mlp(normalize(x, axes), ws, bs)
        if p.ndim == 2:
            u = newton_schulz(u)
        u = u * jax.lax.rsqrt(jnp.mean(u * u, axis=axes, keepdims=True) + f32(1e-9))
        return p - f32(STEP_MULT) * u, new

    def loss_fn(params, x, y):
        w0, b0, w1, b1 = params
        logits = jax.nn.relu(x @ w0 + b0) @ w1 + b1
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])

    hi = f32(1.5 * np.log(10.0))  # the task normalizer of 10 classes (§1.5)

    def particle_step(params, st, theta, X, Y, i):
        """One inner step of one particle: its batch rows i, loss and gradient at the pre-update parameters,
        celo2_meta on each tensor with this particle's θ."""
        loss, grads = jax.value_and_grad(loss_fn)(params, X[i], Y[i])
        ws, bs = theta[:3], theta[3:]
        out = [update(n, p, g, s, ws, bs) for n, p, g, s in zip(NAMES, params, grads, st)]
        nl = jnp.where(jnp.isfinite(loss), jnp.clip(loss, f32(0), hi), hi)
        return [o[0] for o in out], [o[1] for o in out], nl, loss, grads

    vstep = jax.vmap(particle_step, in_axes=(0, 0, 0, None, None, 0))

    def init_state(params):
        return jax.vmap(lambda ps: [init_one(n, p) for n, p in zip(NAMES, ps)])(params)

    def scan(params, st, theta, X, Y, idx, trace=False):
        """idx [S, 16, batch]: S steps of all particles in one scan; carry: params, state, summed normalized
        losses [16]. trace: also each step's losses, gradients and pre-update parameters of every particle."""
        def body(carry, i):
            p, s, acc = carry
            p2, s2, nl, loss, g = vstep(p, s, theta, X, Y, i)
            ys = (loss, g, p) if trace else None
            return (p2, s2, acc + nl), ys

        return jax.lax.scan(body, (params, st, jnp.zeros(2 * PAIRS, f32)), idx)

    return init_state, scan


def setup(a, rng):
    """Data, θ per particle, initial parameters and state, the jitted scan, and a batch-index drawer."""
    import jax
    import jax.numpy as jnp

    from fmnist import fashion

    X, Y, src = fashion(8)
    data = (jax.device_put(X), jax.device_put(Y.astype(np.int32)))
    ws, bs, th = load_theta(a.data)
    eps = draw_eps(rng)
    theta = [jnp.asarray(t[None] + e) for t, e in zip(ws + bs, eps)]
    params0 = init_params(rng)
    params = [jnp.asarray(p) for p in params0]
    init_state, scan = build(a.bias)
    st = init_state(params)
    streams = [[None, 0] for _ in range(PAIRS)]

    def draw(k):  # [k, 16, batch]: a shuffled-epoch stream per pair, shared by its two particles
        per_pair = np.stack([epoch_batches(rng, len(X), BATCH, k, s) for s in streams], axis=1)
        return jax.device_put(np.repeat(per_pair, 2, axis=1))

    return data, th, eps, theta, params0, params, st, scan, draw, src


def bench(a):
    import jax

    rng = np.random.default_rng(1)
    data, _, _, theta, _, params, st, scan, draw, src = setup(a, rng)
    run = jax.jit(lambda p, s, th, X, Y, idx: scan(p, s, th, X, Y, idx)[0])
    carry = (params, st)

    def timed(fn, idx):
        nonlocal carry
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        p, s, acc = fn(*carry, theta, *data, idx)
        acc = np.asarray(acc)  # waits for the scan
        dt = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if not np.all(np.isfinite(acc)):
            raise RuntimeError("a particle's loss is not finite")
        carry = (p, s)
        return dt, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)

    n0 = 200  # probe: compile and measure the pace on a short scan, then compile the timed length
    c, _ = timed(run, draw(n0))
    probe_s, _ = timed(run, draw(n0))
    steps = a.steps if a.steps > 0 else max(n0, int(a.target_s / a.reps * n0 / probe_s))
    t0 = time.perf_counter()
    idx = draw(steps)
    fn = run.lower(*carry, theta, *data, idx).compile()
    c += time.perf_counter() - t0
    timed(fn, idx)  # untimed first run of the compiled loop
    rates, cpu, wall, busy = [], 0.0, 0.0, 0
    for _ in range(a.reps):
        idx = draw(steps)
        tk0 = thread_ticks()
        dt, ct = timed(fn, idx)
        d = [v - tk0.get(tid, 0) for tid, v in thread_ticks().items()]
        busy = max(busy, sum(1 for v in d if v > 0 and v >= 0.1 * sum(d)))
        rates.append(2 * PAIRS * steps / dt)
        cpu, wall = cpu + ct, wall + dt
    return rates, steps, c, cpu / wall, busy, f"jax={jax.__version__}", src


def ref_loss_grad(params, x, y):
    """NumPy (float64) loss and gradients of the MLP 64-32-10 with mean cross-entropy."""
    w0, b0, w1, b1 = (np.asarray(t, np.float64) for t in params)
    h = x @ w0 + b0
    a = np.maximum(h, 0)
    z = a @ w1 + b1
    zm = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(zm).sum(axis=1))
    loss = np.mean(lse - zm[np.arange(len(y)), y])
    dz = np.exp(zm - lse[:, None])
    dz[np.arange(len(y)), y] -= 1
    dz /= len(y)
    da = dz @ w1.T
    dh = da * (h > 0)
    return loss, [x.T @ dh, dh.sum(0), a.T @ dz, dz.sum(0)]


CHECKED = (0, 1, 2 * PAIRS - 1)  # --check: the first pair (θ + ε_0, θ - ε_0) and the last particle


def check(a):
    import jax

    T = a.steps if a.steps > 0 else 20
    rng = np.random.default_rng(1)
    data, th, eps, theta, params0, params, st, scan, draw, _ = setup(a, rng)
    idx = draw(T)
    run = jax.jit(lambda p, s, th_, X, Y, i: scan(p, s, th_, X, Y, i, trace=True))
    (pT, _, _), (losses, grads, pre) = run(params, st, theta, *data, idx)
    losses, grads, pre = np.asarray(losses), [np.asarray(g) for g in grads], [np.asarray(p) for p in pre]
    pT = [np.asarray(p) for p in pT]
    X, Y = (np.asarray(d) for d in data)
    idx = np.asarray(idx)
    ok, worst = True, [[0.0, 0.0] for _ in range(4)]
    gworst = 0.0
    for q in CHECKED:
        # particle q runs with θ + ε_q (its eps row: + for even particles, - for odd ones)
        eq = [e[q] for e in eps]
        ref = celo_ref.Celo2(perturb_theta(th, (eq[:3], eq[3:])), mode="meta", orthogonalize=True,
                             route_1d="adam" if a.bias == "adam" else None, step_mult=STEP_MULT, mult_1d=MULT_1D)
        rst = [ref.init(params0[j][q], NAMES[j]) for j in range(4)]
        pr = [params0[j][q].astype(np.float32) for j in range(4)]
        for t in range(T):
            # the step's loss and gradients at the scan's parameters, against NumPy
            rl, rg = ref_loss_grad([pre[j][t, q] for j in range(4)], X[idx[t, q]].astype(np.float64), Y[idx[t, q]])
            for j in range(4):
                gerr = float(np.max(np.abs(grads[j][t, q] - rg[j]))) / max(float(np.max(np.abs(rg[j]))), 1e-30)
                gworst = max(gworst, gerr)
                if gerr > GRAD_TOL:
                    ok = False
                    print(f"jax_celo2: particle {q} step {t + 1} {NAMES[j]}: gradient off by {gerr:.3g} of its "
                          "largest entry")
            if abs(losses[t, q] - rl) > GRAD_TOL * abs(rl):
                ok = False
                print(f"jax_celo2: particle {q} step {t + 1}: loss {losses[t, q]:.7g}, NumPy {rl:.7g}")
            # the reference's free-running step on the same gradients, against the scan's next parameters
            for j in range(4):
                pr[j], rst[j] = ref.step(pr[j], grads[j][t, q], rst[j])
                nxt = pre[j][t + 1, q] if t + 1 < T else pT[j][q]
                r = pr[j].astype(np.float64)
                err = float(np.max(np.abs(nxt - r)))
                upd = float(np.max(np.abs(r - params0[j][q])))
                ulp = float(np.spacing(np.float32(np.max(np.abs(r)))))
                if err > max(REL_TOL * upd, ULP_TOL * ulp) or not np.isfinite(err):
                    ok = False
                    print(f"jax_celo2: particle {q} step {t + 1} {NAMES[j]}: max|jax-ref| {err:.3g} over the "
                          f"bound (update {upd:.3g}, ulp {ulp:.3g})")
                worst[j] = [max(worst[j][0], err / upd if upd else 0.0), max(worst[j][1], err / ulp)]
    for j in range(4):
        route = "Adam" if a.bias == "adam" and NAMES[j].endswith("/b") else "MLP"
        print(f"check {NAMES[j]} {'x'.join(map(str, params0[j].shape[1:]))} ({route}): particles "
              f"{', '.join(map(str, CHECKED))}, {T} steps, max|jax-ref| {worst[j][0]:.3g} of the update = "
              f"{worst[j][1]:.2f} ulp of |p|")
    print(f"check gradients and loss vs NumPy: worst {gworst:.3g} of the largest gradient entry")
    print(f"check worst: {max(w[0] for w in worst):.3g} of the update, {max(w[1] for w in worst):.2f} ulp of |p|; "
          f"gradients {gworst:.3g}")
    print("check=ok" if ok else "check=FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="particles 0, 1, 15 against tests/reference/celo_ref.py")
    ap.add_argument("--cpus", type=int, default=0, help="CPUs for XLA (default: all the process may use)")
    ap.add_argument("--target-s", type=float, default=1.5, help="timed seconds in all (default 1.5)")
    ap.add_argument("--reps", type=int, default=3, help="timed scans; the median counts (default 3)")
    ap.add_argument("--steps", type=int, default=0, help="steps per timed scan (default: from --target-s); "
                    "--check: steps checked (default 20)")
    ap.add_argument("--bias", choices=("adam", "mlp"), default="adam",
                    help="the biases: Adam (the recipe's /b$, default) or the MLP's rank-1 path")
    ap.add_argument("--data", default=DATA, help="the shared Celo data (repo-relative; default %(default)s)")
    a = ap.parse_args()
    how = set_cpus(a.cpus)
    if a.check:
        return check(a)
    nt = a.cpus or len(os.sched_getaffinity(0))
    tag = f"jax celo2_meta cpus={nt}"
    try:
        rates, steps, c, util, busy, ver, src = bench(a)
    except Exception as e:  # missing jax, θ or a run that failed: say why, exit 0 (n/a in the report)
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        print(f"{tag} error={type(e).__name__}: {msg}", flush=True)
        return 0
    print(f"{tag} particle_steps_per_s={statistics.median(rates):.6g} min={min(rates):.6g} max={max(rates):.6g} "
          f"particles={2 * PAIRS} steps={steps} reps={len(rates)} compile_s={c:.2f} cpu_util={util:.2f} "
          f"busy_threads={busy} bias={a.bias} {ver} data={src} cpus_set=\"{how}\"", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
