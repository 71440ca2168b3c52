/* broker/amqp/cluster_queues.h: quorum queues replicated through the cluster's log
 * (docs/cluster.md, "Quorum queues in a cluster"). With a cluster, a quorum queue's messages and
 * consumers live in a qq_fsm (broker/cluster/qq_fsm.h) held by every node and driven by "qq.*"
 * commands in the metadata group's log; the model's queue of that name holds its definition only
 * (name, arguments, bindings) and never a message. This file is the broker's side of it:
 *   - the registry: one qq_fsm per quorum queue, created when a declare of one is applied (or
 *     replayed), removed with its queue.delete or vhost.delete; its state rides in the cluster's
 *     snapshots and is rebuilt at every start from the last snapshot and the log after it;
 *   - the proposals a channel makes (publish, consume, cancel, get, ack, nack, reject, recover,
 *     close), each a command of the log;
 *   - the effects every node computes: a delivery to a consumer on this node goes to its
 *     channel (consume.c's channel_replica_deliver); a message discarded by the queue
 *     (rejected, or past x-delivery-limit) is dead-lettered by the node that leads when it applies
 *     the command (at most once, as RabbitMQ's default dead-lettering).
 * Built only with the cluster (WARREN_HAVE_CLUSTER).
 *
 * Commands, cluster_target.h's vocabulary (each has "vhost"):
 *     qq.enqueue    queues (array of longstr), content (bytes: message_serialize)
 *     qq.checkout, qq.detach, qq.dequeue, qq.cancel, qq.settle, qq.return, qq.discard, qq.purge
 *                   queue (longstr), and the arguments of qq_fsm's op of that name
 *     qq.node_down  node: every queue's consumers of that node are cancelled
 *     qq.channel_down  node, channel: every queue's consumers of that channel are cancelled
 * A consumer's key is (this node's cluster address, the channel's id on this node, the consumer
 * tag; "" for the holder of a channel's basic.get deliveries). Channel ids carry a random prefix
 * drawn at start, so a restarted node never takes over its earlier run's consumers; the node
 * proposes qq.node_down for itself when it starts, which returns what that run held. The leader
 * proposes it for a member it has not heard from for a while (dead or cut off): what that
 * member's consumers held goes to consumers elsewhere. A node that applies a node_down of itself
 * while it runs (it was only cut off, or its own start-up one came late) checks its consumers
 * out again, so they go on receiving; what they held was returned and comes again, redelivered
 * (at least once, as RabbitMQ's quorum queues after a partition).
 * A result's status is 0, 404 (no such queue: deleted meanwhile; for qq.enqueue, one of the
 * queues named, the others took the message, and the publisher gets a nack), 406 (qq.enqueue: a
 * reject-publish queue over its limit refused it, the others took it: a nack too) or
 * META_MALFORMED; the text of qq.dequeue's and qq.purge's is the value in decimal (a message
 * id, 0 when none; a count). */
#ifndef WARREN_CLUSTER_QUEUES_H
#define WARREN_CLUSTER_QUEUES_H

#include <stdbool.h>
#include <stdint.h>

#include "meta_fsm.h"
#include "proto.h"
#include "queue.h"
#include "table.h"

struct server;
struct channel;
struct cluster_node;
struct message;
struct queue;
struct vhost;

struct cluster_queues;

/* ---- life ---- */

/* An empty registry for server (no proposals until cluster_queues_start). NULL on ENOMEM. */
struct cluster_queues *cluster_queues_create(struct server *server);
/* Frees every queue's state; proposals waiting are forgotten. NULL is ignored. */
void cluster_queues_free(struct cluster_queues *cq);
/* The node runs: consumer keys name this node by its cluster address (what every member calls
 * it), and qq.node_down for it is proposed. While this node leads, a member silent for
 * down_after_ms gets a qq.node_down (its consumers' messages go to others). node NULL (the node
 * stopped): nothing is proposed from then on. */
void cluster_queues_start(struct cluster_queues *cq, struct cluster_node *node, unsigned down_after_ms);
/* A member is being removed from the cluster (warrenctl forget_cluster_node): qq.node_down is
 * proposed for its address, so what its consumers held goes to consumers elsewhere at once
 * rather than when the leader notices its silence, and the classic queues it is the home of are
 * deleted (as RabbitMQ's forget_cluster_node). No effect before cluster_queues_start. */
void cluster_queues_member_gone(struct cluster_queues *cq, const char *address);
/* Whether the member at address runs (classic_probe): 1 yes, 0 no, -1 not known yet (ask again
 * in a moment). RabbitMQ's forget_cluster_node refuses a running node; so does warrenctl's. */
int cluster_queues_member_running(struct cluster_queues *cq, const char *address);
/* End of a loop pass: executes the deliveries to this node's consumers applied in the pass that
 * are still theirs (a later command of the pass may have handed the message to another
 * consumer: a node catching up applies many at once), then proposes what effects asked for
 * while a command was being applied (a no-ack delivery's settle, a delivery to a consumer that
 * was cancelled meanwhile). */
