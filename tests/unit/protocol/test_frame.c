/* tests/unit/protocol/test_frame.c: the incremental frame reader and the frame writer. */
#include "helpers.h"
#include "frame.h"
#include "spec.h"

/* Writes a frame with a payload of `size` bytes, payload[i] = seed + i. Returns its length. */
static size_t make_frame(uint8_t *out, uint8_t type, uint16_t channel, uint32_t size, uint8_t seed)
{
    uint8_t payload[512];
    assert_true(size <= sizeof(payload));
    for (uint32_t i = 0; i < size; i++)
        payload[i] = (uint8_t)(seed + i);
    long n = frame_encode(out, size + FRAME_OVERHEAD, type, channel, payload, size);
    assert_int_equal(n, size + FRAME_OVERHEAD);
    return (size_t)n;
}

static void decodes_one_frame_without_copying(void **state)
{
    (void)state;
    const uint8_t wire[] = {1, 0x01, 0x02, 0, 0, 0, 3, 'a', 'b', 'c', 0xCE, 0x55};
    struct frame frame;

    assert_int_equal(frame_decode(wire, sizeof(wire), 4096, &frame), 11);
    assert_int_equal(frame.type, FRAME_METHOD);
    assert_int_equal(frame.channel, 0x0102);
    assert_int_equal(frame.size, 3);
    assert_ptr_equal(frame.payload, wire + FRAME_HEADER_SIZE);
}

static void decodes_every_known_type_and_empty_heartbeat(void **state)
{
    (void)state;
    const uint8_t types[] = {FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT};
    uint8_t buf[64];
    struct frame frame;

    for (size_t i = 0; i < sizeof(types); i++) {
        size_t n = make_frame(buf, types[i], 7, types[i] == FRAME_HEARTBEAT ? 0 : 5, 1);
        assert_int_equal(frame_decode(buf, n, FRAME_MIN_SIZE, &frame), (long)n);
        assert_int_equal(frame.type, types[i]);
        assert_int_equal(frame.channel, 7);
    }
    assert_int_equal(frame.size, 0);
}

static void rejects_unknown_type_from_the_first_byte(void **state)
{
    (void)state;
    const uint8_t bad[] = {0, 4, 5, 7, 9, 'A', 0xCE, 0xFF};
    struct frame frame;

    for (size_t i = 0; i < sizeof(bad); i++)
        assert_int_equal(frame_decode(&bad[i], 1, 0, &frame), PROTO_ERR_FRAME_TYPE);
    assert_int_equal(frame_decode(NULL, 0, 0, &frame), PROTO_INCOMPLETE);
}

static void rejects_bad_frame_end(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct frame frame;
    size_t n = make_frame(buf, FRAME_BODY, 1, 10, 0);

    buf[n - 1] = 0xCD;
    assert_int_equal(frame_decode(buf, n, 0, &frame), PROTO_ERR_FRAME_END);
    buf[n - 1] = 0x00;
    assert_int_equal(frame_decode(buf, n, 0, &frame), PROTO_ERR_FRAME_END);
}

static void enforces_frame_max_on_the_whole_frame(void **state)
{
    (void)state;
    uint8_t buf[600];
    struct frame frame;
    size_t n = make_frame(buf, FRAME_BODY, 1, 500, 0);

    assert_int_equal(frame_decode(buf, n, 508, &frame), 508);
    assert_int_equal(frame_decode(buf, n, 507, &frame), PROTO_ERR_FRAME_SIZE);
    assert_int_equal(frame_decode(buf, n, 0, &frame), 508); /* 0: unbounded */
}

static void rejects_oversized_frame_as_soon_as_the_header_is_in(void **state)
{
    (void)state;
    const uint8_t header[] = {FRAME_BODY, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF};
    struct frame frame;

    for (size_t len = 1; len < FRAME_HEADER_SIZE; len++) {
        uint8_t *copy = exact_copy(header, len);
        assert_int_equal(frame_decode(copy, len, 131072, &frame), PROTO_INCOMPLETE);
        free(copy);
    }
    uint8_t *copy = exact_copy(header, sizeof(header));
    assert_int_equal(frame_decode(copy, sizeof(header), 131072, &frame), PROTO_ERR_FRAME_SIZE);
    assert_int_equal(frame_decode(copy, sizeof(header), UINT32_MAX, &frame), PROTO_ERR_FRAME_SIZE);
    /* Without a bound the reader waits for the 4 GiB; the caller's frame_max prevents that. */
    assert_int_equal(frame_decode(copy, sizeof(header), 0, &frame), PROTO_INCOMPLETE);
    free(copy);
}

static void waits_for_every_partial_prefix(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct frame frame;
    size_t n = make_frame(buf, FRAME_METHOD, 3, 20, 9);

    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = exact_copy(buf, len);
        assert_int_equal(frame_decode(copy, len, FRAME_MIN_SIZE, &frame), PROTO_INCOMPLETE);
        free(copy);
    }
}

