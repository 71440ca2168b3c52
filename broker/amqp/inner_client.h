/* broker/amqp/inner_client.h: the broker's own AMQP client, for the management API's requests
 * that act as a client would (basic.get of "Get messages", the aliveness test), as RabbitMQ's
 * management plugin acts through a direct connection.
 *
 * Each run opens a connection to this broker over a socketpair (server_adopt_internal), logged
 * in by SASL EXTERNAL as the requesting user, so the user's permissions, the vhost's limits and
 * every queue type behave exactly as for any client: a quorum queue's get goes through the
 * cluster's log, a classic queue homed on another node is reached through its home, and what
 * the run leaves unsettled (it timed out, the broker stopped) returns to its queue when the
 * connection closes, as for any client. Nothing of the model is copied here.
 *
 * A run is one fixed script on channel 1: [queue.declare] [confirm.select, basic.publish, wait
 * for the confirm] [up to get_count basic.gets] [one basic.nack or basic.ack of what was got],
 * then connection.close; done is called once, when the broker answered the close (or at the
 * first refusal, or at the timeout, or when the broker's connection went away). */
#ifndef WARREN_INNER_CLIENT_H
#define WARREN_INNER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct server;

/* How the messages got are settled once the last get is answered (RabbitMQ's API's ackmodes). */
enum inner_settle {
    INNER_ACK,            /* ack_requeue_false: taken with no_ack, gone */
    INNER_REQUEUE,        /* ack_requeue_true, reject_requeue_true: back, marked redelivered */
    INNER_REJECT,         /* reject_requeue_false: rejected (dead-lettered when configured) */
};

struct inner_request {
    const char *user;    /* who acts (must exist) */
    const char *vhost;
    const char *declare; /* a queue to declare first (default arguments, not durable), or NULL */
    const char *publish_to;   /* publish body to this queue (default exchange), confirmed, or NULL */
    const uint8_t *body;
    size_t body_len;
    const char *get_from; /* basic.get from this queue, or NULL */
    size_t get_count;     /* at most this many (fewer when the queue runs empty) */
    enum inner_settle settle;
};

/* One message a get returned; its bytes are valid during the done call only. */
struct inner_message {
    struct proto_bytes exchange, routing_key;
    struct proto_bytes header; /* the content header payload (spec_content_header_decode) */
    const uint8_t *body;
    uint64_t body_size;
    bool redelivered;
    uint64_t message_count; /* ready messages left behind it, as basic.get-ok says */
};

/* status: 0 when every step succeeded; else the AMQP reply code of the broker's refusal (text
 * its reply text, as "NOT_FOUND - no queue ..."), or a negative errno: -ETIMEDOUT (no answer in
 * INNER_TIMEOUT_MS), -ECONNRESET (the connection went away: the broker stopped), -ENOMEM. */
struct inner_result {
    int status;
    const char *text;
    const struct inner_message *messages;
    size_t count;
};

#define INNER_TIMEOUT_MS 30000

typedef void (*inner_done_fn)(void *arg, const struct inner_result *result);

/* Starts a run of req (copied); done(arg, result) follows once, from the loop, never inside
 * this call. Returns 0, or a negative errno when it could not start (done is not called). */
int inner_client_run(struct server *server, const struct inner_request *req, inner_done_fn done, void *arg);

#endif
