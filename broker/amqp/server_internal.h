/* broker/amqp/server_internal.h: the server object, shared by server.c (listener, loop
 * phases, alarms, shutdown), server_vhosts.c (virtual hosts, users, definitions) and
 * introspect.c (the admin views). Not for other layers. */
#ifndef WARREN_SERVER_INTERNAL_H
#define WARREN_SERVER_INTERNAL_H

#include "server.h"
#include "access.h"
#include "stats.h"
#include "uthash.h"

struct access;
struct admin;
struct netlistener;
struct table_buf;

/* One virtual host and what the broker keeps beside it. */
struct vhost_entry {
    char name[256];
    struct vhost *vhost;
    struct server *server;
    struct queue_pager pager; /* durable queues' paging through the store (queue.h) */
    uint32_t connections; /* connections opened on it */
    struct stats_channel closed;       /* counters left by its closed channels */
    struct stats_totals_series series; /* the sampler's rates and history of its totals */
    struct stats_channel pass_sum;     /* sampler scratch: totals being summed this pass */
    uint64_t pass_ready, pass_unacked;
    bool deleted;         /* delete_vhost: out of the table, freed when the last connection is gone */
    struct vhost_entry *next_retired;
    UT_hash_handle hh;
};

/* What one user holds open, for the per-user limits; present while any count is above 0. */
struct user_usage {
    uint32_t held[ACCESS_USER_LIMIT_COUNT]; /* connections, channels */
    UT_hash_handle hh;
    char name[]; /* the key */
};

/* The statistics sampler (stats_sampler.c) and the figures that outlive the objects. */
struct server_stats {
    struct stats_clock clock;
    uint64_t interval_ms;     /* between samples (STATS_DEFAULT_INTERVAL_MS) */
    uint64_t timer;
    struct stats_channel closed;       /* counters left by every closed channel, any vhost */
    struct stats_totals_series series; /* broker-wide rates and history */
    /* Churn: objects created and closed since start. Queues of live vhosts are counted by the
     * vhost (vhost_churn); retired_* keeps those of deleted vhosts. */
    uint64_t connection_created, connection_closed, channel_created, channel_closed;
    uint64_t retired_queue_created, retired_queue_deleted;
};

struct server {
    struct event_loop *loop;
    struct server_config config;
    struct netlistener *listener;     /* plain AMQP; NULL with plain_listener = false */
    struct netlistener *tls_listener; /* AMQPS; NULL without a certificate */
    struct tls_context *tls;          /* what tls_listener hands new connections */
    size_t connections;
    bool shutting_down;
    uint64_t shutdown_deadline;
    uint64_t started_ms;
    struct vhost_entry *vhosts;
    struct vhost_entry *retired_vhosts; /* deleted, still used by closing connections */
    struct access *access;
    struct user_usage *user_usage;
    uint64_t tick_timer;
    uint64_t ack_timer; /* the consumer timeout's sweep (server.c); 0: none */
    uint64_t memory_limit;
    bool memory_alarm;
    struct persistence *persistence;
    struct channel *durable_waiters;
    struct admin *admin;
    struct server_stats stats;
    struct cluster_node *cluster; /* NULL: no cluster (main.c sets it after the node started) */
    uint64_t cluster_index;       /* Raft index of the last cluster command applied to the model;
                                   * saved in the definitions blob as "cluster_index" */
    struct cluster_queues *replicas; /* the replicated quorum queues (cluster_queues.h); NULL:
                                      * no cluster */
    struct held_connection *held; /* connections waiting for the start-up read barrier */
    bool catching_up;             /* that barrier is not applied yet (server_cluster_catch_up) */
    uint64_t access_origin;       /* this run's name in its access.set commands (random, non-zero) */
    uint64_t access_local_seq;    /* the last access.set this run proposed (cluster_target.c) */
    struct cluster_wait *cluster_wait; /* the open wait changes proposed now join (cluster_target.h) */
};

/* stats_sampler.c: arms the sampler (every stats.interval_ms) and stops it. */
void server_stats_start(struct server *server);
void server_stats_stop(struct server *server);
/* One sampler pass: a tick of the clock, then every queue, exchange, channel, connection, vhost
 * and the broker are sampled once. Runs on the timer; tests call it directly. */
void server_stats_sample(struct server *server);
/* A vhost entry is being freed: its queue churn is kept in the broker's. */
void server_stats_vhost_gone(struct server *server, struct vhost_entry *e);
/* Totals of the channel counters, now (closed channels plus live ones): of vhost `name`, or
 * of the whole broker for NULL. */
void server_stats_totals(struct server *server, const char *name, struct stats_channel *out);
/* The vhost entry of a vhost in use (live or retired), or NULL. */
struct vhost_entry *server_vhost_entry_of(struct server *server, const struct vhost *vhost);

/* server_vhosts.c */
int server_vhosts_init(struct server *server);
void server_vhosts_destroy(struct server *server);
struct vhost_entry *server_vhost_entry(const struct server *server, const char *name, size_t len);
struct vhost_entry *server_vhost_add(struct server *server, const char *name);
uint64_t server_vhosts_tick(struct server *server, uint64_t now);
/* Ends the dead-letter round of every vhost (vhost_dead_letter_round): once per loop pass. */
void server_vhosts_end_pass(struct server *server);
int server_export_definitions(void *ctx, struct table_buf *out);
/* Appends "access": the access database (access_export's table). 0 or -1. */
int server_export_access(struct server *server, struct table_buf *out);
/* Appends "vhosts": an array of {"name", "definitions"} tables, one per vhost, each vhost's
 * definitions written by export (vhost_export_definitions, or the cluster's replicated set).
 * 0 or -1. */
int server_export_vhosts(struct server *server, int (*export)(struct vhost *, struct table_buf *),
                         struct table_buf *out);
int server_import_definitions(void *ctx, struct proto_bytes blob);
struct queue *server_find_queue(void *ctx, struct proto_bytes vhost, struct proto_bytes queue);
/* Brings vhosts in line with the access database (creates new ones, retires deleted ones). */
void server_vhosts_sync(struct server *server);
/* introspect.c: the consequences of a change of the access database, however it came (a local
 * command, or the cluster's): vhosts in line, connections of deleted users closed. */
void server_access_applied(struct server *server);

#endif
