/* broker/model/message.c: message allocation and reference counting. */
#include "message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "table.h"

static uint64_t memory_bytes;

/* Version 1: the sender-selected routing keys are the CC header's; version 2 stores them after
 * the content header, for a message whose keys its headers do not show (BCC ones). */
#define SERIAL_VERSION 1
#define SERIAL_VERSION_KEYS 2

uint64_t message_memory_bytes(void) { return memory_bytes; }

/* RabbitMQ accepts an expiration that is a non-negative integer in decimal digits only. */
static bool parse_expiration(struct proto_bytes text, uint64_t *out)
{
    if (text.len == 0 || text.len > 19)
        return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < text.len; i++) {
        if (text.ptr[i] < '0' || text.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(text.ptr[i] - '0');
    }
    *out = v;
    return true;
}

struct message *message_create(struct proto_bytes exchange, struct proto_bytes routing_key,
                               struct proto_bytes header, uint64_t body_size)
{
    struct spec_content_header h;
    if (spec_content_header_decode(header.ptr, header.len, &h) != 0)
        return NULL;
    return message_create_decoded(exchange, routing_key, header, &h.props, body_size);
}

/* Bytes msg accounts for: its whole allocation. */
static size_t footprint(const struct message *msg)
{
    return sizeof *msg + msg->header.len + msg->exchange.len + msg->routing_key.len + msg->sender_keys.len +
           (size_t)msg->body_capacity;
}

/* Points header, exchange, routing key, sender keys and body at their places behind the
 * struct, in that order (their lengths set); again after the allocation has moved. */
static void place(struct message *msg)
{
    uint8_t *p = (uint8_t *)(msg + 1);
    msg->header.ptr = p;
    p += msg->header.len;
    msg->exchange.ptr = p;
    p += msg->exchange.len;
    msg->routing_key.ptr = p;
    p += msg->routing_key.len;
    msg->sender_keys.ptr = p;
    p += msg->sender_keys.len;
    msg->body = p;
}

int message_check_sender_routes(struct proto_bytes headers, const char **name, uint8_t *type)
{
    static const char *const keys[] = {"CC", "BCC"};
    for (size_t i = 0; i < 2; i++) {
        struct table_value v;
        if (table_find(headers, keys[i], &v) == 1 && v.type != TABLE_ARRAY) {
            *name = keys[i];
            *type = v.type;
            return -1;
        }
    }
    return 0;
}

/* `header` re-encoded without its BCC header field, in a buffer the caller frees; NULL on
 * ENOMEM or when it does not decode. */
