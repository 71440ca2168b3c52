/* broker/model/vhost_definitions.c: the durable definitions of a vhost (exchanges, queues,
 * bindings) as one AMQP field table, for the store to keep and for start-up to recreate.
 * Layout: {"exchanges": [ {name, type, auto_delete, internal, arguments} ... ],
 *          "queues":    [ {name, auto_delete, arguments} ... ],
 *          "bindings":  [ {source, destination, destination_type, routing_key, arguments} ... ]}.
 * Exclusive queues are not kept: they die with their connection, as in RabbitMQ. Importing
 * checks every entry before it reaches the model (see "import" below). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "names.h"
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

/* ---- import ----
 * The blob was read back from disk: it is checked as if a stranger wrote it. table_validate
 * bounds every length, type and nesting level first; then each entry must have fields of the
 * right types, names that names.h accepts and keys of at most 255 bytes, or it is skipped with
 * one log line saying which vhost, list, position and why. The model's own declare and bind
 * rules (reserved names, types, arguments, equivalence) come after, as for a client. */

#define IMPORT_LOG_MAX 50 /* skipped entries logged one by one per vhost; the rest are counted */

struct import {
    struct vhost *vhost;
    size_t skipped, logged;
};

/* One entry of a list, and the first reason found to skip it. */
struct entry {
    struct import *import;
    const char *list;
    size_t index;
    struct proto_bytes fields;
    char why[REPLY_TEXT_MAX + 64];
};

