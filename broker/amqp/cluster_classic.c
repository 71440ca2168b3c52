/* broker/amqp/cluster_classic.c: classic queues across the nodes of a cluster (design and
 * rules: cluster_classic.h): the homes' registry, the calls a node makes to a queue's home, and
 * the home's side, which runs them on its own queues through proxy consumers. Everything runs on
 * the loop's thread; what arrives on a peer link, and the news of a lost link, are queued from
 * inside libuv's run and acted on at the end of the pass (classic_flush). */
#include "cluster_classic.h"
#include "cluster_nodes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "cluster_members.h"
#include "cluster_node.h"
#include "consume_internal.h"
#include "direct_reply.h"
#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "meta_fsm.h"
#include "names.h"
#include "persistence.h"
#include "queue.h"
#include "server.h"
#include "server_internal.h"
#include "spec.h"
#include "uthash.h"
#include "vhost.h"

#define CALL_TIMEOUT_MS 10000 /* a home that neither answers nor drops its link by then: failed */
#define SWEEP_MS 500          /* how often waiting calls are looked at */
#define CONTACTS_MAX 16       /* homes a node sent to (qq.channel_down goes to each) */
#define DEPTHS_MS 5000        /* how often the homes are asked for every queue's counts */
#define PROBE_MS 3000         /* a member that does not answer a ping by then is taken as stopped */

/* The home of one classic queue, by vhost NUL name. */
struct home_ent {
    UT_hash_handle hh;
    size_t key_len;
    char key[2 * (NAME_MAX_LEN + 1)];
    char home[CLUSTER_ADDRESS_MAX];
    uint64_t delete_sent_ms; /* the home proposed its deletion then (classic_self_delete) */
};

/* A queue homed here that deleted itself (auto-delete, x-expires): its deletion is proposed. */
struct unused {
    struct unused *next;
    size_t key_len;
    char key[];
};

/* A queue's counts as its home last gave them. */
struct depth_ent {
    UT_hash_handle hh;
    size_t key_len;
    char key[2 * (NAME_MAX_LEN + 1)];
    struct queue_depth depth;
};

/* A call to a home whose asker waits. */
struct rcall {
    UT_hash_handle hh;
    uint64_t handle;
    char node[CLUSTER_ADDRESS_MAX];
    uint64_t sent_ms;
    bool failed;         /* could not be sent: completed at the next flush */
    uint8_t *asked;      /* a qq.depth's or qq.dequeue's arguments: the counts the answer carries */
    uint32_t asked_len;  /* are kept (classic_depth) */
    bool asked_get;      /* qq.dequeue: the answer is "id ready unacked consumers" */
    char text[256];      /* then, why */
    cluster_queues_done_fn done;
    void *a;
    uint64_t b;
};

/* A delivery a proxy made and its consumer has not settled, by the queue's entry seq. */
struct held {
    UT_hash_handle hh;
    uint64_t id;
    struct queue_entry entry;
    bool fetched; /* a basic.get's (queue_settle_fetched) */
};

/* On the home: another node's consumer (or a channel's basic.get holder, tag "") of one queue. */
struct proxy {
    UT_hash_handle hh;
    struct classic *cl;
    size_t key_len;
    char key[CLUSTER_ADDRESS_MAX + 8 + 256 + 2 * (NAME_MAX_LEN + 1)];
    char node[CLUSTER_ADDRESS_MAX];
    uint64_t channel;
    uint8_t tag_len;
    char tag[256];
    char vhost[NAME_MAX_LEN + 1];
    struct queue *queue; /* a reference */
    uint32_t credit;
    bool attached;       /* a consumer of the queue (not a get holder, not detached) */
    bool broken;         /* a delivery could not be sent: dropped at the next flush */
    struct held *held;
    uint32_t held_count;
};

/* What arrived on a peer link (len > 0), or the news that the link with `from` broke (len 0),
 * in the order it happened. */
struct inbox {
    struct inbox *next;
    char from[CLUSTER_ADDRESS_MAX];
    size_t len;
    uint8_t bytes[];
};

/* A message to another node that waits for the store (outbox_*). */
struct held_out {
    struct held_out *next;
    uint64_t batch; /* goes once this batch is durable; 0: as soon as those before it went */
    const char *op; /* a literal */
    struct table_buf args;
};

/* What waits to go to one node, in order. */
struct outbox {
    struct outbox *next;
    char node[CLUSTER_ADDRESS_MAX];
    struct held_out *head, **tail;
};

/* An answer the home gives once the store made a batch durable. */
struct answer {
    struct answer *next;
    char node[CLUSTER_ADDRESS_MAX];
    uint64_t handle, batch;
    int status;
    char text[64];
};

struct classic {
    struct cluster_queues *cq;
    struct server *server;
    struct cluster_node *node;
    char self[CLUSTER_ADDRESS_MAX];
    struct home_ent *homes;
    struct depth_ent *depths;
    struct rcall *calls;
    uint64_t next_handle;
    struct proxy *proxies;
    struct inbox *inbox, **inbox_tail;
    struct answer *answers, **answers_tail;
    struct unused *unused;
    char contacts[CONTACTS_MAX][CLUSTER_ADDRESS_MAX];
    size_t contact_count;
    char silent[CONTACTS_MAX][CLUSTER_ADDRESS_MAX]; /* peers whose lost link was logged, until */
    size_t silent_count;                             /* a message from them arrives again */
    struct {                  /* classic_probe: pings sent, answers and lost links seen */
        char address[CLUSTER_ADDRESS_MAX];
        uint64_t asked_ms, answered_ms, lost_ms;
    } probes[CONTACTS_MAX];
    size_t probe_count;
    uint64_t next_sweep_ms;
    uint64_t next_depths_ms;
    unsigned failed_calls;   /* calls marked failed, completed at the next flush */
    unsigned broken_proxies; /* proxies marked broken, dropped at the next flush */
    struct outbox *outboxes; /* messages waiting for the store, per node */
    bool sent;
};

static uint64_t now_ms(const struct classic *cl)
{
    return loop_now_ms(server_loop(cl->server));
}

static struct vhost *vhost_named(const struct classic *cl, const char *name)
{
    struct vhost_entry *e = server_vhost_entry(cl->server, name, strlen(name));
    return e ? e->vhost : NULL;
}

/* The model's queue vhost/name, or NULL. */
static struct queue *model_queue(const struct classic *cl, const char *vhost, struct proto_bytes name)
{
    struct vhost *v = vhost_named(cl, vhost);
    return v ? vhost_queue_find(v, name) : NULL;
}

static size_t home_key(char *out, const char *vhost, struct proto_bytes name)
{
    size_t n = strlen(vhost);
    memcpy(out, vhost, n + 1);
    memcpy(out + n + 1, name.ptr, name.len);
    return n + 1 + name.len;
}

/* The queue name of a key home_key wrote (its vhost is the key itself, up to the NUL). */
static struct proto_bytes key_name(const char *key, size_t key_len)
{
    size_t vlen = strlen(key);
    return (struct proto_bytes){(const uint8_t *)key + vlen + 1, (uint32_t)(key_len - vlen - 1)};
}

static struct home_ent *find_home(const struct classic *cl, const char *vhost, struct proto_bytes name)
{
    char key[2 * (NAME_MAX_LEN + 1)];
    if (strlen(vhost) > NAME_MAX_LEN || name.len > NAME_MAX_LEN)
        return NULL;
    size_t n = home_key(key, vhost, name);
    struct home_ent *h;
    HASH_FIND(hh, cl->homes, key, n, h);
    return h;
}

/* Reads a string field into out (NUL-terminated, at most cap - 1 bytes, no NUL inside). */
static bool get_u64(struct proto_bytes args, const char *key, uint64_t *out)
{
    struct table_value v;
    int64_t n;
    if (table_find(args, key, &v) != 1)
        return false;
    if (v.type == TABLE_UINT64) {
        *out = v.v.u64;
        return true;
    }
    if (!table_value_to_int(&v, &n) || n < 0)
        return false;
    *out = (uint64_t)n;
    return true;
}

/* ---- the homes ---- */

/* Marks the model's queue of h as living elsewhere, or not. */
static void mark_model(struct classic *cl, const struct home_ent *h)
{
    struct queue *q = model_queue(cl, h->key, key_name(h->key, h->key_len));
    if (q && !queue_kind(q)->raft_group)
        queue_set_elsewhere(q, strcmp(h->home, cl->self) != 0);
}

