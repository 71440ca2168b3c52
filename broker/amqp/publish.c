/* broker/amqp/publish.c: the publishing side of a channel. basic.publish, its content header
 * and body frames are assembled into one reference-counted message (the body's single copy),
 * routed by the vhost, enqueued on every target queue, and confirmed to the publisher.
 * Transactions (tx.*) hold publishes and acknowledgements back until commit. */
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "arguments.h"
#include "channel_internal.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_queues.h"
#endif
#include "connection.h"
#include "direct_reply.h"
#include "flow.h"
#include "frame.h"
#include "log.h"
#include "message.h"
#include "persistence.h"
#include "queue.h"
#include "server.h"
#include "spec.h"
#include "vhost.h"

bool channel_content_pending(const struct channel *ch) { return ch->stage != PUBLISH_IDLE; }

void channel_drop_publishing(struct channel *ch)
{
    message_release(ch->publishing);
    ch->publishing = NULL;
    ch->stage = PUBLISH_IDLE;
    while (ch->tx_publishes) {
        struct tx_publish *p = ch->tx_publishes;
        ch->tx_publishes = p->next;
        message_release(p->msg);
        free(p);
    }
    ch->tx_publishes_tail = &ch->tx_publishes;
    channel_release_held(ch);
}

int channel_publish(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    const struct spec_basic_publish *a = &m->args.basic_publish;
    if (a->immediate)
        return reply_fail(err, SPEC_NOT_IMPLEMENTED, m->id, "immediate=true");
    struct channel_names *names = channel_names(ch);
    if (!names)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    memcpy(names->publish_exchange, a->exchange.ptr, a->exchange.len);
    ch->publish_exchange_len = (uint8_t)a->exchange.len;
    memcpy(names->publish_key, a->routing_key.ptr, a->routing_key.len);
    ch->publish_key_len = (uint8_t)a->routing_key.len;
    ch->publish_mandatory = a->mandatory;
    ch->stage = PUBLISH_AWAIT_HEADER;
    connection_note_publish(ch->conn);
    if (ch->confirm_mode)
        ch->publish_seq++;
    return 0;
}

/* ---- confirms ---- */

static void send_confirm(struct channel *ch, uint32_t id, uint64_t tag, bool multiple)
{
    struct spec_method m = {.id = id};
    if (id == SPEC_BASIC_ACK) {
        m.args.basic_ack.delivery_tag = tag;
        m.args.basic_ack.multiple = multiple;
    } else {
        m.args.basic_nack.delivery_tag = tag;
        m.args.basic_nack.multiple = multiple;
    }
    channel_send(ch, &m);
}

void channel_flush_confirms(struct channel *ch)
{
    if (ch->confirmed_upto == ch->confirm_sent_upto || ch->state != CHANNEL_OPEN)
        return;
    bool multiple = ch->confirmed_upto - ch->confirm_sent_upto > 1;
    send_confirm(ch, SPEC_BASIC_ACK, ch->confirmed_upto, multiple);
    ch->stats.confirm += ch->confirmed_upto - ch->confirm_sent_upto;
    ch->confirm_sent_upto = ch->confirmed_upto;
}

static void send_nack_in_order(struct channel *ch, uint64_t seq)
{
    ch->confirmed_upto = seq - 1;
    channel_flush_confirms(ch);
    send_confirm(ch, SPEC_BASIC_NACK, seq, false);
    ch->confirmed_upto = ch->confirm_sent_upto = seq;
}

static int push_wait(struct channel *ch, const struct confirm_wait *w)
{
    if (ch->waits_count == ch->waits_cap) {
        uint32_t cap = ch->waits_cap ? ch->waits_cap * 2 : 64;
        struct confirm_wait *items = malloc(sizeof *items * cap);
        if (!items)
            return -1;
        for (uint32_t i = 0; i < ch->waits_count; i++)
            items[i] = ch->waits[(ch->waits_head + i) & (ch->waits_cap - 1)];
        free(ch->waits);
        ch->waits = items;
        ch->waits_head = 0;
        ch->waits_cap = cap;
    }
    ch->waits[(ch->waits_head + ch->waits_count++) & (ch->waits_cap - 1)] = *w;
    return 0;
}

