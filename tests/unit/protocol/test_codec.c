/* tests/unit/protocol/test_codec.c: the generated spec tables and the interpreter that walks
 * them: every method and the content header, round trips, exact wire bytes, malformed input. */
#include <stdio.h>
#include "helpers.h"
#include "codec.h"
#include "spec.h"
#include "table.h"

/* Bit patterns chosen so that every bit field is seen both set and clear, and no pattern
 * reads the same reversed (which would hide a bit-order mistake). */
static const unsigned seeds[] = {0x00, 0xFF, 0x01, 0x2D, 0x96, 0x1B};
#define SEED_COUNT (sizeof(seeds) / sizeof(seeds[0]))

static char long_shortstr[255];
static uint8_t long_longstr[3000];
static struct table_buf sample_table;

static int setup(void **state)
{
    (void)state;
    memset(long_shortstr, 's', sizeof(long_shortstr));
    for (size_t i = 0; i < sizeof(long_longstr); i++)
        long_longstr[i] = (uint8_t)(i * 31);

    struct table_buf inner = {0};
    struct table_value value = {.type = TABLE_LONGSTR, .v.bytes = bytes_of("nested")};
    assert_int_equal(table_buf_put_field(&inner, "x-inner", 7, &value), 0);
    value = (struct table_value){.type = TABLE_INT64, .v.i64 = -42};
    assert_int_equal(table_buf_put_field(&inner, "n", 1, &value), 0);
    value = (struct table_value){.type = TABLE_TABLE,
                                 .v.bytes = {inner.data, (uint32_t)inner.len}};
    assert_int_equal(table_buf_put_field(&sample_table, "x-table", 7, &value), 0);
    value = (struct table_value){.type = TABLE_UINT32, .v.u32 = 60000};
    assert_int_equal(table_buf_put_field(&sample_table, "x-message-ttl", 13, &value), 0);
    table_buf_free(&inner);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    table_buf_free(&sample_table);
    return 0;
}

static struct proto_bytes pick_string(const struct codec_field *field, unsigned i, unsigned seed)
{
    static const char *const short_pool[] = {"", "amq.direct", "q\0null", "routing.key.#"};
    unsigned choice = (i + seed) % 5;

    if (field->type == CODEC_TABLE)
        return seed % 2 ? (struct proto_bytes){NULL, 0}
                        : (struct proto_bytes){sample_table.data, (uint32_t)sample_table.len};
    if (choice == 4)
        return field->type == CODEC_SHORTSTR
                   ? (struct proto_bytes){(const uint8_t *)long_shortstr, sizeof(long_shortstr)}
                   : (struct proto_bytes){long_longstr, sizeof(long_longstr)};
    if (choice == 2)
        return (struct proto_bytes){(const uint8_t *)short_pool[2], 6};
    return bytes_of(short_pool[choice]);
}

/* Fills every argument of a method with a value derived from its position and seed. */
static void fill_method(struct spec_method *m, const struct codec_method *desc, unsigned seed)
{
    memset(m, 0, sizeof(*m));
    m->id = desc->id;
    uint8_t *base = (uint8_t *)&m->args;
    for (unsigned i = 0; i < desc->field_count; i++) {
        const struct codec_field *field = &desc->fields[i];
        void *slot = base + field->offset;
        switch (field->type) {
        case CODEC_BIT:
            *(bool *)slot = (seed >> (i % 8)) & 1u;
            break;
        case CODEC_OCTET:
            *(uint8_t *)slot = (uint8_t)(0xA5 ^ seed ^ i);
            break;
        case CODEC_SHORT:
            *(uint16_t *)slot = (uint16_t)(0xB1C2 ^ (seed * 257) ^ i);
            break;
        case CODEC_LONG:
            *(uint32_t *)slot = 0xD1E2F304u ^ (seed * 0x01010101u) ^ i;
            break;
        case CODEC_LONGLONG:
            *(uint64_t *)slot = 0x8102030405060708ull ^ ((uint64_t)seed << 40) ^ i;
            break;
        default:
            *(struct proto_bytes *)slot = pick_string(field, i, seed);
            break;
        }
    }
}

/* Wire size of a method, computed independently of the encoder. */
static size_t expected_size(const struct spec_method *m, const struct codec_method *desc)
{
    static const size_t widths[] = {0, 1, 2, 4, 8, 1, 4, 4};
    size_t size = 4;
    bool in_bits = false;
    unsigned bits = 0;

    for (unsigned i = 0; i < desc->field_count; i++) {
        const struct codec_field *field = &desc->fields[i];
        if (field->type == CODEC_BIT) {
            if (!in_bits || bits == 8) {
                size++;
                bits = 0;
            }
            in_bits = true;
            bits++;
            continue;
        }
        in_bits = false;
        size += widths[field->type];
        if (field->type >= CODEC_SHORTSTR)
            size += ((const struct proto_bytes *)((const uint8_t *)&m->args + field->offset))->len;
    }
    return size;
}

