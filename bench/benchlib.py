"""bench/benchlib.py: what the benchmark drivers (bench/optim/driver.py, bench/train/driver.py) share: running
commands from the repository root, the benchmarks' own Python environment for their peers, waiting for a quiet
CPU, describing the machine, and replacing a section of docs/results.md atomically."""
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
VENV = os.path.join("build", "bench", "venv")  # repo-relative: the peers' packages, apart from the system's


def run_cmd(cmd, timeout, env=None):
    """Runs cmd (a list) in ROOT; returns (rc, stdout, stderr); rc None when it could not start or timed out."""
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out, f"timed out after {timeout} s"
    except OSError as e:
        return None, "", str(e)


JAX_REQS = ("jax[cpu]==0.10.2", "optax==0.2.8")  # the JAX peers' packages, pinned (bench/train, bench/runs)
# the PyTorch peers' (bench/optim, bench/train). PyPI's Linux wheel brings NVIDIA's CUDA libraries too (about 5 GB
# installed, once); the peers run it on the CPU.
TORCH_REQS = ("torch==2.15.0", "numpy==2.4.6")


def last_row(path):
    """(step, wall_s) of the last row of a celo CSV log, or None."""
    import csv
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]), float(rows[-1]["wall_s"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def venv_python(reqs, log, timeout=1200):
    """The Python of the benchmarks' virtual environment (VENV) with the pip requirements REQS installed: creates
    it and installs what is missing on first use (pip from PyPI), so that `make bench` sets up its own peers on a
    fresh machine. Returns (path, None), or (None, why) when that failed; then the peer shows as n/a."""
    py = os.path.join(ROOT, VENV, "bin", "python")
    stamp = os.path.join(ROOT, VENV, "celo-installed.txt")  # requirement lines installed so far
    try:
        with open(stamp) as f:
            have = set(f.read().split())
    except OSError:
        have = set()
    want = [r for r in reqs if r not in have]
    if os.access(py, os.X_OK) and not want:
        return py, None
    if not os.access(py, os.X_OK):
        log(f"creating {VENV} (python3 -m venv)")
        rc, out, err = run_cmd([sys.executable, "-m", "venv", VENV], 300)
        if rc != 0:
            return None, "python3 -m venv failed: " + (first_line(err) or first_line(out) or f"exit {rc}") + \
                " (Debian: apt-get install python3-venv)"
        have = set()
        want = list(reqs)
    log(f"installing {' '.join(want)} into {VENV} (pip, once)")
    rc, out, err = run_cmd([py, "-m", "pip", "install", "--disable-pip-version-check", "-q"] + want, timeout)
    if rc != 0:
        tail = [ln for ln in (err or out).splitlines() if ln.strip()]
        return None, f"pip install {' '.join(want)} failed: " + (tail[-1].strip()[:160] if tail else f"exit {rc}")
    with open(stamp, "w") as f:
        f.write("\n".join(sorted(have | set(want))) + "\n")
    return py, None


def first_line(s):
    """First non-empty line, shortened, with this checkout's absolute path made repo-relative."""
    for ln in s.splitlines():
        if ln.strip():
            return ln.strip().replace(ROOT + os.sep, "")[:160]
    return ""


def cpu_busy(interval=0.25):
    """Fraction of CPU time used (by anything) over INTERVAL seconds, from /proc/stat; None if unknown."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


class QuietGate:
    """Before each measurement, waits (a little) for other work on the machine to stop: on 2 shared cores a busy
    neighbour halves a 2-thread loop and makes a 2-thread step wait at every barrier. At most max_wait_s per
    measurement and total_s in all; after 3 busy measurements in a row it only looks. log: a function of one
    message."""

    def __init__(self, log, threshold=0.25, max_wait_s=10.0, total_s=60.0):
        self.log = log
        self.threshold, self.max_wait_s, self.total_left = threshold, max_wait_s, total_s
        self.waited = 0.0
        self.busy_runs = 0
        self.runs = 0
        self.streak = 0

    def wait(self):
        """Returns True when the CPU was quiet at the start."""
        self.runs += 1
        t0 = time.time()
        limit = 0.0 if self.streak >= 3 else min(self.max_wait_s, self.total_left)
        quiet = True
        while True:
            b = cpu_busy()
            if b is None or b <= self.threshold:
                self.streak = 0
                break
            if time.time() - t0 >= limit:
                self.busy_runs += 1
                self.streak += 1
                quiet = False
                if self.streak == 3:
                    self.log("the CPUs stay busy with other work; measuring without waiting")
                break
        dt = time.time() - t0
        self.waited += dt
        self.total_left = max(0.0, self.total_left - dt)
        return quiet


def stats(values):
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


def machine_info():
    model, flags = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name") and model == "unknown CPU":
                    model = ln.split(":", 1)[1].strip()
                if ln.startswith("flags") and not flags:
                    flags = ln
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    extra = []
    if "avx512f" in flags:
        extra.append("AVX-512")
    if "hypervisor" in flags:
        extra.append("VM")
    cores = os.cpu_count()
    gcc = first_line(run_cmd(["gcc", "--version"], 10)[1]) or "gcc ?"
    torch_v = "torch n/a"
    py = os.path.join(ROOT, VENV, "bin", "python")
    if os.access(py, os.X_OK):
        rc, out, _ = run_cmd([py, "-c", "import importlib.metadata as m; print(m.version('torch'))"], 60)
        if rc == 0 and out.strip():
            torch_v = "torch " + out.strip()
    return (f"{model} ({cores} cores{', ' + ', '.join(extra) if extra else ''}){mem}; "
            f"Linux {platform.release()}; {gcc}; {torch_v}")


def git_rev():
    rc, out, _ = run_cmd(["git", "rev-parse", "--short", "HEAD"], 10)
    return out.strip() if rc == 0 else "?"


def write_section(path, heading, body):
    """Replaces the section that starts with HEADING (up to the next heading of the same or higher level) in
    PATH, or appends it; writes a temporary file in the same folder and renames it over PATH."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Results\n\nMeasured results; each section names the command that produced it.\n"
    new = f"{heading}\n\n{body}"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        out = text.rstrip("\n") + "\n\n" + new
    else:
        level = len(heading) - len(heading.lstrip("#"))
        end = len(lines)
        in_code = False
        for i in range(start + 1, len(lines)):
            s = lines[i]
            if s.startswith("```"):
                in_code = not in_code
            if not in_code and re.match(r"#{1,%d} " % level, s):
                end = i
                break
        tail = "".join(lines[end:])
        out = "".join(lines[:start]) + new + ("\n" + tail if tail else "")
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".md", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
