"""profilecmd.py: the work behind `landwrap profile list|show|check|export`.

Finds, resolves and validates profiles through ``profile`` and formats the
results as text or JSON-ready data; the click commands in ``cli`` only call
these and print.  Also the profile-name completion used by the shell
completion.  Never imports click, and never enforces anything: resolving
a profile opens its paths (O_PATH) but makes no Landlock call.
"""

from __future__ import annotations

import os

from ..engine import compat
from ..profiles import lookup, parse, profile, validate
from ..engine.present import short_access
from ..engine.safetext import printable
from ..engine.errors import LandlockUnavailable, LandwrapError, ProfileError, UnsupportedFeature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, List, TypedDict

    from ..engine.plan import Plan

    Shadowed = TypedDict("Shadowed", {"path": str, "from": str})
    #: One profile of `profile list` (``--json`` prints these).
    ProfileRow = TypedDict("ProfileRow", {"name": str, "path": str, "from": str,
                                          "description": str, "shadowed": List[Shadowed],
                                          "local": List[str]})

#: Where a profile directory sits on the profile path, for `profile list`.
ORIGINS = ("LANDWRAP_PROFILE_PATH", "user", "system", "package")


def origin_of(path: str, environ: Mapping[str, str] | None = None) -> str:
    """``LANDWRAP_PROFILE_PATH``, ``user`` ($XDG_CONFIG_HOME), ``system``
    (/etc) or ``package`` for a file found on the profile path; ``file``
    for anything else."""
    env = os.environ if environ is None else environ
    d = os.path.dirname(path)
    extra = [x for x in env.get("LANDWRAP_PROFILE_PATH", "").split(":") if x]
    fixed = lookup.search_path(env)[len(extra):]
    if d in extra:
        return "LANDWRAP_PROFILE_PATH"
    for label, fd in zip(ORIGINS[1:], fixed):
        if d == fd:
            return label
    return "file"


# list ------------------------------------------------------------------

def list_rows(dirs: Sequence[str] | None = None,
              environ: Mapping[str, str] | None = None) -> list[ProfileRow]:
    """One dict per profile name on the profile path: ``name``, ``path``
    (the file that wins), ``from``, ``description``, ``shadowed`` (files of
    the same name further down the path) and ``local`` (its .local.toml
    additions)."""
    dirs = lookup.search_path(environ) if dirs is None else dirs
    rows: list[ProfileRow] = []
    for name, path, desc, shadowed in profile.list_profiles(dirs):
        rows.append({
            "name": name,
            "path": path,
            "from": origin_of(path, environ),
            "description": desc,
            "shadowed": [{"path": p, "from": origin_of(p, environ)} for p in shadowed],
            "local": lookup.find_locals(name, dirs),
        })
    return rows


def format_list(rows: list[ProfileRow]) -> str:
    if not rows:
        return "No profiles found on the profile path.\n"
    wn = max(len(r["name"]) for r in rows)
    wf = max(len(r["from"]) for r in rows)
    wn, wf = max(wn, 4), max(wf, 4)
    out = [f"{'NAME':<{wn}}  {'FROM':<{wf}}  DESCRIPTION"]
    for r in rows:
        desc = printable(r["description"] or "")
        if r["local"]:
            desc += f"  (+{len(r['local'])} .local.toml)"
        out.append(f"{printable(r['name']):<{wn}}  {r['from']:<{wf}}  {desc}".rstrip())
        for s in r["shadowed"]:
            out.append(f"{'':<{wn}}  {s['from']:<{wf}}  shadowed: {printable(s['path'])}")
    return "\n".join(out) + "\n"


# show ------------------------------------------------------------------

