/* tests/fuzz/fuzz_frame.c: drives the frame reader over a byte stream delivered in arbitrary
 * pieces, as a socket would, then decodes every method and content header payload it yields
 * (methods as AMQP 0-9-1 and as 0-8).
 *
 * Input: byte 0 picks frame_max, byte 1 seeds the piece sizes, the rest is the stream. */
#include "fuzz_common.h"
#include "codec.h"
#include "frame.h"
#include "spec.h"
#include "spec08.h"

static uint32_t pick_frame_max(uint8_t control)
{
    switch (control & 3) {
    case 0:
        return 0; /* unbounded */
    case 1:
        return FRAME_MIN_SIZE;
    case 2:
        return 131072;
    default:
        return FRAME_OVERHEAD + (control >> 2); /* tiny limits, to hit FRAME_SIZE */
    }
}

static void walk_method_tables(const struct spec_method *m)
{
    const struct codec_method *desc = codec_find_method(m->id);
    FUZZ_CHECK(desc != NULL);
    for (size_t i = 0; i < desc->field_count; i++) {
        if (desc->fields[i].type != CODEC_TABLE)
            continue;
        const uint8_t *slot = (const uint8_t *)&m->args + desc->fields[i].offset;
        const struct proto_bytes *table = (const struct proto_bytes *)(const void *)slot;
        fuzz_walk(*table, 1, 1);
    }
}

/* A decoded method re-encodes to the same length (only unused bits of bit octets may differ),
 * and decoding that encoding gives the same encoding again. */
static void check_method(const uint8_t *payload, size_t len)
{
    struct spec_method m, again;
    int rc = spec_method_decode(payload, len, &m);
    if (rc < 0) {
        FUZZ_CHECK(proto_strerror(rc) != NULL && proto_error_reply_code(rc) >= 500);
        return;
    }
    FUZZ_CHECK(spec_method_is_known(m.id) && spec_method_name(m.id) != NULL);
    walk_method_tables(&m);

    uint8_t *first = malloc(len), *second = malloc(len);
    FUZZ_CHECK(first != NULL && second != NULL);
    FUZZ_CHECK(spec_method_encode(&m, first, len) == (long)len);
    FUZZ_CHECK(spec_method_decode(first, len, &again) == 0);
    FUZZ_CHECK(spec_method_encode(&again, second, len) == (long)len);
    FUZZ_CHECK(memcmp(first, second, len) == 0);
    free(first);
    free(second);
}

/* The same payload read as AMQP 0-8 (spec08.c): what decodes re-encodes to the same length,
 * but access.request, which a server only answers. */
static void check_method_0_8(const uint8_t *payload, size_t len)
{
    struct spec_method m, again;
    int rc = spec08_method_decode(payload, len, &m);
    if (rc < 0) {
        FUZZ_CHECK(proto_strerror(rc) != NULL && proto_error_reply_code(rc) >= 500);
        return;
    }
    if (m.id == SPEC08_ACCESS_REQUEST)
        return;
    FUZZ_CHECK(spec_method_is_known(m.id));
    uint8_t *first = malloc(len), *second = malloc(len);
    FUZZ_CHECK(first != NULL && second != NULL);
    FUZZ_CHECK(spec08_method_encode(&m, first, len) == (long)len);
    FUZZ_CHECK(spec08_method_decode(first, len, &again) == 0);
    FUZZ_CHECK(spec08_method_encode(&again, second, len) == (long)len);
    FUZZ_CHECK(memcmp(first, second, len) == 0);
    free(first);
    free(second);
}

static void check_content_header(const uint8_t *payload, size_t len)
{
    struct spec_content_header h, again;
    if (spec_content_header_decode(payload, len, &h) < 0)
        return;
    fuzz_walk(h.props.headers, 1, 1);

    uint8_t *first = malloc(len), *second = malloc(len);
    FUZZ_CHECK(first != NULL && second != NULL);
    FUZZ_CHECK(spec_content_header_encode(&h, first, len) == (long)len);
    FUZZ_CHECK(spec_content_header_decode(first, len, &again) == 0);
    FUZZ_CHECK(spec_content_header_encode(&again, second, len) == (long)len);
    FUZZ_CHECK(memcmp(first, second, len) == 0);
    free(first);
    free(second);
}

static void check_frame(const struct frame *frame)
{
    uint8_t *payload = fuzz_exact_copy(frame->payload, frame->size);

    if (frame->type == FRAME_METHOD || frame->type == FRAME_BODY) {
        check_method(payload, frame->size);
        check_method_0_8(payload, frame->size);
    }
    if (frame->type == FRAME_HEADER || frame->type == FRAME_BODY)
        check_content_header(payload, frame->size);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t frame_max = pick_frame_max(data[0]);
    uint32_t rng = data[1] | 1u;
    const uint8_t *stream = data + 2;
    size_t len = size - 2, fed = 0, consumed = 0;

    (void)frame_check_protocol_header(stream, len);
    while (fed < len) {
        rng = rng * 1103515245u + 12345u;
        size_t piece = 1 + (rng >> 16) % 97;
        fed += piece < len - fed ? piece : len - fed;

        for (;;) {
            /* Only the bytes received so far, in a buffer of exactly that size. */
            size_t avail = fed - consumed;
            uint8_t *view = fuzz_exact_copy(stream + consumed, avail);
            struct frame frame;
            long n = frame_decode(view, avail, frame_max, &frame);
            if (n > 0) {
                FUZZ_CHECK((size_t)n <= avail);
                FUZZ_CHECK((uint64_t)n == (uint64_t)frame.size + FRAME_OVERHEAD);
                FUZZ_CHECK(frame.payload == view + FRAME_HEADER_SIZE);
                FUZZ_CHECK(frame_max == 0 || (uint64_t)n <= frame_max);
                check_frame(&frame);
                consumed += (size_t)n;
            }
            free(view);
            if (n == PROTO_INCOMPLETE)
                break;
            if (n < 0)
                return 0; /* a framing error ends the connection */
        }
    }
    return 0;
}
