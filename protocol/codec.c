/* protocol/codec.c: the one interpreter that decodes and encodes every method and content
 * header by walking the generated descriptor tables (spec.c). Every bounds check of the
 * method and property codecs lives in read_fields and write_fields below; the fixed-layout
 * shortcuts for the per-message methods (codec_hot.c) defer to them for anything unusual. */
#include <string.h>
#include "codec.h"
#include "spec.h"
#include "table.h"

#define METHOD_PREFIX_SIZE 4          /* class id + method index */
#define CONTENT_HEADER_FIXED_SIZE 14  /* class id, weight, body size, property flags */
#define PROPERTY_CONTINUATION 0x0001u /* more flag words follow: unsupported, as in RabbitMQ */
#define NO_OPEN_OCTET 8               /* bit cursor value meaning "start a new bit octet" */

/* Bytes on the wire before any variable part: the value itself or the length prefix. */
static const uint8_t wire_width[] = {
    [CODEC_BIT] = 0,
    [CODEC_OCTET] = 1,
    [CODEC_SHORT] = 2,
    [CODEC_LONG] = 4,
    [CODEC_LONGLONG] = 8,
    [CODEC_SHORTSTR] = 1,
    [CODEC_LONGSTR] = 4,
    [CODEC_TABLE] = 4,
};

static uint64_t get_be(const uint8_t *in, unsigned width)
{
    /* The widths the wire uses, spelled out so each becomes a load and a byte swap. */
    switch (width) {
    case 1:
        return in[0];
    case 2:
        return (uint64_t)in[0] << 8 | in[1];
    case 4:
        return (uint64_t)in[0] << 24 | (uint64_t)in[1] << 16 | (uint64_t)in[2] << 8 | in[3];
    case 8:
        return get_be(in, 4) << 32 | get_be(in + 4, 4);
    default: {
        uint64_t value = 0;
        for (unsigned i = 0; i < width; i++)
            value = (value << 8) | in[i];
        return value;
    }
    }
}

static void put_be(uint8_t *out, uint64_t value, unsigned width)
{
    for (unsigned i = width; i > 0; i--) {
        out[i - 1] = (uint8_t)value;
        value >>= 8;
    }
}

static bool is_present(const struct codec_field *field, uint16_t flags)
{
    return field->flag == 0 || (flags & field->flag) != 0;
}

/* Invariant: *pos <= len throughout, so len - *pos never wraps. */
int codec_read_fields(const struct codec_field *fields, size_t count, uint16_t flags,
                      uint8_t *base, const uint8_t *in, size_t len, size_t *pos)
{
    unsigned bit = NO_OPEN_OCTET;
    uint8_t octet = 0;
    uint16_t flags_left = flags; /* present flagged fields not read yet */

    for (size_t i = 0; i < count; i++) {
        const struct codec_field *field = &fields[i];
        uint8_t *slot = base + field->offset;

        if (field->flag != 0) {
            if (flags_left == 0)
                break; /* every present property is read: the rest are absent */
            flags_left &= (uint16_t)~field->flag;
        }
        if (!is_present(field, flags))
            continue;
        if (field->type == CODEC_BIT) {
            if (bit == NO_OPEN_OCTET) {
                if (len - *pos < 1)
                    return PROTO_ERR_TRUNCATED;
                octet = in[(*pos)++];
                bit = 0;
            }
            *(bool *)slot = (octet >> bit++) & 1u;
            continue;
        }
        bit = NO_OPEN_OCTET; /* any other field ends a run of bits */

        unsigned width = wire_width[field->type];
        if (len - *pos < width)
            return PROTO_ERR_TRUNCATED;
        uint64_t value = get_be(in + *pos, width);
        *pos += width;

        switch (field->type) {
        case CODEC_OCTET:
            *slot = (uint8_t)value;
            break;
        case CODEC_SHORT:
            *(uint16_t *)(void *)slot = (uint16_t)value;
            break;
        case CODEC_LONG:
            *(uint32_t *)(void *)slot = (uint32_t)value;
            break;
        case CODEC_LONGLONG:
            *(uint64_t *)(void *)slot = value;
            break;
        case CODEC_SHORTSTR:
        case CODEC_LONGSTR:
        case CODEC_TABLE: {
            struct proto_bytes *bytes = (struct proto_bytes *)(void *)slot;
            if (len - *pos < value)
                return PROTO_ERR_TRUNCATED;
            bytes->ptr = in + *pos;
            bytes->len = (uint32_t)value;
            *pos += (size_t)value;
            if (field->type == CODEC_TABLE) {
                int rc = table_validate(*bytes);
                if (rc < 0)
                    return rc;
            }
            break;
        }
        default:
            return PROTO_ERR_UNKNOWN_METHOD; /* corrupt descriptor: refuse rather than guess */
        }
    }
    return 0;
}

