/* threads.c: apply a Landlock ruleset to every thread of this process.
 *
 * Before Landlock ABI 8 (TSYNC), landlock_restrict_self() restricts only
 * the thread that calls it.  This file runs the call on each of the other
 * threads: a real-time signal is sent with tgkill() to every thread listed
 * in /proc/self/task; its handler sets no_new_privs, restricts that thread,
 * records the result, and then HOLDS the thread (a futex wait) until the
 * round is over.  Holding is what makes the round exact:
 *
 *   - a held thread cannot create threads, so a thread that shows up in a
 *     later scan was created by a thread not restricted yet: it is
 *     unrestricted too and gets its own signal; no thread is restricted
 *     twice (each layer counts toward Landlock's limit of 16);
 *   - a held thread cannot exit, so its tid cannot be reused;
 *   - the round succeeds only when every known thread is held at once and
 *     the kernel's own count of threads (/proc/self/status "Threads:")
 *     equals the held threads plus the caller: at that instant every
 *     thread carries the domain, and every thread created later inherits it.
 *
 * Holding can deadlock: a held thread may own a lock (the Python GIL) that
 * another thread waits for with every signal blocked (CPython does that
 * right after a vfork), so the latter never takes its signal.  Hence the
 * stall escape: when nothing answers for STALL_MS while threads are still
 * outstanding, every held thread is let go (it is restricted already) and
 * answers are collected without holding; once all are in, hold mode
 * resumes and each restricted thread that runs free gets the signal again,
 * which now only holds it.  Success still requires everybody held at once.
 * The cost of an escape: a thread created during it by an already
 * restricted thread cannot be told from an unrestricted one and gets a
 * second, identical layer.
 *
 * The coordinator must not take locks that a held thread may own: it makes
 * only system calls and runs without the GIL (cffi releases it for the
 * call).  The handler makes only system calls and atomic memory operations
 * (async-signal-safe).  Policy (which signal, timeout, what a failure
 * means) is the caller's; see landwrap/engine/threads.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "landwrap.h"

#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif

#define STALL_MS 10

/* Round state.  Static, never freed: a late handler can always read it. */
static struct lw_thread slots[LW_MAX_THREADS];
static int held[LW_MAX_THREADS];    /* epoch+1 while its thread is held */
static int rehold[LW_MAX_THREADS];  /* hold attempt its last re-signal was for */
static int ended[LW_MAX_THREADS];   /* restricted, then exited (after an escape) */
static int n_slots;       /* entries of slots[] in use */
static int active;        /* a round is running: handlers may act */
static int hold_mode;     /* handlers hold after acting */
static int epoch;         /* held threads wait while it is unchanged */
static int progress;      /* bumped by each answer and each hold */
static int inside;        /* handlers currently running */
static int busy;          /* one round at a time: the pid running it, or 0 */
static int r_fd;
static uint32_t r_flags;
static pid_t r_pid;
static char dents[256 * 1024] __attribute__((aligned(8)));  /* one getdents call */

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define CAS(p, old, new)                                                     \
    __extension__({                                                          \
        int want_ = (old);                                                   \
        __atomic_compare_exchange_n((p), &want_, (new), 0, __ATOMIC_SEQ_CST, \
                                    __ATOMIC_SEQ_CST);                       \
    })

