/* broker/model/queue.h: a message queue: ready messages in FIFO (or priority) order, the
 * consumers it dispatches to, and the count of messages delivered but not yet settled.
 * Knows nothing of sockets or channels: a consumer is an opaque pointer with two callbacks.
 *
 * Ownership: the queue holds one reference on each ready message. Every delivery (consumer
 * or basic.get) hands that reference over to the receiver:
 *   - ack mode: the receiver owns the entry (keep a copy of the struct) and its reference
 *     until it calls queue_settle, which takes the reference back; never release it yourself;
 *   - no-ack mode: the queue has already forgotten the entry; the receiver owns only the
 *     message reference and calls message_release when done; never queue_settle it.
 * Queues are reference-counted: whoever holds unsettled entries of a queue (a channel) holds
 * a reference on it, so that it can still settle them after the queue is deleted.
 *
 * Callbacks (consumer ops, hooks) may call back into this queue: publish, settle, remove a
 * consumer, even delete it. The queue keeps no pointer into its storage across a callback and
 * holds a reference on itself while it runs one.
 *
 * Paging (bounded memory). A durable queue given a pager keeps at most pager->ram_messages
 * ready messages, and at most pager->ram_bytes of their bodies (one message at least, whatever
 * its size), in memory. Past that, a published message joins the queue's "tail": it is
 * written to the durable store (persistent or not) and the queue keeps only a count; the
 * tail is read back in order (pager->page_in) when the in-memory part falls to half of either
 * bound, as many messages as fit under both (by the tail's average size). The tail
 * always follows every in-memory ready message, so order is kept; requeued messages return
 * to memory (for a quorum queue, whose returns go to the back, that is behind the messages in
 * memory but ahead of the tail: RabbitMQ would put them after the tail too). Not paged: priority queues and queues with x-max-length-bytes (their order or
 * limits need every message at hand). After a restart every stored entry of a durable queue
 * starts in the tail, so recovery reads nothing but what will soon be delivered. */
#ifndef WARREN_QUEUE_H
#define WARREN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"
#include "stats.h"

struct message;
struct queue;

/* One message as the queue tracks it; a small value copied between rings, never allocated
 * on its own. */
struct queue_entry {
    struct message *msg;
    uint64_t seq;        /* position in the queue: requeued entries return to their place */
    uint64_t expires_at; /* loop-clock ms, MESSAGE_NO_EXPIRY when none */
    uint32_t delivery_count; /* times delivered before; > 0 means redelivered */
    uint32_t enqueued_ms;    /* loop-clock ms (low 32 bits, so ages up to 49 days) when it entered
                              * the queue; for a message read back from the store, its publication
                              * (wall clock) moved onto the loop clock. Fills the struct's padding. */
};

/* Why a message leaves the queue without being acknowledged (x-death "reason"). DELIVERY_LIMIT:
 * a quorum queue's message returned more than x-delivery-limit times. */
enum queue_drop_reason { QUEUE_DROP_REJECTED, QUEUE_DROP_EXPIRED, QUEUE_DROP_MAXLEN, QUEUE_DROP_DELIVERY_LIMIT };

/* The kinds of queue, x-queue-type (0, classic, is what a zeroed settings struct holds). */
enum queue_type { QUEUE_TYPE_CLASSIC, QUEUE_TYPE_QUORUM };

/* What sets a kind of queue apart: every difference in behaviour is a field here, read where
 * it matters, rather than tests of the type sprinkled around (the type itself only picks the
 * kind, and policies' apply-to). A quorum queue on one node is RabbitMQ 3.10's one-member Raft
 * group: a durable queue whose messages are all stored and confirmed once on disk, with
 * rabbit_fifo's returns (to the back, counted) and its refusals (in a cluster the same kind
 * will be backed by the replicated qq_fsm, docs/cluster.md). */
