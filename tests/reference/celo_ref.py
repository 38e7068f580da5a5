#!/usr/bin/env python3
"""Independent NumPy reference of the learned optimizers Celo, Celo2, Celo2-base and small_fc_lopt.

Written from ../shared/research/learned-optimizers.md (§1.1-1.4 Celo, §2.1-2.2 Celo2, §3.2 small_fc_lopt, §6
implementation notes) only, not from the authors' code, so that it can catch mistakes in either (small_fc_lopt: from
§3.2 and the formulas of the authors' adafac_mlp_lopt.py as the rule's header lists them). NumPy only; float32 by
default (as the authors' JAX code runs), float64 on request (dtype=np.float64) to separate formula errors from
rounding.

    import celo_ref as R
    theta = R.load_msgpack("../shared/data/celo/theta.state")          # {"ff_mod_stack/~/w0__0": array, ...}
    opt = R.Celo(theta, num_steps=20)                                  # one tensor, one LSTM
    st = opt.init(p0)
    for t in range(20):
        p, st = opt.step(p, grads[t], st, loss=losses[t])

    opt2 = R.Celo2(R.load_msgpack(".../celo2/theta.msgpack"), mode="meta", orthogonalize=True, route_1d="adam")
    st = opt2.init(p0, name="t1_64x33/w")

    opt3 = R.SmallFcLOpt(R.load_safetensors("tests/reference/celo_cases/theta/small_fc_lopt_seed7.safetensors"))
    st = opt3.init(p0)                                                 # then opt3.step(p, g, st), as Celo2

Checked against every golden trajectory of the authors' code by tests/reference/compare_golden.py: every variant
agrees within float32 rounding, and no formula of the notes disagreed with the golden data. Where the notes leave
a choice, this file takes the one below; the golden data confirms each where it says so:
- Feature constants (the ±0.1 clip, the epsilons) are float32 numbers, as in JAX; comparing a float64 run with
  the float32 one therefore shows a ~1e-5 relative difference on channel 1 that is not an error.
- The scheduler's first layer `linear` is computed and discarded by the authors' code (§1.4); it is skipped here.
  Confirmed: lr_mult agrees to 4.7e-6 relative (the golden data's own float32 rounding: 4.5e-6).
- Factored axes: stable argsort of the sizes (§1.1). The golden data confirms the 2-D square tie (16, 16); the
  rank-3 tie rule of the notes is not covered by it (tests/reference/gen_celo_cases.py uses it on such shapes).
- The Celo2 MLP path uses only output 0 (§2.2), and Celo's step multiplies in the code's order (§1.3).
- small_fc_lopt (AdafacMLPLOpt, §3.2) has no golden data: only the float64 run of this file and the C rule check it.
"""
import json
import struct

import numpy as np

# ---------------------------------------------------------------- θ files: flax msgpack (pure Python)


