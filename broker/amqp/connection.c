/* broker/amqp/connection.c: the AMQP connection state machine. Bytes arrive from the network
 * layer; this file cuts them into frames, runs the handshake (protocol header, start/start-ok,
 * tune/tune-ok, open), keeps heartbeats both ways, hands channel frames to their channel, and
 * owns the one place where a hard error becomes connection.close. */
#include "connection.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "auth.h"
#include "channel.h"
#include "channel_internal.h"
#include "event_loop.h"
#include "flow.h"
#include "frame.h"
#include "introspect.h"
#include "log.h"
#include "netconn.h"
#include "server.h"
#include "spec.h"
#include "spec08.h"
#include "table.h"
#include "uthash.h"
#include "vhost.h"

/* The channel table (the only table this file adds to) starts with 4 buckets instead of
 * uthash's 32, which cost an idle connection 512 bytes: most connections have one channel or a
 * few, and uthash doubles the buckets as a table grows. */
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 4U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 2U

enum connection_state {
    STATE_EXPECT_HEADER,
    STATE_EXPECT_START_OK,
    STATE_EXPECT_TUNE_OK,
    STATE_EXPECT_OPEN,
    STATE_OPEN,
    STATE_CLOSING, /* we sent connection.close: only close-ok (or close) is read */
    STATE_PEER_CLOSED, /* we answered the peer's close: further closes get close-ok again */
    STATE_CLOSED,  /* the socket is closing; input is ignored */
};

/* Encoded method payloads we send are small (the largest is connection.start); deliveries
 * carry at most three shortstrs. */
#define METHOD_PAYLOAD_MAX 4096
/* The content methods (deliver, get-ok, return) encode to at most 4 + 3 * 256 + 9 bytes. */
#define CONTENT_METHOD_MAX 1024
/* A content header up to this size is framed in the same reservation as its method. */
#define CONTENT_HEADER_INLINE_MAX 2048
/* Bodies up to this size are copied into the output queue (cheaper than tracking a slice of
 * the message); larger ones are queued by reference. */
#define BODY_COPY_MAX 256
#define CLOSE_OK_TIMEOUT_MS 3000
#define WARREN_RABBITMQ_VERSION "3.10.8" /* the RabbitMQ release whose behaviour Warren follows */

struct channel_slot {
    uint16_t number;
    struct channel *channel;
    UT_hash_handle hh;
};

struct connection {
    struct server *server;
    struct netconn *net;
    enum connection_state state;
    enum frame_protocol protocol; /* from the client's protocol header */
    uint16_t channel_max;
    uint32_t frame_max;
    uint16_t heartbeat; /* seconds, 0 = off */
    uint64_t timer;     /* handshake, heartbeat or close-ok timer */
    uint64_t heartbeat_grace_ms; /* the last heartbeat tick that found input paused on purpose */
    struct channel_slot *channels;
    struct channel_slot *last_slot; /* cache: most frames go to the channel of the last one */
    uint32_t open_channels;
    bool auth_failure_close;
    bool publisher;
    bool blocked;
    uint8_t *client_capabilities; /* copy of the capabilities table, owned */
    uint32_t client_capabilities_len;
    uint8_t *client_properties; /* copy of start-ok's client-properties table, owned */
    uint32_t client_properties_len;
    uint64_t connected_at; /* wall clock, ms since the epoch */
    char mechanism[16];    /* the authentication mechanism chosen in start-ok */
    char user[256];
    char name[128];
    struct vhost *vhost; /* after connection.open */
    struct stats_channel closed_channels; /* counters of its channels already gone */
    struct flow flow;                     /* per-publisher flow control (flow.h) */
    struct connection_series series;
    void (*wait_abandon)(void *arg);      /* connection_wait: set while waiting */
    void *wait_arg;
};

static void arm_timer(struct connection *conn, uint64_t delay_ms, loop_timer_fn fn);
static struct channel_slot *find_slot(struct connection *conn, uint16_t number);

uint32_t connection_frame_max(const struct connection *conn) { return conn->frame_max; }
struct server *connection_server(const struct connection *conn) { return conn->server; }
struct netconn *connection_net(const struct connection *conn) { return conn->net; }
const char *connection_name(const struct connection *conn) { return conn->name; }
const char *connection_user(const struct connection *conn) { return conn->user; }
struct vhost *connection_vhost(const struct connection *conn) { return conn->vhost; }
const struct stats_channel *connection_closed_channel_stats(const struct connection *conn)
{
    return &conn->closed_channels;
}
struct connection_series *connection_series(struct connection *conn) { return &conn->series; }
struct flow *connection_flow(struct connection *conn) { return &conn->flow; }

bool connection_consumes_from(const struct connection *conn, const struct queue *queue)
{
    const struct channel_slot *slot, *tmp;
    HASH_ITER(hh, conn->channels, slot, tmp) {
        const struct consumer *c, *ctmp;
        HASH_ITER(hh, slot->channel->consumers, c, ctmp) {
            if (c->queue == queue)
                return true;
        }
    }
    return false;
}

const char *connection_protocol_name(const struct connection *conn)
{
    return conn->protocol == FRAME_PROTOCOL_0_8 ? "AMQP 8-0" : "AMQP 0-9-1";
}

const char *connection_vhost_name(const struct connection *conn) { return conn->vhost ? vhost_name(conn->vhost) : NULL; }

bool connection_client_has_capability(const struct connection *conn, const char *name)
{
    struct proto_bytes caps = {conn->client_capabilities, conn->client_capabilities_len};
    struct table_value v;
    return table_find(caps, name, &v) == 1 && v.type == TABLE_BOOL && v.v.boolean;
}