/* Builds a stream of `count` frames of varied types and sizes; returns its length. */
static size_t make_stream(uint8_t *out, size_t cap, size_t count)
{
    const uint8_t types[] = {FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT};
    size_t len = 0;

    for (size_t i = 0; i < count; i++) {
        uint8_t type = types[i % 4];
        uint32_t size = type == FRAME_HEARTBEAT ? 0 : (uint32_t)(i * 7 % 40);
        assert_true(len + size + FRAME_OVERHEAD <= cap);
        len += make_frame(out + len, type, (uint16_t)i, size, (uint8_t)i);
    }
    return len;
}

/* Feeds stream to the reader `chunk` bytes at a time, as a socket would, and checks that
 * every frame comes out whole and in order. */
static void feed_in_chunks(const uint8_t *stream, size_t len, size_t count, size_t chunk)
{
    uint8_t *window = malloc(len);
    size_t have = 0, consumed = 0, frames = 0, fed = 0;
    assert_non_null(window);

    while (fed < len) {
        size_t step = len - fed < chunk ? len - fed : chunk;
        memcpy(window + have, stream + fed, step);
        have += step;
        fed += step;
        for (;;) {
            struct frame frame;
            long n = frame_decode(window + consumed, have - consumed, FRAME_MIN_SIZE, &frame);
            assert_true(n >= 0);
            if (n == PROTO_INCOMPLETE)
                break;
            assert_int_equal(frame.channel, (uint16_t)frames);
            if (frame.size > 0)
                assert_int_equal(frame.payload[0], (uint8_t)frames);
            consumed += (size_t)n;
            frames++;
        }
    }
    assert_int_equal(frames, count);
    assert_int_equal(consumed, len);
    free(window);
}

static void reassembles_frames_split_at_every_byte_boundary(void **state)
{
    (void)state;
    uint8_t stream[2048];
    size_t len = make_stream(stream, sizeof(stream), 24);

    for (size_t chunk = 1; chunk <= len; chunk++)
        feed_in_chunks(stream, len, 24, chunk);

    /* Two reads, split at every possible offset. */
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t *first = exact_copy(stream, cut);
        size_t frames = 0, pos = 0;
        struct frame frame;
        long n;
        while ((n = frame_decode(first + pos, cut - pos, FRAME_MIN_SIZE, &frame)) > 0) {
            pos += (size_t)n;
            frames++;
        }
        assert_int_equal(n, PROTO_INCOMPLETE);
        free(first);
        while ((n = frame_decode(stream + pos, len - pos, FRAME_MIN_SIZE, &frame)) > 0) {
            pos += (size_t)n;
            frames++;
        }
        assert_int_equal(frames, 24);
        assert_int_equal(pos, len);
    }
}

static void decodes_many_frames_from_one_buffer(void **state)
{
    (void)state;
    size_t cap = 1000 * (40 + FRAME_OVERHEAD);
    uint8_t *stream = malloc(cap);
    assert_non_null(stream);
    size_t len = make_stream(stream, cap, 1000), pos = 0, frames = 0;
    struct frame frame;
    long n;

    while ((n = frame_decode(stream + pos, len - pos, FRAME_MIN_SIZE, &frame)) > 0) {
        assert_int_equal(frame.channel, (uint16_t)frames);
        pos += (size_t)n;
        frames++;
    }
    assert_int_equal(n, PROTO_INCOMPLETE);
    assert_int_equal(frames, 1000);
    assert_int_equal(pos, len);
    free(stream);
}

static void encode_writes_header_payload_and_end(void **state)
{
    (void)state;
    const uint8_t payload[] = {0xAA, 0xBB};
    const uint8_t expected[] = {FRAME_HEADER, 0x12, 0x34, 0, 0, 0, 2, 0xAA, 0xBB, 0xCE};
    uint8_t out[sizeof(expected)];

    assert_int_equal(frame_encode(out, sizeof(out), FRAME_HEADER, 0x1234, payload, 2), 10);
    assert_memory_equal(out, expected, sizeof(expected));
    for (size_t cap = 0; cap < sizeof(expected); cap++)
        assert_int_equal(frame_encode(out, cap, FRAME_HEADER, 1, payload, 2), PROTO_ERR_NO_SPACE);
    assert_int_equal(frame_encode(out, sizeof(out), FRAME_HEARTBEAT, 0, NULL, 0), FRAME_OVERHEAD);

    uint8_t header[FRAME_HEADER_SIZE];
    frame_put_header(header, FRAME_BODY, 0xFFFF, 0x01020304);
    const uint8_t expected_header[] = {FRAME_BODY, 0xFF, 0xFF, 1, 2, 3, 4};
    assert_memory_equal(header, expected_header, FRAME_HEADER_SIZE);
}

