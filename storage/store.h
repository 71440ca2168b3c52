/* storage/store.h: Warren's durable store: an append-only, segmented message log (persistent
 * messages, their enqueue/deliver/ack events per queue) plus one definitions blob (durable
 * exchanges, queues, bindings) replaced atomically. Knows nothing of AMQP or of the broker:
 * records are opaque bytes keyed by a message id and a queue name.
 *
 * Durability is batched (group commit): store_put_* append to an in-memory batch and return
 * at once; store_flush hands the batch to the store's I/O thread, which writes and fdatasyncs
 * it without blocking the caller's event loop; when it is on disk the store's event fd becomes
 * readable and store_durable_batch reports the highest batch number that is safe. A caller
 * confirms a publish only once the batch number its records got is durable. Segments whose
 * messages have all left their queues are deleted; a sparse one is compacted first (its few live
 * messages copied to the end of the log) so that a long-lived message does not pin old segments.
 *
 * Threading: every function is called from the broker's one thread; the I/O thread is private. */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

struct store;

/* Levels passed to store_options.log. */
enum store_log_level { STORE_LOG_ERROR = 0, STORE_LOG_WARNING = 1, STORE_LOG_INFO = 2 };

/* The one seam through which the store touches the file system (store_fs.c), like SQLite's
 * VFS: every open, write, read, sync, truncate, rename and unlink of segments, the definitions
 * file and the space reserve goes through it, so tests can fail (ENOSPC, EIO, short writes),
 * tear or "crash" any single call deterministically. Each member is optional (NULL: the system
 * call) and has the system call's contract (-1 and errno on failure). free_bytes stands for
 * statvfs: the bytes available to the store's directory. Production passes no hooks. */
struct store_io_hooks {
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    int (*close)(void *ctx, int fd);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t offset);
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t offset);
    int (*fdatasync)(void *ctx, int fd);
    int (*fsync)(void *ctx, int fd); /* files and directories */
    int (*ftruncate)(void *ctx, int fd, off_t length);
    int (*fallocate)(void *ctx, int fd, off_t offset, off_t length);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*free_bytes)(void *ctx, const char *dir, uint64_t *out);
    void *ctx;
};

struct store_options {
    const char *dir;        /* created if missing; holds segments and the definitions file */
    uint64_t segment_bytes; /* roll to a new segment past this size (0: 64 MiB) */
    uint64_t disk_free_limit; /* bytes; below it store_disk_alarm() turns true (0: 50 MB) */
    /* Where problems (corrupt records, torn tails, I/O errors) are reported; NULL: one line on
     * stderr prefixed "warren-storage: ". Called from the caller's thread during store_open and
     * from the store's I/O thread afterwards, so it must be thread-safe. msg is valid only
     * during the call. */
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;
    const struct store_io_hooks *io; /* NULL in production */
};

/* What recovery found, delivered through callbacks in log order. Views are valid only during
 * the call. */
struct store_recovery {
    /* A persistent message still referenced by at least one queue. */
    void (*message)(void *ctx, uint64_t msg_id, const uint8_t *data, size_t len);
    /* msg_id is (still) in queue `queue` (in id order per queue); delivered: a deliver record
     * was seen for it, so it must come back with redelivered=true. */
    void (*entry)(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t msg_id, bool delivered);
    /* Once per queue that has entries: how many, and the data bytes of their messages (for a
     * caller that reads entries back with store_read_queue instead of keeping them). */
    void (*queue)(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t entries, uint64_t bytes);
    void *ctx;
};

/* Opens (creating) the store in opts->dir, replays the log through rec (may be NULL) and
 * starts the I/O thread. A torn record at the tail of the newest segment is truncated; a
 * corrupt record elsewhere is logged with its file and offset and skipped. Returns 0 or a
 * negative errno; *out is set on success. The highest message id seen is available through
 * store_max_message_id so the caller never reuses ids. */
int store_open(const struct store_options *opts, const struct store_recovery *rec, struct store **out);

/* Flushes and syncs what is pending, stops the I/O thread and frees the store. */
void store_close(struct store *store);

/* Highest message id found by recovery (0 when empty). */
uint64_t store_max_message_id(const struct store *store);

/* Appends a message record (opaque data, e.g. exchange, routing key, header and body
 * serialised by the caller). Returns the batch number covering it (> 0), or 0 on ENOMEM (or
 * data over 1 GiB). Put its enqueues before the next store_flush: a message not enqueued
 * anywhere by then may be reclaimed. Ids are never reused by the caller. */
uint64_t store_put_message(struct store *store, uint64_t msg_id, const uint8_t *data, size_t len);
/* Appends "msg_id entered queue". Returns the batch number, or 0 on ENOMEM. */
uint64_t store_put_enqueue(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id);
/* Appends "msg_id was delivered from queue" (so recovery sets redelivered). Never needs a sync
 * of its own. Returns the batch number, or 0. */
