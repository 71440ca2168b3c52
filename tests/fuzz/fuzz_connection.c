/* tests/fuzz/fuzz_connection.c: whole AMQP connections through the real broker, in process.
 * Each input gets a fresh server (no listener, no durable store), fed through socketpairs that
 * the broker adopts as accepted connections and driven one event-loop pass at a time on a
 * virtual clock. Everything the broker writes is framed and decoded here; a frame or method
 * it cannot have meant to send aborts. At the end every connection is closed, the server and
 * the loop are destroyed, and no message may remain (LeakSanitizer checks everything else).
 *
 * Input, structured mode: byte 0 sets the session (fuzz_connection_ops.c decodes the rest as
 * operations: methods and content over channels 1..4 of up to two connections, raw frames,
 * time advancing, reconnects). Raw mode: the handshake (optional), then the remaining bytes
 * as the stream, written in pieces. */
#include "fuzz_connection.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "netconn.h"
#include "server.h"
#include "spec08.h"

/* Passes one operation may take before the broker must have gone quiet: far beyond what the
 * output of any input can need (the drained bytes are bounded by what the input published),
 * so running out means the broker keeps itself busy: a livelock. */
#define OP_PASS_MAX 4096
/* Passes per input; past it the remaining operations are skipped. */
#define INPUT_PASS_MAX 8000
/* Connections per input, reconnects included. */
#define CONNECTS_MAX 8
#define START_US (1000ull * 1000 * 1000)

/* WARREN_FUZZ_TRACE=1 in the environment prints every method either side sends, to read
 * what a reproducer does. */
static bool tracing(void)
{
    static int trace = -1;
    if (trace < 0)
        trace = getenv("WARREN_FUZZ_TRACE") != NULL;
    return trace;
}

static void trace_method(const char *arrow, uint16_t channel, const struct spec_method *m)
{
    if (!tracing())
        return;
    fprintf(stderr, "  %s ch %u %s", arrow, channel, spec_method_name(m->id));
    if (m->id == SPEC_QUEUE_DECLARE) {
        struct table_iter it;
        struct proto_bytes key;
        struct table_value value;
        int64_t number;
        fprintf(stderr, " '%.*s'", (int)m->args.queue_declare.queue.len,
                (const char *)m->args.queue_declare.queue.ptr);
        table_iter_init(&it, m->args.queue_declare.arguments);
        while (table_next(&it, &key, &value) > 0) {
            if (table_value_to_int(&value, &number))
                fprintf(stderr, " %.*s=%lld", (int)key.len, (const char *)key.ptr, (long long)number);
            else if (value.type == TABLE_LONGSTR)
                fprintf(stderr, " %.*s='%.*s'", (int)key.len, (const char *)key.ptr, (int)value.v.bytes.len,
                        (const char *)value.v.bytes.ptr);
            else
                fprintf(stderr, " %.*s:%c", (int)key.len, (const char *)key.ptr, value.type);
        }
    } else if (m->id == SPEC_QUEUE_BIND || m->id == SPEC_BASIC_PUBLISH) {
        const struct spec_queue_bind *b = &m->args.queue_bind;
        const struct spec_basic_publish *p = &m->args.basic_publish;
        bool bind = m->id == SPEC_QUEUE_BIND;
        if (bind)
            fprintf(stderr, " '%.*s'", (int)b->queue.len, (const char *)b->queue.ptr);
        fprintf(stderr, " '%.*s' '%.*s'", (int)(bind ? b->exchange.len : p->exchange.len),
                (const char *)(bind ? b->exchange.ptr : p->exchange.ptr),
                (int)(bind ? b->routing_key.len : p->routing_key.len),
                (const char *)(bind ? b->routing_key.ptr : p->routing_key.ptr));
    } else if (m->id == SPEC_EXCHANGE_DECLARE) {
        fprintf(stderr, " '%.*s' %.*s", (int)m->args.exchange_declare.exchange.len,
                (const char *)m->args.exchange_declare.exchange.ptr, (int)m->args.exchange_declare.type.len,
                (const char *)m->args.exchange_declare.type.ptr);
    }
    fputc('\n', stderr);
}

/* ---- output from the broker: framed, checked, answered ---- */

static void buf_append(struct fuzz_buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        b->data = realloc(b->data, cap);
        FUZZ_CHECK(b->data != NULL);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void fuzz_send_frame(struct fuzz_client *c, uint8_t type, uint16_t channel, const uint8_t *payload,
                     uint32_t size)
{
    uint8_t head[FRAME_HEADER_SIZE];
    static const uint8_t end = FRAME_END_OCTET;
    frame_put_header(head, type, channel, size);
    buf_append(&c->out, head, sizeof head);
    if (size)
        buf_append(&c->out, payload, size);
    buf_append(&c->out, &end, 1);
}

void fuzz_send_method(struct fuzz_client *c, uint16_t channel, const struct spec_method *m)
{
    static uint8_t payload[FUZZ_METHOD_MAX];
    long n = spec_method_encode(m, payload, sizeof payload);
    if (n < 0)
        return; /* a shortstr over 255 bytes: not sendable, skip it */
    trace_method("->", channel, m);
    fuzz_send_frame(c, FRAME_METHOD, channel, payload, (uint32_t)n);
}

void fuzz_send_raw(struct fuzz_client *c, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len && c->header_len < sizeof c->header; i++)
        c->header[c->header_len++] = data[i];
    buf_append(&c->out, data, len);
}

/* Decodes a method as the broker speaks it to this client: 0-8's numbering when the client's
 * protocol header asked for 0-8 (connection.close is 10/60 there, for one). */
static int client_method_decode(const struct fuzz_client *c, const uint8_t *payload, size_t len,
                                struct spec_method *out)
{
    bool is_08 = c->header_len == PROTOCOL_HEADER_SIZE &&
                 frame_check_protocol_header(c->header, c->header_len) == PROTOCOL_HEADER_SIZE &&
                 frame_header_protocol(c->header) == FRAME_PROTOCOL_0_8;
    return is_08 ? spec08_method_decode(payload, len, out) : spec_method_decode(payload, len, out);
}

static void remember_tag(struct fuzz_channel *ch, uint64_t tag)
{
    ch->tags[ch->tag_count++ % FUZZ_TAGS] = tag;
}

static void copy_short(char *out, struct proto_bytes b)
{
    memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
}

/* What a well-behaved client does with the broker's methods: answers closes and remembers
 * what later operations may refer to (delivery tags, generated names). */
static void react(struct fuzz_client *c, uint16_t number, const struct spec_method *m)
{
    struct fuzz_channel *ch = number <= FUZZ_CHANNELS ? &c->channels[number] : NULL;
    switch (m->id) {
    case SPEC_CONNECTION_OPEN_OK:
        c->open = true;
        break;
    case SPEC_CONNECTION_CLOSE: {
        struct spec_method ok = {.id = SPEC_CONNECTION_CLOSE_OK};
        fuzz_send_method(c, 0, &ok);
        c->closing = true;
        break;
    }
    case SPEC_CONNECTION_CLOSE_OK:
        c->closing = true;
        break;
    case SPEC_CHANNEL_OPEN_OK:
        if (ch)
            ch->state = FUZZ_CH_OPEN;
        break;
    case SPEC_CHANNEL_CLOSE: {
        struct spec_method ok = {.id = SPEC_CHANNEL_CLOSE_OK};
        fuzz_send_method(c, number, &ok);
        if (ch)
            ch->state = FUZZ_CH_CLOSED;
        break;
    }
    case SPEC_CHANNEL_CLOSE_OK:
        if (ch)
            ch->state = FUZZ_CH_CLOSED;
        break;
    case SPEC_BASIC_DELIVER:
        if (ch)
            remember_tag(ch, m->args.basic_deliver.delivery_tag);
        break;
    case SPEC_BASIC_GET_OK:
        if (ch)
            remember_tag(ch, m->args.basic_get_ok.delivery_tag);
        break;
    case SPEC_BASIC_CONSUME_OK:
        if (ch)
            copy_short(ch->consumer_tag, m->args.basic_consume_ok.consumer_tag);
        break;
    case SPEC_QUEUE_DECLARE_OK:
        copy_short(c->last_queue, m->args.queue_declare_ok.queue);
        break;
    default:
        break;
    }
}

/* Every frame the broker sends must frame and decode; frames respect the frame_max this
 * client will have negotiated (the broker's own maximum until then). */
static void check_output(struct fuzz_client *c)
{
    size_t off = 0;
    if (!c->seen_output && c->in.len >= PROTOCOL_HEADER_SIZE && c->in.data[0] == 'A') {
        /* The broker's answer to a protocol header it does not speak: its own, then EOF. */
        FUZZ_CHECK(memcmp(c->in.data, frame_protocol_header, PROTOCOL_HEADER_SIZE) == 0);
        off = PROTOCOL_HEADER_SIZE;
    }
    if (c->in.len > 0)
        c->seen_output = true;
    for (;;) {
        struct frame f;
        long n = frame_decode(c->in.data + off, c->in.len - off, c->frame_max, &f);
        FUZZ_CHECK(n >= 0);
        if (n == PROTO_INCOMPLETE)
            break;
        off += (size_t)n;
        if (f.type == FRAME_METHOD) {
            struct spec_method m;
            FUZZ_CHECK(client_method_decode(c, f.payload, f.size, &m) == 0);
            trace_method("<-", f.channel, &m);
            if (!c->raw)
                react(c, f.channel, &m);
        } else if (f.type == FRAME_HEADER) {
            struct spec_content_header h;
            FUZZ_CHECK(spec_content_header_decode(f.payload, f.size, &h) == 0);
        } else {
            FUZZ_CHECK(f.type == FRAME_BODY || (f.type == FRAME_HEARTBEAT && f.channel == 0));
        }
    }
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
}

