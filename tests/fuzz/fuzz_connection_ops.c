/* tests/fuzz/fuzz_connection_ops.c: the structured mode of fuzz_connection. The input is a
 * sequence of operations: one byte picks the operation (bit 7 set: do not wait for the broker
 * before the next one, so several arrive in one read), the bytes after it pick its arguments
 * from small tables of names, flags and argument sets, so that queues, exchanges, bindings,
 * consumers and delivery tags meet each other often. Missing bytes read as zero.
 *
 * Each operation goes to the current connection (reconnected when gone) and to one of its
 * channels 1..4 (opened first when the client knows it closed). Methods are encoded with the
 * project's codec; content is split into frames as the operation says, sometimes wrongly. */
#include "fuzz_connection.h"

#include "table.h"

struct reader {
    const uint8_t *data;
    size_t len, pos;
};

static uint8_t take(struct reader *r) { return r->pos < r->len ? r->data[r->pos++] : 0; }
static uint16_t take16(struct reader *r) { return (uint16_t)(take(r) | take(r) << 8); }

#define COUNT(table) (sizeof(table) / sizeof *(table))
#define PICK(r, table) ((table)[take(r) % COUNT(table)])

/* "@" stands for the name of the latest queue.declare-ok (a server-named queue);
 * amq.rabbitmq.reply-to is direct reply-to's pseudo-queue (consume, and reply_to below). */
static const char *const queues[] = {"q0", "q1", "q2", "dlq", "q0", "q1", "", "@", "amq.rabbitmq.reply-to"};
static const char *const exchanges[] = {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers",
                                        "ex.d", "ex.f", "ex.t", "ex.h", "dlx", "dlx"};
static const char *const keys[] = {"q0", "q1", "q2", "dlq", "a.b", "a.*", "#", "", "a.b.c", "*.b",
                                   "amq.rabbitmq.reply-to"};
static const char *const consumer_tags[] = {"", "c0", "c1", "c2"};

struct op_context {
    struct fuzz_session *s;
    struct fuzz_client *c;
    struct reader *r;
};

static struct proto_bytes text(const char *s) { return proto_bytes_of(s); }

static struct proto_bytes queue_name(struct op_context *o)
{
    const char *name = PICK(o->r, queues);
    return text(name[0] == '@' ? o->c->last_queue : name);
}

/* The channel an operation uses; a channel the client knows closed is opened first. */
static uint16_t use_channel(struct op_context *o)
{
    uint16_t number = (uint16_t)(1 + take(o->r) % FUZZ_CHANNELS);
    struct fuzz_channel *ch = &o->c->channels[number];
    if (ch->state == FUZZ_CH_CLOSED) {
        struct spec_method m = {.id = SPEC_CHANNEL_OPEN};
        fuzz_send_method(o->c, number, &m);
        ch->state = FUZZ_CH_OPENING;
    }
    return number;
}

static void send_on(struct op_context *o, uint16_t channel, const struct spec_method *m)
{
    fuzz_send_method(o->c, channel, m);
}

/* ---- argument tables ---- */

/* Integer arguments mostly as RabbitMQ clients send them (long), sometimes as narrower types
 * and now and then as a string, which must be refused. */
static void put_int(struct reader *r, struct table_buf *t, const char *key, int64_t v)
{
    struct table_value value = {.type = TABLE_INT64};
    uint8_t kind = take(r) % 16;
    if (kind == 13) {
        value.type = TABLE_INT32;
        value.v.i32 = (int32_t)v;
    } else if (kind == 14) {
        value.type = TABLE_INT16;
        value.v.i16 = (int16_t)v;
    } else if (kind == 15) {
        value.type = TABLE_LONGSTR;
        value.v.bytes = text("10");
    } else {
        value.v.i64 = v;
    }
    table_buf_put_field(t, key, strlen(key), &value);
}

static void put_string(struct table_buf *t, const char *key, const char *value)
{
    table_buf_put_string(t, key, text(value));
}

