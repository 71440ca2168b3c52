/* broker/cluster/sessions.h: exactly-once application for the cluster's state machines
 * (meta_fsm, qq_fsm). A proposer names each command by its session (random, new at every start)
 * and a request number (1, 2, 3, ...); a proposer that did not hear back proposes the same
 * command again. The state machine records, per session, which requests it applied (all below a
 * floor, and a window of SESSIONS_WINDOW above it), so a repeat is recognised and applied as a
 * no-op. At most SESSIONS_MAX sessions are kept: the one applied longest ago goes first. The
 * record is part of a state machine's snapshot, so a member that catches up from one agrees. */
#ifndef WARREN_SESSIONS_H
#define WARREN_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation failures inside uthash leave the item's hh.tbl NULL instead of calling exit(). */
#ifndef HASH_NONFATAL_OOM
#define HASH_NONFATAL_OOM 1
#endif
#include <uthash.h>

#include "proto.h"
#include "table.h"

#define SESSIONS_MAX 1024    /* sessions remembered */
#define SESSIONS_WINDOW 1024 /* requests remembered above a session's floor */

struct session {
    uint64_t id;
    uint64_t floor;                          /* every request <= floor counts as applied */
    uint64_t seen;                           /* the apply sequence number of its latest request */
    uint64_t window[SESSIONS_WINDOW / 64];   /* bit i: request floor + 1 + i applied */
};

/* The sessions of one state machine; zero-initialised is empty. */
struct sessions {
    struct session *v;
    size_t n, cap;
};

/* Records request `request` of session `session` as applied at apply sequence number `seq`.
 * True when it is new (apply it), false when it was applied before (a duplicate). When memory
 * runs out the request counts as new, as on a member that evicted the session. */
bool sessions_record(struct sessions *s, uint64_t session, uint64_t request, uint64_t seq);

/* Appends the sessions to `array` (an array's contents, one table per session). 0 or -1. */
int sessions_encode(const struct sessions *s, struct table_buf *array);

/* Replaces *out (which must be empty) with the sessions of an array written by sessions_encode,
 * checked as untrusted. 0 or -1 (then *out is still empty). */
int sessions_decode(struct proto_bytes array, struct sessions *out);

/* Frees what s holds and leaves it empty. */
void sessions_free(struct sessions *s);

/* A request this member proposed and waits to see applied, in a hash table keyed by (session,
 * request): every node looks up every command it applies, and hundreds may be waiting (a
 * publisher's confirm window), so the look-up must not walk them. A state machine embeds it as
 * the first member of its own waiter, which adds the callback with its result type. Two waiters
 * under one key are allowed (either is taken first). */
struct session_wait {
    uint64_t session, request; /* together, in this order: the key */
    UT_hash_handle hh;
};

/* Adds w, waiting for (session, request), to *table (NULL: empty). 0 or -ENOMEM. */
int session_wait_add(struct session_wait **table, struct session_wait *w, uint64_t session, uint64_t request);
/* Removes and returns a waiter of (session, request), or NULL. */
struct session_wait *session_wait_take(struct session_wait **table, uint64_t session, uint64_t request);

#endif