def _mp_read(buf, i):
    """One msgpack object at buf[i:]; returns (object, next index). ext type 1 (flax ndarray) and 3 (numpy scalar)
    become numpy arrays; other exts are returned as (type, bytes)."""
    c = buf[i]
    i += 1
    if c <= 0x7F:
        return c, i
    if c >= 0xE0:
        return c - 256, i
    if 0x80 <= c <= 0x8F:
        return _mp_map(buf, i, c & 0x0F)
    if 0x90 <= c <= 0x9F:
        return _mp_arr(buf, i, c & 0x0F)
    if 0xA0 <= c <= 0xBF:
        n = c & 0x1F
        return buf[i : i + n].decode(), i + n
    if c == 0xC0:
        return None, i
    if c in (0xC2, 0xC3):
        return c == 0xC3, i
    if c in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
        nb = 1 << (c - 0xC4)
        n = int.from_bytes(buf[i : i + nb], "big")
        i += nb
        return bytes(buf[i : i + n]), i + n
    if c in (0xC7, 0xC8, 0xC9):  # ext 8/16/32
        nb = 1 << (c - 0xC7)
        n = int.from_bytes(buf[i : i + nb], "big")
        i += nb
        return _mp_ext(buf[i], bytes(buf[i + 1 : i + 1 + n])), i + 1 + n
    if c in (0xCA, 0xCB):
        nb = 4 if c == 0xCA else 8
        return struct.unpack(">f" if nb == 4 else ">d", buf[i : i + nb])[0], i + nb
    if 0xCC <= c <= 0xCF:
        nb = 1 << (c - 0xCC)
        return int.from_bytes(buf[i : i + nb], "big"), i + nb
    if 0xD0 <= c <= 0xD3:
        nb = 1 << (c - 0xD0)
        return int.from_bytes(buf[i : i + nb], "big", signed=True), i + nb
    if 0xD4 <= c <= 0xD8:  # fixext 1..16
        n = 1 << (c - 0xD4)
        return _mp_ext(buf[i], bytes(buf[i + 1 : i + 1 + n])), i + 1 + n
    if c in (0xD9, 0xDA, 0xDB):
        nb = 1 << (c - 0xD9)
        n = int.from_bytes(buf[i : i + nb], "big")
        i += nb
        return buf[i : i + n].decode(), i + n
    if c in (0xDC, 0xDD):
        nb = 2 if c == 0xDC else 4
        return _mp_arr(buf, i + nb, int.from_bytes(buf[i : i + nb], "big"))
    if c in (0xDE, 0xDF):
        nb = 2 if c == 0xDE else 4
        return _mp_map(buf, i + nb, int.from_bytes(buf[i : i + nb], "big"))
    raise ValueError("invalid msgpack byte 0x%02x at %d" % (c, i - 1))


def _mp_map(buf, i, n):
    d = {}
    for _ in range(n):
        k, i = _mp_read(buf, i)
        d[k], i = _mp_read(buf, i)
    return d, i


def _mp_arr(buf, i, n):
    a = []
    for _ in range(n):
        x, i = _mp_read(buf, i)
        a.append(x)
    return a, i


def _mp_ext(typ, payload):
    if typ in (1, 3):  # flax ndarray, and numpy scalar (packed from np.asarray: shape []): [shape, dtype, bytes]
        (shape, dtype, data), _ = _mp_read(payload, 0)
        return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
    return (typ, payload)


def load_msgpack(path):
    """A flax msgpack θ file flattened to {"a/b/c": array}, keys joined with '/' in file order (docs/theta.md)."""
    buf = open(path, "rb").read()
    tree, end = _mp_read(buf, 0)
    assert end == len(buf), "%s: trailing bytes" % path
    out = {}

    def walk(d, prefix):
        for k, v in d.items():
            name = prefix + "/" + k if prefix else k
            if isinstance(v, dict):
                walk(v, name)
            else:
                out[name] = v

    walk(tree, "")
    return out


def load_safetensors(path):
    """A safetensors file (F32 tensors only, as celo writes them) as {name: array}, in file order."""
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    head = json.loads(buf[8 : 8 + n].decode())
    out = {}
    for name, d in head.items():
        if name == "__metadata__":
            continue
        assert d["dtype"] == "F32", (path, name, d["dtype"])
        a, b = d["data_offsets"]
        out[name] = np.frombuffer(buf[8 + n + a : 8 + n + b], "<f4").reshape(d["shape"]).copy()
    return out


def save_safetensors(path, tensors):
    """{name: array} as a safetensors file of F32 tensors, in the dict's order; the header is padded with spaces to
    a multiple of 8 bytes."""
    head, off, data = {}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, "<f4").tobytes()
        head[name] = {"dtype": "F32", "shape": list(np.shape(a)), "data_offsets": [off, off + len(b)]}
        off += len(b)
        data.append(b)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(data))


# ---------------------------------------------------------------- shared pieces (§1.1, §1.2)

MOM_DECAYS = (0.9, 0.99, 0.999)
FAC_DECAYS = (0.9, 0.99, 0.999)