/* A few bytes of the input as table contents, valid or not. */
static void put_raw(struct reader *r, struct table_buf *t)
{
    uint8_t n = take(r) % 24;
    for (uint8_t i = 0; i < n; i++) {
        uint8_t byte = take(r);
        if (t->len + 1 > t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            uint8_t *data = realloc(t->data, cap);
            FUZZ_CHECK(data != NULL);
            t->data = data;
            t->cap = cap;
        }
        t->data[t->len++] = byte;
    }
}

static void queue_arguments(struct reader *r, struct table_buf *t)
{
    static const char *const dl_exchanges[] = {"dlx", "dlx", "", "ex.f", "ex.d", "nowhere"};
    static const int64_t ttls[] = {0, 1, 10, 100, 1000, 60000, -1};
    static const int64_t lengths[] = {0, 1, 2, 3, 10, -1};
    static const int64_t length_bytes[] = {1, 100, 1000, 10000};
    static const char *const overflows[] = {"drop-head", "reject-publish", "reject-publish-dlx", "bogus"};
    static const int64_t expires[] = {0, 1, 100, 1000, 5000};
    static const int64_t priorities[] = {0, 1, 5, 10, 255, 256};
    static const char *const modes[] = {"lazy", "default", "bogus"};
    static const char *const types[] = {"classic", "classic", "quorum", "stream"};
    static const char *const strategies[] = {"at-most-once", "at-least-once"};
    uint16_t mask = take16(r);
    if (mask & 1)
        put_string(t, "x-dead-letter-exchange", PICK(r, dl_exchanges));
    if (mask & 2)
        put_string(t, "x-dead-letter-routing-key", PICK(r, keys));
    if (mask & 4)
        put_int(r, t, "x-message-ttl", PICK(r, ttls));
    if (mask & 8)
        put_int(r, t, "x-max-length", PICK(r, lengths));
    const char *overflow = "drop-head";
    if (mask & 16) {
        overflow = PICK(r, overflows);
        put_string(t, "x-overflow", overflow);
    }
    if (mask & 32)
        put_int(r, t, "x-expires", PICK(r, expires));
    if (mask & 64)
        put_int(r, t, "x-max-priority", PICK(r, priorities));
    if (mask & 128)
        put_int(r, t, "x-max-length-bytes", PICK(r, length_bytes));
    if (mask & 256)
        table_buf_put_bool(t, "x-single-active-consumer", take(r) & 1);
    if (mask & 512)
        put_string(t, "x-queue-mode", PICK(r, modes));
    if (mask & 1024)
        put_string(t, "x-queue-type", PICK(r, types));
    if (mask & 2048)
        put_string(t, "x-dead-letter-strategy", PICK(r, strategies));
    if (mask & 4096)
        put_int(r, t, "x-delivery-limit", take(r) % 4);
    if (mask & 0x8000)
        put_raw(r, t);
}

/* Binding arguments: what a headers exchange matches on. */
static void bind_arguments(struct reader *r, struct table_buf *t)
{
    static const char *const matches[] = {"all", "any", "all-with-x", "any-with-x", "bogus"};
    static const char *const values[] = {"v1", "v2"};
    uint8_t mask = take(r);
    if (mask & 1)
        put_string(t, "x-match", PICK(r, matches));
    if (mask & 2)
        put_string(t, "k1", PICK(r, values));
    if (mask & 4)
        put_int(r, t, "k2", take(r) % 3);
    if (mask & 8)
        put_string(t, "x-k", PICK(r, values));
    if (mask & 0x80)
        put_raw(r, t);
}

