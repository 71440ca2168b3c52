/* tests/unit/protocol/helpers.h: small helpers shared by the protocol tests. */
#ifndef WARREN_TEST_PROTOCOL_HELPERS_H
#define WARREN_TEST_PROTOCOL_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto.h"

/* A heap copy of exactly len bytes, so AddressSanitizer flags any read past the end. The caller
 * frees it. len 0 still returns a unique (empty) allocation. */
static inline uint8_t *exact_copy(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, src, len);
    return copy;
}

static inline struct proto_bytes bytes_of(const char *text)
{
    return (struct proto_bytes){(const uint8_t *)text, (uint32_t)strlen(text)};
}

static inline void assert_bytes_equal(struct proto_bytes a, struct proto_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0)
        assert_memory_equal(a.ptr, b.ptr, a.len);
}

#endif
