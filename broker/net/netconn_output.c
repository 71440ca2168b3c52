/* broker/net/netconn_output.c: the output side of a connection: queueing (copies, reserved
 * space, references), the high/low-water marks, and netconn_flush_all, which writes every
 * pending connection with sendmsg (a writev with MSG_NOSIGNAL, so a vanished peer is EPIPE
 * and never SIGPIPE) until its queue is empty or the socket is full. EPOLLOUT is armed only
 * while a short write left bytes queued. */
#include "event_loop.h"
#include "net_private.h"
#include "netconn.h"
#include "outq.h"
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Above HIGH, netconn_output_full turns true and reading pauses; below LOW, on_drain fires. */
#define OUTPUT_HIGH_WATER (1024 * 1024)
#define OUTPUT_LOW_WATER (256 * 1024)
#define FLUSH_IOV 1024 /* IOV_MAX on Linux */

/* After output was queued: mark the connection for flushing and apply the high-water mark. */
static void output_added(struct netconn *conn)
{
    if (!conn->output_full && conn->out.bytes > OUTPUT_HIGH_WATER) {
        conn->output_full = true;
        netconn__update_watch(conn);
    }
    if (!conn->write_blocked)
        netconn__pending_add(conn);
}

static bool output_gone(const struct netconn *conn) { return conn->dead || conn->write_shut; }

int netconn_write(struct netconn *conn, const void *data, size_t len)
{
    if (output_gone(conn) || len == 0)
        return 0;
    int rc = outq_write(&conn->out, data, len);
    output_added(conn);
    return rc;
}

uint8_t *netconn_reserve(struct netconn *conn, size_t len)
{
    /* A dead connection still hands out memory (freed at reap) so callers need no check. */
    uint8_t *at = outq_reserve(&conn->out, len);
    if (at && !output_gone(conn))
        output_added(conn);
    return at;
}

void netconn_commit(struct netconn *conn, size_t used) { outq_commit(&conn->out, used); }

int netconn_write_ref(struct netconn *conn, const void *data, size_t len,
                      void (*release)(void *owner), void *owner)
{
    if (output_gone(conn)) {
        release(owner);
        return 0;
    }
    int rc = outq_write_ref(&conn->out, data, len, release, owner);
    if (rc == 0)
        output_added(conn);
    return rc;
}

size_t netconn_output_pending(const struct netconn *conn) { return conn->out.bytes; }
bool netconn_output_full(const struct netconn *conn) { return conn->output_full; }

/* Writes conn until its queue is empty or the socket is full; then finishes a close. */
static void flush_conn(struct netconn *conn)
{
    struct iovec iov[FLUSH_IOV];
    while (conn->out.bytes && !conn->dead) {
        int count = outq_iov(&conn->out, iov, FLUSH_IOV);
        size_t offered = 0;
        for (int i = 0; i < count; i++)
            offered += iov[i].iov_len;
        ssize_t n = conn->transport->send(conn, iov, count);
        if (n < 0) {
            if (n == -EINTR)
                continue;
            if (n == -EAGAIN)
                break;
            netconn__dead(conn); /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
        outq_advance(&conn->out, (size_t)n);
        conn->last_output_ms = loop_now_ms(conn->net->loop);
        if (conn->output_full && conn->out.bytes < OUTPUT_LOW_WATER) {
            conn->output_full = false;
            netconn__resume_input(conn);
            if (!conn->closing && conn->handler && conn->handler->on_drain)
                conn->handler->on_drain(conn, conn->ctx);
        }
        if ((size_t)n < offered && conn->transport->short_write_means_full)
            break; /* a short write: the socket buffer is full, EAGAIN would follow */
    }
    if (conn->dead)
        return;
    conn->write_blocked = conn->out.bytes > 0;
    netconn__update_watch(conn);
    if (!conn->write_blocked && conn->closing && !conn->write_shut) {
        if (conn->transport->shutdown)
            conn->transport->shutdown(conn);
        shutdown(conn->fd, SHUT_WR);
        conn->write_shut = true;
        if (conn->peer_eof)
            netconn__dead(conn);
    }
}

void netconn_flush_all(struct event_loop *loop)
{
    struct netloop *net = netloop_find(loop);
    if (!net)
        return;
    /* Pop one at a time: on_drain may queue output for any connection, this one included. */
    while (!link_empty(&net->pending)) {
        struct netconn *conn = NETCONN_OF(net->pending.next, pending);
        link_remove(&conn->pending);
        flush_conn(conn);
        link_remove(&conn->pending); /* flush_conn left it empty, blocked or dead */
    }
}
