/* tests/fuzz/fuzz_common.h: helpers shared by the libFuzzer targets. An invariant that does not
 * hold aborts, which libFuzzer reports as a crash with the input that caused it. */
#ifndef WARREN_FUZZ_COMMON_H
#define WARREN_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "table.h"

#define FUZZ_CHECK(cond) \
    do { if (!(cond)) abort(); } while (0)

/* A heap copy of exactly len bytes, so AddressSanitizer catches a read one past the end. */
static inline uint8_t *fuzz_exact_copy(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(copy != NULL);
    if (len > 0)
        memcpy(copy, src, len);
    return copy;
}

/* Walks a validated table or array and everything nested in it, exercising every accessor;
 * a validated input must iterate without error. Recursion is bounded by the depth check. */
static inline void fuzz_walk(struct proto_bytes contents, int is_table, unsigned depth)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    int rc;

    FUZZ_CHECK(depth <= PROTO_MAX_TABLE_DEPTH);
    table_iter_init(&it, contents);
    while ((rc = is_table ? table_next(&it, &key, &value) : array_next(&it, &value)) > 0) {
        int64_t number;
        FUZZ_CHECK(table_value_equal(&value, &value));
        (void)table_value_to_int(&value, &number);
        if (value.type == TABLE_TABLE || value.type == TABLE_ARRAY) {
            FUZZ_CHECK(value.v.bytes.ptr >= contents.ptr &&
                       value.v.bytes.ptr + value.v.bytes.len <= contents.ptr + contents.len);
            fuzz_walk(value.v.bytes, value.type == TABLE_TABLE, depth + 1);
        }
    }
    FUZZ_CHECK(rc == 0);
}

#endif
