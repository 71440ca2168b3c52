/* protocol/proto.h: types and status codes shared by the pure AMQP 0-9-1 codec.
 * Nothing in protocol/ touches sockets, clocks or globals: bytes in, structs out. */
#ifndef WARREN_PROTO_H
#define WARREN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed run of bytes. Decoded views point into the caller's input buffer and are
 * valid only while those bytes are (see each decoder). Never owned, never freed. */
struct proto_bytes {
    const uint8_t *ptr;
    uint32_t len;
};

/* A view of a NUL-terminated string (not copied). */
static inline struct proto_bytes proto_bytes_of(const char *s)
{
    return (struct proto_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* True when a and b hold the same bytes. */
static inline bool proto_bytes_equal(struct proto_bytes a, struct proto_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* True when b holds exactly the characters of the C string s. */
static inline bool proto_bytes_is(struct proto_bytes b, const char *s)
{
    return proto_bytes_equal(b, proto_bytes_of(s));
}

/* Returned by incremental decoders when the buffer does not yet hold a whole unit. */
#define PROTO_INCOMPLETE 0

/* Negative status codes. Each maps to the AMQP reply code RabbitMQ sends for it. */
enum proto_error {
    PROTO_ERR_TRUNCATED = -1,      /* a field runs past the end of its payload: 502 */
    PROTO_ERR_FRAME_END = -2,      /* frame-end octet is not 0xCE: 501 */
    PROTO_ERR_FRAME_SIZE = -3,     /* frame larger than the negotiated frame_max: 501 */
    PROTO_ERR_FRAME_TYPE = -4,     /* unknown frame type octet: 501 */
    PROTO_ERR_UNKNOWN_METHOD = -5, /* class/method id pair not in the spec: 540 */
    PROTO_ERR_BAD_TABLE = -6,      /* table or array length inconsistent: 502 */
    PROTO_ERR_FIELD_TYPE = -7,     /* unknown field-value type octet: 502 */
    PROTO_ERR_TOO_DEEP = -8,       /* tables nested deeper than PROTO_MAX_TABLE_DEPTH: 502 */
    PROTO_ERR_NO_SPACE = -9,       /* encoder: output buffer too small */
    PROTO_ERR_BAD_HEADER = -10,    /* a protocol header Warren does not speak */
    PROTO_ERR_TOO_LONG = -11,      /* encoder: string longer than its wire type allows */
};

/* Nesting limit for field tables and arrays; deeper input is rejected (502), never recursed.
 * RabbitMQ relays tables nested 200 levels deep, and clients' headers rely on it, so the bound
 * is well above that: each level of the recursions over a validated table (validation, JSON
 * rendering for warrenctl) takes a small stack frame, 512 of them a few hundred KiB at most
 * on the event loop's 8 MiB stack. */
#define PROTO_MAX_TABLE_DEPTH 512

/* Static, human-readable description of a status code (never NULL). */
const char *proto_strerror(int err);

/* AMQP reply code RabbitMQ uses when a peer's input fails with err (501, 502, 540...). */
uint16_t proto_error_reply_code(int err);

#endif
