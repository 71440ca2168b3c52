/* broker/amqp/cluster_queues.c: quorum queues replicated through the cluster's log (contract:
 * cluster_queues.h): the registry of queue states, the commands channels propose, and the
 * effects each node executes. Runs on the loop's thread; the apply side from the cluster node's
 * callbacks, inside which nothing is proposed (effects that need a command defer it to the end
 * of the loop pass, cluster_queues_flush). */
#include "cluster_queues.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "channel_internal.h"
#include "cluster_classic.h"
#include "cluster_nodes.h"
#include "cluster_link.h"
#include "cluster_node.h"
#include "connection.h"
#include "consume_internal.h"
#include "log.h"
#include "message.h"
#include "names.h"
#include "qq_fsm.h"
#include "server.h"
#include "server_internal.h"
#include "uthash.h"
#include "vhost.h"

/* One replicated queue: its state machine, keyed by vhost NUL name. */
struct rq {
    UT_hash_handle hh;
    struct cluster_queues *cq;
    struct qq_fsm fsm;
    char vhost[NAME_MAX_LEN + 1];
    uint8_t name_len;
    char name[NAME_MAX_LEN + 1];
    size_t key_len;
    char key[2 * (NAME_MAX_LEN + 1)];
    uint64_t tick_sent_ms;   /* loop ms a qq.tick for it was proposed; 0 once applied */
    /* x-expires, judged by whoever leads from what this node applied: loop ms of the last use
     * (a consumer attached, a basic.get, a redeclare, or any command while a consumer was
     * attached; also when the queue came, or this node started), and when this node, leading,
     * proposed its deletion. */
    uint64_t used_ms, delete_sent_ms;
};

/* A channel of this node that used replicated queues, by its id in consumer keys. */
struct chan_ent {
    UT_hash_handle hh;
    uint64_t id;
    struct channel *ch;
};

/* A proposal whose asker waits (a publisher's confirm, a basic.get). */
struct call {
    UT_hash_handle hh;
    uint64_t handle;
    struct cluster_queues *cq;
    cluster_queues_done_fn done;
    void *a;
    uint64_t b;
};

/* A publish routed to queues whose messages live in more than one place (the log, and homes of
 * classic queues): its confirm waits for every part. */
struct join {
    UT_hash_handle hh;
    uint64_t handle;
    unsigned parts;          /* not yet done */
    struct meta_result worst; /* the first failure, else success */
    cluster_queues_done_fn done; /* NULL once forgotten */
    void *a;
    uint64_t b;
};

#define JOIN_BIT (UINT64_C(1) << 62) /* with CLASSIC_HANDLE_BIT: a join's handle */

/* A command asked for while one was being applied, proposed at the end of the pass. */
struct deferred {
    struct deferred *next;
    char op[16];
    struct table_buf args;
};

/* A delivery to a consumer of this node, applied and not yet executed: executed at the end of
 * the loop pass if the message is still that consumer's then (cluster_queues_flush). */
struct due {
    struct due *next;
    struct rq *r;
    struct qq_consumer_key key;
    uint64_t id;
    uint32_t delivery_count;
};

/* A member's node_name (cluster_queues_member_name), keyed by its address: each node sends its
 * own with the qq.node_down it proposes at start ("name"), so every node learns every name from
 * the log, and snapshots carry them ("node_names"). */
struct member_name {
    UT_hash_handle hh;
    char address[QQ_NAME_MAX + 1];
    char name[QQ_NAME_MAX + 1];
};

struct cluster_queues {
    struct server *server;
    struct cluster_node *node;
    char node_name[QQ_NAME_MAX + 1]; /* this node's address (what the queues' commands name) */
    struct member_name *names;
    struct rq *queues;
    struct chan_ent *channels;
    struct call *calls;
    struct join *joins;
    uint64_t next_join;
    struct classic *classic; /* classic queues homed on other nodes (cluster_classic.h) */
    struct cluster_nodes *nodes; /* what the other members say about themselves (cluster_nodes.h) */
    struct deferred *deferred, **deferred_tail;
    struct due *due, **due_tail;
    /* Deliveries are held while this node's copy may hold checkouts that later entries, not yet
     * here, undo: after it knew no leader, or after its loop stood still (stopped, starved) for
     * an election timeout. They go once a read barrier (fence) proposed since is applied. */
    bool stale;
    bool fencing;
    uint64_t last_pass_ms;
    unsigned stall_ms;
    uint64_t next_channel; /* a random prefix in the high bits, a counter below */
    unsigned applying;
    uint64_t next_expiry_check_ms; /* loop ms of the leader's next look for expired heads */
    bool recovered; /* the configuration was forced at start: the lost members' consumers go */
};

#define EXPIRY_CHECK_MS 100  /* how often a leader looks for queues whose head is due to expire */
#define TICK_RETRY_MS 2000   /* a tick not applied by then (lost with a leader) is proposed again */

/* The clock the queues' commands carry (qq_fsm.h, "Time"): wall-clock milliseconds, the same on
 * every member up to their clocks' skew; the state machine keeps the largest it saw. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static _Noreturn void out_of_memory(void)
{
    log_error("cluster: out of memory applying a quorum queue command; stopping rather than diverge");
    abort();
}

/* ---- the registry ---- */

static size_t make_key(char *out, const char *vhost, struct proto_bytes name)
{
    size_t v = strlen(vhost);
    memcpy(out, vhost, v + 1);
    if (name.len)
        memcpy(out + v + 1, name.ptr, name.len);
    return v + 1 + name.len;
}

static struct rq *find_rq(const struct cluster_queues *cq, const char *vhost, struct proto_bytes name)
{
    if (strlen(vhost) > NAME_MAX_LEN || name.len > NAME_MAX_LEN)
        return NULL;
    char key[2 * (NAME_MAX_LEN + 1)];
    size_t len = make_key(key, vhost, name);
    struct rq *r;
    HASH_FIND(hh, cq->queues, key, len, r);
    return r;
}

static struct channel *channel_of(const struct cluster_queues *cq, uint64_t id)
{
    struct chan_ent *e;
    HASH_FIND(hh, cq->channels, &id, sizeof id, e);
    return e ? e->ch : NULL;
}

static struct vhost *vhost_named(const struct cluster_queues *cq, const char *name)
{
    struct vhost_entry *e = server_vhost_entry(cq->server, name, strlen(name));
    return e ? e->vhost : NULL;
}

static uint64_t loop_ms(const struct cluster_queues *cq)
{
    return loop_now_ms(server_loop(cq->server));
}

static struct queue *model_queue(const struct rq *r)
{
    struct vhost *v = vhost_named(r->cq, r->vhost);
    return v ? vhost_queue_find(v, (struct proto_bytes){(const uint8_t *)r->name, r->name_len}) : NULL;
}

static void deliver_due(struct cluster_queues *cq);

/* ---- deferred proposals ---- */

static void defer(struct cluster_queues *cq, const char *op, struct table_buf *args)
{
    struct deferred *d = calloc(1, sizeof *d);
    if (!d) {
        table_buf_free(args);
        log_error("cluster: out of memory: a quorum queue command (%s) is lost", op);
        return;
    }
    snprintf(d->op, sizeof d->op, "%s", op);
    d->args = *args;
    *args = (struct table_buf){0};
    *cq->deferred_tail = d;
    cq->deferred_tail = &d->next;
}

