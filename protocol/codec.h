/* protocol/codec.h: the descriptor types shared by the generated tables (spec.c) and the one
 * interpreter that walks them (codec.c). Internal to protocol/: other layers use spec.h. */
#ifndef WARREN_CODEC_H
#define WARREN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire types of method arguments and properties. A timestamp travels as a longlong. */
enum codec_type {
    CODEC_BIT,      /* packed with the bits around it into one octet, bit 0 first */
    CODEC_OCTET,
    CODEC_SHORT,
    CODEC_LONG,
    CODEC_LONGLONG,
    CODEC_SHORTSTR, /* 1-byte length + bytes */
    CODEC_LONGSTR,  /* 4-byte length + bytes */
    CODEC_TABLE,    /* 4-byte length + field table contents */
};

/* One argument or property: its wire type, its presence flag (properties only; 0 for method
 * arguments, which are always present) and where it lives in the struct being filled. */
struct codec_field {
    uint8_t type;
    uint16_t flag;
    uint16_t offset;
};

/* One method; fields describe struct spec_<class>_<method>, at offset 0 of spec_method.args. */
struct codec_method {
    uint32_t id;
    const char *name;
    const struct codec_field *fields;
    uint8_t field_count;
    bool has_content;
};

/* One class; properties, when present, describe struct spec_basic_properties. */
struct codec_class {
    uint16_t id;
    const struct codec_field *properties;
    uint8_t property_count;
    uint16_t property_mask; /* the flag bits that name a property; any other bit carries nothing */
};

struct codec_reply_code {
    uint16_t code;
    bool hard;
    const char *name;
};

/* Generated tables (spec.c). Methods are sorted by id, classes by id, reply codes by code. */
extern const struct codec_method codec_methods[];
extern const size_t codec_method_count;
extern const struct codec_class codec_classes[];
extern const size_t codec_class_count;
extern const struct codec_reply_code codec_reply_codes[];
extern const size_t codec_reply_code_count;

/* Fills the struct at base from in[*pos..len) as fields describe, advancing *pos. A field whose
 * flag is set in its descriptor but not in flags is absent from the wire and left untouched.
 * Consecutive bits share an octet (bit 0 first, 8 per octet); any other field ends the run.
 * Strings and tables borrow from in; tables are checked with table_validate.
 * Returns 0, PROTO_ERR_TRUNCATED or a table error. */
int codec_read_fields(const struct codec_field *fields, size_t count, uint16_t flags,
                      uint8_t *base, const uint8_t *in, size_t len, size_t *pos);

/* The inverse: writes the struct at base into out[*pos..cap), advancing *pos. Returns 0,
 * PROTO_ERR_NO_SPACE or PROTO_ERR_TOO_LONG (a shortstr over 255 bytes). */
int codec_write_fields(const struct codec_field *fields, size_t count, uint16_t flags,
                       const uint8_t *base, uint8_t *out, size_t cap, size_t *pos);

/* The descriptor of a method id, or NULL when it is not in the spec. */
const struct codec_method *codec_find_method(uint32_t id);

struct spec_method;

/* Fixed-layout codecs for the per-message methods (codec_hot.c), tried before the
 * interpreter. They answer exactly as it would, or return CODEC_HOT_FALLBACK for anything
 * they do not handle (another method, an error, a length that does not fit) and leave the
 * answer to it. */
#define CODEC_HOT_FALLBACK 1
/* Decodes a well-formed basic.publish or basic.ack into out (id and args; the caller cleared
 * out). Returns 0 or CODEC_HOT_FALLBACK. */
int codec_hot_decode(const uint8_t *payload, size_t len, struct spec_method *out);
/* Encodes basic.deliver or basic.get-ok into out. Returns the length written (> 4) or
 * CODEC_HOT_FALLBACK. */
long codec_hot_encode(const struct spec_method *m, uint8_t *out, size_t cap);

#endif
