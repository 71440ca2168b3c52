/* broker/amqp/declare.c: the exchange and queue classes: decode arguments, ask the vhost,
 * answer with the -ok method (unless no-wait). The rules themselves live in the model. With a
 * cluster, the methods that change replicated definitions take declare_cluster.c's path. */
#include <string.h>

#include "access.h"
#include "channel_internal.h"
#include "connection.h"
#include "direct_reply.h"
#include "queue.h"
#include "server.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"

static int reply(struct channel *ch, uint32_t id, bool no_wait, struct reply_error *err)
{
    if (no_wait)
        return 0;
    struct spec_method ok = {.id = id};
    return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, id, "out of memory");
}

int actor_check(const struct actor *who, int what, const char *kind, struct proto_bytes name, uint32_t method_id,
                struct reply_error *err)
{
    if (!who->user)
        return 0;
    /* The default exchange is the resource "amq.default" to every check (RabbitMQ). */
    if (name.len == 0 && strcmp(kind, "exchange") == 0)
        name = (struct proto_bytes){(const uint8_t *)"amq.default", 11};
    return access_require(who->access, who->user, who->vhost, (enum access_kind)what, kind, name, method_id, err);
}

struct actor channel_actor(const struct channel *ch)
{
    return (struct actor){server_access(connection_server(ch->conn)), connection_user(ch->conn),
                          vhost_name(ch->vhost)};
}

int channel_check_access(struct channel *ch, int what, const char *kind, struct proto_bytes name, uint32_t method_id,
                         struct reply_error *err)
{
    struct actor who = channel_actor(ch);
    return actor_check(&who, what, kind, name, method_id, err);
}

/* RabbitMQ's extra checks when a new exchange names an alternate exchange: read on the new
 * exchange (what it routes can be read through the AE) and write on the AE. */
static int check_alternate_exchange(const struct actor *who, struct vhost *vhost, const struct exchange_declare *d,
                                    struct reply_error *err)
{
    struct table_value ae;
    if (table_find(d->arguments, "alternate-exchange", &ae) != 1 || ae.type != TABLE_LONGSTR ||
        vhost_exchange_exists(vhost, d->name))
        return 0;
    if (actor_check(who, ACCESS_READ, "exchange", d->name, SPEC_EXCHANGE_DECLARE, err) != 0 ||
        actor_check(who, ACCESS_WRITE, "exchange", ae.v.bytes, SPEC_EXCHANGE_DECLARE, err) != 0)
        return -1;
    return 0;
}

/* The same for a new queue that names a dead-letter exchange: read on the queue, write on the
 * dead-letter exchange. */
static int check_dead_letter_exchange(const struct actor *who, struct vhost *vhost, struct proto_bytes queue,
                                      struct proto_bytes arguments, struct reply_error *err)
{
    struct table_value dlx;
    if (table_find(arguments, "x-dead-letter-exchange", &dlx) != 1 || dlx.type != TABLE_LONGSTR ||
        vhost_queue_find(vhost, queue))
        return 0;
    if (actor_check(who, ACCESS_READ, "queue", queue, SPEC_QUEUE_DECLARE, err) != 0 ||
        actor_check(who, ACCESS_WRITE, "exchange", dlx.v.bytes, SPEC_QUEUE_DECLARE, err) != 0)
        return -1;
    return 0;
}

int declare_exchange_allowed(const struct actor *who, struct vhost *vhost, const struct exchange_declare *d,
                             struct reply_error *err)
{
    if (!d->passive && d->name.len &&
        (actor_check(who, ACCESS_CONFIGURE, "exchange", d->name, SPEC_EXCHANGE_DECLARE, err) != 0 ||
         check_alternate_exchange(who, vhost, d, err) != 0))
        return -1;
    return 0;
}

int declare_exchange_as(const struct actor *who, struct vhost *vhost, const struct exchange_declare *d,
                        struct reply_error *err)
{
    if (declare_exchange_allowed(who, vhost, d, err) != 0)
        return -1;
    return vhost_exchange_declare(vhost, d, err);
}

int delete_exchange_allowed(const struct actor *who, struct vhost *vhost, struct proto_bytes name,
                            struct reply_error *err)
{
    if (vhost_exchange_delete_allowed(vhost, name, err) != 0 ||
        actor_check(who, ACCESS_CONFIGURE, "exchange", name, SPEC_EXCHANGE_DELETE, err) != 0)
        return -1;
    return 0;
}

int delete_exchange_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, bool if_unused,
                       struct reply_error *err)
{
    if (delete_exchange_allowed(who, vhost, name, err) != 0)
        return -1;
    return vhost_exchange_delete(vhost, name, if_unused, err);
}