/* Message headers: headers-exchange keys and an x-death as a broker writes it or not. */
static void message_headers(struct reader *r, struct table_buf *t)
{
    static const char *const values[] = {"v1", "v2"};
    uint8_t mask = take(r);
    if (mask & 1)
        put_string(t, "k1", PICK(r, values));
    if (mask & 2)
        put_int(r, t, "k2", take(r) % 3);
    if (mask & 4) {
        struct table_buf death = {0}, list = {0};
        put_string(&death, "queue", PICK(r, queues));
        put_string(&death, "reason", take(r) & 1 ? "expired" : "rejected");
        put_int(r, &death, "count", take(r) % 3);
        put_string(&death, "exchange", PICK(r, exchanges));
        struct table_value entry = {.type = TABLE_TABLE};
        entry.v.bytes = (struct proto_bytes){death.data, (uint32_t)death.len};
        table_buf_put_value(&list, &entry);
        struct table_value array = {.type = take(r) & 1 ? TABLE_ARRAY : TABLE_TABLE};
        array.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
        table_buf_put_field(t, "x-death", 7, &array);
        table_buf_free(&death);
        table_buf_free(&list);
    }
    if (mask & 0x80)
        put_raw(r, t);
}

/* ---- operations ---- */

static void op_channel_open(struct op_context *o)
{
    uint16_t ch = (uint16_t)(1 + take(o->r) % FUZZ_CHANNELS);
    struct spec_method m = {.id = SPEC_CHANNEL_OPEN};
    send_on(o, ch, &m); /* on an open channel: 504, the connection goes */
    if (o->c->channels[ch].state == FUZZ_CH_CLOSED)
        o->c->channels[ch].state = FUZZ_CH_OPENING;
}

static void op_channel_close(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    struct spec_method m = {.id = SPEC_CHANNEL_CLOSE};
    m.args.channel_close.reply_code = 200;
    m.args.channel_close.reply_text = text("bye");
    send_on(o, ch, &m);
    o->c->channels[ch].state = FUZZ_CH_CLOSING;
}

static void op_channel_flow(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    struct spec_method m = {.id = SPEC_CHANNEL_FLOW};
    m.args.channel_flow.active = take(o->r) % 8 != 0;
    send_on(o, ch, &m);
}

static void op_exchange_declare(struct op_context *o)
{
    static const char *const names[] = {"ex.d", "ex.f", "ex.t", "ex.h", "dlx", "amq.direct", "amq.bogus"};
    static const char *const kinds[] = {"direct", "fanout", "topic", "headers", "fanout", "direct", "direct"};
    static const char *const any_kind[] = {"direct", "fanout", "topic", "headers", "x-bogus"};
    uint16_t ch = use_channel(o);
    uint8_t which = take(o->r) % COUNT(names), flags = take(o->r), extra = take(o->r);
    struct table_buf args = {0};
    if (extra & 1)
        put_string(&args, "alternate-exchange", PICK(o->r, exchanges));
    if (extra & 0x80)
        put_raw(o->r, &args);
    struct spec_method m = {.id = SPEC_EXCHANGE_DECLARE};
    m.args.exchange_declare.exchange = text(names[which]);
    m.args.exchange_declare.type = text(extra & 2 ? PICK(o->r, any_kind) : kinds[which]);
    m.args.exchange_declare.passive = flags & 1 && flags & 2;
    m.args.exchange_declare.durable = flags & 4;
    m.args.exchange_declare.auto_delete = flags & 8;
    m.args.exchange_declare.internal = flags & 16 && flags & 32;
    m.args.exchange_declare.no_wait = flags & 64;
    m.args.exchange_declare.arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    send_on(o, ch, &m);
    table_buf_free(&args);
}

static void op_exchange_delete(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_EXCHANGE_DELETE};
    m.args.exchange_delete.exchange = text(PICK(o->r, exchanges));
    m.args.exchange_delete.if_unused = flags & 1;
    m.args.exchange_delete.no_wait = flags & 2;
    send_on(o, ch, &m);
}

static void op_exchange_bind(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct table_buf args = {0};
    bind_arguments(o->r, &args);
    struct spec_method m = {.id = flags & 1 ? SPEC_EXCHANGE_UNBIND : SPEC_EXCHANGE_BIND};
    struct spec_exchange_bind *a = &m.args.exchange_bind; /* unbind has the same layout */
    a->destination = text(PICK(o->r, exchanges));
    a->source = text(PICK(o->r, exchanges));
    a->routing_key = text(PICK(o->r, keys));
    a->no_wait = flags & 2;
    a->arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    send_on(o, ch, &m);
    table_buf_free(&args);
}