static void assert_methods_equal(const struct spec_method *a, const struct spec_method *b,
                                 const struct codec_method *desc)
{
    assert_int_equal(a->id, b->id);
    for (unsigned i = 0; i < desc->field_count; i++) {
        const struct codec_field *field = &desc->fields[i];
        const void *x = (const uint8_t *)&a->args + field->offset;
        const void *y = (const uint8_t *)&b->args + field->offset;
        switch (field->type) {
        case CODEC_BIT:
            assert_int_equal(*(const bool *)x, *(const bool *)y);
            break;
        case CODEC_OCTET:
            assert_int_equal(*(const uint8_t *)x, *(const uint8_t *)y);
            break;
        case CODEC_SHORT:
            assert_int_equal(*(const uint16_t *)x, *(const uint16_t *)y);
            break;
        case CODEC_LONG:
            assert_int_equal(*(const uint32_t *)x, *(const uint32_t *)y);
            break;
        case CODEC_LONGLONG:
            assert_true(*(const uint64_t *)x == *(const uint64_t *)y);
            break;
        default:
            assert_bytes_equal(*(const struct proto_bytes *)x, *(const struct proto_bytes *)y);
            break;
        }
    }
}

static void every_method_round_trips(void **state)
{
    (void)state;
    static uint8_t out[8192];

    for (size_t k = 0; k < spec_method_count; k++) {
        const struct codec_method *desc = codec_find_method(spec_method_ids[k]);
        assert_non_null(desc);
        for (size_t s = 0; s < SEED_COUNT; s++) {
            struct spec_method sent, got;
            fill_method(&sent, desc, seeds[s]);
            long n = spec_method_encode(&sent, out, sizeof(out));
            assert_int_equal(n, expected_size(&sent, desc));
            assert_int_equal(out[0] << 8 | out[1], SPEC_METHOD_CLASS(desc->id));
            assert_int_equal(out[2] << 8 | out[3], SPEC_METHOD_INDEX(desc->id));

            uint8_t *copy = exact_copy(out, (size_t)n);
            assert_int_equal(spec_method_decode(copy, (size_t)n, &got), 0);
            assert_methods_equal(&sent, &got, desc);
            free(copy);
        }
    }
}

static void decoded_strings_borrow_from_the_payload(void **state)
{
    (void)state;
    const uint8_t wire[] = {0, 60, 0, 40, 0, 0, 2, 'e', 'x', 2, 'r', 'k', 0};
    struct spec_method m;

    assert_int_equal(spec_method_decode(wire, sizeof(wire), &m), 0);
    assert_ptr_equal(m.args.basic_publish.exchange.ptr, wire + 7);
    assert_ptr_equal(m.args.basic_publish.routing_key.ptr, wire + 10);
}

static void every_truncation_and_trailing_byte_is_rejected(void **state)
{
    (void)state;
    static uint8_t out[8192];

    for (size_t k = 0; k < spec_method_count; k++) {
        const struct codec_method *desc = codec_find_method(spec_method_ids[k]);
        for (size_t s = 0; s < 2; s++) {
            struct spec_method m;
            fill_method(&m, desc, seeds[s + 2]);
            long n = spec_method_encode(&m, out, sizeof(out));
            assert_true(n > 0);
            for (size_t len = 0; len < (size_t)n; len++) {
                uint8_t *copy = exact_copy(out, len);
                assert_int_equal(spec_method_decode(copy, len, &m), PROTO_ERR_TRUNCATED);
                free(copy);
            }
            out[n] = 0;
            assert_int_equal(spec_method_decode(out, (size_t)n + 1, &m), PROTO_ERR_TRUNCATED);
        }
    }
}

static void encoder_never_writes_past_capacity(void **state)
{
    (void)state;
    for (size_t k = 0; k < spec_method_count; k++) {
        const struct codec_method *desc = codec_find_method(spec_method_ids[k]);
        struct spec_method m;
        fill_method(&m, desc, seeds[3]);
        size_t size = expected_size(&m, desc);
        for (size_t cap = 0; cap < size; cap++) {
            uint8_t *out = malloc(cap > 0 ? cap : 1);
            assert_int_equal(spec_method_encode(&m, out, cap), PROTO_ERR_NO_SPACE);
            free(out);
        }
    }
}

