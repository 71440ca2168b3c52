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

static int on_header(struct delivery_reader *reader, const amqp_frame_t *frame, char *err, size_t err_len)
{
    reader->have_header = true;
    reader->body_size = (size_t)frame->payload.properties.body_size;
    reader->body_received = 0;
    reader->reply_to[0] = reader->correlation_id[0] = '\0';
    if (!reader->keep_content)
        return 0;
    const amqp_basic_properties_t *p = frame->payload.properties.decoded;
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        copy_short(reader->reply_to, p->reply_to);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        copy_short(reader->correlation_id, p->correlation_id);
    if (reader->body_size > reader->body_capacity) {
        unsigned char *grown = realloc(reader->body, reader->body_size);
        if (!grown) {
            snprintf(err, err_len, "out of memory for a %zu-byte body", reader->body_size);
            return -1;
        }
        reader->body = grown;
        reader->body_capacity = reader->body_size;
    }
    return 0;
}

static void on_body(struct delivery_reader *reader, amqp_bytes_t fragment)
{
    if (reader->body_received == 0 && fragment.len >= sizeof(reader->stamp))
        memcpy(&reader->stamp, fragment.bytes, sizeof(reader->stamp));
    size_t room = reader->body_size - reader->body_received;
    size_t len = fragment.len < room ? fragment.len : room;
    if (reader->keep_content)
        memcpy(reader->body + reader->body_received, fragment.bytes, len);
    reader->body_received += len;
}

/* Handle one method frame; returns DELIVERY_PARTIAL or DELIVERY_ERROR. */
static enum delivery_result on_method(struct delivery_reader *reader, const amqp_frame_t *frame, char *err,
                                      size_t err_len)
{
    const amqp_method_t *method = &frame->payload.method;
    if (method->id == AMQP_BASIC_DELIVER_METHOD) {
        const amqp_basic_deliver_t *deliver = method->decoded;
        reader->delivery_tag = deliver->delivery_tag;
        reader->in_message = true;
        reader->have_header = false;
        reader->stamp = 0;
        return DELIVERY_PARTIAL;
    }
    if (method->id == AMQP_BASIC_CANCEL_METHOD) {
        snprintf(err, err_len, "consumer cancelled by the broker (queue deleted?)");
        return DELIVERY_ERROR;
    }
    if (session_handle_unexpected(reader->conn, frame, err, err_len) != 0)
        return DELIVERY_ERROR;
    return DELIVERY_PARTIAL; /* consume-ok, qos-ok and the like */
}

enum delivery_result delivery_next(struct delivery_reader *reader, const struct timeval *timeout, char *err,
                                   size_t err_len)
{
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(reader->conn, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT)
        return DELIVERY_TIMEOUT;
    if (status != AMQP_STATUS_OK) {
        snprintf(err, err_len, "%s", amqp_error_string2(status));
        return DELIVERY_ERROR;
    }
    enum delivery_result result = DELIVERY_PARTIAL;
    switch (frame.frame_type) {
    case AMQP_FRAME_METHOD:
        result = on_method(reader, &frame, err, err_len);
        break;
    case AMQP_FRAME_HEADER:
        if (!reader->in_message || reader->have_header) {
            snprintf(err, err_len, "content header outside a delivery");
            result = DELIVERY_ERROR;
        } else if (on_header(reader, &frame, err, err_len) != 0) {
            result = DELIVERY_ERROR;
        }
        break;
    case AMQP_FRAME_BODY:
        if (!reader->in_message || !reader->have_header) {
            snprintf(err, err_len, "body frame outside a delivery");
            result = DELIVERY_ERROR;
        } else {
            on_body(reader, frame.payload.body_fragment);
        }
        break;
    default:
        break;
    }
    if (result == DELIVERY_PARTIAL && reader->in_message && reader->have_header && reader->body_received >= reader->body_size) {
        reader->in_message = false;
        result = DELIVERY_MESSAGE;
    }
    amqp_maybe_release_buffers(reader->conn);
    return result;
}

void delivery_reader_free(struct delivery_reader *reader)
{
    free(reader->body);
    reader->body = NULL;
    reader->body_capacity = 0;
}
