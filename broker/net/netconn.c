/* broker/net/netconn.c: a TCP connection's life: creation on accept, the epoll registration,
 * the input buffer, pausing, the close sequence and the reap point. Output is in
 * netconn_output.c, the per-loop registry in netloop.c, addresses in netlistener.c.
 *
 * Reading: level-triggered; each wake-up reads into the input buffer until a short read, EOF,
 * an error, the buffer reaching its maximum, or READ_BUDGET bytes, then calls on_input once.
 * The input buffer of a read is the loop's scratch buffer (struct netloop), so complete units
 * are handed over where the kernel put them; only a partial unit left unconsumed moves into
 * memory of the connection's own, sized to it, and back to the front of the scratch buffer
 * for the next read. An idle connection therefore holds no input memory.
 * A short read means the socket was drained, which saves the EAGAIN round trip; anything that
 * arrives meanwhile fires the level-triggered event again. Reading is not watched while
 * paused by the user, by backpressure (output above the high-water mark) or by a full input
 * buffer, so the level-triggered event cannot spin.
 *
 * Closing: netconn_close (or EOF from the peer) marks the connection closing: input is no
 * longer delivered but still read and discarded, so that the kernel does not answer unread
 * input with a reset that destroys our last replies. Once the output queue is empty the write
 * side is shut down; EOF from the peer, an I/O error or the linger timer then makes the
 * connection dead: its fd is closed and it waits on the reap list. netconn_reap calls
 * on_close, releases the output slices and frees it. Nothing is freed anywhere else. */
#include "netconn.h"

#include "event_loop.h"
#include "log.h"
#include "net_private.h"
#include "outq.h"
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define INPUT_MIN 4096 /* the smallest input maximum; also the first size of an owned buffer */
#define INPUT_DEFAULT_MAX 65536
/* At most this much is read from one connection per pass, so that a pass stays short and a
 * request on another connection waits for little: 32 KiB of small publishes is a few hundred
 * messages of routing (issue 14: a streaming publisher must not slow everybody else's round
 * trips). More waiting in the socket makes the next pass come at once. */
#define READ_BUDGET (32 * 1024)
#define LINGER_MS 2000

/* ---- state changes ---- */

static void on_socket(struct event_loop *loop, int fd, void *data, int mask);

static int wanted_mask(const struct netconn *conn)
{
    if (conn->handshaking && !conn->closing)
        return conn->handshake_wants_write ? LOOP_WRITABLE : LOOP_READABLE;
    int mask = 0;
    if (!conn->peer_eof &&
        (conn->closing || (!conn->user_paused && !conn->output_full && !conn->input_full)))
        mask |= LOOP_READABLE;
    if (conn->write_blocked)
        mask |= LOOP_WRITABLE;
    return mask;
}

/* Brings the epoll registration in line with the flags; a syscall only on a change. */
void netconn__update_watch(struct netconn *conn)
{
    if (conn->dead)
        return;
    int mask = wanted_mask(conn);
    /* Input already inside the transport makes the socket no readable event: fetch it. */
    if ((mask & LOOP_READABLE) && !conn->closing && conn->transport->buffered &&
        conn->transport->buffered(conn))
        netconn__read_soon(conn);
    if (mask == conn->watched)
        return;
    if (loop_watch(conn->net->loop, conn->fd, mask, on_socket, conn) < 0) {
        netconn__dead(conn);
        return;
    }
    conn->watched = mask;
}

/* Queues conn for the next netconn_flush_all. */
void netconn__pending_add(struct netconn *conn)
{
    if (!conn->dead && !link_linked(&conn->pending))
        link_push(&conn->net->pending, &conn->pending);
}