/* Wire bytes written by hand from the 0-9-1 spec, independently of the generated tables. */
static void method_wire_bytes_match_the_spec(void **state)
{
    (void)state;
    uint8_t out[128];
    struct spec_method m = {.id = SPEC_BASIC_PUBLISH};
    m.args.basic_publish.exchange = bytes_of("ex");
    m.args.basic_publish.routing_key = bytes_of("rk");
    m.args.basic_publish.mandatory = true;
    const uint8_t publish[] = {0, 60, 0, 40, 0, 0, 2, 'e', 'x', 2, 'r', 'k', 0x01};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(publish));
    assert_memory_equal(out, publish, sizeof(publish));

    /* Five bits share one octet, bit 0 first, and the table after them starts a new one. */
    m = (struct spec_method){.id = SPEC_QUEUE_DECLARE};
    m.args.queue_declare.queue = bytes_of("q");
    m.args.queue_declare.durable = true;
    m.args.queue_declare.auto_delete = true;
    m.args.queue_declare.no_wait = true;
    const uint8_t declare[] = {0, 50, 0, 10, 0, 0, 1, 'q', 0x1A, 0, 0, 0, 0};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(declare));
    assert_memory_equal(out, declare, sizeof(declare));

    /* A bit between two non-bit fields takes an octet of its own. */
    m = (struct spec_method){.id = SPEC_BASIC_DELIVER};
    m.args.basic_deliver.consumer_tag = bytes_of("c");
    m.args.basic_deliver.delivery_tag = 0x0102030405060708ull;
    m.args.basic_deliver.redelivered = true;
    m.args.basic_deliver.exchange = bytes_of("");
    m.args.basic_deliver.routing_key = bytes_of("k");
    const uint8_t deliver[] = {0, 60, 0, 60, 1, 'c', 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0, 1, 'k'};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(deliver));
    assert_memory_equal(out, deliver, sizeof(deliver));

    m = (struct spec_method){.id = SPEC_BASIC_NACK};
    m.args.basic_nack.delivery_tag = 9;
    m.args.basic_nack.requeue = true;
    const uint8_t nack[] = {0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 9, 0x02};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(nack));
    assert_memory_equal(out, nack, sizeof(nack));

    m = (struct spec_method){.id = SPEC_CONNECTION_TUNE};
    m.args.connection_tune.channel_max = 2047;
    m.args.connection_tune.frame_max = 131072;
    m.args.connection_tune.heartbeat = 60;
    const uint8_t tune[] = {0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(tune));
    assert_memory_equal(out, tune, sizeof(tune));

    m = (struct spec_method){.id = SPEC_CONNECTION_BLOCKED};
    m.args.connection_blocked.reason = bytes_of("low on memory");
    const uint8_t blocked[] = {0, 10, 0, 60, 13, 'l', 'o', 'w', ' ', 'o', 'n', ' ',
                               'm', 'e', 'm', 'o', 'r', 'y'};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(blocked));
    assert_memory_equal(out, blocked, sizeof(blocked));

    m = (struct spec_method){.id = SPEC_CONNECTION_UPDATE_SECRET};
    m.args.connection_update_secret.new_secret = bytes_of("tok");
    m.args.connection_update_secret.reason = bytes_of("r");
    const uint8_t update[] = {0, 10, 0, 70, 0, 0, 0, 3, 't', 'o', 'k', 1, 'r'};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(update));
    assert_memory_equal(out, update, sizeof(update));

    m = (struct spec_method){.id = SPEC_TX_COMMIT_OK};
    const uint8_t commit_ok[] = {0, 90, 0, 21};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), sizeof(commit_ok));
    assert_memory_equal(out, commit_ok, sizeof(commit_ok));
}

/* No method of 0-9-1 has more than 8 bits or two separate runs of bits, so the packing rule
 * is pinned down on a descriptor made up for the purpose. */
struct bit_runs {
    bool first[9];
    uint8_t octet;
    bool second[2];
    uint16_t number;
    bool last;
};

#define BIT_AT(member) {CODEC_BIT, 0, offsetof(struct bit_runs, member)}
static const struct codec_field bit_runs_fields[] = {
    BIT_AT(first[0]), BIT_AT(first[1]), BIT_AT(first[2]), BIT_AT(first[3]), BIT_AT(first[4]),
    BIT_AT(first[5]), BIT_AT(first[6]), BIT_AT(first[7]), BIT_AT(first[8]),
    {CODEC_OCTET, 0, offsetof(struct bit_runs, octet)},
    BIT_AT(second[0]), BIT_AT(second[1]),
    {CODEC_SHORT, 0, offsetof(struct bit_runs, number)},
    BIT_AT(last),
};
#undef BIT_AT
#define BIT_RUNS_COUNT (sizeof(bit_runs_fields) / sizeof(bit_runs_fields[0]))