static void call_done(void *arg, const struct meta_result *result)
{
    struct call *c = arg;
    HASH_DEL(c->cq->calls, c);
    if (c->done)
        c->done(c->a, c->b, result);
    free(c);
}

/* Proposes op with args (freed here): now, or at the end of the pass while a command is being
 * applied (then done is not used: nothing inside apply waits). Returns the handle of a waited
 * call, 1 for a call nobody waits for, 0 on failure. */
static uint64_t propose(struct cluster_queues *cq, const char *op, struct table_buf *args, cluster_queues_done_fn done,
                        void *a, uint64_t b)
{
    if (!cq->node) {
        table_buf_free(args);
        return 0;
    }
    if (cq->applying) {
        defer(cq, op, args);
        return 1;
    }
    struct call *c = calloc(1, sizeof *c);
    if (!c) {
        table_buf_free(args);
        return 0;
    }
    *c = (struct call){.cq = cq, .done = done, .a = a, .b = b};
    c->handle = cluster_node_propose(cq->node, op, args, call_done, c);
    table_buf_free(args);
    if (c->handle == 0) {
        free(c);
        return 0;
    }
    HASH_ADD(hh, cq->calls, handle, sizeof c->handle, c);
    return c->handle;
}

/* Gathers the distinct consumer nodes that are not members of status. */
struct strays {
    const struct cluster_status *status;
    char nodes[CLUSTER_MEMBERS_MAX][QQ_NAME_MAX + 1];
    size_t n;
};

static void note_stray(const char *node, void *arg)
{
    struct strays *s = arg;
    for (size_t i = 0; i < s->status->member_count; i++)
        if (strcmp(s->status->members[i].address, node) == 0)
            return;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->nodes[i], node) == 0)
            return;
    if (s->n < CLUSTER_MEMBERS_MAX)
        snprintf(s->nodes[s->n++], sizeof s->nodes[0], "%s", node);
}

static void propose_node_down(struct cluster_queues *cq, const char *address);

/* Once this node leads after a forced configuration (cluster_recover): the members it left out
 * are gone for good, and what their consumers held goes to consumers elsewhere (node_down), as
 * forget_cluster_node does for one. */
static void release_lost_members(struct cluster_queues *cq)
{
    if (!cq->recovered || !cq->node || !cluster_node_is_leader(cq->node))
        return;
    cq->recovered = false;
    struct cluster_status *st = malloc(sizeof *st);
    struct strays *s = calloc(1, sizeof *s);
    if (st && s) {
        cluster_node_status(cq->node, st);
        s->status = st;
        for (struct rq *r = cq->queues; r; r = r->hh.next)
            qq_fsm_each_consumer_node(&r->fsm, note_stray, s);
        for (size_t i = 0; i < s->n; i++) {
            log_info("cluster: %s is not a member of the recovered cluster: its quorum queue consumers are "
                     "cancelled", s->nodes[i]);
            propose_node_down(cq, s->nodes[i]);
        }
    }
    free(st);
    free(s);
}

/* While this node leads: a queue whose head is due to expire gets a qq.tick carrying this
 * node's clock (nothing expires between commands: qq_fsm.h, "Time"), at most one in flight. */
static void expire_due(struct cluster_queues *cq)
{
    uint64_t now = loop_ms(cq);
    if (!cq->node || now < cq->next_expiry_check_ms || !cluster_node_is_leader(cq->node))
        return;
    cq->next_expiry_check_ms = now + EXPIRY_CHECK_MS;
    uint64_t wall = wall_ms();
    struct rq *r, *tmp;
    HASH_ITER(hh, cq->queues, r, tmp) {
        /* x-expires: an unused queue is deleted through the log, as a client's queue.delete
         * (the model does not expire replicated queues: vhost_tick). A consumer that attaches
         * while the delete is on its way is cancelled with the queue. */
        struct queue *q = model_queue(r);
        int64_t expires = q ? queue_settings(q)->expires_ms : -1;
        if (expires > 0 && qq_fsm_consumers(&r->fsm) == 0 && now - r->used_ms >= (uint64_t)expires &&
            (!r->delete_sent_ms || now - r->delete_sent_ms >= TICK_RETRY_MS)) {
            struct table_buf args = {0};
            if ((table_buf_put_string(&args, "vhost", proto_bytes_of(r->vhost)) |
                 table_buf_put_string(&args, "name", (struct proto_bytes){(const uint8_t *)r->name, r->name_len})) ==
                    0 &&
                propose(cq, "queue.delete", &args, NULL, NULL, 0) != 0) {
                log_info("cluster: quorum queue '%s' in vhost '%s' unused for %lld ms (x-expires): deleting it", r->name,
                         r->vhost, (long long)expires);
                r->delete_sent_ms = now;
            } else {
                table_buf_free(&args);
            }
            continue;
        }
        uint64_t due = qq_fsm_next_expiry(&r->fsm);
        if (due == 0 || due > wall || (r->tick_sent_ms && now - r->tick_sent_ms < TICK_RETRY_MS))
            continue;
        struct table_buf args = {0};
        struct table_value v = {.type = TABLE_UINT64};
        v.v.u64 = wall;
        if ((table_buf_put_string(&args, "vhost", proto_bytes_of(r->vhost)) |
             table_buf_put_string(&args, "queue", (struct proto_bytes){(const uint8_t *)r->name, r->name_len}) |
             table_buf_put_field(&args, "now", 3, &v)) != 0) {
            table_buf_free(&args);
            continue;
        }
        if (propose(cq, "qq.tick", &args, NULL, NULL, 0) != 0)
            r->tick_sent_ms = now ? now : 1;
    }
}

void cluster_queues_flush(struct cluster_queues *cq)
{
    if (!cq)
        return;
    deliver_due(cq);
    expire_due(cq);
    release_lost_members(cq);
    while (cq->deferred) {
        struct deferred *d = cq->deferred;
        cq->deferred = d->next;
        if (!cq->deferred)
            cq->deferred_tail = &cq->deferred;
        if (propose(cq, d->op, &d->args, NULL, NULL, 0) == 0)
            log_error("cluster: out of memory: a quorum queue command (%s) is lost", d->op);
        free(d);
    }
    classic_flush(cq->classic);
}

void cluster_queues_forget(struct cluster_queues *cq, uint64_t handle)
{
    struct call *c;
    if (!cq || handle <= 1)
        return;
    if (handle & CLASSIC_HANDLE_BIT) {
        struct join *j;
        HASH_FIND(hh, cq->joins, &handle, sizeof handle, j);
        if (j)
            j->done = NULL; /* its parts still complete, and free it */
        else
            classic_forget(cq->classic, handle);
        return;
    }
    HASH_FIND(hh, cq->calls, &handle, sizeof handle, c);
    if (!c)
        return;
    HASH_DEL(cq->calls, c);
    cluster_node_forget(cq->node, handle);
    free(c);
}

/* ---- effects ---- */

static void deliver_now(struct rq *r, const struct qq_consumer_key *key, uint64_t id, struct proto_bytes content,
                        uint32_t delivery_count)
{
    struct cluster_queues *cq = r->cq;
    struct channel *ch = channel_of(cq, key->channel);
    if (!ch)
        return; /* closed: the cancel it proposed returns the message */
    struct queue *q = model_queue(r);
    struct proto_bytes tag = {(const uint8_t *)key->tag, (uint32_t)strlen(key->tag)};
    struct message *msg = message_deserialize(0, content.ptr, content.len);
    if (!q || !msg) {
        /* Cannot happen for content a node serialized; give it back rather than hold it. */
        log_error("cluster: quorum queue '%s' in vhost '%s': message %" PRIu64 " cannot be delivered here", r->name,
                  r->vhost, id);
        message_release(msg);
        struct cluster_settle_batch b = {0};
        if (q) {
            cluster_settle_add(&b, ch, q, tag, id, QUEUE_DISCARD);
            cluster_settle_flush(&b);
        }
        return;
    }
    channel_replica_deliver(ch, q, tag, id, msg, delivery_count);
}

