/* protocol/table.h: AMQP field tables and arrays, with every type RabbitMQ sends or accepts.
 * Tables stay in their encoded form (struct proto_bytes holding the contents WITHOUT the
 * 4-byte length prefix); readers iterate over them with bounds checks on every read, so a
 * header table passes through the broker untouched and is never rebuilt unless changed. */
#ifndef WARREN_TABLE_H
#define WARREN_TABLE_H

#include <stdbool.h>
#include "proto.h"

/* Field-value type octets, as RabbitMQ reads and writes them. */
enum table_type {
    TABLE_BOOL = 't',
    TABLE_INT8 = 'b',
    TABLE_UINT8 = 'B',
    TABLE_INT16 = 's',
    TABLE_UINT16 = 'u',
    TABLE_INT32 = 'I',
    TABLE_UINT32 = 'i',
    TABLE_INT64 = 'l',
    TABLE_UINT64 = 'L',
    TABLE_FLOAT = 'f',
    TABLE_DOUBLE = 'd',
    TABLE_DECIMAL = 'D',
    TABLE_LONGSTR = 'S',
    TABLE_ARRAY = 'A',
    TABLE_TIMESTAMP = 'T',
    TABLE_TABLE = 'F',
    TABLE_VOID = 'V',
    TABLE_BYTES = 'x',
};

/* One decoded value. For S and x, `bytes` is the string; for F and A it is the nested
 * table's or array's encoded contents (no length prefix). Borrowed from the input. */
struct table_value {
    uint8_t type;
    union {
        bool boolean;
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64; /* also TABLE_TIMESTAMP */
        float f32;
        double f64;
        struct {
            uint8_t scale;
            uint32_t value;
        } decimal;
        struct proto_bytes bytes;
    } v;
};

/* Cursor over an encoded table or array. Zero-initialised is an empty, finished cursor. */
struct table_iter {
    const uint8_t *pos;
    const uint8_t *end;
};

/* Checks a whole table (contents, no length prefix) recursively: every length in bounds,
 * every type known, nesting at most PROTO_MAX_TABLE_DEPTH. Returns 0 or a negative proto_error. */
int table_validate(struct proto_bytes table);

/* Same for an array's contents. */
int array_validate(struct proto_bytes array);

/* Starts iterating over a table's or an array's contents. */
void table_iter_init(struct table_iter *it, struct proto_bytes contents);

/* Next table field. Returns 1 and fills key/value, 0 at the end, or a negative proto_error.
 * Nested F/A values are returned as bytes, not descended into. */
int table_next(struct table_iter *it, struct proto_bytes *key, struct table_value *value);

/* Next array element: 1, 0 at the end, or a negative proto_error. */
int array_next(struct table_iter *it, struct table_value *value);

/* Looks up key (NUL-terminated) in a table. Returns 1 and fills out when found, 0 when absent,
 * or a negative proto_error when the table is malformed before the key is reached. */
int table_find(struct proto_bytes table, const char *key, struct table_value *out);

/* Looks up key as a long string and copies it out NUL-terminated: true when it is there, a
 * long string, shorter than cap and free of zero bytes; else false (out untouched). */
bool table_find_cstring(struct proto_bytes table, const char *key, char *out, size_t cap);

/* When value holds any integer type (b B s u I i l L T), stores it in *out and returns true;
 * false for other types and for an L or T value above INT64_MAX. */
bool table_value_to_int(const struct table_value *value, int64_t *out);

/* True when both values have the same type and the same contents (bytes compared exactly). */
bool table_value_equal(const struct table_value *a, const struct table_value *b);

/* A growable encode buffer; zero-initialised is empty. The caller owns data (free it). */
struct table_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Appends one table field (shortstr key + typed value). Returns 0, PROTO_ERR_TOO_LONG for a
 * key over 255 bytes, or -ENOMEM style PROTO_ERR_NO_SPACE when allocation fails. */
int table_buf_put_field(struct table_buf *buf, const char *key, size_t key_len,
                        const struct table_value *value);

/* Appends a longstr field (key NUL-terminated). Returns 0 or a negative proto_error. */
int table_buf_put_string(struct table_buf *buf, const char *key, struct proto_bytes value);

/* Appends a boolean field (key NUL-terminated). Returns 0 or a negative proto_error. */
int table_buf_put_bool(struct table_buf *buf, const char *key, bool value);

/* Appends one array element (typed value). Returns 0 or a negative proto_error. */
int table_buf_put_value(struct table_buf *buf, const struct table_value *value);

/* Nested values written in place: begin appends the key (NULL for an array element), the type
 * (TABLE_TABLE or TABLE_ARRAY) and room for the length, and stores in *mark where that length
 * goes; whatever is appended to buf next is the value's contents, until end patches the length
 * in. Large nested values (snapshots) so cost no copy per level. Both return 0 or a negative
 * proto_error (end: PROTO_ERR_TOO_LONG for contents over 4 GiB). */
int table_buf_begin_nested(struct table_buf *buf, const char *key, uint8_t type, size_t *mark);
int table_buf_end_nested(struct table_buf *buf, size_t mark);

/* Makes room for extra more bytes at once (a size known ahead). 0 or PROTO_ERR_NO_SPACE. */
int table_buf_reserve(struct table_buf *buf, size_t extra);

/* Releases buf->data and resets buf to empty. */
void table_buf_free(struct table_buf *buf);

#endif
