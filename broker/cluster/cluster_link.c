/* broker/cluster/cluster_link.c: the cluster port (format and rules: cluster_link.h): raft_uv's
 * transport over libuv TCP, and the forwarding link beside it. Every read is sized to the piece
 * expected next (the handshake's fixed part, the address, a length, a message), so a stream is
 * handed to Raft with none of Raft's bytes consumed, and a peer can never make us buffer more
 * than one bounded message. */
#include "cluster_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDSHAKE_FIXED 15 /* magic, kind, id, address length */
#define ADDRESS_MAX 256

enum conn_kind {
    CONN_IN,          /* accepted: reading the handshake, then forwarded commands */
    CONN_RAFT_OUT,    /* connecting for Raft; handed over once the handshake is written */
    CONN_FORWARD_OUT, /* the forwarding link to the leader */
};

enum read_stage { READ_HANDSHAKE, READ_ADDRESS, READ_LENGTH, READ_BODY, READ_NOTHING };

struct link_conn {
    struct link_conn *prev, *next;  /* in link->conns */
    struct cluster_link *link;
    uv_tcp_t *tcp;                  /* raft_malloc'd: Raft frees a stream handed to it */
    enum conn_kind kind;
    bool closing, counted;          /* counted: in link->incoming */
    uv_connect_t connect;
    struct raft_uv_connect *req;    /* CONN_RAFT_OUT until its callback is called */
    uv_write_t handshake_write;
    enum read_stage stage;
    uint8_t head[HANDSHAKE_FIXED + ADDRESS_MAX]; /* the handshake, in or out; a message length */
    uint8_t *body;                  /* a forwarded message being read, grown as its bytes come */
    size_t body_cap;
    size_t have, want;              /* bytes of the current piece read so far, and needed */
    uint64_t accepted_ms;           /* uv_now() at accept */
};

struct link_write {
    uv_write_t req;
    uint8_t data[];
};

static const uint8_t MAGIC[4] = {'W', 'R', 'N', 'C'};

/* ---- addresses and the handshake ---- */

int link_parse_address(const char *address, struct sockaddr_storage *out)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(colon + 1) == 0 || strlen(colon + 1) > 5)
        return -EINVAL;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -EINVAL;
    char host[ADDRESS_MAX];
    size_t n = (size_t)(colon - address);
    if (n >= sizeof(host))
        return -EINVAL;
    memcpy(host, address, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        host[n - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -EINVAL;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -EINVAL;
}

static size_t handshake_write(uint8_t *out, uint8_t kind, raft_id id, const char *address)
{
    size_t n = strlen(address);
    memcpy(out, MAGIC, 4);
    out[4] = kind;
    for (int i = 0; i < 8; i++)
        out[5 + i] = (uint8_t)(id >> (56 - 8 * i));
    out[13] = (uint8_t)(n >> 8);
    out[14] = (uint8_t)n;
    memcpy(out + HANDSHAKE_FIXED, address, n);
    return HANDSHAKE_FIXED + n;
}

/* ---- connections ---- */

static void link_maybe_closed(struct cluster_link *link)
{
    if (!link->close_cb || !link->listener_closed || link->conns)
        return;
    raft_uv_transport_close_cb cb = link->close_cb;
    link->close_cb = NULL;
    cb(&link->transport);
}

static void conn_closed(uv_handle_t *handle)
{
    struct link_conn *c = handle->data;
    struct cluster_link *link = c->link;
    if (c->prev)
        c->prev->next = c->next;
    else
        link->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    raft_free(c->tcp);
    free(c->body);
    free(c);
    link_maybe_closed(link);
}

static void conn_close(struct link_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->link->forward == c) {
        c->link->forward = NULL;
        c->link->forward_ready = false;
    }
    if (c->counted) {
        c->counted = false;
        c->link->incoming--;
    }
    uv_close((uv_handle_t *)c->tcp, conn_closed);
}

