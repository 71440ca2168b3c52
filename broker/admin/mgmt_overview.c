/* broker/admin/mgmt_overview.c: the broker as a whole: /api/overview, /api/whoami,
 * /api/nodes, /api/cluster-name, /api/extensions and the health checks. Warren is one node,
 * named "warren@<hostname>" (RabbitMQ's node names are "rabbit@<hostname>"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static json_t *listeners(struct mgmt_call *call)
{
    const struct server_config *cfg = server_config(call->server);
    json_t *a = json_array();
    json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i}", "node", mgmt_node_name(), "protocol", "amqp",
                                       "ip_address", cfg->bind_address ? cfg->bind_address : "::", "port",
                                       (int)server_port(call->server)));
    /* The HTTP doors, as RabbitMQ lists its management and Prometheus listeners. */
    const char *bind = cfg->bind_address ? cfg->bind_address : "::";
    if (cfg->management_port)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i}", "node", mgmt_node_name(), "protocol", "http",
                                           "ip_address", bind, "port", (int)cfg->management_port));
    if (cfg->prometheus_port)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i}", "node", mgmt_node_name(), "protocol",
                                           "http/prometheus", "ip_address", bind, "port", (int)cfg->prometheus_port));
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

static json_t *node(struct mgmt_call *call)
{
    struct introspect_status st;
    introspect_status(call->server, &st);
    const struct server_config *cfg = server_config(call->server);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(mgmt_node_name()));
    json_object_set_new(o, "type", json_string("disc"));
    json_object_set_new(o, "running", json_true());
    json_object_set_new(o, "being_drained", json_false());
    json_object_set_new(o, "os_pid", json_sprintf("%llu", (unsigned long long)st.pid));
    uint64_t mem_used = 0;
    node_info_resident_bytes(&mem_used);
    put_int(o, "mem_used", mem_used);
    put_int(o, "mem_limit", st.memory_high_watermark);
    json_object_set_new(o, "mem_alarm", json_boolean(st.memory_alarm));
    put_int(o, "message_memory_bytes", st.message_memory_bytes);
    uint64_t disk_free = 0;
    node_info_disk_free(st.data_dir, &disk_free);
    put_int(o, "disk_free", disk_free);
    put_int(o, "disk_free_limit", cfg->disk_free_limit);
    json_object_set_new(o, "disk_free_alarm", json_boolean(st.disk_alarm));
    uint64_t fds = 0, fd_limit = 0;
    node_info_open_fds(&fds);
    node_info_fd_limit(&fd_limit);
    put_int(o, "fd_used", fds);
    put_int(o, "fd_total", fd_limit);
    put_int(o, "sockets_used", st.connections);
    put_int(o, "sockets_total", fd_limit);
    put_int(o, "proc_used", 1);
    put_int(o, "proc_total", 1);
    put_int(o, "run_queue", 0);
    put_int(o, "processors", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
    put_int(o, "uptime", st.uptime_ms);
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "partitions", json_array());
    json_object_set_new(o, "exchange_types", exchange_types());
    json_object_set_new(o, "applications", json_array());
    json_object_set_new(o, "contexts", json_array());
    json_object_set_new(o, "listeners", listeners(call));
    put_int(o, "store_segments", st.store_segments);
    put_int(o, "store_bytes", st.store_bytes);
    return o;
}

static void nodes(struct mgmt_call *call)
{
    json_t *a = json_array();
    json_array_append_new(a, node(call));
    mgmt_list(call, a);
}

static void one_node(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    if (strcmp(name, mgmt_node_name()) != 0) {
        mgmt_not_found(call);
        return;
    }
    mgmt_reply(call, 200, node(call));
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

/* /api/health/checks/alarms and local-alarms: 503 with the alarms in effect, as RabbitMQ. */
static void check_alarms(struct mgmt_call *call)
{
    struct introspect_status st;
    introspect_status(call->server, &st);
    if (!st.memory_alarm && !st.disk_alarm) {
        mgmt_reply(call, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    json_t *alarms = json_array();
    if (st.memory_alarm)
        json_array_append_new(alarms, json_pack("{s:s,s:s}", "node", mgmt_node_name(), "resource", "memory"));
    if (st.disk_alarm)
        json_array_append_new(alarms, json_pack("{s:s,s:s}", "node", mgmt_node_name(), "resource", "disk"));
    mgmt_reply(call, 503, json_pack("{s:s,s:s,s:o}", "status", "failed", "reason",
                                    "resource alarm(s) in effect in the cluster", "alarms", alarms));
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
    {"health/checks/local-alarms", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_alarms},
    {"health/checks/virtual-hosts", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {"health/checks/node-is-quorum-critical", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {"health/checks/node-is-mirror-sync-critical", MGMT_GET, MGMT_USER, MGMT_USER, 0, check_ok},
    {NULL, 0, 0, 0, 0, NULL},
};
