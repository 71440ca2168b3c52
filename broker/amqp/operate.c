/* broker/amqp/operate.c: the management API's changes to the broker (see operate.h), made
 * through the checked functions the AMQP methods use, acting for a user who has no channel. */
#include "operate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "arguments.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_queues.h"
#include "cluster_target.h"
#endif
#include "channel_internal.h"
#include "connection.h"
#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "names.h"
#include "queue.h"
#include "server_internal.h"
#include "spec.h"
#include "vhost.h"

/* The vhost and the actor for user in it; NULL after filling err with 404. */
static struct vhost *open_as(struct server *server, const char *user, const char *vhost, struct actor *who,
                             uint32_t method_id, struct reply_error *err)
{
    struct vhost_entry *e = server_vhost_entry(server, vhost, strlen(vhost));
    if (!e) {
        reply_fail(err, SPEC_NOT_FOUND, method_id, "no vhost '%s'", vhost);
        return NULL;
    }
    *who = (struct actor){server->access, user, e->name};
    return e->vhost;
}

static uint64_t now_ms(const struct server *server)
{
    return loop_now_ms(server->loop);
}

/* With a cluster, and an answer that waits for the cluster (operate_wait_open), the objects'
 * changes go through the log first (operate.h): checked here, proposed, and made by the
 * command's apply, on this node as on the others. */
bool operate_through_log(const struct server *server)
{
#ifdef WARREN_HAVE_CLUSTER
    return server->cluster != NULL && server->cluster_wait != NULL;
#else
    (void)server;
    return false;
#endif
}

void operate_replicate(struct server *server, const char *op, const char *vhost, struct table_buf *args, int rc)
{
#ifdef WARREN_HAVE_CLUSTER
    if (server->cluster) {
        rc |= table_buf_put_string(args, "vhost", proto_bytes_of(vhost));
        if (rc == 0) {
            cluster_target_propose_change(server, op, args);
            return;
        }
        log_error("cluster: out of memory: %s made here does not reach the other nodes", op);
    }
#else
    (void)server, (void)op, (void)vhost, (void)rc;
#endif
    table_buf_free(args);
}

struct cluster_wait *operate_wait_open(struct server *server)
{
#ifdef WARREN_HAVE_CLUSTER
    return cluster_wait_open(server);
#else
    (void)server;
    return NULL;
#endif
}

bool operate_wait_close(struct server *server, struct cluster_wait *w, operate_wait_fn done, void *arg)
{
#ifdef WARREN_HAVE_CLUSTER
    return cluster_wait_close(server, w, done, arg);
#else
    (void)server, (void)w, (void)done, (void)arg;
    return false;
#endif
}

static int put_table(struct table_buf *t, const char *key, struct proto_bytes value)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = value;
    return table_buf_put_field(t, key, strlen(key), &v);
}

int operate_declare_queue(struct server *server, const char *user, const char *vhost, const struct queue_declare *d,
                          bool *created, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_QUEUE_DECLARE, err);
    if (!v)
        return -1;
    struct queue_declare declare = *d;
    declare.owner = NULL;
    declare.server_named = false;
    *created = vhost_queue_find(v, d->name) == NULL;
    struct queue *q;
    if (operate_through_log(server)) {
        if (declare_queue_allowed(&who, v, &declare, err) != 0 || vhost_queue_declare_check(v, &declare, err) != 0)
            return -1;
    } else if (declare_queue_as(&who, v, &declare, &q, err) != 0) {
        return -1;
    } else {
        queue_touch(q, now_ms(server));
    }
    struct table_buf args = {0};
    int rc = table_buf_put_string(&args, "name", d->name) | table_buf_put_bool(&args, "durable", d->durable) |
             table_buf_put_bool(&args, "auto_delete", d->auto_delete) | put_table(&args, "arguments", d->arguments) |
             table_buf_put_bool(&args, "server_named", false);
#ifdef WARREN_HAVE_CLUSTER
    /* made here: this node is its home (cluster_classic.h), unless the queue had one already */
    if (server->replicas)
        rc |= table_buf_put_string(&args, "home", proto_bytes_of(cluster_queues_node_name(server->replicas)));
