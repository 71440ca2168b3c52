/* broker/amqp/server.h: the AMQP server: listener, connections, the broker model and the
 * order of work in each event-loop pass. */
#ifndef WARREN_SERVER_H
#define WARREN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "proto.h"
#include "tls_context.h"

struct event_loop;
struct server;
struct channel;
struct persistence;

/* The cluster keys (docs/cluster.md); main.c starts the node from them. cluster_port 0: no
 * cluster, and nothing cluster-related runs. */
struct cluster_settings {
    const char *node_name;        /* NULL: "warren@" and the host name */
    uint16_t port;                /* cluster_port: the inter-node listener; 0 = no cluster */
    const char *peers;            /* cluster_peers: the founding members' host:port (or members to join) */
    const char *address;          /* cluster_address: this node's entry in peers; NULL: the one
                                   * entry whose port is cluster_port */
    uint32_t election_timeout_ms; /* cluster_election_timeout_ms: 1000 */
    uint32_t propose_timeout_ms;  /* cluster_propose_timeout_ms: a change not committed by then fails
                                   * (541 "cluster: no quorum"); 0: 10000 */
    uint64_t snapshot_log_bytes;  /* cluster_snapshot_log_bytes: the log grows by this much at least
                                   * between two snapshots: 16 MiB (cluster_node.h) */
    const char *secret_file;      /* cluster_secret_file: the members' shared secret (required) */
    const char *recover;          /* --cluster_recover (command line only): the members of a new
                                   * configuration forced into this node's log at start (libraft's
                                   * raft_recover, after a lost majority); NULL: none */
};

/* Everything an operator can set (command line or --config file). Zero is not valid:
 * start from server_config_defaults. Strings are owned by the caller and must outlive the server. */
struct server_config {
    bool listen;                    /* true: accept TCP on bind_address:port; false: connections
                                     * come only through server_adopt (tests, fuzzers) */
    const char *bind_address;       /* "0.0.0.0" */
    uint16_t port;                  /* 5672 */
    const char *data_dir;           /* "./warren-data"; NULL: no durable store, everything in memory */
    uint16_t channel_max;           /* 2047, proposed in connection.tune */
    uint32_t frame_max;             /* 131072 */
    uint16_t heartbeat;             /* 60 seconds */
    uint32_t handshake_timeout_ms;  /* 10000 */
    uint64_t consumer_timeout_ms;   /* a delivery unacknowledged this long closes its channel
                                     * (406, RabbitMQ's consumer_timeout): 30 minutes; 0: never */
    uint64_t max_message_size;      /* 128 MiB */
    const char *default_user;       /* "guest" */
    const char *default_pass;       /* "guest" */
    bool default_user_loopback_only; /* true, as RabbitMQ's loopback_users */
    uint64_t memory_high_watermark;  /* bytes of messages that trigger connection.blocked; 0 = 40% of RAM */
    uint64_t disk_free_limit;        /* free bytes under data_dir below which publishers are blocked: 50 MB */
    uint64_t segment_bytes;          /* size at which the store starts a new log segment: 64 MiB */
    uint32_t queue_ram_messages;     /* ready messages a durable queue keeps in memory (the rest are
                                      * on disk only, read back ahead of delivery): 16384; 0: all */
    uint64_t queue_ram_bytes;        /* and at most this many bytes of their bodies: 32 MiB; 0: no bound */
    uint64_t flow_queue_bytes;       /* per-publisher flow control (flow.h): a queue with consumers
                                      * holding more ready bytes in memory than this pauses the
                                      * publishers feeding it: 16 MiB; 0: off */
    uint16_t management_port;        /* the HTTP management API's port (main.c opens it): 15672; 0 off */
    uint16_t prometheus_port;        /* Prometheus metrics: 15692; 0 off */
    uint32_t stats_interval_ms;      /* statistics sampling (RabbitMQ's collect_statistics_interval):
                                      * 5000; 0 means the default */
    bool plain_listener;             /* true: accept plain AMQP on port (false: only AMQPS) */
    struct tls_settings tls;         /* certificate, key, CA, checks; certfile NULL: no TLS */
    int32_t tls_port;                /* AMQPS port; -1: 5671 when tls.certfile is set, else none */
    int32_t management_tls_port;     /* HTTPS management API; -1: 15671 when tls.certfile is set
                                      * and management_port is on; 0: a free port (main.c) */
    struct cluster_settings cluster;
};

/* Fills cfg with RabbitMQ-like defaults. */
void server_config_defaults(struct server_config *cfg);

/* Creates the server, opens the store (unless data_dir is NULL) and starts listening (when
 * cfg->listen). Returns NULL (after logging why) on failure. */
struct server *server_create(struct event_loop *loop, const struct server_config *cfg);

/* Port actually bound (useful with port 0); 0 without a listener. */
uint16_t server_port(const struct server *server);
/* The AMQPS port actually bound; 0 without a TLS listener. */
uint16_t server_tls_port(const struct server *server);
/* The HTTPS management port: management_tls_port, or 15671 when it is -1 and the plain
 * management API is on; 0 without a TLS certificate or when turned off. */