static void op_queue_declare(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct table_buf args = {0};
    struct proto_bytes name = queue_name(o);
    queue_arguments(o->r, &args);
    struct spec_method m = {.id = SPEC_QUEUE_DECLARE};
    m.args.queue_declare.queue = name;
    m.args.queue_declare.passive = flags & 1 && flags & 2;
    m.args.queue_declare.durable = flags & 4;
    m.args.queue_declare.exclusive = flags & 8;
    m.args.queue_declare.auto_delete = flags & 16;
    m.args.queue_declare.no_wait = flags & 32 && flags & 64;
    m.args.queue_declare.arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    send_on(o, ch, &m);
    table_buf_free(&args);
}

static void op_queue_bind(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct table_buf args = {0};
    bind_arguments(o->r, &args);
    struct proto_bytes queue = queue_name(o), exchange = text(PICK(o->r, exchanges));
    struct proto_bytes key = text(PICK(o->r, keys));
    struct spec_method m = {.id = flags & 1 ? SPEC_QUEUE_UNBIND : SPEC_QUEUE_BIND};
    if (m.id == SPEC_QUEUE_BIND) {
        m.args.queue_bind = (struct spec_queue_bind){
            .queue = queue, .exchange = exchange, .routing_key = key, .no_wait = flags & 2,
            .arguments = {args.data, (uint32_t)args.len}};
    } else {
        m.args.queue_unbind = (struct spec_queue_unbind){
            .queue = queue, .exchange = exchange, .routing_key = key, .arguments = {args.data, (uint32_t)args.len}};
    }
    send_on(o, ch, &m);
    table_buf_free(&args);
}

static void op_queue_purge(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_QUEUE_PURGE};
    m.args.queue_purge.queue = queue_name(o);
    m.args.queue_purge.no_wait = flags & 1;
    send_on(o, ch, &m);
}

static void op_queue_delete(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_QUEUE_DELETE};
    m.args.queue_delete.queue = queue_name(o);
    m.args.queue_delete.if_unused = flags & 1;
    m.args.queue_delete.if_empty = flags & 2;
    m.args.queue_delete.no_wait = flags & 4;
    send_on(o, ch, &m);
}

static void op_qos(struct op_context *o)
{
    static const uint16_t counts[] = {0, 1, 2, 3, 10};
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_BASIC_QOS};
    m.args.basic_qos.prefetch_count = PICK(o->r, counts);
    m.args.basic_qos.global = flags & 1;
    m.args.basic_qos.prefetch_size = flags >> 1 == 0x7f ? 1000 : 0;
    send_on(o, ch, &m);
}

static void op_consume(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct table_buf args = {0};
    if (flags & 0x10)
        put_int(o->r, &args, "x-priority", take(o->r) % 3);
    if (flags & 0x20)
        table_buf_put_bool(&args, "x-cancel-on-ha-failover", true);
    struct spec_method m = {.id = SPEC_BASIC_CONSUME};
    m.args.basic_consume.queue = queue_name(o);
    m.args.basic_consume.consumer_tag = text(PICK(o->r, consumer_tags));
    m.args.basic_consume.no_ack = flags & 1;
    m.args.basic_consume.exclusive = flags & 2;
    m.args.basic_consume.no_local = flags & 4;
    m.args.basic_consume.no_wait = flags & 8 && flags & 0x40;
    m.args.basic_consume.arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    send_on(o, ch, &m);
    table_buf_free(&args);
}

static void op_cancel(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    const char *tag = PICK(o->r, consumer_tags);
    struct spec_method m = {.id = SPEC_BASIC_CANCEL};
    m.args.basic_cancel.consumer_tag = text(tag[0] ? tag : o->c->channels[ch].consumer_tag);
    m.args.basic_cancel.no_wait = flags & 1;
    send_on(o, ch, &m);
}

