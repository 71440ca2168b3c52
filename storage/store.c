/* storage/store.c: the store's public face (store.h), the caller's side: open (recovery, then
 * the I/O thread starts) and close, records appended to the pending batch, the hand-over of a
 * batch to the I/O thread (store_io.c), completions, failures and statistics.
 * Format: segment_log.c. Replay: recovery.c. Retirement rule: index.h. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "recovery.h"
#include "store_fs.h"
#include "store_private.h"

#define DEFAULT_SEGMENT_BYTES (64ull << 20)
#define DEFAULT_DISK_FREE_LIMIT (50ull * 1000 * 1000)
/* The space reserve (store_io.c): segment_bytes / 16, within these bounds; room for a good
 * hundred thousand acks at the default size. */
#define RESERVE_MIN_BYTES (64ull << 10)
#define RESERVE_MAX_BYTES (4ull << 20)

void storage_logf(const struct storage_logger *logger, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (logger && logger->log)
        logger->log(logger->ctx, level, msg);
    else
        fprintf(stderr, "warren-storage: %s\n", msg);
}

const char *store_dir(const struct store *store) { return store->dir; }
const struct store_io_hooks *store_io(const struct store *store) { return store->io; }
const struct storage_logger *store_logger(const struct store *store) { return &store->logger; }

static int make_dirs(const char *dir)
{
    char path[SEG_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (c == '\0')
            return 0;
    }
}

static int open_active(struct store *store, const struct recovery_result *found)
{
    if (found->active_id == 0) {
        store->active_id = 0;
        return store_roll_segment(store); /* a new store: segment 1 */
    }
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), store->dir, found->active_id);
    store->active_fd = fs_open(store->io, path, O_WRONLY | O_CLOEXEC, 0);
    if (store->active_fd < 0) {
        int rc = store->active_fd;
        store->active_fd = -1;
        return rc;
    }
    store->active_id = found->active_id;
    store->active_size = found->active_size;
    /* its earlier records were never seen by the builder: this segment gets no summary */
    summary_start(&store->summary, store->active_id, 0, store->active_size, false, store->segment_bytes);
    return 0;
}

int store_open(const struct store_options *opts, const struct store_recovery *rec, struct store **out)
{
    if (!opts || !opts->dir || !out)
        return -EINVAL;
    int rc = make_dirs(opts->dir);
    if (rc < 0)
        return rc;
    struct store *store = calloc(1, sizeof(*store));
    if (!store || !(store->dir = strdup(opts->dir))) {
        free(store);
        return -ENOMEM;
    }
    store->segment_bytes = opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
    store->disk_free_limit = opts->disk_free_limit ? opts->disk_free_limit : DEFAULT_DISK_FREE_LIMIT;
    store->logger = (struct storage_logger){opts->log, opts->log_ctx};
    if (opts->io) {
        store->io_hooks = *opts->io;
        store->io = &store->io_hooks;
    }
    store->pending_batch = 1;
    store->active_fd = -1;
    store->event_fd = -1;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&store->lock, NULL);
    pthread_mutex_init(&store->idx_lock, NULL);
    pthread_cond_init(&store->wake, &attr);
    pthread_cond_init(&store->idle, NULL);
    pthread_condattr_destroy(&attr);
    store->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (store->event_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = index_init(&store->idx)) < 0)
        goto fail;
    struct recovery_result found;
    if ((rc = recovery_run(store->io, store->dir, &store->idx, rec, &store->logger, &found)) < 0)
        goto fail;
    store->max_msg_id = found.max_msg_id;
    store->idx.max_msg_id = found.max_msg_id;
    store->records_recovered = found.records;
    store->segments_summarized = found.summarized;
    store->corrupt_records = found.corrupt;
    if ((rc = open_active(store, &found)) < 0)
        goto fail;
    store_retire_segments(store);
    store_publish_stats(store);
    store->reserve_bytes = store->segment_bytes / 16;
    if (store->reserve_bytes < RESERVE_MIN_BYTES)
        store->reserve_bytes = RESERVE_MIN_BYTES;
    if (store->reserve_bytes > RESERVE_MAX_BYTES)
        store->reserve_bytes = RESERVE_MAX_BYTES;
    if ((rc = store_take_reserve(store)) < 0) {
        storage_logf(&store->logger, STORE_LOG_WARNING, "cannot set aside the %llu-byte space reserve: %s; "
                     "publishers are blocked until there is room", (unsigned long long)store->reserve_bytes,
                     strerror(-rc));
        atomic_store(&store->space_short, true);
        rc = 0;
    }
    store_check_disk(store);
    if ((rc = -pthread_create(&store->thread, NULL, store_io_thread, store)) < 0)
        goto fail;
    store->thread_started = true;
    *out = store;
    return 0;
