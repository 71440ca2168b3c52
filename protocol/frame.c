/* protocol/frame.c: splits a byte stream into AMQP frames and writes frames, without copying
 * payloads and without knowing what any payload means. */
#include <string.h>
#include <limits.h>
#include "frame.h"

const uint8_t frame_protocol_header[PROTOCOL_HEADER_SIZE] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

static bool is_known_type(uint8_t type)
{
    return type == FRAME_METHOD || type == FRAME_HEADER || type == FRAME_BODY ||
           type == FRAME_HEARTBEAT;
}

long frame_decode(const uint8_t *buf, size_t len, uint32_t frame_max, struct frame *out)
{
    /* Reject what is already known to be wrong before waiting for more bytes: a peer that
     * sends garbage or a 4 GiB size must not make us buffer. */
    if (len < 1)
        return PROTO_INCOMPLETE;
    if (!is_known_type(buf[0]))
        return PROTO_ERR_FRAME_TYPE;
    if (len < FRAME_HEADER_SIZE)
        return PROTO_INCOMPLETE;

    uint32_t size = (uint32_t)buf[3] << 24 | (uint32_t)buf[4] << 16 | (uint32_t)buf[5] << 8 |
                    buf[6];
    uint64_t total = (uint64_t)size + FRAME_OVERHEAD;
    if ((frame_max != 0 && total > frame_max) || total > LONG_MAX)
        return PROTO_ERR_FRAME_SIZE;
    if (len < total)
        return PROTO_INCOMPLETE;
    if (buf[total - 1] != FRAME_END_OCTET)
        return PROTO_ERR_FRAME_END;

    out->type = buf[0];
    out->channel = (uint16_t)(buf[1] << 8 | buf[2]);
    out->size = size;
    out->payload = buf + FRAME_HEADER_SIZE;
    return (long)total;
}

/* AMQP 0-9's header (class 1, instance 1, version 0-9): RabbitMQ serves it as 0-9-1, the
 * two differing in nothing a 0-9 client relies on. (It also speaks 0-8, with its own codec,
 * for "AMQP\x01\x01\x08\x00" and "AMQP\x01\x01\x09\x01"; Warren does not.) */
static const uint8_t protocol_header_0_9[PROTOCOL_HEADER_SIZE] = {'A', 'M', 'Q', 'P', 1, 1, 0, 9};

long frame_check_protocol_header(const uint8_t *buf, size_t len)
{
    size_t n = len < PROTOCOL_HEADER_SIZE ? len : PROTOCOL_HEADER_SIZE;

    if (n > 0 && memcmp(buf, frame_protocol_header, n) != 0 && memcmp(buf, protocol_header_0_9, n) != 0)
        return PROTO_ERR_BAD_HEADER;
    return len < PROTOCOL_HEADER_SIZE ? PROTO_INCOMPLETE : PROTOCOL_HEADER_SIZE;
}

void frame_put_header(uint8_t out[FRAME_HEADER_SIZE], uint8_t type, uint16_t channel, uint32_t size)
{
    out[0] = type;
    out[1] = (uint8_t)(channel >> 8);
    out[2] = (uint8_t)channel;
    out[3] = (uint8_t)(size >> 24);
    out[4] = (uint8_t)(size >> 16);
    out[5] = (uint8_t)(size >> 8);
    out[6] = (uint8_t)size;
}

long frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t channel,
                  const uint8_t *payload, uint32_t size)
{
    uint64_t total = (uint64_t)size + FRAME_OVERHEAD;

    if (total > cap || total > LONG_MAX)
        return PROTO_ERR_NO_SPACE;
    frame_put_header(out, type, channel, size);
    if (size > 0)
        memcpy(out + FRAME_HEADER_SIZE, payload, size);
    out[total - 1] = FRAME_END_OCTET;
    return (long)total;
}
