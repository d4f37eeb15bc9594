"""errors.py: landwrap's exceptions, all under :class:`LandwrapError`.

Each carries a one-line message a user can act on and, where there is a known
fix, a ``hint``.  The CLI prints ``landwrap: <message>`` and ``Hint: <hint>``
and exits with ``exit_code``; nothing here formats tracebacks.

Errors are data as well as sentences: ``errno`` (the OS error behind it, or
None; the OSError itself is the ``__cause__``), ``path`` where one is
involved, and per class the fields a program would test (the missing
features and the ABI that has them, the threads that could not be
reached...).  A hint that names a setting keeps it as data in ``fixes``
(``[("compat", "best-effort")]``, ``[("rox", "/opt/app")]``) and is worded
for whoever called: as options for the CLI (``--best-effort``, the
default), as arguments for the Python API (``compat='best-effort'``) --
:meth:`LandwrapError.for_caller` switches the wording.
"""

from __future__ import annotations

import os

from . import compat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Optional, Sequence, Tuple

    Caller = Literal["cli", "api"]
    Fix = Tuple[str, Optional[object]]

#: Exit codes of ``landwrap run`` (like env(1) and timeout(1)).
EXIT_ERROR = 125
EXIT_CANNOT_EXEC = 126
EXIT_NOT_FOUND = 127


#: CLI spellings that are not simply ``--NAME VALUE``.
_CLI_SPELLING = {("compat", "best-effort"): "--best-effort",
                 ("compat", "strict"): "--strict"}


def spell(name: str, value: object = None, caller: Caller = "cli") -> str:
    """How *caller* spells the setting *name* = *value*: ``--rox /opt``
    for the CLI, ``rox='/opt'`` for the Python API (*value* None: a flag,
    ``name=True``)."""
    if caller == "api":
        return f"{name}={value!r}" if value is not None else f"{name}=True"
    cli = _CLI_SPELLING.get((name, value)) if isinstance(value, str) else None
    if cli:
        return cli
    flag = "--" + name.replace("_", "-")
    return flag if value is None else f"{flag} {value}"


class LandwrapError(Exception):
    """Base of every error landwrap raises.

    ``message`` and ``hint`` are the sentences; ``errno`` the OS error
    number behind the error (None when there is none), ``path`` the file
    involved (or None), ``fixes`` the settings the hint suggests, as
    ``(argument name, value)`` pairs, and ``caller`` whom the hint is
    worded for (``"cli"`` or ``"api"``)."""

    exit_code = EXIT_ERROR
    #: The hint with ``{0}``, ``{1}``... for the spelled ``fixes`` and
    #: ``{option}`` for "option"/"argument"; None: ``hint`` is fixed text.
    hint_template: str | None = None

    def __init__(self, message: str, hint: str | None = None, *,
                 errno: int | None = None, path: str | None = None,
                 fixes: Sequence[Fix] = (), hint_template: str | None = None):
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.path = path
        self.fixes = list(fixes)
        self.caller: Caller = "cli"
        if hint_template is not None:
            self.hint_template = hint_template
        self.hint = hint
        if hint is None and self.hint_template is not None:
            self.hint = self.hint_for("cli")

    def __str__(self) -> str:
        return self.message

    def hint_for(self, caller: Caller) -> str | None:
        """The hint worded for *caller* (``"cli"`` or ``"api"``)."""
        if self.hint_template is None:
            return self.hint
        return self.hint_template.format(
            *(spell(n, v, caller) for n, v in self.fixes),
            option="argument" if caller == "api" else "option")

    def for_caller(self, caller: Caller) -> LandwrapError:
        """Reword ``hint`` (and a message that names a setting) for
        *caller*; returns self."""
        self.hint = self.hint_for(caller)
        self.caller = caller
        return self


