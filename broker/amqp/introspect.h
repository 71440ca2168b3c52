/* broker/amqp/introspect.h: read-only views of the running broker, and the few operator
 * actions, for the admin interface (warrenctl). Views are valid only during the callback. */
#ifndef WARREN_INTROSPECT_H
#define WARREN_INTROSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netconn.h"
#include "proto.h"

struct server;

/* Message counters with RabbitMQ's message_stats names, in messages: since the object was
 * created, or for a vhost and the overview since the broker started (closed channels
 * included). An object fills the fields it counts and leaves the others 0:
 *   queue:      publish (entered it), deliver*, get*, redeliver, ack, drop_*;
 *   exchange:   publish_in, publish_out (one per queue reached), return/drop_unroutable;
 *   channel, connection, vhost, overview: publish, confirm, return/drop_unroutable, deliver*,
 *               get*, redeliver, ack.
 * deliver_get = deliver + deliver_no_ack + get + get_no_ack. drop_expired/maxlen/rejected are
 * messages that left a queue unacknowledged by TTL, length limit (or refused by reject-publish),
 * or rejection without requeue (dead-lettered or discarded). */
struct introspect_message_stats {
    uint64_t publish, publish_in, publish_out, confirm, return_unroutable, drop_unroutable;
    uint64_t deliver, deliver_no_ack, get, get_no_ack, get_empty, deliver_get, redeliver, ack;
    uint64_t drop_expired, drop_maxlen, drop_rejected;
};

/* The same counters as per-second rates (RabbitMQ's "<name>_details": {"rate": R}) over the
 * sampler's latest interval (5 s by default). 0 until two samples were taken. */
struct introspect_rates {
    double publish, publish_in, publish_out, confirm, return_unroutable, drop_unroutable;
    double deliver, deliver_no_ack, get, get_no_ack, get_empty, deliver_get, redeliver, ack;
    double drop_expired, drop_maxlen, drop_rejected;
};

struct introspect_connection {
    const char *name;  /* "127.0.0.1:53122 -> 127.0.0.1:5672" */
    const char *peer_host;
    uint16_t peer_port;
    const char *user;
    const char *vhost;
    const char *state; /* "starting", "tuning", "opening", "running", "flow" (paused by flow
                        * control now or in the last 5 s, flow.h), "closing" */
    uint32_t channels;
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat;
    bool blocked;
    const char *client_product; /* from client-properties, "" when absent */
    struct introspect_message_stats message_stats; /* its channels, closed ones included */
    struct introspect_rates message_rates;
    /* Socket figures: bytes received and sent, and recv/send calls that moved bytes (RabbitMQ's
     * recv_oct, send_oct, recv_cnt, send_cnt), and their per-second rates. */
    uint64_t recv_oct, send_oct, recv_cnt, send_cnt;
    double recv_oct_rate, send_oct_rate, recv_cnt_rate, send_cnt_rate;
    struct proto_bytes client_properties; /* start-ok's table contents (empty before) */
    uint64_t connected_at;       /* wall clock, ms since the epoch */
    const char *auth_mechanism;  /* "PLAIN", "AMQPLAIN", "EXTERNAL"; "" before start-ok */
    const char *protocol;        /* "AMQP 0-9-1" or "AMQP 8-0" (connection_protocol_name) */
    bool ssl;                    /* over TLS: tls holds what was negotiated */
    bool direct;                 /* the broker's own client (inner_client.h), which RabbitMQ's
                                  * API lists as its direct connections: type "direct" */
    struct netconn_tls_info tls;
};

struct introspect_channel {
    const char *name;       /* "127.0.0.1:53122 -> 127.0.0.1:5672 (1)" */
    const char *connection; /* connection name */
    uint16_t number;
    const char *user;
    const char *vhost;
    uint32_t consumers;
    uint32_t messages_unacknowledged;
    uint16_t prefetch_count;        /* per-consumer default (global=false) */
    uint16_t global_prefetch_count; /* global=true */
    bool confirm;
    bool transactional;
    struct introspect_message_stats message_stats;
    struct introspect_rates message_rates;
};

