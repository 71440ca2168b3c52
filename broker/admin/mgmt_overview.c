/* broker/admin/mgmt_overview.c: the broker as a whole: /api/overview, /api/whoami,
 * /api/nodes, /api/cluster-name, /api/extensions and the health checks. A node is named by its
 * node_name, else "warren@<hostname>" (RabbitMQ's node names are "rabbit@<hostname>"); in a
 * cluster, /api/nodes lists every member (introspect_nodes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "access.h"
#include "introspect.h"
#include "mgmt_internal.h"
#include "node_info.h"
#include "server.h"

#define MGMT_RABBITMQ_VERSION NODE_INFO_RABBITMQ_VERSION

const char *mgmt_node_name(void)
{
    return node_info_name();
}

static void put_int(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t *exchange_types(void)
{
    static const char *const types[][2] = {
        {"direct", "AMQP direct exchange, as per the AMQP specification"},
        {"fanout", "AMQP fanout exchange, as per the AMQP specification"},
        {"headers", "AMQP headers exchange, as per the AMQP specification"},
        {"topic", "AMQP topic exchange, as per the AMQP specification"},
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:b}", "name", types[i][0], "description", types[i][1],
                                           "enabled", 1));
    return a;
}

/* A node's listeners, as RabbitMQ names them: AMQP, AMQPS, and the HTTP doors that are on. */
struct door {
    const char *protocol;
    uint16_t port;
};

static size_t node_doors(const struct introspect_node *n, struct door out[5])
{
    const struct door all[] = {{"amqp", n->amqp_port},
                               {"amqp/ssl", n->amqps_port},
                               {"http", n->management_port},
                               {"https", n->https_port},
                               {"http/prometheus", n->prometheus_port}};
    size_t k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].port || i == 0)
            out[k++] = all[i];
    return k;
}

static void node_listeners(const struct introspect_node *n, json_t *a)
{
    struct door doors[5];
    size_t k = node_doors(n, doors);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i}", "node", n->name, "protocol", doors[i].protocol,
                                           "ip_address", n->bind_address, "port", (int)doors[i].port));
}

static void add_listeners(const struct introspect_node *n, void *arg)
{
    if (n->running)
        node_listeners(n, arg);
}

/* Every running node's listeners (/api/overview's are the cluster's). */
static json_t *listeners(struct mgmt_call *call)
{
    json_t *a = json_array();
    introspect_nodes(call->server, add_listeners, a);
    return a;
}

static void overview(struct mgmt_call *call)
{
    struct introspect_status st;
    introspect_status(call->server, &st);
    json_t *o = json_object();
    json_object_set_new(o, "management_version", json_string(MGMT_RABBITMQ_VERSION));
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "exchange_types", exchange_types());
    json_object_set_new(o, "product_version", json_string(st.version));
    json_object_set_new(o, "product_name", json_string("Warren"));
    json_object_set_new(o, "rabbitmq_version", json_string(MGMT_RABBITMQ_VERSION));
    json_object_set_new(o, "cluster_name", json_string(mgmt_node_name()));
    json_object_set_new(o, "erlang_version", json_string("none (Warren is written in C)"));
    json_object_set_new(o, "erlang_full_version", json_string("none (Warren is written in C)"));
    json_object_set_new(o, "disable_stats", json_false());
    json_object_set_new(o, "enable_queue_totals", json_true());
    json_t *stats = mgmt_message_stats(&st.message_stats, &st.message_rates, MGMT_STATS_CHANNEL);
    json_object_set_new(o, "message_stats", stats);
    json_t *churn = json_object();
    put_int(churn, "connection_created", st.connection_created);
    put_int(churn, "connection_closed", st.connection_closed);
    put_int(churn, "channel_created", st.channel_created);
    put_int(churn, "channel_closed", st.channel_closed);
    put_int(churn, "queue_declared", st.queue_created);
    put_int(churn, "queue_created", st.queue_created);
    put_int(churn, "queue_deleted", st.queue_deleted);
    json_object_set_new(o, "churn_rates", churn);
    json_t *totals = json_object();
    put_int(totals, "messages", st.messages_ready + st.messages_unacknowledged);
    put_int(totals, "messages_ready", st.messages_ready);
    put_int(totals, "messages_unacknowledged", st.messages_unacknowledged);
    json_object_set_new(o, "queue_totals", totals);
    mgmt_add_history(call, INTROSPECT_HISTORY_OVERVIEW, NULL, (struct proto_bytes){NULL, 0}, stats, totals);
    json_object_set_new(o, "statistics_interval_ms", json_integer((json_int_t)st.stats_interval_ms));
    json_t *objects = json_object();
    put_int(objects, "channels", st.channels);
    put_int(objects, "connections", st.connections);
    put_int(objects, "consumers", st.consumers);
    put_int(objects, "exchanges", st.exchanges);
    put_int(objects, "queues", st.queues);
    json_object_set_new(o, "object_totals", objects);
    json_object_set_new(o, "statistics_db_event_queue", json_integer(0));
    json_object_set_new(o, "node", json_string(mgmt_node_name()));
    json_object_set_new(o, "listeners", listeners(call));
    json_object_set_new(o, "contexts", json_array());
    mgmt_reply(call, 200, o);
}

