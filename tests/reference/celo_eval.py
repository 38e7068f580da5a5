#!/usr/bin/env python3
"""A small NumPy evaluator of celo update rules (docs/language.md), independent of the compiler.

It exists to check the *text* of the stdlib rules against the reference data in tests/golden/ before (and apart
from) the compiler:

    python3 tests/reference/celo_eval.py                 # every case of tests/golden/cases.txt
    python3 tests/reference/celo_eval.py adam lamb_chain # only these cases

It reads every stdlib/*.celo, runs each case's rule over its gradients with its `set` file, and prints
max_rel_err = max|a - b| / max|b| against out.npy (the definition tests/tools/npycmp uses).

Precision model (close to the runtime's, not bit-exact): host scalars (hyper-parameters, t and what depends only
on them) in double; element-wise values in float32, with scalar operands rounded to float32 first; reductions
accumulated in double and rounded to float32; per-row/column/tensor values computed in double from those.
Whole-tensor reductions of a row or column value reduce its broadcast over the [R, C] view.
"""
import math
import os
import re
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

HOST, SCALAR, ROW, COL, ELEM = range(5)


# ---- lexer / parser ---------------------------------------------------------------------------------------------

TOKEN = re.compile(r"\s+|#[^\n]*|(?P<num>(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)|"
                   r"(?P<str>\"[^\"]*\")|(?P<op>\.\.|<=|>=|==|!=|\+=|-=|\*=|/=|[-+*/^<>=(),;{}\[\]])")
KEYWORDS = {"and", "or", "not", "optimizer", "transform", "state", "for", "in", "import"}


def lex(text, fn):
    toks, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise SyntaxError("%s: bad character %r" % (fn, text[pos]))
        pos = m.end()
        if m.group("num"):
            toks.append(("num", float(m.group("num"))))
        elif m.group("name"):
            toks.append(("kw" if m.group("name") in KEYWORDS else "name", m.group("name")))
        elif m.group("str"):
            toks.append(("str", m.group("str")[1:-1]))
        elif m.group("op"):
            toks.append(("op", m.group("op")))
    toks.append(("eof", None))
    return toks


