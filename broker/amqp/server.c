/* broker/amqp/server.c: the server object: it owns the listener and the broker model, accepts
 * connections, and fixes the order of work at the end of every loop pass (before_sleep). */
#include "server.h"

#include "access.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel_internal.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_node.h"
#include "cluster_queues.h"
#include "qq_fsm.h"
#endif
#include "connection.h"
#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "netconn.h"
#include "persistence.h"
#include "server_internal.h"
#include "queue.h"
#include "vhost.h"

#define SHUTDOWN_GRACE_MS 4000
#define SHUTDOWN_POLL_MS 50
#define TICK_MAX_MS 100


struct persistence *server_persistence(const struct server *server) { return server->persistence; }
void server_set_cluster(struct server *server, struct cluster_node *node) { server->cluster = node; }
struct cluster_node *server_cluster(const struct server *server) { return server->cluster; }
uint64_t server_cluster_index(const struct server *server) { return server->cluster_index; }
void server_set_cluster_queues(struct server *server, struct cluster_queues *cq) { server->replicas = cq; }
struct cluster_queues *server_cluster_queues(const struct server *server) { return server ? server->replicas : NULL; }

#ifdef WARREN_HAVE_CLUSTER
struct held_connection {
    struct held_connection *next;
    struct connection *conn;
    struct server *server;
};

