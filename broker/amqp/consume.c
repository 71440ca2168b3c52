/* broker/amqp/consume.c: the consuming side of a channel: basic.qos, consume, cancel, get,
 * ack, nack, reject and recover; consumers as the queue sees them (credit and delivery); and
 * the ring of unacknowledged deliveries in delivery-tag order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "channel_internal.h"
#include "consume_internal.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_queues.h"
#endif
#include "connection.h"
#include "direct_reply.h"
#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "netconn.h"
#include "queue.h"
#include "random.h"
#include "server.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"


/* ---- the unacked ring ---- */

static struct delivery *ring_at(const struct delivery_ring *r, uint32_t i)
{
    return &r->items[(r->head + i) & (r->capacity - 1)];
}

int delivery_ring_push(struct channel *ch, struct delivery *d)
{
    struct delivery_ring *r = &ch->unacked;
    d->at_ms = loop_now_ms(server_loop(connection_server(ch->conn)));
    if (r->count == r->capacity) {
        uint32_t cap = r->capacity ? r->capacity * 2 : 64;
        struct delivery *items = malloc(sizeof *items * cap);
        if (!items)
            return -1;
        for (uint32_t i = 0; i < r->count; i++)
            items[i] = *ring_at(r, i);
        free(r->items);
        r->items = items;
        r->head = 0;
        r->capacity = cap;
    }
    *ring_at(r, r->count++) = *d;
    return 0;
}

/* RabbitMQ's consumer_timeout (channel_internal.h): the ring is in delivery order, so the
 * first delivery still outstanding is the oldest. One settled inside an open transaction waits
 * for the commit, not for the consumer: it does not count. */
void channel_check_ack_timeout(struct channel *ch, uint64_t now_ms, uint64_t timeout_ms)
{
    if (timeout_ms == 0 || ch->state != CHANNEL_OPEN || ch->unacked_live == 0)
        return;
    const struct delivery_ring *r = &ch->unacked;
    for (uint32_t i = 0; i < r->count; i++) {
        const struct delivery *d = ring_at(r, i);
        if (!d->queue || d->held)
            continue;
        if (now_ms - d->at_ms <= timeout_ms)
            return;
        struct reply_error err;
        reply_fail(&err, SPEC_PRECONDITION_FAILED, 0,
                   "delivery acknowledgement on channel %u timed out. Timeout value used: %llu ms. This timeout "
                   "value can be configured, see consumers doc guide to learn more",
                   (unsigned)ch->number, (unsigned long long)timeout_ms);
        channel_raise(ch, &err); /* its deliveries are requeued as the channel closes */
        return;
    }
}

/* Drops settled holes from the head so the ring only spans live deliveries. */
static void ring_trim(struct delivery_ring *r)
{
    while (r->count && ring_at(r, 0)->queue == NULL) {
        r->head = (r->head + 1) & (r->capacity - 1);
        r->count--;
    }
}

