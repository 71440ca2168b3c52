/* broker/admin/mgmt_exchanges.c: /api/exchanges: listing, one exchange, declare (PUT), delete
 * and publish, as RabbitMQ's API serves them. The default exchange is "amq.default" in paths
 * and "" in JSON. Changes go through operate.h. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "introspect.h"
#include "mgmt_internal.h"
#include "operate.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"

struct exchange_walk {
    struct mgmt_call *call;
    json_t *items;
    struct proto_bytes only;
    bool one;
};

static void add_exchange(const struct introspect_exchange *x, void *arg)
{
    struct exchange_walk *w = arg;
    if (w->one && !(x->name.len == w->only.len && memcmp(x->name.ptr, w->only.ptr, x->name.len) == 0))
        return;
    if (mgmt_vhost_open(w->call, x->vhost))
        json_array_append_new(w->items, mgmt_exchange_json(x));
}

static void list_exchanges(struct mgmt_call *call)
{
    struct exchange_walk w = {call, json_array(), {0}, false};
    const char *vhost = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    if (call->nseg > 1 && !vhost)
        return;
    introspect_exchanges(call->server, vhost, add_exchange, &w);
    mgmt_list(call, w.items);
}

static json_t *find_exchange(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    struct exchange_walk w = {call, json_array(), name, true};
    introspect_exchanges(call->server, vhost, add_exchange, &w);
    json_t *x = json_incref(json_array_get(w.items, 0));
    json_decref(w.items);
    return x;
}

/* PUT {"type", "durable", "auto_delete", "internal", "arguments"}. */
static void put_exchange(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    if (call->body && !json_is_object(call->body)) {
        mgmt_fail(call, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    json_t *type = mgmt_body(call, "type");
    if (type && !json_is_string(type)) {
        mgmt_fail(call, 400, "bad_request", "type must be a string");
        return;
    }
    struct exchange_declare d = {.name = name};
    d.type = type ? (struct proto_bytes){(const uint8_t *)json_string_value(type), (uint32_t)json_string_length(type)}
                  : (struct proto_bytes){(const uint8_t *)"direct", 6};
    if (mgmt_json_bool(call, "durable", false, &d.durable) != 0 ||
        mgmt_json_bool(call, "auto_delete", false, &d.auto_delete) != 0 ||
        mgmt_json_bool(call, "internal", false, &d.internal) != 0)
        return;
    if (name.len > 255) {
        mgmt_fail(call, 400, "bad_request", "exchange name longer than 255 bytes");
        return;
    }
    struct table_buf args = {0};
    if (mgmt_arguments(call, mgmt_body(call, "arguments"), &args) != 0)
        return;
    d.arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    struct reply_error err;
    bool created;
    if (operate_declare_exchange(call->server, mgmt_actor(call), vhost, &d, &created, &err) != 0)
        mgmt_amqp_error(call, &err);
    else
        mgmt_done(call, created);
    table_buf_free(&args);
}

static void exchange(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    struct proto_bytes name = mgmt_exchange_segment(call, 2);
    if (call->method == MGMT_PUT) {
        put_exchange(call, vhost, name);
        return;
    }
    if (call->method == MGMT_GET) {
        json_t *x = find_exchange(call, vhost, name);
        if (x)
            mgmt_reply(call, 200, x);
        else
            mgmt_not_found(call);
        return;
    }
    const char *if_unused = mgmt_query(call, "if-unused");
    struct reply_error err;
    if (operate_delete_exchange(call->server, mgmt_actor(call), vhost, name, if_unused && strcmp(if_unused, "true") == 0,
                                &err) != 0) {
        if (err.code == SPEC_NOT_FOUND)
            mgmt_not_found(call);
        else
            mgmt_amqp_error(call, &err);
        return;
    }
    mgmt_done(call, false);
}

/* POST exchanges/VHOST/NAME/publish {"routing_key", "properties", "payload",
 * "payload_encoding": "string" | "base64"} -> {"routed": bool}. */
static void publish(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    struct proto_bytes name = mgmt_exchange_segment(call, 2);
    json_t *x = find_exchange(call, vhost, name);
    if (!x) {
        mgmt_not_found(call);
        return;
    }
    json_decref(x);
    json_t *key = mgmt_body(call, "routing_key"), *payload = mgmt_body(call, "payload");
    json_t *encoding = mgmt_body(call, "payload_encoding"), *props_json = mgmt_body(call, "properties");
    if (!key || !payload || !encoding || !props_json) {
        mgmt_fail(call, 400, "bad_request", "routing_key, properties, payload and payload_encoding are mandatory");
        return;
    }
    if (!json_is_string(payload)) {
        mgmt_fail(call, 400, "bad_request", "payload_not_string");
        return;
    }
    if (!json_is_string(key) || json_string_length(key) > 255) {
        mgmt_fail(call, 400, "bad_request", "routing_key must be a string of at most 255 bytes");
        return;
    }
    const char *enc = json_string_value(encoding);
    uint8_t *body = NULL;
    size_t body_len = json_string_length(payload);
    if (enc && strcmp(enc, "base64") == 0) {
        body = malloc(BASE64_DECODED_MAX(body_len) + 1);
        long n = body ? base64_decode(json_string_value(payload), body_len, body, BASE64_DECODED_MAX(body_len) + 1)
                      : -1;
        if (n < 0) {
            free(body);
            mgmt_fail(call, 400, "bad_request", "not_base64");
            return;
        }
        body_len = (size_t)n;
    } else if (!enc || strcmp(enc, "string") != 0) {
        mgmt_fail(call, 400, "bad_request", "{unsupported_encoding,%s}", enc ? enc : "null");
        return;
    }
    struct spec_basic_properties props;
    struct table_buf headers = {0};
    if (mgmt_properties_from_json(call, props_json, &props, &headers) != 0) {
        table_buf_free(&headers);
        free(body);
        return;
    }
    struct reply_error err;
    bool routed;
    const uint8_t *data = body ? body : (const uint8_t *)json_string_value(payload);
    if (operate_publish(call->server, mgmt_actor(call), vhost, name,
                        (struct proto_bytes){(const uint8_t *)json_string_value(key), (uint32_t)json_string_length(key)},
                        &props, data, body_len, &routed, &err) != 0)
        mgmt_amqp_error(call, &err);
    else
        mgmt_reply(call, 200, json_pack("{s:b}", "routed", routed));
    table_buf_free(&headers);
    free(body);
}

const struct mgmt_route mgmt_exchanges_routes[] = {
    {"exchanges", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_exchanges},
    {"exchanges/*", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_exchanges},
    {"exchanges/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_USER, MGMT_USER, 2, exchange},
    {"exchanges/*/*/publish", MGMT_POST, MGMT_USER, MGMT_USER, 2, publish},
    {NULL, 0, 0, 0, 0, NULL},
};