static void basic_properties(struct reader *r, struct spec_basic_properties *p, struct table_buf *headers)
{
    static const char *const expirations[] = {"0", "1", "10", "100", "1000", "60000", "-1", "abc", ""};
    static const char *const users[] = {"guest", "mallory"};
    uint8_t flags = take(r);
    if (flags & 1) {
        p->flags |= SPEC_BASIC_DELIVERY_MODE_FLAG;
        p->delivery_mode = (uint8_t)(1 + (take(r) & 1));
    }
    if (flags & 2) {
        p->flags |= SPEC_BASIC_PRIORITY_FLAG;
        p->priority = take(r) % 12;
    }
    if (flags & 4) {
        p->flags |= SPEC_BASIC_EXPIRATION_FLAG;
        p->expiration = text(PICK(r, expirations));
    }
    if (flags & 8) {
        message_headers(r, headers);
        p->flags |= SPEC_BASIC_HEADERS_FLAG;
        p->headers = (struct proto_bytes){headers->data, (uint32_t)headers->len};
    }
    if (flags & 16) {
        p->flags |= SPEC_BASIC_REPLY_TO_FLAG | SPEC_BASIC_CORRELATION_ID_FLAG;
        p->reply_to = text(PICK(r, keys));
        p->correlation_id = text("c1");
    }
    if (flags & 32) {
        p->flags |= SPEC_BASIC_USER_ID_FLAG;
        p->user_id = text(PICK(r, users));
    }
    if (flags & 64) {
        p->flags |= SPEC_BASIC_CONTENT_TYPE_FLAG | SPEC_BASIC_MESSAGE_ID_FLAG | SPEC_BASIC_TIMESTAMP_FLAG |
                    SPEC_BASIC_TYPE_FLAG | SPEC_BASIC_APP_ID_FLAG;
        p->content_type = text("text/plain");
        p->message_id = text("m1");
        p->timestamp = 1700000000;
        p->type = text("t");
        p->app_id = text("fuzz");
    }
}

/* basic.publish, its content header and the body in frames; now and then the content is
 * malformed on purpose (sizes that disagree, frames missing or out of place). */
static void op_publish(struct op_context *o)
{
    static const uint32_t sizes[] = {0, 1, 10, 255, 256, 257, 1000, 4088, 4089, 5000, 20000};
    static const uint32_t chunks[] = {UINT32_MAX, UINT32_MAX, UINT32_MAX, 1, 100, 1000};
    static uint8_t body[20001];
    static uint8_t header[FUZZ_METHOD_MAX];
    if (body[0] == 0)
        for (size_t i = 0; i < sizeof body; i++)
            body[i] = (uint8_t)('a' + i % 26);
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_BASIC_PUBLISH};
    m.args.basic_publish.exchange = text(PICK(o->r, exchanges));
    m.args.basic_publish.routing_key = text(PICK(o->r, keys));
    m.args.basic_publish.mandatory = flags & 1;
    m.args.basic_publish.immediate = (flags & 0x7e) == 0x7e;
    uint32_t size = PICK(o->r, sizes);
    uint32_t chunk = PICK(o->r, chunks);
    if (size / 64 > chunk)
        chunk = size / 64; /* at most 64 body frames: time goes to the broker, not to framing */
    uint8_t fault = take(o->r) % 32;

    struct spec_content_header h = {.class_id = fault == 3 ? 50 : 60, .body_size = size};
    struct table_buf headers = {0};
    basic_properties(o->r, &h.props, &headers);
    if (fault == 0)
        h.body_size = size + 1; /* the broker waits for a byte that never comes */
    else if (fault == 1 && size > 0)
        h.body_size = size - 1; /* one byte too many */
    long header_len = spec_content_header_encode(&h, header, sizeof header);
    table_buf_free(&headers);
    if (header_len < 0)
        return;

    send_on(o, ch, &m);
    if (fault != 2)
        fuzz_send_frame(o->c, FRAME_HEADER, ch, header, (uint32_t)header_len);
    if (fault == 4)
        send_on(o, ch, &m);
    uint32_t frame_body = o->c->frame_max - FRAME_OVERHEAD;
    if (chunk > frame_body)
        chunk = frame_body;
    for (uint32_t off = 0; off < size; off += chunk) {
        uint32_t n = size - off < chunk ? size - off : chunk;
        fuzz_send_frame(o->c, FRAME_BODY, ch, body + off, n);
    }
}