/* A consumer's delivery waits for the end of the pass, when the commands applied with it are
 * all applied: a node that catches up (resumed after a pause, reconnected) applies at once the
 * checkout that gave a message to its consumer and the node_down that gave it to another, and
 * must not hand the client a copy that is no longer its (the other consumer's copy is the one
 * marked redelivered). A get's answer goes at once: its holder waits for it, and a no_ack get's
 * message has left the state already. */
static void effect_deliver(void *ctx, const struct qq_consumer_key *key, uint64_t id, struct proto_bytes content,
                           bool redelivered, uint32_t delivery_count)
{
    (void)redelivered; /* delivery_count > 0 */
    struct rq *r = ctx;
    struct cluster_queues *cq = r->cq;
    if (strcmp(key->node, cq->node_name) != 0)
        return; /* another node's consumer: that node delivers */
    struct due *d = key->tag[0] ? malloc(sizeof *d) : NULL;
    if (!d) {
        deliver_now(r, key, id, content, delivery_count);
        return;
    }
    *d = (struct due){.r = r, .key = *key, .id = id, .delivery_count = delivery_count};
    *cq->due_tail = d;
    cq->due_tail = &d->next;
}

static void fence_done(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    struct cluster_queues *cq = a;
    cq->fencing = false;
    if (result->status == 0 || result->status == META_DUPLICATE)
        cq->stale = false; /* the deliveries go at the end of this pass (cluster_queues_flush) */
}

/* True when deliveries wait for a fence (see struct cluster_queues); proposes it. */
static bool hold_deliveries(struct cluster_queues *cq)
{
    if (!cq->node)
        return false;
    uint64_t now = loop_ms(cq);
    bool leaderless = !cluster_node_leader_known(cq->node);
    if (leaderless || (cq->last_pass_ms && now - cq->last_pass_ms >= cq->stall_ms))
        cq->stale = true;
    cq->last_pass_ms = now;
    if (cq->stale && !leaderless && !cq->fencing) {
        struct table_buf args = {0};
        if (table_buf_put_string(&args, "vhost", proto_bytes_of("/")) != 0)
            table_buf_free(&args); /* out of memory: tried again at the next pass */
        else
            cq->fencing = propose(cq, "sync", &args, fence_done, cq, 0) > 1;
    }
    return cq->stale;
}

/* Executes the deliveries still due, in the order they were applied. */
static void deliver_due(struct cluster_queues *cq)
{
    if (hold_deliveries(cq))
        return;
    while (cq->due) {
        struct due *d = cq->due;
        cq->due = d->next;
        if (!cq->due)
            cq->due_tail = &cq->due;
        struct proto_bytes content;
        if (qq_fsm_still_held(&d->r->fsm, &d->key, d->id, d->delivery_count, &content))
            deliver_now(d->r, &d->key, d->id, content, d->delivery_count);
        free(d);
    }
}

/* Forgets the deliveries due from r (the queue goes). */
static void drop_due(struct cluster_queues *cq, const struct rq *r)
{
    cq->due_tail = &cq->due;
    for (struct due **pp = &cq->due; *pp;) {
        struct due *d = *pp;
        if (d->r == r) {
            *pp = d->next;
            free(d);
        } else {
            cq->due_tail = &d->next;
            pp = &d->next;
        }
    }
}

/* The node that leads when it applies the command dead-letters (at most once, like RabbitMQ's
 * default dead-lettering: a leader change in between may lose one). */
static void effect_discarded(void *ctx, uint64_t id, struct proto_bytes content, const char *reason)
{
    struct rq *r = ctx;
    struct cluster_queues *cq = r->cq;
    if (!cq->node || !cluster_node_is_leader(cq->node))
        return;
    struct vhost *v = vhost_named(cq, r->vhost);
    struct queue *q = model_queue(r);
    if (!v || !q)
        return;
    struct proto_bytes dlx;
    if (!queue_dead_letter_exchange(q, &dlx))
        return;
    struct message *msg = message_deserialize(0, content.ptr, content.len);
    if (!msg) {
        log_error("cluster: quorum queue '%s': message %" PRIu64 " cannot be dead-lettered", r->name, id);
        return;
    }
    enum queue_drop_reason why = strcmp(reason, "delivery_limit") == 0 ? QUEUE_DROP_DELIVERY_LIMIT
                                 : strcmp(reason, "maxlen") == 0       ? QUEUE_DROP_MAXLEN
                                 : strcmp(reason, "expired") == 0      ? QUEUE_DROP_EXPIRED
                                                                       : QUEUE_DROP_REJECTED;
    queue_retain(q);
    vhost_dead_letter(v, q, msg, (int)why);
    queue_release(q);
    message_release(msg);
}

/* ---- the apply side ---- */

static struct rq *add_rq(struct cluster_queues *cq, const char *vhost, struct proto_bytes name, int64_t delivery_limit)
{
    struct rq *r = calloc(1, sizeof *r);
    if (!r)
        out_of_memory();
    r->cq = cq;
    snprintf(r->vhost, sizeof r->vhost, "%s", vhost);
    memcpy(r->name, name.ptr, name.len);
    r->name_len = (uint8_t)name.len;
    r->key_len = make_key(r->key, vhost, name);
    struct qq_effects effects = {.deliver = effect_deliver, .discarded = effect_discarded, .ctx = r};
    if (qq_fsm_init(&r->fsm, delivery_limit, &effects) != 0)
        out_of_memory();
    r->used_ms = loop_ms(cq);
    HASH_ADD(hh, cq->queues, key, r->key_len, r);
    return r;
}

/* Cancels this node's consumers of r (the queue went): basic.cancel to clients that take it. */
static void cancel_local_consumers(struct cluster_queues *cq, struct rq *r)
{
    struct chan_ent *e, *tmp;
    struct proto_bytes name = {(const uint8_t *)r->name, r->name_len};
    HASH_ITER(hh, cq->channels, e, tmp) {
        if (strcmp(vhost_name(e->ch->vhost), r->vhost) == 0)
            channel_replica_queue_gone(e->ch, name);
    }
}

static void remove_rq(struct cluster_queues *cq, struct rq *r)
{
    drop_due(cq, r);
    HASH_DEL(cq->queues, r);
    cancel_local_consumers(cq, r);
    qq_fsm_close(&r->fsm);
    free(r);
}