static void bits_pack_eight_per_octet_and_end_at_other_fields(void **state)
{
    (void)state;
    const struct bit_runs sent = {
        .first = {true, false, false, false, false, false, false, true, true},
        .octet = 0x42, .second = {false, true}, .number = 0x1234, .last = true,
    };
    const uint8_t wire[] = {0x81, 0x01, 0x42, 0x02, 0x12, 0x34, 0x01};
    uint8_t out[16];
    size_t pos = 0;

    assert_int_equal(codec_write_fields(bit_runs_fields, BIT_RUNS_COUNT, 0, (const uint8_t *)&sent,
                                        out, sizeof(out), &pos), 0);
    assert_int_equal(pos, sizeof(wire));
    assert_memory_equal(out, wire, sizeof(wire));

    struct bit_runs got;
    memset(&got, 0, sizeof(got));
    pos = 0;
    assert_int_equal(codec_read_fields(bit_runs_fields, BIT_RUNS_COUNT, 0, (uint8_t *)&got,
                                       wire, sizeof(wire), &pos), 0);
    assert_int_equal(pos, sizeof(wire));
    assert_memory_equal(got.first, sent.first, sizeof(sent.first));
    assert_int_equal(got.octet, sent.octet);
    assert_memory_equal(got.second, sent.second, sizeof(sent.second));
    assert_int_equal(got.number, sent.number);
    assert_int_equal(got.last, sent.last);

    for (size_t len = 0; len < sizeof(wire); len++) {
        uint8_t *cut = exact_copy(wire, len);
        pos = 0;
        assert_int_equal(codec_read_fields(bit_runs_fields, BIT_RUNS_COUNT, 0, (uint8_t *)&got,
                                           cut, len, &pos), PROTO_ERR_TRUNCATED);
        free(cut);
        pos = 0;
        assert_int_equal(codec_write_fields(bit_runs_fields, BIT_RUNS_COUNT, 0,
                                            (const uint8_t *)&sent, out, len, &pos),
                         PROTO_ERR_NO_SPACE);
    }
}

static void unknown_methods_are_rejected(void **state)
{
    (void)state;
    const uint8_t ids[][4] = {
        {0, 10, 0, 99}, {0, 30, 0, 10} /* access.request: not in 0-9-1 as RabbitMQ's XML has it */,
        {0, 0, 0, 0},   {0, 60, 0, 41}, {0xFF, 0xFF, 0xFF, 0xFF}, {0, 85, 0, 12},
    };
    struct spec_method m;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        uint8_t wire[16] = {0};
        memcpy(wire, ids[i], 4);
        assert_int_equal(spec_method_decode(wire, sizeof(wire), &m), PROTO_ERR_UNKNOWN_METHOD);
        uint32_t id = SPEC_METHOD_ID(ids[i][0] << 8 | ids[i][1], ids[i][2] << 8 | ids[i][3]);
        assert_false(spec_method_is_known(id));
        assert_null(spec_method_name(id));
        assert_false(spec_method_has_content(id));
    }
    m = (struct spec_method){.id = SPEC_METHOD_ID(30, 10)};
    uint8_t out[64];
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), PROTO_ERR_UNKNOWN_METHOD);
}