/* Publishes are confirmed in order, so acks coalesce into one multiple ack; a nack first sends
 * the acks before it. A publish whose records sit in a store batch (batch > 0), or whose
 * enqueue on replicated quorum queues is not applied here yet (replica > 0), and any publish
 * behind one, waits until that is done. */
static void confirm(struct channel *ch, uint64_t seq, bool ok, uint64_t batch, uint64_t replica)
{
    if (batch == 0 && replica == 0 && ch->waits_count == 0) {
        if (ok)
            ch->confirmed_upto = seq;
        else
            send_nack_in_order(ch, seq);
        return;
    }
    struct confirm_wait w = {.seq = seq, .batch = batch, .replica = replica, .ok = ok};
    if (push_wait(ch, &w) != 0) {
        /* cannot track it: the publisher must retry (the enqueue may still happen) */
#ifdef WARREN_HAVE_CLUSTER
        cluster_queues_forget(server_cluster_queues(connection_server(ch->conn)), replica);
#endif
        send_nack_in_order(ch, seq);
        return;
    }
    server_wait_durable(connection_server(ch->conn), ch);
}

#ifdef WARREN_HAVE_CLUSTER
/* The enqueue of publish seq on replicated quorum queues was applied on this node (a majority
 * has it on disk), or failed: its wait is done. */
static void replica_applied(void *a, uint64_t seq, const struct meta_result *result)
{
    struct channel *ch = a;
    for (uint32_t i = 0; i < ch->waits_count; i++) {
        struct confirm_wait *w = &ch->waits[(ch->waits_head + i) & (ch->waits_cap - 1)];
        if (w->seq == seq) {
            w->replica = 0;
            /* Only an enqueue seen applied here counts. META_DUPLICATE means "applied once
             * before", without that first result (this node caught up from a snapshot past it):
             * it may have been refused (reject-publish, a queue gone), so it is nacked, and the
             * publisher's retry costs at most a duplicate, never a lost message. */
            w->ok = w->ok && result->status == 0;
            break;
        }
    }
    channel_durable_progress(ch);
}
#endif

#ifdef WARREN_HAVE_CLUSTER
/* The enqueue of a committed transaction's publish number seq (1-based) is done here. */
static void tx_replica_applied(void *a, uint64_t seq, const struct meta_result *result)
{
    struct channel *ch = a;
    if (seq == 0 || seq > ch->tx_replica_slots || ch->tx_replicas[seq - 1] == 0)
        return;
    ch->tx_replicas[seq - 1] = 0;
    ch->tx_replica_pending--;
    if (result->status != 0)
        ch->tx_replica_failed = true; /* see replica_applied: a duplicate's first result is unknown */
    channel_durable_progress(ch);
}
#endif

void channel_forget_replica_confirms(struct channel *ch)
{
#ifdef WARREN_HAVE_CLUSTER
    for (uint32_t i = 0; i < ch->tx_replica_slots; i++)
        if (ch->tx_replicas[i])
            cluster_queues_forget(server_cluster_queues(connection_server(ch->conn)), ch->tx_replicas[i]);
#endif
    free(ch->tx_replicas);
    ch->tx_replicas = NULL;
    ch->tx_replica_slots = ch->tx_replica_pending = 0;
    for (uint32_t i = 0; i < ch->waits_count; i++) {
        struct confirm_wait *w = &ch->waits[(ch->waits_head + i) & (ch->waits_cap - 1)];
        if (!w->replica)
            continue; /* the store's waits are the store's: left as they were */
#ifdef WARREN_HAVE_CLUSTER
        cluster_queues_forget(server_cluster_queues(connection_server(ch->conn)), w->replica);
#endif
        w->replica = 0;
    }
}

