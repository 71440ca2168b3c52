/* broker/amqp/declare.c: the exchange and queue classes: decode arguments, ask the vhost,
 * answer with the -ok method (unless no-wait). The rules themselves live in the model. */
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

int channel_check_access(struct channel *ch, int what, const char *kind, struct proto_bytes name, uint32_t method_id,
                         struct reply_error *err)
{
    /* The default exchange is the resource "amq.default" to every check (RabbitMQ). */
    if (name.len == 0 && strcmp(kind, "exchange") == 0)
        name = (struct proto_bytes){(const uint8_t *)"amq.default", 11};
    return access_require(server_access(connection_server(ch->conn)), connection_user(ch->conn),
                          vhost_name(ch->vhost), (enum access_kind)what, kind, name, method_id, err);
}

/* RabbitMQ's extra checks when a new exchange names an alternate exchange: read on the new
 * exchange (what it routes can be read through the AE) and write on the AE. */
static int check_alternate_exchange(struct channel *ch, const struct spec_exchange_declare *a, struct reply_error *err)
{
    struct table_value ae;
    if (table_find(a->arguments, "alternate-exchange", &ae) != 1 || ae.type != TABLE_LONGSTR ||
        vhost_exchange_exists(ch->vhost, a->exchange))
        return 0;
    if (channel_check_access(ch, ACCESS_READ, "exchange", a->exchange, SPEC_EXCHANGE_DECLARE, err) != 0 ||
        channel_check_access(ch, ACCESS_WRITE, "exchange", ae.v.bytes, SPEC_EXCHANGE_DECLARE, err) != 0)
        return -1;
    return 0;
}

/* The same for a new queue that names a dead-letter exchange: read on the queue, write on the
 * dead-letter exchange. */
static int check_dead_letter_exchange(struct channel *ch, struct proto_bytes queue, struct proto_bytes arguments,
                                      struct reply_error *err)
{
    struct table_value dlx;
    if (table_find(arguments, "x-dead-letter-exchange", &dlx) != 1 || dlx.type != TABLE_LONGSTR ||
        vhost_queue_find(ch->vhost, queue))
        return 0;
    if (channel_check_access(ch, ACCESS_READ, "queue", queue, SPEC_QUEUE_DECLARE, err) != 0 ||
        channel_check_access(ch, ACCESS_WRITE, "exchange", dlx.v.bytes, SPEC_QUEUE_DECLARE, err) != 0)
        return -1;
    return 0;
}

