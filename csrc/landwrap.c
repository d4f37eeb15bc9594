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
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>

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

/* ---- the seccomp companion filter ------------------------------------
 *
 * Landlock hooks only some operations (LANDLOCK.md, pitfall 13).  This
 * classic-BPF filter closes three gaps beside it, and nothing else:
 *
 *  - ioctl(fd, TIOCSTI | TIOCLINUX, ...) -> EPERM, always (typing into the
 *    terminal the command inherited).  The kernel takes ioctl's command as
 *    a 32-bit int: only the low 32 bits are compared.
 *  - socket(AF_INET | AF_INET6, SOCK_STREAM [| NONBLOCK | CLOEXEC],
 *    IPPROTO_MPTCP) -> EPROTONOSUPPORT, so programs fall back to TCP, which
 *    Landlock's TCP rules see (LW_SC_MPTCP, when TCP is restricted).
 *    io_uring_setup -> ENOSYS with it: IORING_OP_SOCKET creates sockets
 *    without the socket system call, so seccomp never sees them (checked:
 *    an MPTCP socket through io_uring on 6.18).  Programs fall back to
 *    plain system calls, as on a kernel without io_uring.
 *  - prlimit64, setpriority, sched_setaffinity, sched_setscheduler,
 *    sched_setparam, sched_setattr, ioprio_set aimed at another process ->
 *    EPERM (LW_SC_PROCS, when the signal scope is on).  Id 0 (the caller)
 *    and self_pid (the sandboxed process, whose main thread has that id)
 *    pass.  setpriority/ioprio_set on a process group or a user are
 *    refused: they reach processes outside (the launcher is in the same
 *    process group).  Any other id is a thread of the caller (pthread_
 *    setaffinity_np, per-thread nice) or another process; BPF cannot tell
 *    which.  With LW_SC_NOTIFY it goes to the launcher as a user
 *    notification, which lets the call continue only when the id is a
 *    thread of the caller's thread group (lw_notif_answer); without it,
 *    EPERM: secondary threads cannot change their own scheduling by tid.
 *    What stays open: between the supervisor's check and the kernel
 *    continuing the call, the thread may exit and its id be reused by an
 *    outside process (a race the supervisor cannot close; CONTINUE is only
 *    safe for such re-checkable decisions); with the plain filter, self_pid
 *    stays allowed after that process exits (the launcher keeps it an
 *    unreaped zombie until every descendant is gone, so there the pid is
 *    not reused; the Python API's spawns have no such guard).
 *
 * The architecture is checked first: a system call from another ABI (i386
 * or x32 on x86_64: other numbers, socketcall) fails with ENOSYS, so a
 * 32-bit program cannot go around the filter.  Architectures whose numbers
 * this build does not know get no filter at all (lw_seccomp_arch() == 0),
 * and strict mode refuses to run rather than install a wrong one.
 */
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif
#define LW_IPPROTO_MPTCP 262
#define LW_TIOCSTI 0x5412
#define LW_TIOCLINUX 0x541C
#define LW_PRIO_PROCESS 0
#define LW_IOPRIO_WHO_PROCESS 1
#define LW_X32_SYSCALL_BIT 0x40000000U

#if defined(__x86_64__)
#define LW_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__) && !defined(__AARCH64EB__)
#define LW_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#define LW_AUDIT_ARCH 0U
#endif

uint32_t lw_seccomp_arch(void)
{
    return LW_AUDIT_ARCH;
}

#if LW_AUDIT_ARCH
/* Offsets into struct seccomp_data; args are 64-bit, little endian here. */
#define OFF_NR offsetof(struct seccomp_data, nr)
#define OFF_ARCH offsetof(struct seccomp_data, arch)
#define OFF_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

/* Jump targets: either a label (resolved once the program is laid out) or
 * 0 (the next instruction). */
enum { L_NEXT = 0, L_ALLOW, L_EPERM, L_EPROTO, L_ENOSYS, L_OTHER, L_CHECK,
       L_IOCTL, L_SOCKET, L_SOCKTYPE, L_PID0, L_PRIO, L_IOPRIO,
       L_TREE, L_COUNT = L_TREE + 8 };  /* L_TREE...: the dispatch's nodes */