def locate(spec: str, dirs: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """(path, local_files) of a profile name or path; ProfileError if there
    is no such profile."""
    dirs = lookup.search_path() if dirs is None else dirs
    if lookup.is_path(spec):
        p = os.path.abspath(os.path.expanduser(spec))
        if not os.path.isfile(p):
            raise ProfileError("no such file", p)
        return p, []
    return lookup.locate(spec, None, dirs), lookup.find_locals(spec, dirs)


def show_written(spec: str, dirs: Sequence[str] | None = None) -> str:
    """The profile file as written (and its .local.toml additions)."""
    path, locals_ = locate(spec, dirs)
    texts: list[str] = []
    for i, p in enumerate([path] + locals_):
        try:
            with open(p, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ProfileError(e.strerror or str(e), p) from None
        text = "\n".join(printable(line).replace("\\t", "\t")
                         for line in raw.decode("utf-8", errors="replace").split("\n"))
        if locals_:
            texts.append(f"# ==> {printable(p)}" + (" (merged on top)" if i else "") + "\n")
        texts.append(text if text.endswith("\n") or not text else text + "\n")
    return "".join(texts)


def written_documents(spec: str, dirs: Sequence[str] | None = None) -> dict[str, Any]:
    """The parsed documents, for `profile show --json`."""
    path, locals_ = locate(spec, dirs)
    return {"path": path, "document": parse.load_document(path),
            "local": [{"path": p, "document": parse.load_document(p)} for p in locals_]}


def _resolve(prof: validate.Profile, abi: int | None = None) -> tuple[Plan, str | None]:
    """(plan, note): the plan `landwrap run` would enforce here; when strict
    mode would refuse, the best-effort plan and a note saying so."""
    try:
        return prof.ruleset.resolve(abi=abi), None
    except (UnsupportedFeature, LandlockUnavailable) as e:
        plan = prof.ruleset.resolve(compat_mode="best-effort", abi=abi)
        return plan, (f"{e.message} (`landwrap run` refuses it without --best-effort; "
                      "shown as best-effort)")


def resolved(spec: str, *, abi: int | None = None,
             dirs: Sequence[str] | None = None) -> dict[str, Any]:
    """The profile fully resolved: files used in order, every path with its
    status (``present``, ``missing`` or ``merged``), ports, scopes, env and
    the kernel plan.  Raises ProfileError (or another LandwrapError)."""
    prof = profile.load([spec], dirs=dirs)
    rs = prof.ruleset
    plan, note = _resolve(prof, abi)
    skipped = {(p, o): why for p, o, why in plan.skipped}
    kept = {r.path for r in plan.rules}
    merged = {p: c for p, _, c in plan.redundant}
    paths = []
    for r in rs.paths:
        entry = {"path": r.path, "access": compat.names(compat.FS_RIGHTS, r.access),
                 "short": _short(r.access), "from": r.origin, "required": r.required}
        if (r.path, r.origin) in skipped:
            entry["status"] = "missing"
            entry["reason"] = skipped[(r.path, r.origin)]
        else:
            real = os.path.realpath(r.path)
            entry["real"] = real
            if real in kept:
                entry["status"] = "present"
            elif real in merged:
                entry["status"] = "merged"
                entry["covered_by"] = merged[real]
            else:
                entry["status"] = "present"
        paths.append(entry)
    ports = []
    for lo, hi, bits, origin in rs.ports:
        ports.append({"ports": str(lo) if lo == hi else f"{lo}-{hi}",
                      "access": compat.names(compat.NET_RIGHTS, bits), "from": origin})
    main = None if lookup.is_path(spec) else lookup.find(spec, dirs)
    return {
        "profile": spec,
        "files": list(prof.sources),
        "description": prof.description,
        "programs": ([] if main is None
                     else validate.programs(parse.load_document(main), main, spec)),
        "compat": rs.compat,
        "abi": rs.abi,
        "filesystem": {
            "restricted": bool(rs.fs),
            "paths": paths,
            "globs_matching_nothing": [{"pattern": p, "from": o} for p, o in prof.skipped_globs],
            "hidden": [{"path": p, "from": o} for p, o in rs.hidden],
            "private_tmp": prof.private_tmp,
            "cwd_left_out": [{"path": p, "from": o, "reason": w}
                             for p, o, w in prof.skipped_cwd],
            "create": [{"path": p, "from": o} for p, o in prof.create_dirs],
        },
        "network": {"restricted": bool(rs.net), "ports": ports},
        "scope": {name: bool(rs.scopes & bit) for name, (bit, _) in compat.SCOPES.items()},
        "env": {"clean": prof.env_clean, "pass": list(prof.env_pass),
                "set": dict(prof.env_set)},
        "note": note,
        "plan": plan.to_dict(),
    }


def _short(bits: int) -> str:
    return short_access(bits, compat.FS_ALL)


def format_resolved(view: dict[str, Any]) -> str:
    p_ = printable
    out = [f"Profile: {p_(view['profile'])}"]
    out.append("Files: " + (" -> ".join(map(p_, view["files"])) or "(none)"))
    if view["description"]:
        out.append(f"Description: {p_(view['description'])}")
    if view.get("programs"):
        out.append("Chosen automatically for: " + ", ".join(map(p_, view["programs"]))
                   + " (by real path; anything else gets `default` unless -p names it)")
    plan = view["plan"]
    cap = f"abi cap {view['abi']}" if view["abi"] else "no abi cap"
    kabi = plan["kernel_abi"]
    out.append(f"Compat: {view['compat']}, {cap}; here: {plan['status']} enforced at "
               f"ABI {plan['abi']}" + (f" (kernel ABI {kabi})" if kabi is not None
                                       else " (no Landlock in this kernel)"))
    if view["note"]:
        out.append(f"Note: {p_(view['note'])}")
    fs = view["filesystem"]
    out.append("Filesystem: " + ("restricted" if fs["restricted"] else "not restricted"))
    if fs["paths"]:
        wa = min(max(len(p["short"]) for p in fs["paths"]), 5)  # a long list just overflows
        wp = min(max(len(p["path"]) for p in fs["paths"]), 40)
        for p in fs["paths"]:
            why = []
            if p.get("real") and p["real"] != p["path"]:
                why.append(f"-> {p['real']}")
            if p["status"] == "merged" and p.get("covered_by"):
                why.append(f"covered by {p['covered_by']}")
            elif p["status"] == "merged":
                why.append("no right this kernel handles")
            elif p["status"] == "missing":
                why.append(p["reason"] + (", required" if p["required"] else ""))
            status = p["status"] + (f" ({', '.join(why)})" if why else "")
            out.append(f"  {p['short']:<{wa}}  {p_(p['path']):<{wp}}  {p_(status)}    "
                       f"# {p_(p['from'])}")
    for g in fs["globs_matching_nothing"]:
        out.append(f"  glob matching nothing: {p_(g['pattern'])}    # {p_(g['from'])}")
    for c in fs.get("cwd_left_out", ()):
        out.append(f"  left out: {p_(c['path'])} ({p_(c['reason'])})    # {p_(c['from'])}")
    for c in fs.get("create", ()):
        out.append(f"  created by `landwrap run` if missing (0700): {p_(c['path'])}    "
                   f"# {p_(c['from'])}")
    if fs.get("private_tmp"):
        out.append("  private TMPDIR: a fresh directory for each run, read-write")
    hidden = fs.get("hidden") or []
    if hidden:
        out.append(f"Hidden ({len(hidden)}; every grant above them is replaced by rules on "
                   "the other entries of each directory on the way, which keeps read_dir):")
        for h in hidden:
            out.append(f"  {p_(h['path'])}    # {p_(h['from'])}")
        carved = [r for r in plan["rules"] if any("(hiding " in o for o in r["from"])]
        if carved:
            out.append(f"  -> {len(carved)} kernel rules around them, e.g. "
                       + ", ".join(f"{r['short']} {p_(r['path'])}" for r in carved[:4])
                       + " (--dry-run lists them all)")
    net = view["network"]
    out.append("Network: " + ("restricted" if net["restricted"] else "not restricted"))
    for p in net["ports"]:
        out.append(f"  {', '.join(p['access'])}  {p['ports']}    # {p_(p['from'])}")
    if net["restricted"] and not net["ports"]:
        out.append("  (no port allowed)")
    sc = [n for n, on in view["scope"].items() if on]
    out.append("Scopes: " + (", ".join(sc) + " isolated" if sc else "none"))
    env = view["env"]
    bits = []
    if env["clean"]:
        bits.append("clean")
    if env["pass"]:
        bits.append("pass " + " ".join(env["pass"]))
    bits += [f"{k}={v}" for k, v in env["set"].items()]
    out.append("Env: " + (p_("; ".join(bits)) if bits else "inherited"))
    if plan["dropped"]:
        out.append("Not enforced by this kernel: " + "; ".join(plan["dropped"]))
    return "\n".join(out) + "\n"


# check -----------------------------------------------------------------

def check(spec: str, dirs: Sequence[str] | None = None) -> list[str]:
    """Errors of one profile file or name, as ``FILE:LINE: key: message``
    lines (empty when it is valid): every error of the file itself, each
    with its line (validation goes on past an error with the offending key
    left out), then every missing required path.  Loads it with its
    extends and .local additions and resolves its paths (best effort, so
    that the kernel's ABI does not matter)."""
    if not lookup.is_path(spec) and os.path.isfile(spec):
        spec = "./" + spec  # a file given by a bare name, not a profile name
    errors: list[LandwrapError] = []
    try:
        prof = profile.load([spec], dirs=dirs)
    except ProfileError as e:
        errors.append(e)
        if e.key and e.file:
            errors += validate.more_errors(e.file, e)
        return _lines(errors)
    except LandwrapError as e:
        return _lines([e])
    for r in prof.ruleset.paths:
        if r.required and not os.path.lexists(r.path):
            file, _, key = (r.origin or "").rpartition(": ")
            line = parse.line_of(file, *validate.table_of(key)) if file else None
            errors.append(ProfileError(f"{printable(r.path)}: no such file or directory "
                                       "(the rule is required)", file or None, line,
                                       key or None))
    if not errors:
        try:
            prof.ruleset.resolve(compat_mode="best-effort")
        except LandwrapError as e:
            errors.append(e)
    return _lines(errors)


def _lines(errors: Iterable[LandwrapError]) -> list[str]:
    lines = []
    for e in errors:
        lines.append(printable(e))
        if e.hint:
            lines.append(f"Hint: {printable(e.hint)}")
    return lines


# export ----------------------------------------------------------------

def export(spec: str, *, abi: int | None = None, fmt: str = "toml",
           dirs: Sequence[str] | None = None) -> str:
    """The resolved profile as landlockconfig text (see ``llconfig``)."""
    from ..profiles import landlockconfig  # lazy: only `profile export`

    prof = profile.load([spec], dirs=dirs)
    return landlockconfig.export(prof, abi=abi, fmt=fmt)


# completion ------------------------------------------------------------

def complete_profiles(incomplete: str,
                      dirs: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """[(name, description)] of profiles whose name starts with
    *incomplete*, for shell completion."""
    try:
        rows = profile.list_profiles(dirs)
    except Exception:  # completion must never print a traceback into a shell
        return []
    return [(name, desc) for name, _, desc, _ in rows if name.startswith(incomplete)]


def complete_commands(incomplete: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Executable names on $PATH starting with *incomplete*."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for d in (env.get("PATH") or "").split(":"):
        try:
            with os.scandir(d or ".") as it:
                for e in it:
                    if e.name.startswith(incomplete) and e.name not in found:
                        try:
                            if e.is_file() and os.access(e.path, os.X_OK):
                                found.add(e.name)
                        except OSError:
                            pass
        except OSError:
            continue
    return sorted(found)
