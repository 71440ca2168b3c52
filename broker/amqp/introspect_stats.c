/* broker/amqp/introspect_stats.c: the statistics views of introspect.h: counters and rates
 * of each object, the per-vhost view and the history samples. Reads what the hot path counted
 * and the sampler (stats_sampler.c) left; computes nothing per message. */
#include "introspect_stats.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "channel_internal.h"
#include "connection.h"
#include "netconn.h"
#include "queue.h"
#include "server_internal.h"
#include "vhost.h"

#define INDEX(type, field) (offsetof(struct type, field) / sizeof(uint64_t))
/* Copies counter `field` of a struct `type` (and its rate) to the view field of the same name. */
#define FILL(type, field)                                                                                  \
    do {                                                                                                   \
        out->field = c->field;                                                                             \
        if (rate && rates)                                                                                 \
            rates->field = rate[INDEX(type, field)];                                                       \
    } while (0)

void introspect_fill_queue(const struct stats_queue *c, const float *rate, struct introspect_message_stats *out,
                           struct introspect_rates *rates)
{
    FILL(stats_queue, publish);
    FILL(stats_queue, deliver);
    FILL(stats_queue, deliver_no_ack);
    FILL(stats_queue, get);
    FILL(stats_queue, get_no_ack);
    FILL(stats_queue, get_empty);
    FILL(stats_queue, redeliver);
    FILL(stats_queue, ack);
    FILL(stats_queue, drop_expired);
    FILL(stats_queue, drop_maxlen);
    FILL(stats_queue, drop_rejected);
    out->deliver_get = out->deliver + out->deliver_no_ack + out->get + out->get_no_ack;
    if (rate && rates)
        rates->deliver_get = rates->deliver + rates->deliver_no_ack + rates->get + rates->get_no_ack;
}

void introspect_fill_channel(const struct stats_channel *c, const float *rate, struct introspect_message_stats *out,
                             struct introspect_rates *rates)
{
    FILL(stats_channel, publish);
    FILL(stats_channel, confirm);
    FILL(stats_channel, return_unroutable);
    FILL(stats_channel, drop_unroutable);
    FILL(stats_channel, deliver);
    FILL(stats_channel, deliver_no_ack);
    FILL(stats_channel, get);
    FILL(stats_channel, get_no_ack);
    FILL(stats_channel, get_empty);
    FILL(stats_channel, redeliver);
    FILL(stats_channel, ack);
    out->deliver_get = out->deliver + out->deliver_no_ack + out->get + out->get_no_ack;
    if (rate && rates)
        rates->deliver_get = rates->deliver + rates->deliver_no_ack + rates->get + rates->get_no_ack;
}

void introspect_fill_exchange(const struct stats_exchange *c, const float *rate,
                              struct introspect_message_stats *out, struct introspect_rates *rates)
{
    FILL(stats_exchange, publish_in);
    FILL(stats_exchange, publish_out);
    FILL(stats_exchange, return_unroutable);
    FILL(stats_exchange, drop_unroutable);
}

static void add_channel(struct channel *ch, void *arg) { stats_channel_add(arg, &ch->stats); }

void introspect_fill_connection(struct connection *conn, struct introspect_connection *out)
{
    struct stats_channel sum = *connection_closed_channel_stats(conn);
    connection_for_each_channel(conn, add_channel, &sum);
    struct connection_series *series = connection_series(conn);
    introspect_fill_channel(&sum, series->messages.rate, &out->message_stats, &out->message_rates);
    struct netconn_io_stats io;
    netconn_io_stats(connection_net(conn), &io);
    out->recv_oct = io.recv_bytes;
    out->send_oct = io.send_bytes;
    out->recv_cnt = io.recv_calls;
    out->send_cnt = io.send_calls;
    out->recv_oct_rate = series->io_rate[0];
    out->send_oct_rate = series->io_rate[1];
    out->recv_cnt_rate = series->io_rate[2];
    out->send_cnt_rate = series->io_rate[3];
    out->ssl = netconn_tls_info(connection_net(conn), &out->tls);
}

/* ---- vhosts ---- */

struct depth {
    uint64_t ready, unacked;
};

static void add_depth(struct queue *q, void *arg)
{
    struct depth *d = arg;
    d->ready += queue_ready_count(q);
    d->unacked += queue_unacked_count(q);
}