static void client_reset(struct fuzz_client *c)
{
    free(c->in.data);
    free(c->out.data);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void client_hang_up(struct fuzz_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    client_reset(c);
}

/* Reads what the broker wrote. Returns true when bytes moved. */
static bool client_read(struct fuzz_client *c)
{
    if (c->fd < 0 || !c->reading)
        return false;
    bool moved = false;
    for (;;) {
        uint8_t chunk[65536];
        ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            buf_append(&c->in, chunk, (size_t)n);
            moved = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        check_output(c);
        client_hang_up(c); /* EOF or reset: the broker is done with this connection */
        return true;
    }
    if (moved)
        check_output(c);
    return moved;
}

/* Writes at most `piece` bytes (0: all it can). Returns true when bytes moved. */
static bool client_write(struct fuzz_client *c, size_t piece)
{
    if (c->fd < 0 || c->out_sent >= c->out.len)
        return false;
    size_t len = c->out.len - c->out_sent;
    if (piece && len > piece)
        len = piece;
    ssize_t n = send(c->fd, c->out.data + c->out_sent, len, MSG_NOSIGNAL);
    if (n <= 0)
        return false; /* full (the broker paused reading) or gone: the read side finds out */
    c->out_sent += (size_t)n;
    if (c->out_sent == c->out.len)
        c->out.len = c->out_sent = 0;
    return true;
}

/* ---- the session ---- */

static uint64_t virtual_clock(void *ctx) { return ((struct fuzz_session *)ctx)->now_us; }

/* Runs passes until the broker and the clients have had nothing to say for two passes in a
 * row (the second catches timers a pass arms with delay 0). */
void fuzz_settle(struct fuzz_session *s)
{
    int idle = 0;
    for (int i = 0; i < OP_PASS_MAX; i++) {
        bool moved = false;
        /* Pieces for the first passes only, so a big publish costs a few passes, not
         * thousands; the frames cut in the middle are what matters. */
        for (int k = 0; k < FUZZ_CONNS; k++)
            moved |= client_write(&s->clients[k], i < 32 ? s->piece : 0);
        FUZZ_CHECK(loop_run_once(s->loop, 0) == 0);
        s->passes++;
        for (int k = 0; k < FUZZ_CONNS; k++)
            moved |= client_read(&s->clients[k]);
        if (moved)
            idle = 0;
        else if (++idle >= 2)
            return;
    }
    fprintf(stderr, "fuzz_connection: the broker did not go quiet within %d passes\n", OP_PASS_MAX);
    abort();
}

void fuzz_advance(struct fuzz_session *s, uint64_t ms)
{
    if (tracing())
        fprintf(stderr, "  clock +%llu ms\n", (unsigned long long)ms);
    s->now_us += ms * 1000;
    fuzz_settle(s);
}

bool fuzz_out_of_budget(const struct fuzz_session *s) { return s->passes >= INPUT_PASS_MAX; }

/* Opens a socketpair, hands one end to the broker, queues the handshake on the other. */
bool fuzz_connect(struct fuzz_session *s, struct fuzz_client *c, const struct fuzz_handshake *hs)
{
    if (s->connects >= CONNECTS_MAX)
        return false;
    s->connects++;
    client_hang_up(c);
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return false;
    if (server_adopt(s->server, fds[0]) != 0) {
        close(fds[1]);
        return false;
    }
    c->fd = fds[1];
    c->reading = true;
    c->raw = hs->raw;
    c->frame_max = s->config.frame_max;
    if (!hs->send)
        return true;

    fuzz_send_raw(c, frame_protocol_header, PROTOCOL_HEADER_SIZE);
    struct table_buf caps = {0}, props = {0};
    table_buf_put_bool(&caps, "publisher_confirms", true);
    table_buf_put_bool(&caps, "basic.nack", true);
    table_buf_put_bool(&caps, "consumer_cancel_notify", true);
    table_buf_put_bool(&caps, "connection.blocked", true);
    table_buf_put_bool(&caps, "authentication_failure_close", hs->auth_failure_close);
    struct table_value nested = {.type = TABLE_TABLE};
    nested.v.bytes = (struct proto_bytes){caps.data, (uint32_t)caps.len};
    table_buf_put_field(&props, "capabilities", 12, &nested);
    table_buf_put_string(&props, "product", proto_bytes_of("fuzz_connection"));
    const char *response = hs->fault == FUZZ_HS_WRONG_PASSWORD ? "\0guest\0wrong" : "\0guest\0guest";

    struct spec_method m = {.id = SPEC_CONNECTION_START_OK};
    m.args.connection_start_ok.client_properties = (struct proto_bytes){props.data, (uint32_t)props.len};
    m.args.connection_start_ok.mechanism = proto_bytes_of(hs->fault == FUZZ_HS_AMQPLAIN ? "AMQPLAIN" : "PLAIN");
    m.args.connection_start_ok.response = (struct proto_bytes){(const uint8_t *)response, 12};
    m.args.connection_start_ok.locale = proto_bytes_of("en_US");
    fuzz_send_method(c, 0, &m);
    table_buf_free(&caps);
    table_buf_free(&props);

    m = (struct spec_method){.id = SPEC_CONNECTION_TUNE_OK};
    m.args.connection_tune_ok.channel_max = hs->fault == FUZZ_HS_CHANNEL_MAX_0 ? 0 : 2 * FUZZ_CHANNELS;
    m.args.connection_tune_ok.frame_max = hs->fault == FUZZ_HS_FRAME_MAX_SMALL ? 512 : hs->frame_max;
    m.args.connection_tune_ok.heartbeat = hs->heartbeat;
    fuzz_send_method(c, 0, &m);
    if (hs->fault == FUZZ_HS_OK || hs->fault == FUZZ_HS_UNKNOWN_VHOST || hs->fault == FUZZ_HS_NO_OPEN)
        c->frame_max = hs->frame_max;
    if (hs->fault == FUZZ_HS_NO_OPEN)
        return true;

    m = (struct spec_method){.id = SPEC_CONNECTION_OPEN};
    m.args.connection_open.virtual_host = proto_bytes_of(hs->fault == FUZZ_HS_UNKNOWN_VHOST ? "nowhere" : "/");
    fuzz_send_method(c, 0, &m);
    return true;
}

void fuzz_hang_up(struct fuzz_client *c) { client_hang_up(c); }

static void session_start(struct fuzz_session *s, uint8_t setup)
{
    static FILE *devnull;
    if (!devnull) {
        /* Every log line is still formatted (and its arguments checked by the sanitizers). */
        devnull = fopen("/dev/null", "w");
        FUZZ_CHECK(devnull != NULL);
        log_set_stream(devnull);
        log_set_level(LOG_DEBUG);
    }
    memset(s, 0, sizeof *s);
    for (int k = 0; k < FUZZ_CONNS; k++)
        client_reset(&s->clients[k]);
    s->now_us = START_US;
    server_config_defaults(&s->config);
    s->config.listen = false;
    s->config.data_dir = NULL; /* no store: an execution stays in memory and in microseconds */
    s->config.max_message_size = 1u << 20;
    /* A tiny watermark turns the memory alarm on and off with every few messages. */
    s->config.memory_high_watermark = setup & 0x40 ? 16384 : 1ull << 30;
    s->loop = loop_create();
    FUZZ_CHECK(s->loop != NULL);
    loop_set_clock(s->loop, virtual_clock, s);
    s->server = server_create(s->loop, &s->config);
    FUZZ_CHECK(s->server != NULL);
    static const size_t pieces[] = {0, 0, 0, 7, 64, 509};
    s->piece = pieces[((setup >> 3) & 7) % 6];
}

/* Hangs up every client, lets the broker notice, then destroys it; nothing may be left. */
static void session_end(struct fuzz_session *s)
{
    for (int k = 0; k < FUZZ_CONNS; k++)
        client_hang_up(&s->clients[k]);
    for (int i = 0; i < 16 && netconn_count(s->loop) > 0; i++) {
        s->now_us += 500 * 1000; /* past the close linger, if it comes to that */
        FUZZ_CHECK(loop_run_once(s->loop, 0) == 0);
    }
    server_destroy(s->server);
    loop_destroy(s->loop);
    FUZZ_CHECK(message_memory_bytes() == 0);
}

/* Raw mode: the stream in pieces whose sizes come from a seed, a pass after each. */
static void run_raw(struct fuzz_session *s, uint8_t setup, const uint8_t *data, size_t size)
{
    struct fuzz_client *c = &s->clients[0];
    struct fuzz_handshake hs = {.send = setup & 1, .raw = true, .auth_failure_close = true, .frame_max = 131072};
    if (!fuzz_connect(s, c, &hs))
        return;
    fuzz_settle(s);
    uint32_t rng = size ? data[0] | 1u : 1u;
    for (size_t off = size ? 1 : 0; off < size && c->fd >= 0 && !fuzz_out_of_budget(s);) {
        rng = rng * 1103515245u + 12345u;
        size_t piece = 1 + (rng >> 16) % 509;
        if (piece > size - off)
            piece = size - off;
        fuzz_send_raw(c, data + off, piece);
        off += piece;
        fuzz_settle(s);
        if ((rng >> 8) % 16 == 0)
            fuzz_advance(s, 1000);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t setup = data[0];
    struct fuzz_session s;
    session_start(&s, setup);
    if ((setup & 3) == 3)
        run_raw(&s, setup >> 2, data + 1, size - 1);
    else
        fuzz_run_ops(&s, setup, data + 1, size - 1);
    session_end(&s);
    return 0;
}
