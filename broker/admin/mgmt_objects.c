/* broker/admin/mgmt_objects.c: what the object resources (queues, exchanges, bindings,
 * connections) share: RabbitMQ's mapping of an AMQP error onto an HTTP answer, who an
 * operation acts for, argument tables from JSON, message properties both ways, and the JSON of
 * queues, exchanges and bindings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "mgmt_internal.h"
#include "reply.h"
#include "spec.h"
#include "table.h"

void mgmt_amqp_error(struct mgmt_call *call, const struct reply_error *err)
{
    /* RabbitMQ's direct_request: the explanation without "CODE_NAME - ". */
    const char *text = err->text, *dash = strstr(text, " - ");
    if (dash)
        text = dash + 3;
    switch (err->code) {
    case SPEC_NOT_FOUND:
        mgmt_fail(call, 404, "not_found", "%s", text);
        break;
    case SPEC_ACCESS_REFUSED:
    case SPEC_NOT_ALLOWED:
        mgmt_fail(call, 401, "not_authorised", "Access refused.");
        break;
    default:
        mgmt_fail(call, 400, "bad_request", "%s", text);
    }
}

/* RabbitMQ runs these requests as AMQP methods of the user, so its permissions apply to
 * administrators too; only the admin socket's operator ("" user) acts unchecked. */
const char *mgmt_actor(const struct mgmt_call *call)
{
    return *call->user ? call->user : NULL;
}

struct proto_bytes mgmt_segment_bytes(const struct mgmt_call *call, size_t i)
{
    return (struct proto_bytes){(const uint8_t *)call->seg[i].s, (uint32_t)call->seg[i].len};
}

struct proto_bytes mgmt_exchange_segment(const struct mgmt_call *call, size_t i)
{
    struct proto_bytes b = mgmt_segment_bytes(call, i);
    if (b.len == 11 && memcmp(b.ptr, "amq.default", 11) == 0)
        b.len = 0;
    return b;
}

int mgmt_arguments(struct mgmt_call *call, const json_t *arguments, struct table_buf *out)
{
    char why[256];
    if (mgmt_table_from_json(arguments, out, why, sizeof why) != 0) {
        table_buf_free(out);
        mgmt_fail(call, 400, "bad_request", "%s", why);
        return -1;
    }
    return 0;
}

int mgmt_json_bool(struct mgmt_call *call, const char *key, bool fallback, bool *out)
{
    json_t *v = mgmt_body(call, key);
    *out = fallback;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "false") == 0)) {
        *out = strcmp(json_string_value(v), "true") == 0;
        return 0;
    }
    mgmt_fail(call, 400, "bad_request", "{not_boolean,%s}", key);
    return -1;
}

/* ---- message properties ---------------------------------------------------------------------- */

struct string_property {
    const char *name;
    uint16_t flag;
    size_t offset;
};

#define PROPERTY(n, f) {#n, SPEC_BASIC_##f##_FLAG, offsetof(struct spec_basic_properties, n)}
static const struct string_property string_properties[] = {
    PROPERTY(content_type, CONTENT_TYPE), PROPERTY(content_encoding, CONTENT_ENCODING),
    PROPERTY(correlation_id, CORRELATION_ID), PROPERTY(reply_to, REPLY_TO),
    PROPERTY(expiration, EXPIRATION), PROPERTY(message_id, MESSAGE_ID),
    PROPERTY(type, TYPE), PROPERTY(user_id, USER_ID), PROPERTY(app_id, APP_ID),
};

json_t *mgmt_properties(const struct spec_basic_properties *p)
{
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof string_properties / sizeof string_properties[0]; i++) {
        const struct string_property *s = &string_properties[i];
        if (p->flags & s->flag)
            json_object_set_new(o, s->name, mgmt_bytes(*(const struct proto_bytes *)((const char *)p + s->offset)));
    }
    if (p->flags & SPEC_BASIC_DELIVERY_MODE_FLAG)
        json_object_set_new(o, "delivery_mode", json_integer(p->delivery_mode));
    if (p->flags & SPEC_BASIC_PRIORITY_FLAG)
        json_object_set_new(o, "priority", json_integer(p->priority));
    if (p->flags & SPEC_BASIC_TIMESTAMP_FLAG)
        json_object_set_new(o, "timestamp", json_integer((json_int_t)p->timestamp));
    if (p->flags & SPEC_BASIC_HEADERS_FLAG)
        json_object_set_new(o, "headers", mgmt_table(p->headers));
    return o;
}

