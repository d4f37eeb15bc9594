/* paths.c: resolve path rules and add them to a ruleset, opening each path
 * once.
 *
 * The O_PATH descriptor that tells a path's type is the one its rule is
 * bound to, so nothing can be swapped between resolving and enforcing.  Only
 * paths without a symbolic link on the way get their rule here: for the
 * others the real path is reported and Python decides (see plan.py).  A
 * path beneath a directory whose rule, added here, already grants all its
 * rights is still opened (a missing path is an error, a symlink -- say
 * /etc/resolv.conf beneath /etc -- has its target ruled) but adds no rule.
 * Policy stays in Python: this file only opens, stats and adds.  A path
 * whose rule needs adding is not stat'ed when its rights include
 * directory-only ones: the kernel's answer to the rule tells its type; nor
 * is one in a directory that has no subdirectory (see open_sibling).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

static int open_no_links_at(int dirfd, const char *path)
{
    struct open_how_ how = {O_PATH | O_CLOEXEC, 0, 0x04 /* NO_SYMLINKS */};

    return (int)syscall(__NR_openat2, dirfd, path, &how, sizeof(how));
}

static int open_beneath_no_links(const char *path)
{
    return open_no_links_at(AT_FDCWD, path);
}

/* Siblings share the walk to their directory: the directory of ptr[k] is
 * opened (no symlink on the way) when the next path in sorted order is in
 * it too, and kept in *dir_fd while the paths are in it, so that each is
 * opened by its last name alone.  Returns the descriptor, or -1 (then the
 * caller opens the whole path, as for any failure here). */
/* Filesystems whose directories count their subdirectories in st_nlink
 * (2 + subdirectories): ext2/3/4, tmpfs, xfs.  Others (btrfs: always 1,
 * some FUSE filesystems: anything) are never trusted with it. */
static int counts_subdirs(int dir_fd)
{
    struct statfs sf;

    if (fstatfs(dir_fd, &sf) < 0)
        return 0;
    return sf.f_type == 0xEF53 || sf.f_type == 0x01021994 || sf.f_type == 0x58465342;
}

