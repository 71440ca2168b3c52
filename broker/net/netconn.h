/* broker/net/netconn.h: listening sockets and TCP connections with an input buffer and an
 * output queue flushed by writev. Knows nothing of AMQP: a protocol layer attaches a handler.
 *
 * Life cycle: the listener accepts, creates a netconn and calls the accept callback, which
 * attaches a handler. on_input runs whenever new bytes arrived. Output is queued with
 * netconn_write* and written by netconn_flush_all (called from the before-sleep hook), once per
 * loop pass; EPOLLOUT is armed only after a short write. netconn_close schedules a close: the
 * connection stops reading, writes what is queued (bounded by a linger timeout), then on_close
 * runs once at a safe point (netconn_reap, never inside another callback of that connection)
 * and the netconn is freed.
 *
 * Per-loop state (connection lists, the chunk pool) is created with a loop's first listener
 * or connection and freed when the last is gone: close the listeners and let netconn_reap free
 * every connection (netconn_count == 0) before loop_destroy. Single-threaded.
 * Limits: a read takes up to the input max at once, in a buffer shared by the connections of
 * the loop; a connection keeps input memory only for a partial unit left unconsumed; output
 * high-water mark 1 MiB, low-water mark 256 KiB; linger 2 s. Writes use MSG_NOSIGNAL: no SIGPIPE handling is needed.
 * Input that streams in faster than the loop turns, from a peer we send nothing to, makes the
 * loop sleep about 100 µs per pass so that passes carry many units (netconn.c explains). */
#ifndef WARREN_NETCONN_H
#define WARREN_NETCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_loop;
struct netconn;
struct netlistener;

struct netconn_handler {
    /* New bytes are in the input buffer (netconn_input). Consume what was handled with
     * netconn_consume; leave a partial unit in place for the next call. */
    void (*on_input)(struct netconn *conn, void *ctx);
    /* The connection is gone (peer closed, I/O error, or netconn_close finished). Called
     * exactly once, at the reap point; the handler releases ctx here. conn is freed after. */
    void (*on_close)(struct netconn *conn, void *ctx);
    /* Optional: the output queue drained below the low-water mark after being above the
     * high-water mark (a consumer that stopped reading caught up). May be NULL. */
    void (*on_drain)(struct netconn *conn, void *ctx);
};

/* Called for each accepted connection; attach a handler with netconn_set_handler or call
 * netconn_close. */
typedef void (*netconn_accept_fn)(struct netconn *conn, void *arg);

/* Listens on addr:port (IPv4 or IPv6 literal, or "localhost"). port 0 picks a free port
 * (read it back with netlistener_port). Returns NULL on failure with errno set. */
struct netlistener *netlistener_open(struct event_loop *loop, const char *addr, uint16_t port,
                                     netconn_accept_fn fn, void *arg);
/* addr as RabbitMQ prints it into out[0..cap): "127.0.0.1:5000", "[::1]:5000" (v4-mapped shown
 * as IPv4), or without the port "127.0.0.1", "::1"; "unix" for a Unix-domain peer. Returns
 * true for a loopback address (a Unix-domain peer counts: it is on this host). */
struct sockaddr;
bool net_format_address(const struct sockaddr *addr, bool with_port, char *out, size_t cap);

/* The listening socket netlistener_open uses, for listeners served by other code (the HTTP
 * server): non-blocking, close-on-exec, SO_REUSEADDR, bound to addr:port (port 0: a free one,
 * stored in *bound_port). Returns the fd or -errno. */
int net_listen_socket(const char *addr, uint16_t port, uint16_t *bound_port);
/* Makes the listener speak TLS with ctx (a reference is taken) to the connections it accepts
 * from now on; those already accepted keep theirs. The accept callback then runs once the TLS
 * handshake and the certificate checks have passed (transport_tls.c); connections that fail
 * them are logged and closed without reaching it. ctx NULL: plain TCP again. */
