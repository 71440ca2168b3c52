/* broker/amqp/connection.h: one AMQP connection: handshake, tuning, heartbeats, frame
 * dispatch to channels, and connection-level close. Owned by the server; freed only at the
 * loop's reap point (never inside one of its own callbacks). */
#ifndef WARREN_CONNECTION_H
#define WARREN_CONNECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"
#include "stats.h"

struct channel;
struct connection;
struct frame;
struct netconn;
struct server;
struct spec_method;
struct vhost;

/* Takes over an accepted socket: attaches the AMQP handler and arms the handshake timer.
 * Returns 0, or -ENOMEM after closing the socket. */
int connection_accept(struct server *server, struct netconn *net);
/* The AMQP connection served on net, or NULL when net is none (not yet attached, or another
 * handler's: the broker's own client end). Every walk over the loop's netconns asks this. */
struct connection *connection_of(const struct netconn *net);

/* Encodes one method frame on channel into the output queue. Returns 0 or a negative errno. */
int connection_send_method(struct connection *conn, uint16_t channel, const struct spec_method *m);

/* Queues a content method (deliver, get-ok, return) with its header payload (the encoded
 * content header, class id through properties) and body, split into body frames of at most
 * frame_max. The body is referenced, not copied: retain(owner) is called once per queued
 * slice and release(owner) when that slice was written. Returns 0 or a negative errno. */
int connection_send_content(struct connection *conn, uint16_t channel, const struct spec_method *m,
                            struct proto_bytes header, const uint8_t *body, uint64_t body_size,
                            void (*retain)(void *owner), void (*release)(void *owner), void *owner);

/* Sends connection.close with err (a hard error), logs it once, and ignores all further input
 * but close/close-ok. Idempotent: only the first error is sent. */
void connection_fail(struct connection *conn, const struct reply_error *err);

/* Waiting for an answer from elsewhere (a cluster proposal, declare_cluster.c): the frame
 * being handled is the last one handled until connection_resume. Frames already buffered stay
 * unparsed and the socket is not read meanwhile (of every channel: the simplest rule that keeps
 * the client's order). If the connection goes away first, abandon(arg) runs once, at its free.
 * One wait at a time. */
void connection_wait(struct connection *conn, void (*abandon)(void *arg), void *arg);
/* Ends the wait (abandon will not run): buffered frames are handled from the next loop pass. */
void connection_resume(struct connection *conn);
/* Channel `number` of conn while it exists, else NULL. */
struct channel *connection_channel(struct connection *conn, uint16_t number);
/* True while the connection is open and has sent or received no connection.close. */
bool connection_is_running(const struct connection *conn);

/* Sends connection.close 320 CONNECTION_FORCED (broker shutdown). */
void connection_force_close(struct connection *conn, const char *reason);

/* Memory alarm: publishing connections stop being read, and clients that announced the
 * connection.blocked capability are told (connection.blocked / connection.unblocked). */
void connection_set_blocked(struct connection *conn, bool blocked, const char *reason);
/* Marks the connection as a publisher (it is paused while the memory alarm is on). */
void connection_note_publish(struct connection *conn);

/* Per-publisher flow control (flow.h): the connection's state, and whether one of its channels
 * has a consumer on queue. */
struct flow;
struct queue;
struct flow *connection_flow(struct connection *conn);
bool connection_consumes_from(const struct connection *conn, const struct queue *queue);

/* Decodes a method frame in the connection's protocol (0-9-1, or 0-8: spec08.h). On failure
 * fills err, when given, with RabbitMQ's code for it (501, or 540 for an unknown method) and
 * returns -1 (without err: the negative proto_error). */
int connection_decode_method(const struct connection *conn, const struct frame *f, struct spec_method *m,
                             struct reply_error *err);
/* The protocol as the management API names it: "AMQP 0-9-1", or "AMQP 8-0" (RabbitMQ's
 * spelling of its 0-8 framing's version). */
const char *connection_protocol_name(const struct connection *conn);

/* For the admin views (introspect.c): fills the connection's description (strings point
 * into the connection) and visits its channels. */
struct introspect_connection;
void connection_describe(const struct connection *conn, struct introspect_connection *out);
/* The live connection called name (connection_name), or NULL. */
struct connection *connection_find(struct server *server, const char *name);
void connection_for_each_channel(struct connection *conn, void (*fn)(struct channel *ch, void *arg), void *arg);

/* Statistics. The counters the connection's closed channels left behind (its live channels
 * keep their own; the connection's figures are the sum). */
const struct stats_channel *connection_closed_channel_stats(const struct connection *conn);
/* The sampler's state of a connection: rates of its message counters (channels summed) and of
 * its socket counters (netconn_io_stats order: recv bytes, send bytes, recv calls, send calls). */
struct connection_series {
    struct stats_channel_series messages;
    uint64_t io_last[4];
    float io_rate[4];
};
struct connection_series *connection_series(struct connection *conn);

/* Negotiated limits and identity. */
uint32_t connection_frame_max(const struct connection *conn);
struct server *connection_server(const struct connection *conn);
struct netconn *connection_net(const struct connection *conn);
const char *connection_name(const struct connection *conn); /* "127.0.0.1:5000 -> 127.0.0.1:5672" style */
const char *connection_user(const struct connection *conn);
/* The vhost opened by connection.open (NULL before), and its name. */
struct vhost *connection_vhost(const struct connection *conn);
const char *connection_vhost_name(const struct connection *conn);
/* Capability flags the client announced in client-properties. */
bool connection_client_has_capability(const struct connection *conn, const char *name);

#endif
