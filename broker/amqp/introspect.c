/* broker/amqp/introspect.c: read-only views of the running broker and the operator actions
 * behind warrenctl (see introspect.h). */
#include "introspect.h"
#include "introspect_stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "channel_internal.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_node.h"
#include "cluster_nodes.h"
#include "cluster_queues.h"
#include "cluster_target.h"
#endif
#include "connection.h"
#include "event_loop.h"
#include "message.h"
#include "store.h"
#include "netconn.h"
#include "node_info.h"
#include "persistence.h"
#include "queue.h"
#include "policy.h"
#include "server_internal.h"
#include "table.h"
#include "vhost.h"

static bool vhost_selected(const struct vhost_entry *e, const char *vhost)
{
    return !e->deleted && (!vhost || strcmp(vhost, e->name) == 0);
}

struct status_count {
    struct server *server;
    const struct vhost *vhost;
    struct introspect_status *out;
};

/* The counts the API shows: a classic queue homed on another node counts its home's (RabbitMQ's
 * queue totals are the cluster's); what is paged out is this node's own. */
static void count_queue(struct queue *q, void *arg)
{
    struct status_count *c = arg;
    struct queue_depth depth;
    server_queue_depth(c->server, c->vhost, q, &depth);
    c->out->queues++;
    c->out->messages_ready += depth.ready;
    c->out->messages_unacknowledged += depth.unacked;
    c->out->messages_paged += queue_paged_count(q);
}

static void count_channel(const struct introspect_channel *c, void *arg)
{
    (void)c;
    (*(uint32_t *)arg)++;
}

static void count_consumer(const struct introspect_consumer *c, void *arg)
{
    (void)c;
    (*(uint32_t *)arg)++;
}

/* The alarms in effect. server->memory_alarm is "publishers blocked", by either alarm
 * (check_memory): with the disk alarm up, it is the disk's. */
static void alarms(const struct server *server, bool *memory, bool *disk)
{
    *disk = persistence_disk_alarm(server->persistence);
    *memory = server->memory_alarm && !*disk;
}

void introspect_status(struct server *server, struct introspect_status *out)
{
    static char listener[300];
    memset(out, 0, sizeof *out);
    out->version = WARREN_VERSION;
    out->uptime_ms = loop_now_ms(server->loop) - server->started_ms;
    out->connections = (uint32_t)server->connections;
    introspect_channels(server, count_channel, &out->channels);
    introspect_consumers(server, NULL, count_consumer, &out->consumers);
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        if (e->deleted)
            continue;
        struct status_count c = {server, e->vhost, out};
        vhost_for_each_queue(e->vhost, count_queue, &c);
        out->exchanges += (uint32_t)vhost_exchange_count(e->vhost);
    }
    out->message_memory_bytes = message_memory_bytes();
    out->memory_high_watermark = server->memory_limit;
    alarms(server, &out->memory_alarm, &out->disk_alarm);
    struct store_stats stats = {0};
    persistence_store_stats(server->persistence, &stats);
    out->store_segments = stats.segments;
    out->store_bytes = stats.bytes_on_disk;
    out->store_live_messages = stats.live_messages;
    out->store_syncs = stats.syncs;
    out->store_compactions = stats.compactions;
    out->pid = (uint64_t)getpid();
    out->data_dir = server->config.data_dir ? server->config.data_dir : "";
    snprintf(listener, sizeof listener, "%s:%u", server->config.bind_address,
             server->listener ? netlistener_port(server->listener) : server->config.port);
    out->listener = listener;
    struct stats_channel totals;
    server_stats_totals(server, NULL, &totals);
    introspect_fill_channel(&totals, server->stats.series.rate, &out->message_stats, &out->message_rates);
    out->connection_created = server->stats.connection_created;
    out->connection_closed = server->stats.connection_closed;
    out->channel_created = server->stats.channel_created;
    out->channel_closed = server->stats.channel_closed;
    out->queue_created = server->stats.retired_queue_created;
    out->queue_deleted = server->stats.retired_queue_deleted;
    struct vhost_entry *v, *vtmp;
    HASH_ITER(hh, server->vhosts, v, vtmp) {
        out->queue_created += vhost_churn(v->vhost)->queue_created;
        out->queue_deleted += vhost_churn(v->vhost)->queue_deleted;
    }
    for (struct vhost_entry *r = server->retired_vhosts; r; r = r->next_retired) {
        out->queue_created += vhost_churn(r->vhost)->queue_created;
        out->queue_deleted += vhost_churn(r->vhost)->queue_deleted;
    }
    out->stats_interval_ms = server->stats.interval_ms;
    out->stats_samples = server->stats.clock.ticks;
}