struct introspect_consumer {
    const char *vhost;
    struct proto_bytes queue;
    const char *channel; /* channel name as above */
    struct proto_bytes tag;
    bool ack_required;
    uint16_t prefetch_count;
    bool exclusive;
    int32_t priority;
};

struct introspect_queue {
    const char *vhost;
    struct proto_bytes name;
    uint64_t messages_ready, messages_unacknowledged, message_bytes_ready;
    uint32_t consumers;
    bool durable, auto_delete, exclusive;
    const char *type;             /* "classic", "quorum" (the management API's "type") */
    const char *type_module;      /* RabbitMQ's module for it: "rabbit_quorum_queue" */
    bool replicated;              /* a Raft group: the API shows its leader and members, this node */
    bool elsewhere;               /* a classic queue homed on another node of the cluster: its
                                   * counts are the home's, as last reported (cluster_classic.h) */
    bool down;                    /* ... and that node is not running (not heard from lately) */
    /* With a cluster, the node names the API shows (a member's node_name once it sent it, its
     * address before): node, the one holding the messages (a classic queue's home, a quorum
     * queue's leader; "" while no leader is known); members, a quorum queue's group (the
     * cluster's voters); online, those of them running (this node, and the members heard from
     * lately: introspect_nodes). NULL without a cluster: this node, alone. */
    const char *node;
    const char *const *members;
    size_t member_count;
    const char *const *online;
    size_t online_count;
    struct proto_bytes arguments; /* table contents */
    /* Policies applied (RabbitMQ's `policy`, `operator_policy`: NULL when none) and
     * `effective_policy_definition` (table contents, keys without "x-"; empty when none). */
    const char *policy, *operator_policy;
    struct proto_bytes effective_policy_definition;
    struct introspect_message_stats message_stats;
    struct introspect_rates message_rates;
    /* Age in ms of the oldest ready message (the next to go; for a priority queue the oldest of
     * any priority) and the mean age of the ready messages, both counted from when each entered
     * the queue (after a restart: from its publication). Over the messages in memory only: a
     * paged queue's tail on disk is not read (its messages are younger than every one in
     * memory). 0 when no ready message is in memory. */
    uint64_t head_message_age_ms, mean_message_age_ms;
};

struct introspect_exchange {
    const char *vhost;
    struct proto_bytes name;
    const char *type;
    bool durable, auto_delete, internal;
    struct proto_bytes arguments;
    const char *policy, *operator_policy;         /* as for queues */
    struct proto_bytes effective_policy_definition;
    struct introspect_message_stats message_stats;
    struct introspect_rates message_rates;
};

struct introspect_binding {
    const char *vhost;
    struct proto_bytes source; /* "" for the default exchange's implicit bindings */
    const char *destination_kind; /* "queue" or "exchange" */
    struct proto_bytes destination;
    struct proto_bytes routing_key;
    struct proto_bytes arguments;
};

struct introspect_status {
    const char *version;        /* Warren's version */
    uint64_t uptime_ms;
    uint32_t connections, queues, exchanges;
    uint32_t channels, consumers; /* open channels, and consumers on them */
    uint64_t messages_ready, messages_unacknowledged;
    uint64_t messages_paged;    /* of messages_ready, those on disk only (paged queues' tails) */
    uint64_t message_memory_bytes, memory_high_watermark;
    /* The durable store: segment files, their bytes, messages still in some queue, fdatasyncs,
     * segments compacted. */
    uint64_t store_segments, store_bytes, store_live_messages, store_syncs, store_compactions;
    bool memory_alarm, disk_alarm;
    uint64_t pid;
    const char *data_dir;
    const char *listener; /* "0.0.0.0:5672" */
    /* RabbitMQ's overview message_stats: every vhost, closed channels and deleted vhosts
     * included; rates over the sampler's latest interval. */
    struct introspect_message_stats message_stats;
    struct introspect_rates message_rates;
    /* Churn since start (RabbitMQ's churn_rates): objects created and closed or deleted. */
    uint64_t connection_created, connection_closed, channel_created, channel_closed;
    uint64_t queue_created, queue_deleted;
    uint64_t stats_interval_ms; /* the sampler's period */
    uint64_t stats_samples;     /* samples taken since start */
};

