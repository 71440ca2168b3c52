/* tests/unit/net/test_netconn.c: connections over real loopback sockets, server and client in
 * one process, both driven by one event loop: echo, frames split across reads, backpressure
 * with a slow reader, ref slices, close with output pending, peer disconnects, linger, and a
 * socketpair end adopted without a listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "net_private.h" /* white-box: which input memory a connection holds */
#include "netconn.h"

/* ---- harness: a loop, a listener and server-side connection contexts ---- */

struct server_conn;

struct harness {
    struct event_loop *loop;
    struct netlistener *listener;
    uint16_t port;
    const struct netconn_handler *handler;
    struct server_conn *last; /* most recently accepted */
    int accepted;
    int closes;
    int inputs;
    int drains;
    void (*on_accept)(struct server_conn *sc);
};

struct server_conn {
    struct harness *h;
    struct netconn *conn;
    uint8_t *got; /* everything received (consumed) */
    size_t got_len;
    size_t to_send; /* backpressure test: bytes still to queue */
    size_t sent;
    int closes;
    bool saw_full;
};

static void before_sleep(struct event_loop *loop, void *data)
{
    (void)data;
    netconn_flush_all(loop);
    netconn_reap(loop);
}

static void on_accept(struct netconn *conn, void *arg)
{
    struct harness *h = arg;
    struct server_conn *sc = calloc(1, sizeof(*sc));
    sc->h = h;
    sc->conn = conn;
    h->last = sc;
    h->accepted++;
    netconn_set_handler(conn, h->handler, sc);
    if (h->on_accept)
        h->on_accept(sc);
}

static void server_close(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    assert_ptr_equal(sc->conn, conn);
    sc->closes++;
    assert_int_equal(sc->closes, 1);
    sc->h->closes++;
    if (sc->h->last == sc)
        sc->h->last = NULL;
    free(sc->got);
    free(sc);
}

static void keep(struct server_conn *sc, const uint8_t *data, size_t len)
{
    sc->got = realloc(sc->got, sc->got_len + len + 1);
    memcpy(sc->got + sc->got_len, data, len);
    sc->got_len += len;
}

static struct harness *harness_open(const char *addr, const struct netconn_handler *handler)
{
    struct harness *h = calloc(1, sizeof(*h));
    h->loop = loop_create();
    assert_non_null(h->loop);
    h->handler = handler;
    loop_set_before_sleep(h->loop, before_sleep, h);
    h->listener = netlistener_open(h->loop, addr, 0, on_accept, h);
    if (!h->listener) {
        loop_destroy(h->loop);
        free(h);
        return NULL;
    }
    h->port = netlistener_port(h->listener);
    assert_true(h->port > 0);
    return h;
}

struct wait {
    struct harness *h;
    bool (*pred)(struct harness *h, void *arg);
    void *arg;
    uint64_t deadline;
    bool met;
};

static void poll_timer(struct event_loop *loop, void *data)
{
    struct wait *w = data;
    if (w->pred && w->pred(w->h, w->arg)) {
        w->met = true;
        loop_stop(loop);
    } else if (loop_now_ms(loop) >= w->deadline) {
        loop_stop(loop);
    } else {
        loop_timer_add(loop, 1, poll_timer, w);
    }
}

/* Runs the loop until pred holds (true) or timeout_ms passed (false). pred NULL: just run. */
static bool run_until(struct harness *h, bool (*pred)(struct harness *, void *), void *arg,
                      uint64_t timeout_ms)
{
    struct wait w = {h, pred, arg, loop_now_ms(h->loop) + timeout_ms, false};
    loop_timer_add(h->loop, 0, poll_timer, &w);
    loop_run(h->loop);
    return w.met;
}

static bool no_connections(struct harness *h, void *arg)
{
    (void)arg;
    return netconn_count(h->loop) == 0;
}

static void harness_close(struct harness *h)
{
    netlistener_close(h->listener);
    assert_true(run_until(h, no_connections, NULL, 5000));
    assert_int_equal(h->closes, h->accepted);
    loop_destroy(h->loop);
    free(h);
}

/* ---- a test client: a non-blocking socket served by the same loop ---- */

struct client {
    struct harness *h;
    int fd;
    bool reading;
    bool eof;
    int error;
    uint8_t *out;
    size_t out_len, out_sent;
    uint8_t *in;
    size_t in_len, in_cap;
    size_t want; /* client_has: bytes to wait for */
};

