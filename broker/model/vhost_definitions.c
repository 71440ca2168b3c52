/* broker/model/vhost_definitions.c: the durable definitions of a vhost (exchanges, queues,
 * bindings) as one AMQP field table, for the store to keep and for start-up to recreate.
 * Layout: {"exchanges": [ {name, type, auto_delete, internal, arguments} ... ],
 *          "queues":    [ {name, auto_delete, arguments} ... ],
 *          "bindings":  [ {source, destination, destination_type, routing_key, arguments} ... ]}.
 * Exclusive queues are not kept: they die with their connection, as in RabbitMQ. */
#include <string.h>

#include "queue.h"
#include "table.h"
#include "vhost_internal.h"

static int put_bytes(struct table_buf *t, const char *key, uint8_t type, struct proto_bytes b)
{
    struct table_value v = {.type = type};
    v.v.bytes = b;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* Appends entry (a finished table) as an element of list. */
static int append_table(struct table_buf *list, struct table_buf *entry)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){entry->data, (uint32_t)entry->len};
    int rc = table_buf_put_value(list, &v);
    table_buf_free(entry);
    return rc;
}

static bool queue_is_kept(struct queue *q)
{
    const struct queue_settings *s = queue_settings(q);
    return s->durable && !s->exclusive;
}

struct binding_export {
    struct exchange *source;
    struct table_buf *list;
    int rc;
};

static void export_binding(void *destination, struct proto_bytes key, struct proto_bytes args, void *arg)
{
    struct binding_export *e = arg;
    struct table_buf t = {0};
    struct proto_bytes dest_name;
    const char *dest_type;
    if (destination_is_exchange(destination)) {
        struct exchange *x = destination_exchange(destination);
        if (!x->durable)
            return;
        dest_name = (struct proto_bytes){(const uint8_t *)x->name, x->name_len};
        dest_type = "exchange";
    } else {
        struct queue *q = destination;
        if (!queue_is_kept(q))
            return;
        dest_name = queue_name(q);
        dest_type = "queue";
    }
    struct proto_bytes source = {(const uint8_t *)e->source->name, e->source->name_len};
    e->rc |= put_bytes(&t, "source", TABLE_LONGSTR, source);
    e->rc |= put_bytes(&t, "destination", TABLE_LONGSTR, dest_name);
    e->rc |= put_bytes(&t, "destination_type", TABLE_LONGSTR, proto_bytes_of(dest_type));
    e->rc |= put_bytes(&t, "routing_key", TABLE_LONGSTR, key);
    e->rc |= put_bytes(&t, "arguments", TABLE_TABLE, args);
    e->rc |= append_table(e->list, &t);
}

int vhost_export_definitions(struct vhost *vhost, struct table_buf *out)
{
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0};
    int rc = 0;
    struct exchange *x, *xtmp;
    HASH_ITER(hh, vhost->exchanges, x, xtmp) {
        if (x->durable && !x->builtin) {
            struct table_buf t = {0};
            rc |= put_bytes(&t, "name", TABLE_LONGSTR, (struct proto_bytes){(const uint8_t *)x->name, x->name_len});
            rc |= put_bytes(&t, "type", TABLE_LONGSTR, proto_bytes_of(router_kind_name(x->kind)));
            rc |= table_buf_put_bool(&t, "auto_delete", x->auto_delete);
            rc |= table_buf_put_bool(&t, "internal", x->internal);
            rc |= put_bytes(&t, "arguments", TABLE_TABLE, (struct proto_bytes){x->arguments, x->arguments_len});
            rc |= append_table(&exchanges, &t);
        }
        if (x->durable) {
            struct binding_export e = {.source = x, .list = &bindings};
            router_for_each(x->router, export_binding, &e);
            rc |= e.rc;
        }
    }
    struct queue_slot *slot, *stmp;
    HASH_ITER(hh, vhost->queues, slot, stmp) {
        if (!queue_is_kept(slot->queue))
            continue;
        struct table_buf t = {0};
        rc |= put_bytes(&t, "name", TABLE_LONGSTR, queue_name(slot->queue));
        rc |= table_buf_put_bool(&t, "auto_delete", queue_settings(slot->queue)->auto_delete);
        rc |= put_bytes(&t, "arguments", TABLE_TABLE, queue_arguments(slot->queue));
        rc |= append_table(&queues, &t);
    }
    rc |= put_bytes(out, "exchanges", TABLE_ARRAY, (struct proto_bytes){exchanges.data, (uint32_t)exchanges.len});
    rc |= put_bytes(out, "queues", TABLE_ARRAY, (struct proto_bytes){queues.data, (uint32_t)queues.len});
    rc |= put_bytes(out, "bindings", TABLE_ARRAY, (struct proto_bytes){bindings.data, (uint32_t)bindings.len});
    table_buf_free(&exchanges);
    table_buf_free(&queues);
    table_buf_free(&bindings);
    return rc ? -1 : 0;
}

