/* broker/admin/prometheus.c: the Prometheus endpoint: one scrape reads the broker once
 * (introspect.h, node_info.h) into a snapshot, then writes it in the text exposition format
 * (version 0.0.4) under rabbitmq_prometheus's names, so RabbitMQ's Grafana dashboards and
 * alerts work unchanged. A metric Warren cannot back with a real number is left out, never
 * faked: its snapshot value is NAN and its family is not written.
 *
 * Every family is one block: "# HELP", "# TYPE", then all its samples, and no name appears
 * twice (the format requires it; promtool checks it). Label values are escaped as the format
 * says (backslash, double quote, newline), and bytes that are not UTF-8 (AMQP names need not
 * be) become U+FFFD, since a scraper refuses the whole page for one invalid label value. */
#include "prometheus.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "node_info.h"
#include "server.h"
#include "utf8.h"

enum metric_type { GAUGE, COUNTER, UNTYPED };

static const char *const type_names[] = {"gauge", "counter", "untyped"};

/* The protocol label of rabbitmq_global_* (RabbitMQ also writes amqp10 series; Warren speaks
 * AMQP 0-9-1 only), and the queue type label of those global counters: Warren counts the
 * deliveries of all its queues together, quorum ones included, under the classic type. The
 * per-queue info series names each queue's own type. */
#define AMQP091 "protocol=\"amqp091\""
#define CLASSIC_QUEUE "rabbit_classic_queue"
#define AMQP091_CLASSIC AMQP091 ",queue_type=\"" CLASSIC_QUEUE "\""

/* What one scrape reports, read once. NAN: Warren cannot back the value (yet), the family is
 * left out. */
struct scrape {
    const char *version; /* Warren's */
    /* object totals */
    double connections, channels, consumers, queues;
    /* the node */
    double open_fds, max_fds, resident_bytes, memory_limit, disk_free, disk_free_limit;
    double uptime_seconds, start_time, store_syncs;
    double disk_alarm, memory_alarm;
    /* Churn and message counters, since the broker started (introspect_status). */
    double connections_opened, connections_closed, channels_opened, channels_closed;
    double queues_declared, queues_created, queues_deleted;
    double received, received_confirm, routed, unroutable_dropped, unroutable_returned, confirmed;
    double delivered, delivered_consume_manual_ack, delivered_consume_auto_ack, delivered_get_manual_ack,
        delivered_get_auto_ack, get_empty, redelivered, acknowledged;
};

/* A family with at most one sample, read from a double of struct scrape. */
struct scalar_family {
    const char *name;
    enum metric_type type;
    const char *help;
    const char *labels; /* constant labels ("protocol=\"amqp091\""), or NULL */
    size_t offset;      /* of its value in struct scrape */
};

#define AT(field) offsetof(struct scrape, field)

