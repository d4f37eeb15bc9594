"""bench_api.py: how fast the Python API is on this machine (not a test).

    python -m landwrap.bench_api [-n 500] [--cli-n 100] [--async-n 300] [--threads 50]
                                 [--restrict-n 20]

Prints medians and ratios, all measured in the same run:

- a sandboxed spawn, ``landwrap.run(["/bin/true"], ruleset=prebuilt)``,
  against a plain ``subprocess.run(["/bin/true"])`` (interleaved, so that
  drift in machine load hits both alike), against the floors of both --
  the same spawn from C with nothing but the system calls, bare
  (vfork + execve) and with the sandbox's (no_new_privs, the capability
  drop as root, Landlock, the seccomp filter; csrc/floor.c) -- and against
  calling a CLI sandbox from Python,
  ``subprocess.run(["landwrap", "run", "--", "/bin/true"])``: what any
  launcher-based sandbox costs, a whole extra process start.  The floors
  give the best ratio to subprocess.run the kernel leaves reachable;
- a sandboxed spawn from a coroutine,
  ``landwrap.asyncio.create_subprocess_exec("/bin/true", ruleset=prebuilt)``
  then ``wait()``, against ``asyncio.create_subprocess_exec`` (interleaved,
  in one event loop);
- ``restrict()`` in a process with N threads, each sample in a fresh
  interpreter (restricting is irreversible).

Asserts nothing; performance figures belong here, not in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

_RESTRICT_CHILD = """
import json, sys, threading, time
import landwrap
n, prebuilt = int(sys.argv[1]), sys.argv[2] == "1"
go = threading.Event()
ts = [threading.Thread(target=go.wait) for _ in range(n - 1)]
for t in ts:
    t.start()
ro = sorted({sys.prefix, sys.base_prefix})
landwrap.Enforcement  # import the API now: not part of the time
if prebuilt:
    rs = landwrap.Ruleset.from_profile("default")
    for p in ro:
        rs.allow(p, "rox")
    rs.plan().ruleset_fd()
    t0 = time.perf_counter()
    enf = rs.restrict()
else:
    t0 = time.perf_counter()
    enf = landwrap.restrict(ro=ro)
dt = time.perf_counter() - t0
go.set()
for t in ts:
    t.join()
print(json.dumps([dt, enf.threads, enf.method]))
"""


def _median_ms(xs: Sequence[float]) -> float:
    return statistics.median(xs) * 1000


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def spawn_floors(rs: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(plain, sandboxed)``: callables that start /bin/true from C with
    nothing but the system calls (engine.spawn.floors) and wait for it."""
    from landwrap import api
    from landwrap.engine import spawn

    plan = rs.plan()
    plain, boxed = spawn.floors(plan, api._companion_of(plan), ["/bin/true"])
    return (lambda: os.waitpid(plain.start(), 0)), (lambda: os.waitpid(boxed.start(), 0))


def bench_spawn(n: int, cli_n: int) -> list[tuple[str, float, int]]:
    """[(label, median_ms, iterations)] for the spawn comparison: rows 0-1
    subprocess.run and landwrap.run, rows 2-3 the C floors, rows 4-5
    subprocess.Popen and landwrap.Popen (+ wait), then the CLI."""
    import landwrap

    rs = landwrap.Ruleset.from_profile("default")
    landwrap.run(["/bin/true"], ruleset=rs, check=True)  # builds the ruleset once
    floor_plain, floor_boxed = spawn_floors(rs)
    calls: list[tuple[str, Callable[[], Any]]] = [
             ('subprocess.run(["/bin/true"])', lambda: subprocess.run(["/bin/true"])),
             ('landwrap.run(["/bin/true"], ruleset=prebuilt)',
              lambda: landwrap.run(["/bin/true"], ruleset=rs)),
             ("C floor: vfork + execve + waitpid", floor_plain),
             ("C floor: + no_new_privs, caps, Landlock, seccomp (the sandbox's syscalls)",
              floor_boxed),
             ('subprocess.Popen(["/bin/true"]).wait()',
              lambda: subprocess.Popen(["/bin/true"]).wait()),
             ('landwrap.Popen(["/bin/true"], ruleset=prebuilt).wait()',
              lambda: landwrap.Popen(["/bin/true"], ruleset=rs).wait())]
    for _ in range(20):  # warm up every path
        for _label, fn in calls:
            fn()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(n):
        for xs, (_label, fn) in zip(times, calls):
            xs.append(_timed(fn))
    rows = [(label, _median_ms(xs), n) for (label, _fn), xs in zip(calls, times)]
    script = shutil.which("landwrap", path=os.path.dirname(sys.executable))
    clis = []
    if script:
        clis.append(('subprocess.run(["landwrap", "run", "--", "/bin/true"])',
                     [script, "run", "-q", "--", "/bin/true"]))
    clis.append(('subprocess.run([python, "-m", "landwrap", "run", ...])',
                 [sys.executable, "-m", "landwrap", "run", "-q", "--", "/bin/true"]))
    for label, argv in clis:
        subprocess.run(argv, check=True)
        xs = [_timed(lambda: subprocess.run(argv)) for _ in range(cli_n)]
        rows.append((label, _median_ms(xs), cli_n))
    return rows


