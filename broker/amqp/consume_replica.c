/* broker/amqp/consume_replica.c: the consuming side of a channel for quorum queues replicated
 * through the cluster's log (cluster_queues.h): deliveries arriving as effects, basic.get as a
 * dequeue command the connection waits for, and a node's consumers checked out again after it
 * was declared down. Built only with the cluster; the common part is consume.c. */
#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "cluster_queues.h"
#include "connection.h"
#include "consume_internal.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "server.h"
#include "spec.h"
#include "vhost.h"

/* A basic.get waiting for its dequeue command; its connection handles no frame meanwhile. */
struct replica_get {
    struct connection *conn;
    struct cluster_queues *cq;
    struct queue *queue; /* a reference */
    uint64_t handle;
    uint16_t channel;
    bool no_ack;
    bool channel_gone;
    struct message *msg; /* the message, once the effect delivered it */
    uint64_t id;
    uint32_t delivery_count;
};


/* A refusal from the log or a queue's home, in RabbitMQ's form: "CODE_NAME - text", however the
 * text came (the home's own refusals carry the prefix already). */
static void result_error(struct reply_error *err, int status, uint32_t method_id, const char *text)
{
    const char *name = spec_reply_code_name((uint16_t)status);
    size_t n = name ? strlen(name) : 0;
    if (name && strncmp(text, name, n) == 0 && strncmp(text + n, " - ", 3) == 0)
        text += n + 3;
    reply_fail(err, (uint16_t)status, method_id, "%s", text);
}

static void replica_get_free(struct replica_get *g)
{
    message_release(g->msg);
    queue_release(g->queue);
    free(g);
}

static void replica_get_abandon(void *arg)
{
    struct replica_get *g = arg;
    cluster_queues_forget(g->cq, g->handle);
    replica_get_free(g);
}

/* Sends get-ok for what the dequeue gave (or get-empty), tracking it in ack mode. */
static void replica_get_answer(struct channel *ch, struct replica_get *g)
{
    if (!g->msg) {
        ch->stats.get_empty++;
        struct spec_method empty = {.id = SPEC_BASIC_GET_EMPTY};
        channel_send(ch, &empty);
        return;
    }
    struct queue_entry entry = {.msg = g->msg, .seq = g->id, .expires_at = MESSAGE_NO_EXPIRY,
                                .delivery_count = g->delivery_count};
    uint64_t tag = ++ch->next_delivery_tag;
    struct spec_method m = {.id = SPEC_BASIC_GET_OK};
    m.args.basic_get_ok.delivery_tag = tag;
    m.args.basic_get_ok.redelivered = entry.delivery_count > 0;
    m.args.basic_get_ok.exchange = g->msg->exchange;
    m.args.basic_get_ok.routing_key = g->msg->routing_key;
    struct queue_depth depth;
    server_queue_depth(connection_server(ch->conn), ch->vhost, g->queue, &depth);
    m.args.basic_get_ok.message_count = (uint32_t)depth.ready;
    channel_send_delivery(ch, g->queue, &entry, true, &m);
    if (entry.delivery_count > 0)
        ch->stats.redeliver++;
    if (g->no_ack) {
        ch->stats.get_no_ack++;
        return; /* the message left the queue with the dequeue; g releases it */
    }
    ch->stats.get++;
    struct delivery d = {.tag = tag, .queue = g->queue, .entry = entry, .fetched = true, .replicated = true};
    if (delivery_ring_push(ch, &d) != 0) {
        struct cluster_settle_batch b = {0};
        cluster_settle_add(&b, ch, g->queue, (struct proto_bytes){0}, g->id, QUEUE_ACK);
        cluster_settle_flush(&b);
        return;
    }
    queue_retain(g->queue);
    g->msg = NULL; /* the delivery holds it now */
    ch->unacked_live++;
}