static const struct scalar_family scalar_families[] = {
    /* object totals (RabbitMQ writes these on every endpoint) */
    {"rabbitmq_connections", GAUGE, "Connections currently open", NULL, AT(connections)},
    {"rabbitmq_channels", GAUGE, "Channels currently open", NULL, AT(channels)},
    {"rabbitmq_consumers", GAUGE, "Consumers currently connected", NULL, AT(consumers)},
    {"rabbitmq_queues", GAUGE, "Queues available", NULL, AT(queues)},
    /* the node */
    {"rabbitmq_process_open_fds", GAUGE, "Open file descriptors", NULL, AT(open_fds)},
    {"rabbitmq_process_max_fds", GAUGE, "Open file descriptors limit", NULL, AT(max_fds)},
    {"rabbitmq_process_resident_memory_bytes", GAUGE, "Memory used in bytes", NULL, AT(resident_bytes)},
    {"rabbitmq_resident_memory_limit_bytes", GAUGE,
     "Memory high watermark in bytes (Warren compares it with the memory held by messages)", NULL,
     AT(memory_limit)},
    {"rabbitmq_disk_space_available_bytes", GAUGE, "Disk space available in bytes", NULL, AT(disk_free)},
    {"rabbitmq_disk_space_available_limit_bytes", GAUGE, "Free disk space low watermark in bytes", NULL,
     AT(disk_free_limit)},
    {"rabbitmq_erlang_uptime_seconds", GAUGE, "Node uptime", NULL, AT(uptime_seconds)},
    {"rabbitmq_io_sync_ops_total", COUNTER, "Total number of I/O sync operations", NULL, AT(store_syncs)},
    {"process_start_time_seconds", GAUGE, "Start time of the process since unix epoch in seconds.", NULL,
     AT(start_time)},
    {"rabbitmq_alarms_free_disk_space_watermark", UNTYPED, "is 1 if free disk space watermark alarm is in effect",
     NULL, AT(disk_alarm)},
    {"rabbitmq_alarms_memory_used_watermark", UNTYPED, "is 1 if VM memory watermark alarm is in effect", NULL,
     AT(memory_alarm)},
    /* churn */
    {"rabbitmq_connections_opened_total", COUNTER, "Total number of connections opened", NULL,
     AT(connections_opened)},
    {"rabbitmq_connections_closed_total", COUNTER, "Total number of connections closed or terminated", NULL,
     AT(connections_closed)},
    {"rabbitmq_channels_opened_total", COUNTER, "Total number of channels opened", NULL, AT(channels_opened)},
    {"rabbitmq_channels_closed_total", COUNTER, "Total number of channels closed", NULL, AT(channels_closed)},
    {"rabbitmq_queues_declared_total", COUNTER, "Total number of queues declared", NULL, AT(queues_declared)},
    {"rabbitmq_queues_created_total", COUNTER, "Total number of queues created", NULL, AT(queues_created)},
    {"rabbitmq_queues_deleted_total", COUNTER, "Total number of queues deleted", NULL, AT(queues_deleted)},
    /* rabbitmq_global_*: by protocol, and for what queues do, by queue type */
    {"rabbitmq_global_consumers", GAUGE, "Current number of consumers", AMQP091, AT(consumers)},
    {"rabbitmq_global_messages_received_total", COUNTER, "Total number of messages received from publishers",
     AMQP091, AT(received)},
    {"rabbitmq_global_messages_received_confirm_total", COUNTER,
     "Total number of messages received from publishers expecting confirmations", AMQP091, AT(received_confirm)},
    {"rabbitmq_global_messages_routed_total", COUNTER, "Total number of messages routed to queues or streams",
     AMQP091, AT(routed)},
    {"rabbitmq_global_messages_unroutable_dropped_total", COUNTER,
     "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", AMQP091,
     AT(unroutable_dropped)},
    {"rabbitmq_global_messages_unroutable_returned_total", COUNTER,
     "Total number of messages published as mandatory into an exchange and returned to the publisher as "
     "unroutable",
     AMQP091, AT(unroutable_returned)},
    {"rabbitmq_global_messages_confirmed_total", COUNTER, "Total number of messages confirmed to publishers",
     AMQP091, AT(confirmed)},
    {"rabbitmq_global_messages_delivered_total", COUNTER, "Total number of messages delivered to consumers",
     AMQP091_CLASSIC, AT(delivered)},
    {"rabbitmq_global_messages_delivered_consume_manual_ack_total", COUNTER,
     "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
     AMQP091_CLASSIC, AT(delivered_consume_manual_ack)},
    {"rabbitmq_global_messages_delivered_consume_auto_ack_total", COUNTER,
     "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
     AMQP091_CLASSIC, AT(delivered_consume_auto_ack)},
    {"rabbitmq_global_messages_delivered_get_manual_ack_total", COUNTER,
     "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
     AMQP091_CLASSIC, AT(delivered_get_manual_ack)},
    {"rabbitmq_global_messages_delivered_get_auto_ack_total", COUNTER,
     "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
     AMQP091_CLASSIC, AT(delivered_get_auto_ack)},
    {"rabbitmq_global_messages_get_empty_total", COUNTER,
     "Total number of times basic.get operations fetched no message", AMQP091_CLASSIC, AT(get_empty)},
    {"rabbitmq_global_messages_redelivered_total", COUNTER, "Total number of messages redelivered to consumers",
     AMQP091_CLASSIC, AT(redelivered)},
    {"rabbitmq_global_messages_acknowledged_total", COUNTER, "Total number of messages acknowledged by consumers",
     AMQP091_CLASSIC, AT(acknowledged)},
};

