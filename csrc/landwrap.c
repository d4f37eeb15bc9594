/* landwrap.c: Landlock system calls and the child side of a sandboxed spawn.
 *
 * Defines its own syscall numbers and struct layouts: the build must not
 * depend on the build machine's <linux/landlock.h> (Debian 12's stops at
 * ABI 2).  Between fork and exec only async-signal-safe calls are made, and
 * credential changes use raw system calls (glibc's setuid() would signal the
 * parent's threads from a vfork child).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "landwrap.h"
#include "lwsys.h"

/* The Landlock calls have the same numbers on every architecture that uses
 * the unified syscall table (x86_64, aarch64, riscv64, ...). */
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#define LW_RESOLVE_NO_SYMLINKS 0x04

struct lw_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

#define LW_CREATE_RULESET_VERSION 1U
#define LW_RULE_PATH_BENEATH 1
#define LW_RULE_NET_PORT 2

struct lw_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct lw_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct lw_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

int lw_landlock_abi(void)
{
    return (int)syscall(__NR_landlock_create_ruleset, NULL, 0,
                        LW_CREATE_RULESET_VERSION);
}

int lw_create_ruleset(uint64_t handled_fs, uint64_t handled_net,
                      uint64_t scoped, size_t attr_size)
{
    struct lw_ruleset_attr attr = {handled_fs, handled_net, scoped};

    if (attr_size > sizeof(attr)) {
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0U);
}

int lw_add_path_rule(int ruleset_fd, uint64_t allowed, int parent_fd)
{
    struct lw_path_beneath_attr attr = {allowed, parent_fd};

    return (int)syscall(__NR_landlock_add_rule, ruleset_fd,
                        LW_RULE_PATH_BENEATH, &attr, 0U);
}

int lw_add_net_rule(int ruleset_fd, uint64_t allowed, uint64_t port)
{
    struct lw_net_port_attr attr = {allowed, port};

    return (int)syscall(__NR_landlock_add_rule, ruleset_fd, LW_RULE_NET_PORT,
                        &attr, 0U);
}

int lw_restrict_self(int ruleset_fd, uint32_t flags)
{
    return (int)syscall(__NR_landlock_restrict_self, ruleset_fd, flags);
}

int lw_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* O_PATH open that refuses any symbolic link on the way (openat2, Linux
 * 5.6+; every Landlock kernel has it).  ELOOP: the path has a link. */
static int open_no_symlinks(const char *path)
{
    struct lw_open_how how = {O_PATH | O_CLOEXEC, 0, LW_RESOLVE_NO_SYMLINKS};

    return (int)syscall(__NR_openat2, AT_FDCWD, path, &how, sizeof(how));
}

int lw_resolve_paths(const char *paths, int n, struct lw_pathinfo *out,
                     char *realbuf, int realcap)
{
    const char *p = paths;
    int used = 0;

    for (int i = 0; i < n; i++, p += strlen(p) + 1) {
        struct stat st;
        int fd = open_no_symlinks(p);

        out[i].err = 0;
        out[i].real_off = -1;
        out[i].real_len = 0;
        if (fd < 0 && (errno == ELOOP || errno == ENOSYS || errno == EXDEV)) {
            /* a symlink on the way: follow it, and ask for the real path */
            fd = open(p, O_PATH | O_CLOEXEC);
            if (fd >= 0) {
                char link[64];
                ssize_t len = -1;
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                if (used < realcap)
                    len = readlink(link, realbuf + used, (size_t)(realcap - used));
                if (len > 0 && len < realcap - used) {
                    out[i].real_off = used;
                    out[i].real_len = (int)len;
                    used += (int)len;
                } else {
                    out[i].real_off = -2;
                }
            }
        }
        if (fd < 0) {
            out[i].err = errno;
            continue;
        }
        if (lw_fstat(fd, &st) < 0)
            out[i].err = errno;
        else
            out[i].mode = st.st_mode;
        close(fd);
    }
    return 0;
}

int lw_add_path_rules(int ruleset_fd, const char *paths, const uint64_t *allowed,
                      int n, int *failed)
{
    const char *p = paths;

    for (int i = 0; i < n; i++, p += strlen(p) + 1) {
        int fd = open_no_symlinks(p), err;
        if (fd < 0 && errno == ENOSYS)
            fd = open(p, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || lw_add_path_rule(ruleset_fd, allowed[i], fd) < 0) {
            err = errno;
            if (fd >= 0)
                close(fd);
            *failed = i;
            errno = err;
            return -1;
        }
        close(fd);
    }
    return 0;
}

/* ---- child side ------------------------------------------------------ */

static void __attribute__((noreturn)) child_fail(const struct lw_spawn *s,
                                                 int stage)
{
    struct lw_error e = {stage, errno};
    ssize_t unused = write(s->errpipe, &e, sizeof(e));

    (void)unused;
    _exit(125);
}

