/* tests/unit/protocol/test_table.c: field tables and arrays, read in place and written. */
#include <math.h>
#include "helpers.h"
#include "table.h"

struct field {
    const char *key;
    struct table_value value;
};

static const uint8_t byte_run[] = {0, 1, 2, 0xCE, 0xFF, 0, 'x'};
static const uint8_t nested_table[] = {1, 'n', 'b', 0xFF};          /* {n: b -1} */
static const uint8_t nested_array[] = {'u', 0x12, 0x34, 'V', 't', 1}; /* [u 0x1234, V, t true] */

/* One field of every type, with values at the edges of their ranges. */
static size_t all_types(struct field *out)
{
    size_t n = 0;
#define FIELD(k, t, member, val) \
    out[n++] = (struct field){k, {.type = t, .v.member = val}}
    FIELD("bool-true", TABLE_BOOL, boolean, true);
    FIELD("bool-false", TABLE_BOOL, boolean, false);
    FIELD("int8", TABLE_INT8, i8, INT8_MIN);
    FIELD("uint8", TABLE_UINT8, u8, UINT8_MAX);
    FIELD("int16", TABLE_INT16, i16, INT16_MIN);
    FIELD("uint16", TABLE_UINT16, u16, UINT16_MAX);
    FIELD("int32", TABLE_INT32, i32, INT32_MIN);
    FIELD("uint32", TABLE_UINT32, u32, UINT32_MAX);
    FIELD("int64", TABLE_INT64, i64, INT64_MIN);
    FIELD("uint64", TABLE_UINT64, u64, UINT64_MAX);
    FIELD("float", TABLE_FLOAT, f32, -1.5e-30f);
    FIELD("float-nan", TABLE_FLOAT, f32, NAN);
    FIELD("double", TABLE_DOUBLE, f64, 1e300);
    FIELD("double-inf", TABLE_DOUBLE, f64, -INFINITY);
    out[n++] = (struct field){"decimal", {.type = TABLE_DECIMAL, .v.decimal = {3, 0xFEDCBA98}}};
    FIELD("longstr", TABLE_LONGSTR, bytes, ((struct proto_bytes){(const uint8_t *)"hi\0there", 8}));
    FIELD("bytes", TABLE_BYTES, bytes, ((struct proto_bytes){byte_run, sizeof(byte_run)}));
    FIELD("empty", TABLE_LONGSTR, bytes, ((struct proto_bytes){NULL, 0}));
    FIELD("timestamp", TABLE_TIMESTAMP, u64, 1700000000);
    out[n++] = (struct field){"void", {.type = TABLE_VOID}};
    FIELD("array", TABLE_ARRAY, bytes, ((struct proto_bytes){nested_array, sizeof(nested_array)}));
    FIELD("table", TABLE_TABLE, bytes, ((struct proto_bytes){nested_table, sizeof(nested_table)}));
    FIELD("", TABLE_UINT8, u8, 7); /* RabbitMQ accepts an empty key, so do we */
#undef FIELD
    return n;
}

/* Encodes fields into buf; boundaries[i] is the length after field i. */
static void encode_fields(struct table_buf *buf, const struct field *fields, size_t count,
                          size_t *boundaries)
{
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(table_buf_put_field(buf, fields[i].key, strlen(fields[i].key),
                                             &fields[i].value), 0);
        if (boundaries != NULL)
            boundaries[i] = buf->len;
    }
}

static struct proto_bytes contents_of(const struct table_buf *buf)
{
    return (struct proto_bytes){buf->data, (uint32_t)buf->len};
}