static void checks_the_protocol_header(void **state)
{
    (void)state;
    const uint8_t good[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1, 1};

    assert_memory_equal(frame_protocol_header, good, PROTOCOL_HEADER_SIZE);
    assert_int_equal(frame_check_protocol_header(good, sizeof(good)), PROTOCOL_HEADER_SIZE);
    for (size_t len = 0; len < PROTOCOL_HEADER_SIZE; len++) {
        uint8_t *copy = exact_copy(good, len);
        assert_int_equal(frame_check_protocol_header(copy, len), PROTO_INCOMPLETE);
        free(copy);
    }
    for (size_t at = 0; at < PROTOCOL_HEADER_SIZE; at++) {
        uint8_t bad[PROTOCOL_HEADER_SIZE];
        memcpy(bad, good, sizeof(bad));
        bad[at] ^= 0x40;
        assert_int_equal(frame_check_protocol_header(bad, at + 1), PROTO_ERR_BAD_HEADER);
        assert_int_equal(frame_check_protocol_header(bad, sizeof(bad)), PROTO_ERR_BAD_HEADER);
    }
    /* RabbitMQ serves AMQP 0-9 as 0-9-1, and 0-8 (both spellings) as 0-8; 1.0 is refused. */
    const uint8_t amqp_0_9[] = {'A', 'M', 'Q', 'P', 1, 1, 0, 9};
    assert_int_equal(frame_check_protocol_header(amqp_0_9, 8), PROTOCOL_HEADER_SIZE);
    for (size_t len = 5; len < PROTOCOL_HEADER_SIZE; len++)
        assert_int_equal(frame_check_protocol_header(amqp_0_9, len), PROTO_INCOMPLETE);
    assert_int_equal(frame_header_protocol(amqp_0_9), FRAME_PROTOCOL_0_9_1);
    assert_int_equal(frame_header_protocol(good), FRAME_PROTOCOL_0_9_1);
    const uint8_t amqp_0_8[] = {'A', 'M', 'Q', 'P', 1, 1, 8, 0};
    assert_int_equal(frame_check_protocol_header(amqp_0_8, 8), PROTOCOL_HEADER_SIZE);
    assert_int_equal(frame_check_protocol_header(amqp_0_8, 7), PROTO_INCOMPLETE);
    assert_int_equal(frame_header_protocol(amqp_0_8), FRAME_PROTOCOL_0_8);
    const uint8_t amqp_0_8_site[] = {'A', 'M', 'Q', 'P', 1, 1, 9, 1};
    assert_int_equal(frame_check_protocol_header(amqp_0_8_site, 8), PROTOCOL_HEADER_SIZE);
    assert_int_equal(frame_header_protocol(amqp_0_8_site), FRAME_PROTOCOL_0_8);
    const uint8_t amqp_0_8_other[] = {'A', 'M', 'Q', 'P', 1, 1, 8, 1};
    assert_int_equal(frame_check_protocol_header(amqp_0_8_other, 8), PROTO_ERR_BAD_HEADER);
    const uint8_t amqp_1_0[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0};
    assert_int_equal(frame_check_protocol_header(amqp_1_0, 8), PROTO_ERR_BAD_HEADER);
    assert_int_equal(frame_check_protocol_header((const uint8_t *)"GET / HTTP/1.1", 14),
                     PROTO_ERR_BAD_HEADER);
}

static void frame_constants_match_the_spec(void **state)
{
    (void)state;
    assert_int_equal(FRAME_METHOD, SPEC_FRAME_METHOD);
    assert_int_equal(FRAME_HEADER, SPEC_FRAME_HEADER);
    assert_int_equal(FRAME_BODY, SPEC_FRAME_BODY);
    assert_int_equal(FRAME_HEARTBEAT, SPEC_FRAME_HEARTBEAT);
    assert_int_equal(FRAME_END_OCTET, SPEC_FRAME_END);
    assert_int_equal(FRAME_MIN_SIZE, SPEC_FRAME_MIN_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_one_frame_without_copying),
        cmocka_unit_test(decodes_every_known_type_and_empty_heartbeat),
        cmocka_unit_test(rejects_unknown_type_from_the_first_byte),
        cmocka_unit_test(rejects_bad_frame_end),
        cmocka_unit_test(enforces_frame_max_on_the_whole_frame),
        cmocka_unit_test(rejects_oversized_frame_as_soon_as_the_header_is_in),
        cmocka_unit_test(waits_for_every_partial_prefix),
        cmocka_unit_test(reassembles_frames_split_at_every_byte_boundary),
        cmocka_unit_test(decodes_many_frames_from_one_buffer),
        cmocka_unit_test(encode_writes_header_payload_and_end),
        cmocka_unit_test(checks_the_protocol_header),
        cmocka_unit_test(frame_constants_match_the_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