class Parser:
    def __init__(self, toks, fn):
        self.t, self.i, self.fn = toks, 0, fn

    def peek(self, k=0):
        return self.t[self.i + k]

    def take(self, kind=None, val=None):
        tok = self.t[self.i]
        if (kind and tok[0] != kind) or (val is not None and tok[1] != val):
            raise SyntaxError("%s: expected %s %s, got %s" % (self.fn, kind, val or "", tok))
        self.i += 1
        return tok

    def at(self, kind, val=None):
        tok = self.t[self.i]
        return tok[0] == kind and (val is None or tok[1] == val)

    def file(self):
        rules = []
        while not self.at("eof"):
            if self.at("kw", "import"):
                self.take()
                self.take("str")
                self.take("op", ";")
                continue
            kind = self.take("kw")[1]
            name = self.take("name")[1]
            self.take("op", "(")
            hps = []
            while not self.at("op", ")"):
                hn = self.take("name")[1]
                self.take("op", "=")
                hps.append((hn, self.expr()))
                if not self.at("op", ")"):
                    self.take("op", ",")
            self.take("op", ")")
            if self.at("op", "="):
                self.take()
                chain = self.expr()
                self.take("op", ";")
                rules.append(dict(kind=kind, name=name, hps=hps, chain=chain))
            else:
                rules.append(dict(kind=kind, name=name, hps=hps, body=self.block()))
        return rules

    def block(self):
        self.take("op", "{")
        body = []
        while not self.at("op", "}"):
            body.append(self.stmt())
        self.take("op", "}")
        return body

    def stmt(self):
        if self.at("kw", "state"):
            self.take()
            decls = []
            while True:
                n = self.take("name")[1]
                size = None
                if self.at("op", "["):
                    self.take()
                    size = int(self.take("num")[1])
                    self.take("op", "]")
                self.take("op", "=")
                decls.append((n, size, self.expr()))
                if self.at("op", ";"):
                    break
                self.take("op", ",")
            self.take("op", ";")
            return ("state", decls)
        if self.at("kw", "for"):
            self.take()
            v = self.take("name")[1]
            self.take("kw", "in")
            lo = int(self.take("num")[1])
            self.take("op", "..")
            hi = int(self.take("num")[1])
            return ("for", v, lo, hi, self.block())
        target = self.lvalue()
        op = self.take("op")[1]
        if op not in ("=", "+=", "-=", "*=", "/="):
            raise SyntaxError("%s: bad assignment %s" % (self.fn, op))
        e = self.expr()
        self.take("op", ";")
        if op != "=":
            e = ("bin", op[0], ("ref", target), e)
        return ("assign", target, e)

    def lvalue(self):
        n = self.take("name")[1]
        if self.at("op", "["):
            self.take()
            idx = self.expr()
            self.take("op", "]")
            return (n, idx)
        return (n, None)

    # precedence: or < and < not < comparisons < + - < * / < unary - < ^ (right-assoc)
    def expr(self):
        e = self.and_()
        while self.at("kw", "or"):
            self.take()
            e = ("bin", "or", e, self.and_())
        return e

    def and_(self):
        e = self.not_()
        while self.at("kw", "and"):
            self.take()
            e = ("bin", "and", e, self.not_())
        return e

    def not_(self):
        if self.at("kw", "not"):
            self.take()
            return ("call", "not", [self.not_()], {})
        return self.cmp()

    def cmp(self):
        e = self.add()
        while self.peek()[0] == "op" and self.peek()[1] in ("<", "<=", ">", ">=", "==", "!="):
            op = self.take()[1]
            e = ("bin", op, e, self.add())
        return e

    def add(self):
        e = self.mul()
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            e = ("bin", op, e, self.mul())
        return e

    def mul(self):
        e = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            e = ("bin", op, e, self.unary())
        return e

    def unary(self):
        if self.at("op", "-"):
            self.take()
            return ("neg", self.unary())
        return self.power()

    def power(self):
        base = self.atom()
        if self.at("op", "^"):
            self.take()
            return ("bin", "^", base, self.unary())
        return base

    def atom(self):
        tok = self.take()
        if tok[0] == "num":
            return ("num", tok[1])
        if tok == ("op", "("):
            e = self.expr()
            self.take("op", ")")
            return e
        if tok[0] == "name":
            if self.at("op", "("):
                self.take()
                args, kw = [], {}
                while not self.at("op", ")"):
                    if self.peek()[0] == "name" and self.peek(1) == ("op", "="):
                        k = self.take()[1]
                        self.take()
                        kw[k] = self.expr()
                    else:
                        args.append(self.expr())
                    if not self.at("op", ")"):
                        self.take("op", ",")
                self.take("op", ")")
                return ("call", tok[1], args, kw)
            if self.at("op", "["):
                self.take()
                idx = self.expr()
                self.take("op", "]")
                return ("ref", (tok[1], idx))
            return ("ref", (tok[1], None))
        raise SyntaxError("%s: unexpected %s" % (self.fn, tok))


def load_rules(paths):
    rules = {}
    for fn in paths:
        for r in Parser(lex(open(fn).read(), fn), fn).file():
            if r["name"] in rules:
                raise SyntaxError("%s: %s defined twice" % (fn, r["name"]))
            rules[r["name"]] = r
    return rules


# ---- values -------------------------------------------------------------------------------------------------------

class V:
    """A value of some kind. HOST/SCALAR: np.float64 scalar; ROW: float64 [R,1]; COL: float64 [1,C];
    ELEM: float32 [R,C]."""
    __slots__ = ("k", "x")

    def __init__(self, k, x):
        self.k, self.x = k, x


