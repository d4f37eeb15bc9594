/* paths.c: resolve path rules and add them to a ruleset, opening each path
 * once.
 *
 * The O_PATH descriptor that tells a path's type is the one its rule is
 * bound to, so nothing can be swapped between resolving and enforcing.  Only
 * paths without a symbolic link on the way get their rule here: for the
 * others the real path is reported and Python decides (see ruleset.py).  A
 * path beneath a directory whose rule, added here, already grants all its
 * rights is still opened (a missing path is an error, a symlink reports its
 * target) but adds no rule.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "landwrap.h"
#include "lwsys.h"

#ifndef __NR_openat2
#define __NR_openat2 437
#endif

struct open_how_ {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

static int open_beneath_no_links(const char *path)
{
    struct open_how_ how = {O_PATH | O_CLOEXEC, 0, 0x04 /* NO_SYMLINKS */};

    return (int)syscall(__NR_openat2, AT_FDCWD, path, &how, sizeof(how));
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* a is a (normalized, absolute) proper ancestor of b */
static int is_ancestor(const char *a, const char *b)
{
    size_t n = strlen(a);

    if (n == 1)
        return b[1] != '\0';
    return strncmp(a, b, n) == 0 && b[n] == '/';
}

/* The real path of an open descriptor, through /proc/self/fd. */
static void real_path(int fd, int *off, int *rlen, char *realbuf,
                      int realcap, int *used)
{
    char link[64];
    ssize_t len = -1;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    if (*used < realcap)
        len = readlink(link, realbuf + *used, (size_t)(realcap - *used));
    if (len > 0 && len < realcap - *used) {
        *off = *used;
        *rlen = (int)len;
        *used += (int)len;
    } else {
        *off = -2;
    }
}

int lw_open_add_paths(int ruleset_fd, const char *paths, int n,
                      const uint64_t *allowed, uint64_t file_mask,
                      int *err, unsigned int *mode, int *real_off,
                      int *real_len, int *added, char *realbuf, int realcap,
                      int *failed)
{
    const char **ptr = malloc(sizeof(*ptr) * (size_t)(n ? n : 1));
    int *order = malloc(sizeof(*order) * (size_t)(n ? n : 1));
    int *stack = malloc(sizeof(*stack) * (size_t)(n ? n : 1));
    uint64_t *grant = malloc(sizeof(*grant) * (size_t)(n ? n : 1));
    const char *p = paths;
    int used = 0, depth = 0, ret = 0;

    if (!ptr || !order || !stack || !grant) {
        ret = -1;
        errno = ENOMEM;
        *failed = -1;
        goto out;
    }
    for (int i = 0; i < n; i++, p += strlen(p) + 1)
        ptr[i] = p;
    /* Sorted, every ancestor comes before what is beneath it.  Sorting the
     * pointers keeps the caller's index: ptr[k] - paths is unique. */
    {
        const char **sorted = malloc(sizeof(*sorted) * (size_t)(n ? n : 1));
        if (!sorted) {
            ret = -1;
            errno = ENOMEM;
            *failed = -1;
            goto out;
        }
        memcpy(sorted, ptr, sizeof(*sorted) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof(*sorted), by_path);
        /* map back to indices: paths are back to back, so a binary search
         * over the original (increasing) pointers finds each one */
        for (int k = 0; k < n; k++) {
            int lo = 0, hi = n - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (ptr[mid] < sorted[k])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            order[k] = lo;
        }
        free(sorted);
    }
    for (int k = 0; k < n; k++) {
        int i = order[k], fd;
        struct stat st;
        uint64_t acc, covered;

        err[i] = 0;
        mode[i] = 0;
        real_off[i] = -1;
        real_len[i] = 0;
        added[i] = 0;
        while (depth && !is_ancestor(ptr[stack[depth - 1]], ptr[i]))
            depth--;
        covered = depth ? grant[depth - 1] : 0;

        fd = open_beneath_no_links(ptr[i]);
        if (fd < 0 && (errno == ELOOP || errno == ENOSYS || errno == EXDEV)) {
            /* a symlink on the way: follow it, and report the real path */
            fd = open(ptr[i], O_PATH | O_CLOEXEC);
            if (fd >= 0)
                real_path(fd, &real_off[i], &real_len[i], realbuf, realcap, &used);
        }
        if (fd < 0) {
            err[i] = errno;
            continue;
        }
        if (lw_fstat(fd, &st) < 0) {
            err[i] = errno;
            close(fd);
            continue;
        }
        mode[i] = st.st_mode;
        acc = S_ISDIR(st.st_mode) ? allowed[i] : (allowed[i] & file_mask);
        if (ruleset_fd >= 0 && real_off[i] == -1 && acc) {
            if ((acc & ~covered) == 0) {
                added[i] = 2;
            } else if (lw_add_path_rule(ruleset_fd, acc, fd) < 0) {
                int e = errno;
                close(fd);
                *failed = i;
                errno = e;
                ret = -1;
                goto out;
            } else {
                added[i] = 1;
            }
        }
        close(fd);
        /* A directory reached without a symlink grants what it was given
         * (here, or by its ancestors) to all that is lexically beneath. */
        if (real_off[i] == -1 && S_ISDIR(st.st_mode) && added[i]) {
            stack[depth] = i;
            grant[depth] = covered | acc;
            depth++;
        }
    }
out:
    free(ptr);
    free(order);
    free(stack);
    free(grant);
    return ret;
}
