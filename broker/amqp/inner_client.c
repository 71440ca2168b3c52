/* broker/amqp/inner_client.c: the broker's own AMQP client (see inner_client.h). The client's
 * end of the socketpair is a netconn of the same loop; its frames are decoded and encoded with
 * the protocol layer's codec, as the broker's own are. */
#include "inner_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "frame.h"
#include "log.h"
#include "netconn.h"
#include "server.h"
#include "spec.h"
#include "table.h"

#define CHANNEL 1
#define METHOD_MAX 4096 /* every method this client sends fits: short strings, no tables */

enum step {
    STEP_START,          /* waits for connection.start */
    STEP_TUNE,           /* connection.tune */
    STEP_OPEN,           /* connection.open-ok */
    STEP_CHANNEL,        /* channel.open-ok */
    STEP_DECLARE,        /* queue.declare-ok */
    STEP_CONFIRM_SELECT, /* confirm.select-ok */
    STEP_CONFIRM,        /* basic.ack of the publish */
    STEP_GET,            /* basic.get-ok or get-empty */
    STEP_CONTENT,        /* the got message's header and body frames */
    STEP_CLOSE,          /* connection.close-ok */
    STEP_DONE,
};

struct got {
    uint8_t *data; /* exchange, routing key, header, body, one block */
    struct inner_message m;
    uint64_t body_have;
    uint8_t *body;
};

struct inner_client {
    struct server *server;
    struct event_loop *loop;
    struct netconn *net;
    struct inner_request req;
    char *strings; /* the request's strings and body, one block */
    inner_done_fn done;
    void *arg;
    enum step step;
    uint32_t frame_max;
    uint64_t timer;
    struct got *got;
    size_t ngot, cap;
    uint64_t last_tag;
    int status;
    char text[256];
};

/* ---- the end ---- */

static void finish(struct inner_client *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void call_done(struct inner_client *c)
{
    if (!c->done)
        return;
    struct inner_message *ms = c->ngot ? calloc(c->ngot, sizeof *ms) : NULL;
    size_t n = 0;
    for (size_t i = 0; ms && i < c->ngot; i++)
        ms[n++] = c->got[i].m;
    struct inner_result r = {c->status, c->text, ms, n};
    if (c->ngot && !ms && c->status == 0)
        r = (struct inner_result){-ENOMEM, "out of memory", NULL, 0};
    inner_done_fn done = c->done;
    c->done = NULL;
    done(c->arg, &r);
    free(ms);
}

/* The first outcome is kept; the client's end closes and done runs now. */
static void finish(struct inner_client *c, int status, const char *fmt, ...)
{
    if (c->step == STEP_DONE)
        return;
    if (c->status == 0 && status != 0) {
        c->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->text, sizeof c->text, fmt, ap);
        va_end(ap);
    }
    c->step = STEP_DONE;
    if (c->timer) {
        loop_timer_cancel(c->loop, c->timer);
        c->timer = 0;
    }
    call_done(c);
    netconn_close(c->net); /* freed at its on_close */
}

static void client_free(struct inner_client *c)
{
    for (size_t i = 0; i < c->ngot; i++)
        free(c->got[i].data);
    free(c->got);
    free(c->strings);
    free(c);
}

/* ---- sending ---- */

static int send_method(struct inner_client *c, uint16_t channel, const struct spec_method *m)
{
    uint8_t buf[FRAME_HEADER_SIZE + METHOD_MAX + 1];
    long n = spec_method_encode(m, buf + FRAME_HEADER_SIZE, METHOD_MAX);
    if (n < 0)
        return (int)n;
    frame_put_header(buf, FRAME_METHOD, channel, (uint32_t)n);
    buf[FRAME_HEADER_SIZE + n] = FRAME_END_OCTET;
    return netconn_write(c->net, buf, (size_t)n + FRAME_OVERHEAD);
}

static int send_frame(struct inner_client *c, uint8_t type, const uint8_t *payload, uint32_t size)
{
    uint8_t head[FRAME_HEADER_SIZE], end = FRAME_END_OCTET;
    frame_put_header(head, type, CHANNEL, size);
    int rc = netconn_write(c->net, head, sizeof head);
    if (rc == 0 && size)
        rc = netconn_write(c->net, payload, size);
    return rc == 0 ? netconn_write(c->net, &end, 1) : rc;
}

