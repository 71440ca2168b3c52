/* tests/unit/model/test_router_headers.c: the headers exchange as RabbitMQ matches it:
 * x-match all/any/all-with-x/any-with-x, x- arguments ignored otherwise, void arguments
 * matching on presence, values compared by type (integers by value), invalid x-match refused. */
#include "helpers.h"

static char q1, q2;

static struct table_value int_value(uint8_t type, int64_t number)
{
    struct table_value value = {.type = type};
    switch (type) {
    case TABLE_INT8: value.v.i8 = (int8_t)number; break;
    case TABLE_UINT8: value.v.u8 = (uint8_t)number; break;
    case TABLE_INT16: value.v.i16 = (int16_t)number; break;
    case TABLE_UINT16: value.v.u16 = (uint16_t)number; break;
    case TABLE_INT32: value.v.i32 = (int32_t)number; break;
    case TABLE_UINT32: value.v.u32 = (uint32_t)number; break;
    case TABLE_INT64: value.v.i64 = number; break;
    default: value.v.u64 = (uint64_t)number; break; /* L, T */
    }
    return value;
}

static struct table_value void_value(void)
{
    return (struct table_value){.type = TABLE_VOID};
}

static struct table_value bytes_value(uint8_t type, const char *text)
{
    struct table_value value = {.type = type};
    value.v.bytes = bytes_of(text);
    return value;
}

/* One headers router with q1 bound by `binding` (table contents); routes `headers`. */
struct fixture {
    struct router *router;
    struct table_buf binding;
    struct table_buf headers;
    struct route_set set;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->router = router_create(ROUTER_HEADERS);
    *state = f;
    return f->router == NULL;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    router_destroy(f->router);
    table_buf_free(&f->binding);
    table_buf_free(&f->headers);
    route_set_free(&f->set);
    free(f);
    return 0;
}

static int bind_q1(struct fixture *f)
{
    return router_bind(f->router, &q1, (const uint8_t *)"", 0, table_of(&f->binding));
}

/* True when the current headers route to q1. */
static bool routes(struct fixture *f)
{
    route_set_clear(&f->set);
    assert_int_equal(router_route(f->router, bytes_of("ignored"), table_of(&f->headers), &f->set), 0);
    return route_set_contains(&f->set, &q1);
}

static void reset_headers(struct fixture *f)
{
    f->headers.len = 0;
}

static void test_all_needs_every_argument(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "format", "pdf");
    put_value(&f->binding, "type", int_value(TABLE_INT32, 7));
    assert_int_equal(bind_q1(f), 0);

    put_longstr(&f->headers, "format", "pdf");
    assert_false(routes(f));
    put_value(&f->headers, "type", int_value(TABLE_INT32, 7));
    assert_true(routes(f));
    put_longstr(&f->headers, "extra", "ignored");
    assert_true(routes(f));

    reset_headers(f);
    put_value(&f->headers, "type", int_value(TABLE_INT32, 7));
    put_longstr(&f->headers, "format", "zip");
    assert_false(routes(f));
}

static void test_explicit_all_is_the_default(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "x-match", "all");
    put_longstr(&f->binding, "a", "1");
    put_longstr(&f->binding, "b", "2");
    assert_int_equal(bind_q1(f), 0);
    put_longstr(&f->headers, "b", "2");
    assert_false(routes(f));
    put_longstr(&f->headers, "a", "1");
    assert_true(routes(f));
}

static void test_any_needs_one_argument(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "x-match", "any");
    put_longstr(&f->binding, "format", "pdf");
    put_longstr(&f->binding, "type", "report");
    assert_int_equal(bind_q1(f), 0);

    assert_false(routes(f));
    put_longstr(&f->headers, "format", "zip");
    assert_false(routes(f));
    put_longstr(&f->headers, "type", "report");
    assert_true(routes(f));
}

static void test_x_arguments_are_ignored_without_with_x(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "x-match", "any");
    put_value(&f->binding, "x-priority", int_value(TABLE_INT8, 1));
    assert_int_equal(bind_q1(f), 0);
    put_value(&f->headers, "x-priority", int_value(TABLE_INT8, 1));
    assert_false(routes(f)); /* any with nothing to match matches nothing */

    /* all (default) with only x- arguments matches everything, even without headers. */
    struct table_buf args = {0};
    put_value(&args, "x-priority", int_value(TABLE_INT8, 1));
    assert_int_equal(router_bind(f->router, &q2, (const uint8_t *)"", 0, table_of(&args)), 0);
    route_set_clear(&f->set);
    assert_int_equal(router_route(f->router, no_bytes(), no_bytes(), &f->set), 0);
    assert_routes(&f->set, 1, &q2);
    table_buf_free(&args);
}

