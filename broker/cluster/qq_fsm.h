/* broker/cluster/qq_fsm.h: the replicated state machine of one quorum queue (docs/cluster.md).
 * Each quorum queue is a Raft group; every member applies the same commands in the same order
 * and so makes the same decisions: which id a message gets, which consumer it goes to, which
 * message is dropped. Like RabbitMQ's rabbit_fifo, small. It knows nothing of sockets or
 * channels: it reports what must happen through effects, and the broker executes them where
 * they belong (a delivery on the consumer's node, a dead-lettering on the leader).
 *
 * State. Messages, each with a queue-local id (1, 2, 3, ... in log order), its content (opaque
 * bytes: properties and body as the enqueuer gave them) and its delivery count (how often it was
 * returned: RabbitMQ 3.10's x-delivery-count). Ready messages are served in RabbitMQ 3.10's
 * order (as the single-node quorum queue, broker/model/queue.c, has it): first the messages of
 * consumers that went away ("cancel", "node_down"), in the order they came back, each
 * consumer's in id order (node_down: its consumers in service order); then the others in the
 * order they entered the queue, a client's return ("return": nack, reject or recover with
 * requeue) entering again at the back as if published anew, in the order the command names
 * them. Consumers, keyed by (node, channel, tag), each with a prefetch (0: unlimited) and its
 * checked-out messages. After every command the ready messages go to the consumers with free
 * prefetch, round-robin: the first consumer in service order with room takes one and moves to
 * the back (new consumers join at the back). x-delivery-limit, optional: a message returned more
 * times than the limit is discarded ("delivery_limit") instead of requeued, as RabbitMQ
 * dead-letters or drops it.
 *
 * Commands use meta_fsm's envelope (meta_command_encode: op, session, request, args) and its
 * exactly-once rule (sessions.h). Ops and their args:
 *     "enqueue"   content bytes, now uint64, ttl int64 (both optional: see "Time")
 *                                                   -> value: the message's id
 *     "tick"      now uint64                        -> value: messages expired
 *     "checkout"  node S, channel int, tag S, prefetch int (0..65535; again: a new prefetch)
 *     "detach"    node, channel, tag                -> value: messages it still holds
 *     "dequeue"   node, channel, tag, no_ack bool   -> value: the message's id, 0 when none ready
 *     "cancel"    node, channel, tag                -> value: messages returned
 *     "settle"    node, channel, tag, ids array     -> value: messages removed (acked)
 *     "return"    node, channel, tag, ids array     -> value: messages requeued or discarded
 *     "discard"   node, channel, tag, ids array     -> value: messages discarded ("rejected")
 *     "purge"                                       -> value: ready messages removed
 *     "node_down" node                              -> value: consumers cancelled
 *     "channel_down" node, channel                  -> value: consumers cancelled (every tag,
 *                                                      detached ones and get holders too)
 * channel is an integer 0..2^63-1 (the broker makes it unique on its node: a connection serial
 * and a channel number). A cancelled consumer's checked-out messages are returned to the front,
 * a returned one to the back; either counts as a delivery attempt (delivery count + 1), as
 * RabbitMQ 3.10 counts nacks, rejects, recovers, cancels and channel closes alike. Ids a
 * consumer does not hold are skipped.
 *
 * Time. A member's clock cannot decide anything (members would disagree), so the queue has a
 * clock of its own, part of the state: now_ms, the largest "now" (milliseconds of the proposer's
 * wall clock) an applied command carried. An enqueue's message expires ttl ms after its "now"
 * (ttl: the smaller of x-message-ttl, qq_fsm_set_message_ttl, and the command's "ttl", the
 * message's expiration property; neither: never). As RabbitMQ's queues, only the head expires:
 * a ready message past its deadline met while serving is discarded (reason "expired") instead of
 * delivered, and after every command the ready messages at the head that are at or past their
 * deadline are discarded (one exactly at it still goes to a consumer that can take it first, as
 * queue.c has it). Nothing happens between commands: whoever leads proposes "tick" with its
 * clock when qq_fsm_next_expiry says the head is due.
 *
 * "detach" is AMQP's basic.cancel: the consumer takes no new message but keeps what it holds,
 * which it may still settle, return or discard; it is removed once it holds nothing (at once if
 * it holds nothing already). A detached consumer is still a consumer for "cancel" and
 * "node_down" (its messages go back to the front). "checkout" on a detached consumer attaches
 * it again (at the back of the service order).
 *
 * "dequeue" is basic.get: the next ready message in the same order as consumers are served,
 * reported through the deliver effect to the consumer named (RabbitMQ's rabbit_fifo checks a
 * get out to a consumer of its own). With no_ack it leaves the queue at once; otherwise it is
 * held by that consumer, which is created detached when it does not exist (it never takes
 * messages by itself, and goes once it holds nothing): settle, return and discard then name it
 * as any consumer. The broker names its gets with an empty tag (AMQP consumer tags are never
 * empty), so a channel has one such holder.
 * Everything read back is checked as untrusted: a command that does not decode changes nothing
 * (QQ_MALFORMED on every member alike); a snapshot that does not check out is refused. */
