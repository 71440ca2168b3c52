/* broker/amqp/channel.c: the channel state machine and method dispatch. A channel is created
 * by the first frame on its number (which must be channel.open), closes itself on a soft error
 * (sending channel.close and then ignoring everything but close/close-ok), and routes content
 * frames to the publish assembler. */
#include "channel.h"

#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "connection.h"
#include "event_loop.h"
#include "netconn.h"
#include "server.h"
#include "frame.h"
#include "log.h"
#include "spec.h"
#include "spec08.h"

uint16_t channel_number(const struct channel *ch) { return ch->number; }
int channel_is_closed(const struct channel *ch) { return ch->state == CHANNEL_CLOSED; }
const struct stats_channel *channel_stats(const struct channel *ch) { return &ch->stats; }

struct channel *channel_create(struct connection *conn, uint16_t number)
{
    struct channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->conn = conn;
    ch->number = number;
    ch->vhost = connection_vhost(conn);
    ch->state = CHANNEL_OPENING;
    ch->active = true;
    ch->tx_publishes_tail = &ch->tx_publishes;
    return ch;
}

void channel_destroy(struct channel *ch)
{
    if (!ch)
        return;
    channel_release_resources(ch); /* forgets confirms still waiting for the cluster's log */
    server_unwait_durable(connection_server(ch->conn), ch);
    free(ch->waits);
    route_set_free(&ch->targets);
    free(ch->unacked.items);
    free(ch->names);
    free(ch);
}

struct channel_names *channel_names(struct channel *ch)
{
    if (!ch->names)
        ch->names = malloc(sizeof *ch->names);
    return ch->names;
}

int channel_send(struct channel *ch, const struct spec_method *m)
{
    return connection_send_method(ch->conn, ch->number, m);
}

static void send_channel_close(struct channel *ch, const struct reply_error *err)
{
    struct spec_method m = {.id = SPEC_CHANNEL_CLOSE};
    m.args.channel_close.reply_code = err->code;
    m.args.channel_close.reply_text.ptr = (const uint8_t *)err->text;
    m.args.channel_close.reply_text.len = (uint32_t)strlen(err->text);
    m.args.channel_close.class_id = (uint16_t)SPEC_METHOD_CLASS(err->method_id);
    m.args.channel_close.method_id = (uint16_t)SPEC_METHOD_INDEX(err->method_id);
    channel_send(ch, &m);
}

/* The one place a soft error closes a channel. Everything the channel held is released now,
 * as RabbitMQ does: unacked messages go back to their queues before close-ok arrives. */
static void channel_fail(struct channel *ch, const struct reply_error *err)
{
    log_warning("%s: channel %u error: %s%s%s", connection_name(ch->conn), ch->number, err->text,
                err->method_id ? " on " : "", err->method_id ? spec_method_name(err->method_id) : "");
    channel_release_resources(ch);
    send_channel_close(ch, err);
    ch->state = CHANNEL_CLOSING;
}

void channel_raise(struct channel *ch, const struct reply_error *err)
{
    if (spec_reply_code_is_hard(err->code))
        connection_fail(ch->conn, err);
    else if (ch->state == CHANNEL_OPEN)
        channel_fail(ch, err);
}

static int handle_channel_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_CHANNEL_CLOSE: {
        struct spec_method ok = {.id = SPEC_CHANNEL_CLOSE_OK};
        channel_release_resources(ch);
        channel_send(ch, &ok);
        ch->state = CHANNEL_CLOSED;
        return 0;
    }
    case SPEC_CHANNEL_CLOSE_OK:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unimplemented method");
    case SPEC_CHANNEL_FLOW: {
        /* RabbitMQ never implemented stopping a channel's deliveries with flow. */
        if (!m->args.channel_flow.active)
            return reply_fail(err, SPEC_NOT_IMPLEMENTED, m->id, "active=false");
        ch->active = true;
        struct spec_method ok = {.id = SPEC_CHANNEL_FLOW_OK};
        ok.args.channel_flow_ok.active = ch->active;
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    case SPEC_CHANNEL_FLOW_OK:
        return 0;
    case SPEC_CHANNEL_OPEN:
        return reply_fail(err, SPEC_CHANNEL_ERROR, m->id, "second 'channel.open' seen");
    default:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unexpected method %s", spec_method_name(m->id));
    }
}

