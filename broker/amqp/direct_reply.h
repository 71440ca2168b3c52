/* broker/amqp/direct_reply.h: RabbitMQ's direct reply-to pseudo-queue (amq.rabbitmq.reply-to). */
#ifndef WARREN_DIRECT_REPLY_H
#define WARREN_DIRECT_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "reply.h"

struct channel;
struct message;
struct spec_content_header;
struct vhost;

/* True when name is the pseudo-queue "amq.rabbitmq.reply-to". */
bool direct_reply_is_queue(struct proto_bytes name);

/* basic.consume on the pseudo-queue: must be no-ack (406 otherwise), one per channel.
 * Sends consume-ok unless no_wait. Returns 0 or -1 with err filled. */
int direct_reply_consume(struct channel *ch, struct proto_bytes tag, bool no_ack, bool no_wait,
                         struct reply_error *err);

/* basic.cancel: true when tag was the channel's reply consumer (now cancelled). */
bool direct_reply_cancel(struct channel *ch, struct proto_bytes tag);

/* Forgets the channel's reply consumer (channel closing). */
void direct_reply_release(struct channel *ch);

/* When h's reply_to is the pseudo-queue, rewrites it to the channel's reply address, encodes
 * the header into buf[0..cap) and points *out at it: returns 1. Returns 0 when there is nothing
 * to rewrite, -1 with 406 when the channel does not consume replies. */
int direct_reply_rewrite(struct channel *ch, struct spec_content_header *h, uint8_t *buf, size_t cap,
                         struct proto_bytes *out, struct reply_error *err);

/* A message published in vhost to the default exchange with a reply address: delivers it to
 * the waiting channel. Returns 1 when delivered, 0 when the address is unknown in vhost (a
 * requester in another vhost is unknown: unroutable), -1 when msg is not a direct reply. */
int direct_reply_deliver(const struct vhost *vhost, struct message *msg);

/* In a cluster: this node's tag (8 hex digits, DIRECT_REPLY_NODE_TAG_LEN), written into the
 * reply addresses it hands out ("amq.rabbitmq.reply-to.<tag>.<key>"), and the function that
 * carries a reply addressed to another node's tag there (returns true when it took msg: the
 * publish counts as routed). NULL tag: a node alone, addresses without a tag. */
#define DIRECT_REPLY_NODE_TAG_LEN 8
typedef bool (*direct_reply_forward_fn)(void *ctx, const char *tag, const struct vhost *vhost, struct message *msg);
void direct_reply_set_node(const char *tag, direct_reply_forward_fn forward, void *ctx);

#endif
