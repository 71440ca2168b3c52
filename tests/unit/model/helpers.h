/* tests/unit/model/helpers.h: small helpers shared by the model tests. */
#ifndef WARREN_TEST_MODEL_HELPERS_H
#define WARREN_TEST_MODEL_HELPERS_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "router.h"
#include "table.h"

static inline struct proto_bytes bytes_of(const char *text)
{
    return (struct proto_bytes){(const uint8_t *)text, (uint32_t)strlen(text)};
}

static inline struct proto_bytes no_bytes(void)
{
    return (struct proto_bytes){NULL, 0};
}

/* Binds destination with a NUL-terminated key and no arguments; returns router_bind's status. */
static inline int bind_key(struct router *router, void *destination, const char *key)
{
    return router_bind(router, destination, (const uint8_t *)key, strlen(key), no_bytes());
}

static inline int unbind_key(struct router *router, void *destination, const char *key)
{
    return router_unbind(router, destination, (const uint8_t *)key, strlen(key), no_bytes());
}

/* Routes key (and headers) into a cleared set. */
static inline void route_into(const struct router *router, const char *key,
                              struct proto_bytes headers, struct route_set *out)
{
    route_set_clear(out);
    assert_int_equal(router_route(router, bytes_of(key), headers, out), 0);
}

/* Asserts that set holds exactly the n destinations given, in that order. */
static inline void assert_routes(const struct route_set *set, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    assert_int_equal(set->count, n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(set->items[i], va_arg(ap, void *));
    va_end(ap);
}

static inline void put_longstr(struct table_buf *buf, const char *key, const char *text)
{
    struct table_value value = {.type = TABLE_LONGSTR};
    value.v.bytes = bytes_of(text);
    assert_int_equal(table_buf_put_field(buf, key, strlen(key), &value), 0);
}

static inline void put_value(struct table_buf *buf, const char *key, struct table_value value)
{
    assert_int_equal(table_buf_put_field(buf, key, strlen(key), &value), 0);
}

static inline struct proto_bytes table_of(const struct table_buf *buf)
{
    return (struct proto_bytes){buf->data, (uint32_t)buf->len};
}

#endif
