"""bench.py: landwrap's performance against the physical limit, in one run.

    python -m landwrap.bench [--quick | --smoke] [--json]

Every figure is the median of runs interleaved with those of its *floor*,
measured in the same run on the same machine (never a stored baseline),
and is printed with the ratio to that floor and PASS/MISS against the
targets of issue 14:

1. ``landwrap run -q -- /bin/true`` <= 1.2x ``python -c pass`` of the same
   interpreter (``python -I -S -c pass`` shown too: what an interpreter
   start costs without site; and the floor of any `landwrap run` in Python:
   sh + ``python -I -S`` + the C extension + spawning /bin/true, the same
   with the sandbox's system calls made from C, and the same with
   landwrap's modules imported, with the steps of a run timed inside one
   process);
2. a 10,000-path profile, cached, resolved and enforced <= 1.3x the kernel
   floor: the same paths given to a C loop of open(O_PATH) +
   landlock_add_rule + close (csrc/floor.c), with each phase;
3. ``landwrap.run`` of /bin/true with a prebuilt ruleset <= 1.05x
   ``subprocess.run`` (and ``Popen``), with the floor that bounds it: the
   same spawn from C, bare (vfork + execve) and with only the system
   calls of the sandbox (csrc/floor.c), and the best ratio they leave;
4. file-heavy work in landwrap's default sandbox <= 1.02x the same work in
   a bare one-rule Landlock domain (csrc/floor.c), the workers in lockstep
   (medians of paired per-chunk ratios of the loop's CPU time), with the
   floor of the sandbox's own choices: one rule granting only read and
   execute, and the seccomp companion filter beside it;
5. ``--log-denials`` <= +15 ms; with 1,000 denials, the time and the
   launcher's peak memory;
6. ``landwrap status`` <= 1.5x ``python -c pass``, with its floor: the
   start-up floor with every module status imports; ``profile list`` and
   ``profile check`` of every shipped profile reported;
7. peak memory of ``landwrap run -- /bin/true`` <= 1.3x ``python -c pass``.

Then the scale tables: start-up against profile size and nesting depth.
Timings on a loaded machine are noisy; compare ratios, and rerun on a quiet
one.  Not a test: it asserts nothing.  Nothing in landwrap imports it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from types import ModuleType

#: Run counts: (full, --quick, --smoke).
COUNTS: dict[str, tuple[Any, ...]] = {
    "startup": (60, 20, 3),
    "profile": (9, 5, 1),
    "api": (500, 200, 5),
    # (files, files per chunk, rounds): bench_files
    "files": ((50_000, 2_000, 24), (20_000, 1_000, 10), (500, 250, 1)),
    "denials": (30, 10, 2),
    "commands": (30, 10, 2),
    "memory": (10, 5, 1),
    "scale_sizes": ((10, 100, 1_000, 10_000, 100_000),) * 2 + ((10, 100),),
    "scale_runs": (5, 3, 1),
    "nesting_runs": (3, 2, 1),
    "nesting": (tuple(range(1, 16)), (1, 2, 4, 8, 15), (1, 2)),
}

WORKER = r"""
import os, sys, time
paths = open(sys.argv[1], "rb").read().split(b"\n")
mode = sys.argv[2] if len(sys.argv) > 2 else ""
if mode:
    # The floors, each one layer handling every filesystem right of this
    # kernel.  "bare": one rule granting all of them beneath / (csrc/floor.c).
    # "ro", "ro+filter": one rule granting what the default profile grants
    # /usr (read, execute), then the companion filter the default sandbox
    # gets (its parts; any filter costs the same: the kernel's seccomp
    # action cache answers open/read/close without running it).
    sys.path[:0] = sys.argv[3:]
    from landwrap.engine import _binding, compat
    fs = compat.mask(compat.FS_RIGHTS, _binding.kernel_abi())
    if mode == "bare":
        _binding.floor_bare_domain(fs)
    else:
        rfd = _binding.create_ruleset(fs, 0, 0, compat.ATTR_SIZE_FS)
        _binding.add_path_rules(rfd, ["/"], [compat.access_bits("rox") & fs])
        _binding.no_new_privs()
        _binding.restrict_self(rfd, 0)
        os.close(rfd)
        if mode == "ro+filter" and _binding.seccomp_arch():
            _binding.seccomp_install(_binding.SC_TTY | _binding.SC_MPTCP | _binding.SC_PROCS,
                                     os.getpid(), False)
# In lockstep with the other workers (bench_files): each line "i j" on
# stdin opens and reads paths[i:j]; the answer is the CPU time of that loop
# alone (ns: what the kernel and this loop cost, not the waits for a CPU
# that another process on the machine holds).
out, clock = sys.stdout.buffer, time.thread_time_ns
for line in sys.stdin.buffer:
    i, j = map(int, line.split())
    t = clock()
    n = 0
    for p in paths[i:j]:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            n += len(os.read(fd, 4096))
        except OSError:
            pass
        os.close(fd)
    t = clock() - t
    out.write(b"%d %d\n" % (t, n))
    out.flush()