static void test_all_with_x_matches_x_arguments(void **state)
{
    struct fixture *f = *state;
    put_value(&f->binding, "x-priority", int_value(TABLE_INT8, 1));
    put_longstr(&f->binding, "x-match", "all-with-x");
    put_longstr(&f->binding, "a", "1");
    assert_int_equal(bind_q1(f), 0);

    put_longstr(&f->headers, "a", "1");
    assert_false(routes(f));
    /* x-match itself is never matched: the headers need not carry it. */
    put_value(&f->headers, "x-priority", int_value(TABLE_INT64, 1));
    assert_true(routes(f));
}

static void test_any_with_x_matches_x_arguments(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "x-match", "any-with-x");
    put_longstr(&f->binding, "x-origin", "eu");
    assert_int_equal(bind_q1(f), 0);
    put_longstr(&f->headers, "x-match", "any-with-x");
    assert_false(routes(f));
    put_longstr(&f->headers, "x-origin", "eu");
    assert_true(routes(f));
}

static void test_void_argument_matches_presence(void **state)
{
    struct fixture *f = *state;
    put_value(&f->binding, "flag", void_value());
    assert_int_equal(bind_q1(f), 0);
    assert_false(routes(f));
    put_longstr(&f->headers, "flag", "anything");
    assert_true(routes(f));
    reset_headers(f);
    put_value(&f->headers, "flag", int_value(TABLE_INT32, 0));
    assert_true(routes(f));
    reset_headers(f);
    put_value(&f->headers, "flag", void_value());
    assert_true(routes(f));
    reset_headers(f);
    put_value(&f->headers, "flags", void_value());
    assert_false(routes(f));
}

/* A string never equals a number; a longstr equals a byte array with the same bytes (RabbitMQ
 * decodes both to Erlang binaries). */
static void test_types_must_agree(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "n", "1");
    assert_int_equal(bind_q1(f), 0);
    put_value(&f->headers, "n", int_value(TABLE_INT32, 1));
    assert_false(routes(f));
    reset_headers(f);
    put_value(&f->headers, "n", bytes_value(TABLE_BYTES, "1"));
    assert_true(routes(f));
    reset_headers(f);
    put_value(&f->headers, "n", bytes_value(TABLE_BYTES, "2"));
    assert_false(routes(f));
    reset_headers(f);
    put_value(&f->headers, "n", void_value());
    assert_false(routes(f));
    reset_headers(f);
    put_longstr(&f->headers, "n", "1");
    assert_true(routes(f));
}

/* Integers compare by value across widths and signedness, a timestamp among them (RabbitMQ:
 * Erlang integers). */
static void test_integers_compare_by_value(void **state)
{
    struct fixture *f = *state;
    static const struct {
        uint8_t binding_type;
        int64_t binding;
        uint8_t header_type;
        int64_t header;
        bool match;
    } pairs[] = {
        {TABLE_INT8, 1, TABLE_INT64, 1, true},
        {TABLE_INT32, 1, TABLE_INT16, 1, true},
        {TABLE_UINT16, 65535, TABLE_INT32, 65535, true},
        {TABLE_INT8, -1, TABLE_INT64, -1, true},
        {TABLE_INT8, -1, TABLE_UINT8, 255, false},
        {TABLE_INT64, -1, TABLE_UINT64, -1, false}, /* L 2^64-1 is not l -1 */
        {TABLE_UINT64, -1, TABLE_UINT64, -1, true},
        {TABLE_INT32, 2, TABLE_INT32, 3, false},
        {TABLE_INT64, 5, TABLE_TIMESTAMP, 5, true},
        {TABLE_INT64, 5, TABLE_TIMESTAMP, 6, false},
        {TABLE_TIMESTAMP, 5, TABLE_TIMESTAMP, 5, true},
        {TABLE_BOOL, 1, TABLE_INT8, 1, false},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct router *router = router_create(ROUTER_HEADERS);
        f->binding.len = 0;
        reset_headers(f);
        struct table_value binding = int_value(pairs[i].binding_type, pairs[i].binding);
        if (pairs[i].binding_type == TABLE_BOOL)
            binding.v.boolean = true;
        put_value(&f->binding, "n", binding);
        put_value(&f->headers, "n", int_value(pairs[i].header_type, pairs[i].header));
        assert_int_equal(router_bind(router, &q1, (const uint8_t *)"", 0, table_of(&f->binding)), 0);
        route_set_clear(&f->set);
        assert_int_equal(router_route(router, no_bytes(), table_of(&f->headers), &f->set), 0);
        if ((f->set.count == 1) != pairs[i].match)
            fail_msg("pair %zu should %smatch", i, pairs[i].match ? "" : "not ");
        router_destroy(router);
    }
}

