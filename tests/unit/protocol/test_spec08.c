/* tests/unit/protocol/test_spec08.c: AMQP 0-8 as RabbitMQ speaks it, on the wire (spec08.c). */
#include "helpers.h"
#include "spec08.h"

static void connection_close_travels_as_10_60_and_10_61(void **state)
{
    (void)state;
    const uint8_t close[] = {0, 10, 0, 60, 0x01, 0x40, 3, 'b', 'y', 'e', 0, 20, 0, 40};
    struct spec_method m;
    assert_int_equal(spec08_method_decode(close, sizeof close, &m), 0);
    assert_int_equal(m.id, SPEC_CONNECTION_CLOSE);
    assert_int_equal(m.args.connection_close.reply_code, 320);
    assert_bytes_equal(m.args.connection_close.reply_text, bytes_of("bye"));
    uint8_t out[64];
    assert_int_equal(spec08_method_encode(&m, out, sizeof out), sizeof close);
    assert_memory_equal(out, close, sizeof close);

    const uint8_t close_ok[] = {0, 10, 0, 61};
    assert_int_equal(spec08_method_decode(close_ok, sizeof close_ok, &m), 0);
    assert_int_equal(m.id, SPEC_CONNECTION_CLOSE_OK);
    assert_int_equal(spec08_method_encode(&m, out, sizeof out), 4);
    assert_memory_equal(out, close_ok, 4);
    /* 10/50 is 0-8's connection.redirect, which no client sends. */
    const uint8_t close_0_9_1[] = {0, 10, 0, 50, 0x01, 0x40, 0, 0, 0, 0, 0};
    assert_int_equal(spec08_method_decode(close_0_9_1, sizeof close_0_9_1, &m), PROTO_ERR_UNKNOWN_METHOD);
}

static void channel_open_ok_has_no_field(void **state)
{
    (void)state;
    struct spec_method m = {.id = SPEC_CHANNEL_OPEN_OK};
    uint8_t out[16];
    assert_int_equal(spec08_method_encode(&m, out, sizeof out), 4);
    assert_memory_equal(out, ((const uint8_t[]){0, 20, 0, 11}), 4);
    assert_int_equal(spec08_method_encode(&m, out, 3), PROTO_ERR_NO_SPACE);
}

static void basic_consume_has_no_arguments_table(void **state)
{
    (void)state;
    const uint8_t consume[] = {0, 60, 0, 20, 0, 1, 1, 'q', 1, 't', 0x06};
    struct spec_method m;
    assert_int_equal(spec08_method_decode(consume, sizeof consume, &m), 0);
    assert_int_equal(m.id, SPEC_BASIC_CONSUME);
    assert_bytes_equal(m.args.basic_consume.queue, bytes_of("q"));
    assert_bytes_equal(m.args.basic_consume.consumer_tag, bytes_of("t"));
    assert_true(m.args.basic_consume.no_ack);
    assert_true(m.args.basic_consume.exclusive);
    assert_int_equal(m.args.basic_consume.arguments.len, 0);
    uint8_t out[32];
    assert_int_equal(spec08_method_encode(&m, out, sizeof out), sizeof consume);
    assert_memory_equal(out, consume, sizeof consume);
    /* A 0-9-1 consume (with its table) has bytes left over in 0-8. */
    const uint8_t consume_0_9_1[] = {0, 60, 0, 20, 0, 1, 1, 'q', 1, 't', 0x06, 0, 0, 0, 0};
    assert_int_equal(spec08_method_decode(consume_0_9_1, sizeof consume_0_9_1, &m), PROTO_ERR_TRUNCATED);
    for (size_t len = 4; len < sizeof consume; len++) {
        uint8_t *copy = exact_copy(consume, len);
        assert_int_equal(spec08_method_decode(copy, len, &m), PROTO_ERR_TRUNCATED);
        free(copy);
    }
}

static void access_request_is_read_and_granted_ticket_1(void **state)
{
    (void)state;
    const uint8_t request[] = {0, 30, 0, 10, 5, '/', 'd', 'a', 't', 'a', 0x1C};
    struct spec_method m;
    assert_int_equal(spec08_method_decode(request, sizeof request, &m), 0);
    assert_int_equal(m.id, SPEC08_ACCESS_REQUEST);
    assert_int_equal(spec08_method_decode(request, sizeof request - 1, &m), PROTO_ERR_TRUNCATED);
    struct spec_method ok = {.id = SPEC08_ACCESS_REQUEST_OK};
    uint8_t out[16];
    assert_int_equal(spec08_method_encode(&ok, out, sizeof out), 6);
    assert_memory_equal(out, ((const uint8_t[]){0, 30, 0, 11, 0, 1}), 6);
}

static void methods_rabbitmq_0_8_lacks_are_unknown(void **state)
{
    (void)state;
    const uint32_t ids[] = {SPEC_CONFIRM_SELECT, SPEC_BASIC_NACK, SPEC_EXCHANGE_BIND, SPEC_EXCHANGE_UNBIND,
                            SPEC_CONNECTION_UPDATE_SECRET};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        uint8_t wire[4] = {0, (uint8_t)(ids[i] >> 16), 0, (uint8_t)ids[i]};
        struct spec_method m = {.id = ids[i]};
        uint8_t out[64];
        assert_int_equal(spec08_method_decode(wire, sizeof wire, &m), PROTO_ERR_UNKNOWN_METHOD);
        assert_int_equal(spec08_method_encode(&m, out, sizeof out), PROTO_ERR_UNKNOWN_METHOD);
    }
    /* connection.blocked would be read as 0-8's connection.close: never encoded. */
    struct spec_method blocked = {.id = SPEC_CONNECTION_BLOCKED};
    uint8_t out[64];
    assert_int_equal(spec08_method_encode(&blocked, out, sizeof out), PROTO_ERR_UNKNOWN_METHOD);
}

static void other_methods_are_the_0_9_1_encoding(void **state)
{
    (void)state;
    /* Every method both framings share encodes the same; queue.unbind and basic.recover are in
     * RabbitMQ's 0-8 with their 0-9-1 numbers. */
    const uint32_t ids[] = {SPEC_QUEUE_DECLARE, SPEC_QUEUE_UNBIND, SPEC_BASIC_RECOVER, SPEC_BASIC_DELIVER,
                            SPEC_BASIC_GET_OK, SPEC_CHANNEL_CLOSE, SPEC_CONNECTION_START, SPEC_TX_SELECT};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        struct spec_method m = {.id = ids[i]}, back;
        uint8_t a[256], b[256];
        long n = spec_method_encode(&m, a, sizeof a);
        assert_true(n > 0);
        assert_int_equal(spec08_method_encode(&m, b, sizeof b), n);
        assert_memory_equal(a, b, (size_t)n);
        assert_int_equal(spec08_method_decode(b, (size_t)n, &back), 0);
        assert_int_equal(back.id, ids[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connection_close_travels_as_10_60_and_10_61),
        cmocka_unit_test(channel_open_ok_has_no_field),
        cmocka_unit_test(basic_consume_has_no_arguments_table),
        cmocka_unit_test(access_request_is_read_and_granted_ticket_1),
        cmocka_unit_test(methods_rabbitmq_0_8_lacks_are_unknown),
        cmocka_unit_test(other_methods_are_the_0_9_1_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