bool channel_durable_progress(struct channel *ch)
{
    struct persistence *p = server_persistence(connection_server(ch->conn));
    uint64_t durable = persistence_durable_batch(p);
    while (ch->waits_count) {
        struct confirm_wait *w = &ch->waits[ch->waits_head];
        if (w->batch > durable || w->replica)
            break;
        if (w->ok && !persistence_batch_failed(p, w->batch))
            ch->confirmed_upto = w->seq;
        else
            send_nack_in_order(ch, w->seq);
        ch->waits_head = (ch->waits_head + 1) & (ch->waits_cap - 1);
        ch->waits_count--;
    }
    channel_flush_confirms(ch);
    if (ch->commit_owed && ch->commit_wait_batch <= durable && ch->tx_replica_pending == 0) {
        if (ch->commit_wait_batch && persistence_batch_failed(p, ch->commit_wait_batch)) {
            struct reply_error err;
            reply_fail(&err, SPEC_INTERNAL_ERROR, SPEC_TX_COMMIT, "the durable store could not write the transaction");
            connection_fail(ch->conn, &err);
        } else if (ch->tx_replica_failed) {
            struct reply_error err;
            reply_fail(&err, SPEC_INTERNAL_ERROR, SPEC_TX_COMMIT,
                       "cluster: a queue of the transaction did not take its messages");
            connection_fail(ch->conn, &err);
        } else {
            struct spec_method ok = {.id = SPEC_TX_COMMIT_OK};
            channel_send(ch, &ok);
        }
        ch->commit_wait_batch = 0;
        ch->commit_owed = false;
        ch->tx_replica_failed = false;
    }
    return ch->waits_count > 0 || ch->commit_wait_batch != 0;
}

int channel_confirm_select(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    if (m->id != SPEC_CONFIRM_SELECT)
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    if (ch->tx_mode)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m->id,
                          "cannot switch from tx to confirm mode");
    ch->confirm_mode = true;
    if (m->args.confirm_select.nowait)
        return 0;
    struct spec_method ok = {.id = SPEC_CONFIRM_SELECT_OK};
    return channel_send(ch, &ok);
}

/* ---- routing ---- */

static void send_return(struct channel *ch, struct message *msg)
{
    static const char text[] = "NO_ROUTE";
    struct spec_method m = {.id = SPEC_BASIC_RETURN};
    m.args.basic_return.reply_code = SPEC_NO_ROUTE;
    m.args.basic_return.reply_text = (struct proto_bytes){(const uint8_t *)text, sizeof text - 1};
    m.args.basic_return.exchange = msg->exchange;
    m.args.basic_return.routing_key = msg->routing_key;
    connection_send_content(ch->conn, ch->number, &m, msg->header, msg->body, msg->body_size, message_retain_cb,
                            message_release_cb, msg);
}

/* Routes msg and enqueues it. Returns 0 (with *accepted false when a reject-publish queue
 * refused it), or -1 with err filled (missing or internal exchange). */
/* The write permission on exchange: 0, or -1 with 403 in err. */
static int check_write(struct channel *ch, struct proto_bytes exchange, struct reply_error *err)
{
    if (ch->write_ok_len == exchange.len + 1 && memcmp(ch->names->write_ok, exchange.ptr, exchange.len) == 0)
        return 0;
    if (channel_check_access(ch, ACCESS_WRITE, "exchange", exchange, SPEC_BASIC_PUBLISH, err) != 0)
        return -1;
    /* Like RabbitMQ's per-channel permission cache: the last exchange allowed (not kept
     * when out of memory: the check then runs again next time). */
    struct channel_names *names = channel_names(ch);
    if (names) {
        memcpy(names->write_ok, exchange.ptr, exchange.len);
        ch->write_ok_len = (uint16_t)(exchange.len + 1);
    }
    return 0;
}