void cluster_queues_declared(struct cluster_queues *cq, struct vhost *vhost, struct proto_bytes name,
                             struct proto_bytes arguments, struct proto_bytes home)
{
    if (!cq || !vhost)
        return;
    classic_declared(cq->classic, vhost_name(vhost), name, home);
    struct queue *q = vhost_queue_find(vhost, name);
    struct rq *known = find_rq(cq, vhost_name(vhost), name);
    if (known)
        known->used_ms = loop_ms(cq); /* a redeclare renews x-expires' lease, as RabbitMQ's */
    if (!q || !queue_kind(q)->raft_group || known)
        return;
    struct queue_settings s;
    struct reply_error err;
    memset(&s, 0, sizeof s);
    if (queue_settings_parse(name, arguments, &s, &err) != 0) {
        /* The model took the declare, so its arguments parse; a replayed declare refused then and
         * made good later under other arguments is the only way here: no limits. */
        s = (struct queue_settings){.message_ttl_ms = -1, .expires_ms = -1, .max_length = -1, .max_length_bytes = -1};
    }
    struct rq *r = add_rq(cq, vhost_name(vhost), name, s.has_delivery_limit ? s.delivery_limit : -1);
    struct qq_limits limits = {s.max_length, s.max_length_bytes, s.overflow_reject};
    qq_fsm_set_limits(&r->fsm, &limits);
    qq_fsm_set_single_active(&r->fsm, s.single_active_consumer);
    qq_fsm_set_message_ttl(&r->fsm, s.message_ttl_ms);
    /* Said once, where an operator looks: the replicated state machine does not run this yet
     * (docs/cluster.md, limits), and a silent queue that keeps what it was told to drop would
     * surprise more than a log line. */
    if (s.overflow_reject_dlx)
        log_warning("cluster: quorum queue '%.*s' in vhost '%s' is replicated without its "
                    "reject-publish-dlx: not enforced in a cluster yet",
                    (int)name.len, (const char *)name.ptr, vhost_name(vhost));
}

void cluster_queues_deleted(struct cluster_queues *cq, const char *vhost, struct proto_bytes name)
{
    struct rq *r = cq ? find_rq(cq, vhost, name) : NULL;
    if (r)
        remove_rq(cq, r);
    if (cq)
        classic_deleted(cq->classic, vhost, name);
}

void cluster_queues_vhost_deleted(struct cluster_queues *cq, const char *vhost)
{
    if (!cq)
        return;
    struct rq *r, *tmp;
    HASH_ITER(hh, cq->queues, r, tmp) {
        if (strcmp(r->vhost, vhost) == 0)
            remove_rq(cq, r);
    }
    classic_vhost_deleted(cq->classic, vhost);
}

void cluster_queues_prune(struct cluster_queues *cq)
{
    if (!cq)
        return;
    struct rq *r, *tmp;
    HASH_ITER(hh, cq->queues, r, tmp) {
        if (!vhost_named(cq, r->vhost))
            remove_rq(cq, r);
    }
}

/* A name field (at most NAME_MAX_LEN bytes) copied out. */
static bool get_name(struct proto_bytes args, const char *key, char *out)
{
    return table_find_cstring(args, key, out, NAME_MAX_LEN + 1);
}

