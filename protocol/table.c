/* protocol/table.c: reads field tables and arrays in place (bounds-checked, never copied),
 * validates them to a bounded depth, and appends fields to a growable encode buffer.
 *
 * Wire layout (all integers big-endian):
 *   table   = *(key value)        key = 1-byte length + bytes
 *   array   = *value
 *   value   = type octet + payload; payload is fixed-width for t b B s u I i l L f d D T V,
 *             and a 4-byte length + bytes for S x A F (A and F hold array / table contents). */
#include <stdlib.h>
#include <string.h>
#include "table.h"

#define LENGTH_PREFIX_SIZE 4
#define INITIAL_CAPACITY 64

/* Payload bytes after the type octet: the fixed width, or the length prefix of S x A F.
 * Returns -1 for a type octet RabbitMQ does not know. */
static int payload_width(uint8_t type)
{
    switch (type) {
    case TABLE_VOID:
        return 0;
    case TABLE_BOOL:
    case TABLE_INT8:
    case TABLE_UINT8:
        return 1;
    case TABLE_INT16:
    case TABLE_UINT16:
        return 2;
    case TABLE_INT32:
    case TABLE_UINT32:
    case TABLE_FLOAT:
        return 4;
    case TABLE_DECIMAL:
        return 5;
    case TABLE_INT64:
    case TABLE_UINT64:
    case TABLE_DOUBLE:
    case TABLE_TIMESTAMP:
        return 8;
    case TABLE_LONGSTR:
    case TABLE_BYTES:
    case TABLE_ARRAY:
    case TABLE_TABLE:
        return LENGTH_PREFIX_SIZE;
    default:
        return -1;
    }
}

static bool has_length_prefix(uint8_t type)
{
    return type == TABLE_LONGSTR || type == TABLE_BYTES || type == TABLE_ARRAY ||
           type == TABLE_TABLE;
}

static uint64_t get_be(const uint8_t *in, int width)
{
    uint64_t value = 0;
    for (int i = 0; i < width; i++)
        value = (value << 8) | in[i];
    return value;
}

static void put_be(uint8_t *out, uint64_t value, int width)
{
    for (int i = width; i > 0; i--) {
        out[i - 1] = (uint8_t)value;
        value >>= 8;
    }
}

/* Reads one typed value at *pos (which must be < end) and advances *pos past it. */
static int read_value(const uint8_t **pos, const uint8_t *end, struct table_value *value)
{
    const uint8_t *p = *pos;
    uint8_t type = *p++;
    int width = payload_width(type);

    if (width < 0)
        return PROTO_ERR_FIELD_TYPE;
    if ((size_t)(end - p) < (size_t)width)
        return PROTO_ERR_BAD_TABLE;

    uint64_t raw = get_be(p, width);
    p += width;
    memset(value, 0, sizeof(*value));
    value->type = type;

    switch (type) {
    case TABLE_BOOL:
        value->v.boolean = raw != 0;
        break;
    case TABLE_INT8:
        value->v.i8 = (int8_t)raw;
        break;
    case TABLE_UINT8:
        value->v.u8 = (uint8_t)raw;
        break;
    case TABLE_INT16:
        value->v.i16 = (int16_t)raw;
        break;
    case TABLE_UINT16:
        value->v.u16 = (uint16_t)raw;
        break;
    case TABLE_INT32:
        value->v.i32 = (int32_t)raw;
        break;
    case TABLE_UINT32:
        value->v.u32 = (uint32_t)raw;
        break;
    case TABLE_INT64:
        value->v.i64 = (int64_t)raw;
        break;
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        value->v.u64 = raw;
        break;
    case TABLE_FLOAT: {
        uint32_t bits = (uint32_t)raw;
        memcpy(&value->v.f32, &bits, sizeof(bits));
        break;
    }
    case TABLE_DOUBLE:
        memcpy(&value->v.f64, &raw, sizeof(raw));
        break;
    case TABLE_DECIMAL:
        value->v.decimal.scale = (uint8_t)(raw >> 32);
        value->v.decimal.value = (uint32_t)raw;
        break;
    default:
        if (has_length_prefix(type)) {
            if ((size_t)(end - p) < raw)
                return PROTO_ERR_BAD_TABLE;
            value->v.bytes.ptr = p;
            value->v.bytes.len = (uint32_t)raw;
            p += raw;
        }
        break;
    }
    *pos = p;
    return 1;
}

void table_iter_init(struct table_iter *it, struct proto_bytes contents)
{
    it->pos = contents.ptr;
    it->end = contents.len > 0 ? contents.ptr + contents.len : contents.ptr;
}