class LandlockUnavailable(LandwrapError):
    """The kernel cannot create a Landlock domain at all.

    ``reason`` is ``"ENOSYS"`` (not built into the kernel),
    ``"EOPNOTSUPP"`` (built in but not enabled at boot) or another errno name.
    """

    def __init__(self, err: int):
        import errno as _errno  # (`errno` is a field name here; lazy: only without Landlock)

        self.reason = ("EOPNOTSUPP" if err == _errno.EOPNOTSUPP
                       else _errno.errorcode.get(err, str(err)))
        if err == _errno.ENOSYS:
            msg = "Landlock is not supported by this kernel (ENOSYS: not built in)"
            hint = (f"Landlock needs Linux {compat.KERNEL[1]} or newer built with "
                    "CONFIG_SECURITY_LANDLOCK=y")
        elif err == _errno.EOPNOTSUPP:
            msg = "Landlock is built into this kernel but disabled (EOPNOTSUPP)"
            hint = ("enable it at boot: add 'landlock' to the lsm= kernel parameter "
                    "(e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf)")
        else:
            msg = f"Landlock is unavailable: {os.strerror(err)}"
            hint = None
        super().__init__(msg, hint, errno=err)


class _AbiShortfall(LandwrapError):
    """What UnsupportedFeature and NothingEnforced share: ``abi`` (the ABI
    used), ``kernel_abi`` (the kernel's) and a message worded per caller
    (the ABI cap is ``--abi N`` for the CLI, ``abi=N`` for the API)."""

    abi: int
    kernel_abi: int

    def _text(self, caller: Caller) -> str:
        raise NotImplementedError

    def _capped(self, caller: Caller) -> str:
        return ("" if self.abi == self.kernel_abi
                else f" (capped with {spell('abi', self.abi, caller)})")

    def for_caller(self, caller: Caller) -> LandwrapError:
        self.message = self._text(caller)
        self.args = (self.message,)
        return super().for_caller(caller)


class UnsupportedFeature(_AbiShortfall):
    """Strict mode: something asked for explicitly needs a newer ABI.

    ``missing`` is a list of ``(kind, bits, description)`` (kind ``"fs"``,
    ``"net"``, ``"scoped"`` or ``"flags"``); ``abi`` is the ABI used
    (``kernel_abi`` the kernel's), ``needed_abi`` the ABI that would
    provide all of it.
    """

    hint_template = ("run on a newer kernel, drop the {option} that needs it, or pass "
                     "{0} to run without it")

    def __init__(self, abi: int, kernel_abi: int, missing: list[tuple[str, int, str]],
                 needed_abi: int):
        self.abi = abi
        self.kernel_abi = kernel_abi
        self.missing = missing
        self.needed_abi = needed_abi
        super().__init__(self._text("cli"), fixes=[("compat", "best-effort")])

    def _text(self, caller: Caller) -> str:
        what = "; ".join(desc for _, _, desc in self.missing)
        cap = self._capped(caller)
        return (f"cannot enforce the requested sandbox: Landlock ABI {self.abi}{cap} "
                f"lacks {what}")


class DenialLoggingUnsupported(UnsupportedFeature):
    """Denial logging (``--log-denials``) was asked for on an ABI that
    lacks it (and nothing else is missing).  ``needs`` says which ABI and
    kernel have it ("ABI 7, Linux 6.15")."""

    def __init__(self, abi: int, kernel_abi: int, missing: list[tuple[str, int, str]],
                 needed_abi: int, needs: str):
        self.needs = needs
        super().__init__(abi, kernel_abi, missing, needed_abi)

    def hint_for(self, caller: Caller) -> str | None:
        return ("drop --log-denials (or --abi), run on a newer kernel, or pass "
                "--best-effort to run without the report")

    def _text(self, caller: Caller) -> str:
        cap = ("" if self.abi == self.kernel_abi
               else f" (capped with {spell('abi', self.abi, caller)})")
        return (f"--log-denials needs denial logging ({self.needs}); Landlock "
                f"ABI {self.abi}{cap} lacks it")


class SandboxWarning(UserWarning):
    """Something works differently inside the sandbox than the caller may
    expect (e.g. children started before ``restrict()`` cannot be
    signalled from it)."""


