/* broker/amqp/introspect.h: read-only views of the running broker, and the few operator
 * actions, for the admin interface (warrenctl). Views are valid only during the callback. */
#ifndef WARREN_INTROSPECT_H
#define WARREN_INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct server;

struct introspect_connection {
    const char *name;  /* "127.0.0.1:53122 -> 127.0.0.1:5672" */
    const char *peer_host;
    uint16_t peer_port;
    const char *user;
    const char *vhost;
    const char *state; /* "starting", "tuning", "opening", "running", "closing" */
    uint32_t channels;
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat;
    bool blocked;
    const char *client_product; /* from client-properties, "" when absent */
    struct proto_bytes client_properties; /* start-ok's table contents (empty before) */
    uint64_t connected_at;       /* wall clock, ms since the epoch */
    const char *auth_mechanism;  /* "PLAIN", "AMQPLAIN"; "" before start-ok */
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
    struct proto_bytes arguments; /* table contents */
};

struct introspect_exchange {
    const char *vhost;
    struct proto_bytes name;
    const char *type;
    bool durable, auto_delete, internal;
    struct proto_bytes arguments;
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
};

/* Fills the broker-wide status. */
void introspect_status(struct server *server, struct introspect_status *out);

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

/* Users, vhosts and permissions are managed through the access model: */
struct access;
/* The broker's user/vhost/permission database (see broker/model/access.h). Changes made
 * through it must be followed by introspect_access_changed so they are saved and applied
 * (e.g. a deleted vhost's queues are removed, a deleted user's connections are closed). */
struct access *introspect_access(struct server *server);
/* Saves the access database durably and applies the consequences of a change; returns 0 or -errno. */
int introspect_access_changed(struct server *server);

#endif