/* Index of the first delivery with tag >= tag (tags ascend along the ring). */
static uint32_t ring_lower_bound(const struct delivery_ring *r, uint64_t tag)
{
    uint32_t lo = 0, hi = r->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ring_at(r, mid)->tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- consumers as the queue sees them ---- */

static bool channel_has_credit(const struct channel *ch)
{
    if (ch->state != CHANNEL_OPEN || !ch->active)
        return false;
    struct netconn *net = connection_net(ch->conn);
    return !netconn_is_closing(net) && !netconn_output_full(net);
}

static bool consumer_has_credit(void *ctx, const struct message *msg)
{
    (void)msg;
    struct consumer *c = ctx;
    struct channel *ch = c->channel;
    if (!channel_has_credit(ch))
        return false;
    if (c->no_ack)
        return true;
    if (c->prefetch && c->unacked >= c->prefetch)
        return false;
    return ch->global_prefetch == 0 || ch->unacked_live < ch->global_prefetch;
}

/* Sends a delivery's method and content. A kind of queue that counts deliveries (quorum) adds
 * x-delivery-count to the content header, a copy made for this delivery only: the stored
 * message stays as published, so a dead letter of it carries no x-delivery-count (RabbitMQ). */
void channel_send_delivery(struct channel *ch, struct queue *queue, const struct queue_entry *entry, bool get,
                          const struct spec_method *m)
{
    struct message *msg = entry->msg;
    struct proto_bytes header = msg->header;
    struct table_buf counted = {0};
    int64_t count;
    if (queue_delivery_count_header(queue, entry, get, &count) &&
        message_header_with_long(msg, "x-delivery-count", count, &counted) == 0)
        header = (struct proto_bytes){counted.data, (uint32_t)counted.len};
    connection_send_content(ch->conn, ch->number, m, header, msg->body, msg->body_size, message_retain_cb,
                            message_release_cb, msg);
    table_buf_free(&counted);
}

static void consumer_deliver(void *ctx, struct queue *queue, const struct queue_entry *entry, bool no_ack)
{
    struct consumer *c = ctx;
    struct channel *ch = c->channel;
    struct message *msg = entry->msg;
    uint64_t tag = ++ch->next_delivery_tag;
    struct spec_method m = {.id = SPEC_BASIC_DELIVER};
    m.args.basic_deliver.consumer_tag = (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len};
    m.args.basic_deliver.delivery_tag = tag;
    m.args.basic_deliver.redelivered = entry->delivery_count > 0;
    m.args.basic_deliver.exchange = msg->exchange;
    m.args.basic_deliver.routing_key = msg->routing_key;
    channel_send_delivery(ch, queue, entry, false, &m);
    if (entry->delivery_count > 0)
        ch->stats.redeliver++;
    if (no_ack) {
        ch->stats.deliver_no_ack++;
        message_release(msg);
        return;
    }
    ch->stats.deliver++;
    struct delivery d = {.tag = tag, .queue = queue, .consumer = c, .entry = *entry};
    queue_retain(queue);
    if (delivery_ring_push(ch, &d) != 0) {
        /* Cannot track it: treat as acked rather than lose the bookkeeping. */
        queue_settle(queue, entry, QUEUE_ACK);
        queue_release(queue);
        return;
    }
    c->unacked++;
    ch->unacked_live++;
}

static void consumer_gone(void *consumer)
{
    consumer_queue_deleted(consumer);
}

static const struct consumer_ops consumer_ops = {
    .has_credit = consumer_has_credit,
    .deliver = consumer_deliver,
    .queue_deleted = consumer_gone,
};

struct consumer *channel_find_consumer(struct channel *ch, struct proto_bytes tag)
{
    struct consumer *c;
    HASH_FIND(hh, ch->consumers, tag.ptr ? (const void *)tag.ptr : "", tag.len, c);
    return c;
}

/* A cancelled replicated consumer whose last delivery was settled: freed. */
static void cancelled_free(struct consumer *c)
{
    struct channel *ch = c->channel;
    for (struct consumer **p = &ch->cancelled_replicas; *p; p = &(*p)->next_cancelled) {
        if (*p == c) {
            *p = c->next_cancelled;
            break;
        }
    }
    struct queue *q = c->queue;
    free(c);
    queue_release(q);
}

/* Detaches c from its queue and frees it; its unacked deliveries stay on the channel. A
 * replicated consumer with unacked deliveries (settled under its tag) waits in the channel's
 * cancelled list until the last is settled, unless the channel itself goes (gone). */
static void consumer_drop(struct consumer *c, bool gone)
{
    struct channel *ch = c->channel;
    HASH_DEL(ch->consumers, c);
    if (c->replicated && c->unacked && !gone) {
        c->cancelled = true;
        c->next_cancelled = ch->cancelled_replicas;
        ch->cancelled_replicas = c;
        return;
    }
    for (uint32_t i = 0; i < ch->unacked.count; i++) {
        struct delivery *d = ring_at(&ch->unacked, i);
        if (d->consumer == c)
            d->consumer = NULL;
    }
    struct queue *q = c->queue;
    if (!c->replicated) /* a replicated one was never the model queue's */
        queue_remove_consumer(q, c);
    free(c);
    queue_release(q);
}

static void consumer_free(struct consumer *c)
{
    consumer_drop(c, false);
}

void channel_consumer_free(struct consumer *c)
{
    consumer_free(c);
}

void consumer_queue_deleted(struct consumer *c)
{
    struct channel *ch = c->channel;
    if (ch->state == CHANNEL_OPEN &&
        connection_client_has_capability(ch->conn, "consumer_cancel_notify")) {
        struct spec_method m = {.id = SPEC_BASIC_CANCEL};
        m.args.basic_cancel.consumer_tag = (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len};
        m.args.basic_cancel.no_wait = true;
        channel_send(ch, &m);
    }
    consumer_free(c);
}

/* Re-entrancy: a dispatch may dead-letter and deliver to this channel (pushing onto its ring)
 * but never adds or frees a consumer (only cancel, channel close and queue deletion do), so the
 * walk over the consumer table stays valid. */
void channel_dispatch_consumers(struct channel *ch)
{
    uint64_t now = channel_now(ch);
    struct consumer *c, *tmp;
    HASH_ITER(hh, ch->consumers, c, tmp) {
        if (!c->replicated)
            queue_dispatch(c->queue, now);
    }
}

/* ---- settling ---- */

/* Settles the delivery at ring index `index`. Requeued messages are offered again only after
 * the caller's loop over the ring ends, so the queue is remembered in `requeued` with a
 * reference of its own.
 * Re-entrancy (STYLE 17): queue_settle can dead-letter (reject, or drop-head after a requeue),
 * and the dead-letter queue is dispatched at once; when this channel consumes from it,
 * consumer_deliver pushes onto this very ring, which may reallocate it. So the delivery is
 * copied out and its slot marked settled *before* the call, nothing here touches the ring after
 * it, and callers re-look-up by index (ring_push keeps indices: it only appends). */
static void settle_one(struct channel *ch, uint32_t index, enum queue_settle_mode mode, struct route_set *requeued,
                       struct cluster_settle_batch *batch)
{
    struct delivery *slot = ring_at(&ch->unacked, index);
    struct delivery d = *slot;
    slot->queue = NULL;
    if (d.consumer)
        d.consumer->unacked--;
    ch->unacked_live--;
    if (mode == QUEUE_ACK)
        ch->stats.ack++;
    if (d.replicated) {
        /* A command of the cluster's log; a return because the channel goes is not one: the
         * channel's close cancels its keys, which puts their messages back in front. */
#ifdef WARREN_HAVE_CLUSTER
        if (mode != QUEUE_RETURN) {
            struct proto_bytes tag = {0};
            if (d.consumer)
                tag = (struct proto_bytes){(const uint8_t *)d.consumer->tag, d.consumer->tag_len};
            cluster_settle_add(batch, ch, d.queue, tag, d.entry.seq, mode);
        }
#else
        (void)batch;
#endif
        message_release(d.entry.msg);
        if (d.consumer && d.consumer->cancelled && d.consumer->unacked == 0)
            cancelled_free(d.consumer);
        queue_release(d.queue);
        return;
    }
    if (d.fetched)
        queue_settle_fetched(d.queue, &d.entry, mode);
    else
        queue_settle(d.queue, &d.entry, mode);
    if ((mode == QUEUE_REQUEUE || mode == QUEUE_RETURN) && route_set_add(requeued, d.queue) == 1)
        queue_retain(d.queue);
    queue_release(d.queue);
}

static void dispatch_requeued(struct channel *ch, struct route_set *requeued, struct cluster_settle_batch *batch)
{
#ifdef WARREN_HAVE_CLUSTER
    cluster_settle_flush(batch);
#else
    (void)batch;
#endif
    uint64_t now = channel_now(ch);
    for (size_t i = 0; i < requeued->count; i++) {
        queue_dispatch(requeued->items[i], now);
        queue_release(requeued->items[i]);
    }
    route_set_free(requeued);
}

/* The ring index just past what a settle of (tag, multiple) covers: for multiple, everything
 * up to tag (the whole ring for tag 0), else tag alone. -1 with 406 when tag is not an
 * outstanding delivery: like RabbitMQ's collect_acks, multiple too wants the tag itself
 * outstanding (a tag already settled is unknown), and a delivery held by the open transaction
 * is settled already. */
static int settle_end(struct channel *ch, uint64_t tag, bool multiple, uint32_t method_id, uint32_t *end,
                      struct reply_error *err)
{
    struct delivery_ring *r = &ch->unacked;
    if (multiple && tag == 0) { /* "everything outstanding" (RabbitMQ) */
        *end = r->count;
        return 0;
    }
    uint32_t i = ring_lower_bound(r, tag);
    const struct delivery *d = i < r->count ? ring_at(r, i) : NULL;
    if (!d || d->tag != tag || !d->queue || d->held)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, method_id, "unknown delivery tag %llu",
                          (unsigned long long)tag);
    *end = i + 1;
    return 0;
}