def as_elem(v, R, C):
    if v.k == ELEM:
        return v.x
    return np.broadcast_to(np.asarray(v.x, np.float64).astype(np.float32), (R, C))


def kind_of(*vs):
    ks = {v.k for v in vs}
    if ELEM in ks or (ROW in ks and COL in ks):
        return ELEM
    return max(ks)


def lift(k, vs, R, C):
    """Operands of an operation of kind k: float32 [R,C] arrays for ELEM, float64 otherwise."""
    if k == ELEM:
        return [as_elem(v, R, C) for v in vs]
    return [np.float64(v.x) if v.k <= SCALAR else np.asarray(v.x, np.float64) for v in vs]


def round_kind(k, x):
    """Values leaving a reduction or stored as ROW/COL/SCALAR state are floats."""
    if k in (SCALAR, ROW, COL):
        return np.asarray(x, np.float32).astype(np.float64) if np.ndim(x) else np.float64(np.float32(x))
    return x


BIN = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
    "<": lambda a, b: np.less(a, b), "<=": lambda a, b: np.less_equal(a, b), ">": lambda a, b: np.greater(a, b),
    ">=": lambda a, b: np.greater_equal(a, b), "==": lambda a, b: np.equal(a, b),
    "!=": lambda a, b: np.not_equal(a, b),
    "and": lambda a, b: np.logical_and(a != 0, b != 0), "or": lambda a, b: np.logical_or(a != 0, b != 0),
}
UN = {
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "exp": np.exp, "log": np.log, "abs": np.abs,
    "sign": np.sign, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
    "floor": np.floor, "square": lambda x: x * x, "not": lambda x: np.equal(x, 0),
}


