/* broker/cluster/cluster_node.c: one node of the metadata group at run time (contract:
 * cluster_node.h): libraft over raft_uv on a libuv loop that Warren's loop drives, proposals and
 * their retries, forwarded commands, and the target wrapper that gives the model each entry's
 * log index. Membership changes are cluster_membership.c's (the state both share:
 * cluster_node_internal.h).
 *
 * Driving libuv. The libuv loop's epoll descriptor is watched for readable in Warren's loop, and
 * one Warren timer is kept armed at uv_backend_timeout(); either runs uv_run(UV_RUN_NOWAIT),
 * after which the timeout is read again. Whatever this file does outside uv_run that can queue
 * libuv work (raft_apply, a write, a close) re-arms that timer at 0 ms (node_kick), so nothing
 * waits for a deadline that was computed before the work existed. Raft's callbacks, and so the
 * state machine, run inside uv_run on Warren's thread; the callers' `done` runs after uv_run
 * returns, from the loop's top level (completions are queued, then delivered).
 *
 * Indexes. libraft 0.15 applies the entry at r->last_applied + 1 and only then advances
 * last_applied (replicationApply), and takes a snapshot synchronously at r->last_applied right
 * after a batch of applies (takeSnapshot). So during apply the entry's index is
 * raft_last_applied() + 1, and a snapshot is "the state as of raft_last_applied()". The model's
 * own position, model_index, is the later of start_index and the last index it applied or
 * imported; entries at or below it are applied to meta_fsm (sessions still record them, so
 * exactly-once holds) but not to the model, and the snapshot carries
 * max(last_applied, model_index): while a restarted node replays entries its model already
 * holds, the model's state is ahead of Raft's, and the snapshot must say so, or a node
 * installing it would apply those entries a second time. */
#include "cluster_node.h"

#include "aio_release.h"

#include <endian.h>
#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cluster_link.h"
#include "cluster_node_internal.h"
#include "log.h"

#define RETRY_MS 500        /* a proposal not applied by then is sent again */
#define TICK_MS 100         /* how often retries, timeouts and leader changes are checked */
#define CONNECT_RETRY_MS 200
#define SNAPSHOT_THRESHOLD_MAX 65536 /* entries between snapshots at most (libraft keeps them in memory) */
#define BATCH_MAX_BYTES (1u << 20)   /* a batch this large is appended at once, mid-pass */
/* Raft's log segments (libraft's default: 8 MiB). A segment closes when it is full and at every
 * snapshot; each close truncates, syncs and renames the file, and the log writes just after it
 * wait longer for the disk (about 20 ms on the leader here, against 1 ms). Segments larger than
 * CLUSTER_SNAPSHOT_LOG_BYTES close at snapshots only. (Its AIO context's io_destroy, which
 * stalled this thread as long, runs on aio_release.c's thread.) Disk cost: libraft keeps two
 * spare segments allocated, 3 x 32 MiB per node. */
#define SEGMENT_BYTES (32u << 20)

_Static_assert(CLUSTER_ADDRESS_MAX == 256, "cluster_link.c bounds addresses at 256 bytes");

/* ---- lists ---- */

static void list_push(struct proposal_list *l, struct proposal *p)
{
    p->next = NULL;
    p->prev = l->tail;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
}

static void list_remove(struct proposal_list *l, struct proposal *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    p->prev = p->next = NULL;
}

static void proposal_free(struct proposal *p)
{
    raft_free(p->command.base);
    free(p);
}

static void result_set(struct meta_result *r, int status, const char *text)
{
    r->status = status;
    snprintf(r->text, sizeof(r->text), "%s", text);
}

/* ---- driving libuv from Warren's loop ---- */

static void node_pump(struct cluster_node *node);
static void send_acks(struct cluster_node *node);
static void proposal_send(struct cluster_node *node, struct proposal *p);

static void on_uv_timer(struct event_loop *loop, void *data)
{
    (void)loop;
    struct cluster_node *node = data;
    node->uv_timer = 0;
    node_pump(node);
}

static void on_backend(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop, (void)fd, (void)mask;
    node_pump(data);
}

/* Arms the one Warren timer at delay_ms, or not at all for a negative delay. */
static void arm_uv_timer(struct cluster_node *node, int delay_ms)
{
    if (node->uv_timer)
        loop_timer_cancel(node->loop, node->uv_timer);
    node->uv_timer = delay_ms >= 0 ? loop_timer_add(node->loop, (uint64_t)delay_ms, on_uv_timer, node) : 0;
    if (delay_ms >= 0 && !node->uv_timer)
        node->uv_timer = loop_timer_add(node->loop, 1, on_uv_timer, node); /* out of memory: try again */
}

/* Libuv has work that its current deadline does not cover: run it on the next pass. */
void node_kick(struct cluster_node *node)
{
    arm_uv_timer(node, 0);
}

/* Delivers completed proposals. Only from the loop's top level: a done may propose or forget. */
static void deliver_completed(struct cluster_node *node)
{
    struct proposal *p;
    while ((p = node->completed.head) != NULL) {
        list_remove(&node->completed, p);
        struct meta_result r = p->result;
        cluster_done_fn done = p->done;
        void *arg = p->arg;
        proposal_free(p);
        done(arg, &r);
    }
}

static void barrier_done(struct raft_barrier *req, int status)
{
    (void)status; /* a failed barrier (leadership lost) only means no early push */
    struct cluster_node *node = req->data;
    node->barrier_in_flight = false;
    if (node->push_commit)
        node_kick(node);
}

/* Outside uv_run: appends the barrier that tells followers of the commands applied since the
 * last one. One at a time, so it never feeds itself (a barrier is not a command). */
static bool push_commit(struct cluster_node *node)
{
    if (!node->push_commit || node->barrier_in_flight || node->stopping)
        return false;
    node->push_commit = false;
    if (raft_state(&node->raft) != RAFT_LEADER)
        return false;
    node->barrier.data = node;
    if (raft_barrier(&node->raft, &node->barrier, barrier_done) != 0)
        return false;
    node->barrier_in_flight = true;
    return true;
}

/* Sends what proposal_send held back and the window now admits (outside uv_run). */
static void send_held_back(struct cluster_node *node)
{
    if (!node->held_back)
        return;
    node->held_back = false;
    for (struct proposal *p = node->pending.head; p; p = p->next)
        if (p->sent_to == 0)
            proposal_send(node, p);
}

static bool flush_batch(struct cluster_node *node);