static int close_fds_above(const struct lw_spawn *s)
{
    /* Close every fd >= 3 except the kept ones, the error pipe and the
     * ruleset (both close-on-exec, needed until execve). */
    int keep[64 + 2];
    int n = 0, lo = 3;
    struct rlimit rl;

    for (int i = 0; i < s->n_keep && n < 64; i++)
        keep[n++] = s->keep_fds[i];
    keep[n++] = s->errpipe;
    if (s->ruleset_fd >= 0)
        keep[n++] = s->ruleset_fd;
    /* insertion sort: n is tiny */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t;
        }
    for (int i = 0; i <= n; i++) {
        int hi = i < n ? keep[i] - 1 : -1; /* -1: to the end */
        if (i < n && keep[i] < lo)
            continue;
        if (hi == -1 || hi >= lo) {
            if (syscall(__NR_close_range, (unsigned)lo,
                        hi == -1 ? ~0U : (unsigned)hi, 0U) < 0) {
                /* no close_range: close one by one */
                int end = hi;
                if (end == -1) {
                    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return -1;
                    end = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
                }
                for (int fd = lo; fd <= end; fd++)
                    close(fd);
            }
        }
        if (i < n)
            lo = keep[i] + 1;
    }
    return 0;
}

static void __attribute__((noreturn)) child(const struct lw_spawn *s,
                                            const sigset_t *mask)
{
    int fds[3];
    struct sigaction sa;

    /* Handlers installed by the parent (Python's) must not run here. */
    memset(&sa, 0, sizeof(sa));
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, NULL, &old) < 0)
            continue;
        if (old.sa_handler == SIG_IGN) {
            if ((s->flags & LW_RESTORE_SIGPIPE) &&
                (sig == SIGPIPE || sig == SIGXFSZ)) {
                sa.sa_handler = SIG_DFL;
                sigaction(sig, &sa, NULL);
            }
            continue;
        }
        if (old.sa_handler != SIG_DFL) {
            sa.sa_handler = SIG_DFL;
            sigaction(sig, &sa, NULL);
        }
    }

    /* stdio: move sources out of 0..2 first so dup2 cannot clobber one. */
    for (int i = 0; i < 3; i++) {
        fds[i] = s->stdio[i];
        if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) {
            fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (fds[i] < 0)
                child_fail(s, LW_STAGE_DUP);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0)
            continue;
        if (fds[i] == i) {
            int fl = fcntl(i, F_GETFD);
            if (fl < 0 || fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                child_fail(s, LW_STAGE_DUP);
        } else if (dup2(fds[i], i) < 0) {
            child_fail(s, LW_STAGE_DUP);
        }
    }

    if (s->cwd && chdir(s->cwd) < 0)
        child_fail(s, LW_STAGE_CHDIR);

    for (int i = 0; i < s->n_keep; i++) {
        int fl = fcntl(s->keep_fds[i], F_GETFD);
        if (fl < 0 || fcntl(s->keep_fds[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
            child_fail(s, LW_STAGE_FDS);
    }
    if ((s->flags & LW_CLOSE_FDS) && close_fds_above(s) < 0)
        child_fail(s, LW_STAGE_FDS);

    if ((s->flags & LW_NEW_SESSION) && setsid() < 0)
        child_fail(s, LW_STAGE_SETSID);

    /* Credentials: groups, then gid, then uid (after which we could not). */
    if ((s->flags & LW_CLEAR_GROUPS) &&
        syscall(SYS_setgroups, 0, NULL) < 0)
        child_fail(s, LW_STAGE_SETGROUPS);
    if ((s->flags & LW_SET_GID) &&
        syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0)
        child_fail(s, LW_STAGE_SETGID);
    if ((s->flags & LW_SET_UID) &&
        syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
        child_fail(s, LW_STAGE_SETUID);

    /* Die with the launcher; set after the credential change, which would
     * clear it.  If the launcher is already gone, do not run at all. */
    if (s->flags & LW_PDEATHSIG) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
            child_fail(s, LW_STAGE_PDEATHSIG);
        if (getppid() != s->parent_pid)
            _exit(125);
    }

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(s, LW_STAGE_NO_NEW_PRIVS);
    if (s->ruleset_fd >= 0 &&
        syscall(__NR_landlock_restrict_self, s->ruleset_fd,
                s->restrict_flags) < 0)
        child_fail(s, LW_STAGE_RESTRICT);

    if (s->flags & LW_UNBLOCK_SIGNALS) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    } else {
        sigprocmask(SIG_SETMASK, mask, NULL);
    }
    execve(s->path, s->argv, s->envp);
    child_fail(s, LW_STAGE_EXEC);
}

int lw_spawn(const struct lw_spawn *s)
{
    sigset_t all, old;
    pid_t pid;
    int saved;

    /* No signal handler may run in the child while it shares our memory. */
    sigfillset(&all);
    if (lw_sigmask(SIG_SETMASK, &all, &old) != 0)
        return -1;
    /* The child touches only its own stack, its own signal table and
     * per-task kernel state (credentials, no_new_privs, the Landlock
     * domain), so vfork is safe and spares copying the page tables. */
    pid = vfork();
    if (pid == 0)
        child(s, &old);
    saved = errno;
    lw_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
}
