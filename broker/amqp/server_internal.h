/* broker/amqp/server_internal.h: the server object, shared by server.c (listener, loop
 * phases, alarms, shutdown), server_vhosts.c (virtual hosts, users, definitions) and
 * introspect.c (the admin views). Not for other layers. */
#ifndef WARREN_SERVER_INTERNAL_H
#define WARREN_SERVER_INTERNAL_H

#include "server.h"
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
    bool deleted;         /* delete_vhost: out of the table, freed when the last connection is gone */
    struct vhost_entry *next_retired;
    UT_hash_handle hh;
};

struct server {
    struct event_loop *loop;
    struct server_config config;
    struct netlistener *listener;
    size_t connections;
    bool shutting_down;
    uint64_t shutdown_deadline;
    uint64_t started_ms;
    struct vhost_entry *vhosts;
    struct vhost_entry *retired_vhosts; /* deleted, still used by closing connections */
    struct access *access;
    uint64_t tick_timer;
    uint64_t memory_limit;
    bool memory_alarm;
    struct persistence *persistence;
    struct channel *durable_waiters;
    struct admin *admin;
};

/* server_vhosts.c */
int server_vhosts_init(struct server *server);
void server_vhosts_destroy(struct server *server);
struct vhost_entry *server_vhost_entry(const struct server *server, const char *name, size_t len);
struct vhost_entry *server_vhost_add(struct server *server, const char *name);
uint64_t server_vhosts_tick(struct server *server, uint64_t now);
/* Ends the dead-letter round of every vhost (vhost_dead_letter_round): once per loop pass. */
void server_vhosts_end_pass(struct server *server);
int server_export_definitions(void *ctx, struct table_buf *out);
int server_import_definitions(void *ctx, struct proto_bytes blob);
struct queue *server_find_queue(void *ctx, struct proto_bytes vhost, struct proto_bytes queue);
/* Brings vhosts in line with the access database (creates new ones, retires deleted ones). */
void server_vhosts_sync(struct server *server);

#endif