static void test_floats_compare_by_value(void **state)
{
    struct fixture *f = *state;
    struct table_value half = {.type = TABLE_FLOAT};
    half.v.f32 = 1.5f;
    put_value(&f->binding, "r", half);
    assert_int_equal(bind_q1(f), 0);
    struct table_value value = {.type = TABLE_DOUBLE};
    value.v.f64 = 1.5;
    put_value(&f->headers, "r", value);
    assert_true(routes(f));
    reset_headers(f);
    value.v.f64 = 1.25;
    put_value(&f->headers, "r", value);
    assert_false(routes(f));
}

/* An integer equals a float or double of the same value, as Erlang's 1 == 1.0 (exactly: no
 * rounding of a large integer, no fraction dropped). */
static void test_integers_equal_floats_of_the_same_value(void **state)
{
    struct fixture *f = *state;
    static const struct {
        uint8_t int_type;
        int64_t integer;
        uint8_t float_type;
        double real;
        bool match;
    } pairs[] = {
        {TABLE_INT32, 1, TABLE_DOUBLE, 1.0, true},
        {TABLE_INT8, 1, TABLE_FLOAT, 1.0, true},
        {TABLE_INT16, -3, TABLE_DOUBLE, -3.0, true},
        {TABLE_UINT32, 7, TABLE_DOUBLE, 7.0, true},
        {TABLE_TIMESTAMP, 1700000000, TABLE_DOUBLE, 1700000000.0, true},
        {TABLE_INT32, 0, TABLE_DOUBLE, -0.0, true},
        {TABLE_INT32, 1, TABLE_DOUBLE, 1.5, false},
        {TABLE_INT32, -1, TABLE_DOUBLE, 1.0, false},
        {TABLE_UINT8, 255, TABLE_DOUBLE, -1.0, false},
        {TABLE_INT64, 9007199254740993, TABLE_DOUBLE, 9007199254740992.0, false}, /* 2^53+1 */
        {TABLE_INT64, INT64_MIN, TABLE_DOUBLE, -9223372036854775808.0, true},
        {TABLE_UINT64, -1, TABLE_DOUBLE, 18446744073709551616.0, false}, /* 2^64-1 vs 2^64 */
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        for (int flip = 0; flip < 2; flip++) {
            struct router *router = router_create(ROUTER_HEADERS);
            f->binding.len = 0;
            reset_headers(f);
            struct table_value real = {.type = pairs[i].float_type};
            if (real.type == TABLE_FLOAT)
                real.v.f32 = (float)pairs[i].real;
            else
                real.v.f64 = pairs[i].real;
            struct table_value integer = int_value(pairs[i].int_type, pairs[i].integer);
            put_value(&f->binding, "n", flip ? real : integer);
            put_value(&f->headers, "n", flip ? integer : real);
            assert_int_equal(router_bind(router, &q1, (const uint8_t *)"", 0, table_of(&f->binding)), 0);
            route_set_clear(&f->set);
            assert_int_equal(router_route(router, no_bytes(), table_of(&f->headers), &f->set), 0);
            if ((f->set.count == 1) != pairs[i].match)
                fail_msg("pair %zu (%s) should %smatch", i, flip ? "float bound" : "integer bound",
                         pairs[i].match ? "" : "not ");
            router_destroy(router);
        }
    }
}

static void test_nested_tables_compare_exactly(void **state)
{
    struct fixture *f = *state;
    struct table_buf inner = {0};
    put_longstr(&inner, "k", "v");
    struct table_value nested = {.type = TABLE_TABLE};
    nested.v.bytes = table_of(&inner);
    put_value(&f->binding, "t", nested);
    assert_int_equal(bind_q1(f), 0);
    put_value(&f->headers, "t", nested);
    assert_true(routes(f));

    reset_headers(f);
    put_longstr(&inner, "k2", "v2");
    nested.v.bytes = table_of(&inner);
    put_value(&f->headers, "t", nested);
    assert_false(routes(f));
    table_buf_free(&inner);
}

static void test_empty_arguments(void **state)
{
    struct fixture *f = *state;
    /* all with nothing to match: everything, including no headers at all. */
    assert_int_equal(bind_q1(f), 0);
    assert_true(routes(f));
    route_set_clear(&f->set);
    assert_int_equal(router_route(f->router, no_bytes(), no_bytes(), &f->set), 0);
    assert_routes(&f->set, 1, &q1);

    struct table_buf any = {0};
    put_longstr(&any, "x-match", "any");
    assert_int_equal(router_bind(f->router, &q2, (const uint8_t *)"", 0, table_of(&any)), 0);
    route_set_clear(&f->set);
    assert_int_equal(router_route(f->router, no_bytes(), no_bytes(), &f->set), 0);
    assert_routes(&f->set, 1, &q1);
    table_buf_free(&any);
}

