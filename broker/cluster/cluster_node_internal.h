/* broker/cluster/cluster_node_internal.h: the node's state, shared by the files that make up
 * a cluster node (cluster_node.c: Raft, the loop, proposals; cluster_membership.c: membership
 * changes). Private to the cluster layer; the broker sees cluster_node.h only. */
#ifndef WARREN_CLUSTER_NODE_INTERNAL_H
#define WARREN_CLUSTER_NODE_INTERNAL_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster_link.h"
#include "cluster_node.h"

#define MEMBERSHIP_RESEND_MS 500 /* an asker's request goes out again this often */

/* A change a leader was asked for, kept while askers renew it (cluster_membership.c). */
struct member_wish {
    raft_id id;                    /* 0: the slot is free */
    char address[CLUSTER_ADDRESS_MAX];
    bool add;                      /* true: make it a voter; false: remove it */
    uint64_t until_ms;             /* forgotten after this unless asked again */
};

/* Membership changes, both sides: what this node asks for, and what it does about requests
 * while it leads. */
struct membership {
    /* The asker's side: one change at a time. */
    bool asking;
    bool ask_add;
    char ask_address[CLUSTER_ADDRESS_MAX]; /* the member to add (this node) or remove */
    char via[CLUSTER_ADDRESS_MAX];         /* a member to ask when no leader is known */
    uint64_t ask_until_ms, ask_resend_ms;
    /* The leader's side. */
    struct member_wish wishes[CLUSTER_MEMBERS_MAX];
    struct raft_change change;     /* the configuration change in flight, if change_busy */
    bool change_busy;
    struct raft_transfer transfer; /* a leadership transfer in flight, if transfer_busy */
    bool transfer_busy;
};

enum proposal_state { PROPOSAL_PENDING, PROPOSAL_AWAITING, PROPOSAL_COMPLETED, PROPOSAL_FORGETTING };

struct proposal {
    struct proposal *prev, *next;  /* in node->pending, or node->completed */
    uint64_t request;              /* also the handle */
    enum proposal_state state;
    bool batched;                  /* a qq.* command: the leader may append it in a batch */
    struct raft_buffer command;    /* as meta_command_encode wrote it; copied for each send */
    uint64_t deadline_ms, resend_ms;
    raft_id sent_to;               /* the leader it was last handed to, 0 when not handed to any */
    cluster_done_fn done;
    void *arg;
    struct meta_result result;
    struct cluster_node *node;
    bool visible;                  /* answered once every member applied it (cluster_node.c, visibility) */
    uint64_t acks_deadline_ms;     /* PROPOSAL_AWAITING: members still silent by then are slow */
    raft_id need[CLUSTER_MEMBERS_MAX]; /* PROPOSAL_AWAITING: members whose ack is missing */
    unsigned nneed;
};

struct proposal_list {
    struct proposal *head, *tail;
};

