/* tests/unit/storage/faulty_fs.h: a fault-injecting struct store_io_hooks (the store's one fault
 * seam, store.h). It numbers every MUTATING operation the store makes (pwrite, fdatasync, fsync,
 * ftruncate, fallocate, rename, unlink, open with O_CREAT), records their kinds, and at operation
 * number `at` does one of:
 *   FFS_CRASH       kill -9: that operation and every later one does nothing and fails (EIO);
 *                   what was written before stays (the page cache survives). A pwrite at the
 *                   crash point is torn: its first half lands.
 *   FFS_POWER_LOSS  the same, and ffs_power_loss() (called once the store is closed) then takes
 *                   every file back to its size at its last fdatasync/fsync and undoes the
 *                   creations, renames and unlinks made since the last fsync of the directory.
 *   FFS_FAIL        that one operation fails (ENOSPC, EIO, or for a pwrite: half of it written,
 *                   then ENOSPC on the retry) and does nothing else; the store goes on. With
 *                   burst > 1 the next burst - 1 operations fail too (with ENOSPC, or EIO), so
 *                   that the store's clean-up after a failure (cutting a batch back, undoing a
 *                   compaction) fails as well.
 * Syncs are not passed to the kernel: the model above says what a sync means, and skipping them
 * keeps thousands of runs fast. Unlinked and replaced files are moved to a "grave" directory
 * outside the store until the directory is fsynced, so a power loss can bring them back.
 *
 * Determinism: the store compacts on its I/O thread after a batch is durable, concurrently with
 * the caller; how many segments it compacts before the next batch depends on timing. A gate makes
 * it deterministic: compaction (the only read-only open of a segment on the I/O thread) starts
 * only once the caller has handed the next batch over (ffs_flushed), or the store is closing
 * (ffs_release). Then compaction does exactly one segment per batch, and the caller's
 * synchronous calls (store_save_definitions) never interleave with it. */
#ifndef WARREN_TEST_FAULTY_FS_H
#define WARREN_TEST_FAULTY_FS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

enum ffs_mode { FFS_COUNT, FFS_CRASH, FFS_POWER_LOSS, FFS_FAIL };

#define FFS_MAX_OPS 8192
#define FFS_MAX_FDS 1024
#define FFS_PATH 256

struct ffs_file {               /* a file the store has opened: what survives a power loss */
    char path[FFS_PATH];
    off_t synced;               /* its size at its last sync (or when first seen) */
};

enum ffs_dirop_kind { FFS_CREATED, FFS_UNLINKED, FFS_RENAMED };
struct ffs_dirop {              /* a directory change not yet made durable by a directory fsync */
    enum ffs_dirop_kind kind;
    char path[FFS_PATH];        /* created / unlinked / renamed to */
    char from[FFS_PATH];        /* renamed from */
    char grave[FFS_PATH];       /* where the unlinked or replaced file waits ("" : none) */
};

struct ffs {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum ffs_mode mode;
    unsigned long at;           /* the operation number to crash or fail at (0: never) */
    int fail_error;             /* FFS_FAIL: ENOSPC, EIO, or 0 for "half a pwrite, then ENOSPC" */
    unsigned long burst;        /* FFS_FAIL: how many operations from `at` on fail (0 or 1: one) */
    unsigned long ops;          /* mutating operations so far */
    char kinds[FFS_MAX_OPS];    /* W pwrite, D fdatasync, S fsync, T ftruncate, A fallocate,
                                 * R rename, U unlink, C open with O_CREAT */
    const char *expect;         /* the dry run's kinds: a fault run must make the same calls */
    unsigned long expect_len, drift;
    bool crashed, fired, short_pending;
    char fault_kind;            /* kind of the operation that crashed or failed */
    char grave_dir[200];
    unsigned grave_seq;
    struct ffs_file *files;
    size_t nfiles, files_cap;
    struct ffs_dirop *dirops;
    size_t ndirops, dirops_cap;
    char (*fd_path)[FFS_PATH];  /* FFS_MAX_FDS entries: path of each open fd ("" : not ours) */
    bool *fd_dir;
    /* the compaction gate (above) */
    pthread_t main_thread;
    struct store *store;
    uint64_t flushed;           /* the last batch the caller handed over */
    bool released;
    unsigned gate_timeouts;
    /* free_bytes: reported free space (0: ask statvfs) */
    _Atomic uint64_t free_bytes;
    struct store_io_hooks hooks;
};