#ifndef WARREN_QQ_FSM_H
#define WARREN_QQ_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta_fsm.h"
#include "proto.h"
#include "sessions.h"
#include "table.h"

#define QQ_NAME_MAX 255 /* a node name or consumer tag, bytes (a shortstr) */

/* Statuses besides 0. */
enum {
    QQ_MALFORMED = -1,  /* the command or its arguments did not decode: nothing changed */
    QQ_DUPLICATE = -2,  /* a repeated request: applied once already, not again */
    QQ_NOT_FOUND = 404, /* no such consumer: nothing changed */
    QQ_REJECTED = 406,  /* "enqueue" refused: x-overflow reject-publish with the queue over a limit */
};

/* A queue's length limits, RabbitMQ's x-max-length, x-max-length-bytes and x-overflow, run as
 * RabbitMQ 3.10's quorum queues run them (the single-node quorum queue, broker/model/queue.c with
 * queue_kind's limit_after_dispatch and reject_over_limit, has the same rules): the limits count
 * the ready messages and their content bytes. drop-head: after each command, once the ready
 * messages given to consumers are out, ready messages over a limit leave from the head (the next
 * to be served), each reported through the discarded effect with reason "maxlen". reject-publish:
 * an "enqueue" is refused (QQ_REJECTED, nothing changes) while the queue is over a limit, from the
 * enqueue that took it over (which was taken) until it is back at 80% of every limit. Part of
 * the state (and of a snapshot). */
struct qq_limits {
    int64_t max_length; /* -1: none */
    int64_t max_bytes;  /* -1: none */
    bool reject_publish;
};

/* A consumer's name; strings NUL-terminated (a NUL inside is refused). */
struct qq_consumer_key {
    char node[QQ_NAME_MAX + 1];
    char tag[QQ_NAME_MAX + 1];
    uint64_t channel; /* 0..INT64_MAX */
};

/* What a command did: status 0 or QQ_*, and its value (see the ops above). */
struct qq_result {
    int status;
    uint64_t value;
};

/* What every member computes after a command; the broker executes each where it belongs. The
 * content is borrowed for the call. A callback must not call back into the state machine. */
struct qq_effects {
    /* Message id goes to consumer; redelivered when it was returned before (delivery_count > 0).
     * Also for "dequeue" (the consumer is the get's holder, and for no_ack the message has
     * already left the state: its content is still valid for the call). */
    void (*deliver)(void *ctx, const struct qq_consumer_key *consumer, uint64_t id, struct proto_bytes content,
                    bool redelivered, uint32_t delivery_count);
    /* Message id left the queue unacknowledged: reason "rejected", "delivery_limit" or "maxlen"
     * (drop-head; the broker dead-letters it when the queue has a dead-letter exchange, else drops
     * it). */
    void (*discarded)(void *ctx, uint64_t id, struct proto_bytes content, const char *reason);
    void *ctx;
};

/* Called when the entry of an expected request is applied on this member. */
typedef void (*qq_done_fn)(void *arg, const struct qq_result *result);

struct qq_message;
struct qq_consumer;

/* A ready message that was delivered before. A client's return records next_id as `behind`:
 * the message waits behind the never-delivered ones below that id and ahead of the rest. In
 * the returned list, which goes before everything, `behind` is 0. */
struct qq_ready {
    uint64_t id;
    uint64_t behind;
};

/* A first-in first-out list of them: v[head .. head + count). */
struct qq_fifo {
    struct qq_ready *v;
    size_t head, count, cap;
};

/* The replicated state; what a snapshot holds. */
struct qq_state {
    struct qq_message **messages;   /* by id: messages[head .. head + count) */
    size_t head, count, cap;
    struct qq_fifo returned;        /* the front: departed consumers' messages, as they came back */
    struct qq_fifo requeued;        /* client returns, in order, placed among the new by `behind` */
    struct qq_consumer **consumers; /* in service order */
    size_t nconsumers, consumers_cap;
    uint64_t next_id;               /* the id the next enqueue gets (ids start at 1) */
    uint64_t next_new;              /* ids next_new .. next_id - 1: ready, never delivered */
    uint64_t next_consumer;         /* serial of the next consumer (from 1) */
    uint64_t seq;                   /* entries applied, to age sessions */
    int64_t delivery_limit;         /* -1: none */
    struct qq_limits limits;        /* none: -1, -1, drop-head */
    uint64_t ready_bytes;           /* content bytes of the ready messages (derived, not in a snapshot) */
    bool over_limit;                /* reject-publish's latch: enqueues refused until back at 80% */
    bool single_active;             /* x-single-active-consumer (qq_fsm_set_single_active) */
    int64_t message_ttl;            /* x-message-ttl, ms (qq_fsm_set_message_ttl); -1: none */
    uint64_t now_ms;                /* the queue's clock: the largest "now" applied (see Time) */
    struct sessions sessions;
};