/* Invariant: *pos <= cap throughout. */
int codec_write_fields(const struct codec_field *fields, size_t count, uint16_t flags,
                       const uint8_t *base, uint8_t *out, size_t cap, size_t *pos)
{
    unsigned bit = NO_OPEN_OCTET;
    size_t octet_at = 0;

    for (size_t i = 0; i < count; i++) {
        const struct codec_field *field = &fields[i];
        const uint8_t *slot = base + field->offset;

        if (!is_present(field, flags))
            continue;
        if (field->type == CODEC_BIT) {
            if (bit == NO_OPEN_OCTET) {
                if (cap - *pos < 1)
                    return PROTO_ERR_NO_SPACE;
                octet_at = (*pos)++;
                out[octet_at] = 0;
                bit = 0;
            }
            if (*(const bool *)slot)
                out[octet_at] |= (uint8_t)(1u << bit);
            bit++;
            continue;
        }
        bit = NO_OPEN_OCTET;

        const struct proto_bytes *bytes = NULL;
        uint64_t value;
        switch (field->type) {
        case CODEC_OCTET:
            value = *slot;
            break;
        case CODEC_SHORT:
            value = *(const uint16_t *)(const void *)slot;
            break;
        case CODEC_LONG:
            value = *(const uint32_t *)(const void *)slot;
            break;
        case CODEC_LONGLONG:
            value = *(const uint64_t *)(const void *)slot;
            break;
        case CODEC_SHORTSTR:
        case CODEC_LONGSTR:
        case CODEC_TABLE:
            bytes = (const struct proto_bytes *)(const void *)slot;
            value = bytes->len;
            if (field->type == CODEC_SHORTSTR && value > UINT8_MAX)
                return PROTO_ERR_TOO_LONG;
            break;
        default:
            return PROTO_ERR_UNKNOWN_METHOD;
        }

        unsigned width = wire_width[field->type];
        size_t body = bytes != NULL ? bytes->len : 0;
        if (cap - *pos < width || cap - *pos - width < body)
            return PROTO_ERR_NO_SPACE;
        put_be(out + *pos, value, width);
        *pos += width;
        if (body > 0)
            memcpy(out + *pos, bytes->ptr, body);
        *pos += body;
    }
    return 0;
}

const struct codec_method *codec_find_method(uint32_t id)
{
    size_t low = 0, high = codec_method_count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (codec_methods[mid].id == id)
            return &codec_methods[mid];
        if (codec_methods[mid].id < id)
            low = mid + 1;
        else
            high = mid;
    }
    return NULL;
}

static const struct codec_class *find_class(uint16_t id)
{
    for (size_t i = 0; i < codec_class_count; i++)
        if (codec_classes[i].id == id)
            return &codec_classes[i];
    return NULL;
}

int spec_method_decode(const uint8_t *payload, size_t len, struct spec_method *out)
{
    memset(out, 0, sizeof(*out));
    if (codec_hot_decode(payload, len, out) == 0)
        return 0;
    if (len < METHOD_PREFIX_SIZE)
        return PROTO_ERR_TRUNCATED;

    uint32_t id = (uint32_t)get_be(payload, METHOD_PREFIX_SIZE);
    const struct codec_method *method = codec_find_method(id);
    if (method == NULL)
        return PROTO_ERR_UNKNOWN_METHOD;
    out->id = id;

    size_t pos = METHOD_PREFIX_SIZE;
    int rc = codec_read_fields(method->fields, method->field_count, 0, (uint8_t *)&out->args,
                               payload, len, &pos);
    if (rc < 0)
        return rc;
    return pos == len ? 0 : PROTO_ERR_TRUNCATED;
}