/* Settles delivery `tag` (or all up to it with multiple). Returns -1 with 406 for an unknown tag. */
static int channel_settle(struct channel *ch, uint64_t tag, bool multiple, enum queue_settle_mode mode,
                          uint32_t method_id, struct reply_error *err)
{
    struct delivery_ring *r = &ch->unacked;
    struct route_set requeued = {0};
    struct cluster_settle_batch batch = {0};
    /* `end` is fixed first: deliveries pushed while settling (dead letters this channel
     * consumes) carry later tags and are not part of this settle. */
    uint32_t end;
    if (settle_end(ch, tag, multiple, method_id, &end, err) != 0)
        return -1;
    for (uint32_t i = multiple ? 0 : end - 1; i < end; i++) {
        if (ring_at(r, i)->queue)
            settle_one(ch, i, mode, &requeued, &batch);
    }
    ring_trim(r);
    dispatch_requeued(ch, &requeued, &batch);
    channel_dispatch_consumers(ch);
    return 0;
}

void channel_settle_held(struct channel *ch)
{
    struct delivery_ring *r = &ch->unacked;
    struct route_set requeued = {0};
    struct cluster_settle_batch batch = {0};
    uint32_t end = r->count; /* as in channel_settle */
    for (uint32_t i = 0; i < end; i++) {
        struct delivery *d = ring_at(r, i);
        if (d->queue && d->held) {
            d->held = false;
            settle_one(ch, i, (enum queue_settle_mode)d->held_mode, &requeued, &batch);
        }
    }
    ring_trim(r);
    dispatch_requeued(ch, &requeued, &batch);
}