static void node_pump(struct cluster_node *node)
{
    uv_run(&node->uv, UV_RUN_NOWAIT);
    send_held_back(node);
    send_acks(node);
    bool appended = flush_batch(node);
    bool forwarded = link_flush(&node->link);
    if (push_commit(node) || appended || forwarded)
        uv_run(&node->uv, UV_RUN_NOWAIT); /* send it now, not at the next timer */
    uv_update_time(&node->uv); /* the timeout is counted from libuv's clock: make it now */
    arm_uv_timer(node, uv_backend_timeout(&node->uv));
    deliver_completed(node);
}


/* ---- visibility: a change answered once every member applied it ----
 *
 * Issue 13 asks that a declare be visible on the other nodes when its -ok returns, as RabbitMQ
 * with Mnesia had it (a schema change answered once every running node committed it); Raft
 * alone answers once this node applied it, and another node may route a publish against a copy
 * a round trip older (RabbitMQ's Khepri has that window too: its docs, "Consistency Model and
 * Visibility Guarantees", scenario B). So a change of the definitions (every command but the
 * quorum queues' qq.*, "sync" and "ack") waits, once applied here, for an "ack" from every
 * other member: each member, having applied changes other members proposed, proposes one "ack"
 * per loop pass naming them all. A member whose ack does not come within an election timeout is
 * marked slow and not waited for again until an ack of its own is applied; so a dead member
 * delays one change by that timeout, and the change is answered anyway. */

#define ACK_BYTES 16                /* session, request: big-endian */
#define ACKS_MAX_BYTES (1u << 20)   /* acks kept for the next "ack" at most; more are dropped */

static bool wants_acks(struct proto_bytes op)
{
    return !(op.len >= 3 && memcmp(op.ptr, "qq.", 3) == 0) && !proto_bytes_is(op, "sync") &&
           !proto_bytes_is(op, "ack");
}

static int slow_index(const struct cluster_node *node, raft_id id)
{
    for (unsigned i = 0; i < node->nslow; i++)
        if (node->slow[i] == id)
            return (int)i;
    return -1;
}

static void set_slow(struct cluster_node *node, raft_id id, bool slow)
{
    int at = slow_index(node, id);
    if (slow && at < 0 && node->nslow < CLUSTER_MEMBERS_MAX)
        node->slow[node->nslow++] = id;
    else if (!slow && at >= 0)
        node->slow[at] = node->slow[--node->nslow];
}

/* p was applied here: waits for the acks of the members not known slow. False when there is
 * nobody to wait for. */
static bool await_acks(struct cluster_node *node, struct proposal *p)
{
    const struct raft_configuration *c = &node->raft.configuration;
    p->nneed = 0;
    for (unsigned i = 0; i < c->n && p->nneed < CLUSTER_MEMBERS_MAX; i++) {
        const struct raft_server *m = &c->servers[i];
        if (m->id != node->raft.id && m->role != RAFT_SPARE && slow_index(node, m->id) < 0)
            p->need[p->nneed++] = m->id;
    }
    if (p->nneed == 0)
        return false;
    p->state = PROPOSAL_AWAITING;
    p->acks_deadline_ms = loop_now_ms(node->loop) + node->raft.election_timeout;
    list_push(&node->awaiting, p);
    return true;
}

static void awaiting_done(struct cluster_node *node, struct proposal *p)
{
    list_remove(&node->awaiting, p);
    p->state = PROPOSAL_COMPLETED;
    list_push(&node->completed, p);
    node_kick(node);
}

/* An "ack" from member `from` (inside apply): its waits end; it is not slow any more. */
static void apply_ack(struct cluster_node *node, const struct meta_command *cmd)
{
    struct table_value from, acks;
    if (table_find(cmd->args, "from", &from) != 1 || from.type != TABLE_UINT64 ||
        table_find(cmd->args, "acks", &acks) != 1 || acks.type != TABLE_BYTES || acks.v.bytes.len % ACK_BYTES)
        return;
    if (from.v.u64 == node->raft.id)
        return;
    set_slow(node, from.v.u64, false);
    for (uint32_t at = 0; at < acks.v.bytes.len; at += ACK_BYTES) {
        uint64_t session, request;
        memcpy(&session, acks.v.bytes.ptr + at, 8);
        memcpy(&request, acks.v.bytes.ptr + at + 8, 8);
        session = be64toh(session);
        request = be64toh(request);
        if (session != node->session)
            continue;
        for (struct proposal *p = node->awaiting.head; p; p = p->next) {
            if (p->request != request)
                continue;
            for (unsigned i = 0; i < p->nneed; i++)
                if (p->need[i] == from.v.u64) {
                    p->need[i] = p->need[--p->nneed];
                    break;
                }
            if (p->nneed == 0)
                awaiting_done(node, p);
            break;
        }
    }
}

/* This node applied a change another member proposed: it will say so in its next "ack". */
static void queue_ack(struct cluster_node *node, uint64_t session, uint64_t request)
{
    if (node->acks_len + ACK_BYTES > ACKS_MAX_BYTES)
        return; /* the proposer's wait times out instead */
    if (node->acks_len + ACK_BYTES > node->acks_cap) {
        size_t cap = node->acks_cap ? node->acks_cap * 2 : 64 * ACK_BYTES;
        uint8_t *grown = realloc(node->acks, cap);
        if (!grown)
            return;
        node->acks = grown;
        node->acks_cap = cap;
    }
    uint64_t be[2] = {htobe64(session), htobe64(request)};
    memcpy(node->acks + node->acks_len, be, ACK_BYTES);
    node->acks_len += ACK_BYTES;
}

static void ack_sent(void *arg, const struct meta_result *result)
{
    (void)arg, (void)result; /* lost acks only make a proposer wait its timeout */
}

/* Outside uv_run: proposes the acks gathered since the last one, as one command. */
static void send_acks(struct cluster_node *node)
{
    if (node->acks_len == 0 || node->stopping)
        return;
    struct table_buf args = {0};
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = node->raft.id;
    int rc = table_buf_put_field(&args, "from", 4, &v);
    v = (struct table_value){.type = TABLE_BYTES};
    v.v.bytes = (struct proto_bytes){node->acks, (uint32_t)node->acks_len};
    rc |= table_buf_put_field(&args, "acks", 4, &v);
    node->acks_len = 0;
    if (rc == 0)
        cluster_node_propose(node, "ack", &args, ack_sent, NULL);
    table_buf_free(&args);
}

