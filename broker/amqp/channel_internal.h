/* broker/amqp/channel_internal.h: the channel's state, shared by the files that implement its
 * methods: channel.c (lifecycle, dispatch), declare.c (exchange and queue classes), publish.c
 * (content assembly, routing, confirms, transactions), consume.c (consumers, deliveries,
 * acknowledgements). Not for other layers. */
#ifndef WARREN_CHANNEL_INTERNAL_H
#define WARREN_CHANNEL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "queue.h"
#include "reply.h"
#include "route_set.h"
#include "spec.h"
#include "stats.h"
#include "uthash.h"
#include "vhost.h"

struct connection;
struct frame;
struct message;
struct spec_method;
struct vhost;

enum channel_state {
    CHANNEL_OPENING, /* created by a frame on a new number; only channel.open is valid */
    CHANNEL_OPEN,
    CHANNEL_CLOSING, /* we sent channel.close; waiting for close-ok */
    CHANNEL_CLOSED,  /* may be destroyed and its number reused */
};

enum publish_stage { PUBLISH_IDLE, PUBLISH_AWAIT_HEADER, PUBLISH_AWAIT_BODY };

/* A basic.consume on this channel. */
struct consumer {
    char tag[256];
    uint8_t tag_len;
    struct channel *channel;
    struct queue *queue; /* a reference is held */
    bool no_ack;
    bool exclusive;
    int32_t priority;  /* x-priority */
    uint16_t prefetch; /* basic.qos global=false value when the consumer was created; 0 = none */
    uint32_t unacked;
    /* Of a replicated quorum queue (cluster_queues.h): its deliveries come from the cluster's
     * log, not from queue_dispatch. Cancelled (basic.cancel) while it still had unacked
     * deliveries, it leaves the table but lives on in the channel's cancelled list, so that
     * they can still be settled under its tag; freed with the last of them. */
    bool replicated;
    bool cancelled;
    struct consumer *next_cancelled;
    UT_hash_handle hh;
};

/* A delivery not yet acknowledged (consumer NULL for basic.get). */
struct delivery {
    uint64_t tag;
    struct queue *queue; /* a reference is held; NULL once settled */
    struct consumer *consumer;
    struct queue_entry entry;
    /* Settled inside an open transaction: outstanding until tx.commit settles it with
     * held_mode, or tx.rollback lets go; to a later ack it is already gone (RabbitMQ's
     * collect_acks takes it off the unacked list at once). */
    bool held;
    uint8_t held_mode; /* enum queue_settle_mode */
    bool fetched;      /* from basic.get: settled with queue_settle_fetched */
    bool replicated;   /* from a replicated quorum queue: entry.seq is its id there, and a
                        * settle is a command (cluster_queues.h) */
    uint64_t at_ms;    /* loop time it was sent (delivery_ring_push) */
};

/* Unacked deliveries in delivery-tag order: a ring buffer, so tracking allocates nothing in
 * steady state. Settled entries in the middle are holes (queue == NULL) until they reach the
 * head. */
struct delivery_ring {
    struct delivery *items;
    uint32_t head, count, capacity; /* capacity is a power of two */
};

/* A publisher confirm that must wait for its batch to be durable. */
struct confirm_wait {
    uint64_t seq;
    uint64_t batch; /* 0: nothing to wait for (but ordered behind earlier waits) */
    uint64_t replica; /* > 0: the enqueue on replicated quorum queues, not yet applied here (its
                       * handle, cluster_queues.h; 1: nobody to forget) */
    bool ok;
};

/* A publish held back by tx.select until tx.commit. */
struct tx_publish {
    struct message *msg;
    bool mandatory;
    struct tx_publish *next;
};

/* The names a channel remembers between frames, allocated on first use (channel_names) so
 * that a channel that only sits open holds none of them. Their lengths are in the channel; a
 * nonzero length means the block exists. */
struct channel_names {
    char publish_exchange[256];
    char publish_key[256];
    char reply_tag[256];
    char write_ok[256];
    char last_queue[256];
};

struct channel {
    struct connection *conn;
    struct vhost *vhost;
    uint16_t number;
    enum channel_state state;
    bool active; /* channel.flow */

    /* Content assembly: basic.publish, then a header frame, then body frames. */
    enum publish_stage stage;
    bool publish_mandatory;
    uint8_t publish_exchange_len; /* names->publish_exchange */
    uint8_t publish_key_len;      /* names->publish_key */
    struct message *publishing;
    uint64_t body_received;
    struct route_set targets; /* reused for every publish */
    struct vhost_route_memo route_memo; /* the exchange of the last publish */

