/* storage/store_io.c: the store's I/O thread: writes each handed-over batch at the end of the
 * active segment, fdatasyncs it (one sync per batch, however many records), applies it to the
 * index, retires segments, checks free disk space, signals the event fd, then compacts sparse
 * segments (store_compact.c). A failed batch is cut off the segment again and reported.
 * Format: segment_log.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_fs.h"
#include "store_private.h"

void store_publish_stats(struct store *store)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < store->idx.nsegs; i++)
        bytes += store->idx.segs[i]->size;
    atomic_store(&store->segments, store->idx.nsegs);
    atomic_store(&store->bytes_on_disk, bytes);
    atomic_store(&store->live_messages, store->idx.live_messages);
}

void store_check_disk(struct store *store)
{
    uint64_t free_bytes;
    if (fs_free_bytes(store->io, store->dir, &free_bytes) == 0)
        atomic_store(&store->disk_alarm, free_bytes < store->disk_free_limit);
}

/* Deletes every deletable segment. Each round's unlinks are made durable (directory fsync)
 * before the index forgets them, so a segment that depended on them can go only afterwards. */
void store_retire_segments(struct store *store)
{
    uint64_t ids[64];
    size_t n;
    for (;;) {
        pthread_mutex_lock(&store->idx_lock);
        n = store->retire_disabled ? 0 : index_deletable(&store->idx, store->active_id, ids, 64);
        pthread_mutex_unlock(&store->idx_lock);
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++) {
            char path[SEG_PATH_MAX];
            seg_path(path, sizeof(path), store->dir, ids[i]);
            int rc = fs_unlink(store->io, path);
            if (rc < 0) {
                storage_logf(&store->logger, STORE_LOG_ERROR, "cannot delete %s: %s; retirement stops",
                             path, strerror(-rc));
                store->retire_disabled = true;
            }
        }
        int rc = fs_fsync_dir(store->io, store->dir);
        if (rc < 0) {
            storage_logf(&store->logger, STORE_LOG_ERROR, "fsync of %s failed: %s; retirement stops",
                         store->dir, strerror(-rc));
            store->retire_disabled = true;
        }
        if (store->retire_disabled)
            return;
        pthread_mutex_lock(&store->idx_lock);
        for (size_t i = 0; i < n; i++)
            index_drop_segment(&store->idx, ids[i]);
        pthread_mutex_unlock(&store->idx_lock);
    }
}

int store_roll_segment(struct store *store)
{
    uint64_t id = store->active_id + 1;
    int fd = seg_create(store->io, store->dir, id, store->idx.max_msg_id);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&store->idx_lock);
    bool added = index_add_segment(&store->idx, id, SEG_HEADER_SIZE) != NULL;
    pthread_mutex_unlock(&store->idx_lock);
    if (!added) {
        char path[SEG_PATH_MAX];
        seg_path(path, sizeof(path), store->dir, id);
        fs_close(store->io, fd);
        fs_unlink(store->io, path); /* so the next attempt can create it again */
        return -ENOMEM;
    }
    atomic_fetch_add(&store->syncs, 1);
    if (store->active_fd >= 0)
        fs_close(store->io, store->active_fd);
    store->active_fd = fd;
    store->active_id = id;
    store->active_size = SEG_HEADER_SIZE;
    store->roll_next = false;
    store->compact_paused = false;
    return 0;
}

/* Applies a written batch to the index: the same replay as recovery, so both agree. */
static void apply_batch(struct store *store, const uint8_t *buf, size_t len, uint64_t base)
{
    struct segment *seg = index_segment(&store->idx, store->active_id);
    struct rec r;
    size_t off = 0, n;
    while (off < len && (n = rec_parse(buf + off, len - off, false, &r)) > 0) {
        if (seg && index_apply(&store->idx, seg, &r, base + off) < 0 && !store->retire_disabled) {
            storage_logf(&store->logger, STORE_LOG_ERROR, "out of memory indexing the log; retirement stops");
            store->retire_disabled = true; /* the index may now under-count live messages */
        }
        off += n;
    }
    if (seg)
        seg->size = base + len;
}

int store_append_synced(struct store *store, uint8_t *buf, size_t len, uint64_t *base)
{
    rec_seal_all(buf, len);
    int rc = fs_pwrite_all(store->io, store->active_fd, buf, len, (off_t)store->active_size);
    if (rc == 0) {
        atomic_fetch_add(&store->syncs, 1);
        rc = fs_fdatasync(store->io, store->active_fd);
    }
    if (rc == 0) {
        *base = store->active_size;
        store->active_size += len;
    }
    return rc;
}