static void test_invalid_x_match_is_refused(void **state)
{
    struct fixture *f = *state;
    static const struct table_value bad[] = {
        {.type = TABLE_LONGSTR, .v.bytes = {(const uint8_t *)"ALL", 3}},
        {.type = TABLE_LONGSTR, .v.bytes = {(const uint8_t *)"", 0}},
        {.type = TABLE_LONGSTR, .v.bytes = {(const uint8_t *)"all-with-y", 10}},
        {.type = TABLE_BYTES, .v.bytes = {(const uint8_t *)"all", 3}},
        {.type = TABLE_INT32, .v.i32 = 1},
        {.type = TABLE_VOID},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->binding.len = 0;
        put_value(&f->binding, "x-match", bad[i]);
        assert_int_equal(bind_q1(f), -EINVAL);
    }
    /* A malformed table: a field whose value runs past the end. */
    const uint8_t truncated[] = {1, 'a', 'S', 0, 0, 0, 9, 'x'};
    assert_int_equal(router_bind(f->router, &q1, (const uint8_t *)"", 0,
                                 (struct proto_bytes){truncated, sizeof(truncated)}), -EINVAL);
    assert_int_equal(router_binding_count(f->router), 0);
    assert_false(router_has_destination(f->router, &q1));
}

static void test_malformed_headers_read_as_far_as_valid(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "x-match", "any");
    put_longstr(&f->binding, "a", "1");
    assert_int_equal(bind_q1(f), 0);
    put_longstr(&f->headers, "a", "1");
    const uint8_t tail[] = {1, 'b', 'S', 0, 0, 0, 9};
    assert_int_equal(table_buf_put_field(&f->headers, "z", 1, &(struct table_value){.type = TABLE_VOID}), 0);
    memcpy(f->headers.data + f->headers.len - 3, tail, 3); /* corrupt: still readable up to a */
    assert_true(routes(f));
    const uint8_t garbage[] = {5, 'a'};
    route_set_clear(&f->set);
    assert_int_equal(router_route(f->router, no_bytes(),
                                  (struct proto_bytes){garbage, sizeof(garbage)}, &f->set), 0);
    assert_routes(&f->set, 0);
}

static void test_first_occurrence_and_long_tables(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "dup", "first");
    put_longstr(&f->binding, "late", "yes");
    assert_int_equal(bind_q1(f), 0);

    char name[16];
    put_longstr(&f->headers, "dup", "first");
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        put_longstr(&f->headers, name, "filler");
    }
    put_longstr(&f->headers, "dup", "second");
    put_longstr(&f->headers, "late", "yes"); /* past the decoded-on-the-stack fields */
    assert_true(routes(f));

    reset_headers(f);
    put_longstr(&f->headers, "dup", "second");
    put_longstr(&f->headers, "dup", "first");
    put_longstr(&f->headers, "late", "yes");
    assert_false(routes(f));
}

static void test_identity_uses_argument_bytes(void **state)
{
    struct fixture *f = *state;
    put_longstr(&f->binding, "a", "1");
    assert_int_equal(bind_q1(f), 0);
    assert_int_equal(bind_q1(f), 1);
    /* Same meaning, different bytes (explicit x-match): a second binding, as in RabbitMQ. */
    put_longstr(&f->binding, "x-match", "all");
    assert_int_equal(bind_q1(f), 0);
    assert_int_equal(router_binding_count(f->router), 2);
    put_longstr(&f->headers, "a", "1");
    assert_true(routes(f));
    assert_int_equal(f->set.count, 1);
    assert_int_equal(router_unbind(f->router, &q1, (const uint8_t *)"", 0, table_of(&f->binding)), 0);
    assert_int_equal(router_binding_count(f->router), 1);
    assert_true(routes(f));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_all_needs_every_argument),
        T(test_explicit_all_is_the_default),
        T(test_any_needs_one_argument),
        T(test_x_arguments_are_ignored_without_with_x),
        T(test_all_with_x_matches_x_arguments),
        T(test_any_with_x_matches_x_arguments),
        T(test_void_argument_matches_presence),
        T(test_types_must_agree),
        T(test_integers_compare_by_value),
        T(test_floats_compare_by_value),
        T(test_integers_equal_floats_of_the_same_value),
        T(test_nested_tables_compare_exactly),
        T(test_empty_arguments),
        T(test_invalid_x_match_is_refused),
        T(test_malformed_headers_read_as_far_as_valid),
        T(test_first_occurrence_and_long_tables),
        T(test_identity_uses_argument_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
