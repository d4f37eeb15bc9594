/* landwrap.h: the C interface cffi binds (read by landwrap/_build.py into
 * ffi.cdef, so it must stay within what cdef parses: no #include, no macros
 * with expressions).  The C is kept to system calls and the async-signal-safe
 * child side of a spawn; all policy lives in Python. */

/* Landlock system calls; each returns -1 and sets errno on failure. */
int lw_landlock_abi(void);
int lw_create_ruleset(uint64_t handled_fs, uint64_t handled_net,
                      uint64_t scoped, size_t attr_size);
int lw_add_path_rule(int ruleset_fd, uint64_t allowed, int parent_fd);
int lw_add_net_rule(int ruleset_fd, uint64_t allowed, uint64_t port);
int lw_restrict_self(int ruleset_fd, uint32_t flags);
int lw_no_new_privs(void);

/* Add n path rules: paths NUL-terminated back to back (real paths without symlinks; opened
 * with RESOLVE_NO_SYMLINKS so a path swapped for a link since it was
 * resolved is refused).  Returns 0, or -1 with errno set and *failed set
 * to the index of the rule that failed. */
int lw_add_path_rules(int ruleset_fd, const char *paths, const uint64_t *allowed,
                      int n, int *failed);

/* Spawn flags. */
#define LW_SET_UID 1
#define LW_SET_GID 2
#define LW_CLEAR_GROUPS 4
#define LW_PDEATHSIG 8
#define LW_NEW_SESSION 16
#define LW_UNBLOCK_SIGNALS 32
#define LW_RESTORE_SIGPIPE 64
#define LW_CLOSE_FDS 128
#define LW_DROP_CAPS 256      /* empty every capability set but keep_caps */
#define LW_DROP_BOUNDING 512  /* also the bounding set + SECBIT_NOROOT (root) */
#define LW_SECCOMP 1024       /* install the companion filter (see below) */

/* Stages a child can fail at, reported in struct lw_error. */
#define LW_STAGE_DUP 1
#define LW_STAGE_CHDIR 2
#define LW_STAGE_FDS 3
#define LW_STAGE_SETSID 4
#define LW_STAGE_SETGROUPS 5
#define LW_STAGE_SETGID 6
#define LW_STAGE_SETUID 7
#define LW_STAGE_PDEATHSIG 8
#define LW_STAGE_NO_NEW_PRIVS 9
#define LW_STAGE_RESTRICT 10
#define LW_STAGE_EXEC 11
#define LW_STAGE_CAPS 12
#define LW_STAGE_SECCOMP 13
#define LW_STAGE_LISTENER 14

/* The most descriptors a child keeps (lw_spawn.n_keep); _binding.py checks it. */
#define LW_MAX_KEEP_FDS 64

struct lw_error {
    int stage;
    int err;
};

struct lw_spawn {
    const char *path;          /* resolved program path */
    const char *argv_blob;     /* argc strings, each NUL-terminated, back to back */
    int argc;
    const char *envp_blob;     /* envc strings as argv_blob */
    int envc;                  /* -1: this process's environ */
    const char *cwd;           /* NULL: stay */
    int stdio[3];              /* -1: inherit */
    const int *keep_fds;       /* sorted, made inheritable in the child */
    int n_keep;                /* at most LW_MAX_KEEP_FDS */
    int ruleset_fd;            /* -1: no Landlock domain */
    int ruleset_fl;            /* -1, or the F_GETFL status flags ruleset_fd must */
    uint64_t ruleset_dev;      /* have, with this st_dev and st_ino, for the spawn */
    uint64_t ruleset_ino;      /* to go ahead (else ESTALE: another file took its number) */
    uint32_t restrict_flags;
    int flags;                 /* LW_* */
    unsigned int uid, gid;
    int parent_pid;            /* set by lw_spawn: for LW_PDEATHSIG */
    uint64_t keep_caps;        /* LW_DROP_CAPS: capabilities kept (bits) */
    int cap_last;              /* /proc/sys/kernel/cap_last_cap */
    uint64_t bounding;         /* LW_DROP_BOUNDING: the bounding set as the parent
                                  last saw it (it only shrinks: a superset) */
    int seccomp_parts;         /* LW_SC_* for LW_SECCOMP */
    int notif_sock;            /* LW_SC_NOTIFY: socket the listener fd goes to */
    struct lw_error failure;   /* set by lw_spawn: stage 0, or where the child failed */
    char *const *argv;         /* set by lw_spawn (from argv_blob), for the child */
    char *const *envp;         /* set by lw_spawn (from envp_blob); NULL: environ */
};

/* Fork with vfork, set up and exec in the child, and wait until the child
 * has executed its program or failed: a failing child writes its struct
 * lw_error into s->failure (the parent's memory, shared under vfork)
 * before it exits (stage 0: the program runs).  The argv and envp arrays
 * are built from the blobs here, in the parent, before the fork.  A child
 * that failed has exited with status 125 (the caller reaps it).  Returns
 * the child's pid, or -1 with errno when no child was created. */
int lw_spawn(struct lw_spawn *s);