"""

# measuring ---------------------------------------------------------------

def _run_ms(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env, check=False)
    return (time.perf_counter() - t) * 1000


def _check(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=env, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)[:200]}: exit {r.returncode}: "
                           f"{(r.stdout[-300:] + r.stderr[-500:]).strip()}")


def interleaved(cmds: dict[str, list[str]], n: int,
                env: Mapping[str, str] | None = None) -> dict[str, float]:
    """Median ms of each command (name -> argv), run in turn *n* times after
    one warm-up round that must succeed, so that drift in the machine's load
    hits all alike."""
    for cmd in cmds.values():
        _check(cmd, env)
    xs: dict[str, list[float]] = {k: [] for k in cmds}
    names = list(cmds)
    for i in range(n):
        # each round starts with the next command, so that none is always
        # the one that runs after a given other (caches, CPU frequency)
        for k in names[i % len(names):] + names[:i % len(names)]:
            xs[k].append(_run_ms(cmds[k], env))
    return {k: statistics.median(v) for k, v in xs.items()}


# A fork from a small process: a child forked from this (large) benchmark
# process would count the benchmark's own pages in its ru_maxrss (exec keeps
# the peak of the memory it replaces).
_PEAK = r"""
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
print(os.wait4(pid, 0)[2].ru_maxrss)
"""


def peak_kib(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Peak resident memory (KiB) of *cmd* and the children it waited for,
    at least the small forking process's own (see :func:`peak_floor_kib`)."""
    exe = cmd[0] if os.sep in cmd[0] else shutil.which(cmd[0])
    assert exe is not None, f"{cmd[0]}: not found"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", _PEAK, exe, *cmd[1:]],
                       capture_output=True, text=True, env=env, check=True)
    return int(r.stdout)


def peak_floor_kib() -> int:
    """The least :func:`peak_kib` can report (its forking process)."""
    return peak_kib(["/bin/true"])


def landwrap_cmd() -> list[str]:
    """The installed `landwrap` beside this interpreter (the launcher), or
    ``python -m landwrap``."""
    exe = shutil.which("landwrap", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "landwrap"]


def python_rox() -> list[str]:
    out = []
    for p in sorted({sys.prefix, sys.base_prefix,
                     os.path.dirname(os.path.realpath(sys.executable))}):
        out += ["--rox", p]
    return out


def target(name: str, value: float, floor: float, limit: float, *, unit: str = "ms",
           floor_name: str = "", kind: str = "ratio",
           ratio: float | None = None) -> dict[str, Any]:
    """A row: *value* against *floor*; ``kind`` "ratio" (value/floor <=
    limit) or "delta" (value-floor <= limit, in *unit*).  *ratio*: the
    ratio measured another way (paired), instead of value/floor."""
    if ratio is None:
        ratio = value / floor if floor else float("inf")
    ok = (ratio <= limit) if kind == "ratio" else (value - floor <= limit)
    return {"figure": name, "value": value, "floor": floor, "floor_name": floor_name,
            "ratio": ratio, "delta": value - floor, "unit": unit, "kind": kind,
            "limit": limit, "result": "PASS" if ok else "MISS"}


def _bootstrap_argv(launcher: str) -> list[str] | None:
    """``[python, -I, -S, -c, bootstrap, launcher]`` as the installed
    launcher would exec it, or None (no sh launcher installed)."""
    try:
        with open(launcher, encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(os.path.dirname(launcher), "landwrap-py"),
                  encoding="utf-8") as f:
            py = f.readline()[2:].strip()
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"\nboot='(.*?)'\n", text, re.S)
    return [py, "-I", "-S", "-c", m.group(1), launcher] if m else None


def importtime_top(argv: list[str], n: int = 10) -> list[list[Any]]:
    """The *n* imports with the largest self time: [(us, cumulative_us, name)]."""
    r = subprocess.run(argv[:1] + ["-X", "importtime"] + argv[1:], capture_output=True,
                       text=True, check=False)
    rows = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, cum, name = line[12:].split("|")
            rows.append((int(own), int(cum), name.strip()))
    rows.sort(reverse=True)
    return [list(r) for r in rows[:n]] + [["total", sum(r[0] for r in rows), len(rows)]]


# 1. start-up -------------------------------------------------------------

#: The least any `landwrap run` written in Python can cost: the launcher's
#: sh, the interpreter isolated and without site, ``import os`` and the C
#: extension (cffi's backend), and spawning the target.  No policy at all.
RUN_FLOOR = "floor: sh + python -I -S + landwrap._lwcffi + spawn /bin/true"


def run_floor_argv(modules: Sequence[str] = (), *, spawn: bool = True) -> list[str]:
    """The command :data:`RUN_FLOOR` names; with *modules*, importing
    those too (:data:`IMPORT_FLOOR`); *spawn* False: without spawning
    /bin/true (:data:`STATUS_IMPORT_FLOOR`)."""
    imports = "".join(f"import {m}\n" for m in modules)
    # (without the garbage collector, as the launcher starts `run` and
    # `status`: its passes over what importing creates are not the imports')
    code = ("import gc\ngc.disable()\n"
            f"import os, sys\nsys.path += {_import_dirs()!r}\nimport landwrap._lwcffi\n"
            f"{imports}"
            + ("os.waitpid(os.posix_spawn('/bin/true', ['/bin/true'], {}), 0)\n" if spawn else "")
            + "os._exit(0)\n")
    return ["/bin/sh", "-c", 'exec "$0" -I -S -c "$1"', sys.executable, code]


#: :data:`RUN_FLOOR` plus the kernel work of the sandbox `landwrap run`
#: builds for /bin/true, made from C (csrc/floor.c): a ruleset handling
#: the same rights, the same paths each opened (O_PATH), added with the
#: same rights and closed, the same port rules, and the child's
#: no_new_privs, capability drop (as root), Landlock domain and companion
#: filter.  No policy at all: the rules are given, not derived, and no
#: supervisor thread serves the filter.
SYSCALLS_FLOOR = "floor + the sandbox's system calls from C"