static void find_by_name(struct netconn *net, void *arg)
{
    struct {
        const char *name;
        struct connection **found;
    } *f = arg;
    struct connection *conn = connection_of(net);
    if (conn && !*f->found && strcmp(conn->name, f->name) == 0)
        *f->found = conn;
}

void connection_describe(const struct connection *conn, struct introspect_connection *out)
{
    static const char *const states[] = {"starting", "starting", "tuning", "opening", "running", "closing",
                                         "closing", "closed"};
    const char *peer = netconn_peer_name(conn->net);
    static char host[64];
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n >= sizeof host)
        n = sizeof host - 1;
    memcpy(host, peer, n);
    host[n] = '\0';
    *out = (struct introspect_connection){
        .name = conn->name,
        .peer_host = host,
        .peer_port = colon ? (uint16_t)atoi(colon + 1) : 0,
        .user = conn->user,
        .vhost = conn->vhost ? vhost_name(conn->vhost) : "",
        .state = conn->state == STATE_OPEN && flow_shown(&conn->flow, loop_now_ms(netconn_loop(conn->net)))
                     ? "flow"
                     : states[conn->state],
        .channels = conn->open_channels,
        .frame_max = conn->frame_max,
        .channel_max = conn->channel_max,
        .heartbeat = conn->heartbeat,
        .blocked = conn->blocked,
        .client_product = "",
        .client_properties = {conn->client_properties, conn->client_properties_len},
        .connected_at = conn->connected_at,
        .auth_mechanism = conn->mechanism,
        .protocol = connection_protocol_name(conn),
        .direct = netconn_is_internal(conn->net),
    };
    struct table_value product;
    if (table_find(out->client_properties, "product", &product) == 1 && product.type == TABLE_LONGSTR) {
        static char text[256];
        snprintf(text, sizeof text, "%.*s", (int)product.v.bytes.len, (const char *)product.v.bytes.ptr);
        out->client_product = text;
    }
}

struct connection *connection_find(struct server *server, const char *name)
{
    struct connection *found = NULL;
    struct finder {
        const char *name;
        struct connection **found;
    } f = {name, &found};
    netconn_for_each(server_loop(server), find_by_name, &f);
    return found;
}

void connection_for_each_channel(struct connection *conn, void (*fn)(struct channel *ch, void *arg), void *arg)
{
    struct channel_slot *slot, *tmp;
    HASH_ITER(hh, conn->channels, slot, tmp) {
        fn(slot->channel, arg);
    }
}

/* ---- output ---- */

int connection_send_method(struct connection *conn, uint16_t channel, const struct spec_method *m)
{
    uint8_t *out = netconn_reserve(conn->net, FRAME_OVERHEAD + METHOD_PAYLOAD_MAX);
    if (!out)
        return -ENOMEM;
    long n = conn->protocol == FRAME_PROTOCOL_0_8 ? spec08_method_encode(m, out + FRAME_HEADER_SIZE, METHOD_PAYLOAD_MAX)
                                                  : spec_method_encode(m, out + FRAME_HEADER_SIZE, METHOD_PAYLOAD_MAX);
    if (n < 0) {
        netconn_commit(conn->net, 0);
        log_error("%s: cannot encode %s: %s", conn->name, spec_method_name(m->id), proto_strerror((int)n));
        return -EINVAL;
    }
    frame_put_header(out, FRAME_METHOD, channel, (uint32_t)n);
    out[FRAME_HEADER_SIZE + n] = FRAME_END_OCTET;
    netconn_commit(conn->net, FRAME_OVERHEAD + (size_t)n);
    return 0;
}

