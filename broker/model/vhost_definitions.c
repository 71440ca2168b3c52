/* broker/model/vhost_definitions.c: the durable definitions of a vhost (exchanges, queues,
 * bindings, policies, limits) as one AMQP field table, for the store to keep and for start-up
 * to recreate.
 * Layout: {"exchanges": [ {name, type, auto_delete, internal, arguments} ... ],
 *          "queues":    [ {name, auto_delete, arguments} ... ],
 *          "bindings":  [ {source, destination, destination_type, routing_key, arguments} ... ],
 *          "policies", "operator_policies": [ {name, pattern, apply-to, priority (long),
 *                                              definition (table)} ... ],
 *          "limits":    {"max-connections": long, "max-queues": long} (only those set)}.
 * The last three came later: a blob without them loads with no policies and no limits.
 * Exclusive queues are not kept: they die with their connection, as in RabbitMQ (the cluster's
 * replicated state has them, marked "exclusive": docs/cluster.md). Importing checks every entry
 * before it reaches the model (see "import" below). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* What is exported: the durable definitions (the store's), or every replicated one (the
 * cluster's: transient exchanges and queues too, with a "durable" field, and exclusive queues,
 * marked "exclusive", which every node holds a copy of to route publishes to their connection's
 * node: cluster_classic.h). */
static bool queue_is_kept(struct queue *q, bool replicated)
{
    const struct queue_settings *s = queue_settings(q);
    return replicated || (s->durable && !s->exclusive);
}

