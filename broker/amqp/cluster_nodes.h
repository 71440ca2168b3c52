/* broker/amqp/cluster_nodes.h: what the other members of a cluster last said about themselves,
 * for the management API's /api/nodes (introspect_nodes), as RabbitMQ's lists every node of its
 * cluster with its memory, disk and descriptors.
 *
 * Every REPORT_MS each node sends its own description (introspect_node_self) to every other
 * member over the peer link ("node.info"), and answers one from a member it had no fresh word
 * of at once, so that two nodes that just met know each other within a pass. A member counts as
 * running while its last word is at most STALE_MS old and its link has not broken since; else
 * the API shows it as RabbitMQ shows a stopped node: its name, running false. The messages are
 * untrusted: a field of the wrong type or a string too long drops the whole message. */
#ifndef WARREN_CLUSTER_NODES_H
#define WARREN_CLUSTER_NODES_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct cluster_node;
struct cluster_nodes;
struct introspect_node;
struct server;

struct cluster_nodes *cluster_nodes_create(struct server *server);
void cluster_nodes_free(struct cluster_nodes *cn);

/* At the end of a loop pass: this node's description goes to every other member when due.
 * True when something was queued (cluster_node_flush_peers then writes it). */
bool cluster_nodes_tick(struct cluster_nodes *cn, struct cluster_node *node, uint64_t now_ms);
/* A "node.info" from the member at `from` (args: the message's table). True when an answer was
 * queued. */
bool cluster_nodes_heard(struct cluster_nodes *cn, struct cluster_node *node, const char *from,
                         struct proto_bytes args, uint64_t now_ms);
/* The link to the member at `from` broke: it counts as stopped until it speaks again. */
void cluster_nodes_lost(struct cluster_nodes *cn, const char *from);
/* The last description of the member at address, when it is fresh (running): true and *out;
 * else false. */
bool cluster_nodes_get(const struct cluster_nodes *cn, const char *address, uint64_t now_ms,
                       struct introspect_node *out);

#endif