static void every_type_round_trips(void **state)
{
    (void)state;
    struct field fields[32];
    size_t count = all_types(fields);
    struct table_buf buf = {0};
    encode_fields(&buf, fields, count, NULL);

    uint8_t *copy = exact_copy(buf.data, buf.len);
    struct proto_bytes table = {copy, (uint32_t)buf.len};
    assert_int_equal(table_validate(table), 0);

    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    table_iter_init(&it, table);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(table_next(&it, &key, &value), 1);
        assert_bytes_equal(key, bytes_of(fields[i].key));
        assert_true(table_value_equal(&value, &fields[i].value));
        if (value.type == TABLE_LONGSTR && value.v.bytes.len > 0)
            assert_true(value.v.bytes.ptr > copy && value.v.bytes.ptr < copy + buf.len);
    }
    assert_int_equal(table_next(&it, &key, &value), 0);
    assert_int_equal(table_next(&it, &key, &value), 0);
    free(copy);
    table_buf_free(&buf);
    assert_null(buf.data);
    assert_int_equal(buf.len, 0);
}

static void array_elements_round_trip(void **state)
{
    (void)state;
    struct field fields[32];
    size_t count = all_types(fields);
    struct table_buf buf = {0};
    for (size_t i = 0; i < count; i++)
        assert_int_equal(table_buf_put_value(&buf, &fields[i].value), 0);

    struct proto_bytes array = contents_of(&buf);
    assert_int_equal(array_validate(array), 0);
    struct table_iter it;
    struct table_value value;
    table_iter_init(&it, array);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(array_next(&it, &value), 1);
        assert_true(table_value_equal(&value, &fields[i].value));
    }
    assert_int_equal(array_next(&it, &value), 0);
    table_buf_free(&buf);
}

/* Wire bytes written by hand from the spec and RabbitMQ's field-type table. */
static void encodes_the_exact_wire_bytes(void **state)
{
    (void)state;
    const uint8_t golden[] = {
        1, 'a', 'I', 0xFF, 0xFF, 0xFF, 0xFE,                    /* a: I -2 */
        1, 'b', 'S', 0, 0, 0, 2, 'x', 'y',                      /* b: S "xy" */
        1, 'c', 't', 1,                                         /* c: t true */
        1, 'd', 'd', 0x3F, 0xF0, 0, 0, 0, 0, 0, 0,              /* d: d 1.0 */
        1, 'e', 'f', 0x3F, 0x80, 0, 0,                          /* e: f 1.0 */
        1, 'g', 'D', 2, 0, 0, 0x30, 0x39,                       /* g: D 123.45 */
        1, 'h', 's', 0x80, 0x00,                                /* h: s -32768 */
        1, 'i', 'A', 0, 0, 0, 5, 'B', 9, 'V', 'b', 0x85,        /* i: [B 9, V, b -123] */
        1, 'j', 'F', 0, 0, 0, 4, 1, 'k', 'B', 1,                /* j: {k: B 1} */
    };
    const uint8_t table[] = {1, 'k', 'B', 1};
    struct table_buf buf = {0};
    struct table_value value;

#define PUT(k, ...) \
    do { value = (struct table_value)__VA_ARGS__; \
         assert_int_equal(table_buf_put_field(&buf, k, 1, &value), 0); } while (0)
    PUT("a", {.type = TABLE_INT32, .v.i32 = -2});
    PUT("b", {.type = TABLE_LONGSTR, .v.bytes = {(const uint8_t *)"xy", 2}});
    PUT("c", {.type = TABLE_BOOL, .v.boolean = true});
    PUT("d", {.type = TABLE_DOUBLE, .v.f64 = 1.0});
    PUT("e", {.type = TABLE_FLOAT, .v.f32 = 1.0f});
    PUT("g", {.type = TABLE_DECIMAL, .v.decimal = {2, 12345}});
    PUT("h", {.type = TABLE_INT16, .v.i16 = INT16_MIN});
#undef PUT
    struct table_buf inner = {0};
    value = (struct table_value){.type = TABLE_UINT8, .v.u8 = 9};
    assert_int_equal(table_buf_put_value(&inner, &value), 0);
    value = (struct table_value){.type = TABLE_VOID};
    assert_int_equal(table_buf_put_value(&inner, &value), 0);
    value = (struct table_value){.type = TABLE_INT8, .v.i8 = -123};
    assert_int_equal(table_buf_put_value(&inner, &value), 0);
    value = (struct table_value){.type = TABLE_ARRAY, .v.bytes = contents_of(&inner)};
    assert_int_equal(table_buf_put_field(&buf, "i", 1, &value), 0);
    value = (struct table_value){.type = TABLE_TABLE, .v.bytes = {table, sizeof(table)}};
    assert_int_equal(table_buf_put_field(&buf, "j", 1, &value), 0);

    assert_int_equal(buf.len, sizeof(golden));
    assert_memory_equal(buf.data, golden, sizeof(golden));

    struct table_value found;
    assert_int_equal(table_find(contents_of(&buf), "g", &found), 1);
    assert_int_equal(found.v.decimal.scale, 2);
    assert_int_equal(found.v.decimal.value, 12345);
    assert_int_equal(table_find(contents_of(&buf), "i", &found), 1);
    assert_int_equal(array_validate(found.v.bytes), 0);
    table_buf_free(&inner);
    table_buf_free(&buf);
}