static inline struct ffs_file *ffs_file(struct ffs *f, const char *path)
{
    for (size_t i = 0; i < f->nfiles; i++)
        if (strcmp(f->files[i].path, path) == 0)
            return &f->files[i];
    return NULL;
}

static inline struct ffs_file *ffs_track(struct ffs *f, const char *path, off_t size)
{
    struct ffs_file *file = ffs_file(f, path);
    if (file)
        return file;
    if (f->nfiles == f->files_cap) {
        f->files_cap = f->files_cap ? f->files_cap * 2 : 32;
        f->files = realloc(f->files, f->files_cap * sizeof(*f->files));
        if (!f->files)
            abort();
    }
    file = &f->files[f->nfiles++];
    snprintf(file->path, sizeof(file->path), "%s", path);
    file->synced = size;
    return file;
}

static inline void ffs_retrack(struct ffs *f, const char *from, const char *to)
{
    struct ffs_file *gone = ffs_file(f, to);
    if (gone)
        gone->path[0] = '\0';
    struct ffs_file *file = ffs_file(f, from);
    if (file)
        snprintf(file->path, sizeof(file->path), "%s", to);
}

static inline void ffs_dirop(struct ffs *f, enum ffs_dirop_kind kind, const char *path, const char *from,
                             const char *grave)
{
    if (f->ndirops == f->dirops_cap) {
        f->dirops_cap = f->dirops_cap ? f->dirops_cap * 2 : 32;
        f->dirops = realloc(f->dirops, f->dirops_cap * sizeof(*f->dirops));
        if (!f->dirops)
            abort();
    }
    struct ffs_dirop *d = &f->dirops[f->ndirops++];
    d->kind = kind;
    snprintf(d->path, sizeof(d->path), "%s", path);
    snprintf(d->from, sizeof(d->from), "%s", from ? from : "");
    snprintf(d->grave, sizeof(d->grave), "%s", grave ? grave : "");
}

static inline void ffs_grave_name(struct ffs *f, char *out)
{
    if (snprintf(out, FFS_PATH, "%s/%u", f->grave_dir, f->grave_seq++) >= FFS_PATH)
        abort();
}

#define FFS_TORN (-1)

/* Numbers one mutating operation of `kind`. Returns 0 (do it), an errno (fail it, doing
 * nothing), or FFS_TORN (a pwrite: write half, then crash). Called with the lock held. */
static inline int ffs_begin(struct ffs *f, char kind)
{
    if (f->crashed)
        return EIO; /* the process is dead: nothing more reaches the files */
    unsigned long n = ++f->ops;
    if (n <= FFS_MAX_OPS)
        f->kinds[n - 1] = kind;
    if (f->expect && n <= f->expect_len && f->expect[n - 1] != kind)
        f->drift++;
    if (f->mode == FFS_FAIL && f->short_pending && kind == 'W') {
        f->short_pending = false;
        return ENOSPC;
    }
    if (f->mode == FFS_FAIL && f->fired && n < f->at + f->burst)
        return f->fail_error ? f->fail_error : ENOSPC;
    if (n != f->at)
        return 0;
    f->fault_kind = kind;
    switch (f->mode) {
    case FFS_CRASH:
        f->crashed = true;
        return kind == 'W' ? FFS_TORN : EIO;
    case FFS_POWER_LOSS:
        f->crashed = true;
        return EIO;
    case FFS_FAIL:
        f->fired = true;
        if (f->fail_error == 0) /* a short write (below), then ENOSPC when the rest is retried */
            return kind == 'W' ? FFS_TORN : ENOSPC;
        return f->fail_error;
    default:
        return 0;
    }
}

static inline int ffs_fail(struct ffs *f, int error)
{
    pthread_mutex_unlock(&f->lock);
    errno = error;
    return -1;
}

