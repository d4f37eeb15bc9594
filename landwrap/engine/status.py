"""engine/status.py: what this kernel offers and what landwrap will enforce here.
Used by `landwrap status` and ``landwrap.status()``; reads, never restricts."""

from __future__ import annotations

import os

from . import _binding as _sys, compat
from .errors import LandlockUnavailable, LandwrapError


def status(abi: int | None = None) -> dict:
    """Kernel release, Landlock ABI, every feature with the ABI and kernel
    that adds it, and the default sandbox's enforcement here."""
    kabi = _sys.kernel_abi()
    out = {
        "kernel": os.uname().release,
        "landlock": "enabled" if kabi >= 0 else LandlockUnavailable(-kabi).reason,
        "kernel_abi": kabi if kabi >= 0 else None,
        "landwrap_latest_abi": compat.LATEST_ABI,
        "abi": compat.effective_abi(kabi, abi) if kabi >= 0 else 0,
        "features": [],
    }
    if kabi < 0:
        err = LandlockUnavailable(-kabi)
        out["error"] = err.message
        out["hint"] = err.hint
    for name, desc, need, kernel, ok in compat.features(out["abi"]):
        out["features"].append({"name": name, "description": desc, "abi": need,
                                "kernel": kernel, "supported": ok})
    out["security"] = security_model(out["abi"])
    out["lsm"] = active_lsms()
    from ..profiles.profile import for_command

    try:
        plan = for_command((), None).ruleset.resolve(abi=abi)
        out["default"] = {"status": plan.status, "dropped": plan.dropped,
                          "unenforceable": plan.unenforceable,
                          "rules": len(plan.rules),
                          "handled_access_fs": compat.names(compat.FS_RIGHTS, plan.fs),
                          "handled_access_net": compat.names(compat.NET_RIGHTS, plan.net),
                          "scoped": compat.names(compat.SCOPES, plan.scoped)}
    except LandwrapError as e:
        out["default"] = {"status": "refused", "error": e.message}
    return out


_MECHANISMS = {
    "seccomp": "seccomp companion filter",
    "capabilities": "capability drop (root)",
    "launcher": "landwrap run (kills what is left)",
}


def security_model(abi: int) -> list:
    """compat.SECURITY_MODEL for a kernel at *abi*: each operation with the
    mechanism that covers it here (``covered`` False where nothing does)."""
    from .companion import status as companion_status

    seccomp = companion_status()["seccomp_filter"]
    rows = []
    for op, mech, need in compat.SECURITY_MODEL:
        if mech == "landlock":
            covered = 0 < need <= abi
            by = f"Landlock ABI {need} (Linux {compat.KERNEL[need]})"
            if not covered:
                by += " - not on this kernel"
        elif mech is None:
            covered, by = False, "nothing (out of Landlock's reach)"
        else:
            covered = seccomp if mech == "seccomp" else True
            by = _MECHANISMS[mech] + ("" if covered else
                                      " - unavailable here (kernel or architecture)")
        rows.append({"operation": op, "mechanism": mech, "abi": need,
                     "covered": covered, "by": by})
    return rows


def active_lsms() -> list | None:
    """The kernel's active LSM stack, or None when securityfs cannot be read
    (it is not mounted at /sys/kernel/security, or not readable)."""
    try:
        with open("/sys/kernel/security/lsm", encoding="ascii") as f:
            return [x for x in f.read().strip().split(",") if x]
    except (OSError, UnicodeDecodeError):
        return None


def format_status(st: dict) -> str:
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
