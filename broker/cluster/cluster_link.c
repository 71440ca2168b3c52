/* broker/cluster/cluster_link.c: the cluster port (format and rules: cluster_link.h): raft_uv's
 * transport over libuv TCP, and the forwarding link beside it, both behind a mutual
 * challenge/response on the cluster's secret (HMAC-SHA256 and nonces from GnuTLS). Every read is
 * sized to the piece expected next (the hello's fixed part, the rest of it, the challenge or the
 * proof, a length, a message), so a stream is handed to Raft with none of Raft's bytes consumed,
 * and a peer can never make us buffer more than one bounded message. */
#include "cluster_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <gnutls/gnutls.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define HELLO_FIXED 15 /* magic, kind, id, address length */
#define ADDRESS_MAX 256
#define HELLO_MAX (HELLO_FIXED + ADDRESS_MAX + LINK_NONCE)
#define CHALLENGE (LINK_NONCE + LINK_MAC)
#define LOG_INTERVAL_MS 60000 /* one report per peer per interval */
#define LOG_BURST 8           /* reports per interval, all peers together */

_Static_assert(LOG_BURST < LINK_LOG_PEERS, "a peer reported within the interval keeps its slot");

enum conn_kind {
    CONN_IN,          /* accepted: the hello, the proof, then forwarded commands or Raft's */
    CONN_RAFT_OUT,    /* connecting for Raft; handed over once the challenge checks out */
    CONN_FORWARD_OUT, /* the forwarding link to the leader */
    CONN_PEER_OUT,    /* a peer link */
};

enum read_stage {
    READ_HELLO, READ_HELLO_REST, READ_PROOF, /* a server */
    READ_CHALLENGE,                          /* a client */
    READ_MESSAGES, READ_NOTHING,
};

struct link_conn {
    struct link_conn *prev, *next;  /* in link->conns */
    struct cluster_link *link;
    uv_tcp_t *tcp;                  /* raft_malloc'd: Raft frees a stream handed to it */
    enum conn_kind kind;
    bool closing, counted;          /* counted: in link->incoming */
    bool authenticated;             /* the handshake completed */
    uv_connect_t connect;
    uv_getaddrinfo_t resolve;       /* dialling a named address: its resolution */
    bool resolving;                 /* resolve is in flight: c is freed by its callback */
    bool handle_closed;             /* tcp was closed while resolving */
    struct raft_uv_connect *req;    /* CONN_RAFT_OUT until its callback is called */
    raft_id server_id;              /* ours when accepted; the member meant when connecting */
    enum read_stage stage;
    uint8_t hello[HELLO_MAX];       /* the hello, sent or received: both MACs cover it */
    size_t hello_len;
    uint8_t nonce_s[LINK_NONCE];
    uint8_t in[CHALLENGE];          /* the challenge, or the proof */
    uint8_t *body;                  /* forwarded messages being read (READ_MESSAGES): as many as a
                                     * read brings, grown only as far as the bytes that came */
    size_t body_cap;
    size_t have, want;              /* bytes of the current piece read so far, and needed */
    uint64_t started_ms;            /* uv_now() at accept or connect */
    char peer[64];                  /* for reports: the accepted peer's IP, or the address dialled */
    struct link_out *out;           /* CONN_FORWARD_OUT, CONN_PEER_OUT: the stream it carries */
    uint64_t serial;                /* an incoming peer link: its number (> 0) */
};

struct link_write {
    uv_write_t req;
    uint8_t data[];
};

static const uint8_t MAGIC[4] = {'W', 'R', 'N', 'C'};
static const char LABEL_SERVER[] = "warren-cluster S"; /* 16 bytes are MAC'd, not the NUL */
static const char LABEL_CLIENT[] = "warren-cluster C";

/* ---- addresses and the handshake ---- */

/* A DNS name as RFC 1123 writes one: labels of letters, digits and '-', not starting or ending
 * with '-', 1..63 bytes each, joined by '.', 253 bytes at most. */