/* Members that let a wait pass its deadline are slow from now on; the waits end. */
static void expire_acks(struct cluster_node *node, uint64_t now)
{
    struct proposal *p = node->awaiting.head;
    while (p) {
        struct proposal *next = p->next;
        if (now >= p->acks_deadline_ms) {
            for (unsigned i = 0; i < p->nneed; i++)
                set_slow(node, p->need[i], true);
            awaiting_done(node, p);
        }
        p = next;
    }
}

/* ---- proposals ---- */

/* meta_fsm's callback: the command was applied here (inside uv_run), or forgotten. */
static bool await_acks(struct cluster_node *node, struct proposal *p);

static void proposal_applied(void *arg, const struct meta_result *result)
{
    struct proposal *p = arg;
    if (p->state != PROPOSAL_PENDING)
        return; /* being forgotten, or timed out: its outcome is already decided */
    struct cluster_node *node = p->node;
    list_remove(&node->pending, p);
    p->result = *result;
    if (result->status == 0 && p->visible && await_acks(node, p))
        return;
    p->state = PROPOSAL_COMPLETED;
    list_push(&node->completed, p);
    node_kick(node); /* delivered after uv_run returns, or on the next pass */
}

static void apply_done(struct raft_apply *req, int status, void *result)
{
    (void)status, (void)result; /* the outcome arrives through meta_fsm; a failure is retried */
    free(req);
}

/* Appends command (a table's contents, copied) to the log; this node leads. raft_uv in libraft
 * 0.15 needs every entry's length to be a multiple of 8: its segment writer asserts it (compiled
 * out in release builds) and its network decoder skips padding the sender never wrote, so an odd
 * length corrupts followers' entries and the log. The command is padded with one more field,
 * "pad" (a longstr of 0-7 zero bytes), which every decoder ignores. 0 or a RAFT_* error. */
static int node_apply(struct cluster_node *node, const uint8_t *bytes, size_t len)
{
    static const uint8_t pad_field[9] = {3, 'p', 'a', 'd', 'S', 0, 0, 0, 0};
    size_t pad = (8 - (len + sizeof(pad_field)) % 8) % 8;
    size_t total = len + sizeof(pad_field) + pad;
    struct raft_apply *req = malloc(sizeof(*req));
    struct raft_buffer buf = {.base = raft_malloc(total), .len = total};
    if (!req || !buf.base) {
        free(req);
        raft_free(buf.base);
        return RAFT_NOMEM;
    }
    uint8_t *out = buf.base;
    memcpy(out, bytes, len);
    memcpy(out + len, pad_field, sizeof(pad_field));
    out[len + sizeof(pad_field) - 1] = (uint8_t)pad;
    memset(out + len + sizeof(pad_field), 0, pad);
    int rc = raft_apply(&node->raft, req, &buf, 1, apply_done);
    if (rc != 0) {
        free(req);
        raft_free(buf.base);
    }
    node_kick(node);
    return rc;
}

/* ---- batches (meta_fsm.h): what a leader is asked within a pass, appended as one entry ----
 *
 * Every entry costs the leader an append and a replication message per follower, and every
 * member a disk write and an acknowledgement; under a stream of publishes, one entry per publish
 * made those per-entry costs the quorum queues' bound (docs/performance.md). So the leader
 * gathers the qq.* commands it is asked for, by its own channels and by forwarded ones, until the
 * end of the pass (node_pump runs once libuv and the channels are done with what was ready), and
 * appends them as one entry. Nothing waits for a batch to fill: a pass with one command appends
 * one. Only qq.* commands are batched (meta_fsm.h says why); any other command appends what was
 * gathered first, so a node's commands are applied in the order it asked. */

static bool batchable(struct proto_bytes op)
{
    return op.len >= 3 && memcmp(op.ptr, "qq.", 3) == 0;
}

/* Appends what was gathered as one entry. A batch left by a leader that lost office is dropped:
 * its proposers send again to the next leader. True when an entry was appended. */
static bool flush_batch(struct cluster_node *node)
{
    if (node->batch_count == 0)
        return false;
    struct table_buf entry = {0};
    bool appended = raft_state(&node->raft) == RAFT_LEADER && !node->stopping &&
                    meta_batch_encode(&entry, &node->batch) == 0 && node_apply(node, entry.data, entry.len) == 0;
    table_buf_free(&entry);
    node->batch.len = 0; /* the buffer is kept for the next pass */
    node->batch_count = 0;
    return appended;
}

/* Appends a command this node, as leader, was asked for: batched (above), or alone after the
 * batch. 0 or a RAFT_* error. */
static int node_append(struct cluster_node *node, const uint8_t *bytes, size_t len, bool batched)
{
    if (!batched || len >= BATCH_MAX_BYTES) { /* a large command alone: a batch stays below 2 MiB */
        flush_batch(node);
        return node_apply(node, bytes, len);
    }
    if (meta_batch_add(&node->batch, bytes, len) != 0)
        return RAFT_NOMEM;
    node->batch_count++;
    if (node->batch.len >= BATCH_MAX_BYTES)
        flush_batch(node);
    node_kick(node);
    return 0;
}

bool node_leader_lost(struct cluster_node *node)
{
    struct raft *r = &node->raft;
    return cluster_member_role(&r->configuration, r->id) != RAFT_VOTER &&
           r->io->time(r->io) - r->election_timer_start >= r->election_timeout;
}

/* Sends p to whoever leads now: appends it here, or forwards it. A send that fails is retried
 * at resend_ms. */
static void proposal_send(struct cluster_node *node, struct proposal *p)
{
    p->resend_ms = loop_now_ms(node->loop) + RETRY_MS;
    p->sent_to = 0;
    /* Exactly once rests on meta_fsm's window (sessions.h): when a request is applied more than
     * META_WINDOW above the session's floor, the requests it leaves behind count as applied. A
     * pending request overtaken that far (the leader changed, and later requests went straight
     * to the new one while it waited for its re-send) would then be skipped as a duplicate and
     * reported done: a confirmed message never enqueued. So a request is sent only while it is
     * less than META_WINDOW above every request still pending here; it waits otherwise, and goes
     * once they are applied (node_pump). What is left behind below is only what was applied, or
     * abandoned (timed out, forgotten: nobody is told it was done). */
    if (node->pending.head && p->request - node->pending.head->request >= META_WINDOW) {
        node->held_back = true;
        node->unsent = true;
        return;
    }
    if (raft_state(&node->raft) == RAFT_LEADER) {
        if (node_append(node, p->command.base, p->command.len, p->batched) == 0)
            p->sent_to = node->raft.id;
    } else {
        raft_id id;
        const char *address;
        raft_leader(&node->raft, &id, &address);
        /* Not to a leader that is likely gone while this node cannot learn of another: the link
         * stays free for a join request to the member named (cluster_membership.c). */
        if (id != 0 && id != node->raft.id && !node_leader_lost(node) &&
            link_forward(&node->link, id, address, &p->command) == 0)
            p->sent_to = id;
        node_kick(node);
    }
    if (p->sent_to == 0)
        node->unsent = true; /* cluster_node_propose sends it before any later one */
}