/* The fd is closed and the connection waits for netconn_reap. */
void netconn__dead(struct netconn *conn)
{
    if (conn->dead)
        return;
    struct event_loop *loop = conn->net->loop;
    conn->dead = conn->closing = true;
    loop_unwatch(loop, conn->fd);
    close(conn->fd);
    conn->fd = -1;
    conn->watched = 0;
    link_remove(&conn->pending);
    loop_timer_cancel(loop, conn->linger_timer);
    loop_timer_cancel(loop, conn->redeliver_timer);
    loop_timer_cancel(loop, conn->handshake_timer);
    conn->linger_timer = conn->redeliver_timer = conn->handshake_timer = 0;
    link_push(&conn->net->reap, &conn->reap);
}

static void on_linger(struct event_loop *loop, void *data)
{
    (void)loop;
    struct netconn *conn = data;
    conn->linger_timer = 0;
    netconn__dead(conn); /* the peer would not take our output or would not close: give up */
}

/* Gives conn's own input memory back and forgets what it held (not while it borrows the
 * scratch buffer: input_return ends that). */
static void drop_own_input(struct netconn *conn)
{
    if (conn->in_borrowed)
        return;
    free(conn->in);
    conn->in = NULL;
    conn->in_start = conn->in_end = conn->in_cap = 0;
}

static void start_close(struct netconn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    drop_own_input(conn); /* input is no longer delivered */
    conn->linger_timer = loop_timer_add(conn->net->loop, LINGER_MS, on_linger, conn);
    /* flush_all writes what is queued, then shuts the write side down. A blocked connection
     * gets there through its EPOLLOUT event. */
    if (!conn->write_blocked)
        netconn__pending_add(conn);
    netconn__update_watch(conn);
}

/* ---- input ---- */

static void deliver_input(struct netconn *conn)
{
    if (conn->closing || conn->in_end == conn->in_start)
        return;
    if (conn->handler && conn->handler->on_input)
        conn->handler->on_input(conn, conn->ctx);
    if (conn->in_start == conn->in_end) {
        conn->in_start = conn->in_end = 0;
        drop_own_input(conn); /* input left by a pause, now all consumed */
    }
    size_t unconsumed = conn->in_end - conn->in_start;
    conn->input_full = unconsumed == conn->in_cap && conn->in_cap >= conn->in_max;
}

static bool conn_read(struct netconn *conn);

static void on_redeliver(struct event_loop *loop, void *data)
{
    (void)loop;
    struct netconn *conn = data;
    conn->redeliver_timer = 0;
    bool read = conn->read_soon;
    conn->read_soon = false;
    /* Reading hands over what it got together with what was waiting; when it got nothing,
     * input left by a pause is handed over here. */
    bool delivered = read && (conn->watched & LOOP_READABLE) && !conn->handshaking && conn_read(conn);
    if (!delivered && !conn->user_paused && !conn->dead)
        deliver_input(conn);
    netconn__update_watch(conn);
}

void netconn__read_soon(struct netconn *conn)
{
    conn->read_soon = true;
    if (!conn->redeliver_timer && !conn->dead)
        conn->redeliver_timer = loop_timer_add(conn->net->loop, 0, on_redeliver, conn);
}

/* A pause ended: input left in the buffer would otherwise wait for new bytes from a peer
 * that may be waiting for us, so hand it over again on the next pass. */
void netconn__resume_input(struct netconn *conn)
{
    netconn__update_watch(conn);
    if (conn->closing || conn->redeliver_timer || conn->in_end == conn->in_start)
        return;
    conn->redeliver_timer = loop_timer_add(conn->net->loop, 0, on_redeliver, conn);
}

/* Starts a read in the loop's scratch buffer: moves conn's unconsumed input (a partial unit)
 * to its front and frees conn's own copy. Returns false, changing nothing, when the scratch
 * buffer is in use or cannot grow to in_max: the read then uses conn's own buffer. */