void channel_release_held(struct channel *ch)
{
    struct delivery_ring *r = &ch->unacked;
    for (uint32_t i = 0; i < r->count; i++)
        ring_at(r, i)->held = false;
}

/* In a transaction the settle is checked now (406 at once, as RabbitMQ) and held until commit. */
static int settle_method(struct channel *ch, uint64_t tag, bool multiple, enum queue_settle_mode mode,
                         uint32_t method_id, struct reply_error *err)
{
    if (!ch->tx_mode)
        return channel_settle(ch, tag, multiple, mode, method_id, err);
    uint32_t end;
    if (settle_end(ch, tag, multiple, method_id, &end, err) != 0)
        return -1;
    for (uint32_t i = multiple ? 0 : end - 1; i < end; i++) {
        struct delivery *d = ring_at(&ch->unacked, i);
        if (d->queue && !d->held) {
            d->held = true;
            d->held_mode = (uint8_t)mode;
        }
    }
    return 0;
}

/* Gives every unacked delivery back, in delivery-tag order: mode QUEUE_REQUEUE for
 * basic.recover, QUEUE_RETURN when the channel goes away (queue_settle says where each kind of
 * queue puts them). A requeue over x-max-length dead-letters, and a dead-letter queue this
 * channel consumes may deliver to it meanwhile (basic.recover): those later deliveries stay on
 * the ring, tracked, so the walk stops at the count it started with and only trims settled
 * slots. */
static void requeue_all(struct channel *ch, bool held_too, enum queue_settle_mode mode)
{
    struct delivery_ring *r = &ch->unacked;
    struct route_set requeued = {0};
    struct cluster_settle_batch batch = {0};
    uint32_t end = r->count;
    for (uint32_t i = 0; i < end; i++) {
        const struct delivery *d = ring_at(r, i);
        if (d->queue && (held_too || !d->held))
            settle_one(ch, i, mode, &requeued, &batch);
    }
    ring_trim(r);
    dispatch_requeued(ch, &requeued, &batch);
}

void channel_release_consumers(struct channel *ch)
{
    direct_reply_release(ch);
#ifdef WARREN_HAVE_CLUSTER
    /* Every key the channel used is cancelled by one command (its deliveries go back to the
     * front of their queues), so the local ones below are just let go. */
    cluster_queues_channel_closed(server_cluster_queues(connection_server(ch->conn)), ch);
    channel_replica_get_orphan(ch);
#endif
    while (ch->consumers)
        consumer_drop(ch->consumers, true);
    requeue_all(ch, true, QUEUE_RETURN);
    while (ch->cancelled_replicas) /* their deliveries were all settled just above */
        cancelled_free(ch->cancelled_replicas);
}

