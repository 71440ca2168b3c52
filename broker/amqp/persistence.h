/* broker/amqp/persistence.h: joins the model's durability events to the durable store.
 * Persistent messages in durable queues are written as they are enqueued, delivered and
 * removed; durable definitions are saved whenever they change; start-up recreates both.
 * Publisher confirms and tx.commit-ok wait until the batch holding their records is durable. */
#ifndef WARREN_PERSISTENCE_H
#define WARREN_PERSISTENCE_H

#include <stdbool.h>
#include <stdint.h>

struct event_loop;
struct message;
struct queue;
struct vhost;
struct persistence;

/* Opens the store in data_dir and recreates the durable definitions and messages in vhost.
 * on_durable(ctx) runs (from the loop) whenever more batches became durable or failed.
 * Returns NULL after logging why. */
struct persistence *persistence_open(struct event_loop *loop, struct vhost *vhost, const char *data_dir,
                                     void (*on_durable)(void *ctx), void *ctx);
/* Writes what is pending, waits for it, closes the store. NULL is ignored. */
void persistence_close(struct persistence *p);

/* vhost hooks (see vhost.h). */
void persistence_event(struct persistence *p, struct queue *queue, struct message *msg, int event);
void persistence_queue_deleted(struct persistence *p, struct queue *queue);
void persistence_definitions_changed(struct persistence *p);

/* Number of the batch that holds the newest record so far (0: nothing ever written). A
 * publish whose handling changed it must wait for that batch. */
uint64_t persistence_last_batch(const struct persistence *p);
/* Highest batch number known durable. */
uint64_t persistence_durable_batch(const struct persistence *p);
/* True when batch failed to be written (ENOSPC, EIO): its publishes are nacked. */
bool persistence_batch_failed(const struct persistence *p, uint64_t batch);
/* True while the disk-free alarm is on. */
bool persistence_disk_alarm(const struct persistence *p);

/* Before the loop sleeps: save definitions if they changed, then start writing the pending
 * batch (the store's I/O thread syncs it without blocking the loop). */
void persistence_before_sleep(struct persistence *p);

#endif
