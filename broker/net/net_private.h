/* broker/net/net_private.h: what the files of broker/net share and nobody else sees: the
 * per-loop state, the connection struct, an intrusive list, and the few internal operations
 * (prefix netconn__) that the output and listener files call. */
#ifndef WARREN_NET_PRIVATE_H
#define WARREN_NET_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netconn.h"
#include "outq.h"

struct event_loop;
struct netconn_handler;
struct tls_session;
struct transport_ops;

/* Intrusive circular list; a zeroed node is "not on a list". */
struct netlink {
    struct netlink *prev, *next;
};

static inline void link_init(struct netlink *head) { head->prev = head->next = head; }
static inline bool link_empty(const struct netlink *head) { return head->next == head; }
static inline bool link_linked(const struct netlink *node) { return node->next != NULL; }

static inline void link_push(struct netlink *head, struct netlink *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void link_remove(struct netlink *node)
{
    if (!node->next)
        return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}

#define NETCONN_OF(node, field) ((struct netconn *)((char *)(node) - offsetof(struct netconn, field)))

/* Per-loop state, found through a small registry keyed by the loop pointer (netloop.c). It is
 * created with the first listener or connection of a loop and freed when the last one is gone,
 * so a loop with no network objects carries nothing and loop_destroy needs no net hook. */
struct netloop {
    struct event_loop *loop;
    struct netloop *next;   /* registry chain */
    struct netlink conns;   /* every netconn not yet freed */
    struct netlink pending; /* connections to write (or to finish closing) in flush_all */
    struct netlink reap;    /* dead connections waiting for netconn_reap */
    size_t conn_count;
    size_t listener_count;
    struct outq_pool pool; /* copy chunks shared by this loop's output queues */
    /* Every read lands here first (netconn.c): a connection keeps memory of its own only for
     * a partial unit left over, so an idle one holds no input buffer. Busy while one
     * connection's input is being handed over. */
    uint8_t *scratch;
    size_t scratch_cap;
    bool scratch_busy;
};

/* Returns the state of loop, or NULL when it has no listener and no connection. */
struct netloop *netloop_find(const struct event_loop *loop);
/* Returns the state of loop, creating it; NULL on allocation failure. */
struct netloop *netloop_acquire(struct event_loop *loop);
/* Frees net if it holds no connection and no listener any more. */
void netloop_release_if_unused(struct netloop *net);

struct netconn {
    struct netloop *net;
    int fd;      /* -1 once dead */
    int watched; /* LOOP_* bits currently registered */
    bool closing;       /* no more input is delivered */
    bool dead;          /* fd closed; on the reap list */
    bool peer_eof;      /* the peer shut down its write side */
    bool write_shut;    /* our write side is shut down: output is dropped */
    bool write_blocked; /* a short write happened: EPOLLOUT is armed */
    bool output_full;   /* above the high-water mark, until below the low-water mark */
    bool input_full;    /* buffer at its maximum and all unconsumed */
    unsigned user_paused; /* enum netconn_pause_reason bits; 0: not paused by the user */
    bool loopback;
    bool handshaking;        /* TLS: the handshake runs; no application data either way */
    bool handshake_wants_write; /* ... and waits for the socket to take its output */
    bool read_soon;          /* the redeliver timer reads the transport, not just the buffer */
    const struct transport_ops *transport; /* how bytes move: plain TCP or TLS (transport.h) */
    struct tls_session *tls;               /* TLS state (transport_tls.c), NULL for plain TCP */
    const struct netconn_handler *handler;
    void *ctx;

    /* Unconsumed input is in[in_start, in_end). Between reads `in` is NULL or owns a partial
     * unit left over; during a read it borrows the loop's scratch buffer (in_borrowed). */
    uint8_t *in;
    size_t in_start, in_end, in_cap, in_max;
    bool in_borrowed;
    struct outq out;

    struct netlink all, pending, reap;
    uint64_t linger_timer;
    uint64_t redeliver_timer;
    uint64_t handshake_timer; /* TLS: cuts a handshake that takes too long */
    uint64_t last_input_ms, last_output_ms;
    struct netconn_io_stats io; /* counted where the syscalls are made: free beside them */
    char peer[64];
    char local[64];  /* our end of the socket, formatted as peer */
    char *identity;  /* netconn_set_internal's, owned; NULL for every socket from outside */
};

/* Takes an accepted, non-blocking socket: creates its netconn, starts reading and returns it,
 * or closes fd and returns NULL on failure. */
struct netconn *netconn_accepted(struct netloop *net, int fd, const struct sockaddr *addr);
/* Fills conn->peer ("127.0.0.1:5000", "[::1]:5000") and conn->loopback from addr, and
 * conn->local from the socket conn->fd. */
void netconn__format_peer(struct netconn *conn, const struct sockaddr *addr);
/* Brings the epoll registration in line with the flags; a syscall only on a change. */
void netconn__update_watch(struct netconn *conn);
/* Queues conn for the next netconn_flush_all (no-op when dead or queued). */
void netconn__pending_add(struct netconn *conn);
/* Closes the fd at once and puts conn on the reap list (idempotent). */
void netconn__dead(struct netconn *conn);
/* A pause ended: resumes reading and hands unconsumed input over again on the next pass. */
void netconn__resume_input(struct netconn *conn);
/* Reads from the transport on the next pass even if the socket does not turn readable (TLS
 * data already inside the library). */
void netconn__read_soon(struct netconn *conn);

#endif
