/* broker/amqp/server_vhosts.c: the server's virtual hosts and its access database (users,
 * permissions), the model hooks that join each vhost to the rest of the broker, and the
 * durable definitions blob: {"access": {...}, "vhosts": [{"name", "definitions"}...],
 * "cluster_index": uint64, "cluster_state": {...}}. cluster_index (present only once a cluster
 * command was applied) is the Raft index of the last command applied to these definitions: kept
 * in the same blob so that it is saved atomically with what it describes (cluster_node.h,
 * start_index). cluster_state, beside it, is the replicated state at that index
 * (cluster_target.h), transient exchanges and queues included, restored after the durable ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "channel_internal.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_queues.h"
#include "cluster_target.h"
#endif
#include "connection.h"
#include "event_loop.h"
#include "log.h"
#include "names.h"
#include "netconn.h"
#include "persistence.h"
#include "queue.h"
#include "server_internal.h"
#include "table.h"
#include "vhost.h"

static void hook_queue_deleting(void *ctx, struct queue *queue)
{
    queue_cancel_consumers(queue); /* a channel's (consume.c), or another node's (cluster_classic.c) */
#ifdef WARREN_HAVE_CLUSTER
    struct vhost_entry *e = ctx;
    cluster_queues_deleting(e->server->replicas, e->vhost, queue);
#else
    (void)ctx;
#endif
}

/* In a cluster a queue's definition is every node's: cluster_queues decides (vhost.h). */
static bool hook_self_delete(void *ctx, struct queue *queue)
{
#ifdef WARREN_HAVE_CLUSTER
    struct vhost_entry *e = ctx;
    if (e->server->replicas)
        return cluster_queues_self_delete(e->server->replicas, e->vhost, queue);
#else
    (void)ctx, (void)queue;
#endif
    return true;
}

static void hook_queue_ready(void *ctx, struct queue *queue)
{
    struct vhost_entry *e = ctx;
    queue_dispatch(queue, loop_now_ms(e->server->loop));
}

/* Dead letters for a replicated quorum queue become its enqueue command (no confirm waits:
 * dead-lettering is at most once, as in RabbitMQ by default). */
static bool hook_divert(void *ctx, struct queue *queue, struct message *msg)
{
    struct vhost_entry *e = ctx;
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_queues *cq = e->server->replicas;
    if (!cluster_queues_replicated(cq, queue))
        return false;
    if (cluster_queues_enqueue(cq, e->vhost, &queue, 1, msg, NULL, NULL, 0) == 0)
        log_error("cluster: out of memory: a dead letter for quorum queue '%.*s' is lost", (int)queue_name(queue).len,
                  (const char *)queue_name(queue).ptr);
    return true;
#else
    (void)e, (void)queue, (void)msg;
    return false;
#endif
}

static uint64_t hook_now(void *ctx)
{
    struct vhost_entry *e = ctx;
    return loop_now_ms(e->server->loop);
}

static void hook_persist(void *ctx, struct queue *queue, struct message *msg, int event)
{
    struct vhost_entry *e = ctx;
    if (e->server->persistence)
        persistence_event(e->server->persistence, e->name, queue, msg, event);
}

static void hook_durable_queue_deleted(void *ctx, struct queue *queue)
{
    struct vhost_entry *e = ctx;
    if (e->server->persistence)
        persistence_queue_deleted(e->server->persistence, e->name, queue);
}

static size_t hook_page_in(void *ctx, struct queue *queue, uint64_t after_id, size_t max, bool *complete)
{
    struct vhost_entry *e = ctx;
    if (!e->server->persistence) {
        *complete = true;
        return 0;
    }
    return persistence_page_in(e->server->persistence, e->name, queue, after_id, max, complete);
}

static void hook_page_purge(void *ctx, struct queue *queue, uint64_t after_id)
{
    struct vhost_entry *e = ctx;
    if (e->server->persistence)
        persistence_page_purge(e->server->persistence, e->name, queue, after_id);
}

static void hook_definitions_changed(void *ctx)
{
    struct vhost_entry *e = ctx;
    if (e->server->persistence)
        persistence_definitions_changed(e->server->persistence);
}

struct vhost_entry *server_vhost_entry(const struct server *server, const char *name, size_t len)
{
    struct vhost_entry *e;
    HASH_FIND(hh, server->vhosts, name, len, e);
    return e && !e->deleted ? e : NULL;
}