static int send_publish(struct inner_client *c)
{
    struct spec_method m = {.id = SPEC_BASIC_PUBLISH};
    m.args.basic_publish.routing_key = proto_bytes_of(c->req.publish_to);
    struct spec_content_header h = {.class_id = 60, .body_size = c->req.body_len};
    uint8_t header[64];
    long hn = spec_content_header_encode(&h, header, sizeof header);
    if (hn < 0)
        return (int)hn;
    int rc = send_method(c, CHANNEL, &m);
    if (rc == 0)
        rc = send_frame(c, FRAME_HEADER, header, (uint32_t)hn);
    for (size_t off = 0; rc == 0 && off < c->req.body_len;) {
        size_t part = c->req.body_len - off;
        if (part > c->frame_max - FRAME_OVERHEAD)
            part = c->frame_max - FRAME_OVERHEAD;
        rc = send_frame(c, FRAME_BODY, c->req.body + off, (uint32_t)part);
        off += part;
    }
    return rc;
}

static int send_close(struct inner_client *c)
{
    struct spec_method m = {.id = SPEC_CONNECTION_CLOSE};
    m.args.connection_close.reply_code = 200;
    m.args.connection_close.reply_text = proto_bytes_of("Goodbye");
    c->step = STEP_CLOSE;
    return send_method(c, 0, &m);
}

/* The script after the channel opened: the next step from `from` on that the request asks for. */
static int next_step(struct inner_client *c, enum step from)
{
    struct spec_method m = {0};
    if (from <= STEP_DECLARE && c->req.declare) {
        m.id = SPEC_QUEUE_DECLARE;
        m.args.queue_declare.queue = proto_bytes_of(c->req.declare);
        c->step = STEP_DECLARE;
        return send_method(c, CHANNEL, &m);
    }
    if (from <= STEP_CONFIRM_SELECT && c->req.publish_to) {
        m.id = SPEC_CONFIRM_SELECT;
        c->step = STEP_CONFIRM_SELECT;
        return send_method(c, CHANNEL, &m);
    }
    if (from <= STEP_GET && c->req.get_from && c->ngot < c->req.get_count) {
        m.id = SPEC_BASIC_GET;
        m.args.basic_get.queue = proto_bytes_of(c->req.get_from);
        m.args.basic_get.no_ack = c->req.settle == INNER_ACK;
        c->step = STEP_GET;
        return send_method(c, CHANNEL, &m);
    }
    /* Settled after the last get, as RabbitMQ's API does, so that a message given back is not
     * got twice; the close that follows is handled after it, in order. */
    if (c->last_tag && c->req.settle != INNER_ACK) {
        m.id = SPEC_BASIC_NACK;
        m.args.basic_nack.delivery_tag = c->last_tag;
        m.args.basic_nack.multiple = true;
        m.args.basic_nack.requeue = c->req.settle == INNER_REQUEUE;
        int rc = send_method(c, CHANNEL, &m);
        if (rc != 0)
            return rc;
    }
    return send_close(c);
}

/* ---- receiving ---- */