/* Walks a table or array and everything inside it; returns the number of scalar values. */
static size_t walk(struct proto_bytes contents, bool is_table, unsigned depth)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    size_t scalars = 0;
    int rc;

    assert_true(depth <= PROTO_MAX_TABLE_DEPTH);
    table_iter_init(&it, contents);
    while ((rc = is_table ? table_next(&it, &key, &value) : array_next(&it, &value)) > 0) {
        if (value.type == TABLE_TABLE || value.type == TABLE_ARRAY)
            scalars += walk(value.v.bytes, value.type == TABLE_TABLE, depth + 1);
        else
            scalars++;
    }
    assert_int_equal(rc, 0);
    return scalars;
}

/* Wraps contents in `levels` levels of nesting, alternating tables and arrays (or only arrays),
 * each level adding one scalar beside the nested value. The result is table contents. */
static void nest(struct table_buf *out, size_t levels, bool arrays_only)
{
    struct table_buf level = {0};
    struct table_value scalar = {.type = TABLE_UINT16, .v.u16 = 0xBEEF};
    bool inner_is_table = true;

    assert_int_equal(table_buf_put_field(&level, "leaf", 4, &scalar), 0);
    for (size_t i = 0; i < levels; i++) {
        bool as_table = !arrays_only && i % 2 == 1;
        struct table_buf next = {0};
        struct table_value child = {.type = inner_is_table ? TABLE_TABLE : TABLE_ARRAY,
                                    .v.bytes = contents_of(&level)};
        if (as_table) {
            assert_int_equal(table_buf_put_field(&next, "n", 1, &child), 0);
            assert_int_equal(table_buf_put_field(&next, "s", 1, &scalar), 0);
        } else {
            assert_int_equal(table_buf_put_value(&next, &child), 0);
            assert_int_equal(table_buf_put_value(&next, &scalar), 0);
        }
        table_buf_free(&level);
        level = next;
        inner_is_table = as_table;
    }
    struct table_value top = {.type = inner_is_table ? TABLE_TABLE : TABLE_ARRAY,
                              .v.bytes = contents_of(&level)};
    assert_int_equal(table_buf_put_field(out, "top", 3, &top), 0);
    table_buf_free(&level);
}

static void nested_tables_and_arrays_round_trip(void **state)
{
    (void)state;
    struct table_buf buf = {0};
    nest(&buf, 12, false);
    assert_int_equal(table_validate(contents_of(&buf)), 0);
    assert_int_equal(walk(contents_of(&buf), true, 1), 13);
    table_buf_free(&buf);
}