/* Body frames, split at frame_max; small pieces copied, the rest referenced. */
static int send_body(struct connection *conn, uint16_t channel, const uint8_t *body, uint64_t body_size,
                     void (*retain)(void *owner), void (*release)(void *owner), void *owner)
{
    uint64_t chunk_max = conn->frame_max - FRAME_OVERHEAD;
    for (uint64_t off = 0; off < body_size; off += chunk_max) {
        uint64_t chunk = body_size - off < chunk_max ? body_size - off : chunk_max;
        uint8_t head[FRAME_HEADER_SIZE];
        frame_put_header(head, FRAME_BODY, channel, (uint32_t)chunk);
        static const uint8_t end = FRAME_END_OCTET;
        if (netconn_write(conn->net, head, sizeof head) != 0)
            return -ENOMEM;
        if (chunk <= BODY_COPY_MAX) {
            if (netconn_write(conn->net, body + off, (size_t)chunk) != 0)
                return -ENOMEM;
        } else {
            retain(owner);
            if (netconn_write_ref(conn->net, body + off, (size_t)chunk, release, owner) != 0)
                return -ENOMEM;
        }
        if (netconn_write(conn->net, &end, 1) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* Frames the method, the header and (when small) the body into one reservation of the
 * output queue: the per-delivery path, so it avoids a queue append per frame piece. */
int connection_send_content(struct connection *conn, uint16_t channel, const struct spec_method *m,
                            struct proto_bytes header, const uint8_t *body, uint64_t body_size,
                            void (*retain)(void *owner), void (*release)(void *owner), void *owner)
{
    if (header.len > CONTENT_HEADER_INLINE_MAX) {
        int rc = connection_send_method(conn, channel, m);
        if (rc != 0)
            return rc;
        uint8_t *out = netconn_reserve(conn->net, FRAME_OVERHEAD + header.len);
        if (!out)
            return -ENOMEM;
        frame_put_header(out, FRAME_HEADER, channel, header.len);
        memcpy(out + FRAME_HEADER_SIZE, header.ptr, header.len);
        out[FRAME_HEADER_SIZE + header.len] = FRAME_END_OCTET;
        netconn_commit(conn->net, FRAME_OVERHEAD + header.len);
        return send_body(conn, channel, body, body_size, retain, release, owner);
    }
    bool body_inline = body_size <= BODY_COPY_MAX;
    size_t reserve = FRAME_OVERHEAD + CONTENT_METHOD_MAX + FRAME_OVERHEAD + header.len +
                     (body_inline && body_size ? FRAME_OVERHEAD + (size_t)body_size : 0);
    uint8_t *out = netconn_reserve(conn->net, reserve);
    if (!out)
        return -ENOMEM;
    long n = spec_method_encode(m, out + FRAME_HEADER_SIZE, CONTENT_METHOD_MAX);
    if (n < 0) {
        netconn_commit(conn->net, 0);
        log_error("%s: cannot encode %s: %s", conn->name, spec_method_name(m->id), proto_strerror((int)n));
        return -EINVAL;
    }
    frame_put_header(out, FRAME_METHOD, channel, (uint32_t)n);
    uint8_t *at = out + FRAME_HEADER_SIZE + n;
    *at++ = FRAME_END_OCTET;
    frame_put_header(at, FRAME_HEADER, channel, header.len);
    memcpy(at + FRAME_HEADER_SIZE, header.ptr, header.len);
    at += FRAME_HEADER_SIZE + header.len;
    *at++ = FRAME_END_OCTET;
    if (body_inline) {
        if (body_size) {
            frame_put_header(at, FRAME_BODY, channel, (uint32_t)body_size);
            memcpy(at + FRAME_HEADER_SIZE, body, (size_t)body_size);
            at += FRAME_HEADER_SIZE + body_size;
            *at++ = FRAME_END_OCTET;
        }
        netconn_commit(conn->net, (size_t)(at - out));
        return 0;
    }
    netconn_commit(conn->net, (size_t)(at - out));
    return send_body(conn, channel, body, body_size, retain, release, owner);
}

static void send_heartbeat(struct connection *conn)
{
    uint8_t frame[FRAME_OVERHEAD];
    frame_put_header(frame, FRAME_HEARTBEAT, 0, 0);
    frame[FRAME_HEADER_SIZE] = FRAME_END_OCTET;
    netconn_write(conn->net, frame, sizeof frame);
}

/* ---- waiting for the cluster ---- */

void connection_wait(struct connection *conn, void (*abandon)(void *arg), void *arg)
{
    conn->wait_abandon = abandon;
    conn->wait_arg = arg;
    netconn_pause_input(conn->net, NETCONN_PAUSE_WAIT, true);
}

void connection_resume(struct connection *conn)
{
    conn->wait_abandon = NULL;
    conn->wait_arg = NULL;
    netconn_pause_input(conn->net, NETCONN_PAUSE_WAIT, false);
}

struct channel *connection_channel(struct connection *conn, uint16_t number)
{
    struct channel_slot *slot = find_slot(conn, number);
    return slot ? slot->channel : NULL;
}

bool connection_is_running(const struct connection *conn) { return conn->state == STATE_OPEN; }

/* ---- memory alarm ---- */

void connection_note_publish(struct connection *conn)
{
    if (conn->publisher)
        return;
    conn->publisher = true;
    if (server_memory_alarm(conn->server))
        connection_set_blocked(conn, true, server_alarm_reason(conn->server));
}

void connection_set_blocked(struct connection *conn, bool blocked, const char *reason)
{
    /* The management API's own connection (inner_client.h) is not blocked: RabbitMQ's alarms
     * block network readers, and its management plugin's direct connection has none, so its
     * aliveness test answers during an alarm (the alarm has a health check of its own). */
    if (conn->state != STATE_OPEN || conn->blocked == blocked || netconn_is_internal(conn->net))
        return;
    /* 0-8 has no connection.blocked: its number is 0-8's connection.close. */
    if (conn->protocol != FRAME_PROTOCOL_0_8 && connection_client_has_capability(conn, "connection.blocked")) {
        struct spec_method m = {.id = blocked ? SPEC_CONNECTION_BLOCKED : SPEC_CONNECTION_UNBLOCKED};
        if (blocked)
            m.args.connection_blocked.reason = (struct proto_bytes){(const uint8_t *)reason, (uint32_t)strlen(reason)};
        connection_send_method(conn, 0, &m);
    }
    conn->blocked = blocked;
    /* Only publishers stop: consumers must keep acknowledging, or memory never drops. */
    if (conn->publisher)
        netconn_pause_input(conn->net, NETCONN_PAUSE_BLOCKED, blocked);
}

/* ---- closing ---- */

static void close_ok_timeout(struct event_loop *loop, void *data)
{
    (void)loop;
    struct connection *conn = data;
    conn->timer = 0;
    if (conn->state == STATE_CLOSING)
        log_warning("%s: no connection.close-ok within %d ms, dropping the socket", conn->name,
                    CLOSE_OK_TIMEOUT_MS);
    conn->state = STATE_CLOSED;
    netconn_close(conn->net);
}

static void send_close(struct connection *conn, uint16_t code, const char *text, uint32_t method_id)
{
    struct spec_method m = {.id = SPEC_CONNECTION_CLOSE};
    m.args.connection_close.reply_code = code;
    m.args.connection_close.reply_text.ptr = (const uint8_t *)text;
    m.args.connection_close.reply_text.len = (uint32_t)strnlen(text, 255);
    m.args.connection_close.class_id = (uint16_t)SPEC_METHOD_CLASS(method_id);
    m.args.connection_close.method_id = (uint16_t)SPEC_METHOD_INDEX(method_id);
    connection_send_method(conn, 0, &m);
    conn->state = STATE_CLOSING;
    arm_timer(conn, CLOSE_OK_TIMEOUT_MS, close_ok_timeout);
}

void connection_fail(struct connection *conn, const struct reply_error *err)
{
    if (conn->state >= STATE_CLOSING)
        return;
    log_warning("%s: closing connection: %s (%u)%s%s", conn->name, err->text, err->code,
                err->method_id ? " on " : "", err->method_id ? spec_method_name(err->method_id) : "");
    send_close(conn, err->code, err->text, err->method_id);
}

void connection_force_close(struct connection *conn, const char *reason)
{
    if (conn->state >= STATE_CLOSING)
        return;
    if (conn->state < STATE_EXPECT_TUNE_OK) {
        /* Before connection.start-ok the peer cannot take a close method: just hang up. */
        conn->state = STATE_CLOSED;
        netconn_close(conn->net);
        return;
    }
    char text[REPLY_TEXT_MAX + 1];
    snprintf(text, sizeof text, "CONNECTION_FORCED - %s", reason);
    log_info("%s: closing connection: %s", conn->name, text);
    send_close(conn, SPEC_CONNECTION_FORCED, text, 0);
}

/* ---- timers ---- */

static void arm_timer(struct connection *conn, uint64_t delay_ms, loop_timer_fn fn)
{
    struct event_loop *loop = netconn_loop(conn->net);
    if (conn->timer)
        loop_timer_cancel(loop, conn->timer);
    conn->timer = loop_timer_add(loop, delay_ms, fn, conn);
}

static void handshake_timeout(struct event_loop *loop, void *data)
{
    (void)loop;
    struct connection *conn = data;
    conn->timer = 0;
    if (conn->state >= STATE_OPEN)
        return;
    log_warning("%s: handshake not completed within %u ms, closing", conn->name,
                server_config(conn->server)->handshake_timeout_ms);
    conn->state = STATE_CLOSED;
    netconn_close(conn->net);
}

/* Fires every half heartbeat interval: sends a heartbeat when we have been quiet that long
 * and drops a peer that has been silent for two whole intervals (RabbitMQ's rule). */
static void heartbeat_tick(struct event_loop *loop, void *data)
{
    struct connection *conn = data;
    conn->timer = 0;
    if (conn->state >= STATE_CLOSING || conn->heartbeat == 0)
        return;
    uint64_t now = loop_now_ms(loop);
    uint64_t interval = (uint64_t)conn->heartbeat * 1000;
    /* While the broker itself stops reading the peer (blocked by an alarm, flow control, a
     * cluster command in flight) the peer's heartbeats wait in the socket: its silence is ours,
     * and counts only from the last tick that saw the pause (RabbitMQ pauses its heartbeat
     * monitor while a connection is blocked). */
    if (netconn_input_paused(conn->net))
        conn->heartbeat_grace_ms = now;
    uint64_t heard = netconn_last_input_ms(conn->net);
    if (conn->heartbeat_grace_ms > heard)
        heard = conn->heartbeat_grace_ms;
    if (now - heard >= 2 * interval) {
        log_warning("%s: missed heartbeats from client, timeout: %us", conn->name, conn->heartbeat);
        conn->state = STATE_CLOSED;
        netconn_close(conn->net);
        return;
    }
    if (now - netconn_last_output_ms(conn->net) >= interval / 2 && netconn_output_pending(conn->net) == 0)
        send_heartbeat(conn);
    arm_timer(conn, interval / 2, heartbeat_tick);
}

/* ---- handshake ---- */

static int send_start(struct connection *conn)
{
    static const char *const capabilities[] = {
        "publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
        "connection.blocked", "consumer_priorities", "authentication_failure_close",
        "per_consumer_qos", "direct_reply_to",
    };
    struct table_buf caps = {0}, props = {0};
    for (size_t i = 0; i < sizeof capabilities / sizeof *capabilities; i++)
        table_buf_put_bool(&caps, capabilities[i], true);
    struct table_value nested = {.type = TABLE_TABLE};
    nested.v.bytes.ptr = caps.data;
    nested.v.bytes.len = (uint32_t)caps.len;
    table_buf_put_field(&props, "capabilities", 12, &nested);
    /* Clients gate RabbitMQ extensions (and their own tests) on product "RabbitMQ" and its
     * version, so Warren answers as the RabbitMQ release whose behaviour it follows and says
     * what it really is in "information" and "warren_version". */
    table_buf_put_string(&props, "cluster_name", proto_bytes_of("warren@localhost"));
    table_buf_put_string(&props, "copyright", proto_bytes_of("Copyright (c) the Warren developers"));
    table_buf_put_string(&props, "information", proto_bytes_of("Warren " WARREN_VERSION ", an AMQP 0-9-1 broker compatible with RabbitMQ"));
    table_buf_put_string(&props, "platform", proto_bytes_of("Warren (C11/Linux)"));
    table_buf_put_string(&props, "product", proto_bytes_of("RabbitMQ"));
    table_buf_put_string(&props, "version", proto_bytes_of(WARREN_RABBITMQ_VERSION));
    table_buf_put_string(&props, "warren_version", proto_bytes_of(WARREN_VERSION));

    struct spec_method m = {.id = SPEC_CONNECTION_START};
    /* RabbitMQ announces 0-9 to 0-9-1 and 0-9 clients, and 8-0 to 0-8 clients. */
    bool v08 = conn->protocol == FRAME_PROTOCOL_0_8;
    m.args.connection_start.version_major = v08 ? 8 : 0;
    m.args.connection_start.version_minor = v08 ? 0 : 9;
    m.args.connection_start.server_properties.ptr = props.data;
    m.args.connection_start.server_properties.len = (uint32_t)props.len;
    const char *mechanisms = netconn_peer_identity(conn->net) ? AUTH_MECHANISMS_EXTERNAL : AUTH_MECHANISMS;
    m.args.connection_start.mechanisms.ptr = (const uint8_t *)mechanisms;
    m.args.connection_start.mechanisms.len = (uint32_t)strlen(mechanisms);
    m.args.connection_start.locales.ptr = (const uint8_t *)"en_US";
    m.args.connection_start.locales.len = 5;
    int rc = connection_send_method(conn, 0, &m);
    table_buf_free(&caps);
    table_buf_free(&props);
    return rc;
}

static void remember_capabilities(struct connection *conn, struct proto_bytes client_properties)
{
    struct table_value v;
    if (table_find(client_properties, "capabilities", &v) != 1 || v.type != TABLE_TABLE || v.v.bytes.len == 0)
        return;
    conn->client_capabilities = malloc(v.v.bytes.len);
    if (!conn->client_capabilities)
        return;
    memcpy(conn->client_capabilities, v.v.bytes.ptr, v.v.bytes.len);
    conn->client_capabilities_len = v.v.bytes.len;
    conn->auth_failure_close = connection_client_has_capability(conn, "authentication_failure_close");
}

static int handle_start_ok(struct connection *conn, const struct spec_connection_start_ok *a,
                           struct reply_error *err)
{
    remember_capabilities(conn, a->client_properties);
    free(conn->client_properties);
    conn->client_properties = a->client_properties.len ? malloc(a->client_properties.len) : NULL;
    if (conn->client_properties) {
        memcpy(conn->client_properties, a->client_properties.ptr, a->client_properties.len);
        conn->client_properties_len = a->client_properties.len;
    }
    snprintf(conn->mechanism, sizeof conn->mechanism, "%.*s", (int)a->mechanism.len, (const char *)a->mechanism.ptr);
    struct proto_bytes user, password;
    int rc;
    bool allowed;
    if (proto_bytes_is(a->mechanism, "EXTERNAL")) {
        /* The user is the one the verified client certificate names; the response is ignored. */
        const char *identity = netconn_peer_identity(conn->net);
        rc = identity ? 0 : -1;
        user = proto_bytes_of(identity ? identity : "");
        allowed = auth_check_external(server_access(conn->server), server_config(conn->server), identity,
                                      netconn_peer_is_loopback(conn->net));
    } else {
        rc = auth_parse_response(a->mechanism, a->response, &user, &password);
        allowed = rc == 0 && auth_check(server_access(conn->server), server_config(conn->server), user,
                                        password, netconn_peer_is_loopback(conn->net));
    }
    if (rc == -2)
        return reply_fail(err, SPEC_COMMAND_INVALID, SPEC_CONNECTION_START_OK,
                          "unknown authentication mechanism '%.*s'", (int)a->mechanism.len,
                          (const char *)a->mechanism.ptr);
    if (!allowed) {
        if (rc == 0)
            snprintf(conn->user, sizeof conn->user, "%.*s", (int)user.len, (const char *)user.ptr);
        log_warning("%s: login refused for user '%s' with mechanism %.*s", conn->name, conn->user,
                    (int)a->mechanism.len, (const char *)a->mechanism.ptr);
        if (!conn->auth_failure_close) {
            /* Clients that do not announce authentication_failure_close expect a hang-up. */
            conn->state = STATE_CLOSED;
            netconn_close(conn->net);
            return 0;
        }
        return reply_fail(err, SPEC_ACCESS_REFUSED, SPEC_CONNECTION_START_OK,
                          "Login was refused using authentication mechanism %.*s. "
                          "For details see the broker logfile.",
                          (int)a->mechanism.len, (const char *)a->mechanism.ptr);
    }
    snprintf(conn->user, sizeof conn->user, "%.*s", (int)user.len, (const char *)user.ptr);
    const struct server_config *cfg = server_config(conn->server);
    struct spec_method m = {.id = SPEC_CONNECTION_TUNE};
    m.args.connection_tune.channel_max = cfg->channel_max;
    m.args.connection_tune.frame_max = cfg->frame_max;
    m.args.connection_tune.heartbeat = cfg->heartbeat;
    conn->state = STATE_EXPECT_TUNE_OK;
    return connection_send_method(conn, 0, &m);
}

static int handle_tune_ok(struct connection *conn, const struct spec_connection_tune_ok *a,
                          struct reply_error *err)
{
    const struct server_config *cfg = server_config(conn->server);
    /* RabbitMQ refuses values above what it proposed (0, "no limit", is above any limit), and
     * frame sizes below the minimum. */
    if (a->frame_max == 0 || a->channel_max == 0)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_TUNE_OK,
                          "frame_max=%u, channel_max=%u: 0 (no limit) exceeds the server's limits", a->frame_max,
                          a->channel_max);
    if (a->frame_max < FRAME_MIN_SIZE)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_TUNE_OK,
                          "frame_max=%u < %u min size", a->frame_max, FRAME_MIN_SIZE);
    if (a->frame_max > cfg->frame_max)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_TUNE_OK,
                          "frame_max=%u > %u max size", a->frame_max, cfg->frame_max);
    if (a->channel_max > cfg->channel_max)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_TUNE_OK,
                          "channel_max=%u > %u max", a->channel_max, cfg->channel_max);
    conn->frame_max = a->frame_max;
    conn->channel_max = a->channel_max;
    conn->heartbeat = a->heartbeat;
    netconn_set_input_max(conn->net, conn->frame_max + FRAME_OVERHEAD);
    conn->state = STATE_EXPECT_OPEN;
    return 0;
}