#endif
    operate_replicate(server, "queue.declare", vhost, &args, rc);
    return 0;
}

#ifdef WARREN_HAVE_CLUSTER
/* A delete with conditions of a classic queue homed on another node: judged once its home gave
 * its counts (cluster_queues_fetch_depth), then proposed into the request's wait. */
struct counted_delete {
    struct server *server;
    struct cluster_wait *wait;
    bool if_unused, if_empty;
    char vhost[NAME_MAX_LEN + 1];
    uint8_t name_len;
    uint8_t name[NAME_MAX_LEN];
};

static void delete_when_counted(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b, (void)result; /* the home down: the counts it gave last stand */
    struct counted_delete *c = a;
    struct proto_bytes name = {c->name, c->name_len};
    struct vhost_entry *e = server_vhost_entry(c->server, c->vhost, strlen(c->vhost));
    struct queue *q = e ? vhost_queue_find(e->vhost, name) : NULL;
    struct queue_depth depth = {0};
    struct reply_error err;
    if (q)
        server_queue_depth(c->server, e->vhost, q, &depth);
    bool refused = q && vhost_queue_delete_check(e->vhost, q, depth.consumers, depth.ready, c->if_unused,
                                                 c->if_empty, &err) != 0;
    struct table_buf args = {0};
    int rc = table_buf_put_string(&args, "name", name) | table_buf_put_string(&args, "vhost", proto_bytes_of(c->vhost));
    if (refused || rc != 0)
        cluster_wait_propose_held(c->server, c->wait, NULL, &args, refused ? err.code : -ENOMEM,
                                  refused ? err.text : "out of memory");
    else
        cluster_wait_propose_held(c->server, c->wait, "queue.delete", &args, 0, NULL);
    free(c);
}

/* 1 when q's conditions wait for its home's counts (the delete then follows from there), 0 when
 * they can be judged here, -1 when out of memory. */
static int delete_after_counting(struct server *server, const char *vhost, struct vhost *v, struct queue *q,
                                 bool if_unused, bool if_empty)
{
    if (!(if_unused || if_empty) || !queue_elsewhere(q))
        return 0;
    struct counted_delete *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    struct proto_bytes name = queue_name(q);
    *c = (struct counted_delete){.server = server, .if_unused = if_unused, .if_empty = if_empty,
                                 .name_len = (uint8_t)name.len};
    snprintf(c->vhost, sizeof c->vhost, "%s", vhost);
    memcpy(c->name, name.ptr, name.len);
    c->wait = cluster_wait_hold(server);
    if (cluster_queues_fetch_depth(server->replicas, v, q, delete_when_counted, c, 0) == 0)
        delete_when_counted(c, 0, &(struct meta_result){0}); /* its counts are this node's after all */
    return 1;
}
#endif

int operate_delete_queue(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                         bool if_unused, bool if_empty, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_QUEUE_DELETE, err);
    if (!v)
        return -1;
    struct queue *q = vhost_queue_find(v, name);
    if (!q)
        return reply_fail(err, SPEC_NOT_FOUND, SPEC_QUEUE_DELETE, "no queue '%.*s' in vhost '%s'", (int)name.len,
                          (const char *)name.ptr, vhost);
    uint32_t count;
    if (operate_through_log(server)) {
        /* The apply deletes unconditionally (cluster_target.c): the conditions are judged here,
         * on this node's counts, or on a classic queue's home's, asked for first (below). */
        if (actor_check(&who, ACCESS_CONFIGURE, "queue", name, SPEC_QUEUE_DELETE, err) != 0 ||
            vhost_queue_lookup(v, name, NULL, &q, err) != 0)
            return -1;
#ifdef WARREN_HAVE_CLUSTER
        int counting = delete_after_counting(server, vhost, v, q, if_unused, if_empty);
        if (counting != 0)
            return counting > 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_QUEUE_DELETE, "out of memory");