void cluster_queues_flush(struct cluster_queues *cq);

/* ---- the apply side (cluster_target.c, on every node) ---- */

/* A queue.declare of vhost/name with arguments (the command's, table contents) was applied (or
 * replayed): when the model now holds a quorum queue of that name, its state exists from now on
 * (an existing one is kept); a classic one gets its home (the command's "home", the proposing
 * node: cluster_classic.h), the first one applied staying. Its x-delivery-limit, x-max-length, x-max-length-bytes and
 * x-overflow are read from the command, never from the model (whose policies, when replaying,
 * may be later than the entry): every node must run the same limits at the same log position.
 * Policies do not change a replicated queue's limits. */
void cluster_queues_declared(struct cluster_queues *cq, struct vhost *vhost, struct proto_bytes name,
                             struct proto_bytes arguments, struct proto_bytes home);
/* q is being deleted on this node, however (vhost.h's queue_deleting): an exclusive queue homed
 * here has its copies on the other nodes deleted too (cluster_classic.h). */
void cluster_queues_deleting(struct cluster_queues *cq, struct vhost *vhost, struct queue *q);
/* This node caught up with the cluster after it started (server.c). */
void cluster_queues_caught_up(struct cluster_queues *cq);
/* A queue.delete was applied (or replayed): the queue's state goes, and this node's consumers
 * of it are cancelled (basic.cancel to clients that take it). */
void cluster_queues_deleted(struct cluster_queues *cq, const char *vhost, struct proto_bytes name);
/* A vhost.delete: every queue of the vhost goes. */
void cluster_queues_vhost_deleted(struct cluster_queues *cq, const char *vhost);
/* The vhosts changed as a whole (access.set): the queues of vhosts that no longer exist go. */
void cluster_queues_prune(struct cluster_queues *cq);
/* Applies a "qq.*" command (true), or returns false for any other op. */
bool cluster_queues_apply(struct cluster_queues *cq, const struct meta_command *cmd, struct meta_result *out);
/* Appends {"queues": [{"vhost", "name", "state"}...]} (a table's contents) to out. 0 or -1. */
int cluster_queues_export(const struct cluster_queues *cq, struct table_buf *out);
/* Replaces every queue's state with what cluster_queues_export wrote (untrusted): 0, or -1 and
 * nothing changed. Local consumers of queues that are gone are cancelled. */
int cluster_queues_import(struct cluster_queues *cq, struct proto_bytes state);
/* What the other members last said about themselves (cluster_nodes.h); NULL when cq is. */
struct cluster_nodes;
struct cluster_nodes *cluster_queues_nodes(const struct cluster_queues *cq);
/* The model was made equal to a state after cluster_queues_import took its part: the classic
 * queues it declared learn where their messages live (their homes, imported before them). */
void cluster_queues_model_imported(struct cluster_queues *cq);

/* The owner of the copies of exclusive queues whose connection is on another node: no local
 * connection is it, so every local use but a publish is refused (405 RESOURCE_LOCKED, as
 * RabbitMQ refuses another connection's exclusive queue), and publishes go to the queue's home. */
void *cluster_foreign_owner(void);

/* ---- the channel side ---- */

/* The model would delete q on its own (auto-delete, x-expires: vhost.h's self_delete). True for
 * a queue of this node alone (exclusive, or declared before homes); false otherwise: a quorum
 * queue's x-expires is the leader's (cluster_queues_flush), a classic queue homed elsewhere is
 * its home's, and the home of a classic queue proposes queue.delete (at most every 2 s while it
 * is not applied) so that every node deletes it. */
bool cluster_queues_self_delete(struct cluster_queues *cq, struct vhost *vhost, struct queue *q);

/* True when q's messages do not live in this node's model: a cluster runs and q is a quorum
 * queue, or a classic queue homed on another node (queue_elsewhere; cluster_classic.h). Every
 * function below takes both kinds alike: a classic queue's commands go to its home instead of
 * the log, and its deliveries come back from there. */
bool cluster_queues_replicated(const struct cluster_queues *cq, const struct queue *q);
/* This node's name in the cluster (its cluster address), the home of classic queues declared
 * through it; "" before the node runs. */
const char *cluster_queues_node_name(const struct cluster_queues *cq);
/* The node_name of the member at address: this node's own, or the one a member sent at its
 * start; NULL while unknown (a member that has not started since, or ran a version that did
 * not send it). */
const char *cluster_queues_member_name(const struct cluster_queues *cq, const char *address);
/* The address of the node holding q's messages when that is another node's classic queue (its
 * home), else NULL. */
const char *cluster_queues_home(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q);

/* True when q is a classic queue homed on another node and more than bound bytes (at most half
 * the link's own bound) wait to be written to that node: its publisher should pause (flow.h),
 * as it would for a local queue whose consumers fall behind. */