static void depth_limit_is_exact(void **state)
{
    (void)state;
    /* nest(levels) puts the leaf table levels + 2 deep, counting the outermost as 1. */
    size_t deepest_allowed = PROTO_MAX_TABLE_DEPTH - 2;
    for (int arrays_only = 0; arrays_only <= 1; arrays_only++) {
        struct table_buf ok = {0}, deep = {0};
        nest(&ok, deepest_allowed, arrays_only);
        nest(&deep, deepest_allowed + 1, arrays_only);
        assert_int_equal(table_validate(contents_of(&ok)), 0);
        assert_int_equal(walk(contents_of(&ok), true, 1), deepest_allowed + 1);
        assert_int_equal(table_validate(contents_of(&deep)), PROTO_ERR_TOO_DEEP);
        table_buf_free(&ok);
        table_buf_free(&deep);
    }
}

static void depth_bomb_is_rejected_without_deep_recursion(void **state)
{
    (void)state;
    /* 1 000 000 arrays, each the only element of its parent: {b: [[[[...]]]]}. */
    const size_t levels = 1000000, header = 5;
    size_t len = 3 + levels * header;
    uint8_t *bomb = malloc(len);
    assert_non_null(bomb);
    bomb[0] = 1;
    bomb[1] = 'b';
    for (size_t i = 0; i < levels; i++) {
        uint8_t *p = bomb + 2 + i * header;
        uint32_t inner = (uint32_t)((levels - 1 - i) * header);
        p[0] = 'A';
        p[1] = (uint8_t)(inner >> 24);
        p[2] = (uint8_t)(inner >> 16);
        p[3] = (uint8_t)(inner >> 8);
        p[4] = (uint8_t)inner;
    }
    len -= 1; /* the innermost array is empty: no trailing byte */
    assert_int_equal(table_validate((struct proto_bytes){bomb, (uint32_t)len}), PROTO_ERR_TOO_DEEP);
    assert_int_equal(array_validate((struct proto_bytes){bomb + 2, (uint32_t)(len - 2)}),
                     PROTO_ERR_TOO_DEEP);
    free(bomb);
}

static void truncation_at_every_length_is_caught(void **state)
{
    (void)state;
    struct field fields[32];
    size_t count = all_types(fields), boundaries[32];
    struct table_buf buf = {0};
    encode_fields(&buf, fields, count, boundaries);

    size_t next_boundary = 0;
    for (size_t len = 0; len < buf.len; len++) {
        uint8_t *copy = exact_copy(buf.data, len);
        int rc = table_validate((struct proto_bytes){copy, (uint32_t)len});
        bool at_boundary = len == 0 || (next_boundary < count && boundaries[next_boundary] == len);
        if (len > 0 && at_boundary)
            next_boundary++;
        assert_int_equal(rc, at_boundary ? 0 : PROTO_ERR_BAD_TABLE);
        free(copy);
    }
    table_buf_free(&buf);
}

static void check_table(const uint8_t *wire, size_t len, int expected)
{
    uint8_t *copy = exact_copy(wire, len);
    assert_int_equal(table_validate((struct proto_bytes){copy, (uint32_t)len}), expected);
    free(copy);
}

static void malformed_tables_are_rejected(void **state)
{
    (void)state;
    const uint8_t key_overrun[] = {5, 'a', 'b'};
    const uint8_t key_without_value[] = {1, 'a'};
    const uint8_t unknown_type[] = {1, 'a', 'Z', 0};
    const uint8_t spec_only_type[] = {1, 'a', 'U', 0, 1}; /* 0-9-1 spec's int16; RabbitMQ: no */
    const uint8_t zero_type[] = {1, 'a', 0};
    const uint8_t fixed_cut[] = {1, 'a', 'I', 0, 0};
    const uint8_t decimal_cut[] = {1, 'a', 'D', 2, 0, 0, 0};
    const uint8_t string_overrun[] = {1, 'a', 'S', 0, 0, 0, 5, 'x'};
    const uint8_t string_huge[] = {1, 'a', 'S', 0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    const uint8_t bytes_overrun[] = {1, 'a', 'x', 0, 0, 1, 0};
    const uint8_t table_overrun[] = {1, 'a', 'F', 0, 0, 0, 9, 1, 'b', 'V'};
    const uint8_t inner_key_overrun[] = {1, 'a', 'F', 0, 0, 0, 2, 9, 'b'};
    const uint8_t inner_unknown_type[] = {1, 'a', 'F', 0, 0, 0, 3, 1, 'b', '?'};
    const uint8_t array_overrun[] = {1, 'a', 'A', 0, 0, 0, 3, 'I', 0, 0};
    const uint8_t array_inner_cut[] = {1, 'a', 'A', 0, 0, 0, 2, 'I', 0, 'V'};
    const uint8_t array_unknown_type[] = {1, 'a', 'A', 0, 0, 0, 1, 'q'};

    check_table(key_overrun, sizeof(key_overrun), PROTO_ERR_BAD_TABLE);
    check_table(key_without_value, sizeof(key_without_value), PROTO_ERR_BAD_TABLE);
    check_table(unknown_type, sizeof(unknown_type), PROTO_ERR_FIELD_TYPE);
    check_table(spec_only_type, sizeof(spec_only_type), PROTO_ERR_FIELD_TYPE);
    check_table(zero_type, sizeof(zero_type), PROTO_ERR_FIELD_TYPE);
    check_table(fixed_cut, sizeof(fixed_cut), PROTO_ERR_BAD_TABLE);
    check_table(decimal_cut, sizeof(decimal_cut), PROTO_ERR_BAD_TABLE);
    check_table(string_overrun, sizeof(string_overrun), PROTO_ERR_BAD_TABLE);
    check_table(string_huge, sizeof(string_huge), PROTO_ERR_BAD_TABLE);
    check_table(bytes_overrun, sizeof(bytes_overrun), PROTO_ERR_BAD_TABLE);
    check_table(table_overrun, sizeof(table_overrun), PROTO_ERR_BAD_TABLE);
    check_table(inner_key_overrun, sizeof(inner_key_overrun), PROTO_ERR_BAD_TABLE);
    check_table(inner_unknown_type, sizeof(inner_unknown_type), PROTO_ERR_FIELD_TYPE);
    check_table(array_overrun, sizeof(array_overrun), PROTO_ERR_BAD_TABLE);
    check_table(array_inner_cut, sizeof(array_inner_cut), PROTO_ERR_BAD_TABLE);
    check_table(array_unknown_type, sizeof(array_unknown_type), PROTO_ERR_FIELD_TYPE);

    const uint8_t bad_array[] = {'I', 0, 0, 0};
    assert_int_equal(array_validate((struct proto_bytes){bad_array, 4}), PROTO_ERR_BAD_TABLE);
}

static void an_iterator_error_is_sticky(void **state)
{
    (void)state;
    const uint8_t wire[] = {1, 'a', 'B', 1, 1, 'b', 'S', 0, 0, 0, 9};
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;

    table_iter_init(&it, (struct proto_bytes){wire, sizeof(wire)});
    assert_int_equal(table_next(&it, &key, &value), 1);
    assert_int_equal(table_next(&it, &key, &value), PROTO_ERR_BAD_TABLE);
    assert_int_equal(table_next(&it, &key, &value), PROTO_ERR_BAD_TABLE);

    struct table_iter zero = {0};
    assert_int_equal(table_next(&zero, &key, &value), 0);
    assert_int_equal(array_next(&zero, &value), 0);
    assert_int_equal(table_validate((struct proto_bytes){NULL, 0}), 0);
    assert_int_equal(array_validate((struct proto_bytes){NULL, 0}), 0);
}

static void find_stops_at_the_key_or_the_first_fault(void **state)
{
    (void)state;
    const uint8_t wire[] = {2, 'x', '1', 'B', 1, 1, 'x', 'B', 2, 1, 'y', 'Q'};
    struct proto_bytes table = {wire, sizeof(wire)};
    struct table_value value;

    assert_int_equal(table_find(table, "x1", &value), 1);
    assert_int_equal(value.v.u8, 1);
    assert_int_equal(table_find(table, "x", &value), 1);
    assert_int_equal(value.v.u8, 2);
    assert_int_equal(table_find(table, "y", &value), PROTO_ERR_FIELD_TYPE);
    assert_int_equal(table_find(table, "absent", &value), PROTO_ERR_FIELD_TYPE);
    assert_int_equal(table_find((struct proto_bytes){wire, 9}, "absent", &value), 0);
}

static void integers_convert_and_others_do_not(void **state)
{
    (void)state;
    struct field fields[32];
    size_t count = all_types(fields);
    int64_t out;

    for (size_t i = 0; i < count; i++) {
        const struct table_value *v = &fields[i].value;
        bool expected = strchr("bBsuIilT", v->type) != NULL; /* L holds UINT64_MAX here */
        assert_int_equal(table_value_to_int(v, &out), expected);
    }
    struct table_value v = {.type = TABLE_INT64, .v.i64 = INT64_MIN};
    assert_true(table_value_to_int(&v, &out));
    assert_true(out == INT64_MIN);
    v = (struct table_value){.type = TABLE_UINT64, .v.u64 = INT64_MAX};
    assert_true(table_value_to_int(&v, &out));
    assert_true(out == INT64_MAX);
    v = (struct table_value){.type = TABLE_INT8, .v.i8 = -5};
    assert_true(table_value_to_int(&v, &out));
    assert_true(out == -5);
    v = (struct table_value){.type = TABLE_UINT32, .v.u32 = UINT32_MAX};
    assert_true(table_value_to_int(&v, &out));
    assert_true(out == UINT32_MAX);
}

static void equality_compares_type_and_contents(void **state)
{
    (void)state;
    char one[] = "abc", two[] = "abc";
    struct table_value a = {.type = TABLE_LONGSTR, .v.bytes = bytes_of(one)};
    struct table_value b = {.type = TABLE_LONGSTR, .v.bytes = bytes_of(two)};
    assert_true(table_value_equal(&a, &b));
    b.type = TABLE_BYTES;
    assert_false(table_value_equal(&a, &b));
    two[2] = 'd';
    b.type = TABLE_LONGSTR;
    assert_false(table_value_equal(&a, &b));

    struct table_value i = {.type = TABLE_INT32, .v.i32 = -1};
    struct table_value u = {.type = TABLE_UINT32, .v.u32 = UINT32_MAX};
    assert_false(table_value_equal(&i, &u));
    u.type = TABLE_INT32;
    assert_true(table_value_equal(&i, &u));
    struct table_value void_a = {.type = TABLE_VOID}, void_b = {.type = TABLE_VOID};
    assert_true(table_value_equal(&void_a, &void_b));
    struct table_value zero = {.type = TABLE_DOUBLE, .v.f64 = 0.0};
    struct table_value minus_zero = {.type = TABLE_DOUBLE, .v.f64 = -0.0};
    assert_false(table_value_equal(&zero, &minus_zero));
}

/* A table written with nested values in place is byte for byte the one written level by
 * level with copies. */
static void nested_values_written_in_place_equal_copied_ones(void **state)
{
    (void)state;
    struct table_value u = {.type = TABLE_UINT64};
    u.v.u64 = 7;
    /* copied: {"a": u64 7, "list": [{"x": "y"}, 7], "t": {}} */
    struct table_buf inner = {0}, list = {0}, copied = {0};
    assert_int_equal(table_buf_put_string(&inner, "x", proto_bytes_of("y")), 0);
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){inner.data, (uint32_t)inner.len};
    assert_int_equal(table_buf_put_value(&list, &v), 0);
    assert_int_equal(table_buf_put_value(&list, &u), 0);
    assert_int_equal(table_buf_put_field(&copied, "a", 1, &u), 0);
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(&copied, "list", 4, &v), 0);
    v = (struct table_value){.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){NULL, 0};
    assert_int_equal(table_buf_put_field(&copied, "t", 1, &v), 0);
    /* in place */
    struct table_buf placed = {0};
    size_t outer, element, empty;
    assert_int_equal(table_buf_put_field(&placed, "a", 1, &u), 0);
    assert_int_equal(table_buf_begin_nested(&placed, "list", TABLE_ARRAY, &outer), 0);
    assert_int_equal(table_buf_begin_nested(&placed, NULL, TABLE_TABLE, &element), 0);
    assert_int_equal(table_buf_put_string(&placed, "x", proto_bytes_of("y")), 0);
    assert_int_equal(table_buf_end_nested(&placed, element), 0);
    assert_int_equal(table_buf_put_value(&placed, &u), 0);
    assert_int_equal(table_buf_end_nested(&placed, outer), 0);
    assert_int_equal(table_buf_begin_nested(&placed, "t", TABLE_TABLE, &empty), 0);
    assert_int_equal(table_buf_end_nested(&placed, empty), 0);
    assert_int_equal(placed.len, copied.len);
    assert_memory_equal(placed.data, copied.data, copied.len);
    assert_int_equal(table_validate((struct proto_bytes){placed.data, (uint32_t)placed.len}), 0);
    /* only tables and arrays nest; a key too long is refused */
    assert_int_equal(table_buf_begin_nested(&placed, "s", TABLE_LONGSTR, &empty), PROTO_ERR_FIELD_TYPE);
    char long_key[300];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(table_buf_begin_nested(&placed, long_key, TABLE_TABLE, &empty), PROTO_ERR_TOO_LONG);
    assert_int_equal(placed.len, copied.len);
    table_buf_free(&inner);
    table_buf_free(&list);
    table_buf_free(&copied);
    table_buf_free(&placed);
}

