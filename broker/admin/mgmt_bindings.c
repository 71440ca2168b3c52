/* broker/admin/mgmt_bindings.c: /api/bindings and the bindings of one exchange or queue:
 * listing, creating (POST) and deleting one by its properties_key, as RabbitMQ's API does. */
#include <nettle/base64.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "mgmt_internal.h"
#include "operate.h"
#include "table.h"

/* RabbitMQ's quote_binding: quote_plus (letters, digits and ".-_~" kept, space as "+", other
 * bytes %XX) with "~" then written %7E, so that "~" can separate key and arguments. */
static size_t quote_binding(struct proto_bytes s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = s.ptr[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
            c == '_') {
            out[n++] = (char)c;
        } else if (c == ' ') {
            out[n++] = '+';
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

void mgmt_properties_key(struct proto_bytes key, struct proto_bytes arguments, char out[MGMT_PROPERTIES_KEY_MAX])
{
    if (arguments.len == 0) {
        if (key.len == 0)
            strcpy(out, "~");
        else
            quote_binding(key, out);
        return;
    }
    /* RabbitMQ hashes the Erlang term of the arguments (erlang:phash2); Warren hashes the
     * field table's bytes instead: as short and as stable, but not the same value. */
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx hash;
    sha256_init(&hash);
    sha256_update(&hash, arguments.len, arguments.ptr);
    sha256_digest(&hash, sizeof digest, digest);
    size_t n = quote_binding(key, out);
    out[n++] = '~';
    /* The digest's first 4 bytes in base64url without padding: 6 characters. */
    char text[BASE64_ENCODE_LENGTH(4) + BASE64_ENCODE_FINAL_LENGTH];
    struct base64_encode_ctx b64;
    base64url_encode_init(&b64);
    size_t len = base64_encode_update(&b64, text, 4, digest);
    base64_encode_final(&b64, text + len);
    memcpy(out + n, text, 6);
    out[n + 6] = '\0';
}

/* Which bindings a walk keeps. */
struct binding_filter {
    struct mgmt_call *call;
    json_t *items;
    struct proto_bytes source, destination;
    bool by_source, by_destination;
    const char *destination_kind;
    const char *properties_key; /* non-NULL: only the binding with that key */
};

static bool same(struct proto_bytes a, struct proto_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void add_binding(const struct introspect_binding *b, void *arg)
{
    struct binding_filter *f = arg;
    if (!mgmt_vhost_open(f->call, b->vhost))
        return;
    if (f->by_source && !same(f->source, b->source))
        return;
    if (f->by_destination && (!same(f->destination, b->destination) || strcmp(f->destination_kind, b->destination_kind) != 0))
        return;
    if (f->properties_key) {
        char key[MGMT_PROPERTIES_KEY_MAX];
        mgmt_properties_key(b->routing_key, b->arguments, key);
        if (strcmp(key, f->properties_key) != 0)
            return;
    }
    json_array_append_new(f->items, mgmt_binding_json(b));
}

static json_t *bindings_of(struct mgmt_call *call, const char *vhost, struct binding_filter *f)
{
    f->call = call;
    f->items = json_array();
    introspect_bindings(call->server, vhost, add_binding, f);
    return f->items;
}

static void list_all(struct mgmt_call *call)
{
    struct binding_filter f = {0};
    mgmt_list(call, bindings_of(call, NULL, &f));
}

static void list_vhost(struct mgmt_call *call)
{
    struct binding_filter f = {0};
    mgmt_list(call, bindings_of(call, mgmt_name(call, 1), &f));
}

static bool exchange_exists(struct mgmt_call *call, const char *vhost, struct proto_bytes name);
static bool queue_exists(struct mgmt_call *call, const char *vhost, struct proto_bytes name);

/* bindings/VHOST/e/SOURCE/{q,e}/DESTINATION[/PROPS]: checks both ends exist (404). A new
 * binding through a cluster's log is judged by its apply instead, after what the same request
 * declared before it (a definitions import): a missing end is then its 404. */
static bool ends(struct mgmt_call *call, struct binding_filter *f, bool *to_exchange)
{
    const char *vhost = mgmt_name(call, 1);
    *to_exchange = call->seg[4].s[0] == 'e';
    f->by_source = f->by_destination = true;
    f->source = mgmt_exchange_segment(call, 3);
    f->destination = *to_exchange ? mgmt_exchange_segment(call, 5) : mgmt_segment_bytes(call, 5);
    f->destination_kind = *to_exchange ? "exchange" : "queue";
    if (call->method == MGMT_POST && operate_through_log(call->server))
        return true;
    if (!exchange_exists(call, vhost, f->source) ||
        !(*to_exchange ? exchange_exists(call, vhost, f->destination) : queue_exists(call, vhost, f->destination))) {
        mgmt_not_found(call);
        return false;
    }
    return true;
}

/* GET the bindings between two objects; POST {"routing_key", "arguments"} adds one. */
static void between(struct mgmt_call *call)
{
    struct binding_filter f = {0};
    bool to_exchange;
    const char *vhost = mgmt_name(call, 1);
    if (!vhost || !ends(call, &f, &to_exchange))
        return;
    if (call->method == MGMT_GET) {
        mgmt_list(call, bindings_of(call, vhost, &f));
        return;
    }
    json_t *key = mgmt_body(call, "routing_key");
    if (key && !json_is_string(key)) {
        mgmt_fail(call, 400, "bad_request", "routing_key must be a string");
        return;
    }
    struct table_buf args = {0};
    if (mgmt_arguments(call, mgmt_body(call, "arguments"), &args) != 0)
        return;
    struct proto_bytes k = {(const uint8_t *)(key ? json_string_value(key) : ""),
                            key ? (uint32_t)json_string_length(key) : 0};
    struct reply_error err;
    if (operate_bind(call->server, mgmt_actor(call), vhost, to_exchange, f.destination, f.source, k,
                     (struct proto_bytes){args.data, (uint32_t)args.len}, false, &err) != 0)
        mgmt_amqp_error(call, &err);
    else
        mgmt_done(call, true);
    table_buf_free(&args);
}

/* GET or DELETE the binding whose properties_key is the last segment. */
static void one(struct mgmt_call *call)
{
    struct binding_filter f = {0};
    bool to_exchange;
    const char *vhost = mgmt_name(call, 1), *props = vhost ? mgmt_name(call, 6) : NULL;
    if (!props || !ends(call, &f, &to_exchange))
        return;
    f.properties_key = props;
    json_t *found = bindings_of(call, vhost, &f);
    if (json_array_size(found) == 0) {
        json_decref(found);
        mgmt_not_found(call);
        return;
    }
    json_t *b = json_incref(json_array_get(found, 0));
    json_decref(found);
    if (call->method == MGMT_GET) {
        mgmt_reply(call, 200, b);
        return;
    }
    /* Unbind with the binding's own key and arguments, rebuilt from its JSON. */
    struct table_buf args = {0};
    if (mgmt_arguments(call, json_object_get(b, "arguments"), &args) != 0) {
        json_decref(b);
        return;
    }
    json_t *key = json_object_get(b, "routing_key");
    struct proto_bytes k = {(const uint8_t *)json_string_value(key), (uint32_t)json_string_length(key)};
    struct reply_error err;
    if (operate_bind(call->server, mgmt_actor(call), vhost, to_exchange, f.destination, f.source, k,
                     (struct proto_bytes){args.data, (uint32_t)args.len}, true, &err) != 0)
        mgmt_amqp_error(call, &err);
    else
        mgmt_done(call, false);
    table_buf_free(&args);
    json_decref(b);
}

struct exists_walk {
    struct proto_bytes name;
    bool found;
};

static void match_exchange(const struct introspect_exchange *x, void *arg)
{
    struct exists_walk *w = arg;
    w->found |= same(x->name, w->name);
}

static void match_queue(const struct introspect_queue *q, void *arg)
{
    struct exists_walk *w = arg;
    w->found |= same(q->name, w->name);
}

static bool exchange_exists(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    struct exists_walk w = {name, false};
    introspect_exchanges(call->server, vhost, match_exchange, &w);
    return w.found;
}

static bool queue_exists(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    struct exists_walk w = {name, false};
    introspect_queues(call->server, vhost, match_queue, &w);
    return w.found;
}

/* exchanges/VHOST/NAME/bindings/{source,destination} and queues/VHOST/NAME/bindings. */
static void of_object(struct mgmt_call *call)
{
    struct binding_filter f = {0};
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    bool queue = call->seg[0].s[0] == 'q';
    struct proto_bytes name = queue ? mgmt_segment_bytes(call, 2) : mgmt_exchange_segment(call, 2);
    if (!(queue ? queue_exists(call, vhost, name) : exchange_exists(call, vhost, name))) {
        mgmt_not_found(call);
        return;
    }
    if (!queue && strcmp(call->seg[4].s, "source") == 0) {
        f.by_source = true;
        f.source = name;
    } else {
        f.by_destination = true;
        f.destination = name;
        f.destination_kind = queue ? "queue" : "exchange";
    }
    mgmt_list(call, bindings_of(call, vhost, &f));
}

const struct mgmt_route mgmt_bindings_routes[] = {
    {"bindings", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_all},
    {"bindings/*", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_vhost},
    {"bindings/*/e/*/q/*", MGMT_GET | MGMT_POST, MGMT_USER, MGMT_USER, 2, between},
    {"bindings/*/e/*/e/*", MGMT_GET | MGMT_POST, MGMT_USER, MGMT_USER, 2, between},
    {"bindings/*/e/*/q/*/*", MGMT_GET | MGMT_DELETE, MGMT_USER, MGMT_USER, 2, one},
    {"bindings/*/e/*/e/*/*", MGMT_GET | MGMT_DELETE, MGMT_USER, MGMT_USER, 2, one},
    {"exchanges/*/*/bindings/source", MGMT_GET, MGMT_USER, MGMT_USER, 2, of_object},
    {"exchanges/*/*/bindings/destination", MGMT_GET, MGMT_USER, MGMT_USER, 2, of_object},
    {"queues/*/*/bindings", MGMT_GET, MGMT_USER, MGMT_USER, 2, of_object},
    {NULL, 0, 0, 0, 0, NULL},
};