/* Routes and enqueues msg (publish seq). *replica: the handle of its enqueue on replicated
 * quorum queues, which its confirm waits for (0: none). */
static int deliver_message(struct channel *ch, struct message *msg, bool mandatory, uint64_t seq, bool *accepted,
                           uint64_t *replica, struct reply_error *err)
{
    *accepted = true;
    *replica = 0;
    if (check_write(ch, msg->exchange, err) != 0)
        return -1;
    bool routed;
    struct queue *pressured = NULL;
    struct server *server = connection_server(ch->conn);
    uint64_t flow_bound = server_config(server)->flow_queue_bytes;
    struct cluster_queues *replicas = server_cluster_queues(server);
    struct route_set replicated = {0};
    if (publish_route_message(ch->vhost, &ch->route_memo, &ch->targets, msg, channel_now(ch), mandatory, &routed,
                              accepted, flow_bound, &pressured, replicas, &replicated, err) != 0) {
        route_set_free(&replicated);
        return -1;
    }
#ifdef WARREN_HAVE_CLUSTER
    if (replicated.count) {
        bool waits = ch->confirm_mode || ch->tx_committing;
        *replica = cluster_queues_enqueue(replicas, ch->vhost, (struct queue *const *)replicated.items,
                                          replicated.count, msg,
                                          !waits ? NULL : ch->tx_committing ? tx_replica_applied : replica_applied, ch,
                                          seq);
        if (*replica == 0)
            *accepted = false; /* out of memory: nacked */
        else if (!waits)
            *replica = 0;
    }
#endif
    route_set_free(&replicated);
    if (pressured) {
        flow_note_pressure(connection_flow(ch->conn), pressured);
        queue_release(pressured);
    }
    ch->stats.publish++;
    if (!routed && mandatory) {
        ch->stats.return_unroutable++;
        send_return(ch, msg);
    } else if (!routed) {
        ch->stats.drop_unroutable++;
    }
    return 0;
}

int publish_route_message(struct vhost *vhost, struct vhost_route_memo *memo, struct route_set *targets,
                          struct message *msg, uint64_t now, bool mandatory, bool *routed, bool *accepted,
                          uint64_t flow_bound, struct queue **pressured, struct cluster_queues *replicas,
                          struct route_set *replicated, struct reply_error *err)
{
#ifndef WARREN_HAVE_CLUSTER
    (void)replicas, (void)replicated;
#endif
    *accepted = true;
    int direct = direct_reply_deliver(vhost, msg);
    if (direct >= 0) {
        *routed = direct > 0;
        return 0;
    }
    if (vhost_route_memo(vhost, memo, msg->exchange, msg, targets, err) != 0)
        return -1;
    *routed = targets->count > 0;
    if (!*routed)
        vhost_route_unroutable(memo, mandatory); /* the exchange's return/drop counters */
    for (size_t i = 0; i < targets->count; i++) {
        struct queue *q = targets->items[i];
#ifdef WARREN_HAVE_CLUSTER
        if (cluster_queues_replicated(replicas, q)) {
            /* a classic queue homed elsewhere: its link is the backlog a publisher can outrun
             * (the flow check then finds the queue itself empty and resumes after FLOW_CHECK_MS,
             * so a publisher above the bound reads in short bursts) */
            if (pressured && !*pressured && cluster_queues_pressured(replicas, vhost, q, flow_bound)) {
                queue_retain(q);
                *pressured = q;
            }
            if (replicated) {
                if (route_set_add(replicated, q) < 0)
                    *accepted = false;
            } else if (cluster_queues_enqueue(replicas, vhost, &q, 1, msg, NULL, NULL, 0) == 0) {
                *accepted = false;
            }
            continue;
        }
#endif
        if (queue_publish(q, msg, now) != 0)
            *accepted = false;
        else
            queue_dispatch(q, now);
        /* Looked at while q is known to be alive (a later queue's dispatch may delete it);
         * the reference keeps it for the caller. */
        if (pressured && !*pressured && flow_queue_pressured(q, flow_bound)) {
            queue_retain(q);
            *pressured = q;
        }
    }
    return 0;
}