struct queue_kind {
    const char *name;        /* x-queue-type, and the management API's "type" */
    const char *module;      /* RabbitMQ's module, named in its error texts */
    const char *const *equivalent_keys; /* the arguments a redeclare must repeat (arguments.h) */
    bool raft_group;         /* a Raft group in RabbitMQ: its API shows a leader and members */
    bool persists_all;       /* every message is stored, whatever its delivery mode, and kept
                              * over a restart */
    bool returns_to_back;    /* a requeued message (QUEUE_REQUEUE) goes to the back of the queue,
                              * as if published again (RabbitMQ 3.10's quorum queues); else back
                              * to its original place (classic) */
    bool lost_returns_first; /* a returned message (QUEUE_RETURN: its channel closed) goes before
                              * every other ready message, behind those returned before it
                              * (rabbit_fifo's returns queue); else back to its place (classic) */
    bool delivery_count_header; /* deliveries say x-delivery-count (queue_delivery_count_header) */
    bool global_qos;         /* accepts consumers on a channel with a global prefetch */
    bool server_named;       /* may be declared with an empty name */
    bool transient_allowed;  /* may be non-durable, exclusive or auto-delete */
    bool conditional_delete; /* takes queue.delete if-unused and if-empty */
    bool exclusive_consumers; /* honours basic.consume's exclusive flag (RabbitMQ 3.10's quorum
                               * queues ignore it, against the spec) */
    bool single_active_get;  /* takes basic.get with x-single-active-consumer (quorum: 405) */
    bool gets_are_consumers; /* an unsettled basic.get counts as a consumer (queue_consumer_count) */
    bool waiting_counted;    /* with single active consumer, the waiting consumers count too
                              * (queue_consumer_count); rabbit_fifo counts the active one only */
    bool limit_after_dispatch; /* a requeue is judged against the length limits only once the
                                * next dispatch handed out what consumers take (rabbit_fifo checks
                                * its limits after each checkout); else at once (classic) */
    bool reject_over_limit;  /* x-overflow reject-publish as rabbit_fifo runs it: a publish is
                              * refused once the queue is over a limit (the one that took it over
                              * was taken) and until it is back at 80% of each; else refused when
                              * it would exceed a limit (classic) */
};

/* The kind of queue type (classic for an unknown value). */
const struct queue_kind *queue_kind_of(enum queue_type type);

/* What a consumer implements (the AMQP layer: a basic.consume on a channel). */
struct consumer_ops {
    /* May this consumer take msg now? (prefetch credit, output buffer room, channel flow)
     * msg NULL: may it take a message at all (a blocked consumer getting credit back). */
    bool (*has_credit)(void *consumer, const struct message *msg);
    /* Delivers entry (a temporary: copy what you keep). no_ack is the flag the consumer was
     * added with. In both modes the consumer now owns the message reference: ack mode until
     * queue_settle, no-ack mode until it calls message_release (the entry is already settled
     * and not counted as unacked). entry->delivery_count > 0 means redelivered. A nested
     * queue_dispatch of this queue from here returns at once (the running one continues). */
    void (*deliver)(void *consumer, struct queue *queue, const struct queue_entry *entry, bool no_ack);
    /* The queue is being deleted (queue_cancel_consumers): the consumer removes itself
     * (queue_remove_consumer) and tells whoever it serves. */
    void (*queue_deleted)(void *consumer);
};

/* What happens to a persistent message in a durable queue, for the durable store. */
enum queue_event {
    QUEUE_EVENT_ENQUEUED,  /* it entered the queue */
    QUEUE_EVENT_DELIVERED, /* it was handed to a consumer that must acknowledge it */
    QUEUE_EVENT_REMOVED,   /* it left for good: ack, no-ack delivery, reject, expiry, drop, purge */
};

/* Dead-lettering and other effects the queue cannot do itself. May be NULL members. */
struct queue_hooks {
    /* A message leaves the queue for reason (its reference is still held by the queue during
     * the call; the hook retains it if it keeps it). Purge and delete do not call it. With
     * x-overflow reject-publish-dlx it also runs (reason MAXLEN) for a refused publish, whose
     * reference the publisher holds. */
    void (*dropped)(void *ctx, struct queue *queue, struct message *msg, enum queue_drop_reason reason);
    /* The last consumer of an auto-delete queue went away (queue_remove_consumer). The queue
     * does not touch itself after this returns, so the hook may delete and release it. */
    void (*unused)(void *ctx, struct queue *queue);
    /* Durable queues only, persistent messages only: see enum queue_event. Not called for the
     * entries of a deleted queue (the owner records the deletion as a whole). */
    void (*persist)(void *ctx, struct queue *queue, struct message *msg, enum queue_event event);
    void *ctx;
    /* Durable queues only; NULL: everything stays in memory. Must outlive the queue. With it,
     * persist is also called for transient messages that entered the tail (ENQUEUED, so that
     * they are written) and for their later DELIVERED and REMOVED events; the store must have
     * copied the message when ENQUEUED returns, and set msg->stored. */
    const struct queue_pager *pager;
};