struct tls_context;
void netlistener_set_tls(struct netlistener *listener, struct tls_context *ctx);
/* The port the listener is bound to (the chosen one when opened with port 0). */
uint16_t netlistener_port(const struct netlistener *listener);
/* Stops accepting and frees the listener (deferred to the end of its accept loop when called
 * from its own accept callback). Existing connections are unaffected. NULL is ignored. */
void netlistener_close(struct netlistener *listener);

/* Takes a connected, non-blocking stream socket that did not come from a listener (one end of
 * a socketpair in tests and fuzzers, an inherited socket) and serves it like an accepted one.
 * A Unix-domain peer counts as loopback: it is on this host. Returns the connection (attach a
 * handler next), or NULL after closing fd on failure. */
struct netconn *netconn_adopt(struct event_loop *loop, int fd);

/* Attaches the protocol handler and its context (both borrowed until on_close). */
void netconn_set_handler(struct netconn *conn, const struct netconn_handler *handler, void *ctx);
/* The ctx given to netconn_set_handler (NULL before). */
void *netconn_context(const struct netconn *conn);
/* The same when conn's handler is handler, else NULL: a walk over every connection of the loop
 * (netconn_for_each) meets other handlers' too (the broker's own client, inner_client.h). */
void *netconn_context_of(const struct netconn *conn, const struct netconn_handler *handler);

/* The unconsumed input bytes. Valid until the next netconn_consume or the return from on_input. */
const uint8_t *netconn_input(const struct netconn *conn, size_t *len);
/* Drops the first n input bytes (n <= the length netconn_input reported). */
void netconn_consume(struct netconn *conn, size_t n);
/* Allows the input buffer to hold max bytes (default 64 KiB) so that one whole protocol unit
 * (e.g. a frame of frame_max bytes) fits. Memory of the connection's own holds only input left
 * unconsumed, and none once it is consumed. */
void netconn_set_input_max(struct netconn *conn, size_t max);

/* Queues a copy of data for output. Returns 0 or -ENOMEM. Output to a connection whose write
 * side is already gone (dead, or closed and flushed) is dropped and 0 returned. */
int netconn_write(struct netconn *conn, const void *data, size_t len);
/* Reserves len contiguous bytes at the end of the output queue and returns a pointer the
 * caller fills before the next netconn_* call (avoids a temporary buffer when encoding
 * frames). Returns NULL on allocation failure. */
uint8_t *netconn_reserve(struct netconn *conn, size_t len);
/* Gives back the unused tail of the last netconn_reserve (used <= reserved length). */
void netconn_commit(struct netconn *conn, size_t used);
/* Queues data without copying. release(owner) runs once the bytes were written, or when the
 * connection is freed, whichever comes first. Returns 0 or -ENOMEM (release has then
 * already run). */
int netconn_write_ref(struct netconn *conn, const void *data, size_t len,
                      void (*release)(void *owner), void *owner);
/* Bytes queued and not yet written. */
size_t netconn_output_pending(const struct netconn *conn);
/* True while the output queue is above the high-water mark: stop generating output for this
 * connection (e.g. deliveries) until on_drain. Reading from the peer also pauses meanwhile. */
bool netconn_output_full(const struct netconn *conn);

/* Schedules a graceful close (see the file comment): output queued before the next flush,
 * even after this call, is still written. Idempotent. */
void netconn_close(struct netconn *conn);
/* True once netconn_close was called or the peer/IO failed: no more input will be delivered. */
bool netconn_is_closing(const struct netconn *conn);

/* Why the protocol layer stopped reading. Reasons are independent: reading resumes once none
 * is left (a publisher blocked by an alarm stays paused when its flow pause ends). */
enum netconn_pause_reason {
    NETCONN_PAUSE_BLOCKED = 1 << 0, /* resource alarm: connection.blocked */
    NETCONN_PAUSE_FLOW = 1 << 1,    /* per-publisher flow control */
    NETCONN_PAUSE_WAIT = 1 << 2,    /* the protocol layer awaits an answer from elsewhere (a
                                     * cluster proposal) before it handles more input */
};
/* Sets or clears one pause reason. When the last reason is cleared, unconsumed input is handed
 * to on_input again on the next pass. */