static void whoami(struct mgmt_call *call)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(call->user));
    json_object_set_new(o, "tags", call->user[0] ? mgmt_user_tags(call->server, call->user)
                                                 : json_pack("[s]", "administrator"));
    mgmt_reply(call, 200, o);
}

/* One node of /api/nodes. A member not heard from lately shows as RabbitMQ shows a stopped
 * node: its name, type and running false, without figures. */
static json_t *node_json(const struct introspect_node *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(n->name));
    json_object_set_new(o, "type", json_string("disc"));
    json_object_set_new(o, "running", json_boolean(n->running));
    json_object_set_new(o, "being_drained", json_false());
    if (!n->running) {
        json_object_set_new(o, "partitions", json_array());
        return o;
    }
    json_object_set_new(o, "os_pid", json_sprintf("%llu", (unsigned long long)n->os_pid));
    put_int(o, "mem_used", n->mem_used);
    put_int(o, "mem_limit", n->mem_limit);
    json_object_set_new(o, "mem_alarm", json_boolean(n->mem_alarm));
    put_int(o, "message_memory_bytes", n->message_memory_bytes);
    put_int(o, "disk_free", n->disk_free);
    put_int(o, "disk_free_limit", n->disk_free_limit);
    json_object_set_new(o, "disk_free_alarm", json_boolean(n->disk_alarm));
    put_int(o, "fd_used", n->fd_used);
    put_int(o, "fd_total", n->fd_total);
    put_int(o, "sockets_used", n->sockets_used);
    put_int(o, "sockets_total", n->fd_total);
    /* Warren has no Erlang processes: one process, against RabbitMQ's default limit (so that
     * checks of the ratio, as check_rabbitmq_server's, see a node far from its limit). */
    put_int(o, "proc_used", 1);
    put_int(o, "proc_total", 1048576);
    put_int(o, "run_queue", 0);
    put_int(o, "processors", n->processors);
    put_int(o, "uptime", n->uptime_ms);
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "partitions", json_array());
    json_object_set_new(o, "exchange_types", exchange_types());
    json_object_set_new(o, "applications", json_array());
    json_object_set_new(o, "contexts", json_array());
    json_t *l = json_array();
    node_listeners(n, l);
    json_object_set_new(o, "listeners", l);
    put_int(o, "store_segments", n->store_segments);
    put_int(o, "store_bytes", n->store_bytes);
    return o;
}

static void add_node(const struct introspect_node *n, void *arg)
{
    json_array_append_new(arg, node_json(n));
}

static void nodes(struct mgmt_call *call)
{
    json_t *a = json_array();
    introspect_nodes(call->server, add_node, a);
    mgmt_list(call, a);
}

struct named_node {
    const char *name;
    json_t *found;
};

static void find_node(const struct introspect_node *n, void *arg)
{
    struct named_node *f = arg;
    if (!f->found && strcmp(n->name, f->name) == 0)
        f->found = node_json(n);
}

static void one_node(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    struct named_node f = {name, NULL};
    introspect_nodes(call->server, find_node, &f);
    if (!f.found)
        mgmt_not_found(call);
    else
        mgmt_reply(call, 200, f.found);
}

static void cluster_name(struct mgmt_call *call)
{
    if (call->method == MGMT_PUT) { /* one node, one name: accepted and not kept */
        mgmt_done(call, false);
        return;
    }
    mgmt_reply(call, 200, json_pack("{s:s}", "name", mgmt_node_name()));
}

static void empty_list(struct mgmt_call *call)
{
    mgmt_list(call, json_array());
}

/* /api/health/checks/alarms (every running node's, as RabbitMQ's cluster-wide check) and
 * local-alarms (this node's): 503 with the alarms in effect. */
static void collect_alarms(const struct introspect_node *n, void *arg)
{
    if (!n->running)
        return;
    if (n->mem_alarm)
        json_array_append_new(arg, json_pack("{s:s,s:s}", "node", n->name, "resource", "memory"));
    if (n->disk_alarm)
        json_array_append_new(arg, json_pack("{s:s,s:s}", "node", n->name, "resource", "disk"));
}

