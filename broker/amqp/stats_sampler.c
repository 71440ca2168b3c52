/* broker/amqp/stats_sampler.c: the statistics sampler. Every interval (RabbitMQ's
 * collect_statistics_interval, 5 s) one pass visits each queue, exchange, channel and
 * connection once, sums the vhost and broker totals on the way, and leaves rates and history
 * (stats.h) for the admin views. Steady state allocates nothing: history rings are allocated
 * only when an object wakes from a whole window at rest. Also keeps what closed channels and
 * deleted vhosts leave behind, so that the totals never go down. */
#include <string.h>
#include <time.h>

#include "channel_internal.h"
#include "connection.h"
#include "event_loop.h"
#include "netconn.h"
#include "queue.h"
#include "server_internal.h"
#include "vhost.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- one pass ---- */

static void sample_queue(struct queue *q, void *arg)
{
    struct server *server = ((struct vhost_entry *)arg)->server;
    struct vhost_entry *e = arg;
    /* the counts the API shows: a classic queue homed on another node counts its home's */
    struct queue_depth depth;
    server_queue_depth(server, e->vhost, q, &depth);
    uint64_t ready = depth.ready, unacked = depth.unacked;
    stats_queue_sample(queue_series(q), &server->stats.clock, queue_stats(q), ready, unacked);
    e->pass_ready += ready;
    e->pass_unacked += unacked;
}

static void sample_exchange(const struct vhost_exchange_info *x, void *arg)
{
    struct server *server = arg;
    stats_rates_update(&server->stats.clock, (const uint64_t *)x->stats, x->series->last, x->series->rate,
                       STATS_EXCHANGE_COUNTERS);
}

struct connection_pass {
    struct server *server;
    struct vhost_entry *entry; /* the connection's vhost, NULL when none or retired */
    struct stats_channel *conn_sum;
    struct stats_channel global_sum;
};

static void sample_channel(struct channel *ch, void *arg)
{
    struct connection_pass *p = arg;
    stats_rates_update(&p->server->stats.clock, (const uint64_t *)&ch->stats, ch->series.last, ch->series.rate,
                       STATS_CHANNEL_COUNTERS);
    stats_channel_add(p->conn_sum, &ch->stats);
    stats_channel_add(&p->global_sum, &ch->stats);
    if (p->entry)
        stats_channel_add(&p->entry->pass_sum, &ch->stats);
}

static void sample_connection(struct netconn *net, void *arg)
{
    struct connection_pass *p = arg;
    struct connection *conn = connection_of(net);
    if (!conn)
        return;
    struct vhost *vhost = connection_vhost(conn);
    struct vhost_entry *e = vhost ? server_vhost_entry_of(p->server, vhost) : NULL;
    p->entry = e && !e->deleted ? e : NULL;
    struct stats_channel sum = *connection_closed_channel_stats(conn);
    p->conn_sum = &sum;
    connection_for_each_channel(conn, sample_channel, p);
    struct connection_series *series = connection_series(conn);
    stats_rates_update(&p->server->stats.clock, (const uint64_t *)&sum, series->messages.last, series->messages.rate,
                       STATS_CHANNEL_COUNTERS);
    struct netconn_io_stats io;
    netconn_io_stats(net, &io);
    stats_rates_update(&p->server->stats.clock, (const uint64_t *)&io, series->io_last, series->io_rate,
                       sizeof io / sizeof(uint64_t));
}

void server_stats_sample(struct server *server)
{
    struct server_stats *st = &server->stats;
    stats_clock_tick(&st->clock, loop_now_ms(server->loop), wall_ms());
    struct vhost_entry *e, *tmp;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        e->pass_sum = e->closed;
        e->pass_ready = e->pass_unacked = 0;
        vhost_for_each_queue(e->vhost, sample_queue, e);
        vhost_for_each_exchange(e->vhost, sample_exchange, server);
    }
    struct connection_pass pass = {.server = server, .global_sum = st->closed};
    netconn_for_each(server->loop, sample_connection, &pass);
    uint64_t ready = 0, unacked = 0;
    HASH_ITER(hh, server->vhosts, e, tmp) {
        stats_totals_sample(&e->series, &st->clock, &e->pass_sum, e->pass_ready, e->pass_unacked);
        ready += e->pass_ready;
        unacked += e->pass_unacked;
    }
    stats_totals_sample(&st->series, &st->clock, &pass.global_sum, ready, unacked);
}

static void on_timer(struct event_loop *loop, void *data)
{
    struct server *server = data;
    server->stats.timer = 0;
    server_stats_sample(server);
    server->stats.timer = loop_timer_add(loop, server->stats.interval_ms, on_timer, server);
}

void server_stats_start(struct server *server)
{
    server->stats.interval_ms =
        server->config.stats_interval_ms ? server->config.stats_interval_ms : STATS_DEFAULT_INTERVAL_MS;
    server_stats_sample(server); /* the first sample: later ones give rates from it */
    server->stats.timer = loop_timer_add(server->loop, server->stats.interval_ms, on_timer, server);
}

void server_stats_stop(struct server *server)
{
    if (server->stats.timer)
        loop_timer_cancel(server->loop, server->stats.timer);
    server->stats.timer = 0;
    stats_history_free(&server->stats.series.history);
}

/* ---- what outlives the objects ---- */

void server_stats_channel_closed(struct server *server, struct vhost *vhost, const struct stats_channel *stats)
{
    server->stats.channel_closed++;
    stats_channel_add(&server->stats.closed, stats);
    struct vhost_entry *e = vhost ? server_vhost_entry_of(server, vhost) : NULL;
    if (e)
        stats_channel_add(&e->closed, stats);
}

void server_stats_channel_opened(struct server *server) { server->stats.channel_created++; }

void server_stats_vhost_gone(struct server *server, struct vhost_entry *e)
{
    const struct vhost_churn *churn = vhost_churn(e->vhost);
    server->stats.retired_queue_created += churn->queue_created;
    server->stats.retired_queue_deleted += churn->queue_deleted;
    stats_history_free(&e->series.history);
}

/* ---- totals on demand ---- */

struct totals_walk {
    struct server *server;
    struct vhost_entry *only; /* NULL: every channel */
    struct stats_channel *out;
};

static void add_channel(struct channel *ch, void *arg)
{
    stats_channel_add(arg, &ch->stats);
}

static void add_connection(struct netconn *net, void *arg)
{
    struct totals_walk *w = arg;
    struct connection *conn = connection_of(net);
    if (!conn)
        return;
    if (w->only && connection_vhost(conn) != w->only->vhost)
        return;
    connection_for_each_channel(conn, add_channel, w->out);
}

void server_stats_totals(struct server *server, const char *name, struct stats_channel *out)
{
    struct totals_walk w = {.server = server, .out = out};
    if (name) {
        w.only = server_vhost_entry(server, name, strlen(name));
        if (!w.only) {
            memset(out, 0, sizeof *out);
            return;
        }
        *out = w.only->closed;
    } else {
        *out = server->stats.closed;
    }
    netconn_for_each(server->loop, add_connection, &w);
}