void store_cut_back(struct store *store)
{
    if (store->active_fd < 0)
        return;
    int rc = fs_ftruncate(store->io, store->active_fd, (off_t)store->active_size);
    if (rc == 0)
        rc = fs_fdatasync(store->io, store->active_fd);
    if (rc < 0) {
        /* The failed batch's records may stay in the log, and a recovery would apply them: the
         * index (which never applied them) no longer pictures what a recovery rebuilds, and the
         * retirement rule (index.h) needs it to. E.g. a failed MESSAGE whose ack in a later batch
         * was ineffective here would come back once the ack's segment were deleted, and copies
         * of a failed compaction would come to life once their source went. So nothing is
         * deleted (nor compacted) until a restart rebuilds the index from the files. */
        storage_logf(&store->logger, STORE_LOG_ERROR, "cannot cut segment %llu back: %s; rolling, and no "
                     "segment is deleted until a restart", (unsigned long long)store->active_id, strerror(-rc));
        store->roll_next = true;
        store->retire_disabled = true;
    }
}

/* Writes and syncs one batch; on failure cuts the segment back to where the batch began. */
static int write_batch(struct store *store, uint8_t *buf, size_t len)
{
    int rc = 0;
    uint64_t base = 0;
    if (store->roll_next || (store->active_size >= store->segment_bytes && store->active_size > SEG_HEADER_SIZE))
        rc = store_roll_segment(store);
    if (rc == 0)
        rc = store_append_synced(store, buf, len, &base);
    if (rc == 0) {
        pthread_mutex_lock(&store->idx_lock);
        apply_batch(store, buf, len, base);
        pthread_mutex_unlock(&store->idx_lock);
        store_retire_segments(store);
        return 0;
    }
    storage_logf(&store->logger, STORE_LOG_ERROR, "writing segment %llu failed: %s",
                 (unsigned long long)store->active_id, strerror(-rc));
    store_cut_back(store);
    return rc;
}

static void record_failure(struct store *store, uint64_t batch, int error)
{
    struct failure *last = store->nfailures ? &store->failures[store->nfailures - 1] : NULL;
    if (last && last->last + 1 == batch && last->error == error) {
        last->last = batch;
        return;
    }
    if (store->nfailures == store->failures_cap) {
        size_t cap = store->failures_cap ? store->failures_cap * 2 : 8;
        struct failure *grown = realloc(store->failures, cap * sizeof(*grown));
        if (!grown) { /* widen the last range rather than lose the failure */
            if (last)
                last->last = batch;
            return;
        }
        store->failures = grown;
        store->failures_cap = cap;
    }
    store->failures[store->nfailures++] = (struct failure){batch, batch, error};
}

void *store_io_thread(void *arg)
{
    struct store *store = arg;
    pthread_mutex_lock(&store->lock);
    for (;;) {
        if (store->busy) {
            uint64_t batch = store->inflight_batch;
            pthread_mutex_unlock(&store->lock);
            int rc = write_batch(store, store->inflight.data, store->inflight.len);
            store_publish_stats(store);
            store_check_disk(store);
            pthread_mutex_lock(&store->lock);
            if (rc < 0)
                record_failure(store, batch, -rc);
            store->inflight.len = 0;
            if (store->inflight.cap > BUFFER_KEEP_BYTES) {
                free(store->inflight.data);
                store->inflight = (struct rec_buf){0};
            }
            store->busy = false;
            atomic_store(&store->durable, batch);
            pthread_cond_broadcast(&store->idle);
            uint64_t one = 1;
            if (write(store->event_fd, &one, sizeof(one)) < 0) {
                /* the counter cannot overflow in practice; nothing else to do */
            }
            pthread_mutex_unlock(&store->lock); /* confirms are out: a good time to compact */
            store_compact(store);
            store_publish_stats(store);
            pthread_mutex_lock(&store->lock);
            continue;
        }
        if (store->stop)
            break;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 1;
        if (pthread_cond_timedwait(&store->wake, &store->lock, &deadline) == ETIMEDOUT && !store->busy) {
            pthread_mutex_unlock(&store->lock);
            store_check_disk(store); /* keeps the alarm current while no batch comes */
            pthread_mutex_lock(&store->lock);
        }
    }
    pthread_mutex_unlock(&store->lock);
    return NULL;
}

