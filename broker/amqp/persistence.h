/* broker/amqp/persistence.h: joins the model's durability events to the durable store.
 * Persistent messages in durable queues are written as they are enqueued, delivered and
 * removed; durable definitions are saved whenever they change; start-up recreates both.
 * Publisher confirms and tx.commit-ok wait until the batch holding their records is durable. */
#ifndef WARREN_PERSISTENCE_H
#define WARREN_PERSISTENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct event_loop;
struct message;
struct queue;
struct table_buf;
struct persistence;

/* What the store needs from the server: the definitions blob both ways (import returns 0, or
 * -1 when it refused the blob as a whole), queue lookup for recovered entries, and a call
 * whenever more batches became durable or failed. */
struct persistence_hooks {
    int (*export_definitions)(void *ctx, struct table_buf *out);
    int (*import_definitions)(void *ctx, struct proto_bytes blob);
    struct queue *(*find_queue)(void *ctx, struct proto_bytes vhost, struct proto_bytes queue);
    void (*on_durable)(void *ctx);
    void *ctx;
};

/* Opens the store in data_dir/store (disk_free_limit: bytes, the disk alarm's threshold;
 * segment_bytes: where the log rolls to a new segment, 0 for the store's default),
 * imports the saved definitions and gives each durable queue its stored entries as its paged
 * tail (queue.h). *out is set before the queues are restored, since restoring reads through it.
 * Returns 0, or -1 after logging why (*out is then NULL). */
int persistence_open(struct event_loop *loop, const char *data_dir, uint64_t disk_free_limit,
                     uint64_t segment_bytes, const struct persistence_hooks *hooks, struct persistence **out);
/* Writes what is pending, waits for it, closes the store. NULL is ignored. */
void persistence_close(struct persistence *p);

/* vhost hooks (see vhost.h); queues are named in the store as "<vhost>\0<queue>". */
void persistence_event(struct persistence *p, const char *vhost, struct queue *queue, struct message *msg,
                       int event);
void persistence_queue_deleted(struct persistence *p, const char *vhost, struct queue *queue);
void persistence_definitions_changed(struct persistence *p);
/* The store's side of queue paging (struct queue_pager in queue.h), for queue in vhost. */
size_t persistence_page_in(struct persistence *p, const char *vhost, struct queue *queue, uint64_t after_id,
                           size_t max, bool *complete);
void persistence_page_purge(struct persistence *p, const char *vhost, struct queue *queue, uint64_t after_id);

/* How much has been written so far. Take a mark before handling a publish (or a commit) and
 * ask persistence_wait_batch afterwards what it must wait for. Comparing batch numbers instead
 * would be wrong: while the I/O thread is busy every record of many passes joins the same
 * pending batch, so a publish that wrote records can leave the newest batch number unchanged. */
struct persistence_mark {
    uint64_t writes, lost;
};
struct persistence_mark persistence_mark(const struct persistence *p);
/* The batch that must be durable before the work done since `before` may be confirmed, 0 when
 * it wrote nothing that needs durability. *lost is set when a record of that work could not even
 * be queued for writing (out of memory): it must be nacked, not confirmed. */
uint64_t persistence_wait_batch(const struct persistence *p, struct persistence_mark before, bool *lost);
/* Highest batch number known durable. */
uint64_t persistence_durable_batch(const struct persistence *p);
/* The batch that carries the last record written so far, deliveries' included (0: none yet). */
uint64_t persistence_record_batch(const struct persistence *p);
/* True when batch failed to be written (ENOSPC, EIO): its publishes are nacked. */
bool persistence_batch_failed(const struct persistence *p, uint64_t batch);
/* The store's statistics (zeros when p is NULL). */
struct store_stats;
void persistence_store_stats(const struct persistence *p, struct store_stats *out);
/* True while the disk-free alarm is on. */
bool persistence_disk_alarm(const struct persistence *p);
/* True when more than bound bytes of records wait for the disk behind the batch being written:
 * publishers outrun the disk (flow.h). False when bound is 0 or p is NULL. */
bool persistence_backlogged(const struct persistence *p, uint64_t bound);

/* Before the loop sleeps: save definitions if they changed, then start writing the pending
 * batch (the store's I/O thread syncs it without blocking the loop). */
void persistence_before_sleep(struct persistence *p);

#endif
