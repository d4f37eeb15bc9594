"""Run a command with the Landlock system calls failing, for real.

    python seccomp_exec.py ERRNO NR[,NR...] -- COMMAND [ARG]...

Installs a seccomp filter that makes the given system calls (default: the
three Landlock calls, 444-446) return -ERRNO, then execs COMMAND.  This is
how the tests show landwrap's behaviour on a kernel without Landlock
(ENOSYS), with Landlock disabled (EOPNOTSUPP), or when enforcement itself
fails, without mocking anything in landwrap.
"""

import ctypes
import errno
import os
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def install(err: int, numbers) -> None:
    prog = [SockFilter(BPF_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
    n = len(numbers)
    for i, nr in enumerate(numbers):
        # on match jump to the ERRNO return (after the remaining tests and ALLOW)
        prog.append(SockFilter(BPF_JEQ_K, n - i, 0, nr))
    prog.append(SockFilter(BPF_RET_K, 0, 0, RET_ALLOW))
    prog.append(SockFilter(BPF_RET_K, 0, 0, RET_ERRNO | (err & 0xFFFF)))
    arr = (SockFilter * len(prog))(*prog)
    fprog = SockFprog(len(prog), arr)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def main(argv):
    sep = argv.index("--")
    err = getattr(errno, argv[1]) if not argv[1].isdigit() else int(argv[1])
    numbers = [int(x) for x in argv[2].split(",")] if sep > 2 else [444, 445, 446]
    install(err, numbers)
    os.execvp(argv[sep + 1], argv[sep + 1:])


if __name__ == "__main__":
    main(sys.argv)