static struct home_ent *add_home(struct home_ent **set, const char *vhost, struct proto_bytes name,
                                 struct proto_bytes home)
{
    if (strlen(vhost) > NAME_MAX_LEN || name.len == 0 || name.len > NAME_MAX_LEN || home.len == 0 ||
        home.len >= CLUSTER_ADDRESS_MAX || memchr(home.ptr, 0, home.len))
        return NULL;
    struct home_ent *h = calloc(1, sizeof *h);
    if (!h) {
        log_error("cluster: out of memory recording the home of queue '%.*s'; stopping rather than diverge",
                  (int)name.len, (const char *)name.ptr);
        abort();
    }
    h->key_len = home_key(h->key, vhost, name);
    memcpy(h->home, home.ptr, home.len);
    HASH_ADD(hh, *set, key, h->key_len, h);
    return h;
}

void classic_declared(struct classic *cl, const char *vhost, struct proto_bytes name, struct proto_bytes home)
{
    if (!cl || home.len == 0)
        return;
    struct home_ent *h = find_home(cl, vhost, name);
    if (!h) {
        struct queue *q = model_queue(cl, vhost, name);
        if (!q || queue_kind(q)->raft_group)
            return; /* refused, or not a classic queue: nothing to place */
        h = add_home(&cl->homes, vhost, name, home);
    }
    if (h)
        mark_model(cl, h); /* the first home stays; a redeclare from elsewhere changes nothing */
}

static void drop_home(struct classic *cl, struct home_ent *h)
{
    struct depth_ent *d;
    HASH_FIND(hh, cl->depths, h->key, h->key_len, d);
    if (d) {
        HASH_DEL(cl->depths, d);
        free(d);
    }
    HASH_DEL(cl->homes, h);
    free(h);
}

void classic_depth(const struct classic *cl, const char *vhost, struct proto_bytes name, struct queue_depth *out)
{
    char key[2 * (NAME_MAX_LEN + 1)];
    struct depth_ent *d = NULL;
    if (strlen(vhost) <= NAME_MAX_LEN && name.len <= NAME_MAX_LEN) {
        size_t n = home_key(key, vhost, name);
        HASH_FIND(hh, cl->depths, key, n, d);
    }
    *out = d ? d->depth : (struct queue_depth){0};
}

/* A depth answer ("ready unacked consumers") for vhost/queue of args: kept. */
static void set_depth(struct classic *cl, const char *vhost, struct proto_bytes name, struct queue_depth depth)
{
    if (!find_home(cl, vhost, name))
        return; /* deleted meanwhile: nothing to keep */
    char key[2 * (NAME_MAX_LEN + 1)];
    size_t n = home_key(key, vhost, name);
    struct depth_ent *d;
    HASH_FIND(hh, cl->depths, key, n, d);
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d)
            return;
        memcpy(d->key, key, n);
        d->key_len = n;
        HASH_ADD(hh, cl->depths, key, d->key_len, d);
    }
    d->depth = depth;
}