/* Fills the broker-wide status. */
void introspect_status(struct server *server, struct introspect_status *out);

/* A node as RabbitMQ's /api/nodes shows it: this node, read now, or another member of the
 * cluster as it last described itself (cluster_nodes.h). A member not heard from lately has
 * running false, its name, and zeros. */
struct introspect_node {
    char name[256];
    bool self, running;
    uint64_t os_pid, uptime_ms, processors;
    uint64_t mem_used, mem_limit, message_memory_bytes;
    uint64_t disk_free, disk_free_limit;
    uint64_t fd_used, fd_total, sockets_used;
    uint64_t store_segments, store_bytes;
    bool mem_alarm, disk_alarm;
    char bind_address[64];
    uint16_t amqp_port, management_port, prometheus_port; /* 0: that listener is off */
    uint16_t amqps_port, https_port;                      /* the TLS listeners; 0: off */
};
/* This node, now. */
void introspect_node_self(struct server *server, struct introspect_node *out);
/* fn for this node first, then for every other member of the cluster (none without one), in
 * the order of the configuration. */
void introspect_nodes(struct server *server, void (*fn)(const struct introspect_node *n, void *arg), void *arg);

/* One vhost's figures (RabbitMQ's /api/vhosts): message_stats of its channels (closed ones
 * included, since the broker started), rates, and the sums over its queues. */
struct introspect_vhost {
    const char *name;
    struct introspect_message_stats message_stats;
    struct introspect_rates message_rates;
    uint64_t messages_ready, messages_unacknowledged; /* summed over its queues, now */
    uint32_t connections, queues, exchanges;
    uint64_t queue_created, queue_deleted; /* churn */
};
/* Calls fn once per vhost (vhost == NULL: every vhost; else only that one). */
void introspect_vhosts(struct server *server, const char *vhost,
                       void (*fn)(const struct introspect_vhost *v, void *arg), void *arg);

/* History (RabbitMQ's "samples": [{sample, timestamp}] for ?msg_rates_age=&msg_rates_incr= and
 * ?lengths_age=&lengths_incr=). One sample per sampler tick (5 s), at most
 * INTROSPECT_HISTORY_MAX (5 minutes); the API picks every n-th for a coarser increment. */
#define INTROSPECT_HISTORY_MAX 60
enum introspect_history_kind {
    INTROSPECT_HISTORY_OVERVIEW, /* the broker: every counter of a vhost, and the depths */
    INTROSPECT_HISTORY_VHOST,    /* one vhost: the same */
    INTROSPECT_HISTORY_QUEUE,    /* one queue: depths, and publish and deliver_get only */
};
struct introspect_sample {
    uint64_t timestamp_ms; /* wall clock, ms since 1970 */
    uint64_t messages_ready, messages_unacknowledged; /* depth at that time */
    /* Running totals at that time (RabbitMQ's "sample"); successive differences over the
     * timestamps give the rate. Fields the kind does not keep are 0. */
    struct introspect_message_stats message_stats;
};
/* Calls fn once with the last min(max, INTROSPECT_HISTORY_MAX) samples, oldest first (count
 * may be 0 before the first sample or for a queue created since); the array is valid during
 * the call. vhost and queue name the object (ignored where the kind does not need them).
 * Returns 0, or -ENOENT when the vhost or queue does not exist. */
int introspect_history(struct server *server, enum introspect_history_kind kind, const char *vhost,
                       struct proto_bytes queue, size_t max,
                       void (*fn)(const struct introspect_sample *samples, size_t count, void *arg), void *arg);

/* Each calls fn once per object (vhost == NULL: every vhost). */
void introspect_connections(struct server *server,
                            void (*fn)(const struct introspect_connection *c, void *arg), void *arg);
void introspect_channels(struct server *server, void (*fn)(const struct introspect_channel *c, void *arg),
                         void *arg);
