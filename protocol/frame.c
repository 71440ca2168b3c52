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

/* The other headers RabbitMQ accepts. AMQP 0-9 (class 1, instance 1, version 0-9) is served
 * as 0-9-1, the two differing in nothing a 0-9 client relies on. AMQP 0-8 comes in two
 * spellings: "1 1 8 0", which most 0-8 clients send, and "1 1 9 1", the 0-8 spec's own. */
static const struct {
    uint8_t bytes[PROTOCOL_HEADER_SIZE];
    enum frame_protocol protocol;
} other_headers[] = {
    {{'A', 'M', 'Q', 'P', 1, 1, 0, 9}, FRAME_PROTOCOL_0_9_1},
    {{'A', 'M', 'Q', 'P', 1, 1, 8, 0}, FRAME_PROTOCOL_0_8},
    {{'A', 'M', 'Q', 'P', 1, 1, 9, 1}, FRAME_PROTOCOL_0_8},
};

long frame_check_protocol_header(const uint8_t *buf, size_t len)
{
    size_t n = len < PROTOCOL_HEADER_SIZE ? len : PROTOCOL_HEADER_SIZE;
    bool known = n == 0 || memcmp(buf, frame_protocol_header, n) == 0;

    for (size_t i = 0; !known && i < sizeof other_headers / sizeof *other_headers; i++)
        known = memcmp(buf, other_headers[i].bytes, n) == 0;
    if (!known)
        return PROTO_ERR_BAD_HEADER;
    return len < PROTOCOL_HEADER_SIZE ? PROTO_INCOMPLETE : PROTOCOL_HEADER_SIZE;
}

enum frame_protocol frame_header_protocol(const uint8_t header[PROTOCOL_HEADER_SIZE])
{
    for (size_t i = 0; i < sizeof other_headers / sizeof *other_headers; i++)
        if (memcmp(header, other_headers[i].bytes, PROTOCOL_HEADER_SIZE) == 0)
            return other_headers[i].protocol;
    return FRAME_PROTOCOL_0_9_1;
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