void introspect_node_self(struct server *server, struct introspect_node *out)
{
    /* Counters only (no walk over queues or connections): sent to the other members every few
     * seconds (cluster_nodes.h). */
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", node_info_name());
    out->self = out->running = true;
    out->os_pid = (uint64_t)getpid();
    out->uptime_ms = loop_now_ms(server->loop) - server->started_ms;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    out->processors = cpus > 0 ? (uint64_t)cpus : 1;
    node_info_resident_bytes(&out->mem_used);
    out->mem_limit = server->memory_limit;
    out->message_memory_bytes = message_memory_bytes();
    alarms(server, &out->mem_alarm, &out->disk_alarm);
    node_info_disk_free(server->config.data_dir ? server->config.data_dir : "", &out->disk_free);
    out->disk_free_limit = server->config.disk_free_limit;
    node_info_open_fds(&out->fd_used);
    node_info_fd_limit(&out->fd_total);
    out->sockets_used = (uint64_t)server->connections;
    struct store_stats stats = {0};
    persistence_store_stats(server->persistence, &stats);
    out->store_segments = stats.segments;
    out->store_bytes = stats.bytes_on_disk;
    snprintf(out->bind_address, sizeof out->bind_address, "%s",
             server->config.bind_address ? server->config.bind_address : "::");
    out->amqp_port = server->listener ? netlistener_port(server->listener) : server->config.port;
    out->management_port = server->config.management_port;
    out->prometheus_port = server->config.prometheus_port;
    out->amqps_port = server_tls_port(server);
    out->https_port = server_management_tls_port(server);
}

void introspect_nodes(struct server *server, void (*fn)(const struct introspect_node *n, void *arg), void *arg)
{
    struct introspect_node n;
    introspect_node_self(server, &n);
    fn(&n, arg);
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_node *node = server_cluster(server);
    struct cluster_status *st = node ? calloc(1, sizeof *st) : NULL;
    if (!st)
        return;
    cluster_node_status(node, st);
    uint64_t now = loop_now_ms(server->loop);
    struct cluster_nodes *known = cluster_queues_nodes(server->replicas);
    for (size_t i = 0; i < st->member_count && i < CLUSTER_MEMBERS_MAX; i++) {
        const struct cluster_member *m = &st->members[i];
        if (m->self)
            continue;
        if (!cluster_nodes_get(known, m->address, now, &n)) {
            const char *name = cluster_queues_member_name(server->replicas, m->address);
            memset(&n, 0, sizeof n);
            snprintf(n.name, sizeof n.name, "%s", name ? name : m->address);
        }
        fn(&n, arg);
    }
    free(st);
#endif
}

struct each_connection {
    void (*fn)(const struct introspect_connection *c, void *arg);
    void *arg;
};

static void visit_connection(struct netconn *net, void *arg)
{
    struct each_connection *e = arg;
    struct connection *conn = connection_of(net);
    if (!conn)
        return;
    struct introspect_connection c;
    connection_describe(conn, &c);
    introspect_fill_connection(conn, &c);
    e->fn(&c, e->arg);
}

void introspect_connections(struct server *server, void (*fn)(const struct introspect_connection *c, void *arg),
                            void *arg)
{
    struct each_connection e = {fn, arg};
    netconn_for_each(server->loop, visit_connection, &e);
}

struct each_channel {
    void (*fn)(const struct introspect_channel *c, void *arg);
    void *arg;
    const char *connection;
};

static void visit_channel(struct channel *ch, void *arg)
{
    struct each_channel *e = arg;
    char name[200];
    snprintf(name, sizeof name, "%s (%u)", e->connection, ch->number);
    struct introspect_channel c = {
        .name = name,
        .connection = e->connection,
        .number = ch->number,
        .user = connection_user(ch->conn),
        .vhost = ch->vhost ? vhost_name(ch->vhost) : "",
        .consumers = HASH_COUNT(ch->consumers),
        .messages_unacknowledged = ch->unacked_live,
        .prefetch_count = ch->prefetch_count,
        .global_prefetch_count = ch->global_prefetch,
        .confirm = ch->confirm_mode,
        .transactional = ch->tx_mode,
    };
    introspect_fill_channel(&ch->stats, ch->series.rate, &c.message_stats, &c.message_rates);
    e->fn(&c, e->arg);
}

