/* tests/unit/protocol/test_proto.c: status descriptions and the reply code each error earns. */
#include "helpers.h"
#include "spec.h"

static const int all_errors[] = {
    PROTO_ERR_TRUNCATED, PROTO_ERR_FRAME_END,  PROTO_ERR_FRAME_SIZE,  PROTO_ERR_FRAME_TYPE,
    PROTO_ERR_UNKNOWN_METHOD, PROTO_ERR_BAD_TABLE, PROTO_ERR_FIELD_TYPE, PROTO_ERR_TOO_DEEP,
    PROTO_ERR_NO_SPACE, PROTO_ERR_BAD_HEADER, PROTO_ERR_TOO_LONG,
};
#define ERROR_COUNT (sizeof(all_errors) / sizeof(all_errors[0]))

static void every_status_has_its_own_description(void **state)
{
    (void)state;
    const char *unknown = proto_strerror(-1000);
    assert_non_null(unknown);
    assert_non_null(proto_strerror(PROTO_INCOMPLETE));
    for (size_t i = 0; i < ERROR_COUNT; i++) {
        const char *text = proto_strerror(all_errors[i]);
        assert_non_null(text);
        assert_string_not_equal(text, unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(text, proto_strerror(all_errors[j]));
    }
}

static void syntax_errors_earn_502(void **state)
{
    (void)state;
    assert_int_equal(proto_error_reply_code(PROTO_ERR_TRUNCATED), 502);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_BAD_TABLE), 502);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_FIELD_TYPE), 502);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_TOO_DEEP), 502);
}

static void framing_errors_earn_501(void **state)
{
    (void)state;
    assert_int_equal(proto_error_reply_code(PROTO_ERR_FRAME_END), 501);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_FRAME_SIZE), 501);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_FRAME_TYPE), 501);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_BAD_HEADER), 501);
}

static void unknown_method_earns_540_and_our_faults_541(void **state)
{
    (void)state;
    assert_int_equal(proto_error_reply_code(PROTO_ERR_UNKNOWN_METHOD), 540);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_NO_SPACE), 541);
    assert_int_equal(proto_error_reply_code(PROTO_ERR_TOO_LONG), 541);
    assert_int_equal(proto_error_reply_code(-1000), 541);
}

static void every_reply_code_is_a_hard_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < ERROR_COUNT; i++) {
        uint16_t code = proto_error_reply_code(all_errors[i]);
        assert_non_null(spec_reply_code_name(code));
        assert_true(spec_reply_code_is_hard(code));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_status_has_its_own_description),
        cmocka_unit_test(syntax_errors_earn_502),
        cmocka_unit_test(framing_errors_earn_501),
        cmocka_unit_test(unknown_method_earns_540_and_our_faults_541),
        cmocka_unit_test(every_reply_code_is_a_hard_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
