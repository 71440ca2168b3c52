/* broker/amqp/direct_reply.c: RabbitMQ's direct reply-to. A client consumes (no-ack) from the
 * pseudo-queue amq.rabbitmq.reply-to; when it publishes with reply_to set to that name, the
 * property is rewritten to amq.rabbitmq.reply-to.<key>, and a reply published to the default
 * exchange of the same vhost with that routing key is delivered straight to the requesting
 * channel, without a queue. The key is the only credential a replier shows, so it is 128
 * random bits (nothing derived from a counter or an address); a key from another vhost is
 * unknown there. Keys are looked up in one table of the channels that consume replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "connection.h"
#include "direct_reply.h"
#include "message.h"
#include "random.h"
#include "spec.h"
#include "uthash.h"

#define PSEUDO_QUEUE "amq.rabbitmq.reply-to"
#define PSEUDO_LEN (sizeof PSEUDO_QUEUE - 1)

struct reply_slot {
    char key[RANDOM_TOKEN_LEN + 1];
    struct channel *channel;
    UT_hash_handle hh;
};

/* Keys of channels consuming replies, in every vhost (the broker has one loop). */
static struct reply_slot *reply_slots;

/* A cluster's node: the tag in its addresses, and where replies to other tags go. */
static char node_tag[DIRECT_REPLY_NODE_TAG_LEN + 1];
static direct_reply_forward_fn forward_reply;
static void *forward_ctx;

void direct_reply_set_node(const char *tag, direct_reply_forward_fn forward, void *ctx)
{
    snprintf(node_tag, sizeof node_tag, "%s", tag ? tag : "");
    forward_reply = tag ? forward : NULL;
    forward_ctx = ctx;
}

static bool is_pseudo_queue(struct proto_bytes b)
{
    return b.len == PSEUDO_LEN && memcmp(b.ptr, PSEUDO_QUEUE, PSEUDO_LEN) == 0;
}

bool direct_reply_is_queue(struct proto_bytes name) { return is_pseudo_queue(name); }

int direct_reply_consume(struct channel *ch, struct proto_bytes tag, bool no_ack, bool no_wait,
                         struct reply_error *err)
{
    const uint32_t mid = SPEC_BASIC_CONSUME;
    if (!no_ack)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, mid, "reply consumer cannot acknowledge");
    if (ch->reply_slot)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, mid, "reply consumer already set");
    struct reply_slot *slot = calloc(1, sizeof *slot);
    if (!slot)
        return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "out of memory");
    struct reply_slot *taken;
    do {
        if (random_token(slot->key) != 0) {
            free(slot);
            return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "no randomness for a reply address");
        }
        HASH_FIND_STR(reply_slots, slot->key, taken);
    } while (taken);
    slot->channel = ch;
    HASH_ADD_STR(reply_slots, key, slot);
    ch->reply_slot = slot;
    struct channel_names *names = channel_names(ch);
    if (!names) {
        direct_reply_release(ch);
        return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "out of memory");
    }
    if (tag.len) {
        memcpy(names->reply_tag, tag.ptr, tag.len);
        ch->reply_tag_len = (uint8_t)tag.len;
    } else if (random_token(names->reply_tag + 9) == 0) {
        /* A tag of its own: the key must not be readable from the consumer tag. */
        memcpy(names->reply_tag, "amq.ctag-", 9);
        ch->reply_tag_len = 9 + RANDOM_TOKEN_LEN;
    } else {
        direct_reply_release(ch);
        return reply_fail(err, SPEC_INTERNAL_ERROR, mid, "no randomness for a consumer tag");
    }
    if (no_wait)
        return 0;
    struct spec_method ok = {.id = SPEC_BASIC_CONSUME_OK};
    ok.args.basic_consume_ok.consumer_tag = (struct proto_bytes){(const uint8_t *)names->reply_tag, ch->reply_tag_len};
    return channel_send(ch, &ok);
}