static void keep_depth(struct classic *cl, struct proto_bytes args, const char *text)
{
    char vhost[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
    unsigned long long ready, unacked, consumers;
    if (table_find_cstring(args, "vhost", vhost, sizeof vhost) && table_find_cstring(args, "queue", name, sizeof name) &&
        sscanf(text, "%llu %llu %llu", &ready, &unacked, &consumers) == 3)
        set_depth(cl, vhost, proto_bytes_of(name),
                  (struct queue_depth){(size_t)ready, (size_t)unacked, (size_t)consumers});
}

/* ---- every queue's counts, now and then (the management API's and warrenctl's listings) ---- */

static int send_to(struct classic *cl, const char *node, const char *op, const struct table_buf *args);

/* The home answers "depths" with the counts of every queue homed here. */
static void send_depths(struct classic *cl, const char *to)
{
    struct table_buf t = {0};
    size_t list, e;
    int rc = table_buf_begin_nested(&t, "queues", TABLE_ARRAY, &list);
    for (const struct home_ent *h = cl->homes; h && rc == 0; h = h->hh.next) {
        if (strcmp(h->home, cl->self) != 0)
            continue;
        struct proto_bytes name = key_name(h->key, h->key_len);
        struct queue *q = model_queue(cl, h->key, name);
        if (!q)
            continue;
        struct table_value n = {.type = TABLE_UINT64};
        rc |= table_buf_begin_nested(&t, NULL, TABLE_TABLE, &e);
        rc |= table_buf_put_string(&t, "vhost", proto_bytes_of(h->key)) | table_buf_put_string(&t, "name", name);
        n.v.u64 = queue_ready_count(q);
        rc |= table_buf_put_field(&t, "ready", 5, &n);
        n.v.u64 = queue_unacked_count(q);
        rc |= table_buf_put_field(&t, "unacked", 7, &n);
        n.v.u64 = queue_consumer_count(q);
        rc |= table_buf_put_field(&t, "consumers", 9, &n);
        rc |= rc == 0 ? table_buf_end_nested(&t, e) : 0;
    }
    rc |= rc == 0 ? table_buf_end_nested(&t, list) : 0;
    if (rc == 0)
        send_to(cl, to, "depths.ok", &t);
    table_buf_free(&t);
}

static void on_depths(struct classic *cl, struct proto_bytes args)
{
    struct table_value list, e;
    if (table_find(args, "queues", &list) != 1 || list.type != TABLE_ARRAY)
        return;
    struct table_iter it;
    table_iter_init(&it, list.v.bytes);
    while (array_next(&it, &e) == 1) {
        char vhost[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
        uint64_t ready, unacked, consumers;
        if (e.type == TABLE_TABLE && table_find_cstring(e.v.bytes, "vhost", vhost, sizeof vhost) &&
            table_find_cstring(e.v.bytes, "name", name, sizeof name) && get_u64(e.v.bytes, "ready", &ready) &&
            get_u64(e.v.bytes, "unacked", &unacked) && get_u64(e.v.bytes, "consumers", &consumers))
            set_depth(cl, vhost, proto_bytes_of(name), (struct queue_depth){ready, unacked, consumers});
    }
}

/* Every DEPTHS_MS, each home of a queue this node holds elsewhere is asked for its counts. */
static void ask_depths(struct classic *cl)
{
    char asked[CONTACTS_MAX][CLUSTER_ADDRESS_MAX];
    size_t n = 0;
    for (const struct home_ent *h = cl->homes; h; h = h->hh.next) {
        if (strcmp(h->home, cl->self) == 0)
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(asked[i], h->home) == 0;
        if (seen || n == CONTACTS_MAX)
            continue;
        snprintf(asked[n++], CLUSTER_ADDRESS_MAX, "%s", h->home);
        struct table_buf t = {0};
        send_to(cl, h->home, "depths", &t);
    }
}

void classic_deleted(struct classic *cl, const char *vhost, struct proto_bytes name)
{
    struct home_ent *h = cl ? find_home(cl, vhost, name) : NULL;
    if (h)
        drop_home(cl, h);
}

void classic_vhost_deleted(struct classic *cl, const char *vhost)
{
    struct home_ent *h, *tmp;
    if (!cl)
        return;
    HASH_ITER(hh, cl->homes, h, tmp) {
        if (strcmp(h->key, vhost) == 0)
            drop_home(cl, h);
    }
}

/* Queues a proposal of vhost/name's deletion (at the end of the pass). */
static void want_deleted(struct classic *cl, const struct home_ent *h)
{
    struct unused *u = malloc(sizeof *u + h->key_len);
    if (!u) {
        struct proto_bytes name = key_name(h->key, h->key_len);
        log_error("cluster: out of memory: the deletion of queue '%.*s' is not told to the other nodes", (int)name.len,
                  (const char *)name.ptr);
        return;
    }
    u->key_len = h->key_len;
    memcpy(u->key, h->key, h->key_len);
    u->next = cl->unused;
    cl->unused = u;
}

static void delete_proposed(void *arg, const struct meta_result *result)
{
    (void)arg;
    if (result->status != 0 && result->status != META_DUPLICATE)
        log_info("cluster: deleting a queue through the log failed (%d %s)", result->status, result->text);
}

bool classic_self_delete(struct classic *cl, const char *vhost, struct proto_bytes name)
{
    struct home_ent *h = find_home(cl, vhost, name);
    struct queue *q = model_queue(cl, vhost, name);
    if (!h || (q && queue_settings(q)->exclusive && queue_owner(q) != cluster_foreign_owner()))
        return true; /* exclusive: it goes with its connection at once, and classic_deleting tells */
    uint64_t now = now_ms(cl);
    if (strcmp(h->home, cl->self) != 0 || !cl->node || (h->delete_sent_ms && now - h->delete_sent_ms < 2000))
        return false;
    /* Proposed at the end of the pass: this may run inside an applied command (a consumer
     * cancelled by a deletion), where nothing is proposed. */
    h->delete_sent_ms = now;
    want_deleted(cl, h);
    return false;
}

void classic_member_gone(struct classic *cl, const char *address)
{
    for (struct home_ent *h = cl->homes; h; h = h->hh.next)
        if (strcmp(h->home, address) == 0)
            want_deleted(cl, h);
}

void classic_member_down(struct classic *cl, const char *address)
{
    for (struct home_ent *h = cl->homes; h; h = h->hh.next) {
        if (strcmp(h->home, address) != 0)
            continue;
        struct queue *q = model_queue(cl, h->key, key_name(h->key, h->key_len));
        if (q && (queue_settings(q)->exclusive || !queue_settings(q)->durable))
            want_deleted(cl, h);
    }
}

void classic_deleting(struct classic *cl, const char *vhost, struct queue *q)
{
    if (!cl || !cl->node || !queue_settings(q)->exclusive || queue_owner(q) == cluster_foreign_owner())
        return;
    struct home_ent *h = find_home(cl, vhost, queue_name(q));
    if (h && strcmp(h->home, cl->self) == 0)
        want_deleted(cl, h); /* its connection's node: the copies elsewhere go too */
}

void classic_caught_up(struct classic *cl)
{
    /* Homed here and no longer here, or here only as a copy: an exclusive queue of this node's
     * earlier run (its connection died with it), or a queue lost without the log. */
    for (struct home_ent *h = cl->homes; h; h = h->hh.next) {
        if (strcmp(h->home, cl->self) != 0)
            continue;
        struct queue *q = model_queue(cl, h->key, key_name(h->key, h->key_len));
        if (!q || queue_owner(q) == cluster_foreign_owner())
            want_deleted(cl, h);
    }
}

/* Proposes the deletions classic_self_delete asked for. */
static void propose_unused(struct classic *cl)
{
    while (cl->unused) {
        struct unused *u = cl->unused;
        cl->unused = u->next;
        struct table_buf args = {0};
        if ((table_buf_put_string(&args, "vhost", proto_bytes_of(u->key)) |
             table_buf_put_string(&args, "name", key_name(u->key, u->key_len))) != 0 ||
            !cl->node || cluster_node_propose(cl->node, "queue.delete", &args, delete_proposed, NULL) == 0)
            log_error("cluster: out of memory proposing the deletion of an unused queue");
        table_buf_free(&args);
        free(u);
    }
}

const char *classic_remote_home(const struct classic *cl, const char *vhost, struct proto_bytes name)
{
    const struct home_ent *h = cl ? find_home(cl, vhost, name) : NULL;
    return h && strcmp(h->home, cl->self) != 0 ? h->home : NULL;
}

int classic_export(const struct classic *cl, struct table_buf *out)
{
    size_t list, e;
    int rc = table_buf_begin_nested(out, "classic_homes", TABLE_ARRAY, &list);
    for (const struct home_ent *h = cl ? cl->homes : NULL; h && rc == 0; h = h->hh.next) {
        rc |= table_buf_begin_nested(out, NULL, TABLE_TABLE, &e);
        rc |= table_buf_put_string(out, "vhost", proto_bytes_of(h->key));
        rc |= table_buf_put_string(out, "name", key_name(h->key, h->key_len));
        rc |= table_buf_put_string(out, "home", proto_bytes_of(h->home));
        rc |= rc == 0 ? table_buf_end_nested(out, e) : 0;
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    return rc ? -1 : 0;
}

int classic_import(struct classic *cl, struct proto_bytes state)
{
    if (!cl)
        return 0;
    struct table_value list, e;
    struct home_ent *fresh = NULL, *h, *tmp;
    int found = table_find(state, "classic_homes", &list);
    if (found == 1 && list.type != TABLE_ARRAY)
        return -1;
    int rc = 0, more = 0;
    if (found == 1) {
        struct table_iter it;
        table_iter_init(&it, list.v.bytes);
        while (rc == 0 && (more = array_next(&it, &e)) == 1) {
            char vhost[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1], home[CLUSTER_ADDRESS_MAX];
            if (e.type != TABLE_TABLE || !table_find_cstring(e.v.bytes, "vhost", vhost, sizeof vhost) ||
                !table_find_cstring(e.v.bytes, "name", name, sizeof name) || !table_find_cstring(e.v.bytes, "home", home, sizeof home)) {
                rc = -1;
                break;
            }
            char key[2 * (NAME_MAX_LEN + 1)];
            size_t n = home_key(key, vhost, proto_bytes_of(name));
            HASH_FIND(hh, fresh, key, n, h);
            if (h || !add_home(&fresh, vhost, proto_bytes_of(name), proto_bytes_of(home)))
                rc = -1;
        }
        if (rc == 0 && more != 0)
            rc = -1;
    }
    if (rc != 0) {
        HASH_ITER(hh, fresh, h, tmp) {
            HASH_DEL(fresh, h);
            free(h);
        }
        return -1;
    }
    HASH_ITER(hh, cl->homes, h, tmp) {
        drop_home(cl, h);
    }
    cl->homes = fresh;
    classic_mark_all(cl);
    return 0;
}

void classic_mark_all(struct classic *cl)
{
    for (struct home_ent *h = cl ? cl->homes : NULL; h; h = h->hh.next)
        mark_model(cl, h);
}

/* ---- sending ---- */

static void note_contact(struct classic *cl, const char *node)
{
    for (size_t i = 0; i < cl->contact_count; i++)
        if (strcmp(cl->contacts[i], node) == 0)
            return;
    if (cl->contact_count < CONTACTS_MAX)
        snprintf(cl->contacts[cl->contact_count++], CLUSTER_ADDRESS_MAX, "%s", node);
}

static void noted(struct classic *cl, const char *from, const uint8_t *bytes, size_t len);

static int send_now(struct classic *cl, const char *node, const char *op, const struct table_buf *args)
{
    if (!cl->node)
        return -ESHUTDOWN;
    int rc = cluster_node_send(cl->node, node, op, args);
    if (rc == 0)
        cl->sent = true;
    return rc;
}

/* ---- what waits for the store ----
 *
 * A home records each delivery in its store (so that a message delivered and not acked comes
 * back redelivered after a restart), but that record needs no sync, and one not yet written
 * when the home is killed is lost: the home then serves the message again with redelivered
 * false. For its own clients that is harmless (their connections died with it), but a consumer
 * on another node lives on, and would get a second unflagged copy. So a delivery to another
 * node leaves only once the batch holding its record is durable, and everything sent to that
 * node after it waits behind it, in order. The wait is one group commit. */

static struct outbox *outbox_of(struct classic *cl, const char *node)
{
    for (struct outbox *o = cl->outboxes; o; o = o->next)
        if (strcmp(o->node, node) == 0)
            return o;
    return NULL;
}

/* Drops what waits for node (its link broke: the other side gave up what it expected). */
static void outbox_drop(struct classic *cl, const char *node)
{
    for (struct outbox **link = &cl->outboxes; *link; link = &(*link)->next) {
        struct outbox *o = *link;
        if (strcmp(o->node, node) != 0)
            continue;
        *link = o->next;
        while (o->head) {
            struct held_out *h = o->head;
            o->head = h->next;
            table_buf_free(&h->args);
            free(h);
        }
        free(o);
        return;
    }
}

/* Sends op to node once batch is durable (0: at once) and whatever was sent to node before has
 * gone. 0 when sent or queued, or what cluster_node_send returned. */
static int send_after(struct classic *cl, const char *node, const char *op, const struct table_buf *args,
                      uint64_t batch)
{
    struct outbox *o = outbox_of(cl, node);
    if ((!o || !o->head) && batch <= persistence_durable_batch(server_persistence(cl->server)))
        return send_now(cl, node, op, args);
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o)
            return -ENOMEM;
        snprintf(o->node, sizeof o->node, "%s", node);
        o->tail = &o->head;
        o->next = cl->outboxes;
        cl->outboxes = o;
    }
    struct held_out *h = calloc(1, sizeof *h);
    uint8_t *copy = h && args->len ? malloc(args->len) : NULL;
    if (!h || (args->len && !copy)) {
        free(h);
        return -ENOMEM;
    }
    if (args->len)
        memcpy(copy, args->data, args->len);
    *h = (struct held_out){.batch = batch, .op = op, .args = {copy, args->len, args->len}};
    *o->tail = h;
    o->tail = &h->next;
    return 0;
}

static int send_to(struct classic *cl, const char *node, const char *op, const struct table_buf *args)
{
    return send_after(cl, node, op, args, 0);
}

/* Sends what the store's progress lets go. A send that fails counts as a broken link. */
static void outbox_flush(struct classic *cl)
{
    uint64_t durable = persistence_durable_batch(server_persistence(cl->server));
    struct outbox *o = cl->outboxes;
    while (o) {
        struct outbox *next = o->next;
        while (o->head && o->head->batch <= durable) {
            struct held_out *h = o->head;
            o->head = h->next;
            if (!o->head)
                o->tail = &o->head;
            int rc = send_now(cl, o->node, h->op, &h->args);
            table_buf_free(&h->args);
            free(h);
            if (rc != 0) {
                noted(cl, o->node, NULL, 0); /* handled as the link's loss, at the next flush */
                outbox_drop(cl, o->node);
                break;
            }
        }
        o = next;
    }
}

/* A home's answer to the call handle: {handle, status, text}. */
static void send_result(struct classic *cl, const char *node, uint64_t handle, int status, const char *text)
{
    if (handle == 0)
        return;
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = handle;
    int rc = table_buf_put_field(&t, "handle", 6, &v);
    v = (struct table_value){.type = TABLE_INT64};
    v.v.i64 = status;
    rc |= table_buf_put_field(&t, "status", 6, &v) | table_buf_put_string(&t, "text", proto_bytes_of(text));
    if (rc != 0 || send_to(cl, node, "result", &t) != 0)
        log_debug("cluster: an answer to %s was not sent (its link is gone: it fails the call itself)", node);
    table_buf_free(&t);
}

/* The text RabbitMQ gives for a queue whose node is down. */
static void unreachable_text(char *out, size_t cap, const char *home, struct proto_bytes args)
{
    char vhost[NAME_MAX_LEN + 1] = "", queue[NAME_MAX_LEN + 1] = "";
    table_find_cstring(args, "vhost", vhost, sizeof vhost);
    table_find_cstring(args, "queue", queue, sizeof queue);
    if (queue[0])
        snprintf(out, cap, "home node '%.60s' of queue '%.30s' in vhost '%.20s' is down or inaccessible", home, queue,
                 vhost);
    else
        snprintf(out, cap, "home node '%.100s' of a queue is down or inaccessible", home);
}

/* A consumer whose checkout could not reach its home: cancelled at the next flush, as if the
 * home had refused it. */
static void note_cancel(struct classic *cl, const struct table_buf *args)
{
    struct raft_buffer buf;
    if (meta_command_encode(&buf, "cancelled", 0, 1, args) != 0)
        return;
    struct inbox *m = malloc(sizeof *m + buf.len);
    if (m) {
        *m = (struct inbox){.len = buf.len};
        snprintf(m->from, sizeof m->from, "%s", cl->self);
        memcpy(m->bytes, buf.base, buf.len);
        *cl->inbox_tail = m;
        cl->inbox_tail = &m->next;
    }
    raft_free(buf.base);
}

uint64_t classic_call(struct classic *cl, const char *home, const char *op, struct table_buf *args,
                      cluster_queues_done_fn done, void *a, uint64_t b)
{
    if (!cl->node) {
        table_buf_free(args);
        return 0;
    }
    struct rcall *c = NULL;
    if (done) {
        c = calloc(1, sizeof *c);
        struct table_value v = {.type = TABLE_UINT64};
        v.v.u64 = c ? (++cl->next_handle | CLASSIC_HANDLE_BIT) : 0;
        if (!c || table_buf_put_field(args, "handle", 6, &v) != 0) {
            free(c);
            table_buf_free(args);
            return 0;
        }
        *c = (struct rcall){.handle = v.v.u64, .sent_ms = now_ms(cl), .done = done, .a = a, .b = b};
        snprintf(c->node, sizeof c->node, "%s", home);
        if (strcmp(op, "qq.depth") == 0 || strcmp(op, "qq.dequeue") == 0) {
            c->asked_get = strcmp(op, "qq.dequeue") == 0;
            c->asked = malloc(args->len ? args->len : 1);
            if (!c->asked) {
                free(c);
                table_buf_free(args);
                return 0;
            }
            memcpy(c->asked, args->data, args->len);
            c->asked_len = (uint32_t)args->len;
        }
    }
    note_contact(cl, home);
    int rc = send_to(cl, home, op, args);
    if (rc != 0) {
        log_debug("cluster: %s to %s not sent (%d)", op, home, rc);
        if (c) { /* the asker learns it at the end of the pass, as if the home had said so */
            c->failed = true;
            cl->failed_calls++;
            unreachable_text(c->text, sizeof c->text, home, (struct proto_bytes){args->data, (uint32_t)args->len});
        } else if (strcmp(op, "qq.checkout") == 0) {
            note_cancel(cl, args);
        }
    }
    table_buf_free(args);
    if (!c)
        return 1;
    HASH_ADD(hh, cl->calls, handle, sizeof c->handle, c);
    return c->handle;
}

static void call_free(struct rcall *c)
{
    free(c->asked);
    free(c);
}

void classic_forget(struct classic *cl, uint64_t handle)
{
    struct rcall *c;
    HASH_FIND(hh, cl->calls, &handle, sizeof handle, c);
    if (c) {
        HASH_DEL(cl->calls, c);
        call_free(c);
    }
}

void classic_channel_closed(struct classic *cl, const struct table_buf *args)
{
    for (size_t i = 0; i < cl->contact_count; i++)
        if (send_to(cl, cl->contacts[i], "qq.channel_down", args) != 0)
            log_debug("cluster: channel_down to %s not sent (its link is gone: it drops the proxies itself)",
                      cl->contacts[i]);
}

static void complete(struct classic *cl, struct rcall *c, int status, const char *text)
{
    HASH_DEL(cl->calls, c);
    if (status == 0 && c->asked) {
        const char *counts = c->asked_get ? strchr(text, ' ') : text;
        if (counts)
            keep_depth(cl, (struct proto_bytes){c->asked, c->asked_len}, counts);
    }
    struct meta_result r = {.status = status};
    snprintf(r.text, sizeof r.text, "%s", text);
    if (c->done)
        c->done(c->a, c->b, &r);
    call_free(c);
}

/* ---- the home's side: proxies ---- */

static size_t proxy_key(char *out, const char *node, uint64_t channel, struct proto_bytes tag, const char *vhost,
                        struct proto_bytes queue)
{
    size_t n = strlen(node) + 1, at = 0;
    memcpy(out, node, n);
    at += n;
    memcpy(out + at, &channel, 8);
    at += 8;
    out[at++] = (char)tag.len;
    memcpy(out + at, tag.ptr, tag.len);
    at += tag.len;
    n = strlen(vhost) + 1;
    memcpy(out + at, vhost, n);
    at += n;
    memcpy(out + at, queue.ptr, queue.len);
    return at + queue.len;
}

/* Puts msg, serialized, as "content". 0 or -1. */
static int put_content(struct table_buf *t, const struct message *msg)
{
    size_t size = message_serialize(msg, NULL, 0);
    uint8_t *content = size < UINT32_MAX - 4096 ? malloc(size ? size : 1) : NULL;
    if (!content)
        return -1;
    message_serialize(msg, content, size);
    struct table_value v = {.type = TABLE_BYTES};
    v.v.bytes = (struct proto_bytes){content, (uint32_t)size};
    int rc = table_buf_put_field(t, "content", 7, &v);
    free(content);
    return rc;
}

/* Sends entry to the consumer (channel, tag) of node as a "deliver" of vhost's queue. 0, or -1
 * when it could not be sent (its link is gone: the proxy that holds it is dropped). */
/* Sends a delivery of entry once the store holds its delivery record (what waits for the store,
 * above). */
static int send_delivery(struct classic *cl, const char *node, const char *vhost, const struct queue *queue,
                         uint64_t channel, struct proto_bytes tag, const struct queue_entry *entry)
{
    uint64_t batch = entry->msg->stored ? persistence_record_batch(server_persistence(cl->server)) : 0;
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = (int64_t)channel;
    int rc = table_buf_put_string(&t, "vhost", proto_bytes_of(vhost)) |
             table_buf_put_string(&t, "queue", queue_name(queue)) | table_buf_put_field(&t, "channel", 7, &v) |
             table_buf_put_string(&t, "tag", tag);
    v = (struct table_value){.type = TABLE_UINT64};
    v.v.u64 = entry->seq;
    rc |= table_buf_put_field(&t, "id", 2, &v);
    v.v.u64 = entry->delivery_count;
    rc |= table_buf_put_field(&t, "count", 5, &v) | put_content(&t, entry->msg);
    rc = rc != 0 ? -1 : send_after(cl, node, "deliver", &t, batch);
    table_buf_free(&t);
    return rc != 0 ? -1 : 0;
}

/* Gives a held delivery back to its queue as mode says (a basic.get's as one). */
static void settle_held(struct queue *q, const struct queue_entry *entry, bool fetched, enum queue_settle_mode mode)
{
    if (fetched)
        queue_settle_fetched(q, entry, mode);
    else
        queue_settle(q, entry, mode);
}

/* p takes nothing more; it goes, returning what it held, at the next flush (or sooner). */
static void mark_broken(struct proxy *p)
{
    if (!p->broken)
        p->cl->broken_proxies++;
    p->broken = true;
}

static bool proxy_has_credit(void *consumer, const struct message *msg)
{
    (void)msg;
    struct proxy *p = consumer;
    return p->attached && !p->broken && p->held_count < p->credit;
}

static void proxy_hold(struct proxy *p, const struct queue_entry *entry, bool fetched)
{
    struct held *h = malloc(sizeof *h);
    if (!h) { /* cannot track it: given back, as a consumer that cannot take it */
        mark_broken(p);
        settle_held(p->queue, entry, fetched, QUEUE_RETURN);
        return;
    }
    *h = (struct held){.id = entry->seq, .entry = *entry, .fetched = fetched};
    HASH_ADD(hh, p->held, id, sizeof h->id, h);
    p->held_count++;
}

static void proxy_deliver(void *consumer, struct queue *queue, const struct queue_entry *entry, bool no_ack)
{
    (void)no_ack; /* added in ack mode: a no-ack consumer's node acks each delivery */
    struct proxy *p = consumer;
    if (send_delivery(p->cl, p->node, p->vhost, queue, p->channel,
                      (struct proto_bytes){(const uint8_t *)p->tag, p->tag_len}, entry) != 0)
        mark_broken(p); /* held: returned when the proxy goes (classic_flush) */
    proxy_hold(p, entry, false);
}

static void proxy_free(struct proxy *p, enum queue_settle_mode mode, bool dispatch)
{
    struct classic *cl = p->cl;
    if (p->broken)
        cl->broken_proxies--;
    HASH_DEL(cl->proxies, p);
    if (p->attached) {
        p->attached = false;
        queue_remove_consumer(p->queue, p);
    }
    struct held *h, *tmp;
    HASH_ITER(hh, p->held, h, tmp) {
        HASH_DEL(p->held, h);
        settle_held(p->queue, &h->entry, h->fetched, mode);
        free(h);
    }
    if (dispatch)
        queue_dispatch(p->queue, now_ms(cl));
    queue_release(p->queue);
    free(p);
}

/* The queue is being deleted here: the proxy goes (the consumer's node cancels its consumer when
 * it applies the same deletion). */
static void proxy_queue_deleted(void *consumer)
{
    proxy_free(consumer, QUEUE_RETURN, false);
}

static const struct consumer_ops proxy_ops = {
    .has_credit = proxy_has_credit,
    .deliver = proxy_deliver,
    .queue_deleted = proxy_queue_deleted,
};

/* The consumer a command names: node, channel, tag in args. */
struct who {
    char node[CLUSTER_ADDRESS_MAX];
    uint64_t channel;
    struct proto_bytes tag;
};

static bool get_who(struct proto_bytes args, const char *from, struct who *out)
{
    struct table_value v;
    if (!table_find_cstring(args, "node", out->node, sizeof out->node) || strcmp(out->node, from) != 0 ||
        !get_u64(args, "channel", &out->channel) || table_find(args, "tag", &v) != 1 || v.type != TABLE_LONGSTR ||
        v.v.bytes.len > 255)
        return false;
    out->tag = v.v.bytes;
    return true;
}

static struct proxy *find_proxy(struct classic *cl, const struct who *w, const char *vhost, struct proto_bytes queue)
{
    char key[sizeof(((struct proxy *)0)->key)];
    size_t n = proxy_key(key, w->node, w->channel, w->tag, vhost, queue);
    struct proxy *p;
    HASH_FIND(hh, cl->proxies, key, n, p);
    return p;
}

static struct proxy *new_proxy(struct classic *cl, const struct who *w, const char *vhost, struct queue *q)
{
    struct proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cl = cl;
    p->key_len = proxy_key(p->key, w->node, w->channel, w->tag, vhost, queue_name(q));
    snprintf(p->node, sizeof p->node, "%s", w->node);
    p->channel = w->channel;
    p->tag_len = (uint8_t)w->tag.len;
    memcpy(p->tag, w->tag.ptr, w->tag.len);
    snprintf(p->vhost, sizeof p->vhost, "%s", vhost);
    p->queue = q;
    queue_retain(q);
    HASH_ADD(hh, cl->proxies, key, p->key_len, p);
    return p;
}

/* Tells the consumer's node that its consumer is gone (refused, or the queue went here). */
static void send_cancelled(struct classic *cl, const struct who *w, const char *vhost, struct proto_bytes queue)
{
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = (int64_t)w->channel;
    if ((table_buf_put_string(&t, "vhost", proto_bytes_of(vhost)) | table_buf_put_string(&t, "queue", queue) |
         table_buf_put_field(&t, "channel", 7, &v) | table_buf_put_string(&t, "tag", w->tag)) == 0)
        send_to(cl, w->node, "cancelled", &t);
    table_buf_free(&t);
}

/* A local classic queue this node is the home of, or NULL. */
static struct queue *home_queue(struct classic *cl, const char *vhost, struct proto_bytes name)
{
    struct queue *q = model_queue(cl, vhost, name);
    if (!q || queue_kind(q)->raft_group || queue_elsewhere(q))
        return NULL;
    return q; /* an exclusive one too: publishes reach it from every node */
}

static void home_enqueue(struct classic *cl, const char *from, const char *vhost, struct proto_bytes args,
                         uint64_t handle)
{
    struct table_value list, content, e;
    int status = 0;
    char text[64] = "";
    if (table_find(args, "queues", &list) != 1 || list.type != TABLE_ARRAY || table_find(args, "content", &content) != 1 ||
        content.type != TABLE_BYTES) {
        send_result(cl, from, handle, META_MALFORMED, "malformed enqueue");
        return;
    }
    struct message *msg = message_deserialize(0, content.v.bytes.ptr, content.v.bytes.len);
    if (!msg) {
        send_result(cl, from, handle, META_MALFORMED, "malformed message");
        return;
    }
    struct persistence *store = server_persistence(cl->server);
    struct persistence_mark mark = persistence_mark(store);
    uint64_t now = now_ms(cl);
    struct table_iter it;
    table_iter_init(&it, list.v.bytes);
    while (array_next(&it, &e) == 1) {
        struct queue *q = e.type == TABLE_LONGSTR ? home_queue(cl, vhost, e.v.bytes) : NULL;
        if (!q) {
            status = SPEC_NOT_FOUND; /* deleted meanwhile: the publisher gets a nack */
            snprintf(text, sizeof text, "no such queue");
            continue;
        }
        queue_retain(q);
        if (queue_publish(q, msg, now) != 0) {
            status = SPEC_PRECONDITION_FAILED; /* reject-publish, or out of memory: a nack */
            snprintf(text, sizeof text, "queue refused the message");
        } else {
            queue_dispatch(q, now);
        }
        queue_release(q);
    }
    message_release(msg);
    bool lost = false;
    uint64_t batch = persistence_wait_batch(store, mark, &lost);
    if (lost && status == 0) {
        status = SPEC_INTERNAL_ERROR;
        snprintf(text, sizeof text, "the store could not take the message");
    }
    if (handle == 0)
        return;
    if (batch == 0) {
        send_result(cl, from, handle, status, text);
        return;
    }
    struct answer *a = calloc(1, sizeof *a);
    if (!a) {
        send_result(cl, from, handle, SPEC_INTERNAL_ERROR, "out of memory");
        return;
    }
    *a = (struct answer){.handle = handle, .batch = batch, .status = status};
    snprintf(a->node, sizeof a->node, "%s", from);
    snprintf(a->text, sizeof a->text, "%s", text);
    *cl->answers_tail = a;
    cl->answers_tail = &a->next;
}

static enum queue_settle_mode settle_mode(const char *op)
{
    if (strcmp(op, "settle") == 0)
        return QUEUE_ACK;
    if (strcmp(op, "discard") == 0)
        return QUEUE_DISCARD;
    return QUEUE_REQUEUE; /* a classic queue puts a requeued message back in its place */
}

static void home_settle(struct classic *cl, struct proxy *p, const char *op, struct proto_bytes args)
{
    struct table_value list, e;
    if (table_find(args, "ids", &list) != 1 || list.type != TABLE_ARRAY)
        return;
    enum queue_settle_mode mode = settle_mode(op);
    struct table_iter it;
    table_iter_init(&it, list.v.bytes);
    struct queue *q = p->queue;
    queue_retain(q);
    while (array_next(&it, &e) == 1) {
        if (e.type != TABLE_UINT64)
            continue;
        struct held *h;
        HASH_FIND(hh, p->held, &e.v.u64, sizeof e.v.u64, h);
        if (!h)
            continue; /* settled before, or returned when an earlier link broke */
        HASH_DEL(p->held, h);
        p->held_count--;
        settle_held(q, &h->entry, h->fetched, mode);
        free(h);
    }
    if (!p->attached && p->held_count == 0)
        proxy_free(p, QUEUE_RETURN, false);
    queue_dispatch(q, now_ms(cl));
    queue_release(q);
}

static void home_get(struct classic *cl, const char *from, const struct who *w, const char *vhost, struct queue *q,
                     struct proto_bytes args, uint64_t handle)
{
    struct table_value v;
    bool no_ack = table_find(args, "no_ack", &v) == 1 && v.type == TABLE_BOOL && v.v.boolean;
    struct queue_entry entry;
    if (!queue_get(q, now_ms(cl), no_ack, &entry)) {
        char answer[96];
        snprintf(answer, sizeof answer, "0 0 %zu %zu", queue_unacked_count(q), queue_consumer_count(q));
        send_result(cl, from, handle, 0, answer);
        return;
    }
    struct proxy *p = no_ack ? NULL : find_proxy(cl, w, vhost, queue_name(q));
    if (!no_ack && !p)
        p = new_proxy(cl, w, vhost, q);
    if (!no_ack && !p) {
        queue_settle_fetched(q, &entry, QUEUE_RETURN);
        send_result(cl, from, handle, SPEC_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (send_delivery(cl, w->node, vhost, q, w->channel, (struct proto_bytes){0}, &entry) != 0 && p)
        mark_broken(p); /* the get holder: what it held returns when it goes */
    if (p)
        proxy_hold(p, &entry, true);
    else
        message_release(entry.msg); /* no-ack: it left the queue */
    char answer[96]; /* the id, then the counts get-ok carries (message_count) */
    snprintf(answer, sizeof answer, "%" PRIu64 " %zu %zu %zu", entry.seq, queue_ready_count(q), queue_unacked_count(q),
             queue_consumer_count(q));
    send_result(cl, from, handle, 0, answer);
}

/* A qq.* command another node sent about a queue homed here. */
static void home_run(struct classic *cl, const char *from, const char *op, struct proto_bytes args)
{
    char vhost[NAME_MAX_LEN + 1];
    uint64_t handle = 0;
    get_u64(args, "handle", &handle);
    if (!table_find_cstring(args, "vhost", vhost, sizeof vhost)) {
        send_result(cl, from, handle, META_MALFORMED, "malformed command");
        return;
    }
    if (strcmp(op, "enqueue") == 0) {
        home_enqueue(cl, from, vhost, args, handle);
        return;
    }
    struct who w;
    if (strcmp(op, "channel_down") == 0) {
        char node[CLUSTER_ADDRESS_MAX];
        uint64_t channel;
        if (!table_find_cstring(args, "node", node, sizeof node) || strcmp(node, from) != 0 || !get_u64(args, "channel", &channel))
            return;
        struct proxy *p, *tmp;
        HASH_ITER(hh, cl->proxies, p, tmp) {
            if (p->channel == channel && strcmp(p->node, node) == 0)
                proxy_free(p, QUEUE_RETURN, true);
        }
        return;
    }
    char name[NAME_MAX_LEN + 1];
    struct queue *q = table_find_cstring(args, "queue", name, sizeof name) ? home_queue(cl, vhost, proto_bytes_of(name)) : NULL;
    if (!q) {
        char text[128];
        snprintf(text, sizeof text, "no queue '%.50s' in vhost '%.50s'", name, vhost);
        send_result(cl, from, handle, SPEC_NOT_FOUND, text);
        return;
    }
    if (strcmp(op, "purge") == 0) {
        char n[24];
        snprintf(n, sizeof n, "%zu", queue_purge(q));
        send_result(cl, from, handle, 0, n);
        return;
    }
    if (strcmp(op, "depth") == 0) {
        char n[80];
        snprintf(n, sizeof n, "%zu %zu %zu", queue_ready_count(q), queue_unacked_count(q), queue_consumer_count(q));
        send_result(cl, from, handle, 0, n);
        return;
    }
    if (!get_who(args, from, &w)) {
        send_result(cl, from, handle, META_MALFORMED, "malformed consumer");
        return;
    }
    struct proxy *p = find_proxy(cl, &w, vhost, queue_name(q));
    if (strcmp(op, "dequeue") == 0) {
        queue_touch(q, now_ms(cl));
        home_get(cl, from, &w, vhost, q, args, handle);
    } else if (strcmp(op, "checkout") == 0) {
        uint64_t prefetch = 0;
        get_u64(args, "prefetch", &prefetch);
        if (!p)
            p = new_proxy(cl, &w, vhost, q);
        if (!p) {
            if (handle)
                send_result(cl, from, handle, SPEC_INTERNAL_ERROR, "out of memory");
            else
                send_cancelled(cl, &w, vhost, queue_name(q));
            return;
        }
        p->credit = prefetch && prefetch < REPLICA_CREDIT ? (uint32_t)prefetch : REPLICA_CREDIT;
        queue_touch(q, now_ms(cl));
        if (!p->attached) {
            struct table_value v;
            int64_t priority = 0;
            if (table_find(args, "priority", &v) == 1 && (!table_value_to_int(&v, &priority) || priority < INT32_MIN ||
                                                          priority > INT32_MAX))
                priority = 0;
            bool exclusive = table_find(args, "exclusive", &v) == 1 && v.type == TABLE_BOOL && v.v.boolean;
            struct reply_error err;
            if (queue_add_consumer(q, p, &proxy_ops, (int32_t)priority, exclusive, false, &err) != 0) {
                log_info("cluster: consumer '%.*s' of node %s refused on queue '%s': %s", (int)w.tag.len,
                         (const char *)w.tag.ptr, from, name, err.text);
                if (handle) /* the consume waits: RabbitMQ's channel error (403) */
                    send_result(cl, from, handle, err.code, err.text);
                else
                    send_cancelled(cl, &w, vhost, queue_name(q));
                if (p->held_count == 0)
                    proxy_free(p, QUEUE_RETURN, false);
                return;
            }
            p->attached = true;
        }
        send_result(cl, from, handle, 0, ""); /* before the first delivery: consume-ok goes first */
        queue_dispatch(q, now_ms(cl));
    } else if (strcmp(op, "detach") == 0) {
        if (p && p->attached) {
            p->attached = false;
            queue_remove_consumer(q, p);
        }
        if (p && p->held_count == 0)
            proxy_free(p, QUEUE_RETURN, true);
    } else if (strcmp(op, "settle") == 0 || strcmp(op, "return") == 0 || strcmp(op, "discard") == 0) {
        if (p)
            home_settle(cl, p, op, args);
    } else {
        log_debug("cluster: node %s sent an unknown queue command qq.%s", from, op);
    }
}

/* ---- the asking node's side ---- */

static void on_result(struct classic *cl, struct proto_bytes args)
{
    uint64_t handle;
    struct table_value v;
    int64_t status = 0;
    char text[sizeof(((struct meta_result *)0)->text)] = "";
    if (!get_u64(args, "handle", &handle) || table_find(args, "status", &v) != 1 || !table_value_to_int(&v, &status) ||
        status < INT32_MIN || status > INT32_MAX)
        return;
    table_find_cstring(args, "text", text, sizeof text);
    struct rcall *c;
    HASH_FIND(hh, cl->calls, &handle, sizeof handle, c);
    if (c)
        complete(cl, c, (int)status, text);
}

static void on_deliver(struct classic *cl, struct proto_bytes args)
{
    char vhost[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
    uint64_t channel, id, count;
    struct table_value tag, content;
    if (!table_find_cstring(args, "vhost", vhost, sizeof vhost) || !table_find_cstring(args, "queue", name, sizeof name) ||
        !get_u64(args, "channel", &channel) || !get_u64(args, "id", &id) || !get_u64(args, "count", &count) ||
        table_find(args, "tag", &tag) != 1 || tag.type != TABLE_LONGSTR || tag.v.bytes.len > 255 ||
        table_find(args, "content", &content) != 1 || content.type != TABLE_BYTES)
        return;
    struct channel *ch = cluster_queues_channel(cl->cq, channel);
    if (!ch)
        return; /* closed: the channel_down it sent returns the message */
    struct queue *q = model_queue(cl, vhost, proto_bytes_of(name));
    struct message *msg = message_deserialize(0, content.v.bytes.ptr, content.v.bytes.len);
    if (!q || !msg) {
        message_release(msg); /* the queue went here: it goes on the home too */
        return;
    }
    channel_replica_deliver(ch, q, tag.v.bytes, id, msg, count > UINT32_MAX ? UINT32_MAX : (uint32_t)count);
}

static void on_cancelled(struct classic *cl, struct proto_bytes args)
{
    uint64_t channel;
    struct table_value tag;
    if (!get_u64(args, "channel", &channel) || table_find(args, "tag", &tag) != 1 || tag.type != TABLE_LONGSTR)
        return;
    struct channel *ch = cluster_queues_channel(cl->cq, channel);
    struct consumer *c = ch ? channel_find_consumer(ch, tag.v.bytes) : NULL;
    if (c && c->replicated)
        consumer_queue_deleted(c); /* basic.cancel to a client that takes it */
}

/* The links with peer broke: what either side held for the other is given up. */
static void peer_lost(struct classic *cl, const char *peer)
{
    outbox_drop(cl, peer);
    struct proxy *p, *ptmp;
    HASH_ITER(hh, cl->proxies, p, ptmp) { /* first: none of them takes what the others return */
        if (strcmp(p->node, peer) == 0)
            mark_broken(p);
    }
    HASH_ITER(hh, cl->proxies, p, ptmp) {
        if (strcmp(p->node, peer) == 0)
            proxy_free(p, QUEUE_RETURN, true);
    }
    char text[256];
    snprintf(text, sizeof text, "home node '%.100s' is down or inaccessible", peer);
    struct rcall *c, *ctmp;
    HASH_ITER(hh, cl->calls, c, ctmp) {
        if (strcmp(c->node, peer) == 0)
            complete(cl, c, SPEC_NOT_FOUND, text);
    }
    cluster_queues_cancel_homed(cl->cq, peer);
}

static size_t probe_slot(struct classic *cl, const char *address)
{
    for (size_t i = 0; i < cl->probe_count; i++)
        if (strcmp(cl->probes[i].address, address) == 0)
            return i;
    size_t i = cl->probe_count < CONTACTS_MAX ? cl->probe_count++ : 0; /* full: the oldest slot */
    memset(&cl->probes[i], 0, sizeof cl->probes[i]);
    snprintf(cl->probes[i].address, CLUSTER_ADDRESS_MAX, "%s", address);
    return i;
}

int classic_probe(struct classic *cl, const char *address)
{
    if (!cl->node)
        return 0;
    size_t i = probe_slot(cl, address);
    uint64_t now = now_ms(cl), asked = cl->probes[i].asked_ms;
    if (asked) { /* a ping in flight: concluded once, then the next call asks anew */
        int verdict = cl->probes[i].lost_ms >= asked       ? 0
                      : cl->probes[i].answered_ms >= asked ? 1
                      : now - asked > PROBE_MS             ? 0
                                                           : -1;
        if (verdict >= 0)
            cl->probes[i].asked_ms = 0;
        return verdict;
    }
    cl->probes[i].asked_ms = now ? now : 1;
    struct table_buf t = {0};
    if (send_to(cl, address, "ping", &t) != 0)
        cl->probes[i].lost_ms = cl->probes[i].asked_ms;
    return -1;
}

static void probe_note(struct classic *cl, const char *address, bool answered)
{
    for (size_t i = 0; i < cl->probe_count; i++)
        if (strcmp(cl->probes[i].address, address) == 0) {
            if (answered)
                cl->probes[i].answered_ms = now_ms(cl);
            else
                cl->probes[i].lost_ms = now_ms(cl);
        }
}

/* ---- direct reply-to across nodes ---- */

/* A member's tag in reply addresses: the low 32 bits of its id, in hex. */
static void node_tag_of(const char *address, char out[DIRECT_REPLY_NODE_TAG_LEN + 1])
{
    snprintf(out, DIRECT_REPLY_NODE_TAG_LEN + 1, "%08x", (unsigned)(cluster_member_id(address) & 0xffffffffu));
}

/* A reply addressed to another node's requester: sent there as "direct". */
static bool forward_direct(void *ctx, const char *tag, const struct vhost *vhost, struct message *msg)
{
    struct classic *cl = ctx;
    struct cluster_status *st = malloc(sizeof *st);
    if (!st || !cl->node) {
        free(st);
        return false;
    }
    cluster_node_status(cl->node, st);
    bool sent = false;
    for (size_t i = 0; i < st->member_count && !sent; i++) {
        char t[DIRECT_REPLY_NODE_TAG_LEN + 1];
        node_tag_of(st->members[i].address, t);
        if (strcmp(t, tag) != 0 || st->members[i].self)
            continue;
        struct table_buf a = {0};
        sent = (table_buf_put_string(&a, "vhost", proto_bytes_of(vhost_name(vhost))) | put_content(&a, msg)) == 0 &&
               send_to(cl, st->members[i].address, "direct", &a) == 0;
        table_buf_free(&a);
    }
    free(st);
    return sent;
}

/* Another node carried a reply to a requester of this node. */
static void on_direct(struct classic *cl, struct proto_bytes args)
{
    char vhost[NAME_MAX_LEN + 1];
    struct table_value content;
    if (!table_find_cstring(args, "vhost", vhost, sizeof vhost) || table_find(args, "content", &content) != 1 ||
        content.type != TABLE_BYTES)
        return;
    struct vhost *v = vhost_named(cl, vhost);
    struct message *msg = v ? message_deserialize(0, content.v.bytes.ptr, content.v.bytes.len) : NULL;
    if (msg && direct_reply_deliver(v, msg) != 1)
        log_debug("cluster: a direct reply from another node found no requester here (gone)");
    message_release(msg);
}

/* Logs a broken link once, not at every failed dial while the peer stays away. */
static void report_lost(struct classic *cl, const char *peer)
{
    for (size_t i = 0; i < cl->silent_count; i++)
        if (strcmp(cl->silent[i], peer) == 0)
            return;
    log_info("cluster: the link with %s broke: consumers and deliveries across it are cancelled", peer);
    if (cl->silent_count < CONTACTS_MAX)
        snprintf(cl->silent[cl->silent_count++], CLUSTER_ADDRESS_MAX, "%s", peer);
}

static void report_heard(struct classic *cl, const char *peer)
{
    for (size_t i = 0; i < cl->silent_count; i++)
        if (strcmp(cl->silent[i], peer) == 0) {
            memcpy(cl->silent[i], cl->silent[--cl->silent_count], CLUSTER_ADDRESS_MAX);
            return;
        }
}

static void handle(struct classic *cl, const struct inbox *m)
{
    if (m->len == 0) {
        cluster_nodes_lost(cluster_queues_nodes(cl->cq), m->from);
        report_lost(cl, m->from);
        probe_note(cl, m->from, false);
        peer_lost(cl, m->from);
        return;
    }
    if (cl->silent_count)
        report_heard(cl, m->from);
    struct raft_buffer buf = {.base = (void *)m->bytes, .len = m->len};
    struct meta_command cmd;
    if (meta_command_decode(&buf, &cmd) != 0 || table_validate(cmd.args) != 0)
        return;
    char op[32];
    if (cmd.op.len == 0 || cmd.op.len >= sizeof op)
        return;
    memcpy(op, cmd.op.ptr, cmd.op.len);
    op[cmd.op.len] = '\0';
    if (strcmp(op, "result") == 0)
        on_result(cl, cmd.args);
    else if (strcmp(op, "deliver") == 0)
        on_deliver(cl, cmd.args);
    else if (strcmp(op, "cancelled") == 0)
        on_cancelled(cl, cmd.args);
    else if (strcmp(op, "depths") == 0)
        send_depths(cl, m->from);
    else if (strcmp(op, "direct") == 0)
        on_direct(cl, cmd.args);
    else if (strcmp(op, "ping") == 0)
        send_to(cl, m->from, "pong", &(struct table_buf){0});
    else if (strcmp(op, "pong") == 0)
        probe_note(cl, m->from, true);
    else if (strcmp(op, "depths.ok") == 0)
        on_depths(cl, cmd.args);
    else if (strcmp(op, "node.info") == 0)
        cl->sent |= cluster_nodes_heard(cluster_queues_nodes(cl->cq), cl->node, m->from, cmd.args, now_ms(cl));
    else if (strncmp(op, "qq.", 3) == 0)
        home_run(cl, m->from, op + 3, cmd.args);
    else
        log_debug("cluster: node %s sent an unknown message %s", m->from, op);
}

/* ---- the peer links' callbacks (inside libuv's run: noted only) ---- */

static void noted(struct classic *cl, const char *from, const uint8_t *bytes, size_t len)
{
    struct inbox *m = malloc(sizeof *m + len);
    if (!m) {
        log_error("cluster: out of memory: a message from %s is lost", from);
        return;
    }
    *m = (struct inbox){.len = len};
    snprintf(m->from, sizeof m->from, "%s", from);
    if (len)
        memcpy(m->bytes, bytes, len);
    *cl->inbox_tail = m;
    cl->inbox_tail = &m->next;
}

static void on_message(void *arg, const char *from, const uint8_t *bytes, size_t len)
{
    noted(arg, from, bytes, len);
}

static void on_lost(void *arg, const char *peer)
{
    noted(arg, peer, NULL, 0);
}

/* ---- the pass ---- */

void classic_flush(struct classic *cl)
{
    if (!cl)
        return;
    while (cl->inbox) { /* what handling adds (a cancel noted) is handled in this pass too */
        struct inbox *m = cl->inbox;
        cl->inbox = m->next;
        if (!cl->inbox)
            cl->inbox_tail = &cl->inbox;
        handle(cl, m);
        free(m);
    }
    struct proxy *p, *ptmp;
    if (cl->broken_proxies) {
        HASH_ITER(hh, cl->proxies, p, ptmp) {
            if (p->broken)
                proxy_free(p, QUEUE_RETURN, true);
        }
    }
    struct persistence *store = server_persistence(cl->server);
    uint64_t durable = persistence_durable_batch(store);
    while (cl->answers && cl->answers->batch <= durable) {
        struct answer *a = cl->answers;
        cl->answers = a->next;
        if (!cl->answers)
            cl->answers_tail = &cl->answers;
        if (persistence_batch_failed(store, a->batch))
            send_result(cl, a->node, a->handle, SPEC_INTERNAL_ERROR, "the store could not write the message");
        else
            send_result(cl, a->node, a->handle, a->status, a->text);
        free(a);
    }
    uint64_t now = now_ms(cl);
    struct rcall *c, *ctmp;
    if (cl->failed_calls) {
        cl->failed_calls = 0;
        HASH_ITER(hh, cl->calls, c, ctmp) {
            if (c->failed)
                complete(cl, c, SPEC_NOT_FOUND, c->text);
        }
    }
    if (now >= cl->next_sweep_ms) {
        cl->next_sweep_ms = now + SWEEP_MS;
        HASH_ITER(hh, cl->calls, c, ctmp) {
            if (now - c->sent_ms > CALL_TIMEOUT_MS)
                complete(cl, c, -ETIMEDOUT, "no answer from the queue's home");
        }
    }
    if (now >= cl->next_depths_ms && cl->node) {
        cl->next_depths_ms = now + DEPTHS_MS;
        ask_depths(cl);
    }
    if (cluster_nodes_tick(cluster_queues_nodes(cl->cq), cl->node, now))
        cl->sent = true;
    propose_unused(cl); /* last: the proxies dropped above may have left a queue unused */
    outbox_flush(cl);
    if (cl->sent && cl->node) {
        cl->sent = false;
        cluster_node_flush_peers(cl->node);
    }
}

/* ---- life ---- */

struct classic *classic_create(struct cluster_queues *cq, struct server *server)
{
    struct classic *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->cq = cq;
    cl->server = server;
    cl->inbox_tail = &cl->inbox;
    cl->answers_tail = &cl->answers;
    return cl;
}

void classic_start(struct classic *cl, struct cluster_node *node, const char *self)
{
    if (!cl)
        return;
    cl->node = node;
    if (!node) {
        direct_reply_set_node(NULL, NULL, NULL);
        struct rcall *c, *ctmp;
        HASH_ITER(hh, cl->calls, c, ctmp) {
            complete(cl, c, -ECANCELED, "the node stops");
        }
        return;
    }
    snprintf(cl->self, sizeof cl->self, "%s", self);
    cluster_node_on_peers(node, on_message, on_lost, cl);
    char tag[DIRECT_REPLY_NODE_TAG_LEN + 1];
    node_tag_of(self, tag);
    direct_reply_set_node(tag, forward_direct, cl);
    classic_mark_all(cl); /* the homes were rebuilt before this node knew its own name */
}

void classic_free(struct classic *cl)
{
    if (!cl)
        return;
    struct proxy *p, *ptmp;
    HASH_ITER(hh, cl->proxies, p, ptmp) {
        HASH_DEL(cl->proxies, p);
        struct held *h, *htmp;
        HASH_ITER(hh, p->held, h, htmp) {
            HASH_DEL(p->held, h);
            message_release(h->entry.msg);
            free(h);
        }
        queue_release(p->queue);
        free(p);
    }
    struct home_ent *h, *htmp;
    HASH_ITER(hh, cl->homes, h, htmp) {
        drop_home(cl, h);
    }
    struct rcall *c, *ctmp;
    HASH_ITER(hh, cl->calls, c, ctmp) {
        HASH_DEL(cl->calls, c);
        call_free(c);
    }
    while (cl->outboxes)
        outbox_drop(cl, cl->outboxes->node);
    struct depth_ent *d, *dtmp;
    HASH_ITER(hh, cl->depths, d, dtmp) {
        HASH_DEL(cl->depths, d);
        free(d);
    }
    while (cl->inbox) {
        struct inbox *m = cl->inbox;
        cl->inbox = m->next;
        free(m);
    }
    while (cl->answers) {
        struct answer *a = cl->answers;
        cl->answers = a->next;
        free(a);
    }
    while (cl->unused) {
        struct unused *u = cl->unused;
        cl->unused = u->next;
        free(u);
    }
    free(cl);
}