/* A queue family: one sample per queue (per-object) or their sum (aggregated). */
struct queue_family {
    const char *name;
    const char *help;
    uint64_t (*value)(const struct introspect_queue *q);
};

static uint64_t queue_ready(const struct introspect_queue *q) { return q->messages_ready; }
static uint64_t queue_unacked(const struct introspect_queue *q) { return q->messages_unacknowledged; }
static uint64_t queue_messages(const struct introspect_queue *q)
{
    return q->messages_ready + q->messages_unacknowledged;
}
static uint64_t queue_consumers(const struct introspect_queue *q) { return q->consumers; }
static uint64_t queue_ready_bytes(const struct introspect_queue *q) { return q->message_bytes_ready; }

static const struct queue_family queue_families[] = {
    {"rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers", queue_ready},
    {"rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", queue_unacked},
    {"rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth", queue_messages},
    {"rabbitmq_queue_consumers", "Consumers on a queue", queue_consumers},
    {"rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages", queue_ready_bytes},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the snapshot -------------------------------------------------------------------------- */

/* A node_info reading as a double, NAN when it failed. */
static double reading(bool (*read)(uint64_t *out))
{
    uint64_t v;
    return read(&v) ? (double)v : NAN;
}

static void read_scrape(struct server *server, struct scrape *s)
{
    struct introspect_status st;
    introspect_status(server, &st);
    uint64_t disk_free;
    s->version = st.version;
    s->connections = st.connections;
    s->channels = st.channels;
    s->consumers = st.consumers;
    s->queues = st.queues;
    s->open_fds = reading(node_info_open_fds);
    s->max_fds = reading(node_info_fd_limit);
    s->resident_bytes = reading(node_info_resident_bytes);
    s->memory_limit = (double)st.memory_high_watermark;
    s->disk_free = node_info_disk_free(st.data_dir, &disk_free) ? (double)disk_free : NAN;
    s->disk_free_limit = (double)server_config(server)->disk_free_limit;
    s->uptime_seconds = (double)st.uptime_ms / 1000.0;
    if (!node_info_start_time(&s->start_time))
        s->start_time = NAN;
    s->store_syncs = (double)st.store_syncs;
    s->disk_alarm = st.disk_alarm;
    s->memory_alarm = st.memory_alarm;

    const struct introspect_message_stats *m = &st.message_stats;
    s->connections_opened = (double)st.connection_created;
    s->connections_closed = (double)st.connection_closed;
    s->channels_opened = (double)st.channel_created;
    s->channels_closed = (double)st.channel_closed;
    s->queues_created = (double)st.queue_created;
    s->queues_deleted = (double)st.queue_deleted;
    s->received = (double)m->publish;
    s->routed = (double)(m->publish - m->drop_unroutable - m->return_unroutable);
    s->unroutable_dropped = (double)m->drop_unroutable;
    s->unroutable_returned = (double)m->return_unroutable;
    s->confirmed = (double)m->confirm;
    s->delivered = (double)m->deliver_get;
    s->delivered_consume_manual_ack = (double)m->deliver;
    s->delivered_consume_auto_ack = (double)m->deliver_no_ack;
    s->delivered_get_manual_ack = (double)m->get;
    s->delivered_get_auto_ack = (double)m->get_no_ack;
    s->get_empty = (double)m->get_empty;
    s->redelivered = (double)m->redeliver;
    s->acknowledged = (double)m->ack;
    /* Not counted by Warren, so not written: declares of queues that already existed
     * (queues_declared counts only creations here) and publishes made in confirm mode. */
    s->queues_declared = NAN;
    s->received_confirm = NAN;
}

/* ---- the exposition format ----------------------------------------------------------------- */

/* A value as Prometheus parses it: integers exactly, others in the shortest form that reads
 * back the same. */
static void put_value(FILE *f, double v)
{
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) { /* |v| < 2^53 */
        fprintf(f, "%.0f", v);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    fputs(buf, f);
}

static void put_u64(FILE *f, uint64_t v)
{
    fprintf(f, "%" PRIu64, v);
}

/* A label value between its quotes: \ " and newline escaped, invalid UTF-8 as U+FFFD. */
static void put_label_value(FILE *f, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(s + i, len - i);
        if (n == 0) {
            fputs("\xef\xbf\xbd", f);
            i++;
            continue;
        }
        if (s[i] == '\\')
            fputs("\\\\", f);
        else if (s[i] == '"')
            fputs("\\\"", f);
        else if (s[i] == '\n')
            fputs("\\n", f);
        else
            fwrite(s + i, 1, n, f);
        i += n;
    }
}

