/* storage/store_io.c: the store's I/O thread: writes each handed-over batch at the end of the
 * active segment, fdatasyncs it (one sync per batch, however many records), applies it to the
 * index, retires segments, checks free disk space, signals the event fd, then compacts sparse
 * segments (store_compact.c). A failed batch is cut off the segment again and reported.
 * Format: segment_log.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

/* Space reserve. A full disk must not freeze the store: consuming messages frees space only
 * once their acks are written, and an ack needs space too. So the store keeps a file `reserve`
 * of reserve_bytes (allocated, not sparse) beside the segments. When a batch fails with
 * ENOSPC the reserve is deleted and the batch tried once more; the store is then "short of
 * space" and raises the disk alarm, which blocks publishers while acks, deliveries and queue
 * deletions go on writing into what the reserve gave back, so segments retire and free space.
 * The reserve is taken back, and the store writes everything again, once the free space is
 * twice the reserve; the alarm clears when the space left is above the disk_free_limit too. */
#define RESERVE_NAME "reserve"

int store_take_reserve(struct store *store)
{
    char path[SEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s/" RESERVE_NAME, store->dir);
    int fd = fs_open(store->io, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return fd;
    int rc = fs_fallocate(store->io, fd, 0, (off_t)store->reserve_bytes);
    if (rc == 0)
        rc = fs_fsync(store->io, fd);
    fs_close(store->io, fd);
    if (rc < 0) {
        fs_unlink(store->io, path);
        return rc;
    }
    store->reserve_held = true;
    return 0;
}

/* A write failed with ENOSPC: gives the reserve back to the file system. True when there was
 * one to give (the caller may then try again). */
static bool release_reserve(struct store *store)
{
    atomic_store(&store->space_short, true);
    atomic_store(&store->disk_alarm, true);
    if (!store->reserve_held)
        return false;
    char path[SEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s/" RESERVE_NAME, store->dir);
    int rc = fs_unlink(store->io, path);
    if (rc < 0) {
        storage_logf(&store->logger, STORE_LOG_ERROR, "disk full, and the space reserve %s cannot be deleted: %s",
                     path, strerror(-rc));
        return false;
    }
    store->reserve_held = false;
    storage_logf(&store->logger, STORE_LOG_WARNING, "disk full: released the %llu-byte space reserve so that acks "
                 "can still be written; publishers stay blocked until space is freed",
                 (unsigned long long)store->reserve_bytes);
    return true;
}

void store_check_disk(struct store *store)
{
    uint64_t free_bytes;
    if (fs_free_bytes(store->io, store->dir, &free_bytes) < 0)
        return;
    if (atomic_load(&store->space_short) && free_bytes >= 2 * store->reserve_bytes &&
        (store->reserve_held || store_take_reserve(store) == 0)) {
        atomic_store(&store->space_short, false);
        storage_logf(&store->logger, STORE_LOG_INFO, "disk space is back: the space reserve is in place again");
        free_bytes -= store->reserve_bytes;
    }
    atomic_store(&store->disk_alarm, free_bytes < store->disk_free_limit || atomic_load(&store->space_short));
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
            } else { /* one left behind by a failure here is removed at the next start */
                summary_path(path, sizeof(path), store->dir, ids[i]);
                fs_unlink(store->io, path);
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

/* Writes the summary of the segment just sealed (segment_summary.h). Not while short of space:
 * what the reserve gave back is for acks. A summary that cannot be written costs only time at
 * the next start; the failure is logged once until one is written again. */
static void write_summary(struct store *store)
{
    if (atomic_load(&store->space_short))
        summary_cut(&store->summary, 0, false);
    uint64_t id = store->summary.segment_id;
    int rc = summary_write(store->io, store->dir, &store->summary);
    if (rc < 0 && !store->summary_failing)
        storage_logf(&store->logger, STORE_LOG_WARNING, "cannot write the summary of segment %llu: %s; the next "
                     "start reads that segment in full", (unsigned long long)id, strerror(-rc));
    store->summary_failing = rc < 0;
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
    write_summary(store); /* the old segment is sealed: the new one exists (seg_create fsynced the directory) */
    summary_start(&store->summary, id, store->idx.max_msg_id, SEG_HEADER_SIZE, true, store->segment_bytes);
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
        summary_add(&store->summary, buf, len, *base);
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
    summary_cut(&store->summary, store->active_size, rc == 0);
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

/* Short of space, only records that let space be freed are written: ACK, DELIVER, PURGE and
 * QUEUE_DELETED (consumers go on, queues drain, segments retire). MESSAGE and ENQUEUE records
 * are squeezed out of buf in place, and the batch then counts as failed so that its publishes
 * are nacked. Returns true when something was dropped. */
static bool keep_only_removals(uint8_t *buf, size_t *len)
{
    size_t in = 0, out = 0, n;
    struct rec r;
    while (in < *len && (n = rec_parse(buf + in, *len - in, false, &r)) > 0) {
        if (r.type != REC_MESSAGE && r.type != REC_ENQUEUE) {
            memmove(buf + out, buf + in, n);
            out += n;
        }
        in += n;
    }
    bool dropped = out != *len;
    *len = out;
    return dropped;
}

/* Writes and syncs one batch; on failure cuts the segment back to where the batch began.
 * Returns 0, or -errno when the batch (or, short of space, part of it) was not written. */
static int write_batch(struct store *store, uint8_t *buf, size_t len)
{
    int rc = 0;
    uint64_t base = 0;
    if (atomic_load(&store->space_short))
        store_check_disk(store); /* space may have come back since the last batch */
    bool dropped = atomic_load(&store->space_short) && keep_only_removals(buf, &len);
    if (len == 0)
        return dropped ? -ENOSPC : 0;
    if (store->roll_next || (store->active_size >= store->segment_bytes && store->active_size > SEG_HEADER_SIZE))
        rc = store_roll_segment(store);
    if (rc == 0)
        rc = store_append_synced(store, buf, len, &base);
    bool cut = false; /* the segment is back to where this batch began */
    if (rc == -ENOSPC) { /* free the reserve, and try once more with what frees space */
        store_cut_back(store);
        cut = true;
        bool released = release_reserve(store);
        dropped = keep_only_removals(buf, &len) || dropped;
        if (len == 0)
            return -ENOSPC;
        if ((released || dropped) && !store->roll_next) { /* not over a tail that could not be cut */
            rc = store_append_synced(store, buf, len, &base);
            cut = false;
        }
    }
    if (rc == 0) {
        if (store->last_error && !dropped) {
            storage_logf(&store->logger, STORE_LOG_INFO, "writing segment %llu works again (%llu more failed "
                         "batches after the one logged)", (unsigned long long)store->active_id,
                         (unsigned long long)store->errors_unlogged);
            store->last_error = 0;
            store->errors_unlogged = 0;
        }
        pthread_mutex_lock(&store->idx_lock);
        apply_batch(store, buf, len, base);
        pthread_mutex_unlock(&store->idx_lock);
        store_retire_segments(store);
        return dropped ? -ENOSPC : 0;
    }
    /* (Every ENOSPC, from the roll or a write, went through the block above: the reserve is
     * released already.) */
    if (-rc != store->last_error) /* a full disk fails batch after batch: say it once */
        storage_logf(&store->logger, STORE_LOG_ERROR, "writing segment %llu failed: %s",
                     (unsigned long long)store->active_id, strerror(-rc));
    else
        store->errors_unlogged++;
    store->last_error = -rc;
    if (!cut)
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