static bool input_borrow(struct netconn *conn)
{
    struct netloop *net = conn->net;
    if (net->scratch_busy)
        return false;
    if (net->scratch_cap < conn->in_max) {
        uint8_t *scratch = malloc(conn->in_max); /* not realloc: nothing in it is kept */
        if (!scratch)
            return false;
        free(net->scratch);
        net->scratch = scratch;
        net->scratch_cap = conn->in_max;
    }
    size_t left = conn->in_end - conn->in_start;
    if (left)
        memcpy(net->scratch, conn->in + conn->in_start, left);
    free(conn->in);
    conn->in = net->scratch;
    conn->in_start = 0;
    conn->in_end = left;
    conn->in_cap = conn->in_max;
    conn->in_borrowed = true;
    net->scratch_busy = true;
    return true;
}

/* Ends a read in the scratch buffer: what on_input left unconsumed moves into memory of conn's
 * own, exactly its size (nothing when all was consumed or conn is closing). Without memory
 * for it the input cannot be kept and the connection is dropped. */
static void input_return(struct netconn *conn)
{
    if (!conn->in_borrowed)
        return;
    size_t left = conn->closing ? 0 : conn->in_end - conn->in_start;
    uint8_t *own = left ? malloc(left) : NULL;
    if (own)
        memcpy(own, conn->in + conn->in_start, left);
    conn->net->scratch_busy = false;
    conn->in_borrowed = false;
    conn->in = own;
    conn->in_start = 0;
    conn->in_end = conn->in_cap = own ? left : 0;
    if (left && !own) {
        log_warning("dropping the connection from %s: out of memory for its input", conn->peer);
        netconn__dead(conn);
    }
}

/* Makes room at the end of the input buffer: compacts, then grows up to in_max (the scratch
 * buffer does not grow: input_borrow sized it). Returns false when the buffer is full of
 * unconsumed bytes at its maximum, or on allocation failure. */
static bool input_room(struct netconn *conn)
{
    if (conn->in_start > 0) {
        memmove(conn->in, conn->in + conn->in_start, conn->in_end - conn->in_start);
        conn->in_end -= conn->in_start;
        conn->in_start = 0;
    }
    if (conn->in_end < conn->in_cap)
        return true;
    if (conn->in_borrowed || conn->in_cap >= conn->in_max)
        return false;
    size_t cap = conn->in_cap ? conn->in_cap * 2 : INPUT_MIN;
    if (cap > conn->in_max)
        cap = conn->in_max;
    uint8_t *in = realloc(conn->in, cap);
    if (!in)
        return false;
    conn->in = in;
    conn->in_cap = cap;
    return true;
}

/* Closing: read and drop whatever the peer still sends, watching for its EOF. */
static void discard_input(struct netconn *conn)
{
    uint8_t sink[16384];
    for (size_t total = 0; total < READ_BUDGET;) {
        ssize_t n = recv(conn->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 || conn->write_shut) {
            netconn__dead(conn);
            return;
        }
        conn->peer_eof = true; /* our output still drains; flush_conn finishes the close */
        netconn__update_watch(conn);
        return;
    }
}

/* Reads what the socket (or the transport) has and hands it over. Returns true when bytes
 * were read and on_input was given them. */
static bool conn_read(struct netconn *conn)
{
    if (conn->closing) {
        discard_input(conn);
        return false;
    }
    if (!(conn->watched & LOOP_READABLE))
        return false; /* paused: leave the bytes in the socket */
    size_t total = 0;
    int status = 0; /* 0: drained or budget spent, 1: EOF, < 0: -errno */
    input_borrow(conn); /* when the scratch buffer is busy, conn's own buffer grows instead */
    while (total < READ_BUDGET) {
        if (!input_room(conn))
            break;
        size_t room = conn->in_cap - conn->in_end;
        if (room > READ_BUDGET - total)
            room = READ_BUDGET - total;
        ssize_t n = conn->transport->recv(conn, conn->in + conn->in_end, room);
        if (n > 0) {
            conn->in_end += (size_t)n;
            total += (size_t)n;
            if ((size_t)n < room && conn->transport->short_read_means_drained)
                break;
        } else if (n == 0) {
            status = 1;
            break;
        } else if (n != -EINTR) {
            if (n != -EAGAIN)
                status = (int)n;
            break;
        }
    }
    if (total) {
        conn->last_input_ms = loop_now_ms(conn->net->loop);
        deliver_input(conn);
    } else if (conn->in_end - conn->in_start == conn->in_cap && conn->in_cap >= conn->in_max) {
        conn->input_full = true;
    }
    input_return(conn);
    if (status == 1) {
        conn->peer_eof = true;
        start_close(conn);
    } else if (status < 0) {
        netconn__dead(conn);
    }
    netconn__update_watch(conn);
    return total > 0;
}