static int handle_open(struct connection *conn, const struct spec_connection_open *a,
                       struct reply_error *err)
{
    char vhost[256];
    snprintf(vhost, sizeof vhost, "%.*s", (int)a->virtual_host.len, (const char *)a->virtual_host.ptr);
    if (!access_vhost_exists(server_access(conn->server), vhost))
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_OPEN, "vhost %s not found", vhost);
    /* rabbit_reader checks the vhost's connection limit before the user's permissions. */
    int64_t limit = server_vhost_connection_limit_reached(conn->server, a->virtual_host);
    if (limit >= 0)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_OPEN,
                          "access to vhost '%s' refused for user '%s': connection limit (%lld) is reached", vhost,
                          conn->user, (long long)limit);
    /* ... then the user's (rabbit_reader:is_over_user_connection_limit), same code. */
    limit = server_user_limit_reached(conn->server, conn->user, ACCESS_USER_MAX_CONNECTIONS);
    if (limit >= 0)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_OPEN,
                          "Connection refused for user '%s': user connection limit (%lld) is reached", conn->user,
                          (long long)limit);
    if (!access_can_access_vhost(server_access(conn->server), conn->user, vhost))
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_OPEN, "access to vhost '%s' refused for user '%s'",
                          vhost, conn->user);
    conn->vhost = server_open_vhost(conn->server, a->virtual_host);
    if (!conn->vhost)
        return reply_fail(err, SPEC_NOT_ALLOWED, SPEC_CONNECTION_OPEN, "vhost %s not found", vhost);
    /* Counted while conn->vhost is set: on_close takes it off again. */
    server_user_count(conn->server, conn->user, ACCESS_USER_MAX_CONNECTIONS, 1);
    struct spec_method m = {.id = SPEC_CONNECTION_OPEN_OK};
    conn->state = STATE_OPEN;
    if (conn->heartbeat)
        arm_timer(conn, (uint64_t)conn->heartbeat * 500, heartbeat_tick);
    else if (conn->timer) {
        loop_timer_cancel(netconn_loop(conn->net), conn->timer);
        conn->timer = 0;
    }
    log_info("%s: user '%s' authenticated and granted access to vhost '%s'", conn->name, conn->user, vhost);
    return connection_send_method(conn, 0, &m);
}