struct vhost_entry *server_vhost_add(struct server *server, const char *name)
{
    struct vhost_entry *e = server_vhost_entry(server, name, strlen(name));
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->server = server;
    e->pager = (struct queue_pager){
        .page_in = hook_page_in,
        .page_purge = hook_page_purge,
        .ram_messages = server->config.queue_ram_messages,
        .ram_bytes = server->config.queue_ram_bytes,
        .ctx = e,
    };
    struct vhost_hooks hooks = {
        .queue_deleting = hook_queue_deleting,
        .queue_ready = hook_queue_ready,
        .divert = hook_divert,
        .self_delete = hook_self_delete,
        .now_ms = hook_now,
        .persist = hook_persist,
        .durable_queue_deleted = hook_durable_queue_deleted,
        .definitions_changed = hook_definitions_changed,
        .ctx = e,
        .pager = &e->pager,
    };
    e->vhost = vhost_create(name, &hooks);
    if (!e->vhost) {
        free(e);
        return NULL;
    }
    HASH_ADD(hh, server->vhosts, name, strlen(e->name), e);
    return e;
}

static void vhost_entry_free(struct server *server, struct vhost_entry *e)
{
    if (!e->deleted)
        HASH_DEL(server->vhosts, e);
    server_stats_vhost_gone(server, e);
    vhost_destroy(e->vhost);
    free(e);
}

/* Frees retired vhosts whose connections are all gone (all == true: every one, at shutdown). */
static void free_retired(struct server *server, bool all)
{
    for (struct vhost_entry **link = &server->retired_vhosts; *link;) {
        struct vhost_entry *e = *link;
        if (all || e->connections == 0) {
            *link = e->next_retired;
            vhost_entry_free(server, e);
        } else {
            link = &e->next_retired;
        }
    }
}

int server_vhosts_init(struct server *server)
{
    server->access = access_create();
    if (!server->access)
        return -ENOMEM;
    if (access_create_defaults(server->access, server->config.default_user, server->config.default_pass) != 0)
        return -ENOMEM;
    return server_vhost_add(server, "/") ? 0 : -ENOMEM;
}

void server_vhosts_destroy(struct server *server)
{
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        vhost_entry_free(server, e);
    }
    free_retired(server, true);
    struct user_usage *u, *utmp;
    HASH_ITER(hh, server->user_usage, u, utmp) {
        HASH_DEL(server->user_usage, u);
        free(u);
    }
    access_destroy(server->access);
    server->access = NULL;
}

uint64_t server_vhosts_tick(struct server *server, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    free_retired(server, false);
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        uint64_t n = vhost_tick(e->vhost, now);
        if (n < next)
            next = n;
    }
    return next;
}

void server_vhosts_end_pass(struct server *server)
{
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        vhost_dead_letter_round(e->vhost);
    }
}

struct vhost *server_open_vhost(struct server *server, struct proto_bytes name)
{
    struct vhost_entry *e = server_vhost_entry(server, (const char *)name.ptr, name.len);
    if (!e)
        return NULL;
    e->connections++;
    return e->vhost;
}

void server_close_vhost(struct server *server, struct vhost *vhost)
{
    struct vhost_entry *e = server_vhost_entry_of(server, vhost);
    if (e && e->connections)
        e->connections--;
}

struct vhost_entry *server_vhost_entry_of(struct server *server, const struct vhost *vhost)
{
    struct vhost_entry *e;
    const char *name = vhost_name(vhost);
    HASH_FIND(hh, server->vhosts, name, strlen(name), e);
    if (!e || e->vhost != vhost)
        for (e = server->retired_vhosts; e && e->vhost != vhost; e = e->next_retired) {
        }
    return e;
}

int64_t server_vhost_connection_limit_reached(const struct server *server, struct proto_bytes name)
{
    struct vhost_entry *e = server_vhost_entry(server, (const char *)name.ptr, name.len);
    if (!e)
        return -1;
    int64_t limit = vhost_limit_get(e->vhost, VHOST_LIMIT_MAX_CONNECTIONS);
    return limit >= 0 && (int64_t)e->connections >= limit ? limit : -1;
}