/* lw_spawn with its arguments as parameters (one call from Python, no
 * struct to fill field by field): path_blob holds the program path and
 * then its argc arguments, each NUL-terminated; stage and errno of a
 * failed child land in failure[0] and failure[1] (0, 0: it runs). */
int lw_spawnv(const char *path_blob, int argc, const char *envp_blob, int envc,
              const char *cwd, int stdin_fd, int stdout_fd, int stderr_fd,
              const int *keep_fds, int n_keep, int ruleset_fd, int ruleset_fl,
              uint64_t ruleset_dev, uint64_t ruleset_ino, uint32_t restrict_flags,
              int flags, unsigned int uid, unsigned int gid, uint64_t keep_caps,
              int cap_last, uint64_t bounding, int seccomp_parts, int notif_sock,
              int *failure);

/* For the stale-directory check (landwrap/engine/stale.py), in one call:
 * out[0] = 1 when watch_fd is still the file (st_dev, st_ino) given, and
 * then out[1] = 1 when poll() reports an event on it (POLLPRI: the mount
 * table it reads changed; polling takes the event); then lstat each of the
 * n paths: out[2+5*i...] = 1, st_dev, st_ino, ctime and mtime in ns (as
 * two's complement), or 0, 0, 0, 0, 0 when lstat fails.  Returns 0. */
int lw_lstat_ids(int watch_fd, uint64_t watch_dev, uint64_t watch_ino,
                 char *const *paths, int n, uint64_t *out);

/* lw_lstat_ids, compared with *expect* (5 * n numbers as it writes them)
 * instead of written out: bit 0 the watched descriptor is still the file,
 * bit 1 a poll took an event on it, bit 2 every id is as expected. */
int lw_lstat_same(int watch_fd, uint64_t watch_dev, uint64_t watch_ino,
                  char *const *paths, int n, const uint64_t *expect);

/* The state the ruleset owner table records of descriptor fd: out[0]
 * st_dev, out[1] st_ino, out[2] its status flags (F_GETFL), after or-ing
 * *mark* into them when it is not 0 (F_SETFL).  0, or -1 with errno set. */
int lw_fd_state(int fd, int mark, uint64_t *out);

/* ---- the seccomp companion filter --------------------------------------
 * A classic-BPF program closing what Landlock's hooks leave open (see the
 * comment block in landwrap.c).  Parts: */
#define LW_SC_TTY 1        /* ioctl TIOCSTI/TIOCLINUX -> EPERM */
#define LW_SC_MPTCP 2      /* socket(AF_INET[6], SOCK_STREAM, MPTCP) -> EPROTONOSUPPORT */
#define LW_SC_PROCS 4      /* prlimit64, setpriority, sched_set*, ioprio_set on
                              another process -> EPERM */
#define LW_SC_NOTIFY 8     /* with LW_SC_PROCS: ask a supervisor (user
                              notification) instead of EPERM for a non-zero id
                              other than the process itself */
#define LW_SC_MAX_INSNS 96

/* The AUDIT_ARCH_* this build filters for, or 0 when landwrap does not know
 * this architecture's system call numbers (no filter can be installed). */
uint32_t lw_seccomp_arch(void);

/* Write the filter for parts and self_pid into out (cap instructions, each
 * 8 bytes as struct sock_filter); returns the number of instructions, or -1
 * with errno.  Pure: async-signal-safe. */
int lw_seccomp_build(int parts, int self_pid, void *out, int cap);

/* Install the filter on the calling thread (flags: 1 = TSYNC, every thread
 * of the process).  Needs no_new_privs.  Returns 0, -1 with errno, or the
 * tid of a thread TSYNC could not synchronise. */
int lw_seccomp_install(int parts, int self_pid, unsigned int flags);

/* 1 when the kernel can install filters returning ERRNO (and, with
 * notify, USER_NOTIF); 0 when not; -1 with errno. */
int lw_seccomp_available(int notify);

/* A close-on-exec unix datagram socket pair (listener fd transport). */
int lw_notif_pair(int *fds);
/* prctl(PR_SET_CHILD_SUBREAPER, 1). */
int lw_set_subreaper(void);

/* Supervisor side of LW_SC_NOTIFY (the launcher).  Receive the listener fd
 * the child sent over sock (-1 with errno when none came). */
int lw_recv_fd(int sock);
/* Answer one notification from listener fd: allowed when the target id of
 * the call is a thread of the caller's own thread group, else EPERM.
 * Waits for one; returns 0, or -1 with errno (ESRCH: no process uses the
 * filter any more). */
int lw_notif_answer(int listener);

/* ---- threads.c: restricting every thread (before TSYNC) -------------- */

#define LW_MAX_THREADS 16384

/* State of a thread in a round. */
#define LW_T_SENT 1    /* signalled, not answered yet */
#define LW_T_BUSY 2    /* its handler is restricting it */
#define LW_T_DONE 3    /* answered: err is 0 or the errno of the failure */
#define LW_T_GONE 4    /* exited before answering */
#define LW_T_LOST 5    /* could not be signalled: err says why */

struct lw_thread {
    int tid;
    int state;
    int err;
};