static void client_event(struct event_loop *loop, int fd, void *data, int mask);

static void client_watch(struct client *c)
{
    int mask = (c->reading && !c->eof && !c->error ? LOOP_READABLE : 0) |
               (c->out_sent < c->out_len ? LOOP_WRITABLE : 0);
    assert_int_equal(loop_watch(c->h->loop, c->fd, mask, client_event, c), 0);
}

static void client_pump_out(struct client *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                c->error = errno;
            break;
        }
        c->out_sent += (size_t)n;
    }
}

static void client_pump_in(struct client *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
            c->in = realloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
        } else {
            if (n == 0)
                c->eof = true;
            else if (errno != EAGAIN)
                c->error = errno;
            break;
        }
    }
}

static void client_event(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct client *c = data;
    if (mask & LOOP_WRITABLE)
        client_pump_out(c);
    if (mask & (LOOP_READABLE | LOOP_ERROR)) {
        if (c->reading)
            client_pump_in(c);
        else if (mask & LOOP_ERROR)
            c->error = ECONNRESET;
    }
    client_watch(c);
}

static struct client *client_open_addr(struct harness *h, int family, const char *addr)
{
    struct client *c = calloc(1, sizeof(*c));
    c->h = h;
    c->reading = true;
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(c->fd >= 0);
    /* A small fixed receive window, so that a client that stops reading stalls the server
     * quickly instead of letting autotuning absorb megabytes. */
    int rcvbuf = 65536;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(h->port)};
        inet_pton(AF_INET6, addr, &sa.sin6_addr);
        rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(h->port)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc < 0 && errno != EINPROGRESS)
        c->error = errno; /* loopback may refuse at once */
    client_watch(c);
    return c;
}

static struct client *client_open(struct harness *h) { return client_open_addr(h, AF_INET, "127.0.0.1"); }

static void client_send(struct client *c, const void *data, size_t len)
{
    c->out = realloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    client_pump_out(c);
    client_watch(c);
}

static void client_set_reading(struct client *c, bool reading)
{
    c->reading = reading;
    client_watch(c);
}

/* Closes the client; with reset, abortively (RST instead of FIN). */
static void client_close(struct client *c, bool reset)
{
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    loop_unwatch(c->h->loop, c->fd);
    close(c->fd);
    free(c->out);
    free(c->in);
    free(c);
}

static bool accepted_n(struct harness *h, void *arg) { return h->accepted >= (int)(intptr_t)arg; }
static bool closes_n(struct harness *h, void *arg) { return h->closes >= (int)(intptr_t)arg; }
static bool client_has(struct harness *h, void *arg)
{
    (void)h;
    struct client *c = arg;
    return c->in_len >= c->want;
}

/* ---- echo ---- */

static void echo_input(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    sc->h->inputs++;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    keep(sc, data, len);
    assert_int_equal(netconn_write(conn, data, len), 0);
    netconn_consume(conn, len);
}

static const struct netconn_handler echo_handler = {.on_input = echo_input, .on_close = server_close};

static void echo_over_loopback(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &echo_handler);
    struct client *c = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)1, 2000));
    assert_int_equal(netconn_count(h->loop), 1);

    struct sockaddr_in local;
    socklen_t local_len = sizeof(local);
    getsockname(c->fd, (struct sockaddr *)&local, &local_len);
    char expected_name[64];
    snprintf(expected_name, sizeof(expected_name), "127.0.0.1:%u", ntohs(local.sin_port));
    assert_string_equal(netconn_peer_name(h->last->conn), expected_name);
    assert_true(netconn_peer_is_loopback(h->last->conn));
    assert_ptr_equal(netconn_loop(h->last->conn), h->loop);

    uint8_t message[100000];
    for (size_t i = 0; i < sizeof(message); i++)
        message[i] = (uint8_t)(i % 253);
    for (size_t at = 0; at < sizeof(message); at += 10000)
        client_send(c, message + at, 10000);
    c->want = sizeof(message);
    assert_true(run_until(h, client_has, c, 3000));
    assert_int_equal(c->in_len, sizeof(message));
    assert_memory_equal(c->in, message, sizeof(message));
    assert_true(netconn_last_input_ms(h->last->conn) > 0);
    assert_true(netconn_last_output_ms(h->last->conn) >= netconn_last_input_ms(h->last->conn));

    client_close(c, false);
    assert_true(run_until(h, closes_n, (void *)1, 2000));
    run_until(h, NULL, NULL, 20); /* no second on_close (server_close asserts it) */
    assert_int_equal(h->closes, 1);
    harness_close(h);
}

