/* broker/cluster/cluster_node.h: one node of a cluster at run time (docs/cluster.md): the
 * metadata group's Raft server (libraft over raft_uv, its log under the data directory), driven
 * from Warren's own event loop, and the cluster port it listens on, which carries both Raft's
 * messages and the commands a follower forwards to the leader. The broker proposes a change of
 * metadata here and learns its result when this node's state machine applies it (meta_fsm.h),
 * whichever node led. With no cluster configured nothing here exists.
 *
 * Members. A member's Raft id is derived from its address (cluster_members.h), so every node,
 * and a node that joins later, names every member alike. A node started on an empty directory
 * whose own address is among cluster_peers bootstraps the group with every listed member as a
 * voter (every founding member is given the same list); a node whose address is not among them
 * starts without any configuration, a non-member that stays a follower and never votes until a
 * leader adds it (cluster_node_join). Later starts use the membership stored in the log, whatever
 * cluster_peers says. Addresses are "host:port" with an IPv4 address, "[IPv6]" or a DNS name
 * (cluster_link.h: a name is resolved each time it is dialled; its identity is its spelling, so
 * every member must be given the same spelling of each).
 *
 * Membership changes. Adding and removing a member are requests, not commands of the log: the
 * node that wants the change (the one joining, or a member forgetting another) sends the request
 * to whoever leads (or, a joining node that knows no live leader, to a member it was told of,
 * which relays it), and sends it again every 500 ms for as long as the asker renews its wish, until its own copy of the
 * configuration shows the change. The leader turns a request into libraft's configuration changes
 * (raft_add, then raft_assign to voter: libraft catches the new member up before it counts; or
 * raft_remove, after handing leadership over when it is the one to go), one at a time. The
 * configuration entries are the only replicated state: a leader elected in the middle of a change
 * finishes it at the asker's next request. Requests are idempotent.
 *
 * Threads and the loop. Everything here runs on the thread of `loop`: Raft's callbacks, the
 * target's functions and `done` (raft_uv's disk work runs in libuv's thread pool and reports back
 * through the loop). Nothing blocks the loop except cluster_node_start (raft_uv loads the log)
 * and cluster_node_stop. The process must ignore SIGPIPE (the broker does): libuv writes to
 * peers without MSG_NOSIGNAL.
 *
 * Authentication. Every member is given the same secret (cluster_secret_load); a connection on
 * the cluster port, either way, is used only after both ends proved they know it
 * (cluster_link.h). What follows the handshake is neither encrypted nor authenticated, and a
 * member is trusted as much as libraft trusts a peer (libraft 0.15 allocates the message sizes a
 * peer announces): members should talk over a private network (docs/cluster.md). */
#ifndef WARREN_CLUSTER_NODE_H
#define WARREN_CLUSTER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_members.h"
#include "cluster_secret.h"
#include "event_loop.h"
#include "meta_fsm.h"
#include "table.h"

/* The log since the last snapshot grows to this at least before the next one (the default of
 * cluster_snapshot_log_bytes). Each snapshot closes the open log segment, which slows the log
 * writes after it (cluster_node.c, SEGMENT_BYTES): with a snapshot every 1,024 entries that came
 * more than once a second at 1,000 msg/s, and was the quorum queues' confirm p99. */
#define CLUSTER_SNAPSHOT_LOG_BYTES (UINT64_C(16) << 20)

struct cluster_node;

/* The node's model as the cluster drives it (the broker's definitions). Unlike meta_target, it
 * sees Raft's log index of each command, so that a restart never applies a command twice to a
 * model that persisted its effect: the model saves the index of the last command it applied
 * together with the definitions it saves (atomically, in the same record), and gives it back as
 * start_index. At start the node skips every entry, and any snapshot, at or below start_index;
 * everything after is applied in order. */
struct cluster_target {
    uint64_t start_index;        /* the index saved with the model's durable state; 0 for none */
    /* As meta_target.apply, for the entry at `index` (increasing). replay: the entry is at or
     * below the model's position (start_index, or a snapshot imported), so the model holds its
     * effect already; only the part of the state that is not saved with the model (in memory,
     * rebuilt at every start from the last snapshot and the log after it: the replicated quorum
     * queues) is to be applied, and out is ignored. */
    void (*apply)(void *ctx, uint64_t index, const struct meta_command *cmd, bool replay, struct meta_result *out);
    /* Appends the replicated state to out (a table's contents). 0 or -1. */
    int (*export_state)(void *ctx, struct table_buf *out);
    /* Makes the model equal to a state export_state wrote, as of log index `index` (a snapshot
     * from the leader, or this node's own at start, checked as untrusted). Objects it keeps keep
     * their contents. replay: the model is at or past index already; only the part not saved
     * with the model is imported. 0 or -1 (then nothing changed). */
    int (*import_state)(void *ctx, uint64_t index, bool replay, struct proto_bytes state);
    void *ctx;
};