struct binding_export {
    struct exchange *source;
    struct table_buf *list;
    bool replicated;
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
        if (!x->durable && !e->replicated)
            return;
        dest_name = (struct proto_bytes){(const uint8_t *)x->name, x->name_len};
        dest_type = "exchange";
    } else {
        struct queue *q = destination;
        if (!queue_is_kept(q, e->replicated))
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

struct policy_export {
    struct table_buf list;
    int rc;
};

static void export_policy(const struct policy_spec *spec, void *arg)
{
    struct policy_export *e = arg;
    struct table_buf t = {0};
    struct table_value priority = {.type = TABLE_INT64};
    priority.v.i64 = spec->priority;
    e->rc |= put_bytes(&t, "name", TABLE_LONGSTR, proto_bytes_of(spec->name));
    e->rc |= put_bytes(&t, "pattern", TABLE_LONGSTR, proto_bytes_of(spec->pattern));
    e->rc |= put_bytes(&t, "apply-to", TABLE_LONGSTR, proto_bytes_of(spec->apply_to));
    e->rc |= table_buf_put_field(&t, "priority", 8, &priority);
    e->rc |= put_bytes(&t, "definition", TABLE_TABLE, spec->definition);
    e->rc |= append_table(&e->list, &t);
}

/* The definitions' list of each policy kind, by enum policy_kind. */
static const char *const policy_lists[] = {"policies", "operator_policies"};

/* Policies of both kinds and the limits that are set. */
static int export_policies_and_limits(struct vhost *vhost, struct table_buf *out)
{
    int rc = 0;
    for (int kind = POLICY_USER; kind <= POLICY_OPERATOR; kind++) {
        struct policy_export e = {.rc = 0};
        vhost_for_each_policy(vhost, (enum policy_kind)kind, export_policy, &e);
        rc |= e.rc | put_bytes(out, policy_lists[kind], TABLE_ARRAY,
                               (struct proto_bytes){e.list.data, (uint32_t)e.list.len});
        table_buf_free(&e.list);
    }
    struct table_buf limits = {0};
    for (int i = 0; i < VHOST_LIMIT_COUNT; i++) {
        struct table_value v = {.type = TABLE_INT64};
        v.v.i64 = vhost_limit_get(vhost, (enum vhost_limit)i);
        const char *name = vhost_limit_name((enum vhost_limit)i);
        if (v.v.i64 >= 0)
            rc |= table_buf_put_field(&limits, name, strlen(name), &v);
    }
    rc |= put_bytes(out, "limits", TABLE_TABLE, (struct proto_bytes){limits.data, (uint32_t)limits.len});
    table_buf_free(&limits);
    return rc;
}

static int export_objects(struct vhost *vhost, struct table_buf *out, bool replicated)
{
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0};
    int rc = 0;
    struct exchange *x, *xtmp;
    HASH_ITER(hh, vhost->exchanges, x, xtmp) {
        if ((x->durable || replicated) && !x->builtin) {
            struct table_buf t = {0};
            rc |= put_bytes(&t, "name", TABLE_LONGSTR, (struct proto_bytes){(const uint8_t *)x->name, x->name_len});
            rc |= put_bytes(&t, "type", TABLE_LONGSTR, proto_bytes_of(router_kind_name(x->kind)));
            if (replicated)
                rc |= table_buf_put_bool(&t, "durable", x->durable);
            rc |= table_buf_put_bool(&t, "auto_delete", x->auto_delete);
            rc |= table_buf_put_bool(&t, "internal", x->internal);
            rc |= put_bytes(&t, "arguments", TABLE_TABLE, (struct proto_bytes){x->arguments, x->arguments_len});
            rc |= append_table(&exchanges, &t);
        }
        if (x->durable || replicated) {
            struct binding_export e = {.source = x, .list = &bindings, .replicated = replicated};
            router_for_each(x->router, export_binding, &e);
            rc |= e.rc;
        }
    }
    struct queue_slot *slot, *stmp;
    HASH_ITER(hh, vhost->queues, slot, stmp) {
        if (!queue_is_kept(slot->queue, replicated))
            continue;
        struct table_buf t = {0};
        rc |= put_bytes(&t, "name", TABLE_LONGSTR, queue_name(slot->queue));
        if (replicated)
            rc |= table_buf_put_bool(&t, "durable", queue_settings(slot->queue)->durable);
        if (replicated && queue_settings(slot->queue)->exclusive)
            rc |= table_buf_put_bool(&t, "exclusive", true);
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
    return rc;
}

int vhost_export_definitions(struct vhost *vhost, struct table_buf *out)
{
    int rc = export_objects(vhost, out, false);
    rc |= export_policies_and_limits(vhost, out);
    return rc ? -1 : 0;
}

int vhost_export_replicated(struct vhost *vhost, struct table_buf *out)
{
    int rc = export_objects(vhost, out, true);
    rc |= export_policies_and_limits(vhost, out);
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

/* A string field copied out as a C string (cap bytes with the NUL): no zero byte, not longer. */
static bool get_c_string(struct entry *e, const char *key, bool required, char *out, size_t cap)
{
    struct proto_bytes b;
    out[0] = '\0';
    if (!get_string(e, key, required, &b))
        return false;
    if (b.len >= cap || (b.len && memchr(b.ptr, 0, b.len))) {
        fail(e, "'%s' of %u bytes: longer than %zu bytes or holding a zero byte", key, b.len, cap - 1);
        return false;
    }
    if (b.len)
        memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
    return true;
}

/* Policies go through vhost_policy_set, which validates them as it validates an operator's. */
static void import_policy_of(struct entry *e, enum policy_kind kind)
{
    char name[POLICY_NAME_MAX + 1], pattern[POLICY_PATTERN_MAX + 1], apply_to[32];
    char error[POLICY_ERROR_MAX];
    struct policy_spec spec = {.name = name, .pattern = pattern, .apply_to = apply_to};
    struct table_value v;
    if (!get_c_string(e, "name", true, name, sizeof name) || !get_c_string(e, "pattern", true, pattern, sizeof pattern) ||
        !get_c_string(e, "apply-to", false, apply_to, sizeof apply_to) ||
        !get_table(e, "definition", &spec.definition))
        return;
    if (!apply_to[0])
        spec.apply_to = NULL;
    int found = table_find(e->fields, "priority", &v);
    if (found != 0 && !(found == 1 && v.type != TABLE_TIMESTAMP && table_value_to_int(&v, &spec.priority))) {
        fail(e, "'priority' is not an integer");
        return;
    }
    int rc = vhost_policy_set(e->import->vhost, kind, &spec, error, sizeof error);
    if (rc == -1) {
        /* One line in the log: RabbitMQ's wrapping ("Validation failed", blank lines) dropped. */
        const char *text = strncmp(error, "Validation failed\n\n", 19) == 0 ? error + 19 : error;
        fail(e, "%.*s", (int)strcspn(text, "\n"), text);
    }
    else if (rc != 0)
        fail(e, "out of memory");
}

static void import_policy(struct entry *e) { import_policy_of(e, POLICY_USER); }
static void import_operator_policy(struct entry *e) { import_policy_of(e, POLICY_OPERATOR); }

/* The limits table: each known limit an integer; anything else is skipped with a log line. */
static void import_limits(struct import *im, struct proto_bytes blob)
{
    struct table_value v;
    int found = table_find(blob, "limits", &v);
    if (found == 0)
        return;
    struct entry e = {.import = im, .list = "limits"};
    if (found != 1 || v.type != TABLE_TABLE) {
        fail(&e, "not a table");
        report(&e);
        return;
    }
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    table_iter_init(&it, v.v.bytes);
    for (size_t index = 0; table_next(&it, &key, &value) == 1; index++) {
        struct entry one = {.import = im, .list = "limits", .index = index};
        char name[32] = "";
        enum vhost_limit limit;
        int64_t n;
        if (key.len < sizeof name)
            memcpy(name, key.ptr, key.len);
        if (key.len >= sizeof name || memchr(name, 0, key.len) || vhost_limit_parse(name, &limit) != 0)
            fail(&one, "unknown limit");
        else if (value.type == TABLE_TIMESTAMP || !table_value_to_int(&value, &n))
            fail(&one, "'%s' is not an integer", name);
        else
            vhost_limit_set(im->vhost, limit, n);
        if (one.why[0])
            report(&one);
    }
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
    /* Policies first, so that what is recreated gets them at declare; limits last, as they
     * only refuse new objects and the saved ones existed under them already. */
    import_list(&im, blob, "policies", import_policy);
    import_list(&im, blob, "operator_policies", import_operator_policy);
    import_list(&im, blob, "exchanges", import_exchange);
    import_list(&im, blob, "queues", import_queue);
    import_list(&im, blob, "bindings", import_binding);
    import_limits(&im, blob);
    vhost->hooks = saved;
    if (im.logged > IMPORT_LOG_MAX)
        log_warning("definitions of vhost '%s': %zu more entries skipped, not logged one by one",
                    name_quote(proto_bytes_of(vhost->name), name), im.logged - IMPORT_LOG_MAX);
    *skipped = im.skipped;
    return 0;
}

/* ---- replacing policies and limits (a cluster's state) ---- */

struct policy_names {
    struct proto_bytes list; /* the state's list of this kind */
    char **extra;            /* local names the list lacks (malloc'ed) */
    size_t count, cap;
    bool failed;
};

static bool listed(struct proto_bytes list, const char *name)
{
    struct table_iter it;
    struct table_value item, v;
    table_iter_init(&it, list);
    while (array_next(&it, &item) == 1)
        if (item.type == TABLE_TABLE && table_find(item.v.bytes, "name", &v) == 1 && v.type == TABLE_LONGSTR &&
            proto_bytes_is(v.v.bytes, name))
            return true;
    return false;
}

static void collect_extra_policy(const struct policy_spec *spec, void *arg)
{
    struct policy_names *n = arg;
    if (listed(n->list, spec->name))
        return;
    if (n->count == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 8;
        char **more = realloc(n->extra, cap * sizeof *more);
        if (!more) {
            n->failed = true;
            return;
        }
        n->extra = more;
        n->cap = cap;
    }
    if (!(n->extra[n->count] = strdup(spec->name)))
        n->failed = true;
    else
        n->count++;
}

int vhost_replace_policies_and_limits(struct vhost *vhost, struct proto_bytes blob, size_t *skipped)
{
    static void (*const importers[])(struct entry *) = {import_policy, import_operator_policy};
    *skipped = 0;
    if (table_validate(blob) != 0)
        return -1;
    struct import im = {.vhost = vhost};
    for (int kind = POLICY_USER; kind <= POLICY_OPERATOR; kind++) {
        struct table_value v;
        if (table_find(blob, policy_lists[kind], &v) != 1 || v.type != TABLE_ARRAY)
            continue; /* a state from before policies were in it: the local ones stay */
        struct policy_names n = {.list = v.v.bytes};
        vhost_for_each_policy(vhost, (enum policy_kind)kind, collect_extra_policy, &n);
        for (size_t i = 0; i < n.count; i++) {
            vhost_policy_clear(vhost, (enum policy_kind)kind, n.extra[i]);
            free(n.extra[i]);
        }
        free(n.extra);
        if (n.failed)
            im.skipped++;
        import_list(&im, blob, policy_lists[kind], importers[kind]);
    }
    struct table_value limits;
    if (table_find(blob, "limits", &limits) == 1 && limits.type == TABLE_TABLE) {
        for (int i = 0; i < VHOST_LIMIT_COUNT; i++) {
            const char *name = vhost_limit_name((enum vhost_limit)i);
            struct table_value v;
            if (table_find(limits.v.bytes, name, &v) == 0 && vhost_limit_get(vhost, (enum vhost_limit)i) >= 0)
                vhost_limit_set(vhost, (enum vhost_limit)i, -1); /* unset in the state */
        }
        import_limits(&im, blob);
    }
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