struct bpf_asm {
    struct sock_filter *out;
    unsigned char jt[LW_SC_MAX_INSNS], jf[LW_SC_MAX_INSNS];
    int at[L_COUNT];
    int n, cap;
};

static void op(struct bpf_asm *a, uint16_t code, uint32_t k, int jt, int jf)
{
    if (a->n < a->cap && a->n < LW_SC_MAX_INSNS) {
        a->out[a->n].code = code;
        a->out[a->n].k = k;
        a->jt[a->n] = (unsigned char)jt;
        a->jf[a->n] = (unsigned char)jf;
    }
    a->n++;
}

#define LD(a, off) op(a, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(off), 0, 0)
#define JEQ(a, k, t, f) op(a, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(k), t, f)
#define GOTO(a, l) op(a, BPF_JMP | BPF_JA, 0, l, 0)
#define RET(a, k) op(a, BPF_RET | BPF_K, (uint32_t)(k), 0, 0)
#define LABEL(a, l) ((a)->at[l] = (a)->n)

struct sc_call {
    uint32_t nr;
    int label;
};

/* Jump on the system call number (in A) to the label of each call the
 * filter looks at, by binary search (JGE splits, JEQ at the leaves); every
 * other call -- nearly all -- is allowed after about four comparisons
 * instead of one per known call.  The kernel runs the program for every
 * system call number when it is attached (to cache those always allowed)
 * and then on every call of the sandboxed program: both get shorter.
 * calls[] is sorted by number, the numbers distinct.  Pure. */
static void dispatch(struct bpf_asm *a, const struct sc_call *c, int n, int *next)
{
    int mid, right;

    if (n <= 3) {
        for (int i = 0; i < n; i++)
            JEQ(a, c[i].nr, c[i].label, L_NEXT);
        RET(a, SECCOMP_RET_ALLOW);
        return;
    }
    mid = n / 2;
    right = (*next)++;
    if (right >= L_COUNT) {  /* more calls than labels: refuse to build */
        a->n = LW_SC_MAX_INSNS + 1;
        return;
    }
    op(a, BPF_JMP | BPF_JGE | BPF_K, c[mid].nr, right, L_NEXT);
    dispatch(a, c, mid, next);
    LABEL(a, right);
    dispatch(a, c + mid, n - mid, next);
}
#endif