static void echo_over_ipv6_loopback(void **state)
{
    (void)state;
    struct harness *h = harness_open("::1", &echo_handler);
    if (!h)
        skip(); /* no IPv6 on this host */
    struct client *c = client_open_addr(h, AF_INET6, "::1");
    assert_true(run_until(h, accepted_n, (void *)1, 2000));
    const char *name = netconn_peer_name(h->last->conn);
    assert_memory_equal(name, "[::1]:", 6);
    assert_true(netconn_peer_is_loopback(h->last->conn));
    client_send(c, "ping", 4);
    c->want = 4;
    assert_true(run_until(h, client_has, c, 2000));
    assert_memory_equal(c->in, "ping", 4);
    client_close(c, false);
    harness_close(h);
}

static void v4_mapped_peer_on_a_dual_stack_listener(void **state)
{
    (void)state;
    struct harness *h = harness_open("::", &echo_handler);
    if (!h)
        skip();
    struct client *c = client_open(h); /* IPv4 client to an IPv6 wildcard listener */
    if (!run_until(h, accepted_n, (void *)1, 500)) {
        client_close(c, false);
        harness_close(h);
        skip(); /* IPV6_V6ONLY is the host default */
    }
    assert_memory_equal(netconn_peer_name(h->last->conn), "127.0.0.1:", 10);
    assert_true(netconn_peer_is_loopback(h->last->conn));
    client_close(c, false);
    harness_close(h);
}

/* ---- frames split across reads ---- */

/* Frames: 4-byte big-endian length, then the payload. Consumes whole frames only. */
static void frame_input(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    sc->h->inputs++;
    for (;;) {
        size_t len;
        const uint8_t *data = netconn_input(conn, &len);
        if (len < 4)
            return;
        size_t size = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
        if (size + 4 > 65536)
            netconn_set_input_max(conn, size + 4);
        if (len < size + 4)
            return; /* a partial frame stays in place */
        keep(sc, data + 4, size);
        netconn_write(conn, "k", 1);
        netconn_consume(conn, size + 4);
    }
}

static const struct netconn_handler frame_handler = {.on_input = frame_input, .on_close = server_close};

static bool inputs_n(struct harness *h, void *arg) { return h->inputs >= (int)(intptr_t)arg; }

static void partial_frames_are_completed_across_reads(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &frame_handler);
    struct client *c = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)1, 2000));

    /* A small frame in three-byte pieces, each piece its own read. */
    uint8_t small[4 + 10] = {0, 0, 0, 10, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
    for (size_t at = 0; at < sizeof(small); at += 3) {
        int before = h->inputs;
        client_send(c, small + at, sizeof(small) - at < 3 ? sizeof(small) - at : 3);
        assert_true(run_until(h, inputs_n, (void *)(intptr_t)(before + 1), 2000));
    }
    assert_int_equal(h->last->got_len, 10);
    assert_memory_equal(h->last->got, "abcdefghij", 10);

    /* Frames larger than the initial buffer and than the default maximum: the buffer grows. */
    size_t sizes[] = {50000, 300000, 7};
    size_t expected = 10;
    for (int f = 0; f < 3; f++) {
        size_t size = sizes[f];
        uint8_t *frame = malloc(size + 4);
        frame[0] = (uint8_t)(size >> 24);
        frame[1] = (uint8_t)(size >> 16);
        frame[2] = (uint8_t)(size >> 8);
        frame[3] = (uint8_t)size;
        for (size_t i = 0; i < size; i++)
            frame[4 + i] = (uint8_t)(i * 31 + f);
        client_send(c, frame, size + 4);
        expected += size;
        free(frame);
    }
    c->want = 4; /* one acknowledgement per frame */
    assert_true(run_until(h, client_has, c, 3000));
    assert_int_equal(h->last->got_len, expected);
    size_t at = 10;
    for (int f = 0; f < 3; f++) {
        for (size_t i = 0; i < sizes[f]; i++)
            assert_int_equal(h->last->got[at + i], (uint8_t)(i * 31 + f));
        at += sizes[f];
    }
    client_close(c, false);
    harness_close(h);
}

