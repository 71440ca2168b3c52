/* broker/net/transport_plain.c: plain TCP: recv and sendmsg on the socket, counted in the
 * connection's I/O statistics. */
#include "net_private.h"
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>

static ssize_t plain_recv(struct netconn *conn, void *buf, size_t len)
{
    ssize_t n = recv(conn->fd, buf, len, 0);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n > 0) {
        conn->io.recv_bytes += (uint64_t)n;
        conn->io.recv_calls++;
    }
    return n;
}

static ssize_t plain_send(struct netconn *conn, const struct iovec *iov, int count)
{
    /* MSG_NOSIGNAL: a vanished peer is EPIPE, never SIGPIPE. */
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)count};
    ssize_t n = sendmsg(conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    conn->io.send_bytes += (uint64_t)n;
    conn->io.send_calls++;
    return n;
}

const struct transport_ops transport_plain = {
    .name = "tcp",
    .recv = plain_recv,
    .send = plain_send,
    .short_write_means_full = true,
    .short_read_means_drained = true,
};
