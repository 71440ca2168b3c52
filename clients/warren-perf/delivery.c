/* Frame-level delivery assembly: basic.deliver, then one content header, then body frames until
 * body_size bytes have arrived. */
#include "delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static void copy_short(char out[PERF_NAME_MAX], amqp_bytes_t bytes)
{
    size_t len = bytes.len < PERF_NAME_MAX - 1 ? bytes.len : PERF_NAME_MAX - 1;
    memcpy(out, bytes.bytes, len);
    out[len] = '\0';
}

static int on_header(struct delivery_reader *r, const amqp_frame_t *frame, char *err, size_t err_len)
{
    r->have_header = true;
    r->body_size = (size_t)frame->payload.properties.body_size;
    r->body_received = 0;
    r->reply_to[0] = r->correlation_id[0] = '\0';
    if (!r->keep_content)
        return 0;
    const amqp_basic_properties_t *p = frame->payload.properties.decoded;
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        copy_short(r->reply_to, p->reply_to);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        copy_short(r->correlation_id, p->correlation_id);
    if (r->body_size > r->body_capacity) {
        unsigned char *grown = realloc(r->body, r->body_size);
        if (!grown) {
            snprintf(err, err_len, "out of memory for a %zu-byte body", r->body_size);
            return -1;
        }
        r->body = grown;
        r->body_capacity = r->body_size;
    }
    return 0;
}

static void on_body(struct delivery_reader *r, amqp_bytes_t fragment)
{
    if (r->body_received == 0 && fragment.len >= sizeof(r->stamp))
        memcpy(&r->stamp, fragment.bytes, sizeof(r->stamp));
    size_t room = r->body_size - r->body_received;
    size_t len = fragment.len < room ? fragment.len : room;
    if (r->keep_content)
        memcpy(r->body + r->body_received, fragment.bytes, len);
    r->body_received += len;
}

/* Handle one method frame; returns DELIVERY_PARTIAL or DELIVERY_ERROR. */
static enum delivery_result on_method(struct delivery_reader *r, const amqp_frame_t *frame, char *err,
                                      size_t err_len)
{
    const amqp_method_t *m = &frame->payload.method;
    if (m->id == AMQP_BASIC_DELIVER_METHOD) {
        const amqp_basic_deliver_t *deliver = m->decoded;
        r->delivery_tag = deliver->delivery_tag;
        r->in_message = true;
        r->have_header = false;
        r->stamp = 0;
        return DELIVERY_PARTIAL;
    }
    if (m->id == AMQP_BASIC_CANCEL_METHOD) {
        snprintf(err, err_len, "consumer cancelled by the broker (queue deleted?)");
        return DELIVERY_ERROR;
    }
    if (session_handle_unexpected(r->conn, frame, err, err_len) != 0)
        return DELIVERY_ERROR;
    return DELIVERY_PARTIAL; /* consume-ok, qos-ok and the like */
}

enum delivery_result delivery_next(struct delivery_reader *r, const struct timeval *timeout, char *err,
                                   size_t err_len)
{
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(r->conn, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT)
        return DELIVERY_TIMEOUT;
    if (status != AMQP_STATUS_OK) {
        snprintf(err, err_len, "%s", amqp_error_string2(status));
        return DELIVERY_ERROR;
    }
    enum delivery_result result = DELIVERY_PARTIAL;
    switch (frame.frame_type) {
    case AMQP_FRAME_METHOD:
        result = on_method(r, &frame, err, err_len);
        break;
    case AMQP_FRAME_HEADER:
        if (!r->in_message || r->have_header) {
            snprintf(err, err_len, "content header outside a delivery");
            result = DELIVERY_ERROR;
        } else if (on_header(r, &frame, err, err_len) != 0) {
            result = DELIVERY_ERROR;
        }
        break;
    case AMQP_FRAME_BODY:
        if (!r->in_message || !r->have_header) {
            snprintf(err, err_len, "body frame outside a delivery");
            result = DELIVERY_ERROR;
        } else {
            on_body(r, frame.payload.body_fragment);
        }
        break;
    default:
        break;
    }
    if (result == DELIVERY_PARTIAL && r->in_message && r->have_header && r->body_received >= r->body_size) {
        r->in_message = false;
        result = DELIVERY_MESSAGE;
    }
    amqp_maybe_release_buffers(r->conn);
    return result;
}

void delivery_reader_free(struct delivery_reader *reader)
{
    free(reader->body);
    reader->body = NULL;
    reader->body_capacity = 0;
}