static void on_socket(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct netconn *conn = data;
    if (conn->handshaking && !conn->closing) {
        if (transport_tls_handshake(conn) < 0 || conn->handshaking)
            return;
        mask &= ~LOOP_READABLE; /* the handshake read what there was; read_soon reads the rest */
    }
    if (mask & (LOOP_READABLE | LOOP_ERROR))
        conn_read(conn);
    if (conn->dead)
        return;
    /* Hang-up or socket error: the peer is gone (our own write shutdown only comes with
     * closing, and then discard_input saw the EOF above). */
    if (mask & LOOP_ERROR) {
        netconn__dead(conn);
        return;
    }
    if ((mask & LOOP_WRITABLE) && conn->write_blocked)
        netconn__pending_add(conn);
}

/* ---- life cycle ---- */

struct netconn *netconn_accepted(struct netloop *net, int fd, const struct sockaddr *addr)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct netconn *conn = calloc(1, sizeof(*conn));
    if (!conn || loop_watch(net->loop, fd, LOOP_READABLE, on_socket, conn) < 0) {
        log_warning("dropping an accepted connection: %s", conn ? "cannot watch it" : "out of memory");
        free(conn);
        close(fd);
        return NULL;
    }
    conn->net = net;
    conn->fd = fd;
    conn->watched = LOOP_READABLE;
    conn->in_max = INPUT_DEFAULT_MAX;
    conn->transport = &transport_plain;
    outq_init(&conn->out, &net->pool);
    conn->last_input_ms = conn->last_output_ms = loop_now_ms(net->loop);
    netconn__format_peer(conn, addr);
    link_push(&net->conns, &conn->all);
    net->conn_count++;
    return conn;
}

