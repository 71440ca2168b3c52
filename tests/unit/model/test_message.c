/* tests/unit/model/test_message.c: a message's memory follows the body bytes that arrived, not
 * the size its content header announced (message_begin / message_append_body), its body stays
 * one contiguous copy, and message_memory_bytes returns to where it was once it is freed; BCC
 * and sender keys; a content header with x-delivery-count set (message_header_with_long). */
#include "helpers.h"

#include <stdio.h>

#include "message.h"
#include "spec.h"

/* A message under assembly announcing body_size bytes, with a small content header. */
static struct message *begin(uint64_t body_size)
{
    struct spec_content_header h = {.class_id = 60, .body_size = body_size};
    h.props.flags = SPEC_BASIC_DELIVERY_MODE_FLAG;
    h.props.delivery_mode = 2;
    uint8_t header[64];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_begin(bytes_of("exchange"), bytes_of("key"),
                                        (struct proto_bytes){header, (uint32_t)n}, &h.props, body_size);
    assert_non_null(msg);
    return msg;
}

static uint8_t pattern(uint64_t i) { return (uint8_t)(i * 131 + (i >> 9)); }

static void test_a_header_alone_reserves_no_announced_body(void **state)
{
    (void)state;
    uint64_t before = message_memory_bytes();
    struct message *msg = begin(128u * 1024 * 1024);
    uint64_t held = message_memory_bytes() - before;
    assert_true(held <= sizeof *msg + 64 + MESSAGE_BODY_FIRST_CAPACITY);
    assert_int_equal(msg->body_size, 128u * 1024 * 1024);
    assert_true(msg->body_capacity <= MESSAGE_BODY_FIRST_CAPACITY);
    message_release(msg); /* a channel closed mid-body */
    assert_int_equal(message_memory_bytes(), before);
}

static void test_body_grows_with_what_arrives_and_stays_one_copy(void **state)
{
    (void)state;
    const uint64_t size = 1000000, piece = 4088; /* body frames of frame_max 4096 */
    uint64_t before = message_memory_bytes();
    struct message *msg = begin(size);
    uint8_t chunk[4088];
    uint64_t received = 0;
    while (received < size) {
        size_t n = (size_t)(size - received < piece ? size - received : piece);
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(received + i);
        assert_int_equal(message_append_body(&msg, received, chunk, n), 0);
        received += n;
        /* Never more than twice what arrived (or the first allocation), never past the size. */
        uint64_t bound = 2 * received > MESSAGE_BODY_FIRST_CAPACITY ? 2 * received : MESSAGE_BODY_FIRST_CAPACITY;
        assert_true(msg->body_capacity >= received);
        assert_true(msg->body_capacity <= bound);
        assert_true(msg->body_capacity <= size);
        assert_true(message_memory_bytes() - before <= sizeof *msg + 64 + bound);
    }
    assert_int_equal(msg->body_capacity, size);
    for (uint64_t i = 0; i < size; i++)
        if (msg->body[i] != pattern(i))
            fail_msg("body byte %llu differs", (unsigned long long)i);
    /* The names and the header moved with the allocation. */
    assert_memory_equal(msg->exchange.ptr, "exchange", 8);
    assert_memory_equal(msg->routing_key.ptr, "key", 3);
    assert_true(message_is_persistent(msg));
    struct spec_content_header h;
    assert_int_equal(spec_content_header_decode(msg->header.ptr, msg->header.len, &h), 0);
    assert_int_equal(h.body_size, size);
    message_release(msg);
    assert_int_equal(message_memory_bytes(), before);
}

static void test_a_small_body_is_allocated_once(void **state)
{
    (void)state;
    struct message *msg = begin(300);
    assert_int_equal(msg->body_capacity, 300);
    uint8_t *body = msg->body;
    uint8_t bytes[300];
    memset(bytes, 'x', sizeof bytes);
    assert_int_equal(message_append_body(&msg, 0, bytes, 100), 0);
    assert_int_equal(message_append_body(&msg, 100, bytes, 200), 0);
    assert_ptr_equal(msg->body, body);
    assert_memory_equal(msg->body, bytes, 300);
    message_release(msg);
}

static void test_bytes_past_the_announced_size_are_refused(void **state)
{
    (void)state;
    uint64_t before = message_memory_bytes();
    struct message *msg = begin(20000);
    uint8_t bytes[20001] = {0};
    assert_int_equal(message_append_body(&msg, 0, bytes, 20001), -EINVAL);
    assert_int_equal(message_append_body(&msg, 0, bytes, 15000), 0);
    assert_int_equal(message_append_body(&msg, 15000, bytes, 5001), -EINVAL);
    assert_int_equal(message_append_body(&msg, 15000, bytes, 5000), 0);
    message_release(msg);
    assert_int_equal(message_memory_bytes(), before);
}