def factored_dims(shape):
    """(d1, d0): d0 = the largest axis, d1 = the second largest; ties broken by axis index (a stable argsort of the
    sizes, §1.1). None for rank < 2 (scalars are shape (1,))."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda a: (shape[a], a))
    return order[-2], order[-1]


def safe_rsqrt(x):
    return 1 / np.sqrt(np.maximum(x, x.dtype.type(1e-9)))


def rsqrt(x):
    return 1 / np.sqrt(x)


class Accumulators:
    """m (3 momenta), rms (1), and the Adafactor-style factored second moments (3 decays) of §1.1, kept with the
    decay axis last. update() returns what the features need, computed from the NEW values."""

    def __init__(self, shape, rms_decay, dtype, mom_decays=MOM_DECAYS, fac_decays=FAC_DECAYS):
        self.shape, self.dt = tuple(shape), dtype
        self.bm = np.array(mom_decays, dtype)
        self.bf = np.array(fac_decays, dtype)
        self.br = dtype(rms_decay)
        self.m = np.zeros(self.shape + (3,), dtype)
        self.rms = np.zeros(self.shape + (1,), dtype)
        self.dims = factored_dims(self.shape)
        if self.dims:
            d1, d0 = self.dims
            self.v_row = np.zeros(tuple(s for a, s in enumerate(self.shape) if a != d0) + (3,), dtype)
            self.v_col = np.zeros(tuple(s for a, s in enumerate(self.shape) if a != d1) + (3,), dtype)
        else:
            self.v = np.zeros(self.shape + (3,), dtype)

    def update(self, g):
        one = self.dt(1)
        gg = g[..., None]
        self.m = self.bm * self.m + (one - self.bm) * gg
        self.rms = self.br * self.rms + (one - self.br) * gg * gg  # plain g², no 1e-30
        gsq = (g * g + self.dt(1e-30))[..., None]
        out = {}
        if self.dims:
            d1, d0 = self.dims
            self.v_row = self.bf * self.v_row + (one - self.bf) * np.mean(gsq, axis=d0)
            self.v_col = self.bf * self.v_col + (one - self.bf) * np.mean(gsq, axis=d1)
            # "mean over its d1 axis": d1's position once d0 is removed; the decay axis stays last
            rd1 = d1 - 1 if d1 > d0 else d1
            row_mean = np.mean(self.v_row, axis=rd1, keepdims=True)
            row_factor = safe_rsqrt(self.v_row / (row_mean + self.dt(1e-9)))
            col_factor = safe_rsqrt(self.v_col)
            rf = np.expand_dims(row_factor, d0)  # broadcast along d0
            cf = np.expand_dims(col_factor, d1)  # broadcast along d1
            out["fac_g"] = gg * rf * cf
            out["row"] = np.broadcast_to(np.expand_dims(self.v_row, d0), self.shape + (3,))
            out["col"] = np.broadcast_to(np.expand_dims(self.v_col, d1), self.shape + (3,))
            out["fac_mom_mult"] = self.m * rf * cf
        else:
            self.v = self.bf * self.v + (one - self.bf) * gsq
            out["fac_g"] = gg * safe_rsqrt(self.v + self.dt(1e-9))
            out["row"] = out["col"] = self.v
            out["fac_mom_mult"] = self.m * self.v ** self.dt(-0.5)  # no epsilon (§1.2)
        return out


def features(g, p, acc, a, e1, groups):
    """The 30 input channels of §1.2 in checkpoint order (groups 0-13), or only groups 0-8 (15 channels) when
    groups == 9 (Celo2-base on rank < 2)."""
    dt = acc.dt
    gg, pp = g[..., None], p[..., None]
    r = rsqrt(acc.rms + dt(e1))
    f = [
        gg,
        np.clip(gg, dt(-0.1), dt(0.1)),
        pp,
        acc.m,
        acc.rms,
        acc.m * r,
        r,
        a["fac_g"],
        gg * r,
    ]
    if groups > 9:
        f += [
            a["row"],
            a["col"],
            rsqrt(a["row"] + dt(1e-8)),
            rsqrt(a["col"] + dt(1e-8)),
            a["fac_mom_mult"],
        ]
    return np.concatenate([np.broadcast_to(x, g.shape + (x.shape[-1],)) for x in f], axis=-1)


def normalize(x, axes, eps):
    """Each channel divided by its RMS over `axes` of the tensor, eps inside the root."""
    return x * rsqrt(np.mean(x * x, axis=axes, keepdims=True) + x.dtype.type(eps))


def mlp(x, ws, bs):
    """ReLU MLP with (in, out) weights; the last layer is linear."""
    h = x
    for k, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        if k < len(ws) - 1:
            h = np.maximum(h, h.dtype.type(0))
    return h


def mlp_weights(theta, dtype, leading_axis):
    """(W0 = w0__0..w0__13 stacked along the input axis, in index order, not string order), w1, w2 and biases."""
    take = (lambda a: a[0]) if leading_axis else (lambda a: a)
    pre = "ff_mod_stack/~/"
    w0 = np.concatenate([take(theta[pre + "w0__%d" % i]) for i in range(14)], axis=0).astype(dtype)
    ws = [w0, take(theta[pre + "w1"]).astype(dtype), take(theta[pre + "w2"]).astype(dtype)]
    bs = [take(theta[pre + "b%d" % i]).astype(dtype).reshape(-1) for i in range(3)]
    return ws, bs


# ---------------------------------------------------------------- Celo (§1)


class LossBuffer:
    """Celo's BufferLossAccumulators (§1.4)."""

    def __init__(self, num_steps, dtype):
        self.dt = dtype
        halflife = np.logspace(1, np.log10(num_steps), 10).astype(dtype)
        self.decay = np.exp(dtype(-1) / halflife)
        self.means = np.zeros(10, dtype)
        self.rmin = np.full(10, 1e12, dtype)
        self.it = 0

    def update(self, loss):
        dt, one = self.dt, self.dt(1)
        L = dt(loss)
        cor = self.means / (one - self.decay ** dt(self.it + 1))
        amax = L if self.it == 0 else np.max(cor)
        L = np.minimum(dt(2) * np.abs(amax), L)
        self.means = self.means * self.decay + L * (one - self.decay)
        cor = self.means / (one - self.decay ** dt(self.it + 1))
        self.rmin = np.minimum(self.rmin, cor)
        self.it += 1

    def features(self):
        dt, one = self.dt, self.dt(1)
        cor = self.means / (one - self.decay ** dt(self.it))
        f = (cor[:-1] - self.rmin[:-1]) / np.maximum(dt(1e-8), cor[1:] - self.rmin[:-1]) - one
        f = np.clip(f, dt(-1), dt(1))
        return f * dt(0) if self.it <= 2 else f