static int complete_publish(struct channel *ch, struct reply_error *err)
{
    struct message *msg = ch->publishing;
    ch->publishing = NULL;
    ch->stage = PUBLISH_IDLE;
    uint64_t seq = ch->publish_seq;
    if (ch->tx_mode) {
        struct tx_publish *p = malloc(sizeof *p);
        if (!p) {
            message_release(msg);
            return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory");
        }
        p->msg = msg;
        p->mandatory = ch->publish_mandatory;
        p->next = NULL;
        *ch->tx_publishes_tail = p;
        ch->tx_publishes_tail = &p->next;
        return 0;
    }
    bool accepted;
    uint64_t replica;
    struct persistence *p = server_persistence(connection_server(ch->conn));
    struct persistence_mark mark = persistence_mark(p);
    int rc = deliver_message(ch, msg, ch->publish_mandatory, seq, &accepted, &replica, err);
    message_release(msg);
    if (rc != 0)
        return rc;
    bool lost;
    uint64_t batch = persistence_wait_batch(p, mark, &lost);
    if (batch && persistence_backlogged(p, server_config(connection_server(ch->conn))->flow_queue_bytes))
        flow_note_disk(connection_flow(ch->conn)); /* it wrote records behind a backlog: flow.h */
    if (ch->confirm_mode)
        confirm(ch, seq, accepted && !lost, batch, replica);
    return 0;
}

/* Forgets the message being assembled after its header was refused. */
static void forget_publishing(struct channel *ch)
{
    message_release(ch->publishing);
    ch->publishing = NULL;
    ch->stage = PUBLISH_IDLE;
}