void netconn_pause_input(struct netconn *conn, enum netconn_pause_reason reason, bool pause);
/* True while at least one pause reason is set (reading is stopped on purpose). */
bool netconn_input_paused(const struct netconn *conn);

/* Marks conn, one end of a socketpair made inside the process, as the broker's own client
 * acting for identity (a user): it counts as loopback, its peer is named peer_label and its
 * local end "internal", and netconn_peer_identity gives identity, as a verified client
 * certificate's would be (so SASL EXTERNAL logs it in). Only the process calls this: nothing
 * that comes from the network can set it. Returns 0 or -ENOMEM. */
int netconn_set_internal(struct netconn *conn, const char *identity, const char *peer_label);
/* True for a connection marked by netconn_set_internal. */
bool netconn_is_internal(const struct netconn *conn);
/* Peer address as text ("127.0.0.1:53122", "[::1]:5000"; v4-mapped shown as IPv4), valid as
 * long as conn. */
const char *netconn_peer_name(const struct netconn *conn);
/* Our end of the connection (the listening address and port), formatted as the peer's. */
const char *netconn_local_name(const struct netconn *conn);
/* The user named by the peer's verified TLS client certificate (CN, a subject alternative name
 * or the DN, as configured), or set by netconn_set_internal, valid as long as conn; NULL for
 * plain TCP or without one. */
const char *netconn_peer_identity(const struct netconn *conn);
/* True when the connection runs over TLS. */
bool netconn_is_tls(const struct netconn *conn);
/* What a TLS connection negotiated, named as RabbitMQ's management API shows it ("tlsv1.3",
 * "aes_256_gcm", "ecdhe_ecdsa", "aead"), and the client certificate's subject and issuer DNs
 * ("" without one). */
struct netconn_tls_info {
    char protocol[16], cipher[32], key_exchange[32], hash[16];
    char peer_subject[256], peer_issuer[256];
};
/* Fills out and returns true for an established TLS connection; false (out zeroed) otherwise. */
bool netconn_tls_info(const struct netconn *conn, struct netconn_tls_info *out);
/* True for 127.0.0.0/8, ::1 and v4-mapped 127.0.0.0/8. */
bool netconn_peer_is_loopback(const struct netconn *conn);
/* Milliseconds (loop clock) of the last byte received from the peer (accept time at first). */
uint64_t netconn_last_input_ms(const struct netconn *conn);
/* Milliseconds (loop clock) of the last byte handed to the kernel (accept time at first). */
uint64_t netconn_last_output_ms(const struct netconn *conn);
/* Bytes and socket calls since the connection was accepted (RabbitMQ's recv_oct, send_oct,
 * recv_cnt, send_cnt): every recv that returned bytes and every send that wrote some. */
struct netconn_io_stats {
    uint64_t recv_bytes, send_bytes, recv_calls, send_calls;
};
void netconn_io_stats(const struct netconn *conn, struct netconn_io_stats *out);
/* The loop the connection lives on. */
struct event_loop *netconn_loop(const struct netconn *conn);

/* Writes every connection with pending output (call from before-sleep). */
void netconn_flush_all(struct event_loop *loop);
/* Frees connections whose close completed, calling their on_close (call from before-sleep,
 * after netconn_flush_all). */
void netconn_reap(struct event_loop *loop);
/* Shutdown only: frees every connection now, calling on_close for each, without writing what
 * is still queued. */
void netconn_destroy_all(struct event_loop *loop);
/* Number of live connections on this loop. */
size_t netconn_count(struct event_loop *loop);
/* Calls fn for every live connection (used for shutdown and heartbeat scans). */
void netconn_for_each(struct event_loop *loop, void (*fn)(struct netconn *conn, void *arg),
                      void *arg);

#endif