static void visit_connection_channels(struct netconn *net, void *arg)
{
    struct each_channel *e = arg;
    struct connection *conn = connection_of(net);
    if (!conn)
        return;
    e->connection = connection_name(conn);
    connection_for_each_channel(conn, visit_channel, e);
}

void introspect_channels(struct server *server, void (*fn)(const struct introspect_channel *c, void *arg),
                         void *arg)
{
    struct each_channel e = {fn, arg, NULL};
    netconn_for_each(server->loop, visit_connection_channels, &e);
}

struct each_consumer {
    void (*fn)(const struct introspect_consumer *c, void *arg);
    void *arg;
    const char *vhost;
};

static void visit_channel_consumers(struct channel *ch, void *arg)
{
    struct each_consumer *e = arg;
    const char *vhost = ch->vhost ? vhost_name(ch->vhost) : "";
    if (e->vhost && strcmp(e->vhost, vhost) != 0)
        return;
    char channel[200];
    snprintf(channel, sizeof channel, "%s (%u)", connection_name(ch->conn), ch->number);
    struct consumer *c, *tmp;
    HASH_ITER(hh, ch->consumers, c, tmp) {
        struct introspect_consumer out = {
            .vhost = vhost,
            .queue = queue_name(c->queue),
            .channel = channel,
            .tag = {(const uint8_t *)c->tag, c->tag_len},
            .ack_required = !c->no_ack,
            .prefetch_count = c->prefetch,
            .exclusive = c->exclusive,
            .priority = c->priority,
        };
        e->fn(&out, e->arg);
    }
}

static void visit_connection_consumers(struct netconn *net, void *arg)
{
    struct connection *conn = connection_of(net);
    if (conn)
        connection_for_each_channel(conn, visit_channel_consumers, arg);
}

void introspect_consumers(struct server *server, const char *vhost,
                          void (*fn)(const struct introspect_consumer *c, void *arg), void *arg)
{
    struct each_consumer e = {fn, arg, vhost};
    netconn_for_each(server->loop, visit_connection_consumers, &e);
}

#ifdef WARREN_HAVE_CLUSTER
/* The cluster's members as the API names them, read once per listing. */
struct cluster_view {
    const char *leader; /* "" while none is known */
    const char *members[CLUSTER_MEMBERS_MAX];
    size_t count;
    const char *online[CLUSTER_MEMBERS_MAX]; /* the members running (cluster_nodes.h) */
    size_t online_count;
    struct cluster_status status; /* the addresses the names fall back to */
};
#else
struct cluster_view; /* none without a cluster */
#endif

struct each_queue {
    void (*fn)(const struct introspect_queue *q, void *arg);
    void *arg;
    const char *vhost;
    uint64_t now_ms;
    struct server *server;
    struct vhost *model;
    const struct cluster_view *cluster; /* NULL: no cluster */
};

#ifdef WARREN_HAVE_CLUSTER
/* A member's name: its node_name once it sent it (cluster_queues_member_name), else its address. */
static const char *member_name(const struct server *server, const char *address)
{
    const char *name = cluster_queues_member_name(server_cluster_queues(server), address);
    return name ? name : address;
}

/* NULL without a cluster (or out of memory: the API then shows this node, as alone). */
static struct cluster_view *cluster_view_read(struct server *server)
{
    struct cluster_node *node = server_cluster(server);
    struct cluster_view *v = node ? calloc(1, sizeof *v) : NULL;
    if (!v)
        return NULL;
    cluster_node_status(node, &v->status);
    uint64_t now = loop_now_ms(server->loop);
    v->leader = "";
    for (size_t i = 0; i < v->status.member_count && i < CLUSTER_MEMBERS_MAX; i++) {
        const struct cluster_member *m = &v->status.members[i];
        if (m->leader)
            v->leader = member_name(server, m->address);
        if (!m->voter)
            continue;
        v->members[v->count++] = member_name(server, m->address);
        struct introspect_node n;
        if (m->self || cluster_nodes_get(cluster_queues_nodes(server->replicas), m->address, now, &n))
            v->online[v->online_count++] = v->members[v->count - 1];
    }
    return v;
}