class Scheduler:
    """Celo's learned LSTM step-size scheduler (§1.4): one scalar LSTM, once per step."""

    TAUS = (0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1)

    def __init__(self, theta, num_steps, dtype):
        self.dt, self.T = dtype, num_steps
        r = "rnn_params/"
        g = lambda k: theta[k].astype(dtype)  # noqa: E731
        self.w1, self.b1 = g(r + "linear_1/w"), g(r + "linear_1/b")
        self.w2, self.b2 = g(r + "linear_2/w"), g(r + "linear_2/b")
        self.wl, self.bl = g(r + "rnn/linear/w"), g(r + "rnn/linear/b")
        self.ws, self.bs = g(r + "step_size/w"), g(r + "step_size/b")
        self.h = g("lstm_init_state/hidden").reshape(-1)  # learned, non-zero initial state
        self.c = g("lstm_init_state/cell").reshape(-1)
        self.buf = LossBuffer(num_steps, dtype)

    @staticmethod
    def _sig(x):
        return 1 / (1 + np.exp(-x))

    def step(self, t, loss):
        """lr_mult for step index t (0-based), after feeding this step's loss."""
        dt = self.dt
        self.buf.update(loss)
        frac = np.tanh(dt(10) * (dt(t) / dt(self.T) - np.array(self.TAUS, dt)))
        z = np.concatenate([frac, self.buf.features()])  # alphabetical: fraction_left, loss_features
        v = np.maximum(z @ self.w1 + self.b1, dt(0))  # `linear` (the first layer) is computed and unused: skipped
        x = z @ self.w2 + self.b2 + v
        gates = np.concatenate([x, self.h]) @ self.wl + self.bl
        i, gg, f, o = np.split(gates, 4)  # haiku order i, g, f, o
        self.c = self._sig(f + dt(1)) * self.c + self._sig(i) * np.tanh(gg)
        self.h = self._sig(o) * np.tanh(self.c)
        return dt(0.1) * np.exp(self.h @ self.ws + self.bs)[0]