/* The forwarding link to the leader connected: what it could not take yet goes out now. */
static void on_forward_ready(void *ctx)
{
    struct cluster_node *node = ctx;
    for (struct proposal *p = node->pending.head; p; p = p->next)
        if (p->sent_to != node->link.forward.to)
            proposal_send(node, p);
    membership_link_ready(node);
}

/* Marks a command relayed by a member that was not the leader: a field the decoders ignore,
 * appended to the table. A relayed command is relayed no further, so two members with stale
 * views of the leader never pass a command back and forth. */
static const uint8_t relayed_field[10] = {7, 'r', 'e', 'l', 'a', 'y', 'e', 'd', 't', 1};

/* A command forwarded to this node (inside uv_run): applied (or, for a membership request, acted
 * on) when this node leads; otherwise relayed once to the leader this node knows, so that a
 * follower's stale idea of the leader, or a joining node that knows only some member, costs a
 * hop rather than a retry. Whatever is dropped the asker sends again. */
static int on_forward(void *ctx, const uint8_t *bytes, size_t len)
{
    struct cluster_node *node = ctx;
    struct raft_buffer buf = {.base = (void *)bytes, .len = len};
    struct meta_command cmd;
    if (meta_command_decode(&buf, &cmd) != 0)
        return -1;
    if (node->stopping)
        return 0;
    if (raft_state(&node->raft) == RAFT_LEADER) {
        if (membership_is_request(&cmd))
            membership_on_request(node, &cmd);
        else
            node_append(node, bytes, len, batchable(cmd.op));
        return 0;
    }
    struct table_value marker;
    if (table_find((struct proto_bytes){bytes, (uint32_t)len}, "relayed", &marker) == 1)
        return 0;
    raft_id leader;
    const char *address;
    raft_leader(&node->raft, &leader, &address);
    if (leader == 0 || leader == node->raft.id || len + sizeof(relayed_field) > LINK_MESSAGE_MAX)
        return 0;
    struct raft_buffer relay = {.base = malloc(len + sizeof(relayed_field)), .len = len + sizeof(relayed_field)};
    if (!relay.base)
        return 0;
    memcpy(relay.base, bytes, len);
    memcpy((uint8_t *)relay.base + len, relayed_field, sizeof(relayed_field));
    link_forward(&node->link, leader, address, &relay); /* copied; a failure is the asker's retry */
    free(relay.base);
    node_kick(node);
    return 0;
}

/* ---- a leader that died ---- */

/* libraft's follower learns that its leader is gone only when an election timeout (randomised
 * between one and two of them) passes without a word from it, so a leader killed under load
 * stalls every write of the cluster for 1-2 s. But every voting follower holds a connection to
 * its leader, the forwarding link (kept open by on_tick), and the kernel closes it the moment
 * the leader's process dies. Then the follower's election timer is brought forward to a short
 * random delay, and kept that short while no leader is known, so that the survivors elect one
 * within a few ticks. RabbitMQ's quorum queues react the same way, to Erlang's nodedown.
 *
 * This decides only how soon an election starts, never what is committed. A false alarm (the
 * link closed, the leader lives) costs nothing: with pre-vote, the leader and every follower
 * that still hears it refuse the vote, no term is raised, and the next heartbeat makes this node
 * a follower again. libraft 0.15 has no call for it: its timer is two fields of struct raft,
 * election_timer_start and the state's randomized_election_timeout, which this moves. */
#define HURRY_MAX_MS(node) ((node)->raft.election_timeout / 4u)

static void election_soon(struct cluster_node *node)
{
    struct raft *r = &node->raft;
    unsigned *timeout;
    if (r->state == RAFT_FOLLOWER)
        timeout = &r->follower_state.randomized_election_timeout;
    else if (r->state == RAFT_CANDIDATE)
        timeout = &r->candidate_state.randomized_election_timeout;
    else
        return;
    raft_time now = r->io->time(r->io);
    raft_time elapsed = now >= r->election_timer_start ? now - r->election_timer_start : 0;
    unsigned max = HURRY_MAX_MS(node);
    if (*timeout <= elapsed + max)
        return; /* it runs out soon enough already */
    unsigned delay = (unsigned)r->io->random(r->io, 0, (int)max + 1);
    *timeout = (unsigned)(elapsed + delay);
}

static void on_leader_gone(void *ctx, raft_id to)
{
    struct cluster_node *node = ctx;
    struct raft *r = &node->raft;
    if (node->stopping || r->state != RAFT_FOLLOWER || r->follower_state.current_leader.id != to)
        return; /* a link to a former leader, or no longer a follower */

    log_info("cluster: the connection to the leader closed; calling an election soon");
    node->hurry_until = loop_now_ms(node->loop) + 4u * r->election_timeout;
    election_soon(node);
}

/* Ends a pending proposal with status (timeout or cancel): its done follows. */
static void proposal_end(struct cluster_node *node, struct proposal *p, int status, const char *text)
{
    list_remove(&node->pending, p);
    p->state = PROPOSAL_FORGETTING;
    meta_fsm_forget(&node->fsm, node->session, p->request);
    p->state = PROPOSAL_COMPLETED;
    result_set(&p->result, status, text);
    list_push(&node->completed, p);
}