    /* Publisher confirms: sequence numbers, and acks coalesced until the end of the read. */
    bool confirm_mode;
    uint64_t publish_seq;
    uint64_t confirmed_upto; /* acks for 1..confirmed_upto are decided but maybe not yet sent */
    uint64_t confirm_sent_upto;

    /* Confirms and commit-ok waiting for the durable store, in publish order. */
    struct confirm_wait *waits;
    uint32_t waits_head, waits_count, waits_cap; /* ring; cap is a power of two */
    uint64_t commit_wait_batch;                 /* tx.commit-ok due once this batch is durable */
    bool commit_owed;                           /* a tx.commit-ok waits (the batch, the replicas) */
    /* A commit's enqueues on queues whose messages live elsewhere (quorum queues, classic ones
     * homed on other nodes), by order in the commit: their handles until each is done (0 then);
     * commit-ok waits for every one, as a confirm does. */
    uint64_t *tx_replicas;
    uint32_t tx_replica_slots, tx_replica_pending;
    bool tx_replica_failed;
    bool tx_committing;                         /* tx_commit is routing its publishes */
    struct channel *durable_prev, *durable_next; /* in the server's list of waiting channels */
    bool durable_waiting;

    /* Transactions. */
    bool tx_mode;
    struct tx_publish *tx_publishes, **tx_publishes_tail;

    /* Consumers and deliveries. */
    struct consumer *consumers;
    uint16_t prefetch_count;  /* for consumers created from now on (global=false) */
    uint16_t global_prefetch; /* shared by the channel (global=true) */
    uint64_t next_delivery_tag;
    struct delivery_ring unacked;
    uint32_t unacked_live; /* deliveries in the ring not yet settled */

    /* Direct reply-to: the channel's reply consumer, when it has one. */
    struct reply_slot *reply_slot;
    uint8_t reply_tag_len; /* names->reply_tag */

    /* The last exchange this channel was allowed to publish to (names->write_ok; length + 1,
     * 0: none). */
    uint16_t write_ok_len;

    /* RabbitMQ's shortcut: an empty queue name means the last queue declared here
     * (names->last_queue). */
    uint8_t last_queue_len;

    struct channel_names *names; /* NULL until a name is first kept */

    /* Replicated quorum queues (cluster_queues.h): the channel's id in consumer keys (0: none
     * yet), consumers cancelled with deliveries outstanding, and the basic.get waiting for its
     * command (NULL: none). */
    uint64_t replica_id;
    struct consumer *cancelled_replicas;
    struct replica_get *replica_get;

    /* Message counters (stats.h), plain increments beside the work they count; the
     * connection, vhost and broker totals are sums over channels, not counted again. */
    struct stats_channel stats;
    struct stats_channel_series series;
};

/* Who an operation acts for, and so which permission checks it passes: a channel's user in
 * its vhost, or (user NULL) the broker's operator, who passes every check. The management API
 * (operate.c) acts through the same functions as the AMQP methods below. */
struct access;
struct actor {
    const struct access *access;
    const char *user;  /* NULL: no permission check */
    const char *vhost;
};

/* The permission check of channel_check_access for any actor: 0, or -1 with 403. */
int actor_check(const struct actor *who, int what, const char *kind, struct proto_bytes name, uint32_t method_id,
                struct reply_error *err);
/* The actor of a channel: its connection's user in its vhost. */
/* ch's name block, allocated on first call; NULL when out of memory. */
struct channel_names *channel_names(struct channel *ch);
struct actor channel_actor(const struct channel *ch);

/* The checked operations behind the exchange and queue methods (declare.c): permissions as
 * RabbitMQ checks them (configure to declare or delete; for a new exchange with an alternate
 * exchange or a new queue with a dead-letter exchange, read on it and write on that exchange;
 * to bind, write on the destination and read on the source), then the vhost's rules. Each
 * returns 0, or -1 with err filled. owner: the connection exclusive queues belong to (NULL:
 * none, so another connection's exclusive queue answers 405). */
int declare_exchange_as(const struct actor *who, struct vhost *vhost, const struct exchange_declare *d,
                        struct reply_error *err);
int delete_exchange_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, bool if_unused,
                       struct reply_error *err);