static int remember_name(struct member_name **set, const char *address, const char *name)
{
    struct member_name *m;
    HASH_FIND_STR(*set, address, m);
    if (!m) {
        if (!(m = calloc(1, sizeof *m)))
            return -1;
        snprintf(m->address, sizeof m->address, "%s", address);
        HASH_ADD_STR(*set, address, m);
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    return 0;
}

static void forget_names(struct member_name **set)
{
    struct member_name *m, *tmp;
    HASH_ITER(hh, *set, m, tmp) {
        HASH_DEL(*set, m);
        free(m);
    }
}

const char *cluster_queues_member_name(const struct cluster_queues *cq, const char *address)
{
    if (!cq || !address)
        return NULL;
    if (cq->node && strcmp(address, cq->node_name) == 0)
        return cluster_node_name(cq->node); /* known before its own node_down is applied */
    struct member_name *m;
    HASH_FIND_STR(cq->names, address, m);
    return m ? m->name : NULL;
}

static void run(struct rq *r, const char *op, struct proto_bytes args, struct qq_result *res)
{
    struct meta_command inner = {.op = proto_bytes_of(op), .args = args};
    memset(res, 0, sizeof *res);
    qq_fsm_apply_command(&r->fsm, &inner, res);
    if (strcmp(op, "checkout") == 0 || strcmp(op, "dequeue") == 0 || qq_fsm_consumers(&r->fsm) > 0)
        r->used_ms = loop_ms(r->cq);
}

bool cluster_queues_apply(struct cluster_queues *cq, const struct meta_command *cmd, struct meta_result *out)
{
    if (cmd->op.len < 4 || memcmp(cmd->op.ptr, "qq.", 3) != 0)
        return false;
    memset(out, 0, sizeof *out);
    if (!cq)
        return true; /* a server without the registry (tests of the model alone) */
    char vhost[NAME_MAX_LEN + 1], op[32];
    if (cmd->op.len - 3 >= sizeof op || table_validate(cmd->args) != 0 || !get_name(cmd->args, "vhost", vhost)) {
        out->status = META_MALFORMED;
        return true;
    }
    memcpy(op, cmd->op.ptr + 3, cmd->op.len - 3);
    op[cmd->op.len - 3] = '\0';
    struct qq_result res = {0};
    cq->applying++;
    if (strcmp(op, "enqueue") == 0) {
        struct table_value v, e;
        struct table_iter it;
        if (table_find(cmd->args, "queues", &v) != 1 || v.type != TABLE_ARRAY) {
            out->status = META_MALFORMED;
        } else {
            table_iter_init(&it, v.v.bytes);
            while (array_next(&it, &e) == 1) {
                struct rq *r = e.type == TABLE_LONGSTR ? find_rq(cq, vhost, e.v.bytes) : NULL;
                if (r) {
                    run(r, "enqueue", cmd->args, &res);
                    if (res.status == QQ_MALFORMED) {
                        out->status = META_MALFORMED;
                    } else if (res.status == QQ_REJECTED && out->status == 0) {
                        /* x-overflow reject-publish: the publisher gets a nack, as RabbitMQ's */
                        out->status = SPEC_PRECONDITION_FAILED;
                        snprintf(out->text, sizeof out->text, "quorum queue '%.*s' is full",
                                 (int)(e.v.bytes.len < 100 ? e.v.bytes.len : 100), (const char *)e.v.bytes.ptr);
                    }
                } else if (out->status == 0) {
                    /* Deleted meanwhile (or never known here): the others still take it, but the
                     * publisher is not told it was confirmed everywhere it was routed (nack). */
                    out->status = SPEC_NOT_FOUND;
                    snprintf(out->text, sizeof out->text, "no quorum queue '%.*s' in vhost '%.100s'",
                             (int)(e.type == TABLE_LONGSTR && e.v.bytes.len < 100 ? e.v.bytes.len : 0),
                             e.type == TABLE_LONGSTR ? (const char *)e.v.bytes.ptr : "", vhost);
                }
            }
        }
    } else if (strcmp(op, "node_down") == 0 || strcmp(op, "channel_down") == 0) {
        struct rq *r, *tmp;
        HASH_ITER(hh, cq->queues, r, tmp) {
            run(r, op, cmd->args, &res);
            if (res.status == QQ_MALFORMED)
                out->status = META_MALFORMED;
        }
        char node[QQ_NAME_MAX + 1], name[QQ_NAME_MAX + 1];
        if (strcmp(op, "node_down") == 0 && get_name(cmd->args, "node", node)) {
            if (get_name(cmd->args, "name", name) && remember_name(&cq->names, node, name) != 0)
                log_error("cluster: out of memory recording node %s's name", node);
            if (cq->node && strcmp(node, cq->node_name) == 0) {
                /* Declared down while alive: this node's consumers take messages again. */
                struct chan_ent *e, *etmp;
                HASH_ITER(hh, cq->channels, e, etmp) {
                    channel_replica_reattach(e->ch);
                }
            }
        }
    } else {
        char name[NAME_MAX_LEN + 1] = "";
        struct rq *r = get_name(cmd->args, "queue", name) ? find_rq(cq, vhost, proto_bytes_of(name)) : NULL;
        if (!r) {
            out->status = SPEC_NOT_FOUND;
            snprintf(out->text, sizeof out->text, "no queue '%.100s' in vhost '%.100s'", name, vhost);
        } else {
            run(r, op, cmd->args, &res);
            if (strcmp(op, "tick") == 0)
                r->tick_sent_ms = 0; /* the next one may go when the new head is due */
            out->status = res.status == QQ_MALFORMED ? META_MALFORMED : 0;
            snprintf(out->text, sizeof out->text, "%" PRIu64, res.value);
        }
    }
    cq->applying--;
    return true;
}

int cluster_queues_export(const struct cluster_queues *cq, struct table_buf *out)
{
    size_t list, e, state; /* written in place: the messages are copied once (qq_snapshot.c) */
    int rc = table_buf_begin_nested(out, "quorum_queues", TABLE_ARRAY, &list);
    for (const struct rq *r = cq ? cq->queues : NULL; r && rc == 0; r = r->hh.next) {
        rc |= table_buf_begin_nested(out, NULL, TABLE_TABLE, &e);
        rc |= table_buf_put_string(out, "vhost", proto_bytes_of(r->vhost));
        rc |= table_buf_put_string(out, "name", (struct proto_bytes){(const uint8_t *)r->name, r->name_len});
        rc |= rc == 0 ? table_buf_begin_nested(out, "state", TABLE_TABLE, &state) : 0;
        rc |= rc == 0 ? qq_fsm_export(&r->fsm, out) : 0;
        rc |= rc == 0 ? table_buf_end_nested(out, state) : 0;
        rc |= rc == 0 ? table_buf_end_nested(out, e) : 0;
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    rc |= rc == 0 ? classic_export(cq ? cq->classic : NULL, out) : 0;
    rc |= rc == 0 ? table_buf_begin_nested(out, "node_names", TABLE_ARRAY, &list) : 0;
    for (const struct member_name *m = cq ? cq->names : NULL; m && rc == 0; m = m->hh.next) {
        rc |= table_buf_begin_nested(out, NULL, TABLE_TABLE, &e);
        rc |= table_buf_put_string(out, "address", proto_bytes_of(m->address));
        rc |= table_buf_put_string(out, "name", proto_bytes_of(m->name));
        rc |= rc == 0 ? table_buf_end_nested(out, e) : 0;
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    return rc ? -1 : 0;
}

/* The "node_names" of a snapshot into *set (absent: none, as before names were kept); -1 when
 * malformed (*set then holds what was read: the caller frees it). */
static int import_names(struct proto_bytes state, struct member_name **set)
{
    struct table_value list, e;
    int found = table_find(state, "node_names", &list);
    if (found == 0)
        return 0;
    if (found != 1 || list.type != TABLE_ARRAY)
        return -1;
    struct table_iter it;
    table_iter_init(&it, list.v.bytes);
    int more;
    while ((more = array_next(&it, &e)) == 1) {
        char address[QQ_NAME_MAX + 1], name[QQ_NAME_MAX + 1];
        if (e.type != TABLE_TABLE || !get_name(e.v.bytes, "address", address) || !get_name(e.v.bytes, "name", name) ||
            remember_name(set, address, name) != 0)
            return -1;
    }
    return more == 0 ? 0 : -1;
}

int cluster_queues_import(struct cluster_queues *cq, struct proto_bytes state)
{
    if (!cq)
        return 0;
    struct table_value list, e, name, st;
    struct table_iter it;
    struct member_name *names = NULL;
    if (table_validate(state) != 0 || table_find(state, "quorum_queues", &list) != 1 || list.type != TABLE_ARRAY ||
        import_names(state, &names) != 0 || classic_import(cq->classic, state) != 0) {
        forget_names(&names);
        return -1;
    }
    /* Built aside, then swapped in: a bad entry changes nothing. */
    struct cluster_queues fresh = {.server = cq->server, .node = cq->node};
    memcpy(fresh.node_name, cq->node_name, sizeof fresh.node_name);
    table_iter_init(&it, list.v.bytes);
    int more, rc = 0;
    while (rc == 0 && (more = array_next(&it, &e)) == 1) {
        char vhost[NAME_MAX_LEN + 1];
        if (e.type != TABLE_TABLE || !get_name(e.v.bytes, "vhost", vhost) || table_find(e.v.bytes, "name", &name) != 1 ||
            name.type != TABLE_LONGSTR || name.v.bytes.len == 0 || name.v.bytes.len > NAME_MAX_LEN ||
            table_find(e.v.bytes, "state", &st) != 1 || st.type != TABLE_TABLE || find_rq(&fresh, vhost, name.v.bytes)) {
            rc = -1;
            break;
        }
        struct rq *r = add_rq(&fresh, vhost, name.v.bytes, -1);
        if (qq_fsm_import(&r->fsm, st.v.bytes) != 0)
            rc = -1;
    }
    if (rc == 0 && more != 0)
        rc = -1;
    struct rq *r, *tmp;
    if (rc != 0) {
        HASH_ITER(hh, fresh.queues, r, tmp) {
            HASH_DEL(fresh.queues, r);
            qq_fsm_close(&r->fsm);
            free(r);
        }
        forget_names(&names);
        return -1;
    }
    /* Queues gone from the state: their local consumers are cancelled. */
    HASH_ITER(hh, cq->queues, r, tmp) {
        if (!find_rq(&fresh, r->vhost, (struct proto_bytes){(const uint8_t *)r->name, r->name_len}))
            remove_rq(cq, r);
        else {
            drop_due(cq, r); /* its deliveries were the old state's checkouts */
            HASH_DEL(cq->queues, r);
            qq_fsm_close(&r->fsm);
            free(r);
        }
    }
    HASH_ITER(hh, fresh.queues, r, tmp) {
        r->cq = cq;
        r->fsm.effects.ctx = r;
    }
    cq->queues = fresh.queues;
    forget_names(&cq->names);
    cq->names = names;
    return 0;
}

/* ---- life ---- */

struct cluster_queues *cluster_queues_create(struct server *server)
{
    struct cluster_queues *cq = calloc(1, sizeof *cq);
    if (!cq)
        return NULL;
    cq->server = server;
    cq->classic = classic_create(cq, server);
    cq->nodes = cluster_nodes_create(server);
    if (!cq->classic || !cq->nodes) {
        classic_free(cq->classic);
        cluster_nodes_free(cq->nodes);
        free(cq);
        return NULL;
    }
    cq->deferred_tail = &cq->deferred;
    cq->due_tail = &cq->due;
    uint32_t prefix = 0;
    if (getrandom(&prefix, sizeof prefix, 0) != sizeof prefix)
        prefix = (uint32_t)(uintptr_t)cq;
    cq->next_channel = (uint64_t)(prefix & 0x3fffffffu) << 32;
    return cq;
}

void cluster_queues_free(struct cluster_queues *cq)
{
    if (!cq)
        return;
    classic_free(cq->classic);
    cluster_nodes_free(cq->nodes);
    forget_names(&cq->names);
    struct join *j, *jtmp;
    HASH_ITER(hh, cq->joins, j, jtmp) {
        HASH_DEL(cq->joins, j);
        free(j);
    }
    struct rq *r, *rtmp;
    HASH_ITER(hh, cq->queues, r, rtmp) {
        HASH_DEL(cq->queues, r);
        qq_fsm_close(&r->fsm);
        free(r);
    }
    struct chan_ent *e, *etmp;
    HASH_ITER(hh, cq->channels, e, etmp) {
        HASH_DEL(cq->channels, e);
        free(e);
    }
    struct call *c, *ctmp;
    HASH_ITER(hh, cq->calls, c, ctmp) {
        HASH_DEL(cq->calls, c);
        free(c);
    }
    while (cq->deferred) {
        struct deferred *d = cq->deferred;
        cq->deferred = d->next;
        table_buf_free(&d->args);
        free(d);
    }
    while (cq->due) {
        struct due *d = cq->due;
        cq->due = d->next;
        free(d);
    }
    free(cq);
}

static void node_down_done(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    struct cluster_queues *cq = a;
    if (result->status == -ETIMEDOUT && cq->node && !cluster_node_is_member(cq->node))
        log_debug("cluster: not a member yet: nothing of an earlier run to release");
    else if (result->status != 0 && result->status != META_DUPLICATE)
        log_warning("cluster: releasing what this node's earlier run held in quorum queues failed (%d)", result->status);
    else
        log_debug("cluster: quorum queues released what node %s held before", cq->node_name);
}

/* Proposes qq.node_down for address (outside uv_run: proposed at once). */
static void propose_node_down(struct cluster_queues *cq, const char *address)
{
    struct table_buf args = {0};
    if ((table_buf_put_string(&args, "vhost", proto_bytes_of("/")) |
         table_buf_put_string(&args, "node", proto_bytes_of(address))) != 0 ||
        propose(cq, "qq.node_down", &args, NULL, NULL, 0) == 0)
        log_error("cluster: out of memory proposing node_down for %s", address);
    table_buf_free(&args);
}

/* The leader lost touch with a member. */
static void member_down(void *arg, const char *address)
{
    struct cluster_queues *cq = arg;
    log_warning("cluster: no answer from member %s: its quorum queue consumers are cancelled, its exclusive and "
                "non-durable classic queues deleted",
                address);
    propose_node_down(cq, address);
    classic_member_down(cq->classic, address);
}

void cluster_queues_member_gone(struct cluster_queues *cq, const char *address)
{
    if (!cq || !cq->node)
        return;
    log_info("cluster: member %s is being removed: its quorum queue consumers are cancelled, the classic queues "
             "it is the home of deleted", address);
    propose_node_down(cq, address);
    classic_member_gone(cq->classic, address);
}

int cluster_queues_member_running(struct cluster_queues *cq, const char *address)
{
    return cq && cq->node ? classic_probe(cq->classic, address) : 0;
}

void cluster_queues_start(struct cluster_queues *cq, struct cluster_node *node, unsigned down_after_ms)
{
    cq->node = node;
    cq->fencing = false;
    classic_start(cq->classic, node, node ? cluster_node_address(node) : NULL);
    if (!node) {
        struct call *c, *tmp;
        HASH_ITER(hh, cq->calls, c, tmp) { /* completed by the node's stop; none should be left */
            HASH_DEL(cq->calls, c);
            free(c);
        }
        return;
    }
    snprintf(cq->node_name, sizeof cq->node_name, "%s", cluster_node_address(node));
    cq->recovered = cluster_node_recovered(node);
    cq->stall_ms = down_after_ms / 3 ? down_after_ms / 3 : 1; /* the election timeout */
    cluster_node_watch_members(node, down_after_ms, member_down, cq);
    struct table_buf args = {0};
    if (table_buf_put_string(&args, "vhost", proto_bytes_of("/")) != 0 ||
        table_buf_put_string(&args, "node", proto_bytes_of(cq->node_name)) != 0 ||
        (strlen(cluster_node_name(node)) <= QQ_NAME_MAX && /* this node's name, for the others */
         table_buf_put_string(&args, "name", proto_bytes_of(cluster_node_name(node))) != 0) ||
        propose(cq, "qq.node_down", &args, node_down_done, cq, 0) == 0)
        log_error("cluster: out of memory proposing this node's quorum queue release");
    table_buf_free(&args);
}

/* ---- the channel side ---- */

bool cluster_queues_replicated(const struct cluster_queues *cq, const struct queue *q)
{
    return cq && q && (queue_kind(q)->raft_group || queue_elsewhere(q));
}

bool cluster_queues_self_delete(struct cluster_queues *cq, struct vhost *vhost, struct queue *q)
{
    if (queue_kind(q)->raft_group || queue_elsewhere(q))
        return false;
    return classic_self_delete(cq->classic, vhost_name(vhost), queue_name(q));
}

/* Where q's commands go: its home (another node's classic queue holds its messages), or NULL
 * for the log. */
static const char *destination(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q)
{
    return queue_elsewhere(q) ? classic_remote_home(cq->classic, vhost_name(vhost), queue_name(q)) : NULL;
}

const char *cluster_queues_home(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q)
{
    return cq ? destination(cq, vhost, q) : NULL;
}

bool cluster_queues_pressured(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q,
                              uint64_t bound)
{
    if (!cq || !cq->node)
        return false;
    const char *home = destination(cq, vhost, q);
    if (bound == 0 || bound > LINK_QUEUE_MAX / 2)
        bound = LINK_QUEUE_MAX / 2; /* past LINK_QUEUE_MAX a send is refused: pause well before */
    return home && cluster_node_peer_backlog(cq->node, home) > bound;
}

void cluster_queues_deleting(struct cluster_queues *cq, struct vhost *vhost, struct queue *q)
{
    if (cq)
        classic_deleting(cq->classic, vhost_name(vhost), q);
}

struct cluster_nodes *cluster_queues_nodes(const struct cluster_queues *cq)
{
    return cq ? cq->nodes : NULL;
}

void cluster_queues_model_imported(struct cluster_queues *cq)
{
    if (cq)
        classic_mark_all(cq->classic);
}

void cluster_queues_caught_up(struct cluster_queues *cq)
{
    if (cq)
        classic_caught_up(cq->classic);
}

void *cluster_foreign_owner(void)
{
    static char owner;
    return &owner;
}

const char *cluster_queues_node_name(const struct cluster_queues *cq)
{
    return cq ? cq->node_name : "";
}

struct channel *cluster_queues_channel(const struct cluster_queues *cq, uint64_t id)
{
    return channel_of(cq, id);
}

void cluster_queues_cancel_homed(struct cluster_queues *cq, const char *home)
{
    struct chan_ent *e, *etmp;
    HASH_ITER(hh, cq->channels, e, etmp) {
        struct channel *ch = e->ch;
        struct consumer *c, *ctmp;
        HASH_ITER(hh, ch->consumers, c, ctmp) {
            const char *h = c->replicated ? destination(cq, ch->vhost, c->queue) : NULL;
            if (h && strcmp(h, home) == 0)
                consumer_queue_deleted(c); /* basic.cancel, as RabbitMQ when a queue's node goes down */
        }
    }
}

/* Sends q's command op to its home, or proposes it to the log (destination). args are freed. */
static uint64_t command_for(struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q, const char *op,
                            struct table_buf *args, cluster_queues_done_fn done, void *a, uint64_t b)
{
    const char *home = destination(cq, vhost, q);
    if (home)
        return classic_call(cq->classic, home, op, args, done, a, b);
    return propose(cq, op, args, done, a, b);
}

bool cluster_queues_depth(const struct cluster_queues *cq, const struct vhost *vhost, const struct queue *q,
                          struct queue_depth *out)
{
    if (!cluster_queues_replicated(cq, q))
        return false;
    struct rq *r = find_rq(cq, vhost_name(vhost), queue_name(q));
    *out = (struct queue_depth){0};
    if (queue_elsewhere(q)) /* the home's counts, as last fetched (cluster_queues_fetch_depth) */
        classic_depth(cq->classic, vhost_name(vhost), queue_name(q), out);
    if (r) {
        out->ready = qq_fsm_ready(&r->fsm);
        out->unacked = qq_fsm_messages(&r->fsm) - out->ready;
        out->consumers = qq_fsm_consumers(&r->fsm);
    }
    return true;
}

uint64_t cluster_queues_fetch_depth(struct cluster_queues *cq, struct vhost *vhost, struct queue *q,
                                    cluster_queues_done_fn done, void *a, uint64_t b)
{
    const char *home = cq && q ? destination(cq, vhost, q) : NULL;
    struct table_buf args = {0};
    if (!home || (table_buf_put_string(&args, "vhost", proto_bytes_of(vhost_name(vhost))) |
                  table_buf_put_string(&args, "queue", queue_name(q))) != 0) {
        table_buf_free(&args);
        return 0;
    }
    return classic_call(cq->classic, home, "qq.depth", &args, done, a, b);
}

uint64_t cluster_queues_channel_id(struct cluster_queues *cq, struct channel *ch)
{
    if (ch->replica_id)
        return ch->replica_id;
    struct chan_ent *e = calloc(1, sizeof *e);
    if (!e)
        return 0;
    e->id = ++cq->next_channel;
    e->ch = ch;
    HASH_ADD(hh, cq->channels, id, sizeof e->id, e);
    ch->replica_id = e->id;
    return e->id;
}

/* The common arguments of a consumer's command. */
static int put_consumer(struct table_buf *t, const struct cluster_queues *cq, const struct channel *ch,
                        const struct queue *q, struct proto_bytes tag)
{
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = (int64_t)ch->replica_id;
    return table_buf_put_string(t, "vhost", proto_bytes_of(vhost_name(ch->vhost))) |
           table_buf_put_string(t, "queue", queue_name(q)) | table_buf_put_string(t, "node", proto_bytes_of(cq->node_name)) |
           table_buf_put_field(t, "channel", 7, &v) | table_buf_put_string(t, "tag", tag);
}

static uint64_t consumer_call(struct cluster_queues *cq, struct channel *ch, struct queue *q, struct proto_bytes tag,
                              const char *op, int64_t prefetch, const struct consumer *c, cluster_queues_done_fn done,
                              void *a, uint64_t b)
{
    if (!cluster_queues_channel_id(cq, ch))
        return 0;
    struct table_buf args = {0};
    int rc = put_consumer(&args, cq, ch, q, tag);
    if (prefetch >= 0) {
        struct table_value v = {.type = TABLE_INT64};
        v.v.i64 = prefetch;
        rc |= table_buf_put_field(&args, "prefetch", 8, &v);
    }
    if (c && queue_elsewhere(q)) { /* the home's classic queue honours them (not the log's) */
        struct table_value v = {.type = TABLE_INT64};
        v.v.i64 = c->priority;
        rc |= table_buf_put_field(&args, "priority", 8, &v) | table_buf_put_bool(&args, "exclusive", c->exclusive);
    }
    if (rc != 0) {
        table_buf_free(&args);
        return 0;
    }
    return command_for(cq, ch->vhost, q, op, &args, done, a, b);
}

static int consumer_command(struct cluster_queues *cq, struct channel *ch, struct queue *q, struct proto_bytes tag,
                            const char *op, int64_t prefetch, const struct consumer *c)
{
    return consumer_call(cq, ch, q, tag, op, prefetch, c, NULL, NULL, 0) ? 0 : -1;
}

uint64_t cluster_queues_checkout_answered(struct cluster_queues *cq, struct channel *ch, const struct consumer *c,
                                          cluster_queues_done_fn done, void *a, uint64_t b)
{
    return consumer_call(cq, ch, c->queue, (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len}, "qq.checkout",
                         channel_replica_credit(c), c, done, a, b);
}

int cluster_queues_checkout(struct cluster_queues *cq, struct channel *ch, const struct consumer *c)
{
    return consumer_command(cq, ch, c->queue, (struct proto_bytes){(const uint8_t *)c->tag, c->tag_len}, "qq.checkout",
                            channel_replica_credit(c), c);
}

int cluster_queues_detach(struct cluster_queues *cq, struct channel *ch, struct queue *q, struct proto_bytes tag)
{
    return consumer_command(cq, ch, q, tag, "qq.detach", -1, NULL);
}

/* One command cancels every key the channel used in every queue: those it knows of, and those
 * whose checkout or delivery is still on its way (applied before this, as this node proposed
 * them before). Deliveries applied meanwhile find no channel and are dropped here: this
 * command puts them back. */
void cluster_queues_channel_closed(struct cluster_queues *cq, struct channel *ch)
{
    if (!cq || !ch->replica_id)
        return;
    struct table_buf args = {0};
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = (int64_t)ch->replica_id;
    int rc = table_buf_put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) |
             table_buf_put_string(&args, "node", proto_bytes_of(cq->node_name)) |
             table_buf_put_field(&args, "channel", 7, &v);
    if (rc == 0)
        classic_channel_closed(cq->classic, &args);
    if ((rc != 0 || propose(cq, "qq.channel_down", &args, NULL, NULL, 0) == 0) && cq->node)
        log_error("cluster: out of memory: a closed channel's quorum queue consumers were not cancelled");
    table_buf_free(&args);
    struct chan_ent *e;
    HASH_FIND(hh, cq->channels, &ch->replica_id, sizeof ch->replica_id, e);
    if (e) {
        HASH_DEL(cq->channels, e);
        free(e);
    }
    ch->replica_id = 0;
}

/* qq.enqueue's arguments for msg on queues[0..n). 0 or -1. */
static int enqueue_args(struct table_buf *args, const struct vhost *vhost, struct queue *const *queues, size_t n,
                        const uint8_t *content, size_t size, const struct message *msg)
{
    struct table_buf names = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct table_value v = {.type = TABLE_LONGSTR};
        v.v.bytes = queue_name(queues[i]);
        rc |= table_buf_put_value(&names, &v);
    }
    struct table_value v = {.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){names.data, (uint32_t)names.len};
    rc |= table_buf_put_string(args, "vhost", proto_bytes_of(vhost_name(vhost)));
    rc |= table_buf_put_field(args, "queues", 6, &v);
    v = (struct table_value){.type = TABLE_BYTES};
    v.v.bytes = (struct proto_bytes){content, (uint32_t)size};
    rc |= table_buf_put_field(args, "content", 7, &v);
    /* the queues' clock and the message's own TTL (qq_fsm.h, "Time") */
    v = (struct table_value){.type = TABLE_UINT64};
    v.v.u64 = wall_ms();
    rc |= table_buf_put_field(args, "now", 3, &v);
    if (msg->has_expiration) {
        v = (struct table_value){.type = TABLE_INT64};
        v.v.i64 = msg->expiration_ms > INT64_MAX ? INT64_MAX : (int64_t)msg->expiration_ms;
        rc |= table_buf_put_field(args, "ttl", 3, &v);
    }
    table_buf_free(&names);
    return rc ? -1 : 0;
}

static void join_end(struct cluster_queues *cq, struct join *j)
{
    HASH_DEL(cq->joins, j);
    if (j->done)
        j->done(j->a, j->b, &j->worst);
    free(j);
}

static void join_part_done(void *a, uint64_t b, const struct meta_result *result)
{
    struct cluster_queues *cq = a;
    struct join *j;
    HASH_FIND(hh, cq->joins, &b, sizeof b, j);
    if (!j)
        return;
    if (j->worst.status == 0 && result->status != 0)
        j->worst = *result;
    if (--j->parts == 0)
        join_end(cq, j);
}

/* Two destinations (a home, or NULL for the log) are the same place. */
static bool same_place(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

uint64_t cluster_queues_enqueue(struct cluster_queues *cq, struct vhost *vhost, struct queue *const *queues,
                                size_t n, const struct message *msg, cluster_queues_done_fn done, void *a,
                                uint64_t b)
{
    size_t size = message_serialize(msg, NULL, 0);
    if (size > UINT32_MAX - 4096 || n == 0)
        return 0;
    uint8_t *content = malloc(size ? size : 1);
    struct queue **part = malloc(n * sizeof *part);
    bool *sent = calloc(n, sizeof *sent);
    const char **dest = malloc(n * sizeof *dest);
    if (!content || !part || !sent || !dest) {
        free(content), free(part), free(sent), free(dest);
        return 0;
    }
    message_serialize(msg, content, size);
    /* One command per destination: the log's for the quorum queues, one for each home. */
    size_t destinations = 0;
    for (size_t i = 0; i < n; i++) {
        dest[i] = destination(cq, vhost, queues[i]);
        bool first = true;
        for (size_t k = 0; k < i && first; k++)
            first = !same_place(dest[i], dest[k]);
        destinations += first;
    }
    struct join *j = NULL;
    if (destinations > 1 && done) {
        j = calloc(1, sizeof *j);
        if (!j) {
            free(content), free(part), free(sent), free(dest);
            return 0;
        }
        *j = (struct join){.handle = ++cq->next_join | CLASSIC_HANDLE_BIT | JOIN_BIT, .done = done, .a = a, .b = b};
        HASH_ADD(hh, cq->joins, handle, sizeof j->handle, j);
    }
    uint64_t handle = 0;
    for (size_t i = 0; i < n; i++) {
        if (sent[i])
            continue;
        const char *home = dest[i];
        size_t m = 0;
        for (size_t k = i; k < n; k++) {
            if (!sent[k] && same_place(dest[k], home)) {
                sent[k] = true;
                part[m++] = queues[k];
            }
        }
        struct table_buf args = {0};
        uint64_t h = 0;
        if (enqueue_args(&args, vhost, part, m, content, size, msg) == 0) {
            cluster_queues_done_fn fn = j ? join_part_done : done;
            void *fa = j ? (void *)cq : a;
            uint64_t fb = j ? j->handle : b;
            h = home ? classic_call(cq->classic, home, "qq.enqueue", &args, fn, fa, fb)
                     : propose(cq, "qq.enqueue", &args, fn, fa, fb);
        }
        table_buf_free(&args);
        if (j && h) {
            j->parts++;
        } else if (j && j->worst.status == 0) {
            j->worst.status = -ENOMEM; /* this part was not sent: the publisher gets a nack */
            snprintf(j->worst.text, sizeof j->worst.text, "out of memory");
        }
        if (!j)
            handle = h;
    }
    free(content), free(part), free(sent), free(dest);
    if (!j)
        return handle;
    if (j->parts == 0) { /* nothing went out */
        HASH_DEL(cq->joins, j);
        free(j);
        return 0;
    }
    return j->handle;
}

uint64_t cluster_queues_dequeue(struct cluster_queues *cq, struct channel *ch, struct queue *q, bool no_ack,
                                cluster_queues_done_fn done, void *a, uint64_t b)
{
    if (!cluster_queues_channel_id(cq, ch))
        return 0;
    struct table_buf args = {0};
    if ((put_consumer(&args, cq, ch, q, (struct proto_bytes){0}) | table_buf_put_bool(&args, "no_ack", no_ack)) != 0) {
        table_buf_free(&args);
        return 0;
    }
    return command_for(cq, ch->vhost, q, "qq.dequeue", &args, done, a, b);
}

uint64_t cluster_queues_purge(struct cluster_queues *cq, struct vhost *vhost, struct queue *q,
                              cluster_queues_done_fn done, void *a, uint64_t b)
{
    struct table_buf args = {0};
    if ((table_buf_put_string(&args, "vhost", proto_bytes_of(vhost_name(vhost))) |
         table_buf_put_string(&args, "queue", queue_name(q))) != 0) {
        table_buf_free(&args);
        return 0;
    }
    return command_for(cq, vhost, q, "qq.purge", &args, done, a, b);
}

/* ---- settling ---- */

static const char *settle_op(enum queue_settle_mode mode)
{
    switch (mode) {
    case QUEUE_ACK:
        return "qq.settle";
    case QUEUE_DISCARD:
        return "qq.discard";
    case QUEUE_RETURN:   /* the channel went: back to the front, as a cancel does */
    case QUEUE_REQUEUE:  /* nack, reject or recover with requeue: to the back */
    default:
        return "qq.return";
    }
}

void cluster_settle_flush(struct cluster_settle_batch *b)
{
    if (!b->queue)
        return;
    struct cluster_queues *cq = b->cq;
    struct table_buf args = {0};
    int rc = cluster_queues_channel_id(cq, b->ch) ? 0 : -1;
    if (rc == 0)
        rc = put_consumer(&args, cq, b->ch, b->queue, (struct proto_bytes){(const uint8_t *)b->tag, b->tag_len});
    struct table_value v = {.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){b->ids.data, (uint32_t)b->ids.len};
    rc |= table_buf_put_field(&args, "ids", 3, &v);
    if (rc != 0 || command_for(cq, b->ch->vhost, b->queue, settle_op(b->mode), &args, NULL, NULL, 0) == 0)
        log_error("cluster: out of memory: %u settlement(s) of quorum queue '%.*s' lost", b->count,
                  (int)queue_name(b->queue).len, (const char *)queue_name(b->queue).ptr);
    table_buf_free(&args);
    table_buf_free(&b->ids);
    queue_release(b->queue);
    b->queue = NULL;
    b->count = 0;
}

void cluster_settle_add(struct cluster_settle_batch *b, struct channel *ch, struct queue *q, struct proto_bytes tag,
                        uint64_t id, enum queue_settle_mode mode)
{
    if (b->queue && (b->queue != q || b->ch != ch || b->mode != mode || b->tag_len != tag.len ||
                     memcmp(b->tag, tag.ptr, tag.len) != 0))
        cluster_settle_flush(b);
    if (!b->queue) {
        b->cq = server_cluster_queues(connection_server(ch->conn));
        b->ch = ch;
        b->queue = q;
        queue_retain(q);
        b->mode = mode;
        b->tag_len = (uint8_t)tag.len;
        if (tag.len)
            memcpy(b->tag, tag.ptr, tag.len);
    }
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = id;
    if (table_buf_put_value(&b->ids, &v) == 0)
        b->count++;
}