/* Reports the members a leader has not heard from for down_after_ms (outside uv_run). */
static void watch_members(struct cluster_node *node, uint64_t now)
{
    const struct raft_configuration *c = &node->raft.configuration;
    bool leading = raft_state(&node->raft) == RAFT_LEADER && node->member_down && !node->stopping;
    for (unsigned i = 0; i < CLUSTER_MEMBERS_MAX; i++) {
        /* A spare is not replicated to (libraft), so its silence means nothing. */
        if (!leading || i >= c->n || c->servers[i].id == node->raft.id || c->servers[i].role == RAFT_SPARE) {
            node->watch[i].id = 0;
            continue;
        }
        const struct raft_server *s = &c->servers[i];
        if (node->watch[i].id != s->id) {
            node->watch[i].id = s->id;
            node->watch[i].silent_since = 0;
            node->watch[i].reported = false;
        }
        if (node->raft.leader_state.progress[i].recent_recv) {
            node->watch[i].silent_since = 0;
            node->watch[i].reported = false;
        } else if (!node->watch[i].silent_since) {
            node->watch[i].silent_since = now;
        } else if (!node->watch[i].reported && now - node->watch[i].silent_since >= node->down_after_ms) {
            node->watch[i].reported = true;
            node->member_down(node->member_down_arg, s->address);
        }
    }
}

void cluster_node_watch_members(struct cluster_node *node, unsigned down_after_ms,
                                void (*down)(void *arg, const char *address), void *arg)
{
    node->down_after_ms = down_after_ms;
    node->member_down = down;
    node->member_down_arg = arg;
}

bool cluster_node_leader_known(struct cluster_node *node)
{
    raft_id id;
    const char *address;
    raft_leader(&node->raft, &id, &address);
    return id != 0;
}

bool cluster_node_recovered(const struct cluster_node *node)
{
    return node->recovered;
}

const char *cluster_node_address(const struct cluster_node *node)
{
    return node->address;
}

const char *cluster_node_name(const struct cluster_node *node)
{
    return node->name;
}

/* ---- peer messages ---- */

static int on_peer_message(void *ctx, raft_id from, const char *from_address, uint64_t serial, const uint8_t *bytes,
                           size_t len)
{
    (void)serial;
    struct cluster_node *node = ctx;
    struct raft_buffer buf = {.base = (void *)bytes, .len = len};
    struct meta_command cmd;
    if (meta_command_decode(&buf, &cmd) != 0 || cluster_member_id(from_address) != from)
        return -1;
    if (!node->stopping && node->peer_message)
        node->peer_message(node->peer_arg, from_address, bytes, len);
    return 0;
}

static void on_peer_lost(void *ctx, raft_id peer, const char *address, uint64_t serial)
{
    (void)peer, (void)serial;
    struct cluster_node *node = ctx;
    if (!node->stopping && node->peer_lost)
        node->peer_lost(node->peer_arg, address);
}

void cluster_node_on_peers(struct cluster_node *node, cluster_message_fn message, cluster_peer_lost_fn lost,
                           void *arg)
{
    node->peer_message = message;
    node->peer_lost = lost;
    node->peer_arg = arg;
    link_set_peer_handlers(&node->link, message ? on_peer_message : NULL, on_peer_lost);
}

int cluster_node_send(struct cluster_node *node, const char *address, const char *op, const struct table_buf *args)
{
    if (strcmp(address, node->address) == 0)
        return -EINVAL;
    struct raft_buffer buf;
    if (meta_command_encode(&buf, op, node->session, 1, args) != 0)
        return -ENOMEM;
    int rc = link_send(&node->link, cluster_member_id(address), address, buf.base, buf.len);
    raft_free(buf.base);
    return rc;
}

size_t cluster_node_peer_backlog(struct cluster_node *node, const char *address)
{
    return link_backlog(&node->link, cluster_member_id(address));
}

void cluster_node_flush_peers(struct cluster_node *node)
{
    if (link_flush(&node->link))
        node_kick(node); /* libuv reports the writes' completion on its next run */
}

static void on_tick(struct event_loop *loop, void *data)
{
    struct cluster_node *node = data;
    node->tick_timer = 0;
    uint64_t now = loop_now_ms(loop);
    raft_id leader;
    const char *address;
    raft_leader(&node->raft, &leader, &address);
    struct proposal *p = node->pending.head;
    while (p) {
        struct proposal *next = p->next;
        if (now >= p->deadline_ms)
            proposal_end(node, p, -ETIMEDOUT, "not applied within the propose timeout");
        else if (now >= p->resend_ms || (leader != 0 && p->sent_to != leader)) /* a new leader: at once */
            proposal_send(node, p);
        p = next;
    }
    if (leader == 0 && now < node->hurry_until)
        election_soon(node);
    else if (leader != 0 && leader != node->raft.id && raft_state(&node->raft) == RAFT_FOLLOWER &&
             cluster_member_role(&node->raft.configuration, node->raft.id) == RAFT_VOTER)
        link_follow(&node->link, leader, address); /* so that its end is seen at once (on_leader_gone) */
    expire_acks(node, now);
    link_sweep(&node->link);
    watch_members(node, now);
    membership_tick(node, now);
    node_kick(node); /* sends, closes */
    node->tick_timer = loop_timer_add(loop, TICK_MS, on_tick, node);
    deliver_completed(node);
}

uint64_t cluster_node_propose(struct cluster_node *node, const char *op, const struct table_buf *args,
                              cluster_done_fn done, void *arg)
{
    struct proposal *p = calloc(1, sizeof(*p));
    if (!p)
        return 0;
    p->node = node;
    p->done = done;
    p->arg = arg;
    p->visible = wants_acks(proto_bytes_of(op));
    p->batched = batchable(proto_bytes_of(op));
    p->request = node->last_request + 1;
    if (meta_command_encode(&p->command, op, node->session, p->request, args) != 0) {
        free(p);
        return 0;
    }
    if (meta_fsm_expect(&node->fsm, node->session, p->request, proposal_applied, p) != 0) {
        proposal_free(p);
        return 0;
    }
    node->last_request = p->request;
    p->deadline_ms = loop_now_ms(node->loop) + node->propose_timeout_ms;
    list_push(&node->pending, p);
    /* Earlier requests not yet handed to the leader of now (it changed, or there was none) go
     * first: a node's commands are applied in the order it proposed them (cluster_queues.c
     * relies on it: a channel's checkout before its channel_down), not in the order of the
     * next tick's re-sends. */
    raft_id leader = raft_state(&node->raft) == RAFT_LEADER ? node->raft.id : 0;
    if (!leader) {
        const char *address;
        raft_leader(&node->raft, &leader, &address);
    }
    if (leader && (node->unsent || leader != node->sent_leader)) {
        node->unsent = false;
        node->sent_leader = leader;
        for (struct proposal *q = node->pending.head; q != p; q = q->next)
            if (q->sent_to != leader)
                proposal_send(node, q);
    }
    proposal_send(node, p);
    return p->request;
}

