/* attacker.c: the attacks of issue 8 as one small program (compiled by
 * tests/system/test_hardening_sandbox.py).  Each subcommand prints NAME=ERRNO
 * (0: the call succeeded) and exits 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void say(const char *name, int r)
{
    printf("%s=%d\n", name, r < 0 ? errno : 0);
    fflush(stdout);
}

/* One step nicer than now (lowering it would need CAP_SYS_NICE, so a
 * fixed value fails when the tests themselves run under nice). */
static int nicer(int who)
{
    int now;
    errno = 0;
    now = getpriority(PRIO_PROCESS, (id_t)who);
    if (now == -1 && errno)
        return -1;
    return setpriority(PRIO_PROCESS, (id_t)who, now < 19 ? now + 1 : 19);
}

static int prio_tid(pid_t tid)
{
    return nicer((int)tid);
}

static void *thread_main(void *arg)
{
    cpu_set_t set;
    struct sched_param sp = {0};
    pid_t tid = (pid_t)syscall(SYS_gettid);

    (void)arg;
    sched_getaffinity(0, sizeof(set), &set);
    errno = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    say("thread_setaffinity_np", errno ? -1 : 0);
    errno = pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
    say("thread_setschedparam", errno ? -1 : 0);
    say("thread_nice_own_tid", prio_tid(tid));
    say("thread_affinity_own_tid", sched_setaffinity(tid, sizeof(set), &set));
    return NULL;
}

/* socket(AF_INET, SOCK_STREAM, MPTCP) through io_uring (IORING_OP_SOCKET):
 * no socket system call for seccomp to see. */
static void uring_mptcp(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    say("io_uring_setup", fd);
    if (fd < 0)
        return;
    char *sq = mmap(0, p.sq_off.array + p.sq_entries * sizeof(unsigned) +
                    p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(*sqes),
                                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                                     fd, IORING_OFF_SQES);
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    memset(&sqes[0], 0, sizeof(sqes[0]));
    sqes[0].opcode = IORING_OP_SOCKET;
    sqes[0].fd = AF_INET;
    sqes[0].off = SOCK_STREAM;
    sqes[0].len = 262;
    array[0] = 0;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        say("io_uring_enter", -1);
        return;
    }
    /* single mmap (IORING_FEAT_SINGLE_MMAP): the CQ ring is the SQ ring */
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    unsigned head = *(unsigned *)(sq + p.cq_off.head);
    int res = cqes[head & (p.cq_entries - 1)].res;
    errno = -res;
    say("uring_mptcp_socket", res < 0 ? -1 : 0);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    long a = argc > 2 ? atol(argv[2]) : 0, b = argc > 3 ? atol(argv[3]) : 0;

    if (!strcmp(cmd, "tiocsti")) {
        int r = 0;
        for (const char *p = argv[2]; *p && r == 0; p++)
            r = ioctl(0, TIOCSTI, p);
        say("tiocsti", r);
    } else if (!strcmp(cmd, "tiocsti64")) {
        /* the same request with garbage in the upper 32 bits */
        char c = 'Z';
        say("tiocsti64", (int)syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
    } else if (!strcmp(cmd, "tioclinux")) {
        char sub = 6;  /* TIOCL_GETSHIFTSTATE-ish: any subcode */
        say("tioclinux", ioctl(0, TIOCLINUX, &sub));
    } else if (!strcmp(cmd, "mptcp")) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 262);
        say("mptcp_socket", fd);
        if (fd >= 0) {
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a)};
            inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
            int r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
            say("mptcp_connect", r);
            if (r == 0)
                say("mptcp_send", (int)write(fd, "hello", 5));
        }
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 262);
        say("mptcp6_socket", fd);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        say("tcp_socket", fd);
    } else if (!strcmp(cmd, "uring")) {
        uring_mptcp();
    } else if (!strcmp(cmd, "prlimit")) {
        struct rlimit rl = {1, 1};
        say("prlimit", prlimit((pid_t)a, RLIMIT_CPU, &rl, NULL));
    } else if (!strcmp(cmd, "groups")) {
        /* process groups and users reach outside processes (never run this
         * outside a sandbox with who = 0: it renices every process) */
        say("pgrp_nice", setpriority(PRIO_PGRP, (id_t)a, 1));
        say("user_nice", setpriority(PRIO_USER, (id_t)b, 1));
        say("ioprio_pgrp", (int)syscall(SYS_ioprio_set, 2, (int)a, (2 << 13) | 7));
        say("ioprio_user", (int)syscall(SYS_ioprio_set, 3, (int)b, (2 << 13) | 7));
    } else if (!strcmp(cmd, "setpriority")) {
        say("setpriority", setpriority((int)a, (id_t)b, 5));
    } else if (!strcmp(cmd, "affinity")) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        say("sched_setaffinity", sched_setaffinity((pid_t)a, sizeof(set), &set));
    } else if (!strcmp(cmd, "scheduler")) {
        struct sched_param sp = {0};
        say("sched_setscheduler", sched_setscheduler((pid_t)a, SCHED_BATCH, &sp));
        say("sched_setparam", sched_setparam((pid_t)a, &sp));
        unsigned int attr[12] = {48, SCHED_BATCH};  /* size, policy */
        say("sched_setattr", (int)syscall(SYS_sched_setattr, (pid_t)a, attr, 0));
    } else if (!strcmp(cmd, "ioprio")) {
        say("ioprio_set", (int)syscall(SYS_ioprio_set, (int)a, (int)b, (2 << 13) | 7));
    } else if (!strcmp(cmd, "own")) {
        /* what a sandboxed program legitimately does to itself */
        struct rlimit rl;
        cpu_set_t set;
        pthread_t t;
        getrlimit(RLIMIT_NOFILE, &rl);
        say("setrlimit", setrlimit(RLIMIT_NOFILE, &rl));
        say("prlimit_self", prlimit(getpid(), RLIMIT_NOFILE, &rl, NULL));
        say("nice_self", nicer(0));
        sched_getaffinity(0, sizeof(set), &set);
        say("affinity_self", sched_setaffinity(getpid(), sizeof(set), &set));
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, NULL);
        if (fork() == 0) {  /* a child aiming at itself by pid */
            say("child_prlimit_self", prlimit(getpid(), RLIMIT_NOFILE, &rl, NULL));
            _exit(0);
        }
        wait(NULL);
    } else if (!strcmp(cmd, "mknod")) {
        say("mknod_block", mknod(argv[2], S_IFBLK | 0600, makedev(7, 0)));
    } else if (!strcmp(cmd, "mkfifo")) {
        say("mkfifo", mknod(argv[2], S_IFIFO | 0600, 0));
    } else if (!strcmp(cmd, "hostname")) {
        char name[256] = {0};
        gethostname(name, sizeof(name) - 1);
        say("sethostname", sethostname(name, strlen(name)));
    } else if (!strcmp(cmd, "rawsock")) {
        say("raw_socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    } else if (!strcmp(cmd, "daemon")) {
        /* fork + setsid: a grandchild that tries to outlive landwrap */
        int p[2];
        char c;
        if (pipe(p) < 0)
            return 1;
        if (fork() == 0) {
            setsid();
            if (b)
                signal(SIGTERM, SIG_IGN);
            FILE *f = fopen(argv[2], "w");
            fprintf(f, "%d\n", getpid());
            fclose(f);
            close(p[1]);
            for (;;)
                pause();
        }
        close(p[1]);
        (void)read(p[0], &c, 1);
        say("daemon", 0);
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    return 0;
}