_SYSCALLS_FLOOR_CODE = r"""
import gc
gc.disable()
import os, sys
a = sys.argv
sys.path += a[1].split(os.pathsep)
from landwrap._lwcffi import ffi, lib
fs, net, scoped, size, parts, drop, last = map(int, a[2:9])
rfd = lib.lw_create_ruleset(fs, net, scoped, size)
ok = rfd >= 0
for group in a[9:]:
    head, _, rest = group.partition("\n")
    if head.startswith("port "):
        ok = ok and lib.lw_add_net_rule(rfd, int(rest), int(head[5:])) == 0
    else:
        names = rest.split("\n")
        blob = "\0".join(names).encode() + b"\0"
        ok = ok and lib.lw_floor_path_rules(rfd, blob, len(names), int(head)) == len(names)
true = ffi.new("char[]", b"/bin/true")
pid = lib.lw_floor_spawn(true, ffi.new("char *[]", [true, ffi.NULL]), rfd, parts, drop, last)
ok = ok and pid > 0 and os.waitpid(pid, 0)[1] == 0
os._exit(0 if ok else 1)
"""


def syscalls_floor_argv() -> list[str]:
    """The command :data:`SYSCALLS_FLOOR` names: the rules of the plan
    `landwrap run -q -- /bin/true` resolves here, handed to a process
    started as :data:`RUN_FLOOR`'s is."""
    from landwrap.cli import options, run
    from landwrap.engine import companion, compat

    opts = options.parse_run(["-q", "--", "/bin/true"])
    assert opts is not None  # (None: the arguments need click's parser)
    plan = run.build_profile(opts).ruleset.resolve()
    try:
        comp = companion.for_plan(plan, cap_add=(), supervised=True)
        size = (compat.ATTR_SIZE_SCOPED if plan.scoped else
                compat.ATTR_SIZE_NET if plan.net else compat.ATTR_SIZE_FS)
        by_access: dict[int, list[str]] = {}
        for rule in plan.rules:
            if "\n" not in rule.path:  # (argv's separator; none in the default sandbox)
                by_access.setdefault(rule.access, []).append(rule.path)
        groups = [f"{access}\n" + "\n".join(paths) for access, paths in by_access.items()]
        groups += [f"port {port}\n{bits}" for port, bits, _ in plan.ports]
        nums = (plan.fs, plan.net, plan.scoped, size, comp.parts(), int(comp.drop_caps),
                companion.cap_last())
    finally:
        plan.close()
    return ["/bin/sh", "-c", 'exec "$0" -I -S -c "$@"', sys.executable,
            _SYSCALLS_FLOOR_CODE, os.pathsep.join(_import_dirs()), *map(str, nums), *groups]


#: :data:`RUN_FLOOR` plus importing every module `landwrap run` imports,
#: doing nothing with them: what the Python implementation costs before
#: any of its work.
IMPORT_FLOOR = "floor + landwrap run's own modules imported (no work)"

_MODULES_OF = r"""
import os, sys
before = set(sys.modules)
sys.path += sys.argv[1].split(os.pathsep)
sys.argv = ["landwrap", *sys.argv[2:]]
out = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)   # (what the command prints)
from landwrap.__main__ import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
os.write(out, " ".join(sorted(m for m in set(sys.modules) - before
                              if m != "__main__")).encode())
"""

#: The commands whose modules :func:`modules_of` finds.
RUN_ARGS = ("run", "-q", "--", "/bin/true")
STATUS_ARGS = ("status",)


def modules_of(args: Sequence[str] = RUN_ARGS) -> list[str]:
    """The modules (landwrap's, cffi's backend, the standard library's) that
    `landwrap ARGS` imports, as the launcher starts it."""
    argv = [sys.executable, "-I", "-S", "-c", _MODULES_OF, os.pathsep.join(_import_dirs()),
            *args]
    for _ in range(2):   # the second, with the parse cache filled as the timed runs have it
        r = subprocess.run(argv, capture_output=True, text=True, check=True)
    return r.stdout.split()


#: `landwrap run -q -- /bin/true`'s steps timed inside one process started
#: as the launcher starts it (``-I -S``): where the time above the floor goes.
_PHASES = r"""
import time
t = [time.perf_counter()]
import gc, os, sys
gc.disable()
sys.path += sys.argv[1].split(os.pathsep)
from landwrap.cli import options, run
from landwrap.engine import companion, launcher
t.append(time.perf_counter())
prof = run.build_profile(options.parse_run(["-q", "--", "/bin/true"]))
t.append(time.perf_counter())
plan = prof.ruleset.resolve()
t.append(time.perf_counter())
plan.ruleset_fd()
t.append(time.perf_counter())
env = launcher.build_env(prof.env_clean, prof.env_settings())
comp = companion.for_plan(plan, cap_add=(), supervised=True)
status = launcher.run(plan, ["/bin/true"], env, path="/bin/true", companion=comp)
t.append(time.perf_counter())
print(" ".join(str((b - a) * 1000) for a, b in zip(t, t[1:])), status)
sys.stdout.flush()
os._exit(0)
"""
PHASES = ("imports (os, landwrap, cffi)", "profile (load, validate)", "resolve", "kernel ruleset", "spawn + wait")


