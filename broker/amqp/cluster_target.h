/* broker/amqp/cluster_target.h: the server's model as the cluster's metadata group drives it
 * (cluster_node.h, struct cluster_target): the commands every node applies, and the replicated
 * state a snapshot carries. Built only with the cluster (WARREN_HAVE_CLUSTER).
 *
 * Commands: "op" names the operation, "args" (a field table) its fields; every op has "vhost"
 * (longstr) besides those listed. Names are longstrs of at most 255 bytes, booleans are bools,
 * "arguments" are field tables, absent fields are empty / false.
 *     vhost.add, vhost.delete                  (vhost only)
 *     exchange.declare   name type durable auto_delete internal arguments
 *     exchange.delete    name if_unused
 *     exchange.bind, exchange.unbind            destination source routing_key arguments
 *     queue.declare      name durable auto_delete arguments server_named
 *     queue.delete       name
 *     queue.bind, queue.unbind                  queue exchange routing_key arguments
 *     sync                                      (vhost only) a read barrier: changes nothing
 *     access.set         state (table: access_export's) the whole access database: users with
 *                        their hashes, tags and limits, vhosts, permissions; it replaces this
 *                        node's (last writer wins: see cluster_target_propose_access); origin
 *                        and seq (uint64) name the run that proposed it and its change
 *     policy.set         kind ("policy" or "operator"), name, pattern, apply_to (absent: all),
 *                        priority (int64), definition (table)
 *     policy.clear       kind, name
 *     vhost_limit.set    limit (RabbitMQ's name), value (int64; negative: cleared)
 * Policies and vhost limits are applied on every node, the proposing one included (it made the
 * change already: a repeat is harmless, and applying everything in log order keeps the nodes
 * equal when two of them change the same policy at once).
 * A command is applied with the model's own rules (declare.c's *_as functions for a trusted
 * actor: the proposing node checked permissions before proposing), so its result is the reply
 * code RabbitMQ gives (406 inequivalent, 404 no such exchange...) with its text, the same on
 * every node. Queues are applied as non-exclusive with no owner: exclusive queues never go
 * through the cluster. queue.delete has no if_unused / if_empty: consumers and messages are per
 * node in this slice, so the proposing node checks them; applying deletes unconditionally. On
 * success the result's text is empty, except queue.delete's: the number of ready messages this
 * node's copy of the queue held, in decimal (for queue.delete-ok on the proposing node).
 *
 * The qq.* commands of the replicated quorum queues (cluster_queues.h) are applied to their
 * registry; they change nothing in the model, so they neither move the saved index nor mark the
 * definitions changed. Replayed entries (cluster_node.h) reach the registry only.
 *
 * Replicated state: {"vhosts": [{"name", "definitions"}...]}, the definitions as
 * vhost_export_replicated writes them (vhost.h), which the definitions blob keeps too
 * (cluster_target_export); a snapshot adds "quorum_queues" (cluster_queues_export). Users,
 * permissions, policies and limits are not part of it: they stay per node in this slice. */
#ifndef WARREN_CLUSTER_TARGET_H
#define WARREN_CLUSTER_TARGET_H

#include "cluster_node.h"

struct server;

/* A local change of the access database (warrenctl, the management API) was made and applied
 * on this node: its whole state is proposed as access.set, which every node applies. The answer
 * to the command waits only through a wait (below): a warrenctl command's does not, and the
 * other nodes follow within a round trip. The proposing node
 * skips its own access.set when it has made a later change since (which follows in the log), so
 * a command sees what the one before it did ("add_user" then "set_permissions"). Changes made
 * at once through two nodes race: the later state applied wins whole. A proposal that fails (no
 * quorum) is logged, and the change stays on this node until the next one sends the whole state
 * again. */
void cluster_target_propose_access(struct server *server);
/* A local change made and applied here (operate_replicate: the management API's objects,
 * policies, vhost limits): proposed as the op above (a string literal) with args (freed here),
 * applied everywhere; a failure is logged. The change's answer waits only through a wait
 * (below). */
void cluster_target_propose_change(struct server *server, const char *op, struct table_buf *args);

/* Waiting for the changes one request makes (the management API's answer, like an AMQP
 * method's, comes once every member applied them). While a wait is open, every change
 * proposed by the two functions above joins it. cluster_wait_open opens one on server (NULL:
 * no cluster, one is open already, or out of memory); cluster_wait_close(w) closes it: when no
 * change joined, or done is NULL, it returns false (w is freed with its last change); else it
 * returns true and done(arg, status, text) follows once, from the loop, after every change joined
 * was answered: status 0 when all were applied on every member (meta_fsm's visibility), else
 * the first failure's status and text (-ETIMEDOUT: no quorum within the propose timeout). A
 * change that failed stays made on this node, as before. */
struct cluster_wait;
typedef void (*cluster_wait_fn)(void *arg, int status, const char *text);
struct cluster_wait *cluster_wait_open(struct server *server);
bool cluster_wait_close(struct server *server, struct cluster_wait *w, cluster_wait_fn done, void *arg);

/* A change proposed later, once something it depends on is known (a classic queue's counts
 * from its home): cluster_wait_hold counts it in the open wait (NULL when none is open; the
 * answer then waits for it), and cluster_wait_propose_held proposes op with args (freed) into
 * that wait, or, op NULL, fails the wait with status (an AMQP reply code) and text; either
 * releases the hold. w may be NULL: the change is proposed without a wait. */
struct cluster_wait *cluster_wait_hold(struct server *server);
void cluster_wait_propose_held(struct server *server, struct cluster_wait *w, const char *op, struct table_buf *args,
                               int status, const char *text);

/* Fills target with the server's model: start_index is the index read back with the saved
 * definitions (server_cluster_index), ctx the server. */
void cluster_target_init(struct cluster_target *target, struct server *server);

/* The target's operations, for tests that drive a server without a node. export: the model's
 * part (what the definitions blob keeps); snapshot: that and the quorum queues' states; import
 * takes either (the quorum queues' part only when present; the model's unless replay). */
void cluster_target_apply(void *server, uint64_t index, const struct meta_command *cmd, bool replay,
                          struct meta_result *out);
int cluster_target_export(void *server, struct table_buf *out);
int cluster_target_snapshot(void *server, struct table_buf *out);
int cluster_target_import(void *server, uint64_t index, bool replay, struct proto_bytes state);

/* Shared by cluster_target.c and cluster_state.c: fields of a command or of a state's entry,
 * read as a stranger's. A field of the wrong type, or a string over 255 bytes, sets bad; an
 * absent one reads as empty / false. */
struct cluster_fields {
    struct proto_bytes args; /* a validated table's contents */
    bool bad;
};
struct proto_bytes cluster_get_string(struct cluster_fields *f, const char *key);
bool cluster_get_bool(struct cluster_fields *f, const char *key);
struct proto_bytes cluster_get_table(struct cluster_fields *f, const char *key);

#endif