struct cluster_config {
    const char *node_name;       /* shown in cluster_status; unique in the cluster */
    const char *address;         /* this node's host:port as its peers reach it */
    uint16_t listen_port;        /* the port the cluster listener binds on address's host; 0: address's
                                  * (differs behind a forwarded port) */
    const char *peers;           /* comma-separated host:port of every founding member, this one
                                  * included; or, for a node that is to join, of members to ask */
    const char *dir;             /* Raft's directory (created if missing) */
    unsigned election_timeout_ms;  /* 0: 1000 */
    unsigned heartbeat_timeout_ms; /* 0: 100 */
    unsigned snapshot_threshold;   /* entries between snapshots at least; 0: 1024 */
    uint64_t snapshot_log_bytes;   /* and the log since the last snapshot weighs this at least, or
                                    * as much as a snapshot if that is more (65,536 entries at
                                    * most); 0: CLUSTER_SNAPSHOT_LOG_BYTES */
    unsigned propose_timeout_ms;   /* a proposal not applied by then fails with -ETIMEDOUT; 0: 10000 */
    const char *recover;           /* NULL, or comma-separated host:port of the members of a
                                    * configuration forced into the log before the node starts
                                    * (raft_recover): the way out of a lost majority, run once on
                                    * the one survivor with the longest log, every node stopped;
                                    * must include this node */
    const uint8_t *secret;         /* the cluster's shared secret (copied at start), required: */
    size_t secret_len;             /* CLUSTER_SECRET_MIN..CLUSTER_SECRET_MAX bytes */
};

/* Starts the node on loop: opens (or bootstraps) the group, listens on the cluster port, and
 * applies committed commands to target from then on. A snapshot on disk newer than
 * target->start_index is imported before this returns. Returns NULL with a message in err (also
 * when cfg has no secret, or one of the wrong size). */
struct cluster_node *cluster_node_start(struct event_loop *loop, const struct cluster_config *cfg,
                                        const struct cluster_target *target, char *err, size_t errlen);

/* Stops the node: pending proposals complete with -ECANCELED, Raft closes, the port closes.
 * Runs the libuv loop until everything is released (blocking, at most ~2 s more for appends in
 * flight to reach the disk); NULL is ignored. Never call it from a `done` or a target function. */
void cluster_node_stop(struct cluster_node *node);

/* Called once with the result of a proposal: the state machine's result when this node applied
 * the command (status 0, an AMQP reply code, META_MALFORMED) -- for a successful change of the
 * definitions (any op but qq.*, "sync" and "ack") only once every other member applied it too,
 * or an election timeout passed without its "ack" (that member is then not waited for until it
 * acks again: cluster_node.c, visibility) -- or status -ETIMEDOUT (not applied
 * here within the propose timeout: no leader reachable, e.g. in a minority; the command may still
 * be applied later) or -ECANCELED (the node stops). */
typedef void (*cluster_done_fn)(void *arg, const struct meta_result *result);

/* Proposes op with args (a table's contents, copied): through Raft if this node leads, otherwise
 * forwarded to the leader over the cluster port; re-proposed with the same session and request
 * after a leader change until applied here or timed out, so it is applied at most once. done is
 * called exactly once, never from inside this call (from the loop, after libuv ran), and may
 * propose or forget. The same command is sent again every 500 ms and at each change of leader
 * until it is applied here. Returns a handle > 0, or 0 when out of memory or args is too large
 * (done is not called). */
uint64_t cluster_node_propose(struct cluster_node *node, const char *op, const struct table_buf *args,
                              cluster_done_fn done, void *arg);

/* Forgets a proposal whose asker is gone (its connection closed): done will not be called. The
 * command itself may still be applied. Unknown handles are ignored. */
void cluster_node_forget(struct cluster_node *node, uint64_t handle);

struct cluster_member {
    uint64_t id;
    char address[CLUSTER_ADDRESS_MAX];
    const char *role;            /* "voter", "standby", "spare" (cluster_member_role_name) */
    bool voter;
    bool leader;
    bool self;
};

struct cluster_status {
    char node_name[CLUSTER_ADDRESS_MAX];
    const char *state;           /* "leader", "follower", "candidate", "unavailable" */
    uint64_t term;
    uint64_t commit_index, last_applied;
    uint64_t applied_commands;   /* commands applied to the target */
    size_t member_count;
    struct cluster_member members[CLUSTER_MEMBERS_MAX];
};