#endif
        struct queue_depth depth = {0};
        server_queue_depth(server, v, q, &depth);
        if (vhost_queue_delete_check(v, q, depth.consumers, depth.ready, if_unused, if_empty, err) != 0)
            return -1;
    } else if (delete_queue_as(&who, v, name, NULL, if_unused, if_empty, &count, err) != 0) {
        return -1;
    }
    struct table_buf args = {0};
    operate_replicate(server, "queue.delete", vhost, &args, table_buf_put_string(&args, "name", name));
    return 0;
}

int operate_purge_queue(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                        uint32_t *purged, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_QUEUE_PURGE, err);
    if (!v)
        return -1;
    uint32_t count;
    if (purge_queue_as(&who, v, name, NULL, &count, err) != 0)
        return -1;
#ifdef WARREN_HAVE_CLUSTER
    /* A replicated quorum queue's messages are in the cluster's log, not in the model: purged
     * there, on every node (the count is not waited for; RabbitMQ's API answers 204 anyway). */
    struct queue *q = vhost_queue_find(v, name);
    if (q && cluster_queues_replicated(server->replicas, q) &&
        cluster_queues_purge(server->replicas, v, q, NULL, NULL, 0) == 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_QUEUE_PURGE, "out of memory");
#endif
    if (purged)
        *purged = count;
    return 0;
}

int operate_declare_exchange(struct server *server, const char *user, const char *vhost,
                             const struct exchange_declare *d, bool *created, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_EXCHANGE_DECLARE, err);
    if (!v)
        return -1;
    *created = !vhost_exchange_exists(v, d->name);
    if (operate_through_log(server)
            ? declare_exchange_allowed(&who, v, d, err) != 0 || vhost_exchange_declare_check(v, d, err) != 0
            : declare_exchange_as(&who, v, d, err) != 0)
        return -1;
    struct table_buf args = {0};
    int rc = table_buf_put_string(&args, "name", d->name) | table_buf_put_string(&args, "type", d->type) |
             table_buf_put_bool(&args, "durable", d->durable) | table_buf_put_bool(&args, "auto_delete", d->auto_delete) |
             table_buf_put_bool(&args, "internal", d->internal) | put_table(&args, "arguments", d->arguments);
    operate_replicate(server, "exchange.declare", vhost, &args, rc);
    return 0;
}

int operate_delete_exchange(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                            bool if_unused, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_EXCHANGE_DELETE, err);
    if (!v)
        return -1;
    if (!vhost_exchange_exists(v, name))
        return reply_fail(err, SPEC_NOT_FOUND, SPEC_EXCHANGE_DELETE, "no exchange '%.*s' in vhost '%s'",
                          (int)name.len, (const char *)name.ptr, vhost);
    /* Through the log, if-unused is judged by the apply, alike on every node. */
    if (operate_through_log(server) ? delete_exchange_allowed(&who, v, name, err) != 0
                                    : delete_exchange_as(&who, v, name, if_unused, err) != 0)
        return -1;
    struct table_buf args = {0};
    operate_replicate(server, "exchange.delete", vhost, &args,
              table_buf_put_string(&args, "name", name) | table_buf_put_bool(&args, "if_unused", if_unused));
    return 0;
}

int operate_bind(struct server *server, const char *user, const char *vhost, bool to_exchange,
                 struct proto_bytes destination, struct proto_bytes source, struct proto_bytes key,
                 struct proto_bytes arguments, bool unbind, struct reply_error *err)
{
    struct actor who;
    uint32_t mid = to_exchange ? SPEC_EXCHANGE_BIND : SPEC_QUEUE_BIND;
    struct vhost *v = open_as(server, user, vhost, &who, mid, err);
    if (!v)
        return -1;
    /* Through the log, whether both ends exist is judged by the apply, after the changes
     * proposed before this one (a definitions import declares, then binds). */
    struct queue *q = to_exchange ? NULL : vhost_queue_find(v, destination);
    if (q && operate_through_log(server) && vhost_queue_lookup(v, destination, NULL, &q, err) != 0) {
        err->method_id = mid; /* another connection's exclusive queue: 405, as without a cluster */
        return -1;
    }
    if (operate_through_log(server)
            ? bind_allowed(&who, to_exchange, destination, source, unbind, err) != 0
            : bind_as(&who, v, to_exchange, destination, source, key, arguments, NULL, unbind, err) != 0)
        return -1;
    struct table_buf args = {0};
    int rc = table_buf_put_string(&args, to_exchange ? "destination" : "queue", destination) |
             table_buf_put_string(&args, to_exchange ? "source" : "exchange", source) |
             table_buf_put_string(&args, "routing_key", key) | put_table(&args, "arguments", arguments);
    const char *op = to_exchange ? (unbind ? "exchange.unbind" : "exchange.bind") : (unbind ? "queue.unbind" : "queue.bind");
    operate_replicate(server, op, vhost, &args, rc);
    return 0;
}