static int content_header(struct channel *ch, const struct frame *f, struct reply_error *err)
{
    struct spec_content_header h;
    if (f->size < 12) /* no class, weight and body size: RabbitMQ's frame error, on no method */
        return reply_fail(err, SPEC_FRAME_ERROR, 0, "content header of %u bytes is too short", f->size);
    int rc = spec_content_header_decode(f->payload, f->size, &h);
    if (rc != 0)
        return reply_fail(err, proto_error_reply_code(rc), SPEC_BASIC_PUBLISH, "cannot decode content header: %s",
                          proto_strerror(rc));
    if (h.class_id != SPEC_CLASS_BASIC)
        return reply_fail(err, SPEC_UNEXPECTED_FRAME, SPEC_BASIC_PUBLISH,
                          "expected content header for class 60, got one for class %u instead", h.class_id);
    /* channel_publish allocated the names before this header was expected. */
    struct proto_bytes exchange = {(const uint8_t *)ch->names->publish_exchange, ch->publish_exchange_len};
    uint64_t max = server_config(connection_server(ch->conn))->max_message_size;
    if (h.body_size > max)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "message size %llu is larger than configured max size %llu",
                          (unsigned long long)h.body_size, (unsigned long long)max);
    /* RabbitMQ's basic.publish checks, in its order: size, write permission, the exchange
     * (404 missing, 403 internal), then the properties (user_id, expiration); the exchange is
     * checked at publish time in a transaction too, not at commit. */
    if (check_write(ch, exchange, err) != 0 || vhost_publish_check(ch->vhost, &ch->route_memo, exchange, err) != 0)
        return -1;
    if (h.props.flags & SPEC_BASIC_USER_ID_FLAG) {
        /* RabbitMQ validates user_id against the login so consumers can trust it. */
        const char *user = connection_user(ch->conn);
        struct proto_bytes u = h.props.user_id;
        if (u.len != strlen(user) || memcmp(u.ptr, user, u.len) != 0)
            return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                              "user_id property set to '%.*s' but authenticated user was '%s'", (int)u.len,
                              (const char *)u.ptr, user);
    }
    struct proto_bytes key = {(const uint8_t *)ch->names->publish_key, ch->publish_key_len};
    struct proto_bytes header = {f->payload, f->size};
    uint8_t rewritten[FRAME_MIN_SIZE * 2];
    if ((h.props.flags & SPEC_BASIC_REPLY_TO_FLAG) && direct_reply_is_queue(h.props.reply_to)) {
        if (f->size > FRAME_MIN_SIZE)
            return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH, "content header too large");
        if (direct_reply_rewrite(ch, &h, rewritten, sizeof rewritten, &header, err) < 0)
            return -1;
    }
    ch->publishing = message_begin(exchange, key, header, &h.props, h.body_size);
    if (!ch->publishing)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory for a %llu-byte message",
                          (unsigned long long)h.body_size);
    if (ch->publishing->has_expiration == false && (h.props.flags & SPEC_BASIC_EXPIRATION_FLAG)) {
        struct proto_bytes e = h.props.expiration;
        forget_publishing(ch);
        /* RabbitMQ's reasons: a leading '-' is a negative value, anything else not an integer. */
        if (e.len > 1 && e.ptr[0] == '-')
            return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                              "invalid expiration '%.*s': {value_negative,%.*s}", (int)e.len, (const char *)e.ptr,
                              (int)e.len, (const char *)e.ptr);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH, "invalid expiration '%.*s': no_integer",
                          (int)e.len, (const char *)e.ptr);
    }
    /* Then what RabbitMQ's rabbit_basic:message refuses, after the expiration: a CC or BCC
     * header that is not an array, a delivery mode other than 1 or 2. */
    const char *route_header;
    uint8_t route_type;
    if ((h.props.flags & SPEC_BASIC_HEADERS_FLAG) &&
        message_check_sender_routes(h.props.headers, &route_header, &route_type) != 0) {
        forget_publishing(ch);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "invalid message: {unacceptable_type_in_header,\"%s\",%s}", route_header,
                          arguments_type_name(route_type));
    }
    if ((h.props.flags & SPEC_BASIC_DELIVERY_MODE_FLAG) && h.props.delivery_mode != 1 && h.props.delivery_mode != 2) {
        forget_publishing(ch);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "invalid message: {delivery_mode_unknown,%u}", (unsigned)h.props.delivery_mode);
    }
    ch->body_received = 0;
    ch->stage = PUBLISH_AWAIT_BODY;
    if (h.body_size == 0)
        return complete_publish(ch, err);
    return 0;
}

int channel_content_frame(struct channel *ch, const struct frame *f, struct reply_error *err)
{
    if (f->type == FRAME_HEADER) {
        /* RabbitMQ names basic.publish (60.40) once a publish began, no method before */
        if (ch->stage != PUBLISH_AWAIT_HEADER)
            return reply_fail(err, SPEC_UNEXPECTED_FRAME, ch->stage == PUBLISH_IDLE ? 0 : SPEC_BASIC_PUBLISH,
                              ch->stage == PUBLISH_IDLE ? "expected method frame, got non method frame instead"
                                                        : "expected content body, got non content body frame instead");
        return content_header(ch, f, err);
    }
    if (ch->stage != PUBLISH_AWAIT_BODY)
        return reply_fail(err, SPEC_UNEXPECTED_FRAME, ch->stage == PUBLISH_IDLE ? 0 : SPEC_BASIC_PUBLISH,
                          ch->stage == PUBLISH_IDLE ? "expected method frame, got non method frame instead"
                                                    : "expected content header for class 60, got non content header frame instead");
    uint64_t announced = ch->publishing->body_size;
    if (f->size > announced - ch->body_received)
        return reply_fail(err, SPEC_FRAME_ERROR, SPEC_BASIC_PUBLISH, "content body exceeds the announced size %llu",
                          (unsigned long long)announced);
    /* The body's one copy; room grows with what arrives, not with what was announced. */
    if (message_append_body(&ch->publishing, ch->body_received, f->payload, f->size) != 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory for a %llu-byte message",
                          (unsigned long long)announced);
    ch->body_received += f->size;
    if (ch->body_received == announced)
        return complete_publish(ch, err);
    return 0;
}