uint64_t store_put_deliver(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id);
/* Appends "msg_id left queue" (ack, reject, expiry, purge, drop). When the message has left
 * every queue it was enqueued in, it is gone for good (enqueue it into a dead-letter queue
 * before acking it from the last one) and its space becomes reclaimable. Returns the batch
 * number, or 0. */
uint64_t store_put_ack(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t msg_id);
/* Appends "queue was deleted": all its entries leave. Returns the batch number, or 0. */
uint64_t store_put_queue_deleted(struct store *store, const uint8_t *queue, size_t queue_len);
/* Appends "every entry of queue whose message id is greater than after_id leaves" (a purge of
 * what the caller did not hold in memory). Returns the batch number, or 0. */
uint64_t store_put_purge(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t after_id);

/* Reading a queue back (a caller that keeps only the head of a long queue in memory). A queue's
 * entries are kept in message id order, which is enqueue order when ids grow along each queue
 * (enqueue a message only in the batch that stores it). Calls fn for up to max entries (at most
 * 4096 a call: loop until a call returns 0) of `queue` whose message id is greater than after_id,
 * in id order,
 * with the message's data (valid during the call; NULL and 0 when its record no longer reads
 * back intact: the problem is logged and the caller should ack the entry away) and whether a
 * DELIVER record was seen for it. Sees only batches already durable (store_durable_batch).
 * Reads the segment files with pread on the caller's thread: the pages were written recently
 * or are read in order, so this is mostly the page cache. Returns the number of entries
 * reported, or -errno when a segment cannot be opened or no buffer holds a record (logged). */
typedef void (*store_entry_fn)(void *ctx, uint64_t msg_id, const uint8_t *data, size_t len, bool delivered);
long store_read_queue(struct store *store, const uint8_t *queue, size_t queue_len, uint64_t after_id, size_t max,
                      store_entry_fn fn, void *ctx);

/* Hands the pending batch to the I/O thread if it is idle (otherwise it goes next). Cheap to
 * call every loop pass. */
void store_flush(struct store *store);

/* Bytes of records appended since the last hand-over: what waits behind the batch the I/O
 * thread is writing. Called from the appending thread only. */
size_t store_pending_bytes(const struct store *store);

/* An fd that becomes readable when a batch became durable (or failed); watch it for reading
 * and call store_poll after. */
int store_event_fd(const struct store *store);

/* Consumes completion notifications. Returns the highest batch number completed so far.
 * Batches complete in order; a failed batch counts as completed, so call store_take_failure
 * (and nack what it reports) before confirming everything up to the returned number. */
uint64_t store_poll(struct store *store);

/* Highest batch number completed (durable unless reported by store_take_failure); no system
 * call. */
uint64_t store_durable_batch(const struct store *store);

/* Batches whose write failed (ENOSPC, EIO) are reported here: returns true once per failure
 * with the first and last failed batch numbers; the caller nacks the publishes in them. The
 * store stays readable; later batches are tried again. */
bool store_take_failure(struct store *store, uint64_t *first_batch, uint64_t *last_batch, int *error);

/* True while free disk space in dir is below disk_free_limit (checked by the I/O thread). */
bool store_disk_alarm(const struct store *store);

/* Replaces the definitions blob atomically (write a temp file, fsync it, rename over the old,
 * fsync the directory). Synchronous: definitions change rarely. Returns 0 or -errno (-EFBIG
 * over 1 GiB). */
int store_save_definitions(struct store *store, const uint8_t *data, size_t len);
/* Reads the definitions blob (malloc'ed into *data, caller frees; *len 0 and *data NULL when
 * none was ever saved). Returns 0 or -errno. A blob failing its checksum is reported as -EBADMSG,
 * one over 1 GiB as -EFBIG. Only the framing is checked: the caller validates the contents. */
int store_load_definitions(struct store *store, uint8_t **data, size_t *len);
/* Renames the definitions file to "definitions.damaged" (replacing an older one) after it was
 * refused, so it survives the next save for inspection. Returns 0 or -errno (logged). */
int store_set_aside_definitions(struct store *store);

/* Statistics for logs and warrenctl. compactions: sparse segments whose live messages were
 * copied forward so the segment could be deleted; bytes_compacted: the message data so copied. */
struct store_stats {
    uint64_t segments, bytes_on_disk, live_messages, syncs, records_recovered, corrupt_records;
    uint64_t compactions, bytes_compacted;
    uint64_t segments_summarized; /* at the last start: segments replayed from their summary */
};
void store_get_stats(const struct store *store, struct store_stats *out);

#endif