class Celo:
    """Celo (factory 'celo', train_phase 2) for one tensor; train_phase=1 leaves out lr_mult. step_mult is the
    factory's 1e-3 (the golden `celo_bigstep` case sets 0.1)."""

    def __init__(self, theta, num_steps, train_phase=2, step_mult=1e-3, dtype=np.float32):
        self.dt, self.phase, self.step_mult = dtype, train_phase, step_mult
        self.ws, self.bs = mlp_weights(theta, dtype, leading_axis=True)
        self.theta, self.T = theta, num_steps
        self.lr_mults = []

    def init(self, p):
        return {"acc": Accumulators(p.shape, 0.999, self.dt), "sched": Scheduler(self.theta, self.T, self.dt), "t": 0}

    def step(self, p, grad, st, loss):
        dt = self.dt
        p = p.astype(dt)
        lr_mult = st["sched"].step(st["t"], loss)  # loss buffer, then the LSTM (before the accumulators)
        self.lr_mults.append(lr_mult)
        g = np.clip(grad.astype(dt), dt(-1000), dt(1000))
        acc = st["acc"]
        a = acc.update(g)
        x = normalize(features(g, p, acc, a, 1e-6, 14), tuple(range(p.ndim)), 1e-5)
        out = mlp(x, self.ws, self.bs)
        d, m = out[..., 0], out[..., 1]
        param_scale = np.sqrt(np.mean(p * p) + dt(1e-9))
        step = d * (param_scale * np.exp(dt(1e-3) * m)) * dt(self.step_mult)
        if self.phase == 2:
            step = lr_mult * step
        st["t"] += 1
        return p - step, st


# ---------------------------------------------------------------- Celo2 and Celo2-base (§2)


def newton_schulz(x, steps=5, coeffs=(3.4445, -4.7750, 2.0315), eps=1e-8):
    """Orthogonalization over the last two axes, leading axes batched, one Frobenius norm per matrix (§2.2)."""
    dt = x.dtype.type
    a, b, c = (dt(k) for k in coeffs)
    tr = x.shape[-2] > x.shape[-1]
    if tr:
        x = np.swapaxes(x, -1, -2)
    x = x / (np.sqrt(np.sum(x * x, axis=(-2, -1), keepdims=True)) + dt(eps))
    for _ in range(steps):
        A = x @ np.swapaxes(x, -1, -2)
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return np.swapaxes(x, -1, -2) if tr else x