/* ---- frames ---- */

static struct channel_slot *find_slot(struct connection *conn, uint16_t number)
{
    if (conn->last_slot && conn->last_slot->number == number)
        return conn->last_slot;
    struct channel_slot *slot;
    HASH_FIND(hh, conn->channels, &number, sizeof number, slot);
    if (slot)
        conn->last_slot = slot;
    return slot;
}

static void remove_slot(struct connection *conn, struct channel_slot *slot)
{
    HASH_DEL(conn->channels, slot);
    if (conn->last_slot == slot)
        conn->last_slot = NULL;
    /* Its counters move into the connection's, the vhost's and the broker's totals (destroying
     * only requeues, which counts nothing). */
    const struct stats_channel *stats = channel_stats(slot->channel);
    stats_channel_add(&conn->closed_channels, stats);
    server_stats_channel_closed(conn->server, conn->vhost, stats);
    channel_destroy(slot->channel);
    free(slot);
    conn->open_channels--;
    server_user_count(conn->server, conn->user, ACCESS_USER_MAX_CHANNELS, -1);
}

/* Closes every channel (consumers cancelled, unacked deliveries requeued) and deletes the
 * connection's exclusive queues. */
static void release_channels(struct connection *conn)
{
    struct channel_slot *slot, *tmp;
    HASH_ITER(hh, conn->channels, slot, tmp) {
        remove_slot(conn, slot);
    }
    if (conn->vhost)
        vhost_owner_gone(conn->vhost, conn);
}