bool direct_reply_cancel(struct channel *ch, struct proto_bytes tag)
{
    if (!ch->reply_slot || tag.len != ch->reply_tag_len || memcmp(tag.ptr, ch->names->reply_tag, tag.len) != 0)
        return false;
    direct_reply_release(ch);
    return true;
}

void direct_reply_release(struct channel *ch)
{
    struct reply_slot *slot = ch->reply_slot;
    if (!slot)
        return;
    HASH_DEL(reply_slots, slot);
    free(slot);
    ch->reply_slot = NULL;
    ch->reply_tag_len = 0;
}

int direct_reply_rewrite(struct channel *ch, struct spec_content_header *h, uint8_t *buf, size_t cap,
                         struct proto_bytes *out, struct reply_error *err)
{
    if (!(h->props.flags & SPEC_BASIC_REPLY_TO_FLAG) || !is_pseudo_queue(h->props.reply_to))
        return 0;
    if (!ch->reply_slot)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_BASIC_PUBLISH, "fast reply consumer does not exist");
    char reply_to[PSEUDO_LEN + 1 + sizeof node_tag + sizeof ch->reply_slot->key];
    int n = node_tag[0] ? snprintf(reply_to, sizeof reply_to, PSEUDO_QUEUE ".%s.%s", node_tag, ch->reply_slot->key)
                        : snprintf(reply_to, sizeof reply_to, PSEUDO_QUEUE ".%s", ch->reply_slot->key);
    h->props.reply_to = (struct proto_bytes){(const uint8_t *)reply_to, (uint32_t)n};
    long len = spec_content_header_encode(h, buf, cap);
    if (len < 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "cannot encode content header");
    *out = (struct proto_bytes){buf, (uint32_t)len};
    return 1;
}

int direct_reply_deliver(const struct vhost *vhost, struct message *msg)
{
    struct proto_bytes key = msg->routing_key;
    if (msg->exchange.len != 0 || key.len <= PSEUDO_LEN + 1 || memcmp(key.ptr, PSEUDO_QUEUE ".", PSEUDO_LEN + 1) != 0)
        return -1;
    char name[sizeof ((struct reply_slot *)0)->key];
    const uint8_t *at = key.ptr + PSEUDO_LEN + 1;
    size_t len = key.len - PSEUDO_LEN - 1;
    const uint8_t *dot = memchr(at, '.', len);
    if (dot) { /* "<tag>.<key>": a cluster node's address */
        size_t tag_len = (size_t)(dot - at);
        if (tag_len != DIRECT_REPLY_NODE_TAG_LEN)
            return 0;
        if (!node_tag[0] || memcmp(at, node_tag, tag_len) != 0) {
            char tag[DIRECT_REPLY_NODE_TAG_LEN + 1];
            memcpy(tag, at, tag_len);
            tag[tag_len] = '\0';
            return forward_reply && forward_reply(forward_ctx, tag, vhost, msg) ? 1 : 0;
        }
        len -= tag_len + 1;
        at = dot + 1;
    }
    if (len >= sizeof name)
        return 0;
    memcpy(name, at, len);
    name[len] = '\0';
    struct reply_slot *slot;
    HASH_FIND_STR(reply_slots, name, slot);
    if (!slot || slot->channel->vhost != vhost)
        return 0;
    struct channel *ch = slot->channel;
    struct spec_method m = {.id = SPEC_BASIC_DELIVER};
    m.args.basic_deliver.consumer_tag = (struct proto_bytes){(const uint8_t *)ch->names->reply_tag, ch->reply_tag_len};
    m.args.basic_deliver.delivery_tag = ++ch->next_delivery_tag;
    m.args.basic_deliver.exchange = msg->exchange;
    m.args.basic_deliver.routing_key = msg->routing_key;
    connection_send_content(ch->conn, ch->number, &m, msg->header, msg->body, msg->body_size, message_retain_cb,
                            message_release_cb, msg);
    return 1;
}
