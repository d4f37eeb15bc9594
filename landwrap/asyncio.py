"""asyncio.py: sandboxed children from coroutines (``landwrap.asyncio``).

:func:`create_subprocess_exec` and :func:`create_subprocess_shell` take the
arguments of their :mod:`asyncio` namesakes plus landwrap's sandbox
arguments (*ruleset*, or *profile* with *ro*/*rw*/..., *die_with_parent*),
and return a real :class:`asyncio.subprocess.Process` (a subclass): its
``stdin``/``stdout``/``stderr`` streams, ``communicate()``, ``wait()``,
``kill()`` are asyncio's own.

The child is started by the same C fork/restrict/exec as
:class:`landwrap.Popen` (``spawn.start``, through ``Popen._execute_child``),
synchronously on the event loop's thread as asyncio itself does; build the
sandbox once (``ruleset=Ruleset.from_profile(...)``) to keep that short.
The exit is watched with a pidfd on the loop (Linux 5.3+, below any kernel
with Landlock), not with asyncio's child watcher, so any selector-based
loop works and no thread is started.

Unlike plain asyncio, **cancelling** a task that awaits ``wait()`` or
``communicate()`` kills the child (SIGKILL) before the cancellation goes
on, so ``asyncio.wait_for(proc.communicate(), timeout)`` and
``asyncio.timeout()`` leave no process behind.  Only the child is killed,
as ``Process.kill()`` does: a shell's own children live on (use ``exec``
in the command, or ``start_new_session=True`` and kill the group).

This module's name is ``landwrap.asyncio``; inside it, ``asyncio`` is the
standard library's (absolute imports).  Never imported by the CLI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from asyncio import base_subprocess
from typing import TYPE_CHECKING, Any, Union

from .api import Popen, StrPath, _SandboxOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["create_subprocess_exec", "create_subprocess_shell", "Process"]

#: asyncio's default stream buffer limit (``asyncio.streams._DEFAULT_LIMIT``).
_LIMIT = 2 ** 16

_File = Union[None, int, Any]


class _Options(_SandboxOptions, total=False):
    """The :class:`subprocess.Popen` arguments asyncio passes through."""
    executable: Union[StrPath, None]
    close_fds: bool
    cwd: Union[StrPath, None]
    env: Union[dict[str, str], None]
    restore_signals: bool
    start_new_session: bool
    pass_fds: "list[int] | tuple[int, ...]"
    user: Union[str, int, None]
    group: Union[str, int, None]
    extra_groups: Union[list[Union[str, int]], None]


class Process(asyncio.subprocess.Process):
    """An :class:`asyncio.subprocess.Process` whose child dies when the
    task awaiting :meth:`wait` or :meth:`communicate` is cancelled."""

    async def wait(self) -> int:
        try:
            return await super().wait()
        except asyncio.CancelledError:
            self._kill_on_cancel()
            raise

    async def communicate(self, input: bytes | bytearray | memoryview | None = None
                          ) -> tuple[bytes, bytes]:
        try:
            return await super().communicate(input)
        except asyncio.CancelledError:
            self._kill_on_cancel()
            raise

    def _kill_on_cancel(self) -> None:
        if self.returncode is None:
            try:
                self.kill()
            except ProcessLookupError:  # it exited meanwhile
                pass


class _Transport(base_subprocess.BaseSubprocessTransport):
    """asyncio's subprocess transport, starting the child with
    :class:`landwrap.Popen`."""

    _proc: Popen[bytes]

    def _start(self, args: Any, shell: bool, stdin: _File, stdout: _File, stderr: _File,
               bufsize: int, **kwargs: Any) -> None:
        self._proc = Popen(args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                           universal_newlines=False, bufsize=bufsize, **kwargs)


def _watch_exit(loop: asyncio.AbstractEventLoop, transport: _Transport) -> None:
    """Tell *transport* when its child exits: a pidfd becomes readable."""
    proc = transport._proc
    fd = os.pidfd_open(proc.pid)

    def ready() -> None:
        code = proc.poll()
        if code is None:
            return
        loop.remove_reader(fd)
        os.close(fd)
        transport._process_exited(code)

    loop.add_reader(fd, ready)


async def _spawn(args: Any, shell: bool, stdin: _File, stdout: _File, stderr: _File,
                 limit: int, kwargs: dict[str, Any]) -> Process:
    for bad in ("universal_newlines", "text", "encoding", "errors"):
        if kwargs.get(bad):
            raise ValueError(f"{bad} must be False or None: asyncio streams are bytes")
    if kwargs.pop("bufsize", 0) != 0:
        raise ValueError("bufsize must be 0")
    loop = asyncio.get_running_loop()
    protocol = asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop)
    waiter = loop.create_future()
    transport = _Transport(loop, protocol, args, shell, stdin, stdout, stderr, 0,
                           waiter=waiter, **kwargs)
    _watch_exit(loop, transport)
    try:
        await waiter
    except BaseException:  # cancelled while connecting the pipes: no orphan
        transport.close()
        await transport._wait()
        raise
    return Process(transport, protocol, loop)


async def create_subprocess_exec(program: StrPath | bytes, *args: StrPath | bytes,
                                 stdin: _File = None, stdout: _File = None,
                                 stderr: _File = None, limit: int = _LIMIT,
                                 **kwargs: Unpack[_Options]) -> Process:
    """Start *program* with *args* in a sandbox, like
    :func:`asyncio.create_subprocess_exec`; see the module docstring for
    cancellation and :class:`landwrap.Popen` for the sandbox arguments
    (``profile=None``: the profile `landwrap run` would pick for
    *program*)."""
    return await _spawn([program, *args], False, stdin, stdout, stderr, limit,
                        dict(kwargs))


async def create_subprocess_shell(cmd: str | bytes, stdin: _File = None,
                                  stdout: _File = None, stderr: _File = None,
                                  limit: int = _LIMIT,
                                  **kwargs: Unpack[_Options]) -> Process:
    """Run the shell command *cmd* (``/bin/sh -c``) in a sandbox, like
    :func:`asyncio.create_subprocess_shell`."""
    return await _spawn(cmd, True, stdin, stdout, stderr, limit, dict(kwargs))


#: For symmetry with asyncio.subprocess.
PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL
