/* protocol/spec08.c: the wire differences between AMQP 0-8 (RabbitMQ's amqp-rabbitmq-0.8
 * framing) and 0-9-1, for the methods Warren implements. Everything else is the 0-9-1 codec:
 * the frame layout, content headers and basic properties are the same in both. */
#include "spec08.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "codec.h"
#include "proto.h"

#define METHOD_PREFIX_SIZE 4

/* 0-8 numbers connection.close and close-ok 60 and 61 (50 is its connection.redirect, which
 * only a server sends), where 0-9-1 has them at 50 and 51 and puts connection.blocked and
 * unblocked at 60 and 61. */
#define WIRE08_CONNECTION_CLOSE SPEC_METHOD_ID(SPEC_CLASS_CONNECTION, 60)
#define WIRE08_CONNECTION_CLOSE_OK SPEC_METHOD_ID(SPEC_CLASS_CONNECTION, 61)

/* access.request: realm, then five bits (exclusive, passive, active, write, read). Read only
 * to check the frame; nothing of it is kept. */
struct access_request {
    struct proto_bytes realm;
    bool flags[5];
};
static const struct codec_field access_request_fields[] = {
    {CODEC_SHORTSTR, 0, offsetof(struct access_request, realm)},
    {CODEC_BIT, 0, offsetof(struct access_request, flags[0])},
    {CODEC_BIT, 0, offsetof(struct access_request, flags[1])},
    {CODEC_BIT, 0, offsetof(struct access_request, flags[2])},
    {CODEC_BIT, 0, offsetof(struct access_request, flags[3])},
    {CODEC_BIT, 0, offsetof(struct access_request, flags[4])},
};

/* 0-9-1 methods (by their 0-9-1 id) that RabbitMQ's 0-8 framing does not have. Its 0-8 does
 * have queue.unbind and basic.recover / recover-ok, numbered as in 0-9-1. */
static bool only_in_0_9_1(uint32_t id)
{
    switch (id) {
    case SPEC_CONNECTION_BLOCKED:
    case SPEC_CONNECTION_UNBLOCKED:
    case SPEC_CONNECTION_UPDATE_SECRET:
    case SPEC_CONNECTION_UPDATE_SECRET_OK:
    case SPEC_EXCHANGE_BIND:
    case SPEC_EXCHANGE_BIND_OK:
    case SPEC_EXCHANGE_UNBIND:
    case SPEC_EXCHANGE_UNBIND_OK:
    case SPEC_BASIC_NACK:
    case SPEC_CONFIRM_SELECT:
    case SPEC_CONFIRM_SELECT_OK:
        return true;
    default:
        return false;
    }
}

static uint32_t read_id(const uint8_t *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static void write_id(uint8_t *out, uint32_t id)
{
    out[0] = (uint8_t)(id >> 24);
    out[1] = (uint8_t)(id >> 16);
    out[2] = (uint8_t)(id >> 8);
    out[3] = (uint8_t)id;
}

/* The arguments of a 0-9-1 method descriptor that 0-8 sends: all but basic.consume's last
 * (its arguments table) and channel.open-ok's one (a reserved longstr). */
static size_t wire08_field_count(const struct codec_method *method)
{
    if (method->id == SPEC_BASIC_CONSUME || method->id == SPEC_CHANNEL_OPEN_OK)
        return method->field_count - 1u;
    return method->field_count;
}

int spec08_method_decode(const uint8_t *payload, size_t len, struct spec_method *out)
{
    if (len < METHOD_PREFIX_SIZE)
        return spec_method_decode(payload, len, out);
    uint32_t wire = read_id(payload);
    uint32_t id = wire;
    size_t pos = METHOD_PREFIX_SIZE;
    int rc;

    if (wire == SPEC08_ACCESS_REQUEST) {
        struct access_request ignored;
        memset(out, 0, sizeof *out);
        out->id = SPEC08_ACCESS_REQUEST;
        rc = codec_read_fields(access_request_fields, sizeof access_request_fields / sizeof *access_request_fields,
                               0, (uint8_t *)&ignored, payload, len, &pos);
        if (rc < 0)
            return rc;
        return pos == len ? 0 : PROTO_ERR_TRUNCATED;
    }
    if (wire == WIRE08_CONNECTION_CLOSE)
        id = SPEC_CONNECTION_CLOSE;
    else if (wire == WIRE08_CONNECTION_CLOSE_OK)
        id = SPEC_CONNECTION_CLOSE_OK;
    else if (wire == SPEC_CONNECTION_CLOSE || wire == SPEC_CONNECTION_CLOSE_OK || only_in_0_9_1(wire))
        return PROTO_ERR_UNKNOWN_METHOD;
    else if (wire != SPEC_BASIC_CONSUME && wire != SPEC_CHANNEL_OPEN_OK)
        return spec_method_decode(payload, len, out); /* the same on both wires */

    const struct codec_method *method = codec_find_method(id);
    memset(out, 0, sizeof *out);
    out->id = id;
    rc = codec_read_fields(method->fields, wire08_field_count(method), 0, (uint8_t *)&out->args, payload, len,
                           &pos);
    if (rc < 0)
        return rc;
    return pos == len ? 0 : PROTO_ERR_TRUNCATED;
}

long spec08_method_encode(const struct spec_method *m, uint8_t *out, size_t cap)
{
    uint32_t wire = m->id;

    if (only_in_0_9_1(m->id))
        return PROTO_ERR_UNKNOWN_METHOD;
    if (m->id == SPEC08_ACCESS_REQUEST_OK) {
        if (cap < METHOD_PREFIX_SIZE + 2)
            return PROTO_ERR_NO_SPACE;
        write_id(out, wire);
        out[4] = 0;
        out[5] = 1;
        return METHOD_PREFIX_SIZE + 2;
    }
    if (m->id == SPEC_CONNECTION_CLOSE)
        wire = WIRE08_CONNECTION_CLOSE;
    else if (m->id == SPEC_CONNECTION_CLOSE_OK)
        wire = WIRE08_CONNECTION_CLOSE_OK;
    else if (m->id != SPEC_CHANNEL_OPEN_OK && m->id != SPEC_BASIC_CONSUME)
        return spec_method_encode(m, out, cap); /* the same on both wires */

    const struct codec_method *method = codec_find_method(m->id);
    if (cap < METHOD_PREFIX_SIZE)
        return PROTO_ERR_NO_SPACE;
    write_id(out, wire);
    size_t pos = METHOD_PREFIX_SIZE;
    int rc = codec_write_fields(method->fields, wire08_field_count(method), 0, (const uint8_t *)&m->args, out, cap,
                                &pos);
    return rc < 0 ? rc : (long)pos;
}