/* Reads land in the loop's shared scratch buffer: a connection keeps memory of its own only
 * for a partial frame, exactly its size, and another connection's read through the same
 * scratch buffer meanwhile leaves that partial frame intact. */
static void only_a_partial_frame_keeps_input_memory(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &frame_handler);
    struct client *a = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)1, 2000));
    struct server_conn *sa = h->last;
    struct client *b = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)2, 2000));
    struct server_conn *sb = h->last;
    assert_null(sa->conn->in);

    uint8_t frame[4 + 6] = {0, 0, 0, 6, 'a', 'b', 'c', 'd', 'e', 'f'};
    int before = h->inputs;
    client_send(a, frame, 7);
    assert_true(run_until(h, inputs_n, (void *)(intptr_t)(before + 1), 2000));
    assert_non_null(sa->conn->in);
    assert_int_equal(sa->conn->in_end - sa->conn->in_start, 7);
    assert_int_equal(sa->conn->in_cap, 7);

    before = h->inputs;
    client_send(b, frame, sizeof(frame));
    assert_true(run_until(h, inputs_n, (void *)(intptr_t)(before + 1), 2000));
    assert_int_equal(sb->got_len, 6);
    assert_null(sb->conn->in);
    assert_memory_equal(sa->conn->in + sa->conn->in_start, frame, 7);

    before = h->inputs;
    client_send(a, frame + 7, 3);
    assert_true(run_until(h, inputs_n, (void *)(intptr_t)(before + 1), 2000));
    assert_int_equal(sa->got_len, 6);
    assert_memory_equal(sa->got, "abcdef", 6);
    assert_null(sa->conn->in);
    assert_int_equal(sa->conn->in_cap, 0);
    client_close(a, false);
    client_close(b, false);
    harness_close(h);
}

/* ---- backpressure: a large output to a slow reader ---- */

#define BULK_TOTAL (8u << 20)

static uint8_t bulk_byte(size_t i) { return (uint8_t)(i * 7 % 251); }

static void bulk_fill(struct server_conn *sc)
{
    uint8_t piece[65536];
    while (sc->sent < sc->to_send && !netconn_output_full(sc->conn)) {
        size_t n = sc->to_send - sc->sent < sizeof(piece) ? sc->to_send - sc->sent : sizeof(piece);
        for (size_t i = 0; i < n; i++)
            piece[i] = bulk_byte(sc->sent + i);
        assert_int_equal(netconn_write(sc->conn, piece, n), 0);
        sc->sent += n;
    }
    if (netconn_output_full(sc->conn))
        sc->saw_full = true;
}

static void bulk_input(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    sc->h->inputs++;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    keep(sc, data, len);
    netconn_consume(conn, len);
    if (sc->to_send == 0) {
        sc->to_send = BULK_TOTAL;
        bulk_fill(sc);
    }
}

static void bulk_drain(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    assert_false(netconn_output_full(conn));
    sc->h->drains++;
    bulk_fill(sc);
}

static const struct netconn_handler bulk_handler = {
    .on_input = bulk_input, .on_close = server_close, .on_drain = bulk_drain};

static void slow_reader_gets_backpressure_then_drain(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &bulk_handler);
    struct client *c = client_open(h);
    client_set_reading(c, false);
    client_send(c, "go", 2);
    assert_true(run_until(h, inputs_n, (void *)1, 2000));
    run_until(h, NULL, NULL, 50);
    struct server_conn *sc = h->last;
    assert_true(sc->saw_full);
    assert_true(netconn_output_full(sc->conn));
    assert_true(netconn_output_pending(sc->conn) >= (256u << 10)); /* full until the low-water mark */
    assert_true(sc->sent < BULK_TOTAL);

    /* Reading is paused while the output is full: this byte waits. */
    int drains_at_stall = h->drains; /* the socket buffers took some rounds before the stall */
    size_t sent_at_stall = sc->sent;
    client_send(c, "x", 1);
    run_until(h, NULL, NULL, 50);
    assert_int_equal(h->inputs, 1);
    assert_int_equal(h->drains, drains_at_stall);
    assert_int_equal(sc->sent, sent_at_stall);

    client_set_reading(c, true);
    c->want = BULK_TOTAL;
    assert_true(run_until(h, client_has, c, 10000));
    assert_int_equal(c->in_len, BULK_TOTAL);
    for (size_t i = 0; i < BULK_TOTAL; i++)
        if (c->in[i] != bulk_byte(i))
            fail_msg("byte %zu differs", i);
    assert_true(h->drains > drains_at_stall);
    assert_true(run_until(h, inputs_n, (void *)2, 2000)); /* the paused byte arrived */
    assert_int_equal(sc->got_len, 3);
    assert_memory_equal(sc->got, "gox", 3);
    assert_int_equal(netconn_output_pending(sc->conn), 0);
    client_close(c, false);
    harness_close(h);
}