uint16_t server_management_tls_port(const struct server *server);
/* The TLS settings in force, loaded (a borrowed reference), or NULL when TLS is off. */
struct tls_context *server_tls_context(const struct server *server);
/* Reads the certificate, key and CA files again for connections accepted from now on; open
 * connections keep what they negotiated. Returns 0, or -1 with the reason in err[0..cap)
 * (the previous files then stay in force). */
int server_reload_tls(struct server *server, char *err, size_t cap);

/* Serves AMQP on fd, a connected non-blocking stream socket (one end of a socketpair), as if
 * the listener had accepted it. Takes fd (closed on failure). Returns 0 or -errno. */
int server_adopt(struct server *server, int fd);
/* The same for the broker's own client acting for user (inner_client.h): the connection logs
 * in by SASL EXTERNAL as user, counts as loopback and is named after label. */
int server_adopt_internal(struct server *server, int fd, const char *user, const char *label);

/* Begins a clean shutdown: stop accepting, send connection.close 320 CONNECTION_FORCED to every
 * connection, and stop the loop once they are gone (or after a short grace period). */
void server_shutdown(struct server *server);

/* Frees the server and everything it owns. Call after loop_run returned. */
void server_destroy(struct server *server);

/* For the AMQP layer's own files. */
/* connection.open: the vhost named `name` (counted as used by one more connection), or NULL
 * when it does not exist. server_close_vhost releases it when the connection goes. */
struct vhost *server_open_vhost(struct server *server, struct proto_bytes name);
void server_close_vhost(struct server *server, struct vhost *vhost);
/* The vhost's max-connections limit when that many connections are already open on it (so one
 * more must be refused), else -1 (no limit, room left, or no such vhost). */
int64_t server_vhost_connection_limit_reached(const struct server *server, struct proto_bytes name);
/* Per-user limits (access.h, enum access_user_limit). server_user_limit_reached returns the
 * user's limit when the user already holds that many connections or channels (so one more must
 * be refused), else -1. server_user_count adds delta (+1 or -1) to what the user holds; every
 * +1 must be matched by a -1 when the connection or channel goes. */
int64_t server_user_limit_reached(const struct server *server, const char *user, enum access_user_limit limit);
void server_user_count(struct server *server, const char *user, enum access_user_limit limit, int delta);
/* Users, vhosts and permissions (broker/model/access.h). */
struct access *server_access(const struct server *server);
/* The durable store glue (NULL when persistence is off). */
struct persistence *server_persistence(const struct server *server);
/* Puts ch on the list of channels waiting for durable batches (idempotent), or takes it off. */
void server_wait_durable(struct server *server, struct channel *ch);
void server_unwait_durable(struct server *server, struct channel *ch);
/* "low on memory" or "low on disk" while an alarm is on. */
const char *server_alarm_reason(const struct server *server);
/* True while message memory is above the high watermark. */
bool server_memory_alarm(const struct server *server);
const struct server_config *server_config(const struct server *server);
struct event_loop *server_loop(const struct server *server);
/* Connection bookkeeping: count of live AMQP connections (for shutdown). */
void server_connection_opened(struct server *server);
/* Statistics: a channel was created; a channel of a connection on vhost (NULL: none) is going
 * away, and its counters are kept in the vhost's and the broker's totals (stats_sampler.c). */
struct stats_channel;
void server_stats_channel_opened(struct server *server);
void server_stats_channel_closed(struct server *server, struct vhost *vhost, const struct stats_channel *stats);
void server_connection_closed(struct server *server);

/* The cluster node this server's metadata is replicated by (cluster_node.h), or NULL when no
 * cluster is configured (then nothing cluster-related runs). main.c sets it once the node has
 * started and clears it before stopping the node. */
struct cluster_node;
void server_set_cluster(struct server *server, struct cluster_node *node);
struct cluster_node *server_cluster(const struct server *server);
/* The registry of replicated quorum queues (cluster_queues.h), created with it; NULL when no
 * cluster runs. The server frees it. */
struct cluster_queues;
void server_set_cluster_queues(struct server *server, struct cluster_queues *cq);
struct cluster_queues *server_cluster_queues(const struct server *server);
/* A cluster node that starts holds every AMQP connection (input paused) until a read barrier
 * it proposes is applied here: its copy of the definitions then holds everything committed
 * before it started, so no publish is routed against a stale copy (a queue declared while the
 * node was down taken for missing, the message dropped as unroutable and yet confirmed). The
 * barrier is proposed again until it succeeds (no quorum: connections wait, and the handshake
 * timeout closes them). main.c calls it once the node runs; connection.c asks whether to hold. */
void server_cluster_catch_up(struct server *server);
struct connection;
void server_hold_if_catching_up(struct server *server, struct connection *conn);
/* A queue's depth as clients see it: the model's counts, or for a replicated quorum queue this
 * node's copy of the cluster's (cluster_queues.h). */
struct queue;
struct vhost;
struct queue_depth {
    size_t ready, unacked, consumers;
};
void server_queue_depth(const struct server *server, const struct vhost *vhost, const struct queue *q,
                        struct queue_depth *out);
/* The Raft log index of the last cluster command applied to the model: read back from the
 * definitions blob at start (0 when it holds none), so the node replays only what came after. */
uint64_t server_cluster_index(const struct server *server);
#endif
