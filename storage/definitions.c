/* storage/definitions.c: the definitions blob (durable exchanges, queues, bindings as opaque
 * bytes serialised by the caller), replaced atomically.
 *
 * File "definitions" in the store directory:
 *     0  magic      8   "WRNDEF\r\n"
 *     8  version    4   1
 *    12  reserved   4   0
 *    16  length     8   bytes of data
 *    24  crc32c     4   CRC32C of bytes 0..24 followed by the data
 *    28  reserved   4   0
 *    32  data       length
 * Saving writes "definitions.tmp", fsyncs it, renames it over "definitions" and fsyncs the
 * directory, so a crash leaves either the old or the new blob, never a mix. A leftover
 * definitions.tmp is ignored (and overwritten by the next save). Loading checks magic, version,
 * length (equal to the file size minus the header) and CRC; any mismatch is -EBADMSG. The data
 * is at most DEF_MAX_LENGTH bytes (-EFBIG both ways), so a huge file is refused before it is
 * read. A blob that passes is only known to be what some writer wrote: its reader validates
 * the contents (broker/model/vhost_definitions.c). A blob refused by either is renamed to
 * "definitions.damaged" (store_set_aside_definitions), so that the next save, which writes the
 * definitions the broker started with, does not destroy it before anyone could look. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "segment_log.h"
#include "store_fs.h"
#include "store_private.h"

#define DEF_HEADER_SIZE 32
#define DEF_MAX_LENGTH (1u << 30) /* 1 GiB: far above any real set of definitions */
static const uint8_t def_magic[8] = {'W', 'R', 'N', 'D', 'E', 'F', '\r', '\n'};

int store_save_definitions(struct store *store, const uint8_t *data, size_t len)
{
    char path[SEG_PATH_MAX], tmp[SEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s/definitions", store_dir(store));
    snprintf(tmp, sizeof(tmp), "%s/definitions.tmp", store_dir(store));
    if (len > DEF_MAX_LENGTH) {
        storage_logf(store_logger(store), STORE_LOG_ERROR, "not saving %s: %zu bytes, over the %u-byte limit",
                     path, len, DEF_MAX_LENGTH);
        return -EFBIG;
    }
    uint8_t header[DEF_HEADER_SIZE] = {0};
    memcpy(header, def_magic, 8);
    le_put32(header + 8, 1);
    le_put64(header + 16, len);
    le_put32(header + 24, crc32c_extend(crc32c(header, 24), data, len));
    const struct store_io_hooks *io = store_io(store);
    int fd = fs_open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fd;
    int rc = fs_pwrite_all(io, fd, header, sizeof(header), 0);
    if (rc == 0 && len > 0)
        rc = fs_pwrite_all(io, fd, data, len, sizeof(header));
    if (rc == 0)
        rc = fs_fsync(io, fd);
    int closed = fs_close(io, fd);
    if (rc == 0)
        rc = closed;
    if (rc == 0)
        rc = fs_rename(io, tmp, path);
    if (rc == 0)
        rc = fs_fsync_dir(io, store_dir(store));
    if (rc < 0)
        fs_unlink(io, tmp); /* the caller reports the failure (and retries) */
    return rc;
}

int store_load_definitions(struct store *store, uint8_t **data, size_t *len)
{
    char path[SEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s/definitions", store_dir(store));
    *data = NULL;
    *len = 0;
    const struct store_io_hooks *io = store_io(store);
    int fd = fs_open(io, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    struct stat st;
    uint8_t *buf = NULL;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    size_t size = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && size < DEF_HEADER_SIZE)
        rc = -EBADMSG;
    if (rc == 0 && size - DEF_HEADER_SIZE > DEF_MAX_LENGTH) {
        storage_logf(store_logger(store), STORE_LOG_ERROR, "%s: %zu bytes, over the %u-byte limit", path, size,
                     DEF_MAX_LENGTH);
        rc = -EFBIG;
    }
    if (rc == 0 && !(buf = malloc(size)))
        rc = -ENOMEM;
    if (rc == 0 && fs_pread_upto(io, fd, buf, size, 0) != size)
        rc = -EBADMSG; /* shrank while reading, or unreadable */
    fs_close(io, fd);
    if (rc == 0 && (memcmp(buf, def_magic, 8) != 0 || le_get32(buf + 8) != 1 ||
                    le_get64(buf + 16) != size - DEF_HEADER_SIZE ||
                    le_get32(buf + 24) != crc32c_extend(crc32c(buf, 24), buf + DEF_HEADER_SIZE,
                                                          size - DEF_HEADER_SIZE)))
        rc = -EBADMSG;
    if (rc < 0) {
        free(buf);
        if (rc == -EBADMSG)
            storage_logf(store_logger(store), STORE_LOG_ERROR, "%s: bad header or checksum", path);
        return rc;
    }
    size_t n = size - DEF_HEADER_SIZE;
    memmove(buf, buf + DEF_HEADER_SIZE, n);
    *data = buf;
    *len = n;
    return 0;
}

int store_set_aside_definitions(struct store *store)
{
    char path[SEG_PATH_MAX], aside[SEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s/definitions", store_dir(store));
    snprintf(aside, sizeof(aside), "%s/definitions.damaged", store_dir(store));
    const struct store_io_hooks *io = store_io(store);
    int rc = fs_rename(io, path, aside);
    if (rc == 0)
        rc = fs_fsync_dir(io, store_dir(store));
    if (rc == 0)
        storage_logf(store_logger(store), STORE_LOG_WARNING, "%s kept as %s", path, aside);
    else
        storage_logf(store_logger(store), STORE_LOG_ERROR, "cannot rename %s to %s: %s", path, aside, strerror(-rc));
    return rc;
}
