"""landwrap: Landlock sandboxing for Linux.

A launcher (`landwrap run`), per-app profiles and a Python library sharing
one engine.  Importing this package is cheap: the library's names are loaded
on first use, so that `landwrap run` starts fast.
"""

__version__ = "0.1.0"

__all__ = [
    # sandboxing this process, or a child
    "restrict", "run", "call", "check_call", "check_output", "Popen", "Ruleset", "Plan",
    "Enforcement", "python_paths",
    # the kernel
    "abi", "status",
    # errors
    "LandwrapError", "LandlockUnavailable", "UnsupportedFeature", "PathError",
    "RulesetError", "EnforcementError", "ProfileError", "UsageError", "SpawnError",
    "CommandNotFound", "CommandNotExecutable", "SandboxWarning",
    # subprocess's, for convenience
    "PIPE", "DEVNULL", "STDOUT", "CompletedProcess", "CalledProcessError",
    "TimeoutExpired",
]

#: Where each public name lives; imported on first use (PEP 562).
_LAZY = {
    "restrict": "api", "run": "api", "Popen": "api", "Enforcement": "api", "abi": "api",
    "status": "api", "call": "api", "check_call": "api", "check_output": "api",
    "python_paths": "api",
    "PIPE": "api", "DEVNULL": "api", "STDOUT": "api", "CompletedProcess": "api",
    "CalledProcessError": "api", "TimeoutExpired": "api",
    "Ruleset": "api", "Plan": "engine.plan",  # api gives Ruleset its upper methods
    "LandwrapError": "engine.errors", "LandlockUnavailable": "engine.errors",
    "UnsupportedFeature": "engine.errors", "PathError": "engine.errors",
    "RulesetError": "engine.errors", "EnforcementError": "engine.errors",
    "ProfileError": "engine.errors", "UsageError": "engine.errors",
    "SpawnError": "engine.errors", "CommandNotFound": "engine.errors",
    "CommandNotExecutable": "engine.errors", "SandboxWarning": "engine.errors",
}


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{mod}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


TYPE_CHECKING = False
if TYPE_CHECKING:
    from subprocess import (DEVNULL, PIPE, STDOUT, CalledProcessError,
                            CompletedProcess, TimeoutExpired)

    from .api import (Enforcement, Popen, abi, call, check_call, check_output,
                      python_paths, restrict, run, status)
    from .engine.errors import (CommandNotExecutable, CommandNotFound, EnforcementError,
                                LandlockUnavailable, LandwrapError, PathError, ProfileError,
                                RulesetError, SandboxWarning, SpawnError, UnsupportedFeature,
                                UsageError)
    from .engine.plan import Plan
    from .engine.ruleset import Ruleset