int bind_as(const struct actor *who, struct vhost *vhost, bool to_exchange, struct proto_bytes destination,
            struct proto_bytes source, struct proto_bytes key, struct proto_bytes arguments, void *owner, bool unbind,
            struct reply_error *err);
int declare_queue_as(const struct actor *who, struct vhost *vhost, const struct queue_declare *d, struct queue **out,
                     struct reply_error *err);
int delete_queue_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner, bool if_unused,
                    bool if_empty, uint32_t *count, struct reply_error *err);
int purge_queue_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner,
                   uint32_t *count, struct reply_error *err);
/* The permission checks alone of the operations above (what the cluster path checks before it
 * proposes): 0, or -1 with 403 in err. */
int declare_exchange_allowed(const struct actor *who, struct vhost *vhost, const struct exchange_declare *d,
                             struct reply_error *err);
int delete_exchange_allowed(const struct actor *who, struct vhost *vhost, struct proto_bytes name,
                            struct reply_error *err);
int bind_allowed(const struct actor *who, bool to_exchange, struct proto_bytes destination, struct proto_bytes source,
                 bool unbind, struct reply_error *err);
int declare_queue_allowed(const struct actor *who, struct vhost *vhost, const struct queue_declare *d,
                          struct reply_error *err);

/* declare_cluster.c (built with the cluster only; called while one is configured): an exchange
 * or queue method that changes replicated definitions is checked here (permissions and the
 * model's rules against this node's copy), then proposed to the cluster; the connection handles
 * no further frame until the command is applied here, and then the -ok or the error is sent.
 * Returns 0 (proposed: the answer comes later), -1 with err (refused before proposing), or 1
 * when the method is not replicated (passive, exclusive queue, purge...) and the caller handles
 * it as without a cluster. */
int declare_cluster_method(struct channel *ch, const struct spec_method *m, struct reply_error *err);
/* A method's error reported after the method returned (a cluster result): a soft error closes
 * the channel, a hard one the connection, as channel_handle_frame decides for a method's error. */
void channel_raise(struct channel *ch, const struct reply_error *err);

/* publish.c: routes msg (through direct reply-to or the vhost's exchanges, memo and targets
 * being the publisher's reusable state), enqueues it on every queue reached and dispatches
 * them at loop time now. *routed: some queue (or reply consumer) took it; *accepted false when
 * a reject-publish queue refused it; an unroutable message counts on the exchange as returned
 * (mandatory) or dropped. Returns 0, or -1 with err (missing or internal exchange). No
 * permission check: the caller made it. pressured (may be NULL): set to the first queue reached
 * that is under flow pressure at flow_bound bytes (flow.h), with a reference the caller
 * releases; left alone when none is. replicas (NULL without a cluster): the queues whose
 * messages live in the cluster's log (cluster_queues.h) are not enqueued here but added to
 * replicated, for the caller to propose with a confirm; replicated NULL: proposed here, with
 * nobody waiting. */
struct cluster_queues;
int publish_route_message(struct vhost *vhost, struct vhost_route_memo *memo, struct route_set *targets,
                          struct message *msg, uint64_t now, bool mandatory, bool *routed, bool *accepted,
                          uint64_t flow_bound, struct queue **pressured, struct cluster_queues *replicas,
                          struct route_set *replicated, struct reply_error *err);

/* consume.c: basic.get's checked part: read permission, the queue (owner as above), touched
 * and asked for its next message at loop time now. Returns 0 with *q set and *got telling
 * whether entry was filled (ownership as queue_get), or -1 with err filled. */
int get_message_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner, bool no_ack,
                   uint64_t now, struct queue **q, struct queue_entry *entry, bool *got, struct reply_error *err);

/* Permission check for the connection's user on resource `name` of kind "queue" or
 * "exchange" in the channel's vhost: 0, or -1 with 403 ACCESS_REFUSED (RabbitMQ's text).
 * what is ACCESS_CONFIGURE, ACCESS_WRITE or ACCESS_READ (broker/model/access.h). The default
 * exchange ("") is checked as "amq.default", as in RabbitMQ. */
int channel_check_access(struct channel *ch, int what, const char *kind, struct proto_bytes name, uint32_t method_id,
                         struct reply_error *err);

/* Replaces an empty queue name by the channel's last declared queue. Returns 0, or -1 with
 * 404 when nothing was declared yet. */