static int open_sibling(const char *const *ptr, const int *order, int k, int n,
                        int *dir_fd, const char **dir, size_t *dir_len, int *leaf)
{
    const char *p = ptr[order[k]];
    const char *slash = strrchr(p, '/');
    size_t len = (size_t)(slash - p);
    char buf[4096];

    if (slash[1] == '\0')   /* "/" */
        return -1;
    if (!*dir || len != *dir_len || memcmp(p, *dir, len) != 0) {
        const char *next;

        if (*dir_fd >= 0)
            close(*dir_fd);
        *dir_fd = -1;
        *dir = p;
        *dir_len = len;
        if (k + 1 >= n || len >= sizeof(buf))
            return -1;
        next = ptr[order[k + 1]];
        if (strncmp(next, p, len + 1) != 0 || strchr(next + len + 1, '/'))
            return -1;   /* no sibling follows: nothing shared */
        memcpy(buf, p, len);
        buf[len ? len : 1] = '\0';
        if (!len)
            buf[0] = '/';
        *dir_fd = open_beneath_no_links(buf);
        /* A directory with no subdirectory holds none: its entries need no
         * stat to tell their type.  (One made since can only get less than
         * it asked for: the rights of a file, never those of a directory.) */
        *leaf = 0;
        if (*dir_fd >= 0) {
            struct stat st;

            *leaf = lw_fstat(*dir_fd, &st) == 0 && S_ISDIR(st.st_mode) &&
                    st.st_nlink == 2 && counts_subdirs(*dir_fd);
        }
    }
    return *dir_fd >= 0 ? open_no_links_at(*dir_fd, slash + 1) : -1;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* a is b or a (normalized, absolute) ancestor of b */
static int is_ancestor(const char *a, const char *b)
{
    size_t n = strlen(a);

    if (n == 1)
        return 1;
    return strncmp(a, b, n) == 0 && (b[n] == '/' || b[n] == '\0');
}

/* p is absolute and lexically normal: no empty, "." or ".." component and
 * no trailing "/" (but "/" itself) */
static int is_normal(const char *p)
{
    if (p[0] != '/')
        return 0;
    if (p[1] == '\0')
        return 1;
    for (; *p; p++) {
        if (*p != '/')
            continue;
        if (p[1] == '/' || p[1] == '\0')
            return 0;
        if (p[1] == '.' && (p[2] == '/' || p[2] == '\0' ||
                            (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
            return 0;
    }
    return 1;
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

/* A 64-bit digest of the file handle of *path* beneath dir_fd (with
 * AT_EMPTY_PATH: of dir_fd itself), or 0 where the filesystem gives none.
 * The handle holds the inode's generation where the filesystem keeps one,
 * so it tells a directory from one created after it was deleted even when
 * the new one got the same inode number (ext4 hands the freed number out
 * again at once).  FNV-1a over the type and the bytes. */
static uint64_t handle_id(int dir_fd, const char *path, int at_flags)
{
    union { struct file_handle h; char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ]; } u;
    uint64_t d = 1469598103934665603ULL;
    int mnt;

    u.h.handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(dir_fd, path, &u.h, &mnt, at_flags) < 0)
        return 0;
    for (size_t i = 0; i < sizeof(u.h.handle_type); i++)
        d = (d ^ ((const unsigned char *)&u.h.handle_type)[i]) * 1099511628211ULL;
    for (unsigned int i = 0; i < u.h.handle_bytes && i < MAX_HANDLE_SZ; i++)
        d = (d ^ u.h.f_handle[i]) * 1099511628211ULL;
    return d ? d : 1;
}

int lw_path_ids(const char *paths, int n, uint64_t *out)
{
    struct stat st;
    const char *p = paths;

    for (int i = 0; i < n; i++, p += strlen(p) + 1, out += 4) {
        if (lw_stat(p, &st) < 0) {
            memset(out, 0, 4 * sizeof(*out));
            continue;
        }
        out[0] = 1;
        out[1] = (uint64_t)st.st_dev;
        out[2] = (uint64_t)st.st_ino;
        out[3] = handle_id(AT_FDCWD, p, AT_SYMLINK_FOLLOW);
    }
    return 0;
}

int lw_open_add_paths(int ruleset_fd, const char *paths, int n,
                      const int *group_end, const uint64_t *group_access,
                      int ngroups, const unsigned char *nobind,
                      uint64_t file_mask, unsigned char *flags, int *err,
                      int *special, int *nspecial, int *dirs, uint64_t *dev,
                      uint64_t *ino, uint64_t *gen, int *ndirs, int *real_off,
                      int *real_len, char *realbuf, int realcap, int *failed)
{
    size_t cnt = (size_t)(n ? n : 1);
    const char **ptr = malloc(sizeof(*ptr) * cnt);
    int *order = malloc(sizeof(*order) * cnt);
    int *stack = malloc(sizeof(*stack) * cnt);
    uint64_t *grant = malloc(sizeof(*grant) * cnt);
    uint64_t *allowed = malloc(sizeof(*allowed) * cnt);
    uint64_t *devs = malloc(sizeof(*devs) * cnt);
    uint64_t *inos = malloc(sizeof(*inos) * cnt);
    uint64_t *gens = malloc(sizeof(*gens) * cnt);
    const char *p = paths;
    int used = 0, depth = 0, ret = 0, sorted = 1, prev = -1, g = 0, dir_fd = -1;
    int leaf = 0, in_leaf;
    const char *dir = NULL;
    size_t dir_len = 0;

    *nspecial = *ndirs = 0;
    if (!ptr || !order || !stack || !grant || !allowed || !devs || !inos || !gens) {
        ret = -1;
        errno = ENOMEM;
        *failed = -1;
        goto out;
    }
    for (int i = 0; i < n; i++, p += strlen(p) + 1) {
        ptr[i] = p;
        if (!is_normal(p)) {   /* before anything is opened: the caller normalizes */
            ret = -1;
            errno = EINVAL;
            *failed = -2;
            goto out;
        }
        while (g < ngroups - 1 && i >= group_end[g])
            g++;
        allowed[i] = group_access[g];
        order[i] = i;
        if (i && sorted && strcmp(ptr[i - 1], p) > 0)
            sorted = 0;
    }
    /* Sorted, every ancestor comes before what is beneath it.  Sorting the
     * pointers keeps the caller's index: ptr[k] - paths is unique.  Lists
     * that come sorted (most generated profiles) are not sorted again. */
    if (!sorted) {
        const char **by = malloc(sizeof(*by) * cnt);
        if (!by) {
            ret = -1;
            errno = ENOMEM;
            *failed = -1;
            goto out;
        }
        memcpy(by, ptr, sizeof(*by) * (size_t)n);
        qsort(by, (size_t)n, sizeof(*by), by_path);
        /* map back to indices: paths are back to back, so a binary search
         * over the original (increasing) pointers finds each one */
        for (int k = 0; k < n; k++) {
            int lo = 0, hi = n - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (ptr[mid] < by[k])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            order[k] = lo;
        }
        free(by);
    }
    for (int k = 0; k < n; k++) {
        int i = order[k], fd;
        struct stat st;
        uint64_t acc, covered, full;
        int bind, kind;

        err[i] = 0;
        flags[i] = 0;
        real_off[i] = -1;
        real_len[i] = 0;
        while (depth && !is_ancestor(ptr[stack[depth - 1]], ptr[i]))
            depth--;
        covered = depth ? grant[depth - 1] : 0;

        if (prev >= 0 && strcmp(ptr[prev], ptr[i]) == 0 &&
            (flags[prev] & (LW_P_ERR | LW_P_LINK) ||
             ((flags[prev] & LW_P_DIR ? allowed[i] : allowed[i] & file_mask) &
              ~(flags[prev] & LW_P_DIR ? allowed[prev] : allowed[prev] & file_mask)) == 0)) {
            /* the same path again, asking for nothing more: the same answer */
            flags[i] = flags[prev];
            err[i] = err[prev];
            real_off[i] = real_off[prev];
            real_len[i] = real_len[prev];
            devs[i] = devs[prev];
            inos[i] = inos[prev];
            gens[i] = gens[prev];
            continue;
        }
        prev = i;
        fd = open_sibling(ptr, order, k, n, &dir_fd, &dir, &dir_len, &leaf);
        in_leaf = fd >= 0 && leaf;
        if (fd < 0)
            fd = open_beneath_no_links(ptr[i]);
        if (fd < 0 && (errno == ELOOP || errno == ENOSYS || errno == EXDEV)) {
            /* a symlink on the way: follow it, and report the real path */
            fd = open(ptr[i], O_PATH | O_CLOEXEC);
            if (fd >= 0) {
                flags[i] = LW_P_LINK;
                real_path(fd, &real_off[i], &real_len[i], realbuf, realcap, &used);
            }
        }
        if (fd < 0) {
            err[i] = errno;
            flags[i] = LW_P_ERR;
            continue;
        }
        full = allowed[i];
        bind = ruleset_fd >= 0 && !(flags[i] & LW_P_LINK) && !(nobind && nobind[i]);
        kind = in_leaf ? 2 : 0;   /* 0: unknown, 1: directory, 2: not a directory */
        if (bind && !kind && (full & ~file_mask) && (full & file_mask & ~covered)) {
            /* A rule is needed whatever the type: adding it with the
             * directory-only rights tells the type without a stat (the
             * kernel refuses them, EINVAL, beneath anything but a
             * directory), and is the rule itself for a directory. */
            if (lw_add_path_rule(ruleset_fd, full, fd) == 0) {
                kind = 1;
                flags[i] |= LW_P_BOUND;
            } else if (errno == EINVAL) {
                kind = 2;
            } else {
                goto refused;
            }
        }
        if (kind != 2) {
            if (lw_fstat(fd, &st) == 0) {
                kind = S_ISDIR(st.st_mode) ? 1 : 2;
                devs[i] = (uint64_t)st.st_dev;
                inos[i] = (uint64_t)st.st_ino;
                /* the very inode the rule binds to, for a reused plan */
                gens[i] = kind == 1 && gen ? handle_id(fd, "", AT_EMPTY_PATH) : 0;
            } else if (kind == 1) {   /* bound already: no identity to check */
                devs[i] = inos[i] = gens[i] = 0;
            } else {
                err[i] = errno;
                flags[i] = LW_P_ERR;
                close(fd);
                continue;
            }
        }
        if (kind == 1)
            flags[i] |= LW_P_DIR;
        acc = kind == 1 ? full : (full & file_mask);
        if (bind && acc && !(flags[i] & LW_P_BOUND)) {
            if ((acc & ~covered) == 0) {
                flags[i] |= LW_P_BOUND | LW_P_COVERED;
            } else if (lw_add_path_rule(ruleset_fd, acc, fd) < 0) {
                int e;
refused:
                e = errno;
                close(fd);
                *failed = i;
                errno = e;
                ret = -1;
                goto out;
            } else {
                flags[i] |= LW_P_BOUND;
            }
        }
        close(fd);
        /* A directory reached without a symlink grants what it was given
         * (here, or by its ancestors) to all that is lexically beneath. */
        if ((flags[i] & (LW_P_DIR | LW_P_BOUND)) == (LW_P_DIR | LW_P_BOUND)) {
            stack[depth] = i;
            grant[depth] = covered | acc;
            depth++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (flags[i] & (LW_P_LINK | LW_P_ERR)) {
            special[(*nspecial)++] = i;
        } else if (flags[i] & LW_P_DIR) {
            dirs[*ndirs] = i;
            dev[*ndirs] = devs[i];
            if (gen)
                gen[*ndirs] = gens[i];
            ino[(*ndirs)++] = inos[i];
        }
    }
out:
    if (dir_fd >= 0)
        close(dir_fd);
    free(ptr);
    free(order);
    free(stack);
    free(grant);
    free(allowed);
    free(devs);
    free(inos);
    free(gens);
    return ret;
}
