/* broker/amqp/consume_internal.h: what consume.c (the consuming side of a channel) shares with
 * consume_replica.c (the same for replicated quorum queues). Not for other files. */
#ifndef WARREN_CONSUME_INTERNAL_H
#define WARREN_CONSUME_INTERNAL_H

#include <stdbool.h>

#include "channel_internal.h"

/* Appends d to ch's unacked ring (growing it), stamped with the loop's time (the consumer
 * timeout counts from it). 0, or -1 when out of memory. */
int delivery_ring_push(struct channel *ch, struct delivery *d);
/* The consumer of ch with that tag, or NULL. */
struct consumer *channel_find_consumer(struct channel *ch, struct proto_bytes tag);
/* Sends a delivery's method m (basic.deliver or basic.get-ok) and its content, with
 * x-delivery-count for a kind of queue that counts deliveries. */
void channel_send_delivery(struct channel *ch, struct queue *queue, const struct queue_entry *entry, bool get,
                           const struct spec_method *m);

/* consume_replica.c. basic.get on a replicated queue q: proposes the dequeue, and the connection
 * handles no frame until the answer went out. 0, or -1 with err. */
int channel_replica_get(struct channel *ch, struct queue *q, bool no_ack, struct reply_error *err);
/* basic.consume of c (in ch's consumers already) on a classic queue homed on another node, not
 * nowait: consume-ok goes once the home attached it, before its first delivery; a refusal
 * (403 exclusive use, 404 its home down) closes the channel as RabbitMQ does, and c goes. The
 * connection handles no frame meanwhile. 0, or -1 with err (then c went too). */
int channel_replica_consume(struct channel *ch, struct consumer *c, struct reply_error *err);
/* Detaches c from its queue and frees it (consume.c). */
void channel_consumer_free(struct consumer *c);
/* The prefetch a replicated consumer checks out with: its own, or REPLICA_CREDIT without one. */
#define REPLICA_CREDIT 2000
uint16_t channel_replica_credit(const struct consumer *c);
/* The channel goes: a basic.get it waits for is answered to nobody. */
void channel_replica_get_orphan(struct channel *ch);

#endif