int channel_expand_queue_name(struct channel *ch, struct proto_bytes *name, uint32_t method_id,
                              struct reply_error *err);

/* Sends a method on this channel. Returns 0 or a negative errno. */
int channel_send(struct channel *ch, const struct spec_method *m);

/* Loop time in ms. */
uint64_t channel_now(const struct channel *ch);

/* declare.c: exchange.* and queue.* methods. */
/* The model's view of a declare method's fields (borrowing its bytes); owner: the connection
 * an exclusive queue belongs to. */
struct exchange_declare exchange_declare_from(const struct spec_exchange_declare *a);
struct queue_declare queue_declare_from(const struct spec_queue_declare *a, void *owner);
int channel_exchange_method(struct channel *ch, const struct spec_method *m, struct reply_error *err);
int channel_queue_method(struct channel *ch, const struct spec_method *m, struct reply_error *err);
/* The same methods on this node's model only, never through the cluster (declare_cluster.c
 * runs a passive declare here once its read barrier is applied). */
int channel_exchange_method_here(struct channel *ch, const struct spec_method *m, struct reply_error *err);
int channel_queue_method_here(struct channel *ch, const struct spec_method *m, struct reply_error *err);
/* queue.declare on this node's model without answering: *out is the queue, and the channel's
 * last queue its name. 0, or -1 with err. */
int channel_queue_declare_here(struct channel *ch, const struct spec_queue_declare *a, struct queue **out,
                               struct reply_error *err);

/* publish.c: basic.publish and its content frames, confirm.* and tx.*. */
int channel_publish(struct channel *ch, const struct spec_method *m, struct reply_error *err);
int channel_content_frame(struct channel *ch, const struct frame *f, struct reply_error *err);
bool channel_content_pending(const struct channel *ch);
int channel_confirm_select(struct channel *ch, const struct spec_method *m, struct reply_error *err);
int channel_tx_method(struct channel *ch, const struct spec_method *m, struct reply_error *err);
/* Sends the publisher acks decided since the last call as one basic.ack (multiple). */
void channel_flush_confirms(struct channel *ch);
void channel_drop_publishing(struct channel *ch);

/* Durable batches progressed: sends the confirms (and commit-ok) that became due. Returns
 * true while the channel still waits for more. */
bool channel_durable_progress(struct channel *ch);

/* consume.c: qos, consume, cancel, get, ack, nack, reject, recover. */
int channel_basic_method(struct channel *ch, const struct spec_method *m, struct reply_error *err);
/* tx.commit: settles the deliveries the transaction's acks, nacks and rejects held. */
void channel_settle_held(struct channel *ch);
/* tx.rollback: the held deliveries are outstanding again. */
void channel_release_held(struct channel *ch);
/* Offers ready messages again to every queue this channel consumes from. */
void channel_dispatch_consumers(struct channel *ch);
/* RabbitMQ's consumer_timeout: when ch's oldest outstanding delivery was sent more than
 * timeout_ms before now_ms, ch is closed with 406 PRECONDITION_FAILED and RabbitMQ's text (its
 * deliveries are requeued). 0: no timeout. */
void channel_check_ack_timeout(struct channel *ch, uint64_t now_ms, uint64_t timeout_ms);

/* Cancels every consumer and requeues every unacked delivery (channel or connection close). */
void channel_release_consumers(struct channel *ch);
/* Server hook: queue is being deleted; cancel consumer c (notifying the client if it can). */
void consumer_queue_deleted(struct consumer *c);

/* consume.c, replicated quorum queues (cluster_queues.h). An effect: message id of q goes to
 * consumer tag of ch (an empty tag: the basic.get the channel waits for); takes over msg's
 * reference. q's replicated state went (queue.delete): its consumers here are cancelled. */
void channel_replica_deliver(struct channel *ch, struct queue *q, struct proto_bytes tag, uint64_t id,
                             struct message *msg, uint32_t delivery_count);
void channel_replica_queue_gone(struct channel *ch, struct proto_bytes queue);
/* This node was declared down while alive: every replicated consumer of ch checks out again. */
void channel_replica_reattach(struct channel *ch);
/* publish.c: the channel goes: confirms and a commit waiting for replicated enqueues are
 * forgotten. */
void channel_forget_replica_confirms(struct channel *ch);

/* Gives back everything the channel holds. Idempotent; the channel stays allocated. */
void channel_release_resources(struct channel *ch);

#endif