/* Fills q's node and members (a quorum queue's: its group's). */
static void name_nodes(const struct each_queue *e, const struct queue *q, struct introspect_queue *out)
{
    if (!e->cluster)
        return;
    if (out->replicated) {
        out->node = e->cluster->leader;
        out->members = e->cluster->members;
        out->member_count = e->cluster->count;
        out->online = e->cluster->online;
        out->online_count = e->cluster->online_count;
        return;
    }
    const char *home = cluster_queues_home(server_cluster_queues(e->server), e->model, q);
    out->node = home ? member_name(e->server, home) : NULL;
    /* Homed on a member not heard from lately: RabbitMQ's state "down" (its counts are stale). */
    struct introspect_node n;
    out->down = home && out->elsewhere &&
                !cluster_nodes_get(cluster_queues_nodes(e->server->replicas), home, e->now_ms, &n);
}
#else
static struct cluster_view *cluster_view_read(struct server *server)
{
    (void)server;
    return NULL;
}

static void name_nodes(const struct each_queue *e, const struct queue *q, struct introspect_queue *out)
{
    (void)e, (void)q, (void)out;
}
#endif

static void visit_queue(struct queue *q, const struct policy *policy, const struct policy *op, void *arg)
{
    struct each_queue *e = arg;
    const struct queue_settings *s = queue_settings(q);
    struct queue_depth depth;
    server_queue_depth(e->server, e->model, q, &depth);
    struct introspect_queue out = {
        .vhost = e->vhost,
        .name = queue_name(q),
        .messages_ready = depth.ready,
        .messages_unacknowledged = depth.unacked,
        .message_bytes_ready = queue_ready_bytes(q),
        .consumers = (uint32_t)depth.consumers,
        .durable = s->durable,
        .auto_delete = s->auto_delete,
        .exclusive = s->exclusive,
        .type = queue_kind(q)->name,
        .type_module = queue_kind(q)->module,
        .replicated = queue_kind(q)->raft_group,
        .elsewhere = queue_elsewhere(q),
        .arguments = queue_arguments(q),
    };
    name_nodes(e, q, &out);
    struct table_buf effective = {0};
    out.policy = policy ? policy_name(policy) : NULL;
    out.operator_policy = op ? policy_name(op) : NULL;
    if (policy_effective_definition(policy, op, &effective) == 0)
        out.effective_policy_definition = (struct proto_bytes){effective.data, (uint32_t)effective.len};
    introspect_fill_queue(queue_stats(q), queue_series(q)->rate, &out.message_stats, &out.message_rates);
    queue_message_age(q, e->now_ms, &out.head_message_age_ms, &out.mean_message_age_ms);
    e->fn(&out, e->arg);
    table_buf_free(&effective);
}

void introspect_queues(struct server *server, const char *vhost,
                       void (*fn)(const struct introspect_queue *q, void *arg), void *arg)
{
    struct vhost_entry *v, *tmp;
    struct cluster_view *cluster = cluster_view_read(server);
    HASH_ITER(hh, server->vhosts, v, tmp) {
        if (!vhost_selected(v, vhost))
            continue;
        struct each_queue e = {fn, arg, v->name, loop_now_ms(server->loop), server, v->vhost, cluster};
        vhost_for_each_queue_with_policies(v->vhost, visit_queue, &e);
    }
    free(cluster);
}

struct each_exchange {
    void (*fn)(const struct introspect_exchange *x, void *arg);
    void *arg;
    const char *vhost;
};

static void visit_exchange(const struct vhost_exchange_info *x, void *arg)
{
    struct each_exchange *e = arg;
    struct introspect_exchange out = {
        .vhost = e->vhost,
        .name = x->name,
        .type = x->type,
        .durable = x->durable,
        .auto_delete = x->auto_delete,
        .internal = x->internal,
        .arguments = x->arguments,
        .policy = x->policy ? policy_name(x->policy) : NULL,
        .operator_policy = x->operator_policy ? policy_name(x->operator_policy) : NULL,
    };
    struct table_buf effective = {0};
    if (policy_effective_definition(x->policy, x->operator_policy, &effective) == 0)
        out.effective_policy_definition = (struct proto_bytes){effective.data, (uint32_t)effective.len};
    introspect_fill_exchange(x->stats, x->series->rate, &out.message_stats, &out.message_rates);
    e->fn(&out, e->arg);
    table_buf_free(&effective);
}