/* Sender-selected distribution: CC and BCC keys are kept for routing, in that order; the BCC
 * header itself is gone from the stored content header (RabbitMQ does not deliver it), CC and
 * the other headers stay, and the memory count still returns to where it was. */
static void test_bcc_is_removed_and_sender_keys_kept(void **state)
{
    (void)state;
    uint64_t before = message_memory_bytes();
    struct table_buf cc = {0}, bcc = {0}, headers = {0};
    struct table_value v = {.type = TABLE_LONGSTR};
    v.v.bytes = bytes_of("b");
    assert_int_equal(table_buf_put_value(&cc, &v), 0);
    v.v.bytes = bytes_of("c");
    assert_int_equal(table_buf_put_value(&bcc, &v), 0);
    put_value(&headers, "BCC", (struct table_value){.type = TABLE_ARRAY, .v.bytes = table_of(&bcc)});
    put_longstr(&headers, "other", "x");
    put_value(&headers, "CC", (struct table_value){.type = TABLE_ARRAY, .v.bytes = table_of(&cc)});
    struct spec_content_header h = {.class_id = 60, .body_size = 1};
    h.props.flags = SPEC_BASIC_HEADERS_FLAG;
    h.props.headers = table_of(&headers);
    uint8_t header[256];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of("x"), bytes_of("a"), (struct proto_bytes){header, (uint32_t)n}, 1);
    assert_non_null(msg);
    struct proto_bytes kept = message_headers(msg);
    struct table_value found;
    assert_int_equal(table_find(kept, "BCC", &found), 0);
    assert_int_equal(table_find(kept, "other", &found), 1);
    assert_int_equal(table_find(kept, "CC", &found), 1);
    struct table_iter it;
    table_iter_init(&it, msg->sender_keys);
    assert_int_equal(array_next(&it, &found), 1);
    assert_true(proto_bytes_equal(found.v.bytes, bytes_of("b")));
    assert_int_equal(array_next(&it, &found), 1);
    assert_true(proto_bytes_equal(found.v.bytes, bytes_of("c")));
    assert_int_equal(array_next(&it, &found), 0);
    message_release(msg);
    assert_int_equal(message_memory_bytes(), before);
    table_buf_free(&cc);
    table_buf_free(&bcc);
    table_buf_free(&headers);
}

/* A message with CC "b" (and BCC "c" when bcc is set), header and body "z". */
static struct message *with_sender_keys(bool with_bcc)
{
    struct table_buf cc = {0}, bcc = {0}, headers = {0};
    struct table_value v = {.type = TABLE_LONGSTR};
    v.v.bytes = bytes_of("b");
    assert_int_equal(table_buf_put_value(&cc, &v), 0);
    v.v.bytes = bytes_of("c");
    assert_int_equal(table_buf_put_value(&bcc, &v), 0);
    put_value(&headers, "CC", (struct table_value){.type = TABLE_ARRAY, .v.bytes = table_of(&cc)});
    if (with_bcc)
        put_value(&headers, "BCC", (struct table_value){.type = TABLE_ARRAY, .v.bytes = table_of(&bcc)});
    struct spec_content_header h = {.class_id = 60, .body_size = 1};
    h.props.flags = SPEC_BASIC_HEADERS_FLAG;
    h.props.headers = table_of(&headers);
    uint8_t header[256];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of("x"), bytes_of("a"), (struct proto_bytes){header, (uint32_t)n}, 1);
    assert_non_null(msg);
    msg->body[0] = 'z';
    table_buf_free(&cc);
    table_buf_free(&bcc);
    table_buf_free(&headers);
    return msg;
}

/* A stored message keeps the BCC keys its headers no longer show (format version 2), so that a
 * dead letter of it routes with them after a restart; with CC only, version 1 is written. Every
 * proper prefix of a version-2 record is refused. */