/* The durable store's side of paging (see the top of this file). */
struct queue_pager {
    /* Reads up to max stored entries of queue whose message ids are above after_id, in order,
     * handing each to queue_page_in. Returns how many it handed; *complete is set when every
     * record written so far was readable (so fewer than max means the tail ends there);
     * otherwise the pager calls queue_page_wake once more may be readable. */
    size_t (*page_in)(void *ctx, struct queue *queue, uint64_t after_id, size_t max, bool *complete);
    /* Every stored entry of queue above after_id leaves (a purge of the tail). */
    void (*page_purge)(void *ctx, struct queue *queue, uint64_t after_id);
    uint32_t ram_messages; /* ready messages kept in memory per paged queue (0: no paging) */
    uint64_t ram_bytes;    /* and their body bytes (0: no byte bound) */
    void *ctx;
};

/* Queue settings parsed from queue.declare's arguments (RabbitMQ's x-* names). */
struct queue_settings {
    bool durable, exclusive, auto_delete;
    int64_t message_ttl_ms;   /* x-message-ttl, -1 none */
    int64_t expires_ms;       /* x-expires, -1 none (enforced by the owner, kept here) */
    int64_t max_length;       /* x-max-length, -1 none */
    int64_t max_length_bytes; /* x-max-length-bytes, -1 none */
    bool overflow_reject;     /* x-overflow reject-publish or reject-publish-dlx (default drop-head) */
    bool overflow_reject_dlx; /* x-overflow reject-publish-dlx: refused publishes are dead-lettered */
    uint8_t max_priority;     /* x-max-priority, 0 = not a priority queue */
    bool single_active_consumer; /* x-single-active-consumer */
    bool has_dlx;             /* x-dead-letter-exchange given (see queue_dead_letter_exchange) */
    enum queue_type type;     /* x-queue-type */
    bool has_delivery_limit;  /* x-delivery-limit (quorum) given as an integer: a message */
    int64_t delivery_limit;   /* returned more times than this (>= 0) is dropped, dead-lettered
                               * with reason delivery_limit */
};

/* Parses and validates queue.declare's arguments (table contents) for the queue called name,
 * as RabbitMQ does, into the argument fields of *out (durable, exclusive and auto_delete are
 * left for the caller to set). Unknown arguments are ignored. Wrong types or values fill err
 * with 406 PRECONDITION_FAILED and RabbitMQ's text ("invalid arg 'x-message-ttl' for queue 'q'
 * in vhost '/': {value_negative,-1}", method id queue.declare) and return -1. x-queue-type
 * "classic" and "quorum" are accepted ("stream" gets RabbitMQ's text for an unknown type,
 * "unsupported queue type 'stream'"); as RabbitMQ 3.10, only the arguments the type takes are
 * checked, in its order, then any argument of another type is refused ("invalid arg
 * 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"). */
int queue_settings_parse(struct proto_bytes name, struct proto_bytes arguments, struct queue_settings *out,
                         struct reply_error *err);

/* The type x-queue-type names in arguments (table contents): classic unless "quorum". */
enum queue_type queue_settings_type(struct proto_bytes arguments);

/* A declare with an empty name (server_named) of a type that refuses one: 406 "Cannot declare
 * a server-named queue for type rabbit_quorum_queue" and -1, which RabbitMQ says before it
 * looks at any argument; else 0. */
int queue_settings_check_name(struct proto_bytes arguments, bool server_named, struct reply_error *err);

