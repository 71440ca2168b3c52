/* broker/cluster/cluster_link.h: the cluster port (docs/cluster.md), private to cluster_node.c.
 * One TCP listener carries two kinds of connection, told apart by a handshake: Raft's own
 * streams (this is raft_uv's transport, handed to raft_uv_init) and the forwarding link, on
 * which a follower sends the commands it proposes to the leader. Everything runs on the node's
 * libuv loop, inside uv_run.
 *
 * Handshake (all integers big-endian). Every member holds the same secret (cluster_secret.h);
 * both sides prove they know it, neither ever sends it:
 *   client -> server, the hello:
 *     [4]  "WRNC"
 *     [1]  kind: 'R' a Raft stream, 'F' the forwarding link
 *     [8]  the client's Raft id (> 0)
 *     [2]  length of the client's address, 1..CLUSTER_ADDRESS_MAX-1
 *     [n]  the client's address (host:port, printable ASCII)
 *     [16] nonce_c, fresh random bytes
 *   server -> client, the challenge:
 *     [16] nonce_s, fresh random bytes
 *     [32] HMAC-SHA256(secret, "warren-cluster S" | hello | nonce_s | server id [8])
 *   client -> server, the proof:
 *     [32] HMAC-SHA256(secret, "warren-cluster C" | hello | nonce_s | server id [8])
 * The server id is not sent: the server uses its own, the client the id of the member it meant to
 * reach, so a client also learns that it reached that member and not a stranger on its port. The
 * labels keep one side's MAC from serving as the other's; the two nonces keep a recorded
 * handshake from being replayed, to either side. MACs are compared in constant time. The client
 * hands its stream on (to Raft, or to forwarding) only after checking the challenge, the server
 * only after checking the proof; any failure closes the connection (logged at most once a minute
 * per peer). No byte after the handshake is authenticated or encrypted (docs/cluster.md).
 * After 'R' the stream is Raft's (its own framing). After 'F' (the forwarding link) or 'Q' (a
 * peer link) it is a sequence of messages
 *     [4]  length, 1..LINK_MESSAGE_MAX
 *     [n]  a command as meta_command_encode wrote it
 * and nothing ever flows back. A peer that breaks any of this is disconnected.
 *
 * Peer links carry what members tell each other outside the log (the classic queues of
 * cluster_classic.c): each node dials each peer it has something for, once, and keeps the
 * connection; the peer answers on its own link the other way. A message is written in order after
 * the ones before it, or the link is lost: when either of the two connections between a pair of
 * nodes closes, on_lost is called, so both sides can give up what the other held. */
#ifndef WARREN_CLUSTER_LINK_H
#define WARREN_CLUSTER_LINK_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "cluster_secret.h"

#define LINK_MESSAGE_MAX (64u << 20)  /* a forwarded command, bytes (meta_fsm's entry bound) */
#define LINK_INCOMING_MAX 64          /* accepted connections not yet identified, or forwarding */
#define LINK_QUEUE_MAX (16u << 20)    /* bytes queued on the forwarding link before sends drop */
#define LINK_CORK_MAX (256u << 10)    /* bytes gathered for one write of the forwarding link at most */
#define LINK_HANDSHAKE_MS 5000        /* a connection, either way, must complete its handshake within this */
#define LINK_NONCE 16                 /* bytes of each side's nonce */
#define LINK_MAC 32                   /* bytes of an HMAC-SHA256 */
#define LINK_LOG_PEERS 16             /* peers whose last failure report is remembered */

#define LINK_PEERS 16                 /* peers with a peer link at once (cluster_members.h's bound) */
#define LINK_RETRY_MS 200             /* a peer that could not be reached is dialled again after this */

struct link_conn;
struct link_write;

/* A forwarded command arrived (borrowed bytes). Returns 0, or -1 to drop the sender as malformed. */
typedef int (*link_forward_fn)(void *ctx, const uint8_t *bytes, size_t len);
/* The outgoing forwarding link just connected: queued proposals can be sent now. */
typedef void (*link_ready_fn)(void *ctx);
/* The forwarding link to member `to`, once connected, was closed by the other end or failed:
 * the node it led to is likely gone (its process died, or it was stopped). Called like on_lost. */
typedef void (*link_gone_fn)(void *ctx, raft_id to);
/* A message arrived on a peer link from member `from` (its address as it sent it in the
 * authenticated hello), through the incoming connection numbered `serial`. Returns 0, or -1 to
 * drop the connection as malformed. */
typedef int (*link_message_fn)(void *ctx, raft_id from, const char *from_address, uint64_t serial,
                               const uint8_t *bytes, size_t len);
/* A connection of a peer link closed: the outgoing one to `peer` (serial 0: what was queued on it
 * is lost, and so may be the last messages written), or the incoming one numbered serial (the
 * peer's outgoing one: what it sent before is all there is). Called from the link's callbacks
 * and from inside link_send and link_flush (a failed write), never while the link closes: a
 * handler notes the loss and acts on it later. */
typedef void (*link_lost_fn)(void *ctx, raft_id peer, const char *address, uint64_t serial);

/* One outgoing message stream: the forwarding link, or a peer link. */
struct link_out {
    struct link_conn *conn;             /* the connection, or NULL */
    raft_id to;
    char address[256];                  /* as dialled */
    bool ready;                         /* the handshake completed: writes go out */
    struct link_write *corked;          /* messages not yet written (link_flush), or NULL */
    size_t corked_len, corked_cap;      /* bytes in corked's data, and room */
    uint64_t retry_ms;                  /* a peer link that failed: not dialled again before this */
};