void introspect_consumers(struct server *server, const char *vhost,
                          void (*fn)(const struct introspect_consumer *c, void *arg), void *arg);
void introspect_queues(struct server *server, const char *vhost,
                       void (*fn)(const struct introspect_queue *q, void *arg), void *arg);
void introspect_exchanges(struct server *server, const char *vhost,
                          void (*fn)(const struct introspect_exchange *x, void *arg), void *arg);
void introspect_bindings(struct server *server, const char *vhost,
                         void (*fn)(const struct introspect_binding *b, void *arg), void *arg);

/* Operator actions. Return 0, -ENOENT when the vhost or queue does not exist. */
int introspect_purge_queue(struct server *server, const char *vhost, struct proto_bytes name, uint64_t *purged);
int introspect_delete_queue(struct server *server, const char *vhost, struct proto_bytes name, uint64_t *deleted);

/* Policies and operator policies (broker/amqp/introspect_policy.c; rules in model/policy.h).
 * Changes apply at once to every matching queue and exchange of the vhost, are saved durably
 * and logged once. */
struct introspect_policy {
    const char *vhost;
    const char *name;
    const char *pattern;  /* POSIX extended regular expression, searched in the object's name */
    const char *apply_to; /* "queues", "classic_queues", "exchanges", "all" (NULL on set: "all") */
    int64_t priority;
    struct proto_bytes definition; /* table contents, RabbitMQ's keys without "x-" */
};
/* Adds or replaces the policy p->name (operator: an operator policy) in p->vhost. Returns 0;
 * -ENOENT when the vhost does not exist; -EINVAL with error (cap bytes) holding RabbitMQ's text
 * ("Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings\n");
 * -ENOMEM. */
int introspect_set_policy(struct server *server, bool operator_policy, const struct introspect_policy *p,
                          char *error, size_t cap);
/* Removes a policy. Returns 0, or -ENOENT when the vhost or the policy does not exist. */
int introspect_clear_policy(struct server *server, const char *vhost, bool operator_policy, const char *name);
/* Calls fn for each policy (operator: each operator policy) of vhost (NULL: every vhost), by
 * vhost then name. */
void introspect_policies(struct server *server, const char *vhost, bool operator_policy,
                         void (*fn)(const struct introspect_policy *p, void *arg), void *arg);

/* vhost limits: "max-connections" (checked at connection.open: 530 "access to vhost '/'
 * refused for user 'guest': connection limit (N) is reached") and "max-queues" (checked at
 * queue.declare of a new queue: 406 "cannot declare queue 'q': queue limit in vhost '/' (N) is
 * reached"). A negative value is no limit; 0 allows none. */
struct introspect_vhost_limits {
    const char *vhost;
    int64_t max_connections, max_queues; /* -1: not set */
};
/* Sets one limit by RabbitMQ's name (a negative value clears it). Returns 0; -ENOENT for an
 * unknown vhost; -EINVAL for an unknown limit name, with error (cap bytes) saying so. */
int introspect_set_vhost_limit(struct server *server, const char *vhost, const char *limit, int64_t value,
                               char *error, size_t cap);
/* Clears one limit (-EINVAL for an unknown name), or every limit when limit is NULL. Returns 0
 * or -ENOENT for an unknown vhost. */
int introspect_clear_vhost_limit(struct server *server, const char *vhost, const char *limit);
/* Calls fn for each vhost (NULL: every vhost) that has at least one limit set. */
void introspect_vhost_limits(struct server *server, const char *vhost,
                             void (*fn)(const struct introspect_vhost_limits *l, void *arg), void *arg);

/* Users, vhosts and permissions are managed through the access model: */
struct access;
/* The broker's user/vhost/permission database (see broker/model/access.h), user limits
 * included. Changes made through it must be followed by introspect_access_changed so they are
 * saved and applied (e.g. a deleted vhost's queues are removed, a deleted user's connections
 * are closed; a lowered user limit closes nothing, it refuses the next connection or channel). */
struct access *introspect_access(struct server *server);
/* Saves the access database durably and applies the consequences of a change; returns 0 or -errno. */
int introspect_access_changed(struct server *server);

#endif