/* On error the iterator does not move, so every later call reports the same error. */
int table_next(struct table_iter *it, struct proto_bytes *key, struct table_value *value)
{
    if (it->pos == it->end)
        return 0;

    const uint8_t *pos = it->pos;
    uint8_t key_len = *pos++;
    if ((size_t)(it->end - pos) <= key_len) /* the key, then at least a type octet */
        return PROTO_ERR_BAD_TABLE;
    key->ptr = pos;
    key->len = key_len;
    pos += key_len;

    int rc = read_value(&pos, it->end, value);
    if (rc > 0)
        it->pos = pos;
    return rc;
}

int array_next(struct table_iter *it, struct table_value *value)
{
    if (it->pos == it->end)
        return 0;

    const uint8_t *pos = it->pos;
    int rc = read_value(&pos, it->end, value);
    if (rc > 0)
        it->pos = pos;
    return rc;
}

/* depth counts the table or array being checked, the outermost being 1. The recursion is
 * bounded by PROTO_MAX_TABLE_DEPTH whatever the input says. */
static int validate(struct proto_bytes contents, bool is_table, unsigned depth)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;

    if (depth > PROTO_MAX_TABLE_DEPTH)
        return PROTO_ERR_TOO_DEEP;
    table_iter_init(&it, contents);
    for (;;) {
        int rc = is_table ? table_next(&it, &key, &value) : array_next(&it, &value);
        if (rc <= 0)
            return rc;
        if (value.type == TABLE_TABLE || value.type == TABLE_ARRAY) {
            rc = validate(value.v.bytes, value.type == TABLE_TABLE, depth + 1);
            if (rc < 0)
                return rc;
        }
    }
}

int table_validate(struct proto_bytes table)
{
    return validate(table, true, 1);
}

int array_validate(struct proto_bytes array)
{
    return validate(array, false, 1);
}

int table_find(struct proto_bytes table, const char *key, struct table_value *out)
{
    struct table_iter it;
    struct proto_bytes name;
    struct table_value value;
    size_t key_len = strlen(key);
    int rc;

    table_iter_init(&it, table);
    while ((rc = table_next(&it, &name, &value)) > 0) {
        if (name.len == key_len && memcmp(name.ptr, key, key_len) == 0) {
            *out = value;
            return 1;
        }
    }
    return rc;
}

bool table_find_cstring(struct proto_bytes table, const char *key, char *out, size_t cap)
{
    struct table_value v;
    if (table_find(table, key, &v) != 1 || v.type != TABLE_LONGSTR || v.v.bytes.len >= cap ||
        (v.v.bytes.len && memchr(v.v.bytes.ptr, 0, v.v.bytes.len)))
        return false;
    if (v.v.bytes.len)
        memcpy(out, v.v.bytes.ptr, v.v.bytes.len);
    out[v.v.bytes.len] = '\0';
    return true;
}

bool table_value_to_int(const struct table_value *value, int64_t *out)
{
    switch (value->type) {
    case TABLE_INT8:
        *out = value->v.i8;
        return true;
    case TABLE_UINT8:
        *out = value->v.u8;
        return true;
    case TABLE_INT16:
        *out = value->v.i16;
        return true;
    case TABLE_UINT16:
        *out = value->v.u16;
        return true;
    case TABLE_INT32:
        *out = value->v.i32;
        return true;
    case TABLE_UINT32:
        *out = value->v.u32;
        return true;
    case TABLE_INT64:
        *out = value->v.i64;
        return true;
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        if (value->v.u64 > INT64_MAX)
            return false;
        *out = (int64_t)value->v.u64;
        return true;
    default:
        return false;
    }
}

bool table_value_equal(const struct table_value *a, const struct table_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TABLE_VOID:
        return true;
    case TABLE_BOOL:
        return a->v.boolean == b->v.boolean;
    case TABLE_INT8:
    case TABLE_UINT8:
        return a->v.u8 == b->v.u8;
    case TABLE_INT16:
    case TABLE_UINT16:
        return a->v.u16 == b->v.u16;
    case TABLE_INT32:
    case TABLE_UINT32:
        return a->v.u32 == b->v.u32;
    case TABLE_FLOAT: /* bit patterns, so a NaN equals its own copy */
        return memcmp(&a->v.f32, &b->v.f32, sizeof(a->v.f32)) == 0;
    case TABLE_DOUBLE:
        return memcmp(&a->v.f64, &b->v.f64, sizeof(a->v.f64)) == 0;
    case TABLE_INT64:
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        return a->v.u64 == b->v.u64;
    case TABLE_DECIMAL:
        return a->v.decimal.scale == b->v.decimal.scale && a->v.decimal.value == b->v.decimal.value;
    default:
        if (!has_length_prefix(a->type))
            return false;
        return a->v.bytes.len == b->v.bytes.len &&
               (a->v.bytes.len == 0 || memcmp(a->v.bytes.ptr, b->v.bytes.ptr, a->v.bytes.len) == 0);
    }
}