struct cluster_link {
    struct raft_uv_transport transport; /* give to raft_uv_init; raft_uv owns transport.data */
    uv_loop_t *uv;
    raft_id id;                         /* this node, from transport.init */
    char address[256];                  /* as the peers dial it (this node's entry of the peers list) */
    uint16_t listen_port;               /* the port the listener binds; 0: address's own */
    uv_tcp_t listener;
    bool listening;                     /* listener initialised (must be closed) */
    raft_uv_accept_cb accept_cb;
    struct link_conn *conns;            /* every connection the link still owns */
    unsigned incoming;                  /* accepted, unidentified or forwarding */
    struct link_out forward;            /* to the leader */
    struct link_out peers[LINK_PEERS];  /* peer links (a slot is free while its to is 0) */
    uint64_t next_serial;               /* of incoming peer connections */
    link_forward_fn on_forward;
    link_ready_fn on_ready;
    link_gone_fn on_forward_gone;       /* NULL until set */
    link_message_fn on_message;         /* NULL: incoming peer links are refused */
    link_lost_fn on_lost;
    void *ctx;
    raft_uv_transport_close_cb close_cb; /* set by transport.close until everything is released */
    bool closing, listener_closed;
    uint8_t secret[CLUSTER_SECRET_MAX];    /* a copy, wiped by link_wipe */
    size_t secret_len;
    struct {                            /* handshake failures: one report a minute per peer */
        char peer[64];
        uint64_t at_ms;
        unsigned suppressed;
    } log_peers[LINK_LOG_PEERS];
    unsigned resolving;                 /* name resolutions in flight (at most one: link_connect) */
    uint64_t log_window_ms;
    unsigned log_window_count, log_dropped; /* at most a few reports a minute in all */
};

/* Parses "host:port": host an IPv4 address, "[IPv6]", or a DNS name (RFC 1123: letters,
 * digits, '-' and '.', at most 253 bytes); port 1..65535. 0 with out filled for a numeric host;
 * 1 for a name (out untouched: the name is resolved each time it is dialled, through libuv's
 * thread pool, so a member that moves to another address is found again; and at listen); or
 * -EINVAL. A member's identity is the address as written (cluster_members.h), never what it
 * resolves to. */
int link_parse_address(const char *address, struct sockaddr_storage *out);

/* Sets up link on uv with the cluster's secret (copied; 1..CLUSTER_SECRET_MAX bytes); nothing is
 * opened until raft_uv calls transport.listen/connect. */
void link_init(struct cluster_link *link, uv_loop_t *uv, const uint8_t *secret, size_t secret_len,
               link_forward_fn on_forward, link_ready_fn on_ready, void *ctx);

/* Makes the listener bind address's host with port instead of address's port (0: address's
 * port), for a node its peers reach through a forwarded port (docs/cluster.md). Before listen. */
void link_set_listen_port(struct cluster_link *link, uint16_t port);

/* Erases the link's copy of the secret (after the transport closed). */
void link_wipe(struct cluster_link *link);

/* Sends a command to the leader (leader_id at leader_address) on the forwarding link, opening it,
 * or replacing a link to another node, as needed. 0 when queued: what is queued in one pass of
 * the loop is written together, at link_flush (or at once when LINK_CORK_MAX bytes wait), so a
 * stream of publishes through a follower costs a write per pass, not one per publish; -EAGAIN
 * while connecting (on_ready follows); another -errno when dropped (the caller retries later;
 * a link that closes drops what it had queued too). */
int link_forward(struct cluster_link *link, raft_id leader_id, const char *leader_address,
                 const struct raft_buffer *command);
/* Opens the forwarding link to the leader (leader_id at leader_address) ahead of any command,
 * replacing a link to another node, so that its end is noticed as soon as the kernel sees it
 * (on_forward_gone): a leader's process that dies closes the connection at once, long before
 * an election timeout passes. Does nothing while a link to that leader is open or connecting. */
void link_follow(struct cluster_link *link, raft_id leader_id, const char *leader_address);
/* Sets the handler of a forwarding link that ended after it connected (NULL: none). */
void link_set_forward_gone(struct cluster_link *link, link_gone_fn on_gone);
/* Writes what link_forward and link_send queued since the last flush. Call at the end of every
 * pass in which either may have been called (outside or inside uv_run). True when anything was
 * written. */
bool link_flush(struct cluster_link *link);

/* Peer links: the handlers of what arrives and of a lost connection (both NULL until set). */
void link_set_peer_handlers(struct cluster_link *link, link_message_fn on_message, link_lost_fn on_lost);
/* Queues a message (a command as meta_command_encode wrote it) for member peer at address on the
 * peer link, dialling it when none is open; written at link_flush (or once LINK_CORK_MAX bytes
 * wait, when connected), in the order sent. 0 when queued; -ENOTCONN when the peer could not be
 * reached within the last LINK_RETRY_MS; -ENOBUFS when LINK_QUEUE_MAX bytes wait already (the
 * peer does not read); -E2BIG, -ENOMEM, -ESHUTDOWN. A message queued may still be lost with its
 * connection: on_lost says so. */
int link_send(struct cluster_link *link, raft_id peer, const char *address, const uint8_t *bytes, size_t len);
/* Bytes queued for peer on its peer link and not yet taken by the kernel (0 without one). */
size_t link_backlog(const struct cluster_link *link, raft_id peer);

/* Closes connections, accepted or opened, that did not complete their handshake within
 * LINK_HANDSHAKE_MS, so idle sockets cannot hold every slot and a silent stranger on a member's
 * port cannot hold Raft's connection attempt. Call now and then (outside or inside uv_run). */
void link_sweep(struct cluster_link *link);

#endif