/* The declare's properties against the kind of queue, after queue_settings_parse and with
 * durable, exclusive and auto_delete set: 406 with RabbitMQ's text ("invalid property
 * 'non-durable' for queue 'q' in vhost '/'") and -1 when the kind refuses them (a quorum queue
 * is durable, not exclusive, not auto-delete); else 0. */
int queue_settings_check_kind(struct proto_bytes name, const struct queue_settings *settings, struct reply_error *err);

/* Creates a queue. name is copied; arguments (table contents) are copied and kept for
 * redeclare comparison and listing. Returns NULL on ENOMEM. refs starts at 1. */
struct queue *queue_create(struct proto_bytes name, const struct queue_settings *settings,
                           struct proto_bytes arguments, const struct queue_hooks *hooks);

/* Takes another reference (a channel holding unsettled entries, a dispatch in progress). */
void queue_retain(struct queue *queue);
/* Drops a reference; the last one frees the queue and releases every message it still holds. */
void queue_release(struct queue *queue);

/* Marks the queue deleted: consumers are detached (the caller cancels them first), ready
 * messages are released, later publishes and settles only drop references. Returns the number
 * of ready messages discarded. */
size_t queue_delete(struct queue *queue);
bool queue_is_deleted(const struct queue *queue);

/* The name, settings and declare arguments, owned by the queue (valid while it lives). */
struct proto_bytes queue_name(const struct queue *queue);
const struct queue_settings *queue_settings(const struct queue *queue);
struct proto_bytes queue_arguments(const struct queue *queue);

/* Policies (policy.h): replaces the settings in force with those parsed from effective, the
 * declare arguments merged with the queue's policies (policy_queue_arguments), copied. Kept as
 * declared: durable, exclusive, auto_delete, x-max-priority and x-single-active-consumer
 * (no policy key sets them). A lower length limit applies at once: with drop-head, messages
 * leave from the head and are dead-lettered (reason maxlen), as RabbitMQ does when a policy
 * lowers max-length; a new TTL applies to messages enqueued from then on. Redeclare checks
 * keep comparing the declare arguments (queue_arguments). Returns 0, or -1 with err filled
 * (invalid effective arguments, out of memory) and the settings unchanged. The drop may run
 * the dropped hook: the caller must not hold pointers the hook could invalidate. */
int queue_apply_arguments(struct queue *queue, struct proto_bytes effective, struct reply_error *err);
/* The arguments in force: the last ones queue_apply_arguments took, else the declare ones. */
struct proto_bytes queue_effective_arguments(const struct queue *queue);

/* x-dead-letter-exchange / x-dead-letter-routing-key in force (queue_effective_arguments):
 * true and *out (borrowed from the queue, valid until the next queue_apply_arguments) when set;
 * false when absent. The exchange name may be empty (the default exchange). */
bool queue_dead_letter_exchange(const struct queue *queue, struct proto_bytes *out);
bool queue_dead_letter_routing_key(const struct queue *queue, struct proto_bytes *out);

/* The kind of this queue (settings.type). */
const struct queue_kind *queue_kind(const struct queue *queue);

/* Should a delivery of entry carry the x-delivery-count header, as RabbitMQ 3.10's quorum
 * queues add it: basic.get always (0 on a first delivery), basic.deliver once the message was
 * returned (count = times returned). True with *count set, or false. */
bool queue_delivery_count_header(const struct queue *queue, const struct queue_entry *entry, bool get,
                                 int64_t *count);

/* A queue whose messages live on another node of a cluster (a classic queue homed there,
 * cluster_classic.h): this model holds its definition only, and the cluster's layer carries its
 * publishes, consumers and gets. False for every queue of a node alone. */
void queue_set_elsewhere(struct queue *queue, bool elsewhere);
bool queue_elsewhere(const struct queue *queue);

/* Owner for exclusive queues (an opaque connection pointer), NULL when not exclusive. */
void queue_set_owner(struct queue *queue, void *owner);
void *queue_owner(const struct queue *queue);