/* A new connection object with its (not yet initialised) handle, in link->conns. */
static struct link_conn *conn_new(struct cluster_link *link, enum conn_kind kind)
{
    struct link_conn *c = calloc(1, sizeof(*c));
    uv_tcp_t *tcp = raft_malloc(sizeof(*tcp));
    if (!c || !tcp || uv_tcp_init(link->uv, tcp) != 0) {
        free(c);
        raft_free(tcp);
        return NULL;
    }
    tcp->data = c;
    c->tcp = tcp;
    c->link = link;
    c->kind = kind;
    c->stage = READ_NOTHING;
    c->next = link->conns;
    if (link->conns)
        link->conns->prev = c;
    link->conns = c;
    return c;
}

/* Unlinks c, whose stream now belongs to Raft, and frees it (not the stream). */
static void conn_hand_over(struct link_conn *c)
{
    struct cluster_link *link = c->link;
    if (c->prev)
        c->prev->next = c->next;
    else
        link->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->counted)
        link->incoming--;
    free(c->body);
    free(c);
}

static void read_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct link_conn *c = handle->data;
    if (c->stage != READ_BODY) {
        *buf = uv_buf_init((char *)c->head + c->have, (unsigned)(c->want - c->have));
        return;
    }
    if (c->have == c->body_cap) { /* memory follows the bytes a peer sent, not the length it claimed */
        size_t cap = c->body_cap ? c->body_cap * 2 : 64u << 10;
        if (cap > c->want)
            cap = c->want;
        uint8_t *body = realloc(c->body, cap);
        if (!body) {
            *buf = uv_buf_init(NULL, 0); /* read_done sees UV_ENOBUFS and drops the peer */
            return;
        }
        c->body = body;
        c->body_cap = cap;
    }
    *buf = uv_buf_init((char *)c->body + c->have, (unsigned)(c->body_cap - c->have));
}

/* The piece c->want is complete: checks it and sets up the next. False: drop the peer. */
static bool read_piece(struct link_conn *c)
{
    struct cluster_link *link = c->link;
    uint8_t *h = c->head;
    switch (c->stage) {
    case READ_HANDSHAKE: {
        size_t n = (size_t)h[13] << 8 | h[14];
        if (memcmp(h, MAGIC, 4) != 0 || (h[4] != 'R' && h[4] != 'F') || n == 0 || n >= ADDRESS_MAX)
            return false;
        c->stage = READ_ADDRESS;
        c->want = HANDSHAKE_FIXED + n;
        return true;
    }
    case READ_ADDRESS: {
        raft_id id = 0;
        for (int i = 0; i < 8; i++)
            id = id << 8 | h[5 + i];
        char address[ADDRESS_MAX];
        size_t n = c->want - HANDSHAKE_FIXED;
        for (size_t i = 0; i < n; i++)
            if (h[HANDSHAKE_FIXED + i] < 0x21 || h[HANDSHAKE_FIXED + i] > 0x7e)
                return false;
        memcpy(address, h + HANDSHAKE_FIXED, n);
        address[n] = '\0';
        if (id == 0)
            return false;
        if (h[4] == 'R') {
            uv_stream_t *stream = (uv_stream_t *)c->tcp;
            uv_read_stop(stream);
            conn_hand_over(c);
            link->accept_cb(&link->transport, id, address, stream);
            return true;
        }
        c->stage = READ_LENGTH;
        c->have = 0;
        c->want = 4;
        return true;
    }
    case READ_LENGTH: {
        uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (n == 0 || n > LINK_MESSAGE_MAX)
            return false;
        c->stage = READ_BODY;
        c->have = 0;
        c->want = n;
        return true;
    }
    case READ_BODY: {
        int rc = link->on_forward(link->ctx, c->body, c->want);
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
        c->stage = READ_LENGTH;
        c->have = 0;
        c->want = 4;
        return rc == 0;
    }
    case READ_NOTHING:
        break;
    }
    return false; /* bytes where none are expected (on the outgoing forwarding link) */
}

static void read_done(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct link_conn *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0 || c->closing) {
        conn_close(c);
        return;
    }
    c->have += (size_t)nread;
    if (c->have == c->want && !read_piece(c))
        conn_close(c);
    /* after a handover c is freed: libuv stopped reading, so nothing touches it */
}