static bool host_name(const char *host)
{
    size_t n = strlen(host), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char ch = host[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return false;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   (ch == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* Splits address into host (brackets kept) and port. 0 or -EINVAL. */
static int split_address(const char *address, char host[ADDRESS_MAX], unsigned *port)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(colon + 1) == 0 || strlen(colon + 1) > 5)
        return -EINVAL;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p == 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
        return -EINVAL;
    size_t n = (size_t)(colon - address);
    if (n >= ADDRESS_MAX)
        return -EINVAL;
    memcpy(host, address, n);
    host[n] = '\0';
    *port = (unsigned)p;
    return 0;
}

int link_parse_address(const char *address, struct sockaddr_storage *out)
{
    char host[ADDRESS_MAX];
    unsigned port;
    if (split_address(address, host, &port) != 0)
        return -EINVAL;
    size_t n = strlen(host);
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    if (host[0] == '[') {
        if (n <= 2 || host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&sa) != 0)
            return -EINVAL;
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&sa) != 0) {
        bool dotted = true; /* all digits and dots: a bad IPv4 address, not a name */
        for (const char *p = host; *p && dotted; p++)
            dotted = (*p >= '0' && *p <= '9') || *p == '.';
        return !dotted && host_name(host) ? 1 : -EINVAL;
    }
    *out = sa;
    return 0;
}

/* What getaddrinfo is asked for a named address: its host, its port as a service, TCP. */
struct lookup {
    char host[ADDRESS_MAX], service[8];
};
static const struct addrinfo lookup_hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

static int lookup_of(const char *address, struct lookup *out)
{
    unsigned port;
    if (split_address(address, out->host, &port) != 0)
        return -EINVAL;
    snprintf(out->service, sizeof(out->service), "%u", port);
    return 0;
}

/* Resolves the name of a named address (blocking: at listen, once, at start). 0 or -errno. */
static int resolve_now(const char *address, struct sockaddr_storage *out)
{
    struct lookup l;
    struct addrinfo *res = NULL;
    if (lookup_of(address, &l) != 0)
        return -EINVAL;
    if (getaddrinfo(l.host, l.service, &lookup_hints, &res) != 0 || !res)
        return -EHOSTUNREACH;
    memcpy(out, res->ai_addr, res->ai_addrlen <= sizeof(*out) ? res->ai_addrlen : sizeof(*out));
    freeaddrinfo(res);
    return 0;
}

static void put64(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Writes a hello with a fresh nonce into c->hello. False when no random bytes could be had. */
static bool hello_write(struct link_conn *c, uint8_t kind)
{
    const char *address = c->link->address;
    size_t n = strlen(address);
    uint8_t *out = c->hello;
    memcpy(out, MAGIC, 4);
    out[4] = kind;
    put64(out + 5, c->link->id);
    out[13] = (uint8_t)(n >> 8);
    out[14] = (uint8_t)n;
    memcpy(out + HELLO_FIXED, address, n);
    c->hello_len = HELLO_FIXED + n + LINK_NONCE;
    return gnutls_rnd(GNUTLS_RND_RANDOM, out + HELLO_FIXED + n, LINK_NONCE) == 0;
}

/* HMAC-SHA256(secret, label | hello | nonce_s | server id) into out. False on a GnuTLS failure. */
static bool handshake_mac(const struct link_conn *c, const char *label, uint8_t out[LINK_MAC])
{
    uint8_t msg[16 + HELLO_MAX + LINK_NONCE + 8];
    size_t n = 0;
    memcpy(msg, label, 16);
    n += 16;
    memcpy(msg + n, c->hello, c->hello_len);
    n += c->hello_len;
    memcpy(msg + n, c->nonce_s, LINK_NONCE);
    n += LINK_NONCE;
    put64(msg + n, c->server_id);
    n += 8;
    const struct cluster_link *link = c->link;
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, link->secret, link->secret_len, msg, n, out) == 0;
}

/* True when the MAC received equals the one computed with label, compared in constant time. */
static bool handshake_check(const struct link_conn *c, const char *label, const uint8_t *received)
{
    uint8_t expected[LINK_MAC];
    return handshake_mac(c, label, expected) && memeql_sec(expected, received, LINK_MAC);
}

/* ---- failure reports ---- */

/* Logs that peer failed (what), at most once per LOG_INTERVAL_MS per peer and LOG_BURST times per
 * interval in all, so a port scanner or a node with another secret cannot flood the log. With
 * LOG_BURST below LINK_LOG_PEERS, the slot taken over (the oldest) never holds a peer reported
 * within the interval. */