static uint8_t *strip_bcc(struct proto_bytes header, size_t *len)
{
    struct spec_content_header h;
    if (spec_content_header_decode(header.ptr, header.len, &h) != 0)
        return NULL;
    struct table_buf kept = {0};
    struct table_iter it;
    struct proto_bytes key;
    struct table_value v;
    table_iter_init(&it, h.props.headers);
    while (table_next(&it, &key, &v) == 1)
        if (!proto_bytes_equal(key, proto_bytes_of("BCC")) &&
            table_buf_put_field(&kept, (const char *)key.ptr, key.len, &v) != 0) {
            table_buf_free(&kept);
            return NULL;
        }
    h.props.headers = (struct proto_bytes){kept.data, (uint32_t)kept.len};
    uint8_t *out = malloc(header.len); /* one field shorter than the original */
    long n = out ? spec_content_header_encode(&h, out, header.len) : -1;
    table_buf_free(&kept);
    if (n < 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

/* keys, when given, are the sender-selected routing keys as they are (message_create_with_keys);
 * otherwise they are read from the CC and BCC headers. */
static struct message *allocate(struct proto_bytes exchange, struct proto_bytes routing_key,
                                struct proto_bytes header, const struct spec_basic_properties *props,
                                uint64_t body_size, uint64_t capacity, const struct proto_bytes *keys)
{
    /* Sender-selected distribution, as RabbitMQ: the CC and BCC arrays add routing keys, and
     * BCC is not delivered. The keys point into the caller's header, read before it is copied. */
    struct proto_bytes cc = keys ? *keys : (struct proto_bytes){0}, bcc = {0};
    uint8_t *stripped = NULL;
    if ((props->flags & SPEC_BASIC_HEADERS_FLAG) && props->headers.len) {
        struct table_value v;
        if (!keys && table_find(props->headers, "CC", &v) == 1 && v.type == TABLE_ARRAY)
            cc = v.v.bytes;
        if (table_find(props->headers, "BCC", &v) == 1) {
            if (!keys && v.type == TABLE_ARRAY)
                bcc = v.v.bytes;
            size_t len;
            stripped = strip_bcc(header, &len);
            if (!stripped)
                return NULL;
            header = (struct proto_bytes){stripped, (uint32_t)len};
        }
    }
    size_t keys_len = (size_t)cc.len + bcc.len;
    size_t fixed = sizeof(struct message) + exchange.len + routing_key.len + header.len + keys_len;
    struct message *msg = capacity > SIZE_MAX - fixed ? NULL : malloc(fixed + (size_t)capacity);
    if (!msg) {
        free(stripped);
        return NULL;
    }
    memset(msg, 0, sizeof *msg);
    msg->refs = 1;
    msg->body_size = body_size;
    msg->body_capacity = capacity;
    msg->header.len = header.len;
    msg->exchange.len = exchange.len;
    msg->routing_key.len = routing_key.len;
    msg->sender_keys.len = (uint32_t)keys_len;
    place(msg);
    uint8_t *p = (uint8_t *)(msg + 1);
    if (header.len)
        memcpy(p, header.ptr, header.len);
    p += header.len;
    if (exchange.len)
        memcpy(p, exchange.ptr, exchange.len);
    p += exchange.len;
    if (routing_key.len)
        memcpy(p, routing_key.ptr, routing_key.len);
    p += routing_key.len;
    if (cc.len)
        memcpy(p, cc.ptr, cc.len);
    if (bcc.len)
        memcpy(p + cc.len, bcc.ptr, bcc.len);
    free(stripped);
    memory_bytes += footprint(msg);

    if (props->flags & SPEC_BASIC_DELIVERY_MODE_FLAG)
        msg->delivery_mode = props->delivery_mode;
    if (props->flags & SPEC_BASIC_PRIORITY_FLAG)
        msg->priority = props->priority;
    if (props->flags & SPEC_BASIC_EXPIRATION_FLAG)
        msg->has_expiration = parse_expiration(props->expiration, &msg->expiration_ms);
    return msg;
}

struct message *message_create_decoded(struct proto_bytes exchange, struct proto_bytes routing_key,
                                       struct proto_bytes header, const struct spec_basic_properties *props,
                                       uint64_t body_size)
{
    return allocate(exchange, routing_key, header, props, body_size, body_size, NULL);
}

struct message *message_create_with_keys(struct proto_bytes exchange, struct proto_bytes routing_key,
                                         struct proto_bytes header, const struct spec_basic_properties *props,
                                         uint64_t body_size, struct proto_bytes sender_keys)
{
    return allocate(exchange, routing_key, header, props, body_size, body_size, &sender_keys);
}

struct message *message_begin(struct proto_bytes exchange, struct proto_bytes routing_key, struct proto_bytes header,
                              const struct spec_basic_properties *props, uint64_t body_size)
{
    uint64_t first = body_size < MESSAGE_BODY_FIRST_CAPACITY ? body_size : MESSAGE_BODY_FIRST_CAPACITY;
    return allocate(exchange, routing_key, header, props, body_size, first, NULL);
}

int message_append_body(struct message **msgp, uint64_t received, const uint8_t *data, size_t len)
{
    struct message *msg = *msgp;
    uint64_t need = received + len;
    if (need < received || need > msg->body_size)
        return -EINVAL; /* the caller's contract: never more than announced */
    if (need > msg->body_capacity) {
        /* Doubling keeps the bytes moved by realloc below the body size; large blocks are
         * usually remapped, not copied. Never more than announced, so the last growth is exact. */
        uint64_t capacity = msg->body_capacity * 2;
        if (capacity < need)
            capacity = need;
        if (capacity > msg->body_size)
            capacity = msg->body_size;
        size_t before = footprint(msg);
        size_t fixed = before - (size_t)msg->body_capacity;
        if (capacity > SIZE_MAX - fixed)
            return -ENOMEM;
        struct message *grown = realloc(msg, fixed + (size_t)capacity);
        if (!grown)
            return -ENOMEM;
        grown->body_capacity = capacity;
        place(grown);
        memory_bytes += footprint(grown) - before;
        *msgp = msg = grown;
    }
    if (len)
        memcpy(msg->body + received, data, len);
    return 0;
}

void message_retain(struct message *msg) { msg->refs++; }

void message_release(struct message *msg)
{
    if (msg && --msg->refs == 0) {
        memory_bytes -= footprint(msg);
        free(msg);
    }
}

void message_retain_cb(void *msg) { message_retain(msg); }
void message_release_cb(void *msg) { message_release(msg); }

struct proto_bytes message_headers(const struct message *msg)
{
    struct spec_content_header h;
    struct proto_bytes none = {NULL, 0};
    if (spec_content_header_decode(msg->header.ptr, msg->header.len, &h) != 0)
        return none;
    if (!(h.props.flags & SPEC_BASIC_HEADERS_FLAG))
        return none;
    return h.props.headers;
}

/* Whether msg's sender-selected keys are more than its CC header names: BCC keys, which
 * allocate() removed from the headers. Only a message with keys pays for the header decode. */
static bool keys_beyond_cc(const struct message *msg)
{
    if (msg->sender_keys.len == 0)
        return false;
    struct proto_bytes headers = message_headers(msg);
    struct table_value cc;
    uint32_t cc_len = table_find(headers, "CC", &cc) == 1 && cc.type == TABLE_ARRAY ? cc.v.bytes.len : 0;
    return msg->sender_keys.len != cc_len;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

size_t message_serialize(const struct message *msg, uint8_t *out, size_t cap)
{
    bool keys = keys_beyond_cc(msg);
    size_t need = 1 + 8 + 1 + msg->exchange.len + 1 + msg->routing_key.len + 4 + msg->header.len + msg->body_size;
    if (keys)
        need += 4 + msg->sender_keys.len;
    if (cap < need)
        return need;
    uint8_t *p = out;
    *p++ = keys ? SERIAL_VERSION_KEYS : SERIAL_VERSION;
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)(msg->published_ms >> (8 * i));
    *p++ = (uint8_t)msg->exchange.len;
    memcpy(p, msg->exchange.ptr, msg->exchange.len);
    p += msg->exchange.len;
    *p++ = (uint8_t)msg->routing_key.len;
    memcpy(p, msg->routing_key.ptr, msg->routing_key.len);
    p += msg->routing_key.len;
    uint32_t h = msg->header.len;
    put_u32(p, h);
    p += 4;
    memcpy(p, msg->header.ptr, h);
    p += h;
    if (keys) {
        put_u32(p, msg->sender_keys.len);
        p += 4;
        memcpy(p, msg->sender_keys.ptr, msg->sender_keys.len);
        p += msg->sender_keys.len;
    }
    memcpy(p, msg->body, msg->body_size);
    return need;
}

struct message *message_deserialize(uint64_t id, const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    struct proto_bytes exchange, key, header;
    if (end - p < 9 || (p[0] != SERIAL_VERSION && p[0] != SERIAL_VERSION_KEYS))
        return NULL;
    bool has_keys = p[0] == SERIAL_VERSION_KEYS;
    uint64_t published = 0;
    for (int i = 1; i <= 8; i++)
        published = published << 8 | p[i];
    p += 9;
    if (end - p < 1 || (size_t)(end - p - 1) < p[0])
        return NULL;
    exchange = (struct proto_bytes){p + 1, p[0]};
    p += 1 + p[0];
    if (end - p < 1 || (size_t)(end - p - 1) < p[0])
        return NULL;
    key = (struct proto_bytes){p + 1, p[0]};
    p += 1 + p[0];
    if (end - p < 4)
        return NULL;
    uint32_t h = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    p += 4;
    if ((size_t)(end - p) < h)
        return NULL;
    header = (struct proto_bytes){p, h};
    p += h;
    struct proto_bytes keys = {NULL, 0};
    if (has_keys) {
        if (end - p < 4)
            return NULL;
        uint32_t k = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        if ((size_t)(end - p) < k)
            return NULL;
        keys = (struct proto_bytes){p, k};
        p += k;
        if (array_validate(keys) != 0)
            return NULL;
    }
    /* As a publish's content header is checked (publish.c): decodable, class basic, and here
     * announcing exactly the body stored after it, since deliveries send it as it is. */
    struct spec_content_header decoded;
    if (spec_content_header_decode(header.ptr, header.len, &decoded) != 0 || decoded.class_id != SPEC_CLASS_BASIC ||
        decoded.body_size != (uint64_t)(end - p))
        return NULL;
    struct message *msg =
        has_keys ? message_create_with_keys(exchange, key, header, &decoded.props, (uint64_t)(end - p), keys)
                 : message_create_decoded(exchange, key, header, &decoded.props, (uint64_t)(end - p));
    if (!msg)
        return NULL;
    memcpy(msg->body, p, (size_t)(end - p));
    msg->id = id;
    msg->stored = id != 0; /* 0: bytes from another node, not (yet) in this node's store */
    msg->published_ms = published;
    return msg;
}

struct header_field {
    struct proto_bytes name;
    struct table_value value;
    size_t order; /* its place before sorting: keeps the sort stable, as Erlang's keysort */
};

/* Erlang's order of binaries: bytewise, a prefix first. */
static int compare_fields(const void *a, const void *b)
{
    const struct header_field *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    if (c == 0)
        c = (x->name.len > y->name.len) - (x->name.len < y->name.len);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

int message_header_with_long(const struct message *msg, const char *key, int64_t value, struct table_buf *out)
{
    struct spec_content_header h;
    if (spec_content_header_decode(msg->header.ptr, msg->header.len, &h) != 0)
        return -1;
    struct proto_bytes old = (h.props.flags & SPEC_BASIC_HEADERS_FLAG) ? h.props.headers : (struct proto_bytes){0};
    struct table_iter it;
    struct proto_bytes name;
    struct table_value v;
    size_t count = 1;
    table_iter_init(&it, old);
    while (table_next(&it, &name, &v) == 1)
        count++;
    struct header_field *fields = malloc(count * sizeof *fields);
    if (!fields)
        return -1;
    size_t key_len = strlen(key), n = 0;
    table_iter_init(&it, old);
    while (table_next(&it, &name, &v) == 1)
        if (!proto_bytes_is(name, key))
            fields[n] = (struct header_field){name, v, n}, n++;
    fields[n].name = (struct proto_bytes){(const uint8_t *)key, (uint32_t)key_len};
    fields[n].value = (struct table_value){.type = TABLE_INT64};
    fields[n].value.v.i64 = value;
    fields[n].order = n;
    n++;
    qsort(fields, n, sizeof *fields, compare_fields);
    struct table_buf headers = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = table_buf_put_field(&headers, (const char *)fields[i].name.ptr, fields[i].name.len, &fields[i].value);
    free(fields);
    if (rc == 0) {
        h.props.headers = (struct proto_bytes){headers.data, (uint32_t)headers.len};
        h.props.flags |= SPEC_BASIC_HEADERS_FLAG;
        size_t cap = msg->header.len + key_len + 16; /* the old header, one field more at most */
        out->data = malloc(cap);
        long encoded = out->data ? spec_content_header_encode(&h, out->data, cap) : -1;
        if (encoded < 0)
            table_buf_free(out);
        else
            out->len = (size_t)encoded, out->cap = cap;
        rc = encoded < 0 ? -1 : 0;
    }
    table_buf_free(&headers);
    return rc == 0 ? 0 : -1;
}