int bind_allowed(const struct actor *who, bool to_exchange, struct proto_bytes destination, struct proto_bytes source,
                 bool unbind, struct reply_error *err)
{
    uint32_t mid = to_exchange ? (unbind ? SPEC_EXCHANGE_UNBIND : SPEC_EXCHANGE_BIND)
                               : (unbind ? SPEC_QUEUE_UNBIND : SPEC_QUEUE_BIND);
    if (actor_check(who, ACCESS_WRITE, to_exchange ? "exchange" : "queue", destination, mid, err) != 0 ||
        actor_check(who, ACCESS_READ, "exchange", source, mid, err) != 0)
        return -1;
    return 0;
}

int bind_as(const struct actor *who, struct vhost *vhost, bool to_exchange, struct proto_bytes destination,
            struct proto_bytes source, struct proto_bytes key, struct proto_bytes arguments, void *owner, bool unbind,
            struct reply_error *err)
{
    if (bind_allowed(who, to_exchange, destination, source, unbind, err) != 0)
        return -1;
    if (to_exchange)
        return vhost_exchange_bind(vhost, destination, source, key, arguments, unbind, err);
    return vhost_queue_bind(vhost, destination, source, key, arguments, owner, unbind, err);
}

int declare_queue_allowed(const struct actor *who, struct vhost *vhost, const struct queue_declare *d,
                          struct reply_error *err)
{
    if (!d->passive && (actor_check(who, ACCESS_CONFIGURE, "queue", d->name, SPEC_QUEUE_DECLARE, err) != 0 ||
                        check_dead_letter_exchange(who, vhost, d->name, d->arguments, err) != 0))
        return -1;
    return 0;
}

int declare_queue_as(const struct actor *who, struct vhost *vhost, const struct queue_declare *d, struct queue **out,
                     struct reply_error *err)
{
    if (declare_queue_allowed(who, vhost, d, err) != 0)
        return -1;
    return vhost_queue_declare(vhost, d, out, err);
}

int delete_queue_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner, bool if_unused,
                    bool if_empty, uint32_t *count, struct reply_error *err)
{
    if (actor_check(who, ACCESS_CONFIGURE, "queue", name, SPEC_QUEUE_DELETE, err) != 0)
        return -1;
    return vhost_queue_delete(vhost, name, owner, if_unused, if_empty, count, err);
}

int purge_queue_as(const struct actor *who, struct vhost *vhost, struct proto_bytes name, void *owner,
                   uint32_t *count, struct reply_error *err)
{
    struct queue *q;
    if (actor_check(who, ACCESS_READ, "queue", name, SPEC_QUEUE_PURGE, err) != 0)
        return -1;
    if (vhost_queue_lookup(vhost, name, owner, &q, err) != 0) {
        err->method_id = SPEC_QUEUE_PURGE;
        return -1;
    }
    *count = (uint32_t)queue_purge(q);
    return 0;
}

struct exchange_declare exchange_declare_from(const struct spec_exchange_declare *a)
{
    return (struct exchange_declare){
        .name = a->exchange, .type = a->type, .arguments = a->arguments, .passive = a->passive,
        .durable = a->durable, .auto_delete = a->auto_delete, .internal = a->internal,
    };
}

struct queue_declare queue_declare_from(const struct spec_queue_declare *a, void *owner)
{
    return (struct queue_declare){
        .name = a->queue, .arguments = a->arguments, .passive = a->passive, .durable = a->durable,
        .exclusive = a->exclusive, .auto_delete = a->auto_delete, .owner = owner,
    };
}

int channel_exchange_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
#ifdef WARREN_HAVE_CLUSTER
    int rc;
    if (server_cluster(connection_server(ch->conn)) && (rc = declare_cluster_method(ch, m, err)) <= 0)
        return rc;
#endif
    return channel_exchange_method_here(ch, m, err);
}