void cluster_node_forget(struct cluster_node *node, uint64_t handle)
{
    for (struct proposal *p = node->pending.head; p; p = p->next) {
        if (p->request == handle) {
            list_remove(&node->pending, p);
            p->state = PROPOSAL_FORGETTING;
            meta_fsm_forget(&node->fsm, node->session, p->request);
            proposal_free(p);
            return;
        }
    }
    for (struct proposal *p = node->awaiting.head; p; p = p->next) {
        if (p->request == handle) {
            list_remove(&node->awaiting, p);
            proposal_free(p);
            return;
        }
    }
    for (struct proposal *p = node->completed.head; p; p = p->next) {
        if (p->request == handle) {
            list_remove(&node->completed, p);
            proposal_free(p);
            return;
        }
    }
}

/* ---- the target wrapper: meta_target over cluster_target ---- */

static void target_apply(void *ctx, const struct meta_command *cmd, struct meta_result *out)
{
    struct cluster_node *node = ctx;
    uint64_t index = raft_last_applied(&node->raft) + 1;
    node->applied_bytes += cmd->op.len + cmd->args.len + 48; /* the envelope, roughly */
    if (index != node->entry_index) {
        node->entry_index = index;
        node->entry_live = index > node->model_index;
        node->applied_entries++;
        if (node->applied_entries >= node->snapshot_base && node->applied_bytes >= node->snapshot_due_bytes)
            raft_set_snapshot_threshold(&node->raft, 1); /* due: libraft takes it after this pass */
    }
    if (proto_bytes_is(cmd->op, "ack")) {
        apply_ack(node, cmd); /* nothing for the model: not even its index moves */
        if (raft_state(&node->raft) == RAFT_LEADER)
            node->push_commit = true; /* a follower waiting for it learns of it at once */
        return;
    }
    if (!node->entry_live) {
        /* The model holds it already (saved before a restart, or in a snapshot): status 0, and
         * only what the model does not save is applied. */
        struct meta_result ignored;
        node->target.apply(node->target.ctx, index, cmd, true, &ignored);
        return;
    }
    node->target.apply(node->target.ctx, index, cmd, false, out);
    node->model_index = index;
    node->applied_commands++;
    if (cmd->session != node->session && wants_acks(cmd->op))
        queue_ack(node, cmd->session, cmd->request);
    if (raft_state(&node->raft) == RAFT_LEADER)
        node->push_commit = true;
}

/* Layout of the target's part of a snapshot (inside meta_fsm's "state"):
 *     "index"  uint64   the log index the model's state is as of
 *     "state"  table    the model's export */
static int target_export(void *ctx, struct table_buf *out)
{
    struct cluster_node *node = ctx;
    uint64_t index = raft_last_applied(&node->raft);
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = index > node->model_index ? index : node->model_index;
    size_t mark;
    int rc = table_buf_put_field(out, "index", 5, &v);
    if (rc == 0)
        rc = table_buf_begin_nested(out, "state", TABLE_TABLE, &mark); /* in place: no copy of the state */
    size_t start = out->len;
    if (rc == 0)
        rc = node->target.export_state(node->target.ctx, out);
    size_t state_len = out->len - start;
    if (rc == 0)
        rc = table_buf_end_nested(out, mark);
    /* The next snapshot once the log has grown by this one's size, or the floor if more. */
    node->snapshot_due_bytes = state_len > node->snapshot_log_bytes ? state_len : node->snapshot_log_bytes;
    raft_set_snapshot_threshold(&node->raft, SNAPSHOT_THRESHOLD_MAX);
    node->applied_bytes = node->applied_entries = 0;
    return rc == 0 ? 0 : -1;
}

static int target_import(void *ctx, struct proto_bytes bytes)
{
    struct cluster_node *node = ctx;
    struct table_value index, state;
    if (table_validate(bytes) != 0 || table_find(bytes, "index", &index) != 1 || index.type != TABLE_UINT64 ||
        table_find(bytes, "state", &state) != 1 || state.type != TABLE_TABLE)
        return -1;
    /* The model already there or later: it is kept, and only what it does not save is
     * imported (sessions are restored either way). */
    bool replay = index.v.u64 <= node->model_index;
    if (node->target.import_state(node->target.ctx, index.v.u64, replay, state.v.bytes) != 0)
        return -1;
    node->entry_index = 0; /* whatever comes next is a new entry */
    if (replay)
        return 0;
    node->model_index = index.v.u64;
    return 0;
}

/* ---- members ---- */

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- libraft 0.15's sends, guarded ---- */

/* libraft 0.15 answers the leader when a snapshot it was sent is saved (installSnapshotCb) even
 * when this node stopped following meanwhile: an election began, and the follower's state it reads
 * the leader's id and address from is a union with the candidate's, garbage by then. raft_uv's
 * send then took strlen() of a wild pointer: a SIGSEGV the nemesis test met (core: a snapshot
 * put's callback -> the AppendEntries result -> raft_uv's send -> strlen). A follower that knows
 * no leader would send to address NULL the same way. So every message goes out through here.
 * A follower's messages, and every other kind, pass as they are. An AppendEntries result from a
 * candidate or a leader (a legitimate one rejects a stale leader's append) goes to the address
 * the configuration gives its id, and is dropped when the id is not a member. A dropped message
 * completes as a failed send (its callback, which frees the request, runs here): a send that
 * returned an error would turn the receive path of an append into the node giving up Raft
 * (recvCb -> convertToUnavailable), as a first version of this guard did (a double free at the
 * next leader change). Newer libraft answers a snapshot only within the term it came in. */
static int guarded_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                        raft_io_send_cb cb)
{
    struct raft *r = io->data;
    struct cluster_node *node = r->data;
    struct raft_message m = *message;
    if (m.type == RAFT_IO_APPEND_ENTRIES_RESULT && raft_state(r) != RAFT_FOLLOWER) {
        m.server_address = NULL;
        for (unsigned i = 0; i < r->configuration.n; i++)
            if (r->configuration.servers[i].id == m.server_id)
                m.server_address = r->configuration.servers[i].address;
    }
    if (m.server_id == 0 || !m.server_address) {
        cb(req, RAFT_NOCONNECTION);
        return 0;
    }
    return node->uv_send(io, req, &m, cb);
}

/* ---- start and stop ---- */

static void raft_closed(struct raft *raft)
{
    struct cluster_node *node = raft->data;
    node->raft_closed = true;
}