static void buffer_refuses_bad_input_and_keeps_its_contents(void **state)
{
    (void)state;
    char key[257];
    memset(key, 'k', sizeof(key));
    struct table_buf buf = {0};
    struct table_value value = {.type = TABLE_BOOL, .v.boolean = true};

    assert_int_equal(table_buf_put_field(&buf, key, 255, &value), 0);
    size_t len = buf.len;
    assert_int_equal(len, 1 + 255 + 2);
    assert_int_equal(table_buf_put_field(&buf, key, 256, &value), PROTO_ERR_TOO_LONG);
    assert_int_equal(buf.len, len);

    struct table_value bad = {.type = 'Z'};
    assert_int_equal(table_buf_put_field(&buf, "z", 1, &bad), PROTO_ERR_FIELD_TYPE);
    assert_int_equal(table_buf_put_value(&buf, &bad), PROTO_ERR_FIELD_TYPE);
    assert_int_equal(buf.len, len);
    assert_int_equal(table_validate(contents_of(&buf)), 0);

    for (int i = 0; i < 10000; i++)
        assert_int_equal(table_buf_put_field(&buf, "n", 1, &value), 0);
    assert_int_equal(buf.len, len + 10000 * 4);
    assert_true(buf.cap >= buf.len);
    assert_int_equal(table_validate(contents_of(&buf)), 0);
    table_buf_free(&buf);
    table_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips),
        cmocka_unit_test(array_elements_round_trip),
        cmocka_unit_test(encodes_the_exact_wire_bytes),
        cmocka_unit_test(nested_tables_and_arrays_round_trip),
        cmocka_unit_test(depth_limit_is_exact),
        cmocka_unit_test(depth_bomb_is_rejected_without_deep_recursion),
        cmocka_unit_test(truncation_at_every_length_is_caught),
        cmocka_unit_test(malformed_tables_are_rejected),
        cmocka_unit_test(an_iterator_error_is_sticky),
        cmocka_unit_test(find_stops_at_the_key_or_the_first_fault),
        cmocka_unit_test(integers_convert_and_others_do_not),
        cmocka_unit_test(equality_compares_type_and_contents),
        cmocka_unit_test(buffer_refuses_bad_input_and_keeps_its_contents),
        cmocka_unit_test(nested_values_written_in_place_equal_copied_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