/* The compaction gate (top of file). */
static inline void ffs_gate(struct ffs *f)
{
    pthread_mutex_lock(&f->lock);
    while (!f->released && !(f->store && f->flushed > store_durable_batch(f->store))) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        if (pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == ETIMEDOUT) {
            f->gate_timeouts++;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
}

static inline int ffs_open(void *ctx, const char *path, int flags, mode_t mode)
{
    struct ffs *f = ctx;
    bool gated = !(flags & (O_CREAT | O_DIRECTORY)) && (flags & O_ACCMODE) == O_RDONLY &&
                 !pthread_equal(pthread_self(), f->main_thread);
    if (gated)
        ffs_gate(f);
    pthread_mutex_lock(&f->lock);
    bool existed = access(path, F_OK) == 0;
    if (flags & O_CREAT) {
        int rc = ffs_begin(f, 'C');
        if (rc != 0)
            return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    }
    int fd = open(path, flags, mode);
    int saved = errno;
    if (fd >= 0 && fd < FFS_MAX_FDS) {
        snprintf(f->fd_path[fd], FFS_PATH, "%s", path);
        f->fd_dir[fd] = (flags & O_DIRECTORY) != 0;
        if (!f->fd_dir[fd]) {
            struct stat st;
            off_t size = fstat(fd, &st) == 0 ? st.st_size : 0;
            struct ffs_file *file = ffs_track(f, path, existed ? size : 0);
            if (flags & O_TRUNC)
                file->synced = 0;
        }
        if ((flags & O_CREAT) && !existed)
            ffs_dirop(f, FFS_CREATED, path, NULL, NULL);
    }
    pthread_mutex_unlock(&f->lock);
    errno = saved;
    return fd;
}

static inline int ffs_close(void *ctx, int fd)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    if (fd >= 0 && fd < FFS_MAX_FDS)
        f->fd_path[fd][0] = '\0';
    pthread_mutex_unlock(&f->lock);
    return close(fd);
}

static inline ssize_t ffs_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, 'W');
    if (rc == FFS_TORN && len > 1) {
        ssize_t n = pwrite(fd, buf, len / 2, off);
        if (f->mode == FFS_FAIL && n > 0) { /* a short write: the retry of the rest fails */
            f->short_pending = true;
            pthread_mutex_unlock(&f->lock);
            return n;
        }
        return ffs_fail(f, f->mode == FFS_FAIL ? ENOSPC : EIO);
    }
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? (f->mode == FFS_FAIL ? ENOSPC : EIO) : rc);
    ssize_t n = pwrite(fd, buf, len, off);
    pthread_mutex_unlock(&f->lock);
    return n;
}

static inline ssize_t ffs_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    return pread(fd, buf, len, off);
}

/* A sync: a directory's makes its pending changes durable; a file's, its current size. */
static inline int ffs_sync(struct ffs *f, int fd, char kind)
{
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, kind);
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    if (fd >= 0 && fd < FFS_MAX_FDS && f->fd_dir[fd]) {
        for (size_t i = 0; i < f->ndirops; i++)
            if (f->dirops[i].grave[0] != '\0') {
                struct ffs_file *file = ffs_file(f, f->dirops[i].grave);
                if (file)
                    file->path[0] = '\0';
                unlink(f->dirops[i].grave);
            }
        f->ndirops = 0;
    } else if (fd >= 0 && fd < FFS_MAX_FDS && f->fd_path[fd][0] != '\0') {
        struct stat st;
        struct ffs_file *file = ffs_file(f, f->fd_path[fd]);
        if (file && fstat(fd, &st) == 0)
            file->synced = st.st_size;
    }
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static inline int ffs_fdatasync(void *ctx, int fd) { return ffs_sync(ctx, fd, 'D'); }
static inline int ffs_fsync(void *ctx, int fd) { return ffs_sync(ctx, fd, 'S'); }

static inline int ffs_ftruncate(void *ctx, int fd, off_t length)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, 'T');
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    rc = ftruncate(fd, length);
    int saved = errno;
    if (rc == 0 && fd >= 0 && fd < FFS_MAX_FDS) { /* a power loss may keep the cut: one legal outcome */
        struct ffs_file *file = ffs_file(f, f->fd_path[fd]);
        if (file && file->synced > length)
            file->synced = length;
    }
    pthread_mutex_unlock(&f->lock);
    errno = saved;
    return rc;
}

static inline int ffs_fallocate(void *ctx, int fd, off_t offset, off_t length)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, 'A');
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    rc = posix_fallocate(fd, offset, length);
    pthread_mutex_unlock(&f->lock);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