static void overlong_lengths_are_rejected(void **state)
{
    (void)state;
    struct spec_method m;
    const uint8_t short_overrun[] = {0, 60, 0, 40, 0, 0, 200, 'e', 'x', 0};
    const uint8_t long_overrun[] = {0, 10, 0, 21, 0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    const uint8_t table_overrun[] = {0, 40, 0, 10, 0, 0, 1, 'e', 1, 't', 0, 0, 0, 0, 9, 0};

    assert_int_equal(spec_method_decode(short_overrun, sizeof(short_overrun), &m),
                     PROTO_ERR_TRUNCATED);
    assert_int_equal(spec_method_decode(long_overrun, sizeof(long_overrun), &m),
                     PROTO_ERR_TRUNCATED);
    assert_int_equal(spec_method_decode(table_overrun, sizeof(table_overrun), &m),
                     PROTO_ERR_TRUNCATED);
}

/* queue.declare whose arguments table holds `args`. */
static int decode_declare_with_arguments(const uint8_t *args, uint32_t len)
{
    uint8_t *wire = malloc(13 + (size_t)len);
    const uint8_t head[] = {0, 50, 0, 10, 0, 0, 1, 'q', 0x02, (uint8_t)(len >> 24),
                            (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    memcpy(wire, head, sizeof(head));
    memcpy(wire + sizeof(head), args, len);
    struct spec_method m;
    int rc = spec_method_decode(wire, sizeof(head) + len, &m);
    if (rc == 0) {
        assert_int_equal(m.id, SPEC_QUEUE_DECLARE);
        assert_true(m.args.queue_declare.durable);
        assert_int_equal(m.args.queue_declare.arguments.len, len);
    }
    free(wire);
    return rc;
}

static void method_tables_are_validated(void **state)
{
    (void)state;
    const uint8_t good[] = {5, 'x', '-', 'm', 'a', 'x', 'I', 0, 0, 0, 10};
    const uint8_t unknown_type[] = {1, 'a', 'Z'};
    const uint8_t inner_overrun[] = {1, 'a', 'S', 0, 0, 0, 1};
    assert_int_equal(decode_declare_with_arguments(good, sizeof(good)), 0);
    assert_int_equal(decode_declare_with_arguments(unknown_type, sizeof(unknown_type)),
                     PROTO_ERR_FIELD_TYPE);
    assert_int_equal(decode_declare_with_arguments(inner_overrun, sizeof(inner_overrun)),
                     PROTO_ERR_BAD_TABLE);

    /* More nested single-field tables than allowed: {a: {a: {a: ...}}} */
    const size_t levels = PROTO_MAX_TABLE_DEPTH + 10, header = 7;
    uint8_t *bomb = malloc(levels * header);
    for (size_t i = 0; i < levels; i++) {
        uint32_t inner = (uint32_t)((levels - 1 - i) * header);
        uint8_t *p = bomb + i * header;
        p[0] = 1;
        p[1] = 'a';
        p[2] = 'F';
        p[3] = (uint8_t)(inner >> 24);
        p[4] = (uint8_t)(inner >> 16);
        p[5] = (uint8_t)(inner >> 8);
        p[6] = (uint8_t)inner;
    }
    assert_int_equal(decode_declare_with_arguments(bomb, (uint32_t)(levels * header)),
                     PROTO_ERR_TOO_DEEP);
    free(bomb);
}

static void encoder_refuses_overlong_shortstr(void **state)
{
    (void)state;
    static char text[300];
    uint8_t out[600];
    memset(text, 'a', sizeof(text));
    struct spec_method m = {.id = SPEC_BASIC_CONSUME_OK};

    m.args.basic_consume_ok.consumer_tag = (struct proto_bytes){(const uint8_t *)text, 255};
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), 4 + 1 + 255);
    m.args.basic_consume_ok.consumer_tag.len = 256;
    assert_int_equal(spec_method_encode(&m, out, sizeof(out)), PROTO_ERR_TOO_LONG);
}

static void ids_names_and_content_flags_come_from_the_spec(void **state)
{
    (void)state;
    assert_int_equal(SPEC_CONNECTION_START_OK, 0x000A000BU);
    assert_int_equal(SPEC_METHOD_ID(10, 11), SPEC_CONNECTION_START_OK);
    assert_int_equal(SPEC_METHOD_CLASS(SPEC_BASIC_PUBLISH), SPEC_CLASS_BASIC);
    assert_int_equal(SPEC_METHOD_INDEX(SPEC_BASIC_PUBLISH), 40);
    assert_int_equal(SPEC_CONFIRM_SELECT, SPEC_METHOD_ID(85, 10));
    assert_int_equal(SPEC_BASIC_RECOVER_ASYNC, SPEC_METHOD_ID(60, 100));
    assert_int_equal(SPEC_CONNECTION_BLOCKED, SPEC_METHOD_ID(10, 60));
    assert_int_equal(SPEC_CONNECTION_UNBLOCKED, SPEC_METHOD_ID(10, 61));
    assert_int_equal(SPEC_CONNECTION_UPDATE_SECRET_OK, SPEC_METHOD_ID(10, 71));
    assert_int_equal(SPEC_CLASS_CONNECTION, 10);
    assert_int_equal(SPEC_CLASS_TX, 90);

    assert_string_equal(spec_method_name(SPEC_BASIC_PUBLISH), "basic.publish");
    assert_string_equal(spec_method_name(SPEC_CONNECTION_UPDATE_SECRET),
                        "connection.update-secret");
    assert_string_equal(spec_method_name(SPEC_BASIC_RECOVER_ASYNC), "basic.recover-async");

    size_t with_content = 0;
    for (size_t k = 0; k < spec_method_count; k++) {
        uint32_t id = spec_method_ids[k];
        if (k > 0)
            assert_true(spec_method_ids[k - 1] < id);
        assert_true(spec_method_is_known(id));
        const char *name = spec_method_name(id);
        assert_non_null(name);
        assert_non_null(strchr(name, '.'));
        with_content += spec_method_has_content(id);
    }
    assert_int_equal(with_content, 4);
    assert_true(spec_method_has_content(SPEC_BASIC_PUBLISH));
    assert_true(spec_method_has_content(SPEC_BASIC_RETURN));
    assert_true(spec_method_has_content(SPEC_BASIC_DELIVER));
    assert_true(spec_method_has_content(SPEC_BASIC_GET_OK));
    /* 60 methods in Debian's extended XML, 4 from the overlay. */
    assert_int_equal(spec_method_count, 64);
}

static void reply_codes_carry_their_class_and_name(void **state)
{
    (void)state;
    assert_int_equal(SPEC_REPLY_SUCCESS, 200);
    assert_int_equal(SPEC_NO_ROUTE, 312);
    assert_int_equal(SPEC_NOT_FOUND, 404);
    assert_int_equal(SPEC_PRECONDITION_FAILED, 406);
    assert_int_equal(SPEC_CONNECTION_FORCED, 320);
    assert_int_equal(SPEC_FRAME_ERROR, 501);

    assert_string_equal(spec_reply_code_name(SPEC_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(spec_reply_code_name(SPEC_NO_ROUTE), "NO_ROUTE");
    assert_string_equal(spec_reply_code_name(SPEC_REPLY_SUCCESS), "REPLY_SUCCESS");
    assert_null(spec_reply_code_name(0));
    assert_null(spec_reply_code_name(999));
    assert_null(spec_reply_code_name(SPEC_FRAME_MIN_SIZE)); /* a constant, not a reply code */

    const uint16_t soft[] = {200, 311, 312, 313, 403, 404, 405, 406};
    const uint16_t hard[] = {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541};
    for (size_t i = 0; i < sizeof(soft) / sizeof(soft[0]); i++) {
        assert_non_null(spec_reply_code_name(soft[i]));
        assert_false(spec_reply_code_is_hard(soft[i]));
    }
    for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
        assert_non_null(spec_reply_code_name(hard[i]));
        assert_true(spec_reply_code_is_hard(hard[i]));
    }
    assert_false(spec_reply_code_is_hard(999));
}

static void full_header(struct spec_content_header *h)
{
    memset(h, 0, sizeof(*h));
    h->class_id = SPEC_CLASS_BASIC;
    h->body_size = 0x0000010000000001ull;
    struct spec_basic_properties *p = &h->props;
    p->flags = SPEC_BASIC_CONTENT_TYPE_FLAG | SPEC_BASIC_CONTENT_ENCODING_FLAG |
               SPEC_BASIC_HEADERS_FLAG | SPEC_BASIC_DELIVERY_MODE_FLAG | SPEC_BASIC_PRIORITY_FLAG |
               SPEC_BASIC_CORRELATION_ID_FLAG | SPEC_BASIC_REPLY_TO_FLAG |
               SPEC_BASIC_EXPIRATION_FLAG | SPEC_BASIC_MESSAGE_ID_FLAG |
               SPEC_BASIC_TIMESTAMP_FLAG | SPEC_BASIC_TYPE_FLAG | SPEC_BASIC_USER_ID_FLAG |
               SPEC_BASIC_APP_ID_FLAG | SPEC_BASIC_RESERVED_FLAG;
    p->content_type = bytes_of("application/json");
    p->content_encoding = bytes_of("gzip");
    p->headers = (struct proto_bytes){sample_table.data, (uint32_t)sample_table.len};
    p->delivery_mode = 2;
    p->priority = 9;
    p->correlation_id = bytes_of("corr-1");
    p->reply_to = bytes_of("amq.rabbitmq.reply-to");
    p->expiration = bytes_of("60000");
    p->message_id = (struct proto_bytes){(const uint8_t *)long_shortstr, 255};
    p->timestamp = 1700000000;
    p->type = bytes_of("order.created");
    p->user_id = bytes_of("guest");
    p->app_id = bytes_of("warren-test");
    p->reserved = bytes_of("cluster");
}

static void assert_headers_equal(const struct spec_content_header *a,
                                 const struct spec_content_header *b)
{
    assert_int_equal(a->class_id, b->class_id);
    assert_int_equal(a->weight, b->weight);
    assert_true(a->body_size == b->body_size);
    assert_int_equal(a->props.flags, b->props.flags);
    assert_bytes_equal(a->props.content_type, b->props.content_type);
    assert_bytes_equal(a->props.content_encoding, b->props.content_encoding);
    assert_bytes_equal(a->props.headers, b->props.headers);
    assert_int_equal(a->props.delivery_mode, b->props.delivery_mode);
    assert_int_equal(a->props.priority, b->props.priority);
    assert_bytes_equal(a->props.correlation_id, b->props.correlation_id);
    assert_bytes_equal(a->props.reply_to, b->props.reply_to);
    assert_bytes_equal(a->props.expiration, b->props.expiration);
    assert_bytes_equal(a->props.message_id, b->props.message_id);
    assert_true(a->props.timestamp == b->props.timestamp);
    assert_bytes_equal(a->props.type, b->props.type);
    assert_bytes_equal(a->props.user_id, b->props.user_id);
    assert_bytes_equal(a->props.app_id, b->props.app_id);
    assert_bytes_equal(a->props.reserved, b->props.reserved);
}

static void header_with_all_properties_round_trips(void **state)
{
    (void)state;
    uint8_t out[1024];
    struct spec_content_header sent, got;
    full_header(&sent);

    long n = spec_content_header_encode(&sent, out, sizeof(out));
    assert_true(n > 14);
    uint8_t *copy = exact_copy(out, (size_t)n);
    assert_int_equal(spec_content_header_decode(copy, (size_t)n, &got), 0);
    assert_headers_equal(&sent, &got);
    assert_true(got.props.headers.ptr > copy && got.props.headers.ptr < copy + n);

    for (size_t len = 0; len < (size_t)n; len++) {
        uint8_t *cut = exact_copy(out, len);
        assert_int_equal(spec_content_header_decode(cut, len, &got), PROTO_ERR_TRUNCATED);
        free(cut);
    }
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        uint8_t *small = malloc(cap > 0 ? cap : 1);
        assert_int_equal(spec_content_header_encode(&sent, small, cap), PROTO_ERR_NO_SPACE);
        free(small);
    }
    out[n] = 0;
    assert_int_equal(spec_content_header_decode(out, (size_t)n + 1, &got), PROTO_ERR_TRUNCATED);
    free(copy);
}

static void header_without_properties_is_fourteen_bytes(void **state)
{
    (void)state;
    uint8_t out[64];
    struct spec_content_header sent = {.class_id = SPEC_CLASS_BASIC, .body_size = 5}, got;
    const uint8_t wire[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0};

    assert_int_equal(spec_content_header_encode(&sent, out, sizeof(out)), sizeof(wire));
    assert_memory_equal(out, wire, sizeof(wire));
    assert_int_equal(spec_content_header_decode(wire, sizeof(wire), &got), 0);
    assert_headers_equal(&sent, &got);
}

static void header_wire_bytes_match_the_spec(void **state)
{
    (void)state;
    uint8_t out[64];
    struct spec_content_header h = {.class_id = SPEC_CLASS_BASIC, .body_size = 300};
    h.props.flags = SPEC_BASIC_CONTENT_TYPE_FLAG | SPEC_BASIC_DELIVERY_MODE_FLAG |
                    SPEC_BASIC_TIMESTAMP_FLAG;
    h.props.content_type = bytes_of("text/plain");
    h.props.delivery_mode = 2;
    h.props.timestamp = 0x0102030405060708ull;
    h.props.app_id = bytes_of("not flagged, not sent");
    const uint8_t wire[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x2C, 0x90, 0x40,
                            10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n',
                            2, 1, 2, 3, 4, 5, 6, 7, 8};

    assert_int_equal(spec_content_header_encode(&h, out, sizeof(out)), sizeof(wire));
    assert_memory_equal(out, wire, sizeof(wire));
    struct spec_content_header got;
    assert_int_equal(spec_content_header_decode(wire, sizeof(wire), &got), 0);
    assert_int_equal(got.props.app_id.len, 0);
    assert_null(got.props.app_id.ptr);
}

static void header_faults_are_rejected(void **state)
{
    (void)state;
    struct spec_content_header h;
    const uint8_t continuation[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 0};
    const uint8_t unused_bit[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02};
    const uint8_t unknown_class[] = {0, 61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t other_class[] = {0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00};
    const uint8_t bad_headers[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x00,
                                   0, 0, 0, 3, 1, 'a', 'Z'};
    const uint8_t long_overrun[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 50, 'x'};

    assert_int_equal(spec_content_header_decode(continuation, sizeof(continuation), &h),
                     PROTO_ERR_TRUNCATED);
    assert_int_equal(spec_content_header_decode(unused_bit, sizeof(unused_bit), &h), 0);
    assert_int_equal(h.props.flags, 0);
    assert_int_equal(spec_content_header_decode(unknown_class, sizeof(unknown_class), &h),
                     PROTO_ERR_UNKNOWN_METHOD);
    /* A class without properties: its flags name nothing, so nothing is read. */
    assert_int_equal(spec_content_header_decode(other_class, sizeof(other_class), &h), 0);
    assert_int_equal(h.class_id, SPEC_CLASS_CONNECTION);
    assert_int_equal(h.props.flags, 0);
    assert_int_equal(spec_content_header_decode(bad_headers, sizeof(bad_headers), &h),
                     PROTO_ERR_FIELD_TYPE);
    assert_int_equal(spec_content_header_decode(long_overrun, sizeof(long_overrun), &h),
                     PROTO_ERR_TRUNCATED);

    uint8_t out[600];
    full_header(&h);
    h.props.reply_to.len = 256;
    h.props.reply_to.ptr = (const uint8_t *)long_longstr;
    assert_int_equal(spec_content_header_encode(&h, out, sizeof(out)), PROTO_ERR_TOO_LONG);
    h.class_id = 61;
    assert_int_equal(spec_content_header_encode(&h, out, sizeof(out)), PROTO_ERR_UNKNOWN_METHOD);
}

static void class_property_masks_name_exactly_their_properties(void **state)
{
    (void)state;
    for (size_t i = 0; i < codec_class_count; i++) {
        uint16_t mask = 0;
        for (size_t p = 0; p < codec_classes[i].property_count; p++) {
            assert_int_equal(codec_classes[i].properties[p].flag, 1u << (15 - p));
            mask |= codec_classes[i].properties[p].flag;
        }
        assert_int_equal(codec_classes[i].property_mask, mask);
    }
}

/* ---- the fixed-layout codecs of codec_hot.c against the interpreter ---- */

/* The interpreter alone, as spec_method_decode was before the hot path. */
static int reference_decode(const uint8_t *payload, size_t len, struct spec_method *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 4)
        return PROTO_ERR_TRUNCATED;
    uint32_t id = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 | (uint32_t)payload[2] << 8 | payload[3];
    const struct codec_method *desc = codec_find_method(id);
    if (desc == NULL)
        return PROTO_ERR_UNKNOWN_METHOD;
    out->id = id;
    size_t pos = 4;
    int rc = codec_read_fields(desc->fields, desc->field_count, 0, (uint8_t *)&out->args, payload, len, &pos);
    if (rc < 0)
        return rc;
    return pos == len ? 0 : PROTO_ERR_TRUNCATED;
}

static long reference_encode(const struct spec_method *m, uint8_t *out, size_t cap)
{
    const struct codec_method *desc = codec_find_method(m->id);
    if (cap < 4)
        return PROTO_ERR_NO_SPACE;
    out[0] = (uint8_t)(m->id >> 24);
    out[1] = (uint8_t)(m->id >> 16);
    out[2] = (uint8_t)(m->id >> 8);
    out[3] = (uint8_t)m->id;
    size_t pos = 4;
    int rc = codec_write_fields(desc->fields, desc->field_count, 0, (const uint8_t *)&m->args, out, cap, &pos);
    return rc < 0 ? rc : (long)pos;
}

/* Decodes every prefix and a few extensions of payload both ways; the answers must match. */
static void assert_decoders_agree(const uint8_t *payload, size_t len, const struct codec_method *desc)
{
    uint8_t buf[1200];
    assert_true(len + 3 <= sizeof(buf));
    memcpy(buf, payload, len);
    memset(buf + len, 0xFF, 3);
    for (size_t n = 0; n <= len + 3; n++) {
        uint8_t *copy = exact_copy(buf, n);
        struct spec_method hot, ref;
        int rc_hot = spec_method_decode(copy, n, &hot);
        int rc_ref = reference_decode(copy, n, &ref);
        assert_int_equal(rc_hot, rc_ref);
        if (rc_hot == 0)
            assert_methods_equal(&hot, &ref, desc);
        free(copy);
    }
}

static void hot_method_codecs_agree_with_the_interpreter(void **state)
{
    (void)state;
    static const uint32_t decoded[] = {SPEC_BASIC_PUBLISH, SPEC_BASIC_ACK};
    static const uint32_t encoded[] = {SPEC_BASIC_DELIVER, SPEC_BASIC_GET_OK};
    uint8_t wire[1200], hot_out[1200], ref_out[1200];

    for (size_t k = 0; k < sizeof(decoded) / sizeof(decoded[0]); k++) {
        const struct codec_method *desc = codec_find_method(decoded[k]);
        for (unsigned seed = 0; seed < 64; seed++) {
            struct spec_method m;
            fill_method(&m, desc, seed);
            long n = reference_encode(&m, wire, sizeof(wire));
            if (n < 1 || (size_t)n > sizeof(wire)) {
                fail();
                return;
            }
            size_t len = (size_t)n;
            assert_decoders_agree(wire, len, desc);
            /* Unused bits of the bit octet are ignored by both. */
            wire[len - 1] |= 0xFC;
            assert_decoders_agree(wire, len, desc);
        }
    }

    for (size_t k = 0; k < sizeof(encoded) / sizeof(encoded[0]); k++) {
        const struct codec_method *desc = codec_find_method(encoded[k]);
        for (unsigned seed = 0; seed < 64; seed++) {
            struct spec_method m;
            fill_method(&m, desc, seed);
            long full = reference_encode(&m, ref_out, sizeof(ref_out));
            assert_true(full > 0);
            /* Every capacity from none to more than enough, including the exact fit. */
            for (size_t cap = 0; cap <= (size_t)full + 2; cap++) {
                memset(hot_out, 0xEE, sizeof(hot_out));
                memset(ref_out, 0xEE, sizeof(ref_out));
                long n_hot = spec_method_encode(&m, hot_out, cap);
                long n_ref = reference_encode(&m, ref_out, cap);
                assert_int_equal(n_hot, n_ref);
                if (n_hot > 0)
                    assert_memory_equal(hot_out, ref_out, (size_t)n_hot);
            }
        }
        /* An over-long shortstr is refused the same way. */
        struct spec_method m;
        fill_method(&m, desc, 1);
        static uint8_t too_long[256];
        struct proto_bytes *key = encoded[k] == SPEC_BASIC_DELIVER ? &m.args.basic_deliver.routing_key
                                                                   : &m.args.basic_get_ok.routing_key;
        *key = (struct proto_bytes){too_long, sizeof(too_long)};
        assert_int_equal(spec_method_encode(&m, hot_out, sizeof(hot_out)),
                         reference_encode(&m, ref_out, sizeof(ref_out)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_method_round_trips),
        cmocka_unit_test(decoded_strings_borrow_from_the_payload),
        cmocka_unit_test(every_truncation_and_trailing_byte_is_rejected),
        cmocka_unit_test(encoder_never_writes_past_capacity),
        cmocka_unit_test(method_wire_bytes_match_the_spec),
        cmocka_unit_test(bits_pack_eight_per_octet_and_end_at_other_fields),
        cmocka_unit_test(unknown_methods_are_rejected),
        cmocka_unit_test(overlong_lengths_are_rejected),
        cmocka_unit_test(method_tables_are_validated),
        cmocka_unit_test(encoder_refuses_overlong_shortstr),
        cmocka_unit_test(ids_names_and_content_flags_come_from_the_spec),
        cmocka_unit_test(reply_codes_carry_their_class_and_name),
        cmocka_unit_test(header_with_all_properties_round_trips),
        cmocka_unit_test(header_without_properties_is_fourteen_bytes),
        cmocka_unit_test(header_wire_bytes_match_the_spec),
        cmocka_unit_test(header_faults_are_rejected),
        cmocka_unit_test(hot_method_codecs_agree_with_the_interpreter),
        cmocka_unit_test(class_property_masks_name_exactly_their_properties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