/* The connection went away while held. */
static void held_abandon(void *arg)
{
    struct held_connection *h = arg;
    for (struct held_connection **p = &h->server->held; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    free(h);
}

static void propose_catch_up(struct server *server);

static void catch_up_done(void *arg, const struct meta_result *result)
{
    struct server *server = arg;
    if (result->status == -ECANCELED)
        return; /* the node stops */
    if (result->status != 0 && result->status != META_DUPLICATE) {
        if (!cluster_node_is_member(server->cluster))
            log_info("cluster: not a member of the cluster (yet): AMQP connections wait until warrenctl "
                     "join_cluster made this node one and it caught up");
        else
            log_warning("cluster: not caught up with the cluster yet (%s); AMQP connections wait", result->text);
        propose_catch_up(server);
        return;
    }
    log_info("cluster: caught up with the cluster; serving AMQP");
    server->catching_up = false;
    cluster_queues_caught_up(server->replicas);
    while (server->held) {
        struct held_connection *h = server->held;
        server->held = h->next;
        connection_resume(h->conn);
        free(h);
    }
}

static void propose_catch_up(struct server *server)
{
    struct table_buf args = {0};
    if (table_buf_put_string(&args, "vhost", proto_bytes_of("/")) != 0 ||
        cluster_node_propose(server->cluster, "sync", &args, catch_up_done, server) == 0) {
        log_error("cluster: out of memory proposing the start-up read barrier; serving AMQP without it");
        server->catching_up = false;
    }
    table_buf_free(&args);
}

void server_cluster_catch_up(struct server *server)
{
    server->catching_up = true;
    propose_catch_up(server);
}

void server_hold_if_catching_up(struct server *server, struct connection *conn)
{
    if (!server->catching_up)
        return;
    struct held_connection *h = calloc(1, sizeof *h);
    if (!h)
        return; /* served at once rather than not at all */
    *h = (struct held_connection){server->held, conn, server};
    server->held = h;
    connection_wait(conn, held_abandon, h);
}
#else
void server_hold_if_catching_up(struct server *server, struct connection *conn)
{
    (void)server, (void)conn;
}
#endif

void server_queue_depth(const struct server *server, const struct vhost *vhost, const struct queue *q,
                        struct queue_depth *out)
{
#ifdef WARREN_HAVE_CLUSTER
    if (cluster_queues_depth(server->replicas, vhost, q, out))
        return;
#else
    (void)server, (void)vhost;
#endif
    *out = (struct queue_depth){queue_ready_count(q), queue_unacked_count(q), queue_consumer_count(q)};
}

void server_wait_durable(struct server *server, struct channel *ch)
{
    if (ch->durable_waiting)
        return;
    ch->durable_waiting = true;
    ch->durable_prev = NULL;
    ch->durable_next = server->durable_waiters;
    if (server->durable_waiters)
        server->durable_waiters->durable_prev = ch;
    server->durable_waiters = ch;
}

void server_unwait_durable(struct server *server, struct channel *ch)
{
    if (!ch->durable_waiting)
        return;
    if (ch->durable_prev)
        ch->durable_prev->durable_next = ch->durable_next;
    else
        server->durable_waiters = ch->durable_next;
    if (ch->durable_next)
        ch->durable_next->durable_prev = ch->durable_prev;
    ch->durable_waiting = false;
    ch->durable_prev = ch->durable_next = NULL;
}

/* The store made more batches durable: release the confirms waiting for them. */
static void on_durable(void *ctx)
{
    struct server *server = ctx;
    for (struct channel *ch = server->durable_waiters, *next; ch; ch = next) {
        next = ch->durable_next;
        if (!channel_durable_progress(ch))
            server_unwait_durable(server, ch);
    }
}




bool server_memory_alarm(const struct server *server) { return server->memory_alarm; }

const char *server_alarm_reason(const struct server *server)
{
    return persistence_disk_alarm(server->persistence) ? "low on disk" : "low on memory";
}

static void block_one(struct netconn *net, void *arg)
{
    struct server *server = arg;
    struct connection *conn = connection_of(net);
    if (conn)
        connection_set_blocked(conn, server->memory_alarm, server_alarm_reason(server));
}

/* RabbitMQ's resource alarms: memory (bytes held by messages: on above the limit, off again
 * below 90% of it, so it does not flap) and disk (free space under the store's limit). */
static void check_memory(struct server *server)
{
    uint64_t used = message_memory_bytes();
#ifdef WARREN_HAVE_CLUSTER
    used += qq_memory_bytes(); /* replicated quorum queues' messages, held outside the model */
#endif
    bool memory = server->memory_alarm ? used > server->memory_limit / 10 * 9 : used > server->memory_limit;
    bool disk = persistence_disk_alarm(server->persistence);
    bool alarm = memory || disk;
    if (alarm == server->memory_alarm)
        return;
    server->memory_alarm = alarm;
    if (alarm && memory)
        log_warning("memory alarm: messages use %llu bytes, above the high watermark of %llu; blocking publishers",
                    (unsigned long long)used, (unsigned long long)server->memory_limit);
    else if (alarm)
        log_warning("disk alarm: free space below the disk_free_limit; blocking publishers");
    else
        log_info("resource alarm cleared: messages use %llu bytes", (unsigned long long)used);
    netconn_for_each(server->loop, block_one, server);
}

void server_config_defaults(struct server_config *cfg)
{
    *cfg = (struct server_config){
        .listen = true,
        .bind_address = "0.0.0.0",
        .port = 5672,
        .data_dir = "./warren-data",
        .channel_max = 2047,
        .frame_max = 131072,
        .heartbeat = 60,
        .handshake_timeout_ms = 10000,
        .consumer_timeout_ms = 1800000,
        .max_message_size = 128u * 1024 * 1024,
        .default_user = "guest",
        .default_pass = "guest",
        .default_user_loopback_only = true,
        .disk_free_limit = 50ull * 1000 * 1000,
        .segment_bytes = 64ull << 20,
        .queue_ram_messages = 16384,
        .queue_ram_bytes = 32u << 20,
        .flow_queue_bytes = 16ull << 20,
        .stats_interval_ms = STATS_DEFAULT_INTERVAL_MS,
        .management_port = 15672,
        .prometheus_port = 15692,
        .plain_listener = true,
        .tls = {.handshake_timeout_ms = 5000},
        .tls_port = -1,
        .management_tls_port = -1,
        .cluster = {.election_timeout_ms = 1000, .propose_timeout_ms = 10000,
#ifdef WARREN_HAVE_CLUSTER
                    .snapshot_log_bytes = CLUSTER_SNAPSHOT_LOG_BYTES,
#endif
        },
    };
}

const struct server_config *server_config(const struct server *server) { return &server->config; }
struct event_loop *server_loop(const struct server *server) { return server->loop; }
uint16_t server_port(const struct server *server)
{
    return server->listener ? netlistener_port(server->listener) : 0;
}
uint16_t server_tls_port(const struct server *server)
{
    return server->tls_listener ? netlistener_port(server->tls_listener) : 0;
}
struct tls_context *server_tls_context(const struct server *server) { return server->tls; }

uint16_t server_management_tls_port(const struct server *server)
{
    int32_t port = server->config.management_tls_port;
    if (port < 0)
        port = server->config.management_port ? 15671 : 0;
    return server->tls && port > 0 ? (uint16_t)port : 0;
}

int server_reload_tls(struct server *server, char *err, size_t cap)
{
    if (!server->tls) {
        snprintf(err, cap, "TLS is not configured (no tls_certfile)");
        return -1;
    }
    struct tls_context *fresh;
    if (tls_context_load(&server->config.tls, &fresh, err, cap) != 0) {
        log_warning("TLS reload failed, keeping the previous certificate: %s", err);
        return -1;
    }
    if (server->tls_listener)
        netlistener_set_tls(server->tls_listener, fresh);
    tls_context_unref(server->tls);
    server->tls = fresh;
    log_info("TLS certificate, key and CA files reloaded for new connections");
    return 0;
}

static void on_accept(struct netconn *net, void *arg);

/* Opens the AMQPS listener when a certificate is configured. Returns 0 or -1 (logged). */
static int open_tls_listener(struct server *server, const struct server_config *cfg)
{
    if (!cfg->tls.certfile) {
        if (cfg->listen && !cfg->plain_listener) {
            log_error("plain_listener = false and no tls_certfile: there would be no AMQP listener");
            return -1;
        }
        if (cfg->tls_port >= 0)
            log_warning("tls_port is set but tls_certfile is not: no AMQPS listener");
        return 0;
    }
    char err[512];
    if (tls_context_load(&cfg->tls, &server->tls, err, sizeof err) != 0) {
        log_error("TLS: %s", err);
        return -1;
    }
    if (!cfg->listen)
        return 0;
    uint16_t port = cfg->tls_port < 0 ? 5671 : (uint16_t)cfg->tls_port;
    server->tls_listener = netlistener_open(server->loop, cfg->bind_address, port, on_accept, server);
    if (!server->tls_listener) {
        log_error("cannot listen for AMQPS on %s:%u: %s", cfg->bind_address, port, strerror(errno));
        return -1;
    }
    netlistener_set_tls(server->tls_listener, server->tls);
    log_info("listening for AMQP 0-9-1 over TLS on %s:%u", cfg->bind_address,
             netlistener_port(server->tls_listener));
    return 0;
}
void server_connection_opened(struct server *server)
{
    server->connections++;
    server->stats.connection_created++;
}
void server_connection_closed(struct server *server)
{
    server->connections--;
    server->stats.connection_closed++;
}

static void on_accept(struct netconn *net, void *arg)
{
    struct server *server = arg;
    if (server->shutting_down) {
        netconn_close(net);
        return;
    }
    connection_accept(server, net);
}

static int adopt(struct server *server, int fd, const char *user, const char *label)
{
    struct netconn *net = netconn_adopt(server->loop, fd);
    if (!net)
        return -ENOMEM;
    if (server->shutting_down || (user && netconn_set_internal(net, user, label) != 0)) {
        netconn_close(net);
        return server->shutting_down ? -ESHUTDOWN : -ENOMEM;
    }
    return connection_accept(server, net);
}

int server_adopt(struct server *server, int fd) { return adopt(server, fd, NULL, NULL); }

int server_adopt_internal(struct server *server, int fd, const char *user, const char *label)
{
    return adopt(server, fd, user, label);
}

/* The fixed order of each pass: (0) raise or clear the memory alarm, (0b) save changed
 * definitions and hand the pending store batch to the I/O thread (confirms for it go out
 * when it reports the batch durable, in a later pass), (1) write every pending output queue with writev, (2) free the
 * connections whose close finished, (2b) write again what freeing them queued for others (their
 * unacknowledged messages, requeued, delivered to other consumers: RabbitMQ hands them on at
 * once, and the loop may now sleep until its next timer), (3) end the pass's dead-letter round,
 * so that the next pass gets a fresh budget of dead-letter hops (vhost.h). Durable stores will
 * sync before (1) so that confirms only leave once their messages are on disk; (2b) sends no
 * confirm (those wait for the store's report) and deliveries need no sync. */
static void before_sleep(struct event_loop *loop, void *data)
{
    struct server *server = data;
    check_memory(server);
#ifdef WARREN_HAVE_CLUSTER
    cluster_queues_flush(server->replicas); /* what effects asked for while commands applied */
#endif
    persistence_before_sleep(server->persistence);
    netconn_flush_all(loop);
    netconn_reap(loop);
    netconn_flush_all(loop);
    server_vhosts_end_pass(server);
}





/* The consumer timeout (server.h's consumer_timeout_ms): every channel's oldest outstanding
 * delivery is looked at every tenth of the timeout, at least every second and at most every
 * minute (RabbitMQ looks once a minute), so a channel is closed at most that much late. */
struct ack_sweep {
    uint64_t now_ms, timeout_ms;
};

static void sweep_channel(struct channel *ch, void *arg)
{
    const struct ack_sweep *s = arg;
    channel_check_ack_timeout(ch, s->now_ms, s->timeout_ms);
}

static void sweep_connection(struct netconn *net, void *arg)
{
    struct connection *conn = connection_of(net);
    if (conn)
        connection_for_each_channel(conn, sweep_channel, arg);
}

static uint64_t ack_sweep_interval(uint64_t timeout_ms)
{
    uint64_t every = timeout_ms / 10;
    return every < 1000 ? 1000 : every > 60000 ? 60000 : every;
}

static void ack_timeout_tick(struct event_loop *loop, void *data)
{
    struct server *server = data;
    struct ack_sweep s = {loop_now_ms(loop), server->config.consumer_timeout_ms};
    netconn_for_each(loop, sweep_connection, &s);
    server->ack_timer = loop_timer_add(loop, ack_sweep_interval(s.timeout_ms), ack_timeout_tick, server);
}

/* Message TTL and queue x-expires: run at the next deadline, at least every TICK_MAX_MS. */
static void tick(struct event_loop *loop, void *data)
{
    struct server *server = data;
    uint64_t now = loop_now_ms(loop);
    uint64_t next = server_vhosts_tick(server, now);
    uint64_t delay = next <= now ? 1 : next - now;
    if (delay > TICK_MAX_MS)
        delay = TICK_MAX_MS;
    server->tick_timer = loop_timer_add(loop, delay, tick, server);
}

struct server *server_create(struct event_loop *loop, const struct server_config *cfg)
{
    struct server *server = calloc(1, sizeof *server);
    if (!server)
        return NULL;
    server->loop = loop;
    server->config = *cfg;
    server->memory_limit = cfg->memory_high_watermark;
    if (server->memory_limit == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        server->memory_limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 10 * 4 : 1ull << 30;
    }
    server->started_ms = loop_now_ms(loop);
    if (server_vhosts_init(server) != 0) {
        server_vhosts_destroy(server);
        free(server);
        return NULL;
    }
    struct persistence_hooks persist_hooks = {
        .export_definitions = server_export_definitions,
        .import_definitions = server_import_definitions,
        .find_queue = server_find_queue,
        .on_durable = on_durable,
        .ctx = server,
    };
    if (cfg->data_dir && persistence_open(loop, cfg->data_dir, cfg->disk_free_limit, cfg->segment_bytes,
                                          &persist_hooks, &server->persistence) != 0) {
        server_vhosts_destroy(server);
        free(server);
        return NULL;
    }
    bool plain = cfg->listen && cfg->plain_listener;
    if (plain)
        server->listener = netlistener_open(loop, cfg->bind_address, cfg->port, on_accept, server);
    if (plain && !server->listener)
        log_error("cannot listen on %s:%u: %s", cfg->bind_address, cfg->port, strerror(errno));
    if ((plain && !server->listener) || open_tls_listener(server, cfg) != 0) {
        netlistener_close(server->listener);
        netlistener_close(server->tls_listener);
        tls_context_unref(server->tls);
        persistence_close(server->persistence);
        server_vhosts_destroy(server);
        free(server);
        return NULL;
    }
    server->tick_timer = loop_timer_add(loop, TICK_MAX_MS, tick, server);
    if (cfg->consumer_timeout_ms)
        server->ack_timer = loop_timer_add(loop, ack_sweep_interval(cfg->consumer_timeout_ms), ack_timeout_tick,
                                           server);
    server_stats_start(server);
    loop_set_before_sleep(loop, before_sleep, server);
    if (server->listener)
        log_info("listening for AMQP 0-9-1 on %s:%u", cfg->bind_address, netlistener_port(server->listener));
    return server;
}

static void force_close_one(struct netconn *net, void *arg)
{
    (void)arg;
    struct connection *conn = connection_of(net);
    if (conn)
        connection_force_close(conn, "broker forced connection closure with reason 'shutdown'");
    else
        netconn_close(net);
}

static void shutdown_poll(struct event_loop *loop, void *data)
{
    struct server *server = data;
    if (netconn_count(loop) == 0 || loop_now_ms(loop) >= server->shutdown_deadline) {
        loop_stop(loop);
        return;
    }
    loop_timer_add(loop, SHUTDOWN_POLL_MS, shutdown_poll, server);
}

void server_shutdown(struct server *server)
{
    if (server->shutting_down)
        return;
    server->shutting_down = true;
    log_info("shutting down: closing %zu connection(s)", server->connections);
    netlistener_close(server->listener);
    netlistener_close(server->tls_listener);
    server->listener = server->tls_listener = NULL;
    netconn_for_each(server->loop, force_close_one, NULL);
    server->shutdown_deadline = loop_now_ms(server->loop) + SHUTDOWN_GRACE_MS;
    loop_timer_add(server->loop, 0, shutdown_poll, server);
}

static void drop_one(struct netconn *net, void *arg)
{
    (void)arg;
    netconn_close(net);
}

void server_destroy(struct server *server)
{
    if (!server)
        return;
    if (server->listener)
        netlistener_close(server->listener);
    netlistener_close(server->tls_listener);
    /* Connections still alive after the grace period are dropped without ceremony. */
    netconn_for_each(server->loop, drop_one, NULL);
    netconn_destroy_all(server->loop);
    loop_timer_cancel(server->loop, server->tick_timer);
    if (server->ack_timer)
        loop_timer_cancel(server->loop, server->ack_timer);
    server_stats_stop(server);
    persistence_close(server->persistence);
    server->persistence = NULL;
    server_vhosts_destroy(server);
#ifdef WARREN_HAVE_CLUSTER
    cluster_queues_free(server->replicas); /* after the channels, which cancel their keys in it */
#endif
    tls_context_unref(server->tls);
    free(server);
}