int connection_decode_method(const struct connection *conn, const struct frame *f, struct spec_method *m,
                             struct reply_error *err)
{
    int rc = conn->protocol == FRAME_PROTOCOL_0_8 ? spec08_method_decode(f->payload, f->size, m)
                                                  : spec_method_decode(f->payload, f->size, m);
    if (rc == 0 || !err)
        return rc;
    /* RabbitMQ reports any argument it cannot parse (short or with trailing bytes) as a frame
     * error; the spec would say 502 SYNTAX_ERROR. */
    uint16_t code = rc == PROTO_ERR_UNKNOWN_METHOD ? SPEC_NOT_IMPLEMENTED : SPEC_FRAME_ERROR;
    uint32_t id = f->size >= 4 ? SPEC_METHOD_ID((uint32_t)f->payload[0] << 8 | f->payload[1],
                                                (uint32_t)f->payload[2] << 8 | f->payload[3])
                               : 0;
    return reply_fail(err, code, spec_method_is_known(id) ? id : 0, "cannot decode method frame: %s",
                      proto_strerror(rc));
}

static int channel_frame(struct connection *conn, const struct frame *f, struct reply_error *err)
{
    struct channel_slot *slot = find_slot(conn, f->channel);
    if (!slot) {
        /* As in RabbitMQ, channel_max limits how many channels are open, not their numbers. */
        if (conn->open_channels >= conn->channel_max)
            return reply_fail(err, SPEC_NOT_ALLOWED, 0,
                              "number of channels opened (%u) has reached the negotiated channel_max (%u)",
                              conn->open_channels, conn->channel_max);
        /* The user's limit counts the channels of all its connections; RabbitMQ refuses the
         * channel with a connection error (530, no method), as for channel_max. */
        int64_t limit = server_user_limit_reached(conn->server, conn->user, ACCESS_USER_MAX_CHANNELS);
        if (limit >= 0)
            return reply_fail(err, SPEC_NOT_ALLOWED, 0,
                              "number of channels opened for user '%s' has reached the maximum allowed user "
                              "limit of (%lld)",
                              conn->user, (long long)limit);
        slot = calloc(1, sizeof *slot);
        if (!slot || !(slot->channel = channel_create(conn, f->channel))) {
            free(slot);
            return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "out of memory");
        }
        slot->number = f->channel;
        HASH_ADD(hh, conn->channels, number, sizeof slot->number, slot);
        conn->open_channels++;
        server_user_count(conn->server, conn->user, ACCESS_USER_MAX_CHANNELS, 1);
        server_stats_channel_opened(conn->server);
    }
    int rc = channel_handle_frame(slot->channel, f, err);
    if (channel_is_closed(slot->channel))
        remove_slot(conn, slot);
    return rc;
}