def startup_phases(n: int) -> dict[str, float]:
    """Median ms of each of :data:`PHASES` over *n* runs of :data:`_PHASES`."""
    xs: list[list[float]] = [[] for _ in PHASES]
    argv = [sys.executable, "-I", "-S", "-c", _PHASES, os.pathsep.join(_import_dirs())]
    for _ in range(n):
        r = subprocess.run(argv, capture_output=True, text=True, check=True)
        *ms, status = r.stdout.split()
        if status != "0":
            raise RuntimeError(f"/bin/true in the sandbox: exit {status}")
        for x, v in zip(xs, ms):
            x.append(float(v))
    return {k: statistics.median(x) for k, x in zip(PHASES, xs)}


def bench_startup(n: int) -> dict[str, Any]:
    lw = landwrap_cmd()
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
        "landwrap run -q -- /bin/true": lw + ["run", "-q", "--", "/bin/true"],
    }
    pip_script = shutil.which("landwrap-py", path=os.path.dirname(sys.executable))
    if pip_script:
        cmds["landwrap-py run -q -- /bin/true (pip's script)"] = [
            pip_script, "run", "-q", "--", "/bin/true"]
    cmds["/bin/true"] = ["/bin/true"]
    cmds[RUN_FLOOR] = run_floor_argv()
    cmds[SYSCALLS_FLOOR] = syscalls_floor_argv()
    modules = modules_of(RUN_ARGS)
    cmds[IMPORT_FLOOR] = run_floor_argv(modules)
    med = interleaved(cmds, n)
    py = med["python -c pass"]
    out = {"medians_ms": med, "launcher": " ".join(lw),
           "run floor / python -c pass": med[RUN_FLOOR] / py,
           "syscalls floor / python -c pass": med[SYSCALLS_FLOOR] / py,
           "import floor / python -c pass": med[IMPORT_FLOOR] / py,
           "run modules": len(modules),
           "target": target("landwrap run -q -- /bin/true", med["landwrap run -q -- /bin/true"],
                            py, 1.2, floor_name="python -c pass"),
           "vs -I -S": med["landwrap run -q -- /bin/true"] / med["python -I -S -c pass"]}
    out["phases_ms"] = startup_phases(n)
    boot = _bootstrap_argv(lw[0]) if len(lw) == 1 else None
    run = ["run", "-q", "--", "/bin/true"]
    out["importtime_launcher"] = importtime_top(boot + run) if boot else None
    out["importtime_pip_script"] = importtime_top(
        [sys.executable, pip_script] + run) if pip_script else None
    return out


# 2. a 10,000-path profile ------------------------------------------------

def _make_tree(d: str, paths: int) -> list[str]:
    files = []
    for i in range(paths):
        sub = os.path.join(d, "t", f"d{i // 100:04d}")
        if i % 100 == 0:
            os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, f"f{i:06d}")
        with open(p, "w"):
            pass
        files.append(p)
    return files


def _write_profile(path: str, files: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'description = "{len(files)} paths"\n[filesystem]\nro = [\n')
        f.writelines(f'  "{p}",\n' for p in files)
        f.write("]\n")


