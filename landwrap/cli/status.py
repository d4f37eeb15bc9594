"""cli/status.py: `landwrap status` as text (``--json`` prints the dict
itself).  Only formatting: the facts come from profiles/default.py."""

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