def orthogonalize(x, steps):
    """torch.optim.Muon's Newton-Schulz iteration, in float32."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = x.astype(np.float32)
    tr = X.shape[0] > X.shape[1]
    if tr:
        X = X.T
    X = X / np.float32(max(np.linalg.norm(X.astype(np.float64)), 1e-7))
    for _ in range(steps):
        A = X @ X.T
        B = np.float32(b) * A + np.float32(c) * (A @ A)
        X = np.float32(a) * X + B @ X
    return (X.T if tr else X).astype(np.float32)


class Step:
    """Evaluates one rule body for one step."""

    def __init__(self, R, C, t, p, g):
        self.R, self.C, self.t = R, C, t
        self.p, self.g = p, g

    def ev(self, e, env):
        R, C = self.R, self.C
        tag = e[0]
        if tag == "num":
            return V(HOST, np.float64(e[1]))
        if tag == "ref":
            name, idx = e[1]
            key = name if idx is None else "%s[%d]" % (name, int(self.ev(idx, env).x))
            if key not in env:
                raise NameError("unknown name %s" % key)
            return env[key]
        if tag == "neg":
            v = self.ev(e[1], env)
            return V(v.k, -v.x)
        if tag == "bin":
            a, b = self.ev(e[2], env), self.ev(e[3], env)
            k = kind_of(a, b)
            x, y = lift(k, [a, b], R, C)
            r = BIN[e[1]](x, y)
            if r.dtype == bool:
                r = r.astype(np.float32 if k == ELEM else np.float64)
            return V(k, r)
        if tag == "call":
            return self.call(e[1], e[2], e[3], env)
        raise ValueError(e)

    def call(self, fn, args, kw, env):
        R, C = self.R, self.C
        if fn in ("numel", "rows", "cols"):
            return V(SCALAR, np.float64({"numel": R * C, "rows": R, "cols": C}[fn]))
        vs = [self.ev(a, env) for a in args]
        if fn in UN:
            (v,) = vs
            (x,) = lift(v.k, [v], R, C)
            r = UN[fn](x)
            return V(v.k, r.astype(np.float32 if v.k == ELEM else np.float64) if hasattr(r, "astype") else r)
        if fn in ("min", "max"):
            k = kind_of(*vs)
            x, y = lift(k, vs, R, C)
            return V(k, (np.minimum if fn == "min" else np.maximum)(x, y))
        if fn == "clip":
            k = kind_of(*vs)
            x, lo, hi = lift(k, vs, R, C)
            return V(k, np.minimum(np.maximum(x, lo), hi))
        if fn == "where":
            k = kind_of(*vs)
            c, a, b = lift(k, vs, R, C)
            return V(k, np.where(c != 0, a, b))
        if fn == "lerp":
            k = kind_of(*vs)
            a, b, w = lift(k, vs, R, C)
            return V(k, a + w * (b - a))
        if fn == "fma":  # rounded once: the exact product and sum in double, then to the value's precision
            k = kind_of(*vs)
            a, b, c = lift(k, vs, R, C)
            r = np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)
            return V(k, r.astype(np.float32) if k == ELEM else r)
        if fn == "orthogonalize":
            steps = int(self.ev(kw["steps"], env).x) if "steps" in kw else 5
            return V(ELEM, orthogonalize(as_elem(vs[0], R, C), steps))
        # reductions, accumulated in double over the [R, C] broadcast of the operand
        (v,) = vs
        x = as_elem(v, R, C).astype(np.float64)
        whole = {"sum": lambda: x.sum(), "mean": lambda: x.mean(), "rms": lambda: np.sqrt((x * x).mean()),
                 "norm": lambda: np.sqrt((x * x).sum()), "maxabs": lambda: np.abs(x).max(),
                 "amax": lambda: x.max(), "amin": lambda: x.min()}
        if fn in whole:
            return V(SCALAR, round_kind(SCALAR, whole[fn]()))
        part = {"row_sum": (ROW, lambda: x.sum(1, keepdims=True)), "row_mean": (ROW, lambda: x.mean(1, keepdims=True)),
                "row_max": (ROW, lambda: x.max(1, keepdims=True)), "col_sum": (COL, lambda: x.sum(0, keepdims=True)),
                "col_mean": (COL, lambda: x.mean(0, keepdims=True)), "col_max": (COL, lambda: x.max(0, keepdims=True))}
        if fn in part:
            k, f = part[fn]
            return V(k, round_kind(k, f()))
        raise NameError("unknown function %s" % fn)


class Runner:
    """Runs a rule (hand-written or chain) over a sequence of gradients."""

    def __init__(self, rules, name, hp_over, shape):
        self.rules = rules
        self.rule = rules[name]
        if self.rule["kind"] != "optimizer":
            raise ValueError("%s is not an optimizer" % name)
        self.C = shape[-1] if shape else 1
        self.R = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        self.hp = self.bind_hps(self.rule, hp_over, {})
        self.state = {}      # "<prefix>name" -> V
        self.init = {}

    @staticmethod
    def bind_hps(rule, over, outer_env):
        names = [n for n, _ in rule["hps"]]
        for k in over:
            if k not in names:
                raise KeyError("%s has no hyper-parameter %s" % (rule["name"], k))
        env = {}
        for n, default in rule["hps"]:
            if n in over:
                env[n] = over[n] if isinstance(over[n], V) else V(HOST, np.float64(np.float32(over[n])))
            else:
                env[n] = Step(1, 1, 1, None, None).ev(default, dict(outer_env, **env))
                env[n] = V(HOST, np.float64(np.float32(env[n].x)))
        return env

    def run_body(self, st, body, env, prefix, is_transform):
        for s in body:
            if s[0] == "state":
                for n, size, init in s[1]:
                    for key in ([n] if size is None else ["%s[%d]" % (n, i) for i in range(size)]):
                        full = prefix + key
                        if full not in self.state:
                            iv = st.ev(init, env)
                            self.state[full] = V(HOST, np.float64(np.float32(iv.x)))
                        env[key] = self.state[full]
                        env.setdefault("__slots__", {})[key] = full
            elif s[0] == "for":
                _, v, lo, hi, blk = s
                for i in range(lo, hi):
                    env[v] = V(HOST, np.float64(i))
                    self.run_body(st, blk, env, prefix, is_transform)
                env.pop(v, None)
            else:
                (n, idx), e = s[1], s[2]
                key = n if idx is None else "%s[%d]" % (n, int(st.ev(idx, env).x))
                val = st.ev(e, env)
                if key == "p" and is_transform:
                    raise ValueError("a transform cannot assign p")
                if key == "g" or key == "t":
                    raise ValueError("cannot assign %s" % key)
                if key in ("p", "u") and val.k != ELEM:
                    val = V(ELEM, as_elem(val, self.R, self.C))
                if val.k == ELEM:
                    val = V(ELEM, np.asarray(val.x, np.float32))
                env[key] = val
                slots = env.get("__slots__", {})
                if key in slots:
                    env.setdefault("__new__", {})[slots[key]] = val

    def step(self, p, g, t):
        R, C = self.R, self.C
        st = Step(R, C, t, p, g)
        base = {"p": V(ELEM, p), "g": V(ELEM, g), "t": V(HOST, np.float64(t))}
        new = {}
        if "body" in self.rule:
            env = dict(base, **self.hp)
            self.run_body(st, self.rule["body"], env, "", False)
            new.update(env.get("__new__", {}))
            p_out = env["p"].x
        else:
            u = V(ELEM, g)
            call = self.rule["chain"]
            assert call[0] == "call" and call[1] == "chain"
            for j, tcall in enumerate(call[2]):
                tr = self.rules[tcall[1]]
                args = {k: st.ev(e, dict(base, **self.hp)) for k, e in tcall[3].items()}
                env = dict(base, **self.bind_hps(tr, args, self.hp))
                env["u"] = u
                self.run_body(st, tr["body"], env, "%d.%s." % (j, tr["name"]), True)
                new.update(env.get("__new__", {}))
                u = env["u"]
            p_out = (p + as_elem(u, R, C)).astype(np.float32)
        for full, val in new.items():  # the new state, stored as floats (a host value in a per-tensor slot)
            if val.k == ELEM:
                self.state[full] = V(ELEM, val.x.astype(np.float32))
            else:
                k = SCALAR if val.k == HOST else val.k
                self.state[full] = V(k, round_kind(k, val.x))
        return np.asarray(as_elem(V(ELEM, p_out), R, C), np.float32)

    def run(self, p0, grads):
        shape = p0.shape
        p = p0.reshape(self.R, self.C).astype(np.float32)
        for i, g in enumerate(grads):
            p = self.step(p, g.reshape(self.R, self.C).astype(np.float32), i + 1).copy()
        return p.reshape(shape)


def stdlib_rules():
    d = os.path.join(ROOT, "stdlib")
    return load_rules(sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".celo")))


def main(argv):
    rules = stdlib_rules()
    golden = os.path.join(ROOT, "tests", "golden")
    worst = 0.0
    for line in open(os.path.join(golden, "cases.txt")):
        case, rule, tag = line.split()
        if argv and case not in argv:
            continue
        d = os.path.join(golden, case, tag)
        hp = dict(l.strip().split("=", 1) for l in open(os.path.join(d, "set")) if l.strip())
        hp = {k: float(v) for k, v in hp.items()}
        p0, grads, ref = (np.load(os.path.join(d, f)) for f in ("p0.npy", "grads.npy", "out.npy"))
        with np.errstate(all="ignore"):
            out = Runner(rules, rule, hp, p0.shape).run(p0, grads)
        err = np.max(np.abs(out.astype(np.float64) - ref)) / np.max(np.abs(ref))
        worst = max(worst, err)
        print("%-20s %-10s %-6s max_rel_err=%.3g" % (case, rule, tag, err))
    print("worst %.3g" % worst)


if __name__ == "__main__":
    main(sys.argv[1:])