static int connection_method(struct connection *conn, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_CONNECTION_CLOSE: {
        struct spec_method ok = {.id = SPEC_CONNECTION_CLOSE_OK};
        log_info("%s: client closed the connection (%u %.*s)", conn->name, m->args.connection_close.reply_code,
                 (int)m->args.connection_close.reply_text.len,
                 (const char *)m->args.connection_close.reply_text.ptr);
        /* As RabbitMQ, the channels and the exclusive queues go before close-ok: a client that
         * reconnects as soon as close-ok arrives must not find its old exclusive consumer or
         * queue still there (405/403 "in exclusive use": amqp091-go's reconnect example). */
        release_channels(conn);
        connection_send_method(conn, 0, &ok);
        /* As RabbitMQ: the client hangs up; meanwhile a repeated close gets close-ok again
         * (clients closing from several threads send several). */
        conn->state = STATE_PEER_CLOSED;
        arm_timer(conn, CLOSE_OK_TIMEOUT_MS, close_ok_timeout);
        return 0;
    }
    case SPEC_CONNECTION_CLOSE_OK:
        return 0;
    case SPEC_CONNECTION_UPDATE_SECRET: {
        struct spec_method ok = {.id = SPEC_CONNECTION_UPDATE_SECRET_OK};
        return connection_send_method(conn, 0, &ok);
    }
    case SPEC_CONNECTION_BLOCKED:
    case SPEC_CONNECTION_UNBLOCKED:
        return 0;
    default:
        return reply_fail(err, SPEC_CHANNEL_ERROR, m->id, "unexpected method in connection state running");
    }
}

static int handshake_method(struct connection *conn, const struct spec_method *m, struct reply_error *err)
{
    static const uint32_t expected[] = {
        [STATE_EXPECT_START_OK] = SPEC_CONNECTION_START_OK,
        [STATE_EXPECT_TUNE_OK] = SPEC_CONNECTION_TUNE_OK,
        [STATE_EXPECT_OPEN] = SPEC_CONNECTION_OPEN,
    };
    if (m->id == SPEC_CONNECTION_CLOSE && conn->state >= STATE_EXPECT_TUNE_OK)
        return connection_method(conn, m, err);
    if (m->id != expected[conn->state])
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "expected %s, got %s",
                          spec_method_name(expected[conn->state]), spec_method_name(m->id));
    switch (m->id) {
    case SPEC_CONNECTION_START_OK:
        return handle_start_ok(conn, &m->args.connection_start_ok, err);
    case SPEC_CONNECTION_TUNE_OK:
        return handle_tune_ok(conn, &m->args.connection_tune_ok, err);
    default:
        return handle_open(conn, &m->args.connection_open, err);
    }
}

/* Frames that arrive after a close was sent by either side: a close is answered with
 * close-ok; close-ok ends a close we started; everything else is ignored. */
static void closing_frame(struct connection *conn, const struct frame *f)
{
    struct spec_method m;
    if (f->type != FRAME_METHOD || f->channel != 0 || connection_decode_method(conn, f, &m, NULL) != 0)
        return;
    if (m.id == SPEC_CONNECTION_CLOSE) {
        struct spec_method ok = {.id = SPEC_CONNECTION_CLOSE_OK};
        connection_send_method(conn, 0, &ok);
    } else if (m.id == SPEC_CONNECTION_CLOSE_OK && conn->state == STATE_CLOSING) {
        conn->state = STATE_CLOSED;
        netconn_close(conn->net);
    }
}

static int handle_frame(struct connection *conn, const struct frame *f, struct reply_error *err)
{
    if (conn->state == STATE_CLOSING || conn->state == STATE_PEER_CLOSED) {
        closing_frame(conn, f);
        return 0;
    }
    if (f->type == FRAME_HEARTBEAT) {
        if (f->channel != 0)
            return reply_fail(err, SPEC_UNEXPECTED_FRAME, 0, "heartbeat frame on channel %u", f->channel);
        if (f->size != 0)
            return reply_fail(err, SPEC_FRAME_ERROR, 0, "heartbeat frame with a payload");
        return 0;
    }
    if (f->channel != 0) {
        if (conn->state != STATE_OPEN)
            return reply_fail(err, SPEC_UNEXPECTED_FRAME, 0, "channel %u used before connection.open",
                              f->channel);
        return channel_frame(conn, f, err);
    }
    if (f->type != FRAME_METHOD)
        return reply_fail(err, SPEC_UNEXPECTED_FRAME, 0, "content frame of type %u on channel 0", f->type);
    struct spec_method m;
    if (connection_decode_method(conn, f, &m, err) != 0)
        return -1;
    if (SPEC_METHOD_CLASS(m.id) != SPEC_CLASS_CONNECTION)
        return reply_fail(err, SPEC_CHANNEL_ERROR, m.id, "unexpected method in connection state running");
    if (conn->state != STATE_OPEN)
        return handshake_method(conn, &m, err);
    return connection_method(conn, &m, err);
}

