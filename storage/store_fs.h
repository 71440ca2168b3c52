/* storage/store_fs.h: the store's file operations, each through the optional test hooks
 * (struct store_io_hooks in store.h) or the system call. All return 0 (or a count, or an fd)
 * on success and -errno on failure; EINTR is retried. io may be NULL. */
#ifndef WARREN_STORE_FS_H
#define WARREN_STORE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* open(2): an fd or -errno. */
int fs_open(const struct store_io_hooks *io, const char *path, int flags, mode_t mode);
/* close(2); errors are reported but the fd is gone either way. */
int fs_close(const struct store_io_hooks *io, int fd);
/* Writes all len bytes at off (retrying short writes). 0 or -errno. */
int fs_pwrite_all(const struct store_io_hooks *io, int fd, const void *buf, size_t len, off_t off);
/* Reads up to len bytes at off (retrying short reads); returns how many were read before the end
 * of the file or an error. */
size_t fs_pread_upto(const struct store_io_hooks *io, int fd, void *buf, size_t len, off_t off);
int fs_fdatasync(const struct store_io_hooks *io, int fd);
int fs_fsync(const struct store_io_hooks *io, int fd);
int fs_ftruncate(const struct store_io_hooks *io, int fd, off_t length);
/* Allocates [offset, offset + length) so that writes there cannot fail for want of space. */
int fs_fallocate(const struct store_io_hooks *io, int fd, off_t offset, off_t length);
int fs_rename(const struct store_io_hooks *io, const char *from, const char *to);
/* unlink(2); a file already gone (ENOENT) is success. */
int fs_unlink(const struct store_io_hooks *io, const char *path);
/* fsyncs a directory so that creations, renames and unlinks in it are durable. */
int fs_fsync_dir(const struct store_io_hooks *io, const char *dir);
/* Bytes available to unprivileged writers under dir (statvfs). 0 or -errno. */
int fs_free_bytes(const struct store_io_hooks *io, const char *dir, uint64_t *out);

#endif