class Celo2:
    """Celo2 / Celo2-base for a set of named tensors.

    mode "meta": the meta-training wrappers (factory 'celo2' / 'celo2base'): p -= step_mult * u, wd 0; with
        route_1d="adam", names matching /b$ go to Adam without bias correction on unclipped grads,
        lr = step_mult * mult_1d, b2 0.95, eps 1e-8 inside the root.
    mode "deploy": the amoudgl/celo2 README recipe: p -= lr * (u + wd * p); with route_1d="adamw", tensors of
        rank <= 1 (or with 'embed' in the name) go to bias-corrected optax.adamw(mult_1d * lr, 0.9, 0.95, 1e-8, wd).
    orthogonalize: Newton-Schulz on the MLP output of rank >= 2 tensors (Celo2); False for Celo2-base.
    """

    def __init__(self, theta, mode="meta", orthogonalize=True, route_1d=None, step_mult=1e-3, lr=1e-3, wd=0.0,
                 mult_1d=20.0, dtype=np.float32):
        self.dt, self.mode, self.ortho, self.route = dtype, mode, orthogonalize, route_1d
        self.step_mult, self.lr, self.wd, self.mult_1d = step_mult, lr, wd, mult_1d
        self.ws, self.bs = mlp_weights(theta, dtype, leading_axis=False)

    def _routed(self, name, shape):
        if self.route == "adam":
            return name.endswith("/b")  # the factory's regex /b$ on the flattened path
        if self.route == "adamw":
            return len(shape) <= 1 or "embed" in name
        return False

    def init(self, p, name=""):
        dt = self.dt
        if self._routed(name, p.shape):
            return {"adam": True, "m": np.zeros(p.shape, dt), "v": np.zeros(p.shape, dt), "t": 0}
        return {"adam": False, "acc": Accumulators(p.shape, 0.95, dt), "t": 0}

    def step(self, p, grad, st):
        dt = self.dt
        p, grad = p.astype(dt), grad.astype(dt)
        st["t"] += 1
        if st["adam"]:
            return self._adam(p, grad, st), st
        g = np.clip(grad, dt(-1000), dt(1000))
        acc = st["acc"]
        a = acc.update(g)
        axes = (p.ndim - 2, p.ndim - 1) if p.ndim >= 2 else (0,)  # last two axes (axis 0 for 1-D)
        groups = 14 if p.ndim >= 2 else 9  # rank < 2: only groups 0-8 (15 inputs, rows 0-14 of W0)
        x = normalize(features(g, p, acc, a, 1e-8, groups), axes, 1e-9)
        ws = [self.ws[0][: x.shape[-1]]] + self.ws[1:]
        u = mlp(x, ws, self.bs)[..., 0]  # direction only: exp(0 * m) = 1
        if self.ortho and p.ndim >= 2:
            u = newton_schulz(u)
        u = u * rsqrt(np.mean(u * u, axis=axes, keepdims=True) + dt(1e-9))
        if self.mode == "meta":
            return p - dt(self.step_mult) * u, st
        return p - dt(self.lr) * (u + dt(self.wd) * p), st

    def _adam(self, p, g, st):
        dt, one = self.dt, self.dt(1)
        b1, b2 = dt(0.9), dt(0.95)
        st["m"] = b1 * st["m"] + (one - b1) * g
        st["v"] = b2 * st["v"] + (one - b2) * g * g
        if self.mode == "meta":
            lr = dt(self.step_mult * self.mult_1d)
            return p - lr * (st["m"] * rsqrt(st["v"] + dt(1e-8))) - dt(self.wd) * lr * p
        t = st["t"]
        mhat = st["m"] / (one - b1 ** dt(t))
        vhat = st["v"] / (one - b2 ** dt(t))
        lr = dt(self.mult_1d * self.lr)
        return p - lr * (mhat / (np.sqrt(vhat) + dt(1e-8)) + dt(self.wd) * p)


def celo2_variant(theta, config, dtype=np.float32):
    """The Celo2 object for a golden variant's config.json (../shared/data/celo/golden/README.md)."""
    if "construction" in config:  # deploy: the README's optax recipe
        return Celo2(theta, mode="deploy", orthogonalize=config["orthogonalize"],
                     route_1d="adamw" if config["orthogonalize"] else None, lr=config["lr"],
                     wd=config["weight_decay"], dtype=dtype)
    base = "celo2base" in config["factory"]
    return Celo2(theta, mode="meta", orthogonalize=not base, route_1d=None if base else "adam",
                 step_mult=config["step_mult"], wd=config["weight_decay"], mult_1d=config.get("mult_1d", 20.0),
                 dtype=dtype)


# ---------------------------------------------------------------- small_fc_lopt: AdafacMLPLOpt (§3.2)

TIMESCALES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000)