int lw_seccomp_build(int parts, int self_pid, void *out, int cap)
{
#if LW_AUDIT_ARCH
    struct bpf_asm a;
    struct sc_call calls[10];
    int n_calls = 0, next_label = L_TREE;
    static const int pid0_calls[] = {
        __NR_prlimit64, __NR_sched_setaffinity, __NR_sched_setscheduler,
        __NR_sched_setparam, __NR_sched_setattr,
    };

    memset(&a, 0, sizeof(a));
    a.out = out;
    a.cap = cap;

    LD(&a, OFF_ARCH);
    JEQ(&a, LW_AUDIT_ARCH, L_NEXT, L_ENOSYS);
    LD(&a, OFF_NR);
#if defined(__x86_64__)
    op(&a, BPF_JMP | BPF_JGE | BPF_K, LW_X32_SYSCALL_BIT, L_ENOSYS, L_NEXT);
#endif
    calls[n_calls++] = (struct sc_call){__NR_ioctl, L_IOCTL};
    if (parts & LW_SC_MPTCP) {
        calls[n_calls++] = (struct sc_call){__NR_socket, L_SOCKET};
        calls[n_calls++] = (struct sc_call){__NR_io_uring_setup, L_ENOSYS};
    }
    if (parts & LW_SC_PROCS) {
        for (size_t i = 0; i < sizeof(pid0_calls) / sizeof(*pid0_calls); i++)
            calls[n_calls++] = (struct sc_call){(uint32_t)pid0_calls[i], L_PID0};
        calls[n_calls++] = (struct sc_call){__NR_setpriority, L_PRIO};
        calls[n_calls++] = (struct sc_call){__NR_ioprio_set, L_IOPRIO};
    }
    for (int i = 1; i < n_calls; i++)  /* insertion sort: n_calls <= 10 */
        for (int j = i; j > 0 && calls[j - 1].nr > calls[j].nr; j--) {
            struct sc_call t = calls[j];
            calls[j] = calls[j - 1];
            calls[j - 1] = t;
        }
    dispatch(&a, calls, n_calls, &next_label);  /* every other call: allowed */

    LABEL(&a, L_IOCTL);
    LD(&a, OFF_ARG_LO(1));
    JEQ(&a, LW_TIOCSTI, L_EPERM, L_NEXT);
    JEQ(&a, LW_TIOCLINUX, L_EPERM, L_ALLOW);

    if (parts & LW_SC_MPTCP) {
        LABEL(&a, L_SOCKET);
        LD(&a, OFF_ARG_LO(0));
        JEQ(&a, AF_INET, L_SOCKTYPE, L_NEXT);
        JEQ(&a, AF_INET6, L_NEXT, L_ALLOW);
        LABEL(&a, L_SOCKTYPE);
        LD(&a, OFF_ARG_LO(1));
        op(&a, BPF_ALU | BPF_AND | BPF_K, ~(uint32_t)(SOCK_NONBLOCK | SOCK_CLOEXEC), 0, 0);
        JEQ(&a, SOCK_STREAM, L_NEXT, L_ALLOW);
        LD(&a, OFF_ARG_LO(2));
        JEQ(&a, LW_IPPROTO_MPTCP, L_EPROTO, L_ALLOW);
    }
    if (parts & LW_SC_PROCS) {
        LABEL(&a, L_PRIO);
        LD(&a, OFF_ARG_LO(0));
        JEQ(&a, LW_PRIO_PROCESS, L_NEXT, L_EPERM);
        LD(&a, OFF_ARG_LO(1));
        GOTO(&a, L_CHECK);
        LABEL(&a, L_IOPRIO);
        LD(&a, OFF_ARG_LO(0));
        JEQ(&a, LW_IOPRIO_WHO_PROCESS, L_NEXT, L_EPERM);
        LD(&a, OFF_ARG_LO(1));
        GOTO(&a, L_CHECK);
        LABEL(&a, L_PID0);
        LD(&a, OFF_ARG_LO(0));
        LABEL(&a, L_CHECK);          /* A: the target id */
        JEQ(&a, 0, L_ALLOW, L_NEXT);
        JEQ(&a, (uint32_t)self_pid, L_ALLOW, L_OTHER);
        LABEL(&a, L_OTHER);
        RET(&a, (parts & LW_SC_NOTIFY) ? SECCOMP_RET_USER_NOTIF
                                        : SECCOMP_RET_ERRNO | EPERM);
    }
    LABEL(&a, L_ALLOW);
    RET(&a, SECCOMP_RET_ALLOW);
    LABEL(&a, L_EPERM);
    RET(&a, SECCOMP_RET_ERRNO | EPERM);
    LABEL(&a, L_EPROTO);
    RET(&a, SECCOMP_RET_ERRNO | EPROTONOSUPPORT);
    LABEL(&a, L_ENOSYS);
    RET(&a, SECCOMP_RET_ERRNO | ENOSYS);

    if (a.n > cap || a.n > LW_SC_MAX_INSNS) {
        errno = ENOSPC;
        return -1;
    }
    /* Resolve the labels: forward jumps only, each within 255. */
    for (int i = 0; i < a.n; i++) {
        int cls = BPF_CLASS(a.out[i].code), t = a.jt[i], f = a.jf[i];
        if (cls != BPF_JMP)
            continue;
        if (BPF_OP(a.out[i].code) == BPF_JA) {
            a.out[i].k = (uint32_t)(a.at[t] - i - 1);
            a.out[i].jt = a.out[i].jf = 0;
            continue;
        }
        t = t == L_NEXT ? 0 : a.at[t] - i - 1;
        f = f == L_NEXT ? 0 : a.at[f] - i - 1;
        if (t < 0 || t > 255 || f < 0 || f > 255) {
            errno = EINVAL;
            return -1;
        }
        a.out[i].jt = (unsigned char)t;
        a.out[i].jf = (unsigned char)f;
    }
    return a.n;
#else
    errno = ENOSYS;  /* no filter for an architecture we do not know */
    return -1;
#endif
}