fail:
    store_close(store);
    return rc;
}

void store_close(struct store *store)
{
    if (!store)
        return;
    if (store->thread_started) {
        pthread_mutex_lock(&store->lock);
        while (store->busy)
            pthread_cond_wait(&store->idle, &store->lock);
        pthread_mutex_unlock(&store->lock);
        store_flush(store);
        pthread_mutex_lock(&store->lock);
        while (store->busy)
            pthread_cond_wait(&store->idle, &store->lock);
        store->stop = true;
        pthread_cond_signal(&store->wake);
        pthread_mutex_unlock(&store->lock);
        pthread_join(store->thread, NULL);
    }
    if (store->active_fd >= 0)
        fs_close(store->io, store->active_fd);
    if (store->event_fd >= 0)
        close(store->event_fd);
    index_free(&store->idx);
    pthread_mutex_destroy(&store->lock);
    pthread_mutex_destroy(&store->idx_lock);
    free(store->read_buf);
    free(store->read_locs);
    pthread_cond_destroy(&store->wake);
    pthread_cond_destroy(&store->idle);
    free(store->pending.data);
    free(store->inflight.data);
    free(store->compact_buf.data);
    summary_free(&store->summary);
    free(store->compact_read);
    free(store->failures);
    free(store->dir);
    free(store);
}

void store_forget_summary(struct store *store, uint64_t segment_id)
{
    char path[SEG_PATH_MAX];
    summary_path(path, sizeof(path), store->dir, segment_id);
    fs_unlink(store->io, path);
}

uint64_t store_max_message_id(const struct store *store)
{
    return store->max_msg_id;
}

static uint64_t put(struct store *store, uint8_t type, uint64_t msg_id, const uint8_t *queue,
                    size_t queue_len, const uint8_t *data, size_t len)
{
    if (rec_append(&store->pending, type, msg_id, queue, queue_len, data, len) < 0)
        return 0;
    return store->pending_batch;
}

uint64_t store_put_message(struct store *store, uint64_t msg_id, const uint8_t *data, size_t len)
{
    return put(store, REC_MESSAGE, msg_id, NULL, 0, data, len);
}

uint64_t store_put_enqueue(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id)
{
    return put(store, REC_ENQUEUE, msg_id, queue, queue_len, NULL, 0);
}

uint64_t store_put_deliver(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id)
{
    return put(store, REC_DELIVER, msg_id, queue, queue_len, NULL, 0);
}

uint64_t store_put_ack(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id)
{
    return put(store, REC_ACK, msg_id, queue, queue_len, NULL, 0);
}

uint64_t store_put_queue_deleted(struct store *store, const uint8_t *queue, size_t queue_len)
{
    return put(store, REC_QUEUE_DELETED, 0, queue, queue_len, NULL, 0);
}

uint64_t store_put_purge(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t after_id)
{
    return put(store, REC_PURGE, after_id, queue, queue_len, NULL, 0);
}

#define READ_WINDOW (256u << 10) /* one pread covers many consecutive small records */

/* Reads the record at loc into the window (store->read_buf holds [*win_off, *win_off + *win_len)
 * of segment *win_seg). Returns the record's data, or NULL when it does not read back intact, or
 * NULL with *nomem set when no buffer could hold it (the record may well be fine: the caller
 * must not be told to drop it). */
static const uint8_t *read_record(struct store *store, int fd, const struct index_entry_location *loc,
                                  uint64_t *win_seg, uint64_t *win_off, size_t *win_len, bool *nomem)
{
    size_t need = REC_HEADER_SIZE + 1 + 8 + (size_t)loc->len;
    if (*win_seg != loc->segment_id || loc->offset < *win_off || loc->offset + need > *win_off + *win_len) {
        size_t want = need > READ_WINDOW ? need : READ_WINDOW;
        if (store->read_cap < want) {
            uint8_t *grown = realloc(store->read_buf, want);
            if (!grown) {
                *nomem = true;
                return NULL;
            }
            store->read_buf = grown;
            store->read_cap = want;
        }
        size_t got = fs_pread_upto(store->io, fd, store->read_buf, want, (off_t)loc->offset);
        *win_seg = loc->segment_id;
        *win_off = loc->offset;
        *win_len = got;
        if (got < need)
            return NULL;
    }
    struct rec r;
    size_t at = (size_t)(loc->offset - *win_off);
    if (rec_parse(store->read_buf + at, *win_len - at, true, &r) == 0 || r.type != REC_MESSAGE ||
        r.msg_id != loc->msg_id)
        return NULL;
    return r.data;
}

