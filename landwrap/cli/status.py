"""cli/status.py: `landwrap status` as text, and as JSON (the dict itself)
for the click-less `landwrap status --json`.  Only formatting: the facts
come from profiles/default.py."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def format_status(st: dict[str, Any]) -> str:
    lines = [f"Kernel:         {st['kernel']}"]
    if st["kernel_abi"] is None:
        lines.append(f"Landlock:       unavailable ({st['landlock']}): {st['error']}")
        if st.get("hint"):
            lines.append(f"Hint:           {st['hint']}")
    else:
        cap = "" if st["abi"] == min(st["kernel_abi"], st["landwrap_latest_abi"]) else \
            f" (capped to {st['abi']})"
        lines.append(f"Landlock:       enabled, ABI {st['kernel_abi']}{cap}"
                     f" (landwrap knows up to ABI {st['landwrap_latest_abi']})")
    lines.append("Features:")
    for f in st["features"]:
        mark = "yes" if f["supported"] else "no "
        lines.append(f"  {mark}  {f['name']:<28} {f['description']}"
                     f"  [ABI {f['abi']}, Linux {f['kernel']}]")
    d = st["default"]
    lines.append("Default sandbox of `landwrap run`:")
    if d["status"] == "refused":
        lines.append(f"  refused: {d['error']}")
    else:
        lines.append(f"  {d['status']} enforced; {d['rules']} path rules; "
                     f"network: {', '.join(d['handled_access_net']) or 'not restricted'}; "
                     f"scopes: {', '.join(d['scoped']) or 'none'}")
        for x in d["dropped"] + d["unenforceable"]:
            lines.append(f"  not enforced: {x}")
    lines.append("Security model here (what stops each operation):")
    for row in st["security"]:
        mark = "yes" if row["covered"] else "no "
        lines.append(f"  {mark}  {row['operation']:<66} {row['by']}")
    lsm = st["lsm"]
    lines.append("Active LSMs:    " + (",".join(lsm) if lsm is not None else
                 "unknown (securityfs not mounted at /sys/kernel/security)")
                 + "  (AppArmor, SELinux and others may confine the command too)")
    return "\n".join(lines) + "\n"


def format_json(st: dict[str, Any]) -> str:
    """``json.dumps(st, indent=2) + "\n"``, byte for byte, without importing
    json (it imports re: some 5 ms, a third of `landwrap status --json`).
    Written here for what a status holds (dicts with str keys, lists, str,
    int, bool, None); anything else, and a str that json would escape, goes
    to json itself."""
    out: list[str] = []
    if not _json_into(st, 1, out):
        import json  # lazy: only for what _json_into does not write

        return json.dumps(st, indent=2) + "\n"
    out.append("\n")
    return "".join(out)


def _json_str(s: str) -> str | None:
    """*s* as json writes it (ensure_ascii), or None when json would escape
    a character in it (only printable ASCII but " and \\ is kept as it is)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return None


def _json_into(v: object, depth: int, out: list[str]) -> bool:
    """Append *v* as ``json.dumps(indent=2)`` writes it at nesting *depth*;
    False when it holds something :func:`format_json` leaves to json."""
    if v is None or v is True or v is False:
        out.append("null" if v is None else "true" if v else "false")
    elif type(v) is int:
        out.append(int.__repr__(v))
    elif type(v) is str:
        text = _json_str(v)
        if text is None:
            return False
        out.append(text)
    elif isinstance(v, (list, dict)) and type(v) in (list, dict):
        is_dict = isinstance(v, dict)
        if not v:
            out.append("{}" if is_dict else "[]")
            return True
        sep = "\n" + "  " * depth
        out.append("{" if is_dict else "[")
        for n, (k, x) in enumerate(v.items() if isinstance(v, dict) else zip(v, v)):
            out.append("," + sep if n else sep)
            if is_dict:
                key = _json_str(k) if type(k) is str else None
                if key is None:
                    return False
                out.append(key + ": ")
            if not _json_into(x, depth + 1, out):
                return False
        out.append("\n" + "  " * (depth - 1) + ("}" if is_dict else "]"))
    else:
        return False
    return True