int lw_seccomp_install(int parts, int self_pid, unsigned int flags)
{
    struct sock_filter insns[LW_SC_MAX_INSNS];
    struct sock_fprog prog;
    int n = lw_seccomp_build(parts & ~LW_SC_NOTIFY, self_pid, insns,
                             LW_SC_MAX_INSNS);

    if (n < 0)
        return -1;
    prog.len = (unsigned short)n;
    prog.filter = insns;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                        (flags & 1) ? SECCOMP_FILTER_FLAG_TSYNC : 0, &prog);
}

int lw_seccomp_available(int notify)
{
    uint32_t action = SECCOMP_RET_ERRNO;

    if (!LW_AUDIT_ARCH)
        return 0;
    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
        return errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS ? 0 : -1;
    if (!notify)
        return 1;
    action = SECCOMP_RET_USER_NOTIF;
    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
        return errno == EOPNOTSUPP || errno == EINVAL ? 0 : -1;
    return 1;
}

/* One fd over a unix socket (SCM_RIGHTS); sendmsg is async-signal-safe. */
static int send_fd(int sock, int fd)
{
    char byte = 0;
    struct iovec iov = {&byte, 1};
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg;
    struct cmsghdr *c;

    memset(&msg, 0, sizeof(msg));
    memset(&u, 0, sizeof(u));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int lw_notif_pair(int *fds)
{
    return socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds);
}

