/* storage/store_fs.c: the store's file operations, through the test hooks when given (the fault
 * seam described in store.h), else the system calls. Nothing else in storage/ calls open,
 * write, sync, truncate, rename or unlink directly. */
#include "store_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define HOOK(io, name) ((io) && (io)->name)

int fs_open(const struct store_io_hooks *io, const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = HOOK(io, open) ? io->open(io->ctx, path, flags, mode) : open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int fs_close(const struct store_io_hooks *io, int fd)
{
    int rc = HOOK(io, close) ? io->close(io->ctx, fd) : close(fd);
    return rc < 0 && errno != EINTR ? -errno : 0; /* Linux frees the fd even on EINTR */
}

int fs_pwrite_all(const struct store_io_hooks *io, int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = HOOK(io, pwrite) ? io->pwrite(io->ctx, fd, p, len, off) : pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

size_t fs_pread_upto(const struct store_io_hooks *io, int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = HOOK(io, pread) ? io->pread(io->ctx, fd, p + got, len - got, off + (off_t)got)
                                    : pread(fd, p + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

int fs_fdatasync(const struct store_io_hooks *io, int fd)
{
    int rc = HOOK(io, fdatasync) ? io->fdatasync(io->ctx, fd) : fdatasync(fd);
    return rc < 0 ? -errno : 0;
}

int fs_fsync(const struct store_io_hooks *io, int fd)
{
    int rc = HOOK(io, fsync) ? io->fsync(io->ctx, fd) : fsync(fd);
    return rc < 0 ? -errno : 0;
}

int fs_ftruncate(const struct store_io_hooks *io, int fd, off_t length)
{
    int rc;
    do
        rc = HOOK(io, ftruncate) ? io->ftruncate(io->ctx, fd, length) : ftruncate(fd, length);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

int fs_fallocate(const struct store_io_hooks *io, int fd, off_t offset, off_t length)
{
    int rc = HOOK(io, fallocate) ? io->fallocate(io->ctx, fd, offset, length) : posix_fallocate(fd, offset, length);
    if (!HOOK(io, fallocate)) /* posix_fallocate returns the error instead of setting errno */
        return -rc;
    return rc < 0 ? -errno : 0;
}

int fs_rename(const struct store_io_hooks *io, const char *from, const char *to)
{
    int rc = HOOK(io, rename) ? io->rename(io->ctx, from, to) : rename(from, to);
    return rc < 0 ? -errno : 0;
}

int fs_unlink(const struct store_io_hooks *io, const char *path)
{
    int rc = HOOK(io, unlink) ? io->unlink(io->ctx, path) : unlink(path);
    return rc < 0 && errno != ENOENT ? -errno : 0;
}

int fs_fsync_dir(const struct store_io_hooks *io, const char *dir)
{
    int fd = fs_open(io, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int rc = fs_fsync(io, fd);
    fs_close(io, fd);
    return rc;
}

int fs_free_bytes(const struct store_io_hooks *io, const char *dir, uint64_t *out)
{
    if (HOOK(io, free_bytes))
        return io->free_bytes(io->ctx, dir, out) < 0 ? -errno : 0;
    struct statvfs st;
    if (statvfs(dir, &st) < 0)
        return -errno;
    *out = (uint64_t)st.f_bavail * st.f_frsize;
    return 0;
}