/* ---- ref slices ---- */

static int ref_releases[3];
static void release_ref(void *owner) { ref_releases[(intptr_t)owner]++; }
static uint8_t big_ref[4u << 20];

static void ref_input(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    if (len && data[0] == 's') {
        assert_int_equal(netconn_write(conn, "<", 1), 0);
        assert_int_equal(netconn_write_ref(conn, "body", 4, release_ref, (void *)0), 0);
        assert_int_equal(netconn_write(conn, ">", 1), 0);
    } else if (len && data[0] == 'b') {
        assert_int_equal(netconn_write_ref(conn, big_ref, sizeof(big_ref), release_ref, (void *)1), 0);
    }
    keep(sc, data, len);
    netconn_consume(conn, len);
}

static void ref_close(struct netconn *conn, void *ctx)
{
    /* Queueing on a gone connection drops at once, still releasing. */
    assert_int_equal(netconn_write_ref(conn, "late", 4, release_ref, (void *)2), 0);
    assert_int_equal(ref_releases[2], 1);
    server_close(conn, ctx);
}

static const struct netconn_handler ref_handler = {.on_input = ref_input, .on_close = ref_close};

static void write_ref_released_once_on_write_and_on_abort(void **state)
{
    (void)state;
    memset(ref_releases, 0, sizeof(ref_releases));
    struct harness *h = harness_open("127.0.0.1", &ref_handler);
    struct client *c = client_open(h);
    client_send(c, "s", 1);
    c->want = 6;
    assert_true(run_until(h, client_has, c, 2000));
    assert_memory_equal(c->in, "<body>", 6);
    assert_int_equal(ref_releases[0], 1);

    /* 4 MiB by reference to a reader that stops reading, then resets: released at reap. */
    client_set_reading(c, false);
    client_send(c, "b", 1);
    run_until(h, NULL, NULL, 50);
    assert_int_equal(ref_releases[1], 0);
    assert_true(netconn_output_pending(h->last->conn) > 0);
    client_close(c, true);
    assert_true(run_until(h, closes_n, (void *)1, 2000));
    assert_int_equal(ref_releases[0], 1);
    assert_int_equal(ref_releases[1], 1);
    assert_int_equal(ref_releases[2], 1);
    harness_close(h);
}

/* ---- close ---- */

static void close_after_bulk_input(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    size_t len;
    netconn_input(conn, &len);
    netconn_consume(conn, len);
    uint8_t piece[65536];
    for (size_t sent = 0; sent < (3u << 20); sent += sizeof(piece)) {
        for (size_t i = 0; i < sizeof(piece); i++)
            piece[i] = bulk_byte(sent + i);
        assert_int_equal(netconn_write(conn, piece, sizeof(piece)), 0);
    }
    netconn_close(conn);
    netconn_close(conn); /* idempotent */
    assert_true(netconn_is_closing(conn));
    sc->h->inputs++;
}

static const struct netconn_handler close_handler = {.on_input = close_after_bulk_input,
                                                     .on_close = server_close};

static void close_with_output_pending_flushes_it_first(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &close_handler);
    struct client *c = client_open(h);
    client_set_reading(c, false);
    client_send(c, "go", 2);
    assert_true(run_until(h, inputs_n, (void *)1, 2000));
    run_until(h, NULL, NULL, 50);
    assert_int_equal(h->closes, 0); /* still draining */

    client_set_reading(c, true);
    uint64_t start = loop_now_ms(h->loop);
    c->want = 3u << 20;
    assert_true(run_until(h, client_has, c, 5000));
    for (size_t i = 0; i < (3u << 20); i++)
        if (c->in[i] != bulk_byte(i))
            fail_msg("byte %zu differs", i);
    run_until(h, NULL, NULL, 20);
    assert_true(c->eof); /* the write side was shut down after the last byte */
    assert_int_equal(c->in_len, 3u << 20);
    client_close(c, false);
    assert_true(run_until(h, closes_n, (void *)1, 1000));
    assert_true(loop_now_ms(h->loop) - start < 1500); /* ended by our close, not the linger */
    harness_close(h);
}