long store_read_queue(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t after_id, size_t max,
                      store_entry_fn fn, void *ctx)
{
    if (max > 4096)
        max = 4096; /* a bounded lock hold; callers loop */
    if (store->read_locs_cap < max) {
        struct index_entry_location *grown = realloc(store->read_locs, max * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        store->read_locs = grown;
        store->read_locs_cap = max;
    }
    /* The lock keeps the I/O thread from dropping these entries' segments while we read. */
    pthread_mutex_lock(&store->idx_lock);
    size_t n = index_queue_entries(&store->idx, queue, (uint32_t)queue_len, after_id, store->read_locs, max);
    long rc = (long)n;
    int fd = -1;
    uint64_t fd_seg = 0, win_seg = 0, win_off = 0;
    size_t win_len = 0;
    for (size_t i = 0; i < n; i++) {
        const struct index_entry_location *loc = &store->read_locs[i];
        if (fd < 0 || fd_seg != loc->segment_id) {
            if (fd >= 0)
                fs_close(store->io, fd);
            char path[SEG_PATH_MAX];
            seg_path(path, sizeof(path), store->dir, loc->segment_id);
            fd = fs_open(store->io, path, O_RDONLY | O_CLOEXEC, 0);
            if (fd < 0) {
                rc = fd;
                storage_logf(&store->logger, STORE_LOG_ERROR, "cannot open %s to read queue entries: %s", path,
                             strerror(-fd));
                break;
            }
            fd_seg = loc->segment_id;
        }
        bool nomem = false;
        const uint8_t *data = read_record(store, fd, loc, &win_seg, &win_off, &win_len, &nomem);
        if (nomem) {
            rc = i > 0 ? (long)i : -ENOMEM; /* what was handed over counts */
            storage_logf(&store->logger, STORE_LOG_ERROR, "no memory to read message %llu (%u bytes) back",
                         (unsigned long long)loc->msg_id, (unsigned)loc->len);
            break;
        }
        if (!data) {
            storage_logf(&store->logger, STORE_LOG_ERROR,
                         "message %llu in segment %llu at offset %llu does not read back intact",
                         (unsigned long long)loc->msg_id, (unsigned long long)loc->segment_id,
                         (unsigned long long)loc->offset);
            store_forget_summary(store, loc->segment_id);
        }
        fn(ctx, loc->msg_id, data, data ? loc->len : 0, loc->delivered);
    }
    if (fd >= 0)
        fs_close(store->io, fd);
    pthread_mutex_unlock(&store->idx_lock);
    return rc;
}

void store_flush(struct store *store)
{
    if (store->pending.len == 0)
        return;
    pthread_mutex_lock(&store->lock);
    if (store->busy) {
        store->flush_wanted = true; /* store_poll hands it over when the thread is done */
        pthread_mutex_unlock(&store->lock);
        return;
    }
    struct rec_buf spare = store->inflight; /* emptied by the I/O thread, capacity kept */
    store->inflight = store->pending;
    store->pending = spare;
    store->inflight_batch = store->pending_batch++;
    store->busy = true;
    store->flush_wanted = false;
    pthread_cond_signal(&store->wake);
    pthread_mutex_unlock(&store->lock);
}

size_t store_pending_bytes(const struct store *store) { return store->pending.len; }

int store_event_fd(const struct store *store)
{
    return store->event_fd;
}

uint64_t store_poll(struct store *store)
{
    uint64_t count;
    if (read(store->event_fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: nothing new */
    }
    if (store->flush_wanted)
        store_flush(store);
    return atomic_load(&store->durable);
}

uint64_t store_durable_batch(const struct store *store)
{
    return atomic_load(&((struct store *)store)->durable);
}

bool store_take_failure(struct store *store, uint64_t *first_batch, uint64_t *last_batch, int *error)
{
    pthread_mutex_lock(&store->lock);
    bool found = store->nfailures > 0;
    if (found) {
        *first_batch = store->failures[0].first;
        *last_batch = store->failures[0].last;
        *error = store->failures[0].error;
        memmove(store->failures, store->failures + 1, --store->nfailures * sizeof(*store->failures));
    }
    pthread_mutex_unlock(&store->lock);
    return found;
}

bool store_disk_alarm(const struct store *store)
{
    return atomic_load(&((struct store *)store)->disk_alarm);
}

void store_get_stats(const struct store *store, struct store_stats *out)
{
    struct store *s = (struct store *)store; /* atomics are read-only here */
    out->segments = atomic_load(&s->segments);
    out->bytes_on_disk = atomic_load(&s->bytes_on_disk);
    out->live_messages = atomic_load(&s->live_messages);
    out->syncs = atomic_load(&s->syncs);
    out->compactions = atomic_load(&s->compactions);
    out->bytes_compacted = atomic_load(&s->bytes_compacted);
    out->records_recovered = s->records_recovered;
    out->segments_summarized = s->segments_summarized;
    out->corrupt_records = s->corrupt_records;
}
