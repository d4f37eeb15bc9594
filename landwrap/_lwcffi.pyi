"""Types of the compiled cffi extension (built by _build.py from
csrc/landwrap.h), for mypy: every function and constant the header
declares, C integers as ``int``.  Pointers, arrays and structs are cffi
``CData`` objects (``Any``: cffi ships no types of its own); ``ffi`` lists
the parts of cffi's FFI that engine/_binding.py uses.  Keep ``lib`` in step
with csrc/landwrap.h (tests/engine/test_binding_stub.py checks the names
and the number of parameters)."""

from typing import Any

_Ptr = Any  # a cffi CData pointer or array; ``const char *`` also takes bytes

class _FFI:
    errno: int
    NULL: Any
    def new(self, cdecl: str, init: Any = ...) -> Any: ...
    def typeof(self, cdecl: str) -> Any: ...  # a ctype, which new and cast take too
    def cast(self, cdecl: str, source: Any) -> Any: ...
    def from_buffer(self, python_buffer: bytes | bytearray) -> Any: ...
    def buffer(self, cdata: Any, size: int = ...) -> Any: ...
    def sizeof(self, cdecl: str) -> int: ...
    def string(self, cdata: Any, maxlen: int = ...) -> bytes: ...  # char[] only here
    def unpack(self, cdata: Any, length: int) -> Any: ...  # bytes or a list
    def memmove(self, dest: Any, src: Any, n: int) -> None: ...

ffi: _FFI

class _Lib:
    LW_SET_UID: int
    LW_SET_GID: int
    LW_CLEAR_GROUPS: int
    LW_PDEATHSIG: int
    LW_NEW_SESSION: int
    LW_UNBLOCK_SIGNALS: int
    LW_RESTORE_SIGPIPE: int
    LW_CLOSE_FDS: int
    LW_DROP_CAPS: int
    LW_DROP_BOUNDING: int
    LW_SECCOMP: int
    LW_STAGE_DUP: int
    LW_STAGE_CHDIR: int
    LW_STAGE_FDS: int
    LW_STAGE_SETSID: int
    LW_STAGE_SETGROUPS: int
    LW_STAGE_SETGID: int
    LW_STAGE_SETUID: int
    LW_STAGE_PDEATHSIG: int
    LW_STAGE_NO_NEW_PRIVS: int
    LW_STAGE_RESTRICT: int
    LW_STAGE_EXEC: int
    LW_STAGE_CAPS: int
    LW_STAGE_SECCOMP: int
    LW_STAGE_LISTENER: int
    LW_P_DIR: int
    LW_P_LINK: int
    LW_P_ERR: int
    LW_P_BOUND: int
    LW_P_COVERED: int
    LW_MAX_KEEP_FDS: int
    LW_SC_TTY: int
    LW_SC_MPTCP: int
    LW_SC_PROCS: int
    LW_SC_NOTIFY: int
    LW_SC_MAX_INSNS: int
    LW_MAX_THREADS: int
    LW_T_SENT: int
    LW_T_BUSY: int
    LW_T_DONE: int
    LW_T_GONE: int
    LW_T_LOST: int

    def lw_landlock_abi(self) -> int: ...
    def lw_create_ruleset(self, handled_fs: int, handled_net: int, scoped: int,
                          attr_size: int) -> int: ...
    def lw_add_path_rule(self, ruleset_fd: int, allowed: int, parent_fd: int) -> int: ...
    def lw_add_net_rule(self, ruleset_fd: int, allowed: int, port: int) -> int: ...
    def lw_restrict_self(self, ruleset_fd: int, flags: int) -> int: ...
    def lw_no_new_privs(self) -> int: ...
    def lw_add_path_rules(self, ruleset_fd: int, paths: _Ptr, allowed: _Ptr, n: int,
                          failed: _Ptr) -> int: ...
    def lw_spawn(self, s: _Ptr) -> int: ...
    def lw_spawnv(self, path_blob: bytes, argc: int, envp_blob: _Ptr, envc: int,
                  cwd: _Ptr, stdin_fd: int, stdout_fd: int, stderr_fd: int,
                  keep_fds: _Ptr, n_keep: int, ruleset_fd: int, ruleset_fl: int,
                  ruleset_dev: int, ruleset_ino: int, restrict_flags: int, flags: int, uid: int, gid: int, keep_caps: int,
                  cap_last: int, bounding: int, seccomp_parts: int, notif_sock: int,
                  failure: _Ptr) -> int: ...
    def lw_lstat_ids(self, watch_fd: int, watch_dev: int, watch_ino: int, paths: _Ptr,
                     n: int, out: _Ptr) -> int: ...
    def lw_fd_state(self, fd: int, mark: int, out: _Ptr) -> int: ...
    def lw_lstat_same(self, watch_fd: int, watch_dev: int, watch_ino: int, paths: _Ptr,
                      n: int, expect: _Ptr) -> int: ...
    def lw_seccomp_arch(self) -> int: ...
    def lw_seccomp_build(self, parts: int, self_pid: int, out: _Ptr, cap: int) -> int: ...
    def lw_seccomp_install(self, parts: int, self_pid: int, flags: int) -> int: ...
    def lw_seccomp_available(self, notify: int) -> int: ...
    def lw_notif_pair(self, fds: _Ptr) -> int: ...
    def lw_set_subreaper(self) -> int: ...
    def lw_recv_fd(self, sock: int) -> int: ...
    def lw_notif_answer(self, listener: int) -> int: ...
    def lw_signal_is_free(self, sig: int) -> int: ...
    def lw_restrict_threads(self, ruleset_fd: int, flags: int, sig: int, task_fd: int,
                            status_fd: int, timeout_ms: int, out: _Ptr, out_cap: int,
                            outcome: _Ptr, escapes: _Ptr) -> int: ...
    def lw_thread_masks(self, task_fd: int, out: _Ptr, cap: int) -> int: ...
    def lw_open_add_paths(self, ruleset_fd: int, paths: _Ptr, n: int, group_end: _Ptr,
                          group_access: _Ptr, ngroups: int, nobind: _Ptr, file_mask: int,
                          flags: _Ptr, err: _Ptr, special: _Ptr, nspecial: _Ptr, dirs: _Ptr,
                          dev: _Ptr, ino: _Ptr, gen: _Ptr, ndirs: _Ptr, real_off: _Ptr,
                          real_len: _Ptr, realbuf: _Ptr, realcap: int, failed: _Ptr) -> int: ...
    def lw_path_ids(self, paths: _Ptr, n: int, out: _Ptr) -> int: ...
    def lw_floor_path_rules(self, ruleset_fd: int, paths: _Ptr, n: int,
                            allowed: int) -> int: ...
    def lw_floor_bare_domain(self, handled: int) -> int: ...
    def lw_floor_spawn(self, path: _Ptr, argv: _Ptr, ruleset_fd: int, seccomp_parts: int,
                       drop_caps: int, cap_last: int) -> int: ...

lib: _Lib