/* Enqueues msg (the queue takes its own reference) at loop time now_ms. Applies the queue's
 * TTL (deadline now_ms + min(x-message-ttl, expiration)) and, for drop-head, the length limits
 * by dropping older messages. Returns 0, or -1 when refused: x-overflow reject-publish with
 * the queue at its limit (a quorum queue: over it, then until back at 80%; queue_kind's
 * reject_over_limit), or out of memory (the caller nacks the publisher). On a deleted
 * queue it does nothing and returns 0. Does not dispatch: call queue_dispatch next, at the same
 * now_ms; that is where a message that no consumer can take at once is dropped when its TTL is
 * 0 or when it alone breaks the limit (x-max-length 0), as RabbitMQ delivers such a message
 * only to a consumer waiting for it. */
int queue_publish(struct queue *queue, struct message *msg, uint64_t now_ms);

/* Paging, called by the pager only. queue_page_set_tail: after recovery, the queue's stored
 * entries (count, and their stored bytes) form its tail; call before anything else touches the
 * queue. queue_page_in: the next tail entry, msg_id with stored_bytes, read back: msg (the
 * queue takes its own reference) or NULL when it could not be used (corrupt, or a transient
 * message from before a restart: the pager has removed it from the store); delivered: it had
 * been delivered before; age_ms: time since it was published, for its TTL. queue_page_wake:
 * more of the tail may be readable now (the queue dispatches next time it is asked to). */
void queue_page_set_tail(struct queue *queue, uint64_t count, uint64_t stored_bytes);
void queue_page_in(struct queue *queue, uint64_t msg_id, uint64_t stored_bytes, struct message *msg, bool delivered,
                   uint64_t now_ms, uint64_t age_ms);
void queue_page_wake(struct queue *queue);
/* Messages of the queue in its tail (on disk only). */
uint64_t queue_paged_count(const struct queue *queue);

/* Delivers ready messages to consumers with credit, round-robin among the highest-priority
 * consumers (x-priority) that have credit, or only to the active one with single active
 * consumer, until no consumer has credit or nothing is ready. Expired head messages are dropped
 * on the way (a message whose deadline is exactly now_ms is still delivered if a consumer can
 * take it, and dropped otherwise). Never recurses: see consumer_ops.deliver. */
void queue_dispatch(struct queue *queue, uint64_t now_ms);

/* basic.get: takes the next ready message (dropping expired heads first) and touches the
 * queue. Returns true and fills entry (the caller owns it as an unsettled delivery unless
 * no_ack, in which case the queue already settled it and the caller owns just the message
 * reference), or false when nothing is ready or the queue is deleted. */
bool queue_get(struct queue *queue, uint64_t now_ms, bool no_ack, struct queue_entry *entry);

/* How a consumer settles an entry it was given. REQUEUE: the client gives it back (nack or
 * reject with requeue, basic.recover); RETURN: it comes back because its receiver went away
 * (the channel or connection closed). The two differ for a quorum queue only (queue_kind). */
enum queue_settle_mode { QUEUE_ACK, QUEUE_REQUEUE, QUEUE_DISCARD, QUEUE_RETURN };

/* Ack: the message is done. Requeue and return: back to its original position (a quorum queue:
 * a requeue to the back, behind every ready message; a return to the front, behind the earlier
 * returns), marked redelivered, its delivery count raised; past x-delivery-limit it is dropped
 * instead (reason DELIVERY_LIMIT); then drop-head limits apply (a quorum queue's at the end of
 * the next queue_dispatch; call it next in any case).
 * Discard (reject/nack without requeue): dead-lettered through hooks->dropped. Takes over the entry's reference. Works on a
 * deleted queue (the message is just released). If a requeue cannot allocate, the message is
 * discarded instead. */
void queue_settle(struct queue *queue, const struct queue_entry *entry, enum queue_settle_mode mode);
/* queue_settle for an entry queue_get handed out in ack mode (basic.get): the same, and the
 * queue stops counting it (see queue_consumer_count). */
void queue_settle_fetched(struct queue *queue, const struct queue_entry *entry, enum queue_settle_mode mode);