static void put_label(FILE *f, const char *name, const uint8_t *value, size_t len)
{
    fprintf(f, "%s=\"", name);
    put_label_value(f, value, len);
    fputc('"', f);
}

static void put_label_string(FILE *f, const char *name, const char *value)
{
    put_label(f, name, (const uint8_t *)value, strlen(value));
}

/* The "# HELP" and "# TYPE" lines that open a family. The help texts are this file's constants,
 * free of the backslashes and newlines the format would have escaped. */
static void put_family(FILE *f, const char *name, enum metric_type type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type_names[type]);
}

static void put_scalar_families(FILE *f, const struct scrape *s)
{
    for (size_t i = 0; i < COUNT(scalar_families); i++) {
        const struct scalar_family *fam = &scalar_families[i];
        double v;
        memcpy(&v, (const char *)s + fam->offset, sizeof v);
        if (isnan(v))
            continue;
        put_family(f, fam->name, fam->type, fam->help);
        fputs(fam->name, f);
        if (fam->labels)
            fprintf(f, "{%s}", fam->labels);
        fputc(' ', f);
        put_value(f, v);
        fputc('\n', f);
    }
}

/* Aggregated: every queue family's sum over all queues, without labels. */
struct queue_sums {
    uint64_t sum[COUNT(queue_families)];
};

/* A node reports the queues it holds, as RabbitMQ's nodes do: summed over a cluster's nodes,
 * a classic queue homed elsewhere would otherwise count once per node. */
static void add_queue(const struct introspect_queue *q, void *arg)
{
    struct queue_sums *sums = arg;
    if (q->elsewhere)
        return;
    for (size_t i = 0; i < COUNT(queue_families); i++)
        sums->sum[i] += queue_families[i].value(q);
}

static void put_queue_sums(FILE *f, struct server *server)
{
    struct queue_sums sums = {{0}};
    introspect_queues(server, NULL, add_queue, &sums);
    for (size_t i = 0; i < COUNT(queue_families); i++) {
        put_family(f, queue_families[i].name, GAUGE, queue_families[i].help);
        fprintf(f, "%s ", queue_families[i].name);
        put_u64(f, sums.sum[i]);
        fputc('\n', f);
    }
}

/* Per-object: the samples of one family, one per queue. family NULL: rabbitmq_queue_info. */
struct queue_walk {
    FILE *f;
    const struct queue_family *family;
};

