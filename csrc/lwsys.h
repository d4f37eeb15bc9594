/* lwsys.h: libc calls whose glibc symbol is newer than the oldest glibc the
 * wheels promise (manylinux2014: glibc 2.17), replaced by equivalents that
 * bind to old symbols.  tests/system/test_packaging.py checks the built extension
 * with objdump; add a helper here when it names a new symbol. */
#ifndef LWSYS_H
#define LWSYS_H

#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* fstat is fstat@GLIBC_2.33 when built against glibc >= 2.33 (earlier it
 * was an inline wrapper around __fxstat).  On x86_64 and aarch64 (the only
 * wheel architectures) the kernel's struct stat is libc's struct stat, for
 * glibc and musl alike. */
static inline int lw_fstat(int fd, struct stat *st)
{
    return (int)syscall(SYS_fstat, fd, st);
}

/* lstat likewise (lstat@GLIBC_2.33): newfstatat, the same struct. */
static inline int lw_lstat(const char *path, struct stat *st)
{
    return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

/* stat likewise (stat@GLIBC_2.33): newfstatat following symlinks. */
static inline int lw_stat(const char *path, struct stat *st)
{
    return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, 0);
}

/* pthread_sigmask is pthread_sigmask@GLIBC_2.32 against glibc >= 2.32.
 * sigprocmask (GLIBC_2.2.5) is the same call on Linux: it sets the calling
 * thread's mask and, like pthread_sigmask, leaves libc's internal signals
 * alone (glibc and musl).  Returns 0, or -1 with errno set. */
static inline int lw_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return sigprocmask(how, set, old);
}

#endif
