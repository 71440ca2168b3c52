/* protocol/frame.h: incremental AMQP 0-9-1 frame reader and frame writer.
 * A frame is: type(1) channel(2) size(4) payload(size) frame-end(1, 0xCE). */
#ifndef WARREN_FRAME_H
#define WARREN_FRAME_H

#include <stdbool.h>
#include "proto.h"

enum frame_type {
    FRAME_METHOD = 1,
    FRAME_HEADER = 2,
    FRAME_BODY = 3,
    FRAME_HEARTBEAT = 8,
};

#define FRAME_END_OCTET 0xCE
#define FRAME_HEADER_SIZE 7      /* type + channel + size */
#define FRAME_OVERHEAD 8         /* header + frame-end octet */
#define FRAME_MIN_SIZE 4096      /* smallest frame_max a peer may negotiate */
#define PROTOCOL_HEADER_SIZE 8

/* One decoded frame. payload borrows from the buffer given to frame_decode. */
struct frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;
};

/* Decodes one frame from buf[0..len). Returns the bytes consumed (> 0), PROTO_INCOMPLETE when
 * buf holds only part of a frame, or a negative proto_error. frame_max bounds the whole frame
 * including FRAME_OVERHEAD (0: no bound); an over-long size is rejected as soon as the 7 header
 * bytes are present. The payload is not copied: out->payload points into buf. */
long frame_decode(const uint8_t *buf, size_t len, uint32_t frame_max, struct frame *out);

/* The protocols a client can ask for in its protocol header. */
enum frame_protocol {
    FRAME_PROTOCOL_0_9_1,
    FRAME_PROTOCOL_0_8, /* as RabbitMQ speaks it: see spec08.h */
};

/* Checks the 8-byte protocol header: "AMQP\0\0\x09\x01" (0-9-1), "AMQP\x01\x01\x00\x09" (0-9,
 * which RabbitMQ serves as 0-9-1, announcing the same 0-9 version in connection.start), or
 * "AMQP\x01\x01\x08\x00" and "AMQP\x01\x01\x09\x01" (0-8). Returns PROTOCOL_HEADER_SIZE when it
 * matches one, PROTO_INCOMPLETE when fewer than 8 bytes are present and they match one so far,
 * or PROTO_ERR_BAD_HEADER. */
long frame_check_protocol_header(const uint8_t *buf, size_t len);

/* The protocol a header accepted by frame_check_protocol_header asks for. */
enum frame_protocol frame_header_protocol(const uint8_t header[PROTOCOL_HEADER_SIZE]);

/* The header a server sends back when it rejects a client's protocol header. */
extern const uint8_t frame_protocol_header[PROTOCOL_HEADER_SIZE];

/* Writes the 7-byte frame header for a payload of `size` bytes into out. */
void frame_put_header(uint8_t out[FRAME_HEADER_SIZE], uint8_t type, uint16_t channel, uint32_t size);

/* Writes a whole frame (header, payload, end octet) into out[0..cap). Returns the bytes written
 * (size + FRAME_OVERHEAD) or PROTO_ERR_NO_SPACE. */
long frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t channel,
                  const uint8_t *payload, uint32_t size);

#endif