static void close_leftover(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Releases whatever start got to, running libuv until its last handle closed. */
static void node_teardown(struct cluster_node *node)
{
    /* From here on libuv is run directly, not from Warren's loop. */
    if (node->backend_fd >= 0)
        loop_unwatch(node->loop, node->backend_fd);
    node->backend_fd = -1;
    if (node->raft_ready) {
        /* libraft 0.15 cancels every append still in flight at close, and each cancelled one
         * truncates the log from its own index: with two in flight the second truncates past the
         * end and crashes (appendLeaderCb). So the appends land first: the loop runs until the
         * log is on disk (or 2 s pass), and nothing new is appended meanwhile (node->stopping). */
        node->stopping = true;
        uint64_t until = uv_now(&node->uv) + 2000;
        while (node->raft.last_stored < raft_last_index(&node->raft) && uv_now(&node->uv) < until)
            uv_run(&node->uv, UV_RUN_ONCE);
        raft_close(&node->raft, raft_closed);
        while (!node->raft_closed)
            if (uv_run(&node->uv, UV_RUN_DEFAULT) == 0 && !node->raft_closed)
                break; /* nothing left to run: libraft cannot finish (never seen) */
    }
    if (node->io_ready)
        raft_uv_close(&node->io);
    if (node->uv_ready) {
        uv_run(&node->uv, UV_RUN_DEFAULT);
        if (uv_loop_close(&node->uv) != 0) { /* never seen: close whatever is left, then again */
            uv_walk(&node->uv, close_leftover, NULL);
            uv_run(&node->uv, UV_RUN_DEFAULT);
            if (uv_loop_close(&node->uv) != 0)
                fprintf(stderr, "cluster: libuv loop still busy at stop\n");
        }
    }
    /* Last, after libuv ran its final callbacks: those can arm the timer again (node_kick). */
    if (node->uv_timer)
        loop_timer_cancel(node->loop, node->uv_timer);
    if (node->tick_timer)
        loop_timer_cancel(node->loop, node->tick_timer);
    node->uv_timer = node->tick_timer = 0;
    meta_fsm_close(&node->fsm);
    link_wipe(&node->link);
    while (node->completed.head) {
        struct proposal *p = node->completed.head;
        list_remove(&node->completed, p);
        proposal_free(p);
    }
    while (node->awaiting.head) { /* a start that failed has none; stop completed them */
        struct proposal *p = node->awaiting.head;
        list_remove(&node->awaiting, p);
        proposal_free(p);
    }
    free(node->acks);
    table_buf_free(&node->batch);
    free(node);
}

/* cluster_config.recover: the members given become the configuration, appended to the log as
 * libraft's raft_recover does, before raft_start reads it. 0, or -1 with err. */
static int recover(struct cluster_node *node, const struct cluster_config *cfg, raft_id self, char *err, size_t errlen)
{
    char members[CLUSTER_MEMBERS_MAX][CLUSTER_ADDRESS_MAX];
    size_t n = 0;
    if (cluster_members_parse(cfg->recover, members, &n, err, errlen) != 0)
        return -1;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    bool has_self = false;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        has_self |= cluster_member_id(members[i]) == self;
        rc = raft_configuration_add(&conf, cluster_member_id(members[i]), members[i], RAFT_VOTER);
    }
    if (rc == 0 && !has_self) {
        snprintf(err, errlen, "cluster_recover must name this node (%s) among the members", cfg->address);
        raft_configuration_close(&conf);
        return -1;
    }
    if (rc == 0)
        rc = raft_recover(&node->raft, &conf);
    raft_configuration_close(&conf);
    if (rc != 0) {
        snprintf(err, errlen, "raft recover: %s", raft_errmsg(&node->raft));
        return -1;
    }
    node->recovered = true;
    log_warning("cluster: the configuration was forced to %s (cluster_recover): start the other members on empty "
                "data directories and join them, never with their old logs",
                cfg->recover);
    return 0;
}

