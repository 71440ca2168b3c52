/* tests/fuzz/fuzz_table.c: validates arbitrary bytes as a field table or array, then walks
 * whatever passed and rebuilds it with the encoder.
 *
 * Input: bit 0 of byte 0 says array (1) or table (0); the rest is the contents. */
#include "fuzz_common.h"

/* Rebuilds validated contents field by field; the result must read back value for value. */
static void check_rebuild(struct proto_bytes contents, int is_table)
{
    struct table_buf rebuilt = {0};
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;

    table_iter_init(&it, contents);
    while ((is_table ? table_next(&it, &key, &value) : array_next(&it, &value)) > 0) {
        int rc = is_table ? table_buf_put_field(&rebuilt, (const char *)key.ptr, key.len, &value)
                          : table_buf_put_value(&rebuilt, &value);
        FUZZ_CHECK(rc == 0);
        if (is_table && memchr(key.ptr, 0, key.len) == NULL && key.len > 0) {
            /* table_find takes a C string: the first field with this key must be found. */
            char name[256];
            struct table_value found;
            memcpy(name, key.ptr, key.len);
            name[key.len] = '\0';
            FUZZ_CHECK(table_find(contents, name, &found) == 1);
        }
    }
    FUZZ_CHECK(rebuilt.len == contents.len);

    struct proto_bytes copy = {rebuilt.data, (uint32_t)rebuilt.len};
    FUZZ_CHECK((is_table ? table_validate(copy) : array_validate(copy)) == 0);
    struct table_iter a, b;
    struct proto_bytes key_a, key_b;
    struct table_value value_a, value_b;
    table_iter_init(&a, contents);
    table_iter_init(&b, copy);
    for (;;) {
        int ra = is_table ? table_next(&a, &key_a, &value_a) : array_next(&a, &value_a);
        int rb = is_table ? table_next(&b, &key_b, &value_b) : array_next(&b, &value_b);
        FUZZ_CHECK(ra == rb);
        if (ra == 0)
            break;
        FUZZ_CHECK(table_value_equal(&value_a, &value_b));
    }
    table_buf_free(&rebuilt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > UINT32_MAX)
        return 0;
    int is_table = !(data[0] & 1);
    struct proto_bytes contents = {data + 1, (uint32_t)(size - 1)};

    int rc = is_table ? table_validate(contents) : array_validate(contents);
    if (rc < 0) {
        FUZZ_CHECK(rc == PROTO_ERR_BAD_TABLE || rc == PROTO_ERR_FIELD_TYPE ||
                   rc == PROTO_ERR_TOO_DEEP);
        return 0;
    }
    fuzz_walk(contents, is_table, 1);
    check_rebuild(contents, is_table);
    return 0;
}