def learned_decay(d0, theta, dtype):
    """decay = 1 - (1 - d0) exp(10 θ) (§3.2), computed as the authors' code does, in the working precision:
    through the parameter p(d) = log(1 - d) / 10, then d = 1 - exp(10 (p(d0) + θ))."""
    one, ten = dtype(1), dtype(10)
    return one - np.exp((np.log(one - np.array(d0, dtype)) / ten + theta.astype(dtype)) * ten)


class SmallFcLOpt:
    """AdafacMLPLOpt with its defaults (hidden 4 x 2 layers, exp_mult = step_mult = 1e-3) for one tensor.

    θ: nn/~/w0 [39, 4], b0 [4], w1 [4, 4], b1 [4], w2 [4, 2], b2 [2], momentum_decays [3], rms_decays [1],
    adafactor_decays [3]. Per step: the accumulators of §1.1 with the learned decays (the RMS and Adafactor decays
    clipped to [0, 1] as the accumulators clip them; the momentum decays not) on the raw gradient (no clip); 28
    features per element (§3.2 order), each normalized over the whole tensor (eps 1e-5 inside the root); 11 time
    features tanh(i / tau - 1) of the 0-based step index i, not normalized; the MLP 39 -> 4 -> 4 -> 2 (ReLU);
    p -= d * exp(m * exp_mult) * step_mult."""

    def __init__(self, theta, step_mult=1e-3, exp_mult=1e-3, dtype=np.float32):
        self.dt, self.step_mult, self.exp_mult = dtype, step_mult, exp_mult
        pre = "nn/~/"
        self.ws = [theta[pre + "w%d" % i].astype(dtype) for i in range(3)]
        self.bs = [theta[pre + "b%d" % i].astype(dtype) for i in range(3)]
        assert self.ws[0].shape == (39, 4) and self.ws[2].shape == (4, 2)
        zero, one = dtype(0), dtype(1)
        self.bm = learned_decay(MOM_DECAYS, theta["momentum_decays"], dtype)
        self.br = np.clip(learned_decay((0.999,), theta["rms_decays"], dtype), zero, one)[0]
        self.bf = np.clip(learned_decay(FAC_DECAYS, theta["adafactor_decays"], dtype), zero, one)

    def init(self, p):
        shape = p.shape if p.ndim else (1,)  # a scalar is shape (1,)
        return {"acc": Accumulators(shape, self.br, self.dt, self.bm, self.bf), "it": 0}

    def step(self, p, grad, st):
        dt = self.dt
        shape = p.shape
        p, g = p.astype(dt).reshape(st["acc"].shape), grad.astype(dt).reshape(st["acc"].shape)
        acc = st["acc"]
        a = acc.update(g)  # m, rms, v_row/v_col (or v) and fac_g from the new values
        r = rsqrt(acc.rms + dt(1e-6))
        gg, pp = g[..., None], p[..., None]
        if acc.dims:
            fac_mom = a["fac_mom_mult"]  # m * row_factor * col_factor
        else:
            fac_mom = acc.m * (acc.v + dt(1e-6)) ** dt(-0.5)  # here with an epsilon (unlike Celo's)
        f = [gg, pp, acc.m, acc.rms, acc.m * r, r, a["fac_g"], a["row"], a["col"], rsqrt(a["row"] + dt(1e-8)),
             rsqrt(a["col"] + dt(1e-8)), fac_mom]
        x = np.concatenate([np.broadcast_to(v, g.shape + (v.shape[-1],)) for v in f], axis=-1)
        assert x.shape[-1] == 28
        x = normalize(x, tuple(range(g.ndim)), 1e-5)
        it = dt(st["it"])  # the step index before this step, from 0
        tf = np.tanh(it / np.array(TIMESCALES, dt) - dt(1))
        x = np.concatenate([x, np.broadcast_to(tf, g.shape + (11,))], axis=-1)
        out = mlp(x, self.ws, self.bs)
        d, m = out[..., 0], out[..., 1]
        step = d * np.exp(m * dt(self.exp_mult)) * dt(self.step_mult)
        st["it"] += 1
        return (p - step).reshape(shape), st
