/* broker/net/transport.h: how a netconn moves bytes: plain TCP (transport_plain.c) or TLS
 * (transport_tls.c). netconn.c and netconn_output.c read and write only through these
 * operations, so the layers above never learn which one a connection uses. Private to
 * broker/net. */
#ifndef WARREN_TRANSPORT_H
#define WARREN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct netconn;

struct transport_ops {
    const char *name; /* "tcp", "tls" */
    /* Reads up to len bytes of application data into buf. Returns the count (> 0), 0 at the
     * peer's end of stream, -EAGAIN when nothing is ready, or another -errno. */
    ssize_t (*recv)(struct netconn *conn, void *buf, size_t len);
    /* Writes application data from iov[0..count). Returns the bytes taken (all of them need
     * not be), -EAGAIN when the socket is full, or another -errno. After -EAGAIN the next call
     * must offer the same bytes first (the output queue still holds them). */
    ssize_t (*send)(struct netconn *conn, const struct iovec *iov, int count);
    /* True when fewer bytes than offered mean the socket is full (plain TCP); false when a
     * call takes at most one record and the caller should simply call again. */
    bool short_write_means_full;
    /* True when a read that did not fill the buffer means the socket is drained. */
    bool short_read_means_drained;
    /* Application data already decrypted and buffered inside the transport (so the socket
     * will not report it readable). NULL: never. */
    bool (*buffered)(const struct netconn *conn);
    /* Called once before the write side is shut down (TLS: close_notify). NULL: nothing. */
    void (*shutdown)(struct netconn *conn);
    /* Releases the transport's state (at reap). NULL: nothing. */
    void (*release)(struct netconn *conn);
};

extern const struct transport_ops transport_plain;
extern const struct transport_ops transport_tls;

struct tls_context;
/* Starts a TLS server handshake on an accepted conn with ctx (a reference is taken). The
 * connection is handed to fn(conn, arg) once the handshake and the certificate checks pass;
 * a failure or the handshake timeout logs one line and closes it. Returns 0 or -ENOMEM (conn
 * is then closed). */
typedef void (*transport_ready_fn)(struct netconn *conn, void *arg);
int transport_tls_start(struct netconn *conn, struct tls_context *ctx, transport_ready_fn fn, void *arg);
/* Drives a handshake in progress from the socket callback. Returns 0 while it goes on (or once
 * it finished and the connection was handed over), -1 when it failed (conn is then closing,
 * after one log line). */
int transport_tls_handshake(struct netconn *conn);

#endif
