"""bench.py: landwrap's performance figures, as ratios measured in one run.

    python -m landwrap.bench [--quick] [--json]

1. start-up: ``landwrap run -- /bin/true`` against ``python -c pass`` of the
   same interpreter (target: at most 3.0x);
2. file-heavy work: open+read of 50,000 files under /usr, timed inside the
   worker process, in and out of the default sandbox (target: at most 1.08x,
   the kernel's own cost), and under the least Landlock can cost (a bare
   one-rule domain made with raw system calls), which tells the kernel's
   own share from landwrap's;
3. a profile with 10,000 paths: parse, load (cached), resolve and enforce,
   against the interpreter's start-up time (target: well under it).

Numbers are medians of repeated runs; every ratio compares figures taken in
this run on this machine, never a stored baseline.  This is not a test: it
asserts nothing and only reports.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import os, sys, time
paths = open(sys.argv[1], "rb").read().split(b"\n")
if sys.argv[2:] == ["bare"]:
    # The least Landlock can cost: one layer, one rule (read everything
    # from /), every filesystem right of this kernel handled.  Straight
    # system calls, so that nothing of landwrap is involved.
    import ctypes, struct
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, 0, 1)
    handled = (1 << {3: 15, 4: 15}.get(abi, 16 if abi < 9 else 17)) - 1 if abi >= 3 else (
        (1 << 13) - 1 if abi == 1 else (1 << 14) - 1)
    attr = ctypes.create_string_buffer(struct.pack("Q", handled))
    rfd = libc.syscall(444, attr, 8, 0)
    root = os.open("/", os.O_PATH)
    rule = ctypes.create_string_buffer(struct.pack("=Qi", handled, root))
    assert rfd >= 0 and libc.syscall(445, rfd, 1, rule, 0) == 0, ctypes.get_errno()
    assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.syscall(446, rfd, 0) == 0
t = time.perf_counter()
n = 0
for p in paths:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        continue
    try:
        n += len(os.read(fd, 4096))
    except OSError:
        pass
    os.close(fd)
print(time.perf_counter() - t, n)
"""


def _median_ms(cmd, n, env=None) -> float:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       check=False)
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def landwrap_cmd() -> list:
    exe = shutil.which("landwrap", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "landwrap"]


def python_rox() -> list:
    out = []
    for p in sorted({sys.prefix, sys.base_prefix,
                     os.path.dirname(os.path.realpath(sys.executable))}):
        out += ["--rox", p]
    return out


def bench_startup(n: int) -> dict:
    lw = landwrap_cmd()
    # interleave so that drift on the machine hits both alike
    py, run, true = [], [], []
    for _ in range(n):
        py.append(_median_ms([sys.executable, "-c", "pass"], 1))
        run.append(_median_ms(lw + ["run", "-q", "--", "/bin/true"], 1))
        true.append(_median_ms(["/bin/true"], 1))
    py_ms, run_ms = statistics.median(py), statistics.median(run)
    return {"python -c pass (ms)": py_ms, "landwrap run -- /bin/true (ms)": run_ms,
            "/bin/true (ms)": statistics.median(true), "ratio": run_ms / py_ms,
            "target": 3.0, "command": " ".join(lw + ["run", "-q", "--", "/bin/true"])}


def _file_list(count: int) -> bytes:
    out = []
    for root, _dirs, files in os.walk("/usr"):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.fsencode(p))
                if len(out) >= count:
                    return b"\n".join(out)
    return b"\n".join(out)


def bench_files(count: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        listing = os.path.join(d, "files")
        worker = os.path.join(d, "worker.py")
        with open(listing, "wb") as f:
            f.write(_file_list(count))
        with open(worker, "w") as f:
            f.write(WORKER)
        plain = [sys.executable, "-I", "-S", worker, listing]
        boxed = landwrap_cmd() + ["run", "-q", *python_rox(), "--ro", d, "--"] + plain
        bare = plain + ["bare"]
        outside, inside, floor = [], [], []
        for _ in range(rounds):
            for cmd, acc in ((plain, outside), (boxed, inside), (bare, floor)):
                r = subprocess.run(cmd, capture_output=True, text=True, check=True)
                acc.append(float(r.stdout.split()[0]))
        o, i, b = (statistics.median(x) * 1000 for x in (outside, inside, floor))
    return {"files": count, "outside (ms)": o, "inside landwrap run (ms)": i,
            "inside a bare one-rule domain (ms)": b, "ratio": i / o, "target": 1.08,
            "kernel's own ratio (bare/outside)": b / o,
            "landwrap vs bare domain": i / b}


def bench_profile(paths: int, n_start: int) -> dict:
    from . import profile

    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        files = []
        for i in range(paths):
            sub = os.path.join(d, "t", f"d{i // 100:03d}")
            if i % 100 == 0:
                os.makedirs(sub)
            p = os.path.join(sub, f"f{i:05d}")
            with open(p, "w"):
                pass
            files.append(p)
        prof_path = os.path.join(d, "big.toml")
        with open(prof_path, "w") as f:
            f.write('description = "10,000 paths"\n[filesystem]\nro = [\n')
            f.writelines(f'  "{p}",\n' for p in files)
            f.write("]\n")
        cache = os.path.join(d, "cache")
        old = os.environ.get("LANDWRAP_CACHE_DIR")
        os.environ["LANDWRAP_CACHE_DIR"] = cache
        try:
            t0 = time.perf_counter()
            profile.load([prof_path], dirs=[])        # cold: TOML parse, fills the cache
            t1 = time.perf_counter()
            times = {"load": [], "resolve": [], "enforce": []}
            for _ in range(5):
                a = time.perf_counter()
                prof = profile.load([prof_path], dirs=[])   # cached
                b = time.perf_counter()
                plan = prof.ruleset.resolve()
                c = time.perf_counter()
                plan.ruleset_fd()
                e = time.perf_counter()
                times["load"].append(b - a)
                times["resolve"].append(c - b)
                times["enforce"].append(e - c)
                plan.close()
            rules = len(plan.rules)
        finally:
            if old is None:
                os.environ.pop("LANDWRAP_CACHE_DIR", None)
            else:
                os.environ["LANDWRAP_CACHE_DIR"] = old
    py = _median_ms([sys.executable, "-c", "pass"], n_start)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    total = sum(med.values())
    return {"paths": paths, "kernel rules": rules, "first parse (ms)": (t1 - t0) * 1000,
            "load, cached (ms)": med["load"], "resolve (ms)": med["resolve"],
            "build kernel ruleset (ms)": med["enforce"], "total (ms)": total,
            "python -c pass (ms)": py, "ratio": total / py, "target": "well under 1.0"}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    res = {
        "startup": bench_startup(10 if quick else 60),
        "files": bench_files(5_000 if quick else 50_000, 3 if quick else 7),
        "profile": bench_profile(10_000, 10 if quick else 30),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
    if "--json" in args:
        print(json.dumps(res, indent=2))
        return 0
    for name, d in res.items():
        if not isinstance(d, dict):
            continue
        print(f"[{name}]")
        for k, v in d.items():
            print(f"  {k:<34} {v:.3f}" if isinstance(v, float) else f"  {k:<34} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