void link_sweep(struct cluster_link *link)
{
    uint64_t now = uv_now(link->uv);
    for (struct link_conn *c = link->conns; c; c = c->next)
        if (c->kind == CONN_IN && (c->stage == READ_HANDSHAKE || c->stage == READ_ADDRESS) &&
            now - c->accepted_ms > LINK_HANDSHAKE_MS)
            conn_close(c); /* stays in the list until closed: the walk goes on safely */
}

/* ---- the listener ---- */

static void on_accept(uv_stream_t *listener, int status)
{
    struct cluster_link *link = listener->data;
    if (status < 0 || link->closing)
        return;
    struct link_conn *c = conn_new(link, CONN_IN);
    if (!c)
        return; /* the kernel keeps the connection queued; retried on the next accept */
    if (uv_accept(listener, (uv_stream_t *)c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(c->tcp, 1); /* Raft's messages are small and waited for: no Nagle delay */
    if (link->incoming >= LINK_INCOMING_MAX) {
        conn_close(c); /* a flood of unidentified peers costs one closed socket each */
        return;
    }
    c->counted = true;
    c->accepted_ms = uv_now(link->uv);
    link->incoming++;
    c->stage = READ_HANDSHAKE;
    c->have = 0;
    c->want = HANDSHAKE_FIXED;
    if (uv_read_start((uv_stream_t *)c->tcp, read_alloc, read_done) != 0)
        conn_close(c);
}

static void listener_closed(uv_handle_t *handle)
{
    struct cluster_link *link = handle->data;
    link->listener_closed = true;
    link_maybe_closed(link);
}

/* ---- raft_uv_transport ---- */

static int transport_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct cluster_link *link = t->impl;
    if (strlen(address) >= sizeof(link->address)) {
        snprintf(t->errmsg, sizeof(t->errmsg), "address too long");
        return RAFT_INVALID;
    }
    link->id = id;
    snprintf(link->address, sizeof(link->address), "%s", address);
    return 0;
}

static int transport_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct cluster_link *link = t->impl;
    struct sockaddr_storage sa;
    if (link_parse_address(link->address, &sa) != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "bad address %.200s", link->address);
        return RAFT_INVALID;
    }
    if (uv_tcp_init(link->uv, &link->listener) != 0)
        return RAFT_IOERR;
    link->listener.data = link;
    link->listening = true;
    link->listener_closed = false;
    int rc = uv_tcp_bind(&link->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&link->listener, 128, on_accept);
    if (rc != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "listen on %.180s: %s", link->address, uv_strerror(rc));
        return RAFT_IOERR; /* the listener is closed with the transport */
    }
    link->accept_cb = cb;
    return 0;
}

/* Sends the handshake on a connected outgoing stream. */
static int conn_send_handshake(struct link_conn *c, uint8_t kind, uv_write_cb done)
{
    size_t n = handshake_write(c->head, kind, c->link->id, c->link->address);
    uv_buf_t buf = uv_buf_init((char *)c->head, (unsigned)n);
    return uv_write(&c->handshake_write, (uv_stream_t *)c->tcp, &buf, 1, done);
}

/* Calls Raft's connect callback once: the stream on success, else NULL and an error. */
static void raft_connect_done(struct link_conn *c, int status)
{
    struct raft_uv_connect *req = c->req;
    c->req = NULL;
    if (status == 0) {
        uv_stream_t *stream = (uv_stream_t *)c->tcp;
        conn_hand_over(c);
        req->cb(req, stream, 0);
        return;
    }
    conn_close(c);
    req->cb(req, NULL, RAFT_NOCONNECTION);
}

static void raft_handshake_written(uv_write_t *w, int status)
{
    struct link_conn *c = w->handle->data;
    raft_connect_done(c, status == 0 && !c->closing ? 0 : -1);
}

static void forward_handshake_written(uv_write_t *w, int status)
{
    struct link_conn *c = w->handle->data;
    if (status != 0)
        conn_close(c);
}