/* ---- methods ---- */

static int basic_qos(struct channel *ch, const struct spec_basic_qos *a, struct reply_error *err)
{
    if (a->prefetch_size != 0)
        return reply_fail(err, SPEC_NOT_IMPLEMENTED, SPEC_BASIC_QOS, "prefetch_size!=0 (%u)", a->prefetch_size);
    if (a->global) {
        ch->global_prefetch = a->prefetch_count;
    } else {
        /* RabbitMQ 3.10: a per-consumer limit also lifts an earlier channel-wide one. */
        ch->prefetch_count = a->prefetch_count;
        ch->global_prefetch = 0;
    }
    struct spec_method ok = {.id = SPEC_BASIC_QOS_OK};
    channel_send(ch, &ok);
    channel_dispatch_consumers(ch);
    return 0;
}

static int basic_consume(struct channel *ch, const struct spec_basic_consume *a, struct reply_error *err)
{
    const uint32_t mid = SPEC_BASIC_CONSUME;
    struct proto_bytes name = a->queue;
    if (direct_reply_is_queue(name))
        return direct_reply_consume(ch, a->consumer_tag, a->no_ack, a->no_wait, err);
    if (channel_expand_queue_name(ch, &name, mid, err) != 0 ||
        channel_check_access(ch, ACCESS_READ, "queue", name, mid, err) != 0)
        return -1;
    struct queue *q;
    if (vhost_queue_lookup(ch->vhost, name, ch->conn, &q, err) != 0) {
        err->method_id = mid;
        return -1;
    }
    /* RabbitMQ 3.10's quorum queues refuse a channel-wide prefetch, closing the connection. */
    if (ch->global_prefetch > 0 && !queue_kind(q)->global_qos)
        return reply_fail(err, SPEC_NOT_IMPLEMENTED, mid, "queue '%.*s' in vhost '%s' does not support global qos",
                          (int)name.len, (const char *)name.ptr, vhost_name(ch->vhost));
    struct consumer *c = calloc(1, sizeof *c);
    if (!c)
        return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "out of memory");
    if (a->consumer_tag.len) {
        if (channel_find_consumer(ch, a->consumer_tag)) {
            free(c);
            return reply_fail(err, SPEC_NOT_ALLOWED, mid, "attempt to reuse consumer tag '%.*s'",
                              (int)a->consumer_tag.len, (const char *)a->consumer_tag.ptr);
        }
        memcpy(c->tag, a->consumer_tag.ptr, a->consumer_tag.len);
        c->tag_len = (uint8_t)a->consumer_tag.len;
    } else {
        /* RabbitMQ's amq.ctag-<128 random bits>: no counter, no address. */
        memcpy(c->tag, "amq.ctag-", 9);
        do {
            if (random_token(c->tag + 9) != 0) {
                free(c);
                return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "no randomness for a consumer tag");
            }
            c->tag_len = 9 + RANDOM_TOKEN_LEN;
        } while (channel_find_consumer(ch, (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len}));
    }
    int32_t priority = 0;
    struct table_value v;
    int64_t n;
    if (table_find(a->arguments, "x-priority", &v) == 1) {
        if (!table_value_to_int(&v, &n) || n < INT32_MIN || n > INT32_MAX) {
            free(c);
            return reply_fail(err, SPEC_PRECONDITION_FAILED, mid, "invalid arg 'x-priority'");
        }
        priority = (int32_t)n;
    }
    c->channel = ch;
    c->queue = q;
    c->no_ack = a->no_ack;
    c->exclusive = a->exclusive;
    c->priority = priority;
    c->prefetch = ch->prefetch_count;
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_queues *replicas = server_cluster_queues(connection_server(ch->conn));
    if (cluster_queues_replicated(replicas, q)) {
        /* A checkout in the cluster's log, or at a classic queue's home; deliveries follow as
         * effects (channel_replica_deliver). Like RabbitMQ 3.10's quorum queues, exclusive and
         * x-priority are not honoured on quorum queues; a classic queue's home honours them. */
        c->replicated = true;
        if (queue_elsewhere(q) && !a->no_wait) { /* answered by its home: consume-ok waits */
            queue_retain(q);
            HASH_ADD(hh, ch->consumers, tag, c->tag_len, c);
            err->method_id = mid;
            return channel_replica_consume(ch, c, err);
        }
        if (cluster_queues_checkout(replicas, ch, c) != 0) {
            free(c);
            return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "out of memory");
        }
        queue_retain(q);
        HASH_ADD(hh, ch->consumers, tag, c->tag_len, c);
        if (!a->no_wait) {
            struct spec_method ok = {.id = SPEC_BASIC_CONSUME_OK};
            ok.args.basic_consume_ok.consumer_tag = (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len};
            channel_send(ch, &ok);
        }
        return 0;
    }