static long futex(int *addr, int op, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static void bump(int *word)
{
    ADD(word, 1);
    futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;

    (void)sig;
    (void)uc;
    ADD(&inside, 1);
    /* Only our own tgkill() counts; a stray kill(2) of this signal from
     * anywhere else does nothing. */
    if (si->si_code == SI_TKILL && si->si_pid == r_pid && LOAD(&active)) {
        int tid = (int)syscall(SYS_gettid);
        int n = LOAD(&n_slots), i = -1, e;

        /* This thread's slot: the latest one for its tid (an earlier one
         * can only belong to a thread that exited). */
        for (int k = n - 1; k >= 0; k--) {
            if (LOAD(&slots[k].tid) == tid && LOAD(&slots[k].state) != LW_T_GONE &&
                !LOAD(&ended[k])) {
                i = k;
                break;
            }
        }
        if (i >= 0 && CAS(&slots[i].state, LW_T_SENT, LW_T_BUSY)) {
            int err = 0;

            if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
                err = errno;
            else if (syscall(__NR_landlock_restrict_self, r_fd, r_flags) < 0)
                err = errno;
            slots[i].err = err;
            STORE(&slots[i].state, LW_T_DONE);
        } else if (i >= 0 && LOAD(&slots[i].state) != LW_T_DONE) {
            i = -1;
        }
        if (i >= 0) {
            /* Restricted (now or before): hold while the round wants it.
             * Read the epoch first: a release bumps it after clearing
             * hold_mode, so either order of events lets this thread go. */
            e = LOAD(&epoch);
            if (LOAD(&hold_mode)) {
                STORE(&held[i], e + 1);
                bump(&progress);
                while (LOAD(&epoch) == e)
                    futex(&epoch, FUTEX_WAIT_PRIVATE, e, NULL);
            } else {
                bump(&progress);
            }
        }
    }
    ADD(&inside, -1);
    errno = saved;
}

int lw_signal_is_free(int sig)
{
    struct sigaction old;

    if (sigaction(sig, NULL, &old) < 0)
        return -1;
    return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* "Threads:" of /proc/self/status, read through an fd opened before the
 * caller was restricted (the ruleset may deny /proc). */
static int count_threads(int status_fd)
{
    char buf[8192];
    ssize_t n = pread(status_fd, buf, sizeof(buf) - 1, 0);
    const char *key = "\nThreads:";

    if (n < 0)
        return -1;
    buf[n] = 0;
    for (char *p = buf; (p = strchr(p, '\n')) != NULL; p++) {
        if (strncmp(p, key, strlen(key)) == 0) {
            int v = 0;
            for (p += strlen(key); *p == ' ' || *p == '\t'; p++)
                ;
            for (; *p >= '0' && *p <= '9'; p++)
                v = v * 10 + (*p - '0');
            return v;
        }
    }
    errno = EPROTO;
    return -1;
}

static int known(int tid, int n)
{
    for (int i = 0; i < n; i++)
        if (slots[i].tid == tid && LOAD(&slots[i].state) != LW_T_GONE &&
            !LOAD(&ended[i]))
            return 1;
    return 0;
}

/* Signal every thread of /proc/self/task not seen before.  The whole list
 * is read in one getdents call when it fits (it does up to thousands of
 * threads): one walk of the kernel's thread list, which lists every
 * thread alive throughout it.  Returns 0 or an errno. */
static int scan(int task_fd, int self, int sig)
{
    if (lseek(task_fd, 0, SEEK_SET) < 0)
        return errno;
    for (;;) {
        long got = syscall(SYS_getdents64, task_fd, dents, sizeof(dents));

        if (got < 0)
            return errno;
        if (got == 0)
            return 0;
        for (long off = 0; off < got;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            const char *name = dents + off + 19;
            int tid = 0, n;

            memcpy(&reclen, dents + off + 16, sizeof(reclen));
            off += reclen;
            if (*name < '0' || *name > '9')
                continue;
            for (; *name >= '0' && *name <= '9'; name++)
                tid = tid * 10 + (*name - '0');
            n = n_slots;
            if (tid == self || known(tid, n))
                continue;
            if (n >= LW_MAX_THREADS)
                return ENOSPC;
            slots[n].tid = tid;
            slots[n].err = 0;
            slots[n].state = LW_T_SENT;
            held[n] = 0;
            rehold[n] = 0;
            ended[n] = 0;
            STORE(&n_slots, n + 1);
            if (syscall(SYS_tgkill, r_pid, tid, sig) < 0) {
                if (errno == ESRCH) {
                    STORE(&slots[n].state, LW_T_GONE);
                } else {
                    slots[n].err = errno;
                    STORE(&slots[n].state, LW_T_LOST);
                    return errno;
                }
            }
        }
    }
}

/* Whether slot i's thread is held now: a release bumps the epoch, which
 * makes every earlier hold stale at once (the thread may not have woken
 * up yet, but it is no longer held). */
static int is_held(int i)
{
    return LOAD(&held[i]) == LOAD(&epoch) + 1;
}

struct tally {
    int pending;  /* signalled, not answered */
    int held;     /* restricted and held */
    int free;     /* restricted, running (after an escape) */
};

/* Count the slots.  With check, a thread that is not held and has exited
 * is marked gone or ended (a held one cannot exit): one tgkill(0) each, so
 * only done when answers have stopped coming. */
static struct tally tally(int check)
{
    struct tally t = {0, 0, 0};
    int n = LOAD(&n_slots);

    for (int i = 0; i < n; i++) {
        int st = LOAD(&slots[i].state);

        if (st == LW_T_BUSY) {
            t.pending++;
        } else if ((st == LW_T_SENT || st == LW_T_DONE) && !LOAD(&ended[i])) {
            int h = is_held(i);

            if (check && !h && syscall(SYS_tgkill, r_pid, slots[i].tid, 0) < 0 &&
                errno == ESRCH) {
                /* A restricted thread that ended keeps its record. */
                if (st == LW_T_DONE)
                    STORE(&ended[i], 1);
                else
                    CAS(&slots[i].state, LW_T_SENT, LW_T_GONE);
                continue;
            }
            if (st == LW_T_SENT)
                t.pending++;
            else if (h)
                t.held++;
            else
                t.free++;
        }
    }
    return t;
}

/* Hold attempt number `attempt`: re-signal each restricted thread that
 * runs free (once per attempt); its handler only holds it. */
static int resignal_free(int sig, int attempt)
{
    int n = LOAD(&n_slots);

    for (int i = 0; i < n; i++) {
        if (LOAD(&slots[i].state) != LW_T_DONE || is_held(i) ||
            LOAD(&ended[i]) || rehold[i] == attempt)
            continue;
        rehold[i] = attempt;
        if (syscall(SYS_tgkill, r_pid, slots[i].tid, sig) < 0 && errno != ESRCH) {
            slots[i].err = errno;
            STORE(&slots[i].state, LW_T_LOST);
            return errno;
        }
    }
    return 0;
}

static void release_all(void)
{
    STORE(&hold_mode, 0);
    bump(&epoch);
}

static int run_round(int task_fd, int status_fd, int self, int sig,
                     int timeout_ms, int *escapes)
{
    long deadline = now_ms() + timeout_ms;
    long last_progress = now_ms();
    int seen = LOAD(&progress);
    int attempt = 1, quiet = 0, do_scan = 1;

    STORE(&hold_mode, 1);
    for (;;) {
        struct timespec ts = {0, 1000000};
        struct tally t;
        int err, p;

        /* New threads matter once answers stop coming or all are in;
         * while they flow, only count them. */
        if (do_scan) {
            err = scan(task_fd, self, sig);
            if (err)
                return err;
        }
        t = tally(quiet);
        if (LOAD(&hold_mode) && !t.pending && !t.free) {
            /* Everybody known is held: nobody can create or end a thread. */
            int total = count_threads(status_fd);

            if (total < 0)
                return errno;
            if (total == t.held + 1)
                return 0;
            if (now_ms() >= deadline)
                return ETIMEDOUT;
            do_scan = 1;
            continue; /* threads not seen yet: scan again at once */
        }
        if (!LOAD(&hold_mode) && !t.pending) {
            STORE(&hold_mode, 1); /* all answered: try to hold everybody */
            attempt++;
        }
        if (LOAD(&hold_mode) && t.free) {
            err = resignal_free(sig, attempt);
            if (err)
                return err;
        }
        p = LOAD(&progress);
        quiet = p == seen;
        if (!quiet) {
            seen = p;
            last_progress = now_ms();
        } else if (LOAD(&hold_mode) && now_ms() - last_progress >= STALL_MS) {
            /* Nothing answers: a thread may wait, signals blocked, for
             * something a held thread owns.  Let everybody go. */
            release_all();
            (*escapes)++;
            last_progress = now_ms();
        }
        if (now_ms() >= deadline)
            return ETIMEDOUT;
        do_scan = quiet || !t.pending;
        futex(&progress, FUTEX_WAIT_PRIVATE, p, &ts);
    }
}

int lw_restrict_threads(int ruleset_fd, uint32_t flags, int sig,
                        int task_fd, int status_fd, int timeout_ms,
                        struct lw_thread *out, int out_cap, int *outcome,
                        int *escapes)
{
    struct sigaction sa, old;
    int result, n;
    int me = (int)getpid(), owner = LOAD(&busy), idle = 0;

    /* A child forked while its parent ran a round inherits the round
     * marked busy (and threads counted inside the handler) that it does
     * not have: start afresh.  (busy holds the pid that took it, from the
     * moment it is taken: a round of this very process is never reset.) */
    if (owner && owner != me) {
        STORE(&active, 0);
        STORE(&inside, 0);
        __atomic_compare_exchange_n(&busy, &owner, 0, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST);
    }
    if (!__atomic_compare_exchange_n(&busy, &idle, me, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
        errno = EALREADY;
        return -1;
    }
    if (sigaction(sig, NULL, &old) < 0)
        goto fail;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) {
        errno = EBUSY;
        goto fail;
    }
    r_fd = ruleset_fd;
    r_flags = flags;
    r_pid = getpid();
    n_slots = 0;
    hold_mode = 0;
    progress = 0;
    *escapes = 0;
    STORE(&active, 1);

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask); /* a held thread runs no other handler */
    if (sigaction(sig, &sa, NULL) < 0) {
        STORE(&active, 0);
        goto fail;
    }

    result = run_round(task_fd, status_fd, (int)syscall(SYS_gettid), sig,
                       timeout_ms, escapes);

    /* End the round: no handler acts from now on; let the held go, and
     * wait until none is still inside the handler. */
    STORE(&active, 0);
    release_all();
    while (LOAD(&inside)) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    /* SIG_IGN discards instances still pending on threads that never took
     * theirs (blocked it, or timed out); then back to what it was. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(sig, &sa, NULL);
    sigaction(sig, &old, NULL);

    n = n_slots;
    for (int i = 0; i < n && i < out_cap; i++)
        out[i] = slots[i];
    *outcome = result;
    STORE(&busy, 0);
    return n;

fail:
    STORE(&busy, 0);
    return -1;
}

/* ---- reading every thread's blocked signals (the caller's pre-check) ---- */

static char mask_dents[256 * 1024] __attribute__((aligned(8)));

static uint64_t parse_hex(const char *p)
{
    uint64_t v = 0;

    for (;; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0'
              : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return v;
        v = v * 16 + (uint64_t)d;
    }
}

int lw_thread_masks(int task_fd, struct lw_thread_mask *out, int cap)
{
    int n = 0;

    if (lseek(task_fd, 0, SEEK_SET) < 0)
        return -1;
    for (;;) {
        long got = syscall(SYS_getdents64, task_fd, mask_dents, sizeof(mask_dents));

        if (got < 0)
            return -1;
        if (got == 0)
            return n;
        for (long off = 0; off < got && n < cap;) {
            unsigned short reclen;
            const char *name = mask_dents + off + 19;
            char path[64], buf[4096];
            struct lw_thread_mask *m = &out[n];
            ssize_t len;
            int fd;

            memcpy(&reclen, mask_dents + off + 16, sizeof(reclen));
            off += reclen;
            if (*name < '0' || *name > '9' || strlen(name) > 20)
                continue;
            memset(m, 0, sizeof(*m));
            for (const char *p = name; *p >= '0' && *p <= '9'; p++)
                m->tid = m->tid * 10 + (*p - '0');
            strcpy(path, name);
            strcat(path, "/status");
            fd = openat(task_fd, path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT || errno == ESRCH)
                    continue; /* it exited */
                n++;          /* there, but unreadable (a sandbox denies /proc) */
                continue;
            }
            len = read(fd, buf, sizeof(buf) - 1);
            close(fd);
            if (len <= 0) {
                n++;
                continue;
            }
            buf[len] = 0;
            m->readable = 1;
            if (strncmp(buf, "Name:\t", 6) == 0) {
                size_t k = 0;
                for (const char *p = buf + 6; *p && *p != '\n' && k < sizeof(m->name) - 1; p++)
                    m->name[k++] = *p;
            }
            {
                const char *p = strstr(buf, "\nSigBlk:");
                if (p) {
                    for (p += 8; *p == ' ' || *p == '\t'; p++)
                        ;
                    m->blocked = parse_hex(p);
                }
            }
            n++;
        }
        if (n >= cap)
            return n;
    }
}