static int on_get_ok(struct inner_client *c, const struct spec_basic_get_ok *a)
{
    if (c->ngot == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        struct got *g = realloc(c->got, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        c->got = g;
        c->cap = cap;
    }
    struct got *g = &c->got[c->ngot];
    *g = (struct got){0};
    g->data = malloc((size_t)a->exchange.len + a->routing_key.len + 1);
    if (!g->data)
        return -ENOMEM;
    memcpy(g->data, a->exchange.ptr, a->exchange.len);
    memcpy(g->data + a->exchange.len, a->routing_key.ptr, a->routing_key.len);
    g->m.exchange = (struct proto_bytes){g->data, a->exchange.len};
    g->m.routing_key = (struct proto_bytes){g->data + a->exchange.len, a->routing_key.len};
    g->m.redelivered = a->redelivered;
    g->m.message_count = a->message_count;
    c->ngot++;
    c->last_tag = a->delivery_tag;
    c->step = STEP_CONTENT;
    return 0;
}

/* The got message's content header: its payload kept, room made for the body. */
static int on_header(struct inner_client *c, const struct frame *f)
{
    struct got *g = &c->got[c->ngot - 1];
    struct spec_content_header h;
    if (g->m.header.ptr || spec_content_header_decode(f->payload, f->size, &h) != 0)
        return -EPROTO;
    size_t names = (size_t)g->m.exchange.len + g->m.routing_key.len;
    uint8_t *data = realloc(g->data, names + f->size + (size_t)h.body_size + 1);
    if (!data)
        return -ENOMEM;
    memcpy(data + names, f->payload, f->size);
    g->data = data;
    g->m.exchange.ptr = data;
    g->m.routing_key.ptr = data + g->m.exchange.len;
    g->m.header = (struct proto_bytes){data + names, f->size};
    g->body = data + names + f->size;
    g->m.body = g->body;
    g->m.body_size = h.body_size;
    return 0;
}

static int on_body(struct inner_client *c, const struct frame *f)
{
    struct got *g = &c->got[c->ngot - 1];
    if (!g->m.header.ptr || f->size > g->m.body_size - g->body_have)
        return -EPROTO;
    memcpy(g->body + g->body_have, f->payload, f->size);
    g->body_have += f->size;
    return 0;
}

static int on_method(struct inner_client *c, const struct frame *f)
{
    struct spec_method m;
    if (spec_method_decode(f->payload, f->size, &m) != 0)
        return -EPROTO;
    if (m.id == SPEC_CONNECTION_CLOSE || m.id == SPEC_CHANNEL_CLOSE) {
        bool whole = m.id == SPEC_CONNECTION_CLOSE;
        const struct spec_connection_close *a = &m.args.connection_close; /* the same layout */
        const struct spec_channel_close *ch = &m.args.channel_close;
        uint16_t code = whole ? a->reply_code : ch->reply_code;
        struct proto_bytes text = whole ? a->reply_text : ch->reply_text;
        if (c->status == 0) {
            c->status = code ? code : 541;
            snprintf(c->text, sizeof c->text, "%.*s", (int)text.len, (const char *)text.ptr);
        }
        struct spec_method ok = {.id = whole ? SPEC_CONNECTION_CLOSE_OK : SPEC_CHANNEL_CLOSE_OK};
        int rc = send_method(c, whole ? 0 : CHANNEL, &ok);
        if (whole || rc != 0) {
            finish(c, 0, "%s", "");
            return 0;
        }
        return send_close(c);
    }
    switch (c->step) {
    case STEP_START: {
        if (m.id != SPEC_CONNECTION_START)
            return -EPROTO;
        struct table_buf props = {0};
        int rc = table_buf_put_string(&props, "product", proto_bytes_of("Warren management"));
        struct spec_method r = {.id = SPEC_CONNECTION_START_OK};
        r.args.connection_start_ok.client_properties = (struct proto_bytes){props.data, (uint32_t)props.len};
        r.args.connection_start_ok.mechanism = proto_bytes_of("EXTERNAL");
        r.args.connection_start_ok.locale = proto_bytes_of("en_US");
        if (rc == 0)
            rc = send_method(c, 0, &r);
        table_buf_free(&props);
        c->step = STEP_TUNE;
        return rc;
    }
    case STEP_TUNE: {
        if (m.id != SPEC_CONNECTION_TUNE)
            return -EPROTO;
        const struct spec_connection_tune *t = &m.args.connection_tune;
        c->frame_max = t->frame_max ? t->frame_max : 131072;
        if (c->frame_max < FRAME_MIN_SIZE)
            return -EPROTO;
        struct spec_method r = {.id = SPEC_CONNECTION_TUNE_OK};
        r.args.connection_tune_ok = (struct spec_connection_tune_ok){.channel_max = 1, .frame_max = c->frame_max};
        struct spec_method o = {.id = SPEC_CONNECTION_OPEN};
        o.args.connection_open.virtual_host = proto_bytes_of(c->req.vhost);
        c->step = STEP_OPEN;
        netconn_set_input_max(c->net, c->frame_max + FRAME_OVERHEAD);
        int rc = send_method(c, 0, &r);
        return rc == 0 ? send_method(c, 0, &o) : rc;
    }
    case STEP_OPEN: {
        if (m.id != SPEC_CONNECTION_OPEN_OK)
            return -EPROTO;
        struct spec_method r = {.id = SPEC_CHANNEL_OPEN};
        c->step = STEP_CHANNEL;
        return send_method(c, CHANNEL, &r);
    }
    case STEP_CHANNEL:
        return m.id == SPEC_CHANNEL_OPEN_OK ? next_step(c, STEP_DECLARE) : -EPROTO;
    case STEP_DECLARE:
        return m.id == SPEC_QUEUE_DECLARE_OK ? next_step(c, STEP_CONFIRM_SELECT) : -EPROTO;
    case STEP_CONFIRM_SELECT:
        if (m.id != SPEC_CONFIRM_SELECT_OK)
            return -EPROTO;
        c->step = STEP_CONFIRM;
        return send_publish(c);
    case STEP_CONFIRM:
        if (m.id == SPEC_BASIC_NACK) {
            finish(c, 541, "the broker did not take the message (basic.nack)");
            return 0;
        }
        return m.id == SPEC_BASIC_ACK ? next_step(c, STEP_GET) : -EPROTO;
    case STEP_GET:
        if (m.id == SPEC_BASIC_GET_EMPTY)
            return next_step(c, STEP_DONE); /* the queue ran empty: settle and close */
        return m.id == SPEC_BASIC_GET_OK ? on_get_ok(c, &m.args.basic_get_ok) : -EPROTO;
    case STEP_CLOSE:
        if (m.id != SPEC_CONNECTION_CLOSE_OK)
            return -EPROTO;
        finish(c, 0, "%s", "");
        return 0;
    default:
        return -EPROTO;
    }
}

/* A frame from the broker, in the order the script expects them. */
static int on_frame(struct inner_client *c, const struct frame *f)
{
    if (f->type == FRAME_HEARTBEAT)
        return 0;
    if (c->step == STEP_CONTENT) {
        int rc = f->type == FRAME_HEADER ? on_header(c, f) : f->type == FRAME_BODY ? on_body(c, f) : -EPROTO;
        struct got *g = &c->got[c->ngot - 1];
        if (rc == 0 && g->m.header.ptr && g->body_have == g->m.body_size)
            rc = next_step(c, STEP_GET); /* the whole message is in */
        return rc;
    }
    return f->type == FRAME_METHOD ? on_method(c, f) : -EPROTO;
}

static void on_input(struct netconn *net, void *ctx)
{
    struct inner_client *c = ctx;
    size_t len;
    const uint8_t *in = netconn_input(net, &len);
    size_t used = 0;
    while (c->step != STEP_DONE && used < len) {
        long n;
        struct frame f;
        if (c->step == STEP_START && used == 0 && len >= 1 && in[0] == 'A') {
            /* the broker refused the protocol header: cannot happen with this client */
            finish(c, -EPROTO, "protocol header refused");
            break;
        }
        n = frame_decode(in + used, len - used, c->frame_max, &f);
        if (n == PROTO_INCOMPLETE)
            break;
        int rc = n < 0 ? -EPROTO : on_frame(c, &f);
        if (rc != 0) {
            finish(c, rc, "%s", rc == -ENOMEM ? "out of memory" : "unexpected answer from the broker");
            break;
        }
        used += (size_t)n;
    }
    if (used)
        netconn_consume(net, used);
}

static void on_close(struct netconn *net, void *ctx)
{
    (void)net;
    struct inner_client *c = ctx;
    finish(c, -ECONNRESET, "the broker closed the connection");
    client_free(c);
}

static const struct netconn_handler handler = {.on_input = on_input, .on_close = on_close};

static void on_timeout(struct event_loop *loop, void *data)
{
    (void)loop;
    struct inner_client *c = data;
    c->timer = 0;
    finish(c, -ETIMEDOUT, "no answer from the broker within %d ms", INNER_TIMEOUT_MS);
}

/* ---- starting ---- */

static char *copy_into(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *out = memcpy(*at, s, n);
    *at += n;
    return out;
}

int inner_client_run(struct server *server, const struct inner_request *req, inner_done_fn done, void *arg)
{
    const char *strings[] = {req->user, req->vhost, req->declare, req->publish_to, req->get_from};
    size_t need = req->body_len;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        need += strings[i] ? strlen(strings[i]) + 1 : 0;
    struct inner_client *c = calloc(1, sizeof *c);
    char *block = malloc(need ? need : 1);
    if (!c || !block) {
        free(c);
        free(block);
        return -ENOMEM;
    }
    *c = (struct inner_client){.server = server, .loop = server_loop(server), .req = *req, .strings = block,
                               .done = done, .arg = arg, .step = STEP_START};
    char *at = block;
    c->req.user = copy_into(&at, req->user);
    c->req.vhost = copy_into(&at, req->vhost);
    c->req.declare = copy_into(&at, req->declare);
    c->req.publish_to = copy_into(&at, req->publish_to);
    c->req.get_from = copy_into(&at, req->get_from);
    if (req->body_len) {
        memcpy(at, req->body, req->body_len);
        c->req.body = (const uint8_t *)at;
    }
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        int e = errno;
        log_warning("management: cannot open its own AMQP connection: %s", strerror(e));
        client_free(c);
        return -e;
    }
    c->net = netconn_adopt(c->loop, fds[0]);
    if (!c->net) {
        close(fds[1]);
        client_free(c);
        return -ENOMEM;
    }
    netconn_set_handler(c->net, &handler, c);
    int rc = server_adopt_internal(server, fds[1], c->req.user, "management");
    static const uint8_t header[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    if (rc == 0)
        rc = netconn_write(c->net, header, sizeof header);
    if (rc == 0)
        c->timer = loop_timer_add(c->loop, INNER_TIMEOUT_MS, on_timeout, c);
    if (rc != 0 || !c->timer) {
        c->done = NULL; /* the caller learns it from the return */
        netconn_close(c->net);
        return rc ? rc : -ENOMEM;
    }
    return 0;
}