static void link_report(struct cluster_link *link, const char *peer, const char *what)
{
    uint64_t now = uv_now(link->uv);
    int slot = -1, oldest = 0;
    for (int i = 0; i < LINK_LOG_PEERS; i++) {
        if (link->log_peers[i].peer[0] && strcmp(link->log_peers[i].peer, peer) == 0)
            slot = i;
        if (link->log_peers[i].at_ms < link->log_peers[oldest].at_ms)
            oldest = i;
    }
    if (slot >= 0 && now - link->log_peers[slot].at_ms < LOG_INTERVAL_MS) {
        link->log_peers[slot].suppressed++;
        return;
    }
    if (link->log_window_count == 0 || now - link->log_window_ms >= LOG_INTERVAL_MS) {
        link->log_window_ms = now;
        link->log_window_count = 0;
    }
    if (link->log_window_count >= LOG_BURST) {
        link->log_dropped++;
        return;
    }
    link->log_window_count++;
    unsigned suppressed = 0;
    if (slot < 0) {
        slot = oldest;
        snprintf(link->log_peers[slot].peer, sizeof(link->log_peers[slot].peer), "%s", peer);
    } else {
        suppressed = link->log_peers[slot].suppressed;
    }
    link->log_peers[slot].at_ms = now;
    link->log_peers[slot].suppressed = 0;
    char more[96] = "";
    if (suppressed || link->log_dropped)
        snprintf(more, sizeof(more), " (and %u more from it, %u from others, not reported)", suppressed,
                 link->log_dropped);
    log_warning("cluster port %s: connection with %s closed: %s%s; the next report on it waits a minute",
                link->address, peer, what, more);
    link->log_dropped = 0;
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

/* The Raft id and address (NUL-terminated) an accepted connection's checked hello names. */
static raft_id hello_sender(const struct link_conn *c, char address[ADDRESS_MAX])
{
    size_t n = (size_t)c->hello[13] << 8 | c->hello[14];
    memcpy(address, c->hello + HELLO_FIXED, n);
    address[n] = '\0';
    raft_id id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | c->hello[5 + i];
    return id;
}

/* Unlinks c from link->conns and frees it (not its handle). */
static void conn_free(struct link_conn *c)
{
    struct cluster_link *link = c->link;
    if (c->prev)
        c->prev->next = c->next;
    else
        link->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->body);
    free(c);
}

static void conn_closed(uv_handle_t *handle)
{
    struct link_conn *c = handle->data;
    struct cluster_link *link = c->link;
    raft_free(c->tcp);
    if (c->resolving) { /* its resolution, cancelled, still refers to it: freed there */
        c->handle_closed = true;
        return;
    }
    conn_free(c);
    link_maybe_closed(link);
}

/* Closes c; a Raft connection attempt still pending fails (Raft retries after its delay). */
static void conn_close(struct link_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct cluster_link *link = c->link;
    struct link_out *out = c->out;
    if (out && out->conn == c) {
        bool was_ready = out->ready;
        out->conn = NULL;
        out->ready = false;
        free(out->corked); /* the forwarding link's senders send again; a peer link's are told */
        out->corked = NULL;
        out->corked_len = out->corked_cap = 0;
        if (c->kind == CONN_PEER_OUT) {
            if (!was_ready)
                out->retry_ms = uv_now(link->uv) + LINK_RETRY_MS;
            if (!link->closing && link->on_lost)
                link->on_lost(link->ctx, out->to, out->address, 0);
        } else if (was_ready && !link->closing && link->on_forward_gone) {
            link->on_forward_gone(link->ctx, out->to);
        }
    }
    if (c->serial && !link->closing && link->on_lost) {
        char address[ADDRESS_MAX];
        raft_id id = hello_sender(c, address);
        link->on_lost(link->ctx, id, address, c->serial);
    }
    if (c->counted) {
        c->counted = false;
        c->link->incoming--;
    }
    uv_close((uv_handle_t *)c->tcp, conn_closed);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->resolve); /* on_resolved follows, with UV_EAI_CANCELED or not */
    struct raft_uv_connect *req = c->req;
    if (req) {
        c->req = NULL;
        req->cb(req, NULL, RAFT_NOCONNECTION);
    }
}