static void op_get(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = SPEC_BASIC_GET};
    m.args.basic_get.queue = queue_name(o);
    m.args.basic_get.no_ack = flags & 1;
    send_on(o, ch, &m);
}

/* One of the latest delivery tags the channel received, or a small number that may be
 * unknown (0 with multiple: everything). */
static uint64_t pick_tag(struct op_context *o, uint16_t ch)
{
    const struct fuzz_channel *c = &o->c->channels[ch];
    uint8_t b = take(o->r);
    if (b & 0x80 || c->tag_count == 0)
        return b & 0x0f;
    unsigned held = c->tag_count < FUZZ_TAGS ? c->tag_count : FUZZ_TAGS;
    return c->tags[(c->tag_count - 1 - b % held) % FUZZ_TAGS];
}

static void op_settle(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    uint64_t tag = pick_tag(o, ch);
    struct spec_method m;
    switch (flags % 4) {
    case 0:
    case 1:
        m = (struct spec_method){.id = SPEC_BASIC_ACK};
        m.args.basic_ack = (struct spec_basic_ack){.delivery_tag = tag, .multiple = flags & 4};
        break;
    case 2:
        m = (struct spec_method){.id = SPEC_BASIC_NACK};
        m.args.basic_nack = (struct spec_basic_nack){.delivery_tag = tag, .multiple = flags & 4, .requeue = flags & 8};
        break;
    default:
        m = (struct spec_method){.id = SPEC_BASIC_REJECT};
        m.args.basic_reject = (struct spec_basic_reject){.delivery_tag = tag, .requeue = flags & 8};
        break;
    }
    send_on(o, ch, &m);
}

static void op_recover(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    uint8_t flags = take(o->r);
    struct spec_method m = {.id = flags & 2 ? SPEC_BASIC_RECOVER_ASYNC : SPEC_BASIC_RECOVER};
    m.args.basic_recover.requeue = flags & 1; /* recover-async has the same layout */
    send_on(o, ch, &m);
}

static void op_confirm_select(struct op_context *o)
{
    uint16_t ch = use_channel(o);
    struct spec_method m = {.id = SPEC_CONFIRM_SELECT};
    m.args.confirm_select.nowait = take(o->r) & 1;
    send_on(o, ch, &m);
}

static void op_tx(struct op_context *o)
{
    static const uint32_t methods[] = {SPEC_TX_SELECT, SPEC_TX_COMMIT, SPEC_TX_COMMIT, SPEC_TX_ROLLBACK};
    uint16_t ch = use_channel(o);
    struct spec_method m = {.id = PICK(o->r, methods)};
    send_on(o, ch, &m);
}

/* A frame of any type on any channel with payload bytes straight from the input. */
static void op_raw_frame(struct op_context *o)
{
    static const uint8_t types[] = {FRAME_METHOD, FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT, 0, 4};
    uint8_t type = PICK(o->r, types);
    uint16_t ch = (uint16_t)(take(o->r) % (FUZZ_CHANNELS + 2));
    uint8_t payload[64];
    uint8_t len = take(o->r) % sizeof payload;
    for (uint8_t i = 0; i < len; i++)
        payload[i] = take(o->r);
    fuzz_send_frame(o->c, type, ch, payload, len);
}

static void op_raw_bytes(struct op_context *o)
{
    uint8_t bytes[32];
    uint8_t len = take(o->r) % sizeof bytes;
    for (uint8_t i = 0; i < len; i++)
        bytes[i] = take(o->r);
    fuzz_send_raw(o->c, bytes, len);
}