/* ---- transactions ---- */

static int tx_commit(struct channel *ch, struct reply_error *err)
{
    struct persistence *p = server_persistence(connection_server(ch->conn));
    struct persistence_mark mark = persistence_mark(p);
    int rc = 0;
    channel_settle_held(ch);
    /* Publishes to queues whose messages live elsewhere are waited for, each by its order in the
     * commit, as a confirm waits: commit-ok promises they are taken (on a majority's disk, or
     * on a classic queue's home's). */
    uint32_t count = 0;
    for (struct tx_publish *t = ch->tx_publishes; t; t = t->next)
        count++;
    if (count > ch->tx_replica_slots) {
        uint64_t *grown = realloc(ch->tx_replicas, count * sizeof *grown);
        if (!grown)
            return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_TX_COMMIT, "out of memory");
        ch->tx_replicas = grown;
        ch->tx_replica_slots = count;
    }
    if (count)
        memset(ch->tx_replicas, 0, ch->tx_replica_slots * sizeof *ch->tx_replicas);
    ch->tx_replica_pending = 0;
    ch->tx_replica_failed = false;
    ch->tx_committing = true;
    for (uint32_t n = 1; ch->tx_publishes && rc == 0; n++) {
        struct tx_publish *p = ch->tx_publishes;
        ch->tx_publishes = p->next;
        bool accepted;
        uint64_t replica;
        rc = deliver_message(ch, p->msg, p->mandatory, n, &accepted, &replica, err);
        if (rc == 0 && replica) {
            ch->tx_replicas[n - 1] = replica;
            ch->tx_replica_pending++;
        }
        message_release(p->msg);
        free(p);
    }
    ch->tx_committing = false;
    ch->tx_publishes_tail = &ch->tx_publishes;
    if (rc != 0) {
        channel_drop_publishing(ch);
        return rc;
    }
    channel_dispatch_consumers(ch);
    bool lost;
    uint64_t batch = persistence_wait_batch(p, mark, &lost);
    if (lost) {
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_TX_COMMIT,
                          "the durable store could not record the transaction (out of memory)");
    }
    if (batch != 0 || ch->tx_replica_pending || ch->tx_replica_failed) {
        /* commit-ok only once the transaction's messages are on disk, here and elsewhere. */
        ch->commit_wait_batch = batch;
        ch->commit_owed = true;
        if (batch)
            server_wait_durable(connection_server(ch->conn), ch);
        else
            channel_durable_progress(ch); /* a failure shows now */
        return 1;
    }
    return 0;
}

int channel_tx_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    uint32_t ok_id;
    switch (m->id) {
    case SPEC_TX_SELECT:
        if (ch->confirm_mode)
            return reply_fail(err, SPEC_PRECONDITION_FAILED, m->id, "cannot switch from confirm to tx mode");
        ch->tx_mode = true;
        ok_id = SPEC_TX_SELECT_OK;
        break;
    case SPEC_TX_COMMIT: {
        if (!ch->tx_mode)
            return reply_fail(err, SPEC_PRECONDITION_FAILED, m->id, "channel is not transactional");
        int rc = tx_commit(ch, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return 0; /* commit-ok follows when the batch is durable */
        ok_id = SPEC_TX_COMMIT_OK;
        break;
    }
    case SPEC_TX_ROLLBACK:
        if (!ch->tx_mode)
            return reply_fail(err, SPEC_PRECONDITION_FAILED, m->id, "channel is not transactional");
        channel_drop_publishing(ch);
        ok_id = SPEC_TX_ROLLBACK_OK;
        break;
    default:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    }
    struct spec_method ok = {.id = ok_id};
    return channel_send(ch, &ok);
}