def floor_summary(plain_py: float, boxed_py: float, floor_plain: float,
                  floor_boxed: float) -> list[str]:
    """Lines saying what the kernel's share of a sandbox costs and the best
    ratio to subprocess.run that it leaves (all in ms)."""
    kernel = floor_boxed - floor_plain
    best = (plain_py + kernel) / plain_py
    return [f"  the sandbox's system calls alone: +{kernel:.3f} ms per spawn "
            f"(C floors {floor_boxed / floor_plain:.2f}x)",
            f"  best reachable: subprocess.run + that = {best:.2f}x subprocess.run; "
            f"landwrap.run adds {boxed_py - plain_py - kernel:+.3f} ms beyond it "
            f"({boxed_py / (plain_py + kernel):.2f}x the best)"]


def targets(run_py: float, run_lw: float, popen_py: float, popen_lw: float) -> list[str]:
    """PASS/MISS lines for the spawn targets (issue 11: landwrap.run at most
    1.2x subprocess.run; issue 14, target 3: run and Popen at most 1.05x)."""
    def mark(ratio: float, bar: float) -> str:
        return "PASS" if ratio <= bar else "MISS"
    r, p = run_lw / run_py, popen_lw / popen_py
    return [f"  targets: landwrap.run {r:.2f}x subprocess.run: {mark(r, 1.2)} (<= 1.2x), "
            f"{mark(r, 1.05)} (<= 1.05x); landwrap.Popen {p:.2f}x subprocess.Popen: "
            f"{mark(p, 1.05)} (<= 1.05x)"]


def bench_kernel_share(n: int) -> list[tuple[str, float, int]]:
    """[(label, median_ms over the bare spawn, n)]: what each system call
    the sandbox adds to a spawn costs, each alone from C (the floors'
    code), the kinds in a new random order each round so that no kind
    always follows the same one.  The default profile's Landlock domain
    is set beside a one-rule domain: landlock_restrict_self copies every
    rule of the ruleset into the new domain."""
    import random

    import landwrap
    from landwrap import api
    from landwrap.engine import _binding, companion

    plan = landwrap.Ruleset.from_profile("default").plan()
    one = landwrap.Ruleset().allow("/", "rox").plan()
    comp = api._companion_of(plan)
    argv = ["/bin/true"]
    drop = comp.drop_caps
    kinds = {
        "bare: vfork + execve": _binding.FloorSpawn(argv),
        "+ no_new_privs + a one-rule Landlock domain": _binding.FloorSpawn(argv, one.ruleset_fd()),
        f"+ no_new_privs + the default profile's domain ({len(plan.rules)} rules)":
            _binding.FloorSpawn(argv, plan.ruleset_fd()),
        "+ no_new_privs + the companion's seccomp filter":
            _binding.FloorSpawn(argv, -1, comp.parts()),
        "+ the capability drop (root)" if drop else "+ the capability drop (none: not root)":
            _binding.FloorSpawn(argv, -1, 0, drop, companion.cap_last()),
        "all of them (the sandboxed floor)":
            _binding.FloorSpawn(argv, plan.ruleset_fd(), comp.parts(), drop,
                                companion.cap_last()),
    }
    names = list(kinds)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(n):
        random.shuffle(names)
        for k in names:
            f = kinds[k]
            times[k].append(_timed(lambda: os.waitpid(f.start(), 0)))
    bare = _median_ms(times["bare: vfork + execve"])
    return [(k, _median_ms(times[k]) - bare, n) for k in kinds]