static void test_bcc_keys_survive_serialization(void **state)
{
    (void)state;
    for (int with_bcc = 0; with_bcc <= 1; with_bcc++) {
        struct message *msg = with_sender_keys(with_bcc);
        size_t need = message_serialize(msg, NULL, 0);
        uint8_t *record = malloc(need);
        assert_non_null(record);
        assert_int_equal(message_serialize(msg, record, need), need);
        assert_int_equal(record[0], with_bcc ? 2 : 1);
        struct message *back = message_deserialize(7, record, need);
        assert_non_null(back);
        assert_int_equal(back->sender_keys.len, msg->sender_keys.len);
        assert_memory_equal(back->sender_keys.ptr, msg->sender_keys.ptr, msg->sender_keys.len);
        assert_int_equal(back->body[0], 'z');
        assert_int_equal(back->header.len, msg->header.len);
        message_release(back);
        for (size_t len = 0; with_bcc && len < need; len++) {
            uint8_t *prefix = malloc(len ? len : 1); /* exactly len bytes: ASan flags a read past */
            assert_non_null(prefix);
            memcpy(prefix, record, len);
            assert_null(message_deserialize(7, prefix, len));
            free(prefix);
        }
        free(record);
        message_release(msg);
    }
}

/* The names of a content header's headers, in order, joined by commas into out. */
static void header_names(struct proto_bytes header, char *out, size_t cap)
{
    struct spec_content_header h;
    assert_int_equal(spec_content_header_decode(header.ptr, header.len, &h), 0);
    assert_true(h.props.flags & SPEC_BASIC_HEADERS_FLAG);
    struct table_iter it;
    struct proto_bytes name;
    struct table_value v;
    size_t n = 0;
    out[0] = '\0';
    table_iter_init(&it, h.props.headers);
    while (table_next(&it, &name, &v) == 1)
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)name.len, (const char *)name.ptr);
}

/* x-delivery-count as a quorum queue sets it: replaced when the publisher set one, added to a
 * message without headers, and the table sorted by name (rabbit_basic:add_header); the stored
 * message is left as it was. */
static void test_header_with_long_sorts_and_replaces(void **state)
{
    (void)state;
    struct table_buf headers = {0}, out = {0};
    put_longstr(&headers, "z", "last");
    put_value(&headers, "x-delivery-count", (struct table_value){.type = TABLE_INT32, .v.i32 = 7});
    put_longstr(&headers, "ab", "x");
    put_longstr(&headers, "a", "y");
    struct spec_content_header h = {.class_id = 60, .body_size = 0};
    h.props.flags = SPEC_BASIC_HEADERS_FLAG | SPEC_BASIC_DELIVERY_MODE_FLAG;
    h.props.headers = table_of(&headers);
    h.props.delivery_mode = 2;
    uint8_t header[256];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of("x"), bytes_of("k"), (struct proto_bytes){header, (uint32_t)n}, 0);
    assert_non_null(msg);
    assert_int_equal(message_header_with_long(msg, "x-delivery-count", 3, &out), 0);
    char names[128];
    header_names((struct proto_bytes){out.data, (uint32_t)out.len}, names, sizeof names);
    assert_string_equal(names, "a,ab,x-delivery-count,z");
    struct spec_content_header decoded;
    assert_int_equal(spec_content_header_decode(out.data, out.len, &decoded), 0);
    assert_int_equal(decoded.props.delivery_mode, 2);
    struct table_value v;
    assert_int_equal(table_find(decoded.props.headers, "x-delivery-count", &v), 1);
    assert_int_equal(v.type, TABLE_INT64);
    assert_int_equal(v.v.i64, 3);
    header_names(msg->header, names, sizeof names);
    assert_string_equal(names, "z,x-delivery-count,ab,a");
    table_buf_free(&out);
    message_release(msg);

    struct spec_content_header bare = {.class_id = 60, .body_size = 0};
    n = spec_content_header_encode(&bare, header, sizeof header);
    msg = message_create(bytes_of("x"), bytes_of("k"), (struct proto_bytes){header, (uint32_t)n}, 0);
    assert_non_null(msg);
    assert_int_equal(message_header_with_long(msg, "x-delivery-count", 0, &out), 0);
    header_names((struct proto_bytes){out.data, (uint32_t)out.len}, names, sizeof names);
    assert_string_equal(names, "x-delivery-count");
    table_buf_free(&out);
    message_release(msg);
    table_buf_free(&headers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_header_alone_reserves_no_announced_body),
        cmocka_unit_test(test_body_grows_with_what_arrives_and_stays_one_copy),
        cmocka_unit_test(test_a_small_body_is_allocated_once),
        cmocka_unit_test(test_bytes_past_the_announced_size_are_refused),
        cmocka_unit_test(test_bcc_is_removed_and_sender_keys_kept),
        cmocka_unit_test(test_bcc_keys_survive_serialization),
        cmocka_unit_test(test_header_with_long_sorts_and_replaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