static void put_queue_sample(const struct introspect_queue *q, void *arg)
{
    struct queue_walk *w = arg;
    if (q->elsewhere)
        return; /* its home reports it (add_queue) */
    fputs(w->family ? w->family->name : "rabbitmq_queue_info", w->f);
    fputc('{', w->f);
    put_label_string(w->f, "vhost", q->vhost);
    fputc(',', w->f);
    put_label(w->f, "queue", q->name.ptr, q->name.len);
    if (!w->family) /* a single node leads every queue it has */
        fprintf(w->f, ",queue_type=\"%s\",membership=\"leader\"", q->type_module);
    fputs("} ", w->f);
    put_u64(w->f, w->family ? w->family->value(q) : 1);
    fputc('\n', w->f);
}

static void put_queue_objects(FILE *f, struct server *server)
{
    /* One walk per family keeps each family one block; nothing changes the queues between
     * the walks (the loop runs this handler to the end). */
    for (size_t i = 0; i < COUNT(queue_families); i++) {
        struct queue_walk w = {f, &queue_families[i]};
        put_family(f, queue_families[i].name, GAUGE, queue_families[i].help);
        introspect_queues(server, NULL, put_queue_sample, &w);
    }
    struct queue_walk w = {f, NULL};
    put_family(f, "rabbitmq_queue_info", GAUGE,
               "A metric with a constant '1' value and labels that provide some queue details");
    introspect_queues(server, NULL, put_queue_sample, &w);
}

/* rabbitmq_build_info and rabbitmq_identity_info: what dashboards join every series with. */
static void put_identity(FILE *f, const char *endpoint, const char *version)
{
    put_family(f, "rabbitmq_build_info", UNTYPED, "RabbitMQ & Erlang/OTP version info");
    fputs("rabbitmq_build_info{", f);
    put_label_string(f, "rabbitmq_version", NODE_INFO_RABBITMQ_VERSION);
    fputc(',', f);
    put_label_string(f, "product_name", "Warren");
    fputc(',', f);
    put_label_string(f, "product_version", version);
    fputs("} 1\n", f);
    put_family(f, "rabbitmq_identity_info", UNTYPED, "RabbitMQ node & cluster identity info");
    fputs("rabbitmq_identity_info{", f);
    put_label_string(f, "rabbitmq_node", node_info_name());
    fputc(',', f);
    put_label_string(f, "rabbitmq_cluster", node_info_name()); /* one node: the cluster's name is its own */
    fputc(',', f);
    put_label_string(f, "rabbitmq_endpoint", endpoint);
    fputs("} 1\n", f);
}

/* ---- the HTTP door ------------------------------------------------------------------------- */

static void answer_text(struct http_response *res, unsigned status, const char *text)
{
    res->status = status;
    res->body = strdup(text);
    res->body_len = res->body ? strlen(text) : 0;
    res->content_type = "text/plain; charset=utf-8";
}

void prometheus_http_handler(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct server *server = ctx;
    bool per_object;
    if (strcmp(req->path, "/metrics") == 0 || strcmp(req->path, "/metrics/") == 0) {
        per_object = false;
    } else if (strcmp(req->path, "/metrics/per-object") == 0) {
        per_object = true;
    } else {
        answer_text(res, 404, "Not Found: the metrics are at /metrics and /metrics/per-object\n");
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        answer_text(res, 405, "Method Not Allowed\n");
        res->allow = "GET, HEAD";
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        answer_text(res, 500, "out of memory\n");
        return;
    }
    struct scrape s;
    read_scrape(server, &s);
    put_scalar_families(f, &s);
    if (per_object)
        put_queue_objects(f, server);
    else
        put_queue_sums(f, server);
    put_identity(f, per_object ? "per-object" : "aggregated", s.version);
    /* open_memstream reports a failed allocation through the stream's error state and fclose */
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(text);
        answer_text(res, 500, "out of memory\n");
        return;
    }
    res->status = 200;
    res->body = text;
    res->body_len = len;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