bool cluster_queues_pressured(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q,
                              uint64_t bound);

/* Ready messages, checked-out messages and attached consumers of q as this node's copy has them
 * (server.h's struct queue_depth; zeros when unknown): true, or false when q is not replicated
 * here. Callers go through server_queue_depth. */
struct queue_depth;
bool cluster_queues_depth(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q,
                          struct queue_depth *out);

/* Called once when a proposal made for a client is applied here or fails: status 0 (or
 * META_DUPLICATE) done, 404 the queue went, -ETIMEDOUT no quorum, -ECANCELED the node stops. */
typedef void (*cluster_queues_done_fn)(void *a, uint64_t b, const struct meta_result *result);

/* Proposes msg's enqueue on queues[0..n) (replicated ones of vhost). done (may be NULL) is called
 * with (a, b) once it is applied here: a publisher's confirm. Returns a handle for
 * cluster_queues_forget, or 0 when out of memory (done is not called; nothing was proposed). */
uint64_t cluster_queues_enqueue(struct cluster_queues *cq, struct vhost *vhost, struct queue *const *queues,
                                size_t n, const struct message *msg, cluster_queues_done_fn done, void *a,
                                uint64_t b);
/* A classic queue homed on another node: asks its home for its counts, which
 * cluster_queues_depth (so server_queue_depth) gives from then on; done follows (status 0, or
 * 404 with RabbitMQ's text when the home is down or has no such queue). Returns a handle, or 0
 * when q's counts are this node's own (done is not called). */
uint64_t cluster_queues_fetch_depth(struct cluster_queues *cq, struct vhost *vhost, struct queue *q,
                                    cluster_queues_done_fn done, void *a, uint64_t b);
/* Its asker is gone: done will not be called. Unknown handles (0) are ignored. */
void cluster_queues_forget(struct cluster_queues *cq, uint64_t handle);

/* The channel's id in consumer keys, given on first use and kept until
 * cluster_queues_channel_closed (which proposes qq.channel_down, returning what the channel
 * held to the front of its queues, and stops effects reaching it). 0 on ENOMEM. */
uint64_t cluster_queues_channel_id(struct cluster_queues *cq, struct channel *ch);
void cluster_queues_channel_closed(struct cluster_queues *cq, struct channel *ch);

/* Consumers: basic.consume of c (its queue, tag and credit: channel_replica_credit; for a
 * classic queue homed elsewhere also its x-priority and exclusive flag, which the home honours as
 * for its own consumers; a quorum queue ignores both, as RabbitMQ 3.10's), basic.cancel (it keeps
 * what it holds, which the channel may still settle), and a key the channel holds messages under
 * going away at once. Fire and forget: 0, or -1 when out of memory. */
struct consumer;
int cluster_queues_checkout(struct cluster_queues *cq, struct channel *ch, const struct consumer *c);
/* The same for a classic queue homed elsewhere, answered: done follows with the home's verdict
 * (0 attached; 403 exclusive use, 404 no queue or its home down: RabbitMQ's texts), before any
 * delivery to c. Returns a handle for cluster_queues_forget, or 0 (not sent, done not called). */
uint64_t cluster_queues_checkout_answered(struct cluster_queues *cq, struct channel *ch, const struct consumer *c,
                                          cluster_queues_done_fn done, void *a, uint64_t b);
int cluster_queues_detach(struct cluster_queues *cq, struct channel *ch, struct queue *q, struct proto_bytes tag);

/* basic.get: proposes a dequeue for ch's get holder; the message (if any) reaches
 * channel_replica_deliver with an empty tag before done runs (result text: the id, "0" for
 * none). Returns a handle for cluster_queues_forget, or 0 when out of memory. */
uint64_t cluster_queues_dequeue(struct cluster_queues *cq, struct channel *ch, struct queue *q, bool no_ack,
                                cluster_queues_done_fn done, void *a, uint64_t b);

/* queue.purge: proposes it; the result's text is the count removed. Handle or 0 as above. */
uint64_t cluster_queues_purge(struct cluster_queues *cq, struct vhost *vhost, struct queue *q,
                              cluster_queues_done_fn done, void *a, uint64_t b);

/* Settling deliveries: ids of one consumer key and one mode are gathered, then proposed as one
 * command (settle, return or discard). add proposes what was gathered when the key or mode
 * changes; flush proposes the rest. The batch holds a reference on the queue it gathers for. */
struct cluster_settle_batch {
    struct cluster_queues *cq;
    struct channel *ch;
    struct queue *queue;
    enum queue_settle_mode mode;
    uint8_t tag_len;
    char tag[256];
    struct table_buf ids; /* array contents */
    uint32_t count;
};
void cluster_settle_add(struct cluster_settle_batch *b, struct channel *ch, struct queue *q, struct proto_bytes tag,
                        uint64_t id, enum queue_settle_mode mode);
void cluster_settle_flush(struct cluster_settle_batch *b);

#endif
