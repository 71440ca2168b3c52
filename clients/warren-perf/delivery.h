/* Reads deliveries frame by frame (basic.deliver, content header, body frames) without
 * rabbitmq-c's envelope copies, keeping what the benchmark needs: the delivery tag, the send
 * time stamped in the first 8 body bytes, and for RPC the reply-to, correlation id and body. */
#ifndef WARREN_PERF_DELIVERY_H
#define WARREN_PERF_DELIVERY_H

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>

#include "perf.h"

enum delivery_result {
    DELIVERY_ERROR = -1,
    DELIVERY_PARTIAL = 0, /* a frame was handled; the message is not complete yet */
    DELIVERY_MESSAGE = 1, /* a whole message was read; its fields are valid until the next call */
    DELIVERY_TIMEOUT = 2, /* nothing arrived in time */
};

/* Zero it, set conn (and keep_content for RPC), then call delivery_next in a loop. */
struct delivery_reader {
    amqp_connection_state_t conn;
    bool keep_content; /* copy the body and reply-to / correlation id */

    uint64_t delivery_tag;
    uint64_t stamp; /* send time from the body, 0 when the body is shorter than 8 bytes */
    unsigned char *body;
    size_t body_size;
    char reply_to[PERF_NAME_MAX];
    char correlation_id[PERF_NAME_MAX];

    bool in_message;
    bool have_header;
    uint64_t body_received;
    size_t body_capacity;
};

/* Read the next frame (waiting up to timeout) and advance the message being assembled.
 * On DELIVERY_ERROR, err holds the reason (a broker close, a cancel, a socket error). */
enum delivery_result delivery_next(struct delivery_reader *reader, const struct timeval *timeout, char *err,
                                   size_t err_len);

/* Free what delivery_next allocated. */
void delivery_reader_free(struct delivery_reader *reader);

#endif
