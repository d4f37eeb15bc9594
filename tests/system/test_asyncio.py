"""landwrap.asyncio on the real kernel: a real asyncio Process whose child
is sandboxed; pipes, communicate(), timeouts, and cancellation that kills
the child.  Every test bounds its waits, so a hang fails instead of
blocking the run."""

import asyncio
import gc
import os
import subprocess
import time

import pytest

import landwrap
import landwrap.asyncio as lwa

from conftest import alive

pytestmark = pytest.mark.usefixtures("landlock")


def arun(coro, timeout=30):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def test_module_name_does_not_shadow_the_standard_library():
    assert lwa.asyncio is asyncio
    assert issubclass(lwa.Process, asyncio.subprocess.Process)


def test_pipes_and_communicate(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s")

    async def main():
        p = await lwa.create_subprocess_exec("cat", stdin=lwa.PIPE, stdout=lwa.PIPE)
        out, err = await p.communicate(b"hello\n" * 10000)
        denied = await lwa.create_subprocess_exec("cat", str(secret), stdout=lwa.PIPE,
                                                  stderr=lwa.PIPE)
        dout, derr = await denied.communicate()
        return p, out, err, denied.returncode, dout, derr

    p, out, err, code, dout, derr = arun(main())
    assert isinstance(p, asyncio.subprocess.Process)
    assert out == b"hello\n" * 10000 and err is None and p.returncode == 0
    assert code == 1 and dout == b"" and b"Permission denied" in derr
    assert secret.read_text() == "s"  # this process is not restricted


def test_streams_line_by_line_and_shell():
    async def main():
        p = await lwa.create_subprocess_shell("for i in 1 2 3; do echo $i; done; exit 7",
                                              stdout=lwa.PIPE)
        lines = [line async for line in p.stdout]
        return lines, await p.wait()

    assert arun(main()) == ([b"1\n", b"2\n", b"3\n"], 7)


def test_sandbox_arguments_and_prebuilt_ruleset(tmp_path):
    rs = landwrap.Ruleset.from_profile("default").allow(tmp_path, "rw")

    async def main():
        w = await lwa.create_subprocess_exec("sh", "-c", f"echo x > {tmp_path}/a",
                                             ruleset=rs)
        denied = await lwa.create_subprocess_exec("sh", "-c", f"echo x > {tmp_path}/b",
                                                  stderr=lwa.DEVNULL)
        ro = await lwa.create_subprocess_exec("cat", str(tmp_path / "a"), stdout=lwa.PIPE,
                                              ro=tmp_path)
        return await w.wait(), await denied.wait(), (await ro.communicate())[0]

    w, denied, out = arun(main())
    assert w == 0 and denied != 0 and out == b"x\n"
    assert not (tmp_path / "b").exists()


def test_spawn_errors_are_raised_like_asyncio():
    async def main():
        with pytest.raises(FileNotFoundError):
            await lwa.create_subprocess_exec("/no/such/program")
        with pytest.raises(ValueError):
            await lwa.create_subprocess_exec("true", text=True)
        with pytest.raises(ValueError):
            await lwa.create_subprocess_exec("echo", "a\0b")
        return True

    assert arun(main())


def test_timeout_kills_the_child():
    async def main():
        p = await lwa.create_subprocess_exec("sleep", "30")
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.wait(), 0.3)
        return p, await asyncio.wait_for(p.wait(), 10), time.monotonic() - t0

    p, code, _ = arun(main())
    assert code == -9 and not alive(p.pid)


def test_cancelling_the_awaiting_task_kills_the_child():
    async def main():
        p = await lwa.create_subprocess_exec("sleep", "30", stdout=lwa.PIPE)
        task = asyncio.ensure_future(p.communicate())
        await asyncio.sleep(0.2)
        assert alive(p.pid)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return p, await asyncio.wait_for(p.wait(), 10)

    p, code = arun(main())
    assert code == -9 and not alive(p.pid)


def test_plain_asyncio_does_not_kill_on_cancel_which_is_why():
    """The behaviour this module changes: asyncio's own Process survives
    the cancellation of the task that waited for it."""
    async def main():
        p = await asyncio.create_subprocess_exec("sleep", "30")
        task = asyncio.ensure_future(p.wait())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        survived = alive(p.pid)
        p.kill()
        await p.wait()
        return survived

    assert arun(main()) is True


def test_many_concurrent_children_and_no_leaked_fds():
    async def one(i):
        p = await lwa.create_subprocess_exec("sh", "-c", f"echo {i}", stdout=lwa.PIPE)
        out, _ = await p.communicate()
        return int(out)

    async def main():
        return await asyncio.gather(*(one(i) for i in range(50)))

    assert arun(main()) == list(range(50))
    gc.collect()  # earlier tests' garbage may still hold descriptors
    fds = len(os.listdir("/proc/self/fd"))
    assert arun(main()) == list(range(50))
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds


def test_matches_asyncio_on_the_same_commands():
    cmds = [["sh", "-c", "echo out; echo err >&2; exit 3"], ["true"], ["sh", "-c", "kill $$"]]

    async def both(cmd):
        res = []
        for make in (asyncio.create_subprocess_exec, lwa.create_subprocess_exec):
            p = await make(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await p.communicate()
            res.append((out, err, p.returncode))
        return res

    for cmd in cmds:
        plain, sandboxed = arun(both(cmd))
        assert plain == sandboxed