struct cluster_node *cluster_node_start(struct event_loop *loop, const struct cluster_config *cfg,
                                        const struct cluster_target *target, char *err, size_t errlen)
{
    char storage[CLUSTER_MEMBERS_MAX][CLUSTER_ADDRESS_MAX];
    char *sorted[CLUSTER_MEMBERS_MAX];
    size_t n = 0;
    if (cluster_members_parse(cfg->peers, storage, &n, err, errlen) != 0)
        return NULL;
    if (!cfg->secret || cfg->secret_len < CLUSTER_SECRET_MIN || cfg->secret_len > CLUSTER_SECRET_MAX) {
        snprintf(err, errlen, "a cluster secret of %d to %d bytes is required (cluster_secret_file)",
                 CLUSTER_SECRET_MIN, CLUSTER_SECRET_MAX);
        return NULL;
    }
    struct sockaddr_storage own;
    if (!cfg->address || strlen(cfg->address) >= CLUSTER_ADDRESS_MAX || link_parse_address(cfg->address, &own) < 0) {
        snprintf(err, errlen, "this node's address '%s' is not a host:port", cfg->address ? cfg->address : "");
        return NULL;
    }
    raft_id self = cluster_member_id(cfg->address);
    bool founder = false;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = storage[i];
        if (strcmp(storage[i], cfg->address) == 0)
            founder = true;
        else if (cluster_member_id(storage[i]) == self) {
            snprintf(err, errlen, "this node's address '%s' and cluster peer '%s' have the same id", cfg->address,
                     storage[i]);
            return NULL;
        }
    }
    /* The founders' list, sorted, so that every founder writes the same first entry. */
    qsort(sorted, n, sizeof(sorted[0]), compare_strings);
    if (!cfg->dir || (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cluster directory '%s': %s", cfg->dir ? cfg->dir : "", strerror(errno));
        return NULL;
    }

    struct cluster_node *node = calloc(1, sizeof(*node));
    if (!node) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    node->loop = loop;
    node->backend_fd = -1;
    node->target = *target;
    node->model_index = target->start_index;
    node->propose_timeout_ms = cfg->propose_timeout_ms ? cfg->propose_timeout_ms : 10000;
    snprintf(node->name, sizeof(node->name), "%s", cfg->node_name ? cfg->node_name : cfg->address);
    snprintf(node->address, sizeof(node->address), "%s", cfg->address);
    if (getrandom(&node->session, sizeof(node->session), 0) != (ssize_t)sizeof(node->session))
        node->session = uv_hrtime() ^ (uint64_t)getpid() << 40; /* only needs to differ from past starts */
    struct meta_target mt = {target_apply, target_export, target_import, node};
    meta_fsm_init(&node->fsm, &mt);

    int rc = uv_loop_init(&node->uv);
    if (rc != 0) {
        snprintf(err, errlen, "libuv: %s", uv_strerror(rc));
        goto fail;
    }
    node->uv_ready = true;
    link_init(&node->link, &node->uv, cfg->secret, cfg->secret_len, on_forward, on_forward_ready, node);
    link_set_listen_port(&node->link, cfg->listen_port);
    link_set_forward_gone(&node->link, on_leader_gone);
    if (!aio_release_start())
        log_warning("cluster: cannot start the thread that releases Raft's AIO contexts; each log segment's "
                    "close will pause this node for tens of ms");
    rc = raft_uv_init(&node->io, &node->uv, cfg->dir, &node->link.transport);
    if (rc != 0) {
        snprintf(err, errlen, "raft_uv: %s", node->io.errmsg);
        goto fail;
    }
    node->io_ready = true;
    node->uv_send = node->io.send;
    node->io.send = guarded_send;
    raft_uv_set_connect_retry_delay(&node->io, CONNECT_RETRY_MS);
    raft_uv_set_segment_size(&node->io, SEGMENT_BYTES);
    rc = raft_init(&node->raft, &node->io, &node->fsm.raft, self, cfg->address);
    if (rc != 0) {
        snprintf(err, errlen, "raft: %s", raft_errmsg(&node->raft));
        goto fail;
    }
    node->raft_ready = true;
    node->raft.data = node;
    unsigned snapshot = cfg->snapshot_threshold ? cfg->snapshot_threshold : 1024;
    node->snapshot_base = snapshot;
    node->snapshot_log_bytes = cfg->snapshot_log_bytes ? cfg->snapshot_log_bytes : CLUSTER_SNAPSHOT_LOG_BYTES;
    node->snapshot_due_bytes = node->snapshot_log_bytes;
    raft_set_election_timeout(&node->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000);
    raft_set_heartbeat_timeout(&node->raft, cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 100);
    raft_set_snapshot_threshold(&node->raft, SNAPSHOT_THRESHOLD_MAX); /* target_apply lowers it when due */
    raft_set_snapshot_trailing(&node->raft, snapshot);
    /* A follower busy with its own snapshot refuses the leader's, which libraft then retries only
     * after this timeout (30 s by default): a few elections' worth is plenty for metadata. */
    raft_set_install_snapshot_timeout(&node->raft, 5 * (cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000));
    raft_set_pre_vote(&node->raft, true);

    /* A founder bootstraps (refused once the directory holds state: the log rules then). A node
     * that is not among the founders starts with whatever its directory holds: nothing for one
     * that is to join (it waits, a non-member, until a leader adds it), or the configuration of
     * the cluster it joined earlier. */
    if (founder) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = raft_configuration_add(&conf, cluster_member_id(sorted[i]), sorted[i], RAFT_VOTER);
        if (rc == 0)
            rc = raft_bootstrap(&node->raft, &conf);
        raft_configuration_close(&conf);
        if (rc != 0 && rc != RAFT_CANTBOOTSTRAP) {
            snprintf(err, errlen, "raft bootstrap: %s", raft_errmsg(&node->raft));
            goto fail;
        }
    }
    if (cfg->recover && recover(node, cfg, self, err, errlen) != 0)
        goto fail;
    rc = raft_start(&node->raft);
    if (rc != 0) {
        /* libraft 0.15 drops the transport's message when starting its I/O fails (the
         * listener: a port taken), so that one is read where the transport left it. */
        const char *why = raft_errmsg(&node->raft);
        if (!*why)
            why = node->link.transport.errmsg[0] ? node->link.transport.errmsg : raft_strerror(rc);
        snprintf(err, errlen, "raft start: %s", why);
        goto fail;
    }
    if (node->raft.configuration.n > 0 && cluster_member_role(&node->raft.configuration, self) < 0)
        log_warning("cluster: this node's address %s is not in the cluster's configuration its log holds (it was "
                    "forgotten, or its address changed: an address is a member's identity); it waits as a "
                    "non-member until warrenctl join_cluster", cfg->address);

    node->backend_fd = uv_backend_fd(&node->uv);
    if (loop_watch(loop, node->backend_fd, LOOP_READABLE, on_backend, node) != 0) {
        node->backend_fd = -1;
        snprintf(err, errlen, "cannot watch libuv's descriptor");
        goto fail;
    }
    node->tick_timer = loop_timer_add(loop, TICK_MS, on_tick, node);
    node_kick(node);
    return node;

fail:
    node_teardown(node);
    return NULL;
}

void cluster_node_stop(struct cluster_node *node)
{
    if (!node)
        return;
    deliver_completed(node);
    while (node->awaiting.head) { /* applied here already: answered as done */
        awaiting_done(node, node->awaiting.head);
        deliver_completed(node);
    }
    while (node->pending.head) {
        proposal_end(node, node->pending.head, -ECANCELED, "the node stops");
        deliver_completed(node);
    }
    node_teardown(node);
}

/* ---- status ---- */

bool cluster_node_is_leader(const struct cluster_node *node)
{
    return raft_state((struct raft *)&node->raft) == RAFT_LEADER;
}

bool cluster_node_is_member(const struct cluster_node *node)
{
    return cluster_member_role(&node->raft.configuration, node->raft.id) >= 0;
}

void cluster_node_status(struct cluster_node *node, struct cluster_status *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->node_name, sizeof(out->node_name), "%s", node->name);
    struct raft *r = &node->raft;
    switch (raft_state(r)) {
    case RAFT_LEADER:
        out->state = "leader";
        break;
    case RAFT_FOLLOWER:
        out->state = "follower";
        break;
    case RAFT_CANDIDATE:
        out->state = "candidate";
        break;
    default:
        out->state = "unavailable";
        break;
    }
    out->term = r->current_term;
    out->commit_index = r->commit_index;
    out->last_applied = raft_last_applied(r);
    out->applied_commands = node->applied_commands;
    raft_id leader;
    const char *address;
    raft_leader(r, &leader, &address);
    for (unsigned i = 0; i < r->configuration.n && out->member_count < CLUSTER_MEMBERS_MAX; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        struct cluster_member *m = &out->members[out->member_count++];
        m->id = s->id;
        snprintf(m->address, sizeof(m->address), "%s", s->address ? s->address : "");
        m->role = cluster_member_role_name(s->role);
        m->voter = s->role == RAFT_VOTER;
        m->leader = s->id == leader;
        m->self = s->id == r->id;
    }
}
