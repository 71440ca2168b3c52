/* broker/cluster/meta_fsm.h: the replicated state machine of a cluster's metadata (docs/cluster.md):
 * the commands that change definitions (vhosts, users, permissions, policies, exchanges, queues,
 * bindings) go through one Raft group, and every node applies each committed command, in log
 * order, exactly once, to its own model through a target. This file is the replication logic
 * only: the command envelope, exactly-once application, snapshots, and completing the request of
 * the node that proposed a command when its entry is applied there. It knows nothing of sockets
 * or of the broker's objects (the target does), so it is tested with libraft's in-memory fixture.
 *
 * A command is an AMQP field table (protocol/table.h), encoded once by the proposer:
 *     "op"       longstr   what to do (the target's vocabulary, e.g. "queue.declare")
 *     "session"  uint64    the proposing node's session: random, new at every start
 *     "request"  uint64    1, 2, 3, ... within the session
 *     "args"     table     the op's fields
 * Every command read back (from the log, from a peer, from a snapshot) is checked as if a
 * stranger wrote it: a command that does not decode is applied as a no-op that fails with
 * META_MALFORMED on every node alike, so all nodes stay identical.
 *
 * Exactly once. A proposer whose request was not answered (its leader died, the entry may or may
 * not have been committed) proposes the same command again, with the same session and request.
 * The state machine remembers, per session, which requests it applied (all below a floor, and a
 * window of 1024 above it), and applies a repeated one as a no-op that reports the first
 * application's success (META_DUPLICATE). The sessions are part of the snapshot, so a node that
 * catches up from one agrees. At most META_SESSIONS sessions are kept: the one applied longest
 * ago goes first (a node restarted that often is not waiting for a retry from the oldest).
 *
 * Results. The target's result for an applied command is a status (0 or an AMQP reply code, with
 * a short text), the same on every node. The proposer learns it when its own node applies the
 * entry: meta_fsm_expect registers a callback under (session, request) that the apply calls.
 * So a declare-ok is sent after the declaring node applied the command, whichever node led. */
#ifndef WARREN_META_FSM_H
#define WARREN_META_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "sessions.h"
#include "table.h"

#define META_SESSIONS SESSIONS_MAX   /* sessions remembered for exactly-once application (sessions.h) */
#define META_WINDOW SESSIONS_WINDOW  /* requests remembered above a session's floor */
#define META_TEXT_MAX 256      /* a result's text, bytes */

/* Statuses besides 0 and AMQP reply codes. */
enum {
    META_MALFORMED = -1,       /* the command did not decode (the same on every node) */
    META_DUPLICATE = -2,       /* a repeated request: applied once already, not again */
};

/* One decoded command; borrowed from the entry's bytes. */
struct meta_command {
    struct proto_bytes op, args; /* args: a table's contents */
    uint64_t session, request;
};

/* What a command did: status 0 (done), an AMQP reply code (refused, e.g. 406), or META_*. */
struct meta_result {
    int status;
    char text[META_TEXT_MAX];
};

/* The node's model, as the state machine drives it. */
struct meta_target {
    /* Applies cmd (never a duplicate, never malformed) deterministically: the same state and
     * command give the same result and the same new state on every node. */
    void (*apply)(void *ctx, const struct meta_command *cmd, struct meta_result *out);
    /* Appends the whole state to out (a table's contents). 0 or -1. */
    int (*export_state)(void *ctx, struct table_buf *out);
    /* Replaces the whole state with what export_state wrote. 0 or -1 (then nothing changed). */
    int (*import_state)(void *ctx, struct proto_bytes state);
    void *ctx;
};

/* Called when the entry of an expected request is applied on this node. */
typedef void (*meta_done_fn)(void *arg, const struct meta_result *result);


struct meta_fsm {
    struct raft_fsm raft;      /* give &fsm->raft to raft_init */
    struct meta_target target;
    struct sessions sessions;
    struct session_wait *pending; /* each the first member of a waiter in meta_fsm.c */
    uint64_t applied;          /* commands applied to the target (duplicates and malformed not counted) */
    uint64_t apply_seq;        /* entries seen by apply, to age sessions */
    size_t snapshot_hint;      /* bytes to reserve for the next snapshot (the last one's, and more) */
};

/* Sets up fsm over target. 0 or -ENOMEM. */
int meta_fsm_init(struct meta_fsm *fsm, const struct meta_target *target);
/* Frees what fsm holds; pending requests are completed with status -ECANCELED. */
void meta_fsm_close(struct meta_fsm *fsm);

/* Encodes a command into *out, allocated with raft_malloc (raft_apply takes it over). 0 or
 * -ENOMEM / -E2BIG. */
int meta_command_encode(struct raft_buffer *out, const char *op, uint64_t session, uint64_t request,
                        const struct table_buf *args);
/* Decodes and checks an entry. 0 or -EBADMSG. */
int meta_command_decode(const struct raft_buffer *buf, struct meta_command *out);

/* Batches. An entry may instead hold several commands, applied in order, each exactly as if it
 * were its own entry (its own session and request, its own result, its own expectation): a
 * table with one field
 *     "batch"    array     of tables, each a command's table as meta_command_encode wrote it
 * A leader gathers what it is asked to append within one pass of its loop into one entry, so
 * that a thousand publishes cost one append, one replication message and one disk write per
 * member instead of a thousand (cluster_node.c). A batch that does not validate as a whole is
 * skipped whole; an element that is a table but no command is skipped alone (as a malformed
 * entry is), alike on every node. Every command of a batch shares the entry's log index, so
 * only commands whose effects the model does not save with an index may be batched
 * (cluster_node.h: the quorum queues' qq.*). */
/* Appends command (len bytes, as meta_command_encode wrote it) to batch (an array's contents).
 * 0 or -ENOMEM. */
int meta_batch_add(struct table_buf *batch, const uint8_t *command, size_t len);
/* Writes the entry holding batch's commands to out (a table's contents). 0 or -ENOMEM. */
int meta_batch_encode(struct table_buf *out, const struct table_buf *batch);

/* Calls done(arg, result) once the command (session, request) is applied on this node (or with
 * status -ECANCELED at meta_fsm_close / meta_fsm_forget). 0 or -ENOMEM. */
int meta_fsm_expect(struct meta_fsm *fsm, uint64_t session, uint64_t request, meta_done_fn done, void *arg);
/* Stops expecting (session, request): its callback is called with -ECANCELED. */
void meta_fsm_forget(struct meta_fsm *fsm, uint64_t session, uint64_t request);

#endif