#endif
    if (queue_add_consumer(q, c, &consumer_ops, priority, a->exclusive, a->no_ack, err) != 0) {
        free(c);
        err->method_id = mid;
        return -1;
    }
    queue_retain(q);
    HASH_ADD(hh, ch->consumers, tag, c->tag_len, c);
    queue_touch(q, channel_now(ch));
    if (!a->no_wait) {
        struct spec_method ok = {.id = SPEC_BASIC_CONSUME_OK};
        ok.args.basic_consume_ok.consumer_tag = (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len};
        channel_send(ch, &ok);
    }
    queue_dispatch(q, channel_now(ch));
    return 0;
}

static int basic_cancel(struct channel *ch, const struct spec_basic_cancel *a)
{
    struct consumer *c = channel_find_consumer(ch, a->consumer_tag);
    direct_reply_cancel(ch, a->consumer_tag);
    if (!a->no_wait) {
        /* RabbitMQ answers cancel-ok for unknown tags too. */
        struct spec_method ok = {.id = SPEC_BASIC_CANCEL_OK};
        ok.args.basic_cancel_ok.consumer_tag = a->consumer_tag;
        channel_send(ch, &ok);
    }
    if (c) {
#ifdef WARREN_HAVE_CLUSTER
        /* AMQP's cancel keeps the unacked deliveries with the channel: a detach, not a cancel. */
        if (c->replicated &&
            cluster_queues_detach(server_cluster_queues(connection_server(ch->conn)), ch, c->queue,
                                  (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len}) != 0)
            log_error("cluster: out of memory: basic.cancel of '%.*s' not proposed", (int)c->tag_len, c->tag);
#endif
        consumer_free(c);
    }
    return 0;
}

int get_message_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner, bool no_ack,
                   uint64_t now, struct queue **q, struct queue_entry *entry, bool *got, struct reply_error *err)
{
    if (actor_check(who, ACCESS_READ, "queue", name, SPEC_BASIC_GET, err) != 0)
        return -1;
    if (vhost_queue_lookup(vhost, name, owner, q, err) != 0) {
        err->method_id = SPEC_BASIC_GET;
        return -1;
    }
    const struct queue_kind *kind = queue_kind(*q);
    if (queue_settings(*q)->single_active_consumer && !kind->single_active_get)
        return reply_fail(err, SPEC_RESOURCE_LOCKED, SPEC_BASIC_GET,
                          "cannot obtain access to locked queue '%.*s' in vhost '%s'. basic.get operations are not "
                          "supported by %s queues with single active consumer",
                          (int)name.len, (const char *)name.ptr, vhost_name(vhost), kind->name);
    queue_touch(*q, now);
    *got = queue_get(*q, now, no_ack, entry);
    return 0;
}