/* The checks content_header (publish.c) makes of a client's properties that a message built
 * here could also fail. */
static int check_properties(const char *user, const struct spec_basic_properties *props, struct reply_error *err)
{
    if (user && (props->flags & SPEC_BASIC_USER_ID_FLAG) &&
        (props->user_id.len != strlen(user) || memcmp(props->user_id.ptr, user, props->user_id.len) != 0))
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "user_id property set to '%.*s' but authenticated user was '%s'", (int)props->user_id.len,
                          (const char *)props->user_id.ptr, user);
    const char *route_header;
    uint8_t route_type;
    if ((props->flags & SPEC_BASIC_HEADERS_FLAG) &&
        message_check_sender_routes(props->headers, &route_header, &route_type) != 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "invalid message: {unacceptable_type_in_header,\"%s\",%s}", route_header,
                          arguments_type_name(route_type));
    return 0;
}

int operate_publish(struct server *server, const char *user, const char *vhost, struct proto_bytes exchange,
                    struct proto_bytes key, const struct spec_basic_properties *props, const uint8_t *body,
                    size_t body_len, bool *routed, struct reply_error *err)
{
    struct actor who;
    struct vhost *v = open_as(server, user, vhost, &who, SPEC_BASIC_PUBLISH, err);
    if (!v)
        return -1;
    if (exchange.len > 255 || key.len > 255)
        return reply_fail(err, SPEC_FRAME_ERROR, SPEC_BASIC_PUBLISH, "exchange name or routing key too long");
    if (body_len > server->config.max_message_size)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "message size %zu is larger than configured max size %llu", body_len,
                          (unsigned long long)server->config.max_message_size);
    if (actor_check(&who, ACCESS_WRITE, "exchange", exchange, SPEC_BASIC_PUBLISH, err) != 0 ||
        check_properties(user, props, err) != 0)
        return -1;
    struct spec_content_header h = {.class_id = SPEC_CLASS_BASIC, .body_size = body_len, .props = *props};
    /* Fourteen properties: at most 13 short strings, the headers table and fixed fields. */
    size_t cap = 64 + 13 * 256 + props->headers.len;
    uint8_t *header = malloc(cap);
    if (!header)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory");
    long n = spec_content_header_encode(&h, header, cap);
    if (n < 0) {
        free(header);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH, "cannot encode the properties: %s",
                          proto_strerror((int)n));
    }
    struct message *msg = message_create_decoded(exchange, key, (struct proto_bytes){header, (uint32_t)n}, props,
                                                 body_len);
    free(header);
    if (!msg)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory for a %zu-byte message",
                          body_len);
    if (!msg->has_expiration && (props->flags & SPEC_BASIC_EXPIRATION_FLAG)) {
        message_release(msg);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH, "invalid expiration '%.*s'",
                          (int)props->expiration.len, (const char *)props->expiration.ptr);
    }
    if (body_len)
        memcpy(msg->body, body, body_len);
    struct vhost_route_memo memo = {0};
    struct route_set targets = {0};
    bool accepted;
    int rc = publish_route_message(v, &memo, &targets, msg, now_ms(server), false, routed, &accepted, 0, NULL,
                                   server_cluster_queues(server), NULL, err);
    route_set_free(&targets);
    message_release(msg);
    if (rc == 0 && !accepted)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH,
                          "Unable to publish message. Check queue limits.");
    return rc;
}

int operate_close_connection(struct server *server, const char *name, const char *reason)
{
    struct connection *conn = connection_find(server, name);
    if (!conn)
        return -ENOENT;
    connection_force_close(conn, reason);
    return 0;
}