/* Reports why c failed, then closes it. */
static void conn_refuse(struct link_conn *c, const char *why)
{
    if (!c->closing)
        link_report(c->link, c->peer, why);
    conn_close(c);
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
    c->started_ms = uv_now(link->uv);
    c->next = link->conns;
    if (link->conns)
        link->conns->prev = c;
    link->conns = c;
    return c;
}

/* Unlinks c, whose stream now belongs to Raft, and frees it (not the stream). */
static void conn_hand_over(struct link_conn *c)
{
    if (c->counted)
        c->link->incoming--;
    conn_free(c);
}

static void send_done(uv_write_t *w, int status)
{
    (void)status; /* a failed handshake write shows as a read error or the handshake's timeout */
    free(w->data);
}

/* Queues a copy of bytes on c. Touches nothing of c when done, so the stream may be handed to
 * Raft meanwhile (libuv keeps the order of writes). 0 or -1. */
static int conn_send(struct link_conn *c, const uint8_t *bytes, size_t len)
{
    struct link_write *w = malloc(sizeof(*w) + len);
    if (!w)
        return -1;
    memcpy(w->data, bytes, len);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, &buf, 1, send_done) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* Calls Raft's connect callback with the stream, which is Raft's from now on. */
static void raft_connect_done(struct link_conn *c)
{
    struct raft_uv_connect *req = c->req;
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    c->req = NULL;
    uv_read_stop(stream);
    conn_hand_over(c);
    req->cb(req, stream, 0);
}

static void read_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct link_conn *c = handle->data;
    if (c->stage != READ_MESSAGES) { /* the handshake: exactly its bytes, the rest may be Raft's */
        uint8_t *base = c->stage == READ_HELLO || c->stage == READ_HELLO_REST ? c->hello : c->in;
        *buf = uv_buf_init((char *)base + c->have, (unsigned)(c->want - c->have));
        return;
    }
    if (c->have == c->body_cap) { /* memory follows the bytes a peer sent, not the length it claimed */
        size_t cap = c->body_cap ? c->body_cap * 2 : 64u << 10;
        if (cap > 4 + (size_t)LINK_MESSAGE_MAX)
            cap = 4 + (size_t)LINK_MESSAGE_MAX; /* full and no message complete: messages() refuses */
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

static void next_piece(struct link_conn *c, enum read_stage stage, size_t want)
{
    c->stage = stage;
    c->have = 0;
    c->want = want;
}

/* A peer link notices a peer that vanished without a word (powered off, or cut off by a network
 * that drops rather than refuses) within about PEER_SILENCE_S: keepalive probes after 5 s of
 * silence, 2 s apart, 3 unanswered ones; and data unacknowledged for that long. The link is then
 * lost (on_lost), as when the peer's process dies. A paused peer (SIGSTOP) is not noticed: its
 * kernel answers for it. */
#define PEER_SILENCE_S 11
static void peer_timeouts(struct link_conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)c->tcp, &fd) != 0)
        return;
    int on = 1, idle = 5, interval = 2, count = 3;
    unsigned user_timeout_ms = PEER_SILENCE_S * 1000;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms) != 0)
        log_debug("cluster: the peer link to %s keeps the system's TCP timeouts (setsockopt failed)", c->peer);
}

/* The server has the whole hello: it checks it and sends the challenge. NULL, or why it fails. */
static const char *hello_received(struct link_conn *c)
{
    const uint8_t *h = c->hello;
    size_t n = (size_t)h[13] << 8 | h[14];
    for (size_t i = 0; i < n; i++)
        if (h[HELLO_FIXED + i] < 0x21 || h[HELLO_FIXED + i] > 0x7e)
            return "malformed hello (address)";
    raft_id id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | h[5 + i];
    if (id == 0)
        return "malformed hello (id 0)";
    c->hello_len = c->want;
    c->server_id = c->link->id;
    uint8_t challenge[CHALLENGE];
    if (gnutls_rnd(GNUTLS_RND_RANDOM, c->nonce_s, LINK_NONCE) != 0)
        return "no random bytes for a nonce";
    memcpy(challenge, c->nonce_s, LINK_NONCE);
    if (!handshake_mac(c, LABEL_SERVER, challenge + LINK_NONCE) || conn_send(c, challenge, CHALLENGE) != 0)
        return "cannot send the challenge";
    next_piece(c, READ_PROOF, LINK_MAC);
    return NULL;
}