struct cluster_node {
    struct event_loop *loop;
    uv_loop_t uv;
    struct raft_io io;
    struct raft raft;
    struct meta_fsm fsm;
    struct cluster_link link;
    struct cluster_target target;
    char name[CLUSTER_ADDRESS_MAX];
    char address[CLUSTER_ADDRESS_MAX];
    unsigned propose_timeout_ms;
    int backend_fd;
    uint64_t uv_timer, tick_timer; /* Warren timer ids, 0 when not armed */
    uint64_t session, last_request;
    /* raft_uv's send; io.send is guarded_send in front of it (cluster_node.c) */
    int (*uv_send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb);
    struct proposal_list pending, completed;
    struct proposal_list awaiting; /* applied here, waiting for the other members' acks */
    /* Visibility: the (session, request) of changes other members proposed that this node
     * applied since the last ack went out (16 bytes each, big-endian), and the members that
     * missed an ack deadline and are not waited for until an ack of theirs is applied. */
    uint8_t *acks;
    size_t acks_len, acks_cap;
    raft_id slow[CLUSTER_MEMBERS_MAX];
    unsigned nslow;
    uint64_t model_index, applied_commands;
    bool uv_ready, io_ready, raft_ready, raft_closed;
    bool stopping;                 /* in cluster_node_stop: append nothing more */
    /* Followers learn that an entry is committed from the leader's next append, which without
     * traffic is the next heartbeat: up to heartbeat_timeout after the leader applied it (a
     * declare through a follower waited ~200 ms on loopback). So after the leader applies
     * commands it appends a barrier, whose append carries the new commit index at once. */
    bool push_commit;              /* commands applied as leader since the last barrier went out */
    bool held_back;                /* a proposal waits for the session's window (proposal_send) */
    bool unsent;                   /* a pending proposal was not handed to anyone */
    raft_id sent_leader;           /* the leader proposals were last handed to */
    struct raft_barrier barrier;
    bool barrier_in_flight;
    /* The leader's batch (meta_fsm.h, batches): the qq.* commands it was asked to append since
     * the last flush, its own and forwarded ones, in the order asked; appended as one entry at
     * the end of the pass (node_pump), or before any other command so that order holds. */
    struct table_buf batch;        /* array contents */
    unsigned batch_count;
    /* The entry target_apply saw last (a batch's commands share its index), and whether its
     * commands reach the model for the first time (above model_index when it began). */
    uint64_t entry_index;
    bool entry_live;
    /* The leader's watch over the members (cluster_node_watch_members), by position in the
     * configuration; raft_progress.recent_recv says whether a member answered since libraft last
     * reset it (each election timeout). */
    struct {
        raft_id id;
        uint64_t silent_since; /* loop ms; 0: heard from */
        bool reported;
    } watch[CLUSTER_MEMBERS_MAX];
    unsigned down_after_ms;
    /* Snapshots: once the log since the last one has snapshot_base entries and weighs
     * snapshot_due_bytes (the larger of cluster_snapshot_log_bytes and the last snapshot's
     * size, so that a large state, quorum queues' messages, is not copied every few entries),
     * or has SNAPSHOT_THRESHOLD_MAX entries. applied_bytes and applied_entries count since the
     * last snapshot; libraft's threshold stays at the maximum until one is due. */
    unsigned snapshot_base;
    uint64_t snapshot_log_bytes, snapshot_due_bytes;
    uint64_t applied_bytes, applied_entries;
    void (*member_down)(void *arg, const char *address);
    void *member_down_arg;
    struct membership membership;  /* cluster_membership.c */
    bool recovered;                /* the configuration was forced at this start (recover) */
    /* A leader whose forwarding link closed (leader_gone): until this loop ms, while no leader is
     * known, this node's election timer is kept short. 0: not hurrying. */
    uint64_t hurry_until;
    cluster_message_fn peer_message; /* peer links (cluster_node_on_peers) */
    cluster_peer_lost_fn peer_lost;
    void *peer_arg;
};


/* ---- between cluster_node.c and cluster_membership.c ---- */

/* Schedules a run of the libuv loop on the next pass (cluster_node.c). */
void node_kick(struct cluster_node *node);

/* True when this node is not a voter (waiting to join, a spare being caught up) and has heard
 * nothing from the leader it knows for an election timeout: that leader is likely gone, and,
 * never standing for election, this node would never learn of another by itself. Forwarding to
 * it is pointless then (cluster_node.c). */
bool node_leader_lost(struct cluster_node *node);

/* True when cmd is a membership request ("member.add", "member.remove"). */
bool membership_is_request(const struct meta_command *cmd);
/* A membership request reached this node, which leads (inside uv_run): recorded, acted on at the
 * next tick. */
void membership_on_request(struct cluster_node *node, const struct meta_command *cmd);
/* Every tick, outside uv_run: the asker's request goes out again when due; the leader takes the
 * next step of the changes it was asked for. */
void membership_tick(struct cluster_node *node, uint64_t now_ms);
/* The forwarding link connected: the asker's request goes out now. */
void membership_link_ready(struct cluster_node *node);

#endif