static void replica_get_done(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    struct replica_get *g = a;
    struct connection *conn = g->conn;
    connection_resume(conn);
    struct channel *ch = g->channel_gone ? NULL : connection_channel(conn, g->channel);
    if (!ch || !connection_is_running(conn) || ch->replica_get != g) {
        replica_get_free(g); /* the channel's close cancelled its get holder: the message went back */
        return;
    }
    ch->replica_get = NULL;
    if (result->status == 0 || result->status == META_DUPLICATE) {
        replica_get_answer(ch, g);
    } else {
        struct reply_error err;
        if (result->status == SPEC_NOT_FOUND)
            result_error(&err, SPEC_NOT_FOUND, SPEC_BASIC_GET, result->text);
        else
            reply_fail(&err, SPEC_INTERNAL_ERROR, SPEC_BASIC_GET, "cluster: no quorum");
        channel_raise(ch, &err);
    }
    replica_get_free(g);
}

/* basic.get on a replicated queue: a dequeue command; the answer goes out when it is applied. */
int channel_replica_get(struct channel *ch, struct queue *q, bool no_ack, struct reply_error *err)
{
    struct replica_get *g = calloc(1, sizeof *g);
    if (!g)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_GET, "out of memory");
    *g = (struct replica_get){.conn = ch->conn, .cq = server_cluster_queues(connection_server(ch->conn)), .queue = q,
                              .channel = ch->number, .no_ack = no_ack};
    queue_retain(q);
    g->handle = cluster_queues_dequeue(g->cq, ch, q, no_ack, replica_get_done, g, 0);
    if (g->handle == 0) {
        replica_get_free(g);
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_GET, "out of memory");
    }
    ch->replica_get = g;
    queue_touch(q, channel_now(ch));
    connection_wait(ch->conn, replica_get_abandon, g);
    return 0;
}

/* A basic.consume waiting for a classic queue's home to attach it. */
struct replica_consume {
    struct connection *conn;
    struct cluster_queues *cq;
    uint64_t handle;
    uint16_t channel;
    uint8_t tag_len;
    char tag[256];
};

static void replica_consume_abandon(void *arg)
{
    struct replica_consume *w = arg;
    cluster_queues_forget(w->cq, w->handle);
    free(w);
}

static void replica_consume_done(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    struct replica_consume *w = a;
    connection_resume(w->conn);
    struct channel *ch = connection_channel(w->conn, w->channel);
    struct proto_bytes tag = {(const uint8_t *)w->tag, w->tag_len};
    struct consumer *c = ch && ch->state == CHANNEL_OPEN ? channel_find_consumer(ch, tag) : NULL;
    if (!c || !connection_is_running(w->conn)) {
        free(w); /* the channel went: its channel_down removes what the home attached */
        return;
    }
    if (result->status == 0 || result->status == META_DUPLICATE) {
        struct spec_method ok = {.id = SPEC_BASIC_CONSUME_OK};
        ok.args.basic_consume_ok.consumer_tag = tag;
        channel_send(ch, &ok);
        free(w);
        return;
    }
    channel_consumer_free(c); /* refused: the home holds nothing for it */
    struct reply_error err;
    if (result->status == SPEC_ACCESS_REFUSED || result->status == SPEC_NOT_FOUND)
        result_error(&err, result->status, SPEC_BASIC_CONSUME, result->text);
    else
        reply_fail(&err, SPEC_INTERNAL_ERROR, SPEC_BASIC_CONSUME, "cluster: the queue's home did not answer");
    free(w);
    channel_raise(ch, &err);
}

int channel_replica_consume(struct channel *ch, struct consumer *c, struct reply_error *err)
{
    struct replica_consume *w = calloc(1, sizeof *w);
    struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
    if (w) {
        *w = (struct replica_consume){.conn = ch->conn, .cq = cq, .channel = ch->number, .tag_len = c->tag_len};
        memcpy(w->tag, c->tag, c->tag_len);
        w->handle = cluster_queues_checkout_answered(cq, ch, c, replica_consume_done, w, 0);
    }
    if (!w || w->handle == 0) {
        free(w);
        channel_consumer_free(c);
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_CONSUME, "out of memory");
    }
    queue_touch(c->queue, channel_now(ch));
    connection_wait(ch->conn, replica_consume_abandon, w);
    return 0;
}

