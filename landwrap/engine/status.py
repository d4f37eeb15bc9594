"""engine/status.py: what this kernel offers: its Landlock ABI, every
feature, the security model here and the active LSMs.  Reads, never
restricts.  profiles/default.py adds the default sandbox to it for
`landwrap status` and ``landwrap.status()``; cli/status.py formats it."""

from __future__ import annotations

import os

from . import _binding, compat
from .errors import LandlockUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypedDict

    class CompanionStatus(TypedDict):
        """What :func:`companion_status` returns."""
        seccomp_filter: bool
        arch: str | None
        user_notification: bool


def status(abi: int | None = None) -> dict[str, Any]:
    """Kernel release, Landlock ABI, every feature with the ABI and kernel
    that adds it, the security model and the active LSMs."""
    kabi = _binding.kernel_abi()
    out: dict[str, Any] = {
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
    return out


_MECHANISMS = {
    "seccomp": "seccomp companion filter",
    "capabilities": "capability drop (root)",
    "launcher": "landwrap run (kills what is left)",
}


def security_model(abi: int) -> list[dict[str, Any]]:
    """compat.SECURITY_MODEL for a kernel at *abi*: each operation with the
    mechanism that covers it here (``covered`` False where nothing does)."""
    seccomp = companion_status()["seccomp_filter"]
    rows = []
    for op, mech, need in compat.SECURITY_MODEL:
        if mech == "landlock":
            assert need is not None  # every Landlock row names its ABI
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


def companion_status() -> CompanionStatus:
    """What this machine offers the companion (companion.py): whether the
    filter can be installed, for which architecture, and whether the
    launcher can supervise thread ids (user notifications).  Here, not in
    companion.py, so that `landwrap status` does not import that module."""
    arch = _binding.seccomp_arch()
    names = {0xC000003E: "x86_64", 0xC00000B7: "aarch64"}
    ok = bool(arch) and _binding.seccomp_available(False)
    return {"seccomp_filter": ok, "arch": names.get(arch),
            "user_notification": ok and _binding.seccomp_available(True)}


def active_lsms() -> list[str] | None:
    """The kernel's active LSM stack, or None when securityfs cannot be read
    (it is not mounted at /sys/kernel/security, or not readable)."""
    try:
        with open("/sys/kernel/security/lsm", encoding="ascii") as f:
            return [x for x in f.read().strip().split(",") if x]
    except (OSError, UnicodeDecodeError):
        return None