/* How far a requested membership change is, as this node's configuration shows it. */
enum cluster_change {
    CLUSTER_CHANGE_STARTED,      /* asked for by this call: requests go out until done or it lapses */
    CLUSTER_CHANGE_PENDING,      /* asked for before, and renewed by this call */
    CLUSTER_CHANGE_DONE,         /* the configuration shows it */
};

/* Asks the cluster to make this node a voter, through the member at `via` (any member's
 * host:port) while no leader is known to this node, else through the leader. The wish lasts
 * renew_ms from this call: call again to keep it (an asker that went away lets it lapse). A call
 * while another change of this node's is pending replaces it. Returns DONE when this node is a
 * voter already, STARTED (this call began the wish) or PENDING, or -1 with the reason in err (a
 * bad address, via is this node, this node is a member of a cluster via is not in). */
int cluster_node_join(struct cluster_node *node, const char *via, unsigned renew_ms, char *err, size_t errlen);

/* Asks the cluster to remove the member at address (stopped, normally), from a voter that stays:
 * as cluster_node_join, through the leader. The leader hands leadership over first when it is the
 * one to go. Returns DONE when address is not in this node's configuration (any more), STARTED
 * or PENDING, or -1 with the reason in err (a bad address, address is this node, this node is no
 * voter). Since this node stays a voter, a removal never leaves the cluster without one. */
int cluster_node_remove(struct cluster_node *node, const char *address, unsigned renew_ms, char *err, size_t errlen);

/* True when this node leads the group right now (it may learn otherwise at any time). */
bool cluster_node_is_leader(const struct cluster_node *node);
/* True when this node knows a leader (itself or another) right now: false while an election
 * runs, and on a member cut off from the others once its election timeout passed. */
bool cluster_node_leader_known(struct cluster_node *node);
/* True when this node is in the configuration it holds (as a voter, standby or spare); false on
 * a node waiting to join, or one that was removed. */
bool cluster_node_is_member(const struct cluster_node *node);
/* True when this run forced the configuration at start (cluster_config.recover). */
bool cluster_node_recovered(const struct cluster_node *node);
/* This node's address as the members know it (cluster_address, or its entry of cluster_peers). */
const char *cluster_node_address(const struct cluster_node *node);
/* This node's node_name (its address when none was given). */
const char *cluster_node_name(const struct cluster_node *node);

/* While this node leads, down(arg, address) is called once for a member it has heard nothing
 * from (no Raft reply) for down_after_ms, and again if it comes back and goes silent again: a
 * member dead, or cut off from the leader. NULL down: nobody is told. */
void cluster_node_watch_members(struct cluster_node *node, unsigned down_after_ms,
                                void (*down)(void *arg, const char *address), void *arg);

/* Peer messages: what members tell each other outside the log (cluster_link.h's peer links;
 * classic queues across nodes, docs/cluster.md). A message is a command as meta_command_encode
 * writes it (op and args; the session and request are the sender's and mean nothing here). From
 * one node to another, messages arrive in the order sent, or the link is lost: then
 * lost(arg, peer) is called on both nodes (on each for its own side of the pair of connections),
 * and whatever either sent may or may not have arrived. message(arg, from, bytes, len) gets a
 * command that decodes (borrowed bytes); both are called from inside libuv's run, where nothing
 * may be proposed or sent: copy, and act at the end of the pass. */
typedef void (*cluster_message_fn)(void *arg, const char *from, const uint8_t *bytes, size_t len);
typedef void (*cluster_peer_lost_fn)(void *arg, const char *peer);
void cluster_node_on_peers(struct cluster_node *node, cluster_message_fn message, cluster_peer_lost_fn lost,
                           void *arg);
/* Queues op with args for the member at address (not this node). Written at
 * cluster_node_flush_peers, or at the next pass of the node. 0, or a negative errno as
 * link_send's (-ENOTCONN: that member was unreachable a moment ago). */
int cluster_node_send(struct cluster_node *node, const char *address, const char *op, const struct table_buf *args);
/* Bytes sent to the member at address and not yet written to the kernel. */
size_t cluster_node_peer_backlog(struct cluster_node *node, const char *address);
/* Writes what cluster_node_send queued (at the end of a loop pass). Never inside libuv's run. */
void cluster_node_flush_peers(struct cluster_node *node);

/* Fills out with the node's view of the cluster right now. */
void cluster_node_status(struct cluster_node *node, struct cluster_status *out);

#endif