static struct proto_bytes field_str(struct proto_bytes t, const char *key)
{
    struct table_value v;
    if (table_find(t, key, &v) == 1 && (v.type == TABLE_LONGSTR || v.type == TABLE_TABLE))
        return v.v.bytes;
    return (struct proto_bytes){NULL, 0};
}

static bool field_bool(struct proto_bytes t, const char *key)
{
    struct table_value v;
    return table_find(t, key, &v) == 1 && v.type == TABLE_BOOL && v.v.boolean;
}

static int list_of(struct proto_bytes blob, const char *key, struct table_iter *it)
{
    struct table_value v;
    if (table_find(blob, key, &v) != 1 || v.type != TABLE_ARRAY)
        return -1;
    table_iter_init(it, v.v.bytes);
    return 0;
}

int vhost_import_definitions(struct vhost *vhost, struct proto_bytes blob, size_t *skipped)
{
    struct table_iter it;
    struct table_value v;
    struct reply_error err;
    *skipped = 0;
    if (table_validate(blob) != 0)
        return -1;
    struct vhost_hooks saved = vhost->hooks;
    vhost->hooks.definitions_changed = NULL; /* recreating is not a change */
    if (list_of(blob, "exchanges", &it) == 0) {
        while (array_next(&it, &v) == 1) {
            struct exchange_declare d = {
                .name = field_str(v.v.bytes, "name"), .type = field_str(v.v.bytes, "type"),
                .arguments = field_str(v.v.bytes, "arguments"), .durable = true,
                .auto_delete = field_bool(v.v.bytes, "auto_delete"), .internal = field_bool(v.v.bytes, "internal"),
            };
            if (v.type != TABLE_TABLE || vhost_exchange_declare(vhost, &d, &err) != 0)
                ++*skipped;
        }
    }
    if (list_of(blob, "queues", &it) == 0) {
        while (array_next(&it, &v) == 1) {
            struct queue_declare d = {
                .name = field_str(v.v.bytes, "name"), .arguments = field_str(v.v.bytes, "arguments"),
                .durable = true, .auto_delete = field_bool(v.v.bytes, "auto_delete"),
            };
            struct queue *q;
            if (v.type != TABLE_TABLE || d.name.len == 0 || vhost_queue_declare(vhost, &d, &q, &err) != 0)
                ++*skipped;
        }
    }
    if (list_of(blob, "bindings", &it) == 0) {
        while (array_next(&it, &v) == 1) {
            struct proto_bytes t = v.v.bytes;
            struct proto_bytes type = field_str(t, "destination_type");
            bool to_queue = type.len == 5 && memcmp(type.ptr, "queue", 5) == 0;
            int rc = to_queue ? vhost_queue_bind(vhost, field_str(t, "destination"), field_str(t, "source"),
                                                 field_str(t, "routing_key"), field_str(t, "arguments"), NULL,
                                                 false, &err)
                              : vhost_exchange_bind(vhost, field_str(t, "destination"), field_str(t, "source"),
                                                    field_str(t, "routing_key"), field_str(t, "arguments"), false,
                                                    &err);
            if (v.type != TABLE_TABLE || rc != 0)
                ++*skipped;
        }
    }
    vhost->hooks = saved;
    return 0;
}