int64_t server_user_limit_reached(const struct server *server, const char *user, enum access_user_limit limit)
{
    int64_t max = access_user_limit(server->access, user, limit);
    if (max < 0)
        return -1;
    struct user_usage *u;
    HASH_FIND_STR(server->user_usage, user, u);
    return (int64_t)(u ? u->held[limit] : 0) >= max ? max : -1;
}

/* The counts live apart from the access model, keyed by name, so that deleting or re-creating
 * a user (or importing definitions) never loses track of what its connections still hold. */
void server_user_count(struct server *server, const char *user, enum access_user_limit limit, int delta)
{
    if ((unsigned)limit >= ACCESS_USER_LIMIT_COUNT)
        return;
    struct user_usage *u;
    HASH_FIND_STR(server->user_usage, user, u);
    if (!u) {
        size_t len = strlen(user);
        if (delta <= 0 || !(u = calloc(1, sizeof *u + len + 1)))
            return; /* out of memory: the user goes uncounted, so unlimited */
        memcpy(u->name, user, len + 1);
        HASH_ADD_KEYPTR(hh, server->user_usage, u->name, len, u);
    }
    if (delta < 0 && u->held[limit] < (uint32_t)-delta)
        u->held[limit] = 0;
    else
        u->held[limit] = (uint32_t)((int64_t)u->held[limit] + delta);
    bool idle = true;
    for (unsigned i = 0; i < ACCESS_USER_LIMIT_COUNT; i++)
        idle = idle && u->held[i] == 0;
    if (idle) {
        HASH_DEL(server->user_usage, u);
        free(u);
    }
}

struct access *server_access(const struct server *server) { return server->access; }

static void add_vhost_cb(const char *name, void *arg)
{
    struct server *server = arg;
    if (!server_vhost_add(server, name))
        log_error("cannot create vhost '%s': out of memory", name);
}

static void force_close_vhost_connections(struct server *server, const char *vhost);

void server_vhosts_sync(struct server *server)
{
    access_for_each_vhost(server->access, add_vhost_cb, server);
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        if (!access_vhost_exists(server->access, e->name)) {
            log_info("vhost '%s' deleted", e->name);
            force_close_vhost_connections(server, e->name);
            /* Its queues and their stored messages go now; the entry itself once its
             * connections are gone (server_vhosts_tick). Out of the table at once, so the
             * name can be created again meanwhile. */
            vhost_delete_all_queues(e->vhost);
            HASH_DEL(server->vhosts, e);
            e->deleted = true;
            e->next_retired = server->retired_vhosts;
            server->retired_vhosts = e;
        }
    }
    if (server->persistence)
        persistence_definitions_changed(server->persistence);
}

struct close_filter {
    const char *vhost;
};

static void close_if_on_vhost(struct netconn *net, void *arg)
{
    struct close_filter *f = arg;
    struct connection *conn = connection_of(net);
    const char *v = conn ? connection_vhost_name(conn) : NULL;
    if (v && strcmp(v, f->vhost) == 0)
        connection_force_close(conn, "vhost deleted");
}

static void force_close_vhost_connections(struct server *server, const char *vhost)
{
    struct close_filter f = {vhost};
    netconn_for_each(server->loop, close_if_on_vhost, &f);
}

/* ---- durable definitions ---- */

int server_export_vhosts(struct server *server, int (*export)(struct vhost *, struct table_buf *),
                         struct table_buf *out)
{
    struct table_buf list = {0};
    int rc = 0;
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        struct table_buf defs = {0}, entry = {0};
        rc |= export(e->vhost, &defs);
        rc |= table_buf_put_string(&entry, "name", proto_bytes_of(e->name));
        struct table_value v = {.type = TABLE_TABLE};
        v.v.bytes = (struct proto_bytes){defs.data, (uint32_t)defs.len};
        rc |= table_buf_put_field(&entry, "definitions", 11, &v);
        v.v.bytes = (struct proto_bytes){entry.data, (uint32_t)entry.len};
        rc |= table_buf_put_value(&list, &v);
        table_buf_free(&defs);
        table_buf_free(&entry);
    }
    struct table_value v = {.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    rc |= table_buf_put_field(out, "vhosts", 6, &v);
    table_buf_free(&list);
    return rc ? -1 : 0;
}