static void op_advance(struct op_context *o)
{
    static const uint64_t steps_ms[] = {1, 10, 60, 100, 500, 1000, 2100, 5000, 30000, 120000};
    uint8_t flags = take(o->r);
    uint64_t ms = PICK(o->r, steps_ms);
    if (flags & 1)
        for (int k = 0; k < FUZZ_CONNS; k++)
            if (o->s->clients[k].fd >= 0)
                fuzz_send_frame(&o->s->clients[k], FRAME_HEARTBEAT, 0, NULL, 0);
    fuzz_advance(o->s, ms);
}

static void op_close_connection(struct op_context *o)
{
    struct spec_method m = {.id = SPEC_CONNECTION_CLOSE};
    m.args.connection_close.reply_code = 200;
    m.args.connection_close.reply_text = text("bye");
    send_on(o, 0, &m);
    o->c->closing = true;
}

static void op_hang_up(struct op_context *o) { fuzz_hang_up(o->c); }

static void op_toggle_reading(struct op_context *o) { o->c->reading = !o->c->reading; }

static void op_switch_connection(struct op_context *o)
{
    (void)o; /* handled before the current connection is chosen */
}

typedef void (*op_fn)(struct op_context *o);

/* Repeats weigh the draw towards the operations that move messages. */
static const op_fn operations[] = {
    op_switch_connection, op_channel_open, op_channel_close, op_channel_flow,
    op_exchange_declare, op_exchange_declare, op_exchange_delete, op_exchange_bind,
    op_queue_declare, op_queue_declare, op_queue_declare, op_queue_bind, op_queue_bind,
    op_queue_purge, op_queue_delete, op_qos, op_consume, op_consume, op_cancel,
    op_publish, op_publish, op_publish, op_publish, op_publish, op_get, op_get,
    op_settle, op_settle, op_settle, op_recover, op_confirm_select, op_tx, op_tx,
    op_raw_frame, op_raw_bytes, op_advance, op_advance, op_advance, op_close_connection,
    op_hang_up, op_toggle_reading,
};

/* The current connection, usable: a gone or closing one is replaced first. */
static struct fuzz_client *usable(struct fuzz_session *s, unsigned current, const struct fuzz_handshake *base,
                                  struct reader *r)
{
    struct fuzz_client *c = &s->clients[current];
    if (c->fd >= 0 && c->open && !c->closing)
        return c;
    struct fuzz_handshake hs = *base;
    uint8_t variant = take(r);
    hs.auth_failure_close = variant & 1;
    hs.fault = variant >= 0xf0 ? (enum fuzz_handshake_fault)(1 + (variant & 0x0f) % (FUZZ_HS_FAULTS - 1))
                               : FUZZ_HS_OK;
    if (!fuzz_connect(s, c, &hs))
        return NULL;
    fuzz_settle(s);
    if (hs.fault == FUZZ_HS_NO_OPEN)
        fuzz_advance(s, 11000); /* past the handshake timeout */
    return c->fd >= 0 && c->open ? c : NULL;
}

void fuzz_run_ops(struct fuzz_session *s, uint8_t setup, const uint8_t *data, size_t size)
{
    struct reader r = {data, size, 0};
    struct fuzz_handshake base = {
        .send = true,
        .frame_max = setup & 4 ? FRAME_MIN_SIZE : 131072,
        .heartbeat = setup & 0x80 ? 2 : 0,
    };
    unsigned current = 0;
    while (r.pos < r.len && !fuzz_out_of_budget(s)) {
        uint8_t code = take(&r);
        op_fn op = operations[(code & 0x7f) % COUNT(operations)];
        if (op == op_switch_connection) {
            current = (current + 1) % FUZZ_CONNS;
            continue;
        }
        struct fuzz_client *c = usable(s, current, &base, &r);
        if (!c)
            continue;
        struct op_context o = {s, c, &r};
        op(&o);
        if (!(code & 0x80))
            fuzz_settle(s);
    }
    fuzz_settle(s);
}