static void reply_alarms(struct mgmt_call *call, json_t *alarms, const char *where)
{
    if (json_array_size(alarms) == 0) {
        json_decref(alarms);
        mgmt_reply(call, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    char reason[64];
    snprintf(reason, sizeof reason, "There are alarms in effect %s", where);
    mgmt_reply(call, 503, json_pack("{s:s,s:s,s:o}", "status", "failed", "reason", reason, "alarms", alarms));
}

static void check_alarms(struct mgmt_call *call)
{
    json_t *alarms = json_array();
    introspect_nodes(call->server, collect_alarms, alarms);
    reply_alarms(call, alarms, "in the cluster");
}

static void check_local_alarms(struct mgmt_call *call)
{
    struct introspect_node self;
    introspect_node_self(call->server, &self);
    json_t *alarms = json_array();
    collect_alarms(&self, alarms);
    reply_alarms(call, alarms, "on the node");
}

/* health/checks/port-listener/PORT and protocol-listener/PROTOCOL: does this node listen on
 * it? 200 {"status":"ok",...}, or RabbitMQ's 503 with what it listens on. */
static void check_listener(struct mgmt_call *call)
{
    const char *what = mgmt_name(call, 3);
    if (!what)
        return;
    bool by_port = call->seg[2].len == strlen("port-listener");
    struct introspect_node self;
    introspect_node_self(call->server, &self);
    struct door doors[5];
    size_t k = node_doors(&self, doors);
    char *end;
    long port = by_port ? strtol(what, &end, 10) : 0;
    if (by_port && (!*what || *end || port <= 0 || port > 65535)) {
        mgmt_fail(call, 400, "bad_request", "Invalid port: %s", what);
        return;
    }
    /* RabbitMQ's names of a protocol, as its check normalises them */
    static const char *const aliases[][2] = {{"amqp091", "amqp"}, {"amqp0-9-1", "amqp"}, {"amqps", "amqp/ssl"},
                                            {"amqp091/ssl", "amqp/ssl"}, {"http1", "http"}, {"http1.1", "http"},
                                            {"prometheus", "http/prometheus"}};
    const char *protocol = what;
    for (size_t i = 0; !by_port && i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(what, aliases[i][0]) == 0)
            protocol = aliases[i][1];
    json_t *have = json_array();
    for (size_t i = 0; i < k; i++) {
        if (by_port ? doors[i].port == port : strcasecmp(doors[i].protocol, protocol) == 0) {
            json_decref(have);
            mgmt_reply(call, 200, by_port ? json_pack("{s:s,s:i}", "status", "ok", "port", (int)port)
                                          : json_pack("{s:s,s:s}", "status", "ok", "protocol", doors[i].protocol));
            return;
        }
        json_array_append_new(have, by_port ? json_integer(doors[i].port) : json_string(doors[i].protocol));
    }
    mgmt_reply(call, 503, by_port ? json_pack("{s:s,s:s,s:i,s:o}", "status", "failed", "reason", "No active listener",
                                              "missing", (int)port, "ports", have)
                                  : json_pack("{s:s,s:s,s:s,s:o}", "status", "failed", "reason", "No active listener",
                                              "missing", protocol, "protocols", have));
}

/* Every vhost of a single node runs while the node runs. */
static void check_ok(struct mgmt_call *call)
{
    mgmt_reply(call, 200, json_pack("{s:s}", "status", "ok"));
}

const struct mgmt_route mgmt_overview_routes[] = {
    {"overview", MGMT_GET, MGMT_USER, MGMT_USER, 0, overview},
    {"whoami", MGMT_GET, MGMT_USER, MGMT_USER, 0, whoami},
    {"nodes", MGMT_GET, MGMT_MONITOR, MGMT_MONITOR, 0, nodes},
    {"nodes/*", MGMT_GET, MGMT_MONITOR, MGMT_MONITOR, 0, one_node},
    {"cluster-name", MGMT_GET | MGMT_PUT, MGMT_USER, MGMT_ADMIN, 0, cluster_name},
    {"extensions", MGMT_GET, MGMT_USER, MGMT_USER, 0, empty_list},
    {"health/checks/alarms", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_alarms},
    {"health/checks/local-alarms", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_local_alarms},
    {"health/checks/virtual-hosts", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {"health/checks/port-listener/*", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_listener},
    {"health/checks/protocol-listener/*", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_listener},
    {"health/checks/node-is-quorum-critical", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {"health/checks/node-is-mirror-sync-critical", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {NULL, 0, 0, 0, 0, NULL},
};
