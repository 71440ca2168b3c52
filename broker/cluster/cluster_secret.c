/* broker/cluster/cluster_secret.c: loading the cluster's shared secret (cluster_secret.h). The
 * checks follow RabbitMQ's on the Erlang cookie: a secret anyone else on the host can read is no
 * secret, so such a file is refused rather than used. Every check is made on the open
 * descriptor, so the file cannot be swapped between the check and the read. */
#include "cluster_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads up to cap bytes of fd into out, and tells whether more follow. Bytes read, or -1. */
static ssize_t read_bounded(int fd, uint8_t *out, size_t cap, int *more)
{
    size_t n = 0;
    for (;;) {
        uint8_t extra;
        ssize_t r = n < cap ? read(fd, out + n, cap - n) : read(fd, &extra, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            *more = 0;
            return (ssize_t)n;
        }
        if (n == cap) {
            *more = 1;
            return (ssize_t)n;
        }
        n += (size_t)r;
    }
}

int cluster_secret_load(const char *path, uint8_t *out, size_t cap, size_t *len, char *err, size_t errlen)
{
    *len = 0;
    size_t limit = cap < CLUSTER_SECRET_MAX ? cap : CLUSTER_SECRET_MAX;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "cluster secret file '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cluster secret file '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cluster secret file '%s' is not a regular file", path);
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "cluster secret file '%s' is accessible by group or others (mode %04o): it must be "
                 "readable by its owner only (chmod 600)",
                 path, (unsigned)(st.st_mode & 07777));
    } else if (st.st_size > (off_t)limit) {
        snprintf(err, errlen, "cluster secret file '%s' is longer than %zu bytes", path, limit);
    } else {
        int more = 0;
        ssize_t n = read_bounded(fd, out, limit, &more);
        if (n < 0) {
            snprintf(err, errlen, "cluster secret file '%s': %s", path, strerror(errno));
        } else if (more) {
            snprintf(err, errlen, "cluster secret file '%s' is longer than %zu bytes", path, limit);
        } else if (n == 0) {
            snprintf(err, errlen, "cluster secret file '%s' is empty", path);
        } else {
            size_t k = (size_t)n;
            while (k > 0 && (out[k - 1] == '\n' || out[k - 1] == '\r'))
                k--;
            if (k < CLUSTER_SECRET_MIN) {
                snprintf(err, errlen, "cluster secret in '%s' is %zu bytes: at least %d are needed", path, k,
                         CLUSTER_SECRET_MIN);
            } else {
                *len = k;
                rc = 0;
            }
        }
    }
    close(fd);
    if (rc != 0)
        explicit_bzero(out, limit);
    return rc;
}