static void peer_disconnect_delivers_on_close_once(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &echo_handler);
    struct client *a = client_open(h);
    struct client *b = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)2, 2000));
    assert_int_equal(netconn_count(h->loop), 2);
    client_send(a, "last words", 10);
    client_close(a, false);
    client_close(b, true);
    assert_true(run_until(h, closes_n, (void *)2, 2000));
    run_until(h, NULL, NULL, 30);
    assert_int_equal(h->closes, 2);
    assert_int_equal(netconn_count(h->loop), 0);
    harness_close(h);
}

static void count_conn(struct netconn *conn, void *arg)
{
    (void)conn;
    (*(int *)arg)++;
}

static void close_conn(struct netconn *conn, void *arg)
{
    (void)arg;
    netconn_close(conn);
}

static void for_each_visits_and_closes_every_connection(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &echo_handler);
    struct client *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)3, 2000));
    int seen = 0;
    netconn_for_each(h->loop, count_conn, &seen);
    assert_int_equal(seen, 3);
    netconn_for_each(h->loop, close_conn, NULL);
    run_until(h, NULL, NULL, 20);
    for (int i = 0; i < 3; i++) {
        assert_true(c[i]->eof); /* each saw our FIN */
        client_close(c[i], false);
    }
    assert_true(run_until(h, closes_n, (void *)3, 1000));
    harness_close(h);
}

static void close_listener_in_accept(struct server_conn *sc)
{
    netlistener_close(sc->h->listener); /* freed once its accept loop returns */
    sc->h->listener = NULL;
}

static void listener_closed_from_its_accept_callback(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &echo_handler);
    h->on_accept = close_listener_in_accept;
    struct client *a = client_open(h);
    assert_true(run_until(h, accepted_n, (void *)1, 2000));
    struct client *b = client_open(h);
    run_until(h, NULL, NULL, 20);
    assert_int_equal(h->accepted, 1);
    assert_int_not_equal(b->error, 0); /* refused */
    client_close(a, false);
    client_close(b, false);
    harness_close(h);
}

/* ---- pause and redelivery ---- */

static void unpause_timer(struct event_loop *loop, void *data)
{
    (void)loop;
    netconn_pause_input(data, NETCONN_PAUSE_BLOCKED, false);
}

static void one_byte_then_pause(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    sc->h->inputs++;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    keep(sc, data, 1);
    netconn_consume(conn, 1);
    netconn_pause_input(conn, NETCONN_PAUSE_BLOCKED, true);
    loop_timer_add(netconn_loop(conn), 5, unpause_timer, conn);
}

static const struct netconn_handler pause_handler = {.on_input = one_byte_then_pause,
                                                     .on_close = server_close};

static void resumed_input_is_redelivered_without_new_bytes(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &pause_handler);
    struct client *c = client_open(h);
    client_send(c, "ABC", 3);
    assert_true(run_until(h, inputs_n, (void *)3, 2000));
    assert_int_equal(h->last->got_len, 3);
    assert_memory_equal(h->last->got, "ABC", 3);
    client_close(c, false);
    assert_true(run_until(h, closes_n, (void *)1, 2000));
    harness_close(h);
}

/* Two pause reasons (an alarm and flow control) on one connection: clearing one leaves it
 * paused, clearing both resumes it. */
static void end_flow_pause(struct event_loop *loop, void *data)
{
    (void)loop;
    netconn_pause_input(data, NETCONN_PAUSE_FLOW, false);
}

static void one_byte_then_two_pauses(struct netconn *conn, void *ctx)
{
    struct server_conn *sc = ctx;
    sc->h->inputs++;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    keep(sc, data, 1);
    netconn_consume(conn, 1);
    netconn_pause_input(conn, NETCONN_PAUSE_BLOCKED, true);
    netconn_pause_input(conn, NETCONN_PAUSE_FLOW, true);
    loop_timer_add(netconn_loop(conn), 5, end_flow_pause, conn);
    loop_timer_add(netconn_loop(conn), 60, unpause_timer, conn); /* clears BLOCKED */
}

static const struct netconn_handler two_pauses_handler = {.on_input = one_byte_then_two_pauses,
                                                          .on_close = server_close};