class NothingEnforced(_AbiShortfall):
    """Strict mode: the sandbox asked for restrictions, but none of them
    exists at this ABI, so Landlock would enforce nothing at all.

    ``dropped`` lists ``(kind, bits, description)`` of what applied;
    ``abi`` is the ABI used, ``kernel_abi`` the kernel's.
    """

    hint_template = ("run on a newer kernel, restrict something this kernel handles, "
                     "or pass {0} to run without a sandbox")

    def __init__(self, abi: int, kernel_abi: int, dropped: list[tuple[str, int, str]]):
        self.abi = abi
        self.kernel_abi = kernel_abi
        self.dropped = dropped
        super().__init__(self._text("cli"), fixes=[("compat", "best-effort")])

    def _text(self, caller: Caller) -> str:
        what = "; ".join(desc for _, _, desc in self.dropped) or "nothing it handles"
        cap = self._capped(caller)
        return (f"refusing to run NOT SANDBOXED: Landlock ABI {self.abi}{cap} can enforce "
                f"none of the restrictions asked for ({what})")


class PathError(LandwrapError):
    """A path given for a rule is missing or unusable."""


class RulesetError(LandwrapError):
    """The kernel refused to build the ruleset (``errno``; ``path`` or
    ``port`` of the rule it refused, when it was a rule)."""

    def __init__(self, message: str, hint: str | None = None, *,
                 errno: int | None = None, path: str | None = None,
                 port: int | None = None):
        super().__init__(message, hint, errno=errno, path=path)
        self.port = port


class EnforcementError(LandwrapError):
    """The kernel refused to enforce the ruleset, or not every thread
    could be reached.  ``errno`` is the kernel's answer when it refused;
    ``threads`` maps the thread ids that could not be restricted to why;
    ``children`` lists ``(pid, name)`` of child processes when they are
    the reason (``strict_children``); ``restricted`` says whether any
    thread of this process is now restricted (then exit rather than go
    on)."""

    #: The sentence after ``cause``: what the process is left with.
    OUTCOME = {False: "nothing was restricted", True: "only the calling thread is restricted"}

    def __init__(self, message: str = "", hint: str | None = None, *,
                 errno: int | None = None, restricted: bool = False,
                 threads: dict[int, str] | None = None,
                 children: list[tuple[int, str]] | None = None,
                 cause: str | None = None):
        if cause is not None:  # the message is the cause and the outcome
            message = f"{cause}; {self.OUTCOME[restricted]}"
        super().__init__(message, hint, errno=errno)
        #: Why it failed, without what the process is left with (None:
        #: only ``message`` says it).
        self.cause = cause
        self.restricted = restricted
        self.threads = dict(threads or {})
        self.children = list(children or [])


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
        super().__init__(where + message, hint, path=file)
        self.detail = message


class UsageError(LandwrapError):
    """Bad command-line usage."""


class SpawnError(LandwrapError):
    """The sandboxed child failed before the target started."""

    def __init__(self, message: str, stage: str, err: int, hint: str | None = None,
                 exit_code: int = EXIT_ERROR):
        super().__init__(message, hint, errno=err)
        self.stage = stage
        self.exit_code = exit_code


class CommandNotFound(LandwrapError, FileNotFoundError):
    """The program does not exist (exit 127)."""

    exit_code = EXIT_NOT_FOUND

    def __init__(self, message: str, filename: str, hint: str | None = None):
        LandwrapError.__init__(self, message, hint, path=filename)
        self.errno = 2
        self.strerror = message
        self.filename = filename


class CommandNotExecutable(LandwrapError, PermissionError):
    """The program exists but cannot be executed (exit 126), possibly
    because the sandbox denies it (``denied_by_sandbox``)."""

    exit_code = EXIT_CANNOT_EXEC

    def __init__(self, message: str, filename: str, err: int,
                 hint: str | None = None, denied_by_sandbox: bool = False, *,
                 fixes: Sequence[Fix] = (), hint_template: str | None = None):
        LandwrapError.__init__(self, message, hint, path=filename, fixes=fixes,
                               hint_template=hint_template)
        self.errno = err
        self.strerror = message
        self.filename = filename
        self.denied_by_sandbox = denied_by_sandbox