static int dispatch_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (SPEC_METHOD_CLASS(m->id)) {
    case SPEC_CLASS_CHANNEL:
        return handle_channel_method(ch, m, err);
    case SPEC_CLASS_CONNECTION:
        return reply_fail(err, SPEC_COMMAND_INVALID, m->id, "unimplemented method");
    case SPEC_CLASS_EXCHANGE:
        return channel_exchange_method(ch, m, err);
    case SPEC_CLASS_QUEUE:
        return channel_queue_method(ch, m, err);
    case SPEC_CLASS_BASIC:
        if (m->id == SPEC_BASIC_PUBLISH)
            return channel_publish(ch, m, err);
        return channel_basic_method(ch, m, err);
    case SPEC_CLASS_CONFIRM:
        return channel_confirm_select(ch, m, err);
    case SPEC_CLASS_TX:
        return channel_tx_method(ch, m, err);
    case SPEC08_CLASS_ACCESS: {
        /* Only an 0-8 connection decodes access.request (spec08.h); RabbitMQ grants it. */
        struct spec_method ok = {.id = SPEC08_ACCESS_REQUEST_OK};
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    default:
        return reply_fail(err, SPEC_NOT_IMPLEMENTED, m->id, "%s is not implemented", spec_method_name(m->id));
    }
}

uint64_t channel_now(const struct channel *ch)
{
    return loop_now_ms(netconn_loop(connection_net(ch->conn)));
}

void channel_release_resources(struct channel *ch)
{
    channel_drop_publishing(ch);
    channel_release_consumers(ch);
    /* An enqueue proposed for a publish with confirms may be applied after the channel went
     * (its connection died while the cluster had no leader, or the node was paused): its
     * callback must find no channel, closed or freed. */
    channel_forget_replica_confirms(ch);
}

/* While closing, only channel.close-ok (or a crossing channel.close) ends the wait. */
static void closing_frame(struct channel *ch, const struct frame *f)
{
    struct spec_method m;
    if (f->type != FRAME_METHOD || connection_decode_method(ch->conn, f, &m, NULL) != 0)
        return;
    if (m.id == SPEC_CHANNEL_CLOSE) {
        /* A crossing close: answer it, but the number stays taken until our close-ok comes
         * back (as RabbitMQ), or that close-ok would land on a fresh channel. */
        struct spec_method ok = {.id = SPEC_CHANNEL_CLOSE_OK};
        channel_send(ch, &ok);
    } else if (m.id == SPEC_CHANNEL_CLOSE_OK) {
        ch->state = CHANNEL_CLOSED;
    }
}

int channel_handle_frame(struct channel *ch, const struct frame *f, struct reply_error *err)
{
    if (ch->state == CHANNEL_CLOSING) {
        closing_frame(ch, f);
        return 0;
    }
    if (f->type == FRAME_HEADER || f->type == FRAME_BODY) {
        /* Content never follows channel.open; RabbitMQ's frame assembler says 505 first. */
        if (ch->state != CHANNEL_OPEN)
            return reply_fail(err, SPEC_UNEXPECTED_FRAME, 0, "expected method frame, got non method frame instead");
        int rc = channel_content_frame(ch, f, err);
        if (rc != 0 && !spec_reply_code_is_hard(err->code)) {
            channel_fail(ch, err);
            return 0;
        }
        return rc;
    }
    struct spec_method m;
    if (connection_decode_method(ch->conn, f, &m, err) != 0)
        return -1;
    int rc;
    if (ch->state == CHANNEL_OPENING) {
        if (m.id != SPEC_CHANNEL_OPEN)
            return reply_fail(err, SPEC_CHANNEL_ERROR, m.id, "expected 'channel.open'");
        struct spec_method ok = {.id = SPEC_CHANNEL_OPEN_OK};
        ch->state = CHANNEL_OPEN;
        return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, m.id, "out of memory");
    }
    if (channel_content_pending(ch))
        return reply_fail(err, SPEC_UNEXPECTED_FRAME, SPEC_BASIC_PUBLISH,
                          ch->stage == PUBLISH_AWAIT_HEADER
                              ? "expected content header for class 60, got non content header frame instead"
                              : "expected content body, got non content body frame instead");
    rc = dispatch_method(ch, &m, err);
    if (rc != 0 && !spec_reply_code_is_hard(err->code)) {
        channel_fail(ch, err);
        return 0;
    }
    return rc;
}