/* 1 when nobody handles or ignores signal sig, else 0; -1 with errno. */
int lw_signal_is_free(int sig);

/* Restrict every thread of the process but the caller with ruleset_fd and
 * flags, through signal sig (which must be free).  task_fd and status_fd
 * are /proc/self/task and /proc/self/status, opened by the caller.  Returns
 * the number of threads signalled (their records copied to out, at most
 * out_cap) and sets *outcome to 0, ETIMEDOUT, ENOSPC or the errno that
 * stopped the round, and *escapes to the number of times held threads had
 * to be let go to break a stall; returns -1 with errno (EBUSY: signal in
 * use, EALREADY: a round is running) when no round took place. */
int lw_restrict_threads(int ruleset_fd, uint32_t flags, int sig,
                        int task_fd, int status_fd, int timeout_ms,
                        struct lw_thread *out, int out_cap, int *outcome,
                        int *escapes);

/* A thread's name and blocked signals (SigBlk), from /proc/self/task. */
struct lw_thread_mask {
    int tid;
    int readable;        /* 0: its status could not be read */
    uint64_t blocked;
    char name[16];
};

/* Read every thread's record through task_fd (/proc/self/task) into out;
 * returns how many, or -1 with errno.  One call, so that a process whose
 * threads fight over the GIL pays for it once. */
int lw_thread_masks(int task_fd, struct lw_thread_mask *out, int cap);

/* ---- paths.c: resolving and adding path rules, one open per path ---- */

/* What lw_open_add_paths found for each path (flags[i]). */
#define LW_P_DIR 1    /* a directory */
#define LW_P_LINK 2   /* a symlink on the way: real path reported, no rule added */
#define LW_P_ERR 4    /* could not be opened: err[i] */
#define LW_P_BOUND 8  /* its rule was added, or its ancestors' rules added here grant it all */
#define LW_P_COVERED 16  /* (with LW_P_BOUND) no rule added: its ancestors' grant it all */

/* For n paths (absolute, normalized, NUL-terminated, back to back), in
 * ngroups runs (path i belongs to the first group g with i < group_end[g],
 * whose rights are group_access[g]): open each once, and, when ruleset_fd
 * >= 0 and nobind (NULL, or one byte per path) does not say otherwise,
 * bind its rule (rights masked with file_mask for a non-directory) to that
 * same descriptor -- unless a symlink is on the way (left to the caller)
 * or the rules of its lexical ancestors added here grant it all.  A path
 * given again just after itself (in sorted order) is not opened again.
 * Reports flags[i] (LW_P_*); in special[0..*nspecial) the indices, in
 * order, of the paths with LW_P_LINK or LW_P_ERR (err[i]: the errno;
 * with a symlink, the real path is in realbuf at real_off[i], real_len[i]
 * bytes, real_off -2: realbuf full); in dirs[0..*ndirs) the indices of the
 * directories reached without a symlink, with their st_dev and st_ino,
 * and (gen not NULL) a digest of their file handle (0: none), which tells
 * a directory from a new one given the same inode number.
 * Returns 0, or -1 with errno and *failed set to the index whose rule the
 * kernel refused (-1: no memory; -2, EINVAL: a path is not absolute and
 * lexically normal, and nothing was opened). */
int lw_open_add_paths(int ruleset_fd, const char *paths, int n,
                      const int *group_end, const uint64_t *group_access,
                      int ngroups, const unsigned char *nobind,
                      uint64_t file_mask, unsigned char *flags, int *err,
                      int *special, int *nspecial, int *dirs, uint64_t *dev,
                      uint64_t *ino, uint64_t *gen, int *ndirs, int *real_off,
                      int *real_len, char *realbuf, int realcap, int *failed);

/* stat() each of n paths (NUL-terminated, back to back), following
 * symlinks: out[4*i...] = 1, st_dev, st_ino and the file handle's digest
 * as lw_open_add_paths reports it, or 0, 0, 0, 0 when stat fails. */
int lw_path_ids(const char *paths, int n, uint64_t *out);

/* ---- floor.c: the benchmark's floors (bare system calls) ------------- */

/* open(O_PATH) + landlock_add_rule + close for each of n paths (as above);
 * returns the number of rules added. */
int lw_floor_path_rules(int ruleset_fd, const char *paths, int n,
                        uint64_t allowed);

/* Restrict the calling thread with one layer handling `handled` and one
 * rule granting all of it beneath "/".  0, or -1 with errno. */
int lw_floor_bare_domain(uint64_t handled);

/* A spawn with only the system calls a sandbox needs: vfork; in the child
 * no_new_privs (with a ruleset or a filter), the bounding set emptied,
 * SECBIT_NOROOT locked and every set cleared (drop_caps), the Landlock
 * domain (ruleset_fd >= 0), the companion filter (seccomp_parts != 0),
 * then execve with this process's environment.  All -1/0: a bare vfork +
 * execve.  Returns the pid (the caller waits), or -1 with errno. */
int lw_floor_spawn(const char *path, char *const *argv, int ruleset_fd,
                   int seccomp_parts, int drop_caps, int cap_last);