static inline int ffs_rename(void *ctx, const char *from, const char *to)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, 'R');
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    char grave[FFS_PATH] = "";
    if (access(to, F_OK) == 0) { /* keep the file being replaced until the directory is synced */
        ffs_grave_name(f, grave);
        if (link(to, grave) < 0)
            abort();
    }
    if (rename(from, to) < 0) {
        int saved = errno;
        if (grave[0])
            unlink(grave);
        return ffs_fail(f, saved);
    }
    if (grave[0]) {
        struct ffs_file *old = ffs_file(f, to);
        if (old)
            snprintf(old->path, sizeof(old->path), "%s", grave);
    }
    ffs_retrack(f, from, to);
    ffs_dirop(f, FFS_RENAMED, to, from, grave);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static inline int ffs_unlink(void *ctx, const char *path)
{
    struct ffs *f = ctx;
    pthread_mutex_lock(&f->lock);
    int rc = ffs_begin(f, 'U');
    if (rc != 0)
        return ffs_fail(f, rc == FFS_TORN ? EIO : rc);
    char grave[FFS_PATH];
    ffs_grave_name(f, grave);
    if (rename(path, grave) < 0)
        return ffs_fail(f, errno);
    ffs_retrack(f, path, grave);
    ffs_dirop(f, FFS_UNLINKED, path, NULL, grave);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static inline int ffs_free_bytes(void *ctx, const char *dir, uint64_t *out)
{
    struct ffs *f = ctx;
    uint64_t fake = f->free_bytes;
    if (fake) {
        *out = fake;
        return 0;
    }
    struct statvfs st;
    if (statvfs(dir, &st) < 0)
        return -1;
    *out = (uint64_t)st.f_bavail * st.f_frsize;
    return 0;
}

/* Sets f up in `mode`, faulting at operation `at` (0: never). grave_dir must exist, on the
 * store's file system, outside the store directory. */
static inline void ffs_init(struct ffs *f, enum ffs_mode mode, unsigned long at, int fail_error, const char *grave_dir)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->mode = mode;
    f->at = at;
    f->fail_error = fail_error;
    f->main_thread = pthread_self();
    if (snprintf(f->grave_dir, sizeof(f->grave_dir), "%s", grave_dir) >= (int)sizeof(f->grave_dir))
        abort();
    f->fd_path = calloc(FFS_MAX_FDS, sizeof(*f->fd_path));
    f->fd_dir = calloc(FFS_MAX_FDS, sizeof(*f->fd_dir));
    if (!f->fd_path || !f->fd_dir)
        abort();
    f->hooks = (struct store_io_hooks){.open = ffs_open, .close = ffs_close, .pwrite = ffs_pwrite,
                                       .pread = ffs_pread, .fdatasync = ffs_fdatasync, .fsync = ffs_fsync,
                                       .ftruncate = ffs_ftruncate, .fallocate = ffs_fallocate,
                                       .rename = ffs_rename, .unlink = ffs_unlink,
                                       .free_bytes = ffs_free_bytes, .ctx = f};
}

static inline void ffs_destroy(struct ffs *f)
{
    free(f->files);
    free(f->dirops);
    free(f->fd_path);
    free(f->fd_dir);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
}

/* The store `store` was opened on f (NULL: closed); the gate watches its durable batch. */
static inline void ffs_attach(struct ffs *f, struct store *store)
{
    pthread_mutex_lock(&f->lock);
    f->store = store;
    f->released = false;
    f->flushed = 0;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* The caller has just handed batch `batch` over (store_flush): compaction may run. */
static inline void ffs_flushed(struct ffs *f, uint64_t batch)
{
    pthread_mutex_lock(&f->lock);
    f->flushed = batch;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* No more batches come (the store is closing): the gate stays open. */
static inline void ffs_release(struct ffs *f)
{
    pthread_mutex_lock(&f->lock);
    f->released = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* A power loss at the crash point, applied once the store is closed: directory changes since the
 * last directory fsync are undone (latest first), then every file is cut back to its size at its
 * last sync. (A cut not yet synced is kept: one of the outcomes a real disk allows.) */
static inline void ffs_power_loss(struct ffs *f)
{
    for (size_t i = f->ndirops; i-- > 0;) {
        struct ffs_dirop *d = &f->dirops[i];
        switch (d->kind) {
        case FFS_CREATED:
            unlink(d->path);
            ffs_retrack(f, d->path, "");
            break;
        case FFS_UNLINKED:
            if (rename(d->grave, d->path) == 0)
                ffs_retrack(f, d->grave, d->path);
            break;
        case FFS_RENAMED:
            if (rename(d->path, d->from) == 0)
                ffs_retrack(f, d->path, d->from);
            if (d->grave[0] && rename(d->grave, d->path) == 0)
                ffs_retrack(f, d->grave, d->path);
            break;
        }
    }
    f->ndirops = 0;
    for (size_t i = 0; i < f->nfiles; i++) {
        struct stat st;
        if (f->files[i].path[0] && stat(f->files[i].path, &st) == 0 && st.st_size > f->files[i].synced)
            if (truncate(f->files[i].path, f->files[i].synced) < 0)
                abort();
    }
}

#endif