/* The server checks the client's proof; then the stream is Raft's, or carries commands. */
static const char *proof_received(struct link_conn *c)
{
    if (!handshake_check(c, LABEL_CLIENT, c->in))
        return "wrong proof in the handshake (a node with another secret, or not a member)";
    c->authenticated = true;
    struct cluster_link *link = c->link;
    if (c->hello[4] == 'Q' && !link->on_message)
        return "a peer link to a node that takes none";
    if (c->hello[4] == 'F' || c->hello[4] == 'Q') {
        if (c->hello[4] == 'Q') {
            c->serial = ++link->next_serial;
            peer_timeouts(c);
        }
        next_piece(c, READ_MESSAGES, 0);
        return NULL;
    }
    char address[ADDRESS_MAX];
    raft_id id = hello_sender(c, address);
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    uv_read_stop(stream);
    conn_hand_over(c);
    link->accept_cb(&link->transport, id, address, stream);
    return NULL;
}

/* The client checks the server's challenge and answers it; then its stream is used. */
static const char *challenge_received(struct link_conn *c)
{
    memcpy(c->nonce_s, c->in, LINK_NONCE);
    if (!handshake_check(c, LABEL_SERVER, c->in + LINK_NONCE))
        return "wrong answer in the handshake (a node with another secret, or not the member expected)";
    uint8_t proof[LINK_MAC];
    if (!handshake_mac(c, LABEL_CLIENT, proof) || conn_send(c, proof, LINK_MAC) != 0)
        return "cannot send the proof";
    c->authenticated = true;
    if (c->kind == CONN_RAFT_OUT) {
        raft_connect_done(c);
        return NULL;
    }
    struct cluster_link *link = c->link;
    next_piece(c, READ_NOTHING, 1); /* the other end never writes: reading only notices it hang up */
    c->out->ready = true;
    if (c->kind == CONN_FORWARD_OUT)
        link->on_ready(link->ctx);
    else
        link_flush(link); /* what was sent while it connected */
    return NULL;
}

/* The piece c->want is complete: checks it and sets up the next. NULL, or why the peer is dropped
 * (c may have been handed over or closed: it is not touched after). */
static const char *read_piece(struct link_conn *c)
{
    switch (c->stage) {
    case READ_HELLO: {
        const uint8_t *h = c->hello;
        size_t n = (size_t)h[13] << 8 | h[14];
        if (memcmp(h, MAGIC, 4) != 0 || (h[4] != 'R' && h[4] != 'F' && h[4] != 'Q') || n == 0 || n >= ADDRESS_MAX)
            return "malformed hello";
        c->stage = READ_HELLO_REST;
        c->want = HELLO_FIXED + n + LINK_NONCE;
        return NULL;
    }
    case READ_HELLO_REST:
        return hello_received(c);
    case READ_PROOF:
        return proof_received(c);
    case READ_CHALLENGE:
        return challenge_received(c);
    case READ_MESSAGES: /* read_done hands these to messages() */
    case READ_NOTHING:
        break;
    }
    return "bytes where none are expected"; /* on the outgoing forwarding link */
}

/* Hands every complete forwarded message in c->body to on_forward, in order, and keeps the
 * incomplete rest at the front. One read brings what a follower wrote in a pass (link_flush),
 * so a stream of publishes costs a read per pass, not two per message. NULL, or why the peer is
 * dropped. */