void introspect_exchanges(struct server *server, const char *vhost,
                          void (*fn)(const struct introspect_exchange *x, void *arg), void *arg)
{
    struct vhost_entry *v, *vtmp;
    HASH_ITER(hh, server->vhosts, v, vtmp) {
        if (!vhost_selected(v, vhost))
            continue;
        struct each_exchange e = {fn, arg, v->name};
        vhost_for_each_exchange(v->vhost, visit_exchange, &e);
    }
}

struct each_binding {
    void (*fn)(const struct introspect_binding *b, void *arg);
    void *arg;
    const char *vhost;
};

static void visit_binding(const struct vhost_binding_info *b, void *arg)
{
    struct each_binding *e = arg;
    struct introspect_binding out = {
        .vhost = e->vhost,
        .source = b->source,
        .destination_kind = b->to_exchange ? "exchange" : "queue",
        .destination = b->destination,
        .routing_key = b->routing_key,
        .arguments = b->arguments,
    };
    e->fn(&out, e->arg);
}

static void visit_default_binding(struct queue *q, void *arg)
{
    /* RabbitMQ lists the default exchange's implicit binding of every queue by its name. */
    struct each_binding *e = arg;
    struct introspect_binding out = {
        .vhost = e->vhost,
        .source = {(const uint8_t *)"", 0},
        .destination_kind = "queue",
        .destination = queue_name(q),
        .routing_key = queue_name(q),
        .arguments = {NULL, 0},
    };
    e->fn(&out, e->arg);
}

void introspect_bindings(struct server *server, const char *vhost,
                         void (*fn)(const struct introspect_binding *b, void *arg), void *arg)
{
    struct vhost_entry *v, *vtmp;
    HASH_ITER(hh, server->vhosts, v, vtmp) {
        if (!vhost_selected(v, vhost))
            continue;
        struct each_binding e = {fn, arg, v->name};
        vhost_for_each_queue(v->vhost, visit_default_binding, &e);
        vhost_for_each_binding(v->vhost, visit_binding, &e);
    }
}

static struct queue *find_queue(struct server *server, const char *vhost, struct proto_bytes name)
{
    struct vhost_entry *v = server_vhost_entry(server, vhost, strlen(vhost));
    return v ? vhost_queue_find(v->vhost, name) : NULL;
}

int introspect_purge_queue(struct server *server, const char *vhost, struct proto_bytes name, uint64_t *purged)
{
    struct queue *q = find_queue(server, vhost, name);
    if (!q)
        return -ENOENT;
    *purged = queue_purge(q);
    return 0;
}

int introspect_delete_queue(struct server *server, const char *vhost, struct proto_bytes name, uint64_t *deleted)
{
    struct vhost_entry *v = server_vhost_entry(server, vhost, strlen(vhost));
    struct queue *q = v ? vhost_queue_find(v->vhost, name) : NULL;
    if (!q)
        return -ENOENT;
    *deleted = queue_ready_count(q);
    vhost_queue_remove(v->vhost, q);
    return 0;
}

struct access *introspect_access(struct server *server) { return server->access; }

struct user_filter {
    struct server *server;
};

static void close_if_user_gone(struct netconn *net, void *arg)
{
    struct user_filter *f = arg;
    struct connection *conn = connection_of(net);
    if (!conn || !*connection_user(conn) || !connection_vhost(conn))
        return;
    if (!access_user_exists(f->server->access, connection_user(conn)))
        connection_force_close(conn, "user deleted");
}

void server_access_applied(struct server *server)
{
    server_vhosts_sync(server);
    struct user_filter f = {server};
    netconn_for_each(server->loop, close_if_user_gone, &f);
}

int introspect_access_changed(struct server *server)
{
    server_access_applied(server);
#ifdef WARREN_HAVE_CLUSTER
    if (server->cluster)
        cluster_target_propose_access(server); /* the other nodes follow (cluster_target.h) */
#endif
    return 0;
}