/* An integer property given as a number or a numeric string (RabbitMQ takes both). */
static bool integer_value(const json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*json_string_value(v) && *end == '\0') {
            *out = n;
            return true;
        }
    }
    return false;
}

int mgmt_properties_from_json(struct mgmt_call *call, const json_t *o, struct spec_basic_properties *p,
                              struct table_buf *headers)
{
    memset(p, 0, sizeof *p);
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o)) {
        mgmt_fail(call, 400, "bad_request", "properties must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof string_properties / sizeof string_properties[0]; i++) {
            const struct string_property *s = &string_properties[i];
            if (strcmp(key, s->name) != 0)
                continue;
            known = true;
            if (!json_is_string(v) || json_string_length(v) > 255) {
                mgmt_fail(call, 400, "bad_request", "property %s must be a string of at most 255 bytes", key);
                return -1;
            }
            p->flags |= s->flag;
            *(struct proto_bytes *)((char *)p + s->offset) =
                (struct proto_bytes){(const uint8_t *)json_string_value(v), (uint32_t)json_string_length(v)};
        }
        if (known)
            continue;
        json_int_t n;
        if (strcmp(key, "headers") == 0) {
            if (mgmt_arguments(call, v, headers) != 0)
                return -1;
            p->flags |= SPEC_BASIC_HEADERS_FLAG;
            p->headers = (struct proto_bytes){headers->data, (uint32_t)headers->len};
        } else if ((strcmp(key, "delivery_mode") == 0 || strcmp(key, "priority") == 0) && integer_value(v, &n) &&
                   n >= 0 && n <= 255) {
            if (key[0] == 'd') {
                p->flags |= SPEC_BASIC_DELIVERY_MODE_FLAG;
                p->delivery_mode = (uint8_t)n;
            } else {
                p->flags |= SPEC_BASIC_PRIORITY_FLAG;
                p->priority = (uint8_t)n;
            }
        } else if (strcmp(key, "timestamp") == 0 && integer_value(v, &n) && n >= 0) {
            p->flags |= SPEC_BASIC_TIMESTAMP_FLAG;
            p->timestamp = (uint64_t)n;
        } else {
            mgmt_fail(call, 400, "bad_request", "invalid property %s", key);
            return -1;
        }
    }
    return 0;
}

/* ---- objects ------------------------------------------------------------------------------ */

json_t *mgmt_exchange_json(const struct introspect_exchange *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", mgmt_bytes(x->name));
    json_object_set_new(o, "vhost", mgmt_string(x->vhost, strlen(x->vhost)));
    json_object_set_new(o, "type", json_string(x->type));
    json_object_set_new(o, "durable", json_boolean(x->durable));
    json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
    json_object_set_new(o, "internal", json_boolean(x->internal));
    json_object_set_new(o, "arguments", mgmt_table(x->arguments));
    json_object_set_new(o, "user_who_performed_action", json_string("rmq-internal"));
    json_object_set_new(o, "policy", x->policy ? json_string(x->policy) : json_null());
    json_object_set_new(o, "message_stats", mgmt_message_stats(&x->message_stats, &x->message_rates,
                                                               MGMT_STATS_EXCHANGE));
    return o;
}

json_t *mgmt_binding_json(const struct introspect_binding *b)
{
    json_t *o = json_object();
    json_object_set_new(o, "source", mgmt_bytes(b->source));
    json_object_set_new(o, "vhost", mgmt_string(b->vhost, strlen(b->vhost)));
    json_object_set_new(o, "destination", mgmt_bytes(b->destination));
    json_object_set_new(o, "destination_type", json_string(b->destination_kind));
    json_object_set_new(o, "routing_key", mgmt_bytes(b->routing_key));
    json_object_set_new(o, "arguments", mgmt_table(b->arguments));
    char key[MGMT_PROPERTIES_KEY_MAX];
    mgmt_properties_key(b->routing_key, b->arguments, key);
    json_object_set_new(o, "properties_key", json_string(key));
    return o;
}