def bench_asyncio(n: int) -> list[tuple[str, float, int]]:
    """[(label, median_ms, iterations)]: asyncio's spawn against landwrap's."""
    import asyncio

    import landwrap
    import landwrap.asyncio as lwa

    rs = landwrap.Ruleset.from_profile("default")

    async def plain() -> None:
        p = await asyncio.create_subprocess_exec("/bin/true")
        await p.wait()

    async def sandboxed() -> None:
        p = await lwa.create_subprocess_exec("/bin/true", ruleset=rs)
        await p.wait()

    async def main() -> tuple[list[float], list[float]]:
        for _ in range(20):  # warm up both paths (and build the ruleset)
            await plain()
            await sandboxed()
        xs, ys = [], []
        for _ in range(n):
            t = time.perf_counter()
            await plain()
            xs.append(time.perf_counter() - t)
            t = time.perf_counter()
            await sandboxed()
            ys.append(time.perf_counter() - t)
        return xs, ys

    xs, ys = asyncio.run(main())
    return [('asyncio.create_subprocess_exec("/bin/true") + wait()', _median_ms(xs), n),
            ('landwrap.asyncio.create_subprocess_exec(..., ruleset=prebuilt) + wait()',
             _median_ms(ys), n)]


def bench_restrict(threads: int, samples: int) -> list[tuple[str, float, int]]:
    """[(label, median_ms, samples)] for restrict() with *threads* threads
    (the caller included), each sample in a new interpreter."""
    rows = []
    for label, n, prebuilt in (
            (f"landwrap.restrict(), {threads} threads (profile + rules + threads)", threads, "0"),
            (f"Ruleset.restrict(), prebuilt, {threads} threads (threads only)", threads, "1"),
            ("Ruleset.restrict(), prebuilt, 1 thread", 1, "1")):
        xs, method = [], None
        for _ in range(samples):
            r = subprocess.run([sys.executable, "-c", _RESTRICT_CHILD, str(n), prebuilt],
                               capture_output=True, text=True, check=True)
            dt, count, method = json.loads(r.stdout)
            if count != n:
                raise SystemExit(f"restrict() reported {count} threads, expected {n}")
            xs.append(dt)
        rows.append((f"{label} [{method}]", _median_ms(xs), samples))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m landwrap.bench_api", description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=500, help="spawns of each kind (default 500)")
    ap.add_argument("--cli-n", type=int, default=100, help="spawns through the CLI (default 100)")
    ap.add_argument("--async-n", type=int, default=300,
                    help="asyncio spawns of each kind (default 300)")
    ap.add_argument("--threads", type=int, default=50, help="threads for restrict() (default 50)")
    ap.add_argument("--restrict-n", type=int, default=20, help="restrict() samples (default 20)")
    a = ap.parse_args(argv)
    import landwrap

    print(f"landwrap {landwrap.__version__}: Linux {platform.release()}, Landlock ABI "
          f"{landwrap.abi()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    spawn = bench_spawn(a.n, a.cli_n)
    base = spawn[0][1]
    w = 72
    print(f"\n{'spawn /bin/true (medians, interleaved)':<{w + 2}} {'ms':>8} {'ratio':>7} {'runs':>5}")
    for label, ms, runs in spawn:
        print(f"  {label:<{w}} {ms:8.3f} {ms / base:6.2f}x {runs:5d}")
    for line in floor_summary(*(ms for _label, ms, _runs in spawn[:4])):
        print(line)
    for line in targets(spawn[0][1], spawn[1][1], spawn[4][1], spawn[5][1]):
        print(line)
    print(f"\n{'the sandbox system calls, each alone from C (shuffled)':<{w + 2}} "
          f"{'+ms':>8} {'':>7} {'runs':>5}")
    for label, ms, runs in bench_kernel_share(a.n):
        print(f"  {label:<{w}} {ms:+8.3f} {'':>7} {runs:5d}")
    rows = bench_asyncio(a.async_n)
    base = rows[0][1]
    print(f"\n{'spawn /bin/true from a coroutine (medians, interleaved)':<{w + 2}} "
          f"{'ms':>8} {'ratio':>7} {'runs':>5}")
    for label, ms, runs in rows:
        print(f"  {label:<{w}} {ms:8.3f} {ms / base:6.2f}x {runs:5d}")
    print(f"\n{'restrict() (medians, each in a new process)':<{w + 2}} {'ms':>8} {'':>7} {'runs':>5}")
    for label, ms, runs in bench_restrict(a.threads, a.restrict_n):
        print(f"  {label:<{w}} {ms:8.3f} {'':>7} {runs:5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