static void fail(struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct entry *e, const char *fmt, ...)
{
    if (e->why[0])
        return; /* the first reason is the one reported */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
    for (char *c = e->why; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?'; /* reply texts quote names, which may hold any octet but zero */
}

static void report(struct entry *e)
{
    struct import *im = e->import;
    im->skipped++;
    if (im->logged++ >= IMPORT_LOG_MAX)
        return;
    char vhost[NAME_QUOTE_SIZE], name[NAME_QUOTE_SIZE] = "";
    struct table_value v;
    const char *key = strcmp(e->list, "bindings") == 0 ? "destination" : "name";
    if (e->fields.len && table_find(e->fields, key, &v) == 1 && v.type == TABLE_LONGSTR)
        name_quote(v.v.bytes, name);
    log_warning("definitions of vhost '%s': %s entry %zu%s%s%s skipped: %s",
                name_quote(proto_bytes_of(im->vhost->name), vhost), e->list, e->index, name[0] ? " ('" : "", name,
                name[0] ? "')" : "", e->why);
}

/* A long-string field; absent is an error when required, else empty. */
static bool get_string(struct entry *e, const char *key, bool required, struct proto_bytes *out)
{
    struct table_value v;
    int found = table_find(e->fields, key, &v);
    *out = (struct proto_bytes){NULL, 0};
    if (found == 1 && v.type == TABLE_LONGSTR) {
        *out = v.v.bytes;
        return true;
    }
    if (found == 0 && !required)
        return true;
    fail(e, found == 1 ? "'%s' is not a string" : found == 0 ? "'%s' is missing" : "'%s' is unreadable", key);
    return false;
}

/* A required exchange or queue name (names.h). */
static bool get_name(struct entry *e, const char *key, struct proto_bytes *out)
{
    const char *why;
    if (!get_string(e, key, true, out))
        return false;
    if (name_check(*out, false, &why) == 0)
        return true;
    fail(e, "'%s' of %u bytes: %s", key, out->len, why);
    return false;
}

/* An optional field-table field (absent: empty). Its contents were validated with the blob. */
static bool get_table(struct entry *e, const char *key, struct proto_bytes *out)
{
    struct table_value v;
    int found = table_find(e->fields, key, &v);
    *out = (struct proto_bytes){NULL, 0};
    if (found == 1 && v.type == TABLE_TABLE)
        *out = v.v.bytes;
    else if (found != 0)
        fail(e, "'%s' is not a table", key);
    return !e->why[0];
}

/* An optional boolean field (absent: false). */
static bool get_bool(struct entry *e, const char *key, bool *out)
{
    struct table_value v;
    int found = table_find(e->fields, key, &v);
    *out = false;
    if (found == 1 && v.type == TABLE_BOOL)
        *out = v.v.boolean;
    else if (found != 0)
        fail(e, "'%s' is not a boolean", key);
    return !e->why[0];
}

static void import_exchange(struct entry *e)
{
    struct exchange_declare d = {.durable = true};
    struct reply_error err;
    if (get_name(e, "name", &d.name) && get_string(e, "type", true, &d.type) &&
        get_bool(e, "auto_delete", &d.auto_delete) && get_bool(e, "internal", &d.internal) &&
        get_table(e, "arguments", &d.arguments) && vhost_exchange_declare(e->import->vhost, &d, &err) != 0)
        fail(e, "%s", err.text);
}

static void import_queue(struct entry *e)
{
    /* A stored name was accepted when it was declared; an "amq." one can only have been made
     * by the server (a durable server-named queue), so it may keep its reserved prefix. */
    struct queue_declare d = {.durable = true, .server_named = true};
    struct reply_error err;
    struct queue *q;
    if (get_name(e, "name", &d.name) && get_bool(e, "auto_delete", &d.auto_delete) &&
        get_table(e, "arguments", &d.arguments) && vhost_queue_declare(e->import->vhost, &d, &q, &err) != 0)
        fail(e, "%s", err.text);
}

static void import_binding(struct entry *e)
{
    struct proto_bytes source, destination, type, key, arguments;
    struct reply_error err;
    if (!get_name(e, "source", &source) || !get_name(e, "destination", &destination) ||
        !get_string(e, "destination_type", true, &type) || !get_string(e, "routing_key", false, &key) ||
        !get_table(e, "arguments", &arguments))
        return;
    bool to_queue = proto_bytes_is(type, "queue");
    if (key.len > ROUTER_MAX_KEY)
        fail(e, "'routing_key' of %u bytes: longer than 255 bytes", key.len);
    else if (!to_queue && !proto_bytes_is(type, "exchange"))
        fail(e, "'destination_type' is neither 'queue' nor 'exchange'");
    else if (to_queue ? vhost_queue_bind(e->import->vhost, destination, source, key, arguments, NULL, false, &err)
                      : vhost_exchange_bind(e->import->vhost, destination, source, key, arguments, false, &err))
        fail(e, "%s", err.text);
}

/* Feeds each element of the list field `list` (absent: nothing to do) to one. */
static void import_list(struct import *im, struct proto_bytes blob, const char *list, void (*one)(struct entry *))
{
    struct table_value v;
    int found = table_find(blob, list, &v);
    if (found == 0)
        return;
    if (found != 1 || v.type != TABLE_ARRAY) {
        char vhost[NAME_QUOTE_SIZE];
        im->skipped++;
        if (im->logged++ < IMPORT_LOG_MAX)
            log_warning("definitions of vhost '%s': '%s' is not a list; none of it recreated",
                        name_quote(proto_bytes_of(im->vhost->name), vhost), list);
        return;
    }
    struct table_iter it;
    struct table_value item;
    table_iter_init(&it, v.v.bytes);
    for (size_t index = 0; array_next(&it, &item) == 1; index++) {
        struct entry e = {.import = im, .list = list, .index = index};
        if (item.type == TABLE_TABLE) {
            e.fields = item.v.bytes;
            one(&e);
        } else {
            fail(&e, "not a table");
        }
        if (e.why[0])
            report(&e);
    }
}

int vhost_import_definitions(struct vhost *vhost, struct proto_bytes blob, size_t *skipped)
{
    char name[NAME_QUOTE_SIZE];
    *skipped = 0;
    int rc = table_validate(blob);
    if (rc != 0) {
        log_error("definitions of vhost '%s' are malformed (%s); none recreated",
                  name_quote(proto_bytes_of(vhost->name), name), proto_strerror(rc));
        return -1;
    }
    struct import im = {.vhost = vhost};
    struct vhost_hooks saved = vhost->hooks;
    vhost->hooks.definitions_changed = NULL; /* recreating is not a change */
    import_list(&im, blob, "exchanges", import_exchange);
    import_list(&im, blob, "queues", import_queue);
    import_list(&im, blob, "bindings", import_binding);
    vhost->hooks = saved;
    if (im.logged > IMPORT_LOG_MAX)
        log_warning("definitions of vhost '%s': %zu more entries skipped, not logged one by one",
                    name_quote(proto_bytes_of(vhost->name), name), im.logged - IMPORT_LOG_MAX);
    *skipped = im.skipped;
    return 0;
}

int vhost_definitions_next(struct table_iter *it, struct proto_bytes *name, struct proto_bytes *definitions,
                           const char **why)
{
    struct table_value item, v;
    *name = *definitions = (struct proto_bytes){NULL, 0};
    *why = NULL;
    if (array_next(it, &item) != 1)
        return 0; /* the end (malformed cannot happen after table_validate, and would end it too) */
    if (item.type != TABLE_TABLE) {
        *why = "not a table";
        return -1;
    }
    if (table_find(item.v.bytes, "name", &v) != 1 || v.type != TABLE_LONGSTR) {
        *why = "'name' is missing or not a string";
        return -1;
    }
    *name = v.v.bytes;
    if (name_check(*name, false, why) != 0)
        return -1;
    if (table_find(item.v.bytes, "definitions", &v) != 1 || v.type != TABLE_TABLE) {
        *why = "'definitions' is missing or not a table";
        return -1;
    }
    *definitions = v.v.bytes;
    return 1;
}