struct netconn *netconn_adopt(struct event_loop *loop, int fd)
{
    struct netloop *net = netloop_acquire(loop);
    if (!net) {
        close(fd);
        return NULL;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    if (getpeername(fd, (struct sockaddr *)&addr, &addr_len) < 0)
        addr.ss_family = AF_UNSPEC;
    struct netconn *conn = netconn_accepted(net, fd, (struct sockaddr *)&addr);
    if (!conn)
        netloop_release_if_unused(net);
    return conn;
}

void netconn_close(struct netconn *conn) { start_close(conn); }
bool netconn_is_closing(const struct netconn *conn) { return conn->closing; }

void netconn_reap(struct event_loop *loop)
{
    struct netloop *net = netloop_find(loop);
    if (!net)
        return;
    while (!link_empty(&net->reap)) {
        struct netconn *conn = NETCONN_OF(net->reap.next, reap);
        link_remove(&conn->reap);
        link_remove(&conn->all);
        net->conn_count--;
        if (conn->handler && conn->handler->on_close)
            conn->handler->on_close(conn, conn->ctx);
        outq_clear(&conn->out);
        if (conn->transport->release)
            conn->transport->release(conn);
        if (!conn->in_borrowed) /* never borrowed here: every read returns the scratch */
            free(conn->in);
        free(conn->identity);
        free(conn);
    }
    netloop_release_if_unused(net);
}

size_t netconn_count(struct event_loop *loop)
{
    struct netloop *net = netloop_find(loop);
    return net ? net->conn_count : 0;
}

void netconn_for_each(struct event_loop *loop, void (*fn)(struct netconn *conn, void *arg), void *arg)
{
    struct netloop *net = netloop_find(loop);
    if (!net)
        return;
    /* Safe against fn closing connections: nothing leaves this list before netconn_reap. */
    for (struct netlink *node = net->conns.next, *next; node != &net->conns; node = next) {
        next = node->next;
        fn(NETCONN_OF(node, all), arg);
    }
}

void netconn_destroy_all(struct event_loop *loop)
{
    struct netloop *net = netloop_find(loop);
    if (!net)
        return;
    for (struct netlink *node = net->conns.next, *next; node != &net->conns; node = next) {
        next = node->next;
        netconn__dead(NETCONN_OF(node, all));
    }
    netconn_reap(loop);
}

/* ---- accessors ---- */

void *netconn_context(const struct netconn *conn) { return conn->ctx; }
void *netconn_context_of(const struct netconn *conn, const struct netconn_handler *handler)
{
    return conn->handler == handler ? conn->ctx : NULL;
}
void netconn_io_stats(const struct netconn *conn, struct netconn_io_stats *out) { *out = conn->io; }

void netconn_set_handler(struct netconn *conn, const struct netconn_handler *handler, void *ctx)
{
    conn->handler = handler;
    conn->ctx = ctx;
}

const uint8_t *netconn_input(const struct netconn *conn, size_t *len)
{
    static const uint8_t nothing[1];
    *len = conn->in_end - conn->in_start;
    return conn->in ? conn->in + conn->in_start : nothing;
}

void netconn_consume(struct netconn *conn, size_t n)
{
    size_t unconsumed = conn->in_end - conn->in_start;
    conn->in_start += n < unconsumed ? n : unconsumed;
    if (conn->input_full && n > 0) {
        conn->input_full = false;
        netconn__update_watch(conn);
    }
}

void netconn_set_input_max(struct netconn *conn, size_t max)
{
    conn->in_max = max < INPUT_MIN ? INPUT_MIN : max;
    if (conn->input_full && conn->in_max > conn->in_cap) {
        conn->input_full = false;
        netconn__update_watch(conn);
    }
}

void netconn_pause_input(struct netconn *conn, enum netconn_pause_reason reason, bool pause)
{
    unsigned was = conn->user_paused;
    conn->user_paused = pause ? was | (unsigned)reason : was & ~(unsigned)reason;
    if (was && !conn->user_paused)
        netconn__resume_input(conn);
    else
        netconn__update_watch(conn);
}

bool netconn_input_paused(const struct netconn *conn) { return conn->user_paused != 0; }
int netconn_set_internal(struct netconn *conn, const char *identity, const char *peer_label)
{
    char *copy = strdup(identity);
    if (!copy)
        return -ENOMEM;
    free(conn->identity);
    conn->identity = copy;
    conn->loopback = true;
    snprintf(conn->peer, sizeof conn->peer, "%s", peer_label);
    snprintf(conn->local, sizeof conn->local, "%s", "internal");
    return 0;
}

bool netconn_is_internal(const struct netconn *conn) { return conn->identity != NULL; }
const char *netconn_peer_name(const struct netconn *conn) { return conn->peer; }
const char *netconn_local_name(const struct netconn *conn) { return conn->local; }
bool netconn_peer_is_loopback(const struct netconn *conn) { return conn->loopback; }
bool netconn_is_tls(const struct netconn *conn) { return conn->tls != NULL; }
uint64_t netconn_last_input_ms(const struct netconn *conn) { return conn->last_input_ms; }
uint64_t netconn_last_output_ms(const struct netconn *conn) { return conn->last_output_ms; }
struct event_loop *netconn_loop(const struct netconn *conn) { return conn->net->loop; }