static void on_input(struct netconn *net, void *ctx)
{
    struct connection *conn = ctx;
    size_t len;
    const uint8_t *data = netconn_input(net, &len);
    size_t off = 0;
    /* While waiting (connection_wait), nothing more is parsed: the bytes stay buffered. */
    while (off < len && conn->state != STATE_CLOSED && !conn->wait_abandon) {
        if (conn->state == STATE_EXPECT_HEADER) {
            long r = frame_check_protocol_header(data, len);
            if (r == PROTO_INCOMPLETE)
                break;
            if (r < 0) {
                /* RabbitMQ answers any other header with the one it speaks, then hangs up. */
                log_warning("%s: unsupported protocol header, closing", conn->name);
                netconn_write(net, frame_protocol_header, PROTOCOL_HEADER_SIZE);
                conn->state = STATE_CLOSED;
                netconn_close(net);
                break;
            }
            conn->protocol = frame_header_protocol(data);
            off += (size_t)r;
            conn->state = STATE_EXPECT_START_OK;
            send_start(conn);
            continue;
        }
        struct frame f;
        long r = frame_decode(data + off, len - off, conn->frame_max, &f);
        if (r == PROTO_INCOMPLETE)
            break;
        struct reply_error err;
        if (r < 0) {
            if (conn->state == STATE_CLOSING || conn->state == STATE_PEER_CLOSED) {
                conn->state = STATE_CLOSED;
                netconn_close(net);
                break;
            }
            reply_fail(&err, proto_error_reply_code((int)r), 0, "%s", proto_strerror((int)r));
            connection_fail(conn, &err);
            /* The rest of the buffer cannot be framed any more. */
            off = len;
            break;
        }
        off += (size_t)r;
        if (handle_frame(conn, &f, &err) != 0) {
            if (conn->state < STATE_EXPECT_TUNE_OK && err.code == SPEC_COMMAND_INVALID) {
                conn->state = STATE_CLOSED; /* no close method before start-ok */
                netconn_close(net);
                break;
            }
            connection_fail(conn, &err);
        }
    }
    netconn_consume(net, off);
    struct channel_slot *slot, *tmp;
    HASH_ITER(hh, conn->channels, slot, tmp) {
        if (slot->channel->confirm_mode)
            channel_flush_confirms(slot->channel);
    }
    /* Once per read, after every frame of it was handled: publishes of this read that fed a
     * pressured queue pause the next reads. */
    flow_after_input(&conn->flow, conn);
}

/* The peer caught up with its output: offer it messages again. */
static void on_drain(struct netconn *net, void *ctx)
{
    (void)net;
    struct connection *conn = ctx;
    struct channel_slot *slot, *tmp;
    HASH_ITER(hh, conn->channels, slot, tmp) {
        channel_dispatch_consumers(slot->channel);
    }
}

static void on_close(struct netconn *net, void *ctx)
{
    (void)net;
    struct connection *conn = ctx;
    if (conn->timer)
        loop_timer_cancel(netconn_loop(conn->net), conn->timer);
    if (conn->wait_abandon)
        conn->wait_abandon(conn->wait_arg);
    flow_release(&conn->flow, conn->net);
    release_channels(conn);
    if (conn->vhost) {
        server_close_vhost(conn->server, conn->vhost);
        server_user_count(conn->server, conn->user, ACCESS_USER_MAX_CONNECTIONS, -1);
    }
    if (conn->state == STATE_OPEN)
        log_info("%s: connection closed by peer", conn->name);
    log_debug("%s: connection freed", conn->name);
    server_connection_closed(conn->server);
    free(conn->client_capabilities);
    free(conn->client_properties);
    free(conn);
}

static const struct netconn_handler handler = {
    .on_input = on_input,
    .on_close = on_close,
    .on_drain = on_drain,
};

struct connection *connection_of(const struct netconn *net) { return netconn_context_of(net, &handler); }


int connection_accept(struct server *server, struct netconn *net)
{
    struct connection *conn = calloc(1, sizeof *conn);
    if (!conn) {
        netconn_close(net);
        return -ENOMEM;
    }
    const struct server_config *cfg = server_config(server);
    conn->server = server;
    conn->net = net;
    conn->frame_max = cfg->frame_max;
    conn->channel_max = cfg->channel_max;
    /* RabbitMQ's connection name, in logs and listings: "peer -> local". */
    snprintf(conn->name, sizeof conn->name, "%s -> %s", netconn_peer_name(net), netconn_local_name(net));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    conn->connected_at = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    netconn_set_handler(net, &handler, conn);
    netconn_set_input_max(net, cfg->frame_max + FRAME_OVERHEAD);
    server_connection_opened(server);
    arm_timer(conn, cfg->handshake_timeout_ms, handshake_timeout);
    server_hold_if_catching_up(server, conn); /* a cluster node not caught up yet (server.h) */
    log_debug("%s: accepted", conn->name);
    return 0;
}