void introspect_vhosts(struct server *server, const char *vhost,
                       void (*fn)(const struct introspect_vhost *v, void *arg), void *arg)
{
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        if (e->deleted || (vhost && strcmp(vhost, e->name) != 0))
            continue;
        struct introspect_vhost out = {.name = e->name};
        struct stats_channel totals;
        server_stats_totals(server, e->name, &totals);
        introspect_fill_channel(&totals, e->series.rate, &out.message_stats, &out.message_rates);
        struct depth d = {0};
        vhost_for_each_queue(e->vhost, add_depth, &d);
        out.messages_ready = d.ready;
        out.messages_unacknowledged = d.unacked;
        out.connections = e->connections;
        out.queues = (uint32_t)vhost_queue_count(e->vhost);
        out.exchanges = (uint32_t)vhost_exchange_count(e->vhost);
        out.queue_created = vhost_churn(e->vhost)->queue_created;
        out.queue_deleted = vhost_churn(e->vhost)->queue_deleted;
        fn(&out, arg);
    }
}

/* ---- history ---- */

/* Samples of a vhost's or the broker's totals history. */
static size_t totals_samples(const struct stats_totals_series *series, const struct stats_clock *clock, size_t max,
                             struct introspect_sample *out)
{
    uint64_t timestamps[STATS_HISTORY_LEN];
    uint64_t values[STATS_HISTORY_LEN * STATS_TOTALS_HISTORY_WIDTH];
    uint64_t latest[STATS_TOTALS_HISTORY_WIDTH] = {0};
    memcpy(latest, series->last, sizeof series->last);
    uint32_t counters = (1u << STATS_CHANNEL_COUNTERS) - 1;
    size_t count = stats_history_read(&series->history, clock, max, counters, latest, timestamps, values);
    for (size_t i = 0; i < count; i++) {
        const uint64_t *row = &values[i * STATS_TOTALS_HISTORY_WIDTH];
        struct stats_channel c;
        memcpy(&c, row, sizeof c);
        out[i] = (struct introspect_sample){
            .timestamp_ms = timestamps[i],
            .messages_ready = row[STATS_TOTALS_HISTORY_READY],
            .messages_unacknowledged = row[STATS_TOTALS_HISTORY_UNACKED],
        };
        introspect_fill_channel(&c, NULL, &out[i].message_stats, NULL);
    }
    return count;
}

static size_t queue_samples(struct queue *q, const struct stats_clock *clock, size_t max,
                            struct introspect_sample *out)
{
    struct stats_queue_series *series = queue_series(q);
    uint64_t timestamps[STATS_HISTORY_LEN];
    uint64_t values[STATS_HISTORY_LEN * STATS_QUEUE_HISTORY_WIDTH];
    uint64_t latest[STATS_QUEUE_HISTORY_WIDTH] = {
        [STATS_QUEUE_HISTORY_PUBLISH] = series->last[INDEX(stats_queue, publish)],
        [STATS_QUEUE_HISTORY_DELIVER_GET] = stats_queue_deliver_get(series->last),
    };
    uint32_t counters = 1u << STATS_QUEUE_HISTORY_PUBLISH | 1u << STATS_QUEUE_HISTORY_DELIVER_GET;
    size_t count = stats_history_read(&series->history, clock, max, counters, latest, timestamps, values);
    for (size_t i = 0; i < count; i++) {
        const uint64_t *row = &values[i * STATS_QUEUE_HISTORY_WIDTH];
        out[i] = (struct introspect_sample){
            .timestamp_ms = timestamps[i],
            .messages_ready = row[STATS_QUEUE_HISTORY_READY],
            .messages_unacknowledged = row[STATS_QUEUE_HISTORY_UNACKED],
            .message_stats = {.publish = row[STATS_QUEUE_HISTORY_PUBLISH],
                              .deliver_get = row[STATS_QUEUE_HISTORY_DELIVER_GET]},
        };
    }
    return count;
}

int introspect_history(struct server *server, enum introspect_history_kind kind, const char *vhost,
                       struct proto_bytes queue, size_t max,
                       void (*fn)(const struct introspect_sample *samples, size_t count, void *arg), void *arg)
{
    _Static_assert(INTROSPECT_HISTORY_MAX == STATS_HISTORY_LEN, "one sample per tick");
    struct introspect_sample samples[INTROSPECT_HISTORY_MAX];
    const struct stats_clock *clock = &server->stats.clock;
    size_t count;
    if (kind == INTROSPECT_HISTORY_OVERVIEW) {
        count = totals_samples(&server->stats.series, clock, max, samples);
    } else {
        struct vhost_entry *e = vhost ? server_vhost_entry(server, vhost, strlen(vhost)) : NULL;
        if (!e || e->deleted)
            return -ENOENT;
        if (kind == INTROSPECT_HISTORY_VHOST) {
            count = totals_samples(&e->series, clock, max, samples);
        } else {
            struct queue *q = vhost_queue_find(e->vhost, queue);
            if (!q)
                return -ENOENT;
            count = queue_samples(q, clock, max, samples);
        }
    }
    fn(samples, count, arg);
    return 0;
}