int channel_exchange_method_here(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_EXCHANGE_DECLARE: {
        const struct spec_exchange_declare *a = &m->args.exchange_declare;
        struct exchange_declare d = exchange_declare_from(a);
        struct actor who = channel_actor(ch);
        if (declare_exchange_as(&who, ch->vhost, &d, err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_DECLARE_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_DELETE: {
        const struct spec_exchange_delete *a = &m->args.exchange_delete;
        struct actor who = channel_actor(ch);
        if (delete_exchange_as(&who, ch->vhost, a->exchange, a->if_unused, err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_DELETE_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_BIND: {
        const struct spec_exchange_bind *a = &m->args.exchange_bind;
        struct actor who = channel_actor(ch);
        if (bind_as(&who, ch->vhost, true, a->destination, a->source, a->routing_key, a->arguments, NULL, false,
                    err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_BIND_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_UNBIND: {
        const struct spec_exchange_unbind *a = &m->args.exchange_unbind;
        struct actor who = channel_actor(ch);
        if (bind_as(&who, ch->vhost, true, a->destination, a->source, a->routing_key, a->arguments, NULL, true,
                    err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_UNBIND_OK, a->no_wait, err);
    }
    default:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    }
}

int channel_expand_queue_name(struct channel *ch, struct proto_bytes *name, uint32_t method_id,
                              struct reply_error *err)
{
    if (name->len)
        return 0;
    if (ch->last_queue_len == 0)
        return reply_fail(err, SPEC_NOT_FOUND, method_id, "no previously declared queue");
    *name = (struct proto_bytes){(const uint8_t *)ch->names->last_queue, ch->last_queue_len};
    return 0;
}

int channel_queue_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
#ifdef WARREN_HAVE_CLUSTER
    int rc;
    if (server_cluster(connection_server(ch->conn)) && (rc = declare_cluster_method(ch, m, err)) <= 0)
        return rc;
#endif
    return channel_queue_method_here(ch, m, err);
}

int channel_queue_declare_here(struct channel *ch, const struct spec_queue_declare *a, struct queue **out,
                               struct reply_error *err)
{
    struct queue_declare d = queue_declare_from(a, ch->conn);
    char generated[VHOST_GENERATED_NAME_LEN + 1];
    if (!a->passive && a->queue.len == 0) {
        /* RabbitMQ names the queue first (if its type allows) and checks configure on that name. */
        if (queue_settings_check_name(a->arguments, true, err) != 0)
            return -1;
        if (vhost_queue_generate_name(ch->vhost, generated) != 0)
            return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_QUEUE_DECLARE, "no randomness for a queue name");
        d.name = (struct proto_bytes){(const uint8_t *)generated, VHOST_GENERATED_NAME_LEN};
        d.server_named = true;
    }
    struct actor who = channel_actor(ch);
    struct channel_names *names = channel_names(ch); /* before the declare: no undo after */
    if (!names)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_QUEUE_DECLARE, "out of memory");
    if (declare_queue_as(&who, ch->vhost, &d, out, err) != 0)
        return -1;
    struct proto_bytes name = queue_name(*out);
    memcpy(names->last_queue, name.ptr, name.len);
    ch->last_queue_len = (uint8_t)name.len;
    return 0;
}

int channel_queue_method_here(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    void *owner = ch->conn;
    switch (m->id) {
    case SPEC_QUEUE_DECLARE: {
        const struct spec_queue_declare *a = &m->args.queue_declare;
        if (a->passive && direct_reply_is_queue(a->queue)) {
            /* RabbitMQ answers a passive declare of the direct reply-to pseudo-queue, which
             * exists nowhere, as if it were an empty queue without consumers. */
            if (a->no_wait)
                return 0;
            struct spec_method ok = {.id = SPEC_QUEUE_DECLARE_OK};
            ok.args.queue_declare_ok.queue = a->queue;
            return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
        }
        struct queue *q;
        if (channel_queue_declare_here(ch, a, &q, err) != 0)
            return -1;
        if (a->no_wait)
            return 0;
        struct spec_method ok = {.id = SPEC_QUEUE_DECLARE_OK};
        ok.args.queue_declare_ok.queue = queue_name(q);
        struct queue_depth depth;
        server_queue_depth(connection_server(ch->conn), ch->vhost, q, &depth);
        ok.args.queue_declare_ok.message_count = (uint32_t)depth.ready;
        ok.args.queue_declare_ok.consumer_count = (uint32_t)depth.consumers;
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    case SPEC_QUEUE_BIND: {
        const struct spec_queue_bind *a = &m->args.queue_bind;
        struct proto_bytes queue = a->queue;
        struct actor who = channel_actor(ch);
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            bind_as(&who, ch->vhost, false, queue, a->exchange, a->routing_key, a->arguments, owner, false, err) != 0)
            return -1;
        return reply(ch, SPEC_QUEUE_BIND_OK, a->no_wait, err);
    }
    case SPEC_QUEUE_UNBIND: {
        const struct spec_queue_unbind *a = &m->args.queue_unbind;
        struct proto_bytes queue = a->queue;
        struct actor who = channel_actor(ch);
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            bind_as(&who, ch->vhost, false, queue, a->exchange, a->routing_key, a->arguments, owner, true, err) != 0)
            return -1;
        return reply(ch, SPEC_QUEUE_UNBIND_OK, false, err);
    }
    case SPEC_QUEUE_PURGE: {
        const struct spec_queue_purge *a = &m->args.queue_purge;
        struct proto_bytes queue = a->queue;
        uint32_t n;
        struct actor who = channel_actor(ch);
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            purge_queue_as(&who, ch->vhost, queue, owner, &n, err) != 0)
            return -1;
        if (a->no_wait)
            return 0;
        struct spec_method ok = {.id = SPEC_QUEUE_PURGE_OK};
        ok.args.queue_purge_ok.message_count = n;
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    case SPEC_QUEUE_DELETE: {
        const struct spec_queue_delete *a = &m->args.queue_delete;
        struct proto_bytes queue = a->queue;
        uint32_t n;
        struct actor who = channel_actor(ch);
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            delete_queue_as(&who, ch->vhost, queue, owner, a->if_unused, a->if_empty, &n, err) != 0)
            return -1;
        if (a->no_wait)
            return 0;
        struct spec_method ok = {.id = SPEC_QUEUE_DELETE_OK};
        ok.args.queue_delete_ok.message_count = n;
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    default:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    }
}