static const char *messages(struct link_conn *c)
{
    struct cluster_link *link = c->link;
    size_t at = 0;
    while (c->have - at >= 4 && !c->closing) {
        const uint8_t *h = c->body + at;
        uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (n == 0 || n > LINK_MESSAGE_MAX)
            return "forwarded message length out of bounds";
        if (c->have - at - 4 < n)
            break;
        if (c->serial) {
            char address[ADDRESS_MAX];
            raft_id id = hello_sender(c, address);
            if (link->on_message(link->ctx, id, address, c->serial, h + 4, n) != 0)
                return "peer message does not decode";
        } else if (link->on_forward(link->ctx, h + 4, n) != 0) {
            return "forwarded command does not decode";
        }
        at += 4 + (size_t)n;
    }
    memmove(c->body, c->body + at, c->have - at);
    c->have -= at;
    if (c->have == 0 && c->body_cap > (64u << 10)) { /* a large message passed: give its room back */
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    return NULL;
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
    if (c->stage == READ_MESSAGES) {
        const char *why = messages(c);
        if (why)
            conn_refuse(c, why);
        return;
    }
    if (c->have == c->want) {
        const char *why = read_piece(c);
        if (why)
            conn_refuse(c, why);
    }
    /* after a handover c is freed: libuv stopped reading, so nothing touches it */
}

void link_sweep(struct cluster_link *link)
{
    uint64_t now = uv_now(link->uv);
    for (struct link_conn *c = link->conns; c; c = c->next)
        if (!c->authenticated && !c->closing && now - c->started_ms > LINK_HANDSHAKE_MS)
            conn_refuse(c, "handshake not completed in time"); /* stays listed until closed */
}

/* ---- the listener ---- */

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    snprintf(out, cap, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) != 0)
        return;
    if (sa.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&sa, out, cap);
    else if (sa.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&sa, out, cap);
}

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
    peer_name(c->tcp, c->peer, sizeof(c->peer)); /* its IP: a port scanner's ports all count as one */
    c->counted = true;
    link->incoming++;
    next_piece(c, READ_HELLO, HELLO_FIXED);
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
    int kind = link_parse_address(link->address, &sa);
    if (kind < 0 || (kind == 1 && resolve_now(link->address, &sa) != 0)) {
        snprintf(t->errmsg, sizeof(t->errmsg), "%s address %.200s", kind < 0 ? "bad" : "cannot resolve the",
                 link->address);
        return RAFT_INVALID;
    }
    /* The peers dial link->address; a node behind a forwarded port binds its own port instead. */
    if (link->listen_port && sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(link->listen_port);
    else if (link->listen_port)
        ((struct sockaddr_in *)&sa)->sin_port = htons(link->listen_port);
    if (uv_tcp_init(link->uv, &link->listener) != 0)
        return RAFT_IOERR;
    link->listener.data = link;
    link->listening = true;
    link->listener_closed = false;
    int rc = uv_tcp_bind(&link->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&link->listener, 128, on_accept);
    if (rc != 0) {
        if (link->listen_port)
            snprintf(t->errmsg, sizeof(t->errmsg), "listen on %.180s's host, port %u: %s", link->address,
                     link->listen_port, uv_strerror(rc));
        else
            snprintf(t->errmsg, sizeof(t->errmsg), "listen on %.180s: %s", link->address, uv_strerror(rc));
        return RAFT_IOERR; /* the listener is closed with the transport */
    }
    link->accept_cb = cb;
    return 0;
}

