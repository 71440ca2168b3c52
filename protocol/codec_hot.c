/* protocol/codec_hot.c: fixed-layout codecs for the methods every message goes through
 * (basic.publish and basic.ack in, basic.deliver and basic.get-ok out). They exist only to
 * skip the descriptor walk on the per-message path: the interpreter in codec.c stays the
 * reference, these answer only for well-formed input that fits, and hand everything else
 * (errors included) back to it. tests/unit/protocol/test_codec.c checks that both agree. */
#include <string.h>
#include "codec.h"
#include "spec.h"

static uint16_t be16(const uint8_t *in) { return (uint16_t)(in[0] << 8 | in[1]); }

static uint32_t be32(const uint8_t *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static uint64_t be64(const uint8_t *in) { return (uint64_t)be32(in) << 32 | be32(in + 4); }

static uint8_t *put32(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
    return out + 4;
}

static uint8_t *put64(uint8_t *out, uint64_t v)
{
    put32(out, (uint32_t)(v >> 32));
    return put32(out + 4, (uint32_t)v);
}

/* The caller checked len <= 255 and the room. */
static uint8_t *put_shortstr(uint8_t *out, struct proto_bytes s)
{
    *out++ = (uint8_t)s.len;
    if (s.len)
        memcpy(out, s.ptr, s.len);
    return out + s.len;
}

/* Reads a shortstr at in[*pos]; false when it does not fit in len (the interpreter then
 * reports the error). */
static bool get_shortstr(const uint8_t *in, size_t len, size_t *pos, struct proto_bytes *s)
{
    if (len - *pos < 1 || len - *pos - 1 < in[*pos])
        return false;
    s->len = in[*pos];
    s->ptr = in + *pos + 1;
    *pos += 1 + s->len;
    return true;
}

int codec_hot_decode(const uint8_t *in, size_t len, struct spec_method *out)
{
    if (len < 4)
        return CODEC_HOT_FALLBACK;
    uint32_t id = be32(in);
    size_t pos = 4;
    switch (id) {
    case SPEC_BASIC_PUBLISH: {
        struct spec_basic_publish *a = &out->args.basic_publish;
        if (len < 6)
            return CODEC_HOT_FALLBACK;
        a->reserved_1 = be16(in + 4);
        pos = 6;
        if (!get_shortstr(in, len, &pos, &a->exchange) ||
            !get_shortstr(in, len, &pos, &a->routing_key) || len - pos != 1)
            return CODEC_HOT_FALLBACK;
        a->mandatory = in[pos] & 1u;
        a->immediate = (in[pos] >> 1) & 1u;
        break;
    }
    case SPEC_BASIC_ACK:
        if (len != 4 + 8 + 1)
            return CODEC_HOT_FALLBACK;
        out->args.basic_ack.delivery_tag = be64(in + 4);
        out->args.basic_ack.multiple = in[12] & 1u;
        break;
    default:
        return CODEC_HOT_FALLBACK;
    }
    out->id = id;
    return 0;
}

long codec_hot_encode(const struct spec_method *m, uint8_t *out, size_t cap)
{
    uint8_t *at = out;
    switch (m->id) {
    case SPEC_BASIC_DELIVER: {
        const struct spec_basic_deliver *a = &m->args.basic_deliver;
        if (a->consumer_tag.len > UINT8_MAX || a->exchange.len > UINT8_MAX ||
            a->routing_key.len > UINT8_MAX ||
            cap < 4 + 1 + (size_t)a->consumer_tag.len + 8 + 1 + 1 + a->exchange.len + 1 +
                      a->routing_key.len)
            return CODEC_HOT_FALLBACK;
        at = put32(at, SPEC_BASIC_DELIVER);
        at = put_shortstr(at, a->consumer_tag);
        at = put64(at, a->delivery_tag);
        *at++ = a->redelivered ? 1 : 0;
        at = put_shortstr(at, a->exchange);
        at = put_shortstr(at, a->routing_key);
        break;
    }
    case SPEC_BASIC_GET_OK: {
        const struct spec_basic_get_ok *a = &m->args.basic_get_ok;
        if (a->exchange.len > UINT8_MAX || a->routing_key.len > UINT8_MAX ||
            cap < 4 + 8 + 1 + 1 + (size_t)a->exchange.len + 1 + a->routing_key.len + 4)
            return CODEC_HOT_FALLBACK;
        at = put32(at, SPEC_BASIC_GET_OK);
        at = put64(at, a->delivery_tag);
        *at++ = a->redelivered ? 1 : 0;
        at = put_shortstr(at, a->exchange);
        at = put_shortstr(at, a->routing_key);
        at = put32(at, a->message_count);
        break;
    }
    default:
        return CODEC_HOT_FALLBACK;
    }
    return at - out;
}
