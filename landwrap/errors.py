"""errors.py: landwrap's exceptions, all under :class:`LandwrapError`.

Each carries a one-line message a user can act on and, where there is a known
fix, a ``hint``.  The CLI prints ``landwrap: <message>`` and ``Hint: <hint>``
and exits with ``exit_code``; nothing here formats tracebacks.
"""

from __future__ import annotations

import os

#: Exit codes of ``landwrap run`` (like env(1) and timeout(1)).
EXIT_ERROR = 125
EXIT_CANNOT_EXEC = 126
EXIT_NOT_FOUND = 127


class LandwrapError(Exception):
    """Base of every error landwrap raises."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class LandlockUnavailable(LandwrapError):
    """The kernel cannot create a Landlock domain at all.

    ``reason`` is ``"ENOSYS"`` (not built into the kernel),
    ``"EOPNOTSUPP"`` (built in but not enabled at boot) or another errno name.
    """

    def __init__(self, err: int):
        import errno as _errno

        self.errno = err
        self.reason = ("EOPNOTSUPP" if err == _errno.EOPNOTSUPP
                       else _errno.errorcode.get(err, str(err)))
        if err == _errno.ENOSYS:
            msg = "Landlock is not supported by this kernel (ENOSYS: not built in)"
            hint = ("Landlock needs Linux 5.13 or newer built with "
                    "CONFIG_SECURITY_LANDLOCK=y")
        elif err == _errno.EOPNOTSUPP:
            msg = "Landlock is built into this kernel but disabled (EOPNOTSUPP)"
            hint = ("enable it at boot: add 'landlock' to the lsm= kernel parameter "
                    "(e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf)")
        else:
            msg = f"Landlock is unavailable: {os.strerror(err)}"
            hint = None
        super().__init__(msg, hint)


class UnsupportedFeature(LandwrapError):
    """Strict mode: something asked for explicitly needs a newer ABI.

    ``missing`` is a list of ``(kind, bits, description)``; ``abi`` is the
    ABI that would provide all of it.
    """

    def __init__(self, abi: int, kernel_abi: int, missing: list, needed_abi: int):
        self.abi = abi
        self.missing = missing
        self.needed_abi = needed_abi
        what = "; ".join(desc for _, _, desc in missing)
        cap = "" if abi == kernel_abi else f" (capped with --abi {abi})"
        super().__init__(
            f"cannot enforce the requested sandbox: Landlock ABI {abi}{cap} lacks {what}",
            "run on a newer kernel, drop the option that needs it, or pass "
            "--best-effort to run without it",
        )


class NothingEnforced(LandwrapError):
    """Strict mode: the sandbox asked for restrictions, but none of them
    exists at this ABI, so Landlock would enforce nothing at all.

    ``dropped`` lists ``(kind, bits, description)`` of what was asked for;
    ``abi`` is the ABI in use.
    """

    def __init__(self, abi: int, kernel_abi: int, dropped: list):
        self.abi = abi
        self.dropped = dropped
        what = "; ".join(desc for _, _, desc in dropped) or "nothing it handles"
        cap = "" if abi == kernel_abi else f" (capped with --abi {abi})"
        super().__init__(
            f"refusing to run NOT SANDBOXED: Landlock ABI {abi}{cap} can enforce none of "
            f"the restrictions asked for ({what})",
            "run on a newer kernel, restrict something this kernel handles, or pass "
            "--best-effort to run without a sandbox",
        )


class PathError(LandwrapError):
    """A path given for a rule is missing or unusable."""


class RulesetError(LandwrapError):
    """The kernel refused to build the ruleset."""


class EnforcementError(LandwrapError):
    """The kernel refused to enforce the ruleset."""


class ProfileError(LandwrapError):
    """A profile is missing or invalid: ``FILE:LINE: key: message``."""

    def __init__(self, message: str, file: str | None = None,
                 line: int | None = None, key: str | None = None,
                 hint: str | None = None):
        self.file, self.line, self.key = file, line, key
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message, hint)
        self.detail = message


class UsageError(LandwrapError):
    """Bad command-line usage."""


class SpawnError(LandwrapError):
    """The sandboxed child failed before the target started."""

    def __init__(self, message: str, stage: str, err: int, hint: str | None = None,
                 exit_code: int = EXIT_ERROR):
        super().__init__(message, hint)
        self.stage = stage
        self.errno = err
        self.exit_code = exit_code


class CommandNotFound(LandwrapError, FileNotFoundError):
    """The program does not exist (exit 127)."""

    exit_code = EXIT_NOT_FOUND

    def __init__(self, message: str, filename: str, hint: str | None = None):
        LandwrapError.__init__(self, message, hint)
        self.errno = 2
        self.strerror = message
        self.filename = filename


class CommandNotExecutable(LandwrapError, PermissionError):
    """The program exists but cannot be executed (exit 126), possibly
    because the sandbox denies it (``denied_by_sandbox``)."""

    exit_code = EXIT_CANNOT_EXEC

    def __init__(self, message: str, filename: str, err: int,
                 hint: str | None = None, denied_by_sandbox: bool = False):
        LandwrapError.__init__(self, message, hint)
        self.errno = err
        self.strerror = message
        self.filename = filename
        self.denied_by_sandbox = denied_by_sandbox
