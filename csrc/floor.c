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
#include <stdint.h>
#include <string.h>
#include <unistd.h>

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
