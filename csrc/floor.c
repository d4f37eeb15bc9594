/* floor.c: the least the kernel work of a sandbox can cost, for the
 * benchmark (landwrap/bench.py) to measure landwrap against in the same run.
 *
 * Nothing here is used to enforce anything a user asked for: these are the
 * bare system calls with nothing around them, so that a ratio to them shows
 * exactly what landwrap adds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>

#include "landwrap.h"

int lw_floor_path_rules(int ruleset_fd, const char *paths, int n,
                        uint64_t allowed)
{
    const char *p = paths;
    int added = 0;

    for (int i = 0; i < n; i++, p += strlen(p) + 1) {
        int fd = open(p, O_PATH | O_CLOEXEC);

        if (fd < 0)
            continue;
        if (lw_add_path_rule(ruleset_fd, allowed, fd) == 0)
            added++;
        close(fd);
    }
    return added;
}

int lw_floor_bare_domain(uint64_t handled)
{
    int rfd = lw_create_ruleset(handled, 0, 0, sizeof(uint64_t));
    int root, err;

    if (rfd < 0)
        return -1;
    root = open("/", O_PATH | O_CLOEXEC);
    if (root < 0 || lw_add_path_rule(rfd, handled, root) < 0 ||
        lw_no_new_privs() < 0 || lw_restrict_self(rfd, 0) < 0) {
        err = errno;
        if (root >= 0)
            close(root);
        close(rfd);
        errno = err;
        return -1;
    }
    close(root);
    close(rfd);
    return 0;
}

/* The child of lw_floor_spawn, out of line as lw_spawn's is (it runs on
 * the parent's stack while the parent waits in vfork). */
static void __attribute__((noreturn, noinline))
floor_child(const char *path, char *const *argv, int ruleset_fd,
            int seccomp_parts, int drop_caps, int cap_last, const sigset_t *mask)
{
    if ((ruleset_fd >= 0 || seccomp_parts) &&
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit(126);
    if (drop_caps) {
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];

        for (int cap = 0; cap <= cap_last && cap < 64; cap++)
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                _exit(126);
        if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                  SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0)
            _exit(126);
        memset(data, 0, sizeof(data));
        if (syscall(SYS_capset, &hdr, data) < 0)
            _exit(126);
    }
    if (ruleset_fd >= 0 && lw_restrict_self(ruleset_fd, 0) < 0)
        _exit(126);
    if (seccomp_parts) {
        struct sock_filter insns[LW_SC_MAX_INSNS];
        struct sock_fprog prog;
        int n = lw_seccomp_build(seccomp_parts, (int)getpid(), insns,
                                 LW_SC_MAX_INSNS);

        prog.len = (unsigned short)n;
        prog.filter = insns;
        if (n < 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            _exit(126);
    }
    sigprocmask(SIG_SETMASK, mask, NULL);
    execve(path, argv, environ);
    _exit(127);
}

int __attribute__((noinline))
lw_floor_spawn(const char *path, char *const *argv, int ruleset_fd,
               int seccomp_parts, int drop_caps, int cap_last)
{
    sigset_t all, old;
    pid_t pid;
    int saved;

    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, &old) < 0)
        return -1;
    pid = vfork();
    if (pid == 0)
        floor_child(path, argv, ruleset_fd, seccomp_parts, drop_caps, cap_last, &old);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
}