static void on_connected(uv_connect_t *connect, int status)
{
    struct link_conn *c = connect->data;
    struct cluster_link *link = c->link;
    if (status == 0)
        uv_tcp_nodelay(c->tcp, 1);
    if (c->kind == CONN_RAFT_OUT) {
        if (status != 0 || c->closing || conn_send_handshake(c, 'R', raft_handshake_written) != 0)
            raft_connect_done(c, -1);
        return;
    }
    if (status != 0 || c->closing || conn_send_handshake(c, 'F', forward_handshake_written) != 0) {
        conn_close(c);
        return;
    }
    /* The leader never writes: reading only notices it hang up. */
    c->stage = READ_NOTHING;
    c->have = 0;
    c->want = 1;
    if (uv_read_start((uv_stream_t *)c->tcp, read_alloc, read_done) != 0) {
        conn_close(c);
        return;
    }
    link->forward_ready = true;
    link->on_ready(link->ctx);
}

/* Opens a connection of kind to address; on_connected follows. NULL on failure. */
static struct link_conn *conn_connect(struct cluster_link *link, enum conn_kind kind, const char *address)
{
    struct sockaddr_storage sa;
    if (link->closing || link_parse_address(address, &sa) != 0)
        return NULL;
    struct link_conn *c = conn_new(link, kind);
    if (!c)
        return NULL;
    c->connect.data = c;
    if (uv_tcp_connect(&c->connect, c->tcp, (const struct sockaddr *)&sa, on_connected) != 0) {
        conn_close(c);
        return NULL;
    }
    return c;
}

static int transport_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                             const char *address, raft_uv_connect_cb cb)
{
    (void)id;
    struct cluster_link *link = t->impl;
    req->cb = cb;
    struct link_conn *c = conn_connect(link, CONN_RAFT_OUT, address);
    if (!c)
        return RAFT_NOCONNECTION; /* raft_uv retries after its connect retry delay */
    c->req = req;
    return 0;
}

static void transport_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct cluster_link *link = t->impl;
    link->closing = true;
    link->close_cb = cb;
    if (link->listening) {
        link->listening = false;
        uv_close((uv_handle_t *)&link->listener, listener_closed);
    } else {
        link->listener_closed = true;
    }
    for (struct link_conn *c = link->conns; c; c = c->next)
        conn_close(c);
    link_maybe_closed(link);
}

void link_init(struct cluster_link *link, uv_loop_t *uv, link_forward_fn on_forward, link_ready_fn on_ready,
               void *ctx)
{
    memset(link, 0, sizeof(*link));
    link->uv = uv;
    link->on_forward = on_forward;
    link->on_ready = on_ready;
    link->ctx = ctx;
    link->listener_closed = true;
    link->transport.impl = link;
    link->transport.init = transport_init;
    link->transport.listen = transport_listen;
    link->transport.connect = transport_connect;
    link->transport.close = transport_close;
}

/* ---- the forwarding link ---- */

static void forward_written(uv_write_t *w, int status)
{
    struct link_conn *c = w->handle->data;
    free(w->data);
    if (status != 0)
        conn_close(c);
}

int link_forward(struct cluster_link *link, raft_id leader_id, const char *leader_address,
                 const struct raft_buffer *command)
{
    if (link->closing)
        return -ESHUTDOWN;
    if (command->len == 0 || command->len > LINK_MESSAGE_MAX)
        return -E2BIG;
    if (link->forward && link->forward_to != leader_id)
        conn_close(link->forward); /* the leader changed: follow it */
    if (!link->forward) {
        link->forward = conn_connect(link, CONN_FORWARD_OUT, leader_address);
        link->forward_to = leader_id;
        link->forward_ready = false;
        return link->forward ? -EAGAIN : -ENOTCONN;
    }
    if (!link->forward_ready)
        return -EAGAIN;
    uv_stream_t *stream = (uv_stream_t *)link->forward->tcp;
    if (uv_stream_get_write_queue_size(stream) > LINK_QUEUE_MAX)
        return -ENOBUFS; /* the leader does not read: the proposal's retry sends it again */
    struct link_write *w = malloc(sizeof(*w) + 4 + command->len);
    if (!w)
        return -ENOMEM;
    uint32_t n = (uint32_t)command->len;
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(w->data, len, 4);
    memcpy(w->data + 4, command->base, command->len);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)(4 + command->len));
    if (uv_write(&w->req, stream, &buf, 1, forward_written) != 0) {
        free(w);
        conn_close(link->forward);
        return -EPIPE;
    }
    return 0;
}