int lw_set_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int lw_recv_fd(int sock)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg;
    struct cmsghdr *c;
    int fd;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 1)
        return -1;
    c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
        errno = EPROTO;
        return -1;
    }
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int lw_notif_answer(int listener)
{
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    char path[64];
    uint64_t target;
    int allowed = 0;
    struct pollfd pfd = {listener, POLLIN, 0};

    if (poll(&pfd, 1, -1) < 0)
        return -1;
    if (!(pfd.revents & POLLIN)) {
        errno = ESRCH;  /* POLLHUP: every process using the filter is gone */
        return -1;
    }
    memset(&req, 0, sizeof(req));
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
        return errno == ENOENT ? 0 : -1;  /* ENOENT: the caller died */
    /* The id the call aims at: arg 1 for setpriority/ioprio_set (whose
     * "which" the filter already required to be a process), else arg 0. */
    if (req.data.nr == __NR_setpriority || req.data.nr == __NR_ioprio_set)
        target = req.data.args[1];
    else
        target = req.data.args[0];
    target &= 0xffffffffU;
    if (target > 0 && target < 0x7fffffffU) {
        /* A thread of the caller's own thread group (same pid namespace:
         * landwrap creates none). */
        snprintf(path, sizeof(path), "/proc/%u/task/%u", (unsigned)req.pid,
                 (unsigned)target);
        allowed = access(path, F_OK) == 0;
    }
    memset(&resp, 0, sizeof(resp));
    resp.id = req.id;
    if (allowed && ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) == 0) {
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        resp.error = -EPERM;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

int lw_lstat_ids(int watch_fd, uint64_t watch_dev, uint64_t watch_ino,
                 char *const *paths, int n, uint64_t *out)
{
    struct stat st;

    /* The watched descriptor first: polled only when it is still the file
     * it was (a descriptor that now holds another open file, say another
     * process's mount table, is left alone: a poll would take its event). */
    out[0] = out[1] = 0;
    if (watch_fd >= 0 && lw_fstat(watch_fd, &st) == 0 &&
        (uint64_t)st.st_dev == watch_dev && (uint64_t)st.st_ino == watch_ino) {
        struct pollfd p = {watch_fd, POLLPRI, 0};

        out[0] = 1;
        out[1] = poll(&p, 1, 0) > 0 && p.revents ? 1 : 0;
    }
    out += 2;
    for (int i = 0; i < n; i++, out += 5) {
        if (lw_lstat(paths[i], &st) < 0) {
            memset(out, 0, 5 * sizeof(*out));
            continue;
        }
        out[0] = 1;
        out[1] = (uint64_t)st.st_dev;
        out[2] = (uint64_t)st.st_ino;
        out[3] = (uint64_t)((int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec);
        out[4] = (uint64_t)((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
    }
    return 0;
}

int lw_lstat_same(int watch_fd, uint64_t watch_dev, uint64_t watch_ino,
                  char *const *paths, int n, const uint64_t *expect)
{
    uint64_t buf[2 + 5 * 16];
    uint64_t *out = n <= 16 ? buf : malloc((2 + 5 * (size_t)n) * sizeof(*out));
    int r;

    if (!out)
        return 0;  /* (nothing known: the caller checks the long way) */
    lw_lstat_ids(watch_fd, watch_dev, watch_ino, paths, n, out);
    r = (int)out[0] | (int)out[1] << 1;
    if (memcmp(out + 2, expect, 5 * (size_t)n * sizeof(*out)) == 0)
        r |= 4;
    if (out != buf)
        free(out);
    return r;
}

int lw_fd_state(int fd, int mark, uint64_t *out)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -1;
    if (mark && (fl & mark) != mark) {
        if (fcntl(fd, F_SETFL, fl | mark) < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
            return -1;
    }
    if (lw_fstat(fd, &st) < 0)
        return -1;
    out[0] = (uint64_t)st.st_dev;
    out[1] = (uint64_t)st.st_ino;
    out[2] = (uint64_t)(unsigned)fl;
    return 0;
}

/* ---- child side ------------------------------------------------------ */

static void __attribute__((noreturn)) child_fail(const struct lw_spawn *s,
                                                 int stage)
{
    /* vfork: this is the parent's memory, read once vfork returns there
     * (the parent is suspended until this _exit). */
    volatile struct lw_error *f = (volatile struct lw_error *)&s->failure;

    f->err = errno;
    f->stage = stage;
    _exit(125);
}

static int close_fds_above(const struct lw_spawn *s)
{
    /* Close every fd >= 3 except the kept ones, the seccomp listener's
     * socket and the ruleset (close-on-exec, needed until execve). */
    int keep[LW_MAX_KEEP_FDS + 3];
    int n = 0, lo = 3;
    struct rlimit rl;

    for (int i = 0; i < s->n_keep && n < LW_MAX_KEEP_FDS; i++)
        keep[n++] = s->keep_fds[i];
    if (s->notif_sock >= 0 && n < LW_MAX_KEEP_FDS + 2)
        keep[n++] = s->notif_sock;
    if (s->ruleset_fd >= 0 && n < LW_MAX_KEEP_FDS + 3)
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

/* Capabilities (root sandboxes).  Raw syscalls only: async-signal-safe. */
static int drop_bounding(const struct lw_spawn *s)
{
    const int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                     SECBIT_KEEP_CAPS_LOCKED;
    int cur;

    /* Only what is still there is dropped: a nested sandbox has nothing
     * left to drop, and no CAP_SETPCAP to drop it with.  s->bounding is
     * the set the parent saw; a bounding set never grows, so a bit it
     * lacks is gone for good, and a bit it has may have gone since (then
     * the drop needs CAP_SETPCAP: without it, read to tell "already gone"
     * from a failure).  One system call per capability, not two. */
    for (int cap = 0; cap <= s->cap_last && cap < 64; cap++) {
        if ((s->keep_caps & (1ULL << cap)) || !(s->bounding & (1ULL << cap)))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
            prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
            return -1;
    }
    /* uid 0 gains nothing at execve; keep-caps off, and both locked. */
    cur = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    if (cur >= 0 && (cur & bits) == bits && !(cur & SECBIT_KEEP_CAPS))
        return 0;
    return prctl(PR_SET_SECUREBITS, (cur > 0 ? cur & ~SECBIT_KEEP_CAPS : 0) | bits,
                 0, 0, 0);
}

static int drop_caps(const struct lw_spawn *s)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    uint32_t lo = (uint32_t)s->keep_caps, hi = (uint32_t)(s->keep_caps >> 32);

    data[0].effective = data[0].permitted = data[0].inheritable = lo;
    data[1].effective = data[1].permitted = data[1].inheritable = hi;
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
        errno != EINVAL)
        return -1;
    /* Ambient: what the command keeps across execve (with SECBIT_NOROOT,
     * root's execve is an ordinary one). */
    for (int cap = 0; cap < 64; cap++)
        if ((s->keep_caps & (1ULL << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -1;
    return 0;
}

static void child_seccomp(const struct lw_spawn *s)
{
    struct sock_filter insns[LW_SC_MAX_INSNS];
    struct sock_fprog prog;
    unsigned int flags = 0;
    int n, fd;

    n = lw_seccomp_build(s->seccomp_parts, (int)getpid(), insns,
                         LW_SC_MAX_INSNS);
    if (n < 0)
        child_fail(s, LW_STAGE_SECCOMP);
    prog.len = (unsigned short)n;
    prog.filter = insns;
    if (s->seccomp_parts & LW_SC_NOTIFY)
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0 && errno == EBUSY && flags) {
        /* Inside another landwrap run: the kernel allows one listener per
         * filter chain.  Refuse other ids outright (EPERM) instead; the
         * launcher finds no listener and does not supervise. */
        n = lw_seccomp_build(s->seccomp_parts & ~LW_SC_NOTIFY, (int)getpid(),
                             insns, LW_SC_MAX_INSNS);
        if (n < 0)
            child_fail(s, LW_STAGE_SECCOMP);
        prog.len = (unsigned short)n;
        fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
        if (fd < 0)
            child_fail(s, LW_STAGE_SECCOMP);
        return;
    }
    if (fd < 0)
        child_fail(s, LW_STAGE_SECCOMP);
    if (s->seccomp_parts & LW_SC_NOTIFY) {
        /* Hand the listener to the launcher; the command must never have
         * it (it could answer its own notifications). */
        if (send_fd(s->notif_sock, fd) < 0)
            child_fail(s, LW_STAGE_LISTENER);
        close(fd);
    }
}

/* Kept out of line, as CPython's _posixsubprocess.c keeps its vfork child:
 * the child runs on the parent's stack while the parent is suspended in
 * vfork.  Inlined into lw_spawn, the compiler may merge the child's frame
 * into the vfork caller's and reuse stack slots the parent still needs
 * once vfork returns.  tests check the symbol with nm. */
static void __attribute__((noreturn, noinline)) child(const struct lw_spawn *s,
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

    /* Root: empty the bounding set and lock SECBIT_NOROOT while
     * CAP_SETPCAP is still effective (the set*id calls below still need
     * CAP_SETUID/CAP_SETGID, which the bounding set does not take away). */
    if ((s->flags & LW_DROP_BOUNDING) && drop_bounding(s) < 0)
        child_fail(s, LW_STAGE_CAPS);

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

    if ((s->flags & LW_DROP_CAPS) && drop_caps(s) < 0)
        child_fail(s, LW_STAGE_CAPS);

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
    if (s->flags & LW_SECCOMP)
        child_seccomp(s);

    if (s->flags & LW_UNBLOCK_SIGNALS) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    } else {
        sigprocmask(SIG_SETMASK, mask, NULL);
    }
    /* envp NULL: this process's environment, as subprocess's env=None. */
    execve(s->path, s->argv, s->envp ? s->envp : environ);
    child_fail(s, LW_STAGE_EXEC);
}

/* noinline, like child(): the frame that calls vfork stays its own. */
static pid_t __attribute__((noinline)) vfork_child(const struct lw_spawn *s)
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

/* A NULL-terminated array of the n strings packed in blob (malloc'd). */
static char **unpack_strings(const char *blob, int n)
{
    char **out = malloc(((size_t)n + 1) * sizeof(*out));

    if (!out)
        return NULL;
    for (int i = 0; i < n; i++) {
        out[i] = (char *)blob;
        blob += strlen(blob) + 1;
    }
    out[n] = NULL;
    return out;
}

int lw_spawn(struct lw_spawn *s)
{
    /* No error pipe (as glibc's posix_spawn has none): the vfork child
     * shares this memory and writes its failure into s->failure before it
     * exits, and vfork returns here only once the child has exited or its
     * execve has passed the point of no return.  Read through a volatile
     * pointer: the compiler cannot see the child's writes. */
    volatile struct lw_error *f = &s->failure;
    char **argv, **envp = NULL;
    pid_t pid;
    int saved;

    if (s->argc < 1) {
        errno = EINVAL;
        return -1;
    }
    if (s->ruleset_fd >= 0 && s->ruleset_fl >= 0) {
        /* Still the ruleset the caller built?  Code may have closed it and
         * let another file take its number.  Every ruleset shares one
         * anonymous inode, so the status flags the caller marked it with
         * tell apart a ruleset other code made; another ruleset the caller
         * marked the same way passes (its owner table, in Python, catches
         * that one when it happens between two spawns).  Checked here, in
         * the call that spawns, at no cost of its own to the caller. */
        struct stat st;
        int fl = fcntl(s->ruleset_fd, F_GETFL);

        if (fl != s->ruleset_fl || lw_fstat(s->ruleset_fd, &st) < 0 ||
            (uint64_t)st.st_dev != s->ruleset_dev || (uint64_t)st.st_ino != s->ruleset_ino) {
            errno = ESTALE;
            return -1;
        }
    }
    argv = unpack_strings(s->argv_blob, s->argc);
    if (s->envc >= 0)
        envp = unpack_strings(s->envp_blob, s->envc);
    if (!argv || (s->envc >= 0 && !envp)) {
        free(argv);
        free(envp);
        errno = ENOMEM;
        return -1;
    }
    s->argv = argv;
    s->envp = envp;
    f->stage = f->err = 0;
    s->parent_pid = (s->flags & LW_PDEATHSIG) ? (int)getpid() : 0;  /* only read then */
    pid = vfork_child(s);
    saved = errno;
    if (pid > 0 && f->stage == 0)
        f->err = 0;
    s->argv = s->envp = NULL;
    free(argv);
    free(envp);
    errno = saved;
    return pid;
}

int lw_spawnv(const char *path_blob, int argc, const char *envp_blob, int envc,
              const char *cwd, int stdin_fd, int stdout_fd, int stderr_fd,
              const int *keep_fds, int n_keep, int ruleset_fd, int ruleset_fl,
              uint64_t ruleset_dev, uint64_t ruleset_ino, uint32_t restrict_flags,
              int flags, unsigned int uid, unsigned int gid, uint64_t keep_caps,
              int cap_last, uint64_t bounding, int seccomp_parts, int notif_sock,
              int *failure)
{
    /* On this frame, which outlives the vfork child (it runs in callees);
     * what is not named here is zero. */
    struct lw_spawn s = {
        .path = path_blob, .argv_blob = path_blob + strlen(path_blob) + 1, .argc = argc,
        .envp_blob = envp_blob, .envc = envc, .cwd = cwd,
        .stdio = {stdin_fd, stdout_fd, stderr_fd}, .keep_fds = keep_fds, .n_keep = n_keep,
        .ruleset_fd = ruleset_fd, .ruleset_fl = ruleset_fl, .ruleset_dev = ruleset_dev,
        .ruleset_ino = ruleset_ino, .restrict_flags = restrict_flags, .flags = flags,
        .uid = uid, .gid = gid, .keep_caps = keep_caps, .cap_last = cap_last,
        .bounding = bounding, .seccomp_parts = seccomp_parts, .notif_sock = notif_sock,
    };
    int pid;

    pid = lw_spawn(&s);
    failure[0] = s.failure.stage;
    failure[1] = s.failure.err;
    return pid;
}