/* Connected (or not): the client sends its hello and waits for the challenge. */
static void on_connected(uv_connect_t *connect, int status)
{
    struct link_conn *c = connect->data;
    if (c->closing)
        return; /* closed while connecting (status UV_ECANCELED): Raft was told then */
    if (status != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(c->tcp, 1);
    uint8_t kind = c->kind == CONN_RAFT_OUT ? 'R' : c->kind == CONN_FORWARD_OUT ? 'F' : 'Q';
    if (kind == 'Q')
        peer_timeouts(c);
    if (!hello_write(c, kind) || conn_send(c, c->hello, c->hello_len) != 0) {
        conn_close(c);
        return;
    }
    next_piece(c, READ_CHALLENGE, CHALLENGE);
    if (uv_read_start((uv_stream_t *)c->tcp, read_alloc, read_done) != 0)
        conn_close(c);
}

/* A named address resolved (in libuv's thread pool): dials the first address it gave. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct link_conn *c = req->data;
    c->resolving = false;
    c->link->resolving--;
    if (c->closing) {
        if (res)
            uv_freeaddrinfo(res);
        if (c->handle_closed) {
            struct cluster_link *link = c->link;
            conn_free(c);
            link_maybe_closed(link);
        }
        return;
    }
    if (status != 0 || !res) {
        if (res)
            uv_freeaddrinfo(res);
        conn_refuse(c, status != 0 ? uv_strerror(status) : "the name resolves to no address");
        return;
    }
    int rc = uv_tcp_connect(&c->connect, c->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rc != 0)
        conn_close(c);
}

/* Opens a connection of kind to member server_id at address; on_connected follows (after the
 * name's resolution, for a named address). NULL on failure. */
static struct link_conn *conn_connect(struct cluster_link *link, enum conn_kind kind, raft_id server_id,
                                      const char *address)
{
    struct sockaddr_storage sa;
    int named = link_parse_address(address, &sa);
    /* One name resolution at a time: a lookup that hangs (a name no server answers for) holds a
     * thread of libuv's pool, which raft_uv's disk work shares; Raft dials again after its delay. */
    if (link->closing || named < 0 || (named == 1 && link->resolving > 0))
        return NULL;
    struct link_conn *c = conn_new(link, kind);
    if (!c)
        return NULL;
    c->server_id = server_id;
    snprintf(c->peer, sizeof(c->peer), "%s", address);
    c->connect.data = c;
    if (named == 0) {
        if (uv_tcp_connect(&c->connect, c->tcp, (const struct sockaddr *)&sa, on_connected) != 0) {
            conn_close(c);
            return NULL;
        }
        return c;
    }
    struct lookup l;
    c->resolve.data = c;
    c->resolving = lookup_of(address, &l) == 0 &&
                   uv_getaddrinfo(link->uv, &c->resolve, on_resolved, l.host, l.service, &lookup_hints) == 0;
    if (!c->resolving) {
        conn_close(c);
        return NULL;
    }
    link->resolving++;
    return c;
}

static int transport_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                             const char *address, raft_uv_connect_cb cb)
{
    struct cluster_link *link = t->impl;
    req->cb = cb;
    struct link_conn *c = conn_connect(link, CONN_RAFT_OUT, id, address);
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
        conn_close(c); /* the forwarding link's close drops what was corked for it */
    link_maybe_closed(link);
}

void link_init(struct cluster_link *link, uv_loop_t *uv, const uint8_t *secret, size_t secret_len,
               link_forward_fn on_forward, link_ready_fn on_ready, void *ctx)
{
    memset(link, 0, sizeof(*link));
    link->uv = uv;
    link->on_forward = on_forward;
    link->on_ready = on_ready;
    link->ctx = ctx;
    if (secret_len > sizeof(link->secret))
        secret_len = sizeof(link->secret); /* cluster_node_start refuses longer ones */
    memcpy(link->secret, secret, secret_len);
    link->secret_len = secret_len;
    link->listener_closed = true;
    link->transport.impl = link;
    link->transport.init = transport_init;
    link->transport.listen = transport_listen;
    link->transport.connect = transport_connect;
    link->transport.close = transport_close;
}

void link_set_listen_port(struct cluster_link *link, uint16_t port)
{
    link->listen_port = port;
}

void link_wipe(struct cluster_link *link)
{
    explicit_bzero(link->secret, sizeof(link->secret));
    link->secret_len = 0;
}

/* ---- outgoing message streams: the forwarding link and peer links ---- */

static void out_written(uv_write_t *w, int status)
{
    struct link_conn *c = w->handle->data;
    free(w->data);
    if (status != 0)
        conn_close(c);
}

/* Writes what out gathered, when it is connected. True when anything went out. */
static bool out_flush(struct link_out *out)
{
    struct link_write *w = out->corked;
    if (!w || !out->conn || !out->ready)
        return false;
    size_t len = out->corked_len;
    out->corked = NULL;
    out->corked_len = out->corked_cap = 0;
    w->req.data = w;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)out->conn->tcp, &buf, 1, out_written) != 0) {
        free(w);
        conn_close(out->conn); /* the forwarding link's senders send again; a peer link's are told */
        return false;
    }
    return true;
}