struct qq_fsm {
    struct raft_fsm raft; /* give &fsm->raft to raft_init */
    struct qq_effects effects;
    struct qq_state state;
    struct session_wait *pending; /* each the first member of a waiter in qq_fsm.c */
};

/* Sets up an empty queue with delivery_limit (-1: none; x-delivery-limit otherwise) reporting
 * through effects. 0 or -EINVAL. */
int qq_fsm_init(struct qq_fsm *fsm, int64_t delivery_limit, const struct qq_effects *effects);
/* Frees what fsm holds; pending requests are completed with status -ECANCELED. */
void qq_fsm_close(struct qq_fsm *fsm);

/* Appends the whole state (the snapshot's contents, a table's contents) to out: the same bytes on
 * every member that applied the same entries. 0 or -1. */
int qq_fsm_export(const struct qq_fsm *fsm, struct table_buf *out);

/* Calls done(arg, result) once the command (session, request) is applied on this member (or
 * with status -ECANCELED at qq_fsm_close / qq_fsm_forget). 0 or -ENOMEM. */
int qq_fsm_expect(struct qq_fsm *fsm, uint64_t session, uint64_t request, qq_done_fn done, void *arg);
/* Stops expecting (session, request): its callback is called with -ECANCELED. */
void qq_fsm_forget(struct qq_fsm *fsm, uint64_t session, uint64_t request);

/* Sets the limits (at creation, on every member alike). The next command applies them. */
void qq_fsm_set_limits(struct qq_fsm *fsm, const struct qq_limits *limits);

/* x-single-active-consumer, set at creation on every member alike (part of the state and of a
 * snapshot; absent in older ones: off). On: only the active consumer takes messages -- the
 * first attached one in service order, which does not rotate (a new consumer joins at the back
 * and waits) -- so messages are consumed in order by one consumer at a time, as RabbitMQ's
 * rabbit_fifo does it. When the active one is cancelled, detached (basic.cancel) or its node
 * goes down, the next waiting one becomes active with the next command; what the departed one
 * held comes back first. Only the active one counts as a consumer (qq_fsm_consumers), as
 * RabbitMQ 3.10 counts a quorum queue's consumers. */
void qq_fsm_set_single_active(struct qq_fsm *fsm, bool on);

/* x-message-ttl in ms (-1: none), set at creation on every member alike; part of the state and
 * of a snapshot (absent in older ones: none). Applies to messages enqueued from then on. */
void qq_fsm_set_message_ttl(struct qq_fsm *fsm, int64_t ttl_ms);

/* The deadline, on the queue's clock, of the ready message served next when it has one: the
 * time from which a "tick" would expire something (0: nothing can expire now). */
uint64_t qq_fsm_next_expiry(const struct qq_fsm *fsm);

/* The broker's way in when the queue is one object among others in a bigger state machine (the
 * cluster's metadata log, whose meta_fsm already applies each command exactly once): applies
 * cmd (its op and args; session and request are not looked at) without qq_fsm's own sessions,
 * filling out as the raft path would and running the effects. */
void qq_fsm_apply_command(struct qq_fsm *fsm, const struct meta_command *cmd, struct qq_result *out);
/* Replaces the state with what qq_fsm_export wrote (checked as untrusted): 0, or -1 and the
 * state unchanged. Pending requests are kept. */
int qq_fsm_import(struct qq_fsm *fsm, struct proto_bytes state);

/* Content bytes held by every quorum queue state of the process: what the broker's memory alarm
 * counts beside its own messages (every member holds a copy of every message). */
uint64_t qq_memory_bytes(void);

/* True when message id is still checked out to consumer with the delivery count the deliver
 * effect reported, with *content (borrowed until the next command): a delivery the broker put off
 * until after the commands applied with it is still due. False when a later command returned,
 * settled or discarded it meanwhile, or handed it out again (its count moved on). */
bool qq_fsm_still_held(const struct qq_fsm *fsm, const struct qq_consumer_key *consumer, uint64_t id,
                       uint32_t delivery_count, struct proto_bytes *content);

/* Counts, for the broker and tests. */
size_t qq_fsm_messages(const struct qq_fsm *fsm);
size_t qq_fsm_ready(const struct qq_fsm *fsm);
/* Consumers attached (taking messages): detached ones and get holders are not counted; with a
 * single active consumer, only the active one. */
size_t qq_fsm_consumers(const struct qq_fsm *fsm);
/* Calls fn with the node of every consumer (detached ones and get holders too), once per
 * consumer; fn must not change the state. */
void qq_fsm_each_consumer_node(const struct qq_fsm *fsm, void (*fn)(const char *node, void *arg), void *arg);

#endif