void channel_replica_deliver(struct channel *ch, struct queue *q, struct proto_bytes tag, uint64_t id,
                             struct message *msg, uint32_t delivery_count)
{
    if (tag.len == 0) { /* the dequeue of the basic.get this channel waits for */
        struct replica_get *g = ch->replica_get;
        if (g && g->queue == q && !g->msg) {
            g->msg = msg;
            g->id = id;
            g->delivery_count = delivery_count;
        } else {
            message_release(msg); /* the channel's close returns it */
        }
        return;
    }
    if (ch->state != CHANNEL_OPEN) {
        message_release(msg); /* the close cancels this consumer, returning it */
        return;
    }
    struct consumer *c = channel_find_consumer(ch, tag);
    struct cluster_settle_batch b = {0};
    if (!c || !c->replicated || c->queue != q) {
        /* Cancelled before its detach was applied: handed back (RabbitMQ would not have sent it). */
        cluster_settle_add(&b, ch, q, tag, id, QUEUE_REQUEUE);
        cluster_settle_flush(&b);
        message_release(msg);
        return;
    }
    struct queue_entry entry = {.msg = msg, .seq = id, .expires_at = MESSAGE_NO_EXPIRY, .delivery_count = delivery_count};
    uint64_t dtag = ++ch->next_delivery_tag;
    struct spec_method m = {.id = SPEC_BASIC_DELIVER};
    m.args.basic_deliver.consumer_tag = tag;
    m.args.basic_deliver.delivery_tag = dtag;
    m.args.basic_deliver.redelivered = delivery_count > 0;
    m.args.basic_deliver.exchange = msg->exchange;
    m.args.basic_deliver.routing_key = msg->routing_key;
    channel_send_delivery(ch, q, &entry, false, &m);
    if (delivery_count > 0)
        ch->stats.redeliver++;
    struct delivery d = {.tag = dtag, .queue = q, .consumer = c, .entry = entry, .replicated = true};
    if (c->no_ack || delivery_ring_push(ch, &d) != 0) {
        /* No-ack (or untrackable): settled at once, by a command of its own. */
        if (c->no_ack)
            ch->stats.deliver_no_ack++;
        cluster_settle_add(&b, ch, q, tag, id, QUEUE_ACK);
        cluster_settle_flush(&b);
        message_release(msg);
        return;
    }
    ch->stats.deliver++;
    queue_retain(q);
    c->unacked++;
    ch->unacked_live++;
}

uint16_t channel_replica_credit(const struct consumer *c)
{
    /* The log hands a consumer what its prefetch allows, whatever its socket does: without a
     * prefetch (or in no-ack mode, where each delivery is settled by a command of its own) it
     * takes REPLICA_CREDIT at a time, so a consumer that stops reading holds that much in its
     * output buffer rather than the whole queue. */
    return c->no_ack || c->prefetch == 0 ? REPLICA_CREDIT : c->prefetch;
}

void channel_replica_reattach(struct channel *ch)
{
    struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
    struct consumer *c, *tmp;
    if (ch->state != CHANNEL_OPEN)
        return;
    HASH_ITER(hh, ch->consumers, c, tmp) {
        if (c->replicated && cluster_queues_checkout(cq, ch, c) != 0)
            log_error("cluster: out of memory: consumer '%.*s' not checked out again", (int)c->tag_len, c->tag);
    }
}

void channel_replica_queue_gone(struct channel *ch, struct proto_bytes queue)
{
    struct consumer *c, *tmp;
    HASH_ITER(hh, ch->consumers, c, tmp) {
        struct proto_bytes name = queue_name(c->queue);
        if (c->replicated && name.len == queue.len && memcmp(name.ptr, queue.ptr, queue.len) == 0)
            consumer_queue_deleted(c);
    }
}

void channel_replica_get_orphan(struct channel *ch)
{
    if (ch->replica_get)
        ch->replica_get->channel_gone = true;
    ch->replica_get = NULL;
}