/* Appends a message to what out gathers: 0, -ENOBUFS past LINK_QUEUE_MAX, -ENOMEM. */
static int out_append(struct link_out *out, const uint8_t *bytes, size_t n)
{
    size_t queued = out->conn && out->ready ? uv_stream_get_write_queue_size((uv_stream_t *)out->conn->tcp) : 0;
    if (queued + out->corked_len > LINK_QUEUE_MAX)
        return -ENOBUFS;
    size_t need = out->corked_len + 4 + n;
    if (need > out->corked_cap) {
        size_t cap = out->corked_cap ? out->corked_cap : 4096;
        while (cap < need)
            cap *= 2;
        struct link_write *grown = realloc(out->corked, sizeof(*grown) + cap);
        if (!grown)
            return -ENOMEM;
        out->corked = grown;
        out->corked_cap = cap;
    }
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(out->corked->data + out->corked_len, len, 4);
    memcpy(out->corked->data + out->corked_len + 4, bytes, n);
    out->corked_len = need;
    if (out->corked_len >= LINK_CORK_MAX)
        out_flush(out);
    return 0;
}

int link_forward(struct cluster_link *link, raft_id leader_id, const char *leader_address,
                 const struct raft_buffer *command)
{
    struct link_out *out = &link->forward;
    if (link->closing)
        return -ESHUTDOWN;
    if (command->len == 0 || command->len > LINK_MESSAGE_MAX)
        return -E2BIG;
    if (!out->conn || out->to != leader_id) {
        link_follow(link, leader_id, leader_address);
        return out->conn ? -EAGAIN : -ENOTCONN;
    }
    if (!out->ready)
        return -EAGAIN;
    return out_append(out, command->base, command->len);
}

void link_follow(struct cluster_link *link, raft_id leader_id, const char *leader_address)
{
    struct link_out *out = &link->forward;
    if (link->closing || (out->conn && out->to == leader_id))
        return;
    if (out->conn)
        conn_close(out->conn); /* the leader changed: follow it */
    out->to = leader_id;
    out->ready = false;
    out->conn = conn_connect(link, CONN_FORWARD_OUT, leader_id, leader_address);
    if (out->conn)
        out->conn->out = out;
}

void link_set_forward_gone(struct cluster_link *link, link_gone_fn on_gone) { link->on_forward_gone = on_gone; }

bool link_flush(struct cluster_link *link)
{
    bool wrote = out_flush(&link->forward);
    for (size_t i = 0; i < LINK_PEERS; i++)
        wrote |= out_flush(&link->peers[i]);
    return wrote;
}

size_t link_backlog(const struct cluster_link *link, raft_id peer)
{
    for (size_t i = 0; i < LINK_PEERS; i++) {
        const struct link_out *o = &link->peers[i];
        if (o->to == peer)
            return o->corked_len +
                   (o->conn && o->ready ? uv_stream_get_write_queue_size((uv_stream_t *)o->conn->tcp) : 0);
    }
    return 0;
}

void link_set_peer_handlers(struct cluster_link *link, link_message_fn on_message, link_lost_fn on_lost)
{
    link->on_message = on_message;
    link->on_lost = on_lost;
}

int link_send(struct cluster_link *link, raft_id peer, const char *address, const uint8_t *bytes, size_t len)
{
    if (link->closing)
        return -ESHUTDOWN;
    if (len == 0 || len > LINK_MESSAGE_MAX || strlen(address) >= ADDRESS_MAX)
        return -E2BIG;
    struct link_out *out = NULL, *free_slot = NULL, *idle = NULL;
    for (size_t i = 0; i < LINK_PEERS && !out; i++) {
        struct link_out *o = &link->peers[i];
        if (o->to == peer)
            out = o;
        else if (o->to == 0 && !free_slot)
            free_slot = o;
        else if (!o->conn && !o->corked && !idle)
            idle = o;
    }
    if (!out) { /* a member's slot; one with nothing open is taken over once the slots are all used */
        out = free_slot ? free_slot : idle;
        if (!out)
            return -ENOTCONN;
        memset(out, 0, sizeof(*out));
        out->to = peer;
        snprintf(out->address, sizeof(out->address), "%s", address);
    }
    if (!out->conn) {
        if (uv_now(link->uv) < out->retry_ms)
            return -ENOTCONN;
        snprintf(out->address, sizeof(out->address), "%s", address);
        out->ready = false;
        out->conn = conn_connect(link, CONN_PEER_OUT, peer, address);
        if (!out->conn) {
            out->retry_ms = uv_now(link->uv) + LINK_RETRY_MS;
            return -ENOTCONN;
        }
        out->conn->out = out;
    }
    return out_append(out, bytes, len);
}
