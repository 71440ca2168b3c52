/* broker/amqp/cluster_classic.h: classic queues across the nodes of a cluster (docs/cluster.md,
 * "Classic queues across nodes"), private to cluster_queues.c, which keeps the channels' door
 * (cluster_queues.h) the one way in.
 *
 * A classic queue declared in a cluster has a home: the node whose client (or management API)
 * declared it, recorded with the declare in the metadata log, the first one applied winning, so
 * every node names the same home. Its messages live on the home only, in the home's own queue,
 * with everything a classic queue does there (storage, paging, priorities, TTL, dead-lettering).
 * Every other node holds its definition only and treats it as a queue whose messages live
 * elsewhere, the same way it treats a quorum queue: a publish routed to it, a consumer, a
 * basic.get, an ack, a purge are the quorum queue's commands (same names, same arguments), sent to
 * the home over a peer link (cluster_node_send) instead of being proposed. The home runs them on
 * its queue:
 *   - qq.enqueue: into the queues named; the answer ("result") goes once the message is on the
 *     home's disk when it must be (a persistent message in a durable queue: the store's group
 *     commit), so a publisher's confirm through any node means what it means on the home;
 *   - qq.checkout: a proxy consumer on the queue for the asking node's consumer, with its
 *     prefetch as credit; each delivery goes back as a "deliver" message, which the asking node
 *     hands to the channel as a quorum queue's delivery (channel_replica_deliver);
 *   - qq.settle / qq.return / qq.discard: the proxy's deliveries acked, requeued (to their place:
 *     a classic queue's requeue) or dead-lettered on the home;
 *   - qq.detach, qq.dequeue (basic.get, its message a "deliver" before the "result"), qq.purge,
 *     qq.channel_down (a channel closed: its proxies go, what they held is returned).
 * When the pair of connections between two nodes breaks (a node stops or dies, a partition long
 * enough for TCP to notice), each side gives up what the other held: the home drops the other's
 * proxies (their messages return, redelivered later, at least once as RabbitMQ); the other node
 * cancels its consumers of the home's queues (basic.cancel, as RabbitMQ does when a queue's node
 * goes down) and fails what it waited for (a publisher gets a nack).
 * An exclusive queue's home is its connection's node, where it lives and dies with the connection
 * as before; every other node holds a copy owned by none of its connections
 * (cluster_foreign_owner), in the replicated state with its bindings, which routes publishes to
 * the home and refuses any other use with 405, as RabbitMQ refuses another connection's. */
#ifndef WARREN_CLUSTER_CLASSIC_H
#define WARREN_CLUSTER_CLASSIC_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster_queues.h"
#include "proto.h"
#include "table.h"

struct classic;
struct cluster_node;
struct server;

/* Handles of calls to a home have this bit set; the log's proposals never do. */
#define CLASSIC_HANDLE_BIT (UINT64_C(1) << 63)

struct classic *classic_create(struct cluster_queues *cq, struct server *server);
void classic_free(struct classic *cl);
/* The node runs (self: its address) or stops (node NULL: calls fail, proxies go). */
void classic_start(struct classic *cl, struct cluster_node *node, const char *self);

/* ---- the homes, kept by the apply side (every node alike) ---- */

/* A queue.declare of a classic queue was applied (or replayed) with home (empty: a declare from
 * before homes, which stays local everywhere). The first home applied stays. */
void classic_declared(struct classic *cl, const char *vhost, struct proto_bytes name, struct proto_bytes home);
void classic_deleted(struct classic *cl, const char *vhost, struct proto_bytes name);
void classic_vhost_deleted(struct classic *cl, const char *vhost);
/* The home of vhost/name when it is another node, else NULL (this node's, or no home). */
const char *classic_remote_home(const struct classic *cl, const char *vhost, struct proto_bytes name);
/* The home's own copy of vhost/name would delete itself (auto-delete, x-expires): true when
 * vhost/name has no home (a queue of this node alone: delete it here); else false, and this node,
 * being its home, proposes queue.delete, at most every 2 s until it is applied. */
bool classic_self_delete(struct classic *cl, const char *vhost, struct proto_bytes name);
/* Is the member at address running? Asked over the peer link (a "ping" it answers): -1 not
 * known yet (a ping went, or is on its way: ask again), then once 1 (it answered) or 0 (its link
 * failed since, or no answer within PROBE_MS: stopped, or paused); the call after a verdict pings
 * again. */
int classic_probe(struct classic *cl, const char *address);
/* q (of vhost) is being deleted here: when it is an exclusive queue of a connection of this node
 * (its home), its copies on the other nodes go too (a queue.delete is proposed). */
void classic_deleting(struct classic *cl, const char *vhost, struct queue *q);
/* This node caught up with the log after its start: the queues homed here that it no longer
 * holds (an exclusive queue of its earlier run, whose connection died with it) are deleted
 * everywhere. */
void classic_caught_up(struct classic *cl);
/* The member at address is being removed for good (forget_cluster_node): the queues it is the
 * home of are deleted through the log, as RabbitMQ forgets a removed node's durable queues. */
void classic_member_gone(struct classic *cl, const char *address);
/* The leader has heard nothing from the member at address for a while (dead, or cut off): as
 * RabbitMQ's on_node_down, the queues homed there that cannot outlive it go (their deletion is
 * proposed): exclusive queues (their connections were there) and non-durable ones. Its durable
 * queues stay, "down", until it returns. */
void classic_member_down(struct classic *cl, const char *address);
/* Appends "classic_homes" (an array of {vhost, name, home}) to out. 0 or -1. */
int classic_export(const struct classic *cl, struct table_buf *out);
/* Replaces the homes with those in state (absent: none). 0, or -1 and nothing changed. */
int classic_import(struct classic *cl, struct proto_bytes state);
/* Every queue of the model with a home is told whether its messages live elsewhere (queues the
 * model declared after their homes were recorded). */
void classic_mark_all(struct classic *cl);

/* ---- asking a home ---- */

/* Sends op with args (freed here) to home; done(a, b, result) follows once with the home's
 * answer, or -ETIMEDOUT when the home cannot be reached or does not answer in time. NULL done:
 * nobody waits (returns 1). Returns a handle (CLASSIC_HANDLE_BIT set) or 0 when it could not be
 * sent (done is not called). */
uint64_t classic_call(struct classic *cl, const char *home, const char *op, struct table_buf *args,
                      cluster_queues_done_fn done, void *a, uint64_t b);
void classic_forget(struct classic *cl, uint64_t handle);
/* The counts of vhost/name its home last gave (zeros when never asked). */
struct queue_depth;
void classic_depth(const struct classic *cl, const char *vhost, struct proto_bytes name, struct queue_depth *out);

/* A channel of this node closed: every home it used drops its proxies (args: qq.channel_down's,
 * copied). */
void classic_channel_closed(struct classic *cl, const struct table_buf *args);

/* End of a loop pass: runs the messages that arrived, answers what became durable, acts on lost
 * links, times out calls, writes what was sent. */
void classic_flush(struct classic *cl);

/* ---- provided by cluster_queues.c ---- */

/* This node's channel with that id in consumer keys, or NULL. */
struct channel *cluster_queues_channel(const struct cluster_queues *cq, uint64_t id);
/* Cancels this node's consumers of the classic queues homed at home (basic.cancel). */
void cluster_queues_cancel_homed(struct cluster_queues *cq, const char *home);

#endif