long spec_method_encode(const struct spec_method *m, uint8_t *out, size_t cap)
{
    long hot = codec_hot_encode(m, out, cap);
    if (hot != CODEC_HOT_FALLBACK)
        return hot;
    const struct codec_method *method = codec_find_method(m->id);
    if (method == NULL)
        return PROTO_ERR_UNKNOWN_METHOD;
    if (cap < METHOD_PREFIX_SIZE)
        return PROTO_ERR_NO_SPACE;
    put_be(out, m->id, METHOD_PREFIX_SIZE);

    size_t pos = METHOD_PREFIX_SIZE;
    int rc = codec_write_fields(method->fields, method->field_count, 0,
                                (const uint8_t *)&m->args, out, cap, &pos);
    return rc < 0 ? rc : (long)pos;
}

const char *spec_method_name(uint32_t id)
{
    const struct codec_method *method = codec_find_method(id);
    return method != NULL ? method->name : NULL;
}

bool spec_method_has_content(uint32_t id)
{
    const struct codec_method *method = codec_find_method(id);
    return method != NULL && method->has_content;
}

bool spec_method_is_known(uint32_t id)
{
    return codec_find_method(id) != NULL;
}

static const struct codec_reply_code *find_reply_code(uint16_t code)
{
    for (size_t i = 0; i < codec_reply_code_count; i++)
        if (codec_reply_codes[i].code == code)
            return &codec_reply_codes[i];
    return NULL;
}

bool spec_reply_code_is_hard(uint16_t code)
{
    const struct codec_reply_code *reply = find_reply_code(code);
    return reply != NULL && reply->hard;
}

const char *spec_reply_code_name(uint16_t code)
{
    const struct codec_reply_code *reply = find_reply_code(code);
    return reply != NULL ? reply->name : NULL;
}

int spec_content_header_decode(const uint8_t *payload, size_t len, struct spec_content_header *out)
{
    memset(out, 0, sizeof(*out));
    if (len < CONTENT_HEADER_FIXED_SIZE)
        return PROTO_ERR_TRUNCATED;
    out->class_id = (uint16_t)get_be(payload, 2);
    out->weight = (uint16_t)get_be(payload + 2, 2);
    out->body_size = get_be(payload + 4, 8);
    uint16_t flags = (uint16_t)get_be(payload + 12, 2);

    if (flags & PROPERTY_CONTINUATION)
        return PROTO_ERR_TRUNCATED;
    const struct codec_class *cls = find_class(out->class_id);
    if (cls == NULL)
        return PROTO_ERR_UNKNOWN_METHOD;
    out->props.flags = flags & cls->property_mask;

    size_t pos = CONTENT_HEADER_FIXED_SIZE;
    int rc = codec_read_fields(cls->properties, cls->property_count, out->props.flags,
                               (uint8_t *)&out->props, payload, len, &pos);
    if (rc < 0)
        return rc;
    return pos == len ? 0 : PROTO_ERR_TRUNCATED;
}

long spec_content_header_encode(const struct spec_content_header *h, uint8_t *out, size_t cap)
{
    const struct codec_class *cls = find_class(h->class_id);
    if (cls == NULL)
        return PROTO_ERR_UNKNOWN_METHOD;
    if (cap < CONTENT_HEADER_FIXED_SIZE)
        return PROTO_ERR_NO_SPACE;

    uint16_t flags = h->props.flags & cls->property_mask;
    put_be(out, h->class_id, 2);
    put_be(out + 2, h->weight, 2);
    put_be(out + 4, h->body_size, 8);
    put_be(out + 12, flags, 2);

    size_t pos = CONTENT_HEADER_FIXED_SIZE;
    int rc = codec_write_fields(cls->properties, cls->property_count, flags,
                                (const uint8_t *)&h->props, out, cap, &pos);
    return rc < 0 ? rc : (long)pos;
}