static void pause_reasons_are_independent(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &two_pauses_handler);
    struct client *c = client_open(h);
    client_send(c, "AB", 2);
    assert_true(run_until(h, inputs_n, (void *)1, 2000));
    run_until(h, NULL, NULL, 30); /* the flow pause ended; the alarm's still holds */
    assert_int_equal(h->inputs, 1);
    assert_true(run_until(h, inputs_n, (void *)2, 2000));
    assert_memory_equal(h->last->got, "AB", 2);
    client_close(c, false);
    assert_true(run_until(h, closes_n, (void *)1, 2000));
    harness_close(h);
}

/* ---- linger ---- */

static void linger_ends_a_close_the_peer_never_reads(void **state)
{
    (void)state;
    struct harness *h = harness_open("127.0.0.1", &close_handler);
    struct client *c = client_open(h);
    client_set_reading(c, false);
    client_send(c, "go", 2);
    assert_true(run_until(h, inputs_n, (void *)1, 2000));
    uint64_t start = loop_now_ms(h->loop);
    assert_true(run_until(h, closes_n, (void *)1, 5000));
    uint64_t took = loop_now_ms(h->loop) - start;
    assert_true(took >= 1500 && took < 3500);
    client_close(c, false);
    harness_close(h);
}

/* ---- a socket that did not come from a listener ---- */

struct adopted {
    struct netconn *conn;
    char got[16];
    size_t got_len;
    int closes;
};

static void adopted_input(struct netconn *conn, void *ctx)
{
    struct adopted *a = ctx;
    size_t len;
    const uint8_t *data = netconn_input(conn, &len);
    memcpy(a->got + a->got_len, data, len);
    a->got_len += len;
    netconn_consume(conn, len);
    netconn_write(conn, "ok", 2);
}

static void adopted_close(struct netconn *conn, void *ctx)
{
    (void)conn;
    ((struct adopted *)ctx)->closes++;
}

/* One end of a socketpair, adopted: served like an accepted socket (input, output written by
 * the flush, a loopback peer named "unix"), and reaped once the other end hangs up. */
static void adopted_socketpair_is_served_like_an_accepted_socket(void **state)
{
    (void)state;
    static const struct netconn_handler handler = {.on_input = adopted_input, .on_close = adopted_close};
    struct event_loop *loop = loop_create();
    loop_set_before_sleep(loop, before_sleep, NULL);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    struct adopted a = {0};
    a.conn = netconn_adopt(loop, fds[0]);
    assert_non_null(a.conn);
    netconn_set_handler(a.conn, &handler, &a);
    assert_true(netconn_peer_is_loopback(a.conn));
    assert_string_equal(netconn_peer_name(a.conn), "unix");
    assert_int_equal(netconn_count(loop), 1);

    assert_int_equal(send(fds[1], "hello", 5, 0), 5);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.got_len, 5);
    assert_memory_equal(a.got, "hello", 5);
    char reply[8];
    assert_int_equal(recv(fds[1], reply, sizeof reply, 0), 2);
    assert_memory_equal(reply, "ok", 2);

    close(fds[1]);
    for (int i = 0; i < 10 && netconn_count(loop) > 0; i++)
        assert_int_equal(loop_run_once(loop, 10), 0);
    assert_int_equal(netconn_count(loop), 0);
    assert_int_equal(a.closes, 1);
    loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_over_loopback),
        cmocka_unit_test(echo_over_ipv6_loopback),
        cmocka_unit_test(v4_mapped_peer_on_a_dual_stack_listener),
        cmocka_unit_test(partial_frames_are_completed_across_reads),
        cmocka_unit_test(only_a_partial_frame_keeps_input_memory),
        cmocka_unit_test(slow_reader_gets_backpressure_then_drain),
        cmocka_unit_test(write_ref_released_once_on_write_and_on_abort),
        cmocka_unit_test(close_with_output_pending_flushes_it_first),
        cmocka_unit_test(peer_disconnect_delivers_on_close_once),
        cmocka_unit_test(for_each_visits_and_closes_every_connection),
        cmocka_unit_test(listener_closed_from_its_accept_callback),
        cmocka_unit_test(resumed_input_is_redelivered_without_new_bytes),
        cmocka_unit_test(pause_reasons_are_independent),
        cmocka_unit_test(linger_ends_a_close_the_peer_never_reads),
        cmocka_unit_test(adopted_socketpair_is_served_like_an_accepted_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