int server_export_access(struct server *server, struct table_buf *out)
{
    struct table_buf access = {0};
    int rc = access_export(server->access, &access);
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){access.data, (uint32_t)access.len};
    rc |= table_buf_put_field(out, "access", 6, &v);
    table_buf_free(&access);
    return rc ? -1 : 0;
}

int server_export_definitions(void *ctx, struct table_buf *out)
{
    struct server *server = ctx;
    struct table_value v;
    int rc = server_export_access(server, out);
    rc |= server_export_vhosts(server, vhost_export_definitions, out);
    if (server->cluster_index) {
        v = (struct table_value){.type = TABLE_UINT64};
        v.v.u64 = server->cluster_index;
        rc |= table_buf_put_field(out, "cluster_index", 13, &v);
#ifdef WARREN_HAVE_CLUSTER
        /* The replicated state as of that index, transient objects included: a restarted
         * node must hold what the others hold at that index, or the commands after it would
         * not apply alike everywhere (the transient objects come back empty). */
        struct table_buf state = {0};
        rc |= cluster_target_export(server, &state);
        v = (struct table_value){.type = TABLE_TABLE};
        v.v.bytes = (struct proto_bytes){state.data, (uint32_t)state.len};
        rc |= table_buf_put_field(out, "cluster_state", 13, &v);
        table_buf_free(&state);
#endif
    }
    return rc ? -1 : 0;
}

/* The blob was read back from disk: checked as if a stranger wrote it (table_validate bounds
 * every length, type and nesting level; each vhost entry needs a valid name and a table of
 * definitions, or it is skipped with a log line). vhost_import_definitions checks the rest. */
int server_import_definitions(void *ctx, struct proto_bytes blob)
{
    struct server *server = ctx;
    struct table_value v;
    int rc = table_validate(blob);
    if (rc != 0) {
        log_error("durable store: definitions malformed (%s); starting without them", proto_strerror(rc));
        return -1;
    }
    if (table_find(blob, "access", &v) == 1 && v.type == TABLE_TABLE) {
        if (access_import(server->access, v.v.bytes) != 0)
            log_error("durable store: users and permissions could not be restored; using the defaults");
    }
    access_for_each_vhost(server->access, add_vhost_cb, server);
    if (table_find(blob, "cluster_index", &v) == 1 && v.type == TABLE_UINT64)
        server->cluster_index = v.v.u64;
    if (table_find(blob, "vhosts", &v) != 1 || v.type != TABLE_ARRAY) {
        log_error("durable store: definitions hold no list of vhosts; no exchange, queue or binding recreated");
        return -1;
    }
    struct table_iter it;
    table_iter_init(&it, v.v.bytes);
    struct proto_bytes name, defs;
    const char *why;
    int more;
    for (size_t index = 0; (more = vhost_definitions_next(&it, &name, &defs, &why)) != 0; index++) {
        char shown[NAME_QUOTE_SIZE];
        name_quote(name, shown);
        if (more < 0) {
            log_warning("durable store: vhost entry %zu%s%s%s of the definitions skipped: %s", index,
                        name.len ? " ('" : "", shown, name.len ? "')" : "", why);
            continue;
        }
        char vname[NAME_MAX_LEN + 1];
        memcpy(vname, name.ptr, name.len);
        vname[name.len] = '\0';
        struct vhost_entry *e = server_vhost_add(server, vname);
        size_t skipped = 0;
        if (!e)
            log_error("durable store: cannot create vhost '%s': out of memory", shown);
        else if (vhost_import_definitions(e->vhost, defs, &skipped) == 0 && skipped)
            log_warning("durable store: %zu definitions of vhost '%s' could not be recreated (see above)", skipped,
                        shown);
    }
#ifdef WARREN_HAVE_CLUSTER
    if (server->cluster_index && table_find(blob, "cluster_state", &v) == 1 && v.type == TABLE_TABLE &&
        cluster_target_import(server, server->cluster_index, false, v.v.bytes) != 0)
        log_error("durable store: the cluster's state saved with the definitions could not be restored");
#endif
    return 0;
}

struct queue *server_find_queue(void *ctx, struct proto_bytes vhost, struct proto_bytes queue)
{
    struct server *server = ctx;
    struct vhost_entry *e = server_vhost_entry(server, (const char *)vhost.ptr, vhost.len);
    return e ? vhost_queue_find(e->vhost, queue) : NULL;
}