/* Makes room for extra more bytes. */
static int reserve(struct table_buf *buf, size_t extra)
{
    if (extra > SIZE_MAX - buf->len)
        return PROTO_ERR_NO_SPACE;
    size_t need = buf->len + extra;
    if (need <= buf->cap)
        return 0;

    size_t cap = buf->cap > 0 ? buf->cap : INITIAL_CAPACITY;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *data = realloc(buf->data, cap);
    if (data == NULL)
        return PROTO_ERR_NO_SPACE;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

/* The raw big-endian payload of a fixed-width value (everything but S x A F and V). */
static uint64_t fixed_payload(const struct table_value *value)
{
    switch (value->type) {
    case TABLE_BOOL:
        return value->v.boolean ? 1 : 0;
    case TABLE_INT8:
    case TABLE_UINT8:
        return value->v.u8;
    case TABLE_INT16:
    case TABLE_UINT16:
        return value->v.u16;
    case TABLE_INT32:
    case TABLE_UINT32:
        return value->v.u32;
    case TABLE_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &value->v.f32, sizeof(bits));
        return bits;
    }
    case TABLE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &value->v.f64, sizeof(bits));
        return bits;
    }
    case TABLE_DECIMAL:
        return (uint64_t)value->v.decimal.scale << 32 | value->v.decimal.value;
    default: /* l L T */
        return value->v.u64;
    }
}

int table_buf_put_value(struct table_buf *buf, const struct table_value *value)
{
    int width = payload_width(value->type);
    if (width < 0)
        return PROTO_ERR_FIELD_TYPE;

    bool prefixed = has_length_prefix(value->type);
    size_t body = prefixed ? value->v.bytes.len : 0;
    int rc = reserve(buf, 1 + (size_t)width + body);
    if (rc < 0)
        return rc;

    uint8_t *out = buf->data + buf->len;
    out[0] = value->type;
    put_be(out + 1, prefixed ? body : fixed_payload(value), width);
    if (body > 0)
        memcpy(out + 1 + width, value->v.bytes.ptr, body);
    buf->len += 1 + (size_t)width + body;
    return 0;
}

int table_buf_put_field(struct table_buf *buf, const char *key, size_t key_len,
                        const struct table_value *value)
{
    if (key_len > UINT8_MAX)
        return PROTO_ERR_TOO_LONG;
    int rc = reserve(buf, 1 + key_len);
    if (rc < 0)
        return rc;

    size_t start = buf->len;
    buf->data[buf->len++] = (uint8_t)key_len;
    if (key_len > 0)
        memcpy(buf->data + buf->len, key, key_len);
    buf->len += key_len;
    rc = table_buf_put_value(buf, value);
    if (rc < 0)
        buf->len = start; /* never leave a key without its value */
    return rc;
}

int table_buf_reserve(struct table_buf *buf, size_t extra)
{
    return reserve(buf, extra);
}

int table_buf_begin_nested(struct table_buf *buf, const char *key, uint8_t type, size_t *mark)
{
    size_t key_len = key ? strlen(key) : 0;
    if (key_len > UINT8_MAX)
        return PROTO_ERR_TOO_LONG;
    if (type != TABLE_TABLE && type != TABLE_ARRAY)
        return PROTO_ERR_FIELD_TYPE;
    int rc = reserve(buf, (key ? 1 + key_len : 0) + 1 + LENGTH_PREFIX_SIZE);
    if (rc < 0)
        return rc;
    if (key) {
        buf->data[buf->len++] = (uint8_t)key_len;
        memcpy(buf->data + buf->len, key, key_len);
        buf->len += key_len;
    }
    buf->data[buf->len++] = type;
    *mark = buf->len;
    memset(buf->data + buf->len, 0, LENGTH_PREFIX_SIZE);
    buf->len += LENGTH_PREFIX_SIZE;
    return 0;
}

int table_buf_end_nested(struct table_buf *buf, size_t mark)
{
    size_t n = buf->len - mark - LENGTH_PREFIX_SIZE;
    if (n > UINT32_MAX)
        return PROTO_ERR_TOO_LONG;
    uint8_t *p = buf->data + mark;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    return 0;
}

void table_buf_free(struct table_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

int table_buf_put_string(struct table_buf *buf, const char *key, struct proto_bytes value)
{
    struct table_value v = {.type = TABLE_LONGSTR};
    v.v.bytes = value;
    return table_buf_put_field(buf, key, strlen(key), &v);
}

int table_buf_put_bool(struct table_buf *buf, const char *key, bool value)
{
    struct table_value v = {.type = TABLE_BOOL, .v.boolean = value};
    return table_buf_put_field(buf, key, strlen(key), &v);
}