int channel_exchange_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_EXCHANGE_DECLARE: {
        const struct spec_exchange_declare *a = &m->args.exchange_declare;
        struct exchange_declare d = {
            .name = a->exchange, .type = a->type, .arguments = a->arguments, .passive = a->passive,
            .durable = a->durable, .auto_delete = a->auto_delete, .internal = a->internal,
        };
        if (!a->passive && a->exchange.len &&
            (channel_check_access(ch, ACCESS_CONFIGURE, "exchange", a->exchange, m->id, err) != 0 ||
             check_alternate_exchange(ch, a, err) != 0))
            return -1;
        if (vhost_exchange_declare(ch->vhost, &d, err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_DECLARE_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_DELETE: {
        const struct spec_exchange_delete *a = &m->args.exchange_delete;
        if (vhost_exchange_delete_allowed(ch->vhost, a->exchange, err) != 0 ||
            channel_check_access(ch, ACCESS_CONFIGURE, "exchange", a->exchange, m->id, err) != 0)
            return -1;
        if (vhost_exchange_delete(ch->vhost, a->exchange, a->if_unused, err) != 0)
            return -1;
        return reply(ch, SPEC_EXCHANGE_DELETE_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_BIND: {
        const struct spec_exchange_bind *a = &m->args.exchange_bind;
        if (channel_check_access(ch, ACCESS_WRITE, "exchange", a->destination, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_READ, "exchange", a->source, m->id, err) != 0)
            return -1;
        if (vhost_exchange_bind(ch->vhost, a->destination, a->source, a->routing_key, a->arguments, false, err))
            return -1;
        return reply(ch, SPEC_EXCHANGE_BIND_OK, a->no_wait, err);
    }
    case SPEC_EXCHANGE_UNBIND: {
        const struct spec_exchange_unbind *a = &m->args.exchange_unbind;
        if (channel_check_access(ch, ACCESS_WRITE, "exchange", a->destination, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_READ, "exchange", a->source, m->id, err) != 0)
            return -1;
        if (vhost_exchange_bind(ch->vhost, a->destination, a->source, a->routing_key, a->arguments, true, err))
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
    *name = (struct proto_bytes){(const uint8_t *)ch->last_queue, ch->last_queue_len};
    return 0;
}

int channel_queue_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    void *owner = ch->conn;
    switch (m->id) {
    case SPEC_QUEUE_DECLARE: {
        const struct spec_queue_declare *a = &m->args.queue_declare;
        struct queue_declare d = {
            .name = a->queue, .arguments = a->arguments, .passive = a->passive, .durable = a->durable,
            .exclusive = a->exclusive, .auto_delete = a->auto_delete, .owner = owner,
        };
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
        char generated[VHOST_GENERATED_NAME_LEN + 1];
        if (!a->passive && a->queue.len == 0) {
            /* RabbitMQ names the queue first and checks configure on that name. */
            if (vhost_queue_generate_name(ch->vhost, generated) != 0)
                return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "no randomness for a queue name");
            d.name = (struct proto_bytes){(const uint8_t *)generated, VHOST_GENERATED_NAME_LEN};
            d.server_named = true;
        }
        if (!a->passive && (channel_check_access(ch, ACCESS_CONFIGURE, "queue", d.name, m->id, err) != 0 ||
                            check_dead_letter_exchange(ch, d.name, a->arguments, err) != 0))
            return -1;
        if (vhost_queue_declare(ch->vhost, &d, &q, err) != 0)
            return -1;
        struct proto_bytes name = queue_name(q);
        memcpy(ch->last_queue, name.ptr, name.len);
        ch->last_queue_len = (uint8_t)name.len;
        if (a->no_wait)
            return 0;
        struct spec_method ok = {.id = SPEC_QUEUE_DECLARE_OK};
        ok.args.queue_declare_ok.queue = queue_name(q);
        ok.args.queue_declare_ok.message_count = (uint32_t)queue_ready_count(q);
        ok.args.queue_declare_ok.consumer_count = (uint32_t)queue_consumer_count(q);
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    case SPEC_QUEUE_BIND: {
        const struct spec_queue_bind *a = &m->args.queue_bind;
        struct proto_bytes queue = a->queue;
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_WRITE, "queue", queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_READ, "exchange", a->exchange, m->id, err) != 0)
            return -1;
        if (vhost_queue_bind(ch->vhost, queue, a->exchange, a->routing_key, a->arguments,
                             owner, false, err))
            return -1;
        return reply(ch, SPEC_QUEUE_BIND_OK, a->no_wait, err);
    }
    case SPEC_QUEUE_UNBIND: {
        const struct spec_queue_unbind *a = &m->args.queue_unbind;
        struct proto_bytes queue = a->queue;
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_WRITE, "queue", queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_READ, "exchange", a->exchange, m->id, err) != 0)
            return -1;
        if (vhost_queue_bind(ch->vhost, queue, a->exchange, a->routing_key, a->arguments,
                             owner, true, err))
            return -1;
        return reply(ch, SPEC_QUEUE_UNBIND_OK, false, err);
    }
    case SPEC_QUEUE_PURGE: {
        const struct spec_queue_purge *a = &m->args.queue_purge;
        struct proto_bytes queue = a->queue;
        struct queue *q;
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_READ, "queue", queue, m->id, err) != 0)
            return -1;
        if (vhost_queue_lookup(ch->vhost, queue, owner, &q, err) != 0) {
            err->method_id = m->id;
            return -1;
        }
        uint32_t n = (uint32_t)queue_purge(q);
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
        if (channel_expand_queue_name(ch, &queue, m->id, err) != 0 ||
            channel_check_access(ch, ACCESS_CONFIGURE, "queue", queue, m->id, err) != 0)
            return -1;
        if (vhost_queue_delete(ch->vhost, queue, owner, a->if_unused, a->if_empty, &n, err) != 0)
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