/* Consumers. consumer is an opaque key (one registration per pointer); ops must outlive it.
 * priority: x-priority. exclusive: basic.consume exclusive. no_ack: deliveries are settled at
 * once (passed back to ops->deliver). Returns 0, or -1 with err filled (method basic.consume):
 * 403 ACCESS_REFUSED "queue 'q' in vhost '/' in exclusive use" when an exclusive consumer
 * exists or one is requested on a queue with consumers, as RabbitMQ; 404 on a deleted queue;
 * 541 on ENOMEM. With single active consumer, an exclusive consume is always refused (403);
 * a kind without exclusive_consumers (quorum) ignores the flag;
 * the first consumer added is the active one and, when it goes, the remaining consumer with the
 * highest priority, oldest first, takes over (RabbitMQ 3.10). */
int queue_add_consumer(struct queue *queue, void *consumer, const struct consumer_ops *ops,
                       int32_t priority, bool exclusive, bool no_ack, struct reply_error *err);
/* Removes consumer (unknown pointers are ignored); when it was the last one of an auto-delete
 * queue, hooks->unused runs, as the last thing this call does. */
void queue_remove_consumer(struct queue *queue, void *consumer);
/* Number of registered consumers (all of them, active or waiting; for a kind that does not
 * count waiting ones, the active one only); for a kind whose gets count as consumers (quorum:
 * RabbitMQ 3.10's rabbit_fifo checks each unsettled basic.get out to a consumer of its own),
 * plus the basic.get deliveries not yet settled. */
size_t queue_consumer_count(const struct queue *queue);
/* Calls fn for every consumer (e.g. to cancel them all before deleting). fn may remove any
 * consumer; consumers added during the walk may be skipped. */
void queue_for_each_consumer(struct queue *queue, void (*fn)(void *consumer, void *arg), void *arg);

/* Calls every consumer's ops->queue_deleted, where it has one (before queue_delete). */
void queue_cancel_consumers(struct queue *queue);

/* Removes every ready message (not the unsettled ones), without dead-lettering them, as
 * RabbitMQ. Returns how many (0 on a deleted queue). */
size_t queue_purge(struct queue *queue);

/* Drops expired messages at the head (deadline <= now_ms). As in RabbitMQ only the head (the
 * next message to deliver) is examined: a message behind it waits even when its own deadline
 * is earlier. Then enforces drop-head limits. Returns the head's deadline (when this should run
 * again), or MESSAGE_NO_EXPIRY. */
uint64_t queue_expire(struct queue *queue, uint64_t now_ms);

/* Ready messages (the tail included) and the sum of their body sizes (what x-max-length and
 * x-max-length-bytes count; for the tail, its stored size), and deliveries in ack mode not yet
 * settled. Between queue_publish and the
 * queue_dispatch that follows, ready may exceed x-max-length by the one message just published. */
size_t queue_ready_count(const struct queue *queue);
size_t queue_unacked_count(const struct queue *queue);
uint64_t queue_ready_bytes(const struct queue *queue);
/* The body bytes of the ready messages held in memory (a paged tail left out): the backlog a
 * queue makes the broker hold, which per-publisher flow control watches. */
uint64_t queue_memory_bytes(const struct queue *queue);

/* Last time (loop ms) the queue was used, for x-expires. RabbitMQ counts declare, consume,
 * basic.get and the last consumer leaving, not publishes: queue_get touches by itself, the
 * owner touches for the others. 0 until the first touch. */
uint64_t queue_last_used(const struct queue *queue);
void queue_touch(struct queue *queue, uint64_t now_ms);

/* The queue's message counters since it was created (stats.h), valid while it lives. Counting
 * is a few uint64_t increments where the queue already does the work. */
const struct stats_queue *queue_stats(const struct queue *queue);
/* The sampler's state for this queue (rates and history), kept with it and freed with it. */
struct stats_queue_series *queue_series(struct queue *queue);
/* Ages, in ms at loop time now_ms, of the ready messages held in memory: the oldest one (the
 * head; for a priority queue the oldest of any level) and their mean. Both 0 when none is in
 * memory. A paged tail (queue.h) is not read: its messages are all younger than those in memory,
 * so the oldest is exact whenever memory holds any, and the mean is over memory only. O(levels). */
void queue_message_age(const struct queue *queue, uint64_t now_ms, uint64_t *oldest_ms, uint64_t *mean_ms);

#endif