def bench_profile(paths: int, rounds: int) -> dict[str, Any]:
    from .engine import _binding, compat
    from .profiles import profile

    abi = _binding.kernel_abi()
    fs = compat.mask(compat.FS_RIGHTS, abi)
    ro = compat.access_bits("ro") & fs & compat.FS_FILE
    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        files = _make_tree(d, paths)
        prof_path = os.path.join(d, "big.toml")
        _write_profile(prof_path, files)
        env = {"LANDWRAP_CACHE_DIR": os.path.join(d, "cache")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            t0 = time.perf_counter()
            profile.load([prof_path], dirs=[])     # cold: TOML parse, fills the cache
            first = (time.perf_counter() - t0) * 1000
            times: dict[str, list[float]] = {"load, cached": [], "resolve (+ rules bound)": [],
                           "build (rest of the ruleset)": [], "floor": []}
            for _ in range(rounds):
                a = time.perf_counter()
                prof = profile.load([prof_path], dirs=[])
                b = time.perf_counter()
                plan = prof.ruleset.resolve()
                c = time.perf_counter()
                plan.ruleset_fd()
                e = time.perf_counter()
                plan.close()
                # (neither figure counts closing its ruleset: freeing 10,000
                # rules is the kernel's, ~15% of the floor, and landwrap's
                # ruleset lives on for the run)
                f0 = time.perf_counter()
                rfd = _binding.create_ruleset(fs, 0, 0, compat.ATTR_SIZE_FS)
                floor_rules = _binding.floor_path_rules(rfd, files, ro)
                f1 = time.perf_counter()
                os.close(rfd)
                for k, dt in zip(times, (b - a, c - b, e - c, f1 - f0)):
                    times[k].append(dt * 1000)
            # (counted apart: the plan's list of rules is made when first
            # read, which a run never does)
            plan = profile.load([prof_path], dirs=[]).ruleset.resolve()
            rules = len(plan.rules)
            plan.close()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med.pop("floor")
    total = sum(med.values())
    return {"paths": paths, "kernel rules": rules, "floor rules": floor_rules,
            "first parse (ms)": first, "phases_ms": med,
            "target": target(f"{paths:,}-path profile: load+resolve+enforce", total, floor,
                             1.3, floor_name="C: open+add_rule+close")}


# 3. the Python API -------------------------------------------------------

def bench_api(n: int) -> dict[str, Any]:
    import landwrap
    from landwrap import api
    from landwrap.engine import spawn

    rs = landwrap.Ruleset.from_profile("default")
    landwrap.run(["/bin/true"], ruleset=rs, check=True)   # builds the ruleset once
    plan = rs.plan()
    bare, sandboxed = spawn.floors(plan, api._companion_of(plan), ["/bin/true"])
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "run": (lambda: subprocess.run(["/bin/true"]),
                lambda: landwrap.run(["/bin/true"], ruleset=rs)),
        "Popen": (lambda: subprocess.Popen(["/bin/true"]).wait(),
                  lambda: landwrap.Popen(["/bin/true"], ruleset=rs).wait()),
        # the same spawn from C with nothing but the system calls: bare, and
        # with the sandbox's (csrc/floor.c)
        "floor": (lambda: os.waitpid(bare.start(), 0),
                  lambda: os.waitpid(sandboxed.start(), 0)),
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
    for _ in range(min(20, n)):
        for plain, boxed in pairs.values():
            plain(), boxed()
    for _ in range(n):
        for name, (plain, boxed) in pairs.items():
            xs, ys = times[name]
            t = time.perf_counter()
            plain()
            u = time.perf_counter()
            boxed()
            xs.append(u - t)
            ys.append(time.perf_counter() - u)
    ms = {name: (statistics.median(xs) * 1000, statistics.median(ys) * 1000)
          for name, (xs, ys) in times.items()}
    out: dict[str, Any] = {}
    for name in ("run", "Popen"):
        out[name] = target(f"landwrap.{name} (prebuilt ruleset)", ms[name][1], ms[name][0],
                           1.05, floor_name=f"subprocess.{name}")
    plain_floor, boxed_floor = ms["floor"]
    out["floors_ms"] = {"C: vfork + execve": plain_floor,
                        "C: + the sandbox's system calls": boxed_floor}
    # what the kernel's share leaves reachable: subprocess.run + that share
    out["best reachable (x subprocess.run)"] = (ms["run"][0] + boxed_floor
                                                - plain_floor) / ms["run"][0]
    out["runs"] = n
    return out


# 4. file-heavy work ------------------------------------------------------

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


def _import_dirs() -> list[str]:
    """Where landwrap and _cffi_backend are, for a worker started with -I -S."""
    import _cffi_backend  # type: ignore[import-untyped]  # cffi has no type hints here

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return sorted({here, os.path.dirname(os.path.abspath(_cffi_backend.__file__))})


FILES_FLOORS = {
    # name in the report: worker mode
    "bare one-rule domain": "bare",
    "one read-only rule": "ro",
    "one read-only rule + the companion filter": "ro+filter",
}


def _lockstep(cmds: dict[str, list[str]], count: int, chunk: int, rounds: int,
              d: str) -> dict[str, list[list[float]]]:
    """Run the WORKER of each command (name -> argv) in lockstep: the same
    chunk of the file list in each in turn (the order rotating from chunk to
    chunk), *rounds* times over the list after a warm-up round (the page
    cache).  ``{name: [[ms of chunk c] per chunk] per round]}``: pairs of
    times taken within milliseconds of each other, so that the load of the
    machine, which moves over seconds, hits both alike."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    errs = {k: os.path.join(d, f"stderr{i}") for i, k in enumerate(cmds)}
    spans = [(i, min(i + chunk, count)) for i in range(0, count, chunk)]
    out: dict[str, list[list[float]]] = {k: [] for k in cmds}
    names = list(cmds)

    def ask(k: str, span: tuple[int, int]) -> float:
        p = procs[k]
        assert p.stdin is not None and p.stdout is not None
        try:
            p.stdin.write(b"%d %d\n" % span)
            p.stdin.flush()
            line = p.stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line:
            with open(errs[k], encoding="utf-8", errors="replace") as f:
                raise RuntimeError(f"{' '.join(cmds[k])[:200]}: {f.read()[-500:].strip()}")
        return int(line.split()[0]) / 1e6

    try:
        for k, cmd in cmds.items():
            with open(errs[k], "wb") as err:
                procs[k] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=err)
        for k in names:
            ask(k, (0, count))                # warm-up: set up, and the page cache
        turn = 0
        for _ in range(rounds):
            for k in names:
                out[k].append([])
            for span in spans:
                for k in names[turn % len(names):] + names[:turn % len(names)]:
                    out[k][-1].append(ask(k, span))
                turn += 1
    finally:
        for p in procs.values():
            assert p.stdin is not None and p.stdout is not None
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
            p.stdout.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return out


def paired(xs: dict[str, list[list[float]]], a: str, b: str) -> float:
    """The median over every chunk of every round of a's time / b's."""
    return statistics.median(x / y for ra, rb in zip(xs[a], xs[b]) for x, y in zip(ra, rb))


def bench_files(count: int, chunk: int, rounds: int) -> dict[str, Any]:
    """Target 4: open+read of *count* files of /usr in the default sandbox
    (``landwrap run``) against the same loop in a bare one-rule domain, and
    the floors that show what the sandbox's own rules cost: one read-only
    rule, and the companion filter beside it.  Every worker runs the loop
    in lockstep (:func:`_lockstep`); the ratios are medians of paired
    per-chunk ratios."""
    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        listing = os.path.join(d, "files")
        worker = os.path.join(d, "worker.py")
        with open(listing, "wb") as f:
            f.write(_file_list(count))
        with open(worker, "w", encoding="utf-8") as f:
            f.write(WORKER)
        plain = [sys.executable, "-I", "-S", worker, listing]
        # (-p default: left to choose, landwrap picks the python profile
        # for an interpreter it is for, e.g. /usr/bin/python3.11)
        cmds = {"outside": plain,
                "landwrap default sandbox":
                    landwrap_cmd() + ["run", "-q", "-p", "default", *python_rox(), "--ro", d,
                                      "--"] + plain}
        for name, mode in FILES_FLOORS.items():
            cmds[name] = plain + [mode] + _import_dirs()
        xs = _lockstep(cmds, count, chunk, rounds, d)
    per_pass = {k: statistics.median(sum(r) for r in v) for k, v in xs.items()}
    box, bare, ro, floor = ("landwrap default sandbox", *FILES_FLOORS)
    ratios = {
        "bare/outside": paired(xs, bare, "outside"),
        "landwrap/bare": paired(xs, box, bare),
        "read-only rule/bare": paired(xs, ro, bare),
        "filter (read-only rule + filter / read-only rule)": paired(xs, floor, ro),
        "floor/bare": paired(xs, floor, bare),
        "landwrap/floor": paired(xs, box, floor),
    }
    return {"files": count, "chunk": chunk, "rounds": rounds,
            "pairs": rounds * -(-count // chunk),
            "clock": "CPU time of the loop", "per_pass_ms": per_pass,
            "paired ratios": ratios,
            "target": target(f"open+read of {count:,} files (CPU time)", per_pass[box], per_pass[bare],
                             1.02, floor_name=bare, ratio=ratios["landwrap/bare"])}


# 5. --log-denials --------------------------------------------------------

def bench_denials(n: int) -> dict[str, Any]:
    """Target 5: ``--log-denials`` against the same run without it; then
    1,000 denials, all alike and all different, each the time with and
    without ``--log-denials`` and the launcher's peak memory.  The denier
    is ``cat`` given the files 1,000 times: one small process, so the peak
    (the largest of the launcher and what it waited for) is the
    launcher's."""
    lw = landwrap_cmd()
    base = lw + ["run", "-q", "--", "/bin/true"]
    logged = lw + ["run", "--log-denials", "-q", "--", "/bin/true"]
    probe = subprocess.run(logged, capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return {"unavailable": (probe.stderr.strip().splitlines() or ["?"])[-1]}
    med = interleaved({"without": base, "with --log-denials": logged}, n)
    out = {"medians_ms": med,
           "target": target("landwrap run --log-denials -q -- /bin/true",
                            med["with --log-denials"], med["without"], 15.0, kind="delta",
                            floor_name="the same without --log-denials")}
    cat = shutil.which("cat") or "/bin/cat"
    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        denied = os.path.join(d, "denied")
        files = [os.path.join(d, f"f{i}") for i in range(1000)]
        for f in [denied] + files:
            with open(f, "w"):
                pass
        for key, args in (("1000 denials", [denied] * 1000),
                          ("1000 distinct denials", files)):
            plain = lw + ["run", "-q", "-p", "default", "--", cat, *args]
            cmd = lw + ["run", "--log-denials", "-q", "-p", "default", "--", cat, *args]
            # (cat exits 1, as it should: interleaved() wants 0)
            times = interleaved({"with": _status0(cmd), "without": _status0(plain)},
                                max(3, n // 5))
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            seen = re.search(r"denied (\d+) access", r.stderr)
            lost = re.search(r"kernel counted (\d+) denials; (\d+) were not logged", r.stderr)
            out[key] = {"ms": times["with"], "ms without --log-denials": times["without"],
                        "peak_kib": peak_kib(cmd),
                        "peak_kib without --log-denials": peak_kib(plain),
                        "denials reported": int(seen.group(1)) if seen else None,
                        "not logged by the kernel": int(lost.group(2)) if lost else 0,
                        "exit": r.returncode}
    return out


def _status0(cmd: list[str]) -> list[str]:
    """*cmd* through a shell that exits 0 when it exits 0 or 1 (``interleaved``
    checks for 0; the denier's 1 is expected, landwrap's 125 is not)."""
    return ["/bin/sh", "-c", '"$@"; [ $? -le 1 ]', "sh", *cmd]


# 6. other commands -------------------------------------------------------

def bench_commands(n: int) -> dict[str, Any]:
    from .profiles import lookup

    lw = landwrap_cmd()
    shipped = sorted(_shipped(lookup))
    modules = modules_of(STATUS_ARGS)
    med = interleaved({"python -c pass": [sys.executable, "-c", "pass"],
                       "landwrap status": lw + ["status"],
                       STATUS_IMPORT_FLOOR: run_floor_argv(modules, spawn=False),
                       "landwrap profile list": lw + ["profile", "list"],
                       f"landwrap profile check (all {len(shipped)} shipped)":
                           lw + ["profile", "check", *shipped]}, n)
    py = med["python -c pass"]
    return {"medians_ms": med, "shipped profiles": len(shipped),
            "status modules": len(modules),
            "status import floor / python -c pass": med[STATUS_IMPORT_FLOOR] / py,
            "target": target("landwrap status", med["landwrap status"], py,
                             1.5, floor_name="python -c pass")}


#: `sh` + ``python -I -S`` + the C extension, as :data:`RUN_FLOOR` without
#: the spawn, plus importing every module `landwrap status` imports, doing
#: nothing with them.
STATUS_IMPORT_FLOOR = "sh + python -I -S + landwrap status's own modules imported (no work)"


def _shipped(lookup: ModuleType) -> list[str]:
    d = lookup.PACKAGE_PROFILES
    return [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".toml")]


# 7. memory ---------------------------------------------------------------

def bench_memory(n: int) -> dict[str, Any]:
    lw = landwrap_cmd()
    py, run = [], []
    for _ in range(n):
        py.append(peak_kib([sys.executable, "-c", "pass"]))
        run.append(peak_kib(lw + ["run", "--", "/bin/true"]))
    a, b = statistics.median(run), statistics.median(py)
    return {"target": target("peak memory, landwrap run -- /bin/true", a, b, 1.3, unit="KiB",
                             floor_name="python -c pass"),
            "measurable floor (KiB)": peak_floor_kib()}


# scale -------------------------------------------------------------------

def bench_scale(sizes: Sequence[int], runs: int, depths: Iterable[int],
                nruns: int) -> dict[str, Any]:
    lw = landwrap_cmd()
    out: dict[str, list[dict[str, float]]] = {"profile size": [], "nesting": []}
    with tempfile.TemporaryDirectory(prefix="landwrap-bench-") as d:
        env = dict(os.environ, LANDWRAP_CACHE_DIR=os.path.join(d, "cache"))
        files = _make_tree(d, max(sizes))
        py = [sys.executable, "-c", "pass"]
        for size in sizes:
            prof = os.path.join(d, f"p{size}.toml")
            _write_profile(prof, files[:size])
            cmd = lw + ["run", "-q", "-p", "default", "-p", prof, "--", "/bin/true"]
            med = interleaved({"python": py, "run": cmd}, runs, env)
            out["profile size"].append({"paths": size, "ms": med["run"],
                                        "ratio": med["run"] / med["python"]})
    # each layer's landwrap must read its interpreter and its own code
    rox = python_rox() + [x for d in _import_dirs() for x in ("--rox", d)]
    for depth in depths:
        cmd = ["/bin/true"]
        for _ in range(depth):
            cmd = lw + ["run", "-q", *rox, "--"] + cmd
        med = interleaved({"python": [sys.executable, "-c", "pass"], "run": cmd}, nruns)
        out["nesting"].append({"layers": depth, "ms": med["run"],
                               "ms per layer": med["run"] / depth,
                               "ratio": med["run"] / med["python"]})
    return out


# report ------------------------------------------------------------------

def machine() -> dict[str, Any]:
    from .engine import _binding

    return {"kernel": platform.release(), "landlock_abi": _binding.kernel_abi(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "cpu": _cpu_model()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def run_all(mode: int) -> dict[str, Any]:
    """mode 0: full, 1: --quick, 2: --smoke."""
    c = {k: v[mode] for k, v in COUNTS.items()}
    t = time.perf_counter()
    res: dict[str, Any] = {"machine": machine(), "mode": ("full", "quick", "smoke")[mode]}
    steps: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
        ("1 startup", lambda: bench_startup(c["startup"])),
        ("2 profile", lambda: bench_profile(10_000 if mode < 2 else 200, c["profile"])),
        ("3 api", lambda: bench_api(c["api"])),
        ("4 files", lambda: bench_files(*c["files"])),
        ("5 denials", lambda: bench_denials(c["denials"])),
        ("6 commands", lambda: bench_commands(c["commands"])),
        ("7 memory", lambda: bench_memory(c["memory"])),
        ("scale", lambda: bench_scale(c["scale_sizes"], c["scale_runs"], c["nesting"],
                                              c["nesting_runs"])),
    )
    res["seconds per part"] = {}
    for key, fn in steps:
        t0 = time.perf_counter()
        res[key] = fn()
        res["seconds per part"][key] = round(time.perf_counter() - t0, 1)
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["seconds"] = time.perf_counter() - t
    return res


def targets(res: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every target row in the result, in order."""
    rows = []
    for k, v in res.items():
        if not isinstance(v, dict):
            continue
        for sub in v.values():
            if isinstance(sub, dict) and "result" in sub:
                rows.append((k, sub))
    return rows


def _fmt(x: float, unit: str) -> str:
    return f"{x:,.0f} {unit}" if unit == "KiB" else f"{x:.2f} {unit}"


def format_report(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"landwrap benchmark ({res['mode']}): Linux {m['kernel']}, Landlock ABI "
           f"{m['landlock_abi']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu']}), "
           f"load {m['loadavg'][0]} -> {m['loadavg_after'][0]}", "",
           "| # | figure (median) | value | floor | ratio | target | |",
           "|---|---|---|---|---|---|---|"]
    for k, r in targets(res):
        lim = (f"<= {r['limit']}x" if r["kind"] == "ratio"
               else f"<= +{r['limit']:g} {r['unit']}")
        ratio = f"{r['ratio']:.2f}x" if r["kind"] == "ratio" else f"+{r['delta']:.1f} {r['unit']}"
        out.append(f"| {k.split()[0]} | {r['figure']} | {_fmt(r['value'], r['unit'])} | "
                   f"{_fmt(r['floor'], r['unit'])} ({r['floor_name']}) | {ratio} | {lim} | "
                   f"{r['result']} |")
    s = res["1 startup"]
    out += ["", "Start-up (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in s["medians_ms"].items())
            + f"; landwrap run / python -I -S -c pass = {s['vs -I -S']:.2f}x",
            f"Start-up {RUN_FLOOR}: {s['medians_ms'][RUN_FLOOR]:.2f} ms = "
            f"{s['run floor / python -c pass']:.2f}x python -c pass; landwrap run is "
            f"+{s['medians_ms']['landwrap run -q -- /bin/true'] - s['medians_ms'][RUN_FLOOR]:.2f}"
            " ms above it",
            f"Start-up {SYSCALLS_FLOOR}: {s['medians_ms'][SYSCALLS_FLOOR]:.2f} ms = "
            f"{s['syscalls floor / python -c pass']:.2f}x python -c pass: the same "
            "ruleset, domain, filter and capability drop, with no policy",
            f"Start-up {IMPORT_FLOOR}: {s['medians_ms'][IMPORT_FLOOR]:.2f} ms = "
            f"{s['import floor / python -c pass']:.2f}x python -c pass ({s['run modules']} "
            "modules): what a launcher written in Python costs before doing anything",
            "Start-up steps inside the process (ms): " + ", ".join(
                f"{k} {v:.2f}" for k, v in s["phases_ms"].items())]
    p = res["2 profile"]
    out.append(f"Profile of {p['paths']:,} paths (ms): " + ", ".join(
        f"{k} {v:.2f}" for k, v in p["phases_ms"].items())
        + f"; kernel rules {p['kernel rules']}; first parse {p['first parse (ms)']:.1f}")
    a = res["3 api"]
    out.append("API spawn floors (ms): " + ", ".join(
        f"{k} {v:.3f}" for k, v in a["floors_ms"].items())
        + "; best reachable landwrap.run / subprocess.run (subprocess.run + the sandbox's "
        f"system calls): {a['best reachable (x subprocess.run)']:.2f}x")
    f = res["4 files"]
    fr = f["paired ratios"]
    out.append(f"File-heavy work, {f['clock']} per pass of {f['files']:,} files (ms, median "
               f"of {f['rounds']}): " + ", ".join(
                   f"{k} {v:.1f}" for k, v in f["per_pass_ms"].items()))
    out.append(f"File-heavy work, ratios (medians of {f['pairs']} paired chunks of "
               f"{f['chunk']:,} files, the workers in lockstep): " + ", ".join(
                   f"{k} {v:.3f}x" for k, v in fr.items()))
    out.append(f"File-heavy work, the floor under target 4: a domain whose one rule grants "
               f"only read+execute, with the companion filter, is {fr['floor/bare']:.3f}x the "
               f"bare one-rule domain (the read-only rule {fr['read-only rule/bare']:.3f}x, "
               f"the filter {fr['filter (read-only rule + filter / read-only rule)']:.3f}x); "
               f"landwrap's default sandbox is {fr['landwrap/floor']:.3f}x that floor")
    dn = res["5 denials"]
    if "unavailable" in dn:
        out.append(f"--log-denials: unavailable ({dn['unavailable']})")
    else:
        for key in ("1000 denials", "1000 distinct denials"):
            k = dn[key]
            lost = (f" ({k['not logged by the kernel']} not logged: the kernel's audit queue)"
                    if k["not logged by the kernel"] else "")
            out.append(f"--log-denials with {key.replace('1000', '1,000')} (cat): "
                       f"{k['ms']:.0f} ms ({k['ms without --log-denials']:.0f} without), "
                       f"launcher peak {k['peak_kib']:,} KiB "
                       f"({k['peak_kib without --log-denials']:,} without), "
                       f"{k['denials reported']} denials reported{lost}")
    cm = res["6 commands"]
    out.append("Commands (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in cm["medians_ms"].items()))
    out.append(f"Status floor, {STATUS_IMPORT_FLOOR}: "
               f"{cm['status import floor / python -c pass']:.2f}x python -c pass "
               f"({cm['status modules']} modules); landwrap status is "
               f"{cm['target']['ratio']:.2f}x")
    sc = res["scale"]
    out += ["", "| profile paths | landwrap run (ms) | x python -c pass |", "|---|---|---|"]
    out += [f"| {r['paths']:,} | {r['ms']:.1f} | {r['ratio']:.2f}x |" for r in sc["profile size"]]
    out += ["", "| nesting layers | landwrap run (ms) | ms per layer | x python -c pass |",
            "|---|---|---|---|"]
    out += [f"| {r['layers']} | {r['ms']:.1f} | {r['ms per layer']:.1f} | {r['ratio']:.2f}x |"
            for r in sc["nesting"]]
    for key, title in (("importtime_pip_script", "pip's console script"),
                       ("importtime_launcher", "the launcher (-I -S)")):
        rows = s.get(key)
        if rows:
            out += ["", f"-X importtime, top ten by self time, {title} "
                        f"(total {rows[-1][1]} us in {rows[-1][2]} modules):"]
            out += [f"  {own:>7} us  {cum:>7} us  {name}" for own, cum, name in rows[:-1]]
    out.append(f"\n({res['seconds']:.0f} s)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    unknown = [a for a in args if a not in ("--quick", "--smoke", "--json", "-h", "--help")]
    if unknown or "-h" in args or "--help" in args:
        print(__doc__.split("\n\n")[1].strip() if not unknown else
              f"python -m landwrap.bench: unknown option {unknown[0]}", file=sys.stderr)
        return 0 if not unknown else 2
    mode = 2 if "--smoke" in args else 1 if "--quick" in args else 0
    # The default profile reads the current directory: from /tmp, say, it
    # would read the files the denial benchmark means to be denied.  From /
    # that rule is skipped, the same wherever the benchmark is started.
    os.chdir("/")
    res = run_all(mode)
    if "--json" in args:
        print(json.dumps(res, indent=2))
    else:
        print(format_report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