static int basic_get(struct channel *ch, const struct spec_basic_get *a, struct reply_error *err)
{
    const uint32_t mid = SPEC_BASIC_GET;
    struct proto_bytes name = a->queue;
    struct queue *q;
    struct queue_entry entry;
    bool got;
    struct actor who = channel_actor(ch);
    if (channel_expand_queue_name(ch, &name, mid, err) != 0)
        return -1;
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_queues *replicas = server_cluster_queues(connection_server(ch->conn));
    if (replicas) {
        if (actor_check(&who, ACCESS_READ, "queue", name, mid, err) != 0)
            return -1;
        if (vhost_queue_lookup(ch->vhost, name, ch->conn, &q, err) != 0) {
            err->method_id = mid;
            return -1;
        }
        if (cluster_queues_replicated(replicas, q)) {
            if (queue_settings(q)->single_active_consumer)
                return reply_fail(err, SPEC_RESOURCE_LOCKED, mid,
                                  "cannot obtain access to locked queue '%.*s' in vhost '%s'. basic.get operations "
                                  "are not supported by quorum queues with single active consumer",
                                  (int)name.len, (const char *)name.ptr, vhost_name(ch->vhost));
            return channel_replica_get(ch, q, a->no_ack, err);
        }
    }
#endif
    if (get_message_as(&who, ch->vhost, name, ch->conn, a->no_ack, channel_now(ch), &q, &entry, &got, err) != 0)
        return -1;
    if (!got) {
        ch->stats.get_empty++;
        struct spec_method empty = {.id = SPEC_BASIC_GET_EMPTY};
        return channel_send(ch, &empty);
    }
    struct message *msg = entry.msg;
    uint64_t tag = ++ch->next_delivery_tag;
    struct spec_method m = {.id = SPEC_BASIC_GET_OK};
    m.args.basic_get_ok.delivery_tag = tag;
    m.args.basic_get_ok.redelivered = entry.delivery_count > 0;
    m.args.basic_get_ok.exchange = msg->exchange;
    m.args.basic_get_ok.routing_key = msg->routing_key;
    m.args.basic_get_ok.message_count = (uint32_t)queue_ready_count(q);
    channel_send_delivery(ch, q, &entry, true, &m);
    if (entry.delivery_count > 0)
        ch->stats.redeliver++;
    if (a->no_ack) {
        ch->stats.get_no_ack++;
        message_release(msg);
        return 0;
    }
    ch->stats.get++;
    struct delivery d = {.tag = tag, .queue = q, .consumer = NULL, .entry = entry, .fetched = true};
    queue_retain(q);
    if (delivery_ring_push(ch, &d) != 0) {
        queue_settle_fetched(q, &entry, QUEUE_ACK);
        queue_release(q);
        return 0;
    }
    ch->unacked_live++;
    return 0;
}

static int basic_recover(struct channel *ch, bool send_ok)
{
    /* What the open transaction settled stays settled (RabbitMQ recovers its unacked list,
     * which no longer holds them); they are requeued if the channel closes before commit. */
    requeue_all(ch, false, QUEUE_REQUEUE);
    if (send_ok) {
        struct spec_method ok = {.id = SPEC_BASIC_RECOVER_OK};
        channel_send(ch, &ok);
    }
    channel_dispatch_consumers(ch);
    return 0;
}

int channel_basic_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_BASIC_QOS:
        return basic_qos(ch, &m->args.basic_qos, err);
    case SPEC_BASIC_CONSUME:
        return basic_consume(ch, &m->args.basic_consume, err);
    case SPEC_BASIC_CANCEL:
        return basic_cancel(ch, &m->args.basic_cancel);
    case SPEC_BASIC_GET:
        return basic_get(ch, &m->args.basic_get, err);
    case SPEC_BASIC_ACK:
        return settle_method(ch, m->args.basic_ack.delivery_tag, m->args.basic_ack.multiple, QUEUE_ACK, m->id, err);
    case SPEC_BASIC_NACK:
        return settle_method(ch, m->args.basic_nack.delivery_tag, m->args.basic_nack.multiple,
                             m->args.basic_nack.requeue ? QUEUE_REQUEUE : QUEUE_DISCARD, m->id, err);
    case SPEC_BASIC_REJECT:
        return settle_method(ch, m->args.basic_reject.delivery_tag, false,
                             m->args.basic_reject.requeue ? QUEUE_REQUEUE : QUEUE_DISCARD, m->id, err);
    case SPEC_BASIC_RECOVER:
    case SPEC_BASIC_RECOVER_ASYNC: {
        bool requeue = m->id == SPEC_BASIC_RECOVER ? m->args.basic_recover.requeue : m->args.basic_recover_async.requeue;
        if (!requeue) /* RabbitMQ never implemented redelivery to the same consumer */
            return reply_fail(err, SPEC_NOT_IMPLEMENTED, m->id, "requeue=false");
        return basic_recover(ch, m->id == SPEC_BASIC_RECOVER);
    }
    default:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    }
}
